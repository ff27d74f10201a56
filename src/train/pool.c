#include "train/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/fpenv.h"

#ifdef _OPENMP
#include <omp.h>
#endif

struct pc_pool {
    int workers, threads;
    int first_thread;   /* 1: the caller is worker 0; 0: every worker is a thread */
    int running;
    pthread_t *tids;
    pthread_barrier_t start, done;
    pc_job_fn fn;
    void *arg;
    int quit;
};

typedef struct {
    pc_pool *pool;
    int worker;
} worker_arg;

static void set_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* Subnormals flushed in the calling thread's OpenMP team too (where oneDNN runs): a
 * team's threads are created once, inheriting the mode of the thread that created them,
 * which may have been another mode; libgomp then reuses them for every region of the same
 * size. The caller's own mode is set by the caller. */
static void flush_denormals_in_team(int n) {
#ifdef _OPENMP
    if (n > 1) {
#pragma omp parallel num_threads(n)
        pc_fp_flush_denormals();
    }
#else
    (void)n;
#endif
}

static void *worker_main(void *p) {
    worker_arg *wa = p;
    pc_pool *pool = wa->pool;
    int w = wa->worker;
    free(wa);
    pc_fp_flush_denormals(); /* a pool thread computes only: no mode to give back */
    set_threads(pool->threads);
    flush_denormals_in_team(pool->threads);
    for (;;) {
        pthread_barrier_wait(&pool->start);
        if (pool->quit) break;
        pool->fn(w, pool->arg);
        pthread_barrier_wait(&pool->done);
    }
    return NULL;
}

static pc_status create(int workers, int threads_per_worker, int caller_works, pc_pool **out) {
    pc_pool *p = calloc(1, sizeof *p);
    if (!p) return pc_fail_nomem();
    p->workers = workers;
    p->threads = threads_per_worker;
    p->first_thread = caller_works ? 1 : 0;
    p->tids = calloc(workers, sizeof(pthread_t));
    if (!p->tids) {
        free(p);
        return pc_fail_nomem();
    }
    /* the caller always takes part in the barriers */
    int parties = caller_works ? workers : workers + 1;
    pthread_barrier_init(&p->start, NULL, parties);
    pthread_barrier_init(&p->done, NULL, parties);
    if (caller_works) {
        set_threads(threads_per_worker);
        pc_fp_mode caller = pc_fp_flush_denormals();
        flush_denormals_in_team(threads_per_worker);
        pc_fp_restore(caller);
    }
    for (int w = p->first_thread; w < workers; w++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) return pc_fail_nomem(); /* leaks a partial pool: fatal anyway */
        wa->pool = p;
        wa->worker = w;
        int err = pthread_create(&p->tids[w], NULL, worker_main, wa);
        if (err == EAGAIN) /* no memory for its stack, or the thread limit */
            return pc_fail(PC_ERR_NOMEM, "cannot start a thread: out of memory for its stack, "
                           "or at the thread limit (ulimit -u)");
        if (err) return pc_fail(PC_ERR_INTERNAL, "cannot start a thread: %s", strerror(err));
    }
    *out = p;
    return PC_OK;
}

pc_status pc_pool_create(int workers, int threads_per_worker, pc_pool **out) {
    return create(workers, threads_per_worker, 1, out);
}

pc_status pc_pool_create_background(int workers, int threads_per_worker, pc_pool **out) {
    return create(workers, threads_per_worker, 0, out);
}

void pc_pool_start(pc_pool *p, pc_job_fn fn, void *arg) {
    p->fn = fn;
    p->arg = arg;
    p->running = 1;
    pthread_barrier_wait(&p->start);
}

void pc_pool_wait(pc_pool *p) {
    if (!p->running) return;
    pthread_barrier_wait(&p->done);
    p->running = 0;
}

void pc_pool_run(pc_pool *p, pc_job_fn fn, void *arg) {
    pc_pool_start(p, fn, arg);
    if (p->first_thread) {
        /* worker 0 is the caller's thread: the workers' mode for the job, then the
         * caller's again */
        pc_fp_mode caller = pc_fp_flush_denormals();
        fn(0, arg);
        pc_fp_restore(caller);
    }
    pc_pool_wait(p);
}

int pc_pool_size(const pc_pool *p) { return p->workers; }

void pc_pool_destroy(pc_pool *p) {
    if (!p) return;
    pc_pool_wait(p);
    p->quit = 1;
    pthread_barrier_wait(&p->start);
    for (int w = p->first_thread; w < p->workers; w++) pthread_join(p->tids[w], NULL);
    pthread_barrier_destroy(&p->start);
    pthread_barrier_destroy(&p->done);
    free(p->tids);
    free(p);
}

void pc_split_range(int64_t n, int workers, int w, int64_t align, int64_t *begin, int64_t *end) {
    int64_t blocks = (n + align - 1) / align;
    int64_t b0 = blocks * w / workers, b1 = blocks * (w + 1) / workers;
    *begin = PC_MIN(b0 * align, n);
    *end = PC_MIN(b1 * align, n);
}
