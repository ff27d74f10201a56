/* The public C API (include/parcnn.h): thin wrappers over the library's internals. */
#define _XOPEN_SOURCE 700
#include "parcnn.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm.h"
#include "core/flags.h"
#include "data/dataset.h"
#include "data/image.h"
#include "nn/model.h"
#include "train/engine.h"
#include "train/metrics.h"
#include "train/modelio.h"
#include "train/train.h"

_Static_assert(PARCNN_OK == (int)PC_OK && PARCNN_ERR_DATA == (int)PC_ERR_DATA &&
                   PARCNN_ERR_USAGE == (int)PC_ERR_USAGE && PARCNN_ERR_IO == (int)PC_ERR_IO &&
                   PARCNN_ERR_NOMEM == (int)PC_ERR_NOMEM &&
                   PARCNN_ERR_INTERNAL == (int)PC_ERR_INTERNAL,
               "parcnn_status mirrors pc_status");

#define STATUS(expr) ((parcnn_status)(expr))
/* PC_TRY for functions returning parcnn_status */
#define TRY(expr)                                 \
    do {                                          \
        pc_status try_s_ = (expr);                \
        if (try_s_ != PC_OK) return STATUS(try_s_); \
    } while (0)

const char *parcnn_last_error(void) { return pc_last_error(); }
const char *parcnn_version(void) { return PARCNN_VERSION; }

static pc_status out_of_memory(void) { return pc_fail_nomem(); }

/* ------------------------------------------------------------------ data sets */

struct parcnn_dataset {
    pc_dataset d;
};

parcnn_status parcnn_dataset_open(const char *spec, parcnn_part part, parcnn_dataset **out) {
    *out = NULL;
    if (!spec) return STATUS(pc_fail(PC_ERR_USAGE, "parcnn_dataset_open: no data set spec"));
    parcnn_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return STATUS(out_of_memory());
    pc_status st = pc_dataset_load(spec, part == PARCNN_TRAIN, &ds->d);
    if (st != PC_OK) {
        parcnn_dataset_close(ds);
        return STATUS(st);
    }
    *out = ds;
    return PARCNN_OK;
}

void parcnn_dataset_close(parcnn_dataset *ds) {
    if (!ds) return;
    pc_dataset_free(&ds->d);
    free(ds);
}

int64_t parcnn_dataset_size(const parcnn_dataset *ds) { return ds->d.n; }
int parcnn_dataset_classes(const parcnn_dataset *ds) { return ds->d.classes; }

void parcnn_dataset_shape(const parcnn_dataset *ds, int *channels, int *height, int *width) {
    *channels = ds->d.c, *height = ds->d.h, *width = ds->d.w;
}

int parcnn_dataset_label(const parcnn_dataset *ds, int64_t i) {
    return i >= 0 && i < ds->d.n ? ds->d.labels[i] : -1;
}

/* ------------------------------------------------------------------ models */

struct parcnn_model {
    pc_model *m;
    pc_model_meta meta;  /* input shape, normalization, class names */
    pc_model *folded;    /* m with its batch norms folded, which the engines run */
    pc_engine *engine;   /* one worker, batch 1: prediction (created on first use) */
    float *input;        /* c x h x w normalized floats */
    float *scratch;      /* pc_engine_probs' 2 x classes floats */
};

void parcnn_model_free(parcnn_model *pm) {
    if (!pm) return;
    pc_engine_destroy(pm->engine);
    pc_model_free(pm->folded);
    pc_model_free(pm->m);
    pc_model_meta_free(&pm->meta);
    free(pm->input);
    free(pm->scratch);
    free(pm);
}

/* Class names "0", "1", ... for a model that was never trained on a data set. */
static pc_status number_classes(pc_model_meta *meta) {
    meta->class_names = calloc((size_t)meta->classes, sizeof *meta->class_names);
    if (!meta->class_names) return out_of_memory();
    for (int k = 0; k < meta->classes; k++) {
        char name[16];
        snprintf(name, sizeof name, "%d", k);
        if (!(meta->class_names[k] = strdup(name))) return out_of_memory();
    }
    return PC_OK;
}

parcnn_status parcnn_model_create(const char *name_or_file, int channels, int height, int width,
                                  int classes, uint64_t seed, parcnn_model **out) {
    *out = NULL;
    if (!name_or_file) return STATUS(pc_fail(PC_ERR_USAGE, "parcnn_model_create: no model name"));
    if (channels < 1 || channels > 4 || height < 1 || width < 1 || classes < 2)
        return STATUS(pc_fail(PC_ERR_USAGE, "parcnn_model_create: input %dx%dx%d with %d "
                              "classes (expected 1 to 4 channels and at least 2 classes)",
                              channels, height, width, classes));
    parcnn_model *pm = calloc(1, sizeof *pm);
    if (!pm) return STATUS(out_of_memory());
    pm->meta = (pc_model_meta){.c = channels, .h = height, .w = width, .classes = classes};
    for (int i = 0; i < 4; i++) pm->meta.mean[i] = 0, pm->meta.std[i] = 1;
    pc_status st = pc_model_create(name_or_file, channels, height, width, classes, seed, &pm->m);
    if (st == PC_OK) st = number_classes(&pm->meta);
    if (st != PC_OK) {
        parcnn_model_free(pm);
        return STATUS(st);
    }
    *out = pm;
    return PARCNN_OK;
}

parcnn_status parcnn_model_load(const char *path, parcnn_model **out) {
    *out = NULL;
    parcnn_model *pm = calloc(1, sizeof *pm);
    if (!pm) return STATUS(out_of_memory());
    pc_status st = pc_model_load(path, &pm->m, &pm->meta);
    if (st != PC_OK) {
        parcnn_model_free(pm);
        return STATUS(st);
    }
    *out = pm;
    return PARCNN_OK;
}

parcnn_status parcnn_model_save(const parcnn_model *pm, const char *path) {
    return STATUS(pc_model_save(path, pm->m, &pm->meta));
}

int64_t parcnn_model_parameters(const parcnn_model *pm) { return pm->m->n_params; }
int parcnn_model_classes(const parcnn_model *pm) { return pm->meta.classes; }

void parcnn_model_input(const parcnn_model *pm, int *channels, int *height, int *width) {
    *channels = pm->meta.c, *height = pm->meta.h, *width = pm->meta.w;
}

const char *parcnn_model_class_name(const parcnn_model *pm, int k) {
    return k >= 0 && k < pm->meta.classes ? pm->meta.class_names[k] : NULL;
}

/* ------------------------------------------------------------------ training */

struct parcnn_config {
    pc_train_config c;
    char **strings; /* copies of the string values c points to */
    int n_strings;
};

parcnn_status parcnn_config_create(parcnn_config **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return STATUS(out_of_memory());
    pc_train_config_defaults(&(*out)->c);
    return PARCNN_OK;
}

void parcnn_config_free(parcnn_config *cfg) {
    if (!cfg) return;
    for (int i = 0; i < cfg->n_strings; i++) free(cfg->strings[i]);
    free(cfg->strings);
    free(cfg);
}

void parcnn_config_set_log(parcnn_config *cfg, FILE *log) { cfg->c.log = log; }

/* A copy of value that lives as long as cfg. */
static const char *keep_string(parcnn_config *cfg, const char *value) {
    char **grown = realloc(cfg->strings, sizeof *grown * (size_t)(cfg->n_strings + 1));
    if (!grown) return NULL;
    cfg->strings = grown;
    return cfg->strings[cfg->n_strings++] = strdup(value);
}

parcnn_status parcnn_config_set(parcnn_config *cfg, const char *name, const char *value) {
    const pc_flag *f = name ? pc_flag_find(pc_train_flags, name) : NULL;
    if (!f)
        return STATUS(pc_fail(PC_ERR_USAGE, "unknown flag '--%s' (see parcnn train --help)",
                              name ? name : "(null)"));
    if (f->type == PC_FLAG_SWITCH) {
        if (value && *value)
            return STATUS(pc_fail(PC_ERR_USAGE, "--%s takes no value ('%s')", name, value));
        pc_flag_set(f, &cfg->c, NULL);
        return PARCNN_OK;
    }
    if (!value) return STATUS(pc_fail(PC_ERR_USAGE, "--%s: expected a value", name));
    const char *kept = keep_string(cfg, value);
    if (!kept) return STATUS(out_of_memory());
    return pc_flag_set(f, &cfg->c, kept) == PC_FLAG_OK ? PARCNN_OK : PARCNN_ERR_USAGE;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    return remove(path);
}

static pc_status load_trained(const char *dir, parcnn_model **out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    return (pc_status)parcnn_model_load(path, out);
}

parcnn_status parcnn_train(const parcnn_config *cfg, parcnn_train_result *result,
                           parcnn_model **trained) {
    if (trained) *trained = NULL;
    pc_train_config c = cfg->c;
    if (trained && c.ensemble > 1)
        return STATUS(pc_fail(PC_ERR_USAGE, "parcnn_train: an ensemble gives no single trained "
                              "model (train with a NULL model and load the members from the "
                              "out directory)"));
    char tmp[4096] = "";
    if (!c.out_dir) { /* the run needs a directory to write its model to */
        const char *base = getenv("TMPDIR");
        snprintf(tmp, sizeof tmp, "%s/parcnn-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmp))
            return STATUS(pc_fail(PC_ERR_IO, "%s: cannot create a temporary directory", tmp));
        c.out_dir = tmp;
    }
    pc_train_result r;
    pc_status st = pc_train(&c, &r);
    if (st == PC_OK && trained) st = load_trained(c.out_dir, trained);
    if (tmp[0]) nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (st == PC_OK && result)
        *result = (parcnn_train_result){.epochs_run = r.epochs_run,
                                        .train_seconds = r.train_seconds,
                                        .images_per_second = r.images_per_second,
                                        .test_accuracy = r.test_accuracy,
                                        .test_loss = r.test_loss};
    return STATUS(st);
}

/* ------------------------------------------------------------------ inference */

static pc_status check_fits(const parcnn_model *pm, const pc_dataset *d) {
    const pc_model_meta *meta = &pm->meta;
    if (d->c != meta->c || d->h != meta->h || d->w != meta->w)
        return pc_fail(PC_ERR_USAGE, "the model expects %dx%dx%d images, the data set has "
                       "%dx%dx%d", meta->c, meta->h, meta->w, d->c, d->h, d->w);
    if (d->classes > meta->classes)
        return pc_fail(PC_ERR_USAGE, "the model has %d classes, the data set %d", meta->classes,
                       d->classes);
    return PC_OK;
}

/* The model the engines run: pm's, batch norms folded as parcnn predict and eval run it
 * (made on first use; the model's weights never change after loading). */
static pc_status fold_model(parcnn_model *pm) {
    return pm->folded ? PC_OK : pc_model_fold_bn(pm->m, &pm->folded, NULL);
}

parcnn_status parcnn_evaluate(parcnn_model *pm, const parcnn_dataset *ds, parcnn_metrics *out) {
    enum { EVAL_BATCH = 100 }; /* samples per forward pass, as `parcnn eval` */
    TRY(check_fits(pm, &ds->d));
    TRY(fold_model(pm));
    pc_engine *e = NULL;
    pc_metrics mt = {0};
    pc_status st = pc_engine_create(pm->folded, 1, 1, EVAL_BATCH, NULL, pm->meta.mean,
                                    pm->meta.std, &e);
    if (st == PC_OK && pc_metrics_init(&mt, pm->meta.classes)) st = out_of_memory();
    if (st == PC_OK) st = pc_engine_evaluate(e, pc_comm_world(), &ds->d, NULL, &mt, NULL, NULL);
    if (st == PC_OK)
        *out = (parcnn_metrics){.samples = mt.n, .accuracy = pc_metrics_accuracy(&mt),
                                .loss = pc_metrics_loss(&mt),
                                .macro_f1 = pc_metrics_macro_f1(&mt)};
    pc_metrics_free(&mt);
    pc_engine_destroy(e);
    return STATUS(st);
}

/* The prediction engine and its buffers, made on first use. */
static pc_status prepare_predict(parcnn_model *pm) {
    if (pm->engine) return PC_OK;
    PC_TRY(fold_model(pm));
    const pc_model_meta *meta = &pm->meta;
    pm->input = malloc(sizeof(float) * meta->c * meta->h * meta->w);
    pm->scratch = malloc(sizeof(float) * 2 * meta->classes);
    if (!pm->input || !pm->scratch) return out_of_memory();
    return pc_engine_create(pm->folded, 1, 1, 1, NULL, meta->mean, meta->std, &pm->engine);
}

/* Scale pixels to [0, 1] and normalize them as the model was trained. */
static void normalize(const pc_model_meta *meta, const uint8_t *px, float *out) {
    int64_t plane = (int64_t)meta->h * meta->w, n = plane * meta->c;
    for (int64_t i = 0; i < n; i++)
        out[i] = ((float)px[i] / 255.0f - meta->mean[i / plane]) / meta->std[i / plane];
}

parcnn_status parcnn_predict_pixels(parcnn_model *pm, const uint8_t *pixels, float *probs) {
    TRY(prepare_predict(pm));
    normalize(&pm->meta, pixels, pm->input);
    return STATUS(pc_engine_probs(pm->engine, 0, NULL, pm->input, probs, pm->scratch));
}

parcnn_status parcnn_predict_file(parcnn_model *pm, const char *path, float *probs) {
    const pc_model_meta *meta = &pm->meta;
    uint8_t *px = malloc((size_t)meta->c * meta->h * meta->w);
    if (!px) return STATUS(out_of_memory());
    pc_status st = pc_image_load_chw(path, meta->c, meta->h, meta->w, 0, px, NULL, NULL);
    if (st == PC_OK) st = (pc_status)parcnn_predict_pixels(pm, px, probs);
    free(px);
    return STATUS(st);
}

parcnn_status parcnn_predict_sample(parcnn_model *pm, const parcnn_dataset *ds, int64_t i,
                                    float *probs) {
    TRY(check_fits(pm, &ds->d));
    if (i < 0 || i >= ds->d.n)
        return STATUS(pc_fail(PC_ERR_USAGE, "sample index %lld out of range [0, %lld)",
                              (long long)i, (long long)ds->d.n));
    TRY(prepare_predict(pm));
    pc_status st = pc_dataset_gather(&ds->d, &i, 1, pm->meta.mean, pm->meta.std, pm->input, NULL);
    if (st == PC_OK) st = pc_engine_probs(pm->engine, 0, NULL, pm->input, probs, pm->scratch);
    return STATUS(st);
}
