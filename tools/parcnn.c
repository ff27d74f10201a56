/* parcnn: the command line. Subcommands train, eval, predict, models, recipes, check-data
 * and bench, dispatched from `commands`; their flags are tables (core/flags.h).
 * Exit status: 0 success, 1 data or I/O error, 2 usage error. */
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parcnn.h"
#include "core/common.h"
#include "core/fpenv.h"
#include "data/dataset.h"
#include "data/folder.h"
#include "data/image.h"
#include "data/tta.h"
#include "comm/comm.h"
#include "nn/model.h"
#include "train/engine.h"
#include "train/metrics.h"
#include "train/modelio.h"
#include "train/train.h"
#include "train/recipe.h"
#include "train/report.h"
#include "cli.h"
#include "interchange.h"

int cmd_bench(int argc, char **argv); /* tools/bench.c */

/* --precision bf16 runs on the oneDNN kernels: refused with --kernels ref. */
static int check_precision(const char *cmd, const pc_exec_options *o) {
    if (o->precision == PC_PRECISION_BF16 && o->kernels == PC_KERNELS_REF)
        return usage_error(cmd, "%s", "--precision bf16 runs on the oneDNN kernels, not --kernels ref");
    return 0;
}

/* ---------------------------------------------------------------- train */

static const char train_usage[] =
    "usage: parcnn train [--recipe NAME] [options]\n"
    "Train a model; prints one line per epoch and the final test metrics.\n"
    "\n"
    "  --recipe NAME        start from a shipped recipe's flags (parcnn recipes lists them);\n"
    "                       flags given here override the recipe's (default: none)\n";

/* SIGINT and SIGTERM: blocked in every thread (main blocks them before any thread starts)
 * and taken by one thread with sigwait, so no handler ever interrupts the kernels. While
 * `train` runs, the first one asks it to stop after the step in progress (with a
 * checkpoint); otherwise, and for a second one, the signal's default action ends the
 * process at once. */
static volatile sig_atomic_t stop_signal, stop_gracefully;
static sigset_t stop_signals;

static void *signal_thread(void *arg) {
    (void)arg;
    for (;;) {
        int sig;
        if (sigwait(&stop_signals, &sig) != 0) continue;
        if (stop_gracefully && !stop_signal) {
            stop_signal = sig;
            continue;
        }
        signal(sig, SIG_DFL);
        pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);
        raise(sig);
    }
    return NULL;
}

static void start_signal_thread(void) {
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_t tid;
    if (pthread_sigmask(SIG_BLOCK, &stop_signals, NULL) != 0) return;
    if (pthread_create(&tid, NULL, signal_thread, NULL) != 0) {
        pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);
        return;
    }
    pthread_detach(tid);
}

/* The flags of pc_train_flags (src/train/config.c), then pc_train. */
static int train_args(int argc, char **argv) {
    pc_train_config c;
    pc_train_config_defaults(&c);
    c.progress = isatty(2);
    int rc = cli_parse_flags("train", pc_train_flags, &c, train_usage, NULL, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    if (optind < argc) return usage_error("train", "unexpected argument '%s'", argv[optind]);
    if (check_precision("train", &c.exec)) return 2;
    if (pc_comm_rank(pc_comm_world()) != 0) c.progress = 0;
    c.stop_signal = &stop_signal;
    stop_gracefully = 1;
    pc_status st = pc_train(&c, NULL);
    stop_gracefully = 0;
    if (st == PC_ERR_INTERRUPTED) { /* every rank stopped at the same step: no abort */
        if (pc_comm_rank(pc_comm_world()) == 0) fprintf(stderr, "parcnn: %s\n", pc_last_error());
        return 128 + (int)stop_signal;
    }
    return st == PC_OK ? 0 : cli_fail(st);
}

/* train --recipe NAME [flags]: the recipe's flags, then the command line's (which win). */
static int cmd_train(int argc, char **argv) {
    int n;
    char **args;
    const char *recipe;
    if (pc_recipe_expand(argc, argv, &n, &args, &recipe) != PC_OK) return cli_fail(PC_ERR_USAGE);
    if (recipe && pc_comm_rank(pc_comm_world()) == 0) {
        printf("parcnn: recipe %s:", recipe);
        for (int i = 1; i < n; i++) printf(" %s", args[i]);
        printf("\n");
    }
    int rc = train_args(n, args);
    pc_recipe_argv_free(n, args);
    return rc;
}

/* ---------------------------------------------------------------- recipes */

static int cmd_recipes(int argc, char **argv) {
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            puts("usage: parcnn recipes [NAME]\nList the training recipes (parcnn train --recipe "
                 "NAME), or print one: its flags, read before the command line's.");
            return 0;
        }
        return usage_error("recipes", "%s", "expected at most one recipe name");
    }
    if (argc == 2) {
        const char *t = pc_recipe_text(argv[1]);
        if (!t) return usage_error("recipes", "%s: no such recipe", argv[1]);
        fputs(t, stdout);
        return 0;
    }
    printf("%-16s %s\n", "recipe", "description");
    for (int i = 0; i < pc_recipe_count(); i++)
        printf("%-16s %s\n", pc_recipe_name(i), pc_recipe_summary(pc_recipe_name(i)));
    printf("(parcnn recipes NAME prints one; parcnn train --recipe NAME [flags] runs it)\n");
    return 0;
}

/* ----------------------------------------------------------- eval/predict */

static const char eval_usage[] =
    "usage: parcnn eval --weights FILE[,FILE...] [--data SPEC] [--json] [--tta MODE] [--workers N] [--batch N]\n"
    "Evaluate a trained model, or an ensemble of models, on the test part of a dataset:\n"
    "accuracy, loss, balanced accuracy, Cohen's kappa (also quadratic-weighted, for\n"
    "ordered classes), per-class precision, recall, F1 and one-vs-rest ROC AUC, macro\n"
    "averages and the confusion matrix.\n"
    "\n";

static const char predict_usage[] =
    "usage: parcnn predict --weights FILE[,FILE...] [--top K] [--tta MODE] IMAGE...\n"
    "       parcnn predict --weights FILE[,FILE...] [--data SPEC] [--top K] [--tta MODE] INDEX...\n"
    "       parcnn predict --weights FILE --npy-in X.npy --npy-out Y.npy\n"
    "Classify image files (JPEG or PNG, preprocessed exactly as in training: converted to\n"
    "the model's channels, resized to its input, normalized with its mean and std), or\n"
    "test samples of a dataset given by their indices; prints the top-K classes with\n"
    "probabilities (and the true class for dataset samples).\n"
    "\n";

enum { MAX_MEMBERS = 64 };

typedef struct {
    char *files[MAX_MEMBERS]; /* one file per ensemble member */
    int n;
} weight_files;

typedef struct {
    weight_files weights;
    const char *data;
    int json, workers, batch, top, train_split;
    int no_fold_bn; /* --no-fold-bn: run the batch norms as passes of their own */
    pc_exec_options exec;
    pc_tta tta;
    const char *npy_in, *npy_out; /* predict --npy-in/--npy-out */
} infer_opts;

/* --weights A,B,...: append each file (the flag may also be repeated). */
static pc_flag_result add_weights(const char *list, void *field) {
    weight_files *w = field;
    for (const char *p = list;; p++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0) {
            pc_fail(PC_ERR_USAGE, "--weights %s: an empty file name", list);
            return PC_FLAG_ERR_USAGE;
        }
        if (w->n == MAX_MEMBERS) {
            pc_fail(PC_ERR_USAGE, "--weights %s: more than %d files", list, MAX_MEMBERS);
            return PC_FLAG_ERR_USAGE;
        }
        if (!(w->files[w->n] = strndup(p, len))) {
            pc_fail(PC_ERR_USAGE, "out of memory");
            return PC_FLAG_ERR_USAGE;
        }
        w->n++;
        if (!end) return PC_FLAG_OK;
        p = end;
    }
}

static pc_flag_result parse_tta(const char *arg, void *field) {
    return pc_tta_parse(arg, field) == PC_OK ? PC_FLAG_OK : PC_FLAG_ERR_FAIL;
}

static void free_infer(infer_opts *o) {
    for (int k = 0; k < o->weights.n; k++) free(o->weights.files[k]);
}

#define AT(field) offsetof(infer_opts, field)
/* The flags eval and predict share. */
#define INFER_FLAGS                                                                           \
    {"weights", PC_FLAG_PARSED, AT(weights), "FILE", .required = 1,                        \
     .parse = add_weights,                                                                    \
     .help = "model.safetensors written by parcnn train or import, or an ONNX file; "      \
             "several (comma-separated or the flag repeated): their ensemble, the class "     \
             "probabilities of the models (each after --tta) averaged"},                      \
    {"data", PC_FLAG_STRING, AT(data), "SPEC", .def = "fashion-mnist",                       \
     .help = "dataset (see parcnn train --help); its test part is used"},                     \
    {"train-split", PC_FLAG_SWITCH, AT(train_split), .lo = 1,                                 \
     .help = "use the dataset's training part instead"},                                      \
    {"tta", PC_FLAG_PARSED, AT(tta), "MODE", .def_text = "none", .parse = parse_tta,          \
     .help = "test-time augmentation: flip (average the probabilities of the image and its "  \
             "mirror) or flip,translate=N (airbench's: also shifted by (N, N) and (-N, -N) "  \
             "pixels, reflect-padded)"},                                                      \
    {"kernels", PC_FLAG_CHOICE, AT(exec.kernels), "K", .def = "auto", .choices = pc_kernel_choices, \
     .expect = "onednn or ref", .def_text = "auto: onednn when built with it, else ref",      \
     .help = "onednn or ref"},                                                                \
    {"precision", PC_FLAG_CHOICE, AT(exec.precision), "P", .def = "fp32",                          \
     .choices = pc_precision_choices, .expect = "fp32 or bf16",                               \
     .help = "fp32 or bf16 (see parcnn train --help)"},                                       \
    {"conv-algo", PC_FLAG_CHOICE, AT(exec.conv_algo), "A", .def = "auto",                          \
     .choices = pc_conv_algo_choices, .expect = "auto, direct or winograd",                   \
     .help = "auto, direct or winograd (see parcnn train --help)"},                       \
    {"no-fold-bn", PC_FLAG_SWITCH, AT(no_fold_bn), .lo = 1,                                   \
     .help = "run each batch norm as a pass of its own instead of folding it into the "       \
             "convolution or dense layer before it (for debugging: the same results up to "   \
             "float rounding)"}

static const pc_flag eval_flags[] = {
    INFER_FLAGS,
    {"json", PC_FLAG_SWITCH, AT(json), .lo = 1,
     .help = "print one JSON object (accuracy, loss, balanced_accuracy, kappa, quadratic_kappa, "
             "roc_auc_macro, macro_f1, per_class, confusion, tta): the schema of train's "
             "DIR/eval.json"},
    {"workers", PC_FLAG_INT, AT(workers), "N", 1, 1024, "1", .help = "parallel replicas"},
    {"batch", PC_FLAG_INT, AT(batch), "N", 1, 1 << 16, "100", .help = "samples per forward pass"},
    {0}};

static const pc_flag predict_flags[] = {
    INFER_FLAGS,
    {"top", PC_FLAG_INT, AT(top), "K", 1, 1000, "3", .help = "classes to print per sample"},
    {"npy-in", PC_FLAG_STRING, AT(npy_in), "X.npy", .def_text = "none",
     .help = "instead of images: a float32 (N, C, H, W) array fed to the network as it is (no "
             "resizing, no normalization); with --npy-out Y.npy, which receives the "
             "(N, classes) float32 logits"},
    {"npy-out", PC_FLAG_STRING, AT(npy_out), "Y.npy", .def_text = "none",
     .help = "where --npy-in's logits go"},
    {0}};
#undef AT

/* Parse eval's or predict's flags into *o: 0, -1 after --help, or the exit status. */
static int parse_infer(const char *cmd, int argc, char **argv, infer_opts *o) {
    int is_eval = strcmp(cmd, "eval") == 0;
    const pc_flag *flags = is_eval ? eval_flags : predict_flags;
    memset(o, 0, sizeof *o);
    pc_flags_defaults(flags, o);
    int rc = cli_parse_flags(cmd, flags, o, is_eval ? eval_usage : predict_usage, NULL, argc, argv);
    if (rc) return rc;
    return check_precision(cmd, &o->exec);
}

/* The models of --weights: the first one's meta data, which the others must share. */
typedef struct {
    pc_model *models[MAX_MEMBERS];
    int n;
    pc_model_meta meta;
} loaded_models;

static void free_models(loaded_models *lm) {
    for (int k = 0; k < lm->n; k++) pc_model_free(lm->models[k]);
    pc_model_meta_free(&lm->meta);
}

/* Member k must take the same input, normalization and classes as member 0. */
static pc_status check_member(const char *path, const char *first, const pc_model_meta *a,
                              const pc_model_meta *b) {
    int same = a->c == b->c && a->h == b->h && a->w == b->w && a->classes == b->classes &&
               memcmp(a->mean, b->mean, sizeof a->mean) == 0 &&
               memcmp(a->std, b->std, sizeof a->std) == 0;
    for (int j = 0; same && j < a->classes; j++) same = strcmp(a->class_names[j], b->class_names[j]) == 0;
    if (same) return PC_OK;
    return pc_fail(PC_ERR_USAGE, "%s: not a member of one ensemble with %s (the input size, "
                   "normalization or class names differ)", path, first);
}

static pc_status load_models(const infer_opts *o, loaded_models *lm) {
    for (int k = 0; k < o->weights.n; k++) {
        pc_model_meta meta = {0};
        PC_TRY(pc_model_load(o->weights.files[k], &lm->models[k], k ? &meta : &lm->meta));
        lm->n++;
        if (!o->no_fold_bn) PC_TRY(pc_model_fold_bn_inplace(&lm->models[k]));
        if (k == 0) continue;
        pc_status st = check_member(o->weights.files[k], o->weights.files[0], &lm->meta, &meta);
        pc_model_meta_free(&meta);
        PC_TRY(st);
    }
    return PC_OK;
}

/* An engine running all of lm's models, normalizing as the first was trained. */
static pc_status open_engine(const infer_opts *o, loaded_models *lm, int workers, int batch,
                             pc_engine **e) {
    PC_TRY(pc_engine_create(lm->models[0], workers, 1, batch, &o->exec, lm->meta.mean,
                            lm->meta.std, e));
    for (int k = 1; k < lm->n; k++) PC_TRY(pc_engine_add_member(*e, lm->models[k]));
    return PC_OK;
}

/* Load the models and the dataset part, and check they fit together. */
static pc_status load_for_inference(const infer_opts *o, loaded_models *lm, pc_dataset *d) {
    PC_TRY(load_models(o, lm));
    const pc_model_meta *meta = &lm->meta;
    PC_TRY(pc_dataset_load(o->data, o->train_split, d));
    if (d->c != meta->c || d->h != meta->h || d->w != meta->w)
        return pc_fail(PC_ERR_USAGE, "%s: model expects %dx%dx%d images, %s has %dx%dx%d",
                       o->weights.files[0], meta->c, meta->h, meta->w, o->data, d->c, d->h, d->w);
    if (d->classes > meta->classes)
        return pc_fail(PC_ERR_USAGE, "%s: model has %d classes, %s has %d", o->weights.files[0],
                       meta->classes, o->data, d->classes);
    return PC_OK;
}

static int cmd_eval(int argc, char **argv) {
    infer_opts o;
    int r = parse_infer("eval", argc, argv, &o);
    if (r) {
        free_infer(&o);
        return r < 0 ? 0 : r;
    }
    if (optind < argc) {
        free_infer(&o);
        return usage_error("eval", "unexpected argument '%s'", argv[optind]);
    }
    loaded_models lm = {0};
    pc_dataset d = {0};
    pc_engine *e = NULL;
    pc_metrics mt = {0};
    pc_status st = load_for_inference(&o, &lm, &d);
    if (st == PC_OK) st = pc_tta_check(&o.tta, lm.meta.h, lm.meta.w);
    if (st == PC_OK) st = open_engine(&o, &lm, o.workers, o.batch, &e);
    if (st == PC_OK && (pc_metrics_init(&mt, lm.meta.classes) || pc_metrics_keep_scores(&mt, d.n)))
        st = pc_fail_nomem();
    if (st == PC_OK) st = pc_engine_evaluate(e, pc_comm_world(), &d, &o.tta, &mt, NULL, NULL);
    if (st == PC_OK && pc_comm_rank(pc_comm_world()) == 0) { /* under MPI, rank 0 prints */
        char views[64], *json = NULL;
        pc_tta_format(&o.tta, views, sizeof views);
        if (o.json && (json = pc_metrics_json(&mt, lm.meta.class_names, views)))
            printf("%s\n", json);
        else if (o.json)
            st = pc_fail_nomem();
        else
            pc_metrics_print(&mt, lm.meta.class_names, stdout);
        free(json);
    }
    pc_metrics_free(&mt);
    pc_engine_destroy(e);
    pc_dataset_free(&d);
    free_models(&lm);
    free_infer(&o);
    return st == PC_OK ? 0 : cli_fail(st);
}

/* The top-k classes of one probability vector, highest first. */
static void print_top(const float *probs, int classes, char *const *names, int top) {
    char *used = calloc(classes, 1);
    for (int k = 0; used && k < top && k < classes; k++) {
        int best = -1;
        for (int j = 0; j < classes; j++)
            if (!used[j] && (best < 0 || probs[j] > probs[best])) best = j;
        used[best] = 1;
        printf("  %s %.4f", names[best], probs[best]);
    }
    free(used);
    printf("\n");
}

static int all_digits(const char *s) {
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* One image file, preprocessed exactly as training saw it: decoded, converted to the
 * model's channels, resized to its input size, scaled to [0, 1] and normalized. */
static pc_status load_image_input(const char *path, const pc_model_meta *meta, float *out) {
    int64_t n = (int64_t)meta->c * meta->h * meta->w;
    uint8_t *px = malloc(n);
    if (!px) return pc_fail_nomem();
    pc_status st = pc_image_load_chw(path, meta->c, meta->h, meta->w, 0, px, NULL, NULL);
    int64_t plane = (int64_t)meta->h * meta->w;
    for (int64_t i = 0; st == PC_OK && i < n; i++)
        out[i] = ((float)px[i] / 255.0f - meta->mean[i / plane]) / meta->std[i / plane];
    free(px);
    return st;
}

static int cmd_predict(int argc, char **argv) {
    infer_opts o;
    int r = parse_infer("predict", argc, argv, &o);
    if (r) {
        free_infer(&o);
        return r < 0 ? 0 : r;
    }
    if (o.npy_in || o.npy_out) {
        r = !o.npy_in || !o.npy_out || o.weights.n > 1 || optind < argc
                ? usage_error("predict", "%s", "--npy-in X.npy needs --npy-out Y.npy, one "
                              "--weights FILE and no other arguments")
                : predict_npy(o.weights.files[0], &o.exec, !o.no_fold_bn, o.npy_in, o.npy_out);
        free_infer(&o);
        return r;
    }
    if (optind >= argc) {
        free_infer(&o);
        return usage_error("predict", "%s", "give image files or sample INDEXes");
    }
    int by_index = all_digits(argv[optind]);
    loaded_models lm = {0};
    const pc_model_meta *meta = &lm.meta;
    pc_dataset d = {0};
    pc_engine *e = NULL;
    pc_status st = by_index ? load_for_inference(&o, &lm, &d) : load_models(&o, &lm);
    if (st == PC_OK) st = pc_tta_check(&o.tta, meta->h, meta->w);
    if (st == PC_OK) st = open_engine(&o, &lm, 1, 1, &e);
    float *input = NULL, *probs = NULL;
    if (st == PC_OK) {
        input = malloc(sizeof(float) * meta->c * meta->h * meta->w);
        probs = malloc(3 * sizeof(float) * meta->classes); /* and pc_engine_probs' scratch */
        if (!input || !probs) st = pc_fail_nomem();
    }
    for (int a = optind; st == PC_OK && a < argc; a++) {
        long idx = 0;
        if (by_index) {
            if (!all_digits(argv[a]) || parse_long("predict", "INDEX", argv[a], 0, d.n - 1, &idx)) {
                st = pc_fail(PC_ERR_USAGE, "sample index %s out of range [0, %lld)", argv[a],
                             (long long)d.n);
                break;
            }
            int64_t i64 = idx;
            if ((st = pc_dataset_gather(&d, &i64, 1, meta->mean, meta->std, input, NULL)) != PC_OK)
                break;
        } else if ((st = load_image_input(argv[a], meta, input)) != PC_OK) {
            break;
        }
        if ((st = pc_engine_probs(e, 0, &o.tta, input, probs, probs + meta->classes)) != PC_OK)
            break;
        if (by_index)
            printf("sample %ld (true: %s):", idx, meta->class_names[d.labels[idx]]);
        else
            printf("%s:", argv[a]);
        print_top(probs, meta->classes, meta->class_names, o.top);
    }
    free(input);
    free(probs);
    pc_engine_destroy(e);
    pc_dataset_free(&d);
    free_models(&lm);
    free_infer(&o);
    return st == PC_OK ? 0 : cli_fail(st);
}

/* ------------------------------------------------------------ check-data */

static const char check_usage[] =
    "usage: parcnn check-data --data folder:DIR [--image-size N] [--channels 1|3]\n"
    "                         [--val-split F] [--decode-threads N]\n"
    "Decode every image of a dataset and report images per class, the decoded size and\n"
    "every bad file (corrupt, truncated, empty, too large, unreadable). Exit status 1 when\n"
    "a file is bad.\n"
    "\n";

typedef struct {
    const char *data;
    pc_folder_options folder;
} check_opts;

static const pc_flag_choice channel_choices[] = {{"1", 1}, {"3", 3}, {NULL, 0}};

#define AT(field) offsetof(check_opts, field)
static const pc_flag check_flags[] = {
    {"data", PC_FLAG_STRING, AT(data), "SPEC", .required = 1,
     .help = "the dataset, e.g. folder:DIR (see parcnn train --help)"},
    {"image-size", PC_FLAG_INT, AT(folder.image_size), "N", 4, 4096, "32",
     .help = "resize every image to N x N"},
    {"channels", PC_FLAG_CHOICE, AT(folder.channels), "N", .choices = channel_choices,
     .expect = "1 or 3", .def_text = "1 if all images are gray, else 3",
     .help = "1 (gray) or 3 (RGB)"},
    {"val-split", PC_FLAG_FLOAT, AT(folder.val_split), "F", 0.001, 0.9, .def_text = "none",
     .help = "the stratified fraction held out for evaluation when there is no test/ folder"},
    {"decode-threads", PC_FLAG_INT, AT(folder.decode_threads), "N", 1, 256,
     .def_text = "one per core, at most 16", .help = "threads decoding images"},
    {0}};
#undef AT

static int cmd_check_data(int argc, char **argv) {
    check_opts co = {0};
    pc_folder_options_default(&co.folder);
    pc_flags_defaults(check_flags, &co);
    int rc = cli_parse_flags("check-data", check_flags, &co, check_usage, NULL, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    const char *data = co.data;
    pc_folder_options fo = co.folder;
    fo.on_bad_skip = 1;
    int64_t bad = 0;
    for (int part = 1; part >= 0; part--) {
        pc_dataset d = {0};
        pc_folder_report rep;
        memset(&rep, 0, sizeof rep);
        fo.report = &rep;
        pc_status st = pc_dataset_load_ex(data, part, &fo, &d);
        if (st == PC_OK && rep.kept) pc_folder_report_print(&rep, &d, stdout);
        else if (st == PC_OK)
            printf("%s part: %lld images of %dx%dx%d, %d classes\n", part ? "training" : "test",
                   (long long)d.n, d.c, d.h, d.w, d.classes);
        bad += rep.skipped;
        pc_folder_report_free(&rep);
        if (part == 1 && st == PC_OK) fo.channels = d.c;
        pc_dataset_free(&d);
        if (st != PC_OK) {
            if (part == 0 && strstr(pc_last_error(), "--val-split")) break; /* no evaluation part */
            return cli_fail(st);
        }
    }
    printf("%lld bad file(s)\n", (long long)bad);
    return bad ? 1 : 0;
}

/* ---------------------------------------------------------------- report */

static const char report_usage[] =
    "usage: parcnn report DIR [DIR...] [--out FILE]\n"
    "Rebuild the report of training runs from their --out folders (metrics.jsonl, and\n"
    "eval.json, samples.json and settings.json where present). One DIR: DIR/report.html\n"
    "and DIR/report.svg. Several: one page overlaying their curves (e.g. a sequential and\n"
    "a parallel run, strategies, seeds). The page is self-contained: no network, open it\n"
    "in any browser.\n"
    "\n";

typedef struct {
    const char *out;
} report_opts;

static const pc_flag report_flags[] = {
    {"out", PC_FLAG_STRING, offsetof(report_opts, out), "FILE",
     .def_text = "DIR/report.html for one DIR, report.html for several",
     .help = "where the page goes"},
    {0}};

static int cmd_report(int argc, char **argv) {
    report_opts ro = {0};
    pc_flags_defaults(report_flags, &ro);
    int rc = cli_parse_flags("report", report_flags, &ro, report_usage, NULL, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    int n = argc - optind;
    if (n < 1) return usage_error("report", "%s", "give at least one run folder");
    pc_status st;
    if (n == 1 && !ro.out) {
        st = pc_report_write(argv[optind]);
        if (st == PC_OK) printf("wrote %s/report.html and %s/report.svg\n", argv[optind], argv[optind]);
    } else {
        const char *out = ro.out ? ro.out : "report.html";
        st = pc_report_write_html((const char *const *)argv + optind, n, out);
        if (st == PC_OK) printf("wrote %s (%d runs)\n", out, n);
    }
    return st == PC_OK ? 0 : cli_fail(st);
}

/* ---------------------------------------------------------------- models */

static const char models_usage[] =
    "usage: parcnn models [--input CxHxW] [--classes N] [--print NAME]\n"
    "List the zoo models with parameter count, forward FLOPs per image and training FLOPs\n"
    "per image (conv and dense layers) for an input shape, or print one model file.\n"
    "\n";

typedef struct {
    int input[3]; /* channels, height, width */
    int classes;
    const char *print;
} models_opts;

static pc_flag_result parse_input_shape(const char *arg, void *field) {
    int *chw = field, c, h, w;
    if (sscanf(arg, "%dx%dx%d", &c, &h, &w) != 3 || c < 1 || h < 1 || w < 1 || c > 4) {
        pc_fail(PC_ERR_USAGE, "--input %s: expected CxHxW, e.g. 3x32x32", arg);
        return PC_FLAG_ERR_USAGE;
    }
    chw[0] = c, chw[1] = h, chw[2] = w;
    return PC_FLAG_OK;
}

#define AT(field) offsetof(models_opts, field)
static const pc_flag models_flags[] = {
    {"input", PC_FLAG_PARSED, AT(input), "CxHxW", .def = "1x28x28", .parse = parse_input_shape,
     .help = "the input shape the parameters and FLOPs are counted for"},
    {"classes", PC_FLAG_INT, AT(classes), "N", 2, 100000, "10", .help = "output classes"},
    {"print", PC_FLAG_STRING, AT(print), "NAME", .def_text = "list them all",
     .help = "print the model file of one zoo model"},
    {0}};
#undef AT

static int cmd_models(int argc, char **argv) {
    models_opts mo = {0};
    pc_flags_defaults(models_flags, &mo);
    int rc = cli_parse_flags("models", models_flags, &mo, models_usage, NULL, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    int c = mo.input[0], h = mo.input[1], w = mo.input[2], classes = mo.classes;
    const char *print = mo.print;
    if (print) {
        const char *t = pc_zoo_text(print);
        if (!t) return usage_error("models", "--print %s: no such zoo model", print);
        fputs(t, stdout);
        return 0;
    }
    printf("%-14s %12s %14s %12s  %s\n", "model", "parameters", "MFLOP/image", "train MFLOP",
           "description");
    for (int i = 0; i < pc_zoo_count(); i++) {
        pc_model *m;
        const char *name = pc_zoo_name(i);
        if (pc_model_create(name, c, h, w, classes, 1, &m) != PC_OK) {
            printf("%-14s %12s %14s %12s  (%s)\n", name, "-", "-", "-", pc_last_error());
            continue;
        }
        printf("%-14s %12lld %14.2f %12.2f  %s\n", name, (long long)m->n_params,
               pc_model_flops(m) / 1e6, pc_model_train_flops(m) / 1e6, pc_zoo_summary(name));
        pc_model_free(m);
    }
    printf("(input %dx%dx%d, %d classes; FLOPs count a multiply-add as 2. MFLOP/image: forward,\n"
           " all layers. train MFLOP: one training image, conv and dense layers only: forward +\n"
           " backward-data + backward-weights as training computes them: none into the input\n"
           " images or a frozen start, no weight gradient for frozen weights)\n",
           c, h, w, classes);
    return 0;
}

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the program, then the command's flags */
    const char *summary;
} command;

static const command commands[] = {
    {"train", cmd_train, "train a model (parcnn train --help)"},
    {"eval", cmd_eval, "evaluate a trained model on a dataset"},
    {"predict", cmd_predict, "classify samples with a trained model"},
    {"models", cmd_models, "list the model zoo"},
    {"recipes", cmd_recipes, "list the training recipes (parcnn train --recipe NAME)"},
    {"check-data", cmd_check_data, "decode a whole image folder and report bad files"},
    {"export", cmd_export, "write a model as ONNX"},
    {"import", cmd_import, "an ONNX model as a parcnn model"},
    {"inspect", cmd_inspect, "layers, shapes, parameters, FLOPs and metadata of a model file"},
    {"report", cmd_report, "rebuild a run's report.html, or one page comparing several runs"},
    {"bench", cmd_bench, "benchmarks: scaling, comm, loader, gemm, conv (parcnn bench --help)"},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void print_main_help(FILE *out) {
    fputs("usage: parcnn COMMAND [options]\n"
          "       parcnn --version\n"
          "Train convolutional image classifiers, sequentially or data-parallel, with results\n"
          "that do not depend on the number of workers.\n"
          "\n"
          "commands:\n",
          out);
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_main_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("parcnn %s\n", parcnn_version());
        return 0;
    }
    /* every command computes in the trainer's floating-point mode; threads inherit it */
    pc_fp_flush_denormals();
    start_signal_thread(); /* before MPI or any other library starts a thread */
    pc_comm *comm;
    if (pc_comm_init(&argc, &argv, &comm) != PC_OK) return cli_fail(PC_ERR_USAGE);
    const command *cmd = NULL;
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0) cmd = &commands[i];
    int rc = 2;
    if (cmd) {
        argv[1] = argv[0];
        rc = cmd->run(argc - 1, argv + 1);
    } else {
        fprintf(stderr, "parcnn: unknown command '%s' (try 'parcnn --help')\n", argv[1]);
    }
    /* A rank that stops on its own (a usage error only it has) must not leave the others
     * waiting in a collective until the time-out: stop the whole job. */
    if (rc != 0 && rc < 128 && pc_comm_size(comm) > 1) pc_comm_abort(comm, rc);
    pc_comm_finalize(comm);
    return rc;
}
