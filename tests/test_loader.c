/* The batching pipeline: determinism across worker counts, exactly-once epochs, drop_last,
 * epoch orders, distributed splits, bad samples, missing shards, ImageFolder, HDF5 and
 * exact resume. Data: small solid-colour PNGs whose colour encodes the sample id, so that
 * the id survives resizing / cropping / flips and can be read back from the batches. */
#define _GNU_SOURCE
#include "data/augment.h"
#include "data/loader.h"
#include "data/source.h"
#include "data/tar_writer.h"
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"


#define NSHARDS 4
#define PER_SHARD 25
#define NSAMPLES (NSHARDS * PER_SHARD)
#define NCLASSES 10
#define SRC_SIDE 12
#define IMG 8

static char root[256];

static void die(const char *what, const char *err) {
    fprintf(stderr, "FATAL %s: %s\n", what, err);
    exit(1);
}

/* A solid RGB PNG: R = id, G = 255 - id, B = 77. */
static void png_for(int id, uint8_t **png, size_t *n) {
    Image im;
    if (image_alloc(&im, SRC_SIDE, SRC_SIDE, 3)) die("image_alloc", "");
    for (int i = 0; i < SRC_SIDE * SRC_SIDE; i++) {
        im.px[3 * i] = (uint8_t)id;
        im.px[3 * i + 1] = (uint8_t)(255 - id);
        im.px[3 * i + 2] = 77;
    }
    if (image_encode_png(&im, png, n)) die("image_encode_png", "");
    image_free(&im);
}

static void add_member(TarWriter *w, const char *name, const void *d, size_t n) {
    char err[256];
    if (tar_writer_add(w, name, d, n, err, sizeof err)) die("tar_writer_add", err);
}

static void add_sample(TarWriter *w, int id, const char *cls) {
    char name[64];
    uint8_t *png;
    size_t n;
    png_for(id, &png, &n);
    snprintf(name, sizeof name, "s%05d.png", id);
    add_member(w, name, png, n);
    free(png);
    if (cls) {
        snprintf(name, sizeof name, "s%05d.cls", id);
        add_member(w, name, cls, strlen(cls));
    }
}

static void write_classes(const char *dir, int n) {
    char path[512];
    snprintf(path, sizeof path, "%s/classes.txt", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < n; i++) fprintf(f, "class%d\n", i);
    fclose(f);
}

/* dir/shard-00000{0..3}.tar with ids 0..99 (label id % 10). With bad = 1, shard 1 also holds
 * a corrupt PNG, a sample without cls, one with a non-numeric cls and one out of range;
 * with badshard = 1 an extra shard of garbage bytes follows. */
static void make_shards(const char *dir, int bad, int badshard) {
    mkdir(dir, 0755);
    char err[256], path[512];
    for (int s = 0; s < NSHARDS; s++) {
        snprintf(path, sizeof path, "%s/shard-%06d.tar", dir, s);
        TarWriter *w = tar_writer_open(path, err, sizeof err);
        if (!w) die("tar_writer_open", err);
        for (int k = 0; k < PER_SHARD; k++) {
            int id = s * PER_SHARD + k;
            char cls[16];
            snprintf(cls, sizeof cls, "%d", id % NCLASSES);
            add_sample(w, id, cls);
            if (bad && s == 1 && k == 3) {
                static const char junk[] = "\x89PNG\r\n\x1a\nthis is no png at all........";
                add_member(w, "bad0.png", junk, sizeof junk - 1);
                add_member(w, "bad0.cls", "1", 1);
                add_sample(w, 200, NULL);        /* no cls */
                add_sample(w, 201, "seven");     /* non-numeric cls */
                add_sample(w, 202, "99");        /* out of range */
            }
        }
        if (tar_writer_close(w, err, sizeof err)) die("tar_writer_close", err);
    }
    if (badshard) {
        snprintf(path, sizeof path, "%s/shard-%06d.tar", dir, NSHARDS);
        FILE *f = fopen(path, "wb");
        for (int i = 0; i < 5000; i++) fputc((i * 7919 + 13) & 255, f);
        fclose(f);
    }
    write_classes(dir, NCLASSES);
}

static void make_folder(const char *dir) {
    mkdir(dir, 0755);
    const char *cls[3] = {"ant", "bee", "cat"};
    for (int c = 0; c < 3; c++) {
        char d[600];
        snprintf(d, sizeof d, "%s/%s", dir, cls[c]);
        mkdir(d, 0755);
        for (int k = 0; k < 10; k++) {
            int id = c * 10 + k;
            char p[1100];
            snprintf(p, sizeof p, "%s/img%03d.png", d, id);
            uint8_t *png;
            size_t n;
            png_for(id, &png, &n);
            FILE *f = fopen(p, "wb");
            fwrite(png, 1, n, f);
            fclose(f);
            free(png);
        }
    }
}

#define H5N 37
static void make_h5(const char *path) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[4] = {H5N, 3, IMG, IMG}, ld[1] = {H5N};
    hid_t sp = H5Screate_simple(4, dims, NULL), sl = H5Screate_simple(1, ld, NULL);
    hid_t di = H5Dcreate2(f, "images", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t dl = H5Dcreate2(f, "labels", H5T_STD_I64LE, sl, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    float *img = malloc(sizeof(float) * H5N * 3 * IMG * IMG);
    int64_t lab[H5N];
    for (int i = 0; i < H5N; i++) {
        for (int j = 0; j < 3 * IMG * IMG; j++) img[(size_t)i * 3 * IMG * IMG + j] = (float)i + 0.001f * (float)j;
        lab[i] = i % 5;
    }
    H5Dwrite(di, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, img);
    H5Dwrite(dl, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab);
    free(img);
    H5Dclose(di); H5Dclose(dl); H5Sclose(sp); H5Sclose(sl); H5Fclose(f);
}

/* ---- running epochs ---- */

typedef struct Run {
    int nbatches;
    int sizes[256];
    long nfloats, nlabels, nsoft;
    float *img;     /* all images, concatenated */
    int *lab;
    float *soft;
    int ids[4096];  /* decoded ids, in order (solid images only) */
    int nids;
    long skipped;
    int rc;         /* last loader_next code */
} Run;

static void run_free(Run *r) { free(r->img); free(r->lab); free(r->soft); memset(r, 0, sizeof *r); }

/* Sample id from a normalised solid image (R channel), -1 when not solid / inconsistent. */
static int decode_id(const LoaderConfig *cfg, const float *chw, int S) {
    float m0 = aug_mean(&cfg->aug, 3, 0), s0 = aug_std(&cfg->aug, 3, 0);
    float m1 = aug_mean(&cfg->aug, 3, 1), s1 = aug_std(&cfg->aug, 3, 1);
    int r = (int)lrintf((chw[0] * s0 + m0) * 255.f), g = (int)lrintf((chw[S * S] * s1 + m1) * 255.f);
    for (int i = 1; i < S * S; i++)
        if (fabsf(chw[i] - chw[0]) > 1e-5f) return -1;
    return r + g == 255 ? r : -1;
}

/* Opens a loader on cfg, runs `epoch` from batch `start` to its end (or `maxb` batches). */
static Run run_epoch(const LoaderConfig *cfg, int epoch, long start, int maxb, int solid) {
    Run r;
    memset(&r, 0, sizeof r);
    char err[512];
    Loader *L = loader_open(cfg, err, sizeof err);
    if (!L) die("loader_open", err);
    if (loader_start_epoch_at(L, epoch, start)) die("start", loader_error(L));
    Batch b;
    int S = loader_img_size(L), C = loader_channels(L);
    size_t per = (size_t)C * S * S;
    while ((r.rc = loader_next(L, &b)) == 1 && (maxb <= 0 || r.nbatches < maxb)) {
        r.sizes[r.nbatches++] = b.n;
        r.img = realloc(r.img, sizeof(float) * (r.nfloats + (long)b.n * per));
        memcpy(r.img + r.nfloats, b.images, sizeof(float) * b.n * per);
        r.nfloats += (long)b.n * per;
        r.lab = realloc(r.lab, sizeof(int) * (r.nlabels + b.n));
        memcpy(r.lab + r.nlabels, b.labels, sizeof(int) * b.n);
        r.nlabels += b.n;
        if (b.soft) {
            r.soft = realloc(r.soft, sizeof(float) * (r.nsoft + (long)b.n * b.num_classes));
            memcpy(r.soft + r.nsoft, b.soft, sizeof(float) * b.n * b.num_classes);
            r.nsoft += (long)b.n * b.num_classes;
        }
        if (solid)
            for (int i = 0; i < b.n && r.nids < 4096; i++) r.ids[r.nids++] = decode_id(cfg, b.images + i * per, S);
    }
    r.skipped = loader_skipped(L);
    loader_close(L);
    return r;
}

static int same_run(const Run *a, const Run *b) {
    if (a->nbatches != b->nbatches || a->nfloats != b->nfloats || a->nlabels != b->nlabels || a->nsoft != b->nsoft)
        return 0;
    if (memcmp(a->sizes, b->sizes, sizeof(int) * a->nbatches)) return 0;
    if (memcmp(a->img, b->img, sizeof(float) * a->nfloats)) return 0;
    if (memcmp(a->lab, b->lab, sizeof(int) * a->nlabels)) return 0;
    if (a->nsoft && memcmp(a->soft, b->soft, sizeof(float) * a->nsoft)) return 0;
    return 1;
}

static LoaderConfig base_cfg(const char *spec, int train) {
    LoaderConfig c;
    loader_config_default(&c, train);
    c.spec = spec;
    c.batch_size = 8;
    c.img_size = IMG;
    c.workers = 2;
    c.seed = 1234;
    c.shuffle_buffer = 16;
    c.quiet = 1;
    c.aug.color_jitter[0] = c.aug.color_jitter[1] = c.aug.color_jitter[2] = 0; /* keep images solid */
    return c;
}

/* Every id in [0, n) exactly once in ids (ignoring entries equal to -2). */
static int exactly_once(const int *ids, int nids, int n, int *seen) {
    memset(seen, 0, sizeof(int) * (size_t)n);
    for (int i = 0; i < nids; i++) {
        if (ids[i] < 0 || ids[i] >= n) return 0;
        if (seen[ids[i]]++) return 0;
    }
    return 1;
}

static void test_determinism_and_epochs(const char *dir) {
    LoaderConfig c = base_cfg(dir, 1);
    Run r[3];
    for (int w = 1; w <= 3; w++) {
        c.workers = w;
        r[w - 1] = run_epoch(&c, 0, 0, 0, 1);
    }
    CHECK(r[0].nbatches == NSAMPLES / 8, "train epoch: %d batches, want %d", r[0].nbatches, NSAMPLES / 8);
    CHECK(same_run(&r[0], &r[1]), "1 vs 2 workers differ");
    CHECK(same_run(&r[0], &r[2]), "1 vs 3 workers differ");
    int seen[NSAMPLES];
    CHECK(r[0].nids == NSAMPLES / 8 * 8, "train: %d samples", r[0].nids);
    int ok = 1;
    for (int i = 0; i < r[0].nids; i++) ok &= r[0].ids[i] >= 0 && r[0].lab[i] == r[0].ids[i] % NCLASSES;
    CHECK(ok, "train: an image is not solid or its label is wrong");
    memset(seen, 0, sizeof seen);
    int dup = 0;
    for (int i = 0; i < r[0].nids; i++) if (r[0].ids[i] >= 0 && seen[r[0].ids[i]]++) dup = 1;
    CHECK(!dup, "train: a sample seen twice");
    /* another epoch: another order; same epoch again: the same */
    Run e1 = run_epoch(&c, 1, 0, 0, 1), e0 = run_epoch(&c, 0, 0, 0, 1);
    CHECK(same_run(&e0, &r[2]), "epoch 0 run twice differs");
    CHECK(e1.nids == e0.nids && memcmp(e1.ids, e0.ids, sizeof(int) * e0.nids) != 0, "epochs 0 and 1 in the same order");
    /* another seed: another order */
    c.seed = 99;
    Run s2 = run_epoch(&c, 0, 0, 0, 1);
    CHECK(memcmp(s2.ids, e0.ids, sizeof(int) * e0.nids) != 0, "seeds 1234 and 99 give the same order");
    run_free(&s2); run_free(&e0); run_free(&e1);
    for (int i = 0; i < 3; i++) run_free(&r[i]);

    /* eval: keeps the partial batch, no shuffle, every sample once */
    LoaderConfig ce = base_cfg(dir, 0);
    Run ev = run_epoch(&ce, 0, 0, 0, 1);
    CHECK(ev.nbatches == (NSAMPLES + 7) / 8 && ev.sizes[ev.nbatches - 1] == NSAMPLES % 8,
          "eval: %d batches, last %d", ev.nbatches, ev.nbatches ? ev.sizes[ev.nbatches - 1] : -1);
    CHECK(exactly_once(ev.ids, ev.nids, NSAMPLES, seen), "eval: not every sample exactly once");
    int inorder = 1;
    for (int i = 0; i < ev.nids; i++) inorder &= ev.ids[i] == i;
    CHECK(inorder, "eval without shuffle: not in shard order");
    run_free(&ev);

    /* train with shuffle but keep the last batch: all 100 once */
    c.seed = 1234;
    c.drop_last = 0;
    Run all = run_epoch(&c, 3, 0, 0, 1);
    CHECK(exactly_once(all.ids, all.nids, NSAMPLES, seen), "train without drop_last: not every sample once");
    run_free(&all);

    /* epoch size and classes */
    char err[256];
    Loader *L = loader_open(&c, err, sizeof err);
    CHECK(L && loader_epoch_size(L) == NSAMPLES, "epoch size %ld", L ? loader_epoch_size(L) : -1);
    CHECK(L && loader_num_classes(L) == NCLASSES, "num_classes %d", L ? loader_num_classes(L) : -1);
    CHECK(L && !strcmp(loader_kind(L), "shards"), "kind");
    /* abandoning an epoch midway and starting another is fine */
    Batch b;
    if (L) {
        loader_start_epoch(L, 0);
        CHECK(loader_next(L, &b) == 1, "first batch");
        loader_start_epoch(L, 1);
        int k = 0;
        while (loader_next(L, &b) == 1) k++;
        CHECK(k == (NSAMPLES + 7) / 8, "restarted epoch (no drop_last): %d batches", k);
        CHECK(loader_wait_seconds(L) >= 0, "wait");
    }
    loader_close(L);
}

static void test_split(const char *spec, int n, int world) {
    int seen[4096] = {0}, total = 0, ok = 1;
    for (int r = 0; r < world; r++) {
        LoaderConfig c = base_cfg(spec, 1);
        c.drop_last = 0;
        c.rank = r;
        c.world = world;
        Run run = run_epoch(&c, 2, 0, 0, 1);
        char err[256];
        Loader *L = loader_open(&c, err, sizeof err);
        CHECK(L && loader_epoch_size(L) == run.nids, "%s rank %d/%d: epoch size %ld, got %d samples", spec, r, world,
              L ? loader_epoch_size(L) : -1, run.nids);
        loader_close(L);
        for (int i = 0; i < run.nids; i++) {
            if (run.ids[i] < 0 || run.ids[i] >= n) { ok = 0; continue; }
            if (seen[run.ids[i]]++) ok = 0;
            total++;
        }
        run_free(&run);
    }
    CHECK(ok && total == n, "%s over %d ranks: %d samples, overlap or bad id (%d)", spec, world, total, ok);
}

static void test_bad_samples(void) {
    char dir[512], err[512];
    snprintf(dir, sizeof dir, "%s/bad", root);
    make_shards(dir, 1, 1);
    LoaderConfig c = base_cfg(dir, 0);
    c.quiet = 0;   /* show the warning lines once */
    c.max_warnings = 3;
    fprintf(stderr, "(expected warnings follow)\n");
    Run r = run_epoch(&c, 0, 0, 0, 1);
    int seen[NSAMPLES];
    CHECK(r.rc == 0, "bad data: epoch did not end normally (rc %d)", r.rc);
    CHECK(exactly_once(r.ids, r.nids, NSAMPLES, seen), "bad data: valid samples not all once (%d)", r.nids);
    CHECK(r.skipped == 5, "bad data: skipped %ld, want 5 (4 samples + 1 broken shard)", r.skipped);
    run_free(&r);
    /* same in train mode, more workers, determinism kept */
    c = base_cfg(dir, 1);
    c.workers = 1;
    Run a = run_epoch(&c, 0, 0, 0, 1);
    c.workers = 3;
    Run b = run_epoch(&c, 0, 0, 0, 1);
    CHECK(same_run(&a, &b) && a.nbatches == NSAMPLES / 8, "bad data, train: runs differ or %d batches", a.nbatches);
    run_free(&a); run_free(&b);

    /* missing shard: error at open naming it */
    char spec[600];
    snprintf(spec, sizeof spec, "%s/shard-{000000..000009}.tar", dir);
    c.spec = spec;
    Loader *L = loader_open(&c, err, sizeof err);
    CHECK(!L && strstr(err, "shard-000005.tar"), "missing shard: '%s'", L ? "(opened)" : err);
    loader_close(L);
    snprintf(spec, sizeof spec, "%s/nothing-here", root);
    c.spec = spec;
    L = loader_open(&c, err, sizeof err);
    CHECK(!L && strstr(err, "nothing-here"), "missing dir: '%s'", L ? "(opened)" : err);
    loader_close(L);
    snprintf(spec, sizeof spec, "%s/shard-{000000..00", dir);
    c.spec = spec;
    L = loader_open(&c, err, sizeof err);
    CHECK(!L && *err, "bad pattern accepted");
    loader_close(L);
}

static void test_too_few_shards(const char *dir) {
    LoaderConfig c = base_cfg(dir, 1);
    c.world = NSHARDS + 1;
    c.rank = 0;
    char err[512] = "";
    Loader *L = loader_open(&c, err, sizeof err);
    CHECK(!L && strstr(err, "rank"), "shards < world accepted: '%s'", err);
    loader_close(L);
}

static void test_resume(const char *dir, int mix) {
    LoaderConfig c = base_cfg(dir, 1);
    if (mix) c.aug.mixup = 0.8f, c.aug.cutmix = 1.0f;
    c.workers = 2;
    Run full = run_epoch(&c, 1, 0, 0, 0);
    static const int ks[] = {1, 4, 7, 10};
    for (int ki = 0; ki < 4; ki++) {
        int k = ks[ki];
        c.workers = 1 + ki % 3;
        Run tail = run_epoch(&c, 1, k, 0, 0);
        CHECK(tail.nbatches == full.nbatches - k, "resume at %d: %d batches of %d", k, tail.nbatches, full.nbatches);
        long per = full.nfloats / full.nlabels;
        int same = tail.nlabels == full.nlabels - 8L * k &&
                   !memcmp(tail.img, full.img + 8L * k * per, sizeof(float) * tail.nfloats) &&
                   !memcmp(tail.lab, full.lab + 8L * k, sizeof(int) * tail.nlabels);
        if (mix) {
            long sp = full.nsoft / full.nlabels;
            same = same && full.nsoft > 0 && !memcmp(tail.soft, full.soft + 8L * k * sp, sizeof(float) * tail.nsoft);
        }
        CHECK(same, "resume at batch %d (%s) differs from consuming %d batches", k, dir, k);
        run_free(&tail);
    }
    run_free(&full);
}

static void test_folder(const char *dir) {
    LoaderConfig c = base_cfg(dir, 0);
    Run r = run_epoch(&c, 0, 0, 0, 1);
    int seen[30];
    CHECK(exactly_once(r.ids, r.nids, 30, seen), "imagefolder: not every image once (%d)", r.nids);
    int ok = 1;
    for (int i = 0; i < r.nids; i++) ok &= r.lab[i] == r.ids[i] / 10;
    CHECK(ok, "imagefolder: wrong labels");
    run_free(&r);
    char err[256];
    Loader *L = loader_open(&c, err, sizeof err);
    CHECK(L && loader_num_classes(L) == 3 && !strcmp(loader_kind(L), "imagefolder") &&
              !strcmp(loader_class_names(L)[2], "cat"), "imagefolder classes");
    loader_close(L);
    /* train: deterministic across workers, a full permutation */
    c = base_cfg(dir, 1);
    c.drop_last = 0;
    c.workers = 1;
    Run a = run_epoch(&c, 0, 0, 0, 1);
    c.workers = 3;
    Run b = run_epoch(&c, 0, 0, 0, 1);
    CHECK(same_run(&a, &b), "imagefolder train: 1 vs 3 workers differ");
    CHECK(exactly_once(a.ids, a.nids, 30, seen), "imagefolder train: not a permutation");
    run_free(&a); run_free(&b);
    test_split(dir, 30, 2);
    test_split(dir, 30, 3);
}

static void test_h5(const char *path) {
    make_h5(path);
    LoaderConfig c = base_cfg(path, 0);
    c.img_size = 0;
    Run r = run_epoch(&c, 0, 0, 0, 0);
    CHECK(r.nlabels == H5N && r.nbatches == (H5N + 7) / 8, "h5 eval: %ld samples, %d batches", r.nlabels, r.nbatches);
    int ok = 1;
    for (int i = 0; i < r.nlabels && ok; i++) {
        ok &= r.lab[i] == i % 5;
        for (int j = 0; j < 3 * IMG * IMG; j++) ok &= r.img[(size_t)i * 3 * IMG * IMG + j] == (float)i + 0.001f * (float)j;
    }
    CHECK(ok, "h5 eval: images / labels not exact and in order");
    run_free(&r);
    char err[256];
    Loader *L = loader_open(&c, err, sizeof err);
    CHECK(L && loader_num_classes(L) == 5 && loader_epoch_size(L) == H5N && loader_img_size(L) == IMG, "h5 meta");
    loader_close(L);
    /* train: shuffled, deterministic, each row once per epoch (no drop) */
    c = base_cfg(path, 1);
    c.drop_last = 0;
    c.workers = 1;
    Run a = run_epoch(&c, 0, 0, 0, 0);
    c.workers = 3;
    Run b = run_epoch(&c, 0, 0, 0, 0);
    CHECK(same_run(&a, &b), "h5 train: 1 vs 3 workers differ");
    int seen[H5N] = {0}, perm = a.nlabels == H5N, moved = 0;
    for (int i = 0; i < a.nlabels; i++) {
        int id = (int)lrintf(a.img[(size_t)i * 3 * IMG * IMG]);
        if (id < 0 || id >= H5N || seen[id]++) perm = 0;
        else moved += id != i;
    }
    CHECK(perm && moved > 0, "h5 train: not a shuffled permutation");
    run_free(&a); run_free(&b);
    /* split over 2 ranks: disjoint and complete */
    int cnt[H5N] = {0}, total = 0;
    for (int rk = 0; rk < 2; rk++) {
        c.rank = rk;
        c.world = 2;
        Run s = run_epoch(&c, 5, 0, 0, 0);
        for (int i = 0; i < s.nlabels; i++) {
            int id = (int)lrintf(s.img[(size_t)i * 3 * IMG * IMG]);
            if (id >= 0 && id < H5N) cnt[id]++;
            total++;
        }
        run_free(&s);
    }
    ok = total == H5N;
    for (int i = 0; i < H5N; i++) ok &= cnt[i] == 1;
    CHECK(ok, "h5 split over 2 ranks not disjoint / complete");
    /* wrong img size -> error */
    c = base_cfg(path, 0);
    c.img_size = 16;
    L = loader_open(&c, err, sizeof err);
    CHECK(!L && strstr(err, "16"), "h5 with wrong img size accepted");
    loader_close(L);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/test_loader_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) die("mkdtemp", root);
    char shards[512], folder[512], h5[512], spec[600];
    snprintf(shards, sizeof shards, "%s/shards", root);
    snprintf(folder, sizeof folder, "%s/folder", root);
    snprintf(h5, sizeof h5, "%s/data.h5", root);
    make_shards(shards, 0, 0);
    make_folder(folder);

    test_determinism_and_epochs(shards);
    snprintf(spec, sizeof spec, "%s/shard-{000000..000003}.tar", shards);
    test_split(spec, NSAMPLES, 2);
    test_split(spec, NSAMPLES, 3);
    test_too_few_shards(shards);
    test_bad_samples();
    test_resume(shards, 0);
    test_resume(shards, 1);
    char bad[512];
    snprintf(bad, sizeof bad, "%s/bad", root);
    test_resume(bad, 1);
    test_folder(folder);
    test_h5(h5);

    /* the bench-data command on the same shards */
    const char *bin = getenv("MIXTAPE");
    char cmd[1200];
    if (bin && *bin) {
        snprintf(cmd, sizeof cmd, "'%s' bench-data --data '%s' --img-size %d -b 8 -j 2 --batches 20 --mixup 0.5 "
                 "--scale 0.5 1.0 --shuffle-buffer 8 > '%s/bench.txt' 2>&1", bin, shards, IMG, root);
        int rc = system(cmd);
        char path[600], line[512];
        snprintf(path, sizeof path, "%s/bench.txt", root);
        FILE *f = fopen(path, "r");
        int found = 0;
        while (f && fgets(line, sizeof line, f)) found |= strstr(line, "img/s") != NULL;
        if (f) fclose(f);
        CHECK(rc == 0 && found, "mixtape bench-data: exit %d, img/s line %s", rc, found ? "found" : "missing");
        snprintf(cmd, sizeof cmd, "'%s' bench-data --data '%s/none-{0..3}.tar' > /dev/null 2>&1", bin, root);
        rc = system(cmd);
        CHECK(rc != 0, "mixtape bench-data on missing shards: exit 0");
    }

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", root);
    return check_summary("test_loader");
}
