#include "core/threads.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

void openblas_set_num_threads(int);

static int g_threads = 0;

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

/* Spin iterations (each a `pause`) before a waiting OpenMP thread sleeps on a futex; libgomp's
 * own default is 300000 (milliseconds of spinning). Spinning that long is what makes a busy
 * neighbour on one core collapse a 2-thread run: the thread that arrives first at every barrier
 * burns its time slice waiting for the descheduled one. A short spin keeps back-to-back parallel
 * regions fast on a quiet machine and yields the core quickly on a shared one
 * (docs/performance.md, "Threads"). */
#define MT_SPINCOUNT "1000"
/* Set in the environment of the re-executed program only; removed at once. */
#define MT_WAIT_MARK "MIXTAPE_WAIT_POLICY_APPLIED"

static char g_policy[160];

void mt_wait_policy_apply(char **argv) {
    const char *mark = getenv(MT_WAIT_MARK), *wp = getenv("OMP_WAIT_POLICY"), *sc = getenv("GOMP_SPINCOUNT");
    if (mark) {
        unsetenv(MT_WAIT_MARK); /* GOMP_SPINCOUNT stays: child processes wait the same way */
        /* exec of /proc/self/exe named the process "exe": give back the name ps, top and
         * pkill know it by (the command's file name, as the first exec set it) */
        const char *base = argv[0] && *argv[0] ? strrchr(argv[0], '/') : NULL;
        base = base ? base + 1 : argv[0];
        if (base && *base) prctl(PR_SET_NAME, base, 0, 0, 0);
        snprintf(g_policy, sizeof g_policy, "GOMP_SPINCOUNT=%.40s (mixtape default)", sc ? sc : "?");
        return;
    }
    if (wp || sc) {
        snprintf(g_policy, sizeof g_policy, "%s%.40s%s%s%.40s (environment)", wp ? "OMP_WAIT_POLICY=" : "",
                 wp ? wp : "", wp && sc ? " " : "", sc ? "GOMP_SPINCOUNT=" : "", sc ? sc : "");
        return;
    }
    if (setenv("GOMP_SPINCOUNT", MT_SPINCOUNT, 1) == 0 && setenv(MT_WAIT_MARK, "1", 1) == 0)
        execv("/proc/self/exe", argv);
    /* no /proc or no exec: libgomp keeps its own default; nothing else changes */
    unsetenv("GOMP_SPINCOUNT");
    unsetenv(MT_WAIT_MARK);
    snprintf(g_policy, sizeof g_policy, "libgomp default (re-exec failed)");
}

const char *mt_wait_policy(void) { return g_policy[0] ? g_policy : "libgomp default"; }
