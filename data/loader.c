/* The batching pipeline (see loader.h for the design and the guarantees). */
#include "data/loader.h"
#include "core/clock.h"
#include "data/loader_h5.h"
#include "data/queue.h"
#include "data/shard_count.h"
#include "data/shuffle.h"
#include "data/source.h"
#include "data/source_util.h"
#include <ctype.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { SRC_SHARDS, SRC_FOLDER, SRC_H5 };
enum { SLOT_FREE, SLOT_QUEUED, SLOT_BUSY, SLOT_DONE };

/* Why a sample was skipped: counted per reason, summarised at the end of every epoch. */
enum { SKIP_UNREADABLE, SKIP_MALFORMED, SKIP_LABEL, SKIP_DECODE, SKIP_AUGMENT, SKIP_NKINDS };
static const char *const SKIP_NAMES[SKIP_NKINDS] = {"unreadable file or shard", "malformed sample",
                                                     "missing or out-of-range label", "undecodable image",
                                                     "augmentation failed"};

/* Tags mixed into seeds so that the different random streams never coincide. */
#define TAG_SHARDS 0x5348415244ull   /* shard order */
#define TAG_BUFFER 0x4255464645ull   /* shuffle buffer */
#define TAG_INDEX 0x494e444558ull    /* index permutation (rank independent) */

typedef struct Slot {
    int state, ok, skip, label;
    long index;          /* index sources: the sample index */
    RawSample raw;       /* shard sources: the encoded sample (swapped in by the reader) */
    float *out;          /* c*s*s floats */
} Slot;

struct Loader {
    LoaderConfig cfg;
    char *spec;
    int kind;
    int C, S;                    /* output channels and side */
    size_t sample_floats;
    int num_classes;
    char **class_names; int nclass_names;
    int mix;                     /* aug_mixup_active in train mode */
    int min_side;                /* decode hint */
    uint64_t sample_seed;        /* seed with the rank mixed in */

    /* sources */
    char **shards; int nshards;  /* all shards */
    int *mine; int nmine;        /* this rank's shard indices */
    int by_sample;               /* eval on several ranks: every rank reads every shard and keeps
                                    the samples at positions rank, rank + world, ... */
    ImageFolder folder;
    H5Source h5;
    long nsamples_all;           /* index sources: total samples */
    long *order; long norder;    /* index sources: this epoch's indices for this rank */
    long epoch_size;             /* -2 not computed yet, -1 unknown */

    /* reader state kept across epochs (reused buffers) */
    RawSample *sbuf; int sbuf_n; RawSample spare;

    /* pipeline */
    pthread_mutex_t mu;
    pthread_cond_t cv_reader, cv_work, cv_asm;
    Slot *slots; int nslots;
    long filled_end, next_job, asm_pos;  /* positions */
    int reader_done;
    BatchRing ring;
    atomic_int stop;             /* read without the lock by the reader between samples */
    int failed;
    char errmsg[512];
    pthread_t reader_th, asm_th, *worker_th;
    int nworkers, running;
    int epoch;
    long skip_batches, skip_samples;
    long last_batch;

    int32_t *perm;               /* --permute table (S*S), NULL when off */

    unsigned char *eof_warned;   /* per shard: missing end-of-archive marker already reported */

    /* stats */
    long skipped_total, skipped_epoch;
    long skipped_kind[SKIP_NKINDS], skipped_kind_epoch[SKIP_NKINDS];
    int warned;
    double wait_s;
    long images;
};

static int ends_ci(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    if (a < b) return 0;
    for (size_t i = 0; i < b; i++)
        if (tolower((unsigned char)s[a - b + i]) != tolower((unsigned char)suf[i])) return 0;
    return 1;
}

static int is_dir(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISDIR(st.st_mode); }
static int is_file(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISREG(st.st_mode); }

/* A directory holding *.tar / *.tar.gz / *.tgz (a shard directory) -> 1. */
static int dir_has_tars(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(d));)
        if (e->d_name[0] != '.' && (ends_ci(e->d_name, ".tar") || ends_ci(e->d_name, ".tar.gz") || ends_ci(e->d_name, ".tgz")))
            found = 1;
    closedir(d);
    return found;
}

/* ---------------------------------------------------------------- warnings */

/* One skipped sample: counted (per reason); one line on stderr for the first max_warnings.
 * Names and reasons come from files: control bytes are escaped before they reach a terminal. */
static void skip_sample(Loader *L, int kind, const char *origin, const char *key, const char *why) {
    char ek[300], eo[300], ew[400];
    pthread_mutex_lock(&L->mu);
    L->skipped_total++;
    L->skipped_epoch++;
    L->skipped_kind[kind]++;
    L->skipped_kind_epoch[kind]++;
    int show = !L->cfg.quiet && L->warned < L->cfg.max_warnings;
    int last = show && L->warned == L->cfg.max_warnings - 1;
    if (show) {
        L->warned++;
        fprintf(stderr, "mixtape: warning: skipping sample '%s' of '%s': %s\n", src_escape(key && *key ? key : "?", ek, sizeof ek),
                src_escape(origin && *origin ? origin : "?", eo, sizeof eo), src_escape(why && *why ? why : "bad sample", ew, sizeof ew));
        if (last) fprintf(stderr, "mixtape: warning: further skipped samples are counted, not shown\n");
    }
    pthread_mutex_unlock(&L->mu);
}

/* "3 samples skipped: 2 undecodable image, 1 malformed sample" from per-reason counts. */
static void skip_summary(const long *kinds, long total, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "%ld sample%s skipped:", total, total == 1 ? "" : "s");
    for (int i = 0, first = 1; i < SKIP_NKINDS && k < n; i++)
        if (kinds[i]) {
            k += (size_t)snprintf(buf + k, n - k, "%s %ld %s", first ? "" : ",", kinds[i], SKIP_NAMES[i]);
            first = 0;
        }
}

static void fail_locked(Loader *L, const char *msg) {
    if (!L->failed) {
        L->failed = 1;
        snprintf(L->errmsg, sizeof L->errmsg, "%s", msg);
    }
    L->stop = 1;
    pthread_cond_broadcast(&L->cv_reader);
    pthread_cond_broadcast(&L->cv_work);
    pthread_cond_broadcast(&L->cv_asm);
    ring_stop(&L->ring);
}

static void fail(Loader *L, const char *msg) {
    pthread_mutex_lock(&L->mu);
    fail_locked(L, msg);
    pthread_mutex_unlock(&L->mu);
}

/* ---------------------------------------------------------------- reader */

/* Hands one sample to the workers at the next position. For shard sources *rs is swapped
 * with the slot's RawSample (no copy); index sources pass index. 0 ok, -1 stopping. */
static int emit(Loader *L, RawSample *rs, long index, int label) {
    pthread_mutex_lock(&L->mu);
    while (!L->stop && L->filled_end - L->asm_pos >= L->nslots) pthread_cond_wait(&L->cv_reader, &L->mu);
    if (L->stop) { pthread_mutex_unlock(&L->mu); return -1; }
    long p = L->filled_end;
    pthread_mutex_unlock(&L->mu);

    Slot *s = &L->slots[p % L->nslots];    /* free: no other thread touches it */
    if (rs) { RawSample t = s->raw; s->raw = *rs; *rs = t; }
    s->index = index;
    s->label = label;
    s->skip = p < L->skip_samples;
    s->ok = 0;
    s->state = SLOT_QUEUED;

    pthread_mutex_lock(&L->mu);
    L->filled_end = p + 1;
    pthread_cond_signal(&L->cv_work);
    pthread_mutex_unlock(&L->mu);
    return 0;
}

static void swap_raw(RawSample *a, RawSample *b) { RawSample t = *a; *a = *b; *b = t; }

/* Label check shared by every source: -1 / out of range -> reason, else NULL. A label must be
 * below the class count (--num-classes / the model's / classes.txt / ImageFolder) and, when a
 * classes.txt is there, below its number of names (a label without a name is not a class). */
static const char *label_problem(const Loader *L, int label, char *buf, size_t n) {
    if (label < 0) return L->cfg.allow_unlabeled ? NULL : "missing or non-numeric class label";
    if (L->num_classes > 0 && label >= L->num_classes) {
        snprintf(buf, n, "class index %d out of range (%d classes)", label, L->num_classes);
        return buf;
    }
    if (L->nclass_names > 0 && label >= L->nclass_names) {
        snprintf(buf, n, "class index %d has no name (classes.txt lists %d)", label, L->nclass_names);
        return buf;
    }
    return NULL;
}

/* A shard that stopped at a member boundary without the tar end-of-archive marker: its samples
 * are used, but it was probably cut short (interrupted copy or download). Once per shard. */
static void warn_no_eof_marker(Loader *L, int shard, long samples) {
    pthread_mutex_lock(&L->mu);
    if (!L->cfg.quiet && L->eof_warned && !L->eof_warned[shard]) {
        char ep[300];
        L->eof_warned[shard] = 1;
        fprintf(stderr, "mixtape: warning: shard '%s' ends without the tar end-of-archive marker after %ld sample%s: "
                        "it may be truncated\n", src_escape(L->shards[shard], ep, sizeof ep), samples, samples == 1 ? "" : "s");
    }
    pthread_mutex_unlock(&L->mu);
}

static void read_shards(Loader *L) {
    int n = L->nmine;
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order) { fail(L, "out of memory"); return; }
    memcpy(order, L->mine, (size_t)n * sizeof *order);
    uint64_t rseed = shuf_hash4(L->cfg.seed, (uint64_t)L->epoch, (uint64_t)L->cfg.rank, TAG_SHARDS);
    ShufRng rng;
    if (L->cfg.shuffle) { shuf_rng_seed(&rng, rseed); shuf_perm_int(&rng, order, n); }
    shuf_rng_seed(&rng, shuf_hash4(L->cfg.seed, (uint64_t)L->epoch, (uint64_t)L->cfg.rank, TAG_BUFFER));
    int cap = L->cfg.shuffle ? L->sbuf_n : 0, fill = 0;
    char why[300], lb[96];
    int stopped = 0, by_sample = L->by_sample;
    long pos = 0;   /* sample position over all shards, for the by-sample split */
    for (int k = 0; k < n && !stopped; k++) {
        const char *path = L->shards[order[k]];
        TarStream *t = tar_stream_open(path, why, sizeof why);
        if (!t) {
            if (!by_sample || L->cfg.rank == 0) skip_sample(L, SKIP_UNREADABLE, path, "(whole shard)", why);   /* counted once */
            continue;
        }
        long got = 0;   /* samples read from this shard (for the end-of-archive warning) */
        for (;;) {
            if (atomic_load(&L->stop)) { stopped = 1; break; }
            RawSample *sp = &L->spare;
            sp->bad = 0;
            sp->why[0] = 0;
            int r = tar_stream_next(t, sp);
            if (r == 0) {
                if (!tar_stream_had_eof_marker(t) && (!by_sample || L->cfg.rank == 0)) warn_no_eof_marker(L, order[k], got);
                break;
            }
            if (r > 0) got++;
            if (by_sample && r > 0 && (pos++ % L->cfg.world) != L->cfg.rank) continue;   /* another rank's */
            if (r < 0) { skip_sample(L, SKIP_UNREADABLE, path, sp->key[0] ? sp->key : "(rest of shard)", sp->why); break; }
            if (sp->bad) { skip_sample(L, sp->bad_label ? SKIP_LABEL : SKIP_MALFORMED, path, sp->key, sp->why); continue; }
            const char *lp = label_problem(L, sp->label, lb, sizeof lb);
            if (lp) { skip_sample(L, SKIP_LABEL, path, sp->key, lp); continue; }
            if (cap <= 1) {
                if (emit(L, sp, 0, sp->label)) { stopped = 1; break; }
            } else if (fill < cap) {
                swap_raw(&L->sbuf[fill++], sp);
            } else {
                int j = (int)shuf_below(&rng, (uint64_t)cap);
                if (emit(L, &L->sbuf[j], 0, L->sbuf[j].label)) { stopped = 1; break; }
                swap_raw(&L->sbuf[j], sp);   /* the new sample takes the emitted one's place */
            }
        }
        tar_stream_close(t);
    }
    while (fill > 0 && !stopped) {   /* drain the buffer in random order */
        int j = (int)shuf_below(&rng, (uint64_t)fill);
        if (emit(L, &L->sbuf[j], 0, L->sbuf[j].label)) break;
        swap_raw(&L->sbuf[j], &L->sbuf[fill - 1]);
        fill--;
    }
    free(order);
}

static int index_label(const Loader *L, long i) {
    return L->kind == SRC_FOLDER ? L->folder.labels[i] : L->h5.labels[i];
}

/* This epoch's indices for this rank: a permutation of 0..N-1 that is the same on every
 * rank (seeded without the rank), then every world-th position from rank. */
static int build_index_order(Loader *L, int epoch) {
    long N = L->nsamples_all;
    long *all = malloc((size_t)(N ? N : 1) * sizeof *all);
    if (!all) return -1;
    for (long i = 0; i < N; i++) all[i] = i;
    if (L->cfg.shuffle) {
        ShufRng rng;
        shuf_rng_seed(&rng, shuf_hash3(L->cfg.seed, (uint64_t)epoch, TAG_INDEX));
        shuf_perm_long(&rng, all, N);
    }
    int w = L->cfg.world, r = L->cfg.rank;
    long k = 0;
    for (long i = r; i < N; i += w) all[k++] = all[i];
    free(L->order);
    L->order = all;
    L->norder = k;
    return 0;
}

static void read_indices(Loader *L) {
    char lb[96];
    for (long k = 0; k < L->norder; k++) {
        long i = L->order[k];
        int label = index_label(L, i);
        const char *lp = label_problem(L, label, lb, sizeof lb);
        if (lp) {
            char key[64];
            snprintf(key, sizeof key, "#%ld", i);
            skip_sample(L, SKIP_LABEL, L->kind == SRC_FOLDER ? L->folder.files[i] : L->spec,
                        L->kind == SRC_FOLDER ? L->folder.files[i] : key, lp);
            continue;
        }
        if (emit(L, NULL, i, label)) break;
    }
}

static void *reader_main(void *arg) {
    Loader *L = arg;
    if (L->kind == SRC_SHARDS) read_shards(L);
    else read_indices(L);
    pthread_mutex_lock(&L->mu);
    L->reader_done = 1;
    pthread_cond_broadcast(&L->cv_work);
    pthread_cond_broadcast(&L->cv_asm);
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

/* ---------------------------------------------------------------- workers */

/* Decode + augment the slot's sample into s->out (or only validate when s->skip).
 * 1 ok, 0 bad sample (warned and counted). */
static int process(Loader *L, Slot *s, long p) {
    char err[256];
    if (L->kind == SRC_H5) {
        if (s->skip) return 1;
        if (h5src_read(&L->h5, s->index, s->out, err, sizeof err)) {
            char key[64];
            snprintf(key, sizeof key, "#%ld", s->index);
            skip_sample(L, SKIP_UNREADABLE, L->spec, key, err);
            return 0;
        }
        return 1;
    }
    RawSample *rs = &s->raw;
    if (L->kind == SRC_FOLDER) {
        rs->bad = 0;
        if (imagefolder_read(&L->folder, (int)s->index, rs) || rs->bad) {
            skip_sample(L, SKIP_UNREADABLE, L->folder.files[s->index], L->folder.files[s->index], rs->why);
            return 0;
        }
    }
    Image img = {0};
    /* Skipped samples (resume) only need to be known valid: decode at the smallest DCT scale. */
    if (image_decode(rs->bytes, rs->nbytes, L->C, s->skip ? 1 : L->min_side, &img, err, sizeof err)) {
        skip_sample(L, SKIP_DECODE, rs->origin, rs->key, err);
        return 0;
    }
    int rc = 0;
    if (!s->skip) {
        if (L->cfg.train) {
            AugRng r;
            aug_rng_for_sample(&r, L->sample_seed, (uint64_t)L->epoch, (uint64_t)p);
            rc = aug_train(&L->cfg.aug, &img, &r, s->out, err, sizeof err);
        } else {
            rc = aug_eval(&L->cfg.aug, &img, s->out, err, sizeof err);
        }
    }
    image_free(&img);
    if (rc) { skip_sample(L, SKIP_AUGMENT, rs->origin, rs->key, err); return 0; }
    return 1;
}

static void *worker_main(void *arg) {
    Loader *L = arg;
    pthread_mutex_lock(&L->mu);
    for (;;) {
        while (!L->stop && L->next_job >= L->filled_end && !L->reader_done) pthread_cond_wait(&L->cv_work, &L->mu);
        if (L->stop || L->next_job >= L->filled_end) break;   /* stopping, or reader done and no job left */
        long p = L->next_job++;
        Slot *s = &L->slots[p % L->nslots];
        s->state = SLOT_BUSY;
        pthread_mutex_unlock(&L->mu);
        int ok = process(L, s, p);
        pthread_mutex_lock(&L->mu);
        s->ok = ok;
        s->state = SLOT_DONE;
        if (p == L->asm_pos) pthread_cond_signal(&L->cv_asm);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

/* ---------------------------------------------------------------- assembler */

static void finish_batch(Loader *L, Batch *b, long batch_index) {
    if (L->mix) {
        AugRng br;
        aug_rng_for_sample(&br, L->sample_seed ^ 0xB, (uint64_t)L->epoch, (uint64_t)batch_index);
        aug_mix_batch(&L->cfg.aug, b, &br);
    }
}

static void *assembler_main(void *arg) {
    Loader *L = arg;
    const int B = L->cfg.batch_size;
    long valid = 0;                       /* valid samples seen this epoch */
    long batch_index = L->skip_batches;   /* index of the batch being filled */
    Batch *b = NULL;
    int end = 0;
    while (!end) {
        pthread_mutex_lock(&L->mu);
        for (;;) {
            if (L->stop) break;
            if (L->asm_pos < L->filled_end && L->slots[L->asm_pos % L->nslots].state == SLOT_DONE) break;
            if (L->reader_done && L->asm_pos == L->filled_end) break;
            pthread_cond_wait(&L->cv_asm, &L->mu);
        }
        if (L->stop) { pthread_mutex_unlock(&L->mu); return NULL; }
        Slot *s = NULL;
        if (L->asm_pos < L->filled_end) s = &L->slots[L->asm_pos % L->nslots];
        else end = 1;
        pthread_mutex_unlock(&L->mu);

        if (s) {
            if (s->ok) {
                if (valid >= L->skip_samples) {
                    if (!b) {
                        b = ring_acquire(&L->ring);   /* waits for a free buffer */
                        if (!b) return NULL;          /* stopping */
                        b->n = 0;
                    }
                    float *dst = b->images + (size_t)b->n * L->sample_floats;
                    if (L->perm) permute_apply(L->perm, L->C, L->S * L->S, s->out, dst);
                    else memcpy(dst, s->out, L->sample_floats * sizeof(float));
                    b->labels[b->n++] = s->label;
                }
                valid++;
            }
            pthread_mutex_lock(&L->mu);
            s->state = SLOT_FREE;
            L->asm_pos++;
            pthread_cond_signal(&L->cv_reader);
            pthread_mutex_unlock(&L->mu);
        }
        if (b && (b->n == B || (end && b->n > 0 && !L->cfg.drop_last))) {
            finish_batch(L, b, batch_index++);
            ring_publish(&L->ring);
            b = NULL;
        }
    }
    pthread_mutex_lock(&L->mu);   /* every slot is processed: the epoch's skip counts are final */
    if (L->skipped_epoch && !L->cfg.quiet) {
        char sum[400], ep[300];
        skip_summary(L->skipped_kind_epoch, L->skipped_epoch, sum, sizeof sum);
        fprintf(stderr, "mixtape: data '%s' epoch %d: %s\n", src_escape(L->spec, ep, sizeof ep), L->epoch, sum);
    }
    pthread_mutex_unlock(&L->mu);
    ring_finish(&L->ring);   /* a partial batch under drop_last is dropped (its buffer reused) */
    return NULL;
}

/* ---------------------------------------------------------------- epochs */

static void stop_epoch(Loader *L) {
    if (!L->running) return;
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->cv_reader);
    pthread_cond_broadcast(&L->cv_work);
    pthread_cond_broadcast(&L->cv_asm);
    pthread_mutex_unlock(&L->mu);
    ring_stop(&L->ring);
    pthread_join(L->reader_th, NULL);
    for (int i = 0; i < L->nworkers; i++) pthread_join(L->worker_th[i], NULL);
    pthread_join(L->asm_th, NULL);
    L->running = 0;
}

int loader_start_epoch_at(Loader *L, int epoch, long batch_index) {
    stop_epoch(L);
    if (L->failed) return -1;
    if (batch_index < 0) batch_index = 0;
    L->epoch = epoch;
    if (L->kind != SRC_SHARDS && build_index_order(L, epoch)) {
        snprintf(L->errmsg, sizeof L->errmsg, "out of memory");
        L->failed = 1;
        return -1;
    }
    for (int i = 0; i < L->nslots; i++) L->slots[i].state = SLOT_FREE;
    L->filled_end = L->next_job = L->asm_pos = 0;
    L->reader_done = 0;
    L->stop = 0;
    L->skip_batches = batch_index;
    L->skip_samples = batch_index * L->cfg.batch_size;
    L->skipped_epoch = 0;
    memset(L->skipped_kind_epoch, 0, sizeof L->skipped_kind_epoch);
    L->last_batch = batch_index - 1;
    ring_reset(&L->ring);
    if (pthread_create(&L->reader_th, NULL, reader_main, L)) {
        fail(L, "cannot start the loader's reader thread");
        return -1;
    }
    int nw = 0, rc = 0;
    while (!rc && nw < L->nworkers)
        if (!(rc = pthread_create(&L->worker_th[nw], NULL, worker_main, L))) nw++;
    int asm_ok = !rc && !pthread_create(&L->asm_th, NULL, assembler_main, L);
    if (!asm_ok) {   /* could not start every thread: stop and join those that did */
        fail(L, "cannot start the loader's threads");
        pthread_join(L->reader_th, NULL);
        for (int i = 0; i < nw; i++) pthread_join(L->worker_th[i], NULL);
        return -1;
    }
    L->running = 1;
    return 0;
}

int loader_start_epoch(Loader *L, int epoch) { return loader_start_epoch_at(L, epoch, 0); }

int loader_next(Loader *L, Batch *out) {
    if (!L->running) {
        if (!L->failed) snprintf(L->errmsg, sizeof L->errmsg, "loader_next before loader_start_epoch");
        return -1;
    }
    double t0 = mt_seconds();
    int rc;
    Batch *b = ring_next(&L->ring, &rc);
    L->wait_s += mt_seconds() - t0;
    pthread_mutex_lock(&L->mu);
    int failed = L->failed;
    pthread_mutex_unlock(&L->mu);
    if (failed) return -1;
    if (!b) return 0;
    *out = *b;
    if (!L->mix) out->soft = NULL;
    L->images += out->n;
    L->last_batch++;
    return 1;
}

/* ---------------------------------------------------------------- counting pass */

static long count_my_shards(Loader *L, int *max_label) {
    long total = 0;
    for (int k = 0; k < L->nmine; k++) {
        long c = shard_count(L->shards[L->mine[k]], max_label);
        if (c < 0) return -1;
        total += c;
    }
    return total;
}

long loader_epoch_size(Loader *L) {
    if (L->epoch_size == -2) {
        if (L->kind == SRC_SHARDS) {
            L->epoch_size = count_my_shards(L, NULL);
            long N = L->epoch_size, w = L->cfg.world, r = L->cfg.rank;
            if (L->by_sample && N >= 0) L->epoch_size = N / w + (r < N % w);
        } else {
            long N = L->nsamples_all, w = L->cfg.world, r = L->cfg.rank;
            L->epoch_size = N / w + (r < N % w);
        }
    }
    return L->epoch_size;
}

long loader_epoch_batches(Loader *L) {
    long n = loader_epoch_size(L), B = L->cfg.batch_size;
    if (n < 0) return -1;
    return L->cfg.drop_last ? n / B : (n + B - 1) / B;
}

/* ---------------------------------------------------------------- open / close */

void loader_config_default(LoaderConfig *c, int train) {
    memset(c, 0, sizeof *c);
    c->batch_size = 32;
    c->train = train;
    c->img_size = 224;
    c->in_chans = 3;
    c->workers = 0;
    c->seed = 42;
    c->shuffle_buffer = -1;
    c->shuffle = -1;
    c->rank = 0;
    c->world = 1;
    c->drop_last = -1;
    c->prefetch = 0;
    c->max_warnings = 10;
    aug_config_default(&c->aug);
}

static int open_shards(Loader *L, char *err, size_t errn) {
    /* Training shards are split by shard: a rank needs only its own, so each host may hold only
     * those (evaluation reads every shard, so every one must be there). */
    int split = L->cfg.train && L->cfg.world > 1;
    if (shard_list_expand_rank(L->spec, split ? L->cfg.rank : 0, split ? L->cfg.world : 1, &L->shards, &L->nshards,
                               err, errn))
        return -1;
    if (L->nshards <= 0) return src_seterr(err, errn, "data '%s': no shards", L->spec);
    int w = L->cfg.world, r = L->cfg.rank;
    /* Evaluation is a fixed set, often one shard: split it by sample, not by shard, so any
     * number of ranks can share it and each sample is counted exactly once. */
    L->by_sample = !L->cfg.train && w > 1;
    if (L->by_sample) { L->cfg.shuffle = 0; w = 1; r = 0; }   /* every rank walks every shard in order */
    if (L->nshards < w)
        return src_seterr(err, errn, "data '%s': %d shard%s for %d ranks; every rank needs at least one shard "
                      "(write more, smaller shards)", L->spec, L->nshards, L->nshards == 1 ? "" : "s", w);
    L->mine = malloc((size_t)L->nshards * sizeof *L->mine);
    if (!L->mine) return src_seterr(err, errn, "out of memory");
    for (int i = r; i < L->nshards; i += w) L->mine[L->nmine++] = i;
    /* classes.txt beside the (first) shard */
    const char *p0 = L->shards[0];
    const char *sl = strrchr(p0, '/');
    size_t dl = sl ? (size_t)(sl - p0) : 0;
    char *cpath = malloc(dl + 16);
    if (!cpath) return src_seterr(err, errn, "out of memory");
    if (sl) { memcpy(cpath, p0, dl); strcpy(cpath + dl, "/classes.txt"); }
    else strcpy(cpath, "classes.txt");
    int rc = classes_read(cpath, &L->class_names, &L->nclass_names, err, errn);
    free(cpath);
    if (rc) return -1;
    if (!(L->eof_warned = calloc((size_t)L->nshards, 1))) return src_seterr(err, errn, "out of memory");
    if (L->cfg.num_classes > 0 && L->nclass_names > L->cfg.num_classes && !L->cfg.quiet && L->cfg.rank == 0)
        fprintf(stderr, "mixtape: warning: classes.txt beside '%s' lists %d classes, %d are used: samples of the "
                        "others are skipped\n", L->spec, L->nclass_names, L->cfg.num_classes);
    if (L->cfg.num_classes <= 0) {
        if (L->nclass_names > 0) L->num_classes = L->nclass_names;
        else {   /* no classes.txt: one pass over every shard's headers for the largest cls */
            int mx = -1;
            long total = 0;
            for (int i = 0; i < L->nshards; i++) {
                long c = shard_count(L->shards[i], &mx);
                char ep[300];
                if (c < 0)
                    return src_seterr(err, errn, "shard '%s': cannot read%s", src_escape(L->shards[i], ep, sizeof ep),
                                  split ? " (every rank reads every shard's headers to count the classes: with "
                                          "shards on some hosts only, put classes.txt beside them or pass "
                                          "--num-classes)" : "");
                total += c;
            }
            if (L->cfg.world == 1) L->epoch_size = total;
            L->num_classes = mx + 1;
        }
    }
    return 0;
}

static int open_folder(Loader *L, char *err, size_t errn) {
    char e2[512];
    if (imagefolder_scan(L->spec, &L->folder, e2, sizeof e2))
        return src_seterr(err, errn, "data '%s': a directory without .tar shards, read as an ImageFolder: %s", L->spec, e2);
    if (L->folder.n <= 0) return src_seterr(err, errn, "data '%s': no images found", L->spec);
    L->nsamples_all = L->folder.n;
    if (L->cfg.num_classes <= 0) L->num_classes = L->folder.nclasses;
    L->class_names = L->folder.classes;   /* borrowed; freed with the folder */
    L->nclass_names = L->folder.nclasses;
    return 0;
}

static int open_h5(Loader *L, char *err, size_t errn) {
    if (h5src_open(&L->h5, L->spec, L->cfg.num_classes, err, errn)) return -1;
    if (L->h5.n <= 0) return src_seterr(err, errn, "data '%s': no samples", L->spec);
    if (L->cfg.img_size > 0 && (L->h5.h != L->cfg.img_size || L->h5.w != L->cfg.img_size))
        return src_seterr(err, errn, "data '%s': images are %dx%d, --img-size is %d", L->spec, L->h5.h, L->h5.w,
                      L->cfg.img_size);
    if (L->h5.h != L->h5.w) return src_seterr(err, errn, "data '%s': images are %dx%d, not square", L->spec, L->h5.h, L->h5.w);
    if (L->cfg.in_chans > 0 && L->h5.c != L->cfg.in_chans)
        return src_seterr(err, errn, "data '%s': images have %d channels, --in-chans is %d", L->spec, L->h5.c,
                      L->cfg.in_chans);
    L->nsamples_all = L->h5.n;
    if (L->cfg.num_classes <= 0) L->num_classes = L->h5.max_label + 1;
    return 0;
}

Loader *loader_open(const LoaderConfig *cfg, char *err, size_t errn) {
    if (!cfg || !cfg->spec || !*cfg->spec) { src_seterr(err, errn, "no data given"); return NULL; }
    if (cfg->batch_size < 1) { src_seterr(err, errn, "batch size %d: must be >= 1", cfg->batch_size); return NULL; }
    int world = cfg->world < 1 ? 1 : cfg->world;
    if (cfg->rank < 0 || cfg->rank >= world) { src_seterr(err, errn, "rank %d outside world size %d", cfg->rank, world); return NULL; }
    if (cfg->num_classes > DATA_MAX_CLASSES) {
        src_seterr(err, errn, "%d classes: at most %d", cfg->num_classes, DATA_MAX_CLASSES);
        return NULL;
    }
    Loader *L = calloc(1, sizeof *L);
    if (!L) { src_seterr(err, errn, "out of memory"); return NULL; }
    L->cfg = *cfg;
    LoaderConfig *c = &L->cfg;
    c->world = world;
    if (c->shuffle < 0) c->shuffle = c->train;
    if (c->drop_last < 0) c->drop_last = c->train;
    if (c->shuffle_buffer < 0) c->shuffle_buffer = c->train ? 4096 : 0;
    if (c->max_warnings <= 0) c->max_warnings = 10;
    if (c->prefetch <= 0) c->prefetch = 3;
    if (c->workers <= 0) { long nc = sysconf(_SC_NPROCESSORS_ONLN); c->workers = nc > 0 ? (int)nc : 1; }
    if (c->workers > 256) c->workers = 256;
    L->spec = strdup(cfg->spec);
    c->spec = L->spec;
    L->epoch_size = -2;
    L->num_classes = c->num_classes > 0 ? c->num_classes : 0;
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv_reader, NULL);
    pthread_cond_init(&L->cv_work, NULL);
    pthread_cond_init(&L->cv_asm, NULL);
    if (!L->spec) { src_seterr(err, errn, "out of memory"); goto fail; }

    const char *s = L->spec;
    int rc;
    if (((ends_ci(s, ".h5") || ends_ci(s, ".hdf5")) && !is_dir(s)) || (is_file(s) && h5data_probe(s) == 1)) {
        L->kind = SRC_H5;
        if (!is_file(s)) { src_seterr(err, errn, "data '%s': no such file", s); goto fail; }
        rc = open_h5(L, err, errn);
    } else if (is_dir(s) && !dir_has_tars(s)) {
        L->kind = SRC_FOLDER;
        rc = open_folder(L, err, errn);
    } else {
        L->kind = SRC_SHARDS;
        rc = open_shards(L, err, errn);
    }
    if (rc) goto fail;
    if (L->kind != SRC_SHARDS && L->nsamples_all < world) {
        src_seterr(err, errn, "data '%s': %ld samples for %d ranks", s, L->nsamples_all, world);
        goto fail;
    }

    if (L->kind == SRC_H5) { L->C = L->h5.c; L->S = L->h5.h; }
    else {
        L->C = c->in_chans > 0 ? c->in_chans : 3;
        L->S = c->img_size > 0 ? c->img_size : 224;
        if (L->C != 1 && L->C != 3) { src_seterr(err, errn, "in_chans %d: must be 1 or 3", L->C); goto fail; }
    }
    c->img_size = L->S;
    c->in_chans = L->C;
    c->aug.img_size = L->S;
    c->aug.in_chans = L->C;
    char aerr[256];
    if (L->kind != SRC_H5 && aug_config_check(&c->aug, aerr, sizeof aerr)) {
        src_seterr(err, errn, "augmentation: %s", aerr);
        goto fail;
    }
    L->sample_floats = (size_t)L->C * L->S * L->S;
    if (c->aug.permute.mode != PERMUTE_NONE && !(L->perm = permute_table(&c->aug.permute, L->S, aerr, sizeof aerr))) {
        src_seterr(err, errn, "data '%s': %s", s, aerr);
        goto fail;
    }
    L->mix = c->train && aug_mixup_active(&c->aug) && L->num_classes > 0;
    if (c->fast_decode) {
        float cp = c->aug.crop_pct > 0 ? c->aug.crop_pct : 0.875f;
        L->min_side = c->train ? L->S : (int)(L->S / cp);
    }
    L->sample_seed = c->rank ? c->seed ^ shuf_hash(c->seed, (uint64_t)c->rank) : c->seed;

    /* buffers: slots for samples in flight, the shuffle buffer, the batch ring */
    L->nworkers = c->workers;
    L->nslots = 4 * L->nworkers + 16;
    L->slots = calloc((size_t)L->nslots, sizeof *L->slots);
    L->worker_th = calloc((size_t)L->nworkers, sizeof *L->worker_th);
    if (!L->slots || !L->worker_th) { src_seterr(err, errn, "out of memory"); goto fail; }
    for (int i = 0; i < L->nslots; i++)
        if (!(L->slots[i].out = malloc(L->sample_floats * sizeof(float)))) { src_seterr(err, errn, "out of memory"); goto fail; }
    if (L->kind == SRC_SHARDS && c->shuffle && c->shuffle_buffer > 1) {
        L->sbuf_n = c->shuffle_buffer;
        if (!(L->sbuf = calloc((size_t)L->sbuf_n, sizeof *L->sbuf))) { src_seterr(err, errn, "out of memory"); goto fail; }
    }
    if (ring_init(&L->ring, c->prefetch + 1, c->batch_size, L->C, L->S, L->S, L->num_classes, L->mix)) {
        src_seterr(err, errn, "out of memory for %d batches of %d x %d x %d x %d", c->prefetch + 1, c->batch_size, L->C,
               L->S, L->S);
        goto fail;
    }
    return L;
fail:
    loader_close(L);
    return NULL;
}

void loader_close(Loader *L) {
    if (!L) return;
    stop_epoch(L);
    ring_free(&L->ring);
    if (L->slots)
        for (int i = 0; i < L->nslots; i++) { free(L->slots[i].out); raw_sample_free(&L->slots[i].raw); }
    free(L->slots);
    free(L->worker_th);
    if (L->sbuf)
        for (int i = 0; i < L->sbuf_n; i++) raw_sample_free(&L->sbuf[i]);
    free(L->sbuf);
    raw_sample_free(&L->spare);
    if (L->kind == SRC_SHARDS) classes_free(L->class_names, L->nclass_names);
    if (L->shards) shard_list_free(L->shards, L->nshards);
    free(L->mine);
    free(L->eof_warned);
    free(L->perm);
    if (L->kind == SRC_FOLDER) imagefolder_free(&L->folder);
    if (L->kind == SRC_H5) h5src_close(&L->h5);
    free(L->order);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv_reader);
    pthread_cond_destroy(&L->cv_work);
    pthread_cond_destroy(&L->cv_asm);
    free(L->spec);
    free(L);
}

/* ---------------------------------------------------------------- accessors */

long loader_batch_index(const Loader *L) { return L->last_batch; }
long loader_skipped(const Loader *L) {
    pthread_mutex_lock((pthread_mutex_t *)&L->mu);
    long v = L->skipped_total;
    pthread_mutex_unlock((pthread_mutex_t *)&L->mu);
    return v;
}
long loader_skipped_epoch(const Loader *L) {
    pthread_mutex_lock((pthread_mutex_t *)&L->mu);
    long v = L->skipped_epoch;
    pthread_mutex_unlock((pthread_mutex_t *)&L->mu);
    return v;
}
double loader_wait_seconds(const Loader *L) { return L->wait_s; }
long loader_images(const Loader *L) { return L->images; }
int loader_num_classes(const Loader *L) { return L->num_classes; }
int loader_num_class_names(const Loader *L) { return L->nclass_names; }
const char *const *loader_class_names(const Loader *L) {
    return L->nclass_names > 0 ? (const char *const *)L->class_names : NULL;
}
void loader_skip_summary(const Loader *L, char *buf, size_t n) {
    pthread_mutex_lock((pthread_mutex_t *)&L->mu);
    skip_summary(L->skipped_kind, L->skipped_total, buf, n);
    pthread_mutex_unlock((pthread_mutex_t *)&L->mu);
}
char *const *loader_shard_list(const Loader *L, int *n) {
    *n = L->kind == SRC_SHARDS ? L->nshards : 0;
    return L->kind == SRC_SHARDS ? L->shards : NULL;
}

int loader_num_shards(const Loader *L) { return L->kind == SRC_SHARDS ? L->nmine : 0; }
int loader_channels(const Loader *L) { return L->C; }
int loader_img_size(const Loader *L) { return L->S; }
const char *loader_kind(const Loader *L) {
    return L->kind == SRC_SHARDS ? "shards" : L->kind == SRC_FOLDER ? "imagefolder" : "hdf5";
}
const char *loader_error(const Loader *L) { return L->errmsg; }
