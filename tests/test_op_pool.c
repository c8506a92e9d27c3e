/* avgpool2d (k x k, stride 1, pad k/2, count_include_pad=False, optional
 * pool(x) - x) and mean_tokens: forward against naive loops in double,
 * hand-computed border values where count_include_pad=False matters,
 * gradients against finite differences (h = 1e-2, atol 1e-3, rtol 1e-2),
 * and shape errors. */
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

    mt_params_free(&p);
    return gc_report();
}
