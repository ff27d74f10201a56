/* Vectorizable C kernels for ops where oneDNN 2.6 has no fast path on plain NCHW
 * (batch norm runs there in non-JIT code) or none at all (GELU's backward from its input):
 * the semantics of the reference kernels (kernels/ref/ref.h), with an activation fused
 * after batch norm; float accumulation in 16 independent lanes per plane so the compiler
 * vectorizes it, planes combined in double. Fixed order: deterministic. */
#ifndef PC_FAST_H
#define PC_FAST_H

#include "kernels/shapes.h"

#include <stddef.h>
#include <stdint.h>

/* The activation fused after batch norm. */
typedef enum { PC_FAST_LINEAR = 0, PC_FAST_RELU, PC_FAST_GELU, PC_FAST_RELU6 } pc_fast_act;

/* Training-mode forward, y = act(bn(x)) in one pass (y may be NULL: statistics only). */
void fast_bn_forward_train(const pc_bn_shape *s, const float *x, const float *gamma,
                           const float *beta, float *y, float *mean, float *batch_var,
                           float *invstd, pc_fast_act act);
void fast_bn_forward_eval(const pc_bn_shape *s, const float *x, const float *gamma,
                          const float *beta, const float *rmean, const float *rvar, float *y,
                          pc_fast_act act);
/* dy is the gradient at act's output. ReLU masks it by the forward's output y > 0 (bitwise
 * the forward of a separate ReLU pass; backward equal to rounding), ReLU6 (min(max(z, 0),
 * 6), as ref_clip_forward) by 0 < y < 6; GELU multiplies it by GELU'(bn(x)), recomputing
 * bn(x) from x, gamma and beta (y unused). The blocked kernels (fast_bnb_backward) take
 * ReLU6's mask from bn(x) recomputed likewise (y unused): one stream less to read. */
void fast_bn_backward(const pc_bn_shape *s, const float *x, const float *y, const float *gamma,
                      const float *beta, const float *mean, const float *invstd,
                      const float *dy, float *dx, float *dgamma, float *dbeta, pc_fast_act act);

/* Max pooling, any window, stride and padding: y and argmax bitwise the reference kernel's
 * (ref_maxpool_forward), whose backward then uses argmax. scratch: fast_maxpool_scratch(s)
 * bytes (tables of the windows and a padded plane), aligned as malloc's. */
size_t fast_maxpool_scratch(const pc_pool_shape *s);
void fast_maxpool_forward(const pc_pool_shape *s, const float *x, float *y, int32_t *argmax,
                          void *scratch);

/* ---- channel-blocked activations (oneDNN's nChw8c / nChw16c, block 8 or 16): see
 * blocked.c. Floats per sample of a (c, hw) tensor, the last block zero-padded: */
int64_t fast_blocked_size(int c, int64_t hw, int block);
/* x (n, c, hw) plain -> y blocked (padding zeroed), and back. */
void fast_to_blocked(int n, int c, int64_t hw, int block, const float *x, float *y);
void fast_to_plain(int n, int c, int64_t hw, int block, const float *x, float *y);
/* Batch norm, as fast_bn_* on blocked x, y, dy, dx; padded channels give zeros. */
void fast_bnb_forward_train(const pc_bn_shape *s, int block, const float *x, const float *gamma,
                            const float *beta, float *y, float *mean, float *batch_var,
                            float *invstd, pc_fast_act act);
void fast_bnb_forward_eval(const pc_bn_shape *s, int block, const float *x, const float *gamma,
                           const float *beta, const float *rmean, const float *rvar, float *y,
                           pc_fast_act act);
void fast_bnb_backward(const pc_bn_shape *s, int block, const float *x, const float *y,
                       const float *gamma, const float *beta, const float *mean,
                       const float *invstd, const float *dy, float *dx, float *dgamma,
                       float *dbeta, pc_fast_act act);
/* Pooling, bitwise the reference kernels per channel; argmax (blocked like y) holds the
 * cell's index h * W + w within its plane (NULL: not wanted, inference). */
void fast_maxpoolb_forward(const pc_pool_shape *s, int block, const float *x, float *y,
                           int32_t *argmax);
void fast_maxpoolb_backward(const pc_pool_shape *s, int block, const int32_t *argmax,
                            const float *dy, float *dx);
void fast_avgpoolb_forward(const pc_pool_shape *s, int block, const float *x, float *y);
void fast_avgpoolb_backward(const pc_pool_shape *s, int block, const float *dy, float *dx);
/* Global average pooling: blocked x (n, c, hw) -> plain y (n, c), and back. */
void fast_gapb_forward(int n, int c, int64_t hw, int block, const float *x, float *y);
void fast_gapb_backward(int n, int c, int64_t hw, int block, const float *dy, float *dx);
/* Residual add y = a + P(b): y and a (n, c, h, w); b (n, cb, hb, wb) with cb <= c, read at
 * stride (sh, sw) and added to the first cb channels; relu: then y = ReLU(y) (as
 * ref_relu_forward) in the same pass. backward_b: db = P^T(dy). */
typedef struct {
    int n, c, h, w, cb, hb, wb, sh, sw;
} fast_add_shape;
void fast_addb_forward(const fast_add_shape *s, int block, const float *a, const float *b,
                       float *y, int relu);
void fast_addb_backward_b(const fast_add_shape *s, int block, const float *dy, float *db);

/* Direct convolution of at most 8 channels into at most 8 (narrow_conv.c): groups 1, any
 * kernel, stride, padding and dilation; x plain NCHW (x_block 0) or nChw16c, y nChw16c
 * (lanes 8-15 zeroed). wp: the weights packed by fast_narrow_conv_pack
 * (fast_narrow_conv_wpack_floats floats). act: 0, 1 (ReLU) or 6 (ReLU6), after the bias
 * (NULL: none). Computes the output rows [row_lo, row_hi) of the n x oh. s: a finished
 * shape (pc_conv_shape_finish). */
int fast_narrow_conv_applies(const pc_conv_shape *s, int x_block, int y_block);
int64_t fast_narrow_conv_wpack_floats(const pc_conv_shape *s);
void fast_narrow_conv_pack(const pc_conv_shape *s, const float *w, float *wp);
void fast_narrow_conv_rows(int row_lo, int row_hi, const pc_conv_shape *s, int x_block,
                           const float *x, const float *wp, const float *bias, int act, float *y);

/* GELU (PyTorch's exact erf form) over n floats, vectorized (see gelu.h); backward takes
 * the forward's input x (dx may alias dy). */
void fast_gelu_forward(int64_t n, const float *x, float *y);
void fast_gelu_backward(int64_t n, const float *x, const float *dy, float *dx);

/* Element-wise activation layers (act.c) over n floats of a plain or a blocked buffer, with
 * the semantics of the reference kernels of the same name (ref_hardswish_* etc.): bitwise
 * theirs, except sigmoid and SiLU (float arithmetic, within 4e-7 relative of the double
 * reference). A backward maps a zero dy to zero, so a blocked gradient's padded channels
 * stay zero; a forward whose f(0) is not 0 (hardsigmoid, sigmoid, clip above 0) leaves
 * padded channels to fast_zero_padding. */
void fast_hardswish_forward(int64_t n, const float *x, float *y);
void fast_hardswish_backward(int64_t n, const float *x, const float *dy, float *dx);
void fast_hardsigmoid_forward(int64_t n, float alpha, float beta, const float *x, float *y);
void fast_hardsigmoid_backward(int64_t n, float alpha, float beta, const float *x,
                               const float *dy, float *dx);
void fast_sigmoid_forward(int64_t n, const float *x, float *y);
void fast_sigmoid_backward(int64_t n, const float *x, const float *dy, float *dx);
void fast_silu_forward(int64_t n, const float *x, float *y);
void fast_silu_backward(int64_t n, const float *x, const float *dy, float *dx);
void fast_clip_forward(int64_t n, float lo, float hi, const float *x, float *y);
void fast_clip_backward(int64_t n, float lo, float hi, const float *x, const float *dy, float *dx);
/* Channel-wise kernels (channels.c) on plain (block 1) or blocked tensors. mul: as
 * ref_mul_*, bitwise (the same sums in the same order, lanes being channels). */
void fast_mul_forward(int n, int c, int64_t hw, int64_t hwb, int block, const float *a,
                      const float *b, float *y);
void fast_mul_backward(int n, int c, int64_t hw, int64_t hwb, int block, const float *a,
                       const float *b, const float *dy, float *da, float *db);
/* db (n, c, 1) = dy (n, c, hw) summed over the plane, in order (a broadcast add's backward). */
void fast_channel_sum(int n, int c, int64_t hw, int block, const float *dy, float *db);
/* Constant padding as ref_pad_*, on plain (block 1) or blocked tensors (padded channels
 * stay zero whatever the value). */
void fast_pad_forward(const pc_pad_shape *s, int block, float value, const float *x, float *y);
void fast_pad_backward(const pc_pad_shape *s, int block, const float *dy, float *dx);
/* Concatenation along channels: x (n, cx, hw) into channels [at, at + cx) of y (n, cy, hw),
 * and back (split: dx = those channels of dy). */
void fast_concat_put(int n, int cx, int at, int cy, int64_t hw, int block, const float *x, float *y);
void fast_concat_take(int n, int cx, int at, int cy, int64_t hw, int block, const float *dy,
                      float *dx);
/* y (n, c, hw) blocked: its padded channels (c up to a whole block) set to zero. */
void fast_zero_padding(int n, int c, int64_t hw, int block, float *y);

#endif
