/* The batching pipeline: a data spec -> batches of normalised float images.
 *
 *   reader thread  : streams shards (or walks sample indices) in the epoch's order,
 *                    through a shuffle buffer, and numbers every sample with its
 *                    position p in the epoch
 *   W workers      : decode + augment sample p into a slot, with an RNG seeded from
 *                    hash(seed, epoch, rank, p)
 *   assembler      : takes slots in position order, drops bad ones, fills batches,
 *                    applies mixup/cutmix per batch (RNG from (seed, epoch, batch
 *                    index)), and hands them to a bounded queue of ready batches
 *   loader_next    : the consumer takes the next ready batch (in order)
 *
 * Determinism: the same (seed, epoch, rank, world) gives the same batches, byte for
 * byte, whatever the number of workers. Every sample of the rank's share is seen
 * exactly once per epoch (bad samples are skipped, warned about and counted).
 *
 * Sources (spec string):
 *   - tar shards: brace pattern "train-{000000..000146}.tar", a directory of *.tar /
 *     *.tar.gz, a list file, or a single .tar(.gz) (see shard_list_expand). Shard i
 *     (in sorted/list order) belongs to rank i % world; each rank shuffles its shards'
 *     order per epoch and mixes samples through a shuffle buffer.
 *   - ImageFolder: a directory of class sub-directories with images (no .tar files).
 *   - HDF5 (.h5 / .hdf5): `images` (N,C,H,W) float32, already normalised, and `labels`
 *     (N) ints. No decode and no per-sample augmentation (batch mixing still applies
 *     when configured).
 *   ImageFolder and HDF5 sample indices are split over ranks after a per-epoch global
 *   permutation (index position i goes to rank i % world), like torch's
 *   DistributedSampler without padding.
 *   Evaluation (train == 0) splits tar shards by sample too: every rank reads every
 *   shard in order and keeps the samples at positions rank, rank + world, ..., so one
 *   validation shard serves any number of ranks and each sample is seen exactly once.
 *
 * Threads: the loader's own threads only; every function below is called from one
 * (the training) thread. */
#pragma once
#include "data/batch.h"
#include <stddef.h>
#include <stdint.h>

#include "data/augment.h"

typedef struct LoaderConfig {
    const char *spec;          /* data spec (see above); copied at open */
    int batch_size;            /* >= 1 */
    int train;                 /* 1: train augmentation + shuffling + drop_last default; 0: eval */
    int img_size;              /* output side (square); 0 with HDF5 = take the file's */
    int in_chans;              /* 1 or 3 (0 = 3, or the HDF5 file's C) */
    int workers;               /* decode+augment threads; <= 0 = number of cores */
    uint64_t seed;
    int shuffle_buffer;        /* tar sources: samples in the shuffle buffer; 0/1 = none.
                                  < 0 = default (4096 in train mode, 0 in eval) */
    int shuffle;               /* < 0 = default (train: 1, eval: 0); index sources: full permutation */
    int rank, world;           /* distributed split; world <= 1 = single process */
    int drop_last;             /* < 0 = default (train: 1, eval: 0) */
    int num_classes;           /* > 0 overrides classes.txt / ImageFolder / max label + 1 (at most
                                  DATA_MAX_CLASSES); a label >= it, or without a name in a
                                  classes.txt, is a skipped sample */
    int prefetch;              /* ready batches queued ahead (0 = 3) */
    int fast_decode;           /* JPEG DCT-scaled decode to about the needed size (not timm exact) */
    int allow_unlabeled;       /* 1: samples without a label pass with label -1 (HDF5 files without
                                  `labels`, for predict); else they are skipped as bad */
    int quiet;                 /* 1: no warning lines on stderr (still counted) */
    int max_warnings;          /* warning lines printed before counting silently (0 = 10) */
    AugConfig aug;             /* augmentation (train: aug_train + aug_mix_batch; eval: aug_eval);
                                  its img_size / mean / std are set from the fields above when
                                  it has such fields and they are unset */
} LoaderConfig;

/* Sensible defaults (train or eval); spec and batch_size still to set. */
void loader_config_default(LoaderConfig *cfg, int train);

typedef struct Loader Loader;

/* Opens the source, checks it (missing shard, empty list, bad pattern, shards < world size,
 * unreadable HDF5 ... -> NULL with err naming the file), determines num_classes.
 * No thread runs until loader_start_epoch. */
Loader *loader_open(const LoaderConfig *cfg, char *err, size_t errn);

/* Starts epoch `epoch` (any order; restarting or abandoning an epoch is fine).
 * 0 ok, -1 error (loader_error). */
int loader_start_epoch(Loader *L, int epoch);
/* Same, skipping the first `batch_index` batches exactly as if they had been consumed (for
 * resuming mid-epoch: the batches that follow, their augmentation and mixing, are the same).
 * Skipped samples are decoded (at reduced scale) only to learn whether they are valid. */
int loader_start_epoch_at(Loader *L, int epoch, long batch_index);

/* Next batch of the epoch: 1 = *out filled (memory owned by the loader, valid until the next
 * loader_next / loader_start_epoch / loader_close), 0 = end of epoch, -1 = error
 * (loader_error). out->soft is non-NULL only when batch mixing produced soft targets.
 * out->n == batch_size except for the last batch of an epoch without drop_last. */
int loader_next(Loader *L, Batch *out);

/* Index (0-based, within the epoch) of the batch the last loader_next returned. */
long loader_batch_index(const Loader *L);
/* Samples skipped (bad member, undecodable image, missing / out-of-range label, unreadable
 * shard or file, e.g. a FIFO named like an image) since open; and in the current epoch. */
long loader_skipped(const Loader *L);
long loader_skipped_epoch(const Loader *L);
/* Seconds the caller spent blocked inside loader_next since open (data-wait time). */
double loader_wait_seconds(const Loader *L);
/* Images delivered by loader_next since open (divide by wall time for images/s). */
long loader_images(const Loader *L);
int loader_num_classes(const Loader *L);
/* Samples of this rank per epoch (before bad samples are dropped). Index sources: exact.
 * Tar shards: counted on first call by a pass over the shards' member headers (cached);
 * -1 when unknown (unreadable). */
long loader_epoch_size(Loader *L);
/* Batches per epoch for this rank from loader_epoch_size and drop_last (-1 unknown). */
long loader_epoch_batches(Loader *L);
/* Class names when known (classes.txt / ImageFolder), else NULL; loader_num_class_names of
 * them (may differ from loader_num_classes: bound every lookup by it). */
const char *const *loader_class_names(const Loader *L);
int loader_num_class_names(const Loader *L);
/* "N samples skipped: 2 undecodable image, 1 missing or out-of-range label" since open. The same
 * per-reason line is printed on stderr at the end of every epoch that skipped samples (unless
 * quiet). */
void loader_skip_summary(const Loader *L, char *buf, size_t n);
/* Tar sources: every shard of the expanded list, in order (*n of them); else NULL. */
char *const *loader_shard_list(const Loader *L, int *n);
/* Number of shards / samples assigned to this rank (shards: 0 for index sources). */
int loader_num_shards(const Loader *L);
/* Output geometry: channels and side of the images in every batch. */
int loader_channels(const Loader *L);
int loader_img_size(const Loader *L);
/* Kind of the source: "shards", "imagefolder" or "hdf5". */
const char *loader_kind(const Loader *L);
const char *loader_error(const Loader *L);
void loader_close(Loader *L);
