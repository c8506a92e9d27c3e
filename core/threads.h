/* One place decides the thread split: OpenMP for element-wise ops, OpenBLAS
 * for GEMMs. GEMMs are only ever called from serial code, so OpenBLAS's own
 * threads never run inside an OpenMP parallel region (no oversubscription). */
#pragma once
/* n <= 0: OMP_NUM_THREADS if set, else the core count. Returns the count used. */
int mt_set_threads(int n);
int mt_get_threads(void);
