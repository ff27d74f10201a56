/* Image folders: PNG/JPEG decoding and colour conversion, resizing, folder layouts and the
 * stratified split, bad input (each case named with its path), skip vs fail, the decoded-
 * pixel cache, thread-count independence, augmentation, and (when the archive is present)
 * CIFAR-10 as JPEG folders. All files are written into a mkdtemp folder and removed. */
#define _GNU_SOURCE
#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

#include <jpeglib.h>
#include <png.h>

#include "check.h"
#include "testfs.h"
#include "core/rng.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/folder.h"
#include "data/image.h"
#include "data/tta.h"


static void mkdir_p(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}



/* ---------------------------------------------------------------- writers */

/* rows: packed as libpng expects (16-bit samples big-endian). */
static void write_png_ex(const char *path, int w, int h, int ctype, int depth, const uint8_t *data,
                         const png_color *pal, int npal, const uint8_t *trns, int ntrns,
                         int interlace) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "libpng write failed for %s\n", path);
        exit(2);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ctype,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    int ch = ctype == PNG_COLOR_TYPE_GRAY ? 1 : ctype == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
           : ctype == PNG_COLOR_TYPE_RGB ? 3 : ctype == PNG_COLOR_TYPE_RGBA ? 4 : 1;
    size_t rowbytes = ((size_t)w * ch * depth + 7) / 8;
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)data + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    fclose(f);
}

static void write_png(const char *path, int w, int h, int ctype, const uint8_t *data) {
    write_png_ex(path, w, h, ctype, 8, data, NULL, 0, NULL, 0, 0);
}

/* A w x h image of one value (gray) or colour. */
static void write_solid_png(const char *path, int w, int h, int gray, uint8_t r, uint8_t g, uint8_t b) {
    int ch = gray ? 1 : 3;
    uint8_t *d = malloc((size_t)w * h * ch);
    for (int i = 0; i < w * h; i++) {
        if (gray) d[i] = r;
        else d[3 * i] = r, d[3 * i + 1] = g, d[3 * i + 2] = b;
    }
    write_png(path, w, h, gray ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, d);
    free(d);
}

/* in_cs: JCS_GRAYSCALE (1), JCS_RGB (3) or JCS_CMYK (4); ycck: store CMYK as YCCK. */
static void write_jpeg(const char *path, int w, int h, J_COLOR_SPACE in_cs, int ncomp,
                       const uint8_t *data, int quality, int ycck) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr je;
    ci.err = jpeg_std_error(&je);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = ncomp;
    ci.in_color_space = in_cs;
    jpeg_set_defaults(&ci);
    if (ycck) jpeg_set_colorspace(&ci, JCS_YCCK);
    jpeg_set_quality(&ci, quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)data + (size_t)ci.next_scanline * w * ncomp;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    fclose(f);
}

/* A smooth RGB test picture (JPEG-friendly), value depends on (x, y, k). */
static void smooth_rgb(uint8_t *d, int w, int h, int k) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = d + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(40 + (x * 150) / w + k * 3);
            p[1] = (uint8_t)(60 + (y * 120) / h);
            p[2] = (uint8_t)(200 - (x + y) * 100 / (w + h) - k);
        }
}

static void write_rgb_jpeg(const char *path, int w, int h, int k) {
    uint8_t *d = malloc((size_t)w * h * 3);
    smooth_rgb(d, w, h, k);
    write_jpeg(path, w, h, JCS_RGB, 3, d, 90, 0);
    free(d);
}


static int contains(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

static const char *err(void) { return pc_last_error(); }

/* ---------------------------------------------------------------- decoding */

static void test_png_decoding(void) {
    pc_image im;
    /* gray 8-bit, exact values, and gray -> RGB replication */
    enum { W = 5, H = 3 };
    uint8_t g8[W * H];
    for (int i = 0; i < W * H; i++) g8[i] = (uint8_t)(i * 17 + 3);
    write_png(tpath("g8.png"), W, H, PNG_COLOR_TYPE_GRAY, g8);
    CHECK(pc_image_read(tpath("g8.png"), 0, 0, &im) == PC_OK, "%s", err());
    CHECK(im.w == W && im.h == H && im.c == 1 && im.src_gray == 1, "gray8 %dx%dx%d", im.w, im.h, im.c);
    CHECK(im.data && memcmp(im.data, g8, sizeof g8) == 0, "gray8 pixels");
    pc_image_free(&im);
    CHECK(pc_image_read(tpath("g8.png"), 3, 0, &im) == PC_OK, "%s", err());
    int ok = im.c == 3;
    for (int i = 0; ok && i < W * H; i++)
        ok = im.data[3 * i] == g8[i] && im.data[3 * i + 1] == g8[i] && im.data[3 * i + 2] == g8[i];
    CHECK(ok, "gray8 -> RGB replicates");
    pc_image_free(&im);

    /* gray 16-bit: v*257 -> v exactly; other values scaled with rounding */
    uint8_t g16[W * H * 2];
    for (int i = 0; i < W * H; i++) {
        unsigned v = g8[i] * 257u;
        if (i == 0) v = 0x1234; /* 4660 * 255 / 65535 = 18.13 */
        g16[2 * i] = (uint8_t)(v >> 8);
        g16[2 * i + 1] = (uint8_t)v;
    }
    write_png_ex(tpath("g16.png"), W, H, PNG_COLOR_TYPE_GRAY, 16, g16, NULL, 0, NULL, 0, 0);
    CHECK(pc_image_read(tpath("g16.png"), 0, 0, &im) == PC_OK, "%s", err());
    CHECK(im.c == 1 && im.data[0] == 18 && memcmp(im.data + 1, g8 + 1, W * H - 1) == 0,
          "gray16 -> 8 (first %d)", im.data ? im.data[0] : -1);
    pc_image_free(&im);

    /* gray + alpha: alpha dropped */
    uint8_t ga[W * H * 2];
    for (int i = 0; i < W * H; i++) ga[2 * i] = g8[i], ga[2 * i + 1] = (uint8_t)(i * 31);
    write_png(tpath("ga.png"), W, H, PNG_COLOR_TYPE_GRAY_ALPHA, ga);
    CHECK(pc_image_read(tpath("ga.png"), 0, 0, &im) == PC_OK, "%s", err());
    CHECK(im.c == 1 && im.src_gray && memcmp(im.data, g8, sizeof g8) == 0, "gray+alpha");
    pc_image_free(&im);

    /* RGB, exact; -> gray with the ITU-R 601 weights */
    uint8_t rgb[W * H * 3];
    for (int i = 0; i < W * H * 3; i++) rgb[i] = (uint8_t)(i * 37 + 11);
    write_png(tpath("rgb.png"), W, H, PNG_COLOR_TYPE_RGB, rgb);
    CHECK(pc_image_read(tpath("rgb.png"), 0, 0, &im) == PC_OK, "%s", err());
    CHECK(im.c == 3 && !im.src_gray && memcmp(im.data, rgb, sizeof rgb) == 0, "rgb");
    pc_image_free(&im);
    CHECK(pc_image_read(tpath("rgb.png"), 1, 0, &im) == PC_OK, "%s", err());
    ok = im.c == 1;
    for (int i = 0; ok && i < W * H; i++) {
        unsigned y = (19595u * rgb[3 * i] + 38470u * rgb[3 * i + 1] + 7471u * rgb[3 * i + 2] + 32768u) >> 16;
        ok = im.data[i] == y;
    }
    CHECK(ok, "rgb -> gray luma");
    pc_image_free(&im);

    /* RGBA: alpha dropped (not composited) */
    uint8_t rgba[W * H * 4];
    for (int i = 0; i < W * H; i++) {
        memcpy(rgba + 4 * i, rgb + 3 * i, 3);
        rgba[4 * i + 3] = (uint8_t)(i * 13); /* includes fully transparent pixel 0 */
    }
    write_png(tpath("rgba.png"), W, H, PNG_COLOR_TYPE_RGBA, rgba);
    CHECK(pc_image_read(tpath("rgba.png"), 3, 0, &im) == PC_OK, "%s", err());
    CHECK(im.c == 3 && memcmp(im.data, rgb, sizeof rgb) == 0, "rgba drops alpha");
    pc_image_free(&im);

    /* RGB 16-bit */
    uint8_t rgb16[W * H * 6];
    for (int i = 0; i < W * H * 3; i++) rgb16[2 * i] = rgb[i], rgb16[2 * i + 1] = rgb[i];
    write_png_ex(tpath("rgb16.png"), W, H, PNG_COLOR_TYPE_RGB, 16, rgb16, NULL, 0, NULL, 0, 0);
    CHECK(pc_image_read(tpath("rgb16.png"), 3, 0, &im) == PC_OK, "%s", err());
    CHECK(im.c == 3 && memcmp(im.data, rgb, sizeof rgb) == 0, "rgb16");
    pc_image_free(&im);

    /* palette (with tRNS transparency, which is dropped too) */
    png_color pal[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
    uint8_t trns[4] = {255, 0, 128, 255};
    uint8_t idx[W * H];
    for (int i = 0; i < W * H; i++) idx[i] = (uint8_t)(i % 4);
    write_png_ex(tpath("pal.png"), W, H, PNG_COLOR_TYPE_PALETTE, 8, idx, pal, 4, trns, 4, 0);
    CHECK(pc_image_read(tpath("pal.png"), 0, 0, &im) == PC_OK, "%s", err());
    ok = im.c == 3 && !im.src_gray;
    for (int i = 0; ok && i < W * H; i++)
        ok = im.data[3 * i] == pal[i % 4].red && im.data[3 * i + 1] == pal[i % 4].green &&
             im.data[3 * i + 2] == pal[i % 4].blue;
    CHECK(ok, "palette -> RGB");
    pc_image_free(&im);
    /* a palette of grays counts as gray; 2-bit palette */
    png_color gpal[3] = {{0, 0, 0}, {100, 100, 100}, {250, 250, 250}};
    uint8_t packed[H * 2]; /* 5 pixels of 2 bits = 2 bytes per row */
    /* row: indices 1,2,2,2 | 1 -> bytes 0b01101010 = 0x6A, 0b01000000 = 0x40 */
    for (int y = 0; y < H; y++) packed[2 * y] = 0x6A, packed[2 * y + 1] = 0x40;
    write_png_ex(tpath("gpal.png"), W, H, PNG_COLOR_TYPE_PALETTE, 2, packed, gpal, 3, NULL, 0, 0);
    CHECK(pc_image_read(tpath("gpal.png"), 0, 0, &im) == PC_OK, "%s", err());
    CHECK(im.c == 1 && im.src_gray && im.data[0] == 100 && im.data[1] == 250 && im.data[4] == 100,
          "gray palette: c=%d %d %d", im.c, im.data ? im.data[0] : -1, im.data ? im.data[1] : -1);
    pc_image_free(&im);

    /* 1-bit gray and an interlaced (Adam7) RGB image */
    uint8_t bits[H] = {0xA8, 0x50, 0xF8}; /* 10101, 01010, 11111 */
    write_png_ex(tpath("g1.png"), W, H, PNG_COLOR_TYPE_GRAY, 1, bits, NULL, 0, NULL, 0, 0);
    CHECK(pc_image_read(tpath("g1.png"), 0, 0, &im) == PC_OK, "%s", err());
    CHECK(im.c == 1 && im.data[0] == 255 && im.data[1] == 0 && im.data[5] == 0 && im.data[6] == 255 &&
              im.data[14] == 255, "1-bit gray");
    pc_image_free(&im);
    enum { IW = 13, IH = 11 };
    uint8_t irgb[IW * IH * 3];
    for (int i = 0; i < IW * IH * 3; i++) irgb[i] = (uint8_t)(i * 7 + 1);
    write_png_ex(tpath("inter.png"), IW, IH, PNG_COLOR_TYPE_RGB, 8, irgb, NULL, 0, NULL, 0, 1);
    CHECK(pc_image_read(tpath("inter.png"), 3, 0, &im) == PC_OK, "%s", err());
    CHECK(im.w == IW && im.h == IH && memcmp(im.data, irgb, sizeof irgb) == 0, "interlaced PNG");
    pc_image_free(&im);
}

static int max_abs_diff(const uint8_t *a, const uint8_t *b, size_t n) {
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > m) m = d;
    }
    return m;
}

static void test_jpeg_decoding(void) {
    pc_image im;
    enum { W = 24, H = 16 };
    /* gray */
    uint8_t g[W * H];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) g[y * W + x] = (uint8_t)(30 + x * 6 + y * 2);
    write_jpeg(tpath("g.jpg"), W, H, JCS_GRAYSCALE, 1, g, 95, 0);
    CHECK(pc_image_read(tpath("g.jpg"), 0, 0, &im) == PC_OK, "%s", err());
    CHECK(im.w == W && im.h == H && im.c == 1 && im.src_gray && im.format == PC_IMAGE_JPEG, "gray jpeg");
    CHECK(im.data && max_abs_diff(im.data, g, sizeof g) <= 3, "gray jpeg values");
    pc_image_free(&im);

    /* RGB; and as gray (luma) */
    uint8_t rgb[W * H * 3], luma[W * H];
    smooth_rgb(rgb, W, H, 0);
    for (int i = 0; i < W * H; i++)
        luma[i] = (uint8_t)((19595u * rgb[3 * i] + 38470u * rgb[3 * i + 1] + 7471u * rgb[3 * i + 2] + 32768u) >> 16);
    write_jpeg(tpath("rgb.jpg"), W, H, JCS_RGB, 3, rgb, 95, 0);
    CHECK(pc_image_read(tpath("rgb.jpg"), 0, 0, &im) == PC_OK, "%s", err());
    CHECK(im.c == 3 && !im.src_gray, "rgb jpeg c=%d", im.c);
    int d = im.data ? max_abs_diff(im.data, rgb, sizeof rgb) : 999;
    CHECK(d <= 8, "rgb jpeg values (max diff %d)", d);
    pc_image_free(&im);
    CHECK(pc_image_read(tpath("rgb.jpg"), 1, 0, &im) == PC_OK, "%s", err());
    d = im.data ? max_abs_diff(im.data, luma, sizeof luma) : 999;
    CHECK(im.c == 1 && d <= 4, "rgb jpeg as gray (max diff %d)", d);
    pc_image_free(&im);

    /* CMYK with an Adobe marker (stored inverted, as Photoshop does): stored (s0..s3)
     * means ink 255 - s, so R = s0 * s3 / 255. Also as YCCK. */
    uint8_t cmyk[W * H * 4];
    for (int i = 0; i < W * H; i++) {
        int left = (i % W) < W / 2;
        cmyk[4 * i] = left ? 200 : 255;
        cmyk[4 * i + 1] = left ? 100 : 0;
        cmyk[4 * i + 2] = left ? 50 : 128;
        cmyk[4 * i + 3] = left ? 128 : 255;
    }
    const uint8_t want_l[3] = {100, 50, 25}, want_r[3] = {255, 0, 128};
    for (int ycck = 0; ycck < 2; ycck++) {
        const char *name = ycck ? "ycck.jpg" : "cmyk.jpg";
        write_jpeg(tpath("%s", name), W, H, JCS_CMYK, 4, cmyk, 98, ycck);
        CHECK(pc_image_read(tpath("%s", name), 0, 0, &im) == PC_OK, "%s", err());
        CHECK(im.c == 3, "%s channels %d", name, im.c);
        if (im.data) {
            /* away from the edge between the halves (JPEG blocks are 8 wide; W/2 = 12) */
            const uint8_t *pl = im.data + ((size_t)5 * W + 3) * 3, *pr = im.data + ((size_t)5 * W + 20) * 3;
            int dl = 0, dr = 0;
            for (int k = 0; k < 3; k++) {
                dl = PC_MAX(dl, abs(pl[k] - want_l[k]));
                dr = PC_MAX(dr, abs(pr[k] - want_r[k]));
            }
            CHECK(dl <= 4 && dr <= 4, "%s: left (%d,%d,%d) right (%d,%d,%d)", name, pl[0], pl[1],
                  pl[2], pr[0], pr[1], pr[2]);
        }
        pc_image_free(&im);
    }

    /* the file type comes from the magic bytes, not the extension */
    size_t n;
    uint8_t *b = read_file(tpath("rgb.jpg"), &n);
    write_file(tpath("jpeg_named.png"), b, n);
    free(b);
    CHECK(pc_image_read(tpath("jpeg_named.png"), 0, 0, &im) == PC_OK && im.format == PC_IMAGE_JPEG, "%s", err());
    pc_image_free(&im);
    b = read_file(tpath("rgb.png"), &n);
    write_file(tpath("png_named.JPG"), b, n);
    free(b);
    CHECK(pc_image_read(tpath("png_named.JPG"), 0, 0, &im) == PC_OK && im.format == PC_IMAGE_PNG, "%s", err());
    pc_image_free(&im);
}

/* Returns the error message of reading `path` (or "" if it decoded). */
static const char *read_err(const char *path, int64_t max_pixels) {
    pc_image im;
    pc_status s = pc_image_read(path, 3, max_pixels, &im);
    pc_image_free(&im);
    return s == PC_OK ? "" : pc_last_error();
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Bad files for the decoder tests and the folder tests: writes them into `dir`. */
static void write_bad_files(const char *dir, int which_mask) {
    char p[1024];
    size_t n;
    uint8_t *jpg = read_file(tpath("rgb.jpg"), &n);
    size_t pn;
    uint8_t *png = read_file(tpath("inter.png"), &pn);
    if (which_mask & 1) { /* zero bytes */
        snprintf(p, sizeof p, "%s/empty.png", dir);
        write_file(p, "", 0);
    }
    if (which_mask & 2) { /* truncated JPEG */
        snprintf(p, sizeof p, "%s/trunc.jpg", dir);
        write_file(p, jpg, n * 6 / 10);
    }
    if (which_mask & 4) { /* not an image */
        snprintf(p, sizeof p, "%s/text.jpeg", dir);
        write_file(p, "hello, world\n", 13);
    }
    if (which_mask & 8) { /* PNG with a damaged IDAT (CRC error) */
        snprintf(p, sizeof p, "%s/crc.png", dir);
        uint8_t *c = malloc(pn);
        memcpy(c, png, pn);
        for (size_t i = 8; i + 8 < pn; i++)
            if (memcmp(c + i, "IDAT", 4) == 0) {
                c[i + 10] ^= 0x55;
                break;
            }
        write_file(p, c, pn);
        free(c);
    }
    if (which_mask & 16) { /* PNG header claiming 100000 x 100000 */
        uint8_t h[8 + 25];
        memcpy(h, "\x89PNG\r\n\x1a\n", 8);
        put_be32(h + 8, 13);
        memcpy(h + 12, "IHDR", 4);
        put_be32(h + 16, 100000);
        put_be32(h + 20, 100000);
        h[24] = 8, h[25] = 2, h[26] = 0, h[27] = 0, h[28] = 0;
        put_be32(h + 29, (uint32_t)crc32(crc32(0, NULL, 0), h + 12, 17));
        snprintf(p, sizeof p, "%s/huge.png", dir);
        write_file(p, h, sizeof h);
    }
    if (which_mask & 32) { /* a directory named like an image, and a dangling symlink */
        snprintf(p, sizeof p, "%s/dir.jpg", dir);
        mkdir(p, 0755);
        snprintf(p, sizeof p, "%s/dangling.png", dir);
        if (symlink("/nonexistent/parcnn-test-target.png", p) != 0) perror("symlink");
    }
    if (which_mask & 64) { /* truncated PNG */
        snprintf(p, sizeof p, "%s/trunc.png", dir);
        write_file(p, png, pn / 2);
    }
    free(jpg);
    free(png);
}

static void test_bad_inputs(void) {
    mkdir_p(tpath("bad"));
    write_bad_files(tpath("bad"), 127);
    const char *e;
    e = read_err(tpath("bad/empty.png"), 0);
    CHECK(contains(e, "bad/empty.png: empty file (0 bytes)"), "zero bytes: %s", e);
    e = read_err(tpath("bad/trunc.jpg"), 0);
    CHECK(contains(e, "bad/trunc.jpg: truncated JPEG data"), "truncated jpeg: %s", e);
    e = read_err(tpath("bad/trunc.png"), 0);
    CHECK(contains(e, "bad/trunc.png: truncated PNG data"), "truncated png: %s", e);
    e = read_err(tpath("bad/text.jpeg"), 0);
    CHECK(contains(e, "bad/text.jpeg: not a PNG or JPEG file"), "text: %s", e);
    e = read_err(tpath("bad/crc.png"), 0);
    CHECK(contains(e, "bad/crc.png: corrupt PNG data"), "crc: %s", e);
    e = read_err(tpath("bad/huge.png"), 0);
    CHECK(contains(e, "bad/huge.png: 100000x100000 pixels exceeds the limit of 67108864"), "huge: %s", e);
    e = read_err(tpath("bad/dir.jpg"), 0);
    CHECK(contains(e, "bad/dir.jpg: not a regular file"), "dir: %s", e);
    e = read_err(tpath("bad/dangling.png"), 0);
    CHECK(contains(e, "bad/dangling.png: cannot open"), "dangling: %s", e);
    e = read_err(tpath("bad/missing.png"), 0);
    CHECK(contains(e, "missing.png: cannot open: No such file"), "missing: %s", e);
    /* the pixel limit applies from the header, and can be lowered */
    e = read_err(tpath("rgb.jpg"), 100);
    CHECK(contains(e, "rgb.jpg: 24x16 pixels exceeds the limit of 100"), "limit: %s", e);
    /* a JPEG whose SOF claims 30000 x 30000 */
    size_t n;
    uint8_t *j = read_file(tpath("rgb.jpg"), &n);
    for (size_t i = 2; i + 9 < n; i++)
        if (j[i] == 0xFF && (j[i + 1] == 0xC0 || j[i + 1] == 0xC2)) {
            j[i + 5] = 30000 >> 8, j[i + 6] = 30000 & 255, j[i + 7] = 30000 >> 8, j[i + 8] = 30000 & 255;
            break;
        }
    write_file(tpath("bad/huge.jpg"), j, n);
    e = read_err(tpath("bad/huge.jpg"), 0);
    CHECK(contains(e, "bad/huge.jpg: 30000x30000 pixels exceeds the limit of 67108864"), "huge jpeg: %s", e);
    /* damaged JPEG header (precision 7) and an RST marker injected into the scan data */
    free(j);
    j = read_file(tpath("rgb.jpg"), &n);
    uint8_t *j2 = malloc(n);
    memcpy(j2, j, n);
    for (size_t i = 2; i + 9 < n; i++)
        if (j[i] == 0xFF && j[i + 1] == 0xC0) {
            j[i + 4] = 7;
            break;
        }
    write_file(tpath("bad/precision.jpg"), j, n);
    e = read_err(tpath("bad/precision.jpg"), 0);
    CHECK(contains(e, "bad/precision.jpg: corrupt JPEG data:"), "precision: %s", e);
    size_t sos = 0;
    for (size_t i = 2; i + 1 < n; i++)
        if (j2[i] == 0xFF && j2[i + 1] == 0xDA) {
            sos = i;
            break;
        }
    size_t mid = sos + (n - sos) / 2;
    j2[mid] = 0xFF, j2[mid + 1] = 0xD3;
    write_file(tpath("bad/marker.jpg"), j2, n);
    e = read_err(tpath("bad/marker.jpg"), 0);
    CHECK(contains(e, "bad/marker.jpg: corrupt JPEG data: Corrupt JPEG data: premature end of data segment"),
          "marker: %s", e);
    free(j);
    free(j2);
    /* a JPEG cut off right after SOI */
    write_file(tpath("bad/soi.jpg"), "\xFF\xD8\xFF", 3);
    e = read_err(tpath("bad/soi.jpg"), 0);
    CHECK(contains(e, "bad/soi.jpg: "), "soi: %s", e);
    write_file(tpath("bad/gif.png"), "GIF89a\1\0\1\0\0\0\0;", 14);
    e = read_err(tpath("bad/gif.png"), 0);
    CHECK(contains(e, "not a PNG or JPEG file (looks like GIF)"), "gif: %s", e);
}

/* ---------------------------------------------------------------- resizing */

static void test_resize(void) {
    /* a constant image stays constant, shrinking and enlarging */
    enum { W = 7, H = 5 };
    uint8_t in[W * H * 3], out[40 * 40 * 3];
    for (int i = 0; i < W * H; i++) in[3 * i] = 10, in[3 * i + 1] = 200, in[3 * i + 2] = 77;
    const int sizes[4][2] = {{3, 2}, {13, 11}, {1, 1}, {40, 3}};
    for (int t = 0; t < 4; t++) {
        int ow = sizes[t][0], oh = sizes[t][1];
        CHECK(pc_image_resize(in, H, W, 3, oh, ow, 0, out) == PC_OK, "%s", err());
        int ok = 1;
        for (int i = 0; i < ow * oh; i++) ok &= out[3 * i] == 10 && out[3 * i + 1] == 200 && out[3 * i + 2] == 77;
        CHECK(ok, "constant stays constant at %dx%d", ow, oh);
    }
    /* same size: exact copy; CHW output transposes */
    uint8_t rnd[W * H * 3], chw[W * H * 3];
    for (int i = 0; i < W * H * 3; i++) rnd[i] = (uint8_t)(pc_rand64(1, 9, 0, 0, (uint64_t)i) >> 56);
    CHECK(pc_image_resize(rnd, H, W, 3, H, W, 0, out) == PC_OK && memcmp(out, rnd, sizeof rnd) == 0, "identity");
    CHECK(pc_image_resize(rnd, H, W, 3, H, W, 1, chw) == PC_OK, "chw");
    CHECK(chw[0] == rnd[0] && chw[W * H] == rnd[1] && chw[2 * W * H + 1] == rnd[5], "chw layout");

    /* a 2:1 downscale of a one-pixel checkerboard averages to gray (antialiasing; point
     * sampling would give 0 or 255) */
    enum { C = 16 };
    uint8_t cb[C * C], small[C / 2 * C / 2];
    for (int y = 0; y < C; y++)
        for (int x = 0; x < C; x++) cb[y * C + x] = ((x + y) & 1) ? 255 : 0;
    CHECK(pc_image_resize(cb, C, C, 1, C / 2, C / 2, 0, small) == PC_OK, "%s", err());
    int interior_ok = 1, lo = 255, hi = 0;
    double sum = 0;
    for (int y = 0; y < C / 2; y++)
        for (int x = 0; x < C / 2; x++) {
            int v = small[y * (C / 2) + x];
            sum += v;
            lo = PC_MIN(lo, v), hi = PC_MAX(hi, v);
            if (y > 0 && x > 0 && y < C / 2 - 1 && x < C / 2 - 1) interior_ok &= v == 127 || v == 128;
        }
    CHECK(interior_ok && lo >= 100 && hi <= 155, "checkerboard -> gray: range [%d, %d]", lo, hi);
    CHECK(fabs(sum / (C * C / 4) - 127.5) < 3, "checkerboard mean %.2f", sum / (C * C / 4));

    /* enlarging is bilinear with half-pixel centres: [0 255] -> [0 64 191 255] */
    uint8_t two[2] = {0, 255}, four[4];
    CHECK(pc_image_resize(two, 1, 2, 1, 1, 4, 0, four) == PC_OK, "%s", err());
    CHECK(four[0] == 0 && four[1] == 64 && four[2] == 191 && four[3] == 255, "bilinear up: %d %d %d %d",
          four[0], four[1], four[2], four[3]);
}

/* ---------------------------------------------------------------- folders */

static pc_folder_options opts(void) {
    pc_folder_options o;
    pc_folder_options_default(&o);
    o.image_size = 8;
    o.decode_threads = 2;
    return o;
}

/* The folder image with identity id is a solid gray PNG of value id (ids < 256). */
static void make_flat_folder(const char *root, const char *const *classes, const int *counts, int nc,
                             int base_id) {
    int id = base_id;
    for (int c = 0; c < nc; c++) {
        char d[1024];
        snprintf(d, sizeof d, "%s/%s", root, classes[c]);
        mkdir_p(d);
        for (int i = 0; i < counts[c]; i++) {
            char p[1100];
            snprintf(p, sizeof p, "%s/img%03d.png", d, i);
            write_solid_png(p, 6, 4, 1, (uint8_t)id, 0, 0);
            id++;
        }
    }
}

static int load_lines(const char *path, char lines[][256], int max) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0;
    char buf[256];
    while (n < max && fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = 0;
        memcpy(lines[n++], buf, sizeof buf);
    }
    fclose(f);
    return n;
}

static void test_flat_split(void) {
    const char *cls[3] = {"emu", "cat", "dog"}; /* sorted: cat, dog, emu */
    const int cnt[3] = {3, 10, 7};
    make_flat_folder(tpath("flat"), cls, cnt, 3, 1);
    /* things to ignore: hidden files and folders, non-images, a stray top-level image */
    mkdir_p(tpath("flat/.git"));
    write_solid_png(tpath("flat/.git/x.png"), 4, 4, 1, 9, 0, 0);
    write_solid_png(tpath("flat/cat/.hidden.png"), 4, 4, 1, 9, 0, 0);
    write_file(tpath("flat/cat/notes.txt"), "x", 1);
    write_file(tpath("flat/cat/Thumbs.db"), "x", 1);
    write_file(tpath("flat/README"), "x", 1);
    /* upper-case extensions count: IMG.PNG, photo.JPEG */
    write_solid_png(tpath("flat/dog/zz_upper.PNG"), 6, 4, 1, 200, 0, 0);
    write_rgb_jpeg(tpath("flat/dog/zz_photo.JPEG"), 6, 4, 0);

    pc_folder_options o = opts();
    pc_dataset d;
    pc_folder_report r;
    /* no split: everything; no evaluation part without --val-split */
    CHECK(pc_dataset_load_folder(tpath("flat"), 1, &o, &d, &r) == PC_OK, "%s", err());
    CHECK(d.n == 22 && d.classes == 3 && d.c == 3 && d.h == 8 && d.w == 8, "flat: n=%lld classes=%d c=%d",
          (long long)d.n, d.classes, d.c);
    CHECK(d.classes == 3 && strcmp(d.class_names[0], "cat") == 0 && strcmp(d.class_names[1], "dog") == 0 &&
              strcmp(d.class_names[2], "emu") == 0, "sorted class names");
    CHECK(r.class_counts && r.class_counts[0] == 10 && r.class_counts[1] == 9 && r.class_counts[2] == 3,
          "per-class counts");
    CHECK(r.ignored >= 4, "ignored entries %lld", (long long)r.ignored);
    /* round-robin over the classes: cat0 dog0 emu0 cat1 dog1 emu1 ... dog8 cat9 */
    CHECK(d.labels[0] == 0 && d.labels[1] == 1 && d.labels[2] == 2 && d.labels[3] == 0 &&
              d.labels[20] == 1 && d.labels[21] == 0, "labels interleaved over the classes");
    /* within a class, name order; cat images have ids 4..13 */
    CHECK(d.pixels[0] == 4 && d.pixels[(size_t)21 * 3 * 64] == 13, "sample order");
    pc_folder_report_free(&r);
    pc_dataset_free(&d);
    pc_status s = pc_dataset_load_folder(tpath("flat"), 0, &o, &d, &r);
    CHECK(s == PC_ERR_USAGE && contains(err(), "--val-split"), "eval without split: %s", err());

    /* stratified, seeded split; lists written */
    o.val_split = 0.3f;
    o.seed = 42;
    o.list_dir = tpath("flat_lists");
    pc_dataset tr, va;
    pc_folder_report rt, rv;
    CHECK(pc_dataset_load_folder(tpath("flat"), 1, &o, &tr, &rt) == PC_OK, "%s", err());
    CHECK(pc_dataset_load_folder(tpath("flat"), 0, &o, &va, &rv) == PC_OK, "%s", err());
    /* cat 10 -> 3 val, dog 9 -> 3 (2.7), emu 3 -> 1 (0.9) */
    CHECK(rv.class_counts && rv.class_counts[0] == 3 && rv.class_counts[1] == 3 && rv.class_counts[2] == 1,
          "val counts %lld %lld %lld", rv.class_counts ? (long long)rv.class_counts[0] : -1,
          rv.class_counts ? (long long)rv.class_counts[1] : -1, rv.class_counts ? (long long)rv.class_counts[2] : -1);
    CHECK(rt.class_counts && rt.class_counts[0] == 7 && rt.class_counts[1] == 6 && rt.class_counts[2] == 2,
          "train counts");
    CHECK(tr.n + va.n == 22 && strcmp(rv.part, "val") == 0, "parts cover the folder");
    /* disjoint: the gray ids of the cat and emu images (dog has a JPEG) */
    int seen[256] = {0}, dup = 0;
    /* (channels are decided per part: here the one colour image is held out, so the
     * training part is gray; the lead passes the training part's c for evaluation) */
    for (int64_t i = 0; i < tr.n; i++) dup += seen[tr.pixels[(size_t)i * tr.c * 64]]++ > 0 && tr.labels[i] != 1;
    for (int64_t i = 0; i < va.n; i++) dup += seen[va.pixels[(size_t)i * va.c * 64]]++ > 0 && va.labels[i] != 1;
    CHECK(tr.c == 1 && va.c == 3, "channels per part: train %d val %d", tr.c, va.c);
    CHECK(dup == 0, "train and val are disjoint");
    static char lt[64][256], lv[64][256];
    int nlt = load_lines(tpath("flat_lists/train.txt"), lt, 64), nlv = load_lines(tpath("flat_lists/val.txt"), lv, 64);
    CHECK(nlt == 15 && nlv == 7, "list lengths %d %d", nlt, nlv);
    CHECK(nlv > 0 && strncmp(lv[0], "cat/img", 7) == 0, "list paths relative to DIR: %s", nlv > 0 ? lv[0] : "");
    /* reproducible for the seed, different for another */
    pc_dataset va2;
    CHECK(pc_dataset_load_folder(tpath("flat"), 0, &o, &va2, NULL) == PC_OK, "%s", err());
    CHECK(va2.n == va.n && va2.c == va.c && memcmp(va2.pixels, va.pixels, (size_t)va.n * va.c * 64) == 0,
          "seeded split reproducible");
    pc_dataset_free(&va2);
    o.seed = 43;
    o.list_dir = NULL;
    CHECK(pc_dataset_load_folder(tpath("flat"), 0, &o, &va2, NULL) == PC_OK, "%s", err());
    CHECK(va2.n == va.n && (va2.c != va.c || memcmp(va2.pixels, va.pixels, (size_t)va.n * va.c * 64) != 0),
          "another seed, another split");
    pc_dataset_free(&va2);
    pc_folder_report_print(&rv, &va, stdout);
    pc_folder_report_free(&rt);
    pc_folder_report_free(&rv);
    pc_dataset_free(&tr);
    pc_dataset_free(&va);

    /* through the dataset spec */
    char spec[1100];
    snprintf(spec, sizeof spec, "folder:%s", tpath("flat"));
    CHECK(pc_dataset_load(spec, 1, &d) == PC_OK && d.n == 22 && d.h == 32, "folder: spec default opts: %s", err());
    pc_dataset_free(&d);
    o = opts();
    o.val_split = 0.5f;
    o.report = &r;
    /* round(10 / 2) + round(4.5) + round(1.5) = 5 + 5 + 2 */
    CHECK(pc_dataset_load_ex(spec, 0, &o, &d) == PC_OK && d.h == 8 && r.kept == d.n && d.n == 12,
          "pc_dataset_load_ex: %s (n=%lld)", err(), (long long)d.n);
    pc_folder_report_free(&r);
    pc_dataset_free(&d);
    s = pc_dataset_load("nosuch:x", 1, &d);
    CHECK(s == PC_ERR_USAGE && contains(err(), "folder:DIR"), "unknown spec mentions folder:DIR: %s", err());
}

static void test_gray_auto(void) {
    const char *cls[2] = {"a", "b"};
    const int cnt[2] = {3, 2};
    make_flat_folder(tpath("grayf"), cls, cnt, 2, 50);
    pc_folder_options o = opts();
    pc_dataset d;
    CHECK(pc_dataset_load_folder(tpath("grayf"), 1, &o, &d, NULL) == PC_OK, "%s", err());
    /* order a0 b0 a1 b1 a2: ids 50 53 51 54 52 */
    CHECK(d.c == 1 && d.pixels[0] == 50 && d.pixels[64] == 53, "all gray -> 1 channel (c=%d)", d.c);
    pc_dataset_free(&d);
    o.channels = 3;
    CHECK(pc_dataset_load_folder(tpath("grayf"), 1, &o, &d, NULL) == PC_OK, "%s", err());
    CHECK(d.c == 3 && d.pixels[0] == 50 && d.pixels[64] == 50 && d.pixels[128] == 50, "gray as RGB");
    pc_dataset_free(&d);
    write_solid_png(tpath("grayf/b/color.png"), 4, 4, 0, 10, 20, 30);
    o.channels = 0;
    CHECK(pc_dataset_load_folder(tpath("grayf"), 1, &o, &d, NULL) == PC_OK, "%s", err());
    CHECK(d.c == 3, "one colour image -> 3 channels");
    pc_dataset_free(&d);
    o.channels = 1;
    CHECK(pc_dataset_load_folder(tpath("grayf"), 1, &o, &d, NULL) == PC_OK, "%s", err());
    /* colour (10,20,30) -> luma 18 */
    /* "color.png" sorts first in b, so it is sample 1 */
    CHECK(d.c == 1 && d.n == 6 && d.pixels[64] == 18, "colour as gray: %d", d.pixels[64]);
    pc_dataset_free(&d);
}

static void test_train_test_layout(void) {
    const char *cls[2] = {"alpha", "beta"};
    const int ctr[2] = {4, 3}, cte[2] = {2, 2};
    make_flat_folder(tpath("tt/train"), cls, ctr, 2, 10);
    make_flat_folder(tpath("tt/test"), cls, cte, 2, 100);
    pc_folder_options o = opts();
    pc_dataset tr, te;
    pc_folder_report r;
    CHECK(pc_dataset_load_folder(tpath("tt"), 1, &o, &tr, &r) == PC_OK, "%s", err());
    CHECK(tr.n == 7 && tr.classes == 2 && r.layout == 1 && strcmp(r.part, "train") == 0, "train part");
    pc_folder_report_free(&r);
    CHECK(pc_dataset_load_folder(tpath("tt"), 0, &o, &te, &r) == PC_OK, "%s", err());
    CHECK(te.n == 4 && te.pixels[0] == 100 && strcmp(r.part, "test") == 0, "test part");
    pc_folder_report_free(&r);
    pc_dataset_free(&tr);
    pc_dataset_free(&te);
    o.val_split = 0.2f;
    pc_status s = pc_dataset_load_folder(tpath("tt"), 1, &o, &tr, NULL);
    CHECK(s == PC_ERR_USAGE && contains(err(), "--val-split"), "val_split with a test folder: %s", err());
    o.val_split = 0;
    /* different classes */
    const char *extra[1] = {"gamma"};
    const int one[1] = {1};
    make_flat_folder(tpath("tt/test"), extra, one, 1, 150);
    s = pc_dataset_load_folder(tpath("tt"), 1, &o, &tr, NULL);
    CHECK(s == PC_ERR_DATA && contains(err(), "only in test/: gamma"), "class mismatch: %s", err());

    /* train/ + val/ */
    make_flat_folder(tpath("tv/train"), cls, ctr, 2, 10);
    make_flat_folder(tpath("tv/val"), cls, cte, 2, 100);
    CHECK(pc_dataset_load_folder(tpath("tv"), 0, &o, &te, &r) == PC_OK && te.n == 4 && strcmp(r.part, "val") == 0,
          "val/ folder: %s", err());
    pc_folder_report_free(&r);
    pc_dataset_free(&te);

    /* train/ alone: classes inside it, split with val_split */
    make_flat_folder(tpath("to/train"), cls, ctr, 2, 10);
    o.val_split = 0.25f;
    CHECK(pc_dataset_load_folder(tpath("to"), 1, &o, &tr, &r) == PC_OK && r.layout == 2 && tr.classes == 2 &&
              tr.n == 5, "train/ only: %s n=%lld", err(), (long long)tr.n);
    pc_folder_report_free(&r);
    pc_dataset_free(&tr);
}

static void test_folder_errors(void) {
    pc_folder_options o = opts();
    pc_dataset d;
    /* empty class folder */
    const char *cls[2] = {"full", "void"};
    const int cnt[2] = {2, 0};
    make_flat_folder(tpath("emptycls"), cls, cnt, 2, 1);
    write_file(tpath("emptycls/void/readme.txt"), "x", 1);
    pc_status s = pc_dataset_load_folder(tpath("emptycls"), 1, &o, &d, NULL);
    CHECK(s == PC_ERR_DATA && contains(err(), "void holds no images"), "empty class: %s", err());
    o.on_bad_skip = 1;
    s = pc_dataset_load_folder(tpath("emptycls"), 1, &o, &d, NULL);
    CHECK(s == PC_ERR_DATA && contains(err(), "void holds no images"), "empty class (skip mode): %s", err());
    o.on_bad_skip = 0;
    /* no images at all */
    mkdir_p(tpath("noimg/a"));
    write_file(tpath("noimg/a/x.txt"), "x", 1);
    s = pc_dataset_load_folder(tpath("noimg"), 1, &o, &d, NULL);
    CHECK(s == PC_ERR_DATA && contains(err(), "no images found"), "no images: %s", err());
    mkdir_p(tpath("nothing"));
    s = pc_dataset_load_folder(tpath("nothing"), 1, &o, &d, NULL);
    CHECK(s == PC_ERR_DATA && contains(err(), "no images found"), "empty dir: %s", err());
    /* images but no class folders */
    mkdir_p(tpath("loose"));
    write_solid_png(tpath("loose/a.png"), 4, 4, 1, 1, 0, 0);
    s = pc_dataset_load_folder(tpath("loose"), 1, &o, &d, NULL);
    CHECK(s == PC_ERR_DATA && contains(err(), "no class folders"), "loose images: %s", err());
    s = pc_dataset_load_folder(tpath("does-not-exist"), 1, &o, &d, NULL);
    CHECK(s == PC_ERR_DATA && contains(err(), "not a directory"), "missing dir: %s", err());
    o = opts();
    o.val_split = 0.95f;
    s = pc_dataset_load_folder(tpath("loose"), 1, &o, &d, NULL);
    CHECK(s == PC_ERR_USAGE && contains(err(), "--val-split"), "val_split range: %s", err());
}

static void test_bad_files_in_folder(void) {
    const char *cls[2] = {"good", "mixed"};
    const int cnt[2] = {3, 2};
    make_flat_folder(tpath("badf"), cls, cnt, 2, 1);
    write_bad_files(tpath("badf/mixed"), 127);
    pc_folder_options o = opts();
    pc_dataset d;
    pc_folder_report r;
    /* fail: the first bad file in sorted order (mixed/crc.png) is named */
    pc_status s = pc_dataset_load_folder(tpath("badf"), 1, &o, &d, &r);
    CHECK(s == PC_ERR_DATA && contains(err(), "badf/mixed/crc.png: corrupt PNG data") &&
              contains(err(), "--on-bad-image skip"), "fail mode: %s", err());
    CHECK(r.kept == 0 && r.class_counts == NULL, "report empty after failure");
    /* the same with 1 thread: the same file */
    o.decode_threads = 1;
    s = pc_dataset_load_folder(tpath("badf"), 1, &o, &d, NULL);
    CHECK(s == PC_ERR_DATA && contains(err(), "badf/mixed/crc.png"), "fail mode, 1 thread: %s", err());
    /* skip: dropped and counted, paths listed */
    o.on_bad_skip = 1;
    o.decode_threads = 3;
    s = pc_dataset_load_folder(tpath("badf"), 1, &o, &d, &r);
    CHECK(s == PC_OK, "skip mode: %s", err());
    CHECK(d.n == 5 && r.skipped == 8 && r.n_bad == 8 && r.class_counts[1] == 2, "skipped %lld kept %lld",
          (long long)r.skipped, (long long)d.n);
    int named = 0;
    const char *want[8] = {"crc.png: corrupt", "dangling.png: cannot open", "dir.jpg: not a regular",
                           "empty.png: empty file", "huge.png: 100000x100000", "text.jpeg: not a PNG",
                           "trunc.jpg: truncated JPEG", "trunc.png: truncated PNG"};
    for (int i = 0; i < 8 && i < r.n_bad; i++) named += contains(r.bad[i], want[i]);
    CHECK(named == 8, "bad files named in sorted order (%d of 8)", named);
    pc_folder_report_print(&r, &d, stdout);
    pc_folder_report_free(&r);
    pc_dataset_free(&d);
    /* a class whose every image is bad */
    mkdir_p(tpath("allbad/ok"));
    mkdir_p(tpath("allbad/broken"));
    write_solid_png(tpath("allbad/ok/a.png"), 4, 4, 1, 1, 0, 0);
    write_file(tpath("allbad/broken/a.png"), "", 0);
    s = pc_dataset_load_folder(tpath("allbad"), 1, &o, &d, NULL);
    CHECK(s == PC_ERR_DATA && contains(err(), "every image of class broken"), "all bad: %s", err());
}

static void touch_later(const char *path, int seconds) {
    struct stat st;
    stat(path, &st);
    struct timeval tv[2] = {{st.st_atime, 0}, {st.st_mtime + seconds, 0}};
    utimes(path, tv);
}

static void test_cache_and_threads(void) {
    /* JPEGs of assorted sizes, resized to 16x16 */
    const char *cls[3] = {"c0", "c1", "c2"};
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 20; i++) {
            char p[1024];
            snprintf(p, sizeof p, "%s/cached/%s", tmpdir, cls[c]);
            mkdir_p(p);
            snprintf(p, sizeof p, "%s/cached/%s/%02d.jpg", tmpdir, cls[c], i);
            write_rgb_jpeg(p, 20 + i * 3, 18 + (i * 7) % 23, c * 20 + i);
        }
    write_file(tpath("cached/c1/zz_bad.jpg"), "\xFF\xD8\xFF\xE0", 4);
    pc_folder_options o = opts();
    o.image_size = 16;
    o.on_bad_skip = 1;
    /* thread-count independence */
    pc_dataset d1, d3;
    o.decode_threads = 1;
    CHECK(pc_dataset_load_folder(tpath("cached"), 1, &o, &d1, NULL) == PC_OK, "%s", err());
    o.decode_threads = 3;
    CHECK(pc_dataset_load_folder(tpath("cached"), 1, &o, &d3, NULL) == PC_OK, "%s", err());
    const size_t S = 3 * 256;
    CHECK(d1.n == 60 && d3.n == d1.n && d1.c == 3 && memcmp(d1.pixels, d3.pixels, (size_t)d1.n * S) == 0 &&
              memcmp(d1.labels, d3.labels, (size_t)d1.n * 4) == 0, "1 vs 3 threads identical (n=%lld)", (long long)d1.n);
    pc_dataset_free(&d3);

    /* the cache: first load writes, second reads (identical), a touched file rebuilds */
    o.cache = tpath("cachedir");
    pc_dataset a, b;
    pc_folder_report ra, rb;
    CHECK(pc_dataset_load_folder(tpath("cached"), 1, &o, &a, &ra) == PC_OK, "%s", err());
    CHECK(!ra.from_cache && ra.cache_file && access(ra.cache_file, F_OK) == 0, "cache written: %s",
          ra.cache_file ? ra.cache_file : "(null)");
    CHECK(pc_dataset_load_folder(tpath("cached"), 1, &o, &b, &rb) == PC_OK, "%s", err());
    CHECK(rb.from_cache && b.n == a.n && b.c == a.c && memcmp(a.pixels, b.pixels, (size_t)a.n * S) == 0 &&
              memcmp(a.labels, b.labels, (size_t)a.n * 4) == 0 && memcmp(a.pixels, d1.pixels, (size_t)a.n * S) == 0,
          "second load from the cache, identical");
    CHECK(rb.skipped == 1 && rb.n_bad == 1 && contains(rb.bad[0], "zz_bad.jpg: truncated JPEG data"),
          "skipped files remembered: %s", rb.n_bad ? rb.bad[0] : "");
    printf("cache: first load %.4f s (decode), second %.4f s (cache)\n", ra.load_seconds, rb.load_seconds);
    pc_folder_report_print(&rb, &b, stdout);
    pc_folder_report_free(&rb);
    pc_dataset_free(&b);
    /* other settings (a split part) get their own cache file */
    pc_folder_options o2 = o;
    o2.val_split = 0.25f;
    CHECK(pc_dataset_load_folder(tpath("cached"), 0, &o2, &b, &rb) == PC_OK && !rb.from_cache && rb.cache_file &&
              strcmp(rb.cache_file, ra.cache_file) != 0 && b.n == 15, "val part separate cache (n=%lld)", (long long)b.n);
    pc_folder_report_free(&rb);
    pc_dataset_free(&b);
    /* fail mode does not accept a cache that recorded bad files: it names the file */
    o.on_bad_skip = 0;
    pc_status s = pc_dataset_load_folder(tpath("cached"), 1, &o, &b, NULL);
    CHECK(s == PC_ERR_DATA && contains(err(), "zz_bad.jpg"), "fail mode with a cache: %s", err());
    o.on_bad_skip = 1;
    /* touching a file invalidates */
    char victim[1024];
    snprintf(victim, sizeof victim, "%s/cached/c0/03.jpg", tmpdir);
    touch_later(victim, 10);
    CHECK(pc_dataset_load_folder(tpath("cached"), 1, &o, &b, &rb) == PC_OK && !rb.from_cache, "touched -> rebuilt");
    pc_folder_report_free(&rb);
    pc_dataset_free(&b);
    CHECK(pc_dataset_load_folder(tpath("cached"), 1, &o, &b, &rb) == PC_OK && rb.from_cache, "then cached again");
    pc_folder_report_free(&rb);
    pc_dataset_free(&b);
    /* a new file invalidates, and so does its removal */
    write_rgb_jpeg(tpath("cached/c2/new.jpg"), 30, 30, 3);
    CHECK(pc_dataset_load_folder(tpath("cached"), 1, &o, &b, &rb) == PC_OK && !rb.from_cache && b.n == 61,
          "new file -> rebuilt");
    pc_folder_report_free(&rb);
    pc_dataset_free(&b);
    unlink(tpath("cached/c2/new.jpg"));
    CHECK(pc_dataset_load_folder(tpath("cached"), 1, &o, &b, &rb) == PC_OK && !rb.from_cache && b.n == 60,
          "removed file -> rebuilt");
    pc_folder_report_free(&rb);
    pc_dataset_free(&b);
    /* a damaged cache file is rebuilt, not trusted */
    CHECK(truncate(ra.cache_file, 100) == 0, "truncate cache");
    CHECK(pc_dataset_load_folder(tpath("cached"), 1, &o, &b, &rb) == PC_OK && !rb.from_cache && b.n == a.n &&
              memcmp(a.pixels, b.pixels, (size_t)a.n * S) == 0, "damaged cache rebuilt");
    pc_folder_report_free(&rb);
    pc_dataset_free(&b);
    CHECK(pc_dataset_load_folder(tpath("cached"), 1, &o, &b, &rb) == PC_OK && rb.from_cache, "and cached again");
    pc_folder_report_free(&rb);
    pc_dataset_free(&b);
    pc_folder_report_free(&ra);
    pc_dataset_free(&a);
    pc_dataset_free(&d1);
}

/* Gather every sample of both datasets, plain and augmented; 1 when the floats agree. */
static int same_batches(const pc_dataset *a, const pc_dataset *b) {
    float ma[4], sa[4], mb[4], sb[4];
    pc_dataset_channel_stats(a, ma, sa);
    pc_dataset_channel_stats(b, mb, sb);
    if (a->n != b->n || a->c != b->c || memcmp(ma, mb, sizeof(float) * a->c) != 0 ||
        memcmp(sa, sb, sizeof(float) * a->c) != 0)
        return 0;
    size_t sample = (size_t)a->c * a->h * a->w;
    int64_t *idx = malloc(sizeof *idx * a->n);
    float *x = malloc(sizeof *x * sample * a->n), *y = malloc(sizeof *y * sample * a->n);
    int32_t *la = malloc(sizeof *la * a->n), *lb = malloc(sizeof *lb * a->n);
    for (int64_t i = 0; i < a->n; i++) idx[i] = a->n - 1 - i;
    pc_augment_config aug;
    int same = pc_augment_parse("flip,crop=2,brightness=0.2", &aug) == PC_OK;
    same &= pc_dataset_gather(a, idx, (int)a->n, ma, sa, x, la) == PC_OK &&
            pc_dataset_gather(b, idx, (int)b->n, mb, sb, y, lb) == PC_OK &&
            memcmp(x, y, sizeof *x * sample * a->n) == 0 && memcmp(la, lb, sizeof *la * a->n) == 0;
    same &= pc_dataset_gather_augmented(a, idx, (int)a->n, ma, sa, &aug, 5, 2, x, NULL) == PC_OK &&
            pc_dataset_gather_augmented(b, idx, (int)b->n, mb, sb, &aug, 5, 2, y, NULL) == PC_OK &&
            memcmp(x, y, sizeof *x * sample * a->n) == 0;
    free(idx), free(x), free(y), free(la), free(lb);
    return same;
}

/* --cache none: the same samples and normalization as decoding once into memory, each
 * decoded when it is gathered; a file changed after loading is named. */
static void test_on_demand(void) {
    pc_folder_options o = opts();
    o.image_size = 16;
    o.on_bad_skip = 1;
    pc_dataset m, od;
    pc_folder_report r;
    CHECK(pc_dataset_load_folder(tpath("cached"), 1, &o, &m, NULL) == PC_OK, "%s", err());
    o.cache = "none";
    CHECK(pc_dataset_load_folder(tpath("cached"), 1, &o, &od, &r) == PC_OK, "%s", err());
    CHECK(r.on_demand && !od.pixels && od.files && r.skipped == 1 && od.n == m.n,
          "none: no pixels kept, the bad file skipped (n=%lld)", (long long)od.n);
    CHECK(same_batches(&m, &od), "none: batches identical to the memory cache (RGB)");
    pc_folder_report_free(&r);
    pc_dataset_free(&m);
    pc_dataset_free(&od);
    /* gray images decided from the data, and a colour image forced to gray */
    for (int ch = 0; ch <= 1; ch++) {
        o = opts();
        o.channels = ch;
        CHECK(pc_dataset_load_folder(tpath("grayf"), 1, &o, &m, NULL) == PC_OK, "%s", err());
        o.cache = "none";
        CHECK(pc_dataset_load_folder(tpath("grayf"), 1, &o, &od, NULL) == PC_OK, "%s", err());
        CHECK(od.c == m.c && same_batches(&m, &od), "none: identical with --channels %d (c=%d)", ch, od.c);
        pc_dataset_free(&m);
        pc_dataset_free(&od);
    }
    /* a file damaged after loading: the gather fails naming it */
    o = opts();
    o.image_size = 16;
    o.on_bad_skip = 1;
    o.cache = "none";
    CHECK(pc_dataset_load_folder(tpath("cached"), 1, &o, &od, NULL) == PC_OK, "%s", err());
    write_file(tpath("cached/c0/00.jpg"), "garbage", 7);
    float *x = malloc(sizeof *x * 3 * 256);
    int64_t first = 0; /* c0/00.jpg is sample 0 (round-robin order) */
    pc_status s = pc_dataset_gather(&od, &first, 1, NULL, NULL, x, NULL);
    CHECK(s == PC_ERR_DATA && contains(err(), "c0/00.jpg") && contains(err(), "changed after"),
          "changed file named: %s", err());
    free(x);
    pc_dataset_free(&od);
}

/* ---------------------------------------------------------------- augmentation */

static void fill_image(float *x, int c, int h, int w, uint64_t k) {
    for (int i = 0; i < c * h * w; i++) x[i] = pc_uniform01(pc_rand64(k, 77, 0, 0, (uint64_t)i));
}

static void test_augment(void) {
    enum { C = 3, H = 12, W = 10, N = C * H * W };
    float in[N], o1[N], o2[N], o3[N];
    fill_image(in, C, H, W, 5);
    pc_augment_config a;
    /* parsing */
    CHECK(pc_augment_parse("flip,crop=4,zoom=0.8,shear=10,rotate=15,translate=0.1,brightness=0.2,contrast=0.2,cutout=0.5",
                           &a) == PC_OK, "%s", err());
    CHECK(a.hflip && a.crop_pad == 4 && a.zoom_min == 0.8f && a.zoom_max == 1.0f && a.shear_deg == 10 &&
              a.rotate_deg == 15 && fabsf(a.translate - 0.1f) < 1e-6 && a.cutout == 0.5f, "parsed");
    char buf[256];
    pc_augment_format(&a, buf, sizeof buf);
    CHECK(strcmp(buf, "flip,crop=4,zoom=0.8,shear=10,rotate=15,translate=0.1,brightness=0.2,contrast=0.2,cutout=0.5") == 0,
          "format: %s", buf);
    pc_augment_config a2;
    CHECK(pc_augment_parse(buf, &a2) == PC_OK && memcmp(&a, &a2, sizeof a) == 0, "format round trip");
    CHECK(pc_augment_parse("zoom=0.5:1.5", &a2) == PC_OK && a2.zoom_min == 0.5f && a2.zoom_max == 1.5f, "zoom range");
    CHECK(pc_augment_parse("flip,rotate=abc", &a2) == PC_ERR_USAGE && contains(err(), "'rotate=abc'"), "bad: %s", err());
    CHECK(pc_augment_parse("flip,sparkle", &a2) == PC_ERR_USAGE && contains(err(), "'sparkle'"), "unknown: %s", err());
    CHECK(pc_augment_parse("crop=2.5", &a2) == PC_ERR_USAGE && contains(err(), "crop=2.5"), "crop int: %s", err());
    CHECK(pc_augment_parse("flip,flip", &a2) == PC_ERR_USAGE, "twice");
    CHECK(pc_augment_parse("", &a2) == PC_OK && !pc_augment_enabled(&a2), "empty = off");
    CHECK(pc_augment_parse("none", &a2) == PC_OK && !pc_augment_enabled(&a2), "none = off");
    pc_augment_format(&a2, buf, sizeof buf);
    CHECK(strcmp(buf, "none") == 0, "format none");
    pc_augment_config zero;
    memset(&zero, 0, sizeof zero);
    CHECK(!pc_augment_enabled(&zero), "zeroed struct is off");

    /* identity: exact copy */
    pc_augment_apply(&zero, 1, 2, 3, C, H, W, in, o1);
    CHECK(memcmp(in, o1, sizeof in) == 0, "identity copies");

    /* everything on: deterministic, keyed by sample and epoch, in range */
    pc_augment_apply(&a, 11, 2, 5, C, H, W, in, o1);
    pc_augment_apply(&a, 11, 2, 5, C, H, W, in, o2);
    CHECK(memcmp(o1, o2, sizeof o1) == 0, "deterministic");
    pc_augment_apply(&a, 11, 2, 6, C, H, W, in, o2);
    pc_augment_apply(&a, 11, 3, 5, C, H, W, in, o3);
    CHECK(memcmp(o1, o2, sizeof o1) != 0 && memcmp(o1, o3, sizeof o1) != 0, "other sample / epoch differ");
    int inrange = 1;
    for (int s = 0; s < 50; s++) {
        pc_augment_apply(&a, 11, 1, (uint64_t)s, C, H, W, in, o2);
        for (int i = 0; i < N; i++) inrange &= o2[i] >= 0.0f && o2[i] <= 1.0f;
    }
    CHECK(inrange, "outputs in [0, 1]");

    /* each augmentation alone changes the image for some sample, deterministically */
    const char *singles[] = {"flip", "crop=2", "zoom=0.7", "shear=20", "rotate=30", "translate=0.2",
                             "brightness=0.5", "contrast=0.5", "cutout=0.3", "zoom=1.2:1.5"};
    for (int t = 0; t < 10; t++) {
        pc_augment_config one;
        CHECK(pc_augment_parse(singles[t], &one) == PC_OK, "%s", err());
        int changed = 0, det = 1;
        for (int s = 0; s < 8; s++) {
            pc_augment_apply(&one, 3, 0, (uint64_t)s, C, H, W, in, o1);
            pc_augment_apply(&one, 3, 0, (uint64_t)s, C, H, W, in, o2);
            det &= memcmp(o1, o2, sizeof o1) == 0;
            changed += memcmp(o1, in, sizeof o1) != 0;
        }
        CHECK(changed > 0 && det, "%s: changed %d of 8, deterministic %d", singles[t], changed, det);
    }

    /* flip: a flipped sample mirrors exactly; applying it again gives the input back */
    pc_augment_config fl;
    pc_augment_parse("flip", &fl);
    int flipped = 0, kept = 0, exact = 1;
    for (int s = 0; s < 32; s++) {
        pc_augment_apply(&fl, 9, 0, (uint64_t)s, C, H, W, in, o1);
        if (memcmp(o1, in, sizeof in) == 0) {
            kept++;
            continue;
        }
        flipped++;
        for (int ch = 0; ch < C; ch++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    exact &= o1[(ch * H + y) * W + x] == in[(ch * H + y) * W + (W - 1 - x)];
        pc_augment_apply(&fl, 9, 0, (uint64_t)s, C, H, W, o1, o2);
        exact &= memcmp(o2, in, sizeof in) == 0;
    }
    CHECK(flipped > 5 && kept > 5 && exact, "flip: %d flipped, %d kept, exact %d", flipped, kept, exact);

    /* flip=alt: a sample flipped in one epoch is not in the next and vice versa; about
     * half the samples are flipped in each epoch; a flip is an exact mirror */
    pc_augment_config alt;
    CHECK(pc_augment_parse("flip=alt", &alt) == PC_OK && alt.hflip == PC_FLIP_ALT, "%s", err());
    pc_augment_format(&alt, buf, sizeof buf);
    CHECK(strcmp(buf, "flip=alt") == 0, "format: %s", buf);
    CHECK(pc_augment_parse("flip=sometimes", &a2) == PC_ERR_USAGE && contains(err(), "no value or alt"),
          "bad flip value: %s", err());
    int alternates = 1, mirrored = 1, per_epoch[4] = {0};
    for (int s = 0; s < 32; s++) {
        int prev = -1;
        for (int e = 0; e < 4; e++) {
            pc_augment_apply(&alt, 9, (uint64_t)e, (uint64_t)s, C, H, W, in, o1);
            int is_flipped = memcmp(o1, in, sizeof in) != 0;
            for (int i = 0; is_flipped && i < N; i++)
                mirrored &= o1[i] == in[i - i % W + (W - 1 - i % W)];
            alternates &= prev < 0 || is_flipped != prev;
            per_epoch[e] += is_flipped;
            prev = is_flipped;
        }
    }
    CHECK(alternates && mirrored && per_epoch[0] >= 8 && per_epoch[0] <= 24 &&
              per_epoch[0] + per_epoch[1] == 32,
          "flip=alt: alternates %d, mirrored %d, %d flipped in epoch 0", alternates, mirrored, per_epoch[0]);

    /* crop with padding: an integer shift, values exact; outside the image zeros, the
     * nearest edge pixel, or the mirror image without its edge (a shift of 11 > W - 1
     * reflects twice) */
    static const char *const crops[] = {"crop=3", "crop=3,fill=nearest", "crop=11,fill=reflect"};
    for (int f = 0; f < 3; f++) {
        pc_augment_config cr;
        CHECK(pc_augment_parse(crops[f], &cr) == PC_OK && cr.fill == f, "%s: %s", crops[f], err());
        pc_augment_format(&cr, buf, sizeof buf);
        CHECK(strcmp(buf, crops[f]) == 0, "format: %s", buf);
        const int P = cr.crop_pad;
        int shift_ok = 1, border = 0;
        for (int s = 0; s < 16; s++) {
            pc_augment_apply(&cr, 4, 0, (uint64_t)s, C, H, W, in, o1);
            int found = 0;
            for (int dy = -P; dy <= P && !found; dy++)
                for (int dx = -P; dx <= P && !found; dx++) {
                    int match = 1;
                    for (int ch = 0; ch < C && match; ch++)
                        for (int y = 0; y < H && match; y++)
                            for (int x = 0; x < W && match; x++) {
                                int sy = y - dy, sx = x - dx, inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
                                float want = 0.0f;
                                if (inside || f == 1)
                                    want = in[(ch * H + (sy < 0 ? 0 : sy >= H ? H - 1 : sy)) * W +
                                              (sx < 0 ? 0 : sx >= W ? W - 1 : sx)];
                                else if (f == 2) /* reflected by hand: period 2 (n - 1) */
                                    want = in[(ch * H + (int)pc_reflect_index(sy, H)) * W +
                                              (int)pc_reflect_index(sx, W)];
                                match = o1[(ch * H + y) * W + x] == want;
                            }
                    found = match;
                    border += match && (dx != 0 || dy != 0);
                }
            shift_ok &= found;
        }
        CHECK(shift_ok && border > 0, "%s is an exact integer shift with its fill", crops[f]);
    }
    for (int i = -20; i < 20; i++) { /* the reflection itself, against its definition */
        long r = i, n = 7;
        while (r < 0 || r >= n) r = r < 0 ? -r : 2 * (n - 1) - r;
        CHECK(pc_reflect_index(i, n) == r, "reflect %d in 7 -> %ld", i, pc_reflect_index(i, n));
    }
    CHECK(pc_reflect_index(-3, 1) == 0 && pc_reflect_index(5, 1) == 0, "reflect in 1 pixel");
    CHECK(pc_augment_parse("crop=2,fill=wrap", &a2) == PC_ERR_USAGE && contains(err(), "'fill=wrap'") &&
              contains(err(), "constant, nearest or reflect"),
          "bad fill: %s", err());

    /* cutout: all-ones image, zeros form one rectangle no bigger than the square */
    float ones[N];
    for (int i = 0; i < N; i++) ones[i] = 1.0f;
    pc_augment_config cu;
    pc_augment_parse("cutout=0.4", &cu); /* side round(0.4 * 10) = 4 */
    int rect_ok = 1, full = 0;
    for (int s = 0; s < 40; s++) {
        pc_augment_apply(&cu, 8, 0, (uint64_t)s, C, H, W, ones, o1);
        int y0 = H, y1 = -1, x0 = W, x1 = -1, zeros = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                if (o1[y * W + x] == 0.0f) {
                    zeros++;
                    y0 = PC_MIN(y0, y), y1 = PC_MAX(y1, y), x0 = PC_MIN(x0, x), x1 = PC_MAX(x1, x);
                }
        int hgt = y1 - y0 + 1, wid = x1 - x0 + 1;
        rect_ok &= zeros > 0 && zeros == hgt * wid && hgt <= 4 && wid <= 4;
        for (int ch = 1; ch < C; ch++)
            for (int i = 0; i < H * W; i++) rect_ok &= o1[ch * H * W + i] == o1[i];
        for (int i = 0; i < H * W; i++) rect_ok &= o1[i] == 0.0f || o1[i] == 1.0f;
        full += zeros == 16;
    }
    CHECK(rect_ok && full > 5, "cutout zeroes a (clipped) 4x4 square (%d full)", full);

    /* brightness scales, contrast keeps the mean of a gray image (before clamping) */
    float half[N];
    for (int i = 0; i < N; i++) half[i] = 0.25f + 0.1f * (float)((i / W) % 3);
    pc_augment_config br;
    pc_augment_parse("brightness=0.3", &br);
    pc_augment_apply(&br, 2, 0, 1, C, H, W, half, o1);
    float f = o1[0] / half[0];
    int scal = f >= 0.7f - 1e-5f && f <= 1.3f + 1e-5f;
    for (int i = 0; i < N; i++) scal &= fabsf(o1[i] - half[i] * f) < 1e-5f;
    CHECK(scal, "brightness multiplies by one factor (%g)", (double)f);

    /* rotation keeps the centre pixel region, zero fill enters the corners */
    pc_augment_config ro;
    pc_augment_parse("rotate=45", &ro);
    int corners = 0;
    for (int s = 0; s < 10; s++) {
        pc_augment_apply(&ro, 2, 0, (uint64_t)s, C, H, W, ones, o1);
        corners += o1[0] < 0.5f;
    }
    CHECK(corners > 0, "rotation fills with zeros (%d)", corners);

    /* gather_augmented: off = pc_dataset_gather exactly; on = deterministic per index, the
     * same as augmenting the sample by itself then normalizing */
    pc_dataset d;
    memset(&d, 0, sizeof d);
    d.n = 4, d.c = C, d.h = H, d.w = W, d.classes = 2;
    d.pixels = malloc((size_t)4 * N);
    d.labels = malloc(4 * sizeof *d.labels);
    for (int i = 0; i < 4 * N; i++) d.pixels[i] = (uint8_t)(pc_rand64(5, 1, 2, 3, (uint64_t)i) >> 56);
    for (int i = 0; i < 4; i++) d.labels[i] = i & 1;
    const float mean[3] = {0.5f, 0.4f, 0.3f}, sd[3] = {0.2f, 0.25f, 0.3f};
    int64_t idx[3] = {2, 0, 3};
    float *g1 = malloc(sizeof(float) * 3 * N), *g2 = malloc(sizeof(float) * 3 * N);
    int32_t lab[3];
    pc_dataset_gather(&d, idx, 3, mean, sd, g1, lab);
    pc_dataset_gather_augmented(&d, idx, 3, mean, sd, &zero, 1, 0, g2, lab);
    CHECK(memcmp(g1, g2, sizeof(float) * 3 * N) == 0 && lab[0] == 0 && lab[2] == 1, "gather_augmented off == gather");
    pc_dataset_gather_augmented(&d, idx, 3, mean, sd, &a, 1, 4, g1, NULL);
    int64_t idx2[1] = {3};
    pc_dataset_gather_augmented(&d, idx2, 1, mean, sd, &a, 1, 4, g2, NULL);
    CHECK(memcmp(g1 + 2 * N, g2, sizeof(float) * N) == 0, "keyed by the dataset index, not the batch slot");
    float raw[N];
    for (int i = 0; i < N; i++) raw[i] = (float)d.pixels[(size_t)3 * N + i] / 255.0f;
    pc_augment_apply(&a, 1, 4, 3, C, H, W, raw, o1);
    float maxd = 0;
    for (int ch = 0; ch < C; ch++)
        for (int i = 0; i < H * W; i++)
            maxd = fmaxf(maxd, fabsf((o1[ch * H * W + i] - mean[ch]) / sd[ch] - g2[ch * H * W + i]));
    CHECK(maxd < 1e-5f, "gather_augmented = apply + normalize (%g)", (double)maxd);
    free(g1);
    free(g2);
    pc_dataset_free(&d);
}

/* ---------------------------------------------------------------- test-time augmentation */

static void test_tta(void) {
    enum { C = 2, H = 5, W = 6, N = C * H * W };
    float in[N], v[6][N];
    fill_image(in, C, H, W, 8);
    pc_tta t;
    char buf[64];
    CHECK(pc_tta_parse("flip,translate=2", &t) == PC_OK && t.flip && t.translate == 2, "%s", err());
    pc_tta_format(&t, buf, sizeof buf);
    CHECK(strcmp(buf, "flip,translate=2") == 0, "format: %s", buf);
    CHECK(pc_tta_parse("none", &t) == PC_OK && pc_tta_views(&t) == 1 && pc_tta_views(NULL) == 1, "none: one view");
    CHECK(pc_tta_parse("mirror", &t) == PC_ERR_USAGE && contains(err(), "--tta: unknown item 'mirror'"), "%s", err());
    CHECK(pc_tta_parse("flip,translate=0", &t) == PC_ERR_USAGE && contains(err(), "'translate=0'"), "%s", err());
    CHECK(pc_tta_parse("flip,translate=5", &t) == PC_OK && pc_tta_check(&t, H, W) == PC_ERR_USAGE &&
              contains(err(), "translate=5: must be smaller than the 5x6 images"), "%s", err());

    /* flip,translate=2: six views, airbench's weights, summing to 1 */
    pc_tta_parse("flip,translate=2", &t);
    CHECK(pc_tta_views(&t) == 6, "%d views", pc_tta_views(&t));
    const float want_w[6] = {0.25f, 0.25f, 0.125f, 0.125f, 0.125f, 0.125f};
    int weights_ok = 1;
    for (int k = 0; k < 6; k++) {
        weights_ok &= pc_tta_weight(&t, k) == want_w[k];
        pc_tta_view(&t, k, C, H, W, in, v[k]);
    }
    CHECK(weights_ok, "view weights 1/4, 1/4, 1/8 x 4");
    CHECK(memcmp(v[0], in, sizeof in) == 0, "view 0 is the image");
    /* shifts by (+2, +2) and (-2, -2) with reflect padding (-1 -> 1, n -> n-2), and the
     * mirror of each view */
    int shift_ok = 1, mirror_ok = 1;
    for (int ch = 0; ch < C; ch++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int i = (ch * H + y) * W + x, mx = (ch * H + y) * W + (W - 1 - x);
                for (int s = 1; s <= 2; s++) {
                    int d = s == 1 ? 2 : -2, sy = y - d, sx = x - d;
                    sy = sy < 0 ? -sy : sy >= H ? 2 * (H - 1) - sy : sy;
                    sx = sx < 0 ? -sx : sx >= W ? 2 * (W - 1) - sx : sx;
                    shift_ok &= v[2 * s][i] == in[(ch * H + sy) * W + sx];
                }
                for (int k = 0; k < 6; k += 2) mirror_ok &= v[k + 1][i] == v[k][mx];
            }
    CHECK(shift_ok, "shifted views: reflect-padded shifts by (+2, +2) and (-2, -2)");
    CHECK(mirror_ok, "odd views mirror the even ones");
    CHECK(v[2][0] == in[(2 * W) + 2] && v[4][(H - 1) * W + W - 1] == in[(H - 3) * W + W - 3],
          "corners come from inside the image");
    pc_tta_parse("flip", &t);
    CHECK(pc_tta_views(&t) == 2 && pc_tta_weight(&t, 1) == 0.5f, "flip: two views of 1/2");
}

/* ---------------------------------------------------------------- CIFAR-10 JPEG folders */

static void test_cifar_jpeg(void) {
    const char *tgz = PARCNN_SOURCE_DIR "/../shared/datasets/cifar10-jpeg.tar.gz";
    if (access(tgz, R_OK) != 0) {
        printf("skipped: cifar10-jpeg.tar.gz not found\n");
        return;
    }
    char cmd[2048];
    mkdir_p(tpath("cifar"));
    /* 30 training and 10 test images per class */
    snprintf(cmd, sizeof cmd,
             "tar -xzf '%s' -C '%s' --wildcards 'train/*/000?.jpg' 'train/*/001?.jpg' "
             "'train/*/002?.jpg' 'test/*/000?.jpg' 2>&1",
             tgz, tpath("cifar"));
    int rc = system(cmd);
    CHECK(rc == 0, "tar failed (%d)", rc);
    if (rc != 0) return;
    static const char *const names[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                          "dog", "frog", "horse", "ship", "truck"};
    pc_folder_options o;
    pc_folder_options_default(&o);
    o.decode_threads = 2;
    pc_dataset tr, te;
    pc_folder_report r;
    CHECK(pc_dataset_load_folder(tpath("cifar"), 1, &o, &tr, &r) == PC_OK, "%s", err());
    int names_ok = tr.classes == 10;
    for (int i = 0; names_ok && i < 10; i++) names_ok = strcmp(tr.class_names[i], names[i]) == 0;
    CHECK(names_ok && tr.n == 300 && tr.c == 3 && tr.h == 32 && tr.w == 32 && r.skipped == 0,
          "cifar train: n=%lld c=%d", (long long)tr.n, tr.c);
    pc_folder_report_print(&r, &tr, stdout);
    pc_folder_report_free(&r);
    CHECK(pc_dataset_load_folder(tpath("cifar"), 0, &o, &te, &r) == PC_OK, "%s", err());
    CHECK(te.n == 100 && te.classes == 10 && te.c == 3 && te.labels[99] == 9, "cifar test: n=%lld", (long long)te.n);
    pc_folder_report_free(&r);
    /* decoding a 32x32 JPEG at 32x32 does not resize: the dataset holds the decoded pixels */
    pc_image im;
    char p[1024];
    snprintf(p, sizeof p, "%s/cifar/train/airplane/0000.jpg", tmpdir);
    CHECK(pc_image_read(p, 3, 0, &im) == PC_OK && im.w == 32 && im.h == 32, "%s", err());
    int same = im.data != NULL;
    for (int i = 0; same && i < 32 * 32; i++)
        for (int ch = 0; ch < 3; ch++) same &= tr.pixels[(size_t)ch * 1024 + i] == im.data[i * 3 + ch];
    CHECK(same, "dataset pixels = decoded pixels (CHW)");
    pc_image_free(&im);
    float mean[3], sd[3];
    pc_dataset_channel_stats(&tr, mean, sd);
    printf("cifar subset: mean %.3f %.3f %.3f, std %.3f %.3f %.3f\n", mean[0], mean[1], mean[2], sd[0], sd[1], sd[2]);
    CHECK(mean[0] > 0.35f && mean[0] < 0.6f && sd[0] > 0.15f && sd[0] < 0.35f, "plausible CIFAR statistics");
    pc_dataset_free(&tr);
    pc_dataset_free(&te);
}

int main(void) {
    if (testfs_start("images")) return 2;
    test_png_decoding();
    test_jpeg_decoding();
    test_bad_inputs();
    test_resize();
    test_flat_split();
    test_gray_auto();
    test_train_test_layout();
    test_folder_errors();
    test_bad_files_in_folder();
    test_cache_and_threads();
    test_on_demand();
    test_augment();
    test_tta();
    test_cifar_jpeg();
    testfs_finish();
    return check_summary();
}
