/* Layout ops: NCHW <-> NHWC, reshape (no copy) and swapping axes 1 and 2.
 * All three permutations are one primitive: dst[a, c, b, r] (+)= src[a, b, c, r]. */
#include "core/ops.h"
#include "core/op_util.h"
#include <string.h>

/* Below this many elements of work a loop runs on one thread: waking the team costs more. */
#define PAR_MIN 32768

#define TILE 32

/* dst (A, Cd, Bd, R) = or += permutation of src (A, Bd, Cd, R). */
static void permute12(float *dst, const float *src, size_t A, size_t Bd, size_t Cd, size_t R, int add) {
    if (R == 1) {
        /* batched 2-D transpose in cache tiles; every tile owns its destination block */
        size_t tb = (Bd + TILE - 1) / TILE, tc = (Cd + TILE - 1) / TILE;
        size_t ntiles = A * tb * tc;
#pragma omp parallel for schedule(static) if ((size_t)(A * Bd * Cd * R) >= PAR_MIN)
        for (size_t t = 0; t < ntiles; t++) {
            size_t a = t / (tb * tc), rem = t % (tb * tc);
            size_t b0 = (rem / tc) * TILE, c0 = (rem % tc) * TILE;
            size_t b1 = b0 + TILE < Bd ? b0 + TILE : Bd, c1 = c0 + TILE < Cd ? c0 + TILE : Cd;
            const float *s = src + a * Bd * Cd;
            float *d = dst + a * Bd * Cd;
            for (size_t c = c0; c < c1; c++) {
                float *drow = d + c * Bd;
                if (add)
                    for (size_t b = b0; b < b1; b++) drow[b] += s[b * Cd + c];
                else
                    for (size_t b = b0; b < b1; b++) drow[b] = s[b * Cd + c];
            }
        }
        return;
    }
    size_t nrows = A * Bd * Cd;
#pragma omp parallel for schedule(static) if ((size_t)(A * Bd * Cd * R) >= PAR_MIN)
    for (size_t i = 0; i < nrows; i++) { /* i indexes destination rows (a, c, b) */
        size_t a = i / (Bd * Cd), rem = i % (Bd * Cd);
        size_t c = rem / Bd, b = rem % Bd;
        const float *s = src + ((a * Bd + b) * Cd + c) * R;
        float *d = dst + i * R;
        if (add)
            for (size_t r = 0; r < R; r++) d[r] += s[r];
        else
            memcpy(d, s, R * sizeof(float));
    }
}

/* ---- transpose12: (A, B, C, rest) -> (A, C, B, rest) ---- */

static size_t rest_of(const Tensor *t) {
    size_t r = 1;
    for (int i = 3; i < t->ndim; i++) r *= (size_t)t->shape[i];
    return r;
}

static void transpose12_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *y = n->out;
    if (!x->requires_grad) return;
    /* dx[a, b, c, r] += dy[a, c, b, r]: y is (A, C, B, R), permute it back */
    permute12(x->grad, y->grad, (size_t)x->shape[0], (size_t)x->shape[2], (size_t)x->shape[1], rest_of(x), 1);
}

Tensor *mt_transpose12(Ctx *c, Tensor *x) {
    if (c->failed || !x) return NULL;
    char sx[96];
    if (x->ndim < 3)
        return mt_fail(c, "transpose12", "x %s: need at least 3 axes (A, B, C, ...)", mt_shape_str(x, sx, sizeof sx));
    int shape[MT_MAXDIM];
    memcpy(shape, x->shape, sizeof shape);
    shape[1] = x->shape[2];
    shape[2] = x->shape[1];
    Tensor *y = mt_new(c, x->ndim, shape);
    if (!y) return NULL;
    permute12(y->data, x->data, (size_t)x->shape[0], (size_t)x->shape[1], (size_t)x->shape[2], rest_of(x), 0);
    if (mt_needs_grad(c, &x, 1)) mt_record(c, "transpose12", transpose12_backward, y, &x, 1);
    return y;
}

/* ---- NCHW <-> NHWC ---- */

static void nchw_to_nhwc_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *y = n->out; /* x (B,C,H,W), y (B,H,W,C) */
    if (!x->requires_grad) return;
    size_t B = x->shape[0], C = x->shape[1], HW = (size_t)x->shape[2] * x->shape[3];
    permute12(x->grad, y->grad, B, HW, C, 1, 1);
}

Tensor *mt_nchw_to_nhwc(Ctx *c, Tensor *x) {
    if (c->failed || !x) return NULL;
    char sx[96];
    if (x->ndim != 4)
        return mt_fail(c, "nchw_to_nhwc", "x %s: need (B, C, H, W)", mt_shape_str(x, sx, sizeof sx));
    int B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    Tensor *y = mt_new4(c, B, H, W, C);
    if (!y) return NULL;
    permute12(y->data, x->data, (size_t)B, (size_t)C, (size_t)H * W, 1, 0);
    if (mt_needs_grad(c, &x, 1)) mt_record(c, "nchw_to_nhwc", nchw_to_nhwc_backward, y, &x, 1);
    return y;
}

static void nhwc_to_nchw_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *y = n->out; /* x (B,H,W,C), y (B,C,H,W) */
    if (!x->requires_grad) return;
    size_t B = x->shape[0], HW = (size_t)x->shape[1] * x->shape[2], C = x->shape[3];
    permute12(x->grad, y->grad, B, C, HW, 1, 1);
}

Tensor *mt_nhwc_to_nchw(Ctx *c, Tensor *x) {
    if (c->failed || !x) return NULL;
    char sx[96];
    if (x->ndim != 4)
        return mt_fail(c, "nhwc_to_nchw", "x %s: need (B, H, W, C)", mt_shape_str(x, sx, sizeof sx));
    int B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    Tensor *y = mt_new4(c, B, C, H, W);
    if (!y) return NULL;
    permute12(y->data, x->data, (size_t)B, (size_t)H * W, (size_t)C, 1, 0);
    if (mt_needs_grad(c, &x, 1)) mt_record(c, "nhwc_to_nchw", nhwc_to_nchw_backward, y, &x, 1);
    return y;
}

/* ---- reshape: a new header over the same data; its grad is a buffer of its own ---- */

static void reshape_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0];
    if (x->requires_grad) grad_pass_through(c, n, x); /* the node overwrites */
}

/* One axis may be -1: inferred from the element count. */
Tensor *mt_reshape(Ctx *c, Tensor *x, int ndim, const int *shape) {
    if (c->failed || !x) return NULL;
    char sx[96], ss[96];
    if (ndim < 1 || ndim > MT_MAXDIM || !shape)
        return mt_fail(c, "reshape", "x %s: target rank %d outside 1..%d", mt_shape_str(x, sx, sizeof sx), ndim,
                       MT_MAXDIM);
    int s[MT_MAXDIM];
    int infer = -1;
    size_t known = 1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1 && infer < 0) infer = i;
        else if (s[i] <= 0)
            return mt_fail(c, "reshape", "x %s to %s: dimensions must be positive (one may be -1)",
                           mt_shape_str(x, sx, sizeof sx), mt_dims_str(ndim, shape, ss, sizeof ss));
        else known *= (size_t)s[i];
    }
    if (infer >= 0) {
        if (known == 0 || x->numel % known != 0 || x->numel / known > (size_t)0x7fffffff)
            return mt_fail(c, "reshape", "x %s (%zu elements) cannot be viewed as %s", mt_shape_str(x, sx, sizeof sx),
                           x->numel, mt_dims_str(ndim, shape, ss, sizeof ss));
        s[infer] = (int)(x->numel / known);
        known *= (size_t)s[infer];
    }
    if (known != x->numel)
        return mt_fail(c, "reshape", "x %s (%zu elements) cannot be viewed as %s (%zu elements)",
                       mt_shape_str(x, sx, sizeof sx), x->numel, mt_dims_str(ndim, shape, ss, sizeof ss), known);
    Tensor *y = arena_calloc(&c->arena, sizeof *y);
    y->ndim = ndim;
    memcpy(y->shape, s, (size_t)ndim * sizeof *s);
    y->numel = x->numel;
    y->data = x->data;
    y->name = "reshape";
    if (mt_needs_grad(c, &x, 1)) mt_record(c, "reshape", reshape_backward, y, &x, 1)->overwrites = 1; /* x */
    return y;
}
