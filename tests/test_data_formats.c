/* Data formats: converters (IDX raw + gzip, CIFAR-10/100, ImageFolder) -> shards -> tar_stream
 * read back; shard list expansion; PNG colour types; JPEG gray/RGB and DCT scaling; tar
 * sample grouping with bad samples; `mixtape shards` when the binary is there.
 * All inputs are generated here in a temporary directory. */
#define _GNU_SOURCE
#include "data/convert.h"
#include "data/source.h"
#include "data/tar_writer.h"
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include "check.h"
#include "testfiles.h"


static char TMP[256];
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return (uint32_t)((rng * 2685821657736338717ull) >> 32);
}

static char *path_of(const char *rel) { return tf_path(TMP, rel); }

static void write_gz(const char *path, const void *data, size_t n) {
    gzFile f = gzopen(path, "wb");
    if (!f) { fprintf(stderr, "cannot write %s\n", path); exit(1); }
    gzwrite(f, data, (unsigned)n);
    gzclose(f);
}

static void mkdir_p(const char *p) {
    char cmd[800];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
    if (system(cmd) != 0) exit(1);
}

/* ---- a sample set read back from shards ---- */
typedef struct { char key[256]; int label; Image im; char ext[8]; } Got;

static int read_shards(const char *spec, Got **out, int want_c) {
    char **paths;
    int n, cap = 64, cnt = 0;
    char err[512];
    *out = NULL;
    if (shard_list_expand(spec, &paths, &n, err, sizeof err)) { fprintf(stderr, "%s\n", err); return -1; }
    Got *g = calloc((size_t)cap, sizeof *g);
    RawSample s = {0};
    for (int i = 0; i < n; i++) {
        TarStream *t = tar_stream_open(paths[i], err, sizeof err);
        CHECK(t != NULL, "open %s: %s", paths[i], err);
        if (!t) continue;
        int r;
        while ((r = tar_stream_next(t, &s)) == 1) {
            CHECK(!s.bad, "sample %s bad: %s", s.key, s.why);
            if (cnt == cap) { cap *= 2; g = realloc(g, (size_t)cap * sizeof *g); }
            memset(&g[cnt], 0, sizeof g[cnt]);
            snprintf(g[cnt].key, sizeof g[cnt].key, "%s", s.key);
            snprintf(g[cnt].ext, sizeof g[cnt].ext, "%s", s.ext);
            g[cnt].label = s.label;
            if (image_decode(s.bytes, s.nbytes, want_c, 0, &g[cnt].im, err, sizeof err))
                CHECK(0, "decode %s: %s", s.key, err);
            cnt++;
        }
        CHECK(r == 0, "stream %s ended with %d: %s", paths[i], r, s.why);
        tar_stream_close(t);
    }
    raw_sample_free(&s);
    shard_list_free(paths, n);
    *out = g;
    return cnt;
}

static void free_got(Got *g, int n) {
    for (int i = 0; i < n; i++) image_free(&g[i].im);
    free(g);
}

static int count_lines(const char *path, char ***names) {
    int n;
    char err[256];
    if (classes_read(path, names, &n, err, sizeof err)) return -1;
    return n;
}

/* ---- IDX ---- */
static void be32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

static void make_idx(int n, int rows, int cols, uint8_t **img, size_t *nimg, uint8_t **lab, size_t *nlab) {
    *nimg = 16 + (size_t)n * rows * cols;
    *img = malloc(*nimg);
    be32(*img, 0x803); be32(*img + 4, n); be32(*img + 8, rows); be32(*img + 12, cols);
    for (size_t i = 16; i < *nimg; i++) (*img)[i] = (uint8_t)rnd();
    *nlab = 8 + (size_t)n;
    *lab = malloc(*nlab);
    be32(*lab, 0x801); be32(*lab + 4, n);
    for (int i = 0; i < n; i++) (*lab)[8 + i] = (uint8_t)(rnd() % 10);
}

static void test_idx(void) {
    const int N = 25, R = 7, C = 5;
    uint8_t *img, *lab;
    size_t nimg, nlab;
    make_idx(N, R, C, &img, &nimg, &lab, &nlab);
    mkdir_p(path_of("idx_raw"));
    mkdir_p(path_of("fashion_gz"));
    tf_write_file(path_of("idx_raw/train-images-idx3-ubyte"), img, nimg);
    tf_write_file(path_of("idx_raw/train-labels-idx1-ubyte"), lab, nlab);
    write_gz(path_of("fashion_gz/t10k-images-idx3-ubyte.gz"), img, nimg);
    write_gz(path_of("fashion_gz/t10k-labels-idx1-ubyte.gz"), lab, nlab);
    for (int gz = 0; gz < 2; gz++) {
        ConvertOpts o = {0};
        ConvertResult r;
        char err[512] = "", prefix[600];
        snprintf(prefix, sizeof prefix, "%s", path_of(gz ? "out_idx_gz/sub/t10k" : "out_idx_raw/train"));
        o.out_prefix = prefix;
        o.per_shard = 10;
        int rc = convert_idx(path_of(gz ? "fashion_gz/t10k-images-idx3-ubyte.gz" : "idx_raw/train-images-idx3-ubyte"), &o, &r,
                             err, sizeof err);
        CHECK(rc == 0, "convert_idx gz=%d: %s", gz, err);
        CHECK(r.samples == N && r.shards == 3 && r.classes == 10, "samples %ld shards %d classes %d", r.samples, r.shards, r.classes);
        char spec[700];
        snprintf(spec, sizeof spec, "%s-{000000..000002}.tar", prefix);
        Got *g;
        int n = read_shards(spec, &g, 1);
        CHECK(n == N, "read back %d of %d", n, N);
        for (int i = 0; i < n && i < N; i++) {
            char key[16];
            snprintf(key, sizeof key, "%06d", i);
            CHECK(!strcmp(g[i].key, key), "key %s != %s", g[i].key, key);
            CHECK(!strcmp(g[i].ext, "png"), "ext %s", g[i].ext);
            CHECK(g[i].label == lab[8 + i], "label %d != %d", g[i].label, lab[8 + i]);
            CHECK(g[i].im.w == C && g[i].im.h == R && g[i].im.c == 1, "size %dx%dx%d", g[i].im.w, g[i].im.h, g[i].im.c);
            if (g[i].im.px) CHECK(!memcmp(g[i].im.px, img + 16 + (size_t)i * R * C, (size_t)R * C), "pixels of %d differ", i);
        }
        free_got(g, n);
        char cls[700], **names = NULL;
        snprintf(cls, sizeof cls, "%s/classes.txt", path_of(gz ? "out_idx_gz/sub" : "out_idx_raw"));
        int nc = count_lines(cls, &names);
        CHECK(nc == 10, "classes.txt has %d lines", nc);
        if (nc == 10) {
            CHECK(!strcmp(names[0], gz ? "T-shirt/top" : "0"), "class 0 = %s", names[0]);
            CHECK(!strcmp(names[9], gz ? "Ankle boot" : "9"), "class 9 = %s", names[9]);
        }
        classes_free(names, nc);
    }
    /* untrusted headers */
    {
        ConvertOpts o = {0};
        ConvertResult r;
        char err[512] = "";
        o.out_prefix = path_of("out_idx_bad/x");
        o.per_shard = 100;
        uint8_t *b = malloc(nimg);
        memcpy(b, img, nimg);
        b[3] = 0x02; /* 2 dims */
        tf_write_file(path_of("idx_raw/bad1-images-idx3-ubyte"), b, nimg);
        tf_write_file(path_of("idx_raw/bad1-labels-idx1-ubyte"), lab, nlab);
        CHECK(convert_idx(path_of("idx_raw/bad1-images-idx3-ubyte"), &o, &r, err, sizeof err) == -1 && strstr(err, "dimensions"),
              "bad dims: %s", err);
        memcpy(b, img, nimg);
        be32(b + 4, 1000000); /* more images than the file holds */
        tf_write_file(path_of("idx_raw/bad2-images-idx3-ubyte"), b, nimg);
        tf_write_file(path_of("idx_raw/bad2-labels-idx1-ubyte"), lab, nlab);
        CHECK(convert_idx(path_of("idx_raw/bad2-images-idx3-ubyte"), &o, &r, err, sizeof err) == -1 && strstr(err, "bytes"),
              "count vs size: %s", err);
        write_gz(path_of("idx_raw/bad3-images-idx3-ubyte.gz"), b, nimg); /* same, gzip'd: caught while reading */
        tf_write_file(path_of("idx_raw/bad3-labels-idx1-ubyte"), lab, nlab);
        CHECK(convert_idx(path_of("idx_raw/bad3-images-idx3-ubyte.gz"), &o, &r, err, sizeof err) == -1, "gz count vs size");
        memcpy(b, img, nimg);
        b[2] = 0x0d; /* float elements */
        tf_write_file(path_of("idx_raw/bad4-images-idx3-ubyte"), b, nimg);
        CHECK(convert_idx(path_of("idx_raw/bad4-images-idx3-ubyte"), &o, &r, err, sizeof err) == -1 && strstr(err, "type"),
              "type: %s", err);
        tf_write_file(path_of("idx_raw/lonely-images-idx3-ubyte"), img, nimg);
        CHECK(convert_idx(path_of("idx_raw/lonely-images-idx3-ubyte"), &o, &r, err, sizeof err) == -1 && strstr(err, "labels"),
              "no labels: %s", err);
        o.labels = path_of("idx_raw/train-labels-idx1-ubyte");
        CHECK(convert_idx(path_of("idx_raw/lonely-images-idx3-ubyte"), &o, &r, err, sizeof err) == 0 && r.samples == N,
              "--labels: %s", err);
        o.labels = NULL;
        uint8_t *l2 = malloc(nlab);
        memcpy(l2, lab, nlab);
        be32(l2 + 4, N - 1);
        tf_write_file(path_of("idx_raw/bad5-images-idx3-ubyte"), img, nimg);
        tf_write_file(path_of("idx_raw/bad5-labels-idx1-ubyte"), l2, nlab - 1);
        CHECK(convert_idx(path_of("idx_raw/bad5-images-idx3-ubyte"), &o, &r, err, sizeof err) == -1 && strstr(err, "labels"),
              "label count: %s", err);
        free(l2);
        free(b);
    }
    free(img);
    free(lab);
}

/* ---- CIFAR ---- */
static uint8_t *make_cifar(int n, int fine, size_t *len) {
    int rec = 3072 + (fine ? 2 : 1);
    *len = (size_t)n * rec;
    uint8_t *b = malloc(*len);
    for (size_t i = 0; i < *len; i++) b[i] = (uint8_t)rnd();
    for (int i = 0; i < n; i++) {
        if (fine) { b[(size_t)i * rec] = (uint8_t)(rnd() % 20); b[(size_t)i * rec + 1] = (uint8_t)(rnd() % 100); }
        else b[(size_t)i * rec] = (uint8_t)(rnd() % 10);
    }
    return b;
}

static void check_cifar_sample(const Got *g, const uint8_t *rec, int fine, const char *what) {
    int label = fine ? rec[1] : rec[0];
    const uint8_t *p = rec + (fine ? 2 : 1);
    CHECK(g->label == label, "%s label %d != %d", what, g->label, label);
    CHECK(g->im.w == 32 && g->im.h == 32 && g->im.c == 3, "%s size", what);
    int same = g->im.px != NULL;
    for (int i = 0; same && i < 1024; i++)
        same = g->im.px[3 * i] == p[i] && g->im.px[3 * i + 1] == p[1024 + i] && g->im.px[3 * i + 2] == p[2048 + i];
    CHECK(same, "%s pixels differ", what);
}

static void test_cifar(void) {
    size_t l1, l2, lt, l100;
    uint8_t *b1 = make_cifar(7, 0, &l1), *b2 = make_cifar(5, 0, &l2), *bt = make_cifar(3, 0, &lt);
    uint8_t *b100 = make_cifar(6, 1, &l100);
    mkdir_p(path_of("cifar10"));
    mkdir_p(path_of("cifar100"));
    tf_write_file(path_of("cifar10/data_batch_2.bin"), b2, l2);
    tf_write_file(path_of("cifar10/data_batch_1.bin"), b1, l1);
    tf_write_file(path_of("cifar10/test_batch.bin"), bt, lt);
    tf_write_file(path_of("cifar100/train.bin"), b100, l100);
    ConvertOpts o = {0};
    ConvertResult r;
    char err[512] = "";
    o.out_prefix = path_of("out_c10/train");
    o.per_shard = 5;
    CHECK(convert_cifar(path_of("cifar10"), &o, &r, err, sizeof err) == 0, "cifar10 dir: %s", err);
    CHECK(r.samples == 12 && r.shards == 3 && r.classes == 10, "c10 samples %ld shards %d", r.samples, r.shards);
    Got *g;
    int n = read_shards(path_of("out_c10"), &g, 3); /* directory spec */
    CHECK(n == 12, "c10 read %d", n);
    for (int i = 0; i < n && i < 12; i++) {
        const uint8_t *rec = i < 7 ? b1 + (size_t)i * 3073 : b2 + (size_t)(i - 7) * 3073;
        check_cifar_sample(&g[i], rec, 0, "c10");
    }
    free_got(g, n);
    char **names = NULL;
    int nc = count_lines(path_of("out_c10/classes.txt"), &names);
    CHECK(nc == 10 && !strcmp(names[0], "airplane") && !strcmp(names[9], "truck"), "c10 classes");
    classes_free(names, nc);
    /* test split and a single file */
    o.out_prefix = path_of("out_c10t/test");
    o.split = "test";
    CHECK(convert_cifar(path_of("cifar10"), &o, &r, err, sizeof err) == 0 && r.samples == 3, "c10 test: %s", err);
    o.split = NULL;
    o.out_prefix = path_of("out_c100/train");
    o.per_shard = 0;
    o.max_bytes = 0;
    CHECK(convert_cifar(path_of("cifar100/train.bin"), &o, &r, err, sizeof err) == 0, "cifar100 file: %s", err);
    CHECK(r.samples == 6 && r.shards == 1 && r.classes == 100, "c100 %ld %d %d", r.samples, r.shards, r.classes);
    n = read_shards(path_of("out_c100/train-000000.tar"), &g, 3);
    CHECK(n == 6, "c100 read %d", n);
    for (int i = 0; i < n && i < 6; i++) check_cifar_sample(&g[i], b100 + (size_t)i * 3074, 1, "c100");
    free_got(g, n);
    nc = count_lines(path_of("out_c100/classes.txt"), &names);
    CHECK(nc == 100 && !strcmp(names[0], "apple") && !strcmp(names[99], "worm"), "c100 classes %d", nc);
    classes_free(names, nc);
    /* a file that is not whole records */
    tf_write_file(path_of("cifar10/data_batch_9.bin"), b1, l1 - 5);
    o.out_prefix = path_of("out_cbad/x");
    CHECK(convert_cifar(path_of("cifar10"), &o, &r, err, sizeof err) == -1 && strstr(err, "data_batch_9"), "bad size: %s", err);
    free(b1); free(b2); free(bt); free(b100);
}

/* ---- ImageFolder ---- */
static void fill_smooth(Image *im, int seed) {
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            for (int c = 0; c < im->c; c++)
                im->px[((size_t)y * im->w + x) * im->c + c] = (uint8_t)(40 + x + y + c * 25 + seed * 3); /* < 240 for w, h <= 64 */
}

static void test_imagefolder(void) {
    const char *cls[3] = {"b_dogs", "a_cats", "c"};
    Image src[9];
    int label_of[9];
    char rel[9][64];
    mkdir_p(path_of("if/a_cats"));
    mkdir_p(path_of("if/b_dogs"));
    mkdir_p(path_of("if/c"));
    mkdir_p(path_of("if/c/nested_dir")); /* ignored */
    tf_write_file(path_of("if/c/readme.txt"), "x", 1);
    tf_write_file(path_of("if/.hidden.png"), "x", 1);
    for (int i = 0; i < 9; i++) {
        int c = i % 3;
        int jpeg = i % 2;
        image_alloc(&src[i], 20 + i, 16 + i, (i == 4) ? 1 : 3);
        fill_smooth(&src[i], i);
        uint8_t *enc;
        size_t n;
        if (jpeg) CHECK(image_encode_jpeg(&src[i], 95, &enc, &n) == 0, "jpeg encode");
        else CHECK(image_encode_png(&src[i], &enc, &n) == 0, "png encode");
        snprintf(rel[i], sizeof rel[i], "if/%s/img%d.%s", cls[c], i, jpeg ? (i == 3 ? "JPEG" : "jpg") : (i == 6 ? "PNG" : "png"));
        tf_write_file(path_of(rel[i]), enc, n);
        free(enc);
        label_of[i] = c == 0 ? 1 : c == 1 ? 0 : 2; /* sorted: a_cats=0, b_dogs=1, c=2 */
    }
    ImageFolder f;
    char err[512] = "";
    CHECK(imagefolder_scan(path_of("if"), &f, err, sizeof err) == 0, "scan: %s", err);
    CHECK(f.n == 9 && f.nclasses == 3, "n %d classes %d", f.n, f.nclasses);
    if (f.nclasses == 3) CHECK(!strcmp(f.classes[0], "a_cats") && !strcmp(f.classes[2], "c"), "class order");
    /* files sorted within a class, classes in order */
    for (int i = 1; i < f.n; i++)
        CHECK(f.labels[i - 1] < f.labels[i] || (f.labels[i - 1] == f.labels[i] && strcmp(f.files[i - 1], f.files[i]) < 0),
              "order at %d", i);
    RawSample s = {0};
    CHECK(imagefolder_read(&f, 0, &s) == 0 && s.nbytes > 0 && s.label == 0, "read 0: %s", s.why);
    imagefolder_free(&f);

    ConvertOpts o = {0};
    ConvertResult r;
    o.out_prefix = path_of("out_if/train");
    o.max_bytes = 4096; /* small: several shards */
    CHECK(convert_imagefolder(path_of("if"), &o, &r, err, sizeof err) == 0, "convert if: %s", err);
    CHECK(r.samples == 9 && r.classes == 3 && r.shards > 1, "if samples %ld shards %d", r.samples, r.shards);
    for (int i = 0; i < r.shards; i++) { /* each shard within the limit unless it holds one sample */
        char p[700];
        shard_writer_path(path_of("out_if/train"), i, p, sizeof p);
        struct stat st;
        CHECK(stat(p, &st) == 0, "stat %s", p);
    }
    /* list file spec with a comment and relative paths */
    {
        FILE *lf = fopen(path_of("out_if/list.txt"), "w");
        fprintf(lf, "# shards\n");
        for (int i = 0; i < r.shards; i++) fprintf(lf, "train-%06d.tar\n", i);
        fclose(lf);
    }
    Got *g;
    int n = read_shards(path_of("out_if/list.txt"), &g, 3);
    CHECK(n == 9, "if read %d", n);
    /* map back: converter order = scan order (label, then name); find source by size */
    int seen = 0;
    for (int k = 0; k < n; k++) {
        for (int i = 0; i < 9; i++) {
            if (g[k].im.w != src[i].w || g[k].im.h != src[i].h) continue;
            seen++;
            CHECK(g[k].label == label_of[i], "if label of img%d: %d != %d", i, g[k].label, label_of[i]);
            int jpeg = i % 2;
            CHECK(!strcmp(g[k].ext, jpeg ? (i == 3 ? "jpeg" : "jpg") : "png"), "ext of img%d: %s", i, g[k].ext);
            double mad = 0;
            int c = src[i].c;
            for (int p = 0; p < src[i].w * src[i].h; p++)
                for (int ch = 0; ch < 3; ch++) {
                    int sv = src[i].px[(size_t)p * c + (c == 3 ? ch : 0)];
                    mad += abs(sv - g[k].im.px[(size_t)p * 3 + ch]);
                }
            mad /= (double)src[i].w * src[i].h * 3;
            if (jpeg) CHECK(mad < 3.0, "jpeg img%d mean abs diff %.2f", i, mad);
            else CHECK(mad == 0, "png img%d not exact (%.3f)", i, mad);
        }
    }
    CHECK(seen == 9, "matched %d of 9", seen);
    free_got(g, n);
    char **names = NULL;
    int nc = count_lines(path_of("out_if/classes.txt"), &names);
    CHECK(nc == 3 && !strcmp(names[1], "b_dogs"), "if classes");
    classes_free(names, nc);
    raw_sample_free(&s);
    for (int i = 0; i < 9; i++) image_free(&src[i]);
}

/* ---- shard lists ---- */
static void test_shard_lists(void) {
    char **p;
    int n;
    char err[512] = "";
    mkdir_p(path_of("sl"));
    for (int i = 0; i < 3; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "sl/part-%03d.tar", i);
        TarWriter *w = tar_writer_open(path_of(nm), err, sizeof err);
        tar_writer_add(w, "a.cls", "1", 1, err, sizeof err);
        tar_writer_close(w, err, sizeof err);
    }
    tf_write_file(path_of("sl/notes.txt"), "x", 1);
    char spec[700];
    snprintf(spec, sizeof spec, "%s", path_of("sl/part-{000..002}.tar"));
    CHECK(shard_list_expand(spec, &p, &n, err, sizeof err) == 0 && n == 3, "brace: %s", err);
    if (n == 3) CHECK(strstr(p[2], "part-002.tar") != NULL, "brace width %s", p[2]);
    shard_list_free(p, n);
    snprintf(spec, sizeof spec, "%s", path_of("sl/part-{0..2}.tar"));
    CHECK(shard_list_expand(spec, &p, &n, err, sizeof err) == -1 && strstr(err, "part-0.tar"), "unpadded range: %s", err);
    snprintf(spec, sizeof spec, "%s", path_of("sl/part-{000..003}.tar"));
    CHECK(shard_list_expand(spec, &p, &n, err, sizeof err) == -1 && strstr(err, "part-003.tar"), "missing named: %s", err);
    snprintf(spec, sizeof spec, "%s", path_of("sl/part-{000,002}.tar"));
    CHECK(shard_list_expand(spec, &p, &n, err, sizeof err) == 0 && n == 2, "comma braces: %s", err);
    shard_list_free(p, n);
    CHECK(shard_list_expand(path_of("sl"), &p, &n, err, sizeof err) == 0 && n == 3, "dir: %s", err);
    if (n == 3) CHECK(strstr(p[0], "part-000.tar") && strstr(p[1], "part-001.tar"), "dir sorted");
    shard_list_free(p, n);
    { const char *t = "part-001.tar\n\n  part-000.tar  \r\n"; tf_write_file(path_of("sl/list.txt"), t, strlen(t)); }
    CHECK(shard_list_expand(path_of("sl/list.txt"), &p, &n, err, sizeof err) == 0 && n == 2, "list: %s", err);
    if (n == 2) CHECK(strstr(p[0], "sl/part-001.tar") && strstr(p[1], "sl/part-000.tar"), "list relative %s", p[0]);
    shard_list_free(p, n);
    { const char *t = "part-001.tar\nnope.tar\n"; tf_write_file(path_of("sl/list2.txt"), t, strlen(t)); }
    CHECK(shard_list_expand(path_of("sl/list2.txt"), &p, &n, err, sizeof err) == -1 && strstr(err, "nope.tar"), "list missing: %s", err);
    CHECK(shard_list_expand(path_of("sl/part-001.tar"), &p, &n, err, sizeof err) == 0 && n == 1, "single: %s", err);
    shard_list_free(p, n);
    CHECK(shard_list_expand(path_of("sl/absent.tar"), &p, &n, err, sizeof err) == -1 && strstr(err, "absent.tar"), "absent: %s", err);
}

/* ---- tar grouping / bad samples / gzip ---- */
static void test_tar_grouping(void) {
    char err[512] = "";
    Image im;
    image_alloc(&im, 6, 4, 3);
    fill_smooth(&im, 1);
    uint8_t *png;
    size_t npng;
    image_encode_png(&im, &png, &npng);
    TarWriter *w = tar_writer_open(path_of("group.tar"), err, sizeof err);
    tar_writer_add(w, "d/s0.png", png, npng, err, sizeof err);
    tar_writer_add(w, "d/s0.cls", "3\n", 2, err, sizeof err);
    tar_writer_add(w, "d/s0.json", "{}", 2, err, sizeof err);
    tar_writer_add(w, "d/s1.PNG", png, npng, err, sizeof err);   /* no cls */
    tar_writer_add(w, "d/s2.cls", "abc", 3, err, sizeof err);    /* no image, bad cls */
    tar_writer_add(w, "d/s3.cls", "7", 1, err, sizeof err);      /* cls before image */
    tar_writer_add(w, "d/s3.png", png, npng, err, sizeof err);
    tar_writer_add(w, "d/s4.txt", "hi", 2, err, sizeof err);     /* no image, no cls */
    char longname[300];
    memset(longname, 'k', sizeof longname);
    memcpy(longname, "dir/", 4);
    snprintf(longname + 150, sizeof longname - 150, "/%s", "long.png");
    tar_writer_add(w, longname, png, npng, err, sizeof err);
    snprintf(longname + 150, sizeof longname - 150, "/%s", "long.cls");
    tar_writer_add(w, longname, "5", 1, err, sizeof err);
    CHECK(tar_writer_close(w, err, sizeof err) == 0, "close");
    /* gzip'd copy */
    size_t n = 0;
    uint8_t *b = tf_read_all(path_of("group.tar"), &n);
    write_gz(path_of("group.tar.gz"), b, n);
    free(b);
    for (int gz = 0; gz < 2; gz++) {
        TarStream *t = tar_stream_open(path_of(gz ? "group.tar.gz" : "group.tar"), err, sizeof err);
        CHECK(t != NULL, "open: %s", err);
        if (!t) continue;
        RawSample s = {0};
        struct { const char *key; int bad; int label; } want[] = {
            {"d/s0", 0, 3}, {"d/s1", 1, -1}, {"d/s2", 1, -1}, {"d/s3", 0, 7}, {"d/s4", 1, -1}, {"", 0, 5}};
        for (int i = 0; i < 6; i++) {
            int r = tar_stream_next(t, &s);
            CHECK(r == 1, "gz=%d sample %d r=%d %s", gz, i, r, s.why);
            if (i < 5) CHECK(!strcmp(s.key, want[i].key), "key %s != %s", s.key, want[i].key);
            else CHECK(strlen(s.key) == 150 + 5 && !strncmp(s.key, "dir/", 4), "long key %s", s.key);
            CHECK(s.bad == want[i].bad, "%s bad=%d (%s)", s.key, s.bad, s.why);
            if (s.bad) CHECK(s.why[0] != 0, "bad sample without reason");
            if (!s.bad) {
                CHECK(s.label == want[i].label, "%s label %d", s.key, s.label);
                CHECK(s.nbytes == npng && !memcmp(s.bytes, png, npng), "%s bytes", s.key);
                CHECK(!strcmp(s.ext, "png"), "ext %s", s.ext);
            }
        }
        CHECK(tar_stream_next(t, &s) == 0, "end");
        CHECK(tar_stream_next(t, &s) == 0, "end again");
        tar_stream_close(t);
        raw_sample_free(&s);
    }
    free(png);
    image_free(&im);
    /* shard writer limits */
    ShardWriter *sw = shard_writer_open(path_of("lim/x"), 0, 10 * 1024, err, sizeof err);
    mkdir_p(path_of("lim"));
    static uint8_t blob[3000];
    for (int i = 0; i < 10; i++) CHECK(shard_writer_add(sw, "k", "png", blob, sizeof blob, 1, NULL, err, sizeof err) == 0, "add");
    ShardStats st;
    CHECK(shard_writer_close(sw, &st, err, sizeof err) == 0, "close");
    /* each sample takes 512+3072+512+512 = 4608 bytes; 2 fit under 10 KiB with the end blocks */
    CHECK(st.shards == 5 && st.samples == 10, "size limit: %d shards", st.shards);
    uint64_t total = 0;
    for (int i = 0; i < st.shards; i++) {
        char p[700];
        shard_writer_path(path_of("lim/x"), i, p, sizeof p);
        struct stat sb;
        stat(p, &sb);
        CHECK(sb.st_size <= 10 * 1024, "shard %d is %lld bytes", i, (long long)sb.st_size);
        total += (uint64_t)sb.st_size;
    }
    CHECK(total == st.bytes, "bytes %llu vs %llu", (unsigned long long)total, (unsigned long long)st.bytes);
    sw = shard_writer_open(path_of("lim/y"), 3, 0, err, sizeof err);
    for (int i = 0; i < 10; i++) shard_writer_add(sw, "k", "png", blob, 10, 1, NULL, err, sizeof err);
    shard_writer_close(sw, &st, err, sizeof err);
    CHECK(st.shards == 4, "per-shard 3 of 10: %d shards", st.shards);
}

/* ---- PNG colour types ---- */
static uint8_t *write_png_raw(int w, int h, int ctype, int depth, int interlace, const uint8_t *rows_data, int rowbytes,
                              const png_color *pal, int npal, const uint8_t *trns, int ntrns, size_t *len) {
    char path[600];
    snprintf(path, sizeof path, "%s/ct.png", TMP);
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) { fprintf(stderr, "png write failed\n"); exit(1); }
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, depth, ctype, interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    png_bytep *rows = malloc(sizeof *rows * h);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)rows_data + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    free(rows);
    return tf_read_all(path, len);
}

static void test_png_types(void) {
    const int W = 13, H = 5;
    /* expected RGB (and derived gray) per case from a random source */
    uint8_t raw[H * W * 8];
    for (size_t i = 0; i < sizeof raw; i++) raw[i] = (uint8_t)rnd();
    struct { int ctype, depth, interlace; const char *name; } cases[] = {
        {PNG_COLOR_TYPE_GRAY, 1, 0, "gray1"},        {PNG_COLOR_TYPE_GRAY, 2, 0, "gray2"},
        {PNG_COLOR_TYPE_GRAY, 4, 0, "gray4"},        {PNG_COLOR_TYPE_GRAY, 8, 0, "gray8"},
        {PNG_COLOR_TYPE_GRAY, 16, 0, "gray16"},      {PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, "graya8"},
        {PNG_COLOR_TYPE_GRAY_ALPHA, 16, 0, "graya16"}, {PNG_COLOR_TYPE_RGB, 8, 0, "rgb8"},
        {PNG_COLOR_TYPE_RGB, 16, 0, "rgb16"},        {PNG_COLOR_TYPE_RGB_ALPHA, 8, 0, "rgba8"},
        {PNG_COLOR_TYPE_RGB_ALPHA, 16, 1, "rgba16i"}, {PNG_COLOR_TYPE_PALETTE, 1, 0, "pal1"},
        {PNG_COLOR_TYPE_PALETTE, 2, 0, "pal2"},      {PNG_COLOR_TYPE_PALETTE, 4, 0, "pal4"},
        {PNG_COLOR_TYPE_PALETTE, 8, 1, "pal8i"},     {PNG_COLOR_TYPE_RGB, 8, 1, "rgb8i"},
    };
    png_color pal[256];
    uint8_t trns[256];
    for (int i = 0; i < 256; i++) {
        pal[i].red = (uint8_t)rnd(); pal[i].green = (uint8_t)rnd(); pal[i].blue = (uint8_t)rnd();
        trns[i] = (uint8_t)rnd();
    }
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        int ct = cases[ci].ctype, d = cases[ci].depth;
        int spp = ct == PNG_COLOR_TYPE_GRAY ? 1 : ct == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : ct == PNG_COLOR_TYPE_RGB ? 3
                : ct == PNG_COLOR_TYPE_RGB_ALPHA ? 4 : 1;
        int rowbytes = (W * spp * d + 7) / 8;
        uint8_t data[H * W * 8];
        uint8_t exp_rgb[H * W * 3];
        memset(data, 0, sizeof data);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                uint8_t *e = exp_rgb + (size_t)(y * W + x) * 3;
                const uint8_t *r = raw + (size_t)(y * W + x) * 8;
                if (d < 8) {
                    int maxv = (1 << d) - 1, v = r[0] & maxv, bit = x * d;
                    data[y * rowbytes + bit / 8] |= (uint8_t)(v << (8 - d - bit % 8));
                    if (ct == PNG_COLOR_TYPE_PALETTE) { e[0] = pal[v].red; e[1] = pal[v].green; e[2] = pal[v].blue; }
                    else e[0] = e[1] = e[2] = (uint8_t)(v * 255 / maxv);
                } else {
                    int bps = d / 8;
                    uint8_t *px = data + y * rowbytes + (size_t)x * spp * bps;
                    for (int k = 0; k < spp * bps; k++) px[k] = r[k];
                    if (ct == PNG_COLOR_TYPE_PALETTE) { e[0] = pal[r[0]].red; e[1] = pal[r[0]].green; e[2] = pal[r[0]].blue; }
                    else if (spp <= 2) e[0] = e[1] = e[2] = px[0];            /* high byte first */
                    else for (int k = 0; k < 3; k++) e[k] = px[k * bps];
                }
            }
        size_t len;
        uint8_t *file = write_png_raw(W, H, ct, d, cases[ci].interlace, data, rowbytes, ct == PNG_COLOR_TYPE_PALETTE ? pal : NULL,
                                      ct == PNG_COLOR_TYPE_PALETTE ? (1 << d) : 0, ct == PNG_COLOR_TYPE_PALETTE ? trns : NULL,
                                      ct == PNG_COLOR_TYPE_PALETTE ? (d == 1 ? 2 : 3) : 0, &len);
        Image g3, g1;
        char err[256] = "";
        CHECK(image_decode(file, len, 3, 0, &g3, err, sizeof err) == 0, "%s rgb: %s", cases[ci].name, err);
        CHECK(image_decode(file, len, 1, 0, &g1, err, sizeof err) == 0, "%s gray: %s", cases[ci].name, err);
        if (g3.px && g1.px) {
            CHECK(g3.w == W && g3.h == H && g3.c == 3 && g1.c == 1, "%s shape", cases[ci].name);
            CHECK(!memcmp(g3.px, exp_rgb, sizeof exp_rgb), "%s rgb pixels", cases[ci].name);
            int ok = 1;
            for (int i = 0; i < W * H; i++) {
                const uint8_t *e = exp_rgb + 3 * i;
                uint8_t want = (ct & PNG_COLOR_MASK_COLOR) ? rgb_to_luma(e[0], e[1], e[2]) : e[0];
                ok &= g1.px[i] == want;
            }
            CHECK(ok, "%s gray pixels", cases[ci].name);
        }
        image_free(&g3);
        image_free(&g1);
        int pw, ph, pc;
        CHECK(image_probe(file, len, &pw, &ph, &pc, err, sizeof err) == 0 && pw == W && ph == H, "%s probe", cases[ci].name);
        free(file);
    }
    /* PIL's luma on known values */
    CHECK(rgb_to_luma(255, 0, 0) == 76 && rgb_to_luma(0, 255, 0) == 150 && rgb_to_luma(0, 0, 255) == 29, "luma");
    CHECK(rgb_to_luma(255, 255, 255) == 255 && rgb_to_luma(10, 20, 30) == 18, "luma 2");
}

/* ---- JPEG ---- */
static void test_jpeg(void) {
    Image src;
    image_alloc(&src, 64, 48, 3);
    fill_smooth(&src, 5);
    uint8_t *jpg;
    size_t n;
    CHECK(image_encode_jpeg(&src, 95, &jpg, &n) == 0, "encode");
    char err[256] = "";
    struct { int min_side, w, h; } sc[] = {{0, 64, 48}, {48, 64, 48}, {25, 64, 48}, {24, 32, 24}, {13, 32, 24},
                                           {12, 16, 12}, {7, 16, 12}, {6, 8, 6}, {1, 8, 6}};
    for (size_t i = 0; i < sizeof sc / sizeof *sc; i++) {
        Image im;
        CHECK(image_decode(jpg, n, 3, sc[i].min_side, &im, err, sizeof err) == 0, "decode: %s", err);
        CHECK(im.w == sc[i].w && im.h == sc[i].h, "min_side %d -> %dx%d, want %dx%d", sc[i].min_side, im.w, im.h, sc[i].w, sc[i].h);
        image_free(&im);
    }
    Image rgb, gray;
    CHECK(image_decode(jpg, n, 3, 0, &rgb, err, sizeof err) == 0, "rgb");
    CHECK(image_decode(jpg, n, 1, 0, &gray, err, sizeof err) == 0, "gray");
    double mad = 0;
    int luma_ok = 1;
    for (int i = 0; i < 64 * 48; i++) {
        for (int c = 0; c < 3; c++) mad += abs(rgb.px[3 * i + c] - src.px[3 * i + c]);
        luma_ok &= gray.px[i] == rgb_to_luma(rgb.px[3 * i], rgb.px[3 * i + 1], rgb.px[3 * i + 2]);
    }
    CHECK(mad / (64 * 48 * 3) < 2.5, "jpeg rgb mad %.2f", mad / (64 * 48 * 3));
    CHECK(luma_ok, "gray = luma of the RGB decode");
    image_free(&rgb);
    image_free(&gray);
    free(jpg);
    /* a gray JPEG to RGB: channels replicated */
    Image g;
    image_alloc(&g, 16, 16, 1);
    fill_smooth(&g, 2);
    CHECK(image_encode_jpeg(&g, 90, &jpg, &n) == 0, "encode gray");
    Image g3;
    CHECK(image_decode(jpg, n, 3, 0, &g3, err, sizeof err) == 0, "gray->rgb: %s", err);
    int rep = 1;
    for (int i = 0; i < 256; i++) rep &= g3.px[3 * i] == g3.px[3 * i + 1] && g3.px[3 * i] == g3.px[3 * i + 2];
    CHECK(rep, "gray replicated");
    int pw, ph, pc;
    CHECK(image_probe(jpg, n, &pw, &ph, &pc, err, sizeof err) == 0 && pw == 16 && ph == 16 && pc == 1, "jpeg probe");
    /* truncated JPEG is an error, as in PIL */
    Image t;
    CHECK(image_decode(jpg, n / 2, 3, 0, &t, err, sizeof err) == -1 && err[0], "truncated jpeg: %s", err);
    CHECK(image_decode((const uint8_t *)"GIF89a......", 12, 3, 0, &t, err, sizeof err) == -1, "unknown format");
    image_free(&g3);
    image_free(&g);
    image_free(&src);
    free(jpg);
    /* oversized header is rejected before allocating */
    uint8_t hdr[33];
    memcpy(hdr, "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16);
    be32(hdr + 16, 40000); be32(hdr + 20, 10);
    hdr[24] = 8; hdr[25] = 0; hdr[26] = hdr[27] = hdr[28] = 0;
    uLong crc = crc32(0, hdr + 12, 17);
    be32(hdr + 29, (uint32_t)crc);
    CHECK(image_decode(hdr, sizeof hdr, 3, 0, &t, err, sizeof err) == -1, "png 40000 wide rejected");
}

/* ---- the command line ---- */
static int run(const char *cmd, char *out, size_t nout) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t k = fread(out, 1, nout - 1, p);
    out[k] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void) {
    const char *bin = getenv("MIXTAPE");
    if (!bin || access(bin, X_OK) != 0) {
        printf("  (mixtape binary not found: command line not tested)\n");
        return;
    }
    char cmd[2000], out[4096];
    snprintf(cmd, sizeof cmd, "'%s' shards --from idx '%s' --out '%s' --per-shard 20 2>&1", bin,
             path_of("idx_raw/train-images-idx3-ubyte"), path_of("cli/mn"));
    int rc = run(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "25 samples, 10 classes, 2 shards"), "cli idx rc=%d: %s", rc, out);
    snprintf(cmd, sizeof cmd, "'%s' shards --from cifar '%s' --out '%s' --shard-size 0.01 2>&1", bin, path_of("cifar100"),
             path_of("cli_c100/c100")); /* own directory: its classes.txt differs */
    rc = run(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "6 samples, 100 classes"), "cli cifar rc=%d: %s", rc, out);
    snprintf(cmd, sizeof cmd, "'%s' shards --from imagefolder '%s' --out '%s' 2>&1", bin, path_of("if"), path_of("cli_if/if"));
    rc = run(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "9 samples, 3 classes, 1 shard,"), "cli if rc=%d: %s", rc, out);
    snprintf(cmd, sizeof cmd, "'%s' shards --from idx '%s' --out x --bogus 2>&1", bin, path_of("idx_raw/train-images-idx3-ubyte"));
    rc = run(cmd, out, sizeof out);
    CHECK(rc == 2 && strstr(out, "--bogus"), "cli bad flag rc=%d: %s", rc, out);
    snprintf(cmd, sizeof cmd, "'%s' shards --from tiff '%s' --out x 2>&1", bin, path_of("if"));
    rc = run(cmd, out, sizeof out);
    CHECK(rc == 2, "cli bad --from rc=%d", rc);
    snprintf(cmd, sizeof cmd, "'%s' shards --from idx '%s' --out '%s' 2>&1", bin, path_of("nothing-images-idx3-ubyte"),
             path_of("cli/z"));
    rc = run(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "nothing-images"), "cli missing source rc=%d: %s", rc, out);
    printf("  command line tested with %s\n", bin);
}

int main(void) {
    snprintf(TMP, sizeof TMP, "/tmp/mixtape_formats_XXXXXX");
    if (!mkdtemp(TMP)) { perror("mkdtemp"); return 1; }
    test_png_types();
    test_jpeg();
    test_shard_lists();
    test_tar_grouping();
    test_idx();
    test_cifar();
    test_imagefolder();
    test_cli();
    if (!failures) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", TMP);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", TMP);
    } else {
        fprintf(stderr, "files kept in %s\n", TMP);
    }
    return check_summary("test_data_formats");
}
