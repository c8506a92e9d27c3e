#include "core/tape.h"
#include "core/clock.h"
#include "core/fuse.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static OpProfile *prof_slot(Ctx *c, const char *op) {
    for (int i = 0; i < c->nprof; i++)
        if (strcmp(c->prof[i].op, op) == 0) return &c->prof[i];
    if (c->nprof == MT_PROF_MAX) return NULL;
    OpProfile *p = &c->prof[c->nprof++];
    memset(p, 0, sizeof *p);
    snprintf(p->op, sizeof p->op, "%s", op);
    return p;
}

/* Puts fwd and bwd seconds (and calls) on line's profile entry. Everything put anywhere also
 * counts in c->prof_total, so a node's backward keeps on its own line only what its parts and
 * nested nodes (a checkpoint's recompute and inner sweep) did not take; with no line left the
 * time stays with the node. */
static void prof_put(Ctx *c, const char *line, double fwd, double bwd, long calls) {
    OpProfile *p = prof_slot(c, line);
    if (!p) return;
    p->fwd += fwd;
    p->bwd += bwd;
    p->calls += calls;
    c->prof_total += fwd + bwd;
}

/* A forward event at time t: the span since the previous one goes to line. */
static void prof_forward(Ctx *c, const char *line, long calls) {
    double t = mt_seconds();
    prof_put(c, line, t - c->prof_t, 0, calls);
    c->prof_t = t;
}

void mt_profile_mark(Ctx *c) { c->prof_t = mt_seconds(); }

void mt_part(Ctx *c, int pass, const char *line, mt_part_fn fn, void *arg) {
    if (!c->profile) {
        fn(c, arg);
        return;
    }
    double t0 = mt_seconds();
    fn(c, arg);
    if (pass == MT_BACKWARD) prof_put(c, line, 0, mt_seconds() - t0, 0);
    else prof_forward(c, line, 0); /* with the op's checks before it, as the node's span would */
}

void mt_ctx_init(Ctx *c, size_t arena_bytes) {
    memset(c, 0, sizeof *c);
    arena_init(&c->arena, arena_bytes);
    c->cap = 1024;
    c->nodes = malloc((size_t)c->cap * sizeof *c->nodes);
    if (!c->nodes) { fprintf(stderr, "mixtape: out of memory (tape)\n"); abort(); }
    c->grad_enabled = 1;
    c->training = 1;
    c->seed = 0x6d69787461706521ull;
    c->fuse = mt_fuse_default();
}

void mt_ctx_free(Ctx *c) {
    arena_free(&c->arena);
    free(c->nodes);
    memset(c, 0, sizeof *c);
}

void mt_ctx_reset(Ctx *c) {
    arena_reset(&c->arena);
    c->grad_pool = NULL;
    c->nnodes = 0;
    c->backward_done = 0;
    c->failed = 0;
    c->err[0] = 0;
    c->scope[0] = 0;
}

/* The no-grad profile's key of a scope: the block index dropped, "X.blocks.N.rest" -> "X rest"
 * and "blocks.N.rest" -> "rest" (cut to the key's size). */
static void scope_key(const char *scope, char *key, size_t n) {
    const char *b = strncmp(scope, "blocks.", 7) ? strstr(scope, ".blocks.") : scope;
    const char *num = b ? b + (b == scope ? 7 : 8) : NULL;
    const char *rest = num ? strchr(num, '.') : NULL;
    size_t pre = rest ? (size_t)(b - scope) : strlen(scope), k = 0;
    for (size_t i = 0; i < pre && k + 1 < n; i++) key[k++] = scope[i];
    if (rest && pre && k + 1 < n) key[k++] = ' ';
    for (const char *r = rest ? rest + 1 : ""; *r && k + 1 < n; r++) key[k++] = *r;
    key[k] = 0;
}

void mt_scope(Ctx *c, const char *fmt, ...) {
    if (c->profile && !c->grad_enabled) {
        char key[sizeof c->prof[0].op];
        scope_key(c->scope[0] ? c->scope : "(outside scopes)", key, sizeof key);
        prof_forward(c, key, 1);
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->scope, sizeof c->scope, fmt, ap);
    va_end(ap);
}

void *mt_fail(Ctx *c, const char *op, const char *fmt, ...) {
    if (c->failed) return NULL;
    c->failed = 1;
    int k = snprintf(c->err, sizeof c->err, "%s%s%s: ", op, c->scope[0] ? " in " : "", c->scope);
    if (k < 0 || (size_t)k >= sizeof c->err) return NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + k, sizeof c->err - (size_t)k, fmt, ap);
    va_end(ap);
    return NULL;
}

Tensor *mt_new(Ctx *c, int ndim, const int *shape) {
    if (ndim < 1 || ndim > MT_MAXDIM) return mt_fail(c, "new", "rank %d outside 1..%d", ndim, MT_MAXDIM);
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0) {
            char s[96];
            return mt_fail(c, "new", "non-positive dimension in shape %s", mt_dims_str(ndim, shape, s, sizeof s));
        }
    Tensor *t = arena_calloc(&c->arena, sizeof *t);
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->numel = mt_numel(ndim, shape);
    t->data = arena_alloc(&c->arena, t->numel * sizeof(float));
    return t;
}
Tensor *mt_new2(Ctx *c, int d0, int d1) { int s[2] = {d0, d1}; return mt_new(c, 2, s); }
Tensor *mt_new3(Ctx *c, int d0, int d1, int d2) { int s[3] = {d0, d1, d2}; return mt_new(c, 3, s); }
Tensor *mt_new4(Ctx *c, int d0, int d1, int d2, int d3) { int s[4] = {d0, d1, d2, d3}; return mt_new(c, 4, s); }

Tensor *mt_wrap(Ctx *c, float *data, int ndim, const int *shape) {
    if (ndim < 1 || ndim > MT_MAXDIM) return mt_fail(c, "wrap", "rank %d outside 1..%d", ndim, MT_MAXDIM);
    Tensor *t = arena_calloc(&c->arena, sizeof *t);
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->numel = mt_numel(ndim, shape);
    t->data = data;
    t->name = "input";
    return t;
}

/* A freed gradient buffer: the first bytes of the buffer itself. */
typedef struct PoolItem {
    struct PoolItem *next;
    size_t bytes;
} PoolItem;

/* Dead activation data below this many bytes is not worth a free-list entry. */
#define RECYCLE_MIN 4096

/* A dead buffer of `bytes` (at least a PoolItem) goes on the free list. */
static void pool_push(Ctx *c, float *buf, size_t bytes) {
    PoolItem *it = (PoolItem *)(void *)buf;
    it->bytes = bytes;
    it->next = c->grad_pool;
    c->grad_pool = it;
}

/* A gradient buffer for t from the free list or the arena; zeroed unless fresh (then marked
 * so: see mt_grad_accumulate). Parameters' gradients are never fresh: they accumulate over
 * steps. */
static float *grad_alloc(Ctx *c, Tensor *t, int fresh) {
    size_t bytes = t->numel * sizeof(float);
    fresh = fresh && !t->is_param;
    t->grad_fresh = fresh;
    for (PoolItem **pp = (PoolItem **)&c->grad_pool; *pp; pp = &(*pp)->next)
        if ((*pp)->bytes == bytes) {
            PoolItem *it = *pp;
            *pp = it->next;
            t->grad = (float *)(void *)it;
            if (!fresh) memset(it, 0, bytes);
            else if (c->poison_fresh)
                for (size_t i = 0; i < t->numel; i++) t->grad[i] = NAN;
            return t->grad;
        }
    size_t n = bytes < sizeof(PoolItem) ? sizeof(PoolItem) : bytes;
    t->grad = fresh ? arena_alloc(&c->arena, n) : arena_calloc(&c->arena, n);
    if (fresh && c->poison_fresh)
        for (size_t i = 0; i < t->numel; i++) t->grad[i] = NAN;
    return t->grad;
}

/* A fresh buffer nobody wrote: zero it now (it is about to be read or accumulated into). */
static void settle(Tensor *t) {
    if (!t->grad_fresh) return;
    memset(t->grad, 0, t->numel * sizeof(float));
    t->grad_fresh = 0;
}

float *mt_grad(Ctx *c, Tensor *t) {
    if (t->grad) {
        settle(t);
        return t->grad;
    }
    return grad_alloc(c, t, 0);
}

/* Input i of n's gradient buffer before its backward: fresh when the backward overwrites it
 * and it does not appear twice (two writes of one buffer in either order). */
static void input_grad(Ctx *c, Node *n, int i) {
    Tensor *t = n->in[i];
    int fresh = (n->overwrites >> i) & 1;
    for (int k = 0; k < n->nin; k++) fresh &= k == i || n->in[k] != t;
    if (!t->grad) grad_alloc(c, t, fresh);
    else if (!fresh) settle(t);
}

/* The output's gradient is consumed: its producer has run backward. */
static void release_grad(Ctx *c, Tensor *t) {
    if (t->is_param || !t->grad || c->keep_grads) return;
    size_t bytes = t->numel * sizeof(float);
    if (bytes < sizeof(PoolItem)) return; /* too small to hold the link: leave it */
    pool_push(c, t->grad, bytes);
    t->grad = NULL;
}

int mt_needs_grad(Ctx *c, Tensor *const *in, int nin) {
    if (!c->grad_enabled) return 0;
    for (int i = 0; i < nin; i++)
        if (in[i] && in[i]->requires_grad) return 1;
    return 0;
}

Node *mt_record(Ctx *c, const char *op, mt_backward_fn bw, Tensor *out, Tensor *const *in, int nin) {
    if (c->nnodes == c->cap) {
        /* Grows during the first step only; the tape length is fixed per model. */
        int cap = 2 * c->cap;
        Node *n = realloc(c->nodes, (size_t)cap * sizeof *n);
        if (!n) { fprintf(stderr, "mixtape: out of memory (tape)\n"); abort(); }
        c->nodes = n;
        c->cap = cap;
    }
    if (c->profile) prof_forward(c, op, 1);
    Node *n = &c->nodes[c->nnodes++];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->backward = bw;
    n->out = out;
    n->nin = nin;
    for (int i = 0; i < nin; i++) n->in[i] = in[i];
    out->requires_grad = 1;
    if (!out->name) out->name = op;
    return n;
}

void *mt_save(Ctx *c, Node *n, const void *st, size_t bytes) {
    n->saved = arena_alloc(&c->arena, bytes);
    memcpy(n->saved, st, bytes);
    return n->saved;
}

/* The node's output data after its backward: dead unless it is a view of an input. */
static void release_data(Ctx *c, Node *n) {
    Tensor *t = n->out;
    size_t bytes = t->numel * sizeof(float);
    if (t->is_param || !t->data || bytes < RECYCLE_MIN) return;
    const float *lo = t->data, *hi = t->data + t->numel;
    for (int i = 0; i < n->nin; i++) {
        const Tensor *in = n->in[i];
        if (in && in->data && in->data < hi && lo < in->data + in->numel) return; /* shares memory */
    }
    pool_push(c, t->data, bytes);
    t->data = NULL;
}

void mt_recycle(Ctx *c, float *buf, size_t numel) {
    if (c->recycle_activations && buf && numel * sizeof(float) >= RECYCLE_MIN) pool_push(c, buf, numel * sizeof(float));
}

/* Nodes [from, to) in reverse. `hook`: call on_node_done (the whole tape's sweep only; its
 * node indices are what data-parallel buckets scanned). */
static void sweep_range(Ctx *c, int from, int to, int hook) {
    for (int k = to - 1; k >= from; k--) {
        Node *n = &c->nodes[k];
        if (!n->out->grad) { /* nothing flowed into this node's output */
            if (hook && c->on_node_done) c->on_node_done(c, k, c->on_node_done_ud);
            continue;
        }
        double t0 = c->profile ? mt_seconds() : 0, t1 = 0, t2 = 0, taken = 0;
        for (int i = 0; i < n->nin; i++)
            if (n->in[i] && n->in[i]->requires_grad) input_grad(c, n, i);
        if (c->profile) {
            t1 = c->prof_t = mt_seconds(); /* a recompute's first node measures its forward from here */
            taken = c->prof_total;
        }
        n->backward(c, n);
        n = &c->nodes[k]; /* a checkpoint's backward records at the tape's end: it may have moved */
        if (c->profile) t2 = mt_seconds();
        for (int i = 0; i < n->nin; i++) /* what the backward did not write reads as zero */
            if (n->in[i] && n->in[i]->grad) settle(n->in[i]);
        if (c->profile) { /* zeroing gradient buffers is its own line: it is no op's work */
            prof_put(c, n->op, 0, t2 - t1 - (c->prof_total - taken), 0);
            prof_put(c, "(zeroing gradients)", 0, (t1 - t0) + (mt_seconds() - t2), 0);
        }
        if (hook && c->on_node_done) c->on_node_done(c, k, c->on_node_done_ud);
        release_grad(c, n->out);
        if (c->recycle_activations) release_data(c, n);
    }
}

static int sweep(Ctx *c) {
    sweep_range(c, 0, c->nnodes, 1);
    c->backward_done = 1;
    return c->failed ? -1 : 0;
}

int mt_backward_range(Ctx *c, int from, int to) {
    if (from < 0 || to > c->nnodes || from > to) {
        mt_fail(c, "backward_range", "node range [%d, %d) outside the tape's %d nodes", from, to, c->nnodes);
        return -1;
    }
    sweep_range(c, from, to, 0);
    return c->failed ? -1 : 0;
}

static int check_tape(Ctx *c, Tensor *t, const char *what) {
    if (c->failed) return -1;
    if (!t) { mt_fail(c, "backward", "%s is NULL (an earlier op failed)", what); return -1; }
    if (c->backward_done) {
        mt_fail(c, "backward", "the tape was already consumed by an earlier backward(); "
                               "run the forward pass again (mt_ctx_reset) before a second backward");
        return -1;
    }
    if (!t->requires_grad) {
        mt_fail(c, "backward", "%s does not depend on any parameter that requires grad (no-grad mode?)", what);
        return -1;
    }
    return 0;
}

int mt_backward_seed(Ctx *c, Tensor *out, const float *seed) {
    if (check_tape(c, out, "output") != 0) return -1;
    float *g = mt_grad(c, out);
    for (size_t i = 0; i < out->numel; i++) g[i] += seed[i];
    return sweep(c);
}

int mt_backward(Ctx *c, Tensor *loss) {
    if (c->failed) return -1;
    if (loss && loss->numel != 1) {
        char s[96];
        mt_fail(c, "backward", "loss must be a scalar, got shape %s", mt_shape_str(loss, s, sizeof s));
        return -1;
    }
    if (check_tape(c, loss, "loss") != 0) return -1;
    mt_grad(c, loss)[0] += 1.0f;
    return sweep(c);
}

/* splitmix64 finaliser: a counter-based generator, so dropout masks do not
 * depend on how elements are split across threads. */
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float mt_rand_uniform(uint64_t seed, uint64_t counter, uint64_t i) {
    uint64_t z = mix64(seed ^ mix64(counter * 0x9e3779b97f4a7c15ull + i));
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}
