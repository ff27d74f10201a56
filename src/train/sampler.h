/* The order of an epoch's training samples. */
#ifndef PC_SAMPLER_H
#define PC_SAMPLER_H

#include <stdint.h>

#include "core/common.h"
#include "data/dataset.h"

typedef enum {
    PC_SAMPLER_SHUFFLE = 0, /* a permutation of all samples */
    PC_SAMPLER_BALANCED     /* n draws with replacement, every class equally likely (as
                               PyTorch's WeightedRandomSampler with weights 1 / class count) */
} pc_sampler_kind;

typedef struct {
    pc_sampler_kind kind;
    int classes;
    int64_t *by_class;   /* balanced: the sample indices grouped by class, ascending */
    int64_t *class_start; /* classes + 1 offsets into by_class */
    int present;         /* classes with at least one sample */
    int *present_class;  /* their labels */
} pc_sampler;

pc_status pc_sampler_init(pc_sampler *s, pc_sampler_kind kind, const int32_t *labels, int64_t n,
                          int classes);
void pc_sampler_free(pc_sampler *s);
/* perm[0..n) for `epoch`: a pure function of (seed, epoch) and the labels, so the same
 * for every worker, rank and resume. */
void pc_sampler_epoch(const pc_sampler *s, uint64_t seed, int epoch, int64_t n, int64_t *perm);

/* --class-weights SPEC for the training set d: NULL or "none" gives *out = NULL; "balanced"
 * n / (present classes x count of the class) (scikit-learn's compute_class_weight
 * "balanced"; 0 for a class without samples); otherwise a file with one line per class
 * in class order, "WEIGHT" or "CLASS WEIGHT" (a class name that must match), weights > 0,
 * '#' comments. *out: d->classes floats (malloc'ed). */
pc_status pc_class_weights(const char *spec, const pc_dataset *d, float **out);

#endif
