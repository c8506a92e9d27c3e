/* JPEG decode with libjpeg-turbo: DCT-domain downscaling, gray / RGB output, bounded sizes. */
#include "data/source.h"
#include "data/source_util.h"
#include <jerror.h>
#include <jpeglib.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SCANS 1000 /* progressive JPEGs with more scans are rejected (decoder DoS) */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} JErr;

typedef struct {
    struct jpeg_progress_mgr pub;
} JProg;

static void on_error(j_common_ptr c) {
    JErr *e = (JErr *)c->err;
    (*c->err->format_message)(c, e->msg);
    longjmp(e->jb, 1);
}

static void on_message(j_common_ptr c, int level) {
    /* Warnings (-1) are ignored as PIL ignores them, except data ending early: PIL refuses
     * truncated files, so do we. Trace messages (level >= 0) are dropped. */
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) on_error(c);
}

static void on_progress(j_common_ptr c) {
    if (c->is_decompressor) {
        j_decompress_ptr d = (j_decompress_ptr)c;
        if (d->input_scan_number > MAX_SCANS) {
            JErr *e = (JErr *)c->err;
            snprintf(e->msg, sizeof e->msg, "more than %d scans", MAX_SCANS);
            longjmp(e->jb, 2);
        }
    }
}

int image_decode_jpeg(const uint8_t *bytes, size_t n, int want_c, int min_side, Image *out, char *err, size_t errn) {
    memset(out, 0, sizeof *out);
    if (want_c != 1 && want_c != 3) return src_seterr(err, errn, "jpeg: want 1 or 3 channels, not %d", want_c);
    if (n < 4 || n > (size_t)0xffffffffu) return src_seterr(err, errn, "jpeg: %zu bytes", n);
    struct jpeg_decompress_struct d;
    JErr je;
    JProg jp;
    volatile Image im = {0};
    uint8_t *volatile row = NULL;
    memset(&d, 0, sizeof d);
    d.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = on_error;
    je.pub.emit_message = on_message;
    je.msg[0] = 0;
    int jr = setjmp(je.jb);
    if (jr) {
        src_seterr(err, errn, "jpeg: %s", je.msg);
        jpeg_destroy_decompress(&d);
        free(im.px);
        free(row);
        return -1;
    }
    jpeg_create_decompress(&d);
    jp.pub.progress_monitor = on_progress;
    d.progress = &jp.pub;
    jpeg_mem_src(&d, bytes, (unsigned long)n);
    jpeg_read_header(&d, TRUE);
    unsigned w0 = d.image_width, h0 = d.image_height;
    if (w0 == 0 || h0 == 0 || w0 > IMAGE_MAX_SIDE || h0 > IMAGE_MAX_SIDE || (uint64_t)w0 * h0 > IMAGE_MAX_PIXELS) {
        snprintf(je.msg, sizeof je.msg, "size %ux%u out of bounds", w0, h0);
        longjmp(je.jb, 2);
    }
    int ncomp = d.num_components;
    int cmyk = d.jpeg_color_space == JCS_CMYK || d.jpeg_color_space == JCS_YCCK;
    int src_gray = d.jpeg_color_space == JCS_GRAYSCALE;
    if (cmyk) d.out_color_space = JCS_CMYK;
    else if (src_gray) d.out_color_space = JCS_GRAYSCALE;
    else d.out_color_space = JCS_RGB; /* gray from colour goes through RGB to match PIL's convert('L') */
    (void)ncomp;
    d.dct_method = JDCT_ISLOW;
    d.scale_num = 1;
    d.scale_denom = 1;
    if (min_side > 0) {
        unsigned s0 = w0 < h0 ? w0 : h0;
        for (unsigned den = 8; den >= 2; den /= 2)
            if ((s0 + den - 1) / den >= (unsigned)min_side) { d.scale_denom = den; break; }
    }
    jpeg_start_decompress(&d);
    int W = (int)d.output_width, H = (int)d.output_height, oc = d.output_components;
    if (image_alloc((Image *)&im, W, H, want_c)) {
        snprintf(je.msg, sizeof je.msg, "out of memory for %dx%d", W, H);
        longjmp(je.jb, 2);
    }
    int direct = (oc == want_c);
    if (!direct) {
        row = malloc((size_t)W * oc);
        if (!row) { snprintf(je.msg, sizeof je.msg, "out of memory"); longjmp(je.jb, 2); }
    }
    int inverted = d.saw_Adobe_marker;
    while (d.output_scanline < d.output_height) {
        uint8_t *dst = im.px + (size_t)d.output_scanline * W * want_c;
        JSAMPROW rp = direct ? dst : row;
        if (jpeg_read_scanlines(&d, &rp, 1) != 1) continue;
        if (direct) continue;
        if (oc == 4) { /* CMYK (Adobe writes it inverted) -> RGB */
            for (int x = 0; x < W; x++) {
                unsigned c = row[4 * x], m = row[4 * x + 1], y = row[4 * x + 2], k = row[4 * x + 3];
                if (!inverted) { c = 255 - c; m = 255 - m; y = 255 - y; k = 255 - k; }
                uint8_t r = (uint8_t)((c * k + 127) / 255), g = (uint8_t)((m * k + 127) / 255),
                        b = (uint8_t)((y * k + 127) / 255);
                if (want_c == 3) { dst[3 * x] = r; dst[3 * x + 1] = g; dst[3 * x + 2] = b; }
                else dst[x] = rgb_to_luma(r, g, b);
            }
        } else if (oc == 3) { /* RGB -> gray */
            for (int x = 0; x < W; x++) dst[x] = rgb_to_luma(row[3 * x], row[3 * x + 1], row[3 * x + 2]);
        } else { /* gray -> RGB */
            for (int x = 0; x < W; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = row[x];
        }
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    free(row);
    *out = im;
    return 0;
}

int image_encode_jpeg(const Image *im, int quality, uint8_t **out, size_t *nout) {
    *out = NULL;
    *nout = 0;
    if (!im || !im->px || im->w <= 0 || im->h <= 0 || (im->c != 1 && im->c != 3)) return -1;
    struct jpeg_compress_struct c;
    JErr je;
    unsigned char *b = NULL; /* address taken: lives in memory across longjmp */
    unsigned long size = 0;
    c.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = on_error;
    if (setjmp(je.jb)) {
        jpeg_destroy_compress(&c);
        free(b);
        return -1;
    }
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &b, &size);
    c.image_width = (JDIMENSION)im->w;
    c.image_height = (JDIMENSION)im->h;
    c.input_components = im->c;
    c.in_color_space = im->c == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality < 1 ? 1 : quality > 100 ? 100 : quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = im->px + (size_t)c.next_scanline * im->w * im->c;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    *out = b;
    *nout = size;
    return 0;
}
