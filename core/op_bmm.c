/* Batched matmul over all leading axes: one GEMM per batch entry, the
 * transposes expressed with the GEMM's flags (nothing is copied).
 *   C (M, N) = op(A) op(B), op(A) = A (M, K) or A^T with A stored (K, M) if ta,
 *                           op(B) = B (K, N) or B^T with B stored (N, K) if tb. */
#include "core/ops.h"
#include "core/gemm.h"
#include <string.h>

#define TR(t) ((t) ? MT_TRANS : MT_NOTRANS)

static void bmm_dims(const Tensor *a, const Tensor *b, int ta, int tb, int *M, int *N, int *K, size_t *batch) {
    int nd = a->ndim;
    *M = ta ? a->shape[nd - 1] : a->shape[nd - 2];
    *K = ta ? a->shape[nd - 2] : a->shape[nd - 1];
    *N = tb ? b->shape[nd - 2] : b->shape[nd - 1];
    *batch = a->numel / ((size_t)a->shape[nd - 1] * a->shape[nd - 2]);
}

/* What a bmm node keeps: whether a and b enter transposed. */
typedef struct BmmSaved {
    int ta, tb;
} BmmSaved;

static void bmm_backward(Ctx *c, Node *n) {
    Tensor *a = n->in[0], *b = n->in[1], *y = n->out;
    const BmmSaved *s = n->saved;
    int ta = s->ta, tb = s->tb;
    int M, N, K;
    size_t batch;
    bmm_dims(a, b, ta, tb, &M, &N, &K, &batch);
    int lda = ta ? M : K, ldb = tb ? K : N;
    size_t sa = (size_t)M * K, sb = (size_t)K * N, sy = (size_t)M * N;
    for (size_t i = 0; i < batch; i++) {
        const float *dy = y->grad + i * sy;
        if (a->requires_grad) {
            float *da = a->grad + i * sa;
            if (!ta) /* dA (M,K) = dY op(B)^T */
                mt_gemm_run(&(MtGemm){.precision = c->precision, .transB = TR(!tb), .M = M, .N = K, .K = N,
                                      .alpha = 1.0f, .A = dy, .lda = N, .B = b->data + i * sb, .ldb = ldb,
                                      .beta = 1.0f, .C = da, .ldc = K});
            else /* dA stored (K,M) = op(B) dY^T */
                mt_gemm_run(&(MtGemm){.precision = c->precision, .transA = TR(tb), .transB = MT_TRANS, .M = K,
                                      .N = M, .K = N, .alpha = 1.0f, .A = b->data + i * sb, .lda = ldb, .B = dy,
                                      .ldb = N, .beta = 1.0f, .C = da, .ldc = M});
        }
        if (b->requires_grad) {
            float *db = b->grad + i * sb;
            if (!tb) /* dB (K,N) = op(A)^T dY */
                mt_gemm_run(&(MtGemm){.precision = c->precision, .transA = TR(!ta), .M = K, .N = N, .K = M,
                                      .alpha = 1.0f, .A = a->data + i * sa, .lda = lda, .B = dy, .ldb = N,
                                      .beta = 1.0f, .C = db, .ldc = N});
            else /* dB stored (N,K) = dY^T op(A) */
                mt_gemm_run(&(MtGemm){.precision = c->precision, .transA = MT_TRANS, .transB = TR(ta), .M = N,
                                      .N = K, .K = M, .alpha = 1.0f, .A = dy, .lda = N, .B = a->data + i * sa,
                                      .ldb = lda, .beta = 1.0f, .C = db, .ldc = K});
        }
    }
}

Tensor *mt_bmm(Ctx *c, Tensor *a, Tensor *b, int ta, int tb) {
    if (c->failed || !a || !b) return NULL;
    ta = ta != 0;
    tb = tb != 0;
    char sa[96], sb[96];
    int ok = a->ndim >= 2 && a->ndim == b->ndim;
    for (int i = 0; ok && i < a->ndim - 2; i++) ok = a->shape[i] == b->shape[i];
    int M = 0, N = 0, K = 0;
    size_t batch = 0;
    if (ok) {
        bmm_dims(a, b, ta, tb, &M, &N, &K, &batch);
        ok = (tb ? b->shape[b->ndim - 1] : b->shape[b->ndim - 2]) == K;
    }
    if (!ok)
        return mt_fail(c, "bmm", "a %s%s (%s), b %s%s (%s): need a (..., M, K), b (..., K, N) with equal leading axes",
                       mt_shape_str(a, sa, sizeof sa), ta ? " transposed" : "", a->name ? a->name : "unnamed",
                       mt_shape_str(b, sb, sizeof sb), tb ? " transposed" : "", b->name ? b->name : "unnamed");
    int shape[MT_MAXDIM];
    memcpy(shape, a->shape, sizeof shape);
    shape[a->ndim - 2] = M;
    shape[a->ndim - 1] = N;
    Tensor *y = mt_new(c, a->ndim, shape);
    if (!y) return NULL;
    int lda = ta ? M : K, ldb = tb ? K : N;
    for (size_t i = 0; i < batch; i++)
        mt_gemm_run(&(MtGemm){.precision = c->precision, .transA = TR(ta), .transB = TR(tb), .M = M, .N = N, .K = K,
                              .alpha = 1.0f, .A = a->data + i * (size_t)M * K, .lda = lda,
                              .B = b->data + i * (size_t)K * N, .ldb = ldb, .C = y->data + i * (size_t)M * N,
                              .ldc = N});
    Tensor *in[2] = {a, b};
    if (mt_needs_grad(c, in, 2)) {
        Node *nd = mt_record(c, "bmm", bmm_backward, y, in, 2);
        mt_save(c, nd, &(BmmSaved){.ta = ta, .tb = tb}, sizeof(BmmSaved));
    }
    return y;
}
