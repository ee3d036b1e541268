/*
 * Public entry points (crnn.h): every argument a C caller could get wrong
 * is checked here, once per call; then the instruction-set build (the
 * registry of crnn_isas.def) and the element type pick the kernel, which
 * runs with the thread count for the call. Also the cells' descriptions and
 * the names of cells, activations and instruction sets.
 */
#include <stdatomic.h>

#include "internal.h"

/* ------------------------------------------------------------- names */

static const char *const cell_names[CRNN_CELL_COUNT] = {
#define CRNN_CELL(ID, name) [CRNN_CELL_##ID] = #name,
#include "crnn_cells.def"
#undef CRNN_CELL
};

static const char *const activation_names[CRNN_ACTIVATION_COUNT] = {
#define CRNN_ACTIVATION(ID, name) [CRNN_##ID] = #name,
#include "crnn_activations.def"
#undef CRNN_ACTIVATION
};

const char *crnn_activation_name(int activation)
{
    return activation >= 0 && activation < CRNN_ACTIVATION_COUNT ? activation_names[activation]
                                                                 : NULL;
}

/* ------------------------------------------------- instruction sets */

/* The builds of crnn_isas.def, worst first. */
static const struct {
    const char *name;
    int (*supported)(void);
    const crnn_kernel_table *kernels;
} isas[CRNN_ISA_COUNT] = {
#define CRNN_ISA(ID, name)                                                                         \
    [CRNN_ISA_##ID] = {#name, crnn_isa_##name##_supported, &crnn_kernels_##name},
#include "crnn_isas.def"
#undef CRNN_ISA
};

/* The instruction set in use, or -2 before the first call resolves it. */
static atomic_int g_isa = -2;

const char *crnn_isa_name(int isa)
{
    if (isa == CRNN_ISA_AUTO)
        return "auto";
    return isa >= 0 && isa < CRNN_ISA_COUNT ? isas[isa].name : NULL;
}

int crnn_isa_supported(int isa)
{
    return isa >= 0 && isa < CRNN_ISA_COUNT && isas[isa].supported();
}

static int best_isa(void)
{
    int isa = CRNN_ISA_COUNT - 1;
    while (isa > 0 && !crnn_isa_supported(isa))
        isa--;
    return isa;
}

/* The CRNN_ISA environment variable (a name of crnn_isas.def, or auto), where
 * the CPU supports it; otherwise the best the CPU supports. */
static int isa_from_environment(void)
{
    const char *want = getenv("CRNN_ISA");
    if (want)
        for (int isa = 0; isa < CRNN_ISA_COUNT; isa++)
            if (strcmp(want, isas[isa].name) == 0 && crnn_isa_supported(isa))
                return isa;
    return best_isa();
}

int crnn_get_isa(void)
{
    int isa = atomic_load(&g_isa);
    if (isa < 0) {
        isa = isa_from_environment();
        atomic_store(&g_isa, isa);
    }
    return isa;
}

int crnn_set_isa(int isa)
{
    if (isa == CRNN_ISA_AUTO)
        isa = best_isa();
    else if (!crnn_isa_supported(isa))
        return CRNN_ERR_INVALID;
    atomic_store(&g_isa, isa);
    return CRNN_OK;
}

const char *crnn_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown";
#endif
}

const crnn_kernel_table *crnn_kernel_table_of(int isa)
{
    const crnn_kernel_table *k = isas[isa].kernels;
    return k->native ? k->native : k;
}

/* The build that runs a call of `dtype` on the instruction set in use:
 * bfloat16 products on its own build, native calls where it hands them. */
static const crnn_kernel_table *kernels(int dtype)
{
    const int isa = crnn_get_isa();
    return dtype == CRNN_F32_BF16 ? isas[isa].kernels : crnn_kernel_table_of(isa);
}

/* ------------------------------------------------------------- cells */

/* The same in every build; the portable one always exists. */
static const crnn_cell_desc *cell_desc(int cell) { return crnn_kernels_generic.cells[cell]; }

int crnn_cell_info_get(int cell, crnn_cell_info *info)
{
    crnn_layout lay;
    if (cell < 0 || cell >= CRNN_CELL_COUNT || !info)
        return CRNN_ERR_INVALID;
    const crnn_cell_desc *d = cell_desc(cell);
    if (!crnn_layout_of(d, 1, 1, &lay))
        return CRNN_ERR_INVALID;
    memset(info, 0, sizeof *info);
    info->name = cell_names[cell];
    info->gates = d->gates;
    info->states = d->states;
    info->state_is_output = (d->flags & CRNN_FEEDBACK_OUTPUT) != 0;
    info->saved = lay.saved;
    for (int k = 0; k < lay.saved; k++)
        info->saved_gates[k] = (int)lay.saved_w[k]; /* widths for H = 1 */
    info->separate_bias_grads = (d->flags & CRNN_SPLIT_INPUT_GRADS) != 0;
    return CRNN_OK;
}

/* ------------------------------------------------------------ checks */

/* Sizes are non-negative and every array's element count (T*B*max(I, G),
 * G*max(I, H), for G = gates*H) fits comfortably in 64 bits. */
static int sizes_ok(int64_t T, int64_t B, int64_t I, int64_t H, int64_t gates)
{
    if (T < 0 || B < 0 || I < 0 || H < 0)
        return 0;
    const int64_t limit = INT64_MAX / 64;
    if (H > limit / gates)
        return 0;
    const int64_t G = gates * H;
    const int64_t wide = I > G ? I : G;
    if (T && B > limit / T)
        return 0;
    if (wide && T * B > limit / wide)
        return 0;
    if (G && (H > limit / G || I > limit / G))
        return 0;
    return 1;
}

static int activation_ok(int activation)
{
    return activation >= 0 && activation < CRNN_ACTIVATION_COUNT;
}

/* An array of `count` elements may be NULL only when empty. */
static int present(const void *p, int64_t count) { return p != NULL || count == 0; }

/* The layer, for T steps of B rows: a known cell and element type, the
 * activations the cell uses, sizes whose arrays are addressable (an output
 * layer's too: its input is O wide when fed back). Fills *d and *lay. */
int crnn_layer_ok(const crnn_layer *layer, int64_t T, int64_t B, const crnn_cell_desc **d,
                  crnn_layout *lay)
{
    if (!layer || layer->cell < 0 || layer->cell >= CRNN_CELL_COUNT ||
        (layer->dtype != CRNN_F32 && layer->dtype != CRNN_F64 && layer->dtype != CRNN_F32_BF16))
        return 0;
    *d = cell_desc(layer->cell);
    const unsigned flags = (*d)->flags;
    const int output = (flags & CRNN_OUTPUT_LAYER) != 0;
    if ((flags & CRNN_USES_ACTIVATION) && !activation_ok(layer->activation))
        return 0;
    if (output && !activation_ok(layer->output_activation))
        return 0;
    /* bfloat16 products: not for an output layer nor a second product */
    if (layer->dtype == CRNN_F32_BF16 && (output || (flags & CRNN_SECOND_PRODUCT)))
        return 0;
    const int64_t I = layer->input_size, H = layer->hidden_size;
    const int64_t O = output ? layer->output_size : 0;
    if (!sizes_ok(T, B, I, H, (*d)->gates) || (output && !sizes_ok(T, B, O, H, (*d)->gates)))
        return 0;
    return crnn_layout_of(*d, H, O, lay);
}

/* Token ids in [0, I) at every valid step. */
static int ids_ok(const crnn_sequence *seq, int64_t I)
{
    for (int64_t t = 0; t < seq->steps; t++)
        for (int64_t b = 0; b < seq->batch; b++)
            if ((!seq->lengths || t < seq->lengths[b]) &&
                (seq->ids[t * seq->batch + b] < 0 || seq->ids[t * seq->batch + b] >= I))
                return 0;
    return 1;
}

/* The layer (crnn_layer_ok), and the weights and sequence arrays the forward
 * and the backward both read. Fills *d and *lay. */
static int call_ok(const crnn_layer *layer, const crnn_weights *w, const crnn_sequence *seq,
                   const crnn_cell_desc **d, crnn_layout *lay)
{
    if (!layer || !w || !seq || !crnn_layer_ok(layer, seq->steps, seq->batch, d, lay))
        return 0;
    const int output = ((*d)->flags & CRNN_OUTPUT_LAYER) != 0;
    const int64_t T = seq->steps, B = seq->batch, I = layer->input_size, H = layer->hidden_size;
    const int64_t O = output ? layer->output_size : 0;
    const int64_t TB = T * B;
    if (seq->ids && !ids_ok(seq, I))
        return 0;
    if ((!seq->ids && !present(seq->x, TB * I)) || !present(seq->out, TB * lay->out_w) ||
        !present(w->w_ih, lay->G * I) || !present(w->w_hh, lay->G * lay->R) ||
        (output && !present(w->w_ho, O * H)))
        return 0;
    for (int k = 0; k < lay->saved; k++)
        if (!present(seq->saved[k], TB * lay->saved_w[k]))
            return 0;
    return 1;
}

/* ------------------------------------------------------ entry points */

int crnn_forward(const crnn_layer *layer, const crnn_weights *weights, const crnn_sequence *seq)
{
    const crnn_cell_desc *d;
    crnn_layout lay;
    if (!call_ok(layer, weights, seq, &d, &lay))
        return CRNN_ERR_INVALID;
    for (int k = 0; k < d->states; k++)
        if (!present(seq->state_n[k], seq->batch * lay.state_w[k]))
            return CRNN_ERR_INVALID;
    const crnn_call call = {layer, weights, seq, NULL, crnn_threads_for_call()};
    return kernels(layer->dtype)->forward[layer->dtype == CRNN_F64](&call); /* F32_BF16: float */
}

int crnn_backward(const crnn_layer *layer, const crnn_weights *weights, const crnn_sequence *seq,
                  const crnn_gradients *grads)
{
    const crnn_cell_desc *d;
    crnn_layout lay;
    if (!grads || !call_ok(layer, weights, seq, &d, &lay))
        return CRNN_ERR_INVALID;
    const int64_t T = seq->steps, B = seq->batch, I = layer->input_size, H = layer->hidden_size;
    const int64_t O = lay.out_w;
    for (int k = 0; k < d->states; k++)
        if (!present(grads->dstate0[k], B * lay.state_w[k]))
            return CRNN_ERR_INVALID;
    if ((!seq->ids && !present(grads->dx, T * B * I)) || !present(grads->dw_ih, lay.G * I) ||
        !present(grads->dw_hh, lay.G * lay.R) ||
        ((d->flags & CRNN_OUTPUT_LAYER) && !present(grads->dw_ho, O * H)))
        return CRNN_ERR_INVALID;
    const crnn_call call = {layer, weights, seq, grads, crnn_threads_for_call()};
    return kernels(layer->dtype)->backward[layer->dtype == CRNN_F64](&call);
}
