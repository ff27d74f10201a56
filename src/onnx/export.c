/* parcnn model -> ONNX graph (opset 14, IR version 8). One layer becomes one or a few
 * nodes; each layer's output tensor is named after the layer, the graph's input is
 * "input" (N, C, H, W) and its output "logits" (N, classes). */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "onnx.pb-c.h"
#include "onnx/onnx.h"

/* The graph under construction. Every message and string is malloc'ed, so
 * protobuf_c_message_free_unpacked frees the whole model at the end. */
typedef struct {
    Onnx__GraphProto *g;
    int oom;
    char *rank2;         /* per layer: its ONNX output is (N, features), not (N, C, H, W) */
    char **out_name;     /* per layer: its output tensor's name */
    const pc_layer *layers0; /* the model's layers (a layer's index is l - layers0) */
} builder;

static void *b_calloc(builder *b, size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) b->oom = 1;
    return p;
}

static char *b_strdup(builder *b, const char *s) {
    char *p = strdup(s);
    if (!p) b->oom = 1;
    return p;
}

/* Append p to the array *arr of *n pointers. */
static void push_ptr(builder *b, void ***arr, size_t *n, void *p) {
    if (!p) return;
    void **grown = realloc(*arr, sizeof(void *) * (*n + 1));
    if (!grown) {
        b->oom = 1;
        return;
    }
    grown[(*n)++] = p;
    *arr = grown;
}

static Onnx__NodeProto *add_node(builder *b, const char *op, const char *name,
                                 const char *const *inputs, int n_in, const char *output) {
    Onnx__NodeProto *nd = b_calloc(b, 1, sizeof *nd);
    if (!nd) return NULL;
    onnx__node_proto__init(nd);
    nd->op_type = b_strdup(b, op);
    nd->name = b_strdup(b, name);
    nd->input = b_calloc(b, n_in, sizeof(char *));
    nd->output = b_calloc(b, 1, sizeof(char *));
    if (nd->input)
        for (int i = 0; i < n_in; i++) nd->input[nd->n_input++] = b_strdup(b, inputs[i]);
    if (nd->output) nd->output[nd->n_output++] = b_strdup(b, output);
    push_ptr(b, (void ***)&b->g->node, &b->g->n_node, nd);
    return nd;
}

static Onnx__AttributeProto *new_attr(builder *b, Onnx__NodeProto *nd, const char *name,
                                      Onnx__AttributeProto__AttributeType type) {
    if (!nd) return NULL;
    Onnx__AttributeProto *a = b_calloc(b, 1, sizeof *a);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = b_strdup(b, name);
    a->has_type = 1;
    a->type = type;
    push_ptr(b, (void ***)&nd->attribute, &nd->n_attribute, a);
    return a;
}

static void attr_int(builder *b, Onnx__NodeProto *nd, const char *name, int64_t v) {
    Onnx__AttributeProto *a = new_attr(b, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->has_i = 1, a->i = v;
}

static void attr_float(builder *b, Onnx__NodeProto *nd, const char *name, float v) {
    Onnx__AttributeProto *a = new_attr(b, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->has_f = 1, a->f = v;
}

static void attr_ints(builder *b, Onnx__NodeProto *nd, const char *name, const int64_t *v, int n) {
    Onnx__AttributeProto *a = new_attr(b, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    if (!a || !(a->ints = b_calloc(b, n, sizeof(int64_t)))) return;
    memcpy(a->ints, v, sizeof(int64_t) * n);
    a->n_ints = n;
}

/* An initializer (a copy of data: elem_size bytes per element, little-endian). */
static void add_initializer(builder *b, const char *name, int32_t type, const int64_t *dims,
                            int ndim, const void *data, size_t elem_size) {
    Onnx__TensorProto *t = b_calloc(b, 1, sizeof *t);
    if (!t) return;
    onnx__tensor_proto__init(t);
    t->name = b_strdup(b, name);
    t->has_data_type = 1;
    t->data_type = type;
    size_t n = 1;
    t->dims = b_calloc(b, ndim, sizeof(int64_t));
    for (int d = 0; t->dims && d < ndim; d++) n *= (size_t)(t->dims[t->n_dims++] = dims[d]);
    t->has_raw_data = 1;
    t->raw_data.len = n * elem_size;
    if ((t->raw_data.data = b_calloc(b, n, elem_size))) memcpy(t->raw_data.data, data, n * elem_size);
    push_ptr(b, (void ***)&b->g->initializer, &b->g->n_initializer, t);
}

static void add_f32(builder *b, const char *name, const int64_t *dims, int ndim, const float *v) {
    add_initializer(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, dims, ndim, v, sizeof(float));
}

static void add_i64(builder *b, const char *name, int n, const int64_t *v) {
    int64_t dims[1] = {n};
    add_initializer(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, dims, 1, v, sizeof(int64_t));
}

static void add_scalar(builder *b, const char *name, float v) {
    add_f32(b, name, NULL, 0, &v);
}

/* name + suffix in a static-lifetime-free buffer of the caller. */
static const char *join(char *buf, size_t size, const char *a, const char *suffix) {
    snprintf(buf, size, "%s%s", a, suffix);
    return buf;
}

/* GELU as PyTorch exports it below opset 20: x * (1 + erf(x / sqrt(2))) * 0.5. */
static void emit_gelu(builder *b, const char *base, const char *x, const char *out) {
    char n[5][128], c[3][128];
    add_scalar(b, join(c[0], 128, base, "/gelu.sqrt2"), (float)M_SQRT2);
    add_scalar(b, join(c[1], 128, base, "/gelu.one"), 1.0f);
    add_scalar(b, join(c[2], 128, base, "/gelu.half"), 0.5f);
    const char *div_in[2] = {x, c[0]};
    add_node(b, "Div", join(n[0], 128, base, "/gelu/Div"), div_in, 2, n[0]);
    const char *erf_in[1] = {n[0]};
    add_node(b, "Erf", join(n[1], 128, base, "/gelu/Erf"), erf_in, 1, n[1]);
    const char *add_in[2] = {n[1], c[1]};
    add_node(b, "Add", join(n[2], 128, base, "/gelu/Add"), add_in, 2, n[2]);
    const char *mul_in[2] = {x, n[2]};
    add_node(b, "Mul", join(n[3], 128, base, "/gelu/Mul"), mul_in, 2, n[3]);
    const char *half_in[2] = {n[3], c[2]};
    add_node(b, "Mul", join(n[4], 128, base, "/gelu/Mul_1"), half_in, 2, out);
}

/* The layer's own op writes `pre` when an activation follows, else `out`. */
static void emit_activation(builder *b, const pc_layer *l, const char *pre, const char *out) {
    char name[128];
    if (l->act == PC_ACT_RELU) {
        const char *in[1] = {pre};
        add_node(b, "Relu", join(name, sizeof name, l->name, "/Relu"), in, 1, out);
    } else if (l->act == PC_ACT_GELU) {
        emit_gelu(b, l->name, pre, out);
    } else if (l->act == PC_ACT_RELU6) {
        char lo[128], hi[128];
        add_scalar(b, join(lo, sizeof lo, l->name, "/relu6.min"), 0.0f);
        add_scalar(b, join(hi, sizeof hi, l->name, "/relu6.max"), 6.0f);
        const char *in[3] = {pre, lo, hi};
        add_node(b, "Clip", join(name, sizeof name, l->name, "/Clip"), in, 3, out);
    }
}

static void param_dims(const pc_model *m, const char *name, int64_t *dims, int *ndim) {
    int n = pc_model_param_info(m, NULL, 0);
    pc_param_info *info = calloc(n, sizeof *info);
    *ndim = 0;
    if (!info) return;
    pc_model_param_info(m, info, n);
    for (int i = 0; i < n; i++)
        if (strcmp(info[i].name, name) == 0) {
            *ndim = info[i].ndim;
            memcpy(dims, info[i].shape, sizeof info[i].shape);
        }
    free(info);
}

/* The layer's parameter `suffix` ("weight", "bias", ...) as an initializer; its name. */
static const char *add_param(builder *b, const pc_model *m, const pc_layer *l, const char *suffix,
                             const float *data, char *name, size_t size) {
    snprintf(name, size, "%s.%s", l->name, suffix);
    int64_t dims[4];
    int ndim;
    param_dims(m, name, dims, &ndim);
    add_f32(b, name, dims, ndim, data);
    return name;
}

static void emit_conv(builder *b, const pc_model *m, const pc_layer *l, const char *x,
                      const char *out) {
    char w[128], bias[128], name[128];
    const char *in[3] = {x, add_param(b, m, l, "weight", m->params + l->weight_off, w, sizeof w),
                         NULL};
    if (l->bias_n) in[2] = add_param(b, m, l, "bias", m->params + l->bias_off, bias, sizeof bias);
    Onnx__NodeProto *nd = add_node(b, "Conv", join(name, sizeof name, l->name, "/Conv"), in,
                                   l->bias_n ? 3 : 2, out);
    int64_t k[2] = {l->kh, l->kw}, s[2] = {l->sh, l->sw}, d[2] = {l->dilation, l->dilation};
    int64_t p[4] = {l->ph, l->pw, l->ph, l->pw};
    attr_ints(b, nd, "kernel_shape", k, 2);
    attr_ints(b, nd, "strides", s, 2);
    attr_ints(b, nd, "pads", p, 4);
    attr_ints(b, nd, "dilations", d, 2);
    attr_int(b, nd, "group", l->groups);
}

static void emit_dense(builder *b, const pc_model *m, const pc_layer *l, const char *x,
                       int x_rank2, const char *out) {
    char w[128], bias[128], name[128], flat[128], gemm[128], scale[128];
    if (!x_rank2) {
        const char *fin[1] = {x};
        Onnx__NodeProto *nd = add_node(b, "Flatten", join(flat, sizeof flat, l->name, "/Flatten"),
                                       fin, 1, flat);
        attr_int(b, nd, "axis", 1);
        x = flat;
    }
    const char *in[3] = {x, add_param(b, m, l, "weight", m->params + l->weight_off, w, sizeof w),
                         NULL};
    if (l->bias_n) in[2] = add_param(b, m, l, "bias", m->params + l->bias_off, bias, sizeof bias);
    int scaled = l->scale != 1.0f;
    join(gemm, sizeof gemm, l->name, "/Gemm");
    Onnx__NodeProto *nd = add_node(b, "Gemm", gemm, in, l->bias_n ? 3 : 2, scaled ? gemm : out);
    attr_int(b, nd, "transB", 1);
    if (scaled) { /* the output times `scale`, as parcnn computes it: (W x + b) * scale */
        add_scalar(b, join(scale, sizeof scale, l->name, ".scale"), l->scale);
        const char *min[2] = {gemm, scale};
        add_node(b, "Mul", join(name, sizeof name, l->name, "/Mul"), min, 2, out);
    }
}

static void emit_bn(builder *b, const pc_model *m, const pc_layer *l, const char *x,
                    const char *out) {
    char g[128], beta[128], mean[128], var[128], name[128];
    const float *run = m->buffers + l->buffer_off;
    const char *in[5] = {x, add_param(b, m, l, "weight", m->params + l->weight_off, g, sizeof g),
                         add_param(b, m, l, "bias", m->params + l->bias_off, beta, sizeof beta),
                         add_param(b, m, l, "running_mean", run, mean, sizeof mean),
                         add_param(b, m, l, "running_var", run + l->c, var, sizeof var)};
    Onnx__NodeProto *nd = add_node(b, "BatchNormalization",
                                   join(name, sizeof name, l->name, "/BatchNormalization"), in, 5, out);
    attr_float(b, nd, "epsilon", l->eps);
    attr_float(b, nd, "momentum", 1.0f - l->momentum); /* ONNX: running = m running + (1-m) batch */
}

static void emit_pool(builder *b, const pc_layer *l, const char *x, const char *out) {
    char name[128];
    const char *op = l->kind == PC_L_MAXPOOL ? "MaxPool" : "AveragePool";
    const char *in[1] = {x};
    snprintf(name, sizeof name, "%s/%s", l->name, op);
    Onnx__NodeProto *nd = add_node(b, op, name, in, 1, out);
    int64_t k[2] = {l->kh, l->kw}, s[2] = {l->sh, l->sw};
    int64_t p[4] = {l->ph, l->pw, l->ph, l->pw};
    attr_ints(b, nd, "kernel_shape", k, 2);
    attr_ints(b, nd, "strides", s, 2);
    attr_ints(b, nd, "pads", p, 4);
    if (l->ceil_mode) attr_int(b, nd, "ceil_mode", 1);
    if (l->kind == PC_L_AVGPOOL) attr_int(b, nd, "count_include_pad", l->count_pad);
}

/* a + b; a smaller second input (ResNet option A) is subsampled with a strided Slice and
 * zero-padded in channels with Pad, as parcnn's [add] does. */
static void emit_add(builder *b, const pc_model *m, const pc_layer *l, const char *a,
                     const char *x2, const char *out) {
    const pc_layer *lb = &m->layers[l->inputs[1]];
    char name[128], sl[128], pad[128], c[4][128];
    if (l->sh > 1) {
        int64_t starts[2] = {0, 0}, ends[2] = {INT64_MAX, INT64_MAX}, axes[2] = {2, 3},
                steps[2] = {l->sh, l->sw};
        add_i64(b, join(c[0], 128, l->name, "/shortcut.starts"), 2, starts);
        add_i64(b, join(c[1], 128, l->name, "/shortcut.ends"), 2, ends);
        add_i64(b, join(c[2], 128, l->name, "/shortcut.axes"), 2, axes);
        add_i64(b, join(c[3], 128, l->name, "/shortcut.steps"), 2, steps);
        const char *in[5] = {x2, c[0], c[1], c[2], c[3]};
        add_node(b, "Slice", join(sl, sizeof sl, l->name, "/Slice"), in, 5, sl);
        x2 = sl;
    }
    if (lb->c < l->c) {
        int64_t pads[8] = {0, 0, 0, 0, 0, l->c - lb->c, 0, 0};
        add_i64(b, join(c[0], 128, l->name, "/shortcut.pads"), 8, pads);
        const char *in[2] = {x2, c[0]};
        add_node(b, "Pad", join(pad, sizeof pad, l->name, "/Pad"), in, 2, pad);
        x2 = pad;
    }
    const char *in[2] = {a, x2};
    add_node(b, "Add", join(name, sizeof name, l->name, "/Add"), in, 2, out);
}

/* [silu]: x * Sigmoid(x), as PyTorch exports nn.SiLU; [clip]/[relu6]: Clip with its bounds
 * as inputs (absent for an unbounded side). */
static void emit_silu(builder *b, const pc_layer *l, const char *x, const char *out) {
    char name[128], sig[128];
    const char *in[2] = {x, NULL};
    add_node(b, "Sigmoid", join(sig, sizeof sig, l->name, "/Sigmoid"), in, 1, sig);
    in[1] = sig;
    add_node(b, "Mul", join(name, sizeof name, l->name, "/Mul"), in, 2, out);
}

static void emit_clip(builder *b, const pc_layer *l, const char *x, const char *out) {
    char name[128], lo[128] = "", hi[128] = "";
    if (l->alpha > -FLT_MAX) add_scalar(b, join(lo, sizeof lo, l->name, ".min"), l->alpha);
    if (l->beta < FLT_MAX) add_scalar(b, join(hi, sizeof hi, l->name, ".max"), l->beta);
    const char *in[3] = {x, lo, hi};
    add_node(b, "Clip", join(name, sizeof name, l->name, "/Clip"), in, *hi ? 3 : 2, out);
}

/* Input k of layer l as a 4-D tensor: a flat (N, C) one becomes (N, C, 1, 1). */
static const char *as_4d(builder *b, const pc_layer *l, int k, char *buf, size_t size) {
    const char *x = b->out_name[l->inputs[k]];
    if (!b->rank2[l->inputs[k]]) return x;
    char axes[128], name[128];
    int64_t a[2] = {2, 3};
    snprintf(axes, sizeof axes, "%s/unsqueeze%d.axes", l->name, k);
    add_i64(b, axes, 2, a);
    snprintf(buf, size, "%s/Unsqueeze_%d", l->name, k);
    const char *in[2] = {x, axes};
    add_node(b, "Unsqueeze", join(name, sizeof name, buf, ""), in, 2, buf);
    return buf;
}

/* [mul]: Mul, whose broadcasting does the (C, 1, 1) factor; [concat]: Concat on axis 1. When
 * a 4-D and a flat input meet, the flat one is unsqueezed. */
static void emit_mul_concat(builder *b, const pc_layer *l, const char *out) {
    char bufs[PC_MAX_INPUTS][128], name[128];
    const char *in[PC_MAX_INPUTS];
    for (int k = 0; k < l->n_inputs; k++)
        in[k] = b->rank2[l - b->layers0] ? b->out_name[l->inputs[k]]
                                         : as_4d(b, l, k, bufs[k], sizeof bufs[k]);
    const char *op = l->kind == PC_L_MUL ? "Mul" : "Concat";
    snprintf(name, sizeof name, "%s/%s", l->name, op);
    Onnx__NodeProto *nd = add_node(b, op, name, in, l->n_inputs, out);
    if (l->kind == PC_L_CONCAT) attr_int(b, nd, "axis", 1);
}

/* [pad]: Pad (constant mode) of H and W by top/left (ph, pw) and bottom/right (ph_end,
 * pw_end) with the value alpha. */
static void emit_pad(builder *b, const pc_layer *l, const char *x, const char *out) {
    char name[128], pads[128], value[128];
    int64_t p[8] = {0, 0, l->ph, l->pw, 0, 0, l->ph_end, l->pw_end};
    add_i64(b, join(pads, sizeof pads, l->name, ".pads"), 8, p);
    add_scalar(b, join(value, sizeof value, l->name, ".value"), l->alpha);
    const char *in[3] = {x, pads, value};
    add_node(b, "Pad", join(name, sizeof name, l->name, "/Pad"), in, 3, out);
}

static void emit_simple(builder *b, const pc_layer *l, const char *op, const char *x,
                        const char *out) {
    char name[128];
    const char *in[2] = {x, NULL};
    int n_in = 1;
    char ratio[128];
    if (l->kind == PC_L_DROPOUT) {
        add_scalar(b, join(ratio, sizeof ratio, l->name, ".ratio"), l->rate);
        in[n_in++] = ratio;
    }
    snprintf(name, sizeof name, "%s/%s", l->name, op);
    Onnx__NodeProto *nd = add_node(b, op, name, in, n_in, out);
    if (l->kind == PC_L_FLATTEN) attr_int(b, nd, "axis", 1);
    if (l->kind == PC_L_HARDSIGMOID) {
        attr_float(b, nd, "alpha", l->alpha);
        attr_float(b, nd, "beta", l->beta);
    }
}

/* Layer i's nodes, reading its inputs' tensors and writing out_name[i]. */
static pc_status emit_layer(builder *b, const pc_model *m, int i) {
    const pc_layer *l = &m->layers[i];
    const char *x = b->out_name[l->inputs[0]];
    int x_rank2 = b->rank2[l->inputs[0]];
    char pre[128];
    const char *out = b->out_name[i];
    const char *dst = l->act ? join(pre, sizeof pre, l->name, "/pre_act") : out;
    if (x_rank2 && (l->kind == PC_L_CONV || l->kind == PC_L_MAXPOOL ||
                    l->kind == PC_L_AVGPOOL || l->kind == PC_L_GAP))
        return pc_fail(PC_ERR_USAGE, "layer %s (%s): spatial layers after a flatten or dense "
                       "layer cannot be exported", l->name, pc_layer_kind_name(l->kind));
    switch (l->kind) {
    case PC_L_CONV: emit_conv(b, m, l, x, dst); break;
    case PC_L_DENSE: emit_dense(b, m, l, x, x_rank2, dst); break;
    case PC_L_BN: emit_bn(b, m, l, x, dst); break;
    case PC_L_MAXPOOL:
    case PC_L_AVGPOOL: emit_pool(b, l, x, dst); break;
    case PC_L_GAP: emit_simple(b, l, "GlobalAveragePool", x, dst); break;
    case PC_L_FLATTEN: emit_simple(b, l, x_rank2 ? "Identity" : "Flatten", x, dst); break;
    case PC_L_RELU: { /* a ReLU layer is its activation alone */
        const char *in[1] = {x};
        add_node(b, "Relu", join(pre, sizeof pre, l->name, "/Relu"), in, 1, out);
        return PC_OK;
    }
    case PC_L_DROPOUT: emit_simple(b, l, "Dropout", x, dst); break;
    case PC_L_HARDSWISH: emit_simple(b, l, "HardSwish", x, dst); break;
    case PC_L_HARDSIGMOID: emit_simple(b, l, "HardSigmoid", x, dst); break;
    case PC_L_SIGMOID: emit_simple(b, l, "Sigmoid", x, dst); break;
    case PC_L_SILU: emit_silu(b, l, x, dst); break;
    case PC_L_CLIP: emit_clip(b, l, x, dst); break;
    case PC_L_MUL:
    case PC_L_CONCAT: emit_mul_concat(b, l, dst); break;
    case PC_L_PAD: emit_pad(b, l, x, dst); break;
    case PC_L_ADD:
        if (b->rank2[l->inputs[1]] != x_rank2)
            return pc_fail(PC_ERR_USAGE, "layer %s: add of a flat and a spatial tensor cannot be "
                           "exported", l->name);
        emit_add(b, m, l, x, b->out_name[l->inputs[1]], dst);
        break;
    default: return pc_fail(PC_ERR_USAGE, "layer %s: kind %s cannot be exported", l->name,
                            pc_layer_kind_name(l->kind));
    }
    emit_activation(b, l, dst, out);
    return PC_OK;
}

/* A float tensor value (N, dims...) with a symbolic batch dimension "N". */
static Onnx__ValueInfoProto *value_info(builder *b, const char *name, const int64_t *dims, int n) {
    Onnx__ValueInfoProto *v = b_calloc(b, 1, sizeof *v);
    Onnx__TypeProto *tp = b_calloc(b, 1, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = b_calloc(b, 1, sizeof *tt);
    Onnx__TensorShapeProto *sh = b_calloc(b, 1, sizeof *sh);
    if (!v || !tp || !tt || !sh) {
        free(v), free(tp), free(tt), free(sh);
        return NULL;
    }
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    v->name = b_strdup(b, name);
    v->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    for (int d = 0; d <= n; d++) {
        Onnx__TensorShapeProto__Dimension *dim = b_calloc(b, 1, sizeof *dim);
        if (!dim) break;
        onnx__tensor_shape_proto__dimension__init(dim);
        if (d == 0) {
            dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dim->dim_param = b_strdup(b, "N");
        } else {
            dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dim->dim_value = dims[d - 1];
        }
        push_ptr(b, (void ***)&sh->dim, &sh->n_dim, dim);
    }
    return v;
}

static void add_meta(builder *b, Onnx__ModelProto *mp, const char *key, const char *value) {
    Onnx__StringStringEntryProto *e = b_calloc(b, 1, sizeof *e);
    if (!e) return;
    onnx__string_string_entry_proto__init(e);
    e->key = b_strdup(b, key);
    e->value = b_strdup(b, value ? value : "");
    push_ptr(b, (void ***)&mp->metadata_props, &mp->n_metadata_props, e);
}

/* What the graph needs around it: the normalization the input had, the class names. */
static void add_metadata(builder *b, Onnx__ModelProto *mp, const pc_model *m,
                         const pc_model_meta *meta) {
    cJSON *names = cJSON_CreateArray();
    for (int k = 0; k < meta->classes; k++)
        cJSON_AddItemToArray(names, cJSON_CreateString(meta->class_names[k]));
    char *classes = cJSON_PrintUnformatted(names);
    cJSON_Delete(names);
    char *mean = pc_json_floats(meta->mean, meta->c), *std = pc_json_floats(meta->std, meta->c);
    char shape[64];
    snprintf(shape, sizeof shape, "%d,%d,%d", meta->c, meta->h, meta->w);
    add_meta(b, mp, "model_name", m->name);
    add_meta(b, mp, "input_shape", shape);
    add_meta(b, mp, "classes", classes);
    add_meta(b, mp, "mean", mean);
    add_meta(b, mp, "std", std);
    add_meta(b, mp, "normalization", "input = (pixel / 255 - mean[c]) / std[c], pixels in "
             "[0, 255], channels RGB (or gray); the graph's input is that normalized tensor");
    add_meta(b, mp, "output", "logits (softmax gives the class probabilities)");
    free(classes), free(mean), free(std);
}

static pc_status build_graph(builder *b, const pc_model *m, const pc_model_meta *meta) {
    int last = m->n_layers - 1;
    b->layers0 = m->layers;
    for (int i = 1; i < m->n_layers; i++) { /* flat (N, features) outputs: see rank2 */
        const pc_layer *l = &m->layers[i];
        int flat = b->rank2[l->inputs[0]];
        for (int k = 1; k < l->n_inputs && l->kind == PC_L_CONCAT; k++)
            flat = flat && b->rank2[l->inputs[k]];
        b->rank2[i] = (char)(flat || l->kind == PC_L_DENSE || l->kind == PC_L_FLATTEN);
    }
    int last_rank2 = b->rank2[last];
    for (int i = 0; i < m->n_layers; i++) /* the last layer writes "logits" if it is (N, K) */
        b->out_name[i] = b_strdup(b, i == 0 ? "input" : i == last && last_rank2 ? "logits"
                                                                             : m->layers[i].name);
    if (b->oom) return pc_fail_nomem();
    for (int i = 1; i < m->n_layers && !b->oom; i++) PC_TRY(emit_layer(b, m, i));
    if (!b->rank2[last]) { /* (N, K, 1, 1) -> (N, K) */
        const char *in[1] = {b->out_name[last]};
        Onnx__NodeProto *nd = add_node(b, "Flatten", "logits/Flatten", in, 1, "logits");
        attr_int(b, nd, "axis", 1);
    }
    int64_t in_dims[3] = {meta->c, meta->h, meta->w}, out_dims[1] = {m->classes};
    push_ptr(b, (void ***)&b->g->input, &b->g->n_input, value_info(b, "input", in_dims, 3));
    push_ptr(b, (void ***)&b->g->output, &b->g->n_output, value_info(b, "logits", out_dims, 1));
    return b->oom ? pc_fail_nomem() : PC_OK;
}

static Onnx__ModelProto *new_model(builder *b) {
    Onnx__ModelProto *mp = b_calloc(b, 1, sizeof *mp);
    Onnx__OperatorSetIdProto *op = b_calloc(b, 1, sizeof *op);
    Onnx__GraphProto *g = b_calloc(b, 1, sizeof *g);
    if (!mp || !op || !g) {
        free(mp), free(op), free(g);
        return NULL;
    }
    onnx__model_proto__init(mp);
    onnx__operator_set_id_proto__init(op);
    onnx__graph_proto__init(g);
    mp->has_ir_version = 1;
    mp->ir_version = PC_ONNX_IR_VERSION;
    mp->producer_name = b_strdup(b, "parcnn");
    mp->producer_version = b_strdup(b, "1");
    op->domain = b_strdup(b, "");
    op->has_version = 1;
    op->version = PC_ONNX_OPSET;
    push_ptr(b, (void ***)&mp->opset_import, &mp->n_opset_import, op);
    mp->graph = g;
    b->g = g;
    return mp;
}

/* Write the packed bytes to path via a temporary file and a rename. */
static pc_status write_atomically(const char *path, const uint8_t *bytes, size_t n) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return pc_fail(PC_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    int ok = fwrite(bytes, 1, n, f) == n;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        pc_status st = pc_fail(PC_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        remove(tmp);
        return st;
    }
    return PC_OK;
}

pc_status pc_onnx_export(const char *path, const pc_model *m, const pc_model_meta *meta) {
    builder b = {0};
    Onnx__ModelProto *mp = new_model(&b);
    b.rank2 = calloc(m->n_layers, 1);
    b.out_name = calloc(m->n_layers, sizeof(char *));
    pc_status st = PC_OK;
    if (!mp || !b.rank2 || !b.out_name) st = pc_fail_nomem();
    if (st == PC_OK) {
        mp->graph->name = b_strdup(&b, m->name);
        st = build_graph(&b, m, meta);
    }
    if (st == PC_OK) add_metadata(&b, mp, m, meta);
    if (st == PC_OK && b.oom) st = pc_fail_nomem();
    uint8_t *bytes = NULL;
    if (st == PC_OK) {
        size_t n = onnx__model_proto__get_packed_size(mp);
        if (!(bytes = malloc(n))) st = pc_fail_nomem();
        else st = write_atomically(path, bytes, onnx__model_proto__pack(mp, bytes));
    }
    free(bytes);
    for (int i = 0; b.out_name && i < m->n_layers; i++) free(b.out_name[i]);
    free(b.out_name);
    free(b.rank2);
    if (mp) protobuf_c_message_free_unpacked(&mp->base, NULL);
    return st;
}
