/* mixtape train: the training loop, top to bottom as the paper's algorithm
 * reads — for each epoch, for each batch: forward, loss, backward (accumulate),
 * [allreduce], clip, lr from the schedule, optimizer step, EMA; then validate
 * and checkpoint. */
#include "core/threads.h"
#include "optim/clip.h"
#include "optim/ema.h"
#include "data/source_util.h"
#include "train/commands.h"
#include "train/dist.h"
#include "train/dist_buckets.h"
#include "train/evaluate.h"
#include "train/metrics.h"
#include "train/model_io.h"
#include "train/outfile.h"
#include "train/progress.h"
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
    int root;
    DistBuckets *db;        /* gradient averaging across ranks (no-op with one) */
    char resume_path[1200];
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
    struct stat prev;
    int had = stat(path, &prev) == 0;
    if (train_ckpt_save(path, &r->m, &r->opt, r->has_ema ? &r->ema : NULL, &r->st, r->mean, r->std, r->nchan, err,
                        sizeof err) != 0) {
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

/* Keep the newest K epoch checkpoints (epoch-N.h5). */
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

/* Validation of the model (and of its EMA when on); logs a metrics row. */
static int validate(Run *r, double train_loss, double epoch_time, double img_s) {
    EvalResult ev, eve;
    char err[1024];
    memset(&eve, 0, sizeof eve);
    int have = r->val != NULL;
    if (have) {
        /* Each rank evaluates its share; all ranks agree on failure before combining. */
        int bad = 0;
        if (loader_start_epoch(r->val, 0) != 0 ||
            evaluate(&r->m, &r->c, next_val, r->val, 0, NULL, NULL, &ev, err, sizeof err) != 0) {
            fprintf(stderr, "mixtape train: validation failed: %s\n", loader_error(r->val)[0] ? loader_error(r->val) : err);
            bad = 1;
        }
        if (!bad && r->has_ema) {
            ema_swap(&r->ema);
            loader_start_epoch(r->val, 0);
            int rc = evaluate(&r->m, &r->c, next_val, r->val, 0, NULL, NULL, &eve, err, sizeof err);
            ema_swap(&r->ema);
            if (rc != 0) { fprintf(stderr, "mixtape train: EMA validation failed: %s\n", err); eval_result_free(&ev); bad = 1; }
        }
        if (dist_any_max(bad)) {
            if (!bad && r->root) fprintf(stderr, "mixtape train: validation failed on another rank (its message is above)\n");
            if (!bad) { eval_result_free(&ev); if (r->has_ema) eval_result_free(&eve); }
            return -1;
        }
        /* Each rank evaluated its share of the samples: add them up exactly. */
        eval_result_reduce(&ev);
        if (r->has_ema) eval_result_reduce(&eve);
    }
    int epoch = r->st.epoch; /* completed epochs */
    /* Zero samples or a NaN loss is no accuracy: never a best, and the run stops. */
    int honest = !have || eval_result_check(&ev, err, sizeof err) == 0;
    if (have && honest && ev.top1 > r->st.best_top1) {
        r->st.best_top1 = ev.top1;
        r->st.best_epoch = epoch;
        save(r, "best.h5");
    }
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
                metrics_num(&r->log, "val_top1_ema", eve.top1);
                metrics_num(&r->log, "val_loss_ema", eve.loss);
            }
        }
        metrics_num(&r->log, "img_per_s", img_s);
        metrics_num(&r->log, "epoch_time", epoch_time);
        metrics_num(&r->log, "data_wait", epoch_time > 0 ? loader_wait_seconds(r->train) / epoch_time : 0);
        metrics_int(&r->log, "skipped", loader_skipped(r->train));
        if (have && ev.nonfinite) metrics_int(&r->log, "val_nonfinite", ev.nonfinite);
        metrics_end(&r->log);
        char line[512];
        int k = snprintf(line, sizeof line, "epoch %d/%d  train loss %.4f", epoch, r->o.epochs, train_loss);
        if (have)
            k += snprintf(line + k, sizeof line - (size_t)k, "  val loss %.4f  top-1 %.2f%%  top-5 %.2f%%", ev.loss,
                          100 * ev.top1, 100 * ev.top5);
        if (have && r->has_ema) k += snprintf(line + k, sizeof line - (size_t)k, "  (EMA top-1 %.2f%%)", 100 * eve.top1);
        snprintf(line + k, sizeof line - (size_t)k, "  %.0f img/s", img_s);
        printf("%s\n", line);
        fflush(stdout);
    }
    if (have) eval_result_free(&ev);
    if (r->has_ema && have) eval_result_free(&eve);
    if (!honest && r->root)
        fprintf(stderr, "mixtape train: validation after epoch %d on --val %s: %s; stopping. The last checkpoint in %s "
                        "is the last good state.\n", epoch, r->o.val_spec, err, r->dir);
    if (r->root && metrics_failed(&r->log)) honest = 0; /* its message is above */
    return dist_any_max(!honest) ? -1 : 0;
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

    /* The run directory and the checkpoint to resume from. */
    char *resume_path = r->resume_path;
    const size_t resume_path_n = sizeof r->resume_path;
    if (o->resume) {
        if (is_dir(o->resume)) snprintf(resume_path, resume_path_n, "%s/last.h5", o->resume);
        else snprintf(resume_path, resume_path_n, "%s", o->resume);
        if (!o->output) {
            snprintf(r->dir, sizeof r->dir, "%s", is_dir(o->resume) ? o->resume : ".");
            if (!is_dir(o->resume)) {
                const char *sl = strrchr(o->resume, '/');
                if (sl) snprintf(r->dir, sizeof r->dir, "%.*s", (int)(sl - o->resume), o->resume);
            }
        }
    }
    if (o->output) snprintf(r->dir, sizeof r->dir, "%s", o->output);

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
            /* the resolved args of the run know the data */
            fprintf(stderr, "mixtape train: --resume needs the same --train (and --val) as the run it continues "
                            "(or --config %s/args.yaml)\n", r->dir);
            return 2;
        }
    }
    if (model_build(&r->m, &cfg, err, sizeof err) != 0) { fprintf(stderr, "mixtape train: %s\n", err); return 2; }
    model_init(&r->m, o->seed);
    if (o->initial_checkpoint && !o->resume) {
        CkptMatch rep;
        if ((st_probe(o->initial_checkpoint) ? st_load_matching(o->initial_checkpoint, &r->m.params, &rep, err, sizeof err)
                                              : ckpt_load_matching(o->initial_checkpoint, &r->m.params, &rep, err, sizeof err)) != 0) {
            fprintf(stderr, "mixtape train: --initial-checkpoint: %s\n", err);
            return 2;
        }
        if (r->root) {
            printf("initial checkpoint %s: %d tensors loaded, %d re-initialised (shape differs), %d not in the "
                   "checkpoint, %d unused\n",
                   o->initial_checkpoint, rep.n_loaded, rep.n_skipped, rep.n_missing, rep.n_unexpected);
            for (int i = 0; i < rep.n_skipped; i++) printf("  re-initialised %s\n", rep.skipped[i]);
            for (int i = 0; i < rep.n_missing; i++) printf("  initialised (missing) %s\n", rep.missing[i]);
            for (int i = 0; i < rep.n_unexpected; i++) printf("  unused %s\n", rep.unexpected[i]);
        }
        ckpt_match_free(&rep);
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
    if (loader_num_classes(r->train) > cfg.num_classes) {
        fprintf(stderr, "mixtape train: the data has %d classes but the model has --num-classes %d\n",
                loader_num_classes(r->train), cfg.num_classes);
        return 2;
    }
    if (loader_img_size(r->train) != cfg.img_size || loader_channels(r->train) != cfg.in_chans) {
        fprintf(stderr, "mixtape train: the data gives %d-channel %dx%d images but the model wants --in-chans %d "
                        "--img-size %d\n",
                loader_channels(r->train), loader_img_size(r->train), loader_img_size(r->train), cfg.in_chans,
                cfg.img_size);
        return 2;
    }
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
        r->has_ema = 1;
    }

    memset(&r->st, 0, sizeof r->st);
    r->st.best_top1 = -1;
    r->st.best_epoch = -1;
    r->st.seed = o->seed;
    if (o->resume) {
        if (train_ckpt_load(resume_path, &r->m, &r->opt, r->has_ema ? &r->ema : NULL, r->batches_per_epoch, &r->st, err, sizeof err) != 0) {
            fprintf(stderr, "mixtape train: --resume: %s\n", err);
            return 2;
        }
        if (r->root)
            printf("resuming %s at epoch %d, batch %ld, step %ld\n", resume_path, r->st.epoch, r->st.batch, r->st.step);
    }

    mt_ctx_init(&r->c, (size_t)1 << 20); /* grows to the step's high-water mark after the first step */
    r->c.seed = r->st.seed * 0x9e3779b97f4a7c15ull + 0x5eed + (uint64_t)dist_rank();
    r->c.counter = r->st.counter;
    r->c.precision = o->precision;
    r->c.recycle_activations = 1; /* nothing reads activations after backward here */

    if (r->root) {
        if (src_mkdirs(r->dir, err, sizeof err) != 0) {
            fprintf(stderr, "mixtape train: --output %s: %s\n", r->dir, err);
            return 2;
        }
        static const char *const own[] = {"last.h5", "best.h5", "args.yaml"};
        out_clean_stale(r->dir, own, 3, 1, stdout); /* temporaries of killed runs (kill -9) */
        char p[1200];
        snprintf(p, sizeof p, "%s/args.yaml", r->dir);
        OutText t;
        if (out_text_begin(&t) != 0) { fprintf(stderr, "mixtape train: %s: out of memory\n", p); return 1; }
        args_dump_yaml(a, t.f);
        if (out_text_commit(&t, p, err, sizeof err) != 0) { fprintf(stderr, "mixtape train: cannot write %s\n", err); return 1; }
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
    metrics_int(&r->log, "epoch", r->st.epoch);
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
    if (r->has_ema) ema_update(&r->ema);
    optim_zero_grad(&r->opt);
    r->st.step++;
    dist_set_phase(r->st.step);   /* for the lost-rank watchdog's message */
}

static int train_loop(Run *r) {
    TrainOpts *o = &r->o;
    for (int epoch = r->st.epoch; epoch < o->epochs; epoch++) {
        r->st.epoch = epoch;
        int bad = loader_start_epoch_at(r->train, epoch, r->st.batch) != 0;
        if (bad) fprintf(stderr, "mixtape train: %s\n", loader_error(r->train));
        if (agree(r, bad, "the start of the epoch")) return 1;
        Progress pr;
        if (r->root) progress_start(&pr, stdout, epoch, o->epochs, r->steps_per_epoch, o->log_interval);
        double t0 = now_seconds(), wait0 = loader_wait_seconds(r->train), tlog = t0, wait_log = wait0;
        double loss_sum = 0, loss_log = 0;
        long nb = 0, nlog = 0, imgs = 0, imgs_log = 0;
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
                            isnan(lv) ? "NaN" : "not finite", r->st.step, epoch, r->st.batch, r->dir);
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
            if (o->checkpoint_every > 0 && r->st.step % o->checkpoint_every == 0 && !last) save(r, "last.h5");
            int sig = dist_any_max(signals_pending());
            int stop = o->max_steps > 0 && r->st.step >= o->max_steps;
            if (sig || stop) {
                if (last) { r->st.epoch = epoch + 1; r->st.batch = 0; }
                if (r->root) progress_end(&pr, NULL);
                if (dist_any_max(save(r, "last.h5") != 0)) return 1; /* the message is above */
                if (sig) {
                    if (r->root)
                        fprintf(stderr, "mixtape train: interrupted at step %ld; resume with:\n  mixtape train --resume %s "
                                        "--config %s/args.yaml\n", r->st.step, r->dir, r->dir);
                    return sig == 15 ? 143 : 130;
                }
                if (r->root) printf("stopped after --max-steps %ld\n", o->max_steps);
                return 0;
            }
        }
        double dt = now_seconds() - t0;
        if (r->root) progress_end(&pr, NULL);
        r->st.epoch = epoch + 1;
        r->st.batch = 0;
        double ls = loss_sum, n = (double)nb;
        double agg[2] = {ls, n};
        dist_allreduce_sum_d(agg, 2);
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
    Args a;
    args_init(&a, "train", argc, argv);
    Run *r = calloc(1, sizeof *r);
    int rc = setup(r, &a);
    if (rc == 0) {
        signals_install();
        rc = train_loop(r);
        if (rc == 0 && r->root) {
            if (r->st.best_top1 >= 0)
                printf("done: best val top-1 %.2f%% (epoch %d); checkpoints in %s\n", 100 * r->st.best_top1,
                       r->st.best_epoch, r->dir);
            else printf("done; checkpoints in %s\n", r->dir);
        }
    }
    if (r->root && metrics_close(&r->log) != 0 && rc == 0) rc = 1; /* its message is above */
    teardown(r);
    free(r);
    args_free(&a);
    dist_finalize();
    return rc;
}
