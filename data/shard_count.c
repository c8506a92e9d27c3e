#include "data/shard_count.h"
#include "data/source.h"
#include "data/source_util.h"
#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

long shard_count(const char *path, int *max_label) {
    int fd = src_open_regular(path, NULL, 0);   /* never blocks on a FIFO named like a shard */
    if (fd < 0) return -1;
    struct archive *a = archive_read_new();
    if (!a) { close(fd); return -1; }
    archive_read_support_format_tar(a);
    archive_read_support_filter_gzip(a);
    if (archive_read_open_fd(a, fd, 1 << 16) != ARCHIVE_OK) { archive_read_free(a); close(fd); return -1; }
    char key[1024] = "", cur[1024];
    int cur_img = 0;
    long n = 0;
    struct archive_entry *e;
    for (;;) {
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF) break;
        if (r == ARCHIVE_RETRY) continue;
        if (r < ARCHIVE_WARN) break;
        if (archive_entry_filetype(e) != AE_IFREG) continue;
        const char *nm = archive_entry_pathname(e);
        if (!nm) continue;
        const char *base = strrchr(nm, '/');
        base = base ? base + 1 : nm;
        const char *dot = strchr(base, '.');
        size_t kl = dot ? (size_t)(dot - nm) : strlen(nm);
        if (kl >= sizeof cur) kl = sizeof cur - 1;
        memcpy(cur, nm, kl);
        cur[kl] = 0;
        if (strcmp(cur, key)) { n += cur_img; cur_img = 0; memcpy(key, cur, kl + 1); }
        const char *ext = dot ? dot + 1 : "";
        if (!strcasecmp(ext, "jpg") || !strcasecmp(ext, "jpeg") || !strcasecmp(ext, "png")) cur_img = 1;
        if (max_label && !strcasecmp(ext, "cls") && archive_entry_size(e) < 64) {
            char txt[64];
            la_ssize_t k = archive_read_data(a, txt, sizeof txt - 1);
            if (k > 0) {
                txt[k] = 0;
                char *end;
                long v = strtol(txt, &end, 10);
                /* a cls at or over the limit is a bad sample (tar_stream), not a class count */
                if (end != txt && v > *max_label && v < DATA_MAX_CLASSES) *max_label = (int)v;
            }
        }
    }
    n += cur_img;
    archive_read_free(a);
    close(fd);
    return n;
}

