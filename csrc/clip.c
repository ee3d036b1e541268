/* Gradient clipping (crnn.h): total norm, scaling and value clamping over
 * several arrays, for either element type (clip.inc, once per type). */
#include "internal.h"

enum { CHUNK = 16384 }; /* elements per unit of parallel work */

/* Several arrays cut into chunks of at most CHUNK elements, in order. */
typedef struct {
    int64_t count;        /* number of chunks */
    int64_t total;        /* number of elements */
    int64_t n;            /* number of arrays */
    const int64_t *sizes; /* sizes[a]: elements of array a */
    int64_t *first;       /* first[a]: index of array a's first chunk */
} crnn_chunks;

static int crnn_chunks_make(crnn_chunks *c, int64_t n, const int64_t *sizes)
{
    c->n = n;
    c->sizes = sizes;
    c->count = 0;
    c->total = 0;
    c->first = crnn_alloc(sizeof(int64_t) * (size_t)(n + 1));
    if (!c->first)
        return CRNN_ERR_NOMEM;
    for (int64_t a = 0; a < n; a++) {
        c->first[a] = c->count;
        c->count += crnn_ceil_div(sizes[a], CHUNK);
        c->total += sizes[a];
    }
    c->first[n] = c->count;
    return CRNN_OK;
}

static void crnn_chunks_free(crnn_chunks *c) { crnn_free(c->first); }

/* Chunk k (< count) as (array, start, length): the last array whose first
 * chunk is <= k (empty arrays own no chunk, so they are stepped over). */
static void crnn_chunk_at(const crnn_chunks *c, int64_t k, int64_t *array, int64_t *start,
                          int64_t *len)
{
    int64_t lo = 0, hi = c->n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (c->first[mid] <= k)
            lo = mid;
        else
            hi = mid - 1;
    }
    *array = lo;
    *start = (k - c->first[lo]) * CHUNK;
    *len = c->sizes[lo] - *start < CHUNK ? c->sizes[lo] - *start : CHUNK;
}

#define REAL    float
#define NAME(x) x##_f32
#include "clip.inc"
#undef REAL
#undef NAME

#define REAL    double
#define NAME(x) x##_f64
#include "clip.inc"
#undef REAL
#undef NAME

/* n arrays with their sizes, each present unless empty. */
static int arrays_ok(int64_t n, const void *const *arrays, const int64_t *sizes)
{
    if (n < 0 || (n > 0 && (!arrays || !sizes)))
        return 0;
    for (int64_t a = 0; a < n; a++)
        if (sizes[a] < 0 || (sizes[a] > 0 && !arrays[a]))
            return 0;
    return 1;
}

double crnn_total_norm(int dtype, int64_t n, const void *const *arrays, const int64_t *sizes,
                       double p)
{
    if (!arrays_ok(n, arrays, sizes))
        return NAN;
    switch (dtype) {
    case CRNN_F32: return total_norm_f32(n, (const float *const *)arrays, sizes, p);
    case CRNN_F64: return total_norm_f64(n, (const double *const *)arrays, sizes, p);
    default: return NAN;
    }
}

int crnn_scale(int dtype, int64_t n, void *const *arrays, const int64_t *sizes, double factor)
{
    if (!arrays_ok(n, (const void *const *)arrays, sizes))
        return CRNN_ERR_INVALID;
    switch (dtype) {
    case CRNN_F32: scale_f32(n, (float *const *)arrays, sizes, (float)factor); return CRNN_OK;
    case CRNN_F64: scale_f64(n, (double *const *)arrays, sizes, factor); return CRNN_OK;
    default: return CRNN_ERR_INVALID;
    }
}

int crnn_clip_value(int dtype, int64_t n, void *const *arrays, const int64_t *sizes, double clip)
{
    if (!arrays_ok(n, (const void *const *)arrays, sizes))
        return CRNN_ERR_INVALID;
    switch (dtype) {
    case CRNN_F32: clip_value_f32(n, (float *const *)arrays, sizes, (float)clip); return CRNN_OK;
    case CRNN_F64: clip_value_f64(n, (double *const *)arrays, sizes, clip); return CRNN_OK;
    default: return CRNN_ERR_INVALID;
    }
}
