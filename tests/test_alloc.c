/* No allocation in the steady-state training step.
 *
 * This executable replaces malloc and its relatives (glibc lets a program interpose them
 * for every library it loads, oneDNN and libgomp included) with versions that count calls.
 * A run of 2N steps must allocate exactly as often as a run of N steps with the same
 * settings: set-up and the final evaluation are the same in both, so any difference is
 * allocation inside the step loop (N steps' worth of it). Both runs stop mid-epoch, so no
 * epoch-end evaluation falls between them.
 *
 * oneDNN 2.6 itself allocates a few small objects in every dnnl_primitive_execute (the
 * std::unordered_map its C API builds from the argument array): those are counted apart, by
 * interposing dnnl_primitive_execute too, and reported; parcnn's own count must be zero.
 *
 * Under AddressSanitizer the allocator belongs to the sanitizer: the test is skipped. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "train/train.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#ifndef UNDER_ASAN
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_long allocations, in_onednn_execute;
static _Thread_local int executing; /* this thread is inside dnnl_primitive_execute */

static void count(void) {
    atomic_fetch_add_explicit(executing ? &in_onednn_execute : &allocations, 1,
                              memory_order_relaxed);
}

void *malloc(size_t n) {
    count();
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t size) {
    count();
    return __libc_calloc(n, size);
}
void *realloc(void *p, size_t n) {
    count();
    return __libc_realloc(p, n);
}
void *aligned_alloc(size_t align, size_t n) {
    count();
    return __libc_memalign(align, n);
}
void *memalign(size_t align, size_t n) {
    count();
    return __libc_memalign(align, n);
}
int posix_memalign(void **out, size_t align, size_t n) {
    count();
    void *p = __libc_memalign(align, n);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}

#ifdef PARCNN_HAVE_DNNL
#include <dnnl.h>
/* The kernels run with one OpenMP thread per worker (--threads 1): oneDNN executes on the
 * calling thread, so the thread-local flag covers everything it allocates. */
dnnl_status_t dnnl_primitive_execute(const_dnnl_primitive_t p, dnnl_stream_t s, int nargs,
                                     const dnnl_exec_arg_t *args) {
    static dnnl_status_t (*real)(const_dnnl_primitive_t, dnnl_stream_t, int, const dnnl_exec_arg_t *);
    if (!real) real = dlsym(RTLD_NEXT, "dnnl_primitive_execute");
    executing++;
    dnnl_status_t st = real(p, s, nargs, args);
    executing--;
    return st;
}
#endif

static pc_exec_options exec_opts; /* of the runs below */

/* Allocations made by a training run of `steps` steps (oneDNN's in *onednn). */
static long run(const char *model, int workers, int64_t steps, long *onednn) {
    pc_train_config c;
    pc_train_config_defaults(&c);
    c.model = model;
    c.limit = 128 * 40; /* 40 steps per epoch: both runs stop inside the first epoch */
    c.eval_limit = 256;
    c.epochs = 1;
    c.workers = workers;
    c.exec = exec_opts;
    c.max_steps = steps;
    c.log = NULL;
    long before = atomic_load(&allocations), before_dnnl = atomic_load(&in_onednn_execute);
    pc_status st = pc_train(&c, NULL);
    CHECK(st == PC_OK, "%s: %s", model, pc_last_error());
    *onednn = atomic_load(&in_onednn_execute) - before_dnnl;
    return atomic_load(&allocations) - before;
}

static void no_allocation_in_steps(const char *model, int workers) {
    long da, db;
    run(model, workers, 4, &da); /* warm-up: the dataset file cache, one-time set-ups */
    long a = run(model, workers, 10, &da), b = run(model, workers, 20, &db);
    const char *prec = exec_opts.precision == PC_PRECISION_BF16 ? ", bf16" : "";
    CHECK(a > 0 && a == b, "%s, %d worker(s)%s: %ld allocations in 10 steps, %ld in 20 (%ld per step)",
          model, workers, prec, a, b, (b - a) / 10);
    printf("%s, %d worker(s)%s: %ld allocations for set-up and evaluation, none in the steps; "
           "inside oneDNN's primitive execute: %ld per step\n", model, workers, prec, a, (db - da) / 10);
}

int main(void) {
    no_allocation_in_steps("simple-cnn", 1);
    no_allocation_in_steps("simple-cnn", 2);
    no_allocation_in_steps("minixception", 2);
    no_allocation_in_steps("resnet20", 2);
    exec_opts.conv_algo = PC_CONV_WINOGRAD; /* on every convolution it applies to */
    no_allocation_in_steps("whitenet-s", 2);
    exec_opts.conv_algo = PC_CONV_AUTO;
#ifdef PARCNN_HAVE_DNNL
    exec_opts.precision = PC_PRECISION_BF16;
    no_allocation_in_steps("simple-cnn", 2);
    no_allocation_in_steps("resnet20", 2); /* batch norm and residual adds between bf16 convolutions */
#endif
    return check_summary();
}

#else
int main(void) {
    printf("skipped under AddressSanitizer (it owns the allocator)\n");
    return check_summary();
}
#endif
