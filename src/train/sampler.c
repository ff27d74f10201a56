/* Epoch orders. See sampler.h. */
#include "train/sampler.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

pc_status pc_sampler_init(pc_sampler *s, pc_sampler_kind kind, const int32_t *labels, int64_t n,
                          int classes) {
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->classes = classes;
    if (kind == PC_SAMPLER_SHUFFLE) return PC_OK;
    s->by_class = malloc(sizeof(int64_t) * (n ? n : 1));
    s->class_start = calloc(classes + 1, sizeof(int64_t));
    s->present_class = malloc(sizeof(int) * classes);
    if (!s->by_class || !s->class_start || !s->present_class) {
        pc_sampler_free(s);
        return pc_fail_nomem();
    }
    for (int64_t i = 0; i < n; i++) s->class_start[labels[i] + 1]++;
    for (int k = 0; k < classes; k++) {
        if (s->class_start[k + 1]) s->present_class[s->present++] = k;
        s->class_start[k + 1] += s->class_start[k];
    }
    int64_t *fill = calloc(classes, sizeof(int64_t));
    if (!fill) {
        pc_sampler_free(s);
        return pc_fail_nomem();
    }
    for (int64_t i = 0; i < n; i++) s->by_class[s->class_start[labels[i]] + fill[labels[i]]++] = i;
    free(fill);
    return PC_OK;
}

void pc_sampler_free(pc_sampler *s) {
    free(s->by_class);
    free(s->class_start);
    free(s->present_class);
    memset(s, 0, sizeof *s);
}

void pc_sampler_epoch(const pc_sampler *s, uint64_t seed, int epoch, int64_t n, int64_t *perm) {
    pc_stream r = {.key = pc_rand64(seed, PC_RNG_SHUFFLE, (uint64_t)epoch, 0, 0)};
    if (s->kind == PC_SAMPLER_BALANCED && s->present > 0) {
        /* a class uniformly, then a sample of it uniformly: probability 1 / (classes x count) */
        for (int64_t i = 0; i < n; i++) {
            int k = s->present_class[pc_stream_below(&r, (uint64_t)s->present)];
            int64_t count = s->class_start[k + 1] - s->class_start[k];
            perm[i] = s->by_class[s->class_start[k] + (int64_t)pc_stream_below(&r, (uint64_t)count)];
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) perm[i] = i; /* Fisher-Yates */
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)pc_stream_below(&r, (uint64_t)(i + 1));
        int64_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}

/* One line of a weights file: "WEIGHT" or "CLASS WEIGHT"; k is the class it is for. */
static pc_status weight_line(const char *path, int lineno, char *line, const pc_dataset *d, int k,
                             float *w) {
    char *end, *space = strrchr(line, ' '), *num = space ? space + 1 : line;
    if (space) {
        *space = 0;
        if (k < d->classes && strcmp(line, d->class_names[k]) != 0)
            return pc_fail(PC_ERR_DATA, "%s:%d: class '%s', expected '%s' (one line per class, "
                           "in class order)", path, lineno, line, d->class_names[k]);
    }
    double v = strtod(num, &end);
    if (end == num || *end || !(v > 0) || !isfinite(v))
        return pc_fail(PC_ERR_DATA, "%s:%d: '%s' is not a weight > 0", path, lineno, num);
    if (k >= d->classes)
        return pc_fail(PC_ERR_DATA, "%s:%d: more weights than the %d classes", path, lineno, d->classes);
    *w = (float)v;
    return PC_OK;
}

static pc_status read_weights(const char *path, const pc_dataset *d, float *w) {
    FILE *f = fopen(path, "r");
    if (!f) return pc_fail(PC_ERR_IO, "--class-weights %s: cannot read: %s", path, strerror(errno));
    char line[1024];
    int k = 0, lineno = 0;
    pc_status st = PC_OK;
    while (st == PC_OK && fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "#\r\n")] = 0;
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        for (char *e = s + strlen(s); e > s && (e[-1] == ' ' || e[-1] == '\t');) *--e = 0;
        if (!*s) continue;
        st = weight_line(path, lineno, s, d, k, &w[k < d->classes ? k : 0]);
        k++;
    }
    fclose(f);
    if (st == PC_OK && k != d->classes)
        st = pc_fail(PC_ERR_DATA, "%s: %d weights for %d classes", path, k, d->classes);
    return st;
}

pc_status pc_class_weights(const char *spec, const pc_dataset *d, float **out) {
    *out = NULL;
    if (!spec || strcmp(spec, "none") == 0) return PC_OK;
    float *w = calloc(d->classes, sizeof(float));
    int64_t *count = calloc(d->classes, sizeof(int64_t));
    pc_status st = w && count ? PC_OK : pc_fail_nomem();
    if (st == PC_OK && strcmp(spec, "balanced") == 0) {
        int present = 0;
        for (int64_t i = 0; i < d->n; i++) present += count[d->labels[i]]++ == 0;
        for (int k = 0; k < d->classes; k++)
            w[k] = count[k] ? (float)((double)d->n / ((double)present * (double)count[k])) : 0.0f;
    } else if (st == PC_OK) {
        st = read_weights(spec, d, w);
    }
    free(count);
    if (st == PC_OK) *out = w;
    else free(w);
    return st;
}
