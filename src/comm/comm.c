#include "comm/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>

#ifdef PARCNN_HAVE_MPI
#include <mpi.h>
#endif

#define TAG_ARRIVE 7001
#define TAG_EXCHANGE 7002 /* the overlapped gradient exchange's transfers */
#define ARRIVE_RING 64
#define HEARTBEAT 0.5 /* seconds between "still waiting" messages to rank 0 */

struct pc_comm {
    int rank, size, mpi;
    double timeout;
    int64_t step;
    int64_t op;                       /* collectives entered so far */
    int64_t bytes_sent, messages_sent; /* payload this rank sent to other ranks */
#ifdef PARCNN_HAVE_MPI
    int64_t sent[ARRIVE_RING];        /* ranks > 0: buffers of arrival messages */
    int64_t *arrived;                 /* rank 0: last collective each rank entered */
    double *last_seen;                /* rank 0: when each rank last sent anything */
    int64_t arrive_buf;
    MPI_Request arrive_req;
    MPI_Request *pending;             /* outstanding non-blocking allreduces */
    int n_pending, cap_pending;
    int one_machine;                  /* every rank runs on this machine */
    MPI_Win *windows;                 /* shared memory handed out (pc_comm_shared_alloc) */
    int n_windows;
#endif
};

static pc_comm single = {.rank = 0, .size = 1};
static pc_comm *world = &single;

pc_comm *pc_comm_world(void) { return world; }
int pc_comm_rank(const pc_comm *c) { return c->rank; }
int pc_comm_size(const pc_comm *c) { return c->size; }
void pc_comm_set_timeout(pc_comm *c, double seconds) { c->timeout = seconds; }
void pc_comm_set_step(pc_comm *c, int64_t step) { c->step = step; }

void pc_comm_traffic(const pc_comm *c, int64_t *bytes, int64_t *messages) {
    *bytes = c->bytes_sent;
    *messages = c->messages_sent;
}

/* Count `bytes` of payload sent in `messages` transfers to other ranks. */
static inline void add_traffic(pc_comm *c, int64_t bytes, int64_t messages) {
    c->bytes_sent += bytes;
    c->messages_sent += messages;
}

static int launched_by_mpi(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"};
    for (int i = 0; i < 4; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

pc_status pc_comm_init(int *argc, char ***argv, pc_comm **out) {
    *out = world;
#ifdef PARCNN_HAVE_MPI
    if (!launched_by_mpi()) return PC_OK;
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return pc_fail(PC_ERR_INTERNAL, "MPI_Init failed");
    pc_comm *c = calloc(1, sizeof *c);
    if (!c) return pc_fail_nomem();
    c->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm node;
    int node_size = 0;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_size(node, &node_size);
        MPI_Comm_free(&node);
    }
    c->one_machine = node_size == c->size;
    if (c->rank == 0) {
        c->arrived = calloc(c->size, sizeof(int64_t));
        c->last_seen = calloc(c->size, sizeof(double));
        if (!c->arrived || !c->last_seen) return pc_fail_nomem();
        for (int r = 0; r < c->size; r++) c->last_seen[r] = pc_now();
        MPI_Irecv(&c->arrive_buf, 1, MPI_INT64_T, MPI_ANY_SOURCE, TAG_ARRIVE, MPI_COMM_WORLD,
                  &c->arrive_req);
    }
    world = c;
    *out = c;
#else
    (void)argc;
    (void)argv;
    if (launched_by_mpi())
        return pc_fail(PC_ERR_USAGE, "launched by an MPI launcher, but this parcnn was built "
                       "without MPI (install libopenmpi-dev and rebuild)");
#endif
    return PC_OK;
}

#ifdef PARCNN_HAVE_MPI
/* Rank 0 records every arrival message that came in. */
static void poll_arrivals(pc_comm *c) {
    if (c->rank != 0) return;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        MPI_Test(&c->arrive_req, &flag, &st);
        if (!flag) return;
        c->arrived[st.MPI_SOURCE] = c->arrive_buf;
        c->last_seen[st.MPI_SOURCE] = pc_now();
        MPI_Irecv(&c->arrive_buf, 1, MPI_INT64_T, MPI_ANY_SOURCE, TAG_ARRIVE, MPI_COMM_WORLD,
                  &c->arrive_req);
    }
}

/* Tell rank 0 which collective this rank is in. */
static void tell_rank0(pc_comm *c) {
    int64_t *slot = &c->sent[c->op % ARRIVE_RING];
    *slot = c->op;
    MPI_Request r;
    MPI_Isend(slot, 1, MPI_INT64_T, 0, TAG_ARRIVE, MPI_COMM_WORLD, &r);
    MPI_Request_free(&r);
}

/* Entering a collective: tell rank 0, so it can name whoever never comes. */
static void announce(pc_comm *c) {
    c->op++;
    if (c->rank == 0)
        c->arrived[0] = c->op;
    else
        tell_rank0(c);
}

/* Test req until it completes (1), MPI fails (-1) or `limit` seconds pass (0; 0 s: no
 * limit), polling arrivals on rank 0 and sending heartbeats from the others meanwhile. */
static int poll_request(pc_comm *c, MPI_Request *req, double limit, MPI_Status *status) {
    double start = pc_now(), deadline = start + limit, heartbeat = start;
    for (;;) {
        int flag = 0;
        if (MPI_Test(req, &flag, status) != MPI_SUCCESS) return -1;
        if (flag) return 1;
        poll_arrivals(c);
        double now = pc_now();
        if (limit > 0 && now > deadline) return 0;
        if (c->rank != 0 && now - heartbeat > HEARTBEAT) { /* still alive, still waiting */
            tell_rank0(c);
            heartbeat = now;
        }
        /* MPI progresses transfers only inside its calls: poll hot (yielding the core to
         * whoever needs it) for a second, then back off for long waits. */
        if (now - start < 1.0) {
            sched_yield();
        } else {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
    }
}

static pc_status wait_for(pc_comm *c, MPI_Request *req, const char *what) {
    /* Other ranks give rank 0 a head start, so the report names the missing ranks. */
    double limit = c->timeout > 0 ? c->timeout + (c->rank ? 5.0 : 0.0) : 0;
    int done = poll_request(c, req, limit, MPI_STATUS_IGNORE);
    if (done < 0)
        return pc_fail(PC_ERR_INTERNAL, "[rank %d] step %lld: %s failed", c->rank,
                       (long long)c->step, what);
    if (done) return PC_OK;
    if (c->rank != 0)
        return pc_fail(PC_ERR_INTERNAL, "[rank %d] step %lld: %s waited more than %g s for the "
                       "other ranks", c->rank, (long long)c->step, what, c->timeout);
    /* Missing: never entered this collective, or entered and then went silent (a rank
     * waiting alive inside it sends a heartbeat every HEARTBEAT seconds). */
    char missing[512] = "";
    double now = pc_now();
    for (int r = 1; r < c->size; r++)
        if (c->arrived[r] < c->op || now - c->last_seen[r] > 4 * HEARTBEAT) {
            size_t len = strlen(missing);
            snprintf(missing + len, sizeof missing - len, "%s%d", len ? ", " : "", r);
        }
    return pc_fail(PC_ERR_INTERNAL, "step %lld: %s waited more than %g s; rank(s) %s did not "
                   "arrive or stopped responding", (long long)c->step, what, c->timeout, missing);
}
#endif

pc_status pc_comm_alltoallv(pc_comm *c, const float *send, const int *send_counts,
                            const int *send_displs, float *recv, const int *recv_counts,
                            const int *recv_displs) {
#ifdef PARCNN_HAVE_MPI
    if (c->mpi) {
        for (int d = 0; d < c->size; d++)
            if (d != c->rank && send_counts[d] > 0) add_traffic(c, (int64_t)sizeof(float) * send_counts[d], 1);
        announce(c);
        MPI_Request req;
        MPI_Ialltoallv(send, send_counts, send_displs, MPI_FLOAT, recv, recv_counts, recv_displs,
                       MPI_FLOAT, MPI_COMM_WORLD, &req);
        return wait_for(c, &req, "gradient reduce-scatter (alltoallv)");
    }
#endif
    memcpy(recv + recv_displs[0], send + send_displs[0], sizeof(float) * send_counts[0]);
    return PC_OK;
}

pc_status pc_comm_allgatherv(pc_comm *c, float *recv, const int *counts, const int *displs) {
#ifdef PARCNN_HAVE_MPI
    if (c->mpi) {
        add_traffic(c, (int64_t)sizeof(float) * counts[c->rank] * (c->size - 1), c->size - 1);
        announce(c);
        MPI_Request req;
        MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, recv, counts, displs, MPI_FLOAT,
                        MPI_COMM_WORLD, &req);
        return wait_for(c, &req, "allgather");
    }
#endif
    (void)recv;
    (void)counts;
    (void)displs;
    return PC_OK;
}

/* One broadcast per rank: simpler than rounds of MPI_Allgatherv whose int displacements
 * cannot reach parts more than 2 GiB apart, and as fast for the few large parts it moves. */
pc_status pc_comm_allgatherv_bytes(pc_comm *c, void *recv, const int64_t *counts,
                                   const int64_t *displs) {
    if (c->size == 1) return PC_OK;
    for (int r = 0; r < c->size; r++)
        PC_TRY(pc_comm_bcast(c, (char *)recv + displs[r], counts[r], r));
    return PC_OK;
}

pc_status pc_comm_allgather_bytes(pc_comm *c, const void *send, int bytes, void *recv) {
#ifdef PARCNN_HAVE_MPI
    if (c->mpi) {
        add_traffic(c, (int64_t)bytes * (c->size - 1), c->size - 1);
        announce(c);
        MPI_Request req;
        MPI_Iallgather(send, bytes, MPI_BYTE, recv, bytes, MPI_BYTE, MPI_COMM_WORLD, &req);
        return wait_for(c, &req, "allgather");
    }
#endif
    memmove(recv, send, bytes);
    return PC_OK;
}

static inline int64_t count_per_rank(int count, int size) { return ((int64_t)count + size - 1) / size; }

pc_status pc_comm_iallreduce_sum(pc_comm *c, float *buf, int count) {
#ifdef PARCNN_HAVE_MPI
    if (c->mpi) {
        if (c->n_pending == c->cap_pending) { /* grows during the first step only */
            int cap = c->cap_pending ? 2 * c->cap_pending : 64;
            MPI_Request *grown = realloc(c->pending, sizeof(MPI_Request) * cap);
            if (!grown) return pc_fail_nomem();
            c->pending = grown;
            c->cap_pending = cap;
        }
        /* as a ring allreduce: a reduce-scatter and an allgather of count/size each step */
        add_traffic(c, 2 * (int64_t)sizeof(float) * count_per_rank(count, c->size) * (c->size - 1),
              2 * (c->size - 1));
        announce(c);
        MPI_Iallreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                       &c->pending[c->n_pending++]);
        return PC_OK;
    }
#endif
    (void)c;
    (void)buf;
    (void)count;
    return PC_OK;
}

pc_status pc_comm_reserve(pc_comm *c, int requests) {
#ifdef PARCNN_HAVE_MPI
    if (c->mpi && requests > 0) {
        MPI_Request *grown = realloc(c->pending, sizeof(MPI_Request) * (c->cap_pending + requests));
        if (!grown) return pc_fail_nomem();
        c->pending = grown;
        c->cap_pending += requests;
    }
#endif
    (void)c;
    (void)requests;
    return PC_OK;
}

#ifdef PARCNN_HAVE_MPI
static MPI_Request *next_request(pc_comm *c) {
    if (c->n_pending == c->cap_pending) {
        pc_fail(PC_ERR_INTERNAL, "[rank %d] more transfers posted than reserved", c->rank);
        return NULL;
    }
    return &c->pending[c->n_pending++];
}
#endif

pc_status pc_comm_isend(pc_comm *c, const void *buf, int bytes, int dest) {
#ifdef PARCNN_HAVE_MPI
    if (c->mpi) {
        MPI_Request *req = next_request(c);
        if (!req) return PC_ERR_INTERNAL;
        add_traffic(c, bytes, 1);
        if (MPI_Isend(buf, bytes, MPI_BYTE, dest, TAG_EXCHANGE, MPI_COMM_WORLD, req) != MPI_SUCCESS)
            return pc_fail(PC_ERR_INTERNAL, "[rank %d] step %lld: sending to rank %d failed",
                           c->rank, (long long)c->step, dest);
        return PC_OK;
    }
#endif
    (void)buf;
    (void)bytes;
    (void)dest;
    return pc_fail(PC_ERR_INTERNAL, "point-to-point transfer in a single process");
}

pc_status pc_comm_irecv(pc_comm *c, void *buf, int bytes, int source) {
#ifdef PARCNN_HAVE_MPI
    if (c->mpi) {
        MPI_Request *req = next_request(c);
        if (!req) return PC_ERR_INTERNAL;
        if (MPI_Irecv(buf, bytes, MPI_BYTE, source, TAG_EXCHANGE, MPI_COMM_WORLD, req) != MPI_SUCCESS)
            return pc_fail(PC_ERR_INTERNAL, "[rank %d] step %lld: receiving from rank %d failed",
                           c->rank, (long long)c->step, source);
        return PC_OK;
    }
#endif
    (void)buf;
    (void)bytes;
    (void)source;
    return pc_fail(PC_ERR_INTERNAL, "point-to-point transfer in a single process");
}

void pc_comm_progress(pc_comm *c) {
#ifdef PARCNN_HAVE_MPI
    int done;
    if (c->mpi && c->n_pending)
        MPI_Testall(c->n_pending, c->pending, &done, MPI_STATUSES_IGNORE);
#endif
    (void)c;
}

/* Completed requests are MPI_REQUEST_NULL, which wait_for sees as done at once. */
pc_status pc_comm_wait_exchange(pc_comm *c) {
#ifdef PARCNN_HAVE_MPI
    if (c->mpi) {
        announce(c);
        for (int i = 0; i < c->n_pending; i++)
            PC_TRY(wait_for(c, &c->pending[i], "gradient exchange"));
        c->n_pending = 0;
    }
#endif
    (void)c;
    return PC_OK;
}

pc_status pc_comm_wait_all(pc_comm *c) {
#ifdef PARCNN_HAVE_MPI
    for (int i = 0; i < c->n_pending; i++)
        PC_TRY(wait_for(c, &c->pending[i], "gradient allreduce (fast mode)"));
    c->n_pending = 0;
#endif
    (void)c;
    return PC_OK;
}

pc_status pc_comm_bcast(pc_comm *c, void *buf, int64_t bytes, int root) {
#ifdef PARCNN_HAVE_MPI
    if (c->mpi) {
        char *p = buf;
        while (bytes > 0) { /* MPI counts are int */
            int chunk = bytes > (1 << 30) ? (1 << 30) : (int)bytes;
            if (c->rank == root) add_traffic(c, (int64_t)chunk * (c->size - 1), c->size - 1);
            announce(c);
            MPI_Request req;
            MPI_Ibcast(p, chunk, MPI_BYTE, root, MPI_COMM_WORLD, &req);
            PC_TRY(wait_for(c, &req, "broadcast"));
            p += chunk;
            bytes -= chunk;
        }
        return PC_OK;
    }
#endif
    (void)buf;
    (void)bytes;
    (void)root;
    return PC_OK;
}

pc_status pc_comm_barrier(pc_comm *c) {
#ifdef PARCNN_HAVE_MPI
    if (c->mpi) {
        announce(c);
        MPI_Request req;
        MPI_Ibarrier(MPI_COMM_WORLD, &req);
        return wait_for(c, &req, "barrier");
    }
#endif
    (void)c;
    return PC_OK;
}

int pc_comm_one_machine(const pc_comm *c) {
#ifdef PARCNN_HAVE_MPI
    if (c->mpi) return c->one_machine;
#endif
    (void)c;
    return 0;
}

pc_status pc_comm_shared_alloc(pc_comm *c, int64_t bytes, void **bases) {
#ifdef PARCNN_HAVE_MPI
    if (c->mpi && c->one_machine) {
        MPI_Win *grown = realloc(c->windows, sizeof(MPI_Win) * (c->n_windows + 1));
        if (!grown) return pc_fail_nomem();
        c->windows = grown;
        MPI_Info info; /* each rank's part on pages of its own (first touched by its owner) */
        MPI_Info_create(&info);
        MPI_Info_set(info, "alloc_shared_noncontig", "true");
        void *mine;
        MPI_Win win;
        int rc = MPI_Win_allocate_shared((MPI_Aint)bytes, 1, info, MPI_COMM_WORLD, &mine, &win);
        MPI_Info_free(&info);
        if (rc != MPI_SUCCESS)
            return pc_fail(PC_ERR_NOMEM, "[rank %d] cannot allocate %lld bytes of memory shared "
                           "between the ranks (--exchange messages does without)", c->rank,
                           (long long)bytes);
        c->windows[c->n_windows++] = win;
        MPI_Win_lock_all(MPI_MODE_NOCHECK, win); /* loads and stores from here on */
        for (int d = 0; d < c->size; d++) {
            MPI_Aint size;
            int unit;
            MPI_Win_shared_query(win, d, &size, &unit, &bases[d]);
        }
        return PC_OK;
    }
#endif
    (void)bytes;
    (void)bases;
    return pc_fail(PC_ERR_INTERNAL, "shared memory between ranks that do not share a machine");
}

pc_status pc_comm_shared_fence(pc_comm *c) {
#ifdef PARCNN_HAVE_MPI
    for (int i = 0; c->mpi && i < c->n_windows; i++) MPI_Win_sync(c->windows[i]);
    PC_TRY(pc_comm_barrier(c));
    for (int i = 0; c->mpi && i < c->n_windows; i++) MPI_Win_sync(c->windows[i]);
#endif
    (void)c;
    return PC_OK;
}

void pc_comm_count_traffic(pc_comm *c, int64_t bytes, int64_t messages) {
    add_traffic(c, bytes, messages);
}

#ifdef PARCNN_HAVE_MPI
_Static_assert(sizeof(MPI_Request) <= sizeof(uint64_t), "pc_request holds an MPI_Request");

/* A point-to-point transfer with `peer` (MPI_ANY_SOURCE: anyone): wait for it, naming the
 * peer on a time-out. */
static pc_status wait_peer(pc_comm *c, MPI_Request *req, const char *what, int peer, int *source) {
    MPI_Status status;
    int done = poll_request(c, req, c->timeout, &status);
    if (done > 0 && source) *source = status.MPI_SOURCE;
    if (done > 0) return PC_OK;
    if (done < 0)
        return pc_fail(PC_ERR_INTERNAL, "[rank %d] step %lld: %s failed", c->rank,
                       (long long)c->step, what);
    if (peer == MPI_ANY_SOURCE)
        return pc_fail(PC_ERR_INTERNAL, "[rank %d] step %lld: %s waited more than %g s: no rank "
                       "sent anything", c->rank, (long long)c->step, what, c->timeout);
    return pc_fail(PC_ERR_INTERNAL, "[rank %d] step %lld: %s waited more than %g s for rank %d",
                   c->rank, (long long)c->step, what, c->timeout, peer);
}
#endif

pc_status pc_comm_send_tagged(pc_comm *c, const void *buf, int64_t bytes, int dest, int tag,
                              pc_request *req) {
#ifdef PARCNN_HAVE_MPI
    if (c->mpi) {
        if (bytes > INT32_MAX) return pc_fail(PC_ERR_USAGE, "a message of %lld bytes is too large", (long long)bytes);
        add_traffic(c, bytes, 1);
        MPI_Request r;
        MPI_Isend(buf, (int)bytes, MPI_BYTE, dest, tag, MPI_COMM_WORLD, &r);
        memcpy(&req->handle, &r, sizeof r);
        req->active = 1;
        req->peer = dest;
        return PC_OK;
    }
#endif
    (void)buf;
    (void)bytes;
    (void)dest;
    (void)tag;
    req->active = 0;
    return pc_fail(PC_ERR_USAGE, "rank %d: no other rank to send to", c->rank);
}

pc_status pc_comm_wait_send(pc_comm *c, pc_request *req, const char *what) {
#ifdef PARCNN_HAVE_MPI
    if (req->active) {
        MPI_Request r;
        memcpy(&r, &req->handle, sizeof r);
        req->active = 0;
        return wait_peer(c, &r, what, req->peer, NULL);
    }
#endif
    (void)c;
    (void)what;
    return PC_OK;
}

pc_status pc_comm_recv_tagged(pc_comm *c, void *buf, int64_t bytes, int source, int tag,
                             const char *what, int *from) {
#ifdef PARCNN_HAVE_MPI
    if (c->mpi) {
        if (bytes > INT32_MAX) return pc_fail(PC_ERR_USAGE, "a message of %lld bytes is too large", (long long)bytes);
        MPI_Request r;
        int peer = source < 0 ? MPI_ANY_SOURCE : source;
        MPI_Irecv(buf, (int)bytes, MPI_BYTE, peer, tag, MPI_COMM_WORLD, &r);
        return wait_peer(c, &r, what, peer, from);
    }
#endif
    (void)buf;
    (void)bytes;
    (void)source;
    (void)tag;
    (void)what;
    (void)from;
    return pc_fail(PC_ERR_USAGE, "rank %d: no other rank to receive from", c->rank);
}

void pc_comm_abort(pc_comm *c, int code) {
#ifdef PARCNN_HAVE_MPI
    if (c->mpi) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code);
    }
#endif
    (void)c;
    (void)code;
}

void pc_comm_finalize(pc_comm *c) {
#ifdef PARCNN_HAVE_MPI
    if (!c->mpi) return;
    if (c->rank == 0) { /* every rank announced every collective: collect the last ones */
        double deadline = pc_now() + 10;
        for (int r = 1; r < c->size; r++)
            while (c->arrived[r] < c->op && pc_now() < deadline) poll_arrivals(c);
        MPI_Cancel(&c->arrive_req);
        MPI_Wait(&c->arrive_req, MPI_STATUS_IGNORE);
        free(c->arrived);
        free(c->last_seen);
    }
    free(c->pending);
    for (int i = 0; i < c->n_windows; i++) {
        MPI_Win_unlock_all(c->windows[i]);
        MPI_Win_free(&c->windows[i]);
    }
    free(c->windows);
    MPI_Finalize();
    world = &single;
    free(c);
#else
    (void)c;
#endif
}
