/* Pooling plan: max (workspace kept in the plan between forward and backward) or average
 * excluding padding. Pooling primitives do not accept format_tag_any for their source, so
 * the plan runs directly on the caller's plain NCHW tensors: no reorders. */
#include <stdlib.h>
#include <string.h>

#include "dnnl_internal.h"
#include "dnnl_kernels.h"

struct pc_dnnl_pool {
    pcd_base b;
    pcd_prim *fwd, *bwd;
    dnnl_memory_t x, y, dy, dx; /* plain NCHW over the caller's pointers */
    dnnl_memory_t ws;           /* max pooling: argmax workspace (plan-owned), else NULL */
};

pc_dnnl_pool *pc_dnnl_pool_create(const pc_pool_shape *shape, int is_max) {
    pc_pool_shape s = *shape;
    if (pc_pool_shape_finish(&s) != 0) {
        pc_fail(PC_ERR_USAGE, "oneDNN pool: invalid shape");
        return NULL;
    }
    pc_dnnl_pool *p = calloc(1, sizeof *p);
    if (!p) {
        pc_fail_nomem();
        return NULL;
    }
    if (pcd_base_init(&p->b)) goto fail;

    dnnl_dim_t src_dims[4] = {s.n, s.c, s.h, s.w}, dst_dims[4] = {s.n, s.c, s.oh, s.ow};
    dnnl_dims_t strides = {s.sh, s.sw}, kernel = {s.kh, s.kw}, pad = {s.ph, s.pw};
    dnnl_memory_desc_t src_md, dst_md;
    if (pcd_md_init(&src_md, 4, src_dims, dnnl_nchw, "pool src") ||
        pcd_md_init(&dst_md, 4, dst_dims, dnnl_nchw, "pool dst"))
        goto fail;
    /* Max: padded cells never win (oneDNN ignores them), ties keep the first cell in window
     * order. Average: divisor = number of real cells (exclude padding). */
    dnnl_alg_kind_t alg = is_max ? dnnl_pooling_max : dnnl_pooling_avg_exclude_padding;
    dnnl_pooling_desc_t fd, bd;
    PCD_TRY(dnnl_pooling_forward_desc_init(&fd, dnnl_forward_training, alg, &src_md, &dst_md,
                                           strides, kernel, pad, pad),
            "pooling forward descriptor");
    PCD_TRY(dnnl_pooling_backward_desc_init(&bd, alg, &src_md, &dst_md, strides, kernel, pad,
                                            pad),
            "pooling backward descriptor");
    if (!(p->fwd = pcd_prim_new(&p->b, &fd, NULL, "pooling forward")) ||
        !(p->bwd = pcd_prim_new(&p->b, &bd, p->fwd->pd, "pooling backward")))
        goto fail;
    if (!(p->x = pcd_mem_new(&p->b, &src_md, NULL)) ||
        !(p->y = pcd_mem_new(&p->b, &dst_md, NULL)) ||
        !(p->dy = pcd_mem_new(&p->b, &dst_md, NULL)) ||
        !(p->dx = pcd_mem_new(&p->b, &src_md, NULL)))
        goto fail;
    const dnnl_memory_desc_t *ws_md = pcd_arg_md(p->fwd, DNNL_ARG_WORKSPACE);
    if (!pcd_md_is_zero(ws_md)) {
        void *buf = pcd_buf_new(&p->b, dnnl_memory_desc_get_size(ws_md));
        if (!buf || !(p->ws = pcd_mem_new(&p->b, ws_md, buf))) goto fail;
    }
    if (pcd_base_finish(&p->b)) goto fail;
    return p;
fail:
    pcd_base_free(&p->b);
    free(p);
    return NULL;
}

int pc_dnnl_pool_jit(const pc_dnnl_pool *p) {
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(p->fwd->pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success)
        return 0;
    return impl && strncmp(impl, "jit", 3) == 0;
}

void pc_dnnl_pool_forward(pc_dnnl_pool *p, const float *x, float *y) {
    pcd_set(p->x, x);
    pcd_set(p->y, y);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, p->x}, {DNNL_ARG_DST, p->y}};
    int nargs = 2;
    if (p->ws) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, p->ws};
    pcd_exec(&p->b, p->fwd, nargs, args);
    pcd_wait(&p->b);
}

void pc_dnnl_pool_backward(pc_dnnl_pool *p, const float *dy, float *dx) {
    if (!dx) return;
    pcd_set(p->dy, dy);
    pcd_set(p->dx, dx);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_DST, p->dy}, {DNNL_ARG_DIFF_SRC, p->dx}};
    int nargs = 2;
    if (p->ws) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, p->ws};
    pcd_exec(&p->b, p->bwd, nargs, args);
    pcd_wait(&p->b);
}

void pc_dnnl_pool_destroy(pc_dnnl_pool *p) {
    if (!p) return;
    pcd_base_free(&p->b);
    free(p);
}
