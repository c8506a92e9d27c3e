/* Everything `mixtape train` is told, resolved from flags (and --config YAML). */
#pragma once
#include "data/loader.h"
#include "layers/model.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "train/args.h"

typedef struct TrainOpts {
    ModelConfig model;
    int model_given;          /* --model was on the command line */
    const char *train_spec, *val_spec;
    int batch_size, epochs, workers, threads;
    long max_steps;           /* stop after this many optimizer steps (0 = no limit) */
    uint64_t seed;
    OptimConfig opt;
    SchedConfig sched;
    float lr;                 /* < 0: from --lr-base */
    float lr_base;
    long lr_base_size;
    const char *lr_base_scale;
    float clip_grad;
    const char *clip_mode;    /* "norm" | "value" */
    int grad_accum;
    double bucket_mb;         /* MPI gradient buckets; 0 = MIXTAPE_BUCKET_MB or 4 */
    int precision;            /* MT_FP32 | MT_BF16 (core/gemm.h) */
    int precision_auto;       /* --precision auto: resolved into precision before the run starts */
    int grad_checkpointing;   /* recompute each block's activations in backward */
    int model_ema;
    float model_ema_decay;
    int model_ema_warmup;     /* timm ModelEmaV3 decay warmup */
    float smoothing;
    LoaderConfig train_data, val_data;
    int data_convert;         /* --data-convert: allow channel conversion / upsampling of the data */
    int data_given[4];        /* --mean, --std, --interpolation, --crop-pct were given */
    const char *output;
    const char *resume;
    const char *initial_checkpoint;
    long log_interval;
    long checkpoint_every;    /* steps; 0 = only at epoch ends */
    int keep_last;
    int checkpoint_hist;      /* keep the K best checkpoint-<epoch>.h5 (0 = none) */
    const char *eval_metric;  /* "top1" | "top5" | "loss": best.h5 and --checkpoint-hist */
    const char *experiment;   /* run dir = (--output or ./output/train)/NAME[-N] */
    int overwrite;            /* replace a run already in --output */
    int val_every;            /* epochs */
    int dry_run;              /* --dry-run: validate, write args.yaml, no training */
    char dd_train[1024], dd_val[1024];  /* --data-dir D resolved to D/train, D/val */
} TrainOpts;

/* Declares every train flag, parses and validates; 0 ok, -1 with err (exit code 2).
 * In a describe pass (--help / --list-flags) only the declarations happen. */
int train_opts_parse(Args *a, TrainOpts *o, char *err, size_t errn);
/* --help, --list-flags and --dry-run, handled before any run setup: the exit code,
 * or -1 when the command line asks for none of them. */
int train_opts_early(int argc, char **argv);
