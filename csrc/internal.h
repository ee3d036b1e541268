/*
 * Shared by the C files of crnn (not part of the public interface):
 * allocation, size arithmetic, the OpenMP shim, thread sizing, the region
 * clock and step barrier, what a cell is (crnn_cell_desc) and the arrays of
 * a call (crnn_layout), and the kernel table each instruction-set build
 * fills in.
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

#define CRNN_CAT_(a, b) a##b
#define CRNN_CAT(a, b)  CRNN_CAT_(a, b)

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

/* memset / memcpy of `bytes` that accept NULL pointers when bytes is 0 (a C
 * caller may pass NULL for an empty array). */
static inline void crnn_zero(void *p, size_t bytes)
{
    if (bytes)
        memset(p, 0, bytes);
}

static inline void crnn_copy(void *dst, const void *src, size_t bytes)
{
    if (bytes)
        memcpy(dst, src, bytes);
}

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

/* ------------------------------------------------------ thread sizing */

/* Test knobs (crnn_testing.h; threads.c holds them): the work a thread must
 * get, and whether a team may outnumber the processors. */
extern atomic_llong crnn_min_work_per_thread;
extern atomic_int crnn_oversubscribe;

/* Threads worth using for `work` multiply-adds (or element operations): a
 * thread should get at least ~1M of them (tens of microseconds), or starting
 * and joining it costs more than it saves, and far more on a busy machine. */
static inline int crnn_threads_for_work(double work, int nthreads)
{
    const double per_thread =
        (double)atomic_load_explicit(&crnn_min_work_per_thread, memory_order_relaxed);
    double useful = work / per_thread;
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
    if (atomic_load_explicit(&crnn_oversubscribe, memory_order_relaxed))
        return nt;
    return procs > 0 && procs < nt ? procs : nt;
#else
    (void)nt;
    return 1;
#endif
}

/* The thread count for a call made now (1 without OpenMP). */
int crnn_threads_for_call(void);

/* Whether crnn_set_num_threads fixed the count (no back-off then). */
int crnn_threads_pinned(void);

/* The end of the steps of [t0, t1) that a single row (B = 1) really has:
 * its length lengths[0] clamped to [t0, t1], or t1 without lengths. The
 * steps from there to t1 are padding. */
static inline int64_t crnn_one_row_end(int64_t t0, int64_t t1, const int64_t *lengths)
{
    const int64_t len = lengths ? lengths[0] : t1;
    return len < t0 ? t0 : len < t1 ? len : t1;
}

/* What a register tile does with its result (gemm.inc). */
enum { EPI_STORE = 0, EPI_ACCUMULATE = 1 };
/* Which depth block of a product a row tile runs (gemm.inc: tile_product_rows). */
enum { PART_FIRST = 1, PART_LAST = 2, PART_WHOLE = PART_FIRST | PART_LAST };

/* ------------------------------------------------------------- cells */

/*
 * What the recurrent driver (driver.inc) does differently for a cell; the
 * cell's description (cell_<name>.inc) sets them.
 */
enum crnn_cell_flags {
    /* gates == 1 and the pre-activations are h_t's own row: the input
     * projection and the recurrent product go straight into it and the step
     * activates it in place, so no (T, B, G) buffer exists (Elman). Otherwise
     * saved[0] holds the gates: pre-activations, then what the step leaves. */
    CRNN_GATES_ARE_HIDDEN = 1u << 0,
    /* h_{t-1} W_hh^T goes to a scratch row of its own, which the step reads
     * (adding b_hh itself: b_hh stays out of the input projection), instead
     * of accumulating onto the gate row (GRU: r scales its n part). */
    CRNN_RECURRENT_APART = 1u << 1,
    /* The delta leaves a direct term of dL/dh_{t-1} in dh, onto which the
     * backward accumulates dg W_hh (GRU: dh_t z); otherwise it stores. */
    CRNN_DIRECT_DH = 1u << 2,
    /* The delta writes input-side gate gradients dgx (to dW_ih, dx, db_ih)
     * apart from the recurrent-side dg (to dW_hh, dh, db_hh) (GRU). */
    CRNN_SPLIT_INPUT_GRADS = 1u << 3,
    /* The step applies layer.activation (validated only then). */
    CRNN_USES_ACTIVATION = 1u << 4,
    /* An output layer after the step: y_t = g(h_t W_ho^T + b_ho), with
     * g = layer.output_activation, is out (O wide); h_t goes to one more
     * saved array, after the cell's own. */
    CRNN_OUTPUT_LAYER = 1u << 5,
    /* With an output layer: the recurrent input is y_{t-1} (O wide, the
     * state) instead of h_{t-1} (Jordan). Only for cells whose step does not
     * read h_{t-1} element-wise. */
    CRNN_FEEDBACK_OUTPUT = 1u << 6,
    /* With RECURRENT_APART: the last gate's recurrent product is of a row u
     * that the step computes (the cell's last saved array, H wide), not of
     * h_{t-1}. The step runs in two phases around that product (phase 0
     * writes u; phase 1 finds u W^T in rec's last gate), and so does the
     * delta (phase 1 reads dsecond = dg_last W_last, dL/du); dh_{t-1} takes
     * dg W_hh over the other gates only, and the last gate's block of dW_hh
     * accumulates dg_last^T u (GRU with the reset gate before the product). */
    CRNN_SECOND_PRODUCT = 1u << 7,
};

/* A cell as the driver and the entry points see it, whatever the element
 * type and instruction set (cell_<name>.inc: NAME(cell_<name>).desc). */
typedef struct crnn_cell_desc {
    int gates;                        /* G = gates * H */
    int states;                       /* 1 (h) or 2 (h and a second state) */
    int saved;                        /* arrays the cell itself saves */
    int saved_gates[CRNN_MAX_SAVED];  /* saved[k] holds saved_gates[k] * H per row */
    int state_saved[CRNN_MAX_STATES]; /* state k >= 1: the saved array of its sequence */
    unsigned flags;                   /* enum crnn_cell_flags */
} crnn_cell_desc;

/* The widths (values per (t, b) row) of a call's arrays, from the cell and
 * the layer's sizes: the one place that knows where each array lives. */
typedef struct crnn_layout {
    int64_t G;                        /* gates * H */
    int64_t R;                        /* the recurrent input: H, or O fed back */
    int64_t out_w;                    /* out: H, or O with an output layer */
    int64_t state_w[CRNN_MAX_STATES]; /* state k (state 0 is R wide) */
    int saved;                        /* saved arrays of the call */
    int64_t saved_w[CRNN_MAX_SAVED];
    int hidden_saved; /* the saved array holding h_t, or -1 (out) */
} crnn_layout;

/* Fills *l; 0 when the cell needs more saved arrays than crnn.h allows. */
static inline int crnn_layout_of(const crnn_cell_desc *d, int64_t H, int64_t O, crnn_layout *l)
{
    const int output = (d->flags & CRNN_OUTPUT_LAYER) != 0;
    l->G = d->gates * H;
    l->R = output && (d->flags & CRNN_FEEDBACK_OUTPUT) ? O : H;
    l->out_w = output ? O : H;
    l->saved = d->saved + output;
    l->hidden_saved = output ? d->saved : -1;
    if (l->saved > CRNN_MAX_SAVED || d->states > CRNN_MAX_STATES)
        return 0;
    for (int k = 0; k < CRNN_MAX_STATES; k++)
        l->state_w[k] = k == 0 ? l->R : k < d->states ? H : 0;
    for (int k = 0; k < CRNN_MAX_SAVED; k++)
        l->saved_w[k] = k < d->saved ? d->saved_gates[k] * H : k == l->hidden_saved ? H : 0;
    return 1;
}

/* ------------------------------------------------------ kernel table */

/* One call, as the entry points checked it (dispatch.c), for the kernels. */
typedef struct crnn_call {
    const crnn_layer *layer;
    const crnn_weights *weights;
    const crnn_sequence *seq;
    const crnn_gradients *grads; /* the backward's; NULL for a forward */
    int nthreads;                /* the thread count for the call */
} crnn_call;

typedef int (*crnn_kernel)(const crnn_call *call);

/* A layer's prepared weights (crnn.h; step.inc packs and runs them): the
 * layer, and copies of its weights packed for one instruction-set build. */
struct crnn_prepared {
    crnn_layer layer;
    const crnn_cell_desc *desc;
    crnn_layout lay;
    unsigned present; /* the optional weights given: 1 << role (b_ih 2, b_hh 3, b_ho 5) */
    int isa;          /* the build the weights are packed for */
    void *memory;     /* every array below, in one block of `capacity` bytes */
    size_t capacity;
    void *w_ih, *w_hh, *w_ho; /* transposed and packed in the build's panels */
    void *bias;               /* the input projection's: b_ih + b_hh (b_ih alone when
                                 the recurrent product is apart), or NULL */
    void *b_hh, *b_ho;        /* copies (b_hh: only when apart), or NULL */
};

/* Packs the weights into p->memory, reallocating it as the build needs. */
typedef int (*crnn_pack_kernel)(crnn_prepared *p, const crnn_weights *w);
typedef int (*crnn_prepared_kernel)(const crnn_prepared *p, const crnn_sequence *seq);

/* One instruction-set build (kernels_instantiate.h): the driver per element
 * type, and the cells' descriptions (the same in every build). */
typedef struct crnn_kernel_table {
    crnn_kernel forward[2];             /* by enum crnn_dtype */
    crnn_kernel backward[2];            /* by enum crnn_dtype */
    const crnn_cell_desc *const *cells; /* by enum crnn_cell */
    crnn_pack_kernel pack[2];           /* prepared weights, by enum crnn_dtype */
    crnn_prepared_kernel forward_prepared[2];
    int (*head_loss[2])(const crnn_head *head, int nthreads, double *loss); /* head.inc */
    /* The build whose kernels run this one's native (float32, float64) calls,
     * NULL for its own: avx512_bf16 hands them to avx512, whose float kernels
     * it would only repeat (a second copy, at other addresses, measured up
     * to 5% slower at some shapes), keeping its own for bfloat16 products. */
    const struct crnn_kernel_table *native;
} crnn_kernel_table;

/* prepared.c: the back-off of steps split across threads (step.inc). A
 * step takes microseconds, so a team that was not running (a busy machine)
 * costs far more than the split saves: after such a step the next ones run
 * on one thread, for a spell that doubles (up to about a million steps)
 * while it keeps happening -- unless crnn_set_num_threads fixed the count.
 * crnn_split_step_allowed says whether this step may split;
 * crnn_split_step_done reports how a split one went. */
int crnn_split_step_allowed(void);
void crnn_split_step_done(int starved);

/* dispatch.c: the build that runs an instruction set's native calls (a valid,
 * supported code; see crnn_kernel_table.native), and
 * the checks of a layer run over T steps of B rows (fills *d and *lay). */
const crnn_kernel_table *crnn_kernel_table_of(int isa);
int crnn_layer_ok(const crnn_layer *layer, int64_t T, int64_t B, const crnn_cell_desc **d,
                  crnn_layout *lay);

/* The builds of crnn_isas.def: kernels_<name>.c defines both (a build the
 * compiler cannot target says it is unsupported and leaves its table empty). */
#define CRNN_ISA(ID, name)                                                                         \
    extern const crnn_kernel_table crnn_kernels_##name;                                            \
    int crnn_isa_##name##_supported(void);
#include "crnn_isas.def"
#undef CRNN_ISA

/* For a kernels_<name>.c whose instruction set this compiler cannot target. */
#define CRNN_ISA_UNAVAILABLE(name)                                                                 \
    int crnn_isa_##name##_supported(void) { return 0; }                                            \
    const crnn_kernel_table crnn_kernels_##name = {{NULL, NULL}, {NULL, NULL}, NULL};

/* ------------------------------------------ region clock and back-off */

/*
 * Contention watch for one parallel region. A region one of whose threads
 * started milliseconds late, or whose calling thread, having done its own
 * share, then waited milliseconds more at the join, had a starved team (its
 * other threads were queued behind other processes). crnn_region_end then
 * makes the next calls run on one thread for a while (unless the thread
 * count was fixed by crnn_set_num_threads); results do not depend on the
 * thread count, only the time does.
 */
enum { CRNN_CLOCK_THREADS = 64 };
typedef struct {
    double start;                     /* before the region */
    double caller_done;               /* when thread 0 finished its share */
    double entry[CRNN_CLOCK_THREADS]; /* when each thread started */
    int team;                         /* the team's size */
    atomic_int starved;               /* a thread waited too long inside */
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

/* Test knob (crnn_testing.h): milliseconds the next region's thread 1
 * sleeps before it starts (0: none). */
extern atomic_int crnn_stall_ms;
void crnn_stall_now(void);

/* Inside the region, first thing on each thread. */
static inline void crnn_region_enter(crnn_region_clock *c)
{
    const int tid = crnn_thread_num();
    if (tid == 1 && atomic_load_explicit(&crnn_stall_ms, memory_order_relaxed) > 0)
        crnn_stall_now();
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

/* Test counters (crnn_testing.h), kept only once a test has reset them. */
extern atomic_int crnn_counting;
void crnn_count_recurrence(int nt, int team, int column_split);
void crnn_count_bptt_chunk(void);

/* After a recurrence's region: what ran, for the test counters. */
static inline void crnn_note_recurrence(const crnn_region_clock *c, int nt, int column_split)
{
    if (atomic_load_explicit(&crnn_counting, memory_order_relaxed))
        crnn_count_recurrence(nt, c->team, column_split);
}

static inline void crnn_note_bptt_chunk(void)
{
    if (atomic_load_explicit(&crnn_counting, memory_order_relaxed))
        crnn_count_bptt_chunk();
}

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

static inline void crnn_step_barrier(crnn_step_count *counts, int team, int tid, long long steps,
                                     crnn_region_clock *c, double *waited)
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
