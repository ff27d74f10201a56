/* ONNX import: the graph state, attributes and constant tensors. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/import_graph.h"

pc_status imp_node_error(const imp_graph *g, const Onnx__NodeProto *nd, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return pc_fail(PC_ERR_DATA, "%s: node %s (%s): %s", g->path,
                   nd->name && *nd->name ? nd->name : "(unnamed)", nd->op_type ? nd->op_type : "?",
                   what);
}

imp_value *imp_find(imp_graph *g, const char *name) {
    for (int i = g->n_values - 1; i >= 0; i--)
        if (strcmp(g->values[i].name, name) == 0) return &g->values[i];
    return NULL;
}

pc_status imp_set_value(imp_graph *g, const char *name, imp_value v) {
    v.name = name;
    imp_value *old = imp_find(g, name);
    if (old) {
        *old = v;
        return PC_OK;
    }
    if (g->n_values == g->cap_values) {
        int cap = g->cap_values ? 2 * g->cap_values : 256;
        imp_value *grown = realloc(g->values, sizeof *grown * cap);
        if (!grown) return pc_fail_nomem();
        g->values = grown;
        g->cap_values = cap;
    }
    g->values[g->n_values++] = v;
    return PC_OK;
}

/* base as a layer name ("layer1.0.conv1" -> "layer1_0_conv1"): letters, digits, '_' and '-',
 * at most 30 characters, and neither "input" nor a number. */
static void clean_name(const char *base, char clean[32]) {
    int n = 0;
    for (const char *p = base; *p && n < 30; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-';
        if (!ok && (n == 0 || clean[n - 1] == '_')) continue;
        clean[n++] = ok ? c : '_';
    }
    while (n && clean[n - 1] == '_') n--;
    clean[n] = 0;
    if (!n || strcmp(clean, "input") == 0 || (clean[0] == '-' || (clean[0] >= '0' && clean[0] <= '9')))
        snprintf(clean + n, 32 - n, "%sn", n ? "_" : "");
}

static int name_taken(const imp_graph *g, const char *name) {
    for (int i = 0; i < g->n_layers; i++)
        if (strcmp(g->layers[i].name, name) == 0 || strcmp(g->layers[i].alias, name) == 0) return 1;
    return 0;
}

/* A layer name from base, unique among the layers' names and aliases. */
static void unique_name(imp_graph *g, const char *base, char *out, size_t size) {
    char clean[32];
    clean_name(base, clean);
    snprintf(out, size, "%s", clean);
    for (int k = 2; name_taken(g, out); k++) snprintf(out, size, "%.28s_%d", clean, k % 100000);
}

void imp_alias_layer(imp_graph *g, int x, const Onnx__NodeProto *activation) {
    char clean[32];
    clean_name(activation->name && *activation->name ? activation->name
               : activation->n_output ? activation->output[0] : "", clean);
    /* a taken name stays the other layer's: a renamed alias would name nothing users know */
    if (!name_taken(g, clean)) snprintf(g->layers[x].alias, sizeof g->layers[x].alias, "%s", clean);
}

imp_layer *imp_new_layer(imp_graph *g, const Onnx__NodeProto *nd, const char *kind,
                         const char *base_name) {
    if (g->n_layers == g->cap_layers) {
        int cap = g->cap_layers ? 2 * g->cap_layers : 64;
        imp_layer *grown = realloc(g->layers, sizeof *grown * cap);
        if (!grown) return NULL;
        g->layers = grown;
        g->cap_layers = cap;
    }
    imp_layer *l = &g->layers[g->n_layers];
    memset(l, 0, sizeof *l);
    snprintf(l->kind, sizeof l->kind, "%s", kind);
    l->scale = 1.0f;
    const char *base = base_name ? base_name : nd && nd->name && *nd->name ? nd->name : kind;
    unique_name(g, base, l->name, sizeof l->name);
    g->n_layers++;
    return l;
}

int imp_consumers(const imp_graph *g, const char *name) {
    const Onnx__GraphProto *gp = g->mp->graph;
    int n = 0;
    for (size_t i = 0; i < gp->n_node; i++)
        for (size_t k = 0; k < gp->node[i]->n_input; k++) n += strcmp(gp->node[i]->input[k], name) == 0;
    for (size_t i = 0; i < gp->n_output; i++) n += strcmp(gp->output[i]->name, name) == 0;
    return n;
}

const Onnx__AttributeProto *imp_attr(const Onnx__NodeProto *nd, const char *name) {
    for (size_t i = 0; i < nd->n_attribute; i++)
        if (nd->attribute[i]->name && strcmp(nd->attribute[i]->name, name) == 0)
            return nd->attribute[i];
    return NULL;
}

int64_t imp_attr_int(const Onnx__NodeProto *nd, const char *name, int64_t def) {
    const Onnx__AttributeProto *a = imp_attr(nd, name);
    return a && a->has_i ? a->i : def;
}

float imp_attr_float(const Onnx__NodeProto *nd, const char *name, float def) {
    const Onnx__AttributeProto *a = imp_attr(nd, name);
    return a && a->has_f ? a->f : def;
}

static size_t elem_size(int32_t type) {
    switch (type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return 8;
    default: return 0;
    }
}

/* The element count from the dims, and a check that the stored data holds exactly that. */
pc_status imp_const_numel(const imp_graph *g, const Onnx__NodeProto *nd,
                          const Onnx__TensorProto *t, int64_t *numel) {
    const char *name = t->name && *t->name ? t->name : "(constant)";
    int64_t n = 1;
    for (size_t d = 0; d < t->n_dims; d++) {
        if (t->dims[d] < 0 || (t->dims[d] && n > ((int64_t)1 << 34) / t->dims[d]))
            return imp_node_error(g, nd, "tensor %s has a negative or huge dimension", name);
        n *= t->dims[d];
    }
    size_t es = elem_size(t->data_type);
    if (!es)
        return imp_node_error(g, nd, "tensor %s has data type %d; float, double, int32 and "
                              "int64 are supported", name, (int)t->data_type);
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return imp_node_error(g, nd, "tensor %s is stored in an external file, which is not "
                              "supported (save the model with its data inside)", name);
    int64_t have = t->has_raw_data ? (int64_t)(t->raw_data.len / es)
                 : t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? (int64_t)t->n_float_data
                 : t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ? (int64_t)t->n_double_data
                 : t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ? (int64_t)t->n_int64_data
                                                                       : (int64_t)t->n_int32_data;
    if (have != n || (t->has_raw_data && t->raw_data.len != (size_t)n * es))
        return imp_node_error(g, nd, "tensor %s holds %lld values, its shape says %lld", name,
                              (long long)have, (long long)n);
    *numel = n;
    return PC_OK;
}

/* Element i as a double, whatever the stored type (raw data is little-endian). */
static double elem(const Onnx__TensorProto *t, int64_t i) {
    if (t->has_raw_data) {
        const uint8_t *p = t->raw_data.data + i * elem_size(t->data_type);
        float f; double d; int32_t i32; int64_t i64;
        switch (t->data_type) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: memcpy(&f, p, 4); return f;
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: memcpy(&d, p, 8); return d;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: memcpy(&i32, p, 4); return i32;
        default: memcpy(&i64, p, 8); return (double)i64;
        }
    }
    switch (t->data_type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return t->float_data[i];
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: return t->double_data[i];
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return t->int32_data[i];
    default: return (double)t->int64_data[i];
    }
}

pc_status imp_const_floats(const imp_graph *g, const Onnx__NodeProto *nd,
                           const Onnx__TensorProto *t, int64_t want, float **out) {
    int64_t n;
    PC_TRY(imp_const_numel(g, nd, t, &n));
    if (want >= 0 && n != want)
        return imp_node_error(g, nd, "tensor %s has %lld values, expected %lld",
                              t->name ? t->name : "(constant)", (long long)n, (long long)want);
    if (!(*out = malloc(sizeof(float) * (n ? n : 1)))) return pc_fail_nomem();
    if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && t->has_raw_data)
        memcpy(*out, t->raw_data.data, sizeof(float) * n); /* bit for bit */
    else
        for (int64_t i = 0; i < n; i++) (*out)[i] = (float)elem(t, i);
    return PC_OK;
}

const char *imp_fmt_float(float v, char *buf, size_t size) {
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, size, "%.*g", digits, (double)v);
        if ((float)strtod(buf, NULL) == v) break;
    }
    return buf;
}

pc_status imp_const_ints(const imp_graph *g, const Onnx__NodeProto *nd,
                         const Onnx__TensorProto *t, int64_t max, int64_t *out, int *n) {
    int64_t numel;
    PC_TRY(imp_const_numel(g, nd, t, &numel));
    if (numel > max)
        return imp_node_error(g, nd, "tensor %s has %lld values, expected at most %lld",
                              t->name ? t->name : "(constant)", (long long)numel, (long long)max);
    for (int64_t i = 0; i < numel; i++) {
        double d = elem(t, i); /* INT64_MAX ends (Slice) saturate rather than overflow */
        int64_t i64 = 0;
        if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && t->has_raw_data)
            memcpy(&i64, t->raw_data.data + 8 * i, 8);
        else if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
            i64 = t->int64_data[i];
        else if (d != floor(d)) /* NaN too (found by fuzz_onnx: its conversion is undefined) */
            return imp_node_error(g, nd, "tensor %s holds %g where an integer is expected",
                                  t->name ? t->name : "(constant)", d);
        else
            i64 = d >= 9.2e18 ? INT64_MAX : d <= -9.2e18 ? INT64_MIN : (int64_t)d;
        out[i] = i64;
    }
    *n = (int)numel;
    return PC_OK;
}

pc_status imp_input_const(imp_graph *g, const Onnx__NodeProto *nd, int k, int optional,
                          const Onnx__TensorProto **t) {
    *t = NULL;
    if ((size_t)k >= nd->n_input || !*nd->input[k]) {
        if (optional) return PC_OK;
        return imp_node_error(g, nd, "input %d is missing", k);
    }
    imp_value *v = imp_find(g, nd->input[k]);
    if (!v) return imp_node_error(g, nd, "input %s is neither an initializer nor an earlier "
                                  "node's output (missing initializer?)", nd->input[k]);
    if (v->kind != V_CONST)
        return imp_node_error(g, nd, "input %s must be a constant (an initializer or a Constant "
                              "node); computed values there are not supported", nd->input[k]);
    *t = v->t;
    return PC_OK;
}

pc_status imp_map_value(imp_graph *g, const char *name, int layer, int rank2) {
    g->layers[layer].consumers += imp_consumers(g, name);
    return imp_set_value(g, name, (imp_value){.kind = V_LAYER, .layer = layer, .rank2 = rank2});
}

pc_status imp_input_layer(imp_graph *g, const Onnx__NodeProto *nd, int k, int *layer, int *rank2) {
    if ((size_t)k >= nd->n_input || !*nd->input[k])
        return imp_node_error(g, nd, "input %d is missing", k);
    imp_value *v = imp_find(g, nd->input[k]);
    if (!v) return imp_node_error(g, nd, "input %s is not produced by any earlier node",
                                  nd->input[k]);
    if (v->kind != V_LAYER)
        return imp_node_error(g, nd, "input %s is a %s where parcnn expects a computed tensor",
                              nd->input[k], v->kind == V_CONST ? "constant" : "strided shortcut");
    *layer = v->layer;
    if (rank2) *rank2 = v->rank2;
    return PC_OK;
}
