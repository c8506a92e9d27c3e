/* The tape: a tensor used twice gets both contributions, no-grad mode records
 * nothing, the arena stops spilling after the first step and its use is the
 * same every step, a second backward on one tape is an error, gradients
 * accumulate exactly across backward passes until zeroed, and a non-scalar
 * loss is an error naming its shape. The profile: no-grad time goes to scopes; with a tape an
 * op's parts (mt_part) get their own lines in forward and backward, and a checkpoint's line
 * keeps none of its recompute's time. */
#include "gradcheck.h"
#include <time.h>

static void check(int ok, const char *what, const char *detail) {
    if (!ok) {
        fprintf(stderr, "[%s] FAILED %s\n", what, detail);
        gc_failures++;
    } else printf("%-32s ok%s%s\n", what, detail[0] ? ": " : "", detail);
}

static void zero(Tensor *t) { memset(t->grad, 0, t->numel * sizeof(float)); }

/* A small block using the element-wise, norm, activation and regularisation ops. */
typedef struct {
    Tensor *lw, *lb, *w1, *b1, *w2, *ls, *gw, *gb, *alpha, *beta, *wt, *bt, *wo, *bo;
} Net;

static Tensor *net_block(Ctx *c, const Net *n, Tensor *x) {
    Tensor *h = mt_layernorm(c, x, n->lw, n->lb, 1e-6f);
    h = mt_linear(c, h, n->w1, NULL);
    h = mt_bias_act(c, h, n->b1, MT_ACT_GELU);
    h = mt_dropout(c, h, 0.1f);
    h = mt_linear(c, h, n->w2, NULL);
    h = mt_drop_path(c, h, 0.2f);
    Tensor *y = mt_residual(c, x, h, n->ls);
    y = mt_groupnorm1(c, y, n->gw, n->gb, 1e-5f);
    y = mt_affine(c, y, n->alpha, n->beta);
    y = mt_silu(c, mt_rmsnorm(c, y, n->gw, 1e-6f));
    return mt_add(c, y, mt_mul(c, y, x));
}

static Tensor *f_block(Ctx *c, Tensor **in, void *arg) { return net_block(c, arg, in[0]); }

/* (1, 5, 7) -> scalar (1, 1, 1) */
static Tensor *net_loss(Ctx *c, const Net *n, Tensor *x) {
    Tensor *h = mt_layernorm(c, x, n->lw, n->lb, 1e-6f);
    h = mt_scale(c, h, n->ls);
    h = mt_gelu(c, h);
    h = mt_token_linear(c, h, n->wt, n->bt); /* (1, 1, 7) */
    return mt_linear(c, h, n->wo, n->bo);   /* (1, 1, 1) */
}

/* ---- a profiled op: forward and backward each spin in a 50 ms part and 2 ms of its own ---- */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static void spin(double s) {
    for (double t = now_s(); now_s() - t < s;) {
    }
}
static void spin_part(Ctx *c, void *arg) {
    (void)c;
    spin(*(const double *)arg);
}
static void spin_backward(Ctx *c, Node *n) {
    double part = 0.050;
    mt_part(c, MT_BACKWARD, "spin.part", spin_part, &part);
    spin(0.002);
    for (size_t i = 0; i < n->out->numel; i++) n->in[0]->grad[i] += n->out->grad[i];
}
static Tensor *spin_op(Ctx *c, const void *arg, Tensor *x) {
    (void)arg;
    Tensor *y = mt_new(c, x->ndim, x->shape);
    double part = 0.050;
    mt_part(c, MT_FORWARD, "spin.part", spin_part, &part);
    spin(0.002);
    memcpy(y->data, x->data, x->numel * sizeof(float));
    if (mt_needs_grad(c, &x, 1)) mt_record(c, "spin", spin_backward, y, &x, 1);
    return y;
}
static const OpProfile *prof_line(const Ctx *c, const char *op) {
    for (int i = 0; i < c->nprof; i++)
        if (!strcmp(c->prof[i].op, op)) return &c->prof[i];
    return NULL;
}

int main(void) {
    ParamList p = {0};
    char msg[512];
    Ctx c;
    mt_ctx_init(&c, 1 << 16);

    /* ---- a tensor used twice receives both contributions ---- */
    {
        Tensor *x = gc_input(&p, "x", 3, (int[]){3, 5, 7}, -1, 1);
        Tensor *g = gc_input(&p, "g", 1, (int[]){7}, -1, 1);
        float ones[105], want[105];
        for (int i = 0; i < 105; i++) ones[i] = 1.0f;

        Tensor *y = mt_mul(&c, x, x);
        mt_backward_seed(&c, y, ones);
        for (int i = 0; i < 105; i++) want[i] = 2.0f * x->data[i];
        gc_expect("mul(x, x) -> 2x", x->grad, want, 105, 0);

        mt_ctx_reset(&c);
        zero(x);
        y = mt_add(&c, x, x);
        mt_backward_seed(&c, y, ones);
        for (int i = 0; i < 105; i++) want[i] = 2.0f;
        gc_expect("add(x, x) -> 2", x->grad, want, 105, 0);

        mt_ctx_reset(&c);
        zero(x);
        y = mt_residual(&c, x, x, g);
        mt_backward_seed(&c, y, ones);
        for (int i = 0; i < 105; i++) want[i] = 1.0f + g->data[i % 7];
        gc_expect("residual(x, x, g) -> 1 + g", x->grad, want, 105, 1e-6);

        /* diamond: y = (x * g) * x  ->  dy/dx = 2 g x */
        mt_ctx_reset(&c);
        zero(x);
        y = mt_mul(&c, mt_scale(&c, x, g), x);
        mt_backward_seed(&c, y, ones);
        for (int i = 0; i < 105; i++) want[i] = 2.0f * g->data[i % 7] * x->data[i];
        gc_expect("mul(scale(x, g), x) -> 2gx", x->grad, want, 105, 1e-6);
    }

    /* ---- the block used below ---- */
    Net n;
    const int C = 16, Hd = 24, T = 9;
    n.lw = gc_input(&p, "norm1.weight", 1, (int[]){C}, 0.5, 1.5);
    n.lb = gc_input(&p, "norm1.bias", 1, (int[]){C}, -0.5, 0.5);
    n.w1 = gc_input(&p, "mlp.fc1.weight", 2, (int[]){Hd, C}, -0.3, 0.3);
    n.b1 = gc_input(&p, "mlp.fc1.bias", 1, (int[]){Hd}, -0.1, 0.1);
    n.w2 = gc_input(&p, "mlp.fc2.weight", 2, (int[]){C, Hd}, -0.3, 0.3);
    n.ls = gc_input(&p, "ls1.gamma", 1, (int[]){C}, 0.1, 1);
    n.gw = gc_input(&p, "norm2.weight", 1, (int[]){C}, 0.5, 1.5);
    n.gb = gc_input(&p, "norm2.bias", 1, (int[]){C}, -0.5, 0.5);
    n.alpha = gc_input(&p, "aff.alpha", 1, (int[]){C}, 0.5, 1.5);
    n.beta = gc_input(&p, "aff.beta", 1, (int[]){C}, -0.5, 0.5);
    float *xdata = malloc(4 * T * C * sizeof(float));
    for (int i = 0; i < 4 * T * C; i++) xdata[i] = gc_uniform() * 2 - 1;
    float *seed = malloc(4 * T * C * sizeof(float));
    for (int i = 0; i < 4 * T * C; i++) seed[i] = gc_uniform() - 0.5f;

    /* ---- the whole block against finite differences, every parameter (masks fixed) ---- */
    {
        Tensor *x = gc_input(&p, "block.x", 3, (int[]){4, T, C}, -1, 1);
        Tensor *in[11] = {x, n.lw, n.lb, n.w1, n.b1, n.w2, n.ls, n.gw, n.gb, n.alpha, n.beta};
        gradcheck("block chain (4,9,16)", f_block, in, 11, &n, 1e-2f, 2e-3, 2e-2);
    }

    /* ---- no-grad mode records nothing ---- */
    {
        mt_ctx_reset(&c);
        c.grad_enabled = 0;
        Tensor *x = mt_wrap(&c, xdata, 3, (int[]){4, T, C});
        Tensor *y = net_block(&c, &n, x);
        Tensor *z = mt_gelu_tanh(&c, mt_relu(&c, mt_bias_add(&c, y, n.beta)));
        snprintf(msg, sizeof msg, "%d nodes", c.nnodes);
        check(y && z && c.nnodes == 0 && !y->requires_grad && !z->requires_grad, "no-grad: no nodes", msg);
        int rc = mt_backward_seed(&c, z, seed);
        check(rc != 0 && strstr(c.err, "no-grad"), "no-grad: backward refused", c.err);
        c.grad_enabled = 1;
    }

    /* ---- arena: spills only in the first step; same use every step ---- */
    {
        Ctx a;
        mt_ctx_init(&a, 4096); /* far too small: the first step must spill */
        size_t used[6];
        int nextra[6], nodes[6];
        for (int step = 0; step < 6; step++) {
            mt_ctx_reset(&a);
            Tensor *x = mt_wrap(&a, xdata, 3, (int[]){4, T, C});
            Tensor *y = net_block(&a, &n, x);
            if (!y || mt_backward_seed(&a, y, seed) != 0) {
                check(0, "arena steps", a.err);
                break;
            }
            used[step] = arena_used(&a.arena);
            nextra[step] = a.arena.nextra;
            nodes[step] = a.nnodes;
        }
        int ok = nextra[0] > 0;
        for (int s = 1; s < 6; s++) ok = ok && nextra[s] == 0 && used[s] == used[1] && nodes[s] == nodes[0];
        snprintf(msg, sizeof msg, "step 0 spilled %d chunks; then %zu bytes, 0 spills, %d nodes every step", nextra[0],
                 used[1], nodes[1]);
        check(ok, "arena reset: no spill after step 0", msg);
        mt_ctx_free(&a);
    }

    /* ---- a second backward on the same tape is an error ---- */
    {
        mt_ctx_reset(&c);
        Tensor *x = mt_wrap(&c, xdata, 3, (int[]){4, T, C});
        Tensor *y = net_block(&c, &n, x);
        int rc1 = mt_backward_seed(&c, y, seed);
        int rc2 = mt_backward_seed(&c, y, seed);
        check(rc1 == 0 && rc2 != 0 && strstr(c.err, "already consumed"), "second backward is an error", c.err);
    }

    /* ---- gradient accumulation: two passes without zeroing give exactly the sum ---- */
    {
        n.wt = gc_input(&p, "mlp_tokens.weight", 2, (int[]){1, 5}, -1, 1);
        n.bt = gc_input(&p, "mlp_tokens.bias", 1, (int[]){1}, -1, 1);
        n.wo = gc_input(&p, "head.weight", 2, (int[]){1, 7}, -1, 1);
        n.bo = gc_input(&p, "head.bias", 1, (int[]){1}, -1, 1);
        Tensor *ls7 = gc_input(&p, "ls7", 1, (int[]){7}, 0.1, 1);
        Tensor *lw7 = gc_input(&p, "lw7", 1, (int[]){7}, 0.5, 1.5);
        Tensor *lb7 = gc_input(&p, "lb7", 1, (int[]){7}, -0.5, 0.5);
        Net m = n;
        m.ls = ls7, m.lw = lw7, m.lb = lb7;
        Tensor *ps[7] = {m.lw, m.lb, m.ls, m.wt, m.bt, m.wo, m.bo};
        float xa[35], xb[35];
        for (int i = 0; i < 35; i++) xa[i] = gc_uniform() * 2 - 1, xb[i] = gc_uniform() * 2 - 1;
        float *ga[7], *gb[7];
        const float *xs[2] = {xa, xb};
        float **gs[2] = {ga, gb};
        for (int pass = 0; pass < 2; pass++) { /* each batch alone */
            mt_params_zero_grad(&p);
            mt_ctx_reset(&c);
            Tensor *loss = net_loss(&c, &m, mt_wrap(&c, (float *)xs[pass], 3, (int[]){1, 5, 7}));
            if (!loss || mt_backward(&c, loss) != 0) check(0, "accumulation", c.err);
            for (int k = 0; k < 7; k++) {
                gs[pass][k] = malloc(ps[k]->numel * sizeof(float));
                memcpy(gs[pass][k], ps[k]->grad, ps[k]->numel * sizeof(float));
            }
        }
        mt_params_zero_grad(&p);
        for (int pass = 0; pass < 2; pass++) { /* both, no zeroing in between */
            mt_ctx_reset(&c);
            Tensor *loss = net_loss(&c, &m, mt_wrap(&c, (float *)xs[pass], 3, (int[]){1, 5, 7}));
            if (!loss || mt_backward(&c, loss) != 0) check(0, "accumulation", c.err);
        }
        int ok = 1, nonzero = 0;
        for (int k = 0; k < 7; k++)
            for (size_t i = 0; i < ps[k]->numel; i++) {
                if (ps[k]->grad[i] != ga[k][i] + gb[k][i]) ok = 0;
                if (ga[k][i] != 0 && gb[k][i] != 0) nonzero++;
            }
        snprintf(msg, sizeof msg, "%d gradient elements over 7 parameters", nonzero);
        check(ok && nonzero > 20, "accumulation is exactly the sum", msg);
        for (int k = 0; k < 7; k++) free(ga[k]), free(gb[k]);
    }

    /* ---- backward of a non-scalar loss names the shape ---- */
    {
        mt_ctx_reset(&c);
        Tensor *x = mt_wrap(&c, xdata, 3, (int[]){4, T, C});
        Tensor *y = net_block(&c, &n, x);
        int rc = mt_backward(&c, y);
        check(rc != 0 && strstr(c.err, "scalar") && strstr(c.err, "(4,9,16)"), "non-scalar loss is an error", c.err);
    }

    /* ---- no-grad profile: time goes to the scope that was open, block index dropped ---- */
    {
        Ctx q;
        mt_ctx_init(&q, 1 << 16);
        q.grad_enabled = 0;
        q.profile = 1;
        const char *scopes[] = {"stem.conv", "stages.1.blocks.3.norm2+mlp", "stages.1.blocks.4.norm2+mlp",
                                "blocks.11.norm1", "head.fc", ""};
        mt_profile_mark(&q);
        for (int i = 0; i < 6; i++) mt_scope(&q, "%s", scopes[i]);
        const char *want[] = {"(outside scopes)", "stem.conv", "stages.1 norm2+mlp", "norm1", "head.fc"};
        const long calls[] = {1, 1, 2, 1, 1};
        int ok = q.nprof == 5;
        for (int i = 0; ok && i < 5; i++)
            ok = !strcmp(q.prof[i].op, want[i]) && q.prof[i].calls == calls[i] && q.prof[i].fwd >= 0 && q.prof[i].bwd == 0;
        char msg[160];
        snprintf(msg, sizeof msg, "%d entries, [2] = '%s' x%ld", q.nprof, q.nprof > 2 ? q.prof[2].op : "", q.nprof > 2 ? q.prof[2].calls : 0);
        check(ok, "no-grad profile keys by scope", msg);
        mt_ctx_free(&q);
    }

    /* ---- taped profile: parts on their own lines, a checkpoint keeps only its bookkeeping ----
     * spin once plainly and once under a checkpoint (forward, its first run; backward, the
     * recompute and the inner sweep): 3 forward and 2 backward runs of 50 ms parts and 2 ms
     * of the op's own; a part's time leaking onto the op's line, or the recompute's onto the
     * checkpoint's, would add 50 ms or more (the bounds leave room for a loaded machine). */
    {
        Ctx q;
        mt_ctx_init(&q, 1 << 16);
        q.profile = 1;
        float one = 1.0f;
        Tensor *x = mt_wrap(&q, &one, 1, (int[]){1});
        x->requires_grad = 1;
        mt_profile_mark(&q);
        Tensor *y = mt_checkpoint(&q, spin_op, NULL, 0, spin_op(&q, NULL, x), NULL);
        int rc = y ? mt_backward(&q, y) : -1;
        const OpProfile *part = prof_line(&q, "spin.part"), *op = prof_line(&q, "spin"),
                        *ck = prof_line(&q, "checkpoint");
        int ok = rc == 0 && part && op && ck && x->grad && x->grad[0] == 1.0f;
        char msg[200];
        snprintf(msg, sizeof msg, "part %.1f/%.1f ms, spin %.1f/%.1f ms, checkpoint %.1f/%.1f ms (fwd/bwd)",
                 part ? 1e3 * part->fwd : -1, part ? 1e3 * part->bwd : -1, op ? 1e3 * op->fwd : -1,
                 op ? 1e3 * op->bwd : -1, ck ? 1e3 * ck->fwd : -1, ck ? 1e3 * ck->bwd : -1);
        ok = ok && part->fwd >= 0.150 && part->bwd >= 0.100 && part->calls == 0;
        ok = ok && op->fwd >= 0.006 && op->fwd < 0.075 && op->bwd >= 0.004 && op->bwd < 0.050 && op->calls == 3;
        ok = ok && ck->fwd < 0.050 && ck->bwd < 0.050 && ck->calls == 1;
        check(ok, "taped profile: parts and nesting", msg);
        mt_ctx_free(&q);
    }

    free(xdata);
    free(seed);
    mt_ctx_free(&c);
    mt_params_free(&p);
    return gc_report();
}
