"""The vanishing-gradient problem, as shown by examples/vanishing_gradients.py:
on the adding problem a tanh RNN stays at the baseline while an LSTM and a GRU
learn, and the RNN's gradient ||dL/dh_t|| dies out through time while the
LSTM's and GRU's do not. Fixed seeds and small settings (a few seconds)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import crnn

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "vanishing_gradients.py"
pytestmark = pytest.mark.skipif(not SCRIPT.is_file(), reason="examples/ is not shipped here")

T, STEPS, HIDDEN = 40, 800, 32


@pytest.fixture(scope="module")
def vg():
    spec = importlib.util.spec_from_file_location("vanishing_gradients", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trained(vg):
    return {cell: vg.train(cell, T, STEPS, hidden_size=HIDDEN, seed=0) for cell in vg.CELLS}


def test_adding_batch(vg):
    x, y = vg.adding_batch(np.random.default_rng(0), 10, 50)
    assert x.shape == (10, 50, 2) and y.shape == (50, 1)
    assert (x[:, :, 1].sum(axis=0) == 2).all()
    assert (x[:5, :, 1].sum(axis=0) == 1).all()  # one marker per half
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * x[:, :, 1]).sum(axis=0), rtol=1e-6)


def test_gated_layers_learn_where_the_tanh_rnn_fails(vg, trained):
    losses = {cell: loss for cell, (_, loss) in trained.items()}
    assert losses["rnn"] > 0.8 * vg.BASELINE, losses  # no better than predicting the mean
    for cell in ("lstm", "gru"):
        assert losses[cell] < 0.1 * vg.BASELINE, losses
        assert losses[cell] < 0.1 * losses["rnn"], losses


def test_gradient_vanishes_in_the_rnn_only(vg, trained):
    x, y = vg.adding_batch(np.random.default_rng(7), T, 128)
    ratios = {}
    for cell, (model, _) in trained.items():
        norms = vg.grad_norms_through_time(model, x, y)
        assert norms.shape == (T,) and np.isfinite(norms).all() and (norms > 0).all()
        ratios[cell] = norms[0] / norms[-1]
    assert ratios["rnn"] < 1e-4, ratios  # orders of magnitude below its value at T-1
    assert ratios["lstm"] > 1e-2 and ratios["gru"] > 1e-2, ratios


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_grad_norms_match_the_layer_backward(vg, cell):
    """dL/dh_t from the functional rerun equals dh0 of the layer's own backward
    over steps t+1.. started from the state after step t; dL/dh_{T-1} is the
    head's gradient."""
    model = vg.Regressor(cell, 8, seed=3)
    x, y = vg.adding_batch(np.random.default_rng(1), 12, 5)
    norms = vg.grad_norms_through_time(model, x, y)
    layer = model.rnn
    for t in (0, 5):
        _, state = layer(x[: t + 1])  # the state after step t: h_t (and c_t)
        out, _ = layer(x[t + 1 :], state)
        _, dy = crnn.losses.mse(model.head(out[-1]), y)
        dout = np.zeros_like(out)
        dout[-1] = model.head.backward(dy)
        _, d0 = layer.backward(dout)
        dh = d0[0] if cell == "lstm" else d0
        np.testing.assert_allclose(
            norms[t], np.linalg.norm(dh[0].astype(np.float64), axis=1).mean(), rtol=1e-4
        )
    out, _ = layer(x)
    _, dy = crnn.losses.mse(model.head(out[-1]), y)
    dlast = model.head.backward(dy)
    np.testing.assert_allclose(
        norms[-1], np.linalg.norm(dlast.astype(np.float64), axis=1).mean(), rtol=1e-5
    )
