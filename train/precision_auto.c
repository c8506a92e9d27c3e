/* --precision auto: times a few training steps of the run's model in fp32 and in bf16 and
 * keeps the faster. The steps run on a model, optimizer and context of their own (random
 * weights and images), all freed before the run builds its state, so the run's weights,
 * optimizer state and random streams are exactly those of `--precision <choice>`. */
#include "core/clock.h"
#include "train/precision_auto.h"
#include "core/gemm.h"
#include "core/params.h"
#include "optim/optimizer.h"
#include "train/dist.h"
#include "train/synthetic_batch.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Timed pairs (one fp32 step, one bf16 step) after one warm-up step each: at most this many,
 * and no new pair once this much time has gone into them. */
#define AUTO_PAIRS 3
#define AUTO_BUDGET_S 3.0
/* bf16 rounds every GEMM input: it is taken only when clearly faster than fp32. */
#define AUTO_MARGIN 1.05

/* One training step (forward, cross-entropy, backward, AdamW) in precision p; seconds, or -1. */
static double timed_step(Ctx *c, Model *m, Optimizer *opt, const SyntheticBatch *sb, int p) {
    double t0 = mt_seconds();
    c->precision = p;
    mt_ctx_reset(c);
    c->training = 1;
    Tensor *x = mt_wrap(c, sb->images, 4, sb->shape);
    Tensor *loss = mt_cross_entropy(c, model_forward(c, m, x), sb->labels, NULL, 0);
    if (!loss || mt_backward(c, loss) != 0) return -1;
    optim_step(opt);
    optim_zero_grad(opt);
    return mt_seconds() - t0;
}

int precision_auto_pick(const ModelConfig *cfg, int batch, int grad_ckpt, PrecisionPick *pick, char *err,
                        size_t errn) {
    memset(pick, 0, sizeof *pick);
    pick->precision = MT_FP32;
    if (!mt_gemm_bf16_native()) return 0; /* bf16 would be emulated through fp32: never faster */
    Model m;
    if (model_build(&m, cfg, err, errn) != 0) return -1;
    model_init(&m, 1);
    OptimConfig oc;
    optim_config_default(&oc);
    oc.opt = "adamw";
    oc.lr = 1e-6f;
    Optimizer opt;
    if (optim_create(&opt, &m.params, &oc, err, errn) != 0) { model_free(&m); return -1; }
    SyntheticBatch sb;
    int rc = synthetic_batch(&sb, cfg, batch, 0x2545f4914f6cdd1dull);
    int oom = rc != 0;
    if (oom) snprintf(err, errn, "--precision auto: out of memory for a batch of %d", batch);
    Ctx c;
    mt_ctx_init(&c, (size_t)1 << 20);
    c.recycle_activations = 1;
    c.grad_checkpointing = grad_ckpt;
    const int precs[2] = {MT_FP32, MT_BF16};
    double best[2] = {1e300, 1e300}, spent = 0;
    for (int p = 0; rc == 0 && p < 2; p++) /* warm-up: the arena grows, pages are touched */
        if (timed_step(&c, &m, &opt, &sb, precs[p]) < 0) rc = -1;
    for (int pair = 0; rc == 0 && pair < AUTO_PAIRS && (pair == 0 || spent < AUTO_BUDGET_S); pair++)
        for (int p = 0; rc == 0 && p < 2; p++) {
            double t = timed_step(&c, &m, &opt, &sb, precs[p]);
            if (t < 0) rc = -1;
            else {
                spent += t;
                if (t < best[p]) best[p] = t;
                pick->steps++;
            }
        }
    if (rc != 0 && !oom) snprintf(err, errn, "--precision auto: timing step failed: %s", c.err);
    if (rc == 0) {
        pick->timed = 1;
        pick->rate_fp32 = batch / best[0];
        pick->rate_bf16 = batch / best[1];
        pick->seconds = spent;
        if (pick->rate_bf16 > AUTO_MARGIN * pick->rate_fp32) pick->precision = MT_BF16;
    }
    mt_ctx_free(&c);
    optim_free(&opt);
    model_free(&m);
    synthetic_batch_free(&sb);
    return rc;
}

void precision_auto_describe(const PrecisionPick *p, char *buf, size_t n) {
    if (!p->timed)
        snprintf(buf, n, "--precision auto: fp32 (this CPU has no AVX512-BF16: bf16 would be emulated, not timed)");
    else
        snprintf(buf, n, "--precision auto: %s (train step, best of %d: fp32 %.1f img/s, bf16 %.1f img/s, "
                         "bf16/fp32 %.2fx; bf16 is taken from %.2fx)",
                 p->precision == MT_BF16 ? "bf16" : "fp32", p->steps / 2, p->rate_fp32, p->rate_bf16,
                 p->rate_bf16 / p->rate_fp32, AUTO_MARGIN);
}

int precision_auto_agree(int precision) {
    int mine = precision == MT_BF16;
    /* rank 0's timing decides for every rank (the others contribute 0 to the max) */
    return dist_any_max(dist_is_root() ? mine : 0) ? MT_BF16 : MT_FP32;
}

int precision_auto_train(Args *a, const ModelConfig *cfg, int batch, int grad_ckpt, int resuming, int root,
                         int *precision) {
    if (resuming) {
        fprintf(stderr, "mixtape train: --precision auto cannot continue a checkpoint without its run's args.yaml "
                        "(the choice is recorded there); give --precision fp32 or bf16 as the run had it\n");
        return 2;
    }
    PrecisionPick p;
    char err[2048];
    int rc = precision_auto_pick(cfg, batch, grad_ckpt, &p, err, sizeof err) != 0;
    if (dist_any_max(rc)) {
        if (rc) fprintf(stderr, "mixtape train: %s\n", err);
        return 1;
    }
    *precision = precision_auto_agree(p.precision);
    if (root) {
        precision_auto_describe(&p, err, sizeof err);
        printf("%s\n", err);
        fflush(stdout);
    }
    args_record(a, "--precision", *precision == MT_BF16 ? "bf16" : "fp32");
    return 0;
}
