"""Exploding gradients, as shown by examples/exploding_gradients.py: with large
recurrent weights ||dL/dh_t|| grows geometrically back through time; trained
with plain SGD the gradient norm then grows from step to step until the loss is
no longer finite, while crnn.clip_grad_norm keeps every update bounded and the
model learns. Fixed seeds and small settings (seconds)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

import crnn

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "exploding_gradients.py"
pytestmark = pytest.mark.skipif(not SCRIPT.is_file(), reason="examples/ is not shipped here")


@pytest.fixture(scope="module")
def eg():
    spec = importlib.util.spec_from_file_location("exploding_gradients", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_last_two_batch(eg):
    x, y = eg.last_two_batch(np.random.default_rng(0), 10, 50)
    assert x.shape == (10, 50, 2) and y.shape == (50, 1)
    assert (x[-2:, :, 1] == 1).all() and (x[:-2, :, 1] == 0).all()
    np.testing.assert_allclose(y[:, 0], x[-1, :, 0] + x[-2, :, 0], rtol=1e-6)


def test_gradient_explodes_through_time_with_large_weights_only(eg):
    T = 40
    x, y = eg.last_two_batch(np.random.default_rng(7), T, 64)
    ratios = {}
    for g in eg.SCALES:
        norms = eg.grad_norms_through_time(eg.Regressor(g, seed=0), x, y)
        assert norms.shape == (T,) and np.isfinite(norms).all() and (norms > 0).all()
        ratios[g] = norms[0] / norms[-1]
        if g == 4.0:
            # Step after step: the norm grows on most steps back from the loss,
            # and by ~1.4x per step over the whole sequence.
            grows = np.mean(norms[:-1] > norms[1:])
            assert grows > 0.8, grows
            assert ratios[g] ** (1 / (T - 1)) > 1.3, ratios
    assert ratios[1.0] < 1e-1, ratios  # vanishing
    assert ratios[4.0] > 1e5, ratios  # exploding
    assert ratios[1.0] < ratios[2.0] < ratios[4.0]


def test_grad_norms_match_the_layer_backward(eg):
    """dL/dh_t from the functional rerun equals dh0 of the layer's backward over
    steps t+1.. started from h_t; dL/dh_{T-1} is the head's gradient."""
    model = eg.Regressor(3.0, hidden_size=8, seed=3)
    x, y = eg.last_two_batch(np.random.default_rng(1), 12, 5)
    norms = eg.grad_norms_through_time(model, x, y)
    layer = model.rnn
    for t in (0, 5):
        _, h = layer(x[: t + 1])
        out, _ = layer(x[t + 1 :], h)
        _, dy = crnn.losses.mse(model.head(out[-1]), y)
        dout = np.zeros_like(out)
        dout[-1] = model.head.backward(dy)
        _, dh = layer.backward(dout)
        np.testing.assert_allclose(
            norms[t], np.linalg.norm(dh[0].astype(np.float64), axis=1).mean(), rtol=1e-4
        )


def test_grad_norm_is_what_clip_grad_norm_measures(eg):
    model = eg.Regressor(2.0, hidden_size=6, seed=0)
    x, y = eg.last_two_batch(np.random.default_rng(2), 8, 4)
    _, dy = crnn.losses.mse(model(x), y)
    model.backward(dy)
    expected = eg.grad_norm(model.grads)
    assert crnn.clip_grad_norm(model.grads, 1e9) == pytest.approx(expected, rel=1e-6)


def test_without_clipping_the_norm_grows_until_the_loss_is_not_finite(eg):
    _, hist, test = eg.train(None, 120, seed=0)
    losses = np.array([h[0] for h in hist])
    norms = np.array([h[1] for h in hist])
    bad = np.flatnonzero(~np.isfinite(losses))
    assert bad.size, "the loss should blow up without clipping"
    first_bad = bad[0]
    # Before that, the gradient norm grows from step to step (after the first
    # update), by orders of magnitude.
    grow = norms[1:first_bad]
    assert grow.size >= 5
    assert np.mean(np.diff(grow) > 0) > 0.8
    assert grow[-1] > 1e4 * grow[0]
    assert not math.isfinite(test)


def test_clipping_keeps_training_bounded_and_learns(eg):
    model, hist, test = eg.train(eg.MAX_NORM, 1500, seed=0)
    losses = np.array([h[0] for h in hist])
    norms = np.array([h[1] for h in hist])
    assert np.isfinite(losses).all() and np.isfinite(norms).all()
    assert norms.max() < 1e5
    assert test < 0.5 * eg.BASELINE, test
    assert all(np.isfinite(p).all() for p in model.params.values())


def test_clip_bounds_each_update(eg):
    """With SGD(lr) and clip_grad_norm(max_norm), no update moves the weights
    by more than lr * max_norm, however large the raw gradient."""
    model = eg.Regressor(4.0, hidden_size=16, seed=0)
    x, y = eg.last_two_batch(np.random.default_rng(3), 60, 32)
    _, dy = crnn.losses.mse(model(x), y)
    model.backward(dy)
    assert eg.grad_norm(model.grads) > 10.0
    before = {k: p.copy() for k, p in model.params.items()}
    crnn.clip_grad_norm(model.grads, 1.0)
    crnn.optim.SGD(model.params, lr=0.05).step(model.grads)
    moved = math.sqrt(
        sum(float(np.sum((model.params[k] - before[k]).astype(np.float64) ** 2)) for k in before)
    )
    assert moved <= 0.05 * 1.0 * (1 + 1e-5)
