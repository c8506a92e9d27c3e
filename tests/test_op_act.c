/* gelu (erf), gelu_tanh, relu, silu, activation dispatch and the fused
 * bias_act: forward against closed-form values (gelu(1) = 0.8413447,
 * gelu_tanh(1) = 0.8411920, silu(1) = 0.7310586, ...), fused == unfused,
 * gradients of every input against finite differences on odd shapes
 * (h = 1e-2, atol 1e-3, rtol 1e-2 in float32; ReLU inputs kept >= 0.05 away
 * from the kink), the multi-threaded path (3,9,11,57) against 1 thread, and errors. */
#include "gradcheck.h"
#include "core/act_gelu.h"
#include "core/bf16.h"
#include <omp.h>


typedef struct {
    mt_act act;
    int use_bias;
} ActArg;

static Tensor *f_act(Ctx *c, Tensor **in, void *arg) { return mt_activation(c, in[0], ((ActArg *)arg)->act); }
static Tensor *f_bias_act(Ctx *c, Tensor **in, void *arg) {
    ActArg *a = arg;
    return mt_bias_act(c, in[0], a->use_bias ? in[1] : NULL, a->act);
}
/* The named entry points too (gradients through the wrappers). */
static Tensor *f_gelu(Ctx *c, Tensor **in, void *arg) { return mt_gelu(c, in[0]); }
static Tensor *f_gelu_tanh(Ctx *c, Tensor **in, void *arg) { return mt_gelu_tanh(c, in[0]); }
static Tensor *f_relu(Ctx *c, Tensor **in, void *arg) { return mt_relu(c, in[0]); }
static Tensor *f_silu(Ctx *c, Tensor **in, void *arg) { return mt_silu(c, in[0]); }

static void fail_msg(const char *what, const char *msg) {
    fprintf(stderr, "[%s] %s\n", what, msg);
    gc_failures++;
}

/* Move values of x (+ bias per channel) at least `gap` away from 0, for ReLU's kink. */
static void away_from_zero(Tensor *x, const Tensor *bias, float gap) {
    int C = mt_last(x);
    for (size_t i = 0; i < x->numel; i++) {
        float bb = bias ? bias->data[i % C] : 0.0f;
        float z = x->data[i] + bb;
        if (fabsf(z) < gap) x->data[i] = (z < 0 ? -gap : gap) * 2.0f - bb;
    }
}

int main(void) {
    ParamList p = {0};
    Ctx c;
    mt_ctx_init(&c, 1 << 16);

    /* ---- closed-form values ---- */
    Tensor *v = gc_input(&p, "v", 1, (int[]){6}, 0, 1);
    const float xs[6] = {1.0f, -1.0f, 0.0f, 2.0f, -3.0f, 0.5f};
    memcpy(v->data, xs, sizeof xs);
    const float gelu_w[6] = {0.8413447f, -0.1586553f, 0.0f, 1.9544997f, -0.0040496941f, 0.3457312f};
    const float gelut_w[6] = {0.8411920f, -0.1588080f, 0.0f, 1.9545977f, -0.0036373921f, 0.3457140f};
    const float silu_w[6] = {0.7310586f, -0.2689414f, 0.0f, 1.7615942f, -0.1422776f, 0.3112297f};
    const float relu_w[6] = {1.0f, 0.0f, 0.0f, 2.0f, 0.0f, 0.5f};
    gc_expect("gelu values", mt_gelu(&c, v)->data, gelu_w, 6, 2e-6);
    gc_expect("gelu_tanh values", mt_gelu_tanh(&c, v)->data, gelut_w, 6, 2e-6);
    gc_expect("silu values", mt_silu(&c, v)->data, silu_w, 6, 2e-6);
    gc_expect("relu values", mt_relu(&c, v)->data, relu_w, 6, 0);
    if (mt_activation(&c, v, MT_ACT_NONE) != v) fail_msg("activation none", "identity must return x itself");
    else printf("%-28s ok\n", "activation none = identity");

    /* ---- fused bias_act == activation(bias_add) exactly, every act, large tensor too ---- */
    const int s3[3] = {3, 5, 7}, s4[4] = {2, 3, 5, 7}, sl[4] = {3, 9, 11, 57};
    Tensor *x3 = gc_input(&p, "x3", 3, s3, -3, 3);
    Tensor *x4 = gc_input(&p, "x4", 4, s4, -3, 3);
    Tensor *xl = gc_input(&p, "xl", 4, sl, -3, 3);
    Tensor *b7 = gc_input(&p, "fc1.bias", 1, (int[]){7}, -1, 1);
    Tensor *bl = gc_input(&p, "bl", 1, (int[]){57}, -1, 1);
    const mt_act acts[4] = {MT_ACT_GELU, MT_ACT_GELU_TANH, MT_ACT_RELU, MT_ACT_SILU};
    const char *names[4] = {"gelu", "gelu_tanh", "relu", "silu"};
    for (int k = 0; k < 4; k++) {
        Tensor *xx[2] = {x4, xl}, *bb[2] = {b7, bl};
        for (int t = 0; t < 2; t++) {
            mt_ctx_reset(&c);
            Tensor *fused = mt_bias_act(&c, xx[t], bb[t], acts[k]);
            Tensor *ref = mt_activation(&c, mt_bias_add(&c, xx[t], bb[t]), acts[k]);
            char what[64];
            snprintf(what, sizeof what, "bias_act %s fused%s", names[k], t ? " large" : "");
            if (!fused || !ref || memcmp(fused->data, ref->data, ref->numel * sizeof(float)))
                fail_msg(what, "differs from activation(bias_add)");
            else printf("%-28s ok\n", what);
        }
    }
    mt_ctx_reset(&c);
    Tensor *y = mt_bias_act(&c, x3, b7, MT_ACT_NONE), *r = mt_bias_add(&c, x3, b7);
    if (!y || memcmp(y->data, r->data, r->numel * sizeof(float))) fail_msg("bias_act none", "differs from bias_add");
    else printf("%-28s ok\n", "bias_act none = bias_add");
    y = mt_bias_act(&c, x3, NULL, MT_ACT_SILU);
    r = mt_silu(&c, x3);
    if (!y || memcmp(y->data, r->data, r->numel * sizeof(float))) fail_msg("bias_act no bias", "differs from silu");
    else printf("%-28s ok\n", "bias_act no bias = act");

    /* ---- gradients ---- */
    const float h = 1e-2f;
    const double atol = 1e-3, rtol = 1e-2;
    Tensor *x3r = gc_input(&p, "x3r", 3, s3, -3, 3);
    Tensor *x4r = gc_input(&p, "x4r", 4, s4, -3, 3);
    Tensor *xlr = gc_input(&p, "xlr", 4, sl, -3, 3);
    away_from_zero(x3r, NULL, 0.05f);
    away_from_zero(x4r, b7, 0.05f);
    away_from_zero(xlr, bl, 0.05f);
    for (int k = 0; k < 4; k++) {
        ActArg a = {acts[k], 1}, nb = {acts[k], 0};
        int relu = acts[k] == MT_ACT_RELU;
        char what[64];
        snprintf(what, sizeof what, "%s (3,5,7)", names[k]);
        gradcheck(what, f_act, (Tensor *[]){relu ? x3r : x3}, 1, &a, h, atol, rtol);
        snprintf(what, sizeof what, "bias_act %s (2,3,5,7)", names[k]);
        gradcheck(what, f_bias_act, (Tensor *[]){relu ? x4r : x4, b7}, 2, &a, h, atol, rtol);
        snprintf(what, sizeof what, "bias_act %s no bias", names[k]);
        gradcheck(what, f_bias_act, (Tensor *[]){relu ? x3r : x3}, 1, &nb, h, atol, rtol);
        snprintf(what, sizeof what, "bias_act %s big", names[k]);
        gc_threads_agree(what, f_bias_act, (Tensor *[]){relu ? xlr : xl, bl}, 2, &a, 1e-5);
    }
    gradcheck("mt_gelu (2,3,5,7)", f_gelu, (Tensor *[]){x4}, 1, NULL, h, atol, rtol);
    gradcheck("mt_gelu_tanh (2,3,5,7)", f_gelu_tanh, (Tensor *[]){x4}, 1, NULL, h, atol, rtol);
    gradcheck("mt_relu (2,3,5,7)", f_relu, (Tensor *[]){x4r}, 1, NULL, h, atol, rtol);
    gradcheck("mt_silu (2,3,5,7)", f_silu, (Tensor *[]){x4}, 1, NULL, h, atol, rtol);
    {
        ActArg a = {MT_ACT_NONE, 1};
        gradcheck("bias_act none (2,3,5,7)", f_bias_act, (Tensor *[]){x4, b7}, 2, &a, h, atol, rtol);
        ActArg g = {MT_ACT_GELU, 1};
        x4->requires_grad = 0; /* only the bias gets a gradient */
        gradcheck("bias_act gelu (x constant)", f_bias_act, (Tensor *[]){x4, b7}, 2, &g, h, atol, rtol);
        x4->requires_grad = 1;
    }

    /* ---- GELU kernel: both code paths against double-precision erf over a dense grid ----
     * |error| <= 1e-6 (1 + |x|) everywhere (PyTorch's CPU GELU class), never of the wrong
     * sign, bias added before the activation, odd widths (masked tails), in place. */
    {
        enum { W = 37, R = 2000 };
        static float xs_[R * W], yv[R * W], ys[R * W], bias[W];
        for (int j = 0; j < W; j++) bias[j] = 0.01f * (float)(j - 18);
        for (int i = 0; i < R * W; i++) xs_[i] = -12.0f + 24.0f * (float)i / (float)(R * W);
        mt_gelu_rows(yv, W, xs_, W, bias, R, W);
        mt_gelu_force_scalar(1);
        mt_gelu_rows(ys, W, xs_, W, bias, R, W);
        mt_gelu_force_scalar(0);
        double worst = 0, worst_ps = 0;
        int wrong_sign = 0;
        for (int i = 0; i < R * W; i++) {
            double v = (double)(xs_[i] + bias[i % W]);
            double ref = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
            double e = fmax(fabs(yv[i] - ref), fabs(ys[i] - ref)) / (1.0 + fabs(v));
            if (e > worst) worst = e;
            double d = fabs((double)yv[i] - ys[i]) / (1.0 + fabs(v));
            if (d > worst_ps) worst_ps = d;
            if ((yv[i] > 0 && ref < 0) || (yv[i] < 0 && ref > 0) || (ys[i] > 0 && ref < 0) || (ys[i] < 0 && ref > 0))
                wrong_sign++;
        }
        memcpy(ys, xs_, sizeof ys); /* in place, no bias: same as out of place */
        mt_gelu_rows(ys, W, ys, W, NULL, R, W);
        mt_gelu_rows(yv, W, xs_, W, NULL, R, W);
        if (worst > 1e-6 || worst_ps > 5e-7 || wrong_sign || memcmp(ys, yv, sizeof ys))
            fprintf(stderr, "[gelu kernel] max error %.3g (tol 1e-6), paths differ %.3g, %d wrong signs, in place %s\n",
                    worst, worst_ps, wrong_sign, memcmp(ys, yv, sizeof ys) ? "differs" : "ok"),
                gc_failures++;
        else printf("%-28s ok: max |err|/(1+|x|) %.2e, vector vs scalar %.2e\n", "gelu kernel vs erf", worst, worst_ps);
    }

    /* ---- bf16 outputs (an activation kept for MT_BF16 GEMMs): mt_gelu_rows_bf16 on both
     * paths and mt_bias_act_rows_bf16 for every activation equal the fp32 kernels' output
     * rounded by mt_bf16_from_f32, bit for bit; odd widths, a row stride past the width (the
     * gap untouched) ---- */
    {
        enum { W = 37, LD = 40, R = 300 };
        static float xb[R * W], yf[R * W];
        static uint16_t want[R * W], got[R * LD];
        float bias[W];
        for (int j = 0; j < W; j++) bias[j] = 0.02f * (float)(j - 18);
        for (int i = 0; i < R * W; i++) xb[i] = -9.0f + 18.0f * (float)i / (float)(R * W);
        int bad = 0;
        for (int path = 0; path < 2; path++) {
            mt_gelu_force_scalar(path);
            mt_gelu_rows(yf, W, xb, W, bias, R, W);
            mt_bf16_from_f32(want, yf, R * W);
            memset(got, 0xAB, sizeof got);
            mt_gelu_rows_bf16(got, LD, xb, W, bias, R, W);
            for (int r = 0; r < R; r++) {
                bad += memcmp(got + r * LD, want + r * W, W * sizeof(uint16_t)) != 0;
                for (int j = W; j < LD; j++) bad += got[r * LD + j] != 0xABAB;
            }
        }
        mt_gelu_force_scalar(0);
        for (int a = MT_ACT_GELU; a <= MT_ACT_NONE; a++) {
            const float *b = a == MT_ACT_RELU ? NULL : bias; /* one without a bias */
            mt_bias_act_rows((mt_act)a, yf, xb, b, R, W);
            mt_bf16_from_f32(want, yf, R * W);
            mt_bias_act_rows_bf16((mt_act)a, got, xb, b, R, W);
            bad += memcmp(got, want, (size_t)R * W * sizeof(uint16_t)) != 0;
        }
        if (bad) fprintf(stderr, "[bf16 activation outputs] %d mismatches\n", bad), gc_failures++;
        else printf("%-28s ok: equal to the fp32 kernels rounded\n", "bf16 activation outputs");
    }

    /* ---- GELU gradient kernel: both paths against the exact derivative Phi(v) + v phi(v) in
     * double; dx and the double bias sum accumulate (start from nonzero), masked tails (n = 37);
     * the second half of the rows overwrites dx (acc 0: NaN there must not survive). */
    {
        enum { N = 37, R = 400 };
        static float xg[R * N], dyg[R * N], dxv[R * N], dxs[R * N];
        float bias[N];
        double dbv[N], dbs[N], dbref[N];
        for (int j = 0; j < N; j++) bias[j] = 0.05f * (float)(j - 18), dbv[j] = dbs[j] = dbref[j] = 0.25;
        for (int i = 0; i < R * N; i++) {
            xg[i] = -9.0f + 18.0f * (float)i / (float)(R * N);
            dyg[i] = 0.5f + (float)(i % 7) * 0.25f;
            dxv[i] = dxs[i] = i < R / 2 * N ? 0.125f : NAN;
        }
        mt_gelu_grad_rows(dxv, dyg, xg, N, bias, dbv, R / 2, N, 1);
        mt_gelu_grad_rows(dxv + R / 2 * N, dyg + R / 2 * N, xg + R / 2 * N, N, bias, dbv, R / 2, N, 0);
        mt_gelu_force_scalar(1);
        for (int r = 0; r < R; r++) /* row by row: the one-row calls */
            mt_gelu_grad_rows(dxs + r * N, dyg + r * N, xg + r * N, N, bias, dbs, 1, N, r < R / 2);
        mt_gelu_force_scalar(0);
        double worst = 0, worst_db = 0;
        for (int i = 0; i < R * N; i++) {
            double v = (double)xg[i] + bias[i % N];
            double d = 0.5 * (1.0 + erf(v / sqrt(2.0))) + v * exp(-0.5 * v * v) / sqrt(2.0 * M_PI);
            double want = (i < R / 2 * N ? 0.125 : 0.0) + dyg[i] * d;
            dbref[i % N] += dyg[i] * d;
            double e = fmax(fabs(dxv[i] - want), fabs(dxs[i] - want)) / fabs(dyg[i]);
            if (!(e <= worst)) worst = e; /* NaN left in dx makes worst NaN: a failure */
        }
        for (int j = 0; j < N; j++) {
            double e = fmax(fabs(dbv[j] - dbref[j]), fabs(dbs[j] - dbref[j])) / R;
            if (e > worst_db) worst_db = e;
        }
        if (!(worst <= 1e-6) || worst_db > 1e-6)
            fprintf(stderr, "[gelu grad kernel] max error %.3g, bias sum error %.3g (tol 1e-6)\n", worst, worst_db),
                gc_failures++;
        else printf("%-28s ok: max |err| %.2e, bias sum %.2e\n", "gelu grad kernel vs exact", worst, worst_db);
    }

    /* ---- errors ---- */
    mt_ctx_reset(&c);
    mt_scope(&c, "blocks.2.mlp_channels");
    Tensor *b5 = gc_input(&p, "blocks.2.mlp_channels.fc1.bias", 1, (int[]){5}, -1, 1);
    Tensor *bad = mt_bias_act(&c, x4, b5, MT_ACT_GELU);
    if (bad || !strstr(c.err, "bias_act in blocks.2.mlp_channels") || !strstr(c.err, "(2,3,5,7)") ||
        !strstr(c.err, "(5)") || !strstr(c.err, "blocks.2.mlp_channels.fc1.bias"))
        fail_msg("bias_act shape error", c.err);
    else printf("%-28s ok: %s\n", "bias_act shape error", c.err);
    if (mt_gelu(&c, x4) || mt_activation(&c, bad, MT_ACT_RELU) || !strstr(c.err, "bias_act"))
        fail_msg("sticky", "op ran after failure");
    mt_ctx_reset(&c);
    bad = mt_activation(&c, x3, (mt_act)42);
    if (bad || !strstr(c.err, "activation") || !strstr(c.err, "42") || !strstr(c.err, "(3,5,7)"))
        fail_msg("unknown activation", c.err);
    else printf("%-28s ok: %s\n", "unknown activation", c.err);

    mt_ctx_free(&c);
    mt_params_free(&p);
    return gc_report();
}
