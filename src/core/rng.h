/* Counter-based randomness: every random number is a pure function of
 * (seed, purpose, a, b, index). Nothing depends on which thread or rank asked
 * first, which is what makes results independent of the worker count. */
#ifndef PC_RNG_H
#define PC_RNG_H

#include <stdint.h>

enum pc_rng_purpose {
    PC_RNG_INIT = 1,     /* weight initialization: a = parameter index */
    PC_RNG_SHUFFLE = 2,  /* per-epoch permutation: a = epoch */
    PC_RNG_DROPOUT = 3,  /* a = step, b = layer, index = sample*stride + element */
    PC_RNG_AUGMENT = 4,  /* a = epoch, b = sample index */
    PC_RNG_SPLIT = 5,    /* validation split */
    PC_RNG_FUSION = 6    /* --sync fusion: the replicas' parts (a = 0), each epoch's order
                            of replica b's part (a = epoch + 1) */
};

static inline uint64_t pc_mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* 64 random bits keyed by the full tuple. */
static inline uint64_t pc_rand64(uint64_t seed, uint64_t purpose, uint64_t a, uint64_t b,
                                 uint64_t index) {
    uint64_t h = pc_mix64(seed ^ pc_mix64(purpose));
    h = pc_mix64(h ^ a);
    h = pc_mix64(h ^ (b * 0xD6E8FEB86659FD93ull));
    return pc_mix64(h ^ (index * 0x9E3779B97F4A7C15ull));
}

/* Uniform float in [0, 1) with 24 random bits. */
static inline float pc_uniform01(uint64_t bits) { return (float)(bits >> 40) * (1.0f / 16777216.0f); }

/* Standard normal via Box-Muller from one 64-bit draw. */
float pc_normal(uint64_t bits);

/* A stream for sequential use inside one keyed context (e.g. the Fisher-Yates
 * shuffle of one epoch): state = key, advanced by a counter. */
typedef struct {
    uint64_t key;
    uint64_t counter;
} pc_stream;

static inline uint64_t pc_stream_next(pc_stream *s) { return pc_mix64(s->key ^ pc_mix64(s->counter++)); }

/* Unbiased integer in [0, n) */
uint64_t pc_stream_below(pc_stream *s, uint64_t n);

#endif
