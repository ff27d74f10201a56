/* Batch norm folded into the layer before it for inference (pc_model_fold_bn): which batch
 * norms fold, and logits equal to the unfolded model's up to float rounding, on the
 * reference and the oneDNN kernels. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/common.h"
#include "core/rng.h"
#include "nn/exec.h"
#include "nn/model.h"

#define BATCH 4

static float uniform(uint64_t key, uint64_t i, float lo, float hi) {
    return lo + (hi - lo) * (float)pc_uniform01(pc_rand64(99, 0, key, i, 0));
}

/* Trained-looking batch norms (the initial ones are near identities) and biases. */
static void randomize_bn(pc_model *m) {
    for (int i = 0; i < m->n_layers; i++) {
        const pc_layer *l = &m->layers[i];
        if (l->bias_off >= 0)
            for (int64_t k = 0; k < l->bias_n; k++) m->params[l->bias_off + k] = uniform(1, l->bias_off + k, -0.2f, 0.2f);
        if (l->kind != PC_L_BN) continue;
        float *gamma = m->params + l->weight_off, *mean = m->buffers + l->buffer_off;
        for (int k = 0; k < l->c; k++) {
            gamma[k] = uniform(2, l->weight_off + k, 0.5f, 1.2f) * (k % 5 == 4 ? -1.0f : 1.0f);
            mean[k] = uniform(3, l->buffer_off + k, -0.3f, 0.3f);
            mean[l->c + k] = uniform(4, l->buffer_off + k, 0.3f, 2.0f);
        }
    }
}

/* Logits of an inference-mode forward pass of BATCH fixed inputs. */
static float *logits_of(const pc_model *m, pc_kernel_set kernels) {
    pc_exec *ex = NULL;
    pc_exec_options o = {.kernels = kernels};
    if (pc_exec_create(m, BATCH, &o, &ex) != PC_OK) return NULL;
    const pc_layer *in = &m->layers[0];
    const int64_t n = (int64_t)BATCH * in->c * in->h * in->w;
    float *x = pc_exec_input(ex), *y = malloc(sizeof(float) * BATCH * m->classes);
    for (int64_t i = 0; i < n; i++) x[i] = uniform(5, i, -1.0f, 1.0f);
    if (y) memcpy(y, pc_exec_forward(ex, 0, 0, 0, 0, NULL), sizeof(float) * BATCH * m->classes);
    pc_exec_destroy(ex);
    return y;
}

/* m folded: `want` batch norms fold (the layer count drops by as many), and the logits
 * agree with m's within tol (normalized error) on each kernel set. */
static void check_fold(const char *what, pc_model *m, int want, double tol) {
    randomize_bn(m);
    pc_model *f = NULL;
    int folded = -1;
    CHECK(pc_model_fold_bn(m, &f, &folded) == PC_OK, "%s: %s", what, pc_last_error());
    if (!f) return;
    CHECK(folded == want && f->n_layers == m->n_layers - want, "%s: %d batch norms folded "
          "(%d -> %d layers), expected %d", what, folded, m->n_layers, f->n_layers, want);
    pc_kernel_set sets[] = {PC_KERNELS_REF,
#ifdef PARCNN_HAVE_DNNL
                            PC_KERNELS_DNNL
#endif
    };
    for (size_t s = 0; s < sizeof sets / sizeof *sets; s++) {
        float *a = logits_of(m, sets[s]), *b = logits_of(f, sets[s]);
        CHECK(a && b, "%s: %s", what, pc_last_error());
        double err = a && b ? check_nerr(b, a, BATCH * m->classes) : 1;
        CHECK(err < tol, "%s, kernels %d: folded logits differ by %.3g", what, (int)sets[s], err);
        free(a);
        free(b);
    }
    pc_model_free(f);
}

/* Folded: conv -> bn (no bias; the activation moves), dense -> bn. Not folded: a batch
 * norm after a convolution that another layer reads too, after a pooling layer, after a
 * convolution with an activation of its own, and after a dense layer with scale=. */
static const char *mixed =
    "[conv] filters=8 size=3 pad=1 bias=0\n"
    "[batchnorm] activation=relu\n"            /* folds */
    "[conv] filters=8 size=3 pad=1 name=c2\n"
    "[batchnorm]\n"                            /* c2 has a second reader */
    "[add] from=-1,c2 activation=relu\n"
    "[maxpool] size=2\n"
    "[batchnorm] activation=relu\n"            /* after a pool */
    "[conv] filters=8 size=3 pad=1 activation=relu\n"
    "[batchnorm]\n"                            /* the conv has an activation */
    "[conv] filters=12 size=1\n"
    "[batchnorm] activation=relu6\n"           /* folds, into a bias */
    "[flatten]\n"
    "[dense] units=16 scale=0.5\n"
    "[batchnorm]\n"                            /* scale= */
    "[dense] units=16\n"
    "[batchnorm] activation=gelu\n"            /* folds */
    "[dense] units=classes\n"
    "[batchnorm]\n";                           /* folds: the last layer */

int main(void) {
    pc_model *m = NULL;
    CHECK(pc_model_parse(mixed, "mixed.cfg", 3, 8, 8, 10, 1, &m) == PC_OK, "%s", pc_last_error());
    if (m) check_fold("mixed", m, 4, 1e-5);
    pc_model_free(m);
    const char *zoo[] = {"resnet20", "minixception"};
    const int bns[] = {19, 14};
    for (int k = 0; k < 2; k++) {
        m = NULL;
        CHECK(pc_model_create(zoo[k], 3, 32, 32, 10, 1, &m) == PC_OK, "%s", pc_last_error());
        if (m) check_fold(zoo[k], m, bns[k], 1e-5);
        pc_model_free(m);
    }
    return check_summary();
}
