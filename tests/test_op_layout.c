/* Layout ops: nchw_to_nhwc, nhwc_to_nchw, reshape, transpose12.
 * Forward values against index formulas (exact), round trips, gradients against
 * finite differences (h = 1e-2, atol 1e-3, rtol 1e-2; the ops are permutations,
 * so the differences are exact up to rounding), backward ADDs into an existing
 * grad, and shape errors. Shapes are odd and larger than the 32-wide transpose
 * tiles in one case so tile edges are exercised. */
#include "gradcheck.h"


static Tensor *f_to_nhwc(Ctx *c, Tensor **in, void *arg) { return mt_nchw_to_nhwc(c, in[0]); }
static Tensor *f_to_nchw(Ctx *c, Tensor **in, void *arg) { return mt_nhwc_to_nchw(c, in[0]); }
static Tensor *f_t12(Ctx *c, Tensor **in, void *arg) { return mt_transpose12(c, in[0]); }
/* reshape (2,3,5,7) -> (6,5,7), then transpose12, so the reshape's gradient
 * flows back through another op */
static Tensor *f_reshape(Ctx *c, Tensor **in, void *arg) {
    Tensor *r = mt_reshape(c, in[0], 3, (int[]){6, 5, 7});
    return mt_transpose12(c, r);
}
static Tensor *f_reshape_big(Ctx *c, Tensor **in, void *arg) {
    return mt_transpose12(c, mt_reshape(c, in[0], 3, (int[]){66, 35, 17}));
}

int main(void) {
    ParamList p = {0};
    Ctx c;
    mt_ctx_init(&c, 1 << 16);

    /* NCHW -> NHWC, also on a shape with H*W = 105 and C = 33 larger than the 32-wide tiles */
    for (int big = 0; big < 2; big++) {
        int B = 2, C = big ? 33 : 3, H = big ? 35 : 5, W = big ? 3 : 7;
        char nm[32];
        snprintf(nm, sizeof nm, "nchw%d", big);
        Tensor *x = gc_input(&p, nm, 4, (int[]){B, C, H, W}, -1, 1);
        mt_ctx_reset(&c);
        Tensor *y = mt_nchw_to_nhwc(&c, x);
        float *want = malloc(x->numel * sizeof(float));
        for (int b = 0; b < B; b++)
            for (int ch = 0; ch < C; ch++)
                for (int i = 0; i < H; i++)
                    for (int j = 0; j < W; j++)
                        want[((b * H + i) * W + j) * C + ch] = x->data[((b * C + ch) * H + i) * W + j];
        if (!y || y->shape[0] != B || y->shape[1] != H || y->shape[2] != W || y->shape[3] != C) {
            fprintf(stderr, "nchw_to_nhwc shape\n");
            gc_failures++;
        } else gc_expect(big ? "nchw_to_nhwc fwd (tiles)" : "nchw_to_nhwc fwd", y->data, want, x->numel, 0);
        Tensor *z = mt_nhwc_to_nchw(&c, y);
        if (!z || !mt_same_shape(z, x)) { fprintf(stderr, "nhwc_to_nchw shape\n"); gc_failures++; }
        else gc_expect(big ? "nhwc_to_nchw round trip (tiles)" : "nhwc_to_nchw round trip", z->data, x->data, x->numel, 0);
        free(want);
        Tensor *in[1] = {x};
        gradcheck(big ? "nchw_to_nhwc grad (tiles)" : "nchw_to_nhwc grad", f_to_nhwc, in, 1, NULL, 1e-2f, 1e-3, 1e-2);
        gradcheck(big ? "nhwc_to_nchw grad (tiles)" : "nhwc_to_nchw grad", f_to_nchw, in, 1, NULL, 1e-2f, 1e-3, 1e-2);
    }

    /* transpose12: 3-d (a 2-D transpose per batch) and 5-d (rows of rest copied) */
    {
        Tensor *x3 = gc_input(&p, "t3", 3, (int[]){3, 5, 7}, -1, 1);
        Tensor *x5 = gc_input(&p, "t5", 5, (int[]){2, 3, 5, 2, 3}, -1, 1);
        mt_ctx_reset(&c);
        Tensor *y3 = mt_transpose12(&c, x3);
        float want3[105];
        for (int a = 0; a < 3; a++)
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 7; j++) want3[(a * 7 + j) * 5 + i] = x3->data[(a * 5 + i) * 7 + j];
        if (!y3 || y3->shape[1] != 7 || y3->shape[2] != 5) { fprintf(stderr, "transpose12 3d shape\n"); gc_failures++; }
        else gc_expect("transpose12 fwd 3-d", y3->data, want3, 105, 0);
        Tensor *y5 = mt_transpose12(&c, x5);
        float want5[180];
        for (int a = 0; a < 2; a++)
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 5; j++)
                    for (int r = 0; r < 6; r++) want5[((a * 5 + j) * 3 + i) * 6 + r] = x5->data[((a * 3 + i) * 5 + j) * 6 + r];
        if (!y5 || y5->ndim != 5 || y5->shape[1] != 5 || y5->shape[2] != 3 || y5->shape[3] != 2 || y5->shape[4] != 3) {
            fprintf(stderr, "transpose12 5d shape\n");
            gc_failures++;
        } else gc_expect("transpose12 fwd 5-d", y5->data, want5, 180, 0);
        Tensor *in3[1] = {x3}, *in5[1] = {x5};
        gradcheck("transpose12 grad 3-d", f_t12, in3, 1, NULL, 1e-2f, 1e-3, 1e-2);
        gradcheck("transpose12 grad 5-d", f_t12, in5, 1, NULL, 1e-2f, 1e-3, 1e-2);
    }

    /* reshape: same data, -1 inference, gradient, ADDs into an existing grad */
    {
        Tensor *x = gc_input(&p, "r", 4, (int[]){2, 3, 5, 7}, -1, 1);
        mt_ctx_reset(&c);
        Tensor *y = mt_reshape(&c, x, 2, (int[]){-1, 35});
        int ok = y && y->data == x->data && y->ndim == 2 && y->shape[0] == 6 && y->shape[1] == 35 && y->numel == 210;
        if (!ok) { fprintf(stderr, "reshape -1: %s\n", c.err); gc_failures++; }
        else printf("%-28s ok\n", "reshape view + -1");
        Tensor *in[1] = {x};
        gradcheck("reshape grad", f_reshape, in, 1, NULL, 1e-2f, 1e-3, 1e-2);

        for (size_t i = 0; i < x->numel; i++) x->grad[i] = 1.0f;
        mt_ctx_reset(&c);
        y = mt_reshape(&c, x, 3, (int[]){7, 5, 6});
        float seed[210], want[210];
        for (int i = 0; i < 210; i++) { seed[i] = 0.01f * i; want[i] = 1.0f + seed[i]; }
        mt_backward_seed(&c, y, seed);
        gc_expect("reshape backward adds", x->grad, want, 210, 1e-7);
    }

    /* errors name the op, scope and shapes */
    {
        Tensor *x = mt_param_find(&p, "r");
        Tensor *x3 = mt_param_find(&p, "t3");
        struct { const char *what; const char *must[3]; } cases[] = {
            {"reshape numel", {"reshape in blocks.2", "(2,3,5,7)", "(4,50)"}},
            {"reshape -1", {"reshape", "(2,3,5,7)", "(-1,4)"}},
            {"reshape zero dim", {"reshape", "(2,3,5,7)", "(0,210)"}},
            {"nchw_to_nhwc 3-d", {"nchw_to_nhwc", "(3,5,7)", "(B, C, H, W)"}},
            {"nhwc_to_nchw 3-d", {"nhwc_to_nchw", "(3,5,7)", "(B, H, W, C)"}},
            {"transpose12 2-d", {"transpose12", "(6,35)", "3 axes"}},
        };
        for (int k = 0; k < 6; k++) {
            mt_ctx_reset(&c);
            mt_scope(&c, "blocks.2");
            Tensor *y = NULL;
            switch (k) {
            case 0: y = mt_reshape(&c, x, 2, (int[]){4, 50}); break;
            case 1: y = mt_reshape(&c, x, 2, (int[]){-1, 4}); break;
            case 2: y = mt_reshape(&c, x, 2, (int[]){0, 210}); break;
            case 3: y = mt_nchw_to_nhwc(&c, x3); break;
            case 4: y = mt_nhwc_to_nchw(&c, x3); break;
            case 5: { /* a valid 2-d view first, then the failing op */
                Tensor *v = mt_reshape(&c, x, 2, (int[]){6, 35});
                y = mt_transpose12(&c, v);
                break;
            }
            }
            gc_expect_error(&c, y, cases[k].what, cases[k].must, 3);
        }
        if (mt_reshape(&c, NULL, 1, (int[]){1}) || mt_transpose12(&c, NULL) || mt_nchw_to_nhwc(&c, NULL) ||
            mt_nhwc_to_nchw(&c, NULL)) {
            fprintf(stderr, "NULL input not propagated\n");
            gc_failures++;
        }
    }

    /* large shapes: the threaded paths */
    {
        Tensor *a = gc_input(&p, "big4", 4, (int[]){2, 33, 35, 17}, -1, 1);
        Tensor *b3 = gc_input(&p, "big3", 3, (int[]){4, 101, 90}, -1, 1);
        Tensor *b5 = gc_input(&p, "big5", 4, (int[]){3, 40, 37, 9}, -1, 1);
        Tensor *ia[1] = {a}, *i3[1] = {b3}, *i5[1] = {b5};
        gc_threads_agree("nchw_to_nhwc large threads", f_to_nhwc, ia, 1, NULL, 1e-5);
        gc_threads_agree("nhwc_to_nchw large threads", f_to_nchw, ia, 1, NULL, 1e-5);
        gc_threads_agree("transpose12 large 3-d threads", f_t12, i3, 1, NULL, 1e-5);
        gc_threads_agree("transpose12 large 4-d threads", f_t12, i5, 1, NULL, 1e-5);
        gc_threads_agree("reshape large threads", f_reshape_big, ia, 1, NULL, 1e-5);
        /* and the threaded forward against the index formula */
        mt_ctx_reset(&c);
        Tensor *y = mt_transpose12(&c, b5);
        float *want = malloc(b5->numel * sizeof(float));
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 40; j++)
                for (int k = 0; k < 37; k++)
                    for (int r = 0; r < 9; r++) want[((i * 37 + k) * 40 + j) * 9 + r] = b5->data[((i * 40 + j) * 37 + k) * 9 + r];
        gc_expect("transpose12 large fwd", y->data, want, b5->numel, 0);
        free(want);
    }

    mt_ctx_free(&c);
    mt_params_free(&p);
    return gc_report();
}
