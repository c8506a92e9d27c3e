/* Wall-clock seconds on the monotonic clock, for timing steps, epochs and benchmarks. */
#pragma once
#include <time.h>

static inline double mt_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
