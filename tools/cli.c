/* Command-line helpers shared by the subcommands in tools/parcnn.c and tools/bench.c. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "comm/comm.h"
#include "train/memory.h"

int usage_error(const char *cmd, const char *fmt, const char *arg) {
    fprintf(stderr, "parcnn %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'parcnn %s --help')\n", cmd);
    return 2;
}

int parse_long(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) {
        fprintf(stderr, "parcnn %s: %s %s: expected an integer in [%ld, %ld]\n", cmd, flag, s,
                lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int parse_float(const char *cmd, const char *flag, const char *s, double lo, double hi,
                float *out) {
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "parcnn %s: %s %s: expected a number in [%g, %g]\n", cmd, flag, s, lo,
                hi);
        return -1;
    }
    *out = (float)v;
    return 0;
}

int cli_fail(pc_status st) {
    int code = st == PC_ERR_USAGE ? 2 : 1;
    pc_comm *comm = pc_comm_world();
    int rank = pc_comm_rank(comm);
    int shared = strcmp(pc_last_error(), PC_SHARED_ERROR) == 0;
    char note[128] = "";
    if (st == PC_ERR_NOMEM && !strstr(pc_last_error(), "limit is"))
        pc_memory_limit_note(note, sizeof note);
    if (rank == 0)
        fprintf(stderr, "parcnn: error: %s%s\n", pc_last_error(), note);
    else if (!shared)
        fprintf(stderr, "[rank %d] parcnn: error: %s%s\n", rank, pc_last_error(), note);
    if (pc_comm_size(comm) > 1) {
        /* an error every rank hit at once is reported by rank 0 alone: the others give
         * it a moment to do so */
        if (rank != 0 && shared) sleep(2);
        pc_comm_abort(comm, code);
    }
    return code;
}

enum { HELP_INDENT = 23, HELP_WIDTH = 92 };
#define NBSP '\x01' /* a space the wrapping keeps: "(default: X)" stays on one line */

/* Print `text` from column `col`, wrapped at HELP_WIDTH, continuation lines at HELP_INDENT. */
static void print_wrapped(const char *text, int col, FILE *out) {
    int first = 1;
    for (const char *p = text; *p;) {
        while (*p == ' ') p++;
        const char *w = p;
        while (*p && *p != ' ') p++;
        int len = (int)(p - w);
        if (len == 0) break;
        if (!first && col + 1 + len > HELP_WIDTH) {
            fprintf(out, "\n%*s", HELP_INDENT, "");
            col = HELP_INDENT;
        } else if (!first) {
            fputc(' ', out);
            col++;
        }
        for (const char *c = w; c < p; c++) fputc(*c == NBSP ? ' ' : *c, out);
        col += len;
        first = 0;
    }
    fputc('\n', out);
}

static void print_flag(const pc_flag *f, FILE *out) {
    if (f->type == PC_FLAG_SECTION) {
        fprintf(out, "%s\n", f->help);
        return;
    }
    char left[64];
    int n = snprintf(left, sizeof left, "  --%s%s%s", f->name, f->metavar ? " " : "",
                     f->metavar ? f->metavar : "");
    fputs(left, out);
    int col = n + 2 <= HELP_INDENT ? HELP_INDENT : n + 2;
    fprintf(out, "%*s", col - n, "");
    const char *def = f->def_text ? f->def_text : f->def ? f->def : "off";
    char text[2048];
    if (f->required)
        snprintf(text, sizeof text, "%s (required)", f->help);
    else
        snprintf(text, sizeof text, "%s (default:%c%s)", f->help, NBSP, def);
    print_wrapped(text, col, out);
}

void cli_print_flags(const pc_flag *table, FILE *out) {
    for (const pc_flag *f = table; f->type != PC_FLAG_END; f++) print_flag(f, out);
}

/* getopt_long's table for `table`: option i has the value 256 + its entry's index; --help
 * comes last with the value 1. */
static struct option *build_options(const pc_flag *table) {
    int n = 0;
    while (table[n].type != PC_FLAG_END) n++;
    struct option *opts = calloc((size_t)n + 2, sizeof *opts);
    if (!opts) return NULL;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (table[i].type == PC_FLAG_SECTION) continue;
        int arg = table[i].type == PC_FLAG_SWITCH ? no_argument : required_argument;
        opts[k++] = (struct option){table[i].name, arg, NULL, 256 + i};
    }
    opts[k] = (struct option){"help", no_argument, NULL, 1};
    return opts;
}

static int report_bad_flag(const char *cmd, pc_flag_result r) {
    if (r == PC_FLAG_ERR_RANGE) {
        fprintf(stderr, "parcnn %s: %s\n", cmd, pc_last_error());
        return 2;
    }
    if (r == PC_FLAG_ERR_USAGE) return usage_error(cmd, "%s", pc_last_error());
    return cli_fail(PC_ERR_USAGE);
}

int cli_parse_flags(const char *cmd, const pc_flag *table, void *opts, const char *usage,
                    const char *epilogue, int argc, char **argv) {
    return cli_parse_flags_owned(cmd, table, opts, usage, epilogue, argc, argv, NULL);
}

int cli_parse_flags_owned(const char *cmd, const pc_flag *table, void *opts, const char *usage,
                          const char *epilogue, int argc, char **argv, int *owner) {
    for (int k = 0; owner && k < argc; k++) owner[k] = -1;
    int n = 0;
    while (table[n].type != PC_FLAG_END) n++;
    struct option *options = build_options(table);
    char *given = calloc((size_t)n + 1, 1);
    int o, rc = 0;
    if (!options || !given) rc = usage_error(cmd, "%s", "out of memory");
    opterr = 0;
    int before = optind;
    while (rc == 0 && (o = getopt_long(argc, argv, "", options, NULL)) != -1) {
        for (int k = before; owner && o >= 256 && k < optind; k++) owner[k] = o - 256;
        before = optind;
        if (o == 1) {
            fputs(usage, stdout);
            cli_print_flags(table, stdout);
            if (epilogue) fputs(epilogue, stdout);
            rc = -1;
        } else if (o >= 256) {
            pc_flag_result r = pc_flag_set(&table[o - 256], opts, optarg);
            if (r != PC_FLAG_OK) rc = report_bad_flag(cmd, r);
            given[o - 256] = 1;
        } else {
            rc = usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    for (int i = 0; rc == 0 && i < n; i++) {
        char flag[128];
        snprintf(flag, sizeof flag, "--%s %s is required", table[i].name, table[i].metavar);
        if (table[i].required && !given[i]) rc = usage_error(cmd, "%s", flag);
    }
    free(given);
    free(options);
    return rc;
}

extern char **environ;

pc_status cli_spawn_logged(const char *const *argv, const char *log, const char *hint,
                           int *status) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return pc_fail(PC_ERR_IO, "%s: cannot write: %s", log, strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    pid_t pid;
    int err = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
    if (err)
        return pc_fail(PC_ERR_USAGE, "cannot start %s: %s%s%s%s", argv[0], strerror(err),
                       hint ? " (" : "", hint ? hint : "", hint ? ")" : "");
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR) return pc_fail(PC_ERR_INTERNAL, "waitpid: %s", strerror(errno));
    return PC_OK;
}
