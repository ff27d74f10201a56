/* safetensors reader and atomic writer. See safetensors.h for the format.
 * The header is written by hand (deterministic bytes, "__metadata__" first, then the
 * tensors in the order given, padded with spaces to a multiple of 8 bytes like the
 * reference implementation); it is parsed with cJSON. */
#define _GNU_SOURCE
#include "core/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define ST_MAX_HEADER (100u * 1000u * 1000u)
#define ST_MAX_NDIM 8
/* Every file written starts with this; the 8 hex digits that follow are the CRC-32 of the
 * whole file with those 8 digits read as "00000000". */
#define ST_CRC_PREFIX "{\"__metadata__\":{\"crc32\":\""
#define ST_CRC_AT (8 + sizeof ST_CRC_PREFIX - 1) /* file offset of the digits */

static const char *const dtype_names[] = {"F32", "I64", "U8", "I32"};
static const int dtype_sizes[] = {4, 8, 1, 4};

static int dtype_valid(int dt) { return dt >= PC_F32 && dt <= PC_I32; }

/* ---------------------------------------------------------------- growable buffer */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_fmt(sbuf *b, const char *fmt, long long v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, fmt, v);
    sb_put(b, tmp, (size_t)n);
}

/* JSON string literal; bytes >= 0x80 pass through (checked to be UTF-8 before). */
static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                sb_put(b, esc, 6);
            } else {
                sb_put(b, (const char *)p, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

/* ---------------------------------------------------------------- writing */

static int tensor_bytes(const pc_st_tensor *t, int64_t *bytes) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0 || __builtin_mul_overflow(n, t->shape[d], &n)) return 0;
    }
    return !__builtin_mul_overflow(n, (int64_t)dtype_sizes[t->dtype], bytes);
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void fsync_parent_dir(const char *path) {
    char *dir = strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash == dir) d = "/";
    else if (slash) {
        *slash = 0;
        d = dir;
    }
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd); /* best effort: the rename has already happened */
        close(fd);
    }
    free(dir);
}

/* The metadata object of the header (the checksum first, as 0 for now), validated. */
static pc_status header_meta(sbuf *h, const char *path, const pc_st_meta *meta, int n_meta) {
    sb_str(h, ST_CRC_PREFIX "00000000\"");
    for (int i = 0; i < n_meta; i++) {
        if (!meta[i].key || !meta[i].value)
            return pc_fail(PC_ERR_USAGE, "%s: metadata entry %d has a NULL key or value", path, i);
        for (int j = 0; j < i; j++)
            if (strcmp(meta[i].key, meta[j].key) == 0)
                return pc_fail(PC_ERR_USAGE, "%s: duplicate metadata key '%s'", path, meta[i].key);
        if (!pc_utf8_valid(meta[i].key) || !pc_utf8_valid(meta[i].value))
            return pc_fail(PC_ERR_USAGE, "%s: metadata '%s' is not valid UTF-8 (the header "
                           "must be JSON)", path, meta[i].key);
        if (strcmp(meta[i].key, "crc32") == 0)
            return pc_fail(PC_ERR_USAGE, "%s: metadata key 'crc32' is reserved", path);
        sb_put(h, ",", 1);
        sb_json_str(h, meta[i].key);
        sb_put(h, ":", 1);
        sb_json_str(h, meta[i].value);
    }
    sb_put(h, "}", 1);
    return PC_OK;
}

/* Tensor i's entry of the header, validated; *offset: the end of its data so far. */
static pc_status header_tensor(sbuf *h, const char *path, const pc_st_tensor *tensors, int i,
                               int64_t *offset) {
    const pc_st_tensor *t = &tensors[i];
    int64_t bytes = 0;
    const char *bad = NULL;
    if (!t->name) bad = "has no name";
    else if (strcmp(t->name, "__metadata__") == 0) bad = "uses the reserved name __metadata__";
    else if (!pc_utf8_valid(t->name)) bad = "has a name that is not valid UTF-8";
    else if (!dtype_valid((int)t->dtype)) bad = "has an unknown dtype";
    else if (t->ndim < 0 || t->ndim > ST_MAX_NDIM) bad = "has more than 8 dimensions";
    else if (!tensor_bytes(t, &bytes)) bad = "has a negative or overflowing shape";
    else if (bytes > 0 && !t->data) bad = "has no data";
    else if (__builtin_add_overflow(*offset, bytes, offset)) bad = "overflows the file size";
    if (!bad)
        for (int j = 0; j < i; j++)
            if (strcmp(t->name, tensors[j].name) == 0) bad = "is given twice";
    if (bad)
        return pc_fail(PC_ERR_USAGE, "%s: tensor %d ('%s') %s", path, i,
                       t->name ? t->name : "(null)", bad);
    sb_put(h, ",", 1);
    sb_json_str(h, t->name);
    sb_str(h, ":{\"dtype\":");
    sb_json_str(h, dtype_names[t->dtype]);
    sb_str(h, ",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) sb_fmt(h, d ? ",%lld" : "%lld", (long long)t->shape[d]);
    sb_fmt(h, "],\"data_offsets\":[%lld,", (long long)(*offset - bytes));
    sb_fmt(h, "%lld]}", (long long)*offset);
    return PC_OK;
}

/* The whole header, padded with spaces to a multiple of 8 bytes. */
static pc_status build_header(sbuf *h, const char *path, const pc_st_tensor *tensors,
                              int n_tensors, const pc_st_meta *meta, int n_meta) {
    PC_TRY(header_meta(h, path, meta, n_meta));
    int64_t offset = 0;
    for (int i = 0; i < n_tensors; i++) PC_TRY(header_tensor(h, path, tensors, i, &offset));
    sb_put(h, "}", 1);
    while (!h->oom && h->len % 8 != 0) sb_put(h, " ", 1);
    if (h->oom) return pc_fail(PC_ERR_NOMEM, "%s: out of memory building the header", path);
    if (h->len >= ST_MAX_HEADER)
        return pc_fail(PC_ERR_USAGE, "%s: header of %zu bytes is too large", path, h->len);
    return PC_OK;
}

/* The header's length field, and the CRC-32 of the file put into the header's digits. */
static void fill_checksum(sbuf *h, const pc_st_tensor *tensors, int n_tensors, uint8_t len8[8]) {
    uint64_t hl = h->len;
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(hl >> (8 * i));
    uLong crc = crc32_z(crc32_z(0, len8, 8), (const Bytef *)h->p, h->len);
    for (int i = 0; i < n_tensors; i++) {
        int64_t bytes = 0;
        tensor_bytes(&tensors[i], &bytes);
        if (bytes > 0) crc = crc32_z(crc, tensors[i].data, (size_t)bytes);
    }
    char digits[9];
    snprintf(digits, sizeof digits, "%08lx", crc & 0xffffffffUL);
    memcpy(h->p + ST_CRC_AT - 8, digits, 8);
}

/* Write the temporary, sync it, rename it over path. */
static pc_status write_file(const char *path, sbuf *h, const pc_st_tensor *tensors,
                            int n_tensors) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) return pc_fail_nomem();
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    pc_status s = PC_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        s = pc_fail(PC_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return s;
    }
    uint8_t len8[8];
    fill_checksum(h, tensors, n_tensors, len8);
    const char *step = "write";
    int rc = write_all(fd, len8, 8);
    if (rc == 0) rc = write_all(fd, h->p, h->len);
    for (int i = 0; rc == 0 && i < n_tensors; i++) {
        int64_t bytes = 0;
        tensor_bytes(&tensors[i], &bytes);
        if (bytes > 0) rc = write_all(fd, tensors[i].data, (size_t)bytes);
    }
    if (rc == 0 && fsync(fd) != 0) rc = -1, step = "fsync";
    int err = errno;
    if (close(fd) != 0 && rc == 0) rc = -1, step = "close", err = errno;
    if (rc == 0 && rename(tmp, path) != 0) rc = -1, step = "rename", err = errno;
    if (rc != 0) {
        unlink(tmp);
        s = pc_fail(PC_ERR_IO, "%s: %s failed: %s", path, step, strerror(err));
    } else {
        fsync_parent_dir(path);
    }
    free(tmp);
    return s;
}

pc_status pc_safetensors_write(const char *path, const pc_st_tensor *tensors, int n_tensors,
                               const pc_st_meta *meta, int n_meta) {
    if (!path || !path[0]) return pc_fail(PC_ERR_USAGE, "safetensors: empty output path");
    if (n_tensors < 0 || n_meta < 0 || (n_tensors > 0 && !tensors) || (n_meta > 0 && !meta))
        return pc_fail(PC_ERR_USAGE, "%s: bad tensor or metadata list", path);
    sbuf h = {0};
    pc_status s = build_header(&h, path, tensors, n_tensors, meta, n_meta);
    if (s == PC_OK) s = write_file(path, &h, tensors, n_tensors);
    free(h.p);
    return s;
}

/* ---------------------------------------------------------------- reading */

struct pc_st_file {
    uint8_t *buf; /* the whole file */
    size_t size;
    cJSON *root;
    const cJSON *meta; /* the "__metadata__" object or NULL */
    int n;
    pc_st_tensor *t;
    void **owned;  /* per tensor: an aligned copy when the data in buf is misaligned */
    int *by_name;  /* tensor indices sorted by name */
};

typedef struct {
    const char *name;
    int idx;
} named;
static int cmp_name(const void *a, const void *b) {
    return strcmp(((const named *)a)->name, ((const named *)b)->name);
}

typedef struct {
    int64_t begin, end;
    int idx;
} span;
static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* A JSON number that is a non-negative integer exactly representable (< 2^53). */
static int json_uint(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(int64_t)d) return 0;
    *out = (int64_t)d;
    return 1;
}

void pc_st_close(pc_st_file *f) {
    if (!f) return;
    if (f->owned)
        for (int i = 0; i < f->n; i++) pc_free(f->owned[i]);
    free(f->owned);
    free(f->t);
    free(f->by_name);
    cJSON_Delete(f->root);
    pc_free(f->buf);
    free(f);
}

static pc_status read_whole(const char *path, uint8_t **buf, size_t *size) {
    FILE *fp = pc_fopen_regular(path); /* a named pipe would block until a writer comes */
    if (!fp) return PC_ERR_DATA;
    struct stat st;
    if (fstat(fileno(fp), &st) != 0) {
        fclose(fp);
        return pc_fail(PC_ERR_DATA, "%s: cannot stat: %s", path, strerror(errno));
    }
    if ((uint64_t)st.st_size > SIZE_MAX - 64) {
        fclose(fp);
        return pc_fail(PC_ERR_DATA, "%s: file too large", path);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *p = pc_alloc(n + 1);
    if (!p) {
        fclose(fp);
        return pc_fail(PC_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = n ? fread(p, 1, n, fp) : 0;
    int bad = got != n || ferror(fp);
    fclose(fp);
    if (bad) {
        pc_free(p);
        return pc_fail(PC_ERR_DATA, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    *buf = p;
    *size = n;
    return PC_OK;
}

/* A file that records its CRC-32 (every file parcnn writes) and does not match it; files
 * of other writers have none and are checked by their structure only. */
static int checksum_says_corrupt(const uint8_t *buf, size_t size, uint64_t hl, const char *path) {
    if (hl < sizeof ST_CRC_PREFIX + 8 || memcmp(buf + 8, ST_CRC_PREFIX, sizeof ST_CRC_PREFIX - 1))
        return 0;
    const char *digits = (const char *)buf + ST_CRC_AT;
    unsigned long want = 0;
    for (int i = 0; i < 8; i++) {
        int c = digits[i], v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0) {
            pc_fail(PC_ERR_DATA, "%s: the file is corrupt (its checksum '%.8s' is not 8 hex digits)",
                    path, digits);
            return 1;
        }
        want = want << 4 | (unsigned long)v;
    }
    uLong crc = crc32_z(0, buf, ST_CRC_AT);
    crc = crc32_z(crc, (const Bytef *)"00000000", 8);
    crc = crc32_z(crc, buf + ST_CRC_AT + 8, size - ST_CRC_AT - 8);
    if ((crc & 0xffffffffUL) == want) return 0;
    pc_fail(PC_ERR_DATA, "%s: the file is corrupt: its checksum does not match (CRC-32 %08lx, "
            "recorded %08lx)", path, crc & 0xffffffffUL, want);
    return 1;
}

static pc_status parse(const char *path, pc_st_file *f, pc_st_file **out);

pc_status pc_safetensors_read(const char *path, pc_st_file **out) {
    *out = NULL;
    pc_st_file *f = calloc(1, sizeof *f);
    if (!f) return pc_fail_nomem();
    pc_status s = read_whole(path, &f->buf, &f->size);
    if (s != PC_OK) {
        pc_st_close(f);
        return s;
    }
    return parse(path, f, out);
}

pc_status pc_safetensors_parse(const char *name, const void *buf, size_t size, pc_st_file **out) {
    *out = NULL;
    pc_st_file *f = calloc(1, sizeof *f);
    if (f) f->buf = pc_alloc(size + 1);
    if (!f || !f->buf) {
        pc_st_close(f);
        return pc_fail(PC_ERR_NOMEM, "%s: out of memory", name);
    }
    if (size) memcpy(f->buf, buf, size);
    f->size = size;
    return parse(name, f, out);
}

/* The header's length, checksum and JSON (f->root); *hl: its length. */
static pc_status parse_header(const char *path, pc_st_file *f, uint64_t *hl_out) {
    if (f->size < 8)
        return pc_fail(PC_ERR_DATA, "%s: file of %zu bytes is too short for a safetensors header", path, f->size);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)f->buf[i] << (8 * i);
    if (hl > f->size - 8)
        return pc_fail(PC_ERR_DATA, "%s: header length %llu exceeds file size %zu", path,
                       (unsigned long long)hl, f->size);
    if (hl >= ST_MAX_HEADER)
        return pc_fail(PC_ERR_DATA, "%s: header length %llu is too large", path, (unsigned long long)hl);
    if (hl < 2 || f->buf[8] != '{') return pc_fail(PC_ERR_DATA, "%s: header is not a JSON object", path);
    if (checksum_says_corrupt(f->buf, f->size, hl, path)) return PC_ERR_DATA;
    const char *hdr = (const char *)f->buf + 8;
    const char *end = NULL;
    f->root = cJSON_ParseWithLengthOpts(hdr, (size_t)hl, &end, 0);
    if (!f->root || !cJSON_IsObject(f->root)) {
        long at = end ? (long)(end - hdr) : -1;
        if (!f->root && cJSON_GetErrorPtr()) at = (long)(cJSON_GetErrorPtr() - hdr);
        return pc_fail(PC_ERR_DATA, "%s: header is not valid JSON (near byte %ld)", path, at);
    }
    for (const char *p = end; p && p < hdr + hl; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0)
            return pc_fail(PC_ERR_DATA, "%s: trailing garbage after the JSON header", path);
    *hl_out = hl;
    return PC_OK;
}

/* f->meta checked (string values only), and the number of tensors in *n. */
static pc_status count_entries(const char *path, pc_st_file *f, int *n) {
    *n = 0;
    for (const cJSON *e = f->root->child; e; e = e->next) {
        if (!e->string) return pc_fail(PC_ERR_DATA, "%s: malformed header", path);
        if (strcmp(e->string, "__metadata__") != 0) {
            (*n)++;
            continue;
        }
        if (f->meta) return pc_fail(PC_ERR_DATA, "%s: __metadata__ appears twice", path);
        if (!cJSON_IsObject(e)) return pc_fail(PC_ERR_DATA, "%s: __metadata__ is not an object", path);
        for (const cJSON *m = e->child; m; m = m->next)
            if (!cJSON_IsString(m) || !m->valuestring)
                return pc_fail(PC_ERR_DATA, "%s: metadata value for '%s' is not a string", path,
                               m->string ? m->string : "?");
        f->meta = e;
    }
    return PC_OK;
}

/* The dtype and shape of entry e into t; *bytes: the size of its data. */
static pc_status parse_type(const char *path, const cJSON *e, pc_st_tensor *t, int64_t *bytes) {
    const char *name = t->name;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsString(dt) || !dt->valuestring)
        return pc_fail(PC_ERR_DATA, "%s: tensor '%s': missing or non-string dtype", path, name);
    int dtype = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(dt->valuestring, dtype_names[i]) == 0) dtype = i;
    if (dtype < 0)
        return pc_fail(PC_ERR_DATA, "%s: tensor '%s': unsupported dtype '%.32s' (expected F32, I64, "
                       "U8 or I32)", path, name, dt->valuestring);
    t->dtype = (pc_dtype)dtype;
    if (!cJSON_IsArray(sh))
        return pc_fail(PC_ERR_DATA, "%s: tensor '%s': missing or non-array shape", path, name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_NDIM)
        return pc_fail(PC_ERR_DATA, "%s: tensor '%s': %d dimensions (at most 8)", path, name, nd);
    t->ndim = nd;
    int64_t numel = 1;
    int d = 0;
    for (const cJSON *v = sh->child; v; v = v->next, d++) {
        if (!json_uint(v, &t->shape[d]))
            return pc_fail(PC_ERR_DATA, "%s: tensor '%s': shape entry %d is not a non-negative "
                           "integer", path, name, d);
        if (__builtin_mul_overflow(numel, t->shape[d], &numel))
            return pc_fail(PC_ERR_DATA, "%s: tensor '%s': shape overflows", path, name);
    }
    if (__builtin_mul_overflow(numel, (int64_t)dtype_sizes[dtype], bytes))
        return pc_fail(PC_ERR_DATA, "%s: tensor '%s': shape overflows", path, name);
    return PC_OK;
}

/* Tensor k from header entry e: its type, shape and data (copied when misaligned). */
static pc_status parse_tensor(const char *path, pc_st_file *f, const cJSON *e, int k,
                              uint64_t hl, span *sp) {
    const uint8_t *data = f->buf + 8 + hl;
    const int64_t data_size = (int64_t)(f->size - 8 - hl);
    pc_st_tensor *t = &f->t[k];
    const char *name = e->string;
    t->name = name;
    if (!cJSON_IsObject(e)) return pc_fail(PC_ERR_DATA, "%s: tensor '%s': entry is not an object", path, name);
    int64_t bytes = 0;
    PC_TRY(parse_type(path, e, t, &bytes));
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return pc_fail(PC_ERR_DATA, "%s: tensor '%s': data_offsets must be an array of two "
                       "integers", path, name);
    int64_t b = 0, en = 0;
    if (!json_uint(off->child, &b) || !json_uint(off->child->next, &en))
        return pc_fail(PC_ERR_DATA, "%s: tensor '%s': data_offsets must be non-negative integers",
                       path, name);
    if (b > en || en > data_size)
        return pc_fail(PC_ERR_DATA, "%s: tensor '%s': data_offsets [%lld, %lld] outside the "
                       "%lld-byte data area", path, name, (long long)b, (long long)en,
                       (long long)data_size);
    if (en - b != bytes)
        return pc_fail(PC_ERR_DATA, "%s: tensor '%s': data_offsets span %lld bytes but shape and "
                       "dtype need %lld", path, name, (long long)(en - b), (long long)bytes);
    const uint8_t *p = data + b;
    if (((uintptr_t)p % (uintptr_t)dtype_sizes[t->dtype]) != 0 && bytes > 0) {
        f->owned[k] = pc_alloc((size_t)bytes);
        if (!f->owned[k]) return pc_fail(PC_ERR_NOMEM, "%s: out of memory", path);
        memcpy(f->owned[k], p, (size_t)bytes);
        p = f->owned[k];
    }
    t->data = p;
    *sp = (span){b, en, k};
    f->by_name[k] = k;
    return PC_OK;
}

/* No two tensors overlap or share a name; f->by_name sorted by name. */
static pc_status index_tensors(const char *path, pc_st_file *f, span *spans) {
    const int n = f->n;
    if (n <= 1) return PC_OK;
    qsort(spans, (size_t)n, sizeof *spans, cmp_span);
    for (int i = 1; i < n; i++)
        if (spans[i].begin < spans[i - 1].end)
            return pc_fail(PC_ERR_DATA, "%s: tensors '%s' and '%s' overlap in the data area", path,
                           f->t[spans[i - 1].idx].name, f->t[spans[i].idx].name);
    named *byn = malloc((size_t)n * sizeof *byn);
    if (!byn) return pc_fail(PC_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++) byn[i] = (named){f->t[i].name, i};
    qsort(byn, (size_t)n, sizeof *byn, cmp_name);
    int dup = -1;
    for (int i = 0; i < n; i++) {
        f->by_name[i] = byn[i].idx;
        if (i > 0 && strcmp(byn[i].name, byn[i - 1].name) == 0) dup = byn[i].idx;
    }
    free(byn);
    if (dup >= 0) return pc_fail(PC_ERR_DATA, "%s: tensor '%s' appears twice", path, f->t[dup].name);
    return PC_OK;
}

/* Validate f->buf (f->size bytes) and index its tensors; f is freed on failure. */
static pc_status parse(const char *path, pc_st_file *f, pc_st_file **out) {
    uint64_t hl = 0;
    int n = 0;
    span *spans = NULL;
    pc_status s = parse_header(path, f, &hl);
    if (s == PC_OK) s = count_entries(path, f, &n);
    if (s == PC_OK) {
        f->t = calloc((size_t)(n ? n : 1), sizeof *f->t);
        f->owned = calloc((size_t)(n ? n : 1), sizeof *f->owned);
        f->by_name = calloc((size_t)(n ? n : 1), sizeof *f->by_name);
        spans = calloc((size_t)(n ? n : 1), sizeof *spans);
        if (!f->t || !f->owned || !f->by_name || !spans) s = pc_fail(PC_ERR_NOMEM, "%s: out of memory", path);
        else f->n = n;
    }
    int k = 0;
    for (const cJSON *e = f->root ? f->root->child : NULL; s == PC_OK && e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        s = parse_tensor(path, f, e, k, hl, &spans[k]);
        k++;
    }
    if (s == PC_OK) s = index_tensors(path, f, spans);
    free(spans);
    if (s != PC_OK) {
        pc_st_close(f);
        return s;
    }
    *out = f;
    return PC_OK;
}

int pc_st_count(const pc_st_file *f) { return f ? f->n : 0; }

const pc_st_tensor *pc_st_get_index(const pc_st_file *f, int i) {
    if (!f || i < 0 || i >= f->n) return NULL;
    return &f->t[i];
}

const pc_st_tensor *pc_st_get(const pc_st_file *f, const char *name) {
    if (!f || !name) return NULL;
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->t[f->by_name[mid]].name, name);
        if (c == 0) return &f->t[f->by_name[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const char *pc_st_meta_get(const pc_st_file *f, const char *key) {
    if (!f || !f->meta || !key) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(f->meta, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
