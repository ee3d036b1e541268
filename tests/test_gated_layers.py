"""The `crnn.LSTM` and `crnn.GRU` layers: the C backend against the NumPy
backend, PyTorch parity (float64, 1e-10 relative) over layers ×
bidirectional × layout (time-major, batch-first, unbatched) × lengths
(packed sequences), central-difference gradient checks, save / load, and the
API (state pairs, validation, dropout, cache checks).

PyTorch's state_dict (torch tensors as they come) is loaded into the crnn
layer, so both sides carry the same weights.
"""
from __future__ import annotations

import io
import itertools

import numpy as np
import pytest

import crnn
from helpers import HAVE_TORCH, REL_TOL, assert_rel_close, rel_error

T, B, I, H = 5, 3, 4, 3
CELLS = {"lstm": crnn.LSTM, "gru": crnn.GRU}
GATES = {"lstm": 4, "gru": 3}


def _shapes(layers, D, layout):
    if layout == "unbatched":
        return (T, I), (layers * D, H), (T, D * H)
    if layout == "batch_first":
        return (B, T, I), (layers * D, B, H), (B, T, D * H)
    return (T, B, I), (layers * D, B, H), (T, B, D * H)


def _problem(cell, layers, D, layout, dtype=np.float64, seed=0):
    """x, initial states, dout, dstates (lists of one or two state arrays)."""
    rng = np.random.default_rng(seed)
    x_shape, h_shape, o_shape = _shapes(layers, D, layout)
    n = 2 if cell == "lstm" else 1
    x = rng.standard_normal(x_shape).astype(dtype)
    s0 = [(0.5 * rng.standard_normal(h_shape)).astype(dtype) for _ in range(n)]
    dout = rng.standard_normal(o_shape).astype(dtype)
    ds = [rng.standard_normal(h_shape).astype(dtype) for _ in range(n)]
    return x, s0, dout, ds


def _crnn_run(layer, cell, x, s0, lengths, dout, ds):
    """Forward + backward; a dict of every output and gradient."""
    if cell == "lstm":
        out, (h_n, c_n) = layer(x, None if s0 is None else tuple(s0), lengths=lengths)
        dx, (dh0, dc0) = layer.backward(dout, tuple(ds))
        res = {"out": out, "h_n": h_n, "c_n": c_n, "dx": dx, "dh0": dh0, "dc0": dc0}
    else:
        out, h_n = layer(x, None if s0 is None else s0[0], lengths=lengths)
        dx, dh0 = layer.backward(dout, ds[0])
        res = {"out": out, "h_n": h_n, "dx": dx, "dh0": dh0}
    res.update({"grad." + k: g.copy() for k, g in layer.grads.items()})
    return res


# --------------------------------------------------------------------------
# C backend == NumPy backend
# --------------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layers,bidir,layout,lengths", [
    (1, False, "time_major", False),
    (2, True, "batch_first", True),
    (2, True, "unbatched", False),
    (3, False, "time_major", True),
])
def test_backends_agree(cell, dtype, layers, bidir, layout, lengths):
    D = 2 if bidir else 1
    x, s0, dout, ds = _problem(cell, layers, D, layout, dtype)
    lens = np.array([T, 2, 0]) if lengths else None
    results = []
    for backend in ("c", "numpy"):
        layer = CELLS[cell](I, H, layers, bidirectional=bidir, batch_first=layout == "batch_first",
                            dtype=dtype, seed=7, backend=backend)
        results.append(_crnn_run(layer, cell, x, s0, lens, dout, ds))
    c_res, np_res = results
    assert c_res.keys() == np_res.keys()
    for k in c_res:
        assert c_res[k].dtype == np.dtype(dtype)
        assert_rel_close(c_res[k], np_res[k], tol=REL_TOL[dtype], name=k)


# --------------------------------------------------------------------------
# PyTorch parity
# --------------------------------------------------------------------------

def _grid():
    for layers, bidir, layout, lengths in itertools.product(
            (1, 2), (False, True), ("time_major", "batch_first", "unbatched"), (False, True)):
        if layout == "unbatched" and lengths:
            continue  # packed sequences are batched by definition
        yield layers, bidir, layout, lengths
    yield 3, True, "batch_first", True


def _grid_params():
    for cell in CELLS:
        for layers, bidir, layout, lengths in _grid():
            yield pytest.param(cell, layers, bidir, layout, lengths,
                               id=f"{cell}-L{layers}-{'bi' if bidir else 'uni'}-{layout}"
                                  f"{'-lengths' if lengths else ''}")


def _torch_run(torch, t_layer, cell, x, s0, lengths, dout, ds, batch_first):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    xt = torch.tensor(x, requires_grad=True)
    s0t = [torch.tensor(s, requires_grad=True) for s in s0]
    hx = tuple(s0t) if cell == "lstm" else s0t[0]
    if lengths is None:
        out, s_n = t_layer(xt, hx)
    else:
        packed = pack_padded_sequence(xt, torch.as_tensor(lengths), batch_first=batch_first,
                                      enforce_sorted=False)
        out_p, s_n = t_layer(packed, hx)
        out, _ = pad_packed_sequence(out_p, batch_first=batch_first,
                                     total_length=x.shape[1 if batch_first else 0])
    s_n = list(s_n) if cell == "lstm" else [s_n]
    loss = (out * torch.from_numpy(dout)).sum()
    for s, d in zip(s_n, ds):
        loss = loss + (s * torch.from_numpy(d)).sum()
    loss.backward()
    res = {"out": out.detach().numpy(), "h_n": s_n[0].detach().numpy(), "dx": xt.grad.numpy(),
           "dh0": s0t[0].grad.numpy()}
    if cell == "lstm":
        res.update(c_n=s_n[1].detach().numpy(), dc0=s0t[1].grad.numpy())
    res.update({"grad." + k: p.grad.numpy() for k, p in t_layer.named_parameters()})
    return res


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("cell,layers,bidir,layout,lengths", list(_grid_params()))
def test_torch_parity(backend, cell, layers, bidir, layout, lengths):
    import torch

    torch.manual_seed(layers * 100 + bidir * 10 + lengths)
    bf = layout == "batch_first"
    t_cls = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    t_layer = t_cls(I, H, layers, batch_first=bf, bidirectional=bidir, dtype=torch.float64)
    layer = CELLS[cell](I, H, layers, batch_first=bf, bidirectional=bidir, dtype=np.float64,
                        backend=backend)
    layer.load_state_dict(t_layer.state_dict())
    assert list(layer.params) == list(t_layer.state_dict())
    D = 2 if bidir else 1
    x, s0, dout, ds = _problem(cell, layers, D, layout)
    lens = np.array([T, 2, 4]) if lengths else None
    theirs = _torch_run(torch, t_layer, cell, x, s0, lens, dout, ds, bf)
    mine = _crnn_run(layer, cell, x, s0, lens, dout, ds)
    assert mine.keys() == theirs.keys()
    for k in theirs:
        assert mine[k].shape == theirs[k].shape, (k, mine[k].shape, theirs[k].shape)
        assert_rel_close(mine[k], theirs[k], tol=1e-10, name=k)


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bias", [True, False])
def test_torch_parity_without_state_and_bias(cell, bias):
    """No initial state: crnn's dh0 (dc0) is the gradient w.r.t. the zero state."""
    import torch

    torch.manual_seed(5)
    t_cls = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    t_layer = t_cls(I, H, 2, bias=bias, bidirectional=True, dtype=torch.float64)
    layer = CELLS[cell](I, H, 2, bias=bias, bidirectional=True, dtype=np.float64)
    layer.load_state_dict(t_layer.state_dict())
    x, s0, dout, ds = _problem(cell, 2, 2, "time_major", seed=3)
    zeros = [np.zeros_like(s) for s in s0]
    lens = np.array([3, T, 1])
    theirs = _torch_run(torch, t_layer, cell, x, zeros, lens, dout, ds, False)
    mine = _crnn_run(layer, cell, x, None, lens, dout, ds)
    for k in theirs:
        assert_rel_close(mine[k], theirs[k], tol=1e-10, name=k)


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("cell", CELLS)
def test_torch_parity_float32(cell):
    import torch

    torch.manual_seed(2)
    t_cls = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    t_layer = t_cls(I, H, 2, bidirectional=True, batch_first=True)
    layer = CELLS[cell](I, H, 2, bidirectional=True, batch_first=True)
    layer.load_state_dict(t_layer.state_dict())
    x = np.random.default_rng(2).standard_normal((B, T, I)).astype(np.float32)
    out, s_n = layer(x)
    t_out, t_sn = t_layer(torch.from_numpy(x))
    assert_rel_close(out, t_out.detach().numpy(), tol=1e-5, name="out")
    if cell == "lstm":
        for a, b in zip(s_n, t_sn):
            assert_rel_close(a, b.detach().numpy(), tol=1e-5, name="state")
    else:
        assert_rel_close(s_n, t_sn.detach().numpy(), tol=1e-5, name="h_n")


# --------------------------------------------------------------------------
# Gradient check, initialisation, save / load
# --------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck(backend, cell):
    layer = CELLS[cell](2, 2, 2, bidirectional=True, batch_first=True, dtype=np.float64, seed=1,
                        backend=backend)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 2))
    s0 = [0.5 * rng.standard_normal((4, 3, 2)) for _ in range(2 if cell == "lstm" else 1)]
    wout = rng.standard_normal((3, 4, 4))
    ws = [rng.standard_normal((4, 3, 2)) for _ in s0]
    lens = np.array([4, 1, 3])
    inputs = {"x": x, **{f"s{i}": s for i, s in enumerate(s0)}}

    def loss():
        st = tuple(s0) if cell == "lstm" else s0[0]
        out, s_n = layer(x, st, lengths=lens)
        s_n = s_n if cell == "lstm" else (s_n,)
        return float((out * wout).sum() + sum((s * w).sum() for s, w in zip(s_n, ws)))

    loss()
    layer.zero_grad()
    dx, ds0 = layer.backward(wout, tuple(ws) if cell == "lstm" else ws[0])
    ds0 = ds0 if cell == "lstm" else (ds0,)
    params = dict(layer.params, **inputs)
    grads = dict(layer.grads, x=dx, **{f"s{i}": d for i, d in enumerate(ds0)})
    report = crnn.gradcheck(loss, params, grads, rtol=1e-6, atol=1e-8)
    assert report, report


@pytest.mark.parametrize("cell", CELLS)
def test_init_shapes_names_and_bounds(cell):
    G = GATES[cell]
    layer = CELLS[cell](I, 16, 2, bidirectional=True, dtype=np.float64, seed=0)
    expected = {}
    for k in range(2):
        for sfx in ("", "_reverse"):
            in_size = I if k == 0 else 32
            expected.update({f"weight_ih_l{k}{sfx}": (G * 16, in_size),
                             f"weight_hh_l{k}{sfx}": (G * 16, 16),
                             f"bias_ih_l{k}{sfx}": (G * 16,), f"bias_hh_l{k}{sfx}": (G * 16,)})
    assert {k: v.shape for k, v in layer.params.items()} == expected
    for v in layer.params.values():
        assert np.abs(v).max() <= 0.25 and np.abs(v).max() > 0.2  # U(-1/sqrt(H), 1/sqrt(H))
    same = CELLS[cell](I, 16, 2, bidirectional=True, dtype=np.float64, seed=0)
    for k in layer.params:
        np.testing.assert_array_equal(layer.params[k], same.params[k])
    for init in ("orthogonal", "glorot"):
        other = CELLS[cell](I, 16, 2, dtype=np.float64, seed=0, init=init)
        assert other.params["weight_hh_l0"].shape == (G * 16, 16)
    orth = CELLS[cell](I, 16, dtype=np.float64, seed=0, init="orthogonal").params["weight_hh_l0"]
    for g in range(G):
        block = orth[g * 16:(g + 1) * 16]
        np.testing.assert_allclose(block @ block.T, np.eye(16), atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_save_load_round_trip(cell):
    layer = CELLS[cell](I, H, 2, bidirectional=True, batch_first=True, dropout=0.25,
                        dtype=np.float64, seed=3)
    buf = io.BytesIO()
    crnn.save(layer, buf)
    buf.seek(0)
    loaded = crnn.load(buf, backend="numpy")
    assert type(loaded) is type(layer)
    assert loaded.config() == dict(layer.config(), backend="numpy")
    layer.eval()
    loaded.eval()
    x = np.random.default_rng(0).standard_normal((B, T, I))
    a, b = layer(x), loaded(x)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_forged_size_is_refused(cell, tmp_path):
    layer = CELLS[cell](2, 2)
    path = tmp_path / "m.npz"
    crnn.save(layer, path)
    from crnn import serialization

    cls = CELLS[cell]
    implied = serialization._implied_size(cls, dict(layer.config(), hidden_size=100_000))
    assert implied == GATES[cell] * (100_000 * 100_000 + 100_000 * 2 + 2 * 100_000)
    assert serialization._implied_size(cls, layer.config()) == layer.num_parameters()
    big = CELLS[cell](3, 5, 3, bidirectional=True)
    assert serialization._implied_size(cls, big.config()) == big.num_parameters()
    # a forged header: the same weights but hidden_size = 100000
    import json
    import zipfile

    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(str(arrays["__config__"]))
    header["config"]["hidden_size"] = 100_000
    arrays["__config__"] = np.array(json.dumps(header))
    forged = tmp_path / "forged.npz"
    np.savez(forged, **arrays)
    assert zipfile.is_zipfile(forged)
    with pytest.raises(ValueError, match="implies"):
        crnn.load(forged)


# --------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------

def test_lstm_state_pairs_and_none_items():
    lstm = crnn.LSTM(I, H, 2, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, I))
    h0 = np.random.default_rng(1).standard_normal((2, B, H))
    out_a, (h_a, c_a) = lstm(x, (h0, None))
    out_b, (h_b, c_b) = lstm(x, (h0, np.zeros((2, B, H))))
    np.testing.assert_array_equal(out_a, out_b)
    np.testing.assert_array_equal(c_a, c_b)
    dx, (dh0, dc0) = lstm.backward(None, (None, np.ones((2, B, H))))
    assert dx.shape == x.shape and dh0.shape == dc0.shape == (2, B, H)
    assert np.abs(dc0).sum() > 0
    with pytest.raises(TypeError, match="pair"):
        lstm(x, h0)
    with pytest.raises(TypeError, match="pair"):
        lstm.backward(None, np.ones((2, B, H)))
    with pytest.raises(ValueError, match="c0"):
        lstm(x, (h0, np.zeros((1, B, H))))
    with pytest.raises(ValueError, match="dc_n"):
        lstm(x)
        lstm.backward(None, (None, np.zeros((1, B, H))))


@pytest.mark.parametrize("cell", CELLS)
def test_validation_and_cache_checks(cell):
    layer = CELLS[cell](I, H, dtype=np.float64)
    with pytest.raises(TypeError, match="float64"):
        layer(np.zeros((T, B, I), np.float32))
    with pytest.raises(ValueError, match="input_size"):
        layer(np.zeros((T, B, I + 1)))
    with pytest.raises(ValueError, match="lengths"):
        layer(np.zeros((T, I)), lengths=[T])
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((T, B, H)))
    rnn = crnn.RNN(I, H, dtype=np.float64)
    rnn(np.zeros((T, B, I)))
    with pytest.raises(ValueError, match="cache"):
        layer.backward(None, cache=rnn.cache)
    other = CELLS["gru" if cell == "lstm" else "lstm"](I, H, dtype=np.float64)
    other(np.zeros((T, B, I)))
    with pytest.raises(ValueError, match="cache"):
        layer.backward(None, cache=other.cache)
    with pytest.raises(ValueError):
        CELLS[cell](I, 0)
    with pytest.warns(UserWarning, match="dropout"):
        CELLS[cell](I, H, dropout=0.5)


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_masks_are_reused_and_eval_is_deterministic(cell):
    layer = CELLS[cell](I, H, 2, dropout=0.5, dtype=np.float64, seed=0)
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


def test_exports():
    assert crnn.LSTM is crnn.nn.LSTM and crnn.GRU is crnn.nn.GRU
    assert "LSTM" in crnn.__all__ and "GRU" in crnn.__all__
    assert issubclass(crnn.LSTM, crnn.Module)
