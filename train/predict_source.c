#include "train/predict_source.h"
#include "data/source_util.h"
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int push(char ***v, int *n, int *cap, const char *s) {
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 64;
        char **nv = realloc(*v, (size_t)c * sizeof *nv);
        if (!nv) return -1;
        *v = nv;
        *cap = c;
    }
    if (!((*v)[*n] = strdup(s))) return -1;
    (*n)++;
    return 0;
}

/* Directory entries: *.tar count, and the regular image files directly in it. */
static int scan_dir(const char *dir, int *ntar, char ***imgs, int *nimg, char *err, size_t errn) {
    DIR *d = opendir(dir);
    if (!d) return src_seterr(err, errn, "--data %s: %s", dir, strerror(errno));
    int cap = 0, rc = 0;
    struct dirent *e;
    *ntar = 0;
    while ((e = readdir(d)) && !rc) {
        if (e->d_name[0] == '.') continue;
        if (src_ends_with_ci(e->d_name, ".tar") || src_ends_with_ci(e->d_name, ".tar.gz")) (*ntar)++;
        if (!src_is_image_name(e->d_name)) continue;
        char *p = src_join(dir, e->d_name);
        if (!p) { rc = src_seterr(err, errn, "out of memory"); break; }
        if (src_path_kind(p) == 1 && push(imgs, nimg, &cap, p) < 0) rc = src_seterr(err, errn, "out of memory");
        free(p);
    }
    closedir(d);
    if (!rc) src_sort_strings(*imgs, *nimg);
    return rc;
}

static int set_files(PredSource *p, char **v, int n, char *err, size_t errn) {
    p->files.files = v;
    p->files.n = n;
    if (!(p->files.labels = malloc((size_t)(n ? n : 1) * sizeof(int)))) return src_seterr(err, errn, "out of memory");
    for (int i = 0; i < n; i++) p->files.labels[i] = -1;
    return 0;
}

int pred_source_open(PredSource *p, const char *data, char **files, int nfiles, const AugConfig *aug, char *err,
                     size_t errn) {
    memset(p, 0, sizeof *p);
    p->h5.file = p->h5.images = p->h5.labels = -1;
    p->aug = *aug;
    p->c = aug->in_chans;
    p->s = aug->img_size;
    p->desc = data ? data : nfiles ? files[0] : "";
    if (permute_check(&aug->permute, p->s, err, errn) != 0) return -1;   /* its table is built on first use */
    char **list = NULL;
    int nlist = 0, cap = 0;
    /* image files named one by one */
    for (int i = 0; i < nfiles; i++) {
        if (src_path_kind(files[i]) != 1) { src_seterr(err, errn, "image %s: not a regular file", files[i]); goto bad; }
        if (push(&list, &nlist, &cap, files[i]) < 0) { src_seterr(err, errn, "out of memory"); goto bad; }
    }
    if (!data) {
        if (!nlist) return src_seterr(err, errn, "no input: give --data D or image files");
        return set_files(p, list, nlist, err, errn);
    }
    if (nlist) { src_seterr(err, errn, "give either --data or image files, not both"); goto bad; }
    int kind = src_path_kind(data);
    if (kind == 1 && h5data_probe(data) == 1) {
        if (h5data_open(&p->h5, data, err, errn) < 0) return -1;
        if (p->h5.c != p->c || p->h5.h != p->s || p->h5.w != p->s)
            return src_seterr(err, errn, "--data %s: images are (%d,%d,%d) but the model wants (%d,%d,%d)", data, p->h5.c,
                        p->h5.h, p->h5.w, p->c, p->s, p->s);
        p->kind = 2;
        p->has_labels = p->h5.has_labels;
        return 0;
    }
    if (kind == 1 && src_is_image_name(data)) {
        char *one[1] = {(char *)data};
        return pred_source_open(p, NULL, one, 1, aug, err, errn);
    }
    if (kind == 2) {
        int ntar = 0;
        if (scan_dir(data, &ntar, &list, &nlist, err, errn) < 0) goto bad;
        if (!ntar) {
            ImageFolder f;
            char e2[512];
            if (imagefolder_scan(data, &f, e2, sizeof e2) == 0) {
                for (int i = 0; i < nlist; i++) free(list[i]);
                free(list);
                p->files = f;
                p->data_classes = f.classes;
                p->ndata_classes = f.nclasses;
                p->has_labels = 1;
                return 0;
            }
            if (!nlist) return src_seterr(err, errn, "--data %s: no jpg/jpeg/png images, class sub-directories or .tar shards", data);
            return set_files(p, list, nlist, err, errn);
        }
        for (int i = 0; i < nlist; i++) free(list[i]);
        free(list);
        list = NULL;
        nlist = 0;
    }
    /* tar shards */
    if (shard_list_expand(data, &p->shards, &p->nshards, err, errn) < 0) return -1;
    if (p->nshards < 1) return src_seterr(err, errn, "--data %s: no shards", data);
    char *dir = src_dirname(p->shards[0]), *cpath = dir ? src_join(dir, "classes.txt") : NULL;
    int rc = cpath ? classes_read(cpath, &p->data_classes, &p->ndata_classes, err, errn) : src_seterr(err, errn, "out of memory");
    free(dir);
    free(cpath);
    if (rc < 0) return -1;
    p->kind = 1;
    p->has_labels = 1;
    return 0;
bad:
    for (int i = 0; i < nlist; i++) free(list[i]);
    free(list);
    return -1;
}

static void warn_skip(PredSource *p, const char *origin, const char *key, const char *why) {
    if (p->skipped++ >= 10) return;
    if (!strcmp(key, origin)) fprintf(stderr, "mixtape predict: warning: skipping '%s': %s\n", key, why);
    else fprintf(stderr, "mixtape predict: warning: skipping '%s' of '%s': %s\n", key, origin, why);
}

/* Decode + eval transform of p->raw into out. 0 ok, -1 bad (warned). */
static int decode(PredSource *p, float *out) {
    Image img = {0};
    char e[256];
    if (image_decode(p->raw.bytes, p->raw.nbytes, p->c, 0, &img, e, sizeof e) < 0 ||
        aug_eval(&p->aug, &img, out, e, sizeof e) < 0) {
        image_free(&img);
        warn_skip(p, p->raw.origin, p->raw.key, e);
        return -1;
    }
    image_free(&img);
    return 0;
}

static int next_samples(PredSource *p, Batch *b, int max, char **keys, char *err, size_t errn);

/* The samples, then --permute on each (the same table as the training loader's). */
int pred_source_next(PredSource *p, Batch *b, int max, char **keys, char *err, size_t errn) {
    int n = next_samples(p, b, max, keys, err, errn);
    if (n <= 0 || p->aug.permute.mode == PERMUTE_NONE) return n;
    int hw = p->s * p->s;
    if (!p->perm) {
        if (!(p->perm = permute_table(&p->aug.permute, p->s, err, errn))) return -1;
        if (!(p->perm_scratch = malloc((size_t)hw * sizeof *p->perm_scratch))) return src_seterr(err, errn, "out of memory");
    }
    for (int i = 0; i < n; i++) permute_apply_inplace(p->perm, p->c, hw, b->images + (size_t)i * p->c * hw, p->perm_scratch);
    return n;
}

static int next_samples(PredSource *p, Batch *b, int max, char **keys, char *err, size_t errn) {
    size_t per = (size_t)p->c * p->s * p->s;
    int n = 0;
    if (p->kind == 2) {
        long left = p->h5.n - p->row;
        n = left < max ? (int)left : max;
        if (n <= 0) return 0;
        if (h5data_read(&p->h5, p->row, n, b, err, errn) < 0) return -1;
        for (int i = 0; i < n; i++) {
            char k[32];
            snprintf(k, sizeof k, "#%ld", p->row + i);
            if (!(keys[i] = strdup(k))) return src_seterr(err, errn, "out of memory");
        }
        p->row += n;
        b->n = n;
        return n;
    }
    while (n < max) {
        int label = -1;
        if (p->kind == 0) {
            if (p->next >= p->files.n) break;
            int i = p->next++;
            if (imagefolder_read(&p->files, i, &p->raw) < 0 || p->raw.bad) {
                warn_skip(p, p->files.files[i], p->files.files[i], p->raw.why);
                continue;
            }
            label = p->files.labels[i];
        } else {
            if (!p->ts) {
                if (p->cur >= p->nshards) break;
                char e2[512];
                const char *path = p->shards[p->cur++];
                if (!(p->ts = tar_stream_open(path, e2, sizeof e2))) { warn_skip(p, path, "(whole shard)", e2); continue; }
            }
            int r = tar_stream_next(p->ts, &p->raw);
            if (r <= 0) {
                if (r < 0) warn_skip(p, p->shards[p->cur - 1], p->raw.key[0] ? p->raw.key : "(rest of shard)", p->raw.why);
                tar_stream_close(p->ts);
                p->ts = NULL;
                continue;
            }
            /* predictions need no label: a sample whose only fault is a missing cls is kept */
            if (p->raw.bad && !(p->raw.nbytes > 0 && p->raw.label < 0 && strstr(p->raw.why, "no cls"))) {
                warn_skip(p, p->shards[p->cur - 1], p->raw.key, p->raw.why);
                continue;
            }
            label = p->raw.bad ? -1 : p->raw.label;
        }
        if (decode(p, b->images + (size_t)n * per) < 0) continue;
        if (!(keys[n] = strdup(p->raw.key))) return src_seterr(err, errn, "out of memory");
        b->labels[n] = label;
        n++;
    }
    b->n = n;
    return n;
}

void pred_source_close(PredSource *p) {
    if (p->kind == 2) h5data_close(&p->h5);
    if (p->ts) tar_stream_close(p->ts);
    if (p->kind == 1) {
        shard_list_free(p->shards, p->nshards);
        classes_free(p->data_classes, p->ndata_classes);
    }
    if (p->data_classes && p->kind == 0) imagefolder_free(&p->files); /* owns its class names */
    else if (p->kind == 0) {
        for (int i = 0; i < p->files.n; i++) free(p->files.files[i]);
        free(p->files.files);
        free(p->files.labels);
    }
    raw_sample_free(&p->raw);
    free(p->perm);
    free(p->perm_scratch);
    memset(p, 0, sizeof *p);
}
