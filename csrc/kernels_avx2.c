/* The AVX2 + FMA build of the kernels (x86-64-v3), chosen at run time. */
#include "internal.h"

#if CRNN_HAVE_X86_BUILDS
/* Compiled for the baseline instruction set: it runs before the choice. */
int crnn_isa_avx2_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#define CRNN_TARGET "avx2,fma,bmi,bmi2,popcnt,f16c"
#include "target_push.h"

#define VBYTES     32
#define MR         6
#define ISA_SUFFIX avx2
#include "kernels_instantiate.h"

#include "target_pop.h"
#else
CRNN_ISA_UNAVAILABLE(avx2)
#endif
