/* Model files: any text is parsed (as for 1x28x28 and 3x32x32 inputs, 10 classes) into a
 * model or one error, without a memory error or undefined behaviour. */
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0; /* model files are short; longer inputs only repeat layers */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    static const int shapes[2][3] = {{1, 28, 28}, {3, 32, 32}};
    for (int k = 0; k < 2; k++) {
        pc_model *m = NULL;
        if (pc_model_parse(text, "fuzz.cfg", shapes[k][0], shapes[k][1], shapes[k][2], 10, 1, &m) ==
            PC_OK) {
            (void)pc_model_flops(m);
            pc_model_free(m);
        }
    }
    free(text);
    return 0;
}
