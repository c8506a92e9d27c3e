/* double_norm: forward against a double-precision reference (softmax over tokens,
 * l1 over memory units), finite-difference gradients. */
#include "gradcheck.h"

static Tensor *f_dn(Ctx *c, Tensor **in, void *arg) { return mt_double_norm(c, in[0], 1e-9f); }
int main(void) {
    ParamList p = {0};
    int B = 2, N = 5, S = 4;
    Tensor *x = gc_input(&p, "x", 3, (int[]){B, N, S}, -2, 2);
    Ctx c;
    mt_ctx_init(&c, 1 << 16);
    Tensor *y = mt_double_norm(&c, x, 1e-9f);
    float want[2 * 5 * 4];
    double a[2 * 5 * 4];
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++) {
            double z = 0;
            for (int n = 0; n < N; n++) z += exp(x->data[(b * N + n) * S + s]);
            for (int n = 0; n < N; n++) a[(b * N + n) * S + s] = exp(x->data[(b * N + n) * S + s]) / z;
        }
    for (int r = 0; r < B * N; r++) {
        double t = 1e-9;
        for (int s = 0; s < S; s++) t += a[r * S + s];
        for (int s = 0; s < S; s++) want[r * S + s] = (float)(a[r * S + s] / t);
    }
    gc_expect("double_norm forward", y->data, want, 40, 1e-5);
    Tensor *in[1] = {x};
    gradcheck("double_norm", f_dn, in, 1, NULL, 1e-2f, 1e-3, 1e-2);
    mt_ctx_reset(&c);
    Tensor *bad = gc_input(&p, "bad", 2, (int[]){4, 4}, -1, 1);
    gc_expect_error(&c, mt_double_norm(&c, bad, 1e-9f), "shape error", (const char *[]){"double_norm"}, 1);
    mt_ctx_free(&c);
    mt_params_free(&p);
    return gc_report();
}
