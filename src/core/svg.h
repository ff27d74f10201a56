/* Small self-contained SVG charts (no scripts, fonts or external files): a canvas,
 * charts with axes, round-numbered ticks and labels, lines and markers. Text is
 * XML-escaped (titles carry model and file names). Used by the training report and
 * the scaling benchmark. */
#ifndef PC_SVG_H
#define PC_SVG_H

#include <stdio.h>

typedef struct {
    double left, top, width, height; /* the plotting area on the canvas, in pixels */
    double x0, x1, y0, y1;           /* the data ranges it shows */
    int x_integers;                  /* 1: x ticks only at integers (counts) */
} pc_svg_chart;

void pc_svg_begin(FILE *f, int width, int height); /* white canvas, sans-serif 12 px */
void pc_svg_end(FILE *f);

/* Text at (x, y) in canvas pixels; anchor "start", "middle" or "end"; size in px. */
void pc_svg_text(FILE *f, double x, double y, const char *anchor, int size, const char *color,
                 const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* Canvas coordinates of a data point. */
double pc_svg_x(const pc_svg_chart *c, double x);
double pc_svg_y(const pc_svg_chart *c, double y);

/* The x and y axes with ticks at round numbers, the axis labels and a title above. */
void pc_svg_axes(FILE *f, const pc_svg_chart *c, const char *title, const char *xlabel,
                 const char *ylabel);
/* A line through n data points; dashed: 1 for a dashed thin line (references). */
void pc_svg_line(FILE *f, const pc_svg_chart *c, const double *x, const double *y, int n,
                 const char *color, int dashed);
/* A marker at a data point: a circle, or a square. */
void pc_svg_marker(FILE *f, const pc_svg_chart *c, double x, double y, const char *color,
                   int square);

#endif
