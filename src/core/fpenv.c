#include "core/fpenv.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>

#define FTZ_DAZ 0x8040u /* MXCSR bits 15 (flush to zero) and 6 (denormals are zero) */

pc_fp_mode pc_fp_flush_denormals(void) {
    pc_fp_mode old = {_mm_getcsr()};
    _mm_setcsr((unsigned)old.bits | FTZ_DAZ);
    return old;
}

void pc_fp_restore(pc_fp_mode previous) { _mm_setcsr((unsigned)previous.bits); }

int pc_fp_flushing(void) { return (_mm_getcsr() & FTZ_DAZ) == FTZ_DAZ; }

#elif defined(__aarch64__)

#define FPCR_FZ (1ul << 24) /* flush subnormal inputs and results to zero */

static unsigned long read_fpcr(void) {
    unsigned long v;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(v));
    return v;
}

static void write_fpcr(unsigned long v) { __asm__ __volatile__("msr fpcr, %0" : : "r"(v)); }

pc_fp_mode pc_fp_flush_denormals(void) {
    pc_fp_mode old = {read_fpcr()};
    write_fpcr(old.bits | FPCR_FZ);
    return old;
}

void pc_fp_restore(pc_fp_mode previous) { write_fpcr(previous.bits); }

int pc_fp_flushing(void) { return (read_fpcr() & FPCR_FZ) != 0; }

#else

pc_fp_mode pc_fp_flush_denormals(void) { return (pc_fp_mode){0}; }
void pc_fp_restore(pc_fp_mode previous) { (void)previous; }
int pc_fp_flushing(void) { return -1; }

#endif
