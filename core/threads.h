/* One place decides the thread split: OpenMP for element-wise ops, OpenBLAS
 * for GEMMs. GEMMs are only ever called from serial code, so OpenBLAS's own
 * threads never run inside an OpenMP parallel region (no oversubscription). */
#pragma once

/* The most threads any --threads or OMP_NUM_THREADS may ask for: libgomp fails (segfaults)
 * creating tens of thousands, and nothing here gains from more than this. */
#define MT_MAX_THREADS 1024

/* n <= 0: OMP_NUM_THREADS if set, else the core count. Returns the count used. */
int mt_set_threads(int n);
int mt_get_threads(void);

/* libgomp reads OMP_WAIT_POLICY and GOMP_SPINCOUNT once, in its constructor, before main().
 * When the user has set neither, main() calls this first: it sets GOMP_SPINCOUNT to mixtape's
 * default (MT_SPINCOUNT: spin briefly, then sleep) and re-executes the program once
 * (/proc/self/exe, same argv) so that libgomp starts with it. A user's value always wins.
 * Returns only when no re-exec happened (already applied, user-set, or exec failed). */
void mt_wait_policy_apply(char **argv);
/* What the OpenMP workers do while waiting, for reports: e.g.
 * "GOMP_SPINCOUNT=10000 (mixtape default)" or "OMP_WAIT_POLICY=active (environment)". */
const char *mt_wait_policy(void);
