/* Counting the samples of a tar shard without reading its images: a pass over the member
 * headers (data skipped; for plain tar libarchive seeks over it). */
#pragma once

/* Samples of the shard at path: distinct consecutive keys (name up to the first '.' of the last
 * path component, as tar_stream) that have a jpg / jpeg / png member. When max_label != NULL the
 * small `cls` members are read and *max_label raised to the largest value seen below
 * DATA_MAX_CLASSES. Only a regular file is opened. Counting stops
 * quietly at a corrupt header (the samples before it count). -1 when the file cannot be opened. */
long shard_count(const char *path, int *max_label);
