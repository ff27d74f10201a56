/* The per-run report. See report.h. */
#include "train/report.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/svg.h"

typedef struct {
    int n, cap;
    double *epoch, *seconds, *accuracy; /* seconds: since the start of the run */
} history;

static void history_free(history *h) {
    free(h->epoch);
    free(h->seconds);
    free(h->accuracy);
}

static int history_add(history *h, double epoch, double seconds, double accuracy) {
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 64;
        double *e = realloc(h->epoch, sizeof(double) * cap);
        if (e) h->epoch = e;
        double *s = realloc(h->seconds, sizeof(double) * cap);
        if (s) h->seconds = s;
        double *a = realloc(h->accuracy, sizeof(double) * cap);
        if (a) h->accuracy = a;
        if (!e || !s || !a) return -1;
        h->cap = cap;
    }
    h->epoch[h->n] = epoch;
    h->seconds[h->n] = seconds;
    h->accuracy[h->n++] = accuracy;
    return 0;
}

/* One point per metrics line: step / steps_per_epoch, val_acc and the running sum of
 * epoch_seconds. */
static pc_status read_history(const char *path, int64_t steps_per_epoch, history *h) {
    FILE *f = fopen(path, "r");
    if (!f) return pc_fail(PC_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    double clock = 0;
    pc_status st = PC_OK;
    for (int number = 1; st == PC_OK && getline(&line, &cap, f) > 0; number++) {
        cJSON *o = cJSON_Parse(line);
        cJSON *step = cJSON_GetObjectItem(o, "step"), *acc = cJSON_GetObjectItem(o, "val_acc");
        cJSON *secs = cJSON_GetObjectItem(o, "epoch_seconds");
        if (!cJSON_IsNumber(step) || !cJSON_IsNumber(acc) || !cJSON_IsNumber(secs)) {
            st = pc_fail(PC_ERR_DATA, "%s:%d: not a metrics line", path, number);
        } else {
            clock += secs->valuedouble;
            if (history_add(h, step->valuedouble / (double)steps_per_epoch, clock, acc->valuedouble))
                st = pc_fail(PC_ERR_NOMEM, "out of memory");
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    return st;
}

/* Accuracy axis: tenths around the data, within [0, 1]. */
static void accuracy_range(const history *h, double *lo, double *hi) {
    double mn = 1, mx = 0;
    for (int i = 0; i < h->n; i++) mn = fmin(mn, h->accuracy[i]), mx = fmax(mx, h->accuracy[i]);
    *lo = h->n ? fmax(0, floor(mn * 10 - 1e-9) / 10) : 0;
    *hi = h->n ? fmin(1, ceil(mx * 10 + 1e-9) / 10) : 1;
}

static void chart(FILE *f, const history *h, double left, const double *x, double xmax,
                  const char *title, const char *xlabel, int x_integers) {
    pc_svg_chart c = {.left = left, .top = 70, .width = 280, .height = 200, .x0 = 0,
                      .x1 = xmax > 0 ? xmax : 1, .x_integers = x_integers};
    accuracy_range(h, &c.y0, &c.y1);
    pc_svg_axes(f, &c, title, xlabel, "test accuracy");
    pc_svg_line(f, &c, x, h->accuracy, h->n, "#1f77b4", 0);
    for (int i = 0; i < h->n; i++) pc_svg_marker(f, &c, x[i], h->accuracy[i], "#1f77b4", 0);
}

static void write_svg(FILE *f, const history *h, const char *title) {
    double last_epoch = 0;
    for (int i = 0; i < h->n; i++) last_epoch = fmax(last_epoch, h->epoch[i]);
    pc_svg_begin(f, 760, 330);
    pc_svg_text(f, 20, 24, "start", 15, "black", "%s", title);
    chart(f, h, 80, h->seconds, h->n ? h->seconds[h->n - 1] : 0, "against time",
          "wall-clock seconds (training and evaluation)", 0);
    chart(f, h, 450, h->epoch, ceil(last_epoch), "against epochs", "epoch", 1);
    pc_svg_end(f);
}

pc_status pc_report_write(const char *dir, const char *title, int64_t steps_per_epoch) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    history h = {0};
    pc_status st = read_history(path, steps_per_epoch, &h);
    snprintf(path, sizeof path, "%s/report.svg", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = st == PC_OK ? fopen(tmp, "w") : NULL;
    if (st == PC_OK && !f) st = pc_fail(PC_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    if (f) {
        write_svg(f, &h, title);
        int bad = ferror(f);
        if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
            st = pc_fail(PC_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
            remove(tmp);
        }
    }
    history_free(&h);
    return st;
}

pc_status pc_write_file_atomic(const char *path, const void *data, size_t len) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return pc_fail(PC_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    int ok = fwrite(data, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int err = errno;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, path) == 0) return PC_OK;
    if (ok) err = errno;
    remove(tmp);
    return pc_fail(PC_ERR_IO, "%s: cannot write: %s", path, strerror(err));
}
