/* Vectorizable C kernels for ops where oneDNN 2.6 has no fast path on plain NCHW
 * (batch norm runs there in non-JIT code): same semantics and signatures as the
 * reference kernels (kernels/ref/ref.h), float accumulation in 16 independent lanes
 * per plane so the compiler vectorizes it, planes combined in double. Fixed order:
 * deterministic. */
#ifndef PC_FAST_H
#define PC_FAST_H

#include "kernels/shapes.h"

void fast_bn_forward_train(const pc_bn_shape *s, const float *x, const float *gamma,
                           const float *beta, float *y, float *mean, float *batch_var,
                           float *invstd);
void fast_bn_forward_eval(const pc_bn_shape *s, const float *x, const float *gamma,
                          const float *beta, const float *rmean, const float *rvar, float *y);
void fast_bn_backward(const pc_bn_shape *s, const float *x, const float *gamma,
                      const float *mean, const float *invstd, const float *dy, float *dx,
                      float *dgamma, float *dbeta);

/* Batch norm followed by ReLU, fused: y = max(0, bn(x)) in one pass; backward takes that y
 * and masks dy by y > 0 on the fly. Bitwise equal to the kernels above followed by a ReLU
 * pass (and, backward, preceded by ReLU's backward). */
void fast_bn_relu_forward_train(const pc_bn_shape *s, const float *x, const float *gamma,
                                const float *beta, float *y, float *mean, float *batch_var,
                                float *invstd);
void fast_bn_relu_forward_eval(const pc_bn_shape *s, const float *x, const float *gamma,
                               const float *beta, const float *rmean, const float *rvar, float *y);
void fast_bn_relu_backward(const pc_bn_shape *s, const float *x, const float *y,
                           const float *gamma, const float *mean, const float *invstd,
                           const float *dy, float *dx, float *dgamma, float *dbeta);

#endif
