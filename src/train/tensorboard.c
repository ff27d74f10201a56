/* TensorBoard event files. See tensorboard.h. */
#include "train/tensorboard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

struct pc_tb_writer {
    FILE *f;
    char path[4200];
};

uint32_t pc_crc32c(const void *data, size_t n) {
    const uint8_t *p = data;
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
    }
    return crc ^ 0xffffffffu;
}

uint32_t pc_crc32c_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

/* A growable protocol-buffer encoding. */
typedef struct {
    uint8_t *data;
    size_t n, cap;
    int failed;
} pb;

static void put(pb *b, const void *src, size_t n) {
    if (b->failed || n == 0) return;
    if (b->n + n > b->cap) {
        size_t cap = (b->n + n) * 2 + 64;
        uint8_t *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->n, src, n);
    b->n += n;
}

static void varint(pb *b, uint64_t v) {
    uint8_t out[10];
    int n = 0;
    do {
        out[n++] = (uint8_t)((v & 127) | (v > 127 ? 128 : 0));
        v >>= 7;
    } while (v);
    put(b, out, n);
}

/* Field keys: (field number << 3) | wire type (0 varint, 1 64-bit, 2 length, 5 32-bit). */
static void key(pb *b, int field, int wire) { varint(b, (uint64_t)(field << 3 | wire)); }

static void bytes_field(pb *b, int field, const void *data, size_t n) {
    key(b, field, 2);
    varint(b, n);
    put(b, data, n);
}

static void le(pb *b, uint64_t v, int bytes) { /* protobuf and TFRecord are little-endian */
    uint8_t out[8];
    for (int i = 0; i < bytes; i++) out[i] = (uint8_t)(v >> (8 * i));
    put(b, out, bytes);
}

static double wall_time(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* Event { double wall_time = 1; int64 step = 2; string file_version = 3 or Summary summary = 5 } */
static void event_head(pb *e, int64_t step) {
    double t = wall_time();
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    key(e, 1, 1);
    le(e, bits, 8);
    key(e, 2, 0);
    varint(e, (uint64_t)step);
}

/* One TFRecord holding the event. */
static pc_status write_record(pc_tb_writer *w, const pb *event) {
    if (event->failed) return pc_fail_nomem();
    uint8_t head[12];
    uint64_t len = event->n;
    for (int i = 0; i < 8; i++) head[i] = (uint8_t)(len >> (8 * i));
    uint32_t c = pc_crc32c_mask(pc_crc32c(head, 8)), d = pc_crc32c_mask(pc_crc32c(event->data, event->n));
    for (int i = 0; i < 4; i++) head[8 + i] = (uint8_t)(c >> (8 * i));
    uint8_t tail[4];
    for (int i = 0; i < 4; i++) tail[i] = (uint8_t)(d >> (8 * i));
    if (fwrite(head, 1, 12, w->f) != 12 || fwrite(event->data, 1, event->n, w->f) != event->n ||
        fwrite(tail, 1, 4, w->f) != 4 || fflush(w->f) != 0)
        return pc_fail(PC_ERR_IO, "%s: cannot write: %s", w->path, strerror(errno));
    return PC_OK;
}

pc_status pc_tb_open(const char *dir, pc_tb_writer **out) {
    *out = NULL;
    PC_TRY(pc_mkdirs(dir, "--tensorboard"));
    pc_tb_writer *w = calloc(1, sizeof *w);
    if (!w) return pc_fail_nomem();
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%lld.%s.%d", dir,
             (long long)wall_time(), host, (int)getpid());
    w->f = fopen(w->path, "wb");
    if (!w->f) {
        pc_status st = pc_fail(PC_ERR_IO, "%s: cannot write: %s", w->path, strerror(errno));
        free(w);
        return st;
    }
    pb e = {0};
    event_head(&e, 0);
    bytes_field(&e, 3, "brain.Event:2", 13);
    pc_status st = write_record(w, &e);
    free(e.data);
    if (st != PC_OK) {
        pc_tb_close(w);
        return st;
    }
    *out = w;
    return PC_OK;
}

/* Summary { repeated Value value = 1 }, Value { string tag = 1; float simple_value = 2 } */
pc_status pc_tb_scalars(pc_tb_writer *w, int64_t step, const char *const *tags,
                        const float *values, int n) {
    pb summary = {0}, value = {0}, e = {0};
    for (int i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &values[i], sizeof bits);
        value.n = 0;
        bytes_field(&value, 1, tags[i], strlen(tags[i]));
        key(&value, 2, 5);
        le(&value, bits, 4);
        bytes_field(&summary, 1, value.data, value.n);
        summary.failed |= value.failed;
    }
    event_head(&e, step);
    bytes_field(&e, 5, summary.data, summary.n);
    e.failed |= summary.failed;
    pc_status st = write_record(w, &e);
    free(summary.data);
    free(value.data);
    free(e.data);
    return st;
}

void pc_tb_close(pc_tb_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    free(w);
}
