#include "train/model_io.h"
#include "train/outfile.h"
#include "core/threads.h"
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---------- model config / checkpoint ---------- */

int model_config_from_args(Args *a, ModelConfig *cfg, char *err, size_t errn) {
    args_group(a, "model (overrides default to the model's timm config)");
    const char *name = args_string(a, "--model", NULL, NULL, "registered model (see 'mixtape models')");
    if (a->failed) return fail(err, errn, "%s", a->err);
    memset(cfg, 0, sizeof *cfg);
    int have = 0;
    if (name) {
        char e2[2048];
        if (model_config_default(name, cfg, e2, sizeof e2) < 0) /* e2 lists the known models */
            return fail(err, errn, "mixtape %s: %s", a->cmd, e2);
        have = 1;
    } else if (!args_describing(a)) return fail(err, errn, "mixtape %s: --model is required (see 'mixtape models')", a->cmd);
    /* every override is declared (help, --list-flags, args.yaml), whether given or not */
    for (const ModelOverride *o = model_overrides(); o->key; o++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", o->key);
        ArgType t = o->type == 'i' ? ARG_INT : o->type == 'f' ? ARG_FLOAT : o->type == 'c' ? ARG_CHOICE
                  : o->type == 'm' ? ARG_STR : o->type == 'l' ? ARG_INTS : ARG_LIST;
        const char *v = args_value(a, flag, NULL, t, NULL, o->type == 'm' || o->type == 'c' ? 1 : o->lo,
                                   o->type == 'm' || o->type == 'c' ? 0 : o->hi, o->choices, o->help);
        if (o->scope != 'a') args_scope(a, flag, o->scope == 'h' ? "hierarchical" : "isotropic");
        if (a->failed) return fail(err, errn, "%s", a->err);
        char e2[512];
        if (v && have && model_config_set(cfg, o->key, v, e2, sizeof e2) < 0)
            return fail(err, errn, "mixtape %s: %s", a->cmd, e2);
    }
    return 0;
}

int model_from_checkpoint(const char *path, Model *m, CkptInfo *info, char *err, size_t errn) {
    memset(m, 0, sizeof *m);
    CkptInfo *in = info ? info : malloc(sizeof *in);
    if (!in) return fail(err, errn, "out of memory");
    int rc = -1;
    char e2[1024];
    ModelConfig cfg;
    if (ckpt_read_info(path, in, err, errn) < 0) goto out;
    if (model_config_from_json(in->config, &cfg, e2, sizeof e2) < 0) {
        fail(err, errn, "checkpoint %s: attribute 'config': %s", path, e2);
        goto out;
    }
    if (model_build(m, &cfg, e2, sizeof e2) < 0) {
        fail(err, errn, "checkpoint %s: model %s: %s", path, in->model, e2);
        memset(m, 0, sizeof *m);
        goto out;
    }
    if (ckpt_load(path, &m->params, NULL, 0, NULL, err, errn) < 0) {
        model_free(m);
        memset(m, 0, sizeof *m);
        goto out;
    }
    rc = 0;
out:
    if (in != info) free(in);
    return rc;
}

int io_args_parse(const char *cmd, int argc, char **argv, long def_bs, void (*usage)(FILE *), IoArgs *r) {
    Args a;
    args_init(&a, cmd, argc, argv);
    r->ckpt = args_string(&a, "--checkpoint", NULL, NULL, "checkpoint C.h5 (required)");
    r->data = args_string(&a, "--data", NULL, NULL,
                          "HDF5 file with images (N,C,H,W) float32, normalised, and labels (N) (required)");
    r->out = args_string(&a, "--out", NULL, NULL, "output .h5, written atomically (required)");
    r->bs = args_int_range(&a, "--batch-size", "-b", def_bs, 1, 1 << 20, "samples per forward pass");
    threads_from_args(&a);
    int e = args_end(&a, usage);
    args_free(&a);
    if (e) return e;
    if (!r->ckpt || !r->data || !r->out) {
        fprintf(stderr, "mixtape %s: --checkpoint, --data and --out are required (see --help)\n", cmd);
        return 2;
    }
    return 0;
}

/* More threads than this is never useful here and libgomp fails creating 100000. */
#define MAX_THREADS 1024

void threads_from_args(Args *a) {
    long t = args_int_range(a, "--threads", NULL, 0, 0, MAX_THREADS, "threads (0: OMP_NUM_THREADS or all cores)");
    if (!a->failed && !args_describing(a)) mt_set_threads((int)t);
}

/* ---------- data source ---------- */

static int h5_read(DataIn *d, long start, int count, Batch *b, char *err, size_t errn) {
    return h5data_read(&d->h5, start, count, b, err, errn);
}
static void h5_close(DataIn *d) { h5data_close(&d->h5); }

int datain_open(DataIn *d, const char *spec, char *err, size_t errn) {
    memset(d, 0, sizeof *d);
    d->h5.file = d->h5.images = d->h5.labels = -1;
    if (!spec || !spec[0]) return fail(err, errn, "--data is required");
    snprintf(d->desc, sizeof d->desc, "%s", spec);
    struct stat st;
    if (stat(spec, &st) < 0) return fail(err, errn, "--data %s: %s", spec, strerror(errno));
    if (S_ISREG(st.st_mode) && h5data_probe(spec)) {
        if (h5data_open(&d->h5, spec, err, errn) < 0) return -1;
        d->n = d->h5.n;
        d->c = d->h5.c;
        d->h = d->h5.h;
        d->w = d->h5.w;
        d->has_labels = d->h5.has_labels;
        d->read = h5_read;
        d->close = h5_close;
        return 0;
    }
    /* Shards / ImageFolder sources plug in here (decode + eval transform into the same interface). */
    return fail(err, errn,
                "--data %s: not an HDF5 file with 'images' (N,C,H,W) float32 and 'labels' (N); "
                "other --data forms are not supported by this command yet",
                spec);
}

int datain_check_model(DataIn *d, const ModelConfig *cfg, char *err, size_t errn) {
    if (d->c != cfg->in_chans || d->h != cfg->img_size || d->w != cfg->img_size)
        return fail(err, errn, "--data %s: images are (%d,%d,%d) but the model %s wants (%d,%d,%d)", d->desc, d->c,
                    d->h, d->w, cfg->name, cfg->in_chans, cfg->img_size, cfg->img_size);
    if (d->h5.file >= 0) return h5data_check_labels(&d->h5, cfg->num_classes, err, errn);
    return 0;
}

/* ---------- atomic result files ---------- */

static char h5err[400];
static int walk_cb(unsigned n, const H5E_error2_t *e, void *ud) {
    char *buf = ud;
    if (!buf[0]) snprintf(buf, 400, "%s", e->desc && e->desc[0] ? e->desc : "HDF5 error");
    return 0;
}
static const char *grab(void) {
    h5err[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, h5err);
    H5Eclear2(H5E_DEFAULT);
    if (!h5err[0]) snprintf(h5err, sizeof h5err, "HDF5 error");
    return h5err;
}

int outfile_create(OutFile *o, const char *path, char *err, size_t errn) {
    ckpt_hdf5_quiet();
    memset(o, 0, sizeof *o);
    o->f = -1;
    if (!path || !path[0]) return fail(err, errn, "--out is required");
    if (strlen(path) >= sizeof o->path) return fail(err, errn, "--out %s: path too long", path);
    snprintf(o->path, sizeof o->path, "%s", path);
    if (out_tmp_name(o->tmp, sizeof o->tmp, path) < 0) return fail(err, errn, "--out %s: path too long", path);
    out_clean_stale_path(path, stderr);
    /* Assembled in memory, written atomically by outfile_commit (train/outfile.h). */
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    hid_t fapl = out_h5_fapl(0);
    hid_t f = fapl < 0 ? -1 : H5Fcreate(o->tmp, H5F_ACC_TRUNC, fcpl, fapl);
    const char *r = f < 0 ? grab() : "";
    H5Pclose(fcpl);
    if (fapl >= 0) H5Pclose(fapl);
    if (f < 0) {
        out_h5_abort(-1);
        return fail(err, errn, "%s: cannot create the file in memory: %s", path, r);
    }
    o->f = f;
    return 0;
}

static hid_t parent_of(OutFile *o, const char *name, const char **leaf) {
    const char *s = strrchr(name, '/');
    *leaf = s ? s + 1 : name;
    if (!s) return H5Gopen2(o->f, "/", H5P_DEFAULT);
    char g[256];
    size_t L = (size_t)(s - name);
    if (L >= sizeof g) return -1;
    memcpy(g, name, L);
    g[L] = 0;
    if (H5Lexists(o->f, g, H5P_DEFAULT) > 0) return H5Gopen2(o->f, g, H5P_DEFAULT);
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE), lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t r = H5Gcreate2(o->f, g, lcpl, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    H5Pclose(lcpl);
    return r;
}

static int create_ds(OutFile *o, const char *name, hid_t ftype, hid_t mtype, int ndim, const long *shape,
                     const void *data, char *err, size_t errn) {
    const char *leaf;
    hid_t g = parent_of(o, name, &leaf);
    if (g < 0) return fail(err, errn, "%s: cannot create the group of /%s: %s", o->path, name, grab());
    hsize_t d[8];
    size_t numel = 1;
    for (int i = 0; i < ndim && i < 8; i++) { d[i] = (hsize_t)shape[i]; numel *= (size_t)shape[i]; }
    hid_t sp = ndim ? H5Screate_simple(ndim, d, NULL) : H5Screate(H5S_SCALAR);
    hid_t ds = H5Dcreate2(g, leaf, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = ds < 0 ? -1 : 0;
    if (ds >= 0 && data && numel) st = H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    const char *r = st < 0 ? grab() : "";
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    H5Gclose(g);
    if (st < 0) return fail(err, errn, "%s: writing /%s: %s", o->path, name, r);
    return 0;
}

int outfile_dataset(OutFile *o, const char *name, int ndim, const long *shape, const float *data, char *err,
                    size_t errn) {
    return create_ds(o, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ndim, shape, data, err, errn);
}

int outfile_ints(OutFile *o, const char *name, long n, const int64_t *data, char *err, size_t errn) {
    return create_ds(o, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &n, data, err, errn);
}

int outfile_rows(OutFile *o, const char *name, long start, long count, const float *data, const int64_t *ints,
                 char *err, size_t errn) {
    hid_t ds = H5Dopen2(o->f, name, H5P_DEFAULT);
    if (ds < 0) return fail(err, errn, "%s: /%s: %s", o->path, name, grab());
    hid_t fs = H5Dget_space(ds);
    int nd = H5Sget_simple_extent_ndims(fs);
    hsize_t dims[2] = {0, 0}, off[2] = {(hsize_t)start, 0}, cnt[2] = {(hsize_t)count, 0};
    H5Sget_simple_extent_dims(fs, dims, NULL);
    if (nd == 2) cnt[1] = dims[1];
    hid_t ms = H5Screate_simple(nd, cnt, NULL);
    herr_t st = H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL);
    if (st >= 0) st = H5Dwrite(ds, ints ? H5T_NATIVE_INT64 : H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT,
                               ints ? (const void *)ints : (const void *)data);
    const char *r = st < 0 ? grab() : "";
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(ds);
    if (st < 0) return fail(err, errn, "%s: writing rows of /%s: %s", o->path, name, r);
    return 0;
}

int outfile_attr_str(OutFile *o, const char *name, const char *value, char *err, size_t errn) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(o->f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Awrite(a, t, &value);
    const char *r = st < 0 ? grab() : "";
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    if (st < 0) return fail(err, errn, "%s: writing attribute %s: %s", o->path, name, r);
    return 0;
}

void outfile_abort(OutFile *o) {
    if (o->f >= 0) out_h5_abort(o->f);
    o->f = -1;
    o->tmp[0] = 0;
}

int outfile_commit(OutFile *o, char *err, size_t errn) {
    int rc = out_h5_commit(o->f, o->path, err, errn);
    o->f = -1;
    o->tmp[0] = 0;
    return rc;
}
