/* HDF5 checkpoint writer / reader. See checkpoint.h for the layout and the
 * guarantees (atomic write, untrusted read). */
#include "train/checkpoint.h"
#include "data/h5crash.h"
#include "data/h5guard.h"
#include "layers/model.h"
#include "train/outfile.h"
#include "train/version.h"
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_RANK 32                         /* H5S_MAX_RANK */
#define MAX_READ_NUMEL MODEL_MAX_PARAMS    /* ckpt_visit refuses larger datasets (no model has one) */

static int test_fail_after = 0;
void ckpt_test_fail_after(int n) { test_fail_after = n; }

void ckpt_hdf5_quiet(void) {
    static int done = 0;
    if (!done) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); done = 1; }
}

/* ---------- error messages ---------- */

static int walk_cb(unsigned n, const H5E_error2_t *e, void *ud) {
    char *buf = ud;
    if (buf[0]) return 0; /* keep the innermost (most specific) entry */
    char minor[160] = "";
    H5Eget_msg(e->min_num, NULL, minor, sizeof minor);
    if (e->desc && e->desc[0])
        snprintf(buf, 400, "%s%s%s", e->desc, minor[0] ? " / " : "", minor);
    else
        snprintf(buf, 400, "%s", minor);
    return 0;
}

/* Every HDF5 API call clears the error stack on entry, so the reason of a
 * failure is grabbed right after the failing call, before any clean-up. */
static char grabbed[400];
static void grab(void) {
    grabbed[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, grabbed);
}

/* The innermost message of HDF5's error stack, or the last grabbed one (then clears both). */
static void h5_reason(char *buf, size_t n) {
    char tmp[400] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, tmp);
    H5Eclear2(H5E_DEFAULT);
    snprintf(buf, n, "%s", tmp[0] ? tmp : grabbed[0] ? grabbed : "unknown HDF5 error");
    grabbed[0] = 0;
}

static int fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t n, const char *fmt, ...) {
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    H5Eclear2(H5E_DEFAULT);
    return -1;
}

/* "... : <hdf5 reason>" */
static int fail_h5(char *err, size_t n, const char *path, const char *what) {
    char r[400];
    h5_reason(r, sizeof r);
    return fail(err, n, "checkpoint %s: %s: %s", path, what, r);
}

static void dims_str64(int ndim, const int64_t *d, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)d[i]);
    if (k < n) snprintf(buf + k, n - k, ")");
}

static void tensor_dims(const Tensor *t, int64_t *d) {
    for (int i = 0; i < t->ndim; i++) d[i] = t->shape[i];
}

/* ---------- writing ---------- */

typedef struct Writer {
    const char *path, *tmp;
    hid_t f;
    int ndatasets;
    char *err;
    size_t errn;
} Writer;

static hid_t ordered_gcpl(void) {
    hid_t p = H5Pcreate(H5P_GROUP_CREATE);
    if (p >= 0) H5Pset_link_creation_order(p, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    return p;
}

/* Open or create every component of "a/b/c" below the root. */
static hid_t make_groups(Writer *w, const char *prefix) {
    char part[256];
    hid_t cur = H5Gopen2(w->f, "/", H5P_DEFAULT);
    const char *s = prefix;
    while (cur >= 0 && *s) {
        const char *e = strchr(s, '/');
        size_t L = e ? (size_t)(e - s) : strlen(s);
        if (L == 0 || L >= sizeof part) {
            H5Gclose(cur);
            fail(w->err, w->errn, "checkpoint %s: bad group name '%s'", w->path, prefix);
            return -1;
        }
        memcpy(part, s, L);
        part[L] = 0;
        hid_t next;
        htri_t ex = H5Lexists(cur, part, H5P_DEFAULT);
        if (ex > 0) {
            next = H5Gopen2(cur, part, H5P_DEFAULT);
            if (next < 0) grab();
        } else {
            hid_t gcpl = ordered_gcpl();
            next = H5Gcreate2(cur, part, H5P_DEFAULT, gcpl, H5P_DEFAULT);
            if (next < 0) grab();
            H5Pclose(gcpl);
        }
        H5Gclose(cur);
        if (next < 0) {
            char what[300];
            snprintf(what, sizeof what, "cannot create group /%s", prefix);
            fail_h5(w->err, w->errn, w->path, what);
            return -1;
        }
        cur = next;
        s = e ? e + 1 : s + L;
    }
    return cur;
}

static int write_dataset(Writer *w, hid_t g, const char *group, const char *key, int ndim, const int *shape,
                         const float *data) {
    if (!key[0] || strchr(key, '/') || !strcmp(key, ".")) {
        return fail(w->err, w->errn, "checkpoint %s: parameter name '%s' cannot be an HDF5 key", w->path, key);
    }
    if (test_fail_after > 0 && w->ndatasets >= test_fail_after) {
        test_fail_after = 0;
        return fail(w->err, w->errn, "checkpoint %s: writing /%s/%s: simulated write failure (test hook)", w->path,
                    group, key);
    }
    hsize_t dims[MT_MAXDIM];
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) { dims[i] = (hsize_t)shape[i]; numel *= (size_t)shape[i]; }
    hid_t sp = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t d = sp >= 0 ? H5Dcreate2(g, key, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    herr_t st = d >= 0 ? 0 : -1;
    if (st < 0) grab();
    if (d >= 0 && numel && (st = H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data)) < 0) grab();
    if (d >= 0 && st >= 0 && H5Dclose(d) < 0) { grab(); st = -1; d = -1; }
    if (d >= 0 && st < 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    if (st < 0) {
        char what[600];
        snprintf(what, sizeof what, "writing /%s/%s", group, key);
        return fail_h5(w->err, w->errn, w->path, what);
    }
    w->ndatasets++;
    return 0;
}

static int attr_write(Writer *w, hid_t obj, const char *name, hid_t ftype, hid_t mtype, int count,
                      const void *val) {
    hsize_t n = (hsize_t)count;
    hid_t sp = count < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
    hid_t a = sp >= 0 ? H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
    herr_t st = a >= 0 ? H5Awrite(a, mtype, val) : -1;
    if (st < 0) grab();
    if (a >= 0 && H5Aclose(a) < 0 && st >= 0) { grab(); st = -1; }
    if (sp >= 0) H5Sclose(sp);
    if (st < 0) {
        char what[200];
        snprintf(what, sizeof what, "writing attribute '%s'", name);
        return fail_h5(w->err, w->errn, w->path, what);
    }
    return 0;
}

static int attr_str(Writer *w, hid_t obj, const char *name, const char *s) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    int rc = attr_write(w, obj, name, t, t, -1, &s);
    H5Tclose(t);
    return rc;
}
static int attr_i64(Writer *w, hid_t obj, const char *name, int64_t v) {
    return attr_write(w, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, -1, &v);
}

static int write_all(Writer *w, const ParamList *p, const CkptGroup *groups, int ngroups, const CkptInfo *in) {
    hid_t root = H5Gopen2(w->f, "/", H5P_DEFAULT);
    if (root < 0) return fail_h5(w->err, w->errn, w->path, "opening the root group");
    int rc = 0;
    const char *cfg = in->config;
    rc |= attr_str(w, root, "format", "mixtape");
    if (!rc) rc |= attr_i64(w, root, "format_version", MIXTAPE_FORMAT_VERSION);
    if (!rc) rc |= attr_str(w, root, "mixtape_version", MIXTAPE_VERSION);
    if (!rc) rc |= attr_str(w, root, "model", in->model);
    if (!rc) rc |= attr_str(w, root, "config", cfg);
    if (!rc) rc |= attr_i64(w, root, "epoch", in->epoch);
    if (!rc) rc |= attr_i64(w, root, "step", in->step);
    if (!rc) rc |= attr_write(w, root, "best_top1", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, -1, &in->best_top1);
    if (!rc && in->n_rng > 0)
        rc |= attr_write(w, root, "rng_state", H5T_STD_U64LE, H5T_NATIVE_UINT64,
                         in->n_rng > CKPT_RNG_MAX ? CKPT_RNG_MAX : in->n_rng, in->rng);
    if (!rc && in->n_chan > 0) {
        int nc = in->n_chan > CKPT_CHAN_MAX ? CKPT_CHAN_MAX : in->n_chan;
        rc |= attr_write(w, root, "data_mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, nc, in->mean);
        if (!rc) rc |= attr_write(w, root, "data_std", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, nc, in->std);
    }
    if (!rc && in->interpolation[0]) rc |= attr_str(w, root, "data_interpolation", in->interpolation);
    if (!rc && in->crop_pct > 0)
        rc |= attr_write(w, root, "data_crop_pct", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, -1, &in->crop_pct);
    if (!rc && in->permute[0]) {
        rc |= attr_str(w, root, "data_permute", in->permute);
        if (!rc) rc |= attr_i64(w, root, "data_permute_seed", in->permute_seed);
        if (!rc) rc |= attr_i64(w, root, "data_permute_patch", in->permute_patch);
    }
    if (!rc) rc |= attr_str(w, root, "train_state", in->train_state[0] ? in->train_state : "{}");
    if (!rc && in->class_names) rc |= attr_str(w, root, "class_names", in->class_names);
    H5Gclose(root);
    if (rc) return -1;

    hid_t g = make_groups(w, "model");
    if (g < 0) return -1;
    for (int i = 0; i < p->n && !rc; i++)
        rc = write_dataset(w, g, "model", p->t[i]->name, p->t[i]->ndim, p->t[i]->shape, p->t[i]->data);
    H5Gclose(g);
    if (rc) return -1;

    int opt_done = 0;
    for (int k = 0; k < ngroups && !rc; k++) {
        const char *pre = groups[k].prefix;
        if (!pre || !pre[0] || !strcmp(pre, "model") || !strncmp(pre, "model/", 6) || pre[0] == '/')
            return fail(w->err, w->errn, "checkpoint %s: bad group prefix '%s'", w->path, pre ? pre : "(null)");
        g = make_groups(w, pre);
        if (g < 0) return -1;
        for (int i = 0; i < p->n && !rc; i++)
            if (groups[k].buf && groups[k].buf[i])
                rc = write_dataset(w, g, pre, p->t[i]->name, p->t[i]->ndim, p->t[i]->shape, groups[k].buf[i]);
        H5Gclose(g);
        if (!rc && !opt_done && !strncmp(pre, "optimizer/", 10)) {
            opt_done = 1;
            hid_t og = H5Gopen2(w->f, "optimizer", H5P_DEFAULT);
            if (og < 0) return fail_h5(w->err, w->errn, w->path, "opening /optimizer");
            rc = attr_str(w, og, "name", in->optimizer);
            if (!rc) rc = attr_i64(w, og, "step", in->optimizer_step);
            H5Gclose(og);
        }
    }
    return rc ? -1 : 0;
}

/* Bytes the file will take, roughly: the first allocation of the in-memory image. */
static size_t expected_bytes(const ParamList *p, const CkptGroup *groups, int ngroups) {
    size_t n = (size_t)1 << 16;
    for (int i = 0; i < p->n; i++) {
        size_t one = p->t[i]->numel * sizeof(float) + 1024;
        n += one;
        for (int k = 0; k < ngroups; k++)
            if (groups[k].buf && groups[k].buf[i]) n += one;
    }
    return n;
}

/* The file is assembled in memory and written by out_h5_commit (temp name,
 * fsync, rename): HDF5 does no disk I/O, so a full disk is a plain write error. */
int ckpt_save(const char *path, const ParamList *p, const CkptGroup *groups, int ngroups, const CkptInfo *info,
              char *err, size_t errn) {
    ckpt_hdf5_quiet();
    if (!path || !path[0]) return fail(err, errn, "checkpoint: empty output path");
    if (!info) return fail(err, errn, "checkpoint %s: no info given", path);
    char tmp[4200];
    if (out_tmp_name(tmp, sizeof tmp, path) < 0) return fail(err, errn, "checkpoint %s: path too long", path);

    Writer w = {path, tmp, -1, 0, err, errn};
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    hid_t fapl = out_h5_fapl(expected_bytes(p, groups, ngroups));
    w.f = fapl < 0 ? -1 : H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    if (w.f < 0) grab();
    H5Pclose(fcpl);
    if (fapl >= 0) H5Pclose(fapl);
    if (w.f < 0) {
        fail_h5(err, errn, path, "cannot create the file in memory");
        out_h5_abort(-1);
        return -1;
    }
    if (write_all(&w, p, groups, ngroups, info) != 0) {
        out_h5_abort(w.f);
        return -1;
    }
    char e2[1500];
    if (out_h5_commit(w.f, path, e2, sizeof e2) != 0) return fail(err, errn, "checkpoint %s", e2);
    return 0;
}

/* ---------- reading ---------- */

/* "checkpoint <path>": who the shared HDF5 guard's messages name. */
typedef struct Who { char s[1100]; } Who;
static Who who_of(const char *path) {
    Who w;
    snprintf(w.s, sizeof w.s, "checkpoint %s", path);
    return w;
}

static hid_t open_ro(const char *path, char *err, size_t errn) {
    ckpt_hdf5_quiet();
    struct stat st;
    if (!path || !path[0]) { fail(err, errn, "checkpoint: empty path"); return -1; }
    if (stat(path, &st) < 0) { fail(err, errn, "checkpoint %s: %s", path, strerror(errno)); return -1; }
    if (S_ISDIR(st.st_mode)) { fail(err, errn, "checkpoint %s: is a directory", path); return -1; }
    return h5g_open_file(path, who_of(path).s, err, errn);
}

/* /<group>/<key> (or /<group>) opened through the guard: hard links only, no external storage. */
static hid_t open_obj(const char *path, hid_t loc, const char *group, const char *key, H5I_type_t want, char *err,
                      size_t errn) {
    char k[800];
    snprintf(k, sizeof k, "/%s%s%s", group, key ? "/" : "", key ? key : "");
    return h5g_open(loc, key ? key : group, want, who_of(path).s, k, err, errn);
}

/* Opens attribute `name` of obj; 0 when absent (*a = -1), -1 on error. */
static int attr_open(hid_t obj, const char *name, hid_t *a) {
    *a = -1;
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0) return -1;
    if (ex == 0) return 0;
    *a = H5Aopen(obj, name, H5P_DEFAULT);
    return *a < 0 ? -1 : 1;
}

/* String attribute into buf (n bytes incl. NUL). 1 read, 0 absent, -1 error. */
static int read_attr_str(const char *path, hid_t obj, const char *oname, const char *name, char *buf, size_t n,
                         char *err, size_t errn) {
    hid_t a;
    int ex = attr_open(obj, name, &a);
    if (ex < 0) return fail_h5(err, errn, path, "reading attributes");
    if (ex == 0) return 0;
    int rc = -1;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a), mt = -1;
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (t < 0 || sp < 0) {
        fail_h5(err, errn, path, "reading attributes");
    } else if (H5Tget_class(t) != H5T_STRING || np != 1) {
        fail(err, errn, "checkpoint %s: attribute %s%s is not a single string", path, oname, name);
    } else if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        char key[300];
        snprintf(key, sizeof key, "attribute '%s%s'", oname, name);
        h5crash_watch_begin(path, key); /* libhdf5 can loop forever on a damaged global heap */
        herr_t r = H5Aread(a, mt, &s);
        h5crash_watch_end();
        if (r < 0) {
            fail_h5(err, errn, path, "reading a string attribute");
        } else {
            size_t L = s ? strlen(s) : 0;
            if (L >= n)
                fail(err, errn, "checkpoint %s: attribute %s%s is too long (%zu bytes, at most %zu)", path, oname,
                     name, L, n - 1);
            else {
                memcpy(buf, s ? s : "", L + 1);
                rc = 1;
            }
            if (s) H5free_memory(s);
        }
    } else {
        size_t sz = H5Tget_size(t);
        if (sz >= n) {
            fail(err, errn, "checkpoint %s: attribute %s%s is too long (%zu bytes, at most %zu)", path, oname, name,
                 sz, n - 1);
        } else {
            mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, sz + 1);
            H5Tset_strpad(mt, H5T_STR_NULLTERM);
            H5Tset_cset(mt, H5Tget_cset(t));
            memset(buf, 0, sz + 1);
            if (H5Aread(a, mt, buf) < 0) fail_h5(err, errn, path, "reading a string attribute");
            else { buf[sz] = 0; rc = 1; }
        }
    }
    if (mt >= 0) H5Tclose(mt);
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

/* Numeric attribute of 1..maxn values (integer class when want_int), converted to
 * mtype. Scalar when maxn == 1. Returns the count read, 0 absent, -1 error. */
static int read_attr_num(const char *path, hid_t obj, const char *name, hid_t mtype, int want_int, void *out,
                         int maxn, char *err, size_t errn) {
    hid_t a;
    int ex = attr_open(obj, name, &a);
    if (ex < 0) return fail_h5(err, errn, path, "reading attributes");
    if (ex == 0) return 0;
    int rc = -1;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    H5T_class_t cl = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (t < 0 || sp < 0) fail_h5(err, errn, path, "reading attributes");
    else if (!(cl == H5T_INTEGER || (!want_int && cl == H5T_FLOAT)))
        fail(err, errn, "checkpoint %s: attribute '%s' should be %s", path, name, want_int ? "an integer" : "a number");
    else if (np < 1 || np > maxn)
        fail(err, errn, "checkpoint %s: attribute '%s' has %lld values, expected %s%d", path, name, (long long)np,
             maxn == 1 ? "" : "1 to ", maxn);
    else if (H5Aread(a, mtype, out) < 0) fail_h5(err, errn, path, "reading a numeric attribute");
    else rc = (int)np;
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

static int read_info(const char *path, hid_t f, CkptInfo *in, char *err, size_t errn) {
    memset(in, 0, sizeof *in);
    hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
    if (root < 0) return fail_h5(err, errn, path, "opening the root group");
    int rc = -1;
    char fmt[32];
    int64_t v = 0;
    int r = read_attr_str(path, root, "", "format", fmt, sizeof fmt, err, errn);
    if (r < 0) goto out;
    if (r == 0 || strcmp(fmt, "mixtape")) {
        fail(err, errn, "checkpoint %s: not a mixtape checkpoint (root attribute format=\"mixtape\" missing)", path);
        goto out;
    }
    r = read_attr_num(path, root, "format_version", H5T_NATIVE_INT64, 1, &v, 1, err, errn);
    if (r < 0) goto out;
    if (r == 0) { fail(err, errn, "checkpoint %s: attribute 'format_version' is missing", path); goto out; }
    if (v < 1 || v > MIXTAPE_FORMAT_VERSION) {
        fail(err, errn, "checkpoint %s: format_version %lld is not supported (this mixtape reads 1..%d)", path,
             (long long)v, MIXTAPE_FORMAT_VERSION);
        goto out;
    }
    in->format_version = (int)v;
    static const char *req_str[] = {"model", "config"};
    char *req_buf[] = {in->model, in->config};
    size_t req_n[] = {sizeof in->model, sizeof in->config};
    for (int i = 0; i < 2; i++) {
        r = read_attr_str(path, root, "", req_str[i], req_buf[i], req_n[i], err, errn);
        if (r < 0) goto out;
        if (r == 0) { fail(err, errn, "checkpoint %s: attribute '%s' is missing", path, req_str[i]); goto out; }
    }
    static const char *req_int[] = {"epoch", "step"};
    int64_t *req_dst[] = {&in->epoch, &in->step};
    for (int i = 0; i < 2; i++) {
        r = read_attr_num(path, root, req_int[i], H5T_NATIVE_INT64, 1, req_dst[i], 1, err, errn);
        if (r < 0) goto out;
        if (r == 0) { fail(err, errn, "checkpoint %s: attribute '%s' is missing", path, req_int[i]); goto out; }
    }
    if (read_attr_num(path, root, "best_top1", H5T_NATIVE_DOUBLE, 0, &in->best_top1, 1, err, errn) < 0) goto out;
    r = read_attr_num(path, root, "rng_state", H5T_NATIVE_UINT64, 1, in->rng, CKPT_RNG_MAX, err, errn);
    if (r < 0) goto out;
    in->n_rng = r;
    int nm = read_attr_num(path, root, "data_mean", H5T_NATIVE_FLOAT, 0, in->mean, CKPT_CHAN_MAX, err, errn);
    if (nm < 0) goto out;
    int ns = read_attr_num(path, root, "data_std", H5T_NATIVE_FLOAT, 0, in->std, CKPT_CHAN_MAX, err, errn);
    if (ns < 0) goto out;
    if (nm != ns) {
        fail(err, errn, "checkpoint %s: data_mean has %d values but data_std %d", path, nm, ns);
        goto out;
    }
    in->n_chan = nm;
    /* eval transform of the data the weights were trained on (optional; the caller checks the values) */
    if (read_attr_str(path, root, "", "data_interpolation", in->interpolation, sizeof in->interpolation, err, errn) < 0)
        goto out;
    if (read_attr_num(path, root, "data_crop_pct", H5T_NATIVE_FLOAT, 0, &in->crop_pct, 1, err, errn) < 0) goto out;
    /* input permutation (values checked by the caller, as flags are) */
    if (read_attr_str(path, root, "", "data_permute", in->permute, sizeof in->permute, err, errn) < 0) goto out;
    if (read_attr_num(path, root, "data_permute_seed", H5T_NATIVE_INT64, 1, &in->permute_seed, 1, err, errn) < 0) goto out;
    if (read_attr_num(path, root, "data_permute_patch", H5T_NATIVE_INT64, 1, &in->permute_patch, 1, err, errn) < 0)
        goto out;
    if (read_attr_str(path, root, "", "train_state", in->train_state, sizeof in->train_state, err, errn) < 0) goto out;
    int ex = h5g_exists(f, "optimizer", who_of(path).s, "/optimizer", err, errn);
    if (ex > 0) {
        hid_t og = open_obj(path, f, "optimizer", NULL, H5I_BADID, err, errn);
        if (og < 0) goto out;
        int r1 = read_attr_str(path, og, "/optimizer:", "name", in->optimizer, sizeof in->optimizer, err, errn);
        int r2 = r1 < 0 ? -1 : read_attr_num(path, og, "step", H5T_NATIVE_INT64, 1, &in->optimizer_step, 1, err, errn);
        H5Oclose(og);
        if (r1 < 0 || r2 < 0) goto out;
    } else if (ex < 0) {
        goto out;
    }
    rc = 0;
out:
    H5Gclose(root);
    return rc;
}

int ckpt_read_info(const char *path, CkptInfo *info, char *err, size_t errn) {
    hid_t f = open_ro(path, err, errn);
    if (f < 0) return -1;
    int rc = read_info(path, f, info, err, errn);
    H5Fclose(f);
    return rc;
}

/* Does the group path exist (every component a hard link)? 1 yes, 0 no, -1 error (err set). */
static int group_exists(const char *path, hid_t f, const char *g, char *err, size_t errn) {
    char k[600];
    snprintf(k, sizeof k, "/%s", g);
    int ex = h5g_exists(f, g, who_of(path).s, k, err, errn);
    if (ex <= 0) return ex;
    hid_t o = open_obj(path, f, g, NULL, H5I_BADID, err, errn);
    if (o < 0) return -1;
    int is = H5Iget_type(o) == H5I_GROUP;
    H5Oclose(o);
    if (!is) return fail(err, errn, "checkpoint %s: /%s is not a group", path, g);
    return 1;
}

enum { RD_OK = 0, RD_MISSING = 1, RD_SHAPE = 2, RD_ERR = -1 };

static int check_storage(const char *path, hid_t ds, const char *group, const char *key, char *err, size_t errn) {
    char k[800];
    snprintf(k, sizeof k, "/%s/%s", group, key);
    return h5g_check_storage(ds, who_of(path).s, k, err, errn);
}

/* Read /<group>/<key> into t-shaped dst. On RD_SHAPE/RD_MISSING the message is
 * in err too; fdims/fnd return the file's shape. */
static int read_param(const char *path, hid_t g, const char *group, const Tensor *t, float *dst, int64_t *fdims,
                      int *fnd, char *err, size_t errn) {
    char ws[128];
    int64_t wd[MT_MAXDIM];
    tensor_dims(t, wd);
    dims_str64(t->ndim, wd, ws, sizeof ws);
    *fnd = 0;
    char key[600];
    snprintf(key, sizeof key, "/%s/%s", group, t->name);
    int ex = strchr(t->name, '/') ? 0 : h5g_exists(g, t->name, who_of(path).s, key, err, errn);
    if (ex < 0) return RD_ERR;
    if (ex == 0) {
        fail(err, errn, "checkpoint %s: /%s/%s is missing (the model has it with shape %s)", path, group, t->name, ws);
        return RD_MISSING;
    }
    hid_t o = open_obj(path, g, group, t->name, H5I_DATASET, err, errn);
    if (o < 0) return RD_ERR;
    int rc = RD_ERR;
    hid_t ty = H5Dget_type(o), sp = H5Dget_space(o);
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t hd[MAX_RANK];
    if (ty < 0 || sp < 0 || nd < 0 || nd > MAX_RANK || H5Sget_simple_extent_dims(sp, hd, NULL) < 0) {
        fail_h5(err, errn, path, "reading a dataset's type or shape");
    } else if (H5Tget_class(ty) != H5T_FLOAT) {
        fail(err, errn, "checkpoint %s: /%s/%s is not a float dataset", path, group, t->name);
    } else {
        int same = nd == t->ndim;
        for (int i = 0; i < nd; i++) {
            if (i < MT_MAXDIM) fdims[i] = (int64_t)hd[i];
            if (same && (int64_t)hd[i] != wd[i]) same = 0;
        }
        *fnd = nd;
        if (!same) {
            char fs[400];
            int64_t all[MAX_RANK];
            for (int i = 0; i < nd; i++) all[i] = (int64_t)hd[i];
            dims_str64(nd, all, fs, sizeof fs);
            fail(err, errn, "checkpoint %s: /%s/%s has shape %s but the model wants %s", path, group, t->name, fs, ws);
            rc = RD_SHAPE;
        } else if (t->numel && check_storage(path, o, group, t->name, err, errn) < 0) {
            /* err set: the file does not hold the data its shape declares */
        } else if (t->numel && H5Dread(o, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) {
            char what[400];
            snprintf(what, sizeof what, "reading /%s/%s", group, t->name);
            fail_h5(err, errn, path, what);
        } else {
            rc = RD_OK;
        }
    }
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    H5Oclose(o);
    return rc;
}

/* Names of the links in a group (any order), malloc'd. */
typedef struct NameList { char **v; int n, cap; int fail; } NameList;
static int push_name(NameList *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) { l->fail = 1; return -1; }
        l->v = v;
        l->cap = cap;
    }
    char *c = strdup(s);
    if (!c) { l->fail = 1; return -1; }
    l->v[l->n++] = c;
    return 0;
}
static herr_t names_cb(hid_t g, const char *name, const H5L_info_t *info, void *ud) {
    return push_name(ud, name) < 0 ? -1 : 0;
}
void ckpt_names_free(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}
static int list_links(hid_t g, NameList *l) {
    memset(l, 0, sizeof *l);
    hsize_t idx = 0;
    if (H5Literate(g, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, names_cb, l) < 0) {
        H5Eclear2(H5E_DEFAULT);
        if (l->fail) return -1;
        ckpt_names_free(l->v, l->n);
        memset(l, 0, sizeof *l);
        idx = 0;
        if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, names_cb, l) < 0) return -1;
    }
    return 0;
}

static int load_groups(const char *path, hid_t f, ParamList *p, CkptGroup *groups, int ngroups, char *err,
                       size_t errn) {
    int64_t fd[MT_MAXDIM];
    int fnd;
    for (int k = 0; k < ngroups; k++) {
        groups[k].found = 0;
        if (!groups[k].prefix) continue;
        int ex = group_exists(path, f, groups[k].prefix, err, errn);
        if (ex < 0) return -1;
        if (!ex) continue;
        groups[k].found = 1;
        hid_t g = open_obj(path, f, groups[k].prefix, NULL, H5I_GROUP, err, errn);
        if (g < 0) return -1;
        NameList names;
        if (list_links(g, &names) < 0) {
            H5Gclose(g);
            return fail_h5(err, errn, path, "listing a group");
        }
        for (int j = 0; j < names.n; j++)
            if (!mt_param_find(p, names.v[j])) {
                fail(err, errn, "checkpoint %s: /%s/%s is not a parameter of the model", path, groups[k].prefix,
                     names.v[j]);
                ckpt_names_free(names.v, names.n);
                H5Gclose(g);
                return -1;
            }
        ckpt_names_free(names.v, names.n);
        for (int i = 0; i < p->n; i++) {
            if (!groups[k].buf || !groups[k].buf[i]) continue;
            if (read_param(path, g, groups[k].prefix, p->t[i], groups[k].buf[i], fd, &fnd, err, errn) != RD_OK) {
                H5Gclose(g);
                return -1;
            }
        }
        H5Gclose(g);
    }
    return 0;
}

/* The attributes, then /model opened and its keys listed (both loaders start so). */
static int open_model_group(const char *path, hid_t f, CkptInfo *info, hid_t *g, NameList *names, char *err,
                            size_t errn) {
    if (read_info(path, f, info, err, errn) < 0) return -1;
    int ex = group_exists(path, f, "model", err, errn);
    if (ex <= 0) {
        if (ex == 0) fail(err, errn, "checkpoint %s: group /model is missing", path);
        return -1;
    }
    *g = open_obj(path, f, "model", NULL, H5I_GROUP, err, errn);
    if (*g < 0) return -1;
    if (list_links(*g, names) < 0) { fail_h5(err, errn, path, "listing /model"); return -1; }
    return 0;
}

int ckpt_load(const char *path, ParamList *p, CkptGroup *groups, int ngroups, CkptInfo *info, char *err,
              size_t errn) {
    hid_t f = open_ro(path, err, errn);
    if (f < 0) return -1;
    int rc = -1;
    hid_t g = -1;
    NameList names = {0};
    CkptInfo *tmp = info ? info : malloc(sizeof *tmp);
    if (!tmp) { fail(err, errn, "checkpoint %s: out of memory", path); goto out; }
    if (open_model_group(path, f, tmp, &g, &names, err, errn) < 0) goto out;
    for (int j = 0; j < names.n; j++)
        if (!mt_param_find(p, names.v[j])) {
            fail(err, errn, "checkpoint %s: /model/%s is not a parameter of the model (%s)", path, names.v[j],
                 tmp->model);
            goto out;
        }
    int64_t fd[MT_MAXDIM];
    int fnd;
    for (int i = 0; i < p->n; i++)
        if (read_param(path, g, "model", p->t[i], p->t[i]->data, fd, &fnd, err, errn) != RD_OK) goto out;
    if (load_groups(path, f, p, groups, ngroups, err, errn) < 0) goto out;
    rc = 0;
out:
    ckpt_names_free(names.v, names.n);
    if (g >= 0) H5Gclose(g);
    if (tmp != info) free(tmp);
    H5Fclose(f);
    return rc;
}

int ckpt_load_group(const char *path, ParamList *p, const char *prefix, int *found, char *err, size_t errn) {
    *found = 0;
    float **buf = calloc((size_t)(p->n ? p->n : 1), sizeof *buf);
    if (!buf) return fail(err, errn, "checkpoint %s: out of memory", path);
    for (int i = 0; i < p->n; i++) buf[i] = p->t[i]->data;
    CkptGroup g = {prefix, buf, 0};
    hid_t f = open_ro(path, err, errn);
    int rc = f < 0 ? -1 : load_groups(path, f, p, &g, 1, err, errn);
    if (f >= 0) H5Fclose(f);
    *found = g.found;
    free(buf);
    return rc;
}

static int push_str(char ***v, int *n, const char *s) {
    char **nv = realloc(*v, (size_t)(*n + 1) * sizeof **v);
    if (!nv) return -1;
    *v = nv;
    if (!(nv[*n] = strdup(s))) return -1;
    (*n)++;
    return 0;
}

void ckpt_match_free(CkptMatch *m) {
    ckpt_names_free(m->loaded, m->n_loaded);
    ckpt_names_free(m->skipped, m->n_skipped);
    ckpt_names_free(m->missing, m->n_missing);
    ckpt_names_free(m->unexpected, m->n_unexpected);
    memset(m, 0, sizeof *m);
}

int ckpt_load_matching(const char *path, ParamList *p, CkptMatch *m, char *err, size_t errn) {
    memset(m, 0, sizeof *m);
    hid_t f = open_ro(path, err, errn);
    if (f < 0) return -1;
    int rc = -1;
    hid_t g = -1;
    NameList names = {0};
    float *scratch = NULL;
    CkptInfo *info = malloc(sizeof *info);
    if (!info) { fail(err, errn, "checkpoint %s: out of memory", path); goto out; }
    if (open_model_group(path, f, info, &g, &names, err, errn) < 0) goto out;
    int oom = 0;
    for (int j = 0; j < names.n; j++)
        if (!mt_param_find(p, names.v[j])) oom |= push_str(&m->unexpected, &m->n_unexpected, names.v[j]);
    for (int i = 0; i < p->n && !oom; i++) {
        Tensor *t = p->t[i];
        int64_t fd[MT_MAXDIM];
        int fnd = 0;
        char e2[600];
        /* read into scratch so a failed read never leaves a half-written parameter */
        free(scratch);
        scratch = malloc((t->numel ? t->numel : 1) * sizeof(float));
        if (!scratch) { oom = 1; break; }
        int r = read_param(path, g, "model", t, scratch, fd, &fnd, e2, sizeof e2);
        if (r == RD_OK) {
            memcpy(t->data, scratch, t->numel * sizeof(float));
            oom |= push_str(&m->loaded, &m->n_loaded, t->name);
        } else if (r == RD_MISSING) {
            oom |= push_str(&m->missing, &m->n_missing, t->name);
        } else if (r == RD_SHAPE) {
            char fs[200], ws[200], line[800];
            int64_t wd[MT_MAXDIM];
            tensor_dims(t, wd);
            dims_str64(fnd < MT_MAXDIM ? fnd : MT_MAXDIM, fd, fs, sizeof fs);
            dims_str64(t->ndim, wd, ws, sizeof ws);
            snprintf(line, sizeof line, "%s: checkpoint %s%s vs model %s", t->name, fs, fnd > MT_MAXDIM ? "..." : "",
                     ws);
            oom |= push_str(&m->skipped, &m->n_skipped, line);
        } else {
            snprintf(err, errn, "%s", e2);
            goto out;
        }
    }
    if (oom) { fail(err, errn, "checkpoint %s: out of memory", path); goto out; }
    rc = 0;
out:
    if (rc) ckpt_match_free(m);
    free(scratch);
    free(info);
    ckpt_names_free(names.v, names.n);
    if (g >= 0) H5Gclose(g);
    H5Fclose(f);
    return rc;
}

int ckpt_visit(const char *path, const char *group, ckpt_visit_fn cb, void *ud, int *found, char *err,
               size_t errn) {
    if (found) *found = 0;
    hid_t f = open_ro(path, err, errn);
    if (f < 0) return -1;
    int rc = -1;
    hid_t g = -1;
    NameList names = {0};
    int ex = group_exists(path, f, group, err, errn);
    if (ex < 0) goto out;
    if (!ex) { rc = 0; goto out; }
    if (found) *found = 1;
    g = open_obj(path, f, group, NULL, H5I_GROUP, err, errn);
    if (g < 0) goto out;
    if (list_links(g, &names) < 0) { fail_h5(err, errn, path, "listing a group"); goto out; }
    for (int j = 0; j < names.n; j++) {
        const char *key = names.v[j];
        hid_t o = open_obj(path, g, group, key, H5I_BADID, err, errn);
        if (o < 0) goto out;
        if (H5Iget_type(o) != H5I_DATASET) { H5Oclose(o); continue; } /* sub-groups: not ours */
        hid_t ty = H5Dget_type(o), sp = H5Dget_space(o);
        int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
        hsize_t hd[MAX_RANK];
        int64_t d64[MAX_RANK];
        int bad = 0, stop = 0;
        float *buf = NULL;
        size_t numel = 1;
        if (ty < 0 || sp < 0 || nd < 0 || nd > MAX_RANK || H5Sget_simple_extent_dims(sp, hd, NULL) < 0) {
            bad = fail_h5(err, errn, path, "reading a dataset's type or shape");
        } else if (H5Tget_class(ty) != H5T_FLOAT) {
            bad = fail(err, errn, "checkpoint %s: /%s/%s is not a float dataset", path, group, key);
        } else {
            for (int i = 0; i < nd; i++) {
                d64[i] = (int64_t)hd[i];
                if (hd[i] && numel > MAX_READ_NUMEL / hd[i]) numel = MAX_READ_NUMEL + 1;
                else numel *= hd[i];
            }
            if (numel > MAX_READ_NUMEL)
                bad = fail(err, errn, "checkpoint %s: /%s/%s is too large (more than %zu values)", path, group, key,
                           (size_t)MAX_READ_NUMEL);
            else if (numel && check_storage(path, o, group, key, err, errn) < 0)
                bad = -1;
            else if (!(buf = malloc((numel ? numel : 1) * sizeof(float))))
                bad = fail(err, errn, "checkpoint %s: out of memory reading /%s/%s", path, group, key);
            else if (numel && H5Dread(o, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
                char what[400];
                snprintf(what, sizeof what, "reading /%s/%s", group, key);
                bad = fail_h5(err, errn, path, what);
            } else {
                stop = cb(key, nd, d64, buf, numel, ud);
            }
        }
        free(buf);
        if (ty >= 0) H5Tclose(ty);
        if (sp >= 0) H5Sclose(sp);
        H5Oclose(o);
        if (bad) goto out;
        if (stop) break;
    }
    rc = 0;
out:
    ckpt_names_free(names.v, names.n);
    if (g >= 0) H5Gclose(g);
    H5Fclose(f);
    return rc;
}

int ckpt_list_groups(const char *path, const char *group, char ***out, int *n, char *err, size_t errn) {
    *out = NULL;
    *n = 0;
    hid_t f = open_ro(path, err, errn);
    if (f < 0) return -1;
    int rc = -1;
    hid_t g = -1;
    NameList names = {0}, res = {0};
    int ex = group_exists(path, f, group, err, errn);
    if (ex < 0) goto out;
    if (!ex) { rc = 0; goto out; }
    g = open_obj(path, f, group, NULL, H5I_GROUP, err, errn);
    if (g < 0) goto out;
    if (list_links(g, &names) < 0) { fail_h5(err, errn, path, "listing a group"); goto out; }
    for (int j = 0; j < names.n; j++) {
        hid_t o = open_obj(path, g, group, names.v[j], H5I_BADID, err, errn);
        if (o < 0) goto out;
        int isg = H5Iget_type(o) == H5I_GROUP;
        H5Oclose(o);
        if (isg && push_name(&res, names.v[j]) < 0) { fail(err, errn, "checkpoint %s: out of memory", path); goto out; }
    }
    *out = res.v;
    *n = res.n;
    res.v = NULL;
    res.n = 0;
    rc = 0;
out:
    ckpt_names_free(res.v, res.n);
    ckpt_names_free(names.v, names.n);
    if (g >= 0) H5Gclose(g);
    H5Fclose(f);
    return rc;
}
