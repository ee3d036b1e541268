/*
 * Shared by the C files of crnn (not part of the public interface):
 * allocation, size arithmetic, the OpenMP shim and the kernel table that
 * each instruction-set build fills in.
 */
#ifndef CRNN_INTERNAL_H
#define CRNN_INTERNAL_H

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crnn.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) || defined(_M_X64)
#define CRNN_X86 1
#else
#define CRNN_X86 0
#endif

/* Instruction-set builds exist only where GCC/Clang can target them per
 * function; elsewhere only the portable build is compiled. */
#if CRNN_X86 && (defined(__GNUC__) || defined(__clang__))
#define CRNN_HAVE_X86_BUILDS 1
#else
#define CRNN_HAVE_X86_BUILDS 0
#endif

static inline int64_t crnn_ceil_div(int64_t n, int64_t d) { return (n + d - 1) / d; }

static inline int64_t crnn_round_up(int64_t n, int64_t m) { return crnn_ceil_div(n, m) * m; }

/* 64-byte aligned; a zero-size request still returns a valid block. */
static inline void *crnn_alloc(size_t bytes)
{
    size_t rounded = bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
    if (rounded < bytes)
        return NULL;
    return aligned_alloc(64, rounded);
}

static inline void crnn_free(void *p) { free(p); }

static inline int crnn_thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static inline int crnn_team_size(void)
{
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* Threads worth using for `work` multiply-adds (or element operations): a
 * thread should get at least ~1M of them (tens of microseconds), or starting
 * and joining it costs more than it saves, and far more on a busy machine. */
static inline int crnn_threads_for_work(double work, int nthreads)
{
    double useful = work / 1048576.0;
    if (useful < 1.0)
        return 1;
    return useful < (double)nthreads ? (int)useful : nthreads;
}

/* Threads for a recurrence over B independent rows: at most one per row. */
static inline int crnn_threads_for_rows(int64_t B, double work, int nthreads)
{
    int nt = crnn_threads_for_work(work, nthreads);
    return (int64_t)nt > B ? (int)B : nt;
}

/* The team to start for work cut into nt slices: never more threads than
 * processors this process may run on (more would only time-share a core and
 * stall each other at the join). A smaller team takes several slices each,
 * so results depend on nt only through the slicing, which is fixed. */
static inline int crnn_team_for(int nt)
{
#ifdef _OPENMP
    int procs = omp_get_num_procs();
    return procs > 0 && procs < nt ? procs : nt;
#else
    (void)nt;
    return 1;
#endif
}

/* The end of the steps of [t0, t1) that a single row (B = 1) really has:
 * its length lengths[0] clamped to [t0, t1], or t1 without lengths. The
 * steps from there to t1 are padding. */
static inline int64_t crnn_one_row_end(int64_t t0, int64_t t1, const int64_t *lengths)
{
    const int64_t len = lengths ? lengths[0] : t1;
    return len < t0 ? t0 : len < t1 ? len : t1;
}

/* What a register tile does with its result (kernels.inc). */
enum { EPI_STORE = 0, EPI_ACCUMULATE = 1 };

/* One instruction-set build of the kernels (kernels.inc, gated.inc, jordan.inc): the
 * public functions of crnn.h, typed per element type, plus a thread count. */
#define CRNN_KERNEL_SIGNATURES(T_, S_)                                                      \
    int (*rnn_forward_##S_)(int64_t, int64_t, int64_t, int64_t, const T_ *, const T_ *,     \
                            const T_ *, const T_ *, const T_ *, const T_ *,                 \
                            const int64_t *, int, T_ *, T_ *, int);                         \
    int (*rnn_backward_##S_)(int64_t, int64_t, int64_t, int64_t, const T_ *, const T_ *,    \
                             const T_ *, const T_ *, const int64_t *, int, const T_ *,      \
                             const T_ *, const T_ *, T_ *, T_ *, T_ *, T_ *, T_ *, int);    \
    int (*lstm_forward_##S_)(int64_t, int64_t, int64_t, int64_t, const T_ *, const T_ *,    \
                             const T_ *, const T_ *, const T_ *, const T_ *, const T_ *,    \
                             const int64_t *, T_ *, T_ *, T_ *, T_ *, T_ *, int);           \
    int (*lstm_backward_##S_)(int64_t, int64_t, int64_t, int64_t, const T_ *, const T_ *,   \
                              const T_ *, const T_ *, const T_ *, const int64_t *,          \
                              const T_ *, const T_ *, const T_ *, const T_ *, const T_ *,   \
                              const T_ *, T_ *, T_ *, T_ *, T_ *, T_ *, T_ *, int);         \
    int (*gru_forward_##S_)(int64_t, int64_t, int64_t, int64_t, const T_ *, const T_ *,     \
                            const T_ *, const T_ *, const T_ *, const T_ *,                 \
                            const int64_t *, T_ *, T_ *, T_ *, T_ *, int);                  \
    int (*gru_backward_##S_)(int64_t, int64_t, int64_t, int64_t, const T_ *, const T_ *,    \
                             const T_ *, const T_ *, const int64_t *, const T_ *,           \
                             const T_ *, const T_ *, const T_ *, const T_ *, T_ *, T_ *,    \
                             T_ *, T_ *, T_ *, T_ *, int);                                  \
    int (*jordan_forward_##S_)(int64_t, int64_t, int64_t, int64_t, int64_t, const T_ *,     \
                               const T_ *, const T_ *, const T_ *, const T_ *, const T_ *,  \
                               const T_ *, const T_ *, const int64_t *, int, int, T_ *,     \
                               T_ *, T_ *, int);                                            \
    int (*jordan_backward_##S_)(int64_t, int64_t, int64_t, int64_t, int64_t, const T_ *,    \
                                const T_ *, const T_ *, const T_ *, const T_ *,             \
                                const int64_t *, int, int, const T_ *, const T_ *,          \
                                const T_ *, const T_ *, T_ *, T_ *, T_ *, T_ *, T_ *, T_ *, \
                                T_ *, int);

typedef struct {
    CRNN_KERNEL_SIGNATURES(float, f32)
    CRNN_KERNEL_SIGNATURES(double, f64)
} crnn_kernel_table;

/* The table of one build, for the functions kernels_instantiate.h defined
 * with suffix ISA (e.g. rnn_forward_f32_avx512). */
#define CRNN_KERNEL_TABLE(ISA)                                                              \
    {                                                                                       \
        rnn_forward_f32_##ISA, rnn_backward_f32_##ISA, lstm_forward_f32_##ISA,              \
            lstm_backward_f32_##ISA, gru_forward_f32_##ISA, gru_backward_f32_##ISA,         \
            jordan_forward_f32_##ISA, jordan_backward_f32_##ISA,                            \
            rnn_forward_f64_##ISA, rnn_backward_f64_##ISA, lstm_forward_f64_##ISA,          \
            lstm_backward_f64_##ISA, gru_forward_f64_##ISA, gru_backward_f64_##ISA,         \
            jordan_forward_f64_##ISA, jordan_backward_f64_##ISA,                            \
    }

extern const crnn_kernel_table crnn_kernels_generic;
#if CRNN_HAVE_X86_BUILDS
extern const crnn_kernel_table crnn_kernels_avx2;
extern const crnn_kernel_table crnn_kernels_avx512;
#endif

/* The thread count for a call made now (1 without OpenMP). */
int crnn_threads_for_call(void);

/*
 * Contention watch for one parallel region. A region one of whose threads
 * started milliseconds late, or whose calling thread, having done its own
 * share, then waited milliseconds more at the join, had a starved team (its
 * other threads were queued behind other processes). crnn_region_end then makes the next calls run on one thread
 * for a while (unless the thread count was fixed by crnn_set_num_threads);
 * results do not depend on the thread count, only the time does.
 */
enum { CRNN_CLOCK_THREADS = 64 };
typedef struct {
    double start;                      /* before the region */
    double caller_done;                /* when thread 0 finished its share */
    double entry[CRNN_CLOCK_THREADS];  /* when each thread started */
    int team;                          /* the team's size */
    atomic_int starved;                /* a thread waited too long inside */
} crnn_region_clock;

static inline double crnn_wtime(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return 0.0;
#endif
}

static inline void crnn_region_begin(crnn_region_clock *c)
{
    c->start = crnn_wtime();
    c->caller_done = c->start;
    c->team = 1;
    c->entry[0] = c->start;
    atomic_init(&c->starved, 0);
}

/* Inside the region, first thing on each thread. */
static inline void crnn_region_enter(crnn_region_clock *c)
{
    const int tid = crnn_thread_num();
    if (tid < CRNN_CLOCK_THREADS)
        c->entry[tid] = crnn_wtime();
    if (tid == 0)
        c->team = crnn_team_size();
}

/* Inside the region, last thing on each thread. */
static inline void crnn_region_share_done(crnn_region_clock *c)
{
    if (crnn_thread_num() == 0)
        c->caller_done = crnn_wtime();
}

void crnn_region_end(crnn_region_clock *c, int nt);

/* A cheap clock in arbitrary units, for ratios of intervals within a call:
 * the time-stamp counter where there is one, else crnn_wtime. */
static inline double crnn_ticks(void)
{
#if CRNN_HAVE_X86_BUILDS
    return (double)__builtin_ia32_rdtsc();
#else
    return crnn_wtime();
#endif
}

/*
 * A lighter barrier for a team that meets after every one of many short
 * steps (microseconds, where a general barrier's cost would show): each
 * thread publishes how many steps it has finished, on a cache line of its
 * own, and spins until the others have finished as many. A wait of more
 * than 2 ms (a thread queued behind other processes) marks the clock's
 * region as starved, so later calls run on one thread for a while. The
 * time spent waiting is added to *waited (crnn_ticks units), for
 * crnn_steps_done.
 */
typedef struct {
    _Alignas(64) atomic_llong done;
    char pad[64 - sizeof(atomic_llong)];
} crnn_step_count;

/* Zeroes the counts of a team of up to nt threads; returns the team size
 * the counts can serve. */
static inline int crnn_step_counts_init(crnn_step_count *counts, int nt)
{
    for (int v = 0; v < CRNN_CLOCK_THREADS; v++)
        atomic_init(&counts[v].done, 0);
    return nt < CRNN_CLOCK_THREADS ? nt : CRNN_CLOCK_THREADS;
}

static inline void crnn_step_barrier(crnn_step_count *counts, int team, int tid,
                                     long long steps, crnn_region_clock *c, double *waited)
{
    atomic_store_explicit(&counts[tid].done, steps, memory_order_release);
    for (int u = 0; u < team; u++) {
        if (atomic_load_explicit(&counts[u].done, memory_order_acquire) >= steps)
            continue;
        const double from = crnn_ticks();
        double since = 0.0;
        for (unsigned spins = 1;
             atomic_load_explicit(&counts[u].done, memory_order_acquire) < steps; spins++) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
            if (spins % 4096 == 0) { /* look at the clock now and then only */
                const double now = crnn_wtime();
                if (since == 0.0)
                    since = now;
                else if (now - since > 2e-3)
                    atomic_store(&c->starved, 1);
            }
        }
        *waited += crnn_ticks() - from;
    }
}

/*
 * A thread's verdict after its steps (begun at crnn_ticks() = began): a
 * thread that spent more than half of that time waiting at step barriers
 * could have done the whole work alone in it, so the split did not pay (a
 * processor slowed by other work on the machine, or steps too short for the
 * barrier). That marks the region starved, as a long wait does.
 */
static inline void crnn_steps_done(crnn_region_clock *c, double began, double waited)
{
    if (waited > 0.5 * (crnn_ticks() - began))
        atomic_store(&c->starved, 1);
}

#endif /* CRNN_INTERNAL_H */
