/* HDF5 checkpoints (the public layout, see docs/checkpoint.md):
 *
 *   /model/<timm key>             float32, the parameter's exact shape
 *   /<prefix>/<timm key>          one float buffer per parameter for every group the caller
 *                                 passes, e.g. "optimizer/exp_avg", "optimizer/exp_avg_sq",
 *                                 "optimizer/momentum_buffer", "ema"
 *   /optimizer attributes         name, step (when an "optimizer/..." group is written)
 *   root attributes               format="mixtape", format_version, model, config (JSON),
 *                                 epoch, step, best_top1, rng_state (uint64[]), data_mean,
 *                                 data_std (float32[]), data_interpolation (string),
 *                                 data_crop_pct (float32), data_permute (string), data_permute_seed,
 *                                 data_permute_patch (int64; only with a permutation), train_state (JSON, validated by train/train_ckpt.c)
 *
 * Datasets of a group are written in ParamList order with link creation order
 * tracked, so readers (h5py) list them in timm's state_dict order.
 *
 * Writing is atomic: the file is assembled in memory, written to
 * <path>.tmp.<pid> in the same directory, fsync'd, renamed over <path>, then
 * the directory is fsync'd (train/outfile.h). On any failure the temp file is
 * removed and an existing <path> is untouched.
 *
 * Reading treats the file as untrusted: it is opened through data/h5guard.h
 * (nothing may point outside the file, declared sizes must be stored), every
 * dataset's class, rank and shape and every attribute's type and length are
 * checked; errors name the file, the key and both shapes. HDF5's own error
 * printing is switched off.
 *
 * All functions return 0 on success, -1 with err filled. */
#pragma once
#include "core/params.h"
#include <stddef.h>
#include <stdint.h>

#define CKPT_MODEL_MAX 64
#define CKPT_JSON_MAX 16384     /* config and train_state attributes */
#define CKPT_RNG_MAX 8          /* uint64 words of RNG state */
#define CKPT_CHAN_MAX 8         /* channels of data mean / std */

/* Everything but the tensors. Zero-initialise, then fill what you have. */
typedef struct CkptInfo {
    int format_version;              /* read only: the file's version (writing uses MIXTAPE_FORMAT_VERSION) */
    char model[CKPT_MODEL_MAX];      /* registry name */
    char config[CKPT_JSON_MAX];      /* model_config_to_json */
    int64_t epoch, step;             /* epochs completed, optimizer steps taken */
    double best_top1;                /* fraction in [0,1]; -1 / 0 when unknown */
    uint64_t rng[CKPT_RNG_MAX];      /* RNG state words */
    int n_rng;
    float mean[CKPT_CHAN_MAX], std[CKPT_CHAN_MAX];
    int n_chan;                      /* 0: no data mean/std attributes */
    char interpolation[16];          /* data_interpolation (eval resize: "bicubic" | "bilinear"); "" absent */
    float crop_pct;                  /* data_crop_pct (eval resize); 0 absent */
    char permute[16];                /* data_permute ("patches" | "global"; --permute); "" absent = none */
    int64_t permute_seed;            /* data_permute_seed */
    int64_t permute_patch;           /* data_permute_patch (patches: the patch side) */
    char optimizer[32];              /* "/optimizer" attribute name, e.g. "adamw" */
    int64_t optimizer_step;          /* "/optimizer" attribute step */
    char train_state[CKPT_JSON_MAX]; /* free-form JSON: schedule / data position */
    const char *class_names;         /* write only: JSON list of names (train/class_names.h), or NULL */
} CkptInfo;

/* A set of per-parameter float buffers stored under /<prefix>/<key>. buf[i]
 * belongs to params->t[i] and holds t->numel floats laid out in t's shape.
 * A NULL buf[i] (on save) skips that parameter, e.g. frozen ones without
 * optimizer state. On load, `found` is set to 1 when the group exists in the
 * file (then every non-NULL buf[i] must be present with the right shape), 0
 * when it is absent (not an error: the caller decides). */
typedef struct CkptGroup {
    const char *prefix;
    float **buf;
    int found;
} CkptGroup;

void ckpt_hdf5_quiet(void);   /* turn off HDF5's automatic error printing (called by every entry point) */

int ckpt_save(const char *path, const ParamList *params, const CkptGroup *groups, int ngroups,
              const CkptInfo *info, char *err, size_t errn);

/* Attributes only (for building the model before loading its weights). */
int ckpt_read_info(const char *path, CkptInfo *info, char *err, size_t errn);

/* Strict load: every parameter from /model (missing key, extra key, class,
 * rank or shape mismatch -> error naming them), then the groups; info may be NULL. */
int ckpt_load(const char *path, ParamList *params, CkptGroup *groups, int ngroups, CkptInfo *info,
              char *err, size_t errn);

/* Strict load of one group (e.g. "ema") into the parameters themselves: every
 * parameter present with its exact shape, no extra keys; *found = 0 (and 0
 * returned, nothing read) when the group is absent. */
int ckpt_load_group(const char *path, ParamList *params, const char *prefix, int *found, char *err, size_t errn);

/* Fine-tuning: load every /model key whose name and shape match a parameter;
 * report the rest. Strings are malloc'd; skipped entries read
 * "head.weight: checkpoint (10,128) vs model (1000,128)". Unreadable file -> -1. */
typedef struct CkptMatch {
    char **loaded, **skipped, **missing, **unexpected;
    int n_loaded, n_skipped, n_missing, n_unexpected;
} CkptMatch;
int ckpt_load_matching(const char *path, ParamList *params, CkptMatch *report, char *err, size_t errn);
void ckpt_match_free(CkptMatch *m);

/* Visit every dataset of a group ("model", "ema", "optimizer/exp_avg") in
 * creation order. data is valid only during the call (float32, numel values).
 * Returning non-zero from cb stops the walk. Absent group -> 0 with *found = 0. */
typedef int (*ckpt_visit_fn)(const char *key, int ndim, const int64_t *shape, const float *data, size_t numel,
                             void *ud);
int ckpt_visit(const char *path, const char *group, ckpt_visit_fn cb, void *ud, int *found, char *err,
               size_t errn);
/* Direct sub-group names of a group ("optimizer" -> exp_avg, exp_avg_sq), malloc'd. */
int ckpt_list_groups(const char *path, const char *group, char ***names, int *n, char *err, size_t errn);
void ckpt_names_free(char **names, int n);

/* Test hook: make the next ckpt_save fail after writing this many datasets
 * (simulates a full disk mid-write). 0 = off. */
void ckpt_test_fail_after(int ndatasets);
