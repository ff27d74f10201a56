/* A replica's working memory and kernels: activations, their gradients and
 * per-layer kernel plans for one fixed batch size (the shard size). A trainer
 * worker owns one; the model's parameters are shared read-only during a step. */
#ifndef PC_EXEC_H
#define PC_EXEC_H

#include <stdint.h>

#include "kernels/shapes.h"
#include "nn/model.h"

/* AUTO: oneDNN when built with it, else the reference kernels. */
typedef enum { PC_KERNELS_AUTO = 0, PC_KERNELS_REF, PC_KERNELS_DNNL } pc_kernel_set;
/* BF16: oneDNN's convolutions and dense layers in bfloat16 mixed precision (fp32
 * accumulation and outputs; see kernels/dnnl); not with the reference kernels. */
typedef enum { PC_PRECISION_FP32 = 0, PC_PRECISION_BF16 } pc_precision;

/* How an exec computes: the kernel set, the precision and the convolution algorithm
 * (oneDNN convolutions; the reference kernels have only direct). Each exec gets its own:
 * nothing about it is process-wide. All zero: the defaults (auto, fp32, auto). */
typedef struct {
    pc_kernel_set kernels;
    pc_precision precision;
    pc_conv_algo conv_algo;
} pc_exec_options;

typedef struct pc_exec pc_exec;

/* Batch-norm statistics of one forward pass in training mode: for every BN layer,
 * batch mean then biased variance (2*c floats), in layer order. */
int64_t pc_exec_bn_stats_size(const pc_model *m);

/* opt NULL: the defaults. */
pc_status pc_exec_create(const pc_model *m, int batch, const pc_exec_options *opt, pc_exec **out);
void pc_exec_destroy(pc_exec *ex);
/* About the bytes pc_exec_create allocates for m, batch and opt (activations, gradients,
 * kernel plans), before creating it; -1 when out of memory. */
int64_t pc_exec_bytes(const pc_model *m, int batch, const pc_exec_options *opt);
/* The algorithm layer i runs ("winograd" or "direct") when it is a oneDNN convolution,
 * else NULL. */
const char *pc_exec_conv_algo(const pc_exec *ex, int i);
const char *pc_exec_kernel_name(const pc_exec *ex);

/* The weights version of the following forward/backward calls (see
 * pc_dnnl_conv_weights_version): a non-zero value promises that the parameters do not
 * change until the version changes, so converted weights are reused across calls. 0 (the
 * initial value): no promise. */
void pc_exec_weights_version(pc_exec *ex, uint64_t version);

/* The input buffer (batch, c, h, w) to fill before forward. */
float *pc_exec_input(pc_exec *ex);

/* Forward pass. train=1 uses batch statistics (written to bn_stats when non-NULL)
 * and dropout keyed by (seed, step, first_sample + i); train=0 uses running statistics.
 * Returns the logits (batch, classes). */
const float *pc_exec_forward(pc_exec *ex, int train, uint64_t seed, uint64_t step,
                             int64_t first_sample, float *bn_stats);

/* Loss of the last forward against labels: returns the SUM of per-sample losses,
 * counts correct top-1 predictions in *correct, and seeds the backward pass with
 * dlogits = (softmax - target) * grad_scale. */
double pc_exec_loss(pc_exec *ex, const int32_t *labels, float smoothing, float grad_scale,
                    int *correct);

/* After pc_exec_loss: multiply sample s's loss gradient by row_scale[s] (class weights). */
void pc_exec_scale_dlogits(pc_exec *ex, const float *row_scale);

/* Backward pass after forward(train=1) + loss: writes every parameter gradient into
 * grads (n_params floats, overwritten). */
void pc_exec_backward(pc_exec *ex, float *grads);

/* A kernel failure in the forward and backward passes this thread ran since the last call
 * (oneDNN allocates inside some primitives' execution, which fails under a memory limit:
 * PC_ERR_NOMEM, the passes' results undefined), with its message; PC_OK when there was none.
 * Call it on the thread that ran the passes. */
pc_status pc_exec_status(const pc_exec *ex);

/* Called after each layer's backward (layers in reverse order) with the layer index:
 * that layer's parameter gradients are final. NULL to remove. */
typedef void (*pc_backward_hook)(void *ctx, int layer);
void pc_exec_set_backward_hook(pc_exec *ex, pc_backward_hook hook, void *ctx);

/* Per-layer timing (--profile): when on, forward and backward seconds of every layer
 * accumulate in fwd[i] and bwd[i] (n_layers entries each, owned by the exec) during
 * training passes. */
void pc_exec_enable_profile(pc_exec *ex);
const double *pc_exec_profile(const pc_exec *ex, int backward);
/* The same, timing inference forwards too (bench predict --profile). */
void pc_exec_enable_profile_inference(pc_exec *ex);

/* Layer i's output of the last forward, (batch, c, h, w) in plain NCHW, into out. */
void pc_exec_layer_output(const pc_exec *ex, int i, float *out);

/* Softmax probabilities of the last forward (batch, classes). */
void pc_exec_probs(pc_exec *ex, float *probs);

#endif
