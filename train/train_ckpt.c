#include "train/train_ckpt.h"
#include "train/checkpoint.h"
#include "train/model_io.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXG (OPTIM_MAX_STATES + 1)

/* Per-parameter buffer arrays for the optimizer states and the EMA. */
static int make_groups(Model *m, Optimizer *opt, Ema *ema, CkptGroup *g, char names[][64]) {
    int ng = 0, n = m->params.n;
    if (opt)
        for (int s = 0; s < optim_num_states(opt); s++) {
            snprintf(names[ng], 64, "optimizer/%s", optim_state_name(opt, s));
            g[ng].prefix = names[ng];
            g[ng].buf = calloc((size_t)n, sizeof(float *));
            for (int i = 0; i < n; i++) g[ng].buf[i] = optim_state_buf(opt, s, i);
            ng++;
        }
    if (ema) {
        g[ng].prefix = "ema";
        g[ng].buf = calloc((size_t)n, sizeof(float *));
        for (int i = 0; i < n; i++) g[ng].buf[i] = ema_buf(ema, i);
        ng++;
    }
    return ng;
}

static void free_groups(CkptGroup *g, int ng) {
    for (int i = 0; i < ng; i++) free(g[i].buf);
}

/* The train_state attribute: everything a resumed run needs besides tensors.
 * Doubles with 17 digits: a resumed run compares metrics exactly as the uninterrupted one. */
static void train_state_json(const TrainState *st, char *js, size_t n) {
    size_t k = (size_t)snprintf(js, n,
                                "{\"epoch\": %d, \"batch\": %ld, \"step\": %ld, \"best_top1\": %.17g, \"best_epoch\": %d, "
                                "\"best_metric\": %.17g, \"eval_metric\": \"%s\", \"ema\": %d, \"ema_decay\": %.17g, "
                                "\"ema_warmup\": %d, \"seed\": %" PRIu64 ", \"counter\": %" PRIu64 ", \"loss_sum\": %.17g, "
                                "\"loss_n\": %ld, \"log_sum\": %.17g, \"log_n\": %ld, \"hist\": [",
                                st->epoch, st->batch, st->step, st->best_top1, st->best_epoch, st->best_metric,
                                st->eval_metric, st->ema, st->ema_decay, st->ema_warmup, st->seed, st->counter, st->loss_sum,
                                st->loss_n, st->log_sum, st->log_n);
    for (int i = 0; i < st->nhist && k < n; i++)
        k += (size_t)snprintf(js + k, n - k, "%s%d, %.17g", i ? ", " : "", st->hist[i].epoch, st->hist[i].metric);
    if (k < n) snprintf(js + k, n - k, "]}");
}

int train_ckpt_save(const char *path, Model *m, Optimizer *opt, Ema *ema, const TrainState *st,
                    const float *mean, const float *std, int nchan, const char *interp, float crop_pct, char *err,
                    size_t errn) {
    CkptInfo *info = calloc(1, sizeof *info);
    if (!info) { snprintf(err, errn, "out of memory"); return -1; }
    snprintf(info->model, sizeof info->model, "%s", m->cfg.name);
    model_config_to_json(&m->cfg, info->config, sizeof info->config);
    info->epoch = st->epoch; /* epochs completed (the one in progress when batch > 0) */
    info->step = st->step;
    info->best_top1 = st->best_top1;
    info->rng[0] = st->seed;
    info->rng[1] = st->counter;
    info->n_rng = 2;
    info->class_names = st->class_names;
    info->n_chan = nchan < CKPT_CHAN_MAX ? nchan : CKPT_CHAN_MAX;
    for (int i = 0; i < info->n_chan; i++) { info->mean[i] = mean[i]; info->std[i] = std[i]; }
    snprintf(info->interpolation, sizeof info->interpolation, "%s", interp ? interp : "");
    info->crop_pct = crop_pct;
    permute_to_checkpoint(st->permute, info);
    if (opt) {
        snprintf(info->optimizer, sizeof info->optimizer, "%s", opt->name);
        info->optimizer_step = optim_get_step(opt);
    }
    train_state_json(st, info->train_state, sizeof info->train_state);
    CkptGroup g[MAXG];
    char names[MAXG][64];
    memset(g, 0, sizeof g);
    int ng = make_groups(m, opt, ema, g, names);
    int rc = ckpt_save(path, &m->params, g, ng, info, err, errn);
    free_groups(g, ng);
    free(info);
    return rc;
}

/* ---- train_state: a flat JSON object of numbers, parsed strictly and range-checked ---- */

#define TS_MAX_EPOCH (1 << 24)
#define TS_MAX_STEP ((double)(1LL << 53))

/* init_seed: written by `mixtape init`, not used for resuming */
/* Numbers first, then the exact unsigned integers (from TS_SEED), then eval_metric (a word)
 * and hist (an array of epoch, metric pairs). */
enum { TS_EPOCH, TS_BATCH, TS_STEP, TS_BEST, TS_BEST_EPOCH, TS_BEST_METRIC, TS_EMA, TS_EMA_DECAY, TS_EMA_WARMUP,
       TS_LOSS_SUM, TS_LOSS_N, TS_LOG_SUM, TS_LOG_N, TS_SEED, TS_COUNTER, TS_INIT_SEED, TS_EVAL_METRIC, TS_HIST, TS_N };
static const char *const ts_keys[TS_N] = {"epoch",    "batch",       "step",      "best_top1", "best_epoch",
                                          "best_metric", "ema",      "ema_decay", "ema_warmup", "loss_sum",
                                          "loss_n",   "log_sum",     "log_n",     "seed",      "counter",
                                          "init_seed", "eval_metric", "hist"};

/* The parts of train_state that are not plain numbers. */
typedef struct TsExtra {
    char eval_metric[8];
    int nhist;
    int hist_epoch[TRAIN_HIST_MAX];
    double hist_metric[TRAIN_HIST_MAX];
} TsExtra;

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

/* {"key": number, ...} into num / u64 (seed, counter as exact unsigned integers); have[k] marks the keys seen. */
static int ts_parse(const char *js, double *num, uint64_t *u64, int *have, TsExtra *x, const char **why) {
    const char *p = skip_ws(js);
    if (*p++ != '{') return *why = "not a JSON object", -1;
    p = skip_ws(p);
    if (*p == '}') return *skip_ws(p + 1) ? (*why = "trailing characters", -1) : 0;
    for (;;) {
        char key[32];
        size_t L = 0;
        if (*p++ != '"') return *why = "expected a quoted key", -1;
        while (*p && *p != '"' && L + 1 < sizeof key) key[L++] = *p++;
        key[L] = 0;
        if (*p++ != '"') return *why = "bad key", -1;
        int k = 0;
        while (k < TS_N && strcmp(ts_keys[k], key)) k++;
        if (k == TS_N) return *why = "unknown key", -1;
        if (have[k]) return *why = "repeated key", -1;
        have[k] = 1;
        p = skip_ws(p);
        if (*p++ != ':') return *why = "expected ':'", -1;
        p = skip_ws(p);
        char *end;
        if (k == TS_EVAL_METRIC) {
            if (*p++ != '"') return *why = "eval_metric must be a string", -1;
            size_t n = 0;
            while (((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')) && n + 1 < sizeof x->eval_metric)
                x->eval_metric[n++] = *p++;
            x->eval_metric[n] = 0;
            if (*p++ != '"' || (n && strcmp(x->eval_metric, "top1") && strcmp(x->eval_metric, "top5") &&
                                strcmp(x->eval_metric, "loss")))
                return *why = "eval_metric must be \"top1\", \"top5\" or \"loss\"", -1;
            end = (char *)p;
        } else if (k == TS_HIST) {
            if (*p++ != '[') return *why = "hist must be an array", -1;
            p = skip_ws(p);
            while (*p != ']') {
                if (x->nhist >= TRAIN_HIST_MAX) return *why = "hist has more than " TRAIN_HIST_MAX_S " entries", -1;
                double e = strtod(p, &end);
                if (end == p || !(e >= 1 && e <= TS_MAX_EPOCH && e == floor(e)))
                    return *why = "hist epochs must be integers in 1..2^24", -1;
                p = skip_ws(end);
                if (*p++ != ',') return *why = "hist wants epoch, metric pairs", -1;
                double v = strtod(p, &end);
                if (end == p || !isfinite(v)) return *why = "hist metrics must be finite numbers", -1;
                x->hist_epoch[x->nhist] = (int)e;
                x->hist_metric[x->nhist++] = v;
                p = skip_ws(end);
                if (*p == ',') p = skip_ws(p + 1);
                else if (*p != ']') return *why = "expected ',' or ']' in hist", -1;
            }
            end = (char *)p + 1;
        } else if (k >= TS_SEED) {
            if (*p < '0' || *p > '9') return *why = "seed, counter and init_seed must be unsigned integers", -1;
            errno = 0;
            u64[k] = strtoull(p, &end, 10);
            if (errno) return *why = "seed or counter out of range", -1;
        } else {
            num[k] = strtod(p, &end);
            if (end == p || !isfinite(num[k])) return *why = "expected a finite number", -1;
        }
        p = skip_ws(end);
        if (*p == ',') { p = skip_ws(p + 1); continue; }
        if (*p == '}') return *skip_ws(p + 1) ? (*why = "trailing characters", -1) : 0;
        return *why = "expected ',' or '}'", -1;
    }
}

static int ts_fail(char *err, size_t errn, const char *path, const char *field, const char *fmt, double v,
                   double lo, double hi) {
    char what[160];
    snprintf(what, sizeof what, fmt, v, lo, hi);
    snprintf(err, errn, "checkpoint %s: train_state %s: %s", path, field, what);
    return -1;
}

/* The resume position from the root attributes and train_state, every field in range. */
static int ts_read(const char *path, const CkptInfo *info, long batches_per_epoch, TrainState *st, char *err,
                   size_t errn) {
    double num[TS_N] = {0};
    uint64_t u64[TS_N] = {0};
    int have[TS_N] = {0};
    static TsExtra x0;
    TsExtra *x = calloc(1, sizeof *x);
    if (!x) { snprintf(err, errn, "out of memory"); return -1; }
    const char *why = NULL, *js = info->train_state[0] ? info->train_state : "{}";
    int prc = ts_parse(js, num, u64, have, x, &why);
    TsExtra xs = prc == 0 ? *x : x0;
    free(x);
    if (prc < 0) {
        snprintf(err, errn, "checkpoint %s: attribute train_state is not valid: %s", path, why);
        return -1;
    }
    /* root attributes first: train_state repeats them, and both must agree */
    if (info->epoch < 0 || info->epoch > TS_MAX_EPOCH)
        return ts_fail(err, errn, path, "(root attribute epoch)", "%.0f is outside %.0f..%.0f", (double)info->epoch,
                       0, TS_MAX_EPOCH);
    if (info->step < 0 || (double)info->step > TS_MAX_STEP)
        return ts_fail(err, errn, path, "(root attribute step)", "%.0f is outside %.0f..%.0f", (double)info->step, 0,
                       TS_MAX_STEP);
    if (info->optimizer_step < 0 || (double)info->optimizer_step > TS_MAX_STEP)
        return ts_fail(err, errn, path, "(/optimizer attribute step)", "%.0f is outside %.0f..%.0f",
                       (double)info->optimizer_step, 0, TS_MAX_STEP);
    if (!have[TS_EPOCH]) num[TS_EPOCH] = (double)info->epoch;
    if (!have[TS_STEP]) num[TS_STEP] = (double)info->step;
    if (!have[TS_BEST]) num[TS_BEST] = info->best_top1;
    if (!have[TS_BEST_EPOCH]) num[TS_BEST_EPOCH] = -1;
    if (!have[TS_SEED]) u64[TS_SEED] = info->n_rng > 0 ? info->rng[0] : 0;
    if (!have[TS_COUNTER]) u64[TS_COUNTER] = info->n_rng > 1 ? info->rng[1] : 0;
    for (int k = 0; k < TS_SEED; k++)
        if (k != TS_BEST && k != TS_BEST_METRIC && k != TS_EMA_DECAY && k != TS_LOSS_SUM && k != TS_LOG_SUM &&
            num[k] != floor(num[k]))
            return ts_fail(err, errn, path, ts_keys[k], "%g is not an integer", num[k], 0, 0);
    double bmax = batches_per_epoch > 0 ? (double)batches_per_epoch - 1 : 1e15;
    if (!(num[TS_EPOCH] >= 0 && num[TS_EPOCH] <= TS_MAX_EPOCH))
        return ts_fail(err, errn, path, "epoch", "%g is outside %g..%g", num[TS_EPOCH], 0, TS_MAX_EPOCH);
    if (!(num[TS_BATCH] >= 0 && num[TS_BATCH] <= bmax))
        return ts_fail(err, errn, path, "batch", "%g is outside %g..%g (batches per epoch of this data, minus one)",
                       num[TS_BATCH], 0, bmax);
    if (!(num[TS_STEP] >= 0 && num[TS_STEP] <= TS_MAX_STEP))
        return ts_fail(err, errn, path, "step", "%g is outside %g..%g", num[TS_STEP], 0, TS_MAX_STEP);
    if (!(num[TS_BEST] == -1 || (num[TS_BEST] >= 0 && num[TS_BEST] <= 1)))
        return ts_fail(err, errn, path, "best_top1", "%g is neither -1 nor in %g..%g", num[TS_BEST], 0, 1);
    if (!(num[TS_BEST_EPOCH] >= -1 && num[TS_BEST_EPOCH] <= num[TS_EPOCH]))
        return ts_fail(err, errn, path, "best_epoch", "%g is outside %g..%g (the epoch)", num[TS_BEST_EPOCH], -1,
                       num[TS_EPOCH]);
    if (num[TS_EPOCH] != (double)info->epoch)
        return ts_fail(err, errn, path, "epoch", "%g disagrees with the root attribute epoch %.0f", num[TS_EPOCH],
                       (double)info->epoch, 0);
    if (num[TS_STEP] != (double)info->step)
        return ts_fail(err, errn, path, "step", "%g disagrees with the root attribute step %.0f", num[TS_STEP],
                       (double)info->step, 0);
    if (!have[TS_BEST_METRIC]) num[TS_BEST_METRIC] = num[TS_BEST];
    if (!(num[TS_EMA] == 0 || num[TS_EMA] == 1))
        return ts_fail(err, errn, path, "ema", "%g is neither %g nor %g", num[TS_EMA], 0, 1);
    if (!(num[TS_EMA_WARMUP] == 0 || num[TS_EMA_WARMUP] == 1))
        return ts_fail(err, errn, path, "ema_warmup", "%g is neither %g nor %g", num[TS_EMA_WARMUP], 0, 1);
    if (!(num[TS_EMA_DECAY] >= 0 && num[TS_EMA_DECAY] <= 1))
        return ts_fail(err, errn, path, "ema_decay", "%g is outside %g..%g", num[TS_EMA_DECAY], 0, 1);
    /* the loss sums of the epoch in progress: at most one term per consumed batch */
    if (!(num[TS_LOSS_N] >= 0 && num[TS_LOSS_N] <= num[TS_BATCH]))
        return ts_fail(err, errn, path, "loss_n", "%g is outside %g..%g (the batch)", num[TS_LOSS_N], 0, num[TS_BATCH]);
    if (!(num[TS_LOG_N] >= 0 && num[TS_LOG_N] <= num[TS_BATCH]))
        return ts_fail(err, errn, path, "log_n", "%g is outside %g..%g (the batch)", num[TS_LOG_N], 0, num[TS_BATCH]);
    for (int i = 0; i < xs.nhist; i++)
        if (xs.hist_epoch[i] > num[TS_EPOCH])
            return ts_fail(err, errn, path, "hist", "epoch %g is after the checkpoint's epoch %g", xs.hist_epoch[i],
                           num[TS_EPOCH], 0);
    memset(st, 0, sizeof *st);
    st->best_metric = num[TS_BEST_METRIC];
    snprintf(st->eval_metric, sizeof st->eval_metric, "%s", xs.eval_metric);
    st->ema = (int)num[TS_EMA];
    st->ema_decay = num[TS_EMA_DECAY];
    st->ema_warmup = (int)num[TS_EMA_WARMUP];
    st->loss_sum = num[TS_LOSS_SUM];
    st->loss_n = (long)num[TS_LOSS_N];
    st->log_sum = num[TS_LOG_SUM];
    st->log_n = (long)num[TS_LOG_N];
    st->nhist = xs.nhist;
    for (int i = 0; i < xs.nhist; i++) { st->hist[i].epoch = xs.hist_epoch[i]; st->hist[i].metric = xs.hist_metric[i]; }
    st->epoch = (int)num[TS_EPOCH];
    st->batch = (long)num[TS_BATCH];
    st->step = (long)num[TS_STEP];
    st->best_top1 = num[TS_BEST];
    st->best_epoch = (int)num[TS_BEST_EPOCH];
    st->seed = u64[TS_SEED];
    st->counter = u64[TS_COUNTER];
    return 0;
}

int train_ckpt_load(const char *path, Model *m, Optimizer *opt, Ema *ema, long batches_per_epoch, TrainState *st,
                    char *err, size_t errn) {
    CkptInfo *info = calloc(1, sizeof *info);
    if (!info) { snprintf(err, errn, "out of memory"); return -1; }
    CkptGroup g[MAXG];
    char names[MAXG][64];
    memset(g, 0, sizeof g);
    int ng = make_groups(m, opt, ema, g, names);
    int rc = ckpt_load(path, &m->params, g, ng, info, err, errn);
    TrainState parsed;
    if (rc == 0) rc = ts_read(path, info, batches_per_epoch, &parsed, err, errn);
    if (rc == 0 && opt) {
        for (int i = 0; i < ng; i++)
            if (strncmp(g[i].prefix, "optimizer/", 10) == 0 && !g[i].found) {
                snprintf(err, errn, "checkpoint %s has no /%s (saved with another optimizer than '%s'?)", path,
                         g[i].prefix, opt->name);
                rc = -1;
                break;
            }
        if (rc == 0) optim_set_step(opt, info->optimizer_step);
    }
    if (rc == 0 && ema && !g[ng - 1].found) ema_reset(ema);
    if (rc == 0) *st = parsed;
    free_groups(g, ng);
    free(info);
    return rc;
}
