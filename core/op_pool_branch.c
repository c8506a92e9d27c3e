/* PoolFormer's token-mixer branch with its residual, as one taped op:
 *
 *   y = x + gamma * (pool(n) - n),   n = xhat * w + b,   xhat = (x - mu_s) * rstd_s
 *
 * GroupNorm(1) (mu, rstd per sample) or timm's Affine (mu 0, rstd 1); pool as mt_avgpool2d
 * (k x k, stride 1, pad k/2, count_include_pad=False) on channels-last (B, H, W, C).
 *
 * Why one op: recorded as norm, pool - n and residual, the branch stores n and pool(n) - n and
 * makes ~7 passes over memory forward and ~10 backward. Here the forward saves only mu and
 * rstd and stores nothing but y. The pool's window mean of an affine map is the map of the
 * mean, so the bias cancels and pool(n) - n = w rstd (pool(x - mu) - (x - mu)) (the identity
 * mt_pool_residual uses; mu stays subtracted so a large sample mean costs no precision):
 *   y = x + gamma w rstd (pool(x - mu) - (x - mu))
 * Window sums go in two steps: per output row the column sums of its window's rows (one long
 * loop over the row), then per position the sum of 2r + 1 of those, 16 channels at a time in
 * registers. Same values as the three ops to float rounding (avgpool2d sums n row by row).
 *
 * Backward, with u = pool(xhat) - xhat (so pool(n) - n = w u):
 *   dp = gamma dy, dgamma = sum (pool(n) - n) dy = w S,  S = sum dy u (per channel)
 *   dn = pool^T(dp) - dp    (pool^T: each position gathers dp / count of every window covering
 *                            it, which are the outputs in its own window, see op_pool.c)
 *   dw = sum dn xhat = sum dp u = gamma S   (pool^T is pool's adjoint)
 *   db = sum dn = 0, mean_s(dxhat) = 0      (pool^T keeps sums: output o hands dp(o) / count(o)
 *                                            to the count(o) positions of its window)
 *   dx = dy + rstd (w dn - xhat mean_s(dxhat xhat)),  mean_s(dxhat xhat) = sum_c w gamma S_s / |s|
 *   (S_s: the sample's share of S; affine: dx = dy + w dn)
 * So one per-channel sum S gives every parameter gradient and GroupNorm's sample term. Pass 1
 * accumulates S; pass 2 (once the sample's S is complete; with the affine norm, in the same
 * pass) writes dx, pool^T as column sums of dy / rows, then 2r + 1 of those times 1 / cols.
 * Nothing is stored between the passes.
 *
 * Work is split by sample: a stage-1 sample of PoolFormer-S12 (56x56x64 floats, 800 KB) stays
 * in L2 between the statistics and the output (forward) and between the two passes
 * (backward), so x and dy come from memory about once. With fewer samples than threads, by
 * bands of rows (a band reads r rows above and below it). S is summed per task (sample or
 * band) and the tasks' sums added in order: gradients do not depend on the thread count. */
#include "core/ops.h"
#include "core/op_util.h"
#include "core/fuse.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

/* Below this many elements x window positions the op runs on one thread (as avgpool2d). */
#define PAR_MIN 32768

static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int imin(int a, int b) { return a < b ? a : b; }

/* The shapes and per-channel vectors every kernel reads; also what the node keeps. */
typedef struct {
    int B, H, W, C, r;
    size_t S, WC;        /* floats per sample, per image row */
    const float *w, *g;  /* (C): weight, gamma (ones when absent); the bias cancels */
    MtNormKind kind;     /* MT_NORM_GROUP1 or MT_NORM_AFFINE */
    float *mean, *rstd;  /* [B] each (GroupNorm(1)); NULL for the affine norm (mean 0, rstd 1) */
} Geo;

/* Work split: nb bands of rows per sample (1: whole samples). */
static int bands(const Geo *q, int par) {
    int nt = par ? omp_get_max_threads() : 1;
    return q->B >= nt ? 1 : imin((nt + q->B - 1) / q->B, q->H);
}
static int band_lo(const Geo *q, int nb, int band) { return (int)((long)band * q->H / nb); }

/* Per-thread scratch: a row of column sums, 1 / cols per column, a (C) row of coefficients. */
static size_t scratch_stride(const Geo *q) { return (q->WC + q->W + q->C + 15) / 16 * 16; }

/* 1 / (valid rows of output row i's window): pool^T's row factor. */
static inline float inv_rows(const Geo *q, int i) {
    return 1.0f / (float)(imin(i + q->r, q->H - 1) - imax(i - q->r, 0) + 1);
}

/* cs[e] = sum over rows lo..lo+nr-1 of (x[e] - m) * f(row), f = 1 or (by_rows) 1 / rows(row):
 * the window's column sums for one output row, over the whole row in one contiguous loop. */
static void col_sums(const Geo *q, const float *xs, int lo, int nr, float m, int by_rows, float *restrict cs) {
    const float *r0 = xs + (size_t)lo * q->WC;
    float f = by_rows ? inv_rows(q, lo) : 1.0f;
#pragma omp simd
    for (size_t e = 0; e < q->WC; e++) cs[e] = (r0[e] - m) * f;
    for (int u = 1; u < nr; u++) {
        const float *ru = xs + (size_t)(lo + u) * q->WC;
        f = by_rows ? inv_rows(q, lo + u) : 1.0f;
#pragma omp simd
        for (size_t e = 0; e < q->WC; e++) cs[e] += (ru[e] - m) * f;
    }
}

/* Channels go in blocks of CB: the kernels below are called with len = CB (a constant once
 * inlined, so a window's sums stay in registers) and once with the remainder C % CB. */
#define CB 16

/* a[l] = sum over columns j0..j1 of cs (from the block's first channel), each times icol[j]
 * when icol is given. */
static inline __attribute__((always_inline)) void hsum(const Geo *q, const float *cs, int j0, int j1,
                                                       const float *icol, int len, float *restrict a) {
    const float *s = cs + (size_t)j0 * q->C;
    float f = icol ? icol[j0] : 1.0f;
#pragma omp simd
    for (int l = 0; l < len; l++) a[l] = s[l] * f;
    for (int jj = j0 + 1; jj <= j1; jj++) {
        s += q->C;
        f = icol ? icol[jj] : 1.0f;
#pragma omp simd
        for (int l = 0; l < len; l++) a[l] += s[l] * f;
    }
}

/* Forward, one block: y = x + cf (pool(x - m) - (x - m)), cf = gamma w rs. */
static inline __attribute__((always_inline)) void fwd_block(const Geo *q, const float *cs, int j0, int j1, float inv,
                                                            const float *x, float m, const float *cf, float *y,
                                                            int len) {
    float a[CB];
    hsum(q, cs, j0, j1, NULL, len, a);
#pragma omp simd
    for (int l = 0; l < len; l++) y[l] = x[l] + cf[l] * (a[l] * inv - (x[l] - m));
}

/* Backward, one block: S += dy (pool(x - m) - (x - m)) (= dy u / rs). */
static inline __attribute__((always_inline)) void s_block(const Geo *q, const float *cs, int j0, int j1, float inv,
                                                          const float *x, float m, const float *dy,
                                                          double *restrict S, int len) {
    float a[CB];
    hsum(q, cs, j0, j1, NULL, len, a);
#pragma omp simd
    for (int l = 0; l < len; l++) S[l] += (double)dy[l] * (a[l] * inv - (x[l] - m));
}

/* Backward, one block: with a = pool^T(dy) (cs: column sums of dy / rows, icol: 1 / cols),
 * dn = gamma (a - dy), dx = dy + rs w dn - (x - m) rs^2 bb = dy + cw (a - dy) - (x - m) c2. */
static inline __attribute__((always_inline)) void dx_block(const Geo *q, const float *cs, int j0, int j1,
                                                           const float *icol, const float *dy, const float *x, float m,
                                                           const float *cw, float c2, int acc, float *d, int len) {
    float a[CB];
    hsum(q, cs, j0, j1, icol, len, a);
#pragma omp simd
    for (int l = 0; l < len; l++) GRAD_PUT(acc, d[l], dy[l] + cw[l] * (a[l] - dy[l]) - (x[l] - m) * c2);
}

/* Sums of x and x^2 over rows [i0, i1) of one sample, position by position (groupnorm1's order). */
static void stats_rows(const Geo *q, const float *xs, int i0, int i1, double *sum, double *sq) {
    int C = q->C;
    for (size_t p = (size_t)i0 * q->W; p < (size_t)i1 * q->W; p++) {
        double s, v;
        row_sum_sq(xs + p * C, C, &s, &v);
        *sum += s, *sq += v;
    }
}

/* ---- forward ---- */

/* Output rows [i0, i1) of sample xs into ys; scr: the thread's scratch. */
static void forward_rows(const Geo *q, const float *xs, float *ys, int i0, int i1, float m, float rs, float *scr) {
    int r = q->r;
    size_t C = q->C;
    float *cs = scr, *cf = scr + q->WC + q->W;
    for (size_t ch = 0; ch < C; ch++) cf[ch] = q->g[ch] * q->w[ch] * rs;
    for (int i = i0; i < i1; i++) {
        int lo = imax(i - r, 0), nr = imin(i + r, q->H - 1) - lo + 1;
        col_sums(q, xs, lo, nr, m, 0, cs);
        for (int j = 0; j < q->W; j++) {
            int j0 = imax(j - r, 0), j1 = imin(j + r, q->W - 1);
            float inv = 1.0f / (float)(nr * (j1 - j0 + 1));
            size_t at = i * q->WC + j * C, c0;
            for (c0 = 0; c0 + CB <= C; c0 += CB)
                fwd_block(q, cs + c0, j0, j1, inv, xs + at + c0, m, cf + c0, ys + at + c0, CB);
            if (c0 < C) fwd_block(q, cs + c0, j0, j1, inv, xs + at + c0, m, cf + c0, ys + at + c0, (int)(C - c0));
        }
    }
}

/* ---- backward ---- */

typedef struct {
    const Geo *q;
    const float *x, *dy, *mean, *rstd; /* mean NULL: affine (mean 0, rstd 1) */
    float *dx;                         /* x's gradient, NULL when not wanted */
    int acc;                           /* dx accumulates (mt_grad_accumulate) */
} Bw;

/* Rows [i0, i1) of sample s. With S: S[ch] += dy u / rs, u = pool(xhat) - xhat. With dx:
 * dx = dy + rs (w dn - xhat bb), dn = pool^T(gamma dy) - gamma dy. scr: the thread's scratch. */
static void backward_rows(const Bw *k, int s, int i0, int i1, double *restrict S, int want_dx, float bb, float *scr) {
    const Geo *q = k->q;
    int r = q->r, acc = k->acc;
    size_t C = q->C;
    float m = k->mean ? k->mean[s] : 0.0f, rs = k->mean ? k->rstd[s] : 1.0f, c2 = rs * rs * bb;
    const float *xs = k->x + s * q->S, *dys = k->dy + s * q->S;
    float *cs = scr, *icol = scr + q->WC, *cw = icol + q->W, *dxs = want_dx ? k->dx + s * q->S : NULL;
    for (int j = 0; j < q->W; j++) icol[j] = 1.0f / (float)(imin(j + r, q->W - 1) - imax(j - r, 0) + 1);
    for (size_t ch = 0; ch < C; ch++) cw[ch] = rs * q->w[ch] * q->g[ch];
    for (int i = i0; i < i1; i++) {
        int lo = imax(i - r, 0), nr = imin(i + r, q->H - 1) - lo + 1;
        if (S) {
            col_sums(q, xs, lo, nr, m, 0, cs);
            for (int j = 0; j < q->W; j++) {
                int j0 = imax(j - r, 0), j1 = imin(j + r, q->W - 1);
                float inv = 1.0f / (float)(nr * (j1 - j0 + 1));
                size_t at = i * q->WC + j * C, c0;
                for (c0 = 0; c0 + CB <= C; c0 += CB)
                    s_block(q, cs + c0, j0, j1, inv, xs + at + c0, m, dys + at + c0, S + c0, CB);
                if (c0 < C) s_block(q, cs + c0, j0, j1, inv, xs + at + c0, m, dys + at + c0, S + c0, (int)(C - c0));
            }
        }
        if (want_dx) {
            col_sums(q, dys, lo, nr, 0.0f, 1, cs);
            for (int j = 0; j < q->W; j++) {
                int j0 = imax(j - r, 0), j1 = imin(j + r, q->W - 1);
                size_t at = i * q->WC + j * C, c0;
                for (c0 = 0; c0 + CB <= C; c0 += CB)
                    dx_block(q, cs + c0, j0, j1, icol, dys + at + c0, xs + at + c0, m, cw + c0, c2, acc, dxs + at + c0,
                             CB);
                if (c0 < C)
                    dx_block(q, cs + c0, j0, j1, icol, dys + at + c0, xs + at + c0, m, cw + c0, c2, acc, dxs + at + c0,
                             (int)(C - c0));
            }
        }
    }
}

/* mean_s(dxhat xhat) of sample s from its share of S (nb task rows of St, S = rs St). */
static float sample_bb(const Geo *q, const double *St, int nb, float rs) {
    double t = 0;
    for (int u = 0; u < nb; u++)
        for (int ch = 0; ch < q->C; ch++) t += (double)q->w[ch] * q->g[ch] * St[(size_t)u * q->C + ch];
    return (float)(t * rs / (double)q->S);
}

static void pool_branch_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *w = n->in[1], *gamma = n->in[3];
    const Geo *q = n->saved;
    Bw k = {.q = q, .x = x->data, .dy = n->out->grad, .mean = q->mean, .rstd = q->rstd};
    int want_g = gamma && gamma->requires_grad, want_w = w && w->requires_grad, want_dx = x->requires_grad;
    int gn = q->kind == MT_NORM_GROUP1, want_S = want_g || want_w || (gn && want_dx);
    if (want_dx) {
        k.dx = x->grad;
        k.acc = mt_grad_accumulate(x); /* the node overwrites */
    }
    if (!want_S && !want_dx) return;
    ArenaMark mark = arena_mark(&c->arena);
    int par = x->numel * (size_t)(2 * q->r + 1) * (2 * q->r + 1) >= PAR_MIN, nt = par ? omp_get_max_threads() : 1;
    int nb = bands(q, par), ntask = q->B * nb;
    size_t ss = scratch_stride(q);
    float *scr = arena_alloc(&c->arena, (size_t)nt * ss * sizeof(float));
    /* S per task (sample or band): summed in task order, so the gradients do not depend on the
     * thread count */
    double *St = want_S ? arena_calloc(&c->arena, (size_t)ntask * q->C * sizeof(double)) : NULL;
#define ST(tk) (St ? St + (size_t)(tk) * q->C : NULL)
#pragma omp parallel if (par)
    {
        float *my = scr + (size_t)omp_get_thread_num() * ss;
        if (nb == 1 || !gn) { /* one pass (affine), or both passes of a sample while it is in L2 */
#pragma omp for schedule(static)
            for (int tk = 0; tk < ntask; tk++) {
                int s = tk / nb, i0 = band_lo(q, nb, tk % nb), i1 = band_lo(q, nb, tk % nb + 1);
                if (!gn) backward_rows(&k, s, i0, i1, ST(tk), want_dx, 0.0f, my);
                else {
                    backward_rows(&k, s, 0, q->H, ST(tk), 0, 0.0f, my);
                    if (want_dx) backward_rows(&k, s, 0, q->H, NULL, 1, sample_bb(q, ST(tk), 1, k.rstd[s]), my);
                }
            }
        } else { /* GroupNorm in bands: every band's S before any dx of its sample */
#pragma omp for schedule(static)
            for (int tk = 0; tk < ntask; tk++)
                backward_rows(&k, tk / nb, band_lo(q, nb, tk % nb), band_lo(q, nb, tk % nb + 1), ST(tk), 0, 0.0f, my);
            if (want_dx) {
#pragma omp for schedule(static)
                for (int tk = 0; tk < ntask; tk++) {
                    int s = tk / nb;
                    backward_rows(&k, s, band_lo(q, nb, tk % nb), band_lo(q, nb, tk % nb + 1), NULL, 1,
                                  sample_bb(q, ST(s * nb), nb, k.rstd[s]), my);
                }
            }
        }
    }
#undef ST
    /* S = sum over tasks of rs St; dgamma = w S, dw = gamma S; db = 0 (nothing to add) */
    for (int ch = 0; ch < q->C && (want_g || want_w); ch++) {
        double t = 0;
        for (int tk = 0; tk < ntask; tk++) t += St[(size_t)tk * q->C + ch] * (gn ? k.rstd[tk / nb] : 1.0f);
        if (want_g) gamma->grad[ch] += (float)(q->w[ch] * t);
        if (want_w) w->grad[ch] += (float)(q->g[ch] * t);
    }
    arena_release(&c->arena, mark);
}

/* ---- the op ---- */

/* v is NULL or a (C) vector matching x's last axis; else the error, naming v. */
static int check_vec(Ctx *c, const char *op, const Tensor *x, const char *what, const Tensor *v) {
    if (!v || (v->ndim == 1 && v->shape[0] == mt_last(x))) return 0;
    mt_fail_chan(c, op, x, what, v);
    return -1;
}

/* A (C) vector of v (ones or zeros when v is NULL), as a constant for the reference. */
static Tensor *vec_or(Ctx *c, Tensor *v, int C, float fill) {
    if (v) return v;
    Tensor *t = mt_new(c, 1, &C);
    for (int j = 0; t && j < C; j++) t->data[j] = fill;
    return t;
}

/* The reference (core/fuse.h): the norm op, avgpool2d(n) - n, the residual. */
static Tensor *norm_pool_ref(Ctx *c, Tensor *x, MtNormKind kind, Tensor *w, Tensor *b, float eps, int k,
                             Tensor *gamma) {
    Tensor *n = kind == MT_NORM_GROUP1 ? mt_groupnorm1(c, x, w, b, eps)
                                       : mt_affine(c, x, vec_or(c, w, mt_last(x), 1.0f), vec_or(c, b, mt_last(x), 0.0f));
    return mt_residual(c, x, mt_avgpool2d(c, n, k, 1), gamma);
}

Tensor *mt_norm_pool_residual(Ctx *c, Tensor *x, MtNormKind kind, Tensor *w, Tensor *b, float eps, int k,
                              Tensor *gamma) {
    if (c->failed || !x) return NULL;
    int groupnorm = kind == MT_NORM_GROUP1;
    const char *op = groupnorm ? "groupnorm1_pool_residual" : "affine_pool_residual";
    if (kind != MT_NORM_GROUP1 && kind != MT_NORM_AFFINE)
        return mt_fail(c, op, "norm kind %d: need GroupNorm(1) (%d) or the affine norm (%d)", (int)kind,
                       MT_NORM_GROUP1, MT_NORM_AFFINE);
    char sx[96];
    if (x->ndim != 4 || k < 1 || k % 2 == 0)
        return mt_fail(c, op, "x %s, k %d: need x (B, H, W, C) and an odd pool size k >= 1 (stride 1, padding k/2)",
                       mt_shape_str(x, sx, sizeof sx), k);
    if (check_vec(c, op, x, "weight", w) || check_vec(c, op, x, "bias", b) || check_vec(c, op, x, "gamma", gamma))
        return NULL;
    if (groupnorm && mt_check_eps(c, op, x, eps)) return NULL;
    Tensor *in[4] = {x, w, b, gamma};
    int taped = mt_needs_grad(c, in, 4);
    if (!mt_fuse_ok(c, MT_FUSE_NORM_POOL_RESIDUAL, taped)) return norm_pool_ref(c, x, kind, w, b, eps, k, gamma);
    Tensor *y = mt_new(c, 4, x->shape);
    if (!y) return NULL;
    int B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    /* Saved for backward: the Geo, then mean[B], rstd[B] (GroupNorm). The vectors it points
     * to are the parameters' data or arena rows, alive until the step ends. */
    Geo *q = arena_alloc(&c->arena, sizeof(Geo) + (groupnorm ? 2 * (size_t)B * sizeof(float) : 0));
    float *mean = groupnorm ? (float *)(q + 1) : NULL, *rstd = groupnorm ? mean + B : NULL;
    *q = (Geo){B, H, W, C, k / 2, (size_t)H * W * C, (size_t)W * C, mt_data_or_ones(c, w, C),
               mt_data_or_ones(c, gamma, C), kind, mean, rstd};
    ArenaMark mark = arena_mark(&c->arena);
    int par = x->numel * (size_t)k * k >= PAR_MIN, nb = bands(q, par), ntask = B * nb;
    int nt = par ? omp_get_max_threads() : 1;
    size_t ss = scratch_stride(q);
    float *scr = arena_alloc(&c->arena, (size_t)nt * ss * sizeof(float));
    double *bsum = arena_calloc(&c->arena, 2 * (size_t)ntask * sizeof(double));
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel if (par)
    {
        float *my = scr + (size_t)omp_get_thread_num() * ss;
        if (nb == 1) {
#pragma omp for schedule(static)
            for (int s = 0; s < B; s++) {
                const float *xs = xd + s * q->S;
                float m = 0, rs = 1;
                if (groupnorm) {
                    double sum = 0, sq = 0;
                    stats_rows(q, xs, 0, H, &sum, &sq);
                    stats_finish(sum, sq, (double)q->S, eps, &mean[s], &rstd[s]);
                    m = mean[s], rs = rstd[s];
                }
                forward_rows(q, xs, yd + s * q->S, 0, H, m, rs, my);
            }
        } else {
            if (groupnorm) {
#pragma omp for schedule(static)
                for (int tk = 0; tk < ntask; tk++)
                    stats_rows(q, xd + (tk / nb) * q->S, band_lo(q, nb, tk % nb), band_lo(q, nb, tk % nb + 1),
                               &bsum[2 * tk], &bsum[2 * tk + 1]);
#pragma omp single
                for (int s = 0; s < B; s++) {
                    double sum = 0, sq = 0;
                    for (int u = s * nb; u < (s + 1) * nb; u++) sum += bsum[2 * u], sq += bsum[2 * u + 1];
                    stats_finish(sum, sq, (double)q->S, eps, &mean[s], &rstd[s]);
                }
            }
#pragma omp for schedule(static)
            for (int tk = 0; tk < ntask; tk++) {
                int s = tk / nb;
                forward_rows(q, xd + s * q->S, yd + s * q->S, band_lo(q, nb, tk % nb), band_lo(q, nb, tk % nb + 1),
                             groupnorm ? mean[s] : 0.0f, groupnorm ? rstd[s] : 1.0f, my);
            }
        }
    }
    arena_release(&c->arena, mark);
    if (taped) {
        Node *n = mt_record(c, op, pool_branch_backward, y, in, 4);
        n->overwrites = 1; /* x */
        n->saved = q; /* the geometry and statistics (Geo), arena-allocated above */
    }
    return y;
}
