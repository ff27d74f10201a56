#include "shapes.h"

int pc_conv_shape_finish(pc_conv_shape *s) {
    if (s->n <= 0 || s->c <= 0 || s->h <= 0 || s->w <= 0 || s->k <= 0 || s->kh <= 0 ||
        s->kw <= 0 || s->sh <= 0 || s->sw <= 0 || s->ph < 0 || s->pw < 0 || s->groups <= 0)
        return -1;
    if (s->c % s->groups || s->k % s->groups || s->dil_h < 0 || s->dil_w < 0) return -1;
    if (s->dil_h == 0) s->dil_h = 1;
    if (s->dil_w == 0) s->dil_w = 1;
    /* the dilated kernel's extent, in 64 bits: a huge dilation fails like a huge kernel */
    long long kh = (long long)(s->kh - 1) * s->dil_h + 1, kw = (long long)(s->kw - 1) * s->dil_w + 1;
    long long eh = s->h + 2LL * s->ph - kh, ew = s->w + 2LL * s->pw - kw;
    if (eh < 0 || ew < 0) return -1;
    s->oh = (int)(eh / s->sh + 1);
    s->ow = (int)(ew / s->sw + 1);
    return 0;
}

int pc_pool_out_size(int n, int k, int s, int p, int ceil_mode) {
    long long e = (long long)n + 2LL * p - k;
    if (e < 0) return 0;
    long long o = (ceil_mode ? (e + s - 1) / s : e / s) + 1;
    /* PyTorch's rule: the last window starts inside the input or its left padding */
    if (ceil_mode && (o - 1) * s >= (long long)n + p) o--;
    return (int)o;
}

int pc_pool_shape_finish(pc_pool_shape *s) {
    if (s->n <= 0 || s->c <= 0 || s->h <= 0 || s->w <= 0 || s->kh <= 0 || s->kw <= 0 ||
        s->sh <= 0 || s->sw <= 0 || s->ph < 0 || s->pw < 0)
        return -1;
    /* like PyTorch: padding at most half the kernel, so every window sees a real cell */
    if (2 * s->ph > s->kh || 2 * s->pw > s->kw) return -1;
    s->oh = pc_pool_out_size(s->h, s->kh, s->sh, s->ph, s->ceil_mode);
    s->ow = pc_pool_out_size(s->w, s->kw, s->sw, s->pw, s->ceil_mode);
    return s->oh > 0 && s->ow > 0 ? 0 : -1;
}
