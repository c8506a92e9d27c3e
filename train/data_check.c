#include "train/data_check.h"
#include "data/h5data.h"
#include "data/source.h"
#include "data/source_util.h"
#include <dirent.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Largest label of an open HDF5 dataset file, read in chunks (labels validated by h5data). */
static int h5_max_label(H5Data *d, int *mx, char *err, size_t errn) {
    *mx = -1;
    if (!d->has_labels) return 0;
    enum { CH = 1 << 16 };
    int64_t *buf = malloc(CH * sizeof *buf);
    if (!buf) return src_seterr(err, errn, "%s: out of memory", d->path);
    hid_t fs = H5Dget_space(d->labels);
    int rc = fs < 0 ? -1 : 0;
    for (long s = 0; s < d->n && !rc; s += CH) {
        hsize_t off = (hsize_t)s, cnt = (hsize_t)(d->n - s < CH ? d->n - s : CH);
        hid_t ms = H5Screate_simple(1, &cnt, NULL);
        if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &cnt, NULL) < 0 ||
            H5Dread(d->labels, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, buf) < 0)
            rc = -1;
        H5Sclose(ms);
        for (hsize_t i = 0; i < cnt && !rc; i++) {
            if (buf[i] < -1 || buf[i] > INT32_MAX) {
                rc = src_seterr(err, errn, "%s: labels[%ld] = %lld is not a class index", d->path, s + (long)i,
                          (long long)buf[i]);
                break;
            }
            if (buf[i] > *mx) *mx = (int)buf[i];
        }
    }
    if (fs >= 0) H5Sclose(fs);
    H5Eclear2(H5E_DEFAULT);
    free(buf);
    if (rc && !err[0]) src_seterr(err, errn, "%s: cannot read 'labels'", d->path);
    return rc;
}

static int facts_h5(const char *spec, DataFacts *f, char *err, size_t errn) {
    H5Data d;
    memset(&d, 0, sizeof d);
    d.file = d.images = d.labels = -1;
    if (h5data_open(&d, spec, err, errn) != 0) return -1;
    f->c = d.c;
    f->h = d.h;
    f->w = d.w;
    snprintf(f->sample, sizeof f->sample, "%s (images %ldx%dx%dx%d)", spec, d.n, d.c, d.h, d.w);
    int mx;
    err[0] = 0;
    int rc = h5_max_label(&d, &mx, err, errn);
    h5data_close(&d);
    if (rc) return -1;
    if (mx >= 0) {
        f->classes = mx + 1;
        snprintf(f->classes_from, sizeof f->classes_from, "largest label + 1");
    }
    return 0;
}

/* Channels and size from an image header; 0 ok, -1 when it is not a readable image (the loader
 * skips and counts such samples; the probe tries the next one). where: printable. */
static int probe_bytes(DataFacts *f, const uint8_t *b, size_t n, const char *where) {
    char e2[256];
    if (image_probe(b, n, &f->w, &f->h, &f->c, e2, sizeof e2) != 0) {
        f->c = f->h = f->w = 0;
        return -1;
    }
    snprintf(f->sample, sizeof f->sample, "%s", where);
    return 0;
}

enum { PROBE_TRIES = 64 };   /* samples tried for channels / size before giving up (unknown) */

static int facts_shards(const char *spec, int rank, int world, DataFacts *f, char *err, size_t errn) {
    char **paths = NULL;
    int n = 0;
    /* as the loader: only this rank's shards (positions i % world == rank) need to exist here */
    if (shard_list_expand_rank(spec, rank, world, &paths, &n, err, errn) != 0) return -1;
    const int first = rank >= 0 && rank < n ? rank : 0;
    int rc = -1;
    char *dir = NULL, *cpath = NULL, **names = NULL;
    int nn = 0;
    RawSample s;
    memset(&s, 0, sizeof s);
    TarStream *t = NULL;
    if (n < 1) { src_seterr(err, errn, "%s: no shards", spec); goto out; }
    if (!(dir = src_dirname(paths[first])) || !(cpath = src_join(dir, "classes.txt"))) {
        src_seterr(err, errn, "out of memory");
        goto out;
    }
    if (classes_read(cpath, &names, &nn, err, errn) != 0) goto out;
    if (nn > 0) {
        f->classes = nn;
        f->classes_exact = 1;
        snprintf(f->classes_from, sizeof f->classes_from, "classes.txt");
    }
    /* The first good sample of the first shard gives channels and size (bounded: 64 tries). */
    if (!(t = tar_stream_open(paths[first], err, errn))) goto out;
    for (int k = 0; k < PROBE_TRIES; k++) {
        int r = tar_stream_next(t, &s);
        if (r <= 0) break;
        if (s.bad) continue;
        char where[600], e1[300], e2[300], e3[32];
        snprintf(where, sizeof where, "%s member %s.%s", src_escape(paths[first], e1, sizeof e1),
                 src_escape(s.key, e2, sizeof e2), src_escape(s.ext, e3, sizeof e3));
        if (probe_bytes(f, s.bytes, s.nbytes, where) == 0) break;
    }
    rc = 0;
out:
    if (t) tar_stream_close(t);
    raw_sample_free(&s);
    classes_free(names, nn);
    free(dir);
    free(cpath);
    shard_list_free(paths, n);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names of sub-directories (dirs = 1) or image files (dirs = 0) of dir, malloc'd. */
static int list_names(const char *dir, int dirs, char ***out, int *n, char *err, size_t errn) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return src_seterr(err, errn, "cannot open directory %s", dir);
    struct dirent *e;
    int cap = 0, rc = 0;
    while ((e = readdir(d)) && !rc) {
        if (e->d_name[0] == '.') continue;
        if (dirs) {
            char *p = src_join(dir, e->d_name);
            int k = p ? src_path_kind(p) : -1;
            free(p);
            if (k != 2) continue;
        } else if (!src_is_image_name(e->d_name)) {
            continue;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **v = realloc(*out, (size_t)cap * sizeof *v);
            if (!v) { rc = -1; break; }
            *out = v;
        }
        if (!((*out)[*n] = strdup(e->d_name))) { rc = -1; break; }
        (*n)++;
    }
    closedir(d);
    if (rc) return src_seterr(err, errn, "out of memory listing %s", dir);
    if (*n > 1) qsort(*out, (size_t)*n, sizeof **out, cmp_str);
    return 0;
}

static int facts_folder(const char *spec, DataFacts *f, char *err, size_t errn) {
    char **cls = NULL;
    int nc = 0;
    if (list_names(spec, 1, &cls, &nc, err, errn) != 0) return -1;
    f->classes = nc;
    f->classes_exact = 1;
    snprintf(f->classes_from, sizeof f->classes_from, "class directories");
    int rc = 0, tries = 0;
    /* The first readable image (torchvision's order) gives channels and size; unreadable ones
     * (special files, undecodable) are the loader's to skip and report. */
    for (int i = 0; i < nc && !f->c && !rc && tries < PROBE_TRIES; i++) {
        char *cd = src_join(spec, cls[i]), **files = NULL;
        int nf = 0;
        char e2[300];
        if (!cd) { rc = src_seterr(err, errn, "out of memory"); break; }
        if (list_names(cd, 0, &files, &nf, e2, sizeof e2) != 0) nf = 0;
        for (int j = 0; j < nf && !f->c && !rc && tries < PROBE_TRIES; j++, tries++) {
            char *p = src_join(cd, files[j]), where[600];
            uint8_t *b = NULL;
            size_t nb = 0;
            if (!p) { rc = src_seterr(err, errn, "out of memory"); break; }
            if (src_path_kind(p) == 1 && src_read_file(p, RAW_SAMPLE_MAX_MEMBER, &b, &nb, e2, sizeof e2) == 0)
                probe_bytes(f, b, nb, src_escape(p, where, sizeof where));
            free(b);
            free(p);
        }
        for (int k = 0; k < nf; k++) free(files[k]);
        free(files);
        free(cd);
    }
    for (int i = 0; i < nc; i++) free(cls[i]);
    free(cls);
    return rc;
}

int data_facts(const char *spec, const char *kind, int rank, int world, DataFacts *f, char *err, size_t errn) {
    memset(f, 0, sizeof *f);
    f->classes = -1;
    snprintf(f->kind, sizeof f->kind, "%s", kind);
    if (!strcmp(kind, "hdf5")) return facts_h5(spec, f, err, errn);
    if (!strcmp(kind, "imagefolder")) return facts_folder(spec, f, err, errn);
    return facts_shards(spec, rank, world < 1 ? 1 : world, f, err, errn);
}

static const char *chans_name(int c) { return c == 1 ? "grey" : c == 3 ? "RGB" : "multi-channel"; }

int data_check_model(const DataFacts *f, const char *what, const char *model, const ModelConfig *cfg, int convert,
                     FILE *out, char *err, size_t errn) {
    const int S = cfg->img_size, C = cfg->in_chans, K = cfg->num_classes;
    char cls[128] = "classes unknown (no classes.txt)";
    if (f->classes >= 0) snprintf(cls, sizeof cls, "%d classes (%s)", f->classes, f->classes_from);
    if (out) {
        if (f->c)
            fprintf(out, "data %s (%s): %s; %s %dx%d %s\n", what, f->kind, cls,
                    strcmp(f->kind, "hdf5") ? "first sample" : "images", f->w, f->h, chans_name(f->c));
        else fprintf(out, "data %s (%s): %s\n", what, f->kind, cls);
    }
    /* classes: a class list must match the head; labels seen must fit in it */
    if (f->classes >= 0 && (f->classes_exact ? f->classes != K : f->classes > K))
        return src_seterr(err, errn, "%s (%s) has %d classes (%s) but %s has %d outputs (--num-classes %d)%s", what, f->kind,
                    f->classes, f->classes_from, model, K, K,
                    f->classes_exact ? "" : ": labels out of range");
    if (f->classes >= 0 && !f->classes_exact && f->classes < K && out)
        fprintf(out, "note: the largest label of %s is %d; %s has %d classes\n", what, f->classes - 1, model, K);
    if (!f->c) return 0;
    if (!strcmp(f->kind, "hdf5")) {
        /* pre-normalised arrays: nothing to convert */
        if (f->c != C || f->h != S || f->w != S)
            return src_seterr(err, errn, "%s (hdf5) holds %d-channel %dx%d images but %s wants %d-channel %dx%d "
                        "(--in-chans %d --img-size %d); HDF5 images are used as they are",
                        what, f->c, f->h, f->w, model, C, S, S, C, S);
        return 0;
    }
    int chan = f->c != C, small = f->h < S || f->w < S;
    if (!chan && !small) return 0;
    if (!convert) {
        char d[300] = "", m[200] = "";
        size_t k = 0;
        if (chan) k += (size_t)snprintf(d + k, sizeof d - k, "%d-channel (%s)", f->c, chans_name(f->c));
        if (small) k += (size_t)snprintf(d + k, sizeof d - k, "%s%dx%d", k ? " " : "", f->w, f->h);
        snprintf(m, sizeof m, "%s%s", chan ? "--in-chans" : "", small ? (chan ? " / --img-size" : "--img-size") : "");
        return src_seterr(err, errn, "%s (%s): its first sample (%s) is a %s image but %s wants %d-channel %dx%d "
                    "(--in-chans %d --img-size %d); match the model to the data with %s, or give --data-convert to %s%s",
                    what, f->kind, f->sample, d, model, C, S, S, C, S, m,
                    chan ? (f->c < C ? "replicate grey to RGB" : "convert to grey") : "",
                    small ? (chan ? " and upsample" : "upsample") : "");
    }
    if (out) {
        if (chan)
            fprintf(out, "--data-convert: %s images converted to %d channel%s (%s)\n", chans_name(f->c), C,
                    C == 1 ? "" : "s", f->c < C ? "grey replicated" : "luma, as PIL's convert('L')");
        if (small) fprintf(out, "--data-convert: %dx%d images resized up to %dx%d\n", f->w, f->h, S, S);
    }
    return 0;
}

int data_check_epoch_trained(double steps, const char *spec, long samples, long skipped, int batch_size, char *err,
                             size_t errn) {
    if (steps > 0) return 0;
    snprintf(err, errn,
             "--train %s: %ld samples, %ld of them skipped as unusable: fewer usable samples than one batch of %d, "
             "so the epoch trained nothing (fix or remove the bad samples, or lower -b)",
             spec, samples, skipped, batch_size);
    return -1;
}
