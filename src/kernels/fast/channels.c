/* Channel-wise kernels on plain (block 1) or channel-blocked tensors: the multiply of
 * squeeze-and-excitation and concatenation along channels. In the blocked layout element
 * (c, p) of a sample sits at ((c / B) hw + p) B + c % B: a block's B channels are the
 * vector lanes, so per-channel loops over p run in all lanes at once, in the same order as
 * the plain loops (bitwise the reference kernels). */
#include <string.h>

#include "kernels/fast/fast.h"

void fast_mul_forward(int n, int c, int64_t hw, int64_t hwb, int block, const float *a,
                      const float *b, float *y) {
    const int B = block, cb = (c + B - 1) / B;
    for (int64_t q = 0; q < (int64_t)n * cb; q++) { /* (sample, channel block) */
        const float *ap = a + q * hw * B, *bp = b + q * hwb * B;
        float *yp = y + q * hw * B;
        for (int64_t p = 0; p < hw; p++) {
            const float *bq = bp + (hwb == 1 ? 0 : p * B);
            for (int k = 0; k < B; k++) yp[p * B + k] = ap[p * B + k] * bq[k];
        }
    }
}

void fast_mul_backward(int n, int c, int64_t hw, int64_t hwb, int block, const float *a,
                       const float *b, const float *dy, float *da, float *db) {
    const int B = block, cb = (c + B - 1) / B;
    float sum[64]; /* B <= 64 lanes */
    for (int64_t q = 0; q < (int64_t)n * cb; q++) {
        const float *ap = a + q * hw * B, *bp = b + q * hwb * B, *g = dy + q * hw * B;
        if (da) {
            float *dp = da + q * hw * B;
            for (int64_t p = 0; p < hw; p++) {
                const float *bq = bp + (hwb == 1 ? 0 : p * B);
                for (int k = 0; k < B; k++) dp[p * B + k] = g[p * B + k] * bq[k];
            }
        }
        if (db && hwb == 1) {
            for (int k = 0; k < B; k++) sum[k] = 0.0f;
            for (int64_t p = 0; p < hw; p++)
                for (int k = 0; k < B; k++) sum[k] += g[p * B + k] * ap[p * B + k];
            memcpy(db + q * B, sum, sizeof(float) * B);
        } else if (db) {
            float *dp = db + q * hw * B;
            for (int64_t p = 0; p < hw * B; p++) dp[p] = g[p] * ap[p];
        }
    }
}

void fast_channel_sum(int n, int c, int64_t hw, int block, const float *dy, float *db) {
    const int B = block, cb = (c + B - 1) / B;
    float sum[64]; /* B <= 64 lanes */
    for (int64_t q = 0; q < (int64_t)n * cb; q++) {
        const float *g = dy + q * hw * B;
        for (int k = 0; k < B; k++) sum[k] = 0.0f;
        for (int64_t p = 0; p < hw; p++)
            for (int k = 0; k < B; k++) sum[k] += g[p * B + k];
        memcpy(db + q * B, sum, sizeof(float) * B);
    }
}

void fast_pad_forward(const pc_pad_shape *s, int block, float value, const float *x, float *y) {
    const int B = block, cb = (s->c + B - 1) / B;
    const int OH = s->h + s->top + s->bottom, OW = s->w + s->left + s->right;
    for (int64_t q = 0; q < (int64_t)s->n * cb; q++) {
        float *yp = y + q * OH * OW * B;
        const float *xp = x + q * s->h * s->w * B;
        const int real = s->c - (int)(q % cb) * B; /* channels of this block (padded lanes: 0) */
        for (int64_t k = 0; k < (int64_t)OH * OW; k++)
            for (int l = 0; l < B; l++) yp[k * B + l] = l < real ? value : 0.0f;
        for (int i = 0; i < s->h; i++)
            memcpy(yp + ((int64_t)(i + s->top) * OW + s->left) * B, xp + (int64_t)i * s->w * B,
                   sizeof(float) * s->w * B);
    }
}

void fast_pad_backward(const pc_pad_shape *s, int block, const float *dy, float *dx) {
    const int B = block, cb = (s->c + B - 1) / B;
    const int OH = s->h + s->top + s->bottom, OW = s->w + s->left + s->right;
    for (int64_t q = 0; q < (int64_t)s->n * cb; q++)
        for (int i = 0; i < s->h; i++)
            memcpy(dx + (q * s->h + i) * s->w * B,
                   dy + (q * OH * OW + (int64_t)(i + s->top) * OW + s->left) * B,
                   sizeof(float) * s->w * B);
}

/* Element (channel ch, pixel p) of a sample's (channels, hw) tensor. */
static inline int64_t at_of(int ch, int64_t p, int64_t hw, int B) {
    return ((int64_t)(ch / B) * hw + p) * B + ch % B;
}

void fast_concat_put(int n, int cx, int at, int cy, int64_t hw, int block, const float *x,
                     float *y) {
    const int B = block;
    const int64_t xs = fast_blocked_size(cx, hw, B), ys = fast_blocked_size(cy, hw, B);
    for (int s = 0; s < n; s++) {
        const float *xp = x + s * xs;
        float *yp = y + s * ys;
        if (B == 1) {
            memcpy(yp + (int64_t)at * hw, xp, sizeof(float) * cx * hw);
            continue;
        }
        for (int ch = 0; ch < cx; ch++)
            for (int64_t p = 0; p < hw; p++) yp[at_of(at + ch, p, hw, B)] = xp[at_of(ch, p, hw, B)];
    }
}

void fast_concat_take(int n, int cx, int at, int cy, int64_t hw, int block, const float *dy,
                      float *dx) {
    const int B = block;
    const int64_t xs = fast_blocked_size(cx, hw, B), ys = fast_blocked_size(cy, hw, B);
    if (B > 1) memset(dx, 0, sizeof(float) * n * xs); /* padded channels */
    for (int s = 0; s < n; s++) {
        const float *yp = dy + s * ys;
        float *xp = dx + s * xs;
        if (B == 1) {
            memcpy(xp, yp + (int64_t)at * hw, sizeof(float) * cx * hw);
            continue;
        }
        for (int ch = 0; ch < cx; ch++)
            for (int64_t p = 0; p < hw; p++) xp[at_of(ch, p, hw, B)] = yp[at_of(at + ch, p, hw, B)];
    }
}
