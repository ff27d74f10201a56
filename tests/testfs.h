/* Files for tests: a private temporary folder, paths inside it, whole-file reads and
 * writes. Include after check.h; the test calls testfs_start first and testfs_finish
 * last (PARCNN_KEEP_TMP=1 keeps the folder for a look). */
#ifndef PC_TEST_FS_H
#define PC_TEST_FS_H

#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tmpdir[64];

__attribute__((unused)) static int testfs_start(const char *name) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/parcnn_test_%s_XXXXXX", name);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return -1;
    }
    return 0;
}

static int testfs_remove(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

__attribute__((unused)) static void testfs_finish(void) {
    if (getenv("PARCNN_KEEP_TMP")) printf("kept %s\n", tmpdir);
    else nftw(tmpdir, testfs_remove, 16, FTW_DEPTH | FTW_PHYS);
}

/* tmpdir/<printf(fmt, ...)>, in one of 16 rotating buffers. */
static char *tpath(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *tpath(const char *fmt, ...) {
    static char bufs[16][1024];
    static int k;
    char *b = bufs[k++ % 16];
    int n = snprintf(b, 1024, "%s/", tmpdir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b + n, 1024 - (size_t)n, fmt, ap);
    va_end(ap);
    return b;
}

/* Write n bytes (exits on failure: the test cannot go on). */
__attribute__((unused)) static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

/* The whole file (malloc'ed, one spare byte), or NULL. */
__attribute__((unused)) static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)(size < 0 ? 0 : size) + 1);
    *n = b ? fread(b, 1, (size_t)size, f) : 0;
    fclose(f);
    return b;
}

#endif
