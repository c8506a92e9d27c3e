/* Bucketed gradient averaging overlapped with backward (see dist_buckets.h). */
#include "core/clock.h"
#include "train/dist_buckets.h"
#include "train/dist.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef MIXTAPE_HAVE_MPI
#include <mpi.h>
#endif

#define CHUNK ((size_t)1 << 28)   /* MPI counts are int: larger buckets go in pieces */

typedef struct Use { int first, idx; } Use;

struct DistBuckets {
    int world, overlap;
    long bucket_bytes;
    int np;                 /* trainable parameters */
    Tensor **p;             /* them, in ParamList order */
    Tensor **hkey;          /* data pointer -> index hash (open addressing): a view of a
                             * parameter (layers/views.c, another Tensor) finds it too */
    int *hval, hcap;
    /* layout, built at the first begin */
    int laid_out;
    int *order;             /* parameter indices in buffer order */
    size_t *off;            /* per parameter: offset in buf */
    int *bucket_of;         /* per parameter */
    int nb;
    size_t *boff, *bn;      /* per bucket: float range in buf */
    int *breq0, *bnreq;     /* per bucket: its requests in req[] */
    int *bj0, *bj1;         /* per bucket: its parameters order[bj0..bj1) */
    int nreq;
    float *buf;
    size_t nfloats;
    /* per step */
    int *first_use;         /* per parameter: earliest node reading it, -1 none */
    Use *use;               /* used parameters, latest first use first */
    int nuse, cursor;
    int *pending;           /* per bucket: parameters not final yet */
    int next;               /* next bucket to start */
    int active;
    DistBucketStats st;
#ifdef MIXTAPE_HAVE_MPI
    MPI_Comm comm;
    MPI_Request *req;
#endif
};

static size_t hslot(const DistBuckets *b, const Tensor *t) {
    uint64_t z = (uint64_t)(uintptr_t)t->data;
    z ^= z >> 33; z *= 0xff51afd7ed558ccdull; z ^= z >> 33;
    return (size_t)z & (size_t)(b->hcap - 1);
}

static int param_index(const DistBuckets *b, const Tensor *t) {
    for (size_t h = hslot(b, t);; h = (h + 1) & (size_t)(b->hcap - 1)) {
        if (!b->hkey[h]) return -1;
        if (b->hkey[h]->data == t->data) return b->hval[h];
    }
}

DistBuckets *dist_buckets_create(ParamList *params, long bucket_bytes, char *err, size_t errn) {
    DistBuckets *b = calloc(1, sizeof *b);
    if (!b) { snprintf(err, errn, "out of memory (gradient buckets)"); return NULL; }
    b->world = dist_world();
    if (b->world <= 1) return b;
    const char *e = getenv("MIXTAPE_BUCKET_MB");
    if (bucket_bytes <= 0) bucket_bytes = e && atof(e) > 0 ? (long)(atof(e) * 1048576.0) : 4L << 20;
    b->bucket_bytes = bucket_bytes;
    e = getenv("MIXTAPE_OVERLAP");
    b->overlap = !(e && !strcmp(e, "0"));
    for (int i = 0; i < params->n; i++) b->np += params->t[i]->requires_grad != 0;
    int n = b->np > 0 ? b->np : 1;
    b->hcap = 16;
    while (b->hcap < 2 * n) b->hcap *= 2;
    b->p = calloc((size_t)n, sizeof *b->p);
    b->hkey = calloc((size_t)b->hcap, sizeof *b->hkey);
    b->hval = calloc((size_t)b->hcap, sizeof *b->hval);
    b->order = calloc((size_t)n, sizeof *b->order);
    b->off = calloc((size_t)n, sizeof *b->off);
    b->bucket_of = calloc((size_t)n, sizeof *b->bucket_of);
    b->first_use = calloc((size_t)n, sizeof *b->first_use);
    b->use = calloc((size_t)n, sizeof *b->use);
    if (!b->p || !b->hkey || !b->hval || !b->order || !b->off || !b->bucket_of || !b->first_use || !b->use) goto oom;
    int k = 0;
    for (int i = 0; i < params->n; i++) {
        Tensor *t = params->t[i];
        if (!t->requires_grad) continue;
        b->p[k] = t;
        size_t h = hslot(b, t);
        while (b->hkey[h]) h = (h + 1) & (size_t)(b->hcap - 1);
        b->hkey[h] = t;
        b->hval[h] = k;
        b->nfloats += t->numel;
        k++;
    }
    b->buf = malloc((b->nfloats ? b->nfloats : 1) * sizeof *b->buf);
    if (!b->buf) goto oom;
    b->st.floats = b->nfloats;
#ifdef MIXTAPE_HAVE_MPI
    MPI_Comm_dup(MPI_COMM_WORLD, &b->comm);
#endif
    return b;
oom:
    snprintf(err, errn, "out of memory (gradient buckets for %d parameters)", b->np);
    dist_buckets_free(b);
    return NULL;
}

void dist_buckets_free(DistBuckets *b) {
    if (!b) return;
#ifdef MIXTAPE_HAVE_MPI
    if (b->world > 1 && b->buf) MPI_Comm_free(&b->comm);
    free(b->req);
#endif
    free(b->p); free(b->hkey); free(b->hval); free(b->order); free(b->off); free(b->bucket_of);
    free(b->boff); free(b->bn); free(b->breq0); free(b->bnreq); free(b->buf);
    free(b->bj0); free(b->bj1);
    free(b->first_use); free(b->use); free(b->pending);
    free(b);
}

/* Later first use first (final earlier in the reverse sweep); ties: later parameter first. */
static int cmp_use(const void *x, const void *y) {
    const Use *a = x, *c = y;
    if (a->first != c->first) return a->first > c->first ? -1 : 1;
    return a->idx > c->idx ? -1 : a->idx < c->idx;
}

/* For every parameter, the earliest node (forward order) of this tape that reads it. */
static void scan_tape(DistBuckets *b, const Ctx *c) {
    for (int i = 0; i < b->np; i++) b->first_use[i] = -1;
    for (int k = 0; k < c->nnodes; k++) {
        const Node *n = &c->nodes[k];
        for (int j = 0; j < n->nin; j++) {
            const Tensor *t = n->in[j];
            if (!t || !t->is_param || !t->requires_grad) continue;
            int i = param_index(b, t);
            if (i >= 0 && b->first_use[i] < 0) b->first_use[i] = k;
        }
        for (int j = 0; j < n->nparams; j++) { /* a checkpoint's block: final after its backward */
            int i = param_index(b, n->params[j]);
            if (i >= 0 && b->first_use[i] < 0) b->first_use[i] = k;
        }
    }
    b->nuse = 0;
    for (int i = 0; i < b->np; i++)
        if (b->first_use[i] >= 0) b->use[b->nuse++] = (Use){b->first_use[i], i};
    qsort(b->use, (size_t)b->nuse, sizeof *b->use, cmp_use);
}

/* Bucket layout from the first tape: unused parameters first, then in the order their
 * gradients become final; rank 0's order is broadcast so every rank agrees. */
static int build_layout(DistBuckets *b) {
    int k = 0;
    for (int i = b->np - 1; i >= 0; i--)
        if (b->first_use[i] < 0) b->order[k++] = i;
    for (int u = 0; u < b->nuse; u++) b->order[k++] = b->use[u].idx;
#ifdef MIXTAPE_HAVE_MPI
    dist_enter("the broadcast of the gradient buckets' layout");
    if (b->np > 0) MPI_Bcast(b->order, b->np, MPI_INT, 0, b->comm);
    dist_leave();
#endif
    int cap = b->np > 0 ? b->np : 1;
    b->boff = calloc((size_t)cap, sizeof *b->boff);
    b->bn = calloc((size_t)cap, sizeof *b->bn);
    b->breq0 = calloc((size_t)cap, sizeof *b->breq0);
    b->bnreq = calloc((size_t)cap, sizeof *b->bnreq);
    b->pending = calloc((size_t)cap, sizeof *b->pending);
    b->bj0 = calloc((size_t)cap, sizeof *b->bj0);
    b->bj1 = calloc((size_t)cap, sizeof *b->bj1);
    if (!b->boff || !b->bn || !b->breq0 || !b->bnreq || !b->pending || !b->bj0 || !b->bj1) return -1;
    size_t off = 0, lim = (size_t)b->bucket_bytes / sizeof(float);
    b->nb = 0;
    for (int j = 0; j < b->np; j++) {
        int i = b->order[j];
        size_t n = b->p[i]->numel;
        if (b->nb == 0 || (b->bn[b->nb - 1] > 0 && b->bn[b->nb - 1] + n > lim)) {
            b->boff[b->nb] = off;
            b->bn[b->nb] = 0;
            b->bj0[b->nb] = j;
            b->nb++;
        }
        b->bj1[b->nb - 1] = j + 1;
        b->off[i] = off;
        b->bucket_of[i] = b->nb - 1;
        b->bn[b->nb - 1] += n;
        off += n;
    }
    b->nreq = 0;
    for (int q = 0; q < b->nb; q++) {
        b->breq0[q] = b->nreq;
        b->bnreq[q] = b->bn[q] ? (int)((b->bn[q] + CHUNK - 1) / CHUNK) : 0;
        b->nreq += b->bnreq[q];
    }
#ifdef MIXTAPE_HAVE_MPI
    b->req = malloc((size_t)(b->nreq ? b->nreq : 1) * sizeof *b->req);
    if (!b->req) return -1;
    for (int r = 0; r < b->nreq; r++) b->req[r] = MPI_REQUEST_NULL;
#endif
    b->st.nbuckets = b->nb;
    b->laid_out = 1;
    return 0;
}

/* Pack bucket q's gradients and start its reduction. */
static void launch(DistBuckets *b, int q) {
#ifdef MIXTAPE_HAVE_MPI
    for (int j = b->bj0[q]; j < b->bj1[q]; j++) {
        int i = b->order[j];
        memcpy(b->buf + b->off[i], b->p[i]->grad, b->p[i]->numel * sizeof(float));
    }
    for (int r = 0; r < b->bnreq[q]; r++) {
        size_t o = b->boff[q] + (size_t)r * CHUNK, n = b->bn[q] - (size_t)r * CHUNK;
        if (n > CHUNK) n = CHUNK;
        MPI_Iallreduce(MPI_IN_PLACE, b->buf + o, (int)n, MPI_FLOAT, MPI_SUM, b->comm, &b->req[b->breq0[q] + r]);
    }
#else
    (void)b; (void)q;
#endif
}

/* Start, in bucket order, every bucket whose parameters are all final (or all with force). */
static void launch_ready(DistBuckets *b, int force) {
    while (b->next < b->nb && (force || b->pending[b->next] == 0)) launch(b, b->next++);
}

static void on_node_done(Ctx *c, int k, void *ud) {
    (void)c;
    DistBuckets *b = ud;
    int before = b->next;
    double t0 = mt_seconds();
    while (b->cursor < b->nuse && b->use[b->cursor].first >= k) {
        b->pending[b->bucket_of[b->use[b->cursor].idx]]--;
        b->cursor++;
    }
    launch_ready(b, 0);
    double t1 = mt_seconds();
    b->st.t_launch += t1 - t0;
    b->st.launched_early += b->next - before;
#ifdef MIXTAPE_HAVE_MPI
    if (b->next > 0) {   /* drive the reductions in flight */
        int nr = b->breq0[b->next - 1] + b->bnreq[b->next - 1], done;
        MPI_Testall(nr, b->req, &done, MPI_STATUSES_IGNORE);
        b->st.t_progress += mt_seconds() - t1;
    }
#endif
}

void dist_buckets_begin(DistBuckets *b, Ctx *c) {
    if (!b || b->world <= 1) return;
    double t0 = mt_seconds();
    scan_tape(b, c);
    if (!b->laid_out && build_layout(b) != 0) {
        fprintf(stderr, "mixtape: out of memory (gradient buckets)\n");
        dist_abort(1);
    }
    for (int q = 0; q < b->nb; q++) b->pending[q] = 0;
    for (int u = 0; u < b->nuse; u++) b->pending[b->bucket_of[b->use[u].idx]]++;
    b->cursor = 0;
    b->next = 0;
    b->active = 1;
    if (b->overlap) {
        c->on_node_done = on_node_done;
        c->on_node_done_ud = b;
        launch_ready(b, 0);   /* buckets of parameters this tape does not use */
    }
    b->st.t_launch += mt_seconds() - t0;
}

void dist_buckets_finish(DistBuckets *b, Ctx *c) {
    if (!b || b->world <= 1 || !b->active) return;
    if (c->on_node_done == on_node_done) {
        c->on_node_done = NULL;
        c->on_node_done_ud = NULL;
    }
    double t0 = mt_seconds();
    launch_ready(b, 1);
    double t1 = mt_seconds();
#ifdef MIXTAPE_HAVE_MPI
    dist_enter("the gradient all-reduce");
    MPI_Waitall(b->nreq, b->req, MPI_STATUSES_IGNORE);
    dist_leave();
#endif
    double t2 = mt_seconds();
    const float s = 1.0f / (float)b->world;
    for (int i = 0; i < b->np; i++) {
        float *g = b->p[i]->grad;
        const float *src = b->buf + b->off[i];
        const long n = (long)b->p[i]->numel;
#pragma omp parallel for schedule(static) if (n >= 65536)
        for (long j = 0; j < n; j++) g[j] = src[j] * s;
    }
    double t3 = mt_seconds();
    b->st.t_launch += t1 - t0;
    b->st.t_wait += t2 - t1;
    b->st.t_unpack += t3 - t2;
    b->st.steps++;
    b->active = 0;
}

double dist_buckets_seconds(const DistBuckets *b) {
    if (!b) return 0;
    return b->st.t_launch + b->st.t_progress + b->st.t_wait + b->st.t_unpack;
}

void dist_buckets_stats(const DistBuckets *b, DistBucketStats *s) {
    if (b) *s = b->st;
    else memset(s, 0, sizeof *s);
}
