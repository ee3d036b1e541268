/* The AVX2 + FMA build of the kernels (x86-64-v3), chosen at run time. */
#include "internal.h"

#if CRNN_HAVE_X86_BUILDS
#define CRNN_TARGET "avx2,fma,bmi,bmi2,popcnt,f16c"
#include "target_push.h"

#define VBYTES 32
#define MR 6
#define ISA_SUFFIX avx2
#include "kernels_instantiate.h"

#include "target_pop.h"

const crnn_kernel_table crnn_kernels_avx2 = CRNN_KERNEL_TABLE(avx2);
#endif
