/* The samples `mixtape predict` runs on, in a fixed order, each with a key (file
 * path, shard member key or "#row") and a label when the source has one:
 *   - image files named on the command line (or --data naming one image file),
 *   - a directory: tar shards when it holds *.tar, an ImageFolder when it has class
 *     sub-directories with images, else the images directly in it (sorted by name),
 *   - tar shards (brace pattern, list file, single .tar) with classes.txt beside them,
 *   - an HDF5 file with images (N,C,H,W) float32, already normalised.
 * Images go through the evaluation transform (resize shorter side to img_size /
 * crop_pct, center crop, normalise) exactly as `eval` does. Undecodable samples are
 * skipped with a warning naming them, and counted. */
#pragma once
#include "data/augment.h"
#include "data/batch.h"
#include "data/h5data.h"
#include "data/source.h"
#include <stdio.h>

typedef struct PredSource {
    int kind;                    /* 0 image files, 1 shards, 2 HDF5 */
    const char *desc;            /* what was asked for, for messages */
    AugConfig aug;               /* eval transform: img_size, in_chans, crop_pct, mean/std */
    int c, s;                    /* output channels, side */
    ImageFolder files;           /* kind 0 (labels -1 unless an ImageFolder) */
    int next;
    char **shards;               /* kind 1 */
    int nshards, cur;
    TarStream *ts;
    char **data_classes;         /* ImageFolder class dirs / classes.txt (may be NULL) */
    int ndata_classes;
    H5Data h5;                   /* kind 2 */
    long row;
    RawSample raw;
    long skipped;
    int has_labels;
    int32_t *perm;               /* aug.permute table (s*s), built on first use; NULL when off */
    float *perm_scratch;         /* s*s floats */
} PredSource;

/* data may be NULL when only image files are given; files[0..nfiles) are image paths.
 * aug must carry img_size / in_chans / mean / std / crop_pct / interpolation.
 * 0 ok, -1 with err (bad input: exit 2). */
int pred_source_open(PredSource *p, const char *data, char **files, int nfiles, const AugConfig *aug, char *err,
                     size_t errn);
/* Up to max samples into b (allocated for max rows of c,s,s); keys[i] malloc'd (caller
 * frees), labels in b->labels. Returns the number filled (0 = end), -1 with err. */
int pred_source_next(PredSource *p, Batch *b, int max, char **keys, char *err, size_t errn);
void pred_source_close(PredSource *p);
