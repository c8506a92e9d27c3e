/* libhdf5 1.10 does not check every structure of a file before it follows it: a corrupt
 * metadata address, global heap or link table can make the library itself read wild memory
 * (tests/fuzz finds such files). mixtape cannot fix the library, but it can keep its promise
 * to the user: a crash whose stack runs through libhdf5 while an untrusted file is open ends
 * the process with a message naming the file and exit code 1, not a bare signal. A crash
 * anywhere else goes on to the previous handler (the default, or a sanitizer's), so real bugs
 * still crash loudly. */
#define _GNU_SOURCE
#include "data/h5crash.h"
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char g_path[512];
static struct sigaction g_old[3];
static const int g_sigs[3] = {SIGSEGV, SIGBUS, SIGFPE};
static volatile sig_atomic_t g_on = 0;

/* Does the faulting stack run through libhdf5? Not async-signal-safe (backtrace, dladdr), but
 * the process ends either way; this only chooses the message. */
static int in_hdf5(void) {
    void *pcs[24];
    int n = backtrace(pcs, 24);
    for (int i = 0; i < n; i++) {
        Dl_info di;
        if (dladdr(pcs[i], &di) && di.dli_fname && strstr(di.dli_fname, "libhdf5")) return 1;
    }
    return 0;
}

static void on_fault(int sig, siginfo_t *si, void *uc) {
    if (in_hdf5()) {
        char msg[800];
        int k = snprintf(msg, sizeof msg,
                         "mixtape: the HDF5 library crashed (%s) reading '%s': the file is damaged in a way libhdf5 "
                         "does not check; refused, no output was replaced\n",
                         sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : "SIGFPE", g_path);
        if (k > 0 && write(2, msg, (size_t)(k < (int)sizeof msg ? k : (int)sizeof msg - 1)) < 0) { /* exiting anyway */ }
        _exit(1);
    }
    for (int i = 0; i < 3; i++)
        if (g_sigs[i] == sig) {
            if (g_old[i].sa_flags & SA_SIGINFO) { g_old[i].sa_sigaction(sig, si, uc); return; }
            if (g_old[i].sa_handler != SIG_DFL && g_old[i].sa_handler != SIG_IGN) { g_old[i].sa_handler(sig); return; }
        }
    signal(sig, SIG_DFL);   /* returning re-runs the faulting instruction: the default action */
}

void h5crash_guard(const char *path) {
    snprintf(g_path, sizeof g_path, "%s", path ? path : "?");
    if (g_on) return;
    g_on = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;   /* the signal stays blocked in the handler: a fault there ends the process */
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++) sigaction(g_sigs[i], &sa, &g_old[i]);
}

/* ---- the watchdog: one thread, started on first use, sleeping until a deadline is armed */
static pthread_mutex_t w_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t w_cv;
static int w_state;              /* 0 no thread, 1 running, -1 could not start (reads go unguarded) */
static int w_armed;
static double w_limit;
static struct timespec w_deadline;
static char w_msg[900];

static void *watch_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&w_mu);
    for (;;) {
        if (!w_armed) { pthread_cond_wait(&w_cv, &w_mu); continue; }
        if (pthread_cond_timedwait(&w_cv, &w_mu, &w_deadline) != ETIMEDOUT || !w_armed) continue;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec < w_deadline.tv_sec || (now.tv_sec == w_deadline.tv_sec && now.tv_nsec < w_deadline.tv_nsec))
            continue;
        if (write(2, w_msg, strlen(w_msg)) < 0) { /* exiting anyway */ }
        _exit(1);
    }
    return NULL;
}

static int watch_start(void) {
    if (w_state) return w_state;
    const char *e = getenv("MIXTAPE_H5_READ_LIMIT");
    char *end = NULL;
    double v = e ? strtod(e, &end) : 0;
    w_limit = e && end != e && !*end && v > 0 && v <= 86400 ? v : H5CRASH_WATCH_SECONDS;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w_cv, &ca);
    pthread_condattr_destroy(&ca);
    sigset_t all, old;   /* signals (SIGINT, SIGTERM) stay with the threads that handle them */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    w_state = pthread_create(&t, NULL, watch_main, NULL) == 0 ? 1 : -1;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (w_state == 1) pthread_detach(t);
    return w_state;
}

void h5crash_watch_begin(const char *path, const char *key) {
    pthread_mutex_lock(&w_mu);
    if (watch_start() == 1) {
        snprintf(w_msg, sizeof w_msg,
                 "mixtape: reading %s of '%s' did not finish in %g s: libhdf5 is stuck on a damaged structure "
                 "of the file; refused, no output was replaced\n", key ? key : "an attribute", path ? path : "?",
                 w_limit);
        clock_gettime(CLOCK_MONOTONIC, &w_deadline);
        double whole = (double)(long)w_limit;
        w_deadline.tv_sec += (time_t)whole;
        w_deadline.tv_nsec += (long)((w_limit - whole) * 1e9);
        if (w_deadline.tv_nsec >= 1000000000L) { w_deadline.tv_sec++; w_deadline.tv_nsec -= 1000000000L; }
        w_armed = 1;
        pthread_cond_signal(&w_cv);
    }
    pthread_mutex_unlock(&w_mu);
}

void h5crash_watch_end(void) {
    pthread_mutex_lock(&w_mu);
    w_armed = 0;
    if (w_state == 1) pthread_cond_signal(&w_cv);
    pthread_mutex_unlock(&w_mu);
}
