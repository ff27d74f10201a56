/* ONNX import: any bytes as an .onnx file are imported into a parcnn model or one error,
 * without a memory error, undefined behaviour or leak; an imported model is exported again
 * and that export imported (export must accept whatever import builds). */
#include <stdlib.h>

#include "fuzz_util.h"
#include "onnx/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 20) return 0;
    const char *path = fuzz_file("fuzz.onnx", data, size);
    pc_model *m = NULL;
    pc_model_meta meta;
    if (pc_onnx_import(path, NULL, &m, &meta) != PC_OK) return 0; /* one error: fine */
    char out[512];
    snprintf(out, sizeof out, "%s", fuzz_path("export.onnx"));
    pc_model *again = NULL;
    pc_model_meta meta2;
    if (pc_onnx_export(out, m, &meta) != PC_OK) abort(); /* every imported model exports */
    if (pc_onnx_import(out, NULL, &again, &meta2) != PC_OK) abort(); /* and imports back */
    pc_model_free(again);
    pc_model_meta_free(&meta2);
    pc_model_free(m);
    pc_model_meta_free(&meta);
    return 0;
}
