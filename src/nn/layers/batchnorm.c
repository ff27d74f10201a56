/* [batchnorm]: per-channel batch normalization, PyTorch's convention (running = (1 -
 * momentum) running + momentum batch), gamma in the weight, beta in the bias, running
 * mean and variance in the buffers. The reference kernels for the reference set, else the
 * vectorized C kernels (oneDNN 2.6 has only non-JIT code for plain NCHW batch norm), plain
 * or blocked, with the layer's activation fused forward and backward. */
#include "kernels/ref/ref.h"
#include "nn/layer.h"

static pc_status bn_build(pc_build *b, pc_layer *l) {
    PC_TRY(pc_build_float(b, "eps", 1e-5f, 1e-12f, 1.0f, &l->eps));
    PC_TRY(pc_build_float(b, "momentum", 0.1f, 0.0f, 1.0f, &l->momentum));
    l->weight_n = l->bias_n = l->c;
    l->buffer_n = 2LL * l->c;
    l->flops = 4LL * l->c * l->h * l->w;
    return pc_build_trainable(b, l);
}

/* gamma 1 (beta 0), running mean 0 and variance 1 */
static void bn_init(pc_model *m, const pc_layer *l, uint64_t seed) {
    for (int c = 0; c < l->c; c++) {
        m->params[l->weight_off + c] = 1.0f;
        m->buffers[l->buffer_off + l->c + c] = 1.0f;
    }
}

static int bn_param_info(const pc_model *m, const pc_layer *l, pc_param_info *items) {
    const int64_t c = l->c;
    items[0] = pc_param_tensor(l, "weight", 1, &c, l->weight_off, 0);
    items[1] = pc_param_tensor(l, "bias", 1, &c, l->bias_off, 0);
    items[2] = pc_param_tensor(l, "running_mean", 1, &c, l->buffer_off, 1);
    items[3] = pc_param_tensor(l, "running_var", 1, &c, l->buffer_off + c, 1);
    return 4;
}

static pc_status bn_setup(pc_exec *ex, int i) {
    const pc_layer *l = &ex->m->layers[i];
    layer_state *s = &ex->ls[i];
    s->bn = (pc_bn_shape){.n = ex->batch, .c = l->c, .hw = l->h * l->w, .eps = l->eps};
    s->mean = pc_alloc(sizeof(float) * 3 * l->c);
    if (!s->mean) return PC_ERR_NOMEM;
    s->var = s->mean + l->c;
    s->invstd = s->var + l->c;
    return PC_OK;
}

static void bn_forward(pc_exec *ex, int i, int train, float *y) {
    const pc_layer *l = &ex->m->layers[i];
    layer_state *s = &ex->ls[i];
    const float *x = pc_exec_input_of(ex, i, 0);
    const float *gamma = ex->m->params + l->weight_off, *beta = ex->m->params + l->bias_off;
    const float *rmean = ex->m->buffers + l->buffer_off, *rvar = rmean + l->c;
    const pc_fast_act act = pc_exec_fast_act(l);
    train = train && !l->bn_frozen; /* a frozen backbone's: inference mode */
    if (s->blocked) {
        if (train)
            fast_bnb_forward_train(&s->bn, ex->block, x, gamma, beta, y, s->mean, s->var,
                                   s->invstd, act);
        else
            fast_bnb_forward_eval(&s->bn, ex->block, x, gamma, beta, rmean, rvar, y, act);
    } else if (!ex->use_dnnl) {
        if (train) ref_bn_forward_train(&s->bn, x, gamma, beta, y, s->mean, s->var, s->invstd);
        else ref_bn_forward_eval(&s->bn, x, gamma, beta, rmean, rvar, y);
    } else if (train) {
        fast_bn_forward_train(&s->bn, x, gamma, beta, y, s->mean, s->var, s->invstd, act);
    } else {
        fast_bn_forward_eval(&s->bn, x, gamma, beta, rmean, rvar, y, act);
    }
}

/* Both ways in the vectorized kernels: GELU' from the recomputed batch-norm output. */
static int bn_fuses_act(const pc_exec *ex, int i) { return 1; }

static void bn_backward(pc_exec *ex, int i, int k, float *dy, float *dx, float *dw, float *db) {
    const pc_layer *l = &ex->m->layers[i];
    layer_state *s = &ex->ls[i];
    const float *x = pc_exec_input_of(ex, i, 0);
    const float *w = pc_layer_weight(ex->m, l), *beta = pc_layer_bias(ex->m, l);
    const pc_fast_act act = ex->use_dnnl && l->act != PC_ACT_NONE ? pc_exec_fast_act(l)
                                                                  : PC_FAST_LINEAR;
    if (s->blocked)
        fast_bnb_backward(&s->bn, ex->block, x, s->out, w, beta, s->mean, s->invstd, dy, dx, dw,
                          db, act);
    else if (ex->use_dnnl)
        fast_bn_backward(&s->bn, x, s->out, w, beta, s->mean, s->invstd, dy, dx, dw, db, act);
    else
        ref_bn_backward(&s->bn, x, w, s->mean, s->invstd, dy, dx, dw, db);
}

const pc_layer_ops pc_batchnorm_ops = {
    .name = "batchnorm", .n_inputs = 1, .layout = PC_OUT_AS_INPUT,
    .weight_role = PC_PARAM_NORM_SCALE, .bias_role = PC_PARAM_NORM_SHIFT,
    .build = bn_build, .init = bn_init, .param_info = bn_param_info,
    .setup = bn_setup, .forward = bn_forward, .fuses_act = bn_fuses_act,
    .fuses_act_backward = bn_fuses_act, .backward = bn_backward,
};
