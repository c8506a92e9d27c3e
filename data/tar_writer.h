/* Writing WebDataset-style tar shards (hand-written POSIX ustar, deterministic: mtime 0,
 * mode 0644, owner 0/0). */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* A TarWriter writes to a temporary name beside path (path.tmp.XXXXXX, same directory, so the
 * final rename is atomic): a reader never sees a half-written archive under path. */
typedef struct TarWriter TarWriter;
TarWriter *tar_writer_open(const char *path, char *err, size_t errn);
/* One regular-file member. Names up to 255 bytes (split into ustar prefix/name). 0 ok, -1 error. */
int tar_writer_add(TarWriter *w, const char *name, const void *data, size_t n, char *err, size_t errn);
/* Bytes written so far (headers + padded data, without the end-of-archive blocks). */
uint64_t tar_writer_bytes(const TarWriter *w);
/* Writes the two zero blocks, closes and renames the temporary to path. 0 ok, -1 error (the
 * temporary removed). The writer is freed either way. */
int tar_writer_close(TarWriter *w, char *err, size_t errn);
/* Writes the two zero blocks and closes, leaving the archive under its temporary name, which is
 * returned (malloc'd) for a later rename by the caller. NULL on error (temporary removed). */
char *tar_writer_finish(TarWriter *w, char *err, size_t errn);
/* Closes and removes the temporary. */
void tar_writer_abort(TarWriter *w);
/* Bytes a member of n data bytes takes in the archive. */
static inline uint64_t tar_member_bytes(size_t n) { return 512 + (((uint64_t)n + 511) / 512) * 512; }

/* Shards PREFIX-000000.tar, PREFIX-000001.tar, ...: a new shard starts before a sample when the
 * current one holds per_shard samples (0 = no limit) or the sample would take it over max_bytes
 * (0 = no limit; a shard always holds at least one sample).
 *
 * All or nothing: every shard is written under a temporary name and only renamed to PREFIX-N.tar
 * by shard_writer_commit, once the whole set is complete; shard_writer_abort (an error, a signal)
 * removes what this writer wrote. A prefix that already holds shards (PREFIX-<digits>.tar) is
 * refused unless overwrite is set; then its old shards are removed at commit, after the new set
 * is complete, so that no old higher-numbered shard mixes into the new set. */
typedef struct ShardWriter ShardWriter;
typedef struct ShardStats {
    long samples;
    int shards;
    uint64_t bytes;        /* total size of the shard files */
} ShardStats;
typedef struct ShardWriterOpts {
    long per_shard;        /* samples per shard, 0 = no limit */
    uint64_t max_bytes;    /* bytes per shard, 0 = no limit */
    int overwrite;         /* 1: replace the prefix's existing shards (and a different classes.txt) */
    int (*stop)(void);     /* polled before every sample when set: non-zero -> add fails ("interrupted") */
    /* When set: called by commit once the shards and classes.txt are in place, to write a file
     * that describes the set (dataset.json); non-zero takes the set back like a failed rename. */
    int (*publish)(void *ctx, int nclasses, char *err, size_t errn);
    void *publish_ctx;
} ShardWriterOpts;
ShardWriter *shard_writer_open_opts(const char *prefix, const ShardWriterOpts *o, char *err, size_t errn);
/* Same with overwrite 0 and no stop poll. */
ShardWriter *shard_writer_open(const char *prefix, long per_shard, uint64_t max_bytes, char *err, size_t errn);
/* One sample: <key>.<ext> image bytes, <key>.cls label (skipped when label < 0), optional
 * <key>.json (when json != NULL). 0 ok, -1 error. */
int shard_writer_add(ShardWriter *w, const char *key, const char *ext, const void *img, size_t n, int label,
                     const char *json, char *err, size_t errn);
/* Finishes the last shard and publishes the set: classes.txt beside PREFIX (when names != NULL;
 * an existing one with other names is refused unless overwrite), old shards of the prefix removed
 * (overwrite), temporaries renamed. stats may be NULL. 0 ok; -1 error with everything this writer
 * wrote removed. Frees w. */
int shard_writer_commit(ShardWriter *w, char *const *names, int nnames, ShardStats *stats, char *err, size_t errn);
/* shard_writer_commit without classes.txt. */
int shard_writer_close(ShardWriter *w, ShardStats *stats, char *err, size_t errn);
/* Removes every shard this writer wrote (all still temporaries) and frees w. */
void shard_writer_abort(ShardWriter *w);
/* Shards of prefix already on disk (files PREFIX-<digits>.tar); the first name found goes to
 * first (when non-NULL). -1 when the directory cannot be read (other than missing). */
int shard_prefix_existing(const char *prefix, char *first, size_t nfirst);
/* Path of shard i of prefix into buf ("PREFIX-%06d.tar"). */
void shard_writer_path(const char *prefix, int i, char *buf, size_t n);
