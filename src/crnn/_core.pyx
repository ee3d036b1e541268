# cython: language_level=3
"""Thin binding to the C library (csrc/crnn.h, declared in libcrnn.pxd).

Callers (crnn.functional) pass arrays that are already validated and
normalised: one float dtype, C-contiguous, native byte order, correct shapes,
and outputs allocated. This module only fills the interface's structs with
the arrays' data pointers, releases the GIL for the whole C call, and turns C
status codes into Python exceptions. One code path for every cell and both
dtypes: the element type is a field of the layer, not a second function.
No maths and no checks here.
"""
cimport numpy as cnp
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc

from crnn.libcrnn cimport *

cnp.import_array()


cdef inline void *_data(object a):
    """The data pointer of an ndarray, or NULL for None."""
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


cdef int _raise_for(int status) except -1:
    if status == CRNN_OK:
        return 0
    if status == CRNN_ERR_NOMEM:
        raise MemoryError("crnn: not enough memory for the kernel's workspace")
    if status == CRNN_ERR_STALE:
        raise RuntimeError("crnn: prepared weights packed for another instruction set")
    raise ValueError(f"crnn: the C kernel rejected the sizes or arguments (status {status})")


# -- names of the C library's codes, read from it (crnn_*.def) -----------------

def _cell_info(int cell):
    cdef crnn_cell_info info
    _raise_for(crnn_cell_info_get(cell, &info))
    return {"name": info.name.decode(), "gates": info.gates, "states": info.states,
            "state_is_output": bool(info.state_is_output),
            "saved_gates": tuple(info.saved_gates[k] for k in range(info.saved)),
            "separate_bias_grads": bool(info.separate_bias_grads)}


CELL_INFO = {info["name"]: dict(info, code=code)
             for code, info in ((c, _cell_info(c)) for c in range(CRNN_CELL_COUNT))}
ACTIVATIONS = {crnn_activation_name(code).decode(): code for code in range(CRNN_ACTIVATION_COUNT)}
ISAS = {crnn_isa_name(code).decode(): code for code in range(CRNN_ISA_AUTO, CRNN_ISA_COUNT)}
DTYPES = {"float32": CRNN_F32, "float64": CRNN_F64}
# The dtype code of float32 calls with bfloat16 products (precision="bf16").
F32_BF16 = CRNN_F32_BF16


# -- the recurrent driver -------------------------------------------------------

cdef crnn_layer _layer(tuple layer):
    """(cell, dtype, activation, output_activation, I, H, O) as a crnn_layer."""
    cdef crnn_layer L
    L.cell, L.dtype, L.activation, L.output_activation = layer[0], layer[1], layer[2], layer[3]
    L.input_size, L.hidden_size, L.output_size = layer[4], layer[5], layer[6]
    return L


cdef crnn_weights _weights(tuple w):
    """(w_ih, w_hh, b_ih, b_hh, w_ho, b_ho) arrays (or None) as crnn_weights."""
    cdef crnn_weights W
    W.w_ih, W.w_hh, W.b_ih, W.b_hh = _data(w[0]), _data(w[1]), _data(w[2]), _data(w[3])
    W.w_ho, W.b_ho = _data(w[4]), _data(w[5])
    return W


cdef crnn_sequence _sequence(x, lengths, tuple states0, out, tuple states_n, tuple saved):
    """x: float inputs (T, B, I), or int64 token ids (T, B) (crnn_sequence.ids)."""
    cdef crnn_sequence s
    cdef int k
    cdef bint ids = x.ndim == 2
    s.steps, s.batch = x.shape[0], x.shape[1]
    s.lengths = <const int64_t *>_data(lengths)
    s.x = NULL if ids else _data(x)
    s.ids = <const int64_t *>_data(x) if ids else NULL
    s.out = _data(out)
    for k in range(CRNN_MAX_STATES):
        s.state0[k] = _data(states0[k]) if k < len(states0) else NULL
        s.state_n[k] = _data(states_n[k]) if k < len(states_n) else NULL
    for k in range(CRNN_MAX_SAVED):
        s.saved[k] = _data(saved[k]) if k < len(saved) else NULL
    return s


def forward(tuple layer, tuple weights, x, lengths, tuple states0, out, tuple states_n,
            tuple saved):
    """Runs crnn_forward: fills out, states_n and saved (x: inputs, or ids)."""
    cdef crnn_layer L = _layer(layer)
    cdef crnn_weights W = _weights(weights)
    cdef crnn_sequence s = _sequence(x, lengths, states0, out, states_n, saved)
    cdef int status
    with nogil:
        status = crnn_forward(&L, &W, &s)
    _raise_for(status)


def backward(tuple layer, tuple weights, x, lengths, tuple states0, out, tuple saved,
             dout, tuple dstates_n, dx, tuple dstates0, tuple dweights):
    """Runs crnn_backward: fills dx (None for ids), dstates0 and the dweights
    that are not None."""
    cdef crnn_layer L = _layer(layer)
    cdef crnn_weights W = _weights(weights)
    cdef crnn_sequence s = _sequence(x, lengths, states0, out, (), saved)
    cdef crnn_gradients g
    cdef int k
    g.dout = _data(dout)
    g.dx = _data(dx)
    for k in range(CRNN_MAX_STATES):
        g.dstate_n[k] = _data(dstates_n[k]) if k < len(dstates_n) else NULL
        g.dstate0[k] = _data(dstates0[k]) if k < len(dstates0) else NULL
    g.dw_ih, g.dw_hh, g.db_ih = _data(dweights[0]), _data(dweights[1]), _data(dweights[2])
    g.db_hh, g.dw_ho, g.db_ho = _data(dweights[3]), _data(dweights[4]), _data(dweights[5])
    cdef int status
    with nogil:
        status = crnn_backward(&L, &W, &s, &g)
    _raise_for(status)


# -- prepared weights: steps of a layer stack -------------------------------------

# Bumped by parameters_changed(); a Prepared packed at an older value packs
# its weights again before its next step.
cdef long long _generation = 0


def parameters_changed():
    """Marks every Prepared as out of date (see Prepared.step)."""
    global _generation
    _generation += 1


cdef inline bint _is_array(object a, int type_num):
    """a is an ndarray (not a subclass) of type_num, C-contiguous."""
    return (cnp.PyArray_CheckExact(a) and cnp.PyArray_TYPE(<cnp.ndarray>a) == type_num
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a))


cdef inline bint _overlap(cnp.ndarray a, cnp.ndarray b):
    cdef char *a0 = <char *>cnp.PyArray_DATA(a)
    cdef char *b0 = <char *>cnp.PyArray_DATA(b)
    return a0 < b0 + cnp.PyArray_NBYTES(b) and b0 < a0 + cnp.PyArray_NBYTES(a)


cdef class Prepared:
    """A stack of layers' weights packed once (crnn_prepare), run a step at a
    time (crnn_forward_prepared) with the GIL released.

    Built by crnn.functional (which validates the weights): `layers` holds
    each layer's crnn_layer tuple, `source()` returns each layer's weight
    tuple (the arrays as they are now), `normalize(prepared, x, states, out)`
    checks and converts arguments the fast path does not take as they are
    (raising the errors users see). Packs again from source() when the
    parameters changed (parameters_changed()) or the instruction set did.
    """
    cdef crnn_prepared **layers
    cdef readonly int num_layers
    cdef readonly int num_states
    cdef readonly bint stacked
    cdef readonly int64_t input_size
    cdef readonly tuple widths
    cdef readonly int type_num
    cdef int64_t width[CRNN_MAX_STATES]
    cdef long long generation
    cdef int isa
    cdef int running
    cdef list layer_tuples
    cdef object source
    cdef object normalize

    def __cinit__(self, list layers, object source, object normalize, tuple widths,
                  bint stacked, int type_num):
        cdef int k
        self.num_layers = len(layers)
        self.num_states = len(widths)
        self.layer_tuples = layers
        self.source, self.normalize = source, normalize
        self.widths, self.stacked, self.type_num = widths, stacked, type_num
        self.input_size = layers[0][4]
        for k in range(self.num_states):
            self.width[k] = widths[k]
        self.layers = <crnn_prepared **>calloc(self.num_layers, sizeof(crnn_prepared *))
        if self.layers == NULL:
            raise MemoryError("crnn: not enough memory for the prepared layers")
        self._pack(True)

    def __dealloc__(self):
        cdef int l
        if self.layers != NULL:
            for l in range(self.num_layers):
                crnn_prepared_free(self.layers[l])
            free(self.layers)

    cdef _pack(self, bint new):
        """Packs every layer's current weights (source()) for the ISA in use."""
        cdef crnn_layer L
        cdef crnn_weights W
        cdef int l, status
        if self.running:
            raise RuntimeError("crnn: a Prepared cannot pack its weights while it is stepping")
        weights = self.source()
        generation, isa = _generation, crnn_get_isa()
        for l in range(self.num_layers):
            L = _layer(self.layer_tuples[l])
            W = _weights(weights[l])
            if new:
                status = crnn_prepare(&L, &W, &self.layers[l])
            else:
                status = crnn_prepared_update(self.layers[l], &W)
            _raise_for(status)
        self.generation, self.isa = generation, isa

    def refresh(self):
        """Packs the weights again now (from the arrays source() returns)."""
        self._pack(False)

    cdef bint _shape_is(self, cnp.ndarray a, int64_t B, bint unbatched, int64_t width):
        cdef int nd = cnp.PyArray_NDIM(a), at = 0
        cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(a)
        if nd != 1 + <int>self.stacked + <int>(not unbatched):
            return False
        if self.stacked:
            if dims[0] != self.num_layers:
                return False
            at = 1
        if not unbatched:
            if dims[at] != B:
                return False
            at += 1
        return dims[at] == width

    def step(self, x, states=None, out=None):
        """One step: the new states (a tuple, one array per state), written
        into `out` when given. x is (B, I) or (I,); each state (and out) is
        (num_layers, B, W) for a stack, (B, W) for one layer, without B for
        an unbatched x; states None (or a None item) for zeros."""
        cdef list st = [None] * self.num_states
        cdef list outs = [None] * self.num_states
        cdef int64_t B = self._accept(x, states, out, st, outs)
        cdef int k
        cdef bint unbatched
        if B < 0:
            x, states, out = self.normalize(self, x, states, out)
            B = self._accept(x, states, out, st, outs)
            if B < 0:
                raise AssertionError("crnn: normalized step arguments were not accepted")
        unbatched = cnp.PyArray_NDIM(<cnp.ndarray>x) == 1
        if out is None:
            for k in range(self.num_states):
                outs[k] = self._new_state(B, unbatched, self.width[k])
        self._run(x, st, outs, B)
        return tuple(outs)

    cdef int64_t _accept(self, x, states, out, list st, list outs):
        """B when every argument is as the kernels take it (filling st and
        outs), else -1."""
        cdef int k, j, n = self.num_states
        cdef int64_t B
        cdef bint unbatched
        cdef cnp.ndarray xa
        if not _is_array(x, self.type_num):
            return -1
        xa = <cnp.ndarray>x
        unbatched = cnp.PyArray_NDIM(xa) == 1
        if not (unbatched or cnp.PyArray_NDIM(xa) == 2) or \
                cnp.PyArray_DIMS(xa)[cnp.PyArray_NDIM(xa) - 1] != self.input_size:
            return -1
        B = 1 if unbatched else cnp.PyArray_DIMS(xa)[0]
        if states is not None:
            if type(states) is not tuple or len(<tuple>states) != n:
                return -1
            for k in range(n):
                item = (<tuple>states)[k]
                if item is not None and not (_is_array(item, self.type_num) and self._shape_is(
                        <cnp.ndarray>item, B, unbatched, self.width[k])):
                    return -1
                st[k] = item
        if out is not None:
            if type(out) is not tuple or len(<tuple>out) != n:
                return -1
            for k in range(n):
                item = (<tuple>out)[k]
                if not (_is_array(item, self.type_num) and self._shape_is(
                        <cnp.ndarray>item, B, unbatched, self.width[k])
                        and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>item)):
                    return -1
                outs[k] = item
            # A state updated in place is its own out; anything else must
            # not overlap (the step reads a state while writing the others).
            for k in range(n):
                for j in range(n):
                    if st[j] is not None and _overlap(<cnp.ndarray>outs[k], <cnp.ndarray>st[j]) \
                            and not (j == k and cnp.PyArray_DATA(<cnp.ndarray>outs[k])
                                     == cnp.PyArray_DATA(<cnp.ndarray>st[j])):
                        return -1
                if k > 0 and _overlap(<cnp.ndarray>outs[k], <cnp.ndarray>outs[0]):
                    return -1
        return B

    cdef object _new_state(self, int64_t B, bint unbatched, int64_t width):
        cdef cnp.npy_intp dims[3]
        cdef int nd = 0
        if self.stacked:
            dims[nd] = self.num_layers
            nd += 1
        if not unbatched:
            dims[nd] = B
            nd += 1
        dims[nd] = width
        return cnp.PyArray_EMPTY(nd + 1, dims, self.type_num, 0)

    cdef _run(self, cnp.ndarray x, list st, list outs, int64_t B):
        cdef crnn_sequence s
        cdef char *xp = <char *>cnp.PyArray_DATA(x)
        cdef char *sp[CRNN_MAX_STATES]
        cdef char *op[CRNN_MAX_STATES]
        cdef int64_t step_bytes[CRNN_MAX_STATES]
        cdef int64_t isz = cnp.PyArray_ITEMSIZE(x)
        cdef int k, l, status = CRNN_OK
        cdef int n = self.num_states, L = self.num_layers
        if self.generation != _generation or self.isa != crnn_get_isa():
            self._pack(False)
        for k in range(CRNN_MAX_STATES):
            sp[k] = op[k] = NULL
            step_bytes[k] = 0
        for k in range(n):
            sp[k] = NULL if st[k] is None else <char *>cnp.PyArray_DATA(<cnp.ndarray>st[k])
            op[k] = <char *>cnp.PyArray_DATA(<cnp.ndarray>outs[k])
            step_bytes[k] = B * self.width[k] * isz
        s.steps, s.batch, s.lengths, s.out, s.ids = 1, B, NULL, NULL, NULL
        for k in range(CRNN_MAX_SAVED):
            s.saved[k] = NULL
        self.running += 1
        with nogil:
            for l in range(L):
                # Layer l reads the new output of layer l - 1: its state 0.
                s.x = xp if l == 0 else op[0] + (l - 1) * step_bytes[0]
                for k in range(CRNN_MAX_STATES):
                    s.state0[k] = sp[k] + l * step_bytes[k] if sp[k] != NULL else NULL
                    s.state_n[k] = op[k] + l * step_bytes[k] if op[k] != NULL else NULL
                status = crnn_forward_prepared(self.layers[l], &s)
                if status != CRNN_OK:
                    break
        self.running -= 1
        _raise_for(status)


# -- clipping ---------------------------------------------------------------------

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
            self.ptrs[i] = _data(a)
            self.sizes[i] = a.size

    def __dealloc__(self):
        free(self.ptrs)
        free(self.sizes)


def total_norm(int dtype, list arrays, double p):
    """The p-norm of the arrays as if concatenated (all of element type dtype)."""
    cdef _PointerList pl = _PointerList(arrays)
    cdef double total
    with nogil:
        total = crnn_total_norm(dtype, pl.n, <const void *const *>pl.ptrs, pl.sizes, p)
    return total


def scale(int dtype, list arrays, double factor):
    """Multiplies every array in place by factor (rounded to the arrays' dtype)."""
    cdef _PointerList pl = _PointerList(arrays)
    cdef int status
    with nogil:
        status = crnn_scale(dtype, pl.n, pl.ptrs, pl.sizes, factor)
    _raise_for(status)


def clip_value(int dtype, list arrays, double clip):
    """Clamps every array in place to [-clip, clip]."""
    cdef _PointerList pl = _PointerList(arrays)
    cdef int status
    with nogil:
        status = crnn_clip_value(dtype, pl.n, pl.ptrs, pl.sizes, clip)
    _raise_for(status)


# -- embedding -------------------------------------------------------------------

def embedding_backward(int dtype, ids, dout, int64_t num_embeddings, int64_t padding_idx,
                       dweight):
    """Runs crnn_embedding_backward: writes dweight (num_embeddings, dim) from
    int64 ids (any shape) and dout (ids.shape + (dim,)); padding_idx -1: none."""
    cdef int64_t n_ids = ids.size
    cdef int64_t dim = dweight.shape[1]
    cdef const int64_t *ids_p = <const int64_t *>_data(ids)
    cdef const void *dout_p = _data(dout)
    cdef void *dweight_p = _data(dweight)
    cdef int status
    with nogil:
        status = crnn_embedding_backward(dtype, ids_p, n_ids, dim, dout_p, num_embeddings,
                                         padding_idx, dweight_p)
    _raise_for(status)


# -- an output head and its loss ----------------------------------------------------

LOSSES = {"cross_entropy": CRNN_LOSS_CROSS_ENTROPY, "mse": CRNN_LOSS_MSE}


def head_loss(int dtype, str loss, x, weight, bias, classes, targets, dx, dweight, dbias):
    """Runs crnn_head_loss on (N, K) x: returns the loss; fills dx and adds
    to dweight and dbias (those that are not None)."""
    cdef crnn_head h
    cdef double total
    cdef int status
    h.dtype, h.loss = dtype, LOSSES[loss]
    h.rows, h.in_features, h.out_features = x.shape[0], x.shape[1], weight.shape[0]
    h.x, h.weight, h.bias = _data(x), _data(weight), _data(bias)
    h.classes, h.targets = <const int64_t *>_data(classes), _data(targets)
    h.dx, h.dweight, h.dbias = _data(dx), _data(dweight), _data(dbias)
    with nogil:
        status = crnn_head_loss(&h, &total)
    _raise_for(status)
    return total


# -- optimizers ---------------------------------------------------------------------

OPTIMIZERS = {"sgd": 0, "adagrad": 1, "rmsprop": 2, "adam": 3}


def optimizer_step(dict hyper, int dtype, list params, list grads, list buffers):
    """One crnn_optimizer_step: `hyper` holds crnn_optimizer's fields by name
    ("kind" a name of OPTIMIZERS), `buffers` up to CRNN_MAX_BUFFERS lists of
    arrays, one per parameter (None for a buffer the optimizer does not
    have). Returns the total norm (NaN without max_norm)."""
    cdef crnn_optimizer o
    cdef crnn_parameters ps
    cdef _PointerList pp = _PointerList(params)
    cdef _PointerList gp = _PointerList(grads)
    cdef list bufs = [None if b is None else _PointerList(b) for b in buffers]
    cdef int j, status
    cdef double total
    o.kind = OPTIMIZERS[hyper["kind"]]
    o.dtype = dtype
    o.step = hyper["step"]
    o.lr, o.weight_decay, o.eps = hyper["lr"], hyper["weight_decay"], hyper["eps"]
    o.momentum, o.dampening, o.nesterov = hyper["momentum"], hyper["dampening"], hyper["nesterov"]
    o.beta1, o.beta2, o.amsgrad = hyper["beta1"], hyper["beta2"], hyper["amsgrad"]
    o.decoupled, o.lr_decay = hyper["decoupled"], hyper["lr_decay"]
    o.alpha, o.centered, o.first_step = hyper["alpha"], hyper["centered"], hyper["first_step"]
    o.clip_value, o.max_norm, o.norm_type = (
        hyper["clip_value"], hyper["max_norm"], hyper["norm_type"])
    ps.n = pp.n
    ps.sizes = pp.sizes
    ps.params = pp.ptrs
    ps.grads = gp.ptrs
    for j in range(CRNN_MAX_BUFFERS):
        ps.buffers[j] = NULL if j >= len(bufs) or bufs[j] is None else (<_PointerList>bufs[j]).ptrs
    with nogil:
        status = crnn_optimizer_step(&o, &ps, &total)
    _raise_for(status)
    return total


# -- threads, instruction sets, build -------------------------------------------

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


# == Embedding: the C API capsule and the fork handler's test knob =========# (csrc/crnn_api.h and capi.c; the fork handler in csrc/threads.c)

from cpython.pycapsule cimport PyCapsule_New

cdef extern from *:
    """
    const crnn_api *crnn_api_table(void);
    """
    const crnn_api *crnn_api_table()

cdef extern from "crnn_testing.h":
    int crnn_testing_set_fork_release(int release)

#: Every function of crnn.h for other extensions (crnn_api.h: crnn_import_api).
_C_API = PyCapsule_New(<void *>crnn_api_table(), CRNN_API_CAPSULE, NULL)


def _testing_set_fork_release(bint release):
    """Whether the fork handler lets the OpenMP threads go before a fork (crnn_testing.h
    (e)); False makes the children forked next run on one thread. Returns the previous
    setting."""
    return bool(crnn_testing_set_fork_release(release))


# -- private test knobs (csrc/crnn_testing.h) ------------------------------------
# Only for crnn._testing, which documents them: not part of crnn's API. Kept
# in this block so that the binding above stays the public interface alone.

cdef extern from "crnn_testing.h" nogil:
    ctypedef struct crnn_testing_counts:
        int max_team
        int max_slices
        long long recurrences
        long long column_splits
        long long shared_slices
        long long bptt_chunks

    long long crnn_testing_set_min_work(long long n)
    int crnn_testing_set_oversubscribe(int allow)
    void crnn_testing_counts_reset()
    void crnn_testing_counts_get(crnn_testing_counts *counts)
    void crnn_testing_backoff_reset()
    void crnn_testing_backoff_get(int *calls_left, int *spell_length)
    void crnn_testing_stall_next_region(int ms)


def _testing_set_min_work(long long n):
    """Sets the work a thread must get before it starts (n <= 0: the default);
    returns the previous value."""
    return crnn_testing_set_min_work(n)


def _testing_set_oversubscribe(bint allow):
    """Lets a team outnumber the processors (or not); returns the previous setting."""
    return bool(crnn_testing_set_oversubscribe(allow))


def _testing_counts_reset():
    """Zeroes the counters of what ran (and starts counting)."""
    crnn_testing_counts_reset()


def _testing_counts():
    """The counters since the last reset, as a dict."""
    cdef crnn_testing_counts c
    crnn_testing_counts_get(&c)
    return {"max_team": c.max_team, "max_slices": c.max_slices, "recurrences": c.recurrences,
            "column_splits": c.column_splits, "shared_slices": c.shared_slices,
            "bptt_chunks": c.bptt_chunks}


def _testing_backoff_reset():
    """Clears the busy-machine back-off: no spell, spell length 0."""
    crnn_testing_backoff_reset()


def _testing_backoff():
    """(calls left to run on one thread, length of the next spell)."""
    cdef int calls_left = 0, spell_length = 0
    crnn_testing_backoff_get(&calls_left, &spell_length)
    return calls_left, spell_length


def _testing_stall_next_region(int ms):
    """Makes thread 1 of the next parallel region sleep ms milliseconds (once)."""
    crnn_testing_stall_next_region(ms)
