/* Batch-norm plan: x (N, C, HW) is viewed as NCHW (N, C, HW, 1). Three primitives: forward
 * training (writes batch mean and biased variance), forward inference (global statistics)
 * and backward (dx, dgamma, dbeta). Scale and shift are separate (dnnl_use_scale |
 * dnnl_use_shift, available since oneDNN 2.3), so gamma and beta are used in place.
 * Batch norm does not take format_tag_any: the plan runs on plain NCHW, no reorders. */
#include <math.h>
#include <stdlib.h>

#include "dnnl_internal.h"
#include "dnnl_kernels.h"

struct pc_dnnl_bn {
    pcd_base b;
    int n, c, hw;
    float eps;
    pcd_prim *train, *eval, *bwd;
    dnnl_memory_t x, y, dy, dx;                        /* (N, C, HW, 1) plain */
    dnnl_memory_t mean, var, scale, shift, dscale, dshift; /* (C) */
    float *ones, *zeros;                               /* gamma / beta when NULL */
    float *sink[4];                                    /* unwanted outputs: mean, var, dg, db */
};

pc_dnnl_bn *pc_dnnl_bn_create(const pc_bn_shape *s) {
    if (s->n <= 0 || s->c <= 0 || s->hw <= 0 || !(s->eps >= 0)) {
        pc_fail(PC_ERR_USAGE, "oneDNN batch norm: invalid shape");
        return NULL;
    }
    pc_dnnl_bn *p = calloc(1, sizeof *p);
    if (!p) {
        pc_fail(PC_ERR_NOMEM, "out of memory");
        return NULL;
    }
    p->n = s->n, p->c = s->c, p->hw = s->hw, p->eps = s->eps;
    if (pcd_base_init(&p->b)) goto fail;

    dnnl_dim_t dims[4] = {s->n, s->c, s->hw, 1};
    dnnl_memory_desc_t data_md;
    if (pcd_md_init(&data_md, 4, dims, dnnl_nchw, "batch norm data")) goto fail;
    unsigned flags = dnnl_use_scale | dnnl_use_shift;
    dnnl_batch_normalization_desc_t td, ed, bd;
    PCD_TRY(dnnl_batch_normalization_forward_desc_init(&td, dnnl_forward_training, &data_md,
                                                       s->eps, flags),
            "batch norm forward descriptor");
    PCD_TRY(dnnl_batch_normalization_forward_desc_init(&ed, dnnl_forward_inference, &data_md,
                                                       s->eps, flags | dnnl_use_global_stats),
            "batch norm inference descriptor");
    PCD_TRY(dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &data_md, &data_md,
                                                        s->eps, flags),
            "batch norm backward descriptor");
    if (!(p->train = pcd_prim_new(&p->b, &td, NULL, "batch norm forward")) ||
        !(p->eval = pcd_prim_new(&p->b, &ed, NULL, "batch norm inference")) ||
        !(p->bwd = pcd_prim_new(&p->b, &bd, p->train->pd, "batch norm backward")))
        goto fail;

    const dnnl_memory_desc_t *stat_md = pcd_arg_md(p->train, DNNL_ARG_MEAN);
    const dnnl_memory_desc_t *scale_md = pcd_arg_md(p->train, DNNL_ARG_SCALE);
    const dnnl_memory_desc_t *dscale_md = pcd_arg_md(p->bwd, DNNL_ARG_DIFF_SCALE);
    if (pcd_md_is_zero(stat_md) || pcd_md_is_zero(scale_md) || pcd_md_is_zero(dscale_md)) {
        pc_fail(PC_ERR_INTERNAL, "oneDNN: batch norm did not report statistics descriptors");
        goto fail;
    }
    if (!(p->x = pcd_mem_new(&p->b, &data_md, NULL)) ||
        !(p->y = pcd_mem_new(&p->b, &data_md, NULL)) ||
        !(p->dy = pcd_mem_new(&p->b, &data_md, NULL)) ||
        !(p->dx = pcd_mem_new(&p->b, &data_md, NULL)) ||
        !(p->mean = pcd_mem_new(&p->b, stat_md, NULL)) ||
        !(p->var = pcd_mem_new(&p->b, stat_md, NULL)) ||
        !(p->scale = pcd_mem_new(&p->b, scale_md, NULL)) ||
        !(p->shift = pcd_mem_new(&p->b, scale_md, NULL)) ||
        !(p->dscale = pcd_mem_new(&p->b, dscale_md, NULL)) ||
        !(p->dshift = pcd_mem_new(&p->b, dscale_md, NULL)))
        goto fail;
    size_t cb = (size_t)s->c * sizeof(float);
    if (!(p->ones = pcd_buf_new(&p->b, cb)) || !(p->zeros = pcd_buf_new(&p->b, cb))) goto fail;
    for (int i = 0; i < 4; i++)
        if (!(p->sink[i] = pcd_buf_new(&p->b, cb))) goto fail;
    for (int i = 0; i < s->c; i++) p->ones[i] = 1.0f;
    if (pcd_base_finish(&p->b)) goto fail;
    return p;
fail:
    pcd_base_free(&p->b);
    free(p);
    return NULL;
}

void pc_dnnl_bn_forward_train(pc_dnnl_bn *p, const float *x, const float *gamma,
                              const float *beta, float *y, float *mean, float *var) {
    pcd_set(p->x, x);
    pcd_set(p->y, y);
    pcd_set(p->scale, gamma ? gamma : p->ones);
    pcd_set(p->shift, beta ? beta : p->zeros);
    pcd_set(p->mean, mean ? mean : p->sink[0]);
    pcd_set(p->var, var ? var : p->sink[1]);
    dnnl_exec_arg_t args[6] = {{DNNL_ARG_SRC, p->x},         {DNNL_ARG_DST, p->y},
                               {DNNL_ARG_SCALE, p->scale},   {DNNL_ARG_SHIFT, p->shift},
                               {DNNL_ARG_MEAN, p->mean},     {DNNL_ARG_VARIANCE, p->var}};
    pcd_exec(&p->b, p->train, 6, args);
    pcd_wait(&p->b);
}

void pc_dnnl_bn_forward_eval(pc_dnnl_bn *p, const float *x, const float *gamma,
                             const float *beta, const float *rmean, const float *rvar, float *y) {
    pcd_set(p->x, x);
    pcd_set(p->y, y);
    pcd_set(p->scale, gamma ? gamma : p->ones);
    pcd_set(p->shift, beta ? beta : p->zeros);
    pcd_set(p->mean, rmean);
    pcd_set(p->var, rvar);
    dnnl_exec_arg_t args[6] = {{DNNL_ARG_SRC, p->x},         {DNNL_ARG_DST, p->y},
                               {DNNL_ARG_SCALE, p->scale},   {DNNL_ARG_SHIFT, p->shift},
                               {DNNL_ARG_MEAN, p->mean},     {DNNL_ARG_VARIANCE, p->var}};
    pcd_exec(&p->b, p->eval, 6, args);
    pcd_wait(&p->b);
}

/* dgamma / dbeta without dx: a plain loop (oneDNN would need a full-size dx buffer). */
static void bn_param_grads(const pc_dnnl_bn *p, const float *x, const float *mean,
                           const float *var, const float *dy, float *dgamma, float *dbeta) {
    for (int c = 0; c < p->c; c++) {
        double sdy = 0, sdyx = 0;
        for (int n = 0; n < p->n; n++) {
            const float *xr = x + ((size_t)n * p->c + c) * p->hw;
            const float *dr = dy + ((size_t)n * p->c + c) * p->hw;
            for (int i = 0; i < p->hw; i++) {
                sdy += dr[i];
                sdyx += (double)dr[i] * ((double)xr[i] - mean[c]);
            }
        }
        if (dbeta) dbeta[c] = (float)sdy;
        if (dgamma) dgamma[c] = (float)(sdyx / sqrt((double)var[c] + p->eps));
    }
}

void pc_dnnl_bn_backward(pc_dnnl_bn *p, const float *x, const float *gamma, const float *mean,
                         const float *var, const float *dy, float *dx, float *dgamma,
                         float *dbeta) {
    if (!dx) {
        if (dgamma || dbeta) bn_param_grads(p, x, mean, var, dy, dgamma, dbeta);
        return;
    }
    pcd_set(p->x, x);
    pcd_set(p->dy, dy);
    pcd_set(p->dx, dx);
    pcd_set(p->scale, gamma ? gamma : p->ones);
    pcd_set(p->shift, p->zeros); /* an input of the backward primitive; its value is unused */
    pcd_set(p->mean, mean);
    pcd_set(p->var, var);
    pcd_set(p->dscale, dgamma ? dgamma : p->sink[2]);
    pcd_set(p->dshift, dbeta ? dbeta : p->sink[3]);
    dnnl_exec_arg_t args[9] = {{DNNL_ARG_SRC, p->x},           {DNNL_ARG_DIFF_DST, p->dy},
                               {DNNL_ARG_MEAN, p->mean},       {DNNL_ARG_VARIANCE, p->var},
                               {DNNL_ARG_SCALE, p->scale},     {DNNL_ARG_SHIFT, p->shift},
                               {DNNL_ARG_DIFF_SRC, p->dx},     {DNNL_ARG_DIFF_SCALE, p->dscale},
                               {DNNL_ARG_DIFF_SHIFT, p->dshift}};
    pcd_exec(&p->b, p->bwd, 9, args);
    pcd_wait(&p->b);
}

void pc_dnnl_bn_destroy(pc_dnnl_bn *p) {
    if (!p) return;
    pcd_base_free(&p->b);
    free(p);
}
