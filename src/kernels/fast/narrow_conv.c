/* Direct convolution of at most 8 input and 8 output channels into the 16-channel blocks
 * of AVX-512's layout (nChw16c), reading either such blocks or the plain NCHW images.
 * oneDNN's kernels compute all 16 lanes of the input and the output block there, and
 * reorder their input first: four times the products and a pass over the input. Here an
 * output pixel is one 8-lane vector of output channels, and NARROW_PIXELS pixels of a row
 * accumulate at once (independent chains that hide the FMA latency): for every tap and
 * input channel, the weights' vector times the input value broadcast. Each output sums
 * bias, then the taps row by row, each tap's channels in order: the same order whoever runs
 * the row, so the bytes do not depend on the threads. */
#include "kernels/fast/fast.h"

#include "core/common.h"

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));
typedef int v8i __attribute__((vector_size(32)));

#define NARROW_PIXELS 8

static inline v8 splat(float f) { return (v8){f, f, f, f, f, f, f, f}; }

int fast_narrow_conv_applies(const pc_conv_shape *s, int x_block, int y_block) {
    return y_block == 16 && (x_block == 0 || x_block == 16) && s->groups == 1 && s->c <= 8 &&
           s->k <= 8;
}

int64_t fast_narrow_conv_wpack_floats(const pc_conv_shape *s) {
    return (int64_t)s->kh * s->kw * s->c * 8;
}

/* w (K, C, KH, KW) -> wp (KH, KW, C, 8): per tap and input channel the vector of output
 * channels, zero past K. */
void fast_narrow_conv_pack(const pc_conv_shape *s, const float *w, float *wp) {
    for (int i = 0; i < s->kh; i++)
        for (int j = 0; j < s->kw; j++)
            for (int c = 0; c < s->c; c++)
                for (int k = 0; k < 8; k++)
                    *wp++ = k < s->k ? w[(((int64_t)k * s->c + c) * s->kh + i) * s->kw + j] : 0.0f;
}

/* Where the input of image n, channel c, row h, column w is: the plain images or one
 * 16-channel block per pixel. */
typedef struct {
    const float *x;
    int64_t image, channel, pixel; /* strides in floats */
    int w;                          /* row length in pixels */
} narrow_input;

static inline const float *input_at(const narrow_input *in, int n, int c, int h, int w) {
    return in->x + n * in->image + c * in->channel + ((int64_t)h * in->w + w) * in->pixel;
}

/* act 1: ReLU, 6: ReLU6 (min(max(a, 0), 6)), as oneDNN's post-ops; 0: none. */
static inline v8 activate(v8 a, int act) {
    if (act) a = (v8)((v8i)a & (a > 0.0f));
    if (act == 6) {
        const v8 six = splat(6.0f);
        const v8i above = a > six;
        a = (v8)(((v8i)a & ~above) | ((v8i)six & above));
    }
    return a;
}

/* Output pixel (n, oh, ow) with the padding's taps skipped. */
static v8 one_pixel(const pc_conv_shape *s, const narrow_input *in, const float *wp, v8 acc,
                    int n, int oh, int ow) {
    const int dh = s->dil_h, dw = s->dil_w;
    for (int i = 0; i < s->kh; i++) {
        const int h = oh * s->sh - s->ph + i * dh;
        if (h < 0 || h >= s->h) continue;
        for (int j = 0; j < s->kw; j++) {
            const int w = ow * s->sw - s->pw + j * dw;
            if (w < 0 || w >= s->w) continue;
            const float *px = input_at(in, n, 0, h, w), *wv = wp + (i * s->kw + j) * s->c * 8;
            for (int c = 0; c < s->c; c++)
                acc += splat(px[c * in->channel]) * *(const v8u *)(wv + c * 8);
        }
    }
    return acc;
}

/* NARROW_PIXELS outputs from (n, oh, ow0) on, all their taps inside the input. */
static void pixel_run(const pc_conv_shape *s, const narrow_input *in, const float *wp, v8 bias,
                      int n, int oh, int ow0, v8 *acc) {
    const int dh = s->dil_h, dw = s->dil_w;
    const int64_t step = (int64_t)s->sw * in->pixel;
    for (int q = 0; q < NARROW_PIXELS; q++) acc[q] = bias;
    for (int i = 0; i < s->kh; i++) {
        const int h = oh * s->sh - s->ph + i * dh;
        for (int j = 0; j < s->kw; j++) {
            const float *px = input_at(in, n, 0, h, ow0 * s->sw - s->pw + j * dw);
            const float *wv = wp + (i * s->kw + j) * s->c * 8;
            for (int c = 0; c < s->c; c++) {
                const v8 w = *(const v8u *)(wv + c * 8);
                const float *p = px + c * in->channel;
                for (int q = 0; q < NARROW_PIXELS; q++) acc[q] += splat(p[q * step]) * w;
            }
        }
    }
}

/* Whether every tap of outputs [ow0, ow0 + NARROW_PIXELS) of row oh lies inside the input. */
static int run_inside(const pc_conv_shape *s, int oh, int ow0) {
    const int dh = s->dil_h, dw = s->dil_w;
    const int h0 = oh * s->sh - s->ph, w0 = ow0 * s->sw - s->pw;
    const int w1 = (ow0 + NARROW_PIXELS - 1) * s->sw - s->pw + (s->kw - 1) * dw;
    return ow0 + NARROW_PIXELS <= s->ow && h0 >= 0 && h0 + (s->kh - 1) * dh < s->h && w0 >= 0 &&
           w1 < s->w;
}

static inline void store_pixel(float *y, v8 a) {
    *(v8u *)y = a;
    *(v8u *)(y + 8) = splat(0.0f);
}

void fast_narrow_conv_rows(int row_lo, int row_hi, const pc_conv_shape *s, int x_block,
                           const float *x, const float *wp, const float *bias, int act, float *y) {
    const int64_t hw = (int64_t)s->h * s->w;
    const narrow_input in = {.x = x,
                             .image = x_block ? hw * 16 : hw * s->c,
                             .channel = x_block ? 1 : hw,
                             .pixel = x_block ? 16 : 1,
                             .w = s->w};
    v8 b = splat(0.0f);
    for (int k = 0; bias && k < s->k; k++) b[k] = bias[k];
    for (int r = row_lo; r < row_hi; r++) {
        const int n = r / s->oh, oh = r % s->oh;
        float *yrow = y + (int64_t)r * s->ow * 16;
        for (int ow = 0; ow < s->ow; ow++) {
            /* a row's last pixels as the run ending at its last pixel: the pixels it shares
             * with the run before are stored again with the same values, computed in the
             * same order */
            int start = ow;
            if (ow + NARROW_PIXELS > s->ow && s->ow >= NARROW_PIXELS &&
                run_inside(s, oh, s->ow - NARROW_PIXELS))
                start = s->ow - NARROW_PIXELS;
            if (run_inside(s, oh, start)) {
                v8 acc[NARROW_PIXELS];
                pixel_run(s, &in, wp, b, n, oh, start, acc);
                for (int q = 0; q < NARROW_PIXELS; q++)
                    store_pixel(yrow + (start + q) * 16, activate(acc[q], act));
                ow = start + NARROW_PIXELS - 1;
            } else {
                store_pixel(yrow + ow * 16, activate(one_pixel(s, &in, wp, b, n, oh, ow), act));
            }
        }
    }
}
