/* narrow: forward values against index arithmetic, gradients by finite differences,
 * the cls-token slice (axis 1) and the channel chunk (last axis), shape errors. */
#include "gradcheck.h"

typedef struct { int axis, start, len; } NArg;
static Tensor *f_narrow(Ctx *c, Tensor **in, void *arg) {
    NArg *a = arg;
    return mt_narrow(c, in[0], a->axis, a->start, a->len);
}
int main(void) {
    ParamList p = {0};
    Tensor *x = gc_input(&p, "x", 3, (int[]){3, 5, 6}, -1, 1);
    Ctx c;
    mt_ctx_init(&c, 1 << 16);
    Tensor *y = mt_narrow(&c, x, -1, 2, 3);
    float want[3 * 5 * 3];
    for (int r = 0; r < 15; r++)
        for (int j = 0; j < 3; j++) want[r * 3 + j] = x->data[r * 6 + 2 + j];
    gc_expect("narrow last-axis forward", y->data, want, 45, 0);
    Tensor *t = mt_narrow(&c, x, 1, 0, 1);
    float tw[3 * 6];
    for (int b = 0; b < 3; b++)
        for (int j = 0; j < 6; j++) tw[b * 6 + j] = x->data[b * 30 + j];
    gc_expect("narrow cls-token forward", t->data, tw, 18, 0);
    Tensor *in[1] = {x};
    NArg a1 = {-1, 3, 3}, a2 = {1, 0, 1}, a3 = {0, 1, 2}, a4 = {1, 2, 3};
    gradcheck("narrow last axis", f_narrow, in, 1, &a1, 1e-2f, 1e-3, 1e-2);
    gradcheck("narrow axis 1 (cls)", f_narrow, in, 1, &a2, 1e-2f, 1e-3, 1e-2);
    gradcheck("narrow axis 0", f_narrow, in, 1, &a3, 1e-2f, 1e-3, 1e-2);
    gradcheck("narrow axis 1 middle", f_narrow, in, 1, &a4, 1e-2f, 1e-3, 1e-2);
    mt_ctx_reset(&c);
    gc_expect_error(&c, mt_narrow(&c, x, 2, 4, 3), "shape error", (const char *[]){"narrow", "(3,5,6)"}, 2);
    mt_ctx_free(&c);
    mt_params_free(&p);
    return gc_report();
}
