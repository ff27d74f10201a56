/* Test-time augmentation: class probabilities averaged over fixed views of each image.
 *
 *   flip              the image and its mirror, 1/2 each
 *   translate=N       the image (1/2) and the image shifted by (+N, +N) and by (-N, -N)
 *                     pixels (1/4 each), reflect-padded as airbench does
 *   flip,translate=N  airbench's TTA: every shift with and without the mirror (the image
 *                     and its mirror 1/4 each, the four shifted views 1/8 each)
 *
 * Views work on normalized inputs (mirroring, shifting and reflecting only move values,
 * so they commute with the per-channel normalization), and probabilities are summed in
 * view order, so the result does not depend on the worker or rank count. */
#ifndef PC_TTA_H
#define PC_TTA_H

#include <stddef.h>

#include "core/common.h"

typedef struct {
    int flip;       /* 1: also the mirror of every view */
    int translate;  /* N > 0: also the views shifted by (+N, +N) and (-N, -N) */
} pc_tta;

/* "none" (or NULL or ""), "flip", "translate=N", "flip,translate=N"; errors name --tta. */
pc_status pc_tta_parse(const char *spec, pc_tta *out);
/* The canonical spec ("none" when off). */
void pc_tta_format(const pc_tta *t, char *buf, size_t cap);
/* The shift must leave something to reflect: N < h and N < w. */
pc_status pc_tta_check(const pc_tta *t, int h, int w);

/* Number of views (1 when t is NULL or off; view 0 is the image itself) and their
 * weights, which sum to 1. */
int pc_tta_views(const pc_tta *t);
float pc_tta_weight(const pc_tta *t, int view);
/* View `view` of one c x h x w image; in and out must not overlap. */
void pc_tta_view(const pc_tta *t, int view, int c, int h, int w, const float *in, float *out);

#endif
