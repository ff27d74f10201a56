#include "train/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "train/report.h"

int pc_metrics_init(pc_metrics *m, int classes) {
    memset(m, 0, sizeof *m);
    m->classes = classes;
    m->confusion = calloc((size_t)classes * classes, sizeof(int64_t));
    return m->confusion ? 0 : -1;
}

int pc_metrics_keep_scores(pc_metrics *m, int64_t n) {
    free(m->labels);
    free(m->scores);
    m->labels = malloc(sizeof(int32_t) * (n ? n : 1));
    m->scores = malloc(sizeof(float) * (n ? n : 1) * m->classes);
    m->scores_cap = n;
    if (m->labels && m->scores) return 0;
    free(m->labels);
    free(m->scores);
    m->labels = NULL;
    m->scores = NULL;
    m->scores_cap = 0;
    return -1;
}

void pc_metrics_free(pc_metrics *m) {
    free(m->confusion);
    free(m->labels);
    free(m->scores);
    memset(m, 0, sizeof *m);
}

static int64_t cell(const pc_metrics *m, int row, int col) {
    return m->confusion[(int64_t)row * m->classes + col];
}

double pc_metrics_accuracy(const pc_metrics *m) {
    int64_t ok = 0;
    for (int k = 0; k < m->classes; k++) ok += cell(m, k, k);
    return m->n ? (double)ok / (double)m->n : 0.0;
}

double pc_metrics_loss(const pc_metrics *m) { return m->n ? m->loss_sum / (double)m->n : 0.0; }

static int64_t row_sum(const pc_metrics *m, int k) {
    int64_t s = 0;
    for (int j = 0; j < m->classes; j++) s += cell(m, k, j);
    return s;
}

static int64_t col_sum(const pc_metrics *m, int k) {
    int64_t s = 0;
    for (int j = 0; j < m->classes; j++) s += cell(m, j, k);
    return s;
}

void pc_metrics_class(const pc_metrics *m, int k, double *precision, double *recall, double *f1) {
    int64_t tp = cell(m, k, k), row = row_sum(m, k), col = col_sum(m, k);
    *precision = col ? (double)tp / (double)col : 0.0;
    *recall = row ? (double)tp / (double)row : 0.0;
    *f1 = (*precision + *recall) > 0 ? 2 * *precision * *recall / (*precision + *recall) : 0.0;
}

static void macro(const pc_metrics *m, double *p, double *r, double *f) {
    *p = *r = *f = 0;
    for (int k = 0; k < m->classes; k++) {
        double a, b, c;
        pc_metrics_class(m, k, &a, &b, &c);
        *p += a;
        *r += b;
        *f += c;
    }
    *p /= m->classes;
    *r /= m->classes;
    *f /= m->classes;
}

double pc_metrics_macro_f1(const pc_metrics *m) {
    double p, r, f;
    macro(m, &p, &r, &f);
    return f;
}

double pc_metrics_balanced_accuracy(const pc_metrics *m) {
    double sum = 0;
    int present = 0;
    for (int k = 0; k < m->classes; k++) {
        int64_t row = row_sum(m, k);
        if (!row) continue;
        sum += (double)cell(m, k, k) / (double)row;
        present++;
    }
    return present ? sum / present : 0.0;
}

/* kappa = 1 - sum(w O) / sum(w E): O the confusion matrix, E the outer product of its
 * row and column sums over n (agreement by chance), w the disagreement weights. */
double pc_metrics_kappa(const pc_metrics *m, int quadratic) {
    if (!m->n) return NAN;
    double observed = 0, expected = 0;
    for (int i = 0; i < m->classes; i++) {
        double row = (double)row_sum(m, i);
        for (int j = 0; j < m->classes; j++) {
            double w = quadratic ? (double)(i - j) * (i - j) : (i != j);
            observed += w * (double)cell(m, i, j);
            expected += w * row * (double)col_sum(m, j) / (double)m->n;
        }
    }
    return expected > 0 ? 1.0 - observed / expected : NAN;
}

typedef struct {
    float score;
    int positive;
} scored;

static int by_score(const void *a, const void *b) {
    float x = ((const scored *)a)->score, y = ((const scored *)b)->score;
    return (x > y) - (x < y);
}

/* The Mann-Whitney form: (rank sum of the positives - P(P+1)/2) / (P N), ranks from 1 in
 * ascending score, tied scores sharing their mean rank; equal to the trapezoidal area
 * under the ROC curve. Ranks are halves of integers: exact in double. */
double pc_metrics_roc_auc(const pc_metrics *m, int k) {
    if (!m->scores || m->n > m->scores_cap || m->n == 0) return NAN;
    scored *s = malloc(sizeof(scored) * m->n);
    if (!s) return NAN;
    int64_t positives = 0;
    for (int64_t i = 0; i < m->n; i++) {
        s[i].score = m->scores[i * m->classes + k];
        if (isnan(s[i].score)) { /* a diverged model's scores have no ranking */
            free(s);
            return NAN;
        }
        s[i].positive = m->labels[i] == k;
        positives += s[i].positive;
    }
    int64_t negatives = m->n - positives;
    double rank_sum = 0;
    qsort(s, m->n, sizeof *s, by_score);
    for (int64_t lo = 0, hi; lo < m->n; lo = hi) {
        int64_t pos = 0;
        for (hi = lo; hi < m->n && s[hi].score == s[lo].score; hi++) pos += s[hi].positive;
        rank_sum += (double)pos * (double)(lo + 1 + hi) / 2.0;
    }
    free(s);
    if (!positives || !negatives) return NAN;
    double p = (double)positives;
    return (rank_sum - p * (p + 1) / 2) / (p * (double)negatives);
}

double pc_metrics_roc_auc_macro(const pc_metrics *m) {
    double sum = 0;
    int defined = 0;
    for (int k = 0; k < m->classes; k++) {
        double a = pc_metrics_roc_auc(m, k);
        if (isnan(a)) continue;
        sum += a;
        defined++;
    }
    return defined ? sum / defined : NAN;
}

static void print_optional(FILE *f, const char *label, double v) {
    if (isnan(v)) fprintf(f, "%-18s -\n", label);
    else fprintf(f, "%-18s %.4f\n", label, v);
}

static void print_summary(const pc_metrics *m, FILE *f) {
    fprintf(f, "samples   %lld\naccuracy  %.4f\nloss      %.4f\n", (long long)m->n,
            pc_metrics_accuracy(m), pc_metrics_loss(m));
    fprintf(f, "%-18s %.4f\n", "balanced accuracy", pc_metrics_balanced_accuracy(m));
    print_optional(f, "kappa", pc_metrics_kappa(m, 0));
    print_optional(f, "quadratic kappa", pc_metrics_kappa(m, 1));
    if (m->scores) print_optional(f, "ROC AUC (macro)", pc_metrics_roc_auc_macro(m));
    fprintf(f, "\n");
}

static void print_classes(const pc_metrics *m, char *const *names, int width, FILE *f) {
    fprintf(f, "%-*s  precision  recall      f1  support%s\n", width, "class",
            m->scores ? "  ROC AUC" : "");
    for (int k = 0; k < m->classes; k++) {
        double p, r, f1;
        pc_metrics_class(m, k, &p, &r, &f1);
        fprintf(f, "%-*s  %9.4f  %6.4f  %6.4f  %7lld", width, names[k], p, r, f1,
                (long long)row_sum(m, k));
        double auc = m->scores ? pc_metrics_roc_auc(m, k) : NAN;
        if (m->scores && isnan(auc)) fprintf(f, "        -");
        else if (m->scores) fprintf(f, "   %6.4f", auc);
        fprintf(f, "\n");
    }
    double p, r, f1;
    macro(m, &p, &r, &f1);
    fprintf(f, "%-*s  %9.4f  %6.4f  %6.4f  %7lld\n\n", width, "macro avg", p, r, f1,
            (long long)m->n);
}

void pc_metrics_print(const pc_metrics *m, char *const *names, FILE *f) {
    print_summary(m, f);
    int width = 9; /* "macro avg" */
    for (int k = 0; k < m->classes; k++) width = PC_MAX(width, (int)strlen(names[k]));
    print_classes(m, names, width, f);
    fprintf(f, "confusion matrix (rows: true class, columns: predicted)\n%-*s", width, "");
    for (int j = 0; j < m->classes; j++) fprintf(f, " %6d", j);
    fprintf(f, "\n");
    for (int k = 0; k < m->classes; k++) {
        fprintf(f, "%-*s", width, names[k]);
        for (int j = 0; j < m->classes; j++) fprintf(f, " %6lld", (long long)cell(m, k, j));
        fprintf(f, "\n");
    }
}

/* A number, or null where it is undefined (JSON has no NaN). */
static void add_optional(cJSON *o, const char *key, double v) {
    if (isnan(v)) cJSON_AddNullToObject(o, key);
    else cJSON_AddNumberToObject(o, key, v);
}

static void add_per_class(cJSON *root, const pc_metrics *m, char *const *names) {
    cJSON *per = cJSON_AddArrayToObject(root, "per_class");
    cJSON *conf = cJSON_AddArrayToObject(root, "confusion");
    for (int k = 0; k < m->classes; k++) {
        cJSON *c = cJSON_CreateObject(), *row = cJSON_CreateArray();
        for (int j = 0; j < m->classes; j++)
            cJSON_AddItemToArray(row, cJSON_CreateNumber((double)cell(m, k, j)));
        cJSON_AddItemToArray(conf, row);
        double p, r, f1;
        pc_metrics_class(m, k, &p, &r, &f1);
        cJSON_AddStringToObject(c, "class", names[k]);
        cJSON_AddNumberToObject(c, "precision", p);
        cJSON_AddNumberToObject(c, "recall", r);
        cJSON_AddNumberToObject(c, "f1", f1);
        cJSON_AddNumberToObject(c, "support", (double)row_sum(m, k));
        add_optional(c, "roc_auc", pc_metrics_roc_auc(m, k));
        cJSON_AddItemToArray(per, c);
    }
}

char *pc_metrics_json(const pc_metrics *m, char *const *names, const char *tta) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "samples", (double)m->n);
    if (tta) cJSON_AddStringToObject(root, "tta", tta);
    cJSON_AddNumberToObject(root, "accuracy", pc_metrics_accuracy(m));
    cJSON_AddNumberToObject(root, "loss", pc_metrics_loss(m));
    cJSON_AddNumberToObject(root, "balanced_accuracy", pc_metrics_balanced_accuracy(m));
    add_optional(root, "kappa", pc_metrics_kappa(m, 0));
    add_optional(root, "quadratic_kappa", pc_metrics_kappa(m, 1));
    add_optional(root, "roc_auc_macro", pc_metrics_roc_auc_macro(m));
    double p, r, f1;
    macro(m, &p, &r, &f1);
    cJSON_AddNumberToObject(root, "macro_precision", p);
    cJSON_AddNumberToObject(root, "macro_recall", r);
    cJSON_AddNumberToObject(root, "macro_f1", f1);
    add_per_class(root, m, names);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* text (cJSON's, freed here) and a newline to path, atomically. */
static pc_status write_json_text(const char *path, char *text) {
    if (!text) return pc_fail_nomem();
    size_t len = strlen(text);
    text[len] = '\n'; /* the terminator replaced, the length given explicitly */
    pc_status st = pc_write_file_atomic(path, text, len + 1);
    free(text);
    return st;
}

pc_status pc_json_write(const char *path, const cJSON *root) {
    return write_json_text(path, root ? cJSON_Print(root) : NULL);
}

pc_status pc_metrics_write_json(const pc_metrics *m, char *const *names, const char *tta,
                                const char *path) {
    return write_json_text(path, pc_metrics_json(m, names, tta));
}
