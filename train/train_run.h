/* The state of one `mixtape train` run, passed explicitly between its parts:
 *   train_setup.c       flags, run directory, optimizer / schedule / EMA, resumed state,
 *                       and the agreement of every rank on all of it
 *   train_model_data.c  the model (built, fine-tuned from or restored) and the data loaders
 *   train_epoch.c       the epochs: one batch, one optimizer step, the end of an epoch
 *   train_epoch_end.c   validation, best.h5 / --checkpoint-hist / --keep-last, checkpoint writes
 *   train_log.c         what the run prints and records (console lines, metrics.jsonl, summary.csv)
 * cmd_train.c reads as the command's flow over these. */
#pragma once
#include "core/tape.h"
#include "data/loader.h"
#include "optim/ema.h"
#include "train/dist_buckets.h"
#include "train/evaluate.h"
#include "train/metrics.h"
#include "train/resume_args.h"
#include "train/train_ckpt.h"
#include "train/train_opts.h"

typedef struct TrainRun {
    TrainOpts o;
    Model m;
    Optimizer opt;
    Ema ema;
    int has_ema;
    Loader *train, *val;
    TrainState st;
    Ctx c;
    MetricsLog log;
    char dir[1024];
    long steps_per_epoch, batches_per_epoch;
    float mean[3], std[3];
    int nchan;
    char interp[16];        /* eval interpolation and crop_pct, recorded in checkpoints */
    float crop_pct;
    int root;
    DistBuckets *db;        /* gradient averaging across ranks (no-op with one) */
    char resume_path[1200];
    char norm_src[1300];    /* where the data's mean/std came from */
    ResumePlan plan;        /* --resume: the run directory and its args.yaml */
    char *class_json;       /* class names saved in checkpoints (JSON list), or NULL */
} TrainRun;

/* train_setup.c. Builds model, data, optimizer, schedule, EMA; restores a run when
 * resuming; with several ranks, agrees on errors and on the batches per epoch, and sets
 * up the gradient buckets. 0, or the exit code to stop with (the same on every rank). */
int train_setup(TrainRun *r, Args *a);
/* Every rank learns whether any rank failed (exit code rc != 0), before any other
 * collective: the failing rank has printed its message; the others stop too. */
int train_agree(TrainRun *r, int rc, const char *when);
/* Frees what setup built (any part of it). */
void train_teardown(TrainRun *r);

/* train_model_data.c: the model of cfg (from the flags, or the resumed checkpoint's
 * config; --precision auto resolved first), then the data settings and loaders checked
 * against it. 0, or the exit code. */
int train_setup_model(TrainRun *r, Args *a, ModelConfig *cfg);
int train_setup_data(TrainRun *r, const ModelConfig *cfg);

/* train_epoch.c: the epochs from r->st on. 0, or the exit code. */
int train_epochs(TrainRun *r);

/* train_epoch_end.c */
/* Writes <dir>/<name> on rank 0 (atomically). 0, or -1 with the message printed. */
int train_save(TrainRun *r, const char *name);
/* End of an epoch (r->st.epoch completed): validation of the model and of its EMA (when
 * on), best.h5 and --checkpoint-hist, then the epoch's metrics row, line and summary.csv
 * row. 0, or -1 (stop; the message is printed). */
int train_validate(TrainRun *r, double train_loss, double epoch_time, double img_s);
/* --keep-last K: writes epoch-N.h5 and removes the one K epochs older. */
void train_rotate(TrainRun *r, int epoch);

/* train_log.c */
/* The --eval-metric value v as printed: a loss, or a percentage. */
void train_format_metric(const TrainRun *r, double v, char *buf, size_t n);
/* The lines after setup: model, optimizer and schedule, data, run directory. */
void train_log_setup(const TrainRun *r, float lr);
/* A metrics.jsonl row every --log-interval steps. */
void train_log_interval(TrainRun *r, double loss, double ips, double wait_frac);
/* The epoch's metrics row (ev / eve: NULL without validation / EMA). */
void train_log_epoch_row(TrainRun *r, double train_loss, const EvalResult *ev, const EvalResult *eve,
                         double epoch_time, double img_s);
/* The epoch's console line. */
void train_log_epoch_line(const TrainRun *r, double train_loss, const EvalResult *ev, const EvalResult *eve,
                          int is_best, double img_s);
/* The last line of a finished run. */
void train_log_done(const TrainRun *r);
