#include "train/recipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const int pc_recipe_n;
extern const char *const pc_recipe_names[];
extern const char *const pc_recipe_texts[];

int pc_recipe_count(void) { return pc_recipe_n; }
const char *pc_recipe_name(int i) { return i >= 0 && i < pc_recipe_n ? pc_recipe_names[i] : NULL; }

const char *pc_recipe_text(const char *name) {
    for (int i = 0; i < pc_recipe_n; i++)
        if (strcmp(pc_recipe_names[i], name) == 0) return pc_recipe_texts[i];
    return NULL;
}

const char *pc_recipe_summary(const char *name) {
    static char buf[256];
    const char *t = pc_recipe_text(name);
    buf[0] = 0;
    if (!t || t[0] != '#') return buf;
    const char *p = t + 1, *end = strchr(t, '\n');
    if (!end) end = t + strlen(t);
    size_t n = strlen(name);
    while (p < end && *p == ' ') p++;
    if ((size_t)(end - p) > n + 1 && strncmp(p, name, n) == 0 && p[n] == ':') p += n + 1;
    while (p < end && *p == ' ') p++;
    snprintf(buf, sizeof buf, "%.*s", (int)(end - p), p);
    return buf;
}

#define MAX_RECIPE_WORDS 256

/* Append the whitespace-separated words of the recipe's non-comment lines. */
static pc_status push_recipe_words(const char *text, char **out, int *n, int max) {
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        const char *p = line;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (p < end && *p != '#') {
            while (p < end) {
                const char *w = p;
                while (p < end && *p != ' ' && *p != '\t' && *p != '\r') p++;
                if (p > w) {
                    if (*n == max)
                        return pc_fail(PC_ERR_USAGE, "--recipe: more than %d words",
                                       MAX_RECIPE_WORDS);
                    if (!(out[(*n)++] = strndup(w, (size_t)(p - w))))
                        return pc_fail_nomem();
                }
                while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
            }
        }
        line = *end ? end + 1 : end;
    }
    return PC_OK;
}

/* A recipe line "# requires --FLAG: why" fails the expansion unless argv gives --FLAG. */
static pc_status check_required(const char *name, const char *text, int argc, char **argv) {
    static const char key[] = "# requires ";
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        if (strncmp(line, key, sizeof key - 1) == 0) {
            const char *flag = line + sizeof key - 1, *colon = strchr(flag, ':');
            if (!colon || colon > end) colon = end;
            size_t n = (size_t)(colon - flag);
            int given = 0;
            for (int i = 1; i < argc && !given; i++)
                given = strncmp(argv[i], flag, n) == 0 && (argv[i][n] == 0 || argv[i][n] == '=');
            if (!given) {
                const char *why = colon < end ? colon + 1 : colon;
                while (why < end && *why == ' ') why++;
                return pc_fail(PC_ERR_USAGE, "--recipe %s needs %.*s: %.*s", name, (int)n, flag,
                               (int)(end - why), why);
            }
        }
        line = *end ? end + 1 : end;
    }
    return PC_OK;
}

pc_status pc_recipe_expand(int argc, char **argv, int *argc_out, char ***argv_out,
                           const char **name_out) {
    const char *name = NULL;
    int skip = -1; /* argv indices of the --recipe flag and its value */
    for (int i = 1; i < argc && !name; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strncmp(argv[i], "--recipe=", 9) == 0) name = argv[i] + 9, skip = i;
        else if (strcmp(argv[i], "--recipe") == 0) {
            if (i + 1 >= argc)
                return pc_fail(PC_ERR_USAGE, "--recipe: expected a name (see parcnn recipes)");
            name = argv[i + 1], skip = i;
        }
    }
    const char *text = name ? pc_recipe_text(name) : NULL;
    if (name && !text)
        return pc_fail(PC_ERR_USAGE, "--recipe %s: no such recipe (see parcnn recipes)", name);
    pc_status s = pc_recipe_expand_text(name, text, skip, argc, argv, argc_out, argv_out);
    if (s == PC_OK) *name_out = name;
    return s;
}

pc_status pc_recipe_expand_text(const char *name, const char *text, int skip, int argc,
                                char **argv, int *argc_out, char ***argv_out) {
    const int max = argc + MAX_RECIPE_WORDS; /* argv[0], the recipe's words, argv[1..] */
    char **out = calloc((size_t)max + 1, sizeof *out);
    if (!out) return pc_fail_nomem();
    int n = 0;
    pc_status s = PC_OK;
    if (text) s = check_required(name, text, argc, argv);
    if (s == PC_OK && !(out[n++] = strdup(argv[0]))) s = pc_fail_nomem();
    if (s == PC_OK && text) s = push_recipe_words(text, out, &n, 1 + MAX_RECIPE_WORDS);
    for (int i = 1; s == PC_OK && i < argc; i++) {
        if (i == skip) {
            if (strcmp(argv[i], "--recipe") == 0) i++;
            continue;
        }
        if (!(out[n++] = strdup(argv[i]))) s = pc_fail_nomem();
    }
    if (s != PC_OK) {
        pc_recipe_argv_free(n, out);
        return s;
    }
    *argc_out = n;
    *argv_out = out;
    return PC_OK;
}

void pc_recipe_argv_free(int argc, char **argv) {
    if (!argv) return;
    for (int i = 0; i < argc; i++) free(argv[i]);
    free(argv);
}
