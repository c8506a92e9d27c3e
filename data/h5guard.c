/* See h5guard.h: HDF5 objects are followed only inside their own file. */
#include "data/h5guard.h"
#include "data/h5crash.h"
#include "data/source_util.h"
#include <H5PLpublic.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int h5g_fail(char *err, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    src_vseterr(err, n, fmt, ap);
    va_end(ap);
    H5Eclear2(H5E_DEFAULT);
    return -1;
}

/* The whole-file scan: every link below the root, every dataset's storage. */
typedef struct Scan {
    const char *who;
    char *err;
    size_t errn;
    long links;
} Scan;

static herr_t scan_cb(hid_t g, const char *name, const H5L_info_t *li, void *ud) {
    Scan *s = ud;
    char key[600];
    snprintf(key, sizeof key, "/%s", name);
    if (++s->links > H5G_MAX_LINKS)
        return h5g_fail(s->err, s->errn, "%s: more than %d objects; refused", s->who, H5G_MAX_LINKS);
    if (li->type != H5L_TYPE_HARD)
        return h5g_fail(s->err, s->errn, "%s: %s is %s; refused (objects must be stored in the file itself)", s->who, key,
                    li->type == H5L_TYPE_EXTERNAL ? "an external link to another file"
                    : li->type == H5L_TYPE_SOFT   ? "a soft link"
                                                  : "a user-defined link");
    /* every component of name is a hard link: H5Lvisit recurses into hard-linked groups only */
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0) return h5g_fail(s->err, s->errn, "%s: %s: cannot open", s->who, key);
    int rc = H5Iget_type(o) == H5I_DATASET ? h5g_check_dataset(o, s->who, key, s->err, s->errn) : 0;
    H5Oclose(o);
    return rc < 0 ? -1 : 0;
}

/* The last file that passed the scan (process-wide; readers open files from one thread). */
static struct stat scanned;
static int have_scanned;
static pthread_mutex_t scanned_mu = PTHREAD_MUTEX_INITIALIZER;

static int same_file(const struct stat *a) {
    pthread_mutex_lock(&scanned_mu);
    const struct stat *b = &scanned;
    int same = have_scanned && a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
               a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
    pthread_mutex_unlock(&scanned_mu);
    return same;
}
static void remember_file(const struct stat *a) {
    pthread_mutex_lock(&scanned_mu);
    scanned = *a;
    have_scanned = 1;
    pthread_mutex_unlock(&scanned_mu);
}

hid_t h5g_open_file(const char *path, const char *who, char *err, size_t errn) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    H5PLset_loading_state(0); /* a filter id in a file never loads a plugin library: built-in filters only */
    struct stat st;
    if (!path || !path[0]) return h5g_fail(err, errn, "%s: empty path", who);
    if (stat(path, &st) < 0) return h5g_fail(err, errn, "%s: %s", who, strerror(errno));
    if (!S_ISREG(st.st_mode)) return h5g_fail(err, errn, "%s: not a regular file", who);
    h5crash_guard(path);
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) return h5g_fail(err, errn, "%s: not an HDF5 file", who);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (f < 0) return h5g_fail(err, errn, "%s: cannot open (damaged HDF5 file?)", who);
    /* Refuse the file as a whole when anything in it points outside, read or not.
     * A command opens one file several times (attributes, then tensors): the
     * scan is skipped when the very file just scanned (same inode, size and
     * times, taken from the open descriptor) is opened again. */
    struct stat fst;
    void *fdp = NULL;
    int have_id = H5Fget_vfd_handle(f, H5P_DEFAULT, &fdp) >= 0 && fdp && fstat(*(int *)fdp, &fst) == 0;
    H5Eclear2(H5E_DEFAULT);
    if (have_id && same_file(&fst)) return f;
    Scan sc = {who, err, errn, 0};
    if (err && errn) err[0] = 0;
    if (H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, scan_cb, &sc) < 0) {
        if (err && errn && !err[0]) snprintf(err, errn, "%s: cannot list its objects (damaged HDF5 file?)", who);
        H5Eclear2(H5E_DEFAULT);
        H5Fclose(f);
        return -1;
    }
    if (have_id) remember_file(&fst);
    return f;
}

/* One path component: 1 hard link, 0 absent, -1 refused / error. */
static int check_link(hid_t loc, const char *name, const char *who, const char *key, char *err, size_t errn) {
    htri_t ex = H5Lexists(loc, name, H5P_DEFAULT); /* never follows the link itself */
    if (ex < 0) return h5g_fail(err, errn, "%s: %s: cannot look up '%s'", who, key, name);
    if (ex == 0) return 0;
    H5L_info_t li;
    if (H5Lget_info(loc, name, &li, H5P_DEFAULT) < 0) return h5g_fail(err, errn, "%s: %s: cannot read link '%s'", who, key, name);
    if (li.type == H5L_TYPE_HARD) return 1;
    return h5g_fail(err, errn, "%s: %s: '%s' is %s; refused (objects must be stored in the file itself)", who, key, name,
                li.type == H5L_TYPE_EXTERNAL ? "an external link to another file"
                : li.type == H5L_TYPE_SOFT   ? "a soft link"
                                             : "a user-defined link");
}

/* Walks "a/b/c" below loc, every component a hard link. Returns the opened
 * last object (or, with probe, 0 when a component is absent). */
static hid_t walk(hid_t loc, const char *path, int probe, int *absent, const char *who, const char *key, char *err,
                  size_t errn) {
    char part[256];
    hid_t cur = loc, owned = -1;
    const char *s = path;
    *absent = 0;
    while (*s == '/') s++;
    if (!*s) return H5Oopen(loc, ".", H5P_DEFAULT);
    while (*s) {
        const char *e = strchr(s, '/');
        size_t L = e ? (size_t)(e - s) : strlen(s);
        if (L == 0 || L >= sizeof part) {
            if (owned >= 0) H5Oclose(owned);
            return h5g_fail(err, errn, "%s: %s: bad object path '%s'", who, key, path);
        }
        memcpy(part, s, L);
        part[L] = 0;
        int r = check_link(cur, part, who, key, err, errn);
        if (r <= 0) {
            if (owned >= 0) H5Oclose(owned);
            if (r == 0) {
                *absent = 1;
                if (!probe) h5g_fail(err, errn, "%s: %s is missing", who, key);
            }
            return -1;
        }
        hid_t next = H5Oopen(cur, part, H5P_DEFAULT);
        if (owned >= 0) H5Oclose(owned);
        if (next < 0) return h5g_fail(err, errn, "%s: %s: cannot open '%s'", who, key, part);
        owned = cur = next;
        s = e ? e + 1 : s + L;
        while (*s == '/') s++;
    }
    return owned;
}

int h5g_exists(hid_t loc, const char *path, const char *who, const char *key, char *err, size_t errn) {
    int absent;
    hid_t o = walk(loc, path, 1, &absent, who, key ? key : path, err, errn);
    if (o < 0) return absent ? 0 : -1;
    H5Oclose(o);
    return 1;
}

hid_t h5g_open(hid_t loc, const char *path, H5I_type_t want, const char *who, const char *key, char *err,
               size_t errn) {
    int absent;
    hid_t o = walk(loc, path, 0, &absent, who, key, err, errn);
    if (o < 0) return -1;
    H5I_type_t t = H5Iget_type(o);
    if (want != H5I_BADID && t != want) {
        H5Oclose(o);
        return h5g_fail(err, errn, "%s: %s is not a %s", who, key, want == H5I_GROUP ? "group" : "dataset");
    }
    if (t == H5I_DATASET && h5g_check_dataset(o, who, key, err, errn) < 0) {
        H5Oclose(o);
        return -1;
    }
    return o;
}

int h5g_check_dataset(hid_t ds, const char *who, const char *key, char *err, size_t errn) {
    hid_t dcpl = H5Dget_create_plist(ds);
    if (dcpl < 0) return h5g_fail(err, errn, "%s: %s: cannot read its storage properties", who, key);
    H5D_layout_t lay = H5Pget_layout(dcpl);
    int next = H5Pget_external_count(dcpl);
    H5Pclose(dcpl);
    if (lay < 0 || next < 0) return h5g_fail(err, errn, "%s: %s: cannot read its storage layout", who, key);
    if (next > 0)
        return h5g_fail(err, errn, "%s: %s stores its data in %d external file(s); refused (data must be in the file itself)",
                    who, key, next);
    if (lay == H5D_VIRTUAL)
        return h5g_fail(err, errn, "%s: %s is a virtual dataset (mapped from other datasets or files); refused", who, key);
    return 0;
}

int h5g_check_storage(hid_t ds, const char *who, const char *key, char *err, size_t errn) {
    hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds), dcpl = H5Dget_create_plist(ds);
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    size_t esz = ty >= 0 ? H5Tget_size(ty) : 0;
    int nfilt = dcpl >= 0 ? H5Pget_nfilters(dcpl) : -1;
    if (sp >= 0) H5Sclose(sp);
    if (ty >= 0) H5Tclose(ty);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (np < 0 || esz == 0 || nfilt < 0) return h5g_fail(err, errn, "%s: %s: cannot read its size", who, key);
    if (np == 0) return 0;
    double declared = (double)np * (double)esz, stored = (double)H5Dget_storage_size(ds);
    hsize_t fsize = 0;
    hid_t f = H5Iget_file_id(ds);
    herr_t fs = f >= 0 ? H5Fget_filesize(f, &fsize) : -1;
    if (f >= 0) H5Idec_ref(f);
    if (fs < 0) return h5g_fail(err, errn, "%s: %s: cannot read the file size", who, key);
    if (stored > (double)fsize)
        return h5g_fail(err, errn, "%s: %s claims %.0f stored bytes in a file of %llu bytes", who, key, stored,
                    (unsigned long long)fsize);
    if (nfilt == 0 && stored < declared)
        return h5g_fail(err, errn, "%s: %s declares %.0f bytes of data but the file stores %.0f (unwritten or truncated)",
                    who, key, declared, stored);
    if (nfilt > 0 && stored * H5G_MAX_RATIO < declared)
        return h5g_fail(err, errn,
                    "%s: %s declares %.0f bytes of data but stores only %.0f compressed (more than %d:1); refused",
                    who, key, declared, stored, H5G_MAX_RATIO);
    return 0;
}
