/* Model files: parsing, shape inference, parameter layout and initialization. */
#include "nn/model.h"

#include <ctype.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "nn/layer.h"

extern const int pc_zoo_n;
extern const char *const pc_zoo_names[];
extern const char *const pc_zoo_texts[];

const char *pc_layer_kind_name(pc_layer_kind k) { return pc_layer_ops_of(k)->name; }

int pc_zoo_count(void) { return pc_zoo_n; }
const char *pc_zoo_name(int i) { return (i >= 0 && i < pc_zoo_n) ? pc_zoo_names[i] : NULL; }

const char *pc_zoo_text(const char *name) {
    for (int i = 0; i < pc_zoo_n; i++)
        if (strcmp(pc_zoo_names[i], name) == 0) return pc_zoo_texts[i];
    return NULL;
}

/* The first comment line of a zoo model file, without "# name: ". */
const char *pc_zoo_summary(const char *name) {
    static _Thread_local char line[160];
    const char *t = pc_zoo_text(name);
    if (!t) return NULL;
    const char *colon = strchr(t, ':');
    const char *end = strchr(t, '\n');
    const char *start = (colon && colon < end) ? colon + 2 : t + 2;
    snprintf(line, sizeof line, "%.*s", (int)(end - start), start);
    return line;
}

int64_t pc_size_mul(int64_t a, int64_t b) {
    int64_t r;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) return -1;
    return r;
}

int64_t pc_layer_out_size(const pc_layer *l) {
    return pc_size_mul(pc_size_mul(l->c, l->h), l->w);
}

int64_t pc_model_flops(const pc_model *m) {
    int64_t f = 0;
    for (int i = 0; i < m->n_layers; i++) f += m->layers[i].flops;
    return f;
}

void pc_model_grad_wanted(const pc_model *m, char *wanted) {
    for (int i = 0; i < m->n_layers; i++) { /* layers come after their inputs */
        const pc_layer *l = &m->layers[i];
        int w = (l->weight_off >= 0 && (l->trainable & PC_TRAIN_WEIGHT)) ||
                (l->bias_off >= 0 && (l->trainable & PC_TRAIN_BIAS));
        for (int k = 0; k < l->n_inputs && !w; k++) w = wanted[l->inputs[k]];
        wanted[i] = (char)(i > 0 && w); /* layer 0: the input images */
    }
}

/* A weighted layer's (conv, dense) backward data (dx = W^T dy) and backward weights
 * (dW = dy x^T) each take its forward's multiply-adds; it skips the first when its input's
 * gradient is not wanted (the input images, a frozen start) and the second when its
 * weights are frozen, as exec.c does. Other layers: twice their forward count, a
 * convention. */
static int weighted(const pc_layer *l) { return pc_layer_ops_of(l->kind)->flags & PC_OPS_WEIGHTED; }

int64_t pc_layer_backward_flops(const pc_model *m, const char *wanted, int i) {
    const pc_layer *l = &m->layers[i];
    if (!wanted[i]) return 0;
    if (!weighted(l)) return 2 * l->flops;
    return (wanted[l->inputs[0]] ? l->flops : 0) + (l->trainable & PC_TRAIN_WEIGHT ? l->flops : 0);
}

int64_t pc_model_train_flops(const pc_model *m) {
    char *wanted = calloc((size_t)m->n_layers, 1);
    if (!wanted) return 0;
    pc_model_grad_wanted(m, wanted);
    int64_t f = 0;
    for (int i = 1; i < m->n_layers; i++) {
        const pc_layer *l = &m->layers[i];
        if (weighted(l)) f += l->flops + pc_layer_backward_flops(m, wanted, i);
    }
    free(wanted);
    return f;
}

/* ---------------------------------------------------------------- parsing */

/* One section of the file as written: its kind and its key=value pairs. */
#define MAX_KEYS 16
#define MAX_LINE 4096   /* a line, and all the values of a section together */
typedef struct {
    char kind[24];
    int line;
    int n_keys;
    char key[MAX_KEYS][24];
    int value_at[MAX_KEYS]; /* offsets into values: from= lists many layers' names */
    int values_used;
    char values[MAX_LINE];
    int used[MAX_KEYS];
} section;

typedef struct {
    const char *origin;
    int classes;
    int n_sections;
    section *sections;
} parse_ctx;

static pc_status parse_sections(const char *text, parse_ctx *ctx) {
    int cap = 16;
    ctx->sections = calloc(cap, sizeof(section));
    if (!ctx->sections) return pc_fail_nomem();
    int line_no = 0;
    const char *p = text;
    while (*p) {
        line_no++;
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char buf[MAX_LINE];
        if (len >= sizeof buf)
            return pc_fail(PC_ERR_USAGE, "%s:%d: line too long", ctx->origin, line_no);
        memcpy(buf, p, len);
        buf[len] = 0;
        p = eol ? eol + 1 : p + len;
        char *hash = strchr(buf, '#');
        if (hash) *hash = 0;
        char *s = buf;
        while (*s) {
            while (isspace((unsigned char)*s)) s++;
            if (!*s) break;
            char *tok = s;
            while (*s && !isspace((unsigned char)*s)) s++;
            if (*s) *s++ = 0;
            if (tok[0] == '[') {
                char *close = strchr(tok, ']');
                if (!close || close[1] || close == tok + 1)
                    return pc_fail(PC_ERR_USAGE, "%s:%d: malformed section header '%s'",
                                   ctx->origin, line_no, tok);
                *close = 0;
                if (strlen(tok + 1) >= sizeof ctx->sections[0].kind)
                    return pc_fail(PC_ERR_USAGE, "%s:%d: unknown layer type '%s'", ctx->origin,
                                   line_no, tok + 1);
                if (ctx->n_sections == cap) {
                    cap *= 2;
                    section *grown = realloc(ctx->sections, cap * sizeof(section));
                    if (!grown) return pc_fail_nomem();
                    ctx->sections = grown;
                }
                section *sec = &ctx->sections[ctx->n_sections++];
                memset(sec, 0, sizeof *sec);
                strcpy(sec->kind, tok + 1);
                sec->line = line_no;
                continue;
            }
            char *eq = strchr(tok, '=');
            if (!eq || eq == tok || !eq[1])
                return pc_fail(PC_ERR_USAGE, "%s:%d: expected key=value, got '%s'", ctx->origin,
                               line_no, tok);
            if (ctx->n_sections == 0)
                return pc_fail(PC_ERR_USAGE, "%s:%d: '%s' before the first [section]",
                               ctx->origin, line_no, tok);
            section *sec = &ctx->sections[ctx->n_sections - 1];
            *eq = 0;
            size_t vlen = strlen(eq + 1);
            if (sec->n_keys == MAX_KEYS || strlen(tok) >= 24 ||
                sec->values_used + vlen + 1 > sizeof sec->values)
                return pc_fail(PC_ERR_USAGE, "%s:%d: too many or too long keys", ctx->origin,
                               line_no);
            for (int k = 0; k < sec->n_keys; k++)
                if (strcmp(sec->key[k], tok) == 0)
                    return pc_fail(PC_ERR_USAGE, "%s:%d: key '%s' given twice", ctx->origin,
                                   line_no, tok);
            strcpy(sec->key[sec->n_keys], tok);
            sec->value_at[sec->n_keys] = sec->values_used;
            memcpy(sec->values + sec->values_used, eq + 1, vlen + 1);
            sec->values_used += (int)vlen + 1;
            sec->n_keys++;
        }
    }
    return PC_OK;
}

static const char *get_value(section *sec, const char *key) {
    for (int k = 0; k < sec->n_keys; k++)
        if (strcmp(sec->key[k], key) == 0) {
            sec->used[k] = 1;
            return sec->values + sec->value_at[k];
        }
    return NULL;
}

/* An integer key; "classes" stands for the class count. */
static pc_status get_int(parse_ctx *ctx, section *sec, const char *key, int def, int min,
                         int *out) {
    const char *v = get_value(sec, key);
    if (!v) {
        *out = def;
        return PC_OK;
    }
    if (strcmp(v, "classes") == 0) {
        *out = ctx->classes;
        return PC_OK;
    }
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < min || x > 1 << 20)
        return pc_fail(PC_ERR_USAGE, "%s:%d: [%s] %s=%s: expected an integer from %d to %d",
                       ctx->origin, sec->line, sec->kind, key, v, min, 1 << 20);
    *out = (int)x;
    return PC_OK;
}

static pc_status get_float(parse_ctx *ctx, section *sec, const char *key, float def, float min,
                           float max, float *out) {
    const char *v = get_value(sec, key);
    if (!v) {
        *out = def;
        return PC_OK;
    }
    char *end;
    double x = strtod(v, &end);
    if (*end || !(x >= min && x <= max))
        return pc_fail(PC_ERR_USAGE, "%s:%d: [%s] %s=%s: expected a number in [%g, %g]",
                       ctx->origin, sec->line, sec->kind, key, v, min, max);
    *out = (float)x;
    return PC_OK;
}

/* Growable layer list while building. */
typedef struct {
    pc_layer *v;
    int n, cap;
} layer_list;

static pc_layer *push_layer(layer_list *ll) {
    if (ll->n == ll->cap) {
        ll->cap = ll->cap ? ll->cap * 2 : 32;
        pc_layer *grown = realloc(ll->v, ll->cap * sizeof(pc_layer));
        if (!grown) return NULL;
        ll->v = grown;
    }
    pc_layer *l = &ll->v[ll->n++];
    memset(l, 0, sizeof *l);
    l->weight_off = l->bias_off = l->buffer_off = -1;
    return l;
}

/* The last layer called `name` or aliased so; -1 if none. */
static int find_layer(const layer_list *ll, const char *name) {
    for (int i = ll->n - 1; i >= 0; i--)
        if (strcmp(ll->v[i].name, name) == 0 || strcmp(ll->v[i].alias, name) == 0) return i;
    return -1;
}

/* from=-1,name: resolve each reference to an earlier layer index. Relative
 * references count sections as written (a sepconv is one section). */
static pc_status resolve_inputs(parse_ctx *ctx, section *sec, const int *section_last_layer,
                                int section_index, const layer_list *ll, int min, int max,
                                int *inputs, int *count) {
    const char *v = get_value(sec, "from");
    char buf[MAX_LINE];
    snprintf(buf, sizeof buf, "%s", v ? v : "-1");
    int n = 0;
    char *save = NULL;
    int too_many = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max) {
            too_many = 1;
            break;
        }
        char *end;
        long rel = strtol(tok, &end, 10);
        int idx;
        if (!*end) {
            if (rel >= 0 || section_index + rel < -1)
                return pc_fail(PC_ERR_USAGE, "%s:%d: from=%s: relative references are negative "
                               "and stay inside the model", ctx->origin, sec->line, tok);
            idx = section_index + rel < 0 ? 0 : section_last_layer[section_index + rel];
        } else {
            idx = find_layer(ll, tok);
            if (idx < 0)
                return pc_fail(PC_ERR_USAGE, "%s:%d: from=%s: no earlier layer has that name",
                               ctx->origin, sec->line, tok);
        }
        inputs[n++] = idx;
    }
    if (n < min || too_many) {
        if (min == max)
            return pc_fail(PC_ERR_USAGE, "%s:%d: [%s] takes %d input(s) in from=", ctx->origin,
                           sec->line, sec->kind, min);
        return pc_fail(PC_ERR_USAGE, "%s:%d: [%s] takes %d to %d inputs in from=", ctx->origin,
                       sec->line, sec->kind, min, max);
    }
    *count = n;
    return PC_OK;
}
/* ------------------------------------------------ building a section's layers */

struct pc_build {
    parse_ctx *ctx;
    section *sec;
    layer_list *ll;
    int si;                     /* the section's index */
    int li;                     /* the index of the layer being built */
    int n_inputs;
    int inputs[PC_MAX_INPUTS];
};

const char *pc_build_value(pc_build *b, const char *key) { return get_value(b->sec, key); }

pc_status pc_build_int(pc_build *b, const char *key, int def, int min, int *out) {
    return get_int(b->ctx, b->sec, key, def, min, out);
}

pc_status pc_build_int_pair(pc_build *b, const char *key, int def, int min, int *h, int *w) {
    const char *v = get_value(b->sec, key), *x = v ? strchr(v, 'x') : NULL;
    if (!x) {
        PC_TRY(get_int(b->ctx, b->sec, key, def, min, h));
        *w = *h;
        return PC_OK;
    }
    char *end;
    long vh = strtol(v, &end, 10), vw = end == x ? strtol(x + 1, &end, 10) : -1;
    if (end == x + 1 || *end || vh < min || vw < min || vh > 1 << 20 || vw > 1 << 20 ||
        !(v[0] >= '0' && v[0] <= '9') || !(x[1] >= '0' && x[1] <= '9'))
        return pc_fail(PC_ERR_USAGE, "%s:%d: [%s] %s=%s: expected an integer >= %d or two "
                       "(HEIGHTxWIDTH)", b->ctx->origin, b->sec->line, b->sec->kind, key, v, min);
    *h = (int)vh;
    *w = (int)vw;
    return PC_OK;
}

pc_status pc_build_float(pc_build *b, const char *key, float def, float min, float max,
                         float *out) {
    return get_float(b->ctx, b->sec, key, def, min, max, out);
}

pc_status pc_build_fail(pc_build *b, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pc_fail(PC_ERR_USAGE, "%s:%d: %s", b->ctx->origin, b->sec->line, msg);
}

const char *pc_build_section(const pc_build *b) { return b->sec->kind; }
const pc_layer *pc_build_input(const pc_build *b, int k) { return &b->ll->v[b->inputs[k]]; }
int pc_build_n_inputs(const pc_build *b) { return b->n_inputs; }
int pc_build_reads_images(const pc_build *b) { return b->inputs[0] == 0; }

pc_layer *pc_build_push(pc_build *b, pc_layer **l) {
    int at = (int)(*l - b->ll->v);
    pc_layer *p = push_layer(b->ll);
    *l = &b->ll->v[at];
    if (!p) return NULL;
    p->kind = (*l)->kind;
    p->n_inputs = 1;
    p->inputs[0] = at;
    return p;
}

const char *pc_activation_name(pc_activation act) {
    static const char *const names[] = {"linear", "relu", "gelu", "relu6"};
    return act >= PC_ACT_NONE && act <= PC_ACT_RELU6 ? names[act] : "?";
}

pc_status pc_build_activation(pc_build *b, pc_layer *l) {
    const char *a = get_value(b->sec, "activation");
    if (!a || strcmp(a, "linear") == 0 || strcmp(a, "none") == 0)
        l->act = PC_ACT_NONE;
    else if (strcmp(a, "relu") == 0)
        l->act = PC_ACT_RELU;
    else if (strcmp(a, "gelu") == 0)
        l->act = PC_ACT_GELU;
    else if (strcmp(a, "relu6") == 0)
        l->act = PC_ACT_RELU6;
    else
        return pc_build_fail(b, "activation=%s: expected relu, relu6, gelu or linear", a);
    return PC_OK;
}

pc_status pc_build_name(pc_build *b, pc_layer *l, const char *suffix) {
    const char *name = get_value(b->sec, "name");
    char buf[PC_NAME_LEN + 8];
    if (name)
        snprintf(buf, sizeof buf, "%s%s", name, suffix);
    else
        snprintf(buf, sizeof buf, "layers.%d%s", b->si, suffix);
    if (strlen(buf) >= PC_NAME_LEN || (name && strchr(name, '.')))
        return pc_build_fail(b, "name=%s: too long or contains '.'", name);
    int same = name ? find_layer(b->ll, buf) : -1;
    if (same >= 0 && &b->ll->v[same] != l) return pc_build_fail(b, "name=%s is used twice", name);
    strcpy(l->name, buf);
    return PC_OK;
}

/* alias=NAME: a second name of the section's output layer (the last it builds), unique
 * among the names and aliases like a name. */
static pc_status build_alias(pc_build *b) {
    const char *alias = get_value(b->sec, "alias");
    if (!alias) return PC_OK;
    if (strlen(alias) >= PC_NAME_LEN || strchr(alias, '.'))
        return pc_build_fail(b, "alias=%s: too long or contains '.'", alias);
    if (find_layer(b->ll, alias) >= 0)
        return pc_build_fail(b, "alias=%s is a layer's name or alias already", alias);
    strcpy(b->ll->v[b->ll->n - 1].alias, alias);
    return PC_OK;
}

/* trainable=all|weight|bias|none, for layers with parameters, and train_epochs=E: those
 * parameters train for the first E epochs only, then freeze (airbench trains its
 * whitening layer's bias for 3). */
pc_status pc_build_trainable(pc_build *b, pc_layer *l) {
    static const char *names[] = {"none", "weight", "bias", "all"};
    PC_TRY(pc_build_float(b, "train_epochs", 0.0f, 0.0f, 1e6f, &l->train_epochs));
    const char *v = get_value(b->sec, "trainable");
    l->trainable = PC_TRAIN_ALL;
    if (!v) return PC_OK;
    for (int k = 0; k < 4; k++)
        if (strcmp(v, names[k]) == 0) {
            l->trainable = k;
            return PC_OK;
        }
    return pc_build_fail(b, "[%s] trainable=%s: expected all, weight, bias or none", b->sec->kind,
                         v);
}

/* init=he|torch|identity|whiten for weighted layers; whiten needs a layer with a kernel (a
 * conv) on the input images with a filter per patch dimension, or two (the whitening and
 * its negative). */
pc_status pc_build_init(pc_build *b, pc_layer *l) {
    const char *v = get_value(b->sec, "init");
    l->init = PC_INIT_HE;
    if (!v || strcmp(v, "he") == 0) return PC_OK;
    if (strcmp(v, "torch") == 0) {
        l->init = PC_INIT_TORCH;
        return PC_OK;
    }
    if (strcmp(v, "identity") == 0) {
        l->init = PC_INIT_IDENTITY;
        return PC_OK;
    }
    if (strcmp(v, "whiten") != 0)
        return pc_build_fail(b, "[%s] init=%s: expected he, torch, identity or whiten",
                             b->sec->kind, v);
    const pc_layer *in = pc_build_input(b, 0);
    int d = in->c * l->kh * l->kw;
    if (l->dilation != 1)
        return pc_build_fail(b, "[%s] init=whiten whitens contiguous patches: not with dilation=%d",
                             b->sec->kind, l->dilation);
    if (!pc_build_reads_images(b) || l->groups != 1 || (l->filters != d && l->filters != 2 * d))
        return pc_build_fail(b, "[%s] init=whiten needs a conv on the input images with %d or %d "
                             "filters (one or two per %dx%dx%d patch value)",
                             b->sec->kind, d, 2 * d, in->c, l->kh, l->kw);
    l->init = PC_INIT_WHITEN;
    return PC_OK;
}

/* A layer's output and parameters within the limits (model.h), its FLOPs counted (a kind
 * sets -1 when they overflow 64 bits). */
static pc_status check_sizes(pc_build *b, const pc_layer *l) {
    const char *k = b->sec->kind;
    if (l->c <= 0 || l->h <= 0 || l->w <= 0) return pc_build_fail(b, "[%s] produces an empty output", k);
    int64_t values = pc_layer_out_size(l);
    if (l->h > PC_MAX_SIDE || l->w > PC_MAX_SIDE || values < 0 || values > PC_MAX_VALUES)
        return pc_build_fail(b, "[%s] output %dx%dx%d is too large (at most %d pixels a side and "
                             "%lld values per sample)", k, l->c, l->h, l->w, PC_MAX_SIDE,
                             PC_MAX_VALUES);
    if (l->weight_n < 0 || l->weight_n + l->bias_n > PC_MAX_LAYER_PARAMS)
        return pc_build_fail(b, "[%s] has too many parameters (at most %lld per layer)", k,
                             PC_MAX_LAYER_PARAMS);
    if (l->flops < 0) return pc_build_fail(b, "[%s] needs more FLOPs than 64 bits count", k);
    return PC_OK;
}

/* Build one section into its layer (or layers) with its kind's descriptor. */
static pc_status build_section(parse_ctx *ctx, int si, layer_list *ll, int *section_last_layer) {
    section *sec = &ctx->sections[si];
    const int kind = pc_layer_kind_of_section(sec->kind);
    const pc_layer_ops *ops = kind >= 0 ? pc_layer_ops_of(kind) : NULL;
    if (!ops || ops->n_inputs == 0)
        return pc_fail(PC_ERR_USAGE, "%s:%d: unknown layer type [%s]", ctx->origin, sec->line,
                       sec->kind);
    pc_build b = {.ctx = ctx, .sec = sec, .ll = ll, .si = si};
    int n_inputs = 0;
    PC_TRY(resolve_inputs(ctx, sec, section_last_layer, si, ll, ops->n_inputs,
                          ops->max_inputs ? ops->max_inputs : ops->n_inputs, b.inputs, &n_inputs));
    pc_layer *l = push_layer(ll);
    if (!l) return pc_fail_nomem();
    b.li = ll->n - 1;
    l->kind = (pc_layer_kind)kind;
    l->n_inputs = b.n_inputs = n_inputs;
    memcpy(l->inputs, b.inputs, sizeof b.inputs);
    const pc_layer *in = pc_build_input(&b, 0);
    l->c = in->c;
    l->h = in->h;
    l->w = in->w;
    PC_TRY(pc_build_name(&b, l, ""));
    PC_TRY(pc_build_activation(&b, l));
    if (ops->build) PC_TRY(ops->build(&b, l));
    PC_TRY(build_alias(&b));
    for (int j = b.li; j < ll->n; j++) PC_TRY(check_sizes(&b, &ll->v[j]));
    for (int key = 0; key < sec->n_keys; key++)
        if (!sec->used[key])
            return pc_fail(PC_ERR_USAGE, "%s:%d: [%s] has no key '%s'", ctx->origin, sec->line,
                           sec->kind, sec->key[key]);
    section_last_layer[si] = ll->n - 1;
    return PC_OK;
}

/* Lay parameters out in layer order: weight then bias per layer; buffers likewise. */
static void layout_params(pc_model *m) {
    int64_t off = 0, boff = 0;
    for (int i = 0; i < m->n_layers; i++) {
        pc_layer *l = &m->layers[i];
        if (l->weight_n) { l->weight_off = off; off += l->weight_n; }
        if (l->bias_n) { l->bias_off = off; off += l->bias_n; }
        if (l->buffer_n) { l->buffer_off = boff; boff += l->buffer_n; }
    }
    m->n_params = off;
    m->n_buffers = boff;
}

/* He-uniform weights (bound sqrt(6 / fan_in)) or, for init=torch and identity, PyTorch's
 * default (bound 1 / sqrt(fan_in)). Each value is keyed by its flat index. For identity,
 * filter f < min(filters, inputs per group) then becomes the identity on input channel f:
 * 1 at the kernel's centre, 0 elsewhere (torch.nn.init.dirac_). */
void pc_init_weights(pc_model *m, const pc_layer *l, uint64_t seed, int64_t taps,
                     int64_t centre) {
    int64_t fan_in = l->weight_n / l->filters;
    float bound = l->init == PC_INIT_HE ? sqrtf(6.0f / (float)fan_in) : 1.0f / sqrtf((float)fan_in);
    for (int64_t j = 0; j < l->weight_n; j++) {
        uint64_t bits = pc_rand64(seed, PC_RNG_INIT, (uint64_t)(l->weight_off + j), 0, 0);
        m->params[l->weight_off + j] = (2.0f * pc_uniform01(bits) - 1.0f) * bound;
    }
    if (l->init != PC_INIT_IDENTITY) return;
    int64_t inputs = fan_in / taps;
    for (int64_t f = 0; f < l->filters && f < inputs; f++) {
        float *w = m->params + l->weight_off + f * fan_in;
        memset(w, 0, sizeof(float) * fan_in);
        w[f * taps + centre] = 1.0f;
    }
}

pc_status pc_model_init_params(pc_model *m, uint64_t seed) {
    m->params = pc_alloc(sizeof(float) * (m->n_params ? m->n_params : 1));
    m->buffers = pc_alloc(sizeof(float) * (m->n_buffers ? m->n_buffers : 1));
    if (!m->params || !m->buffers) return PC_ERR_NOMEM;
    /* Biases start at zero (pc_alloc zero-fills); the kinds set their weights and buffers. */
    for (int i = 0; i < m->n_layers; i++) {
        const pc_layer_ops *ops = pc_layer_ops_of(m->layers[i].kind);
        if (ops->init) ops->init(m, &m->layers[i], seed);
    }
    return PC_OK;
}

pc_status pc_model_parse_layers(const char *text, const char *origin, int c, int h, int w,
                                int classes, pc_model **out) {
    *out = NULL;
    if (c <= 0 || h <= 0 || w <= 0 || classes < 2)
        return pc_fail(PC_ERR_USAGE, "%s: bad input shape %dx%dx%d or class count %d", origin, c,
                       h, w, classes);
    int64_t values = pc_size_mul(pc_size_mul(c, h), w);
    if (h > PC_MAX_SIDE || w > PC_MAX_SIDE || values < 0 || values > PC_MAX_VALUES)
        return pc_fail(PC_ERR_USAGE, "%s: input %dx%dx%d is too large (at most %d pixels a side "
                       "and %lld values per image)", origin, c, h, w, PC_MAX_SIDE, PC_MAX_VALUES);
    parse_ctx ctx = {.origin = origin, .classes = classes};
    layer_list ll = {0};
    int *section_last = NULL;
    pc_model *m = NULL;
    pc_status st = parse_sections(text, &ctx);
    if (st == PC_OK && ctx.n_sections == 0)
        st = pc_fail(PC_ERR_USAGE, "%s: no layers", origin);
    int first = 0;
    if (st == PC_OK && strcmp(ctx.sections[0].kind, "net") == 0) {
        /* [net] only documents the shape the model was designed for; data decides. */
        section *net = &ctx.sections[0];
        int ignored;
        const char *keys[] = {"channels", "height", "width"};
        for (int k = 0; k < 3 && st == PC_OK; k++) st = get_int(&ctx, net, keys[k], 1, 1, &ignored);
        for (int k = 0; k < net->n_keys && st == PC_OK; k++)
            if (!net->used[k])
                st = pc_fail(PC_ERR_USAGE, "%s:%d: [net] has no key '%s'", origin, net->line,
                             net->key[k]);
        first = 1;
    }
    if (st == PC_OK) {
        section_last = calloc(ctx.n_sections + 1, sizeof(int));
        pc_layer *input = push_layer(&ll);
        if (!section_last || !input) st = pc_fail_nomem();
        else {
            input->kind = PC_L_INPUT;
            strcpy(input->name, "input");
            input->c = c;
            input->h = h;
            input->w = w;
        }
    }
    for (int si = first; si < ctx.n_sections && st == PC_OK; si++) {
        if (si == first && first) section_last[si - 1] = 0;
        st = build_section(&ctx, si, &ll, section_last);
    }
    int64_t train_flops = 0; /* forward + backward at most 3x forward: all sums exact */
    for (int i = 0; i < ll.n && st == PC_OK; i++)
        if (__builtin_add_overflow(train_flops, pc_size_mul(3, ll.v[i].flops), &train_flops))
            st = pc_fail(PC_ERR_USAGE, "%s: the model needs more FLOPs than 64 bits count", origin);
    if (st == PC_OK) {
        const pc_layer *last = &ll.v[ll.n - 1];
        if (ll.n < 2 || pc_layer_out_size(last) != classes || last->act != PC_ACT_NONE)
            st = pc_fail(PC_ERR_USAGE, "%s: the last layer must output the %d class scores "
                         "(units=classes or filters=classes + gap), without activation; "
                         "it outputs %dx%dx%d", origin, classes, last->c, last->h, last->w);
    }
    if (st == PC_OK) {
        m = calloc(1, sizeof *m);
        if (!m) st = pc_fail_nomem();
    }
    if (st == PC_OK) {
        m->layers = ll.v;
        ll.v = NULL;
        m->n_layers = ll.n;
        m->classes = classes;
        m->source = strdup(text);
        m->name = strdup(origin);
        layout_params(m);
    }
    free(ll.v);
    free(section_last);
    free(ctx.sections);
    if (st != PC_OK) {
        pc_model_free(m);
        return st;
    }
    *out = m;
    return PC_OK;
}

pc_status pc_model_parse(const char *text, const char *origin, int c, int h, int w, int classes,
                         uint64_t seed, pc_model **out) {
    PC_TRY(pc_model_parse_layers(text, origin, c, h, w, classes, out));
    pc_status st = pc_model_init_params(*out, seed);
    if (st != PC_OK) {
        pc_model_free(*out);
        *out = NULL;
    }
    return st;
}

static char *read_text_file(const char *path) {
    FILE *f = pc_fopen_regular(path); /* a named pipe would block until a writer comes */
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = (n >= 0 && n < (1 << 24)) ? malloc(n + 1) : NULL;
    if (buf && fread(buf, 1, n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    else pc_fail(PC_ERR_DATA, "%s: cannot read model file", path);
    return buf;
}

pc_status pc_model_create(const char *name_or_path, int c, int h, int w, int classes,
                          uint64_t seed, pc_model **out) {
    const char *zoo = pc_zoo_text(name_or_path);
    if (zoo) return pc_model_parse(zoo, name_or_path, c, h, w, classes, seed, out);
    if (!strchr(name_or_path, '/') && !strstr(name_or_path, ".cfg")) {
        char names[256] = "";
        for (int i = 0; i < pc_zoo_n; i++) {
            strcat(names, i ? ", " : "");
            strncat(names, pc_zoo_names[i], sizeof names - strlen(names) - 3);
        }
        return pc_fail(PC_ERR_USAGE, "unknown model '%s' (the zoo has %s; or give a model file)",
                       name_or_path, names);
    }
    char *text = read_text_file(name_or_path);
    if (!text) return PC_ERR_DATA; /* read_text_file said why */
    if (strlen(text) == 0) {
        free(text);
        return pc_fail(PC_ERR_USAGE, "%s: empty model file", name_or_path);
    }
    pc_status st = pc_model_parse(text, name_or_path, c, h, w, classes, seed, out);
    free(text);
    return st;
}

void pc_model_free(pc_model *m) {
    if (!m) return;
    free(m->layers);
    pc_free(m->params);
    pc_free(m->buffers);
    free(m->source);
    free(m->name);
    free(m);
}

void pc_model_param_roles(const pc_model *m, uint8_t *roles) {
    for (int i = 0; i < m->n_layers; i++) {
        const pc_layer *l = &m->layers[i];
        const pc_layer_ops *ops = pc_layer_ops_of(l->kind);
        int weight_role = l->trainable & PC_TRAIN_WEIGHT ? ops->weight_role : PC_PARAM_FROZEN;
        int bias_role = l->trainable & PC_TRAIN_BIAS ? ops->bias_role : PC_PARAM_FROZEN;
        if (l->weight_off >= 0) memset(roles + l->weight_off, weight_role, (size_t)l->weight_n);
        if (l->bias_off >= 0) memset(roles + l->bias_off, bias_role, (size_t)l->bias_n);
    }
}

pc_param_info pc_param_tensor(const pc_layer *l, const char *suffix, int ndim,
                              const int64_t *shape, int64_t offset, int is_buffer) {
    pc_param_info t = {.ndim = ndim, .offset = offset, .numel = 1, .is_buffer = is_buffer};
    for (int d = 0; d < ndim; d++) t.numel *= (t.shape[d] = shape[d]);
    snprintf(t.name, sizeof t.name, "%s.%s", l->name, suffix);
    return t;
}

int pc_model_param_info(const pc_model *m, pc_param_info *infos, int max) {
    int n = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const pc_layer *l = &m->layers[i];
        const pc_layer_ops *ops = pc_layer_ops_of(l->kind);
        pc_param_info item[4];
        int k = ops->param_info ? ops->param_info(m, l, item) : 0;
        for (int j = 0; j < k; j++) {
            item[j].layer = i;
            if (infos && n < max) infos[n] = item[j];
            n++;
        }
    }
    return n;
}
