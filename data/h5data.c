#include "data/h5data.h"
#include "data/h5guard.h"
#include <errno.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_SIDE 65536
#define MAX_CHANS 4096

static int walk_cb(unsigned n, const H5E_error2_t *e, void *ud) {
    char *buf = ud;
    if (!buf[0]) snprintf(buf, 300, "%s", e->desc && e->desc[0] ? e->desc : "HDF5 error");
    return 0;
}

static int fail(H5Data *d, char *err, size_t n, int h5, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail(H5Data *d, char *err, size_t n, int h5, const char *fmt, ...) {
    char msg[600], r[300] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (h5) H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, r);
    H5Eclear2(H5E_DEFAULT);
    if (err && n) snprintf(err, n, "%s: %s%s%s", d->path, msg, r[0] ? ": " : "", r);
    return -1;
}

int h5data_probe(const char *path) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) return 0;
    htri_t r = H5Fis_hdf5(path);
    H5Eclear2(H5E_DEFAULT);
    return r > 0;
}

void h5data_close(H5Data *d) {
    if (d->labels >= 0) H5Dclose(d->labels);
    if (d->images >= 0) H5Dclose(d->images);
    if (d->file >= 0) H5Fclose(d->file);
    d->labels = d->images = d->file = -1;
}

int h5data_open(H5Data *d, const char *path, char *err, size_t errn) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    memset(d, 0, sizeof *d);
    d->file = d->images = d->labels = -1;
    snprintf(d->path, sizeof d->path, "%s", path ? path : "");
    if (!path) return fail(d, err, errn, 0, "no path");
    /* the guard's messages already name the file */
    d->file = h5g_open_file(path, path, err, errn);
    if (d->file < 0) return -1;

    int rc = -1;
    hid_t sp = -1, ty = -1;
    int ex = h5g_exists(d->file, "images", path, "'images'", err, errn);
    if (ex <= 0) {
        if (ex == 0) fail(d, err, errn, 0, "dataset 'images' is missing");
        goto out;
    }
    hid_t o = h5g_open(d->file, "images", H5I_DATASET, path, "'images'", err, errn);
    if (o < 0) goto out;
    d->images = o;
    sp = H5Dget_space(d->images);
    ty = H5Dget_type(d->images);
    hsize_t dims[4];
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (ty < 0 || nd < 0) { fail(d, err, errn, 1, "reading 'images' type/shape"); goto out; }
    if (nd != 4) { fail(d, err, errn, 0, "'images' must be (N,C,H,W), it has rank %d", nd); goto out; }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    if (H5Tget_class(ty) != H5T_FLOAT) { fail(d, err, errn, 0, "'images' must be float32"); goto out; }
    if (dims[0] < 1 || dims[0] > (hsize_t)1 << 40 || dims[1] < 1 || dims[1] > MAX_CHANS || dims[2] < 1 ||
        dims[2] > MAX_SIDE || dims[3] < 1 || dims[3] > MAX_SIDE) {
        fail(d, err, errn, 0, "'images' has an unusable shape (%llu,%llu,%llu,%llu)", (unsigned long long)dims[0],
             (unsigned long long)dims[1], (unsigned long long)dims[2], (unsigned long long)dims[3]);
        goto out;
    }
    if (h5g_check_storage(d->images, path, "'images'", err, errn) < 0) goto out;
    d->n = (long)dims[0];
    d->c = (int)dims[1];
    d->h = (int)dims[2];
    d->w = (int)dims[3];
    H5Sclose(sp);
    H5Tclose(ty);
    sp = ty = -1;

    ex = h5g_exists(d->file, "labels", path, "'labels'", err, errn);
    if (ex > 0) {
        o = h5g_open(d->file, "labels", H5I_DATASET, path, "'labels'", err, errn);
        if (o < 0) goto out;
        d->labels = o;
        sp = H5Dget_space(d->labels);
        ty = H5Dget_type(d->labels);
        nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
        if (ty < 0 || nd < 0) { fail(d, err, errn, 1, "reading 'labels' type/shape"); goto out; }
        if (nd != 1) { fail(d, err, errn, 0, "'labels' must be (N), it has rank %d", nd); goto out; }
        H5Sget_simple_extent_dims(sp, dims, NULL);
        if (H5Tget_class(ty) != H5T_INTEGER) { fail(d, err, errn, 0, "'labels' must be integers"); goto out; }
        if ((long)dims[0] != d->n) {
            fail(d, err, errn, 0, "'images' has %ld samples but 'labels' %llu", d->n, (unsigned long long)dims[0]);
            goto out;
        }
        if (h5g_check_storage(d->labels, path, "'labels'", err, errn) < 0) goto out;
        d->has_labels = 1;
    } else if (ex < 0) {
        goto out;
    }
    rc = 0;
out:
    if (sp >= 0) H5Sclose(sp);
    if (ty >= 0) H5Tclose(ty);
    if (rc) h5data_close(d);
    return rc;
}

static int read_rows(hid_t ds, hid_t mtype, int rank, long start, int count, const hsize_t *rest, void *dst) {
    hsize_t off[4] = {(hsize_t)start, 0, 0, 0}, cnt[4] = {(hsize_t)count, 0, 0, 0};
    for (int i = 1; i < rank; i++) cnt[i] = rest[i - 1];
    hid_t fs = H5Dget_space(ds);
    if (fs < 0) return -1;
    hid_t ms = H5Screate_simple(rank, cnt, NULL);
    herr_t st = ms < 0 ? -1 : H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL);
    if (st >= 0) st = H5Dread(ds, mtype, ms, fs, H5P_DEFAULT, dst);
    if (ms >= 0) H5Sclose(ms);
    H5Sclose(fs);
    return st < 0 ? -1 : 0;
}

int h5data_read(H5Data *d, long start, int count, Batch *b, char *err, size_t errn) {
    if (d->file < 0) return fail(d, err, errn, 0, "not open");
    if (start < 0 || count < 1 || start > d->n || count > d->n - start)
        return fail(d, err, errn, 0, "rows [%ld, %ld) outside the %ld samples", start, start + count, d->n);
    if (b->c != d->c || b->h != d->h || b->w != d->w || !b->images || !b->labels)
        return fail(d, err, errn, 0, "batch buffer (%d,%d,%d) does not fit images (%d,%d,%d)", b->c, b->h, b->w, d->c,
                    d->h, d->w);
    hsize_t rest[3] = {(hsize_t)d->c, (hsize_t)d->h, (hsize_t)d->w};
    if (read_rows(d->images, H5T_NATIVE_FLOAT, 4, start, count, rest, b->images) < 0)
        return fail(d, err, errn, 1, "reading images [%ld, %ld)", start, start + count);
    if (h5data_read_labels(d, start, count, b->labels, err, errn) < 0) return -1;
    b->n = count;
    return 0;
}

int h5data_read_labels(H5Data *d, long start, int count, int *out, char *err, size_t errn) {
    if (d->file < 0) return fail(d, err, errn, 0, "not open");
    if (start < 0 || count < 1 || start > d->n || count > d->n - start)
        return fail(d, err, errn, 0, "rows [%ld, %ld) outside the %ld samples", start, start + count, d->n);
    if (!d->has_labels) {
        for (int i = 0; i < count; i++) out[i] = -1;
        return 0;
    }
    int64_t *tmp = malloc((size_t)count * sizeof *tmp);
    if (!tmp) return fail(d, err, errn, 0, "out of memory");
    if (read_rows(d->labels, H5T_NATIVE_INT64, 1, start, count, NULL, tmp) < 0) {
        free(tmp);
        return fail(d, err, errn, 1, "reading labels [%ld, %ld)", start, start + count);
    }
    int64_t hi = d->num_classes > 0 ? d->num_classes : H5DATA_MAX_CLASSES;
    for (int i = 0; i < count; i++) {
        if (tmp[i] < -1 || tmp[i] >= hi) { /* -1: this sample has no label */
            long long v = (long long)tmp[i];
            free(tmp);
            return fail(d, err, errn, 0, "'labels'[%ld] = %lld is outside 0..%lld%s (-1: no label)", start + i, v,
                        (long long)hi - 1, d->num_classes > 0 ? ", the model's classes" : "");
        }
        out[i] = (int)tmp[i];
    }
    free(tmp);
    return 0;
}

int h5data_check_labels(H5Data *d, int num_classes, char *err, size_t errn) {
    d->num_classes = num_classes > 0 ? num_classes : 0;
    if (!d->has_labels) return 0;
    enum { CHUNK = 4096 };
    int *buf = malloc(CHUNK * sizeof *buf);
    if (!buf) return fail(d, err, errn, 0, "out of memory");
    int rc = 0;
    for (long i = 0; i < d->n && !rc; i += CHUNK)
        rc = h5data_read_labels(d, i, (int)(d->n - i < CHUNK ? d->n - i : CHUNK), buf, err, errn);
    free(buf);
    return rc;
}
