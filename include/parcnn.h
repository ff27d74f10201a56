/* parcnn: the public C API.
 *
 * Train convolutional image classifiers whose results do not depend on the number of
 * workers, evaluate them and classify images, from a C program. Link with
 * `pkg-config --cflags --libs parcnn`.
 *
 *     parcnn_config *cfg;
 *     parcnn_config_create(&cfg);
 *     parcnn_config_set(cfg, "data", "mnist");       // any `parcnn train` flag, by name
 *     parcnn_config_set(cfg, "epochs", "2");
 *     parcnn_model *model;
 *     parcnn_train_result r;
 *     if (parcnn_train(cfg, &r, &model) != PARCNN_OK)
 *         fprintf(stderr, "%s\n", parcnn_last_error());
 *     float probs[10];
 *     parcnn_predict_file(model, "shoe.png", probs);
 *
 * Conventions: every fallible function returns a parcnn_status and leaves one line in
 * parcnn_last_error() (per thread); nothing exits or prints except training's own log
 * (the config's "log"). Objects are not thread-safe: use one object from one thread at
 * a time. Free functions accept NULL. Sample indices, class indices and shapes are as
 * in the data set: images are C x H x W, channels 1 (gray) or 3 (RGB). */
#ifndef PARCNN_H
#define PARCNN_H

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    PARCNN_OK = 0,
    PARCNN_ERR_DATA = 1,     /* bad or missing input file, corrupt data */
    PARCNN_ERR_USAGE = 2,    /* bad argument, flag or model description */
    PARCNN_ERR_IO = 3,       /* a file could not be written */
    PARCNN_ERR_NOMEM = 4,
    PARCNN_ERR_INTERNAL = 5
} parcnn_status;

/* The calling thread's last error message ("" if none). */
const char *parcnn_last_error(void);
/* The library's version, e.g. "0.9.0" (CHANGELOG.md lists what each version brought). */
const char *parcnn_version(void);

/* ------------------------------------------------------------------ data sets */

typedef struct parcnn_dataset parcnn_dataset;

typedef enum { PARCNN_TEST = 0, PARCNN_TRAIN = 1 } parcnn_part;

/* Open one part of a data set. spec: "fashion-mnist", "mnist" (built in), "idx:DIR",
 * "cifar10:DIR", "cifar100:DIR" or "folder:DIR" (JPEG or PNG files in DIR/CLASS/, or in
 * DIR/train/CLASS/ and DIR/test/CLASS/; resized to 32 x 32, channels from the images). */
parcnn_status parcnn_dataset_open(const char *spec, parcnn_part part, parcnn_dataset **out);
void parcnn_dataset_close(parcnn_dataset *d);
int64_t parcnn_dataset_size(const parcnn_dataset *d);
void parcnn_dataset_shape(const parcnn_dataset *d, int *channels, int *height, int *width);
int parcnn_dataset_classes(const parcnn_dataset *d);
/* The label of sample i (0 <= i < size), or -1 when i is out of range. */
int parcnn_dataset_label(const parcnn_dataset *d, int64_t i);

/* ------------------------------------------------------------------ models */

typedef struct parcnn_model parcnn_model;

/* A freshly initialized model: a zoo model by name (`parcnn models` lists them) or a
 * model file, for inputs of channels x height x width and `classes` classes; the
 * initialization depends on seed alone. Its inputs are not normalized (mean 0, std 1)
 * and its classes are named "0", "1", ... */
parcnn_status parcnn_model_create(const char *name_or_file, int channels, int height, int width,
                                  int classes, uint64_t seed, parcnn_model **out);
/* A trained model as `parcnn train` and parcnn_model_save write it (model.safetensors):
 * architecture, weights, input normalization and class names. */
parcnn_status parcnn_model_load(const char *path, parcnn_model **out);
parcnn_status parcnn_model_save(const parcnn_model *m, const char *path);
void parcnn_model_free(parcnn_model *m);
int64_t parcnn_model_parameters(const parcnn_model *m);
void parcnn_model_input(const parcnn_model *m, int *channels, int *height, int *width);
int parcnn_model_classes(const parcnn_model *m);
/* The name of class k, or NULL when k is out of range. */
const char *parcnn_model_class_name(const parcnn_model *m, int k);

/* ------------------------------------------------------------------ training */

/* Training settings: every flag of `parcnn train` (see `parcnn train --help`), with the
 * same defaults, ranges and messages. */
typedef struct parcnn_config parcnn_config;

parcnn_status parcnn_config_create(parcnn_config **out);
void parcnn_config_free(parcnn_config *cfg);
/* Set the flag `name` (without "--", e.g. "epochs", "lr", "augment") to `value`, given as
 * on the command line (the string is copied); a switch (e.g. "nesterov") takes NULL or
 * "" to turn it on. */
parcnn_status parcnn_config_set(parcnn_config *cfg, const char *name, const char *value);
/* Where training writes its start-up summary and one line per epoch (default stdout;
 * NULL: nothing). */
void parcnn_config_set_log(parcnn_config *cfg, FILE *log);

typedef struct {
    int epochs_run;
    double train_seconds;     /* time in training steps */
    double images_per_second; /* training images per second */
    double test_accuracy;     /* of the final model on the test part, in [0, 1] */
    double test_loss;
} parcnn_train_result;

/* Train as configured. With the "out" flag, training writes its run directory there
 * (metrics.jsonl, model.safetensors, checkpoint.safetensors, report.svg); without it,
 * into a temporary directory removed afterwards. result (may be NULL) receives the
 * final metrics; trained (may be NULL) the trained model, as saved in model.safetensors
 * (not with the "ensemble" flag: load its members from the out directory instead). */
parcnn_status parcnn_train(const parcnn_config *cfg, parcnn_train_result *result,
                           parcnn_model **trained);

/* ------------------------------------------------------------------ inference */

typedef struct {
    int64_t samples;
    double accuracy;  /* in [0, 1] */
    double loss;      /* mean cross-entropy */
    double macro_f1;  /* mean over classes of the per-class F1 */
} parcnn_metrics;

/* Evaluate the model on every sample of d (whose shape must be the model's input and
 * whose classes must be among the model's). */
parcnn_status parcnn_evaluate(parcnn_model *m, const parcnn_dataset *d, parcnn_metrics *out);

/* Class probabilities (parcnn_model_classes(m) floats) of one image: */
/* a JPEG or PNG file, converted to the model's channels and resized to its input; */
parcnn_status parcnn_predict_file(parcnn_model *m, const char *path, float *probs);
/* sample i of a data set; */
parcnn_status parcnn_predict_sample(parcnn_model *m, const parcnn_dataset *d, int64_t i,
                                    float *probs);
/* pixels: channels x height x width bytes of the model's input shape, 0..255. */
parcnn_status parcnn_predict_pixels(parcnn_model *m, const uint8_t *pixels, float *probs);

#ifdef __cplusplus
}
#endif

#endif
