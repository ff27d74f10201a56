/* Everything before the first step: the configuration checked, the data loaded, the model
 * created (or a pretrained one adapted), the reducer, loader, optimizer groups and weight
 * averages set up, the ranks agreeing on the settings, and --out prepared or resumed. */
#include "train/trainer.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/holdout.h"
#include "train/memory.h"
#include "train/settings.h"

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

int trainer_gradient_ranks(const pc_train_config *c, int ranks) {
    int servers = c->servers > 0 ? c->servers : 1;
    return c->sync.kind == PC_SYNC_PS && servers < ranks ? ranks - servers : ranks;
}

/* --sync ps, --servers, --staleness, --async. */
static pc_status check_ps(const pc_train_config *c, int ranks) {
    char sync[32];
    pc_sync_format(&c->sync, sync, sizeof sync);
    if (c->sync.kind != PC_SYNC_PS) {
        if (c->servers > 0 || c->staleness >= 0 || c->ps_async)
            return pc_fail(PC_ERR_USAGE, "--%s with --sync %s: only the parameter server "
                           "(--sync ps) has it", c->ps_async ? "async" : c->staleness >= 0 ?
                           "staleness" : "servers", sync);
        return PC_OK;
    }
    if (c->ps_async && c->staleness >= 0)
        return pc_fail(PC_ERR_USAGE, "--staleness with --async: the asynchronous server follows "
                       "no schedule");
    if (c->reduce_fast) return pc_fail(PC_ERR_USAGE, "--reduce fast with --sync ps: the servers reduce");
    if (c->ema > 0 || c->lookahead > 0)
        return pc_fail(PC_ERR_USAGE, "--%s with --sync ps: not supported", c->ema > 0 ? "ema" : "lookahead");
    if (c->staleness > 0 && (c->checkpoint_every > 0 || c->checkpoint_minutes > 0))
        return pc_fail(PC_ERR_USAGE, "--checkpoint-%s with --staleness %d: a checkpoint inside "
                       "an epoch would end the pipeline there (checkpoints come at every epoch's "
                       "end)", c->checkpoint_every > 0 ? "every" : "minutes", c->staleness);
    int servers = c->servers > 0 ? c->servers : 1;
    if (ranks == 1)
        return pc_fail(PC_ERR_USAGE, "--sync ps needs MPI: its servers and workers are separate "
                       "ranks (run it under mpirun with at least %d ranks)", servers + 1);
    if (servers >= ranks)
        return pc_fail(PC_ERR_USAGE, "--servers %d must be fewer than the %d ranks (the others "
                       "compute the gradients)", servers, ranks);
    return PC_OK;
}

/* --sync, --replicas, --average-opt-state. */
static pc_status check_strategy(const pc_train_config *c, int shards, int ranks) {
    PC_TRY(check_fusion(c));
    PC_TRY(check_ps(c, ranks));
    if (c->sync.kind == PC_SYNC_ALLREDUCE || c->sync.kind == PC_SYNC_PS) {
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

static pc_status check_monitoring(const pc_train_config *c) {
    if (!monitoring(c) && (c->monitor != PC_MONITOR_DEFAULT || c->min_delta > 0))
        return pc_fail(PC_ERR_USAGE, "--%s: only with --early-stop PATIENCE or --keep best",
                       c->monitor != PC_MONITOR_DEFAULT ? "monitor" : "min-delta");
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
    int shards = c->batch / c->shard_size, all_ranks = pc_comm_size(pc_comm_world());
    int ranks = trainer_gradient_ranks(c, all_ranks);
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
    return check_strategy(c, shards, all_ranks);
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

/* Whether the data has a test set of its own: every data set but an image folder without
 * test/ or val/ (data/folder.h's layouts), whose --val-split part is its evaluation set. */
static int has_test_set(const char *spec) {
    if (strncmp(spec, "folder:", 7) != 0) return 1;
    char path[4096];
    const char *parts[3] = {"train", "test", "val"};
    int is_dir[3];
    for (int k = 0; k < 3; k++) {
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", spec + 7, parts[k]);
        is_dir[k] = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
    }
    return is_dir[0] && (is_dir[1] || is_dir[2]);
}

static pc_status load_data(trainer *t) {
    const pc_train_config *c = t->cfg;
    pc_folder_options fo = c->folder;
    /* --val-split on data with a test set: a validation set held out of the (limited)
     * training images with the data split's seed; the test set stays the test set */
    const int hold_out = c->folder.val_split > 0 && has_test_set(c->data);
    if (hold_out) fo.val_split = 0;
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
    if (hold_out) {
        PC_TRY(pc_dataset_hold_out(&t->train, c->folder.val_split, t->mx->split_seed, &t->val));
        t->eval_is_val = 1;
    }
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
    if (c->sync.kind == PC_SYNC_PS && (c->staleness > 0 || c->ps_async)) /* 0: allreduce's bytes */
        fingerprint_add(t, " sync=ps staleness=%d async=%d", PC_MAX(c->staleness, 0), c->ps_async);
    const pc_transfer_config *x = &c->transfer;
    if (x->init)
        fingerprint_add(t, " init=%s cut=%s freeze=%d:%s unfreeze=%g/%g recalibrate=%d views=%d",
                        x->init, x->cut ? x->cut : "-", (int)x->freeze, x->freeze_layer,
                        x->unfreeze_at, x->finetune_lr_mult, x->bn_recalibrate, x->feature_views);
}

/* Every rank must train the same thing: compare `mine` (settings as key=value words) of
 * all ranks; rank 0 names the first rank that differs and each setting that does. */
static pc_status check_ranks_agree(trainer *t, const char *mine, const char *what) {
    if (t->ranks == 1) return PC_OK;
    enum { LEN = 4096 };
    char *all = calloc(t->ranks + 1, LEN), *send = all + (size_t)t->ranks * LEN;
    if (!all) return pc_fail_nomem();
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
        trainer_say(t, "parcnn: resuming from %s at step %lld\n", path, (long long)t->step);
        pc_remove_stale_temporaries(c->out_dir, 0);
        return trainer_restore_metrics(t);
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
void trainer_update_roles(trainer *t) {
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
    if (!t->param_roles) return pc_fail_nomem();
    trainer_update_roles(t);
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
    if (!t->ema_params || !t->ema_buffers) return pc_fail_nomem();
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
    pc_status st = images && idx ? PC_OK : pc_fail_nomem();
    for (int64_t i = 0; st == PC_OK && i < n; i++) idx[i] = i;
    if (st == PC_OK)
        st = pc_dataset_gather(&t->train, idx, (int)n, t->meta.mean, t->meta.std, images, NULL);
    for (int i = 1; st == PC_OK && i < m->n_layers; i++) {
        if (m->layers[i].init != PC_INIT_WHITEN) continue;
        st = pc_model_whiten(t->m, i, images, n, 5e-4f);
        if (st == PC_OK)
            trainer_say(t, "parcnn: %s whitens patches (init from %lld training images)\n",
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

/* --sync ps --staleness N > 0 stops only at an epoch's end, where its pipeline drains: the
 * weights still in flight inside an epoch are in no checkpoint, so a run stopped there
 * could not go on with the uninterrupted run's bytes. */
static pc_status check_stale_stop(const trainer *t) {
    const pc_train_config *c = t->cfg;
    int64_t spe = t->train.n / c->batch;
    if (c->staleness <= 0 || c->max_steps <= 0 || c->max_steps >= (int64_t)c->epochs * spe ||
        c->max_steps % spe == 0)
        return PC_OK;
    return t->rank == 0 ? pc_fail(PC_ERR_USAGE, "--max-steps %lld with --staleness %d: a run with "
                                  "stale weights stops only at an epoch's end (a multiple of the "
                                  "%lld steps per epoch)", (long long)c->max_steps, c->staleness,
                                  (long long)spe)
                        : pc_fail(PC_ERR_USAGE, "%s", PC_SHARED_ERROR);
}

/* --resume of --staleness N > 0: only from an epoch's end (see check_stale_stop). */
static pc_status check_stale_resume(const trainer *t) {
    const pc_train_config *c = t->cfg;
    int64_t spe = t->sched.steps_per_epoch;
    if (!t->ps || c->staleness <= 0 || !c->resume || t->step % spe == 0) return PC_OK;
    return t->rank == 0 ? pc_fail(PC_ERR_USAGE, "--resume: %s/checkpoint.safetensors is at step "
                                  "%lld, inside epoch %lld (%lld steps each); --sync ps "
                                  "--staleness %d resumes only from an epoch's end (the weights "
                                  "in flight are in no checkpoint)", c->out_dir,
                                  (long long)t->step, (long long)(t->step / spe + 1),
                                  (long long)spe, c->staleness)
                        : pc_fail(PC_ERR_USAGE, "%s", PC_SHARED_ERROR);
}

/* --sync local-sgd or fusion: the replicas, on the engine's workers. */
static pc_status strategy_setup(trainer *t) {
    const pc_train_config *c = t->cfg;
    if (c->sync.kind == PC_SYNC_ALLREDUCE) return PC_OK;
    if (c->sync.kind == PC_SYNC_PS) {
        PC_TRY(check_stale_stop(t));
        pc_ps_config pc = {.comm = t->comm, .params = t->m->params, .n = t->m->n_params,
                           .red = t->red, .shards = t->shards, .servers = PC_MAX(c->servers, 1),
                           .staleness = PC_MAX(c->staleness, 0), .async = c->ps_async,
                           .rec_size = t->rec_size};
        return pc_ps_create(&pc, &t->ps);
    }
    if (c->sync.kind == PC_SYNC_FUSION) {
        if (!(t->fusion_part = malloc(sizeof(int64_t) * (2 * t->train.n + 1))))
            return pc_fail_nomem();
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
    if (!t->loss_rec) return pc_fail_nomem();
    return pc_local_sgd_create(&lc, &t->lsgd);
}

/* --init: recalibrate the batch norms (a fresh run), then freeze the prefix asked for. */
static pc_status transfer_setup(trainer *t) {
    const pc_transfer_config *x = &t->cfg->transfer;
    trainer_say(t, "parcnn: init from %s: new head for %d classes after %s\n", x->init, t->m->classes,
        x->cut ? x->cut : "the network's last hidden layer");
    if (x->bn_recalibrate > 0) { /* on resume too: cached features need it */
        int64_t used = 0;
        double t0 = pc_now();
        PC_TRY(pc_transfer_recalibrate(t->m, t->e, &t->train, x->bn_recalibrate, &used));
        trainer_say(t, "parcnn: batch-norm statistics recalibrated from %lld training images in %.1f s\n",
            (long long)used, pc_now() - t0);
    }
    PC_TRY(pc_transfer_freeze(x, t->m, &t->tr));
    if (t->tr.frozen > 0)
        trainer_say(t, "parcnn: layers 1 to %d frozen (up to %s; their batch norms in inference mode)\n",
            t->tr.frozen, t->m->layers[t->tr.frozen].name);
    if (t->tr.frozen > 0 && x->unfreeze_at > 0)
        trainer_say(t, "parcnn: they train from epoch %g on, at %g x the learning rate\n", x->unfreeze_at,
            x->finetune_lr_mult);
    return PC_OK;
}

/* Only the head trains: extract the backbone's features once, then train the head alone
 * on them (t->full keeps the whole network, saved with the trained head). */
static pc_status use_features(trainer *t) {
    const pc_train_config *c = t->cfg;
    if (pc_tta_views(&c->tta) > 1 && c->ensemble > 1)
        return pc_fail(PC_ERR_USAGE, "--tta with --ensemble: not with cached features (the "
                       "frozen backbone); give --no-feature-cache");
    if (t->val.n)
        return pc_fail(PC_ERR_USAGE, "--val-split on data with a test set: not with cached "
                       "features (the frozen backbone); give --no-feature-cache");
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

pc_status trainer_setup(trainer *t) {
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
    PC_TRY(pc_memory_check_train(c, t->m, t->ranks, (int64_t)t->train.c * t->train.h * t->train.w));
    PC_TRY(pc_engine_create(t->m, c->workers, c->threads, c->shard_size, &c->exec,
                            t->meta.mean, t->meta.std, &t->e));
    if (t->pre.model) PC_TRY(transfer_setup(t));
    if (t->pre.model && pc_transfer_uses_features(&c->transfer, &t->tr)) PC_TRY(use_features(t));
    t->shards = c->batch / c->shard_size;
    if (c->sync.kind == PC_SYNC_PS) { /* the worker ranks' shards; servers as rank 0's */
        int G = trainer_gradient_ranks(c, t->ranks);
        PC_TRY(pc_reducer_create_group(t->shards, t->e->workers, t->m->n_params, G,
                                       t->rank < G ? t->rank : 0, &t->red));
    } else {
        int shared = c->exchange == PC_EXCHANGE_AUTO && !c->reduce_fast && c->sync.kind == PC_SYNC_ALLREDUCE;
        PC_TRY(pc_reducer_create(t->shards, t->e->workers, t->m->n_params, t->comm, shared, &t->red));
    }
    if (c->reduce_fast && t->ranks > 1) PC_TRY(trainer_fast_setup(t));
    if (pc_reducer_overlaps(t->red)) PC_TRY(trainer_overlap_setup(t));
    t->bn_size = pc_exec_bn_stats_size(t->m);
    t->rec_size = 16 + sizeof(float) * ((t->bn_size + 1) & ~(int64_t)1);
    PC_TRY(strategy_setup(t));
    t->sched = c->sched;
    t->sched.base_lr *= pc_lr_scale_factor(c->lr_scale, c->batch, c->lr_ref_batch);
    t->sched.steps_per_epoch = t->train.n / c->batch;
    t->sched.total_steps = (int64_t)c->epochs * t->sched.steps_per_epoch;
    PC_TRY(trainer_loader_setup(t));
    for (int w = 0; c->profile && w < t->e->workers; w++) pc_exec_enable_profile(t->e->execs[w]);
    PC_TRY(setup_param_groups(t));
    PC_TRY(setup_ema(t));
    /* local SGD: the checkpoint's optimizer state is every replica's whole state */
    t->opt_state_n = t->lsgd ? pc_local_sgd_state_size(t->lsgd)
                             : (int64_t)pc_opt_state_per_param(&c->opt) * t->m->n_params;
    t->opt_state = pc_alloc(sizeof(float) * (t->opt_state_n ? t->opt_state_n : 1));
    t->perm = malloc(sizeof(int64_t) * t->train.n);
    t->shard_rec = pc_alloc(t->rec_size * t->shards);
    t->rec_send = pc_alloc(t->rec_size * t->shards);
    t->worker_data = calloc(t->e->workers, sizeof(double));
    if (!t->opt_state || !t->perm || !t->shard_rec || !t->rec_send || !t->worker_data)
        return pc_fail(PC_ERR_NOMEM, "out of memory for the optimizer state");
    make_fingerprint(t);
    PC_TRY(check_ranks_agree(t, t->fingerprint, "data or model files"));
    PC_TRY(trainer_share_status(t, t->rank == 0 ? prepare_out_dir(t) : PC_OK));
    PC_TRY(trainer_share_status(t, t->rank == 0 && c->out_dir ? trainer_write_settings(t) : PC_OK));
    PC_TRY(trainer_share_status(t, t->rank == 0 && c->tensorboard ? pc_tb_open(c->tensorboard, &t->tb) : PC_OK));
    PC_TRY(broadcast_state(t));
    PC_TRY(trainer_share_params(t)); /* the same values on every rank from here */
    PC_TRY(check_stale_resume(t));
    if (t->lsgd) pc_local_sgd_start(t->lsgd, c->resume ? t->opt_state : NULL);
    if (t->ps) pc_ps_start(t->ps, t->step);
    return PC_OK;
}
