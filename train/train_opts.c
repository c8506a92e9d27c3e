#include "train/train_opts.h"
#include "core/gemm.h"
#include "train/data_flags.h"
#include "train/model_io.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t n, const char *fmt, const char *a, const char *b) {
    snprintf(err, n, fmt, a, b);
    return -1;
}

/* "0.9,0.999" or "0.9 0.999" */
static int parse_pair(const char *s, double *a, double *b) {
    char *end;
    *a = strtod(s, &end);
    if (end == s) return -1;
    while (*end == ',' || *end == ' ') end++;
    const char *s2 = end;
    *b = strtod(s2, &end);
    return (end == s2 || *end) ? -1 : 0;
}

void train_opts_help(FILE *f) {
    fprintf(f,
            "usage: mixtape train --model M --train DATA [--val DATA] --output DIR [flags]\n"
            "       mixtape train --resume DIR|C.h5 [flags]\n\n"
            "data:      --train S --val S | --data-dir D (D/train, D/val)   -b/--batch-size 128  -j/--workers N\n"
            "           (S: shard brace pattern, shard directory, list file, ImageFolder dir or .h5)\n"
            "run:       --epochs 300 --seed 42 --output DIR --threads N --max-steps N --config FILE.yaml\n"
            "           --precision fp32|bf16 (bf16: GEMM inputs rounded to bf16, fp32 accumulation, fp32\n"
            "           master weights and optimizer state)\n"
            "           --grad-checkpointing (each block's activations recomputed in backward: less memory)\n"
            "           --log-interval 50 --checkpoint-every STEPS --keep-last K --val-every 1\n"
            "optimizer: --opt adamw|adam|lamb|sgd|momentum --lr LR | --lr-base 1e-3 --lr-base-size 1024\n"
            "           --lr-base-scale linear|sqrt --weight-decay 0.05 --opt-eps 1e-8 --opt-betas 0.9,0.999\n"
            "           --momentum 0.9 --clip-grad NORM --clip-mode norm|value --grad-accum-steps 1\n"
            "           --freeze PATTERNS --lr-mult PATTERN=MULT,... --no-wd PATTERNS --wd-all\n"
            "schedule:  --sched cosine|linear|step|constant --min-lr 0 --warmup-lr 1e-5 --warmup-epochs 5\n"
            "           --warmup-steps N --decay-epochs 90 --decay-rate 0.1 --warmup-prefix\n"
            "ema:       --model-ema --model-ema-decay 0.9998\n"
            "fine-tune: --initial-checkpoint C.h5 (matching keys loaded, a differently shaped head re-initialised)\n"
            "resume:    --resume DIR|C.h5 (continues exactly: weights, optimizer, EMA, schedule, data position)\n");
    data_flags_help(f);
    model_overrides_help(f);
}

int train_opts_parse(Args *a, TrainOpts *o, char *err, size_t errn) {
    memset(o, 0, sizeof *o);
    char e2[1024];
    const char *cfg = args_str(a, "--config", "-c", NULL);
    if (cfg && args_load_yaml(a, cfg) != 0) return fail(err, errn, "%s%s", a->err, "");

    o->resume = args_str(a, "--resume", NULL, NULL);
    o->model_given = args_has(a, "--model", NULL);
    if (o->model_given || !o->resume) {
        if (model_config_from_args(a, &o->model, e2, sizeof e2) != 0) return fail(err, errn, "%s%s", e2, "");
    }
    const char *dd = args_str(a, "--data-dir", NULL, NULL);
    o->train_spec = args_str(a, "--train", NULL, NULL);
    o->val_spec = args_str(a, "--val", NULL, NULL);
    if (dd) {
        if (!o->train_spec) { snprintf(o->dd_train, sizeof o->dd_train, "%s/train", dd); o->train_spec = o->dd_train; }
        if (!o->val_spec) { snprintf(o->dd_val, sizeof o->dd_val, "%s/val", dd); o->val_spec = o->dd_val; }
    }
    o->batch_size = (int)args_int(a, "--batch-size", "-b", 128);
    o->epochs = (int)args_int(a, "--epochs", NULL, 300);
    o->workers = (int)args_int(a, "--workers", "-j", 0);
    o->threads = (int)args_int(a, "--threads", NULL, 0);
    o->max_steps = args_int(a, "--max-steps", NULL, 0);
    o->seed = (uint64_t)args_int(a, "--seed", NULL, 42);
    o->output = args_str(a, "--output", NULL, NULL);
    o->initial_checkpoint = args_str(a, "--initial-checkpoint", NULL, NULL);
    o->log_interval = args_int(a, "--log-interval", NULL, 50);
    o->checkpoint_every = args_int(a, "--checkpoint-every", NULL, 0);
    o->keep_last = (int)args_int(a, "--keep-last", NULL, 0);
    o->val_every = (int)args_int(a, "--val-every", NULL, 1);

    optim_config_default(&o->opt);
    o->opt.opt = args_str(a, "--opt", NULL, "adamw");
    o->opt.weight_decay = args_float(a, "--weight-decay", NULL, 0.05);
    o->opt.eps = args_float(a, "--opt-eps", NULL, 1e-8);
    const char *betas = args_str(a, "--opt-betas", NULL, NULL);
    if (betas && parse_pair(betas, &o->opt.beta1, &o->opt.beta2) != 0)
        return fail(err, errn, "mixtape train: --opt-betas wants two numbers like 0.9,0.999, got '%s'%s", betas, "");
    o->opt.momentum = args_float(a, "--momentum", NULL, 0.9);
    o->opt.freeze = args_str(a, "--freeze", NULL, NULL);
    o->opt.lr_mult = args_str(a, "--lr-mult", NULL, NULL);
    o->opt.no_wd = args_str(a, "--no-wd", NULL, NULL);
    o->opt.wd_all = args_flag(a, "--wd-all", 0);

    o->lr = (float)args_float(a, "--lr", NULL, -1);
    o->lr_base = (float)args_float(a, "--lr-base", NULL, 1e-3);
    o->lr_base_size = args_int(a, "--lr-base-size", NULL, 1024);
    o->lr_base_scale = args_str(a, "--lr-base-scale", NULL, NULL);
    sched_config_default(&o->sched);
    o->sched.sched = args_str(a, "--sched", NULL, "cosine");
    o->sched.min_lr = (float)args_float(a, "--min-lr", NULL, 0);
    o->sched.warmup_lr = (float)args_float(a, "--warmup-lr", NULL, 1e-5);
    o->sched.warmup_epochs = (float)args_float(a, "--warmup-epochs", NULL, 5);
    o->sched.warmup_steps = args_int(a, "--warmup-steps", NULL, 0);
    o->sched.decay_epochs = (float)args_float(a, "--decay-epochs", NULL, 90);
    o->sched.decay_rate = (float)args_float(a, "--decay-rate", NULL, 0.1);
    o->sched.warmup_prefix = args_flag(a, "--warmup-prefix", 0);

    o->clip_grad = (float)args_float(a, "--clip-grad", NULL, 0);
    o->clip_mode = args_str(a, "--clip-mode", NULL, "norm");
    o->grad_accum = (int)args_int(a, "--grad-accum-steps", NULL, 1);
    const char *prec = args_str(a, "--precision", NULL, "fp32");
    if (!strcmp(prec, "fp32")) o->precision = MT_FP32;
    else if (!strcmp(prec, "bf16")) o->precision = MT_BF16;
    else return fail(err, errn, "mixtape train: --precision must be fp32 or bf16, got '%s'%s", prec, "");
    o->grad_checkpointing = args_flag(a, "--grad-checkpointing", 0);
    o->model_ema = args_flag(a, "--model-ema", 0);
    o->model_ema_decay = (float)args_float(a, "--model-ema-decay", NULL, 0.9998);

    loader_config_default(&o->train_data, 1);
    loader_config_default(&o->val_data, 0);
    if (data_flags_parse(a, &o->train_data.aug, e2, sizeof e2) != 0) return fail(err, errn, "%s%s", e2, "");
    if (data_flags_loader(a, &o->train_data, e2, sizeof e2) != 0) return fail(err, errn, "%s%s", e2, "");
    o->smoothing = o->train_data.aug.smoothing;
    o->val_data.aug = o->train_data.aug;
    if (a->failed) return fail(err, errn, "%s%s", a->err, "");

    if (o->batch_size < 1) return fail(err, errn, "mixtape train: --batch-size must be >= 1%s%s", "", "");
    if (o->epochs < 1) return fail(err, errn, "mixtape train: --epochs must be >= 1%s%s", "", "");
    if (o->grad_accum < 1) return fail(err, errn, "mixtape train: --grad-accum-steps must be >= 1%s%s", "", "");
    if (o->lr >= 0 && !(o->lr > 0 && isfinite(o->lr)))
        return fail(err, errn, "mixtape train: --lr must be a positive finite number%s%s", "", "");
    if (strcmp(o->clip_mode, "norm") && strcmp(o->clip_mode, "value"))
        return fail(err, errn, "mixtape train: --clip-mode must be norm or value, got '%s'%s", o->clip_mode, "");
    if (!(o->model_ema_decay >= 0 && o->model_ema_decay <= 1))
        return fail(err, errn, "mixtape train: --model-ema-decay must be in [0,1]%s%s", "", "");
    if (!o->resume && !o->train_spec)
        return fail(err, errn, "mixtape train: give the training data with --train S or --data-dir D%s%s", "", "");
    if (!o->resume && !o->output)
        return fail(err, errn, "mixtape train: give the run directory with --output DIR%s%s", "", "");
    return 0;
}
