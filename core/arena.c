#include "core/arena.h"
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ALIGN 64
static size_t round_up(size_t n) { return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

/* Blocks of 4 MB and more are 2 MB aligned and asked to be backed by transparent huge pages:
 * a step streams through hundreds of MB of activations, and with 4 KB pages the first touch
 * of a fresh block costs one page fault per 4 KB (measured ~9 us each in a VM: 3 s for a
 * 1.3 GB block) and every later pass pays TLB misses. */
#define HUGE_MIN ((size_t)4 << 20)
#define HUGE_ALIGN ((size_t)2 << 20)
static void *xaligned(size_t bytes) {
    void *p = NULL;
    size_t align = bytes >= HUGE_MIN ? HUGE_ALIGN : ALIGN;
    if (posix_memalign(&p, align, bytes ? bytes : ALIGN) != 0 || !p) {
        /* a batch too large for the machine, not a bug: a message and exit 1, no core dump */
        fprintf(stderr,
                "mixtape: out of memory allocating %zu MB for the step's activations (arena); a smaller "
                "--batch-size or --grad-checkpointing needs less\n",
                (bytes + (1 << 20) - 1) >> 20);
        exit(1);
    }
#ifdef MADV_HUGEPAGE
    if (bytes >= HUGE_MIN) madvise(p, bytes & ~(HUGE_ALIGN - 1), MADV_HUGEPAGE); /* advice only: failure is harmless */
#endif
    return p;
}

void arena_init(Arena *a, size_t cap) {
    memset(a, 0, sizeof *a);
    a->cap = round_up(cap);
    a->base = a->cap ? xaligned(a->cap) : NULL;
}

void arena_free(Arena *a) {
    for (int i = 0; i < a->nextra; i++) free(a->extra[i]);
    free(a->extra);
    free(a->base);
    memset(a, 0, sizeof *a);
}

void *arena_alloc(Arena *a, size_t bytes) {
    bytes = round_up(bytes ? bytes : 1);
    if (a->used + bytes <= a->cap) {
        void *p = a->base + a->used;
        a->used += bytes;
        if (arena_used(a) > a->peak) a->peak = arena_used(a);
        return p;
    }
    /* Spill: a chunk of its own. Only happens until the arena has seen a full step. */
    if (a->nextra == a->extra_cap) {
        a->extra_cap = a->extra_cap ? 2 * a->extra_cap : 16;
        void **e = realloc(a->extra, (size_t)a->extra_cap * sizeof *e);
        if (!e) { fprintf(stderr, "mixtape: out of memory (arena spill list)\n"); abort(); }
        a->extra = e;
    }
    void *p = xaligned(bytes);
    a->extra[a->nextra++] = p;
    a->extra_used += bytes;
    if (arena_used(a) > a->peak) a->peak = arena_used(a);
    return p;
}

void *arena_calloc(Arena *a, size_t bytes) {
    void *p = arena_alloc(a, bytes);
    memset(p, 0, bytes);
    return p;
}

size_t arena_used(const Arena *a) { return a->used + a->extra_used; }

void arena_reset(Arena *a) {
    if (a->nextra) {
        for (int i = 0; i < a->nextra; i++) free(a->extra[i]);
        a->nextra = 0;
        a->extra_used = 0;
        size_t want = round_up(a->peak + a->peak / 8);
        free(a->base);
        /* Spill chunks below glibc's (dynamic) mmap threshold came from the heap: hand their
         * pages back now, or they would stay in the process's RSS next to the new block. */
        malloc_trim(0);
        a->base = xaligned(want);
        a->cap = want;
    }
    a->used = 0;
}

ArenaMark arena_mark(const Arena *a) {
    ArenaMark m = {a->used, a->extra_used, a->nextra};
    return m;
}

void arena_release(Arena *a, ArenaMark m) {
    /* Spill chunks taken since the mark are freed (they only exist during the first steps,
     * and scratch must not pile up there either); the base block rewinds. */
    while (a->nextra > m.nextra) free(a->extra[--a->nextra]);
    a->extra_used = m.extra_used;
    if (m.used <= a->used) a->used = m.used;
}
