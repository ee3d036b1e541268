"""Token ids as a recurrent layer's input: integer (T, B) ids stand for
their one-hot vectors, which the C engine reads as a gather of weight_ih's
columns (and whose weight gradient it scatters), with no dx.

- the functional forward and backward give bitwise what the one-hot
  vectors give (outputs, states, every weight and state gradient): every
  cell and option setting, both dtypes, every ISA, with lengths (zero
  lengths included), more inputs than a packed block; dx is None; the NumPy
  engine agrees within the contract;
- layers take ids time-major, batch-first and unbatched, stacked and
  bidirectional, as the one-hot vectors;
- ids out of range, or of the wrong shape, raise naming x.
"""

from __future__ import annotations

import numpy as np
import pytest

import crnn
from crnn import reference as ref
from helpers import assert_bitwise, assert_results_close
from problems import cell_variants, default_output_size, dtype_param

T, B = 5, 3


def _weights(spec, I, H, dtype, rng):
    sizes = spec.dims(I, H, default_output_size(H))
    return {
        w.name: (rng.standard_normal(spec.weight_shape(w, sizes)) * 0.5).astype(dtype)
        for w in spec.weights
    }


@pytest.mark.parametrize("I", [7, 300])
@pytest.mark.parametrize("lengths", [None, [5, 2, 0]], ids=["full", "lengths"])
@dtype_param
@pytest.mark.parametrize("spec,options", cell_variants())
def test_ids_are_their_one_hot_vectors_bitwise(spec, options, dtype, lengths, I):
    rng = np.random.default_rng(0)
    w = _weights(spec, I, 9, dtype, rng)
    ids = rng.integers(0, I, (T, B))
    one_hot = np.eye(I, dtype=dtype)[ids]
    for isa in crnn.available_isas():
        crnn.set_isa(isa)
        got = crnn.forward(spec, ids, None, w, lengths=lengths, **options)
        want = crnn.forward(spec, one_hot, None, w, lengths=lengths, **options)
        assert_bitwise([got[0], *got[1]], [want[0], *want[1]], ctx=isa)
        dout = rng.standard_normal(got[0].shape).astype(dtype)
        g_ids = crnn.backward(dout, None, got[2])
        g_hot = crnn.backward(dout, None, want[2])
        assert g_ids.dx is None
        assert_bitwise(g_ids[1:], g_hot[1:], ctx=f"{isa} gradients")
    r = ref.forward(spec, ids, None, w, lengths=lengths, **options)
    assert_results_close([r[0], *r[1]], [got[0], *got[1]], dtype)
    r_grads = ref.backward(dout, None, r[2])
    assert r_grads.dx is None
    assert_results_close(r_grads[1:], g_ids[1:], dtype)


@pytest.mark.parametrize("layout", ["time-major", "batch-first", "unbatched"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_layers_take_ids(layout, bidirectional):
    V = 6
    layer = crnn.LSTM(V, 5, num_layers=2, bidirectional=bidirectional, dtype=np.float64, seed=0)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, V, (T, B))
    if layout == "batch-first":
        layer.batch_first = True
        ids = ids.T
    elif layout == "unbatched":
        ids = ids[:, 0]
    one_hot = np.eye(V)[ids]
    out, state = layer(ids)
    dout = rng.standard_normal(out.shape)
    dx, d0 = layer.backward(dout)
    out2, state2 = layer(one_hot)
    dx2, d02 = layer.backward(dout)
    assert_bitwise([out, *state], [out2, *state2])
    assert dx is None and dx2.shape == one_hot.shape
    assert_bitwise(list(d0), list(d02))


def test_models_train_on_ids_like_one_hot_vectors():
    """A CharRNN reads its ids through the gather; its parameter gradients
    are those of the one-hot vectors."""
    V = 8
    m = crnn.models.CharRNN(V, 6, num_layers=2, dtype=np.float64, seed=0)
    rng = np.random.default_rng(2)
    ids = rng.integers(0, V, (T, B))
    logits, _ = m(ids)
    m.backward(np.ones_like(logits))
    by_ids = {k: g.copy() for k, g in m.grads.items()}
    m.zero_grad()
    logits2, _ = m(np.eye(V)[ids])
    m.backward(np.ones_like(logits2))
    assert_bitwise([logits], [logits2])
    assert_bitwise(list(by_ids.values()), list(m.grads.values()))


@pytest.mark.parametrize("engine", [crnn, ref], ids=["c", "numpy"])
def test_bad_ids(engine):
    w = _weights(crnn.cells.get("gru"), 4, 3, np.float32, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"x holds token ids.*\[0, 4\)"):
        engine.forward("gru", np.full((2, 2), 4), None, w)
    with pytest.raises(ValueError, match=r"x holds token ids.*\[0, 4\)"):
        engine.forward("gru", np.full((2, 2), -1), None, w)
    # Three-dimensional integers are not ids: x must then be floats.
    with pytest.raises(TypeError, match="x must be a float32 or float64 array"):
        engine.forward("gru", np.zeros((2, 2, 4), int), None, w)
    with pytest.raises(ValueError, match=r"x holds token ids"):
        crnn.GRU(4, 3).forward(np.full((2, 2), 9))


@dtype_param
def test_weight_gradient_scatter_adds_as_the_product_does(dtype):
    """More rows than one block of the product (256): the scatter adds each
    block's sums in the product's order (bitwise the one-hot gradient)."""
    spec = crnn.cells.get("gru")
    rng = np.random.default_rng(5)
    w = _weights(spec, 11, 6, dtype, rng)
    ids = rng.integers(0, 11, (40, 8))
    got = crnn.forward(spec, ids, None, w)
    want = crnn.forward(spec, np.eye(11, dtype=dtype)[ids], None, w)
    dout = rng.standard_normal(got[0].shape).astype(dtype)
    assert_bitwise(crnn.backward(dout, None, got[2])[1:], crnn.backward(dout, None, want[2])[1:])
