/* The whole state of a training run in one checkpoint: weights, optimizer
 * state, EMA, position (epoch, batch within it, optimizer step), best top-1,
 * the dropout RNG counter and the data mean/std — enough to continue exactly. */
#pragma once
#include "data/permute.h"
#include "layers/model.h"
#include "optim/ema.h"
#include "optim/optimizer.h"
#include <stdint.h>

#define TRAIN_HIST_MAX 100    /* --checkpoint-hist bound */
#define TRAIN_HIST_MAX_S "100"

typedef struct TrainState {
    int epoch;            /* epoch in progress (epochs completed when batch == 0) */
    long batch;           /* batches of `epoch` already consumed */
    long step;            /* optimizer steps taken */
    double best_top1;     /* top-1 of the judged weights at best_epoch (-1 none) */
    int best_epoch;       /* 1-based epoch of best.h5 (-1 none) */
    double best_metric;   /* --eval-metric value at best_epoch */
    char eval_metric[8];  /* "top1" | "top5" | "loss" ("" = unknown: older checkpoint) */
    int ema;              /* the run keeps an EMA (/ema present) */
    int ema_warmup;
    double ema_decay;
    double loss_sum, log_sum;   /* mid-epoch: train loss sums of the epoch and of the log interval */
    long loss_n, log_n;
    int nhist;            /* --checkpoint-hist: kept checkpoint-<epoch>.h5, best first */
    struct { int epoch; double metric; } hist[TRAIN_HIST_MAX];
    uint64_t seed;        /* run seed */
    uint64_t counter;     /* dropout / drop-path stream position (Ctx.counter) */
    const char *class_names; /* JSON list stored as the class_names attribute, or NULL (not owned) */
    const PermuteConfig *permute; /* --permute of the data, stored as data_permute*, or NULL (not owned) */
} TrainState;

/* Atomic write (see train/checkpoint.h). opt / ema may be NULL. mean/std/nchan, interp
 * ("" / NULL: not recorded) and crop_pct (<= 0: not recorded) describe the data pipeline. */
int train_ckpt_save(const char *path, Model *m, Optimizer *opt, Ema *ema, const TrainState *st,
                    const float *mean, const float *std, int nchan, const char *interp, float crop_pct, char *err,
                    size_t errn);
/* Strict load into an already built model of the checkpoint's config; the
 * optimizer's states must be present when opt != NULL; EMA loaded when present
 * (else reset from the weights). st filled from the attributes: train_state is
 * parsed strictly (a flat JSON object of known keys) and every field range-checked
 * (epoch, step >= 0 and equal to the root attributes, batch below batches_per_epoch
 * when > 0, best_top1 -1 or in [0,1], best_epoch in -1..epoch); errors name the
 * file and the field. */
int train_ckpt_load(const char *path, Model *m, Optimizer *opt, Ema *ema, long batches_per_epoch, TrainState *st,
                    char *err, size_t errn);
