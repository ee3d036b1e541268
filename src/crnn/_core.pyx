# cython: language_level=3
"""Thin binding to the C kernels (csrc/crnn.h).

Callers (crnn.functional) pass arrays that are already validated and
normalised: one float dtype, C-contiguous, native byte order, correct shapes,
and outputs allocated. This module only takes their pointers, releases the GIL
for the whole C call, and turns C status codes into Python exceptions. No
maths here.
"""
cimport numpy as cnp
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

cnp.import_array()

cdef extern from "legacy.h" nogil:
    enum:
        CRNN_OK
        CRNN_ERR_NOMEM
        CRNN_ERR_INVALID
    int crnn_rnn_forward_f32(int64_t T, int64_t B, int64_t In, int64_t H,
                             const float *x, const float *h0, const float *w_ih,
                             const float *w_hh, const float *b_ih, const float *b_hh,
                             const int64_t *lengths, int activation, float *out, float *h_n)
    int crnn_rnn_forward_f64(int64_t T, int64_t B, int64_t In, int64_t H,
                             const double *x, const double *h0, const double *w_ih,
                             const double *w_hh, const double *b_ih, const double *b_hh,
                             const int64_t *lengths, int activation, double *out, double *h_n)
    int crnn_rnn_backward_f32(int64_t T, int64_t B, int64_t In, int64_t H,
                              const float *x, const float *h0, const float *w_ih,
                              const float *w_hh, const int64_t *lengths, int activation,
                              const float *out, const float *dout, const float *dh_n,
                              float *dx, float *dh0, float *dw_ih, float *dw_hh, float *db)
    int crnn_rnn_backward_f64(int64_t T, int64_t B, int64_t In, int64_t H,
                              const double *x, const double *h0, const double *w_ih,
                              const double *w_hh, const int64_t *lengths, int activation,
                              const double *out, const double *dout, const double *dh_n,
                              double *dx, double *dh0, double *dw_ih, double *dw_hh, double *db)
    int crnn_lstm_forward_f32(int64_t T, int64_t B, int64_t In, int64_t H, const float *x,
                              const float *h0, const float *c0, const float *w_ih,
                              const float *w_hh, const float *b_ih, const float *b_hh,
                              const int64_t *lengths, float *out, float *h_n, float *c_n,
                              float *gates, float *cells)
    int crnn_lstm_forward_f64(int64_t T, int64_t B, int64_t In, int64_t H, const double *x,
                              const double *h0, const double *c0, const double *w_ih,
                              const double *w_hh, const double *b_ih, const double *b_hh,
                              const int64_t *lengths, double *out, double *h_n, double *c_n,
                              double *gates, double *cells)
    int crnn_lstm_backward_f32(int64_t T, int64_t B, int64_t In, int64_t H, const float *x,
                               const float *h0, const float *c0, const float *w_ih,
                               const float *w_hh, const int64_t *lengths, const float *out,
                               const float *gates, const float *cells, const float *dout,
                               const float *dh_n, const float *dc_n, float *dx, float *dh0,
                               float *dc0, float *dw_ih, float *dw_hh, float *db)
    int crnn_lstm_backward_f64(int64_t T, int64_t B, int64_t In, int64_t H, const double *x,
                               const double *h0, const double *c0, const double *w_ih,
                               const double *w_hh, const int64_t *lengths, const double *out,
                               const double *gates, const double *cells, const double *dout,
                               const double *dh_n, const double *dc_n, double *dx, double *dh0,
                               double *dc0, double *dw_ih, double *dw_hh, double *db)
    int crnn_gru_forward_f32(int64_t T, int64_t B, int64_t In, int64_t H, const float *x,
                             const float *h0, const float *w_ih, const float *w_hh,
                             const float *b_ih, const float *b_hh, const int64_t *lengths,
                             float *out, float *h_n, float *gates, float *hn)
    int crnn_gru_forward_f64(int64_t T, int64_t B, int64_t In, int64_t H, const double *x,
                             const double *h0, const double *w_ih, const double *w_hh,
                             const double *b_ih, const double *b_hh, const int64_t *lengths,
                             double *out, double *h_n, double *gates, double *hn)
    int crnn_gru_backward_f32(int64_t T, int64_t B, int64_t In, int64_t H, const float *x,
                              const float *h0, const float *w_ih, const float *w_hh,
                              const int64_t *lengths, const float *out, const float *gates,
                              const float *hn, const float *dout, const float *dh_n, float *dx,
                              float *dh0, float *dw_ih, float *dw_hh, float *db_ih, float *db_hh)
    int crnn_gru_backward_f64(int64_t T, int64_t B, int64_t In, int64_t H, const double *x,
                              const double *h0, const double *w_ih, const double *w_hh,
                              const int64_t *lengths, const double *out, const double *gates,
                              const double *hn, const double *dout, const double *dh_n,
                              double *dx, double *dh0, double *dw_ih, double *dw_hh,
                              double *db_ih, double *db_hh)
    int crnn_jordan_forward_f32(int64_t T, int64_t B, int64_t In, int64_t H, int64_t O,
                                const float *x, const float *y0, const float *w_ih,
                                const float *w_hy, const float *w_ho, const float *b_ih,
                                const float *b_hh, const float *b_ho, const int64_t *lengths,
                                int f, int g, float *out, float *y_n, float *hidden)
    int crnn_jordan_forward_f64(int64_t T, int64_t B, int64_t In, int64_t H, int64_t O,
                                const double *x, const double *y0, const double *w_ih,
                                const double *w_hy, const double *w_ho, const double *b_ih,
                                const double *b_hh, const double *b_ho, const int64_t *lengths,
                                int f, int g, double *out, double *y_n, double *hidden)
    int crnn_jordan_backward_f32(int64_t T, int64_t B, int64_t In, int64_t H, int64_t O,
                                 const float *x, const float *y0, const float *w_ih,
                                 const float *w_hy, const float *w_ho, const int64_t *lengths,
                                 int f, int g, const float *out, const float *hidden,
                                 const float *dout, const float *dy_n, float *dx, float *dy0,
                                 float *dw_ih, float *dw_hy, float *dw_ho, float *db,
                                 float *db_ho)
    int crnn_jordan_backward_f64(int64_t T, int64_t B, int64_t In, int64_t H, int64_t O,
                                 const double *x, const double *y0, const double *w_ih,
                                 const double *w_hy, const double *w_ho, const int64_t *lengths,
                                 int f, int g, const double *out, const double *hidden,
                                 const double *dout, const double *dy_n, double *dx,
                                 double *dy0, double *dw_ih, double *dw_hy, double *dw_ho,
                                 double *db, double *db_ho)
    double crnn_total_norm_f32(int64_t n, const float *const *arrays, const int64_t *sizes, double p)
    double crnn_total_norm_f64(int64_t n, const double *const *arrays, const int64_t *sizes, double p)
    void crnn_scale_f32(int64_t n, float *const *arrays, const int64_t *sizes, float factor)
    void crnn_scale_f64(int64_t n, double *const *arrays, const int64_t *sizes, double factor)
    void crnn_clip_value_f32(int64_t n, float *const *arrays, const int64_t *sizes, float clip)
    void crnn_clip_value_f64(int64_t n, double *const *arrays, const int64_t *sizes, double clip)
    void crnn_set_num_threads(int n)
    int crnn_get_num_threads()
    int crnn_have_openmp()
    int crnn_set_isa(int isa)
    int crnn_get_isa()
    int crnn_isa_supported(int isa)
    const char *crnn_isa_name(int isa)
    const char *crnn_compiler()

# Activation codes of crnn.h, by name.
ACTIVATIONS = {"tanh": 0, "relu": 1, "sigmoid": 2}
# Instruction-set codes of crnn.h, by name.
ISAS = {"auto": -1, "generic": 0, "avx2": 1, "avx512": 2}


cdef inline void *_ptr(object a):
    """The data pointer of an ndarray, or NULL for None."""
    if a is None:
        return NULL
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef int _raise_for(int status) except -1:
    if status == CRNN_OK:
        return 0
    if status == CRNN_ERR_NOMEM:
        raise MemoryError("crnn: not enough memory for the kernel's workspace")
    raise ValueError(f"crnn: the C kernel rejected the sizes or arguments (status {status})")


def rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, str nonlinearity, out, h_n):
    """Fills out (T, B, H) and h_n (B, H)."""
    cdef int64_t T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_ih.shape[0]
    cdef int act = ACTIVATIONS[nonlinearity]
    cdef bint f32 = x.dtype.itemsize == 4
    cdef void *px = _ptr(x)
    cdef void *ph0 = _ptr(h0)
    cdef void *pwih = _ptr(w_ih)
    cdef void *pwhh = _ptr(w_hh)
    cdef void *pbih = _ptr(b_ih)
    cdef void *pbhh = _ptr(b_hh)
    cdef const int64_t *plen = <const int64_t *>_ptr(lengths)
    cdef void *pout = _ptr(out)
    cdef void *phn = _ptr(h_n)
    cdef int status
    with nogil:
        if f32:
            status = crnn_rnn_forward_f32(T, B, I, H, <float *>px, <float *>ph0, <float *>pwih,
                                          <float *>pwhh, <float *>pbih, <float *>pbhh, plen, act,
                                          <float *>pout, <float *>phn)
        else:
            status = crnn_rnn_forward_f64(T, B, I, H, <double *>px, <double *>ph0, <double *>pwih,
                                          <double *>pwhh, <double *>pbih, <double *>pbhh, plen, act,
                                          <double *>pout, <double *>phn)
    _raise_for(status)


def rnn_backward(x, h0, w_ih, w_hh, lengths, str nonlinearity, out, dout, dh_n,
                 dx, dh0, dw_ih, dw_hh, db):
    """Fills dx, dh0, dw_ih, dw_hh and (unless None) db."""
    cdef int64_t T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_ih.shape[0]
    cdef int act = ACTIVATIONS[nonlinearity]
    cdef bint f32 = x.dtype.itemsize == 4
    cdef void *px = _ptr(x)
    cdef void *ph0 = _ptr(h0)
    cdef void *pwih = _ptr(w_ih)
    cdef void *pwhh = _ptr(w_hh)
    cdef const int64_t *plen = <const int64_t *>_ptr(lengths)
    cdef void *pout = _ptr(out)
    cdef void *pdout = _ptr(dout)
    cdef void *pdhn = _ptr(dh_n)
    cdef void *pdx = _ptr(dx)
    cdef void *pdh0 = _ptr(dh0)
    cdef void *pdwih = _ptr(dw_ih)
    cdef void *pdwhh = _ptr(dw_hh)
    cdef void *pdb = _ptr(db)
    cdef int status
    with nogil:
        if f32:
            status = crnn_rnn_backward_f32(T, B, I, H, <float *>px, <float *>ph0, <float *>pwih,
                                           <float *>pwhh, plen, act, <float *>pout, <float *>pdout,
                                           <float *>pdhn, <float *>pdx, <float *>pdh0,
                                           <float *>pdwih, <float *>pdwhh, <float *>pdb)
        else:
            status = crnn_rnn_backward_f64(T, B, I, H, <double *>px, <double *>ph0, <double *>pwih,
                                           <double *>pwhh, plen, act, <double *>pout, <double *>pdout,
                                           <double *>pdhn, <double *>pdx, <double *>pdh0,
                                           <double *>pdwih, <double *>pdwhh, <double *>pdb)
    _raise_for(status)


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, out, h_n, c_n, gates, cells):
    """Fills out, h_n, c_n and the cache arrays gates (T, B, 4H) and cells."""
    cdef int64_t T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_hh.shape[1]
    cdef bint f32 = x.dtype.itemsize == 4
    cdef void *p[13]
    for i, a in enumerate((x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, out, h_n, c_n, gates, cells)):
        p[i] = _ptr(a)
    cdef int status
    with nogil:
        if f32:
            status = crnn_lstm_forward_f32(T, B, I, H, <float *>p[0], <float *>p[1], <float *>p[2],
                                           <float *>p[3], <float *>p[4], <float *>p[5], <float *>p[6],
                                           <int64_t *>p[7], <float *>p[8], <float *>p[9],
                                           <float *>p[10], <float *>p[11], <float *>p[12])
        else:
            status = crnn_lstm_forward_f64(T, B, I, H, <double *>p[0], <double *>p[1], <double *>p[2],
                                           <double *>p[3], <double *>p[4], <double *>p[5], <double *>p[6],
                                           <int64_t *>p[7], <double *>p[8], <double *>p[9],
                                           <double *>p[10], <double *>p[11], <double *>p[12])
    _raise_for(status)


def lstm_backward(x, h0, c0, w_ih, w_hh, lengths, out, gates, cells, dout, dh_n, dc_n,
                  dx, dh0, dc0, dw_ih, dw_hh, db):
    """Fills dx, dh0, dc0, dw_ih, dw_hh and (unless None) db."""
    cdef int64_t T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_hh.shape[1]
    cdef bint f32 = x.dtype.itemsize == 4
    cdef void *p[18]
    for i, a in enumerate((x, h0, c0, w_ih, w_hh, lengths, out, gates, cells, dout, dh_n, dc_n,
                           dx, dh0, dc0, dw_ih, dw_hh, db)):
        p[i] = _ptr(a)
    cdef int status
    with nogil:
        if f32:
            status = crnn_lstm_backward_f32(T, B, I, H, <float *>p[0], <float *>p[1], <float *>p[2],
                                            <float *>p[3], <float *>p[4], <int64_t *>p[5],
                                            <float *>p[6], <float *>p[7], <float *>p[8], <float *>p[9],
                                            <float *>p[10], <float *>p[11], <float *>p[12],
                                            <float *>p[13], <float *>p[14], <float *>p[15],
                                            <float *>p[16], <float *>p[17])
        else:
            status = crnn_lstm_backward_f64(T, B, I, H, <double *>p[0], <double *>p[1], <double *>p[2],
                                            <double *>p[3], <double *>p[4], <int64_t *>p[5],
                                            <double *>p[6], <double *>p[7], <double *>p[8], <double *>p[9],
                                            <double *>p[10], <double *>p[11], <double *>p[12],
                                            <double *>p[13], <double *>p[14], <double *>p[15],
                                            <double *>p[16], <double *>p[17])
    _raise_for(status)


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, out, h_n, gates, hn):
    """Fills out, h_n and the cache arrays gates (T, B, 3H) and hn."""
    cdef int64_t T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_hh.shape[1]
    cdef bint f32 = x.dtype.itemsize == 4
    cdef void *p[11]
    for i, a in enumerate((x, h0, w_ih, w_hh, b_ih, b_hh, lengths, out, h_n, gates, hn)):
        p[i] = _ptr(a)
    cdef int status
    with nogil:
        if f32:
            status = crnn_gru_forward_f32(T, B, I, H, <float *>p[0], <float *>p[1], <float *>p[2],
                                          <float *>p[3], <float *>p[4], <float *>p[5],
                                          <int64_t *>p[6], <float *>p[7], <float *>p[8],
                                          <float *>p[9], <float *>p[10])
        else:
            status = crnn_gru_forward_f64(T, B, I, H, <double *>p[0], <double *>p[1], <double *>p[2],
                                          <double *>p[3], <double *>p[4], <double *>p[5],
                                          <int64_t *>p[6], <double *>p[7], <double *>p[8],
                                          <double *>p[9], <double *>p[10])
    _raise_for(status)


def gru_backward(x, h0, w_ih, w_hh, lengths, out, gates, hn, dout, dh_n,
                 dx, dh0, dw_ih, dw_hh, db_ih, db_hh):
    """Fills dx, dh0, dw_ih, dw_hh and (unless None) db_ih, db_hh."""
    cdef int64_t T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_hh.shape[1]
    cdef bint f32 = x.dtype.itemsize == 4
    cdef void *p[16]
    for i, a in enumerate((x, h0, w_ih, w_hh, lengths, out, gates, hn, dout, dh_n,
                           dx, dh0, dw_ih, dw_hh, db_ih, db_hh)):
        p[i] = _ptr(a)
    cdef int status
    with nogil:
        if f32:
            status = crnn_gru_backward_f32(T, B, I, H, <float *>p[0], <float *>p[1], <float *>p[2],
                                           <float *>p[3], <int64_t *>p[4], <float *>p[5],
                                           <float *>p[6], <float *>p[7], <float *>p[8], <float *>p[9],
                                           <float *>p[10], <float *>p[11], <float *>p[12],
                                           <float *>p[13], <float *>p[14], <float *>p[15])
        else:
            status = crnn_gru_backward_f64(T, B, I, H, <double *>p[0], <double *>p[1], <double *>p[2],
                                           <double *>p[3], <int64_t *>p[4], <double *>p[5],
                                           <double *>p[6], <double *>p[7], <double *>p[8], <double *>p[9],
                                           <double *>p[10], <double *>p[11], <double *>p[12],
                                           <double *>p[13], <double *>p[14], <double *>p[15])
    _raise_for(status)


cdef class _PointerList:
    """C arrays of data pointers and sizes for a list of ndarrays."""
    cdef void **ptrs
    cdef int64_t *sizes
    cdef int64_t n

    def __cinit__(self, list arrays):
        self.n = len(arrays)
        self.ptrs = <void **>malloc(sizeof(void *) * (self.n + 1))
        self.sizes = <int64_t *>malloc(sizeof(int64_t) * (self.n + 1))
        if self.ptrs == NULL or self.sizes == NULL:
            raise MemoryError("crnn: not enough memory for the array list")
        for i, a in enumerate(arrays):
            self.ptrs[i] = _ptr(a)
            self.sizes[i] = a.size

    def __dealloc__(self):
        free(self.ptrs)
        free(self.sizes)


def total_norm(list arrays, double p):
    """The p-norm of the arrays as if concatenated (all one dtype)."""
    cdef _PointerList pl = _PointerList(arrays)
    cdef bint f32 = arrays[0].dtype.itemsize == 4
    cdef double total
    with nogil:
        if f32:
            total = crnn_total_norm_f32(pl.n, <const float *const *>pl.ptrs, pl.sizes, p)
        else:
            total = crnn_total_norm_f64(pl.n, <const double *const *>pl.ptrs, pl.sizes, p)
    return total


def scale(list arrays, double factor):
    """Multiplies every array in place by factor (in the arrays' dtype)."""
    cdef _PointerList pl = _PointerList(arrays)
    cdef bint f32 = arrays[0].dtype.itemsize == 4
    with nogil:
        if f32:
            crnn_scale_f32(pl.n, <float *const *>pl.ptrs, pl.sizes, <float>factor)
        else:
            crnn_scale_f64(pl.n, <double *const *>pl.ptrs, pl.sizes, factor)


def clip_value(list arrays, double clip):
    """Clamps every array in place to [-clip, clip]."""
    cdef _PointerList pl = _PointerList(arrays)
    cdef bint f32 = arrays[0].dtype.itemsize == 4
    with nogil:
        if f32:
            crnn_clip_value_f32(pl.n, <float *const *>pl.ptrs, pl.sizes, <float>clip)
        else:
            crnn_clip_value_f64(pl.n, <double *const *>pl.ptrs, pl.sizes, clip)


def set_num_threads(int n):
    crnn_set_num_threads(n)


def get_num_threads():
    return crnn_get_num_threads()


def have_openmp():
    return bool(crnn_have_openmp())


def set_isa(str name):
    """Selects the kernel build by name; False when the CPU or build lacks it."""
    return crnn_set_isa(ISAS[name]) == CRNN_OK


def get_isa():
    return crnn_isa_name(crnn_get_isa()).decode()


def isa_supported(str name):
    return bool(crnn_isa_supported(ISAS[name]))


def compiler():
    return crnn_compiler().decode()


def jordan_forward(x, y0, w_ih, w_hy, w_ho, b_ih, b_hh, b_ho, lengths, str nonlinearity,
                   str output_nonlinearity, out, y_n, hidden):
    """Fills out (T, B, O), y_n (B, O) and the cache array hidden (T, B, H)."""
    cdef int64_t T = x.shape[0], B = x.shape[1], I = x.shape[2]
    cdef int64_t O = w_ho.shape[0], H = w_ho.shape[1]
    cdef int f = ACTIVATIONS[nonlinearity]
    cdef int g = -1 if output_nonlinearity == "identity" else ACTIVATIONS[output_nonlinearity]
    cdef bint f32 = x.dtype.itemsize == 4
    cdef void *p[14]
    for i, a in enumerate((x, y0, w_ih, w_hy, w_ho, b_ih, b_hh, b_ho, lengths, out, y_n, hidden)):
        p[i] = _ptr(a)
    cdef int status
    with nogil:
        if f32:
            status = crnn_jordan_forward_f32(T, B, I, H, O, <float *>p[0], <float *>p[1],
                                             <float *>p[2], <float *>p[3], <float *>p[4],
                                             <float *>p[5], <float *>p[6], <float *>p[7],
                                             <int64_t *>p[8], f, g, <float *>p[9],
                                             <float *>p[10], <float *>p[11])
        else:
            status = crnn_jordan_forward_f64(T, B, I, H, O, <double *>p[0], <double *>p[1],
                                             <double *>p[2], <double *>p[3], <double *>p[4],
                                             <double *>p[5], <double *>p[6], <double *>p[7],
                                             <int64_t *>p[8], f, g, <double *>p[9],
                                             <double *>p[10], <double *>p[11])
    _raise_for(status)


def jordan_backward(x, y0, w_ih, w_hy, w_ho, lengths, str nonlinearity, str output_nonlinearity,
                    out, hidden, dout, dy_n, dx, dy0, dw_ih, dw_hy, dw_ho, db, db_ho):
    """Fills dx, dy0, dw_ih, dw_hy, dw_ho and (unless None) db, db_ho."""
    cdef int64_t T = x.shape[0], B = x.shape[1], I = x.shape[2]
    cdef int64_t O = w_ho.shape[0], H = w_ho.shape[1]
    cdef int f = ACTIVATIONS[nonlinearity]
    cdef int g = -1 if output_nonlinearity == "identity" else ACTIVATIONS[output_nonlinearity]
    cdef bint f32 = x.dtype.itemsize == 4
    cdef void *p[17]
    for i, a in enumerate((x, y0, w_ih, w_hy, w_ho, lengths, out, hidden, dout, dy_n,
                           dx, dy0, dw_ih, dw_hy, dw_ho, db, db_ho)):
        p[i] = _ptr(a)
    cdef int status
    with nogil:
        if f32:
            status = crnn_jordan_backward_f32(T, B, I, H, O, <float *>p[0], <float *>p[1],
                                              <float *>p[2], <float *>p[3], <float *>p[4],
                                              <int64_t *>p[5], f, g, <float *>p[6],
                                              <float *>p[7], <float *>p[8], <float *>p[9],
                                              <float *>p[10], <float *>p[11], <float *>p[12],
                                              <float *>p[13], <float *>p[14], <float *>p[15],
                                              <float *>p[16])
        else:
            status = crnn_jordan_backward_f64(T, B, I, H, O, <double *>p[0], <double *>p[1],
                                              <double *>p[2], <double *>p[3], <double *>p[4],
                                              <int64_t *>p[5], f, g, <double *>p[6],
                                              <double *>p[7], <double *>p[8], <double *>p[9],
                                              <double *>p[10], <double *>p[11], <double *>p[12],
                                              <double *>p[13], <double *>p[14], <double *>p[15],
                                              <double *>p[16])
    _raise_for(status)
