#include "train/engine.h"

#include <stdlib.h>
#include <math.h>
#include <string.h>

pc_status pc_engine_create(pc_model *model, int workers, int threads, int batch,
                           const pc_exec_options *exec, const float *mean, const float *std,
                           pc_engine **out) {
    *out = NULL;
    pc_engine *e = calloc(1, sizeof *e);
    if (!e) return pc_fail_nomem();
    e->model = model;
    e->workers = workers;
    e->threads = threads;
    e->batch = batch;
    e->members = 1;
    if (exec) e->exec = *exec;
    for (int c = 0; c < 4; c++) {
        e->mean[c] = mean ? mean[c] : 0.0f;
        e->std[c] = std ? std[c] : 1.0f;
    }
    e->execs = calloc(workers, sizeof(pc_exec *));
    if (!e->execs) {
        free(e);
        return pc_fail_nomem();
    }
    pc_status st = pc_pool_create(workers, threads, &e->pool);
    /* Each replica is created on its own worker thread's behalf but from here: plans
     * are plain data and carry no thread affinity. */
    for (int w = 0; w < workers && st == PC_OK; w++)
        st = pc_exec_create(model, batch, &e->exec, &e->execs[w]);
    if (st != PC_OK) {
        pc_engine_destroy(e);
        return st;
    }
    *out = e;
    return PC_OK;
}

void pc_engine_destroy(pc_engine *e) {
    if (!e) return;
    if (e->pool) pc_pool_destroy(e->pool);
    for (int k = 0; e->execs && k < e->members * e->workers; k++) pc_exec_destroy(e->execs[k]);
    free(e->execs);
    free(e);
}

pc_status pc_engine_add_member(pc_engine *e, pc_model *model) {
    const pc_layer *a = &e->model->layers[0], *b = &model->layers[0];
    if (a->c != b->c || a->h != b->h || a->w != b->w || e->model->classes != model->classes)
        return pc_fail(PC_ERR_USAGE, "ensemble member %s takes %dx%dx%d images to %d classes, "
                       "the first member %dx%dx%d to %d", model->name, b->c, b->h, b->w,
                       model->classes, a->c, a->h, a->w, e->model->classes);
    int n = (e->members + 1) * e->workers;
    pc_exec **execs = realloc(e->execs, sizeof(pc_exec *) * n);
    if (!execs) return pc_fail_nomem();
    e->execs = execs;
    for (int k = e->members * e->workers; k < n; k++) execs[k] = NULL;
    e->members++; /* counted now, so that destroy frees a partly built member */
    for (int k = n - e->workers; k < n; k++)
        PC_TRY(pc_exec_create(model, e->batch, &e->exec, &execs[k]));
    return PC_OK;
}

/* One replica's probabilities, averaged over the views of tta. */
static pc_status replica_probs(const pc_engine *e, pc_exec *ex, const pc_tta *tta,
                          const float *inputs, float *probs, float *scratch) {
    const pc_layer *in = &e->model->layers[0];
    int64_t sample = (int64_t)in->c * in->h * in->w, n = (int64_t)e->batch * e->model->classes;
    int views = pc_tta_views(tta);
    for (int v = 0; v < views; v++) {
        float *x = pc_exec_input(ex);
        for (int i = 0; i < e->batch; i++)
            pc_tta_view(tta, v, in->c, in->h, in->w, inputs + i * sample, x + i * sample);
        pc_exec_forward(ex, 0, 0, 0, 0, NULL);
        PC_TRY(pc_exec_status(ex));
        if (views == 1) {
            pc_exec_probs(ex, probs);
            return PC_OK;
        }
        pc_exec_probs(ex, scratch);
        float weight = pc_tta_weight(tta, v);
        for (int64_t k = 0; k < n; k++) probs[k] = (v ? probs[k] : 0.0f) + weight * scratch[k];
    }
    return PC_OK;
}

pc_status pc_engine_probs(pc_engine *e, int w, const pc_tta *tta, const float *inputs,
                          float *probs, float *scratch) {
    if (e->members == 1) return replica_probs(e, e->execs[w], tta, inputs, probs, scratch);
    int64_t n = (int64_t)e->batch * e->model->classes;
    float weight = 1.0f / (float)e->members, *one = scratch;
    for (int m = 0; m < e->members; m++) {
        PC_TRY(replica_probs(e, e->execs[m * e->workers + w], tta, inputs, one, scratch + n));
        for (int64_t k = 0; k < n; k++) probs[k] = (m ? probs[k] : 0.0f) + weight * one[k];
    }
    return PC_OK;
}

typedef struct {
    pc_engine *e;
    const pc_dataset *d;
    const pc_tta *tta;
    int64_t first_chunk, chunks;  /* this rank's chunks */
    double *chunk_loss;           /* per chunk of this rank */
    int32_t *pred;                /* per sample of d */
    float *probs;                 /* optional output */
    float **inputs;               /* per worker: one normalized batch */
    float **scratch;              /* per worker: 3 x batch x classes probabilities */
    pc_error_slot error;          /* a sample that could not be gathered, a kernel failure */
} eval_job;

static void eval_worker(int w, void *arg) {
    eval_job *j = arg;
    pc_engine *e = j->e;
    int classes = e->model->classes, batch = e->batch;
    int64_t idx[batch];
    int32_t labels[batch];
    for (int64_t k = w; k < j->chunks; k += e->workers) {
        int64_t first = (j->first_chunk + k) * batch;
        int valid = (int)PC_MIN((int64_t)batch, j->d->n - first);
        for (int i = 0; i < batch; i++) idx[i] = i < valid ? first + i : first;
        pc_status s = pc_dataset_gather(j->d, idx, batch, e->mean, e->std, j->inputs[w], labels);
        if (s != PC_OK) {
            pc_error_slot_set(&j->error, s);
            return;
        }
        float *p = j->scratch[w];
        s = pc_engine_probs(e, w, j->tta, j->inputs[w], p, p + (int64_t)batch * classes);
        if (s != PC_OK) {
            pc_error_slot_set(&j->error, s);
            return;
        }
        double loss = 0;
        for (int i = 0; i < valid; i++) {
            const float *pi = p + (int64_t)i * classes;
            int best = 0;
            for (int c = 1; c < classes; c++)
                if (pi[c] > pi[best]) best = c;
            j->pred[first + i] = best;
            float pt = pi[labels[i]];
            loss += -log((double)(pt > 1e-30f ? pt : 1e-30f));
            if (j->probs) memcpy(j->probs + (first + i) * classes, pi, sizeof(float) * classes);
        }
        j->chunk_loss[k] = loss;
    }
}

/* Sum the ranks' confusion matrices (integers: exact in any order) and their chunk
 * losses in chunk order (so the loss does not depend on the rank count). */
static pc_status merge_ranks(pc_comm *comm, int64_t total_chunks, const eval_job *j,
                             pc_metrics *m) {
    int R = pc_comm_size(comm);
    int64_t cells = (int64_t)m->classes * m->classes, most = (total_chunks + R - 1) / R;
    size_t bytes = sizeof(int64_t) * cells + sizeof(double) * most;
    char *mine = calloc(1, bytes), *all = calloc(R, bytes);
    if (!mine || !all || bytes > (1u << 30)) {
        free(mine);
        free(all);
        return pc_fail(PC_ERR_NOMEM, "out of memory merging evaluation results");
    }
    memcpy(mine, m->confusion, sizeof(int64_t) * cells);
    memcpy(mine + sizeof(int64_t) * cells, j->chunk_loss, sizeof(double) * j->chunks);
    pc_status st = pc_comm_allgather_bytes(comm, mine, (int)bytes, all);
    if (st == PC_OK) {
        memset(m->confusion, 0, sizeof(int64_t) * cells);
        m->loss_sum = 0;
        for (int r = 0; r < R; r++) {
            const int64_t *conf = (const int64_t *)(all + r * bytes);
            const double *loss = (const double *)(all + r * bytes + sizeof(int64_t) * cells);
            for (int64_t c = 0; c < cells; c++) m->confusion[c] += conf[c];
            int64_t first = total_chunks * r / R, last = total_chunks * (r + 1) / R;
            for (int64_t k = 0; k < last - first; k++) m->loss_sum += loss[k];
        }
    }
    free(mine);
    free(all);
    return st;
}

/* The kept scores: each rank filled its chunks' samples; every rank gets all of them. */
static pc_status share_scores(pc_comm *comm, int64_t total_chunks, int batch, const pc_dataset *d,
                              pc_metrics *m) {
    memcpy(m->labels, d->labels, sizeof(int32_t) * d->n);
    int R = pc_comm_size(comm);
    if (R == 1) return PC_OK;
    int64_t *counts = malloc(sizeof(int64_t) * 2 * R), *displs = counts + R;
    if (!counts) return pc_fail_nomem();
    int64_t row = sizeof(float) * (int64_t)m->classes;
    for (int r = 0; r < R; r++) {
        int64_t begin = PC_MIN(d->n, total_chunks * r / R * batch);
        int64_t end = PC_MIN(d->n, total_chunks * (r + 1) / R * batch);
        displs[r] = begin * row;
        counts[r] = (end - begin) * row;
    }
    pc_status st = pc_comm_allgatherv_bytes(comm, m->scores, counts, displs);
    free(counts);
    return st;
}

pc_status pc_engine_evaluate(pc_engine *e, pc_comm *comm, const pc_dataset *d, const pc_tta *tta,
                             pc_metrics *metrics, int32_t *predictions, float *probs) {
    int R = pc_comm_size(comm), rank = pc_comm_rank(comm);
    int64_t total = (d->n + e->batch - 1) / e->batch;
    if (metrics->scores && metrics->scores_cap < d->n)
        return pc_fail(PC_ERR_NOMEM, "evaluation: room for %lld scores, %lld samples",
                       (long long)metrics->scores_cap, (long long)d->n);
    eval_job j = {.e = e, .d = d, .tta = tta, .probs = probs ? probs : metrics->scores};
    j.first_chunk = total * rank / R;
    j.chunks = total * (rank + 1) / R - j.first_chunk;
    j.chunk_loss = calloc(j.chunks ? j.chunks : 1, sizeof(double));
    j.pred = predictions ? predictions : malloc(sizeof(int32_t) * (d->n ? d->n : 1));
    j.inputs = calloc(e->workers, sizeof(float *));
    j.scratch = calloc(e->workers, sizeof(float *));
    int ok = j.chunk_loss && j.pred && j.inputs && j.scratch;
    size_t input_bytes = sizeof(float) * e->batch * d->c * d->h * d->w;
    for (int w = 0; ok && w < e->workers; w++)
        ok = (j.inputs[w] = malloc(input_bytes)) != NULL &&
             (j.scratch[w] = malloc(3 * sizeof(float) * e->batch * e->model->classes)) != NULL;
    pc_status st = ok ? PC_OK : pc_fail(PC_ERR_NOMEM, "out of memory during evaluation");
    pc_error_slot_init(&j.error);
    if (st == PC_OK && j.chunks > 0) pc_pool_run(e->pool, eval_worker, &j);
    if (st == PC_OK) st = pc_error_slot_take(&j.error);
    pc_error_slot_destroy(&j.error);
    if (st == PC_OK) {
        int64_t begin = j.first_chunk * e->batch, end = PC_MIN(d->n, (j.first_chunk + j.chunks) * e->batch);
        memset(metrics->confusion, 0, sizeof(int64_t) * metrics->classes * metrics->classes);
        metrics->n = d->n;
        metrics->loss_sum = 0;
        for (int64_t k = 0; k < j.chunks; k++) metrics->loss_sum += j.chunk_loss[k];
        for (int64_t i = begin; i < end; i++)
            metrics->confusion[(int64_t)d->labels[i] * metrics->classes + j.pred[i]]++;
        if (R > 1) st = merge_ranks(comm, total, &j, metrics);
        if (st == PC_OK && metrics->scores) st = share_scores(comm, total, e->batch, d, metrics);
    }
    for (int w = 0; j.scratch && w < e->workers; w++) free(j.scratch[w]);
    for (int w = 0; j.inputs && w < e->workers; w++) free(j.inputs[w]);
    free(j.scratch);
    free(j.inputs);
    free(j.chunk_loss);
    if (!predictions) free(j.pred);
    return st;
}
