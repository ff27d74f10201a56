/* Writes a small CIFAR-10-like image folder for the CLI tests, so that they need no data
 * set beside the checkout:
 *
 *   make_images DIR TRAIN TEST
 *
 * gives DIR/train/CLASS/NNNN.jpg|png (TRAIN images per class) and DIR/test/CLASS/...
 * (TEST per class) for the ten CIFAR-10 class names. Each class is a pattern a small
 * convnet can learn (stripes of a class-specific angle, period and colours, shifted and
 * noised per image); the images are the same bytes on every run. Most are 32x32 RGB
 * JPEGs (libjpeg, quality 90); every fourth is a PNG (libpng), every eighth of those
 * with an alpha channel, and every seventh image is 40x36, so loading resizes it. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h> /* after stdio.h: it uses FILE and size_t */
#include <png.h>

static const char *const class_names[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                             "dog", "frog", "horse", "ship", "truck"};

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* A uniform number in [0, 1) from a key and a counter. */
static double uniform(uint64_t key, uint64_t i) {
    return (double)(mix64(key ^ mix64(i)) >> 11) * (1.0 / 9007199254740992.0);
}

static int clamp255(double v) { return v < 0 ? 0 : v > 255 ? 255 : (int)lrint(v); }

/* Class k's stripes at (x, y) of a w x h image, with the image's shift and noise. */
static void paint(uint8_t *rgb, int w, int h, int channels, int k, uint64_t key) {
    double angle = k * 0.314159, period = 5.0 + (k % 3) * 2.0;
    double dx = cos(angle), dy = sin(angle), phase = uniform(key, 0) * period;
    /* bright stripes on a dark ground: luminance survives JPEG's chroma subsampling */
    double fg[3] = {90 + 16 * k, 230 - 14 * k, 80 + (k * 53) % 170};
    double bg[3] = {fg[0] * 0.3 + 20, fg[1] * 0.3 + 20, fg[2] * 0.3 + 20};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double t = (x * dx + y * dy + phase) / period;
            double s = 0.5 + 0.5 * sin(2 * M_PI * t); /* 0 (background) .. 1 (stripe) */
            uint8_t *p = rgb + ((size_t)y * w + x) * channels;
            for (int c = 0; c < 3; c++) {
                double noise = (uniform(key, 1 + ((uint64_t)y * w + x) * 3 + c) - 0.5) * 50;
                p[c] = (uint8_t)clamp255(bg[c] + s * (fg[c] - bg[c]) + noise);
            }
            if (channels == 4) p[3] = (uint8_t)(200 + (x + y) % 56);
        }
}

static int write_jpeg(const char *path, const uint8_t *rgb, int w, int h) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr je;
    ci.err = jpeg_std_error(&je);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 90, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)rgb + (size_t)ci.next_scanline * w * 3;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    return fclose(f);
}

static int write_png(const char *path, const uint8_t *pixels, int w, int h, int channels) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                 channels == 4 ? PNG_COLOR_TYPE_RGBA : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)pixels + (size_t)y * w * channels);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(f);
}

/* Image i of class k in one part (0 train, 1 test). */
static int write_image(const char *dir, int part, int k, int i) {
    int w = i % 7 == 6 ? 40 : 32, h = i % 7 == 6 ? 36 : 32;
    int png = i % 4 == 3, channels = png && i % 8 == 7 ? 4 : 3;
    uint8_t pixels[40 * 36 * 4];
    paint(pixels, w, h, channels, k, mix64(((uint64_t)part << 40) ^ ((uint64_t)k << 20) ^ (uint64_t)i));
    char path[4096 + 32]; /* dir (under 4096) + "/NNNN.png" */
    snprintf(path, sizeof path, "%s/%04d.%s", dir, i, png ? "png" : "jpg");
    int rc = png ? write_png(path, pixels, w, h, channels) : write_jpeg(path, pixels, w, h);
    if (rc != 0) fprintf(stderr, "make_images: cannot write %s\n", path);
    return rc;
}

static int make_dir(const char *path) {
    if (mkdir(path, 0755) == 0) return 0;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    fprintf(stderr, "make_images: cannot create %s\n", path);
    return -1;
}

static int parse_count(const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > 9999) return -1;
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv) {
    int counts[2];
    if (argc != 4 || parse_count(argv[2], &counts[0]) || parse_count(argv[3], &counts[1])) {
        fprintf(stderr, "usage: make_images DIR TRAIN TEST (images per class, 0-9999)\n");
        return 2;
    }
    static const char *const parts[2] = {"train", "test"};
    char dir[4096];
    if (make_dir(argv[1])) return 1;
    for (int part = 0; part < 2; part++) {
        snprintf(dir, sizeof dir, "%s/%s", argv[1], parts[part]);
        if (make_dir(dir)) return 1;
        for (int k = 0; k < 10; k++) {
            snprintf(dir, sizeof dir, "%s/%s/%s", argv[1], parts[part], class_names[k]);
            if (make_dir(dir)) return 1;
            for (int i = 0; i < counts[part]; i++)
                if (write_image(dir, part, k, i)) return 1;
        }
    }
    return 0;
}
