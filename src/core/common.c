#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char last_error[1024];

pc_status pc_fail(pc_status code, const char *fmt, ...) {
    char msg[sizeof last_error]; /* the arguments may include pc_last_error() itself */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(last_error, msg, sizeof msg);
    return code;
}

pc_status pc_fail_nomem(void) { return pc_fail(PC_ERR_NOMEM, "out of memory"); }

const char *pc_last_error(void) { return last_error[0] ? last_error : "unknown error"; }

void pc_error_slot_init(pc_error_slot *e) {
    pthread_mutex_init(&e->mu, NULL);
    e->status = PC_OK;
    e->msg[0] = 0;
}

void pc_error_slot_destroy(pc_error_slot *e) { pthread_mutex_destroy(&e->mu); }

void pc_error_slot_set(pc_error_slot *e, pc_status s) {
    if (s == PC_OK) return;
    pthread_mutex_lock(&e->mu);
    if (e->status == PC_OK) {
        e->status = s;
        snprintf(e->msg, sizeof e->msg, "%s", pc_last_error());
    }
    pthread_mutex_unlock(&e->mu);
}

pc_status pc_error_slot_take(pc_error_slot *e) {
    pthread_mutex_lock(&e->mu);
    pc_status s = e->status;
    if (s != PC_OK) pc_fail(s, "%s", e->msg);
    e->status = PC_OK;
    pthread_mutex_unlock(&e->mu);
    return s;
}

void *pc_alloc(size_t bytes) {
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded == 0) rounded = 64;
    void *p = aligned_alloc(64, rounded);
    if (!p) {
        pc_fail(PC_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    memset(p, 0, rounded);
    return p;
}

void pc_free(void *p) { free(p); }

double pc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

pc_status pc_mkdirs(const char *dir, const char *what) {
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p) continue;
        char saved = *p;
        *p = 0;
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return pc_fail(PC_ERR_IO, "%s %s: cannot create directory %s: %s", what, dir, path,
                           strerror(errno));
        *p = saved;
        if (!saved) break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return pc_fail(PC_ERR_IO, "%s %s: not a directory", what, dir);
    return PC_OK;
}

char *pc_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    size_t k = 0;
    if (a) {
        memcpy(p, dir, a);
        k = a;
        if (dir[a - 1] != '/') p[k++] = '/';
    }
    memcpy(p + k, name, b + 1);
    return p;
}

pc_status pc_parse_choice(const char *flag, const char *name, const char *const *names, int n,
                          int *out) {
    for (int k = 0; k < n; k++)
        if (strcmp(name, names[k]) == 0) {
            *out = k;
            return PC_OK;
        }
    char expected[256] = "";
    for (int k = 0; k < n; k++) {
        size_t len = strlen(expected);
        snprintf(expected + len, sizeof expected - len, "%s%s", k == 0 ? "" : k == n - 1 ? " or " : ", ",
                 names[k]);
    }
    return pc_fail(PC_ERR_USAGE, "%s %s: expected %s", flag, name, expected);
}

static const char *file_kind(mode_t mode) {
    if (S_ISDIR(mode)) return " (a directory)";
    if (S_ISFIFO(mode)) return " (a named pipe)";
    if (S_ISSOCK(mode)) return " (a socket)";
    if (S_ISCHR(mode) || S_ISBLK(mode)) return " (a device)";
    return "";
}

int pc_open_regular(const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        pc_fail(PC_ERR_DATA, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        pc_fail(PC_ERR_DATA, "%s: cannot stat: %s", path, strerror(e));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        pc_fail(PC_ERR_DATA, "%s: not a regular file%s", path, file_kind(st.st_mode));
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags == -1 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == -1) {
        int e = errno;
        close(fd);
        pc_fail(PC_ERR_DATA, "%s: cannot open: %s", path, strerror(e));
        return -1;
    }
    return fd;
}

FILE *pc_fopen_regular(const char *path) {
    int fd = pc_open_regular(path);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        pc_fail(PC_ERR_DATA, "%s: cannot open: %s", path, strerror(e));
    }
    return f;
}

int pc_utf8_sequence(const unsigned char *s) {
    unsigned c = s[0];
    if (c < 0x80) return c ? 1 : 0;
    int n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!n) return 0;
    for (int k = 1; k < n; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    /* the second byte's range rules out overlong forms, surrogates and > U+10FFFF */
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return n;
}

int pc_utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = pc_utf8_sequence(p);
        if (!n) return 0;
        p += n;
    }
    return 1;
}

char *pc_utf8_escape(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    char *out = malloc(4 * strlen(s) + 1), *o = out;
    if (!out) return NULL;
    while (*p) {
        int n = pc_utf8_sequence(p);
        if (n) {
            memcpy(o, p, (size_t)n);
            o += n;
            p += n;
        } else {
            o += sprintf(o, "\\x%02x", *p++);
        }
    }
    *o = 0;
    return out;
}

pc_status pc_write_file_atomic(const char *path, const void *data, size_t len) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return pc_fail(PC_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    const char *p = data;
    size_t left = len;
    int err = 0;
    while (left > 0 && !err) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) err = errno;
        else p += w, left -= (size_t)w;
    }
    if (!err && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        return pc_fail(PC_ERR_IO, "%s: cannot write: %s", path, strerror(err));
    }
    return PC_OK;
}

/* The PID of a temporary's name "NAME.tmp.PID" or "NAME.tmp.PID.N", or 0. */
static long temporary_pid(const char *name) {
    const char *t = strstr(name, ".tmp.");
    if (!t) return 0;
    char *end;
    long pid = strtol(t + 5, &end, 10);
    if (pid <= 0 || (*end && *end != '.')) return 0;
    if (*end == '.') {
        for (const char *q = end + 1; *q; q++)
            if (*q < '0' || *q > '9') return 0;
    }
    return pid;
}

int pc_remove_stale_temporaries(const char *dir, double min_age) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    time_t now = time(NULL);
    while ((e = readdir(d)) != NULL) {
        long pid = temporary_pid(e->d_name);
        if (!pid || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char *path = pc_path_join(dir, e->d_name);
        struct stat st;
        if (path && lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
            difftime(now, st.st_mtime) >= min_age && unlink(path) == 0)
            removed++;
        free(path);
    }
    closedir(d);
    return removed;
}
