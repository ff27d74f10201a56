/* ONNX interchange: export a parcnn model to an ONNX file and import an ONNX file as a
 * parcnn model (model-file text + weights), read and written with protobuf-c from
 * onnx.proto (compiled at build time). docs/interchange.md lists the operators.
 *
 * Both sides agree on one convention: the graph's input is the network's input tensor
 * (N, C, H, W) after the per-channel mean/std normalization (recorded in metadata_props,
 * not in the graph), and its output is the logits (N, classes), the tensors
 * `parcnn predict --npy-in/--npy-out` exchange. */
#ifndef PC_ONNX_H
#define PC_ONNX_H

#include "nn/model.h"
#include "train/modelio.h"

#define PC_ONNX_OPSET 14 /* HardSwish */
#define PC_ONNX_IR_VERSION 8

/* Write m (with meta's input shape, classes and normalization) to path, atomically.
 * The batch dimension is symbolic ("N"). */
pc_status pc_onnx_export(const char *path, const pc_model *m, const pc_model_meta *meta);

/* What the ONNX file does not say: the normalization and class names of models from
 * other producers (a parcnn export carries its own in metadata_props, which win unless
 * overridden here). */
typedef struct {
    int have_mean, have_std;
    float mean[4], std[4];
} pc_onnx_import_options;

/* Read the graph and build the equivalent parcnn model: its model-file text is
 * m->source, weights and batch-norm statistics from the initializers or Constant nodes.
 * Errors name the file, and for graph problems the node, its op type and what is
 * unsupported or missing. opt may be NULL. */
pc_status pc_onnx_import(const char *path, const pc_onnx_import_options *opt, pc_model **m,
                         pc_model_meta *meta);

/* The file looks like ONNX (its name ends in .onnx): --weights takes it directly. */
int pc_onnx_is_onnx_path(const char *path);

#endif
