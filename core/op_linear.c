/* GEMM-backed ops: linear over the last axis and linear over the token axis.
 * Transposes are expressed with sgemm's flags; nothing is copied. */
#include "core/ops.h"
#include "core/op_util.h"
#include "core/gemm.h"
#include "core/fuse.h"
#include <string.h>


/* ---- linear: y (M, N) = x (M, K) @ w^T (K, N) + b ---- */

static void linear_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out;
    int K = mt_last(x), N = mt_last(y);
    int M = (int)mt_rows(x);
    if (x->requires_grad) /* the node overwrites: beta 0 for a fresh buffer */
        mt_gemm_run(&(MtGemm){.precision = c->precision, .M = M, .N = K, .K = N, .alpha = 1.0f, .A = y->grad,
                              .lda = N, .B = w->data, .ldb = K, .beta = mt_grad_accumulate(x) ? 1.0f : 0.0f,
                              .C = x->grad, .ldc = K});
    if (w->requires_grad)
        mt_gemm_run(&(MtGemm){.precision = c->precision, .transA = MT_TRANS, .M = N, .N = K, .K = M, .alpha = 1.0f,
                              .A = y->grad, .lda = N, .B = x->data, .ldb = K, .beta = 1.0f, .C = w->grad, .ldc = K});
    if (b && b->requires_grad) colsum_add(b->grad, y->grad, (size_t)M, N);
}

/* Shape check of a linear layer; 0, or -1 after recording the error. */
static int linear_check(Ctx *c, const char *op, const Tensor *x, const Tensor *w, const Tensor *b) {
    if (c->failed || !x || !w) return -1;
    char sx[96], sw[96], sb[96];
    if (w->ndim == 2 && mt_last(x) == w->shape[1] && (!b || (b->ndim == 1 && b->shape[0] == w->shape[0]))) return 0;
    mt_fail(c, op, "x %s, weight %s, bias %s: need x (..., in), weight (out, in), bias (out)%s%s",
            mt_shape_str(x, sx, sizeof sx), mt_shape_str(w, sw, sizeof sw), b ? mt_shape_str(b, sb, sizeof sb) : "none",
            w->name ? " for " : "", w->name ? w->name : "");
    return -1;
}

/* A new tensor of x's shape with the last axis n. */
static Tensor *with_last(Ctx *c, const Tensor *x, int n) {
    int shape[MT_MAXDIM];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = n;
    return mt_new(c, x->ndim, shape);
}

/* Output of a linear layer (x's shape, last axis out); NULL after recording the error. */
static Tensor *linear_out(Ctx *c, const char *op, Tensor *x, Tensor *w, Tensor *b) {
    return linear_check(c, op, x, w, b) ? NULL : with_last(c, x, w->shape[0]);
}

/* y = res + gamma * act(x @ w^T + b), every term but the product optional, in the GEMM's
 * epilogue; x's rows are M x K floats or (types MT_A_BF16) bf16. */
static void linear_gemm_as(Ctx *c, int types, const void *x, int M, Tensor *w, Tensor *b, mt_act_tile act,
                           Tensor *res, Tensor *gamma, Tensor *y) {
    int K = w->shape[1], N = w->shape[0];
    MtEpilogue ep = {.bias = b ? b->data : NULL, .act = act, .col_scale = gamma ? gamma->data : NULL,
                     .residual = res ? res->data : NULL};
    mt_gemm_run(&(MtGemm){.precision = c->precision, .types = types, .transB = MT_TRANS, .M = M, .N = N, .K = K,
                          .alpha = 1.0f, .A = x, .lda = K, .B = w->data, .ldb = K, .C = y->data, .ldc = N, .ep = &ep});
}

static void linear_gemm(Ctx *c, Tensor *x, Tensor *w, Tensor *b, mt_act_tile act, Tensor *res, Tensor *gamma,
                        Tensor *y) {
    linear_gemm_as(c, 0, x->data, (int)mt_rows(x), w, b, act, res, gamma, y);
}

Tensor *mt_linear(Ctx *c, Tensor *x, Tensor *w, Tensor *b) {
    Tensor *y = linear_out(c, "linear", x, w, b);
    if (!y) return NULL;
    linear_gemm(c, x, w, b, NULL, NULL, NULL, y);
    Tensor *in[3] = {x, w, b};
    if (mt_needs_grad(c, in, 3)) mt_record(c, "linear", linear_backward, y, in, 3)->overwrites = 1; /* x */
    return y;
}

/* res + gamma * y, or y when there is no residual: the tail of the composed references. */
static Tensor *or_residual(Ctx *c, Tensor *res, Tensor *y, Tensor *gamma) {
    return res ? mt_residual(c, res, y, gamma) : y;
}

/* act(x @ w^T + b) as the primitives: linear, then bias and activation as one op. */
static Tensor *linear_act_ref(Ctx *c, Tensor *x, Tensor *w, Tensor *b, mt_act act) {
    Tensor *h = mt_linear(c, x, w, NULL);
    return b ? mt_bias_act(c, h, b, act) : mt_activation(c, h, act);
}

Tensor *mt_linear_act(Ctx *c, Tensor *x, Tensor *w, Tensor *b, mt_act act) {
    Tensor *in[3] = {x, w, b};
    if (c->failed || !x || !w) return NULL;
    /* with a tape backward needs the pre-activation: the two recorded ops */
    if (!mt_fuse_ok(c, MT_FUSE_LINEAR_EPILOGUE, mt_needs_grad(c, in, 3))) return linear_act_ref(c, x, w, b, act);
    if (!mt_act_valid(act))
        return mt_fail(c, "linear_act", "unknown activation %d", (int)act);
    Tensor *y = linear_out(c, "linear_act", x, w, b);
    if (!y) return NULL;
    linear_gemm(c, x, w, b, mt_act_tile_fn(act), NULL, NULL, y);
    return y;
}

/* res (..., out) and gamma (out) or NULL: the residual branch's shapes; 0, or -1 after
 * recording the error. */
static int check_residual(Ctx *c, const char *op, const Tensor *y, const Tensor *res, const Tensor *gamma) {
    if (!res) return -1;
    int ok = mt_same_shape(res, y) && (!gamma || (gamma->ndim == 1 && gamma->shape[0] == mt_last(y)));
    if (ok) return 0;
    char sy[96], sr[96], sg[96];
    mt_fail(c, op, "output %s, residual %s, layer scale %s: the residual must have the output's shape and the "
            "scale its last axis", mt_shape_str(y, sy, sizeof sy), mt_shape_str(res, sr, sizeof sr),
            gamma ? mt_shape_str(gamma, sg, sizeof sg) : "none");
    return -1;
}

/* ---- an MLP's last linear layer in training: y = res + gamma * (act(h + b1) @ w^T + b) ----
 * One node in place of bias_act, linear and residual. It keeps a = act(h + b1) for dW (no
 * gradient buffer of its own) and stores neither the output before the residual nor a's
 * gradient; backward:
 *   dres = dy (the buffer is handed over)
 *   G = dy^T a, s = colsum(dy):  dW += gamma * G (by rows), db += gamma * s,
 *                                dgamma = rowdot(W, G) + b * s  (= colsum(dy * (a W^T + b)))
 *   dh = (dy @ (gamma * W)) * act'(h + b1), the derivative in the GEMM's epilogue, which
 *        also sums db1 = colsum(dh)
 * so the M x K activation sees one GEMM write and no element-wise pass, where the ops it
 * stands for write da, then read da and h and write dh. Without b1 and act (MT_ACT_NONE) a
 * is h itself: a linear layer with its residual. In MT_BF16 a is stored as bf16: both GEMMs
 * that read it round it to bf16 anyway, so nothing changes but the bytes (half the memory,
 * half the traffic of writing it and reading it twice). */

/* What an MLP-fc2 node keeps for backward. */
typedef struct ActLinearSaved {
    void *a;      /* act(h + b1), or NULL when a is h itself (no bias, no activation) */
    int bf16;     /* a is stored as bf16 (MT_BF16), else fp32 */
    mt_act act;
} ActLinearSaved;

/* The bias-and-activation pass of act_keep, a part of the node's forward. */
typedef struct BiasActPass {
    mt_act act;
    void *a;
    int bf;
    const Tensor *h, *b1;
} BiasActPass;

static void bias_act_pass(Ctx *c, void *arg) {
    (void)c;
    const BiasActPass *p = arg;
    const float *b1 = p->b1 ? p->b1->data : NULL;
    if (p->bf) mt_bias_act_rows_bf16(p->act, p->a, p->h->data, b1, mt_rows(p->h), mt_last(p->h));
    else mt_bias_act_rows(p->act, p->a, p->h->data, b1, mt_rows(p->h), mt_last(p->h));
}

/* Keeps a = act(h + b1) for the MLP-fc2 nodes: bf16 in MT_BF16 (*bf set), else fp32. The pass
 * is a part of its own: the profile shows it as what it is, "bias_act". It stays a pass: made
 * in fc1's GEMM epilogue beside h instead (the activation in registers), it lengthened each
 * of fc1's short-K tiles by as much as the pass costs (mixer_tiny, bf16: fc1 +0.9 ms per
 * block against a 0.9 ms pass); keeping act' there as well cost fc1 about what backward
 * saved. */
static void *act_keep(Ctx *c, mt_act act, Tensor *h, Tensor *b1, int *bf) {
    *bf = c->precision == MT_BF16;
    void *a = arena_alloc(&c->arena, h->numel * (*bf ? sizeof(uint16_t) : sizeof(float)));
    mt_part(c, MT_FORWARD, "bias_act", bias_act_pass, &(BiasActPass){act, a, *bf, h, b1});
    return a;
}

/* The kept a is dead (a node's backward is done with it). */
static void act_drop(Ctx *c, const ActLinearSaved *st, size_t numel) {
    mt_recycle(c, st->a, st->bf16 ? numel / 2 : numel); /* floats' worth */
}

static void act_linear_backward(Ctx *c, Node *n) {
    Tensor *h = n->in[0], *b1 = n->in[1], *w = n->in[2], *b = n->in[3], *res = n->in[4], *gamma = n->in[5];
    const ActLinearSaved *st = n->saved;
    const float *dy = n->out->grad, *g = gamma ? gamma->data : NULL;
    const void *a = st->a ? st->a : h->data;
    int K = w->shape[1], N = w->shape[0], M = (int)mt_rows(h), atype = st->bf16 ? MT_B_BF16 : 0;
    int want_w = w->requires_grad, want_b = b && b->requires_grad, want_g = gamma && gamma->requires_grad;
    if (res && res->requires_grad) grad_pass_through(c, n, res); /* dy keeps its address */
    ArenaMark mark = arena_mark(&c->arena);
    float *s = want_b || want_g ? arena_calloc(&c->arena, (size_t)N * sizeof(float)) : NULL;
    if (s) colsum_add(s, dy, (size_t)M, N);
    /* dW += dy^T a (no layer scale), or G = dy^T a */
    MtGemm dw = {.precision = c->precision, .types = atype, .transA = MT_TRANS, .M = N, .N = K, .K = M,
                 .alpha = 1.0f, .A = dy, .lda = N, .B = a, .ldb = K, .beta = 1.0f, .C = w->grad, .ldc = K};
    if (!g && want_w) mt_gemm_run(&dw);
    if (g && (want_w || want_g)) {
        float *G = arena_alloc(&c->arena, (size_t)N * K * sizeof(float));
        dw.beta = 0.0f, dw.C = G;
        mt_gemm_run(&dw);
#pragma omp parallel for schedule(static) if ((size_t)N * K >= MT_PAR_MIN)
        for (int j = 0; j < N; j++) {
            const float *Gj = G + (size_t)j * K, *wj = w->data + (size_t)j * K;
            if (want_g) {
                double d = b ? (double)b->data[j] * s[j] : 0.0;
                for (int k = 0; k < K; k++) d += (double)wj[k] * Gj[k];
                gamma->grad[j] += (float)d;
            }
            if (want_w)
                for (int k = 0; k < K; k++) w->grad[(size_t)j * K + k] += g[j] * Gj[k];
        }
    }
    if (want_b)
        for (int j = 0; j < N; j++) b->grad[j] += g ? g[j] * s[j] : s[j];
    int want_h = h->requires_grad, want_b1 = b1 && b1->requires_grad;
    if (want_h || want_b1) {
        const float *wd = w->data;
        if (g) { /* dy @ (gamma * W): the scale on the small matrix */
            float *ws = arena_alloc(&c->arena, (size_t)N * K * sizeof(float));
            for (int j = 0; j < N; j++)
                for (int k = 0; k < K; k++) ws[(size_t)j * K + k] = g[j] * w->data[(size_t)j * K + k];
            wd = ws;
        }
        int acc = want_h ? mt_grad_accumulate(h) : 0; /* the node overwrites h */
        float *dh = want_h && !acc ? h->grad : arena_alloc(&c->arena, (size_t)M * K * sizeof(float));
        if (st->a) {
            Partials p = want_b1 ? partials_new(c, 1, K) : (Partials){0};
            MtEpilogue ep = {.dact = mt_act_grad_rows_fn(st->act), .pre = h->data,
                             .pre_bias = b1 ? b1->data : NULL, .colsum = p.buf, .colsum_stride = p.stride};
            mt_gemm_run(&(MtGemm){.precision = c->precision, .M = M, .N = K, .K = N, .alpha = 1.0f, .A = dy, .lda = N,
                                  .B = wd, .ldb = K, .C = dh, .ldc = K, .ep = &ep});
            if (want_b1) partials_flush(&p, 0, K, b1->grad);
        } else {
            mt_gemm_run(&(MtGemm){.precision = c->precision, .M = M, .N = K, .K = N, .alpha = 1.0f, .A = dy, .lda = N,
                                  .B = wd, .ldb = K, .C = dh, .ldc = K});
        }
        if (want_h && acc) grad_add(h->grad, dh, (size_t)M * K);
    }
    arena_release(&c->arena, mark);
    act_drop(c, st, (size_t)M * K);
}

/* Records an MLP-fc2 node (in[0] = h, in[ires] = the residual or NULL): its backward
 * overwrites h's and the residual's gradients, and it keeps the activation a (or NULL; bf:
 * stored as bf16). */
static void record_act_node(Ctx *c, const char *op, mt_backward_fn backward, Tensor *y, Tensor **in, int nin,
                            int ires, void *a, int bf, mt_act act) {
    if (!mt_needs_grad(c, in, nin)) return;
    Node *n = mt_record(c, op, backward, y, in, nin);
    n->overwrites = 1u | (in[ires] ? 1u << ires : 0u);
    ActLinearSaved *st = arena_alloc(&c->arena, sizeof *st);
    *st = (ActLinearSaved){.a = a, .bf16 = bf, .act = act};
    n->saved = st;
}

Tensor *mt_act_linear_residual(Ctx *c, Tensor *h, Tensor *b1, mt_act act, Tensor *w, Tensor *b, Tensor *res,
                               Tensor *gamma) {
    const char *op = "act_linear_residual";
    if (!mt_act_valid(act)) return mt_fail(c, op, "unknown activation %d", (int)act);
    Tensor *y = linear_out(c, op, h, w, b);
    if (!y || (res && check_residual(c, op, y, res, gamma))) return NULL;
    char sh[96], sb[96];
    if (b1 && (b1->ndim != 1 || b1->shape[0] != mt_last(h)))
        return mt_fail(c, op, "h %s, bias %s%s%s: the activation's bias must be (%d), h's last axis",
                       mt_shape_str(h, sh, sizeof sh), mt_shape_str(b1, sb, sizeof sb), b1->name ? " for " : "",
                       b1->name ? b1->name : "", mt_last(h));
    if (gamma && !res) return mt_fail(c, op, "a layer scale needs a residual");
    Tensor *in[6] = {h, b1, w, b, res, gamma};
    if (!mt_fuse_ok(c, MT_FUSE_ACT_LINEAR_RESIDUAL, mt_needs_grad(c, in, 6)))
        return or_residual(c, res, mt_linear(c, b1 ? mt_bias_act(c, h, b1, act) : mt_activation(c, h, act), w, b), gamma);
    void *a = NULL;
    int bf = 0;
    if (b1 || act != MT_ACT_NONE) a = act_keep(c, act, h, b1, &bf);
    linear_gemm_as(c, bf ? MT_A_BF16 : 0, a ? a : h->data, (int)mt_rows(h), w, b, NULL, res, gamma, y);
    record_act_node(c, op, act_linear_backward, y, in, 6, 4, a, bf, act);
    return y;
}

Tensor *mt_linear_residual(Ctx *c, Tensor *x, Tensor *w, Tensor *b, Tensor *res, Tensor *gamma) {
    Tensor *in[5] = {x, w, b, res, gamma};
    if (c->failed || !x || !w || !res) return NULL;
    int taped = mt_needs_grad(c, in, 5);
    if (!mt_fuse_ok(c, MT_FUSE_LINEAR_EPILOGUE, taped)) {
        if (mt_fuse_ok(c, MT_FUSE_ACT_LINEAR_RESIDUAL, taped))
            return mt_act_linear_residual(c, x, NULL, MT_ACT_NONE, w, b, res, gamma);
        return mt_residual(c, res, mt_linear(c, x, w, b), gamma);
    }
    Tensor *y = linear_out(c, "linear_residual", x, w, b);
    if (!y || check_residual(c, "linear_residual", y, res, gamma)) return NULL;
    linear_gemm(c, x, w, b, NULL, res, gamma, y);
    return y;
}

/* The norm op of kind (LayerNorm or GroupNorm(1)) on the tape: the reference of the norm a
 * fused op applies in a GEMM prologue. */
static Tensor *norm_op(Ctx *c, MtNormKind kind, Tensor *x, Tensor *nw, Tensor *nb, float eps) {
    return kind == MT_NORM_GROUP1 ? mt_groupnorm1(c, x, nw, nb, eps) : mt_layernorm(c, x, nw, nb, eps);
}

/* kind is LayerNorm or GroupNorm(1), the norms with a GEMM prologue; 0, or -1 after recording
 * the error. */
static int check_norm_kind(Ctx *c, const char *op, MtNormKind kind) {
    if (kind == MT_NORM_LAYER || kind == MT_NORM_GROUP1) return 0;
    mt_fail(c, op, "norm kind %d: need LayerNorm (%d) or GroupNorm(1) (%d)", (int)kind, MT_NORM_LAYER, MT_NORM_GROUP1);
    return -1;
}

static const char *norm_name(MtNormKind kind) { return kind == MT_NORM_GROUP1 ? "groupnorm1" : "layernorm"; }

/* The GEMM prologue of a LayerNorm or GroupNorm(1) on x: its statistics (arena) and affine;
 * 0, or -1 after recording the error. */
static int norm_prologue(Ctx *c, const char *op, Tensor *x, MtNormKind kind, Tensor *nw, Tensor *nb, float eps,
                         MtPrologue *pro) {
    size_t rows = mt_rows(x), groups = kind == MT_NORM_GROUP1 ? (size_t)x->shape[0] : rows;
    float *mean = arena_alloc(&c->arena, 2 * groups * sizeof(float)), *rstd = mean + groups;
    if (mt_norm_stats(c, op, x, kind, nw, nb, eps, mean, rstd)) return -1;
    *pro = (MtPrologue){mean, rstd, groups ? (int)(rows / groups) : 1, nw ? nw->data : NULL, nb ? nb->data : NULL};
    return 0;
}

Tensor *mt_norm_linear_act(Ctx *c, Tensor *x, MtNormKind kind, Tensor *nw, Tensor *nb, float eps, Tensor *w,
                           Tensor *b, mt_act act) {
    Tensor *in[5] = {x, nw, nb, w, b};
    const char *op = kind == MT_NORM_GROUP1 ? "groupnorm1_linear_act" : "layernorm_linear_act";
    if (c->failed || !x || !w || check_norm_kind(c, op, kind)) return NULL;
    /* with a tape (no node of its own here) the norm op and mt_linear_act */
    if (mt_needs_grad(c, in, 5) || !mt_fuse_ok(c, MT_FUSE_NORM_PROLOGUE, 0))
        return mt_linear_act(c, norm_op(c, kind, x, nw, nb, eps), w, b, act);
    if (!mt_act_valid(act)) return mt_fail(c, op, "unknown activation %d", (int)act);
    MtPrologue pro;
    if (norm_prologue(c, op, x, kind, nw, nb, eps, &pro)) return NULL;
    Tensor *y = linear_out(c, op, x, w, b);
    if (!y) return NULL;
    int K = mt_last(x), N = w->shape[0];
    MtEpilogue ep = {.bias = b ? b->data : NULL, .act = mt_act_tile_fn(act)};
    mt_gemm_run(&(MtGemm){.precision = c->precision, .transB = MT_TRANS, .M = (int)mt_rows(x), .N = N, .K = K,
                          .alpha = 1.0f, .A = x->data, .lda = K, .B = w->data, .ldb = K, .C = y->data, .ldc = N,
                          .pro = &pro, .ep = &ep});
    return y;
}

/* ---- norm + fc1 in training: h = norm(x) @ w^T as one node ----
 * The GEMM normalises A's rows while packing (the prologue), so norm(x), an activation of x's
 * size per block, is never stored: backward makes it again into a scratch buffer for dW
 * (bf16 under MT_BF16, the words the GEMM would pack) and runs the norm's own backward on
 * dh @ w. Every value is the one the norm op followed by `linear` gives. */

/* What a norm + fc1 node keeps: the norm's kind and statistics (one per row for LayerNorm,
 * per sample for GroupNorm(1)). */
typedef struct NormLinearSaved {
    MtNormKind kind;
    const float *mean, *rstd;
} NormLinearSaved;

/* The norm's passes inside a norm + fc1 node (parts of its own in a profile, the norm's line):
 * norm(x) again into y (bf16 when bf), or the norm's backward from dy. */
typedef struct NormPass {
    const NormLinearSaved *st;
    Tensor *x, *nw, *nb;
    void *y;
    int bf;
    float *dy;
} NormPass;

static void norm_apply_pass(Ctx *c, void *arg) {
    (void)c;
    const NormPass *p = arg;
    mt_norm_apply(p->st->kind, p->x, p->nw, p->nb, p->st->mean, p->st->rstd, p->bf ? NULL : p->y, p->bf ? p->y : NULL);
}

static void norm_backward_pass(Ctx *c, void *arg) {
    const NormPass *p = arg;
    mt_norm_backward(c, p->st->kind, p->x, p->nw, p->nb, p->st->mean, p->st->rstd, p->dy);
}

static void norm_linear_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *nw = n->in[1], *nb = n->in[2], *w = n->in[3];
    const NormLinearSaved *st = n->saved;
    const float *dh = n->out->grad;
    int K = mt_last(x), N = w->shape[0], M = (int)mt_rows(x);
    const char *norm = norm_name(st->kind);
    ArenaMark mark = arena_mark(&c->arena);
    if (w->requires_grad) {
        int bf = c->precision == MT_BF16;
        void *y = arena_alloc(&c->arena, x->numel * (bf ? sizeof(uint16_t) : sizeof(float)));
        mt_part(c, MT_BACKWARD, norm, norm_apply_pass,
                &(NormPass){.st = st, .x = x, .nw = nw, .nb = nb, .y = y, .bf = bf});
        mt_gemm_run(&(MtGemm){.precision = c->precision, .types = bf ? MT_B_BF16 : 0, .transA = MT_TRANS, .M = N,
                              .N = K, .K = M, .alpha = 1.0f, .A = dh, .lda = N, .B = y, .ldb = K, .beta = 1.0f,
                              .C = w->grad, .ldc = K});
        arena_release(&c->arena, mark); /* dy below reuses the space */
    }
    if (x->requires_grad || (nw && nw->requires_grad) || (nb && nb->requires_grad)) {
        float *dy = arena_alloc(&c->arena, x->numel * sizeof(float));
        mt_gemm_run(&(MtGemm){.precision = c->precision, .M = M, .N = K, .K = N, .alpha = 1.0f, .A = dh, .lda = N,
                              .B = w->data, .ldb = K, .C = dy, .ldc = K});
        mt_part(c, MT_BACKWARD, norm, norm_backward_pass,
                &(NormPass){.st = st, .x = x, .nw = nw, .nb = nb, .dy = dy});
    }
    arena_release(&c->arena, mark);
}

/* norm_prologue as a part of a node's forward: the statistics pass shows on the norm's line. */
typedef struct NormStatsPass {
    const char *op;
    Tensor *x, *nw, *nb;
    MtNormKind kind;
    float eps;
    MtPrologue *pro;
    int rc;
} NormStatsPass;

static void norm_stats_pass(Ctx *c, void *arg) {
    NormStatsPass *p = arg;
    p->rc = norm_prologue(c, p->op, p->x, p->kind, p->nw, p->nb, p->eps, p->pro);
}

/* h = norm(x) @ w^T with a tape. */
static Tensor *norm_linear_taped(Ctx *c, Tensor *x, MtNormKind kind, Tensor *nw, Tensor *nb, float eps, Tensor *w) {
    const char *op = kind == MT_NORM_GROUP1 ? "groupnorm1_linear" : "layernorm_linear";
    MtPrologue pro;
    Tensor *h = linear_out(c, op, x, w, NULL);
    if (!h) return NULL;
    NormStatsPass stats = {op, x, nw, nb, kind, eps, &pro, 0};
    mt_part(c, MT_FORWARD, norm_name(kind), norm_stats_pass, &stats);
    if (stats.rc) return NULL;
    int K = mt_last(x), N = w->shape[0];
    mt_gemm_run(&(MtGemm){.precision = c->precision, .transB = MT_TRANS, .M = (int)mt_rows(x), .N = N, .K = K,
                          .alpha = 1.0f, .A = x->data, .lda = K, .B = w->data, .ldb = K, .C = h->data, .ldc = N,
                          .pro = &pro});
    Tensor *in[4] = {x, nw, nb, w};
    if (mt_needs_grad(c, in, 4)) {
        Node *n = mt_record(c, op, norm_linear_backward, h, in, 4);
        n->overwrites = 1; /* x, through the norm's backward */
        NormLinearSaved *st = arena_alloc(&c->arena, sizeof *st);
        *st = (NormLinearSaved){kind, pro.mean, pro.rstd};
        n->saved = st;
    }
    return h;
}

/* mt_norm_mlp_residual on mt_gemm_chain, without a tape; NULL when the chain does not run
 * (c->failed set only for a real error). */
static Tensor *norm_mlp_chained(Ctx *c, Tensor *x, MtNormKind kind, Tensor *nw, Tensor *nb, float eps, Tensor *w1,
                                Tensor *b1, mt_act act, Tensor *w2, Tensor *b2, Tensor *res, Tensor *gamma) {
    if (w1->ndim != 2 || w2->ndim != 2 || !mt_gemm_chain_fits(c->precision, mt_last(x), w1->shape[0], w2->shape[0]))
        return NULL;
    const char *op = kind == MT_NORM_GROUP1 ? "groupnorm1_mlp_residual" : "layernorm_mlp_residual";
    if (!mt_act_valid(act)) return mt_fail(c, op, "unknown activation %d", (int)act);
    if (linear_check(c, op, x, w1, b1)) return NULL;
    int K = mt_last(x), N1 = w1->shape[0], N2 = w2->shape[0];
    char s1[96], s2[96], sb[96];
    if (w2->shape[1] != N1 || (b2 && (b2->ndim != 1 || b2->shape[0] != N2)))
        return mt_fail(c, op, "fc1 weight %s, fc2 weight %s, fc2 bias %s: need fc2 weight (out, %d), bias (out)%s%s",
                       mt_shape_str(w1, s1, sizeof s1), mt_shape_str(w2, s2, sizeof s2),
                       b2 ? mt_shape_str(b2, sb, sizeof sb) : "none", N1, w2->name ? " for " : "", w2->name ? w2->name : "");
    Tensor *y = with_last(c, x, N2);
    MtPrologue pro;
    if (!y || check_residual(c, op, y, res, gamma) || norm_prologue(c, op, x, kind, nw, nb, eps, &pro)) return NULL;
    MtEpilogue ep1 = {.bias = b1 ? b1->data : NULL, .act = mt_act_tile_fn(act)};
    MtEpilogue ep2 = {.bias = b2 ? b2->data : NULL, .col_scale = gamma ? gamma->data : NULL, .residual = res->data};
    return mt_gemm_chain(c->precision, (int)mt_rows(x), K, N1, N2, x->data, K, &pro, w1->data, &ep1, w2->data,
                         y->data, N2, &ep2) == 0 ? y : NULL;
}

Tensor *mt_mlp_residual(Ctx *c, Tensor *x, Tensor *w1, Tensor *b1, mt_act act, Tensor *w2, Tensor *b2, Tensor *res,
                        Tensor *gamma) {
    Tensor *in[7] = {x, w1, b1, w2, b2, res, gamma};
    if (c->failed || !x || !w1 || !w2) return NULL;
    /* with a tape fc1 without its bias, the node adding it before the activation; without one
     * the two epilogue ops below beat the node (which would keep act(h) for nothing) */
    if (mt_needs_grad(c, in, 7) && mt_fuse_ok(c, MT_FUSE_ACT_LINEAR_RESIDUAL, 1))
        return mt_act_linear_residual(c, mt_linear(c, x, w1, NULL), b1, act, w2, b2, res, gamma);
    Tensor *h = mt_linear_act(c, x, w1, b1, act);
    return res ? mt_linear_residual(c, h, w2, b2, res, gamma) : mt_linear(c, h, w2, b2);
}

Tensor *mt_norm_mlp_residual(Ctx *c, Tensor *x, MtNormKind kind, Tensor *nw, Tensor *nb, float eps, Tensor *w1,
                             Tensor *b1, mt_act act, Tensor *w2, Tensor *b2, Tensor *res, Tensor *gamma) {
    if (c->failed || !x || !w1 || !w2 || !res) return NULL;
    if (check_norm_kind(c, kind == MT_NORM_GROUP1 ? "groupnorm1_mlp_residual" : "layernorm_mlp_residual", kind))
        return NULL;
    Tensor *in[9] = {x, nw, nb, w1, b1, w2, b2, res, gamma};
    if (mt_needs_grad(c, in, 9)) {
        Tensor *h = mt_fuse_ok(c, MT_FUSE_NORM_PROLOGUE, 1) ? norm_linear_taped(c, x, kind, nw, nb, eps, w1)
                                                            : mt_linear(c, norm_op(c, kind, x, nw, nb, eps), w1, NULL);
        return mt_act_linear_residual(c, h, b1, act, w2, b2, res, gamma);
    }
    if (mt_fuse_ok(c, MT_FUSE_MLP_CHAIN, 0)) {
        Tensor *y = norm_mlp_chained(c, x, kind, nw, nb, eps, w1, b1, act, w2, b2, res, gamma);
        if (y || c->failed) return y;
    }
    return mt_linear_residual(c, mt_norm_linear_act(c, x, kind, nw, nb, eps, w1, b1, act), w2, b2, res, gamma);
}

/* ---- token mixing: y[b] (N2, C) = w (N2, N) @ x[b] (N, C) + bias[:, None] ---- */

/* db[j] += sum over samples and channels of dy[b, j, :] (a token-mixing bias gradient). */
static void token_bias_grad(float *db, const float *dy, int B, int N2, int C) {
#pragma omp parallel for schedule(static) if ((size_t)B * N2 * C >= MT_PAR_MIN)
    for (int j = 0; j < N2; j++) {
        double s = 0;
        for (int b = 0; b < B; b++) {
            const float *row = dy + ((size_t)b * N2 + j) * C;
#pragma omp simd reduction(+ : s)
            for (int k = 0; k < C; k++) s += row[k];
        }
        db[j] += (float)s;
    }
}

static void token_linear_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *w = n->in[1], *bias = n->in[2], *y = n->out;
    int B = x->shape[0], N = x->shape[1], C = x->shape[2], N2 = w->shape[0];
    if (x->requires_grad)
        mt_gemm_run(&(MtGemm){.precision = c->precision, .transA = MT_TRANS, .M = N, .N = C, .K = N2, .alpha = 1.0f,
                              .A = w->data, .lda = N, .B = y->grad, .ldb = C, .strideB = (long)N2 * C,
                              .beta = mt_grad_accumulate(x) ? 1.0f : 0.0f, /* overwrites */
                              .C = x->grad, .ldc = C, .strideC = (long)N * C, .batch = B});
    /* dW = sum_b dY_b (N2, C) @ X_b^T (C, N): one GEMM over K = B * C that reads the samples
     * where they are (B small GEMMs into the same buffer would each pay a fork/join, and
     * copying the batch out along K cost as much as the GEMM). */
    if (w->requires_grad)
        mt_gemm_run(&(MtGemm){.precision = c->precision, .transB = MT_TRANS, .M = N2, .N = N, .K = C, .alpha = 1.0f,
                              .A = y->grad, .lda = C, .strideA = (long)N2 * C, .B = x->data, .ldb = C,
                              .strideB = (long)N * C, .beta = 1.0f, .C = w->grad, .ldc = N, .batch = B, .sum = 1});
    if (bias && bias->requires_grad) token_bias_grad(bias->grad, y->grad, B, N2, C);
}

/* Shape check and output of token mixing; NULL after recording the error. */
static Tensor *token_out(Ctx *c, const char *op, Tensor *x, Tensor *w, Tensor *bias) {
    if (c->failed || !x || !w) return NULL;
    char sx[96], sw[96], sb[96];
    if (x->ndim != 3 || w->ndim != 2 || w->shape[1] != x->shape[1] ||
        (bias && (bias->ndim != 1 || bias->shape[0] != w->shape[0])))
        return mt_fail(c, op, "x %s, weight %s, bias %s: need x (B, N, C), weight (N2, N), bias (N2)%s%s",
                       mt_shape_str(x, sx, sizeof sx), mt_shape_str(w, sw, sizeof sw),
                       bias ? mt_shape_str(bias, sb, sizeof sb) : "none", w->name ? " for " : "",
                       w->name ? w->name : "");
    return mt_new3(c, x->shape[0], w->shape[0], x->shape[2]);
}

/* y[b] = res[b] + gamma * act(w @ x[b] + bias[:, None]): one GEMM per sample, the weight
 * shared (stride 0), bias, activation and residual in the epilogue; x's data xd is fp32 or
 * (types MT_B_BF16) bf16. */
static void token_gemm_as(Ctx *c, int types, const void *xd, Tensor *x, Tensor *w, Tensor *bias, mt_act_tile act,
                          Tensor *res, Tensor *gamma, Tensor *y) {
    int B = x->shape[0], N = x->shape[1], C = x->shape[2], N2 = w->shape[0];
    MtEpilogue ep = {.row_bias = bias ? bias->data : NULL, .act = act, .col_scale = gamma ? gamma->data : NULL,
                     .residual = res ? res->data : NULL};
    mt_gemm_run(&(MtGemm){.precision = c->precision, .types = types, .M = N2, .N = C, .K = N, .alpha = 1.0f,
                          .A = w->data, .lda = N, .B = xd, .ldb = C, .strideB = (long)N * C, .C = y->data, .ldc = C,
                          .strideC = (long)N2 * C, .batch = B, .ep = &ep});
}

static void token_gemm(Ctx *c, Tensor *x, Tensor *w, Tensor *bias, mt_act_tile act, Tensor *res, Tensor *gamma,
                       Tensor *y) {
    token_gemm_as(c, 0, x->data, x, w, bias, act, res, gamma, y);
}

Tensor *mt_token_linear(Ctx *c, Tensor *x, Tensor *w, Tensor *bias) {
    Tensor *y = token_out(c, "token_linear", x, w, bias);
    if (!y) return NULL;
    token_gemm(c, x, w, bias, NULL, NULL, NULL, y);
    Tensor *in[3] = {x, w, bias};
    if (mt_needs_grad(c, in, 3)) mt_record(c, "token_linear", token_linear_backward, y, in, 3)->overwrites = 1; /* x */
    return y;
}

Tensor *mt_token_linear_act(Ctx *c, Tensor *x, Tensor *w, Tensor *bias, mt_act act) {
    Tensor *in[3] = {x, w, bias};
    if (c->failed || !x || !w) return NULL;
    if (!mt_fuse_ok(c, MT_FUSE_TOKEN_EPILOGUE, mt_needs_grad(c, in, 3)))
        return mt_activation(c, mt_token_linear(c, x, w, bias), act);
    if (!mt_act_valid(act)) return mt_fail(c, "token_linear_act", "unknown activation %d", (int)act);
    Tensor *y = token_out(c, "token_linear_act", x, w, bias);
    if (!y) return NULL;
    token_gemm(c, x, w, bias, mt_act_tile_fn(act), NULL, NULL, y);
    return y;
}

/* [res +] w @ act(h[b]) + bias[:, None]: the token MLP's fc2 in training as one node (the
 * equal of activation + token_linear + residual). Keeps a = act(h) for dW; backward: dres is
 * dy's buffer handed over, dW = sum_b dY_b a_b^T in one GEMM, dh_b = (w^T dY_b) * act'(h_b)
 * with the derivative in the batched GEMM's epilogue, so neither da nor fc2's output before
 * the residual is ever stored. */
static void token_act_linear_backward(Ctx *c, Node *n) {
    Tensor *h = n->in[0], *w = n->in[1], *bias = n->in[2], *res = n->in[3];
    const ActLinearSaved *st = n->saved;
    const float *dy = n->out->grad;
    int B = h->shape[0], N = h->shape[1], C = h->shape[2], N2 = w->shape[0];
    if (res && res->requires_grad) grad_pass_through(c, n, res); /* dy keeps its address */
    if (w->requires_grad)
        mt_gemm_run(&(MtGemm){.precision = c->precision, .types = st->bf16 ? MT_B_BF16 : 0, .transB = MT_TRANS,
                              .M = N2, .N = N, .K = C, .alpha = 1.0f, .A = dy, .lda = C, .strideA = (long)N2 * C,
                              .B = st->a, .ldb = C, .strideB = (long)N * C, .beta = 1.0f, .C = w->grad, .ldc = N,
                              .batch = B, .sum = 1});
    if (bias && bias->requires_grad) token_bias_grad(bias->grad, dy, B, N2, C);
    if (h->requires_grad) {
        ArenaMark mark = arena_mark(&c->arena);
        int acc = mt_grad_accumulate(h); /* the node overwrites h */
        float *dh = acc ? arena_alloc(&c->arena, h->numel * sizeof(float)) : h->grad;
        MtEpilogue ep = {.dact = mt_act_grad_rows_fn(st->act), .pre = h->data};
        mt_gemm_run(&(MtGemm){.precision = c->precision, .transA = MT_TRANS, .M = N, .N = C, .K = N2, .alpha = 1.0f,
                              .A = w->data, .lda = N, .B = dy, .ldb = C, .strideB = (long)N2 * C, .C = dh, .ldc = C,
                              .strideC = (long)N * C, .batch = B, .ep = &ep});
        if (acc) grad_add(h->grad, dh, h->numel);
        arena_release(&c->arena, mark);
    }
    act_drop(c, st, h->numel);
}

Tensor *mt_token_act_linear_residual(Ctx *c, Tensor *h, mt_act act, Tensor *w, Tensor *bias, Tensor *res) {
    const char *op = "token_act_linear_residual";
    if (c->failed || !h || !w) return NULL;
    if (!mt_act_valid(act) || act == MT_ACT_NONE) return mt_fail(c, op, "needs an activation, got %d", (int)act);
    Tensor *y = token_out(c, op, h, w, bias);
    if (!y || (res && check_residual(c, op, y, res, NULL))) return NULL;
    Tensor *in[4] = {h, w, bias, res};
    if (!mt_fuse_ok(c, MT_FUSE_TOKEN_ACT_LINEAR_RESIDUAL, mt_needs_grad(c, in, 4)))
        return or_residual(c, res, mt_token_linear(c, mt_activation(c, h, act), w, bias), NULL);
    int bf;
    void *a = act_keep(c, act, h, NULL, &bf);
    token_gemm_as(c, bf ? MT_B_BF16 : 0, a, h, w, bias, NULL, res, NULL, y);
    record_act_node(c, op, token_act_linear_backward, y, in, 4, 3, a, bf, act);
    return y;
}

Tensor *mt_token_mlp_residual(Ctx *c, Tensor *x, Tensor *w1, Tensor *b1, mt_act act, Tensor *w2, Tensor *b2,
                              Tensor *res, Tensor *gamma) {
    Tensor *in[7] = {x, w1, b1, w2, b2, res, gamma};
    if (c->failed || !x || !w1 || !w2) return NULL;
    /* the node takes no layer scale and needs an activation */
    if (mt_needs_grad(c, in, 7) && !gamma && act != MT_ACT_NONE && mt_act_valid(act) &&
        mt_fuse_ok(c, MT_FUSE_TOKEN_ACT_LINEAR_RESIDUAL, 1))
        return mt_token_act_linear_residual(c, mt_token_linear(c, x, w1, b1), act, w2, b2, res);
    Tensor *t = mt_token_linear_act(c, x, w1, b1, act);
    return res ? mt_token_linear_residual(c, t, w2, b2, res, gamma) : mt_token_linear(c, t, w2, b2);
}

Tensor *mt_token_linear_residual(Ctx *c, Tensor *x, Tensor *w, Tensor *bias, Tensor *res, Tensor *gamma) {
    Tensor *in[5] = {x, w, bias, res, gamma};
    if (c->failed || !x || !w || !res) return NULL;
    if (!mt_fuse_ok(c, MT_FUSE_TOKEN_EPILOGUE, mt_needs_grad(c, in, 5)))
        return mt_residual(c, res, mt_token_linear(c, x, w, bias), gamma);
    Tensor *y = token_out(c, "token_linear_residual", x, w, bias);
    if (!y || check_residual(c, "token_linear_residual", y, res, gamma)) return NULL;
    token_gemm(c, x, w, bias, NULL, res, gamma, y);
    return y;
}
