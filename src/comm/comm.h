/* The communicator between processes: a thin layer over MPI (Open MPI), or a
 * single process when parcnn was not launched by mpirun/srun or was built
 * without MPI. Every collective waits at most `timeout` seconds; on a time-out
 * the error names the step, the operation and (on rank 0) the ranks that did
 * not arrive, and the caller aborts all ranks. */
#ifndef PC_COMM_H
#define PC_COMM_H

#include <stdint.h>

#include "core/common.h"

typedef struct pc_comm pc_comm;

/* Start MPI when launched by an MPI launcher; otherwise a single-rank communicator. */
pc_status pc_comm_init(int *argc, char ***argv, pc_comm **out);
void pc_comm_finalize(pc_comm *c);
int pc_comm_rank(const pc_comm *c);
int pc_comm_size(const pc_comm *c);
/* The process-wide communicator (set by pc_comm_init; a single rank before). */
pc_comm *pc_comm_world(void);

void pc_comm_set_timeout(pc_comm *c, double seconds);
/* Label collectives in time-out messages with the training step. */
void pc_comm_set_step(pc_comm *c, int64_t step);

/* The payload this rank has sent to other ranks since the start, in bytes and in
 * point-to-point transfers, counted as a direct exchange would send it (alltoallv: its
 * parts for the others; allgather: its part to each other rank; broadcast: the root to
 * each other rank; allreduce: a ring's 2 (R-1)/R of the data); 0 for a single process. */
void pc_comm_traffic(const pc_comm *c, int64_t *bytes, int64_t *messages);

/* Each rank sends send_counts[d] floats from send + send_displs[d] to rank d. */
pc_status pc_comm_alltoallv(pc_comm *c, const float *send, const int *send_counts,
                            const int *send_displs, float *recv, const int *recv_counts,
                            const int *recv_displs);
/* Rank r contributes counts[r] floats at recv + displs[r]; everyone gets all. In place:
 * each rank's own part is already at its place in recv. */
pc_status pc_comm_allgatherv(pc_comm *c, float *recv, const int *counts, const int *displs);
/* Bytes, in place: rank r's part is counts[r] bytes at recv + displs[r]; any sizes. */
pc_status pc_comm_allgatherv_bytes(pc_comm *c, void *recv, const int64_t *counts,
                                   const int64_t *displs);
/* Every rank contributes `bytes` bytes; recv holds size*bytes, in rank order. */
pc_status pc_comm_allgather_bytes(pc_comm *c, const void *send, int bytes, void *recv);
/* Non-blocking sum of `count` floats in place across ranks (MPI_Iallreduce; the
 * summation order is MPI's: not bit-reproducible across rank counts). Requests are
 * kept by the communicator until pc_comm_wait_all. */
pc_status pc_comm_iallreduce_sum(pc_comm *c, float *buf, int count);
pc_status pc_comm_wait_all(pc_comm *c);
/* Point-to-point, non-blocking: `bytes` bytes to or from one rank. Messages between two
 * ranks match in the order they were posted. The requests are kept by the communicator
 * until pc_comm_wait_exchange waits for all of them (room for them is made beforehand:
 * each pc_comm_reserve adds room for `requests` more, so that posting never allocates);
 * pc_comm_progress lets MPI move them on meanwhile (it progresses transfers only inside
 * its own calls). */
pc_status pc_comm_reserve(pc_comm *c, int requests);
pc_status pc_comm_isend(pc_comm *c, const void *buf, int bytes, int dest);
pc_status pc_comm_irecv(pc_comm *c, void *buf, int bytes, int source);
void pc_comm_progress(pc_comm *c);
pc_status pc_comm_wait_exchange(pc_comm *c);
/* Ranks on one machine: when all of them run on this one (MPI_COMM_TYPE_SHARED spans
 * the job), they can share memory. pc_comm_shared_alloc (collective) gives `bytes` of
 * memory from this rank (any size per rank, 0 too) that every rank can load and store
 * (an MPI-3 shared window, kept until pc_comm_finalize); bases[d], for each of the
 * pc_comm_size ranks, is where rank d's part is mapped in this process.
 * pc_comm_shared_fence: a memory fence and a barrier, so every rank's stores before it
 * are visible to every rank after it. */
int pc_comm_one_machine(const pc_comm *c);
pc_status pc_comm_shared_alloc(pc_comm *c, int64_t bytes, void **bases);
pc_status pc_comm_shared_fence(pc_comm *c);
/* Count payload moved between ranks by other means than messages (shared memory), as a
 * direct exchange would send it (pc_comm_traffic). */
void pc_comm_count_traffic(pc_comm *c, int64_t bytes, int64_t messages);
pc_status pc_comm_bcast(pc_comm *c, void *buf, int64_t bytes, int root);
pc_status pc_comm_barrier(pc_comm *c);
/* Point to point (the parameter server): a send in flight, completed by
 * pc_comm_wait_send; the buffer must stay untouched until then (tags apart from the
 * overlapped exchange's). */
typedef struct {
    uint64_t handle;  /* the MPI_Request */
    int active, peer;
} pc_request;
pc_status pc_comm_send_tagged(pc_comm *c, const void *buf, int64_t bytes, int dest, int tag,
                              pc_request *req);
pc_status pc_comm_wait_send(pc_comm *c, pc_request *req, const char *what);
/* Receive `bytes` bytes tagged `tag` from rank `source` (-1: any rank; the sender into
 * *from when non-NULL), waiting at most the time-out; the error names the rank waited for. */
pc_status pc_comm_recv_tagged(pc_comm *c, void *buf, int64_t bytes, int source, int tag,
                             const char *what, int *from);
/* Stop every rank with `code` (MPI_Abort); returns only for a single rank. */
void pc_comm_abort(pc_comm *c, int code);

#endif
