/*
 * Public entry points: argument sanity, the thread count and the choice of
 * instruction-set build, made once per call, then the kernels do the work.
 */
#include <stdatomic.h>

#include "internal.h"

/* > 0: a count fixed by crnn_set_num_threads; otherwise OpenMP's default. */
static atomic_int g_num_threads = 0;
/* The instruction set in use, or -2 before the first call resolves it. */
static atomic_int g_isa = -2;

void crnn_set_num_threads(int n) { atomic_store(&g_num_threads, n > 0 ? n : 0); }

int crnn_get_num_threads(void)
{
#ifdef _OPENMP
    int n = atomic_load(&g_num_threads);
    return n > 0 ? n : omp_get_max_threads();
#else
    return 1;
#endif
}

int crnn_have_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int crnn_threads_for_call(void)
{
    int n = crnn_get_num_threads();
    return n > 0 ? n : 1;
}

int crnn_isa_supported(int isa)
{
    switch (isa) {
    case CRNN_ISA_GENERIC:
        return 1;
#if CRNN_HAVE_X86_BUILDS
    case CRNN_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CRNN_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    default:
        return 0;
    }
}

static int best_isa(void)
{
    if (crnn_isa_supported(CRNN_ISA_AVX512))
        return CRNN_ISA_AVX512;
    if (crnn_isa_supported(CRNN_ISA_AVX2))
        return CRNN_ISA_AVX2;
    return CRNN_ISA_GENERIC;
}

const char *crnn_isa_name(int isa)
{
    switch (isa) {
    case CRNN_ISA_AUTO: return "auto";
    case CRNN_ISA_GENERIC: return "generic";
    case CRNN_ISA_AVX2: return "avx2";
    case CRNN_ISA_AVX512: return "avx512";
    default: return "unknown";
    }
}

/* The CRNN_ISA environment variable (auto|avx512|avx2|generic), where the CPU
 * supports it; otherwise the best the CPU supports. */
static int isa_from_environment(void)
{
    const char *want = getenv("CRNN_ISA");
    if (want)
        for (int isa = CRNN_ISA_GENERIC; isa <= CRNN_ISA_AVX512; isa++)
            if (strcmp(want, crnn_isa_name(isa)) == 0 && crnn_isa_supported(isa))
                return isa;
    return best_isa();
}

int crnn_get_isa(void)
{
    int isa = atomic_load(&g_isa);
    if (isa < 0) {
        isa = isa_from_environment();
        atomic_store(&g_isa, isa);
    }
    return isa;
}

int crnn_set_isa(int isa)
{
    if (isa == CRNN_ISA_AUTO)
        isa = best_isa();
    else if (!crnn_isa_supported(isa))
        return CRNN_ERR_INVALID;
    atomic_store(&g_isa, isa);
    return CRNN_OK;
}

const char *crnn_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown";
#endif
}

static const crnn_kernel_table *kernels(void)
{
    switch (crnn_get_isa()) {
#if CRNN_HAVE_X86_BUILDS
    case CRNN_ISA_AVX512: return &crnn_kernels_avx512;
    case CRNN_ISA_AVX2: return &crnn_kernels_avx2;
#endif
    default: return &crnn_kernels_generic;
    }
}

/* Sizes are non-negative and T*B*max(I, H) elements fit in memory indexing. */
static int sizes_ok(int64_t T, int64_t B, int64_t I, int64_t H, int activation)
{
    if (T < 0 || B < 0 || I < 0 || H < 0)
        return 0;
    if (activation < CRNN_TANH || activation > CRNN_SIGMOID)
        return 0;
    const int64_t limit = INT64_MAX / 16;
    int64_t wide = I > H ? I : H;
    if (T && B > limit / T)
        return 0;
    if (wide && T * B > limit / wide)
        return 0;
    if (H && (H > limit / H || I > limit / H))
        return 0;
    return 1;
}

int crnn_rnn_forward_f32(int64_t T, int64_t B, int64_t I, int64_t H, const float *x,
                         const float *h0, const float *w_ih, const float *w_hh,
                         const float *b_ih, const float *b_hh, const int64_t *lengths,
                         int activation, float *out, float *h_n)
{
    if (!sizes_ok(T, B, I, H, activation))
        return CRNN_ERR_INVALID;
    return kernels()->rnn_forward_f32(T, B, I, H, x, h0, w_ih, w_hh, b_ih, b_hh, lengths,
                                      activation, out, h_n, crnn_threads_for_call());
}

int crnn_rnn_forward_f64(int64_t T, int64_t B, int64_t I, int64_t H, const double *x,
                         const double *h0, const double *w_ih, const double *w_hh,
                         const double *b_ih, const double *b_hh, const int64_t *lengths,
                         int activation, double *out, double *h_n)
{
    if (!sizes_ok(T, B, I, H, activation))
        return CRNN_ERR_INVALID;
    return kernels()->rnn_forward_f64(T, B, I, H, x, h0, w_ih, w_hh, b_ih, b_hh, lengths,
                                      activation, out, h_n, crnn_threads_for_call());
}

int crnn_rnn_backward_f32(int64_t T, int64_t B, int64_t I, int64_t H, const float *x,
                          const float *h0, const float *w_ih, const float *w_hh,
                          const int64_t *lengths, int activation, const float *out,
                          const float *dout, const float *dh_n, float *dx, float *dh0,
                          float *dw_ih, float *dw_hh, float *db)
{
    if (!sizes_ok(T, B, I, H, activation))
        return CRNN_ERR_INVALID;
    return kernels()->rnn_backward_f32(T, B, I, H, x, h0, w_ih, w_hh, lengths, activation,
                                       out, dout, dh_n, dx, dh0, dw_ih, dw_hh, db,
                                       crnn_threads_for_call());
}

int crnn_rnn_backward_f64(int64_t T, int64_t B, int64_t I, int64_t H, const double *x,
                          const double *h0, const double *w_ih, const double *w_hh,
                          const int64_t *lengths, int activation, const double *out,
                          const double *dout, const double *dh_n, double *dx, double *dh0,
                          double *dw_ih, double *dw_hh, double *db)
{
    if (!sizes_ok(T, B, I, H, activation))
        return CRNN_ERR_INVALID;
    return kernels()->rnn_backward_f64(T, B, I, H, x, h0, w_ih, w_hh, lengths, activation,
                                       out, dout, dh_n, dx, dh0, dw_ih, dw_hh, db,
                                       crnn_threads_for_call());
}
