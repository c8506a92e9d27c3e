/* SIGINT / SIGTERM ask the training loop to stop after the current step (it
 * then writes a resumable checkpoint). A second signal exits at once, after
 * removing the temporary file being written, if any. */
#pragma once
void signals_install(void);
/* 0, or the signal number received. */
int signals_pending(void);
/* The temporary output being written (see train/outfile.c), so that an
 * immediate exit on a second signal removes it; end clears it. */
void signals_temp_begin(const char *tmp_path);
void signals_temp_end(void);
