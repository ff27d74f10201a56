/* Optimizers and schedules: chunked updates equal whole updates bit for bit (the
 * optimizer runs on per-worker and per-rank chunks), with and without parameter groups;
 * a group gets its own learning rate and weight decay; AdamW's decoupled decay; and the
 * learning-rate schedules against hand-computed values. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "core/common.h"
#include "optim/optim.h"

#define N 1000

static void fill(float *v, int n, float scale, unsigned seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = scale * ((float)(seed >> 8) / 16777216.0f - 0.5f);
    }
}

/* Three groups in runs of uneven length, as a model's tensors give, with single
 * parameters of group 2 inside runs of the others. */
static uint8_t group_of[N];
static const pc_opt_groups groups = {.group = group_of, .lr_mult = {1.0f, 4.0f, 0.5f},
                                     .weight_decay = {1e-2f, 0.0f, 3e-3f}};

static void make_groups(void) {
    for (int i = 0; i < N; i++) group_of[i] = i % 101 == 0 ? 2 : (uint8_t)((i / 37) % 3);
}

/* g NULL or &groups: chunked updates equal the whole update bit for bit */
static void test_chunked(pc_opt_config c, const pc_opt_groups *g, const char *name) {
    static float p1[N], p2[N], grad[N], s1[2 * N], s2[2 * N];
    fill(p1, N, 1, 1);
    memcpy(p2, p1, sizeof p1);
    memset(s1, 0, sizeof s1);
    memset(s2, 0, sizeof s2);
    for (int step = 1; step <= 5; step++) {
        fill(grad, N, 0.1f, 100 + step);
        pc_opt_step(&c, g, 0.01f, step, p1, grad, s1, N, 0, N);
        /* uneven chunks in reverse order, cutting through group runs */
        int cuts[] = {N, 777, 400, 16, 0};
        for (int k = 0; k < 4; k++) pc_opt_step(&c, g, 0.01f, step, p2, grad, s2, N, cuts[k + 1], cuts[k]);
    }
    CHECK(memcmp(p1, p2, sizeof p1) == 0, "%s%s: chunked update differs", name, g ? " (groups)" : "");
    CHECK(memcmp(s1, s2, sizeof s1) == 0, "%s%s: chunked state differs", name, g ? " (groups)" : "");
}

/* A grouped update gives each group exactly what an ungrouped update with that group's
 * learning rate and weight decay gives. */
static void test_groups_match_plain(pc_opt_config c, const char *name) {
    static float p1[N], p2[N], grad[N], s1[2 * N], s2[2 * N];
    fill(p1, N, 1, 3);
    memset(s1, 0, sizeof s1);
    int same = 1;
    float lr = 0.01f;
    for (int k = 0; k < 3; k++) {
        pc_opt_config ck = c;
        ck.weight_decay = groups.weight_decay[k];
        fill(p2, N, 1, 3);
        memset(s2, 0, sizeof s2);
        for (int step = 1; step <= 3; step++) {
            fill(grad, N, 0.1f, 200 + step);
            if (k == 0) pc_opt_step(&c, &groups, lr, step, p1, grad, s1, N, 0, N);
            pc_opt_step(&ck, NULL, lr * groups.lr_mult[k], step, p2, grad, s2, N, 0, N);
        }
        for (int i = 0; i < N; i++)
            if (group_of[i] == k) same &= p1[i] == p2[i] && s1[i] == s2[i] && s1[N + i] == s2[N + i];
    }
    CHECK(same, "%s: a group's update differs from an ungrouped update with its settings", name);
}

static void test_adamw_decoupled(void) {
    pc_opt_config adam = {.kind = PC_OPT_ADAM, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f};
    pc_opt_config adamw = adam;
    adamw.kind = PC_OPT_ADAMW;
    float p = 2.0f, g = 0.0f, s[2] = {0, 0};
    /* zero gradient: AdamW only shrinks p by lr*wd; Adam turns the decay into a gradient */
    pc_opt_step(&adamw, NULL, 0.5f, 1, &p, &g, s, 1, 0, 1);
    CHECK(fabsf(p - 2.0f * (1 - 0.05f)) < 1e-6f, "adamw decay: p=%g", p);
    p = 2.0f;
    s[0] = s[1] = 0;
    pc_opt_step(&adam, NULL, 0.5f, 1, &p, &g, s, 1, 0, 1);
    CHECK(fabsf(p - 1.5f) < 1e-4f, "adam L2 as gradient, first step moves by lr: p=%g", p);
}

static void test_schedules(void) {
    pc_sched_config s = {.kind = PC_SCHED_EXP, .base_lr = 1.0f, .decay_rate = 0.5f, .decay_epochs = 2,
                         .steps_per_epoch = 10, .total_steps = 100};
    CHECK(fabsf(pc_sched_lr(&s, 0) - 1.0f) < 1e-6f, "exp at 0");
    CHECK(fabsf(pc_sched_lr(&s, 20) - 0.5f) < 1e-6f, "exp after 2 epochs: %g", pc_sched_lr(&s, 20));
    CHECK(fabsf(pc_sched_lr(&s, 10) - sqrtf(0.5f)) < 1e-6f, "exp is continuous");
    s.kind = PC_SCHED_STEP;
    CHECK(fabsf(pc_sched_lr(&s, 19) - 1.0f) < 1e-6f && fabsf(pc_sched_lr(&s, 20) - 0.5f) < 1e-6f, "step drops at the boundary");
    s.kind = PC_SCHED_COSINE;
    s.min_lr = 0;
    CHECK(fabsf(pc_sched_lr(&s, 50) - 0.5f) < 1e-6f && pc_sched_lr(&s, 100) < 1e-6f, "cosine half way and end");
    s.kind = PC_SCHED_CONSTANT;
    s.warmup_epochs = 1;
    CHECK(fabsf(pc_sched_lr(&s, 0) - 0.1f) < 1e-6f && fabsf(pc_sched_lr(&s, 9) - 1.0f) < 1e-6f &&
              fabsf(pc_sched_lr(&s, 10) - 1.0f) < 1e-6f, "linear warm-up over 10 steps");
    pc_sched_kind k;
    CHECK(pc_sched_parse("cosine", &k) == PC_OK && k == PC_SCHED_COSINE, "parse cosine");
    CHECK(pc_sched_parse("triangular", &k) == PC_OK && k == PC_SCHED_TRIANGULAR, "parse triangular");
    CHECK(pc_sched_parse("linear", &k) == PC_ERR_USAGE, "bad schedule rejected");
}

/* 10 steps per epoch, 100 steps, peak at epoch 2 (step 20), start factor 0.2:
 * 0.2 -> 1 over steps 0..20, then 1 -> 0 over steps 20..100. */
static void test_triangular(void) {
    pc_sched_config s = {.kind = PC_SCHED_TRIANGULAR, .base_lr = 2.0f, .peak_epoch = 2,
                         .start_factor = 0.2f, .steps_per_epoch = 10, .total_steps = 100};
    const int64_t steps[] = {0, 5, 10, 20, 21, 60, 99, 100};
    const float want[] = {0.4f, 0.8f, 1.2f, 2.0f, 1.975f, 1.0f, 0.025f, 0.0f};
    for (int i = 0; i < 8; i++)
        CHECK(fabsf(pc_sched_lr(&s, steps[i]) - want[i]) <= 1e-6f * want[i] + 1e-9f,
              "triangular at step %lld: %.9g, want %.9g", (long long)steps[i],
              pc_sched_lr(&s, steps[i]), want[i]);
    s.peak_epoch = -1; /* default: the peak at 20% of the run */
    CHECK(pc_sched_lr(&s, 20) == 2.0f && pc_sched_lr(&s, 10) == 1.2f, "triangular default peak: %.9g",
          pc_sched_lr(&s, 10));
    s.peak_epoch = 0; /* no warm-up: straight down from the peak */
    CHECK(pc_sched_lr(&s, 0) == 2.0f && pc_sched_lr(&s, 50) == 1.0f, "triangular from the peak: %.9g",
          pc_sched_lr(&s, 50));
}

int main(void) {
    make_groups();
    const pc_opt_config configs[] = {
        {.kind = PC_OPT_SGD},
        {.kind = PC_OPT_SGD, .momentum = 0.9f, .nesterov = 1, .weight_decay = 5e-4f},
        {.kind = PC_OPT_ADAM, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 1e-4f},
        {.kind = PC_OPT_ADAMW, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 1e-2f}};
    const char *names[] = {"sgd", "sgd nesterov", "adam", "adamw"};
    for (int k = 0; k < 4; k++) {
        test_chunked(configs[k], NULL, names[k]);
        test_chunked(configs[k], &groups, names[k]);
        test_groups_match_plain(configs[k], names[k]);
    }
    test_adamw_decoupled();
    test_schedules();
    test_triangular();
    return check_summary();
}
