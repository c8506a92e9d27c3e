/* Converters from common dataset layouts to WebDataset-style tar shards
 * (PREFIX-000000.tar, ... plus classes.txt in PREFIX's directory). Used by `mixtape shards`.
 * All or nothing: the shards appear (renamed from temporaries) only when the conversion is
 * complete; an error or a stop request leaves no shard of this run behind (see ShardWriter). */
#pragma once
#include "data/dataset_info.h"
#include "data/tar_writer.h"
#include <stddef.h>
#include <stdint.h>

typedef struct ConvertOpts {
    const char *out_prefix;   /* "out/train" -> out/train-000000.tar ... (directory created) */
    long per_shard;           /* samples per shard, 0 = no limit */
    uint64_t max_bytes;       /* bytes per shard, 0 = no limit */
    const char *labels;       /* IDX: labels file (NULL: found beside the images by name) */
    const char *split;        /* CIFAR directory: "train" (default) or "test" */
    int overwrite;            /* replace existing shards of the prefix (else refused) */
    int (*stop)(void);        /* polled before every sample when set: non-zero stops (SIGINT / SIGTERM) */
    DatasetAcc *stats;        /* when set: every written image's pixels counted (ImageFolder images are
                                 decoded for it; one that does not decode is skipped) */
    /* Passed to the shard writer: called once the set is published (see ShardWriterOpts). */
    int (*publish)(void *ctx, int nclasses, char *err, size_t errn);
    void *publish_ctx;
} ConvertOpts;

typedef struct ConvertResult {
    long samples;
    int classes;
    int shards;
    uint64_t bytes;
    long skipped;             /* ImageFolder files whose header could not be read */
} ConvertResult;

/* Each: 0 ok, -1 error (err set; nothing of this run is left on disk). */
int convert_imagefolder(const char *src, const ConvertOpts *o, ConvertResult *r, char *err, size_t errn);
int convert_idx(const char *images, const ConvertOpts *o, ConvertResult *r, char *err, size_t errn);
int convert_cifar(const char *src, const ConvertOpts *o, ConvertResult *r, char *err, size_t errn);

/* Shared by the converters: creates the directory of the prefix and opens the shard writer
 * (refuses a prefix holding shards unless o->overwrite). NULL on error. */
ShardWriter *convert_open_writer(const ConvertOpts *o, char *err, size_t errn);
/* Creates the directory of prefix. */
int convert_prepare_out(const char *prefix, char *err, size_t errn);
/* Width of zero-padded keys for n samples (at least 6). */
int convert_key_width(long n);
