/* avgpool2d (k x k, stride 1, pad k/2, count_include_pad=False, optional
 * pool(x) - x) and mean_tokens: forward against naive loops in double,
 * hand-computed border values where count_include_pad=False matters,
 * gradients against finite differences (h = 1e-2, atol 1e-3, rtol 1e-2),
 * and shape errors. mt_norm_pool_residual (norm1 + pool - n + residual as one op): finite
 * differences, the three-op composition (values and gradients within 1e-5), 1 vs 2 threads,
 * its arena use and shape errors. */
#include "gradcheck.h"


typedef struct { int k, sub; } PoolCfg;

static Tensor *f_pool(Ctx *c, Tensor **in, void *arg) {
    const PoolCfg *g = arg;
    return mt_avgpool2d(c, in[0], g->k, g->sub);
}
static Tensor *f_mean(Ctx *c, Tensor **in, void *arg) { return mt_mean_tokens(c, in[0]); }

static void naive_pool(const Tensor *x, int k, int sub, float *y) {
    int B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3], r = k / 2;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++)
                for (int ch = 0; ch < C; ch++) {
                    double s = 0;
                    int cnt = 0;
                    for (int di = -r; di <= r; di++)
                        for (int dj = -r; dj <= r; dj++) {
                            int ii = i + di, jj = j + dj;
                            if (ii < 0 || ii >= H || jj < 0 || jj >= W) continue;
                            s += x->data[((b * H + ii) * W + jj) * C + ch];
                            cnt++;
                        }
                    double v = s / cnt;
                    if (sub) v -= x->data[((b * H + i) * W + j) * C + ch];
                    y[((b * H + i) * W + j) * C + ch] = (float)v;
                }
}

static void check_pool(ParamList *p, const char *xname, int B, int H, int W, int C, int k, int sub) {
    Tensor *x = gc_input(p, xname, 4, (int[]){B, H, W, C}, -1, 1);
    Ctx c;
    mt_ctx_init(&c, 1 << 16);
    Tensor *y = mt_avgpool2d(&c, x, k, sub);
    float *want = malloc(x->numel * sizeof(float));
    naive_pool(x, k, sub, want);
    char name[96];
    snprintf(name, sizeof name, "avgpool k%d%s (%d,%d,%d,%d)", k, sub ? " -x" : "", B, H, W, C);
    if (!y || !mt_same_shape(x, y)) { fprintf(stderr, "[%s] failed: %s\n", name, c.err); gc_failures++; }
    else gc_expect(name, y->data, want, x->numel, 1e-6);
    free(want);
    mt_ctx_free(&c);
    PoolCfg g = {k, sub};
    Tensor *in[1] = {x};
    snprintf(name, sizeof name, "avgpool k%d%s grad", k, sub ? " -x" : "");
    gradcheck(name, f_pool, in, 1, &g, 1e-2f, 1e-3, 1e-2);
}

/* ---- norm1 + pool - n + residual as one op (mt_norm_pool_residual) ---- */

typedef struct { int gn, k, fused, also; } BranchCfg; /* also: x consumed by a second op */

/* x + gamma * (pool(norm(x)) - norm(x)), in[] = {x, w, b, gamma or absent}: the fused op or the
 * three-op composition; with also, plus x * 0.5 (mt_affine, recorded after the branch, so its
 * backward runs first and the branch's gradient of x accumulates). */
static Tensor *f_branch_n(Ctx *c, Tensor **in, int nin, const BranchCfg *g) {
    Tensor *x = in[0], *w = in[1], *b = in[2], *gamma = nin > 3 ? in[3] : NULL, *y;
    if (g->fused) y = mt_norm_pool_residual(c, x, g->gn ? MT_NORM_GROUP1 : MT_NORM_AFFINE, w, b, 1e-5f, g->k, gamma);
    else {
        Tensor *n = g->gn ? mt_groupnorm1(c, x, w, b, 1e-5f) : mt_affine(c, x, w, b);
        y = mt_residual(c, x, mt_avgpool2d(c, n, g->k, 1), gamma);
    }
    if (!g->also || !y) return y;
    int C = mt_last(x);
    Tensor *half = mt_new(c, 1, &C), *zero = mt_new(c, 1, &C);
    for (int j = 0; j < C; j++) half->data[j] = 0.5f, zero->data[j] = 0.0f;
    return mt_add(c, y, mt_affine(c, x, half, zero));
}
static Tensor *f_branch3(Ctx *c, Tensor **in, void *arg) { return f_branch_n(c, in, 3, arg); }
static Tensor *f_branch4(Ctx *c, Tensor **in, void *arg) { return f_branch_n(c, in, 4, arg); }

/* x (off-centre: GroupNorm's mean matters), weight, bias, gamma of block number `blocks`. */
static void branch_inputs(ParamList *p, Tensor **in, int B, int H, int W, int C) {
    static int blocks = 0;
    char n[4][64];
    snprintf(n[0], 64, "blocks.%d.x", blocks);
    snprintf(n[1], 64, "blocks.%d.norm1.weight", blocks);
    snprintf(n[2], 64, "blocks.%d.norm1.bias", blocks);
    snprintf(n[3], 64, "blocks.%d.layer_scale1.scale", blocks++);
    in[0] = gc_input(p, n[0], 4, (int[]){B, H, W, C}, -2, 3);
    in[1] = gc_input(p, n[1], 1, &C, 0.5f, 1.5f);
    in[2] = gc_input(p, n[2], 1, &C, -1, 1);
    in[3] = gc_input(p, n[3], 1, &C, -1, 1);
}

static void check_branch_grad(ParamList *p, int gn, int k, int use_gamma, int B, int H, int W, int C) {
    char name[96];
    snprintf(name, sizeof name, "%s k%d%s (%d,%d,%d,%d)", gn ? "gn_pool_res" : "aff_pool_res", k,
             use_gamma ? " ls" : "", B, H, W, C);
    Tensor *in[4];
    branch_inputs(p, in, B, H, W, C);
    BranchCfg g = {gn, k, 1, 0};
    gradcheck(name, use_gamma ? f_branch4 : f_branch3, in, use_gamma ? 4 : 3, &g, 1e-2f, 2e-3, 1e-2);
}

/* Output and every gradient of the fused op against the composition (x an activation with a
 * NaN-poisoned fresh gradient buffer, as in a model), and the op's arena use: the output and
 * a few bytes, no normalised or pooled copy. */
static void check_branch_vs_ops(ParamList *p, int gn, int use_gamma, int also, int B, int H, int W, int C) {
    char name[128];
    snprintf(name, sizeof name, "%s%s%s = 3 ops (%d,%d,%d,%d)", gn ? "gn_pool_res" : "aff_pool_res",
             use_gamma ? " ls" : "", also ? " +acc" : "", B, H, W, C);
    Tensor *in[4];
    branch_inputs(p, in, B, H, W, C);
    int nin = use_gamma ? 4 : 3;
    float *res[2][5];
    size_t N = in[0]->numel;
    float *seed = malloc(N * sizeof(float));
    for (size_t i = 0; i < N; i++) seed[i] = gc_uniform() * 2 - 1;
    for (int fused = 0; fused < 2; fused++) {
        Ctx c;
        mt_ctx_init(&c, 1 << 22);
        c.poison_fresh = 1;
        for (int k = 0; k < nin; k++) memset(in[k]->grad, 0, in[k]->numel * sizeof(float));
        Tensor *xa = mt_reshape(&c, in[0], 4, in[0]->shape), *args[4] = {xa, in[1], in[2], in[3]};
        BranchCfg g = {gn, 3, fused, also};
        size_t before = arena_used(&c.arena);
        int nodes = c.nnodes;
        Tensor *y = f_branch_n(&c, args, nin, &g);
        if (fused && !also && y) { /* one node; arena: output + saved stats, nothing tensor-sized */
            size_t extra = arena_used(&c.arena) - before - N * sizeof(float);
            if (c.nnodes != nodes + 1 || strcmp(c.nodes[nodes].op, gn ? "groupnorm1_pool_residual" : "affine_pool_residual") ||
                extra > 4096)
                fprintf(stderr, "[%s] %d nodes, op %s, %zu bytes beyond the output\n", name, c.nnodes - nodes,
                        c.nodes[nodes].op, extra), gc_failures++;
        }
        if (!y || mt_backward_seed(&c, y, seed)) { fprintf(stderr, "[%s] failed: %s\n", name, c.err); gc_failures++; return; }
        res[fused][0] = malloc(N * sizeof(float));
        memcpy(res[fused][0], y->data, N * sizeof(float));
        for (int k = 0; k < nin; k++) {
            res[fused][k + 1] = malloc(in[k]->numel * sizeof(float));
            memcpy(res[fused][k + 1], in[k]->grad, in[k]->numel * sizeof(float));
        }
        mt_ctx_free(&c);
    }
    const char *what[5] = {"output", "dx", "dw", "db", "dgamma"};
    int bad = 0;
    double worst = 0;
    for (int k = 0; k <= nin; k++) {
        size_t n = k ? in[k - 1]->numel : N;
        for (size_t i = 0; i < n && !bad; i++) {
            double err = fabs((double)res[1][k][i] - res[0][k][i]) / (1e-5 * (1 + fabs((double)res[0][k][i])));
            worst = err > worst ? err : worst;
            if (!(err <= 1)) {
                fprintf(stderr, "[%s] %s %zu: fused %.8g, ops %.8g\n", name, what[k], i, res[1][k][i], res[0][k][i]);
                bad = 1;
            }
        }
        free(res[0][k]), free(res[1][k]);
    }
    printf("%-44s %s (worst err/tol %.3f)\n", name, bad ? "FAIL" : "ok", worst);
    gc_failures += bad;
    free(seed);
}

int main(void) {
    ParamList p = {0};

    /* borders by hand: x = 0..8 on a 3x3 single-channel image, k = 3 */
    {
        Tensor *x = mt_param_new(&p, "grid", 4, (int[]){1, 3, 3, 1});
        for (int i = 0; i < 9; i++) x->data[i] = (float)i;
        Ctx c;
        mt_ctx_init(&c, 1 << 16);
        Tensor *y = mt_avgpool2d(&c, x, 3, 0);
        /* corner (0,0): mean of {0,1,3,4} = 2 (count_include_pad=True would give 8/9);
         * edge (0,1): mean of {0,1,2,3,4,5} = 2.5; centre: mean of 0..8 = 4 */
        float want[9] = {2.0f, 2.5f, 3.0f, 3.5f, 4.0f, 4.5f, 5.0f, 5.5f, 6.0f};
        gc_expect("avgpool borders (k3)", y->data, want, 9, 1e-6);
        mt_ctx_reset(&c);
        y = mt_avgpool2d(&c, x, 3, 1);
        float want_sub[9];
        for (int i = 0; i < 9; i++) want_sub[i] = want[i] - (float)i;
        gc_expect("avgpool - x borders", y->data, want_sub, 9, 1e-6);
        /* k = 5 on 3x3: every window covers the whole image -> global mean everywhere */
        mt_ctx_reset(&c);
        y = mt_avgpool2d(&c, x, 5, 0);
        float want5[9];
        for (int i = 0; i < 9; i++) want5[i] = 4.0f;
        gc_expect("avgpool k5 > image", y->data, want5, 9, 1e-6);
        /* k = 1 is the identity; with subtract_input it is zero */
        mt_ctx_reset(&c);
        y = mt_avgpool2d(&c, x, 1, 0);
        gc_expect("avgpool k1 identity", y->data, x->data, 9, 0);
        mt_ctx_free(&c);
    }

    check_pool(&p, "x1", 2, 5, 7, 3, 3, 0);
    check_pool(&p, "x2", 2, 5, 7, 3, 3, 1);  /* PoolFormer token mixer */
    check_pool(&p, "x3", 1, 6, 4, 5, 5, 1);  /* k5: windows clipped on both sides */
    check_pool(&p, "x4", 3, 1, 9, 2, 3, 0);  /* a single row */
    check_pool(&p, "x5", 1, 3, 3, 67, 7, 1); /* k larger than the image, C > 64 */

    /* mean_tokens on (B, N, C) and (B, H, W, C) */
    {
        Tensor *t = gc_input(&p, "tok", 3, (int[]){3, 7, 69}, -1, 1); /* C > 64: several channel blocks */
        Tensor *im = gc_input(&p, "img", 4, (int[]){2, 3, 5, 7}, -1, 1);
        Ctx c;
        mt_ctx_init(&c, 1 << 16);
        Tensor *y = mt_mean_tokens(&c, t);
        float want[3 * 69];
        for (int b = 0; b < 3; b++)
            for (int ch = 0; ch < 69; ch++) {
                double s = 0;
                for (int n = 0; n < 7; n++) s += t->data[(b * 7 + n) * 69 + ch];
                want[b * 69 + ch] = (float)(s / 7);
            }
        if (!y || y->ndim != 2 || y->shape[0] != 3 || y->shape[1] != 69) { fprintf(stderr, "mean_tokens shape\n"); gc_failures++; }
        else gc_expect("mean_tokens (B,N,C)", y->data, want, 3 * 69, 1e-6);
        mt_ctx_reset(&c);
        y = mt_mean_tokens(&c, im);
        float want2[2 * 7];
        for (int b = 0; b < 2; b++)
            for (int ch = 0; ch < 7; ch++) {
                double s = 0;
                for (int n = 0; n < 15; n++) s += im->data[(b * 15 + n) * 7 + ch];
                want2[b * 7 + ch] = (float)(s / 15);
            }
        if (!y || y->ndim != 2 || y->shape[0] != 2 || y->shape[1] != 7) { fprintf(stderr, "mean_tokens 4d shape\n"); gc_failures++; }
        else gc_expect("mean_tokens (B,H,W,C)", y->data, want2, 14, 1e-6);
        mt_ctx_free(&c);
        Tensor *in1[1] = {t}, *in2[1] = {im};
        gradcheck("mean_tokens grad (B,N,C)", f_mean, in1, 1, NULL, 1e-2f, 1e-3, 1e-2);
        gradcheck("mean_tokens grad (B,H,W,C)", f_mean, in2, 1, NULL, 1e-2f, 1e-3, 1e-2);
    }

    /* errors */
    {
        Tensor *x3 = gc_input(&p, "x3d", 3, (int[]){2, 5, 7}, -1, 1);
        Tensor *x4 = gc_input(&p, "x4d", 4, (int[]){2, 5, 7, 3}, -1, 1);
        Tensor *x2 = gc_input(&p, "x2d", 2, (int[]){2, 5}, -1, 1);
        Ctx c;
        mt_ctx_init(&c, 1 << 16);
        struct { const char *what; Tensor *y; const char *must[3]; } cases[3];
        mt_scope(&c, "stages.0.blocks.1.token_mixer");
        cases[0].what = "pool on 3-d";
        cases[0].y = mt_avgpool2d(&c, x3, 3, 1);
        cases[0].must[0] = "avgpool2d in stages.0.blocks.1.token_mixer"; cases[0].must[1] = "(2,5,7)"; cases[0].must[2] = "k 3";
        char e0[1024]; strcpy(e0, c.err);
        mt_ctx_reset(&c);
        cases[1].what = "even pool size";
        cases[1].y = mt_avgpool2d(&c, x4, 4, 1);
        cases[1].must[0] = "avgpool2d"; cases[1].must[1] = "(2,5,7,3)"; cases[1].must[2] = "k 4";
        char e1[1024]; strcpy(e1, c.err);
        mt_ctx_reset(&c);
        cases[2].what = "mean_tokens 2-d";
        cases[2].y = mt_mean_tokens(&c, x2);
        cases[2].must[0] = "mean_tokens"; cases[2].must[1] = "(2,5)"; cases[2].must[2] = "(B, N, C)";
        char e2[1024]; strcpy(e2, c.err);
        const char *errs[3] = {e0, e1, e2};
        for (int k = 0; k < 3; k++) {
            int ok = cases[k].y == NULL;
            for (int m = 0; m < 3; m++) ok &= strstr(errs[k], cases[k].must[m]) != NULL;
            if (!ok) { fprintf(stderr, "[%s] bad error: '%s'\n", cases[k].what, errs[k]); gc_failures++; }
            else printf("error: %-20s ok: %s\n", cases[k].what, errs[k]);
        }
        if (mt_avgpool2d(&c, NULL, 3, 0) || mt_mean_tokens(&c, NULL)) { fprintf(stderr, "NULL input not propagated\n"); gc_failures++; }
        mt_ctx_free(&c);
    }

    /* large shapes: the threaded paths */
    {
        Tensor *xl = gc_input(&p, "xl", 4, (int[]){2, 17, 19, 40}, -1, 1);
        Tensor *tl = gc_input(&p, "tl", 3, (int[]){3, 197, 70}, -1, 1);
        Ctx c;
        mt_ctx_init(&c, 1 << 20);
        Tensor *y = mt_avgpool2d(&c, xl, 3, 1);
        float *want = malloc(xl->numel * sizeof(float));
        naive_pool(xl, 3, 1, want);
        gc_expect("avgpool large fwd", y->data, want, xl->numel, 1e-6);
        free(want);
        mt_ctx_free(&c);
        PoolCfg g = {3, 1};
        Tensor *in1[1] = {xl}, *in2[1] = {tl};
        gc_threads_agree("avgpool large threads", f_pool, in1, 1, &g, 1e-5);
        gc_threads_agree("mean_tokens large threads", f_mean, in2, 1, NULL, 1e-5);
    }

    /* pool_residual (inference) == residual(x, avgpool(groupnorm1(x)) - ..., gamma) composed
     * from the taped ops, with GroupNorm's scales folded in; and it refuses to run while
     * gradients are recorded. */
    {
        Tensor *xs = gc_input(&p, "xs", 4, (int[]){3, 9, 11, 40}, -2, 3); /* off-centre: the mean matters */
        Tensor *gw = gc_input(&p, "norm1.weight", 1, (int[]){40}, 0.5f, 1.5f);
        Tensor *gb = gc_input(&p, "norm1.bias", 1, (int[]){40}, -1, 1);
        Tensor *ls = gc_input(&p, "layer_scale1.scale", 1, (int[]){40}, -1, 1);
        Ctx c;
        mt_ctx_init(&c, 1 << 20);
        c.grad_enabled = 0;
        Tensor *ref = mt_residual(&c, xs, mt_avgpool2d(&c, mt_groupnorm1(&c, xs, gw, gb, 1e-5f), 3, 1), ls);
        float rstd[3], chan[40];
        for (int j = 0; j < 40; j++) chan[j] = gw->data[j] * ls->data[j];
        int rc = mt_groupnorm1_stats(&c, xs, 1e-5f, NULL, rstd);
        Tensor *got = rc ? NULL : mt_pool_residual(&c, xs, 3, chan, rstd);
        if (!ref || !got) fprintf(stderr, "[pool_residual] failed: %s\n", c.err), gc_failures++;
        else gc_expect("pool_residual = composed ops", got->data, ref->data, ref->numel, 2e-6);
        Tensor *ref5 = mt_residual(&c, xs, mt_avgpool2d(&c, xs, 5, 1), NULL); /* no scales: plain pool - x */
        Tensor *got5 = mt_pool_residual(&c, xs, 5, NULL, NULL);
        if (!ref5 || !got5) fprintf(stderr, "[pool_residual k5] failed: %s\n", c.err), gc_failures++;
        else gc_expect("pool_residual k5 no scales", got5->data, ref5->data, ref5->numel, 1e-6);
        c.grad_enabled = 1;
        if (mt_pool_residual(&c, xs, 3, chan, rstd) || !strstr(c.err, "pool_residual") || !strstr(c.err, "(3,9,11,40)"))
            fprintf(stderr, "[pool_residual taped] not refused: '%s'\n", c.err), gc_failures++;
        else printf("%-28s ok: %s\n", "pool_residual taped refused", c.err);
        mt_ctx_free(&c);
    }

    /* norm_pool_residual: gradients by finite differences (both norms, gamma or not, H != W,
     * C not a multiple of 16, k 3/5/7 including windows larger than the image, B 1..3; the
     * last case is large enough to run threaded, in bands of rows when B < threads) */
    check_branch_grad(&p, 1, 3, 1, 2, 5, 4, 7);
    check_branch_grad(&p, 1, 5, 0, 1, 3, 6, 5);
    check_branch_grad(&p, 1, 7, 1, 3, 4, 3, 9);
    check_branch_grad(&p, 0, 3, 1, 3, 4, 5, 6);
    check_branch_grad(&p, 0, 5, 0, 2, 6, 3, 5);
    check_branch_grad(&p, 1, 3, 0, 1, 16, 12, 20);
    check_branch_grad(&p, 0, 5, 1, 1, 16, 12, 20);

    /* ... against the three ops it replaces, values and gradients, also when x's gradient
     * accumulates (x feeds a second op) and with B = 1 (bands of rows) */
    for (int gn = 0; gn < 2; gn++)
        for (int ls = 0; ls < 2; ls++) check_branch_vs_ops(&p, gn, ls, 0, 3, 14, 12, 40);
    check_branch_vs_ops(&p, 1, 1, 1, 3, 14, 12, 40);
    check_branch_vs_ops(&p, 0, 1, 1, 3, 14, 12, 40);
    check_branch_vs_ops(&p, 1, 1, 0, 1, 20, 18, 24);
    check_branch_vs_ops(&p, 1, 1, 1, 1, 20, 18, 24);
    check_branch_vs_ops(&p, 0, 0, 1, 1, 20, 18, 24);
    {
        Tensor *in[4] = {gc_input(&p, "tx", 4, (int[]){1, 21, 17, 24}, -2, 3), gc_input(&p, "tw", 1, (int[]){24}, 0.5f, 1.5f),
                         gc_input(&p, "tb", 1, (int[]){24}, -1, 1), gc_input(&p, "tg", 1, (int[]){24}, -1, 1)};
        Tensor *in3[4] = {gc_input(&p, "tx3", 4, (int[]){3, 9, 13, 24}, -2, 3), in[1], in[2], in[3]};
        BranchCfg g = {1, 3, 1, 0}, a = {0, 3, 1, 0};
        gc_threads_agree("gn_pool_res B=1 threads", f_branch4, in, 4, &g, 1e-5);
        gc_threads_agree("gn_pool_res B=3 threads", f_branch4, in3, 4, &g, 1e-5);
        gc_threads_agree("aff_pool_res B=1 threads", f_branch4, in, 4, &a, 1e-5);
    }

    /* ... and its shape errors, named under the norm's op name */
    {
        Tensor *x3 = gc_input(&p, "ex3", 3, (int[]){2, 5, 7}, -1, 1);
        Tensor *x4 = gc_input(&p, "ex4", 4, (int[]){2, 5, 7, 3}, -1, 1);
        Tensor *v3 = gc_input(&p, "stages.0.blocks.1.norm1.weight", 1, (int[]){3}, -1, 1);
        Tensor *v5 = gc_input(&p, "stages.0.blocks.1.norm1.bias", 1, (int[]){5}, -1, 1);
        Tensor *m3 = gc_input(&p, "stages.0.blocks.1.layer_scale1.scale", 2, (int[]){1, 3}, -1, 1);
        struct { const char *what; int gn, k; Tensor *x, *w, *b, *g; float eps; const char *must[3]; } e[] = {
            {"branch on 3-d", 1, 3, x3, NULL, NULL, NULL, 1e-5f, {"groupnorm1_pool_residual in stages.0", "(2,5,7)", "k 3"}},
            {"branch even k", 0, 2, x4, v3, v3, NULL, 0, {"affine_pool_residual", "(2,5,7,3)", "k 2"}},
            {"branch bias (5)", 1, 3, x4, v3, v5, NULL, 1e-5f, {"bias (5) [stages.0.blocks.1.norm1.bias]", "(2,5,7,3)", "(C) = (3)"}},
            {"branch weight (5)", 0, 3, x4, v5, v3, NULL, 0, {"affine_pool_residual", "weight (5) [stages.0.blocks.1.norm1.bias]", "(C) = (3)"}},
            {"branch gamma (1,3)", 1, 3, x4, v3, v3, m3, 1e-5f, {"gamma (1,3) [stages.0.blocks.1.layer_scale1.scale]", "(2,5,7,3)", "(C) = (3)"}},
            {"branch eps < 0", 1, 3, x4, v3, v3, NULL, -1, {"groupnorm1_pool_residual", "(2,5,7,3)", "eps -1"}},
        };
        for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
            Ctx c;
            mt_ctx_init(&c, 1 << 16);
            mt_scope(&c, "stages.0.blocks.1.token_mixer");
            Tensor *y = mt_norm_pool_residual(&c, e[i].x, e[i].gn ? MT_NORM_GROUP1 : MT_NORM_AFFINE, e[i].w, e[i].b, e[i].eps, e[i].k, e[i].g);
            gc_expect_error(&c, y, e[i].what, e[i].must, 3);
            if (mt_norm_pool_residual(&c, NULL, MT_NORM_GROUP1, NULL, NULL, 1e-5f, 3, NULL)) { fprintf(stderr, "NULL not propagated\n"); gc_failures++; }
            mt_ctx_free(&c);
        }
    }

    mt_params_free(&p);
    return gc_report();
}
