/* A crash inside libhdf5 while reading an untrusted file becomes a clean error (data/h5crash.c). */
#pragma once

/* Records path as the untrusted HDF5 file being read and, the first time, installs the
 * SIGSEGV / SIGBUS / SIGFPE handler. */
void h5crash_guard(const char *path);
