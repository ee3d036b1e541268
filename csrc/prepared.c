/*
 * Prepared weights (crnn.h: crnn_prepare, crnn_prepared_update,
 * crnn_prepared_free, crnn_forward_prepared): the checks of every argument
 * a C caller could get wrong, the object's life, and the instruction-set
 * build that packs and runs the weights (step.inc, through the kernel
 * table).
 */
#include "internal.h"

/* ------------------------------------------------ split steps' back-off */

static atomic_llong g_split_left = 0;  /* steps left to run on one thread */
static atomic_llong g_split_spell = 0; /* the next spell's length */
enum { SPELL_MIN = 1024, SPELL_MAX = 1 << 20 };

int crnn_split_step_allowed(void)
{
    if (crnn_threads_pinned() || atomic_load_explicit(&g_split_left, memory_order_relaxed) <= 0)
        return 1;
    atomic_fetch_sub_explicit(&g_split_left, 1, memory_order_relaxed);
    return 0;
}

void crnn_split_step_done(int starved)
{
    if (crnn_threads_pinned())
        return;
    long long spell = atomic_load(&g_split_spell);
    if (starved) {
        spell = spell < SPELL_MIN ? SPELL_MIN : spell >= SPELL_MAX / 2 ? SPELL_MAX : 2 * spell;
        atomic_store(&g_split_left, spell);
    } else {
        spell /= 2;
    }
    atomic_store(&g_split_spell, spell);
}

/* ------------------------------------------------------------- checks */

/* An array of `count` elements may be NULL only when empty. */
static int present(const void *p, int64_t count) { return p != NULL || count == 0; }

static int has_output_layer(const crnn_prepared *p)
{
    return (p->desc->flags & CRNN_OUTPUT_LAYER) != 0;
}

/* The optional weights of w the layer uses, as crnn_prepared.present's bits
 * (1 << role: b_ih 2, b_hh 3, b_ho 5). */
static unsigned optional_weights(const crnn_prepared *p, const crnn_weights *w)
{
    return (w->b_ih ? 1u << 2 : 0) | (w->b_hh ? 1u << 3 : 0) |
           (has_output_layer(p) && w->b_ho ? 1u << 5 : 0);
}

/* The weights the layer cannot do without are there. */
static int weights_ok(const crnn_prepared *p, const crnn_weights *w)
{
    const int64_t I = p->layer.input_size, H = p->layer.hidden_size;
    return w && present(w->w_ih, p->lay.G * I) && present(w->w_hh, p->lay.G * p->lay.R) &&
           (!has_output_layer(p) || present(w->w_ho, p->layer.output_size * H));
}

/* Packs w into p for the instruction set in use. */
static int pack(crnn_prepared *p, const crnn_weights *w)
{
    const int isa = crnn_get_isa();
    const int status = crnn_kernel_table_of(isa)->pack[p->layer.dtype](p, w);
    if (status == CRNN_OK)
        p->isa = isa;
    return status;
}

int crnn_prepare(const crnn_layer *layer, const crnn_weights *weights, crnn_prepared **prepared)
{
    const crnn_cell_desc *d;
    crnn_layout lay;
    if (!prepared)
        return CRNN_ERR_INVALID;
    *prepared = NULL;
    if (!weights || !crnn_layer_ok(layer, 0, 0, &d, &lay) || layer->dtype == CRNN_F32_BF16)
        return CRNN_ERR_INVALID;
    crnn_prepared *p = calloc(1, sizeof *p);
    if (!p)
        return CRNN_ERR_NOMEM;
    p->layer = *layer;
    p->desc = d;
    p->lay = lay;
    if (!weights_ok(p, weights)) {
        free(p);
        return CRNN_ERR_INVALID;
    }
    p->present = optional_weights(p, weights);
    const int status = pack(p, weights);
    if (status != CRNN_OK) {
        crnn_prepared_free(p);
        return status;
    }
    *prepared = p;
    return CRNN_OK;
}

int crnn_prepared_update(crnn_prepared *prepared, const crnn_weights *weights)
{
    if (!prepared || !weights_ok(prepared, weights) ||
        optional_weights(prepared, weights) != prepared->present)
        return CRNN_ERR_INVALID;
    return pack(prepared, weights);
}

void crnn_prepared_free(crnn_prepared *prepared)
{
    if (!prepared)
        return;
    crnn_free(prepared->memory);
    free(prepared);
}

int crnn_forward_prepared(const crnn_prepared *prepared, const crnn_sequence *seq)
{
    const crnn_cell_desc *d;
    crnn_layout lay;
    if (!prepared || !seq || !crnn_layer_ok(&prepared->layer, seq->steps, seq->batch, &d, &lay))
        return CRNN_ERR_INVALID;
    const int64_t B = seq->batch;
    if (!present(seq->x, seq->steps * B * prepared->layer.input_size))
        return CRNN_ERR_INVALID;
    for (int k = 0; k < d->states; k++)
        if (!present(seq->state_n[k], B * lay.state_w[k]))
            return CRNN_ERR_INVALID;
    if (prepared->isa != crnn_get_isa())
        return CRNN_ERR_STALE;
    return crnn_kernel_table_of(prepared->isa)
        ->forward_prepared[prepared->layer.dtype](prepared, seq);
}
