#include "train/dataset_json.h"
#include "data/h5data.h"
#include "data/source_util.h"
#include "train/checkpoint.h"
#include "train/json_in.h"
#include "train/outfile.h"
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- reading */

typedef struct {
    JsonIn in;
    const char *path;
    char key[200];          /* where the reader is, for messages: "splits.train.std" */
    char *err;
    size_t errn;
} Rd;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int rfail(Rd *r, const char *fmt, ...) {
    char ep[300], m[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    char ek[300];
    return src_seterr(r->err, r->errn, "%s: key '%s': %s", src_escape(r->path, ep, sizeof ep), src_escape(r->key, ek, sizeof ek), m);
}
/* json_in's message appended after "file: key 'k': " */
static int jfailed(Rd *r) {
    char ep[300], ek[300];
    return src_seterr(r->err, r->errn, "%s: %s%s%s%s", src_escape(r->path, ep, sizeof ep), r->key[0] ? "key '" : "",
                      src_escape(r->key, ek, sizeof ek), r->key[0] ? "': " : "", r->in.err);
}

static int rd_uint(Rd *r, uint64_t lo, uint64_t hi, uint64_t *v) {
    *v = 0;
    if (json_uint(&r->in, hi, v) < 0) return jfailed(r);
    if (*v < lo) return rfail(r, "%llu is below %llu", (unsigned long long)*v, (unsigned long long)lo);
    return 0;
}

/* A number in (lo, hi] when open_lo, else [lo, hi]. */
static int rd_num(Rd *r, double lo, double hi, int open_lo, double *v) {
    if (json_number(&r->in, v) < 0) return jfailed(r);
    if ((open_lo ? !(*v > lo) : !(*v >= lo)) || !(*v <= hi)) {
        return rfail(r, "%.6g is out of range %c%g, %g]", *v, open_lo ? '(' : '[', lo, hi);
    }
    return 0;
}

static int rd_numlist(Rd *r, double lo, double hi, int open_lo, double *v, int *n) {
    *n = 0;
    if (json_expect(&r->in, '[') < 0) return jfailed(r);
    if (json_accept(&r->in, ']')) return rfail(r, "an empty list");
    size_t L = strlen(r->key);
    do {
        if (*n == 3) { r->key[L] = 0; return rfail(r, "more than 3 values"); }
        snprintf(r->key + L, sizeof r->key - L, "[%d]", *n);
        if (rd_num(r, lo, hi, open_lo, &v[*n]) < 0) return -1;
        (*n)++;
    } while (json_accept(&r->in, ','));
    r->key[L] = 0;
    if (json_expect(&r->in, ']') < 0) return jfailed(r);
    return 0;
}

/* key into buf; then r->key = prefix + key */
static int rd_key(Rd *r, const char *prefix, char *buf, size_t n) {
    if (json_string(&r->in, buf, n, NULL) < 0 || json_expect(&r->in, ':') < 0) return jfailed(r);
    size_t lp = strlen(prefix);
    src_strlcpy(r->key, prefix, sizeof r->key);
    if (lp < sizeof r->key) src_strlcpy(r->key + lp, buf, sizeof r->key - lp);
    return 0;
}

static int rd_split(Rd *r, const char *prefix, DatasetInfo *d) {
    memset(d, 0, sizeof *d);
    int nm = 0, ns = 0, has_mg = 0, has_sg = 0;
    int hw[6] = {0};        /* height, width, height_min, height_max, width_min, width_max */
    static const char *const HW[6] = {"height", "width", "height_min", "height_max", "width_min", "width_max"};
    char obj[200];
    snprintf(obj, sizeof obj, "%s", prefix);
    size_t lo = strlen(obj);
    if (lo && obj[lo - 1] == '.') obj[lo - 1] = 0;
    snprintf(r->key, sizeof r->key, "%s", obj);
    if (json_expect(&r->in, '{') < 0) return jfailed(r);
    if (!json_accept(&r->in, '}')) {
        do {
            char k[64];
            uint64_t u;
            if (rd_key(r, prefix, k, sizeof k) < 0) return -1;
            if (!strcmp(k, "samples")) { if (rd_uint(r, 1, DATASET_MAX_SAMPLES, &u)) return -1; d->samples = (long)u; }
            else if (!strcmp(k, "classes")) { if (rd_uint(r, 0, DATA_MAX_CLASSES, &u)) return -1; d->classes = (int)u; }
            else if (!strcmp(k, "channels")) {
                if (rd_uint(r, 1, 3, &u)) return -1;
                if (u == 2) return rfail(r, "2 channels (1 or 3)");
                d->channels = (int)u;
            } else if (!strcmp(k, "mean")) { if (rd_numlist(r, 0, 1, 0, d->mean, &nm)) return -1; }
            else if (!strcmp(k, "std")) { if (rd_numlist(r, 0, 0.5, 1, d->std, &ns)) return -1; }
            else if (!strcmp(k, "mean_gray")) { if (rd_num(r, 0, 1, 0, &d->mean_gray)) return -1; has_mg = 1; }
            else if (!strcmp(k, "std_gray")) { if (rd_num(r, 0, 0.5, 1, &d->std_gray)) return -1; has_sg = 1; }
            else {
                int i = 0;
                while (i < 6 && strcmp(k, HW[i])) i++;
                if (i < 6) {
                    if (rd_uint(r, 1, IMAGE_MAX_SIDE, &u)) return -1;
                    hw[i] = (int)u;
                } else if (json_skip(&r->in, 16) < 0) return jfailed(r);
            }
        } while (json_accept(&r->in, ','));
        snprintf(r->key, sizeof r->key, "%s", obj);
        if (json_expect(&r->in, '}') < 0) return jfailed(r);
    }
    snprintf(r->key, sizeof r->key, "%s", obj);
    if (!d->samples) return rfail(r, "no \"samples\"");
    if (!d->channels) return rfail(r, "no \"channels\"");
    if (nm != d->channels || ns != d->channels)
        return rfail(r, "\"mean\" and \"std\" need one value per channel (%d)", d->channels);
    if (has_mg != has_sg) return rfail(r, "\"mean_gray\" and \"std_gray\" go together");
    if (!has_mg) { /* the average, as for a 3-value --mean with a 1-channel model */
        for (int k = 0; k < d->channels; k++) { d->mean_gray += d->mean[k] / d->channels; d->std_gray += d->std[k] / d->channels; }
    }
    d->hmin = hw[2] ? hw[2] : hw[0]; d->hmax = hw[3] ? hw[3] : hw[0];
    d->wmin = hw[4] ? hw[4] : hw[1]; d->wmax = hw[5] ? hw[5] : hw[1];
    return 0;
}

static int rd_doc(Rd *r, DatasetDoc *d) {
    char k[64];
    int has_format = 0;
    if (json_expect(&r->in, '{') < 0) return jfailed(r);
    if (!json_accept(&r->in, '}')) {
        do {
            if (rd_key(r, "", k, sizeof k) < 0) return -1;
            if (!strcmp(k, "format")) {
                char v[64];
                if (json_string(&r->in, v, sizeof v, NULL) < 0) return jfailed(r);
                if (strcmp(v, "mixtape-dataset")) return rfail(r, "not \"mixtape-dataset\"");
                has_format = 1;
            } else if (!strcmp(k, "version")) {
                uint64_t v;
                if (rd_uint(r, 1, 1, &v)) return -1;
            } else if (!strcmp(k, "splits")) {
                if (json_expect(&r->in, '{') < 0) return jfailed(r);
                if (json_accept(&r->in, '}')) continue;
                do {
                    if (d->nsplits == DATASET_MAX_SPLITS) return rfail(r, "more than %d splits", DATASET_MAX_SPLITS);
                    char *name = d->split[d->nsplits];
                    if (json_string(&r->in, name, DATASET_SPLIT_NAME, NULL) < 0 || json_expect(&r->in, ':') < 0) return jfailed(r);
                    char pre[DATASET_SPLIT_NAME + 16];
                    snprintf(pre, sizeof pre, "splits.%s.", name);
                    if (rd_split(r, pre, &d->info[d->nsplits]) < 0) return -1;
                    d->nsplits++;
                } while (json_accept(&r->in, ','));
                snprintf(r->key, sizeof r->key, "splits");
                if (json_expect(&r->in, '}') < 0) return jfailed(r);
            } else if (!strcmp(k, "folder")) {
                char f[32];
                if (json_expect(&r->in, '{') < 0) return jfailed(r);
                if (!json_accept(&r->in, '}')) {
                    do {
                        uint64_t u;
                        if (rd_key(r, "folder.", f, sizeof f) < 0) return -1;
                        if (!strcmp(f, "files")) { if (rd_uint(r, 0, DATASET_MAX_SAMPLES, &u)) return -1; d->folder.files = (long)u; }
                        else if (!strcmp(f, "bytes")) { if (rd_uint(r, 0, (uint64_t)1 << 60, &u)) return -1; d->folder.bytes = u; }
                        else if (!strcmp(f, "mtime_max")) { if (rd_uint(r, 0, (uint64_t)1 << 62, &u)) return -1; d->folder.mtime_max = (int64_t)u; }
                        else if (json_skip(&r->in, 16) < 0) return jfailed(r);
                    } while (json_accept(&r->in, ','));
                    snprintf(r->key, sizeof r->key, "folder");
                    if (json_expect(&r->in, '}') < 0) return jfailed(r);
                }
                d->has_folder = 1;
            } else if (json_skip(&r->in, 16) < 0) return jfailed(r);
        } while (json_accept(&r->in, ','));
        r->key[0] = 0;
        if (json_expect(&r->in, '}') < 0) return jfailed(r);
    }
    r->key[0] = 0;
    if (json_end(&r->in) < 0) return jfailed(r);
    snprintf(r->key, sizeof r->key, "format");
    if (!has_format) return rfail(r, "missing (expected \"mixtape-dataset\")");
    return 0;
}

int dataset_doc_read(const char *path, DatasetDoc *d, char *err, size_t errn) {
    memset(d, 0, sizeof *d);
    int k = src_path_kind(path);
    if (k == 0) return 1;
    uint8_t *buf;
    size_t n;
    if (src_read_file(path, DATASET_JSON_MAX_BYTES, &buf, &n, err, errn)) return -1;
    Rd r = {.path = path, .err = err, .errn = errn};
    json_in_init(&r.in, (const char *)buf, n);
    int rc = rd_doc(&r, d);
    free(buf);
    if (rc) memset(d, 0, sizeof *d);
    return rc ? -1 : 0;
}

/* ---------------------------------------------------------------- writing */

int dataset_doc_put(DatasetDoc *d, const char *split, const DatasetInfo *info) {
    int i = 0;
    while (i < d->nsplits && strcmp(d->split[i], split)) i++;
    if (i == DATASET_MAX_SPLITS) return -1;
    if (i == d->nsplits) {
        src_strlcpy(d->split[i], split, DATASET_SPLIT_NAME);
        d->nsplits++;
    }
    d->info[i] = *info;
    return 0;
}

char *dataset_doc_text(const DatasetDoc *d, const char *class_names) {
    size_t cap = 1024 + (size_t)d->nsplits * (600 + 2 * 6 * DATASET_SPLIT_NAME), k = 0;
    char *t = malloc(cap);
    if (!t) return NULL;
    char q[2 * 6 * DATASET_SPLIT_NAME + 8];
    json_quote(class_names, q, sizeof q);
    k += (size_t)snprintf(t + k, cap - k, "{\n  \"format\": \"mixtape-dataset\",\n  \"version\": 1,\n  \"class_names\": %s,\n", q);
    if (d->has_folder)
        k += (size_t)snprintf(t + k, cap - k, "  \"folder\": {\"files\": %ld, \"bytes\": %llu, \"mtime_max\": %lld},\n",
                              d->folder.files, (unsigned long long)d->folder.bytes, (long long)d->folder.mtime_max);
    k += (size_t)snprintf(t + k, cap - k, "  \"splits\": {");
    for (int i = 0; i < d->nsplits; i++) {
        char one[600];
        json_quote(d->split[i], q, sizeof q);
        dataset_info_json(&d->info[i], one, sizeof one);
        k += (size_t)snprintf(t + k, cap - k, "%s\n    %s: %s", i ? "," : "", q, one);
    }
    snprintf(t + k, cap - k, "\n  }\n}\n");
    return t;
}

/* PREFIX-000000.tar -> PREFIX's base name; any other shard name: its base name without .tar/.tar.gz */
static void split_of_shard(const char *path, char *out, size_t n) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    src_strlcpy(out, b, n);
    size_t L = strlen(out);
    if (src_ends_with_ci(out, ".tar.gz")) L -= 7;
    else if (src_ends_with_ci(out, ".tgz") || src_ends_with_ci(out, ".tar")) L -= 4;
    out[L] = 0;
    size_t i = L;
    while (i > 0 && out[i - 1] >= '0' && out[i - 1] <= '9') i--;
    if (i < L && i > 0 && out[i - 1] == '-') out[i - 1] = 0;
}

int dataset_publish(void *ctx, int nclasses, char *err, size_t errn) {
    DatasetPublish *p = ctx;
    char split[DATASET_SPLIT_NAME], ep[300], e2[600];
    const char *b = strrchr(p->prefix, '/');
    src_strlcpy(split, b ? b + 1 : p->prefix, sizeof split);
    char *dir = src_dirname(p->prefix);
    char *path = dir ? src_join(dir, DATASET_JSON) : NULL;
    free(dir);
    if (!path) return src_seterr(err, errn, "out of memory");
    src_strlcpy(p->path, path, sizeof p->path);
    if (dataset_acc_finish(p->acc, nclasses, &p->info)) {
        src_seterr(err, errn, "%s: no pixels counted", src_escape(path, ep, sizeof ep));
        free(path);
        return -1;
    }
    DatasetDoc *d = malloc(sizeof *d);
    if (!d) { free(path); return src_seterr(err, errn, "out of memory"); }
    if (dataset_doc_read(path, d, e2, sizeof e2) < 0) {
        fprintf(stderr, "mixtape shards: warning: replacing an invalid %s (%s)\n", src_escape(path, ep, sizeof ep), e2);
        memset(d, 0, sizeof *d);
    }
    d->has_folder = 0;
    if (dataset_doc_put(d, split, &p->info)) {
        src_seterr(err, errn, "%s: more than %d splits", src_escape(path, ep, sizeof ep), DATASET_MAX_SPLITS);
        free(d);
        free(path);
        return -1;
    }
    char *text = dataset_doc_text(d, "classes.txt");
    free(d);
    int rc = text ? out_write_atomic(path, text, strlen(text), err, errn) : src_seterr(err, errn, "out of memory");
    free(text);
    free(path);
    return rc;
}

/* ---------------------------------------------------------------- using */

static int dir_has_tars(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(d));)
        if (e->d_name[0] != '.' && (src_ends_with_ci(e->d_name, ".tar") || src_ends_with_ci(e->d_name, ".tar.gz") ||
                                    src_ends_with_ci(e->d_name, ".tgz")))
            found = 1;
    closedir(d);
    return found;
}

/* The statistics of an ImageFolder: the cache when it matches the folder's files, else
 * computed and cached (a folder that cannot be written is only reported). 1 found, 0 none (not
 * an ImageFolder with readable images: the loader says why), -1 error. */
static int folder_stats(const char *dir, DatasetInfo *info, char *src, size_t nsrc, int verbose, char *err, size_t errn) {
    ImageFolder f;
    char ep[300], e2[600];
    if (imagefolder_scan(dir, &f, e2, sizeof e2)) return 0;
    FolderPrint fp;
    char *cpath = src_join(dir, DATASET_CACHE);
    DatasetDoc *d = malloc(sizeof *d);
    int rc = -1;
    if (!cpath || !d) { src_seterr(err, errn, "out of memory"); goto out; }
    rc = 0;
    if (f.n == 0 || dataset_folder_print(&f, &fp, e2, sizeof e2)) goto out;
    int r = dataset_doc_read(cpath, d, e2, sizeof e2);
    if (r < 0 && verbose) fprintf(stderr, "mixtape: warning: ignoring an invalid cache (%s); recomputing\n", e2);
    if (r == 0 && d->has_folder && d->folder.files == fp.files && d->folder.bytes == fp.bytes &&
        d->folder.mtime_max == fp.mtime_max && d->nsplits == 1 && d->info[0].classes == f.nclasses) {
        *info = d->info[0];
        snprintf(src, nsrc, "%s, cached", cpath);
        rc = 1;
        goto out;
    }
    if (verbose)
        printf("computing the statistics of %d images in %s (once; cached in %s)\n", f.n, src_escape(dir, ep, sizeof ep),
               DATASET_CACHE);
    DatasetAcc acc;
    long skipped = 0;
    dataset_acc_init(&acc);
    if (dataset_acc_imagefolder(&f, &acc, &skipped, err, errn)) { rc = -1; goto out; }
    if (dataset_acc_finish(&acc, f.nclasses, info)) goto out; /* no readable image */
    memset(d, 0, sizeof *d);
    d->has_folder = 1;
    d->folder = fp;
    dataset_doc_put(d, "images", info);
    char *text = dataset_doc_text(d, "class directories");
    snprintf(src, nsrc, "%s", cpath);
    if (!text || out_write_atomic(cpath, text, strlen(text), e2, sizeof e2)) {
        if (verbose) printf("note: statistics not cached (%s)\n", text ? e2 : "out of memory");
        snprintf(src, nsrc, "ImageFolder %s (computed, not cached)", dir);
    }
    free(text);
    rc = 1;
out:
    free(d);
    free(cpath);
    imagefolder_free(&f);
    return rc;
}

/* Statistics for spec: 1 found (info, src set), 0 none, -1 error. */
static int data_stats(const char *spec, DatasetInfo *info, char *src, size_t nsrc, int verbose, char *err, size_t errn) {
    size_t L = strlen(spec);
    int kind = src_path_kind(spec);
    if ((L > 3 && src_ends_with_ci(spec, ".h5")) || src_ends_with_ci(spec, ".hdf5") || (kind == 1 && h5data_probe(spec) == 1))
        return 0; /* HDF5 images are already normalised */
    if (kind == 2 && !dir_has_tars(spec)) return folder_stats(spec, info, src, nsrc, verbose, err, errn);
    char **paths = NULL;
    int n = 0;
    /* the names only (no rank's shards need be on this host): rank INT_MAX-1 of INT_MAX owns none */
    if (shard_list_expand_rank(spec, INT_MAX - 1, INT_MAX, &paths, &n, err, errn) || n == 0) {
        shard_list_free(paths, n);
        return 0; /* the loader reports it */
    }
    char split[DATASET_SPLIT_NAME];
    split_of_shard(paths[0], split, sizeof split);
    char *dir = src_dirname(paths[0]);
    shard_list_free(paths, n);
    char *path = dir ? src_join(dir, DATASET_JSON) : NULL;
    free(dir);
    if (!path) return src_seterr(err, errn, "out of memory");
    DatasetDoc *d = malloc(sizeof *d);
    int rc = d ? dataset_doc_read(path, d, err, errn) : src_seterr(err, errn, "out of memory");
    int found = 0;
    if (rc == 0) {
        for (int i = 0; i < d->nsplits && !found; i++)
            if (!strcmp(d->split[i], split)) { *info = d->info[i]; found = 1; }
        char ep[300], es[300];
        if (found) snprintf(src, nsrc, "%s, split %s", path, src_escape(split, es, sizeof es));
        else if (verbose)
            printf("note: %s describes no split '%s'; normalisation not taken from it\n", src_escape(path, ep, sizeof ep),
                   src_escape(split, es, sizeof es));
    }
    free(d);
    free(path);
    return rc < 0 ? -1 : found;
}

int norm_from_data(const char *spec, int chans, AugConfig *aug, const char *src[2], char *srcbuf, size_t nsrcbuf,
                   int verbose, char *err, size_t errn) {
    if (src[0] && src[1]) return 0;
    DatasetInfo info;
    int r = spec ? data_stats(spec, &info, srcbuf, nsrcbuf, verbose, err, errn) : 0;
    if (r < 0) return -1;
    for (int k = 0; k < 2; k++) {
        if (src[k]) continue;
        src[k] = "default";
        if (!r) continue;
        float *v = k ? aug->std : aug->mean;
        if (chans == 1) v[0] = v[1] = v[2] = (float)(k ? info.std_gray : info.mean_gray);
        else for (int c = 0; c < 3; c++) v[c] = (float)(k ? info.std : info.mean)[info.channels == 1 ? 0 : c];
        if (k) aug->n_std = 3; else aug->n_mean = 3;
        src[k] = srcbuf;
    }
    return 0;
}

int norm_from_data_ckpt(const char *spec, const CkptInfo *info, const int given[2], int chans, AugConfig *aug,
                        char *buf, size_t nbuf, int verbose, char *err, size_t errn) {
    int ck = info && (info->n_chan == 1 || info->n_chan == 3);
    const char *src[2] = {given[0] || ck ? "" : NULL, given[1] || ck ? "" : NULL};
    if (norm_from_data(spec, chans, aug, src, buf, nbuf, verbose, err, errn) != 0) return -1;
    aug->norm_src = (src[0] == buf || src[1] == buf) ? buf : NULL;
    return 0;
}

void norm_print(FILE *out, const AugConfig *aug, int chans, const char *const src[2]) {
    if (!out) return;
    char m[96], s[96], ep[1300];
    size_t a = 0, b = 0;
    for (int i = 0; i < chans && i < 3; i++) {
        a += (size_t)snprintf(m + a, sizeof m - a, "%s%.4g", i ? " " : "", aug_mean(aug, chans, i));
        b += (size_t)snprintf(s + b, sizeof s - b, "%s%.4g", i ? " " : "", aug_std(aug, chans, i));
    }
    if (src[0] == src[1] || !strcmp(src[0], src[1]))
        fprintf(out, "normalisation: mean %s, std %s (%s)\n", m, s, src_escape(src[0], ep, sizeof ep));
    else {
        char e2[1300];
        fprintf(out, "normalisation: mean %s (%s), std %s (%s)\n", m, src_escape(src[0], ep, sizeof ep), s,
                src_escape(src[1], e2, sizeof e2));
    }
}
