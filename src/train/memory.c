#include "train/memory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "nn/exec.h"
#include "optim/optim.h"
#include "train/strategy.h"

#define MB (1024.0 * 1024.0)

/* oneDNN's generated code, primitive caches and the threads' small allocations: what a
 * run's first steps add beyond its own buffers (at least 8 MB for the zoo's models). */
#define RUNTIME_SLACK ((int64_t)8 << 20)

/* A "Name:   N kB" line of /proc/self/status, in bytes; -1 when absent. */
static int64_t status_kb(const char *name) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    int64_t v = -1;
    size_t n = strlen(name);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            v = strtoll(line + n + 1, NULL, 10) * 1024;
            break;
        }
    fclose(f);
    return v;
}

/* A number in a cgroup file (-1 when absent, unreadable, or "max"). */
static int64_t read_number(const char *dir, const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char buf[64] = "";
    int ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    if (!ok || strncmp(buf, "max", 3) == 0) return -1;
    char *end;
    long long v = strtoll(buf, &end, 10);
    return end == buf ? -1 : (int64_t)v;
}

/* The memory cgroup's limit and usage (limit -1: none). cgroup v2 ("0::/path") or v1
 * ("N:memory:/path"); the path as /proc/self/cgroup gives it, else the mount's root (in a
 * container the process sees its own cgroup there). */
static void cgroup_memory(int64_t *limit, int64_t *usage) {
    *limit = *usage = -1;
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return;
    char line[1024], dirs[2][1100];
    int v2 = -1;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *path = strchr(line, ':') ? strchr(strchr(line, ':') + 1, ':') : NULL;
        if (!path) continue;
        *path++ = 0;
        const char *controllers = strchr(line, ':') + 1;
        int is_v2 = controllers[0] == 0, is_v1 = strstr(controllers, "memory") != NULL;
        if (!is_v2 && !is_v1) continue;
        const char *root = is_v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory";
        snprintf(dirs[0], sizeof dirs[0], "%s%s", root, path);
        snprintf(dirs[1], sizeof dirs[1], "%s", root);
        v2 = is_v2;
        if (is_v1) break; /* v1's memory controller wins over a v2 line without one */
    }
    fclose(f);
    if (v2 < 0) return;
    for (int k = 0; k < 2 && *limit < 0; k++) {
        *limit = read_number(dirs[k], v2 ? "memory.max" : "memory.limit_in_bytes");
        *usage = read_number(dirs[k], v2 ? "memory.current" : "memory.usage_in_bytes");
    }
    if (*limit >= ((int64_t)1 << 60)) *limit = -1; /* v1's "no limit" */
}

static int64_t soft_limit(int resource) {
    struct rlimit r;
    if (getrlimit(resource, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return -1;
    return (int64_t)r.rlim_cur;
}

int64_t pc_memory_thread_stack(void) {
    int64_t s = soft_limit(RLIMIT_STACK);
    return s > 0 ? s : (int64_t)8 << 20;
}

static pc_status too_much(const char *what, int64_t need, int64_t limit, const char *which) {
    return pc_fail(PC_ERR_NOMEM, "%s: needs about %.0f MB, limit is %.0f MB (%s); use fewer "
                   "--workers or a smaller --shard-size, or raise the limit", what,
                   (double)need / MB, (double)limit / MB, which);
}

pc_status pc_memory_check(const pc_memory_needs *n, const char *what) {
    const int64_t add = n->committed + RUNTIME_SLACK;
    int64_t limit = soft_limit(RLIMIT_AS), used = status_kb("VmSize");
    if (limit > 0 && used > 0) {
        /* not counted: the 64 MB of address space glibc reserves for each thread's malloc
         * arena, as it does without them when they do not fit */
        int64_t need = used + add + n->stacks;
        if (need > limit) return too_much(what, need, limit, "ulimit -v: the address space");
    }
    limit = soft_limit(RLIMIT_DATA), used = status_kb("VmData");
    if (limit > 0 && used > 0 && used + add + n->stacks > limit)
        return too_much(what, used + add + n->stacks, limit, "ulimit -d: the data segment");
    int64_t usage;
    cgroup_memory(&limit, &usage);
    used = status_kb("VmRSS");
    if (limit > 0 && usage >= 0 && used > 0) {
        int64_t others = PC_MAX(usage - used, 0); /* other processes of the cgroup */
        if (used + add > limit - others)
            return too_much(what, used + add, limit - others,
                            others > 0 ? "the memory cgroup's limit, less what its other "
                                         "processes use" : "the memory cgroup's limit");
    }
    return PC_OK;
}

static int ceil_log2(int64_t n) {
    int d = 0;
    while (((int64_t)1 << d) < n) d++;
    return d;
}

/* What pc_train's setup allocates beyond the model and the data (train.c, reduce.c,
 * strategy.c): per worker a replica and the reducer's gradient buffers (a node per shard
 * subtree it owns, and one per tree level), the optimizer state, a role byte per
 * parameter, weight averages and the loader's two staged steps. Checkpoints are written
 * tensor by tensor. */
pc_status pc_memory_check_train(const pc_train_config *c, const pc_model *m, int ranks,
                                int64_t sample_floats) {
    const int64_t P = (int64_t)sizeof(float) * (m->n_params + m->n_buffers);
    const int64_t opt = (int64_t)sizeof(float) * pc_opt_state_per_param(&c->opt) * m->n_params;
    const int W = c->workers, shards = c->batch / c->shard_size;
    const int64_t per_worker = PC_MAX(shards / PC_MAX(ranks * W, 1), 1);
    const int64_t replica = pc_exec_bytes(m, c->shard_size, &c->exec);
    if (replica < 0) return pc_fail_nomem();
    pc_memory_needs n = {0};
    n.committed = W * replica + W * (1 + ceil_log2(per_worker)) * P + opt + m->n_params;
    if (ranks > 1) n.committed += 3 * P;
    if (c->ema > 0 || c->lookahead > 0) n.committed += P;
    if (c->reduce_fast && ranks > 1) n.committed += 2 * W * P;
    if (c->sync.kind == PC_SYNC_LOCAL_SGD) n.committed += (int64_t)PC_MAX(c->replicas, 1) * (P + opt);
    if (c->loader_threads > 0)
        n.committed += 2 * (int64_t)sizeof(float) * (shards / PC_MAX(ranks, 1)) * c->shard_size * sample_floats;
    const int threads = (W - 1) + PC_MAX(c->loader_threads, 0) + W * (PC_MAX(c->threads, 1) - 1);
    n.stacks = threads * pc_memory_thread_stack();
    return pc_memory_check(&n, "train");
}

void pc_memory_limit_note(char *buf, size_t n) {
    int64_t as = soft_limit(RLIMIT_AS), data = soft_limit(RLIMIT_DATA), cg, usage;
    cgroup_memory(&cg, &usage);
    if (as > 0)
        snprintf(buf, n, " (the address space is limited to %.0f MB: ulimit -v)", (double)as / MB);
    else if (data > 0)
        snprintf(buf, n, " (the data segment is limited to %.0f MB: ulimit -d)", (double)data / MB);
    else if (cg > 0)
        snprintf(buf, n, " (the memory cgroup is limited to %.0f MB)", (double)cg / MB);
    else if (n > 0)
        buf[0] = 0;
}
