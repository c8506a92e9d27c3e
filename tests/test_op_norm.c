/* layernorm, groupnorm1, rmsnorm: forward values against closed forms and naive
 * double loops (groupnorm1 also against GroupNorm(1, C) computed on the NCHW
 * transpose), gradients of every input against finite differences on odd shapes
 * (h = 1e-2, atol 2e-3, rtol 1e-2 in float32); tensors large enough for the
 * multi-threaded path give the same values and gradients with 1 or 2 threads
 * (within 1e-5); groupnorm1's sample-per-thread path against its row split; shape errors. */
#include "gradcheck.h"
#include <omp.h>


typedef struct {
    float eps;
    int use_w, use_b;
} NormArg;

static Tensor *f_ln(Ctx *c, Tensor **in, void *arg) {
    NormArg *a = arg;
    return mt_layernorm(c, in[0], a->use_w ? in[1] : NULL, a->use_b ? in[2] : NULL, a->eps);
}
static Tensor *f_gn(Ctx *c, Tensor **in, void *arg) {
    NormArg *a = arg;
    return mt_groupnorm1(c, in[0], a->use_w ? in[1] : NULL, a->use_b ? in[2] : NULL, a->eps);
}
static Tensor *f_rms(Ctx *c, Tensor **in, void *arg) {
    NormArg *a = arg;
    return mt_rmsnorm(c, in[0], a->use_w ? in[1] : NULL, a->eps);
}

static void fail_msg(const char *what, const char *msg) {
    fprintf(stderr, "[%s] %s\n", what, msg);
    gc_failures++;
}

/* groupnorm1 with at least as many samples as threads takes whole samples per thread (both
 * passes on a sample back to back); one sample takes the row split. A (4, 20, 18, 48) batch on
 * 2 threads against its samples run one at a time (each >= 16384 elements, so parallel): the
 * output bit for bit, dx within 1e-6 relative, dw and db within 1e-5. x is an activation (its fresh
 * gradient buffer NaN-poisoned) as in a model. */
static void check_gn_samples_vs_rows(ParamList *p, NormArg *a) {
    enum { B = 4, H = 20, W = 18, C = 48 };
    const char *name = a->use_w ? "groupnorm1 samples = rows" : "groupnorm1 samples = rows (plain)";
    static Tensor *x, *w, *b, *x1; /* made once, shared by the calls */
    if (!x) {
        x = gc_input(p, "xs", 4, (int[]){B, H, W, C}, -2, 3);
        w = gc_input(p, "ws", 1, (int[]){C}, 0.5, 1.5), b = gc_input(p, "bs", 1, (int[]){C}, -1, 1);
        x1 = gc_input(p, "x1", 4, (int[]){1, H, W, C}, 0, 1);
    }
    size_t N = x->numel, S = N / B;
    float *seed = malloc(N * sizeof(float)), *res[2][4];
    for (size_t i = 0; i < N; i++) seed[i] = gc_uniform() * 2 - 1;
    int nt = omp_get_max_threads();
    omp_set_num_threads(2);
    for (int split = 0; split < 2; split++) { /* 0: the batch at once; 1: sample by sample */
        for (int k = 0; k < 4; k++) res[split][k] = calloc(k == 0 || k == 1 ? N : C, sizeof(float));
        double pw[C] = {0}, pb[C] = {0}; /* per-sample dw, db added in double: no rounding of our own */
        for (int s = 0; s < (split ? B : 1); s++) {
            memset(w->grad, 0, C * sizeof(float)), memset(b->grad, 0, C * sizeof(float));
            Tensor *xin = x;
            if (split) memcpy(x1->data, x->data + s * S, S * sizeof(float)), xin = x1;
            memset(xin->grad, 0, xin->numel * sizeof(float)); /* a parameter's gradient accumulates */
            Ctx c;
            mt_ctx_init(&c, 1 << 22);
            c.poison_fresh = 1;
            Tensor *in[3] = {mt_reshape(&c, xin, 4, xin->shape), w, b};
            Tensor *y = f_gn(&c, in, a);
            if (!y || mt_backward_seed(&c, y, seed + s * S)) {
                fprintf(stderr, "[%s] failed: %s\n", name, c.err);
                gc_failures++;
                mt_ctx_free(&c);
                return;
            }
            memcpy(res[split][0] + s * S, y->data, y->numel * sizeof(float));
            memcpy(res[split][1] + s * S, xin->grad, xin->numel * sizeof(float));
            for (int j = 0; j < C; j++) pw[j] += w->grad[j], pb[j] += b->grad[j];
            mt_ctx_free(&c);
        }
        for (int j = 0; j < C; j++) res[split][2][j] = (float)pw[j], res[split][3][j] = (float)pb[j];
    }
    omp_set_num_threads(nt);
    const char *what[4] = {"output", "dx", "dw", "db"};
    int bad = 0;
    double worst = 0;
    for (int k = 0; k < 4; k++) {
        size_t n = k < 2 ? N : (size_t)(a->use_w ? C : 0);
        /* the forward is bit-identical; dw and db are float sums over runs of 16 rows, then
         * double (Partials), split differently in the two runs */
        double tol = k == 0 ? 0 : k == 1 ? 1e-6 : 1e-5;
        for (size_t i = 0; i < n && !bad; i++) {
            double d = fabs((double)res[0][k][i] - res[1][k][i]), lim = tol * (1 + fabs((double)res[1][k][i]));
            if (k) worst = fmax(worst, d / lim);
            if (!(d <= lim)) {
                fprintf(stderr, "[%s] %s %zu: batch %.9g, one sample at a time %.9g\n", name, what[k], i, res[0][k][i],
                        res[1][k][i]);
                bad = 1;
            }
        }
        free(res[0][k]), free(res[1][k]);
    }
    free(seed);
    printf("%-28s %s (output exact, worst grad err/tol %.3f)\n", name, bad ? "FAIL" : "ok", worst);
    gc_failures += bad;
}

int main(void) {
    ParamList p = {0};
    const int s3[3] = {3, 5, 7}, s4[4] = {2, 3, 5, 7};
    Tensor *x3 = gc_input(&p, "x3", 3, s3, -2, 3);
    Tensor *x4 = gc_input(&p, "x4", 4, s4, -2, 3);
    Tensor *w = gc_input(&p, "norm.weight", 1, (int[]){7}, 0.5, 1.5);
    Tensor *b = gc_input(&p, "norm.bias", 1, (int[]){7}, -1, 1);
    Ctx c;
    mt_ctx_init(&c, 1 << 16);
    static float want[1 << 16];

    /* ---- layernorm: without affine every row has mean 0 and variance 1 (eps = 0) ---- */
    {
        Tensor *y = mt_layernorm(&c, x4, NULL, NULL, 0.0f);
        double worst = 0;
        for (size_t r = 0; r < mt_rows(y); r++) {
            double m = 0, v = 0;
            for (int j = 0; j < 7; j++) m += y->data[r * 7 + j];
            m /= 7;
            for (int j = 0; j < 7; j++) v += (y->data[r * 7 + j] - m) * (y->data[r * 7 + j] - m);
            v /= 7;
            if (fabs(m) > worst) worst = fabs(m);
            if (fabs(v - 1) > worst) worst = fabs(v - 1);
        }
        if (worst > 1e-5) fail_msg("layernorm mean 0 var 1", "row statistics off");
        else printf("%-28s ok (max dev %.2g)\n", "layernorm mean 0 var 1", worst);
        /* with affine and eps, against a double loop */
        float eps = 1e-5f;
        y = mt_layernorm(&c, x4, w, b, eps);
        for (size_t r = 0; r < mt_rows(x4); r++) {
            const float *xr = x4->data + r * 7;
            double m = 0, v = 0;
            for (int j = 0; j < 7; j++) m += xr[j];
            m /= 7;
            for (int j = 0; j < 7; j++) v += (xr[j] - m) * (xr[j] - m);
            v /= 7;
            for (int j = 0; j < 7; j++) want[r * 7 + j] = (float)((xr[j] - m) / sqrt(v + eps) * w->data[j] + b->data[j]);
        }
        gc_expect("layernorm forward (affine)", y->data, want, x4->numel, 1e-5);
        /* constant row: output is exactly the bias (x - mean = 0), no NaN */
        Tensor *k = mt_new2(&c, 2, 7);
        for (int i = 0; i < 14; i++) k->data[i] = 3.25f;
        y = mt_layernorm(&c, k, w, b, 1e-6f);
        for (int i = 0; i < 14; i++) want[i] = b->data[i % 7];
        gc_expect("layernorm constant row", y->data, want, 14, 1e-6);
    }

    /* ---- groupnorm1: naive double loop in the NCHW view, as PyTorch GroupNorm(1, C) ---- */
    {
        mt_ctx_reset(&c);
        float eps = 1e-5f;
        Tensor *y = mt_groupnorm1(&c, x4, w, b, eps);
        int B = 2, H = 3, W = 5, C = 7;
        for (int n = 0; n < B; n++) {
            /* x_nchw[n][ch][i][j] = x4[n][i][j][ch] */
            double m = 0, v = 0;
            for (int ch = 0; ch < C; ch++)
                for (int i = 0; i < H; i++)
                    for (int j = 0; j < W; j++) m += x4->data[((n * H + i) * W + j) * C + ch];
            m /= C * H * W;
            for (int ch = 0; ch < C; ch++)
                for (int i = 0; i < H; i++)
                    for (int j = 0; j < W; j++) {
                        double d = x4->data[((n * H + i) * W + j) * C + ch] - m;
                        v += d * d;
                    }
            v /= C * H * W;
            for (int ch = 0; ch < C; ch++)
                for (int i = 0; i < H; i++)
                    for (int j = 0; j < W; j++) {
                        size_t at = ((size_t)(n * H + i) * W + j) * C + ch;
                        want[at] = (float)((x4->data[at] - m) / sqrt(v + eps) * w->data[ch] + b->data[ch]);
                    }
        }
        gc_expect("groupnorm1 forward vs NCHW", y->data, want, x4->numel, 1e-5);
        /* without affine: every sample has mean 0, variance 1 (eps = 0) */
        y = mt_groupnorm1(&c, x4, NULL, NULL, 0.0f);
        double worst = 0;
        for (int n = 0; n < B; n++) {
            double m = 0, v = 0;
            for (int i = 0; i < 105; i++) m += y->data[n * 105 + i];
            m /= 105;
            for (int i = 0; i < 105; i++) v += (y->data[n * 105 + i] - m) * (y->data[n * 105 + i] - m);
            v /= 105;
            worst = fmax(worst, fmax(fabs(m), fabs(v - 1)));
        }
        if (worst > 1e-5) fail_msg("groupnorm1 mean 0 var 1", "sample statistics off");
        else printf("%-28s ok (max dev %.2g)\n", "groupnorm1 mean 0 var 1", worst);
    }

    /* ---- rmsnorm against a double loop; without weight every row has mean square 1 ---- */
    {
        mt_ctx_reset(&c);
        float eps = 1e-6f;
        Tensor *y = mt_rmsnorm(&c, x3, w, eps);
        for (size_t r = 0; r < mt_rows(x3); r++) {
            const float *xr = x3->data + r * 7;
            double ms = 0;
            for (int j = 0; j < 7; j++) ms += (double)xr[j] * xr[j];
            ms /= 7;
            for (int j = 0; j < 7; j++) want[r * 7 + j] = (float)(xr[j] / sqrt(ms + eps) * w->data[j]);
        }
        gc_expect("rmsnorm forward", y->data, want, x3->numel, 1e-5);
        y = mt_rmsnorm(&c, x3, NULL, 0.0f);
        double worst = 0;
        for (size_t r = 0; r < mt_rows(y); r++) {
            double ms = 0;
            for (int j = 0; j < 7; j++) ms += (double)y->data[r * 7 + j] * y->data[r * 7 + j];
            worst = fmax(worst, fabs(ms / 7 - 1));
        }
        if (worst > 1e-5) fail_msg("rmsnorm mean square 1", "row statistics off");
        else printf("%-28s ok (max dev %.2g)\n", "rmsnorm mean square 1", worst);
    }

    /* ---- gradients: every input, with and without affine ---- */
    const float h = 1e-2f;
    const double atol = 2e-3, rtol = 1e-2;
    NormArg full = {1e-5f, 1, 1}, plain = {1e-5f, 0, 0}, wonly = {1e-5f, 1, 0}, bonly = {1e-5f, 0, 1};
    Tensor *in3[3] = {x3, w, b}, *in4[3] = {x4, w, b};
    gradcheck("layernorm (3,5,7)", f_ln, in3, 3, &full, h, atol, rtol);
    gradcheck("layernorm (2,3,5,7)", f_ln, in4, 3, &full, h, atol, rtol);
    gradcheck("layernorm no affine", f_ln, in4, 1, &plain, h, atol, rtol);
    gradcheck("layernorm weight only", f_ln, in3, 2, &wonly, h, atol, rtol);
    gradcheck("groupnorm1 (2,3,5,7)", f_gn, in4, 3, &full, h, atol, rtol);
    gradcheck("groupnorm1 (3,5,7)", f_gn, in3, 3, &full, h, atol, rtol);
    gradcheck("groupnorm1 no affine", f_gn, in4, 1, &plain, h, atol, rtol);
    gradcheck("groupnorm1 bias only", f_gn, in4, 3, &bonly, h, atol, rtol);
    gradcheck("rmsnorm (3,5,7)", f_rms, in3, 2, &full, h, atol, rtol);
    gradcheck("rmsnorm (2,3,5,7)", f_rms, in4, 2, &full, h, atol, rtol);
    gradcheck("rmsnorm no weight", f_rms, in4, 1, &plain, h, atol, rtol);

    /* x alone constant: only the affine parameters get gradients */
    x4->requires_grad = 0;
    gradcheck("layernorm (x constant)", f_ln, in4, 3, &full, h, atol, rtol);
    gradcheck("groupnorm1 (x constant)", f_gn, in4, 3, &full, h, atol, rtol);
    x4->requires_grad = 1;

    /* large enough (>= 16384 elements) for the multi-threaded code paths */
    {
        Tensor *xl = gc_input(&p, "xl", 4, (int[]){3, 9, 11, 57}, -2, 3);
        Tensor *wl = gc_input(&p, "wl", 1, (int[]){57}, 0.5, 1.5);
        Tensor *bl = gc_input(&p, "bl", 1, (int[]){57}, -1, 1);
        Tensor *inl[3] = {xl, wl, bl};
        gc_threads_agree("layernorm", f_ln, inl, 3, &full, 1e-5);
        gc_threads_agree("groupnorm1", f_gn, inl, 3, &full, 1e-5);
        gc_threads_agree("rmsnorm", f_rms, inl, 2, &full, 1e-5);
        check_gn_samples_vs_rows(&p, &full);
        check_gn_samples_vs_rows(&p, &plain);
    }

    /* ---- errors ---- */
    mt_ctx_reset(&c);
    mt_scope(&c, "stages.1.blocks.0.norm1");
    Tensor *w5 = gc_input(&p, "stages.1.blocks.0.norm1.weight", 1, (int[]){5}, 0, 1);
    Tensor *bad = mt_groupnorm1(&c, x4, w5, b, 1e-5f);
    if (bad || !strstr(c.err, "groupnorm1 in stages.1.blocks.0.norm1") || !strstr(c.err, "(2,3,5,7)") ||
        !strstr(c.err, "(5)") || !strstr(c.err, "stages.1.blocks.0.norm1.weight"))
        fail_msg("groupnorm1 shape error", c.err);
    else printf("%-28s ok: %s\n", "groupnorm1 shape error", c.err);
    if (mt_layernorm(&c, bad, w, b, 1e-5f) || mt_rmsnorm(&c, x3, w, 1e-6f)) fail_msg("sticky", "op ran after failure");
    mt_ctx_reset(&c);
    bad = mt_layernorm(&c, x3, w, w5, 1e-5f);
    if (bad || !strstr(c.err, "layernorm") || !strstr(c.err, "(3,5,7)") || !strstr(c.err, "stages.1.blocks.0.norm1.weight"))
        fail_msg("layernorm shape error", c.err);
    else printf("%-28s ok: %s\n", "layernorm shape error", c.err);
    mt_ctx_reset(&c);
    bad = mt_rmsnorm(&c, x3, w5, 1e-6f);
    if (bad || !strstr(c.err, "rmsnorm") || !strstr(c.err, "(5)")) fail_msg("rmsnorm shape error", c.err);
    else printf("%-28s ok: %s\n", "rmsnorm shape error", c.err);
    mt_ctx_reset(&c);
    bad = mt_layernorm(&c, x3, w, b, -1.0f);
    if (bad || !strstr(c.err, "eps")) fail_msg("layernorm negative eps", c.err);
    else printf("%-28s ok: %s\n", "layernorm negative eps", c.err);
    mt_ctx_reset(&c);
    Tensor *v1 = gc_input(&p, "v1", 1, (int[]){7}, 0, 1);
    bad = mt_groupnorm1(&c, v1, NULL, NULL, 1e-5f);
    if (bad || !strstr(c.err, "groupnorm1") || !strstr(c.err, "(7)")) fail_msg("groupnorm1 rank error", c.err);
    else printf("%-28s ok: %s\n", "groupnorm1 rank error", c.err);

    mt_ctx_free(&c);
    mt_params_free(&p);
    return gc_report();
}
