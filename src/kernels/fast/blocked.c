/* Kernels on channel-blocked activations (oneDNN's nChw8c / nChw16c): channels in blocks of
 * B, B contiguous floats per pixel, the last block zero-padded. Every loop below runs over
 * the B channel lanes of one pixel at a time, so it vectorizes without any reduction inside
 * a vector; B is a compile-time constant in each specialized copy.
 *
 * Semantics: those of the plain kernels (kernels/fast and kernels/ref) channel by channel,
 * in the same order per channel, so max and average pooling, global average pooling and the
 * residual add give bitwise the plain kernels' results; batch norm sums in a different
 * grouping (float lanes over at most FLUSH pixels, then double). Padded channels stay zero in
 * every output and every gradient. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "kernels/fast/fast.h"
#include "kernels/fast/gelu.h"

enum { MAXB = 16, FLUSH = 64 };

/* 8 lanes of vector code: the kernels below take B / 8 of them per pixel. */
typedef float v8f __attribute__((vector_size(8 * sizeof(float))));
typedef int32_t v8i __attribute__((vector_size(8 * sizeof(int32_t))));

static inline v8f load8(const float *p) {
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}


int64_t fast_blocked_size(int c, int64_t hw, int block) {
    return (int64_t)((c + block - 1) / block) * block * hw;
}

/* ------------------------------------------------------------ layout */

void fast_to_blocked(int n, int c, int64_t hw, int block, const float *x, float *y) {
    const int cb = (c + block - 1) / block;
    for (int s = 0; s < n; s++)
        for (int b = 0; b < cb; b++) {
            float *yb = y + ((int64_t)s * cb + b) * hw * block;
            for (int l = 0; l < block; l++) {
                const int ch = b * block + l;
                const float *xc = x + ((int64_t)s * c + ch) * hw;
                if (ch < c)
                    for (int64_t i = 0; i < hw; i++) yb[i * block + l] = xc[i];
                else
                    for (int64_t i = 0; i < hw; i++) yb[i * block + l] = 0.0f;
            }
        }
}

void fast_to_plain(int n, int c, int64_t hw, int block, const float *x, float *y) {
    const int cb = (c + block - 1) / block;
    for (int s = 0; s < n; s++)
        for (int ch = 0; ch < c; ch++) {
            const float *xb = x + ((int64_t)s * cb + ch / block) * hw * block + ch % block;
            float *yc = y + ((int64_t)s * c + ch) * hw;
            for (int64_t i = 0; i < hw; i++) yc[i] = xb[i * block];
        }
}

/* ------------------------------------------------------------ batch norm */

enum { ACT_NONE = PC_FAST_LINEAR, ACT_RELU = PC_FAST_RELU, ACT_GELU = PC_FAST_GELU,
       ACT_RELU6 = PC_FAST_RELU6 };

/* min(max(z, 0), 6) as ref_clip_forward (NaN propagates), and its pass mask 0 < z < 6. */
static inline __attribute__((always_inline)) v8f relu6_8(v8f z) {
    const v8f six = {6, 6, 6, 6, 6, 6, 6, 6};
    z = (v8f)((v8i)z & ~(z < 0.0f));
    const v8i above = z > six;
    return (v8f)(((v8i)z & ~above) | ((v8i)six & above));
}
static inline __attribute__((always_inline)) v8i relu6_pass8(v8f z) {
    const v8f six = {6, 6, 6, 6, 6, 6, 6, 6};
    return (z > 0.0f) & (z < six);
}

/* acc[l] += sum of x over the block's pixels: float lanes over at most FLUSH pixels, then
 * double. */
static inline __attribute__((always_inline)) void
block_sum(const float *x, int64_t hw, double *acc, int B) {
    const int G = B / 8;
    for (int64_t i0 = 0; i0 < hw; i0 += FLUSH) {
        const int64_t i1 = i0 + FLUSH < hw ? i0 + FLUSH : hw;
        v8f a[2] = {{0}};
        for (int64_t i = i0; i < i1; i++)
            for (int g = 0; g < G; g++) a[g] += load8(x + i * B + 8 * g);
        for (int l = 0; l < B; l++) acc[l] += a[l / 8][l % 8];
    }
}

/* s1[l] += sum of d, s2[l] += sum of d^2 over the block's pixels, d = x - k[l]: both
 * moments in one pass, float lanes over at most FLUSH pixels, then double. */
static inline __attribute__((always_inline)) void
block_moments(const float *x, int64_t hw, const float *k, double *s1, double *s2, int B) {
    const int G = B / 8;
    v8f vk[2];
    for (int g = 0; g < G; g++) vk[g] = load8(k + 8 * g);
    for (int64_t i0 = 0; i0 < hw; i0 += FLUSH) {
        const int64_t i1 = i0 + FLUSH < hw ? i0 + FLUSH : hw;
        v8f a1[2] = {{0}}, a2[2] = {{0}};
        for (int64_t i = i0; i < i1; i++)
            for (int g = 0; g < G; g++) {
                const v8f d = load8(x + i * B + 8 * g) - vk[g];
                a1[g] += d;
                a2[g] += d * d;
            }
        for (int l = 0; l < B; l++) s1[l] += a1[l / 8][l % 8], s2[l] += a2[l / 8][l % 8];
    }
}

/* Per lane of block b: scale and shift of z = x * scale + shift; zero in padded lanes. */
static inline __attribute__((always_inline)) void
lane_affine(const pc_bn_shape *s, int b, const float *gamma, const float *beta,
            const float *mu, const float *is, float *scale, float *shift, int B) {
    for (int l = 0; l < B; l++) {
        const int c = b * B + l;
        if (c >= s->c) {
            scale[l] = shift[l] = 0.0f;
            continue;
        }
        scale[l] = (float)((gamma ? gamma[c] : 1.0) * (double)is[l]);
        shift[l] = (beta ? beta[c] : 0.0f) - mu[l] * scale[l];
    }
}

/* y = act(x * scale + shift) over block b of every sample. */
static inline __attribute__((always_inline)) void
apply(const pc_bn_shape *s, int b, const float *x, const float *scale, const float *shift,
      float *y, int act, int B) {
    const int cb = (s->c + B - 1) / B, G = B / 8;
    v8f vsc[2], vsh[2];
    for (int g = 0; g < G; g++) vsc[g] = load8(scale + 8 * g), vsh[g] = load8(shift + 8 * g);
    for (int n = 0; n < s->n; n++) {
        const int64_t o = ((int64_t)n * cb + b) * s->hw * B;
        for (int64_t i = 0; i < s->hw; i++)
            for (int g = 0; g < G; g++) {
                const int64_t k = o + i * B + 8 * g;
                v8f z = load8(x + k) * vsc[g] + vsh[g];
                if (act == ACT_RELU) z = (v8f)((v8i)z & (z > 0.0f)); /* z > 0 ? z : 0 */
                if (act == ACT_RELU6) z = relu6_8(z);
                if (act == ACT_GELU)
                    for (int u = 0; u < 8; u++) z[u] = gelu_value(z[u]);
                memcpy(y + k, &z, sizeof z);
            }
    }
}

static inline __attribute__((always_inline)) void
bn_forward_train(const pc_bn_shape *s, const float *x, const float *gamma, const float *beta,
                 float *y, float *mean, float *batch_var, float *invstd, int act, int B) {
    const int cb = (s->c + B - 1) / B;
    const int64_t hw = s->hw;
    const double M = (double)s->n * hw;
    for (int b = 0; b < cb; b++) {
        /* The moments about k, the mean of the first sample's plane (1/N of the data read
         * once more): var = E[(x - k)^2] - E[x - k]^2 with k near the mean, so the
         * difference does not cancel, and one pass over the batch instead of two. */
        double acc[MAXB] = {0}, s1[MAXB] = {0}, s2[MAXB] = {0};
        float k[MAXB], mu[MAXB], is[MAXB], scale[MAXB], shift[MAXB];
        block_sum(x + (int64_t)b * hw * B, hw, acc, B);
        for (int l = 0; l < B; l++) k[l] = (float)(acc[l] / (double)hw);
        for (int n = 0; n < s->n; n++)
            block_moments(x + ((int64_t)n * cb + b) * hw * B, hw, k, s1, s2, B);
        for (int l = 0; l < B; l++) {
            const int c = b * B + l;
            const double d = s1[l] / M, var = fmax(s2[l] / M - d * d, 0.0);
            mu[l] = (float)(k[l] + d);
            is[l] = (float)(1.0 / sqrt(var + (double)s->eps));
            if (c >= s->c) continue;
            if (mean) mean[c] = mu[l];
            if (batch_var) batch_var[c] = (float)var;
            if (invstd) invstd[c] = is[l];
        }
        if (!y) continue;
        lane_affine(s, b, gamma, beta, mu, is, scale, shift, B);
        apply(s, b, x, scale, shift, y, act, B);
    }
}

static inline __attribute__((always_inline)) void
bn_forward_eval(const pc_bn_shape *s, const float *x, const float *gamma, const float *beta,
                const float *rmean, const float *rvar, float *y, int act, int B) {
    const int cb = (s->c + B - 1) / B;
    for (int b = 0; b < cb; b++) {
        float mu[MAXB], is[MAXB], scale[MAXB], shift[MAXB];
        for (int l = 0; l < B; l++) {
            const int c = b * B + l;
            mu[l] = c < s->c ? rmean[c] : 0.0f;
            is[l] = c < s->c ? (float)(1.0 / sqrt((double)rvar[c] + (double)s->eps)) : 0.0f;
        }
        lane_affine(s, b, gamma, beta, mu, is, scale, shift, B);
        apply(s, b, x, scale, shift, y, act, B);
    }
}

/* act_grad on 8 lanes: ReLU as a mask by y > 0; ReLU6 by 0 < z < 6 and GELU lane by lane,
 * z = x * scale + shift recomputed as the forward computed it (y unread). */
static inline __attribute__((always_inline)) v8f
act_grad8(int act, v8f dy, v8f y, v8f x, v8f scale, v8f shift) {
    if (act == ACT_RELU) return (v8f)((v8i)dy & (y > 0.0f));
    if (act == ACT_RELU6) return (v8f)((v8i)dy & relu6_pass8(x * scale + shift));
    if (act == ACT_GELU) {
        v8f g;
        for (int u = 0; u < 8; u++) g[u] = dy[u] * gelu_slope(x[u] * scale[u] + shift[u]);
        return g;
    }
    return dy;
}

static inline __attribute__((always_inline)) void
bn_backward(const pc_bn_shape *s, const float *x, const float *y, const float *gamma,
            const float *beta, const float *mean, const float *invstd, const float *dy,
            float *dx, float *dgamma, float *dbeta, int act, int B) {
    const int cb = (s->c + B - 1) / B, G = B / 8;
    const int64_t hw = s->hw;
    const double M = (double)s->n * hw;
    if (act != ACT_RELU) y = x; /* unread: keeps the loops below free of a test */
    for (int b = 0; b < cb; b++) {
        float mu[MAXB], is[MAXB], scale[MAXB], shift[MAXB];
        for (int l = 0; l < B; l++) {
            const int c = b * B + l;
            mu[l] = c < s->c ? mean[c] : 0.0f;
            is[l] = c < s->c ? invstd[c] : 0.0f;
        }
        lane_affine(s, b, gamma, beta, mu, is, scale, shift, B);
        v8f vmu[2], vsc[2], vsh[2];
        for (int g = 0; g < G; g++)
            vmu[g] = load8(mu + 8 * g), vsc[g] = load8(scale + 8 * g), vsh[g] = load8(shift + 8 * g);
        double sdy[MAXB] = {0}, sdyx[MAXB] = {0}; /* sum(g), sum(g * (x - mu)) */
        for (int n = 0; n < s->n; n++) {
            const int64_t o = ((int64_t)n * cb + b) * hw * B;
            for (int64_t i0 = 0; i0 < hw; i0 += FLUSH) {
                const int64_t i1 = i0 + FLUSH < hw ? i0 + FLUSH : hw;
                v8f a1[2] = {{0}}, a2[2] = {{0}};
                for (int64_t i = i0; i < i1; i++)
                    for (int g = 0; g < G; g++) {
                        const int64_t k = o + i * B + 8 * g;
                        const v8f xv = load8(x + k);
                        const v8f gr = act_grad8(act, load8(dy + k), load8(y + k), xv, vsc[g], vsh[g]);
                        a1[g] += gr;
                        a2[g] += gr * (xv - vmu[g]);
                    }
                for (int l = 0; l < B; l++) sdy[l] += a1[l / 8][l % 8], sdyx[l] += a2[l / 8][l % 8];
            }
        }
        float k1[MAXB], k2[MAXB], k3[MAXB];
        for (int l = 0; l < B; l++) {
            const int c = b * B + l;
            sdyx[l] *= is[l]; /* sum(g * xhat) */
            if (c >= s->c) {
                k1[l] = k2[l] = k3[l] = 0.0f; /* padded lanes: zero gradient */
                continue;
            }
            if (dgamma) dgamma[c] = (float)sdyx[l];
            if (dbeta) dbeta[c] = (float)sdy[l];
            /* dx = a (M g - sdy - xhat sdyx) = k1 g + k2 (x - mu) + k3 */
            const double a = (gamma ? gamma[c] : 1.0) * is[l] / M;
            k1[l] = (float)(a * M);
            k2[l] = (float)(-a * is[l] * sdyx[l]);
            k3[l] = (float)(-a * sdy[l]);
        }
        if (!dx) continue;
        v8f vk1[2], vk2[2], vk3[2];
        for (int g = 0; g < G; g++)
            vk1[g] = load8(k1 + 8 * g), vk2[g] = load8(k2 + 8 * g), vk3[g] = load8(k3 + 8 * g);
        for (int n = 0; n < s->n; n++) {
            const int64_t o = ((int64_t)n * cb + b) * hw * B;
            for (int64_t i = 0; i < hw; i++)
                for (int g = 0; g < G; g++) {
                    const int64_t k = o + i * B + 8 * g;
                    const v8f xv = load8(x + k);
                    const v8f gr = act_grad8(act, load8(dy + k), load8(y + k), xv, vsc[g], vsh[g]);
                    const v8f d = vk1[g] * gr + vk2[g] * (xv - vmu[g]) + vk3[g];
                    memcpy(dx + k, &d, sizeof d);
                }
        }
    }
}

/* Each public kernel dispatches to copies specialized for B and the activation. */
#define DISPATCH(call_b8, call_b16)            \
    do {                                       \
        if (block == 8) { call_b8; }           \
        else { call_b16; }                     \
    } while (0)
#define BY_ACT(f, ...)                                                   \
    do {                                                                 \
        if (act == PC_FAST_RELU) f(__VA_ARGS__, ACT_RELU, B);            \
        else if (act == PC_FAST_RELU6) f(__VA_ARGS__, ACT_RELU6, B);     \
        else if (act == PC_FAST_GELU) f(__VA_ARGS__, ACT_GELU, B);       \
        else f(__VA_ARGS__, ACT_NONE, B);                                \
    } while (0)

static void bn_forward_train_b8(const pc_bn_shape *s, const float *x, const float *g,
                                const float *be, float *y, float *m, float *v, float *is,
                                pc_fast_act act) {
    enum { B = 8 };
    BY_ACT(bn_forward_train, s, x, g, be, y, m, v, is);
}
static void bn_forward_train_b16(const pc_bn_shape *s, const float *x, const float *g,
                                 const float *be, float *y, float *m, float *v, float *is,
                                 pc_fast_act act) {
    enum { B = 16 };
    BY_ACT(bn_forward_train, s, x, g, be, y, m, v, is);
}
void fast_bnb_forward_train(const pc_bn_shape *s, int block, const float *x, const float *gamma,
                            const float *beta, float *y, float *mean, float *batch_var,
                            float *invstd, pc_fast_act act) {
    DISPATCH(bn_forward_train_b8(s, x, gamma, beta, y, mean, batch_var, invstd, act),
             bn_forward_train_b16(s, x, gamma, beta, y, mean, batch_var, invstd, act));
}

static void bn_forward_eval_b8(const pc_bn_shape *s, const float *x, const float *g,
                               const float *be, const float *rm, const float *rv, float *y,
                               pc_fast_act act) {
    enum { B = 8 };
    BY_ACT(bn_forward_eval, s, x, g, be, rm, rv, y);
}
static void bn_forward_eval_b16(const pc_bn_shape *s, const float *x, const float *g,
                                const float *be, const float *rm, const float *rv, float *y,
                                pc_fast_act act) {
    enum { B = 16 };
    BY_ACT(bn_forward_eval, s, x, g, be, rm, rv, y);
}
void fast_bnb_forward_eval(const pc_bn_shape *s, int block, const float *x, const float *gamma,
                           const float *beta, const float *rmean, const float *rvar, float *y,
                           pc_fast_act act) {
    DISPATCH(bn_forward_eval_b8(s, x, gamma, beta, rmean, rvar, y, act),
             bn_forward_eval_b16(s, x, gamma, beta, rmean, rvar, y, act));
}

static void bn_backward_b8(const pc_bn_shape *s, const float *x, const float *y,
                           const float *g, const float *be, const float *m, const float *is,
                           const float *dy, float *dx, float *dg, float *db, pc_fast_act act) {
    enum { B = 8 };
    BY_ACT(bn_backward, s, x, y, g, be, m, is, dy, dx, dg, db);
}
static void bn_backward_b16(const pc_bn_shape *s, const float *x, const float *y,
                            const float *g, const float *be, const float *m, const float *is,
                            const float *dy, float *dx, float *dg, float *db, pc_fast_act act) {
    enum { B = 16 };
    BY_ACT(bn_backward, s, x, y, g, be, m, is, dy, dx, dg, db);
}
void fast_bnb_backward(const pc_bn_shape *s, int block, const float *x, const float *y,
                       const float *gamma, const float *beta, const float *mean,
                       const float *invstd, const float *dy, float *dx, float *dgamma,
                       float *dbeta, pc_fast_act act) {
    DISPATCH(bn_backward_b8(s, x, y, gamma, beta, mean, invstd, dy, dx, dgamma, dbeta, act),
             bn_backward_b16(s, x, y, gamma, beta, mean, invstd, dy, dx, dgamma, dbeta, act));
}

/* ------------------------------------------------------------ pooling */

/* The clipped window of output (oh, ow), as the reference kernels clip it. */
typedef struct {
    int h0, h1, w0, w1;
} window;

static inline window clip(const pc_pool_shape *s, int oh, int ow) {
    window w = {oh * s->sh - s->ph, oh * s->sh - s->ph + s->kh, ow * s->sw - s->pw,
                ow * s->sw - s->pw + s->kw};
    if (w.h0 < 0) w.h0 = 0;
    if (w.h1 > s->h) w.h1 = s->h;
    if (w.w0 < 0) w.w0 = 0;
    if (w.w1 > s->w) w.w1 = s->w;
    return w;
}

/* One cell of a max-pool window: v replaces the best so far where it is larger or NaN (the
 * reference's rule), and cell becomes those lanes' argmax. */
static inline __attribute__((always_inline)) void
max_step(v8f v, int32_t cell, v8f *best, v8i *bi) {
    const v8i t = (v > *best) | (v != v);
    *best = (v8f)(((v8i)v & t) | ((v8i)*best & ~t));
    *bi = (cell & t) | (*bi & ~t);
}

/* N windows side by side (outputs ow .. ow + N - 1 of row oh; N a constant, at most 4),
 * each K x K cells inside the plane: N independent chains of comparisons, each in the order
 * of the loop below, so the bits and argmax are its own; one chain alone waits on each
 * comparison. */
static inline __attribute__((always_inline)) void
maxpool_run(const pc_pool_shape *s, const float *xp, const window *win, int K, int N, float *y,
            int32_t *argmax, int B) {
    const int W = s->w;
    for (int g = 0; g < B; g += 8) {
        v8f best[4];
        v8i bi[4];
        for (int q = 0; q < N; q++) {
            best[q] = -INFINITY + (v8f){0};
            bi[q] = (win->h0 * W + win->w0 + q * s->sw) + (v8i){0};
        }
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++)
                for (int q = 0; q < N; q++) {
                    const int h = win->h0 + i, w = win->w0 + q * s->sw + j;
                    max_step(load8(xp + ((int64_t)h * W + w) * B + g), h * W + w, &best[q], &bi[q]);
                }
        for (int q = 0; q < N; q++) {
            memcpy(y + q * B + g, &best[q], sizeof best[q]);
            if (argmax) memcpy(argmax + q * B + g, &bi[q], sizeof bi[q]);
        }
    }
}

static inline int whole_window(const window *w, int K) {
    return w->h1 - w->h0 == K && w->w1 - w->w0 == K;
}

/* How many of the windows ow (its clipped window: first), ow + 1, ... (up to 4) of row oh
 * lie inside the plane with K x K cells: 4, 2 or 0 (the ones between the first and the
 * last lie inside too). */
static inline int whole_run(const pc_pool_shape *s, const window *first, int oh, int ow, int K) {
    if (!whole_window(first, K)) return 0;
    for (int n = 4; n >= 2; n -= 2) {
        if (ow + n > s->ow) continue;
        const window last = clip(s, oh, ow + n - 1);
        if (whole_window(&last, K)) return n;
    }
    return 0;
}

/* argmax: per output lane, the index h * W + w of its cell within the plane. Eight lanes at
 * a time in vector code (B / 8 groups per pixel). K > 0 (a constant where inlined): runs of
 * 4 or 2 K x K windows inside the plane go through maxpool_run. */
static inline __attribute__((always_inline)) void
maxpool_forward(const pc_pool_shape *s, const float *x, float *y, int32_t *argmax, int B, int K) {
    const int want_argmax = argmax != NULL; /* a constant where inlined (maxpool_values_b*) */
    const int cb = (s->c + B - 1) / B, W = s->w;
    const int64_t xplane = (int64_t)s->h * W * B, yplane = (int64_t)s->oh * s->ow * B;
    for (int64_t p = 0; p < (int64_t)s->n * cb; p++) {
        const float *xp = x + p * xplane;
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow;) {
                const window win = clip(s, oh, ow);
                const int64_t o = p * yplane + ((int64_t)oh * s->ow + ow) * B;
                const int run = K ? whole_run(s, &win, oh, ow, K) : 0;
                if (run) {
                    int32_t *a = want_argmax ? argmax + o : NULL;
                    if (run == 4) maxpool_run(s, xp, &win, K, 4, y + o, a, B);
                    else maxpool_run(s, xp, &win, K, 2, y + o, a, B);
                    ow += run;
                    continue;
                }
                for (int g = 0; g < B; g += 8) {
                    v8f best = -INFINITY + (v8f){0};
                    v8i bi = (win.h0 * W + win.w0) + (v8i){0};
                    for (int h = win.h0; h < win.h1; h++)
                        for (int w = win.w0; w < win.w1; w++)
                            max_step(load8(xp + ((int64_t)h * W + w) * B + g), h * W + w, &best, &bi);
                    memcpy(y + o + g, &best, sizeof best);
                    if (want_argmax) memcpy(argmax + o + g, &bi, sizeof bi);
                }
                ow++;
            }
    }
}

/* 2x2 windows at stride 2 without padding, the pool after most convolutions: every window
 * lies inside the plane, so the loop above runs unrolled, with its comparisons in its order
 * (the first cell always replaces the initial -inf, or equals it). */
static inline int is_2x2_stride2(const pc_pool_shape *s) {
    return s->kh == 2 && s->kw == 2 && s->sh == 2 && s->sw == 2 && s->ph == 0 && s->pw == 0 &&
           2 * s->oh <= s->h && 2 * s->ow <= s->w; /* in ceil mode a last window may be cut */
}

static inline __attribute__((always_inline)) void
maxpool2x2_forward(const pc_pool_shape *s, const float *x, float *y, int32_t *argmax, int B) {
    const int cb = (s->c + B - 1) / B, W = s->w;
    const int64_t xplane = (int64_t)s->h * W * B, yplane = (int64_t)s->oh * s->ow * B;
    const int64_t down = (int64_t)W * B; /* the cell below */
    for (int64_t p = 0; p < (int64_t)s->n * cb; p++)
        for (int oh = 0; oh < s->oh; oh++) {
            const float *row = x + p * xplane + 2 * oh * down;
            const int64_t o = p * yplane + (int64_t)oh * s->ow * B;
            for (int ow = 0; ow < s->ow; ow++) {
                const float *c0 = row + (int64_t)2 * ow * B;
                const int32_t i0 = 2 * oh * W + 2 * ow;
                for (int g = 0; g < B; g += 8) {
                    v8f best = load8(c0 + g);
                    v8i bi = i0 + (v8i){0};
                    max_step(load8(c0 + B + g), i0 + 1, &best, &bi);
                    max_step(load8(c0 + down + g), i0 + W, &best, &bi);
                    max_step(load8(c0 + down + B + g), i0 + W + 1, &best, &bi);
                    memcpy(y + o + (int64_t)ow * B + g, &best, sizeof best);
                    if (argmax) memcpy(argmax + o + (int64_t)ow * B + g, &bi, sizeof bi);
                }
            }
        }
}

static inline int is_3x3(const pc_pool_shape *s) { return s->kh == 3 && s->kw == 3; }

/* Separate copies with and without the argmax (a NULL constant after inlining: no index
 * work at all in inference), and for 3x3 windows (Xception's pools: stride 2, padding 1). */
static void maxpool_forward_b8(const pc_pool_shape *s, const float *x, float *y, int32_t *a) {
    if (is_2x2_stride2(s)) maxpool2x2_forward(s, x, y, a, 8);
    else if (is_3x3(s)) maxpool_forward(s, x, y, a, 8, 3);
    else maxpool_forward(s, x, y, a, 8, 0);
}
static void maxpool_forward_b16(const pc_pool_shape *s, const float *x, float *y, int32_t *a) {
    if (is_2x2_stride2(s)) maxpool2x2_forward(s, x, y, a, 16);
    else if (is_3x3(s)) maxpool_forward(s, x, y, a, 16, 3);
    else maxpool_forward(s, x, y, a, 16, 0);
}
static void maxpool_values_b8(const pc_pool_shape *s, const float *x, float *y) {
    if (is_2x2_stride2(s)) maxpool2x2_forward(s, x, y, NULL, 8);
    else if (is_3x3(s)) maxpool_forward(s, x, y, NULL, 8, 3);
    else maxpool_forward(s, x, y, NULL, 8, 0);
}
static void maxpool_values_b16(const pc_pool_shape *s, const float *x, float *y) {
    if (is_2x2_stride2(s)) maxpool2x2_forward(s, x, y, NULL, 16);
    else if (is_3x3(s)) maxpool_forward(s, x, y, NULL, 16, 3);
    else maxpool_forward(s, x, y, NULL, 16, 0);
}
void fast_maxpoolb_forward(const pc_pool_shape *s, int block, const float *x, float *y,
                           int32_t *argmax) {
    if (!argmax) DISPATCH(maxpool_values_b8(s, x, y), maxpool_values_b16(s, x, y));
    else DISPATCH(maxpool_forward_b8(s, x, y, argmax), maxpool_forward_b16(s, x, y, argmax));
}

/* The outputs whose windows contain input row (or column) h: [*lo, *hi). */
static inline void covering(int h, int k, int st, int pad, int out, int *lo, int *hi) {
    const int t = h + pad - k + 1; /* the first output's window must reach h */
    *lo = t <= 0 ? 0 : (t + st - 1) / st;
    *hi = (h + pad) / st + 1;
    if (*hi > out) *hi = out;
}

/* Gathered rather than scattered, so every write is a whole vector: each input cell sums,
 * over the windows that contain it in output order, the dy whose argmax is that cell (the
 * reference's sums in the reference's order; the +0 of a window that chose another cell
 * changes no partial sum, which is never -0). */
static inline __attribute__((always_inline)) void
maxpool_backward(const pc_pool_shape *s, const int32_t *argmax, const float *dy, float *dx,
                 int B) {
    const int cb = (s->c + B - 1) / B, W = s->w;
    const int64_t xplane = (int64_t)s->h * W * B, yplane = (int64_t)s->oh * s->ow * B;
    for (int64_t p = 0; p < (int64_t)s->n * cb; p++) {
        const float *dyp = dy + p * yplane;
        const int32_t *ap = argmax + p * yplane;
        float *dxp = dx + p * xplane;
        for (int h = 0; h < s->h; h++) {
            int oh0, oh1;
            covering(h, s->kh, s->sh, s->ph, s->oh, &oh0, &oh1);
            for (int w = 0; w < W; w++) {
                int ow0, ow1;
                covering(w, s->kw, s->sw, s->pw, s->ow, &ow0, &ow1);
                for (int g = 0; g < B; g += 8) {
                    v8f acc = {0};
                    for (int oh = oh0; oh < oh1; oh++)
                        for (int ow = ow0; ow < ow1; ow++) {
                            const int64_t o = ((int64_t)oh * s->ow + ow) * B + g;
                            v8i a;
                            memcpy(&a, ap + o, sizeof a);
                            acc += (v8f)((v8i)load8(dyp + o) & (a == h * W + w));
                        }
                    memcpy(dxp + ((int64_t)h * W + w) * B + g, &acc, sizeof acc);
                }
            }
        }
    }
}

/* 2x2 / stride 2 / no padding: each cell lies in at most one window, so each window writes
 * its four cells (0 + dy where the argmax is the cell, as the gather above sums: a -0 becomes
 * +0); a last odd row or column lies in none and gets zeros. */
static inline __attribute__((always_inline)) void
maxpool2x2_backward(const pc_pool_shape *s, const int32_t *argmax, const float *dy, float *dx,
                    int B) {
    const int cb = (s->c + B - 1) / B, W = s->w;
    const int64_t xplane = (int64_t)s->h * W * B, yplane = (int64_t)s->oh * s->ow * B;
    const int64_t down = (int64_t)W * B;
    for (int64_t p = 0; p < (int64_t)s->n * cb; p++) {
        float *dxp = dx + p * xplane;
        for (int oh = 0; oh < s->oh; oh++) {
            const int64_t o = p * yplane + (int64_t)oh * s->ow * B;
            float *row = dxp + 2 * oh * down;
            for (int ow = 0; ow < s->ow; ow++) {
                float *c0 = row + (int64_t)2 * ow * B;
                const int32_t i0 = 2 * oh * W + 2 * ow;
                for (int g = 0; g < B; g += 8) {
                    const int64_t k = o + (int64_t)ow * B + g;
                    v8i a;
                    memcpy(&a, argmax + k, sizeof a);
                    const v8i d = (v8i)load8(dy + k);
                    const v8f zero = {0};
                    const v8f d00 = zero + (v8f)(d & (a == i0)), d01 = zero + (v8f)(d & (a == i0 + 1));
                    const v8f d10 = zero + (v8f)(d & (a == i0 + W));
                    const v8f d11 = zero + (v8f)(d & (a == i0 + W + 1));
                    memcpy(c0 + g, &d00, sizeof d00);
                    memcpy(c0 + B + g, &d01, sizeof d01);
                    memcpy(c0 + down + g, &d10, sizeof d10);
                    memcpy(c0 + down + B + g, &d11, sizeof d11);
                }
            }
            if (W > 2 * s->ow) { /* the last, odd column */
                memset(row + (int64_t)2 * s->ow * B, 0, sizeof(float) * B);
                memset(row + down + (int64_t)2 * s->ow * B, 0, sizeof(float) * B);
            }
        }
        if (s->h > 2 * s->oh) /* the rows below the last window */
            memset(dxp + 2 * s->oh * down, 0, sizeof(float) * (s->h - 2 * s->oh) * down);
    }
}

static void maxpool_backward_b8(const pc_pool_shape *s, const int32_t *a, const float *dy,
                                float *dx) {
    if (is_2x2_stride2(s)) maxpool2x2_backward(s, a, dy, dx, 8);
    else maxpool_backward(s, a, dy, dx, 8);
}
static void maxpool_backward_b16(const pc_pool_shape *s, const int32_t *a, const float *dy,
                                 float *dx) {
    if (is_2x2_stride2(s)) maxpool2x2_backward(s, a, dy, dx, 16);
    else maxpool_backward(s, a, dy, dx, 16);
}
void fast_maxpoolb_backward(const pc_pool_shape *s, int block, const int32_t *argmax,
                            const float *dy, float *dx) {
    DISPATCH(maxpool_backward_b8(s, argmax, dy, dx), maxpool_backward_b16(s, argmax, dy, dx));
}

/* Average over the window's real cells (pc_pool_divisor: or the padded window), summed in double as the reference kernel does. */
static inline __attribute__((always_inline)) void
avgpool_forward(const pc_pool_shape *s, const float *x, float *y, int B) {
    const int cb = (s->c + B - 1) / B, W = s->w;
    const int64_t xplane = (int64_t)s->h * W * B, yplane = (int64_t)s->oh * s->ow * B;
    for (int64_t p = 0; p < (int64_t)s->n * cb; p++) {
        const float *xp = x + p * xplane;
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++) {
                const window win = clip(s, oh, ow);
                double acc[MAXB] = {0};
                for (int h = win.h0; h < win.h1; h++)
                    for (int w = win.w0; w < win.w1; w++)
                        for (int l = 0; l < B; l++) acc[l] += xp[((int64_t)h * W + w) * B + l];
                const int cells = pc_pool_divisor(s, oh, ow);
                float *yo = y + p * yplane + ((int64_t)oh * s->ow + ow) * B;
                for (int l = 0; l < B; l++) yo[l] = (float)(acc[l] / cells);
            }
    }
}

static void avgpool_forward_b8(const pc_pool_shape *s, const float *x, float *y) {
    avgpool_forward(s, x, y, 8);
}
static void avgpool_forward_b16(const pc_pool_shape *s, const float *x, float *y) {
    avgpool_forward(s, x, y, 16);
}
void fast_avgpoolb_forward(const pc_pool_shape *s, int block, const float *x, float *y) {
    DISPATCH(avgpool_forward_b8(s, x, y), avgpool_forward_b16(s, x, y));
}

void fast_avgpoolb_backward(const pc_pool_shape *s, int block, const float *dy, float *dx) {
    const int B = block, cb = (s->c + B - 1) / B, W = s->w;
    const int64_t xplane = (int64_t)s->h * W * B, yplane = (int64_t)s->oh * s->ow * B;
    memset(dx, 0, sizeof(float) * (size_t)(s->n * cb * xplane));
    for (int64_t p = 0; p < (int64_t)s->n * cb; p++) {
        float *dxp = dx + p * xplane;
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++) {
                const window win = clip(s, oh, ow);
                const int cells = pc_pool_divisor(s, oh, ow);
                const float *dyo = dy + p * yplane + ((int64_t)oh * s->ow + ow) * B;
                for (int h = win.h0; h < win.h1; h++)
                    for (int w = win.w0; w < win.w1; w++)
                        for (int l = 0; l < B; l++)
                            dxp[((int64_t)h * W + w) * B + l] += (float)(dyo[l] / cells);
            }
    }
}

/* y (N, C) plain: the mean over the plane, a float sum in pixel order as the plain kernel. */
void fast_gapb_forward(int n, int c, int64_t hw, int block, const float *x, float *y) {
    const int B = block, cb = (c + B - 1) / B;
    for (int s = 0; s < n; s++)
        for (int b = 0; b < cb; b++) {
            const float *xb = x + ((int64_t)s * cb + b) * hw * B;
            float acc[MAXB] = {0};
            for (int64_t i = 0; i < hw; i++)
                for (int l = 0; l < B; l++) acc[l] += xb[i * B + l];
            for (int l = 0; l < B && b * B + l < c; l++)
                y[(int64_t)s * c + b * B + l] = acc[l] / (float)hw;
        }
}

void fast_gapb_backward(int n, int c, int64_t hw, int block, const float *dy, float *dx) {
    const int B = block, cb = (c + B - 1) / B;
    for (int s = 0; s < n; s++)
        for (int b = 0; b < cb; b++) {
            float g[MAXB];
            for (int l = 0; l < B; l++)
                g[l] = b * B + l < c ? dy[(int64_t)s * c + b * B + l] / (float)hw : 0.0f;
            float *dxb = dx + ((int64_t)s * cb + b) * hw * B;
            for (int64_t i = 0; i < hw; i++)
                for (int l = 0; l < B; l++) dxb[i * B + l] = g[l];
        }
}

/* ------------------------------------------------------------ residual add */

void fast_addb_forward(const fast_add_shape *s, int block, const float *a, const float *b,
                       float *y, int relu) {
    const int B = block, G = B / 8, cy = (s->c + B - 1) / B, cbb = (s->cb + B - 1) / B;
    const int64_t yplane = (int64_t)s->h * s->w * B, bplane = (int64_t)s->hb * s->wb * B;
    const v8i lane = {0, 1, 2, 3, 4, 5, 6, 7};
    for (int n = 0; n < s->n; n++)
        for (int k = 0; k < cy; k++) {
            const float *ap = a + ((int64_t)n * cy + k) * yplane;
            const float *bp = k < cbb ? b + ((int64_t)n * cbb + k) * bplane : NULL;
            float *yp = y + ((int64_t)n * cy + k) * yplane;
            v8i has_b[2]; /* lanes that are channels of b: b's padded lanes add not even 0 */
            for (int g = 0; g < G; g++) has_b[g] = (k * B + 8 * g + lane) < s->cb;
            for (int h = 0; h < s->h; h++)
                for (int w = 0; w < s->w; w++) {
                    const int64_t o = ((int64_t)h * s->w + w) * B;
                    const int64_t ob = ((int64_t)h * s->sh * s->wb + (int64_t)w * s->sw) * B;
                    for (int g = 0; g < G; g++) {
                        v8f v = load8(ap + o + 8 * g);
                        if (bp) {
                            const v8f sum = v + load8(bp + ob + 8 * g);
                            v = (v8f)(((v8i)sum & has_b[g]) | ((v8i)v & ~has_b[g]));
                        }
                        if (relu) v = (v8f)((v8i)v & ~(v < 0.0f)); /* NaN propagates */
                        memcpy(yp + o + 8 * g, &v, sizeof v);
                    }
                }
        }
}

void fast_addb_backward_b(const fast_add_shape *s, int block, const float *dy, float *db) {
    const int B = block, cy = (s->c + B - 1) / B, cbb = (s->cb + B - 1) / B;
    const int64_t yplane = (int64_t)s->h * s->w * B, bplane = (int64_t)s->hb * s->wb * B;
    if (s->sh > 1 || s->sw > 1) memset(db, 0, sizeof(float) * (size_t)(s->n * cbb * bplane));
    for (int n = 0; n < s->n; n++)
        for (int k = 0; k < cbb; k++) {
            const float *yp = dy + ((int64_t)n * cy + k) * yplane;
            float *bp = db + ((int64_t)n * cbb + k) * bplane;
            for (int h = 0; h < s->h; h++)
                for (int w = 0; w < s->w; w++) {
                    const float *yo = yp + ((int64_t)h * s->w + w) * B;
                    float *bo = bp + ((int64_t)h * s->sh * s->wb + (int64_t)w * s->sw) * B;
                    for (int l = 0; l < B; l++) bo[l] = k * B + l < s->cb ? yo[l] : 0.0f;
                }
        }
}
