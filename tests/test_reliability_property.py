"""Property-based tests (hypothesis): the C engine against the reference.

Random shapes (zero sizes included), dtypes, nonlinearities, lengths (with
zeros, all zeros), h0 / biases present or not, upstream gradients present or
not, thread counts 1-3 and instruction sets: out, h_n and every gradient
within the numerical contract (relative error <= 1e-5 in float32, <= 1e-12
in float64). Also the layers (C vs NumPy backend) and gradient clipping.

Settings are fixed (max_examples, derandomize=True, deadline=None) so the
run is fast and the same every time: no flaky failures, no database needed.
"""
from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import crnn  # noqa: E402
from crnn import reference as ref  # noqa: E402
from helpers import assert_rel_close  # noqa: E402

SETTINGS = dict(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DTYPES = st.sampled_from([np.float32, np.float64])
NONLINEARITIES = st.sampled_from(["tanh", "relu", "sigmoid"])
ISAS = st.sampled_from(crnn.available_isas())
GRAD_FIELDS = crnn.RNNGrads._fields


@st.composite
def rnn_problems(draw):
    dtype = draw(DTYPES)
    T = draw(st.integers(0, 7))
    B = draw(st.integers(0, 9))
    I = draw(st.integers(0, 9))  # noqa: E741
    H = draw(st.integers(0, 20))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(max(H, 1))
    scale = draw(st.sampled_from([0.1, 1.0, 5.0]))

    def u(*shape):
        return (rng.uniform(-k, k, size=shape) * scale).astype(dtype)

    args = dict(x=rng.standard_normal((T, B, I)).astype(dtype), weight_ih=u(H, I), weight_hh=u(H, H))
    args["h0"] = rng.standard_normal((B, H)).astype(dtype) if draw(st.booleans()) else None
    bias = draw(st.sampled_from(["both", "none", "ih", "hh"]))
    args["bias_ih"] = u(H) if bias in ("both", "ih") else None
    args["bias_hh"] = u(H) if bias in ("both", "hh") else None
    kind = draw(st.sampled_from(["none", "random", "zeros", "full"]))
    if kind == "random":
        args["lengths"] = draw(st.lists(st.integers(0, T), min_size=B, max_size=B))
    elif kind == "zeros":
        args["lengths"] = [0] * B
    elif kind == "full":
        args["lengths"] = np.full(B, T, dtype=draw(st.sampled_from([np.int64, np.int32, np.uint8])))
    up = draw(st.sampled_from(["both", "dout", "dh_n", "none"]))
    dout = rng.standard_normal((T, B, H)).astype(dtype) if up in ("both", "dout") else None
    dh_n = rng.standard_normal((B, H)).astype(dtype) if up in ("both", "dh_n") else None
    return dtype, args, dout, dh_n


def _compare(dtype, c, r, ctx):
    for name, a, b in c_vs_r(c, r):
        assert a.dtype == np.dtype(dtype) and a.shape == b.shape, f"{ctx} {name}"
        assert_rel_close(a, b, dtype, name=f"{ctx} {name}")


def c_vs_r(c, r):
    (out_c, hn_c, g_c), (out_r, hn_r, g_r) = c, r
    yield "out", out_c, out_r
    yield "h_n", hn_c, hn_r
    for f in GRAD_FIELDS:
        a, b = getattr(g_c, f), getattr(g_r, f)
        assert (a is None) == (b is None), f
        if a is not None:
            yield f, a, b


def _full(mod, args, nl, dout, dh_n):
    out, h_n, cache = mod.rnn_forward(**args, nonlinearity=nl)
    return out, h_n, mod.rnn_backward(dout, dh_n, cache)


@settings(**SETTINGS)
@given(problem=rnn_problems(), nl=NONLINEARITIES, threads=st.integers(1, 3), isa=ISAS)
def test_c_engine_matches_reference(problem, nl, threads, isa):
    dtype, args, dout, dh_n = problem
    crnn.set_num_threads(threads)
    crnn.set_isa(isa)
    try:
        c = _full(crnn, args, nl, dout, dh_n)
    finally:
        crnn.set_num_threads(None)
        crnn.set_isa("auto")
    r = _full(ref, args, nl, dout, dh_n)
    _compare(dtype, c, r, f"{nl} threads={threads} isa={isa}")
    # Semantics both engines share: padded outputs are 0; h_n of an empty row is h0 (or 0).
    out, h_n, _ = c
    if args.get("lengths") is not None:
        lens = np.asarray(args["lengths"], dtype=np.int64)
        T = out.shape[0]
        pad = np.arange(T)[:, None] >= lens[None, :]
        assert not out[pad].any()
        empty = lens == 0
        h0 = args["h0"] if args["h0"] is not None else np.zeros_like(h_n)
        np.testing.assert_array_equal(h_n[empty], h0[empty])


@settings(**SETTINGS)
@given(problem=rnn_problems(), nl=NONLINEARITIES)
def test_cross_engine_caches(problem, nl):
    """A cache from one engine's forward gives the same gradients in the other's backward."""
    dtype, args, dout, dh_n = problem
    _, _, cache_c = crnn.rnn_forward(**args, nonlinearity=nl)
    _, _, cache_r = ref.rnn_forward(**args, nonlinearity=nl)
    g_cr = ref.rnn_backward(dout, dh_n, cache_c)
    g_rc = crnn.rnn_backward(dout, dh_n, cache_r)
    for f in GRAD_FIELDS:
        a, b = getattr(g_rc, f), getattr(g_cr, f)
        if b is not None:
            assert_rel_close(a, b, dtype, name=f)


@st.composite
def layer_problems(draw):
    dtype = draw(DTYPES)
    L = draw(st.integers(1, 3))
    bidirectional = draw(st.booleans())
    batch_first = draw(st.booleans())
    T, B = draw(st.integers(0, 6)), draw(st.integers(1, 6))
    I, H = draw(st.integers(1, 6)), draw(st.integers(1, 10))
    unbatched = draw(st.booleans()) and not batch_first
    lengths = None
    if not unbatched and draw(st.booleans()):
        lengths = draw(st.lists(st.integers(0, T), min_size=B, max_size=B))
    cfg = dict(input_size=I, hidden_size=H, num_layers=L, bidirectional=bidirectional,
               batch_first=batch_first, nonlinearity=draw(NONLINEARITIES), bias=draw(st.booleans()),
               dtype=dtype, seed=draw(st.integers(0, 1000)))
    D = 2 if bidirectional else 1
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if unbatched:
        x_shape, h_shape, out_shape = (T, I), (L * D, H), (T, D * H)
    else:
        x_shape = (B, T, I) if batch_first else (T, B, I)
        h_shape, out_shape = (L * D, B, H), ((B, T, D * H) if batch_first else (T, B, D * H))
    x = rng.standard_normal(x_shape).astype(dtype)
    h0 = rng.standard_normal(h_shape).astype(dtype) if draw(st.booleans()) else None
    dout = rng.standard_normal(out_shape).astype(dtype)
    dh_n = rng.standard_normal(h_shape).astype(dtype) if draw(st.booleans()) else None
    return cfg, x, h0, lengths, dout, dh_n


@settings(**SETTINGS)
@given(problem=layer_problems(), threads=st.integers(1, 3))
def test_rnn_layer_c_matches_numpy_backend(problem, threads):
    cfg, x, h0, lengths, dout, dh_n = problem
    crnn.set_num_threads(threads)
    res = {}
    try:
        for backend in ("c", "numpy"):
            layer = crnn.RNN(**cfg, backend=backend)
            out, h_n = layer(x, h0, lengths=lengths)
            dx, dh0 = layer.backward(dout, dh_n)
            res[backend] = [out, h_n, dx, dh0] + list(layer.grads.values())
    finally:
        crnn.set_num_threads(None)
    for i, (a, b) in enumerate(zip(res["c"], res["numpy"])):
        assert a.shape == b.shape and a.dtype == b.dtype, i
        # Stacked layers feed one engine's (slightly different) output to the next.
        tol = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-11}[a.dtype]
        assert_rel_close(a, b, tol=tol, name=f"result #{i}")


@settings(**SETTINGS)
@given(dtype=DTYPES,
       sizes=st.lists(st.integers(0, 3000), min_size=0, max_size=6),
       max_norm=st.sampled_from([0.0, 1e-3, 0.5, 10.0, 1e6]),
       p=st.sampled_from([1.0, 2.0, 3.0, 0.5, float("inf"), "inf"]),
       clip=st.sampled_from([0.0, 0.01, 1.0, 100.0]),
       seed=st.integers(0, 2**32 - 1), threads=st.integers(1, 3))
def test_clipping_matches_reference(dtype, sizes, max_norm, p, clip, seed, threads):
    rng = np.random.default_rng(seed)
    base = [(rng.standard_normal(n) * rng.choice([1e-3, 1.0, 1e3])).astype(dtype) for n in sizes]
    a_c, a_r = [a.copy() for a in base], [a.copy() for a in base]
    crnn.set_num_threads(threads)
    try:
        t_c = crnn.clip_grad_norm(a_c, max_norm, norm_type=p)
    finally:
        crnn.set_num_threads(None)
    t_r = ref.clip_grad_norm(a_r, max_norm, norm_type=p)
    assert t_c == pytest.approx(t_r, rel=1e-12, abs=0)
    for a, b in zip(a_c, a_r):
        assert_rel_close(a, b, dtype)
    crnn.clip_grad_value(a_c, clip)
    ref.clip_grad_value(a_r, clip)
    for a, b in zip(a_c, a_r):
        assert_rel_close(a, b, dtype)
        assert np.all(np.abs(a) <= dtype(clip))


@st.composite
def gated_problems(draw):
    cell = draw(st.sampled_from(["lstm", "gru"]))
    G = 4 if cell == "lstm" else 3
    dtype = draw(DTYPES)
    T, B = draw(st.integers(0, 6)), draw(st.integers(0, 7))
    I, H = draw(st.integers(0, 7)), draw(st.integers(1, 12))  # noqa: E741
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = 1.0 / np.sqrt(H)

    def u(*shape):
        return rng.uniform(-k, k, size=shape).astype(dtype)

    args = dict(x=rng.standard_normal((T, B, I)).astype(dtype), weight_ih=u(G * H, I),
                weight_hh=u(G * H, H))
    args["h0"] = rng.standard_normal((B, H)).astype(dtype) if draw(st.booleans()) else None
    if cell == "lstm":
        args["c0"] = rng.standard_normal((B, H)).astype(dtype) if draw(st.booleans()) else None
    bias = draw(st.booleans())
    args["bias_ih"] = u(G * H) if bias else None
    args["bias_hh"] = u(G * H) if bias else None
    if draw(st.booleans()):
        args["lengths"] = draw(st.lists(st.integers(0, T), min_size=B, max_size=B))
    ups = [rng.standard_normal((T, B, H)).astype(dtype) if draw(st.booleans()) else None]
    ups += [rng.standard_normal((B, H)).astype(dtype) if draw(st.booleans()) else None
            for _ in range(2 if cell == "lstm" else 1)]
    return cell, dtype, args, ups


@settings(**SETTINGS)
@given(problem=gated_problems(), threads=st.integers(1, 3))
def test_gated_cells_match_reference(problem, threads):
    cell, dtype, args, ups = problem
    res = {}
    for name, mod in (("c", crnn), ("ref", ref)):
        crnn.set_num_threads(threads)
        try:
            fwd = getattr(mod, f"{cell}_forward")(**args)
            grads = getattr(mod, f"{cell}_backward")(*ups, fwd[-1])
        finally:
            crnn.set_num_threads(None)
        res[name] = list(fwd[:-1]) + [g for g in grads if g is not None]
    assert len(res["c"]) == len(res["ref"])
    for i, (a, b) in enumerate(zip(res["c"], res["ref"])):
        assert a.dtype == np.dtype(dtype) and a.shape == b.shape, i
        assert_rel_close(a, b, dtype, name=f"{cell} result #{i}")
