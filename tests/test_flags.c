/* Flag tables (core/flags.h) and the train table (src/train/config.c): every flag has a
 * default the help can state and that parses; pc_train_config_defaults gives the values
 * the documentation promises; arguments are parsed strictly with the command line's
 * wording; the default worker count divides the shards. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "core/flags.h"
#include "train/train.h"

/* Each entry: a name used once, a help text, a default to show, and a default that parses. */
static void test_table_complete(void) {
    int n = 0;
    for (const pc_flag *f = pc_train_flags; f->type != PC_FLAG_END; f++) {
        CHECK(f->help && *f->help, "entry %d has no help", n);
        if (f->type == PC_FLAG_SECTION) continue;
        n++;
        CHECK(f->name && pc_flag_find(pc_train_flags, f->name) == f, "--%s twice", f->name);
        CHECK(f->type == PC_FLAG_SWITCH || f->def || f->def_text || f->required, "--%s: no default",
              f->name);
        CHECK(f->type == PC_FLAG_SWITCH || f->metavar, "--%s: no metavar", f->name);
        CHECK((f->type != PC_FLAG_CHOICE) == !f->choices, "--%s: choices", f->name);
        CHECK(f->type != PC_FLAG_PARSED || f->parse, "--%s: no parser", f->name);
        if (f->def && f->type != PC_FLAG_SWITCH) {
            pc_train_config c;
            memset(&c, 0, sizeof c);
            pc_flag_result r = pc_flag_set(f, &c, f->def);
            /* a default may lie outside the range (e.g. --peak-epoch's -1): then it parses
             * as a number */
            CHECK(r == PC_FLAG_OK || r == PC_FLAG_ERR_RANGE, "--%s %s: %s", f->name, f->def,
                  pc_last_error());
        }
    }
    CHECK(n >= 50, "%d train flags", n);
    pc_train_config c;
    memset(&c, 0, sizeof c);
    CHECK(pc_flags_defaults(pc_train_flags, &c) == PC_OK, "%s", pc_last_error());
}

/* The defaults as README.md and `parcnn train --help` give them. */
static void test_defaults(void) {
    pc_train_config c;
    pc_train_config_defaults(&c);
    CHECK(strcmp(c.data, "fashion-mnist") == 0 && strcmp(c.model, "simple-cnn") == 0, "names");
    CHECK(c.epochs == 12 && c.batch == 128 && c.shard_size == 32 && c.threads == 1, "sizes");
    CHECK(c.workers == 0, "workers %d: chosen by pc_train", c.workers);
    CHECK(c.opt.kind == PC_OPT_ADAM && c.opt.momentum == 0.9f && c.opt.beta1 == 0.9f &&
              c.opt.beta2 == 0.999f && c.opt.eps == 1e-8f && c.opt.weight_decay == 0,
          "optimizer");
    CHECK(c.sched.kind == PC_SCHED_EXP && c.sched.base_lr == 1e-3f && c.sched.decay_rate == 0.8f &&
              c.sched.decay_epochs == 1.0f && c.sched.peak_epoch == -1.0f &&
              c.sched.start_factor == 0.2f && c.sched.warmup_epochs == 0,
          "schedule");
    CHECK(c.bias_lr_mult == 1.0f && c.norm_bias_lr_mult == 1.0f && c.ema == 0 && c.lookahead == 0,
          "multipliers and averages");
    CHECK(c.seed == 1 && c.lr_ref_batch == 128 && c.lr_scale == PC_LR_SCALE_NONE, "seed, lr scale");
    CHECK(c.timeout == 300 && c.loader_threads == 1 && c.reduce_fast == 0 && c.ensemble == 0,
          "run");
    CHECK(c.exec.kernels == PC_KERNELS_AUTO && c.exec.precision == PC_PRECISION_FP32 &&
              c.exec.conv_algo == PC_CONV_AUTO,
          "kernels");
    CHECK(c.folder.image_size == 32 && c.folder.channels == 0 && strcmp(c.folder.cache, "memory") == 0 &&
              c.folder.on_bad_skip == 0 && c.folder.val_split == 0,
          "folders");
    CHECK(c.augment.hflip == 0 && c.tta.flip == 0 && c.tta.translate == 0, "augmentation");
    CHECK(c.log == stdout && c.progress == 0 && c.out_dir == NULL, "output");
}

static pc_flag_result set(pc_train_config *c, const char *name, const char *arg) {
    const pc_flag *f = pc_flag_find(pc_train_flags, name);
    CHECK(f != NULL, "--%s", name);
    return f ? pc_flag_set(f, c, arg) : PC_FLAG_ERR_FAIL;
}

static void test_parsing(void) {
    pc_train_config c;
    pc_train_config_defaults(&c);
    CHECK(set(&c, "epochs", "7") == PC_FLAG_OK && c.epochs == 7, "--epochs 7");
    CHECK(set(&c, "epochs", "0") == PC_FLAG_ERR_RANGE &&
              strcmp(pc_last_error(), "--epochs 0: expected an integer in [1, 100000]") == 0,
          "%s", pc_last_error());
    CHECK(set(&c, "epochs", "3x") == PC_FLAG_ERR_RANGE && c.epochs == 7, "trailing garbage");
    CHECK(set(&c, "lr", "0.05") == PC_FLAG_OK && c.sched.base_lr == 0.05f, "--lr");
    CHECK(set(&c, "lr", "0") == PC_FLAG_ERR_RANGE &&
              strcmp(pc_last_error(), "--lr 0: expected a number in [1e-12, 100]") == 0,
          "%s", pc_last_error());
    CHECK(set(&c, "seed", "2147483647") == PC_FLAG_OK && c.seed == 2147483647u, "--seed");
    CHECK(set(&c, "limit", "5000") == PC_FLAG_OK && c.limit == 5000, "--limit");
    CHECK(set(&c, "timeout", "0.5") == PC_FLAG_OK && c.timeout == 0.5, "--timeout");
    /* --ema: a number in [0, 1], and then not on a bound */
    CHECK(set(&c, "ema", "2") == PC_FLAG_ERR_RANGE, "--ema 2");
    CHECK(set(&c, "ema", "1") == PC_FLAG_ERR_USAGE &&
              strcmp(pc_last_error(), "--ema 1: expected a decay in (0, 1), e.g. 0.999") == 0,
          "%s", pc_last_error());
    CHECK(set(&c, "ema", "0.99") == PC_FLAG_OK && c.ema == 0.99f, "--ema 0.99");
    CHECK(set(&c, "kernels", "reference") == PC_FLAG_OK && c.exec.kernels == PC_KERNELS_REF, "ref");
    CHECK(set(&c, "kernels", "gpu") == PC_FLAG_ERR_USAGE &&
              strcmp(pc_last_error(), "--kernels gpu: expected onednn or ref") == 0,
          "%s", pc_last_error());
    CHECK(set(&c, "channels", "3") == PC_FLAG_OK && c.folder.channels == 3, "--channels 3");
    CHECK(set(&c, "channels", "2") == PC_FLAG_ERR_USAGE, "--channels 2");
    CHECK(set(&c, "reduce", "fast") == PC_FLAG_OK && c.reduce_fast == 1, "--reduce fast");
    CHECK(set(&c, "optimizer", "sgd") == PC_FLAG_OK && c.opt.kind == PC_OPT_SGD, "--optimizer");
    CHECK(set(&c, "optimizer", "lion") == PC_FLAG_ERR_FAIL &&
              strstr(pc_last_error(), "--optimizer lion") != NULL,
          "%s", pc_last_error());
    CHECK(set(&c, "augment", "flip,crop=4") == PC_FLAG_OK && c.augment.hflip && c.augment.crop_pad == 4,
          "--augment");
    CHECK(set(&c, "nesterov", NULL) == PC_FLAG_OK && c.opt.nesterov == 1, "--nesterov");
    c.progress = 1;
    CHECK(set(&c, "no-progress", NULL) == PC_FLAG_OK && c.progress == 0, "--no-progress");
    CHECK(set(&c, "data", "mnist") == PC_FLAG_OK && strcmp(c.data, "mnist") == 0, "--data");
}

/* The default worker count divides the shards per rank; bf16 goes to the oneDNN kernels. */
static void test_resolve(void) {
    for (int batch = 32; batch <= 512; batch *= 2)
        for (int ranks = 1; ranks <= 4; ranks *= 2) {
            int shards = batch / 32, w = pc_train_auto_workers(batch, 32, ranks);
            CHECK(w >= 1 && (shards % ranks || (shards / ranks) % w == 0), "batch %d ranks %d: %d",
                  batch, ranks, w);
        }
    CHECK(pc_train_auto_workers(96, 32, 1) == 1 || pc_train_auto_workers(96, 32, 1) == 3,
          "3 shards: 1 or 3 workers");
    pc_train_config c;
    pc_train_config_defaults(&c);
    CHECK(pc_train_config_resolve(&c) == PC_OK && c.workers >= 1 && 4 % c.workers == 0,
          "workers %d", c.workers);
    c.exec.precision = PC_PRECISION_BF16;
    CHECK(pc_train_config_resolve(&c) == PC_OK && c.exec.kernels == PC_KERNELS_AUTO, "bf16");
    c.exec.kernels = PC_KERNELS_REF;
    CHECK(pc_train_config_resolve(&c) == PC_ERR_USAGE, "bf16 on ref");
}

int main(void) {
    test_table_complete();
    test_defaults();
    test_parsing();
    test_resolve();
    return check_summary();
}
