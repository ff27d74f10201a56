/* Classification metrics against scikit-learn (Debian's python3-sklearn): balanced
 * accuracy, Cohen's kappa (plain and quadratic), one-vs-rest ROC AUC per class and macro,
 * precision, recall and F1 on fixed labels and probabilities with tied scores; worked
 * examples by hand; AUC independent of the sample order; eval.json's atomic writer. */
#define _GNU_SOURCE
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "testfs.h"
#include "train/metrics.h"

enum { N = 600, K = 5 };

/* A fixed pseudo-random set: labels in [0, K) (class `absent` left out when >= 0), class
 * probabilities that favour the true class, rounded to 1/40 before normalizing so that
 * many scores tie; the prediction is the arg max, as the evaluation takes it. */
static void make_case(pc_metrics *m, int absent) {
    uint64_t s = 12345;
    m->n = N;
    for (int64_t i = 0; i < N; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        int y = (int)((s >> 33) % K);
        if (y == absent) y = (y + 1) % K;
        float p[K], sum = 0;
        for (int k = 0; k < K; k++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            double u = (double)(s >> 11) / 9007199254740992.0;
            p[k] = (float)(floor((u + (k == y ? 0.6 : 0.0) + (abs(k - y) == 1 ? 0.2 : 0.0)) * 40) + 1) / 40;
            sum += p[k];
        }
        int best = 0;
        for (int k = 0; k < K; k++) {
            m->scores[i * K + k] = p[k] / sum;
            if (p[k] > p[best]) best = k;
        }
        m->labels[i] = y;
        m->confusion[y * K + best]++;
    }
}

/* scikit-learn's numbers for m, one per line, in the order the checks read them. */
static int sklearn_numbers(const pc_metrics *m, double *out, int max) {
    FILE *f = fopen(tpath("case.txt"), "w");
    for (int64_t i = 0; i < m->n; i++) {
        int best = 0;
        for (int k = 0; k < K; k++)
            if (m->scores[i * K + k] > m->scores[i * K + best]) best = k;
        fprintf(f, "%d %d", m->labels[i], best);
        for (int k = 0; k < K; k++) fprintf(f, " %.9g", m->scores[i * K + k]);
        fprintf(f, "\n");
    }
    fclose(f);
    const char *script =
        "import sys, warnings, numpy as np\n"
        "warnings.simplefilter('ignore')\n"
        "from sklearn import metrics as M\n"
        "d = np.loadtxt(sys.argv[1]); y = d[:, 0].astype(int); pred = d[:, 1].astype(int)\n"
        "P = d[:, 2:]; K = P.shape[1]; labels = list(range(K))\n"
        "out = [M.balanced_accuracy_score(y, pred), M.cohen_kappa_score(y, pred, labels=labels),\n"
        "       M.cohen_kappa_score(y, pred, labels=labels, weights='quadratic')]\n"
        "for k in range(K):\n"
        "    out.append(M.roc_auc_score(y == k, P[:, k]) if 0 < (y == k).sum() < len(y) else float('nan'))\n"
        "present = sorted(set(y))\n"
        "if len(present) == K:\n"
        "    out.append(M.roc_auc_score(y, P, multi_class='ovr', average='macro'))\n"
        "else:\n"
        "    out.append(float(np.mean([out[3 + k] for k in present])))\n"
        "p, r, f, _ = M.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)\n"
        "out += list(p) + list(r) + list(f)\n"
        "print('\\n'.join('%.17g' % v for v in out))\n";
    write_file(tpath("golden.py"), script, strlen(script));
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s", tpath("golden.py"), tpath("case.txt"));
    FILE *p = popen(cmd, "r");
    int n = 0;
    while (p && n < max && fscanf(p, "%lf", &out[n]) == 1) n++;
    if (p) pclose(p);
    return n;
}

static int close_to(double a, double b) {
    return (isnan(a) && isnan(b)) || fabs(a - b) <= 1e-12 * fmax(1, fabs(b));
}

static void check_against_sklearn(int absent) {
    pc_metrics m;
    CHECK(pc_metrics_init(&m, K) == 0 && pc_metrics_keep_scores(&m, N) == 0, "init");
    make_case(&m, absent);
    double g[64];
    int n = sklearn_numbers(&m, g, 64);
    CHECK(n == 4 + K + 3 * K, "scikit-learn gave %d numbers (is python3-sklearn installed? "
          "scripts/setup.sh installs it)", n);
    if (n == 4 + K + 3 * K) {
        CHECK(close_to(pc_metrics_balanced_accuracy(&m), g[0]), "balanced accuracy %.17g, sklearn %.17g",
              pc_metrics_balanced_accuracy(&m), g[0]);
        CHECK(close_to(pc_metrics_kappa(&m, 0), g[1]), "kappa %.17g, sklearn %.17g", pc_metrics_kappa(&m, 0), g[1]);
        CHECK(close_to(pc_metrics_kappa(&m, 1), g[2]), "quadratic kappa %.17g, sklearn %.17g",
              pc_metrics_kappa(&m, 1), g[2]);
        for (int k = 0; k < K; k++)
            CHECK(close_to(pc_metrics_roc_auc(&m, k), g[3 + k]), "class %d AUC %.17g, sklearn %.17g", k,
                  pc_metrics_roc_auc(&m, k), g[3 + k]);
        CHECK(close_to(pc_metrics_roc_auc_macro(&m), g[3 + K]), "macro AUC %.17g, sklearn %.17g",
              pc_metrics_roc_auc_macro(&m), g[3 + K]);
        for (int k = 0; k < K; k++) {
            double p, r, f;
            pc_metrics_class(&m, k, &p, &r, &f);
            CHECK(close_to(p, g[4 + K + k]) && close_to(r, g[4 + 2 * K + k]) && close_to(f, g[4 + 3 * K + k]),
                  "class %d P/R/F1 %g %g %g, sklearn %g %g %g", k, p, r, f, g[4 + K + k],
                  g[4 + 2 * K + k], g[4 + 3 * K + k]);
        }
    }
    if (absent >= 0) CHECK(isnan(pc_metrics_roc_auc(&m, absent)), "AUC of a class without samples");
    pc_metrics_free(&m);
}

/* Worked examples: kappa 0.4 for [[20, 5], [10, 15]] (p_o 0.7, p_e 0.5); the AUC of
 * scikit-learn's roc_auc_score docstring example, 0.75; a tie between a positive and a
 * negative counts one half. */
static void check_by_hand(void) {
    pc_metrics m;
    CHECK(pc_metrics_init(&m, 2) == 0 && pc_metrics_keep_scores(&m, 4) == 0, "init");
    int64_t conf[4] = {20, 5, 10, 15};
    memcpy(m.confusion, conf, sizeof conf);
    m.n = 50;
    CHECK(fabs(pc_metrics_kappa(&m, 0) - 0.4) < 1e-15, "kappa %.17g", pc_metrics_kappa(&m, 0));
    CHECK(fabs(pc_metrics_kappa(&m, 1) - 0.4) < 1e-15, "2 classes: quadratic = plain kappa");
    CHECK(fabs(pc_metrics_balanced_accuracy(&m) - (0.8 + 0.6) / 2) < 1e-15, "balanced accuracy");
    float s[4] = {0.1f, 0.4f, 0.35f, 0.8f};
    int32_t y[4] = {0, 0, 1, 1};
    m.n = 4;
    for (int i = 0; i < 4; i++) {
        m.labels[i] = y[i];
        m.scores[2 * i + 1] = s[i];
        m.scores[2 * i] = 1 - s[i];
    }
    CHECK(fabs(pc_metrics_roc_auc(&m, 1) - 0.75) < 1e-15, "AUC %.17g", pc_metrics_roc_auc(&m, 1));
    m.scores[2 * 2 + 1] = 0.4f; /* the positive 0.35 now ties the negative 0.4 */
    CHECK(fabs(pc_metrics_roc_auc(&m, 1) - 0.875) < 1e-15, "AUC with a tie %.17g", pc_metrics_roc_auc(&m, 1));
    m.scores[2 * 1 + 1] = NAN; /* a diverged model: undefined, and it must return */
    CHECK(isnan(pc_metrics_roc_auc(&m, 1)), "AUC with a NaN score %.17g", pc_metrics_roc_auc(&m, 1));
    pc_metrics_free(&m);
    CHECK(pc_metrics_init(&m, 2) == 0, "init");
    CHECK(isnan(pc_metrics_roc_auc(&m, 0)) && isnan(pc_metrics_kappa(&m, 0)), "undefined without data");
    pc_metrics_free(&m);
}

/* The same samples in another order give the same bytes. */
static void check_order_independent(void) {
    pc_metrics a, b;
    CHECK(pc_metrics_init(&a, K) == 0 && pc_metrics_keep_scores(&a, N) == 0, "init");
    CHECK(pc_metrics_init(&b, K) == 0 && pc_metrics_keep_scores(&b, N) == 0, "init");
    make_case(&a, -1);
    b.n = N;
    memcpy(b.confusion, a.confusion, sizeof(int64_t) * K * K);
    for (int64_t i = 0; i < N; i++) {
        int64_t j = (i * 7 + 3) % N; /* 7 is prime to 600: a permutation */
        b.labels[j] = a.labels[i];
        memcpy(b.scores + j * K, a.scores + i * K, sizeof(float) * K);
    }
    double x = pc_metrics_roc_auc_macro(&a), y = pc_metrics_roc_auc_macro(&b);
    CHECK(memcmp(&x, &y, sizeof x) == 0, "macro AUC %.17g vs %.17g after a permutation", x, y);
    pc_metrics_free(&a);
    pc_metrics_free(&b);
}

/* eval.json: one JSON object and a newline, no temporary left; a folder that does not
 * exist is an I/O error naming the file. */
static void check_write_json(void) {
    pc_metrics m;
    char *names[K] = {"a", "b", "c", "d", "e"};
    CHECK(pc_metrics_init(&m, K) == 0 && pc_metrics_keep_scores(&m, N) == 0, "init");
    make_case(&m, 2);
    CHECK(pc_metrics_write_json(&m, names, "flip", tpath("eval.json")) == PC_OK, "write: %s", pc_last_error());
    size_t n = 0;
    char *text = (char *)read_file(tpath("eval.json"), &n);
    char *expect = pc_metrics_json(&m, names, "flip");
    CHECK(text && expect && n == strlen(expect) + 1 && memcmp(text, expect, n - 1) == 0 && text[n - 1] == '\n',
          "eval.json is the JSON object and a newline");
    CHECK(expect && strstr(expect, "\"roc_auc\":null") && strstr(expect, "\"tta\":\"flip\""),
          "an undefined AUC is null; tta named");
    DIR *dir = opendir(tmpdir);
    for (struct dirent *e; dir && (e = readdir(dir));)
        CHECK(strncmp(e->d_name, "eval.json.tmp", 13) != 0, "temporary %s left behind", e->d_name);
    if (dir) closedir(dir);
    CHECK(pc_metrics_write_json(&m, names, NULL, tpath("missing/eval.json")) == PC_ERR_IO &&
              strstr(pc_last_error(), "missing/eval.json"), "error names the file: %s", pc_last_error());
    free(text);
    free(expect);
    pc_metrics_free(&m);
}

int main(void) {
    if (testfs_start("metrics")) return 1;
    check_against_sklearn(-1);
    check_against_sklearn(3);
    check_by_hand();
    check_order_independent();
    check_write_json();
    testfs_finish();
    return check_summary();
}
