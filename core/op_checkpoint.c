/* Gradient checkpointing: one node per wrapped function (a MetaFormer block) that keeps its
 * input instead of the function's activations and recomputes them in backward.
 *
 * Forward: fn runs with the tape on, on exactly the ops, fusions and masks of an unwrapped
 * training forward (without a tape several ops take fused inference paths that round
 * differently); its output is copied below everything fn allocated, then the sub-tape and the
 * arena above the copy are dropped. Backward: the dropout counter is set back, fn runs again
 * recording at the tape's end (into the arena above everything alive), its output's gradient
 * is the node's, mt_backward_range sweeps those nodes (their backward adds into x's gradient
 * and the parameters' persistent ones), and the tape and arena rewind to where they were.
 * In a profile the recomputed nodes' forward and backward show on their own lines (the tape
 * times nested nodes) and the checkpoint line keeps the bookkeeping. */
#include "core/ops.h"
#include <string.h>

typedef struct Ckpt {
    mt_checkpoint_fn fn;
    void *arg;          /* arena copy of the caller's argument */
    uint64_t counter;   /* dropout counter when fn first ran */
    int training;
} Ckpt;

static void checkpoint_backward(Ctx *c, Node *n) {
    /* everything read from n before the recompute: recording may move the node array */
    const Ckpt *s = n->saved;
    Tensor *x = n->in[0], *out = n->out;
    float *g0 = x->grad; /* the sweep's buffer for dx (fresh: the recomputed nodes' bits decide) */
    uint64_t counter = c->counter;
    int training = c->training, grad_enabled = c->grad_enabled;
    void *pool = c->grad_pool;
    char scope[sizeof c->scope];
    memcpy(scope, c->scope, sizeof scope);

    /* The free list holds buffers below the arena mark; the recompute's buffers lie above it
     * and die with it, so the recompute starts an empty list of its own. */
    c->grad_pool = NULL;
    c->counter = s->counter;
    c->training = s->training;
    c->grad_enabled = 1;
    int k0 = c->nnodes;
    ArenaMark m = arena_mark(&c->arena);
    Tensor *y = s->fn(c, s->arg, x);
    if (y && c->nnodes > k0) {
        /* dy is the node's gradient buffer, handed over: the inner sweep may reuse it once
         * dead, and the outer sweep frees it after this backward */
        y->grad = out->grad;
        y->grad_fresh = 0;
        mt_backward_range(c, k0, c->nnodes);
    } else if (!c->failed)
        mt_fail(c, "checkpoint", "recomputing %s recorded no tape", scope);
    if (x->grad != g0 && g0) {
        /* A residual's backward handed x a buffer of the recompute instead (grad_pass_through):
         * dy's own, which outlives this node in place of the fresh one, or one above the mark,
         * which dies with it. */
        if (x->grad == out->grad) out->grad = g0;
        else {
            memcpy(g0, x->grad, x->numel * sizeof(float));
            x->grad = g0;
        }
    }
    c->nnodes = k0;
    arena_release(&c->arena, m);
    c->grad_pool = pool;
    c->counter = counter;
    c->training = training;
    c->grad_enabled = grad_enabled;
    memcpy(c->scope, scope, sizeof scope);
}

/* The owner's parameter whose data t shares (t itself or a view of it), or NULL. */
static Tensor *owner_param(const ParamList *owner, const Tensor *t) {
    for (int i = 0; owner && i < owner->n; i++)
        if (owner->t[i]->data == t->data) return owner->t[i];
    return NULL;
}

Tensor *mt_checkpoint(Ctx *c, mt_checkpoint_fn fn, const void *arg, size_t arg_bytes, Tensor *x,
                      const ParamList *owner) {
    if (c->failed || !x) return NULL;
    if (!c->grad_enabled) return fn(c, arg, x);
    Tensor *out = mt_new(c, x->ndim, x->shape);
    Ckpt *s = arena_alloc(&c->arena, sizeof *s);
    void *argc = arena_alloc(&c->arena, arg_bytes ? arg_bytes : 1);
    if (!out) return NULL;
    if (arg_bytes) memcpy(argc, arg, arg_bytes);
    *s = (Ckpt){fn, argc, c->counter, c->training};

    int k0 = c->nnodes;
    ArenaMark m = arena_mark(&c->arena);
    Tensor *y = fn(c, argc, x);
    if (!y) return NULL;
    if (c->nnodes == k0) { /* nothing needs a gradient: the tape-less output stands */
        memcpy(out->data, y->data, out->numel * sizeof(float));
        arena_release(&c->arena, m);
        return out;
    }
    if (y->ndim != x->ndim || memcmp(y->shape, x->shape, (size_t)x->ndim * sizeof *x->shape)) {
        char sx[96], sy[96];
        return mt_fail(c, "checkpoint", "the wrapped function maps x %s to %s: only shape-preserving functions "
                       "(residual blocks) can be checkpointed", mt_shape_str(x, sx, sizeof sx),
                       mt_shape_str(y, sy, sizeof sy));
    }
    memcpy(out->data, y->data, out->numel * sizeof(float));
    /* fn's trainable parameters: each sub-tape input slot becomes its owner's parameter or NULL
     * in place (the node array is not arena memory; the tensors it points to die below) */
    int k1 = c->nnodes, np = 0;
    for (int k = k0; k < k1; k++)
        for (int j = 0; j < c->nodes[k].nin; j++) {
            Tensor *t = c->nodes[k].in[j];
            c->nodes[k].in[j] = t && t->is_param && t->requires_grad ? owner_param(owner, t) : NULL;
            np += c->nodes[k].in[j] != NULL;
        }
    arena_release(&c->arena, m);
    Tensor **params = arena_alloc(&c->arena, (size_t)(np ? np : 1) * sizeof *params);
    np = 0;
    for (int k = k0; k < k1; k++) /* once each */
        for (int j = 0; j < c->nodes[k].nin; j++) {
            Tensor *p = c->nodes[k].in[j];
            int seen = !p;
            for (int q = 0; q < np && !seen; q++) seen = params[q] == p;
            if (!seen) params[np++] = p;
        }
    c->nnodes = k0;

    Tensor *in[1] = {x};
    Node *n = mt_record(c, "checkpoint", checkpoint_backward, out, in, 1);
    n->saved = s;
    n->overwrites = 1; /* the recomputed nodes decide, by their own bits, whether x's gradient is fresh */
    n->params = params;
    n->nparams = np;
    return out;
}
