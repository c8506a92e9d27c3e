#include "data/tar_writer.h"
#include "data/source_util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct TarWriter {
    FILE *f;
    char path[1024];
    uint64_t bytes;
};

TarWriter *tar_writer_open(const char *path, char *err, size_t errn) {
    TarWriter *w = calloc(1, sizeof *w);
    if (!w) { src_seterr(err, errn, "out of memory"); return NULL; }
    w->f = fopen(path, "wb");
    if (!w->f) {
        src_seterr(err, errn, "cannot write %s: %s", path, strerror(errno));
        free(w);
        return NULL;
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    src_strlcpy(w->path, path, sizeof w->path);
    return w;
}

static void octal(char *dst, size_t width, uint64_t v) { /* width includes the NUL */
    snprintf(dst, width, "%0*llo", (int)width - 1, (unsigned long long)v);
}

int tar_writer_add(TarWriter *w, const char *name, const void *data, size_t n, char *err, size_t errn) {
    unsigned char h[512];
    memset(h, 0, sizeof h);
    size_t ln = strlen(name);
    if (ln == 0) return src_seterr(err, errn, "tar: empty member name");
    if (ln <= 100) {
        memcpy(h, name, ln);
    } else { /* split at a '/' so that prefix <= 155 and name <= 100 */
        const char *cut = NULL;
        for (const char *p = name; *p; p++)
            if (*p == '/' && (size_t)(p - name) <= 155 && ln - (size_t)(p - name) - 1 <= 100) { cut = p; break; }
        if (!cut) return src_seterr(err, errn, "tar: member name too long: %.80s...", name);
        memcpy(h + 345, name, (size_t)(cut - name));
        memcpy(h, cut + 1, ln - (size_t)(cut - name) - 1);
    }
    if ((uint64_t)n >= (uint64_t)1 << 33) return src_seterr(err, errn, "tar: member %s too large", name);
    octal((char *)h + 100, 8, 0644);
    octal((char *)h + 108, 8, 0);
    octal((char *)h + 116, 8, 0);
    octal((char *)h + 124, 12, n);
    octal((char *)h + 136, 12, 0);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6); /* magic "ustar\0" */
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum); /* 6 digits, NUL, space */
    h[155] = ' ';
    static const unsigned char zeros[512];
    size_t pad = (512 - n % 512) % 512;
    if (fwrite(h, 1, 512, w->f) != 512 || (n && fwrite(data, 1, n, w->f) != n) || (pad && fwrite(zeros, 1, pad, w->f) != pad))
        return src_seterr(err, errn, "cannot write %s: %s", w->path, strerror(errno));
    w->bytes += tar_member_bytes(n);
    return 0;
}

uint64_t tar_writer_bytes(const TarWriter *w) { return w->bytes; }

int tar_writer_close(TarWriter *w, char *err, size_t errn) {
    if (!w) return 0;
    static const unsigned char zeros[1024];
    int rc = 0;
    if (fwrite(zeros, 1, 1024, w->f) != 1024) rc = src_seterr(err, errn, "cannot write %s: %s", w->path, strerror(errno));
    if (fclose(w->f) != 0 && !rc) rc = src_seterr(err, errn, "cannot write %s: %s", w->path, strerror(errno));
    free(w);
    return rc;
}

struct ShardWriter {
    char *prefix;
    long per_shard;
    uint64_t max_bytes;
    TarWriter *cur;
    long in_cur;
    ShardStats st;
};

void shard_writer_path(const char *prefix, int i, char *buf, size_t n) { snprintf(buf, n, "%s-%06d.tar", prefix, i); }

ShardWriter *shard_writer_open(const char *prefix, long per_shard, uint64_t max_bytes, char *err, size_t errn) {
    ShardWriter *w = calloc(1, sizeof *w);
    if (!w || !(w->prefix = strdup(prefix))) { free(w); src_seterr(err, errn, "out of memory"); return NULL; }
    w->per_shard = per_shard > 0 ? per_shard : 0;
    w->max_bytes = max_bytes;
    return w;
}

static int finish_shard(ShardWriter *w, char *err, size_t errn) {
    if (!w->cur) return 0;
    uint64_t b = tar_writer_bytes(w->cur) + 1024;
    int rc = tar_writer_close(w->cur, err, errn);
    w->cur = NULL;
    w->st.bytes += b;
    return rc;
}

int shard_writer_add(ShardWriter *w, const char *key, const char *ext, const void *img, size_t n, int label,
                     const char *json, char *err, size_t errn) {
    char cls[24], name[300];
    int lc = label >= 0 ? snprintf(cls, sizeof cls, "%d", label) : 0;
    uint64_t need = tar_member_bytes(n) + (label >= 0 ? tar_member_bytes((size_t)lc) : 0) +
                    (json ? tar_member_bytes(strlen(json)) : 0);
    if (w->cur && ((w->per_shard && w->in_cur >= w->per_shard) ||
                   (w->max_bytes && tar_writer_bytes(w->cur) + need + 1024 > w->max_bytes))) {
        if (finish_shard(w, err, errn)) return -1;
    }
    if (!w->cur) {
        char path[1200];
        shard_writer_path(w->prefix, w->st.shards, path, sizeof path);
        if (!(w->cur = tar_writer_open(path, err, errn))) return -1;
        w->st.shards++;
        w->in_cur = 0;
    }
    if (snprintf(name, sizeof name, "%s.%s", key, ext) >= (int)sizeof name) return src_seterr(err, errn, "key too long");
    if (tar_writer_add(w->cur, name, img, n, err, errn)) return -1;
    if (label >= 0) {
        snprintf(name, sizeof name, "%s.cls", key);
        if (tar_writer_add(w->cur, name, cls, (size_t)lc, err, errn)) return -1;
    }
    if (json) {
        snprintf(name, sizeof name, "%s.json", key);
        if (tar_writer_add(w->cur, name, json, strlen(json), err, errn)) return -1;
    }
    w->in_cur++;
    w->st.samples++;
    return 0;
}

int shard_writer_close(ShardWriter *w, ShardStats *stats, char *err, size_t errn) {
    if (!w) return 0;
    int rc = finish_shard(w, err, errn);
    if (stats) *stats = w->st;
    free(w->prefix);
    free(w);
    return rc;
}
