#include "train/metrics.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/common.h"

int pc_metrics_init(pc_metrics *m, int classes) {
    memset(m, 0, sizeof *m);
    m->classes = classes;
    m->confusion = calloc((size_t)classes * classes, sizeof(int64_t));
    return m->confusion ? 0 : -1;
}

void pc_metrics_free(pc_metrics *m) {
    free(m->confusion);
    memset(m, 0, sizeof *m);
}

double pc_metrics_accuracy(const pc_metrics *m) {
    int64_t ok = 0;
    for (int k = 0; k < m->classes; k++) ok += m->confusion[(int64_t)k * m->classes + k];
    return m->n ? (double)ok / (double)m->n : 0.0;
}

double pc_metrics_loss(const pc_metrics *m) { return m->n ? m->loss_sum / (double)m->n : 0.0; }

void pc_metrics_class(const pc_metrics *m, int k, double *precision, double *recall, double *f1) {
    int64_t tp = m->confusion[(int64_t)k * m->classes + k], row = 0, col = 0;
    for (int j = 0; j < m->classes; j++) {
        row += m->confusion[(int64_t)k * m->classes + j];
        col += m->confusion[(int64_t)j * m->classes + k];
    }
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

void pc_metrics_print(const pc_metrics *m, char *const *names, FILE *f) {
    fprintf(f, "samples   %lld\naccuracy  %.4f\nloss      %.4f\n\n", (long long)m->n,
            pc_metrics_accuracy(m), pc_metrics_loss(m));
    int width = 5;
    for (int k = 0; k < m->classes; k++) width = PC_MAX(width, (int)strlen(names[k]));
    fprintf(f, "%-*s  precision  recall      f1  support\n", width, "class");
    for (int k = 0; k < m->classes; k++) {
        double p, r, f1;
        int64_t support = 0;
        for (int j = 0; j < m->classes; j++) support += m->confusion[(int64_t)k * m->classes + j];
        pc_metrics_class(m, k, &p, &r, &f1);
        fprintf(f, "%-*s  %9.4f  %6.4f  %6.4f  %7lld\n", width, names[k], p, r, f1,
                (long long)support);
    }
    double p, r, f1;
    macro(m, &p, &r, &f1);
    fprintf(f, "%-*s  %9.4f  %6.4f  %6.4f  %7lld\n\n", width, "macro avg", p, r, f1,
            (long long)m->n);
    fprintf(f, "confusion matrix (rows: true class, columns: predicted)\n%-*s", width, "");
    for (int j = 0; j < m->classes; j++) fprintf(f, " %6d", j);
    fprintf(f, "\n");
    for (int k = 0; k < m->classes; k++) {
        fprintf(f, "%-*s", width, names[k]);
        for (int j = 0; j < m->classes; j++)
            fprintf(f, " %6lld", (long long)m->confusion[(int64_t)k * m->classes + j]);
        fprintf(f, "\n");
    }
}

void pc_metrics_print_json(const pc_metrics *m, char *const *names, FILE *f) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "samples", (double)m->n);
    cJSON_AddNumberToObject(root, "accuracy", pc_metrics_accuracy(m));
    cJSON_AddNumberToObject(root, "loss", pc_metrics_loss(m));
    double p, r, f1;
    macro(m, &p, &r, &f1);
    cJSON_AddNumberToObject(root, "macro_precision", p);
    cJSON_AddNumberToObject(root, "macro_recall", r);
    cJSON_AddNumberToObject(root, "macro_f1", f1);
    cJSON *per = cJSON_AddArrayToObject(root, "per_class");
    cJSON *conf = cJSON_AddArrayToObject(root, "confusion");
    for (int k = 0; k < m->classes; k++) {
        cJSON *c = cJSON_CreateObject();
        int64_t support = 0;
        cJSON *row = cJSON_CreateArray();
        for (int j = 0; j < m->classes; j++) {
            int64_t v = m->confusion[(int64_t)k * m->classes + j];
            support += v;
            cJSON_AddItemToArray(row, cJSON_CreateNumber((double)v));
        }
        cJSON_AddItemToArray(conf, row);
        pc_metrics_class(m, k, &p, &r, &f1);
        cJSON_AddStringToObject(c, "class", names[k]);
        cJSON_AddNumberToObject(c, "precision", p);
        cJSON_AddNumberToObject(c, "recall", r);
        cJSON_AddNumberToObject(c, "f1", f1);
        cJSON_AddNumberToObject(c, "support", (double)support);
        cJSON_AddItemToArray(per, c);
    }
    char *s = cJSON_PrintUnformatted(root);
    fprintf(f, "%s\n", s);
    free(s);
    cJSON_Delete(root);
}
