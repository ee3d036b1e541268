"""An output head and its loss in one call: ``crnn.functional.linear_loss``
(one C call), ``crnn.reference.linear_loss``, ``Linear.forward_backward``,
the models' ``forward_backward`` and TBPTT's use of it.

- both engines agree within the numerical contract, and with the
  composition Linear -> crnn.losses -> Linear.backward; float64 gradients
  by central differences; the loss does not depend on the thread count;
- the models' fused pass gives the generic pass's loss, gradients and
  state; TBPTT takes it without a mask and not for another loss;
- bad arguments raise naming them; inputs are never modified.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import crnn
from crnn import functional as F, reference as R
from crnn.losses import mse, softmax_cross_entropy
from crnn.models import CharRNN, SequenceTagger
from helpers import assert_rel_close
from problems import dtype_param

ENGINES = pytest.mark.parametrize("engine", [F, R], ids=["c", "numpy"])
# (leading shape, K, C): rows over a chunk of 64, widths off the panels.
SHAPES = [((7,), 5, 3), ((50, 3), 33, 92), ((130,), 300, 17), ((0,), 4, 3)]


def _problem(shape, K, C, dtype, loss, bias=True, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape + (K,)).astype(dtype)
    w = (rng.standard_normal((C, K)) / np.sqrt(K)).astype(dtype)
    b = rng.standard_normal(C).astype(dtype) if bias else None
    if loss == "cross_entropy":
        t = rng.integers(0, C, size=shape)
    else:
        t = rng.standard_normal(shape + (C,)).astype(dtype)
    return x, w, b, t


def _composed(x, w, b, t, loss):
    """Linear, then crnn.losses, then Linear's backward, by hand."""
    z = x @ w.T + (0 if b is None else b)
    value, dz = (softmax_cross_entropy if loss == "cross_entropy" else mse)(z, t)
    dz2 = dz.reshape(-1, w.shape[0])
    db = None if b is None else dz2.sum(axis=0)
    return value, dz @ w, dz2.T @ x.reshape(-1, w.shape[1]), db


@ENGINES
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("shape,K,C", SHAPES, ids=lambda v: str(v))
@dtype_param
def test_linear_loss_matches_the_composition(engine, shape, K, C, loss, bias, dtype):
    x, w, b, t = _problem(shape, K, C, dtype, loss, bias)
    got = engine.linear_loss(x, w, b, t, loss)
    want = _composed(x, w, b, t, loss)
    tol = {np.float32: 1e-5, np.float64: 1e-12}[dtype]
    assert abs(got[0] - want[0]) <= tol * max(1.0, abs(want[0]))
    for name, a, e in zip(("dx", "dweight", "dbias"), got[1:], want[1:]):
        if e is None:
            assert a is None
            continue
        assert a.dtype == dtype and a.shape == e.shape, name
        assert_rel_close(a, e, dtype, name=name)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_linear_loss_gradients_by_central_differences(loss):
    x, w, b, t = _problem((6, 2), 5, 4, np.float64, loss, seed=3)
    value, dx, dw, db = F.linear_loss(x, w, b, t, loss)
    eps = 1e-6
    for arr, grad in ((x, dx), (w, dw), (b, db)):
        num = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + eps
            up = F.linear_loss(x, w, b, t, loss)[0]
            arr[i] = old - eps
            down = F.linear_loss(x, w, b, t, loss)[0]
            arr[i] = old
            num[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)


def test_linear_loss_is_the_same_for_any_thread_count():
    x, w, b, t = _problem((64, 40), 128, 92, np.float32, "cross_entropy")
    results = []
    for n in (1, 2, 3):
        crnn.set_num_threads(n)
        results.append(F.linear_loss(x, w, b, t))
    for r in results[1:]:
        assert r[0] == results[0][0]
        for a, e in zip(r[1:], results[0][1:]):
            np.testing.assert_array_equal(a, e)


def test_linear_loss_never_modifies_its_inputs():
    x, w, b, t = _problem((9, 2), 6, 5, np.float32, "mse")
    before = copy.deepcopy((x, w, b, t))
    F.linear_loss(x, w, b, t, "mse")
    for a, e in zip((x, w, b, t), before):
        np.testing.assert_array_equal(a, e)


BAD = [
    (dict(loss="hinge"), ValueError, "loss must be one of"),
    (dict(t=np.full((4,), 3)), ValueError, r"targets must lie in \[0, 3\)"),
    (dict(t=np.full((4,), -1)), ValueError, "targets must lie in"),
    (dict(t=np.zeros(4)), TypeError, "targets must be integer class ids"),
    (dict(t=np.zeros((3,), int)), ValueError, r"targets must have shape x.shape\[:-1\]"),
    (dict(x=np.zeros((4, 5), np.float32)), ValueError, r"x must have shape \(\.\.\., 2\)"),
    (dict(w=np.zeros((3, 2, 1), np.float32)), ValueError, "weight must have shape"),
    (dict(b=np.zeros(4, np.float32)), ValueError, r"bias must have shape \(3,\)"),
    (dict(b=np.zeros(3)), TypeError, "bias has dtype float64"),
]


@ENGINES
@pytest.mark.parametrize("case", BAD, ids=lambda c: c[2][:30] if isinstance(c, tuple) else str(c))
def test_linear_loss_bad_arguments(engine, case):
    change, exc, message = case
    args = dict(
        x=np.zeros((4, 2), np.float32),
        w=np.zeros((3, 2), np.float32),
        b=np.zeros(3, np.float32),
        t=np.zeros(4, int),
        loss="cross_entropy",
    )
    args.update(change)
    with pytest.raises(exc, match=message):
        engine.linear_loss(args["x"], args["w"], args["b"], args["t"], args["loss"])


# --------------------------------------------------------------------------
# Layers, models, TBPTT
# --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_linear_forward_backward_is_forward_loss_backward(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 8))
    t = rng.integers(0, 4, (5, 3))
    fused, plain = (crnn.Linear(8, 4, dtype=np.float64, seed=1, backend=backend) for _ in range(2))
    value, dx = fused.forward_backward(x, t)
    value2, dy = softmax_cross_entropy(plain(x), t)
    dx2 = plain.backward(dy)
    assert value == pytest.approx(value2, rel=1e-12)
    assert_rel_close(dx, dx2, np.float64)
    for k in plain.grads:
        assert_rel_close(fused.grads[k], plain.grads[k], np.float64, name=k)


def _models(dtype):
    return [
        (
            "char",
            lambda: CharRNN(7, 6, num_layers=2, dtype=dtype, seed=0),
            "ids",
            softmax_cross_entropy,
        ),
        (
            "char-embed",
            lambda: CharRNN(7, 6, dtype=dtype, seed=0, cell="lstm", embedding_dim=3),
            "ids",
            softmax_cross_entropy,
        ),
        (
            "tagger-ce",
            lambda: SequenceTagger(4, 6, 5, dtype=dtype, seed=0, cell="gru"),
            "x",
            softmax_cross_entropy,
        ),
        ("tagger-mse", lambda: SequenceTagger(4, 6, 5, dtype=dtype, seed=0), "x", mse),
    ]


@dtype_param
@pytest.mark.parametrize("case", range(4), ids=["char", "char-embed", "tagger-ce", "tagger-mse"])
def test_model_forward_backward_equals_the_generic_pass(case, dtype):
    name, make, kind, loss_fn = _models(dtype)[case]
    rng = np.random.default_rng(1)
    T, B = 5, 3
    x = (
        rng.integers(0, 7, (T, B))
        if kind == "ids"
        else rng.standard_normal((T, B, 4)).astype(dtype)
    )
    out_size = 7 if kind == "ids" else 5
    y = (
        rng.integers(0, out_size, (T, B))
        if loss_fn is softmax_cross_entropy
        else rng.standard_normal((T, B, 5)).astype(dtype)
    )
    fused, plain = make(), make()
    loss, h_n = fused.forward_backward(x, y, None, loss_fn)
    pred, h_n2 = plain(x)
    loss2, d = loss_fn(pred, y)
    plain.backward(d)
    assert loss == pytest.approx(loss2, rel={np.float32: 1e-5, np.float64: 1e-12}[dtype])
    for a, e in zip(
        h_n if isinstance(h_n, tuple) else (h_n,), h_n2 if isinstance(h_n2, tuple) else (h_n2,)
    ):
        np.testing.assert_array_equal(a, e)
    for k in plain.grads:
        assert_rel_close(fused.grads[k], plain.grads[k], dtype, name=f"{name} {k}")


def test_model_forward_backward_declines_other_losses():
    m = CharRNN(5, 4, seed=0)
    assert m.forward_backward(np.zeros((2, 1), int), np.zeros((2, 1), int), None, mse) is None
    assert all(not g.any() for g in m.grads.values())


@pytest.mark.parametrize("masked", [False, True])
def test_tbptt_uses_the_fused_pass_without_a_mask(masked, monkeypatch):
    calls = []
    m = CharRNN(6, 5, seed=0, dtype=np.float64)
    original = m.forward_backward

    def spy(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(m, "forward_backward", spy)
    plain = CharRNN(6, 5, seed=0, dtype=np.float64)
    tb = crnn.training.TBPTT(m, softmax_cross_entropy, None, k=4)
    tb_plain = crnn.training.TBPTT(
        plain, lambda p, y, **kw: softmax_cross_entropy(p, y, **kw), None, k=4
    )
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 6, (4, 2)), rng.integers(0, 6, (4, 2))
    mask = np.ones((4, 2), bool) if masked else None
    loss = tb.step(x, y, mask)
    loss2 = tb_plain.step(x, y, mask)
    assert len(calls) == (0 if masked else 1)
    assert loss == pytest.approx(loss2, rel=1e-12)
    np.testing.assert_array_equal(tb.state, tb_plain.state)
    for k in plain.grads:
        assert_rel_close(m.grads[k], plain.grads[k], np.float64, name=k)
