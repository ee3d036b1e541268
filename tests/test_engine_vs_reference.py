"""The C engine against the NumPy reference (the oracle).

Contract (DESIGN.md): array-wise relative error <= 1e-5 in float32 and
<= 1e-12 in float64, for out, h_n and every gradient, whatever the thread
count and the instruction set.

Axes: dtype x nonlinearity x lengths (None, random, with zeros) x h0 (None,
given) x threads x ISA on an odd-sized problem; the edge shapes (T=0, B=0,
H=1, I=1, B=1) on a thinner grid; one moderately larger problem.
"""
from __future__ import annotations

import numpy as np
import pytest

import crnn
from crnn import reference as ref
from helpers import assert_rel_close, make_rnn_problem

ISAS = crnn.available_isas()
DTYPES = [np.float32, np.float64]
NONLINEARITIES = ["tanh", "relu", "sigmoid"]
LENGTHS = [None, "random", "zeros"]
GRAD_FIELDS = crnn.RNNGrads._fields

dtype_param = pytest.mark.parametrize(
    "dtype", DTYPES, ids=lambda d: np.dtype(d).name)
isa_param = pytest.mark.parametrize("isa", ISAS)
nl_param = pytest.mark.parametrize("nl", NONLINEARITIES)


def _configure(isa, threads):
    crnn.set_isa(isa)
    crnn.set_num_threads(threads)


def _upstream(T, B, H, dtype, seed):
    rng = np.random.default_rng(seed + 1000)
    dout = rng.standard_normal((T, B, H)).astype(dtype)
    dh_n = rng.standard_normal((B, H)).astype(dtype)
    return dout, dh_n


def _check_forward(args, nl, dtype):
    """Run both forwards, compare, return (C result, reference result)."""
    x = args["x"]
    T, B, _ = x.shape
    H = args["weight_hh"].shape[0]
    out_r, hn_r, cache_r = ref.rnn_forward(**args, nonlinearity=nl)
    out_c, hn_c, cache_c = crnn.rnn_forward(**args, nonlinearity=nl)

    assert isinstance(cache_c, crnn.RNNCache)
    assert isinstance(cache_r, crnn.RNNCache)
    for name, a in (("out", out_c), ("h_n", hn_c)):
        assert isinstance(a, np.ndarray), name
        assert a.dtype == np.dtype(dtype), (name, a.dtype)
    assert out_c.shape == (T, B, H)
    assert hn_c.shape == (B, H)
    assert_rel_close(out_c, out_r, dtype, name="out")
    assert_rel_close(hn_c, hn_r, dtype, name="h_n")
    return (out_c, hn_c, cache_c), (out_r, hn_r, cache_r)


def _check_grads(g_c, g_r, dtype, args, ctx=""):
    assert isinstance(g_c, crnn.RNNGrads), type(g_c)
    x = args["x"]
    H = args["weight_hh"].shape[0]
    T, B, I = x.shape
    shapes = dict(dx=(T, B, I), dh0=(B, H), dweight_ih=(H, I),
                  dweight_hh=(H, H), dbias_ih=(H,), dbias_hh=(H,))
    for name in GRAD_FIELDS:
        a, b = getattr(g_c, name), getattr(g_r, name)
        bias_name = {"dbias_ih": "bias_ih", "dbias_hh": "bias_hh"}.get(name)
        if bias_name is not None and args.get(bias_name) is None:
            assert a is None, f"{name} should be None when {bias_name} is None"
            assert b is None, f"reference {name} should be None"
            continue
        assert isinstance(a, np.ndarray), f"{ctx}{name}: {type(a)}"
        assert a.dtype == np.dtype(dtype), f"{ctx}{name}: {a.dtype}"
        assert a.shape == shapes[name], f"{ctx}{name}: {a.shape}"
        assert_rel_close(a, b, dtype, name=f"{ctx}{name}")


def _check_all(args, nl, dtype, seed, upstreams=("both", "none")):
    (out_c, hn_c, cache_c), (out_r, hn_r, cache_r) = _check_forward(args, nl, dtype)
    T, B, H = out_r.shape
    dout, dh_n = _upstream(T, B, H, dtype, seed)
    combos = {"both": (dout, dh_n), "none": (None, None),
              "dout": (dout, None), "dh_n": (None, dh_n)}
    for key in upstreams:
        do, dh = combos[key]
        g_r = ref.rnn_backward(do, dh, cache_r)
        g_c = crnn.rnn_backward(do, dh, cache_c)
        _check_grads(g_c, g_r, dtype, args, ctx=f"[{key}] ")
    return out_c, hn_c


# --------------------------------------------------------------------------
# The main grid: odd sizes, every semantic axis, threads 1..3, every ISA.
# --------------------------------------------------------------------------
@isa_param
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("h0", [False, True], ids=["h0None", "h0"])
@pytest.mark.parametrize("lengths", LENGTHS, ids=str)
@nl_param
@dtype_param
def test_grid_odd_sizes(dtype, nl, lengths, h0, threads, isa):
    _configure(isa, threads)
    seed = 17
    args = make_rnn_problem(9, 7, 5, 17, dtype, seed=seed, h0=h0, lengths=lengths)
    _check_all(args, nl, dtype, seed)


# --------------------------------------------------------------------------
# Edge shapes: empty time / batch, width-1 hidden or input, single row.
# --------------------------------------------------------------------------
EDGE_SHAPES = [
    (0, 3, 4, 5),   # T = 0
    (4, 0, 3, 5),   # B = 0
    (0, 0, 2, 3),   # T = B = 0
    (5, 3, 4, 1),   # H = 1
    (5, 3, 1, 4),   # I = 1
    (6, 1, 3, 4),   # B = 1
    (1, 1, 1, 1),   # everything 1
    (1, 5, 3, 4),   # T = 1
    (3, 2, 6, 2),   # I > H
    (3, 2, 0, 4),   # I = 0: no input projection
    (3, 2, 4, 0),   # H = 0: empty state
]


@isa_param
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("lengths", [None, "zeros"], ids=str)
@nl_param
@dtype_param
@pytest.mark.parametrize("shape", EDGE_SHAPES, ids=lambda s: "T%d-B%d-I%d-H%d" % s)
def test_edge_shapes(shape, dtype, nl, lengths, threads, isa):
    _configure(isa, threads)
    T, B, I, H = shape
    seed = sum(shape)
    args = make_rnn_problem(T, B, I, H, dtype, seed=seed, h0=(seed % 2 == 0),
                            lengths=lengths)
    _check_all(args, nl, dtype, seed, upstreams=("both", "none", "dout", "dh_n"))


@dtype_param
def test_edge_T0_gives_h0_and_passes_dh_n(dtype):
    """T = 0: h_n is h0, dh0 is dh_n, weight gradients are zero."""
    args = make_rnn_problem(0, 3, 4, 5, dtype, seed=3)
    out, h_n, cache = crnn.rnn_forward(**args)
    assert out.shape == (0, 3, 5)
    np.testing.assert_array_equal(h_n, args["h0"])
    dh_n = np.arange(15, dtype=dtype).reshape(3, 5)
    g = crnn.rnn_backward(None, dh_n, cache)
    np.testing.assert_array_equal(g.dh0, dh_n)
    assert g.dx.shape == (0, 3, 4)
    for name in ("dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh"):
        assert not np.any(getattr(g, name)), name


# --------------------------------------------------------------------------
# A moderately larger problem (exercises blocking / vector tails).
# --------------------------------------------------------------------------
@isa_param
@pytest.mark.parametrize("threads", [1, 2])
@nl_param
@dtype_param
def test_larger_problem(dtype, nl, threads, isa):
    _configure(isa, threads)
    seed = 5
    args = make_rnn_problem(30, 33, 40, 70, dtype, seed=seed, lengths="random")
    _check_all(args, nl, dtype, seed, upstreams=("both",))


@isa_param
@dtype_param
def test_larger_problem_no_lengths_no_h0(dtype, isa):
    _configure(isa, 2)
    seed = 6
    args = make_rnn_problem(30, 33, 40, 70, dtype, seed=seed, h0=False)
    _check_all(args, "tanh", dtype, seed, upstreams=("both", "none"))


# --------------------------------------------------------------------------
# Long sequences: the backward runs through time in chunks of steps
# (bptt_chunk_steps in csrc/kernels.inc: >= 2048 rows, about T/8 steps), so
# these cross chunk boundaries (2048 + 52 and 228 + 228 + 144 steps), with
# lengths ending inside chunks.
# --------------------------------------------------------------------------
@isa_param
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("lengths", LENGTHS, ids=str)
@dtype_param
@pytest.mark.parametrize("shape", [(2100, 1, 3, 5), (600, 9, 6, 11)],
                         ids=lambda s: "T%d-B%d-I%d-H%d" % s)
def test_backward_across_time_chunks(shape, dtype, lengths, threads, isa):
    _configure(isa, threads)
    seed = 31
    args = make_rnn_problem(*shape, dtype, seed=seed, lengths=lengths)
    _check_all(args, "tanh", dtype, seed, upstreams=("both", "dout"))


# --------------------------------------------------------------------------
# Batch 1 with W_hh beyond a core's L1 cache: forward and backward split W_hh's
# columns across threads, which meet after every step (split_columns in
# csrc/kernels.inc). H = 130 and 200 are not multiples of the panel width, so
# the threads get unequal panel counts; 2100 steps cross a BPTT chunk. Results
# must not depend on the thread count.
# --------------------------------------------------------------------------
@isa_param
@pytest.mark.parametrize("lengths", [None, "random"], ids=str)
@nl_param
@dtype_param
@pytest.mark.parametrize("shape", [(600, 1, 5, 130), (400, 1, 3, 200), (2100, 1, 2, 130)],
                         ids=lambda s: "T%d-B%d-I%d-H%d" % s)
def test_batch1_column_split(shape, dtype, nl, lengths, isa):
    seed = 37
    args = make_rnn_problem(*shape, dtype=dtype, seed=seed, lengths=lengths)
    T, B, _, H = shape
    dout, dh_n = _upstream(T, B, H, dtype, seed)
    crnn.set_isa(isa)
    results = {}
    for threads in (1, 2, 4):
        crnn.set_num_threads(threads)
        out, h_n, cache = crnn.rnn_forward(**args, nonlinearity=nl)
        results[threads] = [out, h_n, *crnn.rnn_backward(dout, dh_n, cache)]
    _check_all(args, nl, dtype, seed, upstreams=("both",))
    for threads in (2, 4):
        for a, b in zip(results[threads], results[1]):
            assert (a is None and b is None) or np.array_equal(a, b), \
                f"{threads} threads differ from 1"


# --------------------------------------------------------------------------
# Shapes past the kernels' block sizes (depth 256, 2048 columns), and batches
# big enough that the recurrence really runs on 3 and 4 threads.
# --------------------------------------------------------------------------
@isa_param
@dtype_param
@pytest.mark.parametrize("shape", [(3, 4, 300, 10), (3, 5, 7, 260), (2, 3, 2100, 5)],
                         ids=lambda s: "T%d-B%d-I%d-H%d" % s)
def test_blocking_shapes(shape, dtype, isa):
    _configure(isa, 2)
    seed = 23
    args = make_rnn_problem(*shape, dtype, seed=seed, lengths="zeros")
    # Keep pre-activations O(1) for wide inputs (weights ~ 1/sqrt(I)): with
    # the default ~1/sqrt(H) scale and I=2100 every unit saturates, and the
    # float32 derivative 1 - h^2 near |h| = 1 is then mostly rounding noise
    # (that regime is covered by test_large_magnitude_inputs).
    T, B, I, H = shape
    args["weight_ih"] = (args["weight_ih"] * np.sqrt(max(H, 1) / I)).astype(dtype)
    _check_all(args, "tanh", dtype, seed, upstreams=("both",))


@isa_param
@pytest.mark.parametrize("threads", [3, 4])
@pytest.mark.parametrize("lengths", [None, "zeros"], ids=str)
@dtype_param
def test_threaded_batch(dtype, lengths, threads, isa):
    _configure(isa, threads)
    seed = 29
    args = make_rnn_problem(6, 41, 20, 80, dtype, seed=seed, lengths=lengths)
    _check_all(args, "sigmoid", dtype, seed, upstreams=("both",))


@isa_param
@nl_param
@dtype_param
def test_large_magnitude_inputs(dtype, nl, isa):
    """Saturating pre-activations (|a| up to ~40): tanh/sigmoid tails."""
    _configure(isa, 1)
    seed = 31
    args = make_rnn_problem(10, 16, 8, 24, dtype, seed=seed, lengths="zeros")
    args["x"] = args["x"] * dtype(10)
    _check_all(args, nl, dtype, seed, upstreams=("both",))


# --------------------------------------------------------------------------
# Biases: both, none, only one of them.
# --------------------------------------------------------------------------
@isa_param
@pytest.mark.parametrize("which", ["none", "ih_only", "hh_only"])
@dtype_param
def test_bias_variants(dtype, which, isa):
    _configure(isa, 2)
    seed = 8
    args = make_rnn_problem(7, 6, 5, 9, dtype, seed=seed, lengths="random")
    if which in ("none", "hh_only"):
        args["bias_ih"] = None
    if which in ("none", "ih_only"):
        args["bias_hh"] = None
    _check_all(args, "tanh", dtype, seed, upstreams=("both",))


# --------------------------------------------------------------------------
# A cache made by one engine goes to the other engine's backward.
# --------------------------------------------------------------------------
@pytest.mark.parametrize("lengths", LENGTHS, ids=str)
@nl_param
@dtype_param
def test_cross_engine_caches(dtype, nl, lengths):
    seed = 11
    args = make_rnn_problem(8, 6, 5, 7, dtype, seed=seed, lengths=lengths,
                            h0=(lengths != "random"))
    _, _, cache_c = crnn.rnn_forward(**args, nonlinearity=nl)
    _, _, cache_r = ref.rnn_forward(**args, nonlinearity=nl)
    dout, dh_n = _upstream(8, 6, 7, dtype, seed)
    g_rr = ref.rnn_backward(dout, dh_n, cache_r)
    g_cr = crnn.rnn_backward(dout, dh_n, cache_r)   # C backward, reference cache
    g_rc = ref.rnn_backward(dout, dh_n, cache_c)    # reference backward, C cache
    _check_grads(g_cr, g_rr, dtype, args, ctx="C(ref cache) ")
    _check_grads(g_rc, g_rr, dtype, args, ctx="ref(C cache) ")


# --------------------------------------------------------------------------
# Exact semantics of lengths, for both engines (the oracle is checked too).
# --------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["crnn", "reference"])
@nl_param
@dtype_param
def test_lengths_semantics_exact(dtype, nl, engine):
    mod = crnn if engine == "crnn" else ref
    T, B, I, H = 6, 5, 3, 4
    lengths = [3, 0, 6, 1, 0]  # a list: helpers compares lengths with "random"
    args = make_rnn_problem(T, B, I, H, dtype, seed=21, lengths=lengths)
    out, h_n, cache = mod.rnn_forward(**args, nonlinearity=nl)
    for b, L in enumerate(lengths):
        assert not np.any(out[L:, b]), f"out[{L}:, {b}] must be zero"
        if L == 0:
            np.testing.assert_array_equal(h_n[b], args["h0"][b])
        else:
            np.testing.assert_array_equal(h_n[b], out[L - 1, b])
            if nl != "relu":  # relu may legitimately give an all-zero state
                assert np.any(out[L - 1, b] != 0)

    dout, dh_n = _upstream(T, B, H, dtype, 21)
    g = mod.rnn_backward(dout, dh_n, cache)
    for b, L in enumerate(lengths):
        assert not np.any(g.dx[L:, b]), f"dx[{L}:, {b}] must be zero"
        if L == 0:  # the state is held: dh0 is dh_n, dout is ignored
            np.testing.assert_array_equal(g.dh0[b], dh_n[b])
    # Gradient from dout at padded steps must be ignored entirely.
    dout2 = dout.copy()
    for b, L in enumerate(lengths):
        dout2[L:, b] = 1e3
    g2 = mod.rnn_backward(dout2, dh_n, cache)
    for name in GRAD_FIELDS:
        np.testing.assert_array_equal(getattr(g2, name), getattr(g, name),
                                      err_msg=name)


@pytest.mark.parametrize("engine", ["crnn", "reference"])
@dtype_param
def test_h0_none_equals_zeros(dtype, engine):
    mod = crnn if engine == "crnn" else ref
    args = make_rnn_problem(5, 4, 3, 6, dtype, seed=2, h0=False, lengths="zeros")
    out1, hn1, c1 = mod.rnn_forward(**args)
    args0 = dict(args, h0=np.zeros((4, 6), dtype))
    out0, hn0, c0 = mod.rnn_forward(**args0)
    assert_rel_close(out1, out0, dtype, name="out")
    assert_rel_close(hn1, hn0, dtype, name="h_n")
    assert not np.any(hn1[args["lengths"] == 0])
    dout, dh_n = _upstream(5, 4, 6, dtype, 2)
    g1 = mod.rnn_backward(dout, dh_n, c1)
    g0 = mod.rnn_backward(dout, dh_n, c0)
    for name in GRAD_FIELDS:
        assert_rel_close(getattr(g1, name), getattr(g0, name), dtype, name=name)


@isa_param
@dtype_param
def test_full_lengths_equal_no_lengths(dtype, isa):
    _configure(isa, 2)
    args = make_rnn_problem(7, 5, 4, 6, dtype, seed=4)
    out1, hn1, c1 = crnn.rnn_forward(**args, nonlinearity="relu")
    out2, hn2, c2 = crnn.rnn_forward(**args, nonlinearity="relu",
                                     lengths=np.full(5, 7))
    assert_rel_close(out2, out1, dtype, name="out")
    assert_rel_close(hn2, hn1, dtype, name="h_n")
    dout, dh_n = _upstream(7, 5, 6, dtype, 4)
    g1 = crnn.rnn_backward(dout, dh_n, c1)
    g2 = crnn.rnn_backward(dout, dh_n, c2)
    for name in GRAD_FIELDS:
        assert_rel_close(getattr(g2, name), getattr(g1, name), dtype, name=name)


@isa_param
def test_float32_is_computed_in_float32_accuracy(isa):
    """float32 C results agree with the float64 reference to float32 accuracy
    (guards against an engine that silently computes in lower precision)."""
    _configure(isa, 1)
    a64 = make_rnn_problem(12, 9, 10, 20, np.float64, seed=9, lengths="random")
    a32 = {k: (v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype.kind == "f"
               else v) for k, v in a64.items()}
    out64, hn64, c64 = ref.rnn_forward(**a64)
    out32, hn32, c32 = crnn.rnn_forward(**a32)
    assert_rel_close(out32, out64, tol=1e-5, name="out")
    assert_rel_close(hn32, hn64, tol=1e-5, name="h_n")


@pytest.mark.parametrize("engine", ["crnn", "reference"])
@nl_param
@dtype_param
def test_nan_stays_in_its_row(dtype, nl, engine):
    """A NaN input poisons its own row from that step on, and nothing else
    (rows are packed together into tiles in the C engine)."""
    mod = crnn if engine == "crnn" else ref
    crnn.set_num_threads(2)
    T, B, I, H = 7, 9, 4, 6
    args = make_rnn_problem(T, B, I, H, dtype, seed=33, lengths=[7, 5, 7, 0, 7, 7, 3, 7, 6])
    out0, hn0, _ = mod.rnn_forward(**args, nonlinearity=nl)
    bad = dict(args, x=args["x"].copy())
    bad["x"][2, 4, 1] = np.nan
    out, h_n, _ = mod.rnn_forward(**bad, nonlinearity=nl)
    assert np.all(np.isnan(out[2:, 4])) and np.all(np.isnan(h_n[4]))
    assert not np.any(np.isnan(out[:2, 4]))
    others = [b for b in range(B) if b != 4]
    np.testing.assert_array_equal(out[:, others], out0[:, others])
    np.testing.assert_array_equal(h_n[others], hn0[others])
