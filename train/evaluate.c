#include "train/evaluate.h"
#include "train/dist.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int eval_in_topk(const float *z, int K, int label, int k) {
    /* label is in the top k when fewer than k classes beat it (ties go to the lower index, as torch.topk) */
    int better = 0;
    for (int j = 0; j < K; j++)
        if (!isfinite(z[j])) return 0; /* NaN compares false: it would "win" every comparison */
    for (int j = 0; j < K; j++)
        if (z[j] > z[label] || (z[j] == z[label] && j < label)) better++;
    return better < k;
}

void eval_result_free(EvalResult *r) {
    free(r->class_count);
    free(r->class_correct);
    free(r->confusion);
    memset(r, 0, sizeof *r);
}

/* Fixed-point loss: integer sums are associative, so any split over ranks adds up to
 * the same total as one process. */
#define LOSS_ONE 4294967296.0   /* 2^32 */

static void loss_add(EvalResult *r, double l) {
    if (!(l >= 0 && l < 2147483648.0)) { r->n_loss_overflow++; return; }   /* also NaN */
    int64_t q = (int64_t)llround(l * LOSS_ONE);
    r->loss_hi += q >> 32;
    r->loss_lo += q & 0xffffffff;
}

void eval_result_finish(EvalResult *r) {
    if (r->n <= 0) { r->loss = NAN; r->top1 = r->top5 = 0; return; }   /* no figure, not 0 */
    __int128 sum = ((__int128)r->loss_hi << 32) + r->loss_lo;
    r->loss = r->nonfinite ? NAN : r->n_loss_overflow ? INFINITY : (double)sum / LOSS_ONE / (double)r->n;
    r->top1 = (double)r->n_top1 / (double)r->n;
    r->top5 = (double)r->n_top5 / (double)r->n;
}

void eval_result_reduce(EvalResult *r) {
    if (dist_world() > 1) {
        int64_t s[7] = {r->n, r->n_top1, r->n_top5, r->loss_hi, r->loss_lo, r->n_loss_overflow, r->nonfinite};
        dist_allreduce_sum_i64(s, 7);
        r->n = s[0]; r->n_top1 = s[1]; r->n_top5 = s[2];
        r->loss_hi = s[3]; r->loss_lo = s[4]; r->n_loss_overflow = s[5]; r->nonfinite = s[6];
        size_t K = (size_t)r->num_classes;
        dist_allreduce_sum_long(r->class_count, K);
        dist_allreduce_sum_long(r->class_correct, K);
        if (r->confusion) dist_allreduce_sum_long(r->confusion, K * K);
    }
    eval_result_finish(r);
}

int evaluate(Model *m, Ctx *c, batch_next_fn next, void *ud, int want_confusion,
             void (*on_logits)(void *ud, const float *logits, const Batch *b, int k), void *logits_ud,
             EvalResult *r, char *err, size_t errn) {
    int K = m->cfg.num_classes;
    memset(r, 0, sizeof *r);
    r->num_classes = K;
    r->class_count = calloc((size_t)K, sizeof(long));
    r->class_correct = calloc((size_t)K, sizeof(long));
    if (want_confusion) r->confusion = calloc((size_t)K * K, sizeof(long));
    if (!r->class_count || !r->class_correct || (want_confusion && !r->confusion)) {
        snprintf(err, errn, "evaluate: out of memory for %d classes", K);
        eval_result_free(r);
        return -1;
    }
    int saved_grad = c->grad_enabled, saved_train = c->training;
    c->grad_enabled = 0;
    c->training = 0;
    int rc = 0;
    Batch b;
    int got;
    while ((got = next(ud, &b)) == 1) {
        mt_ctx_reset(c);
        int shape[4] = {b.n, b.c, b.h, b.w};
        Tensor *x = mt_wrap(c, b.images, 4, shape);
        Tensor *logits = model_forward(c, m, x);
        if (!logits) { snprintf(err, errn, "%s", c->err); rc = -1; break; }
        if (on_logits) on_logits(logits_ud, logits->data, &b, K);
        for (int i = 0; i < b.n; i++) {
            int y = b.labels ? b.labels[i] : -1;
            if (y < 0) continue;
            if (y >= K) {
                snprintf(err, errn, "evaluate: label %d of sample %d is outside the model's %d classes", y, i, K);
                rc = -1;
                break;
            }
            const float *z = logits->data + (size_t)i * K;
            int finite = 1;
            for (int j = 0; j < K && finite; j++) finite = isfinite(z[j]);
            r->n++;
            r->class_count[y]++;
            if (!finite) { /* never correct, and the mean loss becomes NaN */
                r->nonfinite++;
                continue;
            }
            float mx = z[0];
            for (int j = 1; j < K; j++) mx = z[j] > mx ? z[j] : mx;
            double se = 0;
            for (int j = 0; j < K; j++) se += exp((double)z[j] - mx);
            loss_add(r, log(se) + mx - z[y]);
            int best = 0;
            for (int j = 1; j < K; j++)
                if (z[j] > z[best]) best = j;
            if (best == y) { r->n_top1++; r->class_correct[y]++; }
            if (eval_in_topk(z, K, y, K < 5 ? K : 5)) r->n_top5++;
            if (r->confusion) r->confusion[(size_t)y * K + best]++;
        }
        if (rc) break;
    }
    if (got < 0 && !rc) { snprintf(err, errn, "evaluate: the data source failed"); rc = -1; }
    c->grad_enabled = saved_grad;
    c->training = saved_train;
    eval_result_finish(r);
    return rc;
}

int eval_result_check(const EvalResult *r, char *err, size_t errn) {
    if (r->n <= 0) {
        snprintf(err, errn, "no usable samples (none with a label in the model's classes was evaluated)");
        return -1;
    }
    if (r->nonfinite > 0) {
        snprintf(err, errn, "the loss is not finite: %ld of %ld samples have NaN/Inf logits (counted as wrong)",
                 r->nonfinite, r->n);
        return -1;
    }
    if (!isfinite(r->loss)) {
        snprintf(err, errn, "the loss is not finite: %ld of %ld samples have a loss beyond 2^31", r->n_loss_overflow,
                 r->n);
        return -1;
    }
    return 0;
}
