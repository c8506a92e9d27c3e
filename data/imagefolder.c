/* ImageFolder trees: root/<class>/<image>, classes sorted by name as torchvision does. */
#include "data/source.h"
#include "data/source_util.h"
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct { char **v; int n, cap; } Names;

static int names_push(Names *l, const char *s) {
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 64;
        char **nv = realloc(l->v, (size_t)nc * sizeof *nv);
        if (!nv) return -1;
        l->v = nv;
        l->cap = nc;
    }
    if (!(l->v[l->n] = strdup(s))) return -1;
    l->n++;
    return 0;
}

static void names_free(Names *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* want_dirs: 1 sub-directories, 0 image files. Sorted by name. */
static int list_dir(const char *dir, int want_dirs, Names *out, char *err, size_t errn) {
    DIR *d = opendir(dir);
    if (!d) return src_seterr(err, errn, "cannot open directory %s: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) && !rc) {
        if (e->d_name[0] == '.') continue;
        if (want_dirs) {
            char *p = src_join(dir, e->d_name);
            if (!p) { rc = src_seterr(err, errn, "out of memory"); break; }
            int k = src_path_kind(p);
            if (k == 2 && src_has_control(e->d_name)) { /* would break classes.txt and the terminal */
                char ep[300];
                rc = src_seterr(err, errn, "class directory '%s': its name holds a control character (newline, escape, ...); "
                                "rename it", src_escape(p, ep, sizeof ep));
            } else if (k == 2 && out->n >= DATA_MAX_CLASSES) {
                rc = src_seterr(err, errn, "ImageFolder %s: more than %d class directories", dir, DATA_MAX_CLASSES);
            } else if (k == 2 && names_push(out, e->d_name)) {
                rc = src_seterr(err, errn, "out of memory");
            }
            free(p);
        } else if (src_is_image_name(e->d_name)) {
            if (names_push(out, e->d_name)) rc = src_seterr(err, errn, "out of memory");
        }
    }
    closedir(d);
    if (!rc) src_sort_strings(out->v, out->n);
    return rc;
}

int imagefolder_scan(const char *dir, ImageFolder *f, char *err, size_t errn) {
    memset(f, 0, sizeof *f);
    if (src_path_kind(dir) != 2) return src_seterr(err, errn, "ImageFolder root '%s' is not a directory", dir);
    Names classes = {0}, files = {0};
    int *labels = NULL, lcap = 0;
    if (list_dir(dir, 1, &classes, err, errn)) { names_free(&classes); return -1; }
    if (classes.n == 0) { names_free(&classes); return src_seterr(err, errn, "ImageFolder root '%s' has no class directories", dir); }
    for (int c = 0; c < classes.n; c++) {
        char *cdir = src_join(dir, classes.v[c]);
        Names imgs = {0};
        if (!cdir || list_dir(cdir, 0, &imgs, err, errn)) goto fail_c;
        for (int i = 0; i < imgs.n; i++) {
            char *p = src_join(cdir, imgs.v[i]);
            if (!p) goto fail_c;
            if (files.n == files.cap) {
                int nc = files.cap ? files.cap * 2 : 256;
                char **nv = realloc(files.v, (size_t)nc * sizeof *nv);
                if (!nv) { free(p); goto fail_c; }
                files.v = nv;
                files.cap = nc;
            }
            if (files.n >= lcap) {
                int nc = lcap ? lcap * 2 : 256;
                int *nl = realloc(labels, (size_t)nc * sizeof *nl);
                if (!nl) { free(p); goto fail_c; }
                labels = nl;
                lcap = nc;
            }
            files.v[files.n] = p;
            labels[files.n] = c;
            files.n++;
        }
        names_free(&imgs);
        free(cdir);
        continue;
    fail_c:
        if (!err || !errn || !err[0]) src_seterr(err, errn, "out of memory");
        names_free(&imgs);
        free(cdir);
        names_free(&classes);
        names_free(&files);
        free(labels);
        return -1;
    }
    if (files.n == 0) {
        names_free(&classes);
        names_free(&files);
        free(labels);
        return src_seterr(err, errn, "ImageFolder root '%s' has no jpg/jpeg/png images", dir);
    }
    f->files = files.v;
    f->n = files.n;
    f->labels = labels;
    f->classes = classes.v;
    f->nclasses = classes.n;
    return 0;
}

int imagefolder_read(const ImageFolder *f, int i, RawSample *s) {
    s->bad = 0;
    s->why[0] = 0;
    s->nbytes = 0;
    s->label = -1;
    s->ext[0] = 0;
    if (i < 0 || i >= f->n) {
        s->bad = 1;
        snprintf(s->why, sizeof s->why, "ImageFolder index %d out of range", i);
        return -1;
    }
    const char *path = f->files[i];
    src_strlcpy(s->key, path, sizeof s->key);
    src_strlcpy(s->origin, path, sizeof s->origin);
    s->label = f->labels[i];
    const char *dot = strrchr(path, '.');
    size_t k = 0;
    if (dot)
        for (const char *p = dot + 1; *p && k + 1 < sizeof s->ext; p++)
            s->ext[k++] = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    s->ext[k] = 0;
    char ep[220];
    FILE *fp = src_fopen_regular(path, s->why, sizeof s->why); /* a FIFO named x.png: refused, not waited on */
    if (!fp) {
        s->bad = 1;
        return -1;
    }
    size_t len = 0;
    for (;;) {
        if (len == s->cap || !s->bytes) {
            size_t want = s->cap ? s->cap * 2 : 65536;
            if (s->cap >= RAW_SAMPLE_MAX_MEMBER + 1) {
                fclose(fp);
                s->bad = 1;
                s->nbytes = 0;
                snprintf(s->why, sizeof s->why, "%s: over the %zu MiB limit", src_escape(path, ep, sizeof ep),
                         RAW_SAMPLE_MAX_MEMBER >> 20);
                return -1;
            }
            if (want > RAW_SAMPLE_MAX_MEMBER + 1) want = RAW_SAMPLE_MAX_MEMBER + 1;
            if (raw_sample_reserve(s, want)) {
                fclose(fp);
                s->bad = 1;
                snprintf(s->why, sizeof s->why, "%s: out of memory", src_escape(path, ep, sizeof ep));
                return -1;
            }
        }
        size_t r = fread(s->bytes + len, 1, s->cap - len, fp);
        len += r;
        if (r == 0) break;
    }
    int ioerr = ferror(fp);
    fclose(fp);
    if (ioerr || len > RAW_SAMPLE_MAX_MEMBER) {
        s->bad = 1;
        snprintf(s->why, sizeof s->why, "%s: %s", src_escape(path, ep, sizeof ep), ioerr ? "read error" : "over the size limit");
        return -1;
    }
    s->nbytes = len;
    return 0;
}

void imagefolder_free(ImageFolder *f) {
    for (int i = 0; i < f->n; i++) free(f->files[i]);
    for (int i = 0; i < f->nclasses; i++) free(f->classes[i]);
    free(f->files);
    free(f->classes);
    free(f->labels);
    memset(f, 0, sizeof *f);
}
