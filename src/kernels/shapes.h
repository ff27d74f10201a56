/* Shape descriptors shared by the reference and the oneDNN kernels.
 * All activations are NCHW float32, contiguous; all weights use PyTorch's
 * layouts, so tensors can be exchanged with PyTorch without transposition. */
#ifndef PC_SHAPES_H
#define PC_SHAPES_H

typedef struct {
    int n, c, h, w;            /* input: (N, C, H, W) */
    int k;                     /* output channels */
    int kh, kw;                /* kernel size */
    int sh, sw;                /* stride */
    int ph, pw;                /* zero padding, same on both sides */
    int groups;                /* C and K divisible by groups; groups == C is depthwise */
    int dil_h, dil_w;          /* dilation: kernel taps dil apart (0 is taken as 1) */
    int oh, ow;                /* output size: (h + 2*ph - ((kh-1)*dil_h + 1)) / sh + 1 */
} pc_conv_shape;               /* weight: (K, C/groups, KH, KW); bias: (K) */

typedef struct {
    int n, in, out;            /* x: (N, IN), weight: (OUT, IN), bias: (OUT), y: (N, OUT) */
} pc_dense_shape;

typedef struct {
    int n, c, h, w;            /* input */
    int kh, kw, sh, sw, ph, pw;/* padded cells never win a max and count as absent in an average */
    /* ceil_mode (PyTorch's, ONNX's): oh = ceil((h + 2*ph - kh) / sh) + 1, less one when the
     * last window would start in the bottom padding; the windows past the padding are cut */
    int ceil_mode;
    /* average: the divisor counts the padded cells (within h + 2*ph, not past it in ceil
     * mode), as count_include_pad=True */
    int count_pad;
    int oh, ow;
} pc_pool_shape;

/* The cells an average over output (oh, ow) divides by: the real cells of its window, or with
 * count_pad the window clipped to the padded plane. */
static inline int pc_pool_divisor(const pc_pool_shape *s, int oh, int ow) {
    int h0 = oh * s->sh - s->ph, w0 = ow * s->sw - s->pw;
    int h1 = h0 + s->kh, w1 = w0 + s->kw;
    int lo_h = s->count_pad ? -s->ph : 0, lo_w = s->count_pad ? -s->pw : 0;
    int hi_h = s->count_pad ? s->h + s->ph : s->h, hi_w = s->count_pad ? s->w + s->pw : s->w;
    if (h0 < lo_h) h0 = lo_h;
    if (w0 < lo_w) w0 = lo_w;
    if (h1 > hi_h) h1 = hi_h;
    if (w1 > hi_w) w1 = hi_w;
    return (h1 - h0) * (w1 - w0);
}

typedef struct {
    int n, c, hw;              /* x: (N, C, HW) statistics over N and HW per channel */
    float eps;
} pc_bn_shape;

typedef struct {
    int n, c, h, w;            /* input (N, C, H, W) */
    int top, bottom, left, right; /* padding: output (N, C, H + top + bottom, W + left + right) */
} pc_pad_shape;

/* The convolution algorithm (oneDNN kernels): AUTO, Winograd where it applies and is
 * expected to be faster, else direct; DIRECT everywhere; WINOGRAD wherever it applies
 * (kernels/dnnl/dnnl_wino.c). */
typedef enum { PC_CONV_AUTO = 0, PC_CONV_DIRECT, PC_CONV_WINOGRAD } pc_conv_algo;

/* Fill the derived output sizes; return 0 when the shape is valid, -1 otherwise. */
int pc_conv_shape_finish(pc_conv_shape *s);
int pc_pool_shape_finish(pc_pool_shape *s);
/* The output size of a pooling window along one axis (n input cells, k window, s stride, p
 * padding each side), floor or ceil mode; 0 when the window does not fit. */
int pc_pool_out_size(int n, int k, int s, int p, int ceil_mode);

#endif
