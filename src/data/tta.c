/* Test-time augmentation views. See tta.h. */
#include "data/tta.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/augment.h"

pc_status pc_tta_parse(const char *spec, pc_tta *out) {
    memset(out, 0, sizeof *out);
    if (!spec) return PC_OK;
    char buf[128];
    if (strlen(spec) >= sizeof buf) return pc_fail(PC_ERR_USAGE, "--tta: spec too long");
    strcpy(buf, spec);
    pc_tta t = {0};
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*item)) item++;
        if (!*item || strcmp(item, "none") == 0) continue;
        if (strcmp(item, "flip") == 0) {
            t.flip = 1;
            continue;
        }
        if (strncmp(item, "translate=", 10) != 0)
            return pc_fail(PC_ERR_USAGE, "--tta: unknown item '%s' (expected flip or translate=N)",
                           item);
        char *end;
        long n = strtol(item + 10, &end, 10);
        if (item[10] == 0 || *end || n < 1 || n > 64)
            return pc_fail(PC_ERR_USAGE, "--tta: bad item '%s': expected an integer number of "
                           "pixels in [1, 64]", item);
        t.translate = (int)n;
    }
    *out = t;
    return PC_OK;
}

void pc_tta_format(const pc_tta *t, char *buf, size_t cap) {
    if (t->flip && t->translate) snprintf(buf, cap, "flip,translate=%d", t->translate);
    else if (t->translate) snprintf(buf, cap, "translate=%d", t->translate);
    else snprintf(buf, cap, "%s", t->flip ? "flip" : "none");
}

pc_status pc_tta_check(const pc_tta *t, int h, int w) {
    if (t && t->translate && (t->translate >= h || t->translate >= w))
        return pc_fail(PC_ERR_USAGE, "--tta translate=%d: must be smaller than the %dx%d images",
                       t->translate, h, w);
    return PC_OK;
}

/* Views are shift-major: shift s (0, +N, -N) x mirror m (no, yes). */
static int mirrors(const pc_tta *t) { return t && t->flip ? 2 : 1; }
static int shifts(const pc_tta *t) { return t && t->translate ? 3 : 1; }

int pc_tta_views(const pc_tta *t) { return mirrors(t) * shifts(t); }

float pc_tta_weight(const pc_tta *t, int view) {
    float shift_w = shifts(t) == 1 ? 1.0f : view / mirrors(t) == 0 ? 0.5f : 0.25f;
    return shift_w / (float)mirrors(t);
}

void pc_tta_view(const pc_tta *t, int view, int c, int h, int w, const float *in, float *out) {
    int s = view / mirrors(t), mirror = view % mirrors(t);
    int d = s == 0 ? 0 : s == 1 ? t->translate : -t->translate;
    if (d == 0 && !mirror) {
        memcpy(out, in, sizeof(float) * c * h * w);
        return;
    }
    for (int ch = 0; ch < c; ch++) {
        const float *src = in + (size_t)ch * h * w;
        float *dst = out + (size_t)ch * h * w;
        for (int y = 0; y < h; y++) {
            const float *row = src + (size_t)pc_reflect_index(y - d, h) * w;
            for (int x = 0; x < w; x++)
                dst[(size_t)y * w + x] = row[pc_reflect_index((mirror ? w - 1 - x : x) - d, w)];
        }
    }
}
