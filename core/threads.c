#include "core/threads.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void openblas_set_num_threads(int);

static int g_threads = 0;

/* libgomp fails (segfaults) creating tens of thousands of threads; nothing here gains
 * from more than this. */
#define MT_MAX_THREADS 1024

int mt_set_threads(int n) {
    if (n <= 0) {
        const char *e = getenv("OMP_NUM_THREADS");
        char *end = NULL;
        long v = e && *e ? strtol(e, &end, 10) : 0;
        if (e && *e && (*end || v <= 0)) {
            fprintf(stderr, "mixtape: note: OMP_NUM_THREADS='%s' is not a positive integer; using the core count\n", e);
            v = 0;
        } else if (v > MT_MAX_THREADS) {
            fprintf(stderr, "mixtape: note: OMP_NUM_THREADS=%ld clamped to %d threads\n", v, MT_MAX_THREADS);
            v = MT_MAX_THREADS;
        }
        n = (int)v;
        if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
        if (n <= 0) n = 1;
    }
    if (n > MT_MAX_THREADS) n = MT_MAX_THREADS;
    g_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    return n;
}

int mt_get_threads(void) { return g_threads ? g_threads : mt_set_threads(0); }
