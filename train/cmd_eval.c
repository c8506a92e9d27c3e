/* mixtape eval: top-1, top-5, loss and per-class accuracy of a checkpoint on a
 * dataset, with the eval transform stored in the checkpoint (mean/std) unless
 * flags override it. */
#include "data/source_util.h"
#include "train/class_names.h"
#include "train/commands.h"
#include "train/data_check.h"
#include "train/dataset_json.h"
#include "train/data_flags.h"
#include "train/dist.h"
#include "train/evaluate.h"
#include "train/model_io.h"
#include "train/outfile.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f) {
    fprintf(f, "usage: mixtape eval --checkpoint C.h5 --data S [-b 256] [-j W] [--ema] [--precision fp32|bf16]\n"
               "                   [--confusion out.csv]\n"
               "Prints top-1 / top-5 / loss and per-class accuracy. The eval transform uses the\n"
               "checkpoint's mean/std/interpolation/crop-pct unless given. The data must match the\n"
               "checkpoint's classes, channels and size (--data-convert: allow grey<->RGB and upsampling).\n");
}

static int next_batch(void *ud, Batch *b) { return loader_next((Loader *)ud, b); }

static int eval_main(int argc, char **argv);

/* Under mpirun each rank evaluates a disjoint share of the samples and the counts are
 * added exactly, so the figures equal one process's to the last digit. */
int cmd_eval(int argc, char **argv) {
    dist_init(NULL, NULL);
    int rc = eval_main(argc, argv);
    dist_finalize();
    return rc;
}

static int eval_main(int argc, char **argv) {
    Args a;
    args_init(&a, "eval", argc, argv);
    const char *ck = args_string(&a, "--checkpoint", NULL, NULL, "checkpoint C.h5 (required)");
    const char *data = args_string(&a, "--data", NULL, NULL, "evaluation data, any train/val source (required)");
    int B = (int)args_int_range(&a, "--batch-size", "-b", 256, 1, 1 << 20, "samples per batch");
    int workers = (int)args_int_range(&a, "--workers", "-j", 0, 0, 1024, "decode threads (0: automatic)");
    int use_ema = args_bool(&a, "--ema", 0, "evaluate the /ema weights");
    const char *confusion = args_string(&a, "--confusion", NULL, NULL, "write the confusion matrix as CSV");
    threads_from_args(&a);
    int precision = precision_from_args(&a);
    LoaderConfig lc;
    loader_config_default(&lc, 0);
    char err[2048];
    int given[4] = {args_has(&a, "--mean", NULL), args_has(&a, "--std", NULL), args_has(&a, "--interpolation", NULL),
                    args_has(&a, "--crop-pct", NULL)};
    int convert = args_bool(&a, "--data-convert", 0, "allow grey<->RGB conversion and upsampling of the data");
    if (data_flags_parse(&a, &lc.aug, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); args_free(&a); return 2; }
    int ae = args_end(&a, help);
    if (ae) { args_free(&a); return ae == 1 ? 0 : 2; }
    if (!ck || !data) { fprintf(stderr, "mixtape eval: --checkpoint and --data are required\n"); args_free(&a); return 2; }
    if (confusion && (out_check_not_input("--confusion", confusion, "--checkpoint", ck, err, sizeof err) != 0 ||
                      out_check_not_input("--confusion", confusion, "--data", data, err, sizeof err) != 0)) {
        fprintf(stderr, "mixtape eval: %s\n", err);
        args_free(&a);
        return 2;
    }

    Model m;
    CkptInfo *info = calloc(1, sizeof *info);
    if (model_from_checkpoint(ck, &m, info, err, sizeof err) != 0) {
        fprintf(stderr, "mixtape eval: %s\n", err);
        free(info);
        args_free(&a);
        return 2;
    }
    if (use_ema) {
        /* strict: every parameter with its exact shape, never a silent fall-back to /model */
        int found = 0, r = ckpt_load_group(ck, &m.params, "ema", &found, err, sizeof err);
        if (r != 0 || !found) {
            if (r == 0) fprintf(stderr, "mixtape eval: --ema: checkpoint %s has no /ema group\n", ck);
            else fprintf(stderr, "mixtape eval: --ema: %s\n", err);
            model_free(&m);
            free(info);
            args_free(&a);
            return 2;
        }
    }
    /* The checkpoint's normalisation and eval resize unless overridden; mean/std neither gives:
     * the data's statistics (dataset.json), else ImageNet's. */
    char nbuf[1300];
    if (norm_from_data_ckpt(data, info, given, m.cfg.in_chans, &lc.aug, nbuf, sizeof nbuf, dist_is_root(), err,
                            sizeof err) != 0) {
        fprintf(stderr, "mixtape eval: --data: %s (fix or remove it, or give --mean and --std)\n", err);
        free(info);
        model_free(&m);
        args_free(&a);
        return 2;
    }
    data_flags_permute_patch(&lc.aug.permute, &m.cfg);
    if (aug_from_checkpoint(info, ck, &lc.aug, given, m.cfg.in_chans, dist_is_root() ? stdout : NULL, err, sizeof err) != 0) {
        fprintf(stderr, "mixtape eval: %s\n", err);
        free(info);
        model_free(&m);
        args_free(&a);
        return 2;
    }
    free(info);
    lc.spec = data;
    lc.batch_size = B;
    lc.img_size = m.cfg.img_size;
    lc.in_chans = m.cfg.in_chans;
    lc.workers = workers;
    lc.num_classes = m.cfg.num_classes;
    lc.rank = dist_rank();
    lc.world = dist_world();
    int root = dist_is_root();
    Loader *L = loader_open(&lc, err, sizeof err);
    if (!L) fprintf(stderr, "mixtape eval: --data: %s\n", err);
    if (dist_any_max(!L)) { if (L) loader_close(L); model_free(&m); args_free(&a); return 2; }
    {   /* the data against the checkpoint's model: classes, channels, size (every rank stops together) */
        char what[1100], mdesc[1200];
        snprintf(what, sizeof what, "--data %s", data);
        snprintf(mdesc, sizeof mdesc, "checkpoint %s (%s)", ck, m.cfg.name);
        DataFacts df;
        int bad = data_facts(data, loader_kind(L), lc.rank, lc.world, &df, err, sizeof err) != 0 ||
                  data_check_model(&df, what, mdesc, &m.cfg, convert, root ? stdout : NULL, err, sizeof err) != 0;
        if (bad && root) fprintf(stderr, "mixtape eval: %s\n", err);
        if (dist_any_max(bad)) { loader_close(L); model_free(&m); args_free(&a); return 2; }
    }
    Ctx c;
    mt_ctx_init(&c, (size_t)64 << 20);
    c.precision = precision;
    EvalResult r = {0};
    int rc = 0, failed = 0;
    if (loader_start_epoch(L, 0) != 0 ||
        evaluate(&m, &c, next_batch, L, confusion != NULL, NULL, NULL, &r, err, sizeof err) != 0) {
        fprintf(stderr, "mixtape eval: %s\n", loader_error(L)[0] ? loader_error(L) : err);
        failed = 1;
    }
    long skipped = loader_skipped(L);
    if (dist_any_max(failed)) {   /* every rank stops together, before the reduction */
        rc = 1;
    } else {
        eval_result_reduce(&r);
        dist_allreduce_sum_long(&skipped, 1);
    }
    if (!rc && r.n == 0) {
        /* Nothing was evaluated: no accuracy to print, not even 0%. */
        if (root)
            fprintf(stderr, "mixtape eval: --data %s: no usable samples to evaluate (%ld skipped: unreadable or "
                            "without a class label)\n", data, skipped);
        rc = 1;
    }
    if (!rc && !root && eval_result_check(&r, err, sizeof err) != 0) rc = 1; /* the root says why */
    if (!rc && root) {
        const char *const *names = loader_class_names(L);
        int nnames = loader_num_class_names(L); /* classes.txt may list fewer names than the model has classes */
        char en[64];
        /* the data's names, else the checkpoint's class_names attribute */
        char **ck_names = NULL;
        int n_ck = 0;
        if (!names && class_names_read(ck, r.num_classes, &ck_names, &n_ck, err, sizeof err) == 0 && n_ck) {
            names = (const char *const *)ck_names;
            nnames = n_ck;
        }
        printf("%s on %s: %ld samples  top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (skipped %ld)\n", ck, data, r.n,
               100 * r.top1, 100 * r.top5, r.loss, skipped);
        if (r.nonfinite) printf("non-finite logits (NaN/Inf): %ld of %ld samples, counted as wrong\n", r.nonfinite, r.n);
        printf("per-class accuracy:\n");
        for (int k = 0; k < r.num_classes; k++)
            if (r.class_count[k])
                printf("  %3d %-20s %6.2f%%  (%ld)\n", k, names && k < nnames ? src_escape(names[k], en, sizeof en) : "",
                       100.0 * r.class_correct[k] / r.class_count[k],
                       r.class_count[k]);
        if (eval_result_check(&r, err, sizeof err) != 0) {
            fprintf(stderr, "mixtape eval: %s on %s: %s%s\n", ck, data, err,
                    confusion ? "; --confusion not written" : "");
            rc = 1;
        } else if (confusion) {
            OutText t;
            if (out_text_begin(&t) != 0) { fprintf(stderr, "mixtape eval: --confusion %s: out of memory\n", confusion); rc = 1; }
            else {
                FILE *f = t.f;
                fprintf(f, "truth\\pred");
                for (int k = 0; k < r.num_classes; k++) fprintf(f, ",%d", k);
                fprintf(f, "\n");
                for (int i = 0; i < r.num_classes; i++) {
                    fprintf(f, "%d", i);
                    for (int k = 0; k < r.num_classes; k++) fprintf(f, ",%ld", r.confusion[(size_t)i * r.num_classes + k]);
                    fprintf(f, "\n");
                }
                out_clean_stale_path(confusion, stderr);
                if (out_text_commit(&t, confusion, err, sizeof err) != 0) {
                    fprintf(stderr, "mixtape eval: --confusion %s\n", err);
                    rc = 1;
                } else printf("confusion matrix written to %s\n", confusion);
            }
        }
        class_names_free(ck_names, n_ck);
    }
    eval_result_free(&r);
    loader_close(L);
    mt_ctx_free(&c);
    model_free(&m);
    args_free(&a);
    return rc;
}
