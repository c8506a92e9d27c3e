/* `mixtape bench --contend N`: the benchmark next to N busy processes (train/bench_contend.c). */
#pragma once
#include "train/args.h"

/* --contend is on the command line. */
int bench_contend_requested(int argc, char **argv);
/* Declares and reads --contend (N competitors) and --rounds. */
void bench_contend_flags(Args *a, long *ncomp, long *rounds);
/* Runs the benchmark in child processes while N competitors spin; the exit code. */
int bench_contend(int argc, char **argv);
