/* data/h5crash.c: a crash inside libhdf5 while an untrusted file is open ends with exit 1 and a
 * message naming the file; a crash anywhere else is still a crash (no message, the signal or a
 * sanitizer's report). Each case runs in a child process. */
#include "data/h5guard.h"
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"


#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* Runs f in a child with stderr captured into out; returns the wait status. */
static int run(void (*f)(const char *), const char *path, char *out, size_t n) {
    int p[2];
    if (pipe(p)) exit(2);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        f(path);
        _exit(0);
    }
    close(p[1]);
    size_t k = 0;
    ssize_t r;
    while (k + 1 < n && (r = read(p[0], out + k, n - 1 - k)) > 0) k += (size_t)r;
    out[k] = 0;
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    return st;
}

/* libhdf5 converts float to double into a wild buffer: a crash inside the library (its type
 * conversion writes the buffer itself; a plain read would hand it to the kernel, EFAULT) */
static void crash_in_hdf5(const char *path) {
    char err[512];
    hid_t f = h5g_open_file(path, "test file", err, sizeof err);
    if (f < 0) { fprintf(stderr, "open failed: %s\n", err); _exit(3); }
    hid_t ds = H5Dopen2(f, "x", H5P_DEFAULT);
    H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, (void *)16);
    _exit(4);   /* not reached */
}

/* a bug of our own after an HDF5 file was opened: must stay a crash */
static void crash_elsewhere(const char *path) {
    char err[512];
    hid_t f = h5g_open_file(path, "test file", err, sizeof err);
    if (f < 0) _exit(3);
    int *volatile wild = (int *)(uintptr_t)16;
    *wild = 1;
    _exit(4);
}

int main(void) {
    char path[] = "/tmp/mixtape_h5crash_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 2;
    close(fd);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[1] = {1 << 16};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t ds = H5Dcreate2(f, "x", H5T_NATIVE_FLOAT, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    float *v = calloc(dims[0], sizeof *v);
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    free(v);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);

    char out[8192];
    int st = run(crash_in_hdf5, path, out, sizeof out);
    int ours = strstr(out, "the HDF5 library crashed") && strstr(out, path);
    if (SANITIZED && !ours)   /* the sanitizer's own interceptor may catch the wild write first */
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) != 0 && strstr(out, "AddressSanitizer"),
              "crash inside libhdf5 under ASan: reported by the sanitizer");
    else
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1 && ours,
              "crash inside libhdf5: exit 1 naming the file (status %d, stderr: %.200s)", st, out);

    st = run(crash_elsewhere, path, out, sizeof out);
    CHECK(!strstr(out, "the HDF5 library crashed") &&
              ((WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV) || (SANITIZED && strstr(out, "AddressSanitizer"))),
          "crash outside libhdf5 stays a crash (status %d)", st);
    remove(path);
    return check_summary("test_h5crash");
}
