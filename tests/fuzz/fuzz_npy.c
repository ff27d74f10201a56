/* .npy reading (predict --npy-in): any bytes are read without a memory error; what parses
 * holds exactly its shape's values. */
#include "fuzz_util.h"
#include "onnx/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file("fuzz.npy", data, size);
    pc_npy a;
    if (pc_npy_read(path, (int64_t)1 << 24, &a) != PC_OK) return 0;
    int64_t n = 1;
    for (int d = 0; d < a.ndim; d++) n *= a.shape[d];
    if (n != a.numel) __builtin_trap();
    volatile float sum = 0;
    for (int64_t i = 0; i < a.numel; i++) sum += a.data[i];
    pc_npy_free(&a);
    return 0;
}
