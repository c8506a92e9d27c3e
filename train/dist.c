#include "core/clock.h"
#include "train/dist.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef MIXTAPE_HAVE_MPI
#include <mpi.h>
static int g_mpi = 0, g_rank = 0, g_world = 1;
#else
static const int g_rank = 0, g_world = 1;
#endif
static double g_comm = 0;
static char g_host[64];

/* ---------------------------------------------------------------- watchdog */

static double g_timeout = 1800;   /* as torch.distributed's default: a slow validation or save on one rank is not a lost rank */
static _Atomic(const char *) g_coll;     /* the collective being waited in, or NULL */
static _Atomic double g_coll_t0;
static atomic_long g_step = -1;

void dist_set_timeout(double s) { g_timeout = s >= 0 ? s : 0; }
void dist_set_phase(long step) { atomic_store(&g_step, step); }

void dist_enter(const char *what) {
    atomic_store(&g_coll_t0, mt_seconds());
    atomic_store(&g_coll, what);
}

void dist_leave(void) { atomic_store(&g_coll, (const char *)NULL); }

#ifdef MIXTAPE_HAVE_MPI
static void *watchdog(void *arg) {
    (void)arg;
    for (;;) {
        usleep(250000);
        const char *what = atomic_load(&g_coll);
        if (!what || g_timeout <= 0) continue;
        double waited = mt_seconds() - atomic_load(&g_coll_t0);
        if (waited < g_timeout) continue;
        long step = atomic_load(&g_step);
        char at[48] = "";
        if (step >= 0) snprintf(at, sizeof at, " at step %ld", step);
        /* stdio may be locked by the blocked main thread: write(2) directly */
        char msg[512];
        int k = snprintf(msg, sizeof msg,
                         "mixtape: rank %d (host %s): no reply from the other ranks for %.0f s in %s%s: a rank, "
                         "its host or the link to it is lost (MIXTAPE_DIST_TIMEOUT=%.0f). Stopping this rank; "
                         "the last checkpoint is intact, resume with the same number of ranks.\n",
                         dist_rank(), dist_host(), waited, what, at, g_timeout);
        if (k > 0 && write(2, msg, (size_t)(k < (int)sizeof msg ? k : (int)sizeof msg - 1)) < 0) { /* nothing to do */ }
        _exit(1);
    }
    return NULL;
}
#endif

const char *dist_host(void) {
    if (!g_host[0] && gethostname(g_host, sizeof g_host - 1) != 0) strcpy(g_host, "?");
    return g_host;
}

uint64_t dist_hash(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ull; }
    return h;
}

uint64_t dist_binary_hash(void) {
    FILE *f = fopen("/proc/self/exe", "rb");
    if (!f) return 0;
    uint64_t h = DIST_HASH0;
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) h = dist_hash(h, buf, n);
    fclose(f);
    return h;
}

/* What one rank reports in dist_check_same. */
typedef struct SameRec {
    uint64_t value;
    char host[64];
    char shown[64];
} SameRec;

int dist_check_same(const char *what, uint64_t value, const char *shown, char *err, size_t errn) {
    if (g_world <= 1) return 0;
#ifdef MIXTAPE_HAVE_MPI
    SameRec me;
    memset(&me, 0, sizeof me);
    me.value = value;
    snprintf(me.host, sizeof me.host, "%s", dist_host());
    snprintf(me.shown, sizeof me.shown, "%s", shown ? shown : "");
    SameRec *all = calloc((size_t)g_world, sizeof *all);
    if (!all) { snprintf(err, errn, "out of memory"); dist_abort(1); }
    dist_enter("the start-up check of every rank's setup");
    MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, all, (int)sizeof me, MPI_BYTE, MPI_COMM_WORLD);
    dist_leave();
    int rc = 0;
    for (int r = 1; r < g_world; r++)
        if (all[r].value != all[0].value) {
            snprintf(err, errn, "rank %d (host %s) runs with a different %s (%s) than rank 0 (host %s: %s); every "
                     "rank must have the same", r, all[r].host, what, all[r].shown, all[0].host, all[0].shown);
            rc = -1;
            break;
        }
    free(all);
    return rc;
#else
    (void)what; (void)value; (void)shown; (void)err; (void)errn;
    return 0;
#endif
}

void dist_init(int *argc, char ***argv) {
#ifdef MIXTAPE_HAVE_MPI
    /* Only when a launcher set us up: a plain `mixtape train` never touches MPI. */
    if (g_mpi) return;   /* idempotent: commands call it at their start */
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK")) {
        /* Only the main thread calls MPI (loader and OpenMP threads never do). */
        int provided;
        MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        g_mpi = 1;
        MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &g_world);
        const char *e = getenv("MIXTAPE_DIST_TIMEOUT");
        if (e && *e) dist_set_timeout(atof(e));
        pthread_t wd;
        if (g_world > 1 && pthread_create(&wd, NULL, watchdog, NULL) == 0) pthread_detach(wd);
    }
#else
    (void)argc; (void)argv;
#endif
}

void dist_finalize(void) {
#ifdef MIXTAPE_HAVE_MPI
    if (g_mpi) {
        dist_enter("MPI_Finalize");
        MPI_Finalize();
        dist_leave();
    }
    g_mpi = 0;
#endif
}

int dist_rank(void) { return g_rank; }
int dist_world(void) { return g_world; }
double dist_comm_seconds(void) { return g_comm; }

#ifdef MIXTAPE_HAVE_MPI
/* The one collective every dist_ call makes: n elements of type combined in place over
 * the ranks by op, or sent from rank 0 with MPI_OP_NULL. MPI counts are int: a large
 * buffer goes in pieces. what names the wait for the watchdog's message. */
static void collective(void *buf, size_t n, MPI_Datatype type, MPI_Op op, const char *what) {
    const size_t CHUNK = (size_t)1 << 28;
    int elem;
    MPI_Type_size(type, &elem);
    for (size_t o = 0; o < n; o += CHUNK) {
        size_t k = n - o < CHUNK ? n - o : CHUNK;
        char *p = (char *)buf + o * (size_t)elem;
        dist_enter(what);
        if (op == MPI_OP_NULL) MPI_Bcast(p, (int)k, type, 0, MPI_COMM_WORLD);
        else MPI_Allreduce(MPI_IN_PLACE, p, (int)k, type, op, MPI_COMM_WORLD);
        dist_leave();
    }
}
#endif

void dist_allreduce_mean(float *buf, size_t n) {
    if (g_world <= 1) return;
#ifdef MIXTAPE_HAVE_MPI
    double t = mt_seconds();
    collective(buf, n, MPI_FLOAT, MPI_SUM, "the gradient all-reduce");
    float s = 1.0f / (float)g_world;
    for (size_t i = 0; i < n; i++) buf[i] *= s;
    g_comm += mt_seconds() - t;
#endif
}

/* A collective in the calls below; without MPI there is one rank and nothing to do. */
#ifdef MIXTAPE_HAVE_MPI
#define COLLECTIVE(buf, n, type, op, what) collective(buf, n, type, op, what)
#else
#define COLLECTIVE(buf, n, type, op, what) ((void)(buf), (void)(n))
#endif

void dist_allreduce_sum_d(double *buf, int n) {
    if (g_world > 1 && n > 0) COLLECTIVE(buf, (size_t)n, MPI_DOUBLE, MPI_SUM, "an all-reduce of metrics");
}

void dist_allreduce_sum_i64(int64_t *buf, int n) {
    if (g_world > 1 && n > 0) COLLECTIVE(buf, (size_t)n, MPI_INT64_T, MPI_SUM, "an all-reduce of evaluation counts");
}

void dist_allreduce_sum_long(long *buf, size_t n) {
    if (g_world > 1) COLLECTIVE(buf, n, MPI_LONG, MPI_SUM, "an all-reduce of evaluation counts");
}

int dist_any_max(int v) {
    if (g_world > 1) COLLECTIVE(&v, 1, MPI_INT, MPI_MAX, "an agreement between ranks (stop / error flags)");
    return v;
}

long dist_all_min_long(long v) {
    if (g_world > 1) COLLECTIVE(&v, 1, MPI_LONG, MPI_MIN, "an agreement between ranks (batches per epoch)");
    return v;
}

void dist_bcast(void *buf, size_t bytes) {
    if (g_world > 1) COLLECTIVE(buf, bytes, MPI_BYTE, MPI_OP_NULL, "a broadcast from rank 0");
}

void dist_abort(int code) {
    fflush(stdout);
    fflush(stderr);
#ifdef MIXTAPE_HAVE_MPI
    if (g_mpi && g_world > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}
