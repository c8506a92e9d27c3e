/* The context of one model evaluation: the step arena, the tape of recorded
 * ops, the first error, the RNG stream for dropout, the layer scope for messages.
 *
 * Ops append a Node when grad is enabled and any input requires grad.
 * mt_backward(loss) walks the nodes in reverse; each node's backward reads
 * out->grad and ADDS into its inputs' grads, so a tensor used twice receives
 * both contributions, and parameter grads accumulate across micro-batches
 * until the caller zeroes them.
 *
 * Errors are sticky: the first failing op records a message naming the op,
 * the layer scope and the shapes, returns NULL, and every later op given a
 * NULL input returns NULL too. Callers check once at the end. */
#pragma once
#include "core/arena.h"
#include "core/params.h"
#include "core/tensor.h"

typedef struct Ctx Ctx;
typedef struct Node Node;
typedef void (*mt_backward_fn)(Ctx *c, Node *n);

#define MT_NODE_MAXIN 6
struct Node {
    const char *op;
    mt_backward_fn backward;
    Tensor *out;
    Tensor *in[MT_NODE_MAXIN];
    int nin;
    /* What the op keeps for backward: the op's own typed struct, arena-allocated (mt_save), or
     * NULL; the backward reads it through that type (e.g. const ConvSaved *s = n->saved). */
    void *saved;
    unsigned overwrites; /* bit i: backward writes input i's fresh gradient (mt_grad_accumulate) */
    /* Parameters whose gradients this node's backward writes besides in[] (a checkpoint's
     * block parameters, core/op_checkpoint.c), arena-allocated; the sweep gives them no
     * buffers (parameters' are persistent), data-parallel buckets read their first use here. */
    Tensor **params;
    int nparams;
};

/* Per-op time for `mixtape bench --profile`, kept by the tape itself (core/tape.c): forward
 * time is the span between one recorded node and the next (an op computes, then records),
 * backward is timed around each node's backward call, and an op's parts (mt_part) go to lines
 * of their own. Without a tape (no-grad forward) the span between one mt_scope and the next
 * goes to the earlier scope, with a block's index dropped ("stages.2.blocks.4.norm2+mlp" ->
 * "stages.2 norm2+mlp"). */
#define MT_PROF_MAX 48
typedef struct OpProfile {
    char op[48];
    double fwd, bwd;   /* seconds */
    long calls;
} OpProfile;

struct Ctx {
    Arena arena;
    int profile;        /* 1: fill prof[] */
    double prof_t;      /* time of the last forward event (a node recorded, a part done) */
    double prof_total;  /* seconds put on any line so far: a backward keeps what its parts and
                         * nested nodes did not take */
    OpProfile prof[MT_PROF_MAX];
    int nprof;
    Node *nodes;
    int nnodes, cap;
    int grad_enabled;   /* record the tape (0 = no-grad evaluation) */
    int training;       /* dropout / drop path active */
    int backward_done;  /* tape already consumed by mt_backward */
    uint64_t seed;      /* dropout stream: counter-based, independent of threads */
    uint64_t counter;
    int failed;
    char err[1024];
    /* Activation gradients are dead once their producer's backward has run;
     * their buffers go on this free list and are reused by later mt_grad calls
     * of the same size (repeated blocks make this the common case), so backward
     * needs about one block's worth of gradient memory, not the whole net's. */
    void *grad_pool;
    int keep_grads;     /* 1: keep every activation gradient (debugging, tests) */
    int poison_fresh;   /* 1: fresh gradient buffers are filled with NaN (tests: an op that
                         * reads one before writing it shows up) */
    /* 1: once a node's backward has run, its output's data is dead too (every consumer came
     * later on the tape and has already run backward): the buffer joins the free list, so the
     * gradients of early, large layers reuse the activations of late ones. Outputs that alias
     * an input (views) are kept. Only for callers that do not read activations after backward
     * (the training loop, bench); off by default. */
    int recycle_activations;
    /* 1: layers run each block under mt_checkpoint (core/op_checkpoint.h): its activations are
     * recomputed in backward instead of kept. */
    int grad_checkpointing;
    int fuse;           /* 1 (default): fused kernels where core/fuse.c's rules allow; 0: every fused
                         * entry point runs its composed reference (MIXTAPE_FUSION=0) */
    int precision;      /* GEMM precision for every op: MT_FP32 (default) | MT_BF16 | MT_FP32_FAST (core/gemm.h) */
    char scope[160];    /* current layer name, used in messages */
    /* Optional hook, called by the reverse sweep after node k has run its
     * backward (or was skipped because no gradient reached it), for
     * k = nnodes-1 down to 0. A parameter's gradient is final once the
     * earliest node that reads it is done, so data-parallel training uses
     * this to start reducing finished gradients while the sweep goes on
     * (train/dist_buckets.c). NULL = none; kept across mt_ctx_reset. */
    void (*on_node_done)(Ctx *c, int k, void *ud);
    void *on_node_done_ud;
};

void mt_ctx_init(Ctx *c, size_t arena_bytes);
void mt_ctx_free(Ctx *c);
/* Start a new step: frees activations (arena reset) and clears the tape. */
void mt_ctx_reset(Ctx *c);
/* Layer name shown in error messages, printf-style. */
void mt_scope(Ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Record the first error; later calls keep the first one. Always returns NULL. */
void *mt_fail(Ctx *c, const char *op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Fresh activation from the arena (data uninitialised). */
Tensor *mt_new(Ctx *c, int ndim, const int *shape);
Tensor *mt_new2(Ctx *c, int d0, int d1);
Tensor *mt_new3(Ctx *c, int d0, int d1, int d2);
Tensor *mt_new4(Ctx *c, int d0, int d1, int d2, int d3);
/* Wrap caller-owned memory as a constant input (no grad), e.g. a batch of images. */
Tensor *mt_wrap(Ctx *c, float *data, int ndim, const int *shape);
/* Gradient buffer of t, zero-filled from the arena on first use. */
float *mt_grad(Ctx *c, Tensor *t);
/* In the backward of a node whose n->overwrites has input t's bit: how to write t's
 * gradient, 1 add into t->grad, 0 overwrite every element (the buffer is fresh: garbage,
 * this backward is its first writer). Marks the buffer written. The sweep hands such inputs
 * new gradient buffers unzeroed (saving a pass over memory per activation) and zeroes
 * whatever a backward left unwritten; every other input gets a zeroed buffer. */
static inline int mt_grad_accumulate(Tensor *t) {
    int acc = !t->grad_fresh;
    t->grad_fresh = 0;
    return acc;
}

/* In a backward, a buffer of numel floats the op kept for it (n->saved, an activation's
 * worth) is dead: with c->recycle_activations it joins the free list later gradient buffers
 * come from, as outputs' data do. */
void mt_recycle(Ctx *c, float *buf, size_t numel);

/* n->saved = an arena copy of the op's typed state *st (bytes); returns the copy:
 *   mt_save(c, n, &(ConvSaved){.stride = stride, .pad = pad}, sizeof(ConvSaved)); */
void *mt_save(Ctx *c, Node *n, const void *st, size_t bytes);

/* Does an op with these inputs need a tape node? (grad on and some input requires grad) */
int mt_needs_grad(Ctx *c, Tensor *const *in, int nin);
/* Append a node for out = op(in...). Marks out->requires_grad. Returns the node to fill. */
Node *mt_record(Ctx *c, const char *op, mt_backward_fn bw, Tensor *out, Tensor *const *in, int nin);

/* Reverse-mode sweep from a scalar loss (numel 1): seeds d loss = 1.
 * Returns 0, or -1 with c->err set (non-scalar loss, tape already consumed). */
int mt_backward(Ctx *c, Tensor *loss);
/* Reverse sweep seeded with d out = seed (out->numel floats), for tests and
 * benchmarks that differentiate a non-scalar output. Same errors as mt_backward. */
int mt_backward_seed(Ctx *c, Tensor *out, const float *seed);

/* Reverse sweep over nodes [from, to) only, seeded by whatever gradients their outputs
 * already hold, without the on_node_done hook and without consuming the tape: the backward of
 * a checkpoint node runs it over the block it has just recomputed at the tape's end. */
int mt_backward_range(Ctx *c, int from, int to);

/* Gradient checkpointing (core/op_checkpoint.c), torch.utils.checkpoint's equal:
 * y = fn(c, arg, x) for a shape-preserving fn (a residual block), recorded as one node that
 * keeps only x, a copy of the arg_bytes at arg and the dropout counter. The forward runs fn
 * on the training path (recording a temporary sub-tape, then dropping it with everything fn
 * allocated), so values and masks equal an unwrapped run's bit for bit; the backward runs fn
 * again recording at the tape's end, sweeps that range seeded with dy, and rewinds the tape
 * and arena. The node lists fn's parameters (resolved in `owner` by data, so views count
 * as the parameter) in n->params for data-parallel buckets. Without a tape (no grad) fn
 * simply runs. NULL with c->err on error (e.g. fn changed the shape). */
typedef Tensor *(*mt_checkpoint_fn)(Ctx *c, const void *arg, Tensor *x);
Tensor *mt_checkpoint(Ctx *c, mt_checkpoint_fn fn, const void *arg, size_t arg_bytes, Tensor *x,
                      const ParamList *owner);

/* Start the forward clock of a profiled step (call right before the forward). */
void mt_profile_mark(Ctx *c);

/* A part of an op's work that `bench --profile` shows on a line of its own (the element-wise
 * pass a GEMM-backed fused op runs shows as that pass): the tape runs fn(c, arg) and, when
 * profiling, puts its time on line instead of the op's node. pass MT_FORWARD: in a forward,
 * before the op records its node (the span since the previous node goes to line);
 * MT_BACKWARD: inside a node's backward (the node's line keeps the rest). */
enum { MT_FORWARD, MT_BACKWARD };
typedef void (*mt_part_fn)(Ctx *c, void *arg);
void mt_part(Ctx *c, int pass, const char *line, mt_part_fn fn, void *arg);

/* Deterministic uniform [0,1) for dropout: element i of the current draw. */
float mt_rand_uniform(uint64_t seed, uint64_t counter, uint64_t i);
