/* Early stopping and the best model (--early-stop, --monitor, --min-delta, --keep best),
 * with Keras's EarlyStopping semantics: after every epoch the monitored value (val_loss,
 * lower is better, or val_acc, higher is better) is an improvement when it beats the best
 * so far by more than min_delta; each epoch without one counts, and the run stops once
 * `patience` epochs in a row brought none. The best epoch is the last improvement.
 *
 * The state is a function of the epoch lines alone (the same for any worker or rank count)
 * and travels in the checkpoint, so a resumed run stops where the uninterrupted one does. */
#ifndef PC_EARLY_STOP_H
#define PC_EARLY_STOP_H

#include <stddef.h>

#include "core/common.h"

/* --monitor: 0 when the flag was not given (then val_loss). */
enum { PC_MONITOR_DEFAULT = 0, PC_MONITOR_VAL_LOSS = 1, PC_MONITOR_VAL_ACC = 2 };

typedef struct {
    double best;     /* the best monitored value so far (meaningless while best_epoch is 0) */
    int best_epoch;  /* 1-based epoch of the last improvement; 0: none yet */
    int wait;        /* epochs since then */
    int stopped;     /* 1: patience ran out (the run is over) */
} pc_early_stop;

typedef struct {
    int monitor;     /* PC_MONITOR_* */
    double min_delta;
    int patience;    /* 0: never stop (--keep best alone) */
} pc_early_stop_rule;

/* "val_loss" or "val_acc". */
const char *pc_monitor_name(int monitor);

/* After epoch `epoch` (1-based) with monitored `value`: update s; returns 1 when the
 * value is an improvement (a new best epoch). Sets s->stopped when patience ran out. */
int pc_early_stop_update(pc_early_stop *s, const pc_early_stop_rule *rule, int epoch, double value);

/* The state as checkpoint metadata ("%a best, best epoch, wait": exact) and back (parsing
 * fails on anything else; `stopped` is then patience <= wait under the resuming run's
 * rule, so a run resumed with more patience goes on, as one resumed with more epochs). */
void pc_early_stop_format(const pc_early_stop *s, char *buf, size_t n);
int pc_early_stop_parse(const char *text, const pc_early_stop_rule *rule, pc_early_stop *s);

#endif
