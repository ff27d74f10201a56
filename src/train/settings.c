#include "train/settings.h"

#include "core/flags.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(char *buf, size_t size, const char *fmt, ...) {
    size_t len = strlen(buf);
    if (len + 1 >= size) return;
    if (len) buf[len++] = ' ', buf[len] = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

/* One flag's value in c as text. PARSED fields are enums (int-sized) except the two
 * structured ones, which have their own formats. */
static void format_flag(const pc_flag *f, const pc_train_config *c, char *out, size_t size) {
    const char *field = (const char *)c + f->offset;
    switch (f->type) {
    case PC_FLAG_INT64: snprintf(out, size, "%lld", (long long)*(const int64_t *)field); break;
    case PC_FLAG_UINT64:
        snprintf(out, size, "%llu", (unsigned long long)*(const uint64_t *)field);
        break;
    case PC_FLAG_FLOAT: /* the shortest text that reads back as the same float */
        for (int digits = 6; digits <= 9; digits++) {
            snprintf(out, size, "%.*g", digits, (double)*(const float *)field);
            if (strtof(out, NULL) == *(const float *)field) break;
        }
        break;
    case PC_FLAG_DOUBLE:
        for (int digits = 6; digits <= 17; digits++) {
            snprintf(out, size, "%.*g", digits, *(const double *)field);
            if (strtod(out, NULL) == *(const double *)field) break;
        }
        break;
    case PC_FLAG_STRING: {
        const char *v = *(const char *const *)field;
        snprintf(out, size, "%s", v ? v : "none");
        break;
    }
    case PC_FLAG_CHOICE:
        for (const pc_flag_choice *ch = f->choices; ch && ch->name; ch++)
            if (ch->value == *(const int *)field) {
                snprintf(out, size, "%s", ch->name);
                return;
            }
        snprintf(out, size, "%d", *(const int *)field);
        break;
    case PC_FLAG_PARSED:
        if (f->offset == offsetof(pc_train_config, augment)) pc_augment_format(&c->augment, out, size);
        else if (f->offset == offsetof(pc_train_config, tta)) pc_tta_format(&c->tta, out, size);
        else if (f->offset == offsetof(pc_train_config, transfer))
            pc_transfer_format_freeze(&c->transfer, out, size);
        else snprintf(out, size, "%d", *(const int *)field);
        break;
    default: snprintf(out, size, "%d", *(const int *)field); break;
    }
}

void pc_train_settings_format(const pc_train_config *c, char *buf, size_t size) {
    buf[0] = 0;
    for (const pc_flag *f = pc_train_flags; f->type != PC_FLAG_END; f++) {
        if (!f->name || f->offset == offsetof(pc_train_config, progress)) continue; /* rank 0's */
        char value[512];
        format_flag(f, c, value, sizeof value);
        add(buf, size, "%s=%s", f->name, value);
    }
    /* the optimizer constants no flag sets */
    add(buf, size, "beta1=%g beta2=%g eps=%g", (double)c->opt.beta1, (double)c->opt.beta2,
        (double)c->opt.eps);
}

/* The words of a settings string as keys and values (a word without '=' continues the
 * previous value): parsed in place in a copy. */
typedef struct {
    char *copy;
    int n;
    char *key[256], *value[256];
} settings;

static void parse(const char *text, settings *s) {
    s->n = 0;
    s->copy = strdup(text);
    if (!s->copy) return;
    char *save = NULL;
    for (char *w = strtok_r(s->copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(w, '=');
        if (!eq && s->n > 0) { /* a value with a space: rejoin it */
            w[-1] = ' ';
            continue;
        }
        if (s->n == 256) break;
        if (eq) *eq = 0;
        s->key[s->n] = w;
        s->value[s->n] = eq ? eq + 1 : "";
        s->n++;
    }
}

static const char *lookup(const settings *s, const char *key) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->key[i], key) == 0) return s->value[i];
    return NULL;
}

static void describe(char *diff, size_t size, const char *key, const char *label_a,
                     const char *va, const char *label_b, const char *vb) {
    size_t len = strlen(diff);
    snprintf(diff + len, size - len, "%s%s: %s has %s, %s has %s", len ? "; " : "", key,
             label_a, va ? va : "none", label_b, vb ? vb : "none");
}

void pc_settings_diff(const char *a, const char *label_a, const char *b, const char *label_b,
                      char *diff, size_t size) {
    settings *sa = calloc(1, sizeof *sa), *sb = calloc(1, sizeof *sb);
    diff[0] = 0;
    if (sa && sb) {
        parse(a, sa);
        parse(b, sb);
        for (int i = 0; i < sa->n; i++) {
            const char *vb = lookup(sb, sa->key[i]);
            if (!vb || strcmp(vb, sa->value[i]) != 0)
                describe(diff, size, sa->key[i], label_a, sa->value[i], label_b, vb);
        }
        for (int i = 0; i < sb->n; i++)
            if (!lookup(sa, sb->key[i]))
                describe(diff, size, sb->key[i], label_a, NULL, label_b, sb->value[i]);
        free(sa->copy);
        free(sb->copy);
    }
    if (!diff[0]) snprintf(diff, size, "%s", "the settings differ");
    free(sa);
    free(sb);
}
