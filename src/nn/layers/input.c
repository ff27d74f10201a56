/* The input images: layer 0 of every model, made by the parser (never a section). */
#include "nn/layer.h"

static pc_status input_setup(pc_exec *ex, int i) { return PC_OK; }

const pc_layer_ops pc_input_ops = {
    .name = "input", .n_inputs = 0, .layout = PC_OUT_PLAIN, .setup = input_setup,
};
