/* classes.txt: one class name a line, index = line number. */
#include "data/source.h"
#include "data/source_util.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int classes_read(const char *path, char ***names, int *n, char *err, size_t errn) {
    *names = NULL;
    *n = 0;
    if (src_path_kind(path) == 0) return 0; /* absent: no names (a FIFO etc. fails in src_read_file) */
    char ep[300];
    uint8_t *buf;
    size_t len;
    if (src_read_file(path, (size_t)64 << 20, &buf, &len, err, errn)) return -1;
    /* lines; trailing blank lines dropped, CR stripped */
    int cap = 0, cnt = 0;
    char **v = NULL;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && buf[j] != '\n') j++;
        size_t b = j;
        if (b > i && buf[b - 1] == '\r') b--;
        if (b - i > DATA_MAX_CLASS_NAME || cnt >= DATA_MAX_CLASSES) {
            classes_free(v, cnt);
            free(buf);
            if (cnt >= DATA_MAX_CLASSES)
                return src_seterr(err, errn, "%s: more than %d classes", src_escape(path, ep, sizeof ep), DATA_MAX_CLASSES);
            return src_seterr(err, errn, "%s: line %d is longer than %d bytes", src_escape(path, ep, sizeof ep), cnt + 1,
                              DATA_MAX_CLASS_NAME);
        }
        if (cnt == cap) {
            cap = cap ? cap * 2 : 64;
            char **nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) { classes_free(v, cnt); free(buf); return src_seterr(err, errn, "out of memory"); }
            v = nv;
        }
        char *s = malloc(b - i + 1);
        if (!s) { classes_free(v, cnt); free(buf); return src_seterr(err, errn, "out of memory"); }
        memcpy(s, buf + i, b - i);
        s[b - i] = 0;
        if (memchr(s, 0, b - i)) { free(s); classes_free(v, cnt); free(buf); return src_seterr(err, errn, "%s: NUL byte in a class name", path); }
        v[cnt++] = s;
        i = j + 1;
    }
    free(buf);
    while (cnt > 0 && v[cnt - 1][0] == 0) free(v[--cnt]);
    if (cnt == 0) { free(v); v = NULL; }
    *names = v;
    *n = cnt;
    return 0;
}

void classes_free(char **names, int n) {
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

int classes_write(const char *path, char *const *names, int n, char *err, size_t errn) {
    char ep[300];
    for (int i = 0; i < n; i++) /* a newline in a name would shift every later index */
        if (src_has_control(names[i]))
            return src_seterr(err, errn, "class name '%s' holds a control character", src_escape(names[i], ep, sizeof ep));
    char *tmp = malloc(strlen(path) + 32);
    if (!tmp) return src_seterr(err, errn, "out of memory");
    sprintf(tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) { src_seterr(err, errn, "cannot write %s: %s", tmp, strerror(errno)); free(tmp); return -1; }
    int bad = 0;
    for (int i = 0; i < n; i++) bad |= fprintf(f, "%s\n", names[i]) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        src_seterr(err, errn, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}
