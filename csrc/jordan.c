/*
 * Jordan network: the previous *output* y_{t-1}, not h_{t-1}, is fed back.
 *
 *   h_t = f(x_t W_ih^T + b_ih + y_{t-1} W_hy^T + b_hh)
 *   y_t = g(h_t W_ho^T + b_ho)
 *
 * A portable scalar kernel on one thread (no vector or OpenMP path yet);
 * see crnn.h for the interface and crnn.reference.jordan_forward for the
 * specification. Rows past their length output zeros and hold y.
 */
#include <math.h>
#include <string.h>

#include "crnn.h"
#include "internal.h"

#define JORDAN_IMPL(T_, S_, EXP_)                                                               \
    static inline T_ jordan_act_##S_(int a, T_ v)                                               \
    {                                                                                            \
        if (a == CRNN_TANH)                                                                      \
            return (T_)tanh((double)v);                                                          \
        if (a == CRNN_RELU)                                                                      \
            return v > 0 ? v : (T_)0;                                                            \
        if (a == CRNN_SIGMOID) {                                                                 \
            T_ z = EXP_(-(v >= 0 ? v : -v));                                                     \
            return v >= 0 ? (T_)1 / ((T_)1 + z) : z / ((T_)1 + z);                              \
        }                                                                                        \
        return v; /* identity */                                                                 \
    }                                                                                            \
                                                                                                 \
    static inline T_ jordan_grad_##S_(int a, T_ y)                                              \
    {                                                                                            \
        if (a == CRNN_TANH)                                                                      \
            return (T_)1 - y * y;                                                                \
        if (a == CRNN_RELU)                                                                      \
            return y > 0 ? (T_)1 : (T_)0;                                                        \
        if (a == CRNN_SIGMOID)                                                                   \
            return y * ((T_)1 - y);                                                              \
        return (T_)1;                                                                            \
    }                                                                                            \
                                                                                                 \
    int crnn_jordan_forward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, int64_t O,        \
                                 const T_ *x, const T_ *y0, const T_ *w_ih, const T_ *w_hy,     \
                                 const T_ *w_ho, const T_ *b_ih, const T_ *b_hh,                \
                                 const T_ *b_ho, const int64_t *lengths, int f, int g,          \
                                 T_ *out, T_ *y_n, T_ *hidden)                                  \
    {                                                                                            \
        if (T < 0 || B < 0 || In < 0 || H < 0 || O < 0 || f < 0 || f > 2 || g < -1 || g > 2)    \
            return CRNN_ERR_INVALID;                                                             \
        for (int64_t b = 0; b < B; b++) {                                                        \
            T_ *y = y_n + b * O; /* the running output y_{t-1} */                                \
            for (int64_t k = 0; k < O; k++)                                                      \
                y[k] = y0 ? y0[b * O + k] : (T_)0;                                               \
            int64_t len = lengths ? lengths[b] : T;                                              \
            for (int64_t t = 0; t < T; t++) {                                                    \
                T_ *h = hidden + (t * B + b) * H;                                                \
                T_ *o = out + (t * B + b) * O;                                                   \
                if (t >= len) {                                                                  \
                    memset(h, 0, (size_t)H * sizeof(T_));                                        \
                    memset(o, 0, (size_t)O * sizeof(T_));                                        \
                    continue;                                                                    \
                }                                                                                \
                const T_ *xt = x + (t * B + b) * In;                                             \
                for (int64_t j = 0; j < H; j++) {                                                \
                    T_ acc = 0;                                                                  \
                    for (int64_t i = 0; i < In; i++)                                             \
                        acc += xt[i] * w_ih[j * In + i];                                         \
                    T_ rec = 0;                                                                  \
                    for (int64_t k = 0; k < O; k++)                                              \
                        rec += y[k] * w_hy[j * O + k];                                           \
                    acc += rec;                                                                  \
                    if (b_ih)                                                                    \
                        acc += b_ih[j];                                                          \
                    if (b_hh)                                                                    \
                        acc += b_hh[j];                                                          \
                    h[j] = jordan_act_##S_(f, acc);                                              \
                }                                                                                \
                for (int64_t k = 0; k < O; k++) {                                                \
                    T_ acc = 0;                                                                  \
                    for (int64_t j = 0; j < H; j++)                                              \
                        acc += h[j] * w_ho[k * H + j];                                           \
                    if (b_ho)                                                                    \
                        acc += b_ho[k];                                                          \
                    o[k] = jordan_act_##S_(g, acc);                                              \
                }                                                                                \
                memcpy(y, o, (size_t)O * sizeof(T_));                                            \
            }                                                                                    \
        }                                                                                        \
        return CRNN_OK;                                                                          \
    }                                                                                            \
                                                                                                 \
    int crnn_jordan_backward_##S_(int64_t T, int64_t B, int64_t In, int64_t H, int64_t O,       \
                                  const T_ *x, const T_ *y0, const T_ *w_ih, const T_ *w_hy,    \
                                  const T_ *w_ho, const int64_t *lengths, int f, int g,         \
                                  const T_ *out, const T_ *hidden, const T_ *dout,              \
                                  const T_ *dy_n, T_ *dx, T_ *dy0, T_ *dw_ih, T_ *dw_hy,        \
                                  T_ *dw_ho, T_ *db, T_ *db_ho)                                 \
    {                                                                                            \
        if (T < 0 || B < 0 || In < 0 || H < 0 || O < 0 || f < 0 || f > 2 || g < -1 || g > 2)    \
            return CRNN_ERR_INVALID;                                                             \
        T_ *work = (T_ *)crnn_alloc((size_t)(2 * O + H + 1) * sizeof(T_));                      \
        if (!work)                                                                               \
            return CRNN_ERR_NOMEM;                                                               \
        T_ *gy = work, *dz = work + O, *da = work + 2 * O;                                       \
        memset(dw_ih, 0, (size_t)(H * In) * sizeof(T_));                                         \
        memset(dw_hy, 0, (size_t)(H * O) * sizeof(T_));                                          \
        memset(dw_ho, 0, (size_t)(O * H) * sizeof(T_));                                          \
        if (db)                                                                                  \
            memset(db, 0, (size_t)H * sizeof(T_));                                               \
        if (db_ho)                                                                               \
            memset(db_ho, 0, (size_t)O * sizeof(T_));                                            \
        for (int64_t b = 0; b < B; b++) {                                                        \
            T_ *carry = dy0 + b * O; /* dL/dy_t from the later steps */                          \
            for (int64_t k = 0; k < O; k++)                                                      \
                carry[k] = dy_n ? dy_n[b * O + k] : (T_)0;                                       \
            int64_t len = lengths ? lengths[b] : T;                                              \
            for (int64_t t = T - 1; t >= len; t--)                                               \
                memset(dx + (t * B + b) * In, 0, (size_t)In * sizeof(T_));                       \
            for (int64_t t = (len < T ? len : T) - 1; t >= 0; t--) {                             \
                const T_ *h = hidden + (t * B + b) * H;                                          \
                const T_ *yt = out + (t * B + b) * O;                                            \
                const T_ *xt = x + (t * B + b) * In;                                             \
                const T_ *yp = t > 0 ? out + ((t - 1) * B + b) * O : (y0 ? y0 + b * O : NULL);   \
                for (int64_t k = 0; k < O; k++) {                                                \
                    gy[k] = carry[k] + (dout ? dout[(t * B + b) * O + k] : (T_)0);               \
                    dz[k] = gy[k] * jordan_grad_##S_(g, yt[k]);                                  \
                    if (db_ho)                                                                   \
                        db_ho[k] += dz[k];                                                       \
                    for (int64_t j = 0; j < H; j++)                                              \
                        dw_ho[k * H + j] += dz[k] * h[j];                                        \
                }                                                                                \
                for (int64_t j = 0; j < H; j++) {                                                \
                    T_ acc = 0;                                                                  \
                    for (int64_t k = 0; k < O; k++)                                              \
                        acc += dz[k] * w_ho[k * H + j];                                          \
                    da[j] = acc * jordan_grad_##S_(f, h[j]);                                     \
                    if (db)                                                                      \
                        db[j] += da[j];                                                          \
                    for (int64_t i = 0; i < In; i++)                                             \
                        dw_ih[j * In + i] += da[j] * xt[i];                                      \
                    if (yp)                                                                      \
                        for (int64_t k = 0; k < O; k++)                                          \
                            dw_hy[j * O + k] += da[j] * yp[k];                                   \
                }                                                                                \
                T_ *dxt = dx + (t * B + b) * In;                                                 \
                for (int64_t i = 0; i < In; i++) {                                               \
                    T_ acc = 0;                                                                  \
                    for (int64_t j = 0; j < H; j++)                                              \
                        acc += da[j] * w_ih[j * In + i];                                         \
                    dxt[i] = acc;                                                                \
                }                                                                                \
                for (int64_t k = 0; k < O; k++) {                                                \
                    T_ acc = 0;                                                                  \
                    for (int64_t j = 0; j < H; j++)                                              \
                        acc += da[j] * w_hy[j * O + k];                                          \
                    carry[k] = acc;                                                              \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
        crnn_free(work);                                                                         \
        return CRNN_OK;                                                                          \
    }

JORDAN_IMPL(float, f32, expf)
JORDAN_IMPL(double, f64, exp)
