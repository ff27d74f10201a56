/* Command-line helpers shared by the subcommands in tools/parcnn.c and tools/bench.c. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

int usage_error(const char *cmd, const char *fmt, const char *arg) {
    fprintf(stderr, "parcnn %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'parcnn %s --help')\n", cmd);
    return 2;
}

int parse_long(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) {
        fprintf(stderr, "parcnn %s: %s %s: expected an integer in [%ld, %ld]\n", cmd, flag, s,
                lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int parse_float(const char *cmd, const char *flag, const char *s, double lo, double hi,
                float *out) {
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "parcnn %s: %s %s: expected a number in [%g, %g]\n", cmd, flag, s, lo,
                hi);
        return -1;
    }
    *out = (float)v;
    return 0;
}
