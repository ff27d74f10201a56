/* The state of one training run, shared by the files of pc_train (internal to src/train):
 *   train.c           the epoch loop, evaluation, pc_train
 *   train_setup.c     checks of the configuration, data, model, optimizer groups, resume
 *   train_step.c      one optimizer step: shards, the deterministic reduction, the update
 *   train_fast.c      the step of --reduce fast (MPI allreduce overlapped with backward)
 *   train_loader.c    the background loader assembling the next step's input
 *   train_output.c    console lines, metrics.jsonl, checkpoints, profile, reports
 *   train_ensemble.c  --ensemble K: the members one after another, and their ensemble */
#ifndef PC_TRAINER_H
#define PC_TRAINER_H

#include <stdint.h>
#include <stdio.h>

#include "comm/comm.h"
#include "data/dataset.h"
#include "train/early_stop.h"
#include "train/engine.h"
#include "train/metrics.h"
#include "train/modelio.h"
#include "train/ps.h"
#include "train/reduce.h"
#include "train/sampler.h"
#include "train/tensorboard.h"
#include "train/train.h"

/* Where an epoch's training time went, on this rank: input assembly (mean over
 * workers), forward/backward, gradient reduction in memory, waiting for other
 * ranks, optimizer. */
typedef struct {
    double v[5];
} time_split;

/* One model of pc_train's ensemble (a plain run is an ensemble of one). */
typedef struct {
    uint64_t split_seed;  /* the data split's seed: the first member's, for every member */
    pc_model **earlier;   /* the members trained before this one, rated with it at the end */
    int n_earlier;
    pc_model **keep;      /* non-NULL: receives the final model (averaged weights) */
    pc_metrics *ensemble; /* n_earlier > 0: the ensemble's test metrics */
    const char *ensemble_dir; /* n_earlier > 0: where the ensemble's eval.json goes (or NULL) */
} member_ctx;

typedef struct {
    const pc_train_config *cfg;
    const member_ctx *mx;
    pc_engine *e;
    pc_model *m;
    pc_dataset train, test;
    pc_dataset val;       /* --val-split on data with a test set: the validation set held
                             out of the training set, evaluated every epoch (n 0: none) */
    pc_model_meta meta;
    int shards;
    pc_comm *comm;
    int rank, ranks;
    pc_reducer *red;
    /* --reduce fast (MPI): per worker a running sum and a temporary */
    float **fast_acc, **fast_tmp;
    int64_t fast_posted;  /* params [fast_posted, n) are already being allreduced */
    float *opt_state;
    int64_t opt_state_n;
    uint8_t *param_roles;  /* pc_param_role per parameter: the optimizer's groups */
    pc_opt_groups groups;
    /* --ema: the averaged parameters and batch-norm statistics; --lookahead: the slow
     * weights (NULL: neither); under MPI
     * each rank keeps its chunk of the parameters current, as with the optimizer state */
    float *ema_params, *ema_buffers;
    /* ranks sharing memory: the model's own parameter buffer while m->params is the copy
     * all of them share (trainer_share_params), else NULL */
    float *own_params;
    int64_t *perm;
    /* per step */
    int64_t step;         /* optimizer steps done so far */
    float lr;
    int64_t batch_first;  /* offset of this step's batch in perm */
    /* per shard: loss (double), correct (int64), then batch-norm statistics; each rank
     * fills its own shards and an allgather completes the table */
    char *shard_rec;
    char *rec_send;       /* this rank's part of shard_rec, for the allgather */
    size_t rec_size;
    /* the epoch's time split, in seconds of wall time */
    double *worker_data;  /* per worker: time assembling input batches */
    double time_data_wait; /* waiting for the background loader */
    time_split run_split;  /* --profile: the split summed over the run */
    int64_t run_steps;
    /* the background loader: input for step k+1 is assembled while step k computes */
    pc_pool *loader;
    pc_error_slot data_error; /* a sample that could not be gathered (a file changed), or
                                 a kernel that failed (out of memory inside oneDNN) */
    float *stage[2];      /* this rank's shards of one step, NCHW */
    int32_t *stage_labels[2];
    int stage_cur;        /* the buffer of the current step */
    int64_t load_step, load_first; /* the step being loaded and its offset in perm */
    int load_buf;
    double time_compute, time_reduce, time_comm, time_optimizer, time_combine0;
    int64_t bn_size;
    pc_pretrained pre;    /* --init: the pretrained network */
    pc_transfer tr;       /* --init: the new head, the frozen prefix */
    pc_model *full;       /* cached features: the whole network; m is its head alone */
    double feature_seconds; /* cached features: extraction (or loading) time */
    pc_dataset test_images; /* cached features: the test images (t->test: their features) */
    pc_sched_config sched; /* with the scaled learning rate and the run's length */
    char fingerprint[1024];
    char *metrics_text;   /* rank 0: metrics.jsonl as of the last checkpoint (malloc'ed) */
    char last_epoch[512]; /* the last metrics line's fields that do not depend on timing */
    /* the sums of the epoch in progress: kept for mid-epoch checkpoints, and loaded from
     * one on --resume so that the epoch's metrics line is the uninterrupted run's */
    double epoch_loss;
    int64_t epoch_correct, epoch_seen;
    pc_local_sgd *lsgd;   /* --sync local-sgd or fusion: the replicas (NULL: allreduce) */
    int64_t *fusion_part; /* --sync fusion: the replicas' parts of the training set (n), then
                             scratch for the epoch's order (n) */
    pc_fusion_result fusion; /* --sync fusion: every model's test results, at the end */
    pc_ps *ps;            /* --sync ps: this rank's part of the parameter server */
    char *loss_rec;       /* local SGD under MPI: loss and correct count per shard */
    pc_traffic traffic_mark; /* bytes and messages between ranks at the epoch's start */
    pc_tb_writer *tb;      /* --tensorboard, on rank 0 */
    pc_sampler sampler;    /* the epochs' sample orders */
    float *class_w;        /* --class-weights: per class (NULL: none) */
    double batch_w;        /* the step's global batch's summed class weights */
    pc_early_stop es;      /* --early-stop, --keep best: the best epoch so far */
    int best_now;          /* this epoch is a new best: write model-best.safetensors */
    int eval_is_val;       /* the evaluation set is a validation set (held out by
                              --val-split, or a folder's val/), not a test set */
    double last_checkpoint; /* pc_now() at the last checkpoint (or the run's start) */
} trainer;

/* The per-shard table: loss, correct count, then batch-norm statistics of shard s. */
static inline double *rec_loss(const trainer *t, int s) { return (double *)(t->shard_rec + s * t->rec_size); }
static inline int64_t *rec_correct(const trainer *t, int s) { return (int64_t *)(t->shard_rec + s * t->rec_size + 8); }
static inline float *rec_bn(const trainer *t, int s) { return (float *)(t->shard_rec + s * t->rec_size + 16); }

/* --early-stop, --monitor, --min-delta, --keep: nothing watches a value unasked. */
static inline int monitoring(const pc_train_config *c) { return c->early_stop > 0 || c->keep_best; }

/* --sync local-sgd: the number of replicas. */
static inline int replica_count(const trainer *t) { return t->cfg->replicas; }

static inline void path_in(char *buf, size_t n, const char *dir, const char *file) {
    snprintf(buf, n, "%s/%s", dir, file);
}

/* train.c */
pc_status trainer_train_member(const pc_train_config *c, const member_ctx *mx, pc_train_result *result);
pc_status trainer_evaluate_on(trainer *t, pc_engine *e, const pc_dataset *d, const pc_tta *tta,
                              pc_metrics *vm);
pc_status trainer_share_status_on(pc_comm *comm, pc_status st);
pc_status trainer_share_status(trainer *t, pc_status st);

/* train_setup.c */
pc_status trainer_setup(trainer *t);
void trainer_update_roles(trainer *t);

/* train_step.c */
pc_status trainer_step(trainer *t);
void trainer_compute_shard(void *ctx, int w, int shard, float *grads);
pc_status trainer_compute_shards(trainer *t, pc_job_fn job);
/* Deterministic mode by messages: the backward hooks that overlap the exchange. */
pc_status trainer_overlap_setup(trainer *t);
void trainer_optimizer_job(int w, void *arg);
pc_status trainer_share_shard_records(trainer *t);
void trainer_average_update(const trainer *t, float *x, float *avg, int64_t begin, int64_t end);
void trainer_swap_ema(trainer *t);
/* Ranks sharing memory: m->params becomes the one copy every rank updates its chunk of
 * (pc_reducer_share_params), from the end of setup to trainer_unshare_params, which puts
 * the model's own buffer back, filled, before the model is kept or freed. */
pc_status trainer_share_params(trainer *t);
void trainer_unshare_params(trainer *t);
void trainer_update_running_stats(trainer *t);

/* train_fast.c */
pc_status trainer_fast_setup(trainer *t);
pc_status trainer_fast_step(trainer *t);
void trainer_fast_free(trainer *t);

/* train_loader.c */
pc_status trainer_loader_setup(trainer *t);
pc_status trainer_prepare_input(trainer *t, int64_t epoch_end);
void trainer_loader_free(trainer *t);

/* train_output.c */
void trainer_say(const trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void trainer_print_progress(const trainer *t, int epoch, int64_t done, int64_t total,
                            double seconds, double loss, int64_t seen);
void trainer_print_startup(const trainer *t);
pc_status trainer_save_outputs(trainer *t, const char *metrics_line);
pc_status trainer_restore_metrics(trainer *t);
pc_status trainer_rewrite_model(trainer *t);
pc_status trainer_report_time_split(trainer *t, double train_seconds, time_split *mine);
pc_status trainer_report_profile(trainer *t);
pc_status trainer_write_eval_json(trainer *t, const pc_metrics *vm, const char *dir);
pc_status trainer_write_report(trainer *t, const pc_metrics *vm);
pc_status trainer_write_settings(trainer *t);
pc_status trainer_tb_log(trainer *t, const char *const *tags, const double *values, int n);

/* train_ensemble.c */
pc_status trainer_train_ensemble(const pc_train_config *c, pc_train_result *result);
pc_status trainer_evaluate_ensemble(trainer *t, pc_metrics *vm);

/* The ranks that compute gradients: all but --sync ps's servers (train_setup.c). */
int trainer_gradient_ranks(const pc_train_config *c, int ranks);

/* --sync ps, a server: the update of the step queued last, before the next step changes
 * the learning rate or the parameter roles: mostly waiting for the pushes (train_step.c). */
pc_status trainer_ps_serve(trainer *t);

#endif
