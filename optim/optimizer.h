/* Optimizers over a ParamList: AdamW, Adam, LAMB, SGD (momentum / Nesterov).
 *
 * Each step reads t->grad of every parameter with requires_grad and updates
 * t->data in place, in fp32. Frozen parameters (requires_grad == 0) are
 * skipped: no update, no state change. Per-parameter weight decay and lr
 * multiplier come from the parameter groups (optim/param_groups.h), resolved
 * once at creation.
 *
 *     OptimConfig oc; optim_config_default(&oc);
 *     oc.opt = "adamw"; oc.lr = 1e-3f; oc.weight_decay = 0.05f;
 *     Optimizer opt;
 *     if (optim_create(&opt, &model.params, &oc, err, sizeof err)) die(err);
 *     for (step...) { ...backward...; optim_set_lr(&opt, sched_lr(&sc, step)); optim_step(&opt); }
 *
 * Checkpoints: the state is a list of named buffers (torch's state_dict names),
 * each aligned with the ParamList, plus the step count:
 *     for s in 0..optim_num_states-1, for i in 0..params->n-1:
 *         /optimizer/<optim_state_name(s)>/<params->t[i]->name>  <-> optim_state_buf(s, i)
 */
#pragma once
#include "core/params.h"
#include <stddef.h>

typedef struct OptimConfig {
    const char *opt;      /* "adamw" | "adam" | "lamb" | "sgd" | "nesterov" | "momentum" */
    /* Hyper-parameters are doubles, as in Python: torch forms 1 - beta2, lr / (1 - beta1^t),
     * 1 - lr * wd in double and rounds the result to fp32 once; so do we. */
    double lr;            /* initial lr (optim_set_lr changes it, e.g. from the schedule) */
    double weight_decay;
    double eps;           /* adam/adamw/lamb */
    double beta1, beta2;  /* adam/adamw/lamb */
    double momentum;      /* sgd */
    int nesterov;         /* sgd: -1 = by name as timm ("sgd"/"nesterov" -> on, "momentum" -> off), 0/1 explicit */
    /* LAMB (timm's Lamb defaults in optim_config_default) */
    double lamb_max_grad_norm; /* grads divided by max(global_norm / this, 1) inside the step; <= 0: off */
    int lamb_trust_clip;      /* trust ratio clamped to <= 1 */
    int lamb_always_adapt;    /* trust ratio also where weight decay is 0 */
    /* parameter groups (see optim/param_groups.h for the rules); NULL or "" = none */
    int wd_all;           /* 1: weight decay on every parameter (no 1-D / bias filter) */
    const char *no_wd;    /* extra no-decay name patterns, comma separated: "pos_embed,*.alpha" */
    const char *lr_mult;  /* "PATTERN=MULT,..." first match wins, default 1: "head.*=1,*=0.1" */
    const char *freeze;   /* name patterns to freeze (requires_grad = 0): "stem.*,blocks.0.*" */
} OptimConfig;

typedef enum { OPT_ADAMW, OPT_ADAM, OPT_LAMB, OPT_SGD } OptKind;

#define OPTIM_MAX_STATES 2

typedef struct Optimizer {
    OptKind kind;
    OptimConfig cfg;      /* copy; cfg.nesterov resolved to 0/1; pattern strings not owned */
    char name[16];        /* canonical opt name as given */
    ParamList *params;
    int n;                /* params->n at creation */
    double lr;            /* current base lr */
    long step;            /* completed steps (torch's state 'step') */
    double *wd;           /* per parameter weight decay (0 in the no-decay group) */
    double *lr_mult;      /* per parameter lr multiplier */
    int nstates;
    const char *state_names[OPTIM_MAX_STATES];
    float **state[OPTIM_MAX_STATES]; /* state[s][i]: params->t[i]->numel floats, zero-initialised */
} Optimizer;

/* torch defaults for the AdamW recipe of MLP-Mixer / ResMLP / PoolFormer: adamw, lr 1e-3, wd 0.05,
 * eps 1e-8, betas (0.9, 0.999),
 * momentum 0.9 (timm), nesterov -1, lamb_max_grad_norm 1.0 (timm Lamb), no patterns. */
void optim_config_default(OptimConfig *c);
/* Validates the config, resolves parameter groups (applies cfg.freeze to
 * requires_grad) and allocates the state. 0, or -1 with a message in err. */
int optim_create(Optimizer *o, ParamList *p, const OptimConfig *cfg, char *err, size_t errn);
void optim_free(Optimizer *o);
/* Base lr for the next step(s); each parameter uses lr * its multiplier. */
void optim_set_lr(Optimizer *o, double lr);
/* One update from the current grads. Increments the step count. Returns 0. */
int optim_step(Optimizer *o);
/* Zero the grads of every parameter (the end of an accumulation cycle). */
void optim_zero_grad(Optimizer *o);
/* One line: "adamw: 30 tensors (4.2M) decay 0.05, 52 (12.3K) no decay, 2 frozen (1.5K)". */
void optim_describe(const Optimizer *o, char *buf, size_t n);

/* State enumeration for checkpoints. States: adamw/adam/lamb: "exp_avg", "exp_avg_sq";
 * sgd with momentum > 0: "momentum_buffer"; sgd without momentum: none.
 * Buffers exist (zeros) for frozen parameters too, so every state covers every parameter. */
int optim_num_states(const Optimizer *o);
const char *optim_state_name(const Optimizer *o, int s);
/* Index of a state by name, or -1. */
int optim_state_index(const Optimizer *o, const char *name);
/* params->t[param_index]->numel floats; NULL on a bad index. */
float *optim_state_buf(Optimizer *o, int s, int param_index);
long optim_get_step(const Optimizer *o);
void optim_set_step(Optimizer *o, long step);

/* Per-element update kernels (one tensor), used by optim_step; exposed for tests. */
void adam_update(float *p, const float *g, float *m, float *v, size_t n, double lr, double wd, double beta1,
                 double beta2, double eps, long step, int decoupled);
/* The gradient is divided by grad_div first (LAMB's global clip, >= 1); returns the trust ratio used. */
float lamb_update(float *p, const float *g, float *m, float *v, size_t n, double lr, double wd, double beta1,
                  double beta2, double eps, long step, float grad_div, int trust_clip, int always_adapt);
/* buf may be NULL when momentum == 0. With dampening 0, a zero buffer gives torch's first
 * step (buf = d_p) exactly, so no special case is needed. */
void sgd_update(float *p, const float *g, float *buf, size_t n, double lr, double wd, double momentum, int nesterov);
