/* The run's files for people. See report.h. */
#include "train/report.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <png.h>

#include "core/svg.h"
#include "train/early_stop.h"
#include "train/sampler.h"

static void path_in(char *buf, size_t n, const char *dir, const char *file) {
    snprintf(buf, n, "%s/%s", dir, file);
}

/* A cJSON tree, pretty-printed, to dir/file. */
static pc_status write_json(const char *dir, const char *file, cJSON *root) {
    char path[4096];
    path_in(path, sizeof path, dir, file);
    pc_status st = pc_json_write(path, root);
    cJSON_Delete(root);
    return st;
}

/* ------------------------------------------------------------ settings.json */

static void add_schedule(cJSON *o, const pc_train_config *c) {
    cJSON_AddStringToObject(o, "schedule", pc_sched_name(c->sched.kind));
    if (c->sched.kind == PC_SCHED_EXP || c->sched.kind == PC_SCHED_STEP) {
        cJSON_AddNumberToObject(o, "decay_rate", c->sched.decay_rate);
        cJSON_AddNumberToObject(o, "decay_epochs", c->sched.decay_epochs);
    }
    if (c->sched.kind == PC_SCHED_TRIANGULAR) {
        cJSON_AddNumberToObject(o, "peak_epoch",
                                c->sched.peak_epoch >= 0 ? c->sched.peak_epoch : 0.2 * c->epochs);
        cJSON_AddNumberToObject(o, "start_factor", c->sched.start_factor);
    }
    if (c->sched.warmup_epochs > 0) cJSON_AddNumberToObject(o, "warmup_epochs", c->sched.warmup_epochs);
}

static void add_optimizer(cJSON *o, const pc_train_config *c, double lr) {
    cJSON_AddStringToObject(o, "optimizer", pc_opt_name(c->opt.kind));
    cJSON_AddNumberToObject(o, "lr", lr);
    if (c->opt.kind == PC_OPT_SGD) {
        cJSON_AddNumberToObject(o, "momentum", c->opt.momentum);
        cJSON_AddBoolToObject(o, "nesterov", c->opt.nesterov);
    }
    cJSON_AddNumberToObject(o, "weight_decay", c->opt.weight_decay);
    if (c->bias_lr_mult != 1) cJSON_AddNumberToObject(o, "bias_lr_mult", c->bias_lr_mult);
    if (c->norm_bias_lr_mult != 1) cJSON_AddNumberToObject(o, "norm_bias_lr_mult", c->norm_bias_lr_mult);
    if (c->label_smoothing > 0) cJSON_AddNumberToObject(o, "label_smoothing", c->label_smoothing);
    if (c->ema > 0) cJSON_AddNumberToObject(o, "ema", c->ema);
    if (c->lookahead > 0) cJSON_AddNumberToObject(o, "lookahead", c->lookahead);
}

pc_status pc_report_write_settings(const char *dir, const pc_train_config *c,
                                   const pc_report_facts *f) {
    char text[256];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", f->model);
    cJSON_AddNumberToObject(o, "parameters", (double)f->params);
    cJSON_AddStringToObject(o, "data", c->data);
    snprintf(text, sizeof text, "%dx%dx%d", f->c, f->h, f->w);
    cJSON_AddStringToObject(o, "input", text);
    cJSON_AddNumberToObject(o, "classes", f->classes);
    cJSON_AddNumberToObject(o, "train_samples", (double)f->train_samples);
    cJSON_AddNumberToObject(o, "test_samples", (double)f->test_samples);
    if (f->val_samples) cJSON_AddNumberToObject(o, "validation_samples", (double)f->val_samples);
    cJSON_AddNumberToObject(o, "epochs", c->epochs);
    cJSON_AddNumberToObject(o, "steps_per_epoch", (double)f->steps_per_epoch);
    if (c->max_steps > 0) cJSON_AddNumberToObject(o, "max_steps", (double)c->max_steps);
    cJSON_AddNumberToObject(o, "batch", c->batch);
    cJSON_AddNumberToObject(o, "shard_size", c->shard_size);
    cJSON_AddNumberToObject(o, "ranks", f->ranks);
    cJSON_AddNumberToObject(o, "workers", c->workers);
    cJSON_AddNumberToObject(o, "threads", c->threads);
    add_optimizer(o, c, f->lr);
    add_schedule(o, c);
    pc_augment_format(&c->augment, text, sizeof text);
    cJSON_AddStringToObject(o, "augment", text);
    pc_tta_format(&c->tta, text, sizeof text);
    cJSON_AddStringToObject(o, "tta", text);
    cJSON_AddNumberToObject(o, "seed", (double)c->seed);
    cJSON_AddStringToObject(o, "precision", c->exec.precision == PC_PRECISION_BF16 ? "bf16" : "fp32");
    cJSON_AddStringToObject(o, "kernels", f->kernels);
    if (c->reduce_fast) cJSON_AddStringToObject(o, "reduce", "fast");
    if (c->sampler == PC_SAMPLER_BALANCED) cJSON_AddStringToObject(o, "sampler", "balanced");
    if (c->class_weights) cJSON_AddStringToObject(o, "class_weights", c->class_weights);
    if (c->early_stop > 0) cJSON_AddNumberToObject(o, "early_stop", c->early_stop);
    if (c->early_stop > 0 || c->keep_best) {
        cJSON_AddStringToObject(o, "monitor", pc_monitor_name(c->monitor));
        cJSON_AddNumberToObject(o, "min_delta", c->min_delta);
    }
    if (c->keep_best) cJSON_AddStringToObject(o, "keep", "best");
    return write_json(dir, "settings.json", o);
}

/* ------------------------------------------------------------ samples.json */

typedef struct {
    unsigned char *data;
    size_t n, cap;
} byte_buf;

static void png_write_cb(png_structp png, png_bytep src, size_t len) {
    byte_buf *b = png_get_io_ptr(png);
    if (b->n + len > b->cap) {
        size_t cap = (b->n + len) * 2;
        unsigned char *d = realloc(b->data, cap);
        if (!d) png_error(png, "out of memory");
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->n, src, len);
    b->n += len;
}

static void png_flush_cb(png_structp png) { (void)png; }

/* One CHW uint8 image (1 or 3 channels; others: the first) as a PNG in memory. */
static int encode_png(const uint8_t *chw, int c, int h, int w, byte_buf *out) {
    int color = c >= 3 ? 3 : 1;
    unsigned char *rows = malloc((size_t)h * w * color);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!rows || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        free(rows);
        return -1;
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < color; k++)
                rows[((size_t)y * w + x) * color + k] = chw[((size_t)k * h + y) * w + x];
    png_set_write_fn(png, out, png_write_cb, png_flush_cb);
    png_set_IHDR(png, info, w, h, 8, color == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, rows + (size_t)y * w * color);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return 0;
}

/* "data:image/png;base64,..." of n bytes (malloc'ed). */
static char *data_uri(const unsigned char *s, size_t n) {
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *head = "data:image/png;base64,";
    size_t h = strlen(head);
    char *out = malloc(h + (n + 2) / 3 * 4 + 1), *p;
    if (!out) return NULL;
    memcpy(out, head, h);
    p = out + h;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        *p++ = digits[v >> 18 & 63];
        *p++ = digits[v >> 12 & 63];
        *p++ = i + 1 < n ? digits[v >> 6 & 63] : '=';
        *p++ = i + 2 < n ? digits[v & 63] : '=';
    }
    *p = 0;
    return out;
}

static int arg_max(const float *p, int n) {
    int best = 0;
    for (int k = 1; k < n; k++)
        if (p[k] > p[best]) best = k;
    return best;
}

/* One sample's entry; 0 on success. */
static pc_status add_sample(cJSON *list, const pc_dataset *d, const pc_metrics *m,
                            char *const *names, int64_t i, uint8_t *scratch) {
    const uint8_t *px;
    PC_TRY(pc_dataset_sample(d, i, scratch, &px));
    byte_buf png = {0};
    char *uri = NULL;
    if (encode_png(px, d->c, d->h, d->w, &png) == 0) uri = data_uri(png.data, png.n);
    free(png.data);
    if (!uri) return pc_fail(PC_ERR_NOMEM, "out of memory encoding sample images");
    const float *p = m->scores + i * m->classes;
    int pred = arg_max(p, m->classes);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", (double)i);
    cJSON_AddStringToObject(o, "true", names[m->labels[i]]);
    cJSON_AddStringToObject(o, "predicted", names[pred]);
    cJSON_AddNumberToObject(o, "probability", p[pred]);
    cJSON_AddStringToObject(o, "png", uri);
    cJSON_AddItemToArray(list, o);
    free(uri);
    return PC_OK;
}

pc_status pc_report_write_samples(const char *dir, const pc_dataset *d, const pc_metrics *m,
                                  char *const *names, int count) {
    if (!m->scores || m->n > d->n) return PC_OK;
    uint8_t *scratch = malloc((size_t)d->c * d->h * d->w);
    if (!scratch) return pc_fail_nomem();
    cJSON *root = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(root, "samples");
    int taken = 0;
    pc_status st = PC_OK;
    for (int wrong = 1; wrong >= 0; wrong--) /* the misclassified first */
        for (int64_t i = 0; st == PC_OK && i < m->n && taken < count; i++) {
            int ok = arg_max(m->scores + i * m->classes, m->classes) == m->labels[i];
            if (ok == wrong) continue;
            st = add_sample(list, d, m, names, i, scratch);
            taken++;
        }
    free(scratch);
    if (st != PC_OK) {
        cJSON_Delete(root);
        return st;
    }
    return write_json(dir, "samples.json", root);
}

/* ------------------------------------------------------------ reading a run back */

static cJSON *read_json(const char *dir, const char *file) {
    char path[4096];
    path_in(path, sizeof path, dir, file);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *text = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n + 65536 > cap) {
            char *t = realloc(text, cap = n + 65536 + cap);
            if (!t) break;
            text = t;
        }
        got = fread(text + n, 1, cap - n - 1, f);
        n += got;
    } while (got > 0);
    fclose(f);
    if (!text) return NULL;
    text[n] = 0;
    cJSON *o = cJSON_Parse(text);
    free(text);
    return o;
}

static double number(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static double **series(pc_report_run *r, int k) {
    double **all[] = {&r->epoch, &r->clock, &r->train_loss, &r->train_acc, &r->val_loss,
                      &r->val_acc, &r->lr, &r->ips, &r->split[0], &r->split[1],
                      &r->split[2], &r->split[3], &r->split[4]};
    return all[k];
}
enum { SERIES = 13 };

static int grow(pc_report_run *r, int cap) {
    for (int k = 0; k < SERIES; k++) {
        double *p = realloc(*series(r, k), sizeof(double) * cap);
        if (!p) return -1;
        *series(r, k) = p;
    }
    return 0;
}

/* One epoch line into point i; steps_per_epoch <= 0: the line's epoch number. */
static void add_line(pc_report_run *r, const cJSON *o, double steps_per_epoch, double *clock) {
    static const char *keys[] = {"train_loss", "train_acc", "val_loss", "val_acc", "lr",
                                 "images_per_second", "data_seconds", "compute_seconds",
                                 "reduce_seconds", "comm_seconds", "optimizer_seconds"};
    int i = r->n++;
    *clock += number(o, "epoch_seconds");
    r->epoch[i] = steps_per_epoch > 0 ? number(o, "step") / steps_per_epoch : number(o, "epoch");
    r->clock[i] = *clock;
    for (int k = 0; k < 11; k++) (*series(r, k + 2))[i] = number(o, keys[k]);
}

static pc_status read_metrics(const char *dir, pc_report_run *r) {
    char path[4096];
    path_in(path, sizeof path, dir, "metrics.jsonl");
    FILE *f = fopen(path, "r");
    if (!f) return pc_fail(PC_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    double spe = r->settings ? number(r->settings, "steps_per_epoch") : NAN, clock = 0;
    char *line = NULL;
    size_t cap = 0;
    pc_status st = PC_OK;
    for (int lineno = 1, slots = 0; st == PC_OK && getline(&line, &cap, f) > 0; lineno++) {
        cJSON *o = cJSON_Parse(line);
        if (isnan(number(o, "step")) || isnan(number(o, "val_acc")) || isnan(number(o, "epoch_seconds")))
            st = pc_fail(PC_ERR_DATA, "%s:%d: not a metrics line", path, lineno);
        else if (r->n == slots && grow(r, slots = 2 * slots + 16))
            st = pc_fail_nomem();
        else
            add_line(r, o, isnan(spe) ? 0 : spe, &clock);
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    return st;
}

pc_status pc_report_run_load(const char *dir, pc_report_run *r) {
    memset(r, 0, sizeof *r);
    r->dir = strdup(dir);
    r->settings = read_json(dir, "settings.json");
    r->eval = read_json(dir, "eval.json");
    r->samples = read_json(dir, "samples.json");
    const char *base = strrchr(dir, '/');
    while (base && base[1] == 0 && base > dir) { /* a trailing slash */
        const char *p = base - 1;
        while (p > dir && *p != '/') p--;
        base = *p == '/' ? p : NULL;
    }
    char label[512];
    snprintf(label, sizeof label, "%s", base ? base + 1 : dir);
    label[strcspn(label, "/")] = 0;
    if (r->settings)
        snprintf(label + strlen(label), sizeof label - strlen(label), " (%g rank%s x %g worker%s)",
                 number(r->settings, "ranks"), number(r->settings, "ranks") > 1 ? "s" : "",
                 number(r->settings, "workers"), number(r->settings, "workers") > 1 ? "s" : "");
    r->label = strdup(label);
    if (!r->dir || !r->label) return pc_fail_nomem();
    return read_metrics(dir, r);
}

void pc_report_run_free(pc_report_run *r) {
    for (int k = 0; k < SERIES; k++) free(*series(r, k));
    cJSON_Delete(r->settings);
    cJSON_Delete(r->eval);
    cJSON_Delete(r->samples);
    free(r->dir);
    free(r->label);
    memset(r, 0, sizeof *r);
}

static const char *string(const cJSON *o, const char *key, const char *otherwise) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : otherwise;
}

void pc_report_title(const pc_report_run *r, char *buf, size_t cap) {
    const char *tta = string(r->eval, "tta", "none");
    int ema = r->settings && !isnan(number(r->settings, "ema"));
    char notes[128] = "";
    if (strcmp(tta, "none") != 0 || ema)
        snprintf(notes, sizeof notes, " (%s%s%s%s)", strcmp(tta, "none") ? "tta " : "",
                 strcmp(tta, "none") ? tta : "", strcmp(tta, "none") && ema ? ", " : "",
                 ema ? "weight average" : "");
    double acc = r->eval ? number(r->eval, "accuracy") : r->n ? r->val_acc[r->n - 1] : NAN;
    snprintf(buf, cap, "%s on %s: final test accuracy %.4f%s", string(r->settings, "model", "model"),
             string(r->settings, "data", r->dir), acc, notes);
}

/* ------------------------------------------------------------ report.svg */

/* Accuracy axis: tenths around the data, within [0, 1]. */
static void accuracy_range(const double *a, int n, double *lo, double *hi) {
    double mn = 1, mx = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(a[i])) mn = fmin(mn, a[i]), mx = fmax(mx, a[i]);
    *lo = mn <= mx ? fmax(0, floor(mn * 10 - 1e-9) / 10) : 0;
    *hi = mn <= mx ? fmin(1, ceil(mx * 10 + 1e-9) / 10) : 1;
}

static void accuracy_chart(FILE *f, const pc_report_run *r, double left, const double *x,
                           double xmax, const char *title, const char *xlabel, int x_integers) {
    pc_svg_chart c = {.left = left, .top = 70, .width = 280, .height = 200, .x0 = 0,
                      .x1 = xmax > 0 ? xmax : 1, .x_integers = x_integers};
    accuracy_range(r->val_acc, r->n, &c.y0, &c.y1);
    pc_svg_axes(f, &c, title, xlabel, "val accuracy");
    pc_svg_line(f, &c, x, r->val_acc, r->n, "#1f77b4", 0);
    for (int i = 0; i < r->n; i++) pc_svg_marker(f, &c, x[i], r->val_acc[i], "#1f77b4", 0);
}

static double finite_max(const double *a, int n) {
    double m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(a[i])) m = fmax(m, a[i]);
    return m;
}

static void loss_chart(FILE *f, const pc_report_run *r, double left, double xmax) {
    pc_svg_chart c = {.left = left, .top = 70, .width = 280, .height = 200, .x0 = 0,
                      .x1 = xmax > 0 ? xmax : 1, .x_integers = 1, .y0 = 0};
    c.y1 = fmax(finite_max(r->train_loss, r->n), finite_max(r->val_loss, r->n)) * 1.05;
    pc_svg_axes(f, &c, "loss", "epoch", "loss");
    pc_svg_line(f, &c, r->epoch, r->train_loss, r->n, "#ff7f0e", 0);
    pc_svg_line(f, &c, r->epoch, r->val_loss, r->n, "#1f77b4", 0);
    pc_svg_text(f, left + c.width - 4, 86, "end", 12, "#ff7f0e", "train");
    pc_svg_text(f, left + c.width - 4, 102, "end", 12, "#1f77b4", "val");
}

static void write_svg(FILE *f, const pc_report_run *r) {
    char title[512];
    pc_report_title(r, title, sizeof title);
    double last_epoch = ceil(finite_max(r->epoch, r->n));
    pc_svg_begin(f, 1130, 330);
    pc_svg_text(f, 20, 24, "start", 15, "black", "%s", title);
    accuracy_chart(f, r, 80, r->clock, r->n ? r->clock[r->n - 1] : 0, "against time",
                   "wall-clock seconds (training and evaluation)", 0);
    accuracy_chart(f, r, 450, r->epoch, last_epoch, "against epochs", "epoch", 1);
    loss_chart(f, r, 820, last_epoch);
    pc_svg_end(f);
}

/* A page produced by `write` into memory, then atomically to path. */
static pc_status write_page(const char *path, void (*write)(FILE *, const pc_report_run *, int),
                            const pc_report_run *runs, int n) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return pc_fail_nomem();
    write(f, runs, n);
    int bad = ferror(f);
    fclose(f);
    pc_status st = bad ? pc_fail_nomem() : pc_write_file_atomic(path, text, len);
    free(text);
    return st;
}

static void svg_page(FILE *f, const pc_report_run *runs, int n) { write_svg(f, &runs[0]); }

pc_status pc_report_write(const char *dir) {
    pc_report_run r;
    char path[4096];
    pc_status st = pc_report_run_load(dir, &r);
    path_in(path, sizeof path, dir, "report.svg");
    if (st == PC_OK) st = write_page(path, svg_page, &r, 1);
    path_in(path, sizeof path, dir, "report.html");
    if (st == PC_OK) st = write_page(path, pc_report_html, &r, 1);
    pc_report_run_free(&r);
    return st;
}

pc_status pc_report_write_html(const char *const *dirs, int n, const char *out_path) {
    pc_report_run *runs = calloc(n, sizeof *runs);
    if (!runs) return pc_fail_nomem();
    pc_status st = PC_OK;
    for (int k = 0; k < n && st == PC_OK; k++) st = pc_report_run_load(dirs[k], &runs[k]);
    if (st == PC_OK) st = write_page(out_path, pc_report_html, runs, n);
    for (int k = 0; k < n; k++) pc_report_run_free(&runs[k]);
    free(runs);
    return st;
}
