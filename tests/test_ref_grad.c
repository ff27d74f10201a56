/* Reference kernels: analytic gradients of the double kernels against central finite
 * differences, float kernels against double kernels, and a few hand-computed cases. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "kernels/fast/fast.h"
#include "kernels/ref/ref.h"
#include "kernels/ref/ref_double.h"

#define FD_H 1e-6
#define GRAD_TOL 1e-6
#define FLOAT_TOL 1e-5

/* ------------------------------------------------------------------ helpers */

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rng_next(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static double rng_unif(void) { return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0); }
static double rng_sym(void) { return 2.0 * rng_unif() - 1.0; }
static int rng_int(int n) { return (int)(rng_next() % (uint64_t)n); }

static double *dnew(int64_t n) {
    double *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) abort();
    for (int64_t i = 0; i < n; i++) p[i] = NAN; /* outputs must be overwritten */
    return p;
}
static float *fnew(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) abort();
    for (int64_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}
static double *drand_new(int64_t n, double lo, double hi) {
    double *p = dnew(n);
    for (int64_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * rng_unif();
    return p;
}
static float *to_float(const double *p, int64_t n) {
    float *f = fnew(n);
    for (int64_t i = 0; i < n; i++) f[i] = (float)p[i];
    return f;
}
static double ddot(const double *a, const double *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
/* max_i |a-b| / max(1, |a|+|b|) (NaN counts as infinite error) */
static double grad_err(const double *a, const double *b, int64_t n) {
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]), s = fabs(a[i]) + fabs(b[i]);
        double r = d / (s > 1 ? s : 1);
        if (!(r <= e)) e = r != r ? INFINITY : r;
    }
    return e;
}
/* ||f - d|| / max(||d||, tiny) */
static double nerr_fd(const float *f, const double *d, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = (double)f[i] - d[i];
        num += e * e;
        den += d[i] * d[i];
    }
    double r = sqrt(num) / (den > 1e-30 ? sqrt(den) : 1.0);
    return r != r ? INFINITY : r;
}
static double max_abs_diff(const double *a, const double *b, int64_t n) {
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (!(d <= e)) e = d != d ? INFINITY : d;
    }
    return e;
}

typedef double (*loss_fn)(void *ctx);

/* Central differences of f with respect to param[0..n). */
static void fd_grad(loss_fn f, void *ctx, double *param, int64_t n, double *out) {
    for (int64_t i = 0; i < n; i++) {
        double v = param[i];
        param[i] = v + FD_H;
        double lp = f(ctx);
        param[i] = v - FD_H;
        double lm = f(ctx);
        param[i] = v;
        out[i] = (lp - lm) / (2 * FD_H);
    }
}

/* Compare the analytic gradient with finite differences; reports the error. */
static void check_fd(const char *layer, int idx, const char *what, loss_fn f, void *ctx,
                     double *param, int64_t n, const double *analytic) {
    double *fd = dnew(n);
    fd_grad(f, ctx, param, n, fd);
    double e = grad_err(analytic, fd, n);
    CHECK(e < GRAD_TOL, "%s case %d: %s rel err %.3g", layer, idx, what, e);
    free(fd);
}

/* -------------------------------------------------------------------- conv2d */

typedef struct {
    pc_conv_shape s;
    double *x, *w, *b, *r, *y;
} conv_ctx;

static double conv_loss(void *p) {
    conv_ctx *c = p;
    refd_conv2d_forward(&c->s, c->x, c->w, c->b, c->y);
    return ddot(c->r, c->y, (int64_t)c->s.n * c->s.k * c->s.oh * c->s.ow);
}

static void test_conv_case(int idx, pc_conv_shape s) {
    CHECK(pc_conv_shape_finish(&s) == 0, "conv case %d: bad shape", idx);
    const int64_t nx = (int64_t)s.n * s.c * s.h * s.w;
    const int64_t nw = (int64_t)s.k * (s.c / s.groups) * s.kh * s.kw;
    const int64_t ny = (int64_t)s.n * s.k * s.oh * s.ow;
    conv_ctx c = {s, drand_new(nx, -1, 1), drand_new(nw, -1, 1), drand_new(s.k, -1, 1),
                  drand_new(ny, -1, 1), dnew(ny)};
    double *dx = dnew(nx), *dw = dnew(nw), *db = dnew(s.k);
    refd_conv2d_backward(&s, c.x, c.w, c.r, dx, dw, db);
    check_fd("conv", idx, "dx", conv_loss, &c, c.x, nx, dx);
    check_fd("conv", idx, "dw", conv_loss, &c, c.w, nw, dw);
    check_fd("conv", idx, "db", conv_loss, &c, c.b, s.k, db);

    /* NULL outputs are skipped and do not change the others */
    double *dw2 = dnew(nw), *dx2 = dnew(nx);
    refd_conv2d_backward(&s, c.x, c.w, c.r, NULL, dw2, NULL);
    refd_conv2d_backward(&s, c.x, c.w, c.r, dx2, NULL, NULL);
    CHECK(max_abs_diff(dw, dw2, nw) == 0, "conv case %d: dw alone differs", idx);
    CHECK(max_abs_diff(dx, dx2, nx) == 0, "conv case %d: dx alone differs", idx);
    /* no bias == zero bias */
    double *y0 = dnew(ny), *y1 = dnew(ny), *zb = dnew(s.k);
    for (int i = 0; i < s.k; i++) zb[i] = 0;
    refd_conv2d_forward(&s, c.x, c.w, NULL, y0);
    refd_conv2d_forward(&s, c.x, c.w, zb, y1);
    CHECK(max_abs_diff(y0, y1, ny) == 0, "conv case %d: NULL bias differs", idx);

    /* float kernels agree with double kernels */
    refd_conv2d_forward(&s, c.x, c.w, c.b, c.y);
    float *fx = to_float(c.x, nx), *fw = to_float(c.w, nw), *fb = to_float(c.b, s.k);
    float *fr = to_float(c.r, ny), *fy = fnew(ny);
    float *fdx = fnew(nx), *fdw = fnew(nw), *fdb = fnew(s.k);
    ref_conv2d_forward(&s, fx, fw, fb, fy);
    ref_conv2d_backward(&s, fx, fw, fr, fdx, fdw, fdb);
    CHECK(nerr_fd(fy, c.y, ny) < FLOAT_TOL, "conv case %d: float y err %.3g", idx,
          nerr_fd(fy, c.y, ny));
    CHECK(nerr_fd(fdx, dx, nx) < FLOAT_TOL, "conv case %d: float dx err %.3g", idx,
          nerr_fd(fdx, dx, nx));
    CHECK(nerr_fd(fdw, dw, nw) < FLOAT_TOL, "conv case %d: float dw err %.3g", idx,
          nerr_fd(fdw, dw, nw));
    CHECK(nerr_fd(fdb, db, s.k) < FLOAT_TOL, "conv case %d: float db err %.3g", idx,
          nerr_fd(fdb, db, s.k));

    free(c.x), free(c.w), free(c.b), free(c.r), free(c.y);
    free(dx), free(dw), free(db), free(dw2), free(dx2), free(y0), free(y1), free(zb);
    free(fx), free(fw), free(fb), free(fr), free(fy), free(fdx), free(fdw), free(fdb);
}

static void test_conv(void) {
    /* n, c, h, w, k, kh, kw, sh, sw, ph, pw, groups, dilation h, w */
    static const int cases[][14] = {
        {2, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1},  /* plain 3x3 same */
        {2, 4, 7, 6, 6, 3, 3, 2, 2, 1, 1, 2, 1, 1},  /* stride 2, groups 2 */
        {2, 4, 6, 5, 4, 3, 3, 1, 1, 1, 1, 4, 1, 1},  /* depthwise */
        {1, 4, 7, 7, 8, 3, 2, 2, 1, 0, 1, 4, 1, 1},  /* depthwise x2, non-square kernel/stride */
        {2, 2, 4, 9, 3, 3, 5, 1, 3, 1, 2, 1, 1, 1},  /* non-square everything */
        {1, 3, 3, 4, 2, 5, 3, 1, 1, 2, 1, 1, 1, 1},  /* kernel taller than the input */
        {2, 3, 8, 7, 4, 2, 2, 3, 3, 0, 0, 1, 1, 1},  /* stride > kernel: skipped inputs */
        {1, 6, 5, 5, 6, 1, 1, 2, 2, 0, 0, 3, 1, 1},  /* 1x1, stride 2, groups 3 */
        {3, 1, 4, 4, 2, 4, 4, 1, 1, 3, 3, 1, 1, 1},  /* "full" padding */
        {2, 2, 9, 8, 4, 5, 5, 2, 2, 2, 2, 2, 1, 1},  /* 5x5 stride 2 pad 2 */
        {2, 3, 7, 7, 4, 3, 3, 1, 1, 2, 2, 1, 2, 2},  /* dilation 2, "same" */
        {1, 4, 9, 8, 4, 3, 3, 2, 2, 1, 3, 2, 3, 2},  /* dilation 3x2, strided, grouped */
        {2, 4, 6, 6, 4, 3, 3, 1, 1, 4, 4, 4, 4, 4},  /* depthwise, dilation 4: taps in padding */
        {1, 2, 8, 9, 3, 2, 3, 1, 2, 0, 1, 1, 5, 3},  /* even non-square kernel dilated */
    };
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
        const int *a = cases[i];
        pc_conv_shape s = {.n = a[0], .c = a[1], .h = a[2], .w = a[3], .k = a[4], .kh = a[5],
                           .kw = a[6], .sh = a[7], .sw = a[8], .ph = a[9], .pw = a[10],
                           .groups = a[11], .dil_h = a[12], .dil_w = a[13]};
        test_conv_case(i, s);
    }
}

static void test_conv_hand(void) {
    /* 1x1x3x3 input 1..9 */
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    /* Laplacian, padding 1, bias 0.5 */
    pc_conv_shape s = {.n = 1, .c = 1, .h = 3, .w = 3, .k = 1, .kh = 3, .kw = 3, .sh = 1,
                       .sw = 1, .ph = 1, .pw = 1, .groups = 1};
    CHECK(pc_conv_shape_finish(&s) == 0 && s.oh == 3 && s.ow == 3, "hand conv shape");
    float lap[9] = {0, 1, 0, 1, -4, 1, 0, 1, 0}, b = 0.5f, y[9];
    const float want[9] = {2, 1, -4, -3, 0, -7, -16, -11, -22};
    ref_conv2d_forward(&s, x, lap, &b, y);
    int ok = 1;
    for (int i = 0; i < 9; i++) ok &= y[i] == want[i] + 0.5f;
    CHECK(ok, "hand conv laplacian: y[0]=%g y[8]=%g", y[0], y[8]);

    /* asymmetric kernel, no padding: cross-correlation, not convolution */
    pc_conv_shape s2 = s;
    s2.ph = s2.pw = 0;
    pc_conv_shape_finish(&s2);
    float ker[9] = {1, 2, 0, 0, 0, 0, 0, 0, -1}, y2 = NAN;
    ref_conv2d_forward(&s2, x, ker, NULL, &y2);
    CHECK(s2.oh == 1 && s2.ow == 1 && y2 == 1 + 4 - 9, "hand conv correlation: %g", y2);
    /* its gradients: dx = dy * kernel, dw = dy * x, db = dy */
    float dy = 2, dx[9], dw[9], db = NAN;
    ref_conv2d_backward(&s2, x, ker, &dy, dx, dw, &db);
    ok = db == 2;
    for (int i = 0; i < 9; i++) ok &= dx[i] == 2 * ker[i] && dw[i] == 2 * x[i];
    CHECK(ok, "hand conv backward");

    /* depthwise 2 channels, 2x2 kernels, stride 2, on 1x2x2x2: one tap per channel */
    pc_conv_shape s3 = {.n = 1, .c = 2, .h = 2, .w = 2, .k = 2, .kh = 2, .kw = 2, .sh = 2,
                        .sw = 2, .ph = 0, .pw = 0, .groups = 2};
    pc_conv_shape_finish(&s3);
    float x3[8] = {1, 2, 3, 4, 10, 20, 30, 40}, w3[8] = {1, 0, 0, 1, 0, 1, 1, 0}, y3[2];
    ref_conv2d_forward(&s3, x3, w3, NULL, y3);
    CHECK(y3[0] == 5 && y3[1] == 50, "hand depthwise: %g %g", y3[0], y3[1]);
}

/* --------------------------------------------------------------------- dense */

typedef struct {
    pc_dense_shape s;
    double *x, *w, *b, *r, *y;
} dense_ctx;

static double dense_loss(void *p) {
    dense_ctx *c = p;
    refd_dense_forward(&c->s, c->x, c->w, c->b, c->y);
    return ddot(c->r, c->y, (int64_t)c->s.n * c->s.out);
}

static void test_dense(void) {
    static const int cases[][3] = {{3, 5, 4}, {1, 7, 2}, {4, 1, 3}, {2, 16, 10}};
    for (int idx = 0; idx < (int)(sizeof cases / sizeof cases[0]); idx++) {
        pc_dense_shape s = {cases[idx][0], cases[idx][1], cases[idx][2]};
        const int64_t nx = (int64_t)s.n * s.in, nw = (int64_t)s.out * s.in,
                      ny = (int64_t)s.n * s.out;
        dense_ctx c = {s, drand_new(nx, -1, 1), drand_new(nw, -1, 1), drand_new(s.out, -1, 1),
                       drand_new(ny, -1, 1), dnew(ny)};
        double *dx = dnew(nx), *dw = dnew(nw), *db = dnew(s.out);
        refd_dense_backward(&s, c.x, c.w, c.r, dx, dw, db);
        check_fd("dense", idx, "dx", dense_loss, &c, c.x, nx, dx);
        check_fd("dense", idx, "dw", dense_loss, &c, c.w, nw, dw);
        check_fd("dense", idx, "db", dense_loss, &c, c.b, s.out, db);

        refd_dense_forward(&s, c.x, c.w, c.b, c.y);
        float *fx = to_float(c.x, nx), *fw = to_float(c.w, nw), *fb = to_float(c.b, s.out);
        float *fr = to_float(c.r, ny), *fy = fnew(ny);
        float *fdx = fnew(nx), *fdw = fnew(nw), *fdb = fnew(s.out);
        ref_dense_forward(&s, fx, fw, fb, fy);
        ref_dense_backward(&s, fx, fw, fr, fdx, fdw, fdb);
        CHECK(nerr_fd(fy, c.y, ny) < FLOAT_TOL, "dense case %d: float y", idx);
        CHECK(nerr_fd(fdx, dx, nx) < FLOAT_TOL, "dense case %d: float dx", idx);
        CHECK(nerr_fd(fdw, dw, nw) < FLOAT_TOL, "dense case %d: float dw", idx);
        CHECK(nerr_fd(fdb, db, s.out) < FLOAT_TOL, "dense case %d: float db", idx);
        /* NULL bias == zero bias */
        double *y0 = dnew(ny);
        refd_dense_forward(&s, c.x, c.w, NULL, y0);
        int ok = 1;
        for (int n = 0; n < s.n; n++)
            for (int o = 0; o < s.out; o++)
                ok &= fabs(y0[n * s.out + o] + c.b[o] - c.y[n * s.out + o]) < 1e-12;
        CHECK(ok, "dense case %d: NULL bias", idx);

        free(c.x), free(c.w), free(c.b), free(c.r), free(c.y), free(dx), free(dw), free(db);
        free(fx), free(fw), free(fb), free(fr), free(fy), free(fdx), free(fdw), free(fdb);
        free(y0);
    }
    /* hand: x (1,2) = [1,2], W (2,2) = [[1,2],[3,4]], b = [0.5,-1] -> y = [5.5, 10] */
    pc_dense_shape s = {1, 2, 2};
    float x[2] = {1, 2}, w[4] = {1, 2, 3, 4}, b[2] = {0.5f, -1}, y[2];
    ref_dense_forward(&s, x, w, b, y);
    CHECK(y[0] == 5.5f && y[1] == 10, "hand dense: %g %g", y[0], y[1]);
}

/* ------------------------------------------------------------------- pooling */

typedef struct {
    pc_pool_shape s;
    double *x, *r, *y;
    int32_t *am;
    int avg;
} pool_ctx;

static double pool_loss(void *p) {
    pool_ctx *c = p;
    if (c->avg)
        refd_avgpool_forward(&c->s, c->x, c->y);
    else
        refd_maxpool_forward(&c->s, c->x, c->y, c->am);
    return ddot(c->r, c->y, (int64_t)c->s.n * c->s.c * c->s.oh * c->s.ow);
}

static void test_pool(void) {
    /* n, c, h, w, kh, kw, sh, sw, ph, pw, ceil_mode, count_pad (average) */
    static const int cases[][12] = {
        {2, 2, 4, 4, 2, 2, 2, 2, 0, 0, 0, 0}, {1, 3, 5, 5, 3, 3, 2, 2, 1, 1, 0, 0},
        {2, 1, 5, 6, 3, 2, 1, 2, 1, 1, 0, 0}, {1, 2, 7, 5, 3, 3, 1, 1, 1, 1, 0, 0},
        {1, 1, 6, 7, 2, 3, 3, 2, 1, 1, 0, 0}, {2, 2, 5, 5, 5, 5, 1, 1, 2, 2, 0, 0},
        {1, 2, 7, 7, 3, 3, 2, 2, 0, 0, 0, 0},
        {1, 2, 7, 7, 2, 2, 2, 2, 0, 0, 1, 0}, /* ceil: a last window cut at the border */
        {2, 1, 6, 8, 3, 3, 2, 2, 1, 1, 1, 1}, /* ceil cutting past the padding, padding counted */
        {1, 2, 5, 6, 3, 3, 1, 1, 1, 1, 0, 1}, /* Inception's 3x3/1 average, padding counted */
        {1, 1, 9, 7, 3, 2, 3, 2, 1, 1, 1, 1}, /* ceil, non-square, stride 3 */
        {1, 1, 10, 10, 3, 3, 2, 2, 1, 1, 1, 0}, /* ceil giving the floor size (the rule) */
    };
    for (int idx = 0; idx < (int)(sizeof cases / sizeof cases[0]); idx++) {
        const int *a = cases[idx];
        pc_pool_shape s = {.n = a[0], .c = a[1], .h = a[2], .w = a[3], .kh = a[4], .kw = a[5],
                           .sh = a[6], .sw = a[7], .ph = a[8], .pw = a[9], .ceil_mode = a[10],
                           .count_pad = a[11]};
        CHECK(pc_pool_shape_finish(&s) == 0, "pool case %d: bad shape", idx);
        const int64_t nx = (int64_t)s.n * s.c * s.h * s.w, ny = (int64_t)s.n * s.c * s.oh * s.ow;
        /* distinct values at least 0.05 apart (in random order), so no max ever ties or
         * switches under a 1e-6 perturbation; negative ones test that padding never wins */
        double *x = dnew(nx);
        int64_t *perm = malloc((size_t)nx * sizeof *perm);
        for (int64_t i = 0; i < nx; i++) perm[i] = i;
        for (int64_t i = nx - 1; i > 0; i--) {
            int64_t j = rng_int((int)(i + 1)), t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        for (int64_t i = 0; i < nx; i++)
            x[i] = 0.1 * (double)perm[i] - 0.07 * (double)nx + 0.04 * rng_unif();
        free(perm);

        for (int avg = 0; avg <= 1; avg++) {
            const char *name = avg ? "avgpool" : "maxpool";
            pool_ctx c = {s, x, drand_new(ny, -1, 1), dnew(ny), malloc((size_t)ny * 4), avg};
            double *dx = dnew(nx);
            pool_loss(&c);
            if (avg)
                refd_avgpool_backward(&s, c.r, dx);
            else
                refd_maxpool_backward(&s, c.am, c.r, dx);
            check_fd(name, idx, "dx", pool_loss, &c, x, nx, dx);
            pool_loss(&c); /* restore y and argmax */

            float *fx = to_float(x, nx), *fr = to_float(c.r, ny), *fy = fnew(ny),
                  *fdx = fnew(nx);
            if (avg) {
                ref_avgpool_forward(&s, fx, fy);
                ref_avgpool_backward(&s, fr, fdx);
            } else {
                int32_t *fam = malloc((size_t)ny * 4);
                ref_maxpool_forward(&s, fx, fy, fam);
                CHECK(memcmp(fam, c.am, (size_t)ny * 4) == 0, "maxpool case %d: argmax", idx);
                ref_maxpool_backward(&s, fam, fr, fdx);
                /* argmax may be NULL in inference */
                float *fy2 = fnew(ny);
                ref_maxpool_forward(&s, fx, fy2, NULL);
                CHECK(memcmp(fy, fy2, (size_t)ny * 4) == 0, "maxpool case %d: NULL argmax", idx);
                free(fam), free(fy2);
            }
            CHECK(nerr_fd(fy, c.y, ny) < FLOAT_TOL, "%s case %d: float y", name, idx);
            CHECK(nerr_fd(fdx, dx, nx) < FLOAT_TOL, "%s case %d: float dx", name, idx);
            free(c.r), free(c.y), free(c.am), free(dx), free(fx), free(fr), free(fy), free(fdx);
        }
        free(x);
    }
}

static void test_pool_hand(void) {
    /* 2x2 stride 2 maxpool on 4x4, including a three-way tie (first wins) */
    pc_pool_shape s = {.n = 1, .c = 1, .h = 4, .w = 4, .kh = 2, .kw = 2, .sh = 2, .sw = 2};
    pc_pool_shape_finish(&s);
    float x[16] = {1, 3, 2, 0, 4, 2, 1, 5, 0, 0, 7, 7, 6, 1, 7, 2}, y[4];
    int32_t am[4];
    ref_maxpool_forward(&s, x, y, am);
    CHECK(y[0] == 4 && y[1] == 5 && y[2] == 6 && y[3] == 7, "hand maxpool y");
    CHECK(am[0] == 4 && am[1] == 7 && am[2] == 12 && am[3] == 10,
          "hand maxpool argmax %d %d %d %d", am[0], am[1], am[2], am[3]);
    float dy[4] = {1, 2, 3, 4}, dx[16];
    ref_maxpool_backward(&s, am, dy, dx);
    float want[16] = {0};
    want[4] = 1, want[7] = 2, want[12] = 3, want[10] = 4;
    CHECK(memcmp(dx, want, sizeof dx) == 0, "hand maxpool dx");

    /* all-negative input with padding: the zero padding never wins */
    pc_pool_shape s2 = {.n = 1, .c = 1, .h = 2, .w = 2, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                        .ph = 1, .pw = 1};
    pc_pool_shape_finish(&s2);
    float x2[4] = {-1, -2, -3, -4}, y2[4];
    int32_t am2[4];
    ref_maxpool_forward(&s2, x2, y2, am2);
    int ok = 1;
    for (int i = 0; i < 4; i++) ok &= y2[i] == -1 && am2[i] == 0;
    CHECK(ok, "hand maxpool negative padding: %g %d", y2[3], am2[3]);

    /* ceil-mode sizes, as PyTorch's nn.MaxPool2d(k, s, p, ceil_mode=True) gives them
     * (GoogLeNet's 112 -> 56 -> 28; a last window starting in the padding is dropped) */
    static const int sizes[][5] = {{112, 3, 2, 0, 56}, {56, 3, 2, 0, 28}, {14, 2, 2, 0, 7},
                                   {10, 3, 2, 1, 6}, {6, 3, 2, 1, 4}, {7, 2, 2, 0, 4}};
    for (int i = 0; i < 6; i++)
        CHECK(pc_pool_out_size(sizes[i][0], sizes[i][1], sizes[i][2], sizes[i][3], 1) ==
                  sizes[i][4], "ceil-mode size of %d: %d", sizes[i][0],
              pc_pool_out_size(sizes[i][0], sizes[i][1], sizes[i][2], sizes[i][3], 1));
    /* nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=True) on 1..16 (4x4): the
     * last column's windows count the padding column but not the column past it */
    pc_pool_shape s4 = {.n = 1, .c = 1, .h = 4, .w = 4, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
                        .ph = 1, .pw = 1, .ceil_mode = 1, .count_pad = 1};
    CHECK(pc_pool_shape_finish(&s4) == 0 && s4.oh == 3 && s4.ow == 3, "ceil avgpool shape");
    float x4[16], y4[9];
    for (int i = 0; i < 16; i++) x4[i] = (float)(i + 1);
    const float want4[9] = {14 / 9.f, 30 / 9.f, 2, 57 / 9.f, 11, 6, 4.5f, 7.5f, 4};
    ref_avgpool_forward(&s4, x4, y4);
    ok = 1;
    for (int i = 0; i < 9; i++) ok &= fabsf(y4[i] - want4[i]) < 1e-6f;
    CHECK(ok, "hand avgpool ceil_mode count_include_pad: %g %g %g", y4[0], y4[2], y4[8]);

    /* 3x3 stride 1 pad 1 avgpool on 1..9, count_include_pad=False */
    pc_pool_shape s3 = {.n = 1, .c = 1, .h = 3, .w = 3, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                        .ph = 1, .pw = 1};
    pc_pool_shape_finish(&s3);
    float x3[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, y3[9];
    const float want3[9] = {3, 3.5f, 4, 4.5f, 5, 5.5f, 6, 6.5f, 7};
    ref_avgpool_forward(&s3, x3, y3);
    ok = 1;
    for (int i = 0; i < 9; i++) ok &= fabsf(y3[i] - want3[i]) < 1e-6f;
    CHECK(ok, "hand avgpool: %g %g %g", y3[0], y3[1], y3[4]);
    float dy3[9], dx3[9];
    for (int i = 0; i < 9; i++) dy3[i] = 1;
    ref_avgpool_backward(&s3, dy3, dx3);
    const double corner = 1 / 4. + 1 / 6. + 1 / 6. + 1 / 9.;
    const double edge = 2 / 4. + 3 / 6. + 1 / 9.; /* (0,1): in 6 windows */
    const double centre = 4 / 4. + 4 / 6. + 1 / 9.;
    CHECK(fabs(dx3[0] - corner) < 1e-6 && fabs(dx3[8] - corner) < 1e-6 &&
              fabs(dx3[1] - edge) < 1e-6 && fabs(dx3[3] - edge) < 1e-6 &&
              fabs(dx3[4] - centre) < 1e-6,
          "hand avgpool dx: %g %g %g", dx3[0], dx3[1], dx3[4]);
}

/* ---------------------------------------------------------------- batch norm */

typedef struct {
    pc_bn_shape s;
    double *x, *gamma, *beta, *r, *y;
} bn_ctx;

static double bn_loss(void *p) {
    bn_ctx *c = p;
    double mean[64], var[64], is[64];
    refd_bn_forward_train(&c->s, c->x, c->gamma, c->beta, c->y, mean, var, is);
    return ddot(c->r, c->y, (int64_t)c->s.n * c->s.c * c->s.hw);
}

static void test_bn(void) {
    /* (M = N*HW = 2 is degenerate: xhat = +-1, dx cancels to ~0; FD still fine, float
     * comparison not meaningful, so the smallest M here is 5) */
    static const int cases[][3] = {{3, 2, 5}, {5, 3, 1}, {4, 1, 6}, {1, 2, 9}, {2, 4, 7}};
    for (int idx = 0; idx < (int)(sizeof cases / sizeof cases[0]); idx++) {
        pc_bn_shape s = {cases[idx][0], cases[idx][1], cases[idx][2], 1e-5f};
        const int C = s.c;
        const int64_t nx = (int64_t)s.n * C * s.hw;
        bn_ctx c = {s, drand_new(nx, -1, 1), drand_new(C, 0.5, 1.5), drand_new(C, -1, 1),
                    drand_new(nx, -1, 1), dnew(nx)};
        double *mean = dnew(C), *var = dnew(C), *is = dnew(C);
        refd_bn_forward_train(&s, c.x, c.gamma, c.beta, c.y, mean, var, is);
        /* statistics against a direct computation */
        int ok = 1;
        for (int ch = 0; ch < C; ch++) {
            double sum = 0, sq = 0;
            for (int n = 0; n < s.n; n++)
                for (int i = 0; i < s.hw; i++) sum += c.x[((int64_t)n * C + ch) * s.hw + i];
            double mu = sum / ((double)s.n * s.hw);
            for (int n = 0; n < s.n; n++)
                for (int i = 0; i < s.hw; i++) {
                    double d = c.x[((int64_t)n * C + ch) * s.hw + i] - mu;
                    sq += d * d;
                }
            double v = sq / ((double)s.n * s.hw);
            ok &= fabs(mean[ch] - mu) < 1e-12 && fabs(var[ch] - v) < 1e-12 &&
                  fabs(is[ch] - 1 / sqrt(v + (double)s.eps)) < 1e-9;
        }
        CHECK(ok, "bn case %d: statistics", idx);

        double *dx = dnew(nx), *dg = dnew(C), *dbt = dnew(C);
        refd_bn_backward(&s, c.x, c.gamma, mean, is, c.r, dx, dg, dbt);
        check_fd("bn", idx, "dx", bn_loss, &c, c.x, nx, dx);
        check_fd("bn", idx, "dgamma", bn_loss, &c, c.gamma, C, dg);
        check_fd("bn", idx, "dbeta", bn_loss, &c, c.beta, C, dbt);
        /* dx alone (NULL dgamma/dbeta) */
        double *dx2 = dnew(nx);
        refd_bn_backward(&s, c.x, c.gamma, mean, is, c.r, dx2, NULL, NULL);
        CHECK(max_abs_diff(dx, dx2, nx) == 0, "bn case %d: dx alone", idx);

        /* eval mode with the batch statistics as running statistics reproduces train y */
        double *ye = dnew(nx);
        refd_bn_forward_train(&s, c.x, c.gamma, c.beta, c.y, mean, var, is);
        refd_bn_forward_eval(&s, c.x, c.gamma, c.beta, mean, var, ye);
        CHECK(max_abs_diff(ye, c.y, nx) < 1e-12, "bn case %d: eval vs train", idx);

        /* float vs double */
        float *fx = to_float(c.x, nx), *fg = to_float(c.gamma, C), *fb = to_float(c.beta, C);
        float *fr = to_float(c.r, nx), *fy = fnew(nx), *fm = fnew(C), *fv = fnew(C),
              *fis = fnew(C), *fdx = fnew(nx), *fdg = fnew(C), *fdb = fnew(C), *fye = fnew(nx);
        ref_bn_forward_train(&s, fx, fg, fb, fy, fm, fv, fis);
        ref_bn_backward(&s, fx, fg, fm, fis, fr, fdx, fdg, fdb);
        ref_bn_forward_eval(&s, fx, fg, fb, fm, fv, fye);
        CHECK(nerr_fd(fy, c.y, nx) < FLOAT_TOL, "bn case %d: float y", idx);
        CHECK(nerr_fd(fm, mean, C) < FLOAT_TOL && nerr_fd(fv, var, C) < FLOAT_TOL &&
                  nerr_fd(fis, is, C) < FLOAT_TOL,
              "bn case %d: float stats", idx);
        CHECK(nerr_fd(fdx, dx, nx) < FLOAT_TOL, "bn case %d: float dx %.3g", idx,
              nerr_fd(fdx, dx, nx));
        CHECK(nerr_fd(fdg, dg, C) < FLOAT_TOL, "bn case %d: float dgamma", idx);
        CHECK(nerr_fd(fdb, dbt, C) < FLOAT_TOL, "bn case %d: float dbeta", idx);
        CHECK(nerr_fd(fye, ye, nx) < FLOAT_TOL, "bn case %d: float eval", idx);

        free(c.x), free(c.gamma), free(c.beta), free(c.r), free(c.y), free(mean), free(var);
        free(is), free(dx), free(dg), free(dbt), free(dx2), free(ye);
        free(fx), free(fg), free(fb), free(fr), free(fy), free(fm), free(fv), free(fis);
        free(fdx), free(fdg), free(fdb), free(fye);
    }

    /* hand: x = [1,2,3,4], eps 0: mean 2.5, var 1.25 */
    pc_bn_shape s = {1, 1, 4, 0.0f};
    float x[4] = {1, 2, 3, 4}, g = 2, b = 1, y[4], m, v, is;
    ref_bn_forward_train(&s, x, &g, &b, y, &m, &v, &is);
    int ok = m == 2.5f && v == 1.25f && fabsf(is - (float)(1 / sqrt(1.25))) < 1e-7f;
    for (int i = 0; i < 4; i++) ok &= fabsf(y[i] - (float)(2 * (x[i] - 2.5) / sqrt(1.25) + 1)) < 1e-6f;
    CHECK(ok, "hand bn train: m=%g v=%g y0=%g", m, v, y[0]);
    /* eval: running mean 1, var 3, eps 1: y = 2 * (x-1)/2 + 1 = x */
    pc_bn_shape se = {1, 1, 4, 1.0f};
    float rm = 1, rv = 3, ye[4];
    ref_bn_forward_eval(&se, x, &g, &b, &rm, &rv, ye);
    CHECK(ye[0] == 1 && ye[1] == 2 && ye[2] == 3 && ye[3] == 4, "hand bn eval: %g %g", ye[0],
          ye[3]);
}

/* ---------------------------------------------------------------------- relu */

typedef struct {
    int64_t n;
    double *x, *r, *y;
} relu_ctx;

static double relu_loss(void *p) {
    relu_ctx *c = p;
    refd_relu_forward(c->n, c->x, c->y);
    return ddot(c->r, c->y, c->n);
}

static void test_relu(void) {
    const int64_t n = 37;
    relu_ctx c = {n, dnew(n), drand_new(n, -1, 1), dnew(n)};
    for (int64_t i = 0; i < n; i++) /* away from the kink */
        c.x[i] = (rng_unif() < 0.5 ? -1 : 1) * (0.1 + 0.9 * rng_unif());
    refd_relu_forward(n, c.x, c.y);
    double *dx = dnew(n);
    refd_relu_backward(n, c.y, c.r, dx);
    check_fd("relu", 0, "dx", relu_loss, &c, c.x, n, dx);
    /* in place: dx aliases dy */
    double *buf = dnew(n);
    memcpy(buf, c.r, (size_t)n * sizeof *buf);
    refd_relu_backward(n, c.y, buf, buf);
    CHECK(max_abs_diff(buf, dx, n) == 0, "relu: aliased backward");

    float *fx = to_float(c.x, n), *fy = fnew(n), *fr = to_float(c.r, n), *fdx = fnew(n);
    ref_relu_forward(n, fx, fy);
    ref_relu_backward(n, fy, fr, fdx);
    CHECK(nerr_fd(fy, c.y, n) < FLOAT_TOL && nerr_fd(fdx, dx, n) < FLOAT_TOL, "relu: float");
    ref_relu_backward(n, fy, fr, fr);
    CHECK(memcmp(fr, fdx, (size_t)n * sizeof *fr) == 0, "relu: float aliased backward");

    float hx[4] = {-2, 0, 3, -0.5f}, hy[4], hdy[4] = {1, 2, 3, 4};
    ref_relu_forward(4, hx, hy);
    CHECK(hy[0] == 0 && hy[1] == 0 && hy[2] == 3 && hy[3] == 0, "hand relu");
    ref_relu_backward(4, hy, hdy, hdy);
    CHECK(hdy[0] == 0 && hdy[1] == 0 && hdy[2] == 3 && hdy[3] == 0, "hand relu backward");
    free(c.x), free(c.r), free(c.y), free(dx), free(buf), free(fx), free(fy), free(fr), free(fdx);
}

/* ---------------------------------------------------------------------- gelu */

static double gelu_loss(void *p) {
    relu_ctx *c = p;
    refd_gelu_forward(c->n, c->x, c->y);
    return ddot(c->r, c->y, c->n);
}

static void test_gelu(void) {
    const int64_t n = 41;
    relu_ctx c = {n, drand_new(n, -4, 4), drand_new(n, -1, 1), dnew(n)};
    double *dx = dnew(n);
    refd_gelu_backward(n, c.x, c.r, dx);
    check_fd("gelu", 0, "dx", gelu_loss, &c, c.x, n, dx);
    free(c.x), free(c.r), free(c.y), free(dx);
}

/* ------------------------------------------- element-wise activation layers */

/* One element-wise activation: its double and float reference kernels and the vectorized
 * ones (backward from the forward's input x), checked on [lo, hi] away from its kinks. */
typedef struct {
    const char *name;
    void (*fwd_d)(int64_t, const double *, double *);
    void (*bwd_d)(int64_t, const double *, const double *, double *);
    void (*fwd_f)(int64_t, const float *, float *);
    void (*bwd_f)(int64_t, const float *, const float *, float *);
    void (*fwd_fast)(int64_t, const float *, float *);
    void (*bwd_fast)(int64_t, const float *, const float *, float *);
    double lo, hi;
    double kinks[2]; /* where the derivative jumps (finite differences keep away) */
    int n_kinks;
    double fast_tol; /* 0: the vectorized kernels are bitwise the reference */
} unary_case;

typedef struct {
    const unary_case *u;
    relu_ctx c;
} unary_ctx;

static double unary_loss(void *p) {
    unary_ctx *uc = p;
    uc->u->fwd_d(uc->c.n, uc->c.x, uc->c.y);
    return ddot(uc->c.r, uc->c.y, uc->c.n);
}

static void test_unary(const unary_case *u) {
    const int64_t n = 203; /* not a multiple of any vector width */
    unary_ctx uc = {u, {n, dnew(n), drand_new(n, -1, 1), dnew(n)}};
    for (int64_t i = 0; i < n; i++) {
        double v;
        int near;
        do {
            v = u->lo + (u->hi - u->lo) * rng_unif();
            near = 0;
            for (int k = 0; k < u->n_kinks; k++) near |= fabs(v - u->kinks[k]) < 1e-3;
        } while (near);
        uc.c.x[i] = v;
    }
    double *dx = dnew(n);
    u->bwd_d(n, uc.c.x, uc.c.r, dx);
    check_fd(u->name, 0, "dx", unary_loss, &uc, uc.c.x, n, dx);
    u->fwd_d(n, uc.c.x, uc.c.y);

    float *fx = to_float(uc.c.x, n), *fr = to_float(uc.c.r, n);
    float *fy = fnew(n), *fdx = fnew(n), *gy = fnew(n), *gdx = fnew(n);
    u->fwd_f(n, fx, fy);
    u->bwd_f(n, fx, fr, fdx);
    CHECK(nerr_fd(fy, uc.c.y, n) < FLOAT_TOL && nerr_fd(fdx, dx, n) < FLOAT_TOL,
          "%s: float kernels agree with double", u->name);
    u->fwd_fast(n, fx, gy);
    u->bwd_fast(n, fx, fr, gdx);
    if (u->fast_tol == 0) {
        CHECK(memcmp(gy, fy, sizeof(float) * n) == 0 && memcmp(gdx, fdx, sizeof(float) * n) == 0,
              "%s: vectorized kernels bitwise the reference", u->name);
    } else {
        double ey = 0, edx = 0;
        for (int64_t i = 0; i < n; i++) {
            ey = fmax(ey, fabs(gy[i] - uc.c.y[i]) / fmax(fabs(uc.c.y[i]), 1e-3));
            edx = fmax(edx, fabs(gdx[i] - dx[i]) / fmax(fabs(dx[i]), 1e-3));
        }
        CHECK(ey < u->fast_tol && edx < u->fast_tol,
              "%s: vectorized kernels within %.0e of double: %.2e, %.2e", u->name, u->fast_tol, ey,
              edx);
    }
    u->bwd_fast(n, fx, fr, fr); /* in place: dx aliases dy */
    CHECK(memcmp(fr, gdx, sizeof(float) * n) == 0, "%s: aliased backward", u->name);
    free(uc.c.x), free(uc.c.r), free(uc.c.y), free(dx), free(fx), free(fr), free(fy), free(fdx);
    free(gy), free(gdx);
}

#define COMMA ,
/* The kernels with parameters, at fixed ones: ONNX's default HardSigmoid (0.2, 0.5) and
 * a clip to [-1, 6]. */
#define UNARY_WITH(name, T, suffix, args)                                              \
    static void name##_fwd_##suffix(int64_t n, const T *x, T *y) { name##_forward(n, args, x, y); } \
    static void name##_bwd_##suffix(int64_t n, const T *x, const T *dy, T *dx) {       \
        name##_backward(n, args, x, dy, dx);                                           \
    }
UNARY_WITH(refd_hardsigmoid, double, d, 0.2 COMMA 0.5)
UNARY_WITH(ref_hardsigmoid, float, f, 0.2f COMMA 0.5f)
UNARY_WITH(fast_hardsigmoid, float, f, 0.2f COMMA 0.5f)
UNARY_WITH(refd_clip, double, d, -1.0 COMMA 6.0)
UNARY_WITH(ref_clip, float, f, -1.0f COMMA 6.0f)
UNARY_WITH(fast_clip, float, f, -1.0f COMMA 6.0f)

static void test_unary_kernels(void) {
    static const unary_case cases[] = {
        {"hardswish", refd_hardswish_forward, refd_hardswish_backward, ref_hardswish_forward,
         ref_hardswish_backward, fast_hardswish_forward, fast_hardswish_backward, -5, 5,
         {-3, 3}, 2, 0},
        {"hardsigmoid", refd_hardsigmoid_fwd_d, refd_hardsigmoid_bwd_d, ref_hardsigmoid_fwd_f,
         ref_hardsigmoid_bwd_f, fast_hardsigmoid_fwd_f, fast_hardsigmoid_bwd_f, -4, 4,
         {-2.5, 2.5}, 2, 0},
        {"clip", refd_clip_fwd_d, refd_clip_bwd_d, ref_clip_fwd_f, ref_clip_bwd_f, fast_clip_fwd_f,
         fast_clip_bwd_f, -3, 8, {-1, 6}, 2, 0},
        {"sigmoid", refd_sigmoid_forward, refd_sigmoid_backward, ref_sigmoid_forward,
         ref_sigmoid_backward, fast_sigmoid_forward, fast_sigmoid_backward, -30, 30, {0, 0}, 0,
         1e-6},
        {"silu", refd_silu_forward, refd_silu_backward, ref_silu_forward, ref_silu_backward,
         fast_silu_forward, fast_silu_backward, -30, 30, {0, 0}, 0, 1e-6},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_unary(&cases[i]);
    /* by hand, at and around the kinks */
    float x[6] = {-4, -3, -1.5f, 0, 3, 4}, y[6], dy[6] = {1, 1, 1, 1, 1, 1}, dx[6];
    ref_hardswish_forward(6, x, y);
    ref_hardswish_backward(6, x, dy, dx);
    CHECK(y[0] == 0 && y[1] == 0 && y[2] == -0.375f && y[3] == 0 && y[4] == 3 && y[5] == 4,
          "hand hardswish");
    CHECK(dx[0] == 0 && dx[1] == -0.5f && dx[2] == 0 && dx[3] == 0.5f && dx[4] == 1.5f && dx[5] == 1,
          "hand hardswish backward (PyTorch's values at the kinks)");
    float cx[4] = {-1, 0, 6, 7}, cy[4], cdy[4] = {1, 1, 1, 1}, cdx[4];
    ref_clip_forward(4, 0, 6, cx, cy);
    ref_clip_backward(4, 0, 6, cx, cdy, cdx);
    CHECK(cy[0] == 0 && cy[1] == 0 && cy[2] == 6 && cy[3] == 6 && cdx[0] == 0 && cdx[1] == 0 &&
          cdx[2] == 0 && cdx[3] == 0, "hand relu6: no gradient at the bounds (PyTorch's)");
    float sx[3] = {-100, 0, 100}, sy[3];
    fast_sigmoid_forward(3, sx, sy);
    CHECK(sy[0] >= 0 && sy[0] < 1e-30f && sy[1] == 0.5f && sy[2] == 1,
          "sigmoid saturates without overflow");
}

/* ------------------------------------------------------------------- mul */

typedef struct {
    int n, c;
    int64_t hw, hwb;
    double *a, *b, *r, *y;
} mul_ctx;

static double mul_loss(void *p) {
    mul_ctx *m = p;
    refd_mul_forward(m->n, m->c, m->hw, m->hwb, m->a, m->b, m->y);
    return ddot(m->r, m->y, (int64_t)m->n * m->c * m->hw);
}

/* Finite differences of both inputs; float vs double; the vectorized kernels bitwise the
 * reference on plain tensors and on blocked ones (block 16, 19 channels: a padded block). */
static void test_mul(void) {
    for (int bcast = 0; bcast < 2; bcast++) {
        const int n = 2, c = 19, B = 16;
        const int64_t hw = 7, hwb = bcast ? 1 : hw, na = n * c * hw, nb = n * c * hwb;
        mul_ctx m = {n, c, hw, hwb, drand_new(na, -1, 1), drand_new(nb, -1, 1),
                     drand_new(na, -1, 1), dnew(na)};
        double *da = dnew(na), *db = dnew(nb);
        refd_mul_backward(n, c, hw, hwb, m.a, m.b, m.r, da, db);
        check_fd("mul", bcast, "da", mul_loss, &m, m.a, na, da);
        check_fd("mul", bcast, "db", mul_loss, &m, m.b, nb, db);
        refd_mul_forward(n, c, hw, hwb, m.a, m.b, m.y);
        float *fa = to_float(m.a, na), *fb = to_float(m.b, nb), *fr = to_float(m.r, na);
        float *fy = fnew(na), *fda = fnew(na), *fdb = fnew(nb);
        ref_mul_forward(n, c, hw, hwb, fa, fb, fy);
        ref_mul_backward(n, c, hw, hwb, fa, fb, fr, fda, fdb);
        CHECK(nerr_fd(fy, m.y, na) < FLOAT_TOL && nerr_fd(fda, da, na) < FLOAT_TOL &&
              nerr_fd(fdb, db, nb) < FLOAT_TOL, "mul %d: float kernels agree with double", bcast);
        float *gy = fnew(na), *gda = fnew(na), *gdb = fnew(nb);
        fast_mul_forward(n, c, hw, hwb, 1, fa, fb, gy);
        fast_mul_backward(n, c, hw, hwb, 1, fa, fb, fr, gda, gdb);
        CHECK(!memcmp(gy, fy, sizeof(float) * na) && !memcmp(gda, fda, sizeof(float) * na) &&
              !memcmp(gdb, fdb, sizeof(float) * nb), "mul %d: plain vectorized kernels bitwise", bcast);
        /* blocked: convert in, run, convert out */
        const int64_t ba = n * fast_blocked_size(c, hw, B), bb = n * fast_blocked_size(c, hwb, B);
        float *xa = calloc(ba, 4), *xb = calloc(bb, 4), *xr = calloc(ba, 4), *xy = calloc(ba, 4);
        float *xda = calloc(ba, 4), *xdb = calloc(bb, 4), *back = fnew(na), *backb = fnew(nb);
        fast_to_blocked(n, c, hw, B, fa, xa);
        fast_to_blocked(n, c, hwb, B, fb, xb);
        fast_to_blocked(n, c, hw, B, fr, xr);
        fast_mul_forward(n, c, hw, hwb, B, xa, xb, xy);
        fast_mul_backward(n, c, hw, hwb, B, xa, xb, xr, xda, xdb);
        fast_to_plain(n, c, hw, B, xy, back);
        int same = !memcmp(back, fy, sizeof(float) * na);
        fast_to_plain(n, c, hw, B, xda, back);
        same &= !memcmp(back, fda, sizeof(float) * na);
        fast_to_plain(n, c, hwb, B, xdb, backb);
        same &= !memcmp(backb, fdb, sizeof(float) * nb);
        CHECK(same, "mul %d: blocked vectorized kernels bitwise the reference", bcast);
        free(m.a), free(m.b), free(m.r), free(m.y), free(da), free(db), free(fa), free(fb);
        free(fr), free(fy), free(fda), free(fdb), free(gy), free(gda), free(gdb), free(xa);
        free(xb), free(xr), free(xy), free(xda), free(xdb), free(back), free(backb);
    }
}

/* ----------------------------------------------------------- broadcast add */

typedef struct {
    int n, c;
    int64_t hw;
    double *a, *b, *r; /* b: (n, c), one value per channel added to a's (n, c, hw) */
} addb_ctx;

static double addb_loss(void *p) {
    addb_ctx *m = p;
    double s = 0;
    for (int64_t q = 0; q < (int64_t)m->n * m->c; q++)
        for (int64_t k = 0; k < m->hw; k++) s += m->r[q * m->hw + k] * (m->a[q * m->hw + k] + m->b[q]);
    return s;
}

/* [add] with a (C, 1, 1) second input: its gradient (fast_channel_sum of dy over the plane)
 * against finite differences, plain, and blocked (19 channels in blocks of 16: a padded
 * block) bitwise the plain one. */
static void test_add_broadcast(void) {
    const int n = 2, c = 19, B = 16;
    const int64_t hw = 7, na = n * c * hw, nb = n * c;
    addb_ctx m = {n, c, hw, drand_new(na, -1, 1), drand_new(nb, -1, 1), drand_new(na, -1, 1)};
    double *fd = dnew(nb);
    fd_grad(addb_loss, &m, m.b, nb, fd);
    float *fr = to_float(m.r, na), *fdb = fnew(nb), *back = fnew(nb);
    fast_channel_sum(n, c, hw, 1, fr, fdb);
    CHECK(nerr_fd(fdb, fd, nb) < FLOAT_TOL, "broadcast add: db against finite differences");
    float *xr = calloc(n * fast_blocked_size(c, hw, B), 4), *xdb = calloc(n * fast_blocked_size(c, 1, B), 4);
    fast_to_blocked(n, c, hw, B, fr, xr);
    fast_channel_sum(n, c, hw, B, xr, xdb);
    fast_to_plain(n, c, 1, B, xdb, back);
    CHECK(!memcmp(back, fdb, sizeof(float) * nb), "broadcast add: blocked db bitwise the plain one");
    free(m.a), free(m.b), free(m.r), free(fd), free(fr), free(fdb), free(back), free(xr), free(xdb);
}

/* Concatenation, blocked, with channel counts that start inputs inside a block: the same
 * as plain concatenation, and the split gives each input its channels back. */
static void test_concat(void) {
    const int n = 2, B = 16, cs[3] = {5, 16, 12}, cy = 33;
    const int64_t hw = 6;
    float *x[3], *xb[3], *y = fnew(n * cy * hw), *yb = calloc(n * fast_blocked_size(cy, hw, B), 4);
    float *back = fnew(n * cy * hw);
    int at = 0, ok = 1;
    for (int k = 0; k < 3; k++) {
        double *xd = drand_new(n * cs[k] * hw, -1, 1);
        x[k] = to_float(xd, n * cs[k] * hw);
        free(xd);
        xb[k] = calloc(n * fast_blocked_size(cs[k], hw, B), 4);
        fast_to_blocked(n, cs[k], hw, B, x[k], xb[k]);
        fast_concat_put(n, cs[k], at, cy, hw, 1, x[k], y);
        fast_concat_put(n, cs[k], at, cy, hw, B, xb[k], yb);
        at += cs[k];
    }
    for (int s = 0; s < n; s++) /* plain: the inputs one after the other in each sample */
        for (int k = 0, off = 0; k < 3; off += cs[k], k++)
            ok &= !memcmp(y + (s * cy + off) * hw, x[k] + s * cs[k] * hw, sizeof(float) * cs[k] * hw);
    fast_to_plain(n, cy, hw, B, yb, back);
    ok &= !memcmp(back, y, sizeof(float) * n * cy * hw);
    at = 0;
    for (int k = 0; k < 3; k++) {
        float *dx = fnew(n * fast_blocked_size(cs[k], hw, B)), *dxp = fnew(n * cs[k] * hw);
        fast_concat_take(n, cs[k], at, cy, hw, B, yb, dx);
        fast_to_plain(n, cs[k], hw, B, dx, dxp);
        ok &= !memcmp(dxp, x[k], sizeof(float) * n * cs[k] * hw);
        for (int64_t i = 0; i < n * fast_blocked_size(cs[k], hw, B); i++) ok &= dx[i] == dx[i]; /* padding written */
        at += cs[k];
        free(dx), free(dxp), free(x[k]), free(xb[k]);
    }
    CHECK(ok, "concat: blocked = plain, and the split returns each input");
    free(y), free(yb), free(back);
}

/* ------------------------------------------------------------------- pad */

typedef struct {
    pc_pad_shape s;
    double *x, *r, *y;
    int64_t ny;
} pad_ctx;

static double pad_loss(void *p) {
    pad_ctx *c = p;
    refd_pad_forward(&c->s, 0.25, c->x, c->y);
    return ddot(c->r, c->y, c->ny);
}

/* Finite differences; the vectorized kernels bitwise the reference, plain and blocked (19
 * channels in blocks of 16, a value that is not 0: padded channels must stay 0). */
static void test_pad(void) {
    const pc_pad_shape s = {.n = 2, .c = 19, .h = 3, .w = 5, .top = 0, .bottom = 1, .left = 2, .right = 1};
    const int B = 16, oh = 4, ow = 8;
    const int64_t nx = 2 * 19 * 3 * 5, ny = 2 * 19 * oh * ow;
    pad_ctx c = {s, drand_new(nx, -1, 1), drand_new(ny, -1, 1), dnew(ny), ny};
    double *dx = dnew(nx);
    refd_pad_backward(&s, c.r, dx);
    check_fd("pad", 0, "dx", pad_loss, &c, c.x, nx, dx);
    float *fx = to_float(c.x, nx), *fr = to_float(c.r, ny), *fy = fnew(ny), *fdx = fnew(nx);
    float *gy = fnew(ny), *gdx = fnew(nx);
    ref_pad_forward(&s, 0.25f, fx, fy);
    ref_pad_backward(&s, fr, fdx);
    fast_pad_forward(&s, 1, 0.25f, fx, gy);
    fast_pad_backward(&s, 1, fr, gdx);
    int ok = !memcmp(gy, fy, sizeof(float) * ny) && !memcmp(gdx, fdx, sizeof(float) * nx);
    const int64_t bx = 2 * fast_blocked_size(19, 15, B), by = 2 * fast_blocked_size(19, oh * ow, B);
    float *xb = calloc(bx, 4), *yb = fnew(by), *rb = calloc(by, 4), *dxb = fnew(bx);
    fast_to_blocked(2, 19, 15, B, fx, xb);
    fast_to_blocked(2, 19, oh * ow, B, fr, rb);
    fast_pad_forward(&s, B, 0.25f, xb, yb);
    fast_pad_backward(&s, B, rb, dxb);
    for (int n = 0; n < 2; n++) /* the padded channels 19..31 of the second block */
        for (int64_t k = 0; k < oh * ow; k++)
            for (int l = 3; l < B; l++) ok &= yb[n * by / 2 + (oh * ow + k) * B + l] == 0;
    fast_to_plain(2, 19, oh * ow, B, yb, gy);
    fast_to_plain(2, 19, 15, B, dxb, gdx);
    ok &= !memcmp(gy, fy, sizeof(float) * ny) && !memcmp(gdx, fdx, sizeof(float) * nx);
    CHECK(ok, "pad: vectorized kernels bitwise the reference, plain and blocked");
    CHECK(fy[0] == 0.25f && fy[2] == (float)c.x[0], "pad: value around, x in the middle");
    free(c.x), free(c.r), free(c.y), free(dx), free(fx), free(fr), free(fy), free(fdx), free(gy);
    free(gdx), free(xb), free(yb), free(rb), free(dxb);
}

/* ------------------------------------------------------------ softmax + xent */

typedef struct {
    int n, classes;
    double *logits;
    int32_t *labels;
    double smoothing, scale;
} sx_ctx;

static double sx_loss(void *p) {
    sx_ctx *c = p;
    return refd_softmax_xent(c->n, c->classes, c->logits, c->labels, c->smoothing, c->scale,
                             NULL, NULL) *
           c->scale;
}

static void test_softmax_xent(void) {
    static const int shapes[][2] = {{4, 5}, {1, 2}, {3, 10}, {6, 3}};
    static const double smooth[] = {0.0, 0.1, 0.3};
    int idx = 0;
    for (int si = 0; si < 4; si++) {
        for (int mi = 0; mi < 3; mi++, idx++) {
            const int n = shapes[si][0], k = shapes[si][1];
            const int64_t m = (int64_t)n * k;
            sx_ctx c = {n, k, drand_new(m, -3, 3), malloc((size_t)n * 4), smooth[mi],
                        mi == 1 ? 0.7 : 1.0 / n};
            for (int i = 0; i < n; i++) c.labels[i] = rng_int(k);
            double *dl = dnew(m), *pr = dnew(m);
            double loss = refd_softmax_xent(n, k, c.logits, c.labels, c.smoothing, c.scale, dl,
                                            pr);
            check_fd("softmax_xent", idx, "dlogits", sx_loss, &c, c.logits, m, dl);
            /* probabilities and loss against the definition */
            double want = 0;
            int ok = 1;
            for (int i = 0; i < n; i++) {
                double z = 0, ps = 0;
                for (int j = 0; j < k; j++) z += exp(c.logits[i * k + j]);
                for (int j = 0; j < k; j++) {
                    double p = exp(c.logits[i * k + j]) / z;
                    double t = (1 - c.smoothing) * (j == c.labels[i]) + c.smoothing / k;
                    ok &= fabs(pr[i * k + j] - p) < 1e-14;
                    ps += pr[i * k + j];
                    want -= t * log(p);
                }
                ok &= fabs(ps - 1) < 1e-12;
            }
            CHECK(ok, "softmax_xent case %d: probs", idx);
            CHECK(fabs(loss - want) < 1e-12 * (1 + fabs(want)), "softmax_xent case %d: loss %g vs %g",
                  idx, loss, want);
            /* NULL outputs give the same loss */
            double loss2 = refd_softmax_xent(n, k, c.logits, c.labels, c.smoothing, c.scale,
                                             NULL, NULL);
            CHECK(loss2 == loss, "softmax_xent case %d: loss without outputs", idx);

            float *fl = to_float(c.logits, m), *fdl = fnew(m), *fpr = fnew(m);
            double floss = ref_softmax_xent(n, k, fl, c.labels, (float)c.smoothing,
                                            (float)c.scale, fdl, fpr);
            CHECK(fabs(floss - loss) < FLOAT_TOL * (1 + fabs(loss)), "softmax_xent case %d: float loss",
                  idx);
            CHECK(nerr_fd(fdl, dl, m) < FLOAT_TOL, "softmax_xent case %d: float dlogits", idx);
            CHECK(nerr_fd(fpr, pr, m) < FLOAT_TOL, "softmax_xent case %d: float probs", idx);
            free(c.logits), free(c.labels), free(dl), free(pr), free(fl), free(fdl), free(fpr);
        }
    }

    /* hand: uniform logits -> log 2 with or without smoothing; [1,2,3] label 2 */
    float l2[2] = {0, 0}, l3[3] = {1, 2, 3}, d3[3];
    int32_t y0 = 0, y2 = 2;
    CHECK(fabs(ref_softmax_xent(1, 2, l2, &y0, 0, 1, NULL, NULL) - log(2.0)) < 1e-12,
          "hand xent uniform");
    CHECK(fabs(ref_softmax_xent(1, 2, l2, &y0, 0.2f, 1, NULL, NULL) - log(2.0)) < 1e-7,
          "hand xent uniform smoothed");
    double lse = log(exp(1.0) + exp(2.0) + exp(3.0));
    CHECK(fabs(ref_softmax_xent(1, 3, l3, &y2, 0, 1, d3, NULL) - (lse - 3)) < 1e-7,
          "hand xent [1,2,3]");
    CHECK(fabsf(d3[0] - (float)exp(1 - lse)) < 1e-7f && fabsf(d3[2] - (float)(exp(3 - lse) - 1)) < 1e-7f,
          "hand xent dlogits");
    /* stability: huge logits */
    float big[4] = {1000, 0, -1000, 500};
    float dbig[4];
    int32_t yb[2] = {1, 0};
    double lb = ref_softmax_xent(2, 2, big, yb, 0, 0.5f, dbig, NULL);
    CHECK(isfinite(lb) && fabs(lb - 2500) < 1e-3, "xent large logits: %g", lb);
    CHECK(isfinite(dbig[0]) && isfinite(dbig[3]) && fabsf(dbig[0] - 0.5f) < 1e-7f &&
              fabsf(dbig[1] + 0.5f) < 1e-7f && fabsf(dbig[2] + 0.5f) < 1e-7f &&
              fabsf(dbig[3] - 0.5f) < 1e-7f,
          "xent large logits grad");
}

/* ---------------------------------------------------------------- timing */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void time_conv(void) {
    pc_conv_shape s = {.n = 16, .c = 32, .h = 14, .w = 14, .k = 64, .kh = 5, .kw = 5, .sh = 1,
                       .sw = 1, .ph = 2, .pw = 2, .groups = 1};
    pc_conv_shape_finish(&s);
    const int64_t nx = (int64_t)s.n * s.c * s.h * s.w, nw = (int64_t)s.k * s.c * s.kh * s.kw,
                  ny = (int64_t)s.n * s.k * s.oh * s.ow;
    float *x = fnew(nx), *w = fnew(nw), *b = fnew(s.k), *y = fnew(ny), *dx = fnew(nx),
          *dw = fnew(nw), *db = fnew(s.k);
    for (int64_t i = 0; i < nx; i++) x[i] = (float)rng_sym();
    for (int64_t i = 0; i < nw; i++) w[i] = (float)rng_sym();
    for (int i = 0; i < s.k; i++) b[i] = (float)rng_sym();
    double t0 = now();
    ref_conv2d_forward(&s, x, w, b, y);
    double t1 = now();
    ref_conv2d_backward(&s, x, w, y, dx, dw, db);
    double t2 = now();
    printf("conv (16,32,14,14)->64 5x5 pad 2: forward %.3f s, backward %.3f s\n", t1 - t0,
           t2 - t1);
    free(x), free(w), free(b), free(y), free(dx), free(dw), free(db);
}

int main(void) {
    test_conv_hand();
    test_conv();
    test_dense();
    test_pool_hand();
    test_pool();
    test_bn();
    test_relu();
    test_gelu();
    test_unary_kernels();
    test_mul();
    test_add_broadcast();
    test_concat();
    test_pad();
    test_softmax_xent();
    time_conv();
    return check_summary();
}
