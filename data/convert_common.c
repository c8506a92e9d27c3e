#include "data/convert.h"
#include "data/source.h"
#include "data/source_util.h"
#include <stdlib.h>

int convert_prepare_out(const char *prefix, char *err, size_t errn) {
    if (!prefix || !*prefix) return src_seterr(err, errn, "no output prefix");
    char *dir = src_dirname(prefix);
    if (!dir) return src_seterr(err, errn, "out of memory");
    int rc = src_mkdirs(dir, err, errn);
    free(dir);
    return rc;
}

int convert_write_classes(const char *prefix, char *const *names, int n, char *err, size_t errn) {
    char *dir = src_dirname(prefix);
    char *path = dir ? src_join(dir, "classes.txt") : NULL;
    free(dir);
    if (!path) return src_seterr(err, errn, "out of memory");
    int rc = classes_write(path, names, n, err, errn);
    free(path);
    return rc;
}

int convert_key_width(long n) {
    int w = 1;
    for (long v = n > 0 ? n - 1 : 0; v >= 10; v /= 10) w++;
    return w < 6 ? 6 : w;
}
