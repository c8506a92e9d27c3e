/* Robustness of the formats layer on damaged input (seeded, reproducible):
 *  - a shard (plain and gzip'd) with random truncations and byte flips, read to the end: every
 *    tar_stream_next returns, bad samples carry a reason, intact samples come out unchanged
 *    (checked exactly when only truncation was applied), decoding what comes out never crashes;
 *  - JPEG / PNG decoders on random bytes and on mutated valid files;
 *  - classes.txt / shard list files with random bytes.
 * An alarm turns a hang into a failure. Run it under the sanitizer build as well. */
#define _GNU_SOURCE
#include "data/source.h"
#include "data/tar_writer.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include "check.h"
#include "testfiles.h"


static uint64_t rng;
static uint32_t rnd(void) {
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return (uint32_t)((rng * 2685821657736338717ull) >> 32);
}

static char TMP[256];
static const char *current = "start";
static void on_alarm(int sig) {
    (void)sig;
    static const char m[] = "test_data_fuzz: timed out (hang?) in ";
    if (write(2, m, sizeof m - 1) < 0) {}
    if (write(2, current, strlen(current)) < 0) {}
    if (write(2, "\n", 1) < 0) {}
    _exit(3);
}

#define NS 16
typedef struct { char key[32]; uint8_t *img; size_t n; int label; } Orig;
static Orig orig[NS];

static void make_image(Image *im, int i) {
    image_alloc(im, 12 + i, 10 + (i % 5), i % 3 == 0 ? 1 : 3);
    for (size_t k = 0; k < (size_t)im->w * im->h * im->c; k++) im->px[k] = (uint8_t)(k * 7 + i * 31);
}

/* A shard of NS samples alternating PNG / JPEG, some with json members. */
static void build_shard(const char *path) {
    char err[256];
    TarWriter *w = tar_writer_open(path, err, sizeof err);
    for (int i = 0; i < NS; i++) {
        Image im;
        make_image(&im, i);
        snprintf(orig[i].key, sizeof orig[i].key, "s%04d", i);
        int jpeg = i % 2;
        if (jpeg) image_encode_jpeg(&im, 80, &orig[i].img, &orig[i].n);
        else image_encode_png(&im, &orig[i].img, &orig[i].n);
        image_free(&im);
        orig[i].label = (i * 7) % 10;
        char name[64], cls[16];
        snprintf(name, sizeof name, "%s.%s", orig[i].key, jpeg ? "jpg" : "png");
        tar_writer_add(w, name, orig[i].img, orig[i].n, err, sizeof err);
        int lc = snprintf(cls, sizeof cls, "%d", orig[i].label);
        snprintf(name, sizeof name, "%s.cls", orig[i].key);
        tar_writer_add(w, name, cls, (size_t)lc, err, sizeof err);
        if (i % 4 == 1) {
            snprintf(name, sizeof name, "%s.json", orig[i].key);
            tar_writer_add(w, name, "{\"a\": 1}", 8, err, sizeof err);
        }
    }
    tar_writer_close(w, err, sizeof err);
}

static uint8_t *gzip_mem(const uint8_t *b, size_t n, size_t *out_n) {
    uLongf cap = compressBound(n) + 64;
    uint8_t *o = malloc(cap);
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)b;
    z.avail_in = (uInt)n;
    z.next_out = o;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    *out_n = z.total_out;
    deflateEnd(&z);
    return o;
}

static long samples_ok = 0, samples_bad = 0, fatal_streams = 0, decoded = 0;

/* Reads a damaged archive to the end. exact: only truncated (no flips) -> intact samples equal. */
static void read_damaged(const char *path, int exact, const char *what) {
    char err[512] = "";
    TarStream *t = tar_stream_open(path, err, sizeof err);
    if (!t) { CHECK(err[0] != 0, "%s: open failed without a reason", what); return; }
    RawSample s = {0};
    int r, steps = 0;
    while ((r = tar_stream_next(t, &s)) == 1) {
        if (++steps > 10000) { CHECK(0, "%s: no end after 10000 samples", what); break; }
        if (s.bad) {
            samples_bad++;
            CHECK(s.why[0] != 0, "%s: bad sample %s without reason", what, s.key);
            continue;
        }
        samples_ok++;
        CHECK(s.label >= 0 && s.nbytes > 0, "%s: good sample %s with label %d, %zu bytes", what, s.key, s.label, s.nbytes);
        if (exact) {
            int found = 0;
            for (int i = 0; i < NS; i++)
                if (!strcmp(orig[i].key, s.key)) {
                    found = 1;
                    CHECK(s.label == orig[i].label && s.nbytes == orig[i].n && !memcmp(s.bytes, orig[i].img, s.nbytes),
                          "%s: sample %s changed", what, s.key);
                }
            CHECK(found, "%s: unknown key %s", what, s.key);
        }
        Image im;
        char derr[256] = "";
        if (image_decode(s.bytes, s.nbytes, (steps & 1) ? 3 : 1, (steps & 2) ? 5 : 0, &im, derr, sizeof derr) == 0) {
            decoded++;
            CHECK(im.w > 0 && im.h > 0 && im.px, "%s: decoded empty image", what);
            image_free(&im);
        } else {
            CHECK(derr[0] != 0, "%s: decode failed without reason", what);
        }
    }
    if (r == -1) {
        fatal_streams++;
        CHECK(s.why[0] != 0, "%s: fatal without reason", what);
        CHECK(tar_stream_next(t, &s) == -1, "%s: fatal not sticky", what);
    } else {
        CHECK(r == 0, "%s: returned %d", what, r);
    }
    tar_stream_close(t);
    raw_sample_free(&s);
}

static void fuzz_shards(void) {
    char plain[600], gz[600], dam[600];
    snprintf(plain, sizeof plain, "%s/base.tar", TMP);
    snprintf(gz, sizeof gz, "%s/base.tar.gz", TMP);
    build_shard(plain);
    size_t n, ngz;
    uint8_t *base = tf_read_all(plain, &n);
    if (!base) { perror(plain); exit(1); }
    uint8_t *basegz = gzip_mem(base, n, &ngz);
    tf_write_file(gz, basegz, ngz);
    /* sanity: the undamaged shards read completely */
    samples_ok = 0;
    read_damaged(plain, 1, "plain");
    CHECK(samples_ok == NS, "undamaged plain: %ld samples", samples_ok);
    samples_ok = 0;
    read_damaged(gz, 1, "gz");
    CHECK(samples_ok == NS, "undamaged gz: %ld samples", samples_ok);
    uint8_t *buf = malloc(n > ngz ? n : ngz);
    char what[128];
    /* one damaged member header: the reader skips it and re-synchronises on the next header */
    {
        memcpy(buf, base, n);
        size_t at = 0;
        for (size_t o = 0; o + 512 <= n; o += 512)
            if (!memcmp(buf + o, "s0005.jpg", 9)) { at = o; break; }
        CHECK(at > 0, "header of s0005.jpg not found");
        buf[at + 2] ^= 0x21;
        snprintf(dam, sizeof dam, "%s/onehdr.tar", TMP);
        tf_write_file(dam, buf, n);
        char err[256];
        TarStream *t = tar_stream_open(dam, err, sizeof err);
        RawSample s = {0};
        int good = 0, bad = 0, r;
        while ((r = tar_stream_next(t, &s)) == 1) {
            if (s.bad) {
                bad++;
                CHECK(!strcmp(s.key, "s0005") && strstr(s.why, "damaged"), "bad %s: %s", s.key, s.why);
                continue;
            }
            for (int i = 0; i < NS; i++)
                if (!strcmp(orig[i].key, s.key))
                    good += s.label == orig[i].label && s.nbytes == orig[i].n && !memcmp(s.bytes, orig[i].img, s.nbytes);
        }
        CHECK(r == 0 && good == NS - 1 && bad == 1, "resync: r=%d good=%d bad=%d", r, good, bad);
        tar_stream_close(t);
        raw_sample_free(&s);
    }
    for (int v = 0; v < 400; v++) {
        rng = 0x5eed0000ull + (uint64_t)v * 0x9e3779b97f4a7c15ull;
        rnd();
        int use_gz = v % 4 == 3;
        const uint8_t *src = use_gz ? basegz : base;
        size_t len = use_gz ? ngz : n;
        memcpy(buf, src, len);
        int mode = v % 3; /* 0 truncate, 1 flips, 2 both */
        size_t cut = len;
        if (mode != 1) {
            if (rnd() % 3 == 0) cut = (size_t)(rnd() % (len / 512 + 1)) * 512 + (rnd() % 3 == 0 ? 0 : rnd() % 512);
            else cut = rnd() % len;
            if (cut > len) cut = len;
        }
        int flips = 0;
        if (mode != 0) {
            flips = 1 + (int)(rnd() % 12);
            for (int k = 0; k < flips; k++) {
                size_t at = rnd() % len;
                if (rnd() % 2 && !use_gz) at = (rnd() % (len / 512)) * 512 + rnd() % 160 + (rnd() % 2 ? 0 : 100); /* headers */
                if (at < len) buf[at] ^= (uint8_t)(1 + rnd() % 255);
            }
        }
        snprintf(dam, sizeof dam, "%s/damaged%s", TMP, use_gz ? ".tar.gz" : ".tar");
        tf_write_file(dam, buf, cut);
        snprintf(what, sizeof what, "variant %d (%s, cut %zu of %zu, %d flips)", v, use_gz ? "gz" : "tar", cut, len, flips);
        current = what;
        read_damaged(dam, mode == 0, what);
    }
    current = "shards done";
    free(buf);
    free(base);
    free(basegz);
}

static void fuzz_decoders(void) {
    uint8_t *buf = malloc(1 << 16);
    char err[256];
    char what[96];
    long ok = 0;
    for (int v = 0; v < 1500; v++) {
        rng = 0xdec0de00ull + (uint64_t)v * 0x9e3779b97f4a7c15ull;
        rnd();
        size_t len;
        int kind = v % 5;
        if (kind <= 2) { /* mutate a valid file: orig[] alternates PNG (even) and JPEG (odd) */
            const Orig *o = &orig[(v / 5) % NS];
            len = o->n;
            memcpy(buf, o->img, len);
            int flips = 1 + (int)(rnd() % 8);
            for (int k = 0; k < flips; k++) buf[rnd() % len] ^= (uint8_t)(1 + rnd() % 255);
            if (kind == 2) len = 1 + rnd() % len;
        } else { /* random bytes behind a valid magic */
            len = 8 + rnd() % 4000;
            for (size_t k = 0; k < len; k++) buf[k] = (uint8_t)rnd();
            if (kind == 3) memcpy(buf, "\xff\xd8\xff", 3);
            else memcpy(buf, "\x89PNG\r\n\x1a\n", 8);
        }
        snprintf(what, sizeof what, "decoder variant %d", v);
        current = what;
        Image im;
        err[0] = 0;
        int r = image_decode(buf, len, v % 2 ? 3 : 1, v % 7 == 0 ? 4 : 0, &im, err, sizeof err);
        if (r == 0) {
            ok++;
            CHECK(im.px && im.w > 0 && im.h > 0 && im.w <= IMAGE_MAX_SIDE, "%s: bad image", what);
            image_free(&im);
        } else {
            CHECK(err[0] != 0, "%s: error without a message", what);
        }
        int w, h, c;
        image_probe(buf, len, &w, &h, &c, err, sizeof err);
    }
    printf("  decoders: 1500 variants, %ld decoded despite damage\n", ok);
    current = "decoders done";
    free(buf);
}

static void fuzz_text(void) {
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/junk.txt", TMP);
    uint8_t b[600];
    for (int v = 0; v < 100; v++) {
        rng = 0x7e47ull + (uint64_t)v * 0x9e3779b97f4a7c15ull;
        size_t len = rnd() % sizeof b;
        for (size_t k = 0; k < len; k++) b[k] = (uint8_t)(v % 2 ? rnd() : (rnd() % 10 ? 'a' + rnd() % 26 : '\n'));
        tf_write_file(path, b, len);
        char **names;
        int n;
        if (classes_read(path, &names, &n, err, sizeof err) == 0) classes_free(names, n);
        char **paths;
        if (shard_list_expand(path, &paths, &n, err, sizeof err) == 0) shard_list_free(paths, n);
        else CHECK(err[0] != 0, "list error without message");
    }
    /* pathological brace specs */
    const char *specs[] = {"{", "}", "{..}", "{1..}", "{a..b}", "x{0..99999999999}", "{,,,}", "{0..3}{", "", "{}"};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        char **paths;
        int n;
        err[0] = 0;
        CHECK(shard_list_expand(specs[i], &paths, &n, err, sizeof err) == -1 && err[0], "spec '%s' accepted", specs[i]);
    }
}

int main(void) {
    signal(SIGALRM, on_alarm);
    alarm(120);
    snprintf(TMP, sizeof TMP, "/tmp/mixtape_fuzz_XXXXXX");
    if (!mkdtemp(TMP)) { perror("mkdtemp"); return 1; }
    clock_t t0 = clock();
    fuzz_shards();
    printf("  shards: 400 variants, %ld good and %ld bad samples, %ld streams unreadable past a point, %ld decoded\n",
           samples_ok, samples_bad, fatal_streams, decoded);
    fuzz_decoders();
    fuzz_text();
    for (int i = 0; i < NS; i++) free(orig[i].img);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", TMP);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", TMP);
    printf("test_data_fuzz: %.1f s cpu\n", (double)(clock() - t0) / CLOCKS_PER_SEC);
    return check_summary("test_data_fuzz");
}
