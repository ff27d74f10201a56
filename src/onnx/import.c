/* ONNX file -> parcnn model: read with protobuf-c, walk the graph in its (topological)
 * node order turning operators into layers (import_ops.c), write the layers as model-file
 * text, parse it with pc_model_parse and copy the weights in. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "onnx/import_graph.h"
#include "onnx/onnx.h"

int pc_onnx_is_onnx_path(const char *path) {
    size_t n = strlen(path);
    return n > 5 && strcasecmp(path + n - 5, ".onnx") == 0;
}

static pc_status read_all(const char *path, uint8_t **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return pc_fail(PC_ERR_DATA, "%s: cannot open: %s", path, strerror(errno));
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    pc_status st = PC_OK;
    if (n < 0 || n > (2L << 30)) st = pc_fail(PC_ERR_DATA, "%s: unreadable or larger than 2 GB", path);
    else if (!(*data = malloc(n ? n : 1))) st = pc_fail(PC_ERR_NOMEM, "%s: out of memory", path);
    else if (fseek(f, 0, SEEK_SET) != 0 || fread(*data, 1, n, f) != (size_t)n)
        st = pc_fail(PC_ERR_DATA, "%s: read error", path);
    fclose(f);
    *len = (size_t)n;
    return st;
}

/* What ONNX requires and protobuf leaves NULL or empty when absent: every node's op_type and
 * first output (every operator has one; the fused patterns follow output[0] from node to
 * node), and the graph's input and output names. */
static pc_status check_names(const imp_graph *g) {
    const Onnx__GraphProto *gp = g->mp->graph;
    for (size_t i = 0; i < gp->n_node; i++) {
        const char *name = gp->node[i]->name ? gp->node[i]->name : "unnamed";
        if (!gp->node[i]->op_type)
            return pc_fail(PC_ERR_DATA, "%s: node %zu (%s) has no op_type", g->path, i, name);
        if (!gp->node[i]->n_output)
            return pc_fail(PC_ERR_DATA, "%s: node %zu (%s) has no output", g->path, i, name);
    }
    for (size_t i = 0; i < gp->n_input; i++)
        if (!gp->input[i]->name)
            return pc_fail(PC_ERR_DATA, "%s: graph input %zu has no name", g->path, i);
    for (size_t i = 0; i < gp->n_output; i++)
        if (!gp->output[i]->name)
            return pc_fail(PC_ERR_DATA, "%s: graph output %zu has no name", g->path, i);
    return PC_OK;
}

/* Unpack and check the model's header: a graph, and the default-domain opset 9 to 17. */
static pc_status load_proto(const char *path, imp_graph *g) {
    uint8_t *data = NULL;
    size_t len = 0;
    pc_status st = read_all(path, &data, &len);
    if (st == PC_OK && !(g->mp = onnx__model_proto__unpack(NULL, len, data)))
        st = pc_fail(PC_ERR_DATA, "%s: not an ONNX model (truncated or corrupt protobuf)", path);
    free(data);
    PC_TRY(st);
    if (!g->mp->graph || !g->mp->graph->n_node)
        return pc_fail(PC_ERR_DATA, "%s: the ONNX model has no graph", path);
    for (size_t i = 0; i < g->mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *op = g->mp->opset_import[i];
        if (!op->domain || !*op->domain || strcmp(op->domain, "ai.onnx") == 0) g->opset = (int)op->version;
    }
    if (g->opset < 9 || g->opset > 17)
        return pc_fail(PC_ERR_DATA, "%s: opset %d of the default domain; parcnn imports opsets "
                       "9 to 17", path, g->opset);
    if (!(g->done = calloc(g->mp->graph->n_node, 1))) return pc_fail_nomem();
    return check_names(g);
}

static int is_initializer(const imp_graph *g, const char *name) {
    const Onnx__GraphProto *gp = g->mp->graph;
    for (size_t i = 0; i < gp->n_initializer; i++)
        if (gp->initializer[i]->name && strcmp(gp->initializer[i]->name, name) == 0) return 1;
    return 0;
}

/* The graph's one (non-initializer) input: float (N, C, H, W) with C, H, W known. */
static pc_status graph_input(imp_graph *g) {
    const Onnx__GraphProto *gp = g->mp->graph;
    const Onnx__ValueInfoProto *in = NULL;
    for (size_t i = 0; i < gp->n_input; i++) {
        if (is_initializer(g, gp->input[i]->name)) continue;
        if (in) return pc_fail(PC_ERR_DATA, "%s: the graph has several inputs (%s, %s); parcnn "
                               "takes one image tensor", g->path, in->name, gp->input[i]->name);
        in = gp->input[i];
    }
    if (!in) return pc_fail(PC_ERR_DATA, "%s: the graph has no input", g->path);
    const Onnx__TypeProto *tp = in->type;
    const Onnx__TensorShapeProto *sh = tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
                                           ? tp->tensor_type->shape : NULL;
    if (!sh || tp->tensor_type->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || sh->n_dim != 4)
        return pc_fail(PC_ERR_DATA, "%s: input %s is not a 4-D float tensor (N, C, H, W)", g->path,
                       in->name);
    int64_t d[3];
    for (int k = 0; k < 3; k++) {
        const Onnx__TensorShapeProto__Dimension *dim = sh->dim[k + 1];
        d[k] = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ? dim->dim_value : -1;
    }
    if (d[0] < 1 || d[1] < 1 || d[2] < 1)
        return pc_fail(PC_ERR_DATA, "%s: input %s: channels, height and width must be fixed "
                       "numbers (only the batch may be symbolic)", g->path, in->name);
    if (d[0] > 4 || d[1] > 16384 || d[2] > 16384)
        return pc_fail(PC_ERR_DATA, "%s: input %s of %lldx%lldx%lld: parcnn takes 1 to 4 channels "
                       "and at most 16384x16384 pixels", g->path, in->name, (long long)d[0],
                       (long long)d[1], (long long)d[2]);
    imp_layer *l = imp_new_layer(g, NULL, "input", "input");
    if (!l) return pc_fail_nomem();
    strcpy(l->name, "input");
    l->c = (int)d[0], l->h = (int)d[1], l->w = (int)d[2];
    return imp_map_value(g, in->name, 0, 0);
}

static pc_status walk(imp_graph *g) {
    const Onnx__GraphProto *gp = g->mp->graph;
    for (size_t i = 0; i < gp->n_initializer; i++)
        PC_TRY(imp_set_value(g, gp->initializer[i]->name ? gp->initializer[i]->name : "",
                             (imp_value){.kind = V_CONST, .t = gp->initializer[i]}));
    PC_TRY(graph_input(g));
    for (size_t i = 0; i < gp->n_node; i++) PC_TRY(imp_node(g, (int)i));
    if (gp->n_output != 1)
        return pc_fail(PC_ERR_DATA, "%s: the graph has %zu outputs; parcnn expects one (the "
                       "logits)", g->path, gp->n_output);
    imp_value *out = imp_find(g, gp->output[0]->name);
    if (!out || out->kind != V_LAYER || out->layer != g->n_layers - 1 || out->layer == 0)
        return pc_fail(PC_ERR_DATA, "%s: output %s is not the last layer's result", g->path,
                       gp->output[0]->name);
    const imp_layer *last = &g->layers[out->layer];
    if (last->act != PC_ACT_NONE || (last->h != 1 || last->w != 1))
        return pc_fail(PC_ERR_DATA, "%s: output %s must be the class scores (N, classes) without "
                       "an activation", g->path, gp->output[0]->name);
    return PC_OK;
}

/* The [section] of layer i. */
static void section_text(const imp_graph *g, int i, char *buf, size_t size) {
    const imp_layer *l = &g->layers[i];
    int n = snprintf(buf, size, "[%s] name=%s", l->kind, l->name);
    if (*l->alias) n += snprintf(buf + n, size - n, " alias=%s", l->alias);
    if (l->n_inputs > 1 || l->inputs[0] != i - 1)
        for (int k = 0; k < l->n_inputs; k++)
            n += snprintf(buf + n, size - n, "%s%s", k ? "," : " from=", g->layers[l->inputs[k]].name);
    if (strcmp(l->kind, "dense") == 0) {
        n += snprintf(buf + n, size - n, " units=%d bias=%d", l->c, l->bias);
        char sc[32];
        if (l->scale != 1.0f)
            n += snprintf(buf + n, size - n, " scale=%s", imp_fmt_float(l->scale, sc, sizeof sc));
    } else if (*l->keys) {
        n += snprintf(buf + n, size - n, " %s", l->keys);
    }
    if (strcmp(l->kind, "conv") == 0) n += snprintf(buf + n, size - n, " bias=%d", l->bias);
    if (l->trainable) n += snprintf(buf + n, size - n, " trainable=%s", l->trainable);
    if (l->act && strcmp(l->kind, "relu") != 0 && strcmp(l->kind, "relu6") != 0)
        snprintf(buf + n, size - n, " activation=%s", pc_activation_name(l->act));
}

static char *model_text(const imp_graph *g) {
    /* a section: its kind, name and keys, and up to 32 input names of < 40 characters */
    size_t cap = (size_t)g->n_layers * 1600 + 256, len = 0;
    char *text = malloc(cap);
    if (!text) return NULL;
    len += snprintf(text, cap, "# imported from %s\n", g->path);
    for (int i = 1; i < g->n_layers; i++) {
        section_text(g, i, text + len, 1590);
        len += strlen(text + len);
        text[len++] = '\n';
        text[len] = 0;
    }
    return text;
}

/* Copy every imported parameter into the model built from the text. */
static pc_status copy_weights(const imp_graph *g, pc_model *m) {
    int n = pc_model_param_info(m, NULL, 0);
    pc_param_info *info = calloc(n + 1, sizeof *info);
    if (!info) return pc_fail_nomem();
    pc_model_param_info(m, info, n);
    pc_status st = PC_OK;
    for (int i = 0; i < n && st == PC_OK; i++) {
        const imp_layer *l = NULL;
        const char *dot = strrchr(info[i].name, '.');
        for (int k = 1; k < g->n_layers && !l; k++)
            if (strlen(g->layers[k].name) == (size_t)(dot - info[i].name) &&
                strncmp(g->layers[k].name, info[i].name, dot - info[i].name) == 0)
                l = &g->layers[k];
        const char *what = dot + 1;
        const float *src = !l ? NULL
                         : strcmp(what, "weight") == 0 ? l->weight
                         : strcmp(what, "bias") == 0 ? l->bias_v
                         : strcmp(what, "running_mean") == 0 ? l->mean : l->var;
        int64_t have = !l ? 0 : strcmp(what, "weight") == 0 ? l->weight_n
                              : strcmp(what, "bias") == 0 ? l->bias_n : l->c;
        if (!src || have != info[i].numel) {
            st = pc_fail(PC_ERR_INTERNAL, "%s: no imported values for parameter %s", g->path,
                         info[i].name);
            break;
        }
        memcpy((info[i].is_buffer ? m->buffers : m->params) + info[i].offset, src,
               sizeof(float) * info[i].numel);
    }
    free(info);
    return st;
}

/* A JSON list of n numbers from metadata_props, into v. */
static int json_floats(const char *s, float *v, int n) {
    cJSON *a = s ? cJSON_Parse(s) : NULL;
    int ok = cJSON_IsArray(a) && cJSON_GetArraySize(a) == n;
    for (int i = 0; ok && i < n; i++) {
        cJSON *it = cJSON_GetArrayItem(a, i);
        ok = cJSON_IsNumber(it);
        if (ok) v[i] = (float)it->valuedouble;
    }
    cJSON_Delete(a);
    return ok;
}

static const char *meta_prop(const imp_graph *g, const char *key) {
    for (size_t i = 0; i < g->mp->n_metadata_props; i++) {
        const Onnx__StringStringEntryProto *e = g->mp->metadata_props[i];
        if (e->key && e->value && strcmp(e->key, key) == 0) return e->value;
    }
    return NULL;
}

/* Class names, normalization and input shape: a parcnn export's metadata_props, the
 * options, or the defaults (classes "0".."K-1", mean 0, std 1). */
static pc_status fill_meta(const imp_graph *g, const pc_onnx_import_options *opt, int classes,
                           pc_model_meta *meta) {
    const imp_layer *in = &g->layers[0];
    memset(meta, 0, sizeof *meta);
    meta->c = in->c, meta->h = in->h, meta->w = in->w;
    meta->classes = classes;
    if (!(meta->class_names = calloc(classes, sizeof(char *)))) return pc_fail_nomem();
    cJSON *names = meta_prop(g, "classes") ? cJSON_Parse(meta_prop(g, "classes")) : NULL;
    int named = cJSON_IsArray(names) && cJSON_GetArraySize(names) == classes;
    for (int k = 0; k < classes; k++) {
        cJSON *it = named ? cJSON_GetArrayItem(names, k) : NULL;
        char num[16];
        snprintf(num, sizeof num, "%d", k);
        meta->class_names[k] = strdup(cJSON_IsString(it) ? it->valuestring : num);
        if (!meta->class_names[k]) {
            cJSON_Delete(names);
            return pc_fail_nomem();
        }
    }
    cJSON_Delete(names);
    for (int c = 0; c < in->c; c++) meta->mean[c] = 0.0f, meta->std[c] = 1.0f;
    json_floats(meta_prop(g, "mean"), meta->mean, in->c);
    json_floats(meta_prop(g, "std"), meta->std, in->c);
    if (opt && opt->have_mean) memcpy(meta->mean, opt->mean, sizeof meta->mean);
    if (opt && opt->have_std) memcpy(meta->std, opt->std, sizeof meta->std);
    for (int c = 0; c < in->c; c++)
        if (!(meta->std[c] > 0))
            return pc_fail(opt && opt->have_std ? PC_ERR_USAGE : PC_ERR_DATA, "%s: std must be "
                           "positive", opt && opt->have_std ? "--std" : g->path);
    return PC_OK;
}

static pc_status build_model(imp_graph *g, pc_model **out) {
    const imp_layer *last = &g->layers[g->n_layers - 1], *in = &g->layers[0];
    char *text = model_text(g);
    if (!text) return pc_fail_nomem();
    pc_status st = pc_model_parse(text, g->path, in->c, in->h, in->w, last->c, 0, out);
    free(text);
    if (st != PC_OK) return pc_fail(st, "%s: the converted model: %s", g->path, pc_last_error());
    st = copy_weights(g, *out);
    const char *name = meta_prop(g, "model_name");
    const char *base = strrchr(g->path, '/');
    char *dup = strdup(name ? name : base ? base + 1 : g->path);
    if (dup) {
        free((*out)->name);
        (*out)->name = dup;
    }
    if (st != PC_OK) {
        pc_model_free(*out);
        *out = NULL;
    }
    return st;
}

static void free_graph(imp_graph *g) {
    for (int i = 0; i < g->n_layers; i++) {
        imp_layer *l = &g->layers[i];
        free(l->weight), free(l->bias_v), free(l->mean), free(l->var);
    }
    free(g->layers);
    free(g->values);
    free(g->done);
    if (g->mp) onnx__model_proto__free_unpacked(g->mp, NULL);
}

pc_status pc_onnx_import(const char *path, const pc_onnx_import_options *opt, pc_model **m,
                         pc_model_meta *meta) {
    imp_graph g = {.path = path};
    *m = NULL;
    memset(meta, 0, sizeof *meta);
    pc_status st = load_proto(path, &g);
    if (st == PC_OK) st = walk(&g);
    if (st == PC_OK) st = build_model(&g, m);
    if (st == PC_OK) st = fill_meta(&g, opt, (*m)->classes, meta);
    if (st != PC_OK) {
        pc_model_free(*m);
        *m = NULL;
        pc_model_meta_free(meta);
    }
    free_graph(&g);
    return st;
}
