/* RandAugment (timm's rand_augment_transform) and ColorJitter on 8-bit HWC
 * images, in place. Pixel semantics follow PIL as timm/torchvision call it:
 * ImageOps (autocontrast, equalize, invert, posterize, solarize), ImageEnhance
 * blends (truncating like Image.blend), and Image.transform(AFFINE) with
 * bilinear / bicubic(a=-1) point sampling, out-of-image pixels = fill. */
#include "data/augment.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LEVEL_DENOM 10.0

static const char *op_names[AUG_NUM_OPS] = {
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
    "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"};
static const char *op_names_inc[AUG_NUM_OPS] = {
    "AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing",
    "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing",
    "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"};
/* timm _RAND_CHOICE_WEIGHTS_0, in op order */
static const double choice_w0[AUG_NUM_OPS] = {0.025, 0.005, 0.0, 0.3, 0.0, 0.005, 0.005, 0.025,
                                              0.005, 0.005, 0.025, 0.2, 0.2, 0.1, 0.1};

const char *aug_op_name(int op, int increasing) {
    if (op < 0 || op >= AUG_NUM_OPS) return "?";
    return increasing ? op_names_inc[op] : op_names[op];
}

static size_t npix(const Image *im) { return (size_t)im->w * im->h; }

/* ---- point ops ---- */

static void apply_lut(Image *im, uint8_t lut[][256]) { /* one LUT per channel */
    size_t n = npix(im);
    int c = im->c;
    uint8_t *p = im->px;
    if (c == 1)
        for (size_t i = 0; i < n; i++) p[i] = lut[0][p[i]];
    else
        for (size_t i = 0; i < n; i++, p += 3) { p[0] = lut[0][p[0]]; p[1] = lut[1][p[1]]; p[2] = lut[2][p[2]]; }
}

static void histograms(const Image *im, uint32_t h[][256]) {
    memset(h, 0, sizeof(uint32_t) * 256 * im->c);
    size_t n = npix(im);
    const uint8_t *p = im->px;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < im->c; k++) h[k][*p++]++;
}

static void autocontrast(Image *im) {
    uint32_t h[3][256];
    uint8_t lut[3][256];
    histograms(im, h);
    for (int k = 0; k < im->c; k++) {
        int lo = 0, hi = 255;
        while (lo < 255 && !h[k][lo]) lo++;
        while (hi > 0 && !h[k][hi]) hi--;
        if (hi <= lo) {
            for (int i = 0; i < 256; i++) lut[k][i] = (uint8_t)i;
            continue;
        }
        double scale = 255.0 / (hi - lo), offset = -lo * scale;
        for (int i = 0; i < 256; i++) {
            int v = (int)(i * scale + offset);
            lut[k][i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    apply_lut(im, lut);
}

static void equalize(Image *im) {
    uint32_t h[3][256];
    uint8_t lut[3][256];
    histograms(im, h);
    for (int k = 0; k < im->c; k++) {
        for (int i = 0; i < 256; i++) lut[k][i] = (uint8_t)i;
        uint64_t total = 0;
        int last = -1, nonzero = 0;
        for (int i = 0; i < 256; i++)
            if (h[k][i]) { total += h[k][i]; last = i; nonzero++; }
        if (nonzero <= 1) continue;
        uint64_t step = (total - h[k][last]) / 255;
        if (!step) continue;
        uint64_t n = step / 2;
        for (int i = 0; i < 256; i++) {
            uint64_t v = n / step;
            lut[k][i] = (uint8_t)(v > 255 ? 255 : v);
            n += h[k][i];
        }
    }
    apply_lut(im, lut);
}

static void lut_all(Image *im, const uint8_t lut1[256]) {
    uint8_t lut[3][256];
    for (int k = 0; k < 3; k++) memcpy(lut[k], lut1, 256);
    apply_lut(im, lut);
}

static void invert(Image *im) {
    uint8_t l[256];
    for (int i = 0; i < 256; i++) l[i] = (uint8_t)(255 - i);
    lut_all(im, l);
}

static void posterize(Image *im, int bits) {
    if (bits >= 8) return;
    if (bits < 0) bits = 0;
    uint8_t mask = (uint8_t)~((1u << (8 - bits)) - 1u), l[256];
    for (int i = 0; i < 256; i++) l[i] = (uint8_t)(i & mask);
    lut_all(im, l);
}

static void solarize(Image *im, int thresh) {
    uint8_t l[256];
    for (int i = 0; i < 256; i++) l[i] = (uint8_t)(i < thresh ? i : 255 - i);
    lut_all(im, l);
}

static void solarize_add(Image *im, int add, int thresh) {
    uint8_t l[256];
    for (int i = 0; i < 256; i++) {
        int v = i < thresh ? i + add : i;
        l[i] = (uint8_t)(v > 255 ? 255 : v < 0 ? 0 : v);
    }
    lut_all(im, l);
}

/* ---- ImageEnhance: blend(degenerate, img, f) = deg + f * (img - deg) ---- */

static inline uint8_t blend1(float deg, float v, float f) {
    float t = deg + f * (v - deg);
    if (t <= 0.0f) return 0;
    if (t >= 255.0f) return 255;
    return (uint8_t)t;
}

static inline int luma(const uint8_t *p) { /* PIL convert("L") */
    return (int)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
}

static void blend_const(Image *im, float deg, float f) { /* via a LUT */
    uint8_t l[256];
    for (int i = 0; i < 256; i++) l[i] = blend1(deg, (float)i, f);
    lut_all(im, l);
}

static void enhance_brightness(Image *im, float f) { blend_const(im, 0.0f, f); }

static void enhance_contrast(Image *im, float f) {
    size_t n = npix(im);
    uint64_t sum = 0;
    if (im->c == 3)
        for (size_t i = 0; i < n; i++) sum += luma(im->px + 3 * i);
    else
        for (size_t i = 0; i < n; i++) sum += im->px[i];
    float mean = (float)(int)((double)sum / (double)n + 0.5);
    blend_const(im, mean, f);
}

static void enhance_color(Image *im, float f) {
    if (im->c != 3) return; /* gray: the degenerate is the image itself */
    size_t n = npix(im);
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = im->px + 3 * i;
        float g = (float)luma(p);
        p[0] = blend1(g, p[0], f); p[1] = blend1(g, p[1], f); p[2] = blend1(g, p[2], f);
    }
}

static int enhance_sharpness(Image *im, float f) {
    int w = im->w, h = im->h, c = im->c;
    size_t stride = (size_t)w * c;
    uint8_t *deg = malloc(stride * h);
    if (!deg) return -1;
    memcpy(deg, im->px, stride * h); /* border pixels stay (PIL's 3x3 filter) */
    for (int y = 1; y < h - 1; y++)
        for (int x = 1; x < w - 1; x++)
            for (int k = 0; k < c; k++) {
                const uint8_t *p = im->px + (size_t)y * stride + (size_t)x * c + k;
                int s = p[-stride - c] + p[-stride] + p[-stride + c] + p[-c] + 5 * p[0] + p[c] +
                        p[stride - c] + p[stride] + p[stride + c];
                deg[(size_t)y * stride + (size_t)x * c + k] = (uint8_t)((s + 6) / 13);
            }
    size_t m = stride * h;
    for (size_t i = 0; i < m; i++) im->px[i] = blend1(deg[i], im->px[i], f);
    free(deg);
    return 0;
}

/* ---- affine (PIL Image.transform AFFINE): out(x,y) samples in at
 * (a0 x' + a1 y' + a2, a3 x' + a4 y' + a5), x' = x + 0.5 ---- */

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static inline double cubic_a1(double v1, double v2, double v3, double v4, double d) {
    double p1 = v2, p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
    return p1 + d * (p2 + d * (p3 + d * p4));
}

static int affine(Image *im, const double a[6], AugInterp ip, const uint8_t fill[3]) {
    int w = im->w, h = im->h, c = im->c;
    size_t stride = (size_t)w * c;
    uint8_t *src = malloc(stride * h);
    if (!src) return -1;
    memcpy(src, im->px, stride * h);
    for (int y = 0; y < h; y++) {
        uint8_t *out = im->px + (size_t)y * stride;
        for (int x = 0; x < w; x++, out += c) {
            double xin = a[0] * (x + 0.5) + a[1] * (y + 0.5) + a[2];
            double yin = a[3] * (x + 0.5) + a[4] * (y + 0.5) + a[5];
            if (!(xin >= 0.0 && xin < w && yin >= 0.0 && yin < h)) {
                for (int k = 0; k < c; k++) out[k] = fill[k];
                continue;
            }
            xin -= 0.5; yin -= 0.5;
            int xi = (int)floor(xin), yi = (int)floor(yin);
            double dx = xin - xi, dy = yin - yi;
            if (ip == AUG_INTERP_BILINEAR) {
                int x0 = clampi(xi, 0, w - 1) * c, x1 = clampi(xi + 1, 0, w - 1) * c;
                const uint8_t *r0 = src + (size_t)clampi(yi, 0, h - 1) * stride;
                const uint8_t *r1 = (yi + 1 >= 0 && yi + 1 < h) ? src + (size_t)(yi + 1) * stride : NULL;
                for (int k = 0; k < c; k++) {
                    double v1 = r0[x0 + k] + (r0[x1 + k] - (double)r0[x0 + k]) * dx;
                    double v2 = r1 ? r1[x0 + k] + (r1[x1 + k] - (double)r1[x0 + k]) * dx : v1;
                    double v = v1 + (v2 - v1) * dy;
                    out[k] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : v);
                }
            } else {
                int xs[4];
                for (int j = 0; j < 4; j++) xs[j] = clampi(xi - 1 + j, 0, w - 1) * c;
                for (int k = 0; k < c; k++) {
                    double rv[4];
                    for (int j = 0; j < 4; j++) {
                        int yy = yi - 1 + j;
                        if (j == 0) yy = clampi(yy, 0, h - 1);
                        if (j > 0 && (yy < 0 || yy >= h)) { rv[j] = rv[j - 1]; continue; }
                        const uint8_t *r = src + (size_t)yy * stride + k;
                        rv[j] = cubic_a1(r[xs[0]], r[xs[1]], r[xs[2]], r[xs[3]], dx);
                    }
                    double v = cubic_a1(rv[0], rv[1], rv[2], rv[3], dy);
                    out[k] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : v);
                }
            }
        }
    }
    free(src);
    return 0;
}

static int rotate(Image *im, double deg, AugInterp ip, const uint8_t fill[3]) {
    deg = fmod(deg, 360.0);
    if (deg < 0) deg += 360.0;
    if (deg == 0.0) return 0;
    double cx = im->w / 2.0, cy = im->h / 2.0, t = -deg * 3.14159265358979323846 / 180.0;
    double a[6] = {cos(t), sin(t), 0.0, -sin(t), cos(t), 0.0};
    a[2] = a[0] * -cx + a[1] * -cy + cx;
    a[5] = a[3] * -cx + a[4] * -cy + cy;
    return affine(im, a, ip, fill);
}

/* ---- RandAugment ---- */

static double rand_negate(AugRng *r, double v) { return aug_rng_uniform(r) > 0.5 ? -v : v; }

static AugInterp pick_interp(AugInterp ip, AugRng *r) {
    if (ip == AUG_INTERP_RANDOM) return aug_rng_uniform(r) < 0.5 ? AUG_INTERP_BILINEAR : AUG_INTERP_BICUBIC;
    return ip;
}

int aug_apply_op(Image *im, int op, float m, int inc, const uint8_t fill[3], float translate_pct,
                 AugInterp interp, AugRng *r) {
    double l = m / LEVEL_DENOM;
    /* Color/Contrast/Brightness/Sharpness factor: [0.1, 1.9], or 1 +- 0.9 l (inc) */
#define ENH() ((float)(inc ? fmax(0.1, 1.0 + rand_negate(r, l * 0.9)) : l * 1.8 + 0.1))
    switch (op) {
    case AUG_OP_AUTOCONTRAST: autocontrast(im); return 0;
    case AUG_OP_EQUALIZE: equalize(im); return 0;
    case AUG_OP_INVERT: invert(im); return 0;
    case AUG_OP_ROTATE: {
        double deg = rand_negate(r, l * 30.0);
        return rotate(im, deg, pick_interp(interp, r), fill);
    }
    case AUG_OP_POSTERIZE: {
        int bits = (int)(l * 4);
        posterize(im, inc ? 4 - bits : bits);
        return 0;
    }
    case AUG_OP_SOLARIZE: {
        int th = (int)(l * 256);
        solarize(im, inc ? 256 - th : th);
        return 0;
    }
    case AUG_OP_SOLARIZE_ADD: solarize_add(im, (int)(l * 110), 128); return 0;
    case AUG_OP_COLOR: enhance_color(im, ENH()); return 0;
    case AUG_OP_CONTRAST: enhance_contrast(im, ENH()); return 0;
    case AUG_OP_BRIGHTNESS: enhance_brightness(im, ENH()); return 0;
    case AUG_OP_SHARPNESS: return enhance_sharpness(im, ENH());
    case AUG_OP_SHEARX:
    case AUG_OP_SHEARY: {
        double s = rand_negate(r, l * 0.3);
        double a[6] = {1, 0, 0, 0, 1, 0};
        if (op == AUG_OP_SHEARX) a[1] = s; else a[3] = s;
        return affine(im, a, pick_interp(interp, r), fill);
    }
    case AUG_OP_TRANSLATEX_REL:
    case AUG_OP_TRANSLATEY_REL: {
        double p = rand_negate(r, l * translate_pct);
        double a[6] = {1, 0, 0, 0, 1, 0};
        if (op == AUG_OP_TRANSLATEX_REL) a[2] = p * im->w; else a[5] = p * im->h;
        return affine(im, a, pick_interp(interp, r), fill);
    }
    default: return -1;
    }
#undef ENH
}

int aug_randaugment(const AugRandAugment *ra, Image *im, const uint8_t fill[3], float translate_pct,
                    AugInterp interp, AugRng *r) {
    if (!ra->enabled || ra->num_ops <= 0) return 0;
    int ops[64];
    int n = ra->num_ops > 64 ? 64 : ra->num_ops;
    if (ra->weighted) { /* without replacement, proportional to the remaining weights */
        double w[AUG_NUM_OPS];
        memcpy(w, choice_w0, sizeof w);
        for (int i = 0; i < n; i++) {
            double tot = 0;
            for (int k = 0; k < AUG_NUM_OPS; k++) tot += w[k];
            if (tot <= 0) { n = i; break; }
            double u = aug_rng_uniform(r) * tot;
            int k = 0;
            while (k < AUG_NUM_OPS - 1 && (w[k] == 0 || u >= w[k])) { u -= w[k]; k++; }
            ops[i] = k;
            w[k] = 0;
        }
    } else {
        for (int i = 0; i < n; i++) ops[i] = aug_rng_int(r, 0, AUG_NUM_OPS - 1);
    }
    for (int i = 0; i < n; i++) {
        if (ra->prob < 1.0f && aug_rng_uniform(r) > ra->prob) continue;
        double m = ra->magnitude;
        if (ra->mstd > 0) {
            if (isinf(ra->mstd)) m = aug_rng_range(r, 0, m);
            else m = m + ra->mstd * aug_rng_normal(r);
        }
        double ub = ra->mmax > 0 ? ra->mmax : LEVEL_DENOM;
        m = fmax(0.0, fmin(m, ub));
        if (aug_apply_op(im, ops[i], (float)m, ra->increasing, fill, translate_pct, interp, r)) return -1;
    }
    return 0;
}

void aug_color_jitter(Image *im, const float jit[3], AugRng *r) {
    int perm[4] = {0, 1, 2, 3};
    for (int i = 3; i > 0; i--) {
        int j = aug_rng_int(r, 0, i);
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    float f[3];
    int on[3];
    for (int k = 0; k < 3; k++) {
        on[k] = jit[k] > 0;
        f[k] = on[k] ? (float)aug_rng_range(r, fmax(0.0, 1.0 - jit[k]), 1.0 + jit[k]) : 1.0f;
    }
    for (int i = 0; i < 4; i++) {
        int k = perm[i];
        if (k == 3 || !on[k]) continue; /* 3 = hue: not supported */
        if (k == 0) enhance_brightness(im, f[0]);
        else if (k == 1) enhance_contrast(im, f[1]);
        else enhance_color(im, f[2]);
    }
}
