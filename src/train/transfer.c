#include "train/transfer.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/exec.h"
#include "train/pool.h"

/* ------------------------------------------------------------- options */

pc_status pc_transfer_parse_freeze(const char *spec, pc_transfer_config *c) {
    if (strcmp(spec, "none") == 0) {
        c->freeze = PC_FREEZE_NONE;
    } else if (strcmp(spec, "all-but-head") == 0) {
        c->freeze = PC_FREEZE_ALL_BUT_HEAD;
    } else if (strncmp(spec, "up-to=", 6) == 0 && spec[6] && strlen(spec + 6) < PC_NAME_LEN) {
        c->freeze = PC_FREEZE_UP_TO;
        strcpy(c->freeze_layer, spec + 6);
    } else {
        return pc_fail(PC_ERR_USAGE, "--freeze %s: expected all-but-head, up-to=LAYER or none",
                       spec);
    }
    return PC_OK;
}

void pc_transfer_format_freeze(const pc_transfer_config *c, char *out, size_t size) {
    if (c->freeze == PC_FREEZE_UP_TO) snprintf(out, size, "up-to=%s", c->freeze_layer);
    else snprintf(out, size, "%s", c->freeze == PC_FREEZE_ALL_BUT_HEAD ? "all-but-head" : "none");
}

pc_status pc_transfer_check(const pc_transfer_config *c) {
    if (!c->init && (c->cut || c->head || c->freeze != PC_FREEZE_NONE || c->unfreeze_at > 0))
        return pc_fail(PC_ERR_USAGE, "--%s needs --init MODEL (a pretrained network)",
                       c->cut ? "cut" : c->head ? "head" : c->freeze ? "freeze" : "unfreeze-at");
    if (c->head == 1)
        return pc_fail(PC_ERR_USAGE, "--head 1: a classifier needs at least 2 classes");
    if (c->head < 0) return pc_fail(PC_ERR_USAGE, "--head %d: must be at least 2", c->head);
    if (c->unfreeze_at < 0)
        return pc_fail(PC_ERR_USAGE, "--unfreeze-at %g: must be positive", c->unfreeze_at);
    if (c->unfreeze_at > 0 && c->freeze == PC_FREEZE_NONE)
        return pc_fail(PC_ERR_USAGE, "--unfreeze-at needs --freeze (nothing is frozen)");
    if (!(c->finetune_lr_mult > 0) || !isfinite(c->finetune_lr_mult))
        return pc_fail(PC_ERR_USAGE, "--finetune-lr-mult %g: must be positive", c->finetune_lr_mult);
    if (c->bn_recalibrate < 0)
        return pc_fail(PC_ERR_USAGE, "--bn-recalibrate %d: must be positive", c->bn_recalibrate);
    return PC_OK;
}

/* ------------------------------------------------------------- the pretrained model */

pc_status pc_pretrained_load(const char *path, pc_pretrained *out) {
    memset(out, 0, sizeof *out);
    pc_status st = pc_model_load(path, &out->model, &out->meta);
    if (st != PC_OK) return pc_fail(st, "--init: %s", pc_last_error());
    if (out->meta.h != out->meta.w) {
        pc_pretrained_free(out);
        return pc_fail(PC_ERR_DATA, "--init %s: input %dx%d is not square", path, out->meta.h,
                       out->meta.w);
    }
    return PC_OK;
}

void pc_pretrained_free(pc_pretrained *p) {
    pc_model_free(p->model);
    pc_model_meta_free(&p->meta);
    memset(p, 0, sizeof *p);
}

int pc_pretrained_resize_short(const pc_pretrained *p) {
    return (int)lround(p->meta.h / 0.875);
}

/* ------------------------------------------------------------- model-file surgery */

/* One [section] of a model-file text: [start, end) of the text, and the name of the layer it
 * builds (name=, else layers.K) and its alias= ("" if none). */
typedef struct {
    size_t start, end;
    char kind[24];
    char name[PC_NAME_LEN];
    char alias[PC_NAME_LEN];
} span;

/* The first non-blank character of every line that starts a section (no comments). */
static int split_sections(const char *text, span *out, int max) {
    int n = 0;
    for (const char *p = text; *p;) {
        const char *q = p;
        while (*q == ' ' || *q == '\t') q++;
        if (*q == '[' && n < max) {
            out[n].start = (size_t)(p - text);
            if (n) out[n - 1].end = out[n].start;
            size_t k = 0;
            for (q++; *q && *q != ']' && k + 1 < sizeof out[n].kind; q++) out[n].kind[k++] = *q;
            out[n].kind[k] = 0;
            n++;
        }
        const char *eol = strchr(p, '\n');
        p = eol ? eol + 1 : p + strlen(p);
    }
    if (n) out[n - 1].end = strlen(text);
    return n;
}

/* The value of key= in a section's text (outside comments), copied into buf; 0 if absent. */
static int section_value(const char *text, const span *s, const char *key, char *buf, size_t n) {
    size_t klen = strlen(key);
    int comment = 0;
    for (size_t i = s->start; i < s->end; i++) {
        char ch = text[i];
        if (ch == '#') comment = 1;
        if (ch == '\n') comment = 0;
        if (comment || (i > s->start && !isspace((unsigned char)text[i - 1]))) continue;
        if (strncmp(text + i, key, klen) != 0 || text[i + klen] != '=') continue;
        size_t k = 0;
        for (i += klen + 1; i < s->end && !isspace((unsigned char)text[i]) && text[i] != '#' &&
                            k + 1 < n; i++)
            buf[k++] = text[i];
        buf[k] = 0;
        return 1;
    }
    return 0;
}

static int name_sections(const char *text, span *s, int n) {
    for (int k = 0; k < n; k++) {
        if (!section_value(text, &s[k], "name", s[k].name, sizeof s[k].name))
            snprintf(s[k].name, sizeof s[k].name, "layers.%d", k);
        if (!section_value(text, &s[k], "alias", s[k].alias, sizeof s[k].alias)) *s[k].alias = 0;
    }
    return n;
}

/* "a, b (alias), c" of the sections' layer names, for error messages. */
static char *list_names(const span *s, int n) {
    size_t len = 1;
    for (int k = 0; k < n; k++) len += strlen(s[k].name) + strlen(s[k].alias) + 5;
    char *buf = malloc(len), *p = buf;
    if (!buf) return NULL;
    *p = 0;
    for (int k = 0; k < n; k++) {
        if (strcmp(s[k].kind, "net") == 0) continue;
        p += sprintf(p, "%s%s", p == buf ? "" : ", ", s[k].name);
        if (*s[k].alias) p += sprintf(p, " (%s)", s[k].alias);
    }
    return buf;
}

/* Model text with everything after `cut` replaced by global average pooling and a fresh
 * dense head, or with the last section (a dense layer) replaced by a fresh one. */
static pc_status surgery_text(const pc_transfer_config *c, const char *path, const char *text,
                              char **out) {
    enum { MAX_SECTIONS = 4096 };
    span *s = calloc(MAX_SECTIONS, sizeof *s);
    if (!s) return pc_fail_nomem();
    int n = name_sections(text, s, split_sections(text, s, MAX_SECTIONS));
    int keep = n - 1; /* sections kept before the new head */
    pc_status st = PC_OK;
    if (c->cut) {
        keep = -1;
        for (int k = 0; k < n; k++)
            if (strcmp(s[k].kind, "net") != 0 &&
                (strcmp(s[k].name, c->cut) == 0 || strcmp(s[k].alias, c->cut) == 0))
                keep = k + 1;
        if (keep < 0) {
            char *names = list_names(s, n);
            st = pc_fail(PC_ERR_USAGE, "--cut %s: %s has no layer of that name; its layers: %s",
                         c->cut, path, names ? names : "?");
            free(names);
        }
    } else if (n == 0 || strcmp(s[n - 1].kind, "dense") != 0) {
        st = pc_fail(PC_ERR_USAGE, "--init %s: its last layer is not [dense]; give --cut LAYER "
                     "to put a new head after LAYER", path);
    }
    for (int k = 0; st == PC_OK && k < keep; k++)
        if (strcmp(s[k].name, "head") == 0)
            st = pc_fail(PC_ERR_USAGE, "--init %s: a layer is named 'head' already, the name of "
                         "the new head", path);
    char from[64] = "";
    if (st == PC_OK && !c->cut && section_value(text, &s[n - 1], "from", from + 6, sizeof from - 6))
        memcpy(from, " from=", 6);
    size_t prefix = keep > 0 ? s[keep - 1].end : (n ? s[0].start : 0);
    char *buf = st == PC_OK ? malloc(prefix + 256) : NULL;
    if (st == PC_OK && !buf) st = pc_fail_nomem();
    if (st == PC_OK) {
        memcpy(buf, text, prefix);
        /* the layer's name rather than the alias given: the same text, and bytes, either way */
        snprintf(buf + prefix, 256, "\n# new head (parcnn train --init%s%s)\n%s[dense] name=head "
                 "units=classes init=torch%s\n", c->cut ? " --cut " : "", c->cut ? s[keep - 1].name : "",
                 c->cut ? "[gap] name=head_pool\n" : "", from);
        *out = buf;
    }
    free(s);
    return st;
}

/* Copy every tensor of `to` that `from` has under the same name and shape; the head's
 * stay as initialized. Returns the count copied in *copied. */
static pc_status copy_tensors(const pc_model *from, pc_model *to, int head, int *copied) {
    int nf = pc_model_param_info(from, NULL, 0), nt = pc_model_param_info(to, NULL, 0);
    pc_param_info *fi = malloc(sizeof *fi * (nf + 1)), *ti = malloc(sizeof *ti * (nt + 1));
    if (!fi || !ti) {
        free(fi);
        free(ti);
        return pc_fail_nomem();
    }
    pc_model_param_info(from, fi, nf);
    pc_model_param_info(to, ti, nt);
    *copied = 0;
    for (int a = 0; a < nt; a++) {
        if (ti[a].layer == head) continue;
        for (int b = 0; b < nf; b++) {
            if (strcmp(ti[a].name, fi[b].name) != 0 || ti[a].numel != fi[b].numel ||
                ti[a].is_buffer != fi[b].is_buffer)
                continue;
            float *dst = (ti[a].is_buffer ? to->buffers : to->params) + ti[a].offset;
            const float *src = (fi[b].is_buffer ? from->buffers : from->params) + fi[b].offset;
            memcpy(dst, src, sizeof(float) * ti[a].numel);
            (*copied)++;
            break;
        }
    }
    free(fi);
    free(ti);
    return PC_OK;
}

pc_status pc_transfer_build(const pc_transfer_config *c, const pc_pretrained *p, int in_c, int h,
                            int w, int classes, uint64_t seed, pc_model **out, pc_transfer *tr) {
    memset(tr, 0, sizeof *tr);
    *out = NULL;
    if (in_c != p->meta.c)
        return pc_fail(PC_ERR_DATA, "--init %s: the model takes %d channels, the images have %d",
                       c->init, p->meta.c, in_c);
    if (c->head && c->head != classes)
        return pc_fail(PC_ERR_USAGE, "--head %d: the data has %d classes", c->head, classes);
    char *text = NULL;
    PC_TRY(surgery_text(c, c->init, p->model->source, &text));
    pc_model *m = NULL;
    pc_status st = pc_model_parse(text, p->model->name, in_c, h, w, classes, seed, &m);
    free(text);
    if (st != PC_OK) return pc_fail(st, "--init %s: %s", c->init, pc_last_error());
    tr->head = m->n_layers - 1;
    int copied = 0;
    st = copy_tensors(p->model, m, tr->head, &copied);
    tr->trainable0 = malloc((size_t)m->n_layers);
    if (st == PC_OK && !tr->trainable0) st = pc_fail_nomem();
    for (int i = 0; st == PC_OK && i < m->n_layers; i++) tr->trainable0[i] = (uint8_t)m->layers[i].trainable;
    if (st != PC_OK) {
        pc_model_free(m);
        pc_transfer_free(tr);
        return st;
    }
    *out = m;
    return PC_OK;
}

void pc_transfer_free(pc_transfer *tr) {
    free(tr->trainable0);
    memset(tr, 0, sizeof *tr);
}

/* ------------------------------------------------------------- freezing */

static void set_frozen(pc_model *m, int last, int frozen, const uint8_t *trainable0) {
    for (int i = 1; i <= last; i++) {
        pc_layer *l = &m->layers[i];
        l->trainable = frozen ? 0 : trainable0[i];
        l->bn_frozen = frozen && l->kind == PC_L_BN;
    }
}

static pc_status frozen_prefix(const pc_transfer_config *c, const pc_model *m, int head,
                               int *last) {
    *last = 0;
    if (c->freeze == PC_FREEZE_ALL_BUT_HEAD) *last = head - 1;
    if (c->freeze != PC_FREEZE_UP_TO) return PC_OK;
    for (int i = 1; i < m->n_layers; i++)
        if (strcmp(m->layers[i].name, c->freeze_layer) == 0 ||
            strcmp(m->layers[i].alias, c->freeze_layer) == 0)
            *last = i;
    if (*last == head) return pc_fail(PC_ERR_USAGE, "--freeze up-to=%s: that is the new head",
                                      c->freeze_layer);
    if (*last > 0) return PC_OK;
    size_t len = 1;
    for (int i = 1; i < m->n_layers; i++)
        len += strlen(m->layers[i].name) + strlen(m->layers[i].alias) + 5;
    char *names = malloc(len), *p = names;
    for (int i = 1; names && i < head; i++) {
        p += sprintf(p, "%s%s", i > 1 ? ", " : "", m->layers[i].name);
        if (*m->layers[i].alias) p += sprintf(p, " (%s)", m->layers[i].alias);
    }
    pc_status st = pc_fail(PC_ERR_USAGE, "--freeze up-to=%s: %s has no layer of that name; its "
                           "layers: %s", c->freeze_layer, c->init, names ? names : "?");
    free(names);
    return st;
}

pc_status pc_transfer_freeze(const pc_transfer_config *c, pc_model *m, pc_transfer *tr) {
    PC_TRY(frozen_prefix(c, m, tr->head, &tr->frozen));
    set_frozen(m, tr->frozen, 1, tr->trainable0);
    /* a frozen batch norm has no backward in inference mode: nothing before it may train */
    char *wanted = malloc((size_t)m->n_layers);
    if (!wanted) return pc_fail_nomem();
    pc_model_grad_wanted(m, wanted);
    pc_status st = PC_OK;
    for (int i = 1; i <= tr->frozen && st == PC_OK; i++)
        if (wanted[i])
            st = pc_fail(PC_ERR_INTERNAL, "--freeze: layer %s is frozen but trains through",
                         m->layers[i].name);
    free(wanted);
    return st;
}

int pc_transfer_step(const pc_transfer_config *c, pc_model *m, pc_transfer *tr, int64_t step,
                     int64_t steps_per_epoch) {
    if (tr->unfrozen || c->unfreeze_at <= 0 || tr->frozen == 0) return 0;
    if (step < (int64_t)ceil((double)c->unfreeze_at * (double)steps_per_epoch)) return 0;
    set_frozen(m, tr->frozen, 0, tr->trainable0);
    tr->unfrozen = 1;
    return 1;
}

int pc_transfer_in_backbone(const pc_transfer *tr, int layer) {
    return tr->unfrozen && layer >= 1 && layer <= tr->frozen;
}

/* ------------------------------------------------------------- batch-norm recalibration */

typedef struct {
    pc_model *m;
    pc_engine *e;
    const pc_dataset *train;
    int shards;
    int64_t bn_size;
    float *stats;             /* per shard: bn_size floats (batch mean, biased variance) */
    pc_error_slot err;
} recal_job;

/* Worker w's shards w, w + W, ...: each one's statistics are those of its images alone,
 * whichever worker computes them. */
static void recal_worker(int w, void *arg) {
    recal_job *j = arg;
    int ss = j->e->batch;
    pc_exec *ex = j->e->execs[w];
    int64_t idx[ss];
    for (int s = w; s < j->shards; s += j->e->workers) {
        for (int i = 0; i < ss; i++) idx[i] = (int64_t)s * ss + i;
        pc_status st = pc_dataset_gather(j->train, idx, ss, j->e->mean, j->e->std,
                                         pc_exec_input(ex), NULL);
        pc_error_slot_set(&j->err, st);
        if (st != PC_OK) return;
        pc_exec_forward(ex, 1, 0, 0, (int64_t)s * ss, j->stats + (int64_t)s * j->bn_size);
        pc_error_slot_set(&j->err, st = pc_exec_status(ex));
        if (st != PC_OK) return;
    }
}

/* Pool the shards' statistics of every channel: mean of the means, and the variance of all
 * the images together (mean of var + mean^2, minus the mean^2), unbiased as PyTorch's. */
static void recal_pool(recal_job *j) {
    const float *st = j->stats;
    int64_t off = 0;
    for (int i = 0; i < j->m->n_layers; i++) {
        const pc_layer *l = &j->m->layers[i];
        if (l->kind != PC_L_BN) continue;
        float *rmean = j->m->buffers + l->buffer_off, *rvar = rmean + l->c;
        double count = (double)j->shards * j->e->batch * l->h * l->w;
        for (int c = 0; c < l->c; c++) {
            double sum = 0, sq = 0;
            for (int s = 0; s < j->shards; s++) {
                const float *rec = st + (int64_t)s * j->bn_size + off;
                sum += rec[c];
                sq += (double)rec[l->c + c] + (double)rec[c] * rec[c];
            }
            double mean = sum / j->shards, var = sq / j->shards - mean * mean;
            rmean[c] = (float)mean;
            rvar[c] = (float)(PC_MAX(var, 0.0) * count / (count > 1 ? count - 1 : 1));
        }
        off += 2 * l->c;
    }
}

pc_status pc_transfer_recalibrate(pc_model *m, pc_engine *e, const pc_dataset *train, int64_t n,
                                  int64_t *used) {
    int ss = e->batch;
    if (n > train->n) n = train->n;
    if (n < ss)
        return pc_fail(PC_ERR_USAGE, "--bn-recalibrate %lld: needs at least one shard of %d "
                       "training images", (long long)n, ss);
    recal_job j = {.m = m, .e = e, .train = train, .shards = (int)(n / ss),
                   .bn_size = pc_exec_bn_stats_size(m)};
    j.stats = pc_alloc(sizeof(float) * (j.bn_size ? j.bn_size : 1) * j.shards);
    if (!j.stats) return pc_fail_nomem();
    pc_error_slot_init(&j.err);
    for (int w = 0; w < e->workers; w++) pc_exec_weights_version(e->execs[w], 0);
    pc_pool_run(e->pool, recal_worker, &j);
    pc_status st = pc_error_slot_take(&j.err);
    if (st == PC_OK) recal_pool(&j);
    pc_error_slot_destroy(&j.err);
    pc_free(j.stats);
    *used = (int64_t)j.shards * ss;
    return st;
}

/* ------------------------------------------------------------- cached features */

int pc_transfer_uses_features(const pc_transfer_config *c, const pc_transfer *tr) {
    return c->init && !c->no_feature_cache && tr->frozen > 0 && tr->frozen == tr->head - 1 &&
           c->unfreeze_at <= 0;
}

typedef struct {
    pc_engine *e;
    int layer;
    const pc_dataset *d;
    const pc_augment_config *augment; /* NULL: the images as they are */
    uint64_t seed;
    int views;
    int64_t chunks, dim;
    float *out;               /* views x d->n x dim */
    float **tmp;              /* per worker: one batch of the layer's output */
    pc_error_slot err;
} extract_job;

/* Worker w's chunks w, w + W, ... of every view, in inference mode. */
static void extract_worker(int w, void *arg) {
    extract_job *j = arg;
    int ss = j->e->batch;
    pc_exec *ex = j->e->execs[w];
    int64_t idx[ss];
    for (int64_t k = w; k < j->views * j->chunks; k += j->e->workers) {
        int64_t view = k / j->chunks, first = (k % j->chunks) * ss;
        int valid = (int)PC_MIN((int64_t)ss, j->d->n - first);
        for (int i = 0; i < ss; i++) idx[i] = i < valid ? first + i : first;
        pc_status st = j->augment
            ? pc_dataset_gather_augmented(j->d, idx, ss, j->e->mean, j->e->std, j->augment,
                                          j->seed, (uint64_t)view, pc_exec_input(ex), NULL)
            : pc_dataset_gather(j->d, idx, ss, j->e->mean, j->e->std, pc_exec_input(ex), NULL);
        pc_error_slot_set(&j->err, st);
        if (st != PC_OK) return;
        pc_exec_forward(ex, 0, 0, 0, first, NULL);
        pc_error_slot_set(&j->err, st = pc_exec_status(ex));
        if (st != PC_OK) return;
        pc_exec_layer_output(ex, j->layer, j->tmp[w]);
        memcpy(j->out + (view * j->d->n + first) * j->dim, j->tmp[w], sizeof(float) * valid * j->dim);
    }
}

static pc_status extract(pc_engine *e, int layer, const pc_dataset *d,
                         const pc_augment_config *augment, uint64_t seed, int views, float *out) {
    const pc_layer *l = &e->model->layers[layer];
    extract_job j = {.e = e, .layer = layer, .d = d, .augment = augment, .seed = seed,
                     .views = views, .chunks = (d->n + e->batch - 1) / e->batch,
                     .dim = pc_layer_out_size(l), .out = out};
    j.tmp = calloc(e->workers, sizeof(float *));
    pc_status st = j.tmp ? PC_OK : pc_fail_nomem();
    for (int w = 0; st == PC_OK && w < e->workers; w++)
        if (!(j.tmp[w] = pc_alloc(sizeof(float) * e->batch * j.dim)))
            st = pc_fail_nomem();
    pc_error_slot_init(&j.err);
    for (int w = 0; w < e->workers; w++) pc_exec_weights_version(e->execs[w], 0);
    if (st == PC_OK) pc_pool_run(e->pool, extract_worker, &j);
    if (st == PC_OK) st = pc_error_slot_take(&j.err);
    pc_error_slot_destroy(&j.err);
    for (int w = 0; j.tmp && w < e->workers; w++) pc_free(j.tmp[w]);
    free(j.tmp);
    return st;
}

/* FNV-1a, 64 bits. */
static uint64_t hash_bytes(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_dataset(uint64_t h, const pc_dataset *d) {
    int64_t dims[4] = {d->n, d->c, d->h, d->w};
    h = hash_bytes(h, dims, sizeof dims);
    if (d->pixels) h = hash_bytes(h, d->pixels, (size_t)d->n * d->c * d->h * d->w);
    return hash_bytes(h, d->labels, sizeof(int32_t) * d->n);
}

/* What the features depend on: the backbone (text, tensors of the frozen layers), both
 * datasets, the views, augmentation and seed, and the kernels. */
static uint64_t feature_key(const pc_model *m, const pc_transfer *tr, const pc_feature_options *o,
                            int views, const pc_dataset *train, const pc_dataset *test) {
    uint64_t h = hash_bytes(1469598103934665603ull, m->source, strlen(m->source));
    for (int i = 1; i <= tr->frozen; i++) {
        const pc_layer *l = &m->layers[i];
        if (l->weight_off >= 0) h = hash_bytes(h, m->params + l->weight_off, sizeof(float) * l->weight_n);
        if (l->bias_off >= 0) h = hash_bytes(h, m->params + l->bias_off, sizeof(float) * l->bias_n);
        if (l->kind == PC_L_BN) h = hash_bytes(h, m->buffers + l->buffer_off, sizeof(float) * 2 * l->c);
    }
    h = hash_dataset(hash_dataset(h, train), test);
    char aug[256] = "";
    if (pc_augment_enabled(o->augment)) pc_augment_format(o->augment, aug, sizeof aug);
    uint64_t more[3] = {(uint64_t)views, aug[0] ? o->seed : 0, (uint64_t)o->kernels};
    h = hash_bytes(h, aug, strlen(aug));
    return hash_bytes(h, more, sizeof more);
}

/* The cache file: magic, key, the four sizes, the payload's checksum, then the payload. */
typedef struct {
    char magic[8];
    uint64_t key;
    int64_t n_train, n_test, dim, views;
    uint64_t checksum;
} cache_header;

static const char cache_magic[8] = "PCFEAT1";

/* Read the cache into out; 1 when it was there and valid, else 0 with the reason. */
static int cache_read(const char *path, const cache_header *want, float *out, size_t floats,
                      const char **why) {
    FILE *f = fopen(path, "rb");
    *why = "none there yet";
    if (!f) return 0;
    cache_header h;
    int ok = fread(&h, sizeof h, 1, f) == 1 && memcmp(h.magic, cache_magic, 8) == 0;
    if (!ok) *why = "not a feature cache (corrupt header)";
    if (ok && (h.key != want->key || h.n_train != want->n_train || h.n_test != want->n_test ||
               h.dim != want->dim || h.views != want->views)) {
        ok = 0;
        *why = "made from other images, another backbone or other settings";
    }
    if (ok && (fread(out, sizeof(float), floats, f) != floats || fgetc(f) != EOF ||
               hash_bytes(1469598103934665603ull, out, sizeof(float) * floats) != h.checksum)) {
        ok = 0;
        *why = "corrupt (its checksum does not match)";
    }
    fclose(f);
    return ok;
}

static pc_status cache_write(const char *path, cache_header *h, const float *data, size_t floats) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    memcpy(h->magic, cache_magic, 8);
    h->checksum = hash_bytes(1469598103934665603ull, data, sizeof(float) * floats);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(h, sizeof *h, 1, f) == 1 && fwrite(data, sizeof(float), floats, f) == floats;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return pc_fail(PC_ERR_IO, "%s: cannot write the feature cache", path);
    }
    return PC_OK;
}

/* A feature dataset of `views` views of d's samples (labels and names copied). */
static pc_status feature_dataset(const pc_dataset *d, const pc_layer *l, float *features,
                                 int views, pc_dataset *out) {
    memset(out, 0, sizeof *out);
    out->n = d->n;
    out->c = l->c;
    out->h = l->h;
    out->w = l->w;
    out->features = features;
    out->feature_stride = d->n;
    out->feature_views = views;
    out->classes = d->classes;
    out->labels = pc_alloc(sizeof(int32_t) * (d->n ? d->n : 1));
    out->class_names = calloc((size_t)d->classes, sizeof(char *));
    if (!out->labels || !out->class_names) return pc_fail_nomem();
    memcpy(out->labels, d->labels, sizeof(int32_t) * d->n);
    for (int k = 0; k < d->classes; k++)
        if (!(out->class_names[k] = strdup(d->class_names[k]))) return pc_fail_nomem();
    return PC_OK;
}

static pc_status check_views(const pc_transfer_config *c, const pc_feature_options *o) {
    if (c->feature_views < 1 || c->feature_views > 1000)
        return pc_fail(PC_ERR_USAGE, "--feature-views %d: must be in [1, 1000]", c->feature_views);
    if (c->feature_views > 1 && !pc_augment_enabled(o->augment))
        return pc_fail(PC_ERR_USAGE, "--feature-views %d: the views differ only by --augment, "
                       "which is not given", c->feature_views);
    return PC_OK;
}

pc_status pc_transfer_features(const pc_transfer_config *c, const pc_transfer *tr,
                               const pc_model *m, pc_engine *e, pc_feature_options *o,
                               pc_dataset *train, pc_dataset *test, pc_dataset *test_images) {
    PC_TRY(check_views(c, o));
    const pc_layer *l = &m->layers[tr->head - 1];
    const int views = c->feature_views;
    cache_header want = {.n_train = train->n, .n_test = test->n, .dim = pc_layer_out_size(l),
                         .views = views};
    size_t n_train = (size_t)views * train->n * want.dim, floats = n_train + (size_t)test->n * want.dim;
    float *all = pc_alloc(sizeof(float) * (floats ? floats : 1));
    if (!all) return pc_fail(PC_ERR_NOMEM, "out of memory for %zu floats of features", floats);
    double t0 = pc_now();
    char path[4200] = "";
    const char *why = NULL;
    int cached = 0;
    if (o->cache_dir) {
        want.key = feature_key(m, tr, o, views, train, test);
        uint64_t name = hash_bytes(hash_bytes(1469598103934665603ull, m->source, strlen(m->source)),
                                   l->name, strlen(l->name));
        snprintf(path, sizeof path, "%s/features-%016llx.cache", o->cache_dir, (unsigned long long)name);
        cached = cache_read(path, &want, all, floats, &why);
    }
    pc_status st = PC_OK;
    const pc_augment_config *aug = pc_augment_enabled(o->augment) ? o->augment : NULL;
    if (!cached) st = extract(e, tr->head - 1, train, aug, o->seed, views, all);
    if (!cached && st == PC_OK) st = extract(e, tr->head - 1, test, NULL, 0, 1, all + n_train);
    if (st == PC_OK && !cached && o->cache_dir && o->write) st = cache_write(path, &want, all, floats);
    o->seconds = pc_now() - t0;
    if (st == PC_OK && o->log)
        fprintf(o->log, "parcnn: features of %s (%lld floats per image): %s %lld training images x "
                "%d view(s) and %lld test images in %.1f s%s%s%s%s%s\n", l->name, (long long)want.dim,
                cached ? "loaded" : "extracted", (long long)train->n, views, (long long)test->n,
                o->seconds, path[0] ? (cached ? " from " : " into ") : "", path,
                !cached && path[0] ? " (rebuilt: " : "", !cached && path[0] ? why : "",
                !cached && path[0] ? ")" : "");
    float *test_part = NULL;
    if (st == PC_OK && !(test_part = pc_alloc(sizeof(float) * ((size_t)test->n * want.dim + 1))))
        st = pc_fail_nomem();
    if (st == PC_OK) memcpy(test_part, all + n_train, sizeof(float) * test->n * want.dim);
    pc_dataset ftrain = {0}, ftest = {0};
    if (st == PC_OK) st = feature_dataset(train, l, all, views, &ftrain);
    else pc_free(all);
    all = NULL;
    if (st == PC_OK) st = feature_dataset(test, l, test_part, 1, &ftest);
    else pc_free(test_part);
    if (st != PC_OK) {
        pc_dataset_free(&ftrain);
        pc_dataset_free(&ftest);
        return st;
    }
    pc_dataset_free(train);
    *test_images = *test;
    *train = ftrain;
    *test = ftest;
    return PC_OK;
}

pc_status pc_transfer_head_model(const pc_model *m, const pc_transfer *tr, uint64_t seed,
                                 pc_model **head) {
    const pc_layer *in = &m->layers[tr->head - 1];
    PC_TRY(pc_model_parse("[dense] name=head units=classes init=torch\n", "head", in->c, in->h,
                          in->w, m->classes, seed, head));
    int copied;
    return copy_tensors(m, *head, -1, &copied);
}

pc_status pc_transfer_head_back(const pc_model *head, pc_model *m) {
    int copied;
    return copy_tensors(head, m, -1, &copied);
}
