/* Forward and backward passes of one replica over a fixed batch size. */
#include "nn/exec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ref/ref.h"
#include "nn/layer.h"

void pc_exec_enable_profile(pc_exec *ex) {
    if (!ex->prof_fwd) ex->prof_fwd = calloc(2 * ex->m->n_layers, sizeof(double));
    if (ex->prof_fwd) ex->prof_bwd = ex->prof_fwd + ex->m->n_layers;
}

void pc_exec_enable_profile_inference(pc_exec *ex) {
    pc_exec_enable_profile(ex);
    ex->prof_inference = 1;
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

const char *pc_exec_conv_algo(const pc_exec *ex, int i) {
#ifdef PARCNN_HAVE_DNNL
    if (ex->ls[i].dconv) return pc_dnnl_conv_algo_name(ex->ls[i].dconv);
#endif
    (void)ex, (void)i;
    return NULL;
}

pc_status pc_exec_status(const pc_exec *ex) {
#ifdef PARCNN_HAVE_DNNL
    if (ex->use_dnnl) return pc_dnnl_run_status();
#endif
    (void)ex;
    return PC_OK;
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

/* A layer's activation runs inside its kernel where the kind says it can (fuses_act): ReLU
 * as a oneDNN post-op after convolutions and dense layers (ReLU6 too after direct
 * convolutions), ReLU, ReLU6 and GELU in the fast batch-norm kernels, ReLU in the blocked
 * residual add (one pass over the output, not two). Backward, only batch norm's kernels
 * fuse it (ReLU6's mask and GELU' from the recomputed batch-norm output); elsewhere dy is
 * masked by ReLU's or ReLU6's output, or multiplied by GELU' of the kept pre-activation.
 * The reference kernel set fuses nothing. */
static int act_fused(const pc_exec *ex, int i) {
    const pc_layer *l = &ex->m->layers[i];
    const pc_layer_ops *ops = pc_layer_ops_of(l->kind);
    return ex->use_dnnl && l->act != PC_ACT_NONE && ops->fuses_act && ops->fuses_act(ex, i);
}
static int act_fused_backward(const pc_exec *ex, int i) {
    const pc_layer *l = &ex->m->layers[i];
    const pc_layer_ops *ops = pc_layer_ops_of(l->kind);
    return ex->use_dnnl && l->act != PC_ACT_NONE && ops->fuses_act_backward &&
           ops->fuses_act_backward(ex, i);
}
pc_fast_act pc_exec_fast_act(const pc_layer *l) {
    switch (l->act) {
    case PC_ACT_RELU: return PC_FAST_RELU;
    case PC_ACT_GELU: return PC_FAST_GELU;
    case PC_ACT_RELU6: return PC_FAST_RELU6;
    default: return PC_FAST_LINEAR;
    }
}

/* Layouts. With oneDNN, activations between layers are kept in the channel-blocked layout
 * its convolutions want (pc_dnnl_activation_block), so convolutions read and write them
 * without reorders, and batch norm, pooling, the residual add and the activations run on
 * the kinds' blocked kernels. Each kind's descriptor gives its rule (pc_out_layout):
 * convolutions always write blocked outputs (and read the images plain themselves); kinds
 * that keep their input's layout (batch norm, pooling, add, the activations, dropout) are
 * blocked when their input is blocked or the input images (blocked once per forward,
 * ex->input_blocked); the others (dense, global average pooling, flatten) write plain
 * outputs, converting a blocked input, and so does whatever follows them. The logits are
 * made plain after the last layer if it is blocked. A kind reading several inputs whose
 * layouts differ has no kernel: such a model keeps every activation plain. Returns 0, or
 * -1 for that mix. */
static int assign_layouts(pc_exec *ex) {
    const pc_model *m = ex->m;
    for (int i = 0; i < m->n_layers; i++) {
        const pc_layer *l = &m->layers[i];
        const pc_out_layout rule = pc_layer_ops_of(l->kind)->layout;
        layer_state *s = &ex->ls[i];
        s->blocked = 0;
        if (!ex->block || i == 0) continue;
        const int a = l->inputs[0], a_blocked = a == 0 || ex->ls[a].blocked;
        if (rule == PC_OUT_BLOCKED) s->blocked = 1;
        else if (rule == PC_OUT_AS_INPUT) s->blocked = a_blocked;
        for (int k = 1; rule == PC_OUT_AS_INPUT && k < l->n_inputs; k++) {
            const int b = l->inputs[k];
            if ((b == 0 || ex->ls[b].blocked) != a_blocked) return -1;
        }
    }
    return 0;
}

int64_t pc_exec_out_floats(const pc_exec *ex, int i) {
    const pc_layer *l = &ex->m->layers[i];
    if (!ex->ls[i].blocked) return (int64_t)ex->batch * pc_layer_out_size(l);
    return (int64_t)ex->batch * fast_blocked_size(l->c, (int64_t)l->h * l->w, ex->block);
}

/* Whether layer i reads its k-th input as the blocked images (a blocked layer other than a
 * convolution, which reads the plain images itself). */
static int reads_blocked_images(const pc_exec *ex, int i, int k) {
    return ex->m->layers[i].inputs[k] == 0 && ex->ls[i].blocked &&
           pc_layer_ops_of(ex->m->layers[i].kind)->layout == PC_OUT_AS_INPUT;
}

const float *pc_exec_input_of(const pc_exec *ex, int i, int k) {
    if (reads_blocked_images(ex, i, k)) return ex->input_blocked;
    return ex->ls[ex->m->layers[i].inputs[k]].out;
}

int pc_exec_input_blocked(const pc_exec *ex, int i, int k) {
    return reads_blocked_images(ex, i, k) || ex->ls[ex->m->layers[i].inputs[k]].blocked;
}

/* The options an exec can run with in this build. */
static pc_status check_options(const pc_exec_options *o) {
    int bf16 = o->precision == PC_PRECISION_BF16;
    if (bf16 && o->kernels == PC_KERNELS_REF)
        return pc_fail(PC_ERR_USAGE, "--precision bf16 runs on the oneDNN kernels, not --kernels ref");
#ifndef PARCNN_HAVE_DNNL
    if (o->kernels == PC_KERNELS_DNNL || bf16)
        return pc_fail(PC_ERR_USAGE, "%s: this build has no oneDNN",
                       bf16 ? "--precision bf16" : "--kernels onednn");
#endif
    return PC_OK;
}

pc_status pc_exec_create(const pc_model *m, int batch, const pc_exec_options *opt, pc_exec **out) {
    *out = NULL;
    static const pc_exec_options defaults = {0};
    if (!opt) opt = &defaults;
    PC_TRY(check_options(opt));
    pc_exec *ex = calloc(1, sizeof *ex);
    if (!ex) return pc_fail_nomem();
    ex->m = m;
    ex->batch = batch;
    ex->conv_algo = opt->conv_algo;
#ifdef PARCNN_HAVE_DNNL
    ex->use_dnnl = opt->kernels != PC_KERNELS_REF;
    ex->bf16 = opt->precision == PC_PRECISION_BF16;
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
        int64_t size = pc_exec_out_floats(ex, i);
        max_size = PC_MAX(max_size, size);
        max_plain = PC_MAX(max_plain, (int64_t)batch * pc_layer_out_size(l));
        for (int k = 0; k < l->n_inputs; k++) input_blocked |= reads_blocked_images(ex, i, k);
        s->out = pc_alloc(sizeof(float) * size);
        if (!s->out) goto nomem;
        if (i > 0) {
            s->dout = pc_alloc(sizeof(float) * size);
            if (!s->dout) goto nomem;
        }
        if (l->act == PC_ACT_GELU && !act_fused(ex, i)) {
            s->pre = pc_alloc(sizeof(float) * size);
            if (!s->pre) goto nomem;
        }
        pc_status st = pc_layer_ops_of(l->kind)->setup(ex, i);
        if (st == PC_ERR_NOMEM) goto nomem;
        if (st != PC_OK) {
            pc_exec_destroy(ex);
            return st; /* message set by the kind */
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

/* About the bytes plans of layer i allocate (oneDNN's reordered copies, workspaces and
 * scratchpads, Winograd's transformed tensors), or of the reference kernels' state. */
static int64_t layer_plan_bytes(const pc_exec *ex, int i) {
    const pc_layer *l = &ex->m->layers[i], *in = &ex->m->layers[l->inputs[0]];
    const int64_t x = (int64_t)ex->batch * pc_layer_out_size(in), y = pc_exec_out_floats(ex, i);
    switch (l->kind) {
    case PC_L_CONV:
#ifdef PARCNN_HAVE_DNNL
        if (ex->use_dnnl) {
            const pc_conv_shape s = {.n = ex->batch, .c = in->c, .h = in->h, .w = in->w,
                                     .k = l->filters, .kh = l->kh, .kw = l->kw, .sh = l->sh,
                                     .sw = l->sw, .ph = l->ph, .pw = l->pw, .groups = l->groups,
                                     .dil_h = l->dilation, .dil_w = l->dilation};
            return (int64_t)pc_dnnl_conv_plan_bytes(&s, ex->bf16 ? PC_DNNL_BF16 : PC_DNNL_F32,
                                                    ex->conv_algo,
                                                    pc_exec_input_blocked(ex, i, 0) ? ex->block : 0,
                                                    ex->ls[i].blocked ? ex->block : 0);
        }
#endif
        return 0;
    case PC_L_DENSE: /* fp32 keeps the weights plain; bf16 converts them */
        return (int64_t)sizeof(float) * (x + y + (ex->use_dnnl && ex->bf16 ? l->weight_n : 0));
    case PC_L_MAXPOOL: case PC_L_AVGPOOL: return (int64_t)sizeof(float) * y;
    default: return (int64_t)sizeof(float) * 4 * l->c;
    }
}

int64_t pc_exec_bytes(const pc_model *m, int batch, const pc_exec_options *opt) {
    static const pc_exec_options defaults = {0};
    if (!opt) opt = &defaults;
    pc_exec ex = {.m = m, .batch = batch, .conv_algo = opt->conv_algo};
#ifdef PARCNN_HAVE_DNNL
    ex.use_dnnl = opt->kernels != PC_KERNELS_REF;
    ex.bf16 = opt->precision == PC_PRECISION_BF16;
    if (ex.use_dnnl) ex.block = pc_dnnl_activation_block();
#endif
    if (!(ex.ls = calloc(m->n_layers, sizeof(layer_state)))) return -1;
    if (assign_layouts(&ex) != 0) {
        ex.block = 0;
        assign_layouts(&ex);
    }
    int64_t bytes = 0, most = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const int64_t size = pc_exec_out_floats(&ex, i);
        most = PC_MAX(most, size);
        int copies = i > 0 ? 2 : 1; /* out and dout */
        if (m->layers[i].act == PC_ACT_GELU && !act_fused(&ex, i)) copies++;
        bytes += (int64_t)sizeof(float) * size * copies;
        if (i > 0) bytes += layer_plan_bytes(&ex, i);
    }
    free(ex.ls);
    return bytes + (int64_t)sizeof(float) * 2 * most; /* the scratch tensors */
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

static void layer_forward(pc_exec *ex, int i, int train) {
    const pc_layer *l = &ex->m->layers[i];
    layer_state *s = &ex->ls[i];
    const int64_t n_out = pc_exec_out_floats(ex, i);
    float *y = s->pre ? s->pre : s->out; /* the layer's output before its activation */
    pc_layer_ops_of(l->kind)->forward(ex, i, train, y);
    if (act_fused(ex, i)) return;
    if (l->act == PC_ACT_RELU) ref_relu_forward(n_out, y, y);
    if (l->act == PC_ACT_RELU6) (ex->use_dnnl ? fast_clip_forward : ref_clip_forward)(n_out, 0, 6, y, y);
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
    int timed = (train || ex->prof_inference) && ex->prof_fwd;
    for (int i = 1; i < ex->m->n_layers; i++) {
        double t0 = timed ? pc_now() : 0;
        layer_forward(ex, i, train);
        if (timed) ex->prof_fwd[i] += pc_now() - t0;
        const pc_layer *l = &ex->m->layers[i];
        if (train && bn_stats && l->kind == PC_L_BN) { /* frozen: its running statistics */
            const float *run = ex->m->buffers + l->buffer_off;
            memcpy(bn_stats, l->bn_frozen ? run : ex->ls[i].mean, sizeof(float) * l->c);
            memcpy(bn_stats + l->c, l->bn_frozen ? run + l->c : ex->ls[i].var, sizeof(float) * l->c);
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

void pc_exec_layer_output(const pc_exec *ex, int i, float *out) {
    const pc_layer *l = &ex->m->layers[i];
    if (ex->ls[i].blocked)
        fast_to_plain(ex->batch, l->c, (int64_t)l->h * l->w, ex->block, ex->ls[i].out, out);
    else
        memcpy(out, ex->ls[i].out, sizeof(float) * ex->batch * pc_layer_out_size(l));
}

void pc_exec_scale_dlogits(pc_exec *ex, const float *row_scale) {
    int classes = ex->m->classes;
    for (int s = 0; s < ex->batch; s++)
        for (int k = 0; k < classes; k++) ex->dlogits[(int64_t)s * classes + k] *= row_scale[s];
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
        int64_t n = pc_exec_out_floats(ex, j);
        float *d = ex->ls[j].dout;
        for (int64_t k = 0; k < n; k++) d[k] += ex->scratch[k];
    }
    ex->grad_ready[j] = 1;
}

/* The gradients of a layer's parameters set to zero: the reduction and the optimizer read
 * every parameter's gradient, frozen or not. */
static void zero_param_grads(const pc_layer *l, float *grads) {
    if (l->weight_off >= 0) memset(grads + l->weight_off, 0, sizeof(float) * l->weight_n);
    if (l->bias_off >= 0) memset(grads + l->bias_off, 0, sizeof(float) * l->bias_n);
}

static void layer_backward(pc_exec *ex, int i, float *grads) {
    const pc_layer *l = &ex->m->layers[i];
    const pc_layer_ops *ops = pc_layer_ops_of(l->kind);
    layer_state *s = &ex->ls[i];
    float *dw = l->weight_off >= 0 ? grads + l->weight_off : NULL;
    float *db = l->bias_off >= 0 ? grads + l->bias_off : NULL;
    float *dy = s->dout;
    if (ops->flags & PC_OPS_WEIGHTED) {
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
        if (!ex->grad_wanted[l->inputs[0]] && !dw && !db)
            return; /* not even its activation's backward is needed */
    }
    const int64_t n_out = pc_exec_out_floats(ex, i);
    if (l->act == PC_ACT_RELU && !act_fused_backward(ex, i)) ref_relu_backward(n_out, s->out, dy, dy);
    /* ReLU6's mask from its output: 0 < y < 6 exactly where 0 < x < 6 */
    if (l->act == PC_ACT_RELU6 && !act_fused_backward(ex, i))
        (ex->use_dnnl ? fast_clip_backward : ref_clip_backward)(n_out, 0, 6, s->out, dy, dy);
    if (l->act == PC_ACT_GELU && !act_fused_backward(ex, i))
        (ex->use_dnnl ? fast_gelu_backward : ref_gelu_backward)(n_out, s->pre, dy, dy);
    /* one input at a time: a second input's target may be the shared scratch */
    for (int k = 0; k < l->n_inputs; k++) {
        const int j = l->inputs[k];
        float *dx = grad_target(ex, j);
        ops->backward(ex, i, k, dy, dx, k == 0 ? dw : NULL, k == 0 ? db : NULL);
        if (dx) grad_commit(ex, j, dx);
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
            memset(ex->ls[i].dout, 0, sizeof(float) * pc_exec_out_floats(ex, i));
        double t0 = ex->prof_bwd ? pc_now() : 0;
        layer_backward(ex, i, grads);
        if (ex->prof_bwd) ex->prof_bwd[i] += pc_now() - t0;
        if (ex->hook) ex->hook(ex->hook_ctx, i);
    }
}
