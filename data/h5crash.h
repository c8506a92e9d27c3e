/* A crash inside libhdf5 while reading an untrusted file becomes a clean error (data/h5crash.c). */
#pragma once

/* Records path as the untrusted HDF5 file being read and, the first time, installs the
 * SIGSEGV / SIGBUS / SIGFPE handler. */
void h5crash_guard(const char *path);

/* A wall-clock watchdog around one read of an untrusted HDF5 file that libhdf5 may never
 * finish: on some damaged global heaps (the storage of variable-length strings) libhdf5 1.10
 * loops forever in H5C_protect. Armed only around reads that take microseconds on any sane
 * file (string attributes: never tensor data, so checkpoint size does not matter), it ends the
 * process with exit 1 and a message naming the file and key after H5CRASH_WATCH_SECONDS (or
 * $MIXTAPE_H5_READ_LIMIT seconds). Not nestable; begin/end pair on one thread. */
#define H5CRASH_WATCH_SECONDS 10
void h5crash_watch_begin(const char *path, const char *key);
void h5crash_watch_end(void);
