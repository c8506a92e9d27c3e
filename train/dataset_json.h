/* dataset.json (beside shards, written by `mixtape shards`) and .mixtape-dataset.json (the
 * statistics of an ImageFolder used directly, cached in it on first use): the document around
 * data/dataset_info's statistics, read back as untrusted input, and the normalisation a
 * command takes from them.
 *
 *   {"format": "mixtape-dataset", "version": 1, "class_names": "classes.txt",
 *    "splits": {"train": {<dataset_info_json>}, "test": {...}}}
 *
 * A split is named by its shard prefix's base name (PREFIX-000000.tar -> PREFIX). The cache
 * adds "folder": {"files": N, "bytes": B, "mtime_max": T} and names its one split "images". */
#pragma once
#include "data/augment.h"
#include "data/dataset_info.h"
#include <stdio.h>

#define DATASET_MAX_SPLITS 64
#define DATASET_JSON_MAX_BYTES ((size_t)1 << 20)
#define DATASET_SPLIT_NAME 128

typedef struct DatasetDoc {
    int nsplits;
    char split[DATASET_MAX_SPLITS][DATASET_SPLIT_NAME];
    DatasetInfo info[DATASET_MAX_SPLITS];
    int has_folder;
    FolderPrint folder;
} DatasetDoc;

/* Reads and validates path (at most 1 MiB; counts, sizes, channels, mean in [0,1], std in
 * (0,0.5], mean/std lengths = channels; unknown keys skipped). 0 ok, 1 no such file, -1 error
 * with err naming the file and the key. */
int dataset_doc_read(const char *path, DatasetDoc *d, char *err, size_t errn);
/* Adds or replaces a split. -1 when full. */
int dataset_doc_put(DatasetDoc *d, const char *split, const DatasetInfo *info);
/* The document as text (malloc'd, NULL out of memory). */
char *dataset_doc_text(const DatasetDoc *d, const char *class_names);

/* `mixtape shards`: ShardWriterOpts.publish context. Writes dataset.json beside prefix with
 * this set's statistics as split basename(prefix), keeping the other splits of a valid
 * existing file (an invalid one is replaced, with a warning). */
typedef struct DatasetPublish {
    const char *prefix;
    DatasetAcc *acc;
    DatasetInfo info;       /* what was written */
    char path[1200];
} DatasetPublish;
int dataset_publish(void *ctx, int nclasses, char *err, size_t errn);

/* Mean/std that a command has not decided yet (src[k] == NULL; k = 0 mean, 1 std) come from
 * the statistics of the data spec: a shard set's dataset.json, an ImageFolder's (computed on
 * first use and cached in it; printed when computed if verbose), none for HDF5 (already
 * normalised). Without statistics aug keeps its values (ImageNet's). src[k] is set to where
 * each came from ("dataset.json PATH (split S)", "default"). chans: the model's input
 * channels (1: the luma statistics). 0 ok; -1 err (a dataset.json that fails validation). */
int norm_from_data(const char *spec, int chans, AugConfig *aug, const char *src[2], char *srcbuf, size_t nsrcbuf,
                   int verbose, char *err, size_t errn);
/* The same for a command that then applies a checkpoint's data settings (aug_from_checkpoint):
 * the data's values only for what neither the flags (given[0] --mean, given[1] --std) nor info
 * (data_mean/data_std, NULL: no checkpoint) give; aug->norm_src = buf when they were used. */
struct CkptInfo;
int norm_from_data_ckpt(const char *spec, const struct CkptInfo *info, const int given[2], int chans, AugConfig *aug,
                        char *buf, size_t nbuf, int verbose, char *err, size_t errn);
/* "normalisation: mean 0.286 (SRC), std 0.353 (SRC)" */
void norm_print(FILE *out, const AugConfig *aug, int chans, const char *const src[2]);
