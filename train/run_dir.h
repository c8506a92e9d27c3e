/* The run directory of `mixtape train`: which files make a run, protecting a run
 * from being overwritten by another, timm's --experiment naming, and the files
 * rewritten as a whole (args.yaml, summary.csv, a trimmed metrics.jsonl) through
 * train/outfile.c (temporary name, fsync, rename), so a crash leaves the old or the new file. */
#pragma once
#include "train/args.h"
#include <stddef.h>

/* Names of the run files present in dir ("args.yaml, last.h5"), "" when none. */
void rundir_run_files(const char *dir, char *names, size_t n);
/* --overwrite: deletes the previous run's files (args.yaml, metrics.jsonl, summary.csv,
 * last.h5, best.h5, epoch-N.h5, checkpoint-N.h5), nothing else. Refuses (-1, err), before
 * deleting anything, when one of them is `input` (a file the new run reads, may be NULL).
 * check_only: only that check. */
int rundir_clear(const char *dir, const char *input, int check_only, char *err, size_t errn);
/* timm's get_outdir: parent/name, or parent/name-1, -2... when taken (up to -999).
 * The directory is not created. -1 with err when every name is taken. */
int rundir_experiment(const char *parent, const char *name, char *out, size_t n, char *err, size_t errn);
/* args.yaml of the run: every resolved flag; those that only steer this invocation
 * (--resume, --config, --overwrite, --max-steps, --dry-run) are written as null, so
 * that neither `--resume DIR` nor `--config DIR/args.yaml` replays them. */
int rundir_write_args(const char *dir, Args *a, char *err, size_t errn);
/* metrics.jsonl of a resumed run: keep the rows with "step" <= step (rows written
 * after the checkpoint was taken would be written again). Missing file: nothing to do. */
int rundir_trim_metrics(const char *dir, long step, char *err, size_t errn);

/* summary.csv (timm's columns: epoch,train_loss,eval_loss,eval_top1,eval_top5,lr; top-1/5
 * in percent as timm; eval_* empty when the epoch had no validation). Rewrites the file
 * with the rows of earlier epochs plus this one. */
typedef struct SummaryRow {
    int epoch;                  /* 1-based, as metrics.jsonl */
    double train_loss, lr;
    int has_eval;
    double eval_loss, eval_top1, eval_top5;   /* fractions */
} SummaryRow;
int rundir_summary(const char *dir, const SummaryRow *row, char *err, size_t errn);
