/* Small helpers shared by the op files (internal to core/). */
#pragma once
#include "core/act_gelu.h"
#include "core/tape.h"
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>

/* A backward's write of one gradient element: dst = v, or dst += v when acc
 * (mt_grad_accumulate). acc is loop-invariant: the compiler splits the loop in two, so a
 * fresh buffer is never read. */
#define GRAD_PUT(acc, dst, v) ((acc) ? (void)((dst) += (v)) : (void)((dst) = (v)))

/* Below this many elements a parallel region costs more than it saves. */
#define MT_PAR_MIN 16384

/* g += d over n floats: a gradient computed into scratch because g already holds a sum. */
static inline void grad_add(float *g, const float *d, size_t n) {
#pragma omp parallel for simd if (n >= MT_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) g[i] += d[i];
}

/* In a backward that overwrites input t (a bit of n->overwrites): t's gradient is the output's
 * gradient unchanged (reshape; the residual's skip input). With a fresh buffer the two buffers
 * trade places, no copy (the output's gradient is released right after this backward); unless
 * every gradient is kept, or t's buffer is already written: then dy is copied or added. */
static inline void grad_pass_through(Ctx *c, Node *n, Tensor *t) {
    int acc = mt_grad_accumulate(t);
    if (!acc && !c->keep_grads) {
        float *fresh = t->grad;
        t->grad = n->out->grad;
        n->out->grad = fresh;
        return;
    }
    float *g = t->grad;
    const float *dy = n->out->grad;
    size_t N = t->numel;
#pragma omp parallel for simd if (N >= MT_PAR_MIN) schedule(static)
    for (size_t i = 0; i < N; i++) GRAD_PUT(acc, g[i], dy[i]);
}

/* " [name]" for a parameter (its timm key), "" for an activation or NULL: error messages. */
static inline const char *mt_pname(const Tensor *t, char *buf, size_t n) {
    if (t && t->is_param && t->name) snprintf(buf, n, " [%s]", t->name);
    else buf[0] = 0;
    return buf;
}

/* Records that v (named vname) is not a (C) vector matching x's last axis; returns NULL. */
static inline void *mt_fail_chan(Ctx *c, const char *op, const Tensor *x, const char *vname, const Tensor *v) {
    char sx[96], sv[96], nx[96], nv[96];
    return mt_fail(c, op, "x %s%s, %s %s%s: %s must be (C) = (%d), the last axis of x", mt_shape_str(x, sx, sizeof sx),
                   mt_pname(x, nx, sizeof nx), vname, mt_shape_str(v, sv, sizeof sv), mt_pname(v, nv, sizeof nv), vname,
                   mt_last(x));
}

/* eps must be >= 0 (and not NaN); 0, or -1 after recording the error. */
static inline int mt_check_eps(Ctx *c, const char *op, const Tensor *x, float eps) {
    if (eps >= 0) return 0;
    char sx[96];
    mt_fail(c, op, "x %s: eps %g must be >= 0", mt_shape_str(x, sx, sizeof sx), (double)eps);
    return -1;
}

/* v's data, or an arena row of C ones for an absent weight or scale. */
static inline const float *mt_data_or_ones(Ctx *c, const Tensor *v, int C) {
    if (v) return v->data;
    float *one = arena_alloc(&c->arena, (size_t)C * sizeof(float));
    for (int j = 0; j < C; j++) one[j] = 1.0f;
    return one;
}

/* Sums of x and x^2 over a row of C floats, in double (GroupNorm(1)'s statistics, which
 * every op that recomputes them must reproduce in the same order). */
static inline void row_sum_sq(const float *xr, int C, double *sum, double *sq) {
    double s = 0, q = 0;
#pragma omp simd reduction(+ : s, q)
    for (int j = 0; j < C; j++) {
        double v = xr[j];
        s += v;
        q += v * v;
    }
    *sum = s, *sq = q;
}

/* Mean and 1 / sqrt(var + eps) from those sums over n values (var = E[x^2] - mean^2 in double;
 * mean may be NULL). */
static inline void stats_finish(double sum, double sq, double n, float eps, float *mean, float *rstd) {
    double m = sum / n, var = sq / n - m * m;
    if (mean) *mean = (float)m;
    *rstd = (float)(1.0 / sqrt((var > 0 ? var : 0) + eps));
}

/* Per-thread partial sums for reductions over rows into per-channel gradients:
 * one row of doubles per thread, padded to a cache line so threads never share
 * one; flushed in thread order, so results do not depend on scheduling.
 * A row loop may add into a thread's float staging row instead (16 lanes a vector, no
 * conversions: a double load-add-store per row and channel cost as much as the rest of a
 * norm's backward) and commit it into the doubles every PARTIALS_RUN rows and at its end:
 * float sums over at most 16 rows, then double. */
typedef struct {
    double *buf;
    float *stage;
    int nt, stride;
} Partials;

#define PARTIALS_RUN MT_FLOAT_SUM_ROWS

static inline Partials partials_new(Ctx *c, int nsum, int C) {
    Partials p;
    p.nt = omp_get_max_threads();
    p.stride = ((nsum * C + 15) / 16) * 16;
    p.buf = arena_calloc(&c->arena, (size_t)p.nt * p.stride * sizeof(double));
    p.stage = arena_calloc(&c->arena, (size_t)p.nt * p.stride * sizeof(float));
    return p;
}

/* Thread t's staging row: sum k of nsum at stage + k * C. */
static inline float *partials_stage(const Partials *p, int t) { return p->stage + (size_t)t * p->stride; }

/* Thread t's staging row added into its doubles and zeroed; *run (rows since the last
 * commit) reset. Call with force 0 after each row, 1 after the last. */
static inline void partials_commit(const Partials *p, int t, int *run, int force) {
    if (!force && ++*run < PARTIALS_RUN) return;
    double *d = p->buf + (size_t)t * p->stride;
    float *s = p->stage + (size_t)t * p->stride;
#pragma omp simd
    for (int j = 0; j < p->stride; j++) d[j] += s[j], s[j] = 0.0f;
    *run = 0;
}

/* dst[j] += sum over threads of partial k (k-th sum of nsum) at channel j. */
static inline void partials_flush(const Partials *p, int k, int C, float *dst) {
    if (!dst) return;
    for (int j = 0; j < C; j++) {
        double s = 0;
        for (int t = 0; t < p->nt; t++) s += p->buf[(size_t)t * p->stride + (size_t)k * C + j];
        dst[j] += (float)s;
    }
}

/* db[j] += sum_r dy[r, j] (a bias gradient), split over column blocks so threads never share a write. */
static inline void colsum_add(float *db, const float *dy, size_t rows, int n) {
#pragma omp parallel for schedule(static) if (rows * (size_t)n >= 2 * MT_PAR_MIN)
    for (int j0 = 0; j0 < n; j0 += 64) {
        int j1 = j0 + 64 < n ? j0 + 64 : n;
        float acc[64] = {0};
        for (size_t r = 0; r < rows; r++)
            for (int j = j0; j < j1; j++) acc[j - j0] += dy[r * n + j];
        for (int j = j0; j < j1; j++) db[j] += acc[j - j0];
    }
}
