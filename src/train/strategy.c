#include "train/strategy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/rng.h"
#include "train/pool.h"
#include "train/transfer.h"
#include "train/tree.h"

pc_status pc_sync_parse(const char *arg, pc_sync *out) {
    if (strcmp(arg, "allreduce") == 0) {
        *out = (pc_sync){PC_SYNC_ALLREDUCE, 0};
        return PC_OK;
    }
    const char *prefix = "local-sgd=";
    if (strncmp(arg, prefix, strlen(prefix)) == 0) {
        char *end;
        long k = strtol(arg + strlen(prefix), &end, 10);
        if (end != arg + strlen(prefix) && *end == 0 && k >= 1 && k <= 1000000) {
            *out = (pc_sync){PC_SYNC_LOCAL_SGD, (int)k};
            return PC_OK;
        }
        return pc_fail(PC_ERR_USAGE, "--sync %s: the period K of local-sgd=K must be an integer "
                       "in [1, 1000000] (steps between averages)", arg);
    }
    if (strcmp(arg, "fusion") == 0 || strcmp(arg, "ps") == 0) {
        *out = (pc_sync){arg[0] == 'f' ? PC_SYNC_FUSION : PC_SYNC_PS, 0};
        return PC_OK;
    }
    return pc_fail(PC_ERR_USAGE, "--sync %s: expected allreduce, local-sgd=K, fusion or ps", arg);
}

void pc_sync_format(const pc_sync *s, char *buf, size_t n) {
    if (s->kind == PC_SYNC_LOCAL_SGD) snprintf(buf, n, "local-sgd=%d", s->every);
    else if (s->kind == PC_SYNC_FUSION) snprintf(buf, n, "fusion");
    else if (s->kind == PC_SYNC_PS) snprintf(buf, n, "ps");
    else snprintf(buf, n, "allreduce");
}

/* ------------------------------------------------------------- local SGD */

typedef struct {
    pc_model view;        /* the model with this worker's current replica's arrays */
    float *grad;          /* the replica's summed gradient */
    float **tmp;          /* per tree level below the replica's node */
} worker_state;

struct pc_local_sgd {
    pc_local_sgd_config cfg;
    int ranks, rank, workers, local;  /* local: replicas per rank */
    int64_t n, nb, len, avg_len;      /* params, buffers, state per replica, averaged prefix */
    float *state;                     /* local x len: [params | buffers | optimizer state] */
    worker_state *ws;
    const pc_local_step *cur;         /* the step being computed */
    /* R > 1 ranks: the averaged prefix in rank chunks */
    int *chunk_counts, *chunk_displs, *send_counts, *send_displs, *recv_counts, *recv_displs;
    float *send, *recv, *avg;
};

static float *replica_state(const pc_local_sgd *s, int local) { return s->state + (int64_t)local * s->len; }

static pc_status alloc_worker(pc_local_sgd *s, worker_state *w, int depth) {
    w->view = *s->cfg.model;
    w->grad = pc_alloc(sizeof(float) * (s->n ? s->n : 1));
    w->tmp = calloc(depth + 1, sizeof(float *));
    if (!w->grad || !w->tmp) return pc_fail_nomem();
    for (int d = 0; d < depth; d++)
        if (!(w->tmp[d] = pc_alloc(sizeof(float) * (s->n ? s->n : 1))))
            return pc_fail_nomem();
    return PC_OK;
}

/* The engine's replicas read their worker's view, whose arrays point at the replica
 * being computed (and at the averaged model otherwise, for evaluation). */
static pc_status rebuild_execs(pc_local_sgd *s) {
    pc_engine *e = s->cfg.engine;
    for (int w = 0; w < e->workers; w++) {
        pc_exec_destroy(e->execs[w]);
        e->execs[w] = NULL;
        PC_TRY(pc_exec_create(&s->ws[w].view, e->batch, &e->exec, &e->execs[w]));
    }
    return PC_OK;
}

static pc_status setup_exchange(pc_local_sgd *s) {
    int R = s->ranks;
    s->chunk_counts = calloc(R, sizeof(int));
    s->chunk_displs = calloc(R, sizeof(int));
    s->send_counts = calloc(R, sizeof(int));
    s->send_displs = calloc(R, sizeof(int));
    s->recv_counts = calloc(R, sizeof(int));
    s->recv_displs = calloc(R, sizeof(int));
    if (!s->chunk_counts || !s->chunk_displs || !s->send_counts || !s->send_displs ||
        !s->recv_counts || !s->recv_displs)
        return pc_fail_nomem();
    if ((int64_t)s->local * s->avg_len > (1LL << 31) - 1)
        return pc_fail(PC_ERR_USAGE, "model too large for one averaging message");
    for (int d = 0; d < R; d++) {
        int64_t b, e;
        pc_split_range(s->avg_len, R, d, 16, &b, &e);
        s->chunk_displs[d] = (int)b;
        s->chunk_counts[d] = (int)(e - b);
    }
    int mine = s->chunk_counts[s->rank];
    for (int d = 0, so = 0, ro = 0; d < R; d++) {
        s->send_counts[d] = s->local * s->chunk_counts[d];
        s->send_displs[d] = so;
        so += s->send_counts[d];
        s->recv_counts[d] = s->local * mine;
        s->recv_displs[d] = ro;
        ro += s->recv_counts[d];
    }
    s->send = pc_alloc(sizeof(float) * s->local * s->avg_len);
    s->recv = pc_alloc(sizeof(float) * ((int64_t)s->cfg.replicas * mine + 1));
    s->avg = pc_alloc(sizeof(float) * s->avg_len);
    return s->send && s->recv && s->avg ? PC_OK : pc_fail_nomem();
}

pc_status pc_local_sgd_create(const pc_local_sgd_config *cfg, pc_local_sgd **out) {
    *out = NULL;
    pc_local_sgd *s = calloc(1, sizeof *s);
    if (!s) return pc_fail_nomem();
    *out = s;
    s->cfg = *cfg;
    s->ranks = pc_comm_size(cfg->comm);
    s->rank = pc_comm_rank(cfg->comm);
    s->workers = cfg->engine->workers;
    s->local = cfg->replicas / s->ranks;
    s->n = cfg->model->n_params;
    s->nb = cfg->model->n_buffers;
    s->len = s->n + s->nb + cfg->opt_state_n;
    s->avg_len = s->n + s->nb + (cfg->average_opt_state ? cfg->opt_state_n : 0);
    s->state = pc_alloc(sizeof(float) * s->local * (s->len ? s->len : 1));
    s->ws = calloc(s->workers, sizeof *s->ws);
    if (!s->state || !s->ws) return pc_fail_nomem();
    int depth = pc_tree_depth((pc_tree_node){0, cfg->shards / cfg->replicas});
    for (int w = 0; w < s->workers; w++) PC_TRY(alloc_worker(s, &s->ws[w], depth));
    PC_TRY(rebuild_execs(s));
    return s->ranks > 1 ? setup_exchange(s) : PC_OK;
}

void pc_local_sgd_destroy(pc_local_sgd *s) {
    if (!s) return;
    int depth = pc_tree_depth((pc_tree_node){0, s->cfg.shards / s->cfg.replicas});
    for (int w = 0; s->ws && w < s->workers; w++) {
        pc_free(s->ws[w].grad);
        for (int d = 0; s->ws[w].tmp && d < depth; d++) pc_free(s->ws[w].tmp[d]);
        free(s->ws[w].tmp);
    }
    free(s->ws);
    pc_free(s->state);
    free(s->chunk_counts);
    free(s->chunk_displs);
    free(s->send_counts);
    free(s->send_displs);
    free(s->recv_counts);
    free(s->recv_displs);
    pc_free(s->send);
    pc_free(s->recv);
    pc_free(s->avg);
    free(s);
}

/* Point every worker's view at the averaged model (evaluation reads it). */
static void views_on_model(pc_local_sgd *s) {
    for (int w = 0; w < s->workers; w++) {
        s->ws[w].view.params = s->cfg.model->params;
        s->ws[w].view.buffers = s->cfg.model->buffers;
    }
}

int64_t pc_local_sgd_state_size(const pc_local_sgd *s) { return (int64_t)s->cfg.replicas * s->len; }

void pc_local_sgd_start(pc_local_sgd *s, const float *states) {
    const pc_model *m = s->cfg.model;
    for (int j = 0; j < s->local; j++) {
        float *st = replica_state(s, j);
        int r = s->rank * s->local + j;
        if (states) {
            memcpy(st, states + (int64_t)r * s->len, sizeof(float) * s->len);
            continue;
        }
        memcpy(st, m->params, sizeof(float) * s->n);
        memcpy(st + s->n, m->buffers, sizeof(float) * s->nb);
        memset(st + s->n + s->nb, 0, sizeof(float) * s->cfg.opt_state_n);
    }
    views_on_model(s);
}

/* Sum the gradients of shards [node.lo, node.hi) into out along the tree. */
static void reduce_node(pc_local_sgd *s, int w, pc_tree_node node, float *out, int level) {
    const pc_local_step *st = s->cur;
    if (node.hi - node.lo == 1) {
        st->leaf(st->ctx, w, node.lo, out);
        return;
    }
    int mid = pc_tree_mid(node);
    float *right = s->ws[w].tmp[level];
    reduce_node(s, w, (pc_tree_node){node.lo, mid}, out, level + 1);
    reduce_node(s, w, (pc_tree_node){mid, node.hi}, right, level + 1);
    for (int64_t i = 0; i < s->n; i++) out[i] += right[i];
}

/* Running statistics of one replica, folded in shard order as the trainer does for
 * the whole batch: new = (1-m) old + m batch, with the unbiased batch variance. */
static void fold_bn_stats(const pc_local_sgd *s, float *buffers, int first, int last) {
    const pc_model *m = s->cfg.model;
    const pc_local_step *step = s->cur;
    for (int shard = first; shard < last; shard++) {
        const float *st = step->shard_bn(step->ctx, shard);
        for (int i = 0; i < m->n_layers; i++) {
            const pc_layer *l = &m->layers[i];
            if (l->kind != PC_L_BN) continue;
            float *rmean = buffers + l->buffer_off, *rvar = rmean + l->c;
            double count = (double)step->shard_size * l->h * l->w;
            float unbias = (float)(count / (count > 1 ? count - 1 : 1));
            for (int c = 0; c < l->c; c++) {
                rmean[c] = (1 - l->momentum) * rmean[c] + l->momentum * st[c];
                rvar[c] = (1 - l->momentum) * rvar[c] + l->momentum * st[l->c + c] * unbias;
            }
            st += 2 * l->c;
        }
    }
}

/* One step of local replica j on worker w: its shards' gradient (the leaf scales each by
 * 1/B; times R gives the mean over the replica's B/R samples), the optimizer on all of
 * its parameters, its running statistics. */
static void step_replica(pc_local_sgd *s, int w, int j) {
    const pc_local_step *st = s->cur;
    const int R = s->cfg.replicas, r = s->rank * s->local + j;
    const int per = s->cfg.shards / R;
    worker_state *ws = &s->ws[w];
    float *state = replica_state(s, j);
    ws->view.params = state;
    ws->view.buffers = state + s->n;
    /* a version per step and replica: converted weights are reused only within them */
    pc_exec_weights_version(s->cfg.engine->execs[w], (uint64_t)st->step * R + r + 1);
    reduce_node(s, w, (pc_tree_node){r * per, (r + 1) * per}, ws->grad, 0);
    const float scale = (float)R;
    for (int64_t i = 0; i < s->n && R > 1; i++) ws->grad[i] *= scale;
    pc_opt_step(st->opt, st->groups, st->lr, st->step + 1, state, ws->grad,
                state + s->n + s->nb, s->n, 0, s->n);
    fold_bn_stats(s, state + s->n, r * per, (r + 1) * per);
}

static void local_step_job(int w, void *arg) {
    pc_local_sgd *s = arg;
    int first = w * s->local / s->workers, last = (w + 1) * s->local / s->workers;
    for (int j = first; j < last; j++) step_replica(s, w, j);
    pc_exec_weights_version(s->cfg.engine->execs[w], 0);
}

/* avg[i] = (((x_0[i] + x_1[i]) + x_2[i]) + ...) / R for i in [0, count), x_r at
 * src + r * stride. */
static void average_into(float *avg, const float *src, int64_t stride, int R, int64_t count) {
    for (int64_t i = 0; i < count; i++) {
        float sum = src[i];
        for (int r = 1; r < R; r++) sum += src[(int64_t)r * stride + i];
        avg[i] = sum / (float)R;
    }
}

/* The average of every replica's prefix [0, avg_len), into avg (every rank). */
static pc_status average_replicas(pc_local_sgd *s, float **avg) {
    const int R = s->cfg.replicas;
    if (s->ranks == 1) {
        /* block by block through a temporary: replica 0's state then holds the average */
        float *tmp = s->ws[0].grad;
        for (int64_t b = 0; b < s->avg_len; b += s->n ? s->n : 1) {
            int64_t count = PC_MIN(s->n ? s->n : 1, s->avg_len - b);
            average_into(tmp, s->state + b, s->len, R, count);
            memcpy(s->state + b, tmp, sizeof(float) * count);
        }
        *avg = s->state;
        return PC_OK;
    }
    /* reduce-scatter by alltoallv: rank d receives chunk d of every replica */
    for (int d = 0; d < s->ranks; d++)
        for (int j = 0; j < s->local; j++)
            memcpy(s->send + s->send_displs[d] + (int64_t)j * s->chunk_counts[d],
                   replica_state(s, j) + s->chunk_displs[d], sizeof(float) * s->chunk_counts[d]);
    PC_TRY(pc_comm_alltoallv(s->cfg.comm, s->send, s->send_counts, s->send_displs, s->recv,
                             s->recv_counts, s->recv_displs));
    int mine = s->chunk_counts[s->rank];
    average_into(s->avg + s->chunk_displs[s->rank], s->recv, mine, R, mine);
    PC_TRY(pc_comm_allgatherv(s->cfg.comm, s->avg, s->chunk_counts, s->chunk_displs));
    *avg = s->avg;
    return PC_OK;
}

/* Average the replicas into the model; with `commit`, every replica continues from the
 * average too (without: the run stops between two averages, the model is what it would
 * be, the replicas stay as they are for a resume). */
static pc_status synchronize(pc_local_sgd *s, int commit) {
    float *avg;
    if (!commit && s->ranks == 1) { /* average_replicas works in replica 0's state */
        average_into(s->ws[0].grad, s->state, s->len, s->cfg.replicas, s->n);
        memcpy(s->cfg.model->params, s->ws[0].grad, sizeof(float) * s->n);
        average_into(s->cfg.model->buffers, s->state + s->n, s->len, s->cfg.replicas, s->nb);
        return PC_OK;
    }
    PC_TRY(average_replicas(s, &avg));
    for (int j = 0; j < s->local && commit; j++)
        if (replica_state(s, j) != avg) memcpy(replica_state(s, j), avg, sizeof(float) * s->avg_len);
    memcpy(s->cfg.model->params, avg, sizeof(float) * s->n);
    memcpy(s->cfg.model->buffers, avg + s->n, sizeof(float) * s->nb);
    return PC_OK;
}

static int sync_due(const pc_local_sgd *s, int64_t done) {
    const pc_local_sgd_config *c = &s->cfg;
    return c->sync_every > 0 && (done % c->sync_every == 0 || done % c->steps_per_epoch == 0);
}

pc_status pc_local_sgd_step(pc_local_sgd *s, const pc_local_step *step) {
    s->cur = step;
    pc_pool_run(s->cfg.engine->pool, local_step_job, s);
    s->cur = NULL;
    views_on_model(s);
    int64_t done = step->step + 1;
    if (sync_due(s, done)) return synchronize(s, 1);
    return done == s->cfg.stop && s->cfg.sync_every > 0 ? synchronize(s, 0) : PC_OK;
}

pc_status pc_local_sgd_average(pc_local_sgd *s) { return synchronize(s, 0); }

pc_status pc_local_sgd_gather_state(pc_local_sgd *s, float *all) {
    int64_t os = s->len;
    memcpy(all + (int64_t)s->rank * s->local * os, s->state, sizeof(float) * s->local * os);
    if (s->ranks == 1) return PC_OK;
    int64_t *counts = calloc(s->ranks, sizeof(int64_t)), *displs = calloc(s->ranks, sizeof(int64_t));
    pc_status st = counts && displs ? PC_OK : pc_fail_nomem();
    for (int d = 0; d < s->ranks && st == PC_OK; d++) {
        counts[d] = (int64_t)sizeof(float) * s->local * os;
        displs[d] = counts[d] * d;
    }
    if (st == PC_OK) st = pc_comm_allgatherv_bytes(s->cfg.comm, all, counts, displs);
    free(counts);
    free(displs);
    return st;
}

/* ------------------------------------------------------------- fusion */

/* Fisher-Yates on x[0..n) with the stream keyed by key. */
static void shuffle(int64_t *x, int64_t n, uint64_t key) {
    pc_stream r = {.key = key};
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)pc_stream_below(&r, (uint64_t)(i + 1)), tmp = x[i];
        x[i] = x[j];
        x[j] = tmp;
    }
}

void pc_fusion_partition(uint64_t seed, int64_t n, int64_t *part) {
    for (int64_t i = 0; i < n; i++) part[i] = i;
    shuffle(part, n, pc_rand64(seed, PC_RNG_FUSION, 0, 0, 0));
}

void pc_fusion_epoch(uint64_t seed, int epoch, const int64_t *part, int64_t n, int R, int batch,
                     int64_t steps, int64_t *perm, int64_t *scratch) {
    const int64_t per = batch / R;
    for (int r = 0; r < R; r++) {
        int64_t begin = n * r / R, end = n * (r + 1) / R;
        memcpy(scratch, part + begin, sizeof(int64_t) * (end - begin));
        shuffle(scratch, end - begin, pc_rand64(seed, PC_RNG_FUSION, (uint64_t)epoch + 1, (uint64_t)r, 0));
        for (int64_t k = 0; k < steps; k++)
            memcpy(perm + k * batch + r * per, scratch + k * per, sizeof(int64_t) * per);
    }
}

void pc_fusion_load_replica(pc_local_sgd *s, const float *states, int r) {
    const float *st = states + (int64_t)r * s->len;
    memcpy(s->cfg.model->params, st, sizeof(float) * s->n);
    memcpy(s->cfg.model->buffers, st + s->n, sizeof(float) * s->nb);
}

/* The test metrics of the engine's model(s) into m, and their summary into score. */
static pc_status score_on(pc_engine *e, pc_comm *comm, const pc_fusion_eval *ev, pc_metrics *m,
                          pc_fusion_score *score) {
    PC_TRY(pc_engine_evaluate(e, comm, ev->test, ev->tta, m, NULL, NULL));
    *score = (pc_fusion_score){pc_metrics_accuracy(m), pc_metrics_loss(m), pc_metrics_macro_f1(m)};
    return PC_OK;
}

/* The replicas as one ensemble: an engine over views of the model on their states. */
static pc_status score_ensemble(pc_local_sgd *s, const pc_fusion_eval *ev, const float *states,
                                pc_metrics *m, pc_fusion_score *score) {
    const int R = s->cfg.replicas;
    const pc_engine *te = s->cfg.engine;
    pc_model *views = calloc(R, sizeof *views);
    if (!views) return pc_fail_nomem();
    for (int r = 0; r < R; r++) {
        views[r] = *s->cfg.model;
        views[r].params = (float *)states + (int64_t)r * s->len;
        views[r].buffers = views[r].params + s->n;
    }
    pc_engine *e = NULL;
    pc_status st = pc_engine_create(&views[0], te->workers, te->threads, te->batch, &te->exec,
                                    te->mean, te->std, &e);
    for (int r = 1; r < R && st == PC_OK; r++) st = pc_engine_add_member(e, &views[r]);
    if (st == PC_OK) st = score_on(e, s->cfg.comm, ev, m, score);
    pc_engine_destroy(e);
    free(views);
    return st;
}

pc_status pc_fusion_finish(pc_local_sgd *s, const pc_fusion_eval *ev, const float *states,
                           pc_metrics *fused, pc_fusion_result *out) {
    const int R = s->cfg.replicas;
    pc_model *model = s->cfg.model;
    pc_engine *e = s->cfg.engine;
    memset(out, 0, sizeof *out);
    out->replicas = R;
    out->replica = calloc(R, sizeof *out->replica);
    pc_metrics m;
    if (!out->replica || pc_metrics_init(&m, model->classes))
        return pc_fail_nomem();
    views_on_model(s);
    pc_status st = PC_OK;
    for (int r = 0; r < R && st == PC_OK; r++) {
        pc_fusion_load_replica(s, states, r);
        st = score_on(e, s->cfg.comm, ev, &m, &out->replica[r]);
    }
    if (st == PC_OK) st = score_ensemble(s, ev, states, &m, &out->ensemble);
    /* the average in replica order, as every sync of local SGD forms it */
    average_into(model->params, states, s->len, R, s->n);
    average_into(model->buffers, states + s->n, s->len, R, s->nb);
    if (st == PC_OK) st = score_on(e, s->cfg.comm, ev, ev->recalibrate > 0 ? &m : fused, &out->average);
    if (st == PC_OK && ev->recalibrate > 0) {
        st = pc_transfer_recalibrate(model, e, ev->train, ev->recalibrate, &out->recalibrated_images);
        if (st == PC_OK) st = score_on(e, s->cfg.comm, ev, fused, &out->recalibrated);
    }
    pc_metrics_free(&m);
    return st;
}

void pc_fusion_result_free(pc_fusion_result *r) {
    free(r->replica);
    r->replica = NULL;
}

static cJSON *score_json(const pc_fusion_score *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "test_accuracy", s->accuracy);
    cJSON_AddNumberToObject(o, "test_loss", s->loss);
    cJSON_AddNumberToObject(o, "macro_f1", s->macro_f1);
    return o;
}

void *pc_fusion_json(const pc_fusion_result *r) {
    cJSON *root = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(root, "replicas");
    for (int k = 0; k < r->replicas; k++) cJSON_AddItemToArray(list, score_json(&r->replica[k]));
    cJSON_AddItemToObject(root, "ensemble", score_json(&r->ensemble));
    cJSON_AddItemToObject(root, "average", score_json(&r->average));
    if (r->recalibrated_images > 0) {
        cJSON *o = score_json(&r->recalibrated);
        cJSON_AddNumberToObject(o, "images", (double)r->recalibrated_images);
        cJSON_AddItemToObject(root, "average_recalibrated", o);
    }
    cJSON_AddStringToObject(root, "saved", r->recalibrated_images > 0 ? "average_recalibrated" : "average");
    return root;
}

/* The whole of a small text file (malloc'ed), or NULL. */
static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *text = NULL;
    long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (len >= 0 && fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)len + 1))) {
        if (fread(text, 1, (size_t)len, f) == (size_t)len) text[len] = 0;
        else {
            free(text);
            text = NULL;
        }
    }
    fclose(f);
    return text;
}

/* root as DIR/NAME, atomically. */
static pc_status write_json(const cJSON *root, const char *dir, const char *name) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return pc_json_write(path, root);
}

pc_status pc_fusion_write(const pc_fusion_result *r, const char *dir) {
    cJSON *fusion = pc_fusion_json(r);
    pc_status st = write_json(fusion, dir, "fusion.json");
    char path[4200];
    snprintf(path, sizeof path, "%s/eval.json", dir);
    char *text = st == PC_OK ? read_text(path) : NULL;
    cJSON *eval = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (st == PC_OK && !eval) st = pc_fail(PC_ERR_IO, "%s: cannot read it back", path);
    if (st == PC_OK) {
        cJSON_AddItemToObject(eval, "fusion", fusion);
        fusion = NULL;
        st = write_json(eval, dir, "eval.json");
    }
    cJSON_Delete(eval);
    cJSON_Delete(fusion);
    return st;
}

void pc_fusion_print(const pc_fusion_result *r, FILE *f) {
    const char *fmt = "test accuracy %.4f, test loss %.4f, macro F1 %.4f\n";
    for (int k = 0; k < r->replicas; k++) {
        fprintf(f, "fusion: replica %d of %d alone: ", k + 1, r->replicas);
        fprintf(f, fmt, r->replica[k].accuracy, r->replica[k].loss, r->replica[k].macro_f1);
    }
    fprintf(f, "fusion: ensemble of the %d replicas (probabilities averaged): ", r->replicas);
    fprintf(f, fmt, r->ensemble.accuracy, r->ensemble.loss, r->ensemble.macro_f1);
    fprintf(f, "fusion: weight average, batch-norm statistics averaged: ");
    fprintf(f, fmt, r->average.accuracy, r->average.loss, r->average.macro_f1);
    if (r->recalibrated_images > 0) {
        fprintf(f, "fusion: weight average, batch-norm statistics recomputed on %lld training "
                "images: ", (long long)r->recalibrated_images);
        fprintf(f, fmt, r->recalibrated.accuracy, r->recalibrated.loss, r->recalibrated.macro_f1);
    }
    fflush(f);
}

/* ------------------------------------------------------------- traffic */

void pc_traffic_begin(pc_comm *c, pc_traffic *mark) {
    pc_comm_traffic(c, &mark->bytes, &mark->messages);
}

pc_status pc_traffic_end(pc_comm *c, const pc_traffic *mark, pc_traffic *epoch) {
    int64_t mine[2], R = pc_comm_size(c);
    pc_comm_traffic(c, &mine[0], &mine[1]);
    mine[0] -= mark->bytes;
    mine[1] -= mark->messages;
    *epoch = (pc_traffic){mine[0], mine[1]};
    if (R == 1) return PC_OK;
    int64_t *all = calloc(R, sizeof mine);
    if (!all) return pc_fail_nomem();
    pc_status st = pc_comm_allgather_bytes(c, mine, sizeof mine, all);
    if (st == PC_OK) {
        *epoch = (pc_traffic){0, 0};
        for (int r = 0; r < R; r++) {
            epoch->bytes += all[2 * r];
            epoch->messages += all[2 * r + 1];
        }
    }
    free(all);
    return st;
}
