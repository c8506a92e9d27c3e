#include "train/train_ckpt.h"
#include "train/checkpoint.h"
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
                    const float *mean, const float *std, int nchan, char *err, size_t errn) {
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

/* Number after "key": in a flat JSON object; def when absent. */
static double json_num(const char *js, const char *key, double def) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(js, pat);
    if (!p) return def;
    return strtod(p + strlen(pat), NULL);
}
static uint64_t json_u64(const char *js, const char *key, uint64_t def) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(js, pat);
    if (!p) return def;
    return strtoull(p + strlen(pat), NULL, 10);
}

/* "key": "value" (letters and digits only) into out; "" when absent or odd. */
static void json_word(const char *js, const char *key, char *out, size_t n) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    out[0] = 0;
    const char *p = strstr(js, pat);
    if (!p) return;
    p += strlen(pat);
    size_t k = 0;
    while (k + 1 < n && ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))) out[k++] = *p++;
    out[k] = 0;
    if (*p != '"') out[0] = 0;
}

void train_state_from_info(const CkptInfo *info, TrainState *st) {
    memset(st, 0, sizeof *st);
    const char *js = info->train_state;
    st->epoch = (int)json_num(js, "epoch", (double)info->epoch);
    st->batch = (long)json_num(js, "batch", 0);
    st->step = (long)json_num(js, "step", (double)info->step);
    st->best_top1 = json_num(js, "best_top1", info->best_top1);
    st->best_epoch = (int)json_num(js, "best_epoch", -1);
    st->best_metric = json_num(js, "best_metric", st->best_top1);
    json_word(js, "eval_metric", st->eval_metric, sizeof st->eval_metric);
    st->ema = (int)json_num(js, "ema", 0) != 0;
    st->ema_decay = json_num(js, "ema_decay", 0);
    st->ema_warmup = (int)json_num(js, "ema_warmup", 0) != 0;
    st->seed = json_u64(js, "seed", info->n_rng > 0 ? info->rng[0] : 0);
    st->counter = json_u64(js, "counter", info->n_rng > 1 ? info->rng[1] : 0);
    /* loss sums: counts bounded by the batches of an epoch (checked against the data by the caller) */
    st->loss_sum = json_num(js, "loss_sum", 0);
    st->log_sum = json_num(js, "log_sum", 0);
    st->loss_n = (long)json_num(js, "loss_n", 0);
    st->log_n = (long)json_num(js, "log_n", 0);
    if (!(st->loss_n >= 0 && st->loss_n <= st->batch) || !isfinite(st->loss_sum)) { st->loss_n = 0; st->loss_sum = 0; }
    if (!(st->log_n >= 0 && st->log_n <= st->batch) || !isfinite(st->log_sum)) { st->log_n = 0; st->log_sum = 0; }
    /* "hist": [epoch, metric, ...], at most TRAIN_HIST_MAX pairs; anything odd ends the list */
    const char *p = strstr(js, "\"hist\": [");
    if (p) {
        p += strlen("\"hist\": [");
        while (st->nhist < TRAIN_HIST_MAX) {
            char *end;
            long e = strtol(p, &end, 10);
            if (end == p || e < 1 || e > 1000000000L) break;
            p = end;
            while (*p == ',' || *p == ' ') p++;
            double v = strtod(p, &end);
            if (end == p) break;
            st->hist[st->nhist].epoch = (int)e;
            st->hist[st->nhist].metric = v;
            st->nhist++;
            p = end;
            while (*p == ',' || *p == ' ') p++;
        }
    }
}

int train_ckpt_load(const char *path, Model *m, Optimizer *opt, Ema *ema, TrainState *st, char *err, size_t errn) {
    CkptInfo *info = calloc(1, sizeof *info);
    if (!info) { snprintf(err, errn, "out of memory"); return -1; }
    CkptGroup g[MAXG];
    char names[MAXG][64];
    memset(g, 0, sizeof g);
    int ng = make_groups(m, opt, ema, g, names);
    int rc = ckpt_load(path, &m->params, g, ng, info, err, errn);
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
    if (rc == 0) train_state_from_info(info, st);
    free_groups(g, ng);
    free(info);
    return rc;
}
