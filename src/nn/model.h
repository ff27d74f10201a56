/* The model graph: an ordered list of layers, each reading the outputs of
 * earlier layers, with all parameters in one flat array (and batch-norm running
 * statistics in a second flat "buffers" array), so the optimizer and the
 * gradient reduction are single loops over contiguous memory.
 *
 * Models come from a plain-text model file (docs/model-format.md): one [section] per
 * layer. Each layer kind is described once, by its descriptor (nn/layer.h, one file per
 * kind in nn/layers/), listed in nn/layer_kinds.def.
 */
#ifndef PC_MODEL_H
#define PC_MODEL_H

#include <stdint.h>

#include "core/common.h"

typedef enum {
#define PC_LAYER_KIND(KIND, ops) PC_L_##KIND,
#include "nn/layer_kinds.def"
#undef PC_LAYER_KIND
    PC_L_KIND_COUNT
} pc_layer_kind;

typedef enum { PC_ACT_NONE = 0, PC_ACT_RELU = 1, PC_ACT_GELU = 2, PC_ACT_RELU6 = 3 } pc_activation;
/* "linear", "relu", "gelu", "relu6": the model file's activation= value */
const char *pc_activation_name(pc_activation act);

/* How a conv or dense layer's weights start: He-uniform (default: bound sqrt(6/fan_in));
 * torch (PyTorch's default for Conv2d and Linear: bound 1/sqrt(fan_in)); identity (the
 * first min(filters, input channels) filters pass their input channel through, as
 * torch.nn.init.dirac_, the rest as torch); whiten (data-dependent: set by the trainer
 * from the training images, see pc_model_whiten). */
typedef enum { PC_INIT_HE = 0, PC_INIT_TORCH, PC_INIT_IDENTITY, PC_INIT_WHITEN } pc_init;

/* Which of a layer's parameters the optimizer updates (trainable= in the model file). */
enum { PC_TRAIN_WEIGHT = 1, PC_TRAIN_BIAS = 2, PC_TRAIN_ALL = 3 };

/* Size limits of every layer's output (the input images included) and parameters, so that
 * all sizes and FLOP counts are exact in 64 bits and every per-sample index fits 32 bits. */
#define PC_MAX_SIDE (1 << 24)           /* height or width */
#define PC_MAX_VALUES 2147483647LL      /* values per sample: channels x height x width */
#define PC_MAX_LAYER_PARAMS 2147483647LL /* weights + biases of one layer */

#define PC_MAX_INPUTS 32 /* [concat] of a DenseNet block reads up to 25 */
#define PC_NAME_LEN 48

typedef struct {
    pc_layer_kind kind;
    char name[PC_NAME_LEN];     /* parameter names are "<name>.weight" etc. */
    char alias[PC_NAME_LEN];    /* alias=: a second name for lookups (from=, --cut, --freeze),
                                   e.g. of an activation the ONNX import fused into it; or "" */
    int n_inputs;
    int inputs[PC_MAX_INPUTS];  /* indices of earlier layers */
    pc_activation act;          /* applied to the layer's output */
    pc_init init;               /* conv and dense weights */
    int trainable;              /* PC_TRAIN_* bits */
    float train_epochs;         /* > 0: the trainable parameters freeze after this many
                                   epochs (train_epochs= in the model file) */
    int bn_frozen;              /* batch norm: normalizes with its running statistics in
                                   training too and leaves them unchanged (a frozen pretrained
                                   backbone's, set by the trainer; no backward) */

    /* hyper-parameters (those that apply to the kind) */
    int filters, kh, kw, sh, sw, ph, pw, groups, bias; /* conv; dense uses filters as units */
    int ph_end, pw_end;         /* pad: bottom and right (ph, pw: top and left) */
    int dilation;               /* conv: taps this far apart (1: an ordinary kernel) */
    int ceil_mode, count_pad;   /* pools: ceil mode; average: divisor counts the padding */
    float rate;                 /* dropout */
    float scale;                /* dense: output multiplier (1 = none; airbench's logits 1/9) */
    float eps, momentum;        /* batch norm (PyTorch convention: new = (1-m) old + m batch) */
    float alpha, beta;          /* hardsigmoid: slope and offset; clip: min and max; pad:
                                   the value in alpha */

    /* output shape per sample */
    int c, h, w;

    /* parameters: offsets into model->params (-1 when absent) */
    int64_t weight_off, weight_n;
    int64_t bias_off, bias_n;   /* batch norm: gamma in weight, beta in bias */
    int64_t buffer_off, buffer_n; /* batch norm: running mean (c) then running var (c) */
    int64_t flops;              /* forward multiply-adds x2 per sample */
} pc_layer;

typedef struct {
    int n_layers;
    pc_layer *layers;           /* layers[0] is the input */
    int classes;
    int64_t n_params;
    float *params;
    int64_t n_buffers;
    float *buffers;
    char *source;               /* the model file text it was built from */
    char *name;                 /* zoo name or file name */
} pc_model;

/* Build a model from model-file text for inputs of (c, h, w) and `classes` outputs.
 * `origin` names the text in error messages (file name or zoo name). Parameters are
 * initialized from `seed` (He-uniform weights, zero biases, BN gamma 1 / beta 0). */
pc_status pc_model_parse(const char *text, const char *origin, int c, int h, int w, int classes,
                         uint64_t seed, pc_model **out);
/* pc_model_parse in two steps, to learn a model's size before its memory is spent: the
 * layers with their shapes and parameter offsets (n_params, n_buffers; params and buffers
 * NULL), then the parameters allocated and initialized from `seed`. */
pc_status pc_model_parse_layers(const char *text, const char *origin, int c, int h, int w,
                                int classes, pc_model **out);
pc_status pc_model_init_params(pc_model *m, uint64_t seed);
/* "simple-cnn", "minixception", "resnet20", or a path to a model file. */
pc_status pc_model_create(const char *name_or_path, int c, int h, int w, int classes,
                          uint64_t seed, pc_model **out);
void pc_model_free(pc_model *m);

/* The model for inference (nn/fold.c): a copy of m in which every batch norm whose input is
 * a convolution or a dense layer (without scale=) that has no activation and no other
 * reader is folded into that layer's weights and bias (the layer takes the batch norm's
 * activation and gains a bias; the batch norm is gone, its readers read the layer), as
 * PyTorch's optimize_for_inference does; the logits of an inference-mode forward pass are
 * m's up to float rounding. *folded (may be NULL): how many were folded. The copy keeps m's
 * source and name, which describe m: it is for running, not for saving or training. */
pc_status pc_model_fold_bn(const pc_model *m, pc_model **out, int *folded);
/* *m replaced by its folded copy (m freed); unchanged on failure. */
pc_status pc_model_fold_bn_inplace(pc_model **m);

/* The zoo: built-in model files. */
int pc_zoo_count(void);
const char *pc_zoo_name(int i);
const char *pc_zoo_text(const char *name); /* NULL when unknown */
const char *pc_zoo_summary(const char *name);

const char *pc_layer_kind_name(pc_layer_kind k);
int64_t pc_model_flops(const pc_model *m); /* forward FLOPs per sample */
/* wanted[i] (n_layers entries): the gradient of layer i's output is needed in training,
 * because layer i or a layer before it (through its inputs) has trainable parameters.
 * Not for the input images, nor for a frozen start (whitenet's whitening layer). */
void pc_model_grad_wanted(const pc_model *m, char *wanted);
/* Backward FLOPs per sample of layer i, given pc_model_grad_wanted's answer. */
int64_t pc_layer_backward_flops(const pc_model *m, const char *wanted, int i);
/* Training FLOPs per sample of the conv and dense layers alone: forward + the
 * backward-data and backward-weights that training computes (none into the input images
 * or a frozen start, no weight gradient for frozen weights); batch norm, pooling,
 * activations, adds and the optimizer are not counted. 0 if out of memory. */
int64_t pc_model_train_flops(const pc_model *m);
int64_t pc_layer_out_size(const pc_layer *l); /* c*h*w (-1 beyond 64 bits: not in a model) */
/* a * b for sizes: -1 when either is negative or the product overflows 64 bits. */
int64_t pc_size_mul(int64_t a, int64_t b);

/* What each parameter is, for per-group optimizer settings: conv and dense weights, their
 * biases, batch-norm scales and shifts, and frozen ones. */
typedef enum {
    PC_PARAM_WEIGHT = 0,
    PC_PARAM_BIAS,
    PC_PARAM_NORM_SCALE,
    PC_PARAM_NORM_SHIFT,
    PC_PARAM_FROZEN,            /* not trainable (trainable= in the model file) */
    PC_PARAM_ROLES
} pc_param_role;
/* roles[i] = the pc_param_role of flat parameter i (n_params entries). */
void pc_model_param_roles(const pc_model *m, uint8_t *roles);

/* Parameter tensors in a fixed order, with PyTorch-style names and shapes. Used for
 * safetensors files and golden tests. Returns how many there are when `names` is NULL. */
typedef struct {
    char name[PC_NAME_LEN + 16];
    int ndim;
    int64_t shape[4];
    int64_t offset, numel;
    int is_buffer;              /* lives in model->buffers, not params */
    int layer;
} pc_param_info;
/* Patch-whitening initialization (airbench's first layer) of conv layer `layer`, which
 * must read the input: from the n normalized NCHW images, the second-moment matrix of
 * all its kh x kw patches (d = c*kh*kw values), and its eigenvectors v_k with
 * eigenvalues e_k; filter k becomes v_k / sqrt(e_k + eps), largest first, and with
 * filters = 2d, filter d + k is its negative. Deterministic (a fixed summation order). */
pc_status pc_model_whiten(pc_model *m, int layer, const float *images, int64_t n, float eps);

int pc_model_param_info(const pc_model *m, pc_param_info *infos, int max);

#endif
