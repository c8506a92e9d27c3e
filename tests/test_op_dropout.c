/* dropout and drop_path: fraction dropped near p on a large tensor, kept values
 * scaled by 1/(1-p), masks identical for the same seed/counter whatever the
 * OpenMP thread count, counter advanced by the number of draws, eval mode and
 * p = 0 are the identity (x itself, no node), p outside [0, 1) is an error,
 * whole samples dropped by drop_path, and gradients against finite differences
 * with the mask fixed (gradcheck resets c->counter; h = 1e-2, atol 1e-3, rtol 1e-2). */
#include "gradcheck.h"
#include <omp.h>

static Tensor *f_dropout(Ctx *c, Tensor **in, void *arg) { return mt_dropout(c, in[0], *(float *)arg); }
static Tensor *f_drop_path(Ctx *c, Tensor **in, void *arg) { return mt_drop_path(c, in[0], *(float *)arg); }
/* dropout of a layernorm output: the mask must be the same in every forward of the check */
static Tensor *f_ln_dropout(Ctx *c, Tensor **in, void *arg) {
    return mt_dropout(c, mt_layernorm(c, in[0], in[1], NULL, 1e-5f), *(float *)arg);
}

static void check(int ok, const char *what, const char *detail) {
    if (!ok) {
        fprintf(stderr, "[%s] %s\n", what, detail);
        gc_failures++;
    } else printf("%-28s ok%s%s\n", what, detail[0] ? ": " : "", detail);
}

int main(void) {
    ParamList p = {0};
    Ctx c;
    mt_ctx_init(&c, 1 << 20);
    char msg[256];

    /* ---- dropout statistics on a large tensor ---- */
    const int N = 200003;
    Tensor *big = gc_input(&p, "big", 2, (int[]){N / 7, 7}, 0.5, 1.5);
    float prob = 0.3f, s = 1.0f / (1.0f - prob);
    c.counter = 1000;
    Tensor *y = mt_dropout(&c, big, prob);
    size_t zeros = 0, badscale = 0;
    for (size_t i = 0; i < big->numel; i++) {
        if (y->data[i] == 0.0f) zeros++;
        else if (fabsf(y->data[i] - big->data[i] / (1.0f - prob)) > 1e-6f * fabsf(y->data[i])) badscale++;
    }
    double frac = (double)zeros / big->numel;
    snprintf(msg, sizeof msg, "%.4f zeroed for p = 0.3", frac);
    check(fabs(frac - prob) < 0.01, "dropout fraction", msg);
    check(badscale == 0, "dropout keeps x/(1-p)", "");
    snprintf(msg, sizeof msg, "counter %llu -> %llu", 1000ull, (unsigned long long)c.counter);
    check(c.counter == 1000 + big->numel, "dropout advances counter", msg);
    check(c.nnodes == 1 && y->requires_grad, "dropout records a node", "");

    /* the same seed/counter gives the same mask with 1 or 2 threads */
    {
        int nt = omp_get_max_threads();
        omp_set_num_threads(1);
        mt_ctx_reset(&c);
        c.counter = 5;
        Tensor *y1 = mt_dropout(&c, big, 0.5f);
        Tensor *d1 = mt_drop_path(&c, big, 0.5f);
        omp_set_num_threads(2);
        c.counter = 5;
        Tensor *y2 = mt_dropout(&c, big, 0.5f);
        Tensor *d2 = mt_drop_path(&c, big, 0.5f);
        omp_set_num_threads(nt);
        check(!memcmp(y1->data, y2->data, big->numel * sizeof(float)) &&
                  !memcmp(d1->data, d2->data, big->numel * sizeof(float)),
              "masks independent of threads", "");
        c.counter = 6;
        Tensor *y3 = mt_dropout(&c, big, 0.5f);
        check(memcmp(y1->data, y3->data, big->numel * sizeof(float)) != 0, "new counter, new mask", "");
        uint64_t seed = c.seed;
        c.seed ^= 0xabcdefull;
        c.counter = 5;
        Tensor *y4 = mt_dropout(&c, big, 0.5f);
        c.seed = seed;
        check(memcmp(y1->data, y4->data, big->numel * sizeof(float)) != 0, "new seed, new mask", "");
    }

    /* backward is the mask times 1/(1-p) */
    {
        mt_ctx_reset(&c);
        Tensor *x = gc_input(&p, "x_mask", 3, (int[]){3, 5, 7}, -1, 1);
        y = mt_dropout(&c, x, prob);
        float ones[105];
        for (int i = 0; i < 105; i++) ones[i] = 1.0f;
        mt_backward_seed(&c, y, ones);
        float want[105];
        for (int i = 0; i < 105; i++) want[i] = y->data[i] == 0.0f ? 0.0f : s;
        gc_expect("dropout grad = mask/(1-p)", x->grad, want, 105, 0);
    }

    /* ---- identity cases: eval mode, p = 0 ---- */
    {
        mt_ctx_reset(&c);
        c.training = 0;
        uint64_t ctr = c.counter;
        Tensor *a = mt_dropout(&c, big, 0.5f), *b = mt_drop_path(&c, big, 0.5f);
        check(a == big && b == big && c.nnodes == 0 && c.counter == ctr, "eval mode is identity", "");
        c.training = 1;
        a = mt_dropout(&c, big, 0.0f);
        b = mt_drop_path(&c, big, 0.0f);
        check(a == big && b == big && c.nnodes == 0 && c.counter == ctr, "p = 0 is identity", "");
        /* no-grad mode still drops, but records nothing */
        c.grad_enabled = 0;
        a = mt_dropout(&c, big, 0.5f);
        b = mt_drop_path(&c, big, 0.5f);
        check(a && b && a != big && c.nnodes == 0 && !a->requires_grad && !b->requires_grad,
              "no-grad: masks, no nodes", "");
        c.grad_enabled = 1;
    }

    /* ---- drop path: whole samples ---- */
    {
        mt_ctx_reset(&c);
        const int B = 4001;
        Tensor *x = gc_input(&p, "x_dp", 3, (int[]){B, 3, 5}, 0.5, 1.5);
        float pp = 0.25f;
        c.counter = 42;
        Tensor *d = mt_drop_path(&c, x, pp);
        int dropped = 0, mixed = 0, badv = 0;
        for (int b = 0; b < B; b++) {
            int z = 0;
            for (int i = 0; i < 15; i++) {
                float v = d->data[b * 15 + i];
                if (v == 0.0f) z++;
                else if (fabsf(v - x->data[b * 15 + i] / (1.0f - pp)) > 1e-6f * fabsf(v)) badv++;
            }
            if (z == 15) dropped++;
            else if (z) mixed++;
        }
        double f = (double)dropped / B;
        snprintf(msg, sizeof msg, "%.4f of samples dropped for p = 0.25", f);
        check(mixed == 0 && fabs(f - pp) < 0.03, "drop_path whole samples", msg);
        check(badv == 0, "drop_path keeps x/(1-p)", "");
        check(c.counter == 42 + (uint64_t)B, "drop_path advances by B", "");
    }

    /* ---- gradients with a fixed mask ---- */
    const float h = 1e-2f;
    const double atol = 1e-3, rtol = 1e-2;
    Tensor *x3 = gc_input(&p, "x3", 3, (int[]){3, 5, 7}, -1, 1);
    Tensor *x4 = gc_input(&p, "x4", 4, (int[]){2, 3, 5, 7}, -1, 1);
    Tensor *x7 = gc_input(&p, "x7", 3, (int[]){7, 3, 5}, -1, 1);
    Tensor *w7 = gc_input(&p, "w7", 1, (int[]){7}, 0.5, 1.5);
    float p04 = 0.4f, p05 = 0.5f;
    gradcheck("dropout (3,5,7)", f_dropout, (Tensor *[]){x3}, 1, &p04, h, atol, rtol);
    gradcheck("dropout (2,3,5,7)", f_dropout, (Tensor *[]){x4}, 1, &p04, h, atol, rtol);
    gradcheck("dropout after layernorm", f_ln_dropout, (Tensor *[]){x4, w7}, 2, &p04, h, 2e-3, rtol);
    gradcheck("drop_path (7,3,5)", f_drop_path, (Tensor *[]){x7}, 1, &p05, h, atol, rtol);
    gradcheck("drop_path (2,3,5,7)", f_drop_path, (Tensor *[]){x4}, 1, &p04, h, atol, rtol);

    /* ---- errors ---- */
    const float badp[3] = {1.0f, -0.1f, NAN};
    for (int k = 0; k < 3; k++) {
        mt_ctx_reset(&c);
        mt_scope(&c, "blocks.1.drop_path");
        Tensor *r = k == 2 ? mt_drop_path(&c, x4, badp[k]) : mt_dropout(&c, x4, badp[k]);
        int ok = r == NULL && strstr(c.err, k == 2 ? "drop_path in blocks.1.drop_path" : "dropout in blocks.1.drop_path") &&
                 strstr(c.err, "(2,3,5,7)") && strstr(c.err, "[0, 1)");
        check(ok, "invalid p", c.err);
    }
    /* an invalid p is reported even in eval mode */
    mt_ctx_reset(&c);
    c.training = 0;
    check(mt_dropout(&c, x4, 1.5f) == NULL && c.failed, "invalid p in eval mode", c.err);
    c.training = 1;
    mt_ctx_reset(&c);
    check(mt_dropout(&c, NULL, 0.1f) == NULL && mt_drop_path(&c, NULL, 0.1f) == NULL, "NULL input", "");

    mt_ctx_free(&c);
    mt_params_free(&p);
    return gc_report();
}
