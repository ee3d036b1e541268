/* The AVX-512 build with AMX (Sapphire Rapids and later), chosen at run
 * time: the avx512_bf16 build, whose large bfloat16 products (the input
 * projection and the backward's weight and input gradients) run on AMX tiles
 * (tdpbf16ps; gemm_bf16.inc). Linux only: the process must ask the kernel
 * for the tile registers' state (arch_prctl) before the first tile
 * instruction. */
#include "internal.h"

/* AMX intrinsics: GCC 11 or Clang 12 and later. */
#if defined(__clang__)
#define CRNN_AMX_COMPILER (__clang_major__ >= 12)
#elif defined(__GNUC__)
#define CRNN_AMX_COMPILER (__GNUC__ >= 11)
#else
#define CRNN_AMX_COMPILER 0
#endif

#if CRNN_HAVE_X86_BUILDS && defined(__linux__) && CRNN_AMX_COMPILER
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };

/* The CPU has AMX-TILE and AMX-BF16 (CPUID leaf 7: EDX bits 24 and 22), the
 * OS keeps the tile state (XCR0 bits 17 and 18), and the kernel lets this
 * process use it. Asked once: the permission is the whole process's. */
static int amx_usable(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 22)))
        return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) /* OSXSAVE: xgetbv allowed */
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17))
        return 0;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

/* Compiled for the baseline instruction set: it runs before the choice. */
int crnn_isa_amx_bf16_supported(void)
{
    static int known = -1; /* a race only repeats the same answer */
    if (known < 0)
        known = crnn_isa_avx512_bf16_supported() && amx_usable();
    return known;
}

#define CRNN_TARGET                                                                                \
    "avx512f,avx512dq,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16,avx2,fma,bmi,bmi2,popcnt,"    \
    "f16c"
#include "target_push.h"

#define VBYTES           64
#define MR               12
#define ISA_SUFFIX       amx_bf16
#define CRNN_NATIVE_BF16 1
#define CRNN_AMX_BF16    1
/* Native float calls run the avx512 build's kernels (crnn_kernel_table.native). */
#define CRNN_NATIVE_KERNELS crnn_kernels_avx512
#include "kernels_instantiate.h"

#include "target_pop.h"
#else
CRNN_ISA_UNAVAILABLE(amx_bf16)
#endif
