/* Image files: decode PNG (libpng) and JPEG (libjpeg-turbo) into uint8 pixels, and
 * resize them. The file type comes from the magic bytes, never the extension.
 *
 * Colour handling (the same for training, evaluation and prediction):
 *   - JPEG gray / YCbCr / RGB, CMYK and YCCK (Adobe-inverted CMYK, as Photoshop writes
 *     it, when the file has an Adobe marker) -> RGB; R = (255-C)(255-K)/255 per channel.
 *   - PNG gray, gray+alpha, RGB, RGBA, palette, 1/2/4/8/16-bit. 16-bit samples are scaled
 *     (v*255/65535, rounded). Alpha (and tRNS transparency) is DROPPED, not composited:
 *     the colour under a transparent pixel is kept, as PIL's convert("RGB") does, so a
 *     model sees the same pixels as one trained with torchvision's ImageFolder.
 *   - RGB -> gray uses the ITU-R 601 luma weights in PIL's fixed-point form:
 *     Y = (19595 R + 38470 G + 7471 B + 32768) >> 16. (A YCbCr JPEG asked for gray gives
 *     its decoded Y plane, the same luma computed by the encoder.) Gray -> RGB copies.
 * Errors name the path and what is wrong, e.g. "a.jpg: truncated JPEG data",
 * "b.png: not a PNG or JPEG file", "c.jpg: 30000x30000 pixels exceeds the limit of
 * 67108864". Images above the pixel limit are refused from the header, before any
 * pixel memory is allocated. Decoder warnings never reach stderr: a JPEG that runs out of
 * data is "truncated JPEG data"; damaged entropy-coded data (libjpeg's "premature end of
 * data segment", bad Huffman code, lost restart sync) is "corrupt JPEG data: ..."; other
 * warnings (e.g. extraneous bytes before a marker, common in camera files) are counted in
 * pc_image.warnings. A PNG cut just before its IEND chunk still decodes (as in PIL). */
#ifndef PC_IMAGE_H
#define PC_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

#define PC_IMAGE_DEFAULT_MAX_PIXELS ((int64_t)64 << 20) /* 67108864 = 64 megapixels */
#define PC_IMAGE_MAX_FILE_BYTES ((int64_t)1 << 30)     /* files above 1 GiB are refused */
/* Bumped whenever decoding or resizing could produce different pixels (cache keys use it). */
#define PC_IMAGE_CODEC_VERSION 1

/* PC_IMAGE_CODEC_VERSION combined with the libjpeg-turbo and libpng versions this was
 * built with: decoded pixels can only change when this changes (used in cache keys). */
uint64_t pc_image_codec_id(void);

typedef enum { PC_IMAGE_UNKNOWN = 0, PC_IMAGE_JPEG = 1, PC_IMAGE_PNG = 2 } pc_image_format;

typedef struct {
    int h, w, c;       /* c = 1 or 3 */
    uint8_t *data;     /* h * w * c bytes, HWC (interleaved), malloc'ed */
    int src_gray;      /* 1: the file stores a gray image (or a palette of grays) */
    int warnings;      /* decoder warnings that were not fatal (silenced) */
    pc_image_format format;
} pc_image;

/* The format named by the first bytes of a file (n >= 8 recommended). */
pc_image_format pc_image_sniff(const uint8_t *head, size_t n);

/* Decode an encoded image held in memory. `name` is used in error messages.
 * channels: 1 (gray), 3 (RGB) or 0 (as stored: 1 for gray files, 3 otherwise).
 * max_pixels <= 0 means PC_IMAGE_DEFAULT_MAX_PIXELS. Free the result with pc_image_free. */
pc_status pc_image_decode(const char *name, const uint8_t *buf, size_t n, int channels,
                          int64_t max_pixels, pc_image *out);

/* Read and decode a file (errors for missing, unreadable, non-regular, empty files). */
pc_status pc_image_read(const char *path, int channels, int64_t max_pixels, pc_image *out);

void pc_image_free(pc_image *im);

/* Resize interleaved uint8 pixels (h, w, c) to (oh, ow, c), written HWC or, when out_chw
 * is set, planar CHW. Separable triangle filter with PIL's BILINEAR geometry: when
 * shrinking, the filter support grows with the factor (antialiased, like PIL's resize);
 * when enlarging it is plain bilinear interpolation (half-pixel centres, edge clamped).
 * A constant image stays constant; an unchanged size is an exact copy.
 * Fails only when out of memory (for a temporary of (h+1)*ow*c floats). */
pc_status pc_image_resize(const uint8_t *in, int h, int w, int c, int oh, int ow, int out_chw,
                          uint8_t *out);

/* Read, decode, convert to `channels` (1 or 3) and resize to (h, w): out_chw receives
 * channels*h*w bytes, CHW. *src_gray (may be NULL) tells whether the file was gray;
 * *warnings (may be NULL) receives the count of silenced decoder warnings. The aspect
 * ratio is not kept (the image is stretched to h x w). */
pc_status pc_image_load_chw(const char *path, int channels, int h, int w, int64_t max_pixels,
                            uint8_t *out_chw, int *src_gray, int *warnings);

/* As pc_image_load_chw, but keeping the aspect ratio as pretrained ImageNet models expect
 * (torchvision's Resize(short) + CenterCrop(size)): the shorter side is resized to
 * `short_side` (>= size; enlarged when smaller) and the central size x size square is kept.
 * An image whose shorter side is below size / 2 is an error naming the file (it would have
 * to be enlarged more than twice). */
pc_status pc_image_load_chw_cropped(const char *path, int channels, int size, int short_side,
                                    int64_t max_pixels, uint8_t *out_chw, int *src_gray,
                                    int *warnings);

#endif
