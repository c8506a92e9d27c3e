/* SIGINT / SIGTERM ask the training loop to stop after the current step (it
 * then writes a resumable checkpoint). A second signal exits at once. */
#pragma once
void signals_install(void);
/* 0, or the signal number received. */
int signals_pending(void);
