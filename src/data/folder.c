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
    if (!base) return pc_fail_nomem();
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
            s = pc_fail_nomem();
            break;
        }
        if (nm[0] != '.' && is_dir(full)) {
            if (!strlist_push(classes, nm)) s = pc_fail_nomem();
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
        return pc_fail_nomem();
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
    if (!base) return pc_fail_nomem();
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
                            : pc_fail_nomem();
            break;
        }
        if (out->n == out->cap) {
            int64_t cap = out->cap ? out->cap * 2 : 256;
            fentry *v = realloc(out->v, (size_t)cap * sizeof *v);
            if (!v) {
                free(rel);
                free(full);
                s = pc_fail_nomem();
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
    pc_status s = !path || !dst ? pc_fail_nomem()
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
    if (!counts) return pc_fail_nomem();
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
    if (!all) return pc_fail_nomem();
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
    if (!tmp) return pc_fail_nomem();
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
    if (!path) return pc_fail_nomem();
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) {
        free(path);
        return pc_fail_nomem();
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
    pc_status s = !full || !path ? pc_fail_nomem()
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

/* One pc_dataset_load_folder call: its options, what each phase found, and the buffers it
 * owns until the dataset takes them (load_free frees what is left). */
typedef struct {
    const char *dir;
    int train;
    pc_folder_options opt;
    pc_folder_report *rep;
    const char *cache_dir;    /* a directory for cache files, or NULL */
    int on_demand;            /* --cache none: samples decoded whenever they are gathered */
    /* layout and listing */
    const char *eval_name;    /* DIR's evaluation folder ("test" or "val"), or NULL */
    int layout;               /* as pc_folder_report's */
    const char *sub;          /* the folder of the part's classes in DIR ("": DIR itself) */
    int64_t root_ignored, stray;
    strlist classes, other;
    flist files;              /* the images of every class folder in `sub` */
    int64_t *class_listed;    /* per class: images listed */
    uint8_t *in_val;          /* per listed image: held out by the split */
    fentry *part;             /* the part's images (borrowed from `files`), round-robin */
    int64_t np;
    int size, dec_c;          /* the side and the channels decoded */
    size_t hw;
    /* the cache file */
    cache_header ch;
    char *cache_path;
    int hit_here, from_cache; /* a matching cache file here; on every rank */
    char **cache_msgs;        /* the bad files' messages the cache file holds */
    int64_t n_cache_msgs;
    /* decoding */
    djob job;
    uint8_t *pixels, *gray, *kept_flags;
    int32_t *status, *warn, *labels;
    uint64_t *sums;
    char **msgs;
    int res_c;                /* the channels kept */
    int64_t kept;
    pc_image_files *files_od; /* --cache none: the kept files */
} folder_load;

/* The options checked and completed, before anything is read. */
static pc_status check_options(folder_load *L) {
    pc_folder_options *o = &L->opt;
    if (o->image_size <= 0) o->image_size = 32;
    if (o->image_size > MAX_IMAGE_SIDE)
        return pc_fail(PC_ERR_USAGE, "--image-size %d: at most %d", o->image_size, MAX_IMAGE_SIDE);
    if (o->channels != 0 && o->channels != 1 && o->channels != 3)
        return pc_fail(PC_ERR_USAGE, "folder: channels must be 1, 3 or 0 (from the data), not %d", o->channels);
    if (!(o->val_split >= 0.0f && o->val_split <= 0.9f))
        return pc_fail(PC_ERR_USAGE, "--val-split %g: expected a fraction in [0, 0.9]", (double)o->val_split);
    L->on_demand = o->cache && strcmp(o->cache, "none") == 0;
    if (o->cache && o->cache[0] && strcmp(o->cache, "memory") != 0 && !L->on_demand)
        L->cache_dir = o->cache;
    if (o->max_pixels <= 0) o->max_pixels = PC_IMAGE_DEFAULT_MAX_PIXELS;
    if (!L->dir || !L->dir[0]) return pc_fail(PC_ERR_USAGE, "folder: missing directory (folder:DIR)");
    if (!is_dir(L->dir)) return pc_fail(PC_ERR_DATA, "folder:%s: not a directory", L->dir);
    return PC_OK;
}

/* DIR's layout (folder.h), the folder that holds the part, and the part's name. */
static pc_status detect_layout(folder_load *L) {
    const char *dir = L->dir;
    pc_folder_report *rep = L->rep;
    char *tpath = pc_path_join(dir, "train"), *epath = pc_path_join(dir, "test"), *vpath = pc_path_join(dir, "val");
    if (!tpath || !epath || !vpath) {
        free(tpath), free(epath), free(vpath);
        return pc_fail_nomem();
    }
    int has_train = is_dir(tpath);
    if (is_dir(epath)) L->eval_name = "test";
    else if (is_dir(vpath)) L->eval_name = "val";
    free(tpath), free(epath), free(vpath);
    if (has_train && L->eval_name) {
        L->layout = 1;
    } else if (has_train) {
        strlist top;
        PC_TRY(list_classes(dir, "", &top, NULL, NULL));
        if (top.n == 1) L->layout = 2; /* only train/ */
        strlist_free(&top);
    }
    L->sub = L->layout == 0 ? "" : "train";
    if (L->layout == 1) {
        if (L->opt.val_split > 0) {
            return pc_fail(PC_ERR_USAGE,
                           "folder:%s has a %s/ folder for evaluation: --val-split is only for a "
                           "folder without one",
                           dir, L->eval_name);
        }
        if (!L->train) L->sub = L->eval_name;
        rep->part = L->train ? "train" : L->eval_name;
    } else {
        if (!L->train && L->opt.val_split <= 0)
            return pc_fail(PC_ERR_USAGE,
                           "folder:%s has no test/ or val/ folder: give --val-split F (e.g. 0.1) "
                           "to hold out part of it for evaluation",
                           dir);
        rep->part = L->train ? "train" : "val";
    }
    rep->layout = L->layout;
    rep->dir = L->sub[0] ? pc_path_join(dir, L->sub) : strdup(dir);
    if (!rep->dir) return pc_fail_nomem();
    return PC_OK;
}

/* The class folders of the part (the same as the other part's with train/ and test/). */
static pc_status list_class_folders(folder_load *L) {
    const char *dir = L->dir, *eval_name = L->eval_name;
    PC_TRY(list_classes(dir, L->sub, &L->classes, &L->root_ignored, &L->stray));
    if (L->layout == 1) {
        const char *osub = L->train ? eval_name : "train";
        PC_TRY(list_classes(dir, osub, &L->other, NULL, NULL));
        int same = L->other.n == L->classes.n;
        for (int i = 0; same && i < L->classes.n; i++) same = strcmp(L->classes.v[i], L->other.v[i]) == 0;
        if (!same) {
            char diff[1024];
            const char *tn = L->train ? "train/" : (eval_name[0] == 't' ? "test/" : "val/");
            const char *on = L->train ? (eval_name[0] == 't' ? "test/" : "val/") : "train/";
            class_diff(&L->classes, tn, &L->other, on, diff, sizeof diff);
            return pc_fail(PC_ERR_DATA, "folder:%s: train/ and %s/ hold different class folders: %s",
                           dir, eval_name, diff);
        }
    }
    if (L->classes.n == 0) {
        if (L->stray)
            return pc_fail(PC_ERR_DATA,
                           "folder:%s: %lld images but no class folders: put each class's images in "
                           "%s/CLASS/",
                           L->rep->dir, (long long)L->stray, L->rep->dir);
        return pc_fail(PC_ERR_DATA, "folder:%s: no images found (%s)", dir, LAYOUT_HINT);
    }
    if (L->classes.n > 1000000)
        return pc_fail(PC_ERR_DATA, "folder:%s: %d class folders is too many", dir, L->classes.n);
    return PC_OK;
}

/* The images of every class folder; each class must have some. */
static pc_status list_class_images(folder_load *L) {
    pc_folder_report *rep = L->rep;
    L->class_listed = calloc((size_t)(unsigned)L->classes.n, sizeof *L->class_listed);
    if (!L->class_listed) return pc_fail_nomem();
    for (int c = 0; c < L->classes.n; c++) {
        char *rel = pc_path_join(L->sub, L->classes.v[c]);
        if (!rel) return pc_fail_nomem();
        pc_status s = list_images(L->dir, rel, c, &L->files, &L->class_listed[c], &rep->ignored);
        free(rel);
        PC_TRY(s);
    }
    rep->ignored += L->root_ignored;
    if (L->files.n == 0)
        return pc_fail(PC_ERR_DATA, "folder:%s: no images found in %d class folder%s (%s)", rep->dir,
                       L->classes.n, L->classes.n == 1 ? "" : "s", LAYOUT_HINT);
    for (int c = 0; c < L->classes.n; c++)
        if (L->class_listed[c] == 0)
            return pc_fail(PC_ERR_DATA, "folder:%s: class folder %s/%s holds no images (.jpg, .jpeg, .png)",
                           L->dir, rep->dir, L->classes.v[c]);
    return PC_OK;
}

/* The stratified split (folder.h): in_val marks the held-out images of every class. */
static pc_status hold_out(folder_load *L) {
    int64_t first = 0;
    int64_t *perm = malloc((size_t)L->files.n * sizeof *perm);
    if (!perm) return pc_fail_nomem();
    for (int c = 0; c < L->classes.n; c++) {
        int64_t n = L->class_listed[c];
        int64_t nval = (int64_t)llround((double)n * (double)L->opt.val_split);
        if (n >= 2) nval = PC_MAX(1, PC_MIN(nval, n - 1));
        else nval = 0;
        for (int64_t i = 0; i < n; i++) perm[i] = i;
        pc_stream st = {pc_rand64(L->opt.seed, PC_RNG_SPLIT, (uint64_t)c, 0, 0), 0};
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)pc_stream_below(&st, (uint64_t)i + 1);
            int64_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (int64_t i = 0; i < nval; i++) L->in_val[first + perm[i]] = 1;
        first += n;
    }
    free(perm);
    if (!L->opt.list_dir) return PC_OK;
    PC_TRY(pc_mkdirs(L->opt.list_dir, "file lists:"));
    PC_TRY(write_list(L->opt.list_dir, "train.txt", &L->files, L->in_val, 0));
    return write_list(L->opt.list_dir, "val.txt", &L->files, L->in_val, 1);
}

/* The part's images, round-robin over the classes, and whether their pixels can fit. */
static pc_status select_part(folder_load *L) {
    pc_folder_report *rep = L->rep;
    L->in_val = calloc((size_t)L->files.n, 1);
    L->part = malloc((size_t)L->files.n * sizeof *L->part);
    if (!L->in_val || !L->part) return pc_fail_nomem();
    if (L->layout != 1 && L->opt.val_split > 0) PC_TRY(hold_out(L));
    const int want_val = L->layout != 1 && !L->train;
    for (int64_t i = 0; i < L->files.n; i++)
        if (L->in_val[i] == want_val) L->part[L->np++] = L->files.v[i];
    PC_TRY(interleave_classes(L->part, L->np, L->classes.n));
    rep->listed = L->np;
    rep->classes = L->classes.n;
    rep->image_size = L->opt.image_size;
    rep->class_counts = calloc((size_t)L->classes.n, sizeof *rep->class_counts);
    if (!rep->class_counts) return pc_fail_nomem();
    L->size = L->opt.image_size;
    L->dec_c = L->opt.channels ? L->opt.channels : 3;
    L->hw = (size_t)L->size * L->size;
    L->res_c = L->dec_c;
    if ((uint64_t)L->np > SIZE_MAX / (3 * L->hw))
        return pc_fail(PC_ERR_NOMEM, "folder:%s: %lld images of %dx%d do not fit in memory", L->dir,
                       (long long)L->np, L->size, L->size);
    return PC_OK;
}

/* The cache file's name hash (the folder, the part and the settings that shape its pixels)
 * and its key (also the listing: names, labels, sizes and times of the files). */
static void cache_hashes(const folder_load *L, const char *canon, h128 *name, h128 *key) {
    const pc_folder_options *o = &L->opt;
    h128 name_h, key_h;
    h_init(&name_h);
    h_str(&name_h, canon);
    h_str(&name_h, L->rep->part);
    h_u64(&name_h, (uint64_t)L->size);
    h_u64(&name_h, (uint64_t)o->channels);
    h_u64(&name_h, (uint64_t)o->max_pixels);
    if (o->crop_short) h_u64(&name_h, 0x63726f70ull ^ (uint64_t)o->crop_short);
    if (L->layout != 1 && o->val_split > 0) {
        float vs = o->val_split;
        uint32_t vb;
        memcpy(&vb, &vs, 4);
        h_u64(&name_h, vb);
        h_u64(&name_h, o->seed);
    }
    key_h = name_h;
    h_u64(&key_h, pc_image_codec_id());
    h_u64(&key_h, (uint64_t)L->classes.n);
    for (int c = 0; c < L->classes.n; c++) h_str(&key_h, L->classes.v[c]);
    h_u64(&key_h, (uint64_t)L->np);
    for (int64_t i = 0; i < L->np; i++) {
        h_str(&key_h, L->part[i].rel);
        h_u64(&key_h, (uint64_t)L->part[i].label);
        h_u64(&key_h, (uint64_t)L->part[i].size);
        h_u64(&key_h, (uint64_t)L->part[i].mtime_ns);
    }
    *name = h_final(name_h);
    *key = h_final(key_h);
}

/* "NAME-PART-SIZEpx-HASH.cache", NAME a readable, file-system-safe prefix of the folder's
 * name. */
static void cache_file_name(const char *canon, const char *part, int size, uint64_t hash,
                            char *fname, size_t n) {
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
    snprintf(fname, n, "%s-%s-%dpx-%016llx.cache", k ? pref : "folder", part, size,
             (unsigned long long)hash);
}

/* --cache DIR: read the part's cache file when its key matches (this rank's view). */
static pc_status cache_lookup(folder_load *L) {
    pc_folder_report *rep = L->rep;
    char *real = realpath(L->dir, NULL);
    const char *canon = real ? real : L->dir;
    h128 nh, kh;
    cache_hashes(L, canon, &nh, &kh);
    char fname[128];
    cache_file_name(canon, rep->part, L->size, nh.a, fname, sizeof fname);
    free(real);
    PC_TRY(pc_mkdirs(L->cache_dir, "--cache"));
    /* a process killed while writing a cache left its temporary (the folder may be
     * shared between machines: only those of dead local PIDs an hour old) */
    pc_remove_stale_temporaries(L->cache_dir, 3600);
    L->cache_path = pc_path_join(L->cache_dir, fname);
    if (!L->cache_path) return pc_fail_nomem();
    cache_header *ch = &L->ch;
    memcpy(ch->magic, CACHE_MAGIC, 8);
    ch->version = CACHE_VERSION;
    ch->endian = CACHE_ENDIAN;
    ch->key_a = kh.a;
    ch->key_b = kh.b;
    ch->h = ch->w = (uint32_t)L->size;
    ch->classes = (uint32_t)L->classes.n;
    ch->listed = (uint64_t)L->np;
    L->from_cache = cache_read(L->cache_path, ch, L->opt.channels, L->opt.on_bad_skip, &L->pixels,
                               &L->kept_flags, &L->cache_msgs, &L->res_c);
    rep->cache_corrupt = L->from_cache < 0;
    if (L->from_cache < 0) L->from_cache = 0;
    rep->cache_file = strdup(L->cache_path);
    return PC_OK;
}

/* The cache is used only when every rank found it; otherwise all decode, sharing the work. */
static pc_status agree_on_cache(folder_load *L) {
    L->hit_here = L->from_cache;
    PC_TRY(all_ranks(L->opt.comm, L->hit_here, &L->from_cache));
    if (L->hit_here && !L->from_cache) {
        for (int64_t i = 0; i < L->np; i++) L->n_cache_msgs += !L->kept_flags[i];
        pc_free(L->pixels);
        free(L->kept_flags);
        L->pixels = NULL;
        L->kept_flags = NULL;
    }
    return PC_OK;
}

/* The cache file's pixels: the labels of its kept images, its bad files in the report. */
static pc_status take_cached(folder_load *L) {
    pc_folder_report *rep = L->rep;
    L->labels = pc_alloc((size_t)PC_MAX(L->np, 1) * sizeof *L->labels);
    if (!L->labels) return pc_fail_nomem();
    for (int64_t i = 0; i < L->np; i++)
        if (L->kept_flags[i]) L->labels[L->kept++] = L->part[i].label;
    L->n_cache_msgs = L->np - L->kept;
    for (int64_t i = 0; i < L->n_cache_msgs; i++) {
        if (rep->n_bad < PC_FOLDER_MAX_BAD_LISTED) rep->bad[rep->n_bad++] = L->cache_msgs[i];
        else free(L->cache_msgs[i]);
        L->cache_msgs[i] = NULL;
    }
    rep->skipped = L->n_cache_msgs;
    rep->from_cache = 1;
    return PC_OK;
}

/* Decode the part in parallel: threads here, slices across ranks (with --cache none only
 * the pixel sums are kept). */
static pc_status decode_all(folder_load *L) {
    const int64_t np = L->np;
    const int on_demand = L->on_demand, dec_c = L->dec_c;
    L->pixels = on_demand ? NULL : pc_alloc(PC_MAX((size_t)np * dec_c * L->hw, 1));
    L->sums = on_demand ? calloc((size_t)np * 2 * dec_c, sizeof *L->sums) : NULL;
    L->status = calloc((size_t)np, sizeof *L->status);
    L->gray = calloc((size_t)np, 1);
    L->warn = calloc((size_t)np, sizeof *L->warn);
    L->msgs = calloc((size_t)np, sizeof *L->msgs);
    L->labels = pc_alloc((size_t)PC_MAX(np, 1) * sizeof *L->labels);
    L->kept_flags = calloc((size_t)np, 1);
    if ((!L->pixels && !on_demand) || (!L->sums && on_demand) || !L->status || !L->gray ||
        !L->warn || !L->msgs || !L->labels || !L->kept_flags)
        return pc_fail(PC_ERR_NOMEM, "folder:%s: out of memory for %lld images of %dx%dx%d", L->dir,
                       (long long)np, L->size, L->size, dec_c);
    const pc_folder_options *o = &L->opt;
    L->job = (djob){.root = L->dir, .files = L->part, .size = L->size, .c = dec_c,
                    .skip = o->on_bad_skip, .crop_short = o->crop_short,
                    .max_pixels = o->max_pixels, .pixels = L->pixels, .sums = L->sums,
                    .status = L->status, .gray = L->gray, .warn = L->warn, .msg = L->msgs};
    pc_folder_report *rep = L->rep;
    double t0 = pc_now();
    PC_TRY(decode_files(&L->job, o->decode_threads > 0 ? o->decode_threads : default_threads(),
                        o->comm, np, &rep->threads));
    rep->decode_seconds = pc_now() - t0;
    rep->images_per_second = rep->decode_seconds > 0 ? (double)np / rep->decode_seconds : 0;
    rep->decoded_here = L->job.hi - L->job.lo;
    return PC_OK;
}

/* The first failure in sorted order decides (the same for any thread or rank count): a bad
 * image without --on-bad-image skip, or any other error. */
static pc_status check_failures(folder_load *L) {
    for (int64_t i = 0; i < L->np; i++) {
        pc_status st = (pc_status)L->status[i];
        if (st == PC_OK || (L->opt.on_bad_skip && st == PC_ERR_DATA)) continue;
        if (st == PC_ERR_DATA)
            return pc_fail(PC_ERR_DATA, "%s (--on-bad-image skip drops bad images)",
                           bad_file_message(&L->job, i));
        return pc_fail(st, "%s", bad_file_message(&L->job, i));
    }
    return PC_OK;
}

/* Move the good images to the front (the bad ones into the report); when every one is
 * gray and the channels are up to the data, keep one plane. */
static pc_status keep_good(folder_load *L) {
    pc_folder_report *rep = L->rep;
    const int dec_c = L->dec_c;
    const size_t hw = L->hw, sample = (size_t)dec_c * hw;
    int all_gray = 1;
    for (int64_t i = 0; i < L->np; i++) {
        if (L->status[i] != PC_OK) {
            if (rep->n_bad < PC_FOLDER_MAX_BAD_LISTED)
                rep->bad[rep->n_bad++] = strdup(bad_file_message(&L->job, i));
            rep->skipped++;
            continue;
        }
        int64_t k = L->kept;
        if (k != i && L->pixels) memmove(L->pixels + (size_t)k * sample, L->pixels + (size_t)i * sample, sample);
        if (k != i && L->sums) memmove(L->sums + k * 2 * dec_c, L->sums + i * 2 * dec_c, sizeof *L->sums * 2 * dec_c);
        L->labels[L->kept++] = L->part[i].label;
        L->kept_flags[i] = 1;
        all_gray &= L->gray[i];
        rep->warnings += L->warn[i];
    }
    L->res_c = dec_c;
    if (L->opt.channels != 0 || !all_gray || L->kept == 0) return PC_OK;
    /* every kept image is gray: its three decoded planes are equal; keep one */
    L->res_c = 1;
    if (L->pixels) {
        uint8_t *g1 = pc_alloc((size_t)L->kept * hw);
        if (!g1) return pc_fail_nomem();
        for (int64_t i = 0; i < L->kept; i++) memcpy(g1 + (size_t)i * hw, L->pixels + (size_t)i * sample, hw);
        pc_free(L->pixels);
        L->pixels = g1;
    }
    for (int64_t i = 0; L->sums && i < L->kept; i++) { /* [s0 s1 s2 q0 q1 q2] -> [s0 q0] */
        L->sums[2 * i] = L->sums[i * 2 * dec_c];
        L->sums[2 * i + 1] = L->sums[i * 2 * dec_c + dec_c];
    }
    return PC_OK;
}

/* --cache DIR, when this rank had no matching file: write the decoded part. */
static pc_status write_cache(folder_load *L) {
    L->ch.c = (uint32_t)L->res_c;
    L->ch.kept = (uint64_t)L->kept;
    char **bad_msgs = calloc((size_t)(L->np - L->kept) + 1, sizeof *bad_msgs);
    if (!bad_msgs) return pc_fail_nomem();
    int64_t nb = 0; /* bad messages in file order */
    for (int64_t i = 0; i < L->np; i++)
        if (L->status[i] != PC_OK) bad_msgs[nb++] = bad_file_message(&L->job, i);
    pc_status s = cache_write(L->cache_path, &L->ch, L->kept_flags, bad_msgs, nb, L->pixels);
    free(bad_msgs);
    return s;
}

/* Decode, check, keep the good images, write the cache file, shrink to the kept ones. */
static pc_status decode_part(folder_load *L) {
    PC_TRY(decode_all(L));
    PC_TRY(check_failures(L));
    PC_TRY(keep_good(L));
    if (L->cache_path && !L->hit_here) PC_TRY(write_cache(L));
    if (!L->pixels || L->kept >= L->np) return PC_OK;
    uint8_t *p2 = pc_alloc(PC_MAX((size_t)L->kept * L->res_c * L->hw, 1));
    if (!p2) return pc_fail_nomem();
    memcpy(p2, L->pixels, (size_t)L->kept * L->res_c * L->hw);
    pc_free(L->pixels);
    L->pixels = p2;
    return PC_OK;
}

/* --cache none: the kept files, decoded whenever a batch gathers them. */
static pc_status on_demand_files(folder_load *L) {
    pc_image_files *f = L->files_od = calloc(1, sizeof *L->files_od);
    if (!f || !(f->rel = calloc((size_t)PC_MAX(L->kept, 1), sizeof *f->rel)) ||
        !(f->root = strdup(L->dir)))
        return pc_fail_nomem();
    for (int64_t i = 0; i < L->np; i++) {
        if (!L->kept_flags[i]) continue;
        if (!(f->rel[f->n++] = strdup(L->part[i].rel))) return pc_fail_nomem();
    }
    f->size = L->size;
    f->decode_c = L->dec_c;
    f->c = L->res_c;
    f->max_pixels = L->opt.max_pixels;
    f->crop_short = L->opt.crop_short;
    return PC_OK;
}

/* Images kept per class in the report; no class (and not the part) left without images. */
static pc_status count_kept(folder_load *L) {
    pc_folder_report *rep = L->rep;
    rep->ranks = L->opt.comm ? pc_comm_size(L->opt.comm) : 1;
    rep->on_demand = L->on_demand;
    for (int64_t i = 0; i < L->kept; i++) rep->class_counts[L->labels[i]]++;
    memset(L->class_listed, 0, (size_t)L->classes.n * sizeof *L->class_listed); /* now: listed in this part */
    for (int64_t i = 0; i < L->np; i++) L->class_listed[L->part[i].label]++;
    for (int c = 0; c < L->classes.n; c++)
        if (L->class_listed[c] > 0 && rep->class_counts[c] == 0)
            return pc_fail(PC_ERR_DATA, "folder:%s: every image of class %s (%lld) is bad", rep->dir,
                           L->classes.v[c], (long long)L->class_listed[c]);
    if (L->kept == 0)
        return pc_fail(PC_ERR_DATA, "folder:%s: no usable images in the %s part", L->dir, rep->part);
    return PC_OK;
}

/* The dataset takes the pixels (or the files and sums), the labels and the class names. */
static pc_status assemble(folder_load *L, pc_dataset *out) {
    const strlist *classes = &L->classes;
    out->class_names = calloc((size_t)classes->n, sizeof *out->class_names);
    if (!out->class_names) return pc_fail_nomem();
    out->classes = classes->n; /* from here pc_dataset_free frees the names */
    for (int c = 0; c < classes->n; c++) { /* names go into JSON (model files): UTF-8 only */
        out->class_names[c] = pc_utf8_escape(classes->v[c]);
        if (!out->class_names[c]) return pc_fail_nomem();
    }
    out->n = L->kept;
    out->c = L->res_c;
    out->h = out->w = L->size;
    out->pixels = L->pixels;
    out->labels = L->labels;
    out->files = L->files_od;
    out->sums = L->sums;
    L->pixels = NULL;
    L->labels = NULL;
    L->files_od = NULL;
    L->sums = NULL;
    L->rep->kept = L->kept;
    L->rep->channels = L->res_c;
    return PC_OK;
}

/* The phases after the layout, each leaving what it made in L. */
static pc_status load_part(folder_load *L, pc_dataset *out) {
    PC_TRY(list_class_folders(L));
    PC_TRY(list_class_images(L));
    PC_TRY(select_part(L));
    if (L->cache_dir) PC_TRY(cache_lookup(L));
    PC_TRY(agree_on_cache(L));
    PC_TRY(L->from_cache ? take_cached(L) : decode_part(L));
    if (L->on_demand) PC_TRY(on_demand_files(L));
    PC_TRY(count_kept(L));
    return assemble(L, out);
}

static void load_free(folder_load *L) {
    if (L->msgs)
        for (int64_t i = 0; i < L->np; i++) free(L->msgs[i]);
    free(L->msgs);
    if (L->cache_msgs)
        for (int64_t i = 0; i < L->n_cache_msgs; i++) free(L->cache_msgs[i]);
    free(L->cache_msgs);
    free(L->status);
    free(L->gray);
    free(L->warn);
    free(L->kept_flags);
    free(L->sums);
    pc_image_files_free(L->files_od);
    pc_free(L->pixels);
    pc_free(L->labels);
    free(L->cache_path);
    free(L->part);
    free(L->in_val);
    free(L->class_listed);
    flist_free(&L->files);
    strlist_free(&L->classes);
    strlist_free(&L->other);
}

pc_status pc_dataset_load_folder(const char *dir, int train, const pc_folder_options *opt_in,
                                 pc_dataset *out, pc_folder_report *report_in) {
    double t_start = pc_now();
    memset(out, 0, sizeof *out);
    folder_load L;
    memset(&L, 0, sizeof L);
    L.dir = dir;
    L.train = train;
    if (opt_in) L.opt = *opt_in;
    else pc_folder_options_default(&L.opt);
    pc_folder_report local_rep;
    L.rep = report_in ? report_in : L.opt.report ? L.opt.report : &local_rep;
    memset(L.rep, 0, sizeof *L.rep);
    PC_TRY(check_options(&L));
    PC_TRY(detect_layout(&L)); /* nothing to free yet */
    pc_status s = load_part(&L, out);
    if (s == PC_OK) {
        L.rep->load_seconds = pc_now() - t_start;
    } else {
        pc_dataset_free(out);
        pc_folder_report_free(L.rep); /* on failure the report is left empty */
    }
    load_free(&L);
    if (L.rep == &local_rep) pc_folder_report_free(&local_rep);
    return s;
}
