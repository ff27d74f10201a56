/* Epoch orders: shuffle is a permutation (the order training always used), balanced
 * draws every class about equally often from imbalanced labels, and both are pure
 * functions of (seed, epoch). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "train/sampler.h"

enum { N = 20000, K = 4 };

/* Class k holds about 8^-k of the samples (0: 87.5%, 3: 0.2%); class 4 none. */
static void imbalanced(int32_t *labels) {
    for (int64_t i = 0; i < N; i++) labels[i] = i % 512 == 0 ? 3 : i % 64 == 0 ? 2 : i % 8 == 0 ? 1 : 0;
}

static void check_shuffle(const int32_t *labels) {
    pc_sampler s;
    int64_t *perm = malloc(sizeof(int64_t) * N);
    char *seen = calloc(N, 1);
    CHECK(pc_sampler_init(&s, PC_SAMPLER_SHUFFLE, labels, N, K + 1) == PC_OK, "init");
    pc_sampler_epoch(&s, 7, 3, N, perm);
    int ok = 1;
    for (int64_t i = 0; i < N; i++) ok &= perm[i] >= 0 && perm[i] < N && !seen[perm[i]]++;
    CHECK(ok, "shuffle is a permutation");
    pc_sampler_free(&s);
    free(perm);
    free(seen);
}

static void check_balanced(const int32_t *labels) {
    pc_sampler s;
    int64_t *a = malloc(sizeof(int64_t) * N), *b = malloc(sizeof(int64_t) * N);
    CHECK(pc_sampler_init(&s, PC_SAMPLER_BALANCED, labels, N, K + 1) == PC_OK, "init");
    pc_sampler_epoch(&s, 7, 3, N, a);
    pc_sampler_epoch(&s, 7, 3, N, b);
    CHECK(memcmp(a, b, sizeof(int64_t) * N) == 0, "the same (seed, epoch), the same order");
    pc_sampler_epoch(&s, 7, 4, N, b);
    CHECK(memcmp(a, b, sizeof(int64_t) * N) != 0, "another epoch, another order");
    int64_t count[K + 1] = {0};
    for (int64_t i = 0; i < N; i++) count[labels[a[i]]]++;
    /* each present class N / 4 = 5000 times; 5 standard deviations: 5 sqrt(5000 * 3/4) = 306 */
    for (int k = 0; k < K; k++)
        CHECK(fabs((double)count[k] - N / K) < 306, "class %d drawn %lld times, expected %d", k,
              (long long)count[k], N / K);
    CHECK(count[K] == 0, "a class without samples is never drawn");
    pc_sampler_free(&s);
    free(a);
    free(b);
}

int main(void) {
    int32_t *labels = malloc(sizeof(int32_t) * N);
    imbalanced(labels);
    check_shuffle(labels);
    check_balanced(labels);
    free(labels);
    return check_summary();
}
