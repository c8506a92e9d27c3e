/* Lossless PNG encoding to memory (converters write IDX / CIFAR pixels with it). */
#include "data/source.h"
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

typedef struct { uint8_t *p; size_t n, cap; int oom; } PngOut;

static void png_write_mem(png_structp png, png_bytep data, png_size_t len) {
    PngOut *o = png_get_io_ptr(png);
    if (o->n + len > o->cap) {
        size_t nc = o->cap ? o->cap : 1024;
        while (nc < o->n + len) nc *= 2;
        uint8_t *np = realloc(o->p, nc);
        if (!np) { o->oom = 1; png_error(png, "out of memory"); }
        o->p = np;
        o->cap = nc;
    }
    memcpy(o->p + o->n, data, len);
    o->n += len;
}
static void png_flush_mem(png_structp png) { (void)png; }

int image_encode_png(const Image *im, uint8_t **out, size_t *nout) {
    *out = NULL;
    *nout = 0;
    if (!im || !im->px || im->w <= 0 || im->h <= 0 || (im->c != 1 && im->c != 3)) return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    if (!png) return -1;
    png_infop info = png_create_info_struct(png);
    PngOut o = {0};
    png_bytep *volatile rows = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(o.p);
        free(rows);
        return -1;
    }
    png_set_write_fn(png, &o, png_write_mem, png_flush_mem);
    png_set_compression_level(png, 6);
    png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8, im->c == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    rows = malloc((size_t)im->h * sizeof *rows);
    if (!rows) png_error(png, "out of memory");
    for (int y = 0; y < im->h; y++) rows[y] = im->px + (size_t)y * im->w * im->c;
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    *out = o.p;
    *nout = o.n;
    return 0;
}
