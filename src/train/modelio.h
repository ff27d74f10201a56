/* Saving and loading trained models and training checkpoints as safetensors.
 *
 * model.safetensors: every parameter and batch-norm buffer under its PyTorch-style
 * name, and metadata: format, model (the model-file text), model_name, input_shape
 * "C,H,W", classes (JSON list of names), mean and std (JSON lists). Nothing that
 * varies between identical runs.
 * checkpoint.safetensors: the same plus "optimizer.state", with --ema "ema.params" and
 * "ema.buffers" (the averaged weights), and metadata step, seed, fingerprint (the
 * training settings that must match on --resume), last_epoch (the last metrics line's
 * fields that do not depend on timing: a metrics.jsonl that lost it is completed on --resume)
 * epoch_progress (the sums of an epoch in progress) and, with --early-stop or --keep best,
 * early_stop (the best value so far, its epoch, the epochs since). Identical runs give identical
 * bytes. */
#ifndef PC_MODELIO_H
#define PC_MODELIO_H

#include "nn/model.h"

typedef struct {
    int c, h, w;
    int classes;
    char **class_names;    /* classes strings */
    float mean[4], std[4];
} pc_model_meta;

void pc_model_meta_free(pc_model_meta *meta);

pc_status pc_model_save(const char *path, const pc_model *m, const pc_model_meta *meta);
/* Rebuild the model from the file's own model text and load its tensors. */
pc_status pc_model_load(const char *path, pc_model **m, pc_model_meta *meta);

/* The training state beyond the model's tensors. */
typedef struct {
    int64_t step;
    uint64_t seed;
    const char *fingerprint;
    float *opt_state;
    int64_t opt_state_n;
    float *ema_params;     /* --ema: the averaged parameters (n_params floats) and */
    float *ema_buffers;    /* batch-norm statistics (n_buffers); NULL without --ema */
    /* the sums of the epoch in progress (a checkpoint written mid-epoch): loss, correct
     * predictions, samples seen; zero on load from a checkpoint without them */
    double epoch_loss;
    int64_t epoch_correct, epoch_seen;
    /* the deterministic fields of the last metrics line ("epoch": .. "lr": .., without
     * braces and times): saved from it; on load a malloc'ed copy, or NULL */
    char *last_epoch;
    /* --early-stop, --keep best: the state of train/early_stop.h as text (NULL: none);
     * on load a malloc'ed copy, or NULL */
    char *early_stop;
} pc_checkpoint_info;

pc_status pc_checkpoint_save(const char *path, const pc_model *m, const pc_model_meta *meta,
                             const pc_checkpoint_info *info);
/* Load into an existing model (same architecture) and into info's arrays. Checks the
 * fingerprint and the sizes of the optimizer and EMA state; fills info->step. */
pc_status pc_checkpoint_load(const char *path, pc_model *m, pc_checkpoint_info *info);

/* A JSON list of n floats, each with %.9g (enough to read the float back exactly);
 * malloc'ed (cJSON's allocator), NULL when out of memory. */
char *pc_json_floats(const float *v, int n);

#endif
