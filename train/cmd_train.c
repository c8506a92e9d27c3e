/* mixtape train: the training loop, top to bottom as the paper's algorithm
 * reads — for each epoch, for each batch: forward, loss, backward (accumulate),
 * [allreduce], clip, lr from the schedule, optimizer step, EMA; then validate
 * and checkpoint. */
#include "core/threads.h"
#include "optim/clip.h"
#include "optim/ema.h"
#include "data/source_util.h"
#include "train/commands.h"
#include "train/data_check.h"
#include "train/dataset_json.h"
#include "train/dist.h"
#include "train/dist_buckets.h"
#include "train/evaluate.h"
#include "train/metrics.h"
#include "train/model_io.h"
#include "train/precision_auto.h"
#include "train/outfile.h"
#include "train/progress.h"
#include "train/resume_args.h"
#include "train/run_dir.h"
#include "train/signals.h"
#include "train/train_ckpt.h"
#include "train/class_names.h"
#include "train/safetensors.h"
#include "train/train_opts.h"
#include "train/version.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct Run {
    TrainOpts o;
    Model m;
    Optimizer opt;
    Ema ema;
    int has_ema;
    Loader *train, *val;
    TrainState st;
    Ctx c;
    MetricsLog log;
    char dir[1024];
    long steps_per_epoch, batches_per_epoch;
    float mean[3], std[3];
    int nchan;
    char interp[16];        /* eval interpolation and crop_pct, recorded in checkpoints */
    float crop_pct;
    int root;
    DistBuckets *db;        /* gradient averaging across ranks (no-op with one) */
    char resume_path[1200];
    char norm_src[1300];    /* where the data's mean/std came from */
    ResumePlan plan;        /* --resume: the run directory and its args.yaml */
    char *class_json;       /* class names saved in checkpoints (JSON list), or NULL */
} Run;

static int is_dir(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

static int save(Run *r, const char *name) {
    if (!r->root) return 0;
    char path[1200], err[1024];
    snprintf(path, sizeof path, "%s/%s", r->dir, name);
    r->st.counter = r->c.counter;
    r->st.class_names = r->class_json;
    r->st.permute = &r->o.train_data.aug.permute;
    struct stat prev;
    int had = stat(path, &prev) == 0;
    if (train_ckpt_save(path, &r->m, &r->opt, r->has_ema ? &r->ema : NULL, &r->st, r->mean, r->std, r->nchan, r->interp,
                        r->crop_pct, err, sizeof err) != 0) {
        fprintf(stderr, "mixtape train: could not write checkpoint %s: %s%s\n", path, err,
                had ? " (the previous one is intact)" : "");
        return -1;
    }
    return 0;
}

/* Parameter counts: exact below 100k (a 645-parameter model is not "0.00M"), else millions. */
static void fmt_count(char *b, size_t n, size_t count) {
    if (count < 100000) snprintf(b, n, "%zu", count);
    else snprintf(b, n, "%.2fM", count / 1e6);
}

/* --keep-last K: keep the newest K epoch checkpoints (epoch-N.h5). */
static void rotate(Run *r, int epoch) {
    if (!r->root || r->o.keep_last <= 0) return;
    char name[64];
    snprintf(name, sizeof name, "epoch-%d.h5", epoch);
    save(r, name);
    int old = epoch - r->o.keep_last;
    if (old >= 1) {
        char path[1200];
        snprintf(path, sizeof path, "%s/epoch-%d.h5", r->dir, old);
        remove(path);
    }
}

static int next_val(void *ud, Batch *b) { return loader_next((Loader *)ud, b); }

/* --eval-metric of a result: top1, top5 (higher is better) or loss (lower is better). */
static double metric_of(const Run *r, const EvalResult *e) {
    if (!strcmp(r->o.eval_metric, "loss")) return e->loss;
    return !strcmp(r->o.eval_metric, "top5") ? e->top5 : e->top1;
}
static int better(const Run *r, double a, double b) { return !strcmp(r->o.eval_metric, "loss") ? a < b : a > b; }
static void format_metric(const Run *r, double v, char *buf, size_t n) {
    if (!strcmp(r->o.eval_metric, "loss")) snprintf(buf, n, "%.4f", v);
    else snprintf(buf, n, "%.2f%%", 100 * v);
}

static void remove_numbered(Run *r, const char *prefix, int epoch) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s-%d.h5", r->dir, prefix, epoch);
    remove(path);
}

/* --checkpoint-hist K: keep checkpoint-<epoch>.h5 of the K best epochs by --eval-metric
 * (timm's CheckpointSaver), best first in st.hist; ties keep the earlier epoch. */
static void update_hist(Run *r, int epoch, double m) {
    TrainState *st = &r->st;
    int K = r->o.checkpoint_hist;
    for (int i = 0; i < st->nhist; i++) /* an epoch re-run after a crash replaces its entry */
        if (st->hist[i].epoch == epoch) {
            memmove(&st->hist[i], &st->hist[i + 1], (size_t)(st->nhist - i - 1) * sizeof st->hist[0]);
            st->nhist--;
            break;
        }
    int pos = st->nhist;
    while (pos > 0 && better(r, m, st->hist[pos - 1].metric)) pos--;
    if (K > 0 && pos < K && st->nhist < TRAIN_HIST_MAX) {
        memmove(&st->hist[pos + 1], &st->hist[pos], (size_t)(st->nhist - pos) * sizeof st->hist[0]);
        st->hist[pos].epoch = epoch;
        st->hist[pos].metric = m;
        st->nhist++;
    } else pos = -1;
    while (st->nhist > K) { /* also when K was lowered on resume */
        st->nhist--;
        if (r->root) remove_numbered(r, "checkpoint", st->hist[st->nhist].epoch);
    }
    if (pos >= 0) {
        char name[64];
        snprintf(name, sizeof name, "checkpoint-%d.h5", epoch);
        save(r, name);
    }
}

/* Evaluates the model's current weights on this rank's share and combines over ranks.
 * 0, or -1 with the message printed. */
static int eval_all(Run *r, EvalResult *ev, const char *what) {
    char err[1024];
    int bad = 0;
    if (loader_start_epoch(r->val, 0) != 0 ||
        evaluate(&r->m, &r->c, next_val, r->val, 0, NULL, NULL, ev, err, sizeof err) != 0) {
        fprintf(stderr, "mixtape train: %s validation failed: %s\n", what,
                loader_error(r->val)[0] ? loader_error(r->val) : err);
        bad = 1;
    }
    if (dist_any_max(bad)) {
        if (!bad && r->root) fprintf(stderr, "mixtape train: validation failed on another rank (its message is above)\n");
        if (!bad) eval_result_free(ev);
        return -1;
    }
    eval_result_reduce(ev); /* each rank evaluated its share of the samples: add them up exactly */
    return 0;
}

/* End of an epoch: validation of the model and of its EMA (when on), best.h5 and
 * --checkpoint-hist judged on the EMA weights when on (as timm), a metrics row, the
 * epoch line and a summary.csv row. 0, or -1 (stop; the message is printed). */
static int validate(Run *r, double train_loss, double epoch_time, double img_s) {
    EvalResult ev, eve;
    memset(&ev, 0, sizeof ev);
    memset(&eve, 0, sizeof eve);
    int have = r->val != NULL;
    if (have) {
        if (eval_all(r, &ev, "model") != 0) return -1;
        if (r->has_ema) {
            ema_swap(&r->ema);
            int rc = eval_all(r, &eve, "EMA");
            ema_swap(&r->ema);
            if (rc != 0) { eval_result_free(&ev); return -1; }
        }
    }
    int epoch = r->st.epoch; /* completed epochs: this epoch's 1-based number */
    const EvalResult *judged = r->has_ema ? &eve : &ev;
    const char *who = r->has_ema ? "EMA" : "model";
    /* Zero samples or a NaN loss is no accuracy: never a best, and the run stops. */
    char err[1024];
    int honest = !have || (eval_result_check(&ev, err, sizeof err) == 0 &&
                           (!r->has_ema || eval_result_check(&eve, err, sizeof err) == 0));
    int is_best = 0;
    if (have && honest) {
        double m = metric_of(r, judged);
        if (r->st.best_epoch < 0 || better(r, m, r->st.best_metric)) {
            r->st.best_metric = m;
            r->st.best_top1 = judged->top1;
            r->st.best_epoch = epoch;
            is_best = 1;
        }
        update_hist(r, epoch, m);
        if (is_best) save(r, "best.h5");
    }
    int rc = 0;
    if (r->root) {
        metrics_begin(&r->log);
        metrics_int(&r->log, "epoch", epoch);
        metrics_int(&r->log, "step", r->st.step);
        metrics_num(&r->log, "lr", r->opt.lr);
        metrics_num(&r->log, "loss", train_loss);
        if (have) {
            metrics_num(&r->log, "val_loss", ev.loss);
            metrics_num(&r->log, "val_top1", ev.top1);
            metrics_num(&r->log, "val_top5", ev.top5);
            if (r->has_ema) {
                metrics_num(&r->log, "val_loss_ema", eve.loss);
                metrics_num(&r->log, "val_top1_ema", eve.top1);
                metrics_num(&r->log, "val_top5_ema", eve.top5);
            }
            metrics_int(&r->log, "best_epoch", r->st.best_epoch);
        }
        metrics_num(&r->log, "img_per_s", img_s);
        metrics_num(&r->log, "epoch_time", epoch_time);
        metrics_num(&r->log, "data_wait", epoch_time > 0 ? loader_wait_seconds(r->train) / epoch_time : 0);
        metrics_int(&r->log, "skipped", loader_skipped(r->train));
        if (have && ev.nonfinite) metrics_int(&r->log, "val_nonfinite", ev.nonfinite);
        metrics_end(&r->log);
        char line[768];
        int k = snprintf(line, sizeof line, "epoch %d/%d  train loss %.4f", epoch, r->o.epochs, train_loss);
        if (have)
            k += snprintf(line + k, sizeof line - (size_t)k, "  val loss %.4f  top-1 %.2f%%  top-5 %.2f%%", ev.loss,
                          100 * ev.top1, 100 * ev.top5);
        if (have && r->has_ema)
            k += snprintf(line + k, sizeof line - (size_t)k, "  | EMA loss %.4f  top-1 %.2f%%  top-5 %.2f%%", eve.loss,
                          100 * eve.top1, 100 * eve.top5);
        if (have) {
            char mv[32];
            format_metric(r, r->st.best_metric, mv, sizeof mv);
            k += snprintf(line + k, sizeof line - (size_t)k, "  | best by %s %s: %s (epoch %d)%s", who,
                          r->o.eval_metric, mv, r->st.best_epoch, is_best ? " *" : "");
        }
        snprintf(line + k, sizeof line - (size_t)k, "  %.0f img/s", img_s);
        printf("%s\n", line);
        fflush(stdout);
        SummaryRow row = {epoch, train_loss, r->opt.lr, have, have ? judged->loss : 0, have ? judged->top1 : 0,
                          have ? judged->top5 : 0};
        char serr[1024];
        if (rundir_summary(r->dir, &row, serr, sizeof serr) != 0) {
            fprintf(stderr, "mixtape train: %s (stopping; last.h5 is the last good state)\n", serr);
            rc = -1;
        }
    }
    if (have) eval_result_free(&ev);
    if (r->has_ema && have) eval_result_free(&eve);
    if (!honest && r->root)
        fprintf(stderr, "mixtape train: validation after epoch %d on --val %s: %s; stopping. The last checkpoint in %s "
                        "is the last good state.\n", epoch, r->o.val_spec, err, r->dir);
    if (r->root && metrics_failed(&r->log)) honest = 0; /* its message is above */
    return dist_any_max(!honest || rc != 0) ? -1 : 0;
}

/* The run settings the checkpoint records against the flags of this invocation: a
 * resume never drops the EMA or changes how it or best.h5 are computed. 0, or -1
 * with the message printed. Older checkpoints (no "ema" key) are not checked. */
static int check_resumed_state(Run *r, const TrainState *ck) {
    const TrainOpts *o = &r->o;
    const char *path = r->resume_path;
    if (!ck->eval_metric[0]) return 0; /* a checkpoint written before these keys existed */
    if (strcmp(ck->eval_metric, o->eval_metric)) {
        fprintf(stderr, "mixtape train: --resume %s: the run judges best.h5 by --eval-metric %s, not %s\n", path,
                ck->eval_metric, o->eval_metric);
        return -1;
    }
    if (ck->ema && !o->model_ema) {
        fprintf(stderr, "mixtape train: --resume %s: the run keeps an EMA of the weights (/ema); resuming without "
                        "--model-ema would drop it\n", path);
        return -1;
    }
    if (!ck->ema && o->model_ema) {
        fprintf(stderr, "mixtape train: --resume %s: the run has no EMA; --model-ema cannot start one mid-run "
                        "(start a new run with --initial-checkpoint)\n", path);
        return -1;
    }
    if (ck->ema && (ck->ema_warmup != o->model_ema_warmup || (float)ck->ema_decay != o->model_ema_decay)) {
        fprintf(stderr, "mixtape train: --resume %s: the run's EMA has --model-ema-decay %.9g%s; got %.9g%s\n", path,
                ck->ema_decay, ck->ema_warmup ? " --model-ema-warmup" : "", (double)o->model_ema_decay,
                o->model_ema_warmup ? " --model-ema-warmup" : " (no --model-ema-warmup)");
        return -1;
    }
    return 0;
}

/* Setup, part 1 (local to this rank): model and data.
 * Returns 0, or the exit code to stop with. */
static int setup_model_data(Run *r, Args *a) {
    char err[2048];
    TrainOpts *o = &r->o;
    if (train_opts_parse(a, o, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 2; }
    if (args_finish(a) != 0) { fprintf(stderr, "%s\n", a->err); return 2; }
    mt_set_threads(o->threads);
    r->root = dist_is_root();
    int rc = resume_check(a, &r->plan, r->root);
    if (rc) return rc;

    /* The run directory and the checkpoint to resume from. */
    char *resume_path = r->resume_path;
    const size_t resume_path_n = sizeof r->resume_path;
    if (o->resume) {
        if (r->plan.cmd_experiment) {
            fprintf(stderr, "mixtape train: --resume continues the run in %s; --experiment names a new run\n",
                    r->plan.dir);
            return 2;
        }
        if (is_dir(o->resume)) snprintf(resume_path, resume_path_n, "%s/last.h5", o->resume);
        else snprintf(resume_path, resume_path_n, "%s", o->resume);
        /* the run's directory, unless --output on the command line puts the continuation elsewhere
         * (an --output read back from args.yaml names where the run was, not where it is) */
        snprintf(r->dir, sizeof r->dir, "%s", r->plan.cmd_output ? o->output : r->plan.dir);
    } else if (o->experiment) {
        if (rundir_experiment(o->output ? o->output : "./output/train", o->experiment, r->dir, sizeof r->dir, err,
                              sizeof err) != 0) {
            fprintf(stderr, "mixtape train: %s\n", err);
            return 2;
        }
    } else snprintf(r->dir, sizeof r->dir, "%s", o->output);

    /* Model: from the checkpoint's config when resuming, else from flags. */
    ModelConfig cfg = o->model;
    if (o->resume) {
        CkptInfo *info = calloc(1, sizeof *info);
        if (ckpt_read_info(resume_path, info, err, sizeof err) != 0) {
            fprintf(stderr, "mixtape train: --resume: %s\n", err);
            free(info);
            return 2;
        }
        char e2[512];
        if (model_config_from_json(info->config, &cfg, e2, sizeof e2) != 0) {
            fprintf(stderr, "mixtape train: --resume %s: bad config attribute: %s\n", resume_path, e2);
            free(info);
            return 2;
        }
        if (o->model_given && strcmp(o->model.name, cfg.name) != 0) {
            fprintf(stderr, "mixtape train: --resume %s is a checkpoint of '%s', not of --model '%s'\n", resume_path,
                    cfg.name, o->model.name);
            free(info);
            return 2;
        }
        free(info);
        if (!o->train_spec) {
            fprintf(stderr, "mixtape train: --resume %s: no %s/args.yaml to read the run's flags from; give the same "
                            "flags and --train (and --val) as the run it continues\n", resume_path, r->plan.dir);
            return 2;
        }
    }
    if (o->precision_auto && (rc = precision_auto_train(a, &cfg, o->batch_size, o->grad_checkpointing,
                                                        o->resume != NULL, r->root, &o->precision)))
        return rc; /* timed on a copy, before this run's state exists */
    if (model_build(&r->m, &cfg, err, sizeof err) != 0) { fprintf(stderr, "mixtape train: %s\n", err); return 2; }
    model_init(&r->m, o->seed);
    if (o->initial_checkpoint && !o->resume) {
        /* timm's fine-tuning load (mixtape checkpoint or .safetensors): matching keys, stem /
         * pos_embed adapted, the rest re-initialised; the checkpoint's data settings unless flags give them */
        FinetuneReport rep;
        if (model_load_finetune(o->initial_checkpoint, &r->m, &rep, err, sizeof err) != 0) {
            fprintf(stderr, "mixtape train: --initial-checkpoint: %s\n", err);
            return 2;
        }
        if (r->root) finetune_report_print(&rep, o->initial_checkpoint, stdout);
        finetune_report_free(&rep);
    }
    {   /* mean/std/interpolation/crop-pct: flags, else the checkpoint continued or fine-tuned from,
         * else (mean/std) the training data's statistics (dataset.json), else the defaults */
        const char *from = o->resume ? resume_path : o->initial_checkpoint;
        if (from && !o->resume && st_probe(from)) from = NULL;   /* timm weights record no data settings */
        const char *flag = o->resume ? "--resume" : "--initial-checkpoint";
        CkptInfo *info = NULL;
        if (from) {
            info = calloc(1, sizeof *info);
            if (!info || ckpt_read_info(from, info, err, sizeof err) != 0) {
                fprintf(stderr, "mixtape train: %s: %s\n", flag, info ? err : "out of memory");
                free(info);
                return 2;
            }
        }
        int given[4];   /* resuming: the flags come back from args.yaml, the checkpoint has the values used */
        for (int k = 0; k < 4; k++) given[k] = o->data_given[k] ? (o->resume ? 2 : 1) : 0;
        if (norm_from_data_ckpt(o->train_spec, info, given, cfg.in_chans, &o->train_data.aug, r->norm_src,
                                sizeof r->norm_src, r->root, err, sizeof err) != 0) {
            fprintf(stderr, "mixtape train: --train: %s (fix or remove it, or give --mean and --std)\n", err);
            free(info);
            return 2;
        }
        int rc = aug_from_checkpoint(info, from, &o->train_data.aug, given, cfg.in_chans,
                                     r->root ? stdout : NULL, err, sizeof err);
        free(info);
        if (rc != 0) { fprintf(stderr, "mixtape train: %s: %s\n", flag, err); return 2; }
    }
    /* Data. */
    LoaderConfig *td = &o->train_data, *vd = &o->val_data;
    td->spec = o->train_spec;
    td->batch_size = o->batch_size;
    td->img_size = cfg.img_size;
    td->in_chans = cfg.in_chans;
    td->workers = o->workers;
    td->seed = o->seed;
    td->rank = dist_rank();
    td->world = dist_world();
    td->num_classes = cfg.num_classes;
    r->train = loader_open(td, err, sizeof err);
    if (!r->train) { fprintf(stderr, "mixtape train: --train: %s\n", err); return 2; }
    if (o->val_spec) {
        *vd = *td;
        vd->aug = o->train_data.aug;
        vd->spec = o->val_spec;
        vd->train = 0;
        vd->shuffle = 0;
        vd->shuffle_buffer = 0;
        vd->drop_last = 0;
        r->val = loader_open(vd, err, sizeof err);
        if (!r->val) { fprintf(stderr, "mixtape train: --val: %s\n", err); return 2; }
    }
    /* The data against the model: classes, channels, size (cheap probes, before any step). */
    char model_desc[160];
    snprintf(model_desc, sizeof model_desc, "the model %s", cfg.name);
    for (int k = 0; k < 2; k++) {
        Loader *L = k ? r->val : r->train;
        const char *spec = k ? o->val_spec : o->train_spec;
        if (!L) continue;
        char what[1100];
        snprintf(what, sizeof what, "%s %s", k ? "--val" : "--train", spec);
        DataFacts df;
        if (data_facts(spec, loader_kind(L), dist_rank(), dist_world(), &df, err, sizeof err) != 0 ||
            data_check_model(&df, what, model_desc, &cfg, o->data_convert, r->root ? stdout : NULL, err,
                             sizeof err) != 0) {
            fprintf(stderr, "mixtape train: %s\n", err);
            return 2;
        }
    }
    snprintf(r->interp, sizeof r->interp, "%s", aug_interp_name(td->aug.interpolation));
    r->crop_pct = td->aug.crop_pct;
    r->nchan = cfg.in_chans;
    /* class names travel in the checkpoint when they name every class of the model */
    if (loader_class_names(r->train) && loader_num_class_names(r->train) == cfg.num_classes) {
        r->class_json = class_names_to_json(loader_class_names(r->train), cfg.num_classes, err, sizeof err);
        if (!r->class_json && r->root) fprintf(stderr, "mixtape train: warning: class names not stored: %s\n", err);
    }
    for (int ch = 0; ch < r->nchan && ch < 3; ch++) {
        r->mean[ch] = aug_mean(&td->aug, r->nchan, ch);
        r->std[ch] = aug_std(&td->aug, r->nchan, ch);
    }
    r->batches_per_epoch = loader_epoch_batches(r->train);
    if (r->batches_per_epoch <= 0) {
        fprintf(stderr, "mixtape train: --train %s gives no full batch of %d samples per epoch\n", o->train_spec,
                o->batch_size);
        return 2;
    }
    r->steps_per_epoch = (r->batches_per_epoch + o->grad_accum - 1) / o->grad_accum;
    return 0;
}

/* Warnings for settings that defeat themselves on a run this short. */
static void warn_short_run(const Run *r) {
    const SchedConfig *s = &r->o.sched;
    if (s->warmup_steps > 0 && s->warmup_steps >= s->total_steps)
        fprintf(stderr, "mixtape train: warning: the learning-rate warmup (%ld steps, --warmup-epochs %g) is as long "
                        "as the run or longer (%ld steps, --epochs %d): the learning rate never reaches --lr; lower "
                        "--warmup-epochs (or --warmup-steps)\n", s->warmup_steps, s->warmup_epochs, s->total_steps,
                r->o.epochs);
    if (r->has_ema && !r->o.model_ema_warmup && r->o.model_ema_decay < 1 &&
        1.0 / (1.0 - r->o.model_ema_decay) > 0.5 * (double)s->total_steps)
        fprintf(stderr, "mixtape train: warning: --model-ema-decay %g averages over ~%.0f steps, more than half the "
                        "run (%ld steps): the EMA weights keep much of the initialisation; add --model-ema-warmup\n",
                r->o.model_ema_decay, 1.0 / (1.0 - r->o.model_ema_decay), s->total_steps);
}

/* The run directory is another run's? Refused unless this continues it (--resume into
 * its own directory) or --overwrite replaces it. 0, or the exit code. */
static int prepare_dir(Run *r) {
    char names[256], err[1200];
    rundir_run_files(r->dir, names, sizeof names);
    if (!names[0]) return 0;
    if (r->o.resume && is_dir(r->plan.dir) && out_same_file(r->dir, r->plan.dir)) return 0;
    if (!r->o.overwrite) {
        fprintf(stderr, "mixtape train: %s already holds a run (%s); continue it with `mixtape train --resume %s`, "
                        "or replace it with --overwrite\n", r->dir, names, r->dir);
        return 2;
    }
    const char *inputs[2] = {r->o.initial_checkpoint, r->o.resume ? r->resume_path : NULL};
    for (int i = 0; i < 2; i++) {
        if (!inputs[i]) continue;
        if (rundir_clear(r->dir, inputs[i], 1, err, sizeof err) != 0) { fprintf(stderr, "mixtape train: %s\n", err); return 2; }
    }
    if (rundir_clear(r->dir, NULL, 0, err, sizeof err) != 0) { fprintf(stderr, "mixtape train: %s\n", err); return 1; }
    printf("--overwrite: removed the previous run's files (%s) from %s\n", names, r->dir);
    return 0;
}

/* Setup, part 2: optimizer, schedule, EMA, resume state, run directory. */
static int setup_optim(Run *r, Args *a) {
    char err[2048];
    TrainOpts *o = &r->o;
    const ModelConfig cfg = r->m.cfg;
    const char *resume_path = r->resume_path;

    /* Optimizer and schedule. */
    float lr = o->lr;
    if (lr < 0) {
        long global = (long)o->batch_size * dist_world() * o->grad_accum;
        lr = lr_from_base(o->lr_base, o->lr_base_size, global, o->lr_base_scale, o->opt.opt, err, sizeof err);
        if (lr < 0) { fprintf(stderr, "mixtape train: %s\n", err); return 2; }
    }
    o->opt.lr = lr;
    if (optim_create(&r->opt, &r->m.params, &o->opt, err, sizeof err) != 0) {
        fprintf(stderr, "mixtape train: %s\n", err);
        return 2;
    }
    o->sched.lr = lr;
    o->sched.steps_per_epoch = r->steps_per_epoch;
    o->sched.epochs = (float)o->epochs;
    if (sched_init(&o->sched, err, sizeof err) != 0) { fprintf(stderr, "mixtape train: %s\n", err); return 2; }
    if (o->model_ema) {
        if (ema_create(&r->ema, &r->m.params, o->model_ema_decay, err, sizeof err) != 0) {
            fprintf(stderr, "mixtape train: %s\n", err);
            return 2;
        }
        r->ema.warmup = o->model_ema_warmup;
        r->has_ema = 1;
    }
    if (r->root) warn_short_run(r);

    memset(&r->st, 0, sizeof r->st);
    r->st.best_top1 = -1;
    r->st.best_epoch = -1;
    r->st.seed = o->seed;
    if (o->resume) {
        if (train_ckpt_load(resume_path, &r->m, &r->opt, r->has_ema ? &r->ema : NULL, r->batches_per_epoch, &r->st, err, sizeof err) != 0) {
            fprintf(stderr, "mixtape train: --resume: %s\n", err);
            return 2;
        }
        if (check_resumed_state(r, &r->st) != 0) return 2; /* the checkpoint's EMA / metric vs the flags */
        if (r->root) {
            printf("resuming %s after step %ld: epoch %d of %d, batch %ld\n", resume_path, r->st.step,
                   r->st.epoch + 1, o->epochs, r->st.batch);
            if (r->st.epoch >= o->epochs)
                printf("the run has completed its %d epochs; give a larger --epochs to train on\n", o->epochs);
        }
    }
    /* recorded in every checkpoint: a resume checks them (check_resumed_state) */
    snprintf(r->st.eval_metric, sizeof r->st.eval_metric, "%s", o->eval_metric);
    r->st.ema = r->has_ema;
    r->st.ema_decay = r->has_ema ? o->model_ema_decay : 0;
    r->st.ema_warmup = r->has_ema && o->model_ema_warmup;

    mt_ctx_init(&r->c, (size_t)1 << 20); /* grows to the step's high-water mark after the first step */
    r->c.seed = r->st.seed * 0x9e3779b97f4a7c15ull + 0x5eed + (uint64_t)dist_rank();
    r->c.counter = r->st.counter;
    r->c.precision = o->precision;
    r->c.grad_checkpointing = o->grad_checkpointing;
    r->c.recycle_activations = 1; /* nothing reads activations after backward here */

    if (r->root) {
        int rc = prepare_dir(r);
        if (rc) return rc;
        if (src_mkdirs(r->dir, err, sizeof err) != 0) {
            fprintf(stderr, "mixtape train: --output %s: %s\n", r->dir, err);
            return 2;
        }
        static const char *const own[] = {"last.h5", "best.h5", "args.yaml", "summary.csv", "metrics.jsonl"};
        out_clean_stale(r->dir, own, 5, 1, stdout); /* temporaries of killed runs (kill -9) */
        if (rundir_write_args(r->dir, a, err, sizeof err) != 0) { fprintf(stderr, "mixtape train: %s\n", err); return 1; }
        if (o->resume && rundir_trim_metrics(r->dir, r->st.step, err, sizeof err) != 0) {
            fprintf(stderr, "mixtape train: %s\n", err);
            return 1;
        }
        if (metrics_open(&r->log, r->dir, o->resume != NULL) != 0) {
            fprintf(stderr, "mixtape train: cannot write %s/metrics.jsonl\n", r->dir);
            return 2;
        }
        char d[2048];
        model_config_describe(&cfg, d, sizeof d);
        char np[32], nt[32];
        size_t all = mt_params_count(&r->m.params), trainable = mt_params_count_trainable(&r->m.params);
        fmt_count(np, sizeof np, all);
        fmt_count(nt, sizeof nt, trainable);
        if (trainable == all) printf("model %s: %s parameters, %.3f GFLOPs/image\n  %s\n", cfg.name, np, model_gflops(&cfg), d);
        else printf("model %s: %s parameters (%s trainable after freezing), %.3f GFLOPs/image\n  %s\n", cfg.name, np, nt,
                    model_gflops(&cfg), d);
        optim_describe(&r->opt, d, sizeof d);
        printf("optimizer %s; lr %.4g, %s schedule over %ld steps (%ld per epoch), warmup %ld steps\n", d, lr,
               o->sched.sched, o->sched.total_steps, r->steps_per_epoch, o->sched.warmup_steps);
        printf("data %s (%s): %ld samples, %d classes, batch %d x %d rank(s) x %d accumulation; %d threads\n",
               o->train_spec, loader_kind(r->train), loader_epoch_size(r->train), loader_num_classes(r->train),
               o->batch_size, dist_world(), o->grad_accum, mt_get_threads());
        printf("writing to %s\n", r->dir);
        fflush(stdout);
    }
    return 0;
}

/* Every rank learns whether any rank failed (exit code rc != 0), before any other
 * collective: the failing rank has printed its message; the others stop too. */
static int agree(Run *r, int rc, const char *when) {
    int any = dist_any_max(rc);
    if (any && !rc && r->root)
        fprintf(stderr, "mixtape train: stopping every rank: another rank failed during %s (its message is above)\n",
                when);
    return rc ? rc : any;
}

/* Builds model, data, optimizer, schedule, EMA; restores a run when resuming; with
 * several ranks, agrees on errors and on the batches per epoch, and sets up the
 * gradient buckets. Returns 0, or the exit code to stop with (the same on every rank). */
/* Several hosts: refuse at start a rank whose binary or training shard list differs from
 * rank 0's (a stale install, a host that sees another directory), naming the host. */
static int same_everywhere(Run *r, int after_data) {
    if (dist_world() <= 1) return 0;
    char err[512], shown[64];
    int rc;
    if (!after_data) {
        uint64_t h = dist_binary_hash();
        snprintf(shown, sizeof shown, "mixtape %s, file hash %016llx", mixtape_version(), (unsigned long long)h);
        rc = dist_check_same("binary", h, shown, err, sizeof err);
    } else {
        int n = 0;
        char *const *list = loader_shard_list(r->train, &n);
        uint64_t h = dist_hash(DIST_HASH0, &n, sizeof n);
        for (int i = 0; i < n; i++) h = dist_hash(h, list[i], strlen(list[i]) + 1);
        snprintf(shown, sizeof shown, "%d shard%s, list hash %016llx", n, n == 1 ? "" : "s", (unsigned long long)h);
        rc = dist_check_same("list of training shards", h, shown, err, sizeof err);
        if (!rc) { /* a host without dataset.json beside its shards would normalise differently */
            uint64_t hn = dist_hash(DIST_HASH0, r->mean, (size_t)r->nchan * sizeof r->mean[0]);
            hn = dist_hash(hn, r->std, (size_t)r->nchan * sizeof r->std[0]);
            snprintf(shown, sizeof shown, "mean %.4g.. std %.4g..", r->mean[0], r->std[0]);
            rc = dist_check_same("normalisation (mean/std)", hn, shown, err, sizeof err);
        }
    }
    if (rc && dist_is_root()) fprintf(stderr, "mixtape train: %s\n", err);
    return rc ? 2 : 0;
}

static int setup(Run *r, Args *a) {
    int rc = same_everywhere(r, 0);
    if (rc) return rc;
    rc = agree(r, setup_model_data(r, a), "setup");
    if (rc) return rc;
    if ((rc = same_everywhere(r, 1))) return rc;
    if (dist_world() > 1) {
        /* Uneven shards: every rank stops each epoch at the smallest rank's batch count,
         * else the ranks with more data would wait in an allreduce nobody else joins. */
        long mine = r->batches_per_epoch, lo = dist_all_min_long(mine), hi = -dist_all_min_long(-mine);
        if (lo != hi && r->root)
            printf("ranks have %ld..%ld batches per epoch (uneven shards); every rank stops each epoch after %ld\n", lo,
                   hi, lo);
        r->batches_per_epoch = lo;
        r->steps_per_epoch = (lo + r->o.grad_accum - 1) / r->o.grad_accum;
    }
    rc = agree(r, setup_optim(r, a), "setup");
    if (rc) return rc;
    char err[256];
    r->db = dist_buckets_create(&r->m.params, (long)(r->o.bucket_mb * 1048576.0), err, sizeof err);
    if (!r->db) fprintf(stderr, "mixtape train: %s\n", err);
    return agree(r, r->db ? 0 : 2, "setup");
}

static void log_interval(Run *r, double loss, double ips, double wait_frac) {
    if (!r->root) return;
    metrics_begin(&r->log);
    metrics_int(&r->log, "epoch", r->st.epoch + 1); /* the epoch in progress, 1-based like the validation rows */
    metrics_int(&r->log, "step", r->st.step);
    metrics_num(&r->log, "lr", r->opt.lr);
    metrics_num(&r->log, "loss", loss);
    metrics_num(&r->log, "img_per_s", ips);
    metrics_num(&r->log, "data_wait", wait_frac);
    metrics_int(&r->log, "skipped", loader_skipped(r->train));
    metrics_end(&r->log);
}

/* Everything after a finished backward of the last micro-batch (whose gradients the
 * buckets have already averaged over ranks). */
static void optimizer_step(Run *r) {
    ParamList *p = &r->m.params;
    if (r->o.clip_grad > 0) {
        if (!strcmp(r->o.clip_mode, "value")) clip_grad_value(p, r->o.clip_grad);
        else clip_grad_norm(p, r->o.clip_grad);
    }
    optim_set_lr(&r->opt, sched_lr(&r->o.sched, r->st.step));
    optim_step(&r->opt);
    optim_zero_grad(&r->opt);
    r->st.step++;
    if (r->has_ema) ema_update(&r->ema, r->st.step);
    dist_set_phase(r->st.step);   /* for the lost-rank watchdog's message */
}

/* After last.h5 is written on SIGINT/SIGTERM (sig > 0) or --max-steps (sig < 0): how to
 * continue, and the exit code. */
static int stop_message(Run *r, int sig) {
    if (sig > 0) {
        if (r->root)
            fprintf(stderr, "mixtape train: interrupted at step %ld; resume with:\n  mixtape train --resume %s\n",
                    r->st.step, r->dir);
        return sig == 15 ? 143 : 130;
    }
    if (r->root)
        printf("stopped after --max-steps %ld; continue with: mixtape train --resume %s\n", r->o.max_steps, r->dir);
    return 0;
}

static int train_loop(Run *r) {
    TrainOpts *o = &r->o;
    int stopping = 0;
    for (int epoch = r->st.epoch; epoch < o->epochs; epoch++) {
        r->st.epoch = epoch;
        int bad = loader_start_epoch_at(r->train, epoch, r->st.batch) != 0;
        if (bad) fprintf(stderr, "mixtape train: %s\n", loader_error(r->train));
        if (agree(r, bad, "the start of the epoch")) return 1;
        Progress pr;
        if (r->root) progress_start(&pr, stdout, epoch, o->epochs, r->steps_per_epoch, o->log_interval);
        double t0 = now_seconds(), wait0 = loader_wait_seconds(r->train), tlog = t0, wait_log = wait0;
        /* the loss sums of an epoch resumed mid-way come from the checkpoint, so that its
         * metrics rows and summary.csv row are those of the uninterrupted run */
        double loss_sum = r->st.batch ? r->st.loss_sum : 0, loss_log = r->st.batch ? r->st.log_sum : 0;
        long nb = r->st.batch ? r->st.loss_n : 0, nlog = r->st.batch ? r->st.log_n : 0, imgs = 0, imgs_log = 0;
        int micro = 0;
        Batch b;
        /* At most the (global) batches per epoch; all ranks go on only together. */
        while (r->st.batch < r->batches_per_epoch) {
            int got = loader_next(r->train, &b);
            int state = dist_any_max(got == 1 ? 0 : got == 0 ? 1 : 2);
            if (state == 2) {
                if (got < 0) fprintf(stderr, "mixtape train: %s\n", loader_error(r->train));
                else if (r->root) fprintf(stderr, "mixtape train: stopping: the data loader failed on another rank\n");
                return 1;
            }
            if (state == 1) {
                if (dist_world() > 1 && r->root)
                    fprintf(stderr, "mixtape train: warning: a rank ran out of samples at batch %ld of epoch %d "
                                    "(skipped samples); every rank ends the epoch there\n", r->st.batch, epoch);
                break;
            }
            mt_ctx_reset(&r->c);
            r->c.training = 1;
            int shape[4] = {b.n, b.c, b.h, b.w};
            Tensor *x = mt_wrap(&r->c, b.images, 4, shape);
            Tensor *logits = model_forward(&r->c, &r->m, x);
            Tensor *loss = mt_cross_entropy(&r->c, logits, b.soft ? NULL : b.labels, b.soft, b.soft ? 0 : o->smoothing);
            /* The backward that completes a step averages the gradients over ranks in
             * buckets, started while the sweep runs (no-op with one rank). */
            int closing = micro + 1 >= o->grad_accum || r->st.batch + 1 == r->batches_per_epoch;
            if (closing) dist_buckets_begin(r->db, &r->c);
            int brc = loss ? accum_backward(&r->c, loss, o->grad_accum) : -1;
            if (closing) dist_buckets_finish(r->db, &r->c);
            /* One small allreduce: the mean loss over ranks, non-finite and failure flags. */
            double v[3] = {brc == 0 ? loss->data[0] : 0, brc == 0 && !isfinite(loss->data[0]), brc != 0};
            dist_allreduce_sum_d(v, 3);
            if (v[2] > 0) {
                if (brc) fprintf(stderr, "mixtape train: step %ld: %s\n", r->st.step, r->c.err);
                else if (r->root) fprintf(stderr, "mixtape train: step %ld failed on another rank (its message is above)\n",
                                          r->st.step);
                return 1;
            }
            double lv = v[0] / dist_world();
            if (v[1] > 0) {
                if (r->root)
                    fprintf(stderr, "mixtape train: the loss is %s at step %ld (epoch %d, batch %ld); stopping. The "
                                    "last checkpoint in %s is the last good state.\n",
                            isnan(lv) ? "NaN" : "not finite", r->st.step, epoch + 1, r->st.batch, r->dir);
                return 1;
            }
            loss_sum += lv; loss_log += lv;
            nb++; nlog++; imgs += b.n; imgs_log += b.n;
            r->st.batch++;
            micro++;
            int last = r->st.batch == r->batches_per_epoch;
            if (micro < o->grad_accum && !last) continue;
            micro = 0;
            optimizer_step(r);

            double t = now_seconds();
            if (r->root) progress_update(&pr, (r->st.batch + o->grad_accum - 1) / o->grad_accum, loss_sum / nb,
                                         r->opt.lr, imgs * dist_world() / (t - t0));
            if (o->log_interval > 0 && r->st.step % o->log_interval == 0) {
                double w = loader_wait_seconds(r->train);
                log_interval(r, loss_log / nlog, imgs_log * dist_world() / (t - tlog), (w - wait_log) / (t - tlog));
                tlog = t; wait_log = w; loss_log = 0; nlog = 0; imgs_log = 0;
            }
            r->st.loss_sum = loss_sum; r->st.loss_n = nb; r->st.log_sum = loss_log; r->st.log_n = nlog;
            if (o->checkpoint_every > 0 && r->st.step % o->checkpoint_every == 0 && !last) save(r, "last.h5");
            int sig = dist_any_max(signals_pending());
            int stop = o->max_steps > 0 && r->st.step >= o->max_steps;
            if (sig || stop) {
                /* on the epoch's last batch, the epoch ends first (validation, best.h5, summary.csv)
                 * as in an uninterrupted run, so the resumed run starts the next epoch */
                stopping = sig ? sig : -1;
                if (last) break;
                if (r->root) progress_end(&pr, NULL);
                if (dist_any_max(save(r, "last.h5") != 0)) return 1; /* the message is above */
                return stop_message(r, stopping);
            }
        }
        double dt = now_seconds() - t0;
        if (r->root) progress_end(&pr, NULL);
        r->st.epoch = epoch + 1;
        r->st.batch = 0;
        r->st.loss_sum = r->st.log_sum = 0;
        r->st.loss_n = r->st.log_n = 0;
        double ls = loss_sum, n = (double)nb;
        double agg[2] = {ls, n};
        dist_allreduce_sum_d(agg, 2);
        char nerr[1400]; /* no step this epoch: skipped samples left no full batch */
        if (data_check_epoch_trained(agg[1], o->train_spec, loader_epoch_size(r->train), loader_skipped_epoch(r->train),
                                     o->batch_size, nerr, sizeof nerr) != 0) {
            if (r->root) fprintf(stderr, "mixtape train: %s\n", nerr);
            return 1;
        }
        int val_now = r->val && (((epoch + 1) % (o->val_every > 0 ? o->val_every : 1)) == 0 || epoch + 1 == o->epochs);
        if (val_now || !r->val) {
            Loader *keep = r->val;
            if (!val_now) r->val = NULL;
            int rc = validate(r, agg[1] > 0 ? agg[0] / agg[1] : NAN, dt, imgs * dist_world() / dt);
            r->val = keep;
            if (rc != 0) return 1;
        }
        if (dist_any_max(save(r, "last.h5") != 0)) return 1;   /* root writes; every rank stops */
        rotate(r, epoch + 1);
        if (stopping) return stop_message(r, stopping);
    }
    return 0;
}

static void teardown(Run *r) {
    if (r->train) loader_close(r->train);
    if (r->val) loader_close(r->val);
    if (r->has_ema) ema_free(&r->ema);
    if (r->opt.params) optim_free(&r->opt);
    model_free(&r->m);
    free(r->class_json);
    if (r->c.nodes) mt_ctx_free(&r->c);
    metrics_close(&r->log);
    dist_buckets_free(r->db);
}

int cmd_train(int argc, char **argv) {
    int early = train_opts_early(argc, argv); /* --help, --list-flags, --dry-run */
    if (early >= 0) return early;
    dist_init(NULL, NULL);
    Run *r = calloc(1, sizeof *r);
    int argc2;
    char **argv2;
    int rc = resume_plan(argc, argv, &r->plan, &argc2, &argv2);
    if (rc) { free(r); dist_finalize(); return rc; }
    Args a;
    args_init(&a, "train", argc2, argv2);
    rc = setup(r, &a);
    if (rc == 0) {
        signals_install();
        rc = train_loop(r);
        if (rc == 0 && r->root) {
            if (r->st.best_epoch >= 0) {
                char mv[32];
                format_metric(r, r->st.best_metric, mv, sizeof mv);
                printf("done: best by %s %s: %s, top-1 %.2f%% (epoch %d, best.h5); checkpoints in %s\n",
                       r->has_ema ? "EMA" : "model", r->o.eval_metric, mv, 100 * r->st.best_top1, r->st.best_epoch,
                       r->dir);
            }
            else printf("done; checkpoints in %s\n", r->dir);
        }
    }
    if (r->root && metrics_close(&r->log) != 0 && rc == 0) rc = 1; /* its message is above */
    teardown(r);
    resume_plan_free(&r->plan, argv2, argv);
    free(r);
    args_free(&a);
    dist_finalize();
    return rc;
}
