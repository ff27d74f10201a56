/* Training recipes: named presets of `parcnn train` flags (model, data, optimizer,
 * schedule, augmentation, ...), shipped as recipes/NAME.recipe and embedded in the
 * library. A recipe file holds comment lines ("# ..."; the first one is its summary) and
 * lines of flags exactly as on the command line ("--epochs 8"); a comment line
 * "# requires --FLAG: why" makes --FLAG mandatory on the command line (e.g. the data
 * folder of a recipe for a dataset that is not embedded). `parcnn train --recipe NAME
 * [flags]` reads the recipe's flags first, so flags given on the command line win. */
#ifndef PC_RECIPE_H
#define PC_RECIPE_H

#include "core/common.h"

int pc_recipe_count(void);
const char *pc_recipe_name(int i);          /* NULL out of range */
const char *pc_recipe_text(const char *name); /* NULL when there is no such recipe */
/* The first comment line without "# NAME: " (a static buffer), "" if none. */
const char *pc_recipe_summary(const char *name);

/* The argument vector of `train --recipe NAME ...`: argv[0], the recipe's flags, then the
 * remaining arguments without "--recipe NAME" / "--recipe=NAME". *name_out: the recipe
 * (NULL when argv names none: *out is then a copy of argv). Free with pc_recipe_argv_free. */
pc_status pc_recipe_expand(int argc, char **argv, int *argc_out, char ***argv_out,
                           const char **name_out);
void pc_recipe_argv_free(int argc, char **argv);
/* The expansion with the recipe's text given (text NULL: none), argv[skip] being the
 * --recipe flag (-1: none); for pc_recipe_expand, tests and fuzzing. */
pc_status pc_recipe_expand_text(const char *name, const char *text, int skip, int argc,
                                char **argv, int *argc_out, char ***argv_out);

#endif
