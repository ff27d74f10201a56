#include "core/flags.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The whole argument must be an integer; within [lo, hi] unless !check_range. */
static pc_flag_result parse_integer(const pc_flag *f, const char *arg, int check_range,
                                    long *out) {
    char *end;
    long v = strtol(arg, &end, 10);
    if (!*arg || *end || (check_range && (v < (long)f->lo || v > (long)f->hi))) {
        pc_fail(PC_ERR_USAGE, "--%s %s: expected an integer in [%ld, %ld]", f->name, arg,
                (long)f->lo, (long)f->hi);
        return PC_FLAG_ERR_RANGE;
    }
    *out = v;
    return PC_FLAG_OK;
}

static pc_flag_result parse_number(const pc_flag *f, const char *arg, int check_range,
                                   float *out) {
    char *end;
    double v = strtod(arg, &end);
    if (!*arg || *end || (check_range && !(v >= f->lo && v <= f->hi))) {
        pc_fail(PC_ERR_USAGE, "--%s %s: expected a number in [%g, %g]", f->name, arg, f->lo,
                f->hi);
        return PC_FLAG_ERR_RANGE;
    }
    if (check_range && f->open && (v == f->lo || v == f->hi)) {
        pc_fail(PC_ERR_USAGE, "--%s %s: expected %s", f->name, arg, f->expect);
        return PC_FLAG_ERR_USAGE;
    }
    *out = (float)v;
    return PC_FLAG_OK;
}

static pc_flag_result parse_choice(const pc_flag *f, const char *arg, int *out) {
    for (const pc_flag_choice *c = f->choices; c->name; c++)
        if (strcmp(arg, c->name) == 0) {
            *out = c->value;
            return PC_FLAG_OK;
        }
    pc_fail(PC_ERR_USAGE, "--%s %s: expected %s", f->name, arg, f->expect);
    return PC_FLAG_ERR_USAGE;
}

static pc_flag_result set_value(const pc_flag *f, void *opts, const char *arg, int check_range) {
    void *field = (char *)opts + f->offset;
    pc_flag_result r = PC_FLAG_OK;
    long l = 0;
    float x = 0;
    switch (f->type) {
    case PC_FLAG_SWITCH: *(int *)field = (int)f->lo; break;
    case PC_FLAG_INT:
        if ((r = parse_integer(f, arg, check_range, &l)) == PC_FLAG_OK) *(int *)field = (int)l;
        break;
    case PC_FLAG_INT64:
        if ((r = parse_integer(f, arg, check_range, &l)) == PC_FLAG_OK) *(int64_t *)field = l;
        break;
    case PC_FLAG_UINT64:
        if ((r = parse_integer(f, arg, check_range, &l)) == PC_FLAG_OK)
            *(uint64_t *)field = (uint64_t)l;
        break;
    case PC_FLAG_FLOAT: r = parse_number(f, arg, check_range, (float *)field); break;
    case PC_FLAG_DOUBLE: /* parsed as a float: the value --timeout has always had */
        if ((r = parse_number(f, arg, check_range, &x)) == PC_FLAG_OK) *(double *)field = x;
        break;
    case PC_FLAG_STRING: *(const char **)field = arg; break;
    case PC_FLAG_CHOICE: r = parse_choice(f, arg, (int *)field); break;
    case PC_FLAG_PARSED: r = f->parse(arg, field); break;
    case PC_FLAG_END:
    case PC_FLAG_SECTION: break;
    }
    return r;
}

pc_flag_result pc_flag_set(const pc_flag *f, void *opts, const char *arg) {
    return set_value(f, opts, arg, 1);
}

pc_status pc_flags_defaults(const pc_flag *table, void *opts) {
    for (const pc_flag *f = table; f->type != PC_FLAG_END; f++) {
        if (!f->def || f->type == PC_FLAG_SWITCH || f->type == PC_FLAG_SECTION) continue;
        if (set_value(f, opts, f->def, 0) != PC_FLAG_OK) {
            char why[512]; /* pc_fail writes over pc_last_error()'s buffer */
            snprintf(why, sizeof why, "%s", pc_last_error());
            return pc_fail(PC_ERR_INTERNAL, "the default of --%s: %s", f->name, why);
        }
    }
    return PC_OK;
}

const pc_flag *pc_flag_find(const pc_flag *table, const char *name) {
    for (const pc_flag *f = table; f->type != PC_FLAG_END; f++)
        if (f->name && strcmp(f->name, name) == 0) return f;
    return NULL;
}
