/* The AVX-512 build of the kernels with AVX512_BF16 (Cooper Lake, Zen 4 and
 * later), chosen at run time: the avx512 build, whose bfloat16 products
 * (CRNN_F32_BF16) run on vdpbf16ps (gemm_bf16.inc). */
#include "internal.h"

#if CRNN_HAVE_X86_BUILDS
#include <immintrin.h>

/* Compiled for the baseline instruction set: it runs before the choice. */
int crnn_isa_avx512_bf16_supported(void)
{
    __builtin_cpu_init();
    return crnn_isa_avx512_supported() && __builtin_cpu_supports("avx512bf16");
}

#define CRNN_TARGET "avx512f,avx512dq,avx512bw,avx512vl,avx512bf16,avx2,fma,bmi,bmi2,popcnt,f16c"
#include "target_push.h"

#define VBYTES           64
#define MR               12
#define ISA_SUFFIX       avx512_bf16
#define CRNN_NATIVE_BF16 1
/* Native float calls run the avx512 build's kernels (crnn_kernel_table.native). */
#define CRNN_NATIVE_KERNELS crnn_kernels_avx512
#include "kernels_instantiate.h"

#include "target_pop.h"
#else
CRNN_ISA_UNAVAILABLE(avx512_bf16)
#endif
