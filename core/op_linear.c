/* GEMM-backed ops: linear over the last axis and linear over the token axis.
 * Transposes are expressed with sgemm's flags; nothing is copied. */
#include "core/ops.h"
#include "core/op_util.h"
#include "core/gemm.h"
#include <string.h>


/* ---- linear: y (M, N) = x (M, K) @ w^T (K, N) + b ---- */

static void linear_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out;
    int K = mt_last(x), N = mt_last(y);
    int M = (int)mt_rows(x);
    if (x->requires_grad)
        mt_gemm(c->precision, MT_NOTRANS, MT_NOTRANS, M, K, N, 1.0f, y->grad, N, w->data, K,
                    1.0f, x->grad, K);
    if (w->requires_grad)
        mt_gemm(c->precision, MT_TRANS, MT_NOTRANS, N, K, M, 1.0f, y->grad, N, x->data, K,
                    1.0f, w->grad, K);
    if (b && b->requires_grad) colsum_add(b->grad, y->grad, (size_t)M, N);
}

/* Shape check and output of a linear layer; NULL after recording the error. */
static Tensor *linear_out(Ctx *c, const char *op, Tensor *x, Tensor *w, Tensor *b) {
    if (c->failed || !x || !w) return NULL;
    char sx[96], sw[96], sb[96];
    if (w->ndim != 2 || mt_last(x) != w->shape[1] || (b && (b->ndim != 1 || b->shape[0] != w->shape[0])))
        return mt_fail(c, op, "x %s, weight %s, bias %s: need x (..., in), weight (out, in), bias (out)%s%s",
                       mt_shape_str(x, sx, sizeof sx), mt_shape_str(w, sw, sizeof sw),
                       b ? mt_shape_str(b, sb, sizeof sb) : "none", w->name ? " for " : "", w->name ? w->name : "");
    int shape[MT_MAXDIM];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = w->shape[0];
    return mt_new(c, x->ndim, shape);
}

/* y = act(x @ w^T + b) with bias and activation in the GEMM's epilogue. */
static void linear_gemm(Ctx *c, Tensor *x, Tensor *w, Tensor *b, mt_act_tile act, Tensor *y) {
    int K = w->shape[1], N = w->shape[0];
    MtEpilogue ep = {b ? b->data : NULL, NULL, act};
    mt_gemm_ep(c->precision, MT_NOTRANS, MT_TRANS, (int)mt_rows(x), N, K, 1.0f, x->data, K, w->data, K, 0.0f, y->data,
               N, &ep);
}

Tensor *mt_linear(Ctx *c, Tensor *x, Tensor *w, Tensor *b) {
    Tensor *y = linear_out(c, "linear", x, w, b);
    if (!y) return NULL;
    linear_gemm(c, x, w, b, NULL, y);
    Tensor *in[3] = {x, w, b};
    if (mt_needs_grad(c, in, 3)) mt_record(c, "linear", linear_backward, y, in, 3);
    return y;
}

Tensor *mt_linear_act(Ctx *c, Tensor *x, Tensor *w, Tensor *b, mt_act act) {
    Tensor *in[3] = {x, w, b};
    if (c->failed || !x || !w) return NULL;
    if (mt_needs_grad(c, in, 3)) { /* backward needs the pre-activation: two recorded ops */
        Tensor *h = mt_linear(c, x, w, NULL);
        return b ? mt_bias_act(c, h, b, act) : mt_activation(c, h, act);
    }
    if (!mt_act_valid(act))
        return mt_fail(c, "linear_act", "unknown activation %d", (int)act);
    Tensor *y = linear_out(c, "linear_act", x, w, b);
    if (!y) return NULL;
    linear_gemm(c, x, w, b, mt_act_tile_fn(act), y);
    return y;
}

/* ---- token mixing: y[b] (N2, C) = w (N2, N) @ x[b] (N, C) + bias[:, None] ---- */

static void token_linear_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *w = n->in[1], *bias = n->in[2], *y = n->out;
    int B = x->shape[0], N = x->shape[1], C = x->shape[2], N2 = w->shape[0];
    if (x->requires_grad)
        mt_gemm_batched(c->precision, MT_TRANS, MT_NOTRANS, N, C, N2, 1.0f, w->data, N, 0, y->grad, C, (long)N2 * C,
                        1.0f, x->grad, C, (long)N * C, B);
    /* dW = sum_b dY_b (N2, C) @ X_b^T (C, N). As one GEMM with K = B*C it runs at full
     * speed, where B small GEMMs into the same buffer would each pay a fork/join:
     * lay dY out as (N2, B*C) and X as (N, B*C) (arena copies, cheap next to the GEMM). */
    if (w->requires_grad) {
        size_t BC = (size_t)B * C;
        ArenaMark mark = arena_mark(&c->arena);
        float *dyp = arena_alloc(&c->arena, (size_t)N2 * BC * sizeof(float));
        float *xp = arena_alloc(&c->arena, (size_t)N * BC * sizeof(float));
#pragma omp parallel for schedule(static) if ((size_t)(N + N2) * BC >= MT_PAR_MIN)
        for (int r = 0; r < N + N2; r++) {
            const float *src = r < N2 ? y->grad + (size_t)r * C : x->data + (size_t)(r - N2) * C;
            float *dst = r < N2 ? dyp + (size_t)r * BC : xp + (size_t)(r - N2) * BC;
            size_t sstride = r < N2 ? (size_t)N2 * C : (size_t)N * C;
            for (int b = 0; b < B; b++) memcpy(dst + (size_t)b * C, src + (size_t)b * sstride, (size_t)C * sizeof(float));
        }
        mt_gemm(c->precision, MT_NOTRANS, MT_TRANS, N2, N, (int)BC, 1.0f, dyp, (int)BC, xp, (int)BC, 1.0f, w->grad, N);
        arena_release(&c->arena, mark);
    }
    if (bias && bias->requires_grad) {
        float *db = bias->grad;
#pragma omp parallel for schedule(static)
        for (int j = 0; j < N2; j++) {
            double s = 0;
            for (int b = 0; b < B; b++) {
                const float *row = y->grad + ((size_t)b * N2 + j) * C;
                for (int k = 0; k < C; k++) s += row[k];
            }
            db[j] += (float)s;
        }
    }
}

Tensor *mt_token_linear(Ctx *c, Tensor *x, Tensor *w, Tensor *bias) {
    if (c->failed || !x || !w) return NULL;
    char sx[96], sw[96], sb[96];
    if (x->ndim != 3 || w->ndim != 2 || w->shape[1] != x->shape[1] ||
        (bias && (bias->ndim != 1 || bias->shape[0] != w->shape[0])))
        return mt_fail(c, "token_linear", "x %s, weight %s, bias %s: need x (B, N, C), weight (N2, N), bias (N2)%s%s",
                       mt_shape_str(x, sx, sizeof sx), mt_shape_str(w, sw, sizeof sw),
                       bias ? mt_shape_str(bias, sb, sizeof sb) : "none", w->name ? " for " : "",
                       w->name ? w->name : "");
    int B = x->shape[0], N = x->shape[1], C = x->shape[2], N2 = w->shape[0];
    Tensor *y = mt_new3(c, B, N2, C);
    if (!y) return NULL;
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int r = 0; r < B * N2; r++) {
            float v = bias->data[r % N2];
            float *row = y->data + (size_t)r * C;
            for (int k = 0; k < C; k++) row[k] = v;
        }
    }
    /* one GEMM per sample, the weight shared (stride 0) */
    mt_gemm_batched(c->precision, MT_NOTRANS, MT_NOTRANS, N2, C, N, 1.0f, w->data, N, 0, x->data, C, (long)N * C,
                    bias ? 1.0f : 0.0f, y->data, C, (long)N2 * C, B);
    Tensor *in[3] = {x, w, bias};
    if (mt_needs_grad(c, in, 3)) mt_record(c, "token_linear", token_linear_backward, y, in, 3);
    return y;
}
