/* Optimizer creation, validation, dispatch and the state enumeration for checkpoints. */
#include "optim/optimizer.h"
#include "optim/param_groups.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VALID_OPTS "adamw, adam, lamb, sgd, nesterov, momentum"

void optim_config_default(OptimConfig *c) {
    memset(c, 0, sizeof *c);
    c->opt = "adamw";
    c->lr = 1e-3;
    c->weight_decay = 0.05;
    c->eps = 1e-8;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->momentum = 0.9;
    c->nesterov = -1;
    c->lamb_max_grad_norm = 1.0;
}

static int fail(char *err, size_t n, const char *fmt, const char *a, double x) {
    if (a) snprintf(err, n, fmt, a);
    else snprintf(err, n, fmt, x);
    return -1;
}

static int validate(const OptimConfig *c, OptKind *kind, int *nesterov, char *err, size_t n) {
    const char *o = c->opt ? c->opt : "";
    if (!strcmp(o, "adamw")) *kind = OPT_ADAMW;
    else if (!strcmp(o, "adam")) *kind = OPT_ADAM;
    else if (!strcmp(o, "lamb")) *kind = OPT_LAMB;
    else if (!strcmp(o, "sgd") || !strcmp(o, "nesterov") || !strcmp(o, "momentum")) *kind = OPT_SGD;
    else {
        snprintf(err, n, "optimizer: unknown optimizer '%s' (valid: " VALID_OPTS ")", o);
        return -1;
    }
    if (!(c->lr >= 0) || isinf(c->lr))
        return fail(err, n, "optimizer: lr must be a finite number >= 0, got %g", NULL, c->lr);
    if (!(c->weight_decay >= 0) || isinf(c->weight_decay))
        return fail(err, n, "optimizer: weight decay must be a finite number >= 0, got %g", NULL, c->weight_decay);
    if (*kind != OPT_SGD) {
        if (!(c->beta1 >= 0 && c->beta1 < 1))
            return fail(err, n, "optimizer: beta1 must be in [0, 1), got %g", NULL, c->beta1);
        if (!(c->beta2 >= 0 && c->beta2 < 1))
            return fail(err, n, "optimizer: beta2 must be in [0, 1), got %g", NULL, c->beta2);
        if (!(c->eps > 0) || isinf(c->eps))
            return fail(err, n, "optimizer: eps must be a finite number > 0, got %g", NULL, c->eps);
        if (isnan(c->lamb_max_grad_norm)) {
            snprintf(err, n, "optimizer: lamb max grad norm is NaN (use 0 to turn LAMB's clipping off)");
            return -1;
        }
        *nesterov = 0;
    } else {
        if (!(c->momentum >= 0 && c->momentum < 1))
            return fail(err, n, "optimizer: momentum must be in [0, 1), got %g", NULL, c->momentum);
        if (c->nesterov < -1 || c->nesterov > 1)
            return fail(err, n, "optimizer: nesterov must be -1 (by name), 0 or 1, got %g", NULL, c->nesterov);
        if (!strcmp(o, "nesterov")) *nesterov = 1;
        else if (!strcmp(o, "momentum")) *nesterov = 0;
        else *nesterov = c->nesterov < 0 ? 1 : c->nesterov; /* timm: --opt sgd is Nesterov SGD */
        if (*nesterov && c->momentum <= 0)
            return fail(err, n, "optimizer: %s: Nesterov momentum requires a momentum > 0", o, 0);
    }
    return 0;
}

int optim_create(Optimizer *o, ParamList *p, const OptimConfig *cfg, char *err, size_t errn) {
    memset(o, 0, sizeof *o);
    OptKind kind;
    int nesterov = 0;
    if (validate(cfg, &kind, &nesterov, err, errn)) return -1;
    o->kind = kind;
    o->cfg = *cfg;
    o->cfg.nesterov = nesterov;
    snprintf(o->name, sizeof o->name, "%s", cfg->opt);
    o->params = p;
    o->n = p->n;
    o->lr = cfg->lr;
    o->wd = calloc((size_t)(p->n ? p->n : 1), sizeof(double));
    o->lr_mult = calloc((size_t)(p->n ? p->n : 1), sizeof(double));
    if (!o->wd || !o->lr_mult) goto oom;
    /* freeze first so the "no parameter matched" checks see every name */
    if (pg_freeze(p, cfg->freeze, err, errn) < 0 ||
        pg_weight_decay(p, cfg->weight_decay, cfg->wd_all, cfg->no_wd, o->wd, err, errn) ||
        pg_lr_mult(p, cfg->lr_mult, o->lr_mult, err, errn)) {
        optim_free(o);
        return -1;
    }
    if (kind == OPT_SGD) {
        if (cfg->momentum > 0) o->state_names[o->nstates++] = "momentum_buffer";
    } else {
        o->state_names[o->nstates++] = "exp_avg";
        o->state_names[o->nstates++] = "exp_avg_sq";
    }
    for (int s = 0; s < o->nstates; s++) {
        o->state[s] = calloc((size_t)(p->n ? p->n : 1), sizeof(float *));
        if (!o->state[s]) goto oom;
        for (int i = 0; i < p->n; i++) {
            o->state[s][i] = calloc(p->t[i]->numel ? p->t[i]->numel : 1, sizeof(float));
            if (!o->state[s][i]) goto oom;
        }
    }
    return 0;
oom:
    snprintf(err, errn, "optimizer: out of memory for the %s state (%zu parameters)", cfg->opt,
             mt_params_count(p));
    optim_free(o);
    return -1;
}

void optim_free(Optimizer *o) {
    for (int s = 0; s < OPTIM_MAX_STATES; s++) {
        if (!o->state[s]) continue;
        for (int i = 0; i < o->n; i++) free(o->state[s][i]);
        free(o->state[s]);
    }
    free(o->wd);
    free(o->lr_mult);
    memset(o, 0, sizeof *o);
}

void optim_set_lr(Optimizer *o, double lr) { o->lr = lr; }

void optim_zero_grad(Optimizer *o) { mt_params_zero_grad(o->params); }

/* timm Lamb's clip_global_grad_norm: max(||all grads|| / max_grad_norm, 1). */
static float lamb_grad_div(const Optimizer *o) {
    if (!(o->cfg.lamb_max_grad_norm > 0)) return 1.0f;
    double s = 0;
    for (int i = 0; i < o->n; i++) {
        const Tensor *t = o->params->t[i];
        if (!t->requires_grad || !t->grad) continue;
        const long N = (long)t->numel;
        const float *g = t->grad;
        double si = 0;
#pragma omp parallel for schedule(static) reduction(+ : si) if (N >= 32768)
        for (long j = 0; j < N; j++) si += (double)g[j] * g[j];
        s += si;
    }
    double d = sqrt(s) / o->cfg.lamb_max_grad_norm;
    return d > 1.0 ? (float)d : 1.0f;
}

int optim_step(Optimizer *o) {
    o->step++;
    const OptimConfig *c = &o->cfg;
    float grad_div = o->kind == OPT_LAMB ? lamb_grad_div(o) : 1.0f;
    for (int i = 0; i < o->n; i++) {
        Tensor *t = o->params->t[i];
        if (!t->requires_grad || !t->grad) continue;
        double lr = o->lr * o->lr_mult[i];
        switch (o->kind) {
        case OPT_ADAMW:
        case OPT_ADAM:
            adam_update(t->data, t->grad, o->state[0][i], o->state[1][i], t->numel, lr, o->wd[i], c->beta1,
                        c->beta2, c->eps, o->step, o->kind == OPT_ADAMW);
            break;
        case OPT_LAMB:
            lamb_update(t->data, t->grad, o->state[0][i], o->state[1][i], t->numel, lr, o->wd[i], c->beta1,
                        c->beta2, c->eps, o->step, grad_div, c->lamb_trust_clip, c->lamb_always_adapt);
            break;
        case OPT_SGD:
            sgd_update(t->data, t->grad, o->nstates ? o->state[0][i] : NULL, t->numel, lr, o->wd[i], c->momentum,
                       c->nesterov);
            break;
        }
    }
    return 0;
}

static void human(size_t x, char *buf, size_t n) {
    if (x >= 1000000) snprintf(buf, n, "%.1fM", x / 1e6);
    else if (x >= 1000) snprintf(buf, n, "%.1fK", x / 1e3);
    else snprintf(buf, n, "%zu", x);
}

void optim_describe(const Optimizer *o, char *buf, size_t n) {
    int cnt[3] = {0, 0, 0};
    size_t el[3] = {0, 0, 0};
    for (int i = 0; i < o->n; i++) {
        const Tensor *t = o->params->t[i];
        int g = !t->requires_grad ? 2 : o->wd[i] != 0.0 ? 0 : 1;
        cnt[g]++;
        el[g] += t->numel;
    }
    char h[3][16];
    for (int g = 0; g < 3; g++) human(el[g], h[g], sizeof h[g]);
    int k = snprintf(buf, n, "%s: %d tensors (%s) decay %g, %d (%s) no decay, %d frozen (%s)", o->name, cnt[0],
                     h[0], o->cfg.weight_decay, cnt[1], h[1], cnt[2], h[2]);
    if (o->cfg.lr_mult && *o->cfg.lr_mult && k > 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, ", lr multipliers %s", o->cfg.lr_mult);
}

int optim_num_states(const Optimizer *o) { return o->nstates; }

const char *optim_state_name(const Optimizer *o, int s) {
    return s >= 0 && s < o->nstates ? o->state_names[s] : NULL;
}

int optim_state_index(const Optimizer *o, const char *name) {
    for (int s = 0; s < o->nstates; s++)
        if (!strcmp(o->state_names[s], name)) return s;
    return -1;
}

float *optim_state_buf(Optimizer *o, int s, int i) {
    if (s < 0 || s >= o->nstates || i < 0 || i >= o->n) return NULL;
    return o->state[s][i];
}

long optim_get_step(const Optimizer *o) { return o->step; }
void optim_set_step(Optimizer *o, long step) { o->step = step; }
