#include "data/source_util.h"
#include "train/model_io.h"
#include "train/outfile.h"
#include "core/gemm.h"
#include "core/threads.h"
#include "layers/adapt.h"
#include "train/safetensors.h"
#include <math.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------- model config / checkpoint ---------- */

int model_config_from_args(Args *a, ModelConfig *cfg, char *err, size_t errn) {
    args_group(a, "model (overrides default to the model's timm config)");
    const char *name = args_string(a, "--model", NULL, NULL, "registered model (see 'mixtape models')");
    if (a->failed) return src_seterr(err, errn, "%s", a->err);
    memset(cfg, 0, sizeof *cfg);
    int have = 0;
    if (name) {
        char e2[2048];
        if (model_config_default(name, cfg, e2, sizeof e2) < 0) /* e2 lists the known models */
            return src_seterr(err, errn, "mixtape %s: %s", a->cmd, e2);
        have = 1;
    } else if (!args_describing(a)) return src_seterr(err, errn, "mixtape %s: --model is required (see 'mixtape models')", a->cmd);
    /* every override is declared (help, --list-flags, args.yaml), whether given or not */
    for (const ModelOverride *o = model_overrides(); o->key; o++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", o->key);
        ArgType t = o->type == 'i' ? ARG_INT : o->type == 'f' ? ARG_FLOAT : o->type == 'c' ? ARG_CHOICE
                  : o->type == 'm' ? ARG_STR : o->type == 'l' ? ARG_INTS : ARG_LIST;
        const char *v = args_value(a, flag, NULL, t, NULL, o->type == 'm' || o->type == 'c' ? 1 : o->lo,
                                   o->type == 'm' || o->type == 'c' ? 0 : o->hi, o->choices, o->help);
        if (o->scope != 'a') args_scope(a, flag, o->scope == 'h' ? "hierarchical" : "isotropic");
        if (a->failed) return src_seterr(err, errn, "%s", a->err);
        char e2[512];
        if (v && have && model_config_set(cfg, o->key, v, e2, sizeof e2) < 0)
            return src_seterr(err, errn, "mixtape %s: %s", a->cmd, e2);
    }
    return 0;
}

int model_from_checkpoint(const char *path, Model *m, CkptInfo *info, char *err, size_t errn) {
    memset(m, 0, sizeof *m);
    CkptInfo *in = info ? info : malloc(sizeof *in);
    if (!in) return src_seterr(err, errn, "out of memory");
    int rc = -1;
    char e2[1024];
    ModelConfig cfg;
    if (ckpt_read_info(path, in, err, errn) < 0) goto out;
    if (model_config_from_json(in->config, &cfg, e2, sizeof e2) < 0) {
        src_seterr(err, errn, "checkpoint %s: attribute 'config': %s", path, e2);
        goto out;
    }
    if (model_build(m, &cfg, e2, sizeof e2) < 0) {
        src_seterr(err, errn, "checkpoint %s: model %s: %s", path, in->model, e2);
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

/* ---------- fine-tuning load ---------- */

typedef struct AdaptCtx {
    Model *m;
    FinetuneReport *rep;
    const char *stem, *pos;   /* parameter names that may be adapted (NULL: none) */
    int prefix;               /* pos_embed prefix tokens */
    int oom;
} AdaptCtx;

static void shape_str(int nd, const int64_t *d, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < nd && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)d[i]);
    if (k < n) snprintf(buf + k, n - k, ")");
}

/* Drops the "key: ..." line of a re-initialised (skipped) tensor that was adapted after all. */
static void unskip(CkptMatch *m, const char *key) {
    size_t L = strlen(key);
    for (int i = 0; i < m->n_skipped; i++)
        if (!strncmp(m->skipped[i], key, L) && m->skipped[i][L] == ':') {
            free(m->skipped[i]);
            memmove(m->skipped + i, m->skipped + i + 1, (size_t)(m->n_skipped - i - 1) * sizeof *m->skipped);
            m->n_skipped--;
            return;
        }
}

/* Adapts parameter `key` from the checkpoint's tensor (shape, data) when a rule applies.
 * 0 (adapted or not applicable); 1 out of memory (a->oom set). */
static int adapt_one(AdaptCtx *a, const char *key, int nd, const int64_t *shape, const float *data) {
    int is_stem = a->stem && !strcmp(key, a->stem), is_pos = a->pos && !strcmp(key, a->pos);
    if (!is_stem && !is_pos) return 0;
    Tensor *t = mt_param_find(&a->m->params, key);
    if (!t || nd != t->ndim) return 0;
    int same = 1;
    for (int i = 0; i < nd; i++) same &= shape[i] == t->shape[i];
    if (same) return 0;
    float *out = malloc(t->numel * sizeof *out);
    if (!out) { a->oom = 1; return 1; }
    char how[200] = "", fs[120], ms[120];
    int ok = 0;
    if (is_stem && nd == 4 && shape[0] == t->shape[0] && shape[2] == t->shape[2] && shape[3] == t->shape[3] &&
        shape[1] >= 1 && shape[1] <= 4096) {
        const char *rule;
        ok = adapt_input_conv(data, t->shape[0], (int)shape[1], t->shape[2], t->shape[3], t->shape[1], out, &rule) == 0;
        if (ok) snprintf(how, sizeof how, "adapt_input_conv %lld -> %d input channels: %s", (long long)shape[1],
                         t->shape[1], rule);
    } else if (is_pos && nd == 3 && shape[0] == 1 && t->shape[0] == 1 && shape[2] == t->shape[2]) {
        long g0 = (long)floor(sqrt((double)(shape[1] - a->prefix) + 0.5));
        long g1 = (long)floor(sqrt((double)(t->shape[1] - a->prefix) + 0.5));
        if (shape[1] > a->prefix && g0 * g0 == shape[1] - a->prefix && g1 * g1 == t->shape[1] - a->prefix) {
            if (resample_abs_pos_embed(data, a->prefix, (int)g0, (int)g0, t->shape[2], out, (int)g1, (int)g1) != 0) {
                free(out);
                a->oom = 1;
                return 1;
            }
            ok = 1;
            snprintf(how, sizeof how, "grid %ldx%ld resampled to %ldx%ld (bicubic, antialiased), %d prefix token%s kept",
                     g0, g0, g1, g1, a->prefix, a->prefix == 1 ? "" : "s");
        }
    }
    if (ok) {
        memcpy(t->data, out, t->numel * sizeof *out);
        int64_t md[MT_MAXDIM];
        for (int i = 0; i < t->ndim; i++) md[i] = t->shape[i];
        shape_str(nd, shape, fs, sizeof fs);
        shape_str(t->ndim, md, ms, sizeof ms);
        char line[600];
        snprintf(line, sizeof line, "%s: checkpoint %s -> model %s, %s", key, fs, ms, how);
        char **v = realloc(a->rep->adapted, (size_t)(a->rep->n_adapted + 1) * sizeof *v);
        if (!v || !(v[a->rep->n_adapted] = strdup(line))) {
            if (v) a->rep->adapted = v;
            free(out);
            a->oom = 1;
            return 1;
        }
        a->rep->adapted = v;
        a->rep->n_adapted++;
        unskip(&a->rep->match, key);
    }
    free(out);
    return 0;
}

static int adapt_cb(const char *key, int nd, const int64_t *shape, const float *data, size_t numel, void *ud) {
    (void)numel;
    return adapt_one(ud, key, nd, shape, data);
}

/* safetensors: only the (at most two) tensors to adapt are read. */
static int adapt_st(const char *path, AdaptCtx *a, char *err, size_t errn) {
    StFile sf;
    if (st_open(path, &sf, err, errn) != 0) return -1;
    int rc = 0;
    const char *keys[2] = {a->stem, a->pos};
    for (int k = 0; k < 2 && !rc; k++) {
        const StTensor *t = keys[k] ? st_find(&sf, keys[k]) : NULL;
        if (!t || t->ndim > MT_MAXDIM) continue;
        float *buf = malloc((t->numel ? t->numel : 1) * sizeof *buf);
        if (!buf) { a->oom = 1; rc = -1; break; }
        if (st_read_f32(&sf, t, buf, err, errn) != 0) rc = -1;
        else if (adapt_one(a, keys[k], t->ndim, t->shape, buf)) rc = -1;
        free(buf);
    }
    st_close(&sf);
    return rc;
}

int model_load_finetune(const char *path, Model *m, FinetuneReport *rep, char *err, size_t errn) {
    memset(rep, 0, sizeof *rep);
    int is_st = st_probe(path);
    if ((is_st ? st_load_matching(path, &m->params, &rep->match, err, errn)
            : ckpt_load_matching(path, &m->params, &rep->match, err, errn)) != 0)
        return -1;
    AdaptCtx a = {m, rep, NULL, NULL, 0, 0};
    const Tensor *st = model_stem_weight(m), *pe = model_pos_embed(m, &a.prefix);
    /* Only when one of them was skipped for its shape: a second pass over /model. */
    for (int i = 0; i < rep->match.n_skipped; i++) {
        const char *s = rep->match.skipped[i];
        size_t L;
        if (st && !strncmp(s, st->name, L = strlen(st->name)) && s[L] == ':') a.stem = st->name;
        if (pe && !strncmp(s, pe->name, L = strlen(pe->name)) && s[L] == ':') a.pos = pe->name;
    }
    if (!a.stem && !a.pos) return 0;
    int found;
    if ((is_st ? adapt_st(path, &a, err, errn) : ckpt_visit(path, "model", adapt_cb, &a, &found, err, errn)) != 0 ||
        a.oom) {
        if (a.oom) src_seterr(err, errn, "checkpoint %s: out of memory adapting weights", path);
        finetune_report_free(rep);
        return -1;
    }
    return 0;
}

void finetune_report_free(FinetuneReport *r) {
    ckpt_match_free(&r->match);
    ckpt_names_free(r->adapted, r->n_adapted);
    r->adapted = NULL;
    r->n_adapted = 0;
}

void finetune_report_print(const FinetuneReport *r, const char *path, FILE *f) {
    const CkptMatch *m = &r->match;
    fprintf(f, "initial checkpoint %s: %d tensors loaded, %d adapted, %d re-initialised (shape differs), %d not in "
               "the checkpoint, %d unused\n",
            path, m->n_loaded, r->n_adapted, m->n_skipped, m->n_missing, m->n_unexpected);
    for (int i = 0; i < r->n_adapted; i++) fprintf(f, "  adapted %s\n", r->adapted[i]);
    for (int i = 0; i < m->n_skipped; i++) fprintf(f, "  re-initialised %s\n", m->skipped[i]);
    for (int i = 0; i < m->n_missing; i++) fprintf(f, "  initialised (missing) %s\n", m->missing[i]);
    for (int i = 0; i < m->n_unexpected; i++) fprintf(f, "  unused %s\n", m->unexpected[i]);
}

/* ---------- data settings recorded in a checkpoint ---------- */

const char *aug_interp_name(int ip) {
    return ip == AUG_INTERP_BILINEAR ? "bilinear" : ip == AUG_INTERP_BICUBIC ? "bicubic" : "random";
}

int permute_from_checkpoint(const CkptInfo *info, const char *path, PermuteConfig *p, FILE *out, char *err,
                            size_t errn) {
    if (!p->given && info && info->permute[0]) {
        int mode = permute_mode_parse(info->permute);
        if (mode < 0)
            return src_seterr(err, errn, "checkpoint %s: attribute data_permute '%.15s': want none, patches or global",
                              path, info->permute);
        if (info->permute_seed < 0 || (uint64_t)info->permute_seed > PERMUTE_SEED_MAX)
            return src_seterr(err, errn, "checkpoint %s: attribute data_permute_seed %lld: must be in [0, %llu]", path,
                              (long long)info->permute_seed, PERMUTE_SEED_MAX);
        if (mode == PERMUTE_PATCHES && (info->permute_patch < 1 || info->permute_patch > PERMUTE_PATCH_MAX))
            return src_seterr(err, errn, "checkpoint %s: attribute data_permute_patch %lld: must be in [1, %d]", path,
                              (long long)info->permute_patch, PERMUTE_PATCH_MAX);
        p->mode = mode;
        p->seed = (uint64_t)info->permute_seed;
        p->patch = mode == PERMUTE_PATCHES ? (int)info->permute_patch : 0;
    }
    if (out && p->mode != PERMUTE_NONE) {
        fprintf(out, "input permutation: %s, seed %llu", permute_mode_name(p->mode), (unsigned long long)p->seed);
        if (p->mode == PERMUTE_PATCHES && p->patch > 0) fprintf(out, ", patch %d", p->patch);
        fprintf(out, " (%s%s)\n", p->given ? "--permute" : "checkpoint ", p->given ? "" : path);
    }
    return 0;
}

void permute_to_checkpoint(const PermuteConfig *p, CkptInfo *info) {
    if (!p || p->mode == PERMUTE_NONE) return;
    snprintf(info->permute, sizeof info->permute, "%s", permute_mode_name(p->mode));
    info->permute_seed = (int64_t)p->seed;
    info->permute_patch = p->mode == PERMUTE_PATCHES ? p->patch : 0;
}

int aug_from_checkpoint(const CkptInfo *info, const char *path, AugConfig *aug, const int given[4], int chans,
                        FILE *out, char *err, size_t errn) {
    if (permute_from_checkpoint(info, path, &aug->permute, out, err, errn) != 0) return -1;
    char v[256], e2[300];
    const char *src[4];
    static const char *const flag[4] = {"--mean", "--std", "--interpolation", "--crop-pct"};
    static const char *const attr[4] = {"data_mean", "data_std", "data_interpolation", "data_crop_pct"};
    int has[4] = {info && (info->n_chan == 1 || info->n_chan == 3), info && (info->n_chan == 1 || info->n_chan == 3),
                  info && info->interpolation[0], info && info->crop_pct != 0};
    for (int k = 0; k < 4; k++) {
        /* given: 0 absent, 1 on the command line (wins), 2 replayed from a resumed run's args.yaml
         * (the checkpoint records what the run really used, so it wins over the replay) */
        src[k] = given[k] == 1 ? "command line" : given[k] == 2 ? "the run's args.yaml"
                 : k < 2 && aug->norm_src ? aug->norm_src : "default";
        if (given[k] == 1 || !has[k]) continue;
        if (k < 2) {
            const float *x = k == 0 ? info->mean : info->std;
            size_t L = 0;
            for (int i = 0; i < info->n_chan; i++) L += (size_t)snprintf(v + L, sizeof v - L, "%s%.9g", i ? " " : "", x[i]);
        } else if (k == 2) {
            snprintf(v, sizeof v, "%s", info->interpolation);
        } else {
            snprintf(v, sizeof v, "%.9g", info->crop_pct);
        }
        if (aug_config_set(aug, flag[k], v, e2, sizeof e2) != 0)
            return src_seterr(err, errn, "checkpoint %s: attribute %s: %s", path, attr[k], e2);
        src[k] = "checkpoint";
    }
    if (info && info->n_chan > 0 && info->n_chan != 1 && info->n_chan != 3 && out && (!given[0] || !given[1]))
        fprintf(out, "note: checkpoint %s records data_mean/data_std for %d channels (not images): not used\n", path,
                info->n_chan);
    if (out) {
        char m[96], s[96];
        size_t a = 0, b = 0;
        for (int i = 0; i < chans && i < 3; i++) {
            a += (size_t)snprintf(m + a, sizeof m - a, "%s%.4g", i ? " " : "", aug_mean(aug, chans, i));
            b += (size_t)snprintf(s + b, sizeof s - b, "%s%.4g", i ? " " : "", aug_std(aug, chans, i));
        }
        fprintf(out, "normalisation: mean %s (%s), std %s (%s); eval resize: %s (%s), crop-pct %.4g (%s)%s%s\n", m,
                src[0], s, src[1], aug_interp_name(aug->interpolation), src[2], aug->crop_pct, src[3],
                (has[0] || has[1] || has[2] || has[3]) ? "; checkpoint " : "",
                (has[0] || has[1] || has[2] || has[3]) ? path : "");
    }
    return 0;
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

void threads_from_args(Args *a) {
    long t = args_int_range(a, "--threads", NULL, 0, 0, MT_MAX_THREADS, "threads (0: OMP_NUM_THREADS or all cores)");
    if (!a->failed && !args_describing(a)) mt_set_threads((int)t);
}

int precision_from_args(Args *a) {
    const char *p = args_choice(a, "--precision", NULL, "fp32", "fp32|bf16",
                                "GEMM precision (bf16 gives a bf16 run's logged validation figures exactly)");
    return p && !strcmp(p, "bf16") ? MT_BF16 : MT_FP32;
}

/* ---------- data source ---------- */

static int h5_read(DataIn *d, long start, int count, Batch *b, char *err, size_t errn) {
    return h5data_read(&d->h5, start, count, b, err, errn);
}
static void h5_close(DataIn *d) { h5data_close(&d->h5); }

int datain_open(DataIn *d, const char *spec, char *err, size_t errn) {
    memset(d, 0, sizeof *d);
    d->h5.file = d->h5.images = d->h5.labels = -1;
    if (!spec || !spec[0]) return src_seterr(err, errn, "--data is required");
    snprintf(d->desc, sizeof d->desc, "%s", spec);
    struct stat st;
    if (stat(spec, &st) < 0) return src_seterr(err, errn, "--data %s: %s", spec, strerror(errno));
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
    return src_seterr(err, errn,
                "--data %s: not an HDF5 file with 'images' (N,C,H,W) float32 and 'labels' (N); "
                "other --data forms are not supported by this command yet",
                spec);
}

int datain_check_model(DataIn *d, const ModelConfig *cfg, char *err, size_t errn) {
    if (d->c != cfg->in_chans || d->h != cfg->img_size || d->w != cfg->img_size)
        return src_seterr(err, errn, "--data %s: images are (%d,%d,%d) but the model %s wants (%d,%d,%d)", d->desc, d->c,
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
    if (!path || !path[0]) return src_seterr(err, errn, "--out is required");
    if (strlen(path) >= sizeof o->path) return src_seterr(err, errn, "--out %s: path too long", path);
    snprintf(o->path, sizeof o->path, "%s", path);
    if (out_tmp_name(o->tmp, sizeof o->tmp, path) < 0) return src_seterr(err, errn, "--out %s: path too long", path);
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
        return src_seterr(err, errn, "%s: cannot create the file in memory: %s", path, r);
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
    if (g < 0) return src_seterr(err, errn, "%s: cannot create the group of /%s: %s", o->path, name, grab());
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
    if (st < 0) return src_seterr(err, errn, "%s: writing /%s: %s", o->path, name, r);
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
    if (ds < 0) return src_seterr(err, errn, "%s: /%s: %s", o->path, name, grab());
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
    if (st < 0) return src_seterr(err, errn, "%s: writing rows of /%s: %s", o->path, name, r);
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
    if (st < 0) return src_seterr(err, errn, "%s: writing attribute %s: %s", o->path, name, r);
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
