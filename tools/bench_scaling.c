/* parcnn bench scaling: the sequential-versus-parallel experiment, across model sizes and
 * batch sizes. For every model of --models and batch of --batches, trains the same run
 * (every `parcnn train` flag, a recipe's too, is accepted and given to each run) with each
 * (MPI ranks, workers) configuration, and once with one worker using all cores through
 * intra-op threads, and reports time, speedup and efficiency against 1 rank x 1 worker of
 * the same model and batch, and the final test metrics: as a table, a CSV file and an SVG
 * chart. One-rank runs train in this process; runs on several ranks are `parcnn train`
 * under mpirun, as child processes, with the same train flags. */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "comm/comm.h"
#include "core/common.h"
#include "core/svg.h"
#include "train/recipe.h"
#include "train/train.h"

#define MAX_LIST 16    /* entries of --workers, --ranks, --models, --batches */
#define MAX_RUNS 256
#define MAX_REPEAT 15

typedef struct {
    const char *model;
    int batch;
    int ranks, workers, threads;
    int child;           /* 1: `parcnn train` under mpirun; 0: in this process */
    int base;            /* the index of its 1 rank x 1 worker run (same model and batch) */
    pc_train_result r;
} bench_run;

/* The flags: the train flags fill `train` (at offset 0, so pc_train_flags' offsets apply),
 * the benchmark's own the rest. */
typedef struct {
    pc_train_config train;
    const char *models, *batches, *workers, *ranks, *out;
    int repeat, no_threads_run;
} scaling_opts;

/* The run's settings, besides the train flags forwarded to multi-rank runs. */
typedef struct {
    const pc_train_config *c;
    char **pass;          /* the train flags as given (a recipe's first) */
    int n_pass;
    const char *out_dir;
} scaling_plan;

static const char scaling_usage[] =
    "usage: parcnn bench scaling [--recipe NAME] [--models LIST] [--batches LIST]\n"
    "                            [--workers LIST] [--ranks LIST] [train flags]\n"
    "Train the same run with each (ranks, workers) configuration, for every model and\n"
    "global batch listed, and compare against 1 rank x 1 worker of that model and batch:\n"
    "seconds per epoch, images/s, speedup, efficiency (speedup per core used, ranks x\n"
    "workers x threads), final test accuracy and loss. Also runs one worker with all cores\n"
    "as intra-op threads. Results are identical across ranks and workers by construction;\n"
    "the table shows it. Writes DIR/scaling.csv and DIR/scaling.svg. Start it without\n"
    "mpirun: it launches the multi-rank runs itself. Every `parcnn train` flag is given to\n"
    "each run, except --threads, --out, --resume and --overwrite, which the benchmark sets\n"
    "(--model and --batch are one-entry lists).\n"
    "\n"
    "  --recipe NAME        start from a shipped recipe's flags (parcnn recipes lists them);\n"
    "                       flags given here override the recipe's (default: none)\n";

#define AT(field) offsetof(scaling_opts, field)

static const pc_flag own_flags[] = {
    {"models", PC_FLAG_STRING, AT(models), "LIST", .def = "simple-cnn",
     .help = "comma-separated zoo models or model files, each trained with every batch, rank "
             "and worker count"},
    {"model", PC_FLAG_STRING, AT(models), "NAME|FILE", .def_text = "simple-cnn",
     .help = "one model (the same as --models NAME)"},
    {"batches", PC_FLAG_STRING, AT(batches), "LIST", .def = "128",
     .help = "comma-separated global batch sizes (each a multiple of --shard-size)"},
    {"batch", PC_FLAG_STRING, AT(batches), "N", .def_text = "128",
     .help = "one global batch (the same as --batches N)"},
    {"workers", PC_FLAG_STRING, AT(workers), "LIST", .def = "1,2",
     .help = "comma-separated worker counts (1 is always run: the baseline)"},
    {"ranks", PC_FLAG_STRING, AT(ranks), "LIST", .def = "1",
     .help = "comma-separated MPI rank counts; every count above 1 runs with each worker "
             "count as `parcnn train` under `mpirun -np R --oversubscribe --bind-to none` "
             "(env PARCNN_MPIRUN names another launcher), its output in "
             "DIR/runs/MODEL-bB-rR-wW/"},
    {"no-threads-run", PC_FLAG_SWITCH, AT(no_threads_run), .lo = 1,
     .help = "skip the one-worker-many-threads run"},
    {"repeat", PC_FLAG_INT, AT(repeat), "N", 1, MAX_REPEAT, "3",
     .help = "run every configuration N times, interleaved, and report the median epoch time"},
    {"out", PC_FLAG_STRING, AT(out), "DIR", .def = "bench-out",
     .help = "where scaling.csv, scaling.svg and the multi-rank runs go"},
    {.type = PC_FLAG_SECTION, .help = "train flags, given to every run:"},
    {0}};

/* Train flags the benchmark sets for every run itself. */
static int benchmark_sets(const char *name) {
    static const char *const names[] = {"model", "batch", "workers", "threads", "out", "resume",
                                        "overwrite"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0) return 1;
    return 0;
}

/* own_flags, then every train flag the benchmark does not set ("epochs" defaulting to 1);
 * *n_own: the index of the first train flag. */
static pc_flag *build_table(int *n_own) {
    int own = 0, train = 0;
    while (own_flags[own].type != PC_FLAG_END) own++;
    while (pc_train_flags[train].type != PC_FLAG_END) train++;
    pc_flag *t = calloc((size_t)(own + train + 1), sizeof *t);
    if (!t) return NULL;
    memcpy(t, own_flags, sizeof(pc_flag) * own);
    int n = own;
    for (int i = 0; i < train; i++) {
        if (pc_train_flags[i].name && benchmark_sets(pc_train_flags[i].name)) continue;
        t[n] = pc_train_flags[i];
        if (t[n].name && strcmp(t[n].name, "epochs") == 0) t[n].def = "1";
        n++;
    }
    *n_own = own;
    return t;
}

/* A comma-separated list of integers in [1, hi]; its length, or -1. */
static int parse_ints(const char *s, int hi, int *out) {
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *end;
        long v = strtol(tok, &end, 10);
        if (*end || v < 1 || v > hi || n == MAX_LIST) return -1;
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

/* --models: split in place (the names point into `text`). */
static int split_models(char *text, const char **out) {
    int n = 0;
    for (char *tok = strtok(text, ","); tok; tok = strtok(NULL, ",")) {
        if (n == MAX_LIST) return -1;
        out[n++] = tok;
    }
    return n;
}

/* ----------------------------------------------------------------- results */

static int cores_used(const bench_run *b) { return b->ranks * b->workers * b->threads; }

static double seconds_per_epoch(const bench_run *b) { return b->r.train_seconds / b->r.epochs_run; }

static double speedup(const bench_run *runs, int i) {
    return seconds_per_epoch(&runs[runs[i].base]) / seconds_per_epoch(&runs[i]);
}

static void print_table(const bench_run *runs, int n) {
    printf("%-16s %6s %5s %7s %7s %10s %10s %8s %10s %9s %9s\n", "model", "batch", "ranks",
           "workers", "threads", "s/epoch", "images/s", "speedup", "efficiency", "test_acc",
           "test_loss");
    for (int i = 0; i < n; i++) {
        const bench_run *b = &runs[i];
        printf("%-16s %6d %5d %7d %7d %10.2f %10.0f %8.2f %10.2f %9.4f %9.4f\n", b->model,
               b->batch, b->ranks, b->workers, b->threads, seconds_per_epoch(b),
               b->r.images_per_second, speedup(runs, i), speedup(runs, i) / cores_used(b),
               b->r.test_accuracy, b->r.test_loss);
    }
}

static void write_csv(FILE *f, const bench_run *runs, int n) {
    fprintf(f, "model,batch,ranks,workers,threads,seconds_per_epoch,images_per_second,speedup,"
               "efficiency,test_accuracy,test_loss\n");
    for (int i = 0; i < n; i++) {
        const bench_run *b = &runs[i];
        fprintf(f, "%s,%d,%d,%d,%d,%.3f,%.1f,%.3f,%.3f,%.4f,%.4f\n", b->model, b->batch, b->ranks,
                b->workers, b->threads, seconds_per_epoch(b), b->r.images_per_second,
                speedup(runs, i), speedup(runs, i) / cores_used(b), b->r.test_accuracy,
                b->r.test_loss);
    }
}

/* Speedup against cores used: the one-thread runs of each (model, batch, ranks) as circles
 * joined by a line, one colour each, thread runs as squares, and the ideal y = x. */
static void write_svg(FILE *f, const bench_run *runs, int n, int sweep) {
    static const char *const colours[] = {"#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e",
                                          "#8c564b", "#e377c2", "#17becf", "#bcbd22"};
    double xmax = 1, ymax = 1;
    int multi_rank = 0;
    for (int i = 0; i < n; i++) {
        multi_rank |= runs[i].ranks > 1;
        xmax = PC_MAX(xmax, (double)cores_used(&runs[i]));
        ymax = PC_MAX(ymax, speedup(runs, i));
    }
    ymax = PC_MAX(ymax, xmax);
    pc_svg_chart c = {.left = 60, .top = 40, .width = 400, .height = 270, .x0 = 1, .x1 = xmax,
                      .y0 = 0, .y1 = ymax, .x_integers = 1};
    char title[256];
    snprintf(title, sizeof title, "parcnn speedup: %s", sweep ? "models and batches" : runs[0].model);
    pc_svg_begin(f, 480, 360);
    pc_svg_axes(f, &c, title,
                multi_rank ? "cores used (ranks x workers x threads)" : "cores used (workers x threads)",
                multi_rank ? "speedup vs 1 rank x 1 worker" : "speedup vs 1 worker");
    pc_svg_line(f, &c, (double[]){1, xmax}, (double[]){1, xmax}, 2, "gray", 1);
    pc_svg_text(f, pc_svg_x(&c, xmax) - 40, pc_svg_y(&c, xmax) - 6, "start", 12, "gray", "ideal");
    for (int i = 0, group = 0; i < n; group++) { /* runs come grouped */
        double xs[MAX_LIST + 1], ys[MAX_LIST + 1];
        int k = 0, first = i;
        const char *colour = colours[group % 8];
        for (; i < n && runs[i].ranks == runs[first].ranks && runs[i].base == runs[first].base; i++) {
            double x = cores_used(&runs[i]), y = speedup(runs, i);
            if (runs[i].threads > 1) {
                pc_svg_marker(f, &c, x, y, "#d62728", 1);
                pc_svg_text(f, pc_svg_x(&c, x) - 10, pc_svg_y(&c, y) + 4, "end", 12, "#d62728",
                            "1 worker x %d threads", runs[i].threads);
                continue;
            }
            xs[k] = x, ys[k++] = y;
            pc_svg_marker(f, &c, x, y, colour, 0);
        }
        if (k) pc_svg_line(f, &c, xs, ys, k, colour, 0);
        if (k && sweep) /* a legend: the lines of a sweep often lie on top of each other */
            pc_svg_text(f, c.left + 10, c.top + 14 + 15 * group, "start", 12, colour,
                        "%s, batch %d, %d rank(s)", runs[first].model, runs[first].batch,
                        runs[first].ranks);
        else if (k && multi_rank)
            pc_svg_text(f, pc_svg_x(&c, xs[k - 1]) - 8, pc_svg_y(&c, ys[k - 1]) - 10, "end", 12,
                        colour, "%d rank(s)", runs[first].ranks);
    }
    pc_svg_end(f);
}

static pc_status write_outputs(const char *dir, const bench_run *runs, int n, int sweep) {
    PC_TRY(pc_mkdirs(dir, "--out"));
    const char *files[2] = {"scaling.csv", "scaling.svg"};
    for (int k = 0; k < 2; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, files[k]);
        FILE *f = fopen(path, "w");
        if (!f) return pc_fail(PC_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        if (k == 0) write_csv(f, runs, n);
        else write_svg(f, runs, n, sweep);
        if (fclose(f) != 0) return pc_fail(PC_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        printf("wrote %s\n", path);
    }
    return PC_OK;
}

/* ----------------------------------------------------------- running one configuration */

static void describe(const bench_run *b, char *buf, size_t n) {
    snprintf(buf, n, "%s, batch %d: %d rank(s) x %d worker(s) x %d thread(s)", b->model, b->batch,
             b->ranks, b->workers, b->threads);
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

/* OUT/runs/MODEL-bB-rR-wW[-tT], MODEL the model's file name without folders and extension. */
static void run_dir(const scaling_plan *p, const bench_run *b, char *buf, size_t n) {
    const char *base = strrchr(b->model, '/');
    base = base ? base + 1 : b->model;
    int len = (int)strcspn(base, ".");
    int used = snprintf(buf, n, "%s/runs/%.*s-b%d-r%d-w%d", p->out_dir, len ? len : 1,
                        len ? base : "m", b->batch, b->ranks, b->workers);
    if (b->threads > 1 && used > 0 && (size_t)used < n)
        snprintf(buf + used, n - (size_t)used, "-t%d", b->threads);
}

/* Several ranks: `parcnn train` (this executable) under mpirun with the train flags, the
 * model, batch, workers and threads, into OUT/runs/...; results from its output and
 * metrics.jsonl. */
static pc_status run_under_mpirun(const scaling_plan *p, bench_run *b) {
    char exe[4096], dir[4096], log[4200], metrics[4200];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len < 0) return pc_fail(PC_ERR_INTERNAL, "/proc/self/exe: %s", strerror(errno));
    exe[len] = 0;
    run_dir(p, b, dir, sizeof dir);
    PC_TRY(pc_mkdirs(dir, "--out"));
    snprintf(log, sizeof log, "%s/train.log", dir);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    const char *mpirun = getenv("PARCNN_MPIRUN");
    if (!mpirun || !*mpirun) mpirun = "mpirun";
    char np[16], epochs[16], batch[16], workers[16], threads[16];
    snprintf(np, sizeof np, "%d", b->ranks);
    snprintf(epochs, sizeof epochs, "%d", p->c->epochs); /* the benchmark's default is 1 */
    snprintf(batch, sizeof batch, "%d", b->batch);
    snprintf(workers, sizeof workers, "%d", b->workers);
    snprintf(threads, sizeof threads, "%d", b->threads);
    const char *head[] = {mpirun, "-np", np, "--oversubscribe", "--bind-to", "none", exe, "train"};
    const char *tail[] = {"--epochs", epochs, "--model", b->model, "--batch", batch, "--workers", workers, "--threads",
                          threads, "--no-progress", "--out", dir, "--overwrite", NULL};
    const char **argv = calloc(sizeof head / sizeof *head + (size_t)p->n_pass + sizeof tail / sizeof *tail, sizeof *argv);
    if (!argv) return pc_fail_nomem();
    int n = 0;
    for (size_t i = 0; i < sizeof head / sizeof *head; i++) argv[n++] = head[i];
    for (int i = 0; i < p->n_pass; i++) argv[n++] = p->pass[i];
    for (size_t i = 0; i < sizeof tail / sizeof *tail; i++) argv[n++] = tail[i];
    int status;
    pc_status st = cli_spawn_logged(argv, log, "is Open MPI installed? PARCNN_MPIRUN names another launcher", &status);
    free(argv);
    PC_TRY(st);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char how[64];
        describe_status(status, how, sizeof how);
        return pc_fail(PC_ERR_DATA, "%s %s (its output: %s)", mpirun, how, log);
    }
    memset(&b->r, 0, sizeof b->r);
    PC_TRY(read_log(log, b->ranks, &b->r));
    PC_TRY(read_metrics(metrics, b->batch, &b->r));
    b->r.images_per_second = b->r.images_seen / b->r.train_seconds;
    return PC_OK;
}

/* One configuration, once. Every run writes its files (model, metrics.jsonl, and what flags
 * such as --keep best or --tensorboard ask for) into its own OUT/runs/ folder. */
static pc_status run_config(const scaling_plan *p, bench_run *b) {
    if (b->child) return run_under_mpirun(p, b);
    char dir[4096];
    run_dir(p, b, dir, sizeof dir);
    PC_TRY(pc_mkdirs(dir, "--out"));
    pc_train_config c = *p->c;
    c.out_dir = dir;
    c.overwrite = 1;
    c.model = b->model;
    c.batch = b->batch;
    c.workers = b->workers;
    c.threads = b->threads;
    return pc_train(&c, &b->r);
}

/* Every configuration `repeat` times, interleaved; each keeps its median epoch time. */
static pc_status run_all(const scaling_plan *p, bench_run *runs, int n, int repeat) {
    static double secs[MAX_RUNS][MAX_REPEAT];
    char name[256];
    for (int rep = 0; rep < repeat; rep++)
        for (int i = 0; i < n; i++) {
            describe(&runs[i], name, sizeof name);
            fprintf(stderr, "run %d/%d: %s...\n", rep + 1, repeat, name);
            if (run_config(p, &runs[i]) != PC_OK)
                return pc_fail(PC_ERR_DATA, "%s: %s", name, pc_last_error());
            secs[i][rep] = runs[i].r.train_seconds;
        }
    for (int i = 0; i < n; i++) {
        for (int a = 1; a < repeat; a++) /* insertion sort: a handful of numbers */
            for (int k = a; k > 0 && secs[i][k - 1] > secs[i][k]; k--) {
                double t = secs[i][k];
                secs[i][k] = secs[i][k - 1];
                secs[i][k - 1] = t;
            }
        runs[i].r.train_seconds = secs[i][repeat / 2];
        runs[i].r.images_per_second = runs[i].r.images_seen / runs[i].r.train_seconds;
    }
    return PC_OK;
}

/* ------------------------------------------------------------------ the plan */

typedef struct {
    const char *models[MAX_LIST];
    int batches[MAX_LIST], workers[MAX_LIST + 1], ranks[MAX_LIST + 1];
    int n_models, n_batches, n_workers, n_ranks;
} sweep_lists;

/* The lists of the flags, checked; 0 or the exit status (the message printed). */
static int parse_lists(scaling_opts *o, char *models, sweep_lists *l) {
    const char *cmd = "bench scaling";
    snprintf(models, 4096, "%s", o->models);
    if ((l->n_models = split_models(models, l->models)) < 1)
        return usage_error(cmd, "--models %s: expected a list like simple-cnn,minixception", o->models);
    if ((l->n_batches = parse_ints(o->batches, 1 << 20, l->batches)) < 1)
        return usage_error(cmd, "--batches %s: expected a list like 64,128,256", o->batches);
    if ((l->n_workers = parse_ints(o->workers, 1024, l->workers)) < 1)
        return usage_error(cmd, "--workers %s: expected a list like 1,2,4", o->workers);
    if ((l->n_ranks = parse_ints(o->ranks, 1024, l->ranks)) < 1)
        return usage_error(cmd, "--ranks %s: expected a list like 1,2,4", o->ranks);
    l->n_workers = one_first(l->workers, l->n_workers);
    l->n_ranks = one_first(l->ranks, l->n_ranks);
    pc_comm *world = pc_comm_world();
    if (l->n_ranks > 1 && pc_comm_size(world) > 1) {
        if (pc_comm_rank(world) == 0)
            fprintf(stderr, "parcnn bench: --ranks: bench starts the multi-rank runs under "
                            "mpirun itself; run it without mpirun\n");
        return 2;
    }
#ifndef PARCNN_HAVE_MPI
    if (l->n_ranks > 1) {
        fprintf(stderr, "parcnn bench: --ranks: this parcnn was built without MPI\n");
        return 2;
    }
#endif
    return 0;
}

/* The runs: per model and batch, each rank count with each worker count (rank counts above
 * 1 as child processes; the in-process runs have this process's ranks), then the threads
 * run; -1 when there are more than MAX_RUNS. */
static int plan_runs(const sweep_lists *l, int threads_run, bench_run *runs) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int here = pc_comm_size(pc_comm_world()), n = 0;
    int per = l->n_ranks * l->n_workers + (threads_run && cores > 1);
    if (l->n_models * l->n_batches * per > MAX_RUNS) return -1;
    for (int m = 0; m < l->n_models; m++)
        for (int b = 0; b < l->n_batches; b++) {
            bench_run one = {.model = l->models[m], .batch = l->batches[b], .base = n, .threads = 1};
            for (int k = 0; k < l->n_ranks; k++)
                for (int i = 0; i < l->n_workers; i++) {
                    runs[n] = one;
                    runs[n].ranks = l->ranks[k] > 1 ? l->ranks[k] : here;
                    runs[n].child = l->ranks[k] > 1;
                    runs[n++].workers = l->workers[i];
                }
            if (threads_run && cores > 1) {
                runs[n] = one;
                runs[n].ranks = here;
                runs[n].workers = 1;
                runs[n++].threads = (int)cores;
            }
        }
    return n;
}

/* Every configuration must split its batch: shards (batch / shard size) divided by ranks x
 * workers. Checked before anything runs; 0 or the exit status. */
static int check_splits(const bench_run *runs, int n, int shard_size) {
    for (int i = 0; i < n; i++) {
        const bench_run *b = &runs[i];
        char what[160];
        if (b->batch % shard_size) {
            snprintf(what, sizeof what, "%d is not a multiple of --shard-size %d", b->batch, shard_size);
            return usage_error("bench scaling", "--batches: %s", what);
        }
        int shards = b->batch / shard_size;
        if (shards % (b->ranks * b->workers) == 0) continue;
        snprintf(what, sizeof what, "batch %d makes %d shard(s) of %d, which %d rank(s) x %d "
                 "worker(s) do not divide", b->batch, shards, shard_size, b->ranks, b->workers);
        return usage_error("bench scaling", "%s", what);
    }
    return 0;
}

/* The train flags among args (those the table's entries from n_own on own), in order. */
static char **train_args(int argc, char **argv, const int *owner, int n_own, int *n_pass) {
    char **pass = calloc((size_t)argc + 1, sizeof *pass);
    *n_pass = 0;
    for (int k = 1; pass && k < argc; k++)
        if (owner[k] >= n_own) pass[(*n_pass)++] = argv[k];
    return pass;
}

static int scaling_main(int argc, char **argv, const pc_flag *table, int n_own) {
    scaling_opts o;
    memset(&o, 0, sizeof o);
    pc_train_config_defaults(&o.train);
    pc_flags_defaults(table, &o);
    o.train.log = NULL;
    o.train.progress = 0;
    int *owner = calloc((size_t)argc + 1, sizeof *owner);
    if (!owner) return cli_fail(pc_fail_nomem());
    int rc = cli_parse_flags_owned("bench scaling", table, &o, scaling_usage, NULL, argc, argv, owner);
    if (rc == 0 && optind < argc) rc = usage_error("bench scaling", "unexpected argument '%s'", argv[optind]);
    static char models[4096];
    static sweep_lists lists;
    if (rc == 0) rc = parse_lists(&o, models, &lists);
    static bench_run runs[MAX_RUNS];
    int n = rc == 0 ? plan_runs(&lists, !o.no_threads_run, runs) : 0;
    if (rc == 0 && n < 0) {
        fprintf(stderr, "parcnn bench: more than %d runs (models x batches x ranks x workers)\n", MAX_RUNS);
        rc = 2;
    }
    if (rc == 0) rc = check_splits(runs, n, o.train.shard_size);
    int n_pass = 0;
    char **pass = rc == 0 ? train_args(argc, argv, owner, n_own, &n_pass) : NULL;
    free(owner);
    if (rc) return rc < 0 ? 0 : rc;
    if (!pass) return cli_fail(pc_fail_nomem());
    printf("parcnn bench scaling: models %s, batches %s, data %s, %d epoch(s), shard size %d, %ld cores\n",
           o.models, o.batches, o.train.data, o.train.epochs, o.train.shard_size,
           sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);
    scaling_plan plan = {.c = &o.train, .pass = pass, .n_pass = n_pass, .out_dir = o.out};
    pc_status st = run_all(&plan, runs, n, o.repeat);
    free(pass);
    if (st != PC_OK) {
        fprintf(stderr, "parcnn bench: %s\n", pc_last_error());
        return 1;
    }
    print_table(runs, n);
    printf("(s/epoch: median of %d interleaved runs, training steps only; speedup against 1 rank "
           "x 1 worker of the same model and batch; test metrics after the last epoch)\n", o.repeat);
    printf("(each run's files in %s/runs/%s)\n", o.out,
           lists.n_ranks > 1 ? "; several ranks: parcnn train under mpirun" : "");
    if (write_outputs(o.out, runs, n, lists.n_models * lists.n_batches > 1) != PC_OK) {
        fprintf(stderr, "parcnn bench: %s\n", pc_last_error());
        return 1;
    }
    return 0;
}

int cmd_bench_scaling(int argc, char **argv) {
    int n_own, n;
    char **args;
    const char *recipe;
    pc_flag *table = build_table(&n_own);
    if (!table) return cli_fail(pc_fail_nomem());
    if (pc_recipe_expand(argc, argv, &n, &args, &recipe) != PC_OK) {
        free(table);
        return cli_fail(PC_ERR_USAGE);
    }
    if (recipe) {
        printf("parcnn: recipe %s:", recipe);
        for (int i = 1; i < n; i++) printf(" %s", args[i]);
        printf("\n");
    }
    int rc = scaling_main(n, args, table, n_own);
    pc_recipe_argv_free(n, args);
    free(table);
    return rc;
}
