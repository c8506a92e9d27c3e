/* act_linear_residual (an MLP's last layer in training as one node) and the GEMM epilogue
 * that takes an activation's backward:
 *   - the epilogue (C *= act'(pre + bias), column sums) equals the GEMM followed by the row
 *     kernel, for every activation, precision and kernel path, batched too;
 *   - gradients against finite differences, with and without every optional term, with h
 *     also read by another op (its gradient accumulates) and as activations (fresh buffers);
 *   - output and every gradient equal to the ops it stands for (bias_act + linear +
 *     residual), on every path, fp32 and bf16, on a shape with edge tiles and threads;
 *   - mlp_residual: gradients, and the shapes errors name. */
#include "gradcheck.h"
#include "core/gemm.h"

static const mt_act acts[] = {MT_ACT_GELU, MT_ACT_GELU_TANH, MT_ACT_RELU, MT_ACT_SILU, MT_ACT_NONE};

/* The epilogue against the plain GEMM + row kernel: dh (M x K) = dy (M x N) @ W (N x K). */
static void check_epilogue(void) {
    int M = 150, N = 70, K = 200, batch = 3;
    size_t mk = (size_t)M * K * batch;
    float *dy = malloc((size_t)M * N * batch * 4), *W = malloc((size_t)N * K * 4), *pre = malloc(mk * 4);
    float *b = malloc((size_t)K * 4), *got = malloc(mk * 4), *want = malloc(mk * 4);
    int nt = omp_get_max_threads();
    double *part = malloc((size_t)nt * K * 8), *ref = malloc((size_t)K * 8);
    for (size_t i = 0; i < (size_t)M * N * batch; i++) dy[i] = gc_uniform() * 2 - 1;
    for (int i = 0; i < N * K; i++) W[i] = gc_uniform() * 0.4f - 0.2f;
    for (size_t i = 0; i < mk; i++) pre[i] = gc_uniform() * 6 - 3;
    for (int i = 0; i < K; i++) b[i] = gc_uniform() - 0.5f;
    const int precs[] = {MT_FP32, MT_BF16};
    for (int fb = 0; fb < MT_GEMM_PATHS; fb++)
        for (int pi = 0; pi < 2; pi++)
            for (int ai = 0; ai < 5; ai++)
                for (int bt = 0; bt < 2; bt++) { /* bt 1: batched, three GEMMs sharing W */
                    mt_gemm_test_path(fb);
                    int nb = bt ? batch : 1;
                    mt_act_grad_rows d = mt_act_grad_rows_fn(acts[ai]);
                    MtGemm g = {.precision = precs[pi], .M = M, .N = K, .K = N, .alpha = 1.0f, .A = dy, .lda = N,
                                .strideA = (long)M * N, .B = W, .ldb = K, .C = want, .ldc = K,
                                .strideC = (long)M * K, .batch = nb};
                    mt_gemm_run(&g);
                    memset(ref, 0, (size_t)K * 8);
                    for (size_t r = 0; r < (size_t)M * nb; r++)
                        d(want + r * K, want + r * K, pre + r * K, (size_t)K, b, ref, 1, K, 0);
                    memset(part, 0, (size_t)nt * K * 8);
                    for (size_t i = 0; i < mk; i++) got[i] = NAN; /* beta 0: C is not read */
                    MtEpilogue ep = {.dact = d, .pre = pre, .pre_bias = b, .colsum = part, .colsum_stride = K};
                    g.C = got, g.ep = &ep;
                    mt_gemm_run(&g);
                    /* the kernels sum in float over runs of rows, then in double: each column
                     * sum within 1e-6 of the sum of its terms' magnitudes */
                    int bad_sum = -1;
                    for (int j = 0; j < K && bad_sum < 0; j++) {
                        double s = 0, mag = 0;
                        for (int t = 0; t < nt; t++) s += part[(size_t)t * K + j];
                        for (size_t r = 0; r < (size_t)M * nb; r++) mag += fabs(want[r * K + j]);
                        if (!(fabs(s - ref[j]) <= 1e-6 * (1.0 + mag))) bad_sum = j;
                    }
                    char name[96];
                    snprintf(name, sizeof name, "dact epilogue %s%s act %d%s", mt_gemm_path_name(fb),
                             pi ? "bf16" : "fp32", ai, bt ? " batched" : "");
                    gc_expect(name, got, want, (size_t)M * K * nb, 0.0);
                    snprintf(name, sizeof name, "dact column sums %s%s act %d%s", mt_gemm_path_name(fb),
                             pi ? "bf16" : "fp32", ai, bt ? " batched" : "");
                    if (bad_sum >= 0) fprintf(stderr, "[%s] column %d off\n", name, bad_sum), gc_failures++;
                    else printf("%-28s ok\n", name);
                }
    mt_gemm_test_path(0);
    free(dy), free(W), free(pre), free(b), free(got), free(want), free(part), free(ref);
}

typedef struct {
    mt_act act;
    int b1, b, res, gamma, shared; /* which optional terms; shared: h also feeds another op */
} Variant;

/* in: h, b1, w, b, res, gamma, w3 (the other consumer of h) */
static Tensor *f_fused(Ctx *c, Tensor **in, void *arg) {
    const Variant *v = arg;
    Tensor *y = mt_act_linear_residual(c, in[0], v->b1 ? in[1] : NULL, v->act, in[2], v->b ? in[3] : NULL,
                                       v->res ? in[4] : NULL, v->gamma ? in[5] : NULL);
    return v->shared ? mt_add(c, y, mt_linear(c, in[0], in[6], NULL)) : y;
}
/* the same from the separate ops */
static Tensor *f_parts(Ctx *c, Tensor **in, void *arg) {
    const Variant *v = arg;
    Tensor *a = v->b1 ? mt_bias_act(c, in[0], in[1], v->act) : mt_activation(c, in[0], v->act);
    Tensor *y = mt_linear(c, a, in[2], v->b ? in[3] : NULL);
    if (v->res) y = mt_residual(c, in[4], y, v->gamma ? in[5] : NULL);
    return v->shared ? mt_add(c, y, mt_linear(c, in[0], in[6], NULL)) : y;
}
/* in: x, w1, b1, w2, b2, res, gamma */
static Tensor *f_mlp(Ctx *c, Tensor **in, void *arg) {
    (void)arg;
    return mt_mlp_residual(c, in[0], in[1], in[2], MT_ACT_GELU, in[3], in[4], in[5], in[6]);
}

/* in: h (B, N, C), w (N2, N), bias (N2), res (B, N2, C), w3 (N2, N) (another consumer of h) */
static Tensor *f_token_fused(Ctx *c, Tensor **in, void *arg) {
    const Variant *v = arg;
    Tensor *y = mt_token_act_linear_residual(c, in[0], v->act, in[1], v->b ? in[2] : NULL, v->res ? in[3] : NULL);
    return v->shared ? mt_add(c, y, mt_token_linear(c, in[0], in[4], NULL)) : y;
}
static Tensor *f_token_parts(Ctx *c, Tensor **in, void *arg) {
    const Variant *v = arg;
    Tensor *y = mt_token_linear(c, mt_activation(c, in[0], v->act), in[1], v->b ? in[2] : NULL);
    if (v->res) y = mt_residual(c, in[3], y, NULL);
    return v->shared ? mt_add(c, y, mt_token_linear(c, in[0], in[4], NULL)) : y;
}

/* Output and all gradients of fused and parts for one variant; returns 1 on a mismatch. */
static int compare2(const char *name, gc_forward fused, gc_forward parts, Tensor **in, int nin, void *v, int prec,
                    double tol) {
    float *out[2] = {0}, *grads[2][9] = {{0}};
    size_t nout = 0;
    for (int pass = 0; pass < 2; pass++) {
        Ctx c;
        mt_ctx_init(&c, 1 << 20);
        c.precision = prec;
        c.poison_fresh = 1;
        for (int k = 0; k < nin; k++) memset(in[k]->grad, 0, in[k]->numel * sizeof(float));
        Tensor *o = (pass ? parts : fused)(&c, in, v);
        if (!o) { fprintf(stderr, "[%s] forward failed: %s\n", name, c.err); gc_failures++; mt_ctx_free(&c); return 1; }
        nout = o->numel;
        float *seed = malloc(nout * sizeof(float));
        for (size_t i = 0; i < nout; i++) seed[i] = (float)((i * 7919u) % 1000u) / 500.0f - 1.0f;
        if (mt_backward_seed(&c, o, seed)) fprintf(stderr, "[%s] backward: %s\n", name, c.err), gc_failures++;
        out[pass] = malloc(nout * sizeof(float));
        memcpy(out[pass], o->data, nout * sizeof(float));
        for (int k = 0; k < nin; k++) {
            grads[pass][k] = malloc(in[k]->numel * sizeof(float));
            memcpy(grads[pass][k], in[k]->grad, in[k]->numel * sizeof(float));
        }
        free(seed);
        mt_ctx_free(&c);
    }
    int bad = gc_expect(name, out[0], out[1], nout, tol);
    for (int k = 0; k < nin && !bad; k++) {
        char nm[128];
        snprintf(nm, sizeof nm, "%s d%s", name, in[k]->name);
        /* parameter gradients are sums over rows: their size sets the scale of rounding */
        double scale = 0;
        for (size_t i = 0; i < in[k]->numel; i++) scale = fmax(scale, fabs(grads[1][k][i]));
        for (size_t i = 0; i < in[k]->numel && !bad; i++)
            if (!(fabs((double)grads[0][k][i] - grads[1][k][i]) <= tol * (1.0 + scale))) {
                fprintf(stderr, "[%s] elem %zu: fused %.7g, separate ops %.7g\n", nm, i, grads[0][k][i], grads[1][k][i]);
                gc_failures++;
                bad = 1;
            }
    }
    if (!bad) printf("%-28s ok (gradients too)\n", name);
    for (int p = 0; p < 2; p++) {
        free(out[p]);
        for (int k = 0; k < nin; k++) free(grads[p][k]);
    }
    return bad;
}
static int compare(const char *name, Tensor **in, int nin, Variant *v, int prec, double tol) {
    return compare2(name, f_fused, f_parts, in, nin, v, prec, tol);
}

/* The token MLP's fc2 node: finite differences, then against the separate ops on every
 * kernel path (C = 64 and 96: the batched sum over K = B x C; 70: its loop). */
static void check_token(ParamList *p) {
    Variant vs[] = {{MT_ACT_GELU, 0, 1, 1, 0, 0}, {MT_ACT_GELU, 0, 0, 0, 0, 1}, {MT_ACT_SILU, 0, 1, 0, 0, 0},
                    {MT_ACT_RELU, 0, 1, 1, 0, 1}};
    int nv = (int)(sizeof vs / sizeof vs[0]);
    Tensor *h = gc_input(p, "th", 3, (int[]){2, 7, 4}, -2, 2);
    Tensor *w = gc_input(p, "tw", 2, (int[]){5, 7}, -1, 1);
    Tensor *b = gc_input(p, "tb", 1, (int[]){5}, -1, 1);
    Tensor *res = gc_input(p, "tres", 3, (int[]){2, 5, 4}, -1, 1);
    Tensor *w3 = gc_input(p, "tw3", 2, (int[]){5, 7}, -1, 1);
    Tensor *in[5] = {h, w, b, res, w3};
    for (int i = 0; i < nv; i++) {
        char name[96];
        snprintf(name, sizeof name, "token_act_linear act %d%s%s%s", (int)vs[i].act, vs[i].b ? " b" : "",
                 vs[i].res ? " res" : "", vs[i].shared ? " shared h" : "");
        gradcheck(name, f_token_fused, in, 5, &vs[i], 1e-2f, 1e-3, 1e-2);
    }
    const int cs[] = {64, 96, 70};
    for (int ci = 0; ci < 3; ci++) {
        int C = cs[ci];
        char nm[5][16];
        const char *base[5] = {"h", "w", "b", "res", "w3"};
        for (int k = 0; k < 5; k++) snprintf(nm[k], sizeof nm[k], "t%s%d", base[k], C); /* names are unique */
        Tensor *hl = gc_input(p, nm[0], 3, (int[]){5, 49, C}, -3, 3);
        Tensor *wl = gc_input(p, nm[1], 2, (int[]){37, 49}, -0.2f, 0.2f);
        Tensor *bl = gc_input(p, nm[2], 1, (int[]){37}, -1, 1);
        Tensor *rl = gc_input(p, nm[3], 3, (int[]){5, 37, C}, -1, 1);
        Tensor *w3l = gc_input(p, nm[4], 2, (int[]){37, 49}, -0.2f, 0.2f);
        Tensor *inl[5] = {hl, wl, bl, rl, w3l};
        for (int fb = 0; fb < MT_GEMM_PATHS; fb++)
            for (int pi = 0; pi < 2; pi++)
                for (int i = 0; i < nv; i++) {
                    mt_gemm_test_path(fb);
                    char name[96];
                    snprintf(name, sizeof name, "token_act_linear = parts C %d %s%s variant %d", C,
                             mt_gemm_path_name(fb), pi ? "bf16" : "fp32", i);
                    compare2(name, f_token_fused, f_token_parts, inl, 5, &vs[i], pi ? MT_BF16 : MT_FP32,
                             pi ? 2e-2 : 2e-5);
                }
    }
    mt_gemm_test_path(0);
    Ctx c;
    mt_ctx_init(&c, 1 << 16);
    if (mt_token_act_linear_residual(&c, h, MT_ACT_NONE, w, b, res) || !strstr(c.err, "token_act_linear_residual"))
        fprintf(stderr, "no activation not reported: '%s'\n", c.err), gc_failures++;
    else printf("%-28s ok: %s\n", "token: no activation", c.err);
    mt_ctx_reset(&c);
    if (mt_token_act_linear_residual(&c, h, MT_ACT_GELU, w3, b, h) || !strstr(c.err, "token_act_linear_residual"))
        fprintf(stderr, "bad residual not reported: '%s'\n", c.err), gc_failures++;
    else printf("%-28s ok: %s\n", "token: residual shape", c.err);
    mt_ctx_free(&c);
}

/* LayerNorm / GroupNorm(1) + fc1 in training (mt_norm_mlp_residual with a tape: the norm in
 * fc1's GEMM prologue, made again in backward): finite differences, and against the norm op
 * followed by the MLP's ops on every kernel path. in: x, nw, nb, w1, b1, w2, b2, res, gamma. */
typedef struct {
    int gn, res_is_x, gamma;
    mt_act act;
} NormVariant;
static Tensor *f_norm_fused(Ctx *c, Tensor **in, void *arg) {
    const NormVariant *v = arg;
    return mt_norm_mlp_residual(c, in[0], v->gn, in[1], in[2], 1e-5f, in[3], in[4], v->act, in[5], in[6],
                                v->res_is_x ? in[0] : in[7], v->gamma ? in[8] : NULL);
}
static Tensor *f_norm_parts(Ctx *c, Tensor **in, void *arg) {
    const NormVariant *v = arg;
    Tensor *n = v->gn ? mt_groupnorm1(c, in[0], in[1], in[2], 1e-5f) : mt_layernorm(c, in[0], in[1], in[2], 1e-5f);
    return mt_mlp_residual(c, n, in[3], in[4], v->act, in[5], in[6], v->res_is_x ? in[0] : in[7],
                           v->gamma ? in[8] : NULL);
}

static void check_norm_linear(ParamList *p) {
    NormVariant vs[] = {{0, 1, 0, MT_ACT_GELU}, {1, 1, 1, MT_ACT_GELU}, {0, 0, 1, MT_ACT_SILU}, {1, 0, 0, MT_ACT_RELU}};
    int nv = (int)(sizeof vs / sizeof vs[0]);
    const char *base[9] = {"x", "nw", "nb", "w1", "b1", "w2", "b2", "res", "g"};
    int dims[2][3] = {{2, 3, 8}, {3, 41, 72}}; /* small: finite differences; larger: edge tiles, K blocks */
    for (int size = 0; size < 2; size++) {
        int B = dims[size][0], T = dims[size][1], C = dims[size][2], H = size ? 130 : 6;
        float ws = size ? 0.1f : 1.0f;
        Tensor *in[9];
        char nm[9][16];
        for (int k = 0; k < 9; k++) snprintf(nm[k], sizeof nm[k], "n%s%d", base[k], size);
        in[0] = gc_input(p, nm[0], 3, (int[]){B, T, C}, -2, 2);
        in[1] = gc_input(p, nm[1], 1, (int[]){C}, 0.5f, 1.5f);
        in[2] = gc_input(p, nm[2], 1, (int[]){C}, -1, 1);
        in[3] = gc_input(p, nm[3], 2, (int[]){H, C}, -ws, ws);
        in[4] = gc_input(p, nm[4], 1, (int[]){H}, -1, 1);
        in[5] = gc_input(p, nm[5], 2, (int[]){C, H}, -ws, ws);
        in[6] = gc_input(p, nm[6], 1, (int[]){C}, -1, 1);
        in[7] = gc_input(p, nm[7], 3, (int[]){B, T, C}, -1, 1);
        in[8] = gc_input(p, nm[8], 1, (int[]){C}, -1, 1);
        for (int i = 0; i < nv; i++) {
            char name[96];
            if (!size) {
                snprintf(name, sizeof name, "%s_mlp act %d%s%s", vs[i].gn ? "groupnorm1" : "layernorm", (int)vs[i].act,
                         vs[i].res_is_x ? " res x" : "", vs[i].gamma ? " gamma" : "");
                gradcheck(name, f_norm_fused, in, 9, &vs[i], 1e-2f, 1e-3, 1e-2);
                continue;
            }
            for (int fb = 0; fb < MT_GEMM_PATHS; fb++)
                for (int pi = 0; pi < 2; pi++) {
                    mt_gemm_test_path(fb);
                    snprintf(name, sizeof name, "norm_mlp = parts %s%s variant %d", mt_gemm_path_name(fb),
                             pi ? "bf16" : "fp32", i);
                    compare2(name, f_norm_fused, f_norm_parts, in, 9, &vs[i], pi ? MT_BF16 : MT_FP32,
                             1e-6);
                }
        }
    }
    mt_gemm_test_path(0);
}

int main(void) {
    check_epilogue();
    ParamList p = {0};
    /* small: finite differences */
    Tensor *h = gc_input(&p, "h", 3, (int[]){2, 3, 9}, -2, 2);
    Tensor *b1 = gc_input(&p, "b1", 1, (int[]){9}, -1, 1);
    Tensor *w = gc_input(&p, "w", 2, (int[]){5, 9}, -1, 1);
    Tensor *b = gc_input(&p, "b", 1, (int[]){5}, -1, 1);
    Tensor *res = gc_input(&p, "res", 3, (int[]){2, 3, 5}, -1, 1);
    Tensor *gamma = gc_input(&p, "gamma", 1, (int[]){5}, -1, 1);
    Tensor *w3 = gc_input(&p, "w3", 2, (int[]){5, 9}, -1, 1);
    Tensor *in[7] = {h, b1, w, b, res, gamma, w3};
    Variant vs[] = {
        {MT_ACT_GELU, 1, 1, 1, 1, 0}, {MT_ACT_GELU, 1, 1, 1, 1, 1}, {MT_ACT_SILU, 0, 1, 1, 0, 0},
        {MT_ACT_GELU_TANH, 1, 0, 0, 0, 0}, {MT_ACT_NONE, 1, 1, 1, 1, 1}, {MT_ACT_NONE, 0, 0, 1, 1, 0},
        {MT_ACT_RELU, 1, 1, 1, 0, 1},
    };
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        char name[96];
        Variant *v = &vs[i];
        snprintf(name, sizeof name, "act_linear act %d%s%s%s%s%s", (int)v->act, v->b1 ? " b1" : "", v->b ? " b" : "",
                 v->res ? " res" : "", v->gamma ? " gamma" : "", v->shared ? " shared h" : "");
        gradcheck(name, f_fused, in, 7, v, 1e-2f, 1e-3, 1e-2);
    }
    Tensor *x = gc_input(&p, "x", 3, (int[]){2, 3, 5}, -1, 1);
    Tensor *w1 = gc_input(&p, "w1", 2, (int[]){9, 5}, -1, 1);
    Tensor *mlp_in[7] = {x, w1, b1, w, b, res, gamma};
    gradcheck("mlp_residual", f_mlp, mlp_in, 7, NULL, 1e-2f, 1e-3, 1e-2);

    /* larger: against the separate ops on every kernel path (K 300 > one tile, N 70, edge tiles) */
    Tensor *hl = gc_input(&p, "hl", 3, (int[]){3, 67, 300}, -3, 3);
    Tensor *b1l = gc_input(&p, "b1l", 1, (int[]){300}, -1, 1);
    Tensor *wl = gc_input(&p, "wl", 2, (int[]){70, 300}, -0.1f, 0.1f);
    Tensor *bl = gc_input(&p, "bl", 1, (int[]){70}, -1, 1);
    Tensor *rl = gc_input(&p, "rl", 3, (int[]){3, 67, 70}, -1, 1);
    Tensor *gl = gc_input(&p, "gl", 1, (int[]){70}, -1, 1);
    Tensor *w3l = gc_input(&p, "w3l", 2, (int[]){70, 300}, -0.1f, 0.1f);
    Tensor *inl[7] = {hl, b1l, wl, bl, rl, gl, w3l};
    const int precs[] = {MT_FP32, MT_BF16};
    for (int fb = 0; fb < MT_GEMM_PATHS; fb++)
        for (int pi = 0; pi < 2; pi++)
            for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
                mt_gemm_test_path(fb);
                char name[96];
                snprintf(name, sizeof name, "act_linear = parts %s%s variant %zu", mt_gemm_path_name(fb),
                         pi ? "bf16" : "fp32", i);
                /* fp32: sums in another order (gamma * colsum(dy) vs colsum(gamma * dy)); bf16: the same
                 * operands rounded at other places (dy vs gamma * dy) */
                compare(name, inl, 7, &vs[i], precs[pi], pi ? 2e-2 : 2e-5);
            }
    mt_gemm_test_path(0);

    /* errors name the op and the shapes */
    Ctx c;
    mt_ctx_init(&c, 1 << 16);
    if (mt_act_linear_residual(&c, h, w, MT_ACT_GELU, w, b, res, gamma) || !strstr(c.err, "act_linear_residual") ||
        !strstr(c.err, "(5,9)") || !strstr(c.err, "(2,3,9)"))
        fprintf(stderr, "bad b1 not reported: '%s'\n", c.err), gc_failures++;
    else printf("%-28s ok: %s\n", "b1 shape error", c.err);
    mt_ctx_reset(&c);
    if (mt_act_linear_residual(&c, h, b1, MT_ACT_GELU, w, b, NULL, gamma) || !strstr(c.err, "layer scale needs a residual"))
        fprintf(stderr, "gamma without res not reported: '%s'\n", c.err), gc_failures++;
    else printf("%-28s ok: %s\n", "gamma without residual", c.err);
    mt_ctx_reset(&c);
    if (mt_act_linear_residual(&c, h, b1, (mt_act)42, w, b, res, gamma) || !strstr(c.err, "unknown activation 42"))
        fprintf(stderr, "bad activation not reported: '%s'\n", c.err), gc_failures++;
    else printf("%-28s ok: %s\n", "bad activation", c.err);
    mt_ctx_free(&c);
    check_token(&p);
    check_norm_linear(&p);
    mt_params_free(&p);
    return gc_report();
}
