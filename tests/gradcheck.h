/* Finite-difference gradient checks for ops, shared by the op tests.
 *
 * The scalar checked is L = sum(out * R) for a fixed random R, so every output
 * element contributes with its own weight. Analytic gradients come from
 * mt_backward_seed(out, R); numeric ones from central differences
 * (L(x+h) - L(x-h)) / 2h evaluated in no-grad mode, accumulated in double.
 * An element passes when |analytic - numeric| <= atol + rtol * |numeric|. */
#pragma once
#include "core/ops.h"
#include "core/params.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Tensor *(*gc_forward)(Ctx *c, Tensor **in, void *arg);

static int gc_failures = 0;

static uint64_t gc_state = 0x1234567887654321ull;
static float gc_uniform(void) { /* xorshift64*, test data only */
    gc_state ^= gc_state >> 12; gc_state ^= gc_state << 25; gc_state ^= gc_state >> 27;
    return (float)((gc_state * 2685821657736338717ull) >> 40) * (1.0f / 16777216.0f);
}
static void gc_fill(Tensor *t, float lo, float hi) {
    for (size_t i = 0; i < t->numel; i++) t->data[i] = lo + (hi - lo) * gc_uniform();
}

/* A parameter-like leaf tensor for tests (persistent, requires grad). */
static Tensor *gc_input(ParamList *p, const char *name, int ndim, const int *shape, float lo, float hi) {
    Tensor *t = mt_param_new(p, name, ndim, shape);
    gc_fill(t, lo, hi);
    return t;
}

static double gc_loss(Ctx *c, gc_forward f, Tensor **in, void *arg, const float *R, uint64_t counter) {
    mt_ctx_reset(c);
    c->counter = counter;
    int g = c->grad_enabled;
    c->grad_enabled = 0;
    Tensor *out = f(c, in, arg);
    c->grad_enabled = g;
    if (!out) { fprintf(stderr, "forward failed: %s\n", c->err); exit(1); }
    double s = 0;
    for (size_t i = 0; i < out->numel; i++) s += (double)out->data[i] * R[i];
    return s;
}

/* Checks every input with requires_grad (at most max_elems elements each, spread evenly). */
static int gradcheck(const char *name, gc_forward f, Tensor **in, int nin, void *arg, float h, double atol,
                     double rtol) {
    Ctx c;
    mt_ctx_init(&c, 1 << 20);
    c.training = 1;
    uint64_t counter = 77;
    mt_ctx_reset(&c);
    c.counter = counter;
    Tensor *out = f(&c, in, arg);
    if (!out) { fprintf(stderr, "[%s] forward failed: %s\n", name, c.err); gc_failures++; mt_ctx_free(&c); return 1; }
    float *R = malloc(out->numel * sizeof(float));
    for (size_t i = 0; i < out->numel; i++) R[i] = gc_uniform() * 2.0f - 1.0f;
    for (int k = 0; k < nin; k++)
        if (in[k]->grad) memset(in[k]->grad, 0, in[k]->numel * sizeof(float));
    if (mt_backward_seed(&c, out, R) != 0) {
        fprintf(stderr, "[%s] backward failed: %s\n", name, c.err);
        gc_failures++; free(R); mt_ctx_free(&c); return 1;
    }
    int bad = 0;
    double worst = 0;
    const size_t max_elems = 400;
    float *anas[16] = {0};
    for (int k = 0; k < nin && k < 16; k++)
        if (in[k]->requires_grad) {
            anas[k] = malloc(in[k]->numel * sizeof(float));
            memcpy(anas[k], in[k]->grad, in[k]->numel * sizeof(float));
            memset(in[k]->grad, 0, in[k]->numel * sizeof(float));
        }
    /* Again with every input behind a recorded reshape, so the op's inputs are activations
     * as inside a model: their gradient buffers come fresh (unzeroed) and an op that
     * overwrites must write every element. Same gradients (0 + g == g). */
    {
        mt_ctx_reset(&c);
        c.counter = counter;
        c.poison_fresh = 1;
        Tensor *wrapped[16];
        for (int k = 0; k < nin && k < 16; k++)
            wrapped[k] = in[k]->requires_grad ? mt_reshape(&c, in[k], in[k]->ndim, in[k]->shape) : in[k];
        Tensor *o2 = f(&c, nin <= 16 ? wrapped : in, arg);
        if (!o2 || mt_backward_seed(&c, o2, R) != 0) {
            fprintf(stderr, "[%s] forward/backward on activations failed: %s\n", name, c.err);
            bad++;
        }
        for (int k = 0; k < nin && k < 16 && !bad; k++)
            for (size_t i = 0; anas[k] && i < in[k]->numel; i++)
                if (!(fabs((double)in[k]->grad[i] - anas[k][i]) <= 1e-6 * (1.0 + fabs((double)anas[k][i])))) {
                    fprintf(stderr, "[%s] input %d (%s) elem %zu: gradient %.7g as a parameter, %.7g as an activation\n",
                            name, k, in[k]->name, i, anas[k][i], in[k]->grad[i]);
                    bad++;
                    break;
                }
    }
    for (int k = 0; k < nin; k++) {
        Tensor *t = in[k];
        if (!t->requires_grad) continue;
        float *ana = anas[k] ? anas[k] : malloc(t->numel * sizeof(float));
        if (!anas[k]) memcpy(ana, t->grad, t->numel * sizeof(float));
        size_t step = t->numel > max_elems ? t->numel / max_elems : 1;
        for (size_t i = 0; i < t->numel; i += step) {
            float x0 = t->data[i];
            t->data[i] = x0 + h;
            double lp = gc_loss(&c, f, in, arg, R, counter);
            t->data[i] = x0 - h;
            double lm = gc_loss(&c, f, in, arg, R, counter);
            t->data[i] = x0;
            double num = (lp - lm) / (2.0 * (double)h);
            double err = fabs((double)ana[i] - num);
            double lim = atol + rtol * fabs(num);
            if (err / lim > worst) worst = err / lim;
            if (err > lim) {
                if (bad < 5)
                    fprintf(stderr, "[%s] input %d (%s) elem %zu: analytic %.6g numeric %.6g\n", name, k,
                            t->name, i, ana[i], num);
                bad++;
            }
        }
        free(ana);
    }
    printf("%-28s %s (worst err/tol %.3f)\n", name, bad ? "FAIL" : "ok", worst);
    if (bad) gc_failures++;
    free(R);
    mt_ctx_free(&c);
    return bad != 0;
}

/* Forward-value check against an expected array. */
static int gc_expect(const char *name, const float *got, const float *want, size_t n, double tol) {
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= tol * (1.0 + fabs((double)want[i])))) {
            fprintf(stderr, "[%s] value %zu: got %.7g want %.7g\n", name, i, got[i], want[i]);
            gc_failures++;
            return 1;
        }
    printf("%-28s ok\n", name);
    return 0;
}

/* Large shapes take the OpenMP paths (small ones run serially): the output and
 * every input gradient must agree between 1 and 2 threads within tol (relative;
 * only the order of per-thread partial sums may differ). Cheap, unlike a
 * gradcheck on a big tensor. Returns 1 on a mismatch. */
static __attribute__((unused)) int gc_threads_agree(const char *name, gc_forward f, Tensor **in, int nin, void *arg, double tol) {
    float *res[2][MT_NODE_MAXIN + 1] = {{0}};
    size_t nout = 0;
    int nt = omp_get_max_threads();
    for (int pass = 0; pass < 2; pass++) {
        omp_set_num_threads(pass == 0 ? 2 : 1);
        Ctx c;
        mt_ctx_init(&c, 1 << 20);
        c.counter = 7;
        for (int k = 0; k < nin; k++)
            if (in[k]->grad) memset(in[k]->grad, 0, in[k]->numel * sizeof(float));
        Tensor *out = f(&c, in, arg);
        if (!out) { fprintf(stderr, "[%s] forward failed: %s\n", name, c.err); gc_failures++; mt_ctx_free(&c); return 1; }
        nout = out->numel;
        float *seed = malloc(nout * sizeof(float));
        for (size_t i = 0; i < nout; i++) seed[i] = (float)((i * 7919u) % 1000u) / 500.0f - 1.0f;
        res[pass][0] = malloc(nout * sizeof(float));
        memcpy(res[pass][0], out->data, nout * sizeof(float));
        if (mt_backward_seed(&c, out, seed) != 0) { fprintf(stderr, "[%s] backward failed: %s\n", name, c.err); gc_failures++; }
        for (int k = 0; k < nin; k++)
            if (in[k]->requires_grad) {
                res[pass][k + 1] = malloc(in[k]->numel * sizeof(float));
                memcpy(res[pass][k + 1], in[k]->grad, in[k]->numel * sizeof(float));
            }
        free(seed);
        mt_ctx_free(&c);
    }
    omp_set_num_threads(nt);
    int bad = 0;
    for (int k = 0; k <= nin && !bad; k++) {
        if (!res[0][k]) continue;
        size_t n = k ? in[k - 1]->numel : nout;
        for (size_t i = 0; i < n; i++)
            if (!(fabs((double)res[0][k][i] - res[1][k][i]) <= tol * (1.0 + fabs((double)res[1][k][i])))) {
                fprintf(stderr, "[%s] %s %zu: 2 threads %.7g, 1 thread %.7g\n", name, k ? in[k - 1]->name : "output", i,
                        res[0][k][i], res[1][k][i]);
                bad = 1;
                break;
            }
    }
    for (int p = 0; p < 2; p++)
        for (int k = 0; k <= nin; k++) free(res[p][k]);
    printf("%-28s %s (1 vs 2 threads)\n", name, bad ? "FAIL" : "ok");
    gc_failures += bad;
    return bad;
}

/* An op call that must be refused: ok when it returned NULL with c->failed set and its message
 * holds the first n needles (a NULL needle ends them early). Prints the message either way. */
static inline void gc_expect_error(const Ctx *c, const Tensor *got, const char *what, const char *const *needles, int n) {
    int ok = got == NULL && c->failed;
    for (int i = 0; ok && i < n && needles[i]; i++)
        if (!strstr(c->err, needles[i])) ok = 0;
    if (!ok) {
        fprintf(stderr, "[%s] bad error: '%s'\n", what, c->err);
        gc_failures++;
    } else printf("error: %-21s ok: %s\n", what, c->err);
}

static int gc_report(void) {
    if (gc_failures) { fprintf(stderr, "%d check(s) failed\n", gc_failures); return 1; }
    printf("all checks passed\n");
    return 0;
}
