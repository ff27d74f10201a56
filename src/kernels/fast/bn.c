#include <math.h>
#include <stdint.h>

#include "kernels/fast/fast.h"

#define LANES 16

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

void fast_bn_forward_train(const pc_bn_shape *s, const float *x, const float *gamma,
                           const float *beta, float *y, float *mean, float *batch_var,
                           float *invstd) {
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
        for (int n = 0; n < N; n++) {
            const int64_t o = ((int64_t)n * C + c) * HW;
            for (int64_t i = 0; i < HW; i++) y[o + i] = x[o + i] * scale + shift;
        }
    }
}

void fast_bn_forward_eval(const pc_bn_shape *s, const float *x, const float *gamma,
                          const float *beta, const float *rmean, const float *rvar, float *y) {
    const int N = s->n, C = s->c;
    const int64_t HW = s->hw;
    for (int c = 0; c < C; c++) {
        const double is = 1.0 / sqrt((double)rvar[c] + (double)s->eps);
        const float scale = (float)((gamma ? gamma[c] : 1.0) * is);
        const float shift = (beta ? beta[c] : 0.0f) - rmean[c] * scale;
        for (int n = 0; n < N; n++) {
            const int64_t o = ((int64_t)n * C + c) * HW;
            for (int64_t i = 0; i < HW; i++) y[o + i] = x[o + i] * scale + shift;
        }
    }
}

void fast_bn_backward(const pc_bn_shape *s, const float *x, const float *gamma,
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
                    float g = dy[o + i + j];
                    a1[j] += g;
                    a2[j] += g * (x[o + i + j] - mu);
                }
            for (; i < HW; i++) {
                sdy += dy[o + i];
                sdyx += (double)dy[o + i] * (x[o + i] - mu) * is;
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
            for (int64_t i = 0; i < HW; i++) dx[o + i] = k1 * dy[o + i] + k2 * (x[o + i] - mu) + k3;
        }
    }
}
