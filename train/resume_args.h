/* `mixtape train --resume DIR` alone continues a run exactly: the run's args.yaml
 * supplies every flag and the data sources; flags given with --resume either apply
 * with a printed line (those that do not change the steps already taken: --epochs,
 * --max-steps, --val...) or are refused with exit 2, naming the flag. */
#pragma once
#include "train/args.h"
#include <stddef.h>

typedef struct ResumePlan {
    int active;            /* --resume given */
    char dir[1024];        /* the run directory (DIR, or the checkpoint's directory) */
    char yaml[1100];       /* dir/args.yaml when present, else "" */
    int cmd_output;        /* --output / --experiment on the command line */
    int cmd_experiment;
} ResumePlan;

/* Looks at the raw command line. With --resume and the run's args.yaml, *argv2 is argv
 * plus "--config=<dir>/args.yaml" (free with resume_plan_free); else argv itself.
 * 0, or 2 with a message printed (a --config other than the run's own). */
int resume_plan(int argc, char **argv, ResumePlan *p, int *argc2, char ***argv2);
void resume_plan_free(ResumePlan *p, char **argv2, char **argv);
/* After a full parse of a (args.yaml + command line): compares every resolved flag
 * with the run's own (args.yaml alone). Prints the accepted changes (when print);
 * 0, or 2 with a message naming a refused flag. */
int resume_check(Args *a, const ResumePlan *p, int print);
