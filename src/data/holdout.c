#include "data/holdout.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

/* in_val[i] = 1 for the held-out samples (see holdout.h). */
static pc_status choose(const pc_dataset *d, double fraction, uint64_t seed, uint8_t *in_val) {
    int64_t *members = malloc(sizeof(int64_t) * (size_t)(d->n ? d->n : 1));
    if (!members) return pc_fail_nomem();
    for (int c = 0; c < d->classes; c++) {
        int64_t n = 0;
        for (int64_t i = 0; i < d->n; i++)
            if (d->labels[i] == c) members[n++] = i;
        int64_t nval = n >= 2 ? PC_MAX(1, PC_MIN((int64_t)llround((double)n * fraction), n - 1)) : 0;
        pc_stream st = {pc_rand64(seed, PC_RNG_SPLIT, (uint64_t)c, 1, 0), 0};
        for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
            int64_t j = (int64_t)pc_stream_below(&st, (uint64_t)i + 1), t = members[i];
            members[i] = members[j];
            members[j] = t;
        }
        for (int64_t i = 0; i < nval; i++) in_val[members[i]] = 1;
    }
    free(members);
    return PC_OK;
}

static char **copy_names(char *const *names, int n) {
    char **out = calloc((size_t)n, sizeof *out);
    for (int i = 0; out && i < n; i++)
        if (!(out[i] = strdup(names[i]))) {
            while (i-- > 0) free(out[i]);
            free(out);
            return NULL;
        }
    return out;
}

pc_status pc_dataset_hold_out(pc_dataset *d, double fraction, uint64_t seed, pc_dataset *val) {
    memset(val, 0, sizeof *val);
    if (!d->pixels)
        return pc_fail(PC_ERR_USAGE, "--val-split on data with a test set holds out images in "
                       "memory: not with --cache none");
    uint8_t *in_val = calloc((size_t)(d->n ? d->n : 1), 1);
    if (!in_val) return pc_fail_nomem();
    pc_status st = choose(d, fraction, seed, in_val);
    int64_t nval = 0, size = (int64_t)d->c * d->h * d->w;
    for (int64_t i = 0; i < d->n; i++) nval += in_val[i];
    *val = (pc_dataset){.n = nval, .c = d->c, .h = d->h, .w = d->w, .classes = d->classes};
    val->pixels = pc_alloc((size_t)(nval ? nval : 1) * (size_t)size);
    val->labels = pc_alloc(sizeof(int32_t) * (size_t)(nval ? nval : 1));
    val->class_names = d->class_names ? copy_names(d->class_names, d->classes) : NULL;
    if (st == PC_OK && (!val->pixels || !val->labels || (d->class_names && !val->class_names)))
        st = pc_fail_nomem();
    int64_t kept = 0, held = 0;
    for (int64_t i = 0; st == PC_OK && i < d->n; i++) { /* both parts in dataset order */
        if (in_val[i]) {
            memcpy(val->pixels + held * size, d->pixels + i * size, (size_t)size);
            val->labels[held++] = d->labels[i];
        } else {
            memmove(d->pixels + kept * size, d->pixels + i * size, (size_t)size);
            d->labels[kept++] = d->labels[i];
        }
    }
    free(in_val);
    if (st != PC_OK) {
        pc_dataset_free(val);
        return st;
    }
    d->n = kept;
    return PC_OK;
}
