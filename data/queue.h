/* A bounded, ordered ring of batch buffers between one producer (the loader's assembler)
 * and one consumer (the training thread). The consumer holds the batch it was last given
 * until its next call; the producer fills the others in order. */
#pragma once
#include "data/batch.h"
#include <pthread.h>

typedef struct BatchRing {
    pthread_mutex_t mu;
    pthread_cond_t cv_free, cv_ready;
    Batch *bufs;
    int nbufs;
    long produced, released, consumed;   /* batch counts since ring_reset */
    int held, finished, stopped, inited;
} BatchRing;

/* nbufs >= 2 buffers of (n, c, h, w) images (+ soft targets when with_soft). 0 ok, -1 OOM. */
int ring_init(BatchRing *r, int nbufs, int n, int c, int h, int w, int num_classes, int with_soft);
void ring_free(BatchRing *r);
/* Back to empty (no thread may be using the ring). */
void ring_reset(BatchRing *r);
/* Producer: the next buffer to fill, waiting while all are full; NULL once stopped. */
Batch *ring_acquire(BatchRing *r);
/* Producer: the acquired buffer is ready for the consumer. */
void ring_publish(BatchRing *r);
/* Producer: no more batches this round. */
void ring_finish(BatchRing *r);
/* Consumer: releases the batch it held and waits for the next one. The batch, or NULL at
 * the end (*ended = 1) or when stopped (*ended = 0). */
Batch *ring_next(BatchRing *r, int *ended);
/* Wakes every waiter; acquire / next return NULL from now until ring_reset. */
void ring_stop(BatchRing *r);
