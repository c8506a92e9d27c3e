/* What a dataset says about itself: per-channel mean and std of its pixel values in [0,1],
 * image sizes, channels, sample and class counts. Accumulated exactly (integer sums of the
 * 8-bit pixel values and of their squares) over every image a converter writes or an
 * ImageFolder holds; the JSON text of one set is written here, the file around it (dataset.json
 * beside shards, .mixtape-dataset.json in an ImageFolder) by train/dataset_json.c. */
#pragma once
#include "data/image.h"
#include "data/source.h"
#include <stddef.h>
#include <stdint.h>

#define DATASET_JSON "dataset.json"                 /* beside shards, next to classes.txt */
#define DATASET_CACHE ".mixtape-dataset.json"       /* inside an ImageFolder used directly */
#define DATASET_MAX_SAMPLES ((uint64_t)1 << 40)

/* Sums over channels R, G, B and the luma (PIL's convert('L'), what a 1-channel model sees
 * of an RGB image). Gray images count the same value in all four. */
typedef struct DatasetAcc {
    unsigned __int128 s1[4], s2[4];
    uint64_t pixels;        /* per channel */
    long images;
    int any_color;          /* an image had 3 channels */
    int hmin, hmax, wmin, wmax;
} DatasetAcc;

typedef struct DatasetInfo {
    long samples;
    int classes;            /* 0 unknown */
    int channels;           /* 1: every image gray; 3 */
    int hmin, hmax, wmin, wmax;
    double mean[3], std[3]; /* channels values */
    double mean_gray, std_gray;
} DatasetInfo;

void dataset_acc_init(DatasetAcc *a);
/* One decoded image (c = 1 or 3). */
void dataset_acc_add(DatasetAcc *a, const Image *im);
/* One encoded image (JPEG / PNG bytes) decoded at full size; gray files count as gray.
 * 0 ok, -1 with err (the image is not counted). */
int dataset_acc_add_encoded(DatasetAcc *a, const uint8_t *bytes, size_t n, char *err, size_t errn);
void dataset_acc_merge(DatasetAcc *dst, const DatasetAcc *src);
/* The statistics. -1 when no pixel was counted. */
int dataset_acc_finish(const DatasetAcc *a, int classes, DatasetInfo *out);

/* Every image of an ImageFolder (threads over files; the sums are integers, so the result does
 * not depend on their number). Unreadable images are skipped and counted in *skipped. 0 ok,
 * -1 err (out of memory). */
int dataset_acc_imagefolder(const ImageFolder *f, DatasetAcc *a, long *skipped, char *err, size_t errn);

/* A cheap fingerprint of an ImageFolder's files (count, total bytes, newest mtime in ns) for the cache:
 * a changed folder recomputes its statistics. 0 ok, -1 err naming the file. */
typedef struct FolderPrint { long files; uint64_t bytes; int64_t mtime_max; } FolderPrint;
int dataset_folder_print(const ImageFolder *f, FolderPrint *p, char *err, size_t errn);

/* The JSON object of one set: {"samples": N, "classes": K, "channels": C, "height": H,
 * "width": W (when sizes vary: "height_min", "height_max", "width_min", "width_max"),
 * "mean": [...], "std": [...], and for 3 channels "mean_gray": m, "std_gray": s, the luma
 * statistics a 1-channel model sees}. Returns the length needed,
 * like snprintf. */
size_t dataset_info_json(const DatasetInfo *d, char *buf, size_t n);
