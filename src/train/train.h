/* Synchronous data-parallel training with worker-count-independent results.
 *
 * Each step takes the next `batch` samples of the epoch's permutation (the global
 * batch), cuts them into batch/shard_size shards, and lets each of the `workers`
 * replicas process a contiguous run of whole shards. Shard gradients are summed
 * along the fixed tree of train/tree.h, the optimizer updates parameter chunks in
 * parallel, and batch-norm running statistics are folded in shard order. */
#ifndef PC_TRAIN_H
#define PC_TRAIN_H

#include <stdint.h>

#include "nn/exec.h"
#include "optim/optim.h"

typedef struct {
    const char *data;          /* dataset spec, see data/dataset.h */
    const char *model;         /* zoo name or model file */
    const char *out_dir;       /* NULL: write nothing */
    int epochs;
    int batch;                 /* global batch */
    int shard_size;
    int workers, threads;
    pc_opt_config opt;
    pc_sched_config sched;     /* kind, base_lr, decay_rate, decay_epochs, warmup_epochs */
    uint64_t seed;
    int resume;                /* continue from out_dir/checkpoint.safetensors */
    int overwrite;             /* allow a fresh run in an out_dir that holds one */
    int64_t limit;             /* use only the first `limit` training samples (0: all) */
    int64_t eval_limit;        /* evaluate on the first `eval_limit` test samples (0: all) */
    int64_t max_steps;         /* stop after this many optimizer steps in total (0: none) */
    float label_smoothing;
    pc_kernel_set kernels;
    int progress;              /* 1: live progress bar on stderr */
} pc_train_config;

void pc_train_config_defaults(pc_train_config *c);

/* Run training as configured, printing the start-up summary and one line per epoch
 * on stdout. Returns PC_OK or an error with pc_last_error() set. */
pc_status pc_train(const pc_train_config *c);

#endif
