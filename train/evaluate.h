/* Evaluation of a model over a stream of batches: mean cross-entropy, top-1,
 * top-5, per-class accuracy and optionally the confusion matrix. Used by
 * `mixtape eval` and by validation inside `mixtape train`. */
#pragma once
#include "data/batch.h"
#include "layers/model.h"
#include <stdint.h>

/* 1 = a batch, 0 = end, -1 = error (message in err of the source). */
typedef int (*batch_next_fn)(void *ud, Batch *b);

typedef struct EvalResult {
    long n;                 /* samples with a known label */
    long nonfinite;         /* of those, samples with a NaN/Inf logit: never correct, loss NaN */
    double loss, top1, top5;  /* mean loss (NaN when nonfinite > 0 or n == 0), fractions in [0,1]
                               * (set by eval_result_finish) */
    /* Exact sums behind them, so that shares evaluated on several ranks add up to the
     * single-process figures bit for bit, whatever the split: counts, and the loss as
     * a fixed-point sum (2^-32 units, split in two words so ranks can add it as int64). */
    long n_top1, n_top5;
    int64_t loss_hi, loss_lo;   /* sum = loss_hi * 2^32 + loss_lo, in 2^-32 units */
    long n_loss_overflow;       /* samples with finite logits whose loss is >= 2^31 */
    int num_classes;
    long *class_count, *class_correct;  /* (num_classes) */
    long *confusion;        /* (num_classes, num_classes) rows = truth, or NULL */
} EvalResult;

/* Runs the model in no-grad, eval mode (no dropout / drop path). Logits of
 * every batch may be handed to on_logits (may be NULL), e.g. for `predict`.
 * 0, or -1 with err (op error, label out of range, source error). A result
 * is usable only when eval_result_check() accepts it. */
int evaluate(Model *m, Ctx *c, batch_next_fn next, void *ud, int want_confusion,
             void (*on_logits)(void *ud, const float *logits, const Batch *b, int k), void *logits_ud,
             EvalResult *r, char *err, size_t errn);
void eval_result_free(EvalResult *r);
/* Mean loss and fractions from the exact sums (evaluate calls it; call again after
 * eval_result_reduce). */
void eval_result_finish(EvalResult *r);
/* Adds every rank's share (counts, per-class counts, confusion, loss sums) on every
 * rank, then finishes. Identity with one process. Every rank must call it. */
void eval_result_reduce(EvalResult *r);
/* 0 when the result means something: at least one labelled sample and a
 * finite loss. Else -1 with err saying which (zero samples, or how many
 * samples had non-finite logits). */
int eval_result_check(const EvalResult *r, char *err, size_t errn);
/* Top-k correctness of one row of logits (0 when any logit is not finite). */
int eval_in_topk(const float *logits, int k_classes, int label, int k);
