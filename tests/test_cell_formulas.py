"""Each cell's equations, spelled out independently of crnn.reference.

`FORMULAS` holds, per registered cell, its step written as the textbook
formula (PyTorch's documented equations, the Jordan network's definition).
The reference's forward (every option combination, with lengths) and the
one-step `RecurrentCell` layers must compute exactly that. A cell added to the
registry without an entry here is still held to the reference, central
differences and PyTorch by the other test files; adding its formula is
optional and adds no file.
"""

from __future__ import annotations

import numpy as np
import pytest

import crnn
from crnn import reference as ref
from helpers import assert_rel_close
from problems import cell_variants, make_problem, run

# The activations, spelled out here too. An activation added to the C
# library and crnn.reference without an entry here is taken from the
# reference (its own accuracy is tests/test_activations.py's business): the
# formulas below are about how each cell wires its gates.
ACT = {
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0),
    "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
    "identity": lambda a: a,
}


def act(name):
    return ACT.get(name) or ref.ACTIVATIONS[name]


def _b(w, name):
    return 0 if w[name] is None else w[name]


def rnn_step(x, states, w, options):
    (h,) = states
    f = act(options["nonlinearity"])
    return (f(x @ w["weight_ih"].T + _b(w, "bias_ih") + h @ w["weight_hh"].T + _b(w, "bias_hh")),)


def lstm_step(x, states, w, options):
    h, c = states
    a = x @ w["weight_ih"].T + _b(w, "bias_ih") + h @ w["weight_hh"].T + _b(w, "bias_hh")
    i, f, g, o = np.split(a, 4, axis=1)
    sig = ACT["sigmoid"]
    c_new = sig(f) * c + sig(i) * np.tanh(g)
    return sig(o) * np.tanh(c_new), c_new


def gru_step(x, states, w, options):
    (h,) = states
    gi = x @ w["weight_ih"].T + _b(w, "bias_ih")
    gh = h @ w["weight_hh"].T + _b(w, "bias_hh")
    (i_r, i_z, i_n), (h_r, h_z, h_n) = np.split(gi, 3, axis=1), np.split(gh, 3, axis=1)
    r, z = ACT["sigmoid"](i_r + h_r), ACT["sigmoid"](i_z + h_z)
    n = np.tanh(i_n + r * h_n)
    return ((1 - z) * n + z * h,)


def gru_reset_before_step(x, states, w, options):
    """The GRU as first published (ONNX's linear_before_reset=0): r resets
    h_{t-1} before the candidate's recurrent product."""
    (h,) = states
    H = h.shape[1]
    w_hr, w_hz, w_hn = np.split(w["weight_hh"], 3, axis=0)
    b_hr, b_hz, b_hn = np.split(_b(w, "bias_hh") + np.zeros(3 * H, h.dtype), 3)
    i_r, i_z, i_n = np.split(x @ w["weight_ih"].T + _b(w, "bias_ih"), 3, axis=1)
    r = ACT["sigmoid"](i_r + h @ w_hr.T + b_hr)
    z = ACT["sigmoid"](i_z + h @ w_hz.T + b_hz)
    n = np.tanh(i_n + (r * h) @ w_hn.T + b_hn)
    return ((1 - z) * n + z * h,)


def jordan_step(x, states, w, options):
    (y,) = states
    f, g = act(options["nonlinearity"]), act(options["output_nonlinearity"])
    h = f(x @ w["weight_ih"].T + _b(w, "bias_ih") + y @ w["weight_hy"].T + _b(w, "bias_hh"))
    return (g(h @ w["weight_ho"].T + _b(w, "bias_ho")),)


FORMULAS = {
    "rnn": rnn_step,
    "lstm": lstm_step,
    "gru": gru_step,
    "jordan": jordan_step,
    "gru_reset_before": gru_reset_before_step,
}


def _has_formula(spec):
    return spec.name in FORMULAS


def spelled_out(p):
    """out and the final states by the formula, step by step, rows held past their length."""
    states = [np.zeros((p.B, p.width)) if s is None else s for s in p.states]
    valid = p.valid()
    out = np.zeros((p.T, p.B, p.width))
    for t in range(p.T):
        new = FORMULAS[p.spec.name](p.x[t], states, p.weights, p.options)
        keep = valid[t][:, None]
        states = [np.where(keep, n, s) for n, s in zip(new, states)]
        out[t] = np.where(keep, new[0], 0)
    return out, states


def test_every_registered_cell_with_a_formula_is_listed():
    assert set(FORMULAS) <= set(crnn.cells.REGISTRY)


@pytest.mark.parametrize("states", [True, False], ids=["states", "no_states"])
@pytest.mark.parametrize("lengths", [None, [5, 2, 0]], ids=["full", "lengths"])
@pytest.mark.parametrize("spec, options", cell_variants("all", where=_has_formula))
def test_reference_forward_is_the_formula(spec, options, lengths, states):
    p = make_problem(spec, (5, 3, 4, 6), seed=0, lengths=lengths, states=states, options=options)
    res = run(ref, p, with_backward=False)
    out, finals = spelled_out(p)
    assert_rel_close(res["out"], out, tol=1e-12, name="out")
    for name, s in zip(spec.final_states, finals):
        assert_rel_close(res[name], s, tol=1e-12, name=name)


def _one_step_params():
    for p in cell_variants("all", where=lambda s: _has_formula(s) and not s.uses_output_size):
        for backend in ("c", "numpy"):
            yield pytest.param(*p.values, backend, id=f"{p.id}-{backend}")


@pytest.mark.parametrize("spec, options, backend", list(_one_step_params()))
def test_recurrent_cell_is_one_step_of_the_formula(spec, options, backend):
    """`RecurrentCell` (RNNCell, LSTMCell, GRUCell): one step, with and
    without a state, batched and unbatched."""
    cell = crnn.nn.RecurrentCell(spec, 4, 5, dtype=np.float64, seed=0, backend=backend, **options)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    state = tuple(rng.standard_normal((3, 5)) for _ in spec.states)
    w = {k: cell.params.get(k) for k in spec.weight_names}
    multi = len(spec.states) > 1

    def as_tuple(s):
        return tuple(s) if multi else (s,)

    got = as_tuple(cell(x, state if multi else state[0]))
    for a, b in zip(got, FORMULAS[spec.name](x, state, w, options)):
        assert_rel_close(a, b, tol=1e-14)
    zeros = tuple(np.zeros((3, 5)) for _ in spec.states)
    for a, b in zip(as_tuple(cell(x)), FORMULAS[spec.name](x, zeros, w, options)):
        assert_rel_close(a, b, tol=1e-14)
    one = as_tuple(cell(x[0], tuple(s[0] for s in state) if multi else state[0][0]))
    for a, b in zip(one, FORMULAS[spec.name](x[:1], tuple(s[:1] for s in state), w, options)):
        assert a.shape == (5,)
        assert_rel_close(a, b[0], tol=1e-14)
    dx, dstate = cell.backward(tuple(np.ones(5) for _ in spec.states) if multi else np.ones(5))
    assert dx.shape == (4,)
    for d in as_tuple(dstate):
        assert d.shape == (5,)
