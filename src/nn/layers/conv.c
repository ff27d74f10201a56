/* [conv]: 2-D convolution with groups and dilation (weight (filters, in/groups, kh, kw),
 * PyTorch's layout), and [sepconv]: a depthwise convolution followed by a pointwise 1x1 one, two
 * conv layers from one section. oneDNN (direct or Winograd, fp32 or bf16, reading and
 * writing the channel-blocked layout) or the reference kernel on plain NCHW. */
#include <string.h>

#include "kernels/ref/ref.h"
#include "nn/layer.h"

/* The output shape, parameter counts and FLOPs of a conv layer reading `in`. */
static pc_status finish_conv(pc_build *b, pc_layer *l, const pc_layer *in) {
    if (in->c % l->groups || l->filters % l->groups)
        return pc_build_fail(b, "[conv] groups=%d must divide the %d input channels and the %d "
                             "filters", l->groups, in->c, l->filters);
    /* the dilated kernel's extent (dilation and size are at most 2^20: 64 bits) */
    int64_t kh = (int64_t)(l->kh - 1) * l->dilation + 1, kw = (int64_t)(l->kw - 1) * l->dilation + 1;
    int64_t eh = in->h + 2LL * l->ph - kh, ew = in->w + 2LL * l->pw - kw;
    if (eh < 0 || ew < 0)
        return pc_build_fail(b, "[%s] kernel %dx%d%s does not fit the %dx%d input",
                             pc_build_section(b), l->kh, l->kw,
                             l->dilation > 1 ? " (dilated)" : "", in->h, in->w);
    l->c = l->filters;
    l->h = (int)(eh / l->sh + 1);
    l->w = (int)(ew / l->sw + 1);
    /* in 64 bits, -1 on overflow (then rejected with the limits, see check_sizes) */
    l->weight_n = pc_size_mul(pc_size_mul(l->filters, in->c / l->groups), (int64_t)l->kh * l->kw);
    l->bias_n = l->bias ? l->filters : 0;
    l->flops = pc_size_mul(2 * l->weight_n, (int64_t)l->h * l->w);
    return PC_OK;
}

/* The keys shared by [conv] and [sepconv]. in_c > 0: a conv on in_c channels, whose
 * filters= may be left out with init=whiten (then two per patch value: 2 * in_c * size *
 * size). */
static pc_status read_conv_keys(pc_build *b, pc_layer *l, int in_c) {
    const char *init = in_c > 0 ? pc_build_value(b, "init") : NULL;
    int whiten_auto = init && strcmp(init, "whiten") == 0 && !pc_build_value(b, "filters");
    PC_TRY(pc_build_int(b, "filters", 0, 1, &l->filters));
    if (!whiten_auto && (l->filters == 0 || !pc_build_value(b, "filters")))
        return pc_build_fail(b, "[%s] needs filters=", pc_build_section(b));
    PC_TRY(pc_build_int_pair(b, "size", 3, 1, &l->kh, &l->kw));
    if (whiten_auto) l->filters = 2 * in_c * l->kh * l->kw;
    PC_TRY(pc_build_int_pair(b, "stride", 1, 1, &l->sh, &l->sw));
    PC_TRY(pc_build_int_pair(b, "pad", 0, 0, &l->ph, &l->pw));
    PC_TRY(pc_build_int(b, "bias", 1, 0, &l->bias));
    PC_TRY(pc_build_int(b, "dilation", 1, 1, &l->dilation));
    l->groups = 1;
    return PC_OK;
}

/* [sepconv]: l becomes the depthwise size x size convolution over the input channels, and
 * a pointwise 1x1 layer with the section's filters, bias and activation follows it. */
static pc_status build_sepconv(pc_build *b, pc_layer *l) {
    const pc_layer *in = pc_build_input(b, 0);
    pc_layer point;
    memset(&point, 0, sizeof point);
    PC_TRY(read_conv_keys(b, &point, 0));
    l->act = PC_ACT_NONE;
    l->filters = l->groups = in->c;
    l->kh = point.kh; l->kw = point.kw;
    l->sh = point.sh; l->sw = point.sw;
    l->ph = point.ph; l->pw = point.pw;
    l->dilation = point.dilation;
    l->bias = 0;
    PC_TRY(pc_build_name(b, l, ".depthwise"));
    PC_TRY(finish_conv(b, l, in));
    pc_layer *p = pc_build_push(b, &l);
    if (!p) return pc_fail_nomem();
    p->filters = point.filters;
    p->kh = p->kw = p->sh = p->sw = p->groups = p->dilation = 1;
    p->bias = point.bias;
    PC_TRY(pc_build_activation(b, p));
    PC_TRY(pc_build_name(b, p, ".pointwise"));
    PC_TRY(finish_conv(b, p, l));
    PC_TRY(pc_build_trainable(b, p));
    l->trainable = p->trainable;
    l->train_epochs = p->train_epochs;
    return PC_OK;
}

static pc_status conv_build(pc_build *b, pc_layer *l) {
    if (strcmp(pc_build_section(b), "sepconv") == 0) return build_sepconv(b, l);
    const pc_layer *in = pc_build_input(b, 0);
    PC_TRY(read_conv_keys(b, l, in->c));
    PC_TRY(pc_build_int(b, "groups", 1, 1, &l->groups));
    PC_TRY(finish_conv(b, l, in));
    PC_TRY(pc_build_init(b, l));
    return pc_build_trainable(b, l);
}

static void conv_init(pc_model *m, const pc_layer *l, uint64_t seed) {
    pc_init_weights(m, l, seed, (int64_t)l->kh * l->kw, (int64_t)(l->kh / 2) * l->kw + l->kw / 2);
}

static int conv_param_info(const pc_model *m, const pc_layer *l, pc_param_info *items) {
    const pc_layer *in = &m->layers[l->inputs[0]];
    int64_t shape[4] = {l->filters, in->c / l->groups, l->kh, l->kw};
    int k = 0;
    items[k++] = pc_param_tensor(l, "weight", 4, shape, l->weight_off, 0);
    if (l->bias_n) items[k++] = pc_param_tensor(l, "bias", 1, &l->bias_n, l->bias_off, 0);
    return k;
}

static pc_status conv_setup(pc_exec *ex, int i) {
    const pc_layer *l = &ex->m->layers[i], *in = &ex->m->layers[l->inputs[0]];
    layer_state *s = &ex->ls[i];
    s->conv = (pc_conv_shape){.n = ex->batch, .c = in->c, .h = in->h, .w = in->w,
                              .k = l->filters, .kh = l->kh, .kw = l->kw, .sh = l->sh,
                              .sw = l->sw, .ph = l->ph, .pw = l->pw, .groups = l->groups,
                              .dil_h = l->dilation, .dil_w = l->dilation};
    pc_conv_shape_finish(&s->conv);
#ifdef PARCNN_HAVE_DNNL
    if (ex->use_dnnl) {
        s->dconv = pc_dnnl_conv_create(&s->conv, l->bias, ex->bf16 ? PC_DNNL_BF16 : PC_DNNL_F32,
                                       ex->conv_algo,
                                       l->act == PC_ACT_RELU ? 1 : l->act == PC_ACT_RELU6 ? 6 : 0,
                                       pc_exec_input_blocked(ex, i, 0) ? ex->block : 0,
                                       s->blocked ? ex->block : 0);
        if (!s->dconv) return PC_ERR_INTERNAL; /* message set by the plan */
    }
#endif
    return PC_OK;
}

static void conv_forward(pc_exec *ex, int i, int train, float *y) {
    const pc_layer *l = &ex->m->layers[i];
    const float *x = pc_exec_input_of(ex, i, 0);
    const float *w = pc_layer_weight(ex->m, l), *b = pc_layer_bias(ex->m, l);
#ifdef PARCNN_HAVE_DNNL
    if (ex->use_dnnl) {
        pc_dnnl_conv_forward(ex->ls[i].dconv, x, w, b, y);
        return;
    }
#endif
    ref_conv2d_forward(&ex->ls[i].conv, x, w, b, y);
}

/* ReLU, and ReLU6 off the Winograd path, as oneDNN's post-op */
static int conv_fuses_act(const pc_exec *ex, int i) {
#ifdef PARCNN_HAVE_DNNL
    if (ex->ls[i].dconv) return pc_dnnl_conv_fused_act(ex->ls[i].dconv) != 0;
#endif
    return ex->m->layers[i].act == PC_ACT_RELU;
}

static void conv_backward(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw, float *db) {
    const float *x = pc_exec_input_of(ex, i, 0), *w = pc_layer_weight(ex->m, &ex->m->layers[i]);
#ifdef PARCNN_HAVE_DNNL
    if (ex->use_dnnl) {
        pc_dnnl_conv_backward(ex->ls[i].dconv, x, w, dy, dx, dw, db);
        return;
    }
#endif
    ref_conv2d_backward(&ex->ls[i].conv, x, w, dy, dx, dw, db);
}

const pc_layer_ops pc_conv_ops = {
    .name = "conv", .also = "sepconv", .n_inputs = 1, .flags = PC_OPS_WEIGHTED,
    .layout = PC_OUT_BLOCKED, .weight_role = PC_PARAM_WEIGHT, .bias_role = PC_PARAM_BIAS,
    .build = conv_build, .init = conv_init, .param_info = conv_param_info,
    .setup = conv_setup, .forward = conv_forward, .fuses_act = conv_fuses_act,
    .backward = conv_backward,
};
