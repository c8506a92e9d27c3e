/* Normalisation ops: LayerNorm and RMSNorm over the last axis, GroupNorm with
 * one group (statistics over a whole sample, affine per channel).
 *
 * Statistics are two-pass (mean, then mean of squared deviations) with double
 * accumulators; mean and rstd are saved in the arena for backward, which
 * recomputes x_hat from the kept input. Weight/bias gradients are summed per
 * thread (float over runs of 16 rows, then double: Partials) and added once, in
 * thread order (deterministic). */
#include "core/ops.h"
#include "core/bf16.h"
#include "core/op_util.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>

#define PAR_MIN 16384


/* The weight's data, or a row of ones from the arena when there is no weight. */

/* x needs at least min_ndim axes; w and b must be (C) vectors (or NULL). has_b: the op takes a bias. */
static int check_affine(Ctx *c, const char *op, const Tensor *x, const Tensor *w, const Tensor *b, int has_b,
                        int min_ndim) {
    int bad_w = w && (w->ndim != 1 || w->shape[0] != mt_last(x));
    int bad_b = b && (b->ndim != 1 || b->shape[0] != mt_last(x));
    if (!bad_w && !bad_b && x->ndim >= min_ndim) return 0;
    char sx[96], sw[96], sb[96], nx[96], nw[96], nb[96], tail[96] = "";
    if (has_b)
        snprintf(tail, sizeof tail, ", bias %s%s", b ? mt_shape_str(b, sb, sizeof sb) : "none", mt_pname(b, nb, sizeof nb));
    if (x->ndim < min_ndim)
        mt_fail(c, op, "x %s%s: need at least %d axes (sample axis first, channels last)", mt_shape_str(x, sx, sizeof sx),
                mt_pname(x, nx, sizeof nx), min_ndim);
    else
        mt_fail(c, op, "x %s%s, weight %s%s%s: %s must be (C) = (%d), the last axis of x",
                mt_shape_str(x, sx, sizeof sx), mt_pname(x, nx, sizeof nx), w ? mt_shape_str(w, sw, sizeof sw) : "none",
                mt_pname(w, nw, sizeof nw), tail, has_b ? "weight and bias" : "weight", mt_last(x));
    return -1;
}


/* y_row = x_hat * w + b, with x_hat = (x - m) * rs. */
static inline void norm_out_row(float *restrict y, const float *x, float m, float rs, const float *w,
                                const float *b, int C) {
#pragma omp simd
    for (int j = 0; j < C; j++) y[j] = (x[j] - m) * rs;
    if (w) {
#pragma omp simd
        for (int j = 0; j < C; j++) y[j] *= w[j];
    }
    if (b) {
#pragma omp simd
        for (int j = 0; j < C; j++) y[j] += b[j];
    }
}

/* ---- LayerNorm over the last axis ---- */

/* Mean and 1/sqrt(var + eps) of one row: two passes with double sums. */
static inline void row_stats(const float *xr, int C, float eps, float *mean, float *rstd) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < C; j++) s += xr[j];
    double m = s / C, v = 0;
#pragma omp simd reduction(+ : v)
    for (int j = 0; j < C; j++) {
        double d = xr[j] - m;
        v += d * d;
    }
    *mean = (float)m;
    *rstd = (float)(1.0 / sqrt(v / C + eps));
}

/* A norm's backward pass 1 on one row: adds to the dw, db staging rows (when not NULL; see
 * Partials); *sg_out, *sgx_out = the row's sums of g and g x_hat with g = dy w, in float
 * (sg_out NULL: dx not wanted). LayerNorm takes their means over the row; GroupNorm(1)'s two
 * paths add them into the sample's double sums in row order, so its dx does not depend on the
 * path. */
static inline void norm_row_sums(const float *xr, const float *g, float m, float rs, const float *pw, int C,
                                float *pdw, float *pdb, double *sg_out, double *sgx_out) {
    if (pdw) {
#pragma omp simd
        for (int j = 0; j < C; j++) pdw[j] += g[j] * ((xr[j] - m) * rs);
    }
    if (pdb) {
#pragma omp simd
        for (int j = 0; j < C; j++) pdb[j] += g[j];
    }
    if (!sg_out) return;
    float sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
    for (int j = 0; j < C; j++) {
        float gw = g[j] * pw[j];
        sg += gw;
        sgx += gw * ((xr[j] - m) * rs);
    }
    *sg_out = sg, *sgx_out = sgx;
}

/* Pass 2 on one row: dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat)), a = mean(g), bb =
 * mean(g * x_hat) over the row (LayerNorm) or the sample (GroupNorm(1)). */
static inline void norm_row_dx(float *dx, int acc, const float *xr, const float *g, float m, float rs, float a,
                              float bb, const float *pw, int C) {
#pragma omp simd
    for (int j = 0; j < C; j++) GRAD_PUT(acc, dx[j], rs * (g[j] * pw[j] - a - (xr[j] - m) * rs * bb));
}

/* What a layernorm or groupnorm1 node keeps: the statistics, one per row (LayerNorm) or per
 * sample (GroupNorm(1)). */
typedef struct NormSaved {
    const float *mean, *rstd;
} NormSaved;

/* LayerNorm's gradients from dy: into x's (the caller's node overwrites it), w's and b's. */
static void layernorm_grad(Ctx *c, Tensor *x, Tensor *w, Tensor *b, const float *mean, const float *rstd,
                           const float *dy) {
    size_t rows = mt_rows(x);
    int C = mt_last(x);
    const float *pw = mt_data_or_ones(c, w, C);
    int want_dx = x->requires_grad, want_w = w && w->requires_grad, want_b = b && b->requires_grad;
    Partials p = partials_new(c, 2, C);
    float *gx = x->grad;
    int acc = want_dx ? mt_grad_accumulate(x) : 1; /* the node overwrites */
#pragma omp parallel if (x->numel >= PAR_MIN)
    {
        int t = omp_get_thread_num(), run = 0;
        float *pdw = partials_stage(&p, t), *pdb = pdw + C;
#pragma omp for schedule(static)
        for (size_t r = 0; r < rows; r++) {
            const float *xr = x->data + r * C, *g = dy + r * C;
            double sg, sgx;
            norm_row_sums(xr, g, mean[r], rstd[r], pw, C, want_w ? pdw : NULL, want_b ? pdb : NULL,
                          want_dx ? &sg : NULL, &sgx);
            partials_commit(&p, t, &run, 0);
            if (want_dx)
                norm_row_dx(gx + r * C, acc, xr, g, mean[r], rstd[r], (float)(sg / C), (float)(sgx / C), pw, C);
        }
        partials_commit(&p, t, &run, 1);
    }
    partials_flush(&p, 0, C, want_w ? w->grad : NULL);
    partials_flush(&p, 1, C, want_b ? b->grad : NULL);
}

static void layernorm_backward(Ctx *c, Node *n) {
    const NormSaved *s = n->saved;
    layernorm_grad(c, n->in[0], n->in[1], n->in[2], s->mean, s->rstd, n->out->grad);
}

Tensor *mt_layernorm(Ctx *c, Tensor *x, Tensor *w, Tensor *b, float eps) {
    if (c->failed || !x) return NULL;
    if (check_affine(c, "layernorm", x, w, b, 1, 1)) return NULL;
    if (mt_check_eps(c, "layernorm", x, eps)) return NULL;
    Tensor *y = mt_new(c, x->ndim, x->shape);
    if (!y) return NULL;
    size_t rows = mt_rows(x);
    int C = mt_last(x);
    float *mean = arena_alloc(&c->arena, 2 * rows * sizeof(float)), *rstd = mean + rows;
    const float *pw = w ? w->data : NULL, *pb = b ? b->data : NULL;
#pragma omp parallel for if (x->numel >= PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x->data + r * C;
        row_stats(xr, C, eps, &mean[r], &rstd[r]);
        norm_out_row(y->data + r * C, xr, mean[r], rstd[r], pw, pb, C);
    }
    Tensor *in[3] = {x, w, b};
    if (mt_needs_grad(c, in, 3)) {
        Node *n = mt_record(c, "layernorm", layernorm_backward, y, in, 3);
        n->overwrites = 1; /* x */
        mt_save(c, n, &(NormSaved){mean, rstd}, sizeof(NormSaved));
    }
    return y;
}

/* ---- GroupNorm(1, C) on channels-last: statistics over a whole sample ---- */

/* A sample (800 KB at PoolFormer-S12's stage 1) fits a core's L2: with at least as many
 * samples as threads, each thread takes whole samples and makes both passes over one while it
 * is in cache, so x (and dy) come from DRAM once, not twice. Fewer samples: rows are split
 * over threads so a small batch still uses every core. */
static int gn1_by_sample(const Tensor *x) {
    return x->numel < PAR_MIN || x->shape[0] >= omp_get_max_threads();
}

/* Backward with whole samples per thread: pass 1 then pass 2 on a sample back to back. */
static void groupnorm1_grad_samples(Tensor *x, Tensor *w, Tensor *b, const float *mean, const float *rstd,
                                    const float *dy, const float *pw, Partials *p) {
    int B = x->shape[0], C = mt_last(x);
    size_t rps = mt_rows(x) / B;
    double S = (double)(x->numel / B);
    int want_dx = x->requires_grad, want_w = w && w->requires_grad, want_b = b && b->requires_grad;
    float *gx = x->grad;
    int acc = want_dx ? mt_grad_accumulate(x) : 1;
#pragma omp parallel if (x->numel >= PAR_MIN)
    {
        int t = omp_get_thread_num(), run = 0;
        float *pdw = partials_stage(p, t), *pdb = pdw + C;
#pragma omp for schedule(static)
        for (int s = 0; s < B; s++) {
            size_t r0 = (size_t)s * rps;
            float m = mean[s], rs = rstd[s];
            double a = 0, bb = 0;
            for (size_t r = r0; r < r0 + rps; r++) {
                double sg, sgx;
                norm_row_sums(x->data + r * C, dy + r * C, m, rs, pw, C, want_w ? pdw : NULL, want_b ? pdb : NULL,
                             want_dx ? &sg : NULL, &sgx);
                partials_commit(p, t, &run, 0);
                if (want_dx) a += sg, bb += sgx;
            }
            if (!want_dx) continue;
            float mg = (float)(a / S), mgx = (float)(bb / S);
            for (size_t r = r0; r < r0 + rps; r++)
                norm_row_dx(gx + r * C, acc, x->data + r * C, dy + r * C, m, rs, mg, mgx, pw, C);
        }
        partials_commit(p, t, &run, 1);
    }
}

/* GroupNorm(1)'s gradients from dy: into x's (the caller's node overwrites it), w's and b's. */
static void groupnorm1_grad(Ctx *c, Tensor *x, Tensor *w, Tensor *b, const float *mean, const float *rstd,
                            const float *dy) {
    int B = x->shape[0], C = mt_last(x);
    size_t rows = mt_rows(x), rps = rows / B; /* rows per sample */
    double S = (double)(x->numel / B);
    const float *pw = mt_data_or_ones(c, w, C);
    int want_dx = x->requires_grad, want_w = w && w->requires_grad, want_b = b && b->requires_grad;
    Partials p = partials_new(c, 2, C);
    if (gn1_by_sample(x)) {
        groupnorm1_grad_samples(x, w, b, mean, rstd, dy, pw, &p);
        partials_flush(&p, 0, C, want_w ? w->grad : NULL);
        partials_flush(&p, 1, C, want_b ? b->grad : NULL);
        return;
    }
    /* Pass 1: per-row sums of g = dy * w and g * x_hat (for dx), per-channel partials for dw, db. */
    double *rsum = arena_alloc(&c->arena, 2 * rows * sizeof(double));
#pragma omp parallel if (x->numel >= PAR_MIN)
    {
        int t = omp_get_thread_num(), run = 0;
        float *pdw = partials_stage(&p, t), *pdb = pdw + C;
#pragma omp for schedule(static)
        for (size_t r = 0; r < rows; r++) {
            norm_row_sums(x->data + r * C, dy + r * C, mean[r / rps], rstd[r / rps], pw, C, want_w ? pdw : NULL,
                         want_b ? pdb : NULL, want_dx ? &rsum[2 * r] : NULL, &rsum[2 * r + 1]);
            partials_commit(&p, t, &run, 0);
        }
        partials_commit(&p, t, &run, 1);
    }
    partials_flush(&p, 0, C, want_w ? w->grad : NULL);
    partials_flush(&p, 1, C, want_b ? b->grad : NULL);
    if (!want_dx) return;
    float *mg = arena_alloc(&c->arena, 2 * (size_t)B * sizeof(float)), *mgx = mg + B;
    for (int s = 0; s < B; s++) {
        double a = 0, bb = 0;
        for (size_t r = s * rps; r < (s + 1) * rps; r++) a += rsum[2 * r], bb += rsum[2 * r + 1];
        mg[s] = (float)(a / S);
        mgx[s] = (float)(bb / S);
    }
    /* Pass 2. The node overwrites. */
    float *gx = x->grad;
    int acc = mt_grad_accumulate(x);
#pragma omp parallel for if (x->numel >= PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        size_t s = r / rps;
        norm_row_dx(gx + r * C, acc, x->data + r * C, dy + r * C, mean[s], rstd[s], mg[s], mgx[s], pw, C);
    }
}

/* Per-sample mean and 1/sqrt(var + eps) of x (B, ...) into mean[B] (or NULL), rstd[B]: one
 * pass of double sums of x and x^2 per row (a pass over x costs more than the arithmetic;
 * in double, var = E[x^2] - mean^2 loses ~1e-16 (mean / std)^2 relative, nothing an fp32
 * result sees). Rows, not samples, are split over threads so a small batch still uses
 * every core. */
static void groupnorm1_stats(Ctx *c, const Tensor *x, float eps, float *mean, float *rstd) {
    int B = x->shape[0], C = mt_last(x);
    size_t rows = mt_rows(x), rps = rows / B;
    double S = (double)(x->numel / B);
    ArenaMark mark = arena_mark(&c->arena);
    double *rsum = arena_alloc(&c->arena, 2 * rows * sizeof(double)), *rsq = rsum + rows;
#pragma omp parallel for if (x->numel >= PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) row_sum_sq(x->data + r * C, C, &rsum[r], &rsq[r]);
    for (int s = 0; s < B; s++) {
        double a = 0, q = 0;
        for (size_t r = s * rps; r < (s + 1) * rps; r++) a += rsum[r], q += rsq[r];
        stats_finish(a, q, S, eps, mean ? &mean[s] : NULL, &rstd[s]);
    }
    arena_release(&c->arena, mark);
}

/* One sample's statistics from its rows [r0, r0 + rps), by one thread: the same per-row sums
 * added in the same order as groupnorm1_stats, so the same bits. */
static void sample_stats(const Tensor *x, size_t r0, size_t rps, float eps, float *mean, float *rstd) {
    int C = mt_last(x);
    double a = 0, q = 0;
    for (size_t r = r0; r < r0 + rps; r++) {
        double rs, rq;
        row_sum_sq(x->data + r * C, C, &rs, &rq);
        a += rs, q += rq;
    }
    stats_finish(a, q, (double)(x->numel / x->shape[0]), eps, mean, rstd);
}

int mt_groupnorm1_stats(Ctx *c, Tensor *x, float eps, float *mean, float *rstd) {
    if (c->failed || !x) return -1;
    if (x->ndim < 2) {
        char sx[96];
        mt_fail(c, "groupnorm1_stats", "x %s: need a sample axis first", mt_shape_str(x, sx, sizeof sx));
        return -1;
    }
    if (mt_check_eps(c, "groupnorm1_stats", x, eps)) return -1;
    groupnorm1_stats(c, x, eps, mean, rstd);
    return 0;
}

int mt_norm_stats(Ctx *c, const char *op, Tensor *x, MtNormKind kind, const Tensor *w, const Tensor *b, float eps,
                  float *mean, float *rstd) {
    if (c->failed || !x) return -1;
    if (kind != MT_NORM_LAYER && kind != MT_NORM_GROUP1) {
        mt_fail(c, op, "norm kind %d: only LayerNorm and GroupNorm(1) have statistics", (int)kind);
        return -1;
    }
    int groupnorm = kind == MT_NORM_GROUP1;
    if (check_affine(c, op, x, w, b, 1, groupnorm ? 2 : 1) || mt_check_eps(c, op, x, eps)) return -1;
    if (groupnorm) {
        groupnorm1_stats(c, x, eps, mean, rstd);
        return 0;
    }
    size_t rows = mt_rows(x);
    int C = mt_last(x);
#pragma omp parallel for if (x->numel >= PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) row_stats(x->data + r * C, C, eps, &mean[r], &rstd[r]);
    return 0;
}

void mt_norm_apply(MtNormKind kind, const Tensor *x, const Tensor *w, const Tensor *b, const float *mean,
                   const float *rstd, float *y, uint16_t *y16) {
    int groupnorm = kind == MT_NORM_GROUP1;
    size_t rows = mt_rows(x), rps = groupnorm ? rows / (size_t)x->shape[0] : 1;
    int C = mt_last(x);
    const float *pw = w ? w->data : NULL, *pb = b ? b->data : NULL;
    enum { RUN = 512 }; /* bf16: a run through an fp32 buffer in L1 */
#pragma omp parallel for if (x->numel >= PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x->data + r * C;
        float m = mean[r / rps], rs = rstd[r / rps], tmp[RUN];
        if (!y16) {
            norm_out_row(y + r * C, xr, m, rs, pw, pb, C);
            continue;
        }
        for (int j0 = 0; j0 < C; j0 += RUN) {
            int n = C - j0 < RUN ? C - j0 : RUN;
            norm_out_row(tmp, xr + j0, m, rs, pw ? pw + j0 : NULL, pb ? pb + j0 : NULL, n);
            mt_bf16_from_f32(y16 + r * C + j0, tmp, (size_t)n);
        }
    }
}

static void groupnorm1_backward(Ctx *c, Node *n) {
    const NormSaved *s = n->saved;
    groupnorm1_grad(c, n->in[0], n->in[1], n->in[2], s->mean, s->rstd, n->out->grad);
}

void mt_norm_backward(Ctx *c, MtNormKind kind, Tensor *x, Tensor *w, Tensor *b, const float *mean, const float *rstd,
                      const float *dy) {
    if (kind == MT_NORM_GROUP1) groupnorm1_grad(c, x, w, b, mean, rstd, dy);
    else layernorm_grad(c, x, w, b, mean, rstd, dy);
}

Tensor *mt_groupnorm1(Ctx *c, Tensor *x, Tensor *w, Tensor *b, float eps) {
    if (c->failed || !x) return NULL;
    if (check_affine(c, "groupnorm1", x, w, b, 1, 2)) return NULL;
    if (mt_check_eps(c, "groupnorm1", x, eps)) return NULL;
    Tensor *y = mt_new(c, x->ndim, x->shape);
    if (!y) return NULL;
    int B = x->shape[0], C = mt_last(x);
    size_t rows = mt_rows(x), rps = rows / B;
    float *mean = arena_alloc(&c->arena, 2 * (size_t)B * sizeof(float)), *rstd = mean + B;
    const float *pw = w ? w->data : NULL, *pb = b ? b->data : NULL;
    if (gn1_by_sample(x)) {
        /* A sample's statistics, then its output while it is in L2. */
#pragma omp parallel for if (x->numel >= PAR_MIN) schedule(static)
        for (int s = 0; s < B; s++) {
            size_t r0 = (size_t)s * rps;
            sample_stats(x, r0, rps, eps, &mean[s], &rstd[s]);
            for (size_t r = r0; r < r0 + rps; r++)
                norm_out_row(y->data + r * C, x->data + r * C, mean[s], rstd[s], pw, pb, C);
        }
    } else {
        groupnorm1_stats(c, x, eps, mean, rstd);
        /* Normalise and apply the per-channel affine. */
#pragma omp parallel for if (x->numel >= PAR_MIN) schedule(static)
        for (size_t r = 0; r < rows; r++)
            norm_out_row(y->data + r * C, x->data + r * C, mean[r / rps], rstd[r / rps], pw, pb, C);
    }
    Tensor *in[3] = {x, w, b};
    if (mt_needs_grad(c, in, 3)) {
        Node *n = mt_record(c, "groupnorm1", groupnorm1_backward, y, in, 3);
        n->overwrites = 1; /* x */
        mt_save(c, n, &(NormSaved){mean, rstd}, sizeof(NormSaved));
    }
    return y;
}

/* ---- RMSNorm over the last axis: y = x * rsqrt(mean(x^2) + eps) * w ---- */

/* What an rmsnorm node keeps: 1 / rms per row. */
typedef struct RmsNormSaved {
    const float *rstd;
} RmsNormSaved;

static void rmsnorm_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *w = n->in[1];
    const float *dy = n->out->grad, *rstd = ((const RmsNormSaved *)n->saved)->rstd;
    size_t rows = mt_rows(x);
    int C = mt_last(x);
    const float *pw = mt_data_or_ones(c, w, C);
    int want_dx = x->requires_grad, want_w = w && w->requires_grad;
    Partials p = partials_new(c, 1, C);
    float *gx = x->grad;
#pragma omp parallel if (x->numel >= PAR_MIN)
    {
        double *pdw = p.buf + (size_t)omp_get_thread_num() * p.stride;
#pragma omp for schedule(static)
        for (size_t r = 0; r < rows; r++) {
            const float *xr = x->data + r * C, *g = dy + r * C;
            float rs = rstd[r];
            if (want_w) {
#pragma omp simd
                for (int j = 0; j < C; j++) pdw[j] += (double)g[j] * (xr[j] * rs);
            }
            if (!want_dx) continue;
            double sgx = 0;
#pragma omp simd reduction(+ : sgx)
            for (int j = 0; j < C; j++) sgx += (double)(g[j] * pw[j]) * (xr[j] * rs);
            float mgx = (float)(sgx / C);
            float *dx = gx + r * C;
#pragma omp simd
            for (int j = 0; j < C; j++) dx[j] += rs * (g[j] * pw[j] - xr[j] * rs * mgx);
        }
    }
    partials_flush(&p, 0, C, want_w ? w->grad : NULL);
}

Tensor *mt_rmsnorm(Ctx *c, Tensor *x, Tensor *w, float eps) {
    if (c->failed || !x) return NULL;
    if (check_affine(c, "rmsnorm", x, w, NULL, 0, 1)) return NULL;
    if (mt_check_eps(c, "rmsnorm", x, eps)) return NULL;
    Tensor *y = mt_new(c, x->ndim, x->shape);
    if (!y) return NULL;
    size_t rows = mt_rows(x);
    int C = mt_last(x);
    float *rstd = arena_alloc(&c->arena, rows * sizeof(float));
    const float *pw = w ? w->data : NULL;
#pragma omp parallel for if (x->numel >= PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x->data + r * C;
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < C; j++) s += (double)xr[j] * xr[j];
        rstd[r] = (float)(1.0 / sqrt(s / C + eps));
        norm_out_row(y->data + r * C, xr, 0.0f, rstd[r], pw, NULL, C);
    }
    Tensor *in[2] = {x, w};
    if (mt_needs_grad(c, in, 2)) {
        Node *n = mt_record(c, "rmsnorm", rmsnorm_backward, y, in, 2);
        mt_save(c, n, &(RmsNormSaved){rstd}, sizeof(RmsNormSaved));
    }
    return y;
}
