/* safetensors files (huggingface/safetensors), read and written without Python.
 *
 *   [8 bytes: header length N, little-endian u64]
 *   [N bytes: JSON object, UTF-8: {"__metadata__": {str: str}, "<key>": {"dtype": "F32",
 *             "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...}]
 *   [data section: every tensor's bytes, little-endian, row-major; offsets relative to it]
 *
 * Reading treats the file as hostile: N <= 100 MB and <= file size - 8; the JSON is
 * parsed by a strict bounded reader (train/json_in.h); every dtype string must be one
 * of the format's; rank <= 8; numel * dtype size must not overflow and must equal
 * end - begin; begin <= end <= data size; ranges must not overlap and must cover the
 * data section exactly (as the reference implementation requires); keys are unique.
 * Every error names the file and the key. F32, F16, BF16 and F64 tensors are read as
 * float32; other dtypes are reported, never reinterpreted.
 *
 * Writing: F32 tensors in the caller's order, header padded with spaces to a multiple
 * of 8 bytes, metadata strings only; atomic (temp name in the same directory, fsync,
 * rename). All functions return 0, or -1 with err filled. */
#pragma once
#include "core/params.h"
#include "train/checkpoint.h"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ST_MAX_HEADER ((uint64_t)100 << 20)
#define ST_MAX_RANK 8
#define ST_MAX_NAME 1024

typedef struct StTensor {
    char *name;
    char dtype[8];          /* "F32", "BF16", ... as in the file */
    int esize;              /* bytes per element */
    int ndim;
    int64_t shape[ST_MAX_RANK];
    uint64_t numel, begin, end;  /* end/begin relative to the data section */
} StTensor;

typedef struct StMeta { char *key, *value; } StMeta;

typedef struct StFile {
    char path[1024];
    FILE *f;
    uint64_t data_start, data_size;
    StTensor *t;            /* header order */
    int n;
    StTensor **sorted;      /* by name, for lookup */
    StMeta *meta;
    int nmeta;
} StFile;

/* 1 when path names a safetensors file: its name ends in .safetensors, or its first
 * bytes are a header length followed by '{' (and not the HDF5 signature). */
int st_probe(const char *path);

int st_open(const char *path, StFile *s, char *err, size_t errn);
void st_close(StFile *s);
const StTensor *st_find(const StFile *s, const char *name);
const char *st_meta(const StFile *s, const char *key);   /* NULL when absent */
/* The tensor's values as float32 into dst (t->numel floats). Non-float dtypes -> error. */
int st_read_f32(StFile *s, const StTensor *t, float *dst, char *err, size_t errn);

/* Strict: every parameter present with its exact shape, no other keys. */
int st_load_params(const char *path, ParamList *p, char *err, size_t errn);
/* Fine-tuning: like ckpt_load_matching (train/checkpoint.h), same report. */
int st_load_matching(const char *path, ParamList *p, CkptMatch *m, char *err, size_t errn);

/* One tensor to write. */
typedef struct StOut {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_RANK];
    const float *data;
} StOut;
int st_write(const char *path, const StOut *t, int n, const StMeta *meta, int nmeta, char *err, size_t errn);
