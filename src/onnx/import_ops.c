/* ONNX import: operators to parcnn layers. Each handler reads one node (a few for the
 * fused patterns: GELU, a dense layer's scale or bias) and adds a layer or maps its
 * output onto an existing one. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/shapes.h"
#include "onnx/import_graph.h"

static int sole_reader(const imp_graph *g, const char *name, const char *op);

/* The node's first output is the newest layer's. */
static pc_status new_layer_output(imp_graph *g, const Onnx__NodeProto *nd, int rank2) {
    return imp_map_value(g, nd->output[0], g->n_layers - 1, rank2);
}

/* Outputs beyond the first (a BatchNormalization's training statistics, a Dropout's mask,
 * a MaxPool's indices) must not be used. */
static pc_status only_first_output(imp_graph *g, const Onnx__NodeProto *nd) {
    for (size_t k = 1; k < nd->n_output; k++)
        if (*nd->output[k] && imp_consumers(g, nd->output[k]))
            return imp_node_error(g, nd, "output %zu (%s) is used; parcnn provides only the first",
                                  k, nd->output[k]);
    return PC_OK;
}

static pc_status check_ints_attr(imp_graph *g, const Onnx__NodeProto *nd, const char *name,
                                 int64_t want) {
    const Onnx__AttributeProto *a = imp_attr(nd, name);
    for (size_t k = 0; a && k < a->n_ints; k++)
        if (a->ints[k] != want)
            return imp_node_error(g, nd, "%s other than %lld: not supported", name, (long long)want);
    return PC_OK;
}

/* Two equal values of an ints attribute (dilations), or def when absent. */
static pc_status square_attr(imp_graph *g, const Onnx__NodeProto *nd, const char *name, int def,
                             int *out) {
    const Onnx__AttributeProto *a = imp_attr(nd, name);
    *out = def;
    if (!a) return PC_OK;
    if (a->n_ints != 2 || a->ints[0] != a->ints[1] || a->ints[0] < 1 || a->ints[0] > 1024)
        return imp_node_error(g, nd, "%s must be two equal positive values (non-square %s is not "
                              "supported)", name, name);
    *out = (int)a->ints[0];
    return PC_OK;
}

/* Two positive values (height, width) of an ints attribute (kernel_shape, strides), or def. */
static pc_status pair_attr(imp_graph *g, const Onnx__NodeProto *nd, const char *name, int def,
                           int *h, int *w) {
    const Onnx__AttributeProto *a = imp_attr(nd, name);
    *h = *w = def;
    if (!a) return PC_OK;
    if (a->n_ints != 2 || a->ints[0] < 1 || a->ints[1] < 1 || a->ints[0] > 1024 ||
        a->ints[1] > 1024)
        return imp_node_error(g, nd, "%s must be two values from 1 to 1024", name);
    *h = (int)a->ints[0];
    *w = (int)a->ints[1];
    return PC_OK;
}

/* auto_pad SAME_* of one axis of n cells, window k, stride s: the padding before and after
 * (SAME_UPPER puts the odd cell after, SAME_LOWER before). */
static void same_pads(int n, int k, int s, int upper, int64_t *before, int64_t *after) {
    int total = PC_MAX(((n + s - 1) / s - 1) * s + k - n, 0);
    *before = upper ? total / 2 : total - total / 2;
    *after = total - *before;
}

/* Padding of a window of extent kh x kw at strides sh, sw, from pads or auto_pad: p = top,
 * left, bottom, right (ONNX's order), each 0 to 1024. */
static pc_status window_pads(imp_graph *g, const Onnx__NodeProto *nd, const imp_layer *in,
                             int kh, int kw, int sh, int sw, int64_t p[4]) {
    const Onnx__AttributeProto *ap = imp_attr(nd, "auto_pad");
    const Onnx__AttributeProto *pads = imp_attr(nd, "pads");
    memset(p, 0, 4 * sizeof *p);
    char mode[16] = "NOTSET";
    if (ap && ap->has_s) snprintf(mode, sizeof mode, "%.*s", (int)ap->s.len, (const char *)ap->s.data);
    if (strcmp(mode, "SAME_UPPER") == 0 || strcmp(mode, "SAME_LOWER") == 0) {
        same_pads(in->h, kh, sh, mode[5] == 'U', &p[0], &p[2]);
        same_pads(in->w, kw, sw, mode[5] == 'U', &p[1], &p[3]);
        return PC_OK;
    }
    if (strcmp(mode, "NOTSET") != 0 && strcmp(mode, "VALID") != 0)
        return imp_node_error(g, nd, "auto_pad=%s is not supported", mode);
    if (!pads || strcmp(mode, "VALID") == 0) return PC_OK;
    int ok = pads->n_ints == 4;
    for (size_t k = 0; ok && k < 4; k++) ok = pads->ints[k] >= 0 && pads->ints[k] <= 1024;
    if (!ok) return imp_node_error(g, nd, "pads must be 4 values from 0 to 1024");
    memcpy(p, pads->ints, 4 * sizeof *p);
    return PC_OK;
}

/* Padding equal before and after on each axis (*ph, *pw), as pools take it. */
static pc_status window_pad(imp_graph *g, const Onnx__NodeProto *nd, const imp_layer *in, int kh,
                            int kw, int sh, int sw, int *ph, int *pw) {
    int64_t p[4];
    *ph = *pw = 0;
    PC_TRY(window_pads(g, nd, in, kh, kw, sh, sw, p));
    if (p[0] != p[2] || p[1] != p[3])
        return imp_node_error(g, nd, "padding [%lld, %lld, %lld, %lld]: only padding equal before "
                              "and after on each axis is supported", (long long)p[0],
                              (long long)p[1], (long long)p[2], (long long)p[3]);
    *ph = (int)p[0], *pw = (int)p[1];
    return PC_OK;
}

/* "K" or "KHxKW": a window key's value in the model file. */
static const char *pair_text(int h, int w, char *buf, size_t size) {
    if (h == w) snprintf(buf, size, "%d", h);
    else snprintf(buf, size, "%dx%d", h, w);
    return buf;
}

static pc_status spatial_input(imp_graph *g, const Onnx__NodeProto *nd, int *x) {
    int rank2;
    PC_TRY(imp_input_layer(g, nd, 0, x, &rank2));
    if (rank2) return imp_node_error(g, nd, "its input is 2-D; a 4-D (N, C, H, W) tensor is expected");
    return PC_OK;
}

/* "layer1.0.conv1" from an initializer named "layer1.0.conv1.weight" (PyTorch's names),
 * else NULL: the layer is then named after the node. */
static const char *param_base(const Onnx__TensorProto *t, char *buf, size_t size) {
    const char *name = t->name ? t->name : "";
    size_t n = strlen(name);
    if (n <= 7 || strcmp(name + n - 7, ".weight") != 0) return NULL;
    snprintf(buf, size, "%.*s", (int)(n - 7), name);
    return buf;
}

static imp_layer *layer_on(imp_graph *g, const Onnx__NodeProto *nd, const char *kind,
                           const char *base, int x) {
    imp_layer *l = imp_new_layer(g, nd, kind, base);
    if (!l) return NULL;
    const imp_layer *in = &g->layers[x];
    l->inputs[0] = x;
    l->n_inputs = 1;
    l->c = in->c, l->h = in->h, l->w = in->w;
    return l;
}

/* A convolution's padding: equal before and after on each axis (*ph, *pw), or else a [pad]
 * layer of zeros before it (TensorFlow's "same" on stride 2: one more row and column after),
 * which becomes its input *x. */
static pc_status conv_padding(imp_graph *g, const Onnx__NodeProto *nd, int *x, int eh, int ew,
                              int sh, int sw, int *ph, int *pw) {
    int64_t p[4];
    char base[80];
    *ph = *pw = 0;
    PC_TRY(window_pads(g, nd, &g->layers[*x], eh, ew, sh, sw, p));
    if (p[0] == p[2] && p[1] == p[3]) {
        *ph = (int)p[0], *pw = (int)p[1];
        return PC_OK;
    }
    snprintf(base, sizeof base, "%.60s_pad", nd->name && *nd->name ? nd->name : "conv");
    imp_layer *l = layer_on(g, nd, "pad", base, *x);
    if (!l) return pc_fail_nomem();
    snprintf(l->keys, sizeof l->keys, "top=%lld left=%lld bottom=%lld right=%lld value=0",
             (long long)p[0], (long long)p[1], (long long)p[2], (long long)p[3]);
    l->h += (int)(p[0] + p[2]);
    l->w += (int)(p[1] + p[3]);
    l->consumers = 1; /* the convolution */
    *x = g->n_layers - 1;
    return PC_OK;
}

static pc_status op_conv(imp_graph *g, const Onnx__NodeProto *nd) {
    int x, kh, kw, sh, sw, ph, pw, dil;
    const Onnx__TensorProto *w, *b;
    PC_TRY(spatial_input(g, nd, &x));
    PC_TRY(imp_input_const(g, nd, 1, 0, &w));
    PC_TRY(imp_input_const(g, nd, 2, 1, &b));
    PC_TRY(square_attr(g, nd, "dilations", 1, &dil));
    imp_layer in = g->layers[x];
    int64_t groups = imp_attr_int(nd, "group", 1);
    if (w->n_dims != 4 || groups < 1 || w->dims[0] < 1 || w->dims[0] % groups ||
        in.c % groups || w->dims[1] != in.c / groups || w->dims[0] > 1 << 20 ||
        w->dims[2] < 1 || w->dims[3] < 1)
        return imp_node_error(g, nd, "weight %s: expected (filters, %d/group, kh, kw) with group "
                              "%lld dividing the filters", w->name, in.c, (long long)groups);
    if (w->dims[2] > 1024 || w->dims[3] > 1024)
        return imp_node_error(g, nd, "weight %s: kernel larger than 1024", w->name);
    PC_TRY(pair_attr(g, nd, "kernel_shape", 1, &kh, &kw));
    if (!imp_attr(nd, "kernel_shape")) kh = (int)w->dims[2], kw = (int)w->dims[3];
    PC_TRY(pair_attr(g, nd, "strides", 1, &sh, &sw));
    /* the dilated kernel's extent (both at most 1024) */
    const int eh = (kh - 1) * dil + 1, ew = (kw - 1) * dil + 1;
    PC_TRY(conv_padding(g, nd, &x, eh, ew, sh, sw, &ph, &pw));
    in = g->layers[x];
    if (kh != w->dims[2] || kw != w->dims[3] || in.h + 2 * ph < eh || in.w + 2 * pw < ew)
        return imp_node_error(g, nd, "kernel %dx%d (dilation %d) does not fit its %dx%d input",
                              kh, kw, dil, in.h, in.w);
    char base[64], ks[24], ss[24], ps[24];
    imp_layer *l = layer_on(g, nd, "conv", param_base(w, base, sizeof base), x);
    if (!l) return pc_fail_nomem();
    l->c = (int)w->dims[0];
    l->h = (in.h + 2 * ph - eh) / sh + 1;
    l->w = (in.w + 2 * pw - ew) / sw + 1;
    l->bias = b != NULL;
    int n = snprintf(l->keys, sizeof l->keys, "filters=%d size=%s stride=%s pad=%s groups=%lld",
                     l->c, pair_text(kh, kw, ks, sizeof ks), pair_text(sh, sw, ss, sizeof ss),
                     pair_text(ph, pw, ps, sizeof ps), (long long)groups);
    if (dil > 1) snprintf(l->keys + n, sizeof l->keys - (size_t)n, " dilation=%d", dil);
    l->weight_n = w->dims[0] * w->dims[1] * kh * kw;
    PC_TRY(imp_const_floats(g, nd, w, l->weight_n, &l->weight));
    if (b) PC_TRY(imp_const_floats(g, nd, b, l->bias_n = l->c, &l->bias_v));
    return new_layer_output(g, nd, 0);
}

static pc_status op_batchnorm(imp_graph *g, const Onnx__NodeProto *nd) {
    int x, rank2;
    const Onnx__TensorProto *t[4];
    PC_TRY(imp_input_layer(g, nd, 0, &x, &rank2));
    for (int k = 0; k < 4; k++) PC_TRY(imp_input_const(g, nd, k + 1, 0, &t[k]));
    PC_TRY(only_first_output(g, nd));
    float eps = imp_attr_float(nd, "epsilon", 1e-5f), mom = imp_attr_float(nd, "momentum", 0.9f);
    if (!(eps >= 1e-12f && eps <= 1) || !(mom >= 0 && mom <= 1))
        return imp_node_error(g, nd, "epsilon %g or momentum %g out of range", eps, mom);
    char base[64];
    imp_layer *l = layer_on(g, nd, "batchnorm", param_base(t[0], base, sizeof base), x);
    if (!l) return pc_fail_nomem();
    /* ONNX: running = momentum running + (1 - momentum) batch; parcnn is PyTorch's way round */
    char e[32], mo[32];
    snprintf(l->keys, sizeof l->keys, "eps=%s momentum=%s", imp_fmt_float(eps, e, sizeof e),
             imp_fmt_float(1.0f - mom, mo, sizeof mo));
    l->weight_n = l->bias_n = l->c;
    PC_TRY(imp_const_floats(g, nd, t[0], l->c, &l->weight));
    PC_TRY(imp_const_floats(g, nd, t[1], l->c, &l->bias_v));
    PC_TRY(imp_const_floats(g, nd, t[2], l->c, &l->mean));
    PC_TRY(imp_const_floats(g, nd, t[3], l->c, &l->var));
    return new_layer_output(g, nd, rank2);
}

/* Fuse the activation into layer x, which takes its name as alias=, when nothing else reads
 * its output; otherwise (ReLU and ReLU6 only) a [relu] or [relu6] layer. `reads`: how many
 * inputs of the activation's nodes read x. */
static pc_status add_activation(imp_graph *g, const Onnx__NodeProto *nd, int x, int rank2,
                                pc_activation act, int reads, const char *out) {
    imp_layer *p = &g->layers[x];
    if (x > 0 && p->act == PC_ACT_NONE && p->consumers == reads && strcmp(p->kind, "relu") != 0 &&
        strcmp(p->kind, "relu6") != 0) {
        p->act = act;
        p->consumers -= reads;
        /* its name stays usable (--cut block_13_expand_relu); GELU's is of a node inside it */
        if (act != PC_ACT_GELU) imp_alias_layer(g, x, nd);
        return imp_map_value(g, out, x, rank2);
    }
    if (act == PC_ACT_GELU)
        return imp_node_error(g, nd, "GELU of a tensor that other nodes also read is not supported");
    if (!layer_on(g, nd, act == PC_ACT_RELU ? "relu" : "relu6", NULL, x)) return pc_fail_nomem();
    return imp_map_value(g, out, g->n_layers - 1, rank2);
}

static pc_status op_relu(imp_graph *g, const Onnx__NodeProto *nd) {
    int x, rank2;
    PC_TRY(imp_input_layer(g, nd, 0, &x, &rank2));
    return add_activation(g, nd, x, rank2, PC_ACT_RELU, 1, nd->output[0]);
}

/* A MaxPool padded more after than before, as torch.onnx writes ceil mode below opset 10:
 * ceil_mode=1 with the padding before, when that gives the same windows (the same output
 * size; a max ignores the padding either way). Returns whether it does, with *ph, *pw. */
static int ceil_mode_pads(const Onnx__NodeProto *nd, const imp_layer *in, int kh, int kw,
                          int sh, int sw, int *ph, int *pw) {
    const Onnx__AttributeProto *pads = imp_attr(nd, "pads");
    if (!pads || pads->n_ints != 4 || imp_attr(nd, "auto_pad") || imp_attr_int(nd, "ceil_mode", 0))
        return 0;
    const int64_t *p = pads->ints;
    for (int k = 0; k < 4; k++)
        if (p[k] < 0 || p[k] > 1024) return 0;
    if (p[2] < p[0] || p[3] < p[1] || (p[2] == p[0] && p[3] == p[1]) ||
        in->h + p[0] + p[2] < kh || in->w + p[1] + p[3] < kw)
        return 0;
    if (pc_pool_out_size(in->h, kh, sh, (int)p[0], 1) != (in->h + p[0] + p[2] - kh) / sh + 1 ||
        pc_pool_out_size(in->w, kw, sw, (int)p[1], 1) != (in->w + p[1] + p[3] - kw) / sw + 1)
        return 0;
    *ph = (int)p[0], *pw = (int)p[1];
    return 1;
}

static pc_status op_pool(imp_graph *g, const Onnx__NodeProto *nd, int is_max) {
    int x, kh, kw, sh, sw, ph, pw;
    PC_TRY(spatial_input(g, nd, &x));
    PC_TRY(only_first_output(g, nd));
    PC_TRY(check_ints_attr(g, nd, "dilations", 1));
    if (!imp_attr(nd, "kernel_shape")) return imp_node_error(g, nd, "kernel_shape is missing");
    PC_TRY(pair_attr(g, nd, "kernel_shape", 1, &kh, &kw));
    PC_TRY(pair_attr(g, nd, "strides", 1, &sh, &sw));
    imp_layer in = g->layers[x];
    int ceil_pads = is_max && ceil_mode_pads(nd, &in, kh, kw, sh, sw, &ph, &pw);
    if (!ceil_pads) PC_TRY(window_pad(g, nd, &in, kh, kw, sh, sw, &ph, &pw));
    if (in.h + 2 * ph < kh || in.w + 2 * pw < kw || 2 * ph > kh || 2 * pw > kw)
        return imp_node_error(g, nd, "window %dx%d with padding %dx%d does not fit the %dx%d "
                              "input (parcnn pads at most half the window)", kh, kw, ph, pw,
                              in.h, in.w);
    int64_t ceil_mode = ceil_pads ? 1 : imp_attr_int(nd, "ceil_mode", 0);
    int64_t count_pad = is_max ? 0 : imp_attr_int(nd, "count_include_pad", 0);
    if ((ceil_mode != 0 && ceil_mode != 1) || (count_pad != 0 && count_pad != 1))
        return imp_node_error(g, nd, "ceil_mode and count_include_pad must be 0 or 1");
    if (imp_attr_int(nd, "storage_order", 0))
        return imp_node_error(g, nd, "storage_order=1 is not supported");
    imp_layer *l = layer_on(g, nd, is_max ? "maxpool" : "avgpool", NULL, x);
    if (!l) return pc_fail_nomem();
    l->h = pc_pool_out_size(in.h, kh, sh, ph, (int)ceil_mode);
    l->w = pc_pool_out_size(in.w, kw, sw, pw, (int)ceil_mode);
    /* the keys only where they are not the default, so that floor-mode files stay as they were */
    char ks[24], ss[24], ps[24];
    int n = snprintf(l->keys, sizeof l->keys, "size=%s stride=%s pad=%s",
                     pair_text(kh, kw, ks, sizeof ks), pair_text(sh, sw, ss, sizeof ss),
                     pair_text(ph, pw, ps, sizeof ps));
    if (ceil_mode) n += snprintf(l->keys + n, sizeof l->keys - (size_t)n, " ceil_mode=1");
    if (count_pad && (ph || pw))
        snprintf(l->keys + n, sizeof l->keys - (size_t)n, " count_include_pad=1");
    return new_layer_output(g, nd, 0);
}

/* GlobalAveragePool, or ReduceMean over H and W (keepdims=0: a 2-D output). */
static pc_status op_gap(imp_graph *g, const Onnx__NodeProto *nd, int keepdims) {
    int x;
    PC_TRY(spatial_input(g, nd, &x));
    imp_layer *l = layer_on(g, nd, "gap", NULL, x);
    if (!l) return pc_fail_nomem();
    l->h = l->w = 1;
    return new_layer_output(g, nd, !keepdims);
}

static pc_status op_reduce_mean(imp_graph *g, const Onnx__NodeProto *nd) {
    const Onnx__AttributeProto *axes = imp_attr(nd, "axes");
    int ok = axes && axes->n_ints == 2 && ((axes->ints[0] == 2 && axes->ints[1] == 3) ||
                                           (axes->ints[0] == -2 && axes->ints[1] == -1));
    if (!ok) return imp_node_error(g, nd, "only the mean over axes [2, 3] (global average "
                                   "pooling) is supported");
    return op_gap(g, nd, (int)imp_attr_int(nd, "keepdims", 1));
}

/* An output that is the input under another name (Identity, Dropout in inference, a
 * Flatten of a (C, 1, 1) tensor): the aliasing node does not count as a reader. */
static pc_status alias(imp_graph *g, const Onnx__NodeProto *nd, int x, int rank2) {
    g->layers[x].consumers--;
    return imp_map_value(g, nd->output[0], x, rank2);
}

/* (N, C, H, W) -> (N, C*H*W): a [flatten] layer, or none when H = W = 1 (parcnn's layers
 * treat (C, 1, 1) and (C) alike). */
static pc_status flatten_value(imp_graph *g, const Onnx__NodeProto *nd, int x, int rank2) {
    const imp_layer *in = &g->layers[x];
    if (rank2 || (in->h == 1 && in->w == 1)) return alias(g, nd, x, 1);
    imp_layer *l = layer_on(g, nd, "flatten", NULL, x);
    if (!l) return pc_fail_nomem();
    l->c = l->c * l->h * l->w, l->h = l->w = 1;
    return new_layer_output(g, nd, 1);
}

static pc_status op_flatten(imp_graph *g, const Onnx__NodeProto *nd) {
    int x, rank2;
    PC_TRY(imp_input_layer(g, nd, 0, &x, &rank2));
    if (imp_attr_int(nd, "axis", 1) != 1)
        return imp_node_error(g, nd, "axis=%lld: only axis=1 (keep the batch) is supported",
                              (long long)imp_attr_int(nd, "axis", 1));
    return flatten_value(g, nd, x, rank2);
}

/* Reshape to (N, features): the shape constant is [N|0|-1, features|-1]. */
static pc_status op_reshape(imp_graph *g, const Onnx__NodeProto *nd) {
    int x, rank2, n;
    const Onnx__TensorProto *t;
    int64_t shape[8];
    PC_TRY(imp_input_layer(g, nd, 0, &x, &rank2));
    PC_TRY(imp_input_const(g, nd, 1, 0, &t));
    PC_TRY(imp_const_ints(g, nd, t, 8, shape, &n));
    const imp_layer *in = &g->layers[x];
    int64_t features = (int64_t)in->c * in->h * in->w;
    int ok = n == 2 && (shape[1] == -1 || shape[1] == features) &&
             (shape[0] == 0 || shape[0] == -1 || (shape[0] >= 1 && shape[1] != -1));
    if (!ok) return imp_node_error(g, nd, "only a reshape to (N, %lld) is supported",
                                   (long long)features);
    return flatten_value(g, nd, x, rank2);
}

/* A dense layer on x with weight (units, inputs) from w (transposed when trans_b = 0). */
static pc_status dense_layer(imp_graph *g, const Onnx__NodeProto *nd, int x,
                             const Onnx__TensorProto *w, int trans_b, const Onnx__TensorProto *b) {
    const imp_layer *in = &g->layers[x];
    int64_t inputs = (int64_t)in->c * in->h * in->w;
    int64_t units = w->n_dims == 2 ? w->dims[trans_b ? 0 : 1] : -1;
    if (w->n_dims != 2 || w->dims[trans_b ? 1 : 0] != inputs || units < 1 || units > 1 << 20)
        return imp_node_error(g, nd, "weight %s: expected a 2-D matrix with %lld inputs",
                              w->name ? w->name : "", (long long)inputs);
    char base[64];
    imp_layer *l = layer_on(g, nd, "dense", param_base(w, base, sizeof base), x);
    if (!l) return pc_fail_nomem();
    l->c = (int)units, l->h = l->w = 1;
    l->bias = b != NULL;
    l->weight_n = units * inputs;
    float *raw;
    PC_TRY(imp_const_floats(g, nd, w, l->weight_n, &raw));
    if (trans_b) {
        l->weight = raw;
    } else {
        if (!(l->weight = malloc(sizeof(float) * l->weight_n))) {
            free(raw);
            return pc_fail_nomem();
        }
        for (int64_t i = 0; i < inputs; i++)
            for (int64_t u = 0; u < units; u++) l->weight[u * inputs + i] = raw[i * units + u];
        free(raw);
    }
    if (b) PC_TRY(imp_const_floats(g, nd, b, l->bias_n = units, &l->bias_v));
    return new_layer_output(g, nd, 1);
}

static pc_status op_gemm(imp_graph *g, const Onnx__NodeProto *nd) {
    int x, rank2;
    const Onnx__TensorProto *w, *b;
    PC_TRY(imp_input_layer(g, nd, 0, &x, &rank2));
    PC_TRY(imp_input_const(g, nd, 1, 0, &w));
    PC_TRY(imp_input_const(g, nd, 2, 1, &b));
    const imp_layer *in = &g->layers[x];
    if (!rank2 && (in->h != 1 || in->w != 1))
        return imp_node_error(g, nd, "input A is 4-D; Gemm takes a 2-D matrix");
    if (imp_attr_int(nd, "transA", 0))
        return imp_node_error(g, nd, "transA=1 is not supported");
    if (imp_attr_float(nd, "alpha", 1.0f) != 1.0f || (b && imp_attr_float(nd, "beta", 1.0f) != 1.0f))
        return imp_node_error(g, nd, "alpha or beta other than 1 is not supported");
    return dense_layer(g, nd, x, w, (int)imp_attr_int(nd, "transB", 0), b);
}

static pc_status op_matmul(imp_graph *g, const Onnx__NodeProto *nd) {
    int x, rank2;
    const Onnx__TensorProto *w;
    PC_TRY(imp_input_layer(g, nd, 0, &x, &rank2));
    PC_TRY(imp_input_const(g, nd, 1, 0, &w));
    if (!rank2) return imp_node_error(g, nd, "input A is 4-D; only a 2-D x (inputs, units) "
                                      "product is supported");
    return dense_layer(g, nd, x, w, 0, NULL);
}

/* A constant operand of a two-input node, and the other one's index; -1 if none. */
static int const_operand(imp_graph *g, const Onnx__NodeProto *nd) {
    for (int k = 0; k < 2 && (size_t)k < nd->n_input; k++) {
        imp_value *v = imp_find(g, nd->input[k]);
        if (v && v->kind == V_CONST) return k;
    }
    return -1;
}

/* "(N, 8, 4, 4)", or "(N, 8)" for a value read as 2-D. */
static const char *value_shape(const imp_layer *l, int rank2, char *buf, size_t size) {
    if (rank2) snprintf(buf, size, "(N, %d)", l->c);
    else snprintf(buf, size, "(N, %d, %d, %d)", l->c, l->h, l->w);
    return buf;
}

/* A constant's shape, "(1, 8, 1, 1)"; "()" for a scalar. */
static const char *const_shape(const Onnx__TensorProto *t, char *buf, size_t size) {
    int n = snprintf(buf, size, "(");
    for (size_t d = 0; d < t->n_dims && d < 8 && n < (int)size - 24; d++)
        n += snprintf(buf + n, size - n, "%s%lld", d ? ", " : "", (long long)t->dims[d]);
    snprintf(buf + n, size - n, "%s)", t->n_dims > 8 ? ", ..." : "");
    return buf;
}

/* The c values, one per channel, of constant t broadcast onto layer x's output (read as
 * (N, C, H, W), or (N, C) when rank2). ONNX aligns shapes at their last axis, so t must be
 * 1 on every axis but the channels', where it is C or 1: a scalar, (1), (C, 1, 1),
 * (1, C, 1, 1); (C) or (1, C) when rank2. */
static pc_status channel_constant(imp_graph *g, const Onnx__NodeProto *nd,
                                  const Onnx__TensorProto *t, const imp_layer *x, int rank2,
                                  float **out) {
    const int rank = rank2 ? 2 : 4;
    int64_t per = 1, numel; /* values along the channel axis */
    int ok = t->n_dims <= (size_t)rank;
    PC_TRY(imp_const_numel(g, nd, t, &numel));
    for (size_t d = 0; ok && d < t->n_dims; d++) {
        int64_t v = t->dims[d];
        if (rank - (int64_t)t->n_dims + (int64_t)d == 1) per = v, ok = v == 1 || v == x->c;
        else ok = v == 1;
    }
    if (!ok) {
        char cs[128], xs[64];
        return imp_node_error(g, nd, "constant %s of shape %s with a tensor of shape %s: only a "
                              "scalar or a per-channel constant of shape (C, 1, 1) or (1, C, 1, 1) "
                              "(on a 2-D tensor: (C)) is supported", t->name ? t->name : "",
                              const_shape(t, cs, sizeof cs), value_shape(x, rank2, xs, sizeof xs));
    }
    float *v;
    PC_TRY(imp_const_floats(g, nd, t, per, &v));
    if (per == x->c) {
        *out = v;
        return PC_OK;
    }
    *out = malloc(sizeof(float) * x->c);
    for (int k = 0; *out && k < x->c; k++) (*out)[k] = v[0];
    free(v);
    return *out ? PC_OK : pc_fail_nomem();
}

/* Layer x's bias can take a constant added to its output: a conv, dense or batch norm that
 * nothing else reads, without activation or scale (conv(x) + b + c = conv(x) + (b + c)). */
static int bias_foldable(const imp_layer *l) {
    int kind = strcmp(l->kind, "conv") == 0 || strcmp(l->kind, "dense") == 0 ||
               strcmp(l->kind, "batchnorm") == 0;
    return kind && l->act == PC_ACT_NONE && l->scale == 1.0f && l->consumers == 1;
}

/* "block1" from a constant named "block1.weight" or "block1.bias", else NULL. */
static const char *const_base(const Onnx__TensorProto *t, char *buf, size_t size) {
    const char *name = t->name ? t->name : "";
    size_t n = strlen(name);
    if (n > 7 && strcmp(name + n - 7, ".weight") == 0) n -= 7;
    else if (n > 5 && strcmp(name + n - 5, ".bias") == 0) n -= 5;
    else return NULL;
    snprintf(buf, size, "%.*s", (int)n, name);
    return buf;
}

/* Layer x's output times a per-channel scale (owned; NULL: 1) plus a per-channel shift
 * (owned; NULL: none), the constants of a Mul or Add: a 1x1 depthwise [conv], exact (x * 1
 * + c is x + c). Its constants become its parameters and train as they would as PyTorch
 * Parameters; the unit scale of an Add alone stays 1 (trainable=bias). */
static pc_status channel_affine(imp_graph *g, const Onnx__NodeProto *nd, int x, int rank2,
                                const Onnx__TensorProto *t, float *scale, float *shift) {
    char base[64];
    imp_layer *l = layer_on(g, nd, "conv", const_base(t, base, sizeof base), x);
    float *ones = scale ? NULL : malloc(sizeof(float) * g->layers[x].c);
    if (!l || (!scale && !ones)) {
        free(scale), free(shift), free(ones);
        return pc_fail_nomem();
    }
    snprintf(l->keys, sizeof l->keys, "filters=%d size=1 stride=1 pad=0 groups=%d", l->c, l->c);
    for (int k = 0; ones && k < l->c; k++) ones[k] = 1.0f;
    l->weight = scale ? scale : ones;
    l->weight_n = l->c;
    l->bias = shift != NULL;
    l->bias_v = shift;
    l->bias_n = shift ? l->c : 0;
    l->trainable = scale ? NULL : "bias";
    return new_layer_output(g, nd, rank2);
}

/* Add of a scalar or per-channel constant onto a computed tensor: into the bias of the
 * layer producing it when that is exact (tf2onnx's bias-less Conv + Add, MatMul + Add, a
 * batch norm's shift), else a 1x1 depthwise [conv]. */
static pc_status add_constant(imp_graph *g, const Onnx__NodeProto *nd, int k_const) {
    int x, rank2;
    float *c;
    PC_TRY(imp_input_layer(g, nd, 1 - k_const, &x, &rank2));
    const Onnx__TensorProto *t = imp_find(g, nd->input[k_const])->t;
    PC_TRY(channel_constant(g, nd, t, &g->layers[x], rank2, &c));
    imp_layer *l = &g->layers[x];
    if (!bias_foldable(l)) return channel_affine(g, nd, x, rank2, t, NULL, c);
    if (l->bias_v) {
        for (int k = 0; k < l->c; k++) l->bias_v[k] += c[k];
        free(c);
    } else {
        l->bias_v = c;
    }
    l->bias = 1;
    l->bias_n = l->c;
    l->consumers--;
    return imp_map_value(g, nd->output[0], x, rank2);
}

/* A shortcut operand: the input of a strided Slice and/or a channel Pad (ResNet option A). */
static int shortcut_layer(imp_graph *g, const char *name, const imp_layer *a) {
    imp_value *v = imp_find(g, name);
    if (!v || v->kind != V_SHORTCUT) return -1;
    const imp_layer *b = &g->layers[v->layer];
    int ok = b->c + v->cpad == a->c && b->h == a->h * v->stride && b->w == a->w * v->stride;
    return ok ? v->layer : -1;
}

/* [KIND] (add or mul) of computed tensors a and b: of equal shapes, or of a (C, H, W) tensor
 * and a (C, 1, 1) one, which goes second; shortcut: b is a ResNet shortcut, checked already. */
static pc_status binary_layer(imp_graph *g, const Onnx__NodeProto *nd, const char *kind, int a,
                              int ra, int b, int rb, int shortcut) {
    const imp_layer *la = &g->layers[a], *lb = &g->layers[b];
    if (!shortcut && la->h == 1 && la->w == 1 && (lb->h > 1 || lb->w > 1)) {
        int t = a;
        a = b, b = t, t = ra, ra = rb, rb = t;
        la = &g->layers[a], lb = &g->layers[b];
    }
    int same = la->c == lb->c && la->h == lb->h && la->w == lb->w && ra == rb;
    int per_channel = la->c == lb->c && lb->h == 1 && lb->w == 1 && !ra && !rb;
    if (!shortcut && !same && !per_channel) {
        char as[64], bs[64];
        return imp_node_error(g, nd, "inputs of shapes %s and %s: only equal shapes or a "
                              "per-channel (N, C, 1, 1) operand are supported",
                              value_shape(la, ra, as, sizeof as), value_shape(lb, rb, bs, sizeof bs));
    }
    imp_layer *l = layer_on(g, nd, kind, NULL, a);
    if (!l) return pc_fail_nomem();
    l->inputs[1] = b;
    l->n_inputs = 2;
    return new_layer_output(g, nd, ra);
}

/* Add of two computed tensors: [add] of equal shapes, of a (C, H, W) tensor and a (C, 1, 1)
 * one (which goes second), or of a ResNet shortcut; Add of a constant: add_constant. */
static pc_status op_add(imp_graph *g, const Onnx__NodeProto *nd) {
    if (nd->n_input != 2) return imp_node_error(g, nd, "expected 2 inputs");
    int kc = const_operand(g, nd);
    if (kc >= 0) return add_constant(g, nd, kc);
    int a, ra, b = -1, rb = 0;
    PC_TRY(imp_input_layer(g, nd, 0, &a, &ra));
    int sc = shortcut_layer(g, nd->input[1], &g->layers[a]);
    if (sc >= 0) b = sc, rb = ra;
    else PC_TRY(imp_input_layer(g, nd, 1, &b, &rb));
    return binary_layer(g, nd, "add", a, ra, b, rb, sc >= 0);
}

/* Slice(x, starts 0, ends >= size, axes [2, 3], steps [s, s]): a subsampled shortcut. */
static pc_status op_slice(imp_graph *g, const Onnx__NodeProto *nd) {
    int x, rank2, n[4];
    int64_t v[4][4];
    PC_TRY(imp_input_layer(g, nd, 0, &x, &rank2));
    if (nd->n_input < 5 || imp_attr(nd, "starts"))
        return imp_node_error(g, nd, "only Slice with starts, ends, axes and steps inputs "
                              "(opset 10 and later) is supported");
    for (int k = 0; k < 4; k++) {
        const Onnx__TensorProto *t;
        PC_TRY(imp_input_const(g, nd, k + 1, 0, &t));
        PC_TRY(imp_const_ints(g, nd, t, 4, v[k], &n[k]));
    }
    const imp_layer *in = &g->layers[x];
    int ok = !rank2 && n[0] == 2 && n[1] == 2 && n[2] == 2 && n[3] == 2 && v[0][0] == 0 &&
             v[0][1] == 0 && v[1][0] >= in->h && v[1][1] >= in->w && v[2][0] == 2 &&
             v[2][1] == 3 && v[3][0] == v[3][1] && v[3][0] >= 1 && in->h % v[3][0] == 0 &&
             in->w % v[3][0] == 0;
    if (!ok) return imp_node_error(g, nd, "only a whole-tensor strided Slice over H and W "
                                   "feeding an Add (a ResNet shortcut) is supported");
    g->layers[x].consumers += 1000; /* read through the shortcut: no activation fusion */
    return imp_set_value(g, nd->output[0], (imp_value){.kind = V_SHORTCUT, .layer = x,
                                                       .stride = (int)v[3][0]});
}

/* Constant padding of H and W (pads: N, C, H, W begins then ends): a [pad] layer. */
static pc_status spatial_pad(imp_graph *g, const Onnx__NodeProto *nd, int x, const int64_t *pads,
                             float value) {
    for (int k = 0; k < 8; k++)
        if (pads[k] < 0 || pads[k] > 4096)
            return imp_node_error(g, nd, "pads must be 0 to 4096 (cropping is not supported)");
    imp_layer *l = layer_on(g, nd, "pad", NULL, x);
    if (!l) return pc_fail_nomem();
    char v[32];
    snprintf(l->keys, sizeof l->keys, "top=%lld left=%lld bottom=%lld right=%lld value=%s",
             (long long)pads[2], (long long)pads[3], (long long)pads[6], (long long)pads[7],
             imp_fmt_float(value, v, sizeof v));
    l->h += (int)(pads[2] + pads[6]);
    l->w += (int)(pads[3] + pads[7]);
    return new_layer_output(g, nd, 0);
}

/* Pad of H and W ([pad]), with zeros at the end of the channels (a ResNet shortcut), or with
 * none at all (torch.onnx writes one before some AveragePools). */
static pc_status op_pad(imp_graph *g, const Onnx__NodeProto *nd) {
    imp_value *v = nd->n_input ? imp_find(g, nd->input[0]) : NULL;
    imp_value sc = {0};
    if (v && v->kind == V_SHORTCUT) sc = *v;
    else if (v && v->kind == V_LAYER && !v->rank2) sc = (imp_value){.kind = V_SHORTCUT, .layer = v->layer, .stride = 1};
    const Onnx__TensorProto *t, *cv;
    int n;
    int64_t pads[8];
    char mode[16] = "constant";
    const Onnx__AttributeProto *m = imp_attr(nd, "mode");
    if (m && m->has_s) snprintf(mode, sizeof mode, "%.*s", (int)m->s.len, (const char *)m->s.data);
    if (!sc.kind || strcmp(mode, "constant") != 0)
        return imp_node_error(g, nd, "only a constant-mode Pad of a 4-D computed tensor is "
                              "supported");
    const Onnx__AttributeProto *pa = imp_attr(nd, "pads");
    float value = imp_attr_float(nd, "value", 0.0f);
    if (pa) { /* below opset 11: pads and value are attributes */
        if (pa->n_ints != 8) return imp_node_error(g, nd, "pads must have 8 values");
        n = 8;
        memcpy(pads, pa->ints, sizeof pads);
    } else {
        PC_TRY(imp_input_const(g, nd, 1, 0, &t));
        PC_TRY(imp_input_const(g, nd, 2, 1, &cv));
        PC_TRY(imp_const_ints(g, nd, t, 8, pads, &n));
        float *c = NULL;
        if (cv) PC_TRY(imp_const_floats(g, nd, cv, 1, &c));
        value = c ? *c : 0.0f;
        free(c);
    }
    int spatial = n == 8 && v->kind == V_LAYER && pads[0] == 0 && pads[1] == 0 && pads[4] == 0 &&
                  pads[5] == 0 && (pads[2] | pads[3] | pads[6] | pads[7]) != 0;
    if (spatial) return spatial_pad(g, nd, v->layer, pads, value);
    int ok = n == 8 && value == 0.0f && pads[5] >= 0;
    for (int k = 0; k < 8; k++) ok = ok && (k == 5 || pads[k] == 0);
    if (!ok) return imp_node_error(g, nd, "only a constant zero Pad at the end of the channels "
                                   "feeding an Add (a ResNet shortcut) is supported");
    if (v->kind == V_LAYER && pads[5] == 0) return alias(g, nd, v->layer, 0); /* no padding */
    if (v->kind == V_LAYER) g->layers[v->layer].consumers += 1000;
    sc.cpad += (int)pads[5];
    return imp_set_value(g, nd->output[0], sc);
}

/* The one node reading `name`, which must be of type op; -1 if not so. */
static int sole_reader(const imp_graph *g, const char *name, const char *op) {
    const Onnx__GraphProto *gp = g->mp->graph;
    int found = -1, n = 0;
    for (size_t i = 0; i < gp->n_node; i++)
        for (size_t k = 0; k < gp->node[i]->n_input; k++)
            if (strcmp(gp->node[i]->input[k], name) == 0) found = (int)i, n++;
    if (n != 1 || imp_consumers(g, name) != 1 || strcmp(gp->node[found]->op_type, op) != 0) return -1;
    return found;
}

/* The other input of a two-input node is a scalar constant equal to want (within tol). */
static int other_is_scalar(imp_graph *g, const Onnx__NodeProto *nd, const char *mine, double want,
                           double tol) {
    if (nd->n_input != 2) return 0;
    const char *other = strcmp(nd->input[0], mine) == 0 ? nd->input[1] : nd->input[0];
    imp_value *v = imp_find(g, other);
    float *c = NULL;
    int64_t n;
    if (!v || v->kind != V_CONST || imp_const_numel(g, nd, v->t, &n) != PC_OK || n != 1 ||
        imp_const_floats(g, nd, v->t, 1, &c) != PC_OK)
        return 0;
    int ok = fabs(*c - want) <= tol * fabs(want);
    free(c);
    return ok;
}

/* GELU as PyTorch exports it below opset 20: Div(x, sqrt 2) -> Erf -> Add 1 -> Mul x ->
 * Mul 0.5, fused into the layer producing x. */
static pc_status op_div(imp_graph *g, const Onnx__NodeProto *nd) {
    int x, rank2;
    const Onnx__GraphProto *gp = g->mp->graph;
    PC_TRY(imp_input_layer(g, nd, 0, &x, &rank2));
    const char *unsupported = "only the division by sqrt(2) of a GELU (x * 0.5 * (1 + erf(x / "
                              "sqrt(2)))) is supported";
    if (!other_is_scalar(g, nd, nd->input[0], M_SQRT2, 1e-6)) return imp_node_error(g, nd, "%s", unsupported);
    int erf = sole_reader(g, nd->output[0], "Erf");
    int add = erf < 0 ? -1 : sole_reader(g, gp->node[erf]->output[0], "Add");
    if (add >= 0 && !other_is_scalar(g, gp->node[add], gp->node[erf]->output[0], 1.0, 0)) add = -1;
    int mul = add < 0 ? -1 : sole_reader(g, gp->node[add]->output[0], "Mul");
    const Onnx__NodeProto *m1 = mul < 0 ? NULL : gp->node[mul];
    if (m1 && !(m1->n_input == 2 && (strcmp(m1->input[0], nd->input[0]) == 0 ||
                                     strcmp(m1->input[1], nd->input[0]) == 0)))
        mul = -1;
    int half = mul < 0 ? -1 : sole_reader(g, m1->output[0], "Mul");
    if (half >= 0 && !other_is_scalar(g, gp->node[half], m1->output[0], 0.5, 0)) half = -1;
    if (half < 0) return imp_node_error(g, nd, "%s", unsupported);
    g->done[erf] = g->done[add] = g->done[mul] = g->done[half] = 1;
    return add_activation(g, nd, x, rank2, PC_ACT_GELU, 2, gp->node[half]->output[0]);
}

/* Mul of two computed tensors: [mul] of equal shapes, or of a (C, H, W) tensor by a
 * (C, 1, 1) one (squeeze-and-excitation), which goes second. */
static pc_status mul_layers(imp_graph *g, const Onnx__NodeProto *nd) {
    int a, b, ra, rb;
    PC_TRY(imp_input_layer(g, nd, 0, &a, &ra));
    PC_TRY(imp_input_layer(g, nd, 1, &b, &rb));
    return binary_layer(g, nd, "mul", a, ra, b, rb, 0);
}

/* Concat along the channels of 1 to 32 computed tensors of one height and width. */
static pc_status op_concat(imp_graph *g, const Onnx__NodeProto *nd) {
    int x[IMP_MAX_INPUTS], rank2 = 0, c = 0;
    int64_t axis = imp_attr_int(nd, "axis", 1);
    if (nd->n_input == 1) { /* a concat of one tensor is that tensor (DenseNet's first layer) */
        PC_TRY(imp_input_layer(g, nd, 0, &x[0], &rank2));
        return alias(g, nd, x[0], rank2);
    }
    if (nd->n_input < 1 || nd->n_input > IMP_MAX_INPUTS)
        return imp_node_error(g, nd, "%zu inputs; 1 to %d are supported", nd->n_input, IMP_MAX_INPUTS);
    for (size_t k = 0; k < nd->n_input; k++) {
        int r;
        PC_TRY(imp_input_layer(g, nd, (int)k, &x[k], &r));
        const imp_layer *l = &g->layers[x[k]], *l0 = &g->layers[x[0]];
        if (k == 0) rank2 = r;
        if (r != rank2 || l->h != l0->h || l->w != l0->w)
            return imp_node_error(g, nd, "inputs of different heights, widths or ranks");
        c += l->c;
    }
    if (axis != 1 && !(axis == -3 && !rank2) && !(axis == -1 && rank2))
        return imp_node_error(g, nd, "axis=%lld: only the channels (axis 1) are supported",
                              (long long)axis);
    imp_layer *l = layer_on(g, nd, "concat", NULL, x[0]);
    if (!l) return pc_fail_nomem();
    memcpy(l->inputs, x, sizeof(int) * nd->n_input);
    l->n_inputs = (int)nd->n_input;
    l->c = c;
    return new_layer_output(g, nd, rank2);
}

/* Mul of a dense layer's output by a scalar constant: its scale= (airbench's logits); by
 * another per-channel constant: a 1x1 depthwise [conv] (a following Add of a constant goes
 * into its bias: a batch norm decomposed into Mul and Add); of two computed tensors: [mul]. */
static pc_status op_mul(imp_graph *g, const Onnx__NodeProto *nd) {
    int kc = const_operand(g, nd), x, rank2;
    if (nd->n_input != 2) return imp_node_error(g, nd, "expected 2 inputs");
    if (kc < 0) return mul_layers(g, nd);
    PC_TRY(imp_input_layer(g, nd, 1 - kc, &x, &rank2));
    const Onnx__TensorProto *t = imp_find(g, nd->input[kc])->t;
    float *c = NULL;
    PC_TRY(channel_constant(g, nd, t, &g->layers[x], rank2, &c));
    imp_layer *l = &g->layers[x];
    int64_t n;
    PC_TRY(imp_const_numel(g, nd, t, &n));
    int scale = n == 1 && strcmp(l->kind, "dense") == 0 && !l->act && l->scale == 1.0f &&
                l->consumers == 1 && c[0] >= 1e-6f && c[0] <= 1e6f; /* parcnn's scale= range */
    if (!scale) return channel_affine(g, nd, x, rank2, t, c, NULL);
    l->scale = c[0];
    free(c);
    l->consumers--;
    return imp_map_value(g, nd->output[0], x, rank2);
}

static pc_status op_dropout(imp_graph *g, const Onnx__NodeProto *nd) {
    int x, rank2;
    const Onnx__TensorProto *r = NULL, *tm = NULL;
    PC_TRY(imp_input_layer(g, nd, 0, &x, &rank2));
    PC_TRY(only_first_output(g, nd));
    float rate = imp_attr_float(nd, "ratio", 0.5f), *v = NULL;
    PC_TRY(imp_input_const(g, nd, 1, 1, &r));
    PC_TRY(imp_input_const(g, nd, 2, 1, &tm));
    if (r) {
        PC_TRY(imp_const_floats(g, nd, r, 1, &v));
        rate = *v;
        free(v);
    }
    if (tm) {
        PC_TRY(imp_const_floats(g, nd, tm, 1, &v));
        float on = *v;
        free(v);
        if (on != 0) return imp_node_error(g, nd, "training_mode=true is not supported");
    }
    if (!(rate >= 0 && rate <= 0.99f)) return imp_node_error(g, nd, "ratio %g out of [0, 0.99]", rate);
    if (rate == 0) return alias(g, nd, x, rank2);
    imp_layer *l = layer_on(g, nd, "dropout", NULL, x);
    if (!l) return pc_fail_nomem();
    char r_text[32];
    snprintf(l->keys, sizeof l->keys, "rate=%s", imp_fmt_float(rate, r_text, sizeof r_text));
    return new_layer_output(g, nd, rank2);
}

static pc_status op_identity(imp_graph *g, const Onnx__NodeProto *nd) {
    imp_value *v = nd->n_input == 1 ? imp_find(g, nd->input[0]) : NULL;
    if (!v) return imp_node_error(g, nd, "input %s is not produced by any earlier node",
                                  nd->n_input ? nd->input[0] : "(none)");
    if (v->kind == V_LAYER) return alias(g, nd, v->layer, v->rank2);
    if (v->kind == V_SHORTCUT) g->layers[v->layer].consumers += 1000;
    return imp_set_value(g, nd->output[0], *v);
}

static pc_status op_constant(imp_graph *g, const Onnx__NodeProto *nd) {
    const Onnx__AttributeProto *a = imp_attr(nd, "value");
    if (!a || !a->t) {
        const char *what = nd->n_attribute && nd->attribute[0]->name ? nd->attribute[0]->name : "none";
        return imp_node_error(g, nd, "only the 'value' tensor attribute is supported (it has %s)", what);
    }
    return imp_set_value(g, nd->output[0], (imp_value){.kind = V_CONST, .t = a->t});
}

/* An element-wise layer of `kind` on input 0 (keys: its section's key=value words). */
static pc_status elementwise(imp_graph *g, const Onnx__NodeProto *nd, const char *kind,
                             const char *keys) {
    int x, rank2;
    PC_TRY(imp_input_layer(g, nd, 0, &x, &rank2));
    imp_layer *l = layer_on(g, nd, kind, NULL, x);
    if (!l) return pc_fail_nomem();
    snprintf(l->keys, sizeof l->keys, "%s", keys);
    return new_layer_output(g, nd, rank2);
}

static pc_status op_hardswish(imp_graph *g, const Onnx__NodeProto *nd) {
    return elementwise(g, nd, "hardswish", "");
}

/* HardSigmoid, or HardSwish when it is PyTorch's hardsigmoid (alpha 1/6, beta 1/2) and its
 * only reader multiplies it by its input (torch.onnx's hardswish below opset 14). */
static pc_status op_hardsigmoid(imp_graph *g, const Onnx__NodeProto *nd) {
    float alpha = imp_attr_float(nd, "alpha", 0.2f), beta = imp_attr_float(nd, "beta", 0.5f);
    int mul = fabsf(alpha - 1.0f / 6) < 1e-7f && beta == 0.5f
                  ? sole_reader(g, nd->output[0], "Mul") : -1;
    const Onnx__NodeProto *m = mul < 0 ? NULL : g->mp->graph->node[mul];
    if (m && m->n_input == 2 && nd->n_input == 1 &&
        (strcmp(m->input[0], nd->input[0]) == 0 || strcmp(m->input[1], nd->input[0]) == 0)) {
        int x, rank2;
        PC_TRY(imp_input_layer(g, nd, 0, &x, &rank2));
        if (!layer_on(g, nd, "hardswish", NULL, x)) return pc_fail_nomem();
        g->layers[x].consumers--; /* x is read twice (HardSigmoid, Mul) by the one layer */
        g->done[mul] = 1;
        return imp_map_value(g, m->output[0], g->n_layers - 1, rank2);
    }
    char keys[96], a[32], b[32];
    snprintf(keys, sizeof keys, "alpha=%s beta=%s",
             imp_fmt_float(imp_attr_float(nd, "alpha", 0.2f), a, sizeof a),
             imp_fmt_float(imp_attr_float(nd, "beta", 0.5f), b, sizeof b));
    return elementwise(g, nd, "hardsigmoid", keys);
}

/* Sigmoid, or SiLU when the only reader of the sigmoid multiplies it by its input. */
static pc_status op_sigmoid(imp_graph *g, const Onnx__NodeProto *nd) {
    const Onnx__GraphProto *gp = g->mp->graph;
    int mul = sole_reader(g, nd->output[0], "Mul");
    const Onnx__NodeProto *m = mul < 0 ? NULL : gp->node[mul];
    if (!m || m->n_input != 2 || nd->n_input != 1 ||
        (strcmp(m->input[0], nd->input[0]) != 0 && strcmp(m->input[1], nd->input[0]) != 0))
        return elementwise(g, nd, "sigmoid", "");
    int x, rank2;
    PC_TRY(imp_input_layer(g, nd, 0, &x, &rank2));
    if (!layer_on(g, nd, "silu", NULL, x)) return pc_fail_nomem();
    g->layers[x].consumers--; /* x is read twice (Sigmoid, Mul) by the one [silu] */
    g->done[mul] = 1;
    return imp_map_value(g, m->output[0], g->n_layers - 1, rank2);
}

/* A Clip bound: an input (opset 11 and later) or an attribute; absent: unbounded. */
static pc_status clip_bound(imp_graph *g, const Onnx__NodeProto *nd, int k, const char *attr,
                            int *have, float *v) {
    const Onnx__TensorProto *t;
    const Onnx__AttributeProto *a = imp_attr(nd, attr);
    *have = 0;
    if (a && a->has_f) {
        *have = 1, *v = a->f;
    } else {
        PC_TRY(imp_input_const(g, nd, k, 1, &t));
        float *c;
        if (t) {
            PC_TRY(imp_const_floats(g, nd, t, 1, &c));
            *have = 1, *v = *c;
            free(c);
        }
    }
    if (*have && (*v >= FLT_MAX || *v <= -FLT_MAX)) *have = 0; /* infinite: unbounded */
    if (*have && *v != *v) return imp_node_error(g, nd, "%s is NaN", attr);
    return PC_OK;
}

static pc_status op_clip(imp_graph *g, const Onnx__NodeProto *nd) {
    int have_lo, have_hi;
    float lo = 0, hi = 0;
    PC_TRY(clip_bound(g, nd, 1, "min", &have_lo, &lo));
    PC_TRY(clip_bound(g, nd, 2, "max", &have_hi, &hi));
    if (have_lo && have_hi && lo > hi) return imp_node_error(g, nd, "min %g above max %g", lo, hi);
    if (have_lo && have_hi && lo == 0.0f && hi == 6.0f) { /* ReLU6: fused like ReLU */
        int x, rank2;
        PC_TRY(imp_input_layer(g, nd, 0, &x, &rank2));
        return add_activation(g, nd, x, rank2, PC_ACT_RELU6, 1, nd->output[0]);
    }
    if (!have_lo && !have_hi) { /* no bounds: the identity */
        int x, rank2;
        PC_TRY(imp_input_layer(g, nd, 0, &x, &rank2));
        return alias(g, nd, x, rank2);
    }
    char keys[96] = "", a[32], b[32];
    if (have_lo) snprintf(keys, sizeof keys, "min=%s", imp_fmt_float(lo, a, sizeof a));
    if (have_hi)
        snprintf(keys + strlen(keys), sizeof keys - strlen(keys), "%smax=%s", have_lo ? " " : "",
                 imp_fmt_float(hi, b, sizeof b));
    return elementwise(g, nd, "clip", keys);
}

static pc_status op_maxpool(imp_graph *g, const Onnx__NodeProto *nd) { return op_pool(g, nd, 1); }
static pc_status op_avgpool(imp_graph *g, const Onnx__NodeProto *nd) { return op_pool(g, nd, 0); }
static pc_status op_global_avg(imp_graph *g, const Onnx__NodeProto *nd) { return op_gap(g, nd, 1); }

static const struct {
    const char *op;
    pc_status (*fn)(imp_graph *g, const Onnx__NodeProto *nd);
} handlers[] = {
    {"Conv", op_conv}, {"BatchNormalization", op_batchnorm}, {"Relu", op_relu},
    {"MaxPool", op_maxpool}, {"AveragePool", op_avgpool}, {"GlobalAveragePool", op_global_avg},
    {"ReduceMean", op_reduce_mean}, {"Flatten", op_flatten}, {"Reshape", op_reshape},
    {"Gemm", op_gemm}, {"MatMul", op_matmul}, {"Add", op_add}, {"Mul", op_mul}, {"Div", op_div},
    {"Slice", op_slice}, {"Pad", op_pad}, {"Dropout", op_dropout}, {"Identity", op_identity},
    {"Constant", op_constant}, {"HardSwish", op_hardswish}, {"HardSigmoid", op_hardsigmoid},
    {"Sigmoid", op_sigmoid}, {"Clip", op_clip}, {"Concat", op_concat},
};

pc_status imp_node(imp_graph *g, int i) {
    const Onnx__NodeProto *nd = g->mp->graph->node[i];
    if (g->done[i]) return PC_OK;
    if (nd->domain && *nd->domain && strcmp(nd->domain, "ai.onnx") != 0)
        return imp_node_error(g, nd, "operator of domain '%s' is not supported",
                              nd->domain ? nd->domain : "");
    if (!*nd->output[0]) return imp_node_error(g, nd, "has no output"); /* an empty name */
    for (size_t k = 0; k < sizeof handlers / sizeof handlers[0]; k++)
        if (strcmp(handlers[k].op, nd->op_type) == 0) return handlers[k].fn(g, nd);
    return imp_node_error(g, nd, "operator %s is not supported (docs/interchange.md lists the "
                          "supported ones)", nd->op_type);
}
