/* PNG and JPEG decoding with setjmp-based error recovery, colour conversion and an
 * antialiased resize. Nothing here prints: libjpeg's and libpng's messages are captured
 * and turned into one-line errors naming the file. */
#define _GNU_SOURCE
#include "data/image.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

uint64_t pc_image_codec_id(void) {
#ifdef LIBJPEG_TURBO_VERSION_NUMBER
    uint64_t jv = LIBJPEG_TURBO_VERSION_NUMBER;
#else
    uint64_t jv = JPEG_LIB_VERSION;
#endif
    return ((uint64_t)PC_IMAGE_CODEC_VERSION << 48) ^ (jv << 20) ^ (uint64_t)PNG_LIBPNG_VER;
}

/* ---------------------------------------------------------------- sniffing */

pc_image_format pc_image_sniff(const uint8_t *h, size_t n) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && memcmp(h, png_sig, 8) == 0) return PC_IMAGE_PNG;
    if (n >= 3 && h[0] == 0xFF && h[1] == 0xD8 && h[2] == 0xFF) return PC_IMAGE_JPEG;
    return PC_IMAGE_UNKNOWN;
}

/* A hint for files we recognise but do not decode. */
static const char *other_format(const uint8_t *h, size_t n) {
    if (n >= 6 && (memcmp(h, "GIF87a", 6) == 0 || memcmp(h, "GIF89a", 6) == 0)) return "GIF";
    if (n >= 2 && h[0] == 'B' && h[1] == 'M') return "BMP";
    if (n >= 12 && memcmp(h, "RIFF", 4) == 0 && memcmp(h + 8, "WEBP", 4) == 0) return "WebP";
    if (n >= 4 && (memcmp(h, "II*\0", 4) == 0 || memcmp(h, "MM\0*", 4) == 0)) return "TIFF";
    if (n >= 12 && memcmp(h + 4, "ftyp", 4) == 0) return "HEIF/AVIF/MP4";
    if (n >= 2 && h[0] == 0xFF && h[1] == 0xD8) return "damaged JPEG";
    return NULL;
}

/* ---------------------------------------------------------------- colour conversion */

static inline uint8_t luma(unsigned r, unsigned g, unsigned b) {
    return (uint8_t)((19595u * r + 38470u * g + 7471u * b + 32768u) >> 16);
}

/* In-place-safe conversion of n pixels from 1 or 3 channels to 1 or 3 channels into dst
 * (dst may equal src only when shrinking 3 -> 1 or for the same count). */
static void convert_channels(const uint8_t *src, int sc, uint8_t *dst, int dc, size_t n) {
    if (sc == dc) {
        if (src != dst) memcpy(dst, src, n * (size_t)sc);
    } else if (sc == 3 && dc == 1) {
        for (size_t i = 0; i < n; i++) dst[i] = luma(src[3 * i], src[3 * i + 1], src[3 * i + 2]);
    } else { /* 1 -> 3, backwards so that it may run in place */
        for (size_t i = n; i-- > 0;) {
            uint8_t v = src[i];
            dst[3 * i] = dst[3 * i + 1] = dst[3 * i + 2] = v;
        }
    }
}

static pc_status check_size(const char *name, int64_t w, int64_t h, int64_t max_pixels) {
    if (w <= 0 || h <= 0) return pc_fail(PC_ERR_DATA, "%s: bad image size %lldx%lld", name, (long long)w, (long long)h);
    if (w > max_pixels / h)
        return pc_fail(PC_ERR_DATA, "%s: %lldx%lld pixels exceeds the limit of %lld", name,
                       (long long)w, (long long)h, (long long)max_pixels);
    return PC_OK;
}

/* ---------------------------------------------------------------- JPEG */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    int truncated;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_error_exit_cb(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jb, 1);
}

/* Silence libjpeg: count warnings (level -1), drop trace messages. Warnings that mean the
 * pixels are garbage end the decode like errors: running out of data ("Premature end of
 * JPEG file" -> truncated) and damaged entropy-coded data ("premature end of data segment",
 * bad Huffman/arithmetic code, lost restart sync). Other warnings (extraneous bytes before
 * a marker, odd JFIF versions, ...) are common in real files that decode fine: only counted. */
static void jpeg_emit_cb(j_common_ptr cinfo, int level) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    if (level >= 0) return;
    cinfo->err->num_warnings++;
    int code = cinfo->err->msg_code;
    if (code == JWRN_JPEG_EOF) {
        e->truncated = 1;
        longjmp(e->jb, 1);
    }
    if (code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE || code == JWRN_ARITH_BAD_CODE ||
        code == JWRN_MUST_RESYNC) {
        (*cinfo->err->format_message)(cinfo, e->msg);
        longjmp(e->jb, 1);
    }
}

typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    uint8_t *pix;   /* output, owned until handed over */
    uint8_t *row;   /* CMYK scanline */
} jpeg_ctx;

static pc_status decode_jpeg(const char *name, const uint8_t *buf, size_t n, int channels,
                             int64_t max_pixels, pc_image *out) {
    jpeg_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return pc_fail(PC_ERR_NOMEM, "%s: out of memory", name);
    pc_status s = PC_OK;
    struct jpeg_decompress_struct *ci = &ctx->cinfo;
    ci->err = jpeg_std_error(&ctx->err.pub);
    ctx->err.pub.error_exit = jpeg_error_exit_cb;
    ctx->err.pub.emit_message = jpeg_emit_cb;
    if (setjmp(ctx->err.jb)) {
        if (ctx->err.truncated) s = pc_fail(PC_ERR_DATA, "%s: truncated JPEG data", name);
        else s = pc_fail(PC_ERR_DATA, "%s: corrupt JPEG data: %s", name, ctx->err.msg);
        goto done;
    }
    jpeg_create_decompress(ci);
    jpeg_mem_src(ci, buf, (unsigned long)n);
    jpeg_read_header(ci, TRUE);
    s = check_size(name, ci->image_width, ci->image_height, max_pixels);
    if (s != PC_OK) goto done;
    int src_gray = 0, cmyk = 0;
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE: src_gray = 1; break;
    case JCS_YCbCr:
    case JCS_RGB: break;
    case JCS_CMYK:
    case JCS_YCCK: cmyk = 1; break;
    default:
        s = pc_fail(PC_ERR_DATA, "%s: unsupported JPEG colour space (%d components)", name,
                    ci->num_components);
        goto done;
    }
    int oc = channels ? channels : (src_gray ? 1 : 3);
    if (cmyk) ci->out_color_space = JCS_CMYK;
    else ci->out_color_space = (oc == 1 || src_gray) ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(ci);
    const int w = (int)ci->output_width, h = (int)ci->output_height;
    const int dc = ci->output_components; /* 1, 3 or 4 */
    if ((int64_t)w * h > max_pixels || (dc != 1 && dc != 3 && dc != 4)) {
        s = pc_fail(PC_ERR_DATA, "%s: unexpected JPEG output geometry", name);
        goto done;
    }
    /* Decoded rows land at the start of their final place when the channel count grows
     * (1 -> 3 is expanded in place afterwards), so one buffer of h*w*oc bytes suffices. */
    size_t stride = (size_t)w * (size_t)(cmyk ? 3 : dc);
    ctx->pix = malloc((size_t)h * w * (size_t)PC_MAX(oc, cmyk ? 3 : dc));
    if (cmyk) ctx->row = malloc((size_t)w * 4);
    if (!ctx->pix || (cmyk && !ctx->row)) {
        s = pc_fail(PC_ERR_NOMEM, "%s: out of memory for %dx%d pixels", name, w, h);
        goto done;
    }
    const int inverted = ci->saw_Adobe_marker;
    while (ci->output_scanline < ci->output_height) {
        int y = (int)ci->output_scanline;
        JSAMPROW rowp = cmyk ? ctx->row : ctx->pix + (size_t)y * stride;
        if (jpeg_read_scanlines(ci, &rowp, 1) != 1) break;
        if (cmyk) {
            uint8_t *o = ctx->pix + (size_t)y * stride;
            const uint8_t *r = ctx->row;
            for (int x = 0; x < w; x++, r += 4, o += 3) {
                unsigned c0 = r[0], m = r[1], yy = r[2], k = r[3];
                if (!inverted) c0 = 255 - c0, m = 255 - m, yy = 255 - yy, k = 255 - k;
                /* now c0..k hold 255 - ink: R = (255-C)(255-K)/255 */
                o[0] = (uint8_t)((c0 * k + 127) / 255);
                o[1] = (uint8_t)((m * k + 127) / 255);
                o[2] = (uint8_t)((yy * k + 127) / 255);
            }
        }
    }
    if (ci->output_scanline < ci->output_height) {
        s = pc_fail(PC_ERR_DATA, "%s: truncated JPEG data", name);
        goto done;
    }
    /* finish_decompress reads to EOI: a file cut after the last scanline is caught here */
    jpeg_finish_decompress(ci);
    int have_c = cmyk ? 3 : dc;
    convert_channels(ctx->pix, have_c, ctx->pix, oc, (size_t)w * h);
    out->h = h;
    out->w = w;
    out->c = oc;
    out->data = ctx->pix;
    out->src_gray = src_gray;
    out->warnings = (int)ctx->err.pub.num_warnings;
    out->format = PC_IMAGE_JPEG;
    ctx->pix = NULL;
done:
    jpeg_destroy_decompress(ci);
    free(ctx->pix);
    free(ctx->row);
    free(ctx);
    return s;
}

/* ---------------------------------------------------------------- PNG */

typedef struct {
    const uint8_t *buf;
    size_t n, pos;
    char msg[256];
    int warnings;
    uint8_t *pix;
    png_bytep *rows;
} png_ctx;

static void png_read_cb(png_structp png, png_bytep dst, size_t len) {
    png_ctx *c = png_get_io_ptr(png);
    if (len > c->n - c->pos) png_error(png, "truncated PNG data");
    memcpy(dst, c->buf + c->pos, len);
    c->pos += len;
}

static void png_error_cb(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "libpng error");
    png_longjmp(png, 1);
}

static void png_warning_cb(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    c->warnings++;
}

static pc_status decode_png(const char *name, const uint8_t *buf, size_t n, int channels,
                            int64_t max_pixels, pc_image *out) {
    /* The size check comes first, from the IHDR chunk that must follow the signature,
     * before libpng reads (and allocates for) anything else. */
    if (n >= 24 && memcmp(buf + 12, "IHDR", 4) == 0) {
        int64_t w = ((int64_t)buf[16] << 24) | (buf[17] << 16) | (buf[18] << 8) | buf[19];
        int64_t h = ((int64_t)buf[20] << 24) | (buf[21] << 16) | (buf[22] << 8) | buf[23];
        if (w > 0 && h > 0) PC_TRY(check_size(name, w, h, max_pixels));
    }
    png_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return pc_fail(PC_ERR_NOMEM, "%s: out of memory", name);
    ctx->buf = buf;
    ctx->n = n;
    pc_status s = PC_OK;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, png_error_cb, png_warning_cb);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        free(ctx);
        return pc_fail(PC_ERR_NOMEM, "%s: out of memory (libpng)", name);
    }
    if (setjmp(png_jmpbuf(png))) {
        if (strstr(ctx->msg, "truncated")) s = pc_fail(PC_ERR_DATA, "%s: truncated PNG data", name);
        else s = pc_fail(PC_ERR_DATA, "%s: corrupt PNG data: %s", name, ctx->msg);
        goto done;
    }
    png_set_read_fn(png, ctx, png_read_cb);
    png_read_info(png, info);
    png_uint_32 w = 0, h = 0;
    int depth = 0, ctype = 0, interlace = 0;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    s = check_size(name, (int64_t)w, (int64_t)h, max_pixels);
    if (s != PC_OK) goto done;
    int src_gray = !(ctype & PNG_COLOR_MASK_COLOR);
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        png_colorp pal = NULL;
        int npal = 0;
        if (png_get_PLTE(png, info, &pal, &npal) && npal > 0) {
            src_gray = 1;
            for (int i = 0; i < npal; i++)
                if (pal[i].red != pal[i].green || pal[i].red != pal[i].blue) src_gray = 0;
        }
        png_set_palette_to_rgb(png);
    }
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) {
#ifdef PNG_READ_SCALE_16_TO_8_SUPPORTED
        png_set_scale_16(png);
#else
        png_set_strip_16(png);
#endif
    }
    /* palette_to_rgb also turns tRNS into alpha; drop alpha from every source */
    if ((ctype & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int pc = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((pc != 1 && pc != 3) || png_get_bit_depth(png, info) != 8 || rowbytes != (size_t)w * pc) {
        s = pc_fail(PC_ERR_DATA, "%s: unsupported PNG layout (%d channels, %d bits)", name, pc,
                    (int)png_get_bit_depth(png, info));
        goto done;
    }
    int oc = channels ? channels : (src_gray ? 1 : 3);
    ctx->pix = malloc((size_t)h * w * (size_t)PC_MAX(oc, pc));
    ctx->rows = malloc((size_t)h * sizeof *ctx->rows);
    if (!ctx->pix || !ctx->rows) {
        s = pc_fail(PC_ERR_NOMEM, "%s: out of memory for %ux%u pixels", name, (unsigned)w, (unsigned)h);
        goto done;
    }
    for (png_uint_32 y = 0; y < h; y++) ctx->rows[y] = ctx->pix + (size_t)y * rowbytes;
    png_read_image(png, ctx->rows);
    /* The chunks after the image data (and IEND) are not needed: a file cut just before
     * IEND still decodes completely, as it does in PIL. */
    convert_channels(ctx->pix, pc, ctx->pix, oc, (size_t)w * h);
    out->h = (int)h;
    out->w = (int)w;
    out->c = oc;
    out->data = ctx->pix;
    out->src_gray = src_gray;
    out->warnings = ctx->warnings;
    out->format = PC_IMAGE_PNG;
    ctx->pix = NULL;
done:
    png_destroy_read_struct(&png, &info, NULL);
    free(ctx->pix);
    free(ctx->rows);
    free(ctx);
    return s;
}

/* ---------------------------------------------------------------- entry points */

pc_status pc_image_decode(const char *name, const uint8_t *buf, size_t n, int channels,
                          int64_t max_pixels, pc_image *out) {
    memset(out, 0, sizeof *out);
    if (channels != 0 && channels != 1 && channels != 3)
        return pc_fail(PC_ERR_USAGE, "%s: cannot decode to %d channels (1 or 3)", name, channels);
    if (max_pixels <= 0) max_pixels = PC_IMAGE_DEFAULT_MAX_PIXELS;
    if (n == 0) return pc_fail(PC_ERR_DATA, "%s: empty file (0 bytes)", name);
    switch (pc_image_sniff(buf, n)) {
    case PC_IMAGE_JPEG: return decode_jpeg(name, buf, n, channels, max_pixels, out);
    case PC_IMAGE_PNG: return decode_png(name, buf, n, channels, max_pixels, out);
    default: break;
    }
    const char *other = other_format(buf, n);
    if (other) return pc_fail(PC_ERR_DATA, "%s: not a PNG or JPEG file (looks like %s)", name, other);
    return pc_fail(PC_ERR_DATA, "%s: not a PNG or JPEG file", name);
}

pc_status pc_image_read(const char *path, int channels, int64_t max_pixels, pc_image *out) {
    memset(out, 0, sizeof *out);
    int fd = pc_open_regular(path); /* a named pipe would block until a writer comes */
    if (fd < 0) return PC_ERR_DATA;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return pc_fail(PC_ERR_DATA, "%s: cannot stat: %s", path, strerror(e));
    }
    if (st.st_size == 0) {
        close(fd);
        return pc_fail(PC_ERR_DATA, "%s: empty file (0 bytes)", path);
    }
    if ((int64_t)st.st_size > PC_IMAGE_MAX_FILE_BYTES) {
        close(fd);
        return pc_fail(PC_ERR_DATA, "%s: file of %lld bytes is too large (limit %lld)", path,
                       (long long)st.st_size, (long long)PC_IMAGE_MAX_FILE_BYTES);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size);
    if (!buf) {
        close(fd);
        return pc_fail(PC_ERR_NOMEM, "%s: out of memory for %zu bytes", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            free(buf);
            return pc_fail(PC_ERR_DATA, "%s: read error: %s", path, strerror(e));
        }
        if (r == 0) break; /* shrank while reading: decode what is there */
        got += (size_t)r;
    }
    close(fd);
    pc_status s = pc_image_decode(path, buf, got, channels, max_pixels, out);
    free(buf);
    return s;
}

void pc_image_free(pc_image *im) {
    if (!im) return;
    free(im->data);
    memset(im, 0, sizeof *im);
}

/* ---------------------------------------------------------------- resize */

typedef struct {
    int *start, *count; /* per output index: first input index and number of taps */
    float *w;           /* per output index: `taps` weights (padded) */
    int taps;
} coeffs;

static void coeffs_free(coeffs *k) {
    free(k->start);
    free(k->count);
    free(k->w);
}

/* PIL's precompute_coeffs with the triangle (bilinear) filter: support 1 scaled by the
 * shrink factor, weights normalized over the taps that fall inside the image. */
static int coeffs_make(coeffs *k, int in, int outn) {
    double scale = (double)in / outn, fs = scale > 1.0 ? scale : 1.0, support = fs;
    int taps = (int)ceil(support) * 2 + 1;
    k->taps = taps;
    k->start = malloc((size_t)outn * sizeof *k->start);
    k->count = malloc((size_t)outn * sizeof *k->count);
    k->w = malloc((size_t)outn * taps * sizeof *k->w);
    double *ws = malloc((size_t)taps * sizeof *ws);
    if (!k->start || !k->count || !k->w || !ws) {
        free(ws);
        return 0;
    }
    for (int o = 0; o < outn; o++) {
        double center = (o + 0.5) * scale;
        int lo = (int)(center - support + 0.5);
        if (lo < 0) lo = 0;
        int hi = (int)(center + support + 0.5);
        if (hi > in) hi = in;
        int cnt = hi - lo;
        if (cnt > taps) cnt = taps;
        double sum = 0;
        for (int i = 0; i < cnt; i++) {
            double x = (i + lo - center + 0.5) / fs;
            double v = x < 0 ? 1.0 + x : 1.0 - x;
            ws[i] = v > 0 ? v : 0.0;
            sum += ws[i];
        }
        if (sum <= 0) { /* cannot happen for in >= 1; keep the nearest pixel */
            int nn = (int)center;
            lo = nn < in ? nn : in - 1;
            cnt = 1;
            ws[0] = sum = 1.0;
        }
        k->start[o] = lo;
        k->count[o] = cnt;
        for (int i = 0; i < taps; i++) k->w[(size_t)o * taps + i] = i < cnt ? (float)(ws[i] / sum) : 0.0f;
    }
    free(ws);
    return 1;
}

static inline uint8_t clamp_u8(float v) {
    v = floorf(v + 0.5f);
    return v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)v;
}

pc_status pc_image_resize(const uint8_t *in, int h, int w, int c, int oh, int ow, int out_chw,
                          uint8_t *out) {
    if (h <= 0 || w <= 0 || oh <= 0 || ow <= 0 || c <= 0)
        return pc_fail(PC_ERR_USAGE, "resize: bad size %dx%d -> %dx%d", w, h, ow, oh);
    if (h == oh && w == ow) {
        if (!out_chw || c == 1) {
            memcpy(out, in, (size_t)h * w * c);
        } else {
            size_t hw = (size_t)h * w;
            for (size_t i = 0; i < hw; i++)
                for (int ch = 0; ch < c; ch++) out[ch * hw + i] = in[i * c + ch];
        }
        return PC_OK;
    }
    coeffs kx = {0}, ky = {0};
    float *tmp = NULL;
    pc_status s = PC_OK;
    if (!coeffs_make(&kx, w, ow) || !coeffs_make(&ky, h, oh) ||
        !(tmp = malloc(((size_t)h + 1) * ow * c * sizeof *tmp))) {
        s = pc_fail(PC_ERR_NOMEM, "resize: out of memory (%dx%d -> %dx%d)", w, h, ow, oh);
        goto done;
    }
    /* horizontal: (h, w, c) -> tmp (h, ow, c) */
    for (int y = 0; y < h; y++) {
        const uint8_t *row = in + (size_t)y * w * c;
        float *trow = tmp + (size_t)y * ow * c;
        for (int o = 0; o < ow; o++) {
            const float *wt = kx.w + (size_t)o * kx.taps;
            const uint8_t *p = row + (size_t)kx.start[o] * c;
            int cnt = kx.count[o];
            for (int ch = 0; ch < c; ch++) {
                float acc = 0.0f;
                for (int i = 0; i < cnt; i++) acc += wt[i] * (float)p[i * c + ch];
                trow[o * c + ch] = acc;
            }
        }
    }
    /* vertical: tmp (h, ow, c) -> out (oh, ow, c) or (c, oh, ow), one output row at a time
     * as a weighted sum of whole tmp rows (contiguous, vectorizable) */
    const size_t ohw = (size_t)oh * ow, rowlen = (size_t)ow * c;
    float *acc = tmp + (size_t)h * rowlen;
    for (int o = 0; o < oh; o++) {
        const float *wt = ky.w + (size_t)o * ky.taps;
        int cnt = ky.count[o], y0 = ky.start[o];
        for (size_t k = 0; k < rowlen; k++) acc[k] = 0.0f;
        for (int i = 0; i < cnt; i++) {
            const float *trow = tmp + (size_t)(y0 + i) * rowlen;
            const float wv = wt[i];
            for (size_t k = 0; k < rowlen; k++) acc[k] += wv * trow[k];
        }
        if (out_chw) {
            for (int x = 0; x < ow; x++)
                for (int ch = 0; ch < c; ch++) out[ch * ohw + (size_t)o * ow + x] = clamp_u8(acc[(size_t)x * c + ch]);
        } else {
            for (size_t k = 0; k < rowlen; k++) out[(size_t)o * rowlen + k] = clamp_u8(acc[k]);
        }
    }
done:
    coeffs_free(&kx);
    coeffs_free(&ky);
    free(tmp);
    return s;
}

pc_status pc_image_load_chw(const char *path, int channels, int h, int w, int64_t max_pixels,
                            uint8_t *out_chw, int *src_gray, int *warnings) {
    if (channels != 1 && channels != 3)
        return pc_fail(PC_ERR_USAGE, "%s: cannot load with %d channels (1 or 3)", path, channels);
    pc_image im;
    PC_TRY(pc_image_read(path, channels, max_pixels, &im));
    pc_status s = pc_image_resize(im.data, im.h, im.w, im.c, h, w, 1, out_chw);
    if (src_gray) *src_gray = im.src_gray;
    if (warnings) *warnings = im.warnings;
    pc_image_free(&im);
    return s;
}

pc_status pc_image_load_chw_cropped(const char *path, int channels, int size, int short_side,
                                    int64_t max_pixels, uint8_t *out_chw, int *src_gray,
                                    int *warnings) {
    if (channels != 1 && channels != 3)
        return pc_fail(PC_ERR_USAGE, "%s: cannot load with %d channels (1 or 3)", path, channels);
    pc_image im;
    PC_TRY(pc_image_read(path, channels, max_pixels, &im));
    int shorter = PC_MIN(im.h, im.w);
    if (2 * shorter < size) { /* enlarging more than twice would invent the picture */
        pc_status s = pc_fail(PC_ERR_DATA, "%s: %dx%d pixels, less than half the model's %dx%d "
                              "crop", path, im.w, im.h, size, size);
        pc_image_free(&im);
        return s;
    }
    /* the resized size, rounded as torchvision's Resize(int) */
    int rh = im.h == shorter ? short_side : (int)((int64_t)short_side * im.h / shorter);
    int rw = im.w == shorter ? short_side : (int)((int64_t)short_side * im.w / shorter);
    uint8_t *resized = malloc((size_t)rh * rw * channels);
    pc_status s = resized ? pc_image_resize(im.data, im.h, im.w, im.c, rh, rw, 1, resized)
                          : pc_fail_nomem();
    int top = (rh - size) / 2, left = (rw - size) / 2;
    for (int c = 0; s == PC_OK && c < channels; c++)
        for (int y = 0; y < size; y++)
            memcpy(out_chw + ((size_t)c * size + y) * size,
                   resized + ((size_t)c * rh + top + y) * rw + left, (size_t)size);
    if (src_gray) *src_gray = im.src_gray;
    if (warnings) *warnings = im.warnings;
    free(resized);
    pc_image_free(&im);
    return s;
}
