/* --reduce fast under MPI (not reproducible across rank counts): each rank sums its
 * workers' gradients, and one allreduce per bucket of layers starts while backward
 * is still computing the earlier layers. */
#include "train/trainer.h"

#include <stdlib.h>
#include <string.h>

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
        trainer_compute_shard(t, w, k, k == a ? t->fast_acc[w] : t->fast_tmp[w]);
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

pc_status trainer_fast_setup(trainer *t) {
    int W = t->e->workers;
    t->fast_acc = calloc(W, sizeof(float *));
    t->fast_tmp = calloc(W, sizeof(float *));
    if (!t->fast_acc || !t->fast_tmp) return pc_fail_nomem();
    for (int w = 0; w < W; w++) {
        t->fast_acc[w] = pc_alloc(sizeof(float) * t->m->n_params);
        t->fast_tmp[w] = pc_alloc(sizeof(float) * t->m->n_params);
        if (!t->fast_acc[w] || !t->fast_tmp[w]) return PC_ERR_NOMEM;
    }
    return PC_OK;
}

void trainer_fast_free(trainer *t) {
    for (int w = 0; t->fast_acc && w < t->e->workers; w++) {
        pc_free(t->fast_acc[w]);
        pc_free(t->fast_tmp[w]);
    }
    free(t->fast_acc);
    free(t->fast_tmp);
}

pc_status trainer_fast_step(trainer *t) {
    pc_pool *pool = t->e->pool;
    double t0 = pc_now();
    t->fast_posted = t->m->n_params;
    PC_TRY(trainer_compute_shards(t, fast_compute_job));
    double t1 = pc_now();
    if (t->e->workers > 1) pc_pool_run(pool, fast_sum_workers_job, t);
    fast_post(t, 0, 1);
    double t2 = pc_now();
    PC_TRY(pc_comm_wait_all(t->comm));
    PC_TRY(trainer_share_shard_records(t));
    double t3 = pc_now();
    pc_pool_run(pool, trainer_optimizer_job, t);
    t->time_compute += t1 - t0;
    t->time_reduce += t2 - t1;
    t->time_comm += t3 - t2;
    t->time_optimizer += pc_now() - t3;
    return PC_OK;
}
