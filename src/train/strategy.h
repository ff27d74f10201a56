/* Synchronization strategies other than the per-step gradient allreduce.
 *
 * --sync local-sgd=K with --replicas R: R replicas, each with its own weights,
 * batch-norm running statistics and optimizer state. Replica r owns shards
 * [r*S/R, (r+1)*S/R) of every global batch of S shards; it sums their gradients along
 * the fixed tree restricted to them (node [a, b), children split at the same midpoint
 * rule as train/tree.h), scales the sum to the mean over its own B/R samples, takes an
 * optimizer step on its whole parameter vector and folds its shards' batch-norm
 * statistics in shard order. After every K-th step, at the end of every epoch and at the
 * run's last step the replicas are averaged element by element in replica order
 * (((x_0 + x_1) + x_2) + ...) / R: the weights and running statistics always, the
 * optimizer state with --average-opt-state. A run stopped between two averages
 * (--max-steps) saves and evaluates the average without the replicas adopting it, so a
 * resume continues exactly. A worker slot (rank x workers) computes
 * whole replicas, so no sum depends on how the replicas are spread: any workers x ranks
 * dividing R give the same bytes.
 *
 * Also: traffic accounting per epoch (bytes and messages between ranks). */
#ifndef PC_STRATEGY_H
#define PC_STRATEGY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "comm/comm.h"
#include "nn/exec.h"
#include "nn/model.h"
#include "optim/optim.h"
#include "data/tta.h"
#include "train/engine.h"
#include "train/metrics.h"
#include "train/reduce.h"

typedef enum { PC_SYNC_ALLREDUCE = 0, PC_SYNC_LOCAL_SGD, PC_SYNC_FUSION, PC_SYNC_PS } pc_sync_kind;

typedef struct {
    pc_sync_kind kind;
    int every;              /* local-sgd: steps between averages (K) */
} pc_sync;

/* "allreduce", "local-sgd=K" (K >= 1), "fusion" or "ps"; the error names --sync. */
pc_status pc_sync_parse(const char *arg, pc_sync *out);
/* "allreduce", "local-sgd=K", "fusion" or "ps" into buf. */
void pc_sync_format(const pc_sync *s, char *buf, size_t n);

typedef struct pc_local_sgd pc_local_sgd;

typedef struct {
    pc_model *model;        /* the averaged model: holds the average after every sync */
    pc_engine *engine;      /* its workers' replicas are rebuilt on per-worker views, with
                               the engine's exec options */
    pc_comm *comm;
    int replicas, shards;
    int sync_every;         /* steps between averages; 0: never during training (fusion) */
    int average_opt_state;
    int64_t opt_state_n;    /* optimizer state floats of one replica */
    int64_t steps_per_epoch, stop; /* syncs also at epoch ends and at step `stop` */
} pc_local_sgd_config;

pc_status pc_local_sgd_create(const pc_local_sgd_config *cfg, pc_local_sgd **out);
void pc_local_sgd_destroy(pc_local_sgd *s);

/* Every replica's whole state (weights, statistics, optimizer state) in floats: what a
 * checkpoint holds. */
int64_t pc_local_sgd_state_size(const pc_local_sgd *s);
/* Start the replicas from `states` (pc_local_sgd_state_size floats, from
 * pc_local_sgd_gather_state), or with NULL from the model's weights and statistics and
 * a zero optimizer state. */
void pc_local_sgd_start(pc_local_sgd *s, const float *states);

/* What one local step needs from the trainer. */
typedef struct {
    pc_leaf_fn leaf;        /* one shard's forward and backward on worker w's exec */
    void *ctx;
    const float *(*shard_bn)(void *ctx, int shard); /* that shard's batch-norm statistics */
    int shard_size;
    const pc_opt_config *opt;
    const pc_opt_groups *groups;
    float lr;
    int64_t step;           /* optimizer steps done before this one */
} pc_local_step;

/* One step of every replica of this rank (the engine's workers), then, when the step
 * ends a period, the average. */
pc_status pc_local_sgd_step(pc_local_sgd *s, const pc_local_step *step);
/* The replicas' average into the model, the replicas going on as they are (fusion: for
 * the epoch's evaluation). */
pc_status pc_local_sgd_average(pc_local_sgd *s);
/* Every replica's whole state, on every rank, into all (pc_local_sgd_state_size floats,
 * replica r's [weights | statistics | optimizer state] at r x its length). */
pc_status pc_local_sgd_gather_state(pc_local_sgd *s, float *all);

/* ------------------------------------------------------------- fusion
 * --sync fusion with --replicas R: the replicas of local SGD that never average during
 * training. Replica r trains for the whole run on its own part of the training set,
 * positions [r*n/R, (r+1)*n/R) of a fixed shuffle of the n samples; every epoch shuffles
 * each part (keyed by seed, epoch and r) and gives replica r's k-th B/R samples to its
 * shards of step k, so the local-SGD machinery (replica r owns shards [r*S/R, (r+1)*S/R)
 * of each global batch) trains it on its part alone. At the end the replicas are fused
 * by averaging their weights and by ensembling (probabilities averaged in replica order). */

/* part[0..n): the fixed shuffle whose consecutive R parts are the replicas' data. */
void pc_fusion_partition(uint64_t seed, int64_t n, int64_t *part);
/* The epoch's order perm[0..steps*batch): step k's batch holds replica r's k-th batch/R
 * samples of its shuffled part at [k*batch + r*batch/R, k*batch + (r+1)*batch/R).
 * scratch: n / R + 1 indices. Needs steps * batch / R <= n / R (rounded down). */
void pc_fusion_epoch(uint64_t seed, int epoch, const int64_t *part, int64_t n, int R, int batch,
                     int64_t steps, int64_t *perm, int64_t *scratch);

typedef struct {
    double accuracy, loss, macro_f1;
} pc_fusion_score;

typedef struct {
    int replicas;
    pc_fusion_score *replica;      /* each replica alone, with its own statistics (R) */
    pc_fusion_score ensemble;      /* the replicas' probabilities averaged */
    pc_fusion_score average;       /* the weight average with the averaged statistics */
    pc_fusion_score recalibrated;  /* the weight average, statistics recomputed */
    int64_t recalibrated_images;   /* images they were recomputed on (0: not asked) */
} pc_fusion_result;

typedef struct {
    const pc_dataset *test, *train;
    const pc_tta *tta;             /* test-time augmentation of every evaluation (or NULL) */
    int64_t recalibrate;           /* --bn-recalibrate N: images (0: none) */
} pc_fusion_eval;

/* After training, from every replica's state (pc_local_sgd_gather_state, on every rank):
 * evaluate each replica, their ensemble, their weight average and, with recalibrate > 0,
 * the average with recomputed batch-norm statistics. The model ends as the average
 * (recalibrated when asked): the fused model, whose full metrics go into `fused`. */
pc_status pc_fusion_finish(pc_local_sgd *s, const pc_fusion_eval *ev, const float *states,
                           pc_metrics *fused, pc_fusion_result *out);
void pc_fusion_result_free(pc_fusion_result *r);
/* The results as a JSON object (cJSON), and as lines on f. */
void *pc_fusion_json(const pc_fusion_result *r);
void pc_fusion_print(const pc_fusion_result *r, FILE *f);
/* DIR/fusion.json, and the same object as "fusion" in DIR/eval.json (written before). */
pc_status pc_fusion_write(const pc_fusion_result *r, const char *dir);
/* Replica r's weights and statistics in the model (for saving it). */
void pc_fusion_load_replica(pc_local_sgd *s, const float *states, int r);

/* Traffic between ranks over an epoch: pc_traffic_begin at its start,
 * pc_traffic_end at its end gives the bytes and messages all ranks sent meanwhile
 * (the same on every rank; the exchange of the counts is not counted). */
typedef struct {
    int64_t bytes, messages;
} pc_traffic;
void pc_traffic_begin(pc_comm *c, pc_traffic *mark);
pc_status pc_traffic_end(pc_comm *c, const pc_traffic *mark, pc_traffic *epoch);

#endif
