/* safetensors: any bytes are read as a file (checksum, JSON header, offsets) without a
 * memory error; what parses is walked. */
#include "core/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pc_st_file *f = NULL;
    if (pc_safetensors_parse("fuzz.safetensors", data, size, &f) != PC_OK) return 0;
    volatile uint64_t sum = 0;
    for (int i = 0; i < pc_st_count(f); i++) {
        const pc_st_tensor *t = pc_st_get_index(f, i);
        int64_t n = 1;
        for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
        if (n > 0) sum += ((const uint8_t *)t->data)[0];
        if (pc_st_get(f, t->name) == NULL) __builtin_trap(); /* every name is found */
    }
    (void)pc_st_meta_get(f, "format");
    pc_st_close(f);
    return 0;
}
