#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/fast/fast.h"

#define LANES 16
/* dy[i], or 0 where the ReLU after batch norm was inactive (y[i] <= 0), as ReLU's backward */
#define MASKED(dy, y, i) ((y) && !((y)[i] > 0.0f) ? 0.0f : (dy)[i])

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

/* y = x * scale + shift, or max(0, that) with relu: one pass instead of two. */
__attribute__((always_inline)) static inline void scale_shift(const pc_bn_shape *s, int c, const float *x, float scale, float shift,
                        int relu, float *y) {
    for (int n = 0; n < s->n; n++) {
        const int64_t o = ((int64_t)n * s->c + c) * s->hw;
        if (relu)
            for (int64_t i = 0; i < s->hw; i++) {
                float v = x[o + i] * scale + shift;
                y[o + i] = v > 0.0f ? v : 0.0f;
            }
        else
            for (int64_t i = 0; i < s->hw; i++) y[o + i] = x[o + i] * scale + shift;
    }
}

__attribute__((always_inline)) static inline void bn_forward_train(const pc_bn_shape *s, const float *x, const float *gamma,
                             const float *beta, float *y, float *mean, float *batch_var,
                             float *invstd, int relu) {
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
        const float scale = (float)((gamma ? gamma[c] : 1.0) * is);
        const float shift = (beta ? beta[c] : 0.0f) - mu * scale;
        scale_shift(s, c, x, scale, shift, relu, y);
    }
}

static void bn_forward_eval(const pc_bn_shape *s, const float *x, const float *gamma,
                            const float *beta, const float *rmean, const float *rvar, float *y,
                            int relu) {
    for (int c = 0; c < s->c; c++) {
        const double is = 1.0 / sqrt((double)rvar[c] + (double)s->eps);
        const float scale = (float)((gamma ? gamma[c] : 1.0) * is);
        const float shift = (beta ? beta[c] : 0.0f) - rmean[c] * scale;
        scale_shift(s, c, x, scale, shift, relu, y);
    }
}

/* y: the forward output when a ReLU follows (dy is then masked by y > 0), else NULL. */
__attribute__((always_inline)) static inline void bn_backward(const pc_bn_shape *s, const float *x, const float *y, const float *gamma,
                        const float *mean, const float *invstd, const float *dy, float *dx,
                        float *dgamma, float *dbeta) {
    const int N = s->n, C = s->c;
    const int64_t HW = s->hw;
    const double M = (double)N * HW;
    for (int c = 0; c < C; c++) {
        const float mu = mean[c], is = invstd[c];
        double sdy = 0, sdyx = 0; /* sum(dy), sum(dy * xhat) */
        for (int n = 0; n < N; n++) {
            const int64_t o = ((int64_t)n * C + c) * HW;
            float a1[LANES] = {0}, a2[LANES] = {0};
            int64_t i = 0;
            for (; i + LANES <= HW; i += LANES)
                for (int j = 0; j < LANES; j++) {
                    float g = MASKED(dy, y, o + i + j);
                    a1[j] += g;
                    a2[j] += g * (x[o + i + j] - mu);
                }
            for (; i < HW; i++) {
                float g = MASKED(dy, y, o + i);
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
                dx[o + i] = k1 * MASKED(dy, y, o + i) + k2 * (x[o + i] - mu) + k3;
        }
    }
}

void fast_bn_forward_train(const pc_bn_shape *s, const float *x, const float *gamma,
                           const float *beta, float *y, float *mean, float *batch_var,
                           float *invstd) {
    bn_forward_train(s, x, gamma, beta, y, mean, batch_var, invstd, 0);
}

void fast_bn_forward_eval(const pc_bn_shape *s, const float *x, const float *gamma,
                          const float *beta, const float *rmean, const float *rvar, float *y) {
    bn_forward_eval(s, x, gamma, beta, rmean, rvar, y, 0);
}

void fast_bn_backward(const pc_bn_shape *s, const float *x, const float *gamma,
                      const float *mean, const float *invstd, const float *dy, float *dx,
                      float *dgamma, float *dbeta) {
    bn_backward(s, x, NULL, gamma, mean, invstd, dy, dx, dgamma, dbeta);
}

void fast_bn_relu_forward_train(const pc_bn_shape *s, const float *x, const float *gamma,
                                const float *beta, float *y, float *mean, float *batch_var,
                                float *invstd) {
    bn_forward_train(s, x, gamma, beta, y, mean, batch_var, invstd, 1);
}

void fast_bn_relu_forward_eval(const pc_bn_shape *s, const float *x, const float *gamma,
                               const float *beta, const float *rmean, const float *rvar, float *y) {
    bn_forward_eval(s, x, gamma, beta, rmean, rvar, y, 1);
}

void fast_bn_relu_backward(const pc_bn_shape *s, const float *x, const float *y,
                           const float *gamma, const float *mean, const float *invstd,
                           const float *dy, float *dx, float *dgamma, float *dbeta) {
    bn_backward(s, x, y, gamma, mean, invstd, dy, dx, dgamma, dbeta);
}
