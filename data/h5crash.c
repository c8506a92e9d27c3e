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
#include <execinfo.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
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
