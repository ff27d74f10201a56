/* parcnn bench predict: inference speed of a model (forward pass and softmax), as a
 * deployed model runs it: latency at batch 1 and throughput at batch 64 by default, for
 * every way to spend the cores (workers x intra-op threads; the workers split the batch),
 * weights converted once (the plans' weights version never changes), inputs in memory. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/common.h"
#include "core/rng.h"
#include "nn/exec.h"
#include "nn/model.h"
#include "train/engine.h"
#include "train/modelio.h"

#define MAX_BATCHES 8
#define WARMUP 3

static const char predict_help[] =
    "usage: parcnn bench predict --model NAME|FILE [--input CxHxW] [--classes N]\n"
    "                            [--batch LIST] [--precision fp32|bf16] [--reps R]\n"
    "                            [--workers W --threads T]\n"
    "Inference speed: the model's forward pass and softmax on a batch of inputs in memory,\n"
    "weights converted once (as a deployed model runs), timed R times after 3 untimed\n"
    "batches. Every batch size runs in each way to spend the cores: W workers (each a\n"
    "replica computing B/W of the batch) x T intra-op threads, W x T = the cores, and 1 x 1.\n"
    "Prints the median ms per batch and images/s of each, and the fastest per batch size:\n"
    "its ms at batch 1 is the latency, its images/s at batch 64 the throughput.\n"
    "\n"
    "  --model M      zoo model (parcnn models), model file, or a trained weights file\n"
    "                 (*.safetensors: its own model, input shape and classes)\n"
    "  --input CxHxW  input shape of a zoo model or model file (default 1x28x28)\n"
    "  --classes N    classes of a zoo model or model file (default 10)\n"
    "  --batch LIST   batch sizes (default 1,64)\n"
    "  --precision P  fp32 (default) or bf16 (convolutions and dense layers in bfloat16)\n"
    "  --reps R       timed batches per configuration (default 20)\n"
    "  --workers W, --threads T   one configuration only (W must divide every batch size)\n";

typedef struct {
    const char *model;
    int c, h, w, classes;
    int batches[MAX_BATCHES], n_batches;
    pc_exec_options exec;       /* the precision; kernels and algorithm as training's defaults */
    int reps, workers, threads; /* workers 0: every configuration */
} predict_opts;

typedef struct {
    pc_engine *e;
    float **probs; /* per worker */
} forward_job;

/* Worker w's part of the batch: forward (inference mode) and softmax. */
static void forward_worker(int w, void *arg) {
    forward_job *j = arg;
    pc_exec *ex = j->e->execs[w];
    pc_exec_forward(ex, 0, 0, 0, 0, NULL);
    pc_exec_probs(ex, j->probs[w]);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds per batch of `batch` images on W workers x T threads; < 0 on failure. */
static double time_config(pc_model *m, const predict_opts *o, int batch, int W, int T) {
    pc_engine *e = NULL;
    forward_job j = {0};
    double *t = calloc((size_t)o->reps, sizeof(double)), median = -1;
    j.probs = calloc((size_t)W, sizeof(float *));
    if (!t || !j.probs) {
        pc_fail_nomem();
        goto done;
    }
    if (pc_engine_create(m, W, T, batch / W, &o->exec, NULL, NULL, &e) != PC_OK) goto done;
    j.e = e;
    const pc_layer *in = &m->layers[0];
    int64_t n_in = (int64_t)(batch / W) * in->c * in->h * in->w;
    for (int w = 0; w < W; w++) {
        if (!(j.probs[w] = malloc(sizeof(float) * (size_t)(batch / W) * m->classes))) {
            pc_fail_nomem();
            goto done;
        }
        pc_exec_weights_version(e->execs[w], 1); /* the weights never change here */
        float *x = pc_exec_input(e->execs[w]);
        for (int64_t i = 0; i < n_in; i++) /* roughly normalized pixels */
            x[i] = (float)((pc_rand64(7, 0, (uint64_t)w, 0, (uint64_t)i) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
    }
    for (int r = -WARMUP; r < o->reps; r++) {
        double t0 = pc_now();
        pc_pool_run(e->pool, forward_worker, &j);
        if (r >= 0) t[r] = pc_now() - t0;
    }
    qsort(t, (size_t)o->reps, sizeof(double), cmp_double);
    median = o->reps % 2 ? t[o->reps / 2] : (t[o->reps / 2 - 1] + t[o->reps / 2]) / 2;
done:
    for (int w = 0; j.probs && w < W; w++) free(j.probs[w]);
    free(j.probs);
    free(t);
    pc_engine_destroy(e);
    return median;
}

/* The model: a trained weights file, or a zoo model / model file built for the input. */
static pc_status open_model(const predict_opts *o, pc_model **m) {
    size_t n = strlen(o->model);
    if (n > 12 && strcmp(o->model + n - 12, ".safetensors") == 0) {
        pc_model_meta meta;
        memset(&meta, 0, sizeof meta);
        pc_status st = pc_model_load(o->model, m, &meta);
        pc_model_meta_free(&meta);
        return st;
    }
    return pc_model_create(o->model, o->c, o->h, o->w, o->classes, 1, m);
}

static int run_predict_bench(const predict_opts *o) {
    pc_model *m;
    pc_status st = open_model(o, &m);
    if (st != PC_OK) {
        fprintf(stderr, "parcnn bench predict: %s\n", pc_last_error());
        return st == PC_ERR_USAGE ? 2 : 1;
    }
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    const pc_layer *in = &m->layers[0];
    printf("parcnn bench predict: %s, input %dx%dx%d, %d classes, %lld parameters, %.1f MFLOP "
           "per image, %s, %d cores\n", m->name, in->c, in->h, in->w, m->classes,
           (long long)m->n_params, pc_model_flops(m) / 1e6,
           o->exec.precision == PC_PRECISION_BF16 ? "bf16" : "fp32", cores);
    printf("%6s %7s %7s %10s %10s %9s\n", "batch", "workers", "threads", "ms/batch", "images/s",
           "GFLOP/s");
    int rc = 0;
    for (int b = 0; b < o->n_batches && rc == 0; b++) {
        int batch = o->batches[b], configs[3][2], n = 0;
        if (o->workers) {
            configs[n][0] = o->workers, configs[n++][1] = o->threads;
        } else {
            configs[n][0] = 1, configs[n++][1] = 1;
            if (cores > 1) configs[n][0] = 1, configs[n++][1] = cores;
            if (cores > 1 && batch % cores == 0) configs[n][0] = cores, configs[n++][1] = 1;
        }
        double best = 1e30;
        int best_k = 0;
        for (int k = 0; k < n; k++) {
            double s = time_config(m, o, batch, configs[k][0], configs[k][1]);
            if (s < 0) {
                fprintf(stderr, "parcnn bench predict: %s\n", pc_last_error());
                rc = 1;
                break;
            }
            printf("%6d %7d %7d %10.3f %10.0f %9.1f\n", batch, configs[k][0], configs[k][1],
                   s * 1e3, batch / s, batch * (double)pc_model_flops(m) / s / 1e9);
            fflush(stdout);
            if (s < best) best = s, best_k = k;
        }
        if (rc == 0)
            printf("best batch %d: %.3f ms, %.0f images/s (%d worker(s) x %d thread(s))\n", batch,
                   best * 1e3, batch / best, configs[best_k][0], configs[best_k][1]);
    }
    pc_model_free(m);
    return rc;
}

static int parse_batches(const char *s, predict_opts *o) {
    o->n_batches = 0;
    const char *p = s;
    while (*p && o->n_batches < MAX_BATCHES) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 4096 || (*end && *end != ',')) return -1;
        o->batches[o->n_batches++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return *p || o->n_batches == 0 ? -1 : 0;
}

int cmd_bench_predict(int argc, char **argv) {
    predict_opts o = {.c = 1, .h = 28, .w = 28, .classes = 10, .batches = {1, 64},
                      .n_batches = 2, .reps = 20};
    static const struct option opts[] = {
        {"model", 1, 0, 'm'}, {"input", 1, 0, 'i'},     {"classes", 1, 0, 'c'},
        {"batch", 1, 0, 'b'}, {"precision", 1, 0, 'p'}, {"reps", 1, 0, 'r'},
        {"workers", 1, 0, 'w'}, {"threads", 1, 0, 't'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "bench predict";
    int opt;
    long v;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'h': fputs(predict_help, stdout); return 0;
        case 'm': o.model = optarg; break;
        case 'i':
            if (sscanf(optarg, "%dx%dx%d", &o.c, &o.h, &o.w) != 3 || o.c < 1 || o.c > 4 ||
                o.h < 1 || o.w < 1 || o.h > 4096 || o.w > 4096)
                return usage_error(cmd, "--input %s: expected CxHxW, e.g. 3x32x32", optarg);
            break;
        case 'c': if (parse_long(cmd, "--classes", optarg, 2, 100000, &v)) return 2; o.classes = (int)v; break;
        case 'b':
            if (parse_batches(optarg, &o))
                return usage_error(cmd, "--batch %s: expected batch sizes 1-4096, e.g. 1,64", optarg);
            break;
        case 'p':
            if (strcmp(optarg, "bf16") == 0) o.exec.precision = PC_PRECISION_BF16;
            else if (strcmp(optarg, "fp32") == 0) o.exec.precision = PC_PRECISION_FP32;
            else return usage_error(cmd, "--precision %s: expected fp32 or bf16", optarg);
            break;
        case 'r': if (parse_long(cmd, "--reps", optarg, 1, 100000, &v)) return 2; o.reps = (int)v; break;
        case 'w': if (parse_long(cmd, "--workers", optarg, 1, 1024, &v)) return 2; o.workers = (int)v; break;
        case 't': if (parse_long(cmd, "--threads", optarg, 1, 1024, &v)) return 2; o.threads = (int)v; break;
        default: return usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!o.model) return usage_error(cmd, "%s", "--model is required");
    if (!o.workers != !o.threads) return usage_error(cmd, "%s", "--workers and --threads go together");
    for (int b = 0; o.workers && b < o.n_batches; b++)
        if (o.batches[b] % o.workers) {
            fprintf(stderr, "parcnn %s: --workers %d does not divide --batch %d\n", cmd,
                    o.workers, o.batches[b]);
            return 2;
        }
    return run_predict_bench(&o);
}
