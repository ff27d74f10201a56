/* --sync ps: a parameter server over MPI.
 *
 * Of P ranks, the first G = P - S compute gradients ("worker ranks", rank g owning shards
 * [g*Sh/G, (g+1)*Sh/G) of every global batch of Sh shards, as allreduce on G ranks) and
 * the last S = --servers hold the parameters in chunks (server s: chunk s of
 * pc_split_range over S) with their optimizer state. A step:
 *   worker g: pull (the weights the step is computed on) -> compute its shards, sum them
 *             along the fixed tree into the nodes covering its range -> push chunk s of
 *             those node sums to server s;
 *   server s: receive every worker's nodes for its chunk, sum them along the rest of the
 *             tree, take the optimizer step on its chunk, send the new chunk (the next
 *             version of the weights) to every worker;
 *   all ranks: allgather the shards' records (loss, correct count, batch-norm statistics),
 *             so every rank folds the running statistics in shard order. The servers
 *             update after the step's collectives (pc_ps_queue), so the worker ranks
 *             go on meanwhile.
 * Synchronous (staleness 0), step t is computed on the weights after t updates: the same
 * sums and the same element-wise update as allreduce on G ranks, so the same bytes.
 * --staleness N: step t is computed on the weights after max(t - N, b) updates, b the
 * pipeline's start (the run's start and every epoch's end, where the ranks meet to
 * evaluate and save): the workers compute N steps ahead of the servers' updates, a fixed
 * schedule, so every run gives the same bytes. --async: each server applies every
 * worker's push on its own as it arrives (an optimizer step per push, the gradient the
 * mean over the worker's B/G samples) and replies with its current chunk; the order
 * depends on timing, so runs are not reproducible. */
#ifndef PC_PS_H
#define PC_PS_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "optim/optim.h"
#include "train/reduce.h"

typedef struct pc_ps pc_ps;

typedef struct {
    pc_comm *comm;
    float *params;         /* n floats on every rank (each rank's copy of the model) */
    int64_t n;
    pc_reducer *red;       /* worker ranks: the group reducer (rank g of G) */
    int shards, servers, staleness, async;
    size_t rec_size;       /* bytes of one shard's record */
} pc_ps_config;

pc_status pc_ps_create(const pc_ps_config *cfg, pc_ps **out);
void pc_ps_destroy(pc_ps *ps);
int pc_ps_is_server(const pc_ps *ps);
/* The pipeline starts at step `step` (the run's first): the weights are those of `step`. */
void pc_ps_start(pc_ps *ps, int64_t step);

/* Worker ranks, before computing step `step`: the weights it is computed on. */
pc_status pc_ps_pull(pc_ps *ps, int64_t step);
/* Worker ranks, after the local reduction of step `step`: send the node sums. */
pc_status pc_ps_push(pc_ps *ps, int64_t step);

typedef struct {
    const pc_opt_config *opt;
    const pc_opt_groups *groups;
    float lr;
    int64_t step;          /* updates done before this step */
    float *opt_state;      /* the optimizer state (per-parameter arrays of n floats) */
} pc_ps_update;
/* Server ranks: the update of one step, taken at the next pc_ps_flush or pc_ps_drain
 * (after the step's collectives, so that the worker ranks need not wait for it there). */
void pc_ps_queue(pc_ps *ps, const pc_ps_update *u);
/* Server ranks: take the queued update (nothing elsewhere or when none is queued). Call it
 * before anything the update reads (learning rate, parameter roles) changes. */
pc_status pc_ps_flush(pc_ps *ps);

/* Every rank: the shards' records, each worker rank's own into the table of all. */
pc_status pc_ps_share_records(pc_ps *ps, char *records);
/* The end of a pipeline (an epoch's end, a checkpoint): the servers take the queued
 * update and complete their sends; the workers receive every version up to `step`. */
pc_status pc_ps_drain(pc_ps *ps, int64_t step);
/* Every rank: each server's chunk of `arrays` arrays of n floats (the parameters, the
 * optimizer state) to every rank. */
pc_status pc_ps_share_chunks(pc_ps *ps, float *data, int arrays);

#endif
