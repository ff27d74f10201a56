/* Forward and backward passes of one replica over a fixed batch size. */
#include "nn/exec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/fast/fast.h"
#include "kernels/ref/ref.h"
#ifdef PARCNN_HAVE_DNNL
#include "kernels/dnnl/dnnl_kernels.h"
#endif

/* Per-layer working state. Plans are only set for the oneDNN kernel set. */
typedef struct {
    int blocked;     /* out, pre and dout are channel-blocked (ex->block), see assign_layouts */
    float *out;      /* (batch, c, h, w) output, after the activation */
    float *pre;      /* the output before a GELU that its kernel does not fuse (GELU's
                        backward needs its input); NULL otherwise */
    float *dout;     /* gradient of the loss w.r.t. out */
    int32_t *argmax; /* max pool (reference kernels) */
    void *pool_scratch; /* max pool (fast kernel): a padded plane */
    float *mean, *var, *invstd; /* batch norm statistics of the last training forward */
    float *plain_in; /* dense after a blocked tensor: its input in plain layout */
    pc_conv_shape conv;
    pc_dense_shape dense;
    pc_pool_shape pool;
    pc_bn_shape bn;
#ifdef PARCNN_HAVE_DNNL
    pc_dnnl_conv *dconv;
    pc_dnnl_dense *ddense;
    pc_dnnl_pool *dpool;
#endif
} layer_state;

struct pc_exec {
    const pc_model *m;
    int batch;
    int use_dnnl;
    int bf16;            /* oneDNN convolutions and dense layers in bf16 mixed precision */
    int block;           /* channel block of blocked activations (0: all plain) */
    layer_state *ls;
    float *scratch;      /* for gradients of outputs read by several layers */
    float *scratch_plain; /* a gradient in plain layout before it is blocked */
    float *input_blocked; /* the input images blocked, for layers other than conv reading them */
    float *logits;       /* the last layer's output, plain (its own buffer when blocked) */
    char *grad_ready;    /* per layer: dout already holds a contribution */
    /* per layer: its output's gradient is needed (pc_model_grad_wanted). Backward skips the
     * others: for a frozen first layer (whitenet's whitening), the next convolution's
     * backward data, a third of its backward. Set at every backward, as a layer with
     * train_epochs= freezes during training. */
    char *grad_wanted;
    float *dlogits;      /* the gradient at the logits, plain (last layer's dout unless blocked) */
    int train_forward;   /* last forward was in training mode */
    uint64_t seed, step;
    int64_t first_sample;
    pc_backward_hook hook;
    void *hook_ctx;
    double *prof_fwd, *prof_bwd; /* per layer seconds when profiling */
};

void pc_exec_enable_profile(pc_exec *ex) {
    if (!ex->prof_fwd) ex->prof_fwd = calloc(2 * ex->m->n_layers, sizeof(double));
    if (ex->prof_fwd) ex->prof_bwd = ex->prof_fwd + ex->m->n_layers;
}

const double *pc_exec_profile(const pc_exec *ex, int backward) {
    return backward ? ex->prof_bwd : ex->prof_fwd;
}

void pc_exec_set_backward_hook(pc_exec *ex, pc_backward_hook hook, void *ctx) {
    ex->hook = hook;
    ex->hook_ctx = ctx;
}

int64_t pc_exec_bn_stats_size(const pc_model *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == PC_L_BN) n += 2LL * m->layers[i].c;
    return n;
}

const char *pc_exec_kernel_name(const pc_exec *ex) {
    if (!ex->use_dnnl) return "reference";
    if (!ex->bf16) return "onednn";
#ifdef PARCNN_HAVE_DNNL
    if (!pc_dnnl_bf16_native())
        return "onednn, bf16 mixed precision emulated in fp32 (this CPU has no AVX-512, which "
               "oneDNN 2.6 needs for bf16: the same rounding at fp32 speed)";
#endif
    return "onednn, bf16 mixed precision";
}

float *pc_exec_input(pc_exec *ex) { return ex->ls[0].out; }

void pc_exec_set_conv_algo(pc_conv_algo algo) {
#ifdef PARCNN_HAVE_DNNL
    pc_dnnl_set_conv_algo(algo);
#else
    (void)algo;
#endif
}

const char *pc_exec_conv_algo(const pc_exec *ex, int i) {
#ifdef PARCNN_HAVE_DNNL
    if (ex->ls[i].dconv) return pc_dnnl_conv_algo_name(ex->ls[i].dconv);
#endif
    (void)ex, (void)i;
    return NULL;
}

void pc_exec_weights_version(pc_exec *ex, uint64_t version) {
#ifdef PARCNN_HAVE_DNNL
    for (int i = 0; ex->use_dnnl && i < ex->m->n_layers; i++) {
        if (ex->ls[i].dconv) pc_dnnl_conv_weights_version(ex->ls[i].dconv, version);
        if (ex->ls[i].ddense) pc_dnnl_dense_weights_version(ex->ls[i].ddense, version);
    }
#else
    (void)ex;
    (void)version;
#endif
}

static void fill_shapes(const pc_model *m, int batch, int i, layer_state *s) {
    const pc_layer *l = &m->layers[i];
    const pc_layer *in = &m->layers[l->inputs[0]];
    switch (l->kind) {
    case PC_L_CONV:
        s->conv = (pc_conv_shape){.n = batch, .c = in->c, .h = in->h, .w = in->w,
                                  .k = l->filters, .kh = l->kh, .kw = l->kw, .sh = l->sh,
                                  .sw = l->sw, .ph = l->ph, .pw = l->pw, .groups = l->groups};
        pc_conv_shape_finish(&s->conv);
        break;
    case PC_L_DENSE:
        s->dense = (pc_dense_shape){.n = batch, .in = (int)pc_layer_out_size(in), .out = l->filters};
        break;
    case PC_L_MAXPOOL:
    case PC_L_AVGPOOL:
        s->pool = (pc_pool_shape){.n = batch, .c = in->c, .h = in->h, .w = in->w, .kh = l->kh,
                                  .kw = l->kw, .sh = l->sh, .sw = l->sw, .ph = l->ph, .pw = l->pw};
        pc_pool_shape_finish(&s->pool);
        break;
    case PC_L_BN:
        s->bn = (pc_bn_shape){.n = batch, .c = l->c, .hw = l->h * l->w, .eps = l->eps};
        break;
    default:
        break;
    }
}

#ifdef PARCNN_HAVE_DNNL
/* x_block, y_block: the layer's input and output layouts (0 plain, else the block). */
static pc_status create_plans(const pc_layer *l, layer_state *s, pc_dnnl_precision prec,
                              int x_block, int y_block) {
    switch (l->kind) {
    case PC_L_CONV:
        s->dconv = pc_dnnl_conv_create(&s->conv, l->bias, prec, l->act == PC_ACT_RELU, x_block,
                                       y_block);
        return s->dconv ? PC_OK : PC_ERR_INTERNAL;
    case PC_L_DENSE:
        s->ddense = pc_dnnl_dense_create(&s->dense, l->bias, prec, l->act == PC_ACT_RELU);
        return s->ddense ? PC_OK : PC_ERR_INTERNAL;
    case PC_L_MAXPOOL:
    case PC_L_AVGPOOL:
        if (y_block) return PC_OK; /* the blocked C kernels */
        s->dpool = pc_dnnl_pool_create(&s->pool, l->kind == PC_L_MAXPOOL);
        if (!s->dpool) return PC_ERR_INTERNAL;
        if (!pc_dnnl_pool_jit(s->dpool)) { /* the C kernels are faster than its generic code */
            pc_dnnl_pool_destroy(s->dpool);
            s->dpool = NULL;
        }
        return PC_OK;
    default: return PC_OK;
    }
}
#endif

/* A layer's activation runs inside its kernel where one can: ReLU as a oneDNN post-op after
 * convolutions and dense layers, ReLU and GELU in the fast batch-norm kernels, ReLU in the
 * blocked residual add (one pass over the output, not two). Backward, only batch norm's kernels fuse it (GELU' from the
 * recomputed batch-norm output); before convolutions and dense layers dy is masked by
 * ReLU's output, or multiplied by GELU' of the kept pre-activation. */
static int act_fused(const pc_exec *ex, const pc_layer *l) {
    if (!ex->use_dnnl || l->act == PC_ACT_NONE) return 0;
    return l->kind == PC_L_BN ||
           (l->act == PC_ACT_RELU && (l->kind == PC_L_CONV || l->kind == PC_L_DENSE)) ||
           (l->act == PC_ACT_RELU && l->kind == PC_L_ADD && ex->ls[l - ex->m->layers].blocked);
}
static int act_fused_backward(const pc_exec *ex, const pc_layer *l) {
    return ex->use_dnnl && l->act != PC_ACT_NONE && l->kind == PC_L_BN;
}
static pc_fast_act fast_act(const pc_layer *l) {
    return l->act == PC_ACT_RELU ? PC_FAST_RELU : l->act == PC_ACT_GELU ? PC_FAST_GELU
                                                                        : PC_FAST_LINEAR;
}

/* Layouts. With oneDNN, activations between layers are kept in the channel-blocked layout
 * its convolutions want (pc_dnnl_activation_block), so convolutions read and write them
 * without reorders, and batch norm, pooling, the residual add and the activations run on
 * the blocked kernels of kernels/fast. Blocked: every convolution's output, and the output
 * of batch norm, pooling, add, ReLU and dropout whose input is blocked or the input images
 * (blocked once per forward, ex->input_blocked). Plain: the input, dense, global average
 * pooling and flatten outputs (flatten and a dense layer convert a blocked input), and
 * so whatever follows them. The logits are made plain after the last layer if it is
 * blocked. A residual add of a blocked and a plain tensor has no kernel: such a model keeps
 * every activation plain. Returns 0, or -1 for that mix. */
static int preserves_layout(pc_layer_kind k) {
    return k == PC_L_BN || k == PC_L_MAXPOOL || k == PC_L_AVGPOOL || k == PC_L_ADD ||
           k == PC_L_RELU || k == PC_L_DROPOUT;
}

static int assign_layouts(pc_exec *ex) {
    const pc_model *m = ex->m;
    for (int i = 0; i < m->n_layers; i++) {
        const pc_layer *l = &m->layers[i];
        layer_state *s = &ex->ls[i];
        s->blocked = 0;
        if (!ex->block || i == 0) continue;
        const int a = l->inputs[0], a_blocked = a == 0 || ex->ls[a].blocked;
        if (l->kind == PC_L_CONV) s->blocked = 1;
        else if (preserves_layout(l->kind)) s->blocked = a_blocked;
        if (l->kind == PC_L_ADD) {
            const int b = l->inputs[1];
            if ((b == 0 || ex->ls[b].blocked) != a_blocked) return -1;
        }
    }
    return 0;
}

/* Floats of layer i's output (and of its gradient): padded to whole blocks when blocked. */
static int64_t out_floats(const pc_exec *ex, int i) {
    const pc_layer *l = &ex->m->layers[i];
    if (!ex->ls[i].blocked) return (int64_t)ex->batch * pc_layer_out_size(l);
    return (int64_t)ex->batch * fast_blocked_size(l->c, (int64_t)l->h * l->w, ex->block);
}

/* Whether layer i reads its k-th input as the blocked images (a blocked layer other than a
 * convolution, which reads the plain images itself). */
static int reads_blocked_images(const pc_exec *ex, int i, int k) {
    return ex->m->layers[i].inputs[k] == 0 && ex->ls[i].blocked &&
           ex->m->layers[i].kind != PC_L_CONV;
}

/* Layer i's k-th input as layer i reads it. */
static const float *input_of(const pc_exec *ex, int i, int k) {
    if (reads_blocked_images(ex, i, k)) return ex->input_blocked;
    return ex->ls[ex->m->layers[i].inputs[k]].out;
}

pc_status pc_exec_create(const pc_model *m, int batch, pc_kernel_set kernels, pc_exec **out) {
    *out = NULL;
    pc_exec *ex = calloc(1, sizeof *ex);
    if (!ex) return pc_fail(PC_ERR_NOMEM, "out of memory");
    ex->m = m;
    ex->batch = batch;
#ifdef PARCNN_HAVE_DNNL
    ex->use_dnnl = kernels != PC_KERNELS_REF;
    ex->bf16 = kernels == PC_KERNELS_DNNL_BF16;
#else
    if (kernels == PC_KERNELS_DNNL || kernels == PC_KERNELS_DNNL_BF16) {
        free(ex);
        return pc_fail(PC_ERR_USAGE, "%s: this build has no oneDNN",
                       kernels == PC_KERNELS_DNNL ? "--kernels onednn" : "--precision bf16");
    }
#endif
    ex->ls = calloc(m->n_layers, sizeof(layer_state));
    ex->grad_ready = calloc(m->n_layers, 1);
    ex->grad_wanted = calloc(m->n_layers, 1);
    if (!ex->ls || !ex->grad_ready || !ex->grad_wanted) goto nomem;
#ifdef PARCNN_HAVE_DNNL
    if (ex->use_dnnl) ex->block = pc_dnnl_activation_block();
#endif
    if (assign_layouts(ex) != 0) {
        ex->block = 0;
        assign_layouts(ex);
    }
    int64_t max_size = 0, max_plain = 0;
    int input_blocked = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const pc_layer *l = &m->layers[i];
        layer_state *s = &ex->ls[i];
        int64_t size = out_floats(ex, i);
        max_size = PC_MAX(max_size, size);
        max_plain = PC_MAX(max_plain, (int64_t)batch * pc_layer_out_size(l));
        for (int k = 0; k < l->n_inputs; k++) input_blocked |= reads_blocked_images(ex, i, k);
        s->out = pc_alloc(sizeof(float) * size);
        if (!s->out) goto nomem;
        if (i > 0) {
            s->dout = pc_alloc(sizeof(float) * size);
            if (!s->dout) goto nomem;
        }
        if (l->act == PC_ACT_GELU && !act_fused(ex, l)) {
            s->pre = pc_alloc(sizeof(float) * size);
            if (!s->pre) goto nomem;
        }
        fill_shapes(m, batch, i, s);
        if (l->kind == PC_L_BN) {
            s->mean = pc_alloc(sizeof(float) * 3 * l->c);
            if (!s->mean) goto nomem;
            s->var = s->mean + l->c;
            s->invstd = s->var + l->c;
        }
        const int in_blocked = i > 0 && ex->ls[l->inputs[0]].blocked;
        if (l->kind == PC_L_DENSE && in_blocked) {
            s->plain_in = pc_alloc(sizeof(float) * batch * pc_layer_out_size(&m->layers[l->inputs[0]]));
            if (!s->plain_in) goto nomem;
        }
#ifdef PARCNN_HAVE_DNNL
        if (ex->use_dnnl &&
            create_plans(l, s, ex->bf16 ? PC_DNNL_BF16 : PC_DNNL_F32,
                         in_blocked ? ex->block : 0, s->blocked ? ex->block : 0) != PC_OK) {
            pc_exec_destroy(ex);
            return PC_ERR_INTERNAL; /* message set by the plan */
        }
#endif
        if (l->kind == PC_L_MAXPOOL && !s->dpool) { /* the C kernels' argmax */
            s->argmax = pc_alloc(sizeof(int32_t) * size);
            if (!s->blocked) s->pool_scratch = pc_alloc(fast_maxpool_scratch(&s->pool));
            if (!s->argmax || (!s->blocked && !s->pool_scratch)) goto nomem;
        }
    }
    ex->scratch = pc_alloc(sizeof(float) * max_size);
    ex->scratch_plain = ex->block ? pc_alloc(sizeof(float) * max_plain) : NULL;
    if (!ex->scratch || (ex->block && !ex->scratch_plain)) goto nomem;
    if (input_blocked) {
        const pc_layer *in = &m->layers[0];
        ex->input_blocked = pc_alloc(sizeof(float) * batch *
                                     fast_blocked_size(in->c, (int64_t)in->h * in->w, ex->block));
        if (!ex->input_blocked) goto nomem;
    }
    const int last = m->n_layers - 1;
    ex->logits = ex->ls[last].out;
    ex->dlogits = ex->ls[last].dout;
    if (ex->ls[last].blocked) {
        ex->logits = pc_alloc(sizeof(float) * 2 * batch * m->classes);
        if (!ex->logits) goto nomem;
        ex->dlogits = ex->logits + (int64_t)batch * m->classes;
    }
    *out = ex;
    return PC_OK;
nomem:
    pc_exec_destroy(ex);
    return pc_fail(PC_ERR_NOMEM, "out of memory for activations (batch %d)", batch);
}

void pc_exec_destroy(pc_exec *ex) {
    if (!ex) return;
    for (int i = 0; ex->ls && i < ex->m->n_layers; i++) {
        layer_state *s = &ex->ls[i];
        pc_free(s->out);
        pc_free(s->dout);
        pc_free(s->pre);
        pc_free(s->argmax);
        pc_free(s->pool_scratch);
        pc_free(s->mean);
        pc_free(s->plain_in);
#ifdef PARCNN_HAVE_DNNL
        if (s->dconv) pc_dnnl_conv_destroy(s->dconv);
        if (s->ddense) pc_dnnl_dense_destroy(s->ddense);
        if (s->dpool) pc_dnnl_pool_destroy(s->dpool);
#endif
    }
    free(ex->grad_ready);
    free(ex->grad_wanted);
    free(ex->prof_fwd);
    pc_free(ex->scratch);
    pc_free(ex->scratch_plain);
    pc_free(ex->input_blocked);
    if (ex->ls && ex->logits && ex->logits != ex->ls[ex->m->n_layers - 1].out) pc_free(ex->logits);
    free(ex->ls);
    free(ex);
}

/* ------------------------------------------------------------ forward */

static void gap_forward(int n, int c, int hw, const float *x, float *y) {
    for (int64_t p = 0; p < (int64_t)n * c; p++) {
        float s = 0;
        for (int i = 0; i < hw; i++) s += x[p * hw + i];
        y[p] = s / (float)hw;
    }
}

/* y = a + P(b): b subsampled by `stride` in space, its channels placed first. */
static void add_forward(int n, const pc_layer *l, const pc_layer *lb, const float *a,
                        const float *b, float *y) {
    int64_t size = pc_layer_out_size(l);
    memcpy(y, a, sizeof(float) * n * size);
    for (int s = 0; s < n; s++)
        for (int c = 0; c < lb->c; c++)
            for (int h = 0; h < l->h; h++) {
                float *yr = y + s * size + ((int64_t)c * l->h + h) * l->w;
                const float *br = b + (((int64_t)s * lb->c + c) * lb->h + h * l->sh) * lb->w;
                for (int w = 0; w < l->w; w++) yr[w] += br[w * l->sw];
            }
}

/* Keep each element with probability 1-rate, scaled by 1/(1-rate). The mask is a
 * function of (seed, step, layer, global sample index, element). */
static void dropout_apply(const pc_exec *ex, int layer, const pc_layer *l, const float *x,
                          float *y) {
    const int64_t size = pc_layer_out_size(l), hw = (int64_t)l->h * l->w;
    const int B = ex->ls[layer].blocked ? ex->block : 0;
    const int64_t stride = B ? fast_blocked_size(l->c, hw, B) : size; /* floats per sample */
    const float keep = 1.0f - l->rate, scale = 1.0f / keep;
    if (B) memset(y, 0, sizeof(float) * ex->batch * stride); /* padded channels */
    for (int s = 0; s < ex->batch; s++) {
        uint64_t sample = (uint64_t)(ex->first_sample + s);
        for (int64_t j = 0; j < size; j++) { /* j: the element's plain index in the sample */
            uint64_t bits = pc_rand64(ex->seed, PC_RNG_DROPOUT, ex->step, (uint64_t)layer,
                                      sample * (uint64_t)size + (uint64_t)j);
            const int64_t c = j / hw, p = j % hw;
            const int64_t k = s * stride + (B ? ((c / B) * hw + p) * B + c % B : j);
            y[k] = pc_uniform01(bits) < keep ? x[k] * scale : 0.0f;
        }
    }
}

/* The residual add's shape for the blocked kernels. */
static fast_add_shape add_shape(const pc_exec *ex, const pc_layer *l, const pc_layer *lb) {
    return (fast_add_shape){.n = ex->batch, .c = l->c, .h = l->h, .w = l->w, .cb = lb->c,
                            .hb = lb->h, .wb = lb->w, .sh = l->sh, .sw = l->sw};
}

/* Batch norm: the reference kernels for the reference set, otherwise the vectorized C
 * kernels (oneDNN 2.6 only has non-JIT code for plain NCHW batch norm), with the layer's
 * activation fused. y: s->out, or s->pre before an unfused GELU. */
static void bn_forward(pc_exec *ex, const pc_layer *l, layer_state *s, const float *x, int train,
                       float *y) {
    const float *gamma = ex->m->params + l->weight_off, *beta = ex->m->params + l->bias_off;
    const float *rmean = ex->m->buffers + l->buffer_off, *rvar = rmean + l->c;
    if (s->blocked) {
        if (train)
            fast_bnb_forward_train(&s->bn, ex->block, x, gamma, beta, y, s->mean, s->var,
                                   s->invstd, fast_act(l));
        else
            fast_bnb_forward_eval(&s->bn, ex->block, x, gamma, beta, rmean, rvar, y, fast_act(l));
    } else if (!ex->use_dnnl) {
        if (train) ref_bn_forward_train(&s->bn, x, gamma, beta, y, s->mean, s->var, s->invstd);
        else ref_bn_forward_eval(&s->bn, x, gamma, beta, rmean, rvar, y);
    } else if (train) {
        fast_bn_forward_train(&s->bn, x, gamma, beta, y, s->mean, s->var, s->invstd, fast_act(l));
    } else {
        fast_bn_forward_eval(&s->bn, x, gamma, beta, rmean, rvar, y, fast_act(l));
    }
}

/* A dense layer's scale=, applied before its activation (positive, so it commutes with a
 * ReLU fused into the kernel). */
static void scale_array(int64_t n, float scale, float *v) {
    for (int64_t k = 0; k < n; k++) v[k] *= scale;
}

static void layer_forward(pc_exec *ex, int i, int train) {
    const pc_model *m = ex->m;
    const pc_layer *l = &m->layers[i];
    layer_state *s = &ex->ls[i];
    const pc_layer *in = &m->layers[l->inputs[0]];
    const int in_blocked = ex->ls[l->inputs[0]].blocked, B = ex->block;
    const float *x = input_of(ex, i, 0);
    const float *w = l->weight_off >= 0 ? m->params + l->weight_off : NULL;
    const float *b = l->bias_off >= 0 ? m->params + l->bias_off : NULL;
    int64_t n_out = out_floats(ex, i);
    float *y = s->pre ? s->pre : s->out; /* the layer's output before its activation */
    switch (l->kind) {
    case PC_L_INPUT:
        break;
    case PC_L_CONV:
#ifdef PARCNN_HAVE_DNNL
        if (ex->use_dnnl) { pc_dnnl_conv_forward(s->dconv, x, w, b, y); break; }
#endif
        ref_conv2d_forward(&s->conv, x, w, b, y);
        break;
    case PC_L_DENSE:
        if (s->plain_in) {
            fast_to_plain(ex->batch, in->c, (int64_t)in->h * in->w, B, x, s->plain_in);
            x = s->plain_in;
        }
#ifdef PARCNN_HAVE_DNNL
        if (ex->use_dnnl) { pc_dnnl_dense_forward(s->ddense, x, w, b, y); break; }
#endif
        ref_dense_forward(&s->dense, x, w, b, y);
        break;
    case PC_L_BN:
        bn_forward(ex, l, s, x, train, y);
        break;
    case PC_L_MAXPOOL:
    case PC_L_AVGPOOL:
#ifdef PARCNN_HAVE_DNNL
        if (s->dpool) { pc_dnnl_pool_forward(s->dpool, x, y); break; }
#endif
        if (s->blocked && l->kind == PC_L_MAXPOOL)
            fast_maxpoolb_forward(&s->pool, B, x, y, s->argmax);
        else if (s->blocked)
            fast_avgpoolb_forward(&s->pool, B, x, y);
        else if (l->kind == PC_L_MAXPOOL && ex->use_dnnl)
            fast_maxpool_forward(&s->pool, x, y, s->argmax, s->pool_scratch);
        else if (l->kind == PC_L_MAXPOOL)
            ref_maxpool_forward(&s->pool, x, y, s->argmax);
        else
            ref_avgpool_forward(&s->pool, x, y);
        break;
    case PC_L_GAP:
        if (in_blocked) fast_gapb_forward(ex->batch, l->c, (int64_t)in->h * in->w, B, x, y);
        else gap_forward(ex->batch, l->c, in->h * in->w, x, y);
        break;
    case PC_L_DROPOUT:
        if (train && l->rate > 0) {
            dropout_apply(ex, i, l, x, y);
            break;
        }
        /* identity in inference */
        /* fall through */
    case PC_L_FLATTEN:
    case PC_L_RELU:
        if (in_blocked && !s->blocked) /* flatten */
            fast_to_plain(ex->batch, in->c, (int64_t)in->h * in->w, B, x, y);
        else
            memcpy(y, x, sizeof(float) * n_out);
        break;
    case PC_L_ADD:
        if (s->blocked) {
            fast_add_shape as = add_shape(ex, l, &m->layers[l->inputs[1]]);
            fast_addb_forward(&as, B, x, input_of(ex, i, 1), y, l->act == PC_ACT_RELU);
        } else {
            add_forward(ex->batch, l, &m->layers[l->inputs[1]], x, input_of(ex, i, 1), y);
        }
        break;
    case PC_L_KIND_COUNT:
        break;
    }
    if (l->kind == PC_L_DENSE && l->scale != 1.0f) scale_array(n_out, l->scale, y);
    if (act_fused(ex, l)) return;
    if (l->act == PC_ACT_RELU) ref_relu_forward(n_out, y, y);
    if (l->act == PC_ACT_GELU) (ex->use_dnnl ? fast_gelu_forward : ref_gelu_forward)(n_out, y, s->out);
}

const float *pc_exec_forward(pc_exec *ex, int train, uint64_t seed, uint64_t step,
                             int64_t first_sample, float *bn_stats) {
    ex->train_forward = train;
    ex->seed = seed;
    ex->step = step;
    ex->first_sample = first_sample;
    const pc_layer *in = &ex->m->layers[0], *last = &ex->m->layers[ex->m->n_layers - 1];
    if (ex->input_blocked)
        fast_to_blocked(ex->batch, in->c, (int64_t)in->h * in->w, ex->block, ex->ls[0].out,
                        ex->input_blocked);
    int timed = train && ex->prof_fwd;
    for (int i = 1; i < ex->m->n_layers; i++) {
        double t0 = timed ? pc_now() : 0;
        layer_forward(ex, i, train);
        if (timed) ex->prof_fwd[i] += pc_now() - t0;
        const pc_layer *l = &ex->m->layers[i];
        if (train && bn_stats && l->kind == PC_L_BN) {
            memcpy(bn_stats, ex->ls[i].mean, sizeof(float) * l->c);
            memcpy(bn_stats + l->c, ex->ls[i].var, sizeof(float) * l->c);
            bn_stats += 2 * l->c;
        }
    }
    if (ex->ls[ex->m->n_layers - 1].blocked)
        fast_to_plain(ex->batch, last->c, (int64_t)last->h * last->w, ex->block,
                      ex->ls[ex->m->n_layers - 1].out, ex->logits);
    return ex->logits;
}

double pc_exec_loss(pc_exec *ex, const int32_t *labels, float smoothing, float grad_scale,
                    int *correct) {
    int classes = ex->m->classes;
    const float *logits = ex->logits;
    double loss = ref_softmax_xent(ex->batch, classes, logits, labels, smoothing, grad_scale,
                                   ex->dlogits, NULL);
    int ok = 0;
    for (int s = 0; s < ex->batch; s++) {
        const float *z = logits + (int64_t)s * classes;
        int best = 0;
        for (int k = 1; k < classes; k++)
            if (z[k] > z[best]) best = k;
        ok += best == labels[s];
    }
    if (correct) *correct = ok;
    return loss;
}

void pc_exec_probs(pc_exec *ex, float *probs) {
    int classes = ex->m->classes;
    const float *logits = ex->logits;
    for (int s = 0; s < ex->batch; s++) {
        const float *z = logits + (int64_t)s * classes;
        float *p = probs + (int64_t)s * classes;
        float mx = z[0];
        for (int k = 1; k < classes; k++) mx = z[k] > mx ? z[k] : mx;
        double sum = 0;
        for (int k = 0; k < classes; k++) sum += (p[k] = expf(z[k] - mx));
        for (int k = 0; k < classes; k++) p[k] = (float)(p[k] / sum);
    }
}

/* ----------------------------------------------------------- backward */

/* Where the gradient for input `j` should be written: straight into its dout the
 * first time, into scratch (then added) when another consumer already wrote; NULL when
 * nothing trainable lies at or before j (the input images; a frozen first layer). */
static float *grad_target(pc_exec *ex, int j) {
    if (!ex->grad_wanted[j]) return NULL;
    return ex->grad_ready[j] ? ex->scratch : ex->ls[j].dout;
}

static void grad_commit(pc_exec *ex, int j, const float *target) {
    if (!ex->grad_wanted[j]) return;
    if (target == ex->scratch) {
        int64_t n = out_floats(ex, j);
        float *d = ex->ls[j].dout;
        for (int64_t k = 0; k < n; k++) d[k] += ex->scratch[k];
    }
    ex->grad_ready[j] = 1;
}

static void gap_backward(int n, int c, int hw, const float *dy, float *dx) {
    for (int64_t p = 0; p < (int64_t)n * c; p++) {
        float g = dy[p] / (float)hw;
        for (int i = 0; i < hw; i++) dx[p * hw + i] = g;
    }
}

/* Gradient of the subsampled, zero-padded second input of add. */
static void add_backward_b(int n, const pc_layer *l, const pc_layer *lb, const float *dy,
                           float *db) {
    if (l->sh > 1) memset(db, 0, sizeof(float) * n * pc_layer_out_size(lb));
    int64_t size = pc_layer_out_size(l);
    for (int s = 0; s < n; s++)
        for (int c = 0; c < lb->c; c++)
            for (int h = 0; h < l->h; h++) {
                const float *yr = dy + s * size + ((int64_t)c * l->h + h) * l->w;
                float *br = db + (((int64_t)s * lb->c + c) * lb->h + h * l->sh) * lb->w;
                for (int w = 0; w < l->w; w++) br[w * l->sw] = yr[w];
            }
}

/* The gradients of a layer's parameters set to zero: the reduction and the optimizer read
 * every parameter's gradient, frozen or not. */
static void zero_param_grads(const pc_layer *l, float *grads) {
    if (l->weight_off >= 0) memset(grads + l->weight_off, 0, sizeof(float) * l->weight_n);
    if (l->bias_off >= 0) memset(grads + l->bias_off, 0, sizeof(float) * l->bias_n);
}

static void layer_backward(pc_exec *ex, int i, float *grads) {
    const pc_model *m = ex->m;
    const pc_layer *l = &m->layers[i];
    layer_state *s = &ex->ls[i];
    int j = l->inputs[0];
    const pc_layer *in = &m->layers[j];
    const int in_blocked = ex->ls[j].blocked, B = ex->block;
    const float *x = input_of(ex, i, 0);
    const float *w = l->weight_off >= 0 ? m->params + l->weight_off : NULL;
    float *dw = l->weight_off >= 0 ? grads + l->weight_off : NULL;
    float *db = l->bias_off >= 0 ? grads + l->bias_off : NULL;
    int64_t n_in = out_floats(ex, j);
    float *dy = s->dout;
    float *dx = grad_target(ex, j);
    if (l->kind == PC_L_CONV || l->kind == PC_L_DENSE) {
        /* frozen parameters: no gradient work (a frozen first layer then has none at
         * all); zeros keep the reduction and the optimizer's inputs finite */
        if (dw && !(l->trainable & PC_TRAIN_WEIGHT)) {
            memset(dw, 0, sizeof(float) * l->weight_n);
            dw = NULL;
        }
        if (db && !(l->trainable & PC_TRAIN_BIAS)) {
            memset(db, 0, sizeof(float) * l->bias_n);
            db = NULL;
        }
        if (!dx && !dw && !db) return; /* not even its activation's backward is needed */
    }

    int64_t n_out = out_floats(ex, i);
    if (l->act == PC_ACT_RELU && !act_fused_backward(ex, l)) ref_relu_backward(n_out, s->out, dy, dy);
    if (l->act == PC_ACT_GELU && !act_fused_backward(ex, l))
        (ex->use_dnnl ? fast_gelu_backward : ref_gelu_backward)(n_out, s->pre, dy, dy);
    if (l->kind == PC_L_DENSE && l->scale != 1.0f)
        scale_array(n_out, l->scale, dy);
    switch (l->kind) {
    case PC_L_CONV:
#ifdef PARCNN_HAVE_DNNL
        if (ex->use_dnnl) { pc_dnnl_conv_backward(s->dconv, x, w, dy, dx, dw, db); break; }
#endif
        ref_conv2d_backward(&s->conv, x, w, dy, dx, dw, db);
        break;
    case PC_L_DENSE: {
        /* after a blocked tensor: x is the forward's plain copy, dx is blocked afterwards */
        float *dxp = s->plain_in && dx ? ex->scratch_plain : dx;
        if (s->plain_in) x = s->plain_in;
#ifdef PARCNN_HAVE_DNNL
        if (ex->use_dnnl) pc_dnnl_dense_backward(s->ddense, x, w, dy, dxp, dw, db);
        else
#endif
            ref_dense_backward(&s->dense, x, w, dy, dxp, dw, db);
        if (dxp != dx) fast_to_blocked(ex->batch, in->c, (int64_t)in->h * in->w, B, dxp, dx);
        break;
    }
    case PC_L_BN:
        if (s->blocked)
            fast_bnb_backward(&s->bn, B, x, s->out, w,
                              l->bias_off >= 0 ? m->params + l->bias_off : NULL, s->mean,
                              s->invstd, dy, dx, dw, db,
                              act_fused_backward(ex, l) ? fast_act(l) : PC_FAST_LINEAR);
        else if (ex->use_dnnl)
            fast_bn_backward(&s->bn, x, s->out, w, l->bias_off >= 0 ? m->params + l->bias_off : NULL,
                             s->mean, s->invstd,
                             dy, dx, dw, db, act_fused_backward(ex, l) ? fast_act(l) : PC_FAST_LINEAR);
        else
            ref_bn_backward(&s->bn, x, w, s->mean, s->invstd, dy, dx, dw, db);
        break;
    case PC_L_MAXPOOL:
    case PC_L_AVGPOOL:
        if (!dx) break;
#ifdef PARCNN_HAVE_DNNL
        if (s->dpool) { pc_dnnl_pool_backward(s->dpool, dy, dx); break; }
#endif
        if (s->blocked && l->kind == PC_L_MAXPOOL)
            fast_maxpoolb_backward(&s->pool, B, s->argmax, dy, dx);
        else if (s->blocked)
            fast_avgpoolb_backward(&s->pool, B, dy, dx);
        else if (l->kind == PC_L_MAXPOOL)
            ref_maxpool_backward(&s->pool, s->argmax, dy, dx);
        else
            ref_avgpool_backward(&s->pool, dy, dx);
        break;
    case PC_L_GAP:
        if (dx && in_blocked) fast_gapb_backward(ex->batch, l->c, (int64_t)in->h * in->w, B, dy, dx);
        else if (dx) gap_backward(ex->batch, l->c, in->h * in->w, dy, dx);
        break;
    case PC_L_DROPOUT:
        if (dx && l->rate > 0) {
            dropout_apply(ex, i, l, dy, dx); /* same mask, same scale */
            break;
        }
        /* fall through */
    case PC_L_FLATTEN:
    case PC_L_RELU:
    case PC_L_ADD:
        if (dx && in_blocked && !s->blocked) /* flatten */
            fast_to_blocked(ex->batch, in->c, (int64_t)in->h * in->w, B, dy, dx);
        else if (dx)
            memcpy(dx, dy, sizeof(float) * n_in);
        break;
    case PC_L_INPUT:
    case PC_L_KIND_COUNT:
        break;
    }
    if (dx) grad_commit(ex, j, dx);
    if (l->kind == PC_L_ADD) {
        int k = l->inputs[1];
        float *dxb = grad_target(ex, k);
        if (dxb) {
            fast_add_shape as = add_shape(ex, l, &m->layers[k]);
            if (s->blocked) fast_addb_backward_b(&as, B, dy, dxb);
            else add_backward_b(ex->batch, l, &m->layers[k], dy, dxb);
            grad_commit(ex, k, dxb);
        }
    }
}

void pc_exec_backward(pc_exec *ex, float *grads) {
    const pc_model *m = ex->m;
    pc_model_grad_wanted(m, ex->grad_wanted);
    memset(ex->grad_ready, 0, m->n_layers);
    ex->grad_ready[m->n_layers - 1] = 1; /* seeded by pc_exec_loss */
    const pc_layer *last = &m->layers[m->n_layers - 1];
    if (ex->ls[m->n_layers - 1].blocked)
        fast_to_blocked(ex->batch, last->c, (int64_t)last->h * last->w, ex->block, ex->dlogits,
                        ex->ls[m->n_layers - 1].dout);
    for (int i = m->n_layers - 1; i >= 1; i--) {
        if (!ex->grad_wanted[i]) { /* frozen, and only frozen layers before it */
            zero_param_grads(&m->layers[i], grads);
            if (ex->hook) ex->hook(ex->hook_ctx, i);
            continue;
        }
        if (!ex->grad_ready[i]) /* an output nobody reads: zero gradient */
            memset(ex->ls[i].dout, 0, sizeof(float) * out_floats(ex, i));
        double t0 = ex->prof_bwd ? pc_now() : 0;
        layer_backward(ex, i, grads);
        if (ex->prof_bwd) ex->prof_bwd[i] += pc_now() - t0;
        if (ex->hook) ex->hook(ex->hook_ctx, i);
    }
}
