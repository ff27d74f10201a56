/* [hardswish]: PyTorch's nn.Hardswish (ONNX HardSwish), y = x relu6(x + 3) / 6, in the
 * input's layout: the vectorized kernel with the oneDNN kernel sets, else the reference. */
#include "kernels/ref/ref.h"
#include "nn/layer.h"

static pc_status hardswish_build(pc_build *b, pc_layer *l) {
    l->flops = 4 * pc_layer_out_size(l);
    return PC_OK;
}

static pc_status hardswish_setup(pc_exec *ex, int i) { return PC_OK; }

static void hardswish_forward(pc_exec *ex, int i, int train, float *y) {
    const float *x = pc_exec_input_of(ex, i, 0);
    (ex->use_dnnl ? fast_hardswish_forward : ref_hardswish_forward)(pc_exec_out_floats(ex, i), x, y);
}

static void hardswish_backward(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw,
                               float *db) {
    const float *x = pc_exec_input_of(ex, i, 0);
    if (dx)
        (ex->use_dnnl ? fast_hardswish_backward : ref_hardswish_backward)(
            pc_exec_out_floats(ex, i), x, dy, dx);
}

const pc_layer_ops pc_hardswish_ops = {
    .name = "hardswish", .n_inputs = 1, .layout = PC_OUT_AS_INPUT, .build = hardswish_build,
    .setup = hardswish_setup,
    .forward = hardswish_forward, .backward = hardswish_backward,
};
