/*
 * The table of crnn_api.h: every function of crnn.h, which the Python module
 * publishes as the capsule CRNN_API_CAPSULE for other extensions.
 */
#include "crnn_api.h"

static const crnn_api table = {
    .version = CRNN_API_VERSION,
    .size = (int)sizeof(crnn_api),
    .cell_info_get = crnn_cell_info_get,
    .forward = crnn_forward,
    .backward = crnn_backward,
    .total_norm = crnn_total_norm,
    .scale = crnn_scale,
    .clip_value = crnn_clip_value,
    .set_num_threads = crnn_set_num_threads,
    .get_num_threads = crnn_get_num_threads,
    .have_openmp = crnn_have_openmp,
    .set_isa = crnn_set_isa,
    .get_isa = crnn_get_isa,
    .isa_supported = crnn_isa_supported,
    .isa_name = crnn_isa_name,
    .activation_name = crnn_activation_name,
    .compiler = crnn_compiler,
    .embedding_backward = crnn_embedding_backward,
    .prepare = crnn_prepare,
    .prepared_update = crnn_prepared_update,
    .prepared_free = crnn_prepared_free,
    .forward_prepared = crnn_forward_prepared,
    .head_loss = crnn_head_loss,
    .optimizer_step = crnn_optimizer_step,
};

/* For the binding (_core.pyx), which wraps it in the capsule. */
const crnn_api *crnn_api_table(void) { return &table; }
