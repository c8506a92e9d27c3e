/* Element-wise and per-channel ops (channel = last axis): add, mul, bias add,
 * layer scale, ResMLP's affine, and the fused residual res + gamma * x.
 *
 * Per-channel parameter gradients are sums over all rows. Each thread sums its
 * own block of rows into a private accumulator (float over runs of 16 rows, then
 * double: Partials, arena memory); the
 * partials are added in thread order, so results are deterministic for a given
 * thread count and each parameter gradient element receives a single +=. */
#include "core/ops.h"
#include "core/op_util.h"
#include <omp.h>
#include <stdio.h>
#include <string.h>

#define PAR_MIN 16384 /* below this many elements a parallel region costs more than it saves */

/* ---- helpers ---- */


/* Per-channel sums of dy (-> sum_dy) and dy * x (-> sum_dyx) over all rows, added into
 * the given gradient buffers (either may be NULL). One pass over dy. */
static void chan_reduce(Ctx *c, const float *dy, const float *x, size_t rows, int C, float *sum_dyx,
                        float *sum_dy) {
    if (!sum_dyx && !sum_dy) return;
    Partials p = partials_new(c, 2, C);
    int want_x = sum_dyx != NULL, want_1 = sum_dy != NULL;
#pragma omp parallel if (rows * (size_t)C >= PAR_MIN)
    {
        int t = omp_get_thread_num(), run = 0;
        float *px = partials_stage(&p, t), *p1 = px + C;
#pragma omp for schedule(static)
        for (size_t r = 0; r < rows; r++) {
            const float *g = dy + r * C, *xr = x ? x + r * C : NULL;
            if (want_x) {
#pragma omp simd
                for (int j = 0; j < C; j++) px[j] += g[j] * xr[j];
            }
            if (want_1) {
#pragma omp simd
                for (int j = 0; j < C; j++) p1[j] += g[j];
            }
            partials_commit(&p, t, &run, 0);
        }
        partials_commit(&p, t, &run, 1);
    }
    partials_flush(&p, 0, C, sum_dyx);
    partials_flush(&p, 1, C, sum_dy);
}

/* Output of the same shape as x. */
static Tensor *like(Ctx *c, const Tensor *x) { return mt_new(c, x->ndim, x->shape); }

/* Is v a (C) vector matching x's last axis? */
static int is_chan_vec(const Tensor *v, const Tensor *x) { return v->ndim == 1 && v->shape[0] == mt_last(x); }

static void *fail_same(Ctx *c, const char *op, const char *an, const Tensor *a, const char *bn, const Tensor *b) {
    char sa[96], sb[96], na[96], nb[96];
    return mt_fail(c, op, "%s %s%s and %s %s%s must have the same shape", an, mt_shape_str(a, sa, sizeof sa),
                   mt_pname(a, na, sizeof na), bn, mt_shape_str(b, sb, sizeof sb), mt_pname(b, nb, sizeof nb));
}

/* ---- add: y = a + b ---- */

static void add_backward(Ctx *c, Node *n) {
    Tensor *a = n->in[0], *b = n->in[1];
    const float *dy = n->out->grad;
    size_t N = n->out->numel;
    /* a and b may be the same tensor: two separate += keep both contributions. */
    if (a->requires_grad) {
        float *ga = a->grad;
#pragma omp parallel for simd if (N >= PAR_MIN) schedule(static)
        for (size_t i = 0; i < N; i++) ga[i] += dy[i];
    }
    if (b->requires_grad) {
        float *gb = b->grad;
#pragma omp parallel for simd if (N >= PAR_MIN) schedule(static)
        for (size_t i = 0; i < N; i++) gb[i] += dy[i];
    }
}

Tensor *mt_add(Ctx *c, Tensor *a, Tensor *b) {
    if (c->failed || !a || !b) return NULL;
    if (!mt_same_shape(a, b)) return fail_same(c, "add", "a", a, "b", b);
    Tensor *y = like(c, a);
    if (!y) return NULL;
    const float *pa = a->data, *pb = b->data;
    float *restrict py = y->data;
    size_t N = y->numel;
#pragma omp parallel for simd if (N >= PAR_MIN) schedule(static)
    for (size_t i = 0; i < N; i++) py[i] = pa[i] + pb[i];
    Tensor *in[2] = {a, b};
    if (mt_needs_grad(c, in, 2)) mt_record(c, "add", add_backward, y, in, 2);
    return y;
}

/* ---- mul: y = a * b ---- */

static void mul_backward(Ctx *c, Node *n) {
    Tensor *a = n->in[0], *b = n->in[1];
    const float *dy = n->out->grad, *pa = a->data, *pb = b->data;
    size_t N = n->out->numel;
    if (a->requires_grad) {
        float *ga = a->grad;
#pragma omp parallel for simd if (N >= PAR_MIN) schedule(static)
        for (size_t i = 0; i < N; i++) ga[i] += dy[i] * pb[i];
    }
    if (b->requires_grad) {
        float *gb = b->grad;
#pragma omp parallel for simd if (N >= PAR_MIN) schedule(static)
        for (size_t i = 0; i < N; i++) gb[i] += dy[i] * pa[i];
    }
}

Tensor *mt_mul(Ctx *c, Tensor *a, Tensor *b) {
    if (c->failed || !a || !b) return NULL;
    if (!mt_same_shape(a, b)) return fail_same(c, "mul", "a", a, "b", b);
    Tensor *y = like(c, a);
    if (!y) return NULL;
    const float *pa = a->data, *pb = b->data;
    float *restrict py = y->data;
    size_t N = y->numel;
#pragma omp parallel for simd if (N >= PAR_MIN) schedule(static)
    for (size_t i = 0; i < N; i++) py[i] = pa[i] * pb[i];
    Tensor *in[2] = {a, b};
    if (mt_needs_grad(c, in, 2)) mt_record(c, "mul", mul_backward, y, in, 2);
    return y;
}

/* ---- bias_add: y[r, j] = x[r, j] + bias[j] ---- */

static void bias_add_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *bias = n->in[1];
    const float *dy = n->out->grad;
    size_t N = x->numel;
    if (x->requires_grad) {
        float *gx = x->grad;
#pragma omp parallel for simd if (N >= PAR_MIN) schedule(static)
        for (size_t i = 0; i < N; i++) gx[i] += dy[i];
    }
    if (bias->requires_grad) chan_reduce(c, dy, NULL, mt_rows(x), mt_last(x), NULL, bias->grad);
}

Tensor *mt_bias_add(Ctx *c, Tensor *x, Tensor *bias) {
    if (c->failed || !x || !bias) return NULL;
    if (!is_chan_vec(bias, x)) return mt_fail_chan(c, "bias_add", x, "bias", bias);
    Tensor *y = like(c, x);
    if (!y) return NULL;
    size_t rows = mt_rows(x);
    int C = mt_last(x);
    const float *px = x->data, *pb = bias->data;
    float *py = y->data;
#pragma omp parallel for if (x->numel >= PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = px + r * C;
        float *restrict yr = py + r * C;
#pragma omp simd
        for (int j = 0; j < C; j++) yr[j] = xr[j] + pb[j];
    }
    Tensor *in[2] = {x, bias};
    if (mt_needs_grad(c, in, 2)) mt_record(c, "bias_add", bias_add_backward, y, in, 2);
    return y;
}

/* ---- scale (layer scale): y[r, j] = x[r, j] * gamma[j] ---- */

static void scale_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *gamma = n->in[1];
    const float *dy = n->out->grad, *pg = gamma->data;
    size_t rows = mt_rows(x);
    int C = mt_last(x);
    if (x->requires_grad) {
        float *gx = x->grad;
#pragma omp parallel for if (x->numel >= PAR_MIN) schedule(static)
        for (size_t r = 0; r < rows; r++) {
#pragma omp simd
            for (int j = 0; j < C; j++) gx[r * C + j] += dy[r * C + j] * pg[j];
        }
    }
    if (gamma->requires_grad) chan_reduce(c, dy, x->data, rows, C, gamma->grad, NULL);
}

Tensor *mt_scale(Ctx *c, Tensor *x, Tensor *gamma) {
    if (c->failed || !x || !gamma) return NULL;
    if (!is_chan_vec(gamma, x)) return mt_fail_chan(c, "scale", x, "gamma", gamma);
    Tensor *y = like(c, x);
    if (!y) return NULL;
    size_t rows = mt_rows(x);
    int C = mt_last(x);
    const float *px = x->data, *pg = gamma->data;
    float *py = y->data;
#pragma omp parallel for if (x->numel >= PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = px + r * C;
        float *restrict yr = py + r * C;
#pragma omp simd
        for (int j = 0; j < C; j++) yr[j] = xr[j] * pg[j];
    }
    Tensor *in[2] = {x, gamma};
    if (mt_needs_grad(c, in, 2)) mt_record(c, "scale", scale_backward, y, in, 2);
    return y;
}

/* ---- affine (ResMLP Aff): y[r, j] = alpha[j] * x[r, j] + beta[j] ---- */

static void affine_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *alpha = n->in[1], *beta = n->in[2];
    const float *dy = n->out->grad, *pa = alpha->data;
    size_t rows = mt_rows(x);
    int C = mt_last(x);
    if (x->requires_grad) {
        float *gx = x->grad;
        int acc = mt_grad_accumulate(x); /* the node overwrites */
#pragma omp parallel for if (x->numel >= PAR_MIN) schedule(static)
        for (size_t r = 0; r < rows; r++) {
#pragma omp simd
            for (int j = 0; j < C; j++) GRAD_PUT(acc, gx[r * C + j], dy[r * C + j] * pa[j]);
        }
    }
    chan_reduce(c, dy, x->data, rows, C, alpha->requires_grad ? alpha->grad : NULL,
                beta->requires_grad ? beta->grad : NULL);
}

Tensor *mt_affine(Ctx *c, Tensor *x, Tensor *alpha, Tensor *beta) {
    if (c->failed || !x || !alpha || !beta) return NULL;
    if (!is_chan_vec(alpha, x)) return mt_fail_chan(c, "affine", x, "alpha", alpha);
    if (!is_chan_vec(beta, x)) return mt_fail_chan(c, "affine", x, "beta", beta);
    Tensor *y = like(c, x);
    if (!y) return NULL;
    size_t rows = mt_rows(x);
    int C = mt_last(x);
    const float *px = x->data, *pa = alpha->data, *pb = beta->data;
    float *py = y->data;
#pragma omp parallel for if (x->numel >= PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = px + r * C;
        float *restrict yr = py + r * C;
#pragma omp simd
        for (int j = 0; j < C; j++) yr[j] = pa[j] * xr[j] + pb[j];
    }
    Tensor *in[3] = {x, alpha, beta};
    if (mt_needs_grad(c, in, 3)) mt_record(c, "affine", affine_backward, y, in, 3)->overwrites = 1; /* x */
    return y;
}

/* ---- residual: y = res + gamma * x  (gamma (C) or NULL: y = res + x) ---- */

static void residual_backward(Ctx *c, Node *n) {
    Tensor *res = n->in[0], *x = n->in[1], *gamma = n->in[2];
    const float *dy = n->out->grad;
    size_t N = x->numel, rows = mt_rows(x);
    int C = mt_last(x);
    if (res->requires_grad) grad_pass_through(c, n, res); /* dy keeps its address: y's grad moves */
    if (x->requires_grad) {
        float *gx = x->grad;
        int acc = mt_grad_accumulate(x);
        if (gamma) {
            const float *pg = gamma->data;
#pragma omp parallel for if (N >= PAR_MIN) schedule(static)
            for (size_t r = 0; r < rows; r++) {
#pragma omp simd
                for (int j = 0; j < C; j++) GRAD_PUT(acc, gx[r * C + j], dy[r * C + j] * pg[j]);
            }
        } else {
#pragma omp parallel for simd if (N >= PAR_MIN) schedule(static)
            for (size_t i = 0; i < N; i++) GRAD_PUT(acc, gx[i], dy[i]);
        }
    }
    if (gamma && gamma->requires_grad) chan_reduce(c, dy, x->data, rows, C, gamma->grad, NULL);
}

Tensor *mt_residual(Ctx *c, Tensor *res, Tensor *x, Tensor *gamma) {
    if (c->failed || !res || !x) return NULL;
    if (!mt_same_shape(res, x)) return fail_same(c, "residual", "res", res, "x", x);
    if (gamma && !is_chan_vec(gamma, x)) return mt_fail_chan(c, "residual", x, "gamma", gamma);
    Tensor *y = like(c, x);
    if (!y) return NULL;
    size_t rows = mt_rows(x), N = x->numel;
    int C = mt_last(x);
    const float *pr = res->data, *px = x->data;
    float *py = y->data;
    if (gamma) {
        const float *pg = gamma->data;
#pragma omp parallel for if (N >= PAR_MIN) schedule(static)
        for (size_t r = 0; r < rows; r++) {
            const float *rr = pr + r * C, *xr = px + r * C;
            float *restrict yr = py + r * C;
#pragma omp simd
            for (int j = 0; j < C; j++) yr[j] = rr[j] + pg[j] * xr[j];
        }
    } else {
#pragma omp parallel for simd if (N >= PAR_MIN) schedule(static)
        for (size_t i = 0; i < N; i++) py[i] = pr[i] + px[i];
    }
    Tensor *in[3] = {res, x, gamma};
    if (mt_needs_grad(c, in, 3)) mt_record(c, "residual", residual_backward, y, in, 3)->overwrites = 3; /* res, x */
    return y;
}
