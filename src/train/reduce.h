/* Deterministic gradient reduction over the fixed shard tree (train/tree.h),
 * across the workers of a process and across MPI ranks.
 *
 * S shards, R ranks, W workers per rank: global worker slot r*W + w owns shards
 * [slot*S/(R*W), (slot+1)*S/(R*W)). A step runs:
 *   1. pc_reducer_compute (every worker): sums its maximal tree nodes, calling the
 *      leaf function for each shard;
 *   2. pc_reducer_combine_local (every worker, on its chunk of the parameters): the
 *      tree nodes covering this rank's shard range, from its workers' nodes;
 *   3. with R > 1: pc_reducer_exchange (main thread): a reduce-scatter, each rank
 *      receiving its chunk of every rank's nodes (point-to-point transfers started
 *      during step 1, so that they overlap backward, the rest after step 2, all waited
 *      for here; with the ranks on one machine sharing memory, a fence after which each
 *      rank reads the others' nodes in place); pc_reducer_combine_global
 *      (every worker, on part of the rank's chunk): the rest of the tree;
 *   4. pc_reducer_gradient: the summed gradient; with R > 1 only this rank's chunk
 *      (pc_reducer_chunk) is valid: the caller updates that chunk of the parameters and
 *      shares it with pc_reducer_allgather_chunks (ZeRO-1 style: each rank keeps the
 *      optimizer state of its chunk current).
 * The sums are grouped by the tree alone, so the bits do not depend on R or W. */
#ifndef PC_REDUCE_H
#define PC_REDUCE_H

#include <stdint.h>

#include "core/common.h"
#include "comm/comm.h"
#include "train/tree.h"

typedef struct pc_reducer pc_reducer;

/* Computes the gradient of one shard into out (n floats, overwritten). */
typedef void (*pc_leaf_fn)(void *ctx, int worker, int shard, float *out);

/* shared: when every rank runs on this machine, exchange through shared memory
 * (pc_comm_shared_alloc) instead of messages. */
pc_status pc_reducer_create(int shards, int workers, int64_t n, pc_comm *comm, int shared,
                            pc_reducer **out);
void pc_reducer_destroy(pc_reducer *r);
/* Only the local part, for rank `rank` of a group of `ranks` that exchanges its sums
 * some other way (the parameter server): compute and combine_local; the sums of the
 * nodes covering this rank's shards are then in pc_reducer_rank_cover. */
pc_status pc_reducer_create_group(int shards, int workers, int64_t n, int ranks, int rank,
                                  pc_reducer **out);
/* The nodes covering this rank's shards (in shard order) and their sums (n floats each,
 * complete after combine_local); returns their number. */
int pc_reducer_rank_cover(const pc_reducer *r, const pc_tree_node **nodes, float *const **sums);

/* This rank's shard range [*first, *last). */
void pc_reducer_rank_shards(const pc_reducer *r, int *first, int *last);

void pc_reducer_compute(pc_reducer *r, int worker, pc_leaf_fn leaf, void *ctx);
/* The exchange by messages overlaps backward (pc_reducer_overlaps): each worker's
 * executor calls pc_reducer_backward_hook(pc_reducer_hook_ctx(r, worker), layer) after
 * each layer's backward (pc_exec_set_backward_hook), and layer_from[layer] (copied by
 * pc_reducer_set_layers before the first step) is the first parameter of that layer or
 * of any later one: from there on the leaf's gradients are final. During an owned node's last
 * leaf, the sums of what is final are formed at once and, as far as every worker's is,
 * sent while the rest of backward runs; otherwise nothing happens. */
int pc_reducer_overlaps(const pc_reducer *r);
pc_status pc_reducer_set_layers(pc_reducer *r, int layers, const int64_t *layer_from);
void pc_reducer_backward_hook(void *ctx, int layer);
void *pc_reducer_hook_ctx(pc_reducer *r, int worker);
void pc_reducer_combine_local(pc_reducer *r, int worker);
/* The overlapped exchange: send what backward did not (after combine_local; called by
 * pc_reducer_exchange too, so only needed to post other messages after the gradients). */
void pc_reducer_send_rest(pc_reducer *r);
pc_status pc_reducer_exchange(pc_reducer *r);
void pc_reducer_combine_global(pc_reducer *r, int worker);
/* This rank's chunk [*begin, *end) of the parameters: after combine_global the gradient
 * is final there, so the optimizer can update just that chunk ... */
void pc_reducer_chunk(const pc_reducer *r, int64_t *begin, int64_t *end);
/* ... and every rank then receives every other rank's chunk of `data` (n floats per
 * array, `arrays` arrays back to back: parameters, or optimizer state). */
pc_status pc_reducer_allgather_chunks(pc_reducer *r, float *data, int arrays);
/* Ranks sharing memory (pc_reducer_create's `shared`): one copy of the parameters for all
 * of them (collective), filled from `params` (n floats, the same on every rank), in
 * *shared; NULL otherwise. Each rank's optimizer then updates its chunk in place and
 * pc_reducer_allgather_chunks of that copy is a fence: no parameter is copied between
 * ranks. Kept until pc_comm_finalize. */
pc_status pc_reducer_share_params(pc_reducer *r, const float *params, float **shared);
int pc_reducer_needs_exchange(const pc_reducer *r);
float *pc_reducer_gradient(pc_reducer *r);

#endif
