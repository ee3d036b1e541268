# Cython declarations of crnn's C interface (csrc/crnn.h, installed with
# crnn_api.h in crnn.get_include()), cimported by the binding (_core.pyx)
# and by other extensions. Cell, activation and ISA codes are not spelled
# out here: read them by name at run time (crnn_cell_info_get,
# crnn_activation_name, crnn_isa_name), so that a new cell needs no change
# in this file.
#
# crnn's own binding links the C code; another extension reaches the same
# functions through the table of crnn_api.h (no link step), e.g.
#
#     from crnn.libcrnn cimport *
#     cdef const crnn_api *api = crnn_import_api()    # with the GIL, once
#     with nogil:
#         status = api.forward(&layer, &weights, &seq)
#
# built with include_dirs=[crnn.get_include()].
from libc.stdint cimport int64_t


cdef extern from "crnn.h" nogil:
    enum crnn_status:
        CRNN_OK
        CRNN_ERR_NOMEM
        CRNN_ERR_INVALID
        CRNN_ERR_STALE

    enum crnn_dtype:
        CRNN_F32
        CRNN_F64
        CRNN_F32_BF16

    enum:
        CRNN_CELL_COUNT
        CRNN_ACTIVATION_COUNT
        CRNN_ISA_AUTO
        CRNN_ISA_COUNT
        CRNN_MAX_STATES
        CRNN_MAX_SAVED

    ctypedef struct crnn_layer:
        int cell
        int dtype
        int activation
        int output_activation
        int64_t input_size
        int64_t hidden_size
        int64_t output_size

    ctypedef struct crnn_weights:
        const void *w_ih
        const void *w_hh
        const void *b_ih
        const void *b_hh
        const void *w_ho
        const void *b_ho

    ctypedef struct crnn_sequence:
        int64_t steps
        int64_t batch
        const int64_t *lengths
        const void *x
        const void *state0[2]
        void *out
        void *state_n[2]
        void *saved[2]
        const int64_t *ids

    ctypedef struct crnn_gradients:
        const void *dout
        const void *dstate_n[2]
        void *dx
        void *dstate0[2]
        void *dw_ih
        void *dw_hh
        void *db_ih
        void *db_hh
        void *dw_ho
        void *db_ho

    ctypedef struct crnn_cell_info:
        const char *name
        int gates
        int states
        int state_is_output
        int saved
        int saved_gates[2]
        int separate_bias_grads

    int crnn_cell_info_get(int cell, crnn_cell_info *info)
    int crnn_forward(const crnn_layer *layer, const crnn_weights *weights,
                     const crnn_sequence *seq)
    int crnn_backward(const crnn_layer *layer, const crnn_weights *weights,
                      const crnn_sequence *seq, const crnn_gradients *grads)

    ctypedef struct crnn_prepared:
        pass

    int crnn_prepare(const crnn_layer *layer, const crnn_weights *weights,
                     crnn_prepared **prepared)
    int crnn_prepared_update(crnn_prepared *prepared, const crnn_weights *weights)
    void crnn_prepared_free(crnn_prepared *prepared)
    int crnn_forward_prepared(const crnn_prepared *prepared, const crnn_sequence *seq)

    enum:
        CRNN_MAX_BUFFERS
        CRNN_LOSS_CROSS_ENTROPY
        CRNN_LOSS_MSE

    ctypedef struct crnn_head:
        int dtype
        int loss
        int64_t rows
        int64_t in_features
        int64_t out_features
        const void *x
        const void *weight
        const void *bias
        const int64_t *classes
        const void *targets
        void *dx
        void *dweight
        void *dbias

    int crnn_head_loss(const crnn_head *head, double *loss)

    ctypedef struct crnn_optimizer:
        int kind
        int dtype
        int64_t step
        double lr
        double weight_decay
        double eps
        double momentum
        double dampening
        int nesterov
        double beta1
        double beta2
        int amsgrad
        int decoupled
        double lr_decay
        double alpha
        int centered
        int first_step
        double clip_value
        double max_norm
        double norm_type

    ctypedef struct crnn_parameters:
        int64_t n
        const int64_t *sizes
        void *const *params
        void *const *grads
        void *const *buffers[3]

    int crnn_optimizer_step(const crnn_optimizer *opt, const crnn_parameters *params,
                            double *total_norm)

    double crnn_total_norm(int dtype, int64_t n, const void *const *arrays,
                           const int64_t *sizes, double p)
    int crnn_scale(int dtype, int64_t n, void *const *arrays, const int64_t *sizes,
                   double factor)
    int crnn_clip_value(int dtype, int64_t n, void *const *arrays, const int64_t *sizes,
                        double clip)

    int crnn_embedding_backward(int dtype, const int64_t *ids, int64_t n_ids, int64_t dim,
                                const void *dout, int64_t num_embeddings,
                                int64_t padding_idx, void *dweight)

    void crnn_set_num_threads(int n)
    int crnn_get_num_threads()
    int crnn_have_openmp()
    int crnn_set_isa(int isa)
    int crnn_get_isa()
    int crnn_isa_supported(int isa)
    const char *crnn_isa_name(int isa)
    const char *crnn_activation_name(int activation)
    const char *crnn_compiler()


cdef extern from "crnn_api.h":
    enum:
        CRNN_API_VERSION
    const char *CRNN_API_CAPSULE  # the capsule's name, "crnn._core._C_API"

    ctypedef struct crnn_api:
        int version
        int size
        int (*cell_info_get)(int cell, crnn_cell_info *info) noexcept nogil
        int (*forward)(const crnn_layer *layer, const crnn_weights *weights,
                       const crnn_sequence *seq) noexcept nogil
        int (*backward)(const crnn_layer *layer, const crnn_weights *weights,
                        const crnn_sequence *seq, const crnn_gradients *grads) noexcept nogil
        double (*total_norm)(int dtype, int64_t n, const void *const *arrays,
                             const int64_t *sizes, double p) noexcept nogil
        int (*scale)(int dtype, int64_t n, void *const *arrays, const int64_t *sizes,
                     double factor) noexcept nogil
        int (*clip_value)(int dtype, int64_t n, void *const *arrays, const int64_t *sizes,
                          double clip) noexcept nogil
        void (*set_num_threads)(int n) noexcept nogil
        int (*get_num_threads)() noexcept nogil
        int (*have_openmp)() noexcept nogil
        int (*set_isa)(int isa) noexcept nogil
        int (*get_isa)() noexcept nogil
        int (*isa_supported)(int isa) noexcept nogil
        const char *(*isa_name)(int isa) noexcept nogil
        const char *(*activation_name)(int activation) noexcept nogil
        const char *(*compiler)() noexcept nogil
        int (*embedding_backward)(int dtype, const int64_t *ids, int64_t n_ids, int64_t dim,
                                  const void *dout, int64_t num_embeddings,
                                  int64_t padding_idx, void *dweight) noexcept nogil
        int (*prepare)(const crnn_layer *layer, const crnn_weights *weights,
                       crnn_prepared **prepared) noexcept nogil
        int (*prepared_update)(crnn_prepared *prepared,
                               const crnn_weights *weights) noexcept nogil
        void (*prepared_free)(crnn_prepared *prepared) noexcept nogil
        int (*forward_prepared)(const crnn_prepared *prepared,
                                const crnn_sequence *seq) noexcept nogil
        int (*head_loss)(const crnn_head *head, double *loss) noexcept nogil
        int (*optimizer_step)(const crnn_optimizer *opt, const crnn_parameters *params,
                              double *total_norm) noexcept nogil

    # Imports crnn and returns its table (ImportError when it does not match).
    const crnn_api *crnn_import_api() except NULL
