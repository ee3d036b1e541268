"""crnn.losses: hand-derived values, finite-difference gradients, stability,
masks / ignore_index / reductions / label smoothing, PyTorch parity,
validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

import crnn
from crnn import losses
from helpers import assert_rel_close

dtype_param = pytest.mark.parametrize(
    "dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name
)
REDUCTIONS = ["mean", "sum", "none"]


def _ce_by_hand(logits, targets):
    """Per-row -log softmax(row)[t] and softmax(row) - onehot(t), by math."""
    losses_, grads = [], []
    for row, t in zip(logits, targets):
        z = sum(math.exp(v) for v in row)
        losses_.append(math.log(z) - row[t])
        grads.append([math.exp(v) / z - (1.0 if c == t else 0.0) for c, v in enumerate(row)])
    return np.array(losses_), np.array(grads)


def _assert_central_differences(loss_of, x, grad):
    """grad is the gradient of sum(loss_of(x)) by central differences (every
    entry; crnn.gradcheck perturbs x in place)."""
    report = crnn.gradcheck(
        lambda: _scalar(loss_of(x)), {"x": x}, {"x": grad}, rtol=1e-6, atol=1e-9
    )
    assert report, str(report)


def _scalar(loss):
    return float(np.sum(loss))


# --------------------------------------------------------------------------
# Cross-entropy: hand-derived values
# --------------------------------------------------------------------------

LOGITS = [[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [-2.0, 0.5, 0.0]]
TARGETS = [2, 0, 1]


@dtype_param
def test_cross_entropy_by_hand(dtype):
    x = np.array(LOGITS, dtype)
    t = np.array(TARGETS)
    per, g = _ce_by_hand(LOGITS, TARGETS)
    tol = 1e-6 if dtype == np.float32 else 1e-14

    loss, grad = losses.softmax_cross_entropy(x, t)
    assert isinstance(loss, float)
    assert loss == pytest.approx(per.mean(), rel=tol)
    assert grad.dtype == dtype and grad.shape == x.shape
    np.testing.assert_allclose(grad, g / 3, rtol=0, atol=tol)

    loss, grad = losses.softmax_cross_entropy(x, t, reduction="sum")
    assert loss == pytest.approx(per.sum(), rel=tol)
    np.testing.assert_allclose(grad, g, rtol=0, atol=tol)

    loss, grad = losses.softmax_cross_entropy(x, t, reduction="none")
    assert isinstance(loss, np.ndarray) and loss.dtype == dtype and loss.shape == (3,)
    np.testing.assert_allclose(loss, per, rtol=tol)
    np.testing.assert_allclose(grad, g, rtol=0, atol=tol)


def test_cross_entropy_uniform_logits_is_log_c():
    for C in (1, 2, 7):
        loss, grad = losses.softmax_cross_entropy(np.zeros((4, C)), np.zeros(4, np.int64))
        assert loss == pytest.approx(math.log(C), abs=1e-15)
        expected = np.full((4, C), 1.0 / C)
        expected[:, 0] -= 1
        np.testing.assert_allclose(grad, expected / 4, atol=1e-16)


def test_cross_entropy_time_major_shape_and_single_position():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 4))
    t = rng.integers(0, 4, (5, 3))
    loss, grad = losses.softmax_cross_entropy(x, t, reduction="none")
    flat_loss, flat_grad = losses.softmax_cross_entropy(
        x.reshape(15, 4), t.reshape(15), reduction="none"
    )
    np.testing.assert_array_equal(loss, flat_loss.reshape(5, 3))
    np.testing.assert_array_equal(grad, flat_grad.reshape(5, 3, 4))

    loss, grad = losses.softmax_cross_entropy(np.array([1.0, 2.0, 3.0]), 2)
    per, g = _ce_by_hand([LOGITS[0]], [2])
    assert loss == pytest.approx(per[0], rel=1e-14)
    np.testing.assert_allclose(grad, g[0], atol=1e-15)
    loss, _ = losses.softmax_cross_entropy(np.array([1.0, 2.0, 3.0]), 2, reduction="none")
    assert loss.shape == ()


def test_label_smoothing_by_hand():
    s = 0.3
    x = np.array(LOGITS)
    loss, grad = losses.softmax_cross_entropy(
        x, np.array(TARGETS), reduction="none", label_smoothing=s
    )
    C = 3
    for i, (row, t) in enumerate(zip(LOGITS, TARGETS)):
        lse = math.log(sum(math.exp(v) for v in row))
        logp = [v - lse for v in row]
        q = [(1 - s) * (c == t) + s / C for c in range(C)]
        assert loss[i] == pytest.approx(-sum(qc * lc for qc, lc in zip(q, logp)), rel=1e-14)
        np.testing.assert_allclose(
            grad[i], [math.exp(lc) - qc for lc, qc in zip(logp, q)], atol=1e-15
        )


# --------------------------------------------------------------------------
# Finite differences (float64)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_gradient_by_finite_differences(reduction, masked, smoothing):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 5)) * 2
    t = rng.integers(0, 5, (3, 2))
    mask = np.array([[1, 1], [0, 1], [1, 0]], bool) if masked else None
    kw = dict(mask=mask, reduction=reduction, label_smoothing=smoothing)
    _, grad = losses.softmax_cross_entropy(x, t, **kw)
    _assert_central_differences(lambda z: losses.softmax_cross_entropy(z, t, **kw)[0], x, grad)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("masked", [False, True])
def test_mse_gradient_by_finite_differences(reduction, masked):
    rng = np.random.default_rng(2)
    p, y = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    mask = rng.integers(0, 2, (2, 3, 1)) if masked else None
    kw = dict(mask=mask, reduction=reduction)
    _, grad = losses.mse(p, y, **kw)
    _assert_central_differences(lambda z: losses.mse(z, y, **kw)[0], p, grad)


# --------------------------------------------------------------------------
# Stability
# --------------------------------------------------------------------------


@dtype_param
def test_cross_entropy_huge_logits_are_stable(dtype):
    x = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4], [1e4, 1e4, -1e4]], dtype)
    t = np.array([0, 1, 0])
    loss, grad = losses.softmax_cross_entropy(x, t, reduction="none")
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, [0.0, 1e4, math.log(2)], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad, [[0, 0, 0], [1, -1, 0], [-0.5, 0.5, 0]], atol=1e-6)

    rng = np.random.default_rng(3)
    big = (rng.standard_normal((6, 10)) * 1e4).astype(dtype)
    tt = rng.integers(0, 10, 6)
    for red in REDUCTIONS:
        loss, grad = losses.softmax_cross_entropy(big, tt, reduction=red)
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    # Shift invariance: adding a constant to every logit changes nothing.
    a, ga = losses.softmax_cross_entropy(x, t, reduction="none")
    b, gb = losses.softmax_cross_entropy(x + dtype(5e3), t, reduction="none")
    np.testing.assert_allclose(a, b, atol=1e-3)
    np.testing.assert_allclose(ga, gb, atol=1e-6)


@dtype_param
def test_softmax_and_log_softmax_are_stable(dtype):
    x = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4]], dtype)
    sm = losses.softmax(x)
    lsm = losses.log_softmax(x)
    assert sm.dtype == dtype and lsm.dtype == dtype
    assert np.all(np.isfinite(sm)) and np.all(np.isfinite(lsm))
    np.testing.assert_allclose(sm, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-6)
    np.testing.assert_allclose(lsm, [[0, -1e4, -2e4], [-math.log(3)] * 3], rtol=1e-6)


def test_softmax_axis_and_sums():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 5))
    for axis in (0, 1, 2, -1, -3):
        sm = losses.softmax(x, axis=axis)
        np.testing.assert_allclose(sm.sum(axis=axis), 1.0, atol=1e-14)
        np.testing.assert_allclose(np.log(sm), losses.log_softmax(x, axis=axis), atol=1e-13)
        e = np.exp(x)
        np.testing.assert_allclose(sm, e / e.sum(axis=axis, keepdims=True), rtol=1e-14)
    assert losses.softmax(np.zeros((2, 0))).shape == (2, 0)
    assert losses.log_softmax(np.zeros((0, 3))).shape == (0, 3)


# --------------------------------------------------------------------------
# Masks and ignore_index
# --------------------------------------------------------------------------


def test_cross_entropy_mask_selects_positions_even_with_nan_logits():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 6))
    t = rng.integers(0, 6, (4, 3))
    mask = np.ones((4, 3), bool)
    mask[2:, 1] = False
    mask[3, 0] = False
    x_bad, t_bad = x.copy(), t.copy()
    x_bad[~mask] = np.nan
    t_bad[~mask] = -1  # garbage targets at masked positions are not read

    sel_loss, sel_grad = losses.softmax_cross_entropy(x[mask], t[mask], reduction="sum")
    for red in REDUCTIONS:
        loss, grad = losses.softmax_cross_entropy(x_bad, t_bad, mask=mask, reduction=red)
        scale = 1.0 / mask.sum() if red == "mean" else 1.0
        assert np.all(grad[~mask] == 0)
        np.testing.assert_allclose(grad[mask], sel_grad * scale, rtol=1e-14)
        if red == "none":
            assert np.all(loss[~mask] == 0)
            assert loss.sum() == pytest.approx(sel_loss, rel=1e-14)
        else:
            assert loss == pytest.approx(sel_loss * scale, rel=1e-14)

    # A 0/1 float mask and a broadcastable mask do the same.
    a = losses.softmax_cross_entropy(x, t, mask=mask.astype(np.float64))
    b = losses.softmax_cross_entropy(x, t, mask=mask)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    col = np.array([[True], [True], [False], [True]])
    a = losses.softmax_cross_entropy(x, t, mask=col)
    b = losses.softmax_cross_entropy(x, t, mask=np.broadcast_to(col, (4, 3)).copy())
    assert a[0] == b[0]


def test_ignore_index_equals_mask():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, 5))
    t = rng.integers(0, 5, 8)
    t_ign = t.copy()
    t_ign[[1, 4]] = -100
    mask = t_ign != -100
    for red in REDUCTIONS:
        a = losses.softmax_cross_entropy(x, t_ign, reduction=red, ignore_index=-100)
        b = losses.softmax_cross_entropy(x, t, mask=mask, reduction=red)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    # An ignore_index inside [0, C) masks that class's positions.
    a = losses.softmax_cross_entropy(x, t, ignore_index=2)
    b = losses.softmax_cross_entropy(x, t, mask=t != 2)
    assert a[0] == b[0]


def test_nothing_counts_gives_zero_loss_and_grad():
    x = np.random.default_rng(7).standard_normal((3, 4))
    for red in ("mean", "sum"):
        loss, grad = losses.softmax_cross_entropy(
            x, np.zeros(3, int), mask=np.zeros(3, bool), reduction=red
        )
        assert loss == 0.0 and np.all(grad == 0)
        loss, grad = losses.softmax_cross_entropy(
            x, np.full(3, -100), ignore_index=-100, reduction=red
        )
        assert loss == 0.0 and np.all(grad == 0)
        loss, grad = losses.mse(x, x + 1, mask=np.zeros(4, bool), reduction=red)
        assert loss == 0.0 and np.all(grad == 0)
    loss, grad = losses.softmax_cross_entropy(np.zeros((0, 4)), np.zeros(0, int))
    assert loss == 0.0 and grad.shape == (0, 4)
    loss, grad = losses.mse(np.zeros((0, 2)), np.zeros((0, 2)))
    assert loss == 0.0 and grad.shape == (0, 2)


# --------------------------------------------------------------------------
# MSE
# --------------------------------------------------------------------------


@dtype_param
def test_mse_by_hand(dtype):
    p = np.array([[1.0, 2.0], [3.0, -1.0]], dtype)
    y = np.array([[0.0, 2.0], [1.0, 1.0]], dtype)
    d = [1.0, 0.0, 2.0, -2.0]
    loss, grad = losses.mse(p, y)
    assert isinstance(loss, float) and loss == pytest.approx(sum(v * v for v in d) / 4)
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad.ravel(), [2 * v / 4 for v in d])
    loss, grad = losses.mse(p, y, reduction="sum")
    assert loss == pytest.approx(9.0)
    np.testing.assert_allclose(grad.ravel(), [2 * v for v in d])
    loss, grad = losses.mse(p, y, reduction="none")
    assert loss.dtype == dtype
    np.testing.assert_allclose(loss.ravel(), [v * v for v in d])
    # Mask broadcast over the last axis: row 0 only, so 2 elements count.
    loss, grad = losses.mse(p, y, mask=np.array([[1], [0]]))
    assert loss == pytest.approx(1.0 / 2)
    np.testing.assert_allclose(grad, [[1.0, 0.0], [0.0, 0.0]])
    p_nan = p.copy()
    p_nan[1] = np.nan
    loss, grad = losses.mse(p_nan, y, mask=np.array([[True], [False]]))
    assert loss == pytest.approx(0.5) and np.all(grad[1] == 0)
    assert losses.mse(np.array(3.0, dtype), np.array(1.0, dtype))[0] == pytest.approx(4.0)


# --------------------------------------------------------------------------
# PyTorch parity
# --------------------------------------------------------------------------


@dtype_param
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_matches_torch(dtype, reduction, smoothing):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    T, B, C = 4, 3, 7
    x = (rng.standard_normal((T, B, C)) * 3).astype(dtype)
    t = rng.integers(0, C, (T, B))
    t[1, 2] = t[3, 0] = -100
    loss, grad = losses.softmax_cross_entropy(
        x, t, reduction=reduction, ignore_index=-100, label_smoothing=smoothing
    )
    xt = torch.tensor(x.reshape(T * B, C), requires_grad=True)
    tl = torch.nn.functional.cross_entropy(
        xt,
        torch.tensor(t.reshape(-1)),
        reduction=reduction,
        ignore_index=-100,
        label_smoothing=smoothing,
    )
    tl.sum().backward()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    if reduction == "none":
        assert_rel_close(loss, tl.detach().numpy().reshape(T, B), tol=tol, name="loss")
    else:
        assert loss == pytest.approx(float(tl.detach()), rel=tol)
    assert_rel_close(grad, xt.grad.numpy().reshape(T, B, C), tol=tol, name="grad")


@dtype_param
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_matches_torch(dtype, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    p, y = (
        rng.standard_normal((5, 2, 3)).astype(dtype),
        rng.standard_normal((5, 2, 3)).astype(dtype),
    )
    loss, grad = losses.mse(p, y, reduction=reduction)
    pt = torch.tensor(p, requires_grad=True)
    tl = torch.nn.functional.mse_loss(pt, torch.tensor(y), reduction=reduction)
    tl.sum().backward()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    if reduction == "none":
        assert_rel_close(loss, tl.detach().numpy(), tol=tol, name="loss")
    else:
        assert loss == pytest.approx(float(tl.detach()), rel=tol)
    assert_rel_close(grad, pt.grad.numpy(), tol=tol, name="grad")


@dtype_param
def test_softmax_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    x = (np.random.default_rng(10).standard_normal((4, 5, 6)) * 20).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for axis in (0, 1, -1):
        assert_rel_close(
            losses.softmax(x, axis), torch.softmax(torch.tensor(x), axis).numpy(), tol=tol
        )
        assert_rel_close(
            losses.log_softmax(x, axis), torch.log_softmax(torch.tensor(x), axis).numpy(), tol=tol
        )


# --------------------------------------------------------------------------
# Inputs untouched, validation
# --------------------------------------------------------------------------


def test_inputs_are_not_modified_and_may_be_read_only():
    rng = np.random.default_rng(11)
    x, t = rng.standard_normal((3, 4)), rng.integers(0, 4, 3)
    m = np.array([True, False, True])
    y = rng.standard_normal((3, 4))
    for a in (x, t, m, y):
        a.flags.writeable = False
    copies = [a.copy() for a in (x, t, m, y)]
    for red in REDUCTIONS:
        losses.softmax_cross_entropy(x, t, mask=m, reduction=red, label_smoothing=0.1)
        losses.mse(x, y, mask=m[:, None], reduction=red)
    losses.softmax(x)
    losses.log_softmax(x)
    for a, c in zip((x, t, m, y), copies):
        np.testing.assert_array_equal(a, c)
    # A non-native byte order input is accepted and gives native results.
    loss, grad = losses.softmax_cross_entropy(x.astype(">f8"), t)
    assert loss == pytest.approx(losses.softmax_cross_entropy(x, t)[0], rel=1e-15)
    assert grad.dtype == np.float64


@pytest.mark.parametrize(
    "kwargs,exc,word",
    [
        (dict(logits=np.zeros((2, 3), np.int64)), TypeError, "logits"),
        (dict(logits=None), TypeError, "logits"),
        (dict(logits=np.float64(1.0), targets=0), ValueError, "logits"),
        (dict(logits=np.zeros((2, 0)), targets=np.zeros(2, int)), ValueError, "logits"),
        (dict(targets=np.zeros(2)), TypeError, "targets"),
        (dict(targets=np.zeros(2, bool)), TypeError, "targets"),
        (dict(targets=np.zeros(3, int)), ValueError, "targets"),
        (dict(targets=np.array([0, 3])), ValueError, "targets"),
        (dict(targets=np.array([0, -1])), ValueError, "targets"),
        (dict(reduction="avg"), ValueError, "reduction"),
        (dict(mask=np.zeros(3, bool)), ValueError, "mask"),
        (dict(mask=np.array([0.5, 1.0])), ValueError, "mask"),
        (dict(mask=np.array(["a", "b"])), TypeError, "mask"),
        (dict(ignore_index=1.0), TypeError, "ignore_index"),
        (dict(label_smoothing=1.5), ValueError, "label_smoothing"),
        (dict(label_smoothing="0.1"), TypeError, "label_smoothing"),
    ],
)
def test_cross_entropy_validation(kwargs, exc, word):
    args = dict(logits=np.zeros((2, 3)), targets=np.array([0, 2]))
    args.update(kwargs)
    with pytest.raises(exc, match=word):
        losses.softmax_cross_entropy(**args)


@pytest.mark.parametrize(
    "kwargs,exc,word",
    [
        (dict(pred=np.zeros(3, np.int32)), TypeError, "pred"),
        (dict(target=None), TypeError, "target"),
        (dict(target=np.zeros(3, np.float32)), TypeError, "dtype"),
        (dict(target=np.zeros(4)), ValueError, "target"),
        (dict(mask=np.zeros(2, bool)), ValueError, "mask"),
        (dict(mask=np.array([2, 0, 1])), ValueError, "mask"),
        (dict(reduction=None), ValueError, "reduction"),
    ],
)
def test_mse_validation(kwargs, exc, word):
    args = dict(pred=np.zeros(3), target=np.zeros(3))
    args.update(kwargs)
    with pytest.raises(exc, match=word):
        losses.mse(**args)


def test_softmax_validation():
    with pytest.raises(TypeError, match="x"):
        losses.softmax(np.arange(3))
    with pytest.raises(ValueError, match="axis"):
        losses.softmax(np.zeros((2, 3)), axis=2)
    with pytest.raises(TypeError, match="axis"):
        losses.log_softmax(np.zeros((2, 3)), axis=1.0)
    with pytest.raises(ValueError, match="x"):
        losses.log_softmax(np.float64(1.0))
