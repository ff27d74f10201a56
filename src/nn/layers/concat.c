/* [concat] from=a,b,...: the inputs (2 to PC_MAX_INPUTS, of the same height and width)
 * stacked along channels in the order given (ONNX Concat on axis 1, Inception and DenseNet
 * blocks). Plain or blocked, as its inputs. */
#include <string.h>

#include "nn/layer.h"

static pc_status concat_build(pc_build *b, pc_layer *l) {
    const pc_layer *a = pc_build_input(b, 0);
    int64_t c = 0;
    for (int k = 0; k < pc_build_n_inputs(b); k++) {
        const pc_layer *x = pc_build_input(b, k);
        if (x->h != a->h || x->w != a->w)
            return pc_build_fail(b, "[concat] input %d is %dx%dx%d, input 1 %dx%dx%d: the "
                                 "heights and widths differ", k + 1, x->c, x->h, x->w, a->c, a->h, a->w);
        c += x->c;
    }
    if (c > 1 << 24) return pc_build_fail(b, "[concat] %lld channels: too many", (long long)c);
    l->c = (int)c;
    return PC_OK;
}

static pc_status concat_setup(pc_exec *ex, int i) { return PC_OK; }

static void concat_forward(pc_exec *ex, int i, int train, float *y) {
    const pc_layer *l = &ex->m->layers[i];
    const int64_t hw = (int64_t)l->h * l->w;
    const int B = ex->ls[i].blocked ? ex->block : 1;
    int at = 0;
    for (int k = 0; k < l->n_inputs; k++) {
        const int cx = ex->m->layers[l->inputs[k]].c;
        fast_concat_put(ex->batch, cx, at, l->c, hw, B, pc_exec_input_of(ex, i, k), y);
        at += cx;
    }
    if (B > 1) fast_zero_padding(ex->batch, l->c, hw, B, y);
}

static void concat_backward(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw,
                            float *db) {
    const pc_layer *l = &ex->m->layers[i];
    int at = 0;
    for (int j = 0; j < k; j++) at += ex->m->layers[l->inputs[j]].c;
    if (dx)
        fast_concat_take(ex->batch, ex->m->layers[l->inputs[k]].c, at, l->c,
                         (int64_t)l->h * l->w, ex->ls[i].blocked ? ex->block : 1, dy, dx);
}

const pc_layer_ops pc_concat_ops = {
    .name = "concat", .n_inputs = 2, .max_inputs = PC_MAX_INPUTS, .layout = PC_OUT_AS_INPUT,
    .build = concat_build, .setup = concat_setup, .forward = concat_forward,
    .backward = concat_backward,
};
