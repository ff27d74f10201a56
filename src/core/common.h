/* Shared helpers: status codes, the thread-local error message, checked allocation.
 * The library never exits: every fallible function returns a pc_status and leaves
 * one human-readable line in pc_last_error(). */
#ifndef PC_COMMON_H
#define PC_COMMON_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    PC_OK = 0,
    PC_ERR_DATA = 1,   /* bad or missing input file, corrupt data */
    PC_ERR_USAGE = 2,  /* bad flag, bad model description, bad argument */
    PC_ERR_IO = 3,     /* could not write a file */
    PC_ERR_NOMEM = 4,
    PC_ERR_INTERNAL = 5,
    PC_ERR_INTERRUPTED = 6 /* stopped on request (a signal) after writing a checkpoint */
} pc_status;

/* The message of an error that every rank hits at once and rank 0 reports: other
 * ranks stay quiet about it. */
#define PC_SHARED_ERROR "(reported by rank 0)"

/* Record an error message (printf-style) for the calling thread; returns `code`
 * so that callers can write `return pc_fail(PC_ERR_DATA, "...")`. */
pc_status pc_fail(pc_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* pc_fail(PC_ERR_NOMEM, "out of memory"): a failed allocation with nothing to add. */
pc_status pc_fail_nomem(void);
const char *pc_last_error(void);

/* The first error among threads that cannot return a status (pool jobs): a thread records
 * its error (the message is thread-local) and the caller raises it afterwards. */
typedef struct {
    pthread_mutex_t mu;
    pc_status status;
    char msg[1024];
} pc_error_slot;
void pc_error_slot_init(pc_error_slot *e);
void pc_error_slot_destroy(pc_error_slot *e);
/* Record `s` with the calling thread's pc_last_error(), unless an error is recorded. */
void pc_error_slot_set(pc_error_slot *e, pc_status s);
/* The recorded status (its message becomes the caller's pc_last_error); clears the slot. */
pc_status pc_error_slot_take(pc_error_slot *e);

/* Allocation: 64-byte aligned, zero-filled. Returns NULL (and sets the error)
 * on failure. Free with pc_free. */
void *pc_alloc(size_t bytes);
void pc_free(void *p);

#define PC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PC_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Propagate a non-OK status. */
#define PC_TRY(expr)                      \
    do {                                  \
        pc_status pc_try_s_ = (expr);     \
        if (pc_try_s_ != PC_OK) return pc_try_s_; \
    } while (0)

double pc_now(void); /* monotonic seconds */

/* The index of `name` among names[0..n) in *out, or a usage error
 * "FLAG NAME: expected a, b or c". */
pc_status pc_parse_choice(const char *flag, const char *name, const char *const *names, int n,
                          int *out);

/* dir + "/" + name (no doubled slash; an empty dir gives name), malloc'ed; NULL when
 * out of memory. */
char *pc_path_join(const char *dir, const char *name);

/* Open `path` for reading only when it is a regular file: opened non-blocking (a FIFO
 * or device opens at once instead of waiting for a writer), checked with fstat on the
 * descriptor (no race with a rename), then switched back to blocking reads. Returns the
 * descriptor, or -1 with a PC_ERR_DATA error "PATH: cannot open: ..." or "PATH: not a
 * regular file (a named pipe)". */
int pc_open_regular(const char *path);
/* The same as a stdio stream opened "rb" (NULL on error). */
FILE *pc_fopen_regular(const char *path);

/* The length of the valid UTF-8 sequence at s (1-4 bytes; overlong forms, surrogates and
 * code points above U+10FFFF are invalid), or 0 when s does not start one. */
int pc_utf8_sequence(const unsigned char *s);
int pc_utf8_valid(const char *s);
/* A malloc'ed copy of s in which every byte that is not part of valid UTF-8 is written as
 * the four characters \xNN (Python's "backslashreplace"); NULL when out of memory. */
char *pc_utf8_escape(const char *s);

/* Replace `path` by `len` bytes atomically: written to "<path>.tmp.<pid>", fsync'ed and
 * renamed over path, so path holds either the old or the new bytes, never a mix or none
 * (a full disk leaves the old file as it was). Errors name path (PC_ERR_IO). */
pc_status pc_write_file_atomic(const char *path, const void *data, size_t len);

/* Remove the temporaries "NAME.tmp.PID[.N]" in dir that a killed process left: those whose
 * PID is not running here, last changed at least min_age seconds ago (a folder shared
 * between machines sees other hosts' PIDs as dead). Returns how many were removed. */
int pc_remove_stale_temporaries(const char *dir, double min_age);

/* mkdir -p; errors name `what` (e.g. the flag that gave the path) and the path. */
pc_status pc_mkdirs(const char *dir, const char *what);

#endif
