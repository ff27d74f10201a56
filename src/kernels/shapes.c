#include "shapes.h"

int pc_conv_shape_finish(pc_conv_shape *s) {
    if (s->n <= 0 || s->c <= 0 || s->h <= 0 || s->w <= 0 || s->k <= 0 || s->kh <= 0 ||
        s->kw <= 0 || s->sh <= 0 || s->sw <= 0 || s->ph < 0 || s->pw < 0 || s->groups <= 0)
        return -1;
    if (s->c % s->groups || s->k % s->groups) return -1;
    int eh = s->h + 2 * s->ph - s->kh, ew = s->w + 2 * s->pw - s->kw;
    if (eh < 0 || ew < 0) return -1;
    s->oh = eh / s->sh + 1;
    s->ow = ew / s->sw + 1;
    return 0;
}

int pc_pool_shape_finish(pc_pool_shape *s) {
    if (s->n <= 0 || s->c <= 0 || s->h <= 0 || s->w <= 0 || s->kh <= 0 || s->kw <= 0 ||
        s->sh <= 0 || s->sw <= 0 || s->ph < 0 || s->pw < 0)
        return -1;
    /* like PyTorch: padding at most half the kernel, so every window sees a real cell */
    if (2 * s->ph > s->kh || 2 * s->pw > s->kw) return -1;
    int eh = s->h + 2 * s->ph - s->kh, ew = s->w + 2 * s->pw - s->kw;
    if (eh < 0 || ew < 0) return -1;
    s->oh = eh / s->sh + 1;
    s->ow = ew / s->sw + 1;
    return 0;
}
