/* parcnn bench strategies: the papers' sequential-versus-parallel table. Trains one model
 * on one data set (any `parcnn train` flags, passed through) sequentially (1 rank x 1
 * worker) and under each synchronization strategy on --ranks x --workers, each run a
 * `parcnn train` child (under mpirun with several ranks); reads each run's final test
 * metrics and its metrics.jsonl (training seconds, bytes and messages between ranks per
 * epoch, test accuracy per epoch) and prints the table, writes it as CSV and draws test
 * accuracy against training time per strategy as SVG. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "core/common.h"
#include "core/svg.h"
#include "train/strategy.h"

#define MAX_STRATEGIES 8
#define MAX_ROWS (1 + 5 * MAX_STRATEGIES) /* fusion adds its fused models' rows */
#define MAX_EPOCHS 1000
#define MAX_ARGS 256

typedef struct {
    char name[64];        /* "sequential", "allreduce", "local-sgd=16" */
    int ranks, workers, replicas;
    int servers;          /* ps: server ranks besides the `ranks` that compute */
    double accuracy, loss, seconds;
    double bytes, messages; /* per epoch, mean over the epochs */
    int epochs;
    double acc[MAX_EPOCHS], time[MAX_EPOCHS]; /* per epoch: test accuracy, seconds so far */
} strategy_run;

static const char strategies_help[] =
    "usage: parcnn bench strategies [--ranks P] [--workers W] [--replicas R]\n"
    "                               [--strategies LIST] [--out DIR] [train flags ...]\n"
    "Train the same model and data sequentially (1 rank x 1 worker) and under each\n"
    "synchronization strategy on P ranks (mpirun) x W workers, and print the table:\n"
    "strategy, replicas, ranks x workers, final test accuracy and loss, training seconds,\n"
    "speed-up over sequential, bytes and messages between ranks per epoch. Writes\n"
    "DIR/strategies.csv, DIR/strategies.svg (test accuracy against training time) and\n"
    "each run into DIR/runs/NAME.\n"
    "  --ranks P          MPI ranks of the parallel runs (default 2; 1: one process)\n"
    "  --workers W        workers per rank of the parallel runs (default 1)\n"
    "  --replicas R       local-sgd and fusion replicas (default P x W)\n"
    "  --bn-recalibrate N fusion: recompute the weight average's batch-norm statistics on\n"
    "                     N training images (default 2048; 0: keep the averaged ones)\n"
    "  --servers S        ps: server ranks, launched besides the P (default 1)\n"
    "  --strategies LIST  comma-separated --sync values (default allreduce,local-sgd=16);\n"
    "                     ps-staleness=N and ps-async run --sync ps with --staleness N or --async\n"
    "  --out DIR          default bench-strategies\n"
    "Every other flag goes to each `parcnn train` run (e.g. --model, --data, --epochs).\n"
    "Bytes are counted between MPI ranks: with --ranks 1 they are 0.\n"
    "fusion adds a row per fused model (DIR/runs/fusion/fusion.json): the replicas' mean\n"
    "alone, their ensemble, their weight average and, recalibrated, the saved model.\n";

/* The "final:" line of a run's output. */
static pc_status read_final(const char *log, strategy_run *r) {
    FILE *f = fopen(log, "r");
    if (!f) return pc_fail(PC_ERR_DATA, "%s: cannot read: %s", log, strerror(errno));
    char line[1024];
    int found = 0;
    while (fgets(line, sizeof line, f))
        found |= sscanf(line, "final: test accuracy %lf, test loss %lf", &r->accuracy, &r->loss) == 2;
    fclose(f);
    return found ? PC_OK : pc_fail(PC_ERR_DATA, "%s: no final test metrics", log);
}

static double number(const cJSON *o, const char *key, int *ok) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) *ok = 0;
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* Per epoch: training seconds, traffic and test accuracy. */
static pc_status read_epochs(const char *path, strategy_run *r) {
    FILE *f = fopen(path, "r");
    if (!f) return pc_fail(PC_ERR_DATA, "%s: cannot read: %s", path, strerror(errno));
    char line[4096];
    pc_status st = PC_OK;
    while (st == PC_OK && r->epochs < MAX_EPOCHS && fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        int ok = o != NULL, k = r->epochs;
        double secs = number(o, "train_seconds", &ok), acc = number(o, "val_acc", &ok);
        double bytes = number(o, "comm_bytes", &ok), messages = number(o, "comm_messages", &ok);
        cJSON_Delete(o);
        if (!ok) {
            st = pc_fail(PC_ERR_DATA, "%s: line %d lacks train_seconds, val_acc or comm_bytes",
                         path, k + 1);
            break;
        }
        r->seconds += secs;
        r->time[k] = r->seconds;
        r->acc[k] = acc;
        r->bytes += bytes;
        r->messages += messages;
        r->epochs++;
    }
    fclose(f);
    if (st == PC_OK && r->epochs == 0) st = pc_fail(PC_ERR_DATA, "%s: no epochs", path);
    if (st == PC_OK) {
        r->bytes /= r->epochs;
        r->messages /= r->epochs;
    }
    return st;
}

/* A strategy with replicas (--replicas). */
static int has_replicas(const char *name) {
    return strncmp(name, "local-sgd", 9) == 0 || strcmp(name, "fusion") == 0;
}

/* One run: `parcnn train PASSTHROUGH --sync S [--replicas R] --workers W --out DIR`, under
 * mpirun with several ranks. */
static pc_status run_strategy(const char *out, char **pass, int n_pass, long recalibrate,
                              strategy_run *r) {
    char exe[4096], dir[4096], log[4200], metrics[4200], np[16], workers[16], replicas[16], recal[32];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len < 0) return pc_fail(PC_ERR_INTERNAL, "/proc/self/exe: %s", strerror(errno));
    exe[len] = 0;
    if (snprintf(dir, sizeof dir, "%s/runs/%.63s", out, r->name) >= (int)sizeof dir)
        return pc_fail(PC_ERR_USAGE, "--out %s: too long", out);
    PC_TRY(pc_mkdirs(dir, "--out"));
    snprintf(log, sizeof log, "%s/train.log", dir);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    const int ps = strncmp(r->name, "ps", 2) == 0;
    snprintf(np, sizeof np, "%d", r->ranks + (ps ? r->servers : 0));
    snprintf(workers, sizeof workers, "%d", r->workers);
    snprintf(replicas, sizeof replicas, "%d", r->replicas);
    const char *mpirun = getenv("PARCNN_MPIRUN");
    const char *argv[MAX_ARGS + 32];
    int n = 0;
    if (r->ranks > 1 || ps) {
        const char *launch[] = {mpirun && *mpirun ? mpirun : "mpirun", "-np", np,
                                "--oversubscribe", "--bind-to", "none"};
        for (int i = 0; i < 6; i++) argv[n++] = launch[i];
    }
    argv[n++] = exe;
    argv[n++] = "train";
    for (int i = 0; i < n_pass; i++) argv[n++] = pass[i];
    const int sequential = strcmp(r->name, "sequential") == 0;
    argv[n++] = "--sync";
    argv[n++] = sequential ? "allreduce" : ps ? "ps" : r->name;
    char servers[16], staleness[16];
    snprintf(servers, sizeof servers, "%d", r->servers);
    if (ps) {
        argv[n++] = "--servers";
        argv[n++] = servers;
    }
    if (sscanf(r->name, "ps-staleness=%15s", staleness) == 1) {
        argv[n++] = "--staleness";
        argv[n++] = staleness;
    }
    if (strcmp(r->name, "ps-async") == 0) argv[n++] = "--async";
    if (has_replicas(r->name)) {
        argv[n++] = "--replicas";
        argv[n++] = replicas;
    }
    snprintf(recal, sizeof recal, "%ld", recalibrate);
    if (strcmp(r->name, "fusion") == 0 && recalibrate > 0) {
        argv[n++] = "--bn-recalibrate";
        argv[n++] = recal;
    }
    const char *tail[] = {"--workers", workers, "--no-progress", "--overwrite", "--out", dir};
    for (int i = 0; i < 6; i++) argv[n++] = tail[i];
    argv[n] = NULL;
    fprintf(stderr, "parcnn bench strategies: %s on %d rank(s) x %d worker(s) ...\n", r->name,
            r->ranks, r->workers);
    int status;
    PC_TRY(cli_spawn_logged(argv, log, NULL, &status));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return pc_fail(PC_ERR_DATA, "the %s run failed (its output: %s)", r->name, log);
    PC_TRY(read_final(log, r));
    return read_epochs(metrics, r);
}

/* One fused model of DIR/fusion.json as a row after the fusion run's. */
static void fused_row(const strategy_run *run, const char *name, double accuracy, double loss,
                      strategy_run *row) {
    *row = *run;
    snprintf(row->name, sizeof row->name, "fusion/%s", name);
    row->accuracy = accuracy;
    row->loss = loss;
    row->epochs = 0; /* no curve of its own: the fusion run's is the average's */
}

static double score(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* The fusion run's fused models (its fusion.json) as rows after it, *n of them. */
static pc_status fusion_rows(const char *out, const strategy_run *run, strategy_run *rows, int *n) {
    char path[4200];
    snprintf(path, sizeof path, "%s/runs/%s/fusion.json", out, run->name);
    FILE *f = fopen(path, "rb");
    if (!f) return pc_fail(PC_ERR_DATA, "%s: cannot read: %s", path, strerror(errno));
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = 0;
    cJSON *root = cJSON_Parse(text);
    const cJSON *replicas = cJSON_GetObjectItemCaseSensitive(root, "replicas"), *item;
    double acc = 0, loss = 0;
    int count = 0;
    cJSON_ArrayForEach(item, replicas) {
        acc += score(item, "test_accuracy");
        loss += score(item, "test_loss");
        count++;
    }
    *n = 0;
    const char *keys[] = {"ensemble", "average", "average_recalibrated"};
    const char *names[] = {"ensemble", "average", "average+bn"};
    if (root && count > 0) fused_row(run, "replica-mean", acc / count, loss / count, &rows[(*n)++]);
    for (int k = 0; root && k < 3; k++) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, keys[k]);
        if (o) fused_row(run, names[k], score(o, "test_accuracy"), score(o, "test_loss"), &rows[(*n)++]);
    }
    cJSON_Delete(root);
    return *n >= 3 ? PC_OK : pc_fail(PC_ERR_DATA, "%s: no replicas, ensemble or average", path);
}

static void print_table(FILE *f, const strategy_run *runs, int n) {
    fprintf(f, "%-20s %8s %14s %9s %9s %9s %8s %14s %10s\n", "strategy", "replicas",
            "ranks x workers", "test_acc", "test_loss", "seconds", "speed-up", "bytes/epoch",
            "msgs/epoch");
    for (int i = 0; i < n; i++) {
        char layout[32];
        snprintf(layout, sizeof layout, "%d x %d", runs[i].ranks, runs[i].workers);
        if (runs[i].servers > 0)
            snprintf(layout + strlen(layout), sizeof layout - strlen(layout), " +%ds", runs[i].servers);
        fprintf(f, "%-20s %8d %14s %9.4f %9.4f %9.1f %7.2fx %14.0f %10.0f\n", runs[i].name,
                runs[i].replicas, layout, runs[i].accuracy, runs[i].loss, runs[i].seconds,
                runs[0].seconds / runs[i].seconds, runs[i].bytes, runs[i].messages);
    }
}

static void write_csv(FILE *f, const strategy_run *runs, int n) {
    fprintf(f, "strategy,replicas,ranks,workers,test_accuracy,test_loss,train_seconds,speedup,"
               "bytes_per_epoch,messages_per_epoch,servers\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s,%d,%d,%d,%.4f,%.4f,%.3f,%.3f,%.0f,%.0f,%d\n", runs[i].name, runs[i].replicas,
                runs[i].ranks, runs[i].workers, runs[i].accuracy, runs[i].loss, runs[i].seconds,
                runs[0].seconds / runs[i].seconds, runs[i].bytes, runs[i].messages, runs[i].servers);
}

/* Test accuracy after each epoch against the training seconds so far, one line per run;
 * a fused model of fusion (no epochs of its own) is one square at its run's end. The
 * first 12 entries have a colour each (later ones repeat them with the other marker),
 * and the canvas is as wide and tall as the legend needs. */
static void write_svg(FILE *f, const strategy_run *runs, int n) {
    static const char *const colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                          "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
                                          "#17becf", "#bcbd22", "#393b79", "#843c39"};
    enum { N_COLOURS = sizeof colours / sizeof colours[0], CHAR_PX = 7, LINE_PX = 18 };
    double tmax = 1, amin = 1, amax = 0;
    size_t label_chars = 0;
    for (int i = 0; i < n; i++) {
        tmax = PC_MAX(tmax, runs[i].seconds);
        amin = PC_MIN(amin, runs[i].accuracy);
        amax = PC_MAX(amax, runs[i].accuracy);
        for (int k = 0; k < runs[i].epochs; k++) {
            tmax = PC_MAX(tmax, runs[i].time[k]);
            amin = PC_MIN(amin, runs[i].acc[k]);
            amax = PC_MAX(amax, runs[i].acc[k]);
        }
        label_chars = PC_MAX(label_chars, strlen(runs[i].name) + 30);
    }
    pc_svg_chart c = {.left = 60, .top = 40, .width = 440, .height = 270, .x0 = 0, .x1 = tmax,
                      .y0 = amin - 0.01, .y1 = PC_MIN(1.0, amax + 0.01)};
    double legend_x = c.left + c.width + 12;
    pc_svg_begin(f, (int)(legend_x + CHAR_PX * label_chars),
                 (int)PC_MAX(c.top + c.height + 50, c.top + LINE_PX * (n + 1)));
    pc_svg_axes(f, &c, "test accuracy against training time, per strategy",
                "training seconds", "test accuracy");
    for (int i = 0; i < n; i++) {
        const char *colour = colours[i % N_COLOURS];
        pc_svg_line(f, &c, runs[i].time, runs[i].acc, runs[i].epochs, colour, 0);
        for (int k = 0; k < runs[i].epochs; k++)
            pc_svg_marker(f, &c, runs[i].time[k], runs[i].acc[k], colour, (i + i / N_COLOURS) % 2);
        if (runs[i].epochs == 0) pc_svg_marker(f, &c, runs[i].seconds, runs[i].accuracy, colour, 1);
        pc_svg_text(f, legend_x, c.top + 16 + LINE_PX * i, "start", 12, colour,
                    "%s (%d x %d): %.4f%s", runs[i].name, runs[i].ranks, runs[i].workers,
                    runs[i].accuracy, runs[i].epochs == 0 ? " (at the end)" : "");
    }
    pc_svg_end(f);
}

/* FILE in DIR, written whole by `write`. */
static pc_status write_file(const char *dir, const char *name, const strategy_run *runs, int n,
                            void (*write)(FILE *, const strategy_run *, int)) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return pc_fail(PC_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    write(f, runs, n);
    if (fclose(f) != 0) return pc_fail(PC_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    return PC_OK;
}

/* Split LIST (comma-separated --sync values) into runs after the sequential one. */
static int parse_strategies(char *list, strategy_run *runs, int *n) {
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        pc_sync sync;
        int stale = 0;
        char end;
        if (*n == MAX_STRATEGIES) return usage_error("bench strategies", "--strategies %s: too many", tok);
        if (sscanf(tok, "ps-staleness=%d%c", &stale, &end) == 1 && stale >= 0 && stale <= 64) {
            snprintf(runs[*n].name, sizeof runs[*n].name, "ps-staleness=%d", stale);
        } else if (strcmp(tok, "ps-async") == 0) {
            snprintf(runs[*n].name, sizeof runs[*n].name, "ps-async");
        } else if (strncmp(tok, "ps-", 3) == 0) {
            return usage_error("bench strategies", "--strategies %s: expected ps, ps-staleness=N "
                               "(N in [0, 64]) or ps-async", tok);
        } else {
            if (pc_sync_parse(tok, &sync) != PC_OK) return cli_fail(PC_ERR_USAGE);
            pc_sync_format(&sync, runs[*n].name, sizeof runs[*n].name);
        }
        (*n)++;
    }
    return 0;
}

/* Flags the benchmark sets itself for every run. */
static int reserved(const char *arg) {
    static const char *const names[] = {"--sync", "--replicas", "--workers", "--out",
                                        "--resume", "--overwrite", "--staleness", "--async"};
    for (int i = 0; i < 8; i++) {
        size_t len = strlen(names[i]);
        if (strncmp(arg, names[i], len) == 0 && (arg[len] == 0 || arg[len] == '=')) return 1;
    }
    return 0;
}

int cmd_bench_strategies(int argc, char **argv) {
    static strategy_run runs[MAX_ROWS];
    char *pass[MAX_ARGS], list[256] = "allreduce,local-sgd=16";
    const char *out = "bench-strategies";
    long ranks = 2, workers = 1, replicas = 0, recalibrate = 2048, servers = 1;
    int n_pass = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (strcmp(a, "--help") == 0) { fputs(strategies_help, stdout); return 0; }
        if (!strcmp(a, "--ranks") || !strcmp(a, "--workers") || !strcmp(a, "--replicas") ||
            !strcmp(a, "--strategies") || !strcmp(a, "--out") || !strcmp(a, "--bn-recalibrate") ||
            !strcmp(a, "--servers")) {
            if (!v) return usage_error("bench strategies", "%s: needs a value", a);
            if (!strcmp(a, "--ranks")) bad = parse_long("bench strategies", a, v, 1, 64, &ranks);
            else if (!strcmp(a, "--workers")) bad = parse_long("bench strategies", a, v, 1, 256, &workers);
            else if (!strcmp(a, "--replicas")) bad = parse_long("bench strategies", a, v, 1, 4096, &replicas);
            else if (!strcmp(a, "--bn-recalibrate"))
                bad = parse_long("bench strategies", a, v, 0, 2147483647, &recalibrate);
            else if (!strcmp(a, "--servers")) bad = parse_long("bench strategies", a, v, 1, 64, &servers);
            else if (!strcmp(a, "--out")) out = v;
            else snprintf(list, sizeof list, "%s", v);
            if (bad) return 2;
            i++;
            continue;
        }
        if (reserved(a))
            return usage_error("bench strategies", "%s: the benchmark sets it for each run", a);
        if (n_pass == MAX_ARGS) return usage_error("bench strategies", "%s: too many flags", a);
        pass[n_pass++] = argv[i];
    }
    int n = 1, st = parse_strategies(list, runs, &n);
    if (st) return st;
    snprintf(runs[0].name, sizeof runs[0].name, "sequential");
    runs[0].ranks = runs[0].workers = runs[0].replicas = 1;
    for (int i = 1; i < n; i++) {
        runs[i].ranks = (int)ranks;
        runs[i].workers = (int)workers;
        runs[i].replicas = has_replicas(runs[i].name) ? (int)(replicas ? replicas : ranks * workers)
                                                      : (int)(ranks * workers);
        runs[i].servers = strncmp(runs[i].name, "ps", 2) == 0 ? (int)servers : 0;
    }
    /* the runs, in order; a fusion run's fused models take the rows after it */
    static strategy_run planned[MAX_STRATEGIES + 1];
    int planned_n = n;
    memcpy(planned, runs, sizeof(strategy_run) * n);
    pc_status s = pc_mkdirs(out, "--out");
    n = 0;
    for (int i = 0; i < planned_n && s == PC_OK; i++) {
        runs[n] = planned[i];
        s = run_strategy(out, pass, n_pass, recalibrate, &runs[n]);
        int extra = 0;
        if (s == PC_OK && strcmp(runs[n].name, "fusion") == 0) s = fusion_rows(out, &runs[n], &runs[n + 1], &extra);
        n += 1 + extra;
    }
    if (s == PC_OK) s = write_file(out, "strategies.csv", runs, n, write_csv);
    if (s == PC_OK) s = write_file(out, "strategies.svg", runs, n, write_svg);
    if (s != PC_OK) return cli_fail(s);
    print_table(stdout, runs, n);
    printf("wrote %s/strategies.csv and %s/strategies.svg\n", out, out);
    return 0;
}
