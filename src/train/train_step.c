/* One optimizer step on the global batch: every worker computes its shards, the gradients
 * are summed along the fixed shard tree (train/reduce.h), the optimizer updates the
 * parameters chunk by chunk, then the weight averages (--ema, --lookahead). */
#include "train/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The reducer's leaf: one shard's forward and backward into grads. */
void trainer_compute_shard(void *ctx, int w, int shard, float *grads) {
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
    pc_error_slot_set(&t->data_error, pc_exec_status(ex));
}

static void compute_job(int w, void *arg) {
    trainer *t = arg;
    pc_reducer_compute(t->red, w, trainer_compute_shard, t);
}

/* The exchange by messages overlaps backward: each worker's backward hook tells the
 * reducer after each layer which gradients are final. Parameters are laid out in layer
 * order, so after layer i's backward they are final from the first parameter of layer i
 * or any later one. */
pc_status trainer_overlap_setup(trainer *t) {
    const pc_model *m = t->m;
    int64_t *from = malloc(sizeof(int64_t) * (m->n_layers ? m->n_layers : 1));
    if (!from) return pc_fail_nomem();
    int64_t next = m->n_params;
    for (int i = m->n_layers - 1; i >= 0; i--) {
        const pc_layer *l = &m->layers[i];
        if (l->bias_off >= 0) next = l->bias_off;
        if (l->weight_off >= 0) next = l->weight_off;
        from[i] = next;
    }
    pc_status st = pc_reducer_set_layers(t->red, m->n_layers, from);
    free(from);
    PC_TRY(st);
    return pc_comm_reserve(t->comm, 2 * (t->ranks - 1)); /* the per-shard table's transfers */
}

static void set_backward_hooks(trainer *t, int on) {
    for (int w = 0; w < t->e->workers; w++)
        pc_exec_set_backward_hook(t->e->execs[w], on ? pc_reducer_backward_hook : NULL,
                                  on ? pc_reducer_hook_ctx(t->red, w) : NULL);
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
void trainer_average_update(const trainer *t, float *x, float *avg, int64_t begin, int64_t end) {
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
void trainer_swap_ema(trainer *t) {
    if (!t->ema_params || t->cfg->lookahead) return;
    float *p = t->m->params, *b = t->m->buffers;
    t->m->params = t->ema_params;
    t->m->buffers = t->ema_buffers;
    t->ema_params = p;
    t->ema_buffers = b;
}

pc_status trainer_share_params(trainer *t) {
    float *shared;
    PC_TRY(pc_reducer_share_params(t->red, t->m->params, &shared));
    if (shared) {
        t->own_params = t->m->params;
        t->m->params = shared;
    }
    return PC_OK;
}

void trainer_unshare_params(trainer *t) {
    if (!t->own_params) return;
    memcpy(t->own_params, t->m->params, sizeof(float) * t->m->n_params);
    t->m->params = t->own_params;
    t->own_params = NULL;
}

void trainer_optimizer_job(int w, void *arg) {
    trainer *t = arg;
    int64_t begin, end, n = t->m->n_params;
    pc_split_range(n, t->e->workers, w, 16, &begin, &end);
    pc_opt_step(&t->cfg->opt, &t->groups, t->lr, t->step + 1, t->m->params, step_gradient(t),
                t->opt_state, n, begin, end);
    trainer_average_update(t, t->m->params, t->ema_params, begin, end);
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
    trainer_average_update(t, t->m->params, t->ema_params, first + begin, first + end);
}

/* Exchange the per-shard table: each rank filled its own shards. */
pc_status trainer_share_shard_records(trainer *t) {
    int first, last;
    pc_reducer_rank_shards(t->red, &first, &last);
    size_t bytes = (size_t)(last - first) * t->rec_size;
    memcpy(t->rec_send, t->shard_rec + first * t->rec_size, bytes);
    return pc_comm_allgather_bytes(t->comm, t->rec_send, (int)bytes, t->shard_rec);
}

/* The overlapped exchange: each rank's part of the per-shard table goes to every other
 * rank along with the gradients, waited for by pc_reducer_exchange, instead of in a
 * collective of its own (one meeting point of the ranks per step fewer). */
static pc_status post_shard_records(trainer *t) {
    int me = pc_comm_rank(t->comm), per = t->shards / t->ranks, bytes = per * (int)t->rec_size;
    for (int d = 0; d < t->ranks; d++) {
        char *part = t->shard_rec + (int64_t)d * per * t->rec_size;
        for (int e = 0; d == me && e < t->ranks; e++)
            if (e != me) PC_TRY(pc_comm_isend(t->comm, part, bytes, e));
        if (d != me) PC_TRY(pc_comm_irecv(t->comm, part, bytes, d));
    }
    return PC_OK;
}

/* Every worker computes its shards with `job`. The weights do not change during it, so
 * the kernels may convert them once (weights version step + 1) instead of per shard. */
pc_status trainer_compute_shards(trainer *t, pc_job_fn job) {
    for (int w = 0; w < t->e->workers; w++) pc_exec_weights_version(t->e->execs[w], (uint64_t)t->step + 1);
    pc_pool_run(t->e->pool, job, t);
    for (int w = 0; w < t->e->workers; w++) pc_exec_weights_version(t->e->execs[w], 0);
    return pc_error_slot_take(&t->data_error);
}

/* One process: combine the tree and update each chunk in one pass (the split of
 * combine_local and optimizer_job is the same, so no barrier is needed between). */
static void combine_update_job(int w, void *arg) {
    trainer *t = arg;
    double t0 = pc_now();
    pc_reducer_combine_local(t->red, w);
    if (w == 0) t->time_combine0 += pc_now() - t0; /* the workers run alike: worker 0 stands for them */
    trainer_optimizer_job(w, arg);
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
    pc_local_step step = {.leaf = trainer_compute_shard, .ctx = t, .shard_bn = shard_bn_stats,
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

/* --sync ps: a worker rank pulls, computes its shards, pushes their sums and shares their
 * records; a server takes the records and queues the update (trainer_ps_serve). */
static pc_status ps_step(trainer *t) {
    double t0 = pc_now();
    if (pc_ps_is_server(t->ps)) { /* the update comes at the next step's start */
        pc_ps_update u = {.opt = &t->cfg->opt, .groups = &t->groups, .lr = t->lr,
                          .step = t->step, .opt_state = t->opt_state};
        PC_TRY(pc_ps_share_records(t->ps, t->shard_rec));
        pc_ps_queue(t->ps, &u);
        t->time_comm += pc_now() - t0;
        return PC_OK;
    }
    PC_TRY(pc_ps_pull(t->ps, t->step));
    double t1 = pc_now();
    PC_TRY(trainer_compute_shards(t, compute_job));
    double t2 = pc_now();
    pc_pool_run(t->e->pool, combine_local_job, t);
    double t3 = pc_now();
    PC_TRY(pc_ps_push(t->ps, t->step));
    PC_TRY(pc_ps_share_records(t->ps, t->shard_rec));
    t->time_compute += t2 - t1;
    t->time_reduce += t3 - t2;
    t->time_comm += (t1 - t0) + (pc_now() - t3);
    return PC_OK;
}

pc_status trainer_ps_serve(trainer *t) {
    double t0 = pc_now();
    pc_status st = pc_ps_flush(t->ps);
    t->time_optimizer += pc_now() - t0;
    return st;
}

/* One optimizer step on the global batch at t->batch_first. */
pc_status trainer_step(trainer *t) {
    pc_pool *pool = t->e->pool;
    pc_comm_set_step(t->comm, t->step);
    if (t->lsgd) return local_sgd_step(t);
    if (t->ps) return ps_step(t);
    if (t->fast_acc) return trainer_fast_step(t);
    double t0 = pc_now();
    int overlap = pc_reducer_overlaps(t->red);
    if (overlap) set_backward_hooks(t, 1);
    pc_status st = trainer_compute_shards(t, compute_job);
    if (overlap) set_backward_hooks(t, 0);
    PC_TRY(st);
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
    if (overlap) { /* the table after the last gradients: receivers post them in this order */
        pc_reducer_send_rest(t->red);
        PC_TRY(post_shard_records(t));
    }
    PC_TRY(pc_reducer_exchange(t->red));
    double t3 = pc_now();
    pc_pool_run(pool, combine_global_job, t);
    double t4 = pc_now();
    pc_pool_run(pool, optimizer_chunk_job, t);
    double t5 = pc_now();
    PC_TRY(pc_reducer_allgather_chunks(t->red, t->m->params, 1));
    if (!overlap) PC_TRY(trainer_share_shard_records(t));
    t->time_reduce += (t2 - t1) + (t4 - t3);
    t->time_comm += (t3 - t2) + (pc_now() - t5);
    t->time_optimizer += t5 - t4;
    return PC_OK;
}

/* Running statistics, folded in shard order: new = (1-m) old + m batch, with the
 * unbiased batch variance as in PyTorch. */
void trainer_update_running_stats(trainer *t) {
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
