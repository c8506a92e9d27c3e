/* Format dispatch by magic bytes, and header-only probing. */
#include "data/source.h"
#include "data/source_util.h"
#include <string.h>

static int is_jpeg(const uint8_t *b, size_t n) { return n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff; }
static int is_png(const uint8_t *b, size_t n) { return n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8); }

int image_decode(const uint8_t *bytes, size_t n, int want_c, int min_side, Image *out, char *err, size_t errn) {
    memset(out, 0, sizeof *out);
    if (!bytes || n == 0) return src_seterr(err, errn, "empty image data");
    if (is_jpeg(bytes, n)) return image_decode_jpeg(bytes, n, want_c, min_side, out, err, errn);
    if (is_png(bytes, n)) return image_decode_png(bytes, n, want_c, out, err, errn);
    return src_seterr(err, errn, "unknown image format (first bytes %02x %02x %02x %02x)", bytes[0], n > 1 ? bytes[1] : 0,
                      n > 2 ? bytes[2] : 0, n > 3 ? bytes[3] : 0);
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

int image_probe(const uint8_t *b, size_t n, int *w, int *h, int *c, char *err, size_t errn) {
    *w = *h = *c = 0;
    if (is_png(b, n)) {
        if (n < 33 || memcmp(b + 12, "IHDR", 4)) return src_seterr(err, errn, "png: no IHDR");
        uint32_t W = be32(b + 16), H = be32(b + 20);
        int ct = b[25];
        if (!W || !H || W > IMAGE_MAX_SIDE || H > IMAGE_MAX_SIDE || (uint64_t)W * H > IMAGE_MAX_PIXELS)
            return src_seterr(err, errn, "png: size %ux%u out of bounds", W, H);
        *w = (int)W;
        *h = (int)H;
        *c = (ct == 0 || ct == 4) ? 1 : 3;
        return 0;
    }
    if (is_jpeg(b, n)) {
        size_t i = 2;
        while (i + 4 <= n) {
            if (b[i] != 0xff) return src_seterr(err, errn, "jpeg: bad marker");
            uint8_t m = b[i + 1];
            if (m == 0xff) { i++; continue; }
            if (m == 0xd8 || (m >= 0xd0 && m <= 0xd7) || m == 0x01) { i += 2; continue; }
            size_t len = (size_t)b[i + 2] << 8 | b[i + 3];
            if (len < 2) return src_seterr(err, errn, "jpeg: bad segment length");
            if (((m >= 0xc0 && m <= 0xc3) || (m >= 0xc5 && m <= 0xc7) || (m >= 0xc9 && m <= 0xcb) ||
                 (m >= 0xcd && m <= 0xcf))) {
                if (i + 10 > n) break;
                int H = b[i + 5] << 8 | b[i + 6], W = b[i + 7] << 8 | b[i + 8], nc = b[i + 9];
                if (!W || !H || W > IMAGE_MAX_SIDE || H > IMAGE_MAX_SIDE || (uint64_t)W * H > IMAGE_MAX_PIXELS)
                    return src_seterr(err, errn, "jpeg: size %dx%d out of bounds", W, H);
                *w = W;
                *h = H;
                *c = nc == 1 ? 1 : 3;
                return 0;
            }
            if (m == 0xd9 || m == 0xda) break;
            i += 2 + len;
        }
        return src_seterr(err, errn, "jpeg: no frame header");
    }
    return src_seterr(err, errn, "unknown image format");
}
