/* ImageFolder tree -> shards; JPEG / PNG bytes are copied as they are. */
#include "data/convert.h"
#include "data/source.h"
#include "data/source_util.h"
#include "data/tar_writer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* JSON string body of s (quotes, backslashes and control bytes escaped). */
static void json_escape(const char *s, char *out, size_t n) {
    size_t k = 0;
    for (; *s && k + 7 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { out[k++] = '\\'; out[k++] = (char)c; }
        else if (c < 0x20) k += (size_t)snprintf(out + k, n - k, "\\u%04x", c);
        else out[k++] = (char)c;
    }
    out[k] = 0;
}

int convert_imagefolder(const char *src, const ConvertOpts *o, ConvertResult *r, char *err, size_t errn) {
    memset(r, 0, sizeof *r);
    ImageFolder f;
    if (imagefolder_scan(src, &f, err, errn)) return -1;
    ShardWriter *w = convert_open_writer(o, err, errn);
    if (!w) { imagefolder_free(&f); return -1; }
    RawSample s = {0};
    int width = convert_key_width(f.n), rc = 0;
    size_t lsrc = strlen(src);
    long written = 0;
    for (int i = 0; i < f.n && !rc; i++) {
        char ep[300];
        if (o->stop && o->stop()) { rc = src_seterr(err, errn, "interrupted"); break; }
        if (imagefolder_read(&f, i, &s)) {
            fprintf(stderr, "mixtape shards: skipping %s\n", src_escape(s.why, ep, sizeof ep));
            r->skipped++;
            continue;
        }
        int pw, ph, pc;
        char perr[128];
        if (image_probe(s.bytes, s.nbytes, &pw, &ph, &pc, perr, sizeof perr)) {
            fprintf(stderr, "mixtape shards: skipping %s: %s\n", src_escape(f.files[i], ep, sizeof ep), perr);
            r->skipped++;
            continue;
        }
        if (o->stats && dataset_acc_add_encoded(o->stats, s.bytes, s.nbytes, perr, sizeof perr)) {
            fprintf(stderr, "mixtape shards: skipping %s: %s\n", src_escape(f.files[i], ep, sizeof ep), perr);
            r->skipped++;
            continue;
        }
        /* the extension follows the content, whatever the file was called */
        const char *ext = s.bytes[0] == 0x89 ? "png" : (!strcmp(s.ext, "jpeg") ? "jpeg" : "jpg");
        char key[32], rel[600], json[1400];
        snprintf(key, sizeof key, "%0*ld", width, written);
        const char *relp = f.files[i];
        if (!strncmp(relp, src, lsrc)) { relp += lsrc; while (*relp == '/') relp++; }
        json_escape(relp, rel, sizeof rel);
        snprintf(json, sizeof json, "{\"path\": \"%s\", \"width\": %d, \"height\": %d}", rel, pw, ph);
        rc = shard_writer_add(w, key, ext, s.bytes, s.nbytes, f.labels[i], json, err, errn);
        written++;
    }
    raw_sample_free(&s);
    ShardStats st = {0};
    if (!rc && written == 0) rc = src_seterr(err, errn, "%s: no readable images", src);
    if (rc) shard_writer_abort(w);
    else rc = shard_writer_commit(w, f.classes, f.nclasses, &st, err, errn);
    r->samples = st.samples;
    r->shards = st.shards;
    r->bytes = st.bytes;
    r->classes = f.nclasses;
    imagefolder_free(&f);
    return rc;
}
