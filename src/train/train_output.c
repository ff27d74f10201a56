/* What a run tells and leaves: the console lines (cfg->log, progress on stderr), the
 * checkpoint, model.safetensors and metrics.jsonl of --out, the time split and --profile,
 * eval.json and the report, TensorBoard scalars. */
#include "train/trainer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train/report.h"

/* Human-readable output goes to cfg->log (nothing when NULL). */
void trainer_say(const trainer *t, const char *fmt, ...) {
    if (!t->cfg->log || t->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(t->cfg->log, fmt, ap);
    va_end(ap);
    fflush(t->cfg->log);
}

void trainer_print_progress(const trainer *t, int epoch, int64_t done, int64_t total,
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

void trainer_print_startup(const trainer *t) {
    const pc_train_config *c = t->cfg;
    trainer_say(t, "parcnn: model %s: %lld parameters, %.1f MFLOP forward per image, kernels %s\n",
           t->m->name, (long long)t->m->n_params, pc_model_flops(t->m) / 1e6,
           pc_exec_kernel_name(t->e->execs[0]));
    trainer_say(t, "parcnn: data %s: %lld training and %lld test images of %dx%dx%d, %d classes\n",
           c->data, (long long)t->train.n, (long long)t->test.n, t->train.c, t->train.h,
           t->train.w, t->train.classes);
    if (t->val.n)
        trainer_say(t, "parcnn: --val-split %g: %lld more training images held out for "
                    "validation (each epoch's val_loss and val_acc); the test set is evaluated "
                    "at the end\n", c->folder.val_split, (long long)t->val.n);
    if (t->ranks > 1)
        trainer_say(t, "parcnn: %d MPI ranks x %d worker(s) x %d thread(s); global batch %d = %d "
            "shard(s) of %d, %d per rank (%s)\n", t->ranks, c->workers, c->threads, c->batch,
            t->shards, c->shard_size, t->shards / trainer_gradient_ranks(c, t->ranks),
            c->reduce_fast ? "--reduce fast: MPI allreduce, NOT bit-reproducible across rank counts"
                           : "results do not depend on ranks or workers");
    else
        trainer_say(t, "parcnn: %d worker(s) x %d thread(s); global batch %d = %d shard(s) of %d "
            "(the batch is global; results do not depend on the worker count)\n",
            c->workers, c->threads, c->batch, t->shards, c->shard_size);
    if (t->ps)
        trainer_say(t, "parcnn: --sync ps: ranks 0-%d compute gradients, %d server rank(s) from %d "
            "hold the parameters and apply the optimizer; %s\n", t->ranks - PC_MAX(c->servers, 1) - 1,
            PC_MAX(c->servers, 1), t->ranks - PC_MAX(c->servers, 1),
            c->ps_async ? "asynchronous (NOT reproducible)" : c->staleness > 0 ?
            "weights up to --staleness steps old (a fixed schedule)" : "synchronous (allreduce's bytes)");
    if (t->fusion_part)
        trainer_say(t, "parcnn: --sync fusion: %d replicas, each training on its own %lld of the %lld "
            "training images (%d shard(s) of every step), fused at the end\n", replica_count(t),
            (long long)(t->train.n / replica_count(t)), (long long)t->train.n,
            t->shards / replica_count(t));
    else if (t->lsgd)
        trainer_say(t, "parcnn: --sync local-sgd=%d: %d replicas of %d shard(s) each, their weights and "
            "batch-norm statistics%s averaged every %d steps and at every epoch's end\n",
            c->sync.every, replica_count(t), t->shards / replica_count(t),
            c->average_opt_state ? " and optimizer state" : "", c->sync.every);
    trainer_say(t, "parcnn: %s lr %g", pc_opt_name(c->opt.kind), t->sched.base_lr);
    if (c->lr_scale != PC_LR_SCALE_NONE)
        trainer_say(t, " (= %g x %s scaling for batch %d against reference batch %d)", c->sched.base_lr,
            pc_lr_scale_name(c->lr_scale), c->batch, c->lr_ref_batch);
    trainer_say(t, ", schedule %s", pc_sched_name(c->sched.kind));
    if (c->sched.warmup_epochs > 0) trainer_say(t, " after %g warm-up epoch(s)", c->sched.warmup_epochs);
    if (c->sched.kind == PC_SCHED_TRIANGULAR) {
        double peak = c->sched.peak_epoch >= 0 ? c->sched.peak_epoch : 0.2 * c->epochs;
        trainer_say(t, " (x%g rising to the peak at epoch %g, then down to 0)", c->sched.start_factor, peak);
    }
    if (c->bias_lr_mult != 1.0f) trainer_say(t, ", biases at %g x lr", c->bias_lr_mult);
    if (c->norm_bias_lr_mult != 1.0f)
        trainer_say(t, ", batch-norm shifts at %g x lr", c->norm_bias_lr_mult);
    if (c->no_decay_bn_bias) trainer_say(t, ", no weight decay on biases and batch-norm scales");
    if (c->ema > 0) trainer_say(t, ", weights averaged with decay %g (evaluated and saved)", c->ema);
    if (c->lookahead > 0) trainer_say(t, ", lookahead every %d steps", c->lookahead);
    trainer_say(t, ", %d epoch(s) of %lld steps, seed %llu\n", c->epochs,
        (long long)(t->train.n / c->batch), (unsigned long long)c->seed);
    for (int i = 1; i < t->m->n_layers; i++)
        if (t->m->layers[i].train_epochs > 0)
            trainer_say(t, "parcnn: layer %s trains for the first %g epoch(s), then freezes\n",
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
    if (!grown) return pc_fail_nomem();
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
    trainer_swap_ema(t);
    pc_status st = t->full ? pc_transfer_head_back(t->m, t->full) : PC_OK;
    if (st == PC_OK) st = pc_model_save(path, t->full ? t->full : t->m, &t->meta);
    trainer_swap_ema(t);
    return st;
}

/* Write checkpoint, model and metrics.jsonl, each atomically; the checkpoint carries the
 * line's timing-free fields, so a run killed between the files resumes with metrics that
 * agree (trainer_restore_metrics). model-best.safetensors goes first: a run killed before the
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

/* A resumed run with no step left writes model.safetensors again from the checkpoint: a kill
 * between the last checkpoint's rename and the model's write leaves the previous epoch's. */
pc_status trainer_rewrite_model(trainer *t) {
    if (!t->cfg->out_dir) return PC_OK;
    return trainer_share_status(t, t->rank == 0 ? save_model(t, "model.safetensors") : PC_OK);
}

/* Rank 0 writes (metrics_line NULL: the checkpoint alone, in the middle of an epoch);
 * every rank learns whether it worked (the broadcast doubles as the barrier after the
 * checkpoint), so all stop together on a failed write. */
pc_status trainer_save_outputs(trainer *t, const char *metrics_line) {
    t->last_checkpoint = pc_now();
    if (!t->cfg->out_dir) return PC_OK;
    if (t->lsgd) /* every replica's state: each rank holds its replicas' */
        PC_TRY(pc_local_sgd_gather_state(t->lsgd, t->opt_state));
    else if (t->ps) { /* the servers hold the current chunks */
        PC_TRY(pc_ps_drain(t->ps, t->step));
        PC_TRY(pc_ps_share_chunks(t->ps, t->m->params, 1));
        PC_TRY(pc_ps_share_chunks(t->ps, t->opt_state, pc_opt_state_per_param(&t->cfg->opt)));
    }
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

/* Print this epoch's split (per rank under MPI) and reset the counters. */
static const char *const split_names[5] = {"data", "compute", "reduce", "communication",
                                           "optimizer"};

/* Print this epoch's split (per rank under MPI) and reset the counters. */
pc_status trainer_report_time_split(trainer *t, double train_seconds, time_split *mine) {
    double data = 0;
    for (int w = 0; w < t->e->workers; w++) data += t->worker_data[w] / t->e->workers;
    *mine = (time_split){{data + t->time_data_wait, t->time_compute - data, t->time_reduce,
                          t->time_comm, t->time_optimizer}};
    memset(t->worker_data, 0, sizeof(double) * t->e->workers);
    t->time_compute = t->time_reduce = t->time_comm = t->time_optimizer = t->time_data_wait = 0;
    time_split *all = calloc(t->ranks, sizeof(time_split));
    if (!all) return pc_fail_nomem();
    pc_status st = pc_comm_allgather_bytes(t->comm, mine, sizeof *mine, all);
    for (int r = 0; r < t->ranks && st == PC_OK; r++) {
        if (t->ranks > 1) trainer_say(t, "      rank %d:", r);
        else trainer_say(t, "      time:");
        for (int k = 0; k < 5; k++)
            trainer_say(t, " %s %.2fs (%.1f%%)", split_names[k], all[r].v[k],
                100.0 * all[r].v[k] / train_seconds);
        trainer_say(t, "\n");
    }
    free(all);
    return st;
}

/* --profile: per layer forward and backward time per step (mean over this rank's
 * workers) and GFLOP/s, then the run's time split; as a table and, with --out, as
 * DIR/profile.json. */
pc_status trainer_report_profile(trainer *t) {
    const pc_train_config *c = t->cfg;
    const pc_model *m = t->m;
    int W = t->e->workers;
    double steps = t->run_steps > 0 ? (double)t->run_steps : 1;
    double images = (double)c->shard_size * t->shards / (t->ranks * W); /* per worker and step */
    cJSON *root = cJSON_CreateObject(), *layers = cJSON_AddArrayToObject(root, "layers");
    char *wanted = calloc((size_t)m->n_layers, 1);
    if (!wanted) {
        cJSON_Delete(root);
        return pc_fail_nomem();
    }
    pc_model_grad_wanted(m, wanted);
    trainer_say(t, "profile (per step, mean over workers; backward FLOPs: conv and dense layers' "
           "backward data and weights as computed, other layers 2x forward)\n");
    trainer_say(t, "%-26s %-9s %11s %9s %9s %9s %9s\n", "layer", "kind", "output", "fwd ms", "bwd ms",
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
        trainer_say(t, "%-26s %-9s %11s %9.3f %9.3f %9.1f %9.1f\n", l->name,
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
    trainer_say(t, "%-26s %-9s %11s %9.3f %9.3f\n", "all layers", "", "", 1e3 * total_f, 1e3 * total_b);
    cJSON *split = cJSON_AddObjectToObject(root, "step_ms");
    trainer_say(t, "per step:");
    for (int k = 0; k < 5; k++) {
        trainer_say(t, " %s %.3f ms", split_names[k], 1e3 * t->run_split.v[k] / steps);
        cJSON_AddNumberToObject(split, split_names[k], 1e3 * t->run_split.v[k] / steps);
    }
    trainer_say(t, "\n");
    pc_status st = PC_OK;
    if (c->out_dir && t->rank == 0) {
        char path[4096];
        path_in(path, sizeof path, c->out_dir, "profile.json");
        st = pc_json_write(path, root);
    }
    cJSON_Delete(root);
    return st;
}

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
pc_status trainer_write_eval_json(trainer *t, const pc_metrics *vm, const char *dir) {
    char path[4096], views[64];
    pc_tta_format(&t->cfg->tta, views, sizeof views);
    path_in(path, sizeof path, dir, "eval.json");
    if (!monitoring(t->cfg) || dir != t->cfg->out_dir) /* the ensemble's has no best epoch */
        return pc_metrics_write_json(vm, t->meta.class_names, views, path);
    char *text = pc_metrics_json(vm, t->meta.class_names, views);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!o) return pc_fail_nomem();
    add_best(t, o);
    pc_status st = pc_json_write(path, o);
    cJSON_Delete(o);
    return st;
}

/* DIR/eval.json, DIR/samples.json (48 test images), DIR/report.svg and DIR/report.html. */
pc_status trainer_write_report(trainer *t, const pc_metrics *vm) {
    PC_TRY(trainer_write_eval_json(t, vm, t->cfg->out_dir));
    const pc_dataset *images = t->full ? &t->test_images : &t->test;
    PC_TRY(pc_report_write_samples(t->cfg->out_dir, images, vm, t->meta.class_names, 48));
    return pc_report_write(t->cfg->out_dir);
}

/* DIR/settings.json, for the report. */
pc_status trainer_write_settings(trainer *t) {
    pc_report_facts facts = {.model = t->m->name, .params = t->m->n_params, .ranks = t->ranks,
                             .steps_per_epoch = t->sched.steps_per_epoch,
                             .train_samples = t->train.n, .test_samples = t->test.n,
                             .val_samples = t->val.n,
                             .classes = t->m->classes, .c = t->train.c, .h = t->train.h,
                             .w = t->train.w, .lr = t->sched.base_lr,
                             .kernels = pc_exec_kernel_name(t->e->execs[0])};
    return pc_report_write_settings(t->cfg->out_dir, t->cfg, &facts);
}

/* --tensorboard: n scalars at the current step (rank 0; a no-op elsewhere). */
pc_status trainer_tb_log(trainer *t, const char *const *tags, const double *values, int n) {
    if (!t->tb) return PC_OK;
    float v[8];
    for (int i = 0; i < n && i < 8; i++) v[i] = (float)values[i];
    return pc_tb_scalars(t->tb, t->step, tags, v, n < 8 ? n : 8);
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
pc_status trainer_restore_metrics(trainer *t) {
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
