/* [clip] min= max=: y = min(max(x, min), max) (ONNX Clip, PyTorch's hardtanh and clamp), and
 * [relu6], the same with min=0 max=6 (no keys). The gradient passes where min < x < max
 * (PyTorch's hardtanh and relu6 at the bounds). In the input's layout: the vectorized kernel
 * with the oneDNN kernel sets, else the reference. */
#include <float.h>
#include <string.h>

#include "kernels/ref/ref.h"
#include "nn/layer.h"

static pc_status clip_build(pc_build *b, pc_layer *l) {
    l->flops = 2 * pc_layer_out_size(l);
    if (strcmp(pc_build_section(b), "relu6") == 0) {
        l->alpha = 0.0f;
        l->beta = 6.0f;
        return PC_OK;
    }
    PC_TRY(pc_build_float(b, "min", -FLT_MAX, -FLT_MAX, FLT_MAX, &l->alpha));
    PC_TRY(pc_build_float(b, "max", FLT_MAX, -FLT_MAX, FLT_MAX, &l->beta));
    if (!pc_build_value(b, "min") && !pc_build_value(b, "max"))
        return pc_build_fail(b, "[clip] needs min= or max= (or both)");
    if (l->alpha > l->beta)
        return pc_build_fail(b, "[clip] min=%g is above max=%g", l->alpha, l->beta);
    return PC_OK;
}

static pc_status clip_setup(pc_exec *ex, int i) { return PC_OK; }

static void clip_forward(pc_exec *ex, int i, int train, float *y) {
    const pc_layer *l = &ex->m->layers[i];
    const float *x = pc_exec_input_of(ex, i, 0);
    const int64_t n = pc_exec_out_floats(ex, i);
    if (!ex->use_dnnl) {
        ref_clip_forward(n, l->alpha, l->beta, x, y);
        return;
    }
    fast_clip_forward(n, l->alpha, l->beta, x, y);
    if (ex->ls[i].blocked && (l->alpha > 0 || l->beta < 0)) /* clip(0) is not 0 */
        fast_zero_padding(ex->batch, l->c, (int64_t)l->h * l->w, ex->block, y);
}

static void clip_backward(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw, float *db) {
    const pc_layer *l = &ex->m->layers[i];
    const float *x = pc_exec_input_of(ex, i, 0);
    if (dx)
        (ex->use_dnnl ? fast_clip_backward : ref_clip_backward)(pc_exec_out_floats(ex, i),
                                                                l->alpha, l->beta, x, dy, dx);
}

const pc_layer_ops pc_clip_ops = {
    .name = "clip", .also = "relu6", .n_inputs = 1, .layout = PC_OUT_AS_INPUT,
    .build = clip_build, .setup = clip_setup, .forward = clip_forward, .backward = clip_backward,
};
