/*
 * Instantiates the kernel template for float32 and float64 under the
 * instruction set of the including kernels_<isa>.c (which defines VBYTES,
 * MR and ISA_SUFFIX inside its target region), and defines that build's
 * kernel table, crnn_kernels_<ISA_SUFFIX>.
 *
 * The template, in include order: template_begin.h (its shorthands),
 * simd.inc, activations.inc, gemm.inc, gemm_bf16.inc, ids.inc, driver.inc, the cells of
 * crnn_cells.def (cell_<name>.inc), then the table of those cells, the entry
 * points the kernel table holds, step.inc (prepared weights), head.inc (an
 * output head and its loss), and template_end.h. This file
 * includes itself once per element type for that part (CRNN_TEMPLATE_REAL).
 */
#ifndef CRNN_TEMPLATE_REAL

#define CRNN_CAT3_(a, b, c) a##_##b##_##c
#define CRNN_CAT3(a, b, c)  CRNN_CAT3_(a, b, c)

#define CRNN_TEMPLATE_REAL 1
#define REAL               float
#define IREAL              int32_t
#define REAL_IS_F32        1
#define NAME(x)            CRNN_CAT3(x, f32, ISA_SUFFIX)
#include "kernels_instantiate.h"
#undef REAL
#undef IREAL
#undef REAL_IS_F32
#undef NAME

#define REAL        double
#define IREAL       int64_t
#define REAL_IS_F32 0
#define NAME(x)     CRNN_CAT3(x, f64, ISA_SUFFIX)
#include "kernels_instantiate.h"
#undef REAL
#undef IREAL
#undef REAL_IS_F32
#undef NAME
#undef CRNN_TEMPLATE_REAL

const crnn_kernel_table CRNN_CAT(crnn_kernels_, ISA_SUFFIX) = {
    .forward = {CRNN_CAT3(run_forward, f32, ISA_SUFFIX), CRNN_CAT3(run_forward, f64, ISA_SUFFIX)},
    .backward = {CRNN_CAT3(run_backward, f32, ISA_SUFFIX),
                 CRNN_CAT3(run_backward, f64, ISA_SUFFIX)},
    .cells = CRNN_CAT3(cell_descs, f64, ISA_SUFFIX),
    .pack = {CRNN_CAT3(pack_prepared, f32, ISA_SUFFIX), CRNN_CAT3(pack_prepared, f64, ISA_SUFFIX)},
    .forward_prepared = {CRNN_CAT3(run_forward_prepared, f32, ISA_SUFFIX),
                         CRNN_CAT3(run_forward_prepared, f64, ISA_SUFFIX)},
    .head_loss = {CRNN_CAT3(head_loss, f32, ISA_SUFFIX), CRNN_CAT3(head_loss, f64, ISA_SUFFIX)},
#ifdef CRNN_NATIVE_KERNELS
    .native = &CRNN_NATIVE_KERNELS,
#endif
};

#else /* one element type: REAL, IREAL, REAL_IS_F32 and NAME(x) are defined */

#include "template_begin.h"
#include "simd.inc"
#include "activations.inc"
#include "gemm.inc"
#include "gemm_bf16.inc"
#include "ids.inc"
#include "driver.inc"

/* The cells' sources: crnn_cells.def lists them after its CRNN_CELL lines. */
#define CRNN_CELL(ID, name)
#define CRNN_CELL_SOURCES
#include "crnn_cells.def"
#undef CRNN_CELL_SOURCES
#undef CRNN_CELL

/* The cells by enum crnn_cell, and their descriptions. */
static const NAME(cell) *const NAME(cells)[CRNN_CELL_COUNT] = {
#define CRNN_CELL(ID, name) [CRNN_CELL_##ID] = &NAME(cell_##name),
#include "crnn_cells.def"
#undef CRNN_CELL
};

static const crnn_cell_desc *const NAME(cell_descs)[CRNN_CELL_COUNT] = {
#define CRNN_CELL(ID, name) [CRNN_CELL_##ID] = &NAME(cell_##name).desc,
#include "crnn_cells.def"
#undef CRNN_CELL
};

/* The kernel table's entries: the driver for the call's cell. */
static int NAME(run_forward)(const crnn_call *call)
{
    return NAME(forward)(NAME(cells)[call->layer->cell], call);
}

static int NAME(run_backward)(const crnn_call *call)
{
    return NAME(backward)(NAME(cells)[call->layer->cell], call);
}

/* Prepared weights: their packing and the forward that runs them. */
#include "step.inc"

/* An output head and its loss. */
#include "head.inc"

static int NAME(run_forward_prepared)(const crnn_prepared *p, const crnn_sequence *seq)
{
    return NAME(forward_prepared)(NAME(cells)[p->layer.cell], p, seq);
}

#include "template_end.h"

#endif /* CRNN_TEMPLATE_REAL */
