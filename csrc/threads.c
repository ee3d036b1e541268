/*
 * Threads: the count for each call (crnn_set_num_threads, OpenMP's
 * default), what a fork does to it, the busy-machine back-off that the
 * region clocks feed, and the private test knobs of crnn_testing.h that
 * steer them.
 */
#define _POSIX_C_SOURCE 200809L
#ifdef _WIN32
#include <windows.h>
#else
#include <pthread.h>
#include <time.h>
#endif

#include "crnn_testing.h"
#include "internal.h"

/* > 0: a count fixed by crnn_set_num_threads; otherwise OpenMP's default. */
static atomic_int g_num_threads = 0;

/* 1 in a process forked from one whose OpenMP threads could not be let go
 * before the fork (see "fork" below): every call runs on one thread. */
static atomic_int g_serial_after_fork = 0;

void crnn_set_num_threads(int n) { atomic_store(&g_num_threads, n > 0 ? n : 0); }

int crnn_threads_pinned(void) { return atomic_load(&g_num_threads) > 0; }

int crnn_get_num_threads(void)
{
#ifdef _OPENMP
    if (atomic_load_explicit(&g_serial_after_fork, memory_order_relaxed))
        return 1;
    int n = atomic_load(&g_num_threads);
    return n > 0 ? n : omp_get_max_threads();
#else
    return 1;
#endif
}

/* --------------------------------------------------------------- fork */

/*
 * GNU OpenMP (libgomp) keeps a pool of threads for each thread that has
 * started a parallel region, and fork() copies only the forking thread: a
 * child whose thread had a pool waits forever for the pool's threads at its
 * first region. So before a fork, crnn's handler lets the forking thread's
 * pool go (omp_pause_resource_all, OpenMP 5.0: its threads exit; the parent
 * starts a new pool at its next region, once per fork), and the child starts
 * a fresh team at its first region, with every thread. Should that fail (a
 * fork from inside a parallel region; a libgomp older than GCC 9), the child
 * and its own children run every call on one thread instead: slower, never
 * stuck, and bitwise the same results. Between forks a call pays one relaxed
 * load (crnn_get_num_threads). Other OpenMP runtimes (LLVM's, Intel's) renew
 * themselves in a forked child; crnn leaves them alone.
 */
#if defined(_OPENMP) && defined(__GNUC__) && !defined(__clang__) && !defined(_WIN32)
#define CRNN_GNU_OPENMP 1
#else
#define CRNN_GNU_OPENMP 0
#endif

#if CRNN_GNU_OPENMP
/* Test knob (e): 0 makes the handler skip the release, as if it failed. */
static atomic_int g_fork_release = 1;

/* Whether the forking thread's pool was let go; read in the child. */
static _Thread_local int t_pool_released = 0;

static void before_fork(void)
{
    t_pool_released = 0;
    /* A serial process never started a team, but its thread may still hold
     * a pool copied from the parent: releasing that would wait forever. */
    if (atomic_load(&g_serial_after_fork) || !atomic_load(&g_fork_release))
        return;
#if __GNUC__ >= 9
    t_pool_released = omp_pause_resource_all(omp_pause_soft) == 0;
#endif
}

static void in_child_after_fork(void)
{
    if (!t_pool_released)
        atomic_store(&g_serial_after_fork, 1);
}

__attribute__((constructor)) static void register_fork_handlers(void)
{
    pthread_atfork(before_fork, NULL, in_child_after_fork);
}

int crnn_testing_set_fork_release(int release)
{
    return atomic_exchange(&g_fork_release, release != 0);
}
#else
int crnn_testing_set_fork_release(int release)
{
    (void)release;
    return 1;
}
#endif

int crnn_have_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/*
 * The busy-machine back-off. With OpenMP's default thread count, a parallel
 * region whose team was starved (crnn_region_end: a thread started late, the
 * caller waited long at the join, or a thread waited long at a step barrier)
 * starts a spell: the next calls run on one thread. A spell lasts
 * BACKOFF_MIN calls the first time, doubles (up to BACKOFF_MAX) while regions
 * keep starving, and halves after each region that ran well; regions on one
 * thread count neither way. A count fixed by crnn_set_num_threads is used as
 * given, though its regions still feed the detection. crnn_testing.h (d)
 * reads, clears and provokes it (tests/test_threads_backoff.py).
 *
 * g_backoff: calls left in the spell; g_backoff_len: the next spell's length.
 */
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

/* The largest value *max has held (for the test counters). */
static void store_max(atomic_int *max, int v)
{
    int seen = atomic_load_explicit(max, memory_order_relaxed);
    while (v > seen && !atomic_compare_exchange_weak(max, &seen, v))
        ;
}

static atomic_int g_max_team = 0;

void crnn_region_end(crnn_region_clock *c, int nt)
{
    if (atomic_load_explicit(&crnn_counting, memory_order_relaxed))
        store_max(&g_max_team, c->team);
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

/* ------------------------------------------------- test knobs (a), (b) */

enum { MIN_WORK_DEFAULT = 1048576 };
atomic_llong crnn_min_work_per_thread = MIN_WORK_DEFAULT;
atomic_int crnn_oversubscribe = 0;

long long crnn_testing_set_min_work(long long n)
{
    return atomic_exchange(&crnn_min_work_per_thread, n > 0 ? n : MIN_WORK_DEFAULT);
}

int crnn_testing_set_oversubscribe(int allow)
{
    return atomic_exchange(&crnn_oversubscribe, allow != 0);
}

/* ------------------------------------------------------ counters (c) */

atomic_int crnn_counting = 0;
static atomic_int g_max_slices = 0;
static atomic_llong g_recurrences = 0, g_column_splits = 0, g_shared_slices = 0;
static atomic_llong g_bptt_chunks = 0;

void crnn_count_recurrence(int nt, int team, int column_split)
{
    store_max(&g_max_slices, nt);
    atomic_fetch_add(&g_recurrences, 1);
    if (column_split)
        atomic_fetch_add(&g_column_splits, 1);
    else if (team < nt)
        atomic_fetch_add(&g_shared_slices, 1);
}

void crnn_count_bptt_chunk(void) { atomic_fetch_add(&g_bptt_chunks, 1); }

void crnn_testing_counts_reset(void)
{
    atomic_store(&g_max_team, 0);
    atomic_store(&g_max_slices, 0);
    atomic_store(&g_recurrences, 0);
    atomic_store(&g_column_splits, 0);
    atomic_store(&g_shared_slices, 0);
    atomic_store(&g_bptt_chunks, 0);
    atomic_store(&crnn_counting, 1);
}

void crnn_testing_counts_get(crnn_testing_counts *counts)
{
    counts->max_team = atomic_load(&g_max_team);
    counts->max_slices = atomic_load(&g_max_slices);
    counts->recurrences = atomic_load(&g_recurrences);
    counts->column_splits = atomic_load(&g_column_splits);
    counts->shared_slices = atomic_load(&g_shared_slices);
    counts->bptt_chunks = atomic_load(&g_bptt_chunks);
}

/* ------------------------------------------------------- back-off (d) */

void crnn_testing_backoff_reset(void)
{
    atomic_store(&g_backoff, 0);
    atomic_store(&g_backoff_len, 0);
}

void crnn_testing_backoff_get(int *calls_left, int *spell_length)
{
    if (calls_left)
        *calls_left = atomic_load(&g_backoff);
    if (spell_length)
        *spell_length = atomic_load(&g_backoff_len);
}

atomic_int crnn_stall_ms = 0;

void crnn_testing_stall_next_region(int ms) { atomic_store(&crnn_stall_ms, ms > 0 ? ms : 0); }

/* Thread 1 of a region, when a stall is armed: take it (once) and sleep. */
void crnn_stall_now(void)
{
    const int ms = atomic_exchange(&crnn_stall_ms, 0);
    if (ms <= 0)
        return;
#ifdef _WIN32
    Sleep((DWORD)ms);
#else
    struct timespec left = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0) /* interrupted: sleep the rest */
        ;
#endif
}
