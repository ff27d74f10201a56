/* The floating-point mode of the threads that compute: subnormal ("denormal") results are
 * flushed to zero and subnormal inputs read as zero (x86 MXCSR FTZ and DAZ; AArch64 FPCR
 * FZ). Subnormal arithmetic takes a slow microcode path on x86 (tens to hundreds of cycles
 * per operation): Adam's second moments of rarely-updated weights decay into that range
 * and made the optimizer of the default run four times slower after two epochs. Every
 * thread that trains or evaluates runs in this mode (the trainer's caller, the pool's
 * workers and their OpenMP teams, the loader), so the results stay the same for any
 * worker or rank count. The mode is per thread; a thread started by pthread_create
 * inherits its creator's. */
#ifndef PC_FPENV_H
#define PC_FPENV_H

/* The calling thread's control register, to restore later. */
typedef struct {
    unsigned long bits;
} pc_fp_mode;

/* Flush subnormals on the calling thread; returns the mode it replaced. */
pc_fp_mode pc_fp_flush_denormals(void);
void pc_fp_restore(pc_fp_mode previous);
/* 1 if the calling thread flushes subnormals (results and inputs), 0 if not, -1 if this
 * build cannot control it. */
int pc_fp_flushing(void);

#endif
