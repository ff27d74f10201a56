/* Command-line helpers shared by the subcommands in tools/parcnn.c and tools/bench.c:
 * one line on stderr naming the command and the flag, and the caller exits with 2. */
#ifndef PC_CLI_H
#define PC_CLI_H

/* "parcnn CMD: <fmt with arg> (see 'parcnn CMD --help')"; returns 2. */
int usage_error(const char *cmd, const char *fmt, const char *arg);
/* Strict number parsing: the whole argument must be a number within [lo, hi]; otherwise
 * "parcnn CMD: FLAG S: expected an integer in [lo, hi]" and -1. */
int parse_long(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out);
int parse_float(const char *cmd, const char *flag, const char *s, double lo, double hi,
                float *out);

#endif
