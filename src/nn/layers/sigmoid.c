/* [sigmoid]: y = 1 / (1 + e^-x) (PyTorch's nn.Sigmoid, ONNX Sigmoid), in the input's layout:
 * the vectorized kernel with the oneDNN kernel sets, else the reference (in double). The
 * backward recomputes the sigmoid from the input, so an activation= after it is allowed. */
#include "kernels/ref/ref.h"
#include "nn/layer.h"

static pc_status sigmoid_build(pc_build *b, pc_layer *l) {
    l->flops = 4 * pc_layer_out_size(l);
    return PC_OK;
}

static pc_status sigmoid_setup(pc_exec *ex, int i) { return PC_OK; }

static void sigmoid_forward(pc_exec *ex, int i, int train, float *y) {
    const pc_layer *l = &ex->m->layers[i];
    const float *x = pc_exec_input_of(ex, i, 0);
    const int64_t n = pc_exec_out_floats(ex, i);
    if (!ex->use_dnnl) {
        ref_sigmoid_forward(n, x, y);
        return;
    }
    fast_sigmoid_forward(n, x, y);
    if (ex->ls[i].blocked) fast_zero_padding(ex->batch, l->c, (int64_t)l->h * l->w, ex->block, y);
}

static void sigmoid_backward(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw,
                             float *db) {
    const float *x = pc_exec_input_of(ex, i, 0);
    if (dx)
        (ex->use_dnnl ? fast_sigmoid_backward : ref_sigmoid_backward)(pc_exec_out_floats(ex, i),
                                                                      x, dy, dx);
}

const pc_layer_ops pc_sigmoid_ops = {
    .name = "sigmoid", .n_inputs = 1, .layout = PC_OUT_AS_INPUT, .build = sigmoid_build,
    .setup = sigmoid_setup, .forward = sigmoid_forward, .backward = sigmoid_backward,
};
