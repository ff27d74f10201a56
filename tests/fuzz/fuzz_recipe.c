/* Recipes: any text as a recipe's body, with and without the flags it may require. */
#include <stdlib.h>
#include <string.h>

#include "train/recipe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char *with[] = {"train", "--recipe", "fuzz", "--data", "folder:x", "--epochs=3", NULL};
    char *without[] = {"train", "--recipe=fuzz", NULL};
    int n;
    char **out;
    if (pc_recipe_expand_text("fuzz", text, 1, 6, with, &n, &out) == PC_OK) pc_recipe_argv_free(n, out);
    if (pc_recipe_expand_text("fuzz", text, 1, 2, without, &n, &out) == PC_OK) pc_recipe_argv_free(n, out);
    free(text);
    return 0;
}
