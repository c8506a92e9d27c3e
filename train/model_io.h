/* Helpers shared by the commands: a model config from --model plus override
 * flags, a model from a checkpoint, the --threads flag, and the evaluation
 * data source behind --data (HDF5 images/labels today; other sources slot in
 * behind the same three function pointers). */
#pragma once
#include "data/augment.h"
#include "data/batch.h"
#include "data/h5data.h"
#include "layers/model.h"
#include "train/args.h"
#include "train/checkpoint.h"
#include <stdio.h>

/* --model M plus every model_overrides() flag (--num-classes 10 ...), all declared.
 * 0 ok; -1 with err (unknown model, bad value; exit code 2). In a describe pass
 * (--help) *cfg is zeroed and 0 returned. */
int model_config_from_args(Args *a, ModelConfig *cfg, char *err, size_t errn);

/* Config from the checkpoint's attributes, build, strict load of /model.
 * info may be NULL. 0 ok; -1 with err (missing file, bad config, key or shape mismatch). */
int model_from_checkpoint(const char *path, Model *m, CkptInfo *info, char *err, size_t errn);

/* Fine-tuning load (train --initial-checkpoint: a mixtape checkpoint or a .safetensors file), as timm loads pretrained weights into a
 * model built with other flags: every /model key of the same shape is loaded; a stem conv
 * trained on other input channels is adapted (adapt_input_conv) and ViT's pos_embed of
 * another grid is resampled (bicubic, antialiased, prefix tokens kept); every other tensor
 * of another shape keeps its fresh init. m->params must be initialised already.
 * rep->match lists loaded / re-initialised (skipped) / missing / unused keys, rep->adapted
 * one line per adapted key ("pos_embed: checkpoint (1,197,192) -> model (1,17,192), ...").
 * 0 ok; -1 with err (unreadable checkpoint). Free with finetune_report_free. */
typedef struct FinetuneReport {
    CkptMatch match;
    char **adapted;
    int n_adapted;
} FinetuneReport;
int model_load_finetune(const char *path, Model *m, FinetuneReport *rep, char *err, size_t errn);
void finetune_report_free(FinetuneReport *r);
/* Prints the report: a summary line, then one line per adapted, re-initialised, missing and
 * unused key. */
void finetune_report_print(const FinetuneReport *r, const char *path, FILE *f);

/* The data settings a checkpoint records (root attributes data_mean, data_std,
 * data_interpolation, data_crop_pct) applied to aug, except where the command line gave its
 * own: given[0..3] = --mean, --std, --interpolation, --crop-pct: 1 on the command line (wins),
 * 2 replayed from a resumed run's args.yaml (the checkpoint wins), 0 absent. Recorded values are
 * validated as the flags are. Prints one line per setting with where it came from ("from
 * checkpoint C.h5", "from --mean", "default") to out (may be NULL). chans: the model's input
 * channels (a 3-value mean for 1 channel is averaged). 0 ok; -1 with err naming the attribute. */
int aug_from_checkpoint(const CkptInfo *info, const char *path, AugConfig *aug, const int given[4], int chans,
                        FILE *out, char *err, size_t errn);
/* The input permutation a checkpoint records (data_permute, data_permute_seed, data_permute_patch)
 * into *p unless p->given (the command line wins); values validated as the flags are (-1 with err
 * naming the attribute). Prints the permutation in use and its origin to out (may be NULL) when
 * there is one. Called by aug_from_checkpoint. */
int permute_from_checkpoint(const CkptInfo *info, const char *path, PermuteConfig *p, FILE *out, char *err,
                            size_t errn);
/* Record p (nothing for none) in info's data_permute* fields. */
void permute_to_checkpoint(const PermuteConfig *p, CkptInfo *info);
/* "bicubic" / "bilinear" / "random". */
const char *aug_interp_name(int interp);

/* The flags predict and grads share: --checkpoint C.h5 --data D --out F.h5 -b N --threads N.
 * Returns 0 (fields set), 1 (--help / --list-flags printed, exit 0) or 2 (bad input:
 * message printed). The strings point into argv. */
typedef struct IoArgs {
    const char *ckpt, *data, *out;
    long bs;
} IoArgs;
int io_args_parse(const char *cmd, int argc, char **argv, long def_bs, void (*usage)(FILE *), IoArgs *r);

/* --threads N in [0, 1024] (0 / absent: OMP_NUM_THREADS or all cores), applied unless
 * the flag was bad or this is a describe pass. */
void threads_from_args(Args *a);
/* --precision fp32|bf16 [fp32] for the inference commands: MT_FP32 or MT_BF16 (core/gemm.h). */
int precision_from_args(Args *a);

/* Samples by index, for predict / grads / eval-like commands. */
typedef struct DataIn DataIn;
struct DataIn {
    long n;                 /* samples */
    int c, h, w;            /* image shape (NCHW, normalised float32) */
    int has_labels;
    char desc[600];         /* what --data pointed at, for messages */
    /* rows [start, start + count) into b (allocated for >= count rows of c,h,w). 0 / -1 with err */
    int (*read)(DataIn *d, long start, int count, Batch *b, char *err, size_t errn);
    void (*close)(DataIn *d);
    H5Data h5;              /* the HDF5 source's state */
};
/* Opens --data: an HDF5 file with images (N,C,H,W) float32 and labels (N) int.
 * 0 ok; -1 with err (exit code 2). */
int datain_open(DataIn *d, const char *spec, char *err, size_t errn);
/* Checks that the samples fit the model's in_chans / img_size and the labels its classes. */
int datain_check_model(DataIn *d, const ModelConfig *cfg, char *err, size_t errn);

/* Atomic output file for command results (predict, grads): assembled in
 * memory, written by outfile_commit through <path>.tmp.<pid> and a rename
 * (train/outfile.h). outfile_create also removes stale temporaries of <path>. */
typedef struct OutFile {
    int64_t f;              /* hid_t */
    char path[1024], tmp[1100];
} OutFile;
int outfile_create(OutFile *o, const char *path, char *err, size_t errn);
/* float32 dataset of the given shape (ndim 0 = scalar), data may be NULL (fill later with outfile_rows). */
int outfile_dataset(OutFile *o, const char *name, int ndim, const long *shape, const float *data, char *err,
                    size_t errn);
/* Rows [start, start + count) of a 2-D float dataset, or of a 1-D int64 one when ints != NULL. */
int outfile_rows(OutFile *o, const char *name, long start, long count, const float *data, const int64_t *ints,
                 char *err, size_t errn);
int outfile_ints(OutFile *o, const char *name, long n, const int64_t *data, char *err, size_t errn);
int outfile_attr_str(OutFile *o, const char *name, const char *value, char *err, size_t errn);
/* Write, fsync, rename; always closes. On failure the temp file is removed. */
int outfile_commit(OutFile *o, char *err, size_t errn);
void outfile_abort(OutFile *o);
