/* mixtape predict --checkpoint C.h5 (--data D | IMAGE...) [--topk K]
 *                 [--out P.h5] [--out-csv P.csv] [--out-jsonl P.jsonl]
 * Class probabilities of every sample (eval mode, no grad) with the checkpoint's
 * own eval transform: top-k class names and probabilities per row to CSV / JSONL,
 * and /logits (N, classes) float32 plus /labels (N) int64 (when every sample has a
 * label) to HDF5. Rows follow the source's order; skipped (undecodable) samples
 * have no row. Names: --classes FILE, else the checkpoint's class_names, else the
 * data's classes.txt / ImageFolder directories (when they count num_classes), else
 * class indices. */
#include "core/ops.h"
#include "train/args.h"
#include "train/class_names.h"
#include "train/commands.h"
#include "train/dataset_json.h"
#include "train/data_flags.h"
#include "train/model_io.h"
#include "train/outfile.h"
#include "train/predict_source.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f, "usage: mixtape predict --checkpoint C.h5 (--data D | IMAGE...) [--topk 5] [-b N]\n"
               "                       [--precision fp32|bf16]\n"
               "                       [--out P.h5] [--out-csv P.csv] [--out-jsonl P.jsonl]\n\n"
               "Runs the model on every sample with the checkpoint's eval transform (mean/std stored in it,\n"
               "resize + center crop as 'eval') and writes at least one of:\n"
               "  --out P.h5           /logits (N, classes) float32, /labels (N) int64 when known\n"
               "  --out-csv P.csv      key,class_1,prob_1,...,class_k,prob_k (one row per sample)\n"
               "  --out-jsonl P.jsonl  {\"key\":..., \"label\":..., \"classes\":[...], \"indices\":[...], \"probs\":[...]}\n"
               "--data D is an image file, a folder of images, an ImageFolder, tar shards (directory, brace\n"
               "pattern, list file) or an HDF5 file with images (N,C,H,W) float32 (already normalised) and\n"
               "optional labels; or give image files (jpg/jpeg/png) as arguments instead. Outputs are written\n"
               "atomically and never replace an input.\n");
}

/* The input file out would replace (an image of a folder, a shard), or NULL. Only an
 * existing out can be one, so the common case costs one stat. */
static const char *input_clash(const char *out, const PredSource *src) {
    struct stat st;
    if (!out || stat(out, &st) < 0) return NULL;
    char **v = src->kind == 0 ? src->files.files : src->kind == 1 ? src->shards : NULL;
    int n = src->kind == 0 ? src->files.n : src->kind == 1 ? src->nshards : 0;
    for (int i = 0; i < n; i++)
        if (out_same_file(out, v[i])) return v[i];
    return NULL;
}

/* CSV / JSONL outputs are assembled in memory and written atomically at the end
 * (train/outfile.c); f stays NULL when the output was not asked for. */
static int text_open(OutText *t, const char *path, char *err, size_t errn) {
    memset(t, 0, sizeof *t);
    if (path && out_text_begin(t) != 0) return snprintf(err, errn, "%s: out of memory", path), -1;
    return 0;
}

/* RFC 4180 field: quoted when it holds a comma, quote, CR or LF. */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* Softmax of one row (double accumulation) and the k best classes, ties to the lower
 * index. Returns 0, or -1 when a logit is not finite (probabilities NaN). */
static int topk_row(const float *z, int K, int k, double *prob, int *idx) {
    double mx = -INFINITY, sum = 0;
    int finite = 1;
    for (int j = 0; j < K; j++) {
        if (!isfinite(z[j])) finite = 0;
        if (z[j] > mx) mx = z[j];
    }
    for (int j = 0; j < K; j++) sum += (prob[j] = finite ? exp((double)z[j] - mx) : NAN);
    for (int j = 0; j < K; j++) prob[j] /= sum;
    for (int t = 0; t < k; t++) {
        int best = -1;
        for (int j = 0; j < K; j++) {
            int used = 0;
            for (int u = 0; u < t; u++) used |= idx[u] == j;
            if (!used && (best < 0 || prob[j] > prob[best] || (isnan(prob[best]) && !isnan(prob[j])))) best = j;
        }
        idx[t] = best;
    }
    return finite ? 0 : -1;
}

int cmd_predict(int argc, char **argv) {
    Args a;
    args_init(&a, "predict", argc, argv);
    char err[2048];
    const char *ckpt = args_string(&a, "--checkpoint", NULL, NULL, "mixtape checkpoint C.h5 (required)");
    const char *data = args_string(&a, "--data", NULL, NULL, "data to label (or image files as arguments)");
    const char *out = args_string(&a, "--out", NULL, NULL, "HDF5 with /logits (and /labels when known)");
    const char *out_csv = args_string(&a, "--out-csv", NULL, NULL, "CSV: key, then top-k class and probability pairs");
    const char *out_jsonl = args_string(&a, "--out-jsonl", NULL, NULL, "JSON lines: key, label, classes, indices, probs");
    const char *classes = args_string(&a, "--classes", NULL, NULL, "class names, one a line (default: the checkpoint's)");
    long bs = args_int_range(&a, "--batch-size", "-b", 64, 1, 1 << 16, "samples per forward pass");
    long topk = args_int_range(&a, "--topk", NULL, 5, 1, 1 << 20, "classes per row (at most num_classes)");
    int has_mean = args_has(&a, "--mean", NULL), has_std = args_has(&a, "--std", NULL);
    AugConfig aug;
    aug_config_default(&aug);
    threads_from_args(&a);
    int precision = precision_from_args(&a);
    if (data_flags_parse(&a, &aug, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); args_free(&a); return 2; }
    char **files = NULL;
    int nfiles = 0;
    for (const char *p; (p = args_positional(&a));) {
        char **nf = realloc(files, (size_t)(nfiles + 1) * sizeof *nf);
        if (!nf) { fprintf(stderr, "mixtape predict: out of memory\n"); free(files); args_free(&a); return 1; }
        files = nf;
        files[nfiles++] = (char *)p;
    }
    int rc = 2;
    Model m;
    CkptInfo *info = calloc(1, sizeof *info);
    PredSource src;
    int have_model = 0, have_src = 0, have_ctx = 0;
    Batch b = {0};
    Ctx c;
    OutFile o = {.f = -1};
    OutText tc = {0}, tj = {0};
    char **names = NULL, **keys = NULL, **file_names = NULL;
    int nnames = 0, nfile_names = 0;
    float *logits = NULL;
    int64_t *labels = NULL;
    long n = 0, cap = 0, nonfinite = 0;
    double *prob = NULL;
    int *idx = NULL;
    int e = args_end(&a, usage);
    if (e) { rc = e == 1 ? 0 : 2; goto out; }
    if (!info) { fprintf(stderr, "mixtape predict: out of memory\n"); rc = 1; goto out; }
    if (!ckpt) { fprintf(stderr, "mixtape predict: --checkpoint is required (see --help)\n"); goto out; }
    if (!data && !nfiles) { fprintf(stderr, "mixtape predict: give --data D or image files (see --help)\n"); goto out; }
    if (!out && !out_csv && !out_jsonl) { fprintf(stderr, "mixtape predict: give --out, --out-csv or --out-jsonl\n"); goto out; }
    if (bs < 1 || bs > 1 << 16) { fprintf(stderr, "mixtape predict: --batch-size must be in [1, 65536], got %ld\n", bs); goto out; }
    if (topk < 1) { fprintf(stderr, "mixtape predict: --topk must be >= 1, got %ld\n", topk); goto out; }
    {
        const char *outs[3] = {out, out_csv, out_jsonl}, *flags[3] = {"--out", "--out-csv", "--out-jsonl"};
        for (int i = 0; i < 3; i++) {
            if (!outs[i]) continue;
            /* the shared rule (train/outfile.c) for the named inputs, then the image arguments */
            if (out_check_not_input(flags[i], outs[i], "--checkpoint", ckpt, err, sizeof err) != 0 ||
                (data && out_check_not_input(flags[i], outs[i], "--data", data, err, sizeof err) != 0) ||
                (classes && out_check_not_input(flags[i], outs[i], "--classes", classes, err, sizeof err) != 0)) {
                fprintf(stderr, "mixtape predict: %s\n", err);
                goto out;
            }
            const char *clash = NULL;
            for (int j = 0; j < nfiles && !clash; j++)
                if (out_same_file(outs[i], files[j])) clash = files[j];
            for (int j = 0; j < i && !clash; j++)
                if (outs[j] && !strcmp(outs[i], outs[j])) clash = flags[j];
            if (clash) { fprintf(stderr, "mixtape predict: %s %s would overwrite %s\n", flags[i], outs[i], clash); goto out; }
        }
    }

    if (model_from_checkpoint(ckpt, &m, info, err, sizeof err) < 0) { fprintf(stderr, "mixtape predict: %s\n", err); goto out; }
    have_model = 1;
    const int K = m.cfg.num_classes, k = topk < K ? (int)topk : K;
    /* the checkpoint's eval transform unless flags override it */
    aug.img_size = m.cfg.img_size;
    aug.in_chans = m.cfg.in_chans;
    if (info->n_chan > 0) {
        if (!has_mean) { for (int i = 0; i < info->n_chan && i < 3; i++) aug.mean[i] = info->mean[i]; aug.n_mean = info->n_chan < 3 ? info->n_chan : 3; }
        if (!has_std) { for (int i = 0; i < info->n_chan && i < 3; i++) aug.std[i] = info->std[i]; aug.n_std = info->n_chan < 3 ? info->n_chan : 3; }
    }
    {   /* neither flags nor checkpoint: the statistics of --data (dataset.json), else ImageNet's */
        const char *nsrc[2] = {has_mean ? "command line" : info->n_chan > 0 ? "checkpoint" : NULL,
                               has_std ? "command line" : info->n_chan > 0 ? "checkpoint" : NULL};
        char nbuf[1300];
        int dflt = !nsrc[0] || !nsrc[1];
        if (norm_from_data(data, m.cfg.in_chans, &aug, nsrc, nbuf, sizeof nbuf, 1, err, sizeof err) != 0) {
            fprintf(stderr, "mixtape predict: --data: %s (fix or remove it, or give --mean and --std)\n", err);
            goto out;
        }
        if (dflt) norm_print(stdout, &aug, m.cfg.in_chans, nsrc);
    }
    data_flags_permute_patch(&aug.permute, &m.cfg);
    if (permute_from_checkpoint(info, ckpt, &aug.permute, stdout, err, sizeof err) != 0) { fprintf(stderr, "mixtape predict: %s\n", err); goto out; }
    if (aug_config_check(&aug, err, sizeof err) < 0) { fprintf(stderr, "mixtape predict: %s\n", err); goto out; }
    if (pred_source_open(&src, data, files, nfiles, &aug, err, sizeof err) < 0) { fprintf(stderr, "mixtape predict: %s\n", err); goto out; }
    have_src = 1;
    /* an HDF5 file's labels must be classes of the model (checked up front, labels only) */
    if (src.kind == 2 && h5data_check_labels(&src.h5, K, err, sizeof err) < 0) { fprintf(stderr, "mixtape predict: %s\n", err); goto out; }
    {
        const char *outs[3] = {out, out_csv, out_jsonl}, *flags[3] = {"--out", "--out-csv", "--out-jsonl"};
        for (int i = 0; i < 3; i++) {
            const char *clash = input_clash(outs[i], &src);
            if (clash) { fprintf(stderr, "mixtape predict: %s %s would overwrite the input %s\n", flags[i], outs[i], clash); goto out; }
        }
    }

    /* class names */
    if (classes) {
        if (classes_read(classes, &file_names, &nfile_names, err, sizeof err) < 0) { fprintf(stderr, "mixtape predict: --classes %s: %s\n", classes, err); goto out; }
        if (nfile_names != K) {
            fprintf(stderr, "mixtape predict: --classes %s has %d names, the model has %d classes\n", classes, nfile_names, K);
            goto out;
        }
    } else if (class_names_read(ckpt, K, &names, &nnames, err, sizeof err) < 0) {
        fprintf(stderr, "mixtape predict: %s\n", err);
        rc = 1;
        goto out;
    }
    const char *const *cls = file_names ? (const char *const *)file_names : names ? (const char *const *)names
                           : src.ndata_classes == K ? (const char *const *)src.data_classes : NULL;

    rc = 1;
    if (batch_alloc(&b, (int)bs, src.c, src.s, src.s, 0, 0) < 0 || !(keys = calloc((size_t)bs, sizeof *keys)) ||
        !(prob = malloc((size_t)K * sizeof *prob)) || !(idx = malloc((size_t)k * sizeof *idx))) {
        fprintf(stderr, "mixtape predict: out of memory\n");
        goto out;
    }
    if (text_open(&tc, out_csv, err, sizeof err) < 0 || text_open(&tj, out_jsonl, err, sizeof err) < 0) { fprintf(stderr, "mixtape predict: %s\n", err); goto out; }
    if (tc.f) {
        fprintf(tc.f, "key");
        for (int t = 1; t <= k; t++) fprintf(tc.f, ",class_%d,prob_%d", t, t);
        fprintf(tc.f, "\n");
    }
    mt_ctx_init(&c, (size_t)64 << 20);
    c.precision = precision;
    have_ctx = 1;
    int all_labelled = 1;
    for (;;) {
        int got = pred_source_next(&src, &b, (int)bs, keys, err, sizeof err);
        if (got < 0) { fprintf(stderr, "mixtape predict: %s\n", err); goto out; }
        if (got == 0) break;
        mt_ctx_reset(&c);
        c.grad_enabled = 0;
        c.training = 0;
        Tensor *x = mt_wrap(&c, b.images, 4, (int[]){got, src.c, src.s, src.s});
        Tensor *y = model_forward(&c, &m, x);
        if (!y || c.failed) { fprintf(stderr, "mixtape predict: forward: %s\n", c.err); goto out; }
        if (y->ndim != 2 || y->shape[0] != got || y->shape[1] != K) {
            char s[64];
            fprintf(stderr, "mixtape predict: model output %s, expected (%d,%d)\n", mt_shape_str(y, s, sizeof s), got, K);
            goto out;
        }
        if (out) { /* kept for the HDF5 file, whose row count is known only at the end */
            if (n + got > cap) {
                long nc = cap ? cap * 2 : 1024;
                while (nc < n + got) nc *= 2;
                float *nl = realloc(logits, (size_t)nc * K * sizeof *nl);
                int64_t *nb = nl ? realloc(labels, (size_t)nc * sizeof *nb) : NULL;
                if (nl) logits = nl;
                if (nb) labels = nb;
                if (!nl || !nb) { fprintf(stderr, "mixtape predict: out of memory for %ld rows of logits\n", nc); goto out; }
                cap = nc;
            }
            memcpy(logits + (size_t)n * K, y->data, (size_t)got * K * sizeof(float));
        }
        for (int i = 0; i < got; i++) {
            if (out) labels[n + i] = b.labels[i];
            if (b.labels[i] < 0) all_labelled = 0;
            if (topk_row(y->data + (size_t)i * K, K, k, prob, idx) < 0) nonfinite++;
            char num[32];
            if (tc.f) {
                csv_field(tc.f, keys[i]);
                for (int t = 0; t < k; t++) {
                    fputc(',', tc.f);
                    if (cls) csv_field(tc.f, cls[idx[t]]);
                    else fprintf(tc.f, "%d", idx[t]);
                    snprintf(num, sizeof num, "%.6g", prob[idx[t]]);
                    fprintf(tc.f, ",%s", num);
                }
                fputc('\n', tc.f);
            }
            if (tj.f) {
                fprintf(tj.f, "{\"key\": ");
                json_str(tj.f, keys[i]);
                if (b.labels[i] >= 0) fprintf(tj.f, ", \"label\": %d", b.labels[i]);
                fprintf(tj.f, ", \"classes\": [");
                for (int t = 0; t < k; t++) {
                    if (t) fprintf(tj.f, ", ");
                    if (cls) json_str(tj.f, cls[idx[t]]);
                    else fprintf(tj.f, "\"%d\"", idx[t]);
                }
                fprintf(tj.f, "], \"indices\": [");
                for (int t = 0; t < k; t++) fprintf(tj.f, "%s%d", t ? ", " : "", idx[t]);
                fprintf(tj.f, "], \"probs\": [");
                for (int t = 0; t < k; t++) {
                    if (isnan(prob[idx[t]])) fprintf(tj.f, "%snull", t ? ", " : "");
                    else fprintf(tj.f, "%s%.6g", t ? ", " : "", prob[idx[t]]);
                }
                fprintf(tj.f, "]}\n");
            }
            free(keys[i]);
            keys[i] = NULL;
        }
        n += got;
    }
    if (n == 0) { fprintf(stderr, "mixtape predict: no sample of %s could be read (%ld skipped)\n", src.desc, src.skipped); goto out; }
    if (out) {
        long shape[2] = {n, K};
        if (outfile_create(&o, out, err, sizeof err) < 0 || outfile_dataset(&o, "logits", 2, shape, logits, err, sizeof err) < 0 ||
            (src.has_labels && all_labelled && outfile_ints(&o, "labels", n, labels, err, sizeof err) < 0) ||
            outfile_attr_str(&o, "checkpoint", ckpt, err, sizeof err) < 0 ||
            outfile_attr_str(&o, "model", m.cfg.name, err, sizeof err) < 0 || outfile_commit(&o, err, sizeof err) < 0) {
            fprintf(stderr, "mixtape predict: %s\n", err);
            goto out;
        }
    }
    if ((tc.f && out_text_commit(&tc, out_csv, err, sizeof err) < 0) || (tj.f && out_text_commit(&tj, out_jsonl, err, sizeof err) < 0)) { fprintf(stderr, "mixtape predict: %s\n", err); goto out; }
    printf("predicted %ld samples of %s (%ld skipped), top-%d of %d classes (%s)%s%s%s%s%s%s\n", n, src.desc,
           src.skipped, k, K, file_names ? "names from --classes" : names ? "names from the checkpoint" : cls ? "names from the data" : "class indices",
           out ? "; wrote " : "", out ? out : "", out_csv ? "; wrote " : "", out_csv ? out_csv : "",
           out_jsonl ? "; wrote " : "", out_jsonl ? out_jsonl : "");
    if (nonfinite) {
        fprintf(stderr, "mixtape predict: %ld samples have non-finite logits (probabilities written as nan / null)\n", nonfinite);
        goto out;
    }
    rc = 0;
out:
    if (o.f >= 0) outfile_abort(&o);
    out_text_abort(&tc);
    out_text_abort(&tj);
    if (keys) for (long i = 0; i < bs; i++) free(keys[i]);
    free(keys);
    free(prob);
    free(idx);
    free(logits);
    free(labels);
    batch_free(&b);
    class_names_free(names, nnames);
    classes_free(file_names, nfile_names);
    if (have_ctx) mt_ctx_free(&c);
    if (have_src) pred_source_close(&src);
    if (have_model) model_free(&m);
    free(info);
    free(files);
    args_free(&a);
    return rc;
}
