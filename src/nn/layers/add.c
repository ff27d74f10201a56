/* [add] from=a,b: y = a + P(b), the residual add. b may be larger in space by an integer
 * stride and have fewer channels: P subsamples it and pads its channels with zeros at the
 * end (ResNet's option A shortcut). Or b is (C, 1, 1) with a's C: one value per channel,
 * broadcast over a's plane (stride 0, ONNX Add's broadcasting). Plain, or blocked with
 * ReLU fused. */
#include <string.h>

#include "nn/layer.h"

static pc_status add_build(pc_build *b, pc_layer *l) {
    const pc_layer *a = pc_build_input(b, 0), *s = pc_build_input(b, 1);
    if (s->c == a->c && s->h == 1 && s->w == 1 && (a->h > 1 || a->w > 1)) {
        l->sh = l->sw = 0; /* every pixel reads b's one value per channel */
        l->flops = pc_layer_out_size(l);
        return PC_OK;
    }
    int ok = s->c <= a->c && s->h % a->h == 0 && s->w % a->w == 0 && s->h / a->h == s->w / a->w;
    if (!ok)
        return pc_build_fail(b, "[add] inputs %dx%dx%d and %dx%dx%d do not match", a->c, a->h,
                             a->w, s->c, s->h, s->w);
    l->sh = l->sw = s->h / a->h;
    l->flops = pc_layer_out_size(l);
    return PC_OK;
}

static pc_status add_setup(pc_exec *ex, int i) { return PC_OK; }

/* The shape for the blocked kernels. */
static fast_add_shape add_shape(const pc_exec *ex, const pc_layer *l, const pc_layer *lb) {
    return (fast_add_shape){.n = ex->batch, .c = l->c, .h = l->h, .w = l->w, .cb = lb->c,
                            .hb = lb->h, .wb = lb->w, .sh = l->sh, .sw = l->sw};
}

/* y = a + P(b) on plain tensors. */
static void add_plain(int n, const pc_layer *l, const pc_layer *lb, const float *a,
                      const float *b, float *y) {
    int64_t size = pc_layer_out_size(l);
    memcpy(y, a, sizeof(float) * n * size);
    for (int s = 0; s < n; s++)
        for (int c = 0; c < lb->c; c++)
            for (int h = 0; h < l->h; h++) {
                float *yr = y + s * size + ((int64_t)c * l->h + h) * l->w;
                const float *br = b + (((int64_t)s * lb->c + c) * lb->h + h * l->sh) * lb->w;
                for (int w = 0; w < l->w; w++) yr[w] += br[w * l->sw];
            }
}

/* db = P^T(dy) on plain tensors. */
static void add_plain_backward_b(int n, const pc_layer *l, const pc_layer *lb, const float *dy,
                                 float *db) {
    if (l->sh > 1) memset(db, 0, sizeof(float) * n * pc_layer_out_size(lb));
    int64_t size = pc_layer_out_size(l);
    for (int s = 0; s < n; s++)
        for (int c = 0; c < lb->c; c++)
            for (int h = 0; h < l->h; h++) {
                const float *yr = dy + s * size + ((int64_t)c * l->h + h) * l->w;
                float *br = db + (((int64_t)s * lb->c + c) * lb->h + h * l->sh) * lb->w;
                for (int w = 0; w < l->w; w++) br[w * l->sw] = yr[w];
            }
}

static void add_forward(pc_exec *ex, int i, int train, float *y) {
    const pc_layer *l = &ex->m->layers[i], *lb = &ex->m->layers[l->inputs[1]];
    const float *a = pc_exec_input_of(ex, i, 0), *b = pc_exec_input_of(ex, i, 1);
    if (ex->ls[i].blocked) {
        fast_add_shape as = add_shape(ex, l, lb);
        fast_addb_forward(&as, ex->block, a, b, y, l->act == PC_ACT_RELU);
    } else {
        add_plain(ex->batch, l, lb, a, b, y);
    }
}

/* ReLU in the blocked kernel's pass */
static int add_fuses_act(const pc_exec *ex, int i) {
    return ex->m->layers[i].act == PC_ACT_RELU && ex->ls[i].blocked;
}

static void add_backward(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw, float *db) {
    const pc_layer *l = &ex->m->layers[i], *lk = &ex->m->layers[l->inputs[k]];
    if (!dx) return;
    if (k == 0) {
        memcpy(dx, dy, sizeof(float) * pc_exec_out_floats(ex, l->inputs[0]));
    } else if (l->sh == 0) { /* broadcast: db = dy summed over the plane */
        fast_channel_sum(ex->batch, l->c, (int64_t)l->h * l->w,
                         ex->ls[i].blocked ? ex->block : 1, dy, dx);
    } else if (ex->ls[i].blocked) {
        fast_add_shape as = add_shape(ex, l, lk);
        fast_addb_backward_b(&as, ex->block, dy, dx);
    } else {
        add_plain_backward_b(ex->batch, l, lk, dy, dx);
    }
}

const pc_layer_ops pc_add_ops = {
    .name = "add", .n_inputs = 2, .layout = PC_OUT_AS_INPUT, .build = add_build,
    .setup = add_setup, .forward = add_forward, .fuses_act = add_fuses_act,
    .backward = add_backward,
};
