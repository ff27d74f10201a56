/* Convolution and dense (inner product) plans.
 *
 * Three primitives per plan: forward (training), backward data and backward weights, all
 * created with format_tag_any so that oneDNN picks its fastest layouts (typically blocked,
 * e.g. nChw16c / OIhw16i16o on AVX-512). Reorders, created once here, happen:
 *   forward:          x -> src layout, w -> weights layout, b -> bias layout (in);
 *                     dst layout -> y (out)
 *   backward data:    dy -> diff_dst layout, w -> weights layout (in); diff_src -> dx (out)
 *   backward weights: x -> src layout, dy -> diff_dst layout (in; dy is reordered only once
 *                     when both backward primitives want the same layout);
 *                     diff_weights -> dw, diff_bias -> db (out)
 * Each reorder exists only when the chosen layout differs from the plain one. Reorder targets
 * live in the plan's arena (forward and backward calls reuse the same bytes); converted
 * weights have their own buffer, made once per weights version, shared by forward and
 * backward data when both want one layout. fp32 dense plans with n <= 64 pin the weights to
 * the plain (OUT, IN) layout (see pc_dnnl_dense_create), so their only possible reorders
 * are on activations. */
#include <stdlib.h>
#include <string.h>

#include "dnnl_internal.h"
#include "dnnl_kernels.h"
#include "kernels/fast/fast.h"

typedef struct {
    pcd_base b;
    int has_bias;
    pcd_prim *fwd, *bwd_d, *bwd_w;
    pcd_port f_x, f_w, f_b, f_y;       /* forward */
    pcd_port d_dy, d_w, d_dx;          /* backward data */
    pcd_port w_x, w_dy, w_dw, w_db;    /* backward weights */
    int w_dy_shared;                   /* w_dy is d_dy (same layout): reorder dy once */
    int w_x_shared;                    /* w_x is f_x (same layout): backward weights reuses
                                          the forward's reordered x (its own buffer) */
    int d_w_shared;                    /* backward data reads the forward's weights layout:
                                          one converted copy (f_w) serves both */
    uint64_t forwards;                 /* forward calls so far: the version of f_x */
    float *zero_bias;                  /* used when forward gets b == NULL */
    float *db_sink;                    /* receives diff_bias when dw is wanted but not db */
    double *db_acc;                    /* k_out sums of the db-only path */
    long long n_out, k_out, spatial;   /* for the db-only path: dy is (n_out, k_out, spatial) */
    int y_block;                       /* ... in channel blocks of y_block (0: plain) */
    uint64_t w_version;                /* see pc_dnnl_conv_weights_version */
    int emulate_bf16;                  /* bf16 asked, not native: fp32 primitives whose
                                          x, w and dy ports round to bf16 */
} linear_plan;

/* The element type the primitives read for precision `prec`, and whether bf16 is emulated. */
static dnnl_data_type_t input_type(linear_plan *p, pc_dnnl_precision prec) {
    p->emulate_bf16 = prec == PC_DNNL_BF16 && !pc_dnnl_bf16_native();
    return prec == PC_DNNL_BF16 && !p->emulate_bf16 ? dnnl_bf16 : dnnl_f32;
}

/* A port for x, w or dy: rounded to bf16 values when bf16 is emulated. */
static int operand_port(linear_plan *p, pcd_port *pt, const dnnl_memory_desc_t *user,
                        const dnnl_memory_desc_t *prim, int phase) {
    return p->emulate_bf16 ? pcd_port_init_bf16(&p->b, pt, user, prim, phase)
                           : pcd_port_init(&p->b, pt, user, prim, 0, phase);
}

struct pc_dnnl_conv {
    linear_plan lp;
    pcd_wino *wino; /* the Winograd plan, when used (then lp has no primitives) */
    int act;        /* the activation the forward applies: 0, 1 (ReLU) or 6 (ReLU6) */
    /* fp32 layers of at most 8 channels into at most 8 on nChw16c: the forward runs
     * fast_narrow_conv_rows on these packed weights (the backward runs lp's primitives) */
    float *narrow_w;
    pcd_kept narrow_w_of;
    pc_conv_shape shape;
    int x_block;
};
struct pc_dnnl_dense {
    linear_plan lp;
};

/* Builds all ports once the three primitives exist. mds: plain user layouts. */
static int linear_ports(linear_plan *p, const dnnl_memory_desc_t *src,
                        const dnnl_memory_desc_t *wei, const dnnl_memory_desc_t *bias,
                        const dnnl_memory_desc_t *dst) {
    pcd_base *b = &p->b;
    const dnnl_memory_desc_t *fx = pcd_arg_md(p->fwd, DNNL_ARG_SRC), *wx = pcd_arg_md(p->bwd_w, DNNL_ARG_SRC);
    p->w_x_shared = wx && fx && dnnl_memory_desc_equal(fx, wx);
    if (operand_port(p, &p->f_x, src, fx, p->w_x_shared ? PCD_PHASE_KEEP : PCD_PHASE_FWD) ||
        operand_port(p, &p->f_w, wei, pcd_arg_md(p->fwd, DNNL_ARG_WEIGHTS), PCD_PHASE_KEEP) ||
        pcd_port_init(b, &p->f_y, dst, pcd_arg_md(p->fwd, DNNL_ARG_DST), 1, 0))
        return -1;
    if (p->has_bias && pcd_port_init(b, &p->f_b, bias, pcd_arg_md(p->fwd, DNNL_ARG_BIAS), 0, 0))
        return -1;

    const dnnl_memory_desc_t *dw = pcd_arg_md(p->bwd_d, DNNL_ARG_WEIGHTS);
    p->d_w_shared = p->f_w.reorder && dw &&
                    dnnl_memory_desc_equal(dw, pcd_arg_md(p->fwd, DNNL_ARG_WEIGHTS));
    if (operand_port(p, &p->d_dy, dst, pcd_arg_md(p->bwd_d, DNNL_ARG_DIFF_DST), PCD_PHASE_BWD) ||
        (!p->d_w_shared && operand_port(p, &p->d_w, wei, dw, PCD_PHASE_KEEP)) ||
        pcd_port_init(b, &p->d_dx, src, pcd_arg_md(p->bwd_d, DNNL_ARG_DIFF_SRC), 1, 1))
        return -1;

    const dnnl_memory_desc_t *wdy = pcd_arg_md(p->bwd_w, DNNL_ARG_DIFF_DST);
    if (wdy && dnnl_memory_desc_equal(wdy, pcd_arg_md(p->bwd_d, DNNL_ARG_DIFF_DST))) {
        p->w_dy = p->d_dy;
        p->w_dy_shared = 1;
    } else if (operand_port(p, &p->w_dy, dst, wdy, PCD_PHASE_BWD)) {
        return -1;
    }
    if (p->w_x_shared) p->w_x = p->f_x;
    else if (operand_port(p, &p->w_x, src, wx, PCD_PHASE_BWD))
        return -1;
    if (pcd_port_init(b, &p->w_dw, wei, pcd_arg_md(p->bwd_w, DNNL_ARG_DIFF_WEIGHTS), 1, 1))
        return -1;
    if (p->has_bias &&
        pcd_port_init(b, &p->w_db, bias, pcd_arg_md(p->bwd_w, DNNL_ARG_DIFF_BIAS), 1, 1))
        return -1;
    return pcd_base_finish(b);
}

static void linear_forward(linear_plan *p, const float *x, const float *w, const float *bias,
                           float *y) {
    pcd_base *b = &p->b;
    pcd_port_in_kept(b, &p->f_x, x, ++p->forwards);
    pcd_port_in_kept(b, &p->f_w, w, p->w_version);
    pcd_port_bind(&p->f_y, y);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->f_x.inner},
                               {DNNL_ARG_WEIGHTS, p->f_w.inner},
                               {DNNL_ARG_DST, p->f_y.inner}};
    int nargs = 3;
    if (p->has_bias) {
        pcd_port_in(b, &p->f_b, bias ? bias : p->zero_bias);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, p->f_b.inner};
    }
    pcd_exec(b, p->fwd, nargs, args);
    pcd_port_out(b, &p->f_y);
    pcd_wait(b);
}

/* db[k] = sum over n and space of dy, in that order (images outer, pixels inner), in
 * double: used only when db is wanted without dw. The loops walk dy in memory order, the
 * B channels of a pixel side by side. */
static void bias_grad(const linear_plan *p, const float *dy, float *db) {
    const long long B = p->y_block ? p->y_block : 1, kb = (p->k_out + B - 1) / B;
    double *acc = p->db_acc;
    for (long long k = 0; k < kb * B; k++) acc[k] = 0;
    for (long long n = 0; n < p->n_out; n++)
        for (long long b = 0; b < kb; b++) {
            const float *plane = dy + (n * kb + b) * p->spatial * B;
            double *a = acc + b * B;
            for (long long i = 0; i < p->spatial; i++)
                for (long long l = 0; l < B; l++) a[l] += plane[i * B + l];
        }
    for (long long k = 0; k < p->k_out; k++) db[k] = (float)acc[k];
}

static void linear_backward(linear_plan *p, const float *x, const float *w, const float *dy,
                            float *dx, float *dw, float *db) {
    pcd_base *b = &p->b;
    if (!p->has_bias) db = NULL;
    if (dx) {
        pcd_port *wp = p->d_w_shared ? &p->f_w : &p->d_w;
        pcd_port_in(b, &p->d_dy, dy);
        pcd_port_in_kept(b, wp, w, p->w_version);
        pcd_port_bind(&p->d_dx, dx);
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_DST, p->d_dy.inner},
                                   {DNNL_ARG_WEIGHTS, wp->inner},
                                   {DNNL_ARG_DIFF_SRC, p->d_dx.inner}};
        pcd_exec(b, p->bwd_d, 3, args);
        pcd_port_out(b, &p->d_dx);
    }
    if (dw) {
        if (!(p->w_dy_shared && dx)) pcd_port_in(b, &p->w_dy, dy);
        if (p->w_x_shared) /* reordered by the last forward if it had this x */
            pcd_port_in_kept(b, &p->f_x, x, p->forwards);
        else
            pcd_port_in(b, &p->w_x, x);
        pcd_port_bind(&p->w_dw, dw);
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->w_x.inner},
                                   {DNNL_ARG_DIFF_DST, p->w_dy.inner},
                                   {DNNL_ARG_DIFF_WEIGHTS, p->w_dw.inner}};
        int nargs = 3;
        if (p->has_bias) {
            /* diff_bias is an output of the primitive whenever it has a bias */
            pcd_port_bind(&p->w_db, db ? db : p->db_sink);
            args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, p->w_db.inner};
        }
        pcd_exec(b, p->bwd_w, nargs, args);
        pcd_port_out(b, &p->w_dw);
        if (db) pcd_port_out(b, &p->w_db);
    } else if (db) {
        bias_grad(p, dy, db);
    }
    pcd_wait(b);
}

static void linear_free(linear_plan *p) { pcd_base_free(&p->b); }

/* ---- convolution ---- */

/* The memory format of an activation with channel block `block` (0: plain). */
static dnnl_format_tag_t activation_tag(int block) {
    return block == 16 ? dnnl_nChw16c : block == 8 ? dnnl_nChw8c : dnnl_nchw;
}

/* Winograd runs in fp32, also for emulated bf16 (its operands rounded as it reads them)
 * and, where it beats oneDNN's bf16 kernels (many channels), for native bf16: in the
 * Winograd domain bf16 operands would cost a tenfold error (F(4x4, 3x3): normalized error
 * 2-5% against 0.3% direct). s: a finished shape. */
static int uses_winograd(const pc_conv_shape *s, pc_dnnl_precision prec, pc_conv_algo algo,
                         int x_block, int y_block) {
    const int native_bf16 = prec == PC_DNNL_BF16 && pc_dnnl_bf16_native();
    return algo != PC_CONV_DIRECT && pcd_wino_eligible(s, x_block, y_block) &&
           (algo == PC_CONV_WINOGRAD || pcd_wino_profitable(s, native_bf16));
}

/* The narrow forward (fast_narrow_conv_rows) in fp32 where it applies: on AVX-512's
 * 16-channel blocks, where oneDNN pads 8 channels to 16 on both sides. minixception's 3 -> 8
 * and 8 -> 8 entry layers, one core, passes of 8 images: 0.62 and 1.32 ms per 64 images
 * with oneDNN. */
static int uses_narrow(const pc_conv_shape *s, pc_dnnl_precision prec, int x_block,
                       int y_block) {
    return prec == PC_DNNL_F32 && fast_narrow_conv_applies(s, x_block, y_block);
}

size_t pc_dnnl_conv_plan_bytes(const pc_conv_shape *shape, pc_dnnl_precision prec,
                               pc_conv_algo algo, int x_block, int y_block) {
    pc_conv_shape s = *shape;
    if (pc_conv_shape_finish(&s) != 0) return 0;
    if (uses_winograd(&s, prec, algo, x_block, y_block)) return pcd_wino_bytes(&s, x_block);
    const size_t x = (size_t)s.n * s.c * s.h * s.w, y = (size_t)s.n * s.k * s.oh * s.ow,
                 w = (size_t)s.k * (s.c / s.groups) * s.kh * s.kw;
    const size_t narrow = uses_narrow(&s, prec, x_block, y_block)
                              ? (size_t)fast_narrow_conv_wpack_floats(&s) : 0;
    return sizeof(float) * (x + y + 3 * w + narrow);
}

pc_dnnl_conv *pc_dnnl_conv_create(const pc_conv_shape *shape, int has_bias,
                                   pc_dnnl_precision prec, pc_conv_algo algo, int relu,
                                   int x_block, int y_block) {
    pc_conv_shape s = *shape;
    if (pc_conv_shape_finish(&s) != 0) {
        pc_fail(PC_ERR_USAGE, "oneDNN conv: invalid shape");
        return NULL;
    }
    pc_dnnl_conv *c = calloc(1, sizeof *c);
    if (!c) {
        pc_fail_nomem();
        return NULL;
    }
    linear_plan *p = &c->lp;
    p->has_bias = has_bias != 0;
    p->n_out = s.n;
    p->k_out = s.k;
    p->spatial = (long long)s.oh * s.ow;
    p->y_block = y_block;
    if (pcd_base_init(&p->b)) goto fail;
    /* the bias gradient's sums, for the Winograd plan and the direct one's db-only path */
    if (p->has_bias && !(p->db_acc = pcd_buf_new(&p->b, (size_t)(s.k + y_block) * sizeof(double))))
        goto fail;
    /* *_any: fp32, the primitives' outputs; *_in: what they read (bf16 in mixed precision) */
    const dnnl_data_type_t in_dt = input_type(p, prec);
    if (uses_winograd(&s, prec, algo, x_block, y_block)) {
        c->act = relu == 1 ? 1 : 0; /* (its output transform fuses ReLU only) */
        c->wino = pcd_wino_create(&s, x_block, c->act, p->emulate_bf16);
        if (!c->wino) goto fail;
        return c;
    }

    int g = s.groups;
    dnnl_dim_t src_dims[4] = {s.n, s.c, s.h, s.w};
    dnnl_dim_t dst_dims[4] = {s.n, s.k, s.oh, s.ow};
    dnnl_dim_t bias_dims[1] = {s.k};
    dnnl_dim_t wei_dims[5];
    int wei_nd;
    if (g == 1) {
        wei_dims[0] = s.k, wei_dims[1] = s.c, wei_dims[2] = s.kh, wei_dims[3] = s.kw;
        wei_nd = 4;
    } else {
        /* (G, K/G, C/G, KH, KW) goihw: the same bytes as PyTorch's (K, C/G, KH, KW) */
        wei_dims[0] = g, wei_dims[1] = s.k / g, wei_dims[2] = s.c / g, wei_dims[3] = s.kh;
        wei_dims[4] = s.kw;
        wei_nd = 5;
    }
    dnnl_dims_t strides = {s.sh, s.sw}, pad = {s.ph, s.pw};
    dnnl_dims_t dilates = {s.dil_h - 1, s.dil_w - 1}; /* oneDNN counts the gaps between taps */

    dnnl_memory_desc_t src_md, dst_md, wei_md, bias_md, src_any, dst_any, wei_any, bias_any;
    dnnl_memory_desc_t src_in, dst_in, wei_in;
    if (pcd_md_init(&src_md, 4, src_dims, activation_tag(x_block), "conv src") ||
        pcd_md_init(&dst_md, 4, dst_dims, activation_tag(y_block), "conv dst") ||
        pcd_md_init(&wei_md, wei_nd, wei_dims, g == 1 ? dnnl_oihw : dnnl_goihw, "conv weights") ||
        pcd_md_init(&bias_md, 1, bias_dims, dnnl_x, "conv bias") ||
        pcd_md_init(&src_any, 4, src_dims, dnnl_format_tag_any, "conv src") ||
        pcd_md_init(&dst_any, 4, dst_dims, dnnl_format_tag_any, "conv dst") ||
        pcd_md_init(&wei_any, wei_nd, wei_dims, dnnl_format_tag_any, "conv weights") ||
        pcd_md_init(&bias_any, 1, bias_dims, dnnl_format_tag_any, "conv bias") ||
        pcd_md_init_dt(&src_in, 4, src_dims, in_dt, dnnl_format_tag_any, "conv src") ||
        pcd_md_init_dt(&dst_in, 4, dst_dims, in_dt, dnnl_format_tag_any, "conv dst") ||
        pcd_md_init_dt(&wei_in, wei_nd, wei_dims, in_dt, dnnl_format_tag_any, "conv weights"))
        goto fail;

    /* oneDNN's direct algorithm (its Winograd is AVX-512 and forward only; ours is in
     * dnnl_wino.c, chosen above). */
    dnnl_convolution_desc_t fd, bdd, bwd;
    PCD_TRY(dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training,
                                               dnnl_convolution_direct, &src_in, &wei_in,
                                               p->has_bias ? &bias_any : NULL, &dst_any,
                                               strides, dilates, pad, pad),
            "convolution forward descriptor");
    PCD_TRY(dnnl_dilated_convolution_backward_data_desc_init(&bdd, dnnl_convolution_direct, &src_any,
                                                     &wei_in, &dst_in, strides, dilates, pad, pad),
            "convolution backward data descriptor");
    PCD_TRY(dnnl_dilated_convolution_backward_weights_desc_init(&bwd, dnnl_convolution_direct,
                                                        &src_in, &wei_any,
                                                        p->has_bias ? &bias_any : NULL,
                                                        &dst_in, strides, dilates, pad, pad),
            "convolution backward weights descriptor");
    c->act = relu;
    if (!(p->fwd = relu == 6 ? pcd_prim_new_relu6(&p->b, &fd, "convolution forward")
                   : relu    ? pcd_prim_new_relu(&p->b, &fd, "convolution forward")
                             : pcd_prim_new(&p->b, &fd, NULL, "convolution forward")) ||
        !(p->bwd_d = pcd_prim_new(&p->b, &bdd, p->fwd->pd, "convolution backward data")) ||
        !(p->bwd_w = pcd_prim_new(&p->b, &bwd, p->fwd->pd, "convolution backward weights")))
        goto fail;
    if (p->has_bias && (!(p->zero_bias = pcd_buf_new(&p->b, (size_t)s.k * sizeof(float))) ||
                        !(p->db_sink = pcd_buf_new(&p->b, (size_t)s.k * sizeof(float)))))
        goto fail;
    if (linear_ports(p, &src_md, &wei_md, &bias_md, &dst_md)) goto fail;
    if (uses_narrow(&s, prec, x_block, y_block)) {
        c->shape = s;
        c->x_block = x_block;
        if (!(c->narrow_w = pc_alloc(sizeof(float) * fast_narrow_conv_wpack_floats(&s))))
            goto fail;
    }
    return c;
fail:
    pc_dnnl_conv_destroy(c);
    return NULL;
}

static void narrow_forward(pc_dnnl_conv *c, const float *x, const float *w, const float *b,
                           float *y) {
    const pc_conv_shape *s = &c->shape;
    if (!pcd_kept_current(&c->narrow_w_of, w, c->lp.w_version))
        fast_narrow_conv_pack(s, w, c->narrow_w);
    c->lp.forwards++; /* its reordered x (f_x) is not this x: the backward makes it */
    SPLIT_ROWS(s->n * s->oh, fast_narrow_conv_rows, s, c->x_block, x, c->narrow_w,
               c->lp.has_bias ? b : NULL, c->act, y);
}

void pc_dnnl_conv_forward(pc_dnnl_conv *c, const float *x, const float *w, const float *b,
                          float *y) {
    if (c->narrow_w)
        narrow_forward(c, x, w, b, y);
    else if (c->wino) /* a NULL bias is a zero bias */
        pcd_wino_forward(c->wino, x, w, c->lp.has_bias ? b : NULL, c->lp.w_version, y);
    else
        linear_forward(&c->lp, x, w, b, y);
}

void pc_dnnl_conv_backward(pc_dnnl_conv *c, const float *x, const float *w, const float *dy,
                           float *dx, float *dw, float *db) {
    if (!c->wino) {
        linear_backward(&c->lp, x, w, dy, dx, dw, db);
        return;
    }
    if (dx || dw) pcd_wino_backward(c->wino, x, w, dy, c->lp.w_version, dx, dw);
    if (db && c->lp.has_bias) bias_grad(&c->lp, dy, db);
}

void pc_dnnl_conv_weights_version(pc_dnnl_conv *c, uint64_t version) { c->lp.w_version = version; }

const char *pc_dnnl_conv_algo_name(const pc_dnnl_conv *c) { return c->wino ? "winograd" : "direct"; }

int pc_dnnl_conv_fused_act(const pc_dnnl_conv *c) { return c->act; }

void pc_dnnl_conv_destroy(pc_dnnl_conv *c) {
    if (!c) return;
    pcd_wino_destroy(c->wino);
    linear_free(&c->lp);
    pc_free(c->narrow_w);
    free(c);
}

/* ---- dense (inner product) ---- */

pc_dnnl_dense *pc_dnnl_dense_create(const pc_dense_shape *s, int has_bias,
                                     pc_dnnl_precision prec, int relu) {
    if (s->n <= 0 || s->in <= 0 || s->out <= 0) {
        pc_fail(PC_ERR_USAGE, "oneDNN dense: invalid shape");
        return NULL;
    }
    pc_dnnl_dense *d = calloc(1, sizeof *d);
    if (!d) {
        pc_fail_nomem();
        return NULL;
    }
    linear_plan *p = &d->lp;
    p->has_bias = has_bias != 0;
    p->n_out = s->n;
    p->k_out = s->out;
    p->spatial = 1;
    if (pcd_base_init(&p->b)) goto fail;

    dnnl_dim_t src_dims[2] = {s->n, s->in}, wei_dims[2] = {s->out, s->in};
    /* Weights layout. With format_tag_any oneDNN picks a blocked layout (brgemm), which in
     * fp32 costs three full passes over the weights per step (reorder in for forward and for
     * backward data, reorder out of diff_weights). For small batches those passes cost more
     * than the blocked kernels save (n=32, 3136x1024, 1 thread: 16.3 ms any vs 12.6 ms
     * plain), so up to n=64 the fp32 primitives use the plain (OUT, IN) layout directly
     * (gemm implementation, no weight reorders). In native bf16 the weights are converted
     * anyway, once per step, and the blocked bf16 kernels are twice as fast as the plain
     * gemm (n=32, 4096x1024: forward 0.68 vs 1.51 ms, backward data 0.68 vs 1.01), so there
     * forward and backward data read blocked weights (one layout, one conversion) while
     * diff_weights stays plain up to n=64 (no reorder out per shard). The choice depends on
     * the shape and precision only: plans stay reproducible. */
    dnnl_data_type_t in_dt = input_type(p, prec); /* fp32 outputs, inputs read in bf16 */
    dnnl_format_tag_t dw_tag = s->n <= 64 ? dnnl_oi : dnnl_format_tag_any;
    dnnl_format_tag_t wei_tag = in_dt == dnnl_bf16 ? dnnl_format_tag_any : dw_tag;
    dnnl_dim_t dst_dims[2] = {s->n, s->out}, bias_dims[1] = {s->out};
    dnnl_memory_desc_t src_md, dst_md, wei_md, bias_md, src_any, dst_any, wei_pmd, bias_any;
    dnnl_memory_desc_t src_in, dst_in, wei_in;
    if (pcd_md_init(&src_md, 2, src_dims, dnnl_nc, "dense src") ||
        pcd_md_init(&dst_md, 2, dst_dims, dnnl_nc, "dense dst") ||
        pcd_md_init(&wei_md, 2, wei_dims, dnnl_oi, "dense weights") ||
        pcd_md_init(&bias_md, 1, bias_dims, dnnl_x, "dense bias") ||
        pcd_md_init(&src_any, 2, src_dims, dnnl_format_tag_any, "dense src") ||
        pcd_md_init(&dst_any, 2, dst_dims, dnnl_format_tag_any, "dense dst") ||
        pcd_md_init(&wei_pmd, 2, wei_dims, dw_tag, "dense weights") ||
        pcd_md_init(&bias_any, 1, bias_dims, dnnl_format_tag_any, "dense bias") ||
        pcd_md_init_dt(&src_in, 2, src_dims, in_dt, dnnl_format_tag_any, "dense src") ||
        pcd_md_init_dt(&dst_in, 2, dst_dims, in_dt, dnnl_format_tag_any, "dense dst") ||
        pcd_md_init_dt(&wei_in, 2, wei_dims, in_dt, wei_tag, "dense weights"))
        goto fail;

    dnnl_inner_product_desc_t fd, bdd, bwd;
    PCD_TRY(dnnl_inner_product_forward_desc_init(&fd, dnnl_forward_training, &src_in, &wei_in,
                                                 p->has_bias ? &bias_any : NULL, &dst_any),
            "inner product forward descriptor");
    PCD_TRY(dnnl_inner_product_backward_data_desc_init(&bdd, &src_any, &wei_in, &dst_in),
            "inner product backward data descriptor");
    PCD_TRY(dnnl_inner_product_backward_weights_desc_init(&bwd, &src_in, &wei_pmd,
                                                          p->has_bias ? &bias_any : NULL,
                                                          &dst_in),
            "inner product backward weights descriptor");
    if (!(p->fwd = relu ? pcd_prim_new_relu(&p->b, &fd, "inner product forward")
                        : pcd_prim_new(&p->b, &fd, NULL, "inner product forward")) ||
        !(p->bwd_d = pcd_prim_new(&p->b, &bdd, p->fwd->pd, "inner product backward data")) ||
        !(p->bwd_w = pcd_prim_new(&p->b, &bwd, p->fwd->pd, "inner product backward weights")))
        goto fail;
    if (p->has_bias && (!(p->zero_bias = pcd_buf_new(&p->b, (size_t)s->out * sizeof(float))) ||
                        !(p->db_sink = pcd_buf_new(&p->b, (size_t)s->out * sizeof(float))) ||
                        !(p->db_acc = pcd_buf_new(&p->b, (size_t)s->out * sizeof(double)))))
        goto fail;
    if (linear_ports(p, &src_md, &wei_md, &bias_md, &dst_md)) goto fail;
    return d;
fail:
    linear_free(p);
    free(d);
    return NULL;
}

void pc_dnnl_dense_forward(pc_dnnl_dense *d, const float *x, const float *w, const float *b,
                           float *y) {
    linear_forward(&d->lp, x, w, b, y);
}

void pc_dnnl_dense_backward(pc_dnnl_dense *d, const float *x, const float *w, const float *dy,
                            float *dx, float *dw, float *db) {
    linear_backward(&d->lp, x, w, dy, dx, dw, db);
}

void pc_dnnl_dense_weights_version(pc_dnnl_dense *d, uint64_t version) { d->lp.w_version = version; }

void pc_dnnl_dense_destroy(pc_dnnl_dense *d) {
    if (!d) return;
    linear_free(&d->lp);
    free(d);
}
