#include "train/ps.h"

#include <stdlib.h>
#include <string.h>

#include "train/pool.h"
#include "train/tree.h"

#define TAG_PUSH 7101
#define TAG_PULL 7102
#define MAX_NODES 64 /* maximal tree nodes of a contiguous range (train/reduce.c) */

struct pc_ps {
    pc_ps_config cfg;
    int rank, ranks, G, S;         /* G worker ranks, then S servers */
    int64_t *chunk_begin, *chunk_len; /* per server */
    int *cover_count;              /* per worker rank: nodes covering its shards */
    /* worker ranks */
    int64_t have, base;            /* the weights' version (updates applied), pipeline start */
    float *push;                   /* per server: chunk s of every cover node */
    pc_request *push_req;          /* per server */
    /* servers */
    int server;                    /* this server's index */
    float *recv;                   /* every worker's nodes for this chunk */
    int64_t *recv_off;             /* per worker: its nodes' offset in recv (floats) */
    pc_tree_node *nodes;           /* every worker's cover nodes, in shard order */
    float **node_buf;              /* their sums in recv */
    int n_nodes;
    float *grad;                   /* n floats: the summed gradient in this chunk */
    int ring;                      /* versions in flight (sync) or workers (async) */
    float *out;                    /* ring x chunk: the versions being sent */
    pc_request *out_req;           /* ring x G */
    pc_ps_update queued;           /* the step to serve at the next flush */
    int has_queued;
    char *rec_send, *rec_all;      /* the records' allgather */
};

int pc_ps_is_server(const pc_ps *ps) { return ps->rank >= ps->G; }

static pc_status layout(pc_ps *ps) {
    const pc_ps_config *c = &ps->cfg;
    ps->chunk_begin = calloc(ps->S, sizeof(int64_t));
    ps->chunk_len = calloc(ps->S, sizeof(int64_t));
    ps->cover_count = calloc(ps->G, sizeof(int));
    if (!ps->chunk_begin || !ps->chunk_len || !ps->cover_count) return pc_fail_nomem();
    for (int s = 0; s < ps->S; s++) {
        int64_t b, e;
        pc_split_range(c->n, ps->S, s, 16, &b, &e);
        ps->chunk_begin[s] = b;
        ps->chunk_len[s] = e - b;
    }
    pc_tree_node nodes[MAX_NODES];
    int per = c->shards / ps->G;
    for (int g = 0; g < ps->G; g++)
        ps->cover_count[g] = pc_tree_cover(c->shards, g * per, (g + 1) * per, nodes, MAX_NODES);
    size_t rec_bytes = c->rec_size * (size_t)per;
    ps->rec_send = calloc(1, rec_bytes ? rec_bytes : 1);
    ps->rec_all = malloc(rec_bytes * (size_t)ps->ranks + 1);
    return ps->rec_send && ps->rec_all ? PC_OK : pc_fail_nomem();
}

static pc_status setup_worker(pc_ps *ps) {
    int cover = ps->cover_count[ps->rank];
    ps->push = pc_alloc(sizeof(float) * (cover * ps->cfg.n + 1));
    ps->push_req = calloc(ps->S, sizeof *ps->push_req);
    return ps->push && ps->push_req ? PC_OK : pc_fail_nomem();
}

static pc_status setup_server(pc_ps *ps) {
    const pc_ps_config *c = &ps->cfg;
    int64_t chunk = ps->chunk_len[ps->server];
    ps->recv_off = calloc(ps->G + 1, sizeof(int64_t));
    if (!ps->recv_off) return pc_fail_nomem();
    for (int g = 0; g < ps->G; g++) {
        ps->recv_off[g + 1] = ps->recv_off[g] + ps->cover_count[g] * chunk;
        ps->n_nodes += ps->cover_count[g];
    }
    ps->recv = pc_alloc(sizeof(float) * (ps->recv_off[ps->G] + 1));
    ps->nodes = calloc(ps->n_nodes, sizeof *ps->nodes);
    ps->node_buf = calloc(ps->n_nodes, sizeof *ps->node_buf);
    ps->grad = pc_alloc(sizeof(float) * (c->n + 1));
    ps->ring = c->async ? ps->G : c->staleness + 2;
    ps->out = pc_alloc(sizeof(float) * (ps->ring * chunk + 1));
    ps->out_req = calloc((size_t)ps->ring * ps->G, sizeof *ps->out_req);
    if (!ps->recv || !ps->nodes || !ps->node_buf || !ps->grad || !ps->out || !ps->out_req)
        return pc_fail_nomem();
    int per = c->shards / ps->G;
    for (int g = 0, k = 0; g < ps->G; g++) {
        pc_tree_cover(c->shards, g * per, (g + 1) * per, ps->nodes + k, MAX_NODES);
        for (int j = 0; j < ps->cover_count[g]; j++, k++)
            ps->node_buf[k] = ps->recv + ps->recv_off[g] + j * chunk;
    }
    return PC_OK;
}

pc_status pc_ps_create(const pc_ps_config *cfg, pc_ps **out) {
    *out = NULL;
    pc_ps *ps = calloc(1, sizeof *ps);
    if (!ps) return pc_fail_nomem();
    *out = ps;
    ps->cfg = *cfg;
    ps->rank = pc_comm_rank(cfg->comm);
    ps->ranks = pc_comm_size(cfg->comm);
    ps->S = cfg->servers;
    ps->G = ps->ranks - ps->S;
    ps->server = ps->rank - ps->G;
    PC_TRY(layout(ps));
    return pc_ps_is_server(ps) ? setup_server(ps) : setup_worker(ps);
}

void pc_ps_destroy(pc_ps *ps) {
    if (!ps) return;
    free(ps->chunk_begin);
    free(ps->chunk_len);
    free(ps->cover_count);
    pc_free(ps->push);
    free(ps->push_req);
    free(ps->recv_off);
    pc_free(ps->recv);
    free(ps->nodes);
    free(ps->node_buf);
    pc_free(ps->grad);
    pc_free(ps->out);
    free(ps->out_req);
    free(ps->rec_send);
    free(ps->rec_all);
    free(ps);
}

void pc_ps_start(pc_ps *ps, int64_t step) { ps->have = ps->base = step; }

/* ------------------------------------------------------------- worker ranks */

/* The next version of the weights: every server's chunk, in order. */
static pc_status receive_version(pc_ps *ps) {
    for (int s = 0; s < ps->S; s++)
        PC_TRY(pc_comm_recv_tagged(ps->cfg.comm, ps->cfg.params + ps->chunk_begin[s],
                            (int64_t)sizeof(float) * ps->chunk_len[s], ps->G + s, TAG_PULL,
                            "parameter pull", NULL));
    ps->have++;
    return PC_OK;
}

static pc_status wait_pushes(pc_ps *ps) {
    for (int s = 0; s < ps->S; s++)
        PC_TRY(pc_comm_wait_send(ps->cfg.comm, &ps->push_req[s], "gradient push"));
    return PC_OK;
}

pc_status pc_ps_pull(pc_ps *ps, int64_t step) {
    PC_TRY(wait_pushes(ps)); /* the node sums are about to be overwritten */
    /* async: the reply to the previous push; else the weights of `staleness` updates ago,
     * never older than the pipeline's start */
    int64_t need = PC_MAX(ps->base, ps->cfg.async ? step : step - ps->cfg.staleness);
    while (ps->have < need) PC_TRY(receive_version(ps));
    return PC_OK;
}

pc_status pc_ps_push(pc_ps *ps, int64_t step) {
    (void)step;
    const pc_tree_node *nodes;
    float *const *sums;
    int cover = pc_reducer_rank_cover(ps->cfg.red, &nodes, &sums);
    float *p = ps->push;
    for (int s = 0; s < ps->S; s++) {
        float *mine = p;
        for (int k = 0; k < cover; k++, p += ps->chunk_len[s])
            memcpy(p, sums[k] + ps->chunk_begin[s], sizeof(float) * ps->chunk_len[s]);
        PC_TRY(pc_comm_send_tagged(ps->cfg.comm, mine, (int64_t)sizeof(float) * (p - mine), ps->G + s,
                             TAG_PUSH, &ps->push_req[s]));
    }
    return PC_OK;
}

/* ------------------------------------------------------------- servers */

static float *find_node(const pc_ps *ps, pc_tree_node n) {
    for (int k = 0; k < ps->n_nodes; k++)
        if (ps->nodes[k].lo == n.lo && ps->nodes[k].hi == n.hi) return ps->node_buf[k];
    return NULL;
}

/* The sum of `node` over [0, len), in place along the tree (as reduce.c's combine). */
static float *combine(const pc_ps *ps, pc_tree_node node, int64_t len) {
    float *b = find_node(ps, node);
    if (b) return b;
    int mid = pc_tree_mid(node);
    float *left = combine(ps, (pc_tree_node){node.lo, mid}, len);
    float *right = combine(ps, (pc_tree_node){mid, node.hi}, len);
    for (int64_t i = 0; i < len; i++) left[i] += right[i];
    return left;
}

/* The optimizer on this server's chunk, from the gradient in ps->grad. */
static void update_chunk(pc_ps *ps, const pc_ps_update *u, int64_t step) {
    int64_t b = ps->chunk_begin[ps->server];
    pc_opt_step(u->opt, u->groups, u->lr, step + 1, ps->cfg.params, ps->grad, u->opt_state,
                ps->cfg.n, b, b + ps->chunk_len[ps->server]);
}

/* Send the chunk as it is now to worker g from ring slot `slot` (waiting for that slot's
 * previous send to g first). */
static pc_status send_chunk(pc_ps *ps, int slot, int g) {
    int64_t len = ps->chunk_len[ps->server];
    pc_request *req = &ps->out_req[(size_t)slot * ps->G + g];
    PC_TRY(pc_comm_wait_send(ps->cfg.comm, req, "parameter send"));
    return pc_comm_send_tagged(ps->cfg.comm, ps->out + slot * len, (int64_t)sizeof(float) * len, g,
                         TAG_PULL, req);
}

static pc_status serve_sync(pc_ps *ps, const pc_ps_update *u) {
    int64_t len = ps->chunk_len[ps->server], b = ps->chunk_begin[ps->server];
    for (int g = 0; g < ps->G; g++)
        PC_TRY(pc_comm_recv_tagged(ps->cfg.comm, ps->recv + ps->recv_off[g],
                            (int64_t)sizeof(float) * (ps->recv_off[g + 1] - ps->recv_off[g]), g,
                            TAG_PUSH, "gradient push", NULL));
    float *sum = combine(ps, (pc_tree_node){0, ps->cfg.shards}, len);
    memcpy(ps->grad + b, sum, sizeof(float) * len);
    update_chunk(ps, u, u->step);
    int slot = (int)(u->step % ps->ring);
    for (int g = 0; g < ps->G; g++) /* the slot's sends of ring steps ago are done */
        PC_TRY(pc_comm_wait_send(ps->cfg.comm, &ps->out_req[(size_t)slot * ps->G + g], "parameter send"));
    memcpy(ps->out + slot * len, ps->cfg.params + b, sizeof(float) * len);
    for (int g = 0; g < ps->G; g++) PC_TRY(send_chunk(ps, slot, g));
    return PC_OK;
}

/* Every push on its own, in arrival order: the worker's node sums (its B/G samples, each
 * scaled by 1/B) times G, one optimizer step, the chunk back to that worker. */
static pc_status serve_async(pc_ps *ps, const pc_ps_update *u) {
    int64_t len = ps->chunk_len[ps->server], b = ps->chunk_begin[ps->server];
    int64_t most = 0;
    for (int g = 0; g < ps->G; g++) most = PC_MAX(most, ps->recv_off[g + 1] - ps->recv_off[g]);
    for (int k = 0; k < ps->G; k++) {
        int g;
        PC_TRY(pc_comm_recv_tagged(ps->cfg.comm, ps->recv, (int64_t)sizeof(float) * most, -1, TAG_PUSH,
                            "gradient push", &g));
        float *grad = ps->grad + b;
        for (int64_t i = 0; i < len; i++) grad[i] = ps->recv[i];
        for (int j = 1; j < ps->cover_count[g]; j++)
            for (int64_t i = 0; i < len; i++) grad[i] += ps->recv[j * len + i];
        for (int64_t i = 0; i < len; i++) grad[i] *= (float)ps->G;
        update_chunk(ps, u, u->step * ps->G + k);
        PC_TRY(pc_comm_wait_send(ps->cfg.comm, &ps->out_req[(size_t)g * ps->G + g], "parameter send"));
        memcpy(ps->out + g * len, ps->cfg.params + b, sizeof(float) * len);
        PC_TRY(send_chunk(ps, g, g));
    }
    return PC_OK;
}

void pc_ps_queue(pc_ps *ps, const pc_ps_update *u) {
    ps->queued = *u;
    ps->has_queued = 1;
}

pc_status pc_ps_flush(pc_ps *ps) {
    if (!ps->has_queued) return PC_OK;
    ps->has_queued = 0;
    return ps->cfg.async ? serve_async(ps, &ps->queued) : serve_sync(ps, &ps->queued);
}

/* ------------------------------------------------------------- every rank */

pc_status pc_ps_share_records(pc_ps *ps, char *records) {
    int per = ps->cfg.shards / ps->G;
    size_t bytes = ps->cfg.rec_size * (size_t)per;
    if (!pc_ps_is_server(ps)) memcpy(ps->rec_send, records + (size_t)ps->rank * bytes, bytes);
    PC_TRY(pc_comm_allgather_bytes(ps->cfg.comm, ps->rec_send, (int)bytes, ps->rec_all));
    memcpy(records, ps->rec_all, bytes * (size_t)ps->G); /* the worker ranks' parts, in order */
    return PC_OK;
}

pc_status pc_ps_drain(pc_ps *ps, int64_t step) {
    if (pc_ps_is_server(ps)) {
        PC_TRY(pc_ps_flush(ps));
        for (int k = 0; k < ps->ring * ps->G; k++)
            PC_TRY(pc_comm_wait_send(ps->cfg.comm, &ps->out_req[k], "parameter send"));
        return PC_OK;
    }
    PC_TRY(wait_pushes(ps));
    while (ps->have < step) PC_TRY(receive_version(ps));
    ps->base = step;
    return PC_OK;
}

pc_status pc_ps_share_chunks(pc_ps *ps, float *data, int arrays) {
    for (int k = 0; k < arrays; k++)
        for (int s = 0; s < ps->S; s++)
            PC_TRY(pc_comm_bcast(ps->cfg.comm, data + k * ps->cfg.n + ps->chunk_begin[s],
                                 (int64_t)sizeof(float) * ps->chunk_len[s], ps->G + s));
    return PC_OK;
}
