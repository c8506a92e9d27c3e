#include "core/threads.h"
#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

void openblas_set_num_threads(int);

static int g_threads = 0;

int mt_set_threads(int n) {
    if (n <= 0) {
        const char *e = getenv("OMP_NUM_THREADS");
        n = e ? atoi(e) : 0;
        if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
        if (n <= 0) n = 1;
    }
    g_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    return n;
}

int mt_get_threads(void) { return g_threads ? g_threads : mt_set_threads(0); }
