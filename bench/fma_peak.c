/* FP32 fused multiply-add peak of this machine, in GFLOP/s (1 FMA = 2 FLOP).
 *
 * The denominator of the benchmark report's "% of FMA peak": a loop of
 * independent vector FMAs with no loads or stores, so it measures what the
 * FMA units can retire, nothing else.
 *
 *   cc -O2 -fopenmp fma_peak.c -o fma_peak     (without -fopenmp: 1 thread)
 *   ./fma_peak [seconds per measurement = 0.2] [repetitions = 5] [isa]
 *
 * isa is "auto" (default), "avx512", "avx2" or "scalar". The vector kernels
 * are compiled with target attributes and chosen at run time with
 * __builtin_cpu_supports, so no -march flag is needed. Each kernel keeps
 * NACC independent accumulators (more than FMA latency x FMA ports on
 * current x86 cores: 4 cycles x 2 ports = 8), so the dependency chains never
 * stall the units.
 *
 * Prints one JSON object: the ISA, the thread count of the parallel run
 * (OpenMP's default, i.e. OMP_NUM_THREADS or the core count) and the best
 * GFLOP/s over the repetitions for 1 thread and for all threads, by wall
 * time (gflops_1thread, gflops_all_threads) and by each thread's CPU time
 * (*_cpu: what the units deliver while the thread runs, the figure to
 * trust on a machine shared with other processes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define HAVE_X86 1
#include <immintrin.h>
#else
#define HAVE_X86 0
#endif

#define NACC 16 /* independent accumulators per kernel */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* acc = acc * m + c converges to c / (1 - m): no overflow, no denormals. */
static const float M = 0.99999f, C = 1e-6f;

/* Each kernel runs `iters` rounds of NACC vector FMAs and returns a value
 * that depends on every accumulator (so nothing is optimised away) together
 * with the number of FLOP it performed. */

#if HAVE_X86
__attribute__((target("avx512f"))) static float kernel_avx512(long iters, double *flop)
{
    __m512 acc[NACC];
    const __m512 m = _mm512_set1_ps(M), c = _mm512_set1_ps(C);
    for (int i = 0; i < NACC; i++)
        acc[i] = _mm512_set1_ps((float)i * 1e-3f);
    for (long n = 0; n < iters; n++) {
#pragma GCC unroll 16
        for (int i = 0; i < NACC; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], m, c);
    }
    __m512 s = acc[0];
    for (int i = 1; i < NACC; i++)
        s = _mm512_add_ps(s, acc[i]);
    *flop = 2.0 * 16.0 * NACC * (double)iters;
    return _mm512_reduce_add_ps(s);
}

/* 16 vector registers in AVX2: 12 accumulators + 2 constants fit. */
#define NACC2 12
__attribute__((target("avx2,fma"))) static float kernel_avx2(long iters, double *flop)
{
    __m256 acc[NACC2];
    const __m256 m = _mm256_set1_ps(M), c = _mm256_set1_ps(C);
    for (int i = 0; i < NACC2; i++)
        acc[i] = _mm256_set1_ps((float)i * 1e-3f);
    for (long n = 0; n < iters; n++) {
#pragma GCC unroll 12
        for (int i = 0; i < NACC2; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], m, c);
    }
    __m256 s = acc[0];
    for (int i = 1; i < NACC2; i++)
        s = _mm256_add_ps(s, acc[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    *flop = 2.0 * 8.0 * NACC2 * (double)iters;
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}
#endif

/* Portable fallback: whatever the compiler makes of it (not a true peak). */
static float kernel_scalar(long iters, double *flop)
{
    float acc[NACC];
    for (int i = 0; i < NACC; i++)
        acc[i] = (float)i * 1e-3f;
    for (long n = 0; n < iters; n++)
        for (int i = 0; i < NACC; i++)
            acc[i] = acc[i] * M + C;
    float s = 0.0f;
    for (int i = 0; i < NACC; i++)
        s += acc[i];
    *flop = 2.0 * NACC * (double)iters;
    return s;
}

typedef float (*kernel_fn)(long, double *);

static volatile float sink;

static double thread_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* `reps` runs of `iters` iterations on `threads` threads (each thread runs
 * the whole kernel). Two figures, the best over the runs:
 *  - wall: all FLOP / wall time of the run;
 *  - cpu: the sum over threads of each thread's FLOP / its own CPU time,
 *    i.e. the rate while the thread was actually running. On a shared
 *    machine, where other processes take turns on the cores, this still
 *    finds the hardware's rate; the wall figure does not. */
static void measure(kernel_fn k, long iters, int threads, int reps, double *wall, double *cpu)
{
    *wall = *cpu = 0.0;
    for (int r = 0; r < reps; r++) {
        double flop_total = 0.0, rate_total = 0.0;
        double t0 = now();
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(+ : flop_total, rate_total)
#endif
        {
            double f = 0.0;
            double c0 = thread_cpu_now();
            sink = k(iters, &f);
            double dc = thread_cpu_now() - c0;
            flop_total += f;
            rate_total += dc > 0 ? f / dc * 1e-9 : 0.0;
        }
        double g = flop_total / (now() - t0) * 1e-9;
        if (g > *wall)
            *wall = g;
        if (rate_total > *cpu)
            *cpu = rate_total;
    }
    (void)threads;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 0.2;
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    const char *want = argc > 3 ? argv[3] : "auto";
    if (!(seconds > 0.0))
        seconds = 0.2;
    if (reps < 1)
        reps = 1;

    const char *isa = "scalar";
    kernel_fn k = kernel_scalar;
#if HAVE_X86
    __builtin_cpu_init();
    int has512 = __builtin_cpu_supports("avx512f");
    int has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if ((!strcmp(want, "auto") || !strcmp(want, "avx512")) && has512) {
        isa = "avx512";
        k = kernel_avx512;
    } else if ((!strcmp(want, "auto") || !strcmp(want, "avx2")) && has2) {
        isa = "avx2";
        k = kernel_avx2;
    }
#endif
    if (strcmp(want, "auto") && strcmp(want, isa)) {
        fprintf(stderr, "fma_peak: ISA %s not available (have %s)\n", want, isa);
        return 2;
    }

    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif

    /* Calibrate: grow the iteration count until one run takes 1/8 of the
     * target, then scale to the target. */
    long iters = 1000;
    double flop;
    for (;;) {
        double t0 = now();
        sink = k(iters, &flop);
        double dt = now() - t0;
        if (dt > seconds / 8.0 || iters > (1L << 40)) {
            iters = (long)((double)iters * seconds / (dt > 0 ? dt : 1e-9));
            break;
        }
        iters *= 4;
    }
    if (iters < 1)
        iters = 1;

    double g1, g1cpu, gall, gallcpu;
    measure(k, iters, 1, reps, &g1, &g1cpu);
    if (threads > 1)
        measure(k, iters, threads, reps, &gall, &gallcpu);
    else
        gall = g1, gallcpu = g1cpu;
    printf("{\"isa\": \"%s\", \"threads\": %d, \"openmp\": %s, "
           "\"gflops_1thread\": %.3f, \"gflops_all_threads\": %.3f, "
           "\"gflops_1thread_cpu\": %.3f, \"gflops_all_threads_cpu\": %.3f, "
           "\"seconds\": %.3f, \"repetitions\": %d}\n",
           isa, threads,
#ifdef _OPENMP
           "true",
#else
           "false",
#endif
           g1, gall, g1cpu, gallcpu, seconds, reps);
    return 0;
}
