/* Gradient averaging across ranks that overlaps the backward pass.
 *
 * The trainable parameters are grouped into buckets of about `bucket_bytes`
 * (one contiguous buffer, allocated once). During the reverse sweep of the
 * tape, the hook Ctx.on_node_done tells us that node k has run; every
 * parameter whose earliest use (in forward order) is node k then has its final
 * gradient. When every parameter of a bucket is final, its gradients are
 * packed into the bucket buffer and a non-blocking MPI_Iallreduce (sum) starts,
 * while the sweep continues with the rest of the network. Buckets start
 * strictly in bucket order, so every rank issues the same sequence of
 * collectives even if its tape were to differ. The hook also calls MPI_Testall
 * on the reductions in flight, which is what drives Open MPI's progress.
 * dist_buckets_finish starts whatever is left, waits for all of it and
 * unpacks sum / world into each parameter's grad.
 *
 * The bucket layout is built at the first dist_buckets_begin from that tape:
 * parameters in the order their gradients become final (the latest-used
 * first), then broadcast from rank 0, so the layout is identical everywhere.
 *
 * Without MPI, or with one rank, every call is a no-op. */
#pragma once
#include "core/params.h"
#include "core/tape.h"
#include <stddef.h>

typedef struct DistBuckets DistBuckets;

typedef struct DistBucketStats {
    int nbuckets;
    size_t floats;        /* trainable gradient floats reduced per step */
    long steps;           /* reductions done (dist_buckets_finish calls) */
    double t_launch;      /* seconds packing + starting reductions (inside backward) */
    double t_progress;    /* seconds in MPI_Testall from the hook */
    double t_wait;        /* seconds blocked in MPI_Waitall after backward */
    double t_unpack;      /* seconds unpacking + scaling */
    long launched_early;  /* buckets started before backward ended */
} DistBucketStats;

/* Collective over all ranks (duplicates the communicator). bucket_bytes <= 0 =
 * default: env MIXTAPE_BUCKET_MB, else 4 MB (flag --bucket-mb of train and bench). Env MIXTAPE_OVERLAP=0 starts every
 * bucket only after backward (for measuring what the overlap buys).
 * Returns NULL with err on out of memory. */
DistBuckets *dist_buckets_create(ParamList *params, long bucket_bytes, char *err, size_t errn);
void dist_buckets_free(DistBuckets *b);
/* Call after the forward of the micro-batch whose backward completes the step
 * (the tape is recorded), right before mt_backward: reads the tape and installs
 * the hook on c. Collective the first time (layout broadcast). */
void dist_buckets_begin(DistBuckets *b, Ctx *c);
/* Call after that backward on every rank (also when it failed, so that the
 * collectives still match): starts the remaining buckets, waits, writes the
 * averaged gradients back and removes the hook. */
void dist_buckets_finish(DistBuckets *b, Ctx *c);
/* Seconds this rank spent in communication on the step's critical path
 * (launch + progress + wait + unpack) since create. */
double dist_buckets_seconds(const DistBuckets *b);
void dist_buckets_stats(const DistBuckets *b, DistBucketStats *s);
