/* Classification metrics from a confusion matrix and, when kept, the per-sample class
 * probabilities (for ROC AUC and the report's sample grid). */
#ifndef PC_METRICS_H
#define PC_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "core/common.h"

typedef struct {
    int classes;
    int64_t *confusion;  /* classes x classes: row = true class, column = predicted */
    int64_t n;
    double loss_sum;
    /* pc_metrics_keep_scores: every evaluated sample's label and class probabilities
     * (n x classes, in sample order, on every rank); NULL otherwise */
    int32_t *labels;
    float *scores;
    int64_t scores_cap;  /* samples they have room for */
} pc_metrics;

int pc_metrics_init(pc_metrics *m, int classes);
/* Also keep the labels and probabilities of up to n samples (filled by the evaluation). */
int pc_metrics_keep_scores(pc_metrics *m, int64_t n);
void pc_metrics_free(pc_metrics *m);
double pc_metrics_accuracy(const pc_metrics *m);
double pc_metrics_loss(const pc_metrics *m);
/* Per-class precision, recall, F1 (0 when undefined). */
void pc_metrics_class(const pc_metrics *m, int k, double *precision, double *recall, double *f1);
double pc_metrics_macro_f1(const pc_metrics *m);
/* Mean recall over the classes that occur (scikit-learn's balanced_accuracy_score). */
double pc_metrics_balanced_accuracy(const pc_metrics *m);
/* Cohen's kappa of true against predicted classes; quadratic: disagreement weights
 * (i - j)^2 over the class indices, for ordered grades (scikit-learn's cohen_kappa_score
 * with weights=None or "quadratic" and labels=range(classes)). NAN when undefined. */
double pc_metrics_kappa(const pc_metrics *m, int quadratic);
/* One-vs-rest ROC AUC of class k from the kept scores (ties count one half, as the
 * trapezoidal ROC area); NAN without scores or when class k has no positive or no
 * negative sample. */
double pc_metrics_roc_auc(const pc_metrics *m, int k);
/* The unweighted mean of the defined per-class AUCs (NAN when none is). */
double pc_metrics_roc_auc_macro(const pc_metrics *m);
/* The human report: accuracy, loss, per-class table, macro averages, balanced accuracy,
 * kappa, AUC, confusion matrix. */
void pc_metrics_print(const pc_metrics *m, char *const *class_names, FILE *f);
/* One JSON object (see docs/reports.md): samples, accuracy, loss, balanced_accuracy,
 * kappa, quadratic_kappa, roc_auc_macro, macro_precision, macro_recall, macro_f1,
 * per_class, confusion, and tta (the test-time augmentation) when non-NULL. Caller frees. */
char *pc_metrics_json(const pc_metrics *m, char *const *class_names, const char *tta);
/* A cJSON tree, pretty-printed with a final newline, written to path via a temporary that is
 * synced and renamed: every JSON file a run leaves goes through this. */
struct cJSON;
pc_status pc_json_write(const char *path, const struct cJSON *root);
/* pc_metrics_json written to path as pc_json_write does. */
pc_status pc_metrics_write_json(const pc_metrics *m, char *const *class_names, const char *tta,
                                const char *path);

#endif
