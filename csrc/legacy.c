/*
 * The previous interface (legacy.h) as thin wrappers over crnn.h: each
 * typed per-cell function fills crnn_layer / crnn_weights / crnn_sequence
 * / crnn_gradients and calls crnn_forward or crnn_backward. Temporary: goes
 * with the binding's move to crnn.h.
 */
#include "legacy.h"

#include <stddef.h>

/* The old Jordan code for the identity output. */
static int jordan_g(int g) { return g == -1 ? CRNN_IDENTITY : g; }

#define DEFINE_LEGACY(T_, S_, DTYPE)                                                        \
    int crnn_rnn_forward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, const T_ *x,     \
                              const T_ *h0, const T_ *w_ih, const T_ *w_hh, const T_ *b_ih, \
                              const T_ *b_hh, const int64_t *lengths, int activation,       \
                              T_ *out, T_ *h_n)                                             \
    {                                                                                       \
        const crnn_layer l = {.cell = CRNN_CELL_RNN, .dtype = DTYPE,                        \
                              .activation = activation, .input_size = In,                   \
                              .hidden_size = H};                                            \
        const crnn_weights w = {.w_ih = w_ih, .w_hh = w_hh, .b_ih = b_ih, .b_hh = b_hh};    \
        const crnn_sequence s = {.steps = T, .batch = B, .lengths = lengths, .x = x,        \
                                 .state0 = {h0}, .out = out, .state_n = {h_n}};             \
        return crnn_forward(&l, &w, &s);                                                    \
    }                                                                                       \
    int crnn_rnn_backward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, const T_ *x,    \
                               const T_ *h0, const T_ *w_ih, const T_ *w_hh,               \
                               const int64_t *lengths, int activation, const T_ *out,      \
                               const T_ *dout, const T_ *dh_n, T_ *dx, T_ *dh0, T_ *dw_ih, \
                               T_ *dw_hh, T_ *db)                                          \
    {                                                                                       \
        const crnn_layer l = {.cell = CRNN_CELL_RNN, .dtype = DTYPE,                        \
                              .activation = activation, .input_size = In,                   \
                              .hidden_size = H};                                            \
        const crnn_weights w = {.w_ih = w_ih, .w_hh = w_hh};                                \
        const crnn_sequence s = {.steps = T, .batch = B, .lengths = lengths, .x = x,        \
                                 .state0 = {h0}, .out = (void *)out};                       \
        const crnn_gradients g = {.dout = dout, .dstate_n = {dh_n}, .dx = dx,               \
                                  .dstate0 = {dh0}, .dw_ih = dw_ih, .dw_hh = dw_hh,         \
                                  .db_ih = db};                                             \
        return crnn_backward(&l, &w, &s, &g);                                               \
    }                                                                                       \
    int crnn_lstm_forward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, const T_ *x,    \
                               const T_ *h0, const T_ *c0, const T_ *w_ih, const T_ *w_hh, \
                               const T_ *b_ih, const T_ *b_hh, const int64_t *lengths,     \
                               T_ *out, T_ *h_n, T_ *c_n, T_ *gates, T_ *cells)            \
    {                                                                                       \
        const crnn_layer l = {.cell = CRNN_CELL_LSTM, .dtype = DTYPE, .input_size = In,     \
                              .hidden_size = H};                                            \
        const crnn_weights w = {.w_ih = w_ih, .w_hh = w_hh, .b_ih = b_ih, .b_hh = b_hh};    \
        const crnn_sequence s = {.steps = T, .batch = B, .lengths = lengths, .x = x,        \
                                 .state0 = {h0, c0}, .out = out, .state_n = {h_n, c_n},     \
                                 .saved = {gates, cells}};                                  \
        return crnn_forward(&l, &w, &s);                                                    \
    }                                                                                       \
    int crnn_lstm_backward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, const T_ *x,   \
                                const T_ *h0, const T_ *c0, const T_ *w_ih, const T_ *w_hh, \
                                const int64_t *lengths, const T_ *out, const T_ *gates,    \
                                const T_ *cells, const T_ *dout, const T_ *dh_n,           \
                                const T_ *dc_n, T_ *dx, T_ *dh0, T_ *dc0, T_ *dw_ih,       \
                                T_ *dw_hh, T_ *db)                                         \
    {                                                                                       \
        const crnn_layer l = {.cell = CRNN_CELL_LSTM, .dtype = DTYPE, .input_size = In,     \
                              .hidden_size = H};                                            \
        const crnn_weights w = {.w_ih = w_ih, .w_hh = w_hh};                                \
        const crnn_sequence s = {.steps = T, .batch = B, .lengths = lengths, .x = x,        \
                                 .state0 = {h0, c0}, .out = (void *)out,                    \
                                 .saved = {(void *)gates, (void *)cells}};                  \
        const crnn_gradients g = {.dout = dout, .dstate_n = {dh_n, dc_n}, .dx = dx,         \
                                  .dstate0 = {dh0, dc0}, .dw_ih = dw_ih, .dw_hh = dw_hh,    \
                                  .db_ih = db};                                             \
        return crnn_backward(&l, &w, &s, &g);                                               \
    }                                                                                       \
    int crnn_gru_forward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, const T_ *x,     \
                              const T_ *h0, const T_ *w_ih, const T_ *w_hh, const T_ *b_ih, \
                              const T_ *b_hh, const int64_t *lengths, T_ *out, T_ *h_n,     \
                              T_ *gates, T_ *hn)                                            \
    {                                                                                       \
        const crnn_layer l = {.cell = CRNN_CELL_GRU, .dtype = DTYPE, .input_size = In,      \
                              .hidden_size = H};                                            \
        const crnn_weights w = {.w_ih = w_ih, .w_hh = w_hh, .b_ih = b_ih, .b_hh = b_hh};    \
        const crnn_sequence s = {.steps = T, .batch = B, .lengths = lengths, .x = x,        \
                                 .state0 = {h0}, .out = out, .state_n = {h_n},              \
                                 .saved = {gates, hn}};                                     \
        return crnn_forward(&l, &w, &s);                                                    \
    }                                                                                       \
    int crnn_gru_backward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, const T_ *x,    \
                               const T_ *h0, const T_ *w_ih, const T_ *w_hh,               \
                               const int64_t *lengths, const T_ *out, const T_ *gates,     \
                               const T_ *hn, const T_ *dout, const T_ *dh_n, T_ *dx,       \
                               T_ *dh0, T_ *dw_ih, T_ *dw_hh, T_ *db_ih, T_ *db_hh)         \
    {                                                                                       \
        const crnn_layer l = {.cell = CRNN_CELL_GRU, .dtype = DTYPE, .input_size = In,      \
                              .hidden_size = H};                                            \
        const crnn_weights w = {.w_ih = w_ih, .w_hh = w_hh};                                \
        const crnn_sequence s = {.steps = T, .batch = B, .lengths = lengths, .x = x,        \
                                 .state0 = {h0}, .out = (void *)out,                        \
                                 .saved = {(void *)gates, (void *)hn}};                     \
        const crnn_gradients g = {.dout = dout, .dstate_n = {dh_n}, .dx = dx,               \
                                  .dstate0 = {dh0}, .dw_ih = dw_ih, .dw_hh = dw_hh,         \
                                  .db_ih = db_ih, .db_hh = db_hh};                          \
        return crnn_backward(&l, &w, &s, &g);                                               \
    }                                                                                       \
    int crnn_jordan_forward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, int64_t O,    \
                                 const T_ *x, const T_ *y0, const T_ *w_ih, const T_ *w_hy, \
                                 const T_ *w_ho, const T_ *b_ih, const T_ *b_hh,           \
                                 const T_ *b_ho, const int64_t *lengths, int f, int g,     \
                                 T_ *out, T_ *y_n, T_ *hidden)                             \
    {                                                                                       \
        const crnn_layer l = {.cell = CRNN_CELL_JORDAN, .dtype = DTYPE, .activation = f,    \
                              .output_activation = jordan_g(g), .input_size = In,           \
                              .hidden_size = H, .output_size = O};                          \
        const crnn_weights w = {.w_ih = w_ih, .w_hh = w_hy, .b_ih = b_ih, .b_hh = b_hh,     \
                                .w_ho = w_ho, .b_ho = b_ho};                                \
        const crnn_sequence s = {.steps = T, .batch = B, .lengths = lengths, .x = x,        \
                                 .state0 = {y0}, .out = out, .state_n = {y_n},              \
                                 .saved = {hidden}};                                        \
        return crnn_forward(&l, &w, &s);                                                    \
    }                                                                                       \
    int crnn_jordan_backward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, int64_t O,   \
                                  const T_ *x, const T_ *y0, const T_ *w_ih,               \
                                  const T_ *w_hy, const T_ *w_ho, const int64_t *lengths,  \
                                  int f, int g, const T_ *out, const T_ *hidden,           \
                                  const T_ *dout, const T_ *dy_n, T_ *dx, T_ *dy0,         \
                                  T_ *dw_ih, T_ *dw_hy, T_ *dw_ho, T_ *db, T_ *db_ho)      \
    {                                                                                       \
        const crnn_layer l = {.cell = CRNN_CELL_JORDAN, .dtype = DTYPE, .activation = f,    \
                              .output_activation = jordan_g(g), .input_size = In,           \
                              .hidden_size = H, .output_size = O};                          \
        const crnn_weights w = {.w_ih = w_ih, .w_hh = w_hy, .w_ho = w_ho};                  \
        const crnn_sequence s = {.steps = T, .batch = B, .lengths = lengths, .x = x,        \
                                 .state0 = {y0}, .out = (void *)out,                        \
                                 .saved = {(void *)hidden}};                                \
        const crnn_gradients gr = {.dout = dout, .dstate_n = {dy_n}, .dx = dx,              \
                                   .dstate0 = {dy0}, .dw_ih = dw_ih, .dw_hh = dw_hy,        \
                                   .db_ih = db, .dw_ho = dw_ho, .db_ho = db_ho};            \
        return crnn_backward(&l, &w, &s, &gr);                                              \
    }                                                                                       \
    double crnn_total_norm_##S_(int64_t n, const T_ *const *arrays, const int64_t *sizes,  \
                                double p)                                                   \
    {                                                                                       \
        return crnn_total_norm(DTYPE, n, (const void *const *)arrays, sizes, p);            \
    }                                                                                       \
    void crnn_scale_##S_(int64_t n, T_ *const *arrays, const int64_t *sizes, T_ factor)     \
    {                                                                                       \
        (void)crnn_scale(DTYPE, n, (void *const *)arrays, sizes, factor);                   \
    }                                                                                       \
    void crnn_clip_value_##S_(int64_t n, T_ *const *arrays, const int64_t *sizes, T_ clip)  \
    {                                                                                       \
        (void)crnn_clip_value(DTYPE, n, (void *const *)arrays, sizes, clip);                \
    }

DEFINE_LEGACY(float, f32, CRNN_F32)
DEFINE_LEGACY(double, f64, CRNN_F64)
