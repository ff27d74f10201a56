/* Shared machinery of the oneDNN plans: the global engine, resource bookkeeping, the user
 * scratchpad, and "ports" (plain-layout user tensors with an optional reorder into the layout
 * a primitive prefers). The plans themselves are in dnnl_conv.c and dnnl_pool.c. */
#include "dnnl_kernels.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnnl_internal.h"

/* ---- global engine ---- */

static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine;
static dnnl_status_t engine_status = dnnl_runtime_error;

/* oneDNN generates the JIT kernels of its fp32 GEMM (behind matmul, inner product and the
 * Winograd plans) at the first call, inside a once-only initialization that does not
 * check its allocations: under a tight memory limit that first call crashes. One tiny
 * product here, when memory is still plentiful, makes them before any plan runs. */
static void gemm_warm_up(void) {
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4] = {0};
    (void)dnnl_sgemm('N', 'N', 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
}

static void engine_init(void) {
    engine_status = dnnl_engine_create(&engine, dnnl_cpu, 0);
    if (engine_status != dnnl_success) engine = NULL;
    else gemm_warm_up();
}

dnnl_engine_t pcd_engine(void) {
    pthread_once(&engine_once, engine_init);
    if (!engine)
        pc_fail(PC_ERR_INTERNAL, "oneDNN: cannot create the CPU engine (status %d)",
                (int)engine_status);
    return engine;
}

int pc_dnnl_available(void) { return pcd_engine() != NULL; }

/* ---- native bf16: can oneDNN create bf16 convolution and inner-product primitives? ---- */

static pthread_once_t bf16_once = PTHREAD_ONCE_INIT;
static int bf16_native;

static int bf16_pd_ok(const_dnnl_op_desc_t desc) {
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_primitive_desc_create(&pd, desc, NULL, engine, NULL) != dnnl_success) return 0;
    dnnl_primitive_desc_destroy(pd);
    return 1;
}

/* The bf16 GEMM's kernels (bf16 inner products, for the reason of gemm_warm_up): one tiny
 * inner product on plain layouts, which oneDNN runs on its GEMM. Failures are ignored: the
 * plans then report their own. */
static void bf16_gemm_warm_up(void) {
    dnnl_dims_t src_dims = {2, 16}, wei_dims = {16, 16};
    dnnl_memory_desc_t src, wei, dst;
    dnnl_inner_product_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_stream_t stream = NULL;
    dnnl_memory_t mem[3] = {NULL, NULL, NULL};
    if (dnnl_memory_desc_init_by_tag(&src, 2, src_dims, dnnl_bf16, dnnl_ab) == dnnl_success &&
        dnnl_memory_desc_init_by_tag(&wei, 2, wei_dims, dnnl_bf16, dnnl_ab) == dnnl_success &&
        dnnl_memory_desc_init_by_tag(&dst, 2, src_dims, dnnl_f32, dnnl_ab) == dnnl_success &&
        dnnl_inner_product_forward_desc_init(&desc, dnnl_forward_inference, &src, &wei, NULL,
                                             &dst) == dnnl_success &&
        dnnl_primitive_desc_create(&pd, &desc, NULL, engine, NULL) == dnnl_success &&
        dnnl_primitive_create(&prim, pd) == dnnl_success &&
        dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) == dnnl_success &&
        dnnl_memory_create(&mem[0], &src, engine, DNNL_MEMORY_ALLOCATE) == dnnl_success &&
        dnnl_memory_create(&mem[1], &wei, engine, DNNL_MEMORY_ALLOCATE) == dnnl_success &&
        dnnl_memory_create(&mem[2], &dst, engine, DNNL_MEMORY_ALLOCATE) == dnnl_success) {
        void *h;
        for (int k = 0; k < 2; k++) /* zeros: no stray bits read as NaN */
            if (dnnl_memory_get_data_handle(mem[k], &h) == dnnl_success)
                memset(h, 0, dnnl_memory_desc_get_size(k ? &wei : &src));
        dnnl_exec_arg_t args[3] = {
            {DNNL_ARG_SRC, mem[0]}, {DNNL_ARG_WEIGHTS, mem[1]}, {DNNL_ARG_DST, mem[2]}};
        if (dnnl_primitive_execute(prim, stream, 3, args) == dnnl_success)
            dnnl_stream_wait(stream);
    }
    for (int k = 0; k < 3; k++)
        if (mem[k]) dnnl_memory_destroy(mem[k]);
    if (stream) dnnl_stream_destroy(stream);
    if (prim) dnnl_primitive_destroy(prim);
    if (pd) dnnl_primitive_desc_destroy(pd);
}

static void bf16_probe(void) {
    dnnl_dims_t src = {2, 16, 8, 8}, wei = {16, 16, 3, 3}, dst = {2, 16, 8, 8};
    dnnl_dims_t ip_src = {2, 64}, ip_wei = {16, 64}, ip_dst = {2, 16};
    dnnl_dims_t strides = {1, 1}, pad = {1, 1};
    dnnl_memory_desc_t s, w, d, is, iw, id;
    dnnl_convolution_desc_t conv;
    dnnl_inner_product_desc_t ip;
    bf16_native =
        dnnl_memory_desc_init_by_tag(&s, 4, src, dnnl_bf16, dnnl_format_tag_any) == dnnl_success &&
        dnnl_memory_desc_init_by_tag(&w, 4, wei, dnnl_bf16, dnnl_format_tag_any) == dnnl_success &&
        dnnl_memory_desc_init_by_tag(&d, 4, dst, dnnl_f32, dnnl_format_tag_any) == dnnl_success &&
        dnnl_memory_desc_init_by_tag(&is, 2, ip_src, dnnl_bf16, dnnl_format_tag_any) == dnnl_success &&
        dnnl_memory_desc_init_by_tag(&iw, 2, ip_wei, dnnl_bf16, dnnl_format_tag_any) == dnnl_success &&
        dnnl_memory_desc_init_by_tag(&id, 2, ip_dst, dnnl_f32, dnnl_format_tag_any) == dnnl_success &&
        dnnl_convolution_forward_desc_init(&conv, dnnl_forward_training, dnnl_convolution_direct,
                                           &s, &w, NULL, &d, strides, pad, pad) == dnnl_success &&
        dnnl_inner_product_forward_desc_init(&ip, dnnl_forward_training, &is, &iw, NULL, &id) ==
            dnnl_success &&
        bf16_pd_ok(&conv) && bf16_pd_ok(&ip);
    if (bf16_native) bf16_gemm_warm_up();
}

int pc_dnnl_bf16_native(void) {
    if (!pcd_engine()) return 0;
    pthread_once(&bf16_once, bf16_probe);
    return bf16_native;
}

int pc_dnnl_bf16_amx(void) {
    return pc_dnnl_bf16_native() && dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx512_core_amx;
}

/* ---- the activation layout oneDNN's convolutions want ---- */

static pthread_once_t block_once = PTHREAD_ONCE_INIT;
static int act_block;

/* The channel block of the destination layout oneDNN picks for a typical fp32 convolution
 * (32 -> 32 channels, 3x3): 8 on AVX2 (nChw8c), 16 on AVX-512 (nChw16c); 0 if not blocked
 * by channels alone. */
static void block_probe(void) {
    dnnl_dims_t src = {2, 32, 8, 8}, wei = {32, 32, 3, 3}, strides = {1, 1}, pad = {1, 1};
    dnnl_memory_desc_t s, w, d;
    dnnl_convolution_desc_t conv;
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_memory_desc_init_by_tag(&s, 4, src, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&w, 4, wei, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&d, 4, src, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        dnnl_convolution_forward_desc_init(&conv, dnnl_forward_training, dnnl_convolution_direct,
                                           &s, &w, NULL, &d, strides, pad, pad) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &conv, NULL, engine, NULL) != dnnl_success)
        return;
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    const dnnl_blocking_desc_t *bd = &md->format_desc.blocking;
    if (md->format_kind == dnnl_blocked && bd->inner_nblks == 1 && bd->inner_idxs[0] == 1 &&
        (bd->inner_blks[0] == 8 || bd->inner_blks[0] == 16))
        act_block = (int)bd->inner_blks[0];
    dnnl_primitive_desc_destroy(pd);
}

int pc_dnnl_activation_block(void) {
    if (!pcd_engine()) return 0;
    pthread_once(&block_once, block_probe);
    return act_block;
}

/* ---- creation helpers ---- */

pc_status pcd_fail(dnnl_status_t st, const char *what) {
    if (st == dnnl_out_of_memory)
        return pc_fail(PC_ERR_NOMEM, "out of memory creating oneDNN's %s", what);
    return pc_fail(PC_ERR_INTERNAL, "oneDNN: %s failed (status %d)", what, (int)st);
}

int pcd_base_init(pcd_base *b) {
    memset(b, 0, sizeof *b);
    dnnl_engine_t eng = pcd_engine();
    if (!eng) return -1;
    PCD_TRY(dnnl_stream_create(&b->stream, eng, dnnl_stream_default_flags), "stream create");
    PCD_TRY(dnnl_primitive_attr_create(&b->attr), "attr create");
    PCD_TRY(dnnl_primitive_attr_set_scratchpad_mode(b->attr, dnnl_scratchpad_mode_user),
            "set scratchpad mode");
    return 0;
fail:
    return -1;
}

static pcd_prim *prim_slot(pcd_base *b) {
    if (b->nprims >= PCD_MAX_PRIMS) {
        pc_fail(PC_ERR_INTERNAL, "oneDNN plan: too many primitives");
        return NULL;
    }
    pcd_prim *p = &b->prims[b->nprims];
    memset(p, 0, sizeof *p);
    return p;
}

/* pd is registered in the base right away (so it is freed on failure), then the primitive. */
static pcd_prim *prim_finish(pcd_base *b, pcd_prim *p, const char *what) {
    b->nprims++;
    dnnl_status_t st = dnnl_primitive_create(&p->prim, p->pd);
    if (st != dnnl_success) {
        p->prim = NULL;
        pcd_fail(st, what);
        return NULL;
    }
    return p;
}

pcd_prim *pcd_prim_new(pcd_base *b, const_dnnl_op_desc_t desc,
                       const_dnnl_primitive_desc_t hint, const char *what) {
    pcd_prim *p = prim_slot(b);
    if (!p) return NULL;
    dnnl_status_t st = dnnl_primitive_desc_create(&p->pd, desc, b->attr, pcd_engine(), hint);
    if (st != dnnl_success) {
        pcd_fail(st, what);
        return NULL;
    }
    return prim_finish(b, p, what);
}

/* A primitive with one post-op: ReLU on its output, or the sum dst += result. */
/* sum: a sum post-op; otherwise ReLU, bounded at `bound` (ReLU6: 6) when it is above 0. */
static pcd_prim *prim_new_post_op(pcd_base *b, const_dnnl_op_desc_t desc, int sum, float bound,
                                  const char *what) {
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    pcd_prim *p = NULL;
    if (dnnl_primitive_attr_clone(&attr, b->attr) != dnnl_success ||
        dnnl_post_ops_create(&ops) != dnnl_success ||
        (sum     ? dnnl_post_ops_append_sum(ops, 1.0f)
         : bound ? dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_clip, 0.0f, bound)
                 : dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f)) != dnnl_success ||
        dnnl_primitive_attr_set_post_ops(attr, ops) != dnnl_success) {
        pc_fail(PC_ERR_INTERNAL, "oneDNN: %s: %s post-op attribute failed", what,
                sum ? "sum" : "ReLU");
    } else if ((p = prim_slot(b))) {
        dnnl_status_t st = dnnl_primitive_desc_create(&p->pd, desc, attr, pcd_engine(), NULL);
        if (st != dnnl_success) {
            pcd_fail(st, what);
            p = NULL;
        } else {
            p = prim_finish(b, p, what);
        }
    }
    if (ops) dnnl_post_ops_destroy(ops);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return p;
}

pcd_prim *pcd_prim_new_relu(pcd_base *b, const_dnnl_op_desc_t desc, const char *what) {
    return prim_new_post_op(b, desc, 0, 0.0f, what);
}

pcd_prim *pcd_prim_new_relu6(pcd_base *b, const_dnnl_op_desc_t desc, const char *what) {
    return prim_new_post_op(b, desc, 0, 6.0f, what);
}

pcd_prim *pcd_prim_new_sum(pcd_base *b, const_dnnl_op_desc_t desc, const char *what) {
    return prim_new_post_op(b, desc, 1, 0.0f, what);
}

static pcd_prim *reorder_new(pcd_base *b, const dnnl_memory_desc_t *src,
                             const dnnl_memory_desc_t *dst) {
    pcd_prim *p = prim_slot(b);
    if (!p) return NULL;
    dnnl_engine_t eng = pcd_engine();
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&p->pd, src, eng, dst, eng, b->attr);
    if (st != dnnl_success) {
        pcd_fail(st, "reorder");
        return NULL;
    }
    return prim_finish(b, p, "reorder");
}

dnnl_memory_t pcd_mem_new(pcd_base *b, const dnnl_memory_desc_t *md, void *handle) {
    if (b->nmems >= PCD_MAX_MEMS) {
        pc_fail(PC_ERR_INTERNAL, "oneDNN plan: too many memory objects");
        return NULL;
    }
    dnnl_memory_t m = NULL;
    dnnl_status_t st = dnnl_memory_create(&m, md, pcd_engine(), handle ? handle : DNNL_MEMORY_NONE);
    if (st != dnnl_success) {
        pcd_fail(st, "memory object");
        return NULL;
    }
    b->mems[b->nmems++] = m;
    return m;
}

void *pcd_buf_new(pcd_base *b, size_t bytes) {
    if (b->nbufs >= PCD_MAX_BUFS) {
        pc_fail(PC_ERR_INTERNAL, "oneDNN plan: too many buffers");
        return NULL;
    }
    void *p = pc_alloc(bytes);
    if (!p) return NULL;
    b->bufs[b->nbufs++] = p;
    return p;
}

int pcd_md_init(dnnl_memory_desc_t *md, int ndims, const dnnl_dim_t *dims,
                dnnl_format_tag_t tag, const char *what) {
    return pcd_md_init_dt(md, ndims, dims, dnnl_f32, tag, what);
}

int pcd_md_init_dt(dnnl_memory_desc_t *md, int ndims, const dnnl_dim_t *dims,
                   dnnl_data_type_t dt, dnnl_format_tag_t tag, const char *what) {
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(md, ndims, dims, dt, tag);
    if (st != dnnl_success) {
        pc_fail(PC_ERR_INTERNAL, "oneDNN: memory descriptor for %s failed (status %d)", what,
                (int)st);
        return -1;
    }
    return 0;
}

int pcd_md_is_zero(const dnnl_memory_desc_t *md) { return !md || md->ndims == 0; }

const dnnl_memory_desc_t *pcd_arg_md(const pcd_prim *p, int arg) {
    return dnnl_primitive_desc_query_md(p->pd, dnnl_query_exec_arg_md, arg);
}

/* own_copy: give the port an inner buffer even when the layouts agree (the reorder is then
 * a copy), so that the primitive's input can be changed without touching the caller's. */
static int port_init(pcd_base *b, pcd_port *pt, const dnnl_memory_desc_t *user_md,
                     const dnnl_memory_desc_t *prim_md, int is_output, int phase, int own_copy) {
    memset(pt, 0, sizeof *pt);
    if (!prim_md || pcd_md_is_zero(prim_md)) {
        pc_fail(PC_ERR_INTERNAL, "oneDNN: primitive did not report a memory descriptor");
        return -1;
    }
    pt->user = pcd_mem_new(b, user_md, NULL);
    if (!pt->user) return -1;
    if (!own_copy && dnnl_memory_desc_equal(user_md, prim_md)) {
        pt->inner = pt->user;
        return 0;
    }
    /* The primitive prefers another layout: inner memory in the plan's arena (bound at
     * pcd_base_finish) and a reorder between it and the user's plain tensor. */
    if (b->narena >= PCD_MAX_MEMS) {
        pc_fail(PC_ERR_INTERNAL, "oneDNN plan: too many reordered tensors");
        return -1;
    }
    size_t bytes = (dnnl_memory_desc_get_size(prim_md) + 63) & ~(size_t)63;
    if (phase == PCD_PHASE_KEEP) {
        void *own = pcd_buf_new(b, bytes);
        if (!own || !(pt->inner = pcd_mem_new(b, prim_md, own))) return -1;
        pt->reorder = reorder_new(b, user_md, prim_md);
        if (!pt->reorder || pcd_pack_new(b, user_md, prim_md, &pt->pack)) return -1;
        return 0;
    }
    pt->inner = pcd_mem_new(b, prim_md, NULL);
    if (!pt->inner) return -1;
    b->arena_mems[b->narena].mem = pt->inner;
    b->arena_mems[b->narena].off = b->phase_size[phase];
    b->narena++;
    b->phase_size[phase] += bytes;
    pt->reorder = is_output ? reorder_new(b, prim_md, user_md) : reorder_new(b, user_md, prim_md);
    return pt->reorder ? 0 : -1;
}

int pcd_port_init(pcd_base *b, pcd_port *pt, const dnnl_memory_desc_t *user_md,
                  const dnnl_memory_desc_t *prim_md, int is_output, int phase) {
    return port_init(b, pt, user_md, prim_md, is_output, phase, 0);
}

int pcd_port_init_bf16(pcd_base *b, pcd_port *pt, const dnnl_memory_desc_t *user_md,
                       const dnnl_memory_desc_t *prim_md, int phase) {
    if (port_init(b, pt, user_md, prim_md, 0, phase, 1)) return -1;
    pt->round_n = dnnl_memory_desc_get_size(prim_md) / sizeof(float);
    return 0;
}

int pcd_base_finish(pcd_base *b) {
    size_t arena = PC_MAX(b->phase_size[0], b->phase_size[1]);
    if (arena > 0) {
        char *buf = pcd_buf_new(b, arena);
        if (!buf) return -1;
        for (int i = 0; i < b->narena; i++) {
            dnnl_status_t st = dnnl_memory_set_data_handle(b->arena_mems[i].mem,
                                                           buf + b->arena_mems[i].off);
            if (st != dnnl_success) {
                pcd_fail(st, "set data handle");
                return -1;
            }
        }
    }
    size_t max = 0;
    for (int i = 0; i < b->nprims; i++) {
        const dnnl_memory_desc_t *md =
            dnnl_primitive_desc_query_md(b->prims[i].pd, dnnl_query_scratchpad_md, 0);
        size_t sz = pcd_md_is_zero(md) ? 0 : dnnl_memory_desc_get_size(md);
        if (sz > max) max = sz;
    }
    if (max == 0) return 0;
    void *buf = pcd_buf_new(b, max); /* one scratchpad shared by the plan's primitives */
    if (!buf) return -1;
    for (int i = 0; i < b->nprims; i++) {
        const dnnl_memory_desc_t *md =
            dnnl_primitive_desc_query_md(b->prims[i].pd, dnnl_query_scratchpad_md, 0);
        if (pcd_md_is_zero(md) || dnnl_memory_desc_get_size(md) == 0) continue;
        b->prims[i].scratch = pcd_mem_new(b, md, buf);
        if (!b->prims[i].scratch) return -1;
    }
    return 0;
}

void pcd_base_free(pcd_base *b) {
    for (int i = 0; i < b->nprims; i++) {
        if (b->prims[i].prim) dnnl_primitive_destroy(b->prims[i].prim);
        if (b->prims[i].pd) dnnl_primitive_desc_destroy(b->prims[i].pd);
    }
    for (int i = 0; i < b->nmems; i++) dnnl_memory_destroy(b->mems[i]);
    for (int i = 0; i < b->nbufs; i++) pc_free(b->bufs[i]);
    if (b->stream) dnnl_stream_destroy(b->stream);
    if (b->attr) dnnl_primitive_attr_destroy(b->attr);
    memset(b, 0, sizeof *b);
}

/* ---- run-time helpers ---- */

/* The first failure of a run-time call on this thread since pc_dnnl_run_status (oneDNN
 * allocates inside some primitives' execution: its GEMM's packing buffers). */
static _Thread_local struct {
    pc_status status;
    char msg[256];
} run_error;

void pcd_check(dnnl_status_t st, const char *what) {
    if (st == dnnl_success || run_error.status != PC_OK) return;
    run_error.status = st == dnnl_out_of_memory ? PC_ERR_NOMEM : PC_ERR_INTERNAL;
    if (st == dnnl_out_of_memory)
        snprintf(run_error.msg, sizeof run_error.msg, "out of memory in oneDNN (%s)", what);
    else
        snprintf(run_error.msg, sizeof run_error.msg, "oneDNN: %s failed (status %d)", what,
                 (int)st);
}

pc_status pc_dnnl_run_status(void) {
    pc_status st = run_error.status;
    if (st != PC_OK) pc_fail(st, "%s", run_error.msg);
    run_error.status = PC_OK;
    return st;
}

void pcd_exec(pcd_base *b, const pcd_prim *p, int nargs, const dnnl_exec_arg_t *args) {
    dnnl_exec_arg_t all[16];
    if (nargs > 15) pcd_check(dnnl_invalid_arguments, "execute (too many arguments)");
    memcpy(all, args, (size_t)nargs * sizeof *args);
    if (p->scratch) all[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->scratch};
    pcd_check(dnnl_primitive_execute(p->prim, b->stream, nargs, all), "primitive execute");
}

void pcd_set(dnnl_memory_t m, const void *ptr) {
    pcd_check(dnnl_memory_set_data_handle(m, (void *)ptr), "set data handle");
}

/* The may_alias type lets the rounding loop read floats as their bits. */
typedef uint32_t __attribute__((may_alias)) pcd_bits;

void pcd_round_bf16(float *x, size_t n) {
    pcd_bits *u = (pcd_bits *)x;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = u[i];
        uint32_t nearest_even = (v + 0x7fffu + ((v >> 16) & 1u)) & 0xffff0000u;
        uint32_t quiet_nan = (v | 0x00400000u) & 0xffff0000u;
        u[i] = (v & 0x7fffffffu) > 0x7f800000u ? quiet_nan : nearest_even;
    }
}

void pcd_port_in(pcd_base *b, pcd_port *pt, const void *ptr) {
    pcd_set(pt->user, ptr);
    if (pt->pack) {
        void *inner = NULL;
        pcd_check(dnnl_memory_get_data_handle(pt->inner, &inner), "get data handle");
        pcd_wait(b); /* the primitives that read inner have finished */
        pcd_pack_run(pt->pack, ptr, inner);
    } else if (pt->reorder) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, pt->user}, {DNNL_ARG_TO, pt->inner}};
        pcd_exec(b, pt->reorder, 2, a);
    }
    if (pt->round_n) {
        void *inner = NULL;
        pcd_check(dnnl_memory_get_data_handle(pt->inner, &inner), "get data handle");
        pcd_wait(b);
        pcd_round_bf16(inner, pt->round_n);
    }
}

void pcd_port_in_kept(pcd_base *b, pcd_port *pt, const void *ptr, uint64_t version) {
    if (pcd_kept_current(&pt->kept, ptr, version) && pt->reorder) return;
    pcd_port_in(b, pt, ptr);
}

void pcd_port_bind(pcd_port *pt, void *ptr) { pcd_set(pt->user, ptr); }

void pcd_port_out(pcd_base *b, pcd_port *pt) {
    if (pt->reorder) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, pt->inner}, {DNNL_ARG_TO, pt->user}};
        pcd_exec(b, pt->reorder, 2, a);
    }
}

void pcd_wait(pcd_base *b) { pcd_check(dnnl_stream_wait(b->stream), "stream wait"); }
