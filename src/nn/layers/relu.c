/* [relu]: the ReLU activation as a layer of its own (activation=relu on a copy of its
 * input), in the input's layout. */
#include <string.h>

#include "nn/layer.h"

static pc_status relu_build(pc_build *b, pc_layer *l) {
    l->act = PC_ACT_RELU;
    return PC_OK;
}

static pc_status relu_setup(pc_exec *ex, int i) { return PC_OK; }

static void relu_forward(pc_exec *ex, int i, int train, float *y) {
    memcpy(y, pc_exec_input_of(ex, i, 0), sizeof(float) * pc_exec_out_floats(ex, i));
}

static void relu_backward(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw, float *db) {
    if (dx) memcpy(dx, dy, sizeof(float) * pc_exec_out_floats(ex, ex->m->layers[i].inputs[0]));
}

const pc_layer_ops pc_relu_ops = {
    .name = "relu", .n_inputs = 1, .layout = PC_OUT_AS_INPUT, .build = relu_build,
    .setup = relu_setup, .forward = relu_forward, .backward = relu_backward,
};
