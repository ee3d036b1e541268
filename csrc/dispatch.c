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

/* Calls left to run on one thread after a starved parallel region, and the
 * length of the next such spell: doubled while threads keep starving (a
 * busy machine), halved after each region that ran well. */
static atomic_int g_backoff = 0;
static atomic_int g_backoff_len = 0;
enum { BACKOFF_MIN = 4, BACKOFF_MAX = 256 };

int crnn_threads_for_call(void)
{
    if (atomic_load(&g_num_threads) <= 0 && atomic_load(&g_backoff) > 0) {
        atomic_fetch_sub(&g_backoff, 1);
        return 1;
    }
    int n = crnn_get_num_threads();
    return n > 0 ? n : 1;
}

void crnn_region_end(crnn_region_clock *c, int nt)
{
    if (nt < 2 || c->team < 2)
        return;
    const int team = c->team < CRNN_CLOCK_THREADS ? c->team : CRNN_CLOCK_THREADS;
    double late = 0.0;
    for (int k = 1; k < team; k++)
        if (c->entry[k] - c->start > late)
            late = c->entry[k] - c->start;
    const double share = c->caller_done - c->start, wait = crnn_wtime() - c->caller_done;
    /* Waking a sleeping thread takes up to about a millisecond (longer in a
     * virtual machine), and uneven slices make the caller wait at most about
     * its own share. A delay of several milliseconds that is also large
     * against the work itself (a scheduler time slice spent queued behind
     * other processes) means the team was starved. */
    const double stall = 2e-3;
    int len = atomic_load(&g_backoff_len);
    if ((late > stall && late > 0.5 * share) || (wait > stall && wait > 1.5 * share) ||
        atomic_load(&c->starved)) {
        len = len < BACKOFF_MIN ? BACKOFF_MIN : len >= BACKOFF_MAX / 2 ? BACKOFF_MAX : 2 * len;
        atomic_store(&g_backoff, len);
    } else {
        len /= 2;
    }
    atomic_store(&g_backoff_len, len);
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

/* Sizes are non-negative and every array's element count (T*B*max(I, G),
 * G*max(I, H), for G = gates*H) fits comfortably in 64 bits. */
static int sizes_ok(int64_t T, int64_t B, int64_t I, int64_t H, int64_t gates)
{
    if (T < 0 || B < 0 || I < 0 || H < 0)
        return 0;
    const int64_t limit = INT64_MAX / 64;
    if (H > limit / gates)
        return 0;
    const int64_t G = gates * H;
    const int64_t wide = I > G ? I : G;
    if (T && B > limit / T)
        return 0;
    if (wide && T * B > limit / wide)
        return 0;
    if (G && (H > limit / G || I > limit / G))
        return 0;
    return 1;
}

/* The Jordan network's arrays: those of an RNN with input width In and of
 * one with input width O (the fed-back output), hidden width H. */
static int jordan_sizes_ok(int64_t T, int64_t B, int64_t In, int64_t H, int64_t O)
{
    return sizes_ok(T, B, In, H, 1) && sizes_ok(T, B, O, H, 1);
}

static int activation_ok(int activation)
{
    return activation >= CRNN_TANH && activation <= CRNN_SIGMOID;
}

/* The public entry points of one element type (T_, suffix S_): check the
 * sizes, then call the chosen build with the thread count for this call. */
#define DEFINE_ENTRY_POINTS(T_, S_)                                                          \
    int crnn_rnn_forward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, const T_ *x,      \
                              const T_ *h0, const T_ *w_ih, const T_ *w_hh,                 \
                              const T_ *b_ih, const T_ *b_hh, const int64_t *lengths,       \
                              int activation, T_ *out, T_ *h_n)                             \
    {                                                                                        \
        if (!sizes_ok(T, B, In, H, 1) || !activation_ok(activation))                         \
            return CRNN_ERR_INVALID;                                                         \
        return kernels()->rnn_forward_##S_(T, B, In, H, x, h0, w_ih, w_hh, b_ih, b_hh,      \
                                           lengths, activation, out, h_n,                   \
                                           crnn_threads_for_call());                        \
    }                                                                                        \
    int crnn_rnn_backward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, const T_ *x,     \
                               const T_ *h0, const T_ *w_ih, const T_ *w_hh,                \
                               const int64_t *lengths, int activation, const T_ *out,       \
                               const T_ *dout, const T_ *dh_n, T_ *dx, T_ *dh0,             \
                               T_ *dw_ih, T_ *dw_hh, T_ *db)                                \
    {                                                                                        \
        if (!sizes_ok(T, B, In, H, 1) || !activation_ok(activation))                         \
            return CRNN_ERR_INVALID;                                                         \
        return kernels()->rnn_backward_##S_(T, B, In, H, x, h0, w_ih, w_hh, lengths,        \
                                            activation, out, dout, dh_n, dx, dh0, dw_ih,    \
                                            dw_hh, db, crnn_threads_for_call());            \
    }                                                                                        \
    int crnn_lstm_forward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, const T_ *x,     \
                               const T_ *h0, const T_ *c0, const T_ *w_ih, const T_ *w_hh,  \
                               const T_ *b_ih, const T_ *b_hh, const int64_t *lengths,      \
                               T_ *out, T_ *h_n, T_ *c_n, T_ *gates, T_ *cells)             \
    {                                                                                        \
        if (!sizes_ok(T, B, In, H, 4))                                                       \
            return CRNN_ERR_INVALID;                                                         \
        return kernels()->lstm_forward_##S_(T, B, In, H, x, h0, c0, w_ih, w_hh, b_ih, b_hh, \
                                            lengths, out, h_n, c_n, gates, cells,           \
                                            crnn_threads_for_call());                       \
    }                                                                                        \
    int crnn_lstm_backward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, const T_ *x,    \
                                const T_ *h0, const T_ *c0, const T_ *w_ih, const T_ *w_hh, \
                                const int64_t *lengths, const T_ *out, const T_ *gates,     \
                                const T_ *cells, const T_ *dout, const T_ *dh_n,            \
                                const T_ *dc_n, T_ *dx, T_ *dh0, T_ *dc0, T_ *dw_ih,        \
                                T_ *dw_hh, T_ *db)                                          \
    {                                                                                        \
        if (!sizes_ok(T, B, In, H, 4))                                                       \
            return CRNN_ERR_INVALID;                                                         \
        return kernels()->lstm_backward_##S_(T, B, In, H, x, h0, c0, w_ih, w_hh, lengths,   \
                                             out, gates, cells, dout, dh_n, dc_n, dx, dh0,  \
                                             dc0, dw_ih, dw_hh, db,                         \
                                             crnn_threads_for_call());                      \
    }                                                                                        \
    int crnn_gru_forward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, const T_ *x,      \
                              const T_ *h0, const T_ *w_ih, const T_ *w_hh,                 \
                              const T_ *b_ih, const T_ *b_hh, const int64_t *lengths,       \
                              T_ *out, T_ *h_n, T_ *gates, T_ *hn)                          \
    {                                                                                        \
        if (!sizes_ok(T, B, In, H, 3))                                                       \
            return CRNN_ERR_INVALID;                                                         \
        return kernels()->gru_forward_##S_(T, B, In, H, x, h0, w_ih, w_hh, b_ih, b_hh,      \
                                           lengths, out, h_n, gates, hn,                    \
                                           crnn_threads_for_call());                        \
    }                                                                                        \
    int crnn_gru_backward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, const T_ *x,     \
                               const T_ *h0, const T_ *w_ih, const T_ *w_hh,                \
                               const int64_t *lengths, const T_ *out, const T_ *gates,      \
                               const T_ *hn, const T_ *dout, const T_ *dh_n, T_ *dx,        \
                               T_ *dh0, T_ *dw_ih, T_ *dw_hh, T_ *db_ih, T_ *db_hh)         \
    {                                                                                        \
        if (!sizes_ok(T, B, In, H, 3))                                                       \
            return CRNN_ERR_INVALID;                                                         \
        return kernels()->gru_backward_##S_(T, B, In, H, x, h0, w_ih, w_hh, lengths, out,   \
                                            gates, hn, dout, dh_n, dx, dh0, dw_ih, dw_hh,   \
                                            db_ih, db_hh, crnn_threads_for_call());         \
    }                                                                                        \
    int crnn_jordan_forward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, int64_t O,     \
                                 const T_ *x, const T_ *y0, const T_ *w_ih, const T_ *w_hy, \
                                 const T_ *w_ho, const T_ *b_ih, const T_ *b_hh,            \
                                 const T_ *b_ho, const int64_t *lengths, int f, int g,      \
                                 T_ *out, T_ *y_n, T_ *hidden)                              \
    {                                                                                        \
        if (!jordan_sizes_ok(T, B, In, H, O) || !activation_ok(f) ||                         \
            (g != -1 && !activation_ok(g)))                                                  \
            return CRNN_ERR_INVALID;                                                         \
        return kernels()->jordan_forward_##S_(T, B, In, H, O, x, y0, w_ih, w_hy, w_ho,      \
                                              b_ih, b_hh, b_ho, lengths, f, g, out, y_n,    \
                                              hidden, crnn_threads_for_call());             \
    }                                                                                        \
    int crnn_jordan_backward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, int64_t O,    \
                                  const T_ *x, const T_ *y0, const T_ *w_ih,                \
                                  const T_ *w_hy, const T_ *w_ho, const int64_t *lengths,   \
                                  int f, int g, const T_ *out, const T_ *hidden,            \
                                  const T_ *dout, const T_ *dy_n, T_ *dx, T_ *dy0,          \
                                  T_ *dw_ih, T_ *dw_hy, T_ *dw_ho, T_ *db, T_ *db_ho)       \
    {                                                                                        \
        if (!jordan_sizes_ok(T, B, In, H, O) || !activation_ok(f) ||                         \
            (g != -1 && !activation_ok(g)))                                                  \
            return CRNN_ERR_INVALID;                                                         \
        return kernels()->jordan_backward_##S_(T, B, In, H, O, x, y0, w_ih, w_hy, w_ho,     \
                                               lengths, f, g, out, hidden, dout, dy_n, dx,  \
                                               dy0, dw_ih, dw_hy, dw_ho, db, db_ho,         \
                                               crnn_threads_for_call());                    \
    }

DEFINE_ENTRY_POINTS(float, f32)
DEFINE_ENTRY_POINTS(double, f64)
