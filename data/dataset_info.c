#include "data/dataset_info.h"
#include "data/source_util.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void dataset_acc_init(DatasetAcc *a) {
    memset(a, 0, sizeof *a);
    a->hmin = a->wmin = INT32_MAX;
}

void dataset_acc_add(DatasetAcc *a, const Image *im) {
    size_t np = (size_t)im->w * im->h;
    /* per-image sums fit 64 bits (2^28 pixels * 255^2 < 2^44) */
    uint64_t s1[4] = {0}, s2[4] = {0};
    const uint8_t *p = im->px;
    if (im->c == 1) {
        for (size_t i = 0; i < np; i++) { s1[0] += p[i]; s2[0] += (uint64_t)p[i] * p[i]; }
        for (int k = 1; k < 4; k++) { s1[k] = s1[0]; s2[k] = s2[0]; }
    } else {
        for (size_t i = 0; i < np; i++, p += 3) {
            uint8_t y = rgb_to_luma(p[0], p[1], p[2]);
            s1[0] += p[0]; s2[0] += (uint64_t)p[0] * p[0];
            s1[1] += p[1]; s2[1] += (uint64_t)p[1] * p[1];
            s1[2] += p[2]; s2[2] += (uint64_t)p[2] * p[2];
            s1[3] += y; s2[3] += (uint64_t)y * y;
        }
        a->any_color = 1;
    }
    for (int k = 0; k < 4; k++) { a->s1[k] += s1[k]; a->s2[k] += s2[k]; }
    a->pixels += np;
    a->images++;
    if (im->h < a->hmin) a->hmin = im->h;
    if (im->h > a->hmax) a->hmax = im->h;
    if (im->w < a->wmin) a->wmin = im->w;
    if (im->w > a->wmax) a->wmax = im->w;
}

int dataset_acc_add_encoded(DatasetAcc *a, const uint8_t *bytes, size_t n, char *err, size_t errn) {
    int w, h, c;
    if (image_probe(bytes, n, &w, &h, &c, err, errn)) return -1;
    Image im = {0};
    if (image_decode(bytes, n, c == 1 ? 1 : 3, 0, &im, err, errn)) return -1;
    dataset_acc_add(a, &im);
    image_free(&im);
    return 0;
}

void dataset_acc_merge(DatasetAcc *d, const DatasetAcc *s) {
    for (int k = 0; k < 4; k++) { d->s1[k] += s->s1[k]; d->s2[k] += s->s2[k]; }
    d->pixels += s->pixels;
    d->images += s->images;
    d->any_color |= s->any_color;
    if (s->hmin < d->hmin) d->hmin = s->hmin;
    if (s->hmax > d->hmax) d->hmax = s->hmax;
    if (s->wmin < d->wmin) d->wmin = s->wmin;
    if (s->wmax > d->wmax) d->wmax = s->wmax;
}

/* mean and population std in [0,1] units from exact sums: var = (n*s2 - s1^2) / (255 n)^2,
 * the numerator an exact integer while n*s2 fits 127 bits (else computed in doubles). */
static void moments(unsigned __int128 s1, unsigned __int128 s2, uint64_t n, double *mean, double *std) {
    double dn = (double)n;
    *mean = (double)s1 / (255.0 * dn);
    double var;
    unsigned __int128 lim = ((unsigned __int128)1 << 126) / n;
    if (s2 < lim && s1 < ((unsigned __int128)1 << 63)) {
        unsigned __int128 num = (unsigned __int128)n * s2 - s1 * s1;
        var = (double)num / (255.0 * dn * 255.0 * dn);
    } else {
        double m = (double)s1 / dn;
        var = ((double)s2 / dn - m * m) / (255.0 * 255.0);
    }
    *std = var > 0 ? sqrt(var) : 0;
}

int dataset_acc_finish(const DatasetAcc *a, int classes, DatasetInfo *o) {
    memset(o, 0, sizeof *o);
    if (a->pixels == 0 || a->images == 0) return -1;
    o->samples = a->images;
    o->classes = classes;
    o->channels = a->any_color ? 3 : 1;
    o->hmin = a->hmin; o->hmax = a->hmax; o->wmin = a->wmin; o->wmax = a->wmax;
    for (int k = 0; k < o->channels; k++) moments(a->s1[k], a->s2[k], a->pixels, &o->mean[k], &o->std[k]);
    moments(a->s1[3], a->s2[3], a->pixels, &o->mean_gray, &o->std_gray);
    return 0;
}

int dataset_acc_imagefolder(const ImageFolder *f, DatasetAcc *a, long *skipped, char *err, size_t errn) {
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    if (nt < 1) nt = 1;
    if (nt > 64) nt = 64;
    DatasetAcc *part = malloc((size_t)nt * sizeof *part);
    long *skip = calloc((size_t)nt, sizeof *skip);
    if (!part || !skip) { free(part); free(skip); return src_seterr(err, errn, "out of memory"); }
    for (int t = 0; t < nt; t++) dataset_acc_init(&part[t]);
#pragma omp parallel num_threads(nt)
    {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        RawSample s = {0};
        char e2[160];
#pragma omp for schedule(dynamic, 64)
        for (int i = 0; i < f->n; i++) {
            if (imagefolder_read(f, i, &s) || s.bad || dataset_acc_add_encoded(&part[t], s.bytes, s.nbytes, e2, sizeof e2))
                skip[t]++;
        }
        raw_sample_free(&s);
    }
    long sk = 0;
    for (int t = 0; t < nt; t++) { dataset_acc_merge(a, &part[t]); sk += skip[t]; }
    free(part);
    free(skip);
    if (skipped) *skipped = sk;
    return 0;
}

int dataset_folder_print(const ImageFolder *f, FolderPrint *p, char *err, size_t errn) {
    memset(p, 0, sizeof *p);
    char ep[300];
    for (int i = 0; i < f->n; i++) {
        struct stat st;
        if (stat(f->files[i], &st) != 0)
            return src_seterr(err, errn, "%s: %s", src_escape(f->files[i], ep, sizeof ep), strerror(errno));
        p->files++;
        p->bytes += (uint64_t)st.st_size;
        int64_t t = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        if (t > p->mtime_max) p->mtime_max = t;
    }
    return 0;
}

size_t dataset_info_json(const DatasetInfo *d, char *buf, size_t n) {
    char sz[160], m[96], s[96];
    if (d->hmin == d->hmax && d->wmin == d->wmax) snprintf(sz, sizeof sz, "\"height\": %d, \"width\": %d", d->hmin, d->wmin);
    else
        snprintf(sz, sizeof sz, "\"height_min\": %d, \"height_max\": %d, \"width_min\": %d, \"width_max\": %d", d->hmin,
                 d->hmax, d->wmin, d->wmax);
    size_t a = 0, b = 0;
    for (int k = 0; k < d->channels; k++) {
        a += (size_t)snprintf(m + a, sizeof m - a, "%s%.9g", k ? ", " : "", d->mean[k]);
        b += (size_t)snprintf(s + b, sizeof s - b, "%s%.9g", k ? ", " : "", d->std[k]);
    }
    char g[80] = "";
    if (d->channels == 3) snprintf(g, sizeof g, ", \"mean_gray\": %.9g, \"std_gray\": %.9g", d->mean_gray, d->std_gray);
    return (size_t)snprintf(buf, n, "{\"samples\": %ld, \"classes\": %d, \"channels\": %d, %s, \"mean\": [%s], \"std\": [%s]%s}",
                            d->samples, d->classes, d->channels, sz, m, s, g);
}
