/* Double-precision reference kernels (refd_*): the same template with REAL = double,
 * used by the gradient tests. */
#include "ref_double.h"

#define REAL double
#define REF(name) refd_##name
#include "ref_impl.inc"
