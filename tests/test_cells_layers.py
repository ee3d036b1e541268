"""The layers of every cell: ``crnn.nn.recurrent_layer(cell, ...)`` (crnn.RNN,
LSTM, GRU, or a ``Recurrent`` of the cell) and the one-step
``RecurrentCell`` (RNNCell, LSTMCell, GRUCell, for the cells without an
output size).

- backend "c" equals backend "numpy" (float32 <= 1e-5, float64 <= 1e-12
  relative) over num_layers x bidirectional x lengths x options x layout,
  with and without dropout; a one-layer layer equals the functional API;
- gradients by central differences (float64, `crnn.gradcheck`), dropout
  included (the dropout generator's state is restored before each forward);
- semantics that need no PyTorch: a padded row equals the row run alone,
  batch-first and unbatched layouts equal the time-major batch, a loop of
  one-step cells equals the layer, explicit caches, empty shapes;
- states: an array for one-state cells, a tuple (items may be None) for the
  others; parameters named and shaped from the spec, seeded, initialised
  with PyTorch's bounds; save / load; forged files; errors naming the
  argument; gradients accumulate until zero_grad.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import crnn
from crnn import serialization
from helpers import assert_bitwise, assert_rel_close, rel_error
from problems import SPECS, cell_params, cell_variants, default_output_size, dtype_param

T, B, I, H = 6, 4, 3, 5
NO_OUTPUT = dict(where=lambda s: not s.uses_output_size)


def make_layer(spec, input_size=I, hidden_size=H, *, options=None, **kw):
    extra = {"output_size": default_output_size(hidden_size)} if spec.uses_output_size else {}
    return crnn.nn.recurrent_layer(spec, input_size, hidden_size, **extra, **kw, **(options or {}))


def _lengths(kind, batch=B, steps=T, seed=3):
    if kind is None:
        return None
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, steps + 1, size=batch)
    lens[0] = steps  # the longest row fills the batch
    if kind == "zeros":
        lens[1] = 0
    return lens


def _state_arg(spec, parts):
    if parts is None:
        return None
    return tuple(parts) if len(spec.states) > 1 else parts[0]


def _as_list(spec, state):
    return list(state) if len(spec.states) > 1 else [state]


def _inputs(layer, *, batch=B, steps=T, unbatched=False, states=True, seed=1):
    """x, initial states (a list, or None), dout, dstates in the layer's layout and dtype."""
    rng = np.random.default_rng(seed)
    dt, spec = layer.dtype, layer.spec
    L, D, W = layer.num_layers, layer.num_directions, layer.width
    if unbatched:
        x_shape, s_shape, o_shape = (steps, layer.input_size), (L * D, W), (steps, D * W)
    elif layer.batch_first:
        x_shape, s_shape, o_shape = (
            (batch, steps, layer.input_size),
            (L * D, batch, W),
            (batch, steps, D * W),
        )
    else:
        x_shape, s_shape, o_shape = (
            (steps, batch, layer.input_size),
            (L * D, batch, W),
            (steps, batch, D * W),
        )
    x = rng.standard_normal(x_shape).astype(dt)
    s0 = [(0.5 * rng.standard_normal(s_shape)).astype(dt) for _ in spec.states] if states else None
    dout = rng.standard_normal(o_shape).astype(dt)
    ds = [rng.standard_normal(s_shape).astype(dt) for _ in spec.states]
    return x, s0, dout, ds


def _run(layer, x, s0, dout, ds, lengths=None):
    spec = layer.spec
    out, s_n = layer(x, _state_arg(spec, s0), lengths=lengths)
    dx, d0 = layer.backward(dout, _state_arg(spec, ds))
    res = {"out": out, "dx": dx}
    for name, s, d in zip(spec.states, _as_list(spec, s_n), _as_list(spec, d0)):
        res[f"{name}_n"], res[f"d{name}0"] = s, d
    res.update({"grad." + k: v.copy() for k, v in layer.grads.items()})
    return res


def _compare(a, b, dtype, tol=None):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape, k
        assert a[k].dtype == np.dtype(dtype), k
        assert_rel_close(a[k], b[k], dtype, tol=tol, name=k)


def _both_backends(spec, options, **kw):
    return (
        make_layer(spec, options=options, backend="c", **kw),
        make_layer(spec, options=options, backend="numpy", **kw),
    )


# --------------------------------------------------------------------------
# Backend "c" equals backend "numpy"
# --------------------------------------------------------------------------
ARCHS = [(1, False), (1, True), (2, True), (3, False)]


@dtype_param
@pytest.mark.parametrize("layers, bidirectional", ARCHS, ids=str)
@pytest.mark.parametrize("lengths", [None, "random", "zeros"], ids=str)
@pytest.mark.parametrize("spec, options", cell_variants())
def test_c_equals_numpy(spec, options, lengths, layers, bidirectional, dtype):
    rc, rn = _both_backends(
        spec, options, num_layers=layers, bidirectional=bidirectional, dtype=dtype, seed=7
    )
    x, s0, dout, ds = _inputs(rc)
    lens = _lengths(lengths)
    _compare(_run(rc, x, s0, dout, ds, lens), _run(rn, x, s0, dout, ds, lens), dtype)


@dtype_param
@pytest.mark.parametrize("layout", ["batch_first", "unbatched", "no_states", "no_bias"])
@pytest.mark.parametrize("spec, options", cell_variants())
def test_c_equals_numpy_layouts(spec, options, layout, dtype):
    rc, rn = _both_backends(
        spec,
        options,
        num_layers=2,
        bidirectional=True,
        dtype=dtype,
        seed=8,
        batch_first=layout == "batch_first",
        bias=layout != "no_bias",
    )
    x, s0, dout, ds = _inputs(rc, unbatched=layout == "unbatched", states=layout != "no_states")
    lens = _lengths("random") if layout == "batch_first" else None
    _compare(_run(rc, x, s0, dout, ds, lens), _run(rn, x, s0, dout, ds, lens), dtype)


@dtype_param
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("spec, options", cell_variants())
def test_c_equals_numpy_with_dropout(spec, options, bidirectional, dtype):
    rc, rn = _both_backends(
        spec, options, num_layers=3, bidirectional=bidirectional, dropout=0.4, dtype=dtype, seed=9
    )
    x, s0, dout, ds = _inputs(rc)
    for _ in range(2):  # the second call draws new masks, identically on both
        rc.zero_grad()
        rn.zero_grad()
        _compare(
            _run(rc, x, s0, dout, ds, _lengths("random")),
            _run(rn, x, s0, dout, ds, _lengths("random")),
            dtype,
        )


@dtype_param
@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("spec, options", cell_variants(**NO_OUTPUT))
def test_recurrent_cell_c_equals_numpy(spec, options, unbatched, dtype):
    rng = np.random.default_rng(0)
    lead = () if unbatched else (B,)
    x = rng.standard_normal(lead + (I,)).astype(dtype)
    s = [rng.standard_normal(lead + (H,)).astype(dtype) for _ in spec.states]
    ds = [rng.standard_normal(lead + (H,)).astype(dtype) for _ in spec.states]
    res = []
    for backend in ("c", "numpy"):
        cell = crnn.nn.RecurrentCell(spec, I, H, dtype=dtype, seed=4, backend=backend, **options)
        new = _as_list(spec, cell(x, _state_arg(spec, s)))
        dx, d0 = cell.backward(_state_arg(spec, ds))
        r = {"dx": dx, **{"grad." + k: v.copy() for k, v in cell.grads.items()}}
        for name, n, d in zip(spec.states, new, _as_list(spec, d0)):
            r[name], r["d" + name] = n, d
        res.append(r)
    _compare(res[0], res[1], dtype)


@pytest.mark.parametrize("layout", ["time_major", "batch_first", "unbatched"])
@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("spec, options", cell_variants())
def test_one_layer_equals_the_functional_api(spec, options, backend, layout):
    """A one-layer, one-direction layer is the cell's forward / backward."""
    layer = make_layer(
        spec,
        options=options,
        dtype=np.float64,
        seed=3,
        backend=backend,
        batch_first=layout == "batch_first",
    )
    rng = np.random.default_rng(3)
    W = layer.width
    x, dout = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, W))
    s0 = [0.5 * rng.standard_normal((B, W)) for _ in spec.states]
    ds = [rng.standard_normal((B, W)) for _ in spec.states]
    weights = {w: layer.params.get(w + "_l0") for w in spec.weight_names}
    rows = range(B) if layout == "unbatched" else [slice(None)]
    for b in rows:
        sl = slice(b, b + 1) if layout == "unbatched" else b
        out_r, states_r, cache = crnn.reference.forward(
            spec, x[:, sl], [s[sl] for s in s0], weights, **options
        )
        g = crnn.reference.backward(dout[:, sl], [d[sl] for d in ds], cache)
        layer.zero_grad()
        if layout == "unbatched":
            out, s_n = layer(x[:, b], _state_arg(spec, [s[b][None] for s in s0]))
            dx, d0 = layer.backward(dout[:, b], _state_arg(spec, [d[b][None] for d in ds]))
            assert_rel_close(out, out_r[:, 0], tol=1e-12, name="out")
            assert_rel_close(dx, g.dx[:, 0], tol=1e-12, name="dx")
            for s, sr in zip(_as_list(spec, s_n), states_r):
                assert_rel_close(s[0], sr[0], tol=1e-12, name="state_n")
            for d, name in zip(_as_list(spec, d0), spec.states):
                assert_rel_close(d[0], getattr(g, f"d{name}0")[0], tol=1e-12, name=f"d{name}0")
            continue
        tr = (lambda a: a.transpose(1, 0, 2)) if layout == "batch_first" else (lambda a: a)
        out, s_n = layer(tr(x), _state_arg(spec, [s[None] for s in s0]))
        dx, d0 = layer.backward(tr(dout), _state_arg(spec, [d[None] for d in ds]))
        assert_rel_close(out, tr(out_r), tol=1e-12, name="out")
        assert_rel_close(dx, tr(g.dx), tol=1e-12, name="dx")
        for s, sr in zip(_as_list(spec, s_n), states_r):
            assert_rel_close(s[0], sr, tol=1e-12, name="state_n")
        for d, name in zip(_as_list(spec, d0), spec.states):
            assert_rel_close(d[0], getattr(g, f"d{name}0"), tol=1e-12, name=f"d{name}0")
        for w in spec.weight_names:
            assert_rel_close(layer.grads[w + "_l0"], getattr(g, "d" + w), tol=1e-12, name=w)


@pytest.mark.parametrize("spec", cell_params())
def test_set_backend_between_forward_and_backward(spec):
    r = make_layer(spec, num_layers=2, bidirectional=True, dtype=np.float64, seed=0, backend="c")
    expected_layer = make_layer(
        spec, num_layers=2, bidirectional=True, dtype=np.float64, seed=0, backend="numpy"
    )
    x, s0, dout, ds = _inputs(r)
    lens = _lengths("random")
    expected = _run(expected_layer, x, s0, dout, ds, lens)
    r(x, _state_arg(spec, s0), lengths=lens)
    assert r.set_backend("numpy") is r
    dx, d0 = r.backward(dout, _state_arg(spec, ds))
    assert_rel_close(dx, expected["dx"], np.float64, name="dx")
    for name, d in zip(spec.states, _as_list(spec, d0)):
        assert_rel_close(d, expected[f"d{name}0"], np.float64, name=name)
    assert r.engine is crnn.reference


# --------------------------------------------------------------------------
# Gradients by central differences (float64)
# --------------------------------------------------------------------------
def _check_gradients(layer, x, s0, dout, ds, lengths=None, n_entries=5, seed=0):
    """Analytic vs numeric gradients for x, the initial states and every
    parameter, `n_entries` random entries of each (dropout masks replayed)."""
    spec = layer.spec
    state = layer.dropout_rng.bit_generator.state

    def loss():
        layer.dropout_rng.bit_generator.state = state  # the same dropout masks every time
        out, s_n = layer(x, _state_arg(spec, s0), lengths=lengths)
        return float(
            np.sum(out * dout) + sum(np.sum(s * d) for s, d in zip(_as_list(spec, s_n), ds))
        )

    layer.zero_grad()
    loss()
    dx, d0 = layer.backward(dout, _state_arg(spec, ds))
    params = {"x": x, **{f"{n}0": s for n, s in zip(spec.states, s0)}, **layer.params}
    grads = {
        "x": dx,
        **{f"{n}0": d for n, d in zip(spec.states, _as_list(spec, d0))},
        **{k: v.copy() for k, v in layer.grads.items()},
    }
    report = crnn.gradcheck(
        loss, params, grads, rtol=1e-5, atol=1e-7, max_checks_per_param=n_entries, rng=seed
    )
    assert report, str(report)


@pytest.mark.parametrize(
    "case", ["bidir_lengths_batch_first", "stacked", "unbatched", "dropout_training"]
)
@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("spec, options", cell_variants())
def test_layer_gradients_numeric(spec, options, backend, case):
    kw = dict(num_layers=2, bidirectional=True, dtype=np.float64, seed=5, backend=backend)
    lengths, unbatched = None, False
    if case == "bidir_lengths_batch_first":
        kw["batch_first"] = True
        lengths = _lengths("zeros", batch=3, steps=4)
    elif case == "stacked":
        kw.update(num_layers=3, bidirectional=False)
    elif case == "unbatched":
        unbatched = True
    else:
        kw.update(num_layers=3, dropout=0.5)
    layer = make_layer(spec, 2, 3, options=options, **kw)
    x, s0, dout, ds = _inputs(layer, batch=3, steps=4, unbatched=unbatched, seed=11)
    _check_gradients(layer, x, s0, dout, ds, lengths)


@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("spec, options", cell_variants(**NO_OUTPUT))
def test_recurrent_cell_gradients_numeric(spec, options, backend):
    rng = np.random.default_rng(0)
    cell = crnn.nn.RecurrentCell(spec, 3, 4, dtype=np.float64, seed=1, backend=backend, **options)
    x = rng.standard_normal((2, 3))
    s = [rng.standard_normal((2, 4)) for _ in spec.states]
    ds = [rng.standard_normal((2, 4)) for _ in spec.states]
    cell(x, _state_arg(spec, s))
    dx, d0 = cell.backward(_state_arg(spec, ds))

    def loss():
        return float(
            sum(np.sum(n * d) for n, d in zip(_as_list(spec, cell(x, _state_arg(spec, s))), ds))
        )

    params = {"x": x, **{n: a for n, a in zip(spec.states, s)}, **cell.params}
    grads = {
        "x": dx,
        **{n: d for n, d in zip(spec.states, _as_list(spec, d0))},
        **{k: v.copy() for k, v in cell.grads.items()},
    }
    report = crnn.gradcheck(loss, params, grads, rtol=1e-6, atol=1e-8)
    assert report, str(report)


# --------------------------------------------------------------------------
# Semantics checked without PyTorch
# --------------------------------------------------------------------------
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("spec", cell_params())
def test_padded_row_equals_row_alone(spec, bidirectional):
    """With lengths, each row behaves as if run alone on its valid steps."""
    layer = make_layer(spec, num_layers=2, bidirectional=bidirectional, dtype=np.float64, seed=3)
    x, s0, dout, ds = _inputs(layer)
    lens = _lengths("zeros")
    x_padded = x.copy()
    for b, n in enumerate(lens):
        x_padded[n:, b] = np.nan  # padded inputs are never read
    res = _run(layer, x_padded, s0, dout, ds, lens)
    assert np.isfinite(res["out"]).all() and np.isfinite(res["dx"]).all()
    for b, n in enumerate(lens):
        assert np.all(res["out"][n:, b] == 0) and np.all(res["dx"][n:, b] == 0)
        single = make_layer(spec, num_layers=2, bidirectional=bidirectional, dtype=np.float64)
        single.load_state_dict(layer.state_dict())
        alone = _run(
            single,
            x[:n, b : b + 1],
            [s[:, b : b + 1] for s in s0],
            dout[:n, b : b + 1],
            [d[:, b : b + 1] for d in ds],
        )
        assert_rel_close(res["out"][:n, b], alone["out"][:, 0], tol=1e-12, name="out")
        assert_rel_close(res["dx"][:n, b], alone["dx"][:, 0], tol=1e-12, name="dx")
        for name in spec.states:
            for key in (f"{name}_n", f"d{name}0"):
                assert_rel_close(res[key][:, b], alone[key][:, 0], tol=1e-12, name=key)


@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("spec", cell_params())
def test_batch_first_and_unbatched_equal_time_major(spec, backend):
    kw = dict(num_layers=2, bidirectional=True, dtype=np.float64, seed=2, backend=backend)
    tm, bf = make_layer(spec, **kw), make_layer(spec, batch_first=True, **kw)
    x, s0, dout, ds = _inputs(tm)
    lens = _lengths("random")
    a = _run(tm, x, s0, dout, ds, lens)
    b = _run(bf, x.transpose(1, 0, 2), s0, dout.transpose(1, 0, 2), ds, lens)
    for k in ("out", "dx"):
        assert b[k].flags.c_contiguous
        assert_rel_close(b[k].transpose(1, 0, 2), a[k], np.float64, tol=1e-14, name=k)
    for k in a:
        if k not in ("out", "dx"):
            assert_rel_close(b[k], a[k], np.float64, tol=1e-14, name=k)
    # unbatched (T, I) is the batch of one, for time-major and batch-first layers alike
    W = tm.width
    for layer in (tm, bf):
        layer.zero_grad()
        u = _run(layer, x[:, 0], [s[:, 0] for s in s0], dout[:, 0], [d[:, 0] for d in ds])
        tm.zero_grad()
        one = _run(tm, x[:, :1], [s[:, :1] for s in s0], dout[:, :1], [d[:, :1] for d in ds])
        assert u["out"].shape == (T, 2 * W) and u["dx"].shape == (T, I)
        for k in u:
            if not k.startswith("grad."):
                if k not in ("out", "dx"):
                    assert u[k].shape == (4, W), k
                assert_rel_close(u[k], one[k][:, 0], np.float64, tol=1e-14, name=k)


@pytest.mark.parametrize("spec", cell_params())
def test_shapes_and_dstates_without_initial_states(spec):
    layer = make_layer(spec, num_layers=3, bidirectional=True, dtype=np.float32, seed=0)
    W = layer.width
    x = np.zeros((T, B, I), np.float32)
    out, s_n = layer(x)
    assert out.shape == (T, B, 2 * W)
    for s in _as_list(spec, s_n):
        assert s.shape == (6, B, W)
    dx, d0 = layer.backward(np.ones_like(out))
    assert dx.shape == x.shape and all(d.shape == (6, B, W) for d in _as_list(spec, d0))
    dx, d0 = layer.backward(None, _state_arg(spec, [np.ones_like(s) for s in _as_list(spec, s_n)]))
    assert dx.shape == x.shape and all(d.shape == (6, B, W) for d in _as_list(spec, d0))
    u_out, u_sn = layer(x[:, 0])
    assert u_out.shape == (T, 2 * W) and all(s.shape == (6, W) for s in _as_list(spec, u_sn))
    assert all(d.shape == (6, W) for d in _as_list(spec, layer.backward(np.ones_like(u_out))[1]))


@pytest.mark.parametrize("spec", cell_params())
def test_empty_sequence_and_batch(spec):
    layer = make_layer(spec, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    W = layer.width
    s0 = [np.ones((4, 2, W)) * (k + 1) for k in range(len(spec.states))]
    out, s_n = layer(np.zeros((0, 2, I)), _state_arg(spec, s0))
    assert out.shape == (0, 2, 2 * W)
    for s, s_init in zip(_as_list(spec, s_n), s0):
        np.testing.assert_array_equal(s, s_init)
    ds = [np.ones_like(s) for s in s0]
    dx, d0 = layer.backward(np.zeros((0, 2, 2 * W)), _state_arg(spec, ds))
    assert dx.shape == (0, 2, I)
    for d, want in zip(_as_list(spec, d0), ds):
        np.testing.assert_array_equal(d, want)
    out, s_n = layer(np.zeros((3, 0, I)))
    assert out.shape == (3, 0, 2 * W) and all(s.shape == (4, 0, W) for s in _as_list(spec, s_n))


@pytest.mark.parametrize("spec", cell_params())
def test_inputs_not_modified_and_outputs_independent(spec):
    layer = make_layer(spec, num_layers=2, dtype=np.float64, seed=0)
    x, s0, dout, ds = _inputs(layer)
    lens = _lengths("random")
    copies = [a.copy() for a in (x, *s0, dout, *ds, lens)]
    out, s_n = layer(x, _state_arg(spec, s0), lengths=lens)
    expected = layer.backward(dout, _state_arg(spec, ds))
    assert not np.shares_memory(out, x)
    for s, s_init in zip(_as_list(spec, s_n), s0):
        assert not np.shares_memory(s, s_init)
        s[...] = 7.0
    out[...] = 123.0  # must not corrupt the cache
    layer.zero_grad()
    again = layer.backward(dout, _state_arg(spec, ds))
    assert_bitwise(
        [again[0], *_as_list(spec, again[1])], [expected[0], *_as_list(spec, expected[1])]
    )
    for a, c in zip((x, *s0, dout, *ds, lens), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("spec", cell_params(**NO_OUTPUT))
def test_recurrent_cell_outputs_are_new_arrays(spec):
    cell = crnn.nn.RecurrentCell(spec, I, H, dtype=np.float64)
    s = [np.zeros((B, H)) for _ in spec.states]
    for new, old in zip(_as_list(spec, cell(np.zeros((B, I)), _state_arg(spec, s))), s):
        assert not np.shares_memory(new, old)


@pytest.mark.parametrize("spec", cell_params(**NO_OUTPUT))
def test_explicit_cache_backprop_through_cell_loop(spec):
    """Saved RecurrentCell caches give BPTT through a Python loop, equal to the layer's."""
    cell = crnn.nn.RecurrentCell(spec, I, H, dtype=np.float64, seed=6)
    layer = make_layer(spec, dtype=np.float64)
    layer.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    x, s0, dout, _ = _inputs(layer)
    state, caches, outs = _state_arg(spec, [s[0] for s in s0]), [], []
    for t in range(T):
        state = cell(x[t], state)
        caches.append(cell.cache)
        outs.append(_as_list(spec, state)[0])
    out, _ = layer(x, _state_arg(spec, s0))
    assert_rel_close(np.stack(outs), out, np.float64, tol=1e-13)
    d = [np.zeros((B, H)) for _ in spec.states]
    dxs = []
    for t in range(T - 1, -1, -1):
        d[0] = d[0] + dout[t]
        dx_t, dstate = cell.backward(_state_arg(spec, d), cache=caches[t])
        d = _as_list(spec, dstate)
        dxs.append(dx_t)
    dx, d0 = layer.backward(dout)
    assert_rel_close(np.stack(dxs[::-1]), dx, np.float64, tol=1e-12, name="dx")
    for a, b in zip(d, _as_list(spec, d0)):
        assert_rel_close(a, b[0], np.float64, tol=1e-12, name="dstate0")
    for k in cell.grads:
        assert_rel_close(cell.grads[k], layer.grads[k + "_l0"], np.float64, tol=1e-12, name=k)


@pytest.mark.parametrize("spec", cell_params())
def test_explicit_cache(spec):
    layer = make_layer(spec, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    x, s0, dout, ds = _inputs(layer)
    layer(x, _state_arg(spec, s0))
    saved = layer.cache
    expected = layer.backward(dout, _state_arg(spec, ds))
    layer(x[:2], _state_arg(spec, s0))  # another forward replaces the default cache
    got = layer.backward(dout, _state_arg(spec, ds), cache=saved)
    assert_bitwise([got[0], *_as_list(spec, got[1])], [expected[0], *_as_list(spec, expected[1])])
    other = make_layer(spec, dtype=np.float64)
    with pytest.raises(ValueError, match="cache"):
        other.backward(dout, _state_arg(spec, ds), cache=saved)


def _accumulate_params():
    for spec in SPECS:
        for make in ("layer", "cell") if not spec.uses_output_size else ("layer",):
            yield pytest.param(spec, make, id=f"{spec.name}-{make}")


@pytest.mark.parametrize("spec, make", list(_accumulate_params()))
def test_grads_accumulate_and_zero_grad(spec, make):
    rng = np.random.default_rng(0)
    if make == "layer":
        layer = make_layer(spec, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
        out, _ = layer(rng.standard_normal((T, B, I)))
        bw = lambda: layer.backward(np.ones_like(out))  # noqa: E731
    else:
        layer = crnn.nn.RecurrentCell(spec, I, H, dtype=np.float64, seed=0)
        new = _as_list(spec, layer(rng.standard_normal((B, I))))
        bw = lambda: layer.backward(_state_arg(spec, [np.ones_like(n) for n in new]))  # noqa: E731
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


@pytest.mark.parametrize("spec", cell_params())
def test_backward_before_forward(spec):
    with pytest.raises(RuntimeError, match="forward"):
        make_layer(spec).backward(np.zeros((T, B, H), np.float32))
    if not spec.uses_output_size:
        with pytest.raises(RuntimeError, match="forward"):
            crnn.nn.RecurrentCell(spec, I, H).backward(
                _state_arg(spec, [np.zeros((B, H), np.float32)] * len(spec.states))
            )


# --------------------------------------------------------------------------
# States, parameters, initialisation, files
# --------------------------------------------------------------------------
@pytest.mark.parametrize("spec", cell_params(where=lambda s: len(s.states) > 1))
def test_multi_state_cells_take_tuples_with_none_items(spec):
    layer = make_layer(spec, num_layers=2, dtype=np.float64, seed=0)
    W = layer.width
    x = np.random.default_rng(0).standard_normal((T, B, I))
    first = np.random.default_rng(1).standard_normal((2, B, W))
    rest = [None] * (len(spec.states) - 1)
    out_a, s_a = layer(x, (first, *rest))
    out_b, s_b = layer(x, (first, *[np.zeros((2, B, W))] * len(rest)))
    np.testing.assert_array_equal(out_a, out_b)
    for a, b in zip(s_a, s_b):
        np.testing.assert_array_equal(a, b)
    dx, d0 = layer.backward(None, (None, *[np.ones((2, B, W))] * len(rest)))
    assert dx.shape == x.shape and all(d.shape == (2, B, W) for d in d0)
    assert np.abs(d0[-1]).sum() > 0
    kind = {2: "pair", 3: "triple"}.get(len(spec.states), "tuple")
    with pytest.raises(TypeError, match=kind):
        layer(x, first)
    with pytest.raises(TypeError, match=kind):
        layer.backward(None, np.ones((2, B, W)))
    last = spec.states[-1]
    with pytest.raises(ValueError, match=f"{last}0"):
        layer(x, (first, *[np.zeros((1, B, W))] * len(rest)))
    with pytest.raises(ValueError, match=f"d{last}_n"):
        layer(x)
        layer.backward(None, (None, *[np.zeros((1, B, W))] * len(rest)))


def _expected_params(spec, in_size, hidden, out, layers, D, bias=True):
    names = {}
    for k in range(layers):
        for sfx in ("", "_reverse")[:D]:
            size = in_size if k == 0 else D * (out if spec.state_size == "O" else hidden)
            sizes = spec.dims(size, hidden, out)
            for w in spec.weights:
                if bias or not w.bias:
                    names[f"{w.name}_l{k}{sfx}"] = spec.weight_shape(w, sizes)
    return names


@pytest.mark.parametrize("spec", cell_params())
def test_parameter_names_shapes_order_and_bounds(spec):
    layer = make_layer(spec, I, 16, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    O = layer.output_size or 0
    assert [(k, v.shape) for k, v in layer.params.items()] == list(
        _expected_params(spec, I, 16, O, 2, 2).items()
    )
    assert all(v.dtype == np.float64 for v in layer.params.values())
    for v in layer.params.values():  # U(-1/sqrt(H), 1/sqrt(H)); the max of >= 48 draws is near it
        assert np.abs(v).max() <= 0.25 and (v.size < 48 or np.abs(v).max() > 0.2)
    assert list(make_layer(spec, bias=False).params) == list(
        _expected_params(spec, I, H, default_output_size(H), 1, 1, bias=False)
    )
    assert layer.parameters() is layer.params
    assert [n for n, _ in layer.named_parameters("m")] == ["m." + k for k in layer.params]
    assert layer.num_parameters() == sum(int(np.prod(v.shape)) for v in layer.params.values())
    same = make_layer(spec, I, 16, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    assert_bitwise(same.params, layer.params)
    if not spec.uses_output_size:
        cell = crnn.nn.RecurrentCell(spec, I, H)
        assert list(cell.params) == list(spec.weight_names)


@pytest.mark.parametrize("spec", cell_params())
def test_orthogonal_and_glorot_init(spec):
    """ "orthogonal": each gate's block of the recurrent weight is orthogonal;
    "glorot" and "orthogonal" zero the biases."""
    for init in ("orthogonal", "glorot"):
        other = make_layer(spec, I, 16, num_layers=2, dtype=np.float64, seed=0, init=init)
        assert [(k, v.shape) for k, v in other.params.items()] == list(
            _expected_params(spec, I, 16, other.output_size or 0, 2, 1).items()
        )
        for w in spec.weights:
            if w.bias:
                assert not np.any(other.params[w.name + "_l0"]), (init, w.name)
    orth = make_layer(spec, I, 16, dtype=np.float64, seed=0, init="orthogonal")
    w_hh = next(w for w in spec.weights if w.role == "w_hh")
    value = orth.params[w_hh.name + "_l0"]
    rows = value.shape[0] // spec.gates
    for g in range(spec.gates):
        block = value[g * rows : (g + 1) * rows]
        small = min(block.shape)
        gram = block @ block.T if block.shape[0] <= block.shape[1] else block.T @ block
        np.testing.assert_allclose(gram, np.eye(small), atol=1e-12)


@pytest.mark.parametrize("spec", cell_params())
def test_seeds(spec):
    a, b, c = make_layer(spec, seed=1), make_layer(spec, seed=1), make_layer(spec, seed=2)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
        assert not np.array_equal(a.params[k], c.params[k])
    # the documented generator: np.random.default_rng(seed), parameters in order
    rng = np.random.default_rng(1)
    k = 1 / np.sqrt(H)
    first = next(iter(a.params))
    np.testing.assert_array_equal(
        a.params[first], rng.uniform(-k, k, a.params[first].shape).astype(np.float32)
    )
    # float32 and float64 layers with one seed hold the same values
    d = make_layer(spec, seed=1, dtype=np.float64)
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], d.params[key].astype(np.float32))
    first = list(a.params)[1]
    assert not np.array_equal(make_layer(spec).params[first], make_layer(spec).params[first])
    if not spec.uses_output_size:
        np.testing.assert_array_equal(
            crnn.nn.RecurrentCell(spec, I, H, seed=3).params["weight_hh"],
            crnn.nn.RecurrentCell(spec, I, H, seed=3).params["weight_hh"],
        )


@pytest.mark.parametrize("spec", cell_params())
def test_save_load_round_trip(spec):
    layer = make_layer(
        spec,
        num_layers=2,
        bidirectional=True,
        batch_first=True,
        dropout=0.25,
        dtype=np.float64,
        seed=3,
    )
    buf = io.BytesIO()
    crnn.save(layer, buf)
    buf.seek(0)
    loaded = crnn.load(buf, backend="numpy")
    assert type(loaded) is type(layer)
    assert loaded.config() == dict(layer.config(), backend="numpy")
    layer.eval()
    loaded.eval()
    x = np.random.default_rng(0).standard_normal((B, T, I))
    np.testing.assert_allclose(layer(x)[0], loaded(x)[0], rtol=1e-12)
    if not spec.uses_output_size:
        cell = crnn.nn.RecurrentCell(spec, I, H, dtype=np.float64, seed=1)
        buf = io.BytesIO()
        crnn.save(cell, buf)
        buf.seek(0)
        again = crnn.load(buf)
        assert type(again) is type(cell) and again.config() == cell.config()
        assert_bitwise(again.params, cell.params)


@pytest.mark.parametrize("spec", cell_params())
def test_config_rebuilds_the_layer(spec):
    # float64 layers: precision stays native (bf16's config: tests/test_bf16.py).
    opts = {o.name: o.choices[-1] for o in spec.options if o.role != "precision"}
    made = [
        make_layer(
            spec,
            options=opts,
            num_layers=2,
            bias=False,
            batch_first=True,
            dropout=0.25,
            bidirectional=True,
            dtype=np.float64,
            seed=3,
            backend="numpy",
            init="glorot",
        )
    ]
    if not spec.uses_output_size:
        made.append(
            crnn.nn.RecurrentCell(
                spec, I, H, bias=False, dtype="float64", seed=1, init="orthogonal", **opts
            )
        )
    for layer in made:
        cfg = layer.config()
        assert json.loads(json.dumps(cfg)) == cfg
        twin = type(layer)(**cfg)
        assert twin.config() == cfg
        assert [(k, v.shape, v.dtype) for k, v in twin.params.items()] == [
            (k, v.shape, v.dtype) for k, v in layer.params.items()
        ]
        assert_bitwise(twin.params, layer.params)
        assert type(layer).__name__ in repr(layer)


@pytest.mark.parametrize("spec", cell_params())
def test_forged_size_is_refused(spec, tmp_path):
    layer = make_layer(spec, 2, 2)
    path = tmp_path / "m.npz"
    crnn.save(layer, path)
    cls = type(layer)
    forged_sizes = {"hidden_size": 100_000}
    if spec.uses_output_size:
        forged_sizes["output_size"] = 100_000
    cfg = dict(layer.config(), **forged_sizes)
    expected = sum(
        int(np.prod(s))
        for s in _expected_params(spec, 2, 100_000, cfg.get("output_size", 0), 1, 1).values()
    )
    assert serialization._implied_size(cls, cfg) == expected
    assert serialization._implied_size(cls, layer.config()) == layer.num_parameters()
    big = make_layer(spec, 3, 5, num_layers=3, bidirectional=True)
    assert serialization._implied_size(cls, big.config()) == big.num_parameters()
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(str(arrays["__config__"]))
    header["config"].update(forged_sizes)
    arrays["__config__"] = np.array(json.dumps(header))
    forged = tmp_path / "forged.npz"
    np.savez(forged, **arrays)
    with pytest.raises(ValueError, match="implies"):
        crnn.load(forged)


# --------------------------------------------------------------------------
# Errors, dropout
# --------------------------------------------------------------------------
@pytest.mark.parametrize("spec", cell_params())
def test_validation_and_cache_checks(spec):
    layer = make_layer(spec, dtype=np.float64)
    W = layer.width
    with pytest.raises(TypeError, match="float64"):
        layer(np.zeros((T, B, I), np.float32))
    with pytest.raises(ValueError, match="input_size"):
        layer(np.zeros((T, B, I + 1)))
    with pytest.raises(ValueError, match="lengths"):
        layer(np.zeros((T, I)), lengths=[T])
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((T, B, W)))
    first = spec.initial_states[0]
    with pytest.raises(ValueError, match=first):
        layer(np.zeros((T, B, I)), _state_arg(spec, [np.zeros((1, B, W + 1))] * len(spec.states)))
    with pytest.raises(TypeError, match=f"{first} has dtype float32"):
        layer(
            np.zeros((T, B, I)),
            _state_arg(spec, [np.zeros((1, B, W), np.float32)] * len(spec.states)),
        )
    for other in SPECS:
        if other is spec:
            continue
        o = make_layer(other, dtype=np.float64)
        o(np.zeros((T, B, I)))
        with pytest.raises(ValueError, match="cache"):
            layer.backward(None, cache=o.cache)
    with pytest.raises(ValueError, match="hidden_size"):
        make_layer(spec, I, 0)
    with pytest.warns(UserWarning, match="dropout"):
        make_layer(spec, dropout=0.5)
    bad_option = {o.name: "gelu" for o in spec.options[:1]}
    if bad_option:
        with pytest.raises(ValueError, match=spec.options[0].name):
            make_layer(spec, options=bad_option)
    with pytest.raises(TypeError, match="bogus"):
        make_layer(spec, options={"bogus": "x"})


@pytest.mark.parametrize("spec", cell_params())
def test_dropout_masks_are_reused_and_eval_is_deterministic(spec):
    layer = make_layer(spec, num_layers=2, dropout=0.5, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, I))
    a = layer(x)[0]
    b = layer(x)[0]
    assert rel_error(a, b) > 0  # fresh masks in training mode
    layer.eval()
    np.testing.assert_array_equal(layer(x)[0], layer(x)[0])
    # backward reuses the training-mode forward's masks
    layer.train()
    out, _ = layer(x)
    layer.zero_grad()
    dx, _ = layer.backward(np.ones_like(out))
    assert dx.shape == x.shape and np.isfinite(dx).all()


def test_layer_classes():
    """recurrent_layer builds torch.nn's classes for their cells, a
    Recurrent for the others; the classes are exported."""
    for spec in SPECS:
        layer = make_layer(spec)
        assert isinstance(layer, crnn.nn.Recurrent) and layer.spec is spec
        cls = getattr(crnn, spec.title, None)
        if cls is not None and issubclass(cls, crnn.nn.Recurrent):
            assert type(layer) is cls and cls.__name__ in crnn.__all__
            assert cls.__doc__  # help() shows it
        if not spec.uses_output_size:
            assert isinstance(crnn.nn.RecurrentCell(spec, I, H), crnn.Module)
    assert crnn.LSTM is crnn.nn.LSTM and crnn.GRU is crnn.nn.GRU
    assert issubclass(crnn.LSTM, crnn.Module)
