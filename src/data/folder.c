/* Image-folder datasets: listing, layout detection, stratified split, parallel decoding
 * into a pc_dataset, and the on-disk cache of decoded pixels. See folder.h. */
#define _GNU_SOURCE
#include "data/folder.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/rng.h"
#include "comm/comm.h"
#include "data/image.h"

#define MAX_IMAGE_SIDE 4096
#define MAX_FILES ((int64_t)1 << 30)
#define CACHE_MAGIC "PCFOLDC1"
#define CACHE_VERSION 2u
#define CACHE_ENDIAN 0x01020304u
#define MAX_BAD_MSG 4096

/* ---------------------------------------------------------------- small helpers */



static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return 0;
    return strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
           strcasecmp(dot, ".png") == 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct {
    char **v;
    int n, cap;
} strlist;

static void strlist_free(strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int strlist_push(strlist *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return 0;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) return 0;
    l->n++;
    return 1;
}

/* All entry names of a directory except "." and "..", sorted. */
static pc_status read_dir_sorted(const char *path, strlist *out) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(path);
    if (!d) return pc_fail(PC_ERR_DATA, "%s: cannot open directory: %s", path, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (!strlist_push(out, e->d_name)) {
            closedir(d);
            strlist_free(out);
            return pc_fail(PC_ERR_NOMEM, "out of memory listing %s", path);
        }
    }
    closedir(d);
    if (out->n > 1) qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
    return PC_OK;
}

/* ---------------------------------------------------------------- listing */

typedef struct {
    char *rel;        /* path relative to DIR */
    int label;
    int64_t size;     /* -1 when stat failed (the decoder will say why) */
    int64_t mtime_ns;
} fentry;

typedef struct {
    fentry *v;
    int64_t n, cap;
} flist;

static void flist_free(flist *l) {
    for (int64_t i = 0; i < l->n; i++) free(l->v[i].rel);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Class folders of root/sub: non-hidden directories (symlinks followed), sorted.
 * *ignored counts other entries; *stray counts image files lying outside class folders. */
static pc_status list_classes(const char *root, const char *sub, strlist *classes,
                              int64_t *ignored, int64_t *stray) {
    memset(classes, 0, sizeof *classes);
    char *base = pc_path_join(root, sub);
    if (!base) return pc_fail(PC_ERR_NOMEM, "out of memory");
    strlist names;
    pc_status s = read_dir_sorted(base, &names);
    if (s != PC_OK) {
        free(base);
        return s;
    }
    for (int i = 0; i < names.n && s == PC_OK; i++) {
        const char *nm = names.v[i];
        char *full = pc_path_join(base, nm);
        if (!full) {
            s = pc_fail(PC_ERR_NOMEM, "out of memory");
            break;
        }
        if (nm[0] != '.' && is_dir(full)) {
            if (!strlist_push(classes, nm)) s = pc_fail(PC_ERR_NOMEM, "out of memory");
        } else {
            if (ignored) (*ignored)++;
            if (stray && nm[0] != '.' && has_image_ext(nm)) (*stray)++;
        }
        free(full);
    }
    strlist_free(&names);
    free(base);
    if (s != PC_OK) strlist_free(classes);
    return s;
}

/* Reorder a class-grouped list round-robin over the classes (the first file of every
 * class, then the second, ...), so that the first N samples, as --limit takes them,
 * are balanced over the classes. */
typedef struct {
    int64_t rank;   /* position within its class */
    int label;
    fentry e;
} ranked_entry;

static int cmp_ranked(const void *a, const void *b) {
    const ranked_entry *x = a, *y = b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    return (x->label > y->label) - (x->label < y->label);
}

static pc_status interleave_classes(fentry *v, int64_t n, int classes) {
    ranked_entry *r = malloc(sizeof *r * (size_t)(n ? n : 1));
    int64_t *seen = calloc((size_t)classes + 1, sizeof *seen);
    if (!r || !seen) {
        free(r);
        free(seen);
        return pc_fail(PC_ERR_NOMEM, "out of memory");
    }
    for (int64_t i = 0; i < n; i++) r[i] = (ranked_entry){seen[v[i].label]++, v[i].label, v[i]};
    qsort(r, (size_t)n, sizeof *r, cmp_ranked);
    for (int64_t i = 0; i < n; i++) v[i] = r[i].e;
    free(r);
    free(seen);
    return PC_OK;
}

/* Append the images of class folder root/relclass (sorted by name) to `out`. */
static pc_status list_images(const char *root, const char *relclass, int label, flist *out,
                             int64_t *count, int64_t *ignored) {
    *count = 0;
    char *base = pc_path_join(root, relclass);
    if (!base) return pc_fail(PC_ERR_NOMEM, "out of memory");
    strlist names;
    pc_status s = read_dir_sorted(base, &names);
    free(base);
    if (s != PC_OK) return s;
    for (int i = 0; i < names.n; i++) {
        const char *nm = names.v[i];
        if (nm[0] == '.' || !has_image_ext(nm)) {
            (*ignored)++;
            continue;
        }
        char *rel = pc_path_join(relclass, nm), *full = rel ? pc_path_join(root, rel) : NULL;
        if (!full || (out->n == out->cap && out->cap >= MAX_FILES)) {
            free(rel);
            free(full);
            s = rel && full ? pc_fail(PC_ERR_DATA, "%s: too many files", root)
                            : pc_fail(PC_ERR_NOMEM, "out of memory");
            break;
        }
        if (out->n == out->cap) {
            int64_t cap = out->cap ? out->cap * 2 : 256;
            fentry *v = realloc(out->v, (size_t)cap * sizeof *v);
            if (!v) {
                free(rel);
                free(full);
                s = pc_fail(PC_ERR_NOMEM, "out of memory");
                break;
            }
            out->v = v;
            out->cap = cap;
        }
        struct stat st;
        fentry *f = &out->v[out->n++];
        f->rel = rel;
        f->label = label;
        if (stat(full, &st) == 0) {
            f->size = (int64_t)st.st_size;
            f->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        } else {
            f->size = -1;
            f->mtime_ns = 0;
        }
        free(full);
        (*count)++;
    }
    strlist_free(&names);
    return s;
}

/* "only in A: x, y; only in B: z" for two sorted lists. */
static void class_diff(const strlist *a, const char *an, const strlist *b, const char *bn,
                       char *buf, size_t cap) {
    size_t k = 0;
    buf[0] = 0;
    for (int pass = 0; pass < 2; pass++) {
        const strlist *x = pass ? b : a, *y = pass ? a : b;
        int shown = 0, more = 0;
        for (int i = 0; i < x->n; i++) {
            if (bsearch(&x->v[i], y->v, (size_t)y->n, sizeof *y->v, cmp_str)) continue;
            if (shown == 8) {
                more++;
                continue;
            }
            if (k < cap)
                k += (size_t)snprintf(buf + k, cap - k, "%s%s%s", shown ? ", " : (k ? "; only in " : "only in "),
                                      shown ? "" : (pass ? bn : an), "");
            if (!shown && k < cap) k += (size_t)snprintf(buf + k, cap - k, ": ");
            if (k < cap) k += (size_t)snprintf(buf + k, cap - k, "%s", x->v[i]);
            shown++;
        }
        if (more && k < cap) k += (size_t)snprintf(buf + k, cap - k, " and %d more", more);
    }
}

/* ---------------------------------------------------------------- hashing */

typedef struct {
    uint64_t a, b;
} h128;

static void h_init(h128 *h) {
    h->a = 0xcbf29ce484222325ull;
    h->b = 0x84222325cbf29ce4ull;
}

static void h_bytes(h128 *h, const void *p, size_t n) {
    const uint8_t *s = p;
    for (size_t i = 0; i < n; i++) {
        h->a = (h->a ^ s[i]) * 0x100000001b3ull;
        h->b = (h->b ^ s[i]) * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    }
}

static void h_u64(h128 *h, uint64_t v) { h_bytes(h, &v, sizeof v); }

static void h_str(h128 *h, const char *s) {
    size_t n = strlen(s);
    h_u64(h, n);
    h_bytes(h, s, n);
}

static h128 h_final(h128 h) {
    h128 r = {pc_mix64(h.a ^ pc_mix64(h.b)), pc_mix64(h.b + 0x1234567ull) ^ h.a};
    return r;
}

/* ---------------------------------------------------------------- decoding */

typedef struct {
    const char *root;
    const fentry *files;
    int64_t lo, hi;   /* this process's slice of the files */
    int size, c, skip;
    int crop_short;   /* > 0: resize the shorter side to this, then centre-crop size */
    int64_t max_pixels;
    uint8_t *pixels;  /* every image's slot; NULL: check only (--cache none) */
    uint64_t *sums;   /* check only: per image, c pixel sums then c sums of squares */
    int32_t *status;  /* pc_status per image */
    uint8_t *gray;
    int32_t *warn;
    char **msg;
    atomic_llong next;
    atomic_llong stop; /* fail mode: the smallest failing index so far */
} djob;

static void pixel_sums(const uint8_t *p, int c, size_t hw, uint64_t *sums) {
    for (int ch = 0; ch < c; ch++) {
        uint64_t a = 0, b = 0;
        for (size_t k = 0; k < hw; k++) {
            a += p[ch * hw + k];
            b += (uint64_t)p[ch * hw + k] * p[ch * hw + k];
        }
        sums[ch] = a;
        sums[c + ch] = b;
    }
}

/* Decode file i of the job into dst (NULL: out of memory). */
static pc_status decode_file(const djob *j, int64_t i, uint8_t *dst, int *gray, int *warnings) {
    char *path = pc_path_join(j->root, j->files[i].rel);
    pc_status s = !path || !dst ? pc_fail(PC_ERR_NOMEM, "out of memory")
                  : j->crop_short ? pc_image_load_chw_cropped(path, j->c, j->size, j->crop_short,
                                                              j->max_pixels, dst, gray, warnings)
                                  : pc_image_load_chw(path, j->c, j->size, j->size, j->max_pixels,
                                                      dst, gray, warnings);
    free(path);
    return s;
}

static void *decode_worker(void *arg) {
    djob *j = arg;
    const size_t hw = (size_t)j->size * j->size, sample = (size_t)j->c * hw;
    uint8_t *scratch = j->pixels ? NULL : malloc(sample);
    for (;;) {
        long long i = atomic_fetch_add(&j->next, 1);
        if (i >= j->hi) break;
        if (i > atomic_load(&j->stop)) break; /* indices are claimed in increasing order */
        uint8_t *dst = j->pixels ? j->pixels + (size_t)i * sample : scratch;
        int g = 0, wn = 0;
        pc_status s = decode_file(j, i, dst, &g, &wn);
        j->status[i] = s;
        if (s == PC_OK) {
            j->gray[i] = (uint8_t)g;
            j->warn[i] = wn;
            if (j->sums) pixel_sums(dst, j->c, hw, j->sums + (size_t)i * 2 * j->c);
            continue;
        }
        j->msg[i] = strdup(pc_last_error());
        if (!j->skip || s != PC_ERR_DATA) {
            long long cur = atomic_load(&j->stop);
            while (i < cur && !atomic_compare_exchange_weak(&j->stop, &cur, i)) {
            }
        }
    }
    free(scratch);
    return NULL;
}

/* Files [lo, hi) of n for rank r of R. */
static void rank_slice(int64_t n, int r, int R, int64_t *lo, int64_t *hi) {
    *lo = n * r / R;
    *hi = n * (r + 1) / R;
}

/* Complete a per-file table (elem bytes per file) of which each rank filled its slice. */
static pc_status share_slices(pc_comm *comm, void *table, size_t elem, int64_t n) {
    int R = comm ? pc_comm_size(comm) : 1;
    if (R == 1) return PC_OK;
    int64_t *counts = malloc(sizeof(int64_t) * 2 * R);
    if (!counts) return pc_fail(PC_ERR_NOMEM, "out of memory");
    for (int r = 0; r < R; r++) {
        int64_t lo, hi;
        rank_slice(n, r, R, &lo, &hi);
        counts[r] = (hi - lo) * (int64_t)elem;
        counts[R + r] = lo * (int64_t)elem;
    }
    pc_status s = pc_comm_allgatherv_bytes(comm, table, counts, counts + R);
    free(counts);
    return s;
}

/* 1 when `flag` is set on every rank. */
static pc_status all_ranks(pc_comm *comm, int flag, int *out) {
    *out = flag;
    int R = comm ? pc_comm_size(comm) : 1;
    if (R == 1) return PC_OK;
    int *all = malloc(sizeof(int) * R);
    if (!all) return pc_fail(PC_ERR_NOMEM, "out of memory");
    pc_status s = pc_comm_allgather_bytes(comm, &flag, sizeof flag, all);
    for (int r = 0; r < R && s == PC_OK; r++) *out &= all[r];
    free(all);
    return s;
}

/* The error message of a bad file that another rank decoded: decoding it again here
 * gives the same message. */
static char *bad_file_message(const djob *j, int64_t i) {
    if (j->msg[i]) return j->msg[i];
    uint8_t *tmp = malloc((size_t)j->c * j->size * j->size);
    int g, wn;
    pc_status s = decode_file(j, i, tmp, &g, &wn);
    j->msg[i] = strdup(s != PC_OK ? pc_last_error() : "could not be decoded on another rank");
    free(tmp);
    return j->msg[i];
}

/* Decode this process's slice of the files on `threads` threads, then exchange the results
 * with the other ranks. */
static pc_status decode_files(djob *j, int threads, pc_comm *comm, int64_t n, int *threads_used) {
    int R = comm ? pc_comm_size(comm) : 1;
    rank_slice(n, comm ? pc_comm_rank(comm) : 0, R, &j->lo, &j->hi);
    atomic_init(&j->next, j->lo);
    atomic_init(&j->stop, LLONG_MAX);
    threads = (int)PC_MAX(1, PC_MIN((int64_t)threads, j->hi - j->lo));
    threads = PC_MIN(threads, 256);
    pthread_t tids[256];
    int started = 0;
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&tids[started], NULL, decode_worker, j) != 0) break;
        started++;
    }
    decode_worker(j);
    for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
    *threads_used = started + 1;
    const size_t sample = (size_t)j->c * j->size * j->size;
    PC_TRY(share_slices(comm, j->status, sizeof *j->status, n));
    PC_TRY(share_slices(comm, j->gray, 1, n));
    PC_TRY(share_slices(comm, j->warn, sizeof *j->warn, n));
    if (j->sums) PC_TRY(share_slices(comm, j->sums, 2 * j->c * sizeof *j->sums, n));
    if (j->pixels) PC_TRY(share_slices(comm, j->pixels, sample, n));
    return PC_OK;
}

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    return (int)PC_MIN(n, 16);
}

/* ---------------------------------------------------------------- cache file */

typedef struct {
    char magic[8];
    uint32_t version, endian;
    uint64_t key_a, key_b;
    uint32_t h, w, c, classes;
    uint64_t listed, kept;
    uint32_t crc, reserved; /* CRC-32 (zlib's) of the whole file with crc read as 0 */
} cache_header;

/* fread that also folds what it read into a CRC-32. */
static int cread(void *p, size_t n, FILE *f, uLong *crc) {
    if (n == 0) return 1;
    if (fread(p, 1, n, f) != n) return 0;
    *crc = crc32_z(*crc, p, n);
    return 1;
}

/* The header of a cache file, checked against `want` (key, sizes, version). */
static int cache_header_matches(const cache_header *h, const cache_header *want, int want_c) {
    return memcmp(h->magic, CACHE_MAGIC, 8) == 0 && h->version == CACHE_VERSION &&
           h->endian == CACHE_ENDIAN && h->key_a == want->key_a && h->key_b == want->key_b &&
           h->h == want->h && h->w == want->w && h->classes == want->classes &&
           h->listed == want->listed && (h->c == 1 || h->c == 3) && (!want_c || (int)h->c == want_c);
}

/* Fills the dataset pixels, kept flags and bad messages from a matching cache file.
 * Returns 1 on a hit; 0 when it does not match (another key or version, or fail mode with
 * bad files in it: decoded again to report them); -1 when it matches but is corrupt
 * (checksum, structure); on 0 and -1 the caller decodes and rewrites it. */
static int cache_parse(FILE *f, const cache_header *want, int want_c, int allow_bad,
                       uint8_t **pixels_out, uint8_t **kept_out, char ***bad_msgs, int *c_out) {
    cache_header h;
    uint8_t *kept = NULL, *pix = NULL;
    char **msgs = NULL;
    int64_t nbad = 0, nmsg = 0;
    int result = 0;
    uLong crc = 0;
    if (fread(&h, sizeof h, 1, f) != 1 || !cache_header_matches(&h, want, want_c)) goto done;
    result = -1; /* the key matches: from here anything wrong is corruption */
    long here = ftell(f), end = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (here < 0 || end < here || fseek(f, here, SEEK_SET) != 0) goto done;
    uint64_t left = (uint64_t)(end - here), bytes = 0; /* nothing larger than the file is allocated */
    if (h.kept > h.listed || h.listed > left || h.h > MAX_IMAGE_SIDE || h.w > MAX_IMAGE_SIDE ||
        __builtin_mul_overflow(h.kept, (uint64_t)h.c * h.h * h.w, &bytes) || bytes > left)
        goto done;
    nbad = (int64_t)(h.listed - h.kept);
    if (nbad > 0 && !allow_bad) {
        result = 0;
        goto done;
    }
    cache_header zeroed = h;
    zeroed.crc = 0;
    crc = crc32_z(0, (const Bytef *)&zeroed, sizeof zeroed);
    kept = malloc(h.listed ? (size_t)h.listed : 1);
    msgs = calloc((size_t)nbad + 1, sizeof *msgs);
    if (!kept || !msgs || !cread(kept, (size_t)h.listed, f, &crc)) goto done;
    uint64_t nk = 0;
    for (uint64_t i = 0; i < h.listed; i++) {
        if (kept[i] > 1) goto done;
        nk += kept[i];
    }
    if (nk != h.kept) goto done;
    for (nmsg = 0; nmsg < nbad; nmsg++) {
        uint32_t len;
        if (!cread(&len, sizeof len, f, &crc) || len > MAX_BAD_MSG) goto done;
        if (!(msgs[nmsg] = malloc(len + 1))) goto done;
        if (!cread(msgs[nmsg], len, f, &crc)) {
            nmsg++;
            goto done;
        }
        msgs[nmsg][len] = 0;
    }
    pix = pc_alloc(bytes ? (size_t)bytes : 1);
    if (!pix || !cread(pix, (size_t)bytes, f, &crc)) goto done;
    if (fgetc(f) != EOF) goto done; /* trailing garbage */
    if ((crc & 0xffffffffUL) == h.crc) result = 1;
done:
    if (result != 1) {
        free(kept);
        pc_free(pix);
        if (msgs)
            for (int64_t i = 0; i < nmsg; i++) free(msgs[i]);
        free(msgs);
        return result;
    }
    *pixels_out = pix;
    *kept_out = kept;
    *bad_msgs = msgs;
    *c_out = (int)h.c;
    return 1;
}

static int cache_read(const char *path, const cache_header *want, int want_c, int allow_bad,
                      uint8_t **pixels_out, uint8_t **kept_out, char ***bad_msgs, int *c_out) {
    FILE *f = pc_fopen_regular(path);
    if (!f) return 0;
    int r = cache_parse(f, want, want_c, allow_bad, pixels_out, kept_out, bad_msgs, c_out);
    fclose(f);
    return r;
}

int pc_folder_cache_probe(FILE *f, int allow_bad) {
    cache_header want;
    if (fread(&want, sizeof want, 1, f) != 1 || fseek(f, 0, SEEK_SET) != 0) return 0;
    uint8_t *pixels = NULL, *kept = NULL;
    char **msgs = NULL;
    int c = 0, r = cache_parse(f, &want, 0, allow_bad, &pixels, &kept, &msgs, &c);
    if (r == 1) {
        for (uint64_t i = 0; i < want.listed - want.kept; i++) free(msgs[i]);
        free(msgs);
        free(kept);
        pc_free(pixels);
    }
    return r;
}

/* fwrite that also folds what it wrote into a CRC-32. */
static int cwrite(const void *p, size_t n, FILE *f, uLong *crc) {
    if (n == 0) return 1;
    *crc = crc32_z(*crc, p, n);
    return fwrite(p, 1, n, f) == n;
}

static pc_status cache_write(const char *path, const cache_header *h_in, const uint8_t *kept,
                             char *const *msgs, int64_t nbad, const uint8_t *pixels) {
    static atomic_uint counter;
    size_t plen = strlen(path) + 64;
    char *tmp = malloc(plen);
    if (!tmp) return pc_fail(PC_ERR_NOMEM, "out of memory");
    snprintf(tmp, plen, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&counter, 1));
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        pc_status s = pc_fail(PC_ERR_IO, "--cache: cannot write %s: %s", tmp, strerror(errno));
        free(tmp);
        return s;
    }
    cache_header h = *h_in;
    h.crc = h.reserved = 0;
    uLong crc = 0;
    int ok = cwrite(&h, sizeof h, f, &crc) && cwrite(kept, (size_t)h.listed, f, &crc);
    for (int64_t i = 0; ok && i < nbad; i++) {
        const char *m = msgs[i] ? msgs[i] : "";
        uint32_t len = (uint32_t)PC_MIN(strlen(m), (size_t)MAX_BAD_MSG);
        ok = cwrite(&len, sizeof len, f, &crc) && cwrite(m, len, f, &crc);
    }
    size_t bytes = (size_t)h.kept * h.c * h.h * h.w;
    if (ok) ok = cwrite(pixels, bytes, f, &crc);
    h.crc = (uint32_t)(crc & 0xffffffffUL); /* then the header again, with its checksum */
    if (ok) ok = fseek(f, 0, SEEK_SET) == 0 && fwrite(&h, sizeof h, 1, f) == 1;
    int e = errno;
    if (ok && (fflush(f) != 0 || fsync(fileno(f)) != 0)) {
        ok = 0;
        e = errno;
    }
    if (fclose(f) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        e = errno;
    }
    pc_status s = PC_OK;
    if (!ok) {
        unlink(tmp);
        s = pc_fail(PC_ERR_IO, "--cache: cannot write %s: %s", path, strerror(e));
    }
    free(tmp);
    return s;
}

/* ---------------------------------------------------------------- file lists */

static pc_status write_list(const char *dir, const char *name, const flist *files,
                            const uint8_t *in_val, int want_val) {
    char *path = pc_path_join(dir, name);
    if (!path) return pc_fail(PC_ERR_NOMEM, "out of memory");
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) {
        free(path);
        return pc_fail(PC_ERR_NOMEM, "out of memory");
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    pc_status s = PC_OK;
    if (!f) {
        s = pc_fail(PC_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    } else {
        int ok = 1;
        for (int64_t i = 0; i < files->n && ok; i++)
            if (in_val[i] == want_val) ok = fprintf(f, "%s\n", files->v[i].rel) >= 0;
        if (fclose(f) != 0) ok = 0;
        if (!ok || rename(tmp, path) != 0) {
            s = pc_fail(PC_ERR_IO, "cannot write %s: %s", path, strerror(errno));
            unlink(tmp);
        }
    }
    free(tmp);
    free(path);
    return s;
}

/* ---------------------------------------------------------------- report */

void pc_folder_options_default(pc_folder_options *o) {
    memset(o, 0, sizeof *o);
    o->image_size = 32;
    o->cache = "memory";
}

void pc_folder_report_free(pc_folder_report *r) {
    if (!r) return;
    free(r->dir);
    free(r->class_counts);
    for (int i = 0; i < r->n_bad; i++) free(r->bad[i]);
    free(r->cache_file);
    memset(r, 0, sizeof *r);
}

void pc_folder_report_print(const pc_folder_report *r, const pc_dataset *d, FILE *f) {
    fprintf(f, "%s images from %s: %lld in %d classes, %dx%dx%d\n", r->part ? r->part : "?",
            r->dir ? r->dir : "?", (long long)r->kept, r->classes, r->image_size, r->image_size,
            r->channels);
    int width = 5;
    for (int i = 0; d && i < r->classes && i < d->classes; i++)
        if ((int)strlen(d->class_names[i]) > width) width = (int)PC_MIN(strlen(d->class_names[i]), 40);
    for (int i = 0; i < r->classes; i++)
        fprintf(f, "  %-*s %8lld\n", width, d && i < d->classes ? d->class_names[i] : "?",
                (long long)(r->class_counts ? r->class_counts[i] : 0));
    if (r->skipped) {
        fprintf(f, "  skipped %lld bad image%s:\n", (long long)r->skipped, r->skipped == 1 ? "" : "s");
        for (int i = 0; i < r->n_bad; i++) fprintf(f, "    %s\n", r->bad[i]);
        if (r->skipped > r->n_bad) fprintf(f, "    ... and %lld more\n", (long long)(r->skipped - r->n_bad));
    }
    if (r->ignored) fprintf(f, "  ignored %lld other entries (hidden, not .jpg/.jpeg/.png, or folders)\n", (long long)r->ignored);
    if (r->warnings) fprintf(f, "  %lld non-fatal decoder warnings\n", (long long)r->warnings);
    if (r->cache_corrupt)
        fprintf(f, "  warning: the cache file %s was corrupt (checksum or structure): decoded "
                "again and rewritten\n", r->cache_file ? r->cache_file : "?");
    if (r->from_cache)
        fprintf(f, "  loaded from cache %s in %.2f s\n", r->cache_file ? r->cache_file : "?", r->load_seconds);
    else {
        char ranks[96] = "";
        if (r->ranks > 1)
            snprintf(ranks, sizeof ranks, "; %lld of them here, the rest on %d other rank%s",
                     (long long)r->decoded_here, r->ranks - 1, r->ranks == 2 ? "" : "s");
        fprintf(f, "  %s in %.2f s (%.0f images/s, %d thread%s%s)%s%s\n",
                r->on_demand ? "checked (decoded again whenever used: --cache none)" : "decoded",
                r->decode_seconds, r->images_per_second, r->threads, r->threads == 1 ? "" : "s",
                ranks, r->cache_file ? ", cached to " : "", r->cache_file ? r->cache_file : "");
    }
}

/* ---------------------------------------------------------------- decoding on demand */

pc_status pc_image_files_decode(const pc_image_files *f, int64_t i, uint8_t *out) {
    const size_t hw = (size_t)f->size * f->size;
    uint8_t *full = f->decode_c == f->c ? out : malloc((size_t)f->decode_c * hw);
    char *path = pc_path_join(f->root, f->rel[i]);
    int g, wn;
    pc_status s = !full || !path ? pc_fail(PC_ERR_NOMEM, "out of memory")
                  : f->crop_short ? pc_image_load_chw_cropped(path, f->decode_c, f->size,
                                                              f->crop_short, f->max_pixels, full,
                                                              &g, &wn)
                                  : pc_image_load_chw(path, f->decode_c, f->size, f->size,
                                                      f->max_pixels, full, &g, &wn);
    if (s != PC_OK) s = pc_fail(s, "%s (the file changed after it was checked)", pc_last_error());
    else if (full != out) memcpy(out, full, (size_t)f->c * hw); /* gray: planes are equal */
    if (full != out) free(full);
    free(path);
    return s;
}

void pc_image_files_free(pc_image_files *f) {
    if (!f) return;
    for (int64_t i = 0; i < f->n; i++) free(f->rel[i]);
    free(f->rel);
    free(f->root);
    free(f);
}

/* ---------------------------------------------------------------- the loader */

static const char *const LAYOUT_HINT =
    "expected DIR/CLASS/*.jpg|jpeg|png, or DIR/train/CLASS and DIR/test/CLASS";

pc_status pc_dataset_load_folder(const char *dir, int train, const pc_folder_options *opt_in,
                                 pc_dataset *out, pc_folder_report *report_in) {
    double t_start = pc_now();
    memset(out, 0, sizeof *out);
    pc_folder_options opt;
    if (opt_in) opt = *opt_in;
    else pc_folder_options_default(&opt);
    pc_folder_report local_rep;
    pc_folder_report *rep = report_in ? report_in : opt.report ? opt.report : &local_rep;
    memset(rep, 0, sizeof *rep);

    if (opt.image_size <= 0) opt.image_size = 32;
    if (opt.image_size > MAX_IMAGE_SIDE)
        return pc_fail(PC_ERR_USAGE, "--image-size %d: at most %d", opt.image_size, MAX_IMAGE_SIDE);
    if (opt.channels != 0 && opt.channels != 1 && opt.channels != 3)
        return pc_fail(PC_ERR_USAGE, "folder: channels must be 1, 3 or 0 (from the data), not %d", opt.channels);
    if (!(opt.val_split >= 0.0f && opt.val_split <= 0.9f))
        return pc_fail(PC_ERR_USAGE, "--val-split %g: expected a fraction in [0, 0.9]", (double)opt.val_split);
    const char *cache_dir = NULL;
    const int on_demand = opt.cache && strcmp(opt.cache, "none") == 0;
    if (opt.cache && opt.cache[0] && strcmp(opt.cache, "memory") != 0 && !on_demand)
        cache_dir = opt.cache;
    if (opt.max_pixels <= 0) opt.max_pixels = PC_IMAGE_DEFAULT_MAX_PIXELS;
    if (!dir || !dir[0]) return pc_fail(PC_ERR_USAGE, "folder: missing directory (folder:DIR)");
    if (!is_dir(dir)) return pc_fail(PC_ERR_DATA, "folder:%s: not a directory", dir);

    pc_status s = PC_OK;
    strlist classes = {0}, other = {0};
    flist files = {0};
    int64_t *class_listed = NULL;
    uint8_t *in_val = NULL;
    fentry *part = NULL; /* borrowed entries of `files` */
    int64_t np = 0;
    uint8_t *pixels = NULL, *gray = NULL, *kept_flags = NULL;
    int32_t *status = NULL, *warn = NULL, *labels = NULL;
    uint64_t *sums = NULL;
    pc_image_files *files_od = NULL; /* --cache none: the kept files */
    char **msgs = NULL, **cache_msgs = NULL;
    char *cache_path = NULL;
    int64_t n_cache_msgs = 0;

    /* -- layout */
    const char *eval_name = NULL;
    char *tpath = pc_path_join(dir, "train"), *epath = pc_path_join(dir, "test"), *vpath = pc_path_join(dir, "val");
    if (!tpath || !epath || !vpath) {
        free(tpath), free(epath), free(vpath);
        return pc_fail(PC_ERR_NOMEM, "out of memory");
    }
    int has_train = is_dir(tpath);
    if (is_dir(epath)) eval_name = "test";
    else if (is_dir(vpath)) eval_name = "val";
    free(tpath), free(epath), free(vpath);
    int layout = 0;
    int64_t root_ignored = 0, stray = 0;
    if (has_train && eval_name) {
        layout = 1;
    } else if (has_train) {
        strlist top;
        s = list_classes(dir, "", &top, NULL, NULL);
        if (s != PC_OK) return s;
        if (top.n == 1) layout = 2; /* only train/ */
        strlist_free(&top);
    }
    const char *sub = layout == 0 ? "" : "train";
    if (layout == 1) {
        if (opt.val_split > 0) {
            return pc_fail(PC_ERR_USAGE,
                           "folder:%s has a %s/ folder for evaluation: --val-split is only for a "
                           "folder without one",
                           dir, eval_name);
        }
        if (!train) sub = eval_name;
        rep->part = train ? "train" : eval_name;
    } else {
        if (!train && opt.val_split <= 0)
            return pc_fail(PC_ERR_USAGE,
                           "folder:%s has no test/ or val/ folder: give --val-split F (e.g. 0.1) "
                           "to hold out part of it for evaluation",
                           dir);
        rep->part = train ? "train" : "val";
    }
    rep->layout = layout;
    rep->dir = sub[0] ? pc_path_join(dir, sub) : strdup(dir);
    if (!rep->dir) return pc_fail(PC_ERR_NOMEM, "out of memory");

    /* -- classes */
    s = list_classes(dir, sub, &classes, &root_ignored, &stray);
    if (s != PC_OK) goto fail;
    if (layout == 1) {
        const char *osub = train ? eval_name : "train";
        s = list_classes(dir, osub, &other, NULL, NULL);
        if (s != PC_OK) goto fail;
        int same = other.n == classes.n;
        for (int i = 0; same && i < classes.n; i++) same = strcmp(classes.v[i], other.v[i]) == 0;
        if (!same) {
            char diff[1024];
            const char *tn = train ? "train/" : (eval_name[0] == 't' ? "test/" : "val/");
            const char *on = train ? (eval_name[0] == 't' ? "test/" : "val/") : "train/";
            class_diff(&classes, tn, &other, on, diff, sizeof diff);
            s = pc_fail(PC_ERR_DATA, "folder:%s: train/ and %s/ hold different class folders: %s",
                        dir, eval_name, diff);
            goto fail;
        }
    }
    if (classes.n == 0) {
        if (stray)
            s = pc_fail(PC_ERR_DATA,
                        "folder:%s: %lld images but no class folders: put each class's images in "
                        "%s/CLASS/",
                        rep->dir, (long long)stray, rep->dir);
        else s = pc_fail(PC_ERR_DATA, "folder:%s: no images found (%s)", dir, LAYOUT_HINT);
        goto fail;
    }
    if (classes.n > 1000000) {
        s = pc_fail(PC_ERR_DATA, "folder:%s: %d class folders is too many", dir, classes.n);
        goto fail;
    }

    /* -- images */
    class_listed = calloc((size_t)(unsigned)classes.n, sizeof *class_listed);
    if (!class_listed) {
        s = pc_fail(PC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int c = 0; c < classes.n; c++) {
        char *rel = pc_path_join(sub, classes.v[c]);
        if (!rel) {
            s = pc_fail(PC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        s = list_images(dir, rel, c, &files, &class_listed[c], &rep->ignored);
        free(rel);
        if (s != PC_OK) goto fail;
    }
    rep->ignored += root_ignored;
    if (files.n == 0) {
        s = pc_fail(PC_ERR_DATA, "folder:%s: no images found in %d class folder%s (%s)", rep->dir,
                    classes.n, classes.n == 1 ? "" : "s", LAYOUT_HINT);
        goto fail;
    }
    for (int c = 0; c < classes.n; c++)
        if (class_listed[c] == 0) {
            s = pc_fail(PC_ERR_DATA, "folder:%s: class folder %s/%s holds no images (.jpg, .jpeg, .png)",
                        dir, rep->dir, classes.v[c]);
            goto fail;
        }

    /* -- stratified split */
    in_val = calloc((size_t)files.n, 1);
    part = malloc((size_t)files.n * sizeof *part);
    if (!in_val || !part) {
        s = pc_fail(PC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (layout != 1 && opt.val_split > 0) {
        int64_t first = 0;
        int64_t *perm = malloc((size_t)files.n * sizeof *perm);
        if (!perm) {
            s = pc_fail(PC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int c = 0; c < classes.n; c++) {
            int64_t n = class_listed[c];
            int64_t nval = (int64_t)llround((double)n * (double)opt.val_split);
            if (n >= 2) nval = PC_MAX(1, PC_MIN(nval, n - 1));
            else nval = 0;
            for (int64_t i = 0; i < n; i++) perm[i] = i;
            pc_stream st = {pc_rand64(opt.seed, PC_RNG_SPLIT, (uint64_t)c, 0, 0), 0};
            for (int64_t i = n - 1; i > 0; i--) {
                int64_t j = (int64_t)pc_stream_below(&st, (uint64_t)i + 1);
                int64_t t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
            }
            for (int64_t i = 0; i < nval; i++) in_val[first + perm[i]] = 1;
            first += n;
        }
        free(perm);
        if (opt.list_dir) {
            s = pc_mkdirs(opt.list_dir, "file lists:");
            if (s == PC_OK) s = write_list(opt.list_dir, "train.txt", &files, in_val, 0);
            if (s == PC_OK) s = write_list(opt.list_dir, "val.txt", &files, in_val, 1);
            if (s != PC_OK) goto fail;
        }
    }
    const int want_val = layout != 1 && !train;
    for (int64_t i = 0; i < files.n; i++)
        if (in_val[i] == want_val) part[np++] = files.v[i];
    s = interleave_classes(part, np, classes.n);
    if (s != PC_OK) goto fail;
    rep->listed = np;
    rep->classes = classes.n;
    rep->image_size = opt.image_size;
    rep->class_counts = calloc((size_t)classes.n, sizeof *rep->class_counts);
    if (!rep->class_counts) {
        s = pc_fail(PC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    const int S = opt.image_size;
    const int dec_c = opt.channels ? opt.channels : 3;
    const size_t hw = (size_t)S * S;
    if ((uint64_t)np > SIZE_MAX / (3 * hw)) {
        s = pc_fail(PC_ERR_NOMEM, "folder:%s: %lld images of %dx%d do not fit in memory", dir,
                    (long long)np, S, S);
        goto fail;
    }

    /* -- cache lookup */
    cache_header ch;
    memset(&ch, 0, sizeof ch);
    int res_c = dec_c;
    int from_cache = 0;
    if (cache_dir) {
        char *real = realpath(dir, NULL);
        const char *canon = real ? real : dir;
        h128 name_h, key_h;
        h_init(&name_h);
        h_str(&name_h, canon);
        h_str(&name_h, rep->part);
        h_u64(&name_h, (uint64_t)S);
        h_u64(&name_h, (uint64_t)opt.channels);
        h_u64(&name_h, (uint64_t)opt.max_pixels);
        if (opt.crop_short) h_u64(&name_h, 0x63726f70ull ^ (uint64_t)opt.crop_short);
        if (layout != 1 && opt.val_split > 0) {
            float vs = opt.val_split;
            uint32_t vb;
            memcpy(&vb, &vs, 4);
            h_u64(&name_h, vb);
            h_u64(&name_h, opt.seed);
        }
        key_h = name_h;
        h_u64(&key_h, pc_image_codec_id());
        h_u64(&key_h, (uint64_t)classes.n);
        for (int c = 0; c < classes.n; c++) h_str(&key_h, classes.v[c]);
        h_u64(&key_h, (uint64_t)np);
        for (int64_t i = 0; i < np; i++) {
            h_str(&key_h, part[i].rel);
            h_u64(&key_h, (uint64_t)part[i].label);
            h_u64(&key_h, (uint64_t)part[i].size);
            h_u64(&key_h, (uint64_t)part[i].mtime_ns);
        }
        h128 nh = h_final(name_h), kh = h_final(key_h);
        /* a readable, file-system-safe prefix from the folder's name */
        const char *bn = strrchr(canon, '/');
        bn = bn && bn[1] ? bn + 1 : canon;
        char pref[41];
        int k = 0;
        for (; bn[k] && k < 40; k++) {
            char ch0 = bn[k];
            pref[k] = (ch0 >= 'a' && ch0 <= 'z') || (ch0 >= 'A' && ch0 <= 'Z') || (ch0 >= '0' && ch0 <= '9') ||
                              ch0 == '-' || ch0 == '_'
                          ? ch0
                          : '_';
        }
        pref[k] = 0;
        free(real);
        char fname[128];
        snprintf(fname, sizeof fname, "%s-%s-%dpx-%016llx.cache", k ? pref : "folder", rep->part, S,
                 (unsigned long long)nh.a);
        s = pc_mkdirs(cache_dir, "--cache");
        if (s != PC_OK) goto fail;
        /* a process killed while writing a cache left its temporary (the folder may be
         * shared between machines: only those of dead local PIDs an hour old) */
        pc_remove_stale_temporaries(cache_dir, 3600);
        cache_path = pc_path_join(cache_dir, fname);
        if (!cache_path) {
            s = pc_fail(PC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        memcpy(ch.magic, CACHE_MAGIC, 8);
        ch.version = CACHE_VERSION;
        ch.endian = CACHE_ENDIAN;
        ch.key_a = kh.a;
        ch.key_b = kh.b;
        ch.h = ch.w = (uint32_t)S;
        ch.classes = (uint32_t)classes.n;
        ch.listed = (uint64_t)np;
        from_cache = cache_read(cache_path, &ch, opt.channels, opt.on_bad_skip, &pixels, &kept_flags,
                                &cache_msgs, &res_c);
        rep->cache_corrupt = from_cache < 0;
        if (from_cache < 0) from_cache = 0;
        rep->cache_file = strdup(cache_path);
    }

    int hit_here = from_cache;
    s = all_ranks(opt.comm, hit_here, &from_cache);
    if (s != PC_OK) goto fail;
    if (hit_here && !from_cache) { /* another rank missed: all decode, sharing the work */
        for (int64_t i = 0; i < np; i++) n_cache_msgs += !kept_flags[i];
        pc_free(pixels);
        free(kept_flags);
        pixels = NULL;
        kept_flags = NULL;
    }
    int64_t kept = 0;
    if (from_cache) {
        labels = pc_alloc((size_t)PC_MAX(np, 1) * sizeof *labels);
        if (!labels) {
            s = pc_fail(PC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int64_t i = 0; i < np; i++)
            if (kept_flags[i]) labels[kept++] = part[i].label;
        n_cache_msgs = np - kept;
        for (int64_t i = 0; i < n_cache_msgs; i++) {
            if (rep->n_bad < PC_FOLDER_MAX_BAD_LISTED) rep->bad[rep->n_bad++] = cache_msgs[i];
            else free(cache_msgs[i]);
            cache_msgs[i] = NULL;
        }
        rep->skipped = n_cache_msgs;
        rep->from_cache = 1;
    } else {
        /* -- decode in parallel: threads here, slices across ranks */
        pixels = on_demand ? NULL : pc_alloc(PC_MAX((size_t)np * dec_c * hw, 1));
        sums = on_demand ? calloc((size_t)np * 2 * dec_c, sizeof *sums) : NULL;
        status = calloc((size_t)np, sizeof *status);
        gray = calloc((size_t)np, 1);
        warn = calloc((size_t)np, sizeof *warn);
        msgs = calloc((size_t)np, sizeof *msgs);
        labels = pc_alloc((size_t)PC_MAX(np, 1) * sizeof *labels);
        kept_flags = calloc((size_t)np, 1);
        if ((!pixels && !on_demand) || (!sums && on_demand) || !status || !gray || !warn || !msgs ||
            !labels || !kept_flags) {
            s = pc_fail(PC_ERR_NOMEM, "folder:%s: out of memory for %lld images of %dx%dx%d", dir,
                        (long long)np, S, S, dec_c);
            goto fail;
        }
        djob job = {.root = dir, .files = part, .size = S, .c = dec_c, .skip = opt.on_bad_skip,
                    .crop_short = opt.crop_short, .max_pixels = opt.max_pixels, .pixels = pixels, .sums = sums,
                    .status = status, .gray = gray, .warn = warn, .msg = msgs};
        double t0 = pc_now();
        s = decode_files(&job, opt.decode_threads > 0 ? opt.decode_threads : default_threads(),
                         opt.comm, np, &rep->threads);
        if (s != PC_OK) goto fail;
        rep->decode_seconds = pc_now() - t0;
        rep->images_per_second = rep->decode_seconds > 0 ? (double)np / rep->decode_seconds : 0;
        rep->decoded_here = job.hi - job.lo;

        /* first failure in sorted order decides (deterministic for any thread or rank count) */
        for (int64_t i = 0; i < np; i++) {
            if (status[i] == PC_OK) continue;
            if (!opt.on_bad_skip || status[i] != PC_ERR_DATA) {
                if (status[i] == PC_ERR_DATA)
                    s = pc_fail(PC_ERR_DATA, "%s (--on-bad-image skip drops bad images)",
                                bad_file_message(&job, i));
                else s = pc_fail((pc_status)status[i], "%s", bad_file_message(&job, i));
                goto fail;
            }
        }
        const size_t sample = (size_t)dec_c * hw;
        int all_gray = 1;
        for (int64_t i = 0; i < np; i++) {
            if (status[i] != PC_OK) {
                if (rep->n_bad < PC_FOLDER_MAX_BAD_LISTED)
                    rep->bad[rep->n_bad++] = strdup(bad_file_message(&job, i));
                rep->skipped++;
                continue;
            }
            if (kept != i && pixels) memmove(pixels + (size_t)kept * sample, pixels + (size_t)i * sample, sample);
            if (kept != i && sums) memmove(sums + kept * 2 * dec_c, sums + i * 2 * dec_c, sizeof *sums * 2 * dec_c);
            labels[kept++] = part[i].label;
            kept_flags[i] = 1;
            all_gray &= gray[i];
            rep->warnings += warn[i];
        }
        res_c = dec_c;
        if (opt.channels == 0 && all_gray && kept > 0) {
            /* every kept image is gray: its three decoded planes are equal; keep one */
            res_c = 1;
            if (pixels) {
                uint8_t *g1 = pc_alloc((size_t)kept * hw);
                if (!g1) {
                    s = pc_fail(PC_ERR_NOMEM, "out of memory");
                    goto fail;
                }
                for (int64_t i = 0; i < kept; i++) memcpy(g1 + (size_t)i * hw, pixels + (size_t)i * sample, hw);
                pc_free(pixels);
                pixels = g1;
            }
            for (int64_t i = 0; sums && i < kept; i++) { /* [s0 s1 s2 q0 q1 q2] -> [s0 q0] */
                sums[2 * i] = sums[i * 2 * dec_c];
                sums[2 * i + 1] = sums[i * 2 * dec_c + dec_c];
            }
        }
        if (cache_path && !hit_here) {
            ch.c = (uint32_t)res_c;
            ch.kept = (uint64_t)kept;
            char **bad_msgs = calloc((size_t)(np - kept) + 1, sizeof *bad_msgs);
            if (!bad_msgs) {
                s = pc_fail(PC_ERR_NOMEM, "out of memory");
                goto fail;
            }
            int64_t nb = 0; /* bad messages in file order */
            for (int64_t i = 0; i < np; i++)
                if (status[i] != PC_OK) bad_msgs[nb++] = bad_file_message(&job, i);
            s = cache_write(cache_path, &ch, kept_flags, bad_msgs, nb, pixels);
            free(bad_msgs);
            if (s != PC_OK) goto fail;
        }
    }
    if (!from_cache && pixels && kept < np) { /* shrink to the kept images */
        uint8_t *p2 = pc_alloc(PC_MAX((size_t)kept * res_c * hw, 1));
        if (!p2) {
            s = pc_fail(PC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        memcpy(p2, pixels, (size_t)kept * res_c * hw);
        pc_free(pixels);
        pixels = p2;
    }
    if (on_demand) {
        files_od = calloc(1, sizeof *files_od);
        if (!files_od || !(files_od->rel = calloc((size_t)PC_MAX(kept, 1), sizeof *files_od->rel)) ||
            !(files_od->root = strdup(dir))) {
            s = pc_fail(PC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int64_t i = 0; i < np; i++) {
            if (!kept_flags[i]) continue;
            if (!(files_od->rel[files_od->n++] = strdup(part[i].rel))) {
                s = pc_fail(PC_ERR_NOMEM, "out of memory");
                goto fail;
            }
        }
        files_od->size = S;
        files_od->decode_c = dec_c;
        files_od->c = res_c;
        files_od->max_pixels = opt.max_pixels;
        files_od->crop_short = opt.crop_short;
    }
    rep->ranks = opt.comm ? pc_comm_size(opt.comm) : 1;
    rep->on_demand = on_demand;
    for (int64_t i = 0; i < kept; i++) rep->class_counts[labels[i]]++;
    memset(class_listed, 0, (size_t)classes.n * sizeof *class_listed); /* now: listed in this part */
    for (int64_t i = 0; i < np; i++) class_listed[part[i].label]++;
    for (int c = 0; c < classes.n; c++) {
        if (class_listed[c] > 0 && rep->class_counts[c] == 0) {
            s = pc_fail(PC_ERR_DATA, "folder:%s: every image of class %s (%lld) is bad", rep->dir,
                        classes.v[c], (long long)class_listed[c]);
            goto fail;
        }
    }
    if (kept == 0) {
        s = pc_fail(PC_ERR_DATA, "folder:%s: no usable images in the %s part", dir, rep->part);
        goto fail;
    }

    /* -- the dataset */
    out->class_names = calloc((size_t)classes.n, sizeof *out->class_names);
    if (!out->class_names) {
        s = pc_fail(PC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    out->classes = classes.n; /* from here pc_dataset_free frees the names */
    for (int c = 0; c < classes.n; c++) { /* names go into JSON (model files): UTF-8 only */
        out->class_names[c] = pc_utf8_escape(classes.v[c]);
        if (!out->class_names[c]) {
            s = pc_fail(PC_ERR_NOMEM, "out of memory");
            goto fail;
        }
    }
    out->classes = classes.n;
    out->n = kept;
    out->c = res_c;
    out->h = out->w = S;
    out->pixels = pixels;
    out->labels = labels;
    out->files = files_od;
    out->sums = sums;
    pixels = NULL;
    labels = NULL;
    files_od = NULL;
    sums = NULL;
    rep->kept = kept;
    rep->channels = res_c;
    rep->load_seconds = pc_now() - t_start;
    goto cleanup;

fail:
    pc_dataset_free(out);
    pc_folder_report_free(rep); /* on failure the report is left empty */
cleanup:
    if (msgs)
        for (int64_t i = 0; i < np; i++) free(msgs[i]);
    free(msgs);
    if (cache_msgs)
        for (int64_t i = 0; i < n_cache_msgs; i++) free(cache_msgs[i]);
    free(cache_msgs);
    free(status);
    free(gray);
    free(warn);
    free(kept_flags);
    free(sums);
    pc_image_files_free(files_od);
    pc_free(pixels);
    pc_free(labels);
    free(cache_path);
    free(part);
    free(in_val);
    free(class_listed);
    flist_free(&files);
    strlist_free(&classes);
    strlist_free(&other);
    if (rep == &local_rep) pc_folder_report_free(&local_rep);
    return s;
}
