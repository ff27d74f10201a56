/* The background loader: while step k computes, --loader-threads threads assemble the
 * input of step k+1 (this rank's shards) into the other of two staging buffers. */
#include "train/trainer.h"

#include <string.h>

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
pc_status trainer_prepare_input(trainer *t, int64_t epoch_end) {
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

pc_status trainer_loader_setup(trainer *t) {
    const pc_train_config *c = t->cfg;
    if (c->loader_threads <= 0 || (t->ps && pc_ps_is_server(t->ps))) return PC_OK;
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

void trainer_loader_free(trainer *t) {
    pc_pool_destroy(t->loader);
    for (int b = 0; b < 2; b++) {
        pc_free(t->stage[b]);
        pc_free(t->stage_labels[b]);
    }
}
