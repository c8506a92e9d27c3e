#include "train/dist.h"
#include "train/progress.h"
#include <stdio.h>
#include <stdlib.h>

#ifdef MIXTAPE_HAVE_MPI
#include <mpi.h>
static int g_mpi = 0, g_rank = 0, g_world = 1;
#else
static const int g_rank = 0, g_world = 1;
#endif
static double g_comm = 0;

void dist_init(int *argc, char ***argv) {
#ifdef MIXTAPE_HAVE_MPI
    /* Only when a launcher set us up: a plain `mixtape train` never touches MPI. */
    if (g_mpi) return;   /* idempotent: commands call it at their start */
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK")) {
        /* Only the main thread calls MPI (loader and OpenMP threads never do). */
        int provided;
        MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        g_mpi = 1;
        MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    }
#else
    (void)argc; (void)argv;
#endif
}

void dist_finalize(void) {
#ifdef MIXTAPE_HAVE_MPI
    if (g_mpi) MPI_Finalize();
    g_mpi = 0;
#endif
}

int dist_rank(void) { return g_rank; }
int dist_world(void) { return g_world; }
double dist_comm_seconds(void) { return g_comm; }

/* MPI counts are int: large buffers go in pieces. */
#define CHUNK ((size_t)1 << 28)

void dist_allreduce_mean(float *buf, size_t n) {
    if (g_world <= 1) return;
#ifdef MIXTAPE_HAVE_MPI
    double t = now_seconds();
    for (size_t o = 0; o < n; o += CHUNK) {
        size_t k = n - o < CHUNK ? n - o : CHUNK;
        MPI_Allreduce(MPI_IN_PLACE, buf + o, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    float s = 1.0f / (float)g_world;
    for (size_t i = 0; i < n; i++) buf[i] *= s;
    g_comm += now_seconds() - t;
#endif
}

void dist_allreduce_sum_d(double *buf, int n) {
    if (g_world <= 1) return;
#ifdef MIXTAPE_HAVE_MPI
    MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#endif
}

void dist_allreduce_sum_i64(int64_t *buf, int n) {
    if (g_world <= 1) return;
#ifdef MIXTAPE_HAVE_MPI
    MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
#endif
}

void dist_allreduce_sum_long(long *buf, size_t n) {
    if (g_world <= 1) return;
#ifdef MIXTAPE_HAVE_MPI
    for (size_t o = 0; o < n; o += CHUNK) {
        size_t k = n - o < CHUNK ? n - o : CHUNK;
        MPI_Allreduce(MPI_IN_PLACE, buf + o, (int)k, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    }
#endif
}

int dist_any_max(int v) {
    if (g_world <= 1) return v;
#ifdef MIXTAPE_HAVE_MPI
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
#endif
    return v;
}

long dist_all_min_long(long v) {
    if (g_world <= 1) return v;
#ifdef MIXTAPE_HAVE_MPI
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_LONG, MPI_MIN, MPI_COMM_WORLD);
#endif
    return v;
}

void dist_bcast(void *buf, size_t bytes) {
    if (g_world <= 1) return;
#ifdef MIXTAPE_HAVE_MPI
    for (size_t o = 0; o < bytes; o += CHUNK) {
        size_t k = bytes - o < CHUNK ? bytes - o : CHUNK;
        MPI_Bcast((char *)buf + o, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
#endif
}

void dist_abort(int code) {
    fflush(stdout);
    fflush(stderr);
#ifdef MIXTAPE_HAVE_MPI
    if (g_mpi && g_world > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}
