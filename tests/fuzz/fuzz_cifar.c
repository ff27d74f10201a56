/* CIFAR-10/100 binary batches: the input as one batch file, read both ways. */
#include "data/dataset.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0;
    const char *path = fuzz_file("batch.bin", data, size);
    for (int cifar100 = 0; cifar100 < 2; cifar100++) {
        pc_dataset d;
        if (pc_dataset_load_cifar(&path, 1, cifar100, &d) == PC_OK) pc_dataset_free(&d);
    }
    return 0;
}
