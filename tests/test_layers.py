"""Layers (crnn.RNN, crnn.RNNCell, crnn.Linear) and the Module base.

- backend "c" equals backend "numpy" (float32 <= 1e-5, float64 <= 1e-12
  relative) over num_layers x bidirectional x lengths x nonlinearity x
  layout, with and without dropout;
- gradients by central differences (float64), dropout included (the dropout
  generator's state is restored before each perturbed forward, so every
  evaluation uses the same masks);
- semantics that do not need PyTorch: a padded row equals that row run alone,
  batch-first and unbatched layouts equal the time-major batch;
- gradients accumulate, zero_grad, train/eval, seeds, init statistics,
  state dicts, child modules, and errors naming the bad argument.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import crnn
from crnn import Linear, Module, RNN, RNNCell
from crnn import init as cinit
from crnn._engine import engine
from helpers import assert_rel_close

T, B, I, H = 6, 4, 3, 5
DTYPES = [np.float32, np.float64]
dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def _lengths(kind, batch=B, steps=T, seed=3):
    if kind is None:
        return None
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, steps + 1, size=batch)
    lens[0] = steps  # the longest row fills the batch
    if kind == "zeros":
        lens[1] = 0
    return lens


def _problem(rnn, *, batch=B, steps=T, unbatched=False, h0=True, seed=1):
    """x, h0, dout, dh_n in the layer's layout and dtype."""
    rng = np.random.default_rng(seed)
    dt = rnn.dtype
    L, D = rnn.num_layers, rnn.num_directions
    if unbatched:
        x_shape, h_shape, o_shape = (steps, rnn.input_size), (L * D, H), (steps, D * H)
    elif rnn.batch_first:
        x_shape, h_shape, o_shape = (batch, steps, rnn.input_size), (L * D, batch, H), (batch, steps, D * H)
    else:
        x_shape, h_shape, o_shape = (steps, batch, rnn.input_size), (L * D, batch, H), (steps, batch, D * H)
    x = rng.standard_normal(x_shape).astype(dt)
    h = (0.5 * rng.standard_normal(h_shape)).astype(dt) if h0 else None
    dout = rng.standard_normal(o_shape).astype(dt)
    dh_n = rng.standard_normal(h_shape).astype(dt)
    return x, h, dout, dh_n


def _run(rnn, x, h0, dout, dh_n, lengths=None):
    out, h_n = rnn(x, h0, lengths=lengths)
    dx, dh0 = rnn.backward(dout, dh_n)
    res = {"out": out, "h_n": h_n, "dx": dx, "dh0": dh0}
    res.update({"grad." + k: v.copy() for k, v in rnn.grads.items()})
    return res


def _compare(a, b, dtype):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape, k
        assert a[k].dtype == np.dtype(dtype), k
        assert_rel_close(a[k], b[k], dtype, name=k)


def _loss(rnn, x, h0, dout, dh_n, lengths=None):
    out, h_n = rnn(x, h0, lengths=lengths)
    return float(np.sum(out * dout) + np.sum(h_n * dh_n))


def _numeric_grad(f, arr, entries, eps=1e-6):
    """Central differences of f() w.r.t. the given flat entries of arr (in place)."""
    flat = arr.reshape(-1)
    g = np.empty(len(entries))
    for n, i in enumerate(entries):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        g[n] = (fp - fm) / (2 * eps)
    return g


def _check_gradients(rnn, x, h0, dout, dh_n, lengths=None, n_entries=5, seed=0):
    """Analytic vs numeric gradients for x, h0 and every parameter (float64)."""
    state = rnn.dropout_rng.bit_generator.state

    def f():
        rnn.dropout_rng.bit_generator.state = state  # same dropout masks every time
        return _loss(rnn, x, h0, dout, dh_n, lengths)

    rnn.zero_grad()
    f()
    dx, dh0 = rnn.backward(dout, dh_n)
    analytic = {"x": dx, "h0": dh0, **{k: v.copy() for k, v in rnn.grads.items()}}
    targets = {"x": x, "h0": h0, **rnn.params}
    rng = np.random.default_rng(seed)
    for name, arr in targets.items():
        if arr.size == 0:
            continue
        entries = rng.choice(arr.size, size=min(n_entries, arr.size), replace=False)
        num = _numeric_grad(f, arr, entries)
        ana = analytic[name].reshape(-1)[entries]
        assert np.allclose(ana, num, rtol=1e-5, atol=1e-7), (name, ana, num)


# --------------------------------------------------------------------------
# Backend "c" equals backend "numpy"
# --------------------------------------------------------------------------

ARCHS = [(1, False), (1, True), (2, True), (3, False)]


@dtype_param
@pytest.mark.parametrize("layers,bidirectional", ARCHS, ids=lambda v: str(v))
@pytest.mark.parametrize("lengths", [None, "random", "zeros"])
@pytest.mark.parametrize("nl", ["tanh", "relu", "sigmoid"])
def test_rnn_c_equals_numpy(dtype, layers, bidirectional, lengths, nl):
    kw = dict(num_layers=layers, bidirectional=bidirectional, nonlinearity=nl, dtype=dtype, seed=7)
    rc, rn = RNN(I, H, backend="c", **kw), RNN(I, H, backend="numpy", **kw)
    x, h0, dout, dh_n = _problem(rc)
    lens = _lengths(lengths)
    _compare(_run(rc, x, h0, dout, dh_n, lens), _run(rn, x, h0, dout, dh_n, lens), dtype)


@dtype_param
@pytest.mark.parametrize("layout", ["batch_first", "unbatched", "no_h0", "no_bias"])
def test_rnn_c_equals_numpy_layouts(dtype, layout):
    kw = dict(num_layers=2, bidirectional=True, dtype=dtype, seed=8,
              batch_first=layout == "batch_first", bias=layout != "no_bias")
    rc, rn = RNN(I, H, backend="c", **kw), RNN(I, H, backend="numpy", **kw)
    x, h0, dout, dh_n = _problem(rc, unbatched=layout == "unbatched", h0=layout != "no_h0")
    lens = _lengths("random") if layout == "batch_first" else None
    _compare(_run(rc, x, h0, dout, dh_n, lens), _run(rn, x, h0, dout, dh_n, lens), dtype)


@dtype_param
@pytest.mark.parametrize("bidirectional", [False, True])
def test_rnn_c_equals_numpy_with_dropout(dtype, bidirectional):
    kw = dict(num_layers=3, bidirectional=bidirectional, dropout=0.4, dtype=dtype, seed=9)
    rc, rn = RNN(I, H, backend="c", **kw), RNN(I, H, backend="numpy", **kw)
    x, h0, dout, dh_n = _problem(rc)
    for _ in range(2):  # the second call draws new masks, identically on both
        rc.zero_grad()
        rn.zero_grad()
        _compare(_run(rc, x, h0, dout, dh_n, _lengths("random")),
                 _run(rn, x, h0, dout, dh_n, _lengths("random")), dtype)


@dtype_param
@pytest.mark.parametrize("unbatched", [False, True])
def test_rnncell_c_equals_numpy(dtype, unbatched):
    cc = RNNCell(I, H, dtype=dtype, seed=4, backend="c")
    cn = RNNCell(I, H, dtype=dtype, seed=4, backend="numpy")
    rng = np.random.default_rng(0)
    lead = () if unbatched else (B,)
    x = rng.standard_normal(lead + (I,)).astype(dtype)
    h = rng.standard_normal(lead + (H,)).astype(dtype)
    dh = rng.standard_normal(lead + (H,)).astype(dtype)
    res = []
    for cell in (cc, cn):
        h1 = cell(x, h)
        dx, dh_prev = cell.backward(dh)
        res.append({"h1": h1, "dx": dx, "dh_prev": dh_prev,
                    **{"grad." + k: v.copy() for k, v in cell.grads.items()}})
    _compare(res[0], res[1], dtype)


@dtype_param
def test_linear_c_equals_numpy(dtype):
    lc = Linear(I, H, dtype=dtype, seed=2, backend="c")
    ln = Linear(I, H, dtype=dtype, seed=2, backend="numpy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    res = []
    for lin in (lc, ln):
        y = lin(x)
        dx = lin.backward(dy)
        res.append({"y": y, "dx": dx, **{"grad." + k: v.copy() for k, v in lin.grads.items()}})
    _compare(res[0], res[1], dtype)


def test_set_backend_between_forward_and_backward():
    r = RNN(I, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=0, backend="c")
    ref = RNN(I, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=0, backend="numpy")
    x, h0, dout, dh_n = _problem(r)
    lens = _lengths("random")
    expected = _run(ref, x, h0, dout, dh_n, lens)
    out, h_n = r(x, h0, lengths=lens)
    assert r.set_backend("numpy") is r
    dx, dh0 = r.backward(dout, dh_n)
    assert_rel_close(dx, expected["dx"], np.float64, name="dx")
    assert_rel_close(dh0, expected["dh0"], np.float64, name="dh0")
    assert r.engine is crnn.reference


def test_engine_switch():
    assert engine("c") is crnn.functional
    assert engine("numpy") is crnn.reference
    for mod in (engine("c"), engine("numpy")):
        for fn in ("rnn_forward", "rnn_backward", "clip_grad_norm", "clip_grad_value"):
            assert callable(getattr(mod, fn))
    for bad in ("C", "torch", None, 1):
        with pytest.raises(ValueError, match="backend"):
            engine(bad)


# --------------------------------------------------------------------------
# Gradients by central differences (float64)
# --------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("case", ["bidir_lengths_batch_first", "stacked_relu", "unbatched",
                                  "dropout_training"])
def test_rnn_gradients_numeric(backend, case):
    kw = dict(num_layers=2, bidirectional=True, dtype=np.float64, seed=5, backend=backend)
    lengths, unbatched = None, False
    if case == "bidir_lengths_batch_first":
        kw["batch_first"] = True
        lengths = _lengths("zeros", batch=3, steps=4)
    elif case == "stacked_relu":
        kw.update(num_layers=3, bidirectional=False, nonlinearity="relu")
    elif case == "unbatched":
        unbatched = True
    else:
        kw.update(num_layers=3, dropout=0.5)
    rnn = RNN(2, 3, **kw)
    H_ = 3
    rng = np.random.default_rng(11)
    L, D = rnn.num_layers, rnn.num_directions
    if unbatched:
        x, h0 = rng.standard_normal((4, 2)), 0.5 * rng.standard_normal((L * D, H_))
    elif rnn.batch_first:
        x, h0 = rng.standard_normal((3, 4, 2)), 0.5 * rng.standard_normal((L * D, 3, H_))
    else:
        x, h0 = rng.standard_normal((4, 3, 2)), 0.5 * rng.standard_normal((L * D, 3, H_))
    out, h_n = rnn(x, h0, lengths=lengths)
    dout, dh_n = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    _check_gradients(rnn, x, h0, dout, dh_n, lengths)


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_rnncell_and_linear_gradients_numeric(backend):
    rng = np.random.default_rng(0)
    cell = RNNCell(3, 4, dtype=np.float64, seed=1, backend=backend)
    x, h = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    dh1 = rng.standard_normal((2, 4))
    cell(x, h)
    dx, dh = cell.backward(dh1)
    f = lambda: float(np.sum(cell(x, h) * dh1))  # noqa: E731
    for name, arr, ana in [("x", x, dx), ("h", h, dh), *[(k, v, cell.grads[k]) for k, v in cell.params.items()]]:
        entries = np.arange(arr.size)
        assert np.allclose(ana.reshape(-1), _numeric_grad(f, arr, entries), rtol=1e-6, atol=1e-8), name

    lin = Linear(3, 4, dtype=np.float64, seed=1, backend=backend)
    x = rng.standard_normal((2, 5, 3))
    dy = rng.standard_normal((2, 5, 4))
    lin(x)
    dx = lin.backward(dy)
    f = lambda: float(np.sum(lin(x) * dy))  # noqa: E731
    for name, arr, ana in [("x", x, dx), *[(k, v, lin.grads[k]) for k, v in lin.params.items()]]:
        entries = np.arange(arr.size)
        assert np.allclose(ana.reshape(-1), _numeric_grad(f, arr, entries), rtol=1e-6, atol=1e-8), name


# --------------------------------------------------------------------------
# Semantics checked without PyTorch
# --------------------------------------------------------------------------

@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_row_equals_row_alone(bidirectional):
    """With lengths, each row behaves as if run alone on its valid steps."""
    rnn = RNN(I, H, num_layers=2, bidirectional=bidirectional, dtype=np.float64, seed=3)
    x, h0, dout, dh_n = _problem(rnn)
    lens = _lengths("zeros")
    x_padded = x.copy()
    for b, n in enumerate(lens):
        x_padded[n:, b] = np.nan  # padded inputs are never read
    out, h_n = rnn(x_padded, h0, lengths=lens)
    dx, dh0 = rnn.backward(dout, dh_n)
    assert np.isfinite(out).all() and np.isfinite(dx).all()
    for b, n in enumerate(lens):
        assert np.all(out[n:, b] == 0) and np.all(dx[n:, b] == 0)
        single = RNN(I, H, num_layers=2, bidirectional=bidirectional, dtype=np.float64)
        single.load_state_dict(rnn.state_dict())
        o, hn = single(x[:n, b:b + 1], h0[:, b:b + 1])
        d, dh = single.backward(dout[:n, b:b + 1], dh_n[:, b:b + 1])
        assert_rel_close(out[:n, b], o[:, 0], np.float64, tol=1e-12, name="out")
        assert_rel_close(h_n[:, b], hn[:, 0], np.float64, tol=1e-12, name="h_n")
        assert_rel_close(dx[:n, b], d[:, 0], np.float64, tol=1e-12, name="dx")
        assert_rel_close(dh0[:, b], dh[:, 0], np.float64, tol=1e-12, name="dh0")


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_batch_first_and_unbatched_equal_time_major(backend):
    kw = dict(num_layers=2, bidirectional=True, dtype=np.float64, seed=2, backend=backend)
    tm, bf = RNN(I, H, **kw), RNN(I, H, batch_first=True, **kw)
    x, h0, dout, dh_n = _problem(tm)
    lens = _lengths("random")
    a = _run(tm, x, h0, dout, dh_n, lens)
    b = _run(bf, x.transpose(1, 0, 2), h0, dout.transpose(1, 0, 2), dh_n, lens)
    for k in ("out", "dx"):
        assert b[k].flags.c_contiguous
        assert_rel_close(b[k].transpose(1, 0, 2), a[k], np.float64, tol=1e-14, name=k)
    for k in a:
        if k not in ("out", "dx"):
            assert_rel_close(b[k], a[k], np.float64, tol=1e-14, name=k)
    # unbatched (T, I) is the batch of one, for time-major and batch-first layers alike
    for layer in (tm, bf):
        layer.zero_grad()
        u = _run(layer, x[:, 0], h0[:, 0], dout[:, 0], dh_n[:, 0])
        tm.zero_grad()
        ref = _run(tm, x[:, :1], h0[:, :1], dout[:, :1], dh_n[:, :1])
        assert u["out"].shape == (T, 2 * H) and u["h_n"].shape == (4, H)
        assert u["dx"].shape == (T, I) and u["dh0"].shape == (4, H)
        for k in ("out", "dx", "h_n", "dh0"):
            assert_rel_close(u[k], ref[k][:, 0], np.float64, tol=1e-14, name=k)


def test_shapes_and_dh0_without_h0():
    rnn = RNN(I, H, num_layers=3, bidirectional=True, dtype=np.float32, seed=0)
    x = np.zeros((T, B, I), np.float32)
    out, h_n = rnn(x)
    assert out.shape == (T, B, 2 * H) and h_n.shape == (6, B, H)
    dx, dh0 = rnn.backward(np.ones_like(out))
    assert dx.shape == x.shape and dh0.shape == (6, B, H)
    dx, dh0 = rnn.backward(None, np.ones_like(h_n))  # only dh_n
    assert dx.shape == x.shape and dh0.shape == (6, B, H)
    u_out, u_hn = rnn(x[:, 0])
    assert u_out.shape == (T, 2 * H) and u_hn.shape == (6, H)
    assert rnn.backward(np.ones_like(u_out))[1].shape == (6, H)


def test_empty_sequence_and_batch():
    rnn = RNN(I, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    h0 = np.ones((4, 2, H))
    out, h_n = rnn(np.zeros((0, 2, I)), h0)
    assert out.shape == (0, 2, 2 * H)
    np.testing.assert_array_equal(h_n, h0)
    dx, dh0 = rnn.backward(np.zeros((0, 2, 2 * H)), np.ones_like(h_n))
    assert dx.shape == (0, 2, I)
    np.testing.assert_array_equal(dh0, np.ones_like(h0))
    out, h_n = rnn(np.zeros((3, 0, I)))
    assert out.shape == (3, 0, 2 * H) and h_n.shape == (4, 0, H)


def test_inputs_not_modified_and_outputs_independent():
    rnn = RNN(I, H, num_layers=2, dtype=np.float64, seed=0)
    x, h0, dout, dh_n = _problem(rnn)
    lens = _lengths("random")
    copies = [a.copy() for a in (x, h0, dout, dh_n, lens)]
    out, h_n = rnn(x, h0, lengths=lens)
    expected = rnn.backward(dout, dh_n)
    assert not np.shares_memory(out, x) and not np.shares_memory(h_n, h0)
    out[...] = 123.0  # must not corrupt the cache
    h_n[...] = 7.0
    rnn.zero_grad()
    again = rnn.backward(dout, dh_n)
    for a, b in zip(again, expected):
        np.testing.assert_array_equal(a, b)
    for a, c in zip((x, h0, dout, dh_n, lens), copies):
        np.testing.assert_array_equal(a, c)
    # Linear and RNNCell outputs are new arrays too
    lin = Linear(I, H, dtype=np.float64)
    assert not np.shares_memory(lin(x), x)
    cell = RNNCell(I, H, dtype=np.float64)
    h = np.zeros((B, H))
    assert not np.shares_memory(cell(x[0], h), h)


def test_explicit_cache_backprop_through_cell_loop():
    """Saved RNNCell caches give BPTT through a Python loop, equal to RNN's."""
    cell = RNNCell(I, H, dtype=np.float64, seed=6)
    rnn = RNN(I, H, dtype=np.float64)
    rnn.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    x, h0, dout, _ = _problem(rnn)
    h, caches, states = h0[0], [], []
    for t in range(T):
        h = cell(x[t], h)
        caches.append(cell.cache)
        states.append(h)
    out, h_n = rnn(x, h0)
    assert_rel_close(np.stack(states), out, np.float64, tol=1e-13)
    dh, dxs = np.zeros((B, H)), []
    for t in range(T - 1, -1, -1):
        dx_t, dh = cell.backward(dout[t] + dh, cache=caches[t])
        dxs.append(dx_t)
    dx, dh0 = rnn.backward(dout)
    assert_rel_close(np.stack(dxs[::-1]), dx, np.float64, tol=1e-12, name="dx")
    assert_rel_close(dh, dh0[0], np.float64, tol=1e-12, name="dh0")
    for k in cell.grads:
        assert_rel_close(cell.grads[k], rnn.grads[k + "_l0"], np.float64, tol=1e-12, name=k)


def test_rnn_explicit_cache():
    rnn = RNN(I, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    x, h0, dout, dh_n = _problem(rnn)
    rnn(x, h0)
    saved = rnn.cache
    expected = rnn.backward(dout, dh_n)
    rnn(x[:2], h0)  # another forward replaces the default cache
    got = rnn.backward(dout, dh_n, cache=saved)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    other = RNN(I, H, dtype=np.float64)
    with pytest.raises(ValueError, match="cache"):
        other.backward(dout, dh_n, cache=saved)


@pytest.mark.parametrize("nl,expected", [("tanh", np.tanh), ("relu", lambda a: np.maximum(a, 0)),
                                         ("sigmoid", lambda a: 1 / (1 + np.exp(-a)))])
def test_rnncell_formula(nl, expected):
    cell = RNNCell(I, H, nonlinearity=nl, dtype=np.float64, seed=0)
    p = cell.params
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal((B, I)), rng.standard_normal((B, H))
    a = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
    assert_rel_close(cell(x, h), expected(a), np.float64, tol=1e-14)
    assert_rel_close(cell(x), expected(x @ p["weight_ih"].T + p["bias_ih"] + p["bias_hh"]),
                     np.float64, tol=1e-14)
    assert cell(x[0], h[0]).shape == (H,)
    dx, dh = cell.backward(np.ones(H))
    assert dx.shape == (I,) and dh.shape == (H,)


def test_linear_formula_and_shapes():
    lin = Linear(I, H, dtype=np.float64, seed=0)
    W, b = lin.params["weight"], lin.params["bias"]
    rng = np.random.default_rng(0)
    for shape in [(I,), (B, I), (T, B, I), (2, 3, 4, I), (0, I)]:
        x = rng.standard_normal(shape)
        y = lin(x)
        assert y.shape == shape[:-1] + (H,)
        np.testing.assert_allclose(y, x @ W.T + b, rtol=1e-14, atol=1e-15)
        lin.zero_grad()
        dy = rng.standard_normal(y.shape)
        dx = lin.backward(dy)
        assert dx.shape == shape
        np.testing.assert_allclose(dx, dy @ W, rtol=1e-14, atol=1e-15)
        n = int(np.prod(shape[:-1]))
        np.testing.assert_allclose(lin.grads["weight"], dy.reshape(n, H).T @ x.reshape(n, I), rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(lin.grads["bias"], dy.reshape(n, H).sum(0), rtol=1e-13, atol=1e-14)
    nob = Linear(I, H, bias=False, dtype=np.float64)
    assert list(nob.params) == ["weight"]
    x = rng.standard_normal((B, I))
    np.testing.assert_allclose(nob(x), x @ nob.params["weight"].T)


# --------------------------------------------------------------------------
# Gradient accumulation, zero_grad
# --------------------------------------------------------------------------

@pytest.mark.parametrize("make", ["rnn", "cell", "linear"])
def test_grads_accumulate_and_zero_grad(make):
    rng = np.random.default_rng(0)
    if make == "rnn":
        layer = RNN(I, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
        x = rng.standard_normal((T, B, I))
        out, _ = layer(x)
        bw = lambda: layer.backward(np.ones_like(out))  # noqa: E731
    elif make == "cell":
        layer = RNNCell(I, H, dtype=np.float64, seed=0)
        h1 = layer(rng.standard_normal((B, I)))
        bw = lambda: layer.backward(np.ones_like(h1))  # noqa: E731
    else:
        layer = Linear(I, H, dtype=np.float64, seed=0)
        y = layer(rng.standard_normal((B, I)))
        bw = lambda: layer.backward(np.ones_like(y))  # noqa: E731
    assert layer.grads.keys() == layer.params.keys()
    for k, g in layer.grads.items():
        assert g.shape == layer.params[k].shape and g.dtype == layer.params[k].dtype
        assert not np.any(g) and not np.shares_memory(g, layer.params[k])
    ids = {k: id(g) for k, g in layer.grads.items()}
    bw()
    once = {k: g.copy() for k, g in layer.grads.items()}
    assert any(np.any(g) for g in once.values())
    bw()
    for k, g in layer.grads.items():
        np.testing.assert_allclose(g, 2 * once[k], rtol=1e-14)
    layer.zero_grad()
    assert all(not np.any(g) for g in layer.grads.values())
    assert ids == {k: id(g) for k, g in layer.grads.items()}  # zeroed in place


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="forward"):
        RNN(I, H).backward(np.zeros((T, B, H), np.float32))
    with pytest.raises(RuntimeError, match="forward"):
        RNNCell(I, H).backward(np.zeros((B, H), np.float32))
    with pytest.raises(RuntimeError, match="forward"):
        Linear(I, H).backward(np.zeros((B, H), np.float32))


# --------------------------------------------------------------------------
# Dropout and train / eval
# --------------------------------------------------------------------------

def test_dropout_reproducible_with_seed():
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
    a = RNN(I, H, num_layers=3, dropout=0.5, seed=42)
    b = RNN(I, H, num_layers=3, dropout=0.5, seed=42)
    c = RNN(I, H, num_layers=3, dropout=0.5, seed=43)
    c.load_state_dict(a.state_dict())
    outs_a = [a(x)[0] for _ in range(3)]
    outs_b = [b(x)[0] for _ in range(3)]
    for oa, ob in zip(outs_a, outs_b):
        np.testing.assert_array_equal(oa, ob)
    assert not np.array_equal(outs_a[0], outs_a[1])  # new masks on every call
    assert not np.array_equal(c(x)[0], a(x)[0])  # other seed, other masks


def test_train_eval_and_dropout_effect():
    x = np.random.default_rng(0).standard_normal((T, B, I))
    rnn = RNN(I, H, num_layers=2, dropout=0.5, dtype=np.float64, seed=1)
    plain = RNN(I, H, num_layers=2, dtype=np.float64)
    plain.load_state_dict(rnn.state_dict())
    assert rnn.training is True
    assert rnn.eval() is rnn and rnn.training is False
    state = rnn.dropout_rng.bit_generator.state
    np.testing.assert_array_equal(rnn(x)[0], plain(x)[0])  # no dropout in eval mode
    np.testing.assert_array_equal(rnn(x)[0], rnn(x)[0])
    assert rnn.dropout_rng.bit_generator.state == state  # eval draws nothing
    assert rnn.train() is rnn and rnn.training is True
    assert not np.allclose(rnn(x)[0], plain(x)[0])
    rnn.train(False)
    assert rnn.training is False
    np.testing.assert_array_equal(rnn(x)[0], plain(x)[0])


def test_dropout_mask_statistics_and_extremes():
    rnn = RNN(I, 50, num_layers=2, dropout=0.3, dtype=np.float64, seed=0)
    mask = rnn._dropout_mask((200, 50))
    kept = mask != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(mask[kept], 1 / 0.7)
    # p = 1 drops everything: the top layer sees zero inputs
    full = RNN(I, H, num_layers=2, dropout=1.0, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, I))
    out, _ = full(x)
    top = RNN(H, H, dtype=np.float64)
    top.load_state_dict({k.replace("_l1", "_l0"): v for k, v in full.state_dict().items() if "_l1" in k})
    np.testing.assert_allclose(out, top(np.zeros((T, B, H)))[0], rtol=1e-14)
    dx, _ = full.backward(np.ones_like(out))
    assert not np.any(dx)


def test_dropout_with_one_layer_warns():
    with pytest.warns(UserWarning, match="num_layers"):
        RNN(I, H, num_layers=1, dropout=0.2)


def test_train_eval_backend_propagate_to_children():
    class Model(Module):
        def __init__(self, backend="c"):
            super().__init__(backend=backend)
            self.rnn = RNN(I, H, num_layers=2, dropout=0.1, dtype=np.float64, seed=0)
            self.head = Linear(H, 2, dtype=np.float64, seed=1)

        def config(self):
            return {"backend": self.backend}

    m = Model()
    assert list(m.params) == [f"rnn.{k}" for k in m.rnn.params] + ["head.weight", "head.bias"]
    for k, v in m.rnn.params.items():
        assert m.params[f"rnn.{k}"] is v and m.grads[f"rnn.{k}"] is m.rnn.grads[k]
    assert [n for n, _ in m.children()] == ["rnn", "head"]
    m.eval()
    assert not m.rnn.training and not m.head.training
    m.set_backend("numpy")
    assert m.rnn.backend == "numpy" and m.head.backend == "numpy"
    m.rnn.grads["weight_hh_l0"] += 1
    m.zero_grad()
    assert not np.any(m.rnn.grads["weight_hh_l0"])
    state = m.state_dict()
    state["head.bias"] = np.array([3.0, 4.0])
    m.load_state_dict(state)
    np.testing.assert_array_equal(m.head.params["bias"], [3.0, 4.0])
    assert m.num_parameters() == m.rnn.num_parameters() + m.head.num_parameters()
    m.head = Linear(H, 3, dtype=np.float64)  # replacing a child replaces its entries
    assert m.params["head.weight"].shape == (3, H)
    assert "Model" in repr(m)


# --------------------------------------------------------------------------
# Parameters, seeds and initialisation
# --------------------------------------------------------------------------

def test_parameter_names_shapes_and_order():
    rnn = RNN(I, H, num_layers=2, bidirectional=True, dtype=np.float64)
    expected = []
    for layer, in_size in ((0, I), (1, 2 * H)):
        for sfx in ("", "_reverse"):
            expected += [(f"weight_ih_l{layer}{sfx}", (H, in_size)), (f"weight_hh_l{layer}{sfx}", (H, H)),
                         (f"bias_ih_l{layer}{sfx}", (H,)), (f"bias_hh_l{layer}{sfx}", (H,))]
    assert [(k, v.shape) for k, v in rnn.params.items()] == expected
    assert all(v.dtype == np.float64 for v in rnn.params.values())
    assert list(RNN(I, H, bias=False).params) == ["weight_ih_l0", "weight_hh_l0"]
    assert list(RNNCell(I, H).params) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert rnn.parameters() is rnn.params
    assert [n for n, _ in rnn.named_parameters("rnn")] == ["rnn." + k for k, _ in expected]
    assert [n for n, _ in rnn.named_parameters()] == [k for k, _ in expected]
    assert rnn.num_parameters() == sum(int(np.prod(s)) for _, s in expected)


def test_seeds():
    a, b, c = RNN(I, H, seed=1), RNN(I, H, seed=1), RNN(I, H, seed=2)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
        assert not np.array_equal(a.params[k], c.params[k])
    # the documented generator: np.random.default_rng(seed), parameters in order
    rng = np.random.default_rng(1)
    k = 1 / np.sqrt(H)
    np.testing.assert_array_equal(a.params["weight_ih_l0"], rng.uniform(-k, k, (H, I)).astype(np.float32))
    # float32 and float64 layers with one seed hold the same values
    d = RNN(I, H, seed=1, dtype=np.float64)
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], d.params[key].astype(np.float32))
    # seed=None: fresh entropy
    assert not np.array_equal(RNN(I, H).params["weight_hh_l0"], RNN(I, H).params["weight_hh_l0"])
    np.testing.assert_array_equal(Linear(I, H, seed=3).params["weight"], Linear(I, H, seed=3).params["weight"])
    np.testing.assert_array_equal(RNNCell(I, H, seed=3).params["weight_hh"], RNNCell(I, H, seed=3).params["weight_hh"])


def _uniform_ok(a, bound):
    """a looks like U(-bound, bound) draws (5-sigma tolerances for its size)."""
    a = np.asarray(a, np.float64).ravel()
    n = a.size
    assert np.all(np.abs(a) <= bound * (1 + 1e-6))
    assert abs(a.mean()) < 5 * bound / np.sqrt(3 * n)
    assert abs(a.var() / (bound ** 2 / 3) - 1) < 5 * np.sqrt(0.8 / n)
    assert np.abs(a).max() > bound * (1 - 10 / n)  # P(fail) ~ exp(-10)


def test_init_pytorch_statistics():
    rnn = RNN(40, 64, num_layers=2, bidirectional=True, seed=0)
    for v in rnn.params.values():
        _uniform_ok(v, 1 / np.sqrt(64))
    cell = RNNCell(40, 64, seed=0)
    for v in cell.params.values():
        _uniform_ok(v, 1 / np.sqrt(64))
    lin = Linear(100, 60, seed=0)
    _uniform_ok(lin.params["weight"], 1 / np.sqrt(100))
    assert np.all(np.abs(lin.params["bias"]) <= 1 / np.sqrt(100))


def test_init_orthogonal_and_glorot():
    rnn = RNN(30, 40, num_layers=2, bidirectional=True, init="orthogonal", dtype=np.float64, seed=0)
    for k, v in rnn.params.items():
        if k.startswith("weight_hh"):
            np.testing.assert_allclose(v @ v.T, np.eye(40), atol=1e-12)
        elif k.startswith("weight_ih"):
            _uniform_ok(v, 1 / np.sqrt(40))
        else:
            assert not np.any(v)
    g = RNN(30, 40, num_layers=2, init="glorot", dtype=np.float64, seed=0)
    _uniform_ok(g.params["weight_ih_l0"], np.sqrt(6 / 70))
    _uniform_ok(g.params["weight_hh_l0"], np.sqrt(6 / 80))
    _uniform_ok(g.params["weight_ih_l1"], np.sqrt(6 / 80))
    assert not np.any(g.params["bias_ih_l1"])
    cell = RNNCell(30, 40, init="orthogonal", dtype=np.float64, seed=0)
    np.testing.assert_allclose(cell.params["weight_hh"].T @ cell.params["weight_hh"], np.eye(40), atol=1e-12)
    lin = Linear(20, 50, init="orthogonal", dtype=np.float64, seed=0)
    np.testing.assert_allclose(lin.params["weight"].T @ lin.params["weight"], np.eye(20), atol=1e-12)
    assert not np.any(lin.params["bias"])
    _uniform_ok(Linear(200, 100, init="glorot", seed=0).params["weight"], np.sqrt(6 / 300))


def test_init_functions():
    rng = np.random.default_rng(0)
    for shape in [(3, 7), (7, 3), (5, 5), (4, 2, 3)]:
        q = cinit.orthogonal(shape, rng, gain=2.0, dtype=np.float64)
        assert q.shape == shape and q.dtype == np.float64
        m = q.reshape(shape[0], -1) / 2.0
        small = min(m.shape)
        gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
        np.testing.assert_allclose(gram, np.eye(small), atol=1e-12)
    assert cinit.orthogonal((0, 4), rng).shape == (0, 4)
    a = np.zeros((500, 4), np.float32)
    assert cinit.uniform_(a, 0.5, rng) is a
    _uniform_ok(a, 0.5)
    p = cinit.pytorch_default((300, 10), 25, rng, np.float64)
    assert p.dtype == np.float64
    _uniform_ok(p, 0.2)
    assert not np.any(cinit.pytorch_default((3,), 0, rng))
    _uniform_ok(cinit.glorot_uniform((300, 100), rng), np.sqrt(6 / 400))
    with pytest.raises(ValueError, match="2 dimensions"):
        cinit.orthogonal((3,), rng)
    with pytest.raises(ValueError, match="2 dimensions"):
        cinit.glorot_uniform((3,), rng)
    with pytest.raises(TypeError, match="Generator"):
        cinit.uniform_(a, 1.0, 0)
    with pytest.raises(ValueError, match="bound"):
        cinit.uniform_(a, -1.0, rng)


# --------------------------------------------------------------------------
# state_dict / load_state_dict / config
# --------------------------------------------------------------------------

def test_state_dict_copies_and_load_in_place():
    a = RNN(I, H, num_layers=2, dtype=np.float32, seed=0)
    b = RNN(I, H, num_layers=2, dtype=np.float32, seed=1)
    sd = a.state_dict()
    for k, v in sd.items():
        assert v is not a.params[k] and not np.shares_memory(v, a.params[k])
        np.testing.assert_array_equal(v, a.params[k])
    ids = {k: id(v) for k, v in b.params.items()}
    res = b.load_state_dict({k: v.astype(np.float64) for k, v in sd.items()})  # cast on load
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert ids == {k: id(v) for k, v in b.params.items()}
    for k in sd:
        assert b.params[k].dtype == np.float32
        np.testing.assert_array_equal(b.params[k], sd[k])
    b.load_state_dict({k: v.tolist() for k, v in sd.items()})  # anything np.asarray accepts
    sd["weight_hh_l0"][...] = 0  # the state dict is a copy
    assert np.any(a.params["weight_hh_l0"])


def test_load_state_dict_errors_list_everything_and_change_nothing():
    rnn = RNN(I, H, num_layers=2, seed=0)
    before = rnn.state_dict()
    bad = rnn.state_dict()
    del bad["bias_hh_l1"]
    bad["weight_ih_l0"] = np.zeros((H, I + 1))
    bad["weight_hh_l0"] = np.zeros((H, H))  # valid: must not be written when the load fails
    bad["extra"] = np.zeros(2)
    with pytest.raises(ValueError) as exc:
        rnn.load_state_dict(bad)
    msg = str(exc.value)
    for part in ("missing keys: bias_hh_l1", "unexpected keys: extra", "weight_ih_l0",
                 f"expected shape ({H}, {I}), got ({H}, {I + 1})"):
        assert part in msg, msg
    for k in before:
        np.testing.assert_array_equal(rnn.params[k], before[k])
    # strict=False skips missing / unexpected keys but not shape mismatches
    with pytest.raises(ValueError, match="weight_ih_l0"):
        rnn.load_state_dict(bad, strict=False)
    del bad["weight_ih_l0"]
    res = rnn.load_state_dict(bad, strict=False)
    assert res.missing_keys == ["weight_ih_l0", "bias_hh_l1"] and res.unexpected_keys == ["extra"]
    assert not np.any(rnn.params["weight_hh_l0"])
    with pytest.raises(TypeError, match="mapping"):
        rnn.load_state_dict([("weight_ih_l0", before["weight_ih_l0"])])
    with pytest.raises(TypeError, match="numeric"):
        rnn.load_state_dict({**before, "weight_hh_l0": np.array([["a"] * H] * H)})


@pytest.mark.parametrize("make", [
    lambda: RNN(I, H, num_layers=2, nonlinearity="relu", bias=False, batch_first=True, dropout=0.25,
                bidirectional=True, dtype=np.float64, seed=3, backend="numpy", init="glorot"),
    lambda: RNNCell(I, H, bias=False, nonlinearity="sigmoid", dtype="float64", seed=1, init="orthogonal"),
    lambda: Linear(I, H, bias=False, dtype=np.float32, backend="numpy", init="glorot"),
], ids=["RNN", "RNNCell", "Linear"])
def test_config_rebuilds_the_layer(make):
    layer = make()
    cfg = layer.config()
    assert json.loads(json.dumps(cfg)) == cfg
    twin = type(layer)(**cfg)
    assert twin.config() == cfg
    assert [(k, v.shape, v.dtype) for k, v in twin.params.items()] == \
        [(k, v.shape, v.dtype) for k, v in layer.params.items()]
    if cfg.get("seed") is not None:
        for k in layer.params:
            np.testing.assert_array_equal(twin.params[k], layer.params[k])
    assert type(layer).__name__ in repr(layer)


# --------------------------------------------------------------------------
# Errors name the bad argument
# --------------------------------------------------------------------------

def test_input_dtype_errors():
    rnn = RNN(I, H, dtype=np.float32)
    x64 = np.zeros((T, B, I))
    with pytest.raises(TypeError, match=r"x has dtype float64 .*float32"):
        rnn(x64)
    with pytest.raises(TypeError, match="x must be a float32 array, got dtype int64"):
        rnn(np.zeros((T, B, I), dtype=np.int64))
    with pytest.raises(TypeError, match="x must be"):
        rnn(None)
    x = np.zeros((T, B, I), np.float32)
    with pytest.raises(TypeError, match="h0 has dtype float64"):
        rnn(x, np.zeros((1, B, H)))
    with pytest.raises(TypeError, match="lengths must be integers"):
        rnn(x, lengths=np.full(B, 2.0))
    out, h_n = rnn(x)
    with pytest.raises(TypeError, match="dout has dtype float64"):
        rnn.backward(out.astype(np.float64))
    with pytest.raises(TypeError, match="dh_n has dtype float64"):
        rnn.backward(out, h_n.astype(np.float64))
    # byte-swapped arrays of the right precision are accepted
    out2, _ = rnn(x.astype(">f4"))
    np.testing.assert_array_equal(out2, out)
    cell, lin = RNNCell(I, H, dtype=np.float64), Linear(I, H, dtype=np.float64)
    with pytest.raises(TypeError, match="x has dtype float32"):
        cell(np.zeros((B, I), np.float32))
    with pytest.raises(TypeError, match="h has dtype float32"):
        cell(np.zeros((B, I)), np.zeros((B, H), np.float32))
    with pytest.raises(TypeError, match="x must be a float64 array, got dtype int64"):
        lin(np.zeros((B, I), np.int64))
    cell(np.zeros((B, I)))
    with pytest.raises(TypeError, match="dh has dtype float32"):
        cell.backward(np.zeros((B, H), np.float32))
    lin(np.zeros((B, I)))
    with pytest.raises(TypeError, match="dy has dtype float32"):
        lin.backward(np.zeros((B, H), np.float32))


def test_input_shape_errors():
    rnn = RNN(I, H, num_layers=2, bidirectional=True, dtype=np.float64)
    x = np.zeros((T, B, I))
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, input_size\)"):
        rnn(np.zeros((T, B, I, 1)))
    with pytest.raises(ValueError, match="input_size = 3"):
        rnn(np.zeros((T, B, I + 1)))
    with pytest.raises(ValueError, match=r"h0 must have shape .* = \(4, 4, 5\), got \(2, 4, 5\)"):
        rnn(x, np.zeros((2, B, H)))
    with pytest.raises(ValueError, match=r"h0 must have shape .* = \(4, 5\)"):
        rnn(x[:, 0], np.zeros((4, 1, H)))
    with pytest.raises(ValueError, match="lengths must have shape"):
        rnn(x, lengths=[1, 2])
    with pytest.raises(ValueError, match="lengths must lie in"):
        rnn(x, lengths=[T + 1] * B)
    with pytest.raises(ValueError, match="lengths applies to batched input"):
        rnn(x[:, 0], lengths=[2])
    out, h_n = rnn(x)
    with pytest.raises(ValueError, match=r"dout must have shape the shape of out = \(6, 4, 10\)"):
        rnn.backward(out[:, :, :H])
    with pytest.raises(ValueError, match="dh_n must have shape"):
        rnn.backward(out, h_n[:2])
    bf = RNN(I, H, batch_first=True, dtype=np.float64)
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, input_size\)"):
        bf(np.zeros(3))
    cell = RNNCell(I, H, dtype=np.float64)
    with pytest.raises(ValueError, match="x must have shape"):
        cell(np.zeros((B, I + 1)))
    with pytest.raises(ValueError, match=r"h must have shape \(B, hidden_size\)"):
        cell(np.zeros((B, I)), np.zeros((B + 1, H)))
    with pytest.raises(ValueError, match=r"h must have shape \(hidden_size,\)"):
        cell(np.zeros(I), np.zeros((1, H)))
    cell(np.zeros((B, I)))
    with pytest.raises(ValueError, match="dh must have shape"):
        cell.backward(np.zeros((B, H + 1)))
    lin = Linear(I, H, dtype=np.float64)
    with pytest.raises(ValueError, match="in_features = 3"):
        lin(np.zeros((B, I + 1)))
    with pytest.raises(ValueError, match="in_features"):
        lin(np.float64(1.0))
    lin(np.zeros((T, B, I)))
    with pytest.raises(ValueError, match=r"dy must have shape .*\(6, 4, 5\)"):
        lin.backward(np.zeros((B, H)))


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(hidden_size=0), ValueError, "hidden_size must be >= 1"),
    (dict(hidden_size=2.0), TypeError, "hidden_size must be an integer"),
    (dict(input_size=-1), ValueError, "input_size must be >= 0"),
    (dict(num_layers=0), ValueError, "num_layers must be >= 1"),
    (dict(num_layers=True), TypeError, "num_layers must be an integer"),
    (dict(nonlinearity="gelu"), ValueError, "nonlinearity"),
    (dict(dropout=1.5), ValueError, "dropout"),
    (dict(dropout="0.1"), TypeError, "dropout"),
    (dict(bias=1), TypeError, "bias must be a bool"),
    (dict(batch_first=None), TypeError, "batch_first must be a bool"),
    (dict(bidirectional="yes"), TypeError, "bidirectional must be a bool"),
    (dict(dtype=np.int32), TypeError, "dtype must be float32 or float64"),
    (dict(dtype=np.float16), TypeError, "dtype must be float32 or float64"),
    (dict(dtype="nonsense"), TypeError, "dtype"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=1.5), TypeError, "seed"),
    (dict(backend="torch"), ValueError, "backend must be one of"),
    (dict(init="he"), ValueError, "init must be one of"),
])
def test_constructor_errors(kwargs, exc, match):
    args = dict(input_size=I, hidden_size=H, num_layers=2)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        RNN(**args)


def test_cell_linear_constructor_errors_and_set_backend():
    with pytest.raises(ValueError, match="hidden_size"):
        RNNCell(I, 0)
    with pytest.raises(TypeError, match="dtype"):
        RNNCell(I, H, dtype=int)
    with pytest.raises(ValueError, match="out_features"):
        Linear(I, -1)
    with pytest.raises(ValueError, match="init"):
        Linear(I, H, init="zeros")
    lin = Linear(0, 2, dtype=np.float64)  # zero-sized layers are allowed, as in PyTorch
    assert lin(np.zeros((3, 0))).shape == (3, 2)
    with pytest.raises(ValueError, match="backend"):
        Linear(I, H).set_backend("cuda")
    with pytest.raises(NotImplementedError):
        Module().config()
    with pytest.raises(ValueError, match="parameter name"):
        Module().register_parameter("__config__", np.zeros(1))
    with pytest.raises(AttributeError, match="Module.__init__"):
        class Broken(Module):
            def __init__(self):
                self.child = Linear(1, 1)
        Broken()

