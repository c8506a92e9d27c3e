/* PoolFormer's token-mixer branch with its residual, as one taped op:
 *
 *   y = x + gamma * (pool(n) - n),   n = xhat * w + b,   xhat = (x - mu_s) * rstd_s
 *
 * GroupNorm(1) (mu, rstd per sample) or timm's Affine (mu 0, rstd 1); pool as mt_avgpool2d
 * (k x k, stride 1, pad k/2, count_include_pad=False) on channels-last (B, H, W, C).
 *
 * Why one op: recorded as norm, pool - n and residual, the branch stores n and pool(n) - n and
 * makes ~7 passes over memory forward and ~10 backward. Here the forward saves only mu and
 * rstd; n is recomputed from x a few rows at a time into a per-thread ring of R = min(k, H)
 * rows (the pool window's height) and pooled from there.
 *
 * Backward, with p = pool(n) - n, u = pool(xhat) - xhat (so p = w u: the bias and the mean
 * cancel in pool(n) - n):
 *   dp = gamma dy, dgamma = sum p dy = w S,  S = sum dy u (per channel)
 *   dn = pool^T(dp) - dp    (pool^T: each position gathers dp / count of every window covering
 *                            it, which are the outputs in its own window, see op_pool.c)
 *   dw = sum dn xhat = sum dp u = gamma S   (pool^T is pool's adjoint)
 *   db = sum dn = 0, mean_s(dxhat) = 0      (pool^T keeps sums: output o hands dp(o) / count(o)
 *                                            to the count(o) positions of its window)
 *   dx = dy + rstd (w dn - xhat mean_s(dxhat xhat)),  mean_s(dxhat xhat) = sum_c w gamma S_s / |s|
 *   (S_s: the sample's share of S; affine: dx = dy + w dn)
 * So one per-channel sum S gives every parameter gradient and GroupNorm's sample term. Pass 1
 * accumulates S from a ring of xhat; pass 2 (once a sample's S is complete; with the affine
 * norm, in the same pass) writes dx from a ring of dp / count. Nothing is stored between them.
 *
 * Work is split by sample: a stage-1 sample of PoolFormer-S12 (56x56x64 floats, 800 KB) stays
 * in L2 between the statistics and the output (forward) and between the two passes
 * (backward), so x and dy come from memory about once. With fewer samples than threads, by
 * bands of rows whose rings start r rows above the band. S is summed per task (sample or band)
 * and the tasks' sums added in order: gradients do not depend on the thread count. Window sums
 * are column sums of the ring rows, then 2r + 1 of those: the same sums as avgpool2d's (row by
 * row) to float rounding; every other value is computed as the three ops compute it. */
#include "core/ops.h"
#include "core/op_util.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

/* Below this many elements x window positions the op runs on one thread (as avgpool2d). */
#define PAR_MIN 32768

static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int imin(int a, int b) { return a < b ? a : b; }

/* The shapes and per-channel vectors every kernel reads. */
typedef struct {
    int B, H, W, C, r, R; /* R: ring rows */
    size_t S, WC;         /* floats per sample, per image row */
    const float *w, *b, *g; /* (C): weight, bias, gamma (ones / zeros / ones when absent) */
} Geo;

/* Work split: nb bands of rows per sample (1: whole samples). */
static int bands(const Geo *q, int par) {
    int nt = par ? omp_get_max_threads() : 1;
    return q->B >= nt ? 1 : imin((nt + q->B - 1) / q->B, q->H);
}
static int band_lo(const Geo *q, int nb, int band) { return (int)((long)band * q->H / nb); }

/* Per-thread scratch: two rings of R image rows and a row of column sums (64-byte aligned). */
static size_t scratch_stride(const Geo *q) { return ((2 * q->R + 1) * q->WC + 15) / 16 * 16; }

/* Ring slot of image row i. */
static inline float *slot(const Geo *q, float *ring, int i) { return ring + (size_t)(i % q->R) * q->WC; }

/* One image row of xhat = (x - m) * rs, or (with_affine) of n = xhat * w + b (the norm ops' order). */
static void norm_row(const Geo *q, const float *xr, float *restrict d, float m, float rs, int with_affine) {
    size_t C = q->C;
    for (int j = 0; j < q->W; j++) {
        const float *s = xr + j * C;
        float *o = d + j * C;
        if (with_affine) {
#pragma omp simd
            for (size_t ch = 0; ch < C; ch++) o[ch] = (s[ch] - m) * rs * q->w[ch] + q->b[ch];
        } else {
#pragma omp simd
            for (size_t ch = 0; ch < C; ch++) o[ch] = (s[ch] - m) * rs;
        }
    }
}

/* One image row (index i) of dp / count = gamma dy / count: pool^T's terms, as avgpool2d's backward. */
static void dq_row(const Geo *q, const float *dyr, float *restrict d, int i) {
    int r = q->r;
    size_t C = q->C;
    int rows = imin(i + r, q->H - 1) - imax(i - r, 0) + 1;
    for (int j = 0; j < q->W; j++) {
        int cols = imin(j + r, q->W - 1) - imax(j - r, 0) + 1;
        float inv = 1.0f / (float)(rows * cols);
        const float *s = dyr + j * C;
        float *o = d + j * C;
#pragma omp simd
        for (size_t ch = 0; ch < C; ch++) o[ch] = inv * (s[ch] * q->g[ch]);
    }
}

/* The window's column sums for output row i: cs[j] = sum of the ring's nr rows from slot s0 at
 * column j (a contiguous loop over the whole row; the ring row itself when nr is 1). The
 * window sum at (i, j) is then cs[j0] + ... + cs[j1]: 2k adds per value instead of k^2, and
 * no short loops. (avgpool2d adds the window row by row: the same sum to float rounding.) */
static const float *col_sums(const Geo *q, const float *ring, int s0, int nr, float *restrict cs) {
    const float *r0 = ring + (size_t)s0 * q->WC;
    if (nr == 1) return r0;
    int s1 = s0 + 1 == q->R ? 0 : s0 + 1;
    const float *r1 = ring + (size_t)s1 * q->WC;
#pragma omp simd
    for (size_t e = 0; e < q->WC; e++) cs[e] = r0[e] + r1[e];
    for (int u = 2, sl = s1; u < nr; u++) {
        sl = sl + 1 == q->R ? 0 : sl + 1;
        const float *ru = ring + (size_t)sl * q->WC;
#pragma omp simd
        for (size_t e = 0; e < q->WC; e++) cs[e] += ru[e];
    }
    return cs;
}

/* Channels go in blocks of CB: the kernels below are called with len = CB (a constant once
 * inlined, so a window's sums stay in registers) and once with the remainder C % CB. */
#define CB 16

/* The window of one output position. */
typedef struct {
    int j0, j1; /* first and last column */
    float inv;  /* 1 / count */
} Win;

/* a[l] = the window's sum at channel l of the block (cs from the block's first channel). */
static inline __attribute__((always_inline)) void wsum(const Geo *q, const float *cs, Win v, int len, float *restrict a) {
    const float *s = cs + (size_t)v.j0 * q->C;
#pragma omp simd
    for (int l = 0; l < len; l++) a[l] = s[l];
    for (int jj = v.j0 + 1; jj <= v.j1; jj++) {
        s += q->C;
#pragma omp simd
        for (int l = 0; l < len; l++) a[l] += s[l];
    }
}

/* Forward, one block: o = x + gamma (pool(n) - n). ring, n, x, o, g at the block's first channel. */
static inline __attribute__((always_inline)) void fwd_block(const Geo *q, const float *cs, Win v, const float *n,
                                                            const float *x, const float *g, float *o, int len) {
    float a[CB];
    wsum(q, cs, v, len, a);
#pragma omp simd
    for (int l = 0; l < len; l++) o[l] = x[l] + g[l] * (a[l] * v.inv - n[l]);
}

/* Backward, one block: S += dy (pool(xhat) - xhat). */
static inline __attribute__((always_inline)) void s_block(const Geo *q, const float *cs, Win v, const float *xh,
                                                          const float *dy, double *restrict S, int len) {
    float a[CB];
    wsum(q, cs, v, len, a);
#pragma omp simd
    for (int l = 0; l < len; l++) S[l] += (double)dy[l] * (a[l] * v.inv - xh[l]);
}

/* Backward, one block: dn = pool^T(gamma dy) - gamma dy (ring: gamma dy / count),
 * dx = dy + rs (w dn - xhat bb). cs: column sums of gamma dy / count. */
static inline __attribute__((always_inline)) void dx_block(const Geo *q, const float *cs, Win v, const float *dy,
                                                           const float *x, const float *g, const float *w, float m,
                                                           float rs, float bb, int acc, float *d, int len) {
    float a[CB];
    wsum(q, cs, v, len, a);
#pragma omp simd
    for (int l = 0; l < len; l++) {
        float dn = a[l] - dy[l] * g[l];
        GRAD_PUT(acc, d[l], dy[l] + rs * (dn * w[l] - (x[l] - m) * rs * bb));
    }
}

/* Sums of x and x^2 over rows [i0, i1) of one sample, position by position (groupnorm1's order). */
static void stats_rows(const Geo *q, const float *xs, int i0, int i1, double *sum, double *sq) {
    int C = q->C;
    for (size_t p = (size_t)i0 * q->W; p < (size_t)i1 * q->W; p++) {
        const float *xr = xs + p * C;
        double s = 0, v = 0;
#pragma omp simd reduction(+ : s, v)
        for (int ch = 0; ch < C; ch++) {
            double t = xr[ch];
            s += t;
            v += t * t;
        }
        *sum += s, *sq += v;
    }
}

static void finish_stats(const Geo *q, double sum, double sq, float eps, float *mean, float *rstd) {
    double m = sum / (double)q->S, var = sq / (double)q->S - m * m;
    *mean = (float)m;
    *rstd = (float)(1.0 / sqrt((var > 0 ? var : 0) + eps));
}

/* ---- forward ---- */

/* Output rows [i0, i1) of sample xs into ys; scr: the thread's scratch. */
static void forward_rows(const Geo *q, const float *xs, float *ys, int i0, int i1, float m, float rs, float *scr) {
    float *ring = scr, *csbuf = scr + 2 * q->R * q->WC;
    int r = q->r, next = imax(i0 - r, 0);
    size_t C = q->C;
    for (int i = i0; i < i1; i++) {
        int lo = imax(i - r, 0), hi = imin(i + r, q->H - 1), nr = hi - lo + 1;
        for (; next <= hi; next++) norm_row(q, xs + next * q->WC, slot(q, ring, next), m, rs, 1);
        const float *nrow = slot(q, ring, i), *xrow = xs + i * q->WC, *cs = col_sums(q, ring, lo % q->R, nr, csbuf);
        float *yrow = ys + i * q->WC;
        for (int j = 0; j < q->W; j++) {
            int j0 = imax(j - r, 0), j1 = imin(j + r, q->W - 1);
            Win v = {j0, j1, 1.0f / (float)(nr * (j1 - j0 + 1))};
            size_t c0 = 0, at = j * C;
            for (; c0 + CB <= C; c0 += CB)
                fwd_block(q, cs + c0, v, nrow + at + c0, xrow + at + c0, q->g + c0, yrow + at + c0, CB);
            if (c0 < C) fwd_block(q, cs + c0, v, nrow + at + c0, xrow + at + c0, q->g + c0, yrow + at + c0, (int)(C - c0));
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

/* Rows [i0, i1) of sample s. With S: S[ch] += dy u, u = pool(xhat) - xhat. With dx:
 * dx = dy + rs (w dn - xhat bb), dn = pool^T(gamma dy) - gamma dy. scr: the thread's rings. */
static void backward_rows(const Bw *k, int s, int i0, int i1, double *restrict S, int want_dx, float bb, float *scr) {
    const Geo *q = k->q;
    int r = q->r, acc = k->acc;
    size_t C = q->C;
    float m = k->mean ? k->mean[s] : 0.0f, rs = k->mean ? k->rstd[s] : 1.0f;
    const float *xs = k->x + s * q->S, *dys = k->dy + s * q->S;
    float *ringx = scr, *ringq = scr + q->R * q->WC, *csbuf = ringq + q->R * q->WC;
    float *dxs = want_dx ? k->dx + s * q->S : NULL;
    int nextx = imax(i0 - r, 0), nextq = nextx;
    for (int i = i0; i < i1; i++) {
        int lo = imax(i - r, 0), hi = imin(i + r, q->H - 1), nr = hi - lo + 1;
        if (S)
            for (; nextx <= hi; nextx++) norm_row(q, xs + nextx * q->WC, slot(q, ringx, nextx), m, rs, 0);
        if (want_dx)
            for (; nextq <= hi; nextq++) dq_row(q, dys + nextq * q->WC, slot(q, ringq, nextq), nextq);
        /* one of S and dx per call (pass 1, pass 2), or both (affine): the column sums of the
         * second overwrite the first's only after its row is done */
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 0 ? !S : !want_dx) continue;
            const float *cs = col_sums(q, pass == 0 ? ringx : ringq, lo % q->R, nr, csbuf);
            const float *xhrow = slot(q, ringx, i);
            for (int j = 0; j < q->W; j++) {
                int j0 = imax(j - r, 0), j1 = imin(j + r, q->W - 1);
                Win v = {j0, j1, 1.0f / (float)(nr * (j1 - j0 + 1))};
                size_t at = i * q->WC + j * C, c0;
                const float *g = dys + at;
                if (pass == 0) {
                    const float *xh = xhrow + j * C;
                    for (c0 = 0; c0 + CB <= C; c0 += CB) s_block(q, cs + c0, v, xh + c0, g + c0, S + c0, CB);
                    if (c0 < C) s_block(q, cs + c0, v, xh + c0, g + c0, S + c0, (int)(C - c0));
                } else {
                    const float *xr = xs + at;
                    float *d = dxs + at;
                    for (c0 = 0; c0 + CB <= C; c0 += CB)
                        dx_block(q, cs + c0, v, g + c0, xr + c0, q->g + c0, q->w + c0, m, rs, bb, acc, d + c0, CB);
                    if (c0 < C)
                        dx_block(q, cs + c0, v, g + c0, xr + c0, q->g + c0, q->w + c0, m, rs, bb, acc, d + c0,
                                 (int)(C - c0));
                }
            }
        }
    }
}

/* mean_s(dxhat xhat) of a sample from its S (sum over the sample's nb task rows of St). */
static float sample_bb(const Geo *q, const double *St, int nb) {
    double t = 0;
    for (int u = 0; u < nb; u++)
        for (int ch = 0; ch < q->C; ch++) t += (double)q->w[ch] * q->g[ch] * St[(size_t)u * q->C + ch];
    return (float)(t / (double)q->S);
}

static void pool_branch_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *w = n->in[1], *gamma = n->in[3];
    const Geo *q = n->saved;
    const float *mean = n->i[0] ? (const float *)(q + 1) : NULL;
    Bw k = {.q = q, .x = x->data, .dy = n->out->grad, .mean = mean, .rstd = mean ? mean + q->B : NULL};
    int want_g = gamma && gamma->requires_grad, want_w = w && w->requires_grad, want_dx = x->requires_grad;
    int gn = mean != NULL, want_S = want_g || want_w || (gn && want_dx);
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
                    if (want_dx) backward_rows(&k, s, 0, q->H, NULL, 1, sample_bb(q, ST(tk), 1), my);
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
                                  sample_bb(q, ST(s * nb), nb), my);
                }
            }
        }
    }
#undef ST
    /* dgamma = sum p dy = w S and dw = sum dn xhat = gamma S; db = sum dn = 0 (nothing to add) */
    for (int ch = 0; ch < q->C && (want_g || want_w); ch++) {
        double t = 0;
        for (int tk = 0; tk < ntask; tk++) t += St[(size_t)tk * q->C + ch];
        if (want_g) gamma->grad[ch] += (float)(q->w[ch] * t);
        if (want_w) w->grad[ch] += (float)(q->g[ch] * t);
    }
    arena_release(&c->arena, mark);
}

/* ---- the op ---- */

static const char *pname(const Tensor *t, char *buf, size_t n) {
    if (t && t->is_param && t->name) snprintf(buf, n, " [%s]", t->name);
    else buf[0] = 0;
    return buf;
}

/* v is NULL or a (C) vector matching x's last axis; else the error, naming v. */
static int check_vec(Ctx *c, const char *op, const Tensor *x, const char *what, const Tensor *v) {
    if (!v || (v->ndim == 1 && v->shape[0] == mt_last(x))) return 0;
    char sx[96], sv[96], nx[96], nv[96];
    mt_fail(c, op, "x %s%s, %s %s%s: %s must be (C) = (%d), the last axis of x", mt_shape_str(x, sx, sizeof sx),
            pname(x, nx, sizeof nx), what, mt_shape_str(v, sv, sizeof sv), pname(v, nv, sizeof nv), what, mt_last(x));
    return -1;
}

/* A (C) row of value v from the arena: an absent weight, bias or gamma. */
static const float *fill_row(Ctx *c, int C, float v) {
    float *p = arena_alloc(&c->arena, (size_t)C * sizeof(float));
    for (int j = 0; j < C; j++) p[j] = v;
    return p;
}

Tensor *mt_norm_pool_residual(Ctx *c, Tensor *x, int groupnorm, Tensor *w, Tensor *b, float eps, int k,
                              Tensor *gamma) {
    if (c->failed || !x) return NULL;
    const char *op = groupnorm ? "groupnorm1_pool_residual" : "affine_pool_residual";
    char sx[96];
    if (x->ndim != 4 || k < 1 || k % 2 == 0)
        return mt_fail(c, op, "x %s, k %d: need x (B, H, W, C) and an odd pool size k >= 1 (stride 1, padding k/2)",
                       mt_shape_str(x, sx, sizeof sx), k);
    if (check_vec(c, op, x, "weight", w) || check_vec(c, op, x, "bias", b) || check_vec(c, op, x, "gamma", gamma))
        return NULL;
    if (groupnorm && !(eps >= 0))
        return mt_fail(c, op, "x %s: eps %g must be >= 0", mt_shape_str(x, sx, sizeof sx), (double)eps);
    Tensor *y = mt_new(c, 4, x->shape);
    if (!y) return NULL;
    int B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    /* Saved for backward: the Geo, then mean[B], rstd[B] (GroupNorm). The vectors it points
     * to are the parameters' data or arena rows, alive until the step ends. */
    Geo *q = arena_alloc(&c->arena, sizeof(Geo) + (groupnorm ? 2 * (size_t)B * sizeof(float) : 0));
    *q = (Geo){B, H, W, C, k / 2, imin(k, H), (size_t)H * W * C, (size_t)W * C,
               w ? w->data : fill_row(c, C, 1.0f), b ? b->data : fill_row(c, C, 0.0f),
               gamma ? gamma->data : fill_row(c, C, 1.0f)};
    float *mean = groupnorm ? (float *)(q + 1) : NULL, *rstd = groupnorm ? mean + B : NULL;
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
        float *ring = scr + (size_t)omp_get_thread_num() * ss;
        if (nb == 1) {
#pragma omp for schedule(static)
            for (int s = 0; s < B; s++) {
                const float *xs = xd + s * q->S;
                float m = 0, rs = 1;
                if (groupnorm) {
                    double sum = 0, sq = 0;
                    stats_rows(q, xs, 0, H, &sum, &sq);
                    finish_stats(q, sum, sq, eps, &mean[s], &rstd[s]);
                    m = mean[s], rs = rstd[s];
                }
                forward_rows(q, xs, yd + s * q->S, 0, H, m, rs, ring);
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
                    finish_stats(q, sum, sq, eps, &mean[s], &rstd[s]);
                }
            }
#pragma omp for schedule(static)
            for (int tk = 0; tk < ntask; tk++) {
                int s = tk / nb;
                forward_rows(q, xd + s * q->S, yd + s * q->S, band_lo(q, nb, tk % nb), band_lo(q, nb, tk % nb + 1),
                             groupnorm ? mean[s] : 0.0f, groupnorm ? rstd[s] : 1.0f, ring);
            }
        }
    }
    arena_release(&c->arena, mark);
    Tensor *in[4] = {x, w, b, gamma};
    if (mt_needs_grad(c, in, 4)) {
        Node *n = mt_record(c, op, pool_branch_backward, y, in, 4);
        n->overwrites = 1; /* x */
        n->saved = q;
        n->i[0] = groupnorm != 0;
        n->f[0] = eps;
    }
    return y;
}
