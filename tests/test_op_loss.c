/* cross_entropy: closed forms (uniform logits give log K with or without
 * smoothing and for soft targets; smoothing = lse - (1-s) z_y - s/K sum z;
 * soft = -sum t log softmax), the gradient equals (softmax - target) / B,
 * finite differences (h = 1e-2, atol 1e-4, rtol 1e-2) for hard labels with
 * smoothing and soft targets, labels copied at forward time, label range and
 * argument errors (the message names the sample and the label). */
#include "gradcheck.h"


typedef struct { const int *labels; const float *soft; float s; } CECfg;

static Tensor *f_ce(Ctx *c, Tensor **in, void *arg) {
    const CECfg *g = arg;
    return mt_cross_entropy(c, in[0], g->labels, g->soft, g->s);
}

static void check_scalar(const char *name, const Tensor *y, double want, double tol) {
    if (!y || y->ndim != 1 || y->shape[0] != 1) { fprintf(stderr, "[%s] not a scalar (1)\n", name); gc_failures++; return; }
    float w = (float)want;
    gc_expect(name, y->data, &w, 1, tol);
}

/* target row i as a dense vector */
static void target_row(const CECfg *g, int i, int K, double *t) {
    for (int j = 0; j < K; j++)
        t[j] = g->labels ? (1.0 - g->s) * (j == g->labels[i]) + g->s / K : (1.0 - g->s) * g->soft[i * K + j] + g->s / K;
}

/* forward value and gradient (softmax - t) / B against double-precision formulas */
static void check_closed_form(const char *name, Tensor *z, CECfg g) {
    int B = z->shape[0], K = z->shape[1];
    double loss = 0;
    double *t = malloc(K * sizeof(double));
    float *want_grad = malloc(z->numel * sizeof(float));
    for (int i = 0; i < B; i++) {
        const float *zi = z->data + (size_t)i * K;
        double mx = zi[0], s = 0;
        for (int j = 1; j < K; j++) mx = zi[j] > mx ? zi[j] : mx;
        for (int j = 0; j < K; j++) s += exp(zi[j] - mx);
        double lse = mx + log(s);
        target_row(&g, i, K, t);
        if (g.labels) { /* the closed form of smoothing */
            double zsum = 0;
            for (int j = 0; j < K; j++) zsum += zi[j];
            loss += lse - (1.0 - g.s) * zi[g.labels[i]] - g.s / K * zsum;
        } else {
            for (int j = 0; j < K; j++) loss -= t[j] * (zi[j] - lse);
        }
        for (int j = 0; j < K; j++) want_grad[i * K + j] = (float)((exp(zi[j] - lse) - t[j]) / B);
    }
    Ctx c;
    mt_ctx_init(&c, 1 << 16);
    memset(z->grad, 0, z->numel * sizeof(float));
    Tensor *y = mt_cross_entropy(&c, z, g.labels, g.soft, g.s);
    char nm[96];
    snprintf(nm, sizeof nm, "%s value", name);
    check_scalar(nm, y, loss / B, 1e-6);
    if (y && mt_backward(&c, y) == 0) {
        snprintf(nm, sizeof nm, "%s d/dz = (p - t)/B", name);
        gc_expect(nm, z->grad, want_grad, z->numel, 1e-6);
    } else {
        fprintf(stderr, "[%s] backward: %s\n", name, c.err);
        gc_failures++;
    }
    mt_ctx_free(&c);
    free(t);
    free(want_grad);
}

int main(void) {
    ParamList p = {0};
    enum { B = 3, K = 7 };
    int labels[B] = {2, 0, 6};
    float soft[B * K];
    for (int i = 0; i < B; i++) { /* rows summing to 1, mixup-like: 0.6 / 0.4 on two classes plus a bit everywhere */
        for (int j = 0; j < K; j++) soft[i * K + j] = 0.02f;
        soft[i * K + (i + 1) % K] += 0.58f - 0.02f * K / 2;
        soft[i * K + (i + 4) % K] += 0.42f - 0.02f * K / 2;
    }
    Tensor *z = gc_input(&p, "logits", 2, (int[]){B, K}, -2, 2);

    /* uniform logits: log K whatever the target */
    {
        Tensor *u = gc_input(&p, "uniform", 2, (int[]){B, K}, 0, 0);
        for (size_t i = 0; i < u->numel; i++) u->data[i] = 3.7f;
        Ctx c;
        mt_ctx_init(&c, 1 << 16);
        check_scalar("uniform logits hard", mt_cross_entropy(&c, u, labels, NULL, 0.0f), log(K), 1e-6);
        check_scalar("uniform logits smoothing", mt_cross_entropy(&c, u, labels, NULL, 0.3f), log(K), 1e-6);
        check_scalar("uniform logits soft", mt_cross_entropy(&c, u, NULL, soft, 0.0f), log(K), 1e-6);
        mt_ctx_free(&c);
    }

    /* closed forms and analytic gradients */
    check_closed_form("hard", z, (CECfg){labels, NULL, 0.0f});
    check_closed_form("hard smoothing 0.1", z, (CECfg){labels, NULL, 0.1f});
    check_closed_form("soft", z, (CECfg){NULL, soft, 0.0f});
    check_closed_form("soft smoothing 0.2", z, (CECfg){NULL, soft, 0.2f});
    /* a hard label equals the one-hot soft target */
    {
        float onehot[B * K] = {0};
        for (int i = 0; i < B; i++) onehot[i * K + labels[i]] = 1.0f;
        Ctx c;
        mt_ctx_init(&c, 1 << 16);
        Tensor *a = mt_cross_entropy(&c, z, labels, NULL, 0.1f);
        Tensor *b = mt_cross_entropy(&c, z, NULL, onehot, 0.1f);
        gc_expect("hard == one-hot soft", a->data, b->data, 1, 1e-6);
        mt_ctx_free(&c);
    }
    /* large logits stay finite: z = (1000, 0, ...) with label 1 gives loss 1000 */
    {
        Tensor *h = gc_input(&p, "huge", 2, (int[]){1, 5}, 0, 0);
        h->data[0] = 1000.0f;
        Ctx c;
        mt_ctx_init(&c, 1 << 16);
        check_scalar("huge logits finite", mt_cross_entropy(&c, h, (int[]){1}, NULL, 0.0f), 1000.0, 1e-6);
        mt_ctx_free(&c);
    }

    /* finite differences */
    {
        Tensor *in[1] = {z};
        CECfg g1 = {labels, NULL, 0.1f}, g2 = {NULL, soft, 0.0f}, g3 = {labels, NULL, 0.0f};
        gradcheck("ce hard smoothing grad", f_ce, in, 1, &g1, 1e-2f, 1e-4, 1e-2);
        gradcheck("ce hard grad", f_ce, in, 1, &g3, 1e-2f, 1e-4, 1e-2);
        gradcheck("ce soft grad", f_ce, in, 1, &g2, 1e-2f, 1e-4, 1e-2);
    }

    /* the labels are copied: the loader may refill its buffer before backward */
    {
        int lab[B] = {2, 0, 6};
        Ctx c;
        mt_ctx_init(&c, 1 << 16);
        memset(z->grad, 0, z->numel * sizeof(float));
        Tensor *y = mt_cross_entropy(&c, z, lab, NULL, 0.0f);
        lab[0] = lab[1] = lab[2] = 5;
        mt_backward(&c, y);
        float *g = malloc(z->numel * sizeof(float));
        memcpy(g, z->grad, z->numel * sizeof(float));
        mt_ctx_reset(&c);
        memset(z->grad, 0, z->numel * sizeof(float));
        y = mt_cross_entropy(&c, z, labels, NULL, 0.0f);
        mt_backward(&c, y);
        gc_expect("labels copied at forward", g, z->grad, z->numel, 0);
        free(g);
        mt_ctx_free(&c);
    }

    /* large: threaded rows */
    {
        enum { BL = 33, KL = 1000 };
        Tensor *zl = gc_input(&p, "logits_large", 2, (int[]){BL, KL}, -3, 3);
        static int ll[BL];
        for (int i = 0; i < BL; i++) ll[i] = (i * 37) % KL;
        CECfg g = {ll, NULL, 0.1f};
        check_closed_form("large", zl, g);
        Tensor *in[1] = {zl};
        gc_threads_agree("ce large threads", f_ce, in, 1, &g, 1e-5);
    }

    /* errors */
    {
        Ctx c;
        mt_ctx_init(&c, 1 << 16);
        Tensor *z3 = gc_input(&p, "z3", 3, (int[]){2, 3, 7}, -1, 1);
        int bad_hi[B] = {2, 0, 7}, bad_lo[B] = {-1, 0, 1};
        struct { const char *what; int k; const char *must[3]; } cases[] = {
            {"label >= K", 0, {"cross_entropy in loss", "label 7 of sample 2", "(3,7)"}},
            {"label < 0", 1, {"cross_entropy", "label -1 of sample 0", "(3,7)"}},
            {"both targets", 2, {"cross_entropy", "(3,7)", "both"}},
            {"no target", 3, {"cross_entropy", "(3,7)", "neither"}},
            {"3-d logits", 4, {"cross_entropy", "(2,3,7)", "(B, K)"}},
            {"smoothing 1", 5, {"cross_entropy", "(3,7)", "smoothing 1"}},
        };
        for (int k = 0; k < 6; k++) {
            mt_ctx_reset(&c);
            mt_scope(&c, "loss");
            Tensor *y = NULL;
            switch (k) {
            case 0: y = mt_cross_entropy(&c, z, bad_hi, NULL, 0.0f); break;
            case 1: y = mt_cross_entropy(&c, z, bad_lo, NULL, 0.1f); break;
            case 2: y = mt_cross_entropy(&c, z, labels, soft, 0.0f); break;
            case 3: y = mt_cross_entropy(&c, z, NULL, NULL, 0.0f); break;
            case 4: y = mt_cross_entropy(&c, z3, labels, NULL, 0.0f); break;
            case 5: y = mt_cross_entropy(&c, z, labels, NULL, 1.0f); break;
            }
            gc_expect_error(&c, y, cases[k].what, cases[k].must, 3);
        }
        if (mt_cross_entropy(&c, NULL, labels, NULL, 0.0f)) { fprintf(stderr, "NULL input not propagated\n"); gc_failures++; }
        mt_ctx_free(&c);
    }

    mt_params_free(&p);
    return gc_report();
}
