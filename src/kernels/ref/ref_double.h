/* Double-precision twins of the reference kernels in ref.h (same template, same
 * semantics and conventions), for finite-difference gradient checks. */
#ifndef PC_REF_DOUBLE_H
#define PC_REF_DOUBLE_H

#include <stdint.h>

#include "../shapes.h"

void refd_conv2d_forward(const pc_conv_shape *s, const double *x, const double *w,
                         const double *b, double *y);
void refd_conv2d_backward(const pc_conv_shape *s, const double *x, const double *w,
                          const double *dy, double *dx, double *dw, double *db);

void refd_dense_forward(const pc_dense_shape *s, const double *x, const double *w,
                        const double *b, double *y);
void refd_dense_backward(const pc_dense_shape *s, const double *x, const double *w,
                         const double *dy, double *dx, double *dw, double *db);

void refd_maxpool_forward(const pc_pool_shape *s, const double *x, double *y, int32_t *argmax);
void refd_maxpool_backward(const pc_pool_shape *s, const int32_t *argmax, const double *dy,
                           double *dx);
void refd_avgpool_forward(const pc_pool_shape *s, const double *x, double *y);
void refd_avgpool_backward(const pc_pool_shape *s, const double *dy, double *dx);

void refd_bn_forward_train(const pc_bn_shape *s, const double *x, const double *gamma,
                           const double *beta, double *y, double *mean, double *batch_var,
                           double *invstd);
void refd_bn_forward_eval(const pc_bn_shape *s, const double *x, const double *gamma,
                          const double *beta, const double *rmean, const double *rvar,
                          double *y);
void refd_bn_backward(const pc_bn_shape *s, const double *x, const double *gamma,
                      const double *mean, const double *invstd, const double *dy, double *dx,
                      double *dgamma, double *dbeta);

void refd_relu_forward(int64_t n, const double *x, double *y);
void refd_relu_backward(int64_t n, const double *y, const double *dy, double *dx);
void refd_gelu_forward(int64_t n, const double *x, double *y);
void refd_gelu_backward(int64_t n, const double *x, const double *dy, double *dx);
void refd_hardswish_forward(int64_t n, const double *x, double *y);
void refd_hardswish_backward(int64_t n, const double *x, const double *dy, double *dx);
void refd_hardsigmoid_forward(int64_t n, double alpha, double beta, const double *x, double *y);
void refd_hardsigmoid_backward(int64_t n, double alpha, double beta, const double *x,
                               const double *dy, double *dx);
void refd_sigmoid_forward(int64_t n, const double *x, double *y);
void refd_sigmoid_backward(int64_t n, const double *x, const double *dy, double *dx);
void refd_silu_forward(int64_t n, const double *x, double *y);
void refd_silu_backward(int64_t n, const double *x, const double *dy, double *dx);
void refd_clip_forward(int64_t n, double lo, double hi, const double *x, double *y);
void refd_clip_backward(int64_t n, double lo, double hi, const double *x, const double *dy,
                        double *dx);
void refd_mul_forward(int n, int c, int64_t hw, int64_t hwb, const double *a, const double *b,
                      double *y);
void refd_mul_backward(int n, int c, int64_t hw, int64_t hwb, const double *a, const double *b,
                       const double *dy, double *da, double *db);
void refd_pad_forward(const pc_pad_shape *s, double value, const double *x, double *y);
void refd_pad_backward(const pc_pad_shape *s, const double *dy, double *dx);

double refd_softmax_xent(int n, int classes, const double *logits, const int32_t *labels,
                         double smoothing, double grad_scale, double *dlogits, double *probs);

#endif
