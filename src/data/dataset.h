/* In-memory labelled image datasets stored as uint8 pixels, converted to
 * normalized float only when a batch is assembled. */
#ifndef PC_DATASET_H
#define PC_DATASET_H

#include <stdint.h>

#include "core/common.h"

/* Image files decoded when a sample is gathered (an image folder with --cache none);
 * defined in data/folder.h. */
typedef struct pc_image_files pc_image_files;

typedef struct {
    int64_t n;            /* number of samples */
    int c, h, w;          /* per-sample shape (channels, height, width) */
    uint8_t *pixels;      /* n * c * h * w bytes, sample-major, CHW inside a sample; NULL
                             when the samples are decoded on demand from `files` */
    pc_image_files *files; /* owned; non-NULL: decode sample i from its file when gathered */
    uint64_t *sums;       /* with files: per sample, c sums of its pixels then c sums of
                             their squares (for pc_dataset_channel_stats) */
    float *features;      /* owned; non-NULL: a feature dataset (a frozen backbone's cached
                             outputs, see train/transfer.h): feature_views views of
                             feature_stride samples of c*h*w floats, already the network's
                             input: gathering copies them (no normalization); the augmented
                             gather takes view epoch % feature_views */
    int64_t feature_stride;
    int feature_views;
    int32_t *labels;      /* n labels in [0, classes) */
    int classes;
    char **class_names;   /* classes strings, owned */
} pc_dataset;

/* Load a dataset from a spec string:
 *   "fashion-mnist"   Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)
 *   "mnist"           likewise from /usr/share/datasets/mnist if present
 *   "idx:DIR"         DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
 *   "cifar10:DIR"     DIR/data_batch_{1..5}.bin and DIR/test_batch.bin
 *   "cifar100:DIR"    DIR/train.bin and DIR/test.bin (fine labels)
 *   "folder:DIR"      an image folder (DIR/CLASS/IMAGE.png|jpg, or DIR/train + DIR/test), with
 *                     default options; see pc_dataset_load_ex and data/folder.h
 * `train` selects the training (1) or test (0) part. Errors name the file and what is wrong. */
pc_status pc_dataset_load(const char *spec, int train, pc_dataset *out);

/* As pc_dataset_load, plus "folder:DIR" (an image folder, see data/folder.h) loaded with
 * `opt` (NULL: defaults; opt->report, if set, receives the load summary). `opt` is ignored
 * by the other loaders. pc_dataset_load(spec, train, out) = pc_dataset_load_ex(spec, train,
 * NULL, out). */
typedef struct pc_folder_options pc_folder_options;
pc_status pc_dataset_load_ex(const char *spec, int train, const pc_folder_options *opt,
                             pc_dataset *out);

/* Single-file loaders behind pc_dataset_load (exposed for tests). */
pc_status pc_dataset_load_idx(const char *images_path, const char *labels_path, pc_dataset *out);
pc_status pc_dataset_load_cifar(const char *const *paths, int n_paths, int cifar100,
                                pc_dataset *out);

/* Keep only the first n samples (no-op when n <= 0 or n >= d->n). */
void pc_dataset_truncate(pc_dataset *d, int64_t n);

/* Per-channel mean and standard deviation of the pixels scaled to [0, 1]. */
void pc_dataset_channel_stats(const pc_dataset *d, float *mean, float *std);

/* The uint8 CHW pixels of sample i: in memory, or decoded into `scratch` (c*h*w bytes)
 * from its file. Fails only when a file changed after loading (named in the error). */
pc_status pc_dataset_sample(const pc_dataset *d, int64_t i, uint8_t *scratch,
                            const uint8_t **out);

/* Assemble a batch: out[i] = (pixels[idx[i]] / 255 - mean[c]) / std[c], NCHW float;
 * labels_out[i] = labels[idx[i]] (labels_out may be NULL). */
pc_status pc_dataset_gather(const pc_dataset *d, const int64_t *idx, int n, const float *mean,
                       const float *std, float *out, int32_t *labels_out);

/* A feature dataset's samples idx of view `view` (modulo its views), and their labels. */
pc_status pc_dataset_gather_features(const pc_dataset *d, const int64_t *idx, int n,
                                     uint64_t view, float *out, int32_t *labels_out);

void pc_dataset_free(pc_dataset *d);

#endif
