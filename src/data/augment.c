/* Counter-based, deterministic image augmentation. See augment.h. */
#include "data/augment.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

/* Parameter indices of the draws: fixed, whatever is enabled. */
enum {
    K_FLIP = 0,
    K_CROP_X = 1,
    K_CROP_Y = 2,
    K_ZOOM = 3,
    K_ZOOM_X = 4,
    K_ZOOM_Y = 5,
    K_SHEAR = 6,
    K_ROTATE = 7,
    K_TRANS_X = 8,
    K_TRANS_Y = 9,
    K_BRIGHT = 10,
    K_CONTRAST = 11,
    K_CUT_Y = 12,
    K_CUT_X = 13,
    K_FLIP_ALT = 14  /* keyed without the epoch */
};

void pc_augment_none(pc_augment_config *a) {
    memset(a, 0, sizeof *a);
    a->zoom_min = a->zoom_max = 1.0f;
}

static int zoom_on(const pc_augment_config *a) {
    return a->zoom_min > 0 && a->zoom_max > 0 && !(a->zoom_min == 1.0f && a->zoom_max == 1.0f);
}

static int geometry_on(const pc_augment_config *a) {
    return a->hflip || a->crop_pad > 0 || zoom_on(a) || a->shear_deg > 0 || a->rotate_deg > 0 ||
           a->translate > 0;
}

int pc_augment_enabled(const pc_augment_config *a) {
    return a && (geometry_on(a) || a->brightness > 0 || a->contrast > 0 || a->cutout > 0);
}

/* ---------------------------------------------------------------- parsing */

static int parse_num(const char *s, double lo, double hi, double *v) {
    if (!s || !*s) return 0;
    char *end;
    double x = strtod(s, &end);
    if (end == s || *end || !isfinite(x) || x < lo || x > hi) return 0;
    *v = x;
    return 1;
}

/* Item `which` (its index in pc_augment_parse's names) with its value (NULL: none) into a;
 * 0 when the value is not what *want says the item takes. */
static int set_item(pc_augment_config *a, int which, const char *val, const char **want) {
    double v = 0, v2 = 1;
    int ok = 1;
    switch (which) {
    case 0:
        *want = "no value or alt";
        ok = !val || strcmp(val, "alt") == 0;
        a->hflip = val ? PC_FLIP_ALT : PC_FLIP_RANDOM;
        break;
    case 1:
        *want = "an integer number of pixels in [0, 1024]";
        ok = parse_num(val, 0, 1024, &v) && v == floor(v);
        a->crop_pad = (int)v;
        break;
    case 2: {
        *want = "a scale A or A:B with 0.05 <= A <= B <= 4";
        char tmp[64];
        if (!val || strlen(val) >= sizeof tmp) {
            ok = 0;
            break;
        }
        strcpy(tmp, val);
        char *colon = strchr(tmp, ':');
        if (colon) *colon = 0;
        ok = parse_num(tmp, 0.05, 4, &v) && (!colon || parse_num(colon + 1, 0.05, 4, &v2));
        if (ok && !colon) v2 = v <= 1 ? 1.0 : v, v = v <= 1 ? v : 1.0;
        if (ok && v > v2) ok = 0;
        a->zoom_min = (float)v;
        a->zoom_max = (float)v2;
        break;
    }
    case 3:
        *want = "degrees in [0, 60]";
        ok = parse_num(val, 0, 60, &v);
        a->shear_deg = (float)v;
        break;
    case 4:
        *want = "degrees in [0, 180]";
        ok = parse_num(val, 0, 180, &v);
        a->rotate_deg = (float)v;
        break;
    case 5:
        *want = "a fraction in [0, 0.5]";
        ok = parse_num(val, 0, 0.5, &v);
        a->translate = (float)v;
        break;
    case 6:
    case 7:
        *want = "a fraction in [0, 1]";
        ok = parse_num(val, 0, 1, &v);
        if (which == 6) a->brightness = (float)v;
        else a->contrast = (float)v;
        break;
    case 8:
        *want = "a fraction of the side in [0, 1]";
        ok = parse_num(val, 0, 1, &v);
        a->cutout = (float)v;
        break;
    case 9:
        *want = "constant, nearest or reflect";
        ok = val != NULL;
        if (ok && strcmp(val, "constant") == 0) a->fill = PC_FILL_CONSTANT;
        else if (ok && strcmp(val, "nearest") == 0) a->fill = PC_FILL_NEAREST;
        else if (ok && strcmp(val, "reflect") == 0) a->fill = PC_FILL_REFLECT;
        else ok = 0;
        break;
    }
    return ok;
}

pc_status pc_augment_parse(const char *spec, pc_augment_config *out) {
    pc_augment_none(out);
    if (!spec) return PC_OK;
    char buf[512];
    size_t len = strlen(spec);
    if (len >= sizeof buf) return pc_fail(PC_ERR_USAGE, "--augment: spec too long");
    memcpy(buf, spec, len + 1);
    pc_augment_config a;
    pc_augment_none(&a);
    unsigned seen = 0;
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*item)) item++;
        char *e = item + strlen(item);
        while (e > item && isspace((unsigned char)e[-1])) *--e = 0;
        if (!*item) continue;
        if (strcmp(item, "none") == 0) continue;
        char *eq = strchr(item, '=');
        const char *val = eq ? eq + 1 : NULL;
        if (eq) *eq = 0;
        static const char *const names[] = {"flip", "crop", "zoom", "shear", "rotate", "translate",
                                            "brightness", "contrast", "cutout", "fill"};
        int which = -1;
        for (int i = 0; i < 10; i++)
            if (strcmp(item, names[i]) == 0) which = i;
        if (strcmp(item, "hflip") == 0) which = 0;
        if (which < 0)
            return pc_fail(PC_ERR_USAGE,
                           "--augment: unknown item '%s' (expected flip, crop=P, zoom=A[:B], "
                           "shear=DEG, rotate=DEG, translate=F, brightness=F, contrast=F, cutout=F, "
                           "fill=MODE)",
                           item);
        if (seen & (1u << which)) return pc_fail(PC_ERR_USAGE, "--augment: '%s' given twice", item);
        seen |= 1u << which;
        const char *want = "";
        if (!set_item(&a, which, val, &want))
            return pc_fail(PC_ERR_USAGE, "--augment: bad item '%s%s%s': expected %s", item,
                           val ? "=" : "", val ? val : "", want);
    }
    *out = a;
    return PC_OK;
}

void pc_augment_format(const pc_augment_config *a, char *buf, size_t cap) {
    if (!cap) return;
    buf[0] = 0;
    size_t k = 0;
#define ADD(...)                                                              \
    do {                                                                      \
        if (k < cap) k += (size_t)snprintf(buf + k, cap - k, "%s", k ? "," : ""); \
        if (k < cap) k += (size_t)snprintf(buf + k, cap - k, __VA_ARGS__);    \
    } while (0)
    if (a->hflip) ADD(a->hflip == PC_FLIP_ALT ? "flip=alt" : "flip");
    if (a->crop_pad > 0) ADD("crop=%d", a->crop_pad);
    if (zoom_on(a)) {
        if (a->zoom_max == 1.0f) ADD("zoom=%g", (double)a->zoom_min);
        else ADD("zoom=%g:%g", (double)a->zoom_min, (double)a->zoom_max);
    }
    if (a->shear_deg > 0) ADD("shear=%g", (double)a->shear_deg);
    if (a->rotate_deg > 0) ADD("rotate=%g", (double)a->rotate_deg);
    if (a->translate > 0) ADD("translate=%g", (double)a->translate);
    if (a->brightness > 0) ADD("brightness=%g", (double)a->brightness);
    if (a->contrast > 0) ADD("contrast=%g", (double)a->contrast);
    if (a->cutout > 0) ADD("cutout=%g", (double)a->cutout);
    if (a->fill != PC_FILL_CONSTANT) ADD(a->fill == PC_FILL_NEAREST ? "fill=nearest" : "fill=reflect");
#undef ADD
    if (k == 0) snprintf(buf, cap, "none");
}

/* ---------------------------------------------------------------- applying */

static inline double draw(uint64_t seed, uint64_t epoch, uint64_t sample, uint64_t k) {
    return (double)pc_uniform01(pc_rand64(seed, PC_RNG_AUGMENT, epoch, sample, k));
}

/* Alternating flip: flipped iff (hash(seed, sample) + epoch) is odd. */
static int flipped(const pc_augment_config *a, uint64_t seed, uint64_t epoch, uint64_t sample) {
    if (a->hflip == PC_FLIP_ALT)
        return (int)((pc_rand64(seed, PC_RNG_AUGMENT, 0, sample, K_FLIP_ALT) + epoch) & 1);
    return draw(seed, epoch, sample, K_FLIP) < 0.5;
}

static inline float clamp01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }

/* The source coordinate of a bilinear tap at i on an axis of n pixels: i itself inside the
 * image, else where the fill mode takes it from, or -1 for the constant (zero) fill. */
static inline long tap(int fill, long i, int n) {
    if (i >= 0 && i < n) return i;
    if (fill == PC_FILL_NEAREST) return i < 0 ? 0 : n - 1;
    if (fill == PC_FILL_REFLECT) return pc_reflect_index(i, n);
    return -1;
}

/* The source is either floats (inf) or uint8 pixels scaled by 1/255 (inb). */
static inline float fetch(const float *inf, const uint8_t *inb, size_t i) {
    return inf ? inf[i] : (float)inb[i] / 255.0f;
}

/* The geometric augmentations of one sample as one inverse map in centred coordinates,
 * src = A dst + b: m = {A00, A01, A10, A11, b0, b1}. */
static void inverse_map(const pc_augment_config *a, uint64_t seed, uint64_t epoch,
                        uint64_t sample, int h, int w, double m[6]) {
    double A00 = 1, A01 = 0, A10 = 0, A11 = 1, b0 = 0, b1 = 0;
    double tx = 0, ty = 0;
    if (a->crop_pad > 0) {
        int p = a->crop_pad, span = 2 * p + 1;
        tx += (double)((int)floor(draw(seed, epoch, sample, K_CROP_X) * span) - p);
        ty += (double)((int)floor(draw(seed, epoch, sample, K_CROP_Y) * span) - p);
    }
    if (a->translate > 0) {
        tx += (2 * draw(seed, epoch, sample, K_TRANS_X) - 1) * a->translate * w;
        ty += (2 * draw(seed, epoch, sample, K_TRANS_Y) - 1) * a->translate * h;
    }
    b0 = -tx;
    b1 = -ty;
    if (a->rotate_deg > 0) {
        double th = (2 * draw(seed, epoch, sample, K_ROTATE) - 1) * a->rotate_deg * M_PI / 180.0;
        double cs = cos(th), sn = sin(th);
        /* R(-th) = [cs sn; -sn cs] */
        double n00 = cs * A00 + sn * A10, n01 = cs * A01 + sn * A11;
        double n10 = -sn * A00 + cs * A10, n11 = -sn * A01 + cs * A11;
        double nb0 = cs * b0 + sn * b1, nb1 = -sn * b0 + cs * b1;
        A00 = n00, A01 = n01, A10 = n10, A11 = n11, b0 = nb0, b1 = nb1;
    }
    if (a->shear_deg > 0) {
        double t = tan((2 * draw(seed, epoch, sample, K_SHEAR) - 1) * a->shear_deg * M_PI / 180.0);
        /* inverse of x' = x + t y: x = x' - t y' */
        A00 -= t * A10;
        A01 -= t * A11;
        b0 -= t * b1;
    }
    if (zoom_on(a)) {
        double s = a->zoom_min + draw(seed, epoch, sample, K_ZOOM) * (a->zoom_max - a->zoom_min);
        double ox = (2 * draw(seed, epoch, sample, K_ZOOM_X) - 1) * fabs(1 - s) * w * 0.5;
        double oy = (2 * draw(seed, epoch, sample, K_ZOOM_Y) - 1) * fabs(1 - s) * h * 0.5;
        A00 *= s, A01 *= s, A10 *= s, A11 *= s;
        b0 = s * b0 + ox;
        b1 = s * b1 + oy;
    }
    if (a->hflip && flipped(a, seed, epoch, sample)) {
        A00 = -A00, A01 = -A01, b0 = -b0;
    }
    m[0] = A00, m[1] = A01, m[2] = A10, m[3] = A11, m[4] = b0, m[5] = b1;
}

/* out = the source sampled through the map m, bilinear, with a's fill outside it. */
static void warp(const pc_augment_config *a, const double m[6], int c, int h, int w,
                 const float *inf, const uint8_t *inb, float *out) {
    const size_t hw = (size_t)h * w;
    const double A00 = m[0], A01 = m[1], A10 = m[2], A11 = m[3], b0 = m[4], b1 = m[5];
    const double hw2 = w * 0.5, hh2 = h * 0.5;
    for (int y = 0; y < h; y++) {
        double yc = y + 0.5 - hh2;
        for (int x = 0; x < w; x++) {
            double xc = x + 0.5 - hw2;
            double xs = A00 * xc + A01 * yc + b0 + hw2 - 0.5;
            double ys = A10 * xc + A11 * yc + b1 + hh2 - 0.5;
            double xf = floor(xs), yf = floor(ys);
            float fx = (float)(xs - xf), fy = (float)(ys - yf);
            const long x0 = (long)xf, y0 = (long)yf;
            const size_t o = (size_t)y * w + x;
            /* the four taps' source columns and rows (-1: a zero tap) */
            const long xa = tap(a->fill, x0, w), xb = tap(a->fill, x0 + 1, w);
            const long ya = tap(a->fill, y0, h), yb = tap(a->fill, y0 + 1, h);
            float w00 = (1 - fx) * (1 - fy), w01 = fx * (1 - fy), w10 = (1 - fx) * fy, w11 = fx * fy;
            for (int ch = 0; ch < c; ch++) {
                size_t base = (size_t)ch * hw;
                float v = 0.0f;
                if (ya >= 0 && xa >= 0 && w00 != 0.0f) v += w00 * fetch(inf, inb, base + ya * w + xa);
                if (ya >= 0 && xb >= 0 && w01 != 0.0f) v += w01 * fetch(inf, inb, base + ya * w + xb);
                if (yb >= 0 && xa >= 0 && w10 != 0.0f) v += w10 * fetch(inf, inb, base + yb * w + xa);
                if (yb >= 0 && xb >= 0 && w11 != 0.0f) v += w11 * fetch(inf, inb, base + yb * w + xb);
                out[base + o] = v;
            }
        }
    }
}

/* Brightness and contrast (contrast around the mean luminance of the image). */
static void photometric(const pc_augment_config *a, uint64_t seed, uint64_t epoch,
                        uint64_t sample, int c, size_t hw, float *out) {
    if (a->brightness > 0) {
        float f = (float)(1 + (2 * draw(seed, epoch, sample, K_BRIGHT) - 1) * a->brightness);
        for (size_t i = 0; i < (size_t)c * hw; i++) out[i] = clamp01(out[i] * f);
    }
    if (a->contrast > 0) {
        float f = (float)(1 + (2 * draw(seed, epoch, sample, K_CONTRAST) - 1) * a->contrast);
        double m = 0;
        if (c == 3) {
            for (size_t i = 0; i < hw; i++)
                m += 0.299 * out[i] + 0.587 * out[hw + i] + 0.114 * out[2 * hw + i];
            m /= (double)hw;
        } else {
            for (size_t i = 0; i < (size_t)c * hw; i++) m += out[i];
            m /= (double)c * hw;
        }
        float mf = (float)m;
        for (size_t i = 0; i < (size_t)c * hw; i++) out[i] = clamp01((out[i] - mf) * f + mf);
    }
}

/* Cutout: a square of zeros around a random centre (clipped at the borders). */
static void cut_out(const pc_augment_config *a, uint64_t seed, uint64_t epoch, uint64_t sample,
                    int c, int h, int w, float *out) {
    const size_t hw = (size_t)h * w;
    int side = (int)lround(a->cutout * (double)(h < w ? h : w));
    if (side < 1) side = 1;
    int cy = (int)floor(draw(seed, epoch, sample, K_CUT_Y) * h);
    int cx = (int)floor(draw(seed, epoch, sample, K_CUT_X) * w);
    int y0 = cy - side / 2, x0 = cx - side / 2;
    int y1 = y0 + side, x1 = x0 + side;
    if (y0 < 0) y0 = 0;
    if (x0 < 0) x0 = 0;
    if (y1 > h) y1 = h;
    if (x1 > w) x1 = w;
    for (int ch = 0; ch < c; ch++)
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) out[(size_t)ch * hw + (size_t)y * w + x] = 0.0f;
}

static void augment_core(const pc_augment_config *a, uint64_t seed, uint64_t epoch,
                         uint64_t sample, int c, int h, int w, const float *inf,
                         const uint8_t *inb, float *out) {
    const size_t hw = (size_t)h * w;
    if (geometry_on(a)) {
        double m[6];
        inverse_map(a, seed, epoch, sample, h, w, m);
        warp(a, m, c, h, w, inf, inb, out);
    } else {
        for (size_t i = 0; i < (size_t)c * hw; i++) out[i] = fetch(inf, inb, i);
    }
    photometric(a, seed, epoch, sample, c, hw, out);
    if (a->cutout > 0) cut_out(a, seed, epoch, sample, c, h, w, out);
}

void pc_augment_apply(const pc_augment_config *a, uint64_t seed, uint64_t epoch, uint64_t sample,
                      int c, int h, int w, const float *in, float *out) {
    if (!pc_augment_enabled(a)) {
        memcpy(out, in, (size_t)c * h * w * sizeof *out);
        return;
    }
    augment_core(a, seed, epoch, sample, c, h, w, in, NULL, out);
}

pc_status pc_dataset_gather_augmented(const pc_dataset *d, const int64_t *idx, int n,
                                      const float *mean, const float *std,
                                      const pc_augment_config *a, uint64_t seed, uint64_t epoch,
                                      float *out, int32_t *labels_out) {
    if (d->features) return pc_dataset_gather_features(d, idx, n, epoch, out, labels_out);
    if (!pc_augment_enabled(a)) return pc_dataset_gather(d, idx, n, mean, std, out, labels_out);
    const size_t hw = (size_t)d->h * d->w, sample = hw * d->c;
    uint8_t *scratch = NULL;
    if (!d->pixels && !(scratch = malloc(sample))) return pc_fail_nomem();
    pc_status s = PC_OK;
    for (int i = 0; i < n && s == PC_OK; i++) {
        const uint8_t *p;
        s = pc_dataset_sample(d, idx[i], scratch, &p);
        if (s != PC_OK) break;
        float *o = out + (size_t)i * sample;
        augment_core(a, seed, epoch, (uint64_t)idx[i], d->c, d->h, d->w, NULL, p, o);
        for (int c = 0; c < d->c; c++) {
            float m = mean ? mean[c] : 0.0f, sd = std ? std[c] : 1.0f;
            float *q = o + (size_t)c * hw;
            for (size_t k = 0; k < hw; k++) q[k] = (q[k] - m) / sd;
        }
    }
    free(scratch);
    if (labels_out)
        for (int i = 0; i < n; i++) labels_out[i] = d->labels[idx[i]];
    return s;
}
