/* Command-line helpers shared by the subcommands in tools/parcnn.c and tools/bench.c:
 * one line on stderr naming the command and the flag, and the caller exits with 2. */
#ifndef PC_CLI_H
#define PC_CLI_H

#include <stdio.h>

#include "core/common.h"
#include "core/flags.h"

/* "parcnn CMD: <fmt with arg> (see 'parcnn CMD --help')"; returns 2. */
int usage_error(const char *cmd, const char *fmt, const char *arg);
/* Strict number parsing: the whole argument must be a number within [lo, hi]; otherwise
 * "parcnn CMD: FLAG S: expected an integer in [lo, hi]" and -1. */
int parse_long(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out);
int parse_float(const char *cmd, const char *flag, const char *s, double lo, double hi,
                float *out);

/* Report pc_last_error() and return the exit status (1 data or I/O, 2 usage). Under MPI,
 * the other ranks may be waiting in a collective, so the whole job stops. */
int cli_fail(pc_status st);

/* Parse argv's flags into opts by `table` (core/flags.h), with --help added: it prints
 * `usage`, the table's help (defaults from the table) and `epilogue` (may be NULL).
 * Returns 0 when every flag parsed (optind is then the first other argument), -1 after
 * --help, or the exit status of a bad flag after reporting it. */
int cli_parse_flags(const char *cmd, const pc_flag *table, void *opts, const char *usage,
                    const char *epilogue, int argc, char **argv);
/* cli_parse_flags, also telling which flag each argument belongs to: owner[k] (argc
 * entries) is the table index of the flag argv[k] names or is the value of, -1 for the
 * others (argv[0]; exact only when no argument other than flags was given, the callers'
 * case: getopt_long moves other arguments behind the flags). */
int cli_parse_flags_owned(const char *cmd, const pc_flag *table, void *opts, const char *usage,
                          const char *epilogue, int argc, char **argv, int *owner);
/* The flags' help: one entry per flag, its paragraph wrapped, its default last. */
void cli_print_flags(const pc_flag *table, FILE *out);

/* Start argv[0] (found on PATH) with stdin from /dev/null and stdout and stderr to log,
 * and wait for it; its exit status in *status. A program that cannot start is a usage
 * error, with `hint` (may be NULL) in parentheses. */
pc_status cli_spawn_logged(const char *const *argv, const char *log, const char *hint,
                           int *status);

/* parcnn bench predict (tools/bench_predict.c) and bench scaling (tools/bench_scaling.c). */
int cmd_bench_predict(int argc, char **argv);
int cmd_bench_scaling(int argc, char **argv);

#endif
