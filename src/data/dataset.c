/* Dataset loading: IDX (MNIST-style, plain or gzip) and CIFAR binary files.
 * Every size read from a file is checked before anything is allocated; malformed
 * input yields PC_ERR_DATA with a message naming the file, never a crash. */
#define _GNU_SOURCE /* (POSIX stat) */
#include "data/dataset.h"
#include "data/folder.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
#define MAX_SIDE ((int64_t)1 << 16)
#define MAX_PIXEL_BYTES ((int64_t)1 << 34)
#define MAX_LABELS ((int64_t)1 << 31)
/* deflate cannot expand data by more than ~1032:1; anything claiming more is corrupt. */
#define GZ_MAX_RATIO 1100

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                              "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                              "Bag",         "Ankle boot"};
static const char *const cifar10_names[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};

/* ---------------------------------------------------------------- helpers */

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}



static void free_names(char **names, int n) {
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* Class names: `fixed` if given (classes entries), else decimal strings "0".."classes-1".
 * Replaces d->class_names, which must hold old_count entries. */
static pc_status make_names(pc_dataset *d, const char *const *fixed, int old_count) {
    char **names = calloc((size_t)d->classes, sizeof *names);
    if (!names) return pc_fail(PC_ERR_NOMEM, "out of memory (class names)");
    for (int i = 0; i < d->classes; i++) {
        char buf[16];
        const char *s = fixed ? fixed[i] : buf;
        if (!fixed) snprintf(buf, sizeof buf, "%d", i);
        names[i] = strdup(s);
        if (!names[i]) {
            free_names(names, i);
            return pc_fail(PC_ERR_NOMEM, "out of memory (class names)");
        }
    }
    free_names(d->class_names, old_count);
    d->class_names = names;
    return PC_OK;
}

/* ---------------------------------------------------------------- IDX */

typedef struct {
    gzFile gz;
    const char *path;
    int64_t disk_size; /* bytes on disk */
    int direct;        /* 1: not gzip-compressed */
} idx_file;

static void idx_close(idx_file *f) {
    if (f->gz) gzclose(f->gz);
    f->gz = NULL;
}

static pc_status idx_open(idx_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->path = path;
    int fd = pc_open_regular(path); /* a named pipe would block until a writer comes */
    if (fd < 0) return PC_ERR_DATA;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return pc_fail(PC_ERR_DATA, "%s: cannot stat: %s", path, strerror(e));
    }
    f->disk_size = (int64_t)st.st_size;
    if (f->disk_size == 0) {
        close(fd);
        return pc_fail(PC_ERR_DATA, "%s: file is empty (expected an IDX file)", path);
    }
    errno = 0;
    f->gz = gzdopen(fd, "rb"); /* owns fd from here */
    if (!f->gz) {
        int e = errno;
        close(fd);
        return pc_fail(PC_ERR_DATA, "%s: cannot open: %s", path, e ? strerror(e) : "zlib error");
    }
    gzbuffer(f->gz, 1 << 17);
    f->direct = gzdirect(f->gz);
    return PC_OK;
}

/* Read up to n bytes; *got receives how many were read. Returns an error only for
 * a gzip stream error other than a premature end (which the caller reports as truncation). */
static pc_status idx_read(idx_file *f, void *buf, int64_t n, int64_t *got) {
    uint8_t *p = buf;
    int64_t done = 0;
    while (done < n) {
        int64_t want = PC_MIN(n - done, (int64_t)1 << 30);
        int r = gzread(f->gz, p + done, (unsigned)want);
        if (r < 0) {
            int errnum = 0;
            const char *msg = gzerror(f->gz, &errnum);
            if (errnum == Z_BUF_ERROR) break; /* unexpected end of file */
            *got = done;
            return pc_fail(PC_ERR_DATA, "%s: gzip error: %s", f->path, msg ? msg : "?");
        }
        if (r == 0) break;
        done += r;
    }
    *got = done;
    return PC_OK;
}

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static pc_status idx_header(idx_file *f, uint32_t want_magic, int ndims, uint32_t *dims) {
    uint8_t hdr[16];
    int64_t need = 4 + 4 * (int64_t)ndims, got = 0;
    PC_TRY(idx_read(f, hdr, 4, &got));
    if (got < 4)
        return pc_fail(PC_ERR_DATA, "%s: truncated: expected a %lld-byte IDX header, got %lld bytes",
                       f->path, (long long)need, (long long)got);
    uint32_t magic = be32(hdr);
    if (magic != want_magic) {
        const char *hint = "";
        if (magic == IDX_MAGIC_LABELS) hint = " (this is an IDX labels file)";
        else if (magic == IDX_MAGIC_IMAGES) hint = " (this is an IDX images file)";
        else if ((magic >> 16) == 0x1f8b) hint = " (a corrupt gzip file?)";
        return pc_fail(PC_ERR_DATA, "%s: bad magic 0x%08x, expected 0x%08x for an IDX %s file%s",
                       f->path, magic, want_magic,
                       want_magic == IDX_MAGIC_IMAGES ? "images" : "labels", hint);
    }
    PC_TRY(idx_read(f, hdr + 4, need - 4, &got));
    if (got < need - 4)
        return pc_fail(PC_ERR_DATA, "%s: truncated: expected a %lld-byte IDX header, got %lld bytes",
                       f->path, (long long)need, (long long)(4 + got));
    for (int i = 0; i < ndims; i++) dims[i] = be32(hdr + 4 + 4 * i);
    return PC_OK;
}

/* Refuse a declared payload that the file on disk cannot possibly hold (checked before
 * allocating). For plain files this is the exact truncation check. */
static pc_status idx_check_payload(const idx_file *f, int64_t header_bytes, int64_t payload,
                                   const char *what) {
    if (f->direct) {
        int64_t avail = f->disk_size - header_bytes;
        if (avail < payload)
            return pc_fail(PC_ERR_DATA, "%s: truncated: expected %lld bytes of %s, got %lld",
                           f->path, (long long)payload, what, (long long)PC_MAX(avail, 0));
    } else if (payload / GZ_MAX_RATIO > f->disk_size) {
        return pc_fail(PC_ERR_DATA,
                       "%s: truncated or corrupt: header declares %lld bytes of %s, more than "
                       "a %lld-byte gzip file can hold",
                       f->path, (long long)payload, what, (long long)f->disk_size);
    }
    return PC_OK;
}

/* Read an IDX labels file into a malloc'ed int32 array; *max_label gets the largest label. */
static pc_status idx_read_labels(const char *path, int32_t **labels_out, int64_t *n_out,
                                 int *max_label) {
    *labels_out = NULL;
    *n_out = 0;
    idx_file f;
    pc_status s = idx_open(&f, path);
    if (s != PC_OK) return s;
    uint32_t dims[1] = {0};
    uint8_t *raw = NULL;
    int32_t *labels = NULL;
    s = idx_header(&f, IDX_MAGIC_LABELS, 1, dims);
    if (s != PC_OK) goto done;
    int64_t n = dims[0];
    if (n == 0) {
        s = pc_fail(PC_ERR_DATA, "%s: holds no labels", path);
        goto done;
    }
    if (n > MAX_LABELS) {
        s = pc_fail(PC_ERR_DATA, "%s: absurd label count %lld", path, (long long)n);
        goto done;
    }
    s = idx_check_payload(&f, 8, n, "label data");
    if (s != PC_OK) goto done;
    raw = malloc((size_t)n);
    labels = pc_alloc((size_t)n * sizeof *labels);
    if (!raw || !labels) {
        s = pc_fail(PC_ERR_NOMEM, "%s: out of memory for %lld labels", path, (long long)n);
        goto done;
    }
    int64_t got = 0;
    s = idx_read(&f, raw, n, &got);
    if (s != PC_OK) goto done;
    if (got < n) {
        s = pc_fail(PC_ERR_DATA, "%s: truncated: expected %lld bytes of label data, got %lld", path,
                    (long long)n, (long long)got);
        goto done;
    }
    int mx = 0;
    for (int64_t i = 0; i < n; i++) {
        labels[i] = raw[i];
        if (raw[i] > mx) mx = raw[i];
    }
    *max_label = mx;
    *labels_out = labels;
    *n_out = n;
    labels = NULL;
done:
    free(raw);
    pc_free(labels);
    idx_close(&f);
    return s;
}

/* classes > 0: labels must be < classes; classes <= 0: classes = max label + 1.
 * Class names are decimal strings (callers replace them when they know better). */
static pc_status idx_load(const char *images_path, const char *labels_path, int classes,
                          pc_dataset *out) {
    memset(out, 0, sizeof *out);
    int32_t *labels = NULL;
    int64_t n_labels = 0;
    int max_label = 0;
    PC_TRY(idx_read_labels(labels_path, &labels, &n_labels, &max_label));
    if (classes > 0 && max_label >= classes) {
        int64_t i = 0;
        while (labels[i] < classes) i++;
        pc_free(labels);
        return pc_fail(PC_ERR_DATA, "%s: label %d at index %lld is out of range [0, %d)",
                       labels_path, max_label, (long long)i, classes);
    }
    if (classes <= 0) classes = max_label + 1;

    idx_file f;
    pc_status s = idx_open(&f, images_path);
    if (s != PC_OK) {
        pc_free(labels);
        return s;
    }
    uint8_t *pixels = NULL;
    uint32_t dims[3] = {0};
    s = idx_header(&f, IDX_MAGIC_IMAGES, 3, dims);
    if (s != PC_OK) goto fail;
    int64_t n = dims[0], h = dims[1], w = dims[2];
    if (n == 0) {
        s = pc_fail(PC_ERR_DATA, "%s: holds no images", images_path);
        goto fail;
    }
    if (h == 0 || w == 0 || h > MAX_SIDE || w > MAX_SIDE) {
        s = pc_fail(PC_ERR_DATA, "%s: bad image size %lldx%lld", images_path, (long long)h,
                    (long long)w);
        goto fail;
    }
    if (n > MAX_PIXEL_BYTES / (h * w)) {
        s = pc_fail(PC_ERR_DATA, "%s: absurd size: %lld images of %lldx%lld", images_path,
                    (long long)n, (long long)h, (long long)w);
        goto fail;
    }
    if (n != n_labels) {
        s = pc_fail(PC_ERR_DATA, "%s holds %lld images but %s holds %lld labels", images_path,
                    (long long)n, labels_path, (long long)n_labels);
        goto fail;
    }
    int64_t bytes = n * h * w;
    s = idx_check_payload(&f, 16, bytes, "pixel data");
    if (s != PC_OK) goto fail;
    if ((uint64_t)bytes > SIZE_MAX) {
        s = pc_fail(PC_ERR_NOMEM, "%s: too large for this machine", images_path);
        goto fail;
    }
    pixels = pc_alloc((size_t)bytes);
    if (!pixels) {
        s = pc_fail(PC_ERR_NOMEM, "%s: out of memory for %lld bytes of pixels", images_path,
                    (long long)bytes);
        goto fail;
    }
    int64_t got = 0;
    s = idx_read(&f, pixels, bytes, &got);
    if (s != PC_OK) goto fail;
    if (got < bytes) {
        s = pc_fail(PC_ERR_DATA, "%s: truncated: expected %lld bytes of pixel data, got %lld",
                    images_path, (long long)bytes, (long long)got);
        goto fail;
    }
    idx_close(&f);
    out->n = n;
    out->c = 1;
    out->h = (int)h;
    out->w = (int)w;
    out->pixels = pixels;
    out->labels = labels;
    out->classes = classes;
    s = make_names(out, NULL, 0);
    if (s != PC_OK) pc_dataset_free(out);
    return s;
fail:
    idx_close(&f);
    pc_free(pixels);
    pc_free(labels);
    memset(out, 0, sizeof *out);
    return s;
}

pc_status pc_dataset_load_idx(const char *images_path, const char *labels_path, pc_dataset *out) {
    return idx_load(images_path, labels_path, 0, out);
}

/* ---------------------------------------------------------------- CIFAR */

pc_status pc_dataset_load_cifar(const char *const *paths, int n_paths, int cifar100,
                                pc_dataset *out) {
    memset(out, 0, sizeof *out);
    if (n_paths <= 0) return pc_fail(PC_ERR_USAGE, "no CIFAR files given");
    const int64_t pix = 3 * 32 * 32, rec = pix + (cifar100 ? 2 : 1);
    const int classes = cifar100 ? 100 : 10;
    int64_t total = 0;
    for (int i = 0; i < n_paths; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0)
            return pc_fail(PC_ERR_DATA, "%s: cannot open: %s", paths[i], strerror(errno));
        if (!S_ISREG(st.st_mode)) return pc_fail(PC_ERR_DATA, "%s: not a regular file", paths[i]);
        int64_t size = st.st_size;
        if (size == 0 || size % rec != 0)
            return pc_fail(PC_ERR_DATA,
                           "%s: size %lld is not a positive multiple of the %lld-byte CIFAR-%d "
                           "record",
                           paths[i], (long long)size, (long long)rec, classes);
        total += size / rec;
        if (total > MAX_PIXEL_BYTES / pix)
            return pc_fail(PC_ERR_DATA, "%s: absurd total size", paths[i]);
    }
    uint8_t *pixels = pc_alloc((size_t)(total * pix));
    int32_t *labels = pc_alloc((size_t)total * sizeof *labels);
    uint8_t *buf = malloc((size_t)rec * 1024);
    pc_status s = PC_OK;
    if (!pixels || !labels || !buf) {
        s = pc_fail(PC_ERR_NOMEM, "out of memory loading %lld CIFAR images", (long long)total);
        goto fail;
    }
    int64_t k = 0;
    for (int i = 0; i < n_paths && s == PC_OK; i++) {
        FILE *fp = pc_fopen_regular(paths[i]);
        if (!fp) {
            s = PC_ERR_DATA;
            break;
        }
        int64_t rec_in_file = 0;
        for (;;) {
            size_t got = fread(buf, 1, (size_t)rec * 1024, fp);
            if (got % (size_t)rec != 0 || k + (int64_t)(got / (size_t)rec) > total) {
                s = pc_fail(PC_ERR_DATA, "%s: file changed size while reading", paths[i]);
                break;
            }
            for (size_t r = 0; r < got / (size_t)rec; r++, k++, rec_in_file++) {
                const uint8_t *p = buf + r * (size_t)rec;
                int coarse = cifar100 ? p[0] : 0, label = cifar100 ? p[1] : p[0];
                if (label >= classes || coarse >= 20) {
                    s = pc_fail(PC_ERR_DATA, "%s: record %lld: %s %d is out of range [0, %d)",
                                paths[i], (long long)rec_in_file,
                                coarse >= 20 ? "coarse label" : "label",
                                coarse >= 20 ? coarse : label, coarse >= 20 ? 20 : classes);
                    break;
                }
                labels[k] = label;
                memcpy(pixels + k * pix, p + (rec - pix), (size_t)pix);
            }
            if (s != PC_OK || got < (size_t)rec * 1024) break;
        }
        if (s == PC_OK && ferror(fp))
            s = pc_fail(PC_ERR_DATA, "%s: read error: %s", paths[i], strerror(errno));
        fclose(fp);
    }
    if (s == PC_OK && k != total)
        s = pc_fail(PC_ERR_DATA, "%s: file changed size while reading", paths[n_paths - 1]);
    if (s != PC_OK) goto fail;
    free(buf);
    out->n = total;
    out->c = 3;
    out->h = 32;
    out->w = 32;
    out->pixels = pixels;
    out->labels = labels;
    out->classes = classes;
    s = make_names(out, cifar100 ? NULL : cifar10_names, 0);
    if (s != PC_OK) pc_dataset_free(out);
    return s;
fail:
    free(buf);
    pc_free(pixels);
    pc_free(labels);
    memset(out, 0, sizeof *out);
    return s;
}

/* CIFAR-100 fine label names, one per line (blank lines skipped); exactly 100 required. */
static pc_status read_cifar100_names(const char *path, pc_dataset *d) {
    FILE *fp = pc_fopen_regular(path);
    if (!fp) return PC_ERR_DATA;
    char **names = calloc(100, sizeof *names);
    if (!names) {
        fclose(fp);
        return pc_fail(PC_ERR_NOMEM, "out of memory (class names)");
    }
    char line[512];
    int n = 0;
    pc_status s = PC_OK;
    while (fgets(line, sizeof line, fp)) {
        size_t len = strlen(line);
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = 0;
        if (len == 0) continue;
        if (n == 100) {
            s = pc_fail(PC_ERR_DATA, "%s: more than 100 class names", path);
            break;
        }
        if (!(names[n++] = strdup(line))) {
            s = pc_fail(PC_ERR_NOMEM, "out of memory (class names)");
            break;
        }
    }
    fclose(fp);
    if (s == PC_OK && n != 100)
        s = pc_fail(PC_ERR_DATA, "%s: expected 100 class names, found %d", path, n);
    if (s != PC_OK) {
        free_names(names, n);
        return s;
    }
    free_names(d->class_names, d->classes);
    d->class_names = names;
    return PC_OK;
}

/* ---------------------------------------------------------------- specs */

/* DIR/name.gz or DIR/name (preferring the plain file when both exist); NULL if neither. */
static char *find_idx_file(const char *dir, const char *name, char **missing) {
    char gzname[128];
    snprintf(gzname, sizeof gzname, "%s.gz", name);
    char *plain = pc_path_join(dir, name), *gz = pc_path_join(dir, gzname);
    char *found = NULL;
    if (plain && file_exists(plain)) found = plain, plain = NULL;
    else if (gz && file_exists(gz)) found = gz, gz = NULL;
    if (!found && missing) *missing = gz, gz = NULL;
    free(plain);
    free(gz);
    return found;
}

static pc_status load_named_idx(const char *label, const char *root, int train,
                                const char *install_hint, pc_dataset *out) {
    const char *prefix = train ? "train" : "t10k";
    char img_name[64], lab_name[64];
    snprintf(img_name, sizeof img_name, "%s-images-idx3-ubyte", prefix);
    snprintf(lab_name, sizeof lab_name, "%s-labels-idx1-ubyte", prefix);
    char *missing = NULL;
    char *img = find_idx_file(root, img_name, &missing);
    char *lab = img ? find_idx_file(root, lab_name, &missing) : NULL;
    pc_status s;
    if (!img || !lab) {
        s = pc_fail(PC_ERR_DATA, "%s: %s not found (%s)", label, missing ? missing : "?",
                    install_hint);
    } else {
        s = idx_load(img, lab, 10, out);
    }
    free(missing);
    free(img);
    free(lab);
    return s;
}

static pc_status load_idx_dir(const char *dir, int train, pc_dataset *out) {
    const char *prefix = train ? "train" : "t10k";
    char img_name[64], lab_name[64];
    snprintf(img_name, sizeof img_name, "%s-images-idx3-ubyte", prefix);
    snprintf(lab_name, sizeof lab_name, "%s-labels-idx1-ubyte", prefix);
    char *missing = NULL;
    char *img = find_idx_file(dir, img_name, &missing);
    char *lab = img ? find_idx_file(dir, lab_name, &missing) : NULL;
    pc_status s;
    if (!img || !lab) {
        char *plain = missing ? strndup(missing, strlen(missing) - 3) : NULL;
        s = pc_fail(PC_ERR_DATA, "idx:%s: neither %s nor %s found", dir, plain ? plain : "?",
                    missing ? missing : "?");
        free(plain);
        goto done;
    }
    s = idx_load(img, lab, 0, out);
    if (s != PC_OK) goto done;
    /* The class count is taken over both parts, so train and test agree even when one
     * part lacks the highest class. */
    char *other = find_idx_file(dir, train ? "t10k-labels-idx1-ubyte" : "train-labels-idx1-ubyte",
                                NULL);
    if (other) {
        int32_t *ol = NULL;
        int64_t on = 0;
        int omax = 0;
        s = idx_read_labels(other, &ol, &on, &omax);
        pc_free(ol);
        free(other);
        if (s != PC_OK) {
            pc_dataset_free(out);
            goto done;
        }
        if (omax + 1 > out->classes) {
            int old = out->classes;
            out->classes = omax + 1;
            s = make_names(out, NULL, old);
            if (s != PC_OK) {
                out->classes = old;
                pc_dataset_free(out);
            }
        }
    }
done:
    free(missing);
    free(img);
    free(lab);
    return s;
}

static pc_status load_cifar_dir(const char *dir, int train, int cifar100, pc_dataset *out) {
    char *paths[5] = {0};
    int n = 0;
    pc_status s = PC_OK;
    if (cifar100) {
        paths[n++] = pc_path_join(dir, train ? "train.bin" : "test.bin");
    } else if (train) {
        for (int i = 1; i <= 5; i++) {
            char name[32];
            snprintf(name, sizeof name, "data_batch_%d.bin", i);
            paths[n++] = pc_path_join(dir, name);
        }
    } else {
        paths[n++] = pc_path_join(dir, "test_batch.bin");
    }
    for (int i = 0; i < n; i++)
        if (!paths[i]) s = pc_fail_nomem();
    if (s == PC_OK) {
        for (int i = 0; i < n; i++)
            if (!file_exists(paths[i])) {
                s = pc_fail(PC_ERR_DATA, "cifar%s:%s: %s not found", cifar100 ? "100" : "10", dir,
                            paths[i]);
                break;
            }
    }
    if (s == PC_OK) s = pc_dataset_load_cifar((const char *const *)paths, n, cifar100, out);
    if (s == PC_OK && cifar100) {
        char *names = pc_path_join(dir, "fine_label_names.txt");
        if (!names) s = pc_fail_nomem();
        else if (file_exists(names)) s = read_cifar100_names(names, out);
        free(names);
        if (s != PC_OK) pc_dataset_free(out);
    }
    for (int i = 0; i < n; i++) free(paths[i]);
    return s;
}

pc_status pc_dataset_load(const char *spec, int train, pc_dataset *out) {
    return pc_dataset_load_ex(spec, train, NULL, out);
}

pc_status pc_dataset_load_ex(const char *spec, int train, const pc_folder_options *opt,
                             pc_dataset *out) {
    memset(out, 0, sizeof *out);
    if (!spec) spec = "";
    const char *env = getenv("PARCNN_DATASETS_DIR");
    const char *root = env && env[0] ? env : "/usr/share/datasets";
    if (strcmp(spec, "fashion-mnist") == 0 || strcmp(spec, "mnist") == 0) {
        int fashion = spec[0] == 'f';
        char *dir = pc_path_join(root, spec);
        if (!dir) return pc_fail_nomem();
        pc_status s = load_named_idx(
            spec, dir, train,
            fashion ? "install it with: apt-get install dataset-fashion-mnist"
                    : "put the MNIST IDX files there, set PARCNN_DATASETS_DIR, or use idx:DIR",
            out);
        free(dir);
        if (s == PC_OK && fashion) {
            s = make_names(out, fashion_names, out->classes);
            if (s != PC_OK) pc_dataset_free(out);
        }
        return s;
    }
    const char *colon = strchr(spec, ':');
    if (colon) {
        size_t plen = (size_t)(colon - spec);
        const char *dir = colon + 1;
        int kind = 0;
        if (plen == 3 && strncmp(spec, "idx", 3) == 0) kind = 1;
        else if (plen == 7 && strncmp(spec, "cifar10", 7) == 0) kind = 2;
        else if (plen == 8 && strncmp(spec, "cifar100", 8) == 0) kind = 3;
        else if (plen == 6 && strncmp(spec, "folder", 6) == 0) kind = 4;
        if (kind) {
            if (!dir[0]) return pc_fail(PC_ERR_USAGE, "dataset '%s': missing directory", spec);
            struct stat st;
            if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
                return pc_fail(PC_ERR_DATA, "dataset '%s': %s is not a directory", spec, dir);
            if (kind == 4) return pc_dataset_load_folder(dir, train, opt, out, NULL);
            if (kind == 1) return load_idx_dir(dir, train, out);
            return load_cifar_dir(dir, train, kind == 3, out);
        }
    }
    return pc_fail(PC_ERR_USAGE,
                   "unknown dataset '%s' (expected fashion-mnist, mnist, idx:DIR, cifar10:DIR, "
                   "cifar100:DIR, folder:DIR)",
                   spec);
}

/* ---------------------------------------------------------------- utilities */

void pc_dataset_truncate(pc_dataset *d, int64_t n) {
    if (n <= 0 || n >= d->n) return;
    d->n = n;
}

/* Exact integer sums, so the result does not depend on the dataset order. A channel
 * with zero variance (or an empty dataset) gets std = 1 so that normalizing is safe. */
void pc_dataset_channel_stats(const pc_dataset *d, float *mean, float *std) {
    int64_t hw = (int64_t)d->h * d->w;
    for (int c = 0; c < d->c; c++) {
        uint64_t s1 = 0, s2 = 0;
        for (int64_t i = 0; i < d->n; i++) {
            if (d->sums) { /* decoded on demand: sums recorded when the folder was checked */
                s1 += d->sums[i * 2 * d->c + c];
                s2 += d->sums[i * 2 * d->c + d->c + c];
                continue;
            }
            const uint8_t *p = d->pixels + (i * d->c + c) * hw;
            uint64_t a = 0, b = 0;
            for (int64_t k = 0; k < hw; k++) {
                a += p[k];
                b += (uint64_t)p[k] * p[k];
            }
            s1 += a;
            s2 += b;
        }
        double cnt = (double)d->n * (double)hw;
        if (cnt <= 0) {
            mean[c] = 0.0f;
            std[c] = 1.0f;
            continue;
        }
        double m = (double)s1 / cnt / 255.0;
        double var = (double)s2 / cnt / (255.0 * 255.0) - m * m;
        double sd = var > 0 ? sqrt(var) : 0.0;
        mean[c] = (float)m;
        std[c] = sd > 1e-12 ? (float)sd : 1.0f;
    }
}

pc_status pc_dataset_sample(const pc_dataset *d, int64_t i, uint8_t *scratch,
                            const uint8_t **out) {
    if (d->pixels) {
        *out = d->pixels + i * (int64_t)d->c * d->h * d->w;
        return PC_OK;
    }
    *out = scratch;
    return pc_image_files_decode(d->files, i, scratch);
}

pc_status pc_dataset_gather_features(const pc_dataset *d, const int64_t *idx, int n,
                                     uint64_t view, float *out, int32_t *labels_out) {
    const int64_t dim = (int64_t)d->c * d->h * d->w;
    const float *base = d->features + (int64_t)(view % (uint64_t)d->feature_views) * d->feature_stride * dim;
    for (int i = 0; i < n; i++) {
        memcpy(out + i * dim, base + idx[i] * dim, sizeof(float) * dim);
        if (labels_out) labels_out[i] = d->labels[idx[i]];
    }
    return PC_OK;
}

pc_status pc_dataset_gather(const pc_dataset *d, const int64_t *idx, int n, const float *mean,
                            const float *std, float *out, int32_t *labels_out) {
    if (d->features) return pc_dataset_gather_features(d, idx, n, 0, out, labels_out);
    const int64_t hw = (int64_t)d->h * d->w, sample = hw * d->c;
    uint8_t *scratch = NULL;
    if (!d->pixels && !(scratch = malloc((size_t)sample)))
        return pc_fail_nomem();
    float lut[d->c][256];
    for (int c = 0; c < d->c; c++) {
        float m = mean ? mean[c] : 0.0f, sd = std ? std[c] : 1.0f;
        for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - m) / sd;
    }
    pc_status s = PC_OK;
    for (int i = 0; i < n && s == PC_OK; i++) {
        const uint8_t *p;
        s = pc_dataset_sample(d, idx[i], scratch, &p);
        for (int c = 0; c < d->c && s == PC_OK; c++) {
            float *o = out + (int64_t)i * sample + c * hw;
            for (int64_t k = 0; k < hw; k++) o[k] = lut[c][p[c * hw + k]];
        }
    }
    free(scratch);
    if (labels_out)
        for (int i = 0; i < n; i++) labels_out[i] = d->labels[idx[i]];
    return s;
}

void pc_dataset_free(pc_dataset *d) {
    if (!d) return;
    pc_free(d->pixels);
    pc_image_files_free(d->files);
    free(d->sums);
    pc_free(d->labels);
    pc_free(d->features);
    free_names(d->class_names, d->classes);
    memset(d, 0, sizeof *d);
}
