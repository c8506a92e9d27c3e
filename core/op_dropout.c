/* Dropout and drop path (stochastic depth). Active only when c->training and
 * p > 0; otherwise the input itself is returned and nothing is recorded.
 *
 * Masks come from the counter-based generator: element i of a draw is
 * mt_rand_uniform(c->seed, c->counter, i), and the op then advances c->counter
 * by the number of values drawn, so a mask depends only on (seed, counter, i),
 * never on the thread split. An element (or sample) is kept when u >= p. */
#include "core/ops.h"
#include <stdint.h>

#define PAR_MIN 16384

static int check_p(Ctx *c, const char *op, const Tensor *x, float p) {
    if (p >= 0.0f && p < 1.0f) return 0;
    char sx[96];
    mt_fail(c, op, "probability p = %g outside [0, 1) for x %s", (double)p, mt_shape_str(x, sx, sizeof sx));
    return -1;
}

/* What a dropout or drop_path node keeps: the keep mask (per element, per sample) and the
 * scale 1 / (1 - p) of kept values. */
typedef struct DropSaved {
    const uint8_t *keep;
    float scale;
} DropSaved;

/* ---- dropout: y = x * keep / (1 - p), element-wise mask ---- */

static void dropout_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0];
    if (!x->requires_grad) return;
    const DropSaved *st = n->saved;
    const uint8_t *keep = st->keep;
    const float *dy = n->out->grad;
    float *gx = x->grad, s = st->scale;
    size_t N = x->numel;
#pragma omp parallel for simd if (N >= PAR_MIN) schedule(static)
    for (size_t i = 0; i < N; i++) gx[i] += keep[i] ? dy[i] * s : 0.0f;
}

Tensor *mt_dropout(Ctx *c, Tensor *x, float p) {
    if (c->failed || !x) return NULL;
    if (check_p(c, "dropout", x, p)) return NULL;
    if (!c->training || p == 0.0f) return x;
    Tensor *y = mt_new(c, x->ndim, x->shape);
    if (!y) return NULL;
    size_t N = x->numel;
    uint64_t seed = c->seed, ctr = c->counter;
    c->counter += N;
    Tensor *in[1] = {x};
    int rec = mt_needs_grad(c, in, 1);
    uint8_t *keep = rec ? arena_alloc(&c->arena, N) : NULL;
    /* 1/(1-p) in float, as PyTorch scales its Bernoulli noise. */
    float s = 1.0f / (1.0f - p);
    const float *px = x->data;
    float *py = y->data;
#pragma omp parallel for if (N >= PAR_MIN / 4) schedule(static)
    for (size_t i = 0; i < N; i++) {
        int k = mt_rand_uniform(seed, ctr, i) >= p;
        py[i] = k ? px[i] * s : 0.0f;
        if (keep) keep[i] = (uint8_t)k;
    }
    if (rec) {
        Node *n = mt_record(c, "dropout", dropout_backward, y, in, 1);
        mt_save(c, n, &(DropSaved){.keep = keep, .scale = s}, sizeof(DropSaved));
    }
    return y;
}

/* ---- drop path: whole samples (axis 0) zeroed with probability p; kept ones x / (1 - p) ---- */

static void drop_path_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0];
    if (!x->requires_grad) return;
    const DropSaved *st = n->saved;
    const uint8_t *keep = st->keep;
    const float *dy = n->out->grad;
    float *gx = x->grad, kp = st->scale;
    int B = x->shape[0];
    size_t S = x->numel / (size_t)B;
#pragma omp parallel for if (x->numel >= PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++) {
        if (!keep[b]) continue;
        const float *g = dy + (size_t)b * S;
        float *d = gx + (size_t)b * S;
#pragma omp simd
        for (size_t i = 0; i < S; i++) d[i] += g[i] / kp;
    }
}

Tensor *mt_drop_path(Ctx *c, Tensor *x, float p) {
    if (c->failed || !x) return NULL;
    if (check_p(c, "drop_path", x, p)) return NULL;
    if (!c->training || p == 0.0f) return x;
    Tensor *y = mt_new(c, x->ndim, x->shape);
    if (!y) return NULL;
    int B = x->shape[0];
    size_t S = x->numel / (size_t)B;
    uint8_t *keep = arena_alloc(&c->arena, (size_t)B);
    for (int b = 0; b < B; b++) keep[b] = (uint8_t)(mt_rand_uniform(c->seed, c->counter, (uint64_t)b) >= p);
    c->counter += (uint64_t)B;
    /* timm divides by keep_prob: x.div(keep_prob) * mask. */
    float kp = 1.0f - p;
    const float *px = x->data;
    float *py = y->data;
#pragma omp parallel for if (x->numel >= PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++) {
        const float *xs = px + (size_t)b * S;
        float *restrict ys = py + (size_t)b * S;
        if (keep[b]) {
#pragma omp simd
            for (size_t i = 0; i < S; i++) ys[i] = xs[i] / kp;
        } else {
#pragma omp simd
            for (size_t i = 0; i < S; i++) ys[i] = 0.0f;
        }
    }
    Tensor *in[1] = {x};
    if (mt_needs_grad(c, in, 1)) {
        Node *n = mt_record(c, "drop_path", drop_path_backward, y, in, 1);
        mt_save(c, n, &(DropSaved){.keep = keep, .scale = kp}, sizeof(DropSaved));
    }
    return y;
}
