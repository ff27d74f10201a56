/* Internal helpers shared by the oneDNN plans (not part of the public API).
 *
 * pcd_base: the resources of one plan (stream, primitives, memories, buffers, scratchpad),
 * registered as they are created so that a single pcd_base_free releases everything, also on
 * a failure halfway through creation.
 *
 * pcd_port: one tensor argument of one primitive. `user` describes the caller's plain layout
 * and gets the caller's pointer at each call; `inner` is what the primitive reads or writes.
 * When the primitive chose the plain layout, inner == user and nothing is copied; otherwise
 * inner lives in a plan-owned buffer and a reorder primitive (created at plan time) converts
 * user -> inner before the primitive (inputs) or inner -> user after it (outputs). */
#ifndef PC_DNNL_INTERNAL_H
#define PC_DNNL_INTERNAL_H

#include <dnnl.h>
#include <omp.h>

#include <stdint.h>

#include "../../core/common.h"
#include "../shapes.h"

#define PCD_MAX_PRIMS 24
#define PCD_MAX_MEMS 64
#define PCD_MAX_BUFS 32

typedef struct {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_t scratch; /* NULL when the primitive needs no scratchpad */
} pcd_prim;

typedef struct {
    dnnl_stream_t stream;
    dnnl_primitive_attr_t attr; /* scratchpad_mode_user: the plan provides the scratchpad */
    pcd_prim prims[PCD_MAX_PRIMS];
    int nprims;
    dnnl_memory_t mems[PCD_MAX_MEMS];
    int nmems;
    void *bufs[PCD_MAX_BUFS];
    int nbufs;
    /* Reorder targets live only during one call: forward-phase (0) and backward-phase (1)
     * buffers share one arena, bound at pcd_base_finish. */
    size_t phase_size[2];
    struct {
        dnnl_memory_t mem;
        size_t off;
    } arena_mems[PCD_MAX_MEMS];
    int narena;
} pcd_base;

/* What a cached transform of an input (a reordered copy, Winograd-transformed weights)
 * was made from: the input's address and version. */
typedef struct {
    const void *ptr;
    uint64_t version;
} pcd_kept;

/* 1 if a cache made from (ptr, version) is current; version 0 means "unknown" and is
 * never current. Otherwise records (ptr, version) as what the cache is about to be made
 * from and returns 0. */
static inline int pcd_kept_current(pcd_kept *k, const void *ptr, uint64_t version) {
    if (version && version == k->version && ptr == k->ptr) return 1;
    k->ptr = ptr;
    k->version = version;
    return 0;
}

typedef struct {
    dnnl_memory_t user;  /* plain layout; data handle set to the caller's pointer per call */
    dnnl_memory_t inner; /* the primitive's layout; == user when no reorder is needed */
    pcd_prim *reorder;   /* user -> inner (input) or inner -> user (output); NULL if none */
    pcd_kept kept;       /* PCD_PHASE_KEEP: the input and version inner holds now */
    size_t round_n;      /* emulated bf16: floats of inner rounded to bf16 after each reorder */
    struct pcd_pack *pack; /* KEEP inputs: converted to blocked bf16 by dnnl_pack.c instead
                              of by `reorder` (still made: it defines the result, which
                              test_dnnl compares, and marks the port as converting) */
} pcd_port;

/* dnnl_pack.c: plain fp32 -> blocked bf16 conversion by offset tables. *out is NULL when
 * the layouts are not supported (padded, offset, not plain fp32 -> bf16). -1 on
 * allocation failure (pc_fail set). */
typedef struct pcd_pack pcd_pack;
int pcd_pack_new(pcd_base *b, const dnnl_memory_desc_t *user, const dnnl_memory_desc_t *prim,
                 pcd_pack **out);
void pcd_pack_run(const pcd_pack *k, const float *src, void *dst);

/* Port phases: reorder targets of forward (0) and backward (1) calls share the arena;
 * KEEP gives an input its own buffer, so that a reordered input that has not changed
 * (the weights within one training step) is reused: see pcd_port_in_kept. */
enum { PCD_PHASE_FWD = 0, PCD_PHASE_BWD = 1, PCD_PHASE_KEEP = 2 };

dnnl_engine_t pcd_engine(void); /* NULL (with pc_fail set) if the engine cannot be created */

/* Creation helpers: return 0 / non-NULL on success; on failure set pc_fail and return -1 /
 * NULL. Everything created is owned by the base. */
int pcd_base_init(pcd_base *b);
pcd_prim *pcd_prim_new(pcd_base *b, const_dnnl_op_desc_t desc,
                       const_dnnl_primitive_desc_t hint, const char *what);
/* A forward primitive whose output passes through ReLU (a oneDNN post-op). */
pcd_prim *pcd_prim_new_relu(pcd_base *b, const_dnnl_op_desc_t desc, const char *what);
/* ReLU6, min(max(v, 0), 6): oneDNN's eltwise clip post-op */
pcd_prim *pcd_prim_new_relu6(pcd_base *b, const_dnnl_op_desc_t desc, const char *what);
/* A primitive that adds its result to the destination (a oneDNN sum post-op). */
pcd_prim *pcd_prim_new_sum(pcd_base *b, const_dnnl_op_desc_t desc, const char *what);
dnnl_memory_t pcd_mem_new(pcd_base *b, const dnnl_memory_desc_t *md, void *handle);
void *pcd_buf_new(pcd_base *b, size_t bytes);
/* is_output: 0 = input (reorder user -> inner), 1 = output (reorder inner -> user).
 * phase: 0 for ports used by forward calls, 1 for backward calls (see pcd_base). */
int pcd_port_init(pcd_base *b, pcd_port *pt, const dnnl_memory_desc_t *user_md,
                  const dnnl_memory_desc_t *prim_md, int is_output, int phase);
/* An fp32 input port whose inner copy is rounded to bfloat16 values after every reorder in:
 * the operand a bf16 primitive would read, for emulated bf16 (see pc_dnnl_bf16_native). */
int pcd_port_init_bf16(pcd_base *b, pcd_port *pt, const dnnl_memory_desc_t *user_md,
                       const dnnl_memory_desc_t *prim_md, int phase);
/* x[i] = the bfloat16 nearest x[i] (ties to even), as fp32; NaN stays NaN. */
void pcd_round_bf16(float *x, size_t n);
/* Allocate the arena and the shared scratchpad once all primitives and ports exist. */
int pcd_base_finish(pcd_base *b);
void pcd_base_free(pcd_base *b);

/* Memory descriptor of a primitive's execution argument (e.g. DNNL_ARG_SRC). */
const dnnl_memory_desc_t *pcd_arg_md(const pcd_prim *p, int arg);
int pcd_md_init(dnnl_memory_desc_t *md, int ndims, const dnnl_dim_t *dims,
                dnnl_format_tag_t tag, const char *what);
int pcd_md_init_dt(dnnl_memory_desc_t *md, int ndims, const dnnl_dim_t *dims,
                   dnnl_data_type_t dt, dnnl_format_tag_t tag, const char *what);
int pcd_md_is_zero(const dnnl_memory_desc_t *md);

/* Run-time helpers: a oneDNN failure here (out of memory inside a primitive's execution)
 * is recorded for the calling thread and reported by pc_dnnl_run_status; the call's
 * outputs are then undefined, but nothing is read or written out of bounds. */
void pcd_check(dnnl_status_t st, const char *what);
void pcd_exec(pcd_base *b, const pcd_prim *p, int nargs, const dnnl_exec_arg_t *args);
void pcd_set(dnnl_memory_t m, const void *ptr);
void pcd_port_in(pcd_base *b, pcd_port *pt, const void *ptr); /* bind + reorder in */
/* A KEEP port: reorder only when ptr or version changed since the last call; version 0
 * means "unknown" and always reorders. */
void pcd_port_in_kept(pcd_base *b, pcd_port *pt, const void *ptr, uint64_t version);
void pcd_port_bind(pcd_port *pt, void *ptr);                  /* bind an output */
void pcd_port_out(pcd_base *b, pcd_port *pt);                 /* reorder out if needed */
void pcd_wait(pcd_base *b);

/* fn(lo, hi, ...) over the rows [0, n) of a transform or an output, split among the
 * calling worker's OpenMP threads when it has several (static split: every row is
 * computed alike whoever runs it); inline when it has one, as libgomp allocates a team
 * for every parallel region of one thread and the training step must not allocate. */
#define SPLIT_ROWS(n, fn, ...)                                                             \
    do {                                                                                   \
        const int n_ = (n);                                                                \
        if (omp_get_max_threads() <= 1) {                                                  \
            fn(0, n_, __VA_ARGS__);                                                        \
        } else {                                                                           \
            _Pragma("omp parallel") {                                                      \
                const long t_ = omp_get_thread_num(), T_ = omp_get_num_threads();          \
                fn((int)(n_ * t_ / T_), (int)(n_ * (t_ + 1) / T_), __VA_ARGS__);           \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* Winograd convolution (dnnl_wino.c) where it applies: stride 1, "same" padding, 3x3 or
 * 5x5 kernels, channel-blocked x and y (block 8 or 16), output channels a multiple of the
 * block (input channels are padded to it with the layout's zero lanes); and where it is
 * expected to be faster than direct (enough channels). The calls mirror pc_dnnl_conv's; version is the weights version (0: transform
 * the weights on every call). No bias gradient here. */
typedef struct pcd_wino pcd_wino;
int pcd_wino_eligible(const pc_conv_shape *s, int x_block, int y_block);
/* against_bf16: compared with oneDNN's native bf16 convolution rather than fp32 direct */
int pcd_wino_profitable(const pc_conv_shape *s, int against_bf16);
/* bf16: emulated bf16, x, w and dy rounded to bf16 as they are read (pc_dnnl_bf16_native) */
pcd_wino *pcd_wino_create(const pc_conv_shape *s, int block, int relu, int bf16);
void pcd_wino_forward(pcd_wino *w, const float *x, const float *wt, const float *b,
                      uint64_t version, float *y);
void pcd_wino_backward(pcd_wino *w, const float *x, const float *wt, const float *dy,
                       uint64_t version, float *dx, float *dw);
void pcd_wino_destroy(pcd_wino *w);
/* The bytes of the buffers a Winograd plan of shape s on activations blocked by `block`
 * allocates. */
size_t pcd_wino_bytes(const pc_conv_shape *s, int block);

/* Record a failed creation-time call: PC_ERR_NOMEM "out of memory creating oneDNN's WHAT"
 * when oneDNN ran out of memory, else PC_ERR_INTERNAL with the status. */
pc_status pcd_fail(dnnl_status_t st, const char *what);

/* Creation-time status check: on failure, record the message and jump to `fail`. */
#define PCD_TRY(call, what)                                                         \
    do {                                                                            \
        dnnl_status_t pcd_st_ = (call);                                             \
        if (pcd_st_ != dnnl_success) {                                              \
            pcd_fail(pcd_st_, (what));                                              \
            goto fail;                                                              \
        }                                                                           \
    } while (0)

#endif
