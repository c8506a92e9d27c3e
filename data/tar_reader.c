/* WebDataset-style tar shards read member by member with libarchive. Consecutive members
 * sharing a key (the name up to the first '.' of its last path component) form one sample. */
#include "data/source.h"
#include "data/source_util.h"
#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_RETRIES 100000 /* damaged headers skipped in a row (each consumes a 512-byte block) */

struct TarStream {
    struct archive *a;
    int fd;
    int eof_marker;        /* at eof: 1 the end-of-archive zero block was read */
    char path[512];
    int state;             /* 0 reading, 1 pending header held, 2 eof, 3 fatal */
    char fatal_why[320];
    char pend_name[1024];  /* name of the header read but not consumed */
    int64_t pend_size;
    int pend_size_set;
    long damaged;          /* damaged headers skipped so far */
    long pend_retries;     /* of which just before the held header */
};

TarStream *tar_stream_open(const char *path, char *err, size_t errn) {
    TarStream *t = calloc(1, sizeof *t);
    if (!t) { src_seterr(err, errn, "out of memory"); return NULL; }
    src_strlcpy(t->path, path, sizeof t->path);
    if ((t->fd = src_open_regular(path, err, errn)) < 0) { free(t); return NULL; }
    t->a = archive_read_new();
    if (!t->a) { close(t->fd); free(t); src_seterr(err, errn, "out of memory"); return NULL; }
    /* Only tar, optionally gzip'd: no external filter programs, no other formats. */
    archive_read_support_format_tar(t->a);
    archive_read_support_filter_gzip(t->a);
    if (archive_read_open_fd(t->a, t->fd, 1 << 16) != ARCHIVE_OK) {
        char ep[300];
        src_seterr(err, errn, "%s: %s", src_escape(path, ep, sizeof ep),
                   archive_error_string(t->a) ? archive_error_string(t->a) : "cannot open");
        archive_read_free(t->a);
        close(t->fd);
        free(t);
        return NULL;
    }
    return t;
}

void tar_stream_close(TarStream *t) {
    if (!t) return;
    archive_read_free(t->a);
    close(t->fd);
    free(t);
}

int tar_stream_had_eof_marker(const TarStream *t) { return t->eof_marker; }

static void split_name(const char *name, char *key, size_t nkey, char *ext, size_t next) {
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strchr(base, '.');
    size_t kl = dot ? (size_t)(dot - name) : strlen(name);
    if (kl >= nkey) kl = nkey - 1;
    memcpy(key, name, kl);
    key[kl] = 0;
    ext[0] = 0;
    if (dot) {
        size_t i = 0;
        for (const char *p = dot + 1; *p && i + 1 < next; p++) ext[i++] = (char)tolower((unsigned char)*p);
        ext[i] = 0;
        if (strlen(dot + 1) >= next) ext[0] = '?'; /* too long: never a known extension */
    }
}

static int is_image_ext(const char *e) { return !strcmp(e, "jpg") || !strcmp(e, "jpeg") || !strcmp(e, "png"); }

static void mark_bad(RawSample *s, const char *fmt, const char *a) {
    if (s->bad) return; /* keep the first reason */
    s->bad = 1;
    char tmp[700];
    snprintf(tmp, sizeof tmp, fmt, a);
    src_strlcpy(s->why, tmp, sizeof s->why);
}

/* Marks the stream unreadable from here on, with libarchive's message (or dflt). */
static void set_fatal(TarStream *t, const char *dflt) {
    const char *m = archive_error_string(t->a);
    snprintf(t->fatal_why, sizeof t->fatal_why, "%.150s: unreadable from here on: %.80s", t->path, m ? m : dflt);
    t->state = 3;
}

/* Reads the header after the current position. 1 header held, 0 eof, -1 fatal. */
static int read_header(TarStream *t) {
    for (long nd = 0;;) { /* nd: damaged headers skipped in this call */
        struct archive_entry *e;
        /* The tar reader consumes the previous member's padding (< 512 bytes) and, when present,
         * the end-of-archive zero block(s) during this call: >= 512 bytes consumed at eof means
         * the marker was there. Position in the uncompressed stream (filter 0). */
        la_int64_t before = archive_filter_bytes(t->a, 0);
        int r = archive_read_next_header(t->a, &e);
        if (r == ARCHIVE_EOF) {
            t->eof_marker = archive_filter_bytes(t->a, 0) - before >= 512;
            t->state = 2;
            return 0;
        }
        if (r == ARCHIVE_RETRY && nd < MAX_RETRIES) { t->damaged++; nd++; continue; } /* damaged header: skipped */
        if (r < ARCHIVE_WARN || r == ARCHIVE_RETRY) {
            set_fatal(t, "corrupt archive");
            return -1;
        }
        if (archive_entry_filetype(e) != AE_IFREG) continue; /* directories, links */
        const char *nm = archive_entry_pathname(e);
        if (!nm || !*nm) continue;
        src_strlcpy(t->pend_name, nm, sizeof t->pend_name);
        t->pend_size_set = archive_entry_size_is_set(e);
        t->pend_size = archive_entry_size(e);
        t->pend_retries = nd;
        t->state = 1;
        return 1;
    }
}

/* Reads the held member's data into buf (grown as needed, at most RAW_SAMPLE_MAX_MEMBER).
 * 0 ok, 1 member bad but archive fine (why set), -1 archive fatal (why set). */
static int read_member(TarStream *t, uint8_t **buf, size_t *cap, size_t *len, char *why, size_t nwhy) {
    *len = 0;
    if (t->pend_size_set && (t->pend_size < 0 || (uint64_t)t->pend_size > RAW_SAMPLE_MAX_MEMBER)) {
        snprintf(why, nwhy, "member %.200s: size %lld over the %zu MiB limit", t->pend_name, (long long)t->pend_size,
                 RAW_SAMPLE_MAX_MEMBER >> 20);
        int r = archive_read_data_skip(t->a);
        if (r < ARCHIVE_WARN) { set_fatal(t, "truncated"); return -1; }
        return 1;
    }
    size_t want = t->pend_size_set ? (size_t)t->pend_size : 0;
    for (;;) {
        size_t need = *len + (want > *len ? want - *len : 65536);
        if (need > RAW_SAMPLE_MAX_MEMBER + 1) need = RAW_SAMPLE_MAX_MEMBER + 1;
        if (need > *cap) {
            size_t nc = *cap ? *cap : 4096;
            while (nc < need) nc *= 2;
            uint8_t *nb = realloc(*buf, nc);
            if (!nb) { snprintf(why, nwhy, "member %.200s: out of memory", t->pend_name); archive_read_data_skip(t->a); return 1; }
            *buf = nb;
            *cap = nc;
        }
        if (need <= *len) { /* over the limit without a size in the header */
            snprintf(why, nwhy, "member %.200s: over the %zu MiB limit", t->pend_name, RAW_SAMPLE_MAX_MEMBER >> 20);
            if (archive_read_data_skip(t->a) < ARCHIVE_WARN) { set_fatal(t, "truncated"); return -1; }
            return 1;
        }
        la_ssize_t r = archive_read_data(t->a, *buf + *len, need - *len);
        if (r == 0) break;
        if (r < 0) {
            const char *m = archive_error_string(t->a);
            snprintf(why, nwhy, "member %.150s: %.90s", t->pend_name, m ? m : "read error");
            if (r == ARCHIVE_RETRY || r == ARCHIVE_WARN) return 1;
            set_fatal(t, "read error");
            return -1;
        }
        *len += (size_t)r;
    }
    if (t->pend_size_set && *len != want) {
        snprintf(why, nwhy, "member %.200s: %zu of %zu bytes", t->pend_name, *len, want);
        return 1;
    }
    return 0;
}

/* Decimal class index below DATA_MAX_CLASSES, surrounded by optional white space. */
static int parse_cls(const uint8_t *b, size_t n, int *out) {
    size_t i = 0;
    while (i < n && isspace(b[i])) i++;
    if (i == n) return -1;
    long v = 0;
    size_t digits = 0;
    while (i < n && b[i] >= '0' && b[i] <= '9') {
        v = v * 10 + (b[i] - '0');
        if (v >= DATA_MAX_CLASSES) return -1;
        i++;
        digits++;
    }
    while (i < n && isspace(b[i])) i++;
    if (!digits || i != n) return -1;
    *out = (int)v;
    return 0;
}

int tar_stream_next(TarStream *t, RawSample *s) {
    s->key[0] = 0;
    s->ext[0] = 0;
    s->nbytes = 0;
    s->label = -1;
    s->bad = 0;
    s->bad_label = 0;
    s->why[0] = 0;
    src_strlcpy(s->origin, t->path, sizeof s->origin);
    if (t->state == 0 && read_header(t) < 0) { src_strlcpy(s->why, t->fatal_why, sizeof s->why); return -1; }
    if (t->state == 2) return 0;
    if (t->state == 3) { src_strlcpy(s->why, t->fatal_why, sizeof s->why); return -1; }
    /* state 1: a header is held; it starts this sample */
    char key[256], ext[16];
    split_name(t->pend_name, key, sizeof key, ext, sizeof ext);
    src_strlcpy(s->key, key, sizeof s->key);
    int have_image = 0, have_cls = 0, members = 0;
    long damaged0 = t->damaged - t->pend_retries; /* damage right before this sample counts too */
    uint8_t cls_buf_stack[64];
    for (;;) {
        char why[256] = "";
        members++;
        if (is_image_ext(ext) && !have_image) {
            int r = read_member(t, &s->bytes, &s->cap, &s->nbytes, why, sizeof why);
            if (r) {
                mark_bad(s, "%s", why);
                s->nbytes = 0;
            } else {
                src_strlcpy(s->ext, ext, sizeof s->ext);
            }
            have_image = 1;
        } else if (!strcmp(ext, "cls") && !have_cls) {
            uint8_t *b = NULL;
            size_t cap = 0, len = 0;
            int r = read_member(t, &b, &cap, &len, why, sizeof why);
            if (r) mark_bad(s, "%s", why);
            else if (len > sizeof cls_buf_stack || parse_cls(b, len, &s->label)) {
                size_t k = len < 32 ? len : 32;
                memcpy(cls_buf_stack, b, k);
                cls_buf_stack[k] = 0;
                for (size_t i = 0; i < k; i++)
                    if (!isprint(cls_buf_stack[i])) cls_buf_stack[i] = '?';
                char m[128];
                snprintf(m, sizeof m, "cls '%s%s' is not a class index (0..%d)", (const char *)cls_buf_stack,
                         len > k ? "..." : "", DATA_MAX_CLASSES - 1);
                mark_bad(s, "%s", m);
                s->bad_label = !strncmp(s->why, "cls '", 5); /* the first reason is the label */
                s->label = -1;
            }
            free(b);
            have_cls = 1;
        } else {
            /* json and other members: skipped (data not needed here) */
            int r = archive_read_data_skip(t->a);
            if (r < ARCHIVE_WARN) {
                set_fatal(t, "truncated");
                mark_bad(s, "%s", "archive truncated inside this sample");
            }
        }
        if (t->state == 3) {
            mark_bad(s, "%s", t->fatal_why);
            break;
        }
        if (read_header(t) <= 0) break; /* eof or fatal: this sample ends here */
        char nkey[256], next_ext[16];
        split_name(t->pend_name, nkey, sizeof nkey, next_ext, sizeof next_ext);
        if (strcmp(nkey, key)) break; /* next sample starts */
        memcpy(ext, next_ext, sizeof ext);
    }
    if (t->state == 3 && !have_cls && !s->bad) mark_bad(s, "%s", "archive ends inside this sample (no cls)");
    if (!have_image) mark_bad(s, "sample %.200s has no jpg/jpeg/png member", key);
    else if (!have_cls) mark_bad(s, "sample %.200s has no cls member", key);
    if (s->bad && t->damaged > damaged0) { /* say why a member went missing */
        size_t l = strlen(s->why);
        snprintf(s->why + l, sizeof s->why - l, " (damaged tar header skipped)");
    }
    (void)members;
    return 1;
}
