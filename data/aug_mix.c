/* Batch-level mixup / cutmix (timm's Mixup, mode 'batch') and label
 * smoothing targets. */
#include "data/augment.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void aug_smooth_targets(const int *labels, int n, int k, float smoothing, float *soft) {
    float off = smoothing / k, on = 1.0f - smoothing + off;
    for (int i = 0; i < n; i++) {
        float *row = soft + (size_t)i * k;
        int y = labels ? labels[i] : -1;
        if (y < 0 || y >= k) { memset(row, 0, sizeof(float) * k); continue; }
        for (int j = 0; j < k; j++) row[j] = off;
        row[y] = on;
    }
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

float aug_cutmix_box(const AugConfig *cfg, int h, int w, float lam, AugRng *r, int *yl, int *yh, int *xl,
                     int *xh) {
    if (cfg->has_cutmix_minmax) { /* rand_bbox_minmax */
        int ch = aug_rng_int(r, (int)(h * cfg->cutmix_minmax[0]), (int)(h * cfg->cutmix_minmax[1]) - 1);
        int cw = aug_rng_int(r, (int)(w * cfg->cutmix_minmax[0]), (int)(w * cfg->cutmix_minmax[1]) - 1);
        if (ch < 0) ch = 0;
        if (cw < 0) cw = 0;
        *yl = aug_rng_int(r, 0, h - ch - 1 >= 0 ? h - ch - 1 : 0);
        *xl = aug_rng_int(r, 0, w - cw - 1 >= 0 ? w - cw - 1 : 0);
        *yh = *yl + ch;
        *xh = *xl + cw;
    } else { /* rand_bbox: a box of area (1 - lam) centred uniformly, clipped */
        double ratio = sqrt(1.0 - (double)lam);
        int ch = (int)(h * ratio), cw = (int)(w * ratio);
        int cy = aug_rng_int(r, 0, h - 1), cx = aug_rng_int(r, 0, w - 1);
        *yl = clampi(cy - ch / 2, 0, h);
        *yh = clampi(cy + ch / 2, 0, h);
        *xl = clampi(cx - cw / 2, 0, w);
        *xh = clampi(cx + cw / 2, 0, w);
    }
    /* correct_lam: lambda from the (clipped) box area */
    return 1.0f - (float)((double)(*yh - *yl) * (*xh - *xl) / ((double)h * w));
}

float aug_mix_batch(const AugConfig *cfg, Batch *b, AugRng *r) {
    float lam = 1.0f;
    int use_cutmix = 0;
    if (aug_mixup_active(cfg) && aug_rng_uniform(r) < cfg->mixup_prob) {
        float cut_alpha = cfg->has_cutmix_minmax ? 1.0f : cfg->cutmix; /* timm forces alpha 1 with minmax */
        double lm;
        if (cfg->mixup > 0 && cut_alpha > 0) {
            use_cutmix = aug_rng_uniform(r) < cfg->mixup_switch_prob;
            lm = use_cutmix ? aug_rng_beta(r, cut_alpha, cut_alpha) : aug_rng_beta(r, cfg->mixup, cfg->mixup);
        } else if (cfg->mixup > 0) {
            lm = aug_rng_beta(r, cfg->mixup, cfg->mixup);
        } else {
            use_cutmix = 1;
            lm = aug_rng_beta(r, cut_alpha, cut_alpha);
        }
        lam = (float)lm;
    }
    const int n = b->n;
    const size_t chw = (size_t)b->c * b->h * b->w, hw = (size_t)b->h * b->w;
    if (lam != 1.0f && b->images && n > 1) {
        if (use_cutmix) {
            int yl, yh, xl, xh;
            lam = aug_cutmix_box(cfg, b->h, b->w, lam, r, &yl, &yh, &xl, &xh);
            /* x[:, :, box] = x.flip(0)[:, :, box]: swap the box between i and n-1-i */
            for (int i = 0; i < n / 2; i++) {
                float *a = b->images + (size_t)i * chw, *o = b->images + (size_t)(n - 1 - i) * chw;
                for (int c = 0; c < b->c; c++)
                    for (int y = yl; y < yh; y++)
                        for (int x = xl; x < xh; x++) {
                            size_t k = c * hw + (size_t)y * b->w + x;
                            float t = a[k]; a[k] = o[k]; o[k] = t;
                        }
            }
        } else {
            float l1 = 1.0f - lam;
            for (int i = 0; i < n / 2; i++) {
                float *a = b->images + (size_t)i * chw, *o = b->images + (size_t)(n - 1 - i) * chw;
                for (size_t k = 0; k < chw; k++) {
                    float va = a[k], vo = o[k];
                    a[k] = va * lam + vo * l1;
                    o[k] = vo * lam + va * l1;
                }
            }
        }
    }
    if (b->soft && b->num_classes > 0) {
        const int K = b->num_classes;
        float off = cfg->smoothing / K, on = 1.0f - cfg->smoothing + off;
        aug_smooth_targets(b->labels, n, K, cfg->smoothing, b->soft);
        if (lam != 1.0f) {
            /* y = lam * y_i + (1 - lam) * y_{n-1-i} */
            for (int i = 0; i < n; i++) {
                float *row = b->soft + (size_t)i * K;
                for (int j = 0; j < K; j++) row[j] *= lam;
                int yo = b->labels ? b->labels[n - 1 - i] : -1;
                if (yo < 0 || yo >= K) continue;
                for (int j = 0; j < K; j++) row[j] += (1.0f - lam) * off;
                row[yo] += (1.0f - lam) * (on - off);
            }
        }
    }
    return lam;
}
