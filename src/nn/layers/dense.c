/* [dense]: a fully connected layer on the flattened (NCHW order) input, weight (units,
 * inputs), with an output multiplier scale= (airbench's 1/9 on the logits). oneDNN (fp32 or
 * bf16) or the reference kernel; a blocked input is made plain first. */
#include "kernels/ref/ref.h"
#include "nn/layer.h"

static pc_status dense_build(pc_build *b, pc_layer *l) {
    const pc_layer *in = pc_build_input(b, 0);
    PC_TRY(pc_build_int(b, "units", 0, 1, &l->filters));
    if (!l->filters) return pc_build_fail(b, "[dense] needs units=");
    PC_TRY(pc_build_int(b, "bias", 1, 0, &l->bias));
    l->c = l->filters;
    l->h = l->w = 1;
    l->weight_n = (int64_t)l->filters * pc_layer_out_size(in);
    l->bias_n = l->bias ? l->filters : 0;
    l->flops = 2 * l->weight_n;
    PC_TRY(pc_build_init(b, l));
    PC_TRY(pc_build_trainable(b, l));
    return pc_build_float(b, "scale", 1.0f, 1e-6f, 1e6f, &l->scale);
}

static void dense_init(pc_model *m, const pc_layer *l, uint64_t seed) {
    pc_init_weights(m, l, seed, 1, 0);
}

static int dense_param_info(const pc_model *m, const pc_layer *l, pc_param_info *items) {
    int64_t shape[2] = {l->filters, pc_layer_out_size(&m->layers[l->inputs[0]])};
    int k = 0;
    items[k++] = pc_param_tensor(l, "weight", 2, shape, l->weight_off, 0);
    if (l->bias_n) items[k++] = pc_param_tensor(l, "bias", 1, &l->bias_n, l->bias_off, 0);
    return k;
}

static pc_status dense_setup(pc_exec *ex, int i) {
    const pc_layer *l = &ex->m->layers[i], *in = &ex->m->layers[l->inputs[0]];
    layer_state *s = &ex->ls[i];
    s->dense = (pc_dense_shape){.n = ex->batch, .in = (int)pc_layer_out_size(in), .out = l->filters};
    if (pc_exec_input_blocked(ex, i, 0)) {
        s->plain_in = pc_alloc(sizeof(float) * ex->batch * pc_layer_out_size(in));
        if (!s->plain_in) return PC_ERR_NOMEM;
    }
#ifdef PARCNN_HAVE_DNNL
    if (ex->use_dnnl) {
        s->ddense = pc_dnnl_dense_create(&s->dense, l->bias, ex->bf16 ? PC_DNNL_BF16 : PC_DNNL_F32,
                                         l->act == PC_ACT_RELU);
        if (!s->ddense) return PC_ERR_INTERNAL; /* message set by the plan */
    }
#endif
    return PC_OK;
}

/* scale=, applied before the activation (positive, so it commutes with a ReLU fused into
 * the kernel). */
static void scale_array(int64_t n, float scale, float *v) {
    for (int64_t k = 0; k < n; k++) v[k] *= scale;
}

static void dense_forward(pc_exec *ex, int i, int train, float *y) {
    const pc_layer *l = &ex->m->layers[i], *in = &ex->m->layers[l->inputs[0]];
    layer_state *s = &ex->ls[i];
    const float *x = pc_exec_input_of(ex, i, 0);
    const float *w = pc_layer_weight(ex->m, l), *b = pc_layer_bias(ex->m, l);
    if (s->plain_in) {
        fast_to_plain(ex->batch, in->c, (int64_t)in->h * in->w, ex->block, x, s->plain_in);
        x = s->plain_in;
    }
#ifdef PARCNN_HAVE_DNNL
    if (ex->use_dnnl) pc_dnnl_dense_forward(s->ddense, x, w, b, y);
    else
#endif
        ref_dense_forward(&s->dense, x, w, b, y);
    if (l->scale != 1.0f) scale_array(pc_exec_out_floats(ex, i), l->scale, y);
}

/* ReLU as oneDNN's post-op */
static int dense_fuses_act(const pc_exec *ex, int i) { return ex->m->layers[i].act == PC_ACT_RELU; }

static void dense_backward(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw, float *db) {
    const pc_layer *l = &ex->m->layers[i], *in = &ex->m->layers[l->inputs[0]];
    layer_state *s = &ex->ls[i];
    const float *w = pc_layer_weight(ex->m, l);
    if (l->scale != 1.0f) scale_array(pc_exec_out_floats(ex, i), l->scale, dy);
    /* after a blocked tensor: x is the forward's plain copy, dx is blocked afterwards */
    const float *x = s->plain_in ? s->plain_in : pc_exec_input_of(ex, i, 0);
    float *dxp = s->plain_in && dx ? ex->scratch_plain : dx;
#ifdef PARCNN_HAVE_DNNL
    if (ex->use_dnnl) pc_dnnl_dense_backward(s->ddense, x, w, dy, dxp, dw, db);
    else
#endif
        ref_dense_backward(&s->dense, x, w, dy, dxp, dw, db);
    if (dxp != dx) fast_to_blocked(ex->batch, in->c, (int64_t)in->h * in->w, ex->block, dxp, dx);
}

const pc_layer_ops pc_dense_ops = {
    .name = "dense", .n_inputs = 1, .flags = PC_OPS_WEIGHTED, .layout = PC_OUT_PLAIN,
    .weight_role = PC_PARAM_WEIGHT, .bias_role = PC_PARAM_BIAS,
    .build = dense_build, .init = dense_init, .param_info = dense_param_info,
    .setup = dense_setup, .forward = dense_forward, .fuses_act = dense_fuses_act,
    .backward = dense_backward,
};
