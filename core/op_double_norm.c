/* External attention's double normalisation (Guo et al. 2021) on x (B, N, S):
 *   a = softmax over n of x[b, :, s]          (each memory unit's attention over tokens)
 *   y[b, n, s] = a[b, n, s] / (eps + sum_s' a[b, n, s'])   (l1 over memory units)
 * Backward: with t[b,n] = eps + sum_s a,  da = dy / t - sum_s(dy * a) / t^2,
 * then the softmax backward along n: dx = a * (da - sum_n(da * a)).
 * a is saved (B, N, S) in the arena. */
#include "core/ops.h"
#include <math.h>

/* What a double_norm node keeps: a (B, N, S) in the arena and eps. */
typedef struct DoubleNormSaved {
    const float *a;
    float eps;
} DoubleNormSaved;

static void double_norm_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *y = n->out;
    if (!x->requires_grad) return;
    int B = x->shape[0], N = x->shape[1], S = x->shape[2];
    const DoubleNormSaved *s = n->saved;
    float eps = s->eps;
    const float *A = s->a;
    float *da = arena_alloc(&c->arena, x->numel * sizeof(float));
#pragma omp parallel for schedule(static) if (x->numel >= 32768)
    for (size_t r = 0; r < (size_t)B * N; r++) {
        const float *a = A + r * S, *dy = y->grad + r * S;
        double t = eps, q = 0;
        for (int s = 0; s < S; s++) t += a[s], q += (double)dy[s] * a[s];
        for (int s = 0; s < S; s++) da[r * S + s] = (float)(dy[s] / t - q / (t * t));
    }
#pragma omp parallel for schedule(static) if (x->numel >= 32768)
    for (int b = 0; b < B; b++) {
        for (int s = 0; s < S; s++) {
            double dot = 0;
            for (int i = 0; i < N; i++) {
                size_t k = ((size_t)b * N + i) * S + s;
                dot += (double)da[k] * A[k];
            }
            for (int i = 0; i < N; i++) {
                size_t k = ((size_t)b * N + i) * S + s;
                x->grad[k] += A[k] * (float)(da[k] - dot);
            }
        }
    }
}

Tensor *mt_double_norm(Ctx *c, Tensor *x, float eps) {
    if (c->failed || !x) return NULL;
    char s[96];
    if (x->ndim != 3) return mt_fail(c, "double_norm", "x %s: need (B, N, S)", mt_shape_str(x, s, sizeof s));
    int B = x->shape[0], N = x->shape[1], S = x->shape[2];
    Tensor *y = mt_new3(c, B, N, S);
    float *A = arena_alloc(&c->arena, x->numel * sizeof(float));
    if (!y || !A) return NULL;
#pragma omp parallel for schedule(static) if (x->numel >= 32768)
    for (int b = 0; b < B; b++) {
        const float *xb = x->data + (size_t)b * N * S;
        float *ab = A + (size_t)b * N * S;
        for (int j = 0; j < S; j++) {
            float m = xb[j];
            for (int i = 1; i < N; i++) m = xb[(size_t)i * S + j] > m ? xb[(size_t)i * S + j] : m;
            double sum = 0;
            for (int i = 0; i < N; i++) sum += (ab[(size_t)i * S + j] = expf(xb[(size_t)i * S + j] - m));
            float inv = (float)(1.0 / sum);
            for (int i = 0; i < N; i++) ab[(size_t)i * S + j] *= inv;
        }
    }
#pragma omp parallel for schedule(static) if (x->numel >= 32768)
    for (size_t r = 0; r < (size_t)B * N; r++) {
        double t = eps;
        for (int j = 0; j < S; j++) t += A[r * S + j];
        float inv = (float)(1.0 / t);
        for (int j = 0; j < S; j++) y->data[r * S + j] = A[r * S + j] * inv;
    }
    if (mt_needs_grad(c, &x, 1)) {
        Node *nd = mt_record(c, "double_norm", double_norm_backward, y, &x, 1);
        mt_save(c, nd, &(DoubleNormSaved){.a = A, .eps = eps}, sizeof(DoubleNormSaved));
    }
    return y;
}
