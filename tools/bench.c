/* parcnn bench scaling: the sequential-versus-parallel experiment. Trains the same
 * model on the same data with each (MPI ranks, workers) configuration (and once with
 * one worker using all cores through intra-op threads) and reports time, speedup,
 * efficiency and the final test metrics, as a table, a CSV file and an SVG chart.
 * One-rank runs train in this process; runs on several ranks are `parcnn train`
 * under mpirun, as child processes.
 * Also: bench comm (the MPI gradient exchange), bench loader (the input pipeline) and
 * bench gemm (the machine's GEMM peak through oneDNN's matmul) and bench conv (one
 * convolution layer, direct against Winograd). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
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
#include "core/svg.h"
#include "data/augment.h"
#include "data/folder.h"
#include "comm/comm.h"
#include "train/pool.h"
#include "train/train.h"

#define MAX_RUNS 32

int cmd_bench_strategies(int argc, char **argv); /* tools/bench_strategies.c */
#define MAX_REPEAT 15

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    int ranks, workers, threads;
    int child;           /* 1: `parcnn train` under mpirun; 0: in this process */
    pc_train_result r;
} bench_run;

/* Cores the run keeps busy: its replicas (ranks x workers) times intra-op threads. */
static int cores_used(const bench_run *b) { return b->ranks * b->workers * b->threads; }

static double seconds_per_epoch(const bench_run *b) {
    return b->r.train_seconds / b->r.epochs_run;
}

static const char bench_help[] =
    "usage: parcnn bench scaling [options]\n"
    "       mpirun -np R parcnn bench comm [--reps N]   (see parcnn bench comm --help)\n"
    "       parcnn bench loader --data folder:DIR [--augment SPEC] [--image-size N]\n"
    "       parcnn bench gemm [--size N] [--threads T] [--dtype f32|bf16]  (GEMM peak)\n"
    "       parcnn bench conv [--channels C] [--filters K] [--size S] [--kernel R] ...\n"
    "       parcnn bench predict --model NAME|FILE [--batch LIST] [--precision bf16]\n"
    "                            (inference latency and throughput)\n"
    "       parcnn bench strategies [--ranks P] [train flags]  (sync strategies, see --help)\n"
    "Train the same model with each (ranks, workers) configuration and compare against\n"
    "1 rank x 1 worker: seconds per epoch, images/s, speedup, efficiency (speedup per\n"
    "core used, ranks x workers x threads), final test accuracy and loss. Also runs one\n"
    "worker with all cores as intra-op threads. Results are identical across ranks and\n"
    "workers by construction; the table shows it.\n"
    "\n"
    "  --model NAME|FILE   (default simple-cnn)\n"
    "  --data SPEC         (default fashion-mnist)\n"
    "  --epochs N          (default 1)\n"
    "  --workers LIST      comma-separated worker counts (default 1,2)\n"
    "  --ranks LIST        comma-separated MPI rank counts (default 1); every rank count\n"
    "                      above 1 runs with each worker count as `parcnn train` under\n"
    "                      `mpirun -np R --oversubscribe --bind-to none` (env PARCNN_MPIRUN\n"
    "                      names another launcher), its output in DIR/runs/rR-wW/\n"
    "  --batch N           global batch (default 128)\n"
    "  --shard-size N      (default 32)\n"
    "  --limit N           training images (default all)\n"
    "  --eval-limit N      test images (default all)\n"
    "  --no-threads-run    skip the one-worker-many-threads run\n"
    "  --repeat N          run every configuration N times, interleaved, and report the\n"
    "                      median epoch time (default 3)\n"
    "  --out DIR           write DIR/scaling.csv and DIR/scaling.svg (default bench-out)\n"
    "Start it without mpirun: it launches the multi-rank runs itself.\n";

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *end;
        long v = strtol(tok, &end, 10);
        if (*end || v < 1 || v > 1024 || n == max) return -1;
        out[n++] = (int)v;
    }
    return n;
}

/* The baseline, 1, goes first: moved there, or added (the list has room for one more). */
static int one_first(int *list, int n) {
    int k = 0;
    while (k < n && list[k] != 1) k++;
    if (k == n) n++;
    memmove(list + 1, list, sizeof(int) * k);
    list[0] = 1;
    return n;
}

static void write_csv(FILE *f, const bench_run *runs, int n, const char *model) {
    double base = seconds_per_epoch(&runs[0]);
    fprintf(f, "model,ranks,workers,threads,seconds_per_epoch,images_per_second,speedup,"
               "efficiency,test_accuracy,test_loss\n");
    for (int i = 0; i < n; i++) {
        double spe = seconds_per_epoch(&runs[i]), speedup = base / spe;
        fprintf(f, "%s,%d,%d,%d,%.3f,%.1f,%.3f,%.3f,%.4f,%.4f\n", model, runs[i].ranks,
                runs[i].workers, runs[i].threads, spe, runs[i].r.images_per_second, speedup,
                speedup / cores_used(&runs[i]), runs[i].r.test_accuracy, runs[i].r.test_loss);
    }
}

/* Speedup against cores used: the one-thread runs of each rank count as circles joined
 * by a line (one colour per rank count), thread runs as squares, and the ideal y = x. */
static void write_svg(FILE *f, const bench_run *runs, int n, const char *model) {
    static const char *const colours[] = {"#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e",
                                          "#8c564b", "#e377c2"};
    double base = seconds_per_epoch(&runs[0]), xmax = 1, ymax = 1;
    int multi_rank = 0;
    for (int i = 0; i < n; i++) {
        double cores = cores_used(&runs[i]), sp = base / seconds_per_epoch(&runs[i]);
        multi_rank |= runs[i].ranks > 1;
        xmax = cores > xmax ? cores : xmax;
        ymax = sp > ymax ? sp : ymax;
    }
    ymax = ymax > xmax ? ymax : xmax;
    pc_svg_chart c = {.left = 60, .top = 40, .width = 400, .height = 270, .x0 = 1, .x1 = xmax,
                      .y0 = 0, .y1 = ymax, .x_integers = 1};
    char title[256];
    snprintf(title, sizeof title, "parcnn speedup: %s", model);
    pc_svg_begin(f, 480, 360);
    pc_svg_axes(f, &c, title,
                multi_rank ? "cores used (ranks x workers x threads)" : "cores used (workers x threads)",
                multi_rank ? "speedup vs 1 rank x 1 worker" : "speedup vs 1 worker");
    pc_svg_line(f, &c, (double[]){1, xmax}, (double[]){1, xmax}, 2, "gray", 1);
    pc_svg_text(f, pc_svg_x(&c, xmax) - 40, pc_svg_y(&c, xmax) - 6, "start", 12, "gray", "ideal");
    /* the one-thread runs come grouped by rank count: one line and colour per group */
    for (int i = 0, group = 0; i < n; group++) {
        double xs[MAX_RUNS], ys[MAX_RUNS];
        int k = 0, ranks = runs[i].ranks;
        for (; i < n && runs[i].ranks == ranks; i++) {
            double x = cores_used(&runs[i]), y = base / seconds_per_epoch(&runs[i]);
            if (runs[i].threads > 1) {
                pc_svg_marker(f, &c, x, y, "#d62728", 1);
                pc_svg_text(f, pc_svg_x(&c, x) - 10, pc_svg_y(&c, y) + 4, "end", 12, "#d62728",
                            "1 worker x %d threads", runs[i].threads);
                continue;
            }
            xs[k] = x, ys[k++] = y;
            pc_svg_marker(f, &c, x, y, colours[group % 6], 0);
        }
        if (k) pc_svg_line(f, &c, xs, ys, k, colours[group % 6], 0);
        if (multi_rank && k)
            pc_svg_text(f, pc_svg_x(&c, xs[k - 1]) - 8, pc_svg_y(&c, ys[k - 1]) - 10, "end", 12,
                        colours[group % 6], "%d rank(s)", ranks);
    }
    pc_svg_end(f);
}

/* ----------------------------------------------------------- running one configuration */

static void describe(const bench_run *b, char *buf, size_t n) {
    snprintf(buf, n, "%d rank(s) x %d worker(s) x %d thread(s)", b->ranks, b->workers,
             b->threads);
}

static void describe_status(int status, char *buf, size_t n) {
    if (WIFSIGNALED(status)) snprintf(buf, n, "was killed by signal %d", WTERMSIG(status));
    else snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
}

/* From the child's output: that it really ran on `ranks` ranks (an mpirun of another MPI
 * than parcnn's starts independent single-rank copies), and the test metrics of its
 * "final:" line. These are printed with the same %.4f as the table, so a multi-rank row
 * matches the one-rank rows digit for digit. */
static pc_status read_log(const char *log, int ranks, pc_train_result *r) {
    FILE *f = fopen(log, "r");
    if (!f) return pc_fail(PC_ERR_DATA, "%s: cannot read: %s", log, strerror(errno));
    char line[1024], expect[64];
    snprintf(expect, sizeof expect, "parcnn: %d MPI ranks x ", ranks);
    int ran_on_ranks = 0, final = 0;
    while (fgets(line, sizeof line, f)) {
        ran_on_ranks |= strncmp(line, expect, strlen(expect)) == 0;
        final |= sscanf(line, "final: test accuracy %lf, test loss %lf", &r->test_accuracy,
                        &r->test_loss) == 2;
    }
    fclose(f);
    if (!ran_on_ranks)
        return pc_fail(PC_ERR_DATA, "%s: the run did not start as %d MPI ranks (does the "
                       "launcher belong to the MPI parcnn was built with?)", log, ranks);
    if (!final) return pc_fail(PC_ERR_DATA, "%s: no final test metrics", log);
    return PC_OK;
}

/* From the child's metrics.jsonl, one line per epoch: epochs, training-step seconds and
 * images (the steps of the fresh run times the global batch). */
static pc_status read_metrics(const char *path, int batch, pc_train_result *r) {
    FILE *f = fopen(path, "r");
    if (!f) return pc_fail(PC_ERR_DATA, "%s: cannot read: %s", path, strerror(errno));
    char line[2048];
    double steps = 0;
    pc_status st = PC_OK;
    while (st == PC_OK && fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *step = cJSON_GetObjectItemCaseSensitive(o, "step");
        const cJSON *secs = cJSON_GetObjectItemCaseSensitive(o, "train_seconds");
        if (cJSON_IsNumber(step) && cJSON_IsNumber(secs)) {
            r->epochs_run++;
            r->train_seconds += secs->valuedouble;
            steps = step->valuedouble;
        } else {
            st = pc_fail(PC_ERR_DATA, "%s: line %d lacks step or train_seconds", path,
                         r->epochs_run + 1);
        }
        cJSON_Delete(o);
    }
    fclose(f);
    if (st == PC_OK && r->epochs_run == 0) st = pc_fail(PC_ERR_DATA, "%s: no epochs", path);
    r->images_seen = steps * batch;
    return st;
}

/* Several ranks: `parcnn train` (this executable) under mpirun, with the benchmark's
 * settings, into OUT/runs/rR-wW; results from its output and metrics.jsonl. */
static pc_status run_under_mpirun(const pc_train_config *c, const char *out_dir, bench_run *b) {
    char exe[4096], dir[4096], log[4200], metrics[4200];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len < 0) return pc_fail(PC_ERR_INTERNAL, "/proc/self/exe: %s", strerror(errno));
    exe[len] = 0;
    snprintf(dir, sizeof dir, "%s/runs/r%d-w%d", out_dir, b->ranks, b->workers);
    PC_TRY(pc_mkdirs(dir, "--out"));
    snprintf(log, sizeof log, "%s/train.log", dir);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    const char *mpirun = getenv("PARCNN_MPIRUN");
    if (!mpirun || !*mpirun) mpirun = "mpirun";
    char np[16], epochs[16], batch[16], shard[16], seed[32], workers[16], threads[16];
    char limit[32], eval_limit[32];
    snprintf(np, sizeof np, "%d", b->ranks);
    snprintf(epochs, sizeof epochs, "%d", c->epochs);
    snprintf(batch, sizeof batch, "%d", c->batch);
    snprintf(shard, sizeof shard, "%d", c->shard_size);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
    snprintf(workers, sizeof workers, "%d", b->workers);
    snprintf(threads, sizeof threads, "%d", b->threads);
    snprintf(limit, sizeof limit, "%lld", (long long)c->limit);
    snprintf(eval_limit, sizeof eval_limit, "%lld", (long long)c->eval_limit);
    const char *argv[48] = {mpirun, "-np", np, "--oversubscribe", "--bind-to", "none", exe,
                            "train", "--model", c->model, "--data", c->data, "--epochs", epochs,
                            "--batch", batch, "--shard-size", shard, "--seed", seed,
                            "--workers", workers, "--threads", threads, "--no-progress",
                            "--out", dir, "--overwrite"};
    int n = 0;
    while (argv[n]) n++;
    if (c->limit > 0) { argv[n++] = "--limit"; argv[n++] = limit; }
    if (c->eval_limit > 0) { argv[n++] = "--eval-limit"; argv[n++] = eval_limit; }
    argv[n] = NULL;
    int status;
    PC_TRY(cli_spawn_logged(argv, log, "is Open MPI installed? PARCNN_MPIRUN names another launcher", &status));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char how[64];
        describe_status(status, how, sizeof how);
        return pc_fail(PC_ERR_DATA, "%s %s (its output: %s)", mpirun, how, log);
    }
    memset(&b->r, 0, sizeof b->r);
    PC_TRY(read_log(log, b->ranks, &b->r));
    PC_TRY(read_metrics(metrics, c->batch, &b->r));
    b->r.images_per_second = b->r.images_seen / b->r.train_seconds;
    return PC_OK;
}

/* One configuration, once. */
static pc_status run_config(pc_train_config *c, const char *out_dir, bench_run *b) {
    if (b->child) return run_under_mpirun(c, out_dir, b);
    c->workers = b->workers;
    c->threads = b->threads;
    return pc_train(c, &b->r);
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
    "\n"
    "  --size N      matrix size (default 2048, 16 to 16384)\n"
    "  --threads T   threads (default: all cores)\n"
    "  --dtype D     f32 (default), or bf16: A and B in bfloat16 (AVX512_BF16 dot products\n"
    "                where the CPU has them), C and the accumulation in f32\n"
    "  --reps R      timed repetitions (default 10)\n";

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
    if (!gflops) pc_fail(PC_ERR_NOMEM, "out of memory");
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
    long size = 2048, threads = sysconf(_SC_NPROCESSORS_ONLN), reps = 10;
    int bf16 = 0;
    static const struct option opts[] = {{"size", 1, 0, 'n'}, {"threads", 1, 0, 't'},
                                         {"dtype", 1, 0, 'd'}, {"reps", 1, 0, 'r'},
                                         {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int o, which = 0;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", opts, &which)) != -1) {
        char flag[32];
        snprintf(flag, sizeof flag, "--%s", opts[which].name);
        long v;
        switch (o) {
        case 'h': fputs(gemm_help, stdout); return 0;
        case 'd':
            if (strcmp(optarg, "f32") == 0) bf16 = 0;
            else if (strcmp(optarg, "bf16") == 0) bf16 = 1;
            else {
                fprintf(stderr, "parcnn bench gemm: --dtype %s: expected f32 or bf16\n", optarg);
                return 2;
            }
            break;
        case 'n': case 't': case 'r': {
            long lo = o == 'n' ? 16 : 1, hi = o == 'n' ? 16384 : o == 't' ? 1024 : 100000;
            if (parse_long("bench gemm", flag, optarg, lo, hi, &v)) return 2;
            if (o == 'n') size = v;
            else if (o == 't') threads = v;
            else reps = v;
            break;
        }
        default:
            fprintf(stderr, "parcnn bench gemm: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "parcnn bench gemm: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
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
    "\n"
    "  --batch N      images (a shard; default 32)   --channels C  input channels (default 64)\n"
    "  --filters K    output channels (default 64)   --size S      S x S images (default 16)\n"
    "  --kernel R     3 or 5 (default 3)             --copies W    (default: the cores)\n"
    "  --reps R       timed steps (default 20)\n";

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
    long v[7] = {32, 64, 64, 16, 3, sysconf(_SC_NPROCESSORS_ONLN), 20};
    static const struct option opts[] = {
        {"batch", 1, 0, 0},  {"channels", 1, 0, 1}, {"filters", 1, 0, 2}, {"size", 1, 0, 3},
        {"kernel", 1, 0, 4}, {"copies", 1, 0, 5},   {"reps", 1, 0, 6},    {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    static const long lo[7] = {1, 1, 1, 1, 3, 1, 1}, hi[7] = {4096, 4096, 4096, 1024, 5, 64, 10000};
    int o;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'h') {
            fputs(conv_help, stdout);
            return 0;
        }
        if (o < 0 || o > 6) {
            fprintf(stderr, "parcnn bench conv: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            return 2;
        }
        char flag[32];
        snprintf(flag, sizeof flag, "--%s", opts[o].name);
        if (parse_long("bench conv", flag, optarg, lo[o], hi[o], &v[o])) return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "parcnn bench conv: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (v[4] != 3 && v[4] != 5) {
        fprintf(stderr, "parcnn bench conv: --kernel %ld: expected 3 or 5\n", v[4]);
        return 2;
    }
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

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(bench_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "comm") == 0) return cmd_bench_comm(argc - 1, argv + 1);
    if (strcmp(argv[1], "loader") == 0) return cmd_bench_loader(argc - 1, argv + 1);
    if (strcmp(argv[1], "gemm") == 0) return cmd_bench_gemm(argc - 1, argv + 1);
    if (strcmp(argv[1], "conv") == 0) return cmd_bench_conv(argc - 1, argv + 1);
    if (strcmp(argv[1], "predict") == 0) return cmd_bench_predict(argc - 1, argv + 1);
    if (strcmp(argv[1], "strategies") == 0) return cmd_bench_strategies(argc - 1, argv + 1);
    if (strcmp(argv[1], "scaling") != 0) {
        fprintf(stderr, "parcnn bench: unknown benchmark '%s' (expected scaling, comm, loader, "
                        "gemm, conv, predict or strategies)\n", argv[1]);
        return 2;
    }
    argv++;
    argc--;
    pc_train_config c;
    pc_train_config_defaults(&c);
    c.epochs = 1;
    c.log = NULL;
    const char *out_dir = "bench-out";
    int workers[MAX_RUNS] = {1, 2}, n_workers = 2, ranks[MAX_RUNS] = {1}, n_ranks = 1;
    int ranks_given = 0, threads_run = 1, repeat = 3;
    static const struct option opts[] = {
        {"model", 1, 0, 'm'}, {"data", 1, 0, 'd'}, {"epochs", 1, 0, 'e'}, {"workers", 1, 0, 'w'},
        {"ranks", 1, 0, 'R'}, {"batch", 1, 0, 'b'}, {"shard-size", 1, 0, 's'},
        {"limit", 1, 0, 'l'}, {"eval-limit", 1, 0, 'v'}, {"no-threads-run", 0, 0, 'n'},
        {"out", 1, 0, 'o'}, {"repeat", 1, 0, 'r'},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int o, which = 0;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", opts, &which)) != -1) {
        char flag[32];
        snprintf(flag, sizeof flag, "--%s", opts[which].name);
        long v;
        switch (o) {
        case 'm': c.model = optarg; break;
        case 'd': c.data = optarg; break;
        case 'o': out_dir = optarg; break;
        case 'n': threads_run = 0; break;
        case 'h': fputs(bench_help, stdout); return 0;
        case 'w':
            n_workers = parse_list(optarg, workers, MAX_RUNS - 1);
            if (n_workers < 1) {
                fprintf(stderr, "parcnn bench: --workers %s: expected a list like 1,2,4\n", optarg);
                return 2;
            }
            break;
        case 'R':
            n_ranks = parse_list(optarg, ranks, MAX_RUNS - 1);
            if (n_ranks < 1) {
                fprintf(stderr, "parcnn bench: --ranks %s: expected a list like 1,2,4\n", optarg);
                return 2;
            }
            ranks_given = 1;
            break;
        case 'r':
            if (parse_long("bench", flag, optarg, 1, MAX_REPEAT, &v)) return 2;
            repeat = (int)v;
            break;
        case 'e': case 'b': case 's': case 'l': case 'v':
            if (parse_long("bench", flag, optarg, 1, 1L << 30, &v)) return 2;
            if (o == 'e') c.epochs = (int)v;
            if (o == 'b') c.batch = (int)v;
            if (o == 's') c.shard_size = (int)v;
            if (o == 'l') c.limit = v;
            if (o == 'v') c.eval_limit = v;
            break;
        default:
            fprintf(stderr, "parcnn bench: unknown or incomplete option '%s'\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "parcnn bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    pc_comm *world = pc_comm_world();
    if (ranks_given && pc_comm_size(world) > 1) {
        if (pc_comm_rank(world) == 0)
            fprintf(stderr, "parcnn bench: --ranks: bench starts the multi-rank runs under "
                            "mpirun itself; run it without mpirun\n");
        return 2;
    }
    n_workers = one_first(workers, n_workers);
    n_ranks = one_first(ranks, n_ranks);
#ifndef PARCNN_HAVE_MPI
    if (n_ranks > 1) {
        fprintf(stderr, "parcnn bench: --ranks: this parcnn was built without MPI\n");
        return 2;
    }
#endif
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (n_ranks * n_workers + threads_run > MAX_RUNS) {
        fprintf(stderr, "parcnn bench: %d rank counts x %d worker counts: more than %d runs\n",
                n_ranks, n_workers, MAX_RUNS);
        return 2;
    }
    /* Rank counts above 1 are child processes; the in-process runs have this process's
     * ranks (1, unless bench itself runs under mpirun). */
    bench_run runs[MAX_RUNS];
    int n = 0;
    for (int k = 0; k < n_ranks; k++)
        for (int i = 0; i < n_workers; i++)
            runs[n++] = (bench_run){.ranks = ranks[k] > 1 ? ranks[k] : pc_comm_size(world),
                                    .workers = workers[i], .threads = 1, .child = ranks[k] > 1};
    if (threads_run && cores > 1)
        runs[n++] = (bench_run){.ranks = pc_comm_size(world), .workers = 1, .threads = (int)cores};
    printf("parcnn bench scaling: model %s, data %s, %d epoch(s), global batch %d, shard size %d,"
           " %ld cores\n", c.model, c.data, c.epochs, c.batch, c.shard_size, cores);
    /* Configurations interleaved, `repeat` times; each keeps its median epoch time. */
    double secs[MAX_RUNS][MAX_REPEAT];
    char name[96];
    for (int rep = 0; rep < repeat; rep++)
        for (int i = 0; i < n; i++) {
            describe(&runs[i], name, sizeof name);
            fprintf(stderr, "run %d/%d: %s...\n", rep + 1, repeat, name);
            if (run_config(&c, out_dir, &runs[i]) != PC_OK) {
                fprintf(stderr, "parcnn bench: %s: %s\n", name, pc_last_error());
                return 1;
            }
            secs[i][rep] = runs[i].r.train_seconds;
        }
    for (int i = 0; i < n; i++) {
        qsort(secs[i], repeat, sizeof(double), cmp_double);
        runs[i].r.train_seconds = secs[i][repeat / 2];
        runs[i].r.images_per_second = runs[i].r.images_seen / runs[i].r.train_seconds;
    }
    printf("%5s %7s %7s %12s %10s %8s %10s %9s %9s\n", "ranks", "workers", "threads", "s/epoch",
           "images/s", "speedup", "efficiency", "test_acc", "test_loss");
    double base = seconds_per_epoch(&runs[0]);
    for (int i = 0; i < n; i++) {
        double spe = seconds_per_epoch(&runs[i]);
        printf("%5d %7d %7d %12.2f %10.0f %8.2f %10.2f %9.4f %9.4f\n", runs[i].ranks,
               runs[i].workers, runs[i].threads, spe, runs[i].r.images_per_second, base / spe,
               base / spe / cores_used(&runs[i]), runs[i].r.test_accuracy, runs[i].r.test_loss);
    }
    printf("(s/epoch: median of %d interleaved runs, training steps only; test metrics after "
           "the last epoch)\n", repeat);
    if (n_ranks > 1)
        printf("(runs on several ranks: parcnn train under mpirun, its output in %s/runs/)\n",
               out_dir);
    char path[4096];
    if (pc_mkdirs(out_dir, "--out") != PC_OK) {
        fprintf(stderr, "parcnn bench: %s\n", pc_last_error());
        return 1;
    }
    const char *files[2] = {"scaling.csv", "scaling.svg"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", out_dir, files[k]);
        FILE *f = fopen(path, "w");
        if (!f) {
            fprintf(stderr, "parcnn bench: %s: cannot write\n", path);
            return 1;
        }
        if (k == 0) write_csv(f, runs, n, c.model);
        else write_svg(f, runs, n, c.model);
        fclose(f);
        printf("wrote %s\n", path);
    }
    return 0;
}
