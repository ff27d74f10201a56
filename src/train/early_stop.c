#include "train/early_stop.h"

#include <math.h>
#include <stdio.h>

const char *pc_monitor_name(int monitor) {
    return monitor == PC_MONITOR_VAL_ACC ? "val_acc" : "val_loss";
}

/* Keras's EarlyStopping._is_improvement: beyond the best by more than min_delta, in the
 * monitored value's good direction. */
static int improves(const pc_early_stop_rule *rule, double value, double best) {
    if (rule->monitor == PC_MONITOR_VAL_ACC) return value - rule->min_delta > best;
    return value + rule->min_delta < best;
}

int pc_early_stop_update(pc_early_stop *s, const pc_early_stop_rule *rule, int epoch, double value) {
    s->wait++;
    if (isfinite(value) && (s->best_epoch == 0 || improves(rule, value, s->best))) {
        s->best = value;
        s->best_epoch = epoch;
        s->wait = 0;
        return 1;
    }
    s->stopped = rule->patience > 0 && s->wait >= rule->patience;
    return 0;
}

void pc_early_stop_format(const pc_early_stop *s, char *buf, size_t n) {
    snprintf(buf, n, "%a %d %d", s->best, s->best_epoch, s->wait);
}

int pc_early_stop_parse(const char *text, const pc_early_stop_rule *rule, pc_early_stop *s) {
    pc_early_stop r = {0};
    int used = 0;
    if (!text || sscanf(text, "%la %d %d%n", &r.best, &r.best_epoch, &r.wait, &used) != 3 ||
        text[used] || r.best_epoch < 0 || r.wait < 0)
        return 0;
    r.stopped = rule->patience > 0 && r.best_epoch > 0 && r.wait >= rule->patience;
    *s = r;
    return 1;
}
