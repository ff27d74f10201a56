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
    int oh, ow;                /* output size: (h + 2*ph - kh) / sh + 1, likewise ow */
} pc_conv_shape;               /* weight: (K, C/groups, KH, KW); bias: (K) */

typedef struct {
    int n, in, out;            /* x: (N, IN), weight: (OUT, IN), bias: (OUT), y: (N, OUT) */
} pc_dense_shape;

typedef struct {
    int n, c, h, w;            /* input */
    int kh, kw, sh, sw, ph, pw;/* padded cells never win a max and count as absent in an average */
    int oh, ow;                /* floor mode: (h + 2*ph - kh) / sh + 1 */
} pc_pool_shape;

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

#endif
