/* add, mul, bias_add, scale, affine, residual: forward against naive loops,
 * gradients of every input against finite differences on odd shapes
 * (h = 1e-2, atol 1e-3, rtol 1e-2 in float32), shape errors. */
#include "gradcheck.h"

static Tensor *f_add(Ctx *c, Tensor **in, void *arg) { return mt_add(c, in[0], in[1]); }
static Tensor *f_mul(Ctx *c, Tensor **in, void *arg) { return mt_mul(c, in[0], in[1]); }
static Tensor *f_bias_add(Ctx *c, Tensor **in, void *arg) { return mt_bias_add(c, in[0], in[1]); }
static Tensor *f_scale(Ctx *c, Tensor **in, void *arg) { return mt_scale(c, in[0], in[1]); }
static Tensor *f_affine(Ctx *c, Tensor **in, void *arg) { return mt_affine(c, in[0], in[1], in[2]); }
static Tensor *f_residual(Ctx *c, Tensor **in, void *arg) { return mt_residual(c, in[0], in[1], in[2]); }
static Tensor *f_residual_nogamma(Ctx *c, Tensor **in, void *arg) { return mt_residual(c, in[0], in[1], NULL); }
/* A chain, so gradients flow through several per-channel ops at once. */
static Tensor *f_chain(Ctx *c, Tensor **in, void *arg) {
    Tensor *t = mt_affine(c, in[0], in[2], in[3]);
    t = mt_mul(c, t, in[1]);
    t = mt_scale(c, t, in[2]);
    return mt_residual(c, in[0], t, in[3]);
}

static void expect_err(Ctx *c, Tensor *got, const char *what, const char *const *needles) {
    gc_expect_error(c, got, what, needles, 8); /* NULL-terminated lists */
    mt_ctx_reset(c);
}

int main(void) {
    ParamList p = {0};
    const int s3[3] = {3, 5, 7}, s4[4] = {2, 3, 5, 7};
    Tensor *a = gc_input(&p, "a", 3, s3, -1, 1);
    Tensor *b = gc_input(&p, "b", 3, s3, -1, 1);
    Tensor *a4 = gc_input(&p, "a4", 4, s4, -1, 1);
    Tensor *b4 = gc_input(&p, "b4", 4, s4, -1, 1);
    Tensor *v = gc_input(&p, "v", 1, (int[]){7}, -1.5, 1.5);
    Tensor *u = gc_input(&p, "u", 1, (int[]){7}, -1, 1);

    /* ---- forward values against naive loops ---- */
    Ctx c;
    mt_ctx_init(&c, 1 << 16);
    float want[2 * 3 * 5 * 7] = {0};
    size_t N = a->numel, N4 = a4->numel;

    Tensor *y = mt_add(&c, a, b);
    for (size_t i = 0; i < N; i++) want[i] = a->data[i] + b->data[i];
    gc_expect("add forward", y->data, want, N, 1e-6);
    y = mt_mul(&c, a, b);
    for (size_t i = 0; i < N; i++) want[i] = a->data[i] * b->data[i];
    gc_expect("mul forward", y->data, want, N, 1e-6);
    y = mt_bias_add(&c, a4, v);
    for (size_t i = 0; i < N4; i++) want[i] = a4->data[i] + v->data[i % 7];
    gc_expect("bias_add forward", y->data, want, N4, 1e-6);
    y = mt_scale(&c, a4, v);
    for (size_t i = 0; i < N4; i++) want[i] = a4->data[i] * v->data[i % 7];
    gc_expect("scale forward", y->data, want, N4, 1e-6);
    y = mt_affine(&c, a4, v, u);
    for (size_t i = 0; i < N4; i++) want[i] = v->data[i % 7] * a4->data[i] + u->data[i % 7];
    gc_expect("affine forward", y->data, want, N4, 1e-6);
    y = mt_residual(&c, a4, b4, v);
    for (size_t i = 0; i < N4; i++) want[i] = a4->data[i] + v->data[i % 7] * b4->data[i];
    gc_expect("residual forward", y->data, want, N4, 1e-6);
    y = mt_residual(&c, a4, b4, NULL);
    for (size_t i = 0; i < N4; i++) want[i] = a4->data[i] + b4->data[i];
    gc_expect("residual forward (no gamma)", y->data, want, N4, 1e-6);

    /* A large tensor takes the multi-threaded path (thread partials for the
     * per-channel gradient): compare dgamma of scale with a double loop. */
    {
        mt_ctx_reset(&c);
        int rows = 3001, C = 37;
        Tensor *x = gc_input(&p, "xbig", 2, (int[]){rows, C}, -1, 1);
        Tensor *g = gc_input(&p, "gbig", 1, (int[]){C}, -1, 1);
        Tensor *bb = gc_input(&p, "bbig", 1, (int[]){C}, -1, 1);
        memset(g->grad, 0, C * sizeof(float));
        memset(bb->grad, 0, C * sizeof(float));
        Tensor *t = mt_affine(&c, x, g, bb);
        float *seed = malloc(x->numel * sizeof(float));
        for (size_t i = 0; i < x->numel; i++) seed[i] = gc_uniform() - 0.5f;
        mt_backward_seed(&c, t, seed);
        float wg[37], wb[37];
        for (int j = 0; j < C; j++) {
            double sg = 0, sb = 0;
            for (int r = 0; r < rows; r++) sg += (double)seed[r * C + j] * x->data[r * C + j], sb += seed[r * C + j];
            wg[j] = (float)sg;
            wb[j] = (float)sb;
        }
        gc_expect("affine dalpha (large)", g->grad, wg, C, 1e-5);
        gc_expect("affine dbeta (large)", bb->grad, wb, C, 1e-5);
        free(seed);
    }

    /* ---- gradients (every input) ---- */
    const float h = 1e-2f;
    const double atol = 1e-3, rtol = 1e-2;
    gradcheck("add (3,5,7)", f_add, (Tensor *[]){a, b}, 2, NULL, h, atol, rtol);
    gradcheck("add (2,3,5,7)", f_add, (Tensor *[]){a4, b4}, 2, NULL, h, atol, rtol);
    gradcheck("mul (3,5,7)", f_mul, (Tensor *[]){a, b}, 2, NULL, h, atol, rtol);
    gradcheck("mul (2,3,5,7)", f_mul, (Tensor *[]){a4, b4}, 2, NULL, h, atol, rtol);
    gradcheck("bias_add (3,5,7)", f_bias_add, (Tensor *[]){a, v}, 2, NULL, h, atol, rtol);
    gradcheck("bias_add (2,3,5,7)", f_bias_add, (Tensor *[]){a4, v}, 2, NULL, h, atol, rtol);
    gradcheck("scale (3,5,7)", f_scale, (Tensor *[]){a, v}, 2, NULL, h, atol, rtol);
    gradcheck("scale (2,3,5,7)", f_scale, (Tensor *[]){a4, v}, 2, NULL, h, atol, rtol);
    gradcheck("affine (3,5,7)", f_affine, (Tensor *[]){a, v, u}, 3, NULL, h, atol, rtol);
    gradcheck("affine (2,3,5,7)", f_affine, (Tensor *[]){a4, v, u}, 3, NULL, h, atol, rtol);
    gradcheck("residual (3,5,7)", f_residual, (Tensor *[]){a, b, v}, 3, NULL, h, atol, rtol);
    gradcheck("residual (2,3,5,7)", f_residual, (Tensor *[]){a4, b4, v}, 3, NULL, h, atol, rtol);
    gradcheck("residual no gamma", f_residual_nogamma, (Tensor *[]){a4, b4}, 2, NULL, h, atol, rtol);
    gradcheck("chain affine*mul*scale+res", f_chain, (Tensor *[]){a, b, v, u}, 4, NULL, h, atol, rtol);

    /* a constant input (requires_grad 0) gets no gradient buffer written */
    b->requires_grad = 0;
    gradcheck("mul (b constant)", f_mul, (Tensor *[]){a, b}, 2, NULL, h, atol, rtol);
    b->requires_grad = 1;

    /* ---- errors: op, scope, shapes, parameter name; sticky NULL ---- */
    mt_ctx_reset(&c);
    mt_scope(&c, "blocks.3");
    expect_err(&c, mt_add(&c, a, a4), "add shape error", (const char *[]){"add in blocks.3", "(3,5,7)", "(2,3,5,7)", NULL});
    Tensor *u5 = gc_input(&p, "blocks.3.ls1.gamma", 1, (int[]){5}, -1, 1);
    mt_scope(&c, "blocks.3");
    expect_err(&c, mt_scale(&c, a, u5), "scale shape error",
               (const char *[]){"scale in blocks.3", "(3,5,7)", "(5)", "blocks.3.ls1.gamma", NULL});
    expect_err(&c, mt_affine(&c, a, v, u5), "affine shape error", (const char *[]){"affine", "(5)", "beta", NULL});
    expect_err(&c, mt_residual(&c, a, b, u5), "residual shape error", (const char *[]){"residual", "(5)", NULL});
    expect_err(&c, mt_bias_add(&c, a4, u5), "bias_add shape error", (const char *[]){"bias_add", "(2,3,5,7)", NULL});
    expect_err(&c, mt_mul(&c, a, b4), "mul shape error", (const char *[]){"mul", "(3,5,7)", "(2,3,5,7)", NULL});
    /* sticky: after a failure, valid calls return NULL and the first message stays */
    Tensor *bad = mt_add(&c, a, a4);
    Tensor *after = mt_scale(&c, a, v);
    Tensor *after2 = mt_residual(&c, bad, a, NULL);
    if (bad || after || after2 || !strstr(c.err, "add")) {
        fprintf(stderr, "errors not sticky: '%s'\n", c.err);
        gc_failures++;
    } else printf("%-28s ok\n", "sticky errors");

    mt_ctx_free(&c);
    mt_params_free(&p);
    return gc_report();
}
