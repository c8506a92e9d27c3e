/* The training epochs, as the paper's algorithm reads: for each batch, forward, loss,
 * backward (accumulated over --grad-accum-steps micro-batches, gradients averaged over
 * ranks), then clip, lr from the schedule, optimizer step, EMA; at the end of the epoch,
 * validation and checkpoints (train_epoch_end.c). Every rank goes on only together. */
#include "core/clock.h"
#include "optim/clip.h"
#include "train/data_check.h"
#include "train/dist.h"
#include "train/progress.h"
#include "train/signals.h"
#include "train/train_run.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

/* One epoch's running sums and clocks: the loss and images since the epoch's start and
 * since the last --log-interval row. */
typedef struct EpochTally {
    Progress pr;
    double t0, tlog, wait_log;
    double loss_sum, loss_log;
    long nb, nlog, imgs, imgs_log;
    int micro;              /* micro-batches accumulated towards the next step */
} EpochTally;

/* How the batches of an epoch ended. */
enum { EPOCH_DONE, EPOCH_EXIT };

static void tally_start(TrainRun *r, EpochTally *t, int epoch) {
    memset(t, 0, sizeof *t);
    if (r->root) progress_start(&t->pr, stdout, epoch, r->o.epochs, r->steps_per_epoch, r->o.log_interval);
    t->t0 = mt_seconds();
    t->wait_log = loader_wait_seconds(r->train);
    t->tlog = t->t0;
    /* the loss sums of an epoch resumed mid-way come from the checkpoint, so that its
     * metrics rows and summary.csv row are those of the uninterrupted run */
    if (r->st.batch) {
        t->loss_sum = r->st.loss_sum;
        t->loss_log = r->st.log_sum;
        t->nb = r->st.loss_n;
        t->nlog = r->st.log_n;
    }
}

/* The next batch, agreed over ranks: 1 every rank has one, 0 a rank ran out (the epoch
 * ends there), -1 a loader failed (the message is printed). */
static int next_batch(TrainRun *r, int epoch, Batch *b) {
    int got = loader_next(r->train, b);
    int state = dist_any_max(got == 1 ? 0 : got == 0 ? 1 : 2);
    if (state == 2) {
        if (got < 0) fprintf(stderr, "mixtape train: %s\n", loader_error(r->train));
        else if (r->root) fprintf(stderr, "mixtape train: stopping: the data loader failed on another rank\n");
        return -1;
    }
    if (state == 1) {
        if (dist_world() > 1 && r->root)
            fprintf(stderr, "mixtape train: warning: a rank ran out of samples at batch %ld of epoch %d "
                            "(skipped samples); every rank ends the epoch there\n", r->st.batch, epoch);
        return 0;
    }
    return 1;
}

/* Forward, loss and backward of one micro-batch; *lv its loss averaged over ranks.
 * 0, or -1 (a failure or a non-finite loss on any rank; the message is printed). */
static int micro_batch(TrainRun *r, EpochTally *t, Batch *b, int epoch, double *lv) {
    const TrainOpts *o = &r->o;
    mt_ctx_reset(&r->c);
    r->c.training = 1;
    int shape[4] = {b->n, b->c, b->h, b->w};
    Tensor *x = mt_wrap(&r->c, b->images, 4, shape);
    Tensor *logits = model_forward(&r->c, &r->m, x);
    Tensor *loss = mt_cross_entropy(&r->c, logits, b->soft ? NULL : b->labels, b->soft, b->soft ? 0 : o->smoothing);
    /* The backward that completes a step averages the gradients over ranks in
     * buckets, started while the sweep runs (no-op with one rank). */
    int closing = t->micro + 1 >= o->grad_accum || r->st.batch + 1 == r->batches_per_epoch;
    if (closing) dist_buckets_begin(r->db, &r->c);
    int brc = loss ? accum_backward(&r->c, loss, o->grad_accum) : -1;
    if (closing) dist_buckets_finish(r->db, &r->c);
    /* One small allreduce: the mean loss over ranks, non-finite and failure flags. */
    double v[3] = {brc == 0 ? loss->data[0] : 0, brc == 0 && !isfinite(loss->data[0]), brc != 0};
    dist_allreduce_sum_d(v, 3);
    if (v[2] > 0) {
        if (brc) fprintf(stderr, "mixtape train: step %ld: %s\n", r->st.step, r->c.err);
        else if (r->root) fprintf(stderr, "mixtape train: step %ld failed on another rank (its message is above)\n",
                                  r->st.step);
        return -1;
    }
    *lv = v[0] / dist_world();
    if (v[1] > 0) {
        if (r->root)
            fprintf(stderr, "mixtape train: the loss is %s at step %ld (epoch %d, batch %ld); stopping. The "
                            "last checkpoint in %s is the last good state.\n",
                    isnan(*lv) ? "NaN" : "not finite", r->st.step, epoch + 1, r->st.batch, r->dir);
        return -1;
    }
    return 0;
}

/* Everything after a finished backward of the last micro-batch (whose gradients the
 * buckets have already averaged over ranks). */
static void optimizer_step(TrainRun *r) {
    ParamList *p = &r->m.params;
    if (r->o.clip_grad > 0) {
        if (!strcmp(r->o.clip_mode, "value")) clip_grad_value(p, r->o.clip_grad);
        else clip_grad_norm(p, r->o.clip_grad);
    }
    optim_set_lr(&r->opt, sched_lr(&r->o.sched, r->st.step));
    optim_step(&r->opt);
    optim_zero_grad(&r->opt);
    r->st.step++;
    if (r->has_ema) ema_update(&r->ema, r->st.step);
    dist_set_phase(r->st.step);   /* for the lost-rank watchdog's message */
}

/* After an optimizer step: progress, the --log-interval row, the running sums kept for
 * a mid-epoch checkpoint, --checkpoint-every. */
static void after_step(TrainRun *r, EpochTally *t, int last) {
    const TrainOpts *o = &r->o;
    double now = mt_seconds();
    if (r->root) progress_update(&t->pr, (r->st.batch + o->grad_accum - 1) / o->grad_accum, t->loss_sum / t->nb,
                                 r->opt.lr, t->imgs * dist_world() / (now - t->t0));
    if (o->log_interval > 0 && r->st.step % o->log_interval == 0) {
        double w = loader_wait_seconds(r->train);
        train_log_interval(r, t->loss_log / t->nlog, t->imgs_log * dist_world() / (now - t->tlog),
                           (w - t->wait_log) / (now - t->tlog));
        t->tlog = now; t->wait_log = w; t->loss_log = 0; t->nlog = 0; t->imgs_log = 0;
    }
    r->st.loss_sum = t->loss_sum; r->st.loss_n = t->nb; r->st.log_sum = t->loss_log; r->st.log_n = t->nlog;
    if (o->checkpoint_every > 0 && r->st.step % o->checkpoint_every == 0 && !last) train_save(r, "last.h5");
}

/* After last.h5 is written on SIGINT/SIGTERM (sig > 0) or --max-steps (sig < 0): how to
 * continue, and the exit code. */
static int stop_message(TrainRun *r, int sig) {
    if (sig > 0) {
        if (r->root)
            fprintf(stderr, "mixtape train: interrupted at step %ld; resume with:\n  mixtape train --resume %s\n",
                    r->st.step, r->dir);
        return sig == 15 ? 143 : 130;
    }
    if (r->root)
        printf("stopped after --max-steps %ld; continue with: mixtape train --resume %s\n", r->o.max_steps, r->dir);
    return 0;
}

/* The batches of one epoch (at most the global batches per epoch). EPOCH_DONE when the
 * epoch ends (its batches are done, a rank ran out, or a stop waits for the epoch's
 * end: *stopping set); EPOCH_EXIT when the run ends now with exit code *rc. */
static int epoch_batches(TrainRun *r, EpochTally *t, int epoch, int *stopping, int *rc) {
    const TrainOpts *o = &r->o;
    Batch b;
    *rc = 1;
    while (r->st.batch < r->batches_per_epoch) {
        int got = next_batch(r, epoch, &b);
        if (got < 0) return EPOCH_EXIT;
        if (got == 0) break;
        double lv;
        if (micro_batch(r, t, &b, epoch, &lv) != 0) return EPOCH_EXIT;
        t->loss_sum += lv; t->loss_log += lv;
        t->nb++; t->nlog++; t->imgs += b.n; t->imgs_log += b.n;
        r->st.batch++;
        t->micro++;
        int last = r->st.batch == r->batches_per_epoch;
        if (t->micro < o->grad_accum && !last) continue;
        t->micro = 0;
        optimizer_step(r);
        after_step(r, t, last);
        int sig = dist_any_max(signals_pending());
        int stop = o->max_steps > 0 && r->st.step >= o->max_steps;
        if (!sig && !stop) continue;
        /* on the epoch's last batch, the epoch ends first (validation, best.h5, summary.csv)
         * as in an uninterrupted run, so the resumed run starts the next epoch */
        *stopping = sig ? sig : -1;
        if (last) break;
        if (r->root) progress_end(&t->pr, NULL);
        if (dist_any_max(train_save(r, "last.h5") != 0)) return EPOCH_EXIT; /* the message is above */
        *rc = stop_message(r, *stopping);
        return EPOCH_EXIT;
    }
    return EPOCH_DONE;
}

/* After the epoch's batches: the state of a completed epoch, the mean loss over ranks,
 * validation when due (--val-every, the last epoch), last.h5 and --keep-last. 0, or 1. */
static int end_epoch(TrainRun *r, EpochTally *t, int epoch) {
    const TrainOpts *o = &r->o;
    double dt = mt_seconds() - t->t0;
    if (r->root) progress_end(&t->pr, NULL);
    r->st.epoch = epoch + 1;
    r->st.batch = 0;
    r->st.loss_sum = r->st.log_sum = 0;
    r->st.loss_n = r->st.log_n = 0;
    double agg[2] = {t->loss_sum, (double)t->nb};
    dist_allreduce_sum_d(agg, 2);
    char nerr[1400]; /* no step this epoch: skipped samples left no full batch */
    if (data_check_epoch_trained(agg[1], o->train_spec, loader_epoch_size(r->train), loader_skipped_epoch(r->train),
                                 o->batch_size, nerr, sizeof nerr) != 0) {
        if (r->root) fprintf(stderr, "mixtape train: %s\n", nerr);
        return 1;
    }
    int val_now = r->val && (((epoch + 1) % (o->val_every > 0 ? o->val_every : 1)) == 0 || epoch + 1 == o->epochs);
    if (val_now || !r->val) {
        Loader *keep = r->val;
        if (!val_now) r->val = NULL;
        int rc = train_validate(r, agg[1] > 0 ? agg[0] / agg[1] : NAN, dt, t->imgs * dist_world() / dt);
        r->val = keep;
        if (rc != 0) return 1;
    }
    if (dist_any_max(train_save(r, "last.h5") != 0)) return 1;   /* root writes; every rank stops */
    train_rotate(r, epoch + 1);
    return 0;
}

int train_epochs(TrainRun *r) {
    int stopping = 0;
    for (int epoch = r->st.epoch; epoch < r->o.epochs; epoch++) {
        r->st.epoch = epoch;
        int bad = loader_start_epoch_at(r->train, epoch, r->st.batch) != 0;
        if (bad) fprintf(stderr, "mixtape train: %s\n", loader_error(r->train));
        if (train_agree(r, bad, "the start of the epoch")) return 1;
        EpochTally t;
        tally_start(r, &t, epoch);
        int rc;
        if (epoch_batches(r, &t, epoch, &stopping, &rc) == EPOCH_EXIT) return rc;
        if (end_epoch(r, &t, epoch) != 0) return 1;
        if (stopping) return stop_message(r, stopping);
    }
    return 0;
}
