/* [pad] top= bottom= left= right= value=: constant padding of the plane (ONNX Pad in
 * constant mode on H and W, PyTorch's F.pad / nn.ZeroPad2d); with a [conv] or pool of pad=0
 * after it, the asymmetric padding of TensorFlow's "same" on stride 2. Plain or blocked, as
 * its input: the vectorized copy with the oneDNN kernel sets, else the reference. */
#include "kernels/ref/ref.h"
#include "nn/layer.h"

static pc_status pad_build(pc_build *b, pc_layer *l) {
    PC_TRY(pc_build_int(b, "top", 0, 0, &l->ph));
    PC_TRY(pc_build_int(b, "bottom", 0, 0, &l->ph_end));
    PC_TRY(pc_build_int(b, "left", 0, 0, &l->pw));
    PC_TRY(pc_build_int(b, "right", 0, 0, &l->pw_end));
    PC_TRY(pc_build_float(b, "value", 0.0f, -3.4e38f, 3.4e38f, &l->alpha));
    l->h += l->ph + l->ph_end; /* each at most 2^20: within int, checked against the limits */
    l->w += l->pw + l->pw_end;
    return PC_OK;
}

static pc_status pad_setup(pc_exec *ex, int i) { return PC_OK; }

static pc_pad_shape pad_shape(const pc_exec *ex, const pc_layer *l) {
    const pc_layer *in = &ex->m->layers[l->inputs[0]];
    return (pc_pad_shape){.n = ex->batch, .c = in->c, .h = in->h, .w = in->w, .top = l->ph,
                          .bottom = l->ph_end, .left = l->pw, .right = l->pw_end};
}

static void pad_forward(pc_exec *ex, int i, int train, float *y) {
    const pc_layer *l = &ex->m->layers[i];
    const pc_pad_shape s = pad_shape(ex, l);
    const float *x = pc_exec_input_of(ex, i, 0);
    if (ex->use_dnnl) fast_pad_forward(&s, ex->ls[i].blocked ? ex->block : 1, l->alpha, x, y);
    else ref_pad_forward(&s, l->alpha, x, y);
}

static void pad_backward(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw, float *db) {
    const pc_pad_shape s = pad_shape(ex, &ex->m->layers[i]);
    if (!dx) return;
    if (ex->use_dnnl) fast_pad_backward(&s, ex->ls[i].blocked ? ex->block : 1, dy, dx);
    else ref_pad_backward(&s, dy, dx);
}

const pc_layer_ops pc_pad_ops = {
    .name = "pad", .n_inputs = 1, .layout = PC_OUT_AS_INPUT, .build = pad_build,
    .setup = pad_setup, .forward = pad_forward, .backward = pad_backward,
};
