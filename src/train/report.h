/* What a run leaves for people to look at, in its --out DIR:
 *   settings.json  the run's settings (written when training starts)
 *   eval.json      the final evaluation (train/metrics.h's JSON)
 *   samples.json   test images with their true and predicted classes, misclassified first
 *   report.svg     charts of test accuracy against time and epochs, and of the loss
 *   report.html    one self-contained page (no network): the curves of every epoch line of
 *                  metrics.jsonl, the time split, the confusion matrix as a heat map,
 *                  per-class metrics, the image grid and the settings; for several runs
 *                  (`parcnn report DIR...`) their curves overlaid.
 * The epoch axis is the line's step over the steps per epoch, so an epoch cut short by
 * --max-steps sits where it ended; the time axis sums the epochs' seconds. */
#ifndef PC_REPORT_H
#define PC_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"
#include "data/dataset.h"
#include "train/metrics.h"
#include "train/train.h"

/* Facts of a run that its configuration does not hold. */
typedef struct {
    const char *model;        /* the model's name */
    int64_t params;
    int ranks;
    int64_t steps_per_epoch;
    int64_t train_samples, test_samples;
    int64_t val_samples;      /* held out of the training set by --val-split (0: none) */
    int classes, c, h, w;     /* classes and the input shape */
    double lr;                /* the base learning rate after --lr-scale */
    const char *kernels;      /* the kernels' name */
} pc_report_facts;

/* DIR/settings.json from the configuration and the facts. */
pc_status pc_report_write_settings(const char *dir, const pc_train_config *c,
                                   const pc_report_facts *facts);

/* DIR/samples.json: up to `count` test samples, the misclassified ones first (in sample
 * order), each as a PNG data URI with its true and predicted class and the predicted
 * class's probability; from the kept scores of m over d. */
pc_status pc_report_write_samples(const char *dir, const pc_dataset *d, const pc_metrics *m,
                                  char *const *class_names, int count);

/* DIR/report.svg and DIR/report.html from DIR's files (metrics.jsonl is required; the
 * others are shown when present). */
pc_status pc_report_write(const char *dir);

/* One page overlaying several runs (report.html of `parcnn report DIR DIR...`), written
 * to out_path. */
pc_status pc_report_write_html(const char *const *dirs, int n, const char *out_path);

/* ------------------------------------------------------------ for the writers */

/* A run read back from its folder. */
typedef struct {
    char *dir, *label;        /* label: the folder's name, and ranks x workers */
    int n;                    /* epoch lines */
    double *epoch, *clock, *train_loss, *train_acc, *val_loss, *val_acc, *lr, *ips;
    double *split[5];         /* data, compute, reduce, communication, optimizer seconds */
    void *settings, *eval, *samples; /* cJSON objects, or NULL where the file is absent */
} pc_report_run;

pc_status pc_report_run_load(const char *dir, pc_report_run *r);
void pc_report_run_free(pc_report_run *r);
/* "MODEL on DATA: final test accuracy X (tta ..., weight average)" into buf. */
void pc_report_title(const pc_report_run *r, char *buf, size_t cap);
/* The HTML page of n runs, to an open stream. */
void pc_report_html(FILE *f, const pc_report_run *runs, int n);

#endif
