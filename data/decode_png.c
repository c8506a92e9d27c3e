/* PNG decode with libpng: every colour type and bit depth to 8-bit gray or RGB, alpha dropped. */
#include "data/source.h"
#include "data/source_util.h"
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *p;
    size_t n, off;
    char msg[200];
} PngIn;

static void png_read_mem(png_structp png, png_bytep dst, png_size_t len) {
    PngIn *in = png_get_io_ptr(png);
    if (len > in->n - in->off) png_error(png, "truncated data");
    memcpy(dst, in->p + in->off, len);
    in->off += len;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    PngIn *in = png_get_error_ptr(png);
    snprintf(in->msg, sizeof in->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

int image_decode_png(const uint8_t *bytes, size_t n, int want_c, Image *out, char *err, size_t errn) {
    memset(out, 0, sizeof *out);
    if (want_c != 1 && want_c != 3) return src_seterr(err, errn, "png: want 1 or 3 channels, not %d", want_c);
    if (n < 8 || png_sig_cmp(bytes, 0, 8)) return src_seterr(err, errn, "png: bad signature");
    PngIn in = {bytes, n, 0, "error"};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &in, png_on_error, png_on_warning);
    if (!png) return src_seterr(err, errn, "png: out of memory");
    png_infop info = png_create_info_struct(png);
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); return src_seterr(err, errn, "png: out of memory"); }
    volatile Image im = {0};
    uint8_t *volatile buf = NULL;       /* decoded rows, source layout after transforms */
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        src_seterr(err, errn, "png: %s", in.msg);
        png_destroy_read_struct(&png, &info, NULL);
        free(im.px);
        free(buf);
        free(rows);
        return -1;
    }
    png_set_read_fn(png, &in, png_read_mem);
    png_set_user_limits(png, IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
    png_set_chunk_malloc_max(png, (png_alloc_size_t)8 << 20);
    png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_WARN_DISCARD);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    if (w == 0 || h == 0 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || (uint64_t)w * h > IMAGE_MAX_PIXELS) {
        snprintf(in.msg, sizeof in.msg, "size %ux%u out of bounds", (unsigned)w, (unsigned)h);
        png_longjmp(png, 1);
    }
    /* To 8-bit, alpha stripped, tRNS ignored (PIL's convert('RGB') drops transparency too). */
    if (depth == 16) png_set_strip_16(png);           /* high byte, as PIL's RGB;16B */
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    /* palette_to_rgb also expands tRNS to alpha: strip that as well */
    if ((ctype & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    int src_c = (ctype & PNG_COLOR_MASK_COLOR) ? 3 : 1;  /* palette counts as colour */
    if (src_c == 1 && want_c == 3) { png_set_gray_to_rgb(png); src_c = 3; }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rb = png_get_rowbytes(png, info);
    int ch = png_get_channels(png, info);
    if (ch != src_c || rb != (size_t)w * src_c) {
        snprintf(in.msg, sizeof in.msg, "unexpected row layout (%d channels, %zu bytes a row)", ch, rb);
        png_longjmp(png, 1);
    }
    if (image_alloc((Image *)&im, (int)w, (int)h, want_c)) {
        snprintf(in.msg, sizeof in.msg, "out of memory for %ux%u", (unsigned)w, (unsigned)h);
        png_longjmp(png, 1);
    }
    uint8_t *dstbuf = im.px;
    if (src_c != want_c) { /* colour -> gray: decode RGB then luma */
        buf = malloc((size_t)h * rb);
        if (!buf) { snprintf(in.msg, sizeof in.msg, "out of memory"); png_longjmp(png, 1); }
        dstbuf = buf;
    }
    rows = malloc((size_t)h * sizeof *rows);
    if (!rows) { snprintf(in.msg, sizeof in.msg, "out of memory"); png_longjmp(png, 1); }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = dstbuf + (size_t)y * rb;
    png_read_image(png, rows); /* what follows the image data (IEND, text) is not needed */
    if (src_c != want_c) {
        size_t np = (size_t)w * h;
        for (size_t i = 0; i < np; i++) im.px[i] = rgb_to_luma(buf[3 * i], buf[3 * i + 1], buf[3 * i + 2]);
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(buf);
    free(rows);
    *out = im;
    return 0;
}
