/* [gap]: global average pooling to (C, 1, 1), from a plain or a blocked input; the output
 * is plain. */
#include "nn/layer.h"

static pc_status gap_build(pc_build *b, pc_layer *l) {
    l->h = l->w = 1;
    l->flops = pc_layer_out_size(pc_build_input(b, 0));
    return PC_OK;
}

static pc_status gap_setup(pc_exec *ex, int i) { return PC_OK; }

static void gap_forward(pc_exec *ex, int i, int train, float *y) {
    const pc_layer *l = &ex->m->layers[i], *in = &ex->m->layers[l->inputs[0]];
    const float *x = pc_exec_input_of(ex, i, 0);
    const int64_t hw = (int64_t)in->h * in->w;
    if (pc_exec_input_blocked(ex, i, 0)) {
        fast_gapb_forward(ex->batch, l->c, hw, ex->block, x, y);
        return;
    }
    for (int64_t p = 0; p < (int64_t)ex->batch * l->c; p++) {
        float s = 0;
        for (int64_t k = 0; k < hw; k++) s += x[p * hw + k];
        y[p] = s / (float)hw;
    }
}

static void gap_backward(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw, float *db) {
    const pc_layer *l = &ex->m->layers[i], *in = &ex->m->layers[l->inputs[0]];
    const int64_t hw = (int64_t)in->h * in->w;
    if (!dx) return;
    if (pc_exec_input_blocked(ex, i, 0)) {
        fast_gapb_backward(ex->batch, l->c, hw, ex->block, dy, dx);
        return;
    }
    for (int64_t p = 0; p < (int64_t)ex->batch * l->c; p++) {
        float g = dy[p] / (float)hw;
        for (int64_t q = 0; q < hw; q++) dx[p * hw + q] = g;
    }
}

const pc_layer_ops pc_gap_ops = {
    .name = "gap", .n_inputs = 1, .layout = PC_OUT_PLAIN, .build = gap_build,
    .setup = gap_setup, .forward = gap_forward, .backward = gap_backward,
};
