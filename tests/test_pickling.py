"""Pickling and deep copies of every module, model, optimizer and cache.

A model sent to a worker process (multiprocessing, joblib, Dask) or cached
by joblib goes through pickle; scikit-learn's clone and many training loops
use copy.deepcopy. Every public Module class of crnn is built here (the test
fails when a new one has no case), run forward and backward, copied both
ways, and must then behave exactly as the original: the pending backward of
the copied cache, a new forward, a new backward and an optimizer step give
bitwise the same numbers, and a copy's parameters stay shared with its
children's. crnn.save remains the pickle-free file format (tests elsewhere).
"""

from __future__ import annotations

import copy
import inspect
import pickle
from typing import Any, Callable, Dict, NamedTuple

import numpy as np
import pytest

import crnn
from crnn import attention, cells, embedding, forecasting, functional, models, nn, optim, reference
from crnn.module import Module
from helpers import assert_bitwise
from problems import make_problem

DT = np.float64


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _x(T: int, B: int, F: int, seed: int = 0) -> np.ndarray:
    return _rng(seed).standard_normal((T, B, F)).astype(DT)


def _ids(T: int, B: int, n: int, seed: int = 0) -> np.ndarray:
    return _rng(seed).integers(0, n, size=(T, B))


class Case(NamedTuple):
    make: Callable[[], Module]
    inputs: Callable[[int], tuple]  # seed -> forward's arguments
    # (module, first output) -> the backward's return value
    backward: Callable[[Module, Any], Any]


def _grad_like(a: Any) -> Any:
    """A fixed, non-trivial gradient shaped like an output (or tuple of them)."""
    if isinstance(a, tuple):
        return tuple(_grad_like(v) for v in a)
    return np.cos(np.arange(a.size, dtype=a.dtype)).reshape(a.shape)


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, tuple) and not hasattr(out, "_fields") else out


def _backward_first(m: Module, out: Any) -> Any:
    return m.backward(_grad_like(_first(out)))


def _backward_state(m: Module, out: Any) -> Any:
    return m.backward(_grad_like(out))


CASES: Dict[str, Case] = {
    "RNN": Case(
        lambda: nn.RNN(3, 4, num_layers=2, bidirectional=True, dtype=DT, seed=1),
        lambda s: (_x(5, 2, 3, s),),
        _backward_first,
    ),
    "LSTM": Case(
        lambda: nn.LSTM(3, 4, dtype=DT, seed=1), lambda s: (_x(5, 2, 3, s),), _backward_first
    ),
    "GRU": Case(
        lambda: nn.GRU(3, 4, dropout=0.5, num_layers=2, dtype=DT, seed=1),
        lambda s: (_x(5, 2, 3, s),),
        _backward_first,
    ),
    "Jordan": Case(
        lambda: nn.Jordan(3, 4, 2, dtype=DT, seed=1), lambda s: (_x(5, 2, 3, s),), _backward_first
    ),
    "Recurrent": Case(
        lambda: nn.Recurrent("gru", 3, 4, dtype=DT, seed=1),
        lambda s: (_x(5, 2, 3, s), None, [5, 3]),
        _backward_first,
    ),
    "RNNCell": Case(
        lambda: nn.RNNCell(3, 4, dtype=DT, seed=1), lambda s: (_x(1, 2, 3, s)[0],), _backward_state
    ),
    "LSTMCell": Case(
        lambda: nn.LSTMCell(3, 4, dtype=DT, seed=1),
        lambda s: (_x(1, 2, 3, s)[0],),
        _backward_state,
    ),
    "GRUCell": Case(
        lambda: nn.GRUCell(3, 4, dtype=DT, seed=1), lambda s: (_x(1, 2, 3, s)[0],), _backward_state
    ),
    "RecurrentCell": Case(
        lambda: nn.RecurrentCell("lstm", 3, 4, dtype=DT, seed=1),
        lambda s: (_x(1, 2, 3, s)[0],),
        _backward_state,
    ),
    "Linear": Case(
        lambda: nn.Linear(3, 4, dtype=DT, seed=1), lambda s: (_x(1, 5, 3, s)[0],), _backward_first
    ),
    "Embedding": Case(
        lambda: embedding.Embedding(7, 3, padding_idx=0, dtype=DT, seed=1),
        lambda s: (_ids(4, 2, 7, s),),
        _backward_first,
    ),
    "Attention": Case(
        lambda: attention.Attention("general", 4, 3, dtype=DT, seed=1),
        lambda s: (_x(3, 2, 4, s), _x(5, 2, 3, s + 1), [5, 2]),
        _backward_first,
    ),
    "MLPRegressor": Case(
        lambda: models.MLPRegressor(4, 8, 1, nonlinearity="sigmoid", dtype=DT, seed=1),
        lambda s: (_x(1, 6, 4, s)[0],),
        _backward_first,
    ),
    "SequenceClassifier": Case(
        lambda: models.SequenceClassifier(
            3, 4, 2, cell="lstm", bidirectional=True, dtype=DT, seed=1
        ),
        lambda s: (_x(5, 3, 3, s), None, [5, 2, 4]),
        _backward_first,
    ),
    "SequenceTagger": Case(
        lambda: models.SequenceTagger(9, 4, 3, cell="gru", embedding_dim=5, dtype=DT, seed=1),
        lambda s: (_ids(5, 2, 9, s),),
        _backward_first,
    ),
    "CharRNN": Case(
        lambda: models.CharRNN(6, 4, dtype=DT, seed=1),
        lambda s: (_ids(5, 2, 6, s),),
        _backward_first,
    ),
    "CharModel": Case(
        lambda: models.CharModel("abcd", 4, cell="lstm", dtype=DT, seed=1),
        lambda s: (_ids(5, 2, 5, s),),
        _backward_first,
    ),
    "Seq2Seq": Case(
        lambda: models.Seq2Seq(6, 5, 4, attention="dot", cell="gru", dtype=DT, seed=1),
        lambda s: (
            crnn.data.one_hot(_ids(4, 2, 6, s), 6, DT),
            crnn.data.one_hot(_ids(3, 2, 5, s + 1), 5, DT),
        ),
        _backward_first,
    ),
    "Forecaster": Case(
        lambda: forecasting.Forecaster(window=4, horizon=2, hidden_size=5, dtype=DT, seed=1),
        lambda s: (_x(4, 3, 1, s),),
        _backward_first,
    ),
}


def _public_module_classes() -> Dict[str, type]:
    found = {}
    for mod in (crnn, nn, models, forecasting, embedding, attention):
        for name in getattr(mod, "__all__", dir(mod)):
            obj = getattr(mod, name, None)
            if inspect.isclass(obj) and issubclass(obj, Module) and obj is not Module:
                found[obj.__name__] = obj
    return found


def test_every_public_module_class_has_a_case():
    classes = _public_module_classes()
    assert set(classes) == set(CASES), (
        f"add a case for {sorted(set(classes) - set(CASES))}; "
        f"no such class: {sorted(set(CASES) - set(classes))}"
    )
    for name, case in CASES.items():
        assert type(case.make()) is classes[name]


def _pickled(obj: Any) -> Any:
    return pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


COPIERS = {"pickle": _pickled, "deepcopy": copy.deepcopy}


def _flat(value: Any) -> list:
    """The arrays (and Nones) of a nested result, in order."""
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in _flat(v)]
    if isinstance(value, dict):
        return [a for k in sorted(value) for a in _flat(value[k])]
    return [value]


def _assert_children_share(m: Module, ctx: str) -> None:
    """Every child's parameter and gradient is the very array in m's dicts."""
    for child_name, child in m.children():
        for key, value in child.params.items():
            assert m.params[f"{child_name}.{key}"] is value, f"{ctx}: {child_name}.{key}"
            assert m.grads[f"{child_name}.{key}"] is child.grads[key], f"{ctx}: grad {key}"
        _assert_children_share(child, f"{ctx}.{child_name}")


@pytest.mark.parametrize("how", list(COPIERS))
@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("name", list(CASES))
def test_module_round_trip_behaves_the_same(name, backend, how):
    case = CASES[name]
    m = case.make().set_backend(backend)
    out = m(*case.inputs(0))
    twin = COPIERS[how](m)
    assert type(twin) is type(m) and twin is not m
    assert (twin.backend, twin.training, repr(twin)) == (m.backend, m.training, repr(m))
    assert list(twin.params) == list(m.params)
    assert_bitwise(twin.params, m.params, f"{name} params")
    _assert_children_share(twin, name)
    # The cache of the last forward came along: the pending backward matches.
    assert_bitwise(_flat(case.backward(twin, out)), _flat(case.backward(m, out)), f"{name} bwd")
    assert_bitwise(twin.grads, m.grads, f"{name} grads")
    # A new forward and backward on new inputs.
    x = case.inputs(1)
    out_m, out_t = m(*x), twin(*x)
    assert_bitwise(_flat(out_t), _flat(out_m), f"{name} forward")
    assert_bitwise(_flat(case.backward(twin, out_t)), _flat(case.backward(m, out_m)), name)
    assert_bitwise(twin.grads, m.grads, f"{name} grads after")
    # The copy is independent of the original.
    for value in twin.params.values():
        value += 1.0
    assert not any(np.shares_memory(a, b) for a, b in zip(twin.params.values(), m.params.values()))


def test_fitted_forecaster_round_trip_forecasts_the_same():
    series = 100 + 10 * np.sin(np.arange(60) / 3.0)
    model = forecasting.Forecaster(window=6, horizon=2, hidden_size=5, seed=0)
    model.fit(series, epochs=3, validation=0.0)
    for how, copier in COPIERS.items():
        twin = copier(model)
        assert_bitwise(twin.predict(5), model.predict(5), how)
        assert twin.fit_info_ == model.fit_info_


def test_mlp_regressor_pickles_for_every_nonlinearity():
    x = _x(1, 4, 3)[0]
    for f in ("tanh", "relu", "sigmoid"):
        m = models.MLPRegressor(3, 5, 2, nonlinearity=f, dtype=DT, seed=2)
        assert_bitwise(_pickled(m)(x), m(x), f)


# --------------------------------------------------------------------------
# Optimizers: pickled with their model, they take the same steps
# --------------------------------------------------------------------------

OPTIMIZERS = {
    "SGD": dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "Adagrad": dict(lr=0.1, lr_decay=1e-3),
    "RMSprop": dict(lr=0.01, momentum=0.5, centered=True),
    "Adam": dict(lr=0.01, amsgrad=True, clip_grad_norm=0.5),
    "AdamW": dict(lr=0.01, clip_grad_value=0.1),
}


def test_every_optimizer_has_a_case():
    public = {
        getattr(optim, name)
        for name in optim.__all__
        if inspect.isclass(getattr(optim, name))
        and issubclass(getattr(optim, name), optim.Optimizer)
    } - {optim.Optimizer}  # (aliases such as RMSProp are the same class)
    assert public == {getattr(optim, name) for name in OPTIMIZERS}


def _train_step(model: Module, opt: optim.Optimizer, seed: int) -> None:
    model.zero_grad()
    out, _ = model(_x(5, 2, 3, seed))
    model.backward(_grad_like(out))
    opt.step(model.grads)


@pytest.mark.parametrize("how", list(COPIERS))
@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_round_trip_steps_the_same(name, backend, how):
    model = nn.LSTM(3, 4, dtype=DT, seed=3).set_backend(backend)
    opt = getattr(optim, name)(model.params, backend=backend, **OPTIMIZERS[name])
    for k in range(2):
        _train_step(model, opt, k)
    model2, opt2 = COPIERS[how]((model, opt))
    assert opt2.num_steps == opt.num_steps and opt2.lr == opt.lr
    for k in range(2, 4):
        _train_step(model, opt, k)
        _train_step(model2, opt2, k)
        assert_bitwise(model2.params, model.params, f"{name} step {k}")
    # The copied optimizer updates the copied model's arrays, not the original's.
    before = {k: v.copy() for k, v in model.params.items()}
    _train_step(model2, opt2, 9)
    assert_bitwise(model.params, before, "original untouched")


# --------------------------------------------------------------------------
# Caches of the functional API, both engines
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", [functional, reference], ids=["c", "numpy"])
@pytest.mark.parametrize("cell", list(cells.REGISTRY))
def test_cell_cache_round_trip_backward_is_the_same(cell, engine):
    spec = cells.get(cell)
    p = make_problem(spec, (5, 3, 4, 6), DT, seed=7, lengths="random")
    out, _, cache = engine.forward(cell, p.x, p.states, p.weights, lengths=p.lengths, **p.options)
    dout = _grad_like(out)
    want = engine.backward(dout, None, cache)
    for how, copier in COPIERS.items():
        twin = copier(cache)
        assert type(twin) is spec.cache_type
        got = engine.backward(dout, None, twin)
        assert type(got) is spec.grads_type
        assert_bitwise(list(got), list(want), f"{cell} {how}")


@pytest.mark.parametrize("engine", [functional, reference], ids=["c", "numpy"])
def test_attention_cache_round_trip_backward_is_the_same(engine):
    layer = attention.Attention("additive", 4, 3, attention_size=5, dtype=DT, seed=2)
    weights = {k: layer.params[k] for k in layer.params}
    q, k = _x(3, 2, 4), _x(6, 2, 3, 1)
    out, _, cache = engine.attention_forward("additive", q, k, weights, lengths=[6, 4])
    dout = _grad_like(out)
    want = engine.attention_backward(dout, cache)
    for how, copier in COPIERS.items():
        assert_bitwise(
            _flat(tuple(engine.attention_backward(dout, copier(cache)))), _flat(tuple(want)), how
        )
