/* Golden test against PyTorch: the zoo models built from their model files must give the
 * same logits, loss, parameter gradients, and parameters after 3 Adam / 3 SGD steps
 * (with batch-norm running statistics) as PyTorch does. The fixtures
 * tests/golden/<model>.safetensors are written by tests/golden/gen_golden.py (see
 * tests/golden/README.md); this test runs every kernel set the build has. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/safetensors.h"
#include "nn/exec.h"
#include "nn/model.h"
#include "optim/optim.h"

#define LOGITS_TOL 1e-5 /* normalized error */
#define LOSS_TOL 1e-5   /* relative error */
#define GRAD_TOL 1e-4   /* normalized error, per tensor */
/* Normalized error per tensor after the optimizer steps. Adam's first updates are about
 * lr * g / (|g| + eps): a gradient element near eps in size moves its weight by a fraction
 * of lr that its rounding decides. With Winograd convolutions (gradients within 5e-6 of
 * PyTorch's instead of 5e-7) simple-cnn's 5x5 layer ends 1.1e-4 from PyTorch after 3 Adam
 * steps (3e-7 with direct convolutions); SGD, linear in g, stays below 2e-6. */
#define STEP_TOL_ADAM 3e-4
#define STEP_TOL_SGD 1e-4
#define STEPS 3
#define CLASSES 10
#define SMOOTHING 0.1f

typedef struct {
    const char *model;
} golden_case;

/* zoo models, and model files of tests/golden (layers.cfg: the layers of imported networks;
 * windows.cfg: dilation, ceil mode, averages counting the padding) */
static const golden_case cases[] = {{"simple-cnn"}, {"minixception"}, {"resnet20"}, {"layers"},
                                     {"windows"}};

/* A zoo model's text, or tests/golden/<name>.cfg (malloc'ed); NULL when neither exists. */
static char *model_text(const char *name) {
    const char *zoo = pc_zoo_text(name);
    if (zoo) return strdup(zoo);
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/golden/%s.cfg", PARCNN_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *text = calloc(1, 1 << 16);
    if (!text) abort();
    size_t n = fread(text, 1, (1 << 16) - 1, f);
    fclose(f);
    text[n] = 0;
    return text;
}

/* The worst error of a group of comparisons (NaN counts as the worst). */
typedef struct {
    double err;
    char name[96];
} worst;

static void worst_update(worst *w, double e, const char *name) {
    if (!(e <= w->err) && !(w->err != w->err)) {
        w->err = e;
        snprintf(w->name, sizeof w->name, "%s", name);
    }
}

/* A copy of text with every "from" replaced by "to"; *count gets the number replaced. */
static char *replace_all(const char *text, const char *from, const char *to, int *count) {
    size_t lf = strlen(from), lt = strlen(to);
    *count = 0;
    for (const char *p = strstr(text, from); p; p = strstr(p + lf, from)) (*count)++;
    char *out = malloc(strlen(text) + (size_t)*count * lt + 1);
    if (!out) abort();
    char *o = out;
    const char *p = text;
    for (const char *q = strstr(p, from); q; q = strstr(p, from)) {
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, to, lt);
        o += lt;
        p = q + lf;
    }
    strcpy(o, p);
    return out;
}

/* The fixture's F32 tensor `prefix name` with the given shape, or NULL (and a failure). */
static const float *get_tensor(const pc_st_file *f, const char *path, const char *prefix,
                               const char *name, int ndim, const int64_t *shape) {
    char full[160];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const pc_st_tensor *t = pc_st_get(f, full);
    CHECK(t != NULL, "%s: tensor '%s' is missing", path, full);
    if (!t) return NULL;
    int ok = t->dtype == PC_F32 && t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
    CHECK(ok, "%s: tensor '%s' has dtype %d and shape [%lld,%lld,%lld,%lld] (ndim %d), expected "
          "F32 [%lld,%lld,%lld,%lld] (ndim %d)", path, full, (int)t->dtype,
          (long long)(t->ndim > 0 ? t->shape[0] : -1), (long long)(t->ndim > 1 ? t->shape[1] : -1),
          (long long)(t->ndim > 2 ? t->shape[2] : -1), (long long)(t->ndim > 3 ? t->shape[3] : -1),
          t->ndim, (long long)(ndim > 0 ? shape[0] : -1), (long long)(ndim > 1 ? shape[1] : -1),
          (long long)(ndim > 2 ? shape[2] : -1), (long long)(ndim > 3 ? shape[3] : -1), ndim);
    return ok ? (const float *)t->data : NULL;
}

static float *param_ptr(pc_model *m, const pc_param_info *pi) {
    return (pi->is_buffer ? m->buffers : m->params) + pi->offset;
}

/* Copy the fixture's initial parameters and buffers into the model by name. */
static int load_initial(pc_model *m, const pc_st_file *f, const char *path,
                        const pc_param_info *infos, int n_infos) {
    int ok = 1;
    for (int i = 0; i < n_infos; i++) {
        const float *src = get_tensor(f, path, "", infos[i].name, infos[i].ndim, infos[i].shape);
        if (!src) {
            ok = 0;
            continue;
        }
        memcpy(param_ptr(m, &infos[i]), src, sizeof(float) * (size_t)infos[i].numel);
    }
    return ok;
}

/* Compare every parameter and buffer with the fixture's "<prefix><name>". */
static void compare_state(pc_model *m, const pc_st_file *f, const char *path, const char *prefix,
                          const char *what, double tol, const pc_param_info *infos, int n_infos,
                          worst *w) {
    for (int i = 0; i < n_infos; i++) {
        const float *want = get_tensor(f, path, prefix, infos[i].name, infos[i].ndim,
                                       infos[i].shape);
        if (!want) continue;
        double e = check_nerr(param_ptr(m, &infos[i]), want, (long)infos[i].numel);
        worst_update(w, e, infos[i].name);
        CHECK(e < tol, "%s [%s]: %s%s differs from PyTorch: normalized error %.3e",
              m->name, what, prefix, infos[i].name, e);
    }
}

/* BN running statistics from one shard of `batch` samples, exactly like train.c's
 * update_running_stats (PyTorch momentum convention, unbiased variance). */
static void update_running_stats(pc_model *m, const float *st, int batch) {
    for (int i = 0; i < m->n_layers; i++) {
        const pc_layer *l = &m->layers[i];
        if (l->kind != PC_L_BN) continue;
        float *rmean = m->buffers + l->buffer_off, *rvar = rmean + l->c;
        double count = (double)batch * l->h * l->w;
        float unbias = (float)(count / (count > 1 ? count - 1 : 1));
        for (int c = 0; c < l->c; c++) {
            rmean[c] = (1 - l->momentum) * rmean[c] + l->momentum * st[c];
            rvar[c] = (1 - l->momentum) * rvar[c] + l->momentum * st[l->c + c] * unbias;
        }
        st += 2 * l->c;
    }
}

typedef struct {
    const char *name;     /* "adam" / "sgd": fixture prefix "<name>." */
    pc_opt_config cfg;
    float lr;
    double tol;           /* the parameters' normalized error after STEPS steps */
} golden_opt;

static const golden_opt opts[] = {
    {"adam", {.kind = PC_OPT_ADAM, .weight_decay = 1e-4f, .beta1 = 0.9f, .beta2 = 0.999f,
              .eps = 1e-8f}, 1e-3f, STEP_TOL_ADAM},
    {"sgd", {.kind = PC_OPT_SGD, .momentum = 0.9f, .nesterov = 1, .weight_decay = 5e-4f}, 0.05f,
     STEP_TOL_SGD},
};

static void run_kernels(const char *model_name, pc_model *m, const pc_st_file *f,
                        const char *path, pc_kernel_set ks, const pc_param_info *infos,
                        int n_infos, int batch, const float *input, const int32_t *labels) {
    pc_exec *ex = NULL;
    pc_status st = pc_exec_create(m, batch, &(pc_exec_options){.kernels = ks}, &ex);
    CHECK(st == PC_OK, "%s: pc_exec_create(%s): %s", model_name,
          ks == PC_KERNELS_REF ? "reference" : "onednn", pc_last_error());
    if (st != PC_OK) return;
    const char *kname = pc_exec_kernel_name(ex);
    int64_t in_size = (int64_t)batch * m->layers[0].c * m->layers[0].h * m->layers[0].w;
    int64_t n = m->n_params;
    float *grads = malloc(sizeof(float) * (size_t)(n ? n : 1));
    float *bn_stats = malloc(sizeof(float) * (size_t)(pc_exec_bn_stats_size(m) + 1));
    if (!grads || !bn_stats) abort();

    /* ---- forward, loss, backward from the initial state */
    load_initial(m, f, path, infos, n_infos);
    memcpy(pc_exec_input(ex), input, sizeof(float) * (size_t)in_size);
    const float *logits = pc_exec_forward(ex, 1, 0, 0, 0, bn_stats);
    int64_t lshape[2] = {batch, CLASSES}, one[1] = {1};
    const float *want_logits = get_tensor(f, path, "", "logits", 2, lshape);
    double e_logits = want_logits ? check_nerr(logits, want_logits, (long)(batch * CLASSES)) : 1;
    CHECK(e_logits < LOGITS_TOL, "%s [%s]: logits differ from PyTorch: normalized error %.3e",
          model_name, kname, e_logits);

    const float *want_smooth = get_tensor(f, path, "", "loss_smooth", 1, one);
    double smooth = pc_exec_loss(ex, labels, SMOOTHING, 1.0f / batch, NULL) / batch;
    double e_smooth = want_smooth ? fabs(smooth - want_smooth[0]) / fabs(want_smooth[0]) : 1;
    CHECK(e_smooth < LOSS_TOL, "%s [%s]: label-smoothed loss %.8f, PyTorch %.8f (rel %.3e)",
          model_name, kname, smooth, want_smooth ? want_smooth[0] : 0.0, e_smooth);

    const float *want_loss = get_tensor(f, path, "", "loss", 1, one);
    double loss = pc_exec_loss(ex, labels, 0.0f, 1.0f / batch, NULL) / batch;
    double e_loss = want_loss ? fabs(loss - want_loss[0]) / fabs(want_loss[0]) : 1;
    CHECK(e_loss < LOSS_TOL, "%s [%s]: loss %.8f, PyTorch %.8f (rel %.3e)", model_name, kname,
          loss, want_loss ? want_loss[0] : 0.0, e_loss);

    for (int64_t i = 0; i < n; i++) grads[i] = NAN; /* backward must write every gradient */
    pc_exec_backward(ex, grads);
    worst wg = {0, "-"};
    for (int i = 0; i < n_infos; i++) {
        if (infos[i].is_buffer) continue;
        const float *want = get_tensor(f, path, "grad.", infos[i].name, infos[i].ndim,
                                       infos[i].shape);
        if (!want) continue;
        double e = check_nerr(grads + infos[i].offset, want, (long)infos[i].numel);
        worst_update(&wg, e, infos[i].name);
        CHECK(e < GRAD_TOL, "%s [%s]: gradient of %s differs from PyTorch: normalized error %.3e",
              model_name, kname, infos[i].name, e);
    }

    /* ---- STEPS optimizer steps on the same batch, from the initial state */
    worst wo[2] = {{0, "-"}, {0, "-"}};
    for (int o = 0; o < 2; o++) {
        const golden_opt *go = &opts[o];
        load_initial(m, f, path, infos, n_infos);
        int per = pc_opt_state_per_param(&go->cfg);
        float *state = calloc((size_t)(per * n + 1), sizeof(float));
        if (!state) abort();
        for (int step = 1; step <= STEPS; step++) {
            memcpy(pc_exec_input(ex), input, sizeof(float) * (size_t)in_size);
            pc_exec_forward(ex, 1, 0, (uint64_t)step, 0, bn_stats);
            pc_exec_loss(ex, labels, 0.0f, 1.0f / batch, NULL);
            pc_exec_backward(ex, grads);
            pc_opt_step(&go->cfg, NULL, go->lr, step, m->params, grads, state, n, 0, n);
            update_running_stats(m, bn_stats, batch);
        }
        free(state);
        char prefix[16], what[48];
        snprintf(prefix, sizeof prefix, "%s.", go->name);
        snprintf(what, sizeof what, "%s, %d %s steps", kname, STEPS, go->name);
        compare_state(m, f, path, prefix, what, go->tol, infos, n_infos, &wo[o]);
    }

    printf("golden %-12s %-9s logits %.2e  loss %.2e  smooth %.2e  grad %.2e (%s)  "
           "adam %.2e (%s)  sgd %.2e (%s)\n",
           model_name, kname, e_logits, e_loss, e_smooth, wg.err, wg.name, wo[0].err, wo[0].name,
           wo[1].err, wo[1].name);
    fflush(stdout);
    free(grads);
    free(bn_stats);
    pc_exec_destroy(ex);
}

static void run_case(const golden_case *gc) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/golden/%s.safetensors", PARCNN_SOURCE_DIR, gc->model);
    pc_st_file *f = NULL;
    pc_status st = pc_safetensors_read(path, &f);
    CHECK(st == PC_OK, "%s: %s (regenerate with /usr/bin/python3 tests/golden/gen_golden.py)",
          path, pc_last_error());
    if (st != PC_OK) return;
    const char *gen = pc_st_meta_get(f, "generator");
    CHECK(gen && strcmp(gen, "tests/golden/gen_golden.py") == 0, "%s: unexpected generator '%s'",
          path, gen ? gen : "(none)");

    const pc_st_tensor *tin = pc_st_get(f, "input"), *tlab = pc_st_get(f, "labels");
    CHECK(tin && tin->dtype == PC_F32 && tin->ndim == 4, "%s: no F32 (N,C,H,W) 'input'", path);
    if (!(tin && tin->dtype == PC_F32 && tin->ndim == 4)) {
        pc_st_close(f);
        return;
    }
    int batch = (int)tin->shape[0];
    CHECK(tlab && tlab->dtype == PC_I32 && tlab->ndim == 1 && tlab->shape[0] == batch,
          "%s: no I32 'labels' of %d entries", path, batch);
    if (!(tlab && tlab->dtype == PC_I32 && tlab->ndim == 1 && tlab->shape[0] == batch)) {
        pc_st_close(f);
        return;
    }

    /* The model as the zoo describes it; dropout off (our masks come from our own RNG). */
    char *source = model_text(gc->model);
    CHECK(source != NULL, "model %s is missing from the zoo and tests/golden", gc->model);
    if (!source) {
        pc_st_close(f);
        return;
    }
    int replaced = 0;
    char *text = replace_all(source, "rate=0.4", "rate=0", &replaced);
    free(source);
    if (strcmp(gc->model, "simple-cnn") == 0)
        CHECK(replaced == 1, "simple-cnn: expected one 'rate=0.4' in the zoo text, found %d",
              replaced);
    pc_model *m = NULL;
    st = pc_model_parse(text, gc->model, (int)tin->shape[1], (int)tin->shape[2],
                        (int)tin->shape[3], CLASSES, 1, &m);
    free(text);
    CHECK(st == PC_OK, "%s: pc_model_parse: %s", gc->model, pc_last_error());
    if (st != PC_OK) {
        pc_st_close(f);
        return;
    }

    int n_infos = pc_model_param_info(m, NULL, 0);
    pc_param_info *infos = calloc((size_t)n_infos, sizeof *infos);
    if (!infos) abort();
    pc_model_param_info(m, infos, n_infos);
    /* The fixture must not hold tensors the model lacks (a naming mismatch). */
    int n_state = 0, n_grad = 0, n_params = 0;
    for (int i = 0; i < pc_st_count(f); i++) {
        const char *name = pc_st_get_index(f, i)->name;
        if (strncmp(name, "grad.", 5) == 0)
            n_grad++;
        else if (strchr(name, '.') && strncmp(name, "adam.", 5) && strncmp(name, "sgd.", 4))
            n_state++;
    }
    for (int i = 0; i < n_infos; i++) n_params += !infos[i].is_buffer;
    CHECK(n_state == n_infos && n_grad == n_params,
          "%s: the fixture has %d parameters+buffers and %d gradients, the model %d and %d",
          path, n_state, n_grad, n_infos, n_params);

    /* Every parameter and buffer must be in the fixture, with the model's shape. */
    int loaded = load_initial(m, f, path, infos, n_infos);
    CHECK(loaded, "%s: the fixture does not hold every parameter and buffer of %s with the "
          "right shape; skipping the comparisons", path, gc->model);
    const float *input = (const float *)tin->data;
    const int32_t *labels = (const int32_t *)tlab->data;
    if (loaded) {
        run_kernels(gc->model, m, f, path, PC_KERNELS_REF, infos, n_infos, batch, input, labels);
#ifdef PARCNN_HAVE_DNNL
        run_kernels(gc->model, m, f, path, PC_KERNELS_DNNL, infos, n_infos, batch, input,
                    labels);
#endif
    }
    free(infos);
    pc_model_free(m);
    pc_st_close(f);
}

int main(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
    return check_summary();
}
