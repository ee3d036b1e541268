/*
 * crnn's previous C interface, kept for a while as thin wrappers over
 * crnn.h (legacy.c): one typed function per cell, element type and
 * direction, with long positional argument lists. The Cython binding still
 * calls these; new code uses crnn_forward / crnn_backward. To be removed
 * with the binding's move to crnn.h.
 */
#ifndef CRNN_LEGACY_H
#define CRNN_LEGACY_H

#include <stdint.h>

#include "crnn.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Forward pass. h0, b_ih, b_hh and lengths may be NULL (zeros / no bias /
 * every row has length T). Writes out (T, B, H) and h_n (B, H).
 */
int crnn_rnn_forward_f32(int64_t T, int64_t B, int64_t In, int64_t H,
                         const float *x, const float *h0,
                         const float *w_ih, const float *w_hh,
                         const float *b_ih, const float *b_hh,
                         const int64_t *lengths, int activation,
                         float *out, float *h_n);
int crnn_rnn_forward_f64(int64_t T, int64_t B, int64_t In, int64_t H,
                         const double *x, const double *h0,
                         const double *w_ih, const double *w_hh,
                         const double *b_ih, const double *b_hh,
                         const int64_t *lengths, int activation,
                         double *out, double *h_n);

/*
 * Backpropagation through time. Takes the forward's inputs and its out;
 * dout (T, B, H) and dh_n (B, H) may be NULL (zero). Writes dx (T, B, In),
 * dh0 (B, H), dw_ih (H, In), dw_hh (H, H) and, when db is not NULL, the bias
 * gradient db (H,), which is the same for b_ih and b_hh. Padded steps
 * (t >= lengths[b]) receive no gradient from dout.
 */
int crnn_rnn_backward_f32(int64_t T, int64_t B, int64_t In, int64_t H,
                          const float *x, const float *h0,
                          const float *w_ih, const float *w_hh,
                          const int64_t *lengths, int activation,
                          const float *out, const float *dout,
                          const float *dh_n,
                          float *dx, float *dh0, float *dw_ih, float *dw_hh,
                          float *db);
int crnn_rnn_backward_f64(int64_t T, int64_t B, int64_t In, int64_t H,
                          const double *x, const double *h0,
                          const double *w_ih, const double *w_hh,
                          const int64_t *lengths, int activation,
                          const double *out, const double *dout,
                          const double *dh_n,
                          double *dx, double *dh0, double *dw_ih,
                          double *dw_hh, double *db);

/*
 * LSTM (gates [i f g o], weights (4H, In) and (4H, H), biases (4H,)):
 *   c_t = f c_{t-1} + i g,  h_t = o tanh(c_t);  h0 / c0 may be NULL (zeros).
 * The forward writes out (T, B, H), h_n and c_n (B, H) and, for the
 * backward, gates (T, B, 4H: the activations i, f, g, o) and cells (T, B, H:
 * c_t); padded steps hold h and c and their rows there are 0. The backward
 * takes those and writes dx, dh0, dc0, dw_ih, dw_hh and, when not NULL, db
 * (4H,), the same for b_ih and b_hh; dout, dh_n, dc_n may be NULL.
 */
int crnn_lstm_forward_f32(int64_t T, int64_t B, int64_t In, int64_t H,
                          const float *x, const float *h0, const float *c0,
                          const float *w_ih, const float *w_hh,
                          const float *b_ih, const float *b_hh,
                          const int64_t *lengths, float *out, float *h_n,
                          float *c_n, float *gates, float *cells);
int crnn_lstm_forward_f64(int64_t T, int64_t B, int64_t In, int64_t H,
                          const double *x, const double *h0, const double *c0,
                          const double *w_ih, const double *w_hh,
                          const double *b_ih, const double *b_hh,
                          const int64_t *lengths, double *out, double *h_n,
                          double *c_n, double *gates, double *cells);
int crnn_lstm_backward_f32(int64_t T, int64_t B, int64_t In, int64_t H,
                           const float *x, const float *h0, const float *c0,
                           const float *w_ih, const float *w_hh,
                           const int64_t *lengths, const float *out,
                           const float *gates, const float *cells,
                           const float *dout, const float *dh_n,
                           const float *dc_n, float *dx, float *dh0,
                           float *dc0, float *dw_ih, float *dw_hh, float *db);
int crnn_lstm_backward_f64(int64_t T, int64_t B, int64_t In, int64_t H,
                           const double *x, const double *h0, const double *c0,
                           const double *w_ih, const double *w_hh,
                           const int64_t *lengths, const double *out,
                           const double *gates, const double *cells,
                           const double *dout, const double *dh_n,
                           const double *dc_n, double *dx, double *dh0,
                           double *dc0, double *dw_ih, double *dw_hh,
                           double *db);

/*
 * GRU (gates [r z n], weights (3H, In) and (3H, H), biases (3H,)):
 *   n = tanh(x W_in + b_in + r (h W_hn + b_hn)),  h_t = (1 - z) n + z h_{t-1}.
 * The forward writes out, h_n and, for the backward, gates (T, B, 3H: the
 * activations r, z, n) and hn (T, B, H: h_{t-1} W_hn^T + b_hn). The backward
 * writes dx, dh0, dw_ih, dw_hh and, when not NULL, db_ih and db_hh (3H,),
 * which differ in their n part.
 */
int crnn_gru_forward_f32(int64_t T, int64_t B, int64_t In, int64_t H,
                         const float *x, const float *h0, const float *w_ih,
                         const float *w_hh, const float *b_ih,
                         const float *b_hh, const int64_t *lengths,
                         float *out, float *h_n, float *gates, float *hn);
int crnn_gru_forward_f64(int64_t T, int64_t B, int64_t In, int64_t H,
                         const double *x, const double *h0, const double *w_ih,
                         const double *w_hh, const double *b_ih,
                         const double *b_hh, const int64_t *lengths,
                         double *out, double *h_n, double *gates, double *hn);
int crnn_gru_backward_f32(int64_t T, int64_t B, int64_t In, int64_t H,
                          const float *x, const float *h0, const float *w_ih,
                          const float *w_hh, const int64_t *lengths,
                          const float *out, const float *gates,
                          const float *hn, const float *dout,
                          const float *dh_n, float *dx, float *dh0,
                          float *dw_ih, float *dw_hh, float *db_ih,
                          float *db_hh);
int crnn_gru_backward_f64(int64_t T, int64_t B, int64_t In, int64_t H,
                          const double *x, const double *h0, const double *w_ih,
                          const double *w_hh, const int64_t *lengths,
                          const double *out, const double *gates,
                          const double *hn, const double *dout,
                          const double *dh_n, double *dx, double *dh0,
                          double *dw_ih, double *dw_hh, double *db_ih,
                          double *db_hh);

/*
 * Gradient clipping over n arrays as if concatenated (crnn_total_norm etc.
 * with the element type in the name).
 * crnn_total_norm_*: the p-norm (p > 0, or INFINITY for the max-norm),
 * accumulated in double in a fixed order.
 * crnn_scale_*: multiplies every element by factor.
 * crnn_clip_value_*: clamps to [-clip, clip]; NaN stays NaN.
 */
double crnn_total_norm_f32(int64_t n, const float *const *arrays,
                           const int64_t *sizes, double p);
double crnn_total_norm_f64(int64_t n, const double *const *arrays,
                           const int64_t *sizes, double p);
void crnn_scale_f32(int64_t n, float *const *arrays, const int64_t *sizes,
                    float factor);
void crnn_scale_f64(int64_t n, double *const *arrays, const int64_t *sizes,
                    double factor);
void crnn_clip_value_f32(int64_t n, float *const *arrays,
                         const int64_t *sizes, float clip);
void crnn_clip_value_f64(int64_t n, double *const *arrays,
                         const int64_t *sizes, double clip);

/*
 * Jordan network (the previous output is fed back):
 *   h_t = f(x_t W_ih^T + b_ih + y_{t-1} W_hy^T + b_hh),  y_t = g(h_t W_ho^T + b_ho)
 * with w_ih (H, In), w_hy (H, O), w_ho (O, H); f an activation code,
 * g one or -1 for the identity (CRNN_IDENTITY). The forward writes out
 * (T, B, O), y_n (B, O) and, for the backward, hidden (T, B, H). The
 * backward writes dx, dy0, dw_ih, dw_hy, dw_ho and, when not NULL, db (H,:
 * the gradient of b_ih and of b_hh) and db_ho (O,).
 */
int crnn_jordan_forward_f32(int64_t T, int64_t B, int64_t In, int64_t H, int64_t O,
                            const float *x, const float *y0, const float *w_ih,
                            const float *w_hy, const float *w_ho, const float *b_ih,
                            const float *b_hh, const float *b_ho, const int64_t *lengths,
                            int f, int g, float *out, float *y_n, float *hidden);
int crnn_jordan_forward_f64(int64_t T, int64_t B, int64_t In, int64_t H, int64_t O,
                            const double *x, const double *y0, const double *w_ih,
                            const double *w_hy, const double *w_ho, const double *b_ih,
                            const double *b_hh, const double *b_ho, const int64_t *lengths,
                            int f, int g, double *out, double *y_n, double *hidden);
int crnn_jordan_backward_f32(int64_t T, int64_t B, int64_t In, int64_t H, int64_t O,
                             const float *x, const float *y0, const float *w_ih,
                             const float *w_hy, const float *w_ho, const int64_t *lengths,
                             int f, int g, const float *out, const float *hidden,
                             const float *dout, const float *dy_n, float *dx, float *dy0,
                             float *dw_ih, float *dw_hy, float *dw_ho, float *db,
                             float *db_ho);
int crnn_jordan_backward_f64(int64_t T, int64_t B, int64_t In, int64_t H, int64_t O,
                             const double *x, const double *y0, const double *w_ih,
                             const double *w_hy, const double *w_ho, const int64_t *lengths,
                             int f, int g, const double *out, const double *hidden,
                             const double *dout, const double *dy_n, double *dx, double *dy0,
                             double *dw_ih, double *dw_hy, double *dw_ho, double *db,
                             double *db_ho);

#ifdef __cplusplus
}
#endif

#endif /* CRNN_LEGACY_H */
