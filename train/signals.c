#include "train/signals.h"
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_sig = 0;
static char g_tmp[4200];                /* written only while g_tmp_set == 0 */
static volatile sig_atomic_t g_tmp_set = 0;

static void on_signal(int s) {
    if (g_sig) { /* second signal: the user really means it; leave no half-written temporary */
        if (g_tmp_set) unlink(g_tmp);
        _exit(128 + s);
    }
    g_sig = s;
    static const char msg[] = "\nmixtape: stopping after this step, writing a checkpoint (signal again to abort)\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
}

void signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int signals_pending(void) { return (int)g_sig; }

void signals_temp_begin(const char *tmp_path) {
    g_tmp_set = 0;
    snprintf(g_tmp, sizeof g_tmp, "%s", tmp_path);
    g_tmp_set = 1;
}

void signals_temp_end(void) { g_tmp_set = 0; }
