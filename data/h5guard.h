/* HDF5 files from strangers, opened as data that stays inside the file.
 *
 * Every HDF5 read path (checkpoints, HDF5 data files) opens its groups and
 * datasets through these helpers, one path component at a time:
 *   - only hard links are followed: external links (other files) and soft
 *     links are refused before anything traverses them;
 *   - datasets with external storage (raw data in other files) or a virtual
 *     layout (data mapped from other datasets / files) are refused;
 *   - filter plugins are never loaded (built-in deflate / shuffle / ... only);
 *   - a dataset's declared size must be backed by what the file stores
 *     (h5g_check_storage), so a small file cannot make a reader allocate or
 *     loop over gigabytes of fill values.
 * Messages read "<who>: <key> ..." where who names the file (e.g.
 * "checkpoint a.h5") and key the object ("/model/head.weight"). */
#pragma once
#include <hdf5.h>
#include <stddef.h>

/* Stored bytes may be at most this many times smaller than the declared ones
 * for a filtered (compressed) dataset: deflate's best case is about 1032:1. */
#define H5G_MAX_RATIO 1100

#define H5G_MAX_LINKS (1 << 20)   /* links a file may hold (the scan at open visits each) */

/* Opens a regular file read-only (HDF5 error printing off) and scans it whole:
 * a file with any external or soft link, external storage or virtual dataset
 * anywhere is refused, whether or not the caller would read that object.
 * -1 with err. */
hid_t h5g_open_file(const char *path, const char *who, char *err, size_t errn);

/* 1 when every component of path ("a/b/c", relative to loc) exists as a hard
 * link, 0 when one is absent, -1 with err when one is a soft or external link
 * or the lookup fails. key names the object in messages (NULL: path). */
int h5g_exists(hid_t loc, const char *path, const char *who, const char *key, char *err, size_t errn);

/* Opens path (relative to loc) after checking every link on the way and, for
 * a dataset, its storage (h5g_check_dataset). want: H5I_GROUP, H5I_DATASET or
 * H5I_BADID (either). -1 with err naming who and key. */
hid_t h5g_open(hid_t loc, const char *path, H5I_type_t want, const char *who, const char *key, char *err,
               size_t errn);

/* Refuses external storage and virtual layouts. 0 / -1 with err. */
int h5g_check_dataset(hid_t ds, const char *who, const char *key, char *err, size_t errn);

/* The dataset's declared bytes (points x element size) against the bytes the
 * file stores for it and the file's size: unfiltered data must be fully
 * stored, filtered data at most H5G_MAX_RATIO times compressed. 0 / -1 with err. */
int h5g_check_storage(hid_t ds, const char *who, const char *key, char *err, size_t errn);

/* Formats err (when given) and clears HDF5's error stack, which a refused or failed call
 * leaves behind; returns -1, for `return h5g_fail(...)`. */
int h5g_fail(char *err, size_t errn, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
