/* Saving and loading trained models and training checkpoints as safetensors.
 *
 * model.safetensors: every parameter and batch-norm buffer under its PyTorch-style
 * name, and metadata: format, model (the model-file text), model_name, input_shape
 * "C,H,W", classes (JSON list of names), mean and std (JSON lists). Nothing that
 * varies between identical runs.
 * checkpoint.safetensors: the same plus "optimizer.state", with --ema "ema.params" and
 * "ema.buffers" (the averaged weights), and metadata step, seed, fingerprint (the
 * training settings that must match on --resume) and metrics (the text of metrics.jsonl up
 * to this checkpoint, restored on --resume so that both always agree). */
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
    char *metrics;         /* metrics.jsonl as of this checkpoint: saved from it; on load
                              set to a malloc'ed copy, or NULL (older checkpoints) */
} pc_checkpoint_info;

pc_status pc_checkpoint_save(const char *path, const pc_model *m, const pc_model_meta *meta,
                             const pc_checkpoint_info *info);
/* Load into an existing model (same architecture) and into info's arrays. Checks the
 * fingerprint and the sizes of the optimizer and EMA state; fills info->step. */
pc_status pc_checkpoint_load(const char *path, pc_model *m, pc_checkpoint_info *info);

#endif
