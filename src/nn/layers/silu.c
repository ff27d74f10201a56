/* [silu]: y = x sigmoid(x) (PyTorch's nn.SiLU, Keras' swish; ONNX Sigmoid then Mul), in the
 * input's layout: the vectorized kernel with the oneDNN kernel sets, else the reference (in
 * double). */
#include "kernels/ref/ref.h"
#include "nn/layer.h"

static pc_status silu_build(pc_build *b, pc_layer *l) {
    l->flops = 5 * pc_layer_out_size(l);
    return PC_OK;
}

static pc_status silu_setup(pc_exec *ex, int i) { return PC_OK; }

static void silu_forward(pc_exec *ex, int i, int train, float *y) {
    const float *x = pc_exec_input_of(ex, i, 0);
    (ex->use_dnnl ? fast_silu_forward : ref_silu_forward)(pc_exec_out_floats(ex, i), x, y);
}

static void silu_backward(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw, float *db) {
    const float *x = pc_exec_input_of(ex, i, 0);
    if (dx)
        (ex->use_dnnl ? fast_silu_backward : ref_silu_backward)(pc_exec_out_floats(ex, i), x, dy,
                                                                dx);
}

const pc_layer_ops pc_silu_ops = {
    .name = "silu", .n_inputs = 1, .layout = PC_OUT_AS_INPUT, .build = silu_build,
    .setup = silu_setup, .forward = silu_forward, .backward = silu_backward,
};
