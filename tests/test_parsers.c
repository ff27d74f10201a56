/* Inputs the fuzzers (tests/fuzz) found to break a parser, replayed through the same entry
 * points: each must now end in a clear error (under ASan: without a memory error). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "train/recipe.h"

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (buf) buf[n] = 0;
    fclose(f);
    return buf;
}

/* A recipe of more words than the expansion had room for, followed by the command
 * line's flags, wrote past the argument vector. */
static void test_recipe_too_many_words(void) {
    char *text = read_text(PARCNN_SOURCE_DIR "/tests/fuzz/regressions/recipe/too-many-words");
    CHECK(text != NULL, "the regression input is missing");
    char *argv[] = {"train", "--recipe", "fuzz", "--data", "folder:x", "--epochs=3", NULL};
    int n = 0;
    char **out = NULL;
    pc_status s = pc_recipe_expand_text("fuzz", text, 1, 6, argv, &n, &out);
    CHECK(s == PC_ERR_USAGE && strstr(pc_last_error(), "--recipe: more than 256 words"),
          "found input: %d %s", s, pc_last_error());
    if (s == PC_OK) pc_recipe_argv_free(n, out);
    /* exactly 256 words fit, with the command line's flags after them */
    char words[256 * 4 + 1] = "";
    for (int i = 0; i < 256; i++) strcat(words, "-x\n");
    s = pc_recipe_expand_text("fuzz", words, 1, 6, argv, &n, &out);
    CHECK(s == PC_OK && n == 1 + 256 + 3, "256 words: %d, %d arguments", s, n);
    if (s == PC_OK) {
        CHECK(strcmp(out[n - 1], "--epochs=3") == 0, "the command line comes last: %s", out[n - 1]);
        pc_recipe_argv_free(n, out);
    }
    free(text);
}

int main(void) {
    test_recipe_too_many_words();
    return check_summary();
}
