/* Plain C reference kernels: the tests' oracle and the fallback backend.
 * Conventions (all kernels):
 *  - NCHW float32 activations, PyTorch weight layouts (see shapes.h).
 *  - Every output is overwritten, never accumulated into.
 *  - A NULL output pointer means "not needed" (e.g. dx of the first layer, db without bias).
 *  - Loops run in a fixed order: results are deterministic. */
#ifndef PC_REF_H
#define PC_REF_H

#include <stdint.h>

#include "../shapes.h"

/* y = conv(x, w) + b (b may be NULL) */
void ref_conv2d_forward(const pc_conv_shape *s, const float *x, const float *w, const float *b,
                        float *y);
/* From dy (N,K,OH,OW): dx (N,C,H,W), dw (K,C/g,KH,KW), db (K). Any of dx, dw, db may be NULL. */
void ref_conv2d_backward(const pc_conv_shape *s, const float *x, const float *w, const float *dy,
                         float *dx, float *dw, float *db);

/* y = x w^T + b (b may be NULL) */
void ref_dense_forward(const pc_dense_shape *s, const float *x, const float *w, const float *b,
                       float *y);
void ref_dense_backward(const pc_dense_shape *s, const float *x, const float *w, const float *dy,
                        float *dx, float *dw, float *db);

/* Max pool; argmax (N,C,OH,OW) records the flat input index h*W+w within the plane (may be
 * NULL in inference). Ties go to the first cell in row-major window order. */
void ref_maxpool_forward(const pc_pool_shape *s, const float *x, float *y, int32_t *argmax);
void ref_maxpool_backward(const pc_pool_shape *s, const int32_t *argmax, const float *dy,
                          float *dx);
/* Average pool; the divisor is pc_pool_divisor (padded cells counted only with count_pad). */
void ref_avgpool_forward(const pc_pool_shape *s, const float *x, float *y);
void ref_avgpool_backward(const pc_pool_shape *s, const float *dy, float *dx);

/* Batch norm, training mode: statistics of this batch. Writes y and, for backward,
 * mean (C) and invstd (C) = 1/sqrt(biased_var + eps); batch_var (C) receives the biased
 * variance (the caller turns it into running statistics). */
void ref_bn_forward_train(const pc_bn_shape *s, const float *x, const float *gamma,
                          const float *beta, float *y, float *mean, float *batch_var,
                          float *invstd);
/* Inference mode: y = gamma * (x - rmean) / sqrt(rvar + eps) + beta */
void ref_bn_forward_eval(const pc_bn_shape *s, const float *x, const float *gamma,
                         const float *beta, const float *rmean, const float *rvar, float *y);
/* Training-mode backward: dx, dgamma, dbeta from dy and the saved mean/invstd. */
void ref_bn_backward(const pc_bn_shape *s, const float *x, const float *gamma, const float *mean,
                     const float *invstd, const float *dy, float *dx, float *dgamma,
                     float *dbeta);

/* Elementwise over n floats. */
void ref_relu_forward(int64_t n, const float *x, float *y);
/* dx = dy where y > 0 else 0 (y is the forward output; dx may alias dy) */
void ref_relu_backward(int64_t n, const float *y, const float *dy, float *dx);
/* GELU, the exact (erf) form of PyTorch's nn.GELU(): y = x Phi(x). */
void ref_gelu_forward(int64_t n, const float *x, float *y);
/* dx = dy * GELU'(x), x being the forward's INPUT (dx may alias dy) */
void ref_gelu_backward(int64_t n, const float *x, const float *dy, float *dx);

/* HardSwish (PyTorch's nn.Hardswish): y = x relu6(x + 3) / 6; backward from the forward's
 * input x, dx = dy * (0 below -3, x/3 + 1/2 on [-3, 3], 1 above) (dx may alias dy). */
void ref_hardswish_forward(int64_t n, const float *x, float *y);
void ref_hardswish_backward(int64_t n, const float *x, const float *dy, float *dx);

/* HardSigmoid (ONNX): y = max(0, min(1, alpha x + beta)); PyTorch's nn.Hardsigmoid is
 * alpha 1/6, beta 1/2. Backward: dx = dy alpha where 0 < alpha x + beta < 1, else 0. */
void ref_hardsigmoid_forward(int64_t n, float alpha, float beta, const float *x, float *y);
void ref_hardsigmoid_backward(int64_t n, float alpha, float beta, const float *x,
                              const float *dy, float *dx);
/* Sigmoid and SiLU (x sigmoid(x)), computed in double; backward from the forward's input. */
void ref_sigmoid_forward(int64_t n, const float *x, float *y);
void ref_sigmoid_backward(int64_t n, const float *x, const float *dy, float *dx);
void ref_silu_forward(int64_t n, const float *x, float *y);
void ref_silu_backward(int64_t n, const float *x, const float *dy, float *dx);
/* Clip: y = min(max(x, lo), hi); dx = dy where lo < x < hi, else 0 (as PyTorch's hardtanh,
 * ReLU6 being lo 0, hi 6). */
void ref_clip_forward(int64_t n, float lo, float hi, const float *x, float *y);
void ref_clip_backward(int64_t n, float lo, float hi, const float *x, const float *dy, float *dx);

/* y = a * b, a (n, c, hw) and b (n, c, hwb) with hwb = hw, or 1: one factor per channel
 * (squeeze-and-excitation). Backward: da = dy b, db = dy a (summed over the plane in order
 * when hwb = 1); either may be NULL. */
void ref_mul_forward(int n, int c, int64_t hw, int64_t hwb, const float *a, const float *b,
                     float *y);
void ref_mul_backward(int n, int c, int64_t hw, int64_t hwb, const float *a, const float *b,
                      const float *dy, float *da, float *db);

/* Constant padding: y = x in the middle of a plane of `value`; backward: dx = the middle of
 * dy. */
void ref_pad_forward(const pc_pad_shape *s, float value, const float *x, float *y);
void ref_pad_backward(const pc_pad_shape *s, const float *dy, float *dx);

/* Softmax cross-entropy with integer labels and label smoothing eps:
 * target = (1-eps) one-hot + eps/classes. Returns the SUM of per-sample losses
 * over the n samples (caller divides). dlogits = (softmax - target) * grad_scale
 * (may be NULL). probs (n, classes) may be NULL. */
double ref_softmax_xent(int n, int classes, const float *logits, const int32_t *labels,
                        float smoothing, float grad_scale, float *dlogits, float *probs);

#endif
