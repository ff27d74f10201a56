#include "train/reduce.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "train/pool.h"
#include "train/tree.h"

#define MAX_COVER 64 /* maximal nodes of a contiguous range: at most 2 log2(S) + 2 */
#define BUCKET (256 * 1024) /* floats per transfer of the overlapped exchange: 1 MiB */

typedef struct {
    int n, cap;
    pc_tree_node *node;
    float **buf;
} node_set;

static int set_init(node_set *s, int cap) {
    s->n = 0;
    s->cap = cap;
    s->node = calloc(cap, sizeof *s->node);
    s->buf = calloc(cap, sizeof *s->buf);
    return s->node && s->buf ? 0 : -1;
}

static void set_free(node_set *s) {
    free(s->node);
    free(s->buf);
}

/* The maximal tree nodes inside [a, b) (at most MAX_COVER). */
static int set_cover(node_set *s, int shards, int a, int b) {
    if (set_init(s, MAX_COVER)) return -1;
    s->n = pc_tree_cover(shards, a, b, s->node, MAX_COVER);
    return 0;
}

typedef struct {
    node_set owned;       /* this worker's maximal nodes, one full-size buffer each */
    int depth;
    float **tmp;          /* per tree level below an owned node */
    /* the overlapped exchange, while the last shard of an owned node runs its backward */
    pc_reducer *reducer;  /* this worker's backward hook context is its part */
    int worker;
    int first_local;      /* index of owned node 0 in the rank's local set */
    int final_node;       /* that owned node, or -1 */
    int64_t final_lo;     /* its gradients [final_lo, n) are final and summed */
    int spine_n;          /* its right spine: dst[k] += src[k], deepest last */
    float *spine_dst[MAX_COVER], *spine_src[MAX_COVER];
} worker_part;

struct pc_reducer {
    int shards, workers, ranks, rank;
    int64_t n;
    pc_comm *comm;
    worker_part *wp;
    node_set local;       /* every worker node of this rank */
    node_set rank_cover;  /* nodes covering this rank's shards; buf = their sums */
    /* R > 1 */
    int *cover_count;     /* per rank: how many cover nodes */
    int *recv_counts, *recv_displs;
    int *chunk_counts, *chunk_displs; /* rank chunks of [0, n) */
    float *recv;
    node_set global;      /* every rank's cover nodes, buffers inside recv (chunk-local) */
    float *gradient_at;   /* R > 1: the reduced gradient, valid in this rank's chunk */
    float *gradient;      /* its copy, where the sum does not land in a full-size buffer */
    /* R > 1, messages: the exchange overlaps backward. While the last shard of an owned
     * node runs its backward, each worker's backward hook reports which gradients are
     * final (final_from); their sums up the node's right spine are formed at
     * once and published (done_lo). The main thread (worker 0, which alone calls MPI)
     * combines the rank's cover nodes from its workers' nodes as far as all of them are
     * final, and sends each bucket of BUCKET floats, counted from parameter 0, to the
     * ranks whose chunks it meets as soon as all of it is combined: node by node, each
     * top down; what is left goes after combine_local. */
    int overlap;
    int64_t *layer_from;  /* per layer: its first parameter or a later layer's */
    _Atomic int64_t *done_lo; /* per local node: its sums [done_lo, n) are final */
    int64_t *combined_lo; /* per rank cover node: [combined_lo, n) combined */
    int64_t *posted_lo;   /* per rank cover node: its buckets from posted_lo up are sent */
    int post_node;        /* the rank cover node being sent */
    pc_status post_status; /* the first failure to post a transfer */
    /* R > 1, every rank on one machine: the workers' node buffers of every rank live in
     * memory shared by the ranks (pc_comm_shared_alloc), so the global tree reads the
     * other ranks' sums in place and the exchange is a fence; chunks are allgathered
     * through stage[d], rank d's two staging halves (used in turn, so that writing one
     * never races with a slower rank still reading the other). */
    int shared;
    float **stage;
    int stage_half;
    float *params; /* pc_reducer_share_params: the one copy of the parameters, or NULL */
};

static float *find(const node_set *s, pc_tree_node n) {
    for (int k = 0; k < s->n; k++)
        if (s->node[k].lo == n.lo && s->node[k].hi == n.hi) return s->buf[k];
    return NULL;
}

/* Evaluate `node` on [begin, end) from the sums in `have`, in place: the result lands
 * in the buffer of the leftmost node of `have` under `node`, which is returned. */
static float *combine(const node_set *have, pc_tree_node node, int64_t begin, int64_t end) {
    float *b = find(have, node);
    if (b) return b;
    int mid = pc_tree_mid(node);
    float *left = combine(have, (pc_tree_node){node.lo, mid}, begin, end);
    float *right = combine(have, (pc_tree_node){mid, node.hi}, begin, end);
    for (int64_t i = begin; i < end; i++) left[i] += right[i];
    return left;
}

/* The leftmost buffer `combine` would return, without summing anything. */
static float *result_buffer(const node_set *have, pc_tree_node node) {
    float *b = find(have, node);
    if (b) return b;
    return result_buffer(have, (pc_tree_node){node.lo, pc_tree_mid(node)});
}

/* Buckets of [0, n) that meet [a, a + count): the transfers between a pair of ranks per
 * node. */
static int buckets_meeting(int64_t a, int64_t count) {
    return count > 0 ? (int)((a + count - 1) / BUCKET - a / BUCKET + 1) : 0;
}

/* Before a step of the overlapped exchange: nothing final, combined or sent. */
static void overlap_reset(pc_reducer *r) {
    for (int i = 0; i < r->local.n; i++)
        atomic_store_explicit(&r->done_lo[i], r->n, memory_order_relaxed);
    for (int j = 0; j < r->rank_cover.n; j++) r->combined_lo[j] = r->posted_lo[j] = r->n;
    r->post_node = 0;
    for (int w = 0; w < r->workers; w++) r->wp[w].final_node = -1;
}

/* The overlapped exchange: this rank's own part of the global tree is read in place from
 * its node buffers; room for every transfer of a step is reserved in the communicator. */
static pc_status overlap_setup(pc_reducer *r) {
    int me = r->rank, my_chunk = r->chunk_counts[me], k = 0, requests = 0;
    for (int d = 0; d < r->ranks; d++)
        for (int j = 0; j < r->cover_count[d]; j++, k++)
            if (d == me)
                r->global.buf[k] = r->rank_cover.buf[j] + r->chunk_displs[me];
    for (int d = 0; d < r->ranks; d++) {
        if (d == me) continue;
        requests += r->cover_count[d] * buckets_meeting(r->chunk_displs[me], my_chunk);
        requests += r->rank_cover.n * buckets_meeting(r->chunk_displs[d], r->chunk_counts[d]);
    }
    r->done_lo = calloc(r->local.n, sizeof *r->done_lo);
    r->combined_lo = calloc(r->rank_cover.n, sizeof *r->combined_lo);
    r->posted_lo = calloc(r->rank_cover.n, sizeof *r->posted_lo);
    if (!r->done_lo || !r->combined_lo || !r->posted_lo) return pc_fail_nomem();
    r->overlap = 1;
    overlap_reset(r);
    return pc_comm_reserve(r->comm, requests);
}

/* The workers' nodes and this rank's cover, for rank `rank` of `ranks`. */
static pc_status create_local(int shards, int workers, int64_t n, int ranks, int rank,
                              pc_comm *comm, int shared, pc_reducer **out) {
    *out = NULL;
    pc_reducer *r = calloc(1, sizeof *r);
    if (!r) return pc_fail_nomem();
    r->shards = shards;
    r->workers = workers;
    r->ranks = ranks;
    r->rank = rank;
    r->n = n;
    r->comm = comm;
    r->shared = shared;
    *out = r;
    int slots = r->ranks * workers, per = shards / slots;
    r->wp = calloc(workers, sizeof(worker_part));
    if (!r->wp) return pc_fail_nomem();
    if (set_init(&r->local, workers * MAX_COVER)) return pc_fail_nomem();
    for (int w = 0; w < workers; w++) {
        worker_part *p = &r->wp[w];
        int slot = r->rank * workers + w;
        p->reducer = r;
        p->worker = w;
        p->first_local = r->local.n;
        if (set_cover(&p->owned, shards, slot * per, (slot + 1) * per))
            return pc_fail_nomem();
        for (int k = 0; k < p->owned.n; k++) {
            p->depth = PC_MAX(p->depth, pc_tree_depth(p->owned.node[k]));
            if (!shared && !(p->owned.buf[k] = pc_alloc(sizeof(float) * n))) return PC_ERR_NOMEM;
            r->local.node[r->local.n] = p->owned.node[k];
            r->local.buf[r->local.n++] = p->owned.buf[k];
        }
        p->tmp = calloc(p->depth + 1, sizeof(float *));
        if (!p->tmp) return pc_fail_nomem();
        for (int d = 0; d < p->depth; d++)
            if (!(p->tmp[d] = pc_alloc(sizeof(float) * n))) return PC_ERR_NOMEM;
    }
    int first, last;
    pc_reducer_rank_shards(r, &first, &last);
    if (set_cover(&r->rank_cover, shards, first, last)) return pc_fail_nomem();
    for (int k = 0; k < r->rank_cover.n && !shared; k++) /* shared: in shared_setup */
        r->rank_cover.buf[k] = result_buffer(&r->local, r->rank_cover.node[k]);
    return PC_OK;
}

pc_status pc_reducer_create_group(int shards, int workers, int64_t n, int ranks, int rank,
                                  pc_reducer **out) {
    return create_local(shards, workers, n, ranks, rank, NULL, 0, out);
}

int pc_reducer_rank_cover(const pc_reducer *r, const pc_tree_node **nodes, float *const **sums) {
    *nodes = r->rank_cover.node;
    *sums = r->rank_cover.buf;
    return r->rank_cover.n;
}

/* Rank d's worker nodes, in the order that rank lays out its buffers from `base`
 * (worker by worker, each worker's nodes left to right, n floats each). */
static int rank_local_nodes(const pc_reducer *r, int d, float *base, node_set *s) {
    int per = r->shards / (r->ranks * r->workers);
    s->n = 0;
    for (int w = 0; w < r->workers; w++) {
        int slot = d * r->workers + w;
        int c = pc_tree_cover(r->shards, slot * per, (slot + 1) * per, s->node + s->n, MAX_COVER);
        for (int j = 0; j < c; j++, s->n++) s->buf[s->n] = base + (int64_t)s->n * r->n;
    }
    return s->n;
}

/* The ranks share one machine: each rank's node buffers and staging halves in shared
 * memory; the global tree points into the other ranks' node buffers (at this rank's
 * chunk), found from their layout, which every rank can work out. */
static pc_status shared_setup(pc_reducer *r) {
    int me = r->rank, R = r->ranks;
    void **bases = calloc(R, sizeof *bases);
    r->stage = calloc(R, sizeof *r->stage);
    node_set nodes = {0};
    if (!bases || !r->stage || set_init(&nodes, r->workers * MAX_COVER)) {
        free(bases);
        set_free(&nodes);
        return pc_fail_nomem();
    }
    int64_t floats = (int64_t)r->local.n * r->n + 2 * (int64_t)r->chunk_counts[me];
    pc_status st = pc_comm_shared_alloc(r->comm, sizeof(float) * floats, bases);
    for (int d = 0, k = 0; st == PC_OK && d < R; d++) {
        int local_n = rank_local_nodes(r, d, bases[d], &nodes);
        r->stage[d] = (float *)bases[d] + (int64_t)local_n * r->n;
        if (d == me) { /* the same layout: the workers' owned nodes in order */
            for (int w = 0, i = 0; w < r->workers; w++)
                for (int j = 0; j < r->wp[w].owned.n; j++, i++)
                    r->wp[w].owned.buf[j] = r->local.buf[i] = nodes.buf[i];
            for (int j = 0; j < r->rank_cover.n; j++)
                r->rank_cover.buf[j] = result_buffer(&r->local, r->rank_cover.node[j]);
        }
        for (int j = 0; j < r->cover_count[d]; j++, k++)
            r->global.buf[k] = result_buffer(&nodes, r->global.node[k]) + r->chunk_displs[me];
    }
    free(bases);
    set_free(&nodes);
    return st;
}

/* The tree's sum of this rank's chunk lands in the buffer of the leftmost node, rank 0's
 * first. Where that is a full-size node buffer (shared memory, or rank 0's own) the
 * optimizer reads it in place; elsewhere (received parts hold only the chunk) a copy. */
static pc_status place_gradient(pc_reducer *r) {
    if (r->shared || r->rank == 0) {
        r->gradient_at = r->global.buf[0] - r->chunk_displs[r->rank];
        return PC_OK;
    }
    if (!(r->gradient = pc_alloc(sizeof(float) * r->n))) return pc_fail_nomem();
    r->gradient_at = r->gradient;
    return PC_OK;
}

pc_status pc_reducer_create(int shards, int workers, int64_t n, pc_comm *comm, int shared,
                            pc_reducer **out) {
    int ranks = pc_comm_size(comm);
    shared = shared && ranks > 1 && pc_comm_one_machine(comm);
    PC_TRY(create_local(shards, workers, n, ranks, pc_comm_rank(comm), comm, shared, out));
    pc_reducer *r = *out;
    if (r->ranks == 1) return PC_OK;

    /* Reduce-scatter layout: rank d receives chunk d of every rank's cover nodes. */
    int R = r->ranks;
    r->cover_count = calloc(R, sizeof(int));
    r->recv_counts = calloc(R, sizeof(int));
    r->recv_displs = calloc(R, sizeof(int));
    r->chunk_counts = calloc(R, sizeof(int));
    r->chunk_displs = calloc(R, sizeof(int));
    if (!r->cover_count || !r->recv_counts || !r->recv_displs || !r->chunk_counts || !r->chunk_displs)
        return pc_fail_nomem();
    int per_rank = shards / R, total_nodes = 0;
    pc_tree_node nodes[MAX_COVER];
    for (int d = 0; d < R; d++) {
        int64_t b, e;
        pc_split_range(n, R, d, 16, &b, &e);
        r->chunk_displs[d] = (int)b;
        r->chunk_counts[d] = (int)(e - b);
        r->cover_count[d] = pc_tree_cover(shards, d * per_rank, (d + 1) * per_rank, nodes, MAX_COVER);
        total_nodes += r->cover_count[d];
    }
    int my_nodes = r->rank_cover.n, my_chunk = r->chunk_counts[r->rank];
    for (int d = 0, ro = 0; d < R; d++) {
        r->recv_counts[d] = r->cover_count[d] * my_chunk;
        r->recv_displs[d] = ro;
        ro += r->recv_counts[d];
    }
    if ((int64_t)total_nodes * my_chunk > (1LL << 31) - 1 || (int64_t)my_nodes * n > (1LL << 31) - 1)
        return pc_fail(PC_ERR_USAGE, "model too large for one reduce-scatter message");
    if (set_init(&r->global, total_nodes)) return pc_fail_nomem();
    r->global.n = total_nodes;
    for (int d = 0, k = 0; d < R; d++) {
        int c = pc_tree_cover(shards, d * per_rank, (d + 1) * per_rank, nodes, MAX_COVER);
        for (int j = 0; j < c; j++) r->global.node[k++] = nodes[j];
    }
    if (shared) {
        PC_TRY(shared_setup(r));
        return place_gradient(r);
    }
    r->recv = pc_alloc(sizeof(float) * total_nodes * (my_chunk ? my_chunk : 1));
    if (!r->recv) return pc_fail_nomem();
    for (int d = 0, k = 0; d < R; d++)
        for (int j = 0; j < r->cover_count[d]; j++, k++)
            r->global.buf[k] = r->recv + r->recv_displs[d] + (int64_t)j * my_chunk;
    PC_TRY(overlap_setup(r));
    return place_gradient(r);
}

void pc_reducer_destroy(pc_reducer *r) {
    if (!r) return;
    for (int w = 0; r->wp && w < r->workers; w++) {
        worker_part *p = &r->wp[w];
        for (int k = 0; k < p->owned.n && !r->shared; k++) pc_free(p->owned.buf[k]);
        set_free(&p->owned);
        for (int d = 0; p->tmp && d < p->depth; d++) pc_free(p->tmp[d]);
        free(p->tmp);
    }
    free(r->wp);
    set_free(&r->local);
    set_free(&r->rank_cover);
    set_free(&r->global);
    free(r->cover_count);
    free(r->recv_counts);
    free(r->recv_displs);
    free(r->chunk_counts);
    free(r->chunk_displs);
    free(r->done_lo);
    free(r->layer_from);
    free(r->combined_lo);
    free(r->posted_lo);
    pc_free(r->recv);
    pc_free(r->gradient);
    free(r->stage);
    free(r);
}

void pc_reducer_rank_shards(const pc_reducer *r, int *first, int *last) {
    int per = r->shards / r->ranks;
    *first = r->rank * per;
    *last = (r->rank + 1) * per;
}

/* Send the buckets of rank cover node j, top down, as far as they are combined. */
static void post_buckets(pc_reducer *r, int j) {
    const float *sums = r->rank_cover.buf[j];
    while (r->posted_lo[j] > 0) {
        int64_t lo = (r->posted_lo[j] - 1) / BUCKET * BUCKET, hi = r->posted_lo[j];
        if (lo < r->combined_lo[j]) return;
        for (int d = 0; d < r->ranks; d++) {
            int64_t a = PC_MAX(lo, (int64_t)r->chunk_displs[d]);
            int64_t b = PC_MIN(hi, (int64_t)r->chunk_displs[d] + r->chunk_counts[d]);
            if (d == r->rank || b <= a) continue;
            pc_status st = pc_comm_isend(r->comm, sums + a, (int)(sizeof(float) * (b - a)), d);
            if (st != PC_OK && r->post_status == PC_OK) r->post_status = st;
        }
        r->posted_lo[j] = lo;
    }
}

/* Where the sums of every worker node under `c` are final from. */
static int64_t final_under(pc_reducer *r, pc_tree_node c) {
    int64_t from = 0;
    for (int i = 0; i < r->local.n; i++)
        if (r->local.node[i].lo >= c.lo && r->local.node[i].hi <= c.hi)
            from = PC_MAX(from, atomic_load_explicit(&r->done_lo[i], memory_order_acquire));
    return from;
}

/* Main thread: combine the rank's cover nodes as far as their workers' nodes are final
 * (the tree's additions on that range; combine_local does the rest) and send them. */
static void post_final(pc_reducer *r) {
    for (; r->post_node < r->rank_cover.n; r->post_node++) {
        int j = r->post_node;
        int64_t from = final_under(r, r->rank_cover.node[j]);
        if (from < r->combined_lo[j]) {
            combine(&r->local, r->rank_cover.node[j], from, r->combined_lo[j]);
            r->combined_lo[j] = from;
        }
        post_buckets(r, j);
        if (r->posted_lo[j] > 0) return;
    }
}

/* Worker `worker`'s leaf has its gradients [lo, n) final. */
static void final_from(pc_reducer *r, int worker, int64_t lo) {
    worker_part *p = &r->wp[worker];
    if (!r->overlap) return;
    if (p->final_node >= 0 && lo < p->final_lo) {
        for (int k = p->spine_n - 1; k >= 0; k--) {
            float *dst = p->spine_dst[k];
            const float *src = p->spine_src[k];
            for (int64_t i = lo; i < p->final_lo; i++) dst[i] += src[i];
        }
        p->final_lo = lo;
        atomic_store_explicit(&r->done_lo[p->first_local + p->final_node], lo, memory_order_release);
    }
    if (worker == 0) {
        post_final(r);
        pc_comm_progress(r->comm);
    }
}

pc_status pc_reducer_set_layers(pc_reducer *r, int layers, const int64_t *layer_from) {
    free(r->layer_from);
    if (!(r->layer_from = malloc(sizeof(int64_t) * (layers ? layers : 1)))) return pc_fail_nomem();
    memcpy(r->layer_from, layer_from, sizeof(int64_t) * layers);
    return PC_OK;
}

void pc_reducer_backward_hook(void *worker_part_ctx, int layer) {
    worker_part *p = worker_part_ctx;
    final_from(p->reducer, p->worker, p->reducer->layer_from[layer]);
}

void *pc_reducer_hook_ctx(pc_reducer *r, int worker) { return &r->wp[worker]; }

/* Receive every other rank's nodes on this rank's chunk, bucket by bucket in the order
 * they send them (node by node, top down). */
static void post_receives(pc_reducer *r) {
    int me = r->rank;
    int64_t c0 = r->chunk_displs[me], c1 = c0 + r->chunk_counts[me];
    float *part = r->recv;
    for (int d = 0; d < r->ranks; d++) {
        for (int j = 0; j < r->cover_count[d]; j++, part += r->chunk_counts[me]) {
            if (d == me) continue;
            for (int64_t hi = c1; hi > c0;) {
                int64_t lo = PC_MAX(c0, (hi - 1) / BUCKET * BUCKET);
                pc_status st = pc_comm_irecv(r->comm, part + (lo - c0), (int)(sizeof(float) * (hi - lo)), d);
                if (st != PC_OK && r->post_status == PC_OK) r->post_status = st;
                hi = lo;
            }
        }
    }
}

/* Sums the shards of `node` into out. With the overlapped exchange, `spine` marks the
 * right spine of an owned node (index k): the sums along it are formed by
 * final_from while its last shard's backward runs, not at the end. */
static void reduce_subtree(pc_reducer *r, int w, pc_tree_node node, float *out, int level,
                           int spine, int k, pc_leaf_fn leaf, void *ctx) {
    worker_part *p = &r->wp[w];
    if (node.hi - node.lo == 1) {
        if (spine) {
            p->final_node = k;
            p->final_lo = r->n;
        }
        leaf(ctx, w, node.lo, out);
        if (spine) {
            final_from(r, w, 0);
            p->final_node = -1;
        }
        return;
    }
    int mid = pc_tree_mid(node);
    float *right = p->tmp[level];
    reduce_subtree(r, w, (pc_tree_node){node.lo, mid}, out, level + 1, 0, k, leaf, ctx);
    if (spine) {
        p->spine_dst[p->spine_n] = out;
        p->spine_src[p->spine_n++] = right;
    }
    reduce_subtree(r, w, (pc_tree_node){mid, node.hi}, right, level + 1, spine, k, leaf, ctx);
    if (!spine)
        for (int64_t i = 0; i < r->n; i++) out[i] += right[i];
}

void pc_reducer_compute(pc_reducer *r, int worker, pc_leaf_fn leaf, void *ctx) {
    worker_part *p = &r->wp[worker];
    if (r->overlap && worker == 0) post_receives(r);
    for (int k = 0; k < p->owned.n; k++) {
        p->spine_n = 0;
        reduce_subtree(r, worker, p->owned.node[k], p->owned.buf[k], 0, r->overlap, k, leaf, ctx);
    }
}

void pc_reducer_combine_local(pc_reducer *r, int worker) {
    int64_t begin, end;
    pc_split_range(r->n, r->workers, worker, 16, &begin, &end);
    for (int k = 0; k < r->rank_cover.n; k++) { /* the overlap combined [combined_lo, n) */
        int64_t e = r->overlap ? PC_MIN(end, r->combined_lo[k]) : end;
        if (begin < e) combine(&r->local, r->rank_cover.node[k], begin, e);
    }
}

int pc_reducer_needs_exchange(const pc_reducer *r) { return r->ranks > 1; }
int pc_reducer_overlaps(const pc_reducer *r) { return r->overlap; }

void pc_reducer_send_rest(pc_reducer *r) {
    for (; r->overlap && r->post_node < r->rank_cover.n; r->post_node++) {
        r->combined_lo[r->post_node] = 0; /* combine_local did the rest */
        post_buckets(r, r->post_node);
    }
}

pc_status pc_reducer_exchange(pc_reducer *r) {
    int my_nodes = r->rank_cover.n;
    if (r->shared) { /* counted as the alltoallv it replaces */
        for (int d = 0; d < r->ranks; d++)
            if (d != r->rank)
                pc_comm_count_traffic(r->comm, (int64_t)sizeof(float) * my_nodes * r->chunk_counts[d], 1);
        return pc_comm_shared_fence(r->comm);
    }
    pc_reducer_send_rest(r);
    pc_status st = r->post_status;
    r->post_status = PC_OK;
    overlap_reset(r);
    PC_TRY(st);
    return pc_comm_wait_exchange(r->comm);
}

void pc_reducer_combine_global(pc_reducer *r, int worker) {
    int64_t begin, end, chunk = r->chunk_counts[r->rank];
    pc_split_range(chunk, r->workers, worker, 16, &begin, &end);
    float *sum = combine(&r->global, (pc_tree_node){0, r->shards}, begin, end);
    if (r->gradient)
        memcpy(r->gradient + r->chunk_displs[r->rank] + begin, sum + begin,
               sizeof(float) * (end - begin));
}


float *pc_reducer_gradient(pc_reducer *r) {
    return r->ranks > 1 ? r->gradient_at : r->rank_cover.buf[0];
}

void pc_reducer_chunk(const pc_reducer *r, int64_t *begin, int64_t *end) {
    if (r->ranks == 1) {
        *begin = 0;
        *end = r->n;
        return;
    }
    *begin = r->chunk_displs[r->rank];
    *end = *begin + r->chunk_counts[r->rank];
}

pc_status pc_reducer_share_params(pc_reducer *r, const float *params, float **shared) {
    *shared = NULL;
    if (!r->shared) return PC_OK;
    void **bases = calloc(r->ranks, sizeof *bases);
    if (!bases) return pc_fail_nomem();
    pc_status st = pc_comm_shared_alloc(r->comm, r->rank == 0 ? (int64_t)sizeof(float) * r->n : 0, bases);
    float *all = bases[0];
    free(bases);
    PC_TRY(st);
    int64_t begin = r->chunk_displs[r->rank]; /* the same values on every rank: each its chunk */
    memcpy(all + begin, params + begin, sizeof(float) * r->chunk_counts[r->rank]);
    PC_TRY(pc_comm_shared_fence(r->comm));
    r->params = *shared = all;
    return PC_OK;
}

/* Shared memory: this rank's chunk into its staging half, a fence, the others' chunks out
 * of theirs; or, for the shared parameters, updated in place, only the fence. */
static pc_status allgather_shared(pc_reducer *r, float *data) {
    int me = r->rank, h = r->stage_half;
    pc_comm_count_traffic(r->comm, (int64_t)sizeof(float) * r->chunk_counts[me] * (r->ranks - 1),
                          r->ranks - 1);
    if (data == r->params) return pc_comm_shared_fence(r->comm);
    r->stage_half ^= 1;
    memcpy(r->stage[me] + (int64_t)h * r->chunk_counts[me], data + r->chunk_displs[me],
           sizeof(float) * r->chunk_counts[me]);
    PC_TRY(pc_comm_shared_fence(r->comm));
    for (int d = 0; d < r->ranks; d++)
        if (d != me)
            memcpy(data + r->chunk_displs[d], r->stage[d] + (int64_t)h * r->chunk_counts[d],
                   sizeof(float) * r->chunk_counts[d]);
    return PC_OK;
}

pc_status pc_reducer_allgather_chunks(pc_reducer *r, float *data, int arrays) {
    for (int k = 0; k < arrays && r->shared; k++) PC_TRY(allgather_shared(r, data + (int64_t)k * r->n));
    for (int k = 0; k < arrays && r->ranks > 1 && !r->shared; k++)
        PC_TRY(pc_comm_allgatherv(r->comm, data + (int64_t)k * r->n, r->chunk_counts,
                                  r->chunk_displs));
    return PC_OK;
}
