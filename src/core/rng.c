#include "rng.h"

#include <math.h>

float pc_normal(uint64_t bits) {
    /* Two 26-bit uniforms, the first kept away from zero for the log. */
    double u1 = ((double)(bits >> 38) + 0.5) / 67108864.0;
    double u2 = (double)((bits >> 12) & 0x3FFFFFFull) / 67108864.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t pc_stream_below(pc_stream *s, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = pc_stream_next(s);
    while (r >= limit);
    return r % n;
}
