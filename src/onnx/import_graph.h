/* The state of an ONNX import while it walks the graph (src/onnx/import*.c): the values
 * (tensors) the nodes produce, and the parcnn layers they become. Internal to src/onnx. */
#ifndef PC_ONNX_IMPORT_GRAPH_H
#define PC_ONNX_IMPORT_GRAPH_H

#include <stdint.h>

#include "core/common.h"
#include "nn/model.h"
#include "onnx.pb-c.h"

#define IMP_MAX_INPUTS 32 /* [concat] takes up to 32 */

/* A parcnn layer being built: its model-file section and its parameters. */
typedef struct {
    char kind[16];              /* model-file section: conv, dense, batchnorm, ... */
    char name[40];
    char alias[40];             /* the name of an activation fused into it, or "" */
    int inputs[IMP_MAX_INPUTS], n_inputs; /* earlier layers (0: the network's input) */
    char keys[192];             /* key=value words of the section */
    pc_activation act;
    int c, h, w;                /* output shape per sample */
    float scale;                /* dense: output multiplier */
    int bias;                   /* conv/dense: has a bias */
    const char *trainable;      /* its trainable= ("bias": a per-channel Add's unit scale stays
                                   1), or NULL for the default */
    float *weight, *bias_v, *mean, *var; /* owned; dense weight is (units, inputs) */
    int64_t weight_n, bias_n;
    int consumers;              /* node inputs reading its output under any name (an activation
                                   fuses into it only when nothing else does) */
} imp_layer;

typedef enum { V_LAYER = 1, V_CONST, V_SHORTCUT } imp_value_kind;

/* A named tensor of the graph. */
typedef struct {
    const char *name;           /* owned by the ModelProto */
    imp_value_kind kind;
    int layer;                  /* V_LAYER, V_SHORTCUT: the layer whose output it is */
    const Onnx__TensorProto *t; /* V_CONST */
    int stride, cpad;           /* V_SHORTCUT: subsampled by stride, channels zero-padded by cpad */
    int rank2;                  /* V_LAYER: read as (N, features) rather than (N, C, H, W) */
} imp_value;

typedef struct {
    const char *path;
    Onnx__ModelProto *mp;
    int opset;
    imp_layer *layers;
    int n_layers, cap_layers;
    imp_value *values;
    int n_values, cap_values;
    char *done;                 /* per node: already consumed by a fused pattern */
} imp_graph;

/* Errors about a node: "FILE: node NAME (OP): what". */
pc_status imp_node_error(const imp_graph *g, const Onnx__NodeProto *nd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

imp_value *imp_find(imp_graph *g, const char *name); /* NULL when absent */
pc_status imp_set_value(imp_graph *g, const char *name, imp_value v);
/* Give layer x the sanitized name of the activation node fused into it as its alias=, unless
 * that name is taken. */
void imp_alias_layer(imp_graph *g, int x, const Onnx__NodeProto *activation);
imp_layer *imp_new_layer(imp_graph *g, const Onnx__NodeProto *nd, const char *kind,
                         const char *base_name);
/* How many node inputs (and graph outputs) read `name`. */
int imp_consumers(const imp_graph *g, const char *name);

/* Attributes. */
const Onnx__AttributeProto *imp_attr(const Onnx__NodeProto *nd, const char *name);
int64_t imp_attr_int(const Onnx__NodeProto *nd, const char *name, int64_t def);
float imp_attr_float(const Onnx__NodeProto *nd, const char *name, float def);

/* Constant tensors: element count, and their values converted to float / int64 (count
 * checked against want, -1 for any). The copies are malloc'ed. */
pc_status imp_const_numel(const imp_graph *g, const Onnx__NodeProto *nd,
                          const Onnx__TensorProto *t, int64_t *numel);
pc_status imp_const_floats(const imp_graph *g, const Onnx__NodeProto *nd,
                           const Onnx__TensorProto *t, int64_t want, float **out);
pc_status imp_const_ints(const imp_graph *g, const Onnx__NodeProto *nd,
                         const Onnx__TensorProto *t, int64_t max, int64_t *out, int *n);
/* The shortest decimal text that reads back as exactly v. */
const char *imp_fmt_float(float v, char *buf, size_t size);
/* Input k of the node as a constant (an initializer, a Constant node's output), or an
 * error naming it; NULL without error when the input is absent and optional. */
pc_status imp_input_const(imp_graph *g, const Onnx__NodeProto *nd, int k, int optional,
                          const Onnx__TensorProto **t);
/* Input k as a layer output (not a constant); rank2 (may be NULL): read as 2-D. */
pc_status imp_input_layer(imp_graph *g, const Onnx__NodeProto *nd, int k, int *layer, int *rank2);
/* Tensor `name` is the output of layer (rank2: as a 2-D tensor); its readers count as the
 * layer's consumers. */
pc_status imp_map_value(imp_graph *g, const char *name, int layer, int rank2);

/* The operators: one node (or a fused group starting at node i) into layers and values. */
pc_status imp_node(imp_graph *g, int i);

#endif
