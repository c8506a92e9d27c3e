#include "train/train_opts.h"
#include "core/gemm.h"
#include "core/threads.h"
#include "train/data_flags.h"
#include "train/model_io.h"
#include "train/run_dir.h"
#include "train/train_ckpt.h"
#include "data/source_util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t n, const char *fmt, const char *a, const char *b) {
    snprintf(err, n, fmt, a, b);
    return -1;
}

static void usage(FILE *f) {
    fprintf(f, "usage: mixtape train --model M --train DATA [--val DATA] --output DIR [flags]\n"
               "       mixtape train --resume DIR|C.h5 [flags]\n"
               "       mixtape train --config DIR/args.yaml [flags]   (flags given later win)\n"
               "       mixtape train --list-flags   (every flag as one JSON object a line)\n\n"
               "DATA: shard brace pattern, shard directory, list file, ImageFolder dir or .h5.\n"
               "--dry-run parses and checks the flags, writes DIR/args.yaml (or prints it without\n"
               "--output) and exits without training.\n");
}

#define BIG 1000000000000L /* 1e12: step / sample counts */
#define LR_MAX 1e38         /* any finite fp32 learning rate (a huge one provokes a NaN on purpose) */

int train_opts_parse(Args *a, TrainOpts *o, char *err, size_t errn) {
    memset(o, 0, sizeof *o);
    char e2[1024], buf[512], def[128];
    args_group(a, "run");
    const char *cfg = args_string(a, "--config", "-c", NULL, "YAML of flags (e.g. a run's args.yaml); later flags win");
    args_norecord(a, "--config");
    if (cfg && args_load_yaml(a, cfg) != 0) return fail(err, errn, "%s%s", a->err, "");
    o->dry_run = args_bool(a, "--dry-run", 0, "check the flags, write args.yaml, do not train");
    args_norecord(a, "--dry-run");
    o->resume = args_string(a, "--resume", NULL, NULL,
                            "continue a run exactly (weights, optimizer, EMA, schedule, data position)");
    o->output = args_string(a, "--output", NULL, NULL, "run directory (checkpoints, args.yaml, metrics.jsonl)");
    o->initial_checkpoint = args_string(a, "--initial-checkpoint", NULL, NULL,
                                        "fine-tune: load matching keys, adapt the stem (--in-chans) and ViT "
                                        "pos_embed (--img-size), re-initialise other shapes");
    o->epochs = (int)args_int_range(a, "--epochs", NULL, 300, 1, 1000000, "epochs");
    o->max_steps = args_int_range(a, "--max-steps", NULL, 0, 0, BIG, "stop after this many optimizer steps (0 = no limit)");
    o->seed = (uint64_t)args_int_range(a, "--seed", NULL, 42, 0, 4294967295L, "seed of init, data order and augmentation");
    o->threads = (int)args_int_range(a, "--threads", NULL, 0, 0, MT_MAX_THREADS, "threads (0: OMP_NUM_THREADS or all cores)");
    const char *prec = args_choice(a, "--precision", NULL, "fp32", "fp32|bf16|auto",
                                   "bf16: GEMM inputs rounded to bf16, fp32 accumulation and master weights; auto: "
                                   "the faster for this CPU and model, timed first and recorded in args.yaml");
    o->precision = !strcmp(prec, "bf16") ? MT_BF16 : MT_FP32;
    o->precision_auto = !strcmp(prec, "auto");
    o->grad_checkpointing = args_bool(a, "--grad-checkpointing", 0,
                                      "recompute each block's activations in backward (less memory, ~1/3 more compute)");
    o->log_interval = args_int_range(a, "--log-interval", NULL, 50, 0, BIG, "steps between log lines (0 = none)");
    o->checkpoint_every = args_int_range(a, "--checkpoint-every", NULL, 0, 0, BIG,
                                         "steps between last.h5 saves (0 = at epoch ends only)");
    o->keep_last = (int)args_int_range(a, "--keep-last", NULL, 0, 0, 1000000,
                                       "also keep epoch-N.h5 of the last K epochs (0 = none)");
    o->val_every = (int)args_int_range(a, "--val-every", NULL, 1, 1, 1000000, "epochs between validations");
    o->checkpoint_hist = (int)args_int_range(a, "--checkpoint-hist", NULL, 0, 0, TRAIN_HIST_MAX,
                                             "keep checkpoint-N.h5 of the K best epochs by --eval-metric (0 = none)");
    o->eval_metric = args_choice(a, "--eval-metric", NULL, "top1", "top1|top5|loss",
                                 "metric of best.h5 and --checkpoint-hist (of the EMA weights when on)");
    o->experiment = args_string(a, "--experiment", NULL, NULL,
                                "run directory --output/NAME (default ./output/train/NAME; -1, -2... when taken)");
    o->overwrite = args_bool(a, "--overwrite", 0, "replace the run already in --output (deletes its files)");

    o->model_given = args_has(a, "--model", NULL);
    if (o->model_given || !o->resume || args_describing(a)) {
        if (model_config_from_args(a, &o->model, e2, sizeof e2) != 0) return fail(err, errn, "%s%s", e2, "");
    }

    args_group(a, "data");
    const char *dd = args_string(a, "--data-dir", NULL, NULL, "D: --train D/train --val D/val");
    o->train_spec = args_string(a, "--train", NULL, NULL, "training data");
    o->val_spec = args_string(a, "--val", NULL, NULL, "validation data (optional)");
    if (dd) {
        if (!o->train_spec) { snprintf(o->dd_train, sizeof o->dd_train, "%s/train", dd); o->train_spec = o->dd_train; }
        if (!o->val_spec) { snprintf(o->dd_val, sizeof o->dd_val, "%s/val", dd); o->val_spec = o->dd_val; }
    }
    o->batch_size = (int)args_int_range(a, "--batch-size", "-b", 128, 1, 1 << 20, "samples per batch (per rank)");
    o->workers = (int)args_int_range(a, "--workers", "-j", 0, 0, 1024, "decode threads (0: automatic)");

    args_group(a, "optimizer");
    optim_config_default(&o->opt);
    o->opt.opt = args_choice(a, "--opt", NULL, o->opt.opt, "adamw|adam|lamb|sgd|nesterov|momentum", "optimizer");
    o->lr = (float)args_float_range(a, "--lr", NULL, NAN, 1e-12, LR_MAX, "learning rate (default: from --lr-base)");
    if (isnan(o->lr)) o->lr = -1;
    o->lr_base = (float)args_float_range(a, "--lr-base", NULL, 1e-3, 1e-12, LR_MAX,
                                         "lr for a global batch of --lr-base-size, scaled to the real one");
    o->lr_base_size = args_int_range(a, "--lr-base-size", NULL, 1024, 1, 1L << 30, "batch size --lr-base refers to");
    o->lr_base_scale = args_choice(a, "--lr-base-scale", NULL, NULL, "linear|sqrt",
                                   "lr-base scaling (default: sqrt for adam/lamb, linear otherwise)");
    o->opt.weight_decay = args_float_range(a, "--weight-decay", NULL, o->opt.weight_decay, 0, 100, "weight decay");
    o->opt.eps = args_float_range(a, "--opt-eps", NULL, o->opt.eps, 1e-30, 1, "adam/lamb epsilon");
    snprintf(def, sizeof def, "%.9g,%.9g", o->opt.beta1, o->opt.beta2);
    const char *betas = args_list(a, "--opt-betas", def, 0, 0.999999999, "adam/lamb beta1 beta2", buf, sizeof buf);
    if (betas) {
        char *end;
        o->opt.beta1 = strtod(betas, &end);
        if (*end != ',') return fail(err, errn, "mixtape train: --opt-betas wants two numbers like 0.9,0.999, got '%s'%s", betas, "");
        const char *s2 = end + 1;
        o->opt.beta2 = strtod(s2, &end);
        if (end == s2 || *end)
            return fail(err, errn, "mixtape train: --opt-betas wants two numbers like 0.9,0.999, got '%s'%s", betas, "");
    }
    o->opt.momentum = args_float_range(a, "--momentum", NULL, o->opt.momentum, 0, 0.999999, "sgd momentum");
    o->opt.lamb_max_grad_norm = args_float_range(a, "--lamb-max-grad-norm", NULL, o->opt.lamb_max_grad_norm, 0, 1e6,
                                                 "lamb: global grad-norm clip inside the step (0 = off)");
    o->clip_grad = (float)args_float_range(a, "--clip-grad", NULL, 0, 0, 1e6, "gradient clipping threshold (0 = off)");
    o->clip_mode = args_choice(a, "--clip-mode", NULL, "norm", "norm|value", "clip the global norm or each value");
    o->grad_accum = (int)args_int_range(a, "--grad-accum-steps", NULL, 1, 1, 1000000, "batches per optimizer step");
    o->bucket_mb = args_float_range(a, "--bucket-mb", NULL, 0, 0, 4096,
                                    "MPI: gradient bucket size in MB (0: env MIXTAPE_BUCKET_MB, else 4)");
    o->opt.freeze = args_string(a, "--freeze", NULL, NULL, "parameter name patterns to freeze, comma separated");
    o->opt.lr_mult = args_string(a, "--lr-mult", NULL, NULL, "PATTERN=MULT,... lr multipliers (first match wins)");
    o->opt.no_wd = args_string(a, "--no-wd", NULL, NULL, "extra no-weight-decay name patterns");
    o->opt.wd_all = args_bool(a, "--wd-all", 0, "weight decay on every parameter (also 1-D and biases)");

    args_group(a, "schedule");
    sched_config_default(&o->sched);
    o->sched.sched = args_choice(a, "--sched", NULL, o->sched.sched, "cosine|linear|step|constant", "lr schedule");
    o->sched.min_lr = (float)args_float_range(a, "--min-lr", NULL, o->sched.min_lr, 0, LR_MAX, "lr at the end of decay");
    o->sched.warmup_lr = (float)args_float_range(a, "--warmup-lr", NULL, o->sched.warmup_lr, 0, LR_MAX, "lr warmup starts at");
    o->sched.warmup_epochs = (float)args_float_range(a, "--warmup-epochs", NULL, o->sched.warmup_epochs, 0, 1e6,
                                                     "warmup length in epochs");
    o->sched.warmup_steps = args_int_range(a, "--warmup-steps", NULL, o->sched.warmup_steps, 0, BIG,
                                           "warmup length in steps (overrides --warmup-epochs when > 0)");
    o->sched.decay_epochs = (float)args_float_range(a, "--decay-epochs", NULL, o->sched.decay_epochs, 1e-3, 1e6,
                                                    "step schedule: epochs between decays");
    o->sched.decay_rate = (float)args_float_range(a, "--decay-rate", NULL, o->sched.decay_rate, 0, 1,
                                                  "step schedule: lr factor per decay");
    o->sched.warmup_prefix = args_bool(a, "--warmup-prefix", 0, "warmup before the schedule instead of inside it");

    args_group(a, "ema");
    o->model_ema = args_bool(a, "--model-ema", 0, "keep an exponential moving average of the weights");
    o->model_ema_decay = (float)args_float_range(a, "--model-ema-decay", NULL, 0.9998, 0, 1, "EMA decay per step");
    o->model_ema_warmup = args_bool(a, "--model-ema-warmup", 0,
                                    "EMA decay warmup (timm ModelEmaV3): min(decay, 1 - (1 + t)^(-2/3))");

    loader_config_default(&o->train_data, 1);
    loader_config_default(&o->val_data, 0);
    if (data_flags_parse(a, &o->train_data.aug, e2, sizeof e2) != 0) return fail(err, errn, "%s%s", e2, "");
    if (data_flags_loader(a, &o->train_data, e2, sizeof e2) != 0) return fail(err, errn, "%s%s", e2, "");
    o->data_convert = args_bool(a, "--data-convert", 0,
                                "allow grey<->RGB conversion and upsampling of data that does not fit the model");
    static const char *const given[4] = {"--mean", "--std", "--interpolation", "--crop-pct"};
    for (int i = 0; i < 4; i++) o->data_given[i] = args_has(a, given[i], NULL);
    data_flags_permute_patch(&o->train_data.aug.permute, &o->model);
    o->smoothing = o->train_data.aug.smoothing;
    o->val_data.aug = o->train_data.aug;
    if (a->failed) return fail(err, errn, "%s%s", a->err, "");
    if (args_describing(a)) return 0;

    if (!o->resume && !o->train_spec)
        return fail(err, errn, "mixtape train: give the training data with --train S or --data-dir D%s%s", "", "");
    if (o->experiment && !o->experiment[0]) o->experiment = NULL; /* timm's args.yaml says experiment: '' */
    if (o->experiment && (strchr(o->experiment, '/') || !strcmp(o->experiment, ".") ||
                          !strcmp(o->experiment, "..") || strlen(o->experiment) > 200))
        return fail(err, errn, "mixtape train: --experiment wants a plain name (no '/'), got '%s'%s", o->experiment, "");
    if (!o->resume && !o->output && !o->experiment && !o->dry_run)
        return fail(err, errn, "mixtape train: give the run directory with --output DIR (or --experiment NAME)%s%s", "", "");
    return 0;
}

int train_opts_early(int argc, char **argv) {
    int act = 0;
    for (int i = 0; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || !strcmp(argv[i], "--list-flags") ||
            !strncmp(argv[i], "--dry-run", 9))
            act = 1;
    if (!act) return -1;
    Args a;
    args_init(&a, "train", argc, argv);
    if (a.describe == ARGS_CHECK) { /* train's own --dry-run also writes args.yaml */
        a.describe = ARGS_RUN;
        memset(a.used, 0, (size_t)a.argc);
        if (a.dashdash >= 0) a.used[a.dashdash] = 1;
    }
    TrainOpts *o = calloc(1, sizeof *o);
    char err[2048];
    int rc = 2;
    if (!o) { fprintf(stderr, "mixtape train: out of memory\n"); args_free(&a); return 1; }
    if (train_opts_parse(&a, o, err, sizeof err) != 0) fprintf(stderr, "%s\n", err);
    else if ((rc = args_end(&a, usage)) == 1) rc = 0;
    else if (rc == 0 && !o->dry_run) rc = -1; /* --dry-run=false: a real run */
    else if (rc == 0 && !o->output) args_dump_yaml(&a, stdout);
    else if (rc == 0) {
        char p[1200], names[256];
        snprintf(p, sizeof p, "%s/args.yaml", o->output);
        rundir_run_files(o->output, names, sizeof names);
        if (names[0]) /* a run's args.yaml is its record: a dry run does not replace it */
            printf("mixtape train: dry run: flags are valid; %s already holds a run (%s): its args.yaml is kept, "
                   "and a run there needs --resume or --overwrite\n", o->output, names);
        else if (src_mkdirs(o->output, err, sizeof err) != 0 || args_save_yaml(&a, p, err, sizeof err) != 0) {
            fprintf(stderr, "mixtape train: --output %s: %s\n", o->output, err);
            rc = 1;
        } else printf("mixtape train: dry run: flags are valid; wrote %s\n", p);
    }
    free(o);
    args_free(&a);
    return rc;
}
