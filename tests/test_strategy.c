/* --sync fusion's data: the replicas' parts are disjoint and cover the training set, each
 * epoch gives replica r's shards of every step only samples of part r, each at most once
 * per epoch, in an order that changes with the epoch and is a pure function of (seed,
 * epoch). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "train/strategy.h"

enum { N = 1003, R = 4, BATCH = 32, STEPS = N / BATCH };

/* The replica whose part holds each sample. */
static void owners(const int64_t *part, int *owner) {
    for (int64_t i = 0; i < N; i++) owner[i] = -1;
    for (int r = 0; r < R; r++)
        for (int64_t k = (int64_t)N * r / R; k < (int64_t)N * (r + 1) / R; k++) owner[part[k]] = r;
}

int main(void) {
    int64_t *part = malloc(sizeof(int64_t) * N), *perm = malloc(sizeof(int64_t) * N);
    int64_t *other = malloc(sizeof(int64_t) * N), *scratch = malloc(sizeof(int64_t) * (N / R + 2));
    int *owner = malloc(sizeof(int) * N);
    char *seen = calloc(N, 1);
    pc_fusion_partition(5, N, part);
    owners(part, owner);
    int covered = 1;
    for (int64_t i = 0; i < N; i++) covered &= owner[i] >= 0;
    CHECK(covered, "every sample belongs to exactly one replica's part");
    int sorted = 1;
    for (int64_t i = 1; i < N; i++) sorted &= part[i] > part[i - 1];
    CHECK(!sorted, "the parts are a shuffle, not runs of the dataset's order");

    pc_fusion_epoch(5, 2, part, N, R, BATCH, STEPS, perm, scratch);
    int own = 1, once = 1;
    for (int64_t k = 0; k < STEPS; k++)
        for (int j = 0; j < BATCH; j++) {
            int64_t s = perm[k * BATCH + j];
            own &= owner[s] == j / (BATCH / R);
            once &= !seen[s]++;
        }
    CHECK(own, "replica r's slots of every step hold samples of part r only");
    CHECK(once, "no sample twice in an epoch");
    pc_fusion_epoch(5, 2, part, N, R, BATCH, STEPS, other, scratch);
    CHECK(memcmp(perm, other, sizeof(int64_t) * STEPS * BATCH) == 0, "same seed and epoch, same order");
    pc_fusion_epoch(5, 3, part, N, R, BATCH, STEPS, other, scratch);
    CHECK(memcmp(perm, other, sizeof(int64_t) * STEPS * BATCH) != 0, "another epoch, another order");
    pc_fusion_partition(6, N, other);
    CHECK(memcmp(part, other, sizeof(int64_t) * N) != 0, "another seed, other parts");

    pc_sync sync;
    char text[32];
    CHECK(pc_sync_parse("fusion", &sync) == PC_OK && sync.kind == PC_SYNC_FUSION, "parse fusion");
    pc_sync_format(&sync, text, sizeof text);
    CHECK(strcmp(text, "fusion") == 0, "format fusion: %s", text);
    CHECK(pc_sync_parse("fusion=2", &sync) == PC_ERR_USAGE, "fusion takes no argument");
    free(part);
    free(perm);
    free(other);
    free(scratch);
    free(owner);
    free(seen);
    return check_summary();
}
