/* The flags of `parcnn train`, described once: pc_train_config_defaults, the command
 * line's option parser and its --help, the C API's parcnn_config_set and the cross-rank
 * settings check are all generated from pc_train_flags.
 *
 * A new flag is a field of pc_train_config (train/train.h) and one entry below: name,
 * type (core/flags.h), AT(field), metavar, range, default as the flag's own argument (or
 * def_text for a default no argument names) and help; recipes, --help and the API take
 * it from there. README.md's `train` table must name it (tests/cli_help.sh checks), and
 * tests/test_flags.c checks that its default parses. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm.h"
#include "train/early_stop.h"
#include "train/sampler.h"
#include "train/train.h"

_Static_assert(sizeof(pc_kernel_set) == sizeof(int) && sizeof(pc_conv_algo) == sizeof(int) &&
                   sizeof(pc_precision) == sizeof(int),
               "CHOICE flags write their enum fields as int");

const pc_flag_choice pc_kernel_choices[] = {
    {"auto", PC_KERNELS_AUTO}, {"onednn", PC_KERNELS_DNNL}, {"dnnl", PC_KERNELS_DNNL},
    {"ref", PC_KERNELS_REF},   {"reference", PC_KERNELS_REF}, {NULL, 0}};
const pc_flag_choice pc_precision_choices[] = {
    {"fp32", PC_PRECISION_FP32}, {"bf16", PC_PRECISION_BF16}, {NULL, 0}};
const pc_flag_choice pc_conv_algo_choices[] = {
    {"auto", PC_CONV_AUTO}, {"direct", PC_CONV_DIRECT}, {"winograd", PC_CONV_WINOGRAD}, {NULL, 0}};
static const pc_flag_choice channel_choices[] = {{"1", 1}, {"3", 3}, {NULL, 0}};
static const pc_flag_choice bad_image_choices[] = {{"fail", 0}, {"skip", 1}, {NULL, 0}};
static const pc_flag_choice reduce_choices[] = {{"deterministic", 0}, {"fast", 1}, {NULL, 0}};
static const pc_flag_choice exchange_choices[] = {
    {"auto", PC_EXCHANGE_AUTO}, {"messages", PC_EXCHANGE_MESSAGES}, {NULL, 0}};
static const pc_flag_choice monitor_choices[] = {
    {"val_loss", PC_MONITOR_VAL_LOSS}, {"val_acc", PC_MONITOR_VAL_ACC}, {NULL, 0}};
static const pc_flag_choice keep_choices[] = {{"last", 0}, {"best", 1}, {NULL, 0}};
static const pc_flag_choice sampler_choices[] = {
    {"shuffle", PC_SAMPLER_SHUFFLE}, {"balanced", PC_SAMPLER_BALANCED}, {NULL, 0}};

/* The parsers of structured flags; their messages name the flag. */
static pc_flag_result report(pc_status s) { return s == PC_OK ? PC_FLAG_OK : PC_FLAG_ERR_FAIL; }
static pc_flag_result parse_optimizer(const char *a, void *f) { return report(pc_opt_parse(a, f)); }
static pc_flag_result parse_schedule(const char *a, void *f) { return report(pc_sched_parse(a, f)); }
static pc_flag_result parse_lr_scale(const char *a, void *f) { return report(pc_lr_scale_parse(a, f)); }
static pc_flag_result parse_augment(const char *a, void *f) { return report(pc_augment_parse(a, f)); }
static pc_flag_result parse_tta(const char *a, void *f) { return report(pc_tta_parse(a, f)); }
static pc_flag_result parse_sync(const char *a, void *f) { return report(pc_sync_parse(a, f)); }
static pc_flag_result parse_freeze(const char *a, void *f) { return report(pc_transfer_parse_freeze(a, f)); }

#define AT(field) offsetof(pc_train_config, field)
#define MAX31 2147483647.0

const pc_flag pc_train_flags[] = {
    {"data", PC_FLAG_STRING, AT(data), "SPEC", .def = "fashion-mnist",
     .help = "fashion-mnist, mnist, idx:DIR, cifar10:DIR, cifar100:DIR, folder:DIR (image "
             "folders, see below)"},
    {"model", PC_FLAG_STRING, AT(model), "NAME|FILE", .def = "simple-cnn",
     .help = "zoo model (parcnn models lists them) or a model file (random initial weights "
             "from --seed); or a trained or imported model (FILE.safetensors, FILE.onnx): "
             "training starts from its weights and normalization; its input and classes must "
             "be the data's"},
    {"epochs", PC_FLAG_INT, AT(epochs), "N", 1, 100000, "12",
     .help = "passes over the training data"},
    {"batch", PC_FLAG_INT, AT(batch), "N", 1, 1 << 20, "128",
     .help = "GLOBAL batch size, whatever the worker count"},
    {"shard-size", PC_FLAG_INT, AT(shard_size), "N", 1, 1 << 20, "32",
     .help = "samples per shard; the batch is cut into shards, each worker processes whole "
             "shards; results depend on the batch and shard size but never on --workers"},
    {"workers", PC_FLAG_INT, AT(workers), "N", 1, 1024,
     .def_text = "the most workers up to the core count that divide the shard count",
     .help = "data-parallel replicas in this process; must divide the shard count"},
    {"threads", PC_FLAG_INT, AT(threads), "N", 1, 256, "1", .help = "intra-op threads per worker"},
    {"optimizer", PC_FLAG_PARSED, AT(opt.kind), "NAME", .def = "adam", .parse = parse_optimizer,
     .help = "sgd, adam or adamw"},
    {"lr", PC_FLAG_FLOAT, AT(sched.base_lr), "X", 1e-12, 100, "0.001",
     .help = "base learning rate"},
    {"momentum", PC_FLAG_FLOAT, AT(opt.momentum), "X", 0, 0.9999, "0.9", .help = "SGD momentum"},
    {"nesterov", PC_FLAG_SWITCH, AT(opt.nesterov), .lo = 1, .help = "Nesterov momentum for SGD"},
    {"weight-decay", PC_FLAG_FLOAT, AT(opt.weight_decay), "X", 0, 1, "0",
     .help = "L2 (sgd, adam) or decoupled (adamw) weight decay"},
    {"no-decay-bn-bias", PC_FLAG_SWITCH, AT(no_decay_bn_bias), .lo = 1,
     .help = "no weight decay on biases and batch-norm scales and shifts"},
    {"bias-lr-mult", PC_FLAG_FLOAT, AT(bias_lr_mult), "X", 1e-6, 1e4, "1",
     .help = "learning-rate multiplier of conv and dense biases; their weight decay is divided "
             "by X, so they decay per step as the weights do"},
    {"norm-bias-lr-mult", PC_FLAG_FLOAT, AT(norm_bias_lr_mult), "X", 1e-6, 1e4, "1",
     .help = "the same for batch-norm shifts (airbench uses 64 with SGD)"},
    {"schedule", PC_FLAG_PARSED, AT(sched.kind), "NAME", .def = "exp", .parse = parse_schedule,
     .help = "constant, exp, step, cosine or triangular"},
    {"decay-rate", PC_FLAG_FLOAT, AT(sched.decay_rate), "X", 1e-6, 1, "0.8",
     .help = "exp/step: factor per --decay-epochs"},
    {"decay-epochs", PC_FLAG_FLOAT, AT(sched.decay_epochs), "X", 1e-3, 1e6, "1",
     .help = "exp/step: period in epochs"},
    {"warmup-epochs", PC_FLAG_FLOAT, AT(sched.warmup_epochs), "X", 0, 1e6, "0",
     .help = "linear warm-up (not with triangular)"},
    {"peak-epoch", PC_FLAG_FLOAT, AT(sched.peak_epoch), "X", 0, 1e6, "-1",
     .def_text = "20% of --epochs",
     .help = "triangular (airbench's one-cycle): linear from --lr x --start-factor at step 0 "
             "up to --lr at epoch X, then linear down to 0 at the end of --epochs"},
    {"start-factor", PC_FLAG_FLOAT, AT(sched.start_factor), "F", 0, 1, "0.2",
     .help = "triangular: the first step's fraction of --lr"},
    {"lr-scale", PC_FLAG_PARSED, AT(lr_scale), "MODE", .def = "none", .parse = parse_lr_scale,
     .help = "none, linear or sqrt: multiply --lr by B/R or sqrt(B/R) for global batch B and "
             "reference batch R (Goyal et al.)"},
    {"lr-ref-batch", PC_FLAG_INT, AT(lr_ref_batch), "R", 1, 1 << 20, "128",
     .help = "the reference batch of --lr-scale"},
    {"label-smoothing", PC_FLAG_FLOAT, AT(label_smoothing), "X", 0, 0.999, "0",
     .help = "label smoothing of the cross-entropy loss"},
    {"ema", PC_FLAG_FLOAT, AT(ema), "DECAY", 0, 1, .def_text = "off", .open = 1,
     .expect = "a decay in (0, 1), e.g. 0.999",
     .help = "keep an exponential moving average of the weights and batch-norm statistics, "
             "updated after every step (e.g. 0.999), with timm's warm-up: decay "
             "min(DECAY, (1+t)/(10+t)) at step t; the epoch metrics and model.safetensors are "
             "of the average, the checkpoint keeps both"},
    {"lookahead", PC_FLAG_INT, AT(lookahead), "K", 1, 1000000, .def_text = "off",
     .help = "airbench's lookahead: after every K-th step (and the last) the slow weights move "
             "to d slow + (1-d) weights and training goes on from them; d = 0.95^K (s/S)^3 "
             "after step s of S (not with --ema)"},
    {"seed", PC_FLAG_UINT64, AT(seed), "N", 0, MAX31, "1",
     .help = "seed of the initialization, the data order and the augmentation"},
    {"ensemble", PC_FLAG_INT, AT(ensemble), "K", 1, 64, .def_text = "1",
     .help = "train K models one after another (seeds N, N+1, ...; into DIR/member-1 ... "
             "DIR/member-K) and end with the test metrics of their ensemble, the class "
             "probabilities (after --tta) averaged, also in DIR/ensemble.json; `parcnn eval "
             "--weights A,B` rates an ensemble of saved models"},
    {"augment", PC_FLAG_PARSED, AT(augment), "SPEC", .def_text = "none", .parse = parse_augment,
     .help = "training-time augmentation, comma-separated items, e.g. flip,crop=4 or "
             "zoom=0.8,shear=10,rotate=15,translate=0.1 or brightness=0.2,contrast=0.2,cutout=0.5 "
             "(never applied to evaluation); flip=alt is airbench's alternating flip: each image mirrored in "
             "every other epoch, from a random first choice per image; fill=constant (zeros, "
             "the default), nearest or reflect: what crop, zoom, shear, rotate and translate "
             "bring in from outside"},
    {"tta", PC_FLAG_PARSED, AT(tta), "MODE", .def_text = "none", .parse = parse_tta,
     .help = "test-time augmentation of the final evaluation (the epoch lines stay plain: every "
             "view costs a forward pass): flip (the image and its mirror) or flip,translate=N "
             "(airbench's: also shifted by (N, N) and (-N, -N) pixels, reflect-padded)"},
    {"loader-threads", PC_FLAG_INT, AT(loader_threads), "N", 0, 64, "1",
     .help = "threads preparing the next step's batch while the workers compute (0: workers "
             "assemble their own input)"},
    {.type = PC_FLAG_SECTION,
     .help = "image folders (--data folder:DIR, DIR/CLASS/*.jpg|png or "
             "DIR/{train,test|val}/CLASS/):"},
    {"image-size", PC_FLAG_INT, AT(folder.image_size), "N", 4, 4096, "32",
     .help = "resize every image to N x N"},
    {"channels", PC_FLAG_CHOICE, AT(folder.channels), "N", .choices = channel_choices,
     .expect = "1 or 3", .def_text = "1 if all images are gray, else 3",
     .help = "1 (gray) or 3 (RGB)"},
    {"val-split", PC_FLAG_FLOAT, AT(folder.val_split), "F", 0.001, 0.9, .def_text = "none",
     .help = "hold out a stratified fraction F of the training images as the validation set "
             "of every epoch's val_loss and val_acc (--early-stop, --keep best): for a folder "
             "without test/ or val/ the held-out files are its evaluation set (their lists go to "
             "--out); data with a test set keep it for the final evaluation (any --data; images "
             "in memory)"},
    {"cache", PC_FLAG_STRING, AT(folder.cache), "MODE", .def = "memory",
     .help = "memory (decode once at start), a directory for a decoded-image cache rebuilt "
             "when the folder changes, or none: check every image at start, then decode each "
             "batch's images when it is assembled (little memory; under MPI each rank decodes "
             "only its own shards)"},
    {"on-bad-image", PC_FLAG_CHOICE, AT(folder.on_bad_skip), "M", .def = "fail",
     .choices = bad_image_choices, .expect = "skip or fail",
     .help = "fail (stop naming the file) or skip (drop, count)"},
    {"decode-threads", PC_FLAG_INT, AT(folder.decode_threads), "N", 1, 256,
     .def_text = "one per core, at most 16", .help = "threads decoding images at start"},
    {.type = PC_FLAG_SECTION, .help = "transfer learning (docs/transfer.md):"},
    {"init", PC_FLAG_STRING, AT(transfer.init), "MODEL", .def_text = "none",
     .help = "start from a pretrained network (.onnx or .safetensors), with its input size, "
             "channels and normalization: images resized (shorter side to size/0.875) and "
             "centre-cropped, its last dense layer replaced by a fresh head for the data's "
             "classes"},
    {"head", PC_FLAG_INT, AT(transfer.head), "CLASSES", 1, 1 << 20, .def_text = "the data's",
     .help = "the new head's classes (must match the data's)"},
    {"cut", PC_FLAG_STRING, AT(transfer.cut), "LAYER", .def_text = "none",
     .help = "drop every layer after LAYER and add global average pooling and the new head"},
    {"freeze", PC_FLAG_PARSED, AT(transfer), "MODE", .def = "none", .parse = parse_freeze,
     .help = "all-but-head, up-to=LAYER or none: frozen layers are not updated and their "
             "batch norms run in inference mode"},
    {"unfreeze-at", PC_FLAG_FLOAT, AT(transfer.unfreeze_at), "EPOCH", 1e-6, 1e6,
     .def_text = "never", .help = "the frozen layers train from this epoch on"},
    {"finetune-lr-mult", PC_FLAG_FLOAT, AT(transfer.finetune_lr_mult), "X", 1e-6, 1e4, "1",
     .help = "learning-rate multiplier of the layers unfrozen by --unfreeze-at"},
    {"bn-recalibrate", PC_FLAG_INT, AT(transfer.bn_recalibrate), "N", 1, 2147483647,
     .def_text = "none",
     .help = "with --init: before training, recompute every batch norm's running statistics "
             "from the first N training images (whole shards); with --sync fusion: the same "
             "for the replicas' weight average at the end"},
    {"feature-views", PC_FLAG_INT, AT(transfer.feature_views), "K", 1, 1000, "1",
     .help = "when only the head trains, the frozen backbone's output is computed once per "
             "image and the head trains on it (with --cache DIR also kept there, "
             "checksummed): K augmented views per training image (needs --augment)"},
    {"no-feature-cache", PC_FLAG_SWITCH, AT(transfer.no_feature_cache), .lo = 1,
     .help = "train through the frozen backbone instead (the same result, slower)"},
    {.type = PC_FLAG_SECTION, .help = "run, output and hardware:"},
    {"limit", PC_FLAG_INT64, AT(limit), "N", 1, MAX31, .def_text = "all",
     .help = "use only the first N training images"},
    {"eval-limit", PC_FLAG_INT64, AT(eval_limit), "N", 1, MAX31, .def_text = "all",
     .help = "evaluate on only the first N test images"},
    {"max-steps", PC_FLAG_INT64, AT(max_steps), "N", 1, MAX31, .def_text = "none",
     .help = "stop after N optimizer steps in total (checkpoint kept)"},
    {"checkpoint-every", PC_FLAG_INT64, AT(checkpoint_every), "N", 1, MAX31,
     .def_text = "at the end of each epoch",
     .help = "also write DIR/checkpoint.safetensors every N optimizer steps; --resume goes on "
             "from the middle of the epoch with the bytes of an uninterrupted run (SIGINT and "
             "SIGTERM also finish the step, write the checkpoint and exit 130 / 143)"},
    {"checkpoint-minutes", PC_FLAG_DOUBLE, AT(checkpoint_minutes), "M", 1e-9, 1e7,
     .def_text = "at the end of each epoch",
     .help = "also write DIR/checkpoint.safetensors after the step during which M minutes "
             "(a fraction is fine) have passed since the last one (rank 0's clock decides "
             "for all ranks)"},
    {"out", PC_FLAG_STRING, AT(out_dir), "DIR", .def_text = "none: write nothing",
     .help = "write metrics.jsonl, model.safetensors, checkpoint.safetensors, settings.json, "
             "and at the end eval.json (the final metrics, as eval --json), samples.json, "
             "report.html (open it in a browser: curves, time split, confusion matrix, "
             "per-class metrics, test images, settings; parcnn report rebuilds it) and "
             "report.svg"},
    {"early-stop", PC_FLAG_INT, AT(early_stop), "PATIENCE", 1, 100000, .def_text = "off",
     .help = "stop when --monitor has not improved for PATIENCE epochs in a row (Keras's "
             "EarlyStopping); the checkpoint carries the best value and the count, so "
             "--resume stops where an uninterrupted run does"},
    {"monitor", PC_FLAG_CHOICE, AT(monitor), "M", .choices = monitor_choices,
     .expect = "val_loss or val_acc", .def_text = "val_loss",
     .help = "what --early-stop and --keep best watch, each epoch on the evaluation set: "
             "val_loss (lower is better) or val_acc (higher is better); hold out a "
             "validation set with --val-split, or the test set chooses the epoch (warned)"},
    {"min-delta", PC_FLAG_DOUBLE, AT(min_delta), "X", 0, 1e6, "0",
     .help = "an improvement must beat the best value so far by more than X"},
    {"keep", PC_FLAG_CHOICE, AT(keep_best), "WHICH", .def = "last", .choices = keep_choices,
     .expect = "last or best",
     .help = "last (model.safetensors: the last epoch's) or best: also write "
             "DIR/model-best.safetensors whenever --monitor improves (model.safetensors stays "
             "the last epoch's; eval.json names the best epoch)"},
    {"resume", PC_FLAG_SWITCH, AT(resume), .lo = 1,
     .help = "continue from DIR/checkpoint.safetensors (same settings, any worker count): "
             "bit-identical to an uninterrupted run"},
    {"overwrite", PC_FLAG_SWITCH, AT(overwrite), .lo = 1,
     .help = "start a fresh run in an --out DIR that already holds one"},
    {"reduce", PC_FLAG_CHOICE, AT(reduce_fast), "MODE", .def = "deterministic",
     .choices = reduce_choices, .expect = "deterministic or fast",
     .help = "under MPI: deterministic (fixed-tree reduce-scatter, identical bytes for any "
             "ranks x workers) or fast (MPI_Iallreduce of 1 MiB buckets started while backward "
             "runs, as PyTorch DDP; NOT bit-reproducible across rank counts)"},
    {"exchange", PC_FLAG_CHOICE, AT(exchange), "HOW", .def = "auto",
     .choices = exchange_choices, .expect = "auto or messages",
     .help = "under MPI, deterministic mode: auto (ranks that all run on one machine read "
             "each other's gradient sums and parameter chunks in shared memory; across "
             "machines, messages) or messages (point-to-point transfers started while "
             "backward runs, as between machines); the same bytes either way"},
    {"sync", PC_FLAG_PARSED, AT(sync), "S", .def = "allreduce", .parse = parse_sync,
     .help = "allreduce (the gradients summed every step), local-sgd=K: --replicas models, "
             "each stepping on its own 1/R of every batch with its own optimizer state, their "
             "weights and batch-norm statistics averaged every K steps and at every epoch's end, "
             "or fusion: R models each trained on its own 1/R of the training set for the whole "
             "run, then fused by weight averaging (the saved model) and by ensembling, each "
             "rated (DIR/fusion.json, DIR/replica-K.safetensors); identical bytes for any ranks "
             "x workers dividing R; or ps (MPI): a parameter server, see --servers, --staleness "
             "and --async (docs/strategies.md)"},
    {"replicas", PC_FLAG_INT, AT(replicas), "R", 1, 4096, .def_text = "none: required by local-sgd and fusion",
     .help = "local-sgd and fusion: the number of replicas, a multiple of ranks x --workers dividing the "
             "shard count (the results depend on R, never on ranks or workers)"},
    {"servers", PC_FLAG_INT, AT(servers), "S", 1, 4096, "-1", .def_text = "1 with --sync ps",
     .help = "ps: the last S ranks hold the parameters in chunks and apply the optimizer; "
             "the others compute gradients (fewer than the ranks)"},
    {"staleness", PC_FLAG_INT, AT(staleness), "N", 0, 64, "-1", .def_text = "0 with --sync ps",
     .help = "ps: step t computes its gradient on the weights of update t - N (within an "
             "epoch): a fixed schedule, the same bytes every run; 0 gives allreduce's bytes; "
             "N > 0 checkpoints and resumes only at epochs' ends"},
    {"async", PC_FLAG_SWITCH, AT(ps_async), .lo = 1,
     .help = "ps: each server applies every push as it arrives and replies with its current "
             "weights: asynchronous, NOT reproducible"},
    {"average-opt-state", PC_FLAG_SWITCH, AT(average_opt_state), .lo = 1,
     .help = "local-sgd: average the optimizer state too (with Adam 3x the bytes of an average)"},
    {"timeout", PC_FLAG_DOUBLE, AT(timeout), "SECONDS", 0, 1e7, "300",
     .help = "under MPI: stop all ranks when a collective waits longer (0 waits forever)"},
    {"kernels", PC_FLAG_CHOICE, AT(exec.kernels), "K", .def = "auto", .choices = pc_kernel_choices,
     .expect = "onednn or ref", .def_text = "auto: onednn when built with it, else ref",
     .help = "onednn or ref"},
    {"precision", PC_FLAG_CHOICE, AT(exec.precision), "P", .def = "fp32",
     .choices = pc_precision_choices, .expect = "fp32 or bf16",
     .help = "fp32 or bf16: convolutions and dense layers in bfloat16 (AVX512_BF16 through "
             "oneDNN, fp32 accumulation), fp32 master weights, optimizer and other layers; "
             "emulated (same rounding, fp32 speed) where oneDNN has no bf16 kernels"},
    {"conv-algo", PC_FLAG_CHOICE, AT(exec.conv_algo), "A", .def = "auto",
     .choices = pc_conv_algo_choices, .expect = "auto, direct or winograd",
     .help = "auto: Winograd F(4x4,3x3) / F(4x4,5x5), in fp32, for convolutions with stride 1, "
             "\"same\" padding and enough channels to be faster (in bf16: to beat the bf16 "
             "kernels), oneDNN's direct algorithm elsewhere; direct: direct everywhere; "
             "winograd: wherever it applies. Results differ by rounding between algorithms, "
             "never across worker counts; --profile marks Winograd layers conv:wino"},
    {"no-progress", PC_FLAG_SWITCH, AT(progress), .lo = 0,
     .def_text = "a bar when stderr is a terminal",
     .help = "no live progress bar even on a terminal"},
    {"profile", PC_FLAG_SWITCH, AT(profile), .lo = 1,
     .help = "per layer forward/backward ms and GFLOP/s per step, and the "
             "data/reduce/communication/optimizer time (also DIR/profile.json)"},
    {"class-weights", PC_FLAG_STRING, AT(class_weights), "balanced|FILE", .def_text = "none",
     .help = "weight each sample's loss by its class's weight, normalized by the batch's "
             "summed weights (PyTorch's CrossEntropyLoss(weight=...)): balanced gives n / "
             "(classes x class count) (scikit-learn's 'balanced'), FILE one weight per line in "
             "class order, WEIGHT or CLASS WEIGHT; the reported train loss stays unweighted; "
             "not with --label-smoothing"},
    {"sampler", PC_FLAG_CHOICE, AT(sampler), "S", .def = "shuffle", .choices = sampler_choices,
     .expect = "shuffle or balanced",
     .help = "the order of each epoch's training samples: shuffle (a permutation of them "
             "all) or balanced (as many draws with replacement, each class equally likely: "
             "PyTorch's WeightedRandomSampler with weights 1 / class count, for imbalanced "
             "classes); a function of the seed and the epoch, so the same for any worker or "
             "rank count"},
    {"tensorboard", PC_FLAG_STRING, AT(tensorboard), "DIR", .def_text = "none",
     .help = "write TensorBoard event files into DIR (tensorboard --logdir DIR): per epoch the "
             "train and test loss and accuracy, lr, images/s and seconds (epoch/...), the "
             "batch loss, accuracy and lr every --tensorboard-every steps (batch/...), and the "
             "final test metrics (final/...)"},
    {"tensorboard-every", PC_FLAG_INT, AT(tensorboard_every), "N", 0, MAX31, "20",
     .help = "steps between the batch/... scalars of --tensorboard (0: none)"},
    {0}};

void pc_train_config_defaults(pc_train_config *c) {
    memset(c, 0, sizeof *c);
    pc_folder_options_default(&c->folder);
    c->opt.beta1 = 0.9f;
    c->opt.beta2 = 0.999f;
    c->opt.eps = 1e-8f;
    c->log = stdout;
    /* Every default parses: tests/test_flags.c checks each one. */
    pc_flags_defaults(pc_train_flags, c);
}

int pc_train_auto_workers(int batch, int shard_size, int ranks) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int shards = shard_size > 0 && batch % shard_size == 0 ? batch / shard_size : 1;
    if (ranks > 1 && shards % ranks == 0) shards /= ranks;
    int workers = 1;
    for (int w = 1; w <= shards && w <= cores; w++)
        if (shards % w == 0) workers = w;
    return workers;
}

pc_status pc_train_config_resolve(pc_train_config *c) {
    if (c->workers == 0)
        c->workers = pc_train_auto_workers(c->batch, c->shard_size, pc_comm_size(pc_comm_world()));
    if (c->exec.precision == PC_PRECISION_BF16 && c->exec.kernels == PC_KERNELS_REF)
        return pc_fail(PC_ERR_USAGE, "--precision bf16 runs on the oneDNN kernels, not "
                                     "--kernels ref");
    return PC_OK;
}
