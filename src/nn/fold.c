/* Batch norm folded into the layer before it, for inference: the model an inference
 * command runs (predict, eval, bench predict, the C API's predict and evaluate), as
 * PyTorch's TorchScript freeze + optimize_for_inference and onnxruntime prepare theirs.
 * In inference mode a batch norm is a per-channel affine map of its input,
 *   y = (x - mean) * gamma / sqrt(var + eps) + beta,
 * so after a convolution or dense layer it can go into that layer's weights and bias:
 * one pass over the activations fewer, and the batch norm's activation runs fused in the
 * convolution's kernel. Training never sees a folded model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"

/* Whether batch norm b can be folded into its input layer: a convolution or a dense layer
 * without scale= (its scale multiplies after the bias), with no activation of its own, and
 * read by b alone (another reader needs its output before the normalization). */
static int foldable(const pc_model *m, const int *readers, int b) {
    const pc_layer *l = &m->layers[b];
    if (l->kind != PC_L_BN) return 0;
    const int a = l->inputs[0];
    const pc_layer *in = &m->layers[a];
    int kind = in->kind == PC_L_CONV || (in->kind == PC_L_DENSE && in->scale == 1.0f);
    return a > 0 && kind && in->act == PC_ACT_NONE && readers[a] == 1;
}

/* Layer `to` (a copy of conv or dense layer `from` of m, offsets already in `out`) with
 * batch norm bn folded in, per output channel k: weight * s_k and bias (b_k - mean_k) *
 * s_k + beta_k, s_k = gamma_k / sqrt(var_k + eps), in double, rounded once. */
static void fold_into(const pc_model *m, const pc_layer *from, const pc_layer *bn,
                      pc_model *out, const pc_layer *to) {
    const float *w = m->params + from->weight_off;
    const float *b = from->bias_off >= 0 ? m->params + from->bias_off : NULL;
    const float *gamma = m->params + bn->weight_off, *beta = m->params + bn->bias_off;
    const float *mean = m->buffers + bn->buffer_off, *var = mean + bn->c;
    float *w2 = out->params + to->weight_off, *b2 = out->params + to->bias_off;
    const int64_t per = from->weight_n / from->c; /* weights of one output channel */
    for (int k = 0; k < from->c; k++) {
        double s = gamma[k] / sqrt((double)var[k] + bn->eps);
        for (int64_t j = 0; j < per; j++) w2[k * per + j] = (float)(w[k * per + j] * s);
        b2[k] = (float)(((b ? b[k] : 0.0) - mean[k]) * s + beta[k]);
    }
}

/* What happens to each layer of m. */
enum { KEPT = 0, FOLDED, RECEIVES };

/* The copy's layers: m's without the FOLDED batch norms, inputs renumbered (a
 * reader of a folded batch norm reads the layer it went into), each layer receiving one
 * (RECEIVES) taking its activation and a bias. Returns how many layers there are. */
static int copy_layers(const pc_model *m, const char *fold, pc_layer *layers, int *index) {
    int n = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const pc_layer *l = &m->layers[i];
        if (fold[i] == FOLDED) {
            pc_layer *into = &layers[index[l->inputs[0]]];
            index[i] = index[l->inputs[0]];
            into->act = l->act;
            into->bias = 1;
            into->bias_n = into->c;
            continue;
        }
        index[i] = n;
        layers[n] = *l;
        for (int k = 0; k < l->n_inputs; k++) layers[n].inputs[k] = index[l->inputs[k]];
        n++;
    }
    return n;
}

/* The copy's parameters and buffers in layer order, as pc_model_parse lays them out,
 * copied from m's (folded layers: computed). */
static pc_status copy_params(const pc_model *m, const char *fold, const int *index, pc_model *out) {
    int64_t off = 0, boff = 0;
    for (int i = 0; i < out->n_layers; i++) {
        pc_layer *l = &out->layers[i];
        l->weight_off = l->weight_n ? (off += l->weight_n) - l->weight_n : -1;
        l->bias_off = l->bias_n ? (off += l->bias_n) - l->bias_n : -1;
        l->buffer_off = l->buffer_n ? (boff += l->buffer_n) - l->buffer_n : -1;
    }
    out->n_params = off;
    out->n_buffers = boff;
    out->params = pc_alloc(sizeof(float) * (off ? off : 1));
    out->buffers = pc_alloc(sizeof(float) * (boff ? boff : 1));
    if (!out->params || !out->buffers) return pc_fail_nomem();
    for (int i = 0; i < m->n_layers; i++) {
        const pc_layer *l = &m->layers[i], *to = &out->layers[index[i]];
        if (fold[i] == FOLDED) {
            fold_into(m, &m->layers[l->inputs[0]], l, out, to);
            continue;
        }
        if (fold[i] == RECEIVES) continue; /* its batch norm writes its weights and bias */
        if (l->weight_n) memcpy(out->params + to->weight_off, m->params + l->weight_off, sizeof(float) * l->weight_n);
        if (l->bias_n) memcpy(out->params + to->bias_off, m->params + l->bias_off, sizeof(float) * l->bias_n);
        if (l->buffer_n) memcpy(out->buffers + to->buffer_off, m->buffers + l->buffer_off, sizeof(float) * l->buffer_n);
    }
    return PC_OK;
}

pc_status pc_model_fold_bn(const pc_model *m, pc_model **out, int *folded) {
    *out = NULL;
    int *readers = calloc(2 * (size_t)m->n_layers, sizeof(int));
    char *fold = calloc((size_t)m->n_layers, 1);
    pc_model *f = calloc(1, sizeof *f);
    if (f) f->layers = calloc((size_t)m->n_layers, sizeof(pc_layer));
    if (f) f->source = strdup(m->source ? m->source : "");
    if (f) f->name = strdup(m->name ? m->name : "");
    pc_status st = readers && fold && f && f->layers && f->source && f->name ? PC_OK : pc_fail_nomem();
    int n_folded = 0;
    for (int i = 0; st == PC_OK && i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i].n_inputs; k++) readers[m->layers[i].inputs[k]]++;
    for (int i = 0; st == PC_OK && i < m->n_layers; i++) {
        if (!foldable(m, readers, i)) continue;
        fold[i] = FOLDED;
        fold[m->layers[i].inputs[0]] = RECEIVES;
        n_folded++;
    }
    if (st == PC_OK) {
        f->n_layers = copy_layers(m, fold, f->layers, readers + m->n_layers);
        f->classes = m->classes;
        st = copy_params(m, fold, readers + m->n_layers, f);
    }
    free(readers);
    free(fold);
    if (st != PC_OK) {
        pc_model_free(f);
        return st;
    }
    if (folded) *folded = n_folded;
    *out = f;
    return PC_OK;
}

pc_status pc_model_fold_bn_inplace(pc_model **m) {
    pc_model *f;
    PC_TRY(pc_model_fold_bn(*m, &f, NULL));
    pc_model_free(*m);
    *m = f;
    return PC_OK;
}
