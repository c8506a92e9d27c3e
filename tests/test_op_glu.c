/* glu: forward a * act(g) against the formulas for every gate, finite-difference gradients. */
#include "gradcheck.h"

static Tensor *f_glu(Ctx *c, Tensor **in, void *arg) { return mt_glu(c, in[0], *(mt_gate *)arg); }
static double ref(int act, double g) {
    switch (act) {
    case MT_GATE_SIGMOID: return 1 / (1 + exp(-g));
    case MT_GATE_GELU: return 0.5 * g * (1 + erf(g / sqrt(2.0)));
    case MT_GATE_SILU: return g / (1 + exp(-g));
    default: return g > 0 ? g : 0;
    }
}
int main(void) {
    ParamList p = {0};
    Tensor *x = gc_input(&p, "x", 3, (int[]){2, 3, 8}, -2, 2);
    Tensor *in[1] = {x};
    const char *names[] = {"glu (sigmoid)", "geglu", "swiglu", "reglu"};
    Ctx c;
    mt_ctx_init(&c, 1 << 16);
    for (int a = 0; a < 4; a++) {
        mt_gate act = (mt_gate)a;
        mt_ctx_reset(&c);
        Tensor *y = mt_glu(&c, x, act);
        float want[2 * 3 * 4];
        for (int r = 0; r < 6; r++)
            for (int j = 0; j < 4; j++) want[r * 4 + j] = (float)(x->data[r * 8 + j] * ref(a, x->data[r * 8 + 4 + j]));
        char nm[64];
        snprintf(nm, sizeof nm, "%s forward", names[a]);
        gc_expect(nm, y->data, want, 24, 1e-5);
        gradcheck(names[a], f_glu, in, 1, &act, 1e-2f, 1e-3, 1e-2);
    }
    mt_ctx_reset(&c);
    Tensor *odd = gc_input(&p, "odd", 2, (int[]){2, 5}, -1, 1);
    gc_expect_error(&c, mt_glu(&c, odd, MT_GATE_SILU), "odd width error", (const char *[]){"even"}, 1);
    mt_ctx_free(&c);
    mt_params_free(&p);
    return gc_report();
}
