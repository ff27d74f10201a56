/* Max pooling 2x2 with stride 2 and no padding, the CNNs' usual one, in branch-free code the
 * compiler vectorizes: bitwise the reference kernel's output and argmax (cells visited in
 * the same order, strictly greater wins, NaN propagates). */
#include "kernels/fast/fast.h"

#include <math.h>

int fast_maxpool2_applies(const pc_pool_shape *s) {
    return s->kh == 2 && s->kw == 2 && s->sh == 2 && s->sw == 2 && s->ph == 0 && s->pw == 0;
}

/* One step of the reference's scan: v at index i replaces the best so far when greater
 * or NaN. */
#define TAKE(v, i)                                  \
    do {                                            \
        int take_ = (v) > best || (v) != (v);       \
        best = take_ ? (v) : best;                  \
        bi = take_ ? (i) : bi;                      \
    } while (0)

void fast_maxpool2_forward(const pc_pool_shape *s, const float *x, float *y, int32_t *argmax) {
    const int W = s->w, OH = s->oh, OW = s->ow;
    const int64_t planes = (int64_t)s->n * s->c, xplane = (int64_t)s->h * W,
                  yplane = (int64_t)OH * OW;
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = x + p * xplane;
        for (int oh = 0; oh < OH; oh++) {
            const float *r0 = xp + (int64_t)(2 * oh) * W, *r1 = r0 + W;
            float *yr = y + p * yplane + (int64_t)oh * OW;
            int32_t *ar = argmax + p * yplane + (int64_t)oh * OW;
            const int32_t i0 = 2 * oh * W, i1 = i0 + W;
            for (int ow = 0; ow < OW; ow++) {
                float best = -INFINITY;
                int32_t bi = i0 + 2 * ow;
                TAKE(r0[2 * ow], i0 + 2 * ow);
                TAKE(r0[2 * ow + 1], i0 + 2 * ow + 1);
                TAKE(r1[2 * ow], i1 + 2 * ow);
                TAKE(r1[2 * ow + 1], i1 + 2 * ow + 1);
                yr[ow] = best;
                ar[ow] = bi;
            }
        }
    }
}
