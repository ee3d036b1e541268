"""Training helpers: gradcheck, last_valid and truncated BPTT (crnn.training)."""

from __future__ import annotations

import numpy as np
import pytest

import crnn
from crnn.training import TBPTT, gradcheck, last_valid, last_valid_backward
from helpers import assert_bitwise
from problems import cell_params

BACKENDS = ["c", "numpy"]


# --------------------------------------------------------------------------
# gradcheck
# --------------------------------------------------------------------------


def _quadratic(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.0, size=(3, 4))
    p = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}

    def f():
        return float(np.sum(a * p["w"] ** 2) + np.sum(np.sin(p["b"])))

    g = {"w": 2 * a * p["w"], "b": np.cos(p["b"])}
    return f, p, g


def test_gradcheck_passes_on_exact_gradients_and_restores_params():
    f, p, g = _quadratic()
    before = {k: v.copy() for k, v in p.items()}
    rep = gradcheck(f, p, g)
    assert rep.ok and bool(rep)
    assert rep.n_checked == {"w": 12, "b": 5}
    assert max(rep.max_rel_error.values()) < 1e-7
    for k in p:
        np.testing.assert_array_equal(p[k], before[k])  # bit-exact restore
    assert "passed" in str(rep)


def test_gradcheck_flags_a_wrong_entry():
    f, p, g = _quadratic()
    g["w"][1, 2] += 1e-3
    rep = gradcheck(f, p, g)
    assert not rep.ok and not bool(rep)
    assert [(name, idx) for name, idx, _, _ in rep.failures] == [("w", (1, 2))]
    assert rep.max_abs_error["w"] == pytest.approx(1e-3, rel=1e-3)
    assert rep.max_abs_error["b"] < 1e-8
    assert "FAILED" in str(rep)


def test_gradcheck_subsample_is_seeded():
    f, p, g = _quadratic()
    r1 = gradcheck(f, p, g, max_checks_per_param=4, rng=3)
    r2 = gradcheck(f, p, g, max_checks_per_param=4, rng=np.random.default_rng(3))
    assert r1.n_checked == {"w": 4, "b": 4}
    assert r1.max_abs_error == r2.max_abs_error


def test_gradcheck_rejects_non_float64_and_bad_inputs():
    f, p, g = _quadratic()
    p32 = {"w": p["w"].astype(np.float32)}
    with pytest.raises(TypeError):
        gradcheck(f, p32, {"w": g["w"].astype(np.float32)})
    with pytest.raises(TypeError):
        gradcheck(f, {"w": p["w"]}, {"w": g["w"].astype(np.float32)})
    with pytest.raises(KeyError):
        gradcheck(f, p, {"w": g["w"]})
    with pytest.raises(ValueError):
        gradcheck(f, p, {"w": g["w"], "b": g["b"][:2]})
    with pytest.raises(ValueError):
        gradcheck(f, p, g, eps=0.0)
    with pytest.raises(ValueError):
        gradcheck(lambda: float("nan"), p, g)
    with pytest.raises(TypeError):
        gradcheck(lambda: np.ones(2), p, g)


# The functional API of every cell, both engines, is held to gradcheck in
# test_cells_gradcheck.py (test_engine_gradients_match_central_differences).


# --------------------------------------------------------------------------
# last_valid
# --------------------------------------------------------------------------


def test_last_valid_gathers_each_rows_last_step():
    rng = np.random.default_rng(0)
    out = rng.standard_normal((5, 4, 3))
    lengths = np.array([5, 1, 0, 3])
    got = last_valid(out, lengths)
    want = np.stack([out[4, 0], out[0, 1], np.zeros(3), out[2, 3]])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(last_valid(out), out[-1])
    np.testing.assert_array_equal(last_valid(out, [5, 5, 5, 5]), out[-1])
    got[0] = 99.0  # a copy, not a view
    assert out[4, 0, 0] != 99.0
    assert last_valid(out.astype(np.float32), lengths).dtype == np.float32


def test_last_valid_backward_is_the_adjoint():
    rng = np.random.default_rng(1)
    T, B, H = 6, 5, 2
    out = rng.standard_normal((T, B, H))
    d = rng.standard_normal((B, H))
    lengths = np.array([6, 2, 0, 1, 4])
    lhs = np.sum(last_valid(out, lengths) * d)
    dout = last_valid_backward(d, lengths, T)
    assert dout.shape == (T, B, H)
    np.testing.assert_allclose(np.sum(out * dout), lhs, rtol=1e-14)
    assert not dout[:, 2].any()  # a length-0 row receives nothing


def test_last_valid_validates_lengths():
    out = np.zeros((3, 2, 1))
    with pytest.raises(ValueError):
        last_valid(out, [1, 4])
    with pytest.raises(ValueError):
        last_valid(out, [1, -1])
    with pytest.raises(ValueError):
        last_valid(out, [1, 2, 3])
    with pytest.raises(ValueError):
        last_valid(out[0], [1, 2])


# --------------------------------------------------------------------------
# TBPTT
# --------------------------------------------------------------------------


def _stream(T=12, B=3, I=2, O=2, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((T, B, I)).astype(dtype),
        rng.standard_normal((T, B, O)).astype(dtype),
    )


def _tagger(backend, num_layers=2, dtype=np.float64, seed=1):
    return crnn.models.SequenceTagger(
        2, 4, 2, num_layers=num_layers, dtype=dtype, seed=seed, backend=backend
    )


class _Recorder:
    """A loss function that keeps a copy of every prediction it sees."""

    def __init__(self, loss_fn=crnn.losses.mse):
        self.loss_fn = loss_fn
        self.preds = []

    def __call__(self, pred, target, **kw):
        self.preds.append(pred.copy())
        return self.loss_fn(pred, target, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tbptt_carries_state_outputs_equal_one_full_forward(backend):
    x, y = _stream()
    m = _tagger(backend)
    rec = _Recorder()
    tb = TBPTT(m, rec, None, k=5)  # no optimizer: the weights stay fixed
    losses = tb.run(x, y)
    assert len(losses) == 3  # windows of 5, 5 and 2 steps
    full, h_n = m(x)
    np.testing.assert_allclose(np.concatenate(rec.preds), full, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(tb.state, h_n, rtol=1e-12, atol=1e-13)
    for i, (lo, hi) in enumerate([(0, 5), (5, 10), (10, 12)]):
        assert losses[i] == pytest.approx(crnn.losses.mse(full[lo:hi], y[lo:hi])[0], rel=1e-12)
    # The state persists across calls: a stream may arrive in pieces.
    tb.reset()
    rec.preds.clear()
    tb.run(x[:7], y[:7])
    tb.run(x[7:], y[7:])
    np.testing.assert_allclose(np.concatenate(rec.preds), full, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tbptt_no_gradient_crosses_windows(backend):
    x, y = _stream(T=8)
    m = _tagger(backend)
    tb = TBPTT(m, crnn.losses.mse, None, k=4)
    tb.step(x[:4], y[:4])
    carried = tb.state.copy()
    tb.step(x[4:], y[4:])
    got = {k: g.copy() for k, g in m.grads.items()}

    # (1) The same as a fresh forward/backward on the window, with the carried
    # state as a constant h0, on an independent copy of the model.
    fresh = _tagger(backend)
    fresh.zero_grad()
    pred, _ = fresh(x[4:], carried.copy())
    _, d = crnn.losses.mse(pred, y[4:])
    fresh.backward(d)
    for k in got:
        np.testing.assert_allclose(got[k], fresh.grads[k], rtol=1e-12, atol=1e-14)

    # (2) And it is the true derivative of the window loss with h0 held
    # constant (central differences), ...
    def window_loss():
        return crnn.losses.mse(fresh(x[4:], carried)[0], y[4:])[0]

    rep = gradcheck(window_loss, fresh.params, got)
    assert rep.ok, str(rep)

    # (3) ... which is not the full-BPTT gradient, where h0 depends on the
    # weights through the first window.
    def through_both_windows():
        _, h = fresh(x[:4])
        return crnn.losses.mse(fresh(x[4:], h)[0], y[4:])[0]

    assert not gradcheck(through_both_windows, fresh.params, got).ok


@pytest.mark.parametrize("backend", BACKENDS)
def test_tbptt_reset_all_and_some_rows(backend):
    x, y = _stream(T=10)
    m = _tagger(backend)
    rec = _Recorder()
    tb = TBPTT(m, rec, None, k=5)
    tb.step(x[:5], y[:5])
    assert tb.state is not None
    # reset(): the next window starts from zeros, like a fresh stream.
    tb.reset()
    assert tb.state is None
    tb.step(x[5:], y[5:])
    np.testing.assert_allclose(rec.preds[-1], m(x[5:])[0], rtol=1e-12, atol=1e-13)
    # reset(rows=...): only those rows restart.
    tb.reset()
    tb.step(x[:5], y[:5])
    before = tb.state.copy()
    tb.reset(rows=[1])
    assert not tb.state[:, 1].any()
    np.testing.assert_array_equal(tb.state[:, [0, 2]], before[:, [0, 2]])
    tb.step(x[5:], y[5:])
    h0 = before.copy()
    h0[:, 1] = 0
    np.testing.assert_allclose(rec.preds[-1], m(x[5:], h0)[0], rtol=1e-12, atol=1e-13)
    # A boolean mask works too; resetting before any window is a no-op.
    tb.reset(rows=np.array([True, False, False]))
    assert not tb.state[:, 0].any() and tb.state[:, 2].any()
    fresh = TBPTT(m, rec, None, k=5)
    fresh.reset(rows=[0])
    assert fresh.state is None


@pytest.mark.parametrize("stride", [3, 7])
def test_tbptt_stride_starts_each_window_from_the_true_state(stride):
    x, y = _stream(T=14)
    m = _tagger("c")
    rec = _Recorder()
    tb = TBPTT(m, rec, None, k=5, stride=stride)
    losses = tb.run(x, y)
    full, h_n = m(x)
    starts = list(range(0, 14, stride))
    assert len(losses) == len(starts)
    for s, pred in zip(starts, rec.preds):
        np.testing.assert_allclose(pred, full[s : s + 5], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(tb.state, h_n, rtol=1e-12, atol=1e-13)


def test_tbptt_bare_rnn_batch_first_and_mask():
    rng = np.random.default_rng(3)
    rnn = crnn.RNN(2, 3, batch_first=True, dtype=np.float64, seed=0)
    x = rng.standard_normal((2, 9, 2))  # (B, T, I)
    y = rng.standard_normal((2, 9, 3))
    mask = rng.random((2, 9, 1)) < 0.7
    rec = _Recorder()
    tb = TBPTT(rnn, rec, None, k=4)
    losses = tb.run(x, y, mask=mask)
    full, h_n = rnn(x)
    np.testing.assert_allclose(np.concatenate(rec.preds, axis=1), full, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(tb.state, h_n, rtol=1e-12, atol=1e-13)
    assert losses[0] == pytest.approx(
        crnn.losses.mse(full[:, :4], y[:, :4], mask=mask[:, :4])[0], rel=1e-12
    )


def test_tbptt_updates_weights_once_per_window():
    x, y = _stream(T=10, dtype=np.float32)
    m = _tagger("c", dtype=np.float32)

    class Counting(crnn.optim.SGD):
        steps = 0

        def step(self, grads):
            Counting.steps += 1
            return super().step(grads)

    w0 = m.params["rnn.weight_hh_l0"].copy()
    tb = TBPTT(m, crnn.losses.mse, Counting(m.params, lr=0.1), k=3)
    losses = tb.run(x, y)
    assert len(losses) == 4 and Counting.steps == 4
    assert not np.array_equal(w0, m.params["rnn.weight_hh_l0"])
    tb.run(x, y, update=False)
    assert Counting.steps == 4


def test_tbptt_validation():
    m = _tagger("c")
    with pytest.raises(ValueError):
        TBPTT(m, crnn.losses.mse, None, k=0)
    with pytest.raises(ValueError):
        TBPTT(m, crnn.losses.mse, None, k=2.5)
    with pytest.raises(ValueError):
        TBPTT(m, crnn.losses.mse, None, k=3, stride=0)
    bi = crnn.models.SequenceTagger(2, 3, 2, bidirectional=True, dtype=np.float64)
    with pytest.raises(ValueError, match="unidirectional"):
        TBPTT(bi, crnn.losses.mse, None, k=3)
    x, y = _stream(T=6)
    with pytest.raises(ValueError):
        TBPTT(m, crnn.losses.mse, None, k=3).run(x, y[:5])


# --------------------------------------------------------------------------
# TBPTT with every cell: carried states of any form, row resets, learning
# --------------------------------------------------------------------------


def _cell_layer(spec, backend="c", seed=0, dtype=np.float64):
    """The cell's two-layer layer (crnn.RNN, LSTM, GRU, or a Recurrent)."""
    extra = {"output_size": 4} if spec.uses_output_size else {}
    return crnn.nn.recurrent_layer(
        spec, 3, 12, num_layers=2, dtype=dtype, seed=seed, backend=backend, **extra
    )


def _parts(state):
    return list(state) if isinstance(state, tuple) else [state]


def _delayed_task(width, T=240, B=4, seed=1):
    """Targets that need memory: a fixed function of the previous step's input."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, 3))
    mix = rng.standard_normal((3, width)) / np.sqrt(3)
    y = np.zeros((T, B, width))
    y[1:] = 0.5 * np.tanh(x[:-1] @ mix)
    return x, y


@pytest.mark.parametrize("spec", cell_params())
def test_tbptt_learns_with_every_cell(spec):
    """Many windows with carried state and row resets: the loss on a task
    that needs memory falls well below its start."""
    layer = _cell_layer(spec)
    cls = {"rnn": crnn.RNN, "lstm": crnn.LSTM, "gru": crnn.GRU}.get(spec.name, crnn.nn.Recurrent)
    assert type(layer) is cls or (cls is crnn.nn.Recurrent and isinstance(layer, cls))
    x, y = _delayed_task(layer.width)
    tb = TBPTT(layer, crnn.losses.mse, crnn.optim.Adam(layer.params, lr=0.02), k=8)
    losses = []
    for epoch in range(6):
        for piece in range(4):  # the stream arrives in pieces; some rows restart between them
            sl = slice(piece * 60, (piece + 1) * 60)
            losses += tb.run(x[sl], y[sl])
            tb.reset(rows=[(epoch + piece) % x.shape[1]])
        assert all(part.shape == (2, x.shape[1], layer.width) for part in _parts(tb.state))
        tb.reset()
    assert len(losses) == 6 * 4 * 8
    first, last = np.mean(losses[:8]), np.mean(losses[-32:])
    assert np.isfinite(losses).all() and last < 0.5 * first, (first, last)


@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("spec", cell_params())
def test_tbptt_carried_state_is_the_plain_forward_state(spec, backend):
    """Without updates, the state carried through the windows is bitwise the
    state of one forward over the concatenated windows; a row reset between
    windows is a forward restarted from zeros in that row."""
    layer = _cell_layer(spec, backend)
    x, y = _delayed_task(layer.width, T=23, B=3)
    tb = TBPTT(layer, crnn.losses.mse, None, k=5)
    assert len(tb.run(x, y)) == 5  # windows of 5, 5, 5, 5 and 3 steps
    _, full = layer(x)
    assert_bitwise(_parts(tb.state), _parts(full), ctx="carried vs plain forward")
    assert not any(np.shares_memory(a, b) for a, b in zip(_parts(tb.state), _parts(full)))

    tb.reset()
    tb.run(x[:10], y[:10])
    tb.reset(rows=[1])
    assert all(not part[:, 1].any() for part in _parts(tb.state))
    tb.run(x[10:], y[10:])
    _, first = layer(x[:10])
    restarted = tuple(p.copy() for p in _parts(first))
    for part in restarted:
        part[:, 1] = 0
    _, expected = layer(x[10:], restarted if isinstance(first, tuple) else restarted[0])
    assert_bitwise(_parts(tb.state), _parts(expected), ctx="row 1 reset")
    for got, want in zip(_parts(tb.state), _parts(full)):
        np.testing.assert_array_equal(got[:, [0, 2]], want[:, [0, 2]])  # other rows go on


# --------------------------------------------------------------------------
# TBPTT with every stacked cell of the registry (tuple states included)
# --------------------------------------------------------------------------
def _stacked_cells():
    return [
        pytest.param(s.name, id=s.name)
        for s in crnn.cells.REGISTRY.values()
        if not s.uses_output_size
    ]


def _layer(cell, backend, num_layers=2, seed=3):
    return crnn.nn.recurrent_layer(
        cell, 2, 6, num_layers=num_layers, dtype=np.float64, seed=seed, backend=backend
    )


def _parts(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", _stacked_cells())
def test_tbptt_windows_equal_one_forward_for_every_cell(cell, backend):
    """Without an optimizer the carried state makes the windows one forward:
    the concatenated window outputs and the final state (every part of it,
    e.g. the LSTM's (h, c)) equal a plain forward over the whole stream."""
    x, _ = _stream(T=13, B=3, I=2)
    y = np.zeros((13, 3, 6))
    layer = _layer(cell, backend)
    rec = _Recorder()
    tb = TBPTT(layer, rec, None, k=4)
    assert len(tb.run(x, y)) == 4  # windows of 4, 4, 4 and 1 steps
    full, state_n = layer(x)
    np.testing.assert_allclose(np.concatenate(rec.preds), full, rtol=1e-12, atol=1e-13)
    assert len(_parts(tb.state)) == len(crnn.cells.get(cell).states)
    for got, want in zip(_parts(tb.state), _parts(state_n)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    # reset(rows=...) zeroes those rows of every part of the state.
    tb.reset(rows=[1])
    for part in _parts(tb.state):
        assert not part[:, 1].any() and part[:, [0, 2]].any()


@pytest.mark.parametrize("cell", _stacked_cells())
def test_tbptt_trains_every_cell_over_many_windows(cell):
    """Output unit 0 must give the previous step's input, in windows of 4
    steps: each window's first step can only answer from the carried state.
    Adam over 40 passes of 15 windows brings the loss far below that of
    predicting 0, at the window starts as well as elsewhere."""
    rng = np.random.default_rng(0)
    T, B, k = 60, 4, 4
    x = rng.choice([-0.5, 0.5], size=(T, B, 2))
    y = np.zeros((T, B, 6))
    y[1:, :, 0] = x[:-1, :, 0]
    layer = _layer(cell, "c", num_layers=1, seed=1)
    tb = TBPTT(layer, crnn.losses.mse, crnn.optim.Adam(layer.params, lr=0.02), k=k)
    for _ in range(40):
        tb.reset()
        last = np.mean(tb.run(x, y))
    zero_loss = crnn.losses.mse(np.zeros_like(y), y)[0]
    assert last < 0.1 * zero_loss, (last, zero_loss)
    pred, _ = layer(x)
    window_starts = (pred[k::k, :, 0] - y[k::k, :, 0]) ** 2
    assert window_starts.mean() < 0.1 * np.mean(y[k::k, :, 0] ** 2)
