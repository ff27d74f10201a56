/* [maxpool] and [avgpool]: size x size windows at a stride, zero padding of at most half a
 * window, floor or ceil mode; padded cells never win a max and are left out of an average
 * unless count_include_pad=1 (see pc_pool_shape). oneDNN's JIT kernels on plain tensors where it has them, else
 * the vectorized C kernels (plain max pooling, blocked both) or the reference kernels. */
#include "kernels/ref/ref.h"
#include "nn/layer.h"

static pc_status pool_build(pc_build *b, pc_layer *l) {
    const pc_layer *in = pc_build_input(b, 0);
    const char *k = pc_build_section(b);
    PC_TRY(pc_build_int_pair(b, "size", 2, 1, &l->kh, &l->kw));
    /* the stride defaults to the size: "size=3x1" is "stride=3x1" */
    const char *given = pc_build_value(b, "stride");
    if (given) PC_TRY(pc_build_int_pair(b, "stride", 1, 1, &l->sh, &l->sw));
    else l->sh = l->kh, l->sw = l->kw;
    PC_TRY(pc_build_int_pair(b, "pad", 0, 0, &l->ph, &l->pw));
    PC_TRY(pc_build_int(b, "ceil_mode", 0, 0, &l->ceil_mode));
    if (l->kind == PC_L_AVGPOOL) PC_TRY(pc_build_int(b, "count_include_pad", 0, 0, &l->count_pad));
    if (l->ceil_mode > 1 || l->count_pad > 1)
        return pc_build_fail(b, "[%s] ceil_mode and count_include_pad are 0 or 1", k);
    if (2 * l->ph > l->kh || 2 * l->pw > l->kw)
        return pc_build_fail(b, "[%s] pad=%dx%d is more than half of size=%dx%d", k, l->ph, l->pw,
                             l->kh, l->kw);
    l->h = pc_pool_out_size(in->h, l->kh, l->sh, l->ph, l->ceil_mode);
    l->w = pc_pool_out_size(in->w, l->kw, l->sw, l->pw, l->ceil_mode);
    if (l->h == 0 || l->w == 0)
        return pc_build_fail(b, "[%s] window %dx%d does not fit the %dx%d input", k, l->kh, l->kw,
                             in->h, in->w);
    l->flops = pc_size_mul(pc_layer_out_size(l), (int64_t)l->kh * l->kw); /* -1: overflow */
    return PC_OK;
}

/* Whether the plain-layout fast kernels (oneDNN's, and the vectorized max pool) compute
 * this shape: not when ceil mode adds windows that run past the padding, nor for an
 * average that counts the padding. */
static int plain_fast_fits(const pc_pool_shape *s, int is_max) {
    pc_pool_shape floor = *s;
    floor.ceil_mode = 0;
    pc_pool_shape_finish(&floor);
    return floor.oh == s->oh && floor.ow == s->ow && (is_max || !s->count_pad);
}

static pc_status pool_setup(pc_exec *ex, int i) {
    const pc_layer *l = &ex->m->layers[i], *in = &ex->m->layers[l->inputs[0]];
    layer_state *s = &ex->ls[i];
    const int is_max = l->kind == PC_L_MAXPOOL;
    s->pool = (pc_pool_shape){.n = ex->batch, .c = in->c, .h = in->h, .w = in->w, .kh = l->kh,
                              .kw = l->kw, .sh = l->sh, .sw = l->sw, .ph = l->ph, .pw = l->pw,
                              .ceil_mode = l->ceil_mode, .count_pad = l->count_pad};
    pc_pool_shape_finish(&s->pool);
#ifdef PARCNN_HAVE_DNNL
    /* blocked: the C kernels */
    if (ex->use_dnnl && !s->blocked && plain_fast_fits(&s->pool, is_max)) {
        s->dpool = pc_dnnl_pool_create(&s->pool, is_max);
        if (!s->dpool) return PC_ERR_INTERNAL; /* message set by the plan */
        if (!pc_dnnl_pool_jit(s->dpool)) { /* the C kernels are faster than its generic code */
            pc_dnnl_pool_destroy(s->dpool);
            s->dpool = NULL;
        }
    }
    if (s->dpool) return PC_OK;
#endif
    if (is_max) { /* the C kernels' argmax */
        const int plain_fast = ex->use_dnnl && !s->blocked && plain_fast_fits(&s->pool, 1);
        s->argmax = pc_alloc(sizeof(int32_t) * pc_exec_out_floats(ex, i));
        if (plain_fast) s->pool_scratch = pc_alloc(fast_maxpool_scratch(&s->pool));
        if (!s->argmax || (plain_fast && !s->pool_scratch)) return PC_ERR_NOMEM;
    }
    return PC_OK;
}

static void pool_forward(pc_exec *ex, int i, int train, float *y) {
    const int is_max = ex->m->layers[i].kind == PC_L_MAXPOOL, B = ex->block;
    layer_state *s = &ex->ls[i];
    const float *x = pc_exec_input_of(ex, i, 0);
#ifdef PARCNN_HAVE_DNNL
    if (s->dpool) {
        pc_dnnl_pool_forward(s->dpool, x, y);
        return;
    }
#endif
    if (s->blocked && is_max) fast_maxpoolb_forward(&s->pool, B, x, y, train ? s->argmax : NULL);
    else if (s->blocked) fast_avgpoolb_forward(&s->pool, B, x, y);
    else if (is_max && s->pool_scratch) fast_maxpool_forward(&s->pool, x, y, s->argmax, s->pool_scratch);
    else if (is_max) ref_maxpool_forward(&s->pool, x, y, s->argmax);
    else ref_avgpool_forward(&s->pool, x, y);
}

static void pool_backward(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw, float *db) {
    const int is_max = ex->m->layers[i].kind == PC_L_MAXPOOL, B = ex->block;
    layer_state *s = &ex->ls[i];
    if (!dx) return;
#ifdef PARCNN_HAVE_DNNL
    if (s->dpool) {
        pc_dnnl_pool_backward(s->dpool, dy, dx);
        return;
    }
#endif
    if (s->blocked && is_max) fast_maxpoolb_backward(&s->pool, B, s->argmax, dy, dx);
    else if (s->blocked) fast_avgpoolb_backward(&s->pool, B, dy, dx);
    else if (is_max) ref_maxpool_backward(&s->pool, s->argmax, dy, dx);
    else ref_avgpool_backward(&s->pool, dy, dx);
}

const pc_layer_ops pc_maxpool_ops = {
    .name = "maxpool", .n_inputs = 1, .layout = PC_OUT_AS_INPUT, .build = pool_build,
    .setup = pool_setup, .forward = pool_forward, .backward = pool_backward,
};

const pc_layer_ops pc_avgpool_ops = {
    .name = "avgpool", .n_inputs = 1, .layout = PC_OUT_AS_INPUT, .build = pool_build,
    .setup = pool_setup, .forward = pool_forward, .backward = pool_backward,
};
