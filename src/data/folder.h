/* Image-folder datasets ("folder:DIR").
 *
 * Layouts (checked in this order):
 *   DIR/train/CLASS/IMAGE + DIR/test/CLASS/IMAGE (or DIR/val/CLASS/IMAGE; test/ wins if
 *   both exist)
 *       train=1 loads train/, train=0 loads test/ (or val/). Both must hold the same class
 *       folders. val_split is refused here (the test folder is the evaluation set).
 *   DIR/train/CLASS/IMAGE alone (DIR holds no other folder), or DIR/CLASS/IMAGE
 *       train=1 loads everything, or the training part when val_split > 0; train=0 loads
 *       the held-out part and needs val_split > 0 (an error naming --val-split otherwise).
 * Images are the files directly inside a class folder whose names end in .jpg, .jpeg or
 * .png (any case); the decoder is chosen by the magic bytes. Hidden entries (".name"),
 * other files and sub-folders are ignored (counted in the report); a sub-folder or dangling
 * symlink named like an image is a bad file. Class names are the sorted (strcmp) folder
 * names, with every byte that is not part of valid UTF-8 written as \xNN (the names go
 * into the JSON header of model files); labels are their indices. Samples are ordered round-robin over the classes
 * (the first file of every class in class order, then the second, ...; files sorted by
 * name within a class), so that the first N samples are balanced over the classes.
 *
 * Errors: no images at all; a class folder with no images (an empty class is always an
 * error: class indices must not shift); every image of a class bad. A bad image (corrupt,
 * truncated, empty, too large, unreadable) is dropped and counted when on_bad_skip is set,
 * otherwise the load fails naming the first bad file in sorted order.
 *
 * Stratified split (val_split > 0): in each class, the sorted file list is permuted with
 * pc_stream{pc_rand64(seed, PC_RNG_SPLIT, class, 0, 0)}; the first round(n * val_split)
 * files (at least 1 and at most n - 1 when n >= 2; none when n == 1) are held out. The
 * split depends only on the listing, never on which files decode. When list_dir is set,
 * list_dir/train.txt and list_dir/val.txt receive the paths (relative to DIR, one per
 * line, in dataset order; skipped bad files included) of the two parts.
 *
 * Decoding runs on decode_threads pthreads; each file's pixels go to its own slot, so the
 * dataset is identical for any thread count.
 *
 * Cache: "memory" (or NULL) decodes at load time and keeps the uint8 pixels in memory (the
 * dataset itself), so no epoch decodes again. A directory path keeps, per part, a file
 * DIR-NAME-PART-SIZEpx-HASH.cache holding the decoded, resized pixels under a key hashing
 * the sorted relative paths, labels, sizes and mtimes of the part's files, image size,
 * channels, pixel limit, split settings and the codec versions; a matching key loads the
 * pixels without decoding, anything else (a file added, removed, touched) decodes again and
 * rewrites the cache atomically (temporary file, fsync, rename). The file carries a CRC-32
 * of its bytes: a matching key with a wrong checksum or structure is a corrupt cache,
 * decoded again and rewritten with a warning in the report. "none" checks every image once
 * at load time (decoding it, keeping only its pixel sums for the normalization) and returns
 * a dataset whose samples are decoded from their files whenever they are gathered: memory
 * stays small, and each process decodes only the samples it trains on.
 *
 * Processes (comm with more than one rank): rank r decodes only images
 * [n*r/R, n*(r+1)/R) of the part; the decoded pixels (or, with "none", the sums), the
 * status of every file and the gray flags are then exchanged, so every rank ends with
 * the same dataset and takes the same decisions about bad files. A cache file is used
 * only when every rank finds a matching one; ranks that did not rewrite theirs.
 *
 * channels = 0 decides from the data: 1 when every image of the part is stored as gray,
 * else 3. Load the training part first and pass its d->c when loading the evaluation part
 * so that both agree. */
#ifndef PC_FOLDER_H
#define PC_FOLDER_H

#include <stdint.h>
#include <stdio.h>

#include "core/common.h"
#include "data/dataset.h"

#define PC_FOLDER_MAX_BAD_LISTED 20

typedef struct pc_folder_report pc_folder_report;
typedef struct pc_comm pc_comm;

/* The files of a dataset decoded on demand ("none" cache; typedef'd in data/dataset.h). */
struct pc_image_files {
    char *root;         /* the folder the relative paths start from */
    char **rel;         /* per sample */
    int64_t n;
    int size;           /* square side in pixels */
    int decode_c;       /* channels decoded: 3 when the data turned out gray (then c = 1) */
    int c;              /* channels kept: the first c planes of the decoded image */
    int64_t max_pixels;
    int crop_short;     /* > 0: shorter side resized to this, then centre-cropped to size */
};

/* Decode sample i into out (c x size x size bytes); an error names the file. */
pc_status pc_image_files_decode(const pc_image_files *f, int64_t i, uint8_t *out);
void pc_image_files_free(pc_image_files *f);

/* (typedef'd as pc_folder_options in data/dataset.h) */
struct pc_folder_options {
    int image_size;        /* square side in pixels; <= 0 means 32 */
    int channels;          /* 1, 3, or 0 = decide from the data */
    float val_split;       /* 0 (none) .. 0.9: stratified hold-out fraction */
    uint64_t seed;         /* split seed */
    const char *cache;     /* NULL or "memory", "none", or a directory for cache files */
    int on_bad_skip;       /* 1: drop bad images (counted); 0: fail on the first */
    int decode_threads;    /* <= 0: one per online CPU (at most 16) */
    const char *list_dir;  /* where train.txt / val.txt go when splitting; NULL: not written */
    int64_t max_pixels;    /* refuse larger images; <= 0 means PC_IMAGE_DEFAULT_MAX_PIXELS */
    int crop_short;        /* > 0: keep the aspect ratio: resize the shorter side to this
                              (>= image_size), then centre-crop image_size x image_size
                              (pc_image_load_chw_cropped); 0: stretch to image_size */
    pc_folder_report *report; /* optional: filled by pc_dataset_load_ex (see below) */
    pc_comm *comm;         /* NULL: decode everything here; else split across its ranks */
};

/* The defaults above (image_size 32, channels 0, val_split 0, seed 0, memory cache, fail on
 * a bad image, threads = CPUs, no lists). */
void pc_folder_options_default(pc_folder_options *o);

struct pc_folder_report {
    char *dir;                /* the folder the part came from (e.g. DIR/train) */
    const char *part;         /* "train", "val" (held out or DIR/val) or "test" */
    int layout;               /* 0: DIR/CLASS, 1: DIR/train + DIR/test|val, 2: DIR/train only */
    int classes;
    int64_t *class_counts;    /* images kept per class in this part (classes entries) */
    int64_t listed;           /* image files found for this part */
    int64_t kept;             /* = dataset n */
    int64_t skipped;          /* bad images dropped (on_bad_skip) */
    int n_bad;                /* messages in bad[] (the first PC_FOLDER_MAX_BAD_LISTED) */
    char *bad[PC_FOLDER_MAX_BAD_LISTED]; /* "PATH: what is wrong" */
    int64_t ignored;          /* hidden entries, non-images, sub-folders */
    int64_t warnings;         /* silenced, non-fatal decoder warnings in kept images */
    int channels, image_size;
    int threads;              /* decode threads used (0 when loaded from the cache) */
    int ranks;                /* processes that shared the decoding */
    int64_t decoded_here;     /* images this process decoded (0 when loaded from the cache) */
    int on_demand;            /* 1: --cache none, pixels decoded when gathered */
    int from_cache;           /* 1: pixels loaded from the cache file */
    int cache_corrupt;        /* 1: the cache file matched but was corrupt: rebuilt */
    char *cache_file;         /* the cache file used or written (NULL for "memory") */
    double decode_seconds;    /* wall time of decoding + resizing (0 when cached) */
    double images_per_second; /* decoded images per second (0 when cached) */
    double load_seconds;      /* total wall time of the load */
};

/* Load one part of an image folder into `out` (uint8 CHW at image_size x image_size).
 * `report` (may be NULL; then opt->report is used if set) receives the summary; free it
 * with pc_folder_report_free (on failure it is left empty). opt NULL = defaults. */
pc_status pc_dataset_load_folder(const char *dir, int train, const pc_folder_options *opt,
                                 pc_dataset *out, pc_folder_report *report);

void pc_folder_report_free(pc_folder_report *r);

/* Parse a cache file's bytes as the loader does, with the key its own header gives (for
 * tests and fuzzing): 1 valid, 0 not a cache file of this version, -1 corrupt. */
int pc_folder_cache_probe(FILE *f, int allow_bad);

/* Print the summary: images per class, skipped files, cache and speed. `d` gives the class
 * names (the dataset returned with this report). */
void pc_folder_report_print(const pc_folder_report *r, const pc_dataset *d, FILE *f);

#endif
