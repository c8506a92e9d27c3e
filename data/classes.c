/* classes.txt: one class name a line, index = line number. */
#include "data/source.h"
#include "data/source_util.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int classes_read(const char *path, char ***names, int *n, char *err, size_t errn) {
    *names = NULL;
    *n = 0;
    if (src_path_kind(path) == 0) return 0; /* absent: no names */
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
    FILE *f = fopen(path, "wb");
    if (!f) return src_seterr(err, errn, "cannot write %s: %s", path, strerror(errno));
    for (int i = 0; i < n; i++) fprintf(f, "%s\n", names[i]);
    if (fclose(f) != 0) return src_seterr(err, errn, "cannot write %s: %s", path, strerror(errno));
    return 0;
}
