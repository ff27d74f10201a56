/* IDX files (raw or gzip'ed): the input is an images file and a labels file, split at the
 * position its first two bytes give. */
#include "data/dataset.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t split = ((size_t)data[0] << 8 | data[1]) % (size - 1);
    const uint8_t *rest = data + 2;
    size_t n = size - 2;
    if (split > n) split = n;
    char images[512];
    snprintf(images, sizeof images, "%s", fuzz_file("images", rest, split));
    const char *labels = fuzz_file("labels", rest + split, n - split);
    pc_dataset d;
    if (pc_dataset_load_idx(images, labels, &d) == PC_OK) pc_dataset_free(&d);
    return 0;
}
