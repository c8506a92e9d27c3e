#include "data/queue.h"
#include <stdlib.h>
#include <string.h>

int ring_init(BatchRing *r, int nbufs, int n, int c, int h, int w, int num_classes, int with_soft) {
    memset(r, 0, sizeof *r);
    if (nbufs < 2) nbufs = 2;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv_free, NULL);
    pthread_cond_init(&r->cv_ready, NULL);
    r->inited = 1;
    r->bufs = calloc((size_t)nbufs, sizeof *r->bufs);
    if (!r->bufs) return -1;
    r->nbufs = nbufs;
    for (int i = 0; i < nbufs; i++)
        if (batch_alloc(&r->bufs[i], n, c, h, w, num_classes, with_soft)) return -1;
    return 0;
}

void ring_free(BatchRing *r) {
    if (!r->inited) return;
    if (r->bufs)
        for (int i = 0; i < r->nbufs; i++) batch_free(&r->bufs[i]);
    free(r->bufs);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv_free);
    pthread_cond_destroy(&r->cv_ready);
    memset(r, 0, sizeof *r);
}

void ring_reset(BatchRing *r) {
    r->produced = r->released = r->consumed = 0;
    r->held = r->finished = r->stopped = 0;
}

Batch *ring_acquire(BatchRing *r) {
    pthread_mutex_lock(&r->mu);
    while (!r->stopped && r->produced - r->released >= r->nbufs) pthread_cond_wait(&r->cv_free, &r->mu);
    Batch *b = r->stopped ? NULL : &r->bufs[r->produced % r->nbufs];
    pthread_mutex_unlock(&r->mu);
    return b;
}

void ring_publish(BatchRing *r) {
    pthread_mutex_lock(&r->mu);
    r->produced++;
    pthread_cond_signal(&r->cv_ready);
    pthread_mutex_unlock(&r->mu);
}

void ring_finish(BatchRing *r) {
    pthread_mutex_lock(&r->mu);
    r->finished = 1;
    pthread_cond_broadcast(&r->cv_ready);
    pthread_mutex_unlock(&r->mu);
}

Batch *ring_next(BatchRing *r, int *ended) {
    pthread_mutex_lock(&r->mu);
    if (r->held) {
        r->held = 0;
        r->released++;
        pthread_cond_signal(&r->cv_free);
    }
    while (!r->stopped && r->consumed >= r->produced && !r->finished) pthread_cond_wait(&r->cv_ready, &r->mu);
    Batch *b = NULL;
    *ended = 0;
    if (r->stopped) b = NULL;
    else if (r->consumed < r->produced) {
        b = &r->bufs[r->consumed % r->nbufs];
        r->consumed++;
        r->held = 1;
    } else *ended = 1;
    pthread_mutex_unlock(&r->mu);
    return b;
}

void ring_stop(BatchRing *r) {
    if (!r->inited) return;
    pthread_mutex_lock(&r->mu);
    r->stopped = 1;
    pthread_cond_broadcast(&r->cv_free);
    pthread_cond_broadcast(&r->cv_ready);
    pthread_mutex_unlock(&r->mu);
}
