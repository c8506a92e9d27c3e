/* CIFAR-10 / CIFAR-100 binary batches -> shards of PNG images.
 * CIFAR-10 record: 1 label byte + 3072 pixel bytes (1024 R, 1024 G, 1024 B, row-major 32x32).
 * CIFAR-100 record: coarse label byte, fine label byte, 3072 pixel bytes (fine label used). */
#include "data/convert.h"
#include "data/source.h"
#include "data/source_util.h"
#include "data/tar_writer.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *C10[10] = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
static const char *C100[100] = {
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"};

#define PIX 3072

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* 10 or 100 from the file name, else from the size; 0 when neither fits. */
static int cifar_kind(const char *path, uint64_t size) {
    const char *b = base_name(path);
    if (!strncmp(b, "data_batch", 10) || !strncmp(b, "test_batch", 10)) return 10;
    if (!strcmp(b, "train.bin") || !strcmp(b, "test.bin")) return 100;
    int f10 = size % (PIX + 1) == 0, f100 = size % (PIX + 2) == 0;
    if (f10 && !f100) return 10;
    if (f100 && !f10) return 100;
    return 0;
}

/* Batch files of a directory for a split, sorted. */
static int list_batches(const char *dir, const char *split, char ***out, int *n, char *err, size_t errn) {
    *out = NULL;
    *n = 0;
    int test = split && !strcmp(split, "test");
    if (split && strcmp(split, "train") && !test) return src_seterr(err, errn, "--split must be train or test, not '%s'", split);
    DIR *d = opendir(dir);
    if (!d) return src_seterr(err, errn, "cannot open %s", dir);
    char **v = NULL;
    int cnt = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        int ok = test ? (!strcmp(nm, "test_batch.bin") || !strcmp(nm, "test.bin"))
                      : ((!strncmp(nm, "data_batch_", 11) && src_ends_with_ci(nm, ".bin")) || !strcmp(nm, "train.bin"));
        if (!ok) continue;
        char **nv = realloc(v, (size_t)(cnt + 1) * sizeof *nv);
        if (!nv) break;
        v = nv;
        if (!(v[cnt] = src_join(dir, nm))) break;
        cnt++;
    }
    closedir(d);
    src_sort_strings(v, cnt);
    if (!cnt) {
        free(v);
        return src_seterr(err, errn, "%s: no CIFAR %s batches (%s)", dir, test ? "test" : "train",
                          test ? "test_batch.bin / test.bin" : "data_batch_*.bin / train.bin");
    }
    *out = v;
    *n = cnt;
    return 0;
}

int convert_cifar(const char *src, const ConvertOpts *o, ConvertResult *r, char *err, size_t errn) {
    memset(r, 0, sizeof *r);
    char **files = NULL;
    int nfiles = 0, kind = 0, rc = -1;
    uint64_t total = 0;
    int k = src_path_kind(src);
    if (k == 2) {
        if (list_batches(src, o->split, &files, &nfiles, err, errn)) return -1;
    } else if (k == 1) {
        files = malloc(sizeof *files);
        if (!files || !(files[0] = strdup(src))) { free(files); return src_seterr(err, errn, "out of memory"); }
        nfiles = 1;
    } else {
        return src_seterr(err, errn, "%s: %s", src, k ? "not a regular file" : "not found");
    }
    /* validate every file first: kind consistent, size a whole number of records */
    for (int i = 0; i < nfiles; i++) {
        FILE *f = src_fopen_regular(files[i], err, errn); /* a FIFO named data_batch_1.bin never blocks */
        if (!f) goto out;
        if (fseek(f, 0, SEEK_END)) { fclose(f); src_seterr(err, errn, "%s: cannot read", files[i]); goto out; }
        long sz = ftell(f);
        fclose(f);
        if (sz <= 0) { src_seterr(err, errn, "%s: empty", files[i]); goto out; }
        int kk = cifar_kind(files[i], (uint64_t)sz);
        if (!kk) { src_seterr(err, errn, "%s: %ld bytes is not a whole number of CIFAR records", files[i], sz); goto out; }
        if (kind && kk != kind) { src_seterr(err, errn, "%s: mixes CIFAR-10 and CIFAR-100 files", files[i]); goto out; }
        kind = kk;
        long rec = kind == 10 ? PIX + 1 : PIX + 2;
        if (sz % rec) { src_seterr(err, errn, "%s: %ld bytes is not a multiple of the CIFAR-%d record (%ld bytes)", files[i], sz, kind, rec); goto out; }
        total += (uint64_t)(sz / rec);
    }
    {
        int rec = kind == 10 ? PIX + 1 : PIX + 2, ncls = kind;
        int width = convert_key_width((long)total);
        ShardWriter *w = convert_open_writer(o, err, errn);
        if (!w) goto out;
        Image im;
        uint8_t buf[PIX + 2];
        long idx = 0;
        int bad = image_alloc(&im, 32, 32, 3);
        if (bad) src_seterr(err, errn, "out of memory");
        for (int fi = 0; fi < nfiles && !bad; fi++) {
            FILE *f = src_fopen_regular(files[fi], err, errn);
            if (!f) { bad = -1; break; }
            while (!bad) {
                size_t got = fread(buf, 1, (size_t)rec, f);
                if (got == 0) break;
                if (got != (size_t)rec) { bad = src_seterr(err, errn, "%s: truncated record %ld", files[fi], idx); break; }
                int label = kind == 10 ? buf[0] : buf[1];
                if (label >= ncls) { bad = src_seterr(err, errn, "%s: label %d out of range in record %ld", files[fi], label, idx); break; }
                const uint8_t *p = buf + (kind == 10 ? 1 : 2);
                for (int i = 0; i < 1024; i++) {
                    im.px[3 * i] = p[i];
                    im.px[3 * i + 1] = p[1024 + i];
                    im.px[3 * i + 2] = p[2048 + i];
                }
                if (o->stats) dataset_acc_add(o->stats, &im);
                uint8_t *png;
                size_t npng;
                if (image_encode_png(&im, &png, &npng)) { bad = src_seterr(err, errn, "png encoding failed"); break; }
                char key[32];
                snprintf(key, sizeof key, "%0*ld", width, idx);
                bad = shard_writer_add(w, key, "png", png, npng, label, NULL, err, errn);
                free(png);
                idx++;
            }
            fclose(f);
        }
        image_free(&im);
        if (bad) { shard_writer_abort(w); goto out; }
        /* names: fine_label_names.txt / batches.meta.txt beside the data when present */
        char *dir = k == 2 ? strdup(src) : src_dirname(src);
        char *meta = dir ? src_join(dir, kind == 10 ? "batches.meta.txt" : "fine_label_names.txt") : NULL;
        free(dir);
        char **names = NULL;
        int nn = 0;
        ShardStats st = {0};
        int own = meta && classes_read(meta, &names, &nn, NULL, 0) == 0 && nn == ncls;
        for (int i = 0; own && i < nn; i++) own = !src_has_control(names[i]);
        rc = shard_writer_commit(w, own ? names : (char *const *)(kind == 10 ? C10 : C100), ncls, &st, err, errn);
        classes_free(names, nn);
        free(meta);
        r->samples = st.samples;
        r->shards = st.shards;
        r->bytes = st.bytes;
        r->classes = ncls;
    }
out:
    for (int i = 0; i < nfiles; i++) free(files[i]);
    free(files);
    return rc;
}
