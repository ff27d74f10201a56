/* [mul] from=a,b: y = a * b, element-wise (b of a's shape) or per channel (b of shape
 * (C, 1, 1), broadcast over a's plane: squeeze-and-excitation's x * sigmoid(fc(gap(x)))).
 * ONNX Mul. The vectorized kernels on plain or blocked tensors with the oneDNN kernel sets
 * (bitwise the reference), else the reference. */
#include "kernels/ref/ref.h"
#include "nn/layer.h"

static pc_status mul_build(pc_build *b, pc_layer *l) {
    const pc_layer *a = pc_build_input(b, 0), *f = pc_build_input(b, 1);
    if (f->c != a->c || !((f->h == a->h && f->w == a->w) || (f->h == 1 && f->w == 1)))
        return pc_build_fail(b, "[mul] inputs %dx%dx%d and %dx%dx%d: the second must have the "
                             "first's shape or be %dx1x1", a->c, a->h, a->w, f->c, f->h, f->w, a->c);
    l->flops = pc_layer_out_size(l);
    return PC_OK;
}

static pc_status mul_setup(pc_exec *ex, int i) { return PC_OK; }

/* hw of the first input and of the second (1 when broadcast) */
static void mul_planes(const pc_exec *ex, int i, int64_t *hw, int64_t *hwb) {
    const pc_layer *l = &ex->m->layers[i], *f = &ex->m->layers[l->inputs[1]];
    *hw = (int64_t)l->h * l->w;
    *hwb = (int64_t)f->h * f->w;
}

static void mul_forward(pc_exec *ex, int i, int train, float *y) {
    const pc_layer *l = &ex->m->layers[i];
    const float *a = pc_exec_input_of(ex, i, 0), *b = pc_exec_input_of(ex, i, 1);
    int64_t hw, hwb;
    mul_planes(ex, i, &hw, &hwb);
    if (ex->use_dnnl)
        fast_mul_forward(ex->batch, l->c, hw, hwb, ex->ls[i].blocked ? ex->block : 1, a, b, y);
    else
        ref_mul_forward(ex->batch, l->c, hw, hwb, a, b, y);
}

static void mul_backward(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw, float *db) {
    const pc_layer *l = &ex->m->layers[i];
    const float *a = pc_exec_input_of(ex, i, 0), *b = pc_exec_input_of(ex, i, 1);
    int64_t hw, hwb;
    mul_planes(ex, i, &hw, &hwb);
    if (!dx) return;
    float *da = k == 0 ? dx : NULL, *dbb = k == 1 ? dx : NULL;
    if (ex->use_dnnl)
        fast_mul_backward(ex->batch, l->c, hw, hwb, ex->ls[i].blocked ? ex->block : 1, a, b, dy,
                          da, dbb);
    else
        ref_mul_backward(ex->batch, l->c, hw, hwb, a, b, dy, da, dbb);
}

const pc_layer_ops pc_mul_ops = {
    .name = "mul", .n_inputs = 2, .layout = PC_OUT_AS_INPUT, .build = mul_build,
    .setup = mul_setup, .forward = mul_forward, .backward = mul_backward,
};
