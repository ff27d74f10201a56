/* safetensors files: an 8-byte little-endian header length, a JSON header
 * {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "string value"}}, then the raw little-endian tensor bytes.
 * PyTorch's `safetensors` package reads and writes the same files. */
#ifndef PC_SAFETENSORS_H
#define PC_SAFETENSORS_H

#include <stdint.h>

#include "common.h"

typedef enum { PC_F32 = 0, PC_I64 = 1, PC_U8 = 2, PC_I32 = 3 } pc_dtype;

typedef struct {
    const char *name;
    pc_dtype dtype;
    int ndim;             /* 0..8 */
    int64_t shape[8];
    const void *data;     /* product(shape) elements of dtype */
} pc_st_tensor;

typedef struct {
    const char *key, *value;
} pc_st_meta;

/* Write atomically: to "<path>.tmp.<pid>", fsync, rename over path, fsync the directory.
 * The header starts with metadata "crc32": the CRC-32 (zlib's) of the whole file with its
 * own 8 hex digits read as "00000000"; the key is reserved.
 * Tensors are written in the order given and the JSON header keys in that order too, with
 * no timestamps: identical inputs give identical bytes. On any failure the old file at
 * path is untouched and the temporary is removed. */
pc_status pc_safetensors_write(const char *path, const pc_st_tensor *tensors, int n_tensors,
                               const pc_st_meta *meta, int n_meta);

typedef struct pc_st_file pc_st_file; /* an opened file, fully read and validated */

/* Read and validate (the checksum when the file records one, as parcnn's do; header JSON
 * well-formed, dtypes known, offsets in bounds and non-overlapping, sizes consistent with
 * shapes). Errors name the path and the problem ("the file is corrupt" for a checksum
 * that does not match). */
pc_status pc_safetensors_read(const char *path, pc_st_file **out);
/* The same on a file's bytes in memory (copied); `name` is used in error messages. */
pc_status pc_safetensors_parse(const char *name, const void *buf, size_t size, pc_st_file **out);
int pc_st_count(const pc_st_file *f);
const pc_st_tensor *pc_st_get_index(const pc_st_file *f, int i);
const pc_st_tensor *pc_st_get(const pc_st_file *f, const char *name); /* NULL if absent */
const char *pc_st_meta_get(const pc_st_file *f, const char *key);     /* NULL if absent */
void pc_st_close(pc_st_file *f);

#endif
