/* Deterministic gradient reduction over the fixed shard tree (train/tree.h),
 * across the workers of a process and across MPI ranks.
 *
 * S shards, R ranks, W workers per rank: global worker slot r*W + w owns shards
 * [slot*S/(R*W), (slot+1)*S/(R*W)). A step runs:
 *   1. pc_reducer_compute (every worker): sums its maximal tree nodes, calling the
 *      leaf function for each shard;
 *   2. pc_reducer_combine_local (every worker, on its chunk of the parameters): the
 *      tree nodes covering this rank's shard range, from its workers' nodes;
 *   3. with R > 1: pc_reducer_exchange (main thread): a reduce-scatter by alltoallv,
 *      each rank receiving its chunk of every rank's nodes; pc_reducer_combine_global
 *      (every worker, on part of the rank's chunk): the rest of the tree; and
 *      pc_reducer_allgather (main thread);
 *   4. pc_reducer_gradient: the summed gradient, identical on every rank.
 * The sums are grouped by the tree alone, so the bits do not depend on R or W. */
#ifndef PC_REDUCE_H
#define PC_REDUCE_H

#include <stdint.h>

#include "core/common.h"
#include "dist/comm.h"

typedef struct pc_reducer pc_reducer;

/* Computes the gradient of one shard into out (n floats, overwritten). */
typedef void (*pc_leaf_fn)(void *ctx, int worker, int shard, float *out);

pc_status pc_reducer_create(int shards, int workers, int64_t n, pc_comm *comm,
                            pc_reducer **out);
void pc_reducer_destroy(pc_reducer *r);

/* This rank's shard range [*first, *last). */
void pc_reducer_rank_shards(const pc_reducer *r, int *first, int *last);

void pc_reducer_compute(pc_reducer *r, int worker, pc_leaf_fn leaf, void *ctx);
void pc_reducer_combine_local(pc_reducer *r, int worker);
pc_status pc_reducer_exchange(pc_reducer *r);
void pc_reducer_combine_global(pc_reducer *r, int worker);
pc_status pc_reducer_allgather(pc_reducer *r);
int pc_reducer_needs_exchange(const pc_reducer *r);
float *pc_reducer_gradient(pc_reducer *r);

#endif
