/* The AVX-512 build of the kernels (x86-64-v4), chosen at run time. */
#include "internal.h"

#if CRNN_HAVE_X86_BUILDS
/* Compiled for the baseline instruction set: it runs before the choice. */
int crnn_isa_avx512_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#define CRNN_TARGET "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,bmi,bmi2,popcnt,f16c"
#include "target_push.h"

#define VBYTES     64
#define MR         12
#define ISA_SUFFIX avx512
#include "kernels_instantiate.h"

#include "target_pop.h"
#else
CRNN_ISA_UNAVAILABLE(avx512)
#endif
