/* Writing WebDataset-style tar shards (hand-written POSIX ustar, deterministic: mtime 0,
 * mode 0644, owner 0/0). */
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct TarWriter TarWriter;
TarWriter *tar_writer_open(const char *path, char *err, size_t errn);
/* One regular-file member. Names up to 255 bytes (split into ustar prefix/name). 0 ok, -1 error. */
int tar_writer_add(TarWriter *w, const char *name, const void *data, size_t n, char *err, size_t errn);
/* Bytes written so far (headers + padded data, without the end-of-archive blocks). */
uint64_t tar_writer_bytes(const TarWriter *w);
/* Writes the two zero blocks and closes. 0 ok, -1 error (the writer is freed either way). */
int tar_writer_close(TarWriter *w, char *err, size_t errn);
/* Bytes a member of n data bytes takes in the archive. */
static inline uint64_t tar_member_bytes(size_t n) { return 512 + (((uint64_t)n + 511) / 512) * 512; }

/* Shards PREFIX-000000.tar, PREFIX-000001.tar, ...: a new shard starts before a sample when the
 * current one holds per_shard samples (0 = no limit) or the sample would take it over max_bytes
 * (0 = no limit; a shard always holds at least one sample). */
typedef struct ShardWriter ShardWriter;
typedef struct ShardStats {
    long samples;
    int shards;
    uint64_t bytes;        /* total size of the shard files */
} ShardStats;
ShardWriter *shard_writer_open(const char *prefix, long per_shard, uint64_t max_bytes, char *err, size_t errn);
/* One sample: <key>.<ext> image bytes, <key>.cls label (skipped when label < 0), optional
 * <key>.json (when json != NULL). 0 ok, -1 error. */
int shard_writer_add(ShardWriter *w, const char *key, const char *ext, const void *img, size_t n, int label,
                     const char *json, char *err, size_t errn);
/* Finishes the last shard; stats may be NULL. 0 ok, -1 error. Frees w. */
int shard_writer_close(ShardWriter *w, ShardStats *stats, char *err, size_t errn);
/* Path of shard i of prefix into buf ("PREFIX-%06d.tar"). */
void shard_writer_path(const char *prefix, int i, char *buf, size_t n);
