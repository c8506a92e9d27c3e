/* channel_gate: x * sigmoid(g)[b, c] forward, finite-difference gradients of x and g. */
#include "gradcheck.h"

static Tensor *f_cg(Ctx *c, Tensor **in, void *arg) { return mt_channel_gate(c, in[0], in[1]); }
int main(void) {
    ParamList p = {0};
    int B = 2, H = 3, W = 2, C = 5;
    Tensor *x = gc_input(&p, "x", 4, (int[]){B, H, W, C}, -1, 1);
    Tensor *g = gc_input(&p, "g", 2, (int[]){B, C}, -2, 2);
    Ctx c;
    mt_ctx_init(&c, 1 << 16);
    Tensor *y = mt_channel_gate(&c, x, g);
    float want[2 * 3 * 2 * 5];
    for (int i = 0; i < B * H * W * C; i++) {
        int b = i / (H * W * C), j = i % C;
        want[i] = (float)(x->data[i] / (1 + exp(-g->data[b * C + j])));
    }
    gc_expect("channel_gate forward", y->data, want, 60, 1e-6);
    Tensor *in[2] = {x, g};
    gradcheck("channel_gate", f_cg, in, 2, NULL, 1e-2f, 1e-3, 1e-2);
    mt_ctx_reset(&c);
    gc_expect_error(&c, mt_channel_gate(&c, x, x), "shape error", (const char *[]){"channel_gate"}, 1);
    mt_ctx_free(&c);
    mt_params_free(&p);
    return gc_report();
}
