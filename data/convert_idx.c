/* IDX (MNIST / Fashion-MNIST) images + labels -> shards of PNG images. Files may be gzip'd
 * (zlib's gzread reads plain files too). Headers are untrusted: magic, dimensions and the
 * amount of data actually present are all checked. */
#include "data/convert.h"
#include "data/source.h"
#include "data/source_util.h"
#include "data/tar_writer.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static const char *FASHION[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                  "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

#define IDX_MAX_ITEMS 100000000L

typedef struct { gzFile f; const char *path; } Idx;

static int read_exact(Idx *x, void *buf, size_t n, const char *what, char *err, size_t errn) {
    size_t got = 0;
    while (got < n) {
        size_t chunk = n - got > (1u << 30) ? (1u << 30) : n - got;
        int r = gzread(x->f, (char *)buf + got, (unsigned)chunk);
        if (r < 0) {
            int e;
            const char *m = gzerror(x->f, &e);
            return src_seterr(err, errn, "%s: %s", x->path, m ? m : "read error");
        }
        if (r == 0) return src_seterr(err, errn, "%s: truncated (%s: %zu of %zu bytes)", x->path, what, got, n);
        got += (size_t)r;
    }
    return 0;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* Opens an IDX file of unsigned bytes with ndim dimensions; dims[] filled. */
static int idx_open(Idx *x, const char *path, int ndim, uint32_t *dims, char *err, size_t errn) {
    x->path = path;
    x->f = NULL;
    if (src_path_kind(path) == 0) return src_seterr(err, errn, "%s: not found", path);
    int fd = src_open_regular(path, err, errn); /* a FIFO named like the data never blocks */
    if (fd < 0) return -1;
    x->f = gzdopen(fd, "rb");
    if (!x->f) { close(fd); return src_seterr(err, errn, "%s: %s", path, strerror(errno)); }
    gzbuffer(x->f, 1 << 17);
    uint8_t h[4];
    if (read_exact(x, h, 4, "magic", err, errn)) return -1;
    if (h[0] || h[1]) return src_seterr(err, errn, "%s: not an IDX file (magic %02x%02x%02x%02x)", path, h[0], h[1], h[2], h[3]);
    if (h[2] != 0x08) return src_seterr(err, errn, "%s: IDX element type 0x%02x, only unsigned bytes (0x08) supported", path, h[2]);
    if (h[3] != ndim)
        return src_seterr(err, errn, "%s: IDX has %d dimensions, expected %d (%s)", path, h[3], ndim, ndim == 3 ? "images" : "labels");
    uint8_t d[12];
    if (read_exact(x, d, 4 * (size_t)ndim, "dimensions", err, errn)) return -1;
    for (int i = 0; i < ndim; i++) dims[i] = be32(d + 4 * i);
    return 0;
}

/* Bytes of the file on disk when not gzip'd, else 0 (size checked while reading). */
static int64_t plain_size(const char *path) {
    FILE *f = src_fopen_regular(path, NULL, 0);
    if (!f) return 0;
    unsigned char m[2] = {0, 0};
    size_t n = fread(m, 1, 2, f);
    int gz = n == 2 && m[0] == 0x1f && m[1] == 0x8b;
    int64_t size = 0;
    if (!gz && fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    fclose(f);
    return size;
}

/* "train-images-idx3-ubyte(.gz)" -> "train-labels-idx1-ubyte(.gz)", beside it. Tries with and
 * without .gz. NULL when there is no such file. */
static char *find_labels(const char *images) {
    const char *base = strrchr(images, '/');
    base = base ? base + 1 : images;
    const char *pat = strstr(base, "images-idx3");
    const char *rep = "labels-idx1";
    size_t plen = 11;
    if (!pat) { pat = strstr(base, "images"); rep = "labels"; plen = 6; }
    if (!pat) return NULL;
    size_t l = strlen(images), off = (size_t)(pat - images);
    char *p = malloc(l + 8);
    if (!p) return NULL;
    memcpy(p, images, off);
    memcpy(p + off, rep, strlen(rep));
    strcpy(p + off + strlen(rep), images + off + plen);
    if (plen == 6) { /* also idx3 -> idx1 */
        char *q = strstr(p + off, "idx3");
        if (q) q[3] = '1';
    }
    if (src_path_kind(p) == 1) return p;
    size_t lp = strlen(p);
    if (lp > 3 && !strcmp(p + lp - 3, ".gz")) p[lp - 3] = 0;
    else strcat(p, ".gz");
    if (src_path_kind(p) == 1) return p;
    free(p);
    return NULL;
}

static int contains_ci(const char *s, const char *w) {
    size_t lw = strlen(w);
    for (; *s; s++) {
        size_t i = 0;
        while (i < lw && s[i] && tolower((unsigned char)s[i]) == w[i]) i++;
        if (i == lw) return 1;
    }
    return 0;
}

int convert_idx(const char *images, const ConvertOpts *o, ConvertResult *r, char *err, size_t errn) {
    memset(r, 0, sizeof *r);
    Idx xi = {0}, xl = {0};
    uint32_t di[3] = {0}, dl[1] = {0};
    char *labels_path = NULL;
    uint8_t *labels = NULL;
    Image im = {0};
    ShardWriter *w = NULL;
    char **names = NULL;
    int nnames = 0, rc = -1;
    if (idx_open(&xi, images, 3, di, err, errn)) goto done;
    uint64_t n = di[0], rows = di[1], cols = di[2];
    if (n == 0 || n > IDX_MAX_ITEMS) { src_seterr(err, errn, "%s: %llu images out of range", images, (unsigned long long)n); goto done; }
    if (rows == 0 || cols == 0 || rows > IMAGE_MAX_SIDE || cols > IMAGE_MAX_SIDE || rows * cols > ((uint64_t)1 << 24)) {
        src_seterr(err, errn, "%s: image size %llux%llu out of range", images, (unsigned long long)rows, (unsigned long long)cols);
        goto done;
    }
    int64_t ps = plain_size(images);
    if (ps && (uint64_t)ps != 16 + n * rows * cols) {
        src_seterr(err, errn, "%s: header says %llu images of %llux%llu (%llu bytes) but the file has %lld bytes", images,
                   (unsigned long long)n, (unsigned long long)rows, (unsigned long long)cols,
                   (unsigned long long)(16 + n * rows * cols), (long long)ps);
        goto done;
    }
    labels_path = o->labels ? strdup(o->labels) : find_labels(images);
    if (!labels_path) {
        src_seterr(err, errn, "%s: no labels file found beside it (expected ...labels-idx1-ubyte[.gz]); give --labels FILE", images);
        goto done;
    }
    if (idx_open(&xl, labels_path, 1, dl, err, errn)) goto done;
    if (dl[0] != n) {
        src_seterr(err, errn, "%s has %u labels for %llu images in %s", labels_path, dl[0], (unsigned long long)n, images);
        goto done;
    }
    int64_t pl = plain_size(labels_path);
    if (pl && (uint64_t)pl != 8 + n) {
        src_seterr(err, errn, "%s: header says %llu labels but the file has %lld bytes", labels_path, (unsigned long long)n, (long long)pl);
        goto done;
    }
    labels = malloc(n);
    if (!labels) { src_seterr(err, errn, "out of memory"); goto done; }
    if (read_exact(&xl, labels, n, "labels", err, errn)) goto done;
    int maxl = 0;
    for (uint64_t i = 0; i < n; i++) if (labels[i] > maxl) maxl = labels[i];
    int ncls = maxl + 1 > 10 ? maxl + 1 : 10;
    int fashion = contains_ci(images, "fashion") && ncls == 10;
    names = calloc((size_t)ncls, sizeof *names);
    if (!names) { src_seterr(err, errn, "out of memory"); goto done; }
    nnames = ncls;
    for (int i = 0; i < ncls; i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", i);
        names[i] = strdup(fashion ? FASHION[i] : buf);
        if (!names[i]) { src_seterr(err, errn, "out of memory"); goto done; }
    }
    if (!(w = convert_open_writer(o, err, errn))) goto done;
    if (image_alloc(&im, (int)cols, (int)rows, 1)) { src_seterr(err, errn, "out of memory"); goto done; }
    int width = convert_key_width((long)n);
    for (uint64_t i = 0; i < n; i++) {
        char what[48];
        snprintf(what, sizeof what, "image %llu", (unsigned long long)i);
        if (read_exact(&xi, im.px, rows * cols, what, err, errn)) goto done;
        if (o->stats) dataset_acc_add(o->stats, &im);
        uint8_t *png;
        size_t npng;
        if (image_encode_png(&im, &png, &npng)) { src_seterr(err, errn, "png encoding failed"); goto done; }
        char key[32];
        snprintf(key, sizeof key, "%0*llu", width, (unsigned long long)i);
        int a = shard_writer_add(w, key, "png", png, npng, labels[i], NULL, err, errn);
        free(png);
        if (a) goto done;
    }
    { /* nothing may follow the data */
        uint8_t extra;
        if (gzread(xi.f, &extra, 1) > 0) { src_seterr(err, errn, "%s: trailing bytes after %llu images", images, (unsigned long long)n); goto done; }
        if (gzread(xl.f, &extra, 1) > 0) { src_seterr(err, errn, "%s: trailing bytes after %llu labels", labels_path, (unsigned long long)n); goto done; }
    }
    rc = 0;
done:;
    ShardStats st = {0};
    if (rc) shard_writer_abort(w);
    else rc = shard_writer_commit(w, names, nnames, &st, err, errn);
    r->samples = st.samples;
    r->shards = st.shards;
    r->bytes = st.bytes;
    r->classes = nnames;
    if (xi.f) gzclose(xi.f);
    if (xl.f) gzclose(xl.f);
    classes_free(names, nnames);
    image_free(&im);
    free(labels);
    free(labels_path);
    return rc;
}
