/* parcnn bench: the benchmarks. scaling (the sequential-versus-parallel experiment across
 * models and batches) is tools/bench_scaling.c, predict tools/bench_predict.c, strategies
 * tools/bench_strategies.c; here bench comm (the MPI gradient exchange), bench loader (the
 * input pipeline), bench gemm (the machine's GEMM peak through oneDNN's matmul) and bench
 * conv (one convolution layer, direct against Winograd). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef PARCNN_HAVE_DNNL
#include <dnnl.h>

#include "kernels/dnnl/dnnl_internal.h"
#include "kernels/dnnl/dnnl_kernels.h"
#endif

#include "core/common.h"
#include "cli.h"
#include "data/augment.h"
#include "data/folder.h"
#include "comm/comm.h"
#include "train/pool.h"
#include "train/train.h"

int cmd_bench_strategies(int argc, char **argv); /* tools/bench_strategies.c */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* parcnn bench comm: time the deterministic gradient exchange (reduce-scatter by
 * alltoallv + allgather, as train/reduce.c does it with one tree node per rank) for
 * message sizes from 4 KiB to 64 MiB, and fit t = latency + bytes / bandwidth. */
static const char comm_help[] =
    "usage: mpirun -np R parcnn bench comm [--reps N]\n"
    "Time the gradient exchange of deterministic mode (alltoallv reduce-scatter + allgather)\n"
    "for gradient sizes from 4 KiB to 64 MiB on R ranks, and fit\n"
    "t = a + bytes / B, printing a (latency) and B (effective bandwidth).\n";

static int cmd_bench_comm(int argc, char **argv) {
    int reps = 20;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) { fputs(comm_help, stdout); return 0; }
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) { reps = atoi(argv[++i]); continue; }
        fprintf(stderr, "parcnn bench comm: unknown option '%s'\n", argv[i]);
        return 2;
    }
    if (reps < 1) reps = 1;
    pc_comm *c = pc_comm_world();
    int R = pc_comm_size(c), rank = pc_comm_rank(c);
    if (R < 2) {
        fprintf(stderr, "parcnn bench comm: run it under mpirun with at least 2 ranks\n");
        return 2;
    }
    int *sc = calloc(R, sizeof(int)), *sd = calloc(R, sizeof(int));
    int *cc = calloc(R, sizeof(int)), *cd = calloc(R, sizeof(int));
    int64_t max_n = 16 << 20; /* floats: 64 MiB */
    float *grad = pc_alloc(sizeof(float) * max_n), *recv = pc_alloc(sizeof(float) * max_n);
    float *full = pc_alloc(sizeof(float) * max_n);
    if (!sc || !sd || !cc || !cd || !grad || !recv || !full) return 1;
    double xs[32], ys[32];
    int points = 0;
    if (rank == 0)
        printf("%d ranks, %d repetitions; one gradient of N bytes per rank\n%12s %12s %10s\n", R,
               reps, "bytes", "seconds", "GB/s");
    for (int64_t n = 1024; n <= max_n; n *= 4) {
        for (int d = 0; d < R; d++) {
            int64_t b, e;
            pc_split_range(n, R, d, 16, &b, &e);
            cd[d] = (int)b;
            cc[d] = (int)(e - b);
            sd[d] = (int)b;
            sc[d] = (int)(e - b);
        }
        int *rc = calloc(R, sizeof(int)), *rd = calloc(R, sizeof(int));
        for (int d = 0; d < R; d++) {
            rc[d] = cc[rank];
            rd[d] = d * cc[rank];
        }
        double best = 1e30;
        for (int r = 0; r < reps + 2; r++) {
            pc_comm_barrier(c);
            double t0 = pc_now();
            if (pc_comm_alltoallv(c, grad, sc, sd, recv, rc, rd) != PC_OK ||
                pc_comm_allgatherv(c, full, cc, cd) != PC_OK) {
                fprintf(stderr, "parcnn bench comm: %s\n", pc_last_error());
                return 1;
            }
            double dt = pc_now() - t0;
            if (r >= 2 && dt < best) best = dt;
        }
        free(rc);
        free(rd);
        double bytes = 4.0 * (double)n;
        if (rank == 0) printf("%12.0f %12.6f %10.2f\n", bytes, best, bytes / best / 1e9);
        xs[points] = bytes;
        ys[points++] = best;
    }
    /* least squares t = a + x / B */
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < points; i++) {
        sx += xs[i]; sy += ys[i]; sxx += xs[i] * xs[i]; sxy += xs[i] * ys[i];
    }
    double slope = (points * sxy - sx * sy) / (points * sxx - sx * sx);
    double a = (sy - slope * sx) / points;
    if (rank == 0)
        printf("fit: t = %.1f us + bytes / %.2f GB/s (the exchange moves 2 (R-1)/R of the bytes "
               "per rank)\n", a * 1e6, 1.0 / slope / 1e9);
    free(sc); free(sd); free(cc); free(cd);
    pc_free(grad); pc_free(recv); pc_free(full);
    return 0;
}

/* parcnn bench loader: the input pipeline's own speed, one thread: decoding and resizing
 * (from the folder load) and assembling augmented, normalized batches. */
static int cmd_bench_loader(int argc, char **argv) {
    const char *data = NULL, *aug_spec = "flip,crop=4";
    int image_size = 32;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) data = argv[++i];
        else if (strcmp(argv[i], "--augment") == 0 && i + 1 < argc) aug_spec = argv[++i];
        else if (strcmp(argv[i], "--image-size") == 0 && i + 1 < argc) image_size = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: parcnn bench loader --data folder:DIR [--augment SPEC] "
                            "[--image-size N]\n");
            return 2;
        }
    }
    if (!data || image_size < 4) {
        fprintf(stderr, "parcnn bench loader: --data folder:DIR is required\n");
        return 2;
    }
    pc_augment_config aug;
    if (pc_augment_parse(aug_spec, &aug) != PC_OK) {
        fprintf(stderr, "parcnn bench loader: %s\n", pc_last_error());
        return 2;
    }
    pc_folder_options fo;
    pc_folder_options_default(&fo);
    fo.image_size = image_size;
    fo.decode_threads = 1;
    pc_folder_report rep;
    memset(&rep, 0, sizeof rep);
    fo.report = &rep;
    pc_dataset d = {0};
    if (pc_dataset_load_ex(data, 1, &fo, &d) != PC_OK) {
        fprintf(stderr, "parcnn: error: %s\n", pc_last_error());
        return 1;
    }
    float mean[4], std[4];
    pc_dataset_channel_stats(&d, mean, std);
    enum { BATCH = 128 };
    int64_t idx[BATCH];
    float *out = malloc(sizeof(float) * BATCH * d.c * d.h * d.w);
    int32_t labels[BATCH];
    double t0 = pc_now();
    int64_t done = 0;
    for (int64_t first = 0; first + BATCH <= d.n; first += BATCH, done += BATCH) {
        for (int i = 0; i < BATCH; i++) idx[i] = first + i;
        if (pc_dataset_gather_augmented(&d, idx, BATCH, mean, std, &aug, 1, 0, out, labels) != PC_OK) {
            fprintf(stderr, "parcnn: error: %s\n", pc_last_error());
            return 1;
        }
    }
    double secs = pc_now() - t0;
    char spec[256];
    pc_augment_format(&aug, spec, sizeof spec);
    printf("%-40s %12s\n", "stage (1 thread)", "images/s");
    printf("%-40s %12.0f\n", "decode + resize (libjpeg-turbo/libpng)",
           rep.images_per_second > 0 ? rep.images_per_second : 0);
    printf("%-40s %12.0f\n", "augment + normalize", (double)done / secs);
    printf("(%lld images of %dx%dx%d; augmentation %s)\n", (long long)d.n, d.c, d.h, d.w, spec);
    free(out);
    pc_folder_report_free(&rep);
    pc_dataset_free(&d);
    return 0;
}

/* parcnn bench gemm: the GEMM rate oneDNN reaches on this machine, the yardstick for
 * the training kernels' achieved GFLOP/s. One square product C = A B with the matmul
 * primitive (plain row-major matrices; oneDNN packs them as it likes), timed repeatedly. */
static const char gemm_help[] =
    "usage: parcnn bench gemm [--size N] [--threads T] [--dtype f32|bf16] [--reps R]\n"
    "The machine's GEMM peak as oneDNN reaches it: C = A B for N x N matrices with oneDNN's\n"
    "matmul primitive on T OpenMP threads, one untimed product then R timed ones; prints\n"
    "the best and the median GFLOP/s (2 N^3 floating-point operations per product).\n"
    "\n";

typedef struct {
    int size, threads, bf16, reps;
} gemm_opts;

static const pc_flag_choice dtype_choices[] = {{"f32", 0}, {"bf16", 1}, {NULL, 0}};

#define AT(field) offsetof(gemm_opts, field)
static const pc_flag gemm_flags[] = {
    {"size", PC_FLAG_INT, AT(size), "N", 16, 16384, "2048", .help = "matrix size"},
    {"threads", PC_FLAG_INT, AT(threads), "T", 1, 1024, .def_text = "all cores",
     .help = "threads"},
    {"dtype", PC_FLAG_CHOICE, AT(bf16), "D", .def = "f32", .choices = dtype_choices,
     .expect = "f32 or bf16",
     .help = "f32, or bf16: A and B in bfloat16 (AVX512_BF16 dot products where the CPU has "
             "them), C and the accumulation in f32"},
    {"reps", PC_FLAG_INT, AT(reps), "R", 1, 100000, "10", .help = "timed repetitions"},
    {0}};
#undef AT

#ifdef PARCNN_HAVE_DNNL
static uint16_t to_bf16(float f) { /* round to nearest even */
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Fill an n x n matrix with values in [-1, 1) (f32, or bf16 when `bf16`). */
static void gemm_fill(void *m, int64_t n, int bf16, uint64_t seed) {
    for (int64_t i = 0; i < n * n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        float v = (float)((seed >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
        if (bf16) ((uint16_t *)m)[i] = to_bf16(v);
        else ((float *)m)[i] = v;
    }
}

static double gemm_at(const void *m, int64_t i, int bf16) {
    return bf16 ? from_bf16(((const uint16_t *)m)[i]) : ((const float *)m)[i];
}

static int run_gemm(int64_t n, int threads, int bf16, int reps) {
#ifdef _OPENMP
    omp_set_num_threads(threads); /* oneDNN's OpenMP runtime sizes its work by it */
#endif
    pcd_base b;
    memset(&b, 0, sizeof b);
    double *gflops = calloc((size_t)reps, sizeof(double));
    if (!gflops) pc_fail_nomem();
    if (!gflops || pcd_base_init(&b) != 0) goto fail;
    if (bf16 && !pc_dnnl_bf16_native()) {
        pc_fail(PC_ERR_USAGE, "--dtype bf16: oneDNN has no bf16 kernels on this CPU (oneDNN 2.6 "
                              "needs AVX-512); there is no bf16 peak to measure");
        goto fail;
    }
    dnnl_data_type_t in_dt = bf16 ? dnnl_bf16 : dnnl_f32;
    const dnnl_dims_t dims = {n, n};
    dnnl_memory_desc_t a_md, b_md, c_md;
    PCD_TRY(dnnl_memory_desc_init_by_tag(&a_md, 2, dims, in_dt, dnnl_ab), "A descriptor");
    PCD_TRY(dnnl_memory_desc_init_by_tag(&b_md, 2, dims, in_dt, dnnl_ab), "B descriptor");
    PCD_TRY(dnnl_memory_desc_init_by_tag(&c_md, 2, dims, dnnl_f32, dnnl_ab), "C descriptor");
    dnnl_matmul_desc_t desc;
    PCD_TRY(dnnl_matmul_desc_init(&desc, &a_md, &b_md, NULL, &c_md), "matmul descriptor");
    pcd_prim *mm = pcd_prim_new(&b, &desc, NULL, bf16 ? "bf16 matmul" : "f32 matmul");
    if (!mm) goto fail;
    size_t in_bytes = (size_t)(n * n) * (bf16 ? 2 : 4);
    void *a = pcd_buf_new(&b, in_bytes), *bm = pcd_buf_new(&b, in_bytes);
    float *c = pcd_buf_new(&b, (size_t)(n * n) * sizeof(float));
    if (!a || !bm || !c) goto fail;
    gemm_fill(a, n, bf16, 1);
    gemm_fill(bm, n, bf16, 2);
    dnnl_memory_t am = pcd_mem_new(&b, &a_md, a), bmm = pcd_mem_new(&b, &b_md, bm);
    dnnl_memory_t cm = pcd_mem_new(&b, &c_md, c);
    if (!am || !bmm || !cm || pcd_base_finish(&b) != 0) goto fail;
    const char *impl = "?";
    dnnl_primitive_desc_query(mm->pd, dnnl_query_impl_info_str, 0, &impl);
    const dnnl_version_t *ver = dnnl_version();
    printf("parcnn bench gemm: %s matmul %lld x %lld x %lld on %d thread(s), oneDNN %d.%d.%d "
           "%s\n", bf16 ? "bf16 (f32 accumulation)" : "f32", (long long)n, (long long)n,
           (long long)n, threads, ver->major, ver->minor, ver->patch, impl);
    fflush(stdout);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bmm}, {DNNL_ARG_DST, cm}};
    double best_s = 1e30;
    for (int r = -1; r < reps; r++) {
        double t0 = pc_now();
        pcd_exec(&b, mm, 3, args);
        pcd_wait(&b);
        double dt = pc_now() - t0;
        if (r < 0) continue; /* warm-up: first touch, oneDNN's packing buffers */
        gflops[r] = 2.0 * (double)n * n * n / dt / 1e9;
        if (dt < best_s) best_s = dt;
    }
    /* It computed the product: a few entries against a double-precision dot product. */
    for (int k = 0; k < 3; k++) {
        int64_t i = (k * 7919) % n, j = (k * 104729 + n / 2) % n;
        double want = 0, scale = 0;
        for (int64_t t = 0; t < n; t++) {
            double p = gemm_at(a, i * n + t, bf16) * gemm_at(bm, t * n + j, bf16);
            want += p;
            scale += fabs(p);
        }
        if (fabs(c[i * n + j] - want) > 1e-4 * scale + 1e-6) {
            pc_fail(PC_ERR_INTERNAL, "C[%lld][%lld] = %g, expected %g: the product is wrong",
                    (long long)i, (long long)j, c[i * n + j], want);
            goto fail;
        }
    }
    qsort(gflops, (size_t)reps, sizeof(double), cmp_double);
    printf("best %.1f GFLOP/s (%.4f s per product), median %.1f GFLOP/s of %d repetition(s)\n",
           gflops[reps - 1], best_s, reps % 2 ? gflops[reps / 2]
                                              : (gflops[reps / 2 - 1] + gflops[reps / 2]) / 2,
           reps);
    pcd_base_free(&b);
    free(gflops);
    return 0;
fail:
    fprintf(stderr, "parcnn bench gemm: %s\n", pc_last_error());
    pcd_base_free(&b);
    free(gflops);
    return 1;
}
#endif

static int cmd_bench_gemm(int argc, char **argv) {
    gemm_opts g = {.threads = (int)sysconf(_SC_NPROCESSORS_ONLN)};
    pc_flags_defaults(gemm_flags, &g);
    int rc = cli_parse_flags("bench gemm", gemm_flags, &g, gemm_help, NULL, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    if (optind < argc) {
        fprintf(stderr, "parcnn bench gemm: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    long size = g.size, threads = g.threads, reps = g.reps;
    int bf16 = g.bf16;
#ifdef PARCNN_HAVE_DNNL
    return run_gemm(size, threads < 1 ? 1 : (int)threads, bf16, (int)reps);
#else
    (void)size; (void)threads; (void)bf16; (void)reps;
    fprintf(stderr, "parcnn bench gemm: this parcnn was built without oneDNN\n");
    return 1;
#endif
}

/* parcnn bench conv: one convolution layer as training runs it (channel-blocked, a new
 * weights version every step), oneDNN's direct algorithm against Winograd, on `copies`
 * threads at once that each run their own plan: the memory traffic of that many workers. */
static const char conv_help[] =
    "usage: parcnn bench conv [--batch N] [--channels C] [--filters K] [--size S] [--kernel R]\n"
    "                         [--copies W] [--reps R]\n"
    "One convolution (stride 1, \"same\" padding, fp32, channel-blocked activations) timed\n"
    "with oneDNN's direct algorithm and with Winograd: forward, backward data and backward\n"
    "weights in ms (median of R steps, each with new weights, as in training), the direct\n"
    "algorithm's FLOPs over the time of one copy, and the speed-up. W copies run at once,\n"
    "one per thread, each on its own data: W training workers' load on the memory system.\n"
    "\n";

typedef struct {
    int batch, channels, filters, size, kernel, copies, reps;
} conv_opts;

static const pc_flag_choice kernel_choices[] = {{"3", 3}, {"5", 5}, {NULL, 0}};

#define AT(field) offsetof(conv_opts, field)
static const pc_flag conv_flags[] = {
    {"batch", PC_FLAG_INT, AT(batch), "N", 1, 4096, "32", .help = "images (a shard)"},
    {"channels", PC_FLAG_INT, AT(channels), "C", 1, 4096, "64", .help = "input channels"},
    {"filters", PC_FLAG_INT, AT(filters), "K", 1, 4096, "64", .help = "output channels"},
    {"size", PC_FLAG_INT, AT(size), "S", 1, 1024, "16", .help = "S x S images"},
    {"kernel", PC_FLAG_CHOICE, AT(kernel), "R", .def = "3", .choices = kernel_choices,
     .expect = "3 or 5", .help = "R x R kernels"},
    {"copies", PC_FLAG_INT, AT(copies), "W", 1, 64, .def_text = "the cores",
     .help = "copies at once, one per thread"},
    {"reps", PC_FLAG_INT, AT(reps), "R", 1, 10000, "20", .help = "timed steps"},
    {0}};
#undef AT

#ifdef PARCNN_HAVE_DNNL
typedef struct {
    pc_conv_shape s;
    int block, reps;
    double ms[3]; /* median forward, backward data, backward weights */
    pc_conv_algo want; /* the algorithm asked for */
    int failed;
    const char *algo;  /* the one the plan runs */
} conv_job;

static void *conv_copy(void *arg) {
    conv_job *j = arg;
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    const pc_conv_shape *s = &j->s;
    const long hw = (long)s->h * s->w, nx = (long)s->n * s->c * hw, ny = (long)s->n * s->k * hw;
    const long nw = (long)s->k * s->c * s->kh * s->kw;
    float *x = pc_alloc(sizeof(float) * nx), *dx = pc_alloc(sizeof(float) * nx);
    float *y = pc_alloc(sizeof(float) * ny), *dy = pc_alloc(sizeof(float) * ny);
    float *w = pc_alloc(sizeof(float) * nw), *dw = pc_alloc(sizeof(float) * nw);
    double *t = calloc(3 * (size_t)j->reps, sizeof(double));
    pc_dnnl_conv *p = x && dx && y && dy && w && dw && t
                          ? pc_dnnl_conv_create(s, 0, PC_DNNL_F32, j->want, 0, j->block, j->block)
                          : NULL;
    j->failed = !p;
    if (p) {
        j->algo = pc_dnnl_conv_algo_name(p);
        for (long i = 0; i < nx; i++) x[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        for (long i = 0; i < ny; i++) dy[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
        for (long i = 0; i < nw; i++) w[i] = (float)((i * 31) % 100) / 1000.0f - 0.05f;
        for (int r = -2; r < j->reps; r++) { /* two untimed steps first */
            pc_dnnl_conv_weights_version(p, (uint64_t)(r + 3));
            double t0 = pc_now();
            pc_dnnl_conv_forward(p, x, w, NULL, y);
            double t1 = pc_now();
            pc_dnnl_conv_backward(p, x, w, dy, dx, NULL, NULL);
            double t2 = pc_now();
            pc_dnnl_conv_backward(p, x, w, dy, NULL, dw, NULL);
            double t3 = pc_now();
            if (r < 0) continue;
            t[r] = t1 - t0, t[j->reps + r] = t2 - t1, t[2 * j->reps + r] = t3 - t2;
        }
        for (int k = 0; k < 3; k++) {
            qsort(t + k * j->reps, (size_t)j->reps, sizeof(double), cmp_double);
            j->ms[k] = 1e3 * t[k * j->reps + j->reps / 2];
        }
    }
    pc_dnnl_conv_destroy(p);
    pc_free(x), pc_free(dx), pc_free(y), pc_free(dy), pc_free(w), pc_free(dw);
    free(t);
    return NULL;
}

/* Runs `copies` conv_copy threads with algorithm `algo`; their mean times in ms[3]. */
static int conv_run(const pc_conv_shape *s, int block, int copies, int reps, pc_conv_algo algo,
                    double ms[3], const char **name) {
    conv_job jobs[64];
    pthread_t th[64];
    for (int i = 0; i < copies; i++) {
        jobs[i] = (conv_job){.s = *s, .block = block, .reps = reps, .want = algo};
        if (pthread_create(&th[i], NULL, conv_copy, &jobs[i]) != 0) return -1;
    }
    int failed = 0;
    ms[0] = ms[1] = ms[2] = 0;
    for (int i = 0; i < copies; i++) {
        pthread_join(th[i], NULL);
        failed |= jobs[i].failed;
        for (int k = 0; k < 3; k++) ms[k] += jobs[i].ms[k] / copies;
    }
    *name = jobs[0].algo;
    return failed ? -1 : 0;
}
#endif

static int cmd_bench_conv(int argc, char **argv) {
    conv_opts co = {.copies = (int)PC_MIN(64, sysconf(_SC_NPROCESSORS_ONLN))};
    pc_flags_defaults(conv_flags, &co);
    int rc = cli_parse_flags("bench conv", conv_flags, &co, conv_help, NULL, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    if (optind < argc) {
        fprintf(stderr, "parcnn bench conv: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    long v[7] = {co.batch, co.channels, co.filters, co.size, co.kernel, co.copies, co.reps};
#ifdef PARCNN_HAVE_DNNL
    const int block = pc_dnnl_activation_block(), r = (int)v[4];
    pc_conv_shape s = {.n = (int)v[0], .c = (int)v[1], .k = (int)v[2], .h = (int)v[3],
                       .w = (int)v[3], .kh = r, .kw = r, .sh = 1, .sw = 1, .ph = r / 2,
                       .pw = r / 2, .groups = 1};
    if (!block || pc_conv_shape_finish(&s) != 0 || s.c % block || s.k % block) {
        fprintf(stderr, "parcnn bench conv: --channels and --filters must be multiples of the "
                        "activation block (%d on this CPU)\n", block);
        return 2;
    }
    const double flop = 2.0 * s.n * s.k * s.c * r * r * (double)s.oh * s.ow;
    printf("parcnn bench conv: batch %d, %d -> %d channels, %dx%d, %dx%d kernel, block %d, "
           "%ld copies at once, median of %ld steps\n", s.n, s.c, s.k, s.h, s.w, r, r, block,
           v[5], v[6]);
    printf("%-9s %9s %9s %9s %9s %9s\n", "algorithm", "fwd ms", "bwd-d ms", "bwd-w ms",
           "GF/s each", "speed-up");
    double base = 0;
    for (int a = 0; a < 2; a++) {
        double ms[3];
        const char *name = NULL;
        if (conv_run(&s, block, (int)v[5], (int)v[6], a ? PC_CONV_WINOGRAD : PC_CONV_DIRECT, ms,
                     &name) != 0) {
            fprintf(stderr, "parcnn bench conv: %s\n", pc_last_error());
            return 1;
        }
        const double total = ms[0] + ms[1] + ms[2];
        if (!a) base = total;
        printf("%-9s %9.2f %9.2f %9.2f %9.1f %8.2fx\n", name, ms[0], ms[1], ms[2],
               3 * flop / (total * 1e-3) * 1e-9, base / total);
    }
    return 0;
#else
    fprintf(stderr, "parcnn bench conv: this parcnn was built without oneDNN\n");
    return 1;
#endif
}

static const char bench_help[] =
    "usage: parcnn bench scaling [--models LIST] [--batches LIST] [--workers LIST] [--ranks LIST]\n"
    "                            [--recipe NAME] [train flags]   (see parcnn bench scaling --help)\n"
    "       mpirun -np R parcnn bench comm [--reps N]   (see parcnn bench comm --help)\n"
    "       parcnn bench loader --data folder:DIR [--augment SPEC] [--image-size N]\n"
    "       parcnn bench gemm [--size N] [--threads T] [--dtype f32|bf16]  (GEMM peak)\n"
    "       parcnn bench conv [--channels C] [--filters K] [--size S] [--kernel R] ...\n"
    "       parcnn bench predict --model NAME|FILE [--batch LIST] [--precision bf16]\n"
    "                            (inference latency and throughput)\n"
    "       parcnn bench strategies [--ranks P] [train flags]  (sync strategies, see --help)\n";

int cmd_bench(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } benchmarks[] = {{"scaling", cmd_bench_scaling}, {"comm", cmd_bench_comm},
                      {"loader", cmd_bench_loader},   {"gemm", cmd_bench_gemm},
                      {"conv", cmd_bench_conv},       {"predict", cmd_bench_predict},
                      {"strategies", cmd_bench_strategies}};
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(bench_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof benchmarks / sizeof benchmarks[0]; i++)
        if (strcmp(argv[1], benchmarks[i].name) == 0) return benchmarks[i].run(argc - 1, argv + 1);
    fprintf(stderr, "parcnn bench: unknown benchmark '%s' (expected scaling, comm, loader, "
                    "gemm, conv, predict or strategies)\n", argv[1]);
    return 2;
}
