/* prepend_token: forward layout, gradients of x and the token (summed over the batch). */
#include "gradcheck.h"

static Tensor *f_pt(Ctx *c, Tensor **in, void *arg) { return mt_prepend_token(c, in[0], in[1]); }
int main(void) {
    ParamList p = {0};
    Tensor *x = gc_input(&p, "x", 3, (int[]){3, 4, 5}, -1, 1);
    Tensor *tok = gc_input(&p, "cls_token", 3, (int[]){1, 1, 5}, -1, 1);
    Ctx c;
    mt_ctx_init(&c, 1 << 16);
    Tensor *y = mt_prepend_token(&c, x, tok);
    float want[3 * 5 * 5];
    for (int b = 0; b < 3; b++)
        for (int n = 0; n < 5; n++)
            for (int j = 0; j < 5; j++) want[(b * 5 + n) * 5 + j] = n ? x->data[(b * 4 + n - 1) * 5 + j] : tok->data[j];
    gc_expect("prepend_token forward", y->data, want, 75, 0);
    Tensor *in[2] = {x, tok};
    gradcheck("prepend_token", f_pt, in, 2, NULL, 1e-2f, 1e-3, 1e-2);
    mt_ctx_reset(&c);
    Tensor *bad = gc_input(&p, "bad", 1, (int[]){4}, -1, 1);
    gc_expect_error(&c, mt_prepend_token(&c, x, bad), "shape error", (const char *[]){"prepend_token", "bad"}, 2);
    mt_ctx_free(&c);
    mt_params_free(&p);
    return gc_report();
}
