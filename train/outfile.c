/* Outputs that never destroy inputs, written atomically. See outfile.h. */
#define _GNU_SOURCE
#include "data/source_util.h"
#include "train/outfile.h"
#include "train/signals.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int out_tmp_name(char *buf, size_t n, const char *path) {
    int k = snprintf(buf, n, "%s.tmp.%ld", path, (long)getpid());
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

int out_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (!a || !b || stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int out_check_not_input(const char *out_flag, const char *out, const char *in_flag, const char *in, char *err,
                        size_t errn) {
    if (!out_same_file(out, in)) return 0;
    return src_seterr(err, errn, "%s %s is the same file as %s %s: refusing to overwrite an input", out_flag, out, in_flag,
                in);
}

/* Directory part of path ("." when none), for the fsync that makes a rename durable. */
static void dir_of(const char *path, char *dir, size_t n) {
    snprintf(dir, n, "%s", path);
    char *s = strrchr(dir, '/');
    if (!s) snprintf(dir, n, ".");
    else if (s == dir) dir[1] = 0;
    else *s = 0;
}

int out_write_atomic(const char *path, const void *buf, size_t n, char *err, size_t errn) {
    char tmp[4200];
    if (!path || !path[0]) return src_seterr(err, errn, "output: empty path");
    if (out_tmp_name(tmp, sizeof tmp, path) < 0) return src_seterr(err, errn, "%s: path too long", path);
    signals_temp_begin(tmp);
    unlink(tmp); /* a leftover of a dead process that had our pid; the name is ours */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) {
        int e = errno;
        signals_temp_end();
        return src_seterr(err, errn, "%s: cannot create %s: %s", path, tmp, strerror(e));
    }
    const char *p = buf;
    size_t left = n;
    int e = 0;
    const char *what = "writing";
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { e = w < 0 ? errno : EIO; break; }
        p += w;
        left -= (size_t)w;
    }
    if (!e && fsync(fd) != 0) { e = errno; what = "fsync of"; }
    if (close(fd) != 0 && !e) { e = errno; what = "closing"; }
    if (!e && rename(tmp, path) != 0) { e = errno; what = "renaming"; }
    if (e) {
        unlink(tmp);
        signals_temp_end();
        return src_seterr(err, errn, "%s: %s %s: %s", path, what, tmp, strerror(e));
    }
    signals_temp_end();
    char dir[4200];
    dir_of(path, dir, sizeof dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { fsync(dfd); close(dfd); } /* best effort: some file systems refuse fsync on directories */
    return 0;
}

int out_text_begin(OutText *t) {
    memset(t, 0, sizeof *t);
    t->f = open_memstream(&t->buf, &t->n);
    return t->f ? 0 : -1;
}

void out_text_abort(OutText *t) {
    if (t->f) fclose(t->f);
    free(t->buf);
    memset(t, 0, sizeof *t);
}

int out_text_commit(OutText *t, const char *path, char *err, size_t errn) {
    int bad = !t->f || ferror(t->f);
    if (t->f && fclose(t->f) != 0) bad = 1;
    t->f = NULL;
    int rc = bad ? src_seterr(err, errn, "%s: out of memory assembling the file", path)
                 : out_write_atomic(path, t->buf, t->n, err, errn);
    out_text_abort(t);
    return rc;
}

/* The core driver's buffer, tracked through HDF5's file image callbacks so that
 * the commit writes it directly instead of copying it (H5Fget_file_image): the
 * file then costs one copy in memory, not two. One in-memory output at a time;
 * a second one falls back to the copy. */
static struct {
    int busy;
    void *ptr;
    size_t size;
} core_img;

static int file_op(H5FD_file_image_op_t op) {
    return op == H5FD_FILE_IMAGE_OP_FILE_OPEN || op == H5FD_FILE_IMAGE_OP_FILE_RESIZE;
}
static void *ci_malloc(size_t size, H5FD_file_image_op_t op, void *ud) {
    (void)ud;
    void *p = malloc(size);
    if (p && file_op(op)) { core_img.ptr = p; core_img.size = size; }
    return p;
}
static void *ci_memcpy(void *dst, const void *src, size_t size, H5FD_file_image_op_t op, void *ud) {
    (void)op; (void)ud;
    return memcpy(dst, src, size);
}
static void *ci_realloc(void *ptr, size_t size, H5FD_file_image_op_t op, void *ud) {
    (void)ud;
    void *p = realloc(ptr, size);
    if (p && file_op(op)) { core_img.ptr = p; core_img.size = size; }
    return p;
}
static herr_t ci_free(void *ptr, H5FD_file_image_op_t op, void *ud) {
    (void)op; (void)ud;
    if (ptr && ptr == core_img.ptr) { core_img.ptr = NULL; core_img.size = 0; }
    free(ptr);
    return 0;
}
static void *ci_udata_copy(void *ud) { return ud; }
static herr_t ci_udata_free(void *ud) { (void)ud; return 0; }

int64_t out_h5_fapl(size_t expect_bytes) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    size_t inc = expect_bytes < ((size_t)1 << 16) ? ((size_t)1 << 16) : expect_bytes;
    if (H5Pset_fapl_core(fapl, inc, 0) < 0) { H5Pclose(fapl); return -1; }
    if (!core_img.busy) {
        H5FD_file_image_callbacks_t cb = {ci_malloc, ci_memcpy, ci_realloc, ci_free, ci_udata_copy, ci_udata_free,
                                          &core_img};
        if (H5Pset_file_image_callbacks(fapl, &cb) >= 0) {
            core_img.busy = 1;
            core_img.ptr = NULL;
            core_img.size = 0;
        }
        H5Eclear2(H5E_DEFAULT);
    }
    return fapl;
}

void out_h5_abort(int64_t f) {
    if (f >= 0) H5Fclose(f); /* in memory: nothing reaches the disk */
    H5Eclear2(H5E_DEFAULT);
    core_img.busy = 0;
}

int out_h5_commit(int64_t f, const char *path, char *err, size_t errn) {
    int rc = 0;
    void *copy = NULL;
    const void *img = NULL;
    ssize_t n = H5Fflush(f, H5F_SCOPE_GLOBAL) < 0 ? -1 : H5Fget_file_image(f, NULL, 0);
    H5F_info2_t fi;
    int direct = n > 0 && core_img.busy && core_img.ptr && core_img.size >= (size_t)n &&
                 H5Fget_info2(f, &fi) >= 0 && fi.super.version < 3; /* v3+ superblocks carry open-for-write flags */
    if (direct) img = core_img.ptr; /* flushed: the buffer is the file, byte for byte */
    else if (n <= 0 || !(copy = malloc((size_t)n)) || H5Fget_file_image(f, copy, (size_t)n) != n)
        rc = src_seterr(err, errn, "%s: cannot assemble the HDF5 file image (%s)", path, n > 0 && !copy ? "out of memory" : "HDF5 error");
    else img = copy;
    if (!rc) rc = out_write_atomic(path, img, (size_t)n, err, errn);
    /* Closing an in-memory file does no I/O: it cannot leave HDF5 half-closed. */
    if (H5Fclose(f) < 0 && !rc) rc = src_seterr(err, errn, "%s: closing the in-memory HDF5 file failed", path);
    H5Eclear2(H5E_DEFAULT);
    core_img.busy = 0;
    free(copy);
    return rc;
}

/* ---------- stale temporaries ---------- */

static int all_digits(const char *s, size_t n) {
    if (n == 0 || n > 18) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

/* "<base>.tmp.<pid>" with base accepted -> pid, else 0. */
static long stale_pid(const char *name, const char *const *names, int n_names, int epochs) {
    const char *t = strstr(name, ".tmp.");
    if (!t) return 0;
    while (strstr(t + 1, ".tmp.")) t = strstr(t + 1, ".tmp."); /* the last one */
    const char *digits = t + 5;
    if (!all_digits(digits, strlen(digits))) return 0;
    size_t bl = (size_t)(t - name);
    int ok = 0;
    for (int i = 0; i < n_names && !ok; i++) ok = strlen(names[i]) == bl && !strncmp(name, names[i], bl);
    if (!ok && epochs && bl > 9 && !strncmp(name, "epoch-", 6) && !strncmp(t - 3, ".h5", 3))
        ok = all_digits(name + 6, bl - 9);
    if (!ok) return 0;
    long pid = strtol(digits, NULL, 10);
    if (pid <= 0 || pid > (1L << 22) || pid == (long)getpid()) return 0; /* 2^22: Linux's PID_MAX_LIMIT */
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) return 0; /* alive (or not ours to judge) */
    return pid;
}

int out_clean_stale(const char *dir, const char *const *names, int n_names, int epochs, FILE *log) {
    DIR *d = opendir(dir && dir[0] ? dir : ".");
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!stale_pid(e->d_name, names, n_names, epochs)) continue;
        char p[4200];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir && dir[0] ? dir : ".", e->d_name);
        if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (unlink(p) == 0) {
            removed++;
            if (log) fprintf(log, "removed the stale temporary %s (%lld bytes) of a process that no longer runs\n", p,
                             (long long)st.st_size);
        }
    }
    closedir(d);
    return removed;
}

int out_clean_stale_path(const char *path, FILE *log) {
    char dir[4200];
    dir_of(path, dir, sizeof dir);
    const char *s = strrchr(path, '/');
    const char *base = s ? s + 1 : path;
    if (!base[0]) return 0;
    return out_clean_stale(dir, &base, 1, 0, log);
}
