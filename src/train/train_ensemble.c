/* --ensemble K: K members trained one after another (seeds N, N+1, ...) into
 * OUT/member-k, the last one rating the ensemble of all; OUT/ensemble.json. */
#include "train/trainer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The ensemble of the earlier members and this run's final model on the test data,
 * with the run's test-time augmentation. */
pc_status trainer_evaluate_ensemble(trainer *t, pc_metrics *vm) {
    const pc_train_config *c = t->cfg;
    pc_engine *e = NULL;
    if (pc_metrics_init(vm, t->m->classes) || pc_metrics_keep_scores(vm, t->test.n))
        return pc_fail_nomem();
    pc_status st = pc_engine_create(t->m, t->e->workers, 1, c->shard_size, &c->exec,
                                    t->meta.mean, t->meta.std, &e);
    for (int k = 0; st == PC_OK && k < t->mx->n_earlier; k++)
        st = pc_engine_add_member(e, t->mx->earlier[k]);
    if (st == PC_OK) st = trainer_evaluate_on(t, e, &t->test, &c->tta, vm);
    pc_engine_destroy(e);
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
    pc_status st = pc_json_write(path, root);
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

pc_status trainer_train_ensemble(const pc_train_config *c, pc_train_result *result) {
    const int K = c->ensemble;
    pc_model **models = calloc(K, sizeof *models);
    pc_train_result *runs = calloc(K, sizeof *runs);
    pc_metrics vm = {0};
    pc_status st = models && runs ? check_member_dirs(c) : pc_fail_nomem();
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
        st = trainer_train_member(&mc, &mx, &runs[k]);
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
        st = trainer_share_status_on(pc_comm_world(), write_ensemble_json(c, &vm, runs, result->train_seconds));
    }
    for (int k = 0; models && k < K; k++) pc_model_free(models[k]);
    free(models);
    free(runs);
    pc_metrics_free(&vm);
    return st;
}
