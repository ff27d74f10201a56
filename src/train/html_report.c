/* report.html: one self-contained page (inline CSS, SVG and a few lines of script; no
 * network) of one or several runs. See report.h. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/svg.h"
#include "train/report.h"

static const char *const palette[10] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
static const char *const split_names[5] = {"data", "compute", "reduce", "communication",
                                           "optimizer"};

static void html_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static double number(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *string(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* ------------------------------------------------------------ line charts */

enum { X_EPOCH, X_CLOCK };
typedef enum { Y_LOSS, Y_ACC, Y_VAL_ACC, Y_LR, Y_IPS } y_kind;

typedef struct {
    const char *id, *title, *xlabel, *ylabel, *note;
    int x;          /* X_EPOCH or X_CLOCK */
    y_kind y;       /* which series: loss and accuracy have train (solid) and test (dashed) */
} chart_spec;

static const double *x_of(const pc_report_run *r, int x) { return x == X_CLOCK ? r->clock : r->epoch; }

/* The solid (s = 0) and dashed (s = 1) series of a chart, or NULL. */
static const double *y_of(const pc_report_run *r, y_kind y, int s) {
    switch (y) {
    case Y_LOSS: return s ? r->val_loss : r->train_loss;
    case Y_ACC: return s ? r->val_acc : r->train_acc;
    case Y_VAL_ACC: return s ? NULL : r->val_acc;
    case Y_LR: return s ? NULL : r->lr;
    default: return s ? NULL : r->ips;
    }
}

static void data_range(const pc_report_run *runs, int n, const chart_spec *s, pc_svg_chart *c) {
    double ymin = INFINITY, ymax = -INFINITY, xmax = 0;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < runs[k].n; i++)
            for (int j = 0; j < 2; j++) {
                const double *y = y_of(&runs[k], s->y, j), *x = x_of(&runs[k], s->x);
                if (!y || !isfinite(y[i]) || !isfinite(x[i])) continue;
                ymin = fmin(ymin, y[i]), ymax = fmax(ymax, y[i]), xmax = fmax(xmax, x[i]);
            }
    c->x0 = 0;
    c->x1 = xmax > 0 ? (s->x == X_EPOCH ? ceil(xmax - 1e-9) : xmax) : 1;
    c->x_integers = s->x == X_EPOCH;
    int accuracy = s->y == Y_ACC || s->y == Y_VAL_ACC;
    if (!(ymin <= ymax)) ymin = 0, ymax = 1;
    c->y0 = accuracy ? fmax(0, floor(ymin * 10 - 1e-9) / 10) : 0;
    c->y1 = accuracy ? fmin(1, ceil(ymax * 10 + 1e-9) / 10) : (ymax > 0 ? ymax * 1.05 : 1);
}

/* One series of run k: a line through its finite points, and markers that name them. */
static void series(FILE *f, const pc_svg_chart *c, const pc_report_run *r, const double *x,
                   const double *y, const char *color, int dashed) {
    fprintf(f, "<polyline class=\"line\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"",
            color, dashed ? " stroke-dasharray=\"6,4\"" : "");
    for (int i = 0; i < r->n; i++)
        if (isfinite(x[i]) && isfinite(y[i])) fprintf(f, "%.1f,%.1f ", pc_svg_x(c, x[i]), pc_svg_y(c, y[i]));
    fprintf(f, "\"/>\n");
    for (int i = 0; i < r->n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) continue;
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>", pc_svg_x(c, x[i]),
                pc_svg_y(c, y[i]), color);
        html_text(f, r->label);
        fprintf(f, ": %g, %.6g</title></circle>\n", x[i], y[i]);
    }
}

static void line_chart(FILE *f, const pc_report_run *runs, int n, const chart_spec *s) {
    pc_svg_chart c = {.left = 70, .top = 36, .width = 360, .height = 210};
    data_range(runs, n, s, &c);
    fprintf(f, "<figure class=\"chart\" id=\"chart-%s\">\n", s->id);
    pc_svg_begin(f, 460, 300);
    pc_svg_axes(f, &c, s->title, s->xlabel, s->ylabel);
    if (s->note) pc_svg_text(f, c.left + c.width, c.top - 12, "end", 11, "#555", "%s", s->note);
    for (int k = 0; k < n; k++) {
        fprintf(f, "<g class=\"series\" data-run=\"%d\">\n", k);
        for (int j = 0; j < 2; j++) {
            const double *y = y_of(&runs[k], s->y, j);
            if (y) series(f, &c, &runs[k], x_of(&runs[k], s->x), y, palette[k % 10], j);
        }
        fprintf(f, "</g>\n");
    }
    pc_svg_end(f);
    fprintf(f, "</figure>\n");
}

static void curves(FILE *f, const pc_report_run *runs, int n) {
    static const chart_spec specs[] = {
        {"loss", "loss", "epoch", "cross-entropy", "solid: train, dashed: val", X_EPOCH, Y_LOSS},
        {"accuracy", "accuracy", "epoch", "accuracy", "solid: train, dashed: val", X_EPOCH, Y_ACC},
        {"time", "val accuracy against time", "wall-clock seconds (training and evaluation)",
         "val accuracy", NULL, X_CLOCK, Y_VAL_ACC},
        {"lr", "learning rate", "epoch", "learning rate (end of epoch)", NULL, X_EPOCH, Y_LR},
        {"ips", "training throughput", "epoch", "images/s", NULL, X_EPOCH, Y_IPS},
    };
    fprintf(f, "<h2>Training curves</h2>\n<div class=\"charts\">\n");
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) line_chart(f, runs, n, &specs[i]);
    fprintf(f, "</div>\n");
}

/* ------------------------------------------------------------ time split */

static const char *const split_colors[5] = {"#9467bd", "#1f77b4", "#2ca02c", "#d62728", "#ff7f0e"};

static void split_chart(FILE *f, const pc_report_run *r, int k) {
    pc_svg_chart c = {.left = 70, .top = 36, .width = 360, .height = 210, .x0 = 0.5,
                      .x1 = r->n + 0.5, .x_integers = 1, .y0 = 0, .y1 = 0};
    for (int i = 0; i < r->n; i++) {
        double sum = 0;
        for (int s = 0; s < 5; s++) sum += isfinite(r->split[s][i]) ? r->split[s][i] : 0;
        c.y1 = fmax(c.y1, sum * 1.05);
    }
    if (c.y1 <= 0) c.y1 = 1;
    fprintf(f, "<figure class=\"chart\" id=\"chart-split-%d\">\n", k);
    pc_svg_begin(f, 520, 320);
    char title[300];
    snprintf(title, sizeof title, "time split: %s", r->label);
    pc_svg_axes(f, &c, title, "epoch", "seconds (training steps)");
    double bar = fmin(30, 0.7 * c.width / (r->n ? r->n : 1));
    fprintf(f, "<g class=\"series\" data-run=\"%d\">\n", k);
    for (int i = 0; i < r->n; i++) {
        double base = 0;
        for (int s = 0; s < 5; s++) {
            double v = isfinite(r->split[s][i]) ? r->split[s][i] : 0;
            double y_top = pc_svg_y(&c, base + v), y_bottom = pc_svg_y(&c, base);
            fprintf(f, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.2f\" "
                    "fill=\"%s\"><title>epoch %d: %s %.3f s</title></rect>\n",
                    pc_svg_x(&c, i + 1) - bar / 2, y_top, bar, y_bottom - y_top, split_colors[s],
                    i + 1, split_names[s], v);
            base += v;
        }
    }
    fprintf(f, "</g>\n");
    for (int s = 0; s < 5; s++) {
        fprintf(f, "<rect x=\"%d\" y=\"300\" width=\"10\" height=\"10\" fill=\"%s\"/>\n", 30 + s * 96,
                split_colors[s]);
        pc_svg_text(f, 44 + s * 96, 309, "start", 11, "black", "%s", split_names[s]);
    }
    pc_svg_end(f);
    fprintf(f, "</figure>\n");
}

/* ------------------------------------------------------------ final evaluation */

static void summary_table(FILE *f, const cJSON *e) {
    static const char *const keys[] = {"accuracy", "loss", "balanced_accuracy", "kappa",
                                       "quadratic_kappa", "roc_auc_macro", "macro_precision",
                                       "macro_recall", "macro_f1"};
    fprintf(f, "<table class=\"summary\"><tr><th>samples</th><td>%.0f</td></tr>\n"
               "<tr><th>test-time augmentation</th><td>", number(e, "samples"));
    html_text(f, string(e, "tta"));
    fprintf(f, "</td></tr>\n");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        double v = number(e, keys[i]);
        fprintf(f, "<tr><th>%s</th><td>", keys[i]);
        if (isnan(v)) fprintf(f, "-");
        else fprintf(f, "%.4f", v);
        fprintf(f, "</td></tr>\n");
    }
    const cJSON *best = cJSON_GetObjectItemCaseSensitive(e, "best"); /* --early-stop, --keep best */
    if (best) {
        fprintf(f, "<tr><th>best epoch (");
        html_text(f, string(best, "monitor"));
        fprintf(f, ")</th><td>%.0f: %.4f%s</td></tr>\n", number(best, "epoch"), number(best, "value"),
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(best, "stopped_early")) ? ", stopped early" : "");
    }
    fprintf(f, "</table>\n");
}

static void class_table(FILE *f, const cJSON *e) {
    fprintf(f, "<table class=\"classes\"><tr><th>class</th><th>precision</th><th>recall</th>"
               "<th>F1</th><th>support</th><th>ROC AUC</th></tr>\n");
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(e, "per_class")) {
        fprintf(f, "<tr><td>");
        html_text(f, string(c, "class"));
        fprintf(f, "</td>");
        static const char *const keys[] = {"precision", "recall", "f1"};
        for (int i = 0; i < 3; i++) /* the value, and a bar of its size */
            fprintf(f, "<td><span class=\"bar\" style=\"width:%.0fpx\"></span>%.4f</td>",
                    60 * number(c, keys[i]), number(c, keys[i]));
        fprintf(f, "<td>%.0f</td><td>", number(c, "support"));
        if (isnan(number(c, "roc_auc"))) fprintf(f, "-");
        else fprintf(f, "%.4f", number(c, "roc_auc"));
        fprintf(f, "</td></tr>\n");
    }
    fprintf(f, "</table>\n");
}

/* The confusion matrix as a heat map: a cell's colour is its share of the true class. */
static void heat_map(FILE *f, const cJSON *e, int k) {
    const cJSON *conf = cJSON_GetObjectItemCaseSensitive(e, "confusion");
    const cJSON *per = cJSON_GetObjectItemCaseSensitive(e, "per_class");
    int K = cJSON_GetArraySize(conf);
    if (K == 0) return;
    int cell = K <= 10 ? 36 : K <= 30 ? 20 : K <= 150 ? 600 / K : 4, left = 140, top = 50;
    fprintf(f, "<figure class=\"chart heatmap\" id=\"confusion-%d\">\n", k);
    pc_svg_begin(f, left + K * cell + 20, top + K * cell + 40);
    pc_svg_text(f, left, 18, "start", 13, "black", "confusion matrix (rows: true, columns: predicted)");
    for (int i = 0; i < K; i++) {
        const cJSON *row = cJSON_GetArrayItem(conf, i);
        double total = 0;
        for (int j = 0; j < K; j++) total += cJSON_GetArrayItem(row, j)->valuedouble;
        const char *name = string(cJSON_GetArrayItem(per, i), "class");
        if (cell >= 10) pc_svg_text(f, left - 6, top + i * cell + cell / 2 + 4, "end", 11, "black", "%.18s", name);
        if (cell >= 14) pc_svg_text(f, left + i * cell + cell / 2, top - 6, "middle", 11, "black", "%d", i);
        for (int j = 0; j < K; j++) {
            double v = cJSON_GetArrayItem(row, j)->valuedouble, share = total > 0 ? v / total : 0;
            fprintf(f, "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                    "fill=\"rgb(%.0f,%.0f,%.0f)\"><title>", left + j * cell, top + i * cell, cell,
                    cell, 247 - share * 239, 251 - share * 203, 255 - share * 148);
            html_text(f, name);
            fprintf(f, " as %d: %.0f (%.1f%%)</title></rect>\n", j, v, 100 * share);
            if (cell >= 30 && v > 0)
                pc_svg_text(f, left + j * cell + cell / 2.0, top + i * cell + cell / 2.0 + 4, "middle",
                            10, share > 0.5 ? "white" : "black", "%.0f", v);
        }
    }
    pc_svg_end(f);
    fprintf(f, "</figure>\n");
}

static void sample_grid(FILE *f, const cJSON *samples) {
    const cJSON *s;
    fprintf(f, "<div class=\"grid\">\n");
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(samples, "samples")) {
        int wrong = strcmp(string(s, "true"), string(s, "predicted")) != 0;
        fprintf(f, "<figure class=\"sample%s\"><img alt=\"test image %.0f\" src=\"", wrong ? " wrong" : "",
                number(s, "index"));
        html_text(f, string(s, "png"));
        fprintf(f, "\"><figcaption>#%.0f<br>true: ", number(s, "index"));
        html_text(f, string(s, "true"));
        fprintf(f, "<br>predicted: ");
        html_text(f, string(s, "predicted"));
        fprintf(f, " (%.2f)</figcaption></figure>\n", number(s, "probability"));
    }
    fprintf(f, "</div>\n");
}

static void run_section(FILE *f, const pc_report_run *r, int k, int n) {
    fprintf(f, "<section class=\"run\" id=\"run-%d\">\n<h2>", k);
    if (n > 1) {
        html_text(f, r->label);
        fprintf(f, ": ");
    }
    fprintf(f, "final evaluation</h2>\n");
    if (r->eval) {
        fprintf(f, "<div class=\"charts\">\n");
        summary_table(f, r->eval);
        heat_map(f, r->eval, k);
        fprintf(f, "</div>\n");
        class_table(f, r->eval);
    } else {
        fprintf(f, "<p>No eval.json in this folder (the run has not finished).</p>\n");
    }
    fprintf(f, "<div class=\"charts\">\n");
    split_chart(f, r, k);
    fprintf(f, "</div>\n");
    if (r->samples) {
        fprintf(f, "<h3>Test images, misclassified first (red)</h3>\n");
        sample_grid(f, r->samples);
    }
    fprintf(f, "</section>\n");
}

/* ------------------------------------------------------------ the page */

static void settings_table(FILE *f, const pc_report_run *runs, int n) {
    fprintf(f, "<h2>Settings</h2>\n<table class=\"settings\"><tr><th></th>");
    for (int k = 0; k < n; k++) {
        fprintf(f, "<th>");
        html_text(f, runs[k].label);
        fprintf(f, "</th>");
    }
    fprintf(f, "</tr>\n");
    for (int k = 0; k < n; k++) { /* each key once, where it first appears */
        const cJSON *item;
        cJSON_ArrayForEach(item, (const cJSON *)runs[k].settings) {
            int seen = 0;
            for (int j = 0; j < k; j++) seen |= cJSON_HasObjectItem(runs[j].settings, item->string);
            if (seen) continue;
            fprintf(f, "<tr><th>");
            html_text(f, item->string);
            fprintf(f, "</th>");
            for (int j = 0; j < n; j++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(runs[j].settings, item->string);
                char *text = v ? (cJSON_IsString(v) ? NULL : cJSON_PrintUnformatted(v)) : NULL;
                fprintf(f, "<td>");
                html_text(f, v ? (cJSON_IsString(v) ? v->valuestring : text) : "");
                fprintf(f, "</td>");
                cJSON_free(text);
            }
            fprintf(f, "</tr>\n");
        }
    }
    fprintf(f, "</table>\n");
}

static const char style[] =
    "body{font-family:sans-serif;margin:20px;color:#222}h1{font-size:20px}h2{font-size:17px;"
    "margin-top:28px}h3{font-size:14px}.charts{display:flex;flex-wrap:wrap;gap:12px;"
    "align-items:flex-start}figure{margin:0}table{border-collapse:collapse;font-size:13px;"
    "margin:6px 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}"
    "td .bar{display:inline-block;height:9px;background:#9ecae1;margin-right:6px}"
    ".legend span{cursor:pointer;margin-right:18px;user-select:none}.legend span.off{opacity:.35}"
    ".legend i{display:inline-block;width:14px;height:4px;vertical-align:middle;margin-right:5px}"
    ".grid{display:flex;flex-wrap:wrap;gap:8px}.sample{width:96px;font-size:11px;"
    "border:2px solid #2ca02c;padding:3px}.sample.wrong{border-color:#d62728}"
    ".sample img{width:88px;height:88px;image-rendering:pixelated;display:block}";

/* Clicking a run in the legend hides or shows its series in every chart. */
static const char script[] =
    "document.querySelectorAll('.legend span').forEach(function (item) {\n"
    "  item.addEventListener('click', function () {\n"
    "    var off = item.classList.toggle('off');\n"
    "    document.querySelectorAll('.series[data-run=\"' + item.dataset.run + '\"]')\n"
    "      .forEach(function (g) { g.style.display = off ? 'none' : ''; });\n"
    "  });\n"
    "});\n";

static void legend(FILE *f, const pc_report_run *runs, int n) {
    fprintf(f, "<p class=\"legend\">");
    for (int k = 0; k < n; k++) {
        fprintf(f, "<span data-run=\"%d\" title=\"", k);
        html_text(f, runs[k].dir);
        fprintf(f, "\"><i style=\"background:%s\"></i>", palette[k % 10]);
        html_text(f, runs[k].label);
        fprintf(f, "</span>");
    }
    fprintf(f, "</p>\n");
}

void pc_report_html(FILE *f, const pc_report_run *runs, int n) {
    char title[512];
    pc_report_title(&runs[0], title, sizeof title);
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
               "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
               "img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n<title>");
    html_text(f, n > 1 ? "parcnn: runs compared" : title);
    fprintf(f, "</title>\n<style>%s</style></head>\n<body>\n<h1>", style);
    for (int k = 0; k < n; k++) {
        if (k) fprintf(f, "<br>");
        pc_report_title(&runs[k], title, sizeof title);
        html_text(f, title);
    }
    fprintf(f, "</h1>\n");
    legend(f, runs, n);
    curves(f, runs, n);
    for (int k = 0; k < n; k++) run_section(f, &runs[k], k, n);
    settings_table(f, runs, n);
    fprintf(f, "<script>\n%s</script>\n</body></html>\n", script);
}
