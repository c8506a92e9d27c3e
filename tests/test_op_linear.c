/* linear and token_linear: forward against a naive loop, gradients against
 * finite differences (h = 1e-2, atol 1e-3, rtol 1e-2 in float32). */
#include "gradcheck.h"
#include "core/gemm.h"

static Tensor *f_linear(Ctx *c, Tensor **in, void *arg) { return mt_linear(c, in[0], in[1], in[2]); }
static Tensor *f_linear_nobias(Ctx *c, Tensor **in, void *arg) { return mt_linear(c, in[0], in[1], NULL); }
static Tensor *f_token(Ctx *c, Tensor **in, void *arg) { return mt_token_linear(c, in[0], in[1], in[2]); }
/* The taped paths of the fused ops (the separate ops they stand for). */
static Tensor *f_linear_gelu(Ctx *c, Tensor **in, void *arg) { return mt_linear_act(c, in[0], in[1], in[2], MT_ACT_GELU); }
static Tensor *f_linear_silu_nobias(Ctx *c, Tensor **in, void *arg) { return mt_linear_act(c, in[0], in[1], NULL, MT_ACT_SILU); }
static Tensor *f_linear_res(Ctx *c, Tensor **in, void *arg) { return mt_linear_residual(c, in[0], in[1], in[2], in[3], in[4]); }
static Tensor *f_token_gelu(Ctx *c, Tensor **in, void *arg) { return mt_token_linear_act(c, in[0], in[1], in[2], MT_ACT_GELU); }
static Tensor *f_token_res(Ctx *c, Tensor **in, void *arg) {
    return mt_token_linear_residual(c, in[0], in[1], in[2], in[3], in[4]);
}
int main(void) {
    ParamList p = {0};
    Tensor *x = gc_input(&p, "x", 3, (int[]){3, 5, 7}, -1, 1);
    Tensor *w = gc_input(&p, "w", 2, (int[]){6, 7}, -1, 1);
    Tensor *b = gc_input(&p, "b", 1, (int[]){6}, -1, 1);
    Tensor *in[3] = {x, w, b};

    /* forward value against a naive triple loop */
    Ctx c;
    mt_ctx_init(&c, 1 << 16);
    Tensor *y = mt_linear(&c, x, w, b);
    float want[3 * 5 * 6];
    for (int r = 0; r < 15; r++)
        for (int o = 0; o < 6; o++) {
            double s = b->data[o];
            for (int k = 0; k < 7; k++) s += (double)x->data[r * 7 + k] * w->data[o * 7 + k];
            want[r * 6 + o] = (float)s;
        }
    gc_expect("linear forward", y->data, want, 90, 1e-5);

    gradcheck("linear", f_linear, in, 3, NULL, 1e-2f, 1e-3, 1e-2);
    gradcheck("linear (no bias)", f_linear_nobias, in, 2, NULL, 1e-2f, 1e-3, 1e-2);

    Tensor *wt = gc_input(&p, "wt", 2, (int[]){4, 5}, -1, 1);
    Tensor *bt = gc_input(&p, "bt", 1, (int[]){4}, -1, 1);
    Tensor *tin[3] = {x, wt, bt};
    mt_ctx_reset(&c);
    Tensor *yt = mt_token_linear(&c, x, wt, bt);
    float twant[3 * 4 * 7];
    for (int bb = 0; bb < 3; bb++)
        for (int n2 = 0; n2 < 4; n2++)
            for (int ch = 0; ch < 7; ch++) {
                double s = bt->data[n2];
                for (int n = 0; n < 5; n++) s += (double)wt->data[n2 * 5 + n] * x->data[(bb * 5 + n) * 7 + ch];
                twant[(bb * 4 + n2) * 7 + ch] = (float)s;
            }
    gc_expect("token_linear forward", yt->data, twant, 84, 1e-5);
    gradcheck("token_linear", f_token, tin, 3, NULL, 1e-2f, 1e-3, 1e-2);
    {
        Tensor *r6 = gc_input(&p, "r6", 3, (int[]){3, 5, 6}, -1, 1), *g6 = gc_input(&p, "g6", 1, (int[]){6}, -1, 1);
        Tensor *r4 = gc_input(&p, "r4", 3, (int[]){3, 4, 7}, -1, 1), *g7 = gc_input(&p, "g7", 1, (int[]){7}, -1, 1);
        Tensor *lin[5] = {x, w, b, r6, g6}, *tok[5] = {x, wt, bt, r4, g7};
        gradcheck("linear_act gelu (taped)", f_linear_gelu, lin, 3, NULL, 1e-2f, 1e-3, 1e-2);
        gradcheck("linear_act silu no bias", f_linear_silu_nobias, lin, 2, NULL, 1e-2f, 1e-3, 1e-2);
        gradcheck("linear_residual (taped)", f_linear_res, lin, 5, NULL, 1e-2f, 1e-3, 1e-2);
        gradcheck("token_linear_act (taped)", f_token_gelu, tok, 3, NULL, 1e-2f, 1e-3, 1e-2);
        gradcheck("token_linear_residual", f_token_res, tok, 5, NULL, 1e-2f, 1e-3, 1e-2);
    }

    /* linear_act, taped and without a tape (activation in the GEMM epilogue), equals the
     * separate ops linear + bias_act, for every activation, precision and kernel path; the
     * shape (37 rows, 50 columns, K = 300) has edge tiles and several K blocks. */
    {
        Tensor *xa = gc_input(&p, "xa", 2, (int[]){37, 300}, -1, 1);
        Tensor *wa = gc_input(&p, "wa", 2, (int[]){50, 300}, -0.1f, 0.1f);
        Tensor *ba = gc_input(&p, "ba", 1, (int[]){50}, -1, 1);
        const mt_act acts[] = {MT_ACT_GELU, MT_ACT_GELU_TANH, MT_ACT_RELU, MT_ACT_SILU, MT_ACT_NONE};
        const int precs[] = {MT_FP32, MT_BF16};
        for (int fb = 0; fb < MT_GEMM_PATHS; fb++)
            for (int pi = 0; pi < 2; pi++)
                for (int ai = 0; ai < 5; ai++)
                    for (int hb = 0; hb < 2; hb++) {
                        mt_gemm_test_path(fb);
                        c.precision = precs[pi];
                        mt_ctx_reset(&c);
                        c.grad_enabled = 1;
                        Tensor *z = mt_linear(&c, xa, wa, NULL);
                        Tensor *ref = hb ? mt_bias_act(&c, z, ba, acts[ai]) : mt_activation(&c, z, acts[ai]);
                        int before = c.nnodes;
                        Tensor *taped = mt_linear_act(&c, xa, wa, hb ? ba : NULL, acts[ai]);
                        if (!ref || !taped || c.nnodes <= before) {
                            fprintf(stderr, "linear_act: taped path failed or recorded %d nodes\n", c.nnodes - before);
                            gc_failures++;
                            continue;
                        }
                        c.grad_enabled = 0;
                        before = c.nnodes;
                        Tensor *got = mt_linear_act(&c, xa, wa, hb ? ba : NULL, acts[ai]);
                        char name[96];
                        snprintf(name, sizeof name, "linear_act fused %s%s act %d%s", mt_gemm_path_name(fb),
                                 pi ? "bf16" : "fp32", ai, hb ? "" : " no bias");
                        if (!got || c.nnodes != before) { fprintf(stderr, "[%s] failed or taped\n", name); gc_failures++; continue; }
                        gc_expect(name, got->data, ref->data, ref->numel, 2e-6);
                        gc_expect(name, taped->data, ref->data, ref->numel, 2e-6);
                    }
        mt_gemm_test_path(0);
        c.precision = MT_FP32;
        for (int taped = 0; taped < 2; taped++) { /* both paths reject an unknown activation */
            c.grad_enabled = taped;
            mt_ctx_reset(&c);
            if (mt_linear_act(&c, xa, wa, ba, (mt_act)99) || !strstr(c.err, "unknown activation 99")) {
                fprintf(stderr, "linear_act (%s): bad activation not reported: '%s'\n", taped ? "taped" : "fused", c.err);
                gc_failures++;
            }
        }
        c.grad_enabled = 1;
        mt_ctx_reset(&c);
    }

    /* The other fused epilogues, taped and untaped, equal the separate
     * ops they replace, on every kernel path and precision: linear_residual (bias, layer scale,
     * residual), token_linear_act (row bias + GELU) and token_linear_residual (row bias,
     * scale, residual per sample of the batch). Edge tiles everywhere and K = 700, so every
     * kernel runs two K blocks. */
    {
        Tensor *xr = gc_input(&p, "xr", 3, (int[]){3, 13, 700}, -1, 1);    /* rows 39 */
        Tensor *wr = gc_input(&p, "wr", 2, (int[]){50, 700}, -0.05f, 0.05f);
        Tensor *br = gc_input(&p, "br", 1, (int[]){50}, -1, 1);
        Tensor *rr = gc_input(&p, "rr", 3, (int[]){3, 13, 50}, -1, 1);
        Tensor *gr = gc_input(&p, "gr", 1, (int[]){50}, -1, 1);
        Tensor *xt = gc_input(&p, "xt", 3, (int[]){5, 700, 45}, -1, 1);    /* B 5 >= 2 threads: whole GEMMs per thread */
        Tensor *wt2 = gc_input(&p, "wt2", 2, (int[]){37, 700}, -0.05f, 0.05f);
        Tensor *bt2 = gc_input(&p, "bt2", 1, (int[]){37}, -1, 1);
        Tensor *rt = gc_input(&p, "rt", 3, (int[]){5, 37, 45}, -1, 1);
        Tensor *gt = gc_input(&p, "gt", 1, (int[]){45}, -1, 1);
        const int precs[] = {MT_FP32, MT_BF16};
        for (int fb = 0; fb < MT_GEMM_PATHS; fb++)
            for (int pi = 0; pi < 2; pi++)
                for (int k = 0; k < 3; k++) {
                    mt_gemm_test_path(fb);
                    c.precision = precs[pi];
                    mt_ctx_reset(&c);
                    Tensor *ref[3], *got[3], *tap[3];
                    c.grad_enabled = 1;
                    ref[0] = mt_residual(&c, rr, mt_linear(&c, xr, wr, k == 1 ? NULL : br), k == 2 ? NULL : gr);
                    ref[1] = mt_activation(&c, mt_token_linear(&c, xt, wt2, k == 1 ? NULL : bt2), MT_ACT_GELU);
                    ref[2] = mt_residual(&c, rt, mt_token_linear(&c, xt, wt2, k == 1 ? NULL : bt2), k == 2 ? NULL : gt);
                    for (int taped = 1; taped >= 0; taped--) {
                        c.grad_enabled = taped;
                        Tensor **o = taped ? tap : got;
                        o[0] = mt_linear_residual(&c, xr, wr, k == 1 ? NULL : br, rr, k == 2 ? NULL : gr);
                        o[1] = mt_token_linear_act(&c, xt, wt2, k == 1 ? NULL : bt2, MT_ACT_GELU);
                        o[2] = mt_token_linear_residual(&c, xt, wt2, k == 1 ? NULL : bt2, rt, k == 2 ? NULL : gt);
                    }
                    const char *what[3] = {"linear_residual", "token_linear_act", "token_linear_residual"};
                    for (int o = 0; o < 3; o++) {
                        char name[96];
                        snprintf(name, sizeof name, "%s %s%s%s", what[o], mt_gemm_path_name(fb), pi ? "bf16" : "fp32",
                                 k == 1 ? " no bias" : k == 2 ? " no scale" : "");
                        if (!ref[o] || !got[o] || !tap[o]) { fprintf(stderr, "[%s] failed: %s\n", name, c.err); gc_failures++; continue; }
                        gc_expect(name, got[o]->data, ref[o]->data, ref[o]->numel, 2e-6);
                        gc_expect(name, tap[o]->data, ref[o]->data, ref[o]->numel, 2e-6);
                    }
                }
        mt_gemm_test_path(0);
        c.precision = MT_FP32;
        c.grad_enabled = 0;
        mt_ctx_reset(&c);
        if (mt_linear_residual(&c, xr, wr, br, xr, gr) || !strstr(c.err, "linear_residual") || !strstr(c.err, "(3,13,700)"))
            fprintf(stderr, "linear_residual: bad residual shape not reported: '%s'\n", c.err), gc_failures++;
        else printf("%-28s ok: %s\n", "linear_residual shape error", c.err);
        c.grad_enabled = 1;
        mt_ctx_reset(&c);
    }

    /* norm_linear_act without a tape (LayerNorm / GroupNorm(1) applied while the GEMM packs
     * x) equals the taped norm + linear_act on every kernel path and precision, with and
     * without the norm's affine. K = 700: two K blocks; 3 samples of 13 rows: edge tiles. */
    {
        Tensor *xn = gc_input(&p, "xn", 3, (int[]){3, 13, 700}, -1, 3);
        Tensor *nw = gc_input(&p, "nw", 1, (int[]){700}, 0.5f, 1.5f);
        Tensor *nb = gc_input(&p, "nb", 1, (int[]){700}, -1, 1);
        Tensor *wn = gc_input(&p, "wn", 2, (int[]){50, 700}, -0.05f, 0.05f);
        Tensor *bn = gc_input(&p, "bn", 1, (int[]){50}, -1, 1);
        const int precs[] = {MT_FP32, MT_BF16};
        for (int fb = 0; fb < MT_GEMM_PATHS; fb++)
            for (int pi = 0; pi < 2; pi++)
                for (int gn = 0; gn < 2; gn++)
                    for (int aff = 0; aff < 2; aff++) {
                        mt_gemm_test_path(fb);
                        c.precision = precs[pi];
                        mt_ctx_reset(&c);
                        c.grad_enabled = 1;
                        Tensor *ref = mt_norm_linear_act(&c, xn, gn, aff ? nw : NULL, aff ? nb : NULL, 1e-5f, wn, bn,
                                                         MT_ACT_GELU);
                        int before = c.nnodes;
                        c.grad_enabled = 0;
                        Tensor *got = mt_norm_linear_act(&c, xn, gn, aff ? nw : NULL, aff ? nb : NULL, 1e-5f, wn, bn,
                                                         MT_ACT_GELU);
                        char name[96];
                        snprintf(name, sizeof name, "%s_linear_act %s%s%s", gn ? "groupnorm1" : "layernorm",
                                 mt_gemm_path_name(fb), pi ? "bf16" : "fp32", aff ? "" : " no affine");
                        if (!ref || !got || before < 2 || c.nnodes != before) {
                            fprintf(stderr, "[%s] failed (%s) or recorded %d/%d nodes\n", name, c.err, before, c.nnodes);
                            gc_failures++;
                            continue;
                        }
                        gc_expect(name, got->data, ref->data, ref->numel, 2e-6);
                    }
        mt_gemm_test_path(0);
        c.precision = MT_FP32;
        mt_ctx_reset(&c);
        if (mt_norm_linear_act(&c, xn, 1, bn, NULL, 1e-5f, wn, bn, MT_ACT_GELU) || !strstr(c.err, "groupnorm1_linear_act") ||
            !strstr(c.err, "(50)"))
            fprintf(stderr, "norm_linear_act: bad norm weight not reported: '%s'\n", c.err), gc_failures++;
        else printf("%-28s ok: %s\n", "norm_linear_act shape error", c.err);
        c.grad_enabled = 1;
        mt_ctx_reset(&c);
    }

    /* norm_mlp_residual without a tape: fc1 and fc2 chained per block of rows (the hidden
     * layer never stored) gives exactly the values of the two fused ops it replaces, and the
     * taped composition within rounding; on every kernel path and precision. Shapes: 39 rows
     * (edge tiles, K 40 and N1 150 off the vector width); 400 rows in 3 row blocks over the
     * threads; N1 600, the hidden layer in two chunks; K 600, wider than one K block (the
     * two-op path). */
    {
        const int dims[4][4] = {{3, 13, 40, 150}, {2, 200, 64, 256}, {2, 9, 48, 600}, {2, 5, 600, 64}}; /* B, T, C, hidden */
        const int precs[] = {MT_FP32, MT_BF16};
        for (int d = 0; d < 4; d++) {
            int B = dims[d][0], T = dims[d][1], C = dims[d][2], H = dims[d][3];
            char nm[8][16];
            for (int i = 0; i < 8; i++) snprintf(nm[i], sizeof nm[i], "m%d_%d", d, i);
            Tensor *xm = gc_input(&p, nm[0], 3, (int[]){B, T, C}, -1, 3);
            Tensor *nw = gc_input(&p, nm[1], 1, (int[]){C}, 0.5f, 1.5f);
            Tensor *nb = gc_input(&p, nm[2], 1, (int[]){C}, -1, 1);
            Tensor *w1 = gc_input(&p, nm[3], 2, (int[]){H, C}, -0.2f, 0.2f);
            Tensor *b1 = gc_input(&p, nm[4], 1, (int[]){H}, -1, 1);
            Tensor *w2 = gc_input(&p, nm[5], 2, (int[]){C, H}, -0.1f, 0.1f);
            Tensor *b2 = gc_input(&p, nm[6], 1, (int[]){C}, -1, 1);
            Tensor *g = gc_input(&p, nm[7], 1, (int[]){C}, -1, 1);
            for (int fb = 0; fb < MT_GEMM_PATHS; fb++)
                for (int pi = 0; pi < 2; pi++)
                    for (int gn = 0; gn < 2; gn++)
                        for (int k = 0; k < 2; k++) { /* k 1: no norm affine, no fc2 bias, no layer scale */
                            mt_gemm_test_path(fb);
                            c.precision = precs[pi];
                            mt_ctx_reset(&c);
                            Tensor *aw = k ? NULL : nw, *ab = k ? NULL : nb, *bb = k ? NULL : b2, *gg = k ? NULL : g;
                            c.grad_enabled = 1;
                            Tensor *taped = mt_linear_residual(&c, mt_norm_linear_act(&c, xm, gn, aw, ab, 1e-5f, w1, b1,
                                                                                      MT_ACT_GELU), w2, bb, xm, gg);
                            int before = c.nnodes;
                            c.grad_enabled = 0;
                            Tensor *two = mt_linear_residual(&c, mt_norm_linear_act(&c, xm, gn, aw, ab, 1e-5f, w1, b1,
                                                                                    MT_ACT_GELU), w2, bb, xm, gg);
                            Tensor *got = mt_norm_mlp_residual(&c, xm, gn, aw, ab, 1e-5f, w1, b1, MT_ACT_GELU, w2, bb, xm, gg);
                            char name[96];
                            int chained = mt_gemm_chain_fits(c.precision, C, H, C);
                            snprintf(name, sizeof name, "mlp_residual %dx%dx%d %s%s%s%s%s", B * T, C, H, gn ? "gn " : "ln ",
                                     mt_gemm_path_name(fb), pi ? "bf16" : "fp32", k ? " bare" : "", chained ? " chained" : "");
                            if (!taped || !two || !got || c.nnodes != before) {
                                fprintf(stderr, "[%s] failed (%s) or recorded nodes\n", name, c.err);
                                gc_failures++;
                                continue;
                            }
                            if (chained == (fb == 2 || C > 512)) { /* the chain runs exactly where expected */
                                fprintf(stderr, "[%s] chain fits %d with fallback %d, K %d\n", name, chained, fb, C);
                                gc_failures++;
                            }
                            if (!gc_expect(name, got->data, two->data, two->numel, 0.0))
                                gc_expect(name, got->data, taped->data, taped->numel, 2e-6);
                        }
        }
        mt_gemm_test_path(0);
        c.precision = MT_FP32;
        mt_ctx_reset(&c);
        Tensor *xm = gc_input(&p, "mx", 3, (int[]){2, 5, 16}, -1, 1);
        Tensor *w1 = gc_input(&p, "mw1", 2, (int[]){32, 16}, -1, 1), *w2 = gc_input(&p, "mw2", 2, (int[]){16, 30}, -1, 1);
        if (mt_norm_mlp_residual(&c, xm, 1, NULL, NULL, 1e-5f, w1, NULL, MT_ACT_GELU, w2, NULL, xm, NULL) ||
            !strstr(c.err, "groupnorm1_mlp_residual") || !strstr(c.err, "(16,30)") || !strstr(c.err, "mw2"))
            fprintf(stderr, "norm_mlp_residual: bad fc2 weight not reported: '%s'\n", c.err), gc_failures++;
        else printf("%-28s ok: %s\n", "mlp_residual shape error", c.err);
        c.grad_enabled = 1;
        mt_ctx_reset(&c);
    }

    /* shape errors name the op, the shapes and the parameter */
    mt_ctx_reset(&c);
    mt_scope(&c, "blocks.0.mlp");
    Tensor *bad = mt_linear(&c, x, wt, NULL);
    if (bad || !strstr(c.err, "linear in blocks.0.mlp") || !strstr(c.err, "(3,5,7)") || !strstr(c.err, "(4,5)") ||
        !strstr(c.err, "wt")) {
        fprintf(stderr, "bad shape error message: '%s'\n", c.err);
        gc_failures++;
    } else printf("%-28s ok: %s\n", "shape error", c.err);
    /* sticky: a later op with the NULL input also returns NULL, first message kept */
    if (mt_linear(&c, bad, w, b) != NULL || !strstr(c.err, "(4,5)")) { fprintf(stderr, "error not sticky\n"); gc_failures++; }

    mt_ctx_free(&c);
    mt_params_free(&p);
    return gc_report();
}
