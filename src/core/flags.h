/* Flag tables: each command-line flag described once (name, type, destination field,
 * range, default, help), so that the option parser, the --help text and the defaults of
 * an options struct are all generated from one table and cannot drift apart.
 *
 * A table is an array of pc_flag ending with an all-zero entry. pc_flags_defaults fills
 * an options struct from the table's defaults; pc_flag_set parses one argument into
 * its field. The command line (tools/cli.c) builds getopt_long's table and the help
 * text from the same entries. */
#ifndef PC_FLAGS_H
#define PC_FLAGS_H

#include <stddef.h>

#include "core/common.h"

typedef enum {
    PC_FLAG_END = 0, /* the table's terminating entry */
    PC_FLAG_SECTION, /* no flag: a heading line in the help (help holds its text) */
    PC_FLAG_SWITCH,  /* no argument: the int field takes the value lo (1 for --resume) */
    PC_FLAG_INT,     /* int field, an integer in [lo, hi] */
    PC_FLAG_INT64,   /* int64_t field, an integer in [lo, hi] */
    PC_FLAG_UINT64,  /* uint64_t field, an integer in [lo, hi] */
    PC_FLAG_FLOAT,   /* float field, a number in [lo, hi] (open: in (lo, hi), see `expect`) */
    PC_FLAG_DOUBLE,  /* double field, parsed as a float in [lo, hi] */
    PC_FLAG_STRING,  /* const char * field: the argument itself (not copied) */
    PC_FLAG_CHOICE,  /* int-sized enum field: the value of one of `choices`' names */
    PC_FLAG_PARSED   /* the field is filled by `parse` */
} pc_flag_type;

/* How a bad argument is reported; each kind keeps the wording the command line has
 * always used for it. */
typedef enum {
    PC_FLAG_OK = 0,
    PC_FLAG_ERR_RANGE, /* "parcnn CMD: --flag X: expected an integer in [lo, hi]" */
    PC_FLAG_ERR_USAGE, /* "parcnn CMD: --flag X: expected ... (see 'parcnn CMD --help')" */
    PC_FLAG_ERR_FAIL   /* "parcnn: error: <the parser's message>" */
} pc_flag_result;

typedef struct {
    const char *name;
    int value;
} pc_flag_choice;

typedef struct pc_flag {
    const char *name;    /* the long option, without "--" */
    pc_flag_type type;
    size_t offset;       /* of the destination field in the options struct */
    const char *metavar; /* the argument's name in the help: N, X, NAME ... */
    double lo, hi;       /* range of INT, INT64, UINT64, FLOAT, DOUBLE */
    /* The default, written as the flag's argument and parsed by pc_flags_defaults
     * (range not checked: a default outside the range stands for a value the flag cannot
     * name, e.g. "-1" for "derived from other flags"). NULL: the field stays zero. */
    const char *def;
    /* The default as the help states it when `def` is not what a user would write
     * (e.g. "off", "the core count"); NULL: the help shows `def`. */
    const char *def_text;
    const char *help;    /* one paragraph; the help printer wraps it */
    const pc_flag_choice *choices; /* CHOICE: the names, ending with {NULL, 0} */
    /* CHOICE, or FLOAT with open bounds: the text after "expected " when the argument
     * is not a choice or lies on a bound. */
    const char *expect;
    int open;            /* FLOAT: lo and hi themselves are refused */
    int required;        /* the command fails without this flag ("--NAME METAVAR is required") */
    /* PARSED: fill `field` from `arg`; on error set pc_fail's message and return how the
     * error is to be reported. */
    pc_flag_result (*parse)(const char *arg, void *field);
} pc_flag;

/* Parse `arg` (NULL for a SWITCH) into f's field of `opts`; the message of an error is
 * pc_last_error(). */
pc_flag_result pc_flag_set(const pc_flag *f, void *opts, const char *arg);

/* Set every field of the table that has a default (an entry whose `def` does not parse
 * is a programming error: PC_ERR_INTERNAL names it). Fields without one are left as
 * they are. */
pc_status pc_flags_defaults(const pc_flag *table, void *opts);

/* The entry named `name` (without "--"), or NULL. */
const pc_flag *pc_flag_find(const pc_flag *table, const char *name);

#endif
