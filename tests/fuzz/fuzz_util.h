/* Shared by the libFuzzer harnesses: the fuzz input as a file (for loaders that take a
 * path) in a private temporary folder. */
#ifndef PC_FUZZ_UTIL_H
#define PC_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The path of a file in this process's temporary folder, created on first use. */
static const char *fuzz_path(const char *name) {
    static char dir[256];
    static char path[512];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/parcnn-fuzz-XXXXXX");
        if (!mkdtemp(dir)) abort();
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

/* Write n bytes to the file `name` of the temporary folder; returns its path. */
static const char *fuzz_file(const char *name, const uint8_t *data, size_t n) {
    const char *path = fuzz_path(name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
    return path;
}

#endif
