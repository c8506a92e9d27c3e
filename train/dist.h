/* Data-parallel training across processes. Without MPI (or when not launched
 * by mpirun) every call is the single-process identity, so the training loop
 * is written once. */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* Initialises MPI when built with it and launched under mpirun/mpiexec
 * (idempotent; argc/argv may be NULL). `train` and `bench` call it. */
void dist_init(int *argc, char ***argv);
void dist_finalize(void);
int dist_rank(void);
int dist_world(void);
static inline int dist_is_root(void) { return dist_rank() == 0; }
/* In-place average over ranks. */
void dist_allreduce_mean(float *buf, size_t n);
/* In-place sum of doubles over ranks (metrics). */
void dist_allreduce_sum_d(double *buf, int n);
/* In-place sums of integers over ranks (exact metrics). */
void dist_allreduce_sum_i64(int64_t *buf, int n);
void dist_allreduce_sum_long(long *buf, size_t n);
/* Max of an int over ranks (stop flags: signal, NaN, error). */
int dist_any_max(int v);
/* Min of a long over ranks (e.g. batches per epoch with uneven shards). */
long dist_all_min_long(long v);
/* Root's bytes to every rank. */
void dist_bcast(void *buf, size_t bytes);
/* Stop every rank with this exit code (after a message; flushes stdio first).
 * For a failure on one rank only; failures every rank sees should return
 * normally so that each rank finalises. */
void dist_abort(int code);
/* Seconds spent inside allreduce calls so far. */
double dist_comm_seconds(void);
