#include "layers/adapt.h"
#include "layers/layers.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int adapt_input_conv(const float *w, int O, int I, int kh, int kw, int in_chans, float *out, const char **how) {
    const size_t K = (size_t)kh * kw;
    if (how) *how = NULL;
    if (O < 1 || I < 1 || K < 1 || in_chans < 1 || I == in_chans) return -1;
    if (in_chans == 1) {
        /* timm sums groups of 3 when I > 3 (space-to-depth stems, whose conv then has I / 3
         * inputs); a stem here always has in_chans inputs, so only I <= 3 fits. */
        if (I > 3) return -1;
        const int g = I;
        for (int o = 0; o < O; o++)
            for (size_t k = 0; k < K; k++) {
                double s = 0;
                for (int i = 0; i < g; i++) s += w[((size_t)o * I + i) * K + k];
                out[(size_t)o * K + k] = (float)s;
            }
        if (how) *how = "sum over the input channels";
        return 0;
    }
    if (in_chans == 3 || I != 3) return -1;
    const float scale = 3.0f / (float)in_chans;
    for (int o = 0; o < O; o++)
        for (int c = 0; c < in_chans; c++)
            for (size_t k = 0; k < K; k++)
                out[((size_t)o * in_chans + c) * K + k] = w[((size_t)o * 3 + c % 3) * K + k] * scale;
    if (how) *how = "RGB repeated, scaled by 3/in_chans";
    return 0;
}

/* Sparse 1-D resampling weights: output i reads in[idx[i*K + j]] * wt[i*K + j], j < K. */
typedef struct Taps { int K; int *idx; double *wt; } Taps;

static double cubic_keys(double x, double a) {
    x = fabs(x);
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

/* torch's antialiased bicubic (upsample_bicubic2d_aa, PIL's filter): a = -0.5, the kernel
 * stretched by the scale when shrinking, taps inside the image only, weights summing to 1. */
static int taps_build(Taps *t, int in, int out) {
    const double scale = (double)in / (double)out;
    const double support = scale >= 1 ? 2.0 * scale : 2.0, inv = scale >= 1 ? 1.0 / scale : 1.0;
    t->K = (int)ceil(support) * 2 + 1;
    t->idx = calloc((size_t)out * t->K, sizeof *t->idx);
    t->wt = calloc((size_t)out * t->K, sizeof *t->wt);
    if (!t->idx || !t->wt) return -1;
    for (int i = 0; i < out; i++) {
        int *ix = t->idx + (size_t)i * t->K;
        double *wt = t->wt + (size_t)i * t->K;
        double center = scale * (i + 0.5), total = 0;
        long lo = (long)(center - support + 0.5), hi = (long)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        for (long p = lo, j = 0; p < hi && j < t->K; p++, j++) {
            ix[j] = (int)p;
            wt[j] = cubic_keys((p - center + 0.5) * inv, -0.5);
            total += wt[j];
        }
        if (total != 0)
            for (int j = 0; j < t->K; j++) wt[j] /= total;
    }
    return 0;
}

static void taps_free(Taps *t) {
    free(t->idx);
    free(t->wt);
}

int resize_bicubic_aa(const float *x, int C, int H, int W, float *y, int oh, int ow) {
    Taps tw = {0}, th = {0};
    float *mid = malloc((size_t)C * H * ow * sizeof *mid);
    int rc = -1;
    if (!mid || taps_build(&tw, W, ow) || taps_build(&th, H, oh)) goto out;
    for (int c = 0; c < C; c++)
        for (int r = 0; r < H; r++) {
            const float *row = x + ((size_t)c * H + r) * W;
            for (int i = 0; i < ow; i++) {
                double s = 0;
                for (int j = 0; j < tw.K; j++) s += tw.wt[(size_t)i * tw.K + j] * row[tw.idx[(size_t)i * tw.K + j]];
                mid[((size_t)c * H + r) * ow + i] = (float)s;
            }
        }
    for (int c = 0; c < C; c++)
        for (int i = 0; i < oh; i++)
            for (int col = 0; col < ow; col++) {
                double s = 0;
                for (int j = 0; j < th.K; j++)
                    s += th.wt[(size_t)i * th.K + j] * mid[((size_t)c * H + th.idx[(size_t)i * th.K + j]) * ow + col];
                y[((size_t)c * oh + i) * ow + col] = (float)s;
            }
    rc = 0;
out:
    taps_free(&tw);
    taps_free(&th);
    free(mid);
    return rc;
}

int resample_abs_pos_embed(const float *pe, int prefix, int gh, int gw, int D, float *out, int nh, int nw) {
    const size_t n0 = (size_t)gh * gw, n1 = (size_t)nh * nw;
    float *grid = malloc(n0 * D * sizeof *grid), *res = malloc(n1 * D * sizeof *res);
    int rc = -1;
    if (!grid || !res) goto out;
    memcpy(out, pe, (size_t)prefix * D * sizeof *out);
    /* tokens (gh*gw, D) -> planes (D, gh, gw), as timm's reshape + permute(0, 3, 1, 2) */
    for (size_t t = 0; t < n0; t++)
        for (int d = 0; d < D; d++) grid[(size_t)d * n0 + t] = pe[((size_t)prefix + t) * D + d];
    if (resize_bicubic_aa(grid, D, gh, gw, res, nh, nw)) goto out;
    for (size_t t = 0; t < n1; t++)
        for (int d = 0; d < D; d++) out[((size_t)prefix + t) * D + d] = res[(size_t)d * n1 + t];
    rc = 0;
out:
    free(grid);
    free(res);
    return rc;
}

const Tensor *model_stem_weight(const Model *m) {
    const Net *net = m->priv;
    return net ? net->stem_w : NULL;
}

const Tensor *model_pos_embed(const Model *m, int *prefix_tokens) {
    const Net *net = m->priv;
    if (!net || !net->pos_embed) return NULL;
    if (prefix_tokens) *prefix_tokens = net->cls_token ? 1 : 0;
    return net->pos_embed;
}
