/*
 * The embedding's backward (crnn.h): the scatter-add of the output gradient
 * into the weight gradient, dweight[v] = sum of dout[i] over the positions i
 * with ids[i] == v, for either element type.
 *
 * Every row of dweight sums its ids' gradient rows in the order the ids
 * come, starting from zero, whatever the thread count: on one thread by a
 * direct pass over the ids; on several, each thread owns a contiguous range
 * of rows (ranges of equal work, from a count of each row's ids) and makes
 * the same pass, adding only the ids in its range. The two give the same
 * bits.
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
 * before[v] = the number of ids (the padding row's left out) of the rows
 * before v, for v in [0, rows]: rows + 1 entries.
 */
static void count_before(const scatter *s, int64_t *before)
{
    memset(before, 0, sizeof(int64_t) * (size_t)(s->rows + 1));
    for (int64_t i = 0; i < s->n_ids; i++)
        if (s->ids[i] != s->padding)
            before[s->ids[i] + 1]++;
    for (int64_t v = 1; v <= s->rows; v++)
        before[v] += before[v - 1];
}

/*
 * The first row of slice k of nt: the rows split so that each slice has
 * about the same work, a row costing one (zeroing it) plus one per id it
 * sums. The cost of the rows before v, v + before[v], grows with v, so the
 * first row whose cost reaches k / nt of the total is found by bisection.
 */
static int64_t slice_start(const int64_t *before, int64_t rows, int k, int nt)
{
    if (k >= nt)
        return rows;
    const double target = ((double)rows + (double)before[rows]) * k / nt;
    int64_t lo = 0, hi = rows;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if ((double)mid + (double)before[mid] < target)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * nt slices of rows, each summed by one thread: it zeroes its rows, then
 * runs through all the ids in order and adds the gradient rows of those in
 * its range (so it reads dout front to back, as one thread alone does).
 * Returns CRNN_ERR_NOMEM, with nothing written, when there is no room for
 * the counts.
 */
static int scatter_parallel(const scatter *s, int nt)
{
    int64_t *before = crnn_alloc(sizeof(int64_t) * (size_t)(s->rows + 1));
    if (!before)
        return CRNN_ERR_NOMEM;
    count_before(s, before);
    crnn_region_clock clock; /* a starved team makes the next calls back off */
    crnn_region_begin(&clock);
#pragma omp parallel num_threads(crnn_team_for(nt))
    {
        crnn_region_enter(&clock);
        for (int k = crnn_thread_num(); k < nt; k += crnn_team_size()) {
            const int64_t first = slice_start(before, s->rows, k, nt);
            const int64_t last = slice_start(before, s->rows, k + 1, nt);
            if (first == last)
                continue;
            crnn_zero(s->dweight + (size_t)first * s->row_bytes,
                      (size_t)(last - first) * s->row_bytes);
            for (int64_t i = 0; i < s->n_ids; i++) {
                const int64_t v = s->ids[i];
                if (v >= first && v < last && v != s->padding)
                    s->type.add(s->dweight + (size_t)v * s->row_bytes,
                                s->dout + (size_t)i * s->row_bytes, s->dim);
            }
        }
        crnn_region_share_done(&clock);
    }
    crnn_region_end(&clock, nt);
    crnn_free(before);
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
    scatter_serial(&s); /* one thread, or no room for the counts: the same sums */
    return CRNN_OK;
}
