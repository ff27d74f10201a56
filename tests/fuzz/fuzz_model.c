/* Model files: any text is parsed (as for 1x8x8 and 3x12x12 inputs, 10 classes) into a
 * model or one error, without a memory error or undefined behaviour. A model file may
 * rightly ask for gigabytes (one [dense] layer of units=1048576), more than the fuzzer's
 * allocation limit, and tens of millions of parameters take longer than the time-out to
 * initialize under its instrumentation: parameters are allocated and initialized for
 * models of at most MAX_PARAMS, the others stop at their layers and sizes. */
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"

#define MAX_PARAMS (1 << 22)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0; /* model files are short; longer inputs only repeat layers */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    static const int shapes[2][3] = {{1, 8, 8}, {3, 12, 12}};
    for (int k = 0; k < 2; k++) {
        pc_model *m = NULL;
        if (pc_model_parse_layers(text, "fuzz.cfg", shapes[k][0], shapes[k][1], shapes[k][2], 10,
                                  &m) != PC_OK)
            continue;
        (void)pc_model_flops(m);
        if (m->n_params + m->n_buffers <= MAX_PARAMS) (void)pc_model_init_params(m, 1);
        pc_model_free(m);
    }
    free(text);
    return 0;
}
