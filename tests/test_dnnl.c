/* oneDNN plans vs the reference kernels: every output and every gradient on many random
 * shapes, run-to-run and plan-to-plan bitwise reproducibility, NULL-output handling, and a
 * single-thread micro-benchmark (printed, not asserted). */
#define _GNU_SOURCE
#include <stdio.h>

#include "check.h"

#ifndef PARCNN_HAVE_DNNL

int main(void) {
    printf("oneDNN not available: skipped\n");
    return check_summary();
}

#else

#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "kernels/dnnl/dnnl_internal.h"
#include "kernels/dnnl/dnnl_kernels.h"
#include "kernels/fast/fast.h"
#include "kernels/ref/ref.h"

/* All comparisons: normalized error ||got - ref|| / ||ref|| below TOL (batch norm's: relative
 * to the size of the terms it sums where that is larger, see bn_floors_of). The reference
 * accumulates products in float (conv/dense) or double (bias, BN, pooling); oneDNN uses
 * float with a different (blocked) summation order. With at most a few thousand terms per
 * reduction in these shapes, the observed error is ~1e-7..1e-6, so 1e-5 has ample margin. */
#define TOL 1e-5
/* bf16 mixed precision rounds every input of a product to 8 significant bits (relative
 * error up to 2^-9): observed ~2e-3; a wrong layout or conversion gives ~1. */
#define BF16_TOL 1e-2

/* The precision under test and its tolerance (conv and dense run in both). */
static pc_dnnl_precision prec = PC_DNNL_F32;
static double tol = TOL;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd_u32(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}
static int rnd_int(int lo, int hi) { return lo + (int)(rnd_u32() % (uint32_t)(hi - lo + 1)); }
/* uniform in [-1, 1): 24 random bits (rnd_u32 yields 31) */
static float rnd_uniform(void) { return (float)(rnd_u32() >> 7) / 16777216.0f * 2.0f - 1.0f; }

static float *vec(long n) {
    float *p = pc_alloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}
/* When set, random inputs are bfloat16 values (8 significant bits): a bf16 plan then reads
 * them unchanged, its products are exact in fp32, and it must match the fp32 reference as
 * closely as fp32 does. Native (AVX512_BF16) and emulated bf16 alike. */
static int bf16_inputs;
static float bf16_value(float f) { /* round to the nearest bfloat16, ties to even */
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, sizeof f);
    return f;
}
static float *rvec(long n) {
    float *p = vec(n);
    for (long i = 0; i < n; i++) p[i] = bf16_inputs ? bf16_value(rnd_uniform()) : rnd_uniform();
    return p;
}
/* Outputs are poisoned with NaN before each call: a kernel that skips an element fails. */
static void poison(float *p, long n) {
    for (long i = 0; i < n; i++) p[i] = NAN;
}
static int same_bits(const float *a, const float *b, long n) {
    return memcmp(a, b, (size_t)n * sizeof(float)) == 0;
}
static double max_nerr; /* largest error seen in the current group of tests */
static void cmp_floor(const char *what, const char *desc, const float *got, const float *ref,
                      long n, double floor, double tol) {
    double e = check_nerr_floor(got, ref, n, floor);
    if (e > max_nerr) max_nerr = e;
    CHECK(e < tol, "%s %s: nerr %.3g", what, desc, e); /* NaN fails too */
}
static void cmp(const char *what, const char *desc, const float *got, const float *ref, long n,
                double tol) {
    cmp_floor(what, desc, got, ref, n, 0, tol);
}

/* ------------------------------------------------------------------ conv */

static void test_conv(pc_conv_shape s, int has_bias, int null_mode) {
    if (pc_conv_shape_finish(&s) != 0) {
        CHECK(0, "bad test shape");
        return;
    }
    char d[160];
    snprintf(d, sizeof d, "n%d c%d %dx%d k%d %dx%d s%d p%d g%d d%dx%d bias%d", s.n, s.c, s.h,
             s.w, s.k, s.kh, s.kw, s.sh, s.ph, s.groups, s.dil_h, s.dil_w, has_bias);
    long nx = (long)s.n * s.c * s.h * s.w, ny = (long)s.n * s.k * s.oh * s.ow;
    long nw = (long)s.k * (s.c / s.groups) * s.kh * s.kw;
    float *x = rvec(nx), *w = rvec(nw), *b = has_bias ? rvec(s.k) : NULL, *dy = rvec(ny);
    float *yr = vec(ny), *dxr = vec(nx), *dwr = vec(nw), *dbr = vec(s.k);
    float *y = vec(ny), *y2 = vec(ny), *dx = vec(nx), *dx2 = vec(nx), *dw = vec(nw),
          *dw2 = vec(nw), *db = vec(s.k), *db2 = vec(s.k);

    pc_dnnl_conv *p = pc_dnnl_conv_create(&s, has_bias, prec, PC_CONV_AUTO, 0, 0, 0);
    pc_dnnl_conv *q = pc_dnnl_conv_create(&s, has_bias, prec, PC_CONV_AUTO, 0, 0, 0);
    CHECK(p && q, "conv create %s: %s", d, pc_last_error());
    if (!p || !q) goto done;

    ref_conv2d_forward(&s, x, w, b, yr);
    ref_conv2d_backward(&s, x, w, dy, dxr, dwr, has_bias ? dbr : NULL);

    poison(y, ny);
    pc_dnnl_conv_forward(p, x, w, b, y);
    cmp("conv y", d, y, yr, ny, tol);
    poison(y2, ny);
    pc_dnnl_conv_forward(p, x, w, b, y2);
    CHECK(same_bits(y, y2, ny), "conv forward repeat not bitwise identical: %s", d);
    poison(y2, ny);
    pc_dnnl_conv_forward(q, x, w, b, y2);
    CHECK(same_bits(y, y2, ny), "conv forward second plan not bitwise identical: %s", d);
    { /* ReLU fused as a post-op: relu(reference) */
        pc_dnnl_conv *r = pc_dnnl_conv_create(&s, has_bias, prec, PC_CONV_AUTO, 1, 0, 0);
        CHECK(r != NULL, "conv+relu create %s: %s", d, pc_last_error());
        if (r) {
            ref_relu_forward(ny, yr, y2); /* y2 = relu(yr) */
            pc_dnnl_conv_forward(r, x, w, b, y);
            cmp("conv+relu y", d, y, y2, ny, tol);
            pc_dnnl_conv_forward(p, x, w, b, y); /* y as before for the checks below */
            pc_dnnl_conv_destroy(r);
        }
    }
    { /* ReLU6 (the reference scaled x4 and clipped: outputs beyond both bounds) fused as a
       * post-op, except on the Winograd path, which says it leaves it out */
        for (long i = 0; i < nw; i++) w[i] *= 4.0f;
        if (b) for (int i = 0; i < s.k; i++) b[i] *= 4.0f;
        for (long i = 0; i < ny; i++) yr[i] *= 4.0f;
        pc_dnnl_conv *r = pc_dnnl_conv_create(&s, has_bias, prec, PC_CONV_AUTO, 6, 0, 0);
        CHECK(r != NULL, "conv+relu6 create %s: %s", d, pc_last_error());
        if (r) {
            const int fused = pc_dnnl_conv_fused_act(r);
            CHECK(fused == 6 || (fused == 0 && strcmp(pc_dnnl_conv_algo_name(r), "winograd") == 0),
                  "conv+relu6 %s: fused activation %d on %s", d, fused, pc_dnnl_conv_algo_name(r));
            if (fused) ref_clip_forward(ny, 0, 6, yr, y2);
            else memcpy(y2, yr, sizeof(float) * ny);
            pc_dnnl_conv_forward(r, x, w, b, y);
            cmp("conv+relu6 y", d, y, y2, ny, tol);
            pc_dnnl_conv_destroy(r);
        }
        for (long i = 0; i < nw; i++) w[i] *= 0.25f; /* (powers of two: exact) */
        if (b) for (int i = 0; i < s.k; i++) b[i] *= 0.25f;
        for (long i = 0; i < ny; i++) yr[i] *= 0.25f;
        pc_dnnl_conv_forward(p, x, w, b, y);
    }

    poison(dx, nx), poison(dw, nw), poison(db, s.k);
    if (null_mode == 0) {
        pc_dnnl_conv_backward(p, x, w, dy, dx, dw, db);
        cmp("conv dx", d, dx, dxr, nx, tol);
        cmp("conv dw", d, dw, dwr, nw, tol);
        if (has_bias) cmp("conv db", d, db, dbr, s.k, tol);
        poison(dx2, nx), poison(dw2, nw), poison(db2, s.k);
        pc_dnnl_conv_backward(p, x, w, dy, dx2, dw2, db2);
        CHECK(same_bits(dx, dx2, nx) && same_bits(dw, dw2, nw) &&
                  (!has_bias || same_bits(db, db2, s.k)),
              "conv backward repeat not bitwise identical: %s", d);
        poison(dx2, nx), poison(dw2, nw), poison(db2, s.k);
        pc_dnnl_conv_backward(q, x, w, dy, dx2, dw2, db2);
        CHECK(same_bits(dx, dx2, nx) && same_bits(dw, dw2, nw) &&
                  (!has_bias || same_bits(db, db2, s.k)),
              "conv backward second plan not bitwise identical: %s", d);
    } else if (null_mode == 1) { /* first layer: no dx */
        pc_dnnl_conv_backward(p, x, w, dy, NULL, dw, db);
        cmp("conv dw (no dx)", d, dw, dwr, nw, tol);
        if (has_bias) cmp("conv db (no dx)", d, db, dbr, s.k, tol);
    } else if (null_mode == 2) { /* dx and db only */
        pc_dnnl_conv_backward(p, x, w, dy, dx, NULL, db);
        cmp("conv dx (no dw)", d, dx, dxr, nx, tol);
        if (has_bias) cmp("conv db (no dw)", d, db, dbr, s.k, tol);
    } else { /* dx and dw, no db */
        pc_dnnl_conv_backward(p, x, w, dy, dx, dw, NULL);
        cmp("conv dx (no db)", d, dx, dxr, nx, tol);
        cmp("conv dw (no db)", d, dw, dwr, nw, tol);
    }
done:
    pc_dnnl_conv_destroy(p);
    pc_dnnl_conv_destroy(q);
    pc_free(x), pc_free(w), pc_free(b), pc_free(dy), pc_free(yr), pc_free(dxr), pc_free(dwr);
    pc_free(dbr), pc_free(y), pc_free(y2), pc_free(dx), pc_free(dx2), pc_free(dw), pc_free(dw2);
    pc_free(db), pc_free(db2);
}

static void conv_tests(void) {
    int before = check_failed, count = 0;
    max_nerr = 0;
    /* fixed shapes typical of small CNNs */
    static const int fixed[][10] = {
        /* n, c, h, w, k, ks, stride, pad, groups, bias */
        {8, 3, 32, 32, 16, 3, 1, 1, 1, 1},  {4, 16, 16, 16, 32, 3, 2, 1, 1, 0},
        {2, 32, 14, 14, 64, 5, 1, 2, 1, 1}, {3, 32, 8, 8, 32, 3, 1, 1, 32, 0},
        {5, 16, 9, 9, 16, 3, 2, 1, 16, 1},  {2, 8, 7, 7, 16, 1, 1, 0, 1, 1},
        {1, 1, 5, 5, 1, 5, 1, 0, 1, 1},     {16, 12, 6, 6, 12, 3, 1, 1, 4, 1},
        {2, 4, 11, 11, 8, 3, 1, 1, 4, 1},   {3, 24, 10, 10, 48, 3, 1, 1, 2, 0},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        const int *f = fixed[i];
        pc_conv_shape s = {.n = f[0], .c = f[1], .h = f[2], .w = f[3], .k = f[4],
                           .kh = f[5], .kw = f[5], .sh = f[6], .sw = f[6], .ph = f[7],
                           .pw = f[7], .groups = f[8]};
        test_conv(s, f[9], 0);
        count++;
    }
    /* random shapes: kernel 1/3/5, stride 1/2, padding 0/1/2, groups 1 / 2 / depthwise
     * (with channel multiplier 1 or 2), dilation 1 to 4, batch 1..16, also non-square inputs */
    for (int t = 0; t < 60; t++) {
        static const int ks[] = {1, 3, 5};
        pc_conv_shape s = {0};
        s.n = rnd_int(1, 16);
        s.kh = ks[rnd_int(0, 2)];
        s.kw = rnd_int(0, 4) ? s.kh : ks[rnd_int(0, 2)];
        s.sh = rnd_int(1, 2);
        s.sw = rnd_int(0, 4) ? s.sh : rnd_int(1, 2);
        s.ph = rnd_int(0, 2);
        s.pw = rnd_int(0, 4) ? s.ph : rnd_int(0, 2);
        int gkind = rnd_int(0, 2);
        if (gkind == 0) {
            s.groups = 1, s.c = rnd_int(1, 20), s.k = rnd_int(1, 24);
        } else if (gkind == 1) {
            s.groups = 2, s.c = 2 * rnd_int(1, 10), s.k = 2 * rnd_int(1, 12);
        } else {
            s.c = rnd_int(1, 24), s.groups = s.c, s.k = s.c * rnd_int(1, 2);
        }
        if (t % 4 == 3) /* dilated (oneDNN's direct kernels; never Winograd) */
            s.dil_h = rnd_int(2, 3), s.dil_w = rnd_int(0, 2) ? s.dil_h : rnd_int(1, 4);
        int minh = PC_MAX(1, (s.kh - 1) * PC_MAX(s.dil_h, 1) + 1 - 2 * s.ph),
            minw = PC_MAX(1, (s.kw - 1) * PC_MAX(s.dil_w, 1) + 1 - 2 * s.pw);
        s.h = rnd_int(minh, minh + 14);
        s.w = rnd_int(minw, minw + 14);
        test_conv(s, rnd_int(0, 1), t % 8 == 5 ? 1 + (t / 8) % 3 : 0);
        count++;
    }
    printf("conv (%s): %d shapes, max nerr %.2g, %s\n", prec == PC_DNNL_BF16 ? "bf16" : "fp32", count, max_nerr,
           check_failed == before ? "ok" : "FAILED");
}

/* ----------------------------------------------------------------- dense */

static void test_dense(pc_dense_shape s, int has_bias, int null_mode) {
    char d[96];
    snprintf(d, sizeof d, "n%d in%d out%d bias%d", s.n, s.in, s.out, has_bias);
    long nx = (long)s.n * s.in, ny = (long)s.n * s.out, nw = (long)s.out * s.in;
    float *x = rvec(nx), *w = rvec(nw), *b = has_bias ? rvec(s.out) : NULL, *dy = rvec(ny);
    float *yr = vec(ny), *dxr = vec(nx), *dwr = vec(nw), *dbr = vec(s.out);
    float *y = vec(ny), *y2 = vec(ny), *dx = vec(nx), *dx2 = vec(nx), *dw = vec(nw),
          *dw2 = vec(nw), *db = vec(s.out), *db2 = vec(s.out);
    pc_dnnl_dense *p = pc_dnnl_dense_create(&s, has_bias, prec, 0);
    pc_dnnl_dense *q = pc_dnnl_dense_create(&s, has_bias, prec, 0);
    CHECK(p && q, "dense create %s: %s", d, pc_last_error());
    if (!p || !q) goto done;

    ref_dense_forward(&s, x, w, b, yr);
    ref_dense_backward(&s, x, w, dy, dxr, dwr, has_bias ? dbr : NULL);
    poison(y, ny);
    pc_dnnl_dense_forward(p, x, w, b, y);
    cmp("dense y", d, y, yr, ny, tol);
    poison(y2, ny);
    pc_dnnl_dense_forward(p, x, w, b, y2);
    CHECK(same_bits(y, y2, ny), "dense forward repeat not bitwise identical: %s", d);
    poison(y2, ny);
    pc_dnnl_dense_forward(q, x, w, b, y2);
    CHECK(same_bits(y, y2, ny), "dense forward second plan not bitwise identical: %s", d);
    { /* ReLU fused as a post-op: relu(reference) */
        pc_dnnl_dense *r = pc_dnnl_dense_create(&s, has_bias, prec, 1);
        CHECK(r != NULL, "dense+relu create %s: %s", d, pc_last_error());
        if (r) {
            ref_relu_forward(ny, yr, y2);
            pc_dnnl_dense_forward(r, x, w, b, y);
            cmp("dense+relu y", d, y, y2, ny, tol);
            pc_dnnl_dense_forward(p, x, w, b, y);
            pc_dnnl_dense_destroy(r);
        }
    }

    poison(dx, nx), poison(dw, nw), poison(db, s.out);
    if (null_mode == 0) {
        pc_dnnl_dense_backward(p, x, w, dy, dx, dw, db);
        cmp("dense dx", d, dx, dxr, nx, tol);
        cmp("dense dw", d, dw, dwr, nw, tol);
        if (has_bias) cmp("dense db", d, db, dbr, s.out, tol);
        poison(dx2, nx), poison(dw2, nw), poison(db2, s.out);
        pc_dnnl_dense_backward(p, x, w, dy, dx2, dw2, db2);
        CHECK(same_bits(dx, dx2, nx) && same_bits(dw, dw2, nw) &&
                  (!has_bias || same_bits(db, db2, s.out)),
              "dense backward repeat not bitwise identical: %s", d);
        poison(dx2, nx), poison(dw2, nw), poison(db2, s.out);
        pc_dnnl_dense_backward(q, x, w, dy, dx2, dw2, db2);
        CHECK(same_bits(dx, dx2, nx) && same_bits(dw, dw2, nw) &&
                  (!has_bias || same_bits(db, db2, s.out)),
              "dense backward second plan not bitwise identical: %s", d);
    } else if (null_mode == 1) {
        pc_dnnl_dense_backward(p, x, w, dy, NULL, dw, db);
        cmp("dense dw (no dx)", d, dw, dwr, nw, tol);
        if (has_bias) cmp("dense db (no dx)", d, db, dbr, s.out, tol);
    } else if (null_mode == 2) {
        pc_dnnl_dense_backward(p, x, w, dy, dx, NULL, db);
        cmp("dense dx (no dw)", d, dx, dxr, nx, tol);
        if (has_bias) cmp("dense db (no dw)", d, db, dbr, s.out, tol);
    } else {
        pc_dnnl_dense_backward(p, x, w, dy, dx, dw, NULL);
        cmp("dense dx (no db)", d, dx, dxr, nx, tol);
        cmp("dense dw (no db)", d, dw, dwr, nw, tol);
    }
done:
    pc_dnnl_dense_destroy(p);
    pc_dnnl_dense_destroy(q);
    pc_free(x), pc_free(w), pc_free(b), pc_free(dy), pc_free(yr), pc_free(dxr), pc_free(dwr);
    pc_free(dbr), pc_free(y), pc_free(y2), pc_free(dx), pc_free(dx2), pc_free(dw), pc_free(dw2);
    pc_free(db), pc_free(db2);
}

static void dense_tests(void) {
    int before = check_failed, count = 0;
    max_nerr = 0;
    /* n <= 64 runs on plain weights, larger n on oneDNN's blocked weights layout */
    static const int fixed[][4] = {{32, 3136, 1024, 1}, {16, 1024, 10, 1}, {1, 1, 1, 0},
                                   {7, 100, 33, 1},     {16, 64, 64, 0},   {100, 300, 50, 1},
                                   {128, 512, 64, 0},   {65, 17, 130, 1}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        pc_dense_shape s = {fixed[i][0], fixed[i][1], fixed[i][2]};
        test_dense(s, fixed[i][3], 0);
        count++;
    }
    for (int t = 0; t < 30; t++) {
        pc_dense_shape s = {t % 5 == 4 ? rnd_int(65, 130) : rnd_int(1, 16), rnd_int(1, 400),
                            rnd_int(1, 120)};
        test_dense(s, rnd_int(0, 1), t % 6 == 3 ? 1 + (t / 6) % 3 : 0);
        count++;
    }
    printf("dense (%s): %d shapes, max nerr %.2g, %s\n", prec == PC_DNNL_BF16 ? "bf16" : "fp32", count, max_nerr,
           check_failed == before ? "ok" : "FAILED");
}

/* Weights versions: the same non-zero version reuses the converted weights (even if the
 * caller broke its promise and changed them), a new version or 0 converts again. */
static void weights_version_tests(void) {
    pc_conv_shape s = {.n = 2, .c = 16, .h = 8, .w = 8, .k = 32, .kh = 3, .kw = 3, .sh = 1,
                       .sw = 1, .ph = 1, .pw = 1, .groups = 1};
    pc_conv_shape_finish(&s);
    long nx = (long)s.n * s.c * s.h * s.w, ny = (long)s.n * s.k * s.oh * s.ow, nw = (long)s.k * s.c * 9;
    float *x = rvec(nx), *w = rvec(nw), *y1 = vec(ny), *y2 = vec(ny), *y3 = vec(ny);
    for (int pr = 0; pr < 2; pr++) {
        pc_dnnl_conv *p = pc_dnnl_conv_create(&s, 0, pr ? PC_DNNL_BF16 : PC_DNNL_F32,
                                              PC_CONV_AUTO, 0, 0, 0);
        CHECK(p != NULL, "create: %s", pc_last_error());
        if (!p) continue;
        pc_dnnl_conv_weights_version(p, 7);
        pc_dnnl_conv_forward(p, x, w, NULL, y1);
        for (long i = 0; i < nw; i++) w[i] = -w[i];
        pc_dnnl_conv_forward(p, x, w, NULL, y2);
        pc_dnnl_conv_weights_version(p, 8);
        pc_dnnl_conv_forward(p, x, w, NULL, y3);
        int negated = 1;
        for (long i = 0; i < ny; i++) negated &= y3[i] == -y1[i];
        CHECK(same_bits(y1, y2, ny) && negated,
              "%s: version 7 reuses the converted weights, version 8 converts the new ones",
              pr ? "bf16" : "fp32");
        /* backward weights reuses the forward's reordered x only for that same x */
        float *x2 = rvec(nx), *dy = rvec(ny), *dw1 = vec(nw), *dw2 = vec(nw);
        pc_dnnl_conv *q = pc_dnnl_conv_create(&s, 0, pr ? PC_DNNL_BF16 : PC_DNNL_F32,
                                              PC_CONV_AUTO, 0, 0, 0);
        pc_dnnl_conv_forward(q, x2, w, NULL, y2);
        pc_dnnl_conv_backward(q, x2, w, dy, NULL, dw1, NULL);
        pc_dnnl_conv_forward(p, x, w, NULL, y1);
        pc_dnnl_conv_backward(p, x2, w, dy, NULL, dw2, NULL);
        CHECK(same_bits(dw1, dw2, nw), "%s: backward with another x than the last forward's",
              pr ? "bf16" : "fp32");
        pc_dnnl_conv_destroy(q);
        pc_free(x2), pc_free(dy), pc_free(dw1), pc_free(dw2);
        pc_dnnl_conv_destroy(p);
    }
    pc_free(x), pc_free(w), pc_free(y1), pc_free(y2), pc_free(y3);
}

/* --------------------------------------------------- bf16 weight packing */

/* dnnl_pack.c against oneDNN's reorder, bit for bit, on the weights layout a bf16 inner
 * product picks for (n, in, out); values include ties, NaN, infinities and zeros. Returns
 * whether the fast packer applied. */
static int test_pack(int n, int in, int out) {
    char d[64];
    snprintf(d, sizeof d, "n%d in%d out%d", n, in, out);
    pcd_base b;
    int used = 0;
    if (pcd_base_init(&b)) {
        CHECK(0, "pack %s: base: %s", d, pc_last_error());
        return 0;
    }
    dnnl_dim_t sd[2] = {n, in}, wd[2] = {out, in}, dd[2] = {n, out};
    dnnl_memory_desc_t s, w, y, user;
    pcd_md_init_dt(&s, 2, sd, dnnl_bf16, dnnl_nc, "src");
    pcd_md_init_dt(&w, 2, wd, dnnl_bf16, dnnl_format_tag_any, "weights");
    pcd_md_init(&y, 2, dd, dnnl_nc, "dst");
    pcd_md_init(&user, 2, wd, dnnl_oi, "user weights");
    dnnl_inner_product_desc_t ip;
    pcd_prim *p = NULL;
    pcd_port port;
    if (dnnl_inner_product_forward_desc_init(&ip, dnnl_forward_training, &s, &w, NULL, &y) ||
        !(p = pcd_prim_new(&b, &ip, NULL, "inner product")) ||
        pcd_port_init(&b, &port, &user, pcd_arg_md(p, DNNL_ARG_WEIGHTS), 0, PCD_PHASE_KEEP) ||
        pcd_base_finish(&b)) {
        CHECK(0, "pack %s: plan: %s", d, pc_last_error());
        pcd_base_free(&b);
        return 0;
    }
    /* its own numbers, not rnd_uniform's: the tests after this one keep their data */
    const long nw = (long)out * in;
    float *x = vec(nw);
    uint32_t state = 12345;
    for (long i = 0; i < nw; i++) {
        state = state * 1664525u + 1013904223u;
        x[i] = (float)(state >> 8) / 16777216.0f * 2.0f - 1.0f;
    }
    static const uint32_t special[] = {0x3f808000u, 0x3f818000u, 0x7fc00000u, 0xffa00001u,
                                       0x7f800000u, 0xff800000u, 0x80000000u, 0x7f7fffffu};
    for (long i = 0; i < nw; i += 97) memcpy(&x[i], &special[(i / 97) % 8], sizeof(float));
    void *inner = NULL;
    dnnl_memory_get_data_handle(port.inner, &inner);
    size_t bytes = dnnl_memory_desc_get_size(pcd_arg_md(p, DNNL_ARG_WEIGHTS));
    char *want = pc_alloc(bytes);
    if (port.pack) {
        used = 1;
        pcd_set(port.user, x);
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, port.user}, {DNNL_ARG_TO, port.inner}};
        pcd_exec(&b, port.reorder, 2, a);
        pcd_wait(&b);
        memcpy(want, inner, bytes);
        memset(inner, 0xff, bytes);
        pcd_port_in(&b, &port, x); /* the packer */
        CHECK(memcmp(want, inner, bytes) == 0, "pack %s: differs from oneDNN's reorder", d);
    }
    pc_free(want);
    pc_free(x);
    pcd_base_free(&b);
    return used;
}

static void pack_tests(void) {
    if (!pc_dnnl_bf16_native()) {
        printf("bf16 packing: no native bf16 on this CPU, skipped\n");
        return;
    }
    int before = check_failed;
    /* simple-cnn's dense layers on 28x28 and 32x32 input, and smaller ones */
    static const int shapes[][3] = {{32, 3136, 1024}, {32, 4096, 1024}, {32, 1024, 10},
                                    {16, 64, 64},     {128, 512, 64},   {32, 48, 80}};
    int packed = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int used = test_pack(shapes[i][0], shapes[i][1], shapes[i][2]);
        CHECK(used || i >= 2, "simple-cnn's %dx%d dense weights do not use the packer",
              shapes[i][2], shapes[i][1]);
        packed += used;
    }
    printf("bf16 packing: %d of %zu layouts packed, %s\n", packed,
           sizeof shapes / sizeof shapes[0], check_failed == before ? "bitwise oneDNN's" : "FAILED");
}

/* --------------------------------------------------------------- pooling */

/* quantized: values from a small set, so that max windows have ties */
static void test_pool(pc_pool_shape s, int is_max, int quantized) {
    if (pc_pool_shape_finish(&s) != 0) {
        CHECK(0, "bad pool test shape");
        return;
    }
    char d[128];
    snprintf(d, sizeof d, "%s n%d c%d %dx%d k%dx%d s%d p%d%s", is_max ? "max" : "avg", s.n, s.c,
             s.h, s.w, s.kh, s.kw, s.sh, s.ph, quantized ? " ties" : "");
    long nx = (long)s.n * s.c * s.h * s.w, ny = (long)s.n * s.c * s.oh * s.ow;
    float *x = rvec(nx), *dy = rvec(ny), *yr = vec(ny), *dxr = vec(nx), *y = vec(ny),
          *y2 = vec(ny), *dx = vec(nx), *dx2 = vec(nx);
    if (quantized)
        for (long i = 0; i < nx; i++) x[i] = (float)rnd_int(0, 2);
    int32_t *am = pc_alloc((size_t)ny * sizeof(int32_t));
    pc_dnnl_pool *p = pc_dnnl_pool_create(&s, is_max);
    pc_dnnl_pool *q = pc_dnnl_pool_create(&s, is_max);
    CHECK(p && q, "pool create %s: %s", d, pc_last_error());
    if (!p || !q || !am) goto done;

    if (is_max) {
        ref_maxpool_forward(&s, x, yr, am);
        ref_maxpool_backward(&s, am, dy, dxr);
    } else {
        ref_avgpool_forward(&s, x, yr);
        ref_avgpool_backward(&s, dy, dxr);
    }
    poison(y, ny);
    pc_dnnl_pool_forward(p, x, y);
    cmp("pool y", d, y, yr, ny, TOL);
    poison(dx, nx);
    pc_dnnl_pool_backward(p, dy, dx);
    cmp("pool dx", d, dx, dxr, nx, TOL);
    /* second plan, and the first plan again: bitwise identical */
    poison(y2, ny), poison(dx2, nx);
    pc_dnnl_pool_forward(q, x, y2);
    pc_dnnl_pool_backward(q, dy, dx2);
    CHECK(same_bits(y, y2, ny) && same_bits(dx, dx2, nx),
          "pool second plan not bitwise identical: %s", d);
    poison(y2, ny), poison(dx2, nx);
    pc_dnnl_pool_forward(p, x, y2);
    pc_dnnl_pool_backward(p, dy, dx2);
    CHECK(same_bits(y, y2, ny) && same_bits(dx, dx2, nx),
          "pool repeat not bitwise identical: %s", d);
done:
    pc_dnnl_pool_destroy(p);
    pc_dnnl_pool_destroy(q);
    pc_free(x), pc_free(dy), pc_free(yr), pc_free(dxr), pc_free(y), pc_free(y2), pc_free(dx);
    pc_free(dx2), pc_free(am);
}

static void pool_tests(void) {
    int before = check_failed, count = 0;
    max_nerr = 0;
    static const int cfg[][3] = {{2, 2, 0}, {3, 2, 1}, {3, 1, 1}}; /* kernel, stride, pad */
    for (int t = 0; t < 48; t++) {
        const int *c = cfg[t % 3];
        pc_pool_shape s = {0};
        s.n = rnd_int(1, 16);
        s.c = rnd_int(1, 40);
        s.h = rnd_int(c[0], 17);
        s.w = rnd_int(0, 3) ? s.h : rnd_int(c[0], 17);
        s.kh = s.kw = c[0];
        s.sh = s.sw = c[1];
        s.ph = s.pw = c[2];
        int is_max = (t / 3) % 2 == 0;
        test_pool(s, is_max, is_max && (t / 6) % 2 == 1);
        count++;
    }
    printf("pool: %d shapes, max nerr %.2g, %s\n", count, max_nerr,
           check_failed == before ? "ok" : "FAILED");
}

/* ------------------------------------------------------------ batch norm */

/* The sizes of the terms that batch norm's outputs and gradients sum, for cmp_floor, with
 * xhat = (x - mean) invstd and dy the gradient at batch norm's output (NULL: y's floor only).
 * y = act(gamma xhat + beta) cancels where the two terms nearly do; act's slope is at most
 * 1.13. dx's terms are gamma invstd dy, and with few values per channel they nearly cancel:
 * with two values, xhat = +-d / sqrt(d^2 + eps) and dx is eps / (d^2 + eps) of them. dgamma
 * sums dy xhat and dbeta dy per channel, and with many values those sums cancel. Each floor
 * is the norm of the terms' magnitudes, summed where the output sums them. */
typedef struct { double y, dx, dgamma, dbeta; } bn_floors;
static bn_floors bn_floors_of(const pc_bn_shape *s, const float *x, const float *gamma,
                              const float *beta, const float *mean, const float *invstd,
                              const float *dy) {
    double y = 0, dx = 0, dgamma = 0, dbeta = 0;
    for (int k = 0; k < s->c; k++) {
        double sum_xhat = 0, sum_dy = 0;
        for (int n = 0; n < s->n; n++)
            for (long j = 0; j < s->hw; j++) {
                long i = ((long)n * s->c + k) * s->hw + j;
                double xhat = ((double)x[i] - mean[k]) * invstd[k];
                double t = fabs(gamma[k] * xhat) + fabs((double)beta[k]);
                y += t * t;
                if (!dy) continue;
                t = (double)gamma[k] * invstd[k] * dy[i];
                dx += t * t;
                sum_xhat += fabs(dy[i] * xhat);
                sum_dy += fabs((double)dy[i]);
            }
        dgamma += sum_xhat * sum_xhat, dbeta += sum_dy * sum_dy;
    }
    return (bn_floors){sqrt(y), sqrt(dx), sqrt(dgamma), sqrt(dbeta)};
}
/* invstd of the running variance, as evaluation uses it */
static void eval_invstd(const pc_bn_shape *s, const float *rvar, float *invstd) {
    for (int k = 0; k < s->c; k++) invstd[k] = 1.0f / sqrtf(rvar[k] + s->eps);
}
static void cmp_bn_grads(const char *what, const char *desc, bn_floors f, long nx, int c,
                         const float *dx, const float *dxr, const float *dg, const float *dgr,
                         const float *db, const float *dbr) {
    char name[64];
    if (dx) snprintf(name, sizeof name, "%s dx", what), cmp_floor(name, desc, dx, dxr, nx, f.dx, TOL);
    snprintf(name, sizeof name, "%s dgamma", what), cmp_floor(name, desc, dg, dgr, c, f.dgamma, TOL);
    snprintf(name, sizeof name, "%s dbeta", what), cmp_floor(name, desc, db, dbr, c, f.dbeta, TOL);
}

/* The default kernel set runs batch norm on the vectorized C kernels (kernels/fast):
 * oneDNN 2.6 has only non-JIT code for plain NCHW batch norm. */
static void test_bn(pc_bn_shape s) {
    char d[96];
    snprintf(d, sizeof d, "n%d c%d hw%d", s.n, s.c, s.hw);
    long nx = (long)s.n * s.c * s.hw;
    float *x = rvec(nx), *dy = rvec(nx), *g = rvec(s.c), *bt = rvec(s.c);
    float *rm = rvec(s.c), *rv = rvec(s.c);
    for (int i = 0; i < s.c; i++) rv[i] = 0.5f + fabsf(rv[i]);
    for (long i = 0; i < nx; i++) x[i] = 3.0f * x[i] + 0.5f; /* non-zero mean, var != 1 */
    float *yr = vec(nx), *mr = vec(s.c), *vr = vec(s.c), *isr = vec(s.c), *dxr = vec(nx),
          *dgr = vec(s.c), *dbr = vec(s.c), *er = vec(nx);
    float *y = vec(nx), *y2 = vec(nx), *m = vec(s.c), *v = vec(s.c), *is = vec(s.c),
          *dx = vec(nx), *dx2 = vec(nx), *dg = vec(s.c), *db = vec(s.c), *e = vec(nx);

    ref_bn_forward_train(&s, x, g, bt, yr, mr, vr, isr);
    ref_bn_backward(&s, x, g, mr, isr, dy, dxr, dgr, dbr);
    ref_bn_forward_eval(&s, x, g, bt, rm, rv, er);

    poison(y, nx), poison(m, s.c), poison(v, s.c);
    fast_bn_forward_train(&s, x, g, bt, y, m, v, is, PC_FAST_LINEAR);
    const bn_floors train = bn_floors_of(&s, x, g, bt, mr, isr, dy);
    cmp_floor("bn y", d, y, yr, nx, train.y, TOL);
    cmp("bn mean", d, m, mr, s.c, TOL);
    cmp("bn var", d, v, vr, s.c, TOL);
    poison(dx, nx), poison(dg, s.c), poison(db, s.c);
    fast_bn_backward(&s, x, NULL, g, bt, m, is, dy, dx, dg, db, PC_FAST_LINEAR);
    cmp_bn_grads("bn", d, train, nx, s.c, dx, dxr, dg, dgr, db, dbr);
    poison(e, nx);
    fast_bn_forward_eval(&s, x, g, bt, rm, rv, e, PC_FAST_LINEAR);
    float *ris = vec(s.c);
    eval_invstd(&s, rv, ris);
    const bn_floors eval = bn_floors_of(&s, x, g, bt, rm, ris, NULL);
    cmp_floor("bn eval y", d, e, er, nx, eval.y, TOL);

    /* repeated calls: bitwise identical */
    float m2[64], v2[64], is2[64], dg2[64], db2[64];
    poison(y2, nx), poison(dx2, nx);
    fast_bn_forward_train(&s, x, g, bt, y2, m2, v2, is2, PC_FAST_LINEAR);
    fast_bn_backward(&s, x, NULL, g, bt, m2, is2, dy, dx2, dg2, db2, PC_FAST_LINEAR);
    CHECK(same_bits(y, y2, nx) && same_bits(m, m2, s.c) && same_bits(v, v2, s.c) &&
              same_bits(dx, dx2, nx) && same_bits(dg, dg2, s.c) && same_bits(db, db2, s.c),
          "bn repeat not bitwise identical: %s", d);
    /* NULL outputs: parameter gradients only (no dx); dx only */
    poison(dg, s.c), poison(db, s.c);
    fast_bn_backward(&s, x, NULL, g, bt, m, is, dy, NULL, dg, db, PC_FAST_LINEAR);
    cmp_bn_grads("bn (no dx)", d, train, nx, s.c, NULL, NULL, dg, dgr, db, dbr);
    poison(dx2, nx);
    fast_bn_backward(&s, x, NULL, g, bt, m, is, dy, dx2, NULL, NULL, PC_FAST_LINEAR);
    CHECK(same_bits(dx, dx2, nx), "bn dx without parameter gradients differs: %s", d);
    /* fused with ReLU: the forward is bitwise bn then relu; the backward agrees with relu's
     * backward then bn's to rounding (the compiler may contract its multiply-adds
     * differently around the mask) */
    float *yf = vec(nx), *dyr = vec(nx), *dxf = vec(nx), *ef = vec(nx), dgf[64], dbf[64];
    ref_relu_forward(nx, y, y2);                       /* y2 = relu(bn(x)) */
    ref_relu_backward(nx, y2, dy, dyr);                /* dyr = masked dy */
    fast_bn_backward(&s, x, NULL, g, bt, m, is, dyr, dx, dg, db, PC_FAST_LINEAR);
    fast_bn_forward_train(&s, x, g, bt, yf, m2, v2, is2, PC_FAST_RELU);
    fast_bn_backward(&s, x, yf, g, bt, m2, is2, dy, dxf, dgf, dbf, PC_FAST_RELU);
    ref_relu_forward(nx, e, e);
    fast_bn_forward_eval(&s, x, g, bt, rm, rv, ef, PC_FAST_RELU);
    CHECK(same_bits(yf, y2, nx) && same_bits(ef, e, nx), "bn+relu fused forward differs: %s", d);
    cmp_bn_grads("bn+relu", d, bn_floors_of(&s, x, g, bt, m, is, dyr), nx, s.c, dxf, dx, dgf, dg, dbf, db);
    /* fused with GELU: against batch norm, then the double-precision GELU reference (and,
     * backward, GELU's reference backward from the batch-norm output, then bn's) */
    float *z = vec(nx);
    fast_bn_forward_train(&s, x, g, bt, z, m, v, is, PC_FAST_LINEAR); /* z = bn(x) */
    ref_gelu_forward(nx, z, y2);
    ref_gelu_backward(nx, z, dy, dyr);
    fast_bn_backward(&s, x, NULL, g, bt, m, is, dyr, dx, dg, db, PC_FAST_LINEAR);
    fast_bn_forward_train(&s, x, g, bt, yf, m2, v2, is2, PC_FAST_GELU);
    fast_bn_backward(&s, x, NULL, g, bt, m2, is2, dy, dxf, dgf, dbf, PC_FAST_GELU);
    cmp_floor("bn+gelu y", d, yf, y2, nx, train.y, TOL);
    /* floors from dy, not GELU' dy: GELU' rounds to a fraction of 1, not of itself */
    cmp_bn_grads("bn+gelu", d, train, nx, s.c, dxf, dx, dgf, dg, dbf, db);
    fast_bn_forward_eval(&s, x, g, bt, rm, rv, z, PC_FAST_LINEAR);
    ref_gelu_forward(nx, z, e);
    fast_bn_forward_eval(&s, x, g, bt, rm, rv, ef, PC_FAST_GELU);
    cmp_floor("bn+gelu eval y", d, ef, e, nx, eval.y, TOL);
    /* fused with ReLU6 (gamma x4: outputs beyond both bounds): the forward bitwise bn then
     * clip(0, 6), the backward agrees with clip's (from its output) then bn's to rounding */
    float *g4 = vec(s.c);
    for (int k = 0; k < s.c; k++) g4[k] = 4.0f * g[k];
    fast_bn_forward_train(&s, x, g4, bt, z, m, v, is, PC_FAST_LINEAR);
    ref_clip_forward(nx, 0, 6, z, y2);
    ref_clip_backward(nx, 0, 6, y2, dy, dyr);
    fast_bn_backward(&s, x, NULL, g4, bt, m, is, dyr, dx, dg, db, PC_FAST_LINEAR);
    fast_bn_forward_train(&s, x, g4, bt, yf, m2, v2, is2, PC_FAST_RELU6);
    fast_bn_backward(&s, x, yf, g4, bt, m2, is2, dy, dxf, dgf, dbf, PC_FAST_RELU6);
    fast_bn_forward_eval(&s, x, g4, bt, rm, rv, z, PC_FAST_LINEAR);
    ref_clip_forward(nx, 0, 6, z, e);
    fast_bn_forward_eval(&s, x, g4, bt, rm, rv, ef, PC_FAST_RELU6);
    CHECK(same_bits(yf, y2, nx) && same_bits(ef, e, nx), "bn+relu6 fused forward differs: %s", d);
    cmp_bn_grads("bn+relu6", d, bn_floors_of(&s, x, g4, bt, m, is, dyr), nx, s.c, dxf, dx, dgf, dg,
                 dbf, db);
    pc_free(g4);
    pc_free(z), pc_free(ris);
    pc_free(yf), pc_free(dyr), pc_free(dxf), pc_free(ef);
    pc_free(x), pc_free(dy), pc_free(g), pc_free(bt), pc_free(rm), pc_free(rv), pc_free(yr);
    pc_free(mr), pc_free(vr), pc_free(isr), pc_free(dxr), pc_free(dgr), pc_free(dbr);
    pc_free(er), pc_free(y), pc_free(y2), pc_free(m), pc_free(v), pc_free(is), pc_free(dx);
    pc_free(dx2), pc_free(dg), pc_free(db), pc_free(e);
}

static void bn_tests(void) {
    int before = check_failed, count = 0;
    max_nerr = 0;
    static const int hws[] = {1, 4, 49, 196, 1024};
    for (int t = 0; t < 30; t++) {
        pc_bn_shape s = {.n = rnd_int(1, 16), .c = rnd_int(1, 64), .hw = hws[t % 5],
                         .eps = 1e-5f};
        if (s.n * s.hw < 2) s.n = 2; /* training BN needs more than one value per channel */
        test_bn(s);
        count++;
    }
    printf("bn: %d shapes, max nerr %.2g, %s\n", count, max_nerr,
           check_failed == before ? "ok" : "FAILED");
}

/* The fast max pool: output and argmax bitwise the reference's for random windows, strides
 * and paddings (2x2/2 and 3x3/2 pad 1 always among them), with ties, NaNs, -inf and odd
 * sizes (floor mode). */
static void fast_maxpool_tests(void) {
    int before = check_failed, count = 0;
    for (int t = 0; t < 120; t++) {
        pc_pool_shape s = {.n = rnd_int(1, 4), .c = rnd_int(1, 9), .h = rnd_int(1, 40),
                           .w = rnd_int(1, 90), .kh = rnd_int(1, 5), .kw = rnd_int(1, 5),
                           .sh = rnd_int(1, 3), .sw = rnd_int(1, 3)};
        if (t % 3 == 0) s.kh = s.kw = s.sh = s.sw = 2, s.ph = s.pw = 0;
        else if (t % 3 == 1) s.kh = s.kw = 3, s.sh = s.sw = 2, s.ph = s.pw = 1;
        else s.ph = rnd_int(0, s.kh / 2), s.pw = rnd_int(0, s.kw / 2);
        if (s.h < s.kh) s.h = s.kh;
        if (s.w < s.kw) s.w = s.kw;
        if (pc_pool_shape_finish(&s) != 0) {
            CHECK(0, "bad fast pool test shape");
            continue;
        }
        long nx = (long)s.n * s.c * s.h * s.w, ny = (long)s.n * s.c * s.oh * s.ow;
        float *x = rvec(nx), *y = vec(ny), *yr = vec(ny);
        int32_t *a = pc_alloc((size_t)ny * sizeof(int32_t)), *ar = pc_alloc((size_t)ny * sizeof(int32_t));
        for (long i = 0; i < nx; i++) {
            if (t % 2) x[i] = (float)rnd_int(-1, 1); /* many ties */
            if (rnd_int(0, 50) == 0) x[i] = NAN;
            if (rnd_int(0, 50) == 0) x[i] = -INFINITY;
        }
        void *pad = pc_alloc(fast_maxpool_scratch(&s));
        fast_maxpool_forward(&s, x, y, a, pad);
        pc_free(pad);
        ref_maxpool_forward(&s, x, yr, ar);
        CHECK(same_bits(y, yr, ny) && memcmp(a, ar, (size_t)ny * sizeof(int32_t)) == 0,
              "fast max pool differs from the reference: n%d c%d %dx%d window %dx%d stride "
              "%dx%d pad %dx%d", s.n, s.c, s.h, s.w, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw);
        pc_free(x), pc_free(y), pc_free(yr), pc_free(a), pc_free(ar);
        count++;
    }
    printf("fast max pool: %d shapes, %s\n", count, check_failed == before ? "ok" : "FAILED");
}

/* ------------------------------------------------------------------ blocked layouts */

/* A plain tensor (n, c, hw) blocked, with NaN poison in a fresh buffer first: the kernels
 * under test must write every float, padding included. */
static float *blocked_copy(int n, int c, long hw, int B, const float *plain) {
    float *b = vec((long)n * fast_blocked_size(c, hw, B));
    fast_to_blocked(n, c, hw, B, plain, b);
    return b;
}

/* got (blocked) against want (plain): its plain view within tol (0: bitwise), and zeros in
 * every padded lane. */
static void cmp_blocked_floor(const char *what, int n, int c, long hw, int B, const float *got,
                              const float *want, double floor, double tol_) {
    long np = (long)n * c * hw, nb = (long)n * fast_blocked_size(c, hw, B);
    float *plain = vec(np), *back = vec(nb);
    fast_to_plain(n, c, hw, B, got, plain);
    fast_to_blocked(n, c, hw, B, plain, back);
    if (tol_ == 0) CHECK(same_bits(plain, want, np), "%s (block %d) not bitwise the plain kernel's", what, B);
    else cmp_floor(what, "blocked", plain, want, np, floor, tol_);
    CHECK(same_bits(back, got, nb), "%s (block %d): padded lanes not zero", what, B);
    pc_free(plain), pc_free(back);
}
static void cmp_blocked(const char *what, int n, int c, long hw, int B, const float *got,
                        const float *want, double tol_) {
    cmp_blocked_floor(what, n, c, hw, B, got, want, 0, tol_);
}

/* Each blocked kernel (block 8 and 16, whichever this CPU's convolutions use) against the
 * plain kernels: pooling, global average pooling and the residual add bitwise, batch norm
 * within TOL (its sums are grouped differently), padding always zero. */
static void blocked_tests(void) {
    int before = check_failed;
    max_nerr = 0;
    for (int t = 0; t < 24; t++) {
        const int B = t % 2 ? 16 : 8, n = rnd_int(1, 4), c = rnd_int(1, 40);
        const int h = rnd_int(1, 12), w = rnd_int(1, 12);
        const long hw = (long)h * w, np = (long)n * c * hw, nb = (long)n * fast_blocked_size(c, hw, B);
        float *x = rvec(np), *dy = rvec(np);
        if (t % 4 == 3) /* a mean far from zero against the deviation (batch norm's moments) */
            for (long i = 0; i < np; i++) x[i] += 50.0f;
        float *xb = blocked_copy(n, c, hw, B, x);
        float *dyb = blocked_copy(n, c, hw, B, dy);
        /* batch norm with each activation, training forward, backward and evaluation */
        pc_bn_shape bs = {.n = n, .c = c, .hw = (int)hw, .eps = 1e-5f};
        if (n * hw < 2) bs.n = 1, bs.hw = 2; /* (skipped below) */
        float *gamma = rvec(c), *beta = rvec(c), *rm = vec(c), *rv = vec(c);
        for (int k = 0; k < c; k++) rm[k] = 0.1f * rnd_uniform(), rv[k] = 1.0f + rnd_uniform() * 0.5f;
        for (int act = 0; act <= PC_FAST_RELU6 && n * hw >= 2; act++) {
            float *y = vec(np), *yb = vec(nb), *dx = vec(np), *dxb = vec(nb);
            float st[3 * 64], stb[3 * 64], dg[64], dgb[64], dbe[64], dbeb[64];
            poison(yb, nb), poison(dxb, nb);
            fast_bn_forward_train(&bs, x, gamma, beta, y, st, st + c, st + 2 * c, act);
            fast_bnb_forward_train(&bs, B, xb, gamma, beta, yb, stb, stb + c, stb + 2 * c, act);
            /* (from dy before the activation's backward: floors somewhat above the terms) */
            const bn_floors f = bn_floors_of(&bs, x, gamma, beta, st, st + 2 * c, dy);
            cmp_blocked_floor("bn forward", n, c, hw, B, yb, y, f.y, TOL);
            cmp("bn statistics", "blocked", stb, st, 3 * c, TOL);
            float *yfb = blocked_copy(n, c, hw, B, y); /* ReLU's mask: the same y */
            fast_bn_backward(&bs, x, y, gamma, beta, st, st + 2 * c, dy, dx, dg, dbe, act);
            fast_bnb_backward(&bs, B, xb, yfb, gamma, beta, st, st + 2 * c, dyb, dxb, dgb, dbeb, act);
            cmp_blocked_floor("bn backward", n, c, hw, B, dxb, dx, f.dx, TOL);
            cmp_bn_grads("bn", "blocked", f, np, c, NULL, NULL, dgb, dg, dbeb, dbe);
            poison(yb, nb);
            fast_bn_forward_eval(&bs, x, gamma, beta, rm, rv, y, act);
            fast_bnb_forward_eval(&bs, B, xb, gamma, beta, rm, rv, yb, act);
            float ris[64]; /* c <= 40 */
            eval_invstd(&bs, rv, ris);
            const double eval_floor = bn_floors_of(&bs, x, gamma, beta, rm, ris, NULL).y;
            cmp_blocked_floor("bn eval", n, c, hw, B, yb, y, eval_floor, TOL);
            pc_free(y), pc_free(yb), pc_free(dx), pc_free(dxb), pc_free(yfb);
        }
        /* pooling: max with ties and NaNs, and average, with padding */
        pc_pool_shape ps = {.n = n, .c = c, .h = h, .w = w, .kh = rnd_int(1, 3), .kw = rnd_int(1, 3),
                            .sh = rnd_int(1, 2), .sw = rnd_int(1, 2)};
        if (ps.h < ps.kh) ps.h = ps.kh;
        if (ps.w < ps.kw) ps.w = ps.kw;
        ps.ph = rnd_int(0, ps.kh / 2), ps.pw = rnd_int(0, ps.kw / 2);
        if (t % 3 == 0 && h >= 2 && w >= 2) /* the unrolled 2x2 / stride 2 kernels */
            ps.kh = ps.kw = ps.sh = ps.sw = 2, ps.ph = ps.pw = 0;
        if (t % 3 == 1 && h >= 3 && w >= 3) /* 3x3, padded: runs of windows inside the plane */
            ps.kh = ps.kw = 3, ps.ph = ps.pw = 1;
        ps.ceil_mode = t % 2, ps.count_pad = t % 5 < 2; /* ceil mode's windows cut at the end */
        if (ps.h == h && ps.w == w && pc_pool_shape_finish(&ps) == 0) {
            const long ohw = (long)ps.oh * ps.ow, ny = (long)n * c * ohw,
                       nyb = (long)n * fast_blocked_size(c, ohw, B);
            float *xt = vec(np);
            for (long i = 0; i < np; i++) xt[i] = t % 4 < 2 ? (float)rnd_int(-1, 1) : x[i];
            xt[rnd_int(0, (int)np - 1)] = NAN;
            float *xtb = blocked_copy(n, c, hw, B, xt), *g = rvec(ny), *gb = blocked_copy(n, c, ohw, B, g);
            float *y = vec(ny), *yb = vec(nyb), *dx = vec(np), *dxb = vec(nb);
            int32_t *am = pc_alloc(sizeof(int32_t) * ny), *amb = pc_alloc(sizeof(int32_t) * nyb);
            poison(yb, nyb), poison(dxb, nb);
            ref_maxpool_forward(&ps, xt, y, am);
            fast_maxpoolb_forward(&ps, B, xtb, yb, amb);
            cmp_blocked("max pool forward", n, c, ohw, B, yb, y, 0);
            ref_maxpool_backward(&ps, am, g, dx);
            fast_maxpoolb_backward(&ps, B, amb, gb, dxb);
            cmp_blocked("max pool backward", n, c, hw, B, dxb, dx, 0);
            poison(yb, nyb);
            fast_maxpoolb_forward(&ps, B, xtb, yb, NULL); /* inference: no argmax */
            cmp_blocked("max pool forward, no argmax", n, c, ohw, B, yb, y, 0);
            poison(yb, nyb), poison(dxb, nb);
            ref_avgpool_forward(&ps, x, y);
            fast_avgpoolb_forward(&ps, B, xb, yb);
            cmp_blocked("avg pool forward", n, c, ohw, B, yb, y, 0);
            ref_avgpool_backward(&ps, g, dx);
            fast_avgpoolb_backward(&ps, B, gb, dxb);
            cmp_blocked("avg pool backward", n, c, hw, B, dxb, dx, 0);
            pc_free(xt), pc_free(xtb), pc_free(g), pc_free(gb), pc_free(y), pc_free(yb);
            pc_free(dx), pc_free(dxb), pc_free(am), pc_free(amb);
        }
        /* global average pooling: y plain (n, c) */
        {
            float *y = vec((long)n * c), *yb = vec((long)n * c), *dx = vec(np), *dxb = vec(nb);
            for (long p = 0; p < (long)n * c; p++) {
                float acc = 0;
                for (long i = 0; i < hw; i++) acc += x[p * hw + i];
                y[p] = acc / (float)hw;
                for (long i = 0; i < hw; i++) dx[p * hw + i] = dy[p] / (float)hw;
            }
            poison(dxb, nb);
            fast_gapb_forward(n, c, hw, B, xb, yb);
            CHECK(same_bits(yb, y, (long)n * c), "gap forward (block %d) not bitwise", B);
            fast_gapb_backward(n, c, hw, B, dy, dxb);
            cmp_blocked("gap backward", n, c, hw, B, dxb, dx, 0);
            pc_free(y), pc_free(yb), pc_free(dx), pc_free(dxb);
        }
        /* residual add of b (cb <= c channels, 2x the size at stride 2 or the same size) */
        {
            const int st = rnd_int(1, 2), cb = rnd_int(1, c), hb = h * st, wb = w * st;
            const long bhw = (long)hb * wb, nbp = (long)n * cb * bhw, nbb = (long)n * fast_blocked_size(cb, bhw, B);
            fast_add_shape as = {.n = n, .c = c, .h = h, .w = w, .cb = cb, .hb = hb, .wb = wb, .sh = st, .sw = st};
            float *bp = rvec(nbp), *bb = blocked_copy(n, cb, bhw, B, bp), *y = vec(np), *yb = vec(nb);
            float *db = vec(nbp), *dbb = vec(nbb);
            memcpy(y, x, sizeof(float) * np);
            memset(db, 0, sizeof(float) * nbp);
            for (int s2 = 0; s2 < n; s2++)
                for (int k = 0; k < cb; k++)
                    for (int i = 0; i < h; i++)
                        for (int j = 0; j < w; j++) {
                            const long yo = (((long)s2 * c + k) * h + i) * w + j;
                            const long bo = (((long)s2 * cb + k) * hb + i * st) * wb + j * st;
                            y[yo] += bp[bo];
                            db[bo] = dy[yo];
                        }
            poison(yb, nb), poison(dbb, nbb);
            fast_addb_forward(&as, B, xb, bb, yb, 0);
            cmp_blocked("add forward", n, c, hw, B, yb, y, 0);
            ref_relu_forward(np, y, y);
            poison(yb, nb);
            fast_addb_forward(&as, B, xb, bb, yb, 1);
            cmp_blocked("add + relu forward", n, c, hw, B, yb, y, 0);
            fast_addb_backward_b(&as, B, dyb, dbb);
            cmp_blocked("add backward", n, cb, bhw, B, dbb, db, 0);
            pc_free(bp), pc_free(bb), pc_free(y), pc_free(yb), pc_free(db), pc_free(dbb);
        }
        pc_free(x), pc_free(dy), pc_free(xb), pc_free(dyb), pc_free(gamma), pc_free(beta);
        pc_free(rm), pc_free(rv);
    }
    printf("blocked kernels (block 8 and 16): max nerr %.2g, %s\n", max_nerr,
           check_failed == before ? "ok" : "FAILED");
}

/* ------------------------------------------------------------------ gelu */

/* The vectorized GELU against the double-precision reference (libm's erf): absolute error
 * over [-12, 12] and the tails, PyTorch's values at a few points, and the backward. */
static void gelu_tests(void) {
    int before = check_failed;
    enum { N = 48001 };
    float *x = vec(N), *y = vec(N), *yr = vec(N), *dy = vec(N), *dx = vec(N), *dxr = vec(N);
    for (int i = 0; i < N; i++) {
        x[i] = -12.0f + 24.0f * (float)i / (N - 1);
        dy[i] = 1.0f;
    }
    x[0] = -100.0f, x[1] = 100.0f, x[2] = -0.0f, x[3] = 1e-30f; /* tails and tiny inputs */
    fast_gelu_forward(N, x, y);
    ref_gelu_forward(N, x, yr);
    fast_gelu_backward(N, x, dy, dx);
    ref_gelu_backward(N, x, dy, dxr);
    double ey = 0, ed = 0;
    for (int i = 0; i < N; i++) {
        ey = fmax(ey, fabs((double)y[i] - yr[i]) / fmax(1.0, fabs(yr[i])));
        ed = fmax(ed, fabs((double)dx[i] - dxr[i]));
    }
    CHECK(ey < 3e-7, "gelu forward: max error %.3g", ey);
    CHECK(ed < 5e-7, "gelu backward: max error %.3g", ed);
    /* torch.nn.functional.gelu at -3, -1, 0.5, 2 (PyTorch 1.13, float64) */
    static const float at[4] = {-3.0f, -1.0f, 0.5f, 2.0f};
    static const double exact_y[4] = {-0.0040496598, -0.15865525393145707, 0.34573123063700656,
                                       1.9544997361036416};
    float ty[4];
    fast_gelu_forward(4, at, ty);
    for (int i = 0; i < 4; i++)
        CHECK(fabs(ty[i] - exact_y[i]) < 1e-6, "gelu(%g) = %.9g, expected %.9g", at[i], ty[i],
              exact_y[i]);
    printf("gelu: max error %.2g forward, %.2g backward, %s\n", ey, ed,
           check_failed == before ? "ok" : "FAILED");
    pc_free(x), pc_free(y), pc_free(yr), pc_free(dy), pc_free(dx), pc_free(dxr);
}

/* -------------------------------------------------------- error handling */

/* ------------------------------------------------------------------ Winograd */

/* Winograd plans (blocked activations, fp32, 3x3 and 5x5, "same" padding) against the
 * plain reference: forward with bias and ReLU, dx, dw and db within WINO_TOL; repeats
 * bitwise; the direct algorithm on the same shape for comparison. Shapes cover outputs
 * that are not a multiple of the tile (partial tiles), several chunks of images (the 64x64
 * planes), and C != K. */
#define WINO_TOL 1e-4
static void winograd_tests(void) {
    const int B = pc_dnnl_activation_block();
    CHECK(B == 8 || B == 16, "activation block %d", B);
    if (B != 8 && B != 16) return;
    const struct { int n, c, k, h, w, r; } shapes[] = {
        {2, 16, 16, 8, 8, 3},  {3, 16, 32, 7, 9, 3}, {2, 32, 16, 14, 14, 5}, {1, 16, 16, 1, 1, 3},
        {2, 16, 48, 5, 3, 5},  {4, 16, 64, 64, 64, 3},
        /* input channels short of a whole block: the layout's zero lanes are channels */
        {2, 24, 32, 9, 10, 3}, {2, 5, 16, 7, 7, 5},   {1, 3, 16, 6, 6, 3},
    };
    int before = check_failed;
    double worst[2] = {0, 0}, worst_direct = 0; /* 3x3, 5x5 */
    for (int t = 0; t < (int)(sizeof shapes / sizeof *shapes); t++) {
        const int r = shapes[t].r;
        pc_conv_shape s = {.n = shapes[t].n, .c = shapes[t].c, .h = shapes[t].h,
                           .w = shapes[t].w, .k = shapes[t].k, .kh = r, .kw = r, .sh = 1,
                           .sw = 1, .ph = r / 2, .pw = r / 2, .groups = 1};
        CHECK(pc_conv_shape_finish(&s) == 0, "shape %d", t);
        const long hw = (long)s.h * s.w, nx = (long)s.n * s.c * hw, ny = (long)s.n * s.k * hw;
        const long nw = (long)s.k * s.c * r * r;
        float *x = rvec(nx), *w = rvec(nw), *b = rvec(s.k), *dy = rvec(ny);
        float *yr = vec(ny), *dxr = vec(nx), *dwr = vec(nw), *dbr = vec(s.k);
        ref_conv2d_forward(&s, x, w, b, yr);
        ref_relu_forward(ny, yr, yr);
        for (long i = 0; i < ny; i++) if (yr[i] <= 0) dy[i] = 0; /* masked, as exec does */
        ref_conv2d_backward(&s, x, w, dy, dxr, dwr, dbr);
        float *xb = blocked_copy(s.n, s.c, hw, B, x), *dyb = blocked_copy(s.n, s.k, hw, B, dy);
        const long nyb = (long)s.n * fast_blocked_size(s.k, hw, B), nxb = (long)s.n * fast_blocked_size(s.c, hw, B);
        float *y = vec(nyb), *y2 = vec(nyb), *dx = vec(nxb), *dx2 = vec(nxb), *dw = vec(nw), *dw2 = vec(nw), *db = vec(s.k);
        for (int algo = 0; algo < 2; algo++) {
            pc_dnnl_conv *p = pc_dnnl_conv_create(&s, 1, PC_DNNL_F32,
                                                  algo ? PC_CONV_DIRECT : PC_CONV_WINOGRAD, 1, B, B);
            CHECK(p != NULL, "conv create (%s): %s", algo ? "direct" : "auto", pc_last_error());
            if (!p) continue;
            CHECK(!strcmp(pc_dnnl_conv_algo_name(p), algo ? "direct" : "winograd"),
                  "shape %d: algorithm %s", t, pc_dnnl_conv_algo_name(p));
            pc_dnnl_conv_weights_version(p, 7);
            double before_max = max_nerr;
            max_nerr = 0;
            poison(y, nyb), poison(dx, nxb), poison(dw, nw), poison(db, s.k);
            pc_dnnl_conv_forward(p, xb, w, b, y);
            cmp_blocked(algo ? "direct forward" : "winograd forward", s.n, s.k, hw, B, y, yr, WINO_TOL);
            pc_dnnl_conv_backward(p, xb, w, dyb, dx, dw, db);
            cmp_blocked(algo ? "direct dx" : "winograd dx", s.n, s.c, hw, B, dx, dxr, WINO_TOL);
            cmp(algo ? "direct dw" : "winograd dw", "blocked", dw, dwr, nw, WINO_TOL);
            cmp(algo ? "direct db" : "winograd db", "blocked", db, dbr, s.k, WINO_TOL);
            pc_dnnl_conv_forward(p, xb, w, b, y2);
            pc_dnnl_conv_backward(p, xb, w, dyb, dx2, dw2, NULL);
            CHECK(same_bits(y, y2, nyb) && same_bits(dx, dx2, nxb) && same_bits(dw, dw2, nw),
                  "conv %s (shape %d): repeat not bitwise identical", algo ? "direct" : "winograd", t);
            /* Winograd's weights gradient shares the transformed weights' buffer: a forward
             * after a backward without dx (the same weights version) transforms them again */
            pc_dnnl_conv_forward(p, xb, w, b, y2);
            poison(y2, nyb), poison(dw2, nw);
            pc_dnnl_conv_backward(p, xb, w, dyb, NULL, dw2, NULL);
            pc_dnnl_conv_forward(p, xb, w, b, y2);
            CHECK(same_bits(y, y2, nyb) && same_bits(dw, dw2, nw),
                  "conv %s (shape %d): forward after a weights-only backward differs",
                  algo ? "direct" : "winograd", t);
            if (algo) worst_direct = fmax(worst_direct, max_nerr);
            else worst[r == 5] = fmax(worst[r == 5], max_nerr);
            max_nerr = fmax(max_nerr, before_max);
            pc_dnnl_conv_destroy(p);
        }
        /* emulated bf16 (no native bf16 here): Winograd reads its operands rounded, so it
         * gives bitwise what the fp32 plan gives on rounded copies */
        if (!pc_dnnl_bf16_native()) {
            pc_dnnl_conv *pb = pc_dnnl_conv_create(&s, 1, PC_DNNL_BF16, PC_CONV_WINOGRAD, 1, B, B);
            pc_dnnl_conv *pf = pc_dnnl_conv_create(&s, 1, PC_DNNL_F32, PC_CONV_WINOGRAD, 1, B, B);
            CHECK(pb && pf && !strcmp(pc_dnnl_conv_algo_name(pb), "winograd"),
                  "emulated bf16 Winograd plan (shape %d): %s", t, pc_last_error());
            if (pb && pf) {
                float *xq = vec(nxb), *wq = vec(nw), *dyq = vec(nyb);
                for (long i = 0; i < nxb; i++) xq[i] = bf16_value(xb[i]);
                for (long i = 0; i < nw; i++) wq[i] = bf16_value(w[i]);
                for (long i = 0; i < nyb; i++) dyq[i] = bf16_value(dyb[i]);
                pc_dnnl_conv_forward(pb, xb, w, b, y);
                pc_dnnl_conv_backward(pb, xb, w, dyb, dx, dw, NULL);
                pc_dnnl_conv_forward(pf, xq, wq, b, y2);
                pc_dnnl_conv_backward(pf, xq, wq, dyq, dx2, dw2, NULL);
                CHECK(same_bits(y, y2, nyb) && same_bits(dx, dx2, nxb) && same_bits(dw, dw2, nw),
                      "emulated bf16 Winograd (shape %d) is not fp32 Winograd on rounded operands", t);
                pc_free(xq), pc_free(wq), pc_free(dyq);
            }
            pc_dnnl_conv_destroy(pb);
            pc_dnnl_conv_destroy(pf);
        }
        pc_free(x), pc_free(w), pc_free(b), pc_free(dy), pc_free(yr), pc_free(dxr), pc_free(dwr);
        pc_free(dbr), pc_free(xb), pc_free(dyb), pc_free(y), pc_free(y2), pc_free(dx), pc_free(dx2);
        pc_free(dw), pc_free(dw2), pc_free(db);
    }
    /* AUTO: Winograd only with enough channels; never for strided or unpadded shapes */
    pc_conv_shape narrow = {.n = 2, .c = B, .h = 8, .w = 8, .k = B, .kh = 3, .kw = 3, .sh = 1,
                            .sw = 1, .ph = 1, .pw = 1, .groups = 1};
    pc_conv_shape wide = narrow, strided = narrow, unpadded = narrow;
    wide.c = wide.k = strided.c = strided.k = unpadded.c = unpadded.k = 64;
    strided.sh = strided.sw = 2, unpadded.ph = unpadded.pw = 0;
    pc_conv_shape *cases[4] = {&narrow, &wide, &strided, &unpadded};
    for (int i = 0; i < 4; i++) {
        pc_conv_shape_finish(cases[i]);
        pc_dnnl_conv *p = pc_dnnl_conv_create(cases[i], 0, PC_DNNL_F32, PC_CONV_AUTO, 0, B, B);
        CHECK(p && !strcmp(pc_dnnl_conv_algo_name(p), i == 1 ? "winograd" : "direct"),
              "auto algorithm for case %d: %s", i, p ? pc_dnnl_conv_algo_name(p) : pc_last_error());
        pc_dnnl_conv_destroy(p);
    }
    /* bf16, native: Winograd (in fp32) only where it beats the bf16 kernels, C K / (C + K)
     * >= 48; emulated: as fp32 */
    pc_conv_shape mid = wide, big = wide;
    big.c = big.k = 128;
    pc_conv_shape_finish(&mid), pc_conv_shape_finish(&big);
    const int native = pc_dnnl_bf16_native();
    pc_dnnl_conv *pm = pc_dnnl_conv_create(&mid, 0, PC_DNNL_BF16, PC_CONV_AUTO, 0, B, B);
    pc_dnnl_conv *pg = pc_dnnl_conv_create(&big, 0, PC_DNNL_BF16, PC_CONV_AUTO, 0, B, B);
    CHECK(pm && !strcmp(pc_dnnl_conv_algo_name(pm), native ? "direct" : "winograd"),
          "auto algorithm, bf16, 64 -> 64: %s", pm ? pc_dnnl_conv_algo_name(pm) : pc_last_error());
    CHECK(pg && !strcmp(pc_dnnl_conv_algo_name(pg), "winograd"), "auto algorithm, bf16, 128 -> 128: %s",
          pg ? pc_dnnl_conv_algo_name(pg) : pc_last_error());
    pc_dnnl_conv_destroy(pm);
    pc_dnnl_conv_destroy(pg);
    printf("%s winograd conv (block %d): max nerr %.2g (3x3), %.2g (5x5); direct on the same "
           "shapes %.2g\n", check_failed == before ? "ok  " : "FAIL", B, worst[0], worst[1],
           worst_direct);
}

static void error_tests(void) {
    pc_conv_shape bad = {.n = 1, .c = 3, .h = 4, .w = 4, .k = 4, .kh = 3, .kw = 3, .sh = 1,
                         .sw = 1, .groups = 2};
    pc_dnnl_conv *c = pc_dnnl_conv_create(&bad, 1, PC_DNNL_F32, PC_CONV_AUTO, 0, 0, 0);
    CHECK(c == NULL, "conv create accepted an invalid shape");
    pc_dnnl_conv_destroy(c);
    pc_dense_shape bd = {0, 4, 4};
    pc_dnnl_dense *d = pc_dnnl_dense_create(&bd, 0, PC_DNNL_F32, 0);
    CHECK(d == NULL, "dense create accepted an invalid shape");
    pc_dnnl_dense_destroy(d);
}

/* --------------------------------------------------------- benchmark */

static void set_threads(int n) {
    /* libgomp is loaded by libdnnl; the test itself is not built with -fopenmp */
    void (*set)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    if (set) set(n);
}
static int get_threads(void) {
    int (*get)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_max_threads");
    return get ? get() : -1;
}

static void bench(int threads) {
    set_threads(threads);
    int nthr = get_threads();
    {
        pc_conv_shape s = {.n = 32, .c = 32, .h = 14, .w = 14, .k = 64, .kh = 5, .kw = 5,
                           .sh = 1, .sw = 1, .ph = 2, .pw = 2, .groups = 1};
        pc_conv_shape_finish(&s);
        long nx = (long)s.n * s.c * s.h * s.w, ny = (long)s.n * s.k * s.oh * s.ow,
             nw = (long)s.k * s.c * s.kh * s.kw;
        float *x = rvec(nx), *w = rvec(nw), *b = rvec(s.k), *y = vec(ny), *dy = rvec(ny),
              *dx = vec(nx), *dw = vec(nw), *db = vec(s.k);
        pc_dnnl_conv *p = pc_dnnl_conv_create(&s, 1, PC_DNNL_F32, PC_CONV_AUTO, 0, 0, 0);
        if (p) {
            double flop = 2.0 * s.n * s.k * s.oh * s.ow * (double)(s.c * s.kh * s.kw);
            for (int i = 0; i < 2; i++) { /* warm-up */
                pc_dnnl_conv_forward(p, x, w, b, y);
                pc_dnnl_conv_backward(p, x, w, dy, dx, dw, db);
            }
            int iters = 10;
            double tf = 0, tb = 0;
            for (int i = 0; i < iters; i++) {
                double t0 = pc_now();
                pc_dnnl_conv_forward(p, x, w, b, y);
                double t1 = pc_now();
                pc_dnnl_conv_backward(p, x, w, dy, dx, dw, db);
                tb += pc_now() - t1;
                tf += t1 - t0;
            }
            printf("bench conv n32 c32 14x14 k64 5x5 p2, %d thread(s): fwd %.1f GFLOP/s, "
                   "bwd %.1f GFLOP/s, fwd+bwd %.1f GFLOP/s (%.2f ms/step)\n",
                   nthr, flop * iters / tf * 1e-9, 2 * flop * iters / tb * 1e-9,
                   3 * flop * iters / (tf + tb) * 1e-9, (tf + tb) / iters * 1e3);
        }
        pc_dnnl_conv_destroy(p);
        pc_free(x), pc_free(w), pc_free(b), pc_free(y), pc_free(dy), pc_free(dx), pc_free(dw);
        pc_free(db);
    }
    {
        pc_dense_shape s = {32, 3136, 1024};
        long nx = (long)s.n * s.in, ny = (long)s.n * s.out, nw = (long)s.out * s.in;
        float *x = rvec(nx), *w = rvec(nw), *b = rvec(s.out), *y = vec(ny), *dy = rvec(ny),
              *dx = vec(nx), *dw = vec(nw), *db = vec(s.out);
        pc_dnnl_dense *p = pc_dnnl_dense_create(&s, 1, PC_DNNL_F32, 0);
        if (p) {
            double flop = 2.0 * s.n * (double)s.in * s.out;
            for (int i = 0; i < 2; i++) {
                pc_dnnl_dense_forward(p, x, w, b, y);
                pc_dnnl_dense_backward(p, x, w, dy, dx, dw, db);
            }
            int iters = 10;
            double tf = 0, tb = 0;
            for (int i = 0; i < iters; i++) {
                double t0 = pc_now();
                pc_dnnl_dense_forward(p, x, w, b, y);
                double t1 = pc_now();
                pc_dnnl_dense_backward(p, x, w, dy, dx, dw, db);
                tb += pc_now() - t1;
                tf += t1 - t0;
            }
            printf("bench dense n32 in3136 out1024, %d thread(s): fwd %.1f GFLOP/s, "
                   "bwd %.1f GFLOP/s, fwd+bwd %.1f GFLOP/s (%.2f ms/step)\n",
                   nthr, flop * iters / tf * 1e-9, 2 * flop * iters / tb * 1e-9,
                   3 * flop * iters / (tf + tb) * 1e-9, (tf + tb) / iters * 1e3);
        }
        pc_dnnl_dense_destroy(p);
        pc_free(x), pc_free(w), pc_free(b), pc_free(y), pc_free(dy), pc_free(dx), pc_free(dw);
        pc_free(db);
    }
}

/* The narrow kernel (at most 8 -> 8 channels into 16-channel blocks, from plain images or
 * such blocks), alone on any CPU and as the fp32 plan's forward where the activations use
 * blocks of 16: within TOL of the reference with its bias and activation, padded lanes zero,
 * the same bits from one call for all rows as from one call per row (a worker's threads),
 * and the plan's backward after it (its input reordered there) the reference's. Random
 * shapes cover padding, strides, dilation, rows shorter than a run and runs' tails. */
static void narrow_conv_tests(void) {
    const double before_max = max_nerr;
    for (int t = 0; t < 40; t++) {
        const int r = rnd_int(1, 3) * 2 - 1, dil = rnd_int(1, 2), stride = rnd_int(1, 2);
        pc_conv_shape s = {.n = rnd_int(1, 3), .c = rnd_int(1, 8), .k = rnd_int(1, 8), .kh = r,
                           .kw = r, .sh = stride, .sw = stride, .ph = rnd_int(0, r / 2 * dil),
                           .groups = 1, .dil_h = dil, .dil_w = dil};
        s.pw = s.ph;
        s.h = rnd_int((r - 1) * dil + 1, 20), s.w = rnd_int((r - 1) * dil + 1, 33);
        if (t == 0) s = (pc_conv_shape){.n = 2, .c = 8, .h = 30, .w = 30, .k = 8, .kh = 3, .kw = 3,
                                        .sh = 1, .sw = 1, .groups = 1}; /* minixception's */
        CHECK(pc_conv_shape_finish(&s) == 0, "narrow shape %d", t);
        const int x_block = t % 2 ? 16 : 0, act = t % 3 == 0 ? 0 : t % 3 == 1 ? 1 : 6;
        const int has_bias = t % 4 != 3;
        char d[128];
        snprintf(d, sizeof d, "n%d c%d %dx%d k%d %dx%d s%d p%d d%d x_block %d act %d bias %d", s.n,
                 s.c, s.h, s.w, s.k, r, r, stride, s.ph, dil, x_block, act, has_bias);
        const long hw = (long)s.h * s.w, ohw = (long)s.oh * s.ow, nx = (long)s.n * s.c * hw;
        const long ny = (long)s.n * s.k * ohw, nyb = (long)s.n * fast_blocked_size(s.k, ohw, 16);
        const long nw = (long)s.k * s.c * r * r;
        float *x = rvec(nx), *w = rvec(nw), *b = rvec(s.k), *yr = vec(ny), *y = vec(nyb);
        float *y2 = vec(nyb), *wp = vec(fast_narrow_conv_wpack_floats(&s));
        float *xb = x_block ? blocked_copy(s.n, s.c, hw, 16, x) : NULL;
        const float *xin = x_block ? xb : x;
        ref_conv2d_forward(&s, x, w, has_bias ? b : NULL, yr);
        if (act == 1) ref_relu_forward(ny, yr, yr);
        if (act == 6) ref_clip_forward(ny, 0, 6, yr, yr);
        CHECK(fast_narrow_conv_applies(&s, x_block, 16), "narrow applies: %s", d);
        fast_narrow_conv_pack(&s, w, wp);
        poison(y, nyb), poison(y2, nyb);
        fast_narrow_conv_rows(0, s.n * s.oh, &s, x_block, xin, wp, has_bias ? b : NULL, act, y);
        cmp_blocked(d, s.n, s.k, ohw, 16, y, yr, TOL);
        for (int row = 0; row < s.n * s.oh; row++)
            fast_narrow_conv_rows(row, row + 1, &s, x_block, xin, wp, has_bias ? b : NULL, act, y2);
        CHECK(same_bits(y, y2, nyb), "narrow conv row by row differs: %s", d);
        if (pc_dnnl_activation_block() == 16) {
            /* the plan: its forward is the kernel's, its backward the reference's */
            pc_dnnl_conv *p = pc_dnnl_conv_create(&s, has_bias, PC_DNNL_F32, PC_CONV_AUTO, act,
                                                  x_block, 16);
            CHECK(p != NULL, "narrow plan %s: %s", d, pc_last_error());
            if (p) {
                float *dy = rvec(ny), *dyb = blocked_copy(s.n, s.k, ohw, 16, dy);
                float *dxr = vec(nx), *dwr = vec(nw), *dbr = vec(s.k), *dw = vec(nw), *db = vec(s.k);
                for (long i = 0; i < ny; i++) if (yr[i] <= 0) dy[i] = 0;
                pc_free(dyb);
                dyb = blocked_copy(s.n, s.k, ohw, 16, dy);
                ref_conv2d_backward(&s, x, w, dy, dxr, dwr, has_bias ? dbr : NULL);
                poison(y2, nyb);
                pc_dnnl_conv_forward(p, xin, w, b, y2);
                CHECK(same_bits(y, y2, nyb), "narrow plan forward is not the kernel's: %s", d);
                pc_dnnl_conv_backward(p, xin, w, dyb, NULL, dw, has_bias ? db : NULL);
                cmp("narrow plan dw", d, dw, dwr, nw, TOL);
                if (has_bias) cmp("narrow plan db", d, db, dbr, s.k, TOL);
                pc_free(dy), pc_free(dyb), pc_free(dxr), pc_free(dwr), pc_free(dbr);
                pc_free(dw), pc_free(db);
            }
            pc_dnnl_conv_destroy(p);
        }
        pc_free(x), pc_free(w), pc_free(b), pc_free(yr), pc_free(y), pc_free(y2), pc_free(wp);
        pc_free(xb);
    }
    printf("narrow conv: max normalized error %.2g\n", max_nerr);
    max_nerr = fmax(max_nerr, before_max);
}

int main(void) {
    CHECK(pc_dnnl_available(), "oneDNN engine: %s", pc_last_error());
    if (!pc_dnnl_available()) return check_summary();
    conv_tests();
    dense_tests();
    /* bf16: within BF16_TOL of the fp32 reference, yet measurably rounded (really bf16) */
    prec = PC_DNNL_BF16;
    tol = BF16_TOL;
    conv_tests();
    CHECK(max_nerr > 10 * TOL, "bf16 conv no less exact than fp32 (max nerr %.2g): not bf16?", max_nerr);
    dense_tests();
    CHECK(max_nerr > 10 * TOL, "bf16 dense no less exact than fp32 (max nerr %.2g): not bf16?", max_nerr);
    printf("bf16 %s; on bf16-exact inputs, fp32's tolerance:\n",
           pc_dnnl_bf16_native() ? "native" : "emulated (no bf16 kernels in oneDNN on this CPU)");
    bf16_inputs = 1;
    tol = TOL;
    conv_tests();
    dense_tests();
    bf16_inputs = 0;
    prec = PC_DNNL_F32;
    tol = TOL;
    weights_version_tests();
    pack_tests();
    pool_tests();
    bn_tests();
    gelu_tests();
    fast_maxpool_tests();
    blocked_tests();
    narrow_conv_tests();
    winograd_tests();
    error_tests();
    int default_threads = get_threads();
    bench(1);
    set_threads(default_threads);
    return check_summary();
}

#endif
