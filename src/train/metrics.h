/* Classification metrics from a confusion matrix. */
#ifndef PC_METRICS_H
#define PC_METRICS_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    int classes;
    int64_t *confusion;  /* classes x classes: row = true class, column = predicted */
    int64_t n;
    double loss_sum;
} pc_metrics;

int pc_metrics_init(pc_metrics *m, int classes);
void pc_metrics_free(pc_metrics *m);
double pc_metrics_accuracy(const pc_metrics *m);
double pc_metrics_loss(const pc_metrics *m);
/* Per-class precision, recall, F1 (0 when undefined). */
void pc_metrics_class(const pc_metrics *m, int k, double *precision, double *recall, double *f1);
double pc_metrics_macro_f1(const pc_metrics *m);
/* The human report: accuracy, loss, per-class table, macro averages, confusion matrix. */
void pc_metrics_print(const pc_metrics *m, char *const *class_names, FILE *f);
/* One JSON object: accuracy, loss, macro_precision, macro_recall, macro_f1, per_class, confusion. */
void pc_metrics_print_json(const pc_metrics *m, char *const *class_names, FILE *f);

#endif
