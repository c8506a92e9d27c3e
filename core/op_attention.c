/* Multi-head self-attention core on timm's fused qkv (B, N, 3C):
 * channel layout [q | k | v], each split into `heads` heads of D = C/heads, so
 * head h of q is qkv[b, :, h*D : (h+1)*D] (row stride 3C), of k at +C, of v at +2C.
 *
 *   S = q k^T * D^-1/2,  P = softmax(S) over keys,  out[b, :, h*D:(h+1)*D] = P v
 *
 * Every GEMM reads q/k/v in place with lda = 3C and writes the merged output
 * with ldc = C (no copies). P (B, heads, N, N) lives in the arena for backward.
 * Each pass is: a serial loop of sgemms, one OpenMP loop over all rows, a
 * serial loop of sgemms, so OpenBLAS never runs inside an OpenMP region. */
#include "core/ops.h"
#include "core/gemm.h"
#include <math.h>

/* Below this many elements of work a loop runs on one thread: waking the team costs more. */
#define PAR_MIN 32768

/* What an attention node keeps: the softmax probabilities (B * heads, N, N), heads, scale. */
typedef struct AttentionSaved {
    const float *probs;
    int heads;
    float scale;
} AttentionSaved;

static void attention_backward(Ctx *c, Node *n) {
    Tensor *qkv = n->in[0], *y = n->out;
    if (!qkv->requires_grad) return;
    const AttentionSaved *s = n->saved;
    int heads = s->heads;
    int B = qkv->shape[0], N = qkv->shape[1], C3 = qkv->shape[2], C = C3 / 3, D = C / heads;
    float scale = s->scale;
    const float *P = s->probs;
    size_t NN = (size_t)N * N;
    size_t nmat = (size_t)B * heads;
    ArenaMark mark = arena_mark(&c->arena);
    float *dS = arena_alloc(&c->arena, nmat * NN * sizeof(float));
    /* dP = dout v^T; dv += P^T dout */
    for (size_t m = 0; m < nmat; m++) {
        size_t b = m / heads, h = m % heads;
        const float *dO = y->grad + b * N * C + h * D;
        const float *v = qkv->data + b * N * C3 + 2 * C + h * D;
        float *dv = qkv->grad + b * N * C3 + 2 * C + h * D;
        mt_gemm_run(&(MtGemm){.precision = c->precision, .transB = MT_TRANS, .M = N, .N = N, .K = D, .alpha = 1.0f,
                              .A = dO, .lda = C, .B = v, .ldb = C3, .C = dS + m * NN, .ldc = N});
        mt_gemm_run(&(MtGemm){.precision = c->precision, .transA = MT_TRANS, .M = N, .N = D, .K = N, .alpha = 1.0f,
                              .A = P + m * NN, .lda = N, .B = dO, .ldb = C, .beta = 1.0f, .C = dv, .ldc = C3});
    }
    /* softmax backward in place: dS = P * (dP - sum(dP * P)) */
    size_t rows = nmat * N;
#pragma omp parallel for schedule(static) if ((size_t)(rows * N) >= PAR_MIN)
    for (size_t r = 0; r < rows; r++) {
        const float *p = P + r * N;
        float *g = dS + r * N;
        float dot = 0.0f;
        for (int j = 0; j < N; j++) dot += g[j] * p[j];
        for (int j = 0; j < N; j++) g[j] = p[j] * (g[j] - dot);
    }
    /* dq += scale dS k; dk += scale dS^T q */
    for (size_t m = 0; m < nmat; m++) {
        size_t b = m / heads, h = m % heads;
        const float *q = qkv->data + b * N * C3 + h * D, *k = q + C;
        float *dq = qkv->grad + b * N * C3 + h * D, *dk = dq + C;
        mt_gemm_run(&(MtGemm){.precision = c->precision, .M = N, .N = D, .K = N, .alpha = scale, .A = dS + m * NN,
                              .lda = N, .B = k, .ldb = C3, .beta = 1.0f, .C = dq, .ldc = C3});
        mt_gemm_run(&(MtGemm){.precision = c->precision, .transA = MT_TRANS, .M = N, .N = D, .K = N, .alpha = scale,
                              .A = dS + m * NN, .lda = N, .B = q, .ldb = C3, .beta = 1.0f, .C = dk, .ldc = C3});
    }
    arena_release(&c->arena, mark);
}

Tensor *mt_attention(Ctx *c, Tensor *qkv, int heads) {
    if (c->failed || !qkv) return NULL;
    char sq[96];
    if (qkv->ndim != 3 || qkv->shape[2] % 3 != 0 || heads < 1 || (qkv->shape[2] / 3) % heads != 0)
        return mt_fail(c, "attention", "qkv %s, heads %d: need qkv (B, N, 3C) with C divisible by heads",
                       mt_shape_str(qkv, sq, sizeof sq), heads);
    int B = qkv->shape[0], N = qkv->shape[1], C3 = qkv->shape[2], C = C3 / 3, D = C / heads;
    float scale = 1.0f / sqrtf((float)D);
    Tensor *y = mt_new3(c, B, N, C);
    if (!y) return NULL;
    size_t NN = (size_t)N * N, nmat = (size_t)B * heads;
    float *P = arena_alloc(&c->arena, nmat * NN * sizeof(float));
    for (size_t m = 0; m < nmat; m++) {
        size_t b = m / heads, h = m % heads;
        const float *q = qkv->data + b * N * C3 + h * D, *k = q + C;
        mt_gemm_run(&(MtGemm){.precision = c->precision, .transB = MT_TRANS, .M = N, .N = N, .K = D, .alpha = scale,
                              .A = q, .lda = C3, .B = k, .ldb = C3, .C = P + m * NN, .ldc = N});
    }
    size_t rows = nmat * N;
#pragma omp parallel for schedule(static) if ((size_t)(rows * N) >= PAR_MIN)
    for (size_t r = 0; r < rows; r++) {
        float *p = P + r * N;
        float mx = p[0];
        for (int j = 1; j < N; j++) mx = p[j] > mx ? p[j] : mx;
        float s = 0.0f;
        for (int j = 0; j < N; j++) {
            p[j] = expf(p[j] - mx);
            s += p[j];
        }
        float inv = 1.0f / s;
        for (int j = 0; j < N; j++) p[j] *= inv;
    }
    for (size_t m = 0; m < nmat; m++) {
        size_t b = m / heads, h = m % heads;
        const float *v = qkv->data + b * N * C3 + 2 * C + h * D;
        mt_gemm_run(&(MtGemm){.precision = c->precision, .M = N, .N = D, .K = N, .alpha = 1.0f, .A = P + m * NN,
                              .lda = N, .B = v, .ldb = C3, .C = y->data + b * N * C + h * D, .ldc = C});
    }
    if (mt_needs_grad(c, &qkv, 1)) {
        Node *n = mt_record(c, "attention", attention_backward, y, &qkv, 1);
        mt_save(c, n, &(AttentionSaved){.probs = P, .heads = heads, .scale = scale}, sizeof(AttentionSaved));
    }
    return y;
}
