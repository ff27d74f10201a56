/* parcnn export, import, inspect and predict --npy-in/--npy-out: models and tensors in
 * the formats other frameworks read (ONNX, .npy). docs/interchange.md. */
#include "interchange.h"

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nn/exec.h"
#include "onnx/npy.h"
#include "onnx/onnx.h"
#include "train/modelio.h"

/* ---------------------------------------------------------- predict --npy-in */

/* The model for inputs of (c, h, w): m itself, or m's description rebuilt for that size
 * when its weights fit it (a fully convolutional network takes any size). */
static pc_status model_for_input(const char *weights, pc_model *m, const pc_model_meta *meta,
                                 const pc_npy *x, pc_model **out) {
    int c = (int)x->shape[1], h = (int)x->shape[2], w = (int)x->shape[3];
    *out = m;
    if (c == meta->c && h == meta->h && w == meta->w) return PC_OK;
    pc_model *r = NULL;
    int fits = c == meta->c &&
               pc_model_parse(m->source, m->name, c, h, w, m->classes, 0, &r) == PC_OK &&
               r->n_params == m->n_params && r->n_buffers == m->n_buffers;
    if (!fits) {
        pc_model_free(r);
        return pc_fail(PC_ERR_USAGE, "--npy-in: the model %s takes (N, %d, %d, %d) inputs, the "
                       "array is (%lld, %d, %d, %d)", weights, meta->c, meta->h, meta->w,
                       (long long)x->shape[0], c, h, w);
    }
    memcpy(r->params, m->params, sizeof(float) * m->n_params);
    memcpy(r->buffers, m->buffers, sizeof(float) * m->n_buffers);
    *out = r;
    return PC_OK;
}

/* Logits of every sample of x, in chunks of up to 32 (the last one zero-padded). */
static pc_status run_logits(pc_model *m, const pc_exec_options *exec, const pc_npy *x,
                            float *logits) {
    int64_t n = x->shape[0], sample = x->numel / (n ? n : 1);
    int batch = n < 32 ? (int)n : 32;
    pc_exec *ex;
    PC_TRY(pc_exec_create(m, batch, exec, &ex));
    for (int64_t first = 0; first < n; first += batch) {
        int64_t k = PC_MIN((int64_t)batch, n - first);
        float *in = pc_exec_input(ex);
        memcpy(in, x->data + first * sample, sizeof(float) * k * sample);
        memset(in + k * sample, 0, sizeof(float) * (batch - k) * sample);
        const float *y = pc_exec_forward(ex, 0, 0, 0, first, NULL);
        memcpy(logits + first * m->classes, y, sizeof(float) * k * m->classes);
    }
    pc_exec_destroy(ex);
    return PC_OK;
}

int predict_npy(const char *weights, const pc_exec_options *exec, int fold_bn, const char *in_path,
                const char *out_path) {
    pc_model *m = NULL, *sized = NULL;
    pc_model_meta meta = {0};
    pc_npy x = {0};
    float *logits = NULL;
    pc_status st = pc_npy_read(in_path, (int64_t)1 << 31, &x);
    if (st == PC_OK && (x.ndim != 4 || x.shape[0] < 1 || x.shape[1] < 1 || x.shape[2] < 1 ||
                        x.shape[3] < 1 || x.shape[2] > 16384 || x.shape[3] > 16384))
        st = pc_fail(PC_ERR_DATA, "%s: expected a 4-D float32 array (N, C, H, W), got %d "
                     "dimensions", in_path, x.ndim);
    if (st == PC_OK) st = pc_model_load(weights, &m, &meta);
    if (st == PC_OK) st = model_for_input(weights, m, &meta, &x, &sized);
    if (st == PC_OK && fold_bn) { /* the batch norms into the layers before them */
        pc_model *folded = NULL;
        st = pc_model_fold_bn(sized, &folded, NULL);
        if (sized != m) pc_model_free(sized);
        sized = folded;
    }
    if (st == PC_OK && !(logits = malloc(sizeof(float) * x.shape[0] * m->classes)))
        st = pc_fail_nomem();
    if (st == PC_OK) st = run_logits(sized, exec, &x, logits);
    int64_t shape[2] = {x.shape[0], m ? m->classes : 0};
    if (st == PC_OK) st = pc_npy_write(out_path, logits, 2, shape);
    if (st == PC_OK)
        printf("%s: logits of %lld samples (%lld classes) written to %s\n", in_path,
               (long long)shape[0], (long long)shape[1], out_path);
    free(logits);
    if (sized != m) pc_model_free(sized);
    pc_model_free(m);
    pc_model_meta_free(&meta);
    pc_npy_free(&x);
    return st == PC_OK ? 0 : cli_fail(st);
}

/* ---------------------------------------------------------------- export */

static const char export_usage[] =
    "usage: parcnn export --weights FILE --out MODEL.onnx\n"
    "Write a trained model (model.safetensors, or an ONNX file) as an ONNX graph (IR version\n"
    "8, opset 14) that onnxruntime, PyTorch and other runtimes read. Its input \"input\" is\n"
    "(N, C, H, W) float32 after the model's mean/std normalization (recorded in the\n"
    "metadata_props mean, std and normalization, with the class names in classes), as\n"
    "parcnn predict --npy-in takes it; its output \"logits\" is (N, classes). N is symbolic.\n"
    "\n";

typedef struct {
    const char *weights, *out;
} export_opts;

static const pc_flag export_flags[] = {
    {"weights", PC_FLAG_STRING, offsetof(export_opts, weights), "FILE", .required = 1,
     .help = "the model: model.safetensors of a training run, or an ONNX file"},
    {"out", PC_FLAG_STRING, offsetof(export_opts, out), "FILE", .required = 1,
     .help = "the ONNX file to write"},
    {0}};

int cmd_export(int argc, char **argv) {
    export_opts o = {0};
    int rc = cli_parse_flags("export", export_flags, &o, export_usage, NULL, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    const char *weights = o.weights, *out = o.out;
    if (optind < argc) return usage_error("export", "unexpected argument '%s'", argv[optind]);
    pc_model *m;
    pc_model_meta meta;
    pc_status st = pc_model_load(weights, &m, &meta);
    if (st != PC_OK) return cli_fail(st);
    st = pc_onnx_export(out, m, &meta);
    if (st == PC_OK)
        printf("%s: %s (%d layers, %lld parameters) exported to %s\n", weights, m->name,
               m->n_layers - 1, (long long)m->n_params, out);
    pc_model_free(m);
    pc_model_meta_free(&meta);
    return st == PC_OK ? 0 : cli_fail(st);
}
/* ---------------------------------------------------------------- import */

static const char import_usage[] =
    "usage: parcnn import MODEL.onnx --out DIR [--mean M1,M2,M3] [--std S1,S2,S3]\n"
    "Convert an ONNX image classifier (opsets 9 to 17; weights in initializers or Constant\n"
    "nodes) to DIR/model.safetensors, which eval, predict, export and inspect take like a\n"
    "trained model (they also take the ONNX file itself). The graph must take one float\n"
    "(N, C, H, W) input of fixed C, H, W and output the logits; docs/interchange.md lists\n"
    "the operators. An unsupported operator or attribute is an error naming the node.\n"
    "\n";

/* --mean or --std: up to 4 values, given (n > 0) or not. */
typedef struct {
    float v[4];
    int n;
} channel_values;

typedef struct {
    const char *out;
    channel_values mean, std;
} import_opts;

/* "a,b,c" into up to 4 floats; the count must be the input's channels (or 1, repeated). */
static pc_flag_result parse_channels(const char *flag, const char *s, channel_values *c) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    c->n = 0;
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        double x = strtod(tok, &end);
        if (c->n == 4 || *end || end == tok || x != x || x < -1e6 || x > 1e6) {
            c->n = 0;
            break;
        }
        c->v[c->n++] = (float)x;
    }
    if (c->n) return PC_FLAG_OK;
    pc_fail(PC_ERR_USAGE, "%s: expected 1 to 4 comma-separated numbers", flag);
    return PC_FLAG_ERR_USAGE;
}

static pc_flag_result parse_mean(const char *arg, void *field) { return parse_channels("--mean", arg, field); }
static pc_flag_result parse_std(const char *arg, void *field) { return parse_channels("--std", arg, field); }

static const pc_flag import_flags[] = {
    {"out", PC_FLAG_STRING, offsetof(import_opts, out), "DIR", .required = 1,
     .help = "where model.safetensors goes (created if missing)"},
    {"mean", PC_FLAG_PARSED, offsetof(import_opts, mean), "LIST", .parse = parse_mean,
     .def_text = "the file's metadata (parcnn exports), else 0",
     .help = "per-channel input normalization the network was trained with, applied by "
             "predict to images: (pixel/255 - mean) / std (torchvision ImageNet models: "
             "--mean 0.485,0.456,0.406 --std 0.229,0.224,0.225)"},
    {"std", PC_FLAG_PARSED, offsetof(import_opts, std), "LIST", .parse = parse_std,
     .def_text = "the file's metadata (parcnn exports), else 1",
     .help = "the standard deviations of that normalization"},
    {0}};

int cmd_import(int argc, char **argv) {
    import_opts io = {0};
    int rc = cli_parse_flags("import", import_flags, &io, import_usage, NULL, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    const char *out = io.out;
    pc_onnx_import_options opt = {0};
    int n_mean = io.mean.n, n_std = io.std.n;
    memcpy(opt.mean, io.mean.v, sizeof opt.mean);
    memcpy(opt.std, io.std.v, sizeof opt.std);
    opt.have_mean = n_mean > 0;
    opt.have_std = n_std > 0;
    if (optind + 1 != argc) return usage_error("import", "%s", "give one MODEL.onnx");
    for (int ch = 1; ch < 4; ch++) { /* one value stands for every channel */
        if (n_mean == 1) opt.mean[ch] = opt.mean[0];
        if (n_std == 1) opt.std[ch] = opt.std[0];
    }
    const char *path = argv[optind];
    pc_model *m;
    pc_model_meta meta;
    pc_status st = pc_onnx_import(path, &opt, &m, &meta);
    if (st != PC_OK) return cli_fail(st);
    for (int k = 0; k < 2; k++) {
        int n = k ? n_std : n_mean;
        if (n > 1 && n != meta.c)
            st = pc_fail(PC_ERR_USAGE, "%s: %d values for a %d-channel input", k ? "--std" : "--mean",
                         n, meta.c);
    }
    char *file = NULL;
    if (st == PC_OK) st = pc_mkdirs(out, "--out");
    if (st == PC_OK && !(file = pc_path_join(out, "model.safetensors")))
        st = pc_fail_nomem();
    if (st == PC_OK) st = pc_model_save(file, m, &meta);
    if (st == PC_OK)
        printf("%s: %d layers, %lld parameters, input %dx%dx%d, %d classes -> %s\n", path,
               m->n_layers - 1, (long long)m->n_params, meta.c, meta.h, meta.w, meta.classes, file);
    free(file);
    pc_model_free(m);
    pc_model_meta_free(&meta);
    return st == PC_OK ? 0 : cli_fail(st);
}

/* ---------------------------------------------------------------- inspect */

static const char inspect_usage[] =
    "usage: parcnn inspect FILE\n"
    "Describe a model (model.safetensors, a training checkpoint, or an ONNX file, shown as\n"
    "parcnn imports it): every layer with its inputs, output shape, parameters and forward\n"
    "FLOPs per image, the totals, and the metadata (input, normalization, classes).\n"
    "\n";

static const pc_flag inspect_flags[] = {{0}};

static void print_layer(const pc_model *m, int i) {
    const pc_layer *l = &m->layers[i];
    char from[64] = "";
    for (int k = 0; k < l->n_inputs; k++) {
        size_t n = strlen(from);
        snprintf(from + n, sizeof from - n, "%s%d", k ? "," : "", l->inputs[k]);
    }
    char what[96] = "", stride[24], pad[24];
    snprintf(stride, sizeof stride, l->sh == l->sw ? "%d" : "%dx%d", l->sh, l->sw);
    snprintf(pad, sizeof pad, l->ph == l->pw ? "%d" : "%dx%d", l->ph, l->pw);
    if (l->kind == PC_L_CONV)
        snprintf(what, sizeof what, "%dx%d/%s pad %s%s%s", l->kh, l->kw, stride, pad,
                 l->dilation > 1 ? " dilated" : "",
                 l->groups > 1 ? (l->groups == l->c ? " depthwise" : " grouped") : "");
    else if (l->kind == PC_L_MAXPOOL || l->kind == PC_L_AVGPOOL)
        snprintf(what, sizeof what, "%dx%d/%s pad %s%s%s", l->kh, l->kw, stride, pad,
                 l->ceil_mode ? " ceil" : "", l->count_pad ? " +padding" : "");
    if (l->act) strcat(strcat(what, " +"), pc_activation_name(l->act));
    char shape[48];
    snprintf(shape, sizeof shape, "%dx%dx%d", l->c, l->h, l->w);
    printf("%4d  %-28s %-10s %-8s %-26s %16s %10lld %12.2f%s%s\n", i, l->name,
           pc_layer_kind_name(l->kind), from, what, shape, (long long)(l->weight_n + l->bias_n),
           l->flops / 1e6, *l->alias ? "  alias " : "", l->alias);
}

int cmd_inspect(int argc, char **argv) {
    int rc = cli_parse_flags("inspect", inspect_flags, NULL, inspect_usage, NULL, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    if (optind + 1 != argc) return usage_error("inspect", "%s", "give one model FILE");
    const char *path = argv[optind];
    pc_model *m;
    pc_model_meta meta;
    pc_status st = pc_model_load(path, &m, &meta);
    if (st != PC_OK) return cli_fail(st);
    printf("%s: model %s (%s)\n", path, m->name,
           pc_onnx_is_onnx_path(path) ? "ONNX, as parcnn imports it" : "parcnn safetensors");
    printf("%4s  %-28s %-10s %-8s %-26s %16s %10s %12s\n", "#", "layer", "kind", "from", "",
           "output CxHxW", "params", "MFLOP/img");
    for (int i = 0; i < m->n_layers; i++) print_layer(m, i);
    printf("total: %lld parameters, %lld batch-norm statistics, %.2f MFLOP per image forward, "
           "%.2f MFLOP training (conv and dense)\n", (long long)m->n_params,
           (long long)m->n_buffers, pc_model_flops(m) / 1e6, pc_model_train_flops(m) / 1e6);
    printf("input: %dx%dx%d, normalized per channel as (pixel/255 - mean) / std, mean", meta.c,
           meta.h, meta.w);
    for (int c = 0; c < meta.c; c++) printf("%s%g", c ? "," : " ", meta.mean[c]);
    printf(" std");
    for (int c = 0; c < meta.c; c++) printf("%s%g", c ? "," : " ", meta.std[c]);
    printf("\nclasses (%d):", meta.classes);
    for (int k = 0; k < meta.classes && k < 20; k++) printf(" %s", meta.class_names[k]);
    printf("%s\n", meta.classes > 20 ? " ..." : "");
    pc_model_free(m);
    pc_model_meta_free(&meta);
    return 0;
}
