#include "data/tar_writer.h"
#include "data/source_util.h"
#include "data/source.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct TarWriter {
    FILE *f;
    char *path;            /* final name */
    char *tmp;             /* where the bytes go until the rename */
    uint64_t bytes;
};

static void tw_free(TarWriter *w) {
    free(w->tmp);
    free(w->path);
    free(w);
}

TarWriter *tar_writer_open(const char *path, char *err, size_t errn) {
    TarWriter *w = calloc(1, sizeof *w);
    size_t lp = strlen(path);
    if (!w || !(w->tmp = malloc(lp + 16)) || !(w->path = strdup(path))) {
        if (w) tw_free(w);
        src_seterr(err, errn, "out of memory");
        return NULL;
    }
    memcpy(w->tmp, path, lp);
    memcpy(w->tmp + lp, ".tmp.XXXXXX", 12);
    int fd = mkstemp(w->tmp); /* same directory as path: the final rename is atomic */
    if (fd < 0) {
        src_seterr(err, errn, "cannot write %s: %s", path, strerror(errno));
        tw_free(w);
        return NULL;
    }
    mode_t um = umask(0); /* mkstemp makes 0600; a shard is an ordinary file (0666 & ~umask) */
    umask(um);
    if (fchmod(fd, 0666 & ~um) != 0 || !(w->f = fdopen(fd, "wb"))) {
        src_seterr(err, errn, "cannot write %s: %s", w->tmp, strerror(errno));
        close(fd);
        unlink(w->tmp);
        tw_free(w);
        return NULL;
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
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

char *tar_writer_finish(TarWriter *w, char *err, size_t errn) {
    if (!w) return NULL;
    static const unsigned char zeros[1024];
    int rc = 0;
    if (fwrite(zeros, 1, 1024, w->f) != 1024) rc = src_seterr(err, errn, "cannot write %s: %s", w->path, strerror(errno));
    if (fclose(w->f) != 0 && !rc) rc = src_seterr(err, errn, "cannot write %s: %s", w->path, strerror(errno));
    if (rc) { unlink(w->tmp); tw_free(w); return NULL; }
    char *tmp = w->tmp;
    w->tmp = NULL;
    tw_free(w);
    return tmp;
}

void tar_writer_abort(TarWriter *w) {
    if (!w) return;
    fclose(w->f);
    unlink(w->tmp);
    tw_free(w);
}

int tar_writer_close(TarWriter *w, char *err, size_t errn) {
    if (!w) return 0;
    char *path = strdup(w->path);
    if (!path) { tar_writer_abort(w); return src_seterr(err, errn, "out of memory"); }
    char *tmp = tar_writer_finish(w, err, errn);
    int rc = 0;
    if (!tmp) rc = -1;
    else if (rename(tmp, path) != 0) {
        rc = src_seterr(err, errn, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    free(path);
    return rc;
}

struct ShardWriter {
    char *prefix;
    ShardWriterOpts o;
    TarWriter *cur;
    long in_cur;
    char **tmps;           /* finished shards, still under their temporary names, in order */
    int ntmps, cap;
    ShardStats st;
};

void shard_writer_path(const char *prefix, int i, char *buf, size_t n) { snprintf(buf, n, "%s-%06d.tar", prefix, i); }

/* 1 when name (a directory entry) is base + "-" + digits + ".tar"; *idx = the number. */
static int is_shard_of(const char *name, const char *base, long *idx) {
    size_t lb = strlen(base), ln = strlen(name);
    if (ln < lb + 6 || strncmp(name, base, lb) || name[lb] != '-' || strcmp(name + ln - 4, ".tar")) return 0;
    long v = 0;
    for (size_t i = lb + 1; i < ln - 4; i++) {
        if (name[i] < '0' || name[i] > '9') return 0;
        if (v < 100000000) v = v * 10 + (name[i] - '0');
    }
    *idx = v;
    return 1;
}

/* Calls fn(path, idx, ctx) for every PREFIX-<digits>.tar on disk; counts them. -1 unreadable dir. */
static int each_old_shard(const char *prefix, void (*fn)(const char *, long, void *), void *ctx) {
    char *dir = src_dirname(prefix);
    if (!dir) return -1;
    const char *slash = strrchr(prefix, '/');
    const char *base = slash ? slash + 1 : prefix;
    DIR *d = opendir(dir);
    if (!d) { int e = errno; free(dir); return e == ENOENT ? 0 : -1; }
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        long idx;
        if (!is_shard_of(e->d_name, base, &idx)) continue;
        n++;
        if (fn) {
            char *p = src_join(dir, e->d_name);
            if (p) fn(p, idx, ctx);
            free(p);
        }
    }
    closedir(d);
    free(dir);
    return n;
}

typedef struct { char *first; size_t n; } FirstName;
static void note_first(const char *path, long idx, void *ctx) {
    FirstName *f = ctx;
    (void)idx;
    if (f->first && f->n && !f->first[0]) src_strlcpy(f->first, path, f->n);
}

int shard_prefix_existing(const char *prefix, char *first, size_t nfirst) {
    if (first && nfirst) first[0] = 0;
    FirstName f = {first, nfirst};
    return each_old_shard(prefix, note_first, &f);
}

static int refuse_existing(const char *prefix, char *err, size_t errn) {
    char first[600], ep[300];
    int n = shard_prefix_existing(prefix, first, sizeof first);
    if (n < 0) return src_seterr(err, errn, "cannot list the directory of %s", src_escape(prefix, ep, sizeof ep));
    if (n > 0)
        return src_seterr(err, errn, "%s: %d shard%s of prefix '%s' already there; --overwrite replaces them", src_escape(first, ep, sizeof ep),
                          n, n == 1 ? "" : "s", prefix);
    return 0;
}

ShardWriter *shard_writer_open_opts(const char *prefix, const ShardWriterOpts *o, char *err, size_t errn) {
    if (!o->overwrite && refuse_existing(prefix, err, errn)) return NULL;
    ShardWriter *w = calloc(1, sizeof *w);
    if (!w || !(w->prefix = strdup(prefix))) { free(w); src_seterr(err, errn, "out of memory"); return NULL; }
    w->o = *o;
    if (w->o.per_shard < 0) w->o.per_shard = 0;
    return w;
}

ShardWriter *shard_writer_open(const char *prefix, long per_shard, uint64_t max_bytes, char *err, size_t errn) {
    ShardWriterOpts o = {per_shard, max_bytes, 0, NULL, NULL, NULL};
    return shard_writer_open_opts(prefix, &o, err, errn);
}

static int finish_shard(ShardWriter *w, char *err, size_t errn) {
    if (!w->cur) return 0;
    uint64_t b = tar_writer_bytes(w->cur) + 1024;
    if (w->ntmps == w->cap) {
        int nc = w->cap ? 2 * w->cap : 16;
        char **nv = realloc(w->tmps, (size_t)nc * sizeof *nv);
        if (!nv) return src_seterr(err, errn, "out of memory");
        w->tmps = nv;
        w->cap = nc;
    }
    char *tmp = tar_writer_finish(w->cur, err, errn);
    w->cur = NULL;
    if (!tmp) return -1;
    w->tmps[w->ntmps++] = tmp;
    w->st.bytes += b;
    return 0;
}

int shard_writer_add(ShardWriter *w, const char *key, const char *ext, const void *img, size_t n, int label,
                     const char *json, char *err, size_t errn) {
    if (w->o.stop && w->o.stop()) return src_seterr(err, errn, "interrupted");
    char cls[24], name[300];
    int lc = label >= 0 ? snprintf(cls, sizeof cls, "%d", label) : 0;
    uint64_t need = tar_member_bytes(n) + (label >= 0 ? tar_member_bytes((size_t)lc) : 0) +
                    (json ? tar_member_bytes(strlen(json)) : 0);
    if (w->cur && ((w->o.per_shard && w->in_cur >= w->o.per_shard) ||
                   (w->o.max_bytes && tar_writer_bytes(w->cur) + need + 1024 > w->o.max_bytes))) {
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

static void sw_free(ShardWriter *w) {
    for (int i = 0; i < w->ntmps; i++) free(w->tmps[i]);
    free(w->tmps);
    free(w->prefix);
    free(w);
}

void shard_writer_abort(ShardWriter *w) {
    if (!w) return;
    tar_writer_abort(w->cur);
    for (int i = 0; i < w->ntmps; i++) unlink(w->tmps[i]);
    sw_free(w);
}

/* 0 when classes.txt at path is absent or lists exactly names; 1 when it differs; -1 unreadable. */
static int classes_differ(const char *path, char *const *names, int n, char *err, size_t errn) {
    char **old;
    int nold;
    if (classes_read(path, &old, &nold, err, errn)) return -1;
    int differ = old && nold != n;
    for (int i = 0; old && !differ && i < n; i++) differ = strcmp(old[i], names[i]) != 0;
    classes_free(old, nold);
    return differ;
}

typedef struct { const char *prefix; long keep; } OldCtx;
/* Old shards the renames will not replace (numbers beyond the new set, other zero padding) go. */
static void remove_stale(const char *path, long idx, void *ctx) {
    const OldCtx *c = ctx;
    char mine[1200];
    shard_writer_path(c->prefix, (int)(idx < c->keep ? idx : 0), mine, sizeof mine);
    if (idx >= c->keep || strcmp(mine, path)) unlink(path);
}

int shard_writer_commit(ShardWriter *w, char *const *names, int nnames, ShardStats *stats, char *err, size_t errn) {
    if (!w) return 0;
    char ep[300];
    if (stats) memset(stats, 0, sizeof *stats);
    if (finish_shard(w, err, errn) || (!w->o.overwrite && refuse_existing(w->prefix, err, errn))) {
        shard_writer_abort(w);
        return -1;
    }
    char *cpath = NULL;
    if (names) {
        char *dir = src_dirname(w->prefix);
        cpath = dir ? src_join(dir, "classes.txt") : NULL;
        free(dir);
        if (!cpath) { shard_writer_abort(w); return src_seterr(err, errn, "out of memory"); }
        int d = classes_differ(cpath, names, nnames, err, errn);
        if (d < 0 || (d > 0 && !w->o.overwrite)) {
            if (d > 0)
                src_seterr(err, errn, "%s lists other classes (shards of another prefix use it); --overwrite replaces it",
                           src_escape(cpath, ep, sizeof ep));
            free(cpath);
            shard_writer_abort(w);
            return -1;
        }
    }
    if (w->o.overwrite) { /* the new set is complete: old shards beyond it go now */
        OldCtx c = {w->prefix, w->ntmps};
        each_old_shard(w->prefix, remove_stale, &c);
    }
    int rc = 0, done = 0;
    char path[1200];
    for (; done < w->ntmps; done++) {
        shard_writer_path(w->prefix, done, path, sizeof path);
        if (rename(w->tmps[done], path) != 0) { rc = src_seterr(err, errn, "cannot write %s: %s", path, strerror(errno)); break; }
    }
    if (!rc && cpath) rc = classes_write(cpath, names, nnames, err, errn);
    if (!rc && w->o.publish) rc = w->o.publish(w->o.publish_ctx, nnames, err, errn);
    free(cpath);
    if (rc) { /* take back what this writer published, then its temporaries */
        for (int i = 0; i < done; i++) {
            shard_writer_path(w->prefix, i, path, sizeof path);
            unlink(path);
        }
        for (int i = done; i < w->ntmps; i++) unlink(w->tmps[i]);
        sw_free(w);
        return -1;
    }
    if (stats) *stats = w->st;
    sw_free(w);
    return 0;
}

int shard_writer_close(ShardWriter *w, ShardStats *stats, char *err, size_t errn) {
    return shard_writer_commit(w, NULL, 0, stats, err, errn);
}
