/* Plain fp32 weights into oneDNN's VNNI-blocked bf16 layouts.
 *
 * The bf16 brgemm kernels read weights in layouts such as AB8b64a2b (1024x4096 dense
 * weights): within a block, each even/odd pair of input channels of one output row is one
 * 32-bit word, and the words of consecutive output rows are adjacent. oneDNN's reorder into
 * that layout runs at about 6 GB/s (4.4 ms for those weights on a Zen 5 core, more than
 * the three bf16 products they feed, by ONEDNN_VERBOSE in training); this conversion
 * took 1.6 ms in a one-core micro-benchmark of the same weights.
 *
 * The destination offset of element (row, col) is off_row[row] + off_col[col] (a blocked
 * layout's outer and inner blocks each contribute a multiple of one index digit). The fast
 * walk needs, for every group of 16 rows and 16 columns: the 16 rows' words adjacent
 * (off_row steps by 2) and the 8 column pairs at one stride S with each pair adjacent. It
 * then converts 16 rows x 16 floats into 16 x 8 words and stores them transposed, 8 runs of
 * 16 words. Layouts without that structure (padding, other blockings) are left to
 * oneDNN's reorder: pcd_pack_new gives no packer.
 *
 * Rounding is to nearest even with NaNs quieted, pcd_round_bf16's rule. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "dnnl_internal.h"

enum { GROUP = 16 }; /* rows and columns per tile */

struct pcd_pack {
    int64_t rows, cols;    /* the tensor as (all dimensions but the last, the last) */
    int64_t *off_row;      /* rows entries: the offset term of each row */
    int64_t *off_col;      /* cols entries: the offset term of each column */
    int64_t pair_stride;   /* S: elements from one column pair's words to the next's */
};

typedef uint32_t v16u __attribute__((vector_size(64)));
typedef uint32_t v16u_unaligned __attribute__((vector_size(64), aligned(4)));
typedef uint32_t v8u __attribute__((vector_size(32)));

/* The offset term of index i of dimension d in the blocked layout bd: the outer block
 * index times the outer stride, plus each inner block's digit times its inner stride. */
static int64_t term(const dnnl_blocking_desc_t *bd, int d, int64_t i) {
    int64_t block = 1; /* dimension d's total inner block */
    for (int k = 0; k < bd->inner_nblks; k++)
        if (bd->inner_idxs[k] == d) block *= bd->inner_blks[k];
    int64_t off = (i / block) * bd->strides[d], rest = i % block, inner_stride = 1;
    /* from the innermost block out, each block of dimension d takes the next digit */
    for (int k = bd->inner_nblks - 1; k >= 0; k--) {
        if (bd->inner_idxs[k] == d) {
            off += (rest % bd->inner_blks[k]) * inner_stride;
            rest /= bd->inner_blks[k];
        }
        inner_stride *= bd->inner_blks[k];
    }
    return off;
}

/* 1 if md is a dense row-major tensor (a plain tag: abcd, oi, ...). */
static int row_major(const dnnl_memory_desc_t *md) {
    const dnnl_blocking_desc_t *bd = &md->format_desc.blocking;
    if (md->format_kind != dnnl_blocked || bd->inner_nblks != 0 || md->offset0 != 0) return 0;
    int64_t stride = 1;
    for (int d = md->ndims - 1; d >= 0; d--) {
        if (md->padded_dims[d] != md->dims[d] || bd->strides[d] != stride) return 0;
        stride *= md->dims[d];
    }
    return 1;
}

/* Whether the tables have the structure the tiled walk needs (see the top). */
static int tileable(const pcd_pack *k) {
    for (int64_t r = 0; r < k->rows; r++)
        if (k->off_row[r] != k->off_row[r - r % GROUP] + 2 * (r % GROUP)) return 0;
    for (int64_t c = 0; c < k->cols; c++) {
        const int64_t first = k->off_col[c - c % GROUP], p = (c % GROUP) / 2;
        if (k->off_col[c] != first + p * k->pair_stride + c % 2) return 0;
    }
    return (k->off_row[0] + k->off_col[0]) % 2 == 0 && k->pair_stride % 2 == 0 &&
           k->pair_stride >= 2 * GROUP;
}

int pcd_pack_new(pcd_base *b, const dnnl_memory_desc_t *user, const dnnl_memory_desc_t *prim,
                 pcd_pack **out) {
    *out = NULL;
    const int nd = prim->ndims;
    if (prim->data_type != dnnl_bf16 || user->data_type != dnnl_f32 ||
        prim->format_kind != dnnl_blocked || prim->offset0 != 0 || prim->extra.flags != 0 ||
        user->ndims != nd || nd < 2 || !row_major(user))
        return 0;
    for (int d = 0; d < nd; d++)
        if (prim->padded_dims[d] != prim->dims[d] || prim->padded_offsets[d] != 0) return 0;
    pcd_pack k = {.rows = 1, .cols = prim->dims[nd - 1]};
    for (int d = 0; d < nd - 1; d++) k.rows *= prim->dims[d];
    if (k.rows % GROUP || k.cols % GROUP) return 0;
    if (!(k.off_row = pcd_buf_new(b, (size_t)(k.rows + k.cols) * sizeof *k.off_row))) return -1;
    k.off_col = k.off_row + k.rows;
    const dnnl_blocking_desc_t *bd = &prim->format_desc.blocking;
    for (int64_t r = 0; r < k.rows; r++) { /* row r's digits, the last of them fastest */
        int64_t off = 0, rest = r;
        for (int d = nd - 2; d >= 0; d--) {
            off += term(bd, d, rest % prim->dims[d]);
            rest /= prim->dims[d];
        }
        k.off_row[r] = off;
    }
    for (int64_t c = 0; c < k.cols; c++) k.off_col[c] = term(bd, nd - 1, c);
    k.pair_stride = k.off_col[2] - k.off_col[0];
    if (!tileable(&k)) return 0; /* the tables stay with the plan, unused */
    if (!(*out = pcd_buf_new(b, sizeof **out))) return -1;
    **out = k;
    return 0;
}

/* 16 floats -> 8 words, each the bf16 of an even element (low half) and the next one. */
static inline v8u bf16_pairs(const float *s) {
    v16u v;
    memcpy(&v, s, sizeof v);
    const v16u even = (v + 0x7fffu + ((v >> 16) & 1u)) >> 16;
    const v16u quiet = (v | 0x00400000u) >> 16;
    const v16u nan = (v16u)((v & 0x7fffffffu) > 0x7f800000u);
    const v16u h = (quiet & nan) | (even & ~nan);
    const v8u lo = __builtin_shufflevector(h, h, 0, 2, 4, 6, 8, 10, 12, 14);
    const v8u hi = __builtin_shufflevector(h, h, 1, 3, 5, 7, 9, 11, 13, 15);
    return lo | hi << 16;
}

/* Row groups [lo, hi) (of GROUP rows each). */
static void pack_groups(const pcd_pack *k, const float *src, uint16_t *dst, int64_t lo,
                        int64_t hi) {
    for (int64_t g = lo; g < hi; g++) {
        const int64_t r0 = g * GROUP;
        for (int64_t c0 = 0; c0 < k->cols; c0 += GROUP) {
            v8u words[GROUP]; /* [row][column pair] */
            for (int r = 0; r < GROUP; r++) words[r] = bf16_pairs(src + (r0 + r) * k->cols + c0);
            uint16_t *out = dst + k->off_row[r0] + k->off_col[c0];
            for (int p = 0; p < GROUP / 2; p++) {
                v16u run; /* column pair p of the 16 rows */
                for (int r = 0; r < GROUP; r++) run[r] = words[r][p];
                *(v16u_unaligned *)(out + p * k->pair_stride) = run;
            }
        }
    }
}

void pcd_pack_run(const pcd_pack *k, const float *src, void *dst) {
    const int64_t groups = k->rows / GROUP;
    /* one thread: inline, as libgomp allocates a team for every parallel region */
    if (omp_get_max_threads() <= 1) {
        pack_groups(k, src, dst, 0, groups);
        return;
    }
#pragma omp parallel
    {
        const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
        pack_groups(k, src, dst, groups * t / T, groups * (t + 1) / T);
    }
}
