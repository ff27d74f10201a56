/* The memory a training run needs, estimated before it starts, against the limits the
 * process runs under: the address space (RLIMIT_AS, `ulimit -v`), the data segment
 * (RLIMIT_DATA, `ulimit -d`) and the memory cgroup's limit (memory.max, or
 * memory.limit_in_bytes under cgroup v1). */
#ifndef PC_MEMORY_H
#define PC_MEMORY_H

#include <stdint.h>

#include "core/common.h"
#include "nn/model.h"
#include "train/train.h"

/* What a run is about to allocate beyond what the process holds now. */
typedef struct {
    int64_t committed; /* bytes it writes: replicas, gradients, optimizer state, buffers */
    int64_t stacks;    /* bytes of the stacks of the threads it starts */
} pc_memory_needs;

/* The process's usage now and its tightest limit. PC_OK when the needs fit (or no limit is
 * set); otherwise PC_ERR_NOMEM with one line "what: needs about N MB, limit is M MB (...)"
 * naming the limit and what lowers the need. */
pc_status pc_memory_check(const pc_memory_needs *needs, const char *what);

/* The check for pc_train: the replicas, gradients, optimizer state and buffers it sets up
 * for config c, model m (created) and ranks processes, with samples of sample_floats
 * floats. Call it before any of them exists. */
pc_status pc_memory_check_train(const pc_train_config *c, const pc_model *m, int ranks,
                                int64_t sample_floats);

/* After an out-of-memory error: " (the address space is limited to M MB: ulimit -v)" or
 * the like for the limit in force, "" when none is set. */
void pc_memory_limit_note(char *buf, size_t n);

/* The stack size of a new thread (pthread's default: RLIMIT_STACK, 8 MB when unlimited). */
int64_t pc_memory_thread_stack(void);

#endif
