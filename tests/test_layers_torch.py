"""Parity of crnn's layers with torch.nn.RNN / RNNCell / Linear (skipped without torch).

Both sides carry the same weights (torch's state_dict, as torch tensors,
loaded into the crnn layer) and run in float64; outputs, final states, the
input gradient, the initial-state gradient and every parameter gradient must
agree within 1e-10 relative. Variable lengths go through torch's packed
sequences (pack_padded_sequence / pad_packed_sequence). Dropout is random on
both sides with different generators, so parity is tested with dropout = 0.

Every test runs on both backends ("c" and "numpy").
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

import crnn  # noqa: E402
from helpers import assert_rel_close  # noqa: E402

TOL = 1e-10
T, B, I, H = 5, 3, 4, 3
BACKENDS = ["c", "numpy"]
backend_param = pytest.mark.parametrize("backend", BACKENDS)


def _grid():
    for layers, bidir, nl, layout, lengths in itertools.product(
            (1, 2, 3), (False, True), ("tanh", "relu"), ("time_major", "batch_first", "unbatched"),
            (False, True)):
        if layout == "unbatched" and lengths:
            continue  # packed sequences are batched by definition
        yield pytest.param(layers, bidir, nl, layout, lengths,
                           id=f"L{layers}-{'bi' if bidir else 'uni'}-{nl}-{layout}{'-lengths' if lengths else ''}")


def _torch_run(t_rnn, x, h0, lengths, dout, dh_n, batch_first):
    """torch forward + backward of sum(out * dout) + sum(h_n * dh_n)."""
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    if lengths is None:
        out, h_n = t_rnn(xt, h0t)
    else:
        packed = pack_padded_sequence(xt, torch.as_tensor(lengths), batch_first=batch_first,
                                      enforce_sorted=False)
        out_p, h_n = t_rnn(packed, h0t)
        out, _ = pad_packed_sequence(out_p, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0])
    loss = (out * torch.from_numpy(dout)).sum() + (h_n * torch.from_numpy(dh_n)).sum()
    loss.backward()
    res = {"out": out.detach().numpy(), "h_n": h_n.detach().numpy(),
           "dx": xt.grad.numpy(), "dh0": h0t.grad.numpy()}
    res.update({"grad." + k: p.grad.numpy() for k, p in t_rnn.named_parameters()})
    return res


def _crnn_run(rnn, x, h0, lengths, dout, dh_n):
    out, h_n = rnn(x, h0, lengths=lengths)
    dx, dh0 = rnn.backward(dout, dh_n)
    res = {"out": out, "h_n": h_n, "dx": dx, "dh0": dh0}
    res.update({"grad." + k: g for k, g in rnn.grads.items()})
    return res


def _assert_parity(mine, theirs, tol=TOL):
    assert mine.keys() == theirs.keys()
    for k in theirs:
        assert mine[k].shape == theirs[k].shape, (k, mine[k].shape, theirs[k].shape)
        assert_rel_close(mine[k], theirs[k], tol=tol, name=k)


@backend_param
@pytest.mark.parametrize("layers,bidir,nl,layout,lengths", list(_grid()))
def test_rnn_parity(backend, layers, bidir, nl, layout, lengths):
    torch.manual_seed(layers * 100 + bidir * 10 + (nl == "relu"))
    bf = layout == "batch_first"
    t_rnn = torch.nn.RNN(I, H, layers, nonlinearity=nl, batch_first=bf, bidirectional=bidir,
                         dtype=torch.float64)
    rnn = crnn.RNN(I, H, layers, nonlinearity=nl, batch_first=bf, bidirectional=bidir,
                   dtype=np.float64, backend=backend)
    rnn.load_state_dict(t_rnn.state_dict())  # torch tensors as they come

    D = 2 if bidir else 1
    rng = np.random.default_rng(0)
    if layout == "unbatched":
        x_shape, h_shape, o_shape = (T, I), (layers * D, H), (T, D * H)
    elif bf:
        x_shape, h_shape, o_shape = (B, T, I), (layers * D, B, H), (B, T, D * H)
    else:
        x_shape, h_shape, o_shape = (T, B, I), (layers * D, B, H), (T, B, D * H)
    x = rng.standard_normal(x_shape)
    h0 = 0.5 * rng.standard_normal(h_shape)
    dout = rng.standard_normal(o_shape)
    dh_n = rng.standard_normal(h_shape)
    lens = np.array([T, 2, 4]) if lengths else None

    theirs = _torch_run(t_rnn, x, h0, lens, dout, dh_n, bf)
    mine = _crnn_run(rnn, x, h0, lens, dout, dh_n)
    _assert_parity(mine, theirs)


@backend_param
@pytest.mark.parametrize("bias", [True, False])
def test_rnn_parity_without_h0_and_bias(backend, bias):
    """h0=None: crnn's dh0 is the gradient w.r.t. the zero initial state."""
    torch.manual_seed(1)
    t_rnn = torch.nn.RNN(I, H, 2, bias=bias, bidirectional=True, dtype=torch.float64)
    rnn = crnn.RNN(I, H, 2, bias=bias, bidirectional=True, dtype=np.float64, backend=backend)
    rnn.load_state_dict(t_rnn.state_dict())
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, I))
    dout, dh_n = rng.standard_normal((T, B, 2 * H)), rng.standard_normal((4, B, H))
    lens = np.array([3, T, 1])
    theirs = _torch_run(t_rnn, x, np.zeros((4, B, H)), lens, dout, dh_n, False)
    mine = _crnn_run(rnn, x, None, lens, dout, dh_n)
    _assert_parity(mine, theirs)


@backend_param
def test_rnn_parity_float32(backend):
    torch.manual_seed(2)
    t_rnn = torch.nn.RNN(I, H, 2, bidirectional=True, batch_first=True)
    rnn = crnn.RNN(I, H, 2, bidirectional=True, batch_first=True, backend=backend)
    rnn.load_state_dict(t_rnn.state_dict())
    x = np.random.default_rng(2).standard_normal((B, T, I)).astype(np.float32)
    out, h_n = rnn(x)
    t_out, t_hn = t_rnn(torch.from_numpy(x))
    assert_rel_close(out, t_out.detach().numpy(), tol=1e-5, name="out")
    assert_rel_close(h_n, t_hn.detach().numpy(), tol=1e-5, name="h_n")


def test_load_state_dict_from_torch_variants_and_back():
    torch.manual_seed(3)
    t_rnn = torch.nn.RNN(I, H, 2, bidirectional=True, dtype=torch.float64)
    rnn = crnn.RNN(I, H, 2, bidirectional=True, dtype=np.float32)
    # float64 tensors into a float32 layer: cast; parameters that require grad work too
    rnn.load_state_dict(dict(t_rnn.named_parameters()))
    for k, p in t_rnn.named_parameters():
        assert rnn.params[k].dtype == np.float32
        np.testing.assert_array_equal(rnn.params[k], p.detach().numpy().astype(np.float32))
    # mismatched architectures: a clear error listing the names
    with pytest.raises(ValueError, match="missing keys: .*weight_ih_l1_reverse"):
        crnn.RNN(I, H, 2, bidirectional=True).load_state_dict(
            torch.nn.RNN(I, H, 2, bidirectional=False).state_dict())
    with pytest.raises(ValueError, match=r"unexpected keys: .*bias_ih_l0"):
        crnn.RNN(I, H, bias=False).load_state_dict(torch.nn.RNN(I, H).state_dict())
    with pytest.raises(ValueError, match=r"weight_ih_l0: expected shape \(3, 4\), got \(3, 5\)"):
        crnn.RNN(I, H).load_state_dict(torch.nn.RNN(I + 1, H).state_dict())
    # and back: torch loads crnn's state_dict and computes the same thing
    mine = crnn.RNN(I, H, 2, nonlinearity="relu", dtype=np.float64, seed=0)
    t2 = torch.nn.RNN(I, H, 2, nonlinearity="relu", dtype=torch.float64)
    t2.load_state_dict({k: torch.from_numpy(v) for k, v in mine.state_dict().items()})
    x = np.random.default_rng(3).standard_normal((T, B, I))
    out, h_n = mine(x)
    t_out, t_hn = t2(torch.from_numpy(x))
    assert_rel_close(out, t_out.detach().numpy(), tol=TOL)
    assert_rel_close(h_n, t_hn.detach().numpy(), tol=TOL)


@backend_param
@pytest.mark.parametrize("nl", ["tanh", "relu"])
@pytest.mark.parametrize("case", ["batched", "unbatched", "no_h", "no_bias"])
def test_rnncell_parity(backend, nl, case):
    torch.manual_seed(4)
    bias = case != "no_bias"
    t_cell = torch.nn.RNNCell(I, H, bias=bias, nonlinearity=nl, dtype=torch.float64)
    cell = crnn.RNNCell(I, H, bias=bias, nonlinearity=nl, dtype=np.float64, backend=backend)
    cell.load_state_dict(t_cell.state_dict())
    rng = np.random.default_rng(4)
    lead = () if case == "unbatched" else (B,)
    x = rng.standard_normal(lead + (I,))
    h = np.zeros(lead + (H,)) if case == "no_h" else rng.standard_normal(lead + (H,))
    dh1 = rng.standard_normal(lead + (H,))
    xt, ht = torch.tensor(x, requires_grad=True), torch.tensor(h, requires_grad=True)
    h1t = t_cell(xt, ht)
    (h1t * torch.from_numpy(dh1)).sum().backward()
    h1 = cell(x, None if case == "no_h" else h)
    dx, dh = cell.backward(dh1)
    theirs = {"h1": h1t.detach().numpy(), "dx": xt.grad.numpy(), "dh": ht.grad.numpy(),
              **{"grad." + k: p.grad.numpy() for k, p in t_cell.named_parameters()}}
    mine = {"h1": h1, "dx": dx, "dh": dh, **{"grad." + k: g for k, g in cell.grads.items()}}
    _assert_parity(mine, theirs)


@backend_param
@pytest.mark.parametrize("shape", [(I,), (B, I), (T, B, I)], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_parity(backend, shape, bias):
    torch.manual_seed(5)
    t_lin = torch.nn.Linear(I, H, bias=bias, dtype=torch.float64)
    lin = crnn.Linear(I, H, bias=bias, dtype=np.float64, backend=backend)
    lin.load_state_dict(t_lin.state_dict())
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(shape[:-1] + (H,))
    xt = torch.tensor(x, requires_grad=True)
    yt = t_lin(xt)
    (yt * torch.from_numpy(dy)).sum().backward()
    y = lin(x)
    dx = lin.backward(dy)
    theirs = {"y": yt.detach().numpy(), "dx": xt.grad.numpy(),
              **{"grad." + k: p.grad.numpy() for k, p in t_lin.named_parameters()}}
    mine = {"y": y, "dx": dx, **{"grad." + k: g for k, g in lin.grads.items()}}
    _assert_parity(mine, theirs)


def test_default_init_matches_torch_bounds():
    """Same distributions as torch's defaults (bounds; values differ by generator)."""
    torch.manual_seed(6)
    for ours, theirs in [(crnn.RNN(8, 16, 2, seed=0), torch.nn.RNN(8, 16, 2)),
                         (crnn.RNNCell(8, 16, seed=0), torch.nn.RNNCell(8, 16)),
                         (crnn.Linear(32, 4, seed=0), torch.nn.Linear(32, 4))]:
        sd = theirs.state_dict()
        assert list(ours.params) == list(sd)
        for k, v in sd.items():
            bound_t = float(v.abs().max())
            bound_o = float(np.abs(ours.params[k]).max())
            limit = 1 / np.sqrt(16 if not isinstance(ours, crnn.Linear) else 32)
            assert bound_t <= limit + 1e-7 and bound_o <= limit + 1e-7
            assert tuple(v.shape) == ours.params[k].shape
