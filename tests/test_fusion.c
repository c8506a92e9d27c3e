/* Fusion as a checked contract: every fused kernel against its composed reference
 * (core/fuse.h; c->fuse = 0 runs the primitives), on whole models, so a new fusion cannot
 * land unchecked. The cases are not a hand list of ops: every registered preset (those over
 * 32 px with tiny sizes: few blocks, small widths), every token mixer in the table
 * (layers/tokmix.c) on the tiny isotropic and hierarchical presets, and every choice of every
 * choice-valued override (norm, act, mlp) plus drop path. For each case, in fp32 and bf16:
 *   eval (no tape): logits and loss, fused vs reference;
 *   train (tape):   logits, loss and every parameter's gradient, fused vs reference;
 *   the fused training tape records fewer nodes (the fusions did run).
 * Error measure: per tensor max|fused - ref| / max|ref|. Tolerances: the fused kernels change
 * only summation order (epilogues, the chained GEMM, the pool's column sums, dgamma's row dot),
 * ~1e-7 per op in fp32; in bf16 an fp32 ulp of difference can move an operand across a bf16
 * rounding point (2^-8 of that element) before a GEMM. The measured maxima are printed. */
#include "layers/layers.h"
#include "core/fuse.h"
#include "core/gemm.h"
#include "core/ops.h"
#include "core/threads.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "testmodel.h"

/* [fp32, bf16][outputs (logits, loss), gradients] */
static const double tol[2][2] = {{1e-5, 1e-4}, {5e-3, 5e-2}};
#define GRAD_FLOOR 1e-2

static int cases = 0, nseen = 0;
static ModelConfig seen[256]; /* configs already checked (name cleared): each runs once */
static double worst[2][3]; /* [fp32, bf16][eval, train outputs, gradients] */

static double max_abs(const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(b[i]) > m) m = fabs(b[i]);
    return m;
}

/* max|a - b| / max(max|b|, floor) over n floats (NaN anywhere: infinite). The floor keeps a
 * gradient that is zero up to rounding (a norm's bias before pool(n) - n, which cancels it;
 * a layer scale on a 1 x 1 pool) from counting its noise as a relative error of 1. */
static double rel_diff(const float *a, const float *b, size_t n, double floor) {
    double d = 0, m = max_abs(b, n);
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (e != e) return INFINITY;
        if (e > d) d = e;
    }
    if (m < floor) m = floor;
    return m > 0 ? d / m : d;
}

typedef struct Run {
    float *logits, *grads; /* logits (B x classes), every parameter's gradient one after another */
    double loss;
    int nodes;
} Run;

/* One forward (train: with a tape, then backward) of m in the given mode. 0 or -1. */
static int run(Model *m, Ctx *c, float *img, const int *shape, const int *labels, int train, int fuse, int prec,
               Run *r, const char *what) {
    mt_ctx_reset(c);
    c->fuse = fuse;
    c->precision = prec;
    c->grad_enabled = train;
    c->training = train;
    c->seed = 12345; /* the same drop-path draws in both modes */
    c->counter = 0;
    mt_params_zero_grad(&m->params);
    Tensor *x = mt_wrap(c, img, 4, shape);
    Tensor *y = model_forward(c, m, x);
    Tensor *loss = mt_cross_entropy(c, y, labels, NULL, 0.0f);
    if (!loss || (train && mt_backward(c, loss))) {
        CHECK(0, "%s: %s forward%s failed: %s", what, fuse ? "fused" : "reference", train ? "/backward" : "", c->err);
        return -1;
    }
    r->logits = malloc(y->numel * sizeof(float));
    memcpy(r->logits, y->data, y->numel * sizeof(float));
    r->loss = loss->data[0];
    r->nodes = c->nnodes;
    r->grads = NULL;
    if (train) {
        size_t total = mt_params_count(&m->params), at = 0;
        r->grads = malloc(total * sizeof(float));
        for (int i = 0; i < m->params.n; i++) {
            Tensor *t = m->params.t[i];
            if (t->grad) memcpy(r->grads + at, t->grad, t->numel * sizeof(float));
            else memset(r->grads + at, 0, t->numel * sizeof(float));
            at += t->numel;
        }
    }
    return 0;
}

static void run_free(Run *r) {
    free(r->logits);
    free(r->grads);
}

static void note(int p, int k, double e) {
    if (e > worst[p][k] || e != e) worst[p][k] = e;
}

static void check_case(const char *base, const char *const *over, const char *label) {
    char err[512], what[160];
    snprintf(what, sizeof what, "%s%s%s", base, label[0] ? " " : "", label);
    ModelConfig cfg;
    if (model_config_default(base, &cfg, err, sizeof err)) { CHECK(0, "%s: %s", what, err); return; }
    for (int i = 0; over && over[i]; i += 2)
        if (model_config_set(&cfg, over[i], over[i + 1], err, sizeof err)) { CHECK(0, "%s: %s", what, err); return; }
    ModelConfig key = cfg;
    memset(key.name, 0, sizeof key.name);
    for (int i = 0; i < nseen; i++)
        if (!memcmp(&seen[i], &key, sizeof key)) { printf("same %s (an earlier case)\n", what); return; }
    if (nseen < (int)(sizeof seen / sizeof seen[0])) seen[nseen++] = key;
    Model m;
    if (testmodel_build(&m, &cfg, err, sizeof err)) { CHECK(0, "%s: build: %s", what, err); return; }
    int B = 2, C = cfg.in_chans, S = cfg.img_size, shape[4] = {B, C, S, S}, labels[2];
    size_t npix = (size_t)B * C * S * S;
    float *img = malloc(npix * sizeof(float));
    testmodel_input(img, npix);
    for (int b = 0; b < B; b++) labels[b] = (3 * b + 1) % cfg.num_classes;
    size_t nlog = (size_t)B * cfg.num_classes, npar = mt_params_count(&m.params);
    Ctx c;
    mt_ctx_init(&c, 1 << 24);
    static const int precs[2] = {MT_FP32, MT_BF16};
    double e[2][3] = {{0}};
    for (int p = 0; p < 2; p++) {
        for (int train = 0; train < 2; train++) {
            Run f, r;
            if (run(&m, &c, img, shape, labels, train, 1, precs[p], &f, what)) goto out;
            if (run(&m, &c, img, shape, labels, train, 0, precs[p], &r, what)) { run_free(&f); goto out; }
            double el = rel_diff(f.logits, r.logits, nlog, 0);
            double ell = fabs(f.loss - r.loss) / (fabs(r.loss) > 1e-6 ? fabs(r.loss) : 1e-6);
            double eo = el > ell ? el : ell;
            CHECK(eo <= tol[p][0], "%s %s %s: logits/loss differ by %.3g (tolerance %.1g): loss %.7g fused, %.7g reference",
                  what, p ? "bf16" : "fp32", train ? "train" : "eval", eo, tol[p][0], f.loss, r.loss);
            e[p][train] = eo;
            note(p, train, eo);
            if (train) {
                CHECK(f.nodes < r.nodes, "%s %s: the fused tape has %d nodes, the reference %d: no fusion ran", what,
                      p ? "bf16" : "fp32", f.nodes, r.nodes);
                size_t at = 0;
                double floor = GRAD_FLOOR * max_abs(r.grads, npar); /* of the largest gradient */
                for (int i = 0; i < m.params.n; i++) {
                    Tensor *t = m.params.t[i];
                    double eg = rel_diff(f.grads + at, r.grads + at, t->numel, floor);
                    CHECK(eg <= tol[p][1], "%s %s: gradient of %s differs by %.3g (tolerance %.1g)", what,
                          p ? "bf16" : "fp32", t->name, eg, tol[p][1]);
                    if (eg > e[p][2] || eg != eg) e[p][2] = eg;
                    at += t->numel;
                }
                CHECK(at == npar, "%s: parameter count", what);
                note(p, 2, e[p][2]);
            }
            run_free(&f);
            run_free(&r);
        }
    }
    cases++;
    printf("ok   %-44s fp32 %.1e %.1e %.1e  bf16 %.1e %.1e %.1e\n", what, e[0][0], e[0][1], e[0][2], e[1][0], e[1][1],
           e[1][2]);
out:
    mt_ctx_free(&c);
    free(img);
    model_free(&m);
}

/* Small sizes for a registered model over 32 px (the timm families): few blocks, small widths. */
static const char *const tiny_iso[] = {"img-size", "32", "patch-size", "8", "embed-dim", "32", "depth", "2",
                                       "heads", "2", "num-classes", "7", NULL};
static const char *const tiny_hier[] = {"img-size", "32", "depths", "1,1,2,1", "dims", "16,16,32,32",
                                        "num-classes", "7", NULL};
/* Faster sizes of the tiny presets for the mixer and override sweeps. */
static const char *const small_iso[] = {"img-size", "16", "patch-size", "4", "embed-dim", "32", "depth", "2",
                                        "heads", "2", "mem-units", "8", "num-classes", "5", NULL};
static const char *const small_hier[] = {"img-size", "16", "depths", "1,2,1,1", "dims", "8,16,16,32",
                                         "mem-units", "8", "heads", "2", "rep-kernels", "3", "num-classes", "5", NULL};

/* base overrides followed by one key/value pair (or two). */
static void check_with(const char *preset, const char *const *base, const char *k1, const char *v1, const char *k2,
                       const char *v2) {
    const char *over[48];
    int n = 0;
    for (int i = 0; base[i] && n < 40; i++) over[n++] = base[i];
    char label[96] = "";
    if (k1) over[n++] = k1, over[n++] = v1;
    if (k2) over[n++] = k2, over[n++] = v2;
    over[n] = NULL;
    if (k1) snprintf(label, sizeof label, "%s=%s%s%s%s%s", k1, v1, k2 ? " " : "", k2 ? k2 : "", k2 ? "=" : "",
                     k2 ? v2 : "");
    check_case(preset, over, label);
}

static int is_hier(const char *preset) {
    ModelConfig cfg;
    char err[256];
    return model_config_default(preset, &cfg, err, sizeof err) == 0 && cfg.num_stages > 0;
}

int main(void) {
    mt_set_threads(1); /* the op tests cover the threaded splits; here two runs must agree */
    /* the environment switch reaches new contexts; the default is fused */
    Ctx c;
    setenv("MIXTAPE_FUSION", "0", 1);
    mt_ctx_init(&c, 0);
    CHECK(c.fuse == 0, "MIXTAPE_FUSION=0: c.fuse %d", c.fuse);
    CHECK(!mt_fuse_ok(&c, MT_FUSE_LINEAR_EPILOGUE, 0), "reference mode still fuses");
    mt_ctx_free(&c);
    unsetenv("MIXTAPE_FUSION");
    mt_ctx_init(&c, 0);
    CHECK(c.fuse == 1, "default: c.fuse %d", c.fuse);
    for (int f = 0; f < MT_FUSE_COUNT; f++)
        CHECK(mt_fuse_ok(&c, (MtFuse)f, 0) || mt_fuse_ok(&c, (MtFuse)f, 1), "rule %s never applies",
              mt_fuse_name((MtFuse)f));
    mt_ctx_free(&c);

    /* every registered preset: as it is when small, else with tiny sizes */
    for (int i = 0; i < model_count(); i++) {
        ModelConfig cfg;
        char err[256];
        const char *name = model_name(i);
        if (model_config_default(name, &cfg, err, sizeof err)) { CHECK(0, "%s: %s", name, err); continue; }
        if (cfg.img_size <= 32) check_case(name, NULL, "");
        else check_case(name, cfg.num_stages > 0 ? tiny_hier : tiny_iso, "tiny");
    }
    /* every token mixer in the table, on the tiny presets of the families that take it */
    const char *iso = "mixer_tiny", *hier = "poolformer_tiny", *gm = "gmlp_tiny";
    CHECK(!is_hier(iso) && is_hier(hier), "presets %s / %s changed kind", iso, hier);
    CHECK(cases >= 8, "only %d presets checked", cases);
    for (int i = 0; i < mixer_count(); i++) {
        const MixerDef *d = mixer_at(i);
        if (d->gmlp_only) { check_with(gm, small_iso, NULL, NULL, NULL, NULL); continue; }
        check_with(iso, small_iso, "token-mixer", d->name, NULL, NULL);
        check_with(hier, small_hier, "token-mixer", d->name, NULL, NULL);
    }
    /* every choice of every choice-valued override (norm, act, mlp kind), with the mixers whose
     * branches fuse (token MLP, pool); and drop path, which moves the residual out of the branch */
    for (const ModelOverride *o = model_overrides(); o->key; o++) {
        if (o->type != 'c' || !o->choices) continue;
        char buf[256];
        /* a switch (on|off|true|false|1|0): its two values */
        snprintf(buf, sizeof buf, "%s", strstr(o->choices, "on|off") == o->choices ? "on|off" : o->choices);
        for (char *save = NULL, *v = strtok_r(buf, "|", &save); v; v = strtok_r(NULL, "|", &save)) {
            if (o->scope != 'h') check_with(iso, small_iso, o->key, v, NULL, NULL);
            if (o->scope != 'i') check_with(hier, small_hier, o->key, v, NULL, NULL);
        }
    }
    check_with(iso, small_iso, "drop-path", "0.2", NULL, NULL);
    check_with(hier, small_hier, "drop-path", "0.2", NULL, NULL);
    check_with(hier, small_hier, "drop-path", "0.2", "norm", "affine");

    printf("%d cases; max relative difference fused vs reference:\n", cases);
    for (int p = 0; p < 2; p++)
        printf("  %s: eval %.2e, train %.2e (tolerance %.0e); gradients %.2e (tolerance %.0e)\n", p ? "bf16" : "fp32",
               worst[p][0], worst[p][1], tol[p][0], worst[p][2], tol[p][1]);
    return check_summary("test_fusion");
}
