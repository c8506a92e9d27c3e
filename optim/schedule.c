#include "optim/schedule.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define VALID_SCHEDS "cosine, linear, step, constant"

void sched_config_default(SchedConfig *s) {
    memset(s, 0, sizeof *s);
    s->sched = "cosine";
    s->lr = 1e-3;
    s->min_lr = 0.0;
    s->warmup_lr = 1e-5;
    s->warmup_epochs = 5;
    s->decay_epochs = 90;
    s->decay_rate = 0.1;
}

static int bad_float(double x) { return !(x >= 0) || isinf(x); }

static int to_steps(long *steps, double epochs, long spe, const char *what, char *err, size_t n) {
    if (*steps < 0) {
        snprintf(err, n, "schedule: %s steps must be >= 0, got %ld", what, *steps);
        return -1;
    }
    if (*steps > 0) return 0;
    if (!(epochs >= 0) || isinf(epochs)) {
        snprintf(err, n, "schedule: %s epochs must be a finite number >= 0, got %g", what, epochs);
        return -1;
    }
    if (epochs > 0) {
        if (spe <= 0) {
            snprintf(err, n, "schedule: %s given in epochs (%g) needs steps_per_epoch > 0, got %ld", what, epochs,
                     spe);
            return -1;
        }
        *steps = lround(epochs * (double)spe);
    }
    return 0;
}

int sched_init(SchedConfig *s, char *err, size_t n) {
    const char *k = s->sched ? s->sched : "";
    int decays_to_end = !strcmp(k, "cosine") || !strcmp(k, "linear");
    if (!decays_to_end && strcmp(k, "step") && strcmp(k, "constant")) {
        snprintf(err, n, "schedule: unknown schedule '%s' (valid: " VALID_SCHEDS ")", k);
        return -1;
    }
    if (bad_float(s->lr)) { snprintf(err, n, "schedule: lr must be a finite number >= 0, got %g", s->lr); return -1; }
    if (bad_float(s->min_lr)) {
        snprintf(err, n, "schedule: min lr must be a finite number >= 0, got %g", s->min_lr);
        return -1;
    }
    if (bad_float(s->warmup_lr)) {
        snprintf(err, n, "schedule: warmup lr must be a finite number >= 0, got %g", s->warmup_lr);
        return -1;
    }
    if (to_steps(&s->total_steps, s->epochs, s->steps_per_epoch, "total", err, n) ||
        to_steps(&s->warmup_steps, s->warmup_epochs, s->steps_per_epoch, "warmup", err, n))
        return -1;
    if (decays_to_end) {
        if (s->total_steps <= 0) {
            snprintf(err, n, "schedule: %s needs the run length (epochs with steps_per_epoch, or total_steps)", k);
            return -1;
        }
        if (s->warmup_prefix && s->warmup_steps >= s->total_steps) {
            snprintf(err, n, "schedule: warmup (%ld steps) must be shorter than the run (%ld steps) with warmup_prefix",
                     s->warmup_steps, s->total_steps);
            return -1;
        }
    }
    if (!strcmp(k, "step")) {
        if (to_steps(&s->decay_steps, s->decay_epochs, s->steps_per_epoch, "decay", err, n)) return -1;
        if (s->decay_steps <= 0) {
            snprintf(err, n, "schedule: step needs a decay period > 0 (decay_epochs or decay_steps)");
            return -1;
        }
        if (!(s->decay_rate > 0) || isinf(s->decay_rate)) {
            snprintf(err, n, "schedule: decay rate must be a finite number > 0, got %g", s->decay_rate);
            return -1;
        }
    }
    return 0;
}

double sched_lr(const SchedConfig *s, long step) {
    const long W = s->warmup_steps > 0 ? s->warmup_steps : 0;
    if (step < 0) step = 0;
    if (step < W) return s->warmup_lr + (s->lr - s->warmup_lr) * (double)step / (double)W;
    double t = (double)step, T = (double)s->total_steps;
    if (s->warmup_prefix) { t -= (double)W; T -= (double)W; }
    const char *k = s->sched ? s->sched : "";
    double lr = s->lr, lo = s->min_lr;
    if (!strcmp(k, "cosine")) {
        if (t >= T) return lo;
        return lo + 0.5 * (lr - lo) * (1.0 + cos(3.14159265358979323846 * t / T));
    }
    if (!strcmp(k, "linear")) {
        if (t >= T) return lo;
        return lo + (lr - lo) * (1.0 - t / T);
    }
    if (!strcmp(k, "step")) {
        long D = s->decay_steps > 0 ? s->decay_steps : 1;
        return lr * pow(s->decay_rate, (double)((long)t / D));
    }
    return lr; /* constant */
}

double lr_from_base(double lr_base, long lr_base_size, long global_batch, const char *scale, const char *opt,
                    char *err, size_t n) {
    if (bad_float(lr_base)) {
        snprintf(err, n, "lr base must be a finite number >= 0, got %g", lr_base);
        return -1;
    }
    if (lr_base_size <= 0 || global_batch <= 0) {
        snprintf(err, n, "lr base size (%ld) and global batch size (%ld) must be > 0", lr_base_size, global_batch);
        return -1;
    }
    int use_sqrt;
    if (!scale || !*scale) use_sqrt = opt && (strstr(opt, "ada") || strstr(opt, "lamb"));
    else if (!strcmp(scale, "sqrt")) use_sqrt = 1;
    else if (!strcmp(scale, "linear")) use_sqrt = 0;
    else {
        snprintf(err, n, "unknown lr base scale '%s' (valid: linear, sqrt)", scale);
        return -1;
    }
    double ratio = (double)global_batch / (double)lr_base_size;
    if (use_sqrt) ratio = sqrt(ratio);
    return lr_base * ratio;
}
