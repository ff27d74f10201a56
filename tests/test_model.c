/* Model files, the zoo, parameter layout, and the reduction tree. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/common.h"
#include "core/rng.h"
#include "nn/exec.h"
#include "nn/layer.h"
#include "nn/model.h"
#include "train/pool.h"
#include "train/tree.h"

/* exec options with the kernel set k and the default precision and algorithm */
#define KERNELS(k) (&(pc_exec_options){.kernels = (k)})

static void test_zoo(void) {
    CHECK(pc_zoo_count() == 7, "zoo has %d models", pc_zoo_count());
    struct { const char *name; int c, h, w; int64_t params; } cases[] = {
        /* simple-cnn 28x28: 32*25+32 + 64*32*25+64 + 3136*1024+1024 + 1024*10+10 */
        {"simple-cnn", 1, 28, 28, 832 + 51264 + 3212288 + 10250},
        /* resnet20 on CIFAR: 0.27M, as in the paper and common PyTorch ports */
        {"resnet20", 3, 32, 32, 269722},
    };
    for (int i = 0; i < 2; i++) {
        pc_model *m = NULL;
        pc_status st = pc_model_create(cases[i].name, cases[i].c, cases[i].h, cases[i].w, 10, 1, &m);
        CHECK(st == PC_OK, "%s: %s", cases[i].name, pc_last_error());
        if (!m) continue;
        CHECK(m->n_params == cases[i].params, "%s has %lld parameters, expected %lld",
              cases[i].name, (long long)m->n_params, (long long)cases[i].params);
        if (i == 0) {
            /* multiply-adds: conv1 800*28*28, conv2 51200*14*14, dense 3136*1024 and 1024*10;
             * x2 FLOPs each, x3 (forward, backward-data, backward-weights) except conv1, x2:
             * no gradient of the input images */
            int64_t want = 2 * (2 * 627200LL + 3 * (10035200LL + 3211264 + 10240));
            CHECK(pc_model_train_flops(m) == want, "simple-cnn: %lld training FLOPs, expected %lld",
                  (long long)pc_model_train_flops(m), (long long)want);
        }
        pc_model_free(m);
    }
    pc_model *m = NULL;
    CHECK(pc_model_create("minixception", 1, 48, 48, 7, 1, &m) == PC_OK, "%s", pc_last_error());
    if (m) {
        /* Keras mini_XCEPTION (48x48x1, 7 classes, no l2 params) has 58,423 parameters of
         * which 1,472 are BN running statistics; trainable = 56,951. */
        CHECK(m->n_params == 56951, "minixception has %lld trainable parameters", (long long)m->n_params);
        CHECK(m->n_buffers == 1472, "minixception has %lld BN buffers", (long long)m->n_buffers);
        const pc_layer *last = &m->layers[m->n_layers - 1];
        CHECK(last->kind == PC_L_GAP && last->c == 7, "minixception ends in gap over 7 classes");
        pc_model_free(m);
    }
}

static pc_status parse(const char *text, pc_model **m) {
    return pc_model_parse(text, "t.cfg", 3, 16, 16, 10, 1, m);
}

static void test_parse_errors(void) {
    struct { const char *text, *msg; } bad[] = {
        {"[conv] filters=8 colour=red\n[gap]\n[dense] units=classes\n", "t.cfg:1: [conv] has no key 'colour'"},
        {"[conv] filters=8\n[bogus]\n", "t.cfg:2: unknown layer type [bogus]"},
        {"[conv] filters=8 size=x\n", "size=x"},
        {"filters=8\n", "before the first [section]"},
        {"[conv] filters=8 filters=9\n", "given twice"},
        {"[conv] size=3\n", "needs filters="},
        {"[conv] filters=8 size=33\n", "does not fit"},
        {"[conv] filters=8 groups=2\n", "groups=2 must divide"},
        {"[add] from=-1,nowhere\n", "no earlier layer has that name"},
        {"[conv] filters=8 stride=2 name=a\n[conv] filters=4 from=-2\n[add] from=-1,a\n[gap]\n[dense] units=classes\n", "do not match"},
        {"[conv] filters=8\n[gap]\n", "must output the 10 class scores"},
        {"[dense] units=classes activation=sigmoid\n", "activation=sigmoid: expected relu, relu6, gelu or linear"},
        {"[maxpool] size=2 pad=2\n", "more than half"},
        {"", "no layers"},
        {"[conv] filters=8 name=a\n[conv] filters=8 name=a\n", "name=a is used twice"},
        {"[conv] filters=8 name=a alias=b\n[conv] filters=8 name=b\n", "name=b is used twice"},
        {"[conv] filters=8 name=a\n[conv] filters=8 alias=a\n", "alias=a is a layer's name or alias already"},
        {"[conv] filters=8 alias=a\n[conv] filters=8 alias=a\n", "alias=a is a layer's name or alias already"},
        {"[conv] filters=8 name=a alias=a\n", "alias=a is a layer's name or alias already"},
        {"[gap] alias=a.b\n", "alias=a.b: too long or contains '.'"},
        {"[conv] filters=8 trainable=some\n", "trainable=some: expected all, weight, bias or none"},
        {"[conv] filters=8 train_epochs=-1\n", "train_epochs=-1: expected a number in [0, 1e+06]"},
        {"[maxpool] train_epochs=1\n", "[maxpool] has no key 'train_epochs'"},
        {"[conv] filters=8 init=zero\n", "init=zero: expected he, torch, identity or whiten"},
        {"[conv] filters=8 size=2 init=whiten\n", "needs a conv on the input images with 12 or 24 filters"},
        {"[conv] filters=12\n[conv] filters=24 size=2 init=whiten\n", "needs a conv on the input"},
        {"[maxpool] trainable=none\n", "[maxpool] has no key 'trainable'"},
        {"[conv] filters=8 size=3 dilation=0\n", "dilation=0"},
        {"[conv] filters=8 size=3x\n", "size=3x: expected an integer >= 1 or two (HEIGHTxWIDTH)"},
        {"[conv] filters=8 size=x3\n", "size=x3: expected"},
        {"[conv] filters=8 size=3x-1\n", "size=3x-1: expected"},
        {"[conv] filters=8 stride=1x0\n", "stride=1x0: expected"},
        {"[maxpool] size=3x2 pad=2x0\n", "pad=2x0 is more than half of size=3x2"},
        {"[conv] filters=8 size=3 dilation=14\n", "kernel 3x3 (dilated) does not fit"},
        {"[conv] filters=24 size=2 dilation=2 init=whiten\n", "not with dilation=2"},
        {"[maxpool] size=3 ceil_mode=2\n", "ceil_mode and count_include_pad are 0 or 1"},
        {"[maxpool] size=3 count_include_pad=1\n", "[maxpool] has no key 'count_include_pad'"},
        {"[sepconv] filters=8 init=identity\n", "[sepconv] has no key 'init'"},
        {"[dense] units=classes scale=0\n", "scale=0: expected a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pc_model *m = NULL;
        pc_status st = parse(bad[i].text, &m);
        CHECK(st == PC_ERR_USAGE && m == NULL, "case %zu accepted", i);
        CHECK(strstr(pc_last_error(), bad[i].msg) != NULL, "case %zu: '%s' lacks '%s'", i,
              pc_last_error(), bad[i].msg);
    }
}

static void test_graph(void) {
    pc_model *m = NULL;
    const char *text =
        "[net] channels=3 height=16 width=16\n"
        "[conv] filters=8 size=3 pad=1 name=stem alias=stem_relu activation=relu\n"
        "[sepconv] filters=16 size=3 pad=1 stride=2 bias=0 alias=sep\n"
        "[add] from=sep,stem_relu\n"     /* option A: stem is 8x16x16, sep is 16x8x8 */
        "[gap]\n[dense] units=classes\n";
    CHECK(parse(text, &m) == PC_OK, "%s", pc_last_error());
    if (!m) return;
    /* input, stem, depthwise, pointwise, add, gap, dense */
    CHECK(m->n_layers == 7, "%d layers", m->n_layers);
    CHECK(strcmp(m->layers[2].name, "layers.2.depthwise") == 0, "%s", m->layers[2].name);
    CHECK(m->layers[2].groups == 8 && m->layers[2].h == 8, "depthwise groups %d h %d", m->layers[2].groups, m->layers[2].h);
    CHECK(m->layers[4].kind == PC_L_ADD && m->layers[4].inputs[0] == 3 && m->layers[4].inputs[1] == 1, "add inputs");
    CHECK(m->layers[4].sh == 2, "add subsamples by 2");
    /* an alias names the section's output layer: the pointwise conv of a sepconv */
    CHECK(strcmp(m->layers[1].alias, "stem_relu") == 0 && strcmp(m->layers[3].alias, "sep") == 0 &&
          !*m->layers[2].alias && !*m->layers[4].alias, "aliases %s %s", m->layers[1].alias,
          m->layers[3].alias);
    pc_param_info info[16];
    int n = pc_model_param_info(m, info, 16);
    CHECK(n == 6, "%d parameter tensors", n);
    CHECK(strcmp(info[0].name, "stem.weight") == 0 && info[0].shape[1] == 3, "stem.weight");
    CHECK(strcmp(info[2].name, "layers.2.depthwise.weight") == 0 && info[2].shape[1] == 1, "depthwise weight (8,1,3,3)");
    int64_t sum = 0;
    for (int i = 0; i < n; i++) sum += info[i].numel;
    CHECK(sum == m->n_params, "param info covers all parameters");
    pc_model_free(m);
}

/* Parameter roles follow the tensors: weights, biases, batch-norm scales and shifts. */
static void test_roles(void) {
    pc_model *m = NULL;
    CHECK(parse("[conv] filters=8 size=3\n[batchnorm]\n[gap]\n[dense] units=classes\n", &m) == PC_OK,
          "%s", pc_last_error());
    if (!m) return;
    uint8_t *roles = malloc(m->n_params);
    memset(roles, 0xff, m->n_params);
    pc_model_param_roles(m, roles);
    int64_t count[PC_PARAM_ROLES + 1] = {0};
    for (int64_t i = 0; i < m->n_params; i++) count[roles[i] < PC_PARAM_ROLES ? roles[i] : PC_PARAM_ROLES]++;
    /* conv 8x3x3x3 + dense 10x8 weights; conv 8, dense 10 biases; bn scale 8, shift 8 */
    CHECK(count[PC_PARAM_WEIGHT] == 216 + 80 && count[PC_PARAM_BIAS] == 18 &&
              count[PC_PARAM_NORM_SCALE] == 8 && count[PC_PARAM_NORM_SHIFT] == 8 &&
              count[PC_PARAM_ROLES] == 0,
          "roles: %lld weights, %lld biases, %lld scales, %lld shifts, %lld unset",
          (long long)count[0], (long long)count[1], (long long)count[2], (long long)count[3],
          (long long)count[4]);
    const pc_layer *bn = &m->layers[2];
    CHECK(bn->kind == PC_L_BN && roles[bn->weight_off] == PC_PARAM_NORM_SCALE &&
              roles[bn->bias_off + bn->c - 1] == PC_PARAM_NORM_SHIFT, "batch-norm scale and shift");
    free(roles);
    pc_model_free(m);
}

/* trainable= puts a layer's parameters in the frozen role (batch norm without a learned
 * scale: trainable=bias). */
static void test_frozen_roles(void) {
    pc_model *m = NULL;
    CHECK(parse("[conv] filters=8 size=3 trainable=bias\n[batchnorm] trainable=bias\n[gap]\n"
                "[dense] units=classes trainable=none\n", &m) == PC_OK, "%s", pc_last_error());
    if (!m) return;
    uint8_t *roles = malloc(m->n_params);
    pc_model_param_roles(m, roles);
    int64_t count[PC_PARAM_ROLES] = {0};
    for (int64_t i = 0; i < m->n_params; i++) count[roles[i]]++;
    /* frozen: conv weights 216, bn scale 8, dense 80 + 10; trained: conv bias 8, bn shift 8 */
    CHECK(count[PC_PARAM_FROZEN] == 216 + 8 + 90 && count[PC_PARAM_BIAS] == 8 &&
              count[PC_PARAM_NORM_SHIFT] == 8 && count[PC_PARAM_WEIGHT] == 0 &&
              count[PC_PARAM_NORM_SCALE] == 0,
          "frozen %lld, biases %lld", (long long)count[PC_PARAM_FROZEN], (long long)count[PC_PARAM_BIAS]);
    free(roles);
    pc_model_free(m);
}

/* init=identity: the first min(filters, inputs) filters are Dirac deltas (PyTorch's
 * dirac_), the others PyTorch's default uniform init. */
static void test_identity_init(void) {
    pc_model *m = NULL;
    CHECK(parse("[conv] filters=5 size=3 pad=1 init=identity\n[gap]\n[dense] units=classes init=identity\n",
                &m) == PC_OK, "%s", pc_last_error());
    if (!m) return;
    const pc_layer *conv = &m->layers[1], *dense = &m->layers[3];
    const float *w = m->params + conv->weight_off;
    int ok = 1;
    for (int f = 0; f < 3; f++)
        for (int k = 0; k < 27; k++) ok &= w[f * 27 + k] == (k == f * 9 + 4 ? 1.0f : 0.0f);
    CHECK(ok, "conv filters 0-2 are the identity on input channels 0-2");
    int random = 0;
    for (int k = 0; k < 27; k++) random += w[3 * 27 + k] != 0 && w[3 * 27 + k] != 1;
    float most = 0;
    for (int k = 0; k < 27; k++) most = fmaxf(most, fabsf(w[3 * 27 + k]));
    CHECK(random == 27 && most <= 1.0f / sqrtf(27.0f), "filter 3 is PyTorch's default init (max %g)", most);
    const float *d = m->params + dense->weight_off; /* 10 x 5 */
    ok = 1;
    for (int o = 0; o < 5; o++)
        for (int i = 0; i < 5; i++) ok &= d[o * 5 + i] == (o == i ? 1.0f : 0.0f);
    CHECK(ok, "dense rows 0-4 are the identity");
    pc_model_free(m);
}

/* init=whiten: the filters turn image patches into decorrelated values of variance
 * lambda / (lambda + eps), largest eigenvalue first, the second half the negatives. */
static void test_whiten(void) {
    pc_model *m = NULL;
    CHECK(parse("[conv] filters=24 size=2 init=whiten\n[gap]\n[dense] units=classes\n", &m) == PC_OK,
          "%s", pc_last_error());
    if (!m) return;
    CHECK(m->layers[1].init == PC_INIT_WHITEN, "init=whiten parsed");
    pc_model *auto_filters = NULL; /* filters= left out: two per patch value */
    CHECK(parse("[conv] size=2 init=whiten\n[gap]\n[dense] units=classes\n", &auto_filters) == PC_OK &&
              auto_filters->layers[1].filters == 24, "init=whiten without filters=: %s", pc_last_error());
    pc_model_free(auto_filters);
    enum { N = 40, C = 3, H = 16, W = 16, D = 12 };
    float *img = malloc(sizeof(float) * N * C * H * W);
    /* correlated channels and smooth images: a far from white patch distribution */
    for (int s = 0; s < N; s++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                float base = sinf(0.3f * (float)(x + s)) + cosf(0.2f * (float)(y * s));
                for (int c = 0; c < C; c++) {
                    uint64_t r = pc_rand64(7, (uint64_t)c, (uint64_t)s, (uint64_t)y, (uint64_t)x);
                    float noise = pc_uniform01(r) - 0.5f;
                    img[((s * C + c) * H + y) * W + x] = base * (1.0f + 0.5f * (float)c) + noise;
                }
            }
    CHECK(pc_model_whiten(m, 1, img, N, 0.0f) == PC_OK, "%s", pc_last_error());
    const float *w = m->params + m->layers[1].weight_off;
    double cov[D][D] = {{0}}, count = 0;
    for (int s = 0; s < N; s++)
        for (int y = 0; y + 1 < H; y++)
            for (int x = 0; x + 1 < W; x++) {
                double out[D] = {0};
                for (int f = 0; f < D; f++)
                    for (int c = 0; c < C; c++)
                        for (int dy = 0; dy < 2; dy++)
                            for (int dx = 0; dx < 2; dx++)
                                out[f] += w[f * D + (c * 2 + dy) * 2 + dx] *
                                          img[((s * C + c) * H + y + dy) * W + x + dx];
                for (int i = 0; i < D; i++)
                    for (int j = 0; j < D; j++) cov[i][j] += out[i] * out[j];
                count++;
            }
    double worst = 0;
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double e = fabs(cov[i][j] / count - (i == j));
            worst = e > worst ? e : worst;
        }
    CHECK(worst < 1e-3, "whitened patch covariance is off the identity by %g", worst);
    int neg = 1;
    for (int k = 0; k < D * D; k++) neg &= w[D * D + k] == -w[k];
    CHECK(neg, "filters 12-23 are the negatives of 0-11");
    free(img);
    pc_model_free(m);
}

/* [dense] scale=s: the model computes s * (W x), so it has the logits of the unscaled
 * model with weights s*W, and its weight gradient is s times that model's. */
static void test_dense_scale(void) {
    const char *scaled = "[conv] filters=4 size=3 activation=relu\n[flatten]\n[dense] units=classes bias=0 scale=0.25\n";
    const char *plain = "[conv] filters=4 size=3 activation=relu\n[flatten]\n[dense] units=classes bias=0\n";
    pc_model *a = NULL, *b = NULL;
    CHECK(parse(scaled, &a) == PC_OK && parse(plain, &b) == PC_OK, "%s", pc_last_error());
    if (!a || !b) return;
    const pc_layer *d = &a->layers[3];
    for (int64_t i = 0; i < d->weight_n; i++) b->params[d->weight_off + i] = 0.25f * a->params[d->weight_off + i];
    enum { BATCH = 4 };
    int32_t labels[BATCH] = {1, 3, 5, 7};
    pc_exec *ea = NULL, *eb = NULL;
    CHECK(pc_exec_create(a, BATCH, KERNELS(PC_KERNELS_REF), &ea) == PC_OK &&
          pc_exec_create(b, BATCH, KERNELS(PC_KERNELS_REF), &eb) == PC_OK, "%s", pc_last_error());
    int64_t in = (int64_t)BATCH * 3 * 16 * 16;
    for (int64_t k = 0; k < in; k++)
        pc_exec_input(ea)[k] = pc_exec_input(eb)[k] = pc_uniform01(pc_rand64(3, 0, (uint64_t)k, 0, 0)) - 0.5f;
    const float *la = pc_exec_forward(ea, 1, 0, 0, 0, NULL), *lb = pc_exec_forward(eb, 1, 0, 0, 0, NULL);
    double worst = 0;
    for (int k = 0; k < BATCH * 10; k++) worst = fmax(worst, fabs(la[k] - lb[k]));
    CHECK(worst < 1e-6, "scaled logits differ by %g", worst);
    float *ga = calloc(a->n_params, sizeof(float)), *gb = calloc(b->n_params, sizeof(float));
    pc_exec_loss(ea, labels, 0.0f, 1.0f / BATCH, NULL);
    pc_exec_loss(eb, labels, 0.0f, 1.0f / BATCH, NULL);
    pc_exec_backward(ea, ga);
    pc_exec_backward(eb, gb);
    worst = 0;
    for (int64_t i = 0; i < a->n_params; i++) {
        float want = i >= d->weight_off ? 0.25f * gb[i] : gb[i];
        worst = fmax(worst, fabs(ga[i] - want) / (fabs(want) + 1e-3));
    }
    CHECK(worst < 1e-4, "scaled gradients differ by %g (relative)", worst);
    free(ga);
    free(gb);
    pc_exec_destroy(ea);
    pc_exec_destroy(eb);
    pc_model_free(a);
    pc_model_free(b);
}

/* A frozen start (trainable=none on the first layers) changes no other gradient: backward
 * skips the input gradients that lead only to frozen layers, and the frozen layers'
 * gradients are zeros. The same model with everything trainable gives bitwise the same
 * gradients elsewhere, with both kernel sets; the [add] reads a frozen layer too. */
static void test_frozen_start(void) {
    const char *frozen = "[conv] filters=8 size=3 pad=1 trainable=none\n"
                         "[batchnorm] trainable=none name=f\n"
                         "[conv] filters=8 size=3 pad=1 activation=relu\n"
                         "[add] from=-1,f\n[gap]\n[dense] units=classes\n";
    const char *open = "[conv] filters=8 size=3 pad=1\n[batchnorm] name=f\n"
                       "[conv] filters=8 size=3 pad=1 activation=relu\n"
                       "[add] from=-1,f\n[gap]\n[dense] units=classes\n";
    enum { BATCH = 4 };
    int32_t labels[BATCH] = {0, 2, 4, 6};
    for (int ks = 0; ks < 2; ks++) {
        pc_kernel_set set = ks ? PC_KERNELS_DNNL : PC_KERNELS_REF;
        pc_model *a = NULL, *b = NULL;
        CHECK(parse(frozen, &a) == PC_OK && parse(open, &b) == PC_OK, "%s", pc_last_error());
        if (!a || !b) return;
        pc_exec *ea = NULL, *eb = NULL;
        if (pc_exec_create(a, BATCH, KERNELS(set), &ea) != PC_OK || pc_exec_create(b, BATCH, KERNELS(set), &eb) != PC_OK) {
            CHECK(set == PC_KERNELS_DNNL, "%s", pc_last_error()); /* a build without oneDNN */
            pc_exec_destroy(ea), pc_model_free(a), pc_model_free(b);
            continue;
        }
        CHECK(a->n_params == b->n_params, "parameter counts differ");
        memcpy(a->params, b->params, sizeof(float) * (size_t)b->n_params);
        int64_t in = (int64_t)BATCH * 3 * 16 * 16;
        for (int64_t k = 0; k < in; k++)
            pc_exec_input(ea)[k] = pc_exec_input(eb)[k] =
                pc_uniform01(pc_rand64(5, 0, (uint64_t)k, 0, 0)) - 0.5f;
        float *ga = malloc(sizeof(float) * (size_t)a->n_params);
        float *gb = malloc(sizeof(float) * (size_t)b->n_params);
        for (int64_t i = 0; i < a->n_params; i++) ga[i] = NAN; /* every gradient is written */
        pc_exec_forward(ea, 1, 0, 0, 0, NULL);
        pc_exec_forward(eb, 1, 0, 0, 0, NULL);
        pc_exec_loss(ea, labels, 0.0f, 1.0f / BATCH, NULL);
        pc_exec_loss(eb, labels, 0.0f, 1.0f / BATCH, NULL);
        pc_exec_backward(ea, ga);
        pc_exec_backward(eb, gb);
        const int64_t frozen_end = a->layers[3].weight_off; /* the first trainable layer */
        int64_t nonzero = 0, differ = 0, open_nonzero = 0;
        for (int64_t i = 0; i < a->n_params; i++) {
            if (i < frozen_end) nonzero += ga[i] != 0.0f, open_nonzero += gb[i] != 0.0f;
            else differ += memcmp(&ga[i], &gb[i], sizeof(float)) != 0;
        }
        CHECK(frozen_end > 0 && nonzero == 0 && open_nonzero > 0,
              "%s: frozen gradients not zero (%lld of %lld)", pc_exec_kernel_name(ea),
              (long long)nonzero, (long long)frozen_end);
        CHECK(differ == 0, "%s: %lld trainable gradients differ from the all-trainable model's",
              pc_exec_kernel_name(ea), (long long)differ);
        /* Frozen after its replica exists (train_epochs= freezes layers mid-run), the open
         * model's backward becomes the frozen one's, zeros included. */
        b->layers[1].trainable = b->layers[2].trainable = 0;
        pc_exec_forward(eb, 1, 0, 0, 0, NULL);
        pc_exec_loss(eb, labels, 0.0f, 1.0f / BATCH, NULL);
        pc_exec_backward(eb, gb);
        CHECK(memcmp(ga, gb, sizeof(float) * (size_t)a->n_params) == 0,
              "%s: frozen mid-run, gradients differ from the model frozen from the start",
              pc_exec_kernel_name(ea));
        free(ga), free(gb);
        pc_exec_destroy(ea), pc_exec_destroy(eb);
        pc_model_free(a), pc_model_free(b);
    }
}

/* The invariant of blocked activations: the padded channels of every blocked output (and,
 * after a backward, of every gradient) are zero. */
static void check_blocked_padding(const char *what, const pc_exec *ex, int gradients) {
    for (int i = 1; i < ex->m->n_layers; i++) {
        const pc_layer *l = &ex->m->layers[i];
        const layer_state *s = &ex->ls[i];
        const int B = ex->block;
        if (!s->blocked || l->c % B == 0) continue;
        const int64_t hw = (int64_t)l->h * l->w, per = fast_blocked_size(l->c, hw, B);
        const float *v = gradients ? s->dout : s->out;
        int nonzero = 0;
        for (int n = 0; n < ex->batch; n++)
            for (int64_t p = 0; p < hw; p++)
                for (int k = l->c % B; k < B; k++)
                    nonzero |= v[n * per + ((int64_t)(l->c / B) * hw + p) * B + k] != 0;
        CHECK(!nonzero, "%s: layer %d (%s): padded channels of its %s not zero", what, i,
              pc_layer_kind_name(l->kind), gradients ? "gradient" : "output");
    }
}

/* The default kernel set against the reference set on one model: logits and every
 * parameter gradient of a training step (dropout masks are the same in both). */
static void compare_kernel_sets(const char *what, const char *text) {
#ifdef PARCNN_HAVE_DNNL
    pc_model *m = NULL;
    CHECK(parse(text, &m) == PC_OK, "%s: %s", what, pc_last_error());
    if (!m) return;
    enum { BATCH = 4 };
    int32_t labels[BATCH] = {0, 2, 4, 9};
    pc_exec *ref = NULL, *fast = NULL;
    CHECK(pc_exec_create(m, BATCH, KERNELS(PC_KERNELS_REF), &ref) == PC_OK &&
              pc_exec_create(m, BATCH, KERNELS(PC_KERNELS_DNNL), &fast) == PC_OK, "%s", pc_last_error());
    float *gr = calloc(m->n_params, sizeof(float)), *gf = calloc(m->n_params, sizeof(float));
    if (ref && fast && gr && gf) {
        int64_t in = (int64_t)BATCH * 3 * 16 * 16;
        for (int64_t k = 0; k < in; k++)
            pc_exec_input(ref)[k] = pc_exec_input(fast)[k] =
                2.0f * pc_uniform01(pc_rand64(5, 0, (uint64_t)k, 0, 0)) - 1.0f;
        const float *lr = pc_exec_forward(ref, 1, 7, 3, 100, NULL);
        const float *lf = pc_exec_forward(fast, 1, 7, 3, 100, NULL);
        CHECK(check_nerr(lf, lr, BATCH * 10) < 1e-5, "%s: logits differ (nerr %g)", what,
              check_nerr(lf, lr, BATCH * 10));
        pc_exec_loss(ref, labels, 0.0f, 1.0f / BATCH, NULL);
        pc_exec_loss(fast, labels, 0.0f, 1.0f / BATCH, NULL);
        check_blocked_padding(what, fast, 0);
        pc_exec_backward(ref, gr);
        pc_exec_backward(fast, gf);
        check_blocked_padding(what, fast, 1);
        for (int i = 1; i < m->n_layers; i++) {
            const pc_layer *l = &m->layers[i];
            if (l->weight_off < 0) continue;
            double e = check_nerr(gf + l->weight_off, gr + l->weight_off, l->weight_n);
            CHECK(e < 1e-4, "%s: layer %d weight gradient differs (nerr %g)", what, i, e);
        }
        double any = 0;
        for (int64_t i = 0; i < m->n_params; i++) any += fabs(gr[i]);
        CHECK(any > 0, "%s: all gradients zero", what);
        /* evaluation mode too (running statistics, no dropout) */
        lr = pc_exec_forward(ref, 0, 0, 0, 0, NULL);
        lf = pc_exec_forward(fast, 0, 0, 0, 0, NULL);
        CHECK(check_nerr(lf, lr, BATCH * 10) < 1e-5, "%s: eval logits differ (nerr %g)", what,
              check_nerr(lf, lr, BATCH * 10));
    }
    free(gr);
    free(gf);
    pc_exec_destroy(ref);
    pc_exec_destroy(fast);
    pc_model_free(m);
#else
    (void)what;
    (void)text;
#endif
}

/* activation=gelu on every kind of layer that runs it differently: after a convolution and
 * a dense layer (kept pre-activation), fused into batch norm (recomputed from its input),
 * after an add. */
static void test_gelu_layers(void) {
    compare_kernel_sets("gelu model", "[conv] filters=6 size=3 pad=1 activation=gelu name=a\n"
                                      "[batchnorm] activation=gelu\n"
                                      "[conv] filters=6 size=3 pad=1\n"
                                      "[add] from=-1,a activation=gelu\n"
                                      "[maxpool] size=2\n[flatten]\n"
                                      "[dense] units=16 activation=gelu\n"
                                      "[dense] units=classes\n");
}

/* With oneDNN, activations are channel-blocked between layers (see exec.c): every layer
 * kind on blocked tensors and every change of layout, with channel counts that leave the
 * last block part empty: batch norm and a ReLU layer reading the images, dropout, both
 * pools with padding, a strided residual add onto more channels, a dense layer reading a
 * blocked tensor, flatten before batch norm on features, and a last layer that is blocked
 * (its logits made plain). */
static void test_blocked_layouts(void) {
    compare_kernel_sets("blocked model 1", "[batchnorm] name=bn0\n"
                                           "[conv] filters=13 size=3 pad=1 activation=relu name=a\n"
                                           "[dropout] rate=0.3\n"
                                           "[maxpool] size=3 stride=2 pad=1\n"
                                           "[conv] filters=20 size=3 pad=1\n"
                                           "[batchnorm] activation=relu\n"
                                           "[add] from=-1,a\n"
                                           "[avgpool] size=3 stride=2 pad=1\n"
                                           "[dense] units=16 activation=relu\n"
                                           "[dense] units=classes\n");
    compare_kernel_sets("blocked model 2", "[relu] from=input\n"
                                           "[conv] filters=9 size=3 stride=2 activation=relu\n"
                                           "[flatten]\n[batchnorm]\n[dropout] rate=0.5\n"
                                           "[dense] units=classes\n");
    compare_kernel_sets("blocked model 3", "[conv] filters=8 size=3 pad=1 bias=0\n"
                                           "[batchnorm] activation=gelu\n"
                                           "[maxpool] size=16 stride=16\n"
                                           "[conv] filters=classes size=1\n");
}

/* The element-wise layers of imported networks against the reference kernels, blocked
 * (after convolutions, 13 channels: a part-empty block) and plain (after a dense layer). */
static void test_elementwise_layers(void) {
    compare_kernel_sets("element-wise model", "[conv] filters=13 size=3 pad=1\n"
                                              "[pad] top=1 right=2 value=0.3\n[sigmoid]\n[conv] filters=13 size=3 pad=1\n"
                                              "[hardsigmoid]\n[conv] filters=13 size=1\n"
                                              "[clip] min=0.25 max=1\n[batchnorm]\n"
                                              "[hardswish]\n[conv] filters=13 size=1\n"
                                              "[silu]\n[relu6]\n[conv] filters=13 size=1\n"
                                              "[clip] max=-0.1\n[maxpool] size=2\n"
                                              "[dense] units=16\n[sigmoid]\n"
                                              "[dense] units=classes\n");
}

/* Squeeze-and-excitation, a per-channel broadcast add and concatenation on blocked tensors whose channel counts start
 * inputs inside a block, against the reference kernels; and their shape errors. */
static void test_graph_layers(void) {
    compare_kernel_sets("se + concat model", "[conv] filters=13 size=3 pad=1 name=x\n"
                                             "[gap]\n[conv] filters=5 size=1 activation=relu\n"
                                             "[conv] filters=13 size=1\n[sigmoid]\n"
                                             "[mul] from=x,-1 name=se\n"
                                             "[conv] filters=13 size=1 from=-2\n"
                                             "[add] from=se,-1\n"
                                             "[conv] filters=3 size=1 name=b1\n"
                                             "[conv] filters=7 size=3 pad=1 from=se\n"
                                             "[concat] from=b1,-1,se,input\n"
                                             "[mul] from=-1,-1\n"
                                             "[maxpool] size=2\n[dense] units=classes\n");
    static const struct { const char *text, *error; } bad[] = {
        {"[conv] filters=4 size=3\n[concat] from=-1,input\n[gap]\n[dense] units=classes\n",
         "heights and widths differ"},
        {"[conv] filters=4 size=1\n[concat] from=-1\n[gap]\n[dense] units=classes\n",
         "takes 2 to 32 inputs"},
        {"[conv] filters=4 size=1\n[gap]\n[mul] from=-1,-2\n[dense] units=classes\n",
         "must have the first's shape"},
        {"[conv] filters=4 size=1\n[mul] from=-1,-1,-1\n[gap]\n[dense] units=classes\n",
         "takes 2 input(s)"},
        {"[clip]\n[gap]\n[dense] units=classes\n", "needs min= or max="},
        {"[clip] min=2 max=1\n[gap]\n[dense] units=classes\n", "above max"},
        {"[relu6] max=3\n[gap]\n[dense] units=classes\n", "has no key 'max'"},
        {"[pad] top=-1\n[gap]\n[dense] units=classes\n", "top=-1: expected an integer from 0 to 1048576"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pc_model *m = NULL;
        pc_status st = parse(bad[i].text, &m);
        CHECK(st == PC_ERR_USAGE && strstr(pc_last_error(), bad[i].error), "bad model %zu: %s", i,
              pc_last_error());
        pc_model_free(m);
    }
}

/* Sizes beyond the limits (model.h) are one clear error, never a signed overflow (the
 * ASan+UBSan build aborts on one) nor a wrong shape. */
static void test_size_limits(void) {
    static const struct { const char *text; int c, h, w; const char *error; } bad[] = {
        {"[conv] filters=1048576 size=1 pad=1048576\n[gap]\n[dense] units=classes\n", 1, 28, 28,
         "too large"},
        {"[flatten]\n[dense] units=classes\n", 4, 65536, 65536, "input 4x65536x65536 is too large"},
        {"[conv] filters=1048576 size=1024\n[gap]\n[dense] units=classes\n", 3, 1024, 1024,
         "too many parameters"},
        {"[maxpool] size=1048576 stride=1 pad=524288\n[gap]\n[dense] units=classes\n", 1, 1048576,
         1024,
         "FLOPs"},
        {"[conv] filters=1 size=1\n[conv] filters=1048576 size=3 pad=1048576\n[gap]\n"
         "[dense] units=classes\n", 3, 4, 4, "too large"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pc_model *m = NULL;
        pc_status st = pc_model_parse(bad[i].text, "big.cfg", bad[i].c, bad[i].h, bad[i].w, 10, 1, &m);
        CHECK(st == PC_ERR_USAGE && strstr(pc_last_error(), bad[i].error), "size case %zu: %s", i,
              pc_last_error());
        pc_model_free(m);
    }
    /* at the limits: 2^31 - 1 values per sample is one too few for 65536 x 32768 */
    pc_model *m = NULL;
    CHECK(pc_model_parse("[gap]\n[dense] units=classes\n", "big.cfg", 1, 32768, 65535, 10, 1, &m) ==
              PC_OK && m && m->layers[1].c == 1, "a 32768x65535 input: %s", pc_last_error());
    CHECK(m && pc_model_flops(m) == 32768LL * 65535 + 2 * 10 + 0, "its FLOPs in 64 bits");
    pc_model_free(m);
}

/* A model's layers and sizes come before its parameters: a 1.8 GB model is sized without
 * being allocated, and the two steps give pc_model_parse's bytes. */
static void test_parse_in_two_steps(void) {
    pc_model *m = NULL;
    CHECK(pc_model_parse_layers("[dense] units=1048576\n[dense] units=classes\n", "huge.cfg", 3, 12,
                                12, 10, &m) == PC_OK, "%s", pc_last_error());
    CHECK(m && m->n_params == 1048576LL * 432 + 1048576 + 10LL * 1048576 + 10 && !m->params,
          "the sizes of a 453-million-parameter model, nothing allocated");
    pc_model_free(m);
    const char *text = "[conv] filters=8 size=3 pad=1\n[batchnorm]\n[gap]\n[dense] units=classes\n";
    pc_model *one = NULL, *two = NULL;
    CHECK(pc_model_parse(text, "t.cfg", 3, 8, 8, 10, 7, &one) == PC_OK, "%s", pc_last_error());
    CHECK(pc_model_parse_layers(text, "t.cfg", 3, 8, 8, 10, &two) == PC_OK &&
          pc_model_init_params(two, 7) == PC_OK, "%s", pc_last_error());
    CHECK(one && two && one->n_params == two->n_params && one->n_buffers == two->n_buffers &&
          !memcmp(one->params, two->params, sizeof(float) * one->n_params) &&
          !memcmp(one->buffers, two->buffers, sizeof(float) * one->n_buffers),
          "parse = parse_layers + init_params, byte for byte");
    pc_model_free(one);
    pc_model_free(two);
    CHECK(pc_model_parse("[dense] units=2000000\n", "u.cfg", 1, 8, 8, 10, 1, &m) == PC_ERR_USAGE &&
          strstr(pc_last_error(), "from 1 to 1048576"), "units beyond the limit: %s", pc_last_error());
}

/* Every worker count that divides the shard count covers the shards exactly once with
 * tree nodes, and the worker-split evaluation gives the same floats as one worker. */
static float tree_sum(const float *leaf, pc_tree_node n) {
    if (n.hi - n.lo == 1) return leaf[n.lo];
    int mid = pc_tree_mid(n);
    return tree_sum(leaf, (pc_tree_node){n.lo, mid}) + tree_sum(leaf, (pc_tree_node){mid, n.hi});
}

static int is_tree_node(int shards, pc_tree_node want) {
    pc_tree_node n = {0, shards};
    while (1) {
        if (n.lo == want.lo && n.hi == want.hi) return 1;
        if (n.hi - n.lo == 1) return 0;
        int mid = pc_tree_mid(n);
        if (want.hi <= mid) n.hi = mid;
        else if (want.lo >= mid) n.lo = mid;
        else return 0;
    }
}

static void test_tree(void) {
    float leaf[64];
    for (int i = 0; i < 64; i++) leaf[i] = 1.0f / (float)(i + 3) + (float)i * 1e3f;
    for (int shards = 1; shards <= 64; shards++) {
        float whole = tree_sum(leaf, (pc_tree_node){0, shards});
        for (int w = 1; w <= shards; w++) {
            if (shards % w) continue;
            int per = shards / w, covered = 0;
            for (int k = 0; k < w; k++) {
                pc_tree_node nodes[64];
                int n = pc_tree_cover(shards, k * per, (k + 1) * per, nodes, 64);
                int next = k * per; /* the nodes tile the worker's range left to right */
                for (int j = 0; j < n; j++) {
                    CHECK(is_tree_node(shards, nodes[j]), "S=%d W=%d: [%d,%d) not a tree node",
                          shards, w, nodes[j].lo, nodes[j].hi);
                    CHECK(nodes[j].lo == next, "S=%d W=%d: gap before [%d,%d)", shards, w,
                          nodes[j].lo, nodes[j].hi);
                    next = nodes[j].hi;
                    covered += nodes[j].hi - nodes[j].lo;
                }
                CHECK(next == (k + 1) * per, "S=%d W=%d: worker %d range not covered", shards, w, k);
            }
            CHECK(covered == shards, "S=%d W=%d covered %d", shards, w, covered);
        }
        CHECK(tree_sum(leaf, (pc_tree_node){0, shards}) == whole, "tree sum reproducible");
    }
    CHECK(pc_tree_depth((pc_tree_node){0, 1}) == 0 && pc_tree_depth((pc_tree_node){0, 12}) == 4, "depth");
}

static void test_split(void) {
    for (int64_t n = 0; n < 200; n += 7)
        for (int w = 1; w <= 5; w++) {
            int64_t prev = 0;
            for (int k = 0; k < w; k++) {
                int64_t b, e;
                pc_split_range(n, w, k, 16, &b, &e);
                CHECK(b == prev && e >= b && (e == n || e % 16 == 0), "split n=%lld w=%d k=%d", (long long)n, w, k);
                prev = e;
            }
            CHECK(prev == n, "split covers n=%lld", (long long)n);
        }
}

/* Every kind has a complete descriptor, found by its section name; names are unique. */
static void test_descriptors(void) {
    for (int k = 0; k < PC_L_KIND_COUNT; k++) {
        const pc_layer_ops *ops = pc_layer_ops_of((pc_layer_kind)k);
        CHECK(ops && ops->name && ops->setup, "kind %d has a descriptor with a name", k);
        if (!ops || !ops->name) continue;
        CHECK(strcmp(pc_layer_kind_name((pc_layer_kind)k), ops->name) == 0, "kind name %s", ops->name);
        if (k == PC_L_INPUT) {
            CHECK(ops->n_inputs == 0 && pc_layer_kind_of_section("input") == k,
                  "the input is no section's layer");
            continue;
        }
        CHECK(ops->n_inputs >= 1 && ops->n_inputs <= PC_MAX_INPUTS && ops->forward && ops->backward,
              "%s: inputs, forward and backward", ops->name);
        CHECK(pc_layer_kind_of_section(ops->name) == k, "[%s] maps to its kind", ops->name);
        CHECK(!(ops->flags & PC_OPS_WEIGHTED) || (ops->init && ops->param_info),
              "%s: a weighted kind initializes and names its weights", ops->name);
    }
    CHECK(pc_layer_kind_of_section("sepconv") == PC_L_CONV, "[sepconv] is built by conv");
    CHECK(pc_layer_kind_of_section("nosuch") == -1, "unknown section");
}

/* An error that wraps the previous one (pc_fail(s, "...: %s", pc_last_error())). */
static void test_error_wrapping(void) {
    pc_fail(PC_ERR_DATA, "inner reason");
    pc_fail(PC_ERR_DATA, "model.safetensors: its model description: %s", pc_last_error());
    CHECK(strcmp(pc_last_error(), "model.safetensors: its model description: inner reason") == 0,
          "wrapped error: %s", pc_last_error());
}

int main(void) {
    test_error_wrapping();
    test_descriptors();
    test_zoo();
    test_frozen_roles();
    test_identity_init();
    test_whiten();
    test_dense_scale();
    test_frozen_start();
    test_gelu_layers();
    test_blocked_layouts();
    test_elementwise_layers();
    test_graph_layers();
    test_size_limits();
    test_parse_in_two_steps();
    test_parse_errors();
    test_graph();
    test_roles();
    test_tree();
    test_split();
    return check_summary();
}
