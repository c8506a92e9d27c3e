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

/* This process's host name (for messages). */
const char *dist_host(void);
/* Do all ranks hold the same `value` (a hash of something `what` names: the binary, the
 * shard list)? Collective. 0 when they do; else -1 on every rank with err naming the first
 * rank and host that differ from rank 0, and both `shown` strings (short descriptions). */
int dist_check_same(const char *what, uint64_t value, const char *shown, char *err, size_t errn);
/* FNV-1a over bytes, continuing from h (start with DIST_HASH0). */
#define DIST_HASH0 0xcbf29ce484222325ull
uint64_t dist_hash(uint64_t h, const void *data, size_t n);
/* Hash of this process's executable file (/proc/self/exe), 0 when unreadable. */
uint64_t dist_binary_hash(void);

/* Lost ranks and hosts. A blocking collective waits for every rank; when a rank dies its
 * launcher stops the job, but when a host or its link is lost nothing may ever arrive. A
 * watchdog thread stops this rank (exit 1, with a message naming the rank, host and the
 * collective) when one collective has waited longer than the timeout: env
 * MIXTAPE_DIST_TIMEOUT seconds, or dist_set_timeout (default 1800, as torch.distributed; 0 = never). The
 * collectives of dist.c and dist_buckets.c mark themselves with dist_enter / dist_leave. */
void dist_set_timeout(double seconds);
void dist_enter(const char *what);
void dist_leave(void);
/* What the training loop is doing, for the watchdog's message (e.g. the step). */
void dist_set_phase(long step);
