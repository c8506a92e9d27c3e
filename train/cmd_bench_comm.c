/* mixtape bench --comm: what the ranks' links give, for the scaling model in
 * docs/distributed.md. Under mpirun: the latency of a small message between rank 0 and
 * rank 1 (half a round trip), and the time of an all-reduce (sum of floats, as the
 * gradient buckets do) at sizes from 64 KB up to --bytes, with the bus bandwidth
 * 2 (N - 1) / N x bytes / time that a ring all-reduce moves over each link. */
#include "core/clock.h"
#include "train/commands.h"
#include "train/dist.h"
#include "train/progress.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef MIXTAPE_HAVE_MPI
#include <mpi.h>

int bench_comm(long max_bytes, int reps) {
    int rank = dist_rank(), world = dist_world();
    if (world < 2) {
        fprintf(stderr, "mixtape bench --comm: run it under mpirun with 2 or more ranks\n");
        return 2;
    }
    /* host names, to say how many machines the ranks span */
    char *hosts = calloc((size_t)world, 64);
    char me[64] = {0};
    snprintf(me, sizeof me, "%s", dist_host());
    MPI_Allgather(me, 64, MPI_CHAR, hosts, 64, MPI_CHAR, MPI_COMM_WORLD);
    int nhosts = 0;
    for (int r = 0; r < world; r++) {
        int seen = 0;
        for (int q = 0; q < r; q++) seen |= !strncmp(hosts + 64 * r, hosts + 64 * q, 64);
        nhosts += !seen;
    }
    if (rank == 0) printf("comm: %d ranks on %d host(s); rank 1 on %s\n", world, nhosts, hosts + 64);
    free(hosts);

    /* latency: 8-byte ping-pong between ranks 0 and 1 */
    double v = 0, *t = malloc(sizeof(double) * (size_t)(reps > 200 ? reps : 200));
    int nping = 200;
    for (int i = 0; i < nping + 20; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = mt_seconds();
        if (rank == 0) {
            MPI_Send(&v, 1, MPI_DOUBLE, 1, 7, MPI_COMM_WORLD);
            MPI_Recv(&v, 1, MPI_DOUBLE, 1, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(&v, 1, MPI_DOUBLE, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(&v, 1, MPI_DOUBLE, 0, 7, MPI_COMM_WORLD);
        }
        if (i >= 20) t[i - 20] = (mt_seconds() - t0) / 2;
    }
    if (rank == 0) printf("latency: %.1f us (half round trip of 8 bytes, rank 0 <-> 1, median of %d)\n",
                          1e6 * median_sorted(t, nping), nping);

    /* all-reduce at growing sizes */
    size_t maxf = (size_t)(max_bytes / 4);
    float *buf = malloc(maxf * sizeof(float));
    if (!buf) { fprintf(stderr, "mixtape bench --comm: out of memory for %ld bytes\n", max_bytes); return 1; }
    for (size_t i = 0; i < maxf; i++) buf[i] = 1e-3f * (float)(i % 1000);
    for (size_t n = 16384; n <= maxf; n = n * 4 <= maxf || n == maxf ? n * 4 : maxf) {
        for (int i = 0; i < reps + 1; i++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = mt_seconds();
            MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            double dt = mt_seconds() - t0;
            MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);   /* the slowest rank's */
            if (i > 0) t[i - 1] = dt;
        }
        double m = median_sorted(t, reps), bytes = 4.0 * (double)n;
        if (rank == 0)
            printf("allreduce %.2f MB: %.3f ms  %.3f GB/s bus bandwidth (median of %d)\n", bytes / 1048576.0, 1e3 * m,
                   2.0 * (world - 1) / world * bytes / m / 1e9, reps);
        if (n == maxf) break;
    }
    free(buf);
    free(t);
    return 0;
}
#else
int bench_comm(long max_bytes, int reps) {
    (void)max_bytes; (void)reps;
    fprintf(stderr, "mixtape bench --comm: this binary was built without MPI\n");
    return 2;
}
#endif
