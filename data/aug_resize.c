/* Separable antialiased resampling (PIL's algorithm: triangle / Keys cubic
 * a=-0.5 filters whose support is scaled by the shrink factor), plus flips.
 * Weights are precomputed per axis; the horizontal pass writes float rows,
 * the vertical pass sweeps contiguous rows and rounds to 8 bits once. */
#include "data/augment.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct AxisWeights {
    int *start;   /* first source index of each output (absolute) */
    int *count;   /* taps of each output (0 = outside the resized image) */
    float *w;     /* ksize weights per output */
    int ksize;
} AxisWeights;

static double filter_eval(AugInterp ip, double x) {
    x = fabs(x);
    if (ip == AUG_INTERP_BILINEAR) return x < 1.0 ? 1.0 - x : 0.0;
    const double a = -0.5;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

/* Weights for outputs out_from .. out_from+out_count-1 of an axis of
 * out_total samples resampled from source indices [in0, in0 + in_size). */
static int axis_weights(AxisWeights *aw, int in0, int in_size, int out_total, int out_from, int out_count,
                        AugInterp ip) {
    double support0 = ip == AUG_INTERP_BILINEAR ? 1.0 : 2.0;
    double scale = (double)in_size / out_total;
    double fscale = scale > 1.0 ? scale : 1.0;
    double support = support0 * fscale;
    int ksize = (int)ceil(support) * 2 + 1;
    aw->ksize = ksize;
    aw->start = malloc(sizeof(int) * (size_t)out_count * 2);
    aw->w = malloc(sizeof(float) * (size_t)out_count * ksize);
    if (!aw->start || !aw->w) { free(aw->start); free(aw->w); aw->start = NULL; aw->w = NULL; return -1; }
    aw->count = aw->start + out_count;
    double ss = 1.0 / fscale;
    double tmp[ksize];
    for (int i = 0; i < out_count; i++) {
        int xx = out_from + i;
        float *w = aw->w + (size_t)i * ksize;
        memset(w, 0, sizeof(float) * ksize);
        if (xx < 0 || xx >= out_total) { aw->start[i] = in0; aw->count[i] = 0; continue; }
        double center = (xx + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        int cnt = xmax - xmin;
        if (cnt > ksize) cnt = ksize;
        double tot = 0;
        for (int k = 0; k < cnt; k++) {
            tmp[k] = filter_eval(ip, (k + xmin - center + 0.5) * ss);
            tot += tmp[k];
        }
        /* trim zero-weight taps at both ends */
        int lo = 0, hi = cnt;
        while (lo < hi && tmp[lo] == 0.0) lo++;
        while (hi > lo && tmp[hi - 1] == 0.0) hi--;
        if (hi == lo || tot == 0.0) { /* degenerate: nearest sample */
            int k = (int)center - xmin;
            if (k < 0) k = 0;
            if (k >= cnt) k = cnt - 1;
            aw->start[i] = in0 + xmin + k; aw->count[i] = 1; w[0] = 1.0f;
            continue;
        }
        aw->start[i] = in0 + xmin + lo;
        aw->count[i] = hi - lo;
        for (int k = lo; k < hi; k++) w[k - lo] = (float)(tmp[k] / tot);
    }
    return 0;
}

static void axis_free(AxisWeights *aw) {
    free(aw->start);
    free(aw->w);
}

static inline uint8_t clip8(float v) {
    v += 0.5f;
    if (!(v > 0.0f)) return 0;
    if (v >= 255.0f) return 255;
    return (uint8_t)v;
}

/* Copy a window of src (offset ox, oy; may stick out: zeros) into dst. */
static void copy_window(const Image *src, int bx, int by, int bw, int bh, int ox, int oy, Image *dst) {
    int c = src->c;
    for (int y = 0; y < dst->h; y++) {
        uint8_t *d = dst->px + (size_t)y * dst->w * c;
        int sy = oy + y;
        if (sy < 0 || sy >= bh) { memset(d, 0, (size_t)dst->w * c); continue; }
        const uint8_t *s = src->px + ((size_t)(by + sy) * src->w + bx) * c;
        int x0 = ox < 0 ? -ox : 0;
        int x1 = bw - ox < dst->w ? bw - ox : dst->w;
        if (x0 > 0) memset(d, 0, (size_t)(x0 < dst->w ? x0 : dst->w) * c);
        if (x1 > x0) memcpy(d + (size_t)x0 * c, s + (size_t)(ox + x0) * c, (size_t)(x1 - x0) * c);
        if (x1 < dst->w) {
            int from = x1 > 0 ? x1 : 0;
            if (from < dst->w) memset(d + (size_t)from * c, 0, (size_t)(dst->w - from) * c);
        }
    }
}

/* General: resample box (bx,by,bw,bh) of src to a virtual rw x rh image and
 * write its window at (ox, oy) of dst's size into dst. */
static int resample(const Image *src, int bx, int by, int bw, int bh, int rw, int rh, int ox, int oy,
                    Image *dst, AugInterp ip) {
    if (!src || !dst || !src->px || !dst->px || src->c != dst->c || bw <= 0 || bh <= 0 || bx < 0 || by < 0 ||
        bx + bw > src->w || by + bh > src->h || rw <= 0 || rh <= 0)
        return -1;
    if (ip == AUG_INTERP_RANDOM) ip = AUG_INTERP_BICUBIC;
    if (bw == rw && bh == rh) { copy_window(src, bx, by, bw, bh, ox, oy, dst); return 0; }
    const int c = src->c, ow = dst->w, oh = dst->h;
    AxisWeights ax = {0}, ay = {0};
    if (axis_weights(&ax, bx, bw, rw, ox, ow, ip) || axis_weights(&ay, by, bh, rh, oy, oh, ip)) {
        axis_free(&ax); axis_free(&ay);
        return -1;
    }
    /* Vertical pass first, straight from the 8-bit rows (contiguous, so the
     * inner loop vectorises), over the source columns the horizontal pass
     * needs; then the horizontal pass over only oh rows. */
    int c0 = bx + bw, c1 = bx;
    for (int x = 0; x < ow; x++) {
        if (!ax.count[x]) continue;
        if (ax.start[x] < c0) c0 = ax.start[x];
        if (ax.start[x] + ax.count[x] > c1) c1 = ax.start[x] + ax.count[x];
    }
    int ncols = c1 > c0 ? c1 - c0 : 1;
    if (c1 <= c0) c0 = bx;
    size_t tstride = (size_t)ncols * c;
    float *tmp = malloc(sizeof(float) * tstride * oh);
    if (!tmp) { axis_free(&ax); axis_free(&ay); return -1; }
    const size_t sstride = (size_t)src->w * c;
    for (int y = 0; y < oh; y++) {
        float *t = tmp + (size_t)y * tstride;
        int n = ay.count[y];
        if (!n) { memset(t, 0, sizeof(float) * tstride); continue; }
        const float *w = ay.w + (size_t)y * ay.ksize;
        const uint8_t *row = src->px + (size_t)ay.start[y] * sstride + (size_t)c0 * c;
        {
            const float w0 = w[0];
            for (size_t i = 0; i < tstride; i++) t[i] = w0 * (float)row[i];
        }
        for (int k = 1; k < n; k++) {
            const uint8_t *rk = row + (size_t)k * sstride;
            const float wk = w[k];
            for (size_t i = 0; i < tstride; i++) t[i] += wk * (float)rk[i];
        }
    }
    /* horizontal pass: weights padded to ksize taps (zeros) for a fixed-trip inner loop */
    const int K = ax.ksize;
    for (int y = 0; y < oh; y++) {
        const float *t = tmp + (size_t)y * tstride;
        uint8_t *d = dst->px + (size_t)y * ow * c;
        if (c == 3) {
            for (int x = 0; x < ow; x++) {
                const float *w = ax.w + (size_t)x * K;
                int st = ax.start[x] - c0, n = ax.count[x];
                const float *p = t + (size_t)st * 3;
                float a0 = 0, a1 = 0, a2 = 0;
                for (int k = 0; k < n; k++, p += 3) {
                    a0 += w[k] * p[0]; a1 += w[k] * p[1]; a2 += w[k] * p[2];
                }
                if (!n) a0 = a1 = a2 = 0;
                d[3 * x] = clip8(a0); d[3 * x + 1] = clip8(a1); d[3 * x + 2] = clip8(a2);
            }
        } else {
            for (int x = 0; x < ow; x++) {
                const float *w = ax.w + (size_t)x * K;
                const float *p = t + (ax.start[x] - c0);
                float a0 = 0;
                for (int k = 0, n = ax.count[x]; k < n; k++) a0 += w[k] * p[k];
                d[x] = clip8(a0);
            }
        }
    }
    free(tmp);
    axis_free(&ax);
    axis_free(&ay);
    return 0;
}

int aug_resize_box(const Image *src, int bx, int by, int bw, int bh, Image *dst, AugInterp ip) {
    if (!dst) return -1;
    return resample(src, bx, by, bw, bh, dst->w, dst->h, 0, 0, dst, ip);
}

int aug_resize_window(const Image *src, int rw, int rh, int ox, int oy, Image *dst, AugInterp ip) {
    if (!src) return -1;
    return resample(src, 0, 0, src->w, src->h, rw, rh, ox, oy, dst, ip);
}

void aug_hflip(Image *im) {
    int c = im->c, w = im->w;
    for (int y = 0; y < im->h; y++) {
        uint8_t *r = im->px + (size_t)y * w * c;
        for (int a = 0, b = w - 1; a < b; a++, b--)
            for (int k = 0; k < c; k++) {
                uint8_t t = r[a * c + k];
                r[a * c + k] = r[b * c + k];
                r[b * c + k] = t;
            }
    }
}

void aug_vflip(Image *im) {
    size_t stride = (size_t)im->w * im->c;
    uint8_t *tmp = malloc(stride);
    if (!tmp) { /* swap byte by byte */
        for (int a = 0, b = im->h - 1; a < b; a++, b--)
            for (size_t i = 0; i < stride; i++) {
                uint8_t t = im->px[a * stride + i];
                im->px[a * stride + i] = im->px[b * stride + i];
                im->px[b * stride + i] = t;
            }
        return;
    }
    for (int a = 0, b = im->h - 1; a < b; a++, b--) {
        memcpy(tmp, im->px + a * stride, stride);
        memcpy(im->px + a * stride, im->px + b * stride, stride);
        memcpy(im->px + b * stride, tmp, stride);
    }
    free(tmp);
}
