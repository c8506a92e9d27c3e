/* Data formats layer: where encoded samples come from (WebDataset-style tar
 * shards, ImageFolder trees) and how they become Images (JPEG / PNG decode).
 * Plain C on bytes and images; nothing here knows of tensors or the tape.
 *
 * Every function that reads files treats their contents as untrusted: sizes
 * are bounds-checked, corrupt input yields an error / a bad sample, never a
 * crash or an unbounded allocation. */
#pragma once
#include "data/image.h"
#include <stddef.h>
#include <stdint.h>

#define RAW_SAMPLE_MAX_MEMBER ((size_t)64 << 20) /* 64 MiB: larger members are skipped (bad) */
#define IMAGE_MAX_SIDE 32768
#define IMAGE_MAX_PIXELS ((uint64_t)1 << 28)
/* Largest class count a data file may declare (classes.txt lines, cls values + 1): the same
 * limit as --num-classes. A cls beyond it is a bad sample, never a class count. */
#define DATA_MAX_CLASSES (1 << 20)
/* classes.txt: longest line (one class name). */
#define DATA_MAX_CLASS_NAME 4096

typedef struct RawSample {
    char key[256];          /* member base name, or file path for ImageFolder */
    char origin[512];       /* shard path or image file path, for messages */
    uint8_t *bytes; size_t nbytes; size_t cap;  /* encoded image, owned by the RawSample, reused */
    char ext[8];            /* "jpg", "png", ... (lower case) */
    int label;              /* class index; -1 when missing */
    int bad;                /* 1: this sample is unusable; why says why (skip it, count it) */
    int bad_label;          /* 1: ... because its cls is not a class index (counted as a label problem) */
    char why[256];
} RawSample;
void raw_sample_free(RawSample *s);
/* Make s->bytes hold at least n bytes (keeps contents up to nbytes). 0 ok, -1 out of memory. */
int raw_sample_reserve(RawSample *s, size_t n);

/* Shard list specs: brace pattern "dir/train-{000000..000146}.tar" (zero padded width kept),
 * a directory (its *.tar / *.tar.gz, sorted), a text file listing paths (one per line, relative
 * to the list file's directory; blank lines and lines starting with '#' ignored), or a single
 * .tar / .tar.gz. Every listed file must exist and be a regular file: missing, or a FIFO /
 * device / socket -> error naming it (a shard directory's special files are skipped with a
 * warning on stderr).
 * 0 ok (*paths malloc'd, free with shard_list_free), -1 error (err set). */
int shard_list_expand(const char *spec, char ***paths, int *n, char *err, size_t errn);
/* The same, but only the shards of `rank` (list positions i with i % world == rank) must exist:
 * with several hosts, each may hold only its own shards. */
int shard_list_expand_rank(const char *spec, int rank, int world, char ***paths, int *n, char *err, size_t errn);
void shard_list_free(char **paths, int n);

typedef struct TarStream TarStream;   /* streams one .tar or .tar.gz member by member (libarchive) */
TarStream *tar_stream_open(const char *path, char *err, size_t errn);
/* Next sample (members grouped by key: image + cls (+json)). 1 = a sample (check s->bad),
 * 0 = end of archive, -1 = the archive itself is unreadable from here on (truncated/corrupt
 * header); s->why says why. Never reads more than a sane limit per member (64 MiB).
 * A sample is bad when it has no image member, an unparsable / missing cls (not decimal digits,
 * negative, longer than 63 bytes, or >= DATA_MAX_CLASSES: s->bad_label = 1 too), a member larger than the
 * limit, or its data was cut short. Members of other extensions are ignored.
 * Only a regular file is opened (a FIFO or device is refused at open, never waited on). */
int tar_stream_next(TarStream *t, RawSample *s);
/* After tar_stream_next returned 0: 1 when the archive ended with its end-of-archive marker
 * (a zero block), 0 when the data simply stopped at a member boundary (a shard cut short at a
 * 512-byte boundary reads as a shorter shard: the caller warns). */
int tar_stream_had_eof_marker(const TarStream *t);
void tar_stream_close(TarStream *t);

/* ImageFolder: class sub-directories sorted by name (as torchvision), image files (jpg/jpeg/png,
 * case-insensitive) sorted within each class. Hidden entries (".x") are skipped. A class
 * directory whose name holds a control byte (newline, escape...) is refused (error naming it,
 * escaped): it could not be written to classes.txt nor printed faithfully. More than
 * DATA_MAX_CLASSES class directories is an error. */
typedef struct ImageFolder { char **files; int *labels; int n; char **classes; int nclasses; } ImageFolder;
int imagefolder_scan(const char *dir, ImageFolder *f, char *err, size_t errn);
/* Reads file i's bytes into s (key = file path, label, ext). 0 ok; -1 with s->bad = 1 and s->why
 * (also when the file is not a regular file: a FIFO named x.png is refused, never waited on). */
int imagefolder_read(const ImageFolder *f, int i, RawSample *s);
void imagefolder_free(ImageFolder *f);

/* classes.txt beside the shards: one name a line (trailing CR/blank lines dropped).
 * Absent file -> 0 with *names = NULL, *n = 0. Unreadable, not a regular file, over 64 MiB,
 * more than DATA_MAX_CLASSES lines or a line over DATA_MAX_CLASS_NAME bytes -> -1. */
int classes_read(const char *path, char ***names, int *n, char *err, size_t errn);
void classes_free(char **names, int n);
/* Write names one a line, through a temporary name and a rename. 0 ok, -1 error. */
int classes_write(const char *path, char *const *names, int n, char *err, size_t errn);

/* Decode JPEG (libjpeg-turbo, using DCT scaling 1/2,1/4,1/8 when the result stays >= min_side
 * on its shorter side; min_side 0 = full size) or PNG (gray, gray+alpha, RGB, RGBA, palette,
 * 16-bit; alpha dropped). want_c = 1 (gray, ITU-R 601 luma as PIL's convert('L')) or 3 (RGB).
 * Every size read from the file is bounds-checked (reject > 2^28 pixels or > 32768 per side).
 * Format is detected from the magic bytes. 0 ok (out allocated), -1 error (err set, out zeroed). */
int image_decode(const uint8_t *bytes, size_t n, int want_c, int min_side, Image *out, char *err, size_t errn);
int image_decode_jpeg(const uint8_t *bytes, size_t n, int want_c, int min_side, Image *out, char *err, size_t errn);
int image_decode_png(const uint8_t *bytes, size_t n, int want_c, Image *out, char *err, size_t errn);
/* Image dimensions (and channels in the file) without decoding pixels. 0 ok, -1 error. */
int image_probe(const uint8_t *bytes, size_t n, int *w, int *h, int *c, char *err, size_t errn);
/* Lossless PNG of an 8-bit gray / RGB image (malloc'd, caller frees). 0 ok, -1 error. */
int image_encode_png(const Image *im, uint8_t **out, size_t *nout);
/* JPEG of an 8-bit gray / RGB image at quality 1..100 (malloc'd, caller frees). 0 ok, -1 error. */
int image_encode_jpeg(const Image *im, int quality, uint8_t **out, size_t *nout);

/* PIL's convert('L') luma: (r*19595 + g*38470 + b*7471 + 0x8000) >> 16. */
static inline uint8_t rgb_to_luma(uint8_t r, uint8_t g, uint8_t b) {
    return (uint8_t)(((uint32_t)r * 19595u + (uint32_t)g * 38470u + (uint32_t)b * 7471u + 0x8000u) >> 16);
}
