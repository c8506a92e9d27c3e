/* Setup of a training run, local to this rank: the model (from the flags, fine-tuned
 * from --initial-checkpoint, or restored from the --resume checkpoint's config) and the
 * data (normalisation and eval settings, loaders, checks against the model). */
#include "train/class_names.h"
#include "train/data_check.h"
#include "train/dataset_json.h"
#include "train/dist.h"
#include "train/model_io.h"
#include "train/precision_auto.h"
#include "train/safetensors.h"
#include "train/train_run.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --resume: the model config the checkpoint records, which must be of --model when that
 * is given, and a run whose flags are known. 0, or the exit code. */
static int resume_config(TrainRun *r, ModelConfig *cfg) {
    const TrainOpts *o = &r->o;
    const char *resume_path = r->resume_path;
    char err[2048];
    CkptInfo *info = calloc(1, sizeof *info);
    if (ckpt_read_info(resume_path, info, err, sizeof err) != 0) {
        fprintf(stderr, "mixtape train: --resume: %s\n", err);
        free(info);
        return 2;
    }
    char e2[512];
    if (model_config_from_json(info->config, cfg, e2, sizeof e2) != 0) {
        fprintf(stderr, "mixtape train: --resume %s: bad config attribute: %s\n", resume_path, e2);
        free(info);
        return 2;
    }
    if (o->model_given && strcmp(o->model.name, cfg->name) != 0) {
        fprintf(stderr, "mixtape train: --resume %s is a checkpoint of '%s', not of --model '%s'\n", resume_path,
                cfg->name, o->model.name);
        free(info);
        return 2;
    }
    free(info);
    if (!o->train_spec) {
        fprintf(stderr, "mixtape train: --resume %s: no %s/args.yaml to read the run's flags from; give the same "
                        "flags and --train (and --val) as the run it continues\n", resume_path, r->plan.dir);
        return 2;
    }
    return 0;
}

int train_setup_model(TrainRun *r, Args *a, ModelConfig *cfg) {
    TrainOpts *o = &r->o;
    char err[2048];
    int rc;
    if (o->resume && (rc = resume_config(r, cfg))) return rc;
    if (o->precision_auto && (rc = precision_auto_train(a, cfg, o->batch_size, o->grad_checkpointing,
                                                        o->resume != NULL, r->root, &o->precision)))
        return rc; /* timed on a copy, before this run's state exists */
    if (model_build(&r->m, cfg, err, sizeof err) != 0) { fprintf(stderr, "mixtape train: %s\n", err); return 2; }
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
    return 0;
}

/* mean/std/interpolation/crop-pct: flags, else the checkpoint continued or fine-tuned
 * from, else (mean/std) the training data's statistics (dataset.json), else the
 * defaults. 0, or the exit code. */
static int data_settings(TrainRun *r, const ModelConfig *cfg) {
    TrainOpts *o = &r->o;
    char err[2048];
    const char *from = o->resume ? r->resume_path : o->initial_checkpoint;
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
    if (norm_from_data_ckpt(o->train_spec, info, given, cfg->in_chans, &o->train_data.aug, r->norm_src,
                            sizeof r->norm_src, r->root, err, sizeof err) != 0) {
        fprintf(stderr, "mixtape train: --train: %s (fix or remove it, or give --mean and --std)\n", err);
        free(info);
        return 2;
    }
    int rc = aug_from_checkpoint(info, from, &o->train_data.aug, given, cfg->in_chans,
                                 r->root ? stdout : NULL, err, sizeof err);
    free(info);
    if (rc != 0) { fprintf(stderr, "mixtape train: %s: %s\n", flag, err); return 2; }
    return 0;
}

/* The --train loader (this rank's share) and the --val loader (unshuffled, every sample). */
static int open_loaders(TrainRun *r, const ModelConfig *cfg) {
    TrainOpts *o = &r->o;
    char err[2048];
    LoaderConfig *td = &o->train_data, *vd = &o->val_data;
    td->spec = o->train_spec;
    td->batch_size = o->batch_size;
    td->img_size = cfg->img_size;
    td->in_chans = cfg->in_chans;
    td->workers = o->workers;
    td->seed = o->seed;
    td->rank = dist_rank();
    td->world = dist_world();
    td->num_classes = cfg->num_classes;
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
    return 0;
}

/* The data against the model: classes, channels, size (cheap probes, before any step). */
static int check_data_model(TrainRun *r, const ModelConfig *cfg) {
    const TrainOpts *o = &r->o;
    char err[2048], model_desc[160];
    snprintf(model_desc, sizeof model_desc, "the model %s", cfg->name);
    for (int k = 0; k < 2; k++) {
        Loader *L = k ? r->val : r->train;
        const char *spec = k ? o->val_spec : o->train_spec;
        if (!L) continue;
        char what[1100];
        snprintf(what, sizeof what, "%s %s", k ? "--val" : "--train", spec);
        DataFacts df;
        if (data_facts(spec, loader_kind(L), dist_rank(), dist_world(), &df, err, sizeof err) != 0 ||
            data_check_model(&df, what, model_desc, cfg, o->data_convert, r->root ? stdout : NULL, err,
                             sizeof err) != 0) {
            fprintf(stderr, "mixtape train: %s\n", err);
            return 2;
        }
    }
    return 0;
}

/* What every checkpoint records of the data: eval settings, mean/std, class names. */
static void record_data_settings(TrainRun *r, const ModelConfig *cfg) {
    const AugConfig *aug = &r->o.train_data.aug;
    char err[2048];
    snprintf(r->interp, sizeof r->interp, "%s", aug_interp_name(aug->interpolation));
    r->crop_pct = aug->crop_pct;
    r->nchan = cfg->in_chans;
    /* class names travel in the checkpoint when they name every class of the model */
    if (loader_class_names(r->train) && loader_num_class_names(r->train) == cfg->num_classes) {
        r->class_json = class_names_to_json(loader_class_names(r->train), cfg->num_classes, err, sizeof err);
        if (!r->class_json && r->root) fprintf(stderr, "mixtape train: warning: class names not stored: %s\n", err);
    }
    for (int ch = 0; ch < r->nchan && ch < 3; ch++) {
        r->mean[ch] = aug_mean(aug, r->nchan, ch);
        r->std[ch] = aug_std(aug, r->nchan, ch);
    }
}

int train_setup_data(TrainRun *r, const ModelConfig *cfg) {
    const TrainOpts *o = &r->o;
    int rc = data_settings(r, cfg);
    if (!rc) rc = open_loaders(r, cfg);
    if (!rc) rc = check_data_model(r, cfg);
    if (rc) return rc;
    record_data_settings(r, cfg);
    r->batches_per_epoch = loader_epoch_batches(r->train);
    if (r->batches_per_epoch <= 0) {
        fprintf(stderr, "mixtape train: --train %s gives no full batch of %d samples per epoch\n", o->train_spec,
                o->batch_size);
        return 2;
    }
    r->steps_per_epoch = (r->batches_per_epoch + o->grad_accum - 1) / o->grad_accum;
    return 0;
}
