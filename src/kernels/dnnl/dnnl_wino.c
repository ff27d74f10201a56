/* Winograd convolution F(4x4, r x r) on channel-blocked activations, with the products
 * in the Winograd domain done by oneDNN's batched matmul (Lavin & Gray, "Fast Algorithms
 * for Convolutional Neural Networks", 2016).
 *
 * Every tile gives 4 x 4 outputs from alpha x alpha inputs, alpha = 4 + r - 1:
 *   3x3 kernels: F(4x4, 3x3), alpha 6, interpolation points 0, +-1, +-2 and infinity;
 *   5x5 kernels: F(4x4, 5x5), alpha 8, the points of alpha 6 and +-1/2.
 * That is alpha^2 products per tile and channel pair instead of 16 r^2: 2.25x (3x3) and
 * 6.25x (5x5) fewer than the direct algorithm. oneDNN 2.6 has Winograd only for AVX-512,
 * 3x3 and the forward; this plan runs on every CPU and in all three directions:
 *
 *   forward          V = B^T x B per tile and input channel, U = G w G^T per channel pair,
 *                    M[p] = V[p] U[p] for each of the alpha^2 positions p (a matmul batch),
 *                    y = A^T M A (+ bias, ReLU)
 *   backward data    the forward's algorithm on dy with the kernel rotated by 180 degrees
 *                    and its channels swapped (stride 1, "same" padding: dx has x's size)
 *   backward weights dU[p] = V[p]^T (A dy A^T)[p] summed over tiles, dw = G^T dU G
 *
 * The images of a shard are processed in chunks whose V and M stay within 8 MB (the last
 * level cache). Every sum has a fixed order (the chunks in order, oneDNN's matmul for a
 * fixed shape and thread count), so results do not depend on the worker count. Outputs
 * differ from the direct algorithm's by rounding only (test_dnnl, normalized error
 * against the reference kernels: 2e-6 for 3x3, 3e-6 for 5x5, direct 1.7e-6). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "dnnl_internal.h"
#include "dnnl_kernels.h"

#define TILE 4                    /* outputs per tile side */
#define ALPHA_MAX 8

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));
typedef int v8i __attribute__((vector_size(32)));
typedef unsigned v8w __attribute__((vector_size(32)));
static inline v8 ld(const float *p) { return *(const v8u *)p; }
static inline void st(float *p, v8 v) { *(v8u *)p = v; }
static inline v8 splat(float f) { return (v8){f, f, f, f, f, f, f, f}; }
/* x rounded to the nearest bfloat16 (ties to even), NaN quieted: pcd_round_bf16's rule. */
static inline v8 bf16_round8(v8 x) {
    const v8w v = (v8w)x;
    const v8w even = (v + 0x7fffu + ((v >> 16) & 1u)) & 0xffff0000u;
    const v8w qnan = (v | 0x00400000u) & 0xffff0000u;
    const v8w nan = (v8w)((v & 0x7fffffffu) > 0x7f800000u);
    return (v8)((qnan & nan) | (even & ~nan));
}

struct pcd_wino {
    pcd_base b;
    pc_conv_shape s;              /* s.c rounded up to the block: padded channels are zero */
    int c_weights;                /* the input channels of the weights */
    int block, relu;
    int bf16;                     /* emulated bf16: operands rounded to bf16 as they are read */
    int r, alpha, pos;            /* F(TILE x TILE, r x r); alpha = TILE + r - 1; alpha^2 */
    int th, tw;                   /* tiles per image: rows, columns */
    int chunk;                    /* images per chunk (divides s.n) */
    int tiles;                    /* tiles per chunk */
    /* Floats from one position to the next in V and M, and in U, Ub and dU: the rows of
     * the positions are padded apart so that they do not fall on the same cache sets
     * (their sizes are often multiples of 4 KiB). */
    size_t vstride, ustride;
    float G[ALPHA_MAX][5];        /* the weight transform, alpha x r */
    /* (pos, C, K), (pos, K, C) and (pos, C, K): the transformed weights of the forward and
     * of backward data, the weights' gradient. One buffer holds all three, each needed only
     * within its own pass (pcd_wino_backward runs backward data before backward weights):
     * the weights cost 4x (3x3) or 7x (5x5) their size per layer and replica, not 12x or
     * 21x (whitenet-wide: about 145 MB less per replica). Whoever overwrites the buffer
     * forgets what the other transforms were made from, so they are made again when
     * needed (in training every step makes them anyway). */
    float *U, *Ub, *dU;
    pcd_kept u_from, ub_from;     /* the weights U and Ub were transformed from */
    float *V, *M;                 /* (pos, tiles, max(C, K)) twice */
    pcd_prim *fwd, *bwd_d, *bwd_w, *bwd_w_acc;
    /* the matmuls' arguments, over the buffers above: forward (V, U, M), backward data
     * (V, Ub, M with the channel counts swapped), backward weights (V transposed, M, dU) */
    dnnl_memory_t f_v, f_u, f_m, d_v, d_u, d_m, w_v, w_m, w_du;
};

/* ---- the transforms (rows of alpha or TILE vectors of 8 channels) ----
 * B^T row j holds the coefficients of the product of (x - p) over the finite points p
 * other than point j (the last row: over all of them), each row scaled to integers; A^T
 * row i holds the points' i-th powers (infinity: 1 in the last row). The points come in
 * pairs +-p, so each pair of rows is an even and an odd part added and subtracted. */

/* o = B^T d, alpha 6 */
static inline void bt6(const v8 *d, int ds, v8 *o, int os) {
    const v8 d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds],
             d5 = d[5 * ds];
    o[0] = 4 * d0 - 5 * d2 + d4;
    o[os] = -4 * (d1 + d2) + d3 + d4;
    o[2 * os] = 4 * (d1 - d2) - d3 + d4;
    o[3 * os] = 2 * (d3 - d1) - d2 + d4;
    o[4 * os] = 2 * (d1 - d3) - d2 + d4;
    o[5 * os] = 4 * d1 - 5 * d3 + d5;
}

/* o = B^T d, alpha 8 */
static inline void bt8(const v8 *d, int ds, v8 *o, int os) {
    const v8 d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds],
             d5 = d[5 * ds], d6 = d[6 * ds], d7 = d[7 * ds];
    o[0] = 4 * (d6 - d0) + 21 * (d2 - d4);
    v8 e = 4 * (d2 + d6) - 17 * d4, od = 4 * (d1 + d5) - 17 * d3; /* +-1 */
    o[os] = e + od;
    o[2 * os] = e - od;
    e = d2 - 5 * d4 + 4 * d6, od = 2 * d1 - 10 * d3 + 8 * d5; /* +-2 */
    o[3 * os] = e + od;
    o[4 * os] = e - od;
    e = 8 * d2 - 10 * d4 + 2 * d6, od = 4 * d1 - 5 * d3 + d5; /* +-1/2 */
    o[5 * os] = e + od;
    o[6 * os] = e - od;
    o[7 * os] = 4 * (d7 - d1) + 21 * (d3 - d5);
}

/* o = A^T i (TILE outputs from alpha) */
static inline void at(int alpha, const v8 *i, int is, v8 *o, int os) {
    const v8 i0 = i[0], s1 = i[is] + i[2 * is], d1 = i[is] - i[2 * is],
             s2 = i[3 * is] + i[4 * is], d2 = i[3 * is] - i[4 * is];
    v8 s3 = splat(0), d3 = splat(0);
    if (alpha == 8) s3 = i[5 * is] + i[6 * is], d3 = i[5 * is] - i[6 * is];
    const v8 inf = i[(alpha - 1) * is];
    o[0] = i0 + s1 + s2 + s3;
    o[os] = d1 + 2 * d2 + 0.5f * d3;
    o[2 * os] = s1 + 4 * s2 + 0.25f * s3;
    o[3 * os] = d1 + 8 * d2 + 0.125f * d3 + inf;
}

/* o = A i (alpha outputs from TILE): the transpose of at. */
static inline void a(int alpha, const v8 *i, int is, v8 *o, int os) {
    const v8 i0 = i[0], i1 = i[is], i2 = i[2 * is], i3 = i[3 * is];
    v8 e = i0 + i2, od = i1 + i3; /* +-1 */
    o[0] = i0;
    o[os] = e + od;
    o[2 * os] = e - od;
    e = i0 + 4 * i2, od = 2 * i1 + 8 * i3; /* +-2 */
    o[3 * os] = e + od;
    o[4 * os] = e - od;
    if (alpha == 8) {
        e = i0 + 0.25f * i2, od = 0.5f * i1 + 0.125f * i3; /* +-1/2 */
        o[5 * os] = e + od;
        o[6 * os] = e - od;
    }
    o[(alpha - 1) * os] = i3;
}

static inline void bt(int alpha, const v8 *d, int ds, v8 *o, int os) {
    if (alpha == 8)
        bt8(d, ds, o, os);
    else
        bt6(d, ds, o, os);
}

/* A tensor (n, ch, h, w) blocked by `block` channels, and a tile grid over its output. */
typedef struct {
    int ch, h, w, block, pad; /* the input read by the tiles */
    int bf16;                 /* round what is read to bf16 (emulated bf16) */
    int alpha, th, tw;        /* tile input side, tiles per image */
} tile_geom;

/* The 8 floats at p, as the transforms read them. */
static inline v8 ld_in(const tile_geom *g, const float *p) {
    return g->bf16 ? bf16_round8(ld(p)) : ld(p);
}

/* The first float of channels c .. c + 7 (c a multiple of 8) of image n: the cell (y, x)
 * follows at + (y * w + x) * block. */
static inline const float *plane(const tile_geom *g, const float *t, int n, int c) {
    return t + (((size_t)n * (g->ch / g->block) + c / g->block) * g->h * g->w) * g->block +
           c % g->block;
}

/* Tile tx of tile row `row` (counted from image n0): its image, first output row and
 * column, index t in the chunk, and how many of its TILE x TILE outputs lie inside the
 * image. */
typedef struct {
    int n, y, x, t, rows, cols;
} tile_pos;
static inline tile_pos tile_at(const tile_geom *g, int n0, int row, int tx) {
    const int ty = row % g->th, y = ty * TILE, x = tx * TILE;
    return (tile_pos){.n = n0 + row / g->th, .y = y, .x = x,
                      .t = (row / g->th) * g->th * g->tw + ty * g->tw + tx,
                      .rows = PC_MIN(TILE, g->h - y), .cols = PC_MIN(TILE, g->w - x)};
}

/* Each transform's body is written once for any alpha and compiled twice, with alpha a
 * constant (6 or 8) so that its loops unroll and its tiles stay in registers. */
#define FOR_ALPHA(g, body, ...)                                                            \
    do {                                                                                   \
        if ((g)->alpha == 8)                                                               \
            body(8, __VA_ARGS__);                                                          \
        else                                                                               \
            body(6, __VA_ARGS__);                                                          \
    } while (0)

/* The transformed tile t[i][j] to position i * alpha + j of a tensor whose positions are
 * pstride floats apart (unrolled: the compiler leaves this loop rolled otherwise). */
static inline __attribute__((always_inline)) void
store_tile(const int alpha, v8 t[ALPHA_MAX][ALPHA_MAX], float *out, size_t pstride) {
#pragma GCC unroll 8
    for (int i = 0; i < alpha; i++)
#pragma GCC unroll 8
        for (int j = 0; j < alpha; j++) st(out + (size_t)(i * alpha + j) * pstride, t[i][j]);
}

/* V[p][t][c] = (B^T d B)[p] for the alpha x alpha input window d of tile t and channel
 * c, for the tile rows lo .. hi - 1 of the chunk that starts at image n0 of x; rows and
 * columns outside x read as zero (the padding). */
static inline __attribute__((always_inline)) void
input_transform_a(const int alpha, int lo, int hi, const tile_geom *g, const float *x, int n0,
                  float *V, size_t pstride) {
    const int B = g->block, W = g->w;
    for (int row = lo; row < hi; row++)
        for (int tx = 0; tx < g->tw; tx++) {
            const tile_pos tp = tile_at(g, n0, row, tx);
            const int y0 = tp.y - g->pad, x0 = tp.x - g->pad;
            const int inside = y0 >= 0 && y0 + alpha <= g->h && x0 >= 0 && x0 + alpha <= W;
            float *out = V + (size_t)tp.t * g->ch;
            for (int c = 0; c < g->ch; c += 8) {
                const float *src = plane(g, x, tp.n, c);
                v8 d[ALPHA_MAX][ALPHA_MAX], u[ALPHA_MAX][ALPHA_MAX];
                if (inside) {
                    const float *line = src + ((size_t)y0 * W + x0) * B;
                    for (int i = 0; i < alpha; i++, line += (size_t)W * B)
                        for (int j = 0; j < alpha; j++) d[i][j] = ld_in(g, line + j * B);
                } else { /* rows i0 .. i1 - 1 and columns j0 .. j1 - 1 lie inside x */
                    const int i0 = PC_MAX(0, -y0), i1 = PC_MIN(alpha, g->h - y0);
                    const int j0 = PC_MAX(0, -x0), j1 = PC_MIN(alpha, W - x0);
                    for (int i = 0; i < alpha; i++)
                        for (int j = 0; j < alpha; j++) d[i][j] = splat(0);
                    for (int i = i0; i < i1; i++)
                        for (int j = j0; j < j1; j++)
                            d[i][j] = ld_in(g, src + ((size_t)(y0 + i) * W + x0 + j) * B);
                }
                for (int j = 0; j < alpha; j++) bt(alpha, &d[0][j], ALPHA_MAX, &u[0][j], ALPHA_MAX);
                for (int i = 0; i < alpha; i++) bt(alpha, u[i], 1, d[i], 1);
                store_tile(alpha, d, out + c, pstride);
            }
        }
}
static void input_transform(int lo, int hi, const tile_geom *g, const float *x, int n0,
                            float *V, size_t pstride) {
    FOR_ALPHA(g, input_transform_a, lo, hi, g, x, n0, V, pstride);
}

/* y = A^T M A + bias (then ReLU) per tile and output channel, for the tile rows
 * lo .. hi - 1 of the chunk that starts at image n0; g describes y (pad unused). */
static inline __attribute__((always_inline)) void
output_transform_a(const int alpha, int lo, int hi, const tile_geom *g, const float *M,
                   size_t pstride, const float *bias, int relu, int n0, float *y) {
    const int B = g->block, W = g->w;
    for (int row = lo; row < hi; row++)
        for (int tx = 0; tx < g->tw; tx++) {
            const tile_pos tp = tile_at(g, n0, row, tx);
            const float *in = M + (size_t)tp.t * g->ch;
            for (int c = 0; c < g->ch; c += 8) {
                v8 q[ALPHA_MAX][ALPHA_MAX], u[TILE][ALPHA_MAX], o[TILE][TILE];
#pragma GCC unroll 8
                for (int i = 0; i < alpha; i++)
#pragma GCC unroll 8
                    for (int j = 0; j < alpha; j++)
                        q[i][j] = ld(in + (size_t)(i * alpha + j) * pstride + c);
                for (int j = 0; j < alpha; j++)
                    at(alpha, &q[0][j], ALPHA_MAX, &u[0][j], ALPHA_MAX);
                for (int i = 0; i < TILE; i++) at(alpha, u[i], 1, o[i], 1);
                const v8 b = bias ? ld(bias + c) : splat(0);
                float *dst = (float *)plane(g, y, tp.n, c) + ((size_t)tp.y * W + tp.x) * B;
                for (int i = 0; i < tp.rows; i++, dst += (size_t)W * B)
                    for (int j = 0; j < tp.cols; j++) {
                        v8 v = o[i][j] + b;
                        if (relu) v = (v8)((v8i)v & (v > 0)); /* max(v, 0); NaN -> 0 */
                        st(dst + j * B, v);
                    }
            }
        }
}
static void output_transform(int lo, int hi, const tile_geom *g, const float *M,
                             size_t pstride, const float *bias, int relu, int n0, float *y) {
    FOR_ALPHA(g, output_transform_a, lo, hi, g, M, pstride, bias, relu, n0, y);
}

/* D[p][t][k] = (A dy A^T)[p] for the TILE x TILE tile t of dy (zero beyond its edges). */
static inline __attribute__((always_inline)) void
grad_transform_a(const int alpha, int lo, int hi, const tile_geom *g, const float *dy, int n0,
                 float *D, size_t pstride) {
    const int B = g->block, W = g->w;
    for (int row = lo; row < hi; row++)
        for (int tx = 0; tx < g->tw; tx++) {
            const tile_pos tp = tile_at(g, n0, row, tx);
            float *out = D + (size_t)tp.t * g->ch;
            for (int c = 0; c < g->ch; c += 8) {
                const float *src = plane(g, dy, tp.n, c) + ((size_t)tp.y * W + tp.x) * B;
                v8 e[TILE][TILE], u[ALPHA_MAX][TILE], q[ALPHA_MAX][ALPHA_MAX];
                for (int i = 0; i < TILE; i++)
                    for (int j = 0; j < TILE; j++)
                        e[i][j] = i < tp.rows && j < tp.cols
                                      ? ld_in(g, src + ((size_t)i * W + j) * B)
                                      : splat(0);
                for (int j = 0; j < TILE; j++) a(alpha, &e[0][j], TILE, &u[0][j], TILE);
                for (int i = 0; i < alpha; i++) a(alpha, u[i], 1, q[i], 1);
                store_tile(alpha, q, out + c, pstride);
            }
        }
}
static void grad_transform(int lo, int hi, const tile_geom *g, const float *dy, int n0,
                           float *D, size_t pstride) {
    FOR_ALPHA(g, grad_transform_a, lo, hi, g, dy, n0, D, pstride);
}

/* ---- weights ---- */

/* U[p][i][o] = (G g G^T)[p] for each kernel g = w[k][c] (or rotated by 180 degrees, for
 * backward data): (i, o) = (c, k) for the forward, (k, c) for backward data. Eight
 * consecutive o at a time, one per vector lane (O is a multiple of the channel block), so
 * each of the alpha^2 rows of U is written in order. */
static void weight_transform(int lo, int hi, const pcd_wino *wp, const float *w, int rotate,
                             float *U) {
    const int C = wp->s.c, K = wp->s.k, Cw = wp->c_weights, r = wp->r, rr = r * r;
    const int alpha = wp->alpha, O = rotate ? C : K;
    const size_t stride = wp->ustride;
    for (int i = lo; i < hi; i++)
        for (int o = 0; o < O; o += 8) {
            v8 g[25], t[ALPHA_MAX][5];
            for (int l = 0; l < 8; l++) {
                const int k = rotate ? i : o + l, c = rotate ? o + l : i;
                const float *src = w + ((size_t)k * Cw + c) * rr;
                for (int e = 0; e < rr; e++) g[e][l] = c < Cw ? src[rotate ? rr - 1 - e : e] : 0.0f;
            }
            if (wp->bf16)
                for (int e = 0; e < rr; e++) g[e] = bf16_round8(g[e]);
            for (int a = 0; a < alpha; a++)
                for (int v = 0; v < r; v++) {
                    v8 acc = splat(0);
                    for (int u = 0; u < r; u++) acc += wp->G[a][u] * g[u * r + v];
                    t[a][v] = acc;
                }
            float *dst = U + (size_t)i * O + o;
            for (int a = 0; a < alpha; a++)
                for (int b = 0; b < alpha; b++) {
                    v8 acc = splat(0);
                    for (int v = 0; v < r; v++) acc += t[a][v] * wp->G[b][v];
                    st(dst + (size_t)(a * alpha + b) * stride, acc);
                }
        }
}

/* dw[k][c] = G^T dU[.][c][k] G, eight consecutive k at a time (dU read along k), for the
 * weights' channels c. */
static void weight_grad(int lo, int hi, const pcd_wino *wp, const float *dU, float *dw) {
    const int C = wp->c_weights, K = wp->s.k, r = wp->r, rr = r * r, alpha = wp->alpha;
    const size_t stride = wp->ustride;
    for (int c = lo; c < hi; c++)
        for (int k = 0; k < K; k += 8) {
            const float *q = dU + (size_t)c * K + k;
            v8 t[5][ALPHA_MAX], g[25];
            for (int u = 0; u < r; u++)
                for (int b = 0; b < alpha; b++) {
                    v8 acc = splat(0);
                    for (int a = 0; a < alpha; a++)
                        acc += wp->G[a][u] * ld(q + (size_t)(a * alpha + b) * stride);
                    t[u][b] = acc;
                }
            for (int u = 0; u < r; u++)
                for (int v = 0; v < r; v++) {
                    v8 acc = splat(0);
                    for (int b = 0; b < alpha; b++) acc += t[u][b] * wp->G[b][v];
                    g[u * r + v] = acc;
                }
            for (int l = 0; l < 8; l++) {
                float *dst = dw + ((size_t)(k + l) * C + c) * rr;
                for (int e = 0; e < rr; e++) dst[e] = g[e][l];
            }
        }
}

/* G for F(TILE, r) with the B^T and A^T of the transforms above: the alpha x r matrix for
 * which A^T [(G g) * (B^T d)] is the correlation of d with g for every d and g, solved by
 * least squares per column (TILE * alpha equations in alpha unknowns). Returns the
 * residual. */
static double solve_g(int alpha, int r, float G[ALPHA_MAX][5]) {
    static const double BT6[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0},
                                     {0, 4, -4, -1, 1, 0}, {0, -2, -1, 2, 1, 0},
                                     {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
    static const double BT8[8][8] = {
        {-4, 0, 21, 0, -21, 0, 4, 0}, {0, 4, 4, -17, -17, 4, 4, 0},
        {0, -4, 4, 17, -17, -4, 4, 0}, {0, 2, 1, -10, -5, 8, 4, 0},
        {0, -2, 1, 10, -5, -8, 4, 0},  {0, 4, 8, -5, -10, 1, 2, 0},
        {0, -4, 8, 5, -10, -1, 2, 0},  {0, -4, 0, 21, 0, -21, 0, 4}};
    static const double P[ALPHA_MAX - 1] = {0, 1, -1, 2, -2, 0.5, -0.5};
    enum { N = ALPHA_MAX };
    double BT[N][N], AT[TILE][N];
    for (int j = 0; j < alpha; j++)
        for (int l = 0; l < alpha; l++) BT[j][l] = alpha == 8 ? BT8[j][l] : BT6[j][l];
    for (int i = 0; i < TILE; i++) {
        for (int j = 0; j < alpha - 1; j++) AT[i][j] = pow(P[j], i);
        AT[i][alpha - 1] = i == TILE - 1;
    }
    double worst = 0;
    for (int k = 0; k < r; k++) {
        /* rows (i, l): sum_j AT[i][j] BT[j][l] x_j = [l == i + k] */
        double ata[N][N + 1] = {{0}};
        for (int i = 0; i < TILE; i++)
            for (int l = 0; l < alpha; l++) {
                double row[N], rhs = l == i + k;
                for (int j = 0; j < alpha; j++) row[j] = AT[i][j] * BT[j][l];
                for (int p = 0; p < alpha; p++) {
                    for (int q = 0; q < alpha; q++) ata[p][q] += row[p] * row[q];
                    ata[p][N] += row[p] * rhs;
                }
            }
        for (int p = 0; p < alpha; p++) { /* Gauss-Jordan with partial pivoting */
            int best = p;
            for (int q = p + 1; q < alpha; q++)
                if (fabs(ata[q][p]) > fabs(ata[best][p])) best = q;
            if (fabs(ata[best][p]) < 1e-12) return INFINITY;
            for (int q = 0; q <= N; q++) {
                double t = ata[p][q];
                ata[p][q] = ata[best][q];
                ata[best][q] = t;
            }
            for (int q = 0; q < alpha; q++) {
                if (q == p) continue;
                const double f = ata[q][p] / ata[p][p];
                for (int z = p; z <= N; z++) ata[q][z] -= f * ata[p][z];
            }
        }
        double x[N];
        for (int j = 0; j < alpha; j++) x[j] = ata[j][N] / ata[j][j];
        for (int i = 0; i < TILE; i++)
            for (int l = 0; l < alpha; l++) {
                double acc = 0;
                for (int j = 0; j < alpha; j++) acc += AT[i][j] * BT[j][l] * x[j];
                worst = fmax(worst, fabs(acc - (l == i + k)));
            }
        for (int j = 0; j < alpha; j++) G[j][k] = (float)x[j];
    }
    return worst;
}

/* ---- the plan ---- */

/* Along one axis of n outputs ("same" padding, stride 1), the kernel taps that fall inside
 * the input: oneDNN's direct kernels skip the padding, so on small maps they compute far
 * fewer than n r products per output column. */
static long taps_inside(int n, int r, int pad) {
    long taps = 0;
    for (int o = 0; o < n; o++) taps += PC_MIN(n, o - pad + r) - PC_MAX(0, o - pad);
    return taps;
}

/* How many times fewer products per channel pair Winograd computes than the direct
 * algorithm: the direct one's taps inside the image against alpha^2 per tile (at most
 * 16 r^2 / alpha^2: 4 for 3x3 kernels, 6.25 for 5x5). 4x4 output tiles waste their outside
 * part on maps that are not multiples of 4: 3x3 kernels save 3.7x on 16x16 maps, 3.2x on
 * 15x15, 2.5x on 7x7, 1.4x on 3x3; 5x5 kernels 3.3x on 7x7, 1.3x on 3x3. */
static double wino_saving(const pc_conv_shape *s) {
    const long alpha = TILE + s->kh - 1, tiles = (long)((s->oh + TILE - 1) / TILE) *
                                                 ((s->ow + TILE - 1) / TILE);
    return (double)taps_inside(s->oh, s->kh, s->ph) * taps_inside(s->ow, s->kw, s->pw) /
           (double)(alpha * alpha * tiles);
}

/* Decided by the layer's shape and the CPU's ISA alone, never by timing: the same
 * algorithm, so the same bytes, on every run and worker count.
 *
 * Channels: the transforms cost about (C + K) per tile and position, the products C K, so
 * with few channels their memory traffic eats the saving. `parcnn bench conv` on Zen 3
 * with two copies at once (docs/benchmarks.md, "Convolution algorithms"): 8 -> 16 and
 * 16 -> 16 channels ran 0.7-0.9x the direct speed, 16 -> 32 1.55x, 24 -> 32 1.18x,
 * 64 -> 64 2.1x, 256 -> 256 2.4x; the break-even is near C K / (C + K) = 9. 5x5 (batch
 * 64, 16x16): 8 -> 16 0.66x, 16 -> 16 0.96x, 16 -> 32 1.04x, 32 -> 64 1.7-2.0x: the same
 * threshold fits.
 *
 * The map: Winograd pays where it saves at least 2x the direct products (wino_saving).
 * `bench conv --copies 1`, Zen 4, fp32, training directions, 64 -> 64: 3x3 kernels 1.69x
 * on 7x7 maps (saving 2.5), 1.81x on 4x4 (2.8), but 256 -> 256 on 3x3 maps 0.84-1.03x
 * (1.4; 0.58x at batch 8); 5x5 kernels 1.62x on 4x4 (3.1), 1.88x on 7x7 (3.3), 0.84x on
 * 3x3 (1.3), 0.90x on 5x5 (1.4).
 *
 * Against oneDNN's native bf16 convolutions (AVX512_BF16: twice the fp32 rate) the fp32
 * Winograd plan wins only with many channels and a saving of at least 3. `parcnn train
 * --profile` on a Zen 5, forward + backward per 512 images: 64 -> 256 at 15x15 247 ms
 * Winograd vs 288 bf16 direct, 64 -> 64 at 15x15 80 vs 76, 32 -> 64 5x5 at 16x16 (32
 * images) 11.2 vs 11.6, 32 -> 32 at 16x16 4.1 vs 2.8: the break-even is near
 * C K / (C + K) = 48. Zen 4, whitenet per 128-image step: 64 -> 256 at 15x15 108 ms
 * Winograd vs 116 direct (saving 3.2), 256 -> 256 at 7x7 107 vs 97 (2.5), at 3x3 43 vs 19
 * (1.4); inference in passes of 8 images likewise. With AMX (bf16 at 4.4x the fp32 GEMM rate on
 * a Sapphire Rapids) no saving of F(4x4, r x r) in practice, about half its 4x (3x3) or
 * 6.25x (5x5) products, catches up: never. */
int pcd_wino_profitable(const pc_conv_shape *s, int against_bf16) {
    if (against_bf16 && pc_dnnl_bf16_amx()) return 0;
    const long min_ratio = against_bf16 ? 48 : 10;
    return (long)s->c * s->k >= min_ratio * (s->c + s->k) &&
           wino_saving(s) >= (against_bf16 ? 3.0 : 2.0);
}

int pcd_wino_eligible(const pc_conv_shape *s, int x_block, int y_block) {
    const int r = s->kh;
    return x_block && x_block == y_block && x_block % 8 == 0 && s->groups == 1 &&
           (r == 3 || r == 5) && s->kw == r && s->sh == 1 && s->sw == 1 &&
           s->ph == (r - 1) / 2 && s->pw == s->ph && s->dil_h <= 1 && s->dil_w <= 1 &&
           s->k % x_block == 0;
}

/* A matmul (batch pos) of src (pos, rows, inner) by weights (pos, inner, cols), each
 * operand's positions `*_ps` floats apart; src_t: src is stored transposed, as (pos, inner,
 * rows). accumulate: dst += the product. */
static pcd_prim *matmul_new(pcd_base *b, int pos, int rows, int inner, int cols, size_t src_ps,
                            int src_t,
                            size_t wei_ps, size_t dst_ps, int accumulate,
                            dnnl_memory_desc_t *src, dnnl_memory_desc_t *wei,
                            dnnl_memory_desc_t *dst) {
    dnnl_dims_t sd = {pos, rows, inner}, wd = {pos, inner, cols}, dd = {pos, rows, cols};
    dnnl_dims_t ss = {(dnnl_dim_t)src_ps, src_t ? 1 : inner, src_t ? rows : 1};
    dnnl_dims_t ws = {(dnnl_dim_t)wei_ps, cols, 1}, ds = {(dnnl_dim_t)dst_ps, cols, 1};
    PCD_TRY(dnnl_memory_desc_init_by_strides(src, 3, sd, dnnl_f32, ss), "Winograd matmul source");
    PCD_TRY(dnnl_memory_desc_init_by_strides(wei, 3, wd, dnnl_f32, ws), "Winograd matmul weights");
    PCD_TRY(dnnl_memory_desc_init_by_strides(dst, 3, dd, dnnl_f32, ds),
            "Winograd matmul destination");
    dnnl_matmul_desc_t md;
    PCD_TRY(dnnl_matmul_desc_init(&md, src, wei, NULL, dst), "Winograd matmul descriptor");
    return accumulate ? pcd_prim_new_sum(b, &md, "Winograd matmul")
                      : pcd_prim_new(b, &md, NULL, "Winograd matmul");
fail:
    return NULL;
}

/* n floats rounded up to whole cache lines, plus one line (see vstride). */
static size_t padded(size_t n) { return (n + 15) / 16 * 16 + 16; }

/* Images per chunk: the most (a divisor of n) whose V and M stay within about 8 MB. */
static int chunk_images(const pc_conv_shape *s, int pos, int tiles_per_image) {
    const size_t budget = (size_t)8 << 20, ch = PC_MAX(s->c, s->k);
    int best = 1;
    for (int d = 1; d <= s->n; d++)
        if (s->n % d == 0 && 2 * sizeof(float) * pos * (size_t)d * tiles_per_image * ch <= budget)
            best = d;
    return best;
}

/* s with its input channels rounded up to the block (the blocked layout's zero padding) */
static pc_conv_shape padded_shape(const pc_conv_shape *s, int block) {
    pc_conv_shape p = *s;
    p.c = (s->c + block - 1) / block * block;
    return p;
}

size_t pcd_wino_bytes(const pc_conv_shape *shape, int block) {
    const pc_conv_shape ps = padded_shape(shape, block), *s = &ps;
    const int alpha = TILE + s->kh - 1, pos = alpha * alpha;
    const int tiles_per_image = ((s->oh + TILE - 1) / TILE) * ((s->ow + TILE - 1) / TILE);
    const int tiles = chunk_images(s, pos, tiles_per_image) * tiles_per_image;
    const size_t vstride = padded((size_t)tiles * PC_MAX(s->c, s->k)),
                 ustride = padded((size_t)s->c * s->k);
    return sizeof(float) * pos * (ustride + 2 * vstride); /* U = Ub = dU; V, M */
}

pcd_wino *pcd_wino_create(const pc_conv_shape *shape, int block, int relu, int bf16) {
    pcd_wino *w = calloc(1, sizeof *w);
    if (!w) {
        pc_fail_nomem();
        return NULL;
    }
    w->s = padded_shape(shape, block);
    w->c_weights = shape->c;
    const pc_conv_shape *s = &w->s;
    w->block = block;
    w->relu = relu;
    w->bf16 = bf16;
    w->r = s->kh;
    w->alpha = TILE + w->r - 1;
    w->pos = w->alpha * w->alpha;
    if (solve_g(w->alpha, w->r, w->G) > 1e-9) {
        pc_fail(PC_ERR_INTERNAL, "Winograd F(%d, %d): no weight transform", TILE, w->r);
        free(w);
        return NULL;
    }
    if (pcd_base_init(&w->b)) goto fail;
    w->th = (s->oh + TILE - 1) / TILE;
    w->tw = (s->ow + TILE - 1) / TILE;
    w->chunk = chunk_images(s, w->pos, w->th * w->tw);
    w->tiles = w->chunk * w->th * w->tw;
    const int C = s->c, K = s->k, T = w->tiles, P = w->pos;
    w->vstride = padded((size_t)T * PC_MAX(C, K));
    w->ustride = padded((size_t)C * K);
    const size_t pair = w->pos * w->ustride * sizeof(float),
                 chunk = w->pos * w->vstride * sizeof(float);
    if (!(w->U = pcd_buf_new(&w->b, pair)) || !(w->V = pcd_buf_new(&w->b, chunk)) ||
        !(w->M = pcd_buf_new(&w->b, chunk)))
        goto fail;
    w->Ub = w->dU = w->U;

    const size_t vs = w->vstride, us = w->ustride;
    dnnl_memory_desc_t src, wei, dst;
    if (!(w->fwd = matmul_new(&w->b, P, T, C, K, vs, 0, us, vs, 0, &src, &wei, &dst)) ||
        !(w->f_v = pcd_mem_new(&w->b, &src, w->V)) || !(w->f_u = pcd_mem_new(&w->b, &wei, w->U)) ||
        !(w->f_m = pcd_mem_new(&w->b, &dst, w->M)))
        goto fail;
    if (!(w->bwd_d = matmul_new(&w->b, P, T, K, C, vs, 0, us, vs, 0, &src, &wei, &dst)) ||
        !(w->d_v = pcd_mem_new(&w->b, &src, w->V)) || !(w->d_u = pcd_mem_new(&w->b, &wei, w->Ub)) ||
        !(w->d_m = pcd_mem_new(&w->b, &dst, w->M)))
        goto fail;
    if (!(w->bwd_w = matmul_new(&w->b, P, C, T, K, vs, 1, vs, us, 0, &src, &wei, &dst)) ||
        !(w->bwd_w_acc = matmul_new(&w->b, P, C, T, K, vs, 1, vs, us, 1, &src, &wei, &dst)) ||
        !(w->w_v = pcd_mem_new(&w->b, &src, w->V)) || !(w->w_m = pcd_mem_new(&w->b, &wei, w->M)) ||
        !(w->w_du = pcd_mem_new(&w->b, &dst, w->dU)))
        goto fail;
    if (pcd_base_finish(&w->b)) goto fail;
    return w;
fail:
    pcd_wino_destroy(w);
    return NULL;
}

static tile_geom geom(const pcd_wino *w, int ch, int block) {
    return (tile_geom){.ch = ch, .h = w->s.h, .w = w->s.w, .block = block, .pad = w->s.ph,
                       .bf16 = w->bf16, .alpha = w->alpha, .th = w->th, .tw = w->tw};
}

/* The forward algorithm on `in` (in_ch channels) by matmul mm with arguments v, u, m. */
static void run_forward(pcd_wino *w, const pcd_prim *mm, dnnl_memory_t v, dnnl_memory_t u,
                        dnnl_memory_t m, const float *in, int in_ch, int out_ch,
                        const float *bias, int relu, float *out) {
    const tile_geom gi = geom(w, in_ch, w->block), go = geom(w, out_ch, w->block);
    for (int n0 = 0; n0 < w->s.n; n0 += w->chunk) {
        SPLIT_ROWS(w->chunk * w->th, input_transform, &gi, in, n0, w->V, w->vstride);
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, v}, {DNNL_ARG_WEIGHTS, u}, {DNNL_ARG_DST, m}};
        pcd_exec(&w->b, mm, 3, args);
        pcd_wait(&w->b);
        SPLIT_ROWS(w->chunk * w->th, output_transform, &go, w->M, w->vstride, bias, relu, n0,
                   out);
    }
}

void pcd_wino_forward(pcd_wino *w, const float *x, const float *wt, const float *b,
                      uint64_t version, float *y) {
    if (!pcd_kept_current(&w->u_from, wt, version)) {
        SPLIT_ROWS(w->s.c, weight_transform, w, wt, 0, w->U);
        w->ub_from.version = 0; /* Ub's bytes are gone (version 0: never current) */
    }
    run_forward(w, w->fwd, w->f_v, w->f_u, w->f_m, x, w->s.c, w->s.k, b, w->relu, y);
}

void pcd_wino_backward(pcd_wino *w, const float *x, const float *wt, const float *dy,
                       uint64_t version, float *dx, float *dw) {
    if (dx) {
        if (!pcd_kept_current(&w->ub_from, wt, version)) {
            SPLIT_ROWS(w->s.k, weight_transform, w, wt, 1, w->Ub);
            w->u_from.version = 0;
        }
        run_forward(w, w->bwd_d, w->d_v, w->d_u, w->d_m, dy, w->s.k, w->s.c, NULL, 0, dx);
    }
    if (!dw) return;
    w->u_from.version = w->ub_from.version = 0; /* dU overwrites both */
    const tile_geom gx = geom(w, w->s.c, w->block), gy = geom(w, w->s.k, w->block);
    for (int n0 = 0; n0 < w->s.n; n0 += w->chunk) {
        SPLIT_ROWS(w->chunk * w->th, input_transform, &gx, x, n0, w->V, w->vstride);
        SPLIT_ROWS(w->chunk * w->th, grad_transform, &gy, dy, n0, w->M, w->vstride);
        dnnl_exec_arg_t args[3] = {
            {DNNL_ARG_SRC, w->w_v}, {DNNL_ARG_WEIGHTS, w->w_m}, {DNNL_ARG_DST, w->w_du}};
        pcd_exec(&w->b, n0 == 0 ? w->bwd_w : w->bwd_w_acc, 3, args);
        pcd_wait(&w->b);
    }
    SPLIT_ROWS(w->c_weights, weight_grad, w, w->dU, dw);
}

void pcd_wino_destroy(pcd_wino *w) {
    if (!w) return;
    pcd_base_free(&w->b);
    free(w);
}
