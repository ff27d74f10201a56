/* Single-precision reference kernels: the template instantiated with REAL = float. */
#include "ref.h"

#define REAL float
#define REF(name) ref_##name
#include "ref_impl.inc"
