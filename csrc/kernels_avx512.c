/* The AVX-512 build of the kernels (x86-64-v4), chosen at run time. */
#include "internal.h"

#if CRNN_HAVE_X86_BUILDS
#define CRNN_TARGET "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,bmi,bmi2,popcnt,f16c"
#include "target_push.h"

#define VBYTES 64
#define MR 12
#define ISA_SUFFIX avx512
#include "kernels_instantiate.h"

#include "target_pop.h"

const crnn_kernel_table crnn_kernels_avx512 = CRNN_KERNEL_TABLE(avx512);
#endif
