/*
 * crnn's functions for other Python extensions, without a Python call in
 * between: the installed crnn module publishes every function of crnn.h in
 * one table, the capsule "crnn._core._C_API" (as NumPy publishes its C API).
 * A capsule, not exported symbols: Python loads extension modules with
 * RTLD_LOCAL, and an extension module cannot be linked against portably,
 * whereas a capsule needs no link step and carries its version.
 *
 * From C (include Python.h first; the headers are in crnn.get_include()):
 *
 *     #include <Python.h>
 *     #include "crnn_api.h"
 *
 *     static const crnn_api *crnn;            (in the module's init:)
 *     crnn = crnn_import_api();               (NULL: an exception is set)
 *     ...
 *     status = crnn->forward(&layer, &weights, &seq);    (any thread, no GIL)
 *
 * From Cython: ``from crnn.libcrnn cimport *``, then
 * ``cdef const crnn_api *api = crnn_import_api()``.
 *
 * The table only ever grows at its end; CRNN_API_VERSION changes when a
 * member changes, and crnn_import_api refuses a table of another version or
 * one older than the header the caller was built with.
 */
#ifndef CRNN_API_H
#define CRNN_API_H

#include "crnn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 2: crnn_sequence gained ids at its end (an extension built against 1
 * would pass a shorter struct), and the table its last six members. */
#define CRNN_API_VERSION 2
#define CRNN_API_CAPSULE "crnn._core._C_API"

/* The functions of crnn.h, by their names without "crnn_". */
typedef struct crnn_api {
    int version; /* CRNN_API_VERSION of the library */
    int size;    /* sizeof(crnn_api) in the library */
    int (*cell_info_get)(int cell, crnn_cell_info *info);
    int (*forward)(const crnn_layer *layer, const crnn_weights *weights, const crnn_sequence *seq);
    int (*backward)(const crnn_layer *layer, const crnn_weights *weights, const crnn_sequence *seq,
                    const crnn_gradients *grads);
    double (*total_norm)(int dtype, int64_t n, const void *const *arrays, const int64_t *sizes,
                         double p);
    int (*scale)(int dtype, int64_t n, void *const *arrays, const int64_t *sizes, double factor);
    int (*clip_value)(int dtype, int64_t n, void *const *arrays, const int64_t *sizes, double clip);
    void (*set_num_threads)(int n);
    int (*get_num_threads)(void);
    int (*have_openmp)(void);
    int (*set_isa)(int isa);
    int (*get_isa)(void);
    int (*isa_supported)(int isa);
    const char *(*isa_name)(int isa);
    const char *(*activation_name)(int activation);
    const char *(*compiler)(void);
    int (*embedding_backward)(int dtype, const int64_t *ids, int64_t n_ids, int64_t dim,
                              const void *dout, int64_t num_embeddings, int64_t padding_idx,
                              void *dweight);
    int (*prepare)(const crnn_layer *layer, const crnn_weights *weights, crnn_prepared **prepared);
    int (*prepared_update)(crnn_prepared *prepared, const crnn_weights *weights);
    void (*prepared_free)(crnn_prepared *prepared);
    int (*forward_prepared)(const crnn_prepared *prepared, const crnn_sequence *seq);
    int (*head_loss)(const crnn_head *head, double *loss);
    int (*optimizer_step)(const crnn_optimizer *opt, const crnn_parameters *params,
                          double *total_norm);
} crnn_api;

#ifdef Py_PYTHON_H
/* Imports crnn and returns its table; NULL, with ImportError set, when crnn
 * is not installed or its table does not match this header. Needs the GIL. */
static inline const crnn_api *crnn_import_api(void)
{
    const crnn_api *api = (const crnn_api *)PyCapsule_Import(CRNN_API_CAPSULE, 0);
    if (api == NULL)
        return NULL;
    if (api->version != CRNN_API_VERSION || api->size < (int)sizeof(crnn_api)) {
        PyErr_Format(PyExc_ImportError,
                     "crnn's C API is version %d (%d bytes), this extension was built "
                     "against version %d (%d bytes): rebuild it against the installed crnn",
                     api->version, api->size, CRNN_API_VERSION, (int)sizeof(crnn_api));
        return NULL;
    }
    return api;
}
#endif

#ifdef __cplusplus
}
#endif

#endif /* CRNN_API_H */
