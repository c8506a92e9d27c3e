/* optim/: optimizers against their equations (in double), schedules against
 * their closed forms, clipping, gradient accumulation, EMA, parameter groups,
 * checkpoint state round trip and input validation.
 *
 * Run with no arguments: the checks. Run as `test_optim --driver IN OUT`: a
 * driver for tests/test_optim_torch.py (format described at driver_main). */
#include "core/ops.h"
#include "core/params.h"
#include "optim/clip.h"
#include "optim/ema.h"
#include "optim/optimizer.h"
#include "optim/param_groups.h"
#include "optim/schedule.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

static void check(int ok, const char *name, const char *fmt, ...) {
    if (ok) { printf("%-44s ok\n", name); return; }
    failures++;
    fprintf(stderr, "[%s] FAIL: ", name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float urand(void) { /* uniform [-1, 1) */
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return (float)((rng * 2685821657736338717ull) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

/* ------------------------------------------------------------------ model */

typedef struct { const char *name; int ndim, shape[4]; } Spec;
static const Spec SPECS[] = {
    {"stem.proj.weight", 4, {4, 3, 2, 2}},
    {"stem.proj.bias", 1, {4}},
    {"blocks.0.norm1.alpha", 3, {1, 1, 4}},
    {"blocks.0.norm1.weight", 1, {4}},
    {"blocks.0.mlp.fc1.weight", 2, {256, 260}}, /* > 32768 elements: the OpenMP path */
    {"blocks.0.mlp.fc1.bias", 1, {256}},
    {"head.weight", 2, {3, 6}},
    {"head.bias", 1, {3}},
};
#define NSPEC ((int)(sizeof SPECS / sizeof SPECS[0]))

static void make_params(ParamList *p) {
    memset(p, 0, sizeof *p);
    for (int i = 0; i < NSPEC; i++) {
        Tensor *t = mt_param_new(p, SPECS[i].name, SPECS[i].ndim, SPECS[i].shape);
        for (size_t j = 0; j < t->numel; j++) t->data[j] = urand();
    }
}

static void fill_grads(ParamList *p, float scale) {
    for (int i = 0; i < p->n; i++)
        for (size_t j = 0; j < p->t[i]->numel; j++) p->t[i]->grad[j] = scale * urand();
}

/* ------------------------------------------------- reference optimizers */

typedef struct {
    int n;
    size_t *numel;
    double **p, **m, **v;
    double *wd, *mult;
    int *trainable;
} Ref;

static void ref_init(Ref *r, const Optimizer *o) {
    ParamList *p = o->params;
    r->n = p->n;
    r->numel = calloc(p->n, sizeof(size_t));
    r->p = calloc(p->n, sizeof(double *));
    r->m = calloc(p->n, sizeof(double *));
    r->v = calloc(p->n, sizeof(double *));
    r->wd = calloc(p->n, sizeof(double));
    r->mult = calloc(p->n, sizeof(double));
    r->trainable = calloc(p->n, sizeof(int));
    for (int i = 0; i < p->n; i++) {
        size_t n = p->t[i]->numel;
        r->numel[i] = n;
        r->p[i] = calloc(n, sizeof(double));
        r->m[i] = calloc(n, sizeof(double));
        r->v[i] = calloc(n, sizeof(double));
        for (size_t j = 0; j < n; j++) r->p[i][j] = p->t[i]->data[j];
        r->wd[i] = o->wd[i];
        r->mult[i] = o->lr_mult[i];
        r->trainable[i] = p->t[i]->requires_grad;
    }
}

static void ref_free(Ref *r) {
    for (int i = 0; i < r->n; i++) { free(r->p[i]); free(r->m[i]); free(r->v[i]); }
    free(r->p); free(r->m); free(r->v); free(r->wd); free(r->mult); free(r->trainable); free(r->numel);
}

/* One step of the named algorithm in double. g: the float grads of the ParamList. */
static void ref_step(Ref *r, const ParamList *pl, const OptimConfig *c, OptKind kind, int nesterov, double lr0,
                     long t) {
    double b1 = c->beta1, b2 = c->beta2, eps = c->eps, mu = c->momentum;
    double bc1 = 1 - pow(b1, (double)t), bc2 = 1 - pow(b2, (double)t);
    double gdiv = 1;
    if (kind == OPT_LAMB && c->lamb_max_grad_norm > 0) {
        double s = 0;
        for (int i = 0; i < r->n; i++)
            if (r->trainable[i])
                for (size_t j = 0; j < r->numel[i]; j++) s += (double)pl->t[i]->grad[j] * pl->t[i]->grad[j];
        gdiv = fmax(sqrt(s) / c->lamb_max_grad_norm, 1.0);
    }
    for (int i = 0; i < r->n; i++) {
        if (!r->trainable[i]) continue;
        double lr = lr0 * r->mult[i], wd = r->wd[i];
        double *p = r->p[i], *m = r->m[i], *v = r->v[i];
        const float *gf = pl->t[i]->grad;
        size_t n = r->numel[i];
        if (kind == OPT_ADAMW || kind == OPT_ADAM) {
            for (size_t j = 0; j < n; j++) {
                double g = gf[j];
                if (kind == OPT_ADAMW) p[j] *= 1 - lr * wd;
                else g += wd * p[j];
                m[j] = b1 * m[j] + (1 - b1) * g;
                v[j] = b2 * v[j] + (1 - b2) * g * g;
                p[j] -= lr * (m[j] / bc1) / (sqrt(v[j] / bc2) + eps);
            }
        } else if (kind == OPT_LAMB) {
            double *u = malloc(n * sizeof(double)), wn = 0, un = 0;
            for (size_t j = 0; j < n; j++) {
                double g = gf[j] / gdiv;
                m[j] = b1 * m[j] + (1 - b1) * g;
                v[j] = b2 * v[j] + (1 - b2) * g * g;
                u[j] = (m[j] / bc1) / (sqrt(v[j]) / sqrt(bc2) + eps) + wd * p[j];
                wn += p[j] * p[j];
                un += u[j] * u[j];
            }
            wn = sqrt(wn);
            un = sqrt(un);
            double ratio = 1;
            if (wd != 0 || c->lamb_always_adapt) {
                ratio = wn > 0 && un > 0 ? wn / un : 1;
                if (c->lamb_trust_clip) ratio = fmin(ratio, 1);
            }
            for (size_t j = 0; j < n; j++) p[j] -= lr * ratio * u[j];
            free(u);
        } else {
            for (size_t j = 0; j < n; j++) {
                double d = gf[j] + wd * p[j];
                if (mu != 0) {
                    m[j] = t == 1 ? d : mu * m[j] + d; /* torch: buffer = clone(d) on the first step */
                    d = nesterov ? d + mu * m[j] : m[j];
                }
                p[j] -= lr * d;
            }
        }
    }
}

/* fp32 rounding happens at the scale of the operands (weights of size ~rms, updates),
 * not of a result that cancels to near zero: the tolerance is relative to |want| + rms(tensor). */
static double ref_cmp(const Ref *r, const ParamList *p, double rtol, double atol, int *bad) {
    double worst = 0;
    *bad = 0;
    for (int i = 0; i < r->n; i++) {
        double rms = 0;
        for (size_t j = 0; j < r->numel[i]; j++) rms += r->p[i][j] * r->p[i][j];
        rms = sqrt(rms / (double)r->numel[i]);
        for (size_t j = 0; j < r->numel[i]; j++) {
            double e = fabs((double)p->t[i]->data[j] - r->p[i][j]) / (atol + rtol * (fabs(r->p[i][j]) + rms));
            if (e > worst) worst = e;
            if (e > 1 && (*bad)++ < 3)
                fprintf(stderr, "  %s[%zu]: got %.9g want %.9g\n", p->t[i]->name, j, p->t[i]->data[j], r->p[i][j]);
        }
    }
    return worst;
}

static void test_optimizer(const char *label, OptimConfig oc, int steps) {
    ParamList p;
    make_params(&p);
    Optimizer o;
    char err[256];
    if (optim_create(&o, &p, &oc, err, sizeof err)) { check(0, label, "create: %s", err); mt_params_free(&p); return; }
    Ref r;
    ref_init(&r, &o);
    for (int s = 1; s <= steps; s++) {
        fill_grads(&p, s == 3 ? 5.0f : 1.0f);
        double lr = oc.lr * (1.0 + 0.25 * s);
        optim_set_lr(&o, lr);
        optim_step(&o);
        ref_step(&r, &p, &oc, o.kind, o.cfg.nesterov, lr, s);
    }
    int bad;
    double worst = ref_cmp(&r, &p, 1e-6, 1e-7, &bad);
    /* the state buffers too (LAMB's m/v are of the clipped gradient, SGD's of d) */
    double sworst = 0;
    for (int i = 0; i < p.n && o.nstates; i++)
        for (size_t j = 0; j < p.t[i]->numel; j++) {
            double e = fabs(optim_state_buf(&o, 0, i)[j] - r.m[i][j]) / (1e-6 + 2e-6 * fabs(r.m[i][j]));
            if (o.nstates > 1)
                e = fmax(e, fabs(optim_state_buf(&o, 1, i)[j] - r.v[i][j]) / (1e-9 + 2e-6 * fabs(r.v[i][j])));
            sworst = fmax(sworst, e);
        }
    char name[64];
    snprintf(name, sizeof name, "%s, %d steps", label, steps);
    check(!bad && sworst <= 1 && optim_get_step(&o) == steps, name,
          "%d params off (worst err/tol %.3g), state worst err/tol %.3g, step %ld", bad, worst, sworst,
          optim_get_step(&o));
    ref_free(&r);
    optim_free(&o);
    mt_params_free(&p);
}

static void test_optimizers(void) {
    OptimConfig oc;
    optim_config_default(&oc);
    oc.lr = 1e-2f;
    oc.weight_decay = 0.05f;
    oc.lr_mult = "head.*=1,*=0.5";
    oc.opt = "adamw";
    test_optimizer("adamw (groups, lr mult)", oc, 6);
    oc.opt = "adam";
    oc.weight_decay = 0.01f;
    oc.beta1 = 0.8f;
    oc.beta2 = 0.99f;
    oc.eps = 1e-6f;
    test_optimizer("adam (L2 in the gradient)", oc, 6);
    optim_config_default(&oc);
    oc.opt = "lamb";
    oc.lr = 1e-2f;
    oc.weight_decay = 0.02f;
    oc.eps = 1e-6f;
    test_optimizer("lamb (global clip on)", oc, 6);
    oc.lamb_max_grad_norm = 0;
    oc.lamb_always_adapt = 1;
    oc.lamb_trust_clip = 1;
    test_optimizer("lamb (no clip, always adapt, trust clip)", oc, 6);
    optim_config_default(&oc);
    oc.lr = 0.05f;
    oc.weight_decay = 1e-3f;
    oc.opt = "momentum";
    test_optimizer("sgd momentum", oc, 6);
    oc.opt = "nesterov";
    test_optimizer("sgd nesterov", oc, 6);
    oc.opt = "sgd";
    oc.momentum = 0;
    oc.nesterov = 0;
    test_optimizer("sgd plain", oc, 6);

    /* timm's name mapping: sgd -> Nesterov unless told, momentum -> plain momentum */
    ParamList p;
    make_params(&p);
    Optimizer o;
    char err[256];
    optim_config_default(&oc);
    oc.opt = "sgd";
    optim_create(&o, &p, &oc, err, sizeof err);
    int a = o.cfg.nesterov;
    optim_free(&o);
    oc.nesterov = 0;
    optim_create(&o, &p, &oc, err, sizeof err);
    int b = o.cfg.nesterov;
    optim_free(&o);
    oc.opt = "momentum";
    oc.nesterov = -1;
    optim_create(&o, &p, &oc, err, sizeof err);
    int c = o.cfg.nesterov;
    optim_free(&o);
    check(a == 1 && b == 0 && c == 0, "sgd nesterov by name (timm)", "sgd %d, sgd+nesterov=0 %d, momentum %d", a, b,
          c);

    /* LAMB's trust ratio is 1 when a norm is 0, and the update is then plain bias-corrected Adam */
    float w[4] = {0, 0, 0, 0}, g[4] = {1, -2, 0.5f, 3}, m[4] = {0}, v[4] = {0};
    float ratio = lamb_update(w, g, m, v, 4, 0.1f, 0.1f, 0.9f, 0.999f, 1e-6f, 1, 1.0f, 0, 0);
    int ok = ratio == 1.0f;
    for (int j = 0; j < 4; j++) ok &= fabsf(w[j] + 0.1f * (g[j] / fabsf(g[j]))) < 1e-5f;
    check(ok, "lamb trust ratio 1 at ||w|| = 0", "ratio %g, w %g %g %g %g", ratio, w[0], w[1], w[2], w[3]);
    mt_params_free(&p);
}

/* ------------------------------------------------------ parameter groups */

static void test_groups(void) {
    struct { const char *pat, *s; int want; } M[] = {
        {"head.*", "head.weight", 1},       {"head.*", "heads.weight", 0},
        {"*.norm*", "blocks.0.norm1.weight", 1}, {"*.norm*", "norm.weight", 0},
        {"stages.0.*", "stages.0.blocks.1.x", 1}, {"stages.0.*", "stages.10.x", 0},
        {"*", "anything.at.all", 1},        {"a*b*c", "axxbyyc", 1},
        {"a*b*c", "axxbyy", 0},             {"head.weight", "head.weight", 1},
        {"head.weight", "head.weight2", 0}, {"*bias", "fc.bias", 1},
    };
    int ok = 1;
    for (size_t k = 0; k < sizeof M / sizeof M[0]; k++)
        if (pg_match(M[k].pat, M[k].s) != M[k].want) {
            ok = 0;
            fprintf(stderr, "  pg_match('%s', '%s') != %d\n", M[k].pat, M[k].s, M[k].want);
        }
    check(ok, "glob patterns", "see above");

    ParamList p;
    make_params(&p);
    OptimConfig oc;
    optim_config_default(&oc);
    oc.weight_decay = 0.05f;
    Optimizer o;
    char err[256];
    optim_create(&o, &p, &oc, err, sizeof err);
    /* decay: stem.proj.weight, fc1.weight, head.weight; no decay: biases, norm weight, alpha (1,1,4) */
    const int decay[NSPEC] = {1, 0, 0, 0, 1, 0, 1, 0};
    ok = 1;
    for (int i = 0; i < NSPEC; i++) ok &= (o.wd[i] == (decay[i] ? oc.weight_decay : 0.0));
    check(ok, "no weight decay on 1-D / bias / alpha", "wd per param wrong");
    optim_free(&o);

    oc.wd_all = 1;
    optim_create(&o, &p, &oc, err, sizeof err);
    ok = 1;
    for (int i = 0; i < NSPEC; i++) ok &= o.wd[i] == oc.weight_decay;
    check(ok, "wd_all decays everything", "wd per param wrong");
    optim_free(&o);

    oc.wd_all = 0;
    oc.no_wd = "stem.*, head.weight";
    optim_create(&o, &p, &oc, err, sizeof err);
    ok = o.wd[0] == 0 && o.wd[6] == 0 && o.wd[4] == oc.weight_decay;
    check(ok, "no-wd patterns", "wd %g %g %g", o.wd[0], o.wd[6], o.wd[4]);
    optim_free(&o);

    oc.no_wd = NULL;
    oc.lr_mult = "head.*=1, *=0.1";
    optim_create(&o, &p, &oc, err, sizeof err);
    ok = 1;
    for (int i = 0; i < NSPEC; i++) ok &= o.lr_mult[i] == (i >= 6 ? 1.0 : 0.1);
    optim_free(&o);
    oc.lr_mult = "*=0.1,head.*=1"; /* first match wins */
    optim_create(&o, &p, &oc, err, sizeof err);
    for (int i = 0; i < NSPEC; i++) ok &= o.lr_mult[i] == 0.1;
    optim_free(&o);
    oc.lr_mult = "stages.9.*=3"; /* no match: error */
    ok &= optim_create(&o, &p, &oc, err, sizeof err) == -1 && strstr(err, "'stages.9.*' matches no parameter");
    check(ok, "lr multipliers (first match wins)", "err '%s'", err);

    /* freezing: no update, no state, grads ignored */
    oc.lr_mult = NULL;
    oc.freeze = "stem.*,blocks.0.norm1.*";
    oc.lr = 0.1f;
    float before[NSPEC];
    for (int i = 0; i < NSPEC; i++) before[i] = p.t[i]->data[0];
    ok = optim_create(&o, &p, &oc, err, sizeof err) == 0;
    for (int s = 0; s < 3; s++) {
        fill_grads(&p, 1.0f);
        optim_step(&o);
    }
    const int frozen[NSPEC] = {1, 1, 1, 1, 0, 0, 0, 0};
    for (int i = 0; i < NSPEC; i++) {
        ok &= p.t[i]->requires_grad == !frozen[i];
        ok &= frozen[i] ? p.t[i]->data[0] == before[i] : p.t[i]->data[0] != before[i];
        if (frozen[i])
            for (int s = 0; s < optim_num_states(&o); s++)
                for (size_t j = 0; j < p.t[i]->numel; j++) ok &= optim_state_buf(&o, s, i)[j] == 0.0f;
    }
    char desc[256];
    optim_describe(&o, desc, sizeof desc);
    ok &= strstr(desc, "adamw: 2 tensors") && strstr(desc, "2 (259) no decay") && strstr(desc, "4 frozen (60)");
    check(ok, "freeze patterns", "desc '%s'", desc);
    optim_free(&o);
    mt_params_free(&p);
}

/* ---------------------------------------------------- checkpoint state */

static void test_state_roundtrip(void) {
    const char *opts[] = {"adamw", "lamb", "momentum"};
    for (int k = 0; k < 3; k++) {
        ParamList a, b;
        rng = 42;
        make_params(&a);
        rng = 42;
        make_params(&b);
        OptimConfig oc;
        optim_config_default(&oc);
        oc.opt = opts[k];
        oc.lr = 0.01f;
        Optimizer oa, ob;
        char err[256];
        optim_create(&oa, &a, &oc, err, sizeof err);
        for (int s = 0; s < 3; s++) { fill_grads(&a, 1); optim_step(&oa); }
        /* "save" a's weights + state, "load" into b with a fresh optimizer */
        optim_create(&ob, &b, &oc, err, sizeof err);
        int ok = optim_num_states(&oa) == optim_num_states(&ob);
        for (int i = 0; i < a.n; i++) memcpy(b.t[i]->data, a.t[i]->data, a.t[i]->numel * sizeof(float));
        for (int s = 0; s < optim_num_states(&oa); s++) {
            int sb = optim_state_index(&ob, optim_state_name(&oa, s));
            ok &= sb == s;
            for (int i = 0; i < a.n; i++)
                memcpy(optim_state_buf(&ob, sb, i), optim_state_buf(&oa, s, i), a.t[i]->numel * sizeof(float));
        }
        optim_set_step(&ob, optim_get_step(&oa));
        for (int s = 0; s < 2; s++) {
            fill_grads(&a, 1);
            for (int i = 0; i < a.n; i++) memcpy(b.t[i]->grad, a.t[i]->grad, a.t[i]->numel * sizeof(float));
            optim_step(&oa);
            optim_step(&ob);
        }
        for (int i = 0; i < a.n; i++) ok &= !memcmp(a.t[i]->data, b.t[i]->data, a.t[i]->numel * sizeof(float));
        char name[64];
        snprintf(name, sizeof name, "state save/resume is exact (%s)", opts[k]);
        check(ok, name, "resumed run differs");
        optim_free(&oa);
        optim_free(&ob);
        mt_params_free(&a);
        mt_params_free(&b);
    }
    ParamList p;
    make_params(&p);
    OptimConfig oc;
    optim_config_default(&oc);
    Optimizer o;
    char err[256];
    optim_create(&o, &p, &oc, err, sizeof err);
    int ok = optim_num_states(&o) == 2 && !strcmp(optim_state_name(&o, 0), "exp_avg") &&
             !strcmp(optim_state_name(&o, 1), "exp_avg_sq") && !optim_state_name(&o, 2) &&
             !optim_state_buf(&o, 2, 0) && !optim_state_buf(&o, 0, NSPEC) && optim_state_index(&o, "nope") == -1;
    optim_free(&o);
    oc.opt = "momentum";
    optim_create(&o, &p, &oc, err, sizeof err);
    ok &= optim_num_states(&o) == 1 && !strcmp(optim_state_name(&o, 0), "momentum_buffer");
    optim_free(&o);
    oc.opt = "sgd";
    oc.momentum = 0;
    oc.nesterov = 0;
    optim_create(&o, &p, &oc, err, sizeof err);
    ok &= optim_num_states(&o) == 0;
    optim_free(&o);
    check(ok, "state names (torch's)", "wrong state enumeration");
    mt_params_free(&p);
}

/* ------------------------------------------------------------ schedules */

static int near(double a, double b) { return fabs(a - b) <= 1e-6 * fmax(fabs(b), 1e-6); }

static void test_schedules(void) {
    char err[256];
    const double PI = 3.14159265358979323846;
    SchedConfig s;
    sched_config_default(&s);
    s.lr = 1e-3f;
    s.min_lr = 1e-5f;
    s.warmup_lr = 1e-6f;
    s.epochs = 10;
    s.warmup_epochs = 2;
    s.steps_per_epoch = 50; /* W = 100, T = 500 */
    int ok = sched_init(&s, err, sizeof err) == 0 && s.warmup_steps == 100 && s.total_steps == 500;
    double lr = s.lr, lo = s.min_lr, wl = s.warmup_lr;
    ok &= near(sched_lr(&s, 0), wl);
    ok &= near(sched_lr(&s, 50), wl + (lr - wl) * 0.5);
    ok &= near(sched_lr(&s, 99), wl + (lr - wl) * 0.99);
    ok &= near(sched_lr(&s, 100), lo + 0.5 * (lr - lo) * (1 + cos(PI * 100 / 500)));
    ok &= near(sched_lr(&s, 250), lo + 0.5 * (lr - lo)); /* mid-way */
    ok &= near(sched_lr(&s, 499), lo + 0.5 * (lr - lo) * (1 + cos(PI * 499 / 500)));
    ok &= near(sched_lr(&s, 500), lo) && near(sched_lr(&s, 10000), lo);
    check(ok, "cosine (epochs -> steps, per-step warmup)", "%s", err);

    s.warmup_prefix = 1; /* decay clock starts after warmup */
    ok = near(sched_lr(&s, 100), lr) && near(sched_lr(&s, 300), lo + 0.5 * (lr - lo)) &&
         near(sched_lr(&s, 400), lo + 0.5 * (lr - lo) * (1 + cos(PI * 300 / 400))) && near(sched_lr(&s, 500), lo);
    check(ok, "cosine with warmup prefix", "lr(100) %g", sched_lr(&s, 100));

    sched_config_default(&s);
    s.sched = "linear";
    s.lr = 0.1f;
    s.min_lr = 0.001f;
    s.warmup_lr = 0.0f;
    s.warmup_epochs = 0;
    s.warmup_steps = 10;
    s.total_steps = 110;
    lr = s.lr; lo = s.min_lr;
    ok = sched_init(&s, err, sizeof err) == 0 && near(sched_lr(&s, 0), 0.0) && near(sched_lr(&s, 5), lr * 0.5) &&
         near(sched_lr(&s, 10), lo + (lr - lo) * (1 - 10.0 / 110)) && near(sched_lr(&s, 55), lo + (lr - lo) * 0.5) &&
         near(sched_lr(&s, 110), lo) && near(sched_lr(&s, 200), lo);
    check(ok, "linear", "%s", err);

    sched_config_default(&s);
    s.sched = "step";
    s.lr = 0.1f;
    s.warmup_lr = 0.01f;
    s.warmup_epochs = 1;
    s.decay_epochs = 3;
    s.decay_rate = 0.5f;
    s.steps_per_epoch = 10; /* W = 10, D = 30 */
    ok = sched_init(&s, err, sizeof err) == 0 && s.decay_steps == 30 && near(sched_lr(&s, 0), 0.01) &&
         near(sched_lr(&s, 5), 0.01 + 0.09 * 0.5) && near(sched_lr(&s, 10), 0.1) && near(sched_lr(&s, 29), 0.1) &&
         near(sched_lr(&s, 30), 0.05) && near(sched_lr(&s, 61), 0.025) && near(sched_lr(&s, 95), 0.1 * pow(0.5, 3));
    check(ok, "step", "%s", err);

    sched_config_default(&s);
    s.sched = "constant";
    s.lr = 0.3f;
    s.warmup_lr = 0.1f;
    s.warmup_epochs = 0;
    s.warmup_steps = 4;
    ok = sched_init(&s, err, sizeof err) == 0 && near(sched_lr(&s, 0), 0.1) && near(sched_lr(&s, 2), 0.2) &&
         near(sched_lr(&s, 4), 0.3) && near(sched_lr(&s, 1000000), 0.3);
    check(ok, "constant (no run length needed)", "%s", err);

    ok = near(lr_from_base(0.1f, 256, 1024, "linear", "sgd", err, sizeof err), 0.4) &&
         near(lr_from_base(0.1f, 256, 1024, "sqrt", "sgd", err, sizeof err), 0.2) &&
         near(lr_from_base(5e-4f, 512, 128, NULL, "adamw", err, sizeof err), 2.5e-4) && /* ada -> sqrt */
         near(lr_from_base(5e-4f, 512, 128, "", "lamb", err, sizeof err), 2.5e-4) &&
         near(lr_from_base(0.1f, 256, 128, "", "momentum", err, sizeof err), 0.05) &&
         lr_from_base(0.1f, 256, 128, "cube", "sgd", err, sizeof err) < 0 && strstr(err, "'cube'");
    check(ok, "lr from --lr-base (timm scaling)", "%s", err);
}

/* ------------------------------------------------------------- clipping */

static void test_clip(void) {
    ParamList p;
    make_params(&p);
    fill_grads(&p, 1.0f);
    p.t[0]->requires_grad = 0; /* frozen: not counted, not touched */
    size_t tot = mt_params_count(&p);
    float *g0 = malloc(tot * sizeof(float));
    size_t o = 0;
    double s = 0;
    for (int i = 0; i < p.n; i++)
        for (size_t j = 0; j < p.t[i]->numel; j++, o++) {
            g0[o] = p.t[i]->grad[j];
            if (i) s += (double)g0[o] * g0[o];
        }
    double norm = sqrt(s);
    float got = clip_grad_norm(&p, (float)norm * 2);
    int ok = fabs(got - norm) <= 1e-6 * norm;
    o = 0;
    for (int i = 0; i < p.n; i++)
        for (size_t j = 0; j < p.t[i]->numel; j++, o++) ok &= p.t[i]->grad[j] == g0[o];
    check(ok, "clip: below max_norm leaves grads alone", "norm %g want %g", got, norm);

    float maxn = 1.5f;
    got = clip_grad_norm(&p, maxn);
    float scale = (float)((double)maxn / got);
    ok = fabs(got - norm) <= 1e-6 * norm;
    o = 0;
    for (int i = 0; i < p.n; i++)
        for (size_t j = 0; j < p.t[i]->numel; j++, o++)
            ok &= p.t[i]->grad[j] == (i ? g0[o] * scale : g0[o]);
    ok &= fabs(grad_global_norm(&p) - maxn) <= 1e-5 * maxn;
    check(ok, "clip: scales by exactly max/total", "norm %g, after %g", got, grad_global_norm(&p));

    p.t[1]->grad[0] = NAN;
    ok = isnan(clip_grad_norm(&p, 1.0f)) && p.t[1]->grad[1] == g0[p.t[0]->numel + 1] * scale;
    p.t[1]->grad[0] = 0;
    clip_grad_value(&p, 0.25f);
    for (int i = 1; i < p.n; i++)
        for (size_t j = 0; j < p.t[i]->numel; j++) ok &= fabsf(p.t[i]->grad[j]) <= 0.25f;
    ok &= p.t[0]->grad[0] == g0[0];
    check(ok, "clip: NaN norm untouched, value mode", "");
    free(g0);
    mt_params_free(&p);
}

/* ---------------------------------------------------- grad accumulation */

/* Loss 0.5 * mean over rows of ||y||^2, y = x w^T + b: d loss / d y = y / rows. */
static void sq_backward(Ctx *c, Tensor *y, int rows, int k) {
    float *seed = malloc(y->numel * sizeof(float));
    for (size_t i = 0; i < y->numel; i++) seed[i] = y->data[i] / (float)rows / (float)k;
    mt_backward_seed(c, y, seed);
    free(seed);
}

static void test_accumulation(void) {
    enum { B = 12, IN = 7, OUT = 5, K = 4 };
    ParamList p = {0};
    Tensor *w = mt_param_new(&p, "fc.weight", 2, (int[]){OUT, IN});
    Tensor *b = mt_param_new(&p, "fc.bias", 1, (int[]){OUT});
    for (size_t j = 0; j < w->numel; j++) w->data[j] = urand();
    for (size_t j = 0; j < b->numel; j++) b->data[j] = urand();
    float x[B * IN];
    int labels[B];
    for (int i = 0; i < B * IN; i++) x[i] = urand();
    for (int i = 0; i < B; i++) labels[i] = (i * 7) % OUT;
    Ctx c;
    mt_ctx_init(&c, 1 << 20);
    float full[2][OUT * IN + OUT];

    for (int loss_kind = 0; loss_kind < 2; loss_kind++) {
        /* one batch of B */
        mt_params_zero_grad(&p);
        mt_ctx_reset(&c);
        Tensor *y = mt_linear(&c, mt_wrap(&c, x, 2, (int[]){B, IN}), w, b);
        if (loss_kind == 0) sq_backward(&c, y, B, 1);
        else accum_backward(&c, mt_cross_entropy(&c, y, labels, NULL, 0.1f), 1);
        memcpy(full[0], w->grad, sizeof(float) * OUT * IN);
        memcpy(full[0] + OUT * IN, b->grad, sizeof(float) * OUT);
        /* K micro-batches of B/K, loss / K, no zeroing in between */
        mt_params_zero_grad(&p);
        for (int m = 0; m < K; m++) {
            mt_ctx_reset(&c);
            Tensor *ym = mt_linear(&c, mt_wrap(&c, x + m * (B / K) * IN, 2, (int[]){B / K, IN}), w, b);
            if (loss_kind == 0) sq_backward(&c, ym, B / K, K);
            else accum_backward(&c, mt_cross_entropy(&c, ym, labels + m * (B / K), NULL, 0.1f), K);
        }
        memcpy(full[1], w->grad, sizeof(float) * OUT * IN);
        memcpy(full[1] + OUT * IN, b->grad, sizeof(float) * OUT);
        double worst = 0, mag = 0;
        for (int i = 0; i < OUT * IN + OUT; i++) {
            worst = fmax(worst, fabs(full[0][i] - full[1][i]));
            mag = fmax(mag, fabs(full[0][i]));
        }
        char name[64];
        snprintf(name, sizeof name, "grad accumulation, %s", loss_kind ? "cross-entropy" : "sum of squares");
        check(!c.failed && mag > 1e-3 && worst <= 1e-6 * (1 + mag), name, "max diff %g (grad scale %g) %s", worst,
              mag, c.err);
    }
    mt_ctx_reset(&c);
    Tensor *y = mt_linear(&c, mt_wrap(&c, x, 2, (int[]){B, IN}), w, b);
    int ok = accum_backward(&c, y, 2) == -1 && strstr(c.err, "scalar") && strstr(c.err, "(12,5)");
    check(ok, "accum_backward rejects a non-scalar loss", "err '%s'", c.err);
    mt_ctx_free(&c);
    mt_params_free(&p);
}

/* ------------------------------------------------------------------ EMA */

static void test_ema(void) {
    ParamList p;
    make_params(&p);
    Ema e;
    char err[256];
    const float d = 0.9f;
    int ok = ema_create(&e, &p, d, err, sizeof err) == 0;
    size_t tot = mt_params_count(&p);
    double *hist[6];
    const int n = 5;
    for (int k = 0; k <= n; k++) {
        if (k) {
            for (int i = 0; i < p.n; i++)
                for (size_t j = 0; j < p.t[i]->numel; j++) p.t[i]->data[j] += 0.1f * urand();
            ema_update(&e, 0);
        }
        hist[k] = malloc(tot * sizeof(double));
        size_t o = 0;
        for (int i = 0; i < p.n; i++)
            for (size_t j = 0; j < p.t[i]->numel; j++) hist[k][o++] = p.t[i]->data[j];
    }
    /* closed form: d^n p0 + sum_k (1-d) d^(n-k) p_k */
    double worst = 0;
    size_t o = 0;
    for (int i = 0; i < p.n; i++)
        for (size_t j = 0; j < p.t[i]->numel; j++, o++) {
            double want = pow(d, n) * hist[0][o];
            for (int k = 1; k <= n; k++) want += (1 - (double)d) * pow(d, n - k) * hist[k][o];
            worst = fmax(worst, fabs(ema_buf(&e, i)[j] - want));
        }
    ok &= worst < 1e-6;
    check(ok, "EMA after 5 updates = closed form", "max diff %g", worst);

    /* swap in for eval and back */
    float w0 = p.t[4]->data[7], s0 = ema_buf(&e, 4)[7];
    float *ptr = p.t[4]->data;
    ema_swap(&e);
    ok = p.t[4]->data == ptr && p.t[4]->data[7] == s0 && ema_buf(&e, 4)[7] == s0 && ema_update(&e, 0) == -1;
    ema_swap(&e);
    ok &= p.t[4]->data[7] == w0 && ema_buf(&e, 4)[7] == s0 && ema_update(&e, 0) == 0 && !ema_buf(&e, NSPEC);
    ema_swap(&e);
    ema_free(&e); /* frees while swapped: the model gets its weights back */
    ok &= p.t[4]->data[7] == w0;
    check(ok, "EMA swap for eval and back", "");
    for (int k = 0; k <= n; k++) free(hist[k]);
    /* ModelEmaV3 warmup: d(n) = 0 for n <= 1, min(decay, 1 - n^(-2/3)) after (t = n - 1) */
    ok = ema_create(&e, &p, 0.999, err, sizeof err) == 0;
    e.warmup = 1;
    double d1 = ema_decay_at(&e, 1), d2 = ema_decay_at(&e, 2), d9 = ema_decay_at(&e, 9), dbig = ema_decay_at(&e, 1000000);
    ok &= d1 == 0 && fabs(d2 - (1 - pow(2, -2.0 / 3))) < 1e-12 && fabs(d9 - (1 - pow(9, -2.0 / 3))) < 1e-12 &&
          dbig == 0.999;
    float before = p.t[2]->data[3];
    p.t[2]->data[3] += 1;
    ema_update(&e, 1); /* d = 0: the EMA becomes the weights */
    ok &= ema_buf(&e, 2)[3] == p.t[2]->data[3];
    p.t[2]->data[3] = before;
    e.warmup = 0;
    ok &= ema_decay_at(&e, 1) == 0.999;
    ema_free(&e);
    check(ok, "EMA warmup decay (timm ModelEmaV3)", "d1 %g d2 %g d9 %g dbig %g", d1, d2, d9, dbig);
    ok = ema_create(&e, &p, 1.5f, err, sizeof err) == -1 && strstr(err, "decay must be in [0, 1], got 1.5");
    check(ok, "EMA rejects decay 1.5", "err '%s'", err);
    mt_params_free(&p);
}

/* ---------------------------------------------------------- validation */

static void expect_opt_err(const char *label, OptimConfig oc, const char *want) {
    ParamList p;
    make_params(&p);
    Optimizer o;
    char err[256] = "";
    int rc = optim_create(&o, &p, &oc, err, sizeof err);
    char name[80];
    snprintf(name, sizeof name, "rejects %s", label);
    check(rc == -1 && strstr(err, want), name, "rc %d, err '%s', want '%s'", rc, err, want);
    if (rc == 0) optim_free(&o);
    mt_params_free(&p);
}

static void expect_sched_err(const char *label, SchedConfig s, const char *want) {
    char err[256] = "";
    int rc = sched_init(&s, err, sizeof err);
    char name[80];
    snprintf(name, sizeof name, "rejects %s", label);
    check(rc == -1 && strstr(err, want), name, "rc %d, err '%s', want '%s'", rc, err, want);
}

static void test_validation(void) {
    OptimConfig oc, d;
    optim_config_default(&d);
    oc = d; oc.opt = "adamx";
    expect_opt_err("unknown optimizer", oc, "unknown optimizer 'adamx' (valid: adamw, adam, lamb, sgd, nesterov, momentum)");
    oc = d; oc.lr = NAN;
    expect_opt_err("NaN lr", oc, "lr must be a finite number >= 0, got nan");
    oc = d; oc.lr = -0.1f;
    expect_opt_err("negative lr", oc, "lr must be a finite number >= 0, got -0.1");
    oc = d; oc.beta1 = 1.0f;
    expect_opt_err("beta1 = 1", oc, "beta1 must be in [0, 1), got 1");
    oc = d; oc.opt = "lamb"; oc.beta2 = -0.5f;
    expect_opt_err("beta2 < 0", oc, "beta2 must be in [0, 1), got -0.5");
    oc = d; oc.eps = 0;
    expect_opt_err("eps = 0", oc, "eps must be a finite number > 0, got 0");
    oc = d; oc.weight_decay = -1;
    expect_opt_err("negative weight decay", oc, "weight decay must be a finite number >= 0, got -1");
    oc = d; oc.opt = "sgd"; oc.momentum = 1.5f;
    expect_opt_err("momentum 1.5", oc, "momentum must be in [0, 1), got 1.5");
    oc = d; oc.opt = "nesterov"; oc.momentum = 0;
    expect_opt_err("nesterov without momentum", oc, "Nesterov momentum requires a momentum > 0");
    oc = d; oc.lr_mult = "head.*";
    expect_opt_err("malformed lr multiplier", oc, "'head.*' is not PATTERN=MULT");
    oc = d; oc.lr_mult = "head.*=-2";
    expect_opt_err("negative lr multiplier", oc, "must be a finite number >= 0, got '-2'");
    oc = d; oc.freeze = "stages.0.*";
    expect_opt_err("freeze pattern matching nothing", oc, "freeze pattern 'stages.0.*' matches no parameter");
    oc = d; oc.no_wd = "pos_embed";
    expect_opt_err("no-wd pattern matching nothing", oc, "no-weight-decay pattern 'pos_embed' matches no parameter");
    oc = d; oc.opt = "sgd"; oc.eps = 0; /* eps is not used by SGD: accepted */
    {
        ParamList p;
        make_params(&p);
        Optimizer o;
        char err[256];
        check(optim_create(&o, &p, &oc, err, sizeof err) == 0, "sgd ignores eps", "%s", err);
        optim_free(&o);
        mt_params_free(&p);
    }

    SchedConfig s, sd;
    sched_config_default(&sd);
    sd.epochs = 10;
    sd.steps_per_epoch = 100;
    s = sd; s.sched = "cosin";
    expect_sched_err("unknown schedule", s, "unknown schedule 'cosin' (valid: cosine, linear, step, constant)");
    s = sd; s.lr = NAN;
    expect_sched_err("NaN schedule lr", s, "lr must be a finite number >= 0, got nan");
    s = sd; s.min_lr = -1e-5f;
    expect_sched_err("negative min lr", s, "min lr must be a finite number >= 0");
    s = sd; s.steps_per_epoch = 0;
    expect_sched_err("epochs without steps per epoch", s, "needs steps_per_epoch > 0");
    s = sd; s.epochs = 0;
    expect_sched_err("cosine without length", s, "cosine needs the run length");
    s = sd; s.sched = "step"; s.decay_rate = 0;
    expect_sched_err("step decay rate 0", s, "decay rate must be a finite number > 0, got 0");
    s = sd; s.warmup_prefix = 1; s.warmup_epochs = 10;
    expect_sched_err("warmup as long as the run", s, "must be shorter than the run");
}

/* --------------------------------------------------------------- driver */

/* test_optim --driver IN OUT, for tests/test_optim_torch.py.
 * IN:  line 1: "key=value ..." (opt lr wd eps beta1 beta2 momentum nesterov wd_all lr_mult no_wd
 *              freeze lamb_max_grad_norm clip nsteps); lr is the base lr, lrs below are per step
 *      line 2: "name:d0xd1x... name:d0 ..." the parameters in order
 *      then float32: lrs[nsteps], initial params (concatenated), grads[nsteps][concatenated]
 * OUT: float32: params after every step [nsteps][concatenated], then each optimizer state
 *      [nstates][concatenated], then the (clipped) grads of the last step [concatenated].
 * Prints "states: name name" and the clip norms on stdout. */
static int driver_main(const char *in, const char *out) {
    FILE *f = fopen(in, "rb");
    if (!f) { perror(in); return 2; }
    static char l1[4096], l2[65536], keep[4096];
    if (!fgets(l1, sizeof l1, f) || !fgets(l2, sizeof l2, f)) { fprintf(stderr, "driver: short header\n"); return 2; }
    memcpy(keep, l1, sizeof l1);
    OptimConfig oc;
    optim_config_default(&oc);
    int nsteps = 0;
    float clip = 0;
    for (char *tok = strtok(keep, " \n"); tok; tok = strtok(NULL, " \n")) {
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = 0;
        const char *k = tok, *v = eq + 1;
        if (!strcmp(k, "opt")) oc.opt = v;
        else if (!strcmp(k, "lr")) oc.lr = strtod(v, NULL);
        else if (!strcmp(k, "wd")) oc.weight_decay = strtod(v, NULL);
        else if (!strcmp(k, "eps")) oc.eps = strtod(v, NULL);
        else if (!strcmp(k, "beta1")) oc.beta1 = strtod(v, NULL);
        else if (!strcmp(k, "beta2")) oc.beta2 = strtod(v, NULL);
        else if (!strcmp(k, "momentum")) oc.momentum = strtod(v, NULL);
        else if (!strcmp(k, "nesterov")) oc.nesterov = atoi(v);
        else if (!strcmp(k, "wd_all")) oc.wd_all = atoi(v);
        else if (!strcmp(k, "lr_mult")) oc.lr_mult = v;
        else if (!strcmp(k, "no_wd")) oc.no_wd = v;
        else if (!strcmp(k, "freeze")) oc.freeze = v;
        else if (!strcmp(k, "lamb_max_grad_norm")) oc.lamb_max_grad_norm = strtod(v, NULL);
        else if (!strcmp(k, "clip")) clip = strtod(v, NULL);
        else if (!strcmp(k, "nsteps")) nsteps = atoi(v);
        else { fprintf(stderr, "driver: unknown key '%s'\n", k); return 2; }
    }
    ParamList p = {0};
    for (char *tok = strtok(l2, " \n"); tok; tok = strtok(NULL, " \n")) {
        char *colon = strrchr(tok, ':');
        if (!colon) { fprintf(stderr, "driver: bad param spec '%s'\n", tok); return 2; }
        *colon = 0;
        int shape[MT_MAXDIM], nd = 0;
        for (char *s = colon + 1; *s && nd < MT_MAXDIM; s += *s == 'x') shape[nd++] = (int)strtol(s, &s, 10);
        if (!mt_param_new(&p, tok, nd, shape)) return 2;
    }
    size_t tot = mt_params_count(&p);
    float *lrs = malloc(sizeof(float) * (nsteps ? nsteps : 1));
    int ok = fread(lrs, sizeof(float), nsteps, f) == (size_t)nsteps;
    for (int i = 0; i < p.n; i++) ok &= fread(p.t[i]->data, sizeof(float), p.t[i]->numel, f) == p.t[i]->numel;
    float *grads = malloc(sizeof(float) * (tot * nsteps + 1));
    ok &= fread(grads, sizeof(float), tot * nsteps, f) == tot * nsteps;
    fclose(f);
    if (!ok) { fprintf(stderr, "driver: short data\n"); return 2; }
    Optimizer o;
    char err[256];
    if (optim_create(&o, &p, &oc, err, sizeof err)) { fprintf(stderr, "driver: %s\n", err); return 2; }
    FILE *g = fopen(out, "wb");
    if (!g) { perror(out); return 2; }
    printf("states:");
    for (int s = 0; s < optim_num_states(&o); s++) printf(" %s", optim_state_name(&o, s));
    printf("\nclip norms:");
    for (int s = 0; s < nsteps; s++) {
        size_t off = tot * (size_t)s;
        for (int i = 0; i < p.n; off += p.t[i]->numel, i++)
            memcpy(p.t[i]->grad, grads + off, p.t[i]->numel * sizeof(float));
        if (clip > 0) printf(" %.9g", clip_grad_norm(&p, clip));
        optim_set_lr(&o, lrs[s]);
        optim_step(&o);
        for (int i = 0; i < p.n; i++) fwrite(p.t[i]->data, sizeof(float), p.t[i]->numel, g);
    }
    printf("\n");
    for (int s = 0; s < optim_num_states(&o); s++)
        for (int i = 0; i < p.n; i++) fwrite(optim_state_buf(&o, s, i), sizeof(float), p.t[i]->numel, g);
    for (int i = 0; i < p.n; i++) fwrite(p.t[i]->grad, sizeof(float), p.t[i]->numel, g);
    fclose(g);
    optim_free(&o);
    mt_params_free(&p);
    free(lrs);
    free(grads);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1) {
        if (argc == 4 && !strcmp(argv[1], "--driver")) return driver_main(argv[2], argv[3]);
        fprintf(stderr, "usage: test_optim [--driver IN OUT]\n");
        return 2;
    }
    test_optimizers();
    test_groups();
    test_state_roundtrip();
    test_schedules();
    test_clip();
    test_accumulation();
    test_ema();
    test_validation();
    if (failures) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }
    printf("all checks passed\n");
    return 0;
}
