/* Setup of a training run: flags, run directory, model and data (train_model_data.c),
 * optimizer, schedule and EMA, the state a --resume restores, the run directory's
 * files; with several ranks, the checks that every rank runs the same thing and the
 * agreement of all ranks on every error and on the batches per epoch. */
#include "core/threads.h"
#include "data/source_util.h"
#include "train/dist.h"
#include "train/outfile.h"
#include "train/run_dir.h"
#include "train/train_run.h"
#include "train/version.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_dir(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

int train_agree(TrainRun *r, int rc, const char *when) {
    int any = dist_any_max(rc);
    if (any && !rc && r->root)
        fprintf(stderr, "mixtape train: stopping every rank: another rank failed during %s (its message is above)\n",
                when);
    return rc ? rc : any;
}

/* The flags (from the command line, and args.yaml when resuming). 0, or the exit code. */
static int parse_flags(TrainRun *r, Args *a) {
    char err[2048];
    if (train_opts_parse(a, &r->o, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 2; }
    if (args_finish(a) != 0) { fprintf(stderr, "%s\n", a->err); return 2; }
    mt_set_threads(r->o.threads);
    r->root = dist_is_root();
    return resume_check(a, &r->plan, r->root);
}

/* The run directory, and the checkpoint to resume from. 0, or the exit code. */
static int choose_run_dir(TrainRun *r) {
    const TrainOpts *o = &r->o;
    char err[2048];
    if (o->resume) {
        if (r->plan.cmd_experiment) {
            fprintf(stderr, "mixtape train: --resume continues the run in %s; --experiment names a new run\n",
                    r->plan.dir);
            return 2;
        }
        if (is_dir(o->resume)) snprintf(r->resume_path, sizeof r->resume_path, "%s/last.h5", o->resume);
        else snprintf(r->resume_path, sizeof r->resume_path, "%s", o->resume);
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
    return 0;
}

/* Setup, part 1 (local to this rank): flags, run directory, model and data.
 * 0, or the exit code. */
static int setup_model_data(TrainRun *r, Args *a) {
    int rc = parse_flags(r, a);
    if (!rc) rc = choose_run_dir(r);
    if (rc) return rc;
    ModelConfig cfg = r->o.model;   /* the checkpoint's config instead when resuming */
    rc = train_setup_model(r, a, &cfg);
    return rc ? rc : train_setup_data(r, &cfg);
}

/* The run settings the checkpoint records against the flags of this invocation: a
 * resume never drops the EMA or changes how it or best.h5 are computed. 0, or -1
 * with the message printed. Older checkpoints (no "ema" key) are not checked. */
static int check_resumed_state(TrainRun *r, const TrainState *ck) {
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

/* Warnings for settings that defeat themselves on a run this short. */
static void warn_short_run(const TrainRun *r) {
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

/* Optimizer (lr from --lr, or scaled from --lr-base by the global batch), schedule and
 * EMA. *lr the peak learning rate. 0, or the exit code. */
static int build_optimizer(TrainRun *r, float *lr_out) {
    TrainOpts *o = &r->o;
    char err[2048];
    float lr = o->lr;
    if (lr < 0) {
        long global = (long)o->batch_size * dist_world() * o->grad_accum;
        lr = lr_from_base(o->lr_base, o->lr_base_size, global, o->lr_base_scale, o->opt.opt, err, sizeof err);
        if (lr < 0) { fprintf(stderr, "mixtape train: %s\n", err); return 2; }
    }
    *lr_out = lr;
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
    return 0;
}

/* The run's state: fresh, or the --resume checkpoint's (weights, optimizer, EMA, step,
 * best so far), which must match the flags; then the settings every checkpoint records. */
static int restore_state(TrainRun *r) {
    const TrainOpts *o = &r->o;
    char err[2048];
    memset(&r->st, 0, sizeof r->st);
    r->st.best_top1 = -1;
    r->st.best_epoch = -1;
    r->st.seed = o->seed;
    if (o->resume) {
        if (train_ckpt_load(r->resume_path, &r->m, &r->opt, r->has_ema ? &r->ema : NULL, r->batches_per_epoch, &r->st,
                            err, sizeof err) != 0) {
            fprintf(stderr, "mixtape train: --resume: %s\n", err);
            return 2;
        }
        if (check_resumed_state(r, &r->st) != 0) return 2; /* the checkpoint's EMA / metric vs the flags */
        if (r->root) {
            printf("resuming %s after step %ld: epoch %d of %d, batch %ld\n", r->resume_path, r->st.step,
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
    return 0;
}

/* The tape the steps run on; its random stream continues the checkpoint's. */
static void init_ctx(TrainRun *r) {
    mt_ctx_init(&r->c, (size_t)1 << 20); /* grows to the step's high-water mark after the first step */
    r->c.seed = r->st.seed * 0x9e3779b97f4a7c15ull + 0x5eed + (uint64_t)dist_rank();
    r->c.counter = r->st.counter;
    r->c.precision = r->o.precision;
    r->c.grad_checkpointing = r->o.grad_checkpointing;
    r->c.recycle_activations = 1; /* nothing reads activations after backward here */
}

/* The run directory is another run's? Refused unless this continues it (--resume into
 * its own directory) or --overwrite replaces it. 0, or the exit code. */
static int prepare_dir(TrainRun *r) {
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

/* Rank 0: the run directory with args.yaml and metrics.jsonl (cut back to the resumed
 * step). 0, or the exit code. */
static int open_run_dir(TrainRun *r, Args *a) {
    char err[2048];
    int rc = prepare_dir(r);
    if (rc) return rc;
    if (src_mkdirs(r->dir, err, sizeof err) != 0) {
        fprintf(stderr, "mixtape train: --output %s: %s\n", r->dir, err);
        return 2;
    }
    static const char *const own[] = {"last.h5", "best.h5", "args.yaml", "summary.csv", "metrics.jsonl"};
    out_clean_stale(r->dir, own, 5, 1, stdout); /* temporaries of killed runs (kill -9) */
    if (rundir_write_args(r->dir, a, err, sizeof err) != 0) { fprintf(stderr, "mixtape train: %s\n", err); return 1; }
    if (r->o.resume && rundir_trim_metrics(r->dir, r->st.step, err, sizeof err) != 0) {
        fprintf(stderr, "mixtape train: %s\n", err);
        return 1;
    }
    if (metrics_open(&r->log, r->dir, r->o.resume != NULL) != 0) {
        fprintf(stderr, "mixtape train: cannot write %s/metrics.jsonl\n", r->dir);
        return 2;
    }
    return 0;
}

/* Setup, part 2: optimizer, schedule, EMA, resume state, run directory. */
static int setup_optim(TrainRun *r, Args *a) {
    float lr;
    int rc = build_optimizer(r, &lr);
    if (!rc) rc = restore_state(r);
    if (rc) return rc;
    init_ctx(r);
    if (!r->root) return 0;
    if ((rc = open_run_dir(r, a))) return rc;
    train_log_setup(r, lr);
    return 0;
}

/* Several hosts: refuse at start a rank whose binary or training shard list differs from
 * rank 0's (a stale install, a host that sees another directory), naming the host. */
static int same_everywhere(TrainRun *r, int after_data) {
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

/* Uneven shards: every rank stops each epoch at the smallest rank's batch count, else
 * the ranks with more data would wait in an allreduce nobody else joins. */
static void equal_batches(TrainRun *r) {
    if (dist_world() <= 1) return;
    long mine = r->batches_per_epoch, lo = dist_all_min_long(mine), hi = -dist_all_min_long(-mine);
    if (lo != hi && r->root)
        printf("ranks have %ld..%ld batches per epoch (uneven shards); every rank stops each epoch after %ld\n", lo,
               hi, lo);
    r->batches_per_epoch = lo;
    r->steps_per_epoch = (lo + r->o.grad_accum - 1) / r->o.grad_accum;
}

int train_setup(TrainRun *r, Args *a) {
    int rc = same_everywhere(r, 0);
    if (rc) return rc;
    rc = train_agree(r, setup_model_data(r, a), "setup");
    if (rc) return rc;
    if ((rc = same_everywhere(r, 1))) return rc;
    equal_batches(r);
    rc = train_agree(r, setup_optim(r, a), "setup");
    if (rc) return rc;
    char err[256];
    r->db = dist_buckets_create(&r->m.params, (long)(r->o.bucket_mb * 1048576.0), err, sizeof err);
    if (!r->db) fprintf(stderr, "mixtape train: %s\n", err);
    return train_agree(r, r->db ? 0 : 2, "setup");
}

void train_teardown(TrainRun *r) {
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
