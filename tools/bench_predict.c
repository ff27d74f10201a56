/* parcnn bench predict: inference speed of a model (forward pass and softmax), as a
 * deployed model runs it: latency at batch 1 and throughput at batch 64 by default, for
 * every way to spend the cores (workers x intra-op threads; the workers split the batch),
 * weights converted once (the plans' weights version never changes), inputs in memory. */
#include <getopt.h>
#include <stddef.h>
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
#include "train/train.h"

#define MAX_BATCHES 8
#define WARMUP 3

static const char predict_help[] =
    "usage: parcnn bench predict --model NAME|FILE [--input CxHxW] [--classes N]\n"
    "                            [--batch LIST] [--precision fp32|bf16] [--conv-algo A]\n"
    "                            [--reps R]\n"
    "                            [--workers W --threads T] [--chunk LIST] [--profile]\n"
    "Inference speed: the model's forward pass and softmax on a batch of inputs in memory,\n"
    "weights converted once and batch norms folded into the layers before them (as a\n"
    "deployed model runs, as predict and eval do), timed R times after 3 untimed\n"
    "batches. Every batch size runs in each way to spend the cores: W workers (each a\n"
    "replica computing B/W of the batch) x T intra-op threads, W x T = the cores, and 1 x 1,\n"
    "each worker's part in one forward pass and in passes of 8 images (a smaller pass keeps\n"
    "small images' activations in the caches, as eval --batch 8 would run).\n"
    "Prints the median ms per batch and images/s of each, and the fastest per batch size:\n"
    "its ms at batch 1 is the latency, its images/s at batch 64 the throughput.\n"
    "--profile adds each layer's share (worker 0, wall time per batch).\n"
    "\n";

/* --batch: the batch sizes. */
typedef struct {
    int v[MAX_BATCHES], n;
} batch_list;

typedef struct {
    const char *model;
    struct {
        int c, h, w;
    } in;
    int classes;
    batch_list batches;
    batch_list chunks;          /* --chunk: images per forward pass (n 0: the defaults) */
    pc_exec_options exec;       /* the precision; kernels and algorithm as training's defaults */
    int reps, workers, threads; /* workers 0: every configuration */
    int profile;                /* print each layer's ms per batch (worker 0) */
    int no_fold_bn;             /* --no-fold-bn: the batch norms as passes of their own */
} predict_opts;

typedef struct {
    pc_engine *e;
    int passes;     /* forward passes per worker: its part of the batch / the chunk */
    int64_t n_in;   /* floats of one chunk's images */
    float **inputs; /* per worker: its part of the batch */
    float **probs;  /* per worker */
} forward_job;

/* Worker w's part of the batch, one chunk (the exec's batch) at a time: the chunk's images
 * into the exec's input, forward (inference mode) and softmax, as eval does per batch. */
static void forward_worker(int w, void *arg) {
    forward_job *j = arg;
    pc_exec *ex = j->e->execs[w];
    const int64_t n_probs = (int64_t)j->e->batch * j->e->model->classes;
    for (int p = 0; p < j->passes; p++) {
        memcpy(pc_exec_input(ex), j->inputs[w] + p * j->n_in, sizeof(float) * j->n_in);
        pc_exec_forward(ex, 0, 0, 0, 0, NULL);
        pc_exec_probs(ex, j->probs[w] + p * n_probs);
    }
}

/* Worker 0's forward time per layer and batch over the timed batches (--profile). */
static void print_profile(const pc_model *m, const pc_exec *ex, int reps) {
    const double *t = pc_exec_profile(ex, 0);
    double total = 0;
    for (int i = 1; i < m->n_layers; i++) total += t[i];
    for (int i = 1; i < m->n_layers; i++) {
        const pc_layer *l = &m->layers[i];
        const char *algo = pc_exec_conv_algo(ex, i);
        char shape[48];
        snprintf(shape, sizeof shape, "%dx%dx%d", l->c, l->h, l->w);
        printf("  %3d %-24s %-9s %-12s %9.3f ms %5.1f%%%s%s\n", i, l->name,
               pc_layer_kind_name(l->kind), shape, t[i] * 1e3 / reps,
               total > 0 ? 100 * t[i] / total : 0, algo ? "  " : "", algo ? algo : "");
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds per batch of `batch` images on W workers x T threads, each worker
 * running its part in forward passes of `chunk` images; < 0 on failure. */
static double time_config(pc_model *m, const predict_opts *o, int batch, int W, int T,
                          int chunk) {
    pc_engine *e = NULL;
    forward_job j = {.passes = batch / W / chunk};
    double *t = calloc((size_t)o->reps, sizeof(double)), median = -1;
    j.probs = calloc((size_t)W, sizeof(float *));
    j.inputs = calloc((size_t)W, sizeof(float *));
    if (!t || !j.probs || !j.inputs) {
        pc_fail_nomem();
        goto done;
    }
    if (pc_engine_create(m, W, T, chunk, &o->exec, NULL, NULL, &e) != PC_OK) goto done;
    j.e = e;
    const pc_layer *in = &m->layers[0];
    j.n_in = (int64_t)chunk * in->c * in->h * in->w;
    const int64_t n_part = j.n_in * j.passes;
    for (int w = 0; w < W; w++) {
        j.probs[w] = malloc(sizeof(float) * (size_t)(batch / W) * m->classes);
        j.inputs[w] = malloc(sizeof(float) * (size_t)n_part);
        if (!j.probs[w] || !j.inputs[w]) {
            pc_fail_nomem();
            goto done;
        }
        pc_exec_weights_version(e->execs[w], 1); /* the weights never change here */
        for (int64_t i = 0; i < n_part; i++) /* roughly normalized pixels */
            j.inputs[w][i] = (float)((pc_rand64(7, 0, (uint64_t)w, 0, (uint64_t)i) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
    }
    for (int r = -WARMUP; r < o->reps; r++) {
        if (r == 0 && o->profile) pc_exec_enable_profile_inference(e->execs[0]);
        double t0 = pc_now();
        pc_pool_run(e->pool, forward_worker, &j);
        if (r >= 0) t[r] = pc_now() - t0;
    }
    qsort(t, (size_t)o->reps, sizeof(double), cmp_double);
    median = o->reps % 2 ? t[o->reps / 2] : (t[o->reps / 2 - 1] + t[o->reps / 2]) / 2;
    if (o->profile && pc_exec_profile(e->execs[0], 0)) print_profile(m, e->execs[0], o->reps);
done:
    for (int w = 0; j.probs && w < W; w++) free(j.probs[w]);
    for (int w = 0; j.inputs && w < W; w++) free(j.inputs[w]);
    free(j.probs);
    free(j.inputs);
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
    return pc_model_create(o->model, o->in.c, o->in.h, o->in.w, o->classes, 1, m);
}

/* One way to run a batch: W workers x T intra-op threads, passes of `chunk` images. */
typedef struct {
    int workers, threads, chunk;
} run_config;

#define MAX_CONFIGS (3 * (MAX_BATCHES + 1))
#define SMALL_CHUNK 8 /* a pass whose activations stay in the caches of small images */

/* Every configuration to try for `batch`; returns how many. Chunks: --chunk's sizes that
 * divide a worker's part, else the part itself and SMALL_CHUNK when it divides the part. */
static int make_configs(const predict_opts *o, int batch, int cores, run_config *cfg) {
    int wt[3][2], n_wt = 0, n = 0;
    if (o->workers) {
        wt[n_wt][0] = o->workers, wt[n_wt++][1] = o->threads;
    } else {
        wt[n_wt][0] = 1, wt[n_wt++][1] = 1;
        if (cores > 1) wt[n_wt][0] = 1, wt[n_wt++][1] = cores;
        if (cores > 1 && batch % cores == 0) wt[n_wt][0] = cores, wt[n_wt++][1] = 1;
    }
    for (int k = 0; k < n_wt; k++) {
        const int part = batch / wt[k][0], first = n;
        for (int c = 0; c < o->chunks.n; c++)
            if (part % o->chunks.v[c] == 0)
                cfg[n++] = (run_config){wt[k][0], wt[k][1], o->chunks.v[c]};
        if (n > first) continue;
        cfg[n++] = (run_config){wt[k][0], wt[k][1], part};
        if (!o->chunks.n && part > SMALL_CHUNK && part % SMALL_CHUNK == 0)
            cfg[n++] = (run_config){wt[k][0], wt[k][1], SMALL_CHUNK};
    }
    return n;
}

static int run_predict_bench(const predict_opts *o) {
    pc_model *m;
    pc_status st = open_model(o, &m);
    if (st != PC_OK) {
        fprintf(stderr, "parcnn bench predict: %s\n", pc_last_error());
        return st == PC_ERR_USAGE ? 2 : 1;
    }
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN), folded = 0;
    const pc_layer *in = &m->layers[0];
    /* the model as written: its parameters and FLOPs (GFLOP/s counts the batch norms) */
    const long long params = (long long)m->n_params;
    const int64_t flops = pc_model_flops(m);
    pc_model *run = m;
    if (!o->no_fold_bn && (st = pc_model_fold_bn(m, &run, &folded)) != PC_OK) {
        fprintf(stderr, "parcnn bench predict: %s\n", pc_last_error());
        pc_model_free(m);
        return 1;
    }
    printf("parcnn bench predict: %s, input %dx%dx%d, %d classes, %lld parameters, %.1f MFLOP "
           "per image, %s, %d cores, %d batch norms folded\n", m->name, in->c, in->h, in->w,
           m->classes, params, flops / 1e6,
           o->exec.precision == PC_PRECISION_BF16 ? "bf16" : "fp32", cores, folded);
    printf("%6s %7s %7s %6s %10s %10s %9s\n", "batch", "workers", "threads", "chunk", "ms/batch",
           "images/s", "GFLOP/s");
    int rc = 0;
    for (int b = 0; b < o->batches.n && rc == 0; b++) {
        run_config cfg[MAX_CONFIGS];
        const int batch = o->batches.v[b], n = make_configs(o, batch, cores, cfg);
        double best = 1e30;
        int best_k = 0;
        for (int k = 0; k < n; k++) {
            double s = time_config(run, o, batch, cfg[k].workers, cfg[k].threads, cfg[k].chunk);
            if (s < 0) {
                fprintf(stderr, "parcnn bench predict: %s\n", pc_last_error());
                rc = 1;
                break;
            }
            printf("%6d %7d %7d %6d %10.3f %10.0f %9.1f\n", batch, cfg[k].workers, cfg[k].threads,
                   cfg[k].chunk, s * 1e3, batch / s, batch * (double)flops / s / 1e9);
            fflush(stdout);
            if (s < best) best = s, best_k = k;
        }
        if (rc == 0)
            printf("best batch %d: %.3f ms, %.0f images/s (%d worker(s) x %d thread(s), passes of "
                   "%d)\n", batch, best * 1e3, batch / best, cfg[best_k].workers,
                   cfg[best_k].threads, cfg[best_k].chunk);
    }
    if (run != m) pc_model_free(run);
    pc_model_free(m);
    return rc;
}

/* A list of sizes 1-4096 ("1,64") into a batch_list; flag names it in the error. */
static pc_flag_result parse_sizes(const char *flag, const char *arg, void *field) {
    batch_list *l = field;
    l->n = 0;
    const char *p = arg;
    while (*p && l->n < MAX_BATCHES) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 4096 || (*end && *end != ',')) break;
        l->v[l->n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (!*p && l->n > 0) return PC_FLAG_OK;
    pc_fail(PC_ERR_USAGE, "%s %s: expected sizes 1-4096, e.g. 1,64", flag, arg);
    return PC_FLAG_ERR_USAGE;
}
static pc_flag_result parse_batches(const char *arg, void *field) {
    return parse_sizes("--batch", arg, field);
}
static pc_flag_result parse_chunks(const char *arg, void *field) {
    return parse_sizes("--chunk", arg, field);
}

static pc_flag_result parse_input(const char *arg, void *field) {
    int *chw = field, c, h, w;
    if (sscanf(arg, "%dx%dx%d", &c, &h, &w) != 3 || c < 1 || c > 4 || h < 1 || w < 1 ||
        h > 4096 || w > 4096) {
        pc_fail(PC_ERR_USAGE, "--input %s: expected CxHxW, e.g. 3x32x32", arg);
        return PC_FLAG_ERR_USAGE;
    }
    chw[0] = c, chw[1] = h, chw[2] = w;
    return PC_FLAG_OK;
}

static const pc_flag_choice precision_choices[] = {
    {"fp32", PC_PRECISION_FP32}, {"bf16", PC_PRECISION_BF16}, {NULL, 0}};

#define AT(field) offsetof(predict_opts, field)
static const pc_flag predict_flags[] = {
    {"model", PC_FLAG_STRING, AT(model), "NAME|FILE", .required = 1,
     .help = "zoo model (parcnn models), model file, or a trained weights file "
             "(*.safetensors: its own model, input shape and classes)"},
    {"input", PC_FLAG_PARSED, AT(in), "CxHxW", .def = "1x28x28", .parse = parse_input,
     .help = "input shape of a zoo model or model file"},
    {"classes", PC_FLAG_INT, AT(classes), "N", 2, 100000, "10",
     .help = "classes of a zoo model or model file"},
    {"batch", PC_FLAG_PARSED, AT(batches), "LIST", .def = "1,64", .parse = parse_batches,
     .help = "batch sizes"},
    {"precision", PC_FLAG_CHOICE, AT(exec.precision), "P", .def = "fp32",
     .choices = precision_choices, .expect = "fp32 or bf16",
     .help = "fp32 or bf16 (convolutions and dense layers in bfloat16)"},
    {"conv-algo", PC_FLAG_CHOICE, AT(exec.conv_algo), "A", .def = "auto",
     .choices = pc_conv_algo_choices, .expect = "auto, direct or winograd",
     .help = "auto, direct or winograd (see parcnn train --help)"},
    {"reps", PC_FLAG_INT, AT(reps), "R", 1, 100000, "20",
     .help = "timed batches per configuration"},
    {"workers", PC_FLAG_INT, AT(workers), "W", 1, 1024, .def_text = "every configuration",
     .help = "one configuration only, with --threads (W must divide every batch size)"},
    {"threads", PC_FLAG_INT, AT(threads), "T", 1, 1024, .def_text = "every configuration",
     .help = "intra-op threads of that configuration"},
    {"chunk", PC_FLAG_PARSED, AT(chunks), "LIST", .parse = parse_chunks,
     .def_text = "a worker's whole part, and 8",
     .help = "images per forward pass: each worker runs its part of the batch in passes "
             "of this many (as eval --batch does), every size that divides the part"},
    {"profile", PC_FLAG_SWITCH, AT(profile), .lo = 1,
     .help = "after each configuration, worker 0's ms per batch in every layer"},
    {"no-fold-bn", PC_FLAG_SWITCH, AT(no_fold_bn), .lo = 1,
     .help = "run each batch norm as a pass of its own instead of folding it into the "
             "convolution or dense layer before it, as predict and eval do"},
    {0}};
#undef AT

int cmd_bench_predict(int argc, char **argv) {
    predict_opts o = {0};
    pc_flags_defaults(predict_flags, &o);
    const char *cmd = "bench predict";
    int rc = cli_parse_flags(cmd, predict_flags, &o, predict_help, NULL, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    if (optind < argc) return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!o.workers != !o.threads) return usage_error(cmd, "%s", "--workers and --threads go together");
    for (int b = 0; o.workers && b < o.batches.n; b++)
        if (o.batches.v[b] % o.workers) {
            fprintf(stderr, "parcnn %s: --workers %d does not divide --batch %d\n", cmd,
                    o.workers, o.batches.v[b]);
            return 2;
        }
    return run_predict_bench(&o);
}
