/* `--precision auto` (train and bench): the faster of fp32 and bf16 for this CPU and model,
 * from a few timed training steps on a throwaway copy (train/precision_auto.c). */
#pragma once
#include "layers/model.h"
#include "train/args.h"
#include <stddef.h>

typedef struct PrecisionPick {
    int precision;               /* MT_FP32 | MT_BF16 */
    int timed;                   /* 0: no native bf16, fp32 without timing */
    int steps;                   /* timed steps, both precisions together */
    double rate_fp32, rate_bf16; /* img/s of the best timed step of each */
    double seconds;              /* time in the timed steps */
} PrecisionPick;

/* Times training steps of cfg at this batch (and gradient checkpointing) in both precisions on
 * a model, optimizer and context of its own, at the current thread count. 0, or -1 with err. */
int precision_auto_pick(const ModelConfig *cfg, int batch, int grad_ckpt, PrecisionPick *pick, char *err,
                        size_t errn);
/* One line: the choice and both rates. */
void precision_auto_describe(const PrecisionPick *p, char *buf, size_t n);
/* Under mpirun: rank 0's choice, on every rank (a collective). */
int precision_auto_agree(int precision);
/* train: resolves --precision auto into *precision before the run's state is built, prints the
 * choice (root) and records it as the run's --precision (args.yaml), so a resume repeats it.
 * resuming: 1 when continuing a bare checkpoint (no args.yaml to have recorded a choice).
 * 0, or the exit code with a message printed. */
int precision_auto_train(Args *a, const ModelConfig *cfg, int batch, int grad_ckpt, int resuming, int root,
                         int *precision);
