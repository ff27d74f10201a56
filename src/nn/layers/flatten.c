/* [flatten]: (C, H, W) to (C*H*W, 1, 1) in NCHW order; a blocked input is made plain. */
#include <string.h>

#include "nn/layer.h"

static pc_status flatten_build(pc_build *b, pc_layer *l) {
    l->c = (int)pc_layer_out_size(pc_build_input(b, 0));
    l->h = l->w = 1;
    return PC_OK;
}

static pc_status flatten_setup(pc_exec *ex, int i) { return PC_OK; }

static void flatten_forward(pc_exec *ex, int i, int train, float *y) {
    const pc_layer *in = &ex->m->layers[ex->m->layers[i].inputs[0]];
    const float *x = pc_exec_input_of(ex, i, 0);
    if (pc_exec_input_blocked(ex, i, 0))
        fast_to_plain(ex->batch, in->c, (int64_t)in->h * in->w, ex->block, x, y);
    else
        memcpy(y, x, sizeof(float) * pc_exec_out_floats(ex, i));
}

static void flatten_backward(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw,
                             float *db) {
    const int j = ex->m->layers[i].inputs[0];
    const pc_layer *in = &ex->m->layers[j];
    if (!dx) return;
    if (pc_exec_input_blocked(ex, i, 0))
        fast_to_blocked(ex->batch, in->c, (int64_t)in->h * in->w, ex->block, dy, dx);
    else
        memcpy(dx, dy, sizeof(float) * pc_exec_out_floats(ex, j));
}

const pc_layer_ops pc_flatten_ops = {
    .name = "flatten", .n_inputs = 1, .layout = PC_OUT_PLAIN, .build = flatten_build,
    .setup = flatten_setup, .forward = flatten_forward, .backward = flatten_backward,
};
