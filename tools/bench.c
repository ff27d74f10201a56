/* parcnn bench scaling: the sequential-versus-parallel experiment. Trains the same
 * model on the same data with each worker count (and once with one worker using
 * all cores through intra-op threads) and reports time, speedup, efficiency and
 * the final test metrics, as a table, a CSV file and an SVG chart. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "core/svg.h"
#include "data/augment.h"
#include "data/folder.h"
#include "dist/comm.h"
#include "train/pool.h"
#include "train/train.h"

#define MAX_RUNS 32
#define MAX_REPEAT 15

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    int workers, threads;
    pc_train_result r;
} bench_run;

static const char bench_help[] =
    "usage: parcnn bench scaling [options]\n"
    "       mpirun -np R parcnn bench comm [--reps N]   (see parcnn bench comm --help)\n"
    "       parcnn bench loader --data folder:DIR [--augment SPEC] [--image-size N]\n"
    "Train the same model with each worker count and compare against one worker:\n"
    "seconds per epoch, images/s, speedup, efficiency, final test accuracy and loss.\n"
    "Also runs one worker with all cores as intra-op threads. Results are identical\n"
    "across worker counts by construction; the table shows it.\n"
    "\n"
    "  --model NAME|FILE   (default simple-cnn)\n"
    "  --data SPEC         (default fashion-mnist)\n"
    "  --epochs N          (default 1)\n"
    "  --workers LIST      comma-separated worker counts (default 1,2)\n"
    "  --batch N           global batch (default 128)\n"
    "  --shard-size N      (default 32)\n"
    "  --limit N           training images (default all)\n"
    "  --eval-limit N      test images (default all)\n"
    "  --no-threads-run    skip the one-worker-many-threads run\n"
    "  --repeat N          run every configuration N times, interleaved, and report the\n"
    "                      median epoch time (default 3)\n"
    "  --out DIR           write DIR/scaling.csv and DIR/scaling.svg (default bench-out)\n";

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

static void write_csv(FILE *f, const bench_run *runs, int n, const char *model) {
    double base = runs[0].r.train_seconds / runs[0].r.epochs_run;
    fprintf(f, "model,workers,threads,seconds_per_epoch,images_per_second,speedup,efficiency,"
               "test_accuracy,test_loss\n");
    for (int i = 0; i < n; i++) {
        double spe = runs[i].r.train_seconds / runs[i].r.epochs_run, speedup = base / spe;
        int cores = runs[i].workers * runs[i].threads;
        fprintf(f, "%s,%d,%d,%.3f,%.1f,%.3f,%.3f,%.4f,%.4f\n", model, runs[i].workers,
                runs[i].threads, spe, runs[i].r.images_per_second, speedup, speedup / cores,
                runs[i].r.test_accuracy, runs[i].r.test_loss);
    }
}

/* Speedup against cores used: worker runs as circles joined by a line, thread runs
 * as squares, and the ideal y = x. */
static void write_svg(FILE *f, const bench_run *runs, int n, const char *model) {
    double base = runs[0].r.train_seconds / runs[0].r.epochs_run;
    double xs[MAX_RUNS], ys[MAX_RUNS], xmax = 1, ymax = 1;
    int lined = 0;
    for (int i = 0; i < n; i++) {
        double cores = runs[i].workers * runs[i].threads;
        double sp = base / (runs[i].r.train_seconds / runs[i].r.epochs_run);
        xmax = cores > xmax ? cores : xmax;
        ymax = sp > ymax ? sp : ymax;
        if (runs[i].threads == 1) xs[lined] = cores, ys[lined++] = sp;
    }
    ymax = ymax > xmax ? ymax : xmax;
    pc_svg_chart c = {.left = 60, .top = 40, .width = 400, .height = 270, .x0 = 1, .x1 = xmax,
                      .y0 = 0, .y1 = ymax, .x_integers = 1};
    char title[256];
    snprintf(title, sizeof title, "parcnn speedup: %s", model);
    pc_svg_begin(f, 480, 360);
    pc_svg_axes(f, &c, title, "cores used (workers x threads)", "speedup vs 1 worker");
    pc_svg_line(f, &c, (double[]){1, xmax}, (double[]){1, xmax}, 2, "gray", 1);
    pc_svg_text(f, pc_svg_x(&c, xmax) - 40, pc_svg_y(&c, xmax) - 6, "start", 12, "gray", "ideal");
    pc_svg_line(f, &c, xs, ys, lined, "#1f77b4", 0);
    for (int i = 0; i < n; i++) {
        double x = runs[i].workers * runs[i].threads;
        double y = base / (runs[i].r.train_seconds / runs[i].r.epochs_run);
        pc_svg_marker(f, &c, x, y, runs[i].threads == 1 ? "#1f77b4" : "#d62728", runs[i].threads > 1);
        if (runs[i].threads > 1)
            pc_svg_text(f, pc_svg_x(&c, x) - 10, pc_svg_y(&c, y) + 4, "end", 12, "#d62728",
                        "1 worker x %d threads", runs[i].threads);
    }
    pc_svg_end(f);
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
        pc_dataset_gather_augmented(&d, idx, BATCH, mean, std, &aug, 1, 0, out, labels);
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

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(bench_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "comm") == 0) return cmd_bench_comm(argc - 1, argv + 1);
    if (strcmp(argv[1], "loader") == 0) return cmd_bench_loader(argc - 1, argv + 1);
    if (strcmp(argv[1], "scaling") != 0) {
        fprintf(stderr, "parcnn bench: unknown benchmark '%s' (expected scaling or comm)\n", argv[1]);
        return 2;
    }
    argv++;
    argc--;
    pc_train_config c;
    pc_train_config_defaults(&c);
    c.epochs = 1;
    c.log = NULL;
    const char *out_dir = "bench-out";
    int workers[MAX_RUNS] = {1, 2}, n_workers = 2, threads_run = 1, repeat = 3;
    static const struct option opts[] = {
        {"model", 1, 0, 'm'}, {"data", 1, 0, 'd'}, {"epochs", 1, 0, 'e'}, {"workers", 1, 0, 'w'},
        {"batch", 1, 0, 'b'}, {"shard-size", 1, 0, 's'}, {"limit", 1, 0, 'l'},
        {"eval-limit", 1, 0, 'v'}, {"no-threads-run", 0, 0, 'n'}, {"out", 1, 0, 'o'},
        {"repeat", 1, 0, 'r'},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        long v = optarg ? strtol(optarg, &end, 10) : 0;
        int numeric_bad = optarg && (*end || v < 1);
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
        case 'r':
            if (numeric_bad || v > MAX_REPEAT) {
                fprintf(stderr, "parcnn bench: --repeat %s: expected 1 to %d\n", optarg, MAX_REPEAT);
                return 2;
            }
            repeat = (int)v;
            break;
        case 'e': case 'b': case 's': case 'l': case 'v':
            if (numeric_bad) {
                fprintf(stderr, "parcnn bench: %s %s: expected a positive integer\n",
                        argv[optind - 1], optarg);
                return 2;
            }
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
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    bench_run runs[MAX_RUNS];
    int n = 0;
    if (workers[0] != 1) { /* the baseline always comes first */
        memmove(workers + 1, workers, sizeof(int) * n_workers);
        workers[0] = 1;
        n_workers++;
    }
    for (int i = 0; i < n_workers; i++) runs[n++] = (bench_run){.workers = workers[i], .threads = 1};
    if (threads_run && cores > 1) runs[n++] = (bench_run){.workers = 1, .threads = (int)cores};
    printf("parcnn bench scaling: model %s, data %s, %d epoch(s), global batch %d, shard size %d,"
           " %ld cores\n", c.model, c.data, c.epochs, c.batch, c.shard_size, cores);
    /* Configurations interleaved, `repeat` times; each keeps its median epoch time. */
    double secs[MAX_RUNS][MAX_REPEAT];
    for (int rep = 0; rep < repeat; rep++)
        for (int i = 0; i < n; i++) {
            c.workers = runs[i].workers;
            c.threads = runs[i].threads;
            fprintf(stderr, "run %d/%d: %d worker(s) x %d thread(s)...\n", rep + 1, repeat,
                    c.workers, c.threads);
            if (pc_train(&c, &runs[i].r) != PC_OK) {
                fprintf(stderr, "parcnn: error: %s\n", pc_last_error());
                return 1;
            }
            secs[i][rep] = runs[i].r.train_seconds;
        }
    for (int i = 0; i < n; i++) {
        qsort(secs[i], repeat, sizeof(double), cmp_double);
        runs[i].r.train_seconds = secs[i][repeat / 2];
        runs[i].r.images_per_second = runs[i].r.images_seen / runs[i].r.train_seconds;
    }
    printf("%7s %7s %12s %10s %8s %10s %9s %9s\n", "workers", "threads", "s/epoch", "images/s",
           "speedup", "efficiency", "test_acc", "test_loss");
    double base = runs[0].r.train_seconds / runs[0].r.epochs_run;
    for (int i = 0; i < n; i++) {
        double spe = runs[i].r.train_seconds / runs[i].r.epochs_run;
        printf("%7d %7d %12.2f %10.0f %8.2f %10.2f %9.4f %9.4f\n", runs[i].workers,
               runs[i].threads, spe, runs[i].r.images_per_second, base / spe,
               base / spe / (runs[i].workers * runs[i].threads), runs[i].r.test_accuracy,
               runs[i].r.test_loss);
    }
    printf("(s/epoch: median of %d interleaved runs, training steps only; test metrics after "
           "the last epoch)\n", repeat);
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
