/*
 * crnn's private test knobs (not part of the public interface, crnn.h).
 *
 * For tests that must make small problems split across threads whatever
 * the machine, check that a split really happened, and drive the
 * busy-machine back-off. Every knob is process-wide and atomic (settable
 * from any thread) and costs nothing measurable while left alone; tests
 * should put each back as they found it (the setters return the previous
 * value). Implemented in csrc/threads.c.
 */
#ifndef CRNN_TESTING_H
#define CRNN_TESTING_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * (a) The work a thread must be given before crnn starts it, in
 * multiply-adds (element operations for element-wise work): by default
 * 1048576 (1M). Setting 1 makes any problem with two or more units of work
 * (batch rows, hidden-unit panels, GEMM tiles) split across the thread
 * count; n <= 0 restores the default. Returns the previous value.
 */
long long crnn_testing_set_min_work(long long n);

/*
 * (b) Whether a team may outnumber the processors this process may run on
 * (by default it may not: the extra threads would only time-share a core).
 * With allow != 0 a run pinned to one CPU still starts 2-4 threads, so the
 * split code paths run (slowly) anywhere. Returns the previous setting.
 */
int crnn_testing_set_oversubscribe(int allow);

/*
 * (c) What ran since crnn_testing_counts_reset(). Counting starts with the
 * first reset (until then nothing is counted, at no cost).
 *   max_team       the largest OpenMP team any crnn region started
 *   max_slices     the largest slice count (nt) a recurrence was cut into:
 *                  batch-row slices, or threads of a batch-1 column split
 *   recurrences    recurrence regions run (one per forward, one per BPTT
 *                  chunk), on any number of threads
 *   column_splits  of those, the ones that split a single row's hidden
 *                  units across threads (batch 1, one barrier per step)
 *   shared_slices  of those, the batch-row ones in which a thread took
 *                  more than one slice (a team smaller than nt)
 *   bptt_chunks    chunks of steps the backward ran (T / chunk, rounded up,
 *                  per backward call)
 */
typedef struct crnn_testing_counts {
    int max_team;
    int max_slices;
    long long recurrences;
    long long column_splits;
    long long shared_slices;
    long long bptt_chunks;
} crnn_testing_counts;

void crnn_testing_counts_reset(void);
void crnn_testing_counts_get(crnn_testing_counts *counts);

/*
 * (d) The busy-machine back-off (threads.c). After a parallel region whose
 * team was starved (a thread started or waited milliseconds late), the next
 * calls_left calls run on one thread; the spell doubles while regions keep
 * starving (4 .. 256 calls) and halves after each region that ran well.
 * crnn_testing_backoff_reset() clears both (no spell, length 0);
 * crnn_testing_backoff_get() reads them. crnn_testing_stall_next_region(ms)
 * makes thread 1 of the next parallel region that has one sleep ms
 * milliseconds before it starts (once), which the region clock reads as a
 * starved team: a test can provoke the detection, then watch the recovery.
 * A thread count fixed by crnn_set_num_threads disables the back-off.
 */
void crnn_testing_backoff_reset(void);
void crnn_testing_backoff_get(int *calls_left, int *spell_length);
void crnn_testing_stall_next_region(int ms);

/*
 * (e) Whether the fork handler lets the forking thread's GNU OpenMP thread
 * pool go before a fork (release != 0, the default), so that the child
 * starts a fresh team. With 0 the handler skips it, as when the release
 * fails: every child forked from then on runs each call on one thread (and
 * crnn_get_num_threads() says 1 there). Returns the previous setting; with
 * another OpenMP runtime, or none, there is no handler and this returns 1.
 */
int crnn_testing_set_fork_release(int release);

#ifdef __cplusplus
}
#endif

#endif /* CRNN_TESTING_H */
