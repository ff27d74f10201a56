/* [dropout]: inverted dropout in training (each element kept with probability 1 - rate and
 * scaled by 1 / (1 - rate)), the identity in inference, in the input's layout. The mask is a
 * function of (seed, step, layer, global sample index, element), so it does not depend on
 * how the batch is split among workers. */
#include <string.h>

#include "core/rng.h"
#include "nn/layer.h"

static pc_status dropout_build(pc_build *b, pc_layer *l) {
    return pc_build_float(b, "rate", 0.5f, 0.0f, 0.99f, &l->rate);
}

static pc_status dropout_setup(pc_exec *ex, int i) { return PC_OK; }

/* y = x masked and scaled (forward), or dx = dy likewise (backward: the same mask). */
static void dropout_apply(const pc_exec *ex, int layer, const float *x, float *y) {
    const pc_layer *l = &ex->m->layers[layer];
    const int64_t size = pc_layer_out_size(l), hw = (int64_t)l->h * l->w;
    const int B = ex->ls[layer].blocked ? ex->block : 0;
    const int64_t stride = B ? fast_blocked_size(l->c, hw, B) : size; /* floats per sample */
    const float keep = 1.0f - l->rate, scale = 1.0f / keep;
    if (B) memset(y, 0, sizeof(float) * ex->batch * stride); /* padded channels */
    for (int s = 0; s < ex->batch; s++) {
        uint64_t sample = (uint64_t)(ex->first_sample + s);
        for (int64_t j = 0; j < size; j++) { /* j: the element's plain index in the sample */
            uint64_t bits = pc_rand64(ex->seed, PC_RNG_DROPOUT, ex->step, (uint64_t)layer,
                                      sample * (uint64_t)size + (uint64_t)j);
            const int64_t c = j / hw, p = j % hw;
            const int64_t k = s * stride + (B ? ((c / B) * hw + p) * B + c % B : j);
            y[k] = pc_uniform01(bits) < keep ? x[k] * scale : 0.0f;
        }
    }
}

static void dropout_forward(pc_exec *ex, int i, int train, float *y) {
    const float *x = pc_exec_input_of(ex, i, 0);
    if (train && ex->m->layers[i].rate > 0) dropout_apply(ex, i, x, y);
    else memcpy(y, x, sizeof(float) * pc_exec_out_floats(ex, i));
}

static void dropout_backward(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw,
                             float *db) {
    if (!dx) return;
    if (ex->m->layers[i].rate > 0) dropout_apply(ex, i, dy, dx);
    else memcpy(dx, dy, sizeof(float) * pc_exec_out_floats(ex, ex->m->layers[i].inputs[0]));
}

const pc_layer_ops pc_dropout_ops = {
    .name = "dropout", .n_inputs = 1, .layout = PC_OUT_AS_INPUT, .build = dropout_build,
    .setup = dropout_setup, .forward = dropout_forward, .backward = dropout_backward,
};
