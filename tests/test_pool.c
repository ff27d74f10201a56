/* The pool's floating-point mode: every worker, every thread of a worker's OpenMP team
 * (where oneDNN runs) and the caller's thread while it runs worker 0 compute with
 * subnormals flushed to zero (and read as zero), and the caller gets its own mode back
 * after the job. Checked by arithmetic, not only by reading the control register. */
#include <stdatomic.h>
#include <string.h>

#include "check.h"
#include "core/fpenv.h"
#include "train/pool.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define WORKERS 3
#define THREADS 2

typedef struct {
    atomic_int flushed, computed, threads;
} mode_job;

/* 1 if a product with a subnormal result comes out as zero and a subnormal input reads as
 * zero on this thread. */
static int flushes_here(void) {
    volatile float tiny = 1e-30f, scale = 1e-10f, sub = 1e-40f;
    float product = tiny * scale;  /* 1e-40: subnormal unless flushed */
    float sum = sub + 0.0f;        /* a subnormal input, read as zero under DAZ */
    return product == 0.0f && sum == 0.0f;
}

static void record(mode_job *j) {
    atomic_fetch_add(&j->threads, 1);
    atomic_fetch_add(&j->flushed, pc_fp_flushing() == 1);
    atomic_fetch_add(&j->computed, flushes_here());
}

static void mode_worker(int w, void *arg) {
    mode_job *j = arg;
#ifdef _OPENMP
#pragma omp parallel
    record(j);
#else
    record(j);
#endif
}

static void check_pool(pc_pool *p, int expect_threads, const char *what) {
    mode_job j;
    memset(&j, 0, sizeof j);
    pc_pool_run(p, mode_worker, &j);
    CHECK(j.threads == expect_threads, "%s: %d threads ran, expected %d", what, j.threads,
          expect_threads);
    CHECK(j.flushed == j.threads, "%s: %d of %d threads had FTZ|DAZ set", what, j.flushed,
          j.threads);
    CHECK(j.computed == j.threads, "%s: %d of %d threads flushed a subnormal", what,
          j.computed, j.threads);
}

int main(void) {
    if (pc_fp_flushing() < 0) {
        printf("this build cannot set the floating-point mode: skipped\n");
        return 0;
    }
    CHECK(pc_fp_flushing() == 0 && !flushes_here(), "the test starts in the default mode");
#ifdef _OPENMP
    /* a team created by the caller before the pool existed, in the default mode */
    omp_set_num_threads(THREADS);
    atomic_int before = 0;
#pragma omp parallel
    atomic_fetch_add(&before, pc_fp_flushing() == 0);
    CHECK(before == THREADS, "the caller's team starts in the default mode");
    int team = THREADS;
#else
    int team = 1;
#endif
    pc_pool *p;
    CHECK(pc_pool_create(WORKERS, THREADS, &p) == PC_OK, "pool: %s", pc_last_error());
    check_pool(p, WORKERS * team, "first job");
    check_pool(p, WORKERS * team, "second job");
    CHECK(pc_fp_flushing() == 0 && !flushes_here(), "the caller's mode is restored after a job");
    pc_pool_destroy(p);

    /* the background loader's kind of pool: the caller is not a worker */
    CHECK(pc_pool_create_background(2, 1, &p) == PC_OK, "pool: %s", pc_last_error());
    mode_job j;
    memset(&j, 0, sizeof j);
    pc_pool_start(p, mode_worker, &j);
    pc_pool_wait(p);
    CHECK(j.flushed == j.threads && j.computed == j.threads && j.threads >= 2,
          "background pool: %d and %d of %d threads flush", j.flushed, j.computed, j.threads);
    pc_pool_destroy(p);

    pc_fp_mode old = pc_fp_flush_denormals();
    CHECK(pc_fp_flushing() == 1 && flushes_here(), "pc_fp_flush_denormals sets the mode");
    pc_fp_restore(old);
    CHECK(pc_fp_flushing() == 0 && !flushes_here(), "pc_fp_restore gives the mode back");
    return check_summary();
}
