/* Image caches (--cache DIR): any bytes parsed as a cache file whose key matches. */
#include <stdio.h>

#include "data/folder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    for (int allow_bad = 0; allow_bad < 2; allow_bad++) {
        FILE *f = fmemopen((void *)data, size, "rb");
        if (!f) return 0;
        (void)pc_folder_cache_probe(f, allow_bad);
        fclose(f);
    }
    return 0;
}
