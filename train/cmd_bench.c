/* mixtape bench: throughput of one model on random in-memory data — a full
 * train step (forward, cross-entropy, backward, AdamW) and a no-grad forward —
 * with achieved GFLOP/s, peak RSS and, with --profile, time per op. */
#include "core/clock.h"
#include "core/gemm.h"
#include "core/threads.h"
#include "optim/optimizer.h"
#include "train/bench_contend.h"
#include "train/synthetic_batch.h"
#include "train/commands.h"
#include "train/dist.h"
#include "train/dist_buckets.h"
#include "train/model_io.h"
#include "train/precision_auto.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* GFLOP/s of one GEMM shape, C = A op(B) (one warm-up call, then 3 timed) */
static double gemm_rate(int precision, int transB, int m, int n, int k, const float *a, const float *b, float *c) {
    MtGemm g = {.precision = precision, .transB = transB, .M = m, .N = n, .K = k, .alpha = 1.0f, .A = a,
                .lda = k, .B = b, .ldb = transB ? k : n, .C = c, .ldc = n};
    mt_gemm_run(&g);
    double t = mt_seconds();
    for (int it = 0; it < 3; it++) mt_gemm_run(&g);
    return 3 * 2.0 * m * n * (double)k / (mt_seconds() - t) / 1e9;
}

/* The machine's GEMM rates, for reading a model's achieved GFLOP/s against: a large square
 * problem, a model-sized one (mixer_s16_224's channel-MLP fc1 at batch 32: 6272 tokens,
 * 512 -> 2048, x @ W^T as the layer runs it) and the register peak (core/gemm_peak.c). */
static int sgemm_rate(int threads) {
    const int n = 1536, mm = 32 * 196, mn = 2048, mk = 512;
    size_t big = (size_t)mm * mn; /* the largest of the operands below */
    float *a = malloc(big * sizeof(float)), *b = malloc(big * sizeof(float)), *c = malloc(big * sizeof(float));
    if (!a || !b || !c) {
        fprintf(stderr, "bench --sgemm: cannot allocate 3 x %.0f MB\n", big * sizeof(float) / 1e6);
        free(a); free(b); free(c);
        return 1;
    }
    for (size_t i = 0; i < big; i++) { a[i] = (float)(i % 13) * 0.01f; b[i] = (float)(i % 7) * 0.01f; }
    double blas = gemm_rate(MT_FP32_BLAS, MT_NOTRANS, n, n, n, a, b, c),
           bf = gemm_rate(MT_BF16, MT_NOTRANS, n, n, n, a, b, c), f32 = gemm_rate(MT_FP32, MT_NOTRANS, n, n, n, a, b, c),
           model = gemm_rate(MT_BF16, MT_TRANS, mm, mn, mk, a, b, c);
    printf("sgemm: %.1f GFLOP/s (OpenBLAS fp32, %d threads)  bf16 gemm: %.1f GFLOP/s (%s)  fp32 gemm: %.1f GFLOP/s (%s)\n",
           blas, threads, bf, mt_gemm_backend(MT_BF16), f32, mt_gemm_backend(MT_FP32));
    printf("bf16 gemm %dx%dx%d: %.1f GFLOP/s  register peak: bf16 %.1f GFLOP/s, fp32 %.1f GFLOP/s (0: no "
           "bound here: no native kernel, or AMX)\n",
           mm, mn, mk, model, mt_gemm_peak(MT_BF16), mt_gemm_peak(MT_FP32));
    free(a); free(b); free(c);
    return 0;
}

static int is_gemm_op(const char *op) {
    return !strcmp(op, "linear") || !strcmp(op, "token_linear") || !strcmp(op, "conv2d") || !strcmp(op, "bmm") ||
           !strcmp(op, "attention") || !strcmp(op, "act_linear_residual") || !strcmp(op, "token_act_linear_residual") ||
           !strcmp(op, "layernorm_linear") || !strcmp(op, "groupnorm1_linear");
}

static void help(FILE *f) {
    fprintf(f, "usage: mixtape bench --model M [-b 32] [--steps 10] [--warmup N] [--threads N] [--profile]\n"
               "                     [--precision fp32|bf16|fp32-blas|auto] [--mode train,forward] [model overrides]\n"
               "       mixtape bench --model M -b N --contend K [--threads N] [--rounds 3]   (next to K busy\n"
               "                     processes; without --threads: 1 thread vs all cores, medians and ratio)\n"
               "       mixtape bench --sgemm [--threads N]\n"
               "       mpirun -np N mixtape bench --comm [--bytes B] [--repeat R]   (link latency, all-reduce rates)\n"
               "Prints one line per mode: `train: X img/s  Y GFLOP/s` (forward + backward + AdamW step)\n"
               "and `forward: X img/s  Y GFLOP/s` (no-grad), then peak RSS. Under mpirun every rank runs\n"
               "the step with -b images and averages gradients in buckets overlapped with backward, as\n"
               "`train` does; img/s are then summed over ranks and a line `allreduce: X%% of step time`\n"
               "gives the communication time left on the step's critical path (rank 0's view; env\n"
               "MIXTAPE_BUCKET_MB sets the bucket size, MIXTAPE_OVERLAP=0 starts buckets only after\n"
               "backward). --profile adds a breakdown: train per op (forward and backward),\n"
               "forward per model scope with block indices merged (stages.2 norm2+mlp = all its blocks).\n");
}

/* The --comm mode's flags, declared once for its run and for --help. */
static void comm_flags(Args *a, long *bytes, int *reps) {
    args_group(a, "comm (with --comm, under mpirun)");
    (void)args_bool(a, "--comm", 0, "measure link latency and all-reduce rates instead of a model");
    *bytes = args_int_range(a, "--bytes", NULL, 64L << 20, 65536, 1L << 31, "all-reduce message size in bytes");
    *reps = (int)args_int_range(a, "--repeat", NULL, 5, 1, 1000, "timed repetitions per size");
}

static int cmp_prof(const void *a, const void *b) {
    const OpProfile *x = a, *y = b;
    double tx = x->fwd + x->bwd, ty = y->fwd + y->bwd;
    return tx < ty ? 1 : tx > ty ? -1 : 0;
}

/* Sorts the profile by time and prints it; returns the total seconds. Train: one line per
 * op kind, forward and backward; forward (no tape): one line per scope of the model. */
static double print_profile(Ctx *c, int steps, int train) {
    qsort(c->prof, (size_t)c->nprof, sizeof c->prof[0], cmp_prof);
    double tot = 0;
    for (int i = 0; i < c->nprof; i++) tot += c->prof[i].fwd + c->prof[i].bwd;
    if (train) printf("profile (per step, ms):  %-26s %9s %9s %7s\n", "op", "forward", "backward", "share");
    else printf("profile (per batch, ms): %-28s %9s %7s\n", "scope", "forward", "share");
    for (int i = 0; i < c->nprof; i++) {
        const OpProfile *p = &c->prof[i];
        double share = 100 * (p->fwd + p->bwd) / tot;
        if (train) printf("                         %-26s %9.2f %9.2f %6.1f%%\n", p->op, 1e3 * p->fwd / steps, 1e3 * p->bwd / steps, share);
        else printf("                         %-28s %9.2f %6.1f%%\n", p->op, 1e3 * p->fwd / steps, share);
    }
    return tot;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* The flags of a model benchmark. */
typedef struct BenchOpts {
    ModelConfig cfg;
    int B, steps, warmup, profile, grad_ckpt;
    double bucket_mb;
    const char *modes, *prec;
} BenchOpts;

/* What the measured steps run on: the model, AdamW, one random batch, the tape. */
typedef struct Bench {
    Model m;
    Optimizer opt;
    SyntheticBatch batch;
    double gf;              /* forward GFLOPs per image */
    Ctx c;
    DistBuckets *db;
} Bench;

/* Parses argv into *bo. -1 to go on, else the exit code (0 after --help). */
static int bench_flags(int argc, char **argv, BenchOpts *bo) {
    Args a;
    args_init(&a, "bench", argc, argv);
    char err[2048];
    if (model_config_from_args(&a, &bo->cfg, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); args_free(&a); return 2; }
    args_group(&a, "bench");
    (void)args_bool(&a, "--sgemm", 0, "measure the GEMM kernel's GFLOP/s instead of a model");
    bo->B = (int)args_int_range(&a, "--batch-size", "-b", 32, 1, 1 << 20, "images per step (per rank)");
    bo->steps = (int)args_int_range(&a, "--steps", NULL, 10, 1, 1000000, "measured steps");
    bo->warmup = (int)args_int_range(&a, "--warmup", NULL, 3, 0, 1000000, "unmeasured steps first");
    bo->bucket_mb = args_float_range(&a, "--bucket-mb", NULL, 0, 0, 4096,
                                     "MPI: gradient bucket size in MB (0: env MIXTAPE_BUCKET_MB, else 4)");
    bo->profile = args_bool(&a, "--profile", 0, "per-op / per-scope time breakdown");
    bo->modes = args_string(&a, "--mode", NULL, "train,forward", "comma list of train, forward");
    bo->prec = args_choice(&a, "--precision", NULL, "fp32", "fp32|bf16|fp32-blas|auto",
                           "GEMM precision / kernel (auto: the faster of fp32 and bf16, timed first)");
    bo->grad_ckpt = args_bool(&a, "--grad-checkpointing", 0, "train mode: recompute each block's activations in backward");
    threads_from_args(&a);
    if (args_describing(&a)) { /* --help lists the --comm mode too */
        long bytes;
        int reps;
        comm_flags(&a, &bytes, &reps);
        long ncomp, rounds;
        bench_contend_flags(&a, &ncomp, &rounds);
    }
    int e = args_end(&a, help);
    args_free(&a);
    if (e) return e == 1 ? 0 : 2;
    return -1;
}

/* Model, optimizer, batch, tape and gradient buckets. 0, or the exit code. */
static int bench_build(Bench *b, const BenchOpts *bo) {
    char err[2048];
    if (model_build(&b->m, &bo->cfg, err, sizeof err) != 0) { fprintf(stderr, "mixtape bench: %s\n", err); return 2; }
    model_init(&b->m, 0);
    OptimConfig oc;
    optim_config_default(&oc);
    oc.opt = "adamw";
    oc.lr = 1e-4f;
    if (optim_create(&b->opt, &b->m.params, &oc, err, sizeof err) != 0) { fprintf(stderr, "mixtape bench: %s\n", err); return 1; }
    if (synthetic_batch(&b->batch, &bo->cfg, bo->B, 0x9e3779b97f4a7c15ull) != 0) {
        fprintf(stderr, "mixtape bench: out of memory for a batch of %d\n", bo->B);
        return 1;
    }
    b->gf = model_gflops(&bo->cfg);
    mt_ctx_init(&b->c, (size_t)1 << 20); /* grows to the step's high-water mark after the first step */
    b->c.recycle_activations = 1;
    b->c.grad_checkpointing = bo->grad_ckpt;
    if (!strcmp(bo->prec, "bf16")) b->c.precision = MT_BF16;
    else if (!strcmp(bo->prec, "fp32-blas")) b->c.precision = MT_FP32_BLAS;
    else if (!strcmp(bo->prec, "auto")) {
        PrecisionPick pp;
        if (precision_auto_pick(&bo->cfg, bo->B, bo->grad_ckpt, &pp, err, sizeof err) != 0) {
            fprintf(stderr, "mixtape bench: %s\n", err);
            return 1;
        }
        b->c.precision = precision_auto_agree(pp.precision);
        precision_auto_describe(&pp, err, sizeof err);
        printf("%s\n", err);
    } else if (strcmp(bo->prec, "fp32")) { fprintf(stderr, "mixtape bench: --precision must be fp32, bf16 or fp32-blas\n"); return 2; }
    b->db = dist_buckets_create(&b->m.params, (long)(bo->bucket_mb * 1048576.0), err, sizeof err);
    if (!b->db) { fprintf(stderr, "mixtape bench: %s\n", err); return 1; }
    return 0;
}

static void bench_free(Bench *b) {
    if (b->c.nodes) mt_ctx_free(&b->c);
    dist_buckets_free(b->db);
    if (b->opt.params) optim_free(&b->opt);
    model_free(&b->m);
    synthetic_batch_free(&b->batch);
}

/* One train step: forward, loss, backward (gradients averaged over ranks in buckets),
 * AdamW; *topt += the optimizer's seconds. A failure on any rank ends the process. */
static void train_step(Bench *b, double *topt) {
    Ctx *c = &b->c;
    mt_ctx_reset(c);
    c->training = 1;
    mt_profile_mark(c);
    Tensor *x = mt_wrap(c, b->batch.images, 4, b->batch.shape);
    Tensor *loss = mt_cross_entropy(c, model_forward(c, &b->m, x), b->batch.labels, NULL, 0);
    dist_buckets_begin(b->db, c);
    int rc = loss ? mt_backward(c, loss) : -1;
    dist_buckets_finish(b->db, c);
    if (dist_any_max(rc != 0)) {
        fprintf(stderr, "mixtape bench: %s\n", rc ? c->err : "failed on another rank");
        dist_abort(1);
    }
    double t0 = mt_seconds();
    optim_step(&b->opt);
    optim_zero_grad(&b->opt);
    *topt += mt_seconds() - t0;
}

/* The all-reduce time left on the step's critical path between two bucket snapshots. */
static void print_allreduce(Bench *b, const DistBucketStats *s0, double comm0, double dt, int steps) {
    DistBucketStats s1;
    dist_buckets_stats(b->db, &s1);
    double comm = dist_buckets_seconds(b->db) - comm0, per = 1e3 / steps;
    printf("allreduce: %.1f%% of step time  (%.2f ms/step on the critical path: pack+start %.2f, progress "
           "%.2f, wait %.2f, unpack %.2f; %d bucket(s), %.1f MB of gradients, %.1f bucket(s) per step started "
           "during backward)\n",
           100.0 * comm / dt, comm * per, (s1.t_launch - s0->t_launch) * per,
           (s1.t_progress - s0->t_progress) * per, (s1.t_wait - s0->t_wait) * per,
           (s1.t_unpack - s0->t_unpack) * per, s1.nbuckets, s1.floats * 4.0 / 1048576.0,
           (double)(s1.launched_early - s0->launched_early) / steps);
}

/* --profile of the train steps: per op, then GEMM ops against the rest of the step. */
static void print_train_profile(Ctx *c, int steps, double dt, double topt) {
    double tot = print_profile(c, steps, 1);
    double g = 0;
    for (int i = 0; i < c->nprof; i++)
        if (is_gemm_op(c->prof[i].op)) g += c->prof[i].fwd + c->prof[i].bwd;
    printf("                         %-26s %9.2f (ops) of %.2f ms per step; optimizer %.2f ms\n", "total",
           1e3 * tot / steps, 1e3 * dt / steps, 1e3 * topt / steps);
    printf("GEMM ops (linear, token_linear, conv2d, bmm, attention, act_linear_residual, "
           "token_act_linear_residual, layernorm_linear, groupnorm1_linear; their norm passes count as the "
           "norm's): %.1f%% of step "
           "time; other ops %.1f%%; "
           "optimizer %.1f%%; the rest (tape, loss) %.1f%%\n", 100 * g / dt, 100 * (tot - g) / dt,
           100 * topt / dt, 100 * (dt - tot - topt) / dt);
}

/* --mode train: warmup steps, then the measured ones; the `train:` line and its details. */
static void bench_train(Bench *b, const BenchOpts *bo) {
    const int world = dist_world(), B = bo->B, steps = bo->steps;
    double tstep = 0, comm0 = 0, topt = 0;
    DistBucketStats s0;
    memset(&s0, 0, sizeof s0);
    for (int it = 0; it < bo->warmup + steps; it++) {
        if (it == bo->warmup) {
            tstep = mt_seconds();
            comm0 = dist_buckets_seconds(b->db);
            dist_buckets_stats(b->db, &s0);
            b->c.profile = bo->profile;
            topt = 0;   /* the warmup steps' optimizer time is not measured */
        }
        train_step(b, &topt);
    }
    double dt = mt_seconds() - tstep;
    b->c.profile = 0;
    printf("train: %.1f img/s  %.1f GFLOP/s  (%.1f ms/step", (double)B * world * steps / dt,
           3.0 * b->gf * B * world * steps / dt, 1e3 * dt / steps);
    if (world > 1) printf(", %d ranks x %d images, %.1f img/s per rank", world, B, B * steps / dt);
    printf(")\n");
    if (world > 1) print_allreduce(b, &s0, comm0, dt, steps);
    if (bo->profile) print_train_profile(&b->c, steps, dt, topt);
}

/* --mode forward: no-grad forward passes; the `forward:` line and, with --profile, per
 * scope. 0, or 1 (the message is printed). */
static int bench_forward(Bench *b, const BenchOpts *bo) {
    Ctx *c = &b->c;
    const int B = bo->B, steps = bo->steps;
    c->grad_enabled = 0;
    c->training = 0;
    double t0 = 0;
    for (int it = 0; it < bo->warmup + steps; it++) {
        if (it == bo->warmup) {
            t0 = mt_seconds();
            c->profile = bo->profile;
            c->nprof = 0;
        }
        mt_ctx_reset(c);
        mt_profile_mark(c);
        Tensor *x = mt_wrap(c, b->batch.images, 4, b->batch.shape);
        if (!model_forward(c, &b->m, x)) { fprintf(stderr, "mixtape bench: %s\n", c->err); return 1; }
    }
    double dt = mt_seconds() - t0;
    c->profile = 0;
    printf("forward: %.1f img/s  %.1f GFLOP/s  (%.1f ms/batch)\n", B * steps / dt, b->gf * B * steps / dt,
           1e3 * dt / steps);
    if (bo->profile) {
        double tot = print_profile(c, steps, 0);
        printf("                         %-28s %9.2f of %.2f ms per batch\n", "total", 1e3 * tot / steps,
               1e3 * dt / steps);
    }
    return 0;
}

static int bench(int argc, char **argv) {
    BenchOpts bo;
    int rc = bench_flags(argc, argv, &bo);
    if (rc >= 0) return rc;
    Bench *b = calloc(1, sizeof *b);
    if (!b) { fprintf(stderr, "mixtape bench: out of memory\n"); return 1; }
    rc = bench_build(b, &bo);
    if (rc == 0) {
        printf("model %s  batch %d  threads %d  ranks %d  params %.2fM  %.3f GFLOPs/img forward\n", bo.cfg.name,
               bo.B, mt_get_threads(), dist_world(), mt_params_count(&b->m.params) / 1e6, b->gf);
        if (strstr(bo.modes, "train")) bench_train(b, &bo);
        if (strstr(bo.modes, "forward")) rc = bench_forward(b, &bo);
        if (rc == 0) printf("peak RSS: %.1f MB  (arena %.1f MB)\n", peak_rss_mb(), b->c.arena.peak / 1048576.0);
    }
    bench_free(b);
    free(b);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    int describe = 0;
    for (int i = 0; i < argc && strcmp(argv[i], "--"); i++)
        describe |= !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || !strcmp(argv[i], "--list-flags");
    if (!describe && bench_contend_requested(argc, argv)) return bench_contend(argc, argv);
    for (int i = 0; i < argc && !describe; i++)
        if (!strcmp(argv[i], "--sgemm")) {
            Args t;
            args_init(&t, "bench", argc, argv);
            args_bool(&t, "--sgemm", 0, NULL);
            threads_from_args(&t);
            int e = args_end(&t, help);
            args_free(&t);
            if (e) return e == 1 ? 0 : 2;
            return sgemm_rate(mt_get_threads());
        }
    for (int i = 0; i < argc && !describe; i++)
        if (!strcmp(argv[i], "--comm")) {
            Args t;
            long bytes;
            int reps;
            args_init(&t, "bench", argc, argv);
            comm_flags(&t, &bytes, &reps);
            int e = args_end(&t, help);
            args_free(&t);
            if (e) return e == 1 ? 0 : 2;
            dist_init(NULL, NULL);
            int rc = bench_comm(bytes, reps);
            dist_finalize();
            return rc;
        }
    if (describe) return bench(argc, argv); /* prints the declared flags, runs nothing */
    dist_init(NULL, NULL);
    /* Under mpirun every rank runs the benchmark; rank 0 reports. */
    if (!dist_is_root() && !freopen("/dev/null", "w", stdout)) fprintf(stderr, "mixtape bench: cannot silence rank %d\n", dist_rank());
    int rc = bench(argc, argv);
    dist_finalize();
    return rc;
}
