/* The per-sample pipelines: aug_train (RandomResizedCrop, flips, RandAugment
 * or ColorJitter, normalise, RandomErasing) and aug_eval (resize shorter side,
 * centre crop, normalise). */
#include "data/source_util.h"
#include "data/augment.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void aug_rrc_params(int width, int height, const float scale[2], const float ratio[2], AugRng *r, int *ox,
                    int *oy, int *ow, int *oh) {
    double area = (double)width * height;
    double lr0 = log(ratio[0]), lr1 = log(ratio[1]);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * aug_rng_range(r, scale[0], scale[1]);
        double ar = exp(aug_rng_range(r, lr0, lr1));
        int w = (int)rint(sqrt(target * ar));
        int h = (int)rint(sqrt(target / ar));
        if (w > 0 && w <= width && h > 0 && h <= height) {
            *oy = aug_rng_int(r, 0, height - h);
            *ox = aug_rng_int(r, 0, width - w);
            *ow = w;
            *oh = h;
            return;
        }
    }
    /* fallback: central crop at the nearest allowed ratio */
    double in_ratio = (double)width / height;
    int w, h;
    if (in_ratio < ratio[0]) { w = width; h = (int)rint(w / (double)ratio[0]); }
    else if (in_ratio > ratio[1]) { h = height; w = (int)rint(h * (double)ratio[1]); }
    else { w = width; h = height; }
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    if (w > width) w = width;
    if (h > height) h = height;
    *ox = (width - w) / 2;
    *oy = (height - h) / 2;
    *ow = w;
    *oh = h;
}

void aug_normalize(const AugConfig *cfg, const Image *im, float *out) {
    int c = im->c;
    size_t hw = (size_t)im->w * im->h;
    float lut[3][256];
    for (int k = 0; k < c; k++) {
        float m = aug_mean(cfg, c, k), s = aug_std(cfg, c, k);
        for (int v = 0; v < 256; v++) lut[k][v] = ((float)v / 255.0f - m) / s; /* ToTensor, Normalize */
    }
    if (c == 1) {
        for (size_t i = 0; i < hw; i++) out[i] = lut[0][im->px[i]];
        return;
    }
    float *o0 = out, *o1 = out + hw, *o2 = out + 2 * hw;
    const uint8_t *p = im->px;
    for (size_t i = 0; i < hw; i++, p += 3) {
        o0[i] = lut[0][p[0]];
        o1[i] = lut[1][p[1]];
        o2[i] = lut[2][p[2]];
    }
}

int aug_random_erase(const AugConfig *cfg, float *img, int c, int h, int w, AugRng *r, int *boxes) {
    if (cfg->reprob <= 0 || aug_rng_uniform(r) > cfg->reprob) return 0;
    double area = (double)h * w;
    int count = cfg->recount > 1 ? aug_rng_int(r, 1, cfg->recount) : 1;
    const double la0 = log(0.3), la1 = log(1.0 / 0.3);
    int done = 0;
    for (int e = 0; e < count; e++) {
        for (int attempt = 0; attempt < 10; attempt++) {
            double target = aug_rng_range(r, 0.02, 1.0 / 3.0) * area / count;
            double ar = exp(aug_rng_range(r, la0, la1));
            int eh = (int)rint(sqrt(target * ar));
            int ew = (int)rint(sqrt(target / ar));
            if (ew < w && eh < h) {
                int top = aug_rng_int(r, 0, h - eh), left = aug_rng_int(r, 0, w - ew);
                float rc[3] = {0, 0, 0};
                if (cfg->remode == AUG_REMODE_RAND)
                    for (int k = 0; k < c && k < 3; k++) rc[k] = (float)aug_rng_normal(r);
                for (int k = 0; k < c; k++)
                    for (int y = top; y < top + eh; y++) {
                        float *row = img + ((size_t)k * h + y) * w + left;
                        for (int x = 0; x < ew; x++)
                            row[x] = cfg->remode == AUG_REMODE_PIXEL ? (float)aug_rng_normal(r)
                                                                     : rc[k < 3 ? k : 0];
                    }
                if (boxes) {
                    boxes[4 * done] = top; boxes[4 * done + 1] = left;
                    boxes[4 * done + 2] = eh; boxes[4 * done + 3] = ew;
                }
                done++;
                break;
            }
        }
    }
    return done;
}

static int check_image(const Image *in, char *err, size_t n, const char *who) {
    if (!in || !in->px || in->w <= 0 || in->h <= 0 || (in->c != 1 && in->c != 3))
        return src_seterr(err, n, "%s: bad input image (%dx%dx%d)", who, in ? in->w : 0, in ? in->h : 0, in ? in->c : 0);
    return 0;
}

/* Convert *im to `chans` channels (gray replicated to RGB / RGB to PIL luma);
 * *im is replaced (old pixels freed). */
static int convert_channels(Image *im, int chans) {
    if (im->c == chans) return 0;
    Image o;
    if (image_alloc(&o, im->w, im->h, chans)) return -1;
    size_t n = (size_t)im->w * im->h;
    if (chans == 3)
        for (size_t i = 0; i < n; i++) o.px[3 * i] = o.px[3 * i + 1] = o.px[3 * i + 2] = im->px[i];
    else
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = im->px + 3 * i;
            o.px[i] = (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
        }
    image_free(im);
    *im = o;
    return 0;
}

static void fill_mean(const AugConfig *cfg, int chans, uint8_t fill[3]) {
    for (int k = 0; k < 3; k++) {
        double v = rint(255.0 * aug_mean(cfg, chans, chans == 1 ? 0 : k));
        fill[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

int aug_train(const AugConfig *cfg, const Image *in, AugRng *r, float *out, char *err, size_t n) {
    if (aug_config_check(cfg, err, n)) return -1;
    if (check_image(in, err, n, "aug_train")) return -1;
    const int S = cfg->img_size;
    AugInterp ip = cfg->train_interpolation;
    if (ip == AUG_INTERP_RANDOM) ip = aug_rng_uniform(r) < 0.5 ? AUG_INTERP_BILINEAR : AUG_INTERP_BICUBIC;
    int bx, by, bw, bh;
    aug_rrc_params(in->w, in->h, cfg->scale, cfg->ratio, r, &bx, &by, &bw, &bh);
    Image im;
    if (image_alloc(&im, S, S, in->c)) return src_seterr(err, n, "aug_train: out of memory (%dx%dx%d)", S, S, in->c);
    if (aug_resize_box(in, bx, by, bw, bh, &im, ip)) {
        image_free(&im);
        return src_seterr(err, n, "aug_train: resize of box (%d,%d %dx%d) of %dx%d failed", bx, by, bw, bh, in->w, in->h);
    }
    if (cfg->hflip > 0 && aug_rng_uniform(r) < cfg->hflip) aug_hflip(&im);
    if (cfg->vflip > 0 && aug_rng_uniform(r) < cfg->vflip) aug_vflip(&im);
    if (convert_channels(&im, cfg->in_chans)) { image_free(&im); return src_seterr(err, n, "aug_train: out of memory"); }
    if (cfg->ra.enabled) {
        uint8_t fill[3];
        fill_mean(cfg, im.c, fill);
        if (aug_randaugment(&cfg->ra, &im, fill, cfg->translate_pct, cfg->train_interpolation, r)) {
            image_free(&im);
            return src_seterr(err, n, "aug_train: RandAugment out of memory");
        }
    } else if (cfg->color_jitter[0] > 0 || cfg->color_jitter[1] > 0 || cfg->color_jitter[2] > 0) {
        aug_color_jitter(&im, cfg->color_jitter, r);
    }
    aug_normalize(cfg, &im, out);
    if (cfg->reprob > 0) aug_random_erase(cfg, out, im.c, S, S, r, NULL);
    image_free(&im);
    return 0;
}

int aug_eval(const AugConfig *cfg, const Image *in, float *out, char *err, size_t n) {
    if (aug_config_check(cfg, err, n)) return -1;
    if (check_image(in, err, n, "aug_eval")) return -1;
    const int S = cfg->img_size;
    int size = (int)floor((double)S / (double)cfg->crop_pct);
    if (size < 1) size = 1;
    /* An image already at the target size is used as it is: resizing it up by 1/crop_pct and
     * cropping would zoom into data that training saw whole (28-px Fashion-MNIST, 32-px CIFAR). */
    if (in->w == S && in->h == S) size = S;
    int rw, rh;
    if (in->w <= in->h) { rw = size; rh = (int)((double)size * in->h / in->w); }
    else { rh = size; rw = (int)((double)size * in->w / in->h); }
    if (rw < 1) rw = 1;
    if (rh < 1) rh = 1;
    int ox = S > rw ? -((S - rw) / 2) : (int)rint((rw - S) / 2.0);
    int oy = S > rh ? -((S - rh) / 2) : (int)rint((rh - S) / 2.0);
    Image im;
    if (image_alloc(&im, S, S, in->c)) return src_seterr(err, n, "aug_eval: out of memory (%dx%dx%d)", S, S, in->c);
    AugInterp ip = cfg->interpolation == AUG_INTERP_RANDOM ? AUG_INTERP_BICUBIC : cfg->interpolation;
    if (aug_resize_window(in, rw, rh, ox, oy, &im, ip)) {
        image_free(&im);
        return src_seterr(err, n, "aug_eval: resize %dx%d -> %dx%d failed", in->w, in->h, rw, rh);
    }
    if (convert_channels(&im, cfg->in_chans)) { image_free(&im); return src_seterr(err, n, "aug_eval: out of memory"); }
    aug_normalize(cfg, &im, out);
    image_free(&im);
    return 0;
}
