/* Pooling on channels-last tensors.
 *
 * avgpool2d: k x k window, stride 1, padding k/2, count_include_pad=False,
 * i.e. each output is the mean of the window positions inside the image, so
 * the divisor at (i, j) is rows(i) * cols(j) of valid positions. With
 * subtract_input it returns pool(x) - x, PoolFormer's token mixer.
 * The window is symmetric (odd k), so the backward is a gather: input (i', j')
 * receives dy(i, j) / count(i, j) from every output whose window covers it,
 * and those are exactly the outputs within the same window around (i', j').
 *
 * mean_tokens: (B, N..., C) -> (B, C), the mean over every middle axis. */
#include "core/ops.h"
#include "core/op_util.h"
#include <string.h>

/* Below this many elements of work a loop runs on one thread: waking the team costs more. */
#define PAR_MIN 32768

static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int imin(int a, int b) { return a < b ? a : b; }

/* o[ch] = mean of x over the valid positions of the window of radius r around (b, i, j). */
static inline void window_mean(const float *xd, float *restrict o, int b, int i, int j, int H, int W, int C, int r) {
    int i0 = imax(i - r, 0), i1 = imin(i + r, H - 1), j0 = imax(j - r, 0), j1 = imin(j + r, W - 1);
    memset(o, 0, (size_t)C * sizeof(float));
    for (int ii = i0; ii <= i1; ii++)
        for (int jj = j0; jj <= j1; jj++) {
            const float *s = xd + (((size_t)b * H + ii) * W + jj) * C;
#pragma omp simd
            for (int ch = 0; ch < C; ch++) o[ch] += s[ch];
        }
    float inv = 1.0f / (float)((i1 - i0 + 1) * (j1 - j0 + 1));
#pragma omp simd
    for (int ch = 0; ch < C; ch++) o[ch] *= inv;
}

/* What an avgpool2d node keeps: the window side and whether the input is subtracted. */
typedef struct PoolSaved {
    int k, subtract_input;
} PoolSaved;

static void avgpool_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *y = n->out;
    if (!x->requires_grad) return;
    const PoolSaved *s = n->saved;
    int k = s->k, sub = s->subtract_input, r = k / 2;
    int B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    const float *dy = y->grad;
    float *dx = x->grad;
    int acc = mt_grad_accumulate(x); /* the node overwrites: a fresh pixel is zeroed in cache first */
#pragma omp parallel for schedule(static) if ((size_t)(x->numel * (size_t)(k * k)) >= PAR_MIN)
    for (int bi = 0; bi < B * H; bi++) {
        int b = bi / H, i = bi % H;
        int i0 = imax(i - r, 0), i1 = imin(i + r, H - 1);
        for (int j = 0; j < W; j++) {
            int j0 = imax(j - r, 0), j1 = imin(j + r, W - 1);
            float *d = dx + (((size_t)b * H + i) * W + j) * C;
            if (!acc) memset(d, 0, (size_t)C * sizeof(float));
            for (int oi = i0; oi <= i1; oi++) {
                /* divisor of output (oi, oj): valid rows x valid cols of its window */
                int rows = imin(oi + r, H - 1) - imax(oi - r, 0) + 1;
                for (int oj = j0; oj <= j1; oj++) {
                    int cols = imin(oj + r, W - 1) - imax(oj - r, 0) + 1;
                    float inv = 1.0f / (float)(rows * cols);
                    const float *g = dy + (((size_t)b * H + oi) * W + oj) * C;
                    for (int ch = 0; ch < C; ch++) d[ch] += inv * g[ch];
                }
            }
            if (sub) {
                const float *g = dy + (((size_t)b * H + i) * W + j) * C;
                for (int ch = 0; ch < C; ch++) d[ch] -= g[ch];
            }
        }
    }
}

Tensor *mt_avgpool2d(Ctx *c, Tensor *x, int k, int subtract_input) {
    if (c->failed || !x) return NULL;
    char sx[96];
    if (x->ndim != 4 || k < 1 || k % 2 == 0)
        return mt_fail(c, "avgpool2d", "x %s, k %d: need x (B, H, W, C) and an odd pool size k >= 1 "
                       "(stride 1, padding k/2 keeps H x W)", mt_shape_str(x, sx, sizeof sx), k);
    int B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3], r = k / 2;
    Tensor *y = mt_new(c, 4, x->shape);
    if (!y) return NULL;
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static) if ((size_t)(x->numel * (size_t)(k * k)) >= PAR_MIN)
    for (int bi = 0; bi < B * H; bi++) {
        int b = bi / H, i = bi % H;
        for (int j = 0; j < W; j++) {
            float *o = yd + (((size_t)b * H + i) * W + j) * C;
            window_mean(xd, o, b, i, j, H, W, C, r);
            if (subtract_input) {
                const float *s = xd + (((size_t)b * H + i) * W + j) * C;
                for (int ch = 0; ch < C; ch++) o[ch] -= s[ch];
            }
        }
    }
    if (mt_needs_grad(c, &x, 1)) {
        Node *n = mt_record(c, "avgpool2d", avgpool_backward, y, &x, 1);
        n->overwrites = 1; /* x */
        mt_save(c, n, &(PoolSaved){.k = k, .subtract_input = subtract_input != 0}, sizeof(PoolSaved));
    }
    return y;
}

/* ---- pool(x) - x with the residual, inference only ---- */

Tensor *mt_pool_residual(Ctx *c, Tensor *x, int k, const float *chan, const float *samp) {
    if (c->failed || !x) return NULL;
    char sx[96];
    if (x->ndim != 4 || k < 1 || k % 2 == 0)
        return mt_fail(c, "pool_residual", "x %s, k %d: need x (B, H, W, C) and an odd pool size k >= 1",
                       mt_shape_str(x, sx, sizeof sx), k);
    if (mt_needs_grad(c, &x, 1))
        return mt_fail(c, "pool_residual", "x %s: inference-only op called while recording gradients",
                       mt_shape_str(x, sx, sizeof sx));
    int B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3], r = k / 2;
    Tensor *y = mt_new(c, 4, x->shape);
    if (!y) return NULL;
    /* coef[b, ch] = chan[ch] * samp[b] */
    float *coef = arena_alloc(&c->arena, (size_t)B * C * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < C; ch++) coef[(size_t)b * C + ch] = (chan ? chan[ch] : 1.0f) * (samp ? samp[b] : 1.0f);
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static) if ((size_t)(x->numel * (size_t)(k * k)) >= PAR_MIN)
    for (int bi = 0; bi < B * H; bi++) {
        int b = bi / H, i = bi % H;
        const float *cf = coef + (size_t)b * C;
        for (int j = 0; j < W; j++) {
            float *o = yd + (((size_t)b * H + i) * W + j) * C;
            window_mean(xd, o, b, i, j, H, W, C, r);
            const float *s = xd + (((size_t)b * H + i) * W + j) * C;
#pragma omp simd
            for (int ch = 0; ch < C; ch++) o[ch] = s[ch] + cf[ch] * (o[ch] - s[ch]);
        }
    }
    return y;
}

/* ---- mean over the token axes ---- */

static void mean_tokens_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *y = n->out;
    if (!x->requires_grad) return;
    int B = x->shape[0], C = mt_last(x);
    size_t N = x->numel / ((size_t)B * C);
    float inv = 1.0f / (float)N;
    size_t rows = (size_t)B * N;
    int acc = mt_grad_accumulate(x); /* the node overwrites */
#pragma omp parallel for schedule(static) if ((size_t)(x->numel) >= PAR_MIN)
    for (size_t r = 0; r < rows; r++) {
        const float *g = y->grad + (r / N) * C;
        float *d = x->grad + r * C;
        for (int ch = 0; ch < C; ch++) GRAD_PUT(acc, d[ch], inv * g[ch]);
    }
}

Tensor *mt_mean_tokens(Ctx *c, Tensor *x) {
    if (c->failed || !x) return NULL;
    char sx[96];
    if (x->ndim < 3)
        return mt_fail(c, "mean_tokens", "x %s: need (B, N, C) or (B, H, W, C)", mt_shape_str(x, sx, sizeof sx));
    int B = x->shape[0], C = mt_last(x);
    size_t N = x->numel / ((size_t)B * C);
    Tensor *y = mt_new2(c, B, C);
    if (!y) return NULL;
    float inv = 1.0f / (float)N;
    /* parallel over (sample, channel block) so small batches still split */
    int CB = 64, nblk = (C + CB - 1) / CB;
#pragma omp parallel for schedule(static) if ((size_t)(x->numel) >= PAR_MIN)
    for (int t = 0; t < B * nblk; t++) {
        int b = t / nblk, c0 = (t % nblk) * CB, c1 = imin(c0 + CB, C);
        float acc[64] = {0};
        const float *s = x->data + (size_t)b * N * C;
        for (size_t r = 0; r < N; r++)
            for (int ch = c0; ch < c1; ch++) acc[ch - c0] += s[r * C + ch];
        for (int ch = c0; ch < c1; ch++) y->data[(size_t)b * C + ch] = acc[ch - c0] * inv;
    }
    if (mt_needs_grad(c, &x, 1)) mt_record(c, "mean_tokens", mean_tokens_backward, y, &x, 1)->overwrites = 1; /* x */
    return y;
}
