/*
 * One optimizer step over every parameter (crnn.h: crnn_optimizer_step):
 * the gradients clamped and their norm taken (clip.c), then one pass that
 * scales each gradient by the clipping coefficient and updates its
 * parameter and buffers (optim.inc, once per element type).
 *
 * Bitwise crnn.optim's NumPy updates: no fused multiply-adds here (NumPy
 * rounds every product), and each operation as that code orders it.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "internal.h"

enum { CHUNK = 16384 }; /* elements per unit of parallel work */

#if CRNN_HAVE_X86_BUILDS && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define CRNN_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CRNN_VECTOR_CLONES
#endif

#define REAL    float
#define NAME(x) x##_f32
#define SQRT    sqrtf
#include "optim.inc"
#undef REAL
#undef NAME
#undef SQRT

#define REAL    double
#define NAME(x) x##_f64
#define SQRT    sqrt
#include "optim.inc"
#undef REAL
#undef NAME
#undef SQRT

/* The buffers each optimizer reads, as bits of k. */
static unsigned buffers_used(const crnn_optimizer *o)
{
    switch (o->kind) {
    case CRNN_OPT_SGD: return o->momentum != 0.0 ? 1u : 0u;
    case CRNN_OPT_ADAGRAD: return 1u;
    case CRNN_OPT_RMSPROP: return 1u | (o->centered ? 2u : 0u) | (o->momentum > 0.0 ? 4u : 0u);
    case CRNN_OPT_ADAM: return 3u | (o->amsgrad ? 4u : 0u);
    default: return 0u;
    }
}

static int step_ok(const crnn_optimizer *o, const crnn_parameters *ps)
{
    if (!o || !ps || o->kind < CRNN_OPT_SGD || o->kind > CRNN_OPT_ADAM ||
        (o->dtype != CRNN_F32 && o->dtype != CRNN_F64) || o->step < 1 || ps->n < 0 ||
        (ps->n > 0 && (!ps->sizes || !ps->params || !ps->grads)))
        return 0;
    const unsigned used = buffers_used(o);
    for (int j = 0; j < CRNN_MAX_BUFFERS; j++)
        if ((used >> j & 1u) && ps->n > 0 && !ps->buffers[j])
            return 0;
    for (int64_t a = 0; a < ps->n; a++) {
        if (ps->sizes[a] < 0)
            return 0;
        if (ps->sizes[a] == 0)
            continue;
        if (!ps->params[a] || !ps->grads[a])
            return 0;
        for (int j = 0; j < CRNN_MAX_BUFFERS; j++)
            if ((used >> j & 1u) && !ps->buffers[j][a])
                return 0;
    }
    return 1;
}

int crnn_optimizer_step(const crnn_optimizer *opt, const crnn_parameters *params,
                        double *total_norm)
{
    if (total_norm)
        *total_norm = NAN;
    if (!step_ok(opt, params))
        return CRNN_ERR_INVALID;
    const crnn_parameters *ps = params;
    int status = CRNN_OK;
    if (opt->clip_value >= 0.0)
        status = crnn_clip_value(opt->dtype, ps->n, ps->grads, ps->sizes, opt->clip_value);
    int scale = 0;
    double coef = 1.0;
    if (status == CRNN_OK && opt->max_norm >= 0.0) {
        const double norm = crnn_total_norm(opt->dtype, ps->n, (const void *const *)ps->grads,
                                            ps->sizes, opt->norm_type);
        if (total_norm)
            *total_norm = norm;
        coef = opt->max_norm / (norm + 1e-6);
        scale = !(coef >= 1.0); /* also for a NaN coefficient, as PyTorch does */
    }
    if (status != CRNN_OK)
        return status;
    if (opt->dtype == CRNN_F32)
        update_all_f32(opt, ps, scale, coef);
    else
        update_all_f64(opt, ps, scale, coef);
    return CRNN_OK;
}
