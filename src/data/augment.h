/* Training-time augmentation of float CHW images in [0, 1] (before normalization).
 *
 * Every random choice is a pure function of (seed, epoch, sample index, parameter):
 * parameter k draws pc_uniform01(pc_rand64(seed, PC_RNG_AUGMENT, epoch, sample, k)), with
 * a fixed k per parameter, so turning one augmentation on or off never changes the draws
 * of another, and the result does not depend on threads, batch composition or order.
 *
 * Order: one affine transform (horizontal flip, zoom / random resized crop, shear,
 * rotation, translation, crop-with-padding shift) applied by inverse mapping with bilinear
 * sampling and zero fill outside the image; then brightness, then contrast; then cutout. */
#ifndef PC_AUGMENT_H
#define PC_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"
#include "data/dataset.h"

/* Horizontal flip: off, random (probability 1/2 per sample and epoch), or airbench's
 * alternating flip: a random first choice per sample, inverted every epoch, so every
 * image is seen mirrored in every other epoch. */
enum { PC_FLIP_OFF = 0, PC_FLIP_RANDOM = 1, PC_FLIP_ALT = 2 };
/* What the geometric augmentations see outside the image (Keras' fill_mode): zeros, the
 * nearest edge pixel, or the image mirrored without repeating its edge (PyTorch's
 * 'reflect' padding, as airbench's translations: -1 -> 1, n -> n - 2). */
enum { PC_FILL_CONSTANT = 0, PC_FILL_NEAREST = 1, PC_FILL_REFLECT = 2 };

/* Index i (any integer) reflected into [0, n) without repeating the edge. */
static inline long pc_reflect_index(long i, long n) {
    if (n == 1) return 0;
    const long period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

typedef struct {
    int hflip;        /* PC_FLIP_* */
    int crop_pad;     /* random crop with padding P: shift by integers in [-P, P] each axis */
    float zoom_min;   /* random resized crop: a window of s in [zoom_min, zoom_max] of each */
    float zoom_max;   /*   side, at a random position, fills the image (s > 1 zooms out);
                           off when both are 1 (or zoom_min <= 0: a zeroed struct is all-off) */
    float shear_deg;  /* x-shear by an angle in [-shear, shear] degrees */
    float rotate_deg; /* rotation by an angle in [-rotate, rotate] degrees */
    float translate;  /* shift by up to this fraction of the width / height (continuous) */
    float brightness; /* multiply by a factor in [1 - b, 1 + b] */
    float contrast;   /* scale around the mean gray level by a factor in [1 - c, 1 + c] */
    float cutout;     /* zero a square of side round(cutout * min(h, w)) centred anywhere
                         (clipped at the borders); 0 = off */
    int fill;         /* PC_FILL_*: the pixels the geometry brings in from outside */
} pc_augment_config;

/* A config with everything off (also what a zero-filled struct means). */
void pc_augment_none(pc_augment_config *a);

int pc_augment_enabled(const pc_augment_config *a);

/* Parse "flip,crop=4,zoom=0.8,shear=10,rotate=15,translate=0.1,brightness=0.2,contrast=0.2,
 * cutout=0.5,fill=reflect" (any subset, any order; "hflip" = "flip"; "flip=alt" alternates;
 * "zoom=A:B" gives both ends, "zoom=A" means [A, 1]; fill=constant|nearest|reflect; "" or
 * "none" = off). Errors (PC_ERR_USAGE) name the bad item. */
pc_status pc_augment_parse(const char *spec, pc_augment_config *out);

/* The canonical spec string of a config ("none" when off), for logs and metadata. */
void pc_augment_format(const pc_augment_config *a, char *buf, size_t cap);

/* Augment one image: in and out are c x h x w floats in [0, 1]; they must not overlap.
 * An all-off config copies exactly. Output stays in [0, 1]. */
void pc_augment_apply(const pc_augment_config *a, uint64_t seed, uint64_t epoch, uint64_t sample,
                      int c, int h, int w, const float *in, float *out);

/* pc_dataset_gather with augmentation: out[i] = normalize(augment(pixels[idx[i]] / 255)),
 * keyed by the dataset sample index idx[i]; mean/std may be NULL (0 / 1). a NULL or off
 * gives exactly pc_dataset_gather's result. labels_out may be NULL. */
pc_status pc_dataset_gather_augmented(const pc_dataset *d, const int64_t *idx, int n,
                                      const float *mean, const float *std, const pc_augment_config *a, uint64_t seed,
                                 uint64_t epoch, float *out, int32_t *labels_out);

#endif
