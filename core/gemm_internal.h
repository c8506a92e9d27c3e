/* What the own AVX-512 GEMM's files share (private to core/gemm*.c).
 *
 *   gemm_pack.c         packing op(A) and op(B) into words (fp32/bf16 sources, prologue, gather)
 *   gemm_kernel_fp32.c  the 12 x 32 fp32 FMA microkernel and its tile loop
 *   gemm_kernel_bf16.c  the 12 x 32 AVX512-BF16 (vdpbf16ps) microkernel and its tile loop
 *   gemm_kernel_amx.c   the 32 x 32 AMX-BF16 (tdpbf16ps) microkernel, its tile loop, tile setup
 *   gemm_kernel.h       the tile loop and the tile epilogue the three microkernels share
 *   gemm_sched.c        the driver: blocking, threads, work stealing, K split, batches
 *   gemm_chain.c        two GEMMs chained per row block (an MLP at inference)
 *   gemm.c              mt_gemm_run: dispatch by precision and CPU, portable fallbacks
 *
 * Goto/BLIS-style blocking, written for row-major C and vectors along N:
 *
 *   for jc (NC columns of C)            each thread owns a rectangle of C (gemm_sched.c)
 *     for pc (KC of K)                  pack op(B)[pc.., jc..] -> panels of NR=32 columns
 *       for ic (MC rows)                pack op(A)[ic.., pc..] -> MC rows of KCW words
 *         for jr (NR panel), ir (MR rows): 12 x 32 microkernel, 24 zmm accumulators
 *         (AMX: for ir (32 rows), jr (NR panel): 32 x 32 microkernel, 4 accumulator tiles)
 *
 * A "word" is 32 bits: in bf16 mode a pair of bf16 (k even in the low half, k odd in the
 * high half), which is what vdpbf16ps multiplies lane-wise; in fp32 mode one float.
 *   packed B panel: word (w, j) at pb[w * NR + j]      -> two zmm loads per word row
 *   packed A block: word (i, w) at pa[i * KCW + w]     -> one 32-bit broadcast per row,
 *                   KCW is a compile-time stride, so the 12 rows are 12 fixed displacements.
 * The packing and tile-loop functions are called once per block (thousands of multiply-adds
 * each), so they live in their own files at no measurable cost; each microkernel stays in one
 * file with the tile loop that calls it, inlined. */
#pragma once
#include "core/act_gelu.h"
#include "core/gemm.h"
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#define MR 12
#define NR 32
/* Words per K block: 512 k in both modes (256 bf16 pairs, 512 floats). Each K block after
 * the first re-reads C, so deep blocks pay (2 threads, GFLOP/s: fp32 6272x2048x512 305 at
 * 128 words, 345 at 256, 361 at 512; bf16 620 at 128, 730 at 256 words, but 640 at 512,
 * where the B micro-panel (NR x KCW words) no longer fits L1). A compile-time stride per
 * mode: the microkernel's 12 A rows are 12 fixed displacements. */
#define KCW_BF16 256
#define KCW_F32 512
#define KCW_MAX 512
#define KCW(mode) ((mode) == MODE_F32 ? KCW_F32 : KCW_BF16)
#define KPW(mode) ((mode) == MODE_F32 ? 1 : 2) /* k per word */
#define MC 144     /* rows of A per block (multiple of MR): MC*KCW*4 <= 288 KB, L2-resident */
#define NC(mode) ((mode) == MODE_F32 ? 512 : 1024) /* columns of B per block: NC*KCW*4 = 1 MB */
/* AMX: tiles of 16 rows x 16 words; the microkernel is 2 x 2 tiles = 32 x 32 of C, so rows
 * are padded to 32 and every K block to whole tiles (16 words). */
#define MR_AMX 32
#define MC_AMX 128
#define MRM(mode) ((mode) == MODE_AMX ? MR_AMX : MR)
#define MCM(mode) ((mode) == MODE_AMX ? MC_AMX : MC)
#define NC_MAX 1024
#define MAXT 256

/* Every vector function of the kernels gets the same target set, so the build needs no
 * -march flag; the instructions a mode needs run only when gemm.c's CPU check chose it
 * (AMX only in MODE_AMX, when the CPU and the OS grant the tiles). */
#define TGT __attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl,avx512dq,amx-tile,amx-bf16")))
#define INL __attribute__((always_inline)) inline

/* MODE_AMX: the bf16 word layout of MODE_BF16, multiplied by AMX tiles (tdpbf16ps). */
enum { MODE_F32 = 0, MODE_BF16 = 1, MODE_AMX = 2 };

/* One GEMM (or one thread's share of one) as the kernels see it. */
typedef struct {
    int mode, ta, tb, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
    const MtPrologue *pro; /* applied to A's rows while packing (not transposed A), or NULL */
    const MtGatherA *ga;   /* A's rows come from this function instead of A, or NULL */
    const MtEpilogue *ep; /* applied as each block of C gets its last K block, or NULL */
    const float *R;       /* the epilogue's residual for this C (same layout), or NULL */
    int gelu;             /* ep->act is GELU and runs on the tile in registers */
    const float *P;       /* the epilogue's pre-activation for this C (same layout; ep->dact), or NULL */
    int k0, k1;           /* the K range this job multiplies (0, K but for a thread's share of a K split) */
    /* K made of segments of kseg (0: one run): k lives in entry k / kseg of a batch, at k % kseg
     * of that entry's row, the entries sAk (A) and sBk (B) floats apart (MtGemm.sum) */
    int kseg;
    long sAk, sBk;
    /* A / B stored as bf16 (uint16_t, an fp32's upper half: an activation kept rounded, see
     * MtGemm.types) behind the float pointer; lda, ldb, strides count elements */
    int abf, bbf;
    /* nonzero: A is the same matrix for every entry of this call's batch (stride 0, a shared
     * weight), and a thread's packed A block carries over from one entry to the next */
    uint64_t a_shared;
} Job;

static INL int imin(int a, int b) { return a < b ? a : b; }
static INL int roundup(int a, int m) { return (a + m - 1) / m * m; }
static INL __mmask16 mask16(int n) { return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }
static INL __mmask32 mask32(int n) { return n >= 32 ? (__mmask32)0xffffffffu : n <= 0 ? 0 : (__mmask32)((1u << n) - 1); }
/* Element e of an operand stored as fp32 or, when bf, as bf16. */
static INL const void *elem(const float *base, int bf, size_t e) {
    return bf ? (const void *)((const uint16_t *)(const void *)base + e) : (const void *)(base + e);
}
/* Words a K block of kc k values packs into (AMX: whole tiles, the padding words zero). */
static INL int kwords(int mode, int kc) {
    int kw = (kc + KPW(mode) - 1) / KPW(mode);
    return mode == MODE_AMX ? roundup(kw, 16) : kw;
}
/* Rows per block for m rows: balanced blocks of at most MC, a multiple of MR. */
static INL int row_step(int mode, int m) {
    int nic = (m + MCM(mode) - 1) / MCM(mode);
    return roundup((m + nic - 1) / nic, MRM(mode));
}
/* 1 when the epilogue's activation is GELU and the kernel can apply it in registers. */
static inline int tile_gelu(const MtEpilogue *ep) { return ep && ep->act == mt_gelu_tile && mt_gelu_vector(); }

/* ---- packing (gemm_pack.c) ----
 * pack_a: op(A)[i0 .. i0+mc, k0 .. k0+kc) -> pa[i * KCW + w], rows padded with zeros to whole
 * microkernel tiles. pack_b: op(B)[k0 .. k0+kc, j0 .. j0+nc) -> panels of NR columns, word
 * (w, j) of panel p at pb[p * kw * NR + w * NR + j], kw = kwords(); columns past nc and
 * words past kc zero. */
void mt_gemm_pack_a(int mode, const Job *j, int i0, int mc, int k0, int kc, uint32_t *pa);
void mt_gemm_pack_b(int mode, const Job *j, int j0, int nc, int k0, int kc, uint32_t *pb);

/* ---- tile loops (gemm_kernel_*.c) ----
 * A block of C, mc rows from row ic x nc columns from column col, from the packed A block pa
 * and B block pb (panels of kw words x NR); C and R (residual, or NULL) point at the block's
 * corner; beta for this K block; ep (NULL before the last K block) applied per tile. */
typedef void MtGemmTiles(const Job *j, int kw, const uint32_t *pa, const uint32_t *pb, float *C, int ldc,
                         const float *R, int ic, int mc, int col, int nc, float beta, const MtEpilogue *ep);
MtGemmTiles mt_gemm_tiles_f32, mt_gemm_tiles_bf16, mt_gemm_tiles_amx;
static inline void mt_gemm_tiles(int mode, const Job *j, int kw, const uint32_t *pa, const uint32_t *pb, float *C,
                                 int ldc, const float *R, int ic, int mc, int col, int nc, float beta,
                                 const MtEpilogue *ep) {
    MtGemmTiles *f = mode == MODE_AMX ? mt_gemm_tiles_amx : mode == MODE_BF16 ? mt_gemm_tiles_bf16 : mt_gemm_tiles_f32;
    f(j, kw, pa, pb, C, ldc, R, ic, mc, col, nc, beta, ep);
}
/* Loads the AMX tile shapes for this thread (before its first AMX tile loop). */
void mt_gemm_amx_config(void);
/* 1 when the CPU has AMX-BF16 and the OS lets this process use the tiles. */
int mt_gemm_amx_ok(void);

/* ---- scheduling (gemm_sched.c) ----
 * Row blocks of one (jc, pc) phase shared by work stealing. Thread t owns the contiguous
 * range of blocks [lo, hi) packed into ranges[(phase * T + t) * SCHED_PAD] (lo in the low 32
 * bits); it takes blocks from the front, and once its range is empty it takes them from the
 * back of the others' ranges. The common case keeps the static split's long sequential streams (an
 * interleaved split measured 8-15% slower on 100352-row GEMMs), and a thread slowed down by
 * another process on a shared machine, or by a heavier epilogue, does not hold the others
 * back at the end. */
typedef struct {
    uint64_t *ranges; /* [(phase * T + t) * SCHED_PAD] */
    int T;
} Sched;
/* Each range on a cache line of its own: the threads' claims do not contend for one line. */
#define SCHED_PAD 8
static inline uint64_t pack_range(uint32_t lo, uint32_t hi) { return (uint64_t)hi << 32 | lo; }
/* Next block for thread t in this phase, or -1 when every range is empty. */
static inline int claim(const Sched *sc, int phase, int t) {
    for (int v = 0; v < sc->T; v++) {
        uint64_t *r = &sc->ranges[((size_t)phase * sc->T + (t + v) % sc->T) * SCHED_PAD];
        uint64_t cur = __atomic_load_n(r, __ATOMIC_RELAXED);
        for (;;) {
            uint32_t lo = (uint32_t)cur, hi = (uint32_t)(cur >> 32);
            if (lo >= hi) break;
            uint64_t want = v == 0 ? pack_range(lo + 1, hi) : pack_range(lo, hi - 1);
            if (__atomic_compare_exchange_n(r, &cur, want, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
                return v == 0 ? (int)lo : (int)hi - 1;
        }
    }
    return -1;
}

/* Per-thread packing buffers (an A block, a B block), allocated on first use and kept, and
 * which block of a shared A (Job.a_shared) the A buffer holds. */
typedef struct {
    uint32_t *a, *b;
    uint64_t a_call;        /* Job.a_shared of the call that packed it; 0: nothing reusable */
    int a_ic, a_mc, a_pc, a_kc;
} MtGemmBufs;
extern MtGemmBufs mt_gemm_bufs[MAXT];
/* Allocates buffers for threads 0 .. T-1; 0 when out of memory. */
int mt_gemm_bufs_get(int T);
/* Threads for a call of `work` multiply-adds. */
int mt_gemm_team_size(double work);

/* The own kernels on a descriptor (batch already at least 1) in kernel mode `mode`: 0 on
 * success, -1 with C untouched when they cannot take it (layout, buffers), and the caller
 * falls back. */
int mt_gemm_sched_run(int mode, const MtGemm *g);

/* ---- chain (gemm_chain.c): see mt_gemm_chain ---- */
int mt_gemm_chain_mode_fits(int mode, int K, int N1, int N2);
int mt_gemm_chain_run(int mode, int M, int K, int N1, int N2, const float *A, int lda, const MtPrologue *pro,
                      const float *B1, const MtEpilogue *ep1, const float *B2, float *C, int ldc,
                      const MtEpilogue *ep2);
