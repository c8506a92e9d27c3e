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
 * Backward, with p = pool(n) - n:
 *   dp = gamma dy, dgamma = sum p dy
 *   dn = pool^T(dp) - dp    (pool^T: each position gathers dp / count of every window covering
 *                            it, which are the outputs in its own window, see op_pool.c)
 *   dw = sum dn xhat, db = sum dn, dxhat = dn w
 *   dx = dy + rstd (dxhat - mean_s(dxhat) - xhat mean_s(dxhat xhat))      (Affine: dy + dxhat)
 * pool^T keeps sums (output o hands out dp(o) / count(o) to the count(o) positions of its
 * window), so sum_s dn = 0 per channel: mean_s(dxhat) and db are zero but for rounding (the
 * bias and the mean cancel in pool(n) - n). db is still summed, as the composition does;
 * mean_s(dxhat) is dropped. Pass 1 computes dxhat from rings of n (for p) and of dp / count
 * (for pool^T); GroupNorm's mean_s(dxhat xhat) is known only at its end, so it parks dxhat in
 * dx's own buffer (a scratch when dx accumulates) and pass 2 turns it into dx.
 *
 * Work is split by sample: a stage-1 sample of PoolFormer-S12 (56x56x64 floats, 800 KB) stays
 * in L2 between the statistics and the output (forward), and between the two passes
 * (backward), so x and dy come from memory once. With fewer samples than threads, by bands of
 * rows whose rings start r rows above the band. Values are the three ops' to float rounding:
 * the same operations in the same order (sums over a window row by row, double sums per
 * position, then per sample). */
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

/* Per-thread scratch: two rings of R image rows and two rows of C (64-byte aligned). */
static size_t scratch_stride(const Geo *q) { return ((2 * q->R * q->WC + 2 * (size_t)q->C) + 15) / 16 * 16; }

/* One image row of n into its ring slot: ((x - m) * rs) * w + b, the norm ops' order. */
static void norm_row(const Geo *q, const float *xr, float *restrict d, float m, float rs) {
    int C = q->C;
    for (int j = 0; j < q->W; j++) {
        const float *s = xr + (size_t)j * C;
        float *o = d + (size_t)j * C;
#pragma omp simd
        for (int ch = 0; ch < C; ch++) o[ch] = (s[ch] - m) * rs * q->w[ch] + q->b[ch];
    }
}

/* One image row (index i) of dp / count into its ring slot: pool^T's terms. */
static void dq_row(const Geo *q, const float *dyr, float *restrict d, int i) {
    int C = q->C, r = q->r;
    int rows = imin(i + r, q->H - 1) - imax(i - r, 0) + 1;
    for (int j = 0; j < q->W; j++) {
        int cols = imin(j + r, q->W - 1) - imax(j - r, 0) + 1;
        float inv = 1.0f / (float)(rows * cols);
        const float *s = dyr + (size_t)j * C;
        float *o = d + (size_t)j * C;
#pragma omp simd
        for (int ch = 0; ch < C; ch++) o[ch] = inv * (s[ch] * q->g[ch]);
    }
}

/* o = sum of the ring's rows i0..i1, columns j0..j1 (row by row, as avgpool2d). */
static inline void window_sum(const Geo *q, const float *ring, int i0, int i1, int j0, int j1, float *restrict o) {
    int C = q->C;
    memset(o, 0, (size_t)C * sizeof(float));
    for (int ii = i0; ii <= i1; ii++) {
        const float *row = ring + (size_t)(ii % q->R) * q->WC;
        for (int jj = j0; jj <= j1; jj++) {
            const float *s = row + (size_t)jj * C;
#pragma omp simd
            for (int ch = 0; ch < C; ch++) o[ch] += s[ch];
        }
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

/* Output rows [i0, i1) of sample xs into ys; ring: R rows of scratch. */
static void forward_rows(const Geo *q, const float *xs, float *ys, int i0, int i1, float m, float rs, float *ring) {
    int C = q->C, r = q->r, next = imax(i0 - r, 0);
    for (int i = i0; i < i1; i++) {
        int lo = imax(i - r, 0), hi = imin(i + r, q->H - 1);
        for (; next <= hi; next++) norm_row(q, xs + next * q->WC, ring + (size_t)(next % q->R) * q->WC, m, rs);
        const float *nrow = ring + (size_t)(i % q->R) * q->WC, *xrow = xs + i * q->WC;
        float *yrow = ys + i * q->WC;
        for (int j = 0; j < q->W; j++) {
            int j0 = imax(j - r, 0), j1 = imin(j + r, q->W - 1);
            float *o = yrow + (size_t)j * C;
            window_sum(q, ring, lo, hi, j0, j1, o);
            float inv = 1.0f / (float)((hi - lo + 1) * (j1 - j0 + 1));
            const float *n = nrow + (size_t)j * C, *xr = xrow + (size_t)j * C;
#pragma omp simd
            for (int ch = 0; ch < C; ch++) o[ch] = xr[ch] + q->g[ch] * (o[ch] * inv - n[ch]);
        }
    }
}

/* ---- backward ---- */

typedef struct {
    const Geo *q;
    const float *x, *dy, *mean, *rstd; /* mean NULL: affine */
    float *dx, *scratch; /* dx NULL: no input gradient; scratch: dxhat when dx accumulates */
    int acc, want_g, want_w, want_b;
} Bw;

/* Pass 1 over rows [i0, i1) of sample s: parameter partials (pdg, pdw, pdb: C doubles each),
 * and either dx (affine) or dxhat into t (the sample's) with *sum += dxhat xhat. */
static void backward_rows(const Bw *k, int s, int i0, int i1, float *t, double *sum, double *part, float *scr) {
    const Geo *q = k->q;
    int C = q->C, r = q->r, gn = k->mean != NULL;
    float m = gn ? k->mean[s] : 0.0f, rs = gn ? k->rstd[s] : 1.0f;
    const float *xs = k->x + s * q->S, *dys = k->dy + s * q->S;
    float *ringn = scr, *ringq = scr + q->R * q->WC, *pw = ringq + q->R * q->WC, *dn = pw + C;
    double *pdg = part, *pdw = part + C, *pdb = part + 2 * C;
    int need_dn = k->dx || k->want_w || k->want_b;
    int nextn = imax(i0 - r, 0), nextq = nextn;
    for (int i = i0; i < i1; i++) {
        int lo = imax(i - r, 0), hi = imin(i + r, q->H - 1);
        if (k->want_g)
            for (; nextn <= hi; nextn++) norm_row(q, xs + nextn * q->WC, ringn + (size_t)(nextn % q->R) * q->WC, m, rs);
        if (need_dn)
            for (; nextq <= hi; nextq++) dq_row(q, dys + nextq * q->WC, ringq + (size_t)(nextq % q->R) * q->WC, nextq);
        for (int j = 0; j < q->W; j++) {
            int j0 = imax(j - r, 0), j1 = imin(j + r, q->W - 1);
            size_t at = (size_t)i * q->WC + (size_t)j * C;
            const float *g = dys + at, *xr = xs + at;
            if (k->want_g) { /* dgamma += p dy, p as the forward computed it */
                const float *n = ringn + (size_t)(i % q->R) * q->WC + (size_t)j * C;
                window_sum(q, ringn, lo, hi, j0, j1, pw);
                float inv = 1.0f / (float)((hi - lo + 1) * (j1 - j0 + 1));
#pragma omp simd
                for (int ch = 0; ch < C; ch++) pdg[ch] += (double)g[ch] * (pw[ch] * inv - n[ch]);
            }
            if (!need_dn) continue;
            window_sum(q, ringq, lo, hi, j0, j1, dn);
#pragma omp simd
            for (int ch = 0; ch < C; ch++) dn[ch] -= g[ch] * q->g[ch];
            if (k->want_w) {
#pragma omp simd
                for (int ch = 0; ch < C; ch++) pdw[ch] += (double)dn[ch] * ((xr[ch] - m) * rs);
            }
            if (k->want_b) {
#pragma omp simd
                for (int ch = 0; ch < C; ch++) pdb[ch] += dn[ch];
            }
            if (!k->dx) continue;
            if (!gn) { /* affine: dx = dy + dn w */
                float *d = k->dx + s * q->S + at;
                int acc = k->acc;
#pragma omp simd
                for (int ch = 0; ch < C; ch++) GRAD_PUT(acc, d[ch], g[ch] + dn[ch] * q->w[ch]);
                continue;
            }
            float *d = t + at;
            double sgx = 0;
#pragma omp simd reduction(+ : sgx)
            for (int ch = 0; ch < C; ch++) {
                float gw = dn[ch] * q->w[ch];
                d[ch] = gw;
                sgx += (double)gw * ((xr[ch] - m) * rs);
            }
            *sum += sgx;
        }
    }
}

/* Pass 2 (GroupNorm) over rows [i0, i1) of sample s: dx = dy + rs (dxhat - xhat bb). */
static void dx_rows(const Bw *k, int s, int i0, int i1, const float *t, float bb) {
    const Geo *q = k->q;
    float m = k->mean[s], rs = k->rstd[s];
    size_t from = (size_t)i0 * q->WC, to = (size_t)i1 * q->WC;
    const float *xs = k->x + s * q->S, *dys = k->dy + s * q->S;
    float *d = k->dx + s * q->S;
    int acc = k->acc;
#pragma omp simd
    for (size_t e = from; e < to; e++) GRAD_PUT(acc, d[e], dys[e] + rs * (t[e] - (xs[e] - m) * rs * bb));
}

static void pool_branch_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *gamma = n->in[3];
    Geo q = *(const Geo *)n->saved;
    const float *mean = n->i[0] ? (const float *)((const Geo *)n->saved + 1) : NULL;
    Bw k = {.q = &q, .x = x->data, .dy = n->out->grad, .mean = mean, .rstd = mean ? mean + q.B : NULL,
            .want_g = gamma && gamma->requires_grad, .want_w = w && w->requires_grad,
            .want_b = b && b->requires_grad};
    int want_dx = x->requires_grad, gn = mean != NULL;
    if (want_dx) {
        k.dx = x->grad;
        k.acc = mt_grad_accumulate(x); /* the node overwrites */
    }
    ArenaMark mark = arena_mark(&c->arena);
    Partials P = partials_new(c, 3, q.C); /* dgamma, dw, db */
    int par = x->numel * (size_t)(2 * q.r + 1) * (2 * q.r + 1) >= PAR_MIN, nt = par ? omp_get_max_threads() : 1;
    int nb = bands(&q, par), ntask = q.B * nb;
    size_t ss = scratch_stride(&q);
    float *scr = arena_alloc(&c->arena, (size_t)nt * ss * sizeof(float));
    /* dxhat between the passes: dx's own buffer, or (dx accumulates) a sample per thread
     * (whole samples) or per sample (bands: fewer samples than threads) */
    if (gn && want_dx && k.acc) k.scratch = arena_alloc(&c->arena, (size_t)nt * q.S * sizeof(float));
    double *bsum = arena_calloc(&c->arena, (size_t)ntask * sizeof(double)); /* per band: sum dxhat xhat */
#pragma omp parallel if (par)
    {
        int tid = omp_get_thread_num();
        float *my = scr + (size_t)tid * ss;
        double *part = P.buf + (size_t)tid * P.stride;
        if (nb == 1) {
#pragma omp for schedule(static)
            for (int s = 0; s < q.B; s++) {
                float *t = !gn || !want_dx ? NULL : k.scratch ? k.scratch + (size_t)tid * q.S : k.dx + s * q.S;
                double sum = 0;
                backward_rows(&k, s, 0, q.H, t, &sum, part, my);
                if (t) dx_rows(&k, s, 0, q.H, t, (float)(sum / q.S));
            }
        } else {
#pragma omp for schedule(static)
            for (int tk = 0; tk < ntask; tk++) {
                int s = tk / nb, i0 = band_lo(&q, nb, tk % nb), i1 = band_lo(&q, nb, tk % nb + 1);
                float *t = !gn || !want_dx ? NULL : (k.scratch ? k.scratch : k.dx) + s * q.S;
                backward_rows(&k, s, i0, i1, t, &bsum[tk], part, my);
            }
            if (gn && want_dx) {
#pragma omp for schedule(static)
                for (int tk = 0; tk < ntask; tk++) {
                    int s = tk / nb, i0 = band_lo(&q, nb, tk % nb), i1 = band_lo(&q, nb, tk % nb + 1);
                    double bb = 0;
                    for (int u = s * nb; u < (s + 1) * nb; u++) bb += bsum[u];
                    dx_rows(&k, s, i0, i1, (k.scratch ? k.scratch : k.dx) + s * q.S, (float)(bb / q.S));
                }
            }
        }
    }
    partials_flush(&P, 0, q.C, k.want_g ? gamma->grad : NULL);
    partials_flush(&P, 1, q.C, k.want_w ? w->grad : NULL);
    partials_flush(&P, 2, q.C, k.want_b ? b->grad : NULL);
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
