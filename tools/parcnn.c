/* parcnn: the command line. Subcommands train, eval, predict, models.
 * Exit status: 0 success, 1 data or I/O error, 2 usage error. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
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
#include "cli.h"
#include "interchange.h"

int cmd_bench(int argc, char **argv); /* tools/bench.c */

/* Report an error and choose the exit status. Under MPI, the other ranks may be
 * waiting in a collective, so the whole job stops; an error that every rank hit at
 * once is reported by rank 0 alone (the others give it a moment to do so). */
static int fail(pc_status st) {
    int code = st == PC_ERR_USAGE ? 2 : 1;
    pc_comm *comm = pc_comm_world();
    int rank = pc_comm_rank(comm);
    int shared = strcmp(pc_last_error(), PC_SHARED_ERROR) == 0;
    if (rank == 0)
        fprintf(stderr, "parcnn: error: %s\n", pc_last_error());
    else if (!shared)
        fprintf(stderr, "[rank %d] parcnn: error: %s\n", rank, pc_last_error());
    if (pc_comm_size(comm) > 1) {
        if (rank != 0 && shared) sleep(2);
        pc_comm_abort(comm, code);
    }
    return code;
}

static int parse_kernels(const char *s, pc_kernel_set *k) {
    if (strcmp(s, "auto") == 0) *k = PC_KERNELS_AUTO;
    else if (strcmp(s, "ref") == 0 || strcmp(s, "reference") == 0) *k = PC_KERNELS_REF;
    else if (strcmp(s, "onednn") == 0 || strcmp(s, "dnnl") == 0) *k = PC_KERNELS_DNNL;
    else return -1;
    return 0;
}

static int parse_conv_algo(const char *cmd, const char *s, pc_conv_algo *a) {
    if (strcmp(s, "auto") == 0) *a = PC_CONV_AUTO;
    else if (strcmp(s, "direct") == 0) *a = PC_CONV_DIRECT;
    else if (strcmp(s, "winograd") == 0) *a = PC_CONV_WINOGRAD;
    else return usage_error(cmd, "--conv-algo %s: expected auto, direct or winograd", s);
    return 0;
}

/* --precision bf16: the oneDNN kernels in bf16 mixed precision (refused with --kernels ref). */
static int apply_precision(const char *cmd, const char *precision, pc_kernel_set *k) {
    if (!precision || strcmp(precision, "fp32") == 0) return 0;
    if (strcmp(precision, "bf16") != 0)
        return usage_error(cmd, "--precision %s: expected fp32 or bf16", precision);
    if (*k == PC_KERNELS_REF)
        return usage_error(cmd, "%s", "--precision bf16 runs on the oneDNN kernels, not --kernels ref");
    *k = PC_KERNELS_DNNL_BF16;
    return 0;
}

/* ---------------------------------------------------------------- train */

static const char train_help[] =
    "usage: parcnn train [--recipe NAME] [options]\n"
    "Train a model; prints one line per epoch and the final test metrics.\n"
    "\n"
    "  --recipe NAME        start from a shipped recipe's flags (parcnn recipes lists them);\n"
    "                       flags given here override the recipe's\n"
    "  --data SPEC          fashion-mnist (default), mnist, idx:DIR, cifar10:DIR, cifar100:DIR,\n"
    "                       folder:DIR (image folders, see below)\n"
    "  --model NAME|FILE    zoo model (parcnn models lists them) or a model file\n"
    "                       (default simple-cnn)\n"
    "  --epochs N           default 12\n"
    "  --batch N            GLOBAL batch size, whatever the worker count (default 128)\n"
    "  --shard-size N       samples per shard (default 32); the batch is cut into shards,\n"
    "                       each worker processes whole shards; results depend on the batch\n"
    "                       and shard size but never on --workers\n"
    "  --workers N          data-parallel replicas in this process; must divide the shard\n"
    "                       count (default: the most workers up to the core count that do)\n"
    "  --threads N          intra-op threads per worker (default 1)\n"
    "  --optimizer NAME     sgd, adam (default) or adamw\n"
    "  --lr X               base learning rate (default 0.001)\n"
    "  --momentum X         SGD momentum (default 0.9)\n"
    "  --nesterov           Nesterov momentum for SGD\n"
    "  --weight-decay X     L2 (sgd, adam) or decoupled (adamw) weight decay (default 0)\n"
    "  --no-decay-bn-bias   no weight decay on biases and batch-norm scales and shifts\n"
    "  --bias-lr-mult X     learning-rate multiplier of conv and dense biases; their weight\n"
    "                       decay is divided by X, so they decay per step as the weights\n"
    "                       do (default 1)\n"
    "  --norm-bias-lr-mult X  the same for batch-norm shifts (default 1; airbench uses 64\n"
    "                       with SGD)\n"
    "  --schedule NAME      constant, exp (default), step, cosine or triangular\n"
    "  --decay-rate X       exp/step: factor per --decay-epochs (default 0.8)\n"
    "  --decay-epochs X     exp/step: period in epochs (default 1)\n"
    "  --warmup-epochs X    linear warm-up (default 0; not with triangular)\n"
    "  --peak-epoch X       triangular (airbench's one-cycle): linear from --lr x\n"
    "                       --start-factor at step 0 up to --lr at epoch X, then linear\n"
    "                       down to 0 at the end of --epochs (default: 20% of --epochs)\n"
    "  --start-factor F     triangular: the first step's fraction of --lr (default 0.2)\n"
    "  --lr-scale MODE      none (default), linear or sqrt: multiply --lr by B/R or sqrt(B/R)\n"
    "                       for global batch B and reference batch R (Goyal et al.)\n"
    "  --lr-ref-batch R     the reference batch of --lr-scale (default 128)\n"
    "  --label-smoothing X  default 0\n"
    "  --ema DECAY          keep an exponential moving average of the weights and batch-norm\n"
    "                       statistics, updated after every step (e.g. 0.999), with timm's\n"
    "                       warm-up: decay min(DECAY, (1+t)/(10+t)) at step t; the epoch\n"
    "                       metrics and model.safetensors are of the average, the checkpoint\n"
    "                       keeps both (default off)\n"
    "  --lookahead K        airbench's lookahead: after every K-th step (and the last) the\n"
    "                       slow weights move to d slow + (1-d) weights and training goes on\n"
    "                       from them; d = 0.95^K (s/S)^3 after step s of S (default off;\n"
    "                       not with --ema)\n"
    "  --seed N             default 1\n"
    "  --ensemble K         train K models one after another (seeds N, N+1, ...; into\n"
    "                       DIR/member-1 ... DIR/member-K) and end with the test metrics of\n"
    "                       their ensemble, the class probabilities (after --tta) averaged,\n"
    "                       also in DIR/ensemble.json; `parcnn eval --weights A,B` rates an\n"
    "                       ensemble of saved models (default 1)\n"
    "  --augment SPEC       training-time augmentation, e.g. flip,crop=4,zoom=0.8,shear=10,\n"
    "                       rotate=15,translate=0.1,brightness=0.2,contrast=0.2,cutout=0.5\n"
    "                       (default none; never applied to evaluation); flip=alt is\n"
    "                       airbench's alternating flip: each image mirrored in every\n"
    "                       other epoch, from a random first choice per image;\n"
    "                       fill=constant (zeros, default), nearest or reflect: what crop,\n"
    "                       zoom, shear, rotate and translate bring in from outside\n"
    "  --tta MODE           test-time augmentation of the final evaluation (the epoch lines\n"
    "                       stay plain: every view costs a forward pass): flip (the image\n"
    "                       and its mirror) or flip,translate=N (airbench's: also shifted\n"
    "                       by (N, N) and (-N, -N) pixels, reflect-padded); default none\n"
    "  --loader-threads N   threads preparing the next step's batch while the workers\n"
    "                       compute (default 1; 0: workers assemble their own input)\n"
    "image folders (--data folder:DIR, DIR/CLASS/*.jpg|png or DIR/{train,test|val}/CLASS/):\n"
    "  --image-size N       resize every image to N x N (default 32)\n"
    "  --channels N         1 (gray) or 3 (RGB); default: 1 if all images are gray, else 3\n"
    "  --val-split F        hold out a stratified fraction F for evaluation when there is\n"
    "                       no test/ folder; the file lists go to --out\n"
    "  --cache MODE         memory (default: decode once at start), a directory for a\n"
    "                       decoded-image cache rebuilt when the folder changes, or none:\n"
    "                       check every image at start, then decode each batch's images\n"
    "                       when it is assembled (little memory; under MPI each rank\n"
    "                       decodes only its own shards)\n"
    "  --on-bad-image M     fail (default: stop naming the file) or skip (drop, count)\n"
    "  --decode-threads N   threads decoding images at start (default: the cores)\n"
    "  --limit N            use only the first N training images\n"
    "  --eval-limit N       evaluate on only the first N test images\n"
    "  --max-steps N        stop after N optimizer steps in total (checkpoint kept)\n"
    "  --out DIR            write metrics.jsonl, model.safetensors, checkpoint.safetensors,\n"
    "                       and at the end report.svg (test accuracy against time and epochs)\n"
    "  --resume             continue from DIR/checkpoint.safetensors (same settings, any\n"
    "                       worker count): bit-identical to an uninterrupted run\n"
    "  --reduce MODE        under MPI: deterministic (default; fixed-tree reduce-scatter,\n"
    "                       identical bytes for any ranks x workers) or fast (MPI_Iallreduce\n"
    "                       of 1 MiB buckets started while backward runs, as PyTorch DDP;\n"
    "                       NOT bit-reproducible across rank counts)\n"
    "  --timeout SECONDS    under MPI: stop all ranks when a collective waits longer\n"
    "                       (default 300; 0 waits forever)\n"
    "  --overwrite          start a fresh run in an --out DIR that already holds one\n"
    "  --kernels K          onednn (default when built with it) or ref\n"
    "  --precision P        fp32 (default) or bf16: convolutions and dense layers in\n"
    "                       bfloat16 (AVX512_BF16 through oneDNN, fp32 accumulation),\n"
    "                       fp32 master weights, optimizer and other layers; emulated\n"
    "                       (same rounding, fp32 speed) where oneDNN has no bf16 kernels\n"
    "  --conv-algo A        auto (default): Winograd F(4x4,3x3) / F(4x4,5x5), in fp32,\n"
    "                       for convolutions with stride 1, \"same\" padding and enough\n"
    "                       channels to be faster (in bf16: to beat the bf16 kernels),\n"
    "                       oneDNN's direct algorithm elsewhere;\n"
    "                       direct: direct everywhere; winograd: wherever it applies.\n"
    "                       Results differ by rounding between algorithms, never across\n"
    "                       worker counts; --profile marks Winograd layers conv:wino\n"
    "  --no-progress        no live progress bar even on a terminal\n"
    "  --profile            per layer forward/backward ms and GFLOP/s per step, and the\n"
    "                       data/reduce/communication/optimizer time (also DIR/profile.json)\n";

static int train_args(int argc, char **argv) {
    pc_train_config c;
    pc_train_config_defaults(&c);
    c.workers = 0; /* chosen after the flags are known */
    c.progress = isatty(2);
    enum {
        O_DATA = 256, O_MODEL, O_EPOCHS, O_BATCH, O_SHARD, O_WORKERS, O_THREADS, O_OPT, O_LR,
        O_MOM, O_NEST, O_WD, O_NODECAY, O_BIASLR, O_NORMBIASLR, O_EMA, O_LOOKAHEAD, O_SCHED, O_DRATE, O_DEPOCHS, O_WARM,
        O_PEAK, O_START, O_SMOOTH, O_LRSCALE, O_LRREF, O_SEED, O_LIMIT, O_MAXSTEPS, O_EVALLIMIT,
        O_OUT, O_RESUME, O_OVERWRITE, O_ENSEMBLE, O_TIMEOUT, O_REDUCE, O_AUG, O_TTA, O_LTHREADS, O_ISIZE,
        O_CHANNELS, O_VSPLIT, O_CACHE, O_BAD, O_DTHREADS, O_KERNELS, O_PRECISION, O_CONVALGO, O_NOPROG, O_PROFILE, O_HELP
    };
    static const struct option opts[] = {
        {"data", 1, 0, O_DATA}, {"model", 1, 0, O_MODEL}, {"epochs", 1, 0, O_EPOCHS},
        {"batch", 1, 0, O_BATCH}, {"shard-size", 1, 0, O_SHARD}, {"workers", 1, 0, O_WORKERS},
        {"threads", 1, 0, O_THREADS}, {"optimizer", 1, 0, O_OPT}, {"lr", 1, 0, O_LR},
        {"momentum", 1, 0, O_MOM}, {"nesterov", 0, 0, O_NEST}, {"weight-decay", 1, 0, O_WD},
        {"no-decay-bn-bias", 0, 0, O_NODECAY}, {"bias-lr-mult", 1, 0, O_BIASLR},
        {"norm-bias-lr-mult", 1, 0, O_NORMBIASLR},
        {"ema", 1, 0, O_EMA}, {"lookahead", 1, 0, O_LOOKAHEAD},
        {"schedule", 1, 0, O_SCHED}, {"decay-rate", 1, 0, O_DRATE},
        {"decay-epochs", 1, 0, O_DEPOCHS}, {"warmup-epochs", 1, 0, O_WARM},
        {"peak-epoch", 1, 0, O_PEAK}, {"start-factor", 1, 0, O_START},
        {"label-smoothing", 1, 0, O_SMOOTH}, {"lr-scale", 1, 0, O_LRSCALE}, {"lr-ref-batch", 1, 0, O_LRREF}, {"seed", 1, 0, O_SEED}, {"ensemble", 1, 0, O_ENSEMBLE}, {"limit", 1, 0, O_LIMIT},
        {"max-steps", 1, 0, O_MAXSTEPS}, {"eval-limit", 1, 0, O_EVALLIMIT}, {"out", 1, 0, O_OUT}, {"resume", 0, 0, O_RESUME}, {"overwrite", 0, 0, O_OVERWRITE}, {"timeout", 1, 0, O_TIMEOUT}, {"reduce", 1, 0, O_REDUCE},
        {"augment", 1, 0, O_AUG}, {"tta", 1, 0, O_TTA}, {"loader-threads", 1, 0, O_LTHREADS},
        {"image-size", 1, 0, O_ISIZE},
        {"channels", 1, 0, O_CHANNELS}, {"val-split", 1, 0, O_VSPLIT}, {"cache", 1, 0, O_CACHE},
        {"on-bad-image", 1, 0, O_BAD}, {"decode-threads", 1, 0, O_DTHREADS},
        {"kernels", 1, 0, O_KERNELS}, {"precision", 1, 0, O_PRECISION},
        {"conv-algo", 1, 0, O_CONVALGO}, {"no-progress", 0, 0, O_NOPROG}, {"profile", 0, 0, O_PROFILE}, {"help", 0, 0, O_HELP},
        {0, 0, 0, 0}};
    long v;
    int o;
    const char *precision = NULL;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (o) {
        case O_DATA: c.data = optarg; break;
        case O_MODEL: c.model = optarg; break;
        case O_EPOCHS: bad = parse_long("train", "--epochs", optarg, 1, 100000, &v); c.epochs = (int)v; break;
        case O_BATCH: bad = parse_long("train", "--batch", optarg, 1, 1 << 20, &v); c.batch = (int)v; break;
        case O_SHARD: bad = parse_long("train", "--shard-size", optarg, 1, 1 << 20, &v); c.shard_size = (int)v; break;
        case O_WORKERS: bad = parse_long("train", "--workers", optarg, 1, 1024, &v); c.workers = (int)v; break;
        case O_THREADS: bad = parse_long("train", "--threads", optarg, 1, 256, &v); c.threads = (int)v; break;
        case O_OPT:
            if (pc_opt_parse(optarg, &c.opt.kind) != PC_OK) return fail(PC_ERR_USAGE);
            break;
        case O_LR: bad = parse_float("train", "--lr", optarg, 1e-12, 100, &c.sched.base_lr); break;
        case O_MOM: bad = parse_float("train", "--momentum", optarg, 0, 0.9999, &c.opt.momentum); break;
        case O_NEST: c.opt.nesterov = 1; break;
        case O_WD: bad = parse_float("train", "--weight-decay", optarg, 0, 1, &c.opt.weight_decay); break;
        case O_NODECAY: c.no_decay_bn_bias = 1; break;
        case O_EMA:
            bad = parse_float("train", "--ema", optarg, 0, 1, &c.ema);
            if (!bad && !(c.ema > 0 && c.ema < 1))
                return usage_error("train", "--ema %s: expected a decay in (0, 1), e.g. 0.999", optarg);
            break;
        case O_LOOKAHEAD: bad = parse_long("train", "--lookahead", optarg, 1, 1000000, &v); c.lookahead = (int)v; break;
        case O_BIASLR: bad = parse_float("train", "--bias-lr-mult", optarg, 1e-6, 1e4, &c.bias_lr_mult); break;
        case O_NORMBIASLR:
            bad = parse_float("train", "--norm-bias-lr-mult", optarg, 1e-6, 1e4, &c.norm_bias_lr_mult);
            break;
        case O_SCHED:
            if (pc_sched_parse(optarg, &c.sched.kind) != PC_OK) return fail(PC_ERR_USAGE);
            break;
        case O_DRATE: bad = parse_float("train", "--decay-rate", optarg, 1e-6, 1, &c.sched.decay_rate); break;
        case O_DEPOCHS: bad = parse_float("train", "--decay-epochs", optarg, 1e-3, 1e6, &c.sched.decay_epochs); break;
        case O_WARM: bad = parse_float("train", "--warmup-epochs", optarg, 0, 1e6, &c.sched.warmup_epochs); break;
        case O_PEAK: bad = parse_float("train", "--peak-epoch", optarg, 0, 1e6, &c.sched.peak_epoch); break;
        case O_START: bad = parse_float("train", "--start-factor", optarg, 0, 1, &c.sched.start_factor); break;
        case O_SMOOTH: bad = parse_float("train", "--label-smoothing", optarg, 0, 0.999, &c.label_smoothing); break;
        case O_LRSCALE:
            if (pc_lr_scale_parse(optarg, &c.lr_scale) != PC_OK) return fail(PC_ERR_USAGE);
            break;
        case O_LRREF: bad = parse_long("train", "--lr-ref-batch", optarg, 1, 1 << 20, &v); c.lr_ref_batch = (int)v; break;
        case O_SEED: bad = parse_long("train", "--seed", optarg, 0, 0x7fffffffL, &v); c.seed = (uint64_t)v; break;
        case O_ENSEMBLE: bad = parse_long("train", "--ensemble", optarg, 1, 64, &v); c.ensemble = (int)v; break;
        case O_LIMIT: bad = parse_long("train", "--limit", optarg, 1, 0x7fffffffL, &v); c.limit = v; break;
        case O_MAXSTEPS: bad = parse_long("train", "--max-steps", optarg, 1, 0x7fffffffL, &v); c.max_steps = v; break;
        case O_EVALLIMIT: bad = parse_long("train", "--eval-limit", optarg, 1, 0x7fffffffL, &v); c.eval_limit = v; break;
        case O_OUT: c.out_dir = optarg; break;
        case O_RESUME: c.resume = 1; break;
        case O_OVERWRITE: c.overwrite = 1; break;
        case O_AUG:
            if (pc_augment_parse(optarg, &c.augment) != PC_OK) return fail(PC_ERR_USAGE);
            break;
        case O_TTA:
            if (pc_tta_parse(optarg, &c.tta) != PC_OK) return fail(PC_ERR_USAGE);
            break;
        case O_LTHREADS: bad = parse_long("train", "--loader-threads", optarg, 0, 64, &v); c.loader_threads = (int)v; break;
        case O_ISIZE: bad = parse_long("train", "--image-size", optarg, 4, 4096, &v); c.folder.image_size = (int)v; break;
        case O_CHANNELS:
            if (strcmp(optarg, "1") && strcmp(optarg, "3"))
                return usage_error("train", "--channels %s: expected 1 or 3", optarg);
            c.folder.channels = atoi(optarg);
            break;
        case O_VSPLIT: bad = parse_float("train", "--val-split", optarg, 0.001, 0.9, &c.folder.val_split); break;
        case O_CACHE: c.folder.cache = optarg; break;
        case O_BAD:
            if (strcmp(optarg, "skip") && strcmp(optarg, "fail"))
                return usage_error("train", "--on-bad-image %s: expected skip or fail", optarg);
            c.folder.on_bad_skip = strcmp(optarg, "skip") == 0;
            break;
        case O_DTHREADS: bad = parse_long("train", "--decode-threads", optarg, 1, 256, &v); c.folder.decode_threads = (int)v; break;
        case O_REDUCE:
            if (strcmp(optarg, "fast") && strcmp(optarg, "deterministic"))
                return usage_error("train", "--reduce %s: expected deterministic or fast", optarg);
            c.reduce_fast = strcmp(optarg, "fast") == 0;
            break;
        case O_TIMEOUT: {
            float secs;
            bad = parse_float("train", "--timeout", optarg, 0, 1e7, &secs);
            c.timeout = secs;
            break;
        }
        case O_KERNELS:
            if (parse_kernels(optarg, &c.kernels))
                return usage_error("train", "--kernels %s: expected onednn or ref", optarg);
            break;
        case O_PRECISION: precision = optarg; break;
        case O_CONVALGO: if (parse_conv_algo("train", optarg, &c.conv_algo)) return 2; break;
        case O_NOPROG: c.progress = 0; break;
        case O_PROFILE: c.profile = 1; break;
        case O_HELP: fputs(train_help, stdout); return 0;
        default:
            return usage_error("train", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
        if (bad) return 2;
    }
    if (optind < argc) return usage_error("train", "unexpected argument '%s'", argv[optind]);
    if (apply_precision("train", precision, &c.kernels)) return 2;
    if (c.workers == 0) { /* default: as many workers as cores, dividing the shard count */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        int shards = c.shard_size > 0 && c.batch % c.shard_size == 0 ? c.batch / c.shard_size : 1;
        c.workers = 1;
        for (int w = 1; w <= shards && w <= cores; w++)
            if (shards % w == 0) c.workers = w;
    }
    if (pc_comm_rank(pc_comm_world()) != 0) c.progress = 0;
    pc_status st = pc_train(&c, NULL);
    return st == PC_OK ? 0 : fail(st);
}

/* train --recipe NAME [flags]: the recipe's flags, then the command line's (which win). */
static int cmd_train(int argc, char **argv) {
    int n;
    char **args;
    const char *recipe;
    if (pc_recipe_expand(argc, argv, &n, &args, &recipe) != PC_OK) return fail(PC_ERR_USAGE);
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

static const char eval_help[] =
    "usage: parcnn eval --weights FILE[,FILE...] [--data SPEC] [--json] [--tta MODE] [--workers N] [--batch N]\n"
    "Evaluate a trained model, or an ensemble of models, on the test part of a dataset:\n"
    "accuracy, loss, per-class precision, recall and F1, macro averages and the confusion\n"
    "matrix.\n"
    "\n"
    "  --weights FILE   model.safetensors written by parcnn train; several (comma-separated\n"
    "                   or the flag repeated) evaluate their ensemble: the class\n"
    "                   probabilities of the models (each after --tta) averaged\n"
    "  --data SPEC      dataset (default fashion-mnist); its test part is used\n"
    "  --train-split    evaluate on the training part instead\n"
    "  --json           print one JSON object (accuracy, loss, macro_f1, per_class, confusion)\n"
    "  --tta MODE       test-time augmentation: flip (average the probabilities of the\n"
    "                   image and its mirror) or flip,translate=N (airbench's: also\n"
    "                   shifted by (N, N) and (-N, -N) pixels, reflect-padded)\n"
    "  --workers N      parallel replicas (default 1)\n"
    "  --batch N        samples per forward pass (default 100)\n"
    "  --kernels K      onednn or ref\n"
    "  --precision P    fp32 (default) or bf16 (see parcnn train --help)\n"
    "  --conv-algo A    auto (default), direct or winograd (see parcnn train --help)\n";

static const char predict_help[] =
    "usage: parcnn predict --weights FILE[,FILE...] [--top K] [--tta MODE] IMAGE...\n"
    "       parcnn predict --weights FILE[,FILE...] [--data SPEC] [--top K] [--tta MODE] INDEX...\n"
    "       parcnn predict --weights FILE --npy-in X.npy --npy-out Y.npy\n"
    "Classify image files (JPEG or PNG, preprocessed exactly as in training: converted to\n"
    "the model's channels, resized to its input, normalized with its mean and std), or\n"
    "test samples of a dataset given by their indices; prints the top-K classes with\n"
    "probabilities (and the true class for dataset samples).\n"
    "\n"
    "  --weights FILE   model.safetensors written by parcnn train; several: their ensemble\n"
    "                   (see eval --help)\n"
    "  --data SPEC      dataset (default fashion-mnist); its test part is used\n"
    "  --top K          classes to print per sample (default 3)\n"
    "  --npy-in X.npy   instead of images: a float32 (N, C, H, W) array fed to the network\n"
    "                   as it is (no resizing, no normalization); with --npy-out Y.npy,\n"
    "                   which receives the (N, classes) float32 logits\n"
    "  --tta MODE       test-time augmentation: flip or flip,translate=N (see eval --help)\n"
    "  --kernels K      onednn or ref\n"
    "  --precision P    fp32 (default) or bf16 (see parcnn train --help)\n"
    "  --conv-algo A    auto (default), direct or winograd (see parcnn train --help)\n";

enum { MAX_MEMBERS = 64 };

typedef struct {
    char *weights[MAX_MEMBERS]; /* one file per ensemble member */
    int n_weights;
    const char *data;
    int json, workers, batch, top, train_split;
    pc_kernel_set kernels;
    pc_conv_algo conv_algo;
    pc_tta tta;
    const char *npy_in, *npy_out; /* predict --npy-in/--npy-out */
} infer_opts;

/* --weights A,B,...: append each file (the flag may also be repeated). */
static int add_weights(const char *cmd, const char *list, infer_opts *o) {
    for (const char *p = list;; p++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0) return usage_error(cmd, "--weights %s: an empty file name", list);
        if (o->n_weights == MAX_MEMBERS)
            return usage_error(cmd, "--weights %s: more than 64 files", list); /* MAX_MEMBERS */
        if (!(o->weights[o->n_weights] = strndup(p, len)))
            return usage_error(cmd, "%s", "out of memory");
        o->n_weights++;
        if (!end) return 0;
        p = end;
    }
}

static void free_infer(infer_opts *o) {
    for (int k = 0; k < o->n_weights; k++) free(o->weights[k]);
}

static int parse_infer(const char *cmd, int argc, char **argv, infer_opts *o) {
    enum { O_W = 256, O_D, O_J, O_WK, O_B, O_T, O_K, O_P, O_CA, O_TS, O_TTA, O_H, O_NI, O_NO };
    static const struct option opts[] = {
        {"weights", 1, 0, O_W}, {"data", 1, 0, O_D}, {"json", 0, 0, O_J},
        {"workers", 1, 0, O_WK}, {"batch", 1, 0, O_B}, {"top", 1, 0, O_T},
        {"kernels", 1, 0, O_K}, {"precision", 1, 0, O_P}, {"conv-algo", 1, 0, O_CA},
        {"train-split", 0, 0, O_TS},
        {"tta", 1, 0, O_TTA}, {"help", 0, 0, O_H}, {"npy-in", 1, 0, O_NI}, {"npy-out", 1, 0, O_NO},
        {0, 0, 0, 0}};
    int c;
    long v;
    const char *precision = NULL;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_W:
            if (add_weights(cmd, optarg, o)) return 2;
            break;
        case O_P: precision = optarg; break;
        case O_CA: if (parse_conv_algo(cmd, optarg, &o->conv_algo)) return 2; break;
        case O_D: o->data = optarg; break;
        case O_J: o->json = 1; break;
        case O_TS: o->train_split = 1; break;
        case O_NI: o->npy_in = optarg; break;
        case O_NO: o->npy_out = optarg; break;
        case O_WK: if (parse_long(cmd, "--workers", optarg, 1, 1024, &v)) return 2; o->workers = (int)v; break;
        case O_B: if (parse_long(cmd, "--batch", optarg, 1, 1 << 16, &v)) return 2; o->batch = (int)v; break;
        case O_T: if (parse_long(cmd, "--top", optarg, 1, 1000, &v)) return 2; o->top = (int)v; break;
        case O_K:
            if (parse_kernels(optarg, &o->kernels))
                return usage_error(cmd, "--kernels %s: expected onednn or ref", optarg);
            break;
        case O_TTA:
            if (pc_tta_parse(optarg, &o->tta) != PC_OK) return fail(PC_ERR_USAGE);
            break;
        case O_H:
            fputs(strcmp(cmd, "eval") == 0 ? eval_help : predict_help, stdout);
            return -1;
        default: return usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (!o->n_weights) return usage_error(cmd, "%s", "--weights FILE is required");
    return apply_precision(cmd, precision, &o->kernels) ? 2 : 0;
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
    for (int k = 0; k < o->n_weights; k++) {
        pc_model_meta meta = {0};
        PC_TRY(pc_model_load(o->weights[k], &lm->models[k], k ? &meta : &lm->meta));
        lm->n++;
        if (k == 0) continue;
        pc_status st = check_member(o->weights[k], o->weights[0], &lm->meta, &meta);
        pc_model_meta_free(&meta);
        PC_TRY(st);
    }
    return PC_OK;
}

/* An engine running all of lm's models, normalizing as the first was trained. */
static pc_status open_engine(const infer_opts *o, loaded_models *lm, int workers, int batch,
                             pc_engine **e) {
    pc_exec_set_conv_algo(o->conv_algo);
    PC_TRY(pc_engine_create(lm->models[0], workers, 1, batch, o->kernels, lm->meta.mean,
                            lm->meta.std, e));
    for (int k = 1; k < lm->n; k++) PC_TRY(pc_engine_add_member(*e, lm->models[k], o->kernels));
    return PC_OK;
}

/* Load the models and the dataset part, and check they fit together. */
static pc_status load_for_inference(const infer_opts *o, loaded_models *lm, pc_dataset *d) {
    PC_TRY(load_models(o, lm));
    const pc_model_meta *meta = &lm->meta;
    PC_TRY(pc_dataset_load(o->data, o->train_split, d));
    if (d->c != meta->c || d->h != meta->h || d->w != meta->w)
        return pc_fail(PC_ERR_USAGE, "%s: model expects %dx%dx%d images, %s has %dx%dx%d",
                       o->weights[0], meta->c, meta->h, meta->w, o->data, d->c, d->h, d->w);
    if (d->classes > meta->classes)
        return pc_fail(PC_ERR_USAGE, "%s: model has %d classes, %s has %d", o->weights[0],
                       meta->classes, o->data, d->classes);
    return PC_OK;
}

static int cmd_eval(int argc, char **argv) {
    infer_opts o = {.data = "fashion-mnist", .workers = 1, .batch = 100, .top = 3};
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
    if (st == PC_OK && pc_metrics_init(&mt, lm.meta.classes)) st = pc_fail(PC_ERR_NOMEM, "out of memory");
    if (st == PC_OK) st = pc_engine_evaluate(e, pc_comm_world(), &d, &o.tta, &mt, NULL, NULL);
    if (st == PC_OK) {
        if (o.json)
            pc_metrics_print_json(&mt, lm.meta.class_names, stdout);
        else
            pc_metrics_print(&mt, lm.meta.class_names, stdout);
    }
    pc_metrics_free(&mt);
    pc_engine_destroy(e);
    pc_dataset_free(&d);
    free_models(&lm);
    free_infer(&o);
    return st == PC_OK ? 0 : fail(st);
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
    if (!px) return pc_fail(PC_ERR_NOMEM, "out of memory");
    pc_status st = pc_image_load_chw(path, meta->c, meta->h, meta->w, 0, px, NULL, NULL);
    int64_t plane = (int64_t)meta->h * meta->w;
    for (int64_t i = 0; st == PC_OK && i < n; i++)
        out[i] = ((float)px[i] / 255.0f - meta->mean[i / plane]) / meta->std[i / plane];
    free(px);
    return st;
}

static int cmd_predict(int argc, char **argv) {
    infer_opts o = {.data = "fashion-mnist", .workers = 1, .batch = 1, .top = 3};
    int r = parse_infer("predict", argc, argv, &o);
    if (r) {
        free_infer(&o);
        return r < 0 ? 0 : r;
    }
    if (o.npy_in || o.npy_out) {
        r = !o.npy_in || !o.npy_out || o.n_weights > 1 || optind < argc
                ? usage_error("predict", "%s", "--npy-in X.npy needs --npy-out Y.npy, one "
                              "--weights FILE and no other arguments")
                : predict_npy(o.weights[0], o.kernels, o.npy_in, o.npy_out);
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
        if (!input || !probs) st = pc_fail(PC_ERR_NOMEM, "out of memory");
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
        pc_engine_probs(e, 0, &o.tta, input, probs, probs + meta->classes);
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
    return st == PC_OK ? 0 : fail(st);
}

/* ------------------------------------------------------------ check-data */

static const char check_help[] =
    "usage: parcnn check-data --data folder:DIR [--image-size N] [--channels 1|3]\n"
    "                         [--val-split F] [--decode-threads N]\n"
    "Decode every image of a dataset and report images per class, the decoded size and\n"
    "every bad file (corrupt, truncated, empty, too large, unreadable). Exit status 1 when\n"
    "a file is bad.\n";

static int cmd_check_data(int argc, char **argv) {
    const char *data = NULL;
    pc_folder_options fo;
    pc_folder_options_default(&fo);
    fo.on_bad_skip = 1;
    static const struct option opts[] = {
        {"data", 1, 0, 'd'}, {"image-size", 1, 0, 's'}, {"channels", 1, 0, 'c'},
        {"val-split", 1, 0, 'v'}, {"decode-threads", 1, 0, 't'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    long v;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'd': data = optarg; break;
        case 's': if (parse_long("check-data", "--image-size", optarg, 4, 4096, &v)) return 2; fo.image_size = (int)v; break;
        case 'c': if (parse_long("check-data", "--channels", optarg, 1, 3, &v) || v == 2) return 2; fo.channels = (int)v; break;
        case 'v': if (parse_float("check-data", "--val-split", optarg, 0.001, 0.9, &fo.val_split)) return 2; break;
        case 't': if (parse_long("check-data", "--decode-threads", optarg, 1, 256, &v)) return 2; fo.decode_threads = (int)v; break;
        case 'h': fputs(check_help, stdout); return 0;
        default: return usage_error("check-data", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (!data) return usage_error("check-data", "%s", "--data SPEC is required");
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
            return fail(st);
        }
    }
    printf("%lld bad file(s)\n", (long long)bad);
    return bad ? 1 : 0;
}

/* ---------------------------------------------------------------- models */

static const char models_help[] =
    "usage: parcnn models [--input CxHxW] [--classes N] [--print NAME]\n"
    "List the zoo models with parameter count, forward FLOPs per image and training FLOPs\n"
    "per image (conv and dense layers) for an input shape (default 1x28x28, 10 classes),\n"
    "or print one model file.\n";

static int cmd_models(int argc, char **argv) {
    int c = 1, h = 28, w = 28, classes = 10;
    const char *print = NULL;
    static const struct option opts[] = {{"input", 1, 0, 'i'}, {"classes", 1, 0, 'c'},
                                         {"print", 1, 0, 'p'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    long v;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'i':
            if (sscanf(optarg, "%dx%dx%d", &c, &h, &w) != 3 || c < 1 || h < 1 || w < 1 || c > 4)
                return usage_error("models", "--input %s: expected CxHxW, e.g. 3x32x32", optarg);
            break;
        case 'c': if (parse_long("models", "--classes", optarg, 2, 100000, &v)) return 2; classes = (int)v; break;
        case 'p': print = optarg; break;
        case 'h': fputs(models_help, stdout); return 0;
        default: return usage_error("models", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
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

static const char main_help[] =
    "usage: parcnn COMMAND [options]\n"
    "Train convolutional image classifiers, sequentially or data-parallel, with results\n"
    "that do not depend on the number of workers.\n"
    "\n"
    "commands:\n"
    "  train     train a model (parcnn train --help)\n"
    "  eval      evaluate a trained model on a dataset\n"
    "  predict   classify samples with a trained model\n"
    "  models    list the model zoo\n"
    "  recipes   list the training recipes (parcnn train --recipe NAME)\n"
    "  check-data  decode a whole image folder and report bad files\n"
    "  export    write a model as ONNX; import: an ONNX model as a parcnn model\n"
    "  inspect   layers, shapes, parameters, FLOPs and metadata of a model file\n"
    "  bench     benchmarks: scaling, comm, loader, gemm, conv (parcnn bench --help)\n";

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(main_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    pc_comm *comm;
    if (pc_comm_init(&argc, &argv, &comm) != PC_OK) return fail(PC_ERR_USAGE);
    const char *cmd = argv[1];
    argv[1] = argv[0];
    argc--;
    argv++;
    int rc;
    if (strcmp(cmd, "train") == 0) rc = cmd_train(argc, argv);
    else if (strcmp(cmd, "eval") == 0) rc = cmd_eval(argc, argv);
    else if (strcmp(cmd, "predict") == 0) rc = cmd_predict(argc, argv);
    else if (strcmp(cmd, "models") == 0) rc = cmd_models(argc, argv);
    else if (strcmp(cmd, "recipes") == 0) rc = cmd_recipes(argc, argv);
    else if (strcmp(cmd, "bench") == 0) rc = cmd_bench(argc, argv);
    else if (strcmp(cmd, "check-data") == 0) rc = cmd_check_data(argc, argv);
    else if (strcmp(cmd, "export") == 0) rc = cmd_export(argc, argv);
    else if (strcmp(cmd, "import") == 0) rc = cmd_import(argc, argv);
    else if (strcmp(cmd, "inspect") == 0) rc = cmd_inspect(argc, argv);
    else {
        fprintf(stderr, "parcnn: unknown command '%s' (try 'parcnn --help')\n", cmd);
        rc = 2;
    }
    /* A rank that stops on its own (a usage error only it has) must not leave the others
     * waiting in a collective until the time-out: stop the whole job. */
    if (rc != 0 && pc_comm_size(comm) > 1) pc_comm_abort(comm, rc);
    pc_comm_finalize(comm);
    return rc;
}
