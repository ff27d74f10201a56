#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/fast/fast.h"
#include "kernels/fast/gelu.h"

#define LANES 16

/* The activation fused after batch norm: a compile-time constant in each public kernel, so
 * the inlined loops below are specialized and vectorized per activation. */
enum { ACT_NONE = PC_FAST_LINEAR, ACT_RELU = PC_FAST_RELU, ACT_GELU = PC_FAST_GELU,
       ACT_RELU6 = PC_FAST_RELU6 };

/* The gradient at the batch-norm output z = x * scale + shift, from dy at the activation's
 * output y: ReLU masks dy where y <= 0 (as ReLU's backward), ReLU6 where y is not inside
 * (0, 6) (as Clip's backward, whose input is inside exactly there), GELU multiplies by GELU'(z),
 * recomputing z from x (nothing but the layer's input is kept). */
static inline float act_grad(int act, float dy, float x, float y, float scale, float shift) {
    if (act == ACT_RELU) return y > 0.0f ? dy : 0.0f;
    if (act == ACT_RELU6) return y > 0.0f && y < 6.0f ? dy : 0.0f;
    if (act == ACT_GELU) return dy * gelu_slope(x * scale + shift);
    return dy;
}

/* sum(x[i] - shift) over one plane, in LANES float partial sums, then double. */
static double plane_sum(const float *x, int64_t n, float shift) {
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += x[i + j] - shift;
    double s = 0;
    for (; i < n; i++) s += x[i] - shift;
    for (int j = 0; j < LANES; j++) s += acc[j];
    return s;
}

static double plane_sq(const float *x, int64_t n, float mu) {
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            float d = x[i + j] - mu;
            acc[j] += d * d;
        }
    double s = 0;
    for (; i < n; i++) {
        double d = x[i] - mu;
        s += d * d;
    }
    for (int j = 0; j < LANES; j++) s += acc[j];
    return s;
}

/* y = act(x * scale + shift): one pass instead of two. */
__attribute__((always_inline)) static inline void scale_shift(const pc_bn_shape *s, int c, const float *x, float scale, float shift,
                        int act, float *y) {
    for (int n = 0; n < s->n; n++) {
        const int64_t o = ((int64_t)n * s->c + c) * s->hw;
        if (act == ACT_RELU)
            for (int64_t i = 0; i < s->hw; i++) {
                float v = x[o + i] * scale + shift;
                y[o + i] = v > 0.0f ? v : 0.0f;
            }
        else if (act == ACT_RELU6)
            for (int64_t i = 0; i < s->hw; i++) { /* as ref_clip_forward: NaN propagates */
                float v = x[o + i] * scale + shift;
                v = v < 0.0f ? 0.0f : v;
                y[o + i] = v > 6.0f ? 6.0f : v;
            }
        else if (act == ACT_GELU)
            for (int64_t i = 0; i < s->hw; i++) y[o + i] = gelu_value(x[o + i] * scale + shift);
        else
            for (int64_t i = 0; i < s->hw; i++) y[o + i] = x[o + i] * scale + shift;
    }
}

/* The per-channel affine map of batch norm in training: z = x * scale + shift. */
static inline void bn_affine(const float *gamma, const float *beta, int c, float mu, double is,
                             float *scale, float *shift) {
    *scale = (float)((gamma ? gamma[c] : 1.0) * is);
    *shift = (beta ? beta[c] : 0.0f) - mu * *scale;
}

__attribute__((always_inline)) static inline void bn_forward_train(const pc_bn_shape *s, const float *x, const float *gamma,
                             const float *beta, float *y, float *mean, float *batch_var,
                             float *invstd, int act) {
    const int N = s->n, C = s->c;
    const int64_t HW = s->hw;
    const double M = (double)N * HW;
    for (int c = 0; c < C; c++) {
        double sum = 0;
        for (int n = 0; n < N; n++) sum += plane_sum(x + ((int64_t)n * C + c) * HW, HW, 0.0f);
        const float mu = (float)(sum / M);
        double sq = 0;
        for (int n = 0; n < N; n++) sq += plane_sq(x + ((int64_t)n * C + c) * HW, HW, mu);
        const double var = sq / M, is = 1.0 / sqrt(var + (double)s->eps);
        if (mean) mean[c] = mu;
        if (batch_var) batch_var[c] = (float)var;
        if (invstd) invstd[c] = (float)is;
        if (!y) continue;
        float scale, shift;
        bn_affine(gamma, beta, c, mu, is, &scale, &shift);
        scale_shift(s, c, x, scale, shift, act, y);
    }
}

__attribute__((always_inline)) static inline void bn_forward_eval(const pc_bn_shape *s, const float *x, const float *gamma,
                            const float *beta, const float *rmean, const float *rvar, float *y,
                            int act) {
    for (int c = 0; c < s->c; c++) {
        const double is = 1.0 / sqrt((double)rvar[c] + (double)s->eps);
        float scale, shift;
        bn_affine(gamma, beta, c, rmean[c], is, &scale, &shift);
        scale_shift(s, c, x, scale, shift, act, y);
    }
}

/* dy is the gradient at the activation's output; y (ReLU) or gamma and beta (GELU) let
 * act_grad turn it into the gradient at batch norm's output. */
__attribute__((always_inline)) static inline void bn_backward(const pc_bn_shape *s, const float *x, const float *y, const float *gamma,
                        const float *beta, const float *mean, const float *invstd, const float *dy, float *dx,
                        float *dgamma, float *dbeta, int act) {
    const int N = s->n, C = s->c;
    const int64_t HW = s->hw;
    const double M = (double)N * HW;
    for (int c = 0; c < C; c++) {
        const float mu = mean[c], is = invstd[c];
        float scale, shift; /* the forward's z = x * scale + shift, for GELU' */
        bn_affine(gamma, beta, c, mu, is, &scale, &shift);
        double sdy = 0, sdyx = 0; /* sum(dy), sum(dy * xhat) */
        for (int n = 0; n < N; n++) {
            const int64_t o = ((int64_t)n * C + c) * HW;
            float a1[LANES] = {0}, a2[LANES] = {0};
            int64_t i = 0;
            for (; i + LANES <= HW; i += LANES)
                for (int j = 0; j < LANES; j++) {
                    float g = act_grad(act, dy[o + i + j], x[o + i + j], y ? y[o + i + j] : 0.0f, scale, shift);
                    a1[j] += g;
                    a2[j] += g * (x[o + i + j] - mu);
                }
            for (; i < HW; i++) {
                float g = act_grad(act, dy[o + i], x[o + i], y ? y[o + i] : 0.0f, scale, shift);
                sdy += g;
                sdyx += (double)g * (x[o + i] - mu) * is;
            }
            for (int j = 0; j < LANES; j++) {
                sdy += a1[j];
                sdyx += (double)a2[j] * is;
            }
        }
        if (dgamma) dgamma[c] = (float)sdyx;
        if (dbeta) dbeta[c] = (float)sdy;
        if (!dx) continue;
        /* dx = a (M dy - sdy - xhat sdyx) = k1 dy + k2 (x - mu) + k3 */
        const double a = (gamma ? gamma[c] : 1.0) * is / M;
        const float k1 = (float)(a * M), k2 = (float)(-a * is * sdyx), k3 = (float)(-a * sdy);
        for (int n = 0; n < N; n++) {
            const int64_t o = ((int64_t)n * C + c) * HW;
            for (int64_t i = 0; i < HW; i++)
                dx[o + i] = k1 * act_grad(act, dy[o + i], x[o + i], y ? y[o + i] : 0.0f, scale, shift) +
                            k2 * (x[o + i] - mu) + k3;
        }
    }
}

/* Each public kernel calls the inlined one with a constant activation. */
void fast_bn_forward_train(const pc_bn_shape *s, const float *x, const float *gamma,
                           const float *beta, float *y, float *mean, float *batch_var,
                           float *invstd, pc_fast_act act) {
    switch (act) {
    case PC_FAST_RELU: bn_forward_train(s, x, gamma, beta, y, mean, batch_var, invstd, ACT_RELU); break;
    case PC_FAST_GELU: bn_forward_train(s, x, gamma, beta, y, mean, batch_var, invstd, ACT_GELU); break;
    case PC_FAST_RELU6: bn_forward_train(s, x, gamma, beta, y, mean, batch_var, invstd, ACT_RELU6); break;
    default: bn_forward_train(s, x, gamma, beta, y, mean, batch_var, invstd, ACT_NONE); break;
    }
}

void fast_bn_forward_eval(const pc_bn_shape *s, const float *x, const float *gamma,
                          const float *beta, const float *rmean, const float *rvar, float *y,
                          pc_fast_act act) {
    switch (act) {
    case PC_FAST_RELU: bn_forward_eval(s, x, gamma, beta, rmean, rvar, y, ACT_RELU); break;
    case PC_FAST_GELU: bn_forward_eval(s, x, gamma, beta, rmean, rvar, y, ACT_GELU); break;
    case PC_FAST_RELU6: bn_forward_eval(s, x, gamma, beta, rmean, rvar, y, ACT_RELU6); break;
    default: bn_forward_eval(s, x, gamma, beta, rmean, rvar, y, ACT_NONE); break;
    }
}

void fast_bn_backward(const pc_bn_shape *s, const float *x, const float *y, const float *gamma,
                      const float *beta, const float *mean, const float *invstd,
                      const float *dy, float *dx, float *dgamma, float *dbeta, pc_fast_act act) {
    switch (act) {
    case PC_FAST_RELU:
        bn_backward(s, x, y, gamma, beta, mean, invstd, dy, dx, dgamma, dbeta, ACT_RELU);
        break;
    case PC_FAST_RELU6:
        bn_backward(s, x, y, gamma, beta, mean, invstd, dy, dx, dgamma, dbeta, ACT_RELU6);
        break;
    case PC_FAST_GELU:
        bn_backward(s, x, NULL, gamma, beta, mean, invstd, dy, dx, dgamma, dbeta, ACT_GELU);
        break;
    default:
        bn_backward(s, x, NULL, gamma, beta, mean, invstd, dy, dx, dgamma, dbeta, ACT_NONE);
        break;
    }
}

void fast_gelu_forward(int64_t n, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = gelu_value(x[i]);
}

void fast_gelu_backward(int64_t n, const float *x, const float *dy, float *dx) {
    for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * gelu_slope(x[i]);
}
