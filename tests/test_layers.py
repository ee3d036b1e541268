"""The Module base and the layer classes' own behaviour: crnn.Linear, the
Jordan layer, and the machinery every recurrent layer shares, shown on
crnn.RNN (dropout, train / eval, seeds, init statistics, state dicts, child
modules, errors naming the bad argument).

The layers of every cell -- backends, gradients, semantics, parameters,
files, states -- are test_cells_layers.py, which iterates the cell registry.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import crnn
from crnn import RNN, Linear, Module, RNNCell, init as cinit
from crnn._engine import engine

T, B, I, H = 6, 4, 3, 5
DTYPES = [np.float32, np.float64]
dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)


def test_engine_switch():
    assert engine("c") is crnn.functional
    assert engine("numpy") is crnn.reference
    named = [f"{name}_{way}" for name in crnn.cells.REGISTRY for way in ("forward", "backward")]
    for mod in (engine("c"), engine("numpy")):
        for fn in ["forward", "backward", "clip_grad_norm", "clip_grad_value"] + named:
            assert callable(getattr(mod, fn)), fn
    for bad in ("C", "torch", None, 1):
        with pytest.raises(ValueError, match="backend"):
            engine(bad)


# --------------------------------------------------------------------------
# Gradients by central differences (float64)
# --------------------------------------------------------------------------


def test_linear_gradients_numeric():
    rng = np.random.default_rng(0)
    lin = Linear(3, 4, dtype=np.float64, seed=1)
    x = rng.standard_normal((2, 5, 3))
    dy = rng.standard_normal((2, 5, 4))
    lin(x)
    dx = lin.backward(dy)
    report = crnn.gradcheck(
        lambda: float(np.sum(lin(x) * dy)),
        dict(lin.params, x=x),
        dict(lin.grads, x=dx),
        rtol=1e-6,
        atol=1e-8,
    )
    assert report, str(report)


def test_linear_outputs_are_new_arrays():
    lin = Linear(I, H, dtype=np.float64)
    x = np.zeros((T, B, I))
    assert not np.shares_memory(lin(x), x)


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
        np.testing.assert_allclose(
            lin.grads["weight"], dy.reshape(n, H).T @ x.reshape(n, I), rtol=1e-13, atol=1e-14
        )
        np.testing.assert_allclose(
            lin.grads["bias"], dy.reshape(n, H).sum(0), rtol=1e-13, atol=1e-14
        )
    nob = Linear(I, H, bias=False, dtype=np.float64)
    assert list(nob.params) == ["weight"]
    x = rng.standard_normal((B, I))
    np.testing.assert_allclose(nob(x), x @ nob.params["weight"].T)


# --------------------------------------------------------------------------
# Gradient accumulation, zero_grad
# --------------------------------------------------------------------------


def test_linear_grads_accumulate_and_zero_grad():
    """(The recurrent layers and cells: test_cells_layers.py.)"""
    rng = np.random.default_rng(0)
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


def test_linear_backward_before_forward():
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
    top.load_state_dict(
        {k.replace("_l1", "_l0"): v for k, v in full.state_dict().items() if "_l1" in k}
    )
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


def test_linear_seeds():
    """(The recurrent layers' names, shapes and seeds: test_cells_layers.py.)"""
    np.testing.assert_array_equal(
        Linear(I, H, seed=3).params["weight"], Linear(I, H, seed=3).params["weight"]
    )
    assert not np.array_equal(Linear(I, H).params["weight"], Linear(I, H).params["weight"])


def _uniform_ok(a, bound):
    """a looks like U(-bound, bound) draws (5-sigma tolerances for its size)."""
    a = np.asarray(a, np.float64).ravel()
    n = a.size
    assert np.all(np.abs(a) <= bound * (1 + 1e-6))
    assert abs(a.mean()) < 5 * bound / np.sqrt(3 * n)
    assert abs(a.var() / (bound**2 / 3) - 1) < 5 * np.sqrt(0.8 / n)
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
    np.testing.assert_allclose(
        cell.params["weight_hh"].T @ cell.params["weight_hh"], np.eye(40), atol=1e-12
    )
    lin = Linear(20, 50, init="orthogonal", dtype=np.float64, seed=0)
    np.testing.assert_allclose(
        lin.params["weight"].T @ lin.params["weight"], np.eye(20), atol=1e-12
    )
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
    for part in (
        "missing keys: bias_hh_l1",
        "unexpected keys: extra",
        "weight_ih_l0",
        f"expected shape ({H}, {I}), got ({H}, {I + 1})",
    ):
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


def test_config_rebuilds_the_linear_layer():
    """(The recurrent layers and cells: test_cells_layers.py.)"""
    layer = Linear(I, H, bias=False, dtype=np.float32, backend="numpy", init="glorot")
    cfg = layer.config()
    assert json.loads(json.dumps(cfg)) == cfg
    twin = type(layer)(**cfg)
    assert twin.config() == cfg
    assert [(k, v.shape, v.dtype) for k, v in twin.params.items()] == [
        (k, v.shape, v.dtype) for k, v in layer.params.items()
    ]
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


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
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
    ],
)
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


# --------------------------------------------------------------------------
# The Jordan layer class (crnn.Jordan: one layer, one direction)
# --------------------------------------------------------------------------
def test_jordan_layer_init_save_load_and_errors():
    O = 2  # noqa: E741
    layer = crnn.Jordan(I, 16, O, dtype=np.float64, seed=0)
    shapes = {k: v.shape for k, v in layer.params.items()}
    assert shapes == {
        "weight_ih": (16, I),
        "weight_hy": (16, O),
        "weight_ho": (O, 16),
        "bias_ih": (16,),
        "bias_hh": (16,),
        "bias_ho": (O,),
    }
    assert max(np.abs(v).max() for v in layer.params.values()) <= 0.25
    from crnn.serialization import _implied_size

    assert _implied_size(crnn.Jordan, layer.config()) == layer.num_parameters()
    for init in ("orthogonal", "glorot"):
        assert crnn.Jordan(I, 4, O, init=init, bias=False).num_parameters() == 4 * I + 8 * O
    buf = io.BytesIO()
    crnn.save(layer, buf)
    buf.seek(0)
    loaded = crnn.load(buf)
    x = np.random.default_rng(0).standard_normal((T, B, I))
    np.testing.assert_array_equal(loaded(x)[0], layer(x)[0])
    with pytest.raises(ValueError, match="output_nonlinearity"):
        crnn.Jordan(I, H, O, output_nonlinearity="softmax")
    with pytest.raises(TypeError, match="float64"):
        layer(x.astype(np.float32))
    with pytest.raises(ValueError, match="y0"):
        layer(x, np.zeros((B, O + 1)))
    with pytest.raises(RuntimeError):
        crnn.Jordan(I, H, O).backward(None)
    rnn = crnn.RNN(I, H, dtype=np.float64)
    rnn(x)
    with pytest.raises(ValueError, match="cache"):
        layer.backward(None, cache=rnn.cache)


@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("layout", ["time_major", "batch_first", "unbatched"])
def test_jordan_layer_is_the_recurrent_layer(backend, layout):
    """crnn.Jordan computes what Recurrent("jordan", ...) with one layer does."""
    O = 2  # noqa: E741
    kw = dict(
        output_nonlinearity="tanh",
        batch_first=layout == "batch_first",
        dtype=np.float64,
        backend=backend,
    )
    jordan = crnn.Jordan(I, H, O, seed=3, **kw)
    recurrent = crnn.nn.Recurrent("jordan", I, H, output_size=O, **kw)
    recurrent.load_state_dict({k + "_l0": v for k, v in jordan.state_dict().items()})
    rng = np.random.default_rng(3)
    unbatched = layout == "unbatched"
    x = rng.standard_normal(
        (T, I) if unbatched else ((B, T, I) if kw["batch_first"] else (T, B, I))
    )
    y0 = rng.standard_normal((O,) if unbatched else (B, O))
    out, y_n = jordan(x, y0)
    dout, dy_n = rng.standard_normal(out.shape), rng.standard_normal(y_n.shape)
    dx, dy0 = jordan.backward(dout, dy_n)
    out_r, y_r = recurrent(x, y0[None])
    dx_r, dy0_r = recurrent.backward(dout, dy_n[None])
    for a, b in ((out, out_r), (y_n, y_r[0]), (dx, dx_r), (dy0, dy0_r[0])):
        np.testing.assert_array_equal(a, b)
    for k in jordan.grads:
        np.testing.assert_array_equal(jordan.grads[k], recurrent.grads[k + "_l0"])
