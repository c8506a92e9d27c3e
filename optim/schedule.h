/* Learning-rate schedules evaluated per optimizer step (timm's schedulers with
 * t counted in steps, i.e. timm's per-update mode; timm's default updates
 * per epoch, which is the same curve sampled at epoch boundaries).
 *
 *   step < W:      warmup_lr + (lr - warmup_lr) * step / W        (linear warmup, per step)
 *   then t = step (timm default) or step - W (warmup_prefix), T = total (or total - W):
 *   cosine:        min_lr + 0.5 (lr - min_lr) (1 + cos(pi t / T)),  min_lr for t >= T
 *   linear:        min_lr + (lr - min_lr) (1 - t / T),              min_lr for t >= T  (timm's poly, power 1)
 *   step:          lr * decay_rate ^ floor(t / D)                    (no floor at min_lr, as timm)
 *   constant:      lr
 * W = warmup_steps, T = total_steps, D = decay_steps.
 * With warmup_prefix = 0 (timm's default) the decay clock includes the warmup,
 * so the lr right after warmup is already slightly below lr. */
#pragma once
#include <stddef.h>

typedef struct SchedConfig {
    const char *sched;        /* "cosine" | "linear" | "step" | "constant" */
    double lr, min_lr, warmup_lr;
    long steps_per_epoch;     /* converts the *_epochs fields; needed only when they are used */
    /* Length of the run, warmup and step-decay period: a *_steps value > 0 wins,
     * otherwise sched_init sets it to round(*_epochs * steps_per_epoch). */
    double epochs;        long total_steps;
    double warmup_epochs; long warmup_steps;
    double decay_epochs;  long decay_steps;
    double decay_rate;        /* step: factor every decay period */
    int warmup_prefix;        /* timm --warmup-prefix */
} SchedConfig;

/* timm train.py defaults: cosine, lr 1e-3 (timm derives it from --lr-base), min_lr 0,
 * warmup_lr 1e-5, warmup_epochs 5, decay_epochs 90, decay_rate 0.1, no prefix.
 * epochs / steps_per_epoch are left 0: the caller sets them. */
void sched_config_default(SchedConfig *s);
/* Validates and converts epochs to steps (in place). 0, or -1 with a message in err. */
int sched_init(SchedConfig *s, char *err, size_t n);
/* The lr for optimizer step `step` (0-based: the first update uses sched_lr(s, 0)).
 * Computed in double like timm's Python; assigning it to a float is fine. */
double sched_lr(const SchedConfig *s, long step);

/* timm train.py's lr when --lr is not given:
 *   lr = lr_base * (global_batch / lr_base_size) ^ (1 or 0.5)
 * global_batch = batch size * world size * grad accumulation steps.
 * scale: "linear" | "sqrt" | NULL/"" = timm's choice by optimizer name (sqrt when it
 * contains "ada" or "lamb", else linear). Returns the lr, or -1 with err on bad input. */
double lr_from_base(double lr_base, long lr_base_size, long global_batch, const char *scale, const char *opt,
                    char *err, size_t n);
