/* Minimal test harness: CHECK records a failure with file:line but keeps going;
 * check_summary() prints "N passed, N failed" and returns the exit status. */
#ifndef PC_TEST_CHECK_H
#define PC_TEST_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        if (cond) {                                                   \
            check_passed++;                                           \
        } else {                                                      \
            check_failed++;                                           \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                             \
            fprintf(stderr, "\n");                                    \
        }                                                             \
    } while (0)

static inline int check_summary(void) {
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

/* Normalized error in double precision: ||a - b|| / ||b||, or / floor where floor is
 * larger (the size of the terms that b sums, when they may nearly cancel: then ||b|| says
 * nothing of the rounding). */
static inline double check_nerr_floor(const float *a, const float *b, long n, double floor) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    den = sqrt(den) > floor ? sqrt(den) : floor;
    return sqrt(num) / (den > 1e-30 ? den : 1.0);
}
static inline double check_nerr(const float *a, const float *b, long n) {
    return check_nerr_floor(a, b, n, 0);
}

#endif
