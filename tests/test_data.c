/* Dataset loaders: IDX (plain and gzip), CIFAR binary, dataset specs, stats/gather,
 * and rejection of malformed files with a message naming the file. */
#define _GNU_SOURCE
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "testfs.h"
#include "data/dataset.h"


static void write_bytes(const char *path, const void *data, size_t n, int gz) {
    if (gz) {
        gzFile g = gzopen(path, "wb");
        if (!g) {
            perror(path);
            exit(2);
        }
        if (n) gzwrite(g, data, (unsigned)n);
        gzclose(g);
    } else {
        write_file(path, data, n);
    }
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* An IDX images file: header (magic, n, h, w) then `keep` bytes of the n*h*w pixels
 * (keep < 0: all). pixel(i, y, x) = (i * 31 + y * 7 + x * 3) & 255. */
static void write_images(const char *path, int gz, uint32_t magic, uint32_t n, uint32_t h,
                         uint32_t w, long keep) {
    size_t bytes = (size_t)n * h * w;
    if (keep >= 0 && (size_t)keep < bytes) bytes = (size_t)keep;
    uint8_t *buf = malloc(16 + bytes + 1);
    put_be32(buf, magic);
    put_be32(buf + 4, n);
    put_be32(buf + 8, h);
    put_be32(buf + 12, w);
    for (size_t k = 0; k < bytes; k++) {
        size_t i = k / ((size_t)h * w), y = k / w % h, x = k % w;
        buf[16 + k] = (uint8_t)((i * 31 + y * 7 + x * 3) & 255);
    }
    write_bytes(path, buf, 16 + bytes, gz);
    free(buf);
}

static void write_labels(const char *path, int gz, uint32_t magic, uint32_t n,
                         const uint8_t *labels) {
    uint8_t *buf = malloc(8 + n);
    put_be32(buf, magic);
    put_be32(buf + 4, n);
    memcpy(buf + 8, labels, n);
    write_bytes(path, buf, 8 + n, gz);
    free(buf);
}

static int has(const char *msg, const char *needle) { return strstr(msg, needle) != NULL; }

static pc_dataset ds_; /* receives the (unexpected) result of a load that should fail */

#define CHECK_ERR(expr, code, needle)                                                        \
    do {                                                                                     \
        pc_status s_ = (expr);                                                               \
        CHECK(s_ == (code), "%s: status %d (want %d): %s", #expr, s_, code, pc_last_error()); \
        CHECK(has(pc_last_error(), needle), "message '%s' lacks '%s'", pc_last_error(),     \
              needle);                                                                       \
        if (s_ == PC_OK) pc_dataset_free(&ds_);                                              \
    } while (0)

static void test_idx_good(void) {
    const uint8_t lab[5] = {0, 4, 2, 1, 3};
    for (int gz = 0; gz < 2; gz++) {
        const char *img = tpath(gz ? "a-images.gz" : "a-images");
        const char *lb = tpath(gz ? "a-labels.gz" : "a-labels");
        write_images(img, gz, 0x803, 5, 3, 4, -1);
        write_labels(lb, gz, 0x801, 5, lab);
        pc_dataset d;
        pc_status s = pc_dataset_load_idx(img, lb, &d);
        CHECK(s == PC_OK, "load_idx gz=%d: %s", gz, pc_last_error());
        if (s != PC_OK) continue;
        CHECK(d.n == 5 && d.c == 1 && d.h == 3 && d.w == 4, "shape %lld %d %d %d", (long long)d.n,
              d.c, d.h, d.w);
        CHECK(d.classes == 5, "classes %d", d.classes);
        int ok = 1;
        for (int i = 0; i < 5; i++)
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 4; x++)
                    ok &= d.pixels[(i * 3 + y) * 4 + x] == ((i * 31 + y * 7 + x * 3) & 255);
        CHECK(ok, "pixels differ (gz=%d)", gz);
        ok = 1;
        for (int i = 0; i < 5; i++) ok &= d.labels[i] == lab[i];
        CHECK(ok, "labels differ");
        CHECK(d.class_names && strcmp(d.class_names[0], "0") == 0 &&
                  strcmp(d.class_names[4], "4") == 0,
              "class names");

        /* channel stats against a direct double computation */
        float mean, sd;
        pc_dataset_channel_stats(&d, &mean, &sd);
        double s1 = 0, s2 = 0;
        for (int k = 0; k < 60; k++) {
            double v = d.pixels[k] / 255.0;
            s1 += v;
            s2 += v * v;
        }
        double m = s1 / 60, sdev = sqrt(s2 / 60 - m * m);
        CHECK(fabs(mean - m) < 1e-6 && fabs(sd - sdev) < 1e-6, "stats %g %g vs %g %g", mean, sd, m,
              sdev);

        /* gather */
        int64_t idx[3] = {4, 0, 2};
        float out[3 * 12];
        int32_t lo[3];
        pc_dataset_gather(&d, idx, 3, &mean, &sd, out, lo);
        double err = 0;
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 12; k++) {
                double want = (d.pixels[idx[i] * 12 + k] / 255.0 - mean) / sd;
                err = fmax(err, fabs(out[i * 12 + k] - want));
            }
        CHECK(err < 1e-5, "gather error %g", err);
        CHECK(lo[0] == 3 && lo[1] == 0 && lo[2] == 2, "gather labels %d %d %d", lo[0], lo[1], lo[2]);
        pc_dataset_gather(&d, idx, 1, &mean, &sd, out, NULL); /* labels_out may be NULL */

        pc_dataset_truncate(&d, 0);
        CHECK(d.n == 5, "truncate 0 is a no-op");
        pc_dataset_truncate(&d, 9);
        CHECK(d.n == 5, "truncate beyond n is a no-op");
        pc_dataset_truncate(&d, 2);
        CHECK(d.n == 2 && d.labels[1] == 4, "truncate to 2");
        pc_dataset_free(&d);
        CHECK(d.pixels == NULL && d.labels == NULL && d.class_names == NULL && d.n == 0,
              "free zeroes the struct");
    }
}

static void test_idx_dir(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/idxdir", tmpdir);
    mkdir(dir, 0755);
    uint8_t tr[6] = {0, 1, 2, 6, 1, 0}, te[3] = {2, 0, 1};
    char p[700];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    write_images(p, 1, 0x803, 6, 2, 2, -1);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte.gz", dir);
    write_labels(p, 1, 0x801, 6, tr);
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", dir);
    write_images(p, 0, 0x803, 3, 2, 2, -1);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", dir);
    write_labels(p, 0, 0x801, 3, te);
    char spec[700];
    snprintf(spec, sizeof spec, "idx:%s", dir);
    pc_dataset a, b;
    pc_status s = pc_dataset_load(spec, 1, &a);
    CHECK(s == PC_OK, "idx:DIR train: %s", pc_last_error());
    pc_status s2 = pc_dataset_load(spec, 0, &b);
    CHECK(s2 == PC_OK, "idx:DIR test: %s", pc_last_error());
    if (s == PC_OK && s2 == PC_OK) {
        CHECK(a.n == 6 && b.n == 3 && a.h == 2 && b.w == 2, "idx:DIR sizes");
        CHECK(a.classes == 7 && b.classes == 7, "classes from both parts: %d %d", a.classes,
              b.classes);
        CHECK(strcmp(b.class_names[6], "6") == 0, "class names");
    }
    if (s == PC_OK) pc_dataset_free(&a);
    if (s2 == PC_OK) pc_dataset_free(&b);

    /* missing part */
    char empty[600];
    snprintf(empty, sizeof empty, "%s/emptydir", tmpdir);
    mkdir(empty, 0755);
    snprintf(spec, sizeof spec, "idx:%s", empty);
    CHECK_ERR(pc_dataset_load(spec, 1, &ds_), PC_ERR_DATA, "train-images-idx3-ubyte");
    CHECK_ERR(pc_dataset_load("xyz", 1, &ds_), PC_ERR_USAGE, "unknown dataset 'xyz'");
    CHECK_ERR(pc_dataset_load("imagenet:/tmp", 1, &ds_), PC_ERR_USAGE, "expected fashion-mnist");
    CHECK_ERR(pc_dataset_load("idx:", 1, &ds_), PC_ERR_USAGE, "idx:");
}

static void test_idx_bad(void) {
    const uint8_t lab[4] = {1, 2, 3, 0};
    const char *img = tpath("b-images"), *lb = tpath("b-labels");
    write_labels(lb, 0, 0x801, 4, lab);

    /* wrong magic */
    write_images(img, 0, 0x801, 4, 5, 5, -1);
    CHECK_ERR(pc_dataset_load_idx(img, lb, &ds_), PC_ERR_DATA, img);
    CHECK(has(pc_last_error(), "magic"), "%s", pc_last_error());
    CHECK_ERR(pc_dataset_load_idx(lb, lb, &ds_), PC_ERR_DATA, "magic");

    /* truncated pixel data, plain and gzip */
    write_images(img, 0, 0x803, 4, 5, 5, 90);
    CHECK_ERR(pc_dataset_load_idx(img, lb, &ds_), PC_ERR_DATA, img);
    CHECK(has(pc_last_error(), "truncated: expected 100 bytes of pixel data, got 90"), "%s",
          pc_last_error());
    const char *imgz = tpath("b-images.gz");
    write_images(imgz, 1, 0x803, 4, 5, 5, 77);
    CHECK_ERR(pc_dataset_load_idx(imgz, lb, &ds_), PC_ERR_DATA, imgz);
    CHECK(has(pc_last_error(), "truncated: expected 100 bytes of pixel data, got 77"), "%s",
          pc_last_error());
    /* header cut short */
    write_images(img, 0, 0x803, 4, 5, 5, 0);
    CHECK(truncate(img, 10) == 0, "truncate");
    CHECK_ERR(pc_dataset_load_idx(img, lb, &ds_), PC_ERR_DATA, img);
    CHECK(has(pc_last_error(), "truncated"), "%s", pc_last_error());

    /* count mismatch */
    write_images(img, 0, 0x803, 3, 5, 5, -1);
    CHECK_ERR(pc_dataset_load_idx(img, lb, &ds_), PC_ERR_DATA, lb);
    CHECK(has(pc_last_error(), img), "%s", pc_last_error());

    /* missing and zero-byte files */
    const char *missing = tpath("no-such-file");
    CHECK_ERR(pc_dataset_load_idx(missing, lb, &ds_), PC_ERR_DATA, missing);
    CHECK_ERR(pc_dataset_load_idx(img, missing, &ds_), PC_ERR_DATA, missing);
    const char *zero = tpath("zero-bytes");
    write_bytes(zero, "", 0, 0);
    CHECK_ERR(pc_dataset_load_idx(zero, lb, &ds_), PC_ERR_DATA, zero);
    write_images(img, 0, 0x803, 4, 5, 5, -1);
    CHECK_ERR(pc_dataset_load_idx(img, zero, &ds_), PC_ERR_DATA, zero);

    /* absurd dims: refused before allocating */
    write_images(img, 0, 0x803, 4, 70000, 5, 0);
    CHECK_ERR(pc_dataset_load_idx(img, lb, &ds_), PC_ERR_DATA, img);
    write_images(imgz, 1, 0x803, 0xffffffffu, 28, 28, 1000);
    CHECK_ERR(pc_dataset_load_idx(imgz, lb, &ds_), PC_ERR_DATA, imgz);
    write_images(img, 0, 0x803, 0, 28, 28, 0);
    CHECK_ERR(pc_dataset_load_idx(img, lb, &ds_), PC_ERR_DATA, img);

    /* corrupt gzip stream */
    uint8_t junk[64] = {0x1f, 0x8b, 8, 0};
    for (int i = 10; i < 64; i++) junk[i] = (uint8_t)(i * 37);
    const char *junkp = tpath("junk.gz");
    write_bytes(junkp, junk, sizeof junk, 0);
    CHECK_ERR(pc_dataset_load_idx(junkp, lb, &ds_), PC_ERR_DATA, junkp);

    /* fuzz: random corruption of a valid pair never crashes and always sets an error */
    const char *fi = tpath("fz-images"), *fl = tpath("fz-labels");
    srand(12345);
    int bad_status = 0;
    for (int it = 0; it < 300; it++) {
        int gz = it & 1;
        write_images(fi, 0, 0x803, 4, 3, 3, -1);
        write_labels(fl, 0, 0x801, 4, lab);
        const char *victim = (it & 2) ? fi : fl;
        FILE *f = fopen(victim, "r+b");
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        uint8_t buf[64];
        fseek(f, 0, SEEK_SET);
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        int flips = 1 + rand() % 3;
        for (int k = 0; k < flips; k++) buf[rand() % n] ^= (uint8_t)(1 + rand() % 255);
        long keep = (rand() % 4 == 0) ? rand() % (size + 1) : (long)n;
        write_bytes(victim, buf, (size_t)keep, gz);
        pc_dataset d;
        pc_status s = pc_dataset_load_idx(fi, fl, &d);
        if (s == PC_OK) pc_dataset_free(&d);
        else if (s != PC_ERR_DATA || !has(pc_last_error(), victim)) bad_status++;
    }
    CHECK(bad_status == 0, "%d fuzz cases gave an unexpected status/message", bad_status);
}

/* "fashion-mnist" and "mnist" under PARCNN_DATASETS_DIR: fixed 10 classes. */
static void test_named_specs(void) {
    char root[600], dir[700], p[800];
    snprintf(root, sizeof root, "%s/dsroot", tmpdir);
    mkdir(root, 0755);
    setenv("PARCNN_DATASETS_DIR", root, 1);
    CHECK_ERR(pc_dataset_load("fashion-mnist", 1, &ds_), PC_ERR_DATA,
              "apt-get install dataset-fashion-mnist");
    CHECK(has(pc_last_error(), "train-images-idx3-ubyte.gz not found"), "%s", pc_last_error());
    CHECK_ERR(pc_dataset_load("mnist", 0, &ds_), PC_ERR_DATA, "t10k-images-idx3-ubyte.gz");

    snprintf(dir, sizeof dir, "%s/fashion-mnist", root);
    mkdir(dir, 0755);
    uint8_t lab[4] = {0, 9, 3, 3};
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    write_images(p, 1, 0x803, 4, 28, 28, -1);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte.gz", dir);
    write_labels(p, 1, 0x801, 4, lab);
    pc_dataset d;
    pc_status s = pc_dataset_load("fashion-mnist", 1, &d);
    CHECK(s == PC_OK, "fashion-mnist from PARCNN_DATASETS_DIR: %s", pc_last_error());
    if (s == PC_OK) {
        CHECK(d.classes == 10 && strcmp(d.class_names[0], "T-shirt/top") == 0 &&
                  strcmp(d.class_names[9], "Ankle boot") == 0,
              "fashion class names");
        pc_dataset_free(&d);
    }
    /* label 10 is out of range for a 10-class dataset */
    lab[2] = 10;
    write_labels(p, 1, 0x801, 4, lab);
    CHECK_ERR(pc_dataset_load("fashion-mnist", 1, &ds_), PC_ERR_DATA, p);
    CHECK(has(pc_last_error(), "index 2"), "%s", pc_last_error());
    unsetenv("PARCNN_DATASETS_DIR");
}

static void write_cifar(const char *path, int cifar100, int n, int bad_label_at, long extra) {
    int rec = 3072 + (cifar100 ? 2 : 1);
    size_t size = (size_t)rec * n + (size_t)extra;
    uint8_t *buf = calloc(1, size ? size : 1);
    for (int i = 0; i < n; i++) {
        uint8_t *r = buf + (size_t)i * rec;
        int label = cifar100 ? (i * 37) % 100 : i % 10;
        if (i == bad_label_at) label = cifar100 ? 100 : 10;
        if (cifar100) {
            r[0] = (uint8_t)(label / 5);
            r[1] = (uint8_t)label;
        } else {
            r[0] = (uint8_t)label;
        }
        uint8_t *px = r + rec - 3072;
        for (int k = 0; k < 3072; k++) px[k] = (uint8_t)(k / 1024 * 100 + i);
    }
    write_bytes(path, buf, size, 0);
    free(buf);
}

static void test_cifar(void) {
    char dir[600], p[700], spec[700];
    snprintf(dir, sizeof dir, "%s/cifar10", tmpdir);
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/test_batch.bin", dir);
    write_cifar(p, 0, 12, -1, 0);
    snprintf(spec, sizeof spec, "cifar10:%s", dir);
    pc_dataset d;
    pc_status s = pc_dataset_load(spec, 0, &d);
    CHECK(s == PC_OK, "cifar10 test: %s", pc_last_error());
    if (s == PC_OK) {
        CHECK(d.n == 12 && d.c == 3 && d.h == 32 && d.w == 32 && d.classes == 10, "cifar10 shape");
        CHECK(d.labels[11] == 1 && strcmp(d.class_names[0], "airplane") == 0 &&
                  strcmp(d.class_names[9], "truck") == 0,
              "cifar10 labels/names");
        CHECK(d.pixels[5 * 3072 + 0] == 5 && d.pixels[5 * 3072 + 1024] == 105 &&
                  d.pixels[5 * 3072 + 3071] == 205,
              "cifar10 CHW pixels");
        float mean[3], sd[3];
        pc_dataset_channel_stats(&d, mean, sd);
        CHECK(fabs(mean[1] - (100 + 5.5) / 255.0) < 1e-6, "cifar mean[1] %g", mean[1]);
        pc_dataset_free(&d);
    }
    /* training part missing -> names the missing batch */
    CHECK_ERR(pc_dataset_load(spec, 1, &ds_), PC_ERR_DATA, "data_batch_1.bin");

    /* wrong size, label out of range */
    const char *bad = tpath("bad_batch.bin");
    write_cifar(bad, 0, 3, -1, 17);
    const char *one[1] = {bad};
    CHECK_ERR(pc_dataset_load_cifar(one, 1, 0, &ds_), PC_ERR_DATA, bad);
    CHECK(has(pc_last_error(), "multiple"), "%s", pc_last_error());
    write_cifar(bad, 0, 0, -1, 0);
    CHECK_ERR(pc_dataset_load_cifar(one, 1, 0, &ds_), PC_ERR_DATA, bad);
    write_cifar(bad, 0, 4, 2, 0);
    CHECK_ERR(pc_dataset_load_cifar(one, 1, 0, &ds_), PC_ERR_DATA, bad);
    CHECK(has(pc_last_error(), "record 2"), "%s", pc_last_error());
    write_cifar(bad, 1, 4, 3, 0);
    CHECK_ERR(pc_dataset_load_cifar(one, 1, 1, &ds_), PC_ERR_DATA, bad);
    CHECK(has(pc_last_error(), "out of range"), "%s", pc_last_error());
    /* a CIFAR-100 file read as CIFAR-10 has the wrong record size */
    write_cifar(bad, 1, 2, -1, 0);
    CHECK_ERR(pc_dataset_load_cifar(one, 1, 0, &ds_), PC_ERR_DATA, bad);

    /* cifar100 with names */
    snprintf(dir, sizeof dir, "%s/cifar100", tmpdir);
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/train.bin", dir);
    write_cifar(p, 1, 7, -1, 0);
    snprintf(spec, sizeof spec, "cifar100:%s", dir);
    s = pc_dataset_load(spec, 1, &d);
    CHECK(s == PC_OK, "cifar100: %s", pc_last_error());
    if (s == PC_OK) {
        CHECK(d.n == 7 && d.classes == 100 && d.labels[3] == 11 &&
                  strcmp(d.class_names[99], "99") == 0,
              "cifar100 default names");
        pc_dataset_free(&d);
    }
    snprintf(p, sizeof p, "%s/fine_label_names.txt", dir);
    FILE *f = fopen(p, "w");
    for (int i = 0; i < 100; i++) fprintf(f, "name%d\n", i);
    fclose(f);
    s = pc_dataset_load(spec, 1, &d);
    CHECK(s == PC_OK, "cifar100 with names: %s", pc_last_error());
    if (s == PC_OK) {
        CHECK(strcmp(d.class_names[42], "name42") == 0, "cifar100 names from file");
        pc_dataset_free(&d);
    }
}

static void test_fashion_mnist_real(void) {
    const char *root = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
    if (access(root, R_OK) != 0) {
        printf("skip: %s not installed\n", root);
        return;
    }
    pc_dataset tr, te;
    pc_status s = pc_dataset_load("fashion-mnist", 1, &tr);
    CHECK(s == PC_OK, "fashion-mnist train: %s", pc_last_error());
    if (s == PC_OK) {
        CHECK(tr.n == 60000 && tr.c == 1 && tr.h == 28 && tr.w == 28 && tr.classes == 10,
              "train shape %lld %dx%dx%d %d", (long long)tr.n, tr.h, tr.w, tr.c, tr.classes);
        int hist[10] = {0}, ok = 1;
        for (int64_t i = 0; i < tr.n; i++) hist[tr.labels[i]]++;
        for (int k = 0; k < 10; k++) ok &= hist[k] == 6000;
        CHECK(ok, "train histogram not 6000 per class");
        float mean, sd;
        pc_dataset_channel_stats(&tr, &mean, &sd);
        CHECK(fabs(mean - 0.2860) < 1e-3 && fabs(sd - 0.3530) < 1e-3, "fashion stats %g %g", mean,
              sd);
        pc_dataset_free(&tr);
    }
    s = pc_dataset_load("fashion-mnist", 0, &te);
    CHECK(s == PC_OK, "fashion-mnist test: %s", pc_last_error());
    if (s == PC_OK) {
        CHECK(te.n == 10000 && te.h == 28 && te.w == 28 && te.classes == 10, "test shape");
        int hist[10] = {0}, ok = 1;
        for (int64_t i = 0; i < te.n; i++) hist[te.labels[i]]++;
        for (int k = 0; k < 10; k++) ok &= hist[k] == 1000;
        CHECK(ok, "test histogram not 1000 per class");
        pc_dataset_free(&te);
    }
}


int main(void) {
    if (testfs_start("data")) return 2;
    unsetenv("PARCNN_DATASETS_DIR");
    test_idx_good();
    test_idx_dir();
    test_idx_bad();
    test_named_specs();
    test_cifar();
    test_fashion_mnist_real();
    testfs_finish();
    return check_summary();
}
