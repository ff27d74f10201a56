/* Layer kinds: one descriptor (pc_layer_ops) per kind, in one file per kind under
 * nn/layers/, listed in nn/layer_kinds.def. The descriptor says everything the model file,
 * the parameter layout and a replica's passes need to know about the kind; which kernel
 * runs (reference, vectorized C, oneDNN) and in which memory layout (plain NCHW or
 * channel-blocked) is decided inside the kind's own functions.
 *
 * This header is internal to src/nn: model.c (parsing, parameters) and exec.c (passes)
 * call the descriptors; the kinds call back the helpers declared below. */
#ifndef PC_LAYER_H
#define PC_LAYER_H

#include <stdint.h>

#include "kernels/fast/fast.h"
#include "kernels/shapes.h"
#include "nn/exec.h"
#include "nn/model.h"
#ifdef PARCNN_HAVE_DNNL
#include "kernels/dnnl/dnnl_kernels.h"
#endif

typedef struct pc_build pc_build;

/* How a layer's output is laid out when the replica keeps activations channel-blocked
 * (the oneDNN kernel sets): see assign_layouts in exec.c. */
typedef enum {
    PC_OUT_PLAIN = 0,  /* always plain NCHW (and a blocked input is converted by the kind) */
    PC_OUT_BLOCKED,    /* always blocked; reads the input images plain itself (conv) */
    PC_OUT_AS_INPUT    /* as its inputs, which must agree (blocked images: a blocked copy) */
} pc_out_layout;

/* flags */
enum {
    /* The parameters multiply the input (conv, dense): frozen ones get zero gradients and
     * no gradient work, and training FLOPs count forward + backward data + weights. */
    PC_OPS_WEIGHTED = 1,
};

typedef struct pc_layer_ops {
    const char *name;        /* the [section] name, and pc_layer_kind_name */
    const char *also;        /* another section this kind's build reads (conv: "sepconv") */
    int n_inputs;            /* layers read, given by from= (default: the previous one) */
    int max_inputs;          /* > 0: from= lists n_inputs to max_inputs layers ([concat]) */
    unsigned flags;          /* PC_OPS_* */
    pc_out_layout layout;
    pc_param_role weight_role, bias_role; /* of its weight and bias, when trainable */

    /* ---- model (model.c) */
    /* Read the section's keys (pc_build_int etc.) into the layer, whose inputs, name,
     * activation and output shape (its first input's) are set, and set its output shape,
     * weight_n, bias_n, buffer_n and forward FLOPs per sample. NULL: no keys, same shape. */
    pc_status (*build)(pc_build *b, pc_layer *l);
    /* Initial weights and buffers (biases start at zero); NULL: none. */
    void (*init)(pc_model *m, const pc_layer *l, uint64_t seed);
    /* The weight and buffer tensors' names and shapes (the bias is added by the caller);
     * returns how many were written to items (at most 3). NULL: none. */
    int (*param_info)(const pc_model *m, const pc_layer *l, pc_param_info *items);

    /* ---- a replica's passes (exec.c), on layer i of the exec */
    /* Shapes, per-layer state and kernel plans, after the outputs are allocated. Returns
     * PC_ERR_NOMEM (message set by the caller) or another error with its message. */
    pc_status (*setup)(pc_exec *ex, int i);
    /* y: the output before the activation (pc_exec_output: s->pre or s->out). */
    void (*forward)(pc_exec *ex, int i, int train, float *y);
    /* Whether the forward kernel applies the layer's activation itself; NULL: never. */
    int (*fuses_act)(const pc_exec *ex, int i);
    /* Whether the backward kernel applies the activation's gradient itself; NULL: never. */
    int (*fuses_act_backward)(const pc_exec *ex, int i);
    /* Backward for input k (called for k = 0 .. n_inputs-1 in order), dy being the
     * gradient at the output before the activation (the kind may scale it in place): dx
     * (k-th input's gradient, overwritten; NULL when not wanted), and at k = 0 the
     * parameter gradients dw and db (NULL when absent or frozen for a weighted kind). */
    void (*backward)(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw, float *db);
} pc_layer_ops;

const pc_layer_ops *pc_layer_ops_of(pc_layer_kind kind);
/* The kind whose section (name or also) is `section`, or -1. */
int pc_layer_kind_of_section(const char *section);

/* ---------------------------------------------------- building (model.c) */

/* Keys of the section being built ("classes" stands for the class count in integers). */
const char *pc_build_value(pc_build *b, const char *key); /* NULL when absent */
pc_status pc_build_int(pc_build *b, const char *key, int def, int min, int *out);
/* A key of one integer (both *h and *w) or two, HEIGHTxWIDTH ("1x7"): a window's size,
 * stride or padding. */
pc_status pc_build_int_pair(pc_build *b, const char *key, int def, int min, int *h, int *w);
pc_status pc_build_float(pc_build *b, const char *key, float def, float min, float max,
                         float *out);
/* A usage error "ORIGIN:LINE: message". */
pc_status pc_build_fail(pc_build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *pc_build_section(const pc_build *b); /* the section's name as written */
/* The k-th input of the layer being built. */
const pc_layer *pc_build_input(const pc_build *b, int k);
int pc_build_n_inputs(const pc_build *b);
/* Whether the layer being built reads the input images. */
int pc_build_reads_images(const pc_build *b);
/* Another layer after the one being built, reading it (a section that makes two layers,
 * sepconv); *l is updated as the push may move the layers. NULL when out of memory. */
pc_layer *pc_build_push(pc_build *b, pc_layer **l);
/* Shared keys: init= (weighted kinds), trainable= and train_epochs=, activation=, and the
 * layer's name (name= or layers.<section index>, plus suffix). */
pc_status pc_build_init(pc_build *b, pc_layer *l);
pc_status pc_build_trainable(pc_build *b, pc_layer *l);
pc_status pc_build_activation(pc_build *b, pc_layer *l);
pc_status pc_build_name(pc_build *b, pc_layer *l, const char *suffix);

/* Weights of a weighted kind from the seed (He-uniform or PyTorch's default by l->init),
 * identity filters for init=identity: filter f's weight at f * taps + centre is 1. */
void pc_init_weights(pc_model *m, const pc_layer *l, uint64_t seed, int64_t taps,
                     int64_t centre);
/* The tensor `name` of layer l (e.g. "weight") at the given offset. */
pc_param_info pc_param_tensor(const pc_layer *l, const char *suffix, int ndim,
                              const int64_t *shape, int64_t offset, int is_buffer);

/* ---------------------------------------------------- a replica (exec.c) */

/* A layer's weight and bias in the model's parameters (NULL when absent). */
static inline const float *pc_layer_weight(const pc_model *m, const pc_layer *l) {
    return l->weight_off >= 0 ? m->params + l->weight_off : NULL;
}
static inline const float *pc_layer_bias(const pc_model *m, const pc_layer *l) {
    return l->bias_off >= 0 ? m->params + l->bias_off : NULL;
}

/* Per-layer working state. Plans are only set for the oneDNN kernel sets. */
typedef struct {
    int blocked;     /* out, pre and dout are channel-blocked (ex->block), see assign_layouts */
    float *out;      /* (batch, c, h, w) output, after the activation */
    float *pre;      /* the output before a GELU that its kernel does not fuse (GELU's
                        backward needs its input); NULL otherwise */
    float *dout;     /* gradient of the loss w.r.t. out */
    int32_t *argmax; /* max pool (reference kernels) */
    void *pool_scratch; /* max pool (fast kernel): a padded plane */
    float *mean, *var, *invstd; /* batch norm statistics of the last training forward */
    float *plain_in; /* dense after a blocked tensor: its input in plain layout */
    pc_conv_shape conv;
    pc_dense_shape dense;
    pc_pool_shape pool;
    pc_bn_shape bn;
#ifdef PARCNN_HAVE_DNNL
    pc_dnnl_conv *dconv;
    pc_dnnl_dense *ddense;
    pc_dnnl_pool *dpool;
#endif
} layer_state;

struct pc_exec {
    const pc_model *m;
    int batch;
    int use_dnnl;
    int bf16;            /* oneDNN convolutions and dense layers in bf16 mixed precision */
    pc_conv_algo conv_algo; /* of the oneDNN convolutions */
    int block;           /* channel block of blocked activations (0: all plain) */
    layer_state *ls;
    float *scratch;      /* for gradients of outputs read by several layers */
    float *scratch_plain; /* a gradient in plain layout before it is blocked */
    float *input_blocked; /* the input images blocked, for layers other than conv reading them */
    float *logits;       /* the last layer's output, plain (its own buffer when blocked) */
    char *grad_ready;    /* per layer: dout already holds a contribution */
    /* per layer: its output's gradient is needed (pc_model_grad_wanted). Backward skips the
     * others: for a frozen first layer (whitenet's whitening), the next convolution's
     * backward data, a third of its backward. Set at every backward, as a layer with
     * train_epochs= freezes during training. */
    char *grad_wanted;
    float *dlogits;      /* the gradient at the logits, plain (last layer's dout unless blocked) */
    int train_forward;   /* last forward was in training mode */
    uint64_t seed, step;
    int64_t first_sample;
    pc_backward_hook hook;
    void *hook_ctx;
    double *prof_fwd, *prof_bwd; /* per layer seconds when profiling */
    int prof_inference;          /* profile inference forwards too (bench predict) */
};

/* Floats of layer i's output (and of its gradient): padded to whole blocks when blocked. */
int64_t pc_exec_out_floats(const pc_exec *ex, int i);
/* Layer i's k-th input as layer i reads it (the blocked images for a blocked layer that
 * is not a convolution). */
const float *pc_exec_input_of(const pc_exec *ex, int i, int k);
/* Whether layer i's k-th input is in the blocked layout as layer i reads it. */
int pc_exec_input_blocked(const pc_exec *ex, int i, int k);
/* The activation fused into a vectorized kernel. */
pc_fast_act pc_exec_fast_act(const pc_layer *l);

#endif
