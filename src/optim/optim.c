#include "optim/optim.h"

#include <math.h>

int pc_opt_state_per_param(const pc_opt_config *c) {
    if (c->kind == PC_OPT_SGD) return c->momentum != 0.0f ? 1 : 0;
    return 2;
}

/* torch.optim.SGD: g += wd*p; buf = momentum*buf + g (buf = g at the first step);
 * nesterov: g += momentum*buf, else g = buf; p -= lr*g. */
static void sgd(const pc_opt_config *c, float lr, float wd, int64_t step, float *p,
                const float *g, float *buf, int64_t begin, int64_t end) {
    const float mu = c->momentum;
    for (int64_t i = begin; i < end; i++) {
        float d = g[i] + wd * p[i];
        if (buf) {
            buf[i] = step == 1 ? d : mu * buf[i] + d;
            d = c->nesterov ? d + mu * buf[i] : buf[i];
        }
        p[i] -= lr * d;
    }
}

/* torch.optim.Adam / AdamW (amsgrad off). */
static void adam(const pc_opt_config *c, float lr, float wd, int64_t step, float *p,
                 const float *g, float *m, float *v, int64_t begin, int64_t end) {
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    const float bc1 = 1.0f - powf(b1, (float)step), bc2 = 1.0f - powf(b2, (float)step);
    const float step_size = lr / bc1, bc2_sqrt = sqrtf(bc2);
    const int decoupled = c->kind == PC_OPT_ADAMW;
    for (int64_t i = begin; i < end; i++) {
        float d = g[i];
        if (decoupled)
            p[i] *= 1.0f - lr * wd;
        else
            d += wd * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * d;
        v[i] = b2 * v[i] + (1.0f - b2) * d * d;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] -= step_size * m[i] / denom;
    }
}

static void update(const pc_opt_config *c, float lr, float wd, int64_t step, float *params,
                   const float *grads, float *state, int64_t n, int64_t begin, int64_t end) {
    if (c->kind == PC_OPT_SGD)
        sgd(c, lr, wd, step, params, grads, pc_opt_state_per_param(c) ? state : NULL, begin, end);
    else
        adam(c, lr, wd, step, params, grads, state, state + n, begin, end);
}

/* Each run of consecutive indices of one group is updated with that group's settings
 * (parameters are laid out tensor by tensor, so runs are long). */
void pc_opt_step(const pc_opt_config *c, const pc_opt_groups *g, float lr, int64_t step,
                 float *params, const float *grads, float *state, int64_t n, int64_t begin,
                 int64_t end) {
    if (!g) {
        update(c, lr, c->weight_decay, step, params, grads, state, n, begin, end);
        return;
    }
    for (int64_t i = begin, j; i < end; i = j) {
        int k = 0;
        j = end;
        if (g->group) {
            k = g->group[i];
            for (j = i + 1; j < end && g->group[j] == k; j++) {}
        }
        update(c, lr * g->lr_mult[k], g->weight_decay[k], step, params, grads, state, n, i, j);
    }
}

static const char *const opt_names[] = {"sgd", "adam", "adamw"};
const char *pc_opt_name(pc_opt_kind k) { return opt_names[k]; }

pc_status pc_opt_parse(const char *name, pc_opt_kind *out) {
    int k;
    PC_TRY(pc_parse_choice("--optimizer", name, opt_names, 3, &k));
    *out = (pc_opt_kind)k;
    return PC_OK;
}

static const char *const sched_names[] = {"constant", "exp", "step", "cosine", "triangular"};
const char *pc_sched_name(pc_sched_kind k) { return sched_names[k]; }

pc_status pc_sched_parse(const char *name, pc_sched_kind *out) {
    int k;
    PC_TRY(pc_parse_choice("--schedule", name, sched_names, 5, &k));
    *out = (pc_sched_kind)k;
    return PC_OK;
}

/* The triangular schedule's factor at `step`: start_factor -> 1 at the peak -> 0 at the
 * end. */
static double triangle(const pc_sched_config *s, double step) {
    double total = (double)s->total_steps;
    double peak = s->peak_epoch >= 0 ? s->peak_epoch * (double)s->steps_per_epoch : 0.2 * total;
    if (step < peak) return s->start_factor + (1.0 - s->start_factor) * step / peak;
    if (step >= total) return 0.0;
    return (total - step) / (total - peak);
}

float pc_sched_lr(const pc_sched_config *s, int64_t step) {
    double epoch = (double)step / (double)(s->steps_per_epoch > 0 ? s->steps_per_epoch : 1);
    double warm_steps = s->warmup_epochs * (double)s->steps_per_epoch;
    if (step < warm_steps) return (float)(s->base_lr * (double)(step + 1) / warm_steps);
    double lr = s->base_lr;
    switch (s->kind) {
    case PC_SCHED_CONSTANT:
        break;
    case PC_SCHED_EXP:
        lr *= pow(s->decay_rate, epoch / s->decay_epochs);
        break;
    case PC_SCHED_STEP:
        lr *= pow(s->decay_rate, floor(epoch / s->decay_epochs));
        break;
    case PC_SCHED_COSINE: {
        double span = (double)s->total_steps - warm_steps;
        double t = span > 0 ? ((double)step - warm_steps) / span : 1.0;
        if (t > 1) t = 1;
        lr = s->min_lr + 0.5 * (s->base_lr - s->min_lr) * (1.0 + cos(3.141592653589793 * t));
        break;
    }
    case PC_SCHED_TRIANGULAR:
        lr *= triangle(s, (double)step);
        break;
    }
    return (float)lr;
}
