/* mixtape export --checkpoint C.h5 --format safetensors --out W.safetensors [--ema]
 * mixtape import W.safetensors [--model M [overrides]] --out C.h5 [--mean ... --std ...]
 *
 * Weights between a mixtape checkpoint and a safetensors file in timm's layout
 * (keys, order, shapes, float32), so that timm / safetensors users load them
 * without mixtape and mixtape reads theirs without Python. The safetensors
 * __metadata__ carries format "pt" plus mixtape's model name, config, data
 * mean/std and class names (strings only, as the format requires); import uses
 * them when no --model is given. */
#include "core/clock.h"
#include "data/source_util.h"
#include "layers/model.h"
#include "train/args.h"
#include "train/checkpoint.h"
#include "train/class_names.h"
#include "train/commands.h"
#include "train/outfile.h"
#include "train/model_io.h"
#include "train/safetensors.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* "a,b,c" of n floats */
static void floats_str(const float *v, int n, char *out, size_t cap) {
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < n && k < cap; i++) k += (size_t)snprintf(out + k, cap - k, "%s%.9g", i ? "," : "", (double)v[i]);
}

/* ---------- export ---------- */

typedef struct Collect {
    StOut *t;
    int n, cap;
    int oom;
} Collect;

static int collect(const char *key, int ndim, const int64_t *shape, const float *data, size_t numel, void *ud) {
    Collect *c = ud;
    if (ndim > ST_MAX_RANK) { c->oom = 2; return 1; }
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 256;
        StOut *nt = realloc(c->t, (size_t)cap * sizeof *nt);
        if (!nt) { c->oom = 1; return 1; }
        c->t = nt;
        c->cap = cap;
    }
    StOut *o = &c->t[c->n];
    memset(o, 0, sizeof *o);
    char *name = strdup(key);
    float *copy = malloc((numel ? numel : 1) * sizeof(float));
    if (!name || !copy) { free(name); free(copy); c->oom = 1; return 1; }
    memcpy(copy, data, numel * sizeof(float));
    o->name = name;
    o->data = copy;
    o->ndim = ndim;
    for (int i = 0; i < ndim; i++) o->shape[i] = shape[i];
    c->n++;
    return 0;
}

static void export_usage(FILE *f) {
    fprintf(f, "usage: mixtape export --checkpoint C.h5 [--format safetensors] --out W.safetensors [--ema]\n\n"
               "Writes the checkpoint's weights (/model, or /ema with --ema) as a safetensors file: timm's keys\n"
               "in timm's order, float32, exact shapes; __metadata__ has format \"pt\" and mixtape's model name,\n"
               "config, data mean/std and class names.\n");
}

int cmd_export(int argc, char **argv) {
    Args a;
    args_init(&a, "export", argc, argv);
    const char *ck = args_string(&a, "--checkpoint", NULL, NULL, "mixtape checkpoint C.h5 (required)");
    const char *fmt = args_choice(&a, "--format", NULL, "safetensors", "safetensors", "output format");
    const char *out = args_string(&a, "--out", NULL, NULL,
                                  "output file W.safetensors (required; written atomically, never an input)");
    int ema = args_bool(&a, "--ema", 0, "export the EMA weights (/ema) instead of /model");
    int e = args_end(&a, export_usage);
    args_free(&a);
    if (e) return e == 1 ? 0 : 2;
    if (!ck || !out) { fprintf(stderr, "mixtape export: --checkpoint and --out are required (see --help)\n"); return 2; }
    if (strcmp(fmt, "safetensors")) { fprintf(stderr, "mixtape export: --format '%s': only safetensors is supported\n", fmt); return 2; }
    if (out_same_file(ck, out)) { fprintf(stderr, "mixtape export: --out %s is the input checkpoint\n", out); return 2; }

    double t0 = mt_seconds();
    char err[2048];
    int rc = 2, found = 0;
    CkptInfo *info = calloc(1, sizeof *info);
    Collect c = {0};
    char **names = NULL, *names_json = NULL;
    int nnames = 0;
    if (!info) { fprintf(stderr, "mixtape export: out of memory\n"); return 1; }
    if (ckpt_read_info(ck, info, err, sizeof err) < 0) { fprintf(stderr, "mixtape export: %s\n", err); goto out; }
    const char *group = ema ? "ema" : "model";
    if (ckpt_visit(ck, group, collect, &c, &found, err, sizeof err) < 0) { fprintf(stderr, "mixtape export: %s\n", err); goto out; }
    if (c.oom) {
        fprintf(stderr, "mixtape export: %s: %s\n", ck, c.oom == 2 ? "a tensor of rank above 8" : "out of memory");
        rc = 1;
        goto out;
    }
    if (!found || !c.n) { fprintf(stderr, "mixtape export: checkpoint %s has no /%s weights\n", ck, group); goto out; }
    /* class names only when valid for this model */
    ModelConfig cfg;
    char e2[512];
    if (model_config_from_json(info->config, &cfg, e2, sizeof e2) == 0 &&
        class_names_read(ck, cfg.num_classes, &names, &nnames, err, sizeof err) == 0 && nnames)
        names_json = class_names_to_json((const char *const *)names, nnames, err, sizeof err);
    char ver[32], mean[160], std[160];
    snprintf(ver, sizeof ver, "%d", info->format_version);
    StMeta meta[8];
    int nm = 0;
    meta[nm++] = (StMeta){"format", "pt"};
    meta[nm++] = (StMeta){"mixtape_model", info->model};
    meta[nm++] = (StMeta){"mixtape_config", info->config};
    meta[nm++] = (StMeta){"mixtape_weights", ema ? "ema" : "model"};
    meta[nm++] = (StMeta){"mixtape_format_version", ver};
    if (info->n_chan > 0) {
        floats_str(info->mean, info->n_chan, mean, sizeof mean);
        floats_str(info->std, info->n_chan, std, sizeof std);
        meta[nm++] = (StMeta){"mixtape_data_mean", mean};
        meta[nm++] = (StMeta){"mixtape_data_std", std};
    }
    if (names_json) meta[nm++] = (StMeta){"mixtape_class_names", names_json};
    if (st_write(out, c.t, c.n, meta, nm, err, sizeof err) < 0) { fprintf(stderr, "mixtape export: %s\n", err); rc = 1; goto out; }
    size_t numel = 0;
    for (int i = 0; i < c.n; i++) {
        size_t k = 1;
        for (int d = 0; d < c.t[i].ndim; d++) k *= (size_t)c.t[i].shape[d];
        numel += k;
    }
    struct stat st;
    long long bytes = stat(out, &st) == 0 ? (long long)st.st_size : -1;
    printf("wrote %s: %d tensors (/%s of %s), %.3fM parameters, %lld bytes, %.2f s\n", out, c.n, group, info->model,
           (double)numel / 1e6, bytes, mt_seconds() - t0);
    rc = 0;
out:
    for (int i = 0; i < c.n; i++) { free((char *)c.t[i].name); free((float *)c.t[i].data); }
    free(c.t);
    class_names_free(names, nnames);
    free(names_json);
    free(info);
    return rc;
}

/* ---------- import ---------- */

static void import_usage(FILE *f) {
    fprintf(f, "usage: mixtape import W.safetensors [--model M [overrides]] --out C.h5 [--mean a,b,c --std a,b,c]\n\n"
               "Writes a mixtape checkpoint (epoch 0) with the safetensors file's weights in /model. Every\n"
               "parameter of the model must be present with its exact shape, and no other tensor (strict);\n"
               "F32, F16, BF16 and F64 tensors are read as float32. Without --model, the model and config come\n"
               "from the file's mixtape metadata (files written by 'mixtape export'). Model overrides\n"
               "(--num-classes, --img-size, ...) as for 'mixtape init'.\n");
}

int cmd_import(int argc, char **argv) {
    Args a;
    args_init(&a, "import", argc, argv);
    char err[2048];
    ModelConfig cfg;
    Model m;
    StFile s;
    int built = 0, opened = 0, rc = 2, has_model = args_has(&a, "--model", NULL);
    char **names = NULL;
    CkptInfo *info = calloc(1, sizeof *info);
    if (!info) { fprintf(stderr, "mixtape import: out of memory\n"); args_free(&a); return 1; }
    if (has_model && model_config_from_args(&a, &cfg, err, sizeof err) < 0) { fprintf(stderr, "%s\n", err); goto out; }
    const char *out = args_string(&a, "--out", NULL, NULL, "output checkpoint C.h5 (required; written atomically)");
    const char *mean = args_string(&a, "--mean", NULL, NULL, "data mean recorded in the checkpoint, a,b,c "
                                                                "(default: the file's metadata)");
    const char *std = args_string(&a, "--std", NULL, NULL, "data std recorded in the checkpoint, a,b,c");
    const char *in = args_string(&a, "--src", NULL, NULL, "the safetensors file (also accepted as the positional W)");
    threads_from_args(&a);
    if (!in) in = args_positional(&a);
    int e = args_end(&a, import_usage);
    if (e) { rc = e == 1 ? 0 : 2; goto out; }
    if (!in || !out) { fprintf(stderr, "mixtape import: give the safetensors file and --out (see --help)\n"); goto out; }
    if (out_same_file(in, out)) { fprintf(stderr, "mixtape import: --out %s is the input file\n", out); goto out; }
    if (!!mean != !!std) { fprintf(stderr, "mixtape import: give both --mean and --std\n"); goto out; }
    double t0 = mt_seconds();
    if (st_open(in, &s, err, sizeof err) < 0) { fprintf(stderr, "mixtape import: %s\n", err); rc = 1; goto out; }
    opened = 1;
    if (!has_model) {
        const char *js = st_meta(&s, "mixtape_config");
        char e2[512];
        if (!js) { fprintf(stderr, "mixtape import: %s has no mixtape metadata: give --model M\n", in); goto out; }
        if (model_config_from_json(js, &cfg, e2, sizeof e2) < 0) {
            fprintf(stderr, "mixtape import: %s: __metadata__ mixtape_config: %s\n", in, e2);
            rc = 1;
            goto out;
        }
    }
    const char *mm = mean ? mean : st_meta(&s, "mixtape_data_mean"), *ms = std ? std : st_meta(&s, "mixtape_data_std");
    if (mm && ms) {
        int nm = src_parse_floats(mm, info->mean, 3), ns = src_parse_floats(ms, info->std, 3);
        if (nm < 1 || nm != ns) {
            fprintf(stderr, "mixtape import: %s: mean/std want equal comma lists of up to 3 numbers\n", mean ? "--mean/--std" : in);
            goto out;
        }
        info->n_chan = nm;
    }
    if (model_build(&m, &cfg, err, sizeof err) < 0) { fprintf(stderr, "mixtape import: %s\n", err); goto out; }
    built = 1;
    st_close(&s);
    opened = 0;
    if (st_load_params(in, &m.params, err, sizeof err) < 0) { fprintf(stderr, "mixtape import: %s\n", err); rc = 1; goto out; }
    /* class names from the metadata, when they fit this model */
    if (st_open(in, &s, err, sizeof err) == 0) {
        opened = 1;
        const char *cn = st_meta(&s, "mixtape_class_names");
        if (cn && class_names_parse(cn, strlen(cn), cfg.num_classes, "__metadata__ mixtape_class_names", &names, err, sizeof err) < 0)
            fprintf(stderr, "mixtape import: warning: %s: %s (not stored)\n", in, err);
        if (cn) info->class_names = names ? cn : NULL;
    }
    snprintf(info->model, sizeof info->model, "%s", cfg.name);
    if (model_config_to_json(&cfg, info->config, sizeof info->config) < 0) {
        fprintf(stderr, "mixtape import: config does not fit in %d bytes of JSON\n", CKPT_JSON_MAX);
        rc = 1;
        goto out;
    }
    snprintf(info->train_state, sizeof info->train_state, "{\"imported_from\":\"safetensors\"}");
    if (ckpt_save(out, &m.params, NULL, 0, info, err, sizeof err) < 0) { fprintf(stderr, "mixtape import: %s\n", err); rc = 1; goto out; }
    printf("wrote %s: %s, %.3fM parameters from %s, %.2f s\n", out, cfg.name, (double)mt_params_count(&m.params) / 1e6, in,
           mt_seconds() - t0);
    rc = 0;
out:
    if (names) class_names_free(names, cfg.num_classes);
    if (opened) st_close(&s);
    if (built) model_free(&m);
    free(info);
    args_free(&a);
    return rc;
}
