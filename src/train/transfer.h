/* Transfer learning: start training from a pretrained network (--init), with its last
 * dense layer replaced by a fresh head for the data's classes (--head) or everything after
 * a named layer replaced by global average pooling and a fresh head (--cut); freeze a
 * prefix of the network (--freeze) and unfreeze it later at a lower learning rate
 * (--unfreeze-at, --finetune-lr-mult); recompute every batch norm's running statistics
 * from training images before training (--bn-recalibrate). See docs/transfer.md.
 *
 * Model surgery works on the model-file text (sections) and copies the pretrained tensors
 * into the new model by name (pc_model_param_info): every tensor of the new model except
 * the head's comes from the pretrained one. */
#ifndef PC_TRANSFER_H
#define PC_TRANSFER_H

#include <stdint.h>

#include <stdio.h>

#include "data/augment.h"
#include "data/dataset.h"
#include "nn/model.h"
#include "train/engine.h"
#include "train/modelio.h"

typedef enum { PC_FREEZE_NONE = 0, PC_FREEZE_ALL_BUT_HEAD, PC_FREEZE_UP_TO } pc_freeze_kind;

typedef struct {
    const char *init;         /* pretrained model file (.onnx or .safetensors); NULL: off */
    const char *cut;          /* keep the layers up to this one, add gap + head (NULL: no cut) */
    int head;                 /* classes of the new head (0: the data's class count) */
    pc_freeze_kind freeze;
    char freeze_layer[PC_NAME_LEN]; /* up-to=LAYER */
    float unfreeze_at;        /* > 0: the frozen layers train from this epoch on */
    float finetune_lr_mult;   /* learning-rate multiplier of the layers unfrozen then */
    int bn_recalibrate;       /* training images for batch-norm recalibration (0: none) */
    int feature_views;        /* cached features: views per training image (default 1) */
    int no_feature_cache;     /* train through the frozen backbone even when only the head
                                 trains (the same result, slower) */
} pc_transfer_config;

/* --freeze all-but-head | up-to=LAYER | none */
pc_status pc_transfer_parse_freeze(const char *spec, pc_transfer_config *c);
/* The --freeze setting as text, as it is given. */
void pc_transfer_format_freeze(const pc_transfer_config *c, char *out, size_t size);
/* Usage checks that need no data (also when --init is absent). */
pc_status pc_transfer_check(const pc_transfer_config *c);

/* The pretrained network and what it expects of its input. */
typedef struct {
    pc_model *model;
    pc_model_meta meta;       /* input shape, normalization (mean, std), its classes */
} pc_pretrained;

pc_status pc_pretrained_load(const char *path, pc_pretrained *out);
void pc_pretrained_free(pc_pretrained *p);
/* The evaluation transform the model expects, as torchvision's ImageNet one: the shorter
 * side resized to round(size / 0.875) (256 for 224), then the central size x size. */
int pc_pretrained_resize_short(const pc_pretrained *p);

/* The training state of a transferred model: which prefix is frozen, and whether it has
 * been unfrozen. */
typedef struct {
    int head;                 /* the new head's layer index */
    int frozen;               /* layers 1..frozen are frozen (0: none) */
    int unfrozen;             /* --unfreeze-at reached */
    uint8_t *trainable0;      /* each layer's trainable bits as built */
} pc_transfer;

/* Build the model to train: p's network at input (c, h, w) with its head replaced or cut,
 * `classes` outputs, p's tensors copied by name (the head initialized from seed). */
pc_status pc_transfer_build(const pc_transfer_config *c, const pc_pretrained *p, int in_c, int h,
                            int w, int classes, uint64_t seed, pc_model **out, pc_transfer *tr);
/* Freeze the prefix c asks for: its layers get no parameter updates and their batch norms
 * run in inference mode (running statistics, not updated). */
pc_status pc_transfer_freeze(const pc_transfer_config *c, pc_model *m, pc_transfer *tr);
/* Before step `step`: at epoch c->unfreeze_at, restore the frozen layers' trainable bits
 * and batch-norm training. Returns 1 when it changed something (parameter roles change). */
int pc_transfer_step(const pc_transfer_config *c, pc_model *m, pc_transfer *tr, int64_t step,
                     int64_t steps_per_epoch);
/* Parameter i belongs to the (unfrozen) backbone: --finetune-lr-mult applies. */
int pc_transfer_in_backbone(const pc_transfer *tr, int layer);
void pc_transfer_free(pc_transfer *tr);

/* --bn-recalibrate N: every batch norm's running mean and (unbiased) variance become those
 * of its training-mode input over the first n training images (rounded down to whole
 * shards of the engine's batch), pooled exactly over all of them in shard order: the same
 * bytes for any worker count. Returns the number of images used in *used. */
pc_status pc_transfer_recalibrate(pc_model *m, pc_engine *e, const pc_dataset *train, int64_t n,
                                  int64_t *used);

/* ------------------------------------------------------------- cached features
 * With everything but the head frozen and nothing unfrozen later, the backbone's output
 * (the head's input) is computed once per image, in inference mode, and the head trains
 * on it: the same arithmetic as training through the frozen backbone. With --augment,
 * --feature-views K extracts K augmented views per training image (view v as the
 * augmentation of epoch v); epoch e trains on view e mod K. */
int pc_transfer_uses_features(const pc_transfer_config *c, const pc_transfer *tr);

typedef struct {
    const char *cache_dir;    /* a directory: keep the features in a file there (NULL: memory) */
    const pc_augment_config *augment;
    uint64_t seed;
    int kernels;              /* the kernel set, precision and convolution algorithm, as one
                                 number (features differ in rounding between them) */
    int write;                /* this process writes the cache file (rank 0) */
    FILE *log;                /* NULL: silent */
    double seconds;           /* out: extraction (or loading) time */
} pc_feature_options;

/* Replace train and test (image datasets) by the features of m's layer tr->head - 1,
 * computed on engine e (m's replicas): from the cache file when its key (the backbone's
 * text and tensors, the images, labels, views, augmentation, seed, kernels) matches and
 * its checksum is right, else extracted (and the file rewritten atomically). The test
 * images move to *test_images (for the run's report). */
pc_status pc_transfer_features(const pc_transfer_config *c, const pc_transfer *tr,
                               const pc_model *m, pc_engine *e, pc_feature_options *o,
                               pc_dataset *train, pc_dataset *test, pc_dataset *test_images);
/* The head alone, reading features of m's layer tr->head - 1, with m's head tensors. */
pc_status pc_transfer_head_model(const pc_model *m, const pc_transfer *tr, uint64_t seed,
                                 pc_model **head);
/* Copy the head's tensors back into the whole model m. */
pc_status pc_transfer_head_back(const pc_model *head, pc_model *m);

#endif
