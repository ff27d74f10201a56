/* An engine: a model, a team of workers and one replica (pc_exec) per worker, all
 * with the same fixed batch size. Training, evaluation and prediction run on it. For
 * evaluation and prediction it can hold an ensemble: more models of the same input and
 * classes, each with its own replicas, whose probabilities are averaged. */
#ifndef PC_ENGINE_H
#define PC_ENGINE_H

#include "data/dataset.h"
#include "data/tta.h"
#include "comm/comm.h"
#include "nn/exec.h"
#include "nn/model.h"
#include "train/metrics.h"
#include "train/pool.h"

typedef struct {
    pc_model *model;       /* not owned; the first member of an ensemble */
    pc_pool *pool;
    pc_exec **execs;       /* members x workers: member m's replica of worker w at
                              m * workers + w (training uses member 0's) */
    int workers, threads, batch, members;
    pc_exec_options exec;  /* of every replica */
    float mean[4], std[4]; /* input normalization per channel */
} pc_engine;

/* exec: kernels, precision and convolution algorithm of every replica (NULL: the
 * defaults). mean and std: the input normalization per channel (at most 4) the engine
 * applies to the images it gathers; NULL for none. */
pc_status pc_engine_create(pc_model *model, int workers, int threads, int batch,
                           const pc_exec_options *exec, const float *mean, const float *std,
                           pc_engine **out);
void pc_engine_destroy(pc_engine *e);
/* Add a model (not owned) to the ensemble, run with the engine's exec options: it must
 * take the same input and have the same number of classes as the first. */
pc_status pc_engine_add_member(pc_engine *e, pc_model *model);

/* Softmax probabilities (batch x classes) of one batch of normalized inputs (NCHW, the
 * engine's batch size) on worker w's replicas, averaged over the views of tta (NULL or
 * off: the inputs alone) in view order, then over the members in member order; scratch
 * holds 2 x batch x classes floats. Fails when a kernel does (out of memory inside oneDNN). */
pc_status pc_engine_probs(pc_engine *e, int w, const pc_tta *tta, const float *inputs,
                          float *probs, float *scratch);

/* Evaluate on all of d in chunks of `batch` (the last one padded), each chunk on
 * exactly one rank and worker, with test-time augmentation tta (NULL: none): fills
 * metrics (confusion, loss, and the kept scores of pc_metrics_keep_scores: the same on
 * every rank) and, when non-NULL, this rank's
 * predicted classes and probabilities (n x classes). Results do not depend on the rank
 * or worker count. */
pc_status pc_engine_evaluate(pc_engine *e, pc_comm *comm, const pc_dataset *d, const pc_tta *tta,
                             pc_metrics *metrics, int32_t *predictions, float *probs);

#endif
