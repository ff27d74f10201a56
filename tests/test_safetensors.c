/* safetensors: round trip, deterministic bytes, rejection of corrupt files, atomic writes. */
#define _GNU_SOURCE
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "testfs.h"
#include "core/safetensors.h"




static int same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    uint8_t *x = read_file(a, &na), *y = read_file(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* Number of entries in tmpdir whose name contains ".tmp." */
static int count_temporaries(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static float f32[6] = {1.5f, -2.25f, 3.0f, 0.0f, 1e-7f, -1e30f};
static int64_t i64[4] = {0, -1, (int64_t)1 << 40, INT64_MAX};
static uint8_t u8[3] = {7, 0, 255};
static int32_t i32[1] = {-123456};

static int make_tensors(pc_st_tensor *t) {
    t[0] = (pc_st_tensor){.name = "u8", .dtype = PC_U8, .ndim = 1, .shape = {3}, .data = u8};
    t[1] = (pc_st_tensor){.name = "conv1.weight", .dtype = PC_F32, .ndim = 2, .shape = {2, 3},
                          .data = f32};
    t[2] = (pc_st_tensor){.name = "step", .dtype = PC_I64, .ndim = 1, .shape = {4}, .data = i64};
    t[3] = (pc_st_tensor){.name = "scalar", .dtype = PC_I32, .ndim = 0, .data = i32};
    t[4] = (pc_st_tensor){.name = "empty", .dtype = PC_F32, .ndim = 2, .shape = {0, 5}, .data = NULL};
    return 5;
}

static const pc_st_meta meta[2] = {{"format", "pt"}, {"note", "quote \" backslash \\ newline \n tab \t é"}};

static void test_round_trip(void) {
    pc_st_tensor t[5];
    int n = make_tensors(t);
    const char *p = tpath("model.safetensors");
    pc_status s = pc_safetensors_write(p, t, n, meta, 2);
    CHECK(s == PC_OK, "write: %s", pc_last_error());
    CHECK(count_temporaries() == 0, "temporary left behind");

    size_t size = 0;
    uint8_t *raw = read_file(p, &size);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)raw[i] << (8 * i);
    CHECK(hl % 8 == 0 && 8 + hl + 3 + 24 + 32 + 4 == size, "header length %llu, size %zu",
          (unsigned long long)hl, size);
    CHECK(memcmp(raw + 8, "{\"__metadata__\":{\"crc32\":\"", 26) == 0 &&
              memcmp(raw + 8 + 34, "\",\"format\":\"pt\"", 15) == 0,
          "header starts %.60s", raw + 8);
    CHECK(raw[8 + hl - 1] == ' ' || raw[8 + hl - 1] == '}', "padding");
    free(raw);

    pc_st_file *f = NULL;
    s = pc_safetensors_read(p, &f);
    CHECK(s == PC_OK, "read: %s", pc_last_error());
    if (s != PC_OK) return;
    CHECK(pc_st_count(f) == 5, "count %d", pc_st_count(f));
    for (int i = 0; i < pc_st_count(f); i++) {
        const pc_st_tensor *r = pc_st_get_index(f, i);
        CHECK(strcmp(r->name, t[i].name) == 0, "order: %s vs %s", r->name, t[i].name);
        CHECK(r->dtype == t[i].dtype && r->ndim == t[i].ndim, "%s dtype/ndim", r->name);
        int same = 1;
        for (int d = 0; d < r->ndim; d++) same &= r->shape[d] == t[i].shape[d];
        CHECK(same, "%s shape", r->name);
    }
    const pc_st_tensor *w = pc_st_get(f, "conv1.weight");
    CHECK(w && memcmp(w->data, f32, sizeof f32) == 0, "F32 data");
    CHECK(w && (uintptr_t)w->data % 4 == 0, "F32 data aligned");
    const pc_st_tensor *st = pc_st_get(f, "step");
    CHECK(st && memcmp(st->data, i64, sizeof i64) == 0, "I64 data");
    CHECK(st && (uintptr_t)st->data % 8 == 0, "I64 data aligned");
    const pc_st_tensor *u = pc_st_get(f, "u8");
    CHECK(u && memcmp(u->data, u8, 3) == 0, "U8 data");
    const pc_st_tensor *sc = pc_st_get(f, "scalar");
    CHECK(sc && sc->ndim == 0 && *(const int32_t *)sc->data == -123456, "I32 scalar");
    CHECK(pc_st_get(f, "empty") != NULL, "empty tensor");
    CHECK(pc_st_get(f, "nope") == NULL && pc_st_get_index(f, 5) == NULL &&
              pc_st_get_index(f, -1) == NULL,
          "absent lookups");
    CHECK(pc_st_meta_get(f, "format") && strcmp(pc_st_meta_get(f, "format"), "pt") == 0, "meta");
    CHECK(pc_st_meta_get(f, "note") && strcmp(pc_st_meta_get(f, "note"), meta[1].value) == 0,
          "meta escaping: %s", pc_st_meta_get(f, "note"));
    CHECK(pc_st_meta_get(f, "absent") == NULL, "absent meta");
    pc_st_close(f);

    /* identical inputs -> identical bytes (to another path, and again over the same path) */
    const char *p2 = tpath("model2.safetensors");
    CHECK(pc_safetensors_write(p2, t, n, meta, 2) == PC_OK, "write 2: %s", pc_last_error());
    CHECK(same_file(p, p2), "two writes differ");
    CHECK(pc_safetensors_write(p2, t, n, meta, 2) == PC_OK, "rewrite: %s", pc_last_error());
    CHECK(same_file(p, p2), "rewrite differs");

    /* no tensors, no metadata */
    const char *p3 = tpath("empty.safetensors");
    CHECK(pc_safetensors_write(p3, NULL, 0, NULL, 0) == PC_OK, "write empty: %s", pc_last_error());
    s = pc_safetensors_read(p3, &f);
    CHECK(s == PC_OK && pc_st_count(f) == 0, "read empty: %s", pc_last_error());
    if (s == PC_OK) pc_st_close(f);

    /* bad arguments */
    pc_st_tensor dup[2] = {t[1], t[1]};
    CHECK(pc_safetensors_write(tpath("dup.safetensors"), dup, 2, NULL, 0) == PC_ERR_USAGE,
          "duplicate names accepted");
    pc_st_tensor reserved = t[1];
    reserved.name = "__metadata__";
    CHECK(pc_safetensors_write(tpath("res.safetensors"), &reserved, 1, NULL, 0) == PC_ERR_USAGE,
          "reserved name accepted");
}

/* A file made of an 8-byte length `hl` (or the real length when hl == 0), a header and
 * `data_len` zero bytes of data. */
static void make_raw(const char *path, uint64_t hl, const char *header, size_t data_len) {
    size_t n = strlen(header);
    uint8_t *b = calloc(1, 8 + n + data_len + 1);
    uint64_t len = hl ? hl : n;
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(len >> (8 * i));
    memcpy(b + 8, header, n);
    write_file(path, b, 8 + n + data_len);
    free(b);
}

static void expect_bad(const char *path, const char *needle, const char *what) {
    pc_st_file *f = NULL;
    pc_status s = pc_safetensors_read(path, &f);
    CHECK(s == PC_ERR_DATA, "%s: status %d, want PC_ERR_DATA (%s)", what, s, pc_last_error());
    CHECK(f == NULL, "%s: file handle returned", what);
    CHECK(strstr(pc_last_error(), path) != NULL, "%s: message '%s' lacks the path", what,
          pc_last_error());
    if (needle)
        CHECK(strstr(pc_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", what,
              pc_last_error(), needle);
    if (s == PC_OK) pc_st_close(f);
}

static void test_corrupt(void) {
    const char *good = tpath("model.safetensors");
    size_t size = 0;
    uint8_t *raw = read_file(good, &size);
    const char *p = tpath("bad.safetensors");

    /* truncated at various points */
    size_t cuts[] = {0, 4, 7, 8, 20, size / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_file(p, raw, cuts[i]);
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu", cuts[i]);
        expect_bad(p, NULL, what);
    }
    free(raw);

    const char *ok_entry = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    make_raw(p, 0, ok_entry, 8);
    pc_st_file *f = NULL;
    CHECK(pc_safetensors_read(p, &f) == PC_OK, "hand-made file: %s", pc_last_error());
    pc_st_close(f);
    f = NULL;

    make_raw(p, 123456789, ok_entry, 8);
    expect_bad(p, "header length 123456789 exceeds file size", "header length too big");
    make_raw(p, 0xffffffffffffffffull, ok_entry, 8);
    expect_bad(p, "exceeds file size", "header length 2^64-1");
    make_raw(p, 0, "{\"a\":{\"dtype\":\"F32\",", 8);
    expect_bad(p, "JSON", "bad JSON");
    make_raw(p, 0, "[1,2]", 8);
    expect_bad(p, NULL, "JSON array header");
    make_raw(p, 0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} xyz", 8);
    expect_bad(p, "trailing", "trailing garbage");
    make_raw(p, 0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8);
    expect_bad(p, "outside", "offsets out of range");
    make_raw(p, 0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8);
    expect_bad(p, NULL, "offsets reversed");
    make_raw(p, 0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8);
    expect_bad(p, NULL, "negative offset");
    make_raw(p, 0,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
             12);
    expect_bad(p, "overlap", "overlapping offsets");
    make_raw(p, 0, "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8);
    expect_bad(p, "dtype", "unsupported dtype");
    make_raw(p, 0, "{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    expect_bad(p, "dtype", "lower-case dtype");
    make_raw(p, 0, "{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    expect_bad(p, "dtype", "numeric dtype");
    make_raw(p, 0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 12);
    expect_bad(p, "need", "shape/offset mismatch");
    make_raw(p, 0, "{\"a\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 16);
    expect_bad(p, "need", "dtype/offset mismatch");
    make_raw(p, 0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8);
    expect_bad(p, "shape", "negative dim");
    make_raw(p, 0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8);
    expect_bad(p, "shape", "fractional dim");
    make_raw(p, 0,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
             "\"data_offsets\":[0,8]}}",
             8);
    expect_bad(p, "overflow", "overflowing shape");
    make_raw(p, 0,
             "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 8);
    expect_bad(p, "dimensions", "9 dims");
    make_raw(p, 0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8);
    expect_bad(p, "data_offsets", "one offset");
    make_raw(p, 0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8);
    expect_bad(p, "data_offsets", "no offsets");
    make_raw(p, 0, "{\"a\":[1,2]}", 8);
    expect_bad(p, NULL, "entry not an object");
    make_raw(p, 0,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             8);
    expect_bad(p, "twice", "duplicate name");
    make_raw(p, 0,
             "{\"__metadata__\":{\"k\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
             "\"data_offsets\":[0,8]}}",
             8);
    expect_bad(p, "not a string", "non-string metadata");
    make_raw(p, 0, "{\"__metadata__\":[]}", 0);
    expect_bad(p, "__metadata__", "metadata not an object");
    expect_bad(tpath("does-not-exist.safetensors"), "cannot open", "missing file");

    /* fuzz: random byte flips of a good file never crash */
    size_t n = 0;
    uint8_t *g = read_file(good, &n);
    uint8_t *m = malloc(n);
    srand(777);
    int odd = 0;
    for (int it = 0; it < 2000; it++) {
        memcpy(m, g, n);
        int flips = 1 + rand() % 4;
        for (int k = 0; k < flips; k++) {
            size_t at = (it % 3 == 0) ? (size_t)rand() % 8 : (size_t)rand() % n;
            m[at] ^= (uint8_t)(1 + rand() % 255);
        }
        write_file(p, m, (it % 5 == 0) ? (size_t)rand() % n : n);
        pc_st_file *ff = NULL;
        pc_status s = pc_safetensors_read(p, &ff);
        if (s == PC_OK) {
            for (int i = 0; i < pc_st_count(ff); i++) {
                const pc_st_tensor *t = pc_st_get_index(ff, i);
                volatile uint8_t sink = 0;
                int64_t bytes = 1;
                for (int d = 0; d < t->ndim; d++) bytes *= t->shape[d];
                bytes *= t->dtype == PC_I64 ? 8 : t->dtype == PC_U8 ? 1 : 4;
                for (int64_t b = 0; b < bytes; b++) sink ^= ((const uint8_t *)t->data)[b];
                (void)sink;
                CHECK(pc_st_get(ff, t->name) == t, "lookup after fuzz");
            }
            pc_st_close(ff);
        } else if (s != PC_ERR_DATA) {
            odd++;
        }
    }
    CHECK(odd == 0, "%d fuzz cases returned something other than OK/PC_ERR_DATA", odd);
    free(g);
    free(m);
}

static void test_failed_writes(void) {
    pc_st_tensor t[5];
    int n = make_tensors(t);
    const char *good = tpath("model.safetensors"), *copy = tpath("model-copy.safetensors");
    CHECK(pc_safetensors_write(copy, t, n, meta, 2) == PC_OK, "write copy: %s", pc_last_error());

    /* nonexistent directory */
    const char *nodir = tpath("no-such-dir/model.safetensors");
    pc_status s = pc_safetensors_write(nodir, t, n, meta, 2);
    CHECK(s == PC_ERR_IO, "write into a missing directory: %d", s);
    CHECK(strstr(pc_last_error(), nodir) != NULL, "message lacks path: %s", pc_last_error());
    CHECK(strstr(pc_last_error(), "No such file") != NULL, "message lacks strerror: %s",
          pc_last_error());

    /* a "directory" that is a regular file */
    const char *notdir = tpath("model.safetensors/inner.safetensors");
    s = pc_safetensors_write(notdir, t, n, meta, 2);
    CHECK(s == PC_ERR_IO, "write below a regular file: %d", s);
    CHECK(same_file(good, copy), "good file changed");

    /* rename fails (the target is a directory): the temporary must be removed */
    const char *adir = tpath("a-directory");
    mkdir(adir, 0755);
    s = pc_safetensors_write(adir, t, n, meta, 2);
    CHECK(s == PC_ERR_IO, "write over a directory: %d", s);
    CHECK(strstr(pc_last_error(), adir) != NULL, "message lacks path: %s", pc_last_error());
    CHECK(count_temporaries() == 0, "temporary left after a failed rename");

    /* the data write fails midway (file size limit, which binds root too): the old file
     * stays byte-identical and no temporary remains */
    static float big[16384];
    for (int i = 0; i < 16384; i++) big[i] = (float)i;
    pc_st_tensor bt = {.name = "big", .dtype = PC_F32, .ndim = 1, .shape = {16384}, .data = big};
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        s = pc_safetensors_write(good, &bt, 1, NULL, 0);
        setrlimit(RLIMIT_FSIZE, &old);
        CHECK(s == PC_ERR_IO, "write past the file size limit: %d", s);
        CHECK(strstr(pc_last_error(), good) != NULL, "message lacks path: %s", pc_last_error());
        CHECK(same_file(good, copy), "old file changed by a failed write");
        CHECK(count_temporaries() == 0, "temporary left after a failed write");
    } else {
        printf("skip: setrlimit(RLIMIT_FSIZE) failed\n");
    }
    signal(SIGXFSZ, prev);
    pc_st_file *f = NULL;
    s = pc_safetensors_read(good, &f);
    CHECK(s == PC_OK && pc_st_count(f) == 5, "old file still reads: %s", pc_last_error());
    if (s == PC_OK) pc_st_close(f);
}

/* Files parcnn writes carry a CRC-32: any flipped byte, in the data or in the header, is
 * "corrupt" (a flip in the header must not be read as other settings). */
static void test_checksum(void) {
    pc_st_tensor t[5];
    int n = make_tensors(t);
    const char *p = tpath("crc.safetensors"), *q = tpath("crc-flipped.safetensors");
    CHECK(pc_safetensors_write(p, t, n, meta, 2) == PC_OK, "write: %s", pc_last_error());
    size_t size = 0;
    uint8_t *raw = read_file(p, &size);
    const char *where[3] = {"data", "metadata value", "checksum digit"};
    size_t at[3] = {size - 5, 0, 8 + 26};
    char *pt = raw ? memmem(raw, size, "\"pt\"", 4) : NULL;
    at[1] = pt ? (size_t)(pt - (char *)raw) + 2 : 0;
    for (int k = 0; raw && k < 3; k++) {
        raw[at[k]] ^= 0x01;
        FILE *f = fopen(q, "wb");
        fwrite(raw, 1, size, f);
        fclose(f);
        raw[at[k]] ^= 0x01;
        pc_st_file *r = NULL;
        pc_status s = pc_safetensors_read(q, &r);
        CHECK(s == PC_ERR_DATA && strstr(pc_last_error(), "crc-flipped.safetensors: the file is corrupt"),
              "a flipped bit in the %s: %d %s", where[k], s, pc_last_error());
        if (s == PC_OK) pc_st_close(r);
    }
    free(raw);
    pc_st_meta reserved = {"crc32", "0"};
    CHECK(pc_safetensors_write(q, t, n, &reserved, 1) == PC_ERR_USAGE, "metadata crc32 accepted");
}

/* The header must stay JSON that any reader accepts: strings that are not UTF-8 are
 * refused (class names are escaped before they get here). */
static void test_utf8(void) {
    pc_st_tensor t[5];
    int n = make_tensors(t);
    pc_st_meta latin1 = {"classes", "[\"caf\xe9\"]"};
    pc_status s = pc_safetensors_write(tpath("l1.safetensors"), t, n, &latin1, 1);
    CHECK(s == PC_ERR_USAGE && strstr(pc_last_error(), "metadata 'classes' is not valid UTF-8"),
          "Latin-1 metadata: %d %s", s, pc_last_error());
    t[0].name = "w\xff";
    s = pc_safetensors_write(tpath("l1.safetensors"), t, n, NULL, 0);
    CHECK(s == PC_ERR_USAGE && strstr(pc_last_error(), "not valid UTF-8"), "tensor name: %s",
          pc_last_error());
    CHECK(pc_utf8_valid("caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac"), "valid 2-, 3- and 4-byte forms");
    const char *invalid[] = {"\xe9", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                             "\xc3", "\xe2\x82", "\x80"};
    for (int i = 0; i < 8; i++) CHECK(!pc_utf8_valid(invalid[i]), "invalid form %d accepted", i);
    char *e = pc_utf8_escape("caf\xe9-\xc3\xa9-\xed\xa0\x80");
    CHECK(e && strcmp(e, "caf\\xe9-\xc3\xa9-\\xed\\xa0\\x80") == 0, "escaped: %s", e ? e : "(NULL)");
    CHECK(e && pc_utf8_valid(e), "the escaped name is UTF-8");
    free(e);
}

int main(void) {
    if (testfs_start("st")) return 2;
    test_round_trip();
    test_corrupt();
    test_failed_writes();
    test_checksum();
    test_utf8();
    testfs_finish();
    return check_summary();
}
