/* Max pooling forward for any window, stride and padding, eight output columns at a time in
 * vector code: bitwise the reference kernel's output and argmax (ref_maxpool_forward: real
 * cells visited row by row in the same order, strictly greater wins, NaN propagates, padded
 * cells never win and the index starts at the window's first real cell).
 *
 * Each output row goes in groups of eight columns, the last group shifted back to end at
 * the row's end. With padding, or rows narrower than a group, each plane is first copied
 * into a scratch plane bordered with -inf and followed by slack: a -inf cell never replaces
 * the best (strictly greater), so every window is whole, and a narrow row's spare lanes read
 * the slack or the next rows, computing columns that are not stored.
 *
 * GCC vector extensions: portable C, vector code on every target. */
#include "kernels/fast/fast.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

enum { LANES = 8 };
typedef float vf __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(LANES * sizeof(int32_t))));

static int needs_copy(const pc_pool_shape *s) { return s->ph || s->pw || s->ow < LANES; }

/* Floats a group may read past the last window of a plane: its spare lanes. */
static size_t slack(const pc_pool_shape *s) { return (size_t)LANES * (s->sw + 2) + s->kw; }

size_t fast_maxpool_scratch(const pc_pool_shape *s) {
    if (!needs_copy(s)) return 0;
    return ((size_t)(s->h + 2 * s->ph) * (size_t)(s->w + 2 * s->pw) + slack(s)) * sizeof(float);
}

/* -inf in the border and the slack of the scratch plane: written once per call, as the
 * planes copied in (copy_plane) never touch them. */
static void fill_border(const pc_pool_shape *s, float *pad) {
    const int H = s->h, W = s->w, ph = s->ph, pw = s->pw, Wp = W + 2 * pw;
    for (int i = 0; i < ph * Wp; i++) pad[i] = -INFINITY;
    for (int h = 0; h < H; h++) {
        float *r = pad + (ptrdiff_t)(h + ph) * Wp;
        for (int w = 0; w < pw; w++) r[w] = r[pw + W + w] = -INFINITY;
    }
    float *tail = pad + (ptrdiff_t)(H + ph) * Wp;
    for (size_t i = 0; i < (size_t)ph * Wp + slack(s); i++) tail[i] = -INFINITY;
}

static void copy_plane(const pc_pool_shape *s, const float *x, float *pad) {
    const int W = s->w, Wp = W + 2 * s->pw;
    for (int h = 0; h < s->h; h++)
        memcpy(pad + (ptrdiff_t)(h + s->ph) * Wp + s->pw, x + (ptrdiff_t)h * W,
               (size_t)W * sizeof(float));
}

/* v replaces best (and idx replaces bi) where greater, or NaN. */
static inline __attribute__((always_inline)) void take(vf v, vi idx, vf *best, vi *bi) {
    const vi t = (v > *best) | (v != v);
    *best = (vf)(((vi)v & t) | ((vi)*best & ~t));
    *bi = (idx & t) | (*bi & ~t);
}

/* The cells p[u * sw], u < LANES. */
static inline __attribute__((always_inline)) vf load(const float *p, int sw) {
    vf v, w;
    memcpy(&v, p, sizeof v);
    if (sw == 1) return v;
    if (sw == 2) { /* cells 0..14 only: the 16th may lie past the end of the tensor */
        memcpy(&w, p + LANES - 1, sizeof w);
#ifdef __clang__ /* the fuzzing build (tests/fuzz) */
        return __builtin_shufflevector(v, w, 0, 2, 4, 6, 9, 11, 13, 15);
#else
        return __builtin_shuffle(v, w, (vi){0, 2, 4, 6, 9, 11, 13, 15});
#endif
    }
    for (int u = 0; u < LANES; u++) v[u] = p[u * sw];
    return v;
}

/* Output columns c0 .. c0 + LANES - 1 of the row whose windows start at row `top` of the
 * (padded) plane xp with rows of Wp; h0: that row in the unpadded plane (may be < 0). */
static inline __attribute__((always_inline)) void
group(const pc_pool_shape *s, const float *xp, int Wp, int top, int h0, int c0, int kh, int kw,
      int sw, vf *best, vi *bi) {
    const int W = s->w;
    const vi lane = {0, 1, 2, 3, 4, 5, 6, 7};
    const vi w0 = (c0 * sw - s->pw) + lane * sw; /* each window's first column, unpadded */
    *best = -INFINITY + (vf){0};
    *bi = (h0 > 0 ? h0 : 0) * W + (w0 & ~(w0 >> 31)); /* the first real cell */
    for (int i = 0; i < kh; i++)
        for (int j = 0; j < kw; j++)
            take(load(xp + (ptrdiff_t)(top + i) * Wp + c0 * sw + j, sw), (h0 + i) * W + w0 + j,
                 best, bi);
}

static inline __attribute__((always_inline)) void
forward(const pc_pool_shape *s, const float *x, float *y, int32_t *argmax, float *scratch,
        int kh, int kw, int sh, int sw) {
    const int OH = s->oh, OW = s->ow, copy = needs_copy(s), Wp = s->w + 2 * s->pw;
    const int64_t planes = (int64_t)s->n * s->c, xplane = (int64_t)s->h * s->w,
                  yplane = (int64_t)OH * OW;
    if (copy) fill_border(s, scratch);
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = x + p * xplane;
        if (copy) {
            copy_plane(s, xp, scratch);
            xp = scratch;
        }
        for (int oh = 0; oh < OH; oh++) {
            float *yr = y + p * yplane + (int64_t)oh * OW;
            int32_t *ar = argmax + p * yplane + (int64_t)oh * OW;
            vf best;
            vi bi;
            if (OW < LANES) { /* one group, the spare lanes not stored */
                group(s, xp, Wp, oh * sh, oh * sh - s->ph, 0, kh, kw, sw, &best, &bi);
                for (int u = 0; u < OW; u++) yr[u] = best[u], ar[u] = bi[u];
                continue;
            }
            for (int c0 = 0;; c0 += LANES) {
                if (c0 > OW - LANES) c0 = OW - LANES; /* the last group, shifted back */
                group(s, xp, Wp, oh * sh, oh * sh - s->ph, c0, kh, kw, sw, &best, &bi);
                memcpy(yr + c0, &best, sizeof best);
                memcpy(ar + c0, &bi, sizeof bi);
                if (c0 == OW - LANES) break;
            }
        }
    }
}

void fast_maxpool_forward(const pc_pool_shape *s, const float *x, float *y, int32_t *argmax,
                          void *scratch) {
    /* the usual windows with constant sizes, so the loops over their cells unroll */
    if (s->kh == 2 && s->kw == 2 && s->sh == 2 && s->sw == 2)
        forward(s, x, y, argmax, scratch, 2, 2, 2, 2);
    else if (s->kh == 3 && s->kw == 3 && s->sh == 2 && s->sw == 2)
        forward(s, x, y, argmax, scratch, 3, 3, 2, 2);
    else if (s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1)
        forward(s, x, y, argmax, scratch, 3, 3, 1, 1);
    else
        forward(s, x, y, argmax, scratch, s->kh, s->kw, s->sh, s->sw);
}
