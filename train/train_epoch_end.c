/* The end of a training epoch: validation of the model (and of its EMA), the best
 * epoch by --eval-metric (best.h5, --checkpoint-hist), --keep-last, and checkpoint
 * writes. Rank 0 writes files; every rank takes the same decisions. */
#include "train/dist.h"
#include "train/run_dir.h"
#include "train/train_run.h"
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int train_save(TrainRun *r, const char *name) {
    if (!r->root) return 0;
    char path[1200], err[1024];
    snprintf(path, sizeof path, "%s/%s", r->dir, name);
    r->st.counter = r->c.counter;
    r->st.class_names = r->class_json;
    r->st.permute = &r->o.train_data.aug.permute;
    struct stat prev;
    int had = stat(path, &prev) == 0;
    if (train_ckpt_save(path, &r->m, &r->opt, r->has_ema ? &r->ema : NULL, &r->st, r->mean, r->std, r->nchan, r->interp,
                        r->crop_pct, err, sizeof err) != 0) {
        fprintf(stderr, "mixtape train: could not write checkpoint %s: %s%s\n", path, err,
                had ? " (the previous one is intact)" : "");
        return -1;
    }
    return 0;
}

static void remove_numbered(TrainRun *r, const char *prefix, int epoch) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s-%d.h5", r->dir, prefix, epoch);
    remove(path);
}

void train_rotate(TrainRun *r, int epoch) {
    if (!r->root || r->o.keep_last <= 0) return;
    char name[64];
    snprintf(name, sizeof name, "epoch-%d.h5", epoch);
    train_save(r, name);
    int old = epoch - r->o.keep_last;
    if (old >= 1) remove_numbered(r, "epoch", old);
}

/* --eval-metric of a result: top1, top5 (higher is better) or loss (lower is better). */
static double metric_of(const TrainRun *r, const EvalResult *e) {
    if (!strcmp(r->o.eval_metric, "loss")) return e->loss;
    return !strcmp(r->o.eval_metric, "top5") ? e->top5 : e->top1;
}
static int better(const TrainRun *r, double a, double b) { return !strcmp(r->o.eval_metric, "loss") ? a < b : a > b; }

/* --checkpoint-hist K: keep checkpoint-<epoch>.h5 of the K best epochs by --eval-metric
 * (timm's CheckpointSaver), best first in st.hist; ties keep the earlier epoch. */
static void update_hist(TrainRun *r, int epoch, double m) {
    TrainState *st = &r->st;
    int K = r->o.checkpoint_hist;
    for (int i = 0; i < st->nhist; i++) /* an epoch re-run after a crash replaces its entry */
        if (st->hist[i].epoch == epoch) {
            memmove(&st->hist[i], &st->hist[i + 1], (size_t)(st->nhist - i - 1) * sizeof st->hist[0]);
            st->nhist--;
            break;
        }
    int pos = st->nhist;
    while (pos > 0 && better(r, m, st->hist[pos - 1].metric)) pos--;
    if (K > 0 && pos < K && st->nhist < TRAIN_HIST_MAX) {
        memmove(&st->hist[pos + 1], &st->hist[pos], (size_t)(st->nhist - pos) * sizeof st->hist[0]);
        st->hist[pos].epoch = epoch;
        st->hist[pos].metric = m;
        st->nhist++;
    } else pos = -1;
    while (st->nhist > K) { /* also when K was lowered on resume */
        st->nhist--;
        if (r->root) remove_numbered(r, "checkpoint", st->hist[st->nhist].epoch);
    }
    if (pos >= 0) {
        char name[64];
        snprintf(name, sizeof name, "checkpoint-%d.h5", epoch);
        train_save(r, name);
    }
}

static int next_val(void *ud, Batch *b) { return loader_next((Loader *)ud, b); }

/* Evaluates the model's current weights on this rank's share and combines over ranks.
 * 0, or -1 with the message printed. */
static int eval_all(TrainRun *r, EvalResult *ev, const char *what) {
    char err[1024];
    int bad = 0;
    if (loader_start_epoch(r->val, 0) != 0 ||
        evaluate(&r->m, &r->c, next_val, r->val, 0, NULL, NULL, ev, err, sizeof err) != 0) {
        fprintf(stderr, "mixtape train: %s validation failed: %s\n", what,
                loader_error(r->val)[0] ? loader_error(r->val) : err);
        bad = 1;
    }
    if (dist_any_max(bad)) {
        if (!bad && r->root) fprintf(stderr, "mixtape train: validation failed on another rank (its message is above)\n");
        if (!bad) eval_result_free(ev);
        return -1;
    }
    eval_result_reduce(ev); /* each rank evaluated its share of the samples: add them up exactly */
    return 0;
}

/* The model's and (when on) its EMA's validation results. 0, or -1 (both freed). */
static int eval_model_and_ema(TrainRun *r, EvalResult *ev, EvalResult *eve) {
    if (eval_all(r, ev, "model") != 0) return -1;
    if (r->has_ema) {
        ema_swap(&r->ema);
        int rc = eval_all(r, eve, "EMA");
        ema_swap(&r->ema);
        if (rc != 0) { eval_result_free(ev); return -1; }
    }
    return 0;
}

/* The judged result (the EMA's when on, as timm) against the best so far: best.h5 and
 * --checkpoint-hist. 1 when this epoch is the new best. */
static int judge_epoch(TrainRun *r, const EvalResult *judged) {
    int epoch = r->st.epoch, is_best = 0;
    double m = metric_of(r, judged);
    if (r->st.best_epoch < 0 || better(r, m, r->st.best_metric)) {
        r->st.best_metric = m;
        r->st.best_top1 = judged->top1;
        r->st.best_epoch = epoch;
        is_best = 1;
    }
    update_hist(r, epoch, m);
    if (is_best) train_save(r, "best.h5");
    return is_best;
}

/* Rank 0: the metrics row, the epoch line and the summary.csv row. 0, or -1 (printed). */
static int record_epoch(TrainRun *r, double train_loss, const EvalResult *ev, const EvalResult *eve, int is_best,
                        double epoch_time, double img_s) {
    const EvalResult *judged = eve ? eve : ev;
    train_log_epoch_row(r, train_loss, ev, eve, epoch_time, img_s);
    train_log_epoch_line(r, train_loss, ev, eve, is_best, img_s);
    SummaryRow row = {r->st.epoch, train_loss, r->opt.lr, ev != NULL, ev ? judged->loss : 0, ev ? judged->top1 : 0,
                      ev ? judged->top5 : 0};
    char serr[1024];
    if (rundir_summary(r->dir, &row, serr, sizeof serr) != 0) {
        fprintf(stderr, "mixtape train: %s (stopping; last.h5 is the last good state)\n", serr);
        return -1;
    }
    return 0;
}

int train_validate(TrainRun *r, double train_loss, double epoch_time, double img_s) {
    EvalResult ev, eve;
    memset(&ev, 0, sizeof ev);
    memset(&eve, 0, sizeof eve);
    int have = r->val != NULL;
    if (have && eval_model_and_ema(r, &ev, &eve) != 0) return -1;
    const EvalResult *evp = have ? &ev : NULL, *evep = have && r->has_ema ? &eve : NULL;
    /* Zero samples or a NaN loss is no accuracy: never a best, and the run stops. */
    char err[1024];
    int honest = !have || (eval_result_check(&ev, err, sizeof err) == 0 &&
                           (!r->has_ema || eval_result_check(&eve, err, sizeof err) == 0));
    int is_best = have && honest ? judge_epoch(r, r->has_ema ? &eve : &ev) : 0;
    int rc = r->root ? record_epoch(r, train_loss, evp, evep, is_best, epoch_time, img_s) : 0;
    if (have) eval_result_free(&ev);
    if (r->has_ema && have) eval_result_free(&eve);
    if (!honest && r->root)
        fprintf(stderr, "mixtape train: validation after epoch %d on --val %s: %s; stopping. The last checkpoint in %s "
                        "is the last good state.\n", r->st.epoch, r->o.val_spec, err, r->dir);
    if (r->root && metrics_failed(&r->log)) honest = 0; /* its message is above */
    return dist_any_max(!honest || rc != 0) ? -1 : 0;
}
