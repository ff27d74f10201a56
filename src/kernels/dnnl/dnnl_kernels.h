/* oneDNN (v2.x C API) kernels as "plans": one object per layer and shape, created once and
 * reused every step. A plan holds its primitive descriptors, primitives, memory objects, a
 * stream, the scratchpad and any workspace; forward/backward calls allocate nothing.
 *
 * Semantics match the reference kernels in ../ref/ref.h exactly (same layouts, outputs
 * overwritten, NULL outputs skipped). Tensors passed in and out are plain NCHW / PyTorch
 * weight layouts, or channel-blocked activations where a convolution is asked for them;
 * when a primitive prefers another layout the plan reorders internally.
 *
 * Threading: the engine is global (created once, thread-safe); each plan owns its stream and
 * buffers (including a user-mode scratchpad, so primitives that oneDNN's primitive cache shares
 * between plans can run concurrently), so a plan must be used by one thread at a time.
 * oneDNN parallelizes each call with OpenMP using omp_get_max_threads() of the calling
 * thread: worker threads that run plans concurrently should lower their own OpenMP thread
 * count (e.g. to 1) to avoid oversubscription. Results are bitwise reproducible for the same
 * shape, inputs and OpenMP thread count.
 *
 * Errors: create returns NULL and sets pc_last_error() (PC_ERR_INTERNAL for oneDNN failures,
 * PC_ERR_NOMEM, PC_ERR_USAGE for an invalid shape). Forward and backward calls return
 * nothing: a failure inside them (oneDNN allocates in some primitives' execution, which
 * fails under a memory limit) leaves their outputs undefined and is kept for the calling
 * thread until pc_dnnl_run_status. */
#ifndef PC_DNNL_KERNELS_H
#define PC_DNNL_KERNELS_H

#include <stdint.h>

#include "../../core/common.h"
#include "../shapes.h"

/* 1 when the oneDNN CPU engine can be created, 0 otherwise. */
int pc_dnnl_available(void);

/* The first failure of a forward or backward call made by this thread since the last
 * call (PC_ERR_NOMEM when oneDNN ran out of memory; the message in pc_last_error), and
 * forgets it; PC_OK when there was none. */
pc_status pc_dnnl_run_status(void);

/* Precision of the convolution and dense plans. bf16: mixed precision, as PyTorch's autocast
 * does it on the CPU: the primitives read src, weights and diff_dst converted to bfloat16
 * (AVX512_BF16 dot products, fp32 accumulation) and write dst, diff_src, diff_weights and
 * diff_bias in fp32; the caller's tensors (and so the weights the optimizer updates, the
 * activations between layers and every other layer) stay fp32. */
typedef enum { PC_DNNL_F32 = 0, PC_DNNL_BF16 } pc_dnnl_precision;

/* 1 when oneDNN runs bf16 convolutions and inner products on this CPU (oneDNN 2.6 needs
 * AVX-512). Elsewhere bf16 plans are emulated: fp32 primitives whose src, weights and
 * diff_dst are first rounded to bf16 values, as a bf16 primitive would read them (bf16
 * products are exact in fp32, so only the order of the fp32 sums differs); bf16's accuracy
 * then, at fp32's speed. */
int pc_dnnl_bf16_native(void);
/* 1 when oneDNN runs them on AMX tiles (Sapphire Rapids and later). */
int pc_dnnl_bf16_amx(void);

/* The channel block of the activation layout oneDNN's convolutions prefer on this CPU: 8
 * (nChw8c, AVX2) or 16 (nChw16c, AVX-512); 0 when they want no channel blocking. Keeping
 * activations in that layout between layers saves two reorders per tensor and call. */
int pc_dnnl_activation_block(void);

/* ---- convolution: weight (K, C/groups, KH, KW), bias (K) ---- */

typedef struct pc_dnnl_conv pc_dnnl_conv;
/* algo: AUTO runs Winograd F(4x4, 3x3) / F(4x4, 5x5) where it applies (fp32, stride 1,
 * "same" padding, channel-blocked: see dnnl_wino.c) and has enough channels to be faster,
 * oneDNN's direct convolution elsewhere; DIRECT: direct; WINOGRAD: Winograd wherever it
 * applies. Results differ between algorithms by rounding; each is deterministic and
 * independent of the worker count.
 * relu: 1: y = max(0, conv(x, w) + b), fused into the forward primitive (oneDNN post-op);
 * 6: y = min(max(0, conv(x, w) + b), 6) (ReLU6), fused likewise except on the Winograd path
 * (pc_dnnl_conv_fused_act says which ran); backward takes dy already masked by the
 * activation's derivative, as for a separate layer.
 * x_block, y_block: the layout of x and dx, and of y and dy: 0 plain NCHW, 8 or 16 channel-
 * blocked (nChw8c / nChw16c, the last block zero-padded; kernels/fast/fast.h). */
pc_dnnl_conv *pc_dnnl_conv_create(const pc_conv_shape *s, int has_bias, pc_dnnl_precision prec,
                                  pc_conv_algo algo, int relu, int x_block, int y_block);
/* The activation pc_dnnl_conv_forward applies: 0 none, 1 ReLU, 6 ReLU6. */
int pc_dnnl_conv_fused_act(const pc_dnnl_conv *c);
/* About the bytes such a plan allocates (its buffers, reordered copies and scratchpad;
 * exact for Winograd plans), for memory estimates before any plan exists. */
size_t pc_dnnl_conv_plan_bytes(const pc_conv_shape *s, pc_dnnl_precision prec,
                               pc_conv_algo algo, int x_block, int y_block);
/* y = conv(x, w) + b; b is ignored without bias, NULL b means zero bias. */
void pc_dnnl_conv_forward(pc_dnnl_conv *p, const float *x, const float *w, const float *b,
                          float *y);
/* dx, dw, db may be NULL (skipped); db is ignored when the plan has no bias. */
void pc_dnnl_conv_backward(pc_dnnl_conv *p, const float *x, const float *w, const float *dy,
                           float *dx, float *dw, float *db);
/* Weights version for the following calls: while it stays the same non-zero value (and the
 * weights pointer too), the weights are reordered/converted once and then reused, so the
 * caller must change it whenever the weights change (the trainer passes step + 1). 0, the
 * initial value: convert on every call. */
void pc_dnnl_conv_weights_version(pc_dnnl_conv *p, uint64_t version);
/* "winograd" or "direct": the algorithm the plan runs. */
const char *pc_dnnl_conv_algo_name(const pc_dnnl_conv *p);
void pc_dnnl_conv_destroy(pc_dnnl_conv *p);

/* ---- dense (inner product): x (N, IN), weight (OUT, IN), bias (OUT), y (N, OUT) ---- */
typedef struct pc_dnnl_dense pc_dnnl_dense;
pc_dnnl_dense *pc_dnnl_dense_create(const pc_dense_shape *s, int has_bias,
                                     pc_dnnl_precision prec, int relu);
void pc_dnnl_dense_forward(pc_dnnl_dense *p, const float *x, const float *w, const float *b,
                           float *y);
void pc_dnnl_dense_backward(pc_dnnl_dense *p, const float *x, const float *w, const float *dy,
                            float *dx, float *dw, float *db);
void pc_dnnl_dense_weights_version(pc_dnnl_dense *p, uint64_t version);
void pc_dnnl_dense_destroy(pc_dnnl_dense *p);

/* ---- pooling: max (ties go to the first cell of the window) or average excluding padding.
 * forward keeps the max-pool workspace inside the plan for the following backward. ---- */
typedef struct pc_dnnl_pool pc_dnnl_pool;
pc_dnnl_pool *pc_dnnl_pool_create(const pc_pool_shape *s, int is_max);
/* 1 when oneDNN runs this pooling in JIT code: on plain NCHW it does so with AVX-512 only;
 * elsewhere it falls back to its generic C loops ("simple_nchw"), about 17 ns per input
 * value on Zen 3, far slower than the reference kernels. */
int pc_dnnl_pool_jit(const pc_dnnl_pool *p);
void pc_dnnl_pool_forward(pc_dnnl_pool *p, const float *x, float *y);
/* dx (N,C,H,W) from dy (N,C,OH,OW); max pooling uses the last forward's workspace. */
void pc_dnnl_pool_backward(pc_dnnl_pool *p, const float *dy, float *dx);
void pc_dnnl_pool_destroy(pc_dnnl_pool *p);

/* Batch norm is not here: oneDNN 2.6 runs it on plain NCHW in non-JIT code, slower than
 * the vectorized C kernels of kernels/fast, which the default kernel set uses (on blocked
 * activations, kernels/fast/blocked.c). */

#endif
