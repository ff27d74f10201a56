/* Synchronous data-parallel training with worker-count-independent results.
 *
 * Each step takes the next `batch` samples of the epoch's permutation (the global
 * batch), cuts them into batch/shard_size shards, and lets each of the `workers`
 * replicas process a contiguous run of whole shards. Shard gradients are summed
 * along the fixed tree of train/tree.h, the optimizer updates parameter chunks in
 * parallel, and batch-norm running statistics are folded in shard order. */
#ifndef PC_TRAIN_H
#define PC_TRAIN_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "core/flags.h"
#include "data/augment.h"
#include "data/folder.h"
#include "data/tta.h"
#include "nn/exec.h"
#include "optim/optim.h"
#include "train/strategy.h"
#include "train/transfer.h"

/* Learning-rate scaling for large batches (Goyal et al. 2017): lr x B/ref or x sqrt(B/ref). */
typedef enum { PC_LR_SCALE_NONE = 0, PC_LR_SCALE_LINEAR, PC_LR_SCALE_SQRT } pc_lr_scale;
/* --exchange: how ranks of the deterministic mode exchange gradients and parameters */
typedef enum { PC_EXCHANGE_AUTO = 0, PC_EXCHANGE_MESSAGES } pc_exchange;
float pc_lr_scale_factor(pc_lr_scale s, int batch, int ref_batch);
const char *pc_lr_scale_name(pc_lr_scale s);
pc_status pc_lr_scale_parse(const char *name, pc_lr_scale *out);

typedef struct {
    const char *data;          /* dataset spec, see data/dataset.h */
    const char *model;         /* zoo name or model file */
    const char *out_dir;       /* NULL: write nothing */
    int epochs;
    int batch;                 /* global batch */
    int shard_size;
    int workers;               /* 0: pc_train_auto_workers */
    int threads;
    pc_opt_config opt;
    pc_sched_config sched;     /* kind, base_lr, decay_rate, decay_epochs, warmup_epochs */
    float bias_lr_mult;        /* learning-rate multiplier of conv and dense biases */
    float norm_bias_lr_mult;   /* learning-rate multiplier of batch-norm shifts */
    int no_decay_bn_bias;      /* no weight decay on biases, batch-norm scales and shifts */
    float ema;                 /* decay of the weight average evaluated and saved (0: off) */
    int lookahead;             /* airbench's lookahead every this many steps (0: off) */
    pc_tta tta;                /* test-time augmentation of the final evaluation */
    uint64_t seed;
    int resume;                /* continue from out_dir/checkpoint.safetensors */
    int overwrite;             /* allow a fresh run in an out_dir that holds one */
    int64_t limit;             /* use only the first `limit` training samples (0: all) */
    int64_t eval_limit;        /* evaluate on the first `eval_limit` test samples (0: all) */
    int64_t max_steps;         /* stop after this many optimizer steps in total (0: none) */
    int64_t checkpoint_every;  /* also write the checkpoint every this many steps (0: at
                                  epoch ends only) */
    double checkpoint_minutes; /* also write it after a step when this long has passed since
                                  the last one, by rank 0's clock (0: off) */
    /* set (to a signal number) from outside, e.g. by a SIGINT handler: the run finishes the
     * step, writes the checkpoint and returns PC_ERR_INTERRUPTED (NULL: never) */
    volatile sig_atomic_t *stop_signal;
    float label_smoothing;
    pc_lr_scale lr_scale;      /* scale --lr for the global batch against lr_ref_batch */
    int lr_ref_batch;
    pc_exec_options exec;      /* kernel set, precision, convolution algorithm */
    int progress;              /* 1: live progress bar on stderr */
    int profile;               /* per-layer timing table at the end (and profile.json) */
    pc_folder_options folder;  /* image folders: size, channels, split, cache, bad images */
    pc_augment_config augment; /* training-time augmentation (off by default) */
    int loader_threads;        /* background threads preparing the next step's input
                                  while the workers compute (0: workers assemble their own) */
    int reduce_fast;           /* MPI: bucketed non-blocking allreduce overlapping backward */
    int exchange;              /* MPI, deterministic: PC_EXCHANGE_AUTO (shared memory when every
                                  rank runs on one machine) or PC_EXCHANGE_MESSAGES */
    double timeout;            /* seconds a collective may wait for the other ranks (0: forever) */
    int ensemble;              /* train this many models (seeds seed, seed + 1, ...; the data
                                  split keeps seed) and rate their ensemble (0, 1: one model) */
    pc_sync sync;              /* allreduce (every step) or local-sgd=K (train/strategy.h) */
    int replicas;              /* local-sgd: replicas (0: workers x ranks) */
    int average_opt_state;     /* local-sgd: average the optimizer state too */
    int servers;               /* ps: parameter-server ranks (-1: not given, 1) */
    int staleness;             /* ps: steps the weights may lag (-1: not given, 0) */
    int ps_async;              /* ps: apply each push as it arrives (not reproducible) */
    const char *tensorboard;   /* TensorBoard event files into this folder (NULL: none) */
    int tensorboard_every;     /* ... with the batch loss and lr every this many steps (0: per epoch only) */
    pc_transfer_config transfer; /* --init, --cut, --head, --freeze, --bn-recalibrate ... */
    int sampler;               /* pc_sampler_kind: the order of an epoch's samples */
    const char *class_weights; /* NULL, "balanced" or a file: weights of the classes' losses */
    int early_stop;            /* stop after this many epochs without improvement (0: never) */
    int monitor;               /* PC_MONITOR_* (train/early_stop.h): what early_stop and
                                  keep_best watch; 0: not given (val_loss) */
    double min_delta;          /* an improvement beats the best by more than this */
    int keep_best;             /* also write model-best.safetensors at every improvement */
    FILE *log;                 /* start-up summary and per-epoch lines (NULL: silent) */
} pc_train_config;

typedef struct {
    int epochs_run;
    double train_seconds;      /* time in training steps, all epochs */
    double images_seen;
    double images_per_second;  /* training images / train_seconds */
    double test_accuracy, test_loss; /* of the ensemble when there is one */
} pc_train_result;

/* The flags of `parcnn train` (src/train/config.c): one entry per flag with its field of
 * pc_train_config, range, default and help; the command line's parser and --help are
 * generated from it. */
extern const pc_flag pc_train_flags[];
/* The names of --kernels, --precision and --conv-algo (shared with eval and predict). */
extern const pc_flag_choice pc_kernel_choices[], pc_precision_choices[], pc_conv_algo_choices[];

/* Every field at the default of its flag in pc_train_flags (workers 0: chosen by
 * pc_train_config_resolve; log stdout; progress bar off). */
void pc_train_config_defaults(pc_train_config *c);
/* The default worker count: the most workers, up to the core count, that divide the
 * shard count per rank (batch / shard_size / ranks). */
int pc_train_auto_workers(int batch, int shard_size, int ranks);
/* What pc_train runs: workers 0 replaced by pc_train_auto_workers; an error for bf16 on the
 * reference kernels. */
pc_status pc_train_config_resolve(pc_train_config *c);

/* Run training as configured, printing the start-up summary and one line per epoch
 * to c->log. Fills result when non-NULL. Returns PC_OK or an error with
 * pc_last_error() set.
 *
 * With c->ensemble = K > 1 the models are trained one after another, member k into
 * out_dir/member-k (each a complete run: checkpoint, metrics.jsonl, report.svg; --resume
 * continues the unfinished ones), and the last member's run ends with the ensemble's
 * test metrics (class probabilities averaged over the members), also written to
 * out_dir/ensemble.json; result's times and counts sum over the members. */
pc_status pc_train(const pc_train_config *c, pc_train_result *result);

#endif
