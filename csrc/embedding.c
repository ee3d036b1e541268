/*
 * The embedding's backward (crnn.h): the scatter-add of the output gradient
 * into the weight gradient, dweight[v] = sum of dout[i] over the positions i
 * with ids[i] == v, for either element type.
 *
 * Every row of dweight sums its ids' gradient rows in the order the ids
 * come, starting from zero, whatever the thread count: on one thread by a
 * direct pass over the ids; on several, after a stable counting sort of the
 * positions by id, each thread owns a contiguous range of rows and sums
 * each of them in that order. The two give the same bits.
 */
#include "internal.h"

/* dst[j] += src[j] for j < n, in the caller's element type. */
typedef void (*row_add_fn)(void *dst, const void *src, int64_t n);

static void add_row_f32(void *dst, const void *src, int64_t n)
{
    float *restrict d = dst;
    const float *restrict s = src;
    for (int64_t j = 0; j < n; j++)
        d[j] += s[j];
}

static void add_row_f64(void *dst, const void *src, int64_t n)
{
    double *restrict d = dst;
    const double *restrict s = src;
    for (int64_t j = 0; j < n; j++)
        d[j] += s[j];
}

/* The element type of a call. */
typedef struct {
    size_t bytes;   /* of one element */
    row_add_fn add; /* one row onto another */
} element_type;

/* One call's arguments, checked. */
typedef struct {
    element_type type;
    const int64_t *ids;
    int64_t n_ids;
    int64_t dim;
    const char *dout; /* (n_ids, dim) */
    int64_t rows;     /* num_embeddings */
    int64_t padding;  /* a row in [0, rows), or -1 */
    char *dweight;    /* (rows, dim) */
    size_t row_bytes; /* of one row of dout or dweight */
} scatter;

/* One thread: zero dweight, then add the rows of dout id by id. */
static void scatter_serial(const scatter *s)
{
    crnn_zero(s->dweight, (size_t)s->rows * s->row_bytes);
    for (int64_t i = 0; i < s->n_ids; i++) {
        const int64_t v = s->ids[i];
        if (v != s->padding)
            s->type.add(s->dweight + (size_t)v * s->row_bytes, s->dout + (size_t)i * s->row_bytes,
                        s->dim);
    }
}

/*
 * The positions of the ids grouped by row, each row's in id order (a
 * stable counting sort; the padding row's are left out): row v's positions
 * are order[end[v - 1] .. end[v]) (from 0 for v = 0). end has rows entries.
 */
static void group_by_row(const scatter *s, int64_t *end, int64_t *order)
{
    /* First the number of ids of each row, shifted one up: end[v] counts
     * row v - 1; then the running sums make end[v] the first slot of row v. */
    memset(end, 0, sizeof(int64_t) * (size_t)s->rows);
    for (int64_t i = 0; i < s->n_ids; i++) {
        const int64_t v = s->ids[i];
        if (v != s->padding && v + 1 < s->rows)
            end[v + 1]++;
    }
    for (int64_t v = 1; v < s->rows; v++)
        end[v] += end[v - 1];
    /* Placing each position at its row's next slot moves end[v] from the
     * row's first slot to one past its last. */
    for (int64_t i = 0; i < s->n_ids; i++) {
        const int64_t v = s->ids[i];
        if (v != s->padding)
            order[end[v]++] = i;
    }
}

/* The ids placed before row v (the sorted positions of rows < v). */
static inline int64_t placed_before(const int64_t *end, int64_t v) { return v ? end[v - 1] : 0; }

/*
 * The first row of slice k of nt: the rows split so that each slice has
 * about the same work, a row costing one (zeroing it) plus one per id it
 * sums. The cost of the rows before v, v + placed_before(v), grows with v,
 * so the first row whose cost reaches k / nt of the total is found by
 * bisection.
 */
static int64_t slice_start(const int64_t *end, int64_t rows, int k, int nt)
{
    if (k >= nt)
        return rows;
    const double total = (double)rows + (double)placed_before(end, rows);
    const double target = total * k / nt;
    int64_t lo = 0, hi = rows;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if ((double)mid + (double)placed_before(end, mid) < target)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* nt threads, each owning a contiguous range of rows. Returns
 * CRNN_ERR_NOMEM when there is no room for the sort (nothing written). */
static int scatter_parallel(const scatter *s, int nt)
{
    int64_t *end = crnn_alloc(sizeof(int64_t) * (size_t)s->rows);
    int64_t *order = crnn_alloc(sizeof(int64_t) * (size_t)s->n_ids);
    if (!end || !order) {
        crnn_free(end);
        crnn_free(order);
        return CRNN_ERR_NOMEM;
    }
    group_by_row(s, end, order);
    crnn_region_clock clock; /* a starved team makes the next calls back off */
    crnn_region_begin(&clock);
#pragma omp parallel num_threads(crnn_team_for(nt))
    {
        crnn_region_enter(&clock);
        for (int k = crnn_thread_num(); k < nt; k += crnn_team_size()) {
            const int64_t first = slice_start(end, s->rows, k, nt);
            const int64_t last = slice_start(end, s->rows, k + 1, nt);
            for (int64_t v = first; v < last; v++) {
                char *row = s->dweight + (size_t)v * s->row_bytes;
                crnn_zero(row, s->row_bytes);
                for (int64_t p = placed_before(end, v); p < end[v]; p++)
                    s->type.add(row, s->dout + (size_t)order[p] * s->row_bytes, s->dim);
            }
        }
        crnn_region_share_done(&clock);
    }
    crnn_region_end(&clock, nt);
    crnn_free(end);
    crnn_free(order);
    return CRNN_OK;
}

/* a * b fits in int64_t (and in size_t bytes of `bytes`-sized elements). */
static int product_fits(int64_t a, int64_t b, size_t bytes)
{
    const int64_t limit =
        (int64_t)(SIZE_MAX / bytes < (size_t)INT64_MAX ? SIZE_MAX / bytes : (size_t)INT64_MAX);
    return b == 0 || a <= limit / b;
}

int crnn_embedding_backward(int dtype, const int64_t *ids, int64_t n_ids, int64_t dim,
                            const void *dout, int64_t num_embeddings, int64_t padding_idx,
                            void *dweight)
{
    scatter s;
    switch (dtype) {
    case CRNN_F32: s.type = (element_type){sizeof(float), add_row_f32}; break;
    case CRNN_F64: s.type = (element_type){sizeof(double), add_row_f64}; break;
    default: return CRNN_ERR_INVALID;
    }
    if (n_ids < 0 || dim < 0 || num_embeddings < 0 || padding_idx < -1 ||
        padding_idx >= num_embeddings)
        return CRNN_ERR_INVALID;
    if (!product_fits(n_ids, dim, s.type.bytes) || !product_fits(num_embeddings, dim, s.type.bytes))
        return CRNN_ERR_INVALID;
    if ((n_ids > 0 && !ids) || (n_ids * dim > 0 && !dout) || (num_embeddings * dim > 0 && !dweight))
        return CRNN_ERR_INVALID;
    /* Every id in range before anything is written. */
    for (int64_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= num_embeddings)
            return CRNN_ERR_INVALID;
    if (dim == 0 || num_embeddings == 0)
        return CRNN_OK;

    s.ids = ids;
    s.n_ids = n_ids;
    s.dim = dim;
    s.dout = dout;
    s.rows = num_embeddings;
    s.padding = padding_idx;
    s.dweight = dweight;
    s.row_bytes = (size_t)dim * s.type.bytes;

    /* Work: zeroing every row, then one addition per id and feature. */
    const double work = ((double)num_embeddings + (double)n_ids) * (double)dim;
    int nt = crnn_threads_for_work(work, crnn_threads_for_call());
    if ((int64_t)nt > num_embeddings)
        nt = (int)num_embeddings;
    if (nt > 1 && scatter_parallel(&s, nt) == CRNN_OK)
        return CRNN_OK;
    scatter_serial(&s); /* one thread, or no room for the sort: the same sums */
    return CRNN_OK;
}
