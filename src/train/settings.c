#include "train/settings.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(char *buf, size_t size, const char *fmt, ...) {
    size_t len = strlen(buf);
    if (len + 1 >= size) return;
    if (len) buf[len++] = ' ', buf[len] = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

static const char *const kernel_names[] = {"auto", "ref", "onednn", "onednn-bf16"};
static const char *const conv_algo_names[] = {"auto", "direct", "winograd"};

void pc_train_settings_format(const pc_train_config *c, char *buf, size_t size) {
    char augment[256], tta[64];
    pc_augment_format(&c->augment, augment, sizeof augment);
    pc_tta_format(&c->tta, tta, sizeof tta);
    const pc_opt_config *o = &c->opt;
    const pc_sched_config *s = &c->sched;
    const pc_folder_options *f = &c->folder;
    buf[0] = 0;
    add(buf, size, "data=%s model=%s out=%s", c->data, c->model, c->out_dir ? c->out_dir : "none");
    add(buf, size, "epochs=%d batch=%d shard_size=%d workers=%d threads=%d", c->epochs,
        c->batch, c->shard_size, c->workers, c->threads);
    add(buf, size, "optimizer=%s momentum=%g nesterov=%d weight_decay=%g beta1=%g beta2=%g "
        "eps=%g", pc_opt_name(o->kind), o->momentum, o->nesterov, o->weight_decay, o->beta1,
        o->beta2, o->eps);
    add(buf, size, "schedule=%s lr=%g decay_rate=%g decay_epochs=%g warmup_epochs=%g min_lr=%g "
        "peak_epoch=%g start_factor=%g", pc_sched_name(s->kind), s->base_lr, s->decay_rate,
        s->decay_epochs, s->warmup_epochs, s->min_lr, s->peak_epoch, s->start_factor);
    add(buf, size, "bias_lr_mult=%g norm_bias_lr_mult=%g no_decay_bn_bias=%d ema=%g "
        "lookahead=%d", c->bias_lr_mult, c->norm_bias_lr_mult, c->no_decay_bn_bias, c->ema,
        c->lookahead);
    add(buf, size, "tta=%s seed=%llu resume=%d overwrite=%d limit=%lld eval_limit=%lld "
        "max_steps=%lld", tta, (unsigned long long)c->seed, c->resume, c->overwrite,
        (long long)c->limit, (long long)c->eval_limit, (long long)c->max_steps);
    add(buf, size, "label_smoothing=%g lr_scale=%s lr_ref_batch=%d kernels=%s conv_algo=%s "
        "profile=%d", c->label_smoothing, pc_lr_scale_name(c->lr_scale), c->lr_ref_batch,
        kernel_names[c->kernels], conv_algo_names[c->conv_algo], c->profile);
    add(buf, size, "image_size=%d channels=%d val_split=%g cache=%s on_bad_image=%s "
        "decode_threads=%d max_pixels=%lld", f->image_size, f->channels, f->val_split,
        f->cache ? f->cache : "memory", f->on_bad_skip ? "skip" : "fail", f->decode_threads,
        (long long)f->max_pixels);
    add(buf, size, "augment=%s loader_threads=%d reduce=%s timeout=%g ensemble=%d", augment,
        c->loader_threads, c->reduce_fast ? "fast" : "deterministic", c->timeout, c->ensemble);
}

/* The words of a settings string as keys and values (a word without '=' continues the
 * previous value): parsed in place in a copy. */
typedef struct {
    char *copy;
    int n;
    char *key[256], *value[256];
} settings;

static void parse(const char *text, settings *s) {
    s->n = 0;
    s->copy = strdup(text);
    if (!s->copy) return;
    char *save = NULL;
    for (char *w = strtok_r(s->copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(w, '=');
        if (!eq && s->n > 0) { /* a value with a space: rejoin it */
            w[-1] = ' ';
            continue;
        }
        if (s->n == 256) break;
        if (eq) *eq = 0;
        s->key[s->n] = w;
        s->value[s->n] = eq ? eq + 1 : "";
        s->n++;
    }
}

static const char *lookup(const settings *s, const char *key) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->key[i], key) == 0) return s->value[i];
    return NULL;
}

static void describe(char *diff, size_t size, const char *key, const char *label_a,
                     const char *va, const char *label_b, const char *vb) {
    size_t len = strlen(diff);
    snprintf(diff + len, size - len, "%s%s: %s has %s, %s has %s", len ? "; " : "", key,
             label_a, va ? va : "none", label_b, vb ? vb : "none");
}

void pc_settings_diff(const char *a, const char *label_a, const char *b, const char *label_b,
                      char *diff, size_t size) {
    settings *sa = calloc(1, sizeof *sa), *sb = calloc(1, sizeof *sb);
    diff[0] = 0;
    if (sa && sb) {
        parse(a, sa);
        parse(b, sb);
        for (int i = 0; i < sa->n; i++) {
            const char *vb = lookup(sb, sa->key[i]);
            if (!vb || strcmp(vb, sa->value[i]) != 0)
                describe(diff, size, sa->key[i], label_a, sa->value[i], label_b, vb);
        }
        for (int i = 0; i < sb->n; i++)
            if (!lookup(sa, sb->key[i]))
                describe(diff, size, sb->key[i], label_a, NULL, label_b, sb->value[i]);
        free(sa->copy);
        free(sb->copy);
    }
    if (!diff[0]) snprintf(diff, size, "%s", "the settings differ");
    free(sa);
    free(sb);
}
