#include "train/train.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/fpenv.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "comm/comm.h"
#include "train/early_stop.h"
#include "train/engine.h"
#include "train/metrics.h"
#include "train/modelio.h"
#include "train/reduce.h"
#include "train/report.h"
#include "train/settings.h"
#include "train/sampler.h"
#include "train/tensorboard.h"

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
    pc_error_slot data_error; /* a sample that could not be gathered (a file changed) */
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
} trainer;

static void update_roles(trainer *t);

/* ------------------------------------------------------------- the step */

static double *rec_loss(const trainer *t, int s) { return (double *)(t->shard_rec + s * t->rec_size); }
static int64_t *rec_correct(const trainer *t, int s) { return (int64_t *)(t->shard_rec + s * t->rec_size + 8); }
static float *rec_bn(const trainer *t, int s) { return (float *)(t->shard_rec + s * t->rec_size + 16); }

/* The reducer's leaf: one shard's forward and backward into grads. */
static void compute_shard(void *ctx, int w, int shard, float *grads) {
    trainer *t = ctx;
    pc_exec *ex = t->e->execs[w];
    int ss = t->cfg->shard_size, correct;
    int64_t idx[ss];
    int32_t labels[ss];
    double t0 = pc_now();
    if (t->loader) {
        int first, last;
        pc_reducer_rank_shards(t->red, &first, &last);
        int64_t elems = (int64_t)ss * t->train.c * t->train.h * t->train.w;
        memcpy(pc_exec_input(ex), t->stage[t->stage_cur] + (shard - first) * elems,
               sizeof(float) * elems);
        memcpy(labels, t->stage_labels[t->stage_cur] + (shard - first) * ss, sizeof(int32_t) * ss);
    } else {
        for (int i = 0; i < ss; i++) idx[i] = t->perm[t->batch_first + (int64_t)shard * ss + i];
        pc_error_slot_set(&t->data_error,
                          pc_dataset_gather_augmented(
                              &t->train, idx, ss, t->e->mean, t->e->std, &t->cfg->augment,
                              t->cfg->seed, (uint64_t)(t->step / t->sched.steps_per_epoch),
                              pc_exec_input(ex), labels));
    }
    t->worker_data[w] += pc_now() - t0;
    int64_t first_sample = t->step * t->cfg->batch + (int64_t)shard * ss;
    pc_exec_forward(ex, 1, t->cfg->seed, (uint64_t)t->step, first_sample, rec_bn(t, shard));
    float scale = t->class_w ? (float)(1.0 / t->batch_w) : 1.0f / (float)t->cfg->batch;
    *rec_loss(t, shard) = pc_exec_loss(ex, labels, t->cfg->label_smoothing, scale, &correct);
    if (t->class_w) { /* PyTorch's weighted mean: w[y] (p - onehot(y)) / sum of the batch's w[y] */
        float row[ss];
        for (int i = 0; i < ss; i++) row[i] = t->class_w[labels[i]];
        pc_exec_scale_dlogits(ex, row);
    }
    *rec_correct(t, shard) = correct;
    pc_exec_backward(ex, grads);
}

static void compute_job(int w, void *arg) {
    trainer *t = arg;
    pc_reducer_compute(t->red, w, compute_shard, t);
}

static float *step_gradient(trainer *t) {
    return t->fast_acc ? t->fast_acc[0] : pc_reducer_gradient(t->red);
}

/* --ema: the decay after the optimizer step being taken (t->step + 1 counting from 1),
 * warmed up as timm's ModelEmaV3 does: min(decay, (1 + s) / (10 + s)), so the first
 * averages are not dominated by the random initial weights. */
static float ema_decay(const trainer *t) {
    double s = (double)(t->step + 1);
    return (float)PC_MIN((double)t->cfg->ema, (1.0 + s) / (10.0 + s));
}

/* --lookahead K, airbench's (Zhang et al.'s lookahead with a decay schedule): after every
 * K-th optimizer step and the run's last, the slow weights move towards the fast ones,
 * slow = d slow + (1 - d) fast, and training goes on from them, fast = slow; the decay
 * grows with the cube of the run's progress, d = 0.95^K (s / S)^3 after step s of S, so
 * early syncs follow the fast weights and late ones average over the last windows.
 * Returns the decay of the step being taken, or -1 when it is not a sync step. */
static float lookahead_decay(const trainer *t) {
    int64_t s = t->step + 1, total = (int64_t)t->cfg->epochs * (t->train.n / t->cfg->batch);
    if (s % t->cfg->lookahead != 0 && s != total) return -1.0f;
    double progress = (double)s / (double)total;
    return (float)(pow(0.95, t->cfg->lookahead) * progress * progress * progress);
}

/* The weight average after the step being taken, on [begin, end) of x (the parameters, or
 * the batch-norm statistics) and avg: --ema avg = d avg + (1 - d) x every step; --lookahead
 * the same on its sync steps, then x = avg. Computed as avg + (1 - d) (x - avg), which
 * leaves avg exactly as it is where x equals it (frozen parameters stay put; d avg +
 * (1 - d) avg can round away from avg). Element by element, so chunked like the
 * optimizer it gives the bits of a whole update. */
static void average_update(const trainer *t, float *x, float *avg, int64_t begin, int64_t end) {
    if (!avg) return;
    const int lookahead = t->cfg->lookahead > 0;
    const float d = lookahead ? lookahead_decay(t) : ema_decay(t), r = 1.0f - d;
    if (d < 0) return;
    for (int64_t i = begin; i < end; i++) avg[i] += r * (x[i] - avg[i]);
    if (lookahead) memcpy(x + begin, avg + begin, sizeof(float) * (end - begin));
}

/* --ema: exchange the model's weights and the averaged ones (evaluation and
 * model.safetensors use the average; training goes on with the weights). With
 * --lookahead the model's weights are the ones evaluated and saved: nothing to swap. */
static void swap_ema(trainer *t) {
    if (!t->ema_params || t->cfg->lookahead) return;
    float *p = t->m->params, *b = t->m->buffers;
    t->m->params = t->ema_params;
    t->m->buffers = t->ema_buffers;
    t->ema_params = p;
    t->ema_buffers = b;
}

static void optimizer_job(int w, void *arg) {
    trainer *t = arg;
    int64_t begin, end, n = t->m->n_params;
    pc_split_range(n, t->e->workers, w, 16, &begin, &end);
    pc_opt_step(&t->cfg->opt, &t->groups, t->lr, t->step + 1, t->m->params, step_gradient(t),
                t->opt_state, n, begin, end);
    average_update(t, t->m->params, t->ema_params, begin, end);
}

/* Deterministic MPI mode: each rank updates only its chunk of the parameters (its
 * workers splitting it); the chunks are then allgathered. The optimizer state of other
 * ranks' chunks is gathered only when a checkpoint needs it. */
static void optimizer_chunk_job(int w, void *arg) {
    trainer *t = arg;
    int64_t first, last, begin, end, n = t->m->n_params;
    pc_reducer_chunk(t->red, &first, &last);
    pc_split_range(last - first, t->e->workers, w, 16, &begin, &end);
    pc_opt_step(&t->cfg->opt, &t->groups, t->lr, t->step + 1, t->m->params, step_gradient(t),
                t->opt_state, n, first + begin, first + end);
    average_update(t, t->m->params, t->ema_params, first + begin, first + end);
}

/* --------------------------------------------- --reduce fast (not reproducible) */

#define FAST_BUCKET (256 * 1024) /* floats per allreduce bucket: 1 MiB */

/* Parameters [lo, hi) of layer i (its weight and bias are contiguous). */
static int layer_params(const pc_model *m, int i, int64_t *lo, int64_t *hi) {
    const pc_layer *l = &m->layers[i];
    if (l->weight_off < 0 && l->bias_off < 0) return 0;
    *lo = l->weight_off >= 0 ? l->weight_off : l->bias_off;
    *hi = l->bias_off >= 0 ? l->bias_off + l->bias_n : l->weight_off + l->weight_n;
    return 1;
}

/* Post allreduces for the final gradients [lo, fast_posted) in buckets. */
static void fast_post(trainer *t, int64_t lo, int64_t min_bucket) {
    if (t->fast_posted - lo < min_bucket || t->fast_posted == lo) return;
    pc_comm_iallreduce_sum(t->comm, t->fast_acc[0] + lo, (int)(t->fast_posted - lo));
    t->fast_posted = lo;
}

/* Worker 0's last shard, one worker per rank: as each layer's backward finishes, fold
 * it into the running sum and start reducing full buckets while backward goes on. */
static void fast_backward_hook(void *ctx, int layer) {
    trainer *t = ctx;
    int64_t lo, hi;
    if (!layer_params(t->m, layer, &lo, &hi)) return;
    int first, last;
    pc_reducer_rank_shards(t->red, &first, &last);
    if (last - first > 1)
        for (int64_t i = lo; i < hi; i++) t->fast_acc[0][i] += t->fast_tmp[0][i];
    fast_post(t, lo, FAST_BUCKET);
}

static void fast_compute_job(int w, void *arg) {
    trainer *t = arg;
    int first, last, W = t->e->workers;
    pc_reducer_rank_shards(t->red, &first, &last);
    int per = (last - first) / W, a = first + w * per, b = a + per;
    int overlap = W == 1;
    for (int k = a; k < b; k++) {
        int is_last = k == b - 1;
        if (overlap && is_last) pc_exec_set_backward_hook(t->e->execs[0], fast_backward_hook, t);
        compute_shard(t, w, k, k == a ? t->fast_acc[w] : t->fast_tmp[w]);
        if (overlap && is_last) pc_exec_set_backward_hook(t->e->execs[0], NULL, NULL);
        if (k > a && !(overlap && is_last))
            for (int64_t i = 0; i < t->m->n_params; i++) t->fast_acc[w][i] += t->fast_tmp[w][i];
    }
}

/* Several workers: sum their totals into worker 0's, chunk-parallel. */
static void fast_sum_workers_job(int w, void *arg) {
    trainer *t = arg;
    int64_t begin, end;
    pc_split_range(t->m->n_params, t->e->workers, w, 16, &begin, &end);
    for (int k = 1; k < t->e->workers; k++)
        for (int64_t i = begin; i < end; i++) t->fast_acc[0][i] += t->fast_acc[k][i];
}

static pc_status fast_setup(trainer *t) {
    int W = t->e->workers;
    t->fast_acc = calloc(W, sizeof(float *));
    t->fast_tmp = calloc(W, sizeof(float *));
    if (!t->fast_acc || !t->fast_tmp) return pc_fail(PC_ERR_NOMEM, "out of memory");
    for (int w = 0; w < W; w++) {
        t->fast_acc[w] = pc_alloc(sizeof(float) * t->m->n_params);
        t->fast_tmp[w] = pc_alloc(sizeof(float) * t->m->n_params);
        if (!t->fast_acc[w] || !t->fast_tmp[w]) return PC_ERR_NOMEM;
    }
    return PC_OK;
}

static void fast_free(trainer *t) {
    for (int w = 0; t->fast_acc && w < t->e->workers; w++) {
        pc_free(t->fast_acc[w]);
        pc_free(t->fast_tmp[w]);
    }
    free(t->fast_acc);
    free(t->fast_tmp);
}

/* Exchange the per-shard table: each rank filled its own shards. */
static pc_status share_shard_records(trainer *t) {
    int first, last;
    pc_reducer_rank_shards(t->red, &first, &last);
    size_t bytes = (size_t)(last - first) * t->rec_size;
    memcpy(t->rec_send, t->shard_rec + first * t->rec_size, bytes);
    return pc_comm_allgather_bytes(t->comm, t->rec_send, (int)bytes, t->shard_rec);
}

/* Every worker computes its shards with `job`. The weights do not change during it, so
 * the kernels may convert them once (weights version step + 1) instead of per shard. */
static pc_status compute_shards(trainer *t, pc_job_fn job) {
    for (int w = 0; w < t->e->workers; w++) pc_exec_weights_version(t->e->execs[w], (uint64_t)t->step + 1);
    pc_pool_run(t->e->pool, job, t);
    for (int w = 0; w < t->e->workers; w++) pc_exec_weights_version(t->e->execs[w], 0);
    return pc_error_slot_take(&t->data_error);
}

static pc_status fast_step(trainer *t) {
    pc_pool *pool = t->e->pool;
    double t0 = pc_now();
    t->fast_posted = t->m->n_params;
    PC_TRY(compute_shards(t, fast_compute_job));
    double t1 = pc_now();
    if (t->e->workers > 1) pc_pool_run(pool, fast_sum_workers_job, t);
    fast_post(t, 0, 1);
    double t2 = pc_now();
    PC_TRY(pc_comm_wait_all(t->comm));
    PC_TRY(share_shard_records(t));
    double t3 = pc_now();
    pc_pool_run(pool, optimizer_job, t);
    t->time_compute += t1 - t0;
    t->time_reduce += t2 - t1;
    t->time_comm += t3 - t2;
    t->time_optimizer += pc_now() - t3;
    return PC_OK;
}

/* One process: combine the tree and update each chunk in one pass (the split of
 * combine_local and optimizer_job is the same, so no barrier is needed between). */
static void combine_update_job(int w, void *arg) {
    trainer *t = arg;
    double t0 = pc_now();
    pc_reducer_combine_local(t->red, w);
    if (w == 0) t->time_combine0 += pc_now() - t0; /* the workers run alike: worker 0 stands for them */
    optimizer_job(w, arg);
}

static void combine_local_job(int w, void *arg) { pc_reducer_combine_local(((trainer *)arg)->red, w); }
static void combine_global_job(int w, void *arg) { pc_reducer_combine_global(((trainer *)arg)->red, w); }

static const float *shard_bn_stats(void *ctx, int shard) { return rec_bn(ctx, shard); }

/* Local SGD under MPI: the ranks share only their shards' loss and correct count (the
 * replicas keep their batch-norm statistics), for the epoch's training metrics. */
static pc_status share_shard_losses(trainer *t) {
    int first, last;
    pc_reducer_rank_shards(t->red, &first, &last);
    char *send = t->loss_rec, *all = t->loss_rec + 16 * t->shards;
    for (int s = first; s < last; s++) memcpy(send + 16 * (s - first), t->shard_rec + s * t->rec_size, 16);
    PC_TRY(pc_comm_allgather_bytes(t->comm, send, 16 * (last - first), all));
    for (int s = 0; s < t->shards; s++) memcpy(t->shard_rec + s * t->rec_size, all + 16 * s, 16);
    return PC_OK;
}

/* --sync local-sgd: every replica steps on its part of the batch (averaged every K). */
static pc_status local_sgd_step(trainer *t) {
    pc_local_step step = {.leaf = compute_shard, .ctx = t, .shard_bn = shard_bn_stats,
                          .shard_size = t->cfg->shard_size, .opt = &t->cfg->opt,
                          .groups = &t->groups, .lr = t->lr, .step = t->step};
    double t0 = pc_now();
    pc_status st = pc_local_sgd_step(t->lsgd, &step);
    PC_TRY(pc_error_slot_take(&t->data_error));
    PC_TRY(st);
    double t1 = pc_now();
    if (t->ranks > 1) PC_TRY(share_shard_losses(t));
    t->time_compute += t1 - t0;
    t->time_comm += pc_now() - t1;
    return PC_OK;
}

/* One optimizer step on the global batch at t->batch_first. */
static pc_status train_step(trainer *t) {
    pc_pool *pool = t->e->pool;
    pc_comm_set_step(t->comm, t->step);
    if (t->lsgd) return local_sgd_step(t);
    if (t->fast_acc) return fast_step(t);
    double t0 = pc_now();
    PC_TRY(compute_shards(t, compute_job));
    double t1 = pc_now();
    t->time_compute += t1 - t0;
    if (!pc_reducer_needs_exchange(t->red)) {
        pc_pool_run(pool, combine_update_job, t);
        t->time_reduce += t->time_combine0;
        t->time_optimizer += pc_now() - t1 - t->time_combine0;
        t->time_combine0 = 0;
        return PC_OK;
    }
    pc_pool_run(pool, combine_local_job, t);
    double t2 = pc_now();
    PC_TRY(pc_reducer_exchange(t->red));
    double t3 = pc_now();
    pc_pool_run(pool, combine_global_job, t);
    double t4 = pc_now();
    pc_pool_run(pool, optimizer_chunk_job, t);
    double t5 = pc_now();
    PC_TRY(pc_reducer_allgather_chunks(t->red, t->m->params, 1));
    PC_TRY(share_shard_records(t));
    t->time_reduce += (t2 - t1) + (t4 - t3);
    t->time_comm += (t3 - t2) + (pc_now() - t5);
    t->time_optimizer += t5 - t4;
    return PC_OK;
}

/* ------------------------------------------------------------- the loader */

/* Background thread j of the loader assembles its share of this rank's shards for
 * step load_step into stage[load_buf]: gather, augment (keyed by seed, epoch and sample
 * index, so the result does not depend on who does it or when), normalize. */
static void load_job(int j, void *arg) {
    trainer *t = arg;
    int first, last, ss = t->cfg->shard_size;
    pc_reducer_rank_shards(t->red, &first, &last);
    int64_t elems = (int64_t)ss * t->train.c * t->train.h * t->train.w;
    int64_t begin, end;
    pc_split_range(last - first, t->cfg->loader_threads, j, 1, &begin, &end);
    uint64_t epoch = (uint64_t)(t->load_step / t->sched.steps_per_epoch);
    for (int64_t k = begin; k < end; k++) {
        const int64_t *idx = t->perm + t->load_first + (first + k) * ss;
        pc_error_slot_set(&t->data_error,
                          pc_dataset_gather_augmented(&t->train, idx, ss, t->e->mean, t->e->std,
                                                      &t->cfg->augment, t->cfg->seed, epoch,
                                                      t->stage[t->load_buf] + k * elems,
                                                      t->stage_labels[t->load_buf] + k * ss));
    }
}

static void start_load(trainer *t, int64_t step, int buf) {
    t->load_step = step;
    t->load_first = (step % t->sched.steps_per_epoch) * t->cfg->batch;
    t->load_buf = buf;
    pc_pool_start(t->loader, load_job, t);
}

/* Make the current step's input ready in stage[stage_cur], and start loading the next
 * step of the same epoch into the other buffer. */
static pc_status prepare_input(trainer *t, int64_t epoch_end) {
    double t0 = pc_now();
    if (t->load_step != t->step) { /* nothing prefetched (epoch start or resume) */
        pc_pool_wait(t->loader);
        start_load(t, t->step, t->stage_cur);
    }
    pc_pool_wait(t->loader);
    t->time_data_wait += pc_now() - t0;
    PC_TRY(pc_error_slot_take(&t->data_error));
    if (t->step + 1 < epoch_end) start_load(t, t->step + 1, 1 - t->stage_cur);
    return PC_OK;
}

static pc_status loader_setup(trainer *t) {
    const pc_train_config *c = t->cfg;
    if (c->loader_threads <= 0) return PC_OK;
    int first, last;
    pc_reducer_rank_shards(t->red, &first, &last);
    int64_t n = (int64_t)(last - first) * c->shard_size;
    for (int b = 0; b < 2; b++) {
        t->stage[b] = pc_alloc(sizeof(float) * n * t->train.c * t->train.h * t->train.w);
        t->stage_labels[b] = pc_alloc(sizeof(int32_t) * n);
        if (!t->stage[b] || !t->stage_labels[b]) return PC_ERR_NOMEM;
    }
    t->load_step = -1;
    return pc_pool_create_background(c->loader_threads, 1, &t->loader);
}

static void loader_free(trainer *t) {
    pc_pool_destroy(t->loader);
    for (int b = 0; b < 2; b++) {
        pc_free(t->stage[b]);
        pc_free(t->stage_labels[b]);
    }
}

/* Running statistics, folded in shard order: new = (1-m) old + m batch, with the
 * unbiased batch variance as in PyTorch. */
static void update_running_stats(trainer *t) {
    for (int s = 0; s < t->shards; s++) {
        const float *st = rec_bn(t, s);
        for (int i = 0; i < t->m->n_layers; i++) {
            const pc_layer *l = &t->m->layers[i];
            if (l->kind != PC_L_BN) continue;
            float *rmean = t->m->buffers + l->buffer_off, *rvar = rmean + l->c;
            double count = (double)t->cfg->shard_size * l->h * l->w;
            float unbias = (float)(count / (count > 1 ? count - 1 : 1));
            for (int c = 0; c < l->c && !l->bn_frozen; c++) {
                rmean[c] = (1 - l->momentum) * rmean[c] + l->momentum * st[c];
                rvar[c] = (1 - l->momentum) * rvar[c] + l->momentum * st[l->c + c] * unbias;
            }
            st += 2 * l->c;
        }
    }
}

/* The epoch's permutation: Fisher-Yates keyed by (seed, epoch). */
/* The summed class weights of the step's global batch, in batch order (the same on every
 * worker and rank). */
static double batch_weight(const trainer *t) {
    double sum = 0;
    for (int i = 0; i < t->cfg->batch; i++) sum += t->class_w[t->train.labels[t->perm[t->batch_first + i]]];
    return sum;
}

static void make_perm(trainer *t, int epoch) {
    if (t->fusion_part) /* each replica its own part */
        pc_fusion_epoch(t->cfg->seed, epoch, t->fusion_part, t->train.n, t->cfg->replicas,
                        t->cfg->batch, t->train.n / t->cfg->batch, t->perm, t->fusion_part + t->train.n);
    else
        pc_sampler_epoch(&t->sampler, t->cfg->seed, epoch, t->train.n, t->perm);
}

/* ------------------------------------------------------------- setup */

/* --sync fusion: not with what changes its data or duplicates its fusion. */
static pc_status check_fusion(const pc_train_config *c) {
    if (c->sync.kind != PC_SYNC_FUSION) {
        if (c->transfer.bn_recalibrate > 0 && !c->transfer.init)
            return pc_fail(PC_ERR_USAGE, "--bn-recalibrate %d: only with --init (before training) "
                           "or --sync fusion (the replicas' weight average)", c->transfer.bn_recalibrate);
        return PC_OK;
    }
    if (c->average_opt_state)
        return pc_fail(PC_ERR_USAGE, "--average-opt-state: --sync fusion averages only at the end");
    if (c->sampler != PC_SAMPLER_SHUFFLE)
        return pc_fail(PC_ERR_USAGE, "--sampler with --sync fusion: each replica shuffles its own "
                       "part of the data");
    if (c->ensemble > 1)
        return pc_fail(PC_ERR_USAGE, "--ensemble %d with --sync fusion: fusion ensembles its "
                       "replicas itself", c->ensemble);
    return PC_OK;
}

/* --sync, --replicas, --average-opt-state. */
static pc_status check_strategy(const pc_train_config *c, int shards, int ranks) {
    PC_TRY(check_fusion(c));
    if (c->sync.kind == PC_SYNC_ALLREDUCE) {
        if (c->replicas > 0)
            return pc_fail(PC_ERR_USAGE, "--replicas %d: only --sync local-sgd=K and fusion train "
                           "replicas", c->replicas);
        if (c->average_opt_state)
            return pc_fail(PC_ERR_USAGE, "--average-opt-state: only --sync local-sgd=K averages");
        return PC_OK;
    }
    int R = c->replicas;
    char sync[32];
    pc_sync_format(&c->sync, sync, sizeof sync);
    if (R < 1)
        return pc_fail(PC_ERR_USAGE, "--sync %s needs --replicas R (the results depend on R, so "
                       "it has no default)", sync);
    if (R % (c->workers * ranks))
        return pc_fail(PC_ERR_USAGE, "--replicas %d is not divisible by %d rank(s) x --workers %d "
                       "(each worker computes whole replicas)", R, ranks, c->workers);
    if (shards % R)
        return pc_fail(PC_ERR_USAGE, "--replicas %d must divide the %d shards (--batch %d / "
                       "--shard-size %d)", R, shards, c->batch, c->shard_size);
    if (c->reduce_fast)
        return pc_fail(PC_ERR_USAGE, "--reduce fast: --sync %s exchanges no gradients", sync);
    if (c->ema > 0 || c->lookahead > 0)
        return pc_fail(PC_ERR_USAGE, "--%s with --sync %s: the replicas' average is the "
                       "model; a second weight average is not supported", c->ema > 0 ? "ema" : "lookahead", sync);
    return PC_OK;
}

/* --early-stop, --monitor, --min-delta, --keep: nothing watches a value unasked. */
static int monitoring(const pc_train_config *c) { return c->early_stop > 0 || c->keep_best; }

static pc_status check_monitoring(const pc_train_config *c) {
    if (!monitoring(c) && (c->monitor != PC_MONITOR_DEFAULT || c->min_delta > 0))
        return pc_fail(PC_ERR_USAGE, "--%s: only with --early-stop PATIENCE or --keep best",
                       c->monitor != PC_MONITOR_DEFAULT ? "monitor" : "min-delta");
    if (c->folder.val_split > 0 && strncmp(c->data, "folder:", 7) != 0)
        return pc_fail(PC_ERR_USAGE, "--val-split: only for image folders (--data folder:DIR); "
                       "%s has its own test set", c->data);
    if (c->keep_best && !c->out_dir)
        return pc_fail(PC_ERR_USAGE, "--keep best writes DIR/model-best.safetensors: give --out DIR");
    return PC_OK;
}

static pc_status check_config(const pc_train_config *c) {
    if (c->epochs < 1) return pc_fail(PC_ERR_USAGE, "--epochs %d: must be at least 1", c->epochs);
    if (c->batch < 1) return pc_fail(PC_ERR_USAGE, "--batch %d: must be at least 1", c->batch);
    if (c->class_weights && strcmp(c->class_weights, "none") != 0 && c->label_smoothing > 0)
        return pc_fail(PC_ERR_USAGE, "--class-weights with --label-smoothing: not supported "
                       "(give one of them)");
    if (c->shard_size < 1 || c->batch % c->shard_size)
        return pc_fail(PC_ERR_USAGE, "--batch %d is not a multiple of --shard-size %d", c->batch,
                       c->shard_size);
    int shards = c->batch / c->shard_size, ranks = pc_comm_size(pc_comm_world());
    if (c->workers < 1 || shards % (c->workers * ranks)) {
        if (ranks == 1)
            return pc_fail(PC_ERR_USAGE, "--workers %d must divide the %d shards (--batch %d / "
                           "--shard-size %d)", c->workers, shards, c->batch, c->shard_size);
        return pc_fail(PC_ERR_USAGE, "%d ranks x --workers %d must divide the %d shards "
                       "(--batch %d / --shard-size %d)", ranks, c->workers, shards, c->batch,
                       c->shard_size);
    }
    if (c->threads < 1 || c->threads > 256)
        return pc_fail(PC_ERR_USAGE, "--threads %d: must be in [1, 256]", c->threads);
    if (!(c->sched.base_lr > 0) || !isfinite(c->sched.base_lr))
        return pc_fail(PC_ERR_USAGE, "--lr %g: must be positive", c->sched.base_lr);
    if (c->label_smoothing < 0 || c->label_smoothing >= 1)
        return pc_fail(PC_ERR_USAGE, "--label-smoothing %g: must be in [0, 1)", c->label_smoothing);
    if (c->sched.kind == PC_SCHED_TRIANGULAR && c->sched.warmup_epochs > 0)
        return pc_fail(PC_ERR_USAGE, "--warmup-epochs %g: the triangular schedule warms up by "
                       "itself (see --peak-epoch and --start-factor)", c->sched.warmup_epochs);
    if (c->no_decay_bn_bias && c->opt.weight_decay == 0)
        return pc_fail(PC_ERR_USAGE, "--no-decay-bn-bias: there is no weight decay to turn off "
                       "(give --weight-decay)");
    if (c->sched.peak_epoch > c->epochs)
        return pc_fail(PC_ERR_USAGE, "--peak-epoch %g: must be at most --epochs %d",
                       c->sched.peak_epoch, c->epochs);
    if (c->ema > 0 && c->lookahead > 0)
        return pc_fail(PC_ERR_USAGE, "--ema and --lookahead both average the weights: choose one");
    PC_TRY(check_monitoring(c));
    PC_TRY(pc_transfer_check(&c->transfer));
    return check_strategy(c, shards, ranks);
}

/* A batch larger than the training set is refused (a silently smaller batch would change
 * the results and the learning-rate scaling), naming the flags that fit: the largest batch
 * of whole shards that the ranks x workers divide, or else a smaller shard size. */
static pc_status batch_too_large(const trainer *t) {
    const pc_train_config *c = t->cfg;
    int64_t n = t->train.n, replicas = (int64_t)t->ranks * c->workers;
    int64_t step = (int64_t)c->shard_size * replicas, batch = n / step * step;
    char fix[160];
    if (batch > 0)
        snprintf(fix, sizeof fix, "use --batch %lld (%lld shards of %d)", (long long)batch,
                 (long long)(batch / c->shard_size), c->shard_size);
    else if (n >= replicas)
        snprintf(fix, sizeof fix, "use --batch %lld --shard-size %lld", (long long)(n / replicas * replicas),
                 (long long)(n / replicas));
    else
        snprintf(fix, sizeof fix, "use fewer than %lld workers in all", (long long)replicas + 1);
    return pc_fail(PC_ERR_USAGE, "--batch %d is larger than the %lld training samples: %s",
                   c->batch, (long long)n, fix);
}

static pc_status load_data(trainer *t) {
    const pc_train_config *c = t->cfg;
    pc_folder_options fo = c->folder;
    pc_folder_report report;
    memset(&report, 0, sizeof report);
    fo.seed = t->mx->split_seed;
    fo.report = &report;
    fo.list_dir = t->rank == 0 ? c->out_dir : NULL;
    fo.comm = t->comm;
    if (t->pre.model) { /* the pretrained network's input size, channels and crop */
        fo.image_size = t->pre.meta.h;
        fo.channels = t->pre.meta.c;
        fo.crop_short = pc_pretrained_resize_short(&t->pre);
    }
    if (fo.list_dir) PC_TRY(pc_mkdirs(fo.list_dir, "--out"));
    pc_status st = pc_dataset_load_ex(c->data, 1, &fo, &t->train);
    if (st == PC_OK && report.kept && c->log && t->rank == 0) pc_folder_report_print(&report, &t->train, c->log);
    pc_folder_report_free(&report);
    if (st != PC_OK) return st;
    fo.channels = t->train.c; /* the evaluation part follows the training part */
    st = pc_dataset_load_ex(c->data, 0, &fo, &t->test);
    t->eval_is_val = st == PC_OK && report.part && strcmp(report.part, "val") == 0;
    if (st == PC_OK && report.kept && c->log && t->rank == 0) pc_folder_report_print(&report, &t->test, c->log);
    pc_folder_report_free(&report);
    if (st != PC_OK) return st;
    if (t->test.c != t->train.c || t->test.h != t->train.h || t->test.w != t->train.w)
        return pc_fail(PC_ERR_DATA, "%s: the test images are %dx%dx%d, the training images "
                       "%dx%dx%d (both parts must have one size)", c->data, t->test.c, t->test.h,
                       t->test.w, t->train.c, t->train.h, t->train.w);
    if (c->limit > 0) pc_dataset_truncate(&t->train, c->limit);
    if (c->eval_limit > 0) pc_dataset_truncate(&t->test, c->eval_limit);
    if (t->train.n < c->batch) return batch_too_large(t);
    if (t->train.c > 4) return pc_fail(PC_ERR_DATA, "%s: more than 4 channels", c->data);
    t->meta.c = t->train.c;
    t->meta.h = t->train.h;
    t->meta.w = t->train.w;
    t->meta.classes = t->train.classes;
    t->meta.class_names = t->train.class_names; /* borrowed from the dataset */
    pc_dataset_channel_stats(&t->train, t->meta.mean, t->meta.std);
    if (t->pre.model) { /* the normalization the network was trained with */
        memcpy(t->meta.mean, t->pre.meta.mean, sizeof t->meta.mean);
        memcpy(t->meta.std, t->pre.meta.std, sizeof t->meta.std);
    }
    for (int ch = 0; ch < t->train.c; ch++)
        if (t->meta.std[ch] < 1e-6f) t->meta.std[ch] = 1.0f;
    return PC_OK;
}

/* --sync local-sgd: the number of replicas. */
static int replica_count(const trainer *t) { return t->cfg->replicas; }

/* Append " key=value" to the fingerprint. */
static void fingerprint_add(trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fingerprint_add(trainer *t, const char *fmt, ...) {
    size_t len = strlen(t->fingerprint);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->fingerprint + len, sizeof t->fingerprint - len, fmt, ap);
    va_end(ap);
}

/* Settings that must agree between a checkpoint and the run resuming it. The
 * worker and thread counts are deliberately absent: they do not change results;
 * so is the epoch count, except for the schedules whose shape depends on the length of
 * the run (cosine, triangular), so a run can be extended; and --tta, which changes only
 * the final evaluation, not the state a checkpoint holds. Settings added later are
 * appended only when they are not at their defaults, so older checkpoints still resume. */
static void make_fingerprint(trainer *t) {
    const pc_train_config *c = t->cfg;
    char augment[256];
    pc_augment_format(&c->augment, augment, sizeof augment);
    unsigned long long h = 1469598103934665603ull;
    for (const char *p = t->m->source; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    int by_length = c->sched.kind == PC_SCHED_COSINE || c->sched.kind == PC_SCHED_TRIANGULAR;
    snprintf(t->fingerprint, sizeof t->fingerprint,
             "model=%s/%016llx data=%s limit=%lld batch=%d shard=%d opt=%s lr=%g wd=%g "
             "mom=%g nesterov=%d sched=%s decay=%g/%g warmup=%g epochs=%d smoothing=%g seed=%llu "
             "augment=%s image=%dx%d val_split=%g",
             t->m->name, h, c->data, (long long)c->limit, c->batch, c->shard_size,
             pc_opt_name(c->opt.kind), t->sched.base_lr, c->opt.weight_decay, c->opt.momentum,
             c->opt.nesterov, pc_sched_name(c->sched.kind), c->sched.decay_rate,
             c->sched.decay_epochs, c->sched.warmup_epochs, by_length ? c->epochs : 0,
             c->label_smoothing, (unsigned long long)c->seed, augment, t->train.h, t->train.c,
             c->folder.val_split);
    if (c->sched.kind == PC_SCHED_TRIANGULAR)
        fingerprint_add(t, " peak=%g start=%g", c->sched.peak_epoch, c->sched.start_factor);
    if (c->bias_lr_mult != 1.0f) fingerprint_add(t, " lr_mult=bias:%g", c->bias_lr_mult);
    if (c->norm_bias_lr_mult != 1.0f)
        fingerprint_add(t, " lr_mult=norm_bias:%g", c->norm_bias_lr_mult);
    if (c->no_decay_bn_bias) fingerprint_add(t, " no_decay_bn_bias=1");
    if (c->ema > 0) fingerprint_add(t, " ema=%g", c->ema);
    if (c->lookahead > 0) fingerprint_add(t, " lookahead=%d", c->lookahead);
    if (c->sampler == PC_SAMPLER_BALANCED) fingerprint_add(t, " sampler=balanced");
    for (int k = 0; t->class_w && k < t->m->classes; k++) /* --class-weights as resolved */
        fingerprint_add(t, "%s%g", k ? "," : " class_weights=", t->class_w[k]);
    if (c->exec.precision == PC_PRECISION_BF16) fingerprint_add(t, " precision=bf16");
    if (monitoring(c)) /* the best so far depends on them; the patience only on when to stop */
        fingerprint_add(t, " monitor=%s min_delta=%g", pc_monitor_name(c->monitor), c->min_delta);
    if (c->sync.kind == PC_SYNC_LOCAL_SGD)
        fingerprint_add(t, " sync=local-sgd=%d replicas=%d average_opt_state=%d", c->sync.every,
                        replica_count(t), c->average_opt_state);
    if (c->sync.kind == PC_SYNC_FUSION)
        fingerprint_add(t, " sync=fusion replicas=%d", replica_count(t));
    const pc_transfer_config *x = &c->transfer;
    if (x->init)
        fingerprint_add(t, " init=%s cut=%s freeze=%d:%s unfreeze=%g/%g recalibrate=%d views=%d",
                        x->init, x->cut ? x->cut : "-", (int)x->freeze, x->freeze_layer,
                        x->unfreeze_at, x->finetune_lr_mult, x->bn_recalibrate, x->feature_views);
}

static void path_in(char *buf, size_t n, const char *dir, const char *file) {
    snprintf(buf, n, "%s/%s", dir, file);
}

/* ------------------------------------------------------------- reporting */

/* Human-readable output goes to cfg->log (nothing when NULL). */
static void say(const trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const trainer *t, const char *fmt, ...) {
    if (!t->cfg->log || t->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(t->cfg->log, fmt, ap);
    va_end(ap);
    fflush(t->cfg->log);
}

static void print_progress(const trainer *t, int epoch, int64_t done, int64_t total,
                           double seconds, double loss, int64_t seen) {
    double ips = seconds > 0 ? (double)seen / seconds : 0;
    double eta = done > 0 ? seconds * (double)(total - done) / (double)done : 0;
    int width = 30, filled = total ? (int)(width * done / total) : width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
    bar[width] = 0;
    fprintf(stderr, "\repoch %d/%d [%s] %lld/%lld  %.0f img/s  loss %.4f  ETA %.0fs   ", epoch,
            t->cfg->epochs, bar, (long long)done, (long long)total, ips,
            seen ? loss / (double)seen : 0.0, eta);
    fflush(stderr);
}

static void print_startup(const trainer *t) {
    const pc_train_config *c = t->cfg;
    say(t, "parcnn: model %s: %lld parameters, %.1f MFLOP forward per image, kernels %s\n",
           t->m->name, (long long)t->m->n_params, pc_model_flops(t->m) / 1e6,
           pc_exec_kernel_name(t->e->execs[0]));
    say(t, "parcnn: data %s: %lld training and %lld test images of %dx%dx%d, %d classes\n",
           c->data, (long long)t->train.n, (long long)t->test.n, t->train.c, t->train.h,
           t->train.w, t->train.classes);
    if (t->ranks > 1)
        say(t, "parcnn: %d MPI ranks x %d worker(s) x %d thread(s); global batch %d = %d "
            "shard(s) of %d, %d per rank (%s)\n", t->ranks, c->workers, c->threads, c->batch,
            t->shards, c->shard_size, t->shards / t->ranks,
            c->reduce_fast ? "--reduce fast: MPI allreduce, NOT bit-reproducible across rank counts"
                           : "results do not depend on ranks or workers");
    else
        say(t, "parcnn: %d worker(s) x %d thread(s); global batch %d = %d shard(s) of %d "
            "(the batch is global; results do not depend on the worker count)\n",
            c->workers, c->threads, c->batch, t->shards, c->shard_size);
    if (t->fusion_part)
        say(t, "parcnn: --sync fusion: %d replicas, each training on its own %lld of the %lld "
            "training images (%d shard(s) of every step), fused at the end\n", replica_count(t),
            (long long)(t->train.n / replica_count(t)), (long long)t->train.n,
            t->shards / replica_count(t));
    else if (t->lsgd)
        say(t, "parcnn: --sync local-sgd=%d: %d replicas of %d shard(s) each, their weights and "
            "batch-norm statistics%s averaged every %d steps and at every epoch's end\n",
            c->sync.every, replica_count(t), t->shards / replica_count(t),
            c->average_opt_state ? " and optimizer state" : "", c->sync.every);
    say(t, "parcnn: %s lr %g", pc_opt_name(c->opt.kind), t->sched.base_lr);
    if (c->lr_scale != PC_LR_SCALE_NONE)
        say(t, " (= %g x %s scaling for batch %d against reference batch %d)", c->sched.base_lr,
            pc_lr_scale_name(c->lr_scale), c->batch, c->lr_ref_batch);
    say(t, ", schedule %s", pc_sched_name(c->sched.kind));
    if (c->sched.warmup_epochs > 0) say(t, " after %g warm-up epoch(s)", c->sched.warmup_epochs);
    if (c->sched.kind == PC_SCHED_TRIANGULAR) {
        double peak = c->sched.peak_epoch >= 0 ? c->sched.peak_epoch : 0.2 * c->epochs;
        say(t, " (x%g rising to the peak at epoch %g, then down to 0)", c->sched.start_factor, peak);
    }
    if (c->bias_lr_mult != 1.0f) say(t, ", biases at %g x lr", c->bias_lr_mult);
    if (c->norm_bias_lr_mult != 1.0f)
        say(t, ", batch-norm shifts at %g x lr", c->norm_bias_lr_mult);
    if (c->no_decay_bn_bias) say(t, ", no weight decay on biases and batch-norm scales");
    if (c->ema > 0) say(t, ", weights averaged with decay %g (evaluated and saved)", c->ema);
    if (c->lookahead > 0) say(t, ", lookahead every %d steps", c->lookahead);
    say(t, ", %d epoch(s) of %lld steps, seed %llu\n", c->epochs,
        (long long)(t->train.n / c->batch), (unsigned long long)c->seed);
    for (int i = 1; i < t->m->n_layers; i++)
        if (t->m->layers[i].train_epochs > 0)
            say(t, "parcnn: layer %s trains for the first %g epoch(s), then freezes\n",
                t->m->layers[i].name, t->m->layers[i].train_epochs);
    if (monitoring(c) && !t->eval_is_val && t->rank == 0)
        fprintf(stderr, "parcnn: warning: --%s chooses the epoch by %s on the test set, whose "
                "final metrics are then optimistic; hold out a validation set with --val-split F "
                "(image folders without test/) or give a folder's val/\n",
                c->early_stop > 0 ? "early-stop" : "keep best", pc_monitor_name(c->monitor));
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if ((long)c->workers * c->threads > cores && t->rank == 0)
        fprintf(stderr, "parcnn: warning: %d workers x %d threads exceed the %ld cores\n",
                c->workers, c->threads, cores);
}

/* Append a line to the metrics text. */
static pc_status add_metrics_line(trainer *t, const char *line) {
    size_t had = t->metrics_text ? strlen(t->metrics_text) : 0, len = strlen(line);
    char *grown = realloc(t->metrics_text, had + len + 2);
    if (!grown) return pc_fail(PC_ERR_NOMEM, "out of memory");
    memcpy(grown + had, line, len);
    memcpy(grown + had + len, "\n", 2);
    t->metrics_text = grown;
    return PC_OK;
}

/* DIR/file: the model as evaluated (the weight average with --ema; the whole network when
 * only the head trains on cached features). */
static pc_status save_model(trainer *t, const char *file) {
    char path[4096];
    path_in(path, sizeof path, t->cfg->out_dir, file);
    swap_ema(t);
    pc_status st = t->full ? pc_transfer_head_back(t->m, t->full) : PC_OK;
    if (st == PC_OK) st = pc_model_save(path, t->full ? t->full : t->m, &t->meta);
    swap_ema(t);
    return st;
}

/* Write checkpoint, model and metrics.jsonl, each atomically; the checkpoint carries the
 * line's timing-free fields, so a run killed between the files resumes with metrics that
 * agree (restore_metrics). model-best.safetensors goes first: a run killed before the
 * checkpoint repeats the epoch and writes the same bytes again. */
static pc_status write_outputs(trainer *t, const char *metrics_line) {
    const char *dir = t->cfg->out_dir;
    char path[4096], early_stop[96];
    if (metrics_line) PC_TRY(add_metrics_line(t, metrics_line));
    if (metrics_line && t->best_now && t->cfg->keep_best) PC_TRY(save_model(t, "model-best.safetensors"));
    pc_early_stop_format(&t->es, early_stop, sizeof early_stop);
    pc_checkpoint_info info = {.step = t->step, .seed = t->cfg->seed,
                               .fingerprint = t->fingerprint, .opt_state = t->opt_state,
                               .opt_state_n = t->opt_state_n, .ema_params = t->ema_params,
                               .ema_buffers = t->ema_buffers, .last_epoch = t->last_epoch,
                               .epoch_loss = t->epoch_loss, .epoch_correct = t->epoch_correct,
                               .epoch_seen = t->epoch_seen,
                               .early_stop = monitoring(t->cfg) ? early_stop : NULL};
    path_in(path, sizeof path, dir, "checkpoint.safetensors");
    PC_TRY(pc_checkpoint_save(path, t->m, &t->meta, &info));
    if (!metrics_line) return PC_OK; /* mid-epoch: the checkpoint alone */
    PC_TRY(save_model(t, "model.safetensors"));
    path_in(path, sizeof path, dir, "metrics.jsonl");
    return pc_write_file_atomic(path, t->metrics_text, strlen(t->metrics_text));
}

/* Rank 0 writes (metrics_line NULL: the checkpoint alone, in the middle of an epoch);
 * every rank learns whether it worked (the broadcast doubles as the barrier after the
 * checkpoint), so all stop together on a failed write. */
static pc_status save_outputs(trainer *t, const char *metrics_line) {
    if (!t->cfg->out_dir) return PC_OK;
    if (t->lsgd) /* every replica's state: each rank holds its replicas' */
        PC_TRY(pc_local_sgd_gather_state(t->lsgd, t->opt_state));
    else if (!t->fast_acc) /* deterministic MPI: each rank holds its chunk of the state */
        PC_TRY(pc_reducer_allgather_chunks(t->red, t->opt_state,
                                           pc_opt_state_per_param(&t->cfg->opt)));
    int32_t status = PC_OK;
    char message[1024] = "";
    if (t->rank == 0) {
        status = write_outputs(t, metrics_line);
        if (status != PC_OK) snprintf(message, sizeof message, "%s", pc_last_error());
    }
    if (t->ranks > 1) {
        PC_TRY(pc_comm_bcast(t->comm, &status, sizeof status, 0));
        if (status != PC_OK && t->rank != 0)
            return pc_fail((pc_status)status, "rank 0 could not write the checkpoint");
    }
    return status == PC_OK ? PC_OK : pc_fail((pc_status)status, "%s", message);
}

static const char *const split_names[5] = {"data", "compute", "reduce", "communication",
                                           "optimizer"};

/* Print this epoch's split (per rank under MPI) and reset the counters. */
static pc_status report_time_split(trainer *t, double train_seconds, time_split *mine) {
    double data = 0;
    for (int w = 0; w < t->e->workers; w++) data += t->worker_data[w] / t->e->workers;
    *mine = (time_split){{data + t->time_data_wait, t->time_compute - data, t->time_reduce,
                          t->time_comm, t->time_optimizer}};
    memset(t->worker_data, 0, sizeof(double) * t->e->workers);
    t->time_compute = t->time_reduce = t->time_comm = t->time_optimizer = t->time_data_wait = 0;
    time_split *all = calloc(t->ranks, sizeof(time_split));
    if (!all) return pc_fail(PC_ERR_NOMEM, "out of memory");
    pc_status st = pc_comm_allgather_bytes(t->comm, mine, sizeof *mine, all);
    for (int r = 0; r < t->ranks && st == PC_OK; r++) {
        if (t->ranks > 1) say(t, "      rank %d:", r);
        else say(t, "      time:");
        for (int k = 0; k < 5; k++)
            say(t, " %s %.2fs (%.1f%%)", split_names[k], all[r].v[k],
                100.0 * all[r].v[k] / train_seconds);
        say(t, "\n");
    }
    free(all);
    return st;
}

/* --profile: per layer forward and backward time per step (mean over this rank's
 * workers) and GFLOP/s, then the run's time split; as a table and, with --out, as
 * DIR/profile.json. */
static pc_status report_profile(trainer *t) {
    const pc_train_config *c = t->cfg;
    const pc_model *m = t->m;
    int W = t->e->workers;
    double steps = t->run_steps > 0 ? (double)t->run_steps : 1;
    double images = (double)c->shard_size * t->shards / (t->ranks * W); /* per worker and step */
    cJSON *root = cJSON_CreateObject(), *layers = cJSON_AddArrayToObject(root, "layers");
    char *wanted = calloc((size_t)m->n_layers, 1);
    if (!wanted) {
        cJSON_Delete(root);
        return pc_fail(PC_ERR_NOMEM, "out of memory");
    }
    pc_model_grad_wanted(m, wanted);
    say(t, "profile (per step, mean over workers; backward FLOPs: conv and dense layers' "
           "backward data and weights as computed, other layers 2x forward)\n");
    say(t, "%-26s %-9s %11s %9s %9s %9s %9s\n", "layer", "kind", "output", "fwd ms", "bwd ms",
        "fwd GF/s", "bwd GF/s");
    double total_f = 0, total_b = 0;
    for (int i = 1; i < m->n_layers; i++) {
        const pc_layer *l = &m->layers[i];
        double f = 0, b = 0;
        for (int w = 0; w < W; w++) {
            f += pc_exec_profile(t->e->execs[w], 0)[i] / W;
            b += pc_exec_profile(t->e->execs[w], 1)[i] / W;
        }
        f /= steps;
        b /= steps;
        total_f += f;
        total_b += b;
        double flops = (double)l->flops * images;
        double bflops = (double)pc_layer_backward_flops(m, wanted, i) * images;
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%dx%d", l->c, l->h, l->w);
        const char *algo = pc_exec_conv_algo(t->e->execs[0], i);
        const int wino = algo && strcmp(algo, "winograd") == 0;
        say(t, "%-26s %-9s %11s %9.3f %9.3f %9.1f %9.1f\n", l->name,
            wino ? "conv:wino" : pc_layer_kind_name(l->kind),
            shape, 1e3 * f, 1e3 * b, f > 0 ? flops / f / 1e9 : 0, b > 0 ? bflops / b / 1e9 : 0);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", l->name);
        cJSON_AddStringToObject(o, "kind", pc_layer_kind_name(l->kind));
        if (algo) cJSON_AddStringToObject(o, "algorithm", algo);
        cJSON_AddStringToObject(o, "output", shape);
        cJSON_AddNumberToObject(o, "forward_ms", 1e3 * f);
        cJSON_AddNumberToObject(o, "backward_ms", 1e3 * b);
        cJSON_AddNumberToObject(o, "forward_gflops", f > 0 ? flops / f / 1e9 : 0);
        cJSON_AddNumberToObject(o, "backward_gflops", b > 0 ? bflops / b / 1e9 : 0);
        cJSON_AddItemToArray(layers, o);
    }
    free(wanted);
    say(t, "%-26s %-9s %11s %9.3f %9.3f\n", "all layers", "", "", 1e3 * total_f, 1e3 * total_b);
    cJSON *split = cJSON_AddObjectToObject(root, "step_ms");
    say(t, "per step:");
    for (int k = 0; k < 5; k++) {
        say(t, " %s %.3f ms", split_names[k], 1e3 * t->run_split.v[k] / steps);
        cJSON_AddNumberToObject(split, split_names[k], 1e3 * t->run_split.v[k] / steps);
    }
    say(t, "\n");
    pc_status st = PC_OK;
    if (c->out_dir && t->rank == 0) {
        char path[4096], *text = cJSON_Print(root);
        path_in(path, sizeof path, c->out_dir, "profile.json");
        FILE *f = fopen(path, "w");
        if (!f || !text || fprintf(f, "%s\n", text) < 0 || fclose(f) != 0)
            st = pc_fail(PC_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        free(text);
    }
    cJSON_Delete(root);
    return st;
}

/* --ema: the ranks share their chunks of the average (as of the optimizer state), so
 * that every rank holds all of it. */
static pc_status share_average(trainer *t) {
    if (!t->ema_params || t->fast_acc) return PC_OK;
    return pc_reducer_allgather_chunks(t->red, t->ema_params, 1);
}

/* The test metrics on engine e (running t->m), of the averaged weights with --ema. */
static pc_status evaluate_on(trainer *t, pc_engine *e, const pc_tta *tta, pc_metrics *vm) {
    PC_TRY(share_average(t));
    swap_ema(t);
    pc_status st = pc_engine_evaluate(e, t->comm, &t->test, tta, vm, NULL, NULL);
    swap_ema(t);
    return st;
}

static pc_status evaluate(trainer *t, const pc_tta *tta, pc_metrics *vm) {
    return evaluate_on(t, t->e, tta, vm);
}

/* The ensemble of the earlier members and this run's final model on the test data,
 * with the run's test-time augmentation. */
static pc_status evaluate_ensemble(trainer *t, pc_metrics *vm) {
    const pc_train_config *c = t->cfg;
    pc_engine *e = NULL;
    if (pc_metrics_init(vm, t->m->classes) || pc_metrics_keep_scores(vm, t->test.n))
        return pc_fail(PC_ERR_NOMEM, "out of memory");
    pc_status st = pc_engine_create(t->m, t->e->workers, 1, c->shard_size, &c->exec,
                                    t->meta.mean, t->meta.std, &e);
    for (int k = 0; st == PC_OK && k < t->mx->n_earlier; k++)
        st = pc_engine_add_member(e, t->mx->earlier[k]);
    if (st == PC_OK) st = evaluate_on(t, e, &c->tta, vm);
    pc_engine_destroy(e);
    return st;
}

/* Rank 0 did something that can fail; every rank returns its outcome. */
static pc_status share_status_on(pc_comm *comm, pc_status st) {
    if (pc_comm_size(comm) == 1) return st;
    int32_t status = st;
    PC_TRY(pc_comm_bcast(comm, &status, sizeof status, 0));
    if (pc_comm_rank(comm) == 0 || status == PC_OK) return (pc_status)status;
    return pc_fail((pc_status)status, "%s", PC_SHARED_ERROR);
}

static pc_status share_status(trainer *t, pc_status st) { return share_status_on(t->comm, st); }

/* eval.json's "best": the epoch --early-stop and --keep best chose. */
static void add_best(const trainer *t, cJSON *o) {
    const pc_train_config *c = t->cfg;
    cJSON *b = cJSON_AddObjectToObject(o, "best");
    cJSON_AddStringToObject(b, "monitor", pc_monitor_name(c->monitor));
    cJSON_AddNumberToObject(b, "epoch", t->es.best_epoch);
    cJSON_AddNumberToObject(b, "value", t->es.best);
    cJSON_AddNumberToObject(b, "min_delta", c->min_delta);
    if (c->keep_best) cJSON_AddStringToObject(b, "model", "model-best.safetensors");
    if (c->early_stop > 0) cJSON_AddNumberToObject(b, "patience", c->early_stop);
    cJSON_AddBoolToObject(b, "stopped_early", t->es.stopped);
}

/* DIR/eval.json: the final metrics, as `parcnn eval --json` prints them; with --early-stop
 * or --keep best also the best epoch (the metrics stay the last epoch's model's). */
static pc_status write_eval_json(trainer *t, const pc_metrics *vm, const char *dir) {
    char path[4096], views[64];
    pc_tta_format(&t->cfg->tta, views, sizeof views);
    path_in(path, sizeof path, dir, "eval.json");
    if (!monitoring(t->cfg) || dir != t->cfg->out_dir) /* the ensemble's has no best epoch */
        return pc_metrics_write_json(vm, t->meta.class_names, views, path);
    char *text = pc_metrics_json(vm, t->meta.class_names, views);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (o) add_best(t, o);
    text = o ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!text) return pc_fail(PC_ERR_NOMEM, "out of memory");
    size_t len = strlen(text);
    text[len] = '\n'; /* cJSON's string: the terminator replaced, the length given */
    pc_status st = pc_write_file_atomic(path, text, len + 1);
    free(text);
    return st;
}

/* DIR/eval.json, DIR/samples.json (48 test images), DIR/report.svg and DIR/report.html. */
static pc_status write_report(trainer *t, const pc_metrics *vm) {
    PC_TRY(write_eval_json(t, vm, t->cfg->out_dir));
    const pc_dataset *images = t->full ? &t->test_images : &t->test;
    PC_TRY(pc_report_write_samples(t->cfg->out_dir, images, vm, t->meta.class_names, 48));
    return pc_report_write(t->cfg->out_dir);
}

/* DIR/settings.json, for the report. */
static pc_status write_settings(trainer *t) {
    pc_report_facts facts = {.model = t->m->name, .params = t->m->n_params, .ranks = t->ranks,
                             .steps_per_epoch = t->sched.steps_per_epoch,
                             .train_samples = t->train.n, .test_samples = t->test.n,
                             .classes = t->m->classes, .c = t->train.c, .h = t->train.h,
                             .w = t->train.w, .lr = t->sched.base_lr,
                             .kernels = pc_exec_kernel_name(t->e->execs[0])};
    return pc_report_write_settings(t->cfg->out_dir, t->cfg, &facts);
}

/* --tensorboard: n scalars at the current step (rank 0; a no-op elsewhere). */
static pc_status tb_log(trainer *t, const char *const *tags, const double *values, int n) {
    if (!t->tb) return PC_OK;
    float v[8];
    for (int i = 0; i < n && i < 8; i++) v[i] = (float)values[i];
    return pc_tb_scalars(t->tb, t->step, tags, v, n < 8 ? n : 8);
}

/* ------------------------------------------------------------- the loop */

/* --early-stop, --keep best: the epoch's monitored value against the best so far. The
 * metrics are the same bytes on every rank; rank 0's decision is shared all the same, as
 * ranks that disagreed would wait for each other forever. */
static pc_status monitor_epoch(trainer *t, int epoch, const pc_metrics *vm) {
    const pc_train_config *c = t->cfg;
    t->best_now = 0;
    if (!monitoring(c)) return PC_OK;
    pc_early_stop_rule rule = {c->monitor, c->min_delta, c->early_stop};
    pc_early_stop before = t->es;
    double value = c->monitor == PC_MONITOR_VAL_ACC ? pc_metrics_accuracy(vm) : pc_metrics_loss(vm);
    t->best_now = pc_early_stop_update(&t->es, &rule, epoch, value);
    if (t->ranks > 1) {
        PC_TRY(pc_comm_bcast(t->comm, &t->es, sizeof t->es, 0));
        PC_TRY(pc_comm_bcast(t->comm, &t->best_now, sizeof t->best_now, 0));
    }
    const char *name = pc_monitor_name(c->monitor);
    const char *saved = c->keep_best ? " (saved model-best.safetensors)" : "";
    if (t->best_now && before.best_epoch)
        say(t, "      %s improved from %.4f to %.4f%s\n", name, before.best, value, saved);
    else if (t->best_now)
        say(t, "      %s %.4f: the first epoch's%s\n", name, value, saved);
    else if (c->early_stop > 0)
        say(t, "      %s %.4f did not improve on %.4f (epoch %d): %d of %d epoch(s) of patience\n",
            name, value, t->es.best, t->es.best_epoch, t->es.wait, c->early_stop);
    else
        say(t, "      %s %.4f did not improve on %.4f (epoch %d)\n", name, value, t->es.best,
            t->es.best_epoch);
    if (t->es.stopped)
        say(t, "parcnn: early stop after epoch %d: no improvement of %s for %d epoch%s\n", epoch,
            name, c->early_stop, c->early_stop == 1 ? "" : "s");
    return PC_OK;
}

/* train_epochs=E: a layer's parameters train for the first ceil(E x steps per epoch)
 * steps (airbench's whitening bias: 3 epochs), then freeze: into the frozen optimizer
 * group, and out of backward, which reads the trainable bits at every step. Checked
 * before every step, so a resumed run freezes them at the step the whole run did. */
static void freeze_layers(trainer *t, int64_t steps_per_epoch) {
    if (t->pre.model && pc_transfer_step(&t->cfg->transfer, t->m, &t->tr, t->step, steps_per_epoch))
        update_roles(t);
    for (int i = 1; i < t->m->n_layers; i++) {
        pc_layer *l = &t->m->layers[i];
        if (l->train_epochs <= 0 || !l->trainable) continue;
        if (t->step < (int64_t)ceil((double)l->train_epochs * (double)steps_per_epoch)) continue;
        l->trainable = 0;
        update_roles(t);
    }
}

/* A stop requested by a signal, agreed by all ranks (they may see it at different steps):
 * the signal's number, or 0. */
static pc_status stop_signal(trainer *t, int *signal) {
    int32_t mine = t->cfg->stop_signal ? (int32_t)*t->cfg->stop_signal : 0;
    *signal = mine;
    if (t->ranks == 1 || !t->cfg->stop_signal) return PC_OK;
    int32_t *all = calloc((size_t)t->ranks, sizeof *all);
    if (!all) return pc_fail(PC_ERR_NOMEM, "out of memory");
    pc_status st = pc_comm_allgather_bytes(t->comm, &mine, sizeof mine, all);
    for (int r = 0; r < t->ranks && st == PC_OK; r++)
        if (all[r] && !*signal) *signal = all[r];
    free(all);
    return st;
}

static pc_status interrupted(const trainer *t, int signal) {
    const char *name = signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "a signal";
    if (!t->cfg->out_dir)
        return pc_fail(PC_ERR_INTERRUPTED, "interrupted by %s at step %lld (no --out: nothing "
                       "saved)", name, (long long)t->step);
    return pc_fail(PC_ERR_INTERRUPTED, "interrupted by %s at step %lld: checkpoint written to "
                   "%s/checkpoint.safetensors; to continue, run the same command with --resume",
                   name, (long long)t->step, t->cfg->out_dir);
}

/* After a step: --checkpoint-every, or a signal (then PC_ERR_INTERRUPTED, saying how to go
 * on). At an epoch's end the epoch's own checkpoint follows: nothing is written here, and a
 * signal stops the run after it (see run). */
static pc_status after_step(trainer *t, int64_t epoch_end, int *signal) {
    const pc_train_config *c = t->cfg;
    PC_TRY(stop_signal(t, signal));
    int due = c->checkpoint_every > 0 && t->step % c->checkpoint_every == 0;
    if ((*signal || due) && t->step < epoch_end) PC_TRY(save_outputs(t, NULL));
    if (!*signal || t->step == epoch_end) return PC_OK;
    return interrupted(t, *signal);
}

/* OUT/NAME: the model (the whole network with cached features), by rank 0. */
static pc_status save_model_as(trainer *t, const char *name) {
    char path[4096];
    path_in(path, sizeof path, t->cfg->out_dir, name);
    PC_TRY(t->full ? pc_transfer_head_back(t->m, t->full) : PC_OK);
    return pc_model_save(path, t->full ? t->full : t->m, &t->meta);
}

/* OUT/replica-K.safetensors for each replica (rank 0; the model ends as the last). */
static pc_status save_replicas(trainer *t) {
    for (int r = 0; r < t->cfg->replicas; r++) {
        char name[64];
        snprintf(name, sizeof name, "replica-%d.safetensors", r + 1);
        pc_fusion_load_replica(t->lsgd, t->opt_state, r);
        PC_TRY(save_model_as(t, name));
    }
    return PC_OK;
}

/* --sync fusion at the end: save each replica, evaluate each, their ensemble and their
 * weight average (recalibrated with --bn-recalibrate); the average is the run's model. */
static pc_status fuse(trainer *t, int tta, pc_metrics *vm) {
    const pc_train_config *c = t->cfg;
    PC_TRY(pc_local_sgd_gather_state(t->lsgd, t->opt_state));
    if (c->out_dir) PC_TRY(share_status(t, t->rank == 0 ? save_replicas(t) : PC_OK));
    pc_fusion_eval ev = {.test = &t->test, .train = &t->train, .tta = tta ? &c->tta : NULL,
                         .recalibrate = c->transfer.bn_recalibrate};
    PC_TRY(pc_fusion_finish(t->lsgd, &ev, t->opt_state, vm, &t->fusion));
    if (t->rank == 0 && c->log) pc_fusion_print(&t->fusion, c->log);
    if (!c->out_dir) return PC_OK;
    return share_status(t, t->rank == 0 ? save_model_as(t, "model.safetensors") : PC_OK);
}

static pc_status run(trainer *t, pc_train_result *result) {
    const pc_train_config *c = t->cfg;
    int64_t spe = t->train.n / c->batch;
    int64_t total = (int64_t)c->epochs * spe;
    int64_t stop = c->max_steps > 0 ? PC_MIN(c->max_steps, total) : total;
    pc_sched_config sched = t->sched;
    pc_metrics vm;
    if (pc_metrics_init(&vm, t->m->classes) || pc_metrics_keep_scores(&vm, t->test.n)) {
        pc_metrics_free(&vm);
        return pc_fail(PC_ERR_NOMEM, "out of memory");
    }
    say(t, "%5s %10s %9s %9s %8s %9s %7s %8s\n", "epoch", "train_loss", "train_acc", "test_loss",
           "test_acc", "lr", "seconds", "images/s");
    pc_status st = PC_OK;
    while (t->step < stop && st == PC_OK && !t->es.stopped) {
        int epoch = (int)(t->step / spe);
        int64_t epoch_end = PC_MIN((int64_t)(epoch + 1) * spe, stop);
        make_perm(t, epoch);
        double loss_sum = 0, t0 = pc_now();
        int64_t correct = 0, seen = 0, first_step = t->step;
        if (t->step > (int64_t)epoch * spe) { /* resumed in the middle of the epoch */
            loss_sum = t->epoch_loss;
            correct = t->epoch_correct;
            seen = t->epoch_seen;
        }
        int signal = 0;
        pc_traffic_begin(t->comm, &t->traffic_mark);
        while (t->step < epoch_end) {
            freeze_layers(t, spe);
            t->lr = pc_sched_lr(&sched, t->step);
            t->batch_first = (t->step % spe) * c->batch;
            if (t->class_w) t->batch_w = batch_weight(t);
            st = t->loader ? prepare_input(t, epoch_end) : PC_OK;
            if (st != PC_OK) break;
            st = train_step(t);
            t->stage_cur = 1 - t->stage_cur;
            if (st != PC_OK) break;
            if (!t->lsgd) update_running_stats(t); /* local SGD: each replica its own */
            average_update(t, t->m->buffers, t->ema_buffers, 0, t->m->n_buffers);
            double step_loss = 0;
            int64_t step_correct = 0;
            for (int s = 0; s < t->shards; s++) {
                step_loss += *rec_loss(t, s);
                step_correct += *rec_correct(t, s);
            }
            loss_sum += step_loss;
            correct += step_correct;
            seen += c->batch;
            t->step++;
            if (t->tb && c->tensorboard_every > 0 && t->step % c->tensorboard_every == 0)
                st = tb_log(t, (const char *[]){"batch/loss", "batch/accuracy", "batch/lr"},
                            (double[]){step_loss / c->batch, (double)step_correct / c->batch, t->lr}, 3);
            if (st != PC_OK) break;
            if (!isfinite(loss_sum)) {
                st = pc_fail(PC_ERR_DATA, "training diverged at step %lld (loss is not finite); "
                             "try a lower --lr", (long long)t->step);
                break;
            }
            if (c->progress && t->rank == 0)
                print_progress(t, epoch + 1, t->step - first_step, epoch_end - first_step,
                               pc_now() - t0, loss_sum, seen);
            t->epoch_loss = loss_sum;
            t->epoch_correct = correct;
            t->epoch_seen = seen;
            st = after_step(t, epoch_end, &signal);
            if (st != PC_OK) break;
        }
        if (st != PC_OK) break;
        double train_seconds = pc_now() - t0;
        pc_traffic traffic;
        st = pc_traffic_end(t->comm, &t->traffic_mark, &traffic);
        if (st != PC_OK) break;
        if (c->progress && t->rank == 0) fprintf(stderr, "\r%120s\r", "");
        if (t->fusion_part) st = pc_local_sgd_average(t->lsgd); /* the replicas go on apart */
        if (st == PC_OK) st = evaluate(t, NULL, &vm);
        if (st != PC_OK) break;
        double epoch_seconds = pc_now() - t0;
        double ips = (double)seen / train_seconds;
        const char *partial = t->step < (int64_t)(epoch + 1) * spe ? " (partial epoch)" : "";
        say(t, "%5d %10.4f %9.4f %9.4f %8.4f %9.2e %7.1f %8.0f%s\n", epoch + 1,
               loss_sum / (double)seen, (double)correct / (double)seen, pc_metrics_loss(&vm),
               pc_metrics_accuracy(&vm), t->lr, epoch_seconds, ips, partial);
        time_split ts;
        st = report_time_split(t, train_seconds, &ts);
        if (st != PC_OK) break;
        for (int k = 0; k < 5; k++) t->run_split.v[k] += ts.v[k];
        t->run_steps += t->step - first_step;
        st = monitor_epoch(t, epoch + 1, &vm);
        if (st != PC_OK) break;
        char line[896];
        snprintf(t->last_epoch, sizeof t->last_epoch,
                 "\"epoch\": %d, \"step\": %lld, \"train_loss\": %.6f, \"train_acc\": %.6f, "
                 "\"val_loss\": %.6f, \"val_acc\": %.6f, \"lr\": %.6g",
                 epoch + 1, (long long)t->step, loss_sum / (double)seen,
                 (double)correct / (double)seen, pc_metrics_loss(&vm), pc_metrics_accuracy(&vm),
                 t->lr);
        snprintf(line, sizeof line,
                 "{\"epoch\": %d, \"step\": %lld, \"train_loss\": %.6f, \"train_acc\": %.6f, "
                 "\"val_loss\": %.6f, \"val_acc\": %.6f, \"lr\": %.6g, \"epoch_seconds\": %.3f, "
                 "\"train_seconds\": %.6f, \"images_per_second\": %.1f, \"data_seconds\": %.3f, "
                 "\"compute_seconds\": %.3f, \"reduce_seconds\": %.3f, \"comm_seconds\": %.3f, "
                 "\"optimizer_seconds\": %.3f, \"comm_bytes\": %lld, \"comm_messages\": %lld}",
                 epoch + 1, (long long)t->step, loss_sum / (double)seen,
                 (double)correct / (double)seen, pc_metrics_loss(&vm), pc_metrics_accuracy(&vm),
                 t->lr, epoch_seconds, train_seconds, ips, ts.v[0], ts.v[1], ts.v[2], ts.v[3],
                 ts.v[4], (long long)traffic.bytes, (long long)traffic.messages);
        st = save_outputs(t, line);
        if (st == PC_OK)
            st = tb_log(t, (const char *[]){"epoch/train_loss", "epoch/train_accuracy", "epoch/test_loss",
                                            "epoch/test_accuracy", "epoch/lr", "epoch/images_per_second",
                                            "epoch/seconds"},
                        (double[]){loss_sum / (double)seen, (double)correct / (double)seen,
                                   pc_metrics_loss(&vm), pc_metrics_accuracy(&vm), t->lr, ips,
                                   epoch_seconds}, 7);
        if (st == PC_OK && signal) st = interrupted(t, signal); /* at the epoch's end */
        result->epochs_run++;
        result->train_seconds += train_seconds;
        result->images_seen += seen;
    }
    result->images_per_second = result->train_seconds > 0 ? result->images_seen / result->train_seconds : 0;
    /* test-time augmentation costs a forward pass per view: only for the final metrics
     * (which a resumed finished run, with no epoch line, evaluates anew) */
    int tta = pc_tta_views(&c->tta) > 1;
    if (st == PC_OK && (tta || result->epochs_run == 0) && !t->fusion_part)
        st = evaluate(t, tta ? &c->tta : NULL, &vm);
    if (st == PC_OK && t->fusion_part) st = fuse(t, tta, &vm);
    result->test_accuracy = pc_metrics_accuracy(&vm);
    result->test_loss = pc_metrics_loss(&vm);
    if (st == PC_OK)
        st = tb_log(t, (const char *[]){"final/test_accuracy", "final/test_loss", "final/macro_f1"},
                    (double[]){pc_metrics_accuracy(&vm), pc_metrics_loss(&vm), pc_metrics_macro_f1(&vm)}, 3);
    if (st == PC_OK && c->profile) st = report_profile(t);
    if (st == PC_OK) {
        char views[64] = "";
        if (tta) pc_tta_format(&c->tta, views, sizeof views);
        say(t, "final: test accuracy %.4f, test loss %.4f, macro F1 %.4f%s%s\n",
               pc_metrics_accuracy(&vm), pc_metrics_loss(&vm), pc_metrics_macro_f1(&vm),
               tta ? ", test-time augmentation " : "", views);
        if (t->full)
            say(t, "time: feature extraction %.1f s, head training %.1f s\n", t->feature_seconds,
                result->train_seconds);
        if (monitoring(c))
            say(t, "best: epoch %d, %s %.4f%s%s\n", t->es.best_epoch, pc_monitor_name(c->monitor),
                t->es.best, c->keep_best ? ", saved as model-best.safetensors" : "",
                t->es.stopped ? " (stopped early)" : "");
        if (c->out_dir) say(t, "saved: %s/model.safetensors\n", c->out_dir);
    }
    if (st == PC_OK && c->out_dir) st = share_status(t, t->rank == 0 ? write_report(t, &vm) : PC_OK);
    if (st == PC_OK && c->out_dir && t->fusion_part) /* after eval.json, which it extends */
        st = share_status(t, t->rank == 0 ? pc_fusion_write(&t->fusion, c->out_dir) : PC_OK);
    if (st == PC_OK && t->mx->n_earlier > 0) st = evaluate_ensemble(t, t->mx->ensemble);
    if (st == PC_OK && t->mx->n_earlier > 0 && t->mx->ensemble_dir) /* the ensemble's eval.json */
        st = share_status(t, t->rank == 0 ? write_eval_json(t, t->mx->ensemble, t->mx->ensemble_dir) : PC_OK);
    pc_metrics_free(&vm);
    return st;
}

/* Every rank must train the same thing: compare `mine` (settings as key=value words) of
 * all ranks; rank 0 names the first rank that differs and each setting that does. */
static pc_status check_ranks_agree(trainer *t, const char *mine, const char *what) {
    if (t->ranks == 1) return PC_OK;
    enum { LEN = 4096 };
    char *all = calloc(t->ranks + 1, LEN), *send = all + (size_t)t->ranks * LEN;
    if (!all) return pc_fail(PC_ERR_NOMEM, "out of memory");
    snprintf(send, LEN, "%s", mine);
    pc_status st = pc_comm_allgather_bytes(t->comm, send, LEN, all);
    for (int r = 1; r < t->ranks && st == PC_OK; r++) {
        if (strcmp(all, all + (size_t)r * LEN) == 0) continue;
        st = pc_fail(PC_ERR_USAGE, "%s", t->rank == 0 ? "" : PC_SHARED_ERROR);
        if (t->rank == 0) {
            char diff[LEN], other[32];
            snprintf(other, sizeof other, "rank %d", r);
            pc_settings_diff(all, "rank 0", all + (size_t)r * LEN, other, diff, sizeof diff);
            pc_fail(PC_ERR_USAGE, "rank %d was started with other %s than rank 0: %s", r, what,
                    diff);
        }
    }
    free(all);
    return st;
}

/* Rank 0's parameters, buffers, optimizer state and step go to every rank. */
static pc_status broadcast_state(trainer *t) {
    if (t->ranks == 1) return PC_OK;
    PC_TRY(pc_comm_bcast(t->comm, t->m->params, sizeof(float) * t->m->n_params, 0));
    PC_TRY(pc_comm_bcast(t->comm, t->m->buffers, sizeof(float) * t->m->n_buffers, 0));
    PC_TRY(pc_comm_bcast(t->comm, t->opt_state, sizeof(float) * t->opt_state_n, 0));
    if (t->ema_params) {
        PC_TRY(pc_comm_bcast(t->comm, t->ema_params, sizeof(float) * t->m->n_params, 0));
        PC_TRY(pc_comm_bcast(t->comm, t->ema_buffers, sizeof(float) * t->m->n_buffers, 0));
    }
    PC_TRY(pc_comm_bcast(t->comm, &t->es, sizeof t->es, 0));
    return pc_comm_bcast(t->comm, &t->step, sizeof t->step, 0);
}

/* The "step" of a metrics line, or -1. */
static int64_t line_step(const char *line) {
    cJSON *o = cJSON_Parse(line);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "step");
    int64_t step = cJSON_IsNumber(s) ? (int64_t)s->valuedouble : -1;
    cJSON_Delete(o);
    return step;
}

/* --resume: metrics.jsonl made to agree with the checkpoint: lines of later steps (written
 * before a kill undid them) dropped, and the checkpoint's last epoch added when a kill
 * between the checkpoint's rename and the metrics write lost it (its times unknown: 0, and
 * "times_lost": true). */
static pc_status restore_metrics(trainer *t) {
    char path[4096], line[4096];
    path_in(path, sizeof path, t->cfg->out_dir, "metrics.jsonl");
    FILE *f = fopen(path, "rb");
    pc_status st = PC_OK;
    int64_t last = -1;
    while (f && st == PC_OK && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        int64_t step = line_step(line);
        if (!line[0] || step > t->step) continue;
        st = add_metrics_line(t, line);
        last = PC_MAX(last, step);
    }
    if (f) fclose(f);
    if (st == PC_OK && t->last_epoch[0]) {
        snprintf(line, sizeof line, "{%s, \"epoch_seconds\": 0, \"times_lost\": true}",
                 t->last_epoch);
        if (line_step(line) > last) st = add_metrics_line(t, line);
    }
    if (st != PC_OK || !t->metrics_text) return st;
    return pc_write_file_atomic(path, t->metrics_text, strlen(t->metrics_text));
}

/* --resume with --early-stop or --keep best: the checkpoint's best epoch and patience count
 * (its fingerprint names the monitor, so a checkpoint without them is damaged). */
static pc_status restore_early_stop(trainer *t, const char *path, const char *text) {
    const pc_train_config *c = t->cfg;
    pc_early_stop_rule rule = {c->monitor, c->min_delta, c->early_stop};
    if (!monitoring(c) || pc_early_stop_parse(text, &rule, &t->es)) return PC_OK;
    return pc_fail(PC_ERR_DATA, "%s: bad or missing early_stop state '%.40s'", path, text ? text : "");
}

/* --resume, or a fresh run: rank 0 reads or prepares the output folder. */
static pc_status prepare_out_dir(trainer *t) {
    const pc_train_config *c = t->cfg;
    char path[4096];
    if (c->resume) {
        if (!c->out_dir) return pc_fail(PC_ERR_USAGE, "--resume needs --out DIR");
        path_in(path, sizeof path, c->out_dir, "checkpoint.safetensors");
        pc_checkpoint_info info = {.fingerprint = t->fingerprint, .opt_state = t->opt_state,
                                   .opt_state_n = t->opt_state_n, .ema_params = t->ema_params,
                                   .ema_buffers = t->ema_buffers};
        PC_TRY(pc_checkpoint_load(path, t->m, &info));
        t->step = info.step;
        if (info.last_epoch) snprintf(t->last_epoch, sizeof t->last_epoch, "%s", info.last_epoch);
        free(info.last_epoch);
        pc_status st = restore_early_stop(t, path, info.early_stop);
        free(info.early_stop);
        PC_TRY(st);
        t->epoch_loss = info.epoch_loss;
        t->epoch_correct = info.epoch_correct;
        t->epoch_seen = info.epoch_seen;
        say(t, "parcnn: resuming from %s at step %lld\n", path, (long long)t->step);
        pc_remove_stale_temporaries(c->out_dir, 0);
        return restore_metrics(t);
    }
    if (!c->out_dir) return PC_OK;
    PC_TRY(pc_mkdirs(c->out_dir, "--out"));
    pc_remove_stale_temporaries(c->out_dir, 0);
    path_in(path, sizeof path, c->out_dir, "checkpoint.safetensors");
    int had_run = access(path, F_OK) == 0;
    if (!c->overwrite && had_run)
        return pc_fail(PC_ERR_USAGE, "--out %s already holds a training run; use --resume to "
                       "continue it or --overwrite to start over", c->out_dir);
    /* --overwrite keeps the old metrics.jsonl (it agrees with the old checkpoint) until the
     * first epoch replaces both; a metrics.jsonl without a checkpoint is stale */
    path_in(path, sizeof path, c->out_dir, "metrics.jsonl");
    if (!had_run && unlink(path) != 0 && errno != ENOENT)
        return pc_fail(PC_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return PC_OK;
}

/* The optimizer's parameter groups, one per pc_param_role: conv and dense biases get
 * --bias-lr-mult, batch-norm shifts --norm-bias-lr-mult, each with its weight decay
 * divided by it (the same decay per step, as airbench); with --no-decay-bn-bias, biases
 * and batch-norm scales and shifts get none; frozen parameters neither move nor decay. */
static void update_roles(trainer *t) {
    pc_model_param_roles(t->m, t->param_roles);
    for (int i = 1; t->pre.model && i < t->m->n_layers; i++) {
        const pc_layer *l = &t->m->layers[i];
        if (!pc_transfer_in_backbone(&t->tr, i)) continue;
        if (l->weight_off >= 0)
            for (int64_t k = l->weight_off; k < l->weight_off + l->weight_n; k++) t->param_roles[k] += PC_PARAM_ROLES;
        if (l->bias_off >= 0)
            for (int64_t k = l->bias_off; k < l->bias_off + l->bias_n; k++) t->param_roles[k] += PC_PARAM_ROLES;
    }
}

static pc_status setup_param_groups(trainer *t) {
    const pc_train_config *c = t->cfg;
    _Static_assert(2 * PC_PARAM_ROLES <= PC_OPT_MAX_GROUPS, "a group per parameter role, twice");
    t->param_roles = malloc(t->m->n_params ? t->m->n_params : 1);
    if (!t->param_roles) return pc_fail(PC_ERR_NOMEM, "out of memory");
    update_roles(t);
    t->groups.group = t->param_roles;
    for (int k = 0; k < PC_PARAM_ROLES; k++) {
        int decayed = k == PC_PARAM_WEIGHT || (k != PC_PARAM_FROZEN && !c->no_decay_bn_bias);
        float lr_mult = k == PC_PARAM_BIAS         ? c->bias_lr_mult
                        : k == PC_PARAM_NORM_SHIFT ? c->norm_bias_lr_mult
                        : k == PC_PARAM_FROZEN     ? 0.0f
                                                   : 1.0f;
        t->groups.lr_mult[k] = lr_mult;
        t->groups.weight_decay[k] = decayed ? c->opt.weight_decay / lr_mult : 0.0f;
        /* the same roles in an unfrozen backbone, at --finetune-lr-mult (the same decay) */
        t->groups.lr_mult[PC_PARAM_ROLES + k] = lr_mult * c->transfer.finetune_lr_mult;
        t->groups.weight_decay[PC_PARAM_ROLES + k] = t->groups.weight_decay[k] / c->transfer.finetune_lr_mult;
    }
    return PC_OK;
}

/* --ema and --lookahead: the average (the slow weights) starts as the initial weights (a
 * resume loads it instead). */
static pc_status setup_ema(trainer *t) {
    const pc_model *m = t->m;
    if (t->cfg->ema <= 0 && t->cfg->lookahead <= 0) return PC_OK;
    t->ema_params = pc_alloc(sizeof(float) * (m->n_params ? m->n_params : 1));
    t->ema_buffers = pc_alloc(sizeof(float) * (m->n_buffers ? m->n_buffers : 1));
    if (!t->ema_params || !t->ema_buffers) return pc_fail(PC_ERR_NOMEM, "out of memory");
    memcpy(t->ema_params, m->params, sizeof(float) * m->n_params);
    memcpy(t->ema_buffers, m->buffers, sizeof(float) * m->n_buffers);
    return PC_OK;
}

/* init=whiten: the filters of every such layer from the first (up to) 5,000 training
 * images, as airbench. Every rank computes the same; rank 0's are broadcast anyway. */
static pc_status whiten_layers(trainer *t) {
    const pc_model *m = t->m;
    int any = 0;
    for (int i = 1; i < m->n_layers; i++) any |= m->layers[i].init == PC_INIT_WHITEN;
    if (!any || t->cfg->resume) return PC_OK;
    int64_t n = t->train.n < 5000 ? t->train.n : 5000;
    int64_t size = (int64_t)t->train.c * t->train.h * t->train.w;
    float *images = pc_alloc(sizeof(float) * n * size);
    int64_t *idx = malloc(sizeof(int64_t) * n);
    pc_status st = images && idx ? PC_OK : pc_fail(PC_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; st == PC_OK && i < n; i++) idx[i] = i;
    if (st == PC_OK)
        st = pc_dataset_gather(&t->train, idx, (int)n, t->meta.mean, t->meta.std, images, NULL);
    for (int i = 1; st == PC_OK && i < m->n_layers; i++) {
        if (m->layers[i].init != PC_INIT_WHITEN) continue;
        st = pc_model_whiten(t->m, i, images, n, 5e-4f);
        if (st == PC_OK)
            say(t, "parcnn: %s whitens patches (init from %lld training images)\n",
                m->layers[i].name, (long long)n);
    }
    pc_free(images);
    free(idx);
    return st;
}

/* --model: a zoo name or model file (initialized from the seed, whitened where asked), or a
 * trained or imported model (.safetensors, .onnx) whose weights and normalization training
 * starts from; its input and classes must be the data's. */
static pc_status create_model(trainer *t) {
    const pc_train_config *c = t->cfg;
    size_t n = strlen(c->model);
    int weights = (n > 12 && strcmp(c->model + n - 12, ".safetensors") == 0) ||
                  (n > 5 && strcmp(c->model + n - 5, ".onnx") == 0);
    if (!weights) {
        PC_TRY(pc_model_create(c->model, t->train.c, t->train.h, t->train.w, t->train.classes,
                               c->seed, &t->m));
        return whiten_layers(t);
    }
    pc_model_meta meta;
    PC_TRY(pc_model_load(c->model, &t->m, &meta));
    pc_status st = PC_OK;
    if (meta.c != t->train.c || meta.h != t->train.h || meta.w != t->train.w ||
        meta.classes != t->train.classes)
        st = pc_fail(PC_ERR_USAGE, "--model %s: takes %dx%dx%d images of %d classes, the data "
                     "has %dx%dx%d images of %d classes", c->model, meta.c, meta.h, meta.w,
                     meta.classes, t->train.c, t->train.h, t->train.w, t->train.classes);
    memcpy(t->meta.mean, meta.mean, sizeof meta.mean); /* what its weights were trained on */
    memcpy(t->meta.std, meta.std, sizeof meta.std);
    pc_model_meta_free(&meta);
    return st;
}

/* --sync local-sgd or fusion: the replicas, on the engine's workers. */
static pc_status strategy_setup(trainer *t) {
    const pc_train_config *c = t->cfg;
    if (c->sync.kind == PC_SYNC_ALLREDUCE) return PC_OK;
    if (c->sync.kind == PC_SYNC_FUSION) {
        if (!(t->fusion_part = malloc(sizeof(int64_t) * (2 * t->train.n + 1))))
            return pc_fail(PC_ERR_NOMEM, "out of memory");
        pc_fusion_partition(c->seed, t->train.n, t->fusion_part);
    }
    int64_t spe = t->train.n / c->batch, total = (int64_t)c->epochs * spe;
    pc_local_sgd_config lc = {
        .model = t->m, .engine = t->e, .comm = t->comm,
        .replicas = replica_count(t), .sync_every = c->sync.every, .shards = t->shards,
        .average_opt_state = c->average_opt_state,
        .opt_state_n = (int64_t)pc_opt_state_per_param(&c->opt) * t->m->n_params,
        .steps_per_epoch = spe, .stop = c->max_steps > 0 ? PC_MIN(c->max_steps, total) : total};
    t->loss_rec = pc_alloc(32 * (size_t)t->shards);
    if (!t->loss_rec) return pc_fail(PC_ERR_NOMEM, "out of memory");
    return pc_local_sgd_create(&lc, &t->lsgd);
}

/* --init: recalibrate the batch norms (a fresh run), then freeze the prefix asked for. */
static pc_status transfer_setup(trainer *t) {
    const pc_transfer_config *x = &t->cfg->transfer;
    say(t, "parcnn: init from %s: new head for %d classes after %s\n", x->init, t->m->classes,
        x->cut ? x->cut : "the network's last hidden layer");
    if (x->bn_recalibrate > 0) { /* on resume too: cached features need it */
        int64_t used = 0;
        double t0 = pc_now();
        PC_TRY(pc_transfer_recalibrate(t->m, t->e, &t->train, x->bn_recalibrate, &used));
        say(t, "parcnn: batch-norm statistics recalibrated from %lld training images in %.1f s\n",
            (long long)used, pc_now() - t0);
    }
    PC_TRY(pc_transfer_freeze(x, t->m, &t->tr));
    if (t->tr.frozen > 0)
        say(t, "parcnn: layers 1 to %d frozen (up to %s; their batch norms in inference mode)\n",
            t->tr.frozen, t->m->layers[t->tr.frozen].name);
    if (t->tr.frozen > 0 && x->unfreeze_at > 0)
        say(t, "parcnn: they train from epoch %g on, at %g x the learning rate\n", x->unfreeze_at,
            x->finetune_lr_mult);
    return PC_OK;
}

/* Only the head trains: extract the backbone's features once, then train the head alone
 * on them (t->full keeps the whole network, saved with the trained head). */
static pc_status use_features(trainer *t) {
    const pc_train_config *c = t->cfg;
    if (pc_tta_views(&c->tta) > 1)
        return pc_fail(PC_ERR_USAGE, "--tta needs the images: not with cached features (the "
                       "frozen backbone); give --no-feature-cache");
    const char *cache = c->folder.cache;
    const pc_exec_options *x = &c->exec; /* the features' rounding depends on all three */
    pc_feature_options o = {.augment = &c->augment, .seed = c->seed,
                            .kernels = ((int)x->kernels * 4 + (int)x->precision) * 4 + (int)x->conv_algo,
                            .write = t->rank == 0, .log = t->rank == 0 ? c->log : NULL,
                            .cache_dir = cache && strcmp(cache, "memory") && strcmp(cache, "none")
                                         ? cache : NULL};
    PC_TRY(pc_transfer_features(&c->transfer, &t->tr, t->m, t->e, &o, &t->train, &t->test,
                                &t->test_images));
    t->feature_seconds = o.seconds;
    t->meta.class_names = t->train.class_names; /* the image dataset's copy is gone */
    pc_model *head;
    PC_TRY(pc_transfer_head_model(t->m, &t->tr, c->seed, &head));
    t->full = t->m;
    t->m = head;
    pc_engine_destroy(t->e);
    t->e = NULL;
    return pc_engine_create(t->m, c->workers, c->threads, c->shard_size, &c->exec, NULL, NULL,
                            &t->e);
}

static pc_status setup(trainer *t) {
    const pc_train_config *c = t->cfg;
    t->comm = pc_comm_world();
    t->rank = pc_comm_rank(t->comm);
    t->ranks = pc_comm_size(t->comm);
    pc_comm_set_timeout(t->comm, c->timeout);
    char settings[4096];
    pc_train_settings_format(c, settings, sizeof settings);
    PC_TRY(check_ranks_agree(t, settings, "settings")); /* the first collective */
    pc_status st = check_config(c);
    if (st != PC_OK) /* every rank sees the same flags */
        return t->rank == 0 ? st : pc_fail(st, "%s", PC_SHARED_ERROR);
    if (c->transfer.init) PC_TRY(pc_pretrained_load(c->transfer.init, &t->pre));
    PC_TRY(load_data(t));
    PC_TRY(pc_class_weights(c->class_weights, &t->train, &t->class_w));
    PC_TRY(pc_sampler_init(&t->sampler, (pc_sampler_kind)c->sampler, t->train.labels, t->train.n,
                           t->train.classes));
    PC_TRY(pc_tta_check(&c->tta, t->train.h, t->train.w));
    if (t->pre.model)
        PC_TRY(pc_transfer_build(&c->transfer, &t->pre, t->train.c, t->train.h, t->train.w,
                                 t->train.classes, c->seed, &t->m, &t->tr));
    else
        PC_TRY(create_model(t));
    PC_TRY(pc_engine_create(t->m, c->workers, c->threads, c->shard_size, &c->exec,
                            t->meta.mean, t->meta.std, &t->e));
    if (t->pre.model) PC_TRY(transfer_setup(t));
    if (t->pre.model && pc_transfer_uses_features(&c->transfer, &t->tr)) PC_TRY(use_features(t));
    t->shards = c->batch / c->shard_size;
    PC_TRY(pc_reducer_create(t->shards, t->e->workers, t->m->n_params, t->comm, &t->red));
    if (c->reduce_fast && t->ranks > 1) PC_TRY(fast_setup(t));
    PC_TRY(strategy_setup(t));
    t->sched = c->sched;
    t->sched.base_lr *= pc_lr_scale_factor(c->lr_scale, c->batch, c->lr_ref_batch);
    t->sched.steps_per_epoch = t->train.n / c->batch;
    t->sched.total_steps = (int64_t)c->epochs * t->sched.steps_per_epoch;
    PC_TRY(loader_setup(t));
    for (int w = 0; c->profile && w < t->e->workers; w++) pc_exec_enable_profile(t->e->execs[w]);
    PC_TRY(setup_param_groups(t));
    PC_TRY(setup_ema(t));
    /* local SGD: the checkpoint's optimizer state is every replica's whole state */
    t->opt_state_n = t->lsgd ? pc_local_sgd_state_size(t->lsgd)
                             : (int64_t)pc_opt_state_per_param(&c->opt) * t->m->n_params;
    t->opt_state = pc_alloc(sizeof(float) * (t->opt_state_n ? t->opt_state_n : 1));
    t->perm = malloc(sizeof(int64_t) * t->train.n);
    t->bn_size = pc_exec_bn_stats_size(t->m);
    t->rec_size = 16 + sizeof(float) * ((t->bn_size + 1) & ~(int64_t)1);
    t->shard_rec = pc_alloc(t->rec_size * t->shards);
    t->rec_send = pc_alloc(t->rec_size * t->shards);
    t->worker_data = calloc(t->e->workers, sizeof(double));
    if (!t->opt_state || !t->perm || !t->shard_rec || !t->rec_send || !t->worker_data)
        return pc_fail(PC_ERR_NOMEM, "out of memory");
    make_fingerprint(t);
    PC_TRY(check_ranks_agree(t, t->fingerprint, "data or model files"));
    PC_TRY(share_status(t, t->rank == 0 ? prepare_out_dir(t) : PC_OK));
    PC_TRY(share_status(t, t->rank == 0 && c->out_dir ? write_settings(t) : PC_OK));
    PC_TRY(share_status(t, t->rank == 0 && c->tensorboard ? pc_tb_open(c->tensorboard, &t->tb) : PC_OK));
    PC_TRY(broadcast_state(t));
    if (t->lsgd) pc_local_sgd_start(t->lsgd, c->resume ? t->opt_state : NULL);
    return PC_OK;
}

static pc_status train_member(const pc_train_config *c, const member_ctx *mx,
                              pc_train_result *result) {
    trainer t;
    memset(&t, 0, sizeof t);
    t.cfg = c;
    t.mx = mx;
    pc_error_slot_init(&t.data_error);
    memset(result, 0, sizeof *result);
    pc_status st = setup(&t);
    if (st == PC_OK) {
        print_startup(&t);
        st = run(&t, result);
    }
    if (st == PC_OK && mx->keep) { /* the averaged weights, complete on every rank */
        st = share_average(&t);
        if (st == PC_OK) {
            swap_ema(&t);
            *mx->keep = t.m;
            t.m = NULL;
        }
    }
    loader_free(&t);
    pc_tb_close(t.tb);
    pc_sampler_free(&t.sampler);
    free(t.class_w);
    pc_reducer_destroy(t.red);
    fast_free(&t);
    pc_engine_destroy(t.e);
    pc_local_sgd_destroy(t.lsgd); /* after the engine: its replicas read the views */
    free(t.fusion_part);
    pc_fusion_result_free(&t.fusion);
    pc_free(t.loss_rec);
    pc_model_free(t.m);
    pc_model_free(t.full);
    pc_free(t.opt_state);
    free(t.param_roles);
    pc_free(t.ema_params);
    pc_free(t.ema_buffers);
    pc_free(t.shard_rec);
    pc_free(t.rec_send);
    free(t.worker_data);
    free(t.metrics_text);
    free(t.perm);
    pc_dataset_free(&t.train);
    pc_dataset_free(&t.test);
    pc_pretrained_free(&t.pre);
    pc_dataset_free(&t.test_images);
    pc_transfer_free(&t.tr);
    pc_error_slot_destroy(&t.data_error);
    return st;
}

/* Member k's folder, OUT/member-k (1-based). */
static void member_dir(const pc_train_config *c, int k, char *buf, size_t n) {
    snprintf(buf, n, "%s/member-%d", c->out_dir, k + 1);
}

/* Rank 0 checks a file; every rank learns the answer. */
static pc_status shared_exists(const char *path, int *exists) {
    pc_comm *comm = pc_comm_world();
    int32_t yes = pc_comm_rank(comm) == 0 && access(path, F_OK) == 0;
    if (pc_comm_size(comm) > 1) PC_TRY(pc_comm_bcast(comm, &yes, sizeof yes, 0));
    *exists = yes;
    return PC_OK;
}

/* Before the first member trains: a fresh ensemble must not find an earlier run in any
 * member's folder (rather than fail after hours of training). */
static pc_status check_member_dirs(const pc_train_config *c) {
    if (!c->out_dir || c->resume || c->overwrite) return PC_OK;
    for (int k = 0; k < c->ensemble; k++) {
        char dir[4096], path[4200];
        int exists;
        member_dir(c, k, dir, sizeof dir);
        snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
        PC_TRY(shared_exists(path, &exists));
        if (exists)
            return pc_fail(PC_ERR_USAGE, "--out %s already holds a training run; use --resume to "
                           "continue it or --overwrite to start over", dir);
    }
    return PC_OK;
}

/* OUT/ensemble.json: the members' and the ensemble's results (rank 0 writes, the others
 * return PC_OK). */
static pc_status write_ensemble_json(const pc_train_config *c, const pc_metrics *vm,
                                     const pc_train_result *members, double seconds) {
    if (!c->out_dir || pc_comm_rank(pc_comm_world()) != 0) return PC_OK;
    char path[4096], views[64];
    pc_tta_format(&c->tta, views, sizeof views);
    snprintf(path, sizeof path, "%s/ensemble.json", c->out_dir);
    cJSON *root = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(root, "members");
    for (int k = 0; k < c->ensemble; k++) {
        char dir[32];
        snprintf(dir, sizeof dir, "member-%d", k + 1);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dir", dir); /* in out_dir */
        cJSON_AddNumberToObject(o, "seed", (double)(c->seed + (uint64_t)k));
        cJSON_AddNumberToObject(o, "test_accuracy", members[k].test_accuracy);
        cJSON_AddNumberToObject(o, "train_seconds", members[k].train_seconds);
        cJSON_AddItemToArray(list, o);
    }
    cJSON_AddStringToObject(root, "tta", views);
    cJSON_AddNumberToObject(root, "test_accuracy", pc_metrics_accuracy(vm));
    cJSON_AddNumberToObject(root, "test_loss", pc_metrics_loss(vm));
    cJSON_AddNumberToObject(root, "macro_f1", pc_metrics_macro_f1(vm));
    cJSON_AddNumberToObject(root, "train_seconds", seconds);
    char *text = cJSON_Print(root);
    FILE *f = fopen(path, "w");
    pc_status st = PC_OK;
    if (!f || !text || fprintf(f, "%s\n", text) < 0 || fclose(f) != 0)
        st = pc_fail(PC_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    free(text);
    cJSON_Delete(root);
    return st;
}

/* The summed times and counts of the members, and the ensemble's metrics. */
static void ensemble_result(const pc_train_result *runs, int K, const pc_metrics *vm,
                            pc_train_result *r) {
    memset(r, 0, sizeof *r);
    for (int k = 0; k < K; k++) {
        r->epochs_run += runs[k].epochs_run;
        r->train_seconds += runs[k].train_seconds;
        r->images_seen += runs[k].images_seen;
    }
    r->images_per_second = r->train_seconds > 0 ? r->images_seen / r->train_seconds : 0;
    r->test_accuracy = pc_metrics_accuracy(vm);
    r->test_loss = pc_metrics_loss(vm);
}

static pc_status train_ensemble(const pc_train_config *c, pc_train_result *result) {
    const int K = c->ensemble;
    pc_model **models = calloc(K, sizeof *models);
    pc_train_result *runs = calloc(K, sizeof *runs);
    pc_metrics vm = {0};
    pc_status st = models && runs ? check_member_dirs(c) : pc_fail(PC_ERR_NOMEM, "out of memory");
    FILE *log = pc_comm_rank(pc_comm_world()) == 0 ? c->log : NULL;
    for (int k = 0; st == PC_OK && k < K; k++) {
        char dir[4096] = "", path[4200];
        pc_train_config mc = *c;
        mc.seed = c->seed + (uint64_t)k;
        char tb[4096];
        if (c->tensorboard) { /* a run per member, as TensorBoard shows sub-folders */
            snprintf(tb, sizeof tb, "%s/member-%d", c->tensorboard, k + 1);
            mc.tensorboard = tb;
        }
        if (c->out_dir) {
            member_dir(c, k, dir, sizeof dir);
            mc.out_dir = dir;
            snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
            int exists = 0;
            if (c->resume && (st = shared_exists(path, &exists)) != PC_OK) break;
            mc.resume = c->resume && exists; /* members not started yet start now */
        }
        if (log)
            fprintf(log, "parcnn: ensemble member %d of %d, seed %llu%s%s\n", k + 1, K,
                    (unsigned long long)mc.seed, c->out_dir ? ", into " : "", dir);
        member_ctx mx = {.split_seed = c->seed, .earlier = models, .n_earlier = k == K - 1 ? k : 0,
                         .keep = k < K - 1 ? &models[k] : NULL, .ensemble = &vm,
                         .ensemble_dir = c->out_dir};
        st = train_member(&mc, &mx, &runs[k]);
    }
    if (st == PC_OK) {
        ensemble_result(runs, K, &vm, result);
        char views[64] = "";
        int tta = pc_tta_views(&c->tta) > 1;
        if (tta) pc_tta_format(&c->tta, views, sizeof views);
        if (log)
            fprintf(log, "final: ensemble of %d models: test accuracy %.4f, test loss %.4f, macro "
                    "F1 %.4f%s%s; %.1f s of training in all\n", K, pc_metrics_accuracy(&vm),
                    pc_metrics_loss(&vm), pc_metrics_macro_f1(&vm),
                    tta ? ", test-time augmentation " : "", views, result->train_seconds);
        st = share_status_on(pc_comm_world(), write_ensemble_json(c, &vm, runs, result->train_seconds));
    }
    for (int k = 0; models && k < K; k++) pc_model_free(models[k]);
    free(models);
    free(runs);
    pc_metrics_free(&vm);
    return st;
}

pc_status pc_train(const pc_train_config *config, pc_train_result *result) {
    pc_train_config resolved = *config;
    PC_TRY(pc_train_config_resolve(&resolved));
    const pc_train_config *c = &resolved;
    pc_train_result local;
    if (!result) result = &local;
    /* the workers' floating-point mode on this thread too (it initializes, whitens and
     * folds the batch-norm statistics), and on the threads it starts */
    pc_fp_mode caller = pc_fp_flush_denormals();
    member_ctx mx = {.split_seed = c->seed};
    pc_status st = c->ensemble > 1 ? train_ensemble(c, result) : train_member(c, &mx, result);
    pc_fp_restore(caller);
    return st;
}

static const char *const lr_scale_names[] = {"none", "linear", "sqrt"};
const char *pc_lr_scale_name(pc_lr_scale s) { return lr_scale_names[s]; }

pc_status pc_lr_scale_parse(const char *name, pc_lr_scale *out) {
    int k;
    PC_TRY(pc_parse_choice("--lr-scale", name, lr_scale_names, 3, &k));
    *out = (pc_lr_scale)k;
    return PC_OK;
}

float pc_lr_scale_factor(pc_lr_scale s, int batch, int ref_batch) {
    double r = (double)batch / (double)ref_batch;
    return (float)(s == PC_LR_SCALE_LINEAR ? r : s == PC_LR_SCALE_SQRT ? sqrt(r) : 1.0);
}
