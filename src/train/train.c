/* pc_train: the epoch loop of one run (or of each member of an ensemble), its evaluation,
 * and the entry point. The state and the other parts of a run: train/trainer.h. */
#include "train/train.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fpenv.h"
#include "train/trainer.h"

/* The summed class weights of the step's global batch, in batch order (the same on every
 * worker and rank). */
static double batch_weight(const trainer *t) {
    double sum = 0;
    for (int i = 0; i < t->cfg->batch; i++) sum += t->class_w[t->train.labels[t->perm[t->batch_first + i]]];
    return sum;
}

/* The epoch's sample order (train/sampler.h; each replica's own part with --sync fusion),
 * keyed by (seed, epoch). */
static void make_perm(trainer *t, int epoch) {
    if (t->fusion_part) /* each replica its own part */
        pc_fusion_epoch(t->cfg->seed, epoch, t->fusion_part, t->train.n, t->cfg->replicas,
                        t->cfg->batch, t->train.n / t->cfg->batch, t->perm, t->fusion_part + t->train.n);
    else
        pc_sampler_epoch(&t->sampler, t->cfg->seed, epoch, t->train.n, t->perm);
}

/* --ema: the ranks share their chunks of the average (as of the optimizer state), so
 * that every rank holds all of it. */
static pc_status share_average(trainer *t) {
    if (!t->ema_params || t->fast_acc) return PC_OK;
    return pc_reducer_allgather_chunks(t->red, t->ema_params, 1);
}

/* The metrics of d on engine e (running t->m), of the averaged weights with --ema. */
pc_status trainer_evaluate_on(trainer *t, pc_engine *e, const pc_dataset *d, const pc_tta *tta,
                              pc_metrics *vm) {
    PC_TRY(share_average(t));
    trainer_swap_ema(t);
    pc_status st = pc_engine_evaluate(e, t->comm, d, tta, vm, NULL, NULL);
    trainer_swap_ema(t);
    return st;
}

/* The test metrics. */
static pc_status evaluate(trainer *t, const pc_tta *tta, pc_metrics *vm) {
    return trainer_evaluate_on(t, t->e, &t->test, tta, vm);
}

/* With cached features, test-time augmentation needs the images: the whole network, the
 * trained head (its --ema average) copied back into it, evaluates them. */
static pc_status evaluate_full_network(trainer *t, const pc_tta *tta, pc_metrics *vm) {
    const pc_train_config *c = t->cfg;
    PC_TRY(share_average(t));
    trainer_swap_ema(t);
    pc_status st = pc_transfer_head_back(t->m, t->full);
    trainer_swap_ema(t);
    pc_engine *e = NULL;
    if (st == PC_OK)
        st = pc_engine_create(t->full, t->e->workers, c->threads, c->shard_size, &c->exec,
                              t->meta.mean, t->meta.std, &e);
    if (st == PC_OK) st = pc_engine_evaluate(e, t->comm, &t->test_images, tta, vm, NULL, NULL);
    pc_engine_destroy(e);
    return st;
}

/* An epoch's val_loss and val_acc: on the validation set when one is held out, else on
 * the evaluation part of the data (the test set, or a folder's --val-split part). */
static pc_status evaluate_epoch(trainer *t, pc_metrics *vm) {
    return trainer_evaluate_on(t, t->e, t->val.n ? &t->val : &t->test, NULL, vm);
}

/* Rank 0 did something that can fail; every rank returns its outcome. */
pc_status trainer_share_status_on(pc_comm *comm, pc_status st) {
    if (pc_comm_size(comm) == 1) return st;
    int32_t status = st;
    PC_TRY(pc_comm_bcast(comm, &status, sizeof status, 0));
    if (pc_comm_rank(comm) == 0 || status == PC_OK) return (pc_status)status;
    return pc_fail((pc_status)status, "%s", PC_SHARED_ERROR);
}

pc_status trainer_share_status(trainer *t, pc_status st) { return trainer_share_status_on(t->comm, st); }

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
        trainer_say(t, "      %s improved from %.4f to %.4f%s\n", name, before.best, value, saved);
    else if (t->best_now)
        trainer_say(t, "      %s %.4f: the first epoch's%s\n", name, value, saved);
    else if (c->early_stop > 0)
        trainer_say(t, "      %s %.4f did not improve on %.4f (epoch %d): %d of %d epoch(s) of patience\n",
            name, value, t->es.best, t->es.best_epoch, t->es.wait, c->early_stop);
    else
        trainer_say(t, "      %s %.4f did not improve on %.4f (epoch %d)\n", name, value, t->es.best,
            t->es.best_epoch);
    if (t->es.stopped)
        trainer_say(t, "parcnn: early stop after epoch %d: no improvement of %s for %d epoch%s\n", epoch,
            name, c->early_stop, c->early_stop == 1 ? "" : "s");
    return PC_OK;
}

/* train_epochs=E: a layer's parameters train for the first ceil(E x steps per epoch)
 * steps (airbench's whitening bias: 3 epochs), then freeze: into the frozen optimizer
 * group, and out of backward, which reads the trainable bits at every step. Checked
 * before every step, so a resumed run freezes them at the step the whole run did. */
static void freeze_layers(trainer *t, int64_t steps_per_epoch) {
    if (t->pre.model && pc_transfer_step(&t->cfg->transfer, t->m, &t->tr, t->step, steps_per_epoch))
        trainer_update_roles(t);
    for (int i = 1; i < t->m->n_layers; i++) {
        pc_layer *l = &t->m->layers[i];
        if (l->train_epochs <= 0 || !l->trainable) continue;
        if (t->step < (int64_t)ceil((double)l->train_epochs * (double)steps_per_epoch)) continue;
        l->trainable = 0;
        trainer_update_roles(t);
    }
}

/* A stop requested by a signal, agreed by all ranks (they may see it at different steps):
 * the signal's number, or 0; and whether --checkpoint-minutes has passed by rank 0's clock
 * (each rank's clock would give each its own step). */
static pc_status stop_signal(trainer *t, int *signal, int *timed) {
    const double minutes = t->cfg->checkpoint_minutes;
    *timed = minutes > 0 && pc_now() - t->last_checkpoint >= 60.0 * minutes;
    int32_t mine = t->cfg->stop_signal ? (int32_t)*t->cfg->stop_signal : 0;
    *signal = mine;
    if (t->ranks == 1 || (!t->cfg->stop_signal && minutes <= 0)) return PC_OK;
    mine |= *timed << 16; /* signal numbers are below 65 */
    int32_t *all = calloc((size_t)t->ranks, sizeof *all);
    if (!all) return pc_fail_nomem();
    pc_status st = pc_comm_allgather_bytes(t->comm, &mine, sizeof mine, all);
    *signal = 0;
    for (int r = 0; r < t->ranks && st == PC_OK; r++)
        if ((all[r] & 0xffff) && !*signal) *signal = all[r] & 0xffff;
    *timed = (all[0] >> 16) & 1;
    free(all);
    return st;
}

/* --sync ps --staleness N > 0: its checkpoints come only at epochs' ends (train_setup.c's
 * check_stale_stop). */
static int stale_pipeline(const trainer *t) { return t->ps && t->cfg->staleness > 0; }

static pc_status interrupted(const trainer *t, int signal) {
    const char *name = signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "a signal";
    if (!t->cfg->out_dir)
        return pc_fail(PC_ERR_INTERRUPTED, "interrupted by %s at step %lld (no --out: nothing "
                       "saved)", name, (long long)t->step);
    int64_t spe = t->sched.steps_per_epoch, kept = t->step - t->step % spe;
    if (stale_pipeline(t) && kept < t->step && kept == 0)
        return pc_fail(PC_ERR_INTERRUPTED, "interrupted by %s at step %lld: nothing saved yet "
                       "(--staleness %d checkpoints only at an epoch's end, the first at step "
                       "%lld)", name, (long long)t->step, t->cfg->staleness, (long long)spe);
    if (stale_pipeline(t) && kept < t->step)
        return pc_fail(PC_ERR_INTERRUPTED, "interrupted by %s at step %lld: --staleness %d "
                       "checkpoints only at an epoch's end: %s/checkpoint.safetensors holds "
                       "step %lld; to continue from there, run the same command with --resume",
                       name, (long long)t->step, t->cfg->staleness, t->cfg->out_dir, (long long)kept);
    return pc_fail(PC_ERR_INTERRUPTED, "interrupted by %s at step %lld: checkpoint written to "
                   "%s/checkpoint.safetensors; to continue, run the same command with --resume",
                   name, (long long)t->step, t->cfg->out_dir);
}

/* After a step: --checkpoint-every, --checkpoint-minutes, or a signal (then
 * PC_ERR_INTERRUPTED, saying how to go on). At an epoch's end the epoch's own checkpoint
 * follows: nothing is written here, and a signal stops the run after it (see run). */
static pc_status after_step(trainer *t, int64_t epoch_end, int *signal) {
    const pc_train_config *c = t->cfg;
    int timed;
    PC_TRY(stop_signal(t, signal, &timed));
    int due = (c->checkpoint_every > 0 && t->step % c->checkpoint_every == 0) || timed;
    if (*signal && t->step < epoch_end && stale_pipeline(t)) /* the epoch's start is kept */
        PC_TRY(pc_ps_drain(t->ps, t->step));
    else if ((*signal || due) && t->step < epoch_end)
        PC_TRY(trainer_save_outputs(t, NULL));
    if (timed && t->step < epoch_end && c->out_dir)
        trainer_say(t, "parcnn: checkpoint at step %lld (--checkpoint-minutes %g)\n",
                    (long long)t->step, c->checkpoint_minutes);
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
    if (c->out_dir) PC_TRY(trainer_share_status(t, t->rank == 0 ? save_replicas(t) : PC_OK));
    pc_fusion_eval ev = {.test = &t->test, .train = &t->train, .tta = tta ? &c->tta : NULL,
                         .recalibrate = c->transfer.bn_recalibrate};
    PC_TRY(pc_fusion_finish(t->lsgd, &ev, t->opt_state, vm, &t->fusion));
    if (t->rank == 0 && c->log) pc_fusion_print(&t->fusion, c->log);
    if (!c->out_dir) return PC_OK;
    return trainer_share_status(t, t->rank == 0 ? save_model_as(t, "model.safetensors") : PC_OK);
}

/* The epoch in progress. */
typedef struct {
    int epoch;          /* counting from 0 */
    int64_t end;        /* the step it ends at (earlier with --max-steps) */
    int64_t first_step; /* the step this process started it at (later after --resume) */
    double t0;          /* when this process started it */
    double loss;        /* the sums over its steps so far */
    int64_t correct, seen;
    int signal;         /* a stop asked for by a signal: the run stops after the epoch */
} epoch_run;

/* Before the epoch's first step (or the first after a mid-epoch resume). */
static void start_epoch(trainer *t, epoch_run *ep, int64_t spe, int64_t stop) {
    memset(ep, 0, sizeof *ep);
    ep->epoch = (int)(t->step / spe);
    ep->end = PC_MIN((int64_t)(ep->epoch + 1) * spe, stop);
    make_perm(t, ep->epoch);
    ep->t0 = pc_now();
    ep->first_step = t->step;
    if (t->step > (int64_t)ep->epoch * spe) { /* resumed in the middle of the epoch */
        ep->loss = t->epoch_loss;
        ep->correct = t->epoch_correct;
        ep->seen = t->epoch_seen;
    }
    pc_traffic_begin(t->comm, &t->traffic_mark);
}

/* One step of the epoch, its losses summed into ep. */
static pc_status run_step(trainer *t, epoch_run *ep, int64_t spe) {
    const pc_train_config *c = t->cfg;
    if (t->ps) PC_TRY(trainer_ps_serve(t)); /* the previous step's update */
    freeze_layers(t, spe);
    t->lr = pc_sched_lr(&t->sched, t->step);
    t->batch_first = (t->step % spe) * c->batch;
    if (t->class_w) t->batch_w = batch_weight(t);
    if (t->loader) PC_TRY(trainer_prepare_input(t, ep->end));
    pc_status st = trainer_step(t);
    t->stage_cur = 1 - t->stage_cur;
    PC_TRY(st);
    if (!t->lsgd) trainer_update_running_stats(t); /* local SGD: each replica its own */
    trainer_average_update(t, t->m->buffers, t->ema_buffers, 0, t->m->n_buffers);
    double step_loss = 0;
    int64_t step_correct = 0;
    for (int s = 0; s < t->shards; s++) {
        step_loss += *rec_loss(t, s);
        step_correct += *rec_correct(t, s);
    }
    ep->loss += step_loss;
    ep->correct += step_correct;
    ep->seen += c->batch;
    t->step++;
    if (t->tb && c->tensorboard_every > 0 && t->step % c->tensorboard_every == 0)
        PC_TRY(trainer_tb_log(t, (const char *[]){"batch/loss", "batch/accuracy", "batch/lr"},
                              (double[]){step_loss / c->batch, (double)step_correct / c->batch, t->lr}, 3));
    if (!isfinite(ep->loss))
        return pc_fail(PC_ERR_DATA, "training diverged at step %lld (loss is not finite); "
                       "try a lower --lr", (long long)t->step);
    if (c->progress && t->rank == 0)
        trainer_print_progress(t, ep->epoch + 1, t->step - ep->first_step, ep->end - ep->first_step,
                               pc_now() - ep->t0, ep->loss, ep->seen);
    t->epoch_loss = ep->loss;
    t->epoch_correct = ep->correct;
    t->epoch_seen = ep->seen;
    return after_step(t, ep->end, &ep->signal);
}

/* The epoch's line of metrics.jsonl (and its timing-free fields in t->last_epoch). */
static void format_metrics_line(trainer *t, const epoch_run *ep, const pc_metrics *vm,
                                double epoch_seconds, double train_seconds, const time_split *ts,
                                const pc_traffic *traffic, char *line, size_t n) {
    double ips = (double)ep->seen / train_seconds;
    snprintf(t->last_epoch, sizeof t->last_epoch,
             "\"epoch\": %d, \"step\": %lld, \"train_loss\": %.6f, \"train_acc\": %.6f, "
             "\"val_loss\": %.6f, \"val_acc\": %.6f, \"lr\": %.6g",
             ep->epoch + 1, (long long)t->step, ep->loss / (double)ep->seen,
             (double)ep->correct / (double)ep->seen, pc_metrics_loss(vm), pc_metrics_accuracy(vm),
             t->lr);
    snprintf(line, n,
             "{\"epoch\": %d, \"step\": %lld, \"train_loss\": %.6f, \"train_acc\": %.6f, "
             "\"val_loss\": %.6f, \"val_acc\": %.6f, \"lr\": %.6g, \"epoch_seconds\": %.3f, "
             "\"train_seconds\": %.6f, \"images_per_second\": %.1f, \"data_seconds\": %.3f, "
             "\"compute_seconds\": %.3f, \"reduce_seconds\": %.3f, \"comm_seconds\": %.3f, "
             "\"optimizer_seconds\": %.3f, \"comm_bytes\": %lld, \"comm_messages\": %lld}",
             ep->epoch + 1, (long long)t->step, ep->loss / (double)ep->seen,
             (double)ep->correct / (double)ep->seen, pc_metrics_loss(vm), pc_metrics_accuracy(vm),
             t->lr, epoch_seconds, train_seconds, ips, ts->v[0], ts->v[1], ts->v[2], ts->v[3],
             ts->v[4], (long long)traffic->bytes, (long long)traffic->messages);
}

/* After the epoch's last step: evaluate, print its line, save the checkpoint, the model and
 * its metrics line, and stop if a signal asked for it. */
static pc_status end_epoch(trainer *t, const epoch_run *ep, int64_t spe, pc_metrics *vm,
                           pc_train_result *result) {
    if (t->ps) { /* the epoch's last update, every version to the worker ranks */
        PC_TRY(trainer_ps_serve(t));
        PC_TRY(pc_ps_drain(t->ps, t->step));
    }
    double train_seconds = pc_now() - ep->t0;
    pc_traffic traffic;
    PC_TRY(pc_traffic_end(t->comm, &t->traffic_mark, &traffic));
    if (t->cfg->progress && t->rank == 0) fprintf(stderr, "\r%120s\r", "");
    if (t->fusion_part) PC_TRY(pc_local_sgd_average(t->lsgd)); /* the replicas go on apart */
    if (t->ps) PC_TRY(pc_ps_share_chunks(t->ps, t->m->params, 1)); /* for the evaluation */
    PC_TRY(evaluate_epoch(t, vm));
    double epoch_seconds = pc_now() - ep->t0;
    double ips = (double)ep->seen / train_seconds;
    const char *partial = t->step < (int64_t)(ep->epoch + 1) * spe ? " (partial epoch)" : "";
    trainer_say(t, "%5d %10.4f %9.4f %9.4f %8.4f %9.2e %7.1f %8.0f%s\n", ep->epoch + 1,
                ep->loss / (double)ep->seen, (double)ep->correct / (double)ep->seen,
                pc_metrics_loss(vm), pc_metrics_accuracy(vm), t->lr, epoch_seconds, ips, partial);
    time_split ts;
    PC_TRY(trainer_report_time_split(t, train_seconds, &ts));
    for (int k = 0; k < 5; k++) t->run_split.v[k] += ts.v[k];
    t->run_steps += t->step - ep->first_step;
    PC_TRY(monitor_epoch(t, ep->epoch + 1, vm));
    char line[896];
    format_metrics_line(t, ep, vm, epoch_seconds, train_seconds, &ts, &traffic, line, sizeof line);
    pc_status st = trainer_save_outputs(t, line);
    if (st == PC_OK)
        st = trainer_tb_log(t, (const char *[]){"epoch/train_loss", "epoch/train_accuracy",
                                                t->eval_is_val ? "epoch/val_loss" : "epoch/test_loss",
                                                t->eval_is_val ? "epoch/val_accuracy" : "epoch/test_accuracy",
                                                "epoch/lr", "epoch/images_per_second", "epoch/seconds"},
                            (double[]){ep->loss / (double)ep->seen, (double)ep->correct / (double)ep->seen,
                                       pc_metrics_loss(vm), pc_metrics_accuracy(vm), t->lr, ips,
                                       epoch_seconds}, 7);
    if (st == PC_OK && ep->signal) st = interrupted(t, ep->signal); /* at the epoch's end */
    result->epochs_run++;
    result->train_seconds += train_seconds;
    result->images_seen += ep->seen;
    return st;
}

/* After the last epoch (vm: the final test metrics): TensorBoard, --profile, the final
 * lines, the report (and fusion's results) and, for the last member of an ensemble, the
 * ensemble's metrics. */
static pc_status finish_run(trainer *t, const pc_metrics *vm, const pc_train_result *result,
                            int tta) {
    const pc_train_config *c = t->cfg;
    PC_TRY(trainer_tb_log(t, (const char *[]){"final/test_accuracy", "final/test_loss", "final/macro_f1"},
                          (double[]){pc_metrics_accuracy(vm), pc_metrics_loss(vm), pc_metrics_macro_f1(vm)}, 3));
    if (c->profile) PC_TRY(trainer_report_profile(t));
    char views[64] = "";
    if (tta) pc_tta_format(&c->tta, views, sizeof views);
    trainer_say(t, "final: test accuracy %.4f, test loss %.4f, macro F1 %.4f%s%s\n",
                pc_metrics_accuracy(vm), pc_metrics_loss(vm), pc_metrics_macro_f1(vm),
                tta ? ", test-time augmentation " : "", views);
    if (t->full)
        trainer_say(t, "time: feature extraction %.1f s, head training %.1f s\n", t->feature_seconds,
                    result->train_seconds);
    if (monitoring(c))
        trainer_say(t, "best: epoch %d, %s %.4f%s%s\n", t->es.best_epoch, pc_monitor_name(c->monitor),
                    t->es.best, c->keep_best ? ", saved as model-best.safetensors" : "",
                    t->es.stopped ? " (stopped early)" : "");
    if (c->out_dir) trainer_say(t, "saved: %s/model.safetensors\n", c->out_dir);
    if (c->out_dir) PC_TRY(trainer_share_status(t, t->rank == 0 ? trainer_write_report(t, vm) : PC_OK));
    if (c->out_dir && t->fusion_part) /* after eval.json, which it extends */
        PC_TRY(trainer_share_status(t, t->rank == 0 ? pc_fusion_write(&t->fusion, c->out_dir) : PC_OK));
    if (t->mx->n_earlier == 0) return PC_OK;
    PC_TRY(trainer_evaluate_ensemble(t, t->mx->ensemble));
    if (!t->mx->ensemble_dir) return PC_OK;
    return trainer_share_status(t, t->rank == 0 /* the ensemble's eval.json */
                                       ? trainer_write_eval_json(t, t->mx->ensemble, t->mx->ensemble_dir)
                                       : PC_OK);
}

static pc_status run(trainer *t, pc_train_result *result) {
    const pc_train_config *c = t->cfg;
    int64_t spe = t->train.n / c->batch;
    int64_t total = (int64_t)c->epochs * spe;
    int64_t stop = c->max_steps > 0 ? PC_MIN(c->max_steps, total) : total;
    pc_metrics vm; /* each epoch's evaluation, then the final one (kept scores: for both) */
    if (pc_metrics_init(&vm, t->m->classes) || pc_metrics_keep_scores(&vm, PC_MAX(t->test.n, t->val.n))) {
        pc_metrics_free(&vm);
        return pc_fail_nomem();
    }
    t->last_checkpoint = pc_now();
    trainer_say(t, "%5s %10s %9s %9s %8s %9s %7s %8s\n", "epoch", "train_loss", "train_acc",
                t->eval_is_val ? "val_loss" : "test_loss", t->eval_is_val ? "val_acc" : "test_acc",
                "lr", "seconds", "images/s");
    pc_status st = PC_OK;
    while (t->step < stop && st == PC_OK && !t->es.stopped) {
        epoch_run ep;
        start_epoch(t, &ep, spe, stop);
        while (t->step < ep.end && st == PC_OK) st = run_step(t, &ep, spe);
        if (st == PC_OK) st = end_epoch(t, &ep, spe, &vm, result);
    }
    result->images_per_second = result->train_seconds > 0 ? result->images_seen / result->train_seconds : 0;
    /* test-time augmentation costs a forward pass per view: only for the final metrics
     * (which a resumed finished run, with no epoch line, evaluates anew; and a run whose
     * epochs were measured on a held-out validation set) */
    int tta = pc_tta_views(&c->tta) > 1;
    if (st == PC_OK && (tta || result->epochs_run == 0 || t->val.n) && !t->fusion_part)
        st = tta && t->full ? evaluate_full_network(t, &c->tta, &vm)
                            : evaluate(t, tta ? &c->tta : NULL, &vm);
    if (st == PC_OK && t->fusion_part) st = fuse(t, tta, &vm);
    else if (st == PC_OK && result->epochs_run == 0) st = trainer_rewrite_model(t);
    result->test_accuracy = pc_metrics_accuracy(&vm);
    result->test_loss = pc_metrics_loss(&vm);
    if (st == PC_OK) st = finish_run(t, &vm, result, tta);
    pc_metrics_free(&vm);
    return st;
}

static void free_trainer(trainer *t) {
    trainer_loader_free(t);
    pc_tb_close(t->tb);
    pc_sampler_free(&t->sampler);
    free(t->class_w);
    pc_reducer_destroy(t->red);
    trainer_fast_free(t);
    pc_engine_destroy(t->e);
    pc_local_sgd_destroy(t->lsgd); /* after the engine: its replicas read the views */
    free(t->fusion_part);
    pc_ps_destroy(t->ps);
    pc_fusion_result_free(&t->fusion);
    pc_free(t->loss_rec);
    pc_model_free(t->m);
    pc_model_free(t->full);
    pc_free(t->opt_state);
    free(t->param_roles);
    pc_free(t->ema_params);
    pc_free(t->ema_buffers);
    pc_free(t->shard_rec);
    pc_free(t->rec_send);
    free(t->worker_data);
    free(t->metrics_text);
    free(t->perm);
    pc_dataset_free(&t->train);
    pc_dataset_free(&t->test);
    pc_dataset_free(&t->val);
    pc_pretrained_free(&t->pre);
    pc_dataset_free(&t->test_images);
    pc_transfer_free(&t->tr);
    pc_error_slot_destroy(&t->data_error);
}

pc_status trainer_train_member(const pc_train_config *c, const member_ctx *mx,
                               pc_train_result *result) {
    trainer t;
    memset(&t, 0, sizeof t);
    t.cfg = c;
    t.mx = mx;
    pc_error_slot_init(&t.data_error);
    memset(result, 0, sizeof *result);
    pc_status st = trainer_setup(&t);
    if (st == PC_OK) {
        trainer_print_startup(&t);
        st = run(&t, result);
    }
    trainer_unshare_params(&t);
    if (st == PC_OK && mx->keep) { /* the averaged weights, complete on every rank */
        st = share_average(&t);
        if (st == PC_OK) {
            trainer_swap_ema(&t);
            *mx->keep = t.m;
            t.m = NULL;
        }
    }
    free_trainer(&t);
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
    pc_status st = c->ensemble > 1 ? trainer_train_ensemble(c, result) : trainer_train_member(c, &mx, result);
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

