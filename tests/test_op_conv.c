/* conv2d: forward against a naive direct convolution in double for several
 * (kernel, stride, pad) settings and both input layouts, gradients of x, w and b
 * against finite differences (h = 1e-2, atol 1e-3, rtol 1e-2 in float32; the op
 * is linear in each input so the central difference is exact up to rounding),
 * and shape errors. Shapes are odd and non-square: B 2, Cin 3, H 11, W 9, Cout 5. */
#include "gradcheck.h"
#include "core/gemm.h"


typedef struct {
    mt_layout layout;
    int kh, kw, stride, pad, bias;
} ConvCfg;

static Tensor *f_conv(Ctx *c, Tensor **in, void *arg) {
    const ConvCfg *g = arg;
    return mt_conv2d(c, in[0], g->layout, in[1], g->bias ? in[2] : NULL, g->stride, g->pad);
}

/* y (B, OH, OW, Cout) by the definition, in double. */
static void naive_conv(const Tensor *x, mt_layout layout, const Tensor *w, const Tensor *b, int s, int p, float *y,
                       int *oh, int *ow) {
    int nchw = layout == MT_NCHW;
    int B = x->shape[0], Cin = nchw ? x->shape[1] : x->shape[3];
    int H = nchw ? x->shape[2] : x->shape[1], W = nchw ? x->shape[3] : x->shape[2];
    int Cout = w->shape[0], kh = w->shape[2], kw = w->shape[3];
    int OH = (H + 2 * p - kh) / s + 1, OW = (W + 2 * p - kw) / s + 1;
    *oh = OH;
    *ow = OW;
    for (int bb = 0; bb < B; bb++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                for (int co = 0; co < Cout; co++) {
                    double acc = b ? b->data[co] : 0.0;
                    for (int ci = 0; ci < Cin; ci++)
                        for (int ky = 0; ky < kh; ky++)
                            for (int kx = 0; kx < kw; kx++) {
                                int iy = oy * s - p + ky, ix = ox * s - p + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                double xv = nchw ? x->data[((bb * Cin + ci) * H + iy) * W + ix]
                                                 : x->data[((bb * H + iy) * W + ix) * Cin + ci];
                                acc += xv * w->data[((co * Cin + ci) * kh + ky) * kw + kx];
                            }
                    y[((bb * OH + oy) * OW + ox) * Cout + co] = (float)acc;
                }
}

static void check_config(ConvCfg g, int B, int Cin, int H, int W, int Cout) {
    ParamList p = {0};
    int xs_nchw[4] = {B, Cin, H, W}, xs_nhwc[4] = {B, H, W, Cin};
    Tensor *x = gc_input(&p, "x", 4, g.layout == MT_NCHW ? xs_nchw : xs_nhwc, -1, 1);
    Tensor *w = gc_input(&p, "w", 4, (int[]){Cout, Cin, g.kh, g.kw}, -0.5f, 0.5f);
    Tensor *b = gc_input(&p, "b", 1, (int[]){Cout}, -1, 1);
    char name[96];
    snprintf(name, sizeof name, "conv %s k%dx%d s%d p%d%s", g.layout == MT_NCHW ? "NCHW" : "NHWC", g.kh, g.kw,
             g.stride, g.pad, g.bias ? "" : " nobias");

    Ctx c;
    mt_ctx_init(&c, 1 << 16);
    Tensor *y = mt_conv2d(&c, x, g.layout, w, g.bias ? b : NULL, g.stride, g.pad);
    int OH, OW;
    size_t n = (size_t)B * (H + 2 * g.pad) * (W + 2 * g.pad) * Cout; /* upper bound */
    float *want = malloc(n * sizeof(float));
    naive_conv(x, g.layout, w, g.bias ? b : NULL, g.stride, g.pad, want, &OH, &OW);
    char fname[128];
    snprintf(fname, sizeof fname, "%s fwd", name);
    if (!y) {
        fprintf(stderr, "[%s] failed: %s\n", fname, c.err);
        gc_failures++;
    } else if (y->ndim != 4 || y->shape[0] != B || y->shape[1] != OH || y->shape[2] != OW || y->shape[3] != Cout) {
        char s[96];
        fprintf(stderr, "[%s] output shape %s, want (%d,%d,%d,%d)\n", fname, mt_shape_str(y, s, sizeof s), B, OH, OW,
                Cout);
        gc_failures++;
    } else {
        gc_expect(fname, y->data, want, y->numel, 1e-5);
    }
    free(want);
    mt_ctx_free(&c);

    Tensor *in[3] = {x, w, b};
    gradcheck(name, f_conv, in, g.bias ? 3 : 2, &g, 1e-2f, 1e-3, 1e-2);
    mt_params_free(&p);
}

int main(void) {
    /* (layout, kh, kw, stride, pad, bias) */
    ConvCfg cfgs[] = {
        {MT_NCHW, 7, 7, 4, 2, 1}, /* PoolFormer stem */
        {MT_NHWC, 7, 7, 4, 2, 1},
        {MT_NHWC, 3, 3, 2, 1, 1}, /* PoolFormer downsample */
        {MT_NCHW, 3, 3, 2, 1, 1},
        {MT_NHWC, 1, 1, 1, 0, 1}, /* 1x1: no column buffer */
        {MT_NCHW, 1, 1, 1, 0, 0},
        {MT_NHWC, 1, 1, 2, 0, 1}, /* strided 1x1 goes through im2col */
        {MT_NCHW, 4, 4, 4, 0, 1}, /* patch embedding */
        {MT_NHWC, 4, 4, 4, 0, 0},
        {MT_NCHW, 3, 2, 1, 1, 1}, /* non-square kernel, stride 1 */
        {MT_NHWC, 2, 5, 3, 2, 1}, /* non-square kernel, stride 3, pad wider than needed */
        {MT_NCHW, 5, 5, 2, 3, 1}, /* pad > k/2 */
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) check_config(cfgs[i], 2, 3, 11, 9, 5);

    /* the Mixer stem, scaled down: 16x16/s16 on a 32x48 NCHW image */
    check_config((ConvCfg){MT_NCHW, 16, 16, 16, 0, 1}, 1, 3, 32, 48, 4);
    /* one sample, one input channel */
    check_config((ConvCfg){MT_NHWC, 3, 3, 1, 1, 1}, 1, 1, 5, 7, 3);

    /* network input without grad: only w and b get gradients, x->grad untouched */
    {
        ParamList p = {0};
        Tensor *x = gc_input(&p, "x", 4, (int[]){2, 3, 10, 7}, -1, 1);
        Tensor *w = gc_input(&p, "w", 4, (int[]){4, 3, 3, 3}, -1, 1);
        Tensor *b = gc_input(&p, "b", 1, (int[]){4}, -1, 1);
        x->requires_grad = 0;
        ConvCfg g = {MT_NCHW, 3, 3, 2, 1, 1};
        Tensor *in[3] = {x, w, b};
        gradcheck("conv x without grad", f_conv, in, 3, &g, 1e-2f, 1e-3, 1e-2);
        int untouched = 1;
        for (size_t i = 0; i < x->numel; i++) untouched &= x->grad[i] == 0.0f;
        if (!untouched) { fprintf(stderr, "conv wrote into the grad of an input without requires_grad\n"); gc_failures++; }
        mt_params_free(&p);
    }

    /* backward adds into existing grads (a tensor used twice gets both contributions) */
    {
        ParamList p = {0};
        Tensor *x = gc_input(&p, "x", 4, (int[]){1, 5, 6, 2}, -1, 1);
        Tensor *w = gc_input(&p, "w", 4, (int[]){3, 2, 3, 3}, -1, 1);
        Ctx c;
        mt_ctx_init(&c, 1 << 16);
        float seed[1 * 3 * 3 * 3];
        for (int i = 0; i < 27; i++) seed[i] = 1.0f;
        Tensor *y = mt_conv2d(&c, x, MT_NHWC, w, NULL, 2, 1);
        mt_backward_seed(&c, y, seed);
        float *g1 = malloc(x->numel * sizeof(float));
        memcpy(g1, x->grad, x->numel * sizeof(float));
        mt_ctx_reset(&c);
        y = mt_conv2d(&c, x, MT_NHWC, w, NULL, 2, 1);
        mt_backward_seed(&c, y, seed);
        float *want = malloc(x->numel * sizeof(float));
        for (size_t i = 0; i < x->numel; i++) want[i] = 2.0f * g1[i];
        gc_expect("conv backward accumulates", x->grad, want, x->numel, 1e-6);
        free(g1);
        free(want);
        mt_ctx_free(&c);
        mt_params_free(&p);
    }

    /* shape errors: NULL, message names op, scope, every shape and the weight */
    {
        ParamList p = {0};
        Tensor *x = gc_input(&p, "x", 4, (int[]){2, 3, 11, 9}, -1, 1);
        Tensor *w = gc_input(&p, "stages.1.downsample.conv.weight", 4, (int[]){5, 4, 3, 3}, -1, 1);
        Tensor *w2 = gc_input(&p, "stem.conv.weight", 4, (int[]){5, 3, 13, 3}, -1, 1);
        Tensor *b = gc_input(&p, "b", 1, (int[]){7}, -1, 1);
        Tensor *w3 = gc_input(&p, "w3", 4, (int[]){6, 3, 3, 3}, -1, 1);
        Ctx c;
        mt_ctx_init(&c, 1 << 16);
        struct { const char *what; Tensor *w, *b; mt_layout l; int s, p; const char *must[4]; } cases[] = {
            {"Cin mismatch", w, NULL, MT_NCHW, 2, 1, {"conv2d in stages.1", "(2,3,11,9)", "(5,4,3,3)", "stages.1.downsample.conv.weight"}},
            {"kernel > input", w2, NULL, MT_NCHW, 1, 0, {"conv2d", "(2,3,11,9)", "(5,3,13,3)", "stem.conv.weight"}},
            {"bias shape", w3, b, MT_NCHW, 1, 0, {"conv2d", "(6,3,3,3)", "bias (7)", "w3"}},
            {"layout (NHWC Cin 9)", w3, NULL, MT_NHWC, 1, 1, {"conv2d", "NHWC", "(2,3,11,9)", "(6,3,3,3)"}},
            {"stride 0", w3, NULL, MT_NCHW, 0, 1, {"conv2d", "stride 0", "(2,3,11,9)", "(6,3,3,3)"}},
        };
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            mt_ctx_reset(&c);
            mt_scope(&c, "stages.1.downsample");
            Tensor *y = mt_conv2d(&c, x, cases[k].l, cases[k].w, cases[k].b, cases[k].s, cases[k].p);
            int ok = y == NULL && c.failed;
            for (int m = 0; m < 4; m++) ok &= strstr(c.err, cases[k].must[m]) != NULL;
            if (!ok) { fprintf(stderr, "[conv error: %s] bad: '%s'\n", cases[k].what, c.err); gc_failures++; }
            else printf("conv error: %-16s ok: %s\n", cases[k].what, c.err);
        }
        /* sticky: NULL input returns NULL, first message kept */
        if (mt_conv2d(&c, NULL, MT_NHWC, w3, NULL, 1, 1) != NULL || !strstr(c.err, "stride 0")) {
            fprintf(stderr, "conv error not sticky\n");
            gc_failures++;
        }
        mt_ctx_free(&c);
        mt_params_free(&p);
    }
    /* large shapes: the threaded paths (im2col, col2im, bias fill and column sums) */
    {
        ParamList p = {0};
        Tensor *x1 = gc_input(&p, "x1", 4, (int[]){2, 3, 64, 48}, -1, 1);
        Tensor *w1 = gc_input(&p, "w1", 4, (int[]){130, 3, 7, 7}, -0.5f, 0.5f);
        Tensor *b1 = gc_input(&p, "b1", 1, (int[]){130}, -1, 1);
        Tensor *x2 = gc_input(&p, "x2", 4, (int[]){2, 23, 21, 16}, -1, 1);
        Tensor *w2 = gc_input(&p, "w2", 4, (int[]){130, 16, 3, 3}, -0.5f, 0.5f);
        Tensor *w3 = gc_input(&p, "w3", 4, (int[]){130, 16, 1, 1}, -0.5f, 0.5f);
        ConvCfg g1 = {MT_NCHW, 7, 7, 4, 2, 1}, g2 = {MT_NHWC, 3, 3, 2, 1, 1}, g3 = {MT_NHWC, 1, 1, 1, 0, 1};
        Tensor *in1[3] = {x1, w1, b1}, *in2[3] = {x2, w2, b1}, *in3[3] = {x2, w3, b1};
        Ctx c;
        mt_ctx_init(&c, 1 << 20);
        Tensor *y = mt_conv2d(&c, x1, MT_NCHW, w1, b1, 4, 2);
        float *want = malloc(y->numel * sizeof(float));
        int OH, OW;
        naive_conv(x1, MT_NCHW, w1, b1, 4, 2, want, &OH, &OW);
        gc_expect("conv large NCHW 7/4/2 fwd", y->data, want, y->numel, 1e-5);
        free(want);
        mt_ctx_reset(&c);
        y = mt_conv2d(&c, x2, MT_NHWC, w2, b1, 2, 1);
        want = malloc(y->numel * sizeof(float));
        naive_conv(x2, MT_NHWC, w2, b1, 2, 1, want, &OH, &OW);
        gc_expect("conv large NHWC 3/2/1 fwd", y->data, want, y->numel, 1e-5);
        free(want);
        /* K > 512: the forward's row gather splits channel runs (NHWC, Cin 60) and kernel
         * rows (NCHW, 7x7) at K-block edges; every kernel path and precision */
        Tensor *x4 = gc_input(&p, "x4", 4, (int[]){2, 9, 11, 60}, -1, 1);
        Tensor *w4 = gc_input(&p, "w4", 4, (int[]){37, 60, 3, 3}, -0.5f, 0.5f);
        Tensor *x5 = gc_input(&p, "x5", 4, (int[]){1, 13, 12, 10}, -1, 1);
        Tensor *w5 = gc_input(&p, "w5", 4, (int[]){20, 13, 7, 7}, -0.5f, 0.5f);
        struct { Tensor *x, *w; mt_layout l; int s, pad; } big[2] = {{x4, w4, MT_NHWC, 2, 1}, {x5, w5, MT_NCHW, 1, 3}};
        for (int k = 0; k < 2; k++) {
            float *bf16_native = NULL; /* copy: arena memory is reused after the next reset */
            for (int fb = 0; fb < MT_GEMM_PATHS; fb++)
                for (int prec = 0; prec < 2; prec++) {
                    mt_gemm_test_path(fb);
                    mt_ctx_reset(&c);
                    c.precision = prec ? MT_BF16 : MT_FP32;
                    y = mt_conv2d(&c, big[k].x, big[k].l, big[k].w, NULL, big[k].s, big[k].pad);
                    char name[96];
                    snprintf(name, sizeof name, "conv K>512 %s %s%s", k ? "NCHW" : "NHWC", mt_gemm_path_name(fb),
                             prec ? "bf16" : "fp32");
                    if (!y) { fprintf(stderr, "[%s] failed: %s\n", name, c.err); gc_failures++; continue; }
                    if (prec) { /* bf16: native and emulated round the same values; only sums differ */
                        if (!fb) {
                            bf16_native = malloc(y->numel * sizeof(float));
                            memcpy(bf16_native, y->data, y->numel * sizeof(float));
                        } else if (bf16_native) {
                            gc_expect(name, y->data, bf16_native, y->numel, 1e-4);
                            if (fb == MT_GEMM_PATHS - 1) free(bf16_native), bf16_native = NULL;
                        }
                        continue;
                    }
                    want = malloc(y->numel * sizeof(float));
                    naive_conv(big[k].x, big[k].l, big[k].w, NULL, big[k].s, big[k].pad, want, &OH, &OW);
                    gc_expect(name, y->data, want, y->numel, 1e-5);
                    free(want);
                }
        }
        mt_gemm_test_path(0);
        c.precision = MT_FP32;
        mt_ctx_free(&c);
        gc_threads_agree("conv large NCHW 7/4/2 threads", f_conv, in1, 3, &g1, 1e-5);
        gc_threads_agree("conv large NHWC 3/2/1 threads", f_conv, in2, 3, &g2, 1e-5);
        gc_threads_agree("conv large NHWC 1/1/0 threads", f_conv, in3, 3, &g3, 1e-5);
        mt_params_free(&p);
    }
    return gc_report();
}
