/* Element-wise activation layers, vectorized: the same float expressions as the reference
 * kernels (kernels/ref/ref_impl.inc), written branch-free so the compiler turns them into
 * vector selects (this file is compiled with -fno-trapping-math), bitwise their results;
 * sigmoid and SiLU in float with gelu.h's exponential where the reference uses double.
 * They run over whole buffers, plain or channel-blocked alike. */
#include "kernels/fast/fast.h"

#include <math.h>

#include "kernels/fast/gelu.h"

void fast_hardswish_forward(int64_t n, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], r = v + 3.0f;
        r = r < 0.0f ? 0.0f : r;
        r = r > 6.0f ? 6.0f : r;
        y[i] = v * r / 6.0f;
    }
}

void fast_hardswish_backward(int64_t n, const float *x, const float *dy, float *dx) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], g = dy[i];
        float inner = g * (v / 3.0f + 0.5f);
        float outer = v < -3.0f ? 0.0f : g;
        dx[i] = v < -3.0f || v > 3.0f ? outer : inner;
    }
}

void fast_hardsigmoid_forward(int64_t n, float alpha, float beta, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) {
        float v = alpha * x[i] + beta;
        v = v < 0.0f ? 0.0f : v;
        y[i] = v > 1.0f ? 1.0f : v;
    }
}

void fast_hardsigmoid_backward(int64_t n, float alpha, float beta, const float *x,
                               const float *dy, float *dx) {
    for (int64_t i = 0; i < n; i++) {
        float v = alpha * x[i] + beta, g = dy[i] * alpha;
        dx[i] = v > 0.0f && v < 1.0f ? g : 0.0f;
    }
}

/* sigmoid(v) = 1 / (1 + e) for v >= 0, e / (1 + e) below, with e = e^-|v| (no overflow);
 * *rest = 1 - sigmoid(v) = sigmoid(-v) likewise, without cancellation. */
static inline float logistic(float v, float *rest) {
    float a = -fabsf(v);
    float e = gelu_exp(a > -87.0f ? a : -87.0f);
    float t = 1.0f / (1.0f + e), et = e * t;
    *rest = v >= 0.0f ? et : t;
    return v >= 0.0f ? t : et;
}

void fast_sigmoid_forward(int64_t n, const float *x, float *y) {
    float rest;
    for (int64_t i = 0; i < n; i++) y[i] = logistic(x[i], &rest);
}

void fast_sigmoid_backward(int64_t n, const float *x, const float *dy, float *dx) {
    for (int64_t i = 0; i < n; i++) {
        float rest, s = logistic(x[i], &rest);
        dx[i] = dy[i] * (s * rest);
    }
}

void fast_silu_forward(int64_t n, const float *x, float *y) {
    float rest;
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * logistic(x[i], &rest);
}

void fast_silu_backward(int64_t n, const float *x, const float *dy, float *dx) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], rest, s = logistic(v, &rest);
        dx[i] = dy[i] * (s * (1.0f + v * rest));
    }
}

void fast_clip_forward(int64_t n, float lo, float hi, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] < lo ? lo : x[i];
        y[i] = v > hi ? hi : v;
    }
}

void fast_clip_backward(int64_t n, float lo, float hi, const float *x, const float *dy, float *dx) {
    for (int64_t i = 0; i < n; i++) dx[i] = x[i] > lo && x[i] < hi ? dy[i] : 0.0f;
}

void fast_zero_padding(int n, int c, int64_t hw, int block, float *y) {
    const int pad = (block - c % block) % block;
    if (!pad) return;
    const int64_t per_sample = fast_blocked_size(c, hw, block);
    for (int s = 0; s < n; s++) {
        float *last = y + s * per_sample + (int64_t)(c / block) * hw * block; /* last block */
        for (int64_t p = 0; p < hw; p++)
            for (int k = block - pad; k < block; k++) last[p * block + k] = 0.0f;
    }
}
