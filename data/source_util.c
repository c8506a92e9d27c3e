#include "data/source_util.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int src_vseterr(char *err, size_t errn, const char *fmt, va_list ap) {
    if (err && errn) vsnprintf(err, errn, fmt, ap);
    return -1;
}

int src_seterr(char *err, size_t errn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    src_vseterr(err, errn, fmt, ap);
    va_end(ap);
    return -1;
}

void src_strlcpy(char *dst, const char *src, size_t n) {
    if (!n) return;
    size_t l = strlen(src);
    if (l >= n) l = n - 1;
    memcpy(dst, src, l);
    dst[l] = 0;
}

int src_ends_with_ci(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    if (lx > ls) return 0;
    for (size_t i = 0; i < lx; i++)
        if (tolower((unsigned char)s[ls - lx + i]) != tolower((unsigned char)suffix[i])) return 0;
    return 1;
}

int src_is_image_name(const char *name) {
    return src_ends_with_ci(name, ".jpg") || src_ends_with_ci(name, ".jpeg") || src_ends_with_ci(name, ".png");
}

char *src_dirname(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    size_t l = (size_t)(slash - path);
    char *d = malloc(l + 1);
    if (!d) return NULL;
    memcpy(d, path, l);
    d[l] = 0;
    return d;
}

char *src_join(const char *a, const char *b) {
    if (b[0] == '/' || !a[0] || !strcmp(a, ".")) return strdup(b);
    size_t la = strlen(a), lb = strlen(b);
    int slash = a[la - 1] != '/';
    char *p = malloc(la + slash + lb + 1);
    if (!p) return NULL;
    memcpy(p, a, la);
    if (slash) p[la] = '/';
    memcpy(p + la + slash, b, lb + 1);
    return p;
}

int src_path_kind(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (S_ISREG(st.st_mode)) return 1;
    if (S_ISDIR(st.st_mode)) return 2;
    return 3;
}

static const char *kind_name(mode_t m) {
    return S_ISFIFO(m) ? "FIFO" : S_ISCHR(m) ? "character device" : S_ISBLK(m) ? "block device" : S_ISSOCK(m) ? "socket"
         : S_ISDIR(m) ? "directory" : "special file";
}

int src_open_regular(const char *path, char *err, size_t errn) {
    char ep[300];
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return src_seterr(err, errn, "%s: %s", src_escape(path, ep, sizeof ep), strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return src_seterr(err, errn, "%s: %s", src_escape(path, ep, sizeof ep), strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return src_seterr(err, errn, "%s: not a regular file (%s)", src_escape(path, ep, sizeof ep), kind_name(st.st_mode));
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int e = errno;
        close(fd);
        return src_seterr(err, errn, "%s: %s", src_escape(path, ep, sizeof ep), strerror(e));
    }
    return fd;
}

FILE *src_fopen_regular(const char *path, char *err, size_t errn) {
    int fd = src_open_regular(path, err, errn);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) { src_seterr(err, errn, "%s: %s", path, strerror(errno)); close(fd); }
    return f;
}

const char *src_escape(const char *s, char *out, size_t n) {
    if (!n) return out;
    size_t k = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char tmp[8];
        size_t l;
        if (c == '\n') l = (size_t)snprintf(tmp, sizeof tmp, "\\n");
        else if (c == '\t') l = (size_t)snprintf(tmp, sizeof tmp, "\\t");
        else if (c == '\r') l = (size_t)snprintf(tmp, sizeof tmp, "\\r");
        else if (c < 0x20 || c == 0x7f) l = (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", c);
        else { tmp[0] = (char)c; l = 1; }
        if (k + l + 4 > n) { /* room for "..." and the NUL */
            if (s[0]) { size_t d = n - 1 - k < 3 ? n - 1 - k : 3; memcpy(out + k, "...", d); k += d; }
            break;
        }
        memcpy(out + k, tmp, l);
        k += l;
    }
    out[k] = 0;
    return out;
}

int src_has_control(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f) return 1;
    return 0;
}

int src_read_file(const char *path, size_t max, uint8_t **out, size_t *n, char *err, size_t errn) {
    *out = NULL;
    *n = 0;
    FILE *f = src_fopen_regular(path, err, errn);
    if (!f) return -1;
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) { fclose(f); return src_seterr(err, errn, "%s: out of memory", path); }
    for (;;) {
        if (len == cap) {
            if (cap > max) break;
            size_t nc = cap * 2;
            uint8_t *nb = realloc(buf, nc);
            if (!nb) { free(buf); fclose(f); return src_seterr(err, errn, "%s: out of memory", path); }
            buf = nb;
            cap = nc;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    int ioerr = ferror(f);
    fclose(f);
    if (ioerr) { free(buf); return src_seterr(err, errn, "%s: read error", path); }
    if (len > max) { free(buf); return src_seterr(err, errn, "%s: larger than %zu bytes", path, max); }
    *out = buf;
    *n = len;
    return 0;
}

int src_mkdirs(const char *dir, char *err, size_t errn) {
    size_t l = strlen(dir);
    char *p = malloc(l + 1);
    if (!p) return src_seterr(err, errn, "out of memory");
    memcpy(p, dir, l + 1);
    for (size_t i = 1; i <= l; i++) {
        if (p[i] == '/' || p[i] == 0) {
            char c = p[i];
            p[i] = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                src_seterr(err, errn, "cannot create directory %s: %s", p, strerror(errno));
                free(p);
                return -1;
            }
            p[i] = c;
        }
    }
    free(p);
    if (src_path_kind(dir) != 2) return src_seterr(err, errn, "%s is not a directory", dir);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
void src_sort_strings(char **v, int n) {
    if (n > 1) qsort(v, (size_t)n, sizeof *v, cmp_str);
}

int src_parse_floats(const char *s, float *out, int max) {
    int n = 0;
    while (s && *s) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || n == max) return -1;
        out[n++] = (float)v;
        if (*end == ',') s = end + 1;
        else if (*end == 0) break;
        else return -1;
    }
    return n;
}
