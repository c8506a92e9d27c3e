/* Output files that never destroy an input and appear whole or not at all.
 *
 * Every output (checkpoints, predictions, gradients, args.yaml, the confusion
 * matrix) is assembled in memory, then written to "<path>.tmp.<pid>" in the
 * same directory, fsync'd, renamed over <path>, and the directory fsync'd.
 * Every write, fsync and close is checked; on failure the temporary is removed,
 * an existing <path> is untouched and the message names the file and errno.
 * HDF5 outputs use HDF5's in-memory (core) driver, so HDF5 itself never does
 * disk I/O: a full disk is an ordinary write error here, never a half-closed
 * HDF5 file (HDF5 1.10 crashes at exit after a failed H5Fclose).
 *
 * Temporaries of processes that died (kill -9) are removed by the next run
 * writing the same output: out_clean_stale(). */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* "<path>.tmp.<pid>" of this process. -1 when it does not fit. */
int out_tmp_name(char *buf, size_t n, const char *path);

/* Refuses an output that is the same file as an input (same device and inode:
 * also a symlink or hard link to it). Paths that do not exist are never the
 * same. 0, or -1 with err "OUT_FLAG OUT is the same file as IN_FLAG IN". */
int out_same_file(const char *a, const char *b);   /* both exist and are one file (device + inode) */
int out_check_not_input(const char *out_flag, const char *out, const char *in_flag, const char *in, char *err,
                        size_t errn);

/* Atomic write of n bytes to path (see above). 0, or -1 with err. */
int out_write_atomic(const char *path, const void *buf, size_t n, char *err, size_t errn);

/* Text output: printf into t->f, then out_text_commit writes it atomically
 * (and frees it; out_text_abort frees without writing). */
typedef struct OutText {
    FILE *f;
    char *buf;
    size_t n;
} OutText;
int out_text_begin(OutText *t);   /* 0, -1 out of memory */
int out_text_commit(OutText *t, const char *path, char *err, size_t errn);
void out_text_abort(OutText *t);

/* HDF5 output in memory: a file access property list for H5Fcreate (core
 * driver, no backing store; expect_bytes sizes the first allocation), and the
 * commit that writes the file image atomically to path. out_h5_commit always
 * closes f. Both return -1 (err filled for commit) on failure. The commit
 * writes the core driver's own buffer (no second copy of the file in memory). */
int64_t out_h5_fapl(size_t expect_bytes);
int out_h5_commit(int64_t f, const char *path, char *err, size_t errn);
/* Closes an in-memory file without writing it (f may be -1: the create failed). */
void out_h5_abort(int64_t f);

/* Removes this kind of debris in dir: regular files named "<name>.tmp.<pid>"
 * where <name> is one of names[] (or "epoch-<N>.h5" when epochs != 0) and <pid>
 * is not a live process. Nothing else is touched. Each removal is reported on
 * log (may be NULL). Returns the number removed. */
int out_clean_stale(const char *dir, const char *const *names, int n_names, int epochs, FILE *log);
/* The same for the temporaries of one output path (its own directory and name). */
int out_clean_stale_path(const char *path, FILE *log);
