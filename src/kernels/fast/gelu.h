/* GELU in straight-line float arithmetic that the compiler vectorizes (libm's erff and expf
 * do not vectorize without -ffast-math), for the fast kernels. Within 3e-7 of the exact
 * x Phi(x) (checked against the double reference in tests/test_dnnl.c).
 *
 * Phi(x) = 1/2 erfc(-x / sqrt 2), with erfc from Abramowitz & Stegun 7.1.26
 * (|error| <= 1.5e-7) and e^y from a Cephes-style range reduction and polynomial. */
#ifndef PC_FAST_GELU_H
#define PC_FAST_GELU_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* e^y for y in [-87, 0] (the caller clamps): y = k ln2 + r, |r| <= ln2 / 2. */
static inline float gelu_exp(float y) {
    float k = floorf(y * 1.44269504f + 0.5f);
    float r = y - k * 0.693359375f;
    r = r + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)k + 127) << 23; /* 2^k, k >= -126 */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* Phi(x) and the density term: *cdf = Phi(x), return value phi(x) = e^(-x^2/2) / sqrt(2 pi). */
static inline float gelu_phi(float x, float *cdf) {
    float z = fabsf(x) * 0.70710678f;                 /* |x| / sqrt 2 */
    float y = -z * z;
    float e = gelu_exp(y > -87.0f ? y : -87.0f);      /* e^(-x^2/2) */
    float t = 1.0f / (1.0f + 0.3275911f * z);
    float poly = 1.061405429f;
    poly = poly * t - 1.453152027f;
    poly = poly * t + 1.421413741f;
    poly = poly * t - 0.284496736f;
    poly = poly * t + 0.254829592f;
    float tail = 0.5f * poly * t * e;                  /* Phi(-|x|) = erfc(z) / 2 */
    *cdf = x >= 0.0f ? 1.0f - tail : tail;
    return e * 0.39894228f;
}

static inline float gelu_value(float x) {
    float cdf;
    (void)gelu_phi(x, &cdf);
    return x * cdf;
}

/* d GELU(x) / dx = Phi(x) + x phi(x) */
static inline float gelu_slope(float x) {
    float cdf;
    float pdf = gelu_phi(x, &cdf);
    return cdf + x * pdf;
}

#endif
