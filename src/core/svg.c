/* SVG charts. See svg.h. */
#include "core/svg.h"

#include <math.h>
#include <stdarg.h>

void pc_svg_begin(FILE *f, int width, int height) {
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", width, height);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
}

void pc_svg_end(FILE *f) { fprintf(f, "</svg>\n"); }

static void put_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        default: fputc(*s, f);
        }
    }
}

void pc_svg_text(FILE *f, double x, double y, const char *anchor, int size, const char *color,
                 const char *fmt, ...) {
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\" fill=\"%s\">", x,
            y, anchor, size, color);
    put_escaped(f, text);
    fprintf(f, "</text>\n");
}

static double span(double a, double b) { return b > a ? b - a : 1.0; }

double pc_svg_x(const pc_svg_chart *c, double x) {
    return c->left + (x - c->x0) / span(c->x0, c->x1) * c->width;
}

double pc_svg_y(const pc_svg_chart *c, double y) {
    return c->top + c->height - (y - c->y0) / span(c->y0, c->y1) * c->height;
}

/* Ticks on [lo, hi] at the multiples of a round step (1, 2 or 5 times a power of ten,
 * at least 1 for integers) that gives about 5 of them; returns how many. */
static int ticks(double lo, double hi, int integers, double *out, int max) {
    double raw = span(lo, hi) / 5, mag = pow(10, floor(log10(raw))), norm = raw / mag;
    double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
    if (integers && step < 1) step = 1;
    int n = 0;
    for (double k = ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9 && n < max; k++)
        out[n++] = k * step + 0.0; /* not a running sum: no drift; + 0.0: no "-0" */
    return n;
}

static void segment(FILE *f, double x1, double y1, double x2, double y2) {
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", x1,
            y1, x2, y2);
}

void pc_svg_axes(FILE *f, const pc_svg_chart *c, const char *title, const char *xlabel,
                 const char *ylabel) {
    double bottom = c->top + c->height, right = c->left + c->width, v[16];
    segment(f, c->left, bottom, right, bottom);
    segment(f, c->left, c->top, c->left, bottom);
    for (int i = 0, n = ticks(c->x0, c->x1, c->x_integers, v, 16); i < n; i++) {
        segment(f, pc_svg_x(c, v[i]), bottom, pc_svg_x(c, v[i]), bottom + 4);
        pc_svg_text(f, pc_svg_x(c, v[i]), bottom + 16, "middle", 12, "black", "%g", v[i]);
    }
    for (int i = 0, n = ticks(c->y0, c->y1, 0, v, 16); i < n; i++) {
        segment(f, c->left - 4, pc_svg_y(c, v[i]), c->left, pc_svg_y(c, v[i]));
        pc_svg_text(f, c->left - 6, pc_svg_y(c, v[i]) + 4, "end", 12, "black", "%g", v[i]);
    }
    pc_svg_text(f, c->left, c->top - 12, "start", 14, "black", "%s", title);
    pc_svg_text(f, c->left + c->width / 2, bottom + 36, "middle", 12, "black", "%s", xlabel);
    double mid = c->top + c->height / 2, x = c->left - 44;
    fprintf(f, "<g transform=\"rotate(-90 %.1f %.1f)\">\n", x, mid);
    pc_svg_text(f, x, mid, "middle", 12, "black", "%s", ylabel);
    fprintf(f, "</g>\n");
}

void pc_svg_line(FILE *f, const pc_svg_chart *c, const double *x, const double *y, int n,
                 const char *color, int dashed) {
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%d\"%s points=\"", color,
            dashed ? 1 : 2, dashed ? " stroke-dasharray=\"6,4\"" : "");
    for (int i = 0; i < n; i++) fprintf(f, "%.1f,%.1f ", pc_svg_x(c, x[i]), pc_svg_y(c, y[i]));
    fprintf(f, "\"/>\n");
}

void pc_svg_marker(FILE *f, const pc_svg_chart *c, double x, double y, const char *color,
                   int square) {
    double px = pc_svg_x(c, x), py = pc_svg_y(c, y);
    if (square)
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\" fill=\"%s\"/>\n", px - 4,
                py - 4, color);
    else
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n", px, py, color);
}
