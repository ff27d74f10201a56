#include "train/engine.h"

#include <stdlib.h>
#include <math.h>
#include <string.h>

pc_status pc_engine_create(pc_model *model, int workers, int threads, int batch,
                           pc_kernel_set kernels, pc_engine **out) {
    *out = NULL;
    pc_engine *e = calloc(1, sizeof *e);
    if (!e) return pc_fail(PC_ERR_NOMEM, "out of memory");
    e->model = model;
    e->workers = workers;
    e->threads = threads;
    e->batch = batch;
    for (int c = 0; c < 4; c++) e->std[c] = 1.0f;
    e->execs = calloc(workers, sizeof(pc_exec *));
    if (!e->execs) {
        free(e);
        return pc_fail(PC_ERR_NOMEM, "out of memory");
    }
    pc_status st = pc_pool_create(workers, threads, &e->pool);
    /* Each replica is created on its own worker thread's behalf but from here: plans
     * are plain data and carry no thread affinity. */
    for (int w = 0; w < workers && st == PC_OK; w++)
        st = pc_exec_create(model, batch, kernels, &e->execs[w]);
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
    for (int w = 0; e->execs && w < e->workers; w++) pc_exec_destroy(e->execs[w]);
    free(e->execs);
    free(e);
}

typedef struct {
    pc_engine *e;
    const pc_dataset *d;
    int64_t chunks;
    double *chunk_loss;
    int32_t *pred;
    float *probs;      /* optional output */
    float **scratch;   /* per worker: batch x classes probabilities */
} eval_job;

static void eval_worker(int w, void *arg) {
    eval_job *j = arg;
    pc_engine *e = j->e;
    pc_exec *ex = e->execs[w];
    int classes = e->model->classes, batch = e->batch;
    int64_t idx[batch];
    int32_t labels[batch];
    for (int64_t ch = w; ch < j->chunks; ch += e->workers) {
        int64_t first = ch * batch;
        int valid = (int)PC_MIN((int64_t)batch, j->d->n - first);
        for (int i = 0; i < batch; i++) idx[i] = i < valid ? first + i : first;
        pc_dataset_gather(j->d, idx, batch, e->mean, e->std, pc_exec_input(ex), labels);
        pc_exec_forward(ex, 0, 0, 0, 0, NULL);
        float *p = j->scratch[w];
        pc_exec_probs(ex, p);
        double loss = 0;
        for (int i = 0; i < valid; i++) {
            const float *pi = p + (int64_t)i * classes;
            int best = 0;
            for (int k = 1; k < classes; k++)
                if (pi[k] > pi[best]) best = k;
            j->pred[first + i] = best;
            float pt = pi[labels[i]];
            loss += -log((double)(pt > 1e-30f ? pt : 1e-30f));
            if (j->probs) memcpy(j->probs + (first + i) * classes, pi, sizeof(float) * classes);
        }
        j->chunk_loss[ch] = loss;
    }
}

pc_status pc_engine_evaluate(pc_engine *e, const pc_dataset *d, pc_metrics *metrics,
                             int32_t *predictions, float *probs) {
    eval_job j = {.e = e, .d = d, .probs = probs};
    j.chunks = (d->n + e->batch - 1) / e->batch;
    j.chunk_loss = calloc(j.chunks ? j.chunks : 1, sizeof(double));
    j.pred = predictions ? predictions : malloc(sizeof(int32_t) * (d->n ? d->n : 1));
    j.scratch = calloc(e->workers, sizeof(float *));
    int ok = j.chunk_loss && j.pred && j.scratch;
    for (int w = 0; ok && w < e->workers; w++)
        ok = (j.scratch[w] = malloc(sizeof(float) * e->batch * e->model->classes)) != NULL;
    if (ok && d->n > 0) pc_pool_run(e->pool, eval_worker, &j);
    if (ok) {
        memset(metrics->confusion, 0, sizeof(int64_t) * metrics->classes * metrics->classes);
        metrics->n = d->n;
        metrics->loss_sum = 0;
        for (int64_t ch = 0; ch < j.chunks; ch++) metrics->loss_sum += j.chunk_loss[ch];
        for (int64_t i = 0; i < d->n; i++)
            metrics->confusion[(int64_t)d->labels[i] * metrics->classes + j.pred[i]]++;
    }
    for (int w = 0; j.scratch && w < e->workers; w++) free(j.scratch[w]);
    free(j.scratch);
    free(j.chunk_loss);
    if (!predictions) free(j.pred);
    return ok ? PC_OK : pc_fail(PC_ERR_NOMEM, "out of memory during evaluation");
}
