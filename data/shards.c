/* Shard list specs -> list of existing shard paths. */
#include "data/source.h"
#include "data/source_util.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SHARDS 10000000

typedef struct { char **v; int n, cap; } StrList;

static int sl_push(StrList *l, char *s) {
    if (!s) return -1;
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 16;
        char **nv = realloc(l->v, (size_t)nc * sizeof *nv);
        if (!nv) { free(s); return -1; }
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = s;
    return 0;
}

static int is_tar_name(const char *p) {
    return src_ends_with_ci(p, ".tar") || src_ends_with_ci(p, ".tar.gz") || src_ends_with_ci(p, ".tgz");
}

/* Expands the first brace group of pat recursively: {a..b} numeric ranges (width of a kept when
 * zero padded) and {x,y,z} alternatives. */
static int expand_braces(const char *pat, StrList *out, char *err, size_t errn) {
    const char *lb = strchr(pat, '{');
    if (!lb) return sl_push(out, strdup(pat)) ? src_seterr(err, errn, "out of memory") : 0;
    const char *rb = strchr(lb, '}');
    if (!rb) return src_seterr(err, errn, "shard spec '%s': unmatched '{'", pat);
    size_t pre = (size_t)(lb - pat), inner = (size_t)(rb - lb - 1);
    char *body = malloc(inner + 1);
    if (!body) return src_seterr(err, errn, "out of memory");
    memcpy(body, lb + 1, inner);
    body[inner] = 0;
    const char *rest = rb + 1;
    size_t lrest = strlen(rest);
    int rc = 0;
    char *dots = strstr(body, "..");
    if (dots) {
        *dots = 0;
        const char *a = body, *b = dots + 2;
        char *ea, *eb;
        errno = 0;
        long lo = strtol(a, &ea, 10), hi = strtol(b, &eb, 10);
        if (!*a || !*b || *ea || *eb || errno || lo < 0 || hi < 0) {
            free(body);
            return src_seterr(err, errn, "shard spec '%s': bad range in braces", pat);
        }
        int width = (a[0] == '0' && strlen(a) > 1) || strlen(a) == strlen(b) ? (int)strlen(a) : 0;
        if (hi < lo) { long t = lo; lo = hi; hi = t; }
        if (hi - lo >= MAX_SHARDS) { free(body); return src_seterr(err, errn, "shard spec '%s': range too large", pat); }
        for (long i = lo; i <= hi && !rc; i++) {
            char num[32];
            int ln = snprintf(num, sizeof num, "%0*ld", width, i);
            char *s = malloc(pre + (size_t)ln + lrest + 1);
            if (!s) { rc = src_seterr(err, errn, "out of memory"); break; }
            memcpy(s, pat, pre);
            memcpy(s + pre, num, (size_t)ln);
            memcpy(s + pre + ln, rest, lrest + 1);
            rc = expand_braces(s, out, err, errn);
            free(s);
        }
    } else {
        char *save = NULL;
        for (char *tok = strtok_r(body, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
            size_t lt = strlen(tok);
            char *s = malloc(pre + lt + lrest + 1);
            if (!s) { rc = src_seterr(err, errn, "out of memory"); break; }
            memcpy(s, pat, pre);
            memcpy(s + pre, tok, lt);
            memcpy(s + pre + lt, rest, lrest + 1);
            rc = expand_braces(s, out, err, errn);
            free(s);
        }
    }
    free(body);
    if (!rc && out->n > MAX_SHARDS) rc = src_seterr(err, errn, "shard spec '%s': too many shards", pat);
    return rc;
}

static int expand_dir(const char *dir, StrList *out, char *err, size_t errn) {
    DIR *d = opendir(dir);
    if (!d) return src_seterr(err, errn, "cannot open shard directory %s: %s", dir, strerror(errno));
    int start = out->n;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !is_tar_name(e->d_name)) continue;
        char *p = src_join(dir, e->d_name);
        if (p && src_path_kind(p) != 1) { /* a FIFO / device named x.tar would block or mislead */
            char ep[300];
            fprintf(stderr, "mixtape: warning: skipping '%s' in shard directory: not a regular file\n",
                    src_escape(p, ep, sizeof ep));
            free(p);
            continue;
        }
        if (sl_push(out, p)) { closedir(d); return src_seterr(err, errn, "out of memory"); }
    }
    closedir(d);
    src_sort_strings(out->v + start, out->n - start);
    return 0;
}

/* 1 when the file starts like a tar (ustar magic / plausible header) or gzip stream. */
static int looks_like_archive(const char *path) {
    FILE *f = src_fopen_regular(path, NULL, 0);
    if (!f) return 0;
    unsigned char b[512];
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b) return 1;
    if (n >= 263 && !memcmp(b + 257, "ustar", 5)) return 1;
    for (size_t i = 0; i < n; i++)
        if (b[i] == 0) return 1; /* a text list has no NUL bytes */
    return 0;
}

static int expand_list(const char *path, StrList *out, char *err, size_t errn) {
    uint8_t *buf;
    size_t n;
    if (src_read_file(path, (size_t)256 << 20, &buf, &n, err, errn)) return -1;
    char *base = src_dirname(path);
    if (!base) { free(buf); return src_seterr(err, errn, "out of memory"); }
    int rc = 0;
    size_t i = 0;
    while (i < n && !rc) {
        size_t j = i;
        while (j < n && buf[j] != '\n') j++;
        size_t a = i, b = j;
        while (a < b && (buf[a] == ' ' || buf[a] == '\t')) a++;
        while (b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\t' || buf[b - 1] == '\r')) b--;
        if (b > a && buf[a] != '#') {
            char *line = malloc(b - a + 1);
            if (!line) { rc = src_seterr(err, errn, "out of memory"); break; }
            memcpy(line, buf + a, b - a);
            line[b - a] = 0;
            char *p = src_join(base, line);
            free(line);
            if (sl_push(out, p)) rc = src_seterr(err, errn, "out of memory");
        }
        i = j + 1;
    }
    free(base);
    free(buf);
    return rc;
}

int shard_list_expand(const char *spec, char ***paths, int *n, char *err, size_t errn) {
    return shard_list_expand_rank(spec, 0, 1, paths, n, err, errn);
}

int shard_list_expand_rank(const char *spec, int rank, int world, char ***paths, int *n, char *err, size_t errn) {
    *paths = NULL;
    *n = 0;
    if (!spec || !*spec) return src_seterr(err, errn, "empty shard spec");
    StrList l = {0};
    int rc;
    char ep[300], ep2[300];
    int kind = src_path_kind(spec);
    if (kind == 2) rc = expand_dir(spec, &l, err, errn);
    else if (strchr(spec, '{')) rc = expand_braces(spec, &l, err, errn);
    else if (kind == 1 && (is_tar_name(spec) || looks_like_archive(spec))) rc = sl_push(&l, strdup(spec)) ? src_seterr(err, errn, "out of memory") : 0;
    else if (kind == 1) rc = expand_list(spec, &l, err, errn);
    else if (kind == 3) rc = src_seterr(err, errn, "shard '%s' is not a regular file", src_escape(spec, ep, sizeof ep));
    else rc = src_seterr(err, errn, "shard '%s' not found", src_escape(spec, ep, sizeof ep));
    for (int i = 0; !rc && i < l.n; i++) {
        if (world > 1 && i % world != rank) continue;   /* another rank's: may live on another host only */
        int k = src_path_kind(l.v[i]);
        if (k != 1)
            rc = src_seterr(err, errn, "shard '%s' %s (from '%s')", src_escape(l.v[i], ep, sizeof ep),
                            k == 0 ? "not found" : k == 2 ? "is a directory" : "is not a regular file",
                            src_escape(spec, ep2, sizeof ep2));
    }
    if (!rc && l.n == 0) rc = src_seterr(err, errn, "no shards in '%s'", spec);
    if (rc) { shard_list_free(l.v, l.n); return -1; }
    *paths = l.v;
    *n = l.n;
    return 0;
}

void shard_list_free(char **paths, int n) {
    if (!paths) return;
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
}
