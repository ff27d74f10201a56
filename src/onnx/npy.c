#include "onnx/npy.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

void pc_npy_free(pc_npy *a) {
    pc_free(a->data);
    a->data = NULL;
}

/* The value text after "'key':" in the header dictionary, or NULL. */
static const char *dict_value(const char *header, const char *key) {
    char quoted[32];
    snprintf(quoted, sizeof quoted, "'%s'", key);
    const char *p = strstr(header, quoted);
    if (!p) return NULL;
    p += strlen(quoted);
    while (isspace((unsigned char)*p)) p++;
    if (*p != ':') return NULL;
    p++;
    while (isspace((unsigned char)*p)) p++;
    return p;
}

/* "(2, 3, 4)" or "(5,)" or "()" into shape; the product must stay within max_numel. */
static pc_status parse_shape(const char *path, const char *p, int64_t max_numel, pc_npy *a) {
    if (*p != '(') return pc_fail(PC_ERR_DATA, "%s: malformed .npy header (shape)", path);
    p++;
    a->ndim = 0;
    a->numel = 1;
    for (;;) {
        while (isspace((unsigned char)*p)) p++;
        if (*p == ')') break;
        if (!isdigit((unsigned char)*p))
            return pc_fail(PC_ERR_DATA, "%s: malformed .npy header (shape)", path);
        errno = 0;
        char *end;
        long long d = strtoll(p, &end, 10);
        if (errno || a->ndim == PC_NPY_MAX_DIMS)
            return pc_fail(PC_ERR_DATA, "%s: .npy shape has too many or too large dimensions", path);
        if (d > 0 && a->numel > max_numel / d)
            return pc_fail(PC_ERR_DATA, "%s: .npy array too large (more than %lld elements)",
                           path, (long long)max_numel);
        a->shape[a->ndim++] = d;
        a->numel *= d;
        p = end;
        while (isspace((unsigned char)*p)) p++;
        if (*p == ',') p++;
        else if (*p != ')') return pc_fail(PC_ERR_DATA, "%s: malformed .npy header (shape)", path);
    }
    return PC_OK;
}

static pc_status parse_header(const char *path, const char *header, int64_t max_numel,
                              pc_npy *a) {
    const char *descr = dict_value(header, "descr");
    const char *order = dict_value(header, "fortran_order");
    const char *shape = dict_value(header, "shape");
    if (!descr || !order || !shape || header[0] != '{')
        return pc_fail(PC_ERR_DATA, "%s: malformed .npy header", path);
    if (strncmp(descr, "'<f4'", 5) != 0) {
        char got[16] = "?";
        sscanf(descr, "'%15[^']'", got);
        return pc_fail(PC_ERR_DATA, "%s: dtype '%s', expected little-endian float32 ('<f4'; "
                       "numpy: x.astype(numpy.float32))", path, got);
    }
    if (strncmp(order, "False", 5) != 0)
        return pc_fail(PC_ERR_DATA, "%s: array in Fortran order, expected C order "
                       "(numpy: numpy.ascontiguousarray(x))", path);
    return parse_shape(path, shape, max_numel, a);
}

pc_status pc_npy_read(const char *path, int64_t max_numel, pc_npy *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return pc_fail(PC_ERR_DATA, "%s: cannot open: %s", path, strerror(errno));
    unsigned char pre[12];
    pc_status st = PC_OK;
    size_t got = fread(pre, 1, 10, f);
    uint32_t hlen = 0;
    size_t pre_len = 10;
    if (got < 10 || memcmp(pre, magic, 6) != 0 || pre[6] < 1 || pre[6] > 3)
        st = pc_fail(PC_ERR_DATA, "%s: not a .npy file (bad magic or version)", path);
    else if (pre[6] == 1)
        hlen = pre[8] | (uint32_t)pre[9] << 8;
    else if (fread(pre + 10, 1, 2, f) != 2)
        st = pc_fail(PC_ERR_DATA, "%s: truncated .npy header", path);
    else {
        hlen = pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
        pre_len = 12;
    }
    char *header = NULL;
    if (st == PC_OK && hlen > 1 << 20)
        st = pc_fail(PC_ERR_DATA, "%s: .npy header too long", path);
    if (st == PC_OK && !(header = calloc(hlen + 1, 1))) st = pc_fail_nomem();
    if (st == PC_OK && fread(header, 1, hlen, f) != hlen)
        st = pc_fail(PC_ERR_DATA, "%s: truncated .npy header", path);
    if (st == PC_OK) st = parse_header(path, header, max_numel, out);
    free(header);
    if (st == PC_OK && !(out->data = pc_alloc(sizeof(float) * (size_t)(out->numel ? out->numel : 1))))
        st = pc_fail(PC_ERR_NOMEM, "%s: out of memory", path);
    if (st == PC_OK) {
        size_t n = fread(out->data, sizeof(float), (size_t)out->numel, f);
        int extra = fgetc(f) != EOF;
        if (n != (size_t)out->numel)
            st = pc_fail(PC_ERR_DATA, "%s: truncated: %zu of %lld float32 values after the "
                         "%zu-byte header", path, n, (long long)out->numel, pre_len + hlen);
        else if (extra)
            st = pc_fail(PC_ERR_DATA, "%s: bytes after the %lld values the shape holds", path,
                         (long long)out->numel);
    }
    fclose(f);
    if (st != PC_OK) pc_npy_free(out);
    return st;
}

pc_status pc_npy_write(const char *path, const float *data, int ndim, const int64_t *shape) {
    char dict[256], dims[160] = "";
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        size_t len = strlen(dims);
        snprintf(dims + len, sizeof dims - len, "%lld,%s", (long long)shape[d],
                 d + 1 < ndim ? " " : "");
        n *= shape[d];
    }
    if (ndim > 1) dims[strlen(dims) - 1] = 0; /* "(2, 3)" but "(5,)" */
    int len = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }",
                       dims);
    int total = (10 + len + 1 + 63) / 64 * 64; /* the header ends with '\n', 64-aligned */
    char header[320];
    memcpy(header, magic, 6);
    header[6] = 1;
    header[7] = 0;
    header[8] = (char)((total - 10) & 0xff);
    header[9] = (char)((total - 10) >> 8);
    memcpy(header + 10, dict, len);
    memset(header + 10 + len, ' ', total - 10 - len - 1);
    header[total - 1] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f) return pc_fail(PC_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    int ok = fwrite(header, 1, total, f) == (size_t)total &&
             fwrite(data, sizeof(float), (size_t)n, f) == (size_t)n;
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        remove(path);
        return pc_fail(PC_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return PC_OK;
}
