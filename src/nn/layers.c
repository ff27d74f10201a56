/* The table of layer-kind descriptors, in the order of pc_layer_kind. */
#include <string.h>

#include "nn/layer.h"

#define PC_LAYER_KIND(KIND, ops) extern const pc_layer_ops ops;
#include "nn/layer_kinds.def"
#undef PC_LAYER_KIND

static const pc_layer_ops *const layer_ops[] = {
#define PC_LAYER_KIND(KIND, ops) [PC_L_##KIND] = &ops,
#include "nn/layer_kinds.def"
#undef PC_LAYER_KIND
};
_Static_assert(sizeof layer_ops / sizeof layer_ops[0] == PC_L_KIND_COUNT,
               "one descriptor per layer kind");

const pc_layer_ops *pc_layer_ops_of(pc_layer_kind kind) { return layer_ops[kind]; }

int pc_layer_kind_of_section(const char *section) {
    for (int k = 0; k < PC_L_KIND_COUNT; k++)
        if (strcmp(layer_ops[k]->name, section) == 0 ||
            (layer_ops[k]->also && strcmp(layer_ops[k]->also, section) == 0))
            return k;
    return -1;
}
