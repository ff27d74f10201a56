/* Optimizers over flat parameter and gradient arrays, and learning-rate schedules.
 * A step can be applied to any index range [begin, end), so workers update
 * disjoint chunks in parallel with results independent of the chunking. */
#ifndef PC_OPTIM_H
#define PC_OPTIM_H

#include <stdint.h>

#include "core/common.h"

typedef enum { PC_OPT_SGD = 0, PC_OPT_ADAM, PC_OPT_ADAMW } pc_opt_kind;

typedef struct {
    pc_opt_kind kind;
    float momentum;      /* SGD */
    int nesterov;        /* SGD */
    float weight_decay;  /* SGD and Adam: L2 added to the gradient; AdamW: decoupled
                            (without groups; with groups, each group's own) */
    float beta1, beta2, eps; /* Adam, AdamW */
} pc_opt_config;

/* Parameter groups, as torch.optim's param_groups: group[i] is the group of flat
 * parameter i, and each group has its own learning-rate multiplier and weight decay.
 * A per-index map (not per-tensor lists) keeps an update of any index range the same
 * as the same indices of a whole update. */
#define PC_OPT_MAX_GROUPS 10
typedef struct {
    const uint8_t *group;    /* n group ids; NULL: every parameter is in group 0 */
    float lr_mult[PC_OPT_MAX_GROUPS];
    float weight_decay[PC_OPT_MAX_GROUPS];
} pc_opt_groups;

/* Number of state floats per parameter: SGD with momentum 1, without 0; Adam 2. */
int pc_opt_state_per_param(const pc_opt_config *c);

/* One update of params[begin, end) with learning rate lr (times the group's multiplier;
 * g NULL: one group with c->weight_decay). `step` counts from 1 (Adam's bias
 * correction). state holds state_per_param arrays of n floats each, back to back:
 * state + k*n is the k-th. Follows torch.optim exactly. */
void pc_opt_step(const pc_opt_config *c, const pc_opt_groups *g, float lr, int64_t step,
                 float *params, const float *grads, float *state, int64_t n, int64_t begin,
                 int64_t end);

pc_status pc_opt_parse(const char *name, pc_opt_kind *out);
const char *pc_opt_name(pc_opt_kind k);

typedef enum {
    PC_SCHED_CONSTANT = 0,
    PC_SCHED_EXP,
    PC_SCHED_STEP,
    PC_SCHED_COSINE,
    PC_SCHED_TRIANGULAR
} pc_sched_kind;

typedef struct {
    pc_sched_kind kind;
    float base_lr;
    float decay_rate;     /* exp: lr *= decay_rate every decay_epochs (continuously);
                             step: lr *= decay_rate at every decay_epochs boundary */
    float decay_epochs;
    float warmup_epochs;  /* linear warm-up from base_lr/steps to base_lr */
    float min_lr;         /* cosine floor */
    float peak_epoch;     /* triangular: base_lr is reached here (< 0: at 20% of the run) */
    float start_factor;   /* triangular: the first step's lr is base_lr * start_factor */
    int64_t steps_per_epoch, total_steps;
} pc_sched_config;

/* Learning rate for the step with 0-based index `step`. triangular (airbench's
 * one-cycle): linear from base_lr * start_factor at step 0 to base_lr at the peak, then
 * linear to 0 at total_steps (the last step still has a small positive rate); it has
 * its own warm-up, so warmup_epochs should be 0. */
float pc_sched_lr(const pc_sched_config *s, int64_t step);
pc_status pc_sched_parse(const char *name, pc_sched_kind *out);
const char *pc_sched_name(pc_sched_kind k);

#endif
