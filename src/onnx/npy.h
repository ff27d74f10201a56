/* NumPy .npy files of float32 (dtype '<f4', C order), the tensors `parcnn predict
 * --npy-in/--npy-out` exchange with other frameworks (numpy.save / numpy.load). Format
 * versions 1.0, 2.0 and 3.0 are read; 1.0 is written. Reading is strict: another dtype,
 * Fortran order, a malformed header, a size that does not match the shape (truncated
 * or trailing bytes) are errors naming the file and the problem. */
#ifndef PC_NPY_H
#define PC_NPY_H

#include <stdint.h>

#include "core/common.h"

#define PC_NPY_MAX_DIMS 8

typedef struct {
    int ndim;
    int64_t shape[PC_NPY_MAX_DIMS];
    int64_t numel;
    float *data; /* pc_alloc'ed; free with pc_npy_free */
} pc_npy;

/* At most max_numel elements (a larger shape is refused before anything is allocated). */
pc_status pc_npy_read(const char *path, int64_t max_numel, pc_npy *out);
pc_status pc_npy_write(const char *path, const float *data, int ndim, const int64_t *shape);
void pc_npy_free(pc_npy *a);

#endif
