/* softmax over the last axis: forward against a naive double loop, rows sum to
 * 1, stability with logits of +-1000, gradients against finite differences
 * (h = 1e-2, atol 1e-3, rtol 1e-2), threaded path on a large shape. */
#include "gradcheck.h"


static Tensor *f_softmax(Ctx *c, Tensor **in, void *arg) { return mt_softmax(c, in[0]); }

static void naive_softmax(const float *x, float *y, size_t rows, int K) {
    for (size_t r = 0; r < rows; r++) {
        double m = x[r * K], s = 0;
        for (int j = 1; j < K; j++) m = x[r * K + j] > m ? x[r * K + j] : m;
        for (int j = 0; j < K; j++) s += exp(x[r * K + j] - m);
        for (int j = 0; j < K; j++) y[r * K + j] = (float)(exp(x[r * K + j] - m) / s);
    }
}

int main(void) {
    ParamList p = {0};
    Ctx c;
    mt_ctx_init(&c, 1 << 16);
    Tensor *x3 = gc_input(&p, "x3", 3, (int[]){3, 5, 7}, -3, 3);
    Tensor *x1 = gc_input(&p, "x1", 1, (int[]){11}, -3, 3);
    Tensor *x4 = gc_input(&p, "x4", 4, (int[]){2, 3, 1, 13}, -3, 3);
    Tensor *xs[3] = {x3, x1, x4};
    const char *names[3] = {"softmax (3,5,7)", "softmax (11)", "softmax (2,3,1,13)"};
    for (int k = 0; k < 3; k++) {
        mt_ctx_reset(&c);
        Tensor *y = mt_softmax(&c, xs[k]);
        float *want = malloc(xs[k]->numel * sizeof(float));
        naive_softmax(xs[k]->data, want, mt_rows(xs[k]), mt_last(xs[k]));
        if (!y || !mt_same_shape(y, xs[k])) { fprintf(stderr, "%s: shape\n", names[k]); gc_failures++; }
        else gc_expect(names[k], y->data, want, y->numel, 1e-6);
        int K = mt_last(xs[k]);
        for (size_t r = 0; y && r < mt_rows(y); r++) {
            double s = 0;
            for (int j = 0; j < K; j++) s += y->data[r * K + j];
            if (fabs(s - 1.0) > 1e-6) { fprintf(stderr, "%s: row %zu sums to %.9g\n", names[k], r, s); gc_failures++; break; }
        }
        free(want);
        Tensor *in[1] = {xs[k]};
        char gname[64];
        snprintf(gname, sizeof gname, "%s grad", names[k]);
        gradcheck(gname, f_softmax, in, 1, NULL, 1e-2f, 1e-3, 1e-2);
    }

    /* stability: huge logits must not overflow */
    {
        float big[12] = {1000, 1000, -1000, 0, 1000, 999, -1000, -1000, 88.8f, 89.0f, 500, -500};
        mt_ctx_reset(&c);
        Tensor *xb = mt_wrap(&c, big, 2, (int[]){6, 2});
        Tensor *y = mt_softmax(&c, xb);
        double e1 = 1.0 / (1.0 + exp(-1.0)), e2 = 1.0 / (1.0 + exp(-0.2));
        float want[12] = {0.5f, 0.5f, 0.0f, 1.0f, (float)e1, (float)(1 - e1), 0.5f, 0.5f, (float)(1 - e2), (float)e2, 1.0f, 0.0f};
        gc_expect("softmax +-1000 stable", y->data, want, 12, 1e-6);
    }

    /* large: threaded path */
    {
        Tensor *xl = gc_input(&p, "xl", 3, (int[]){5, 97, 71}, -3, 3);
        mt_ctx_reset(&c);
        Tensor *y = mt_softmax(&c, xl);
        float *want = malloc(xl->numel * sizeof(float));
        naive_softmax(xl->data, want, mt_rows(xl), 71);
        gc_expect("softmax large fwd", y->data, want, xl->numel, 1e-6);
        free(want);
        Tensor *in[1] = {xl};
        gc_threads_agree("softmax large threads", f_softmax, in, 1, NULL, 1e-5);
    }

    mt_ctx_reset(&c);
    if (mt_softmax(&c, NULL) != NULL) { fprintf(stderr, "NULL input not propagated\n"); gc_failures++; }
    mt_fail(&c, "earlier", "failure");
    if (mt_softmax(&c, x3) != NULL) { fprintf(stderr, "softmax ran after a failure\n"); gc_failures++; }

    mt_ctx_free(&c);
    mt_params_free(&p);
    return gc_report();
}
