/* [hardsigmoid] alpha= beta=: y = max(0, min(1, alpha x + beta)), ONNX HardSigmoid; the
 * defaults (alpha 1/6, beta 1/2) are PyTorch's nn.Hardsigmoid (ONNX's default alpha is
 * 0.2). In the input's layout: the vectorized kernel with the oneDNN kernel sets, else the
 * reference. */
#include "kernels/ref/ref.h"
#include "nn/layer.h"

static pc_status hardsigmoid_build(pc_build *b, pc_layer *l) {
    PC_TRY(pc_build_float(b, "alpha", 1.0f / 6.0f, -1e6f, 1e6f, &l->alpha));
    PC_TRY(pc_build_float(b, "beta", 0.5f, -1e6f, 1e6f, &l->beta));
    l->flops = 2 * pc_layer_out_size(l);
    return PC_OK;
}

static pc_status hardsigmoid_setup(pc_exec *ex, int i) { return PC_OK; }

static void hardsigmoid_forward(pc_exec *ex, int i, int train, float *y) {
    const pc_layer *l = &ex->m->layers[i];
    const float *x = pc_exec_input_of(ex, i, 0);
    const int64_t n = pc_exec_out_floats(ex, i);
    if (!ex->use_dnnl) {
        ref_hardsigmoid_forward(n, l->alpha, l->beta, x, y);
        return;
    }
    fast_hardsigmoid_forward(n, l->alpha, l->beta, x, y);
    if (ex->ls[i].blocked) fast_zero_padding(ex->batch, l->c, (int64_t)l->h * l->w, ex->block, y);
}

static void hardsigmoid_backward(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw,
                                 float *db) {
    const pc_layer *l = &ex->m->layers[i];
    const float *x = pc_exec_input_of(ex, i, 0);
    if (dx)
        (ex->use_dnnl ? fast_hardsigmoid_backward : ref_hardsigmoid_backward)(
            pc_exec_out_floats(ex, i), l->alpha, l->beta, x, dy, dx);
}

const pc_layer_ops pc_hardsigmoid_ops = {
    .name = "hardsigmoid", .n_inputs = 1, .layout = PC_OUT_AS_INPUT,
    .build = hardsigmoid_build, .setup = hardsigmoid_setup, .forward = hardsigmoid_forward,
    .backward = hardsigmoid_backward,
};
