/* A fixed team of worker threads that run one job at a time. The calling thread is
 * worker 0, so a team of one runs everything inline. Every worker sets its OpenMP
 * thread count once, which oneDNN uses for its kernels: per-worker kernels run with a
 * fixed thread count, as the determinism contract requires. Every job runs with
 * subnormals flushed to zero (core/fpenv.h) on every worker and its OpenMP team, the
 * caller's thread included while it runs worker 0's part. */
#ifndef PC_POOL_H
#define PC_POOL_H

#include "core/common.h"

typedef struct pc_pool pc_pool;
typedef void (*pc_job_fn)(int worker, void *arg);

pc_status pc_pool_create(int workers, int threads_per_worker, pc_pool **out);
/* A team of background threads only: the caller is not one of them, so a job can run
 * while the caller does something else (pc_pool_start, then pc_pool_wait). */
pc_status pc_pool_create_background(int workers, int threads_per_worker, pc_pool **out);
/* Run fn(w, arg) on every worker w in [0, workers) and wait for all of them. */
void pc_pool_run(pc_pool *p, pc_job_fn fn, void *arg);
/* Background pools: start a job and return; wait for it to finish. */
void pc_pool_start(pc_pool *p, pc_job_fn fn, void *arg);
void pc_pool_wait(pc_pool *p);
int pc_pool_size(const pc_pool *p);
void pc_pool_destroy(pc_pool *p);

/* [begin, end) of worker w's share of n items, split as evenly as possible in
 * multiples of `align`. */
void pc_split_range(int64_t n, int workers, int w, int64_t align, int64_t *begin, int64_t *end);

#endif
