# cython: language_level=3
"""A tiny Cython extension that calls crnn's kernels through libcrnn.pxd and
the capsule table (crnn_api.h), with the GIL released: what another
library's Cython code would do. Built by tests/test_c_api.py against the
installed crnn (include_dirs=[crnn.get_include()])."""
from libc.stdint cimport int64_t
from libc.string cimport memset

from crnn.libcrnn cimport *

cdef const crnn_api *api = crnn_import_api()


cdef int cell_code(str name) except -1:
    cdef crnn_cell_info info
    cdef int c = 0
    while api.cell_info_get(c, &info) == CRNN_OK:
        if info.name.decode() == name:
            return c
        c += 1
    raise ValueError(f"unknown cell {name}")


def gru_forward(const double[:, :, ::1] x, const double[:, ::1] w_ih,
                const double[:, ::1] w_hh, const double[::1] b_ih, const double[::1] b_hh,
                double[:, :, ::1] out, double[:, ::1] h_n, double[:, :, ::1] gates,
                double[:, :, ::1] hn):
    """A GRU layer's forward (float64, no initial state); the status."""
    cdef crnn_layer layer
    cdef crnn_weights w
    cdef crnn_sequence s
    memset(&w, 0, sizeof(w))
    memset(&s, 0, sizeof(s))
    layer.cell = cell_code("gru")
    layer.dtype = CRNN_F64
    layer.activation = 0
    layer.output_activation = 0
    layer.input_size = x.shape[2]
    layer.hidden_size = h_n.shape[1]
    layer.output_size = 0
    w.w_ih, w.w_hh, w.b_ih, w.b_hh = &w_ih[0, 0], &w_hh[0, 0], &b_ih[0], &b_hh[0]
    s.steps, s.batch = x.shape[0], x.shape[1]
    s.x = &x[0, 0, 0]
    s.out = &out[0, 0, 0]
    s.state_n[0] = &h_n[0, 0]
    s.saved[0], s.saved[1] = &gates[0, 0, 0], &hn[0, 0, 0]
    cdef int status
    with nogil:
        status = api.forward(&layer, &w, &s)
    return status


def scale(double[::1] a, double factor):
    """crnn_scale on one float64 array, in place; the status."""
    cdef void *ptrs[1]
    cdef int64_t sizes[1]
    cdef int status
    ptrs[0] = &a[0]
    sizes[0] = a.shape[0]
    with nogil:
        status = api.scale(CRNN_F64, 1, ptrs, sizes, factor)
    return status


def version():
    return api.version, api.size, CRNN_API_VERSION
