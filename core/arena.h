/* Bump allocator for per-step memory: activations, saved values, tape nodes'
 * payloads. The first steps may spill into extra chunks; reset() then grows
 * the main block to the high-water mark so later steps never call malloc. */
#pragma once
#include <stddef.h>

typedef struct Arena {
    char *base;
    size_t used, cap;
    size_t peak;          /* high-water mark of one step, bytes */
    void **extra;         /* spill chunks allocated when base was full */
    int nextra, extra_cap;
    size_t extra_used;    /* bytes handed out from spill chunks this step */
} Arena;

void arena_init(Arena *a, size_t cap);
void arena_free(Arena *a);
/* 64-byte aligned, uninitialised; never returns NULL (aborts on OOM). */
void *arena_alloc(Arena *a, size_t bytes);
void *arena_calloc(Arena *a, size_t bytes);
/* Forget every allocation; grows the base block if the step spilled. */
void arena_reset(Arena *a);
/* Scratch inside one op: everything allocated after arena_mark is given back by
 * arena_release (stack discipline; only for buffers that die before the op returns). */
typedef struct ArenaMark {
    size_t used, extra_used;
    int nextra;
} ArenaMark;
ArenaMark arena_mark(const Arena *a);
void arena_release(Arena *a, ArenaMark mark);
/* Bytes in use right now (base + spill). */
size_t arena_used(const Arena *a);
