/* Model files: any text is parsed (as for 1x8x8 and 3x12x12 inputs, 10 classes) into a
 * model or one error, without a memory error or undefined behaviour. The inputs are small
 * so that valid models stay small: a 30-million-parameter model (a wide dense layer) takes
 * longer than the time-out to initialize under the fuzzer's instrumentation. */
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0; /* model files are short; longer inputs only repeat layers */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    static const int shapes[2][3] = {{1, 8, 8}, {3, 12, 12}};
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
