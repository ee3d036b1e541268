"""Gradients against central differences (float64, `crnn.gradcheck`), and the
reference's own semantics, for every cell of the registry.

The reference is the oracle every other test trusts, so its backward pass is
held to central differences of its own forward pass for the scalar loss
``sum(dout * out) + sum(dstate_n * state_n)`` (a missing dout or dstate
contributes nothing), for every argument: x, the initial states (a None state
is differentiated as explicit zeros) and every weight. The C engine is held
to central differences too, through both APIs. Further tests pin down what
gradients cannot see: padding, held states, None upstream gradients,
float32 staying float32, bias gradients, empty time or batch, no overflow.
"""

from __future__ import annotations

import numpy as np
import pytest

import crnn
from crnn import reference as ref
from helpers import assert_bitwise, rel_error
from problems import (
    SPECS,
    backward,
    bias_id,
    bias_variants,
    cell_variants,
    forward,
    gradcheck,
    make_problem,
    option_variants,
    run,
    variant_id,
    variant_shape_params,
)

ENGINES = {"c": crnn, "reference": ref}
engine_param = pytest.mark.parametrize("engine", list(ENGINES))
SHAPE = (4, 3, 2, 3)


def _factorial_params():
    for spec in SPECS:
        for opts in option_variants(spec):
            for bias in bias_variants(spec):
                yield pytest.param(spec, opts, bias, id=f"{variant_id(spec, opts)}-{bias_id(bias)}")


@pytest.mark.parametrize("states", [True, False], ids=["states", "no_states"])
@pytest.mark.parametrize(
    "lengths", [None, "random", "zeros"], ids=["full", "lengths", "zero_lengths"]
)
@pytest.mark.parametrize("spec, options, bias", list(_factorial_params()))
def test_reference_gradients_match_central_differences(spec, options, bias, lengths, states):
    """Every argument's gradient for the full upstream (dout and every
    dstate), and None upstream gradients meaning exactly zeros."""
    p = make_problem(
        spec, SHAPE, seed=1, states=states, bias=bias, lengths=lengths, options=options
    )
    dout, dstates = p.upstream("all", seed=100)
    gradcheck(ref, p, dout, dstates)
    _, _, cache = forward(ref, p)
    zeros = tuple(np.zeros_like(d) for d in dstates)
    nones = (None,) * len(dstates)
    for ctx, a, b in (
        ("dout only", (dout, nones), (dout, zeros)),
        ("dstates only", (None, dstates), (np.zeros_like(dout), dstates)),
        ("nothing", (None, nones), (np.zeros_like(dout), zeros)),
    ):
        assert_bitwise(
            backward(ref, spec, cache, *a)._asdict(),
            backward(ref, spec, cache, *b)._asdict(),
            ctx=f"None vs zeros, {ctx}",
        )
    for name, g in backward(ref, spec, cache, None, nones)._asdict().items():
        assert g is None or not np.any(g), f"{name} without any upstream gradient"


@pytest.mark.parametrize("which", ["dout", "states", "none"])
@pytest.mark.parametrize(
    "lengths", [None, "random", "zeros"], ids=["full", "lengths", "zero_lengths"]
)
@pytest.mark.parametrize("spec, options", cell_variants())
def test_reference_gradients_with_partial_upstream(spec, options, lengths, which):
    p = make_problem(spec, SHAPE, seed=1, lengths=lengths, options=options)
    gradcheck(ref, p, *p.upstream(which, seed=100))


@pytest.mark.parametrize(
    "lengths", [None, "random", "zeros"], ids=["full", "lengths", "zero_lengths"]
)
@pytest.mark.parametrize(
    "spec, options, shape",
    variant_shape_params(
        [(1, 3, 2, 3), (4, 3, 2, 1), (4, 3, 1, 3), (1, 1, 1, 1), (6, 5, 3, 4), (4, 3, 2, 3, 1)]
    ),
)
def test_reference_gradients_small_and_degenerate_shapes(spec, options, shape, lengths):
    if lengths == "zeros" and shape[1] == 1:
        lengths = [0]
    p = make_problem(spec, shape, seed=2, lengths=lengths, options=options)
    gradcheck(ref, p, *p.upstream("all", seed=3))


@pytest.mark.parametrize("lengths", [None, [4, 2, 0]], ids=["full", "lengths"])
@pytest.mark.parametrize("spec, options", cell_variants("all"))
def test_reference_gradients_every_option_combination(spec, options, lengths):
    p = make_problem(spec, SHAPE, seed=0, lengths=lengths, options=options)
    gradcheck(ref, p, *p.upstream("all", seed=4))


@pytest.mark.parametrize("api", ["generic", "named"])
@engine_param
@pytest.mark.parametrize("spec, options", cell_variants())
def test_engine_gradients_match_central_differences(spec, options, engine, api):
    """Both engines, both APIs, with lengths (the C engine in float64)."""
    p = make_problem(spec, SHAPE, seed=1, lengths=[4, 2, 3], options=options)
    gradcheck(ENGINES[engine], p, *p.upstream("all", seed=5), api=api)


# --------------------------------------------------------------------------
# Semantics gradients cannot see (the reference, as the specification)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("states", [True, False], ids=["states", "no_states"])
@pytest.mark.parametrize("spec, options", cell_variants())
def test_padded_steps_are_zero_and_state_is_held(spec, options, states):
    lengths = np.array([5, 0, 2, 1, 0, 3])  # unsorted, with zeros and full rows
    p = make_problem(spec, (5, 6, 3, 4), seed=4, states=states, lengths=lengths, options=options)
    res = run(ref, p, with_backward=False)
    for b, length in enumerate(lengths):
        assert np.all(res["out"][length:, b] == 0), f"row {b}: out not zero after its length"
        if length == 0:
            for name, s0 in zip(spec.final_states, p.zero_states().states):
                assert np.array_equal(res[name][b], s0[b]), (
                    f"row {b}: an empty row keeps its initial {name}"
                )
        else:
            assert np.array_equal(res[spec.final_states[0]][b], res["out"][length - 1, b])
        # The same row run alone, truncated to its length, gives the same states.
        alone = p.replace(
            x=p.x[:length, b : b + 1],
            states=tuple(None if s is None else s[b : b + 1] for s in p.states),
            lengths=None,
        )
        a = run(ref, alone, with_backward=False)
        assert rel_error(res["out"][:length, b], a["out"][:, 0]) <= 1e-13
        for name in spec.final_states:
            assert rel_error(res[name][b], a[name][0]) <= 1e-13, name


@pytest.mark.parametrize("bias", ["all", "one"], ids=["bias", "one_bias"])
@pytest.mark.parametrize("spec, options", cell_variants())
def test_float32_stays_float32(spec, options, bias):
    """float32 in, float32 out, within float32 accuracy of the float64 answer."""
    biases = True if bias == "all" else bias_variants(spec)[-1]
    p32 = make_problem(
        spec, (5, 3, 4, 6), np.float32, seed=11, bias=biases, lengths="zeros", options=options
    )
    up32 = p32.upstream("all", seed=11)
    up64 = (up32[0].astype(np.float64), tuple(d.astype(np.float64) for d in up32[1]))
    r32 = run(ref, p32, *up32)
    r64 = run(ref, p32.astype(np.float64), *up64)
    for name, a in r32.items():
        if r64[name] is None:
            assert a is None, name
            continue
        assert a.dtype == np.float32, name
        assert rel_error(a, r64[name]) <= 1e-5, name


def _paired_biases(spec):
    """The input-side and recurrent-side biases (roles b_ih, b_hh), if the cell has both."""
    by_role = {w.role: w.name for w in spec.weights if w.bias}
    return (by_role["b_ih"], by_role["b_hh"]) if {"b_ih", "b_hh"} <= by_role.keys() else None


@engine_param
@pytest.mark.parametrize("spec", [s for s in SPECS if _paired_biases(s)], ids=lambda s: s.name)
def test_bias_gradients_equal_unless_the_spec_separates_them(spec, engine):
    """Both biases enter the pre-activation the same way, so their gradients
    are equal -- unless the spec says they enter differently (the GRU's b_hn
    sits inside r * (.)); either way they are separate arrays."""
    ih, hh = _paired_biases(spec)
    p = make_problem(spec, (4, 3, 2, 3), seed=12)
    _, _, cache = forward(ENGINES[engine], p)
    g = backward(ENGINES[engine], spec, cache, *p.upstream("all", 12))
    a, b = getattr(g, "d" + ih), getattr(g, "d" + hh)
    assert not np.shares_memory(a, b)
    if spec.separate_bias_grads:
        assert not np.allclose(a, b)
    else:
        np.testing.assert_array_equal(a, b)


@engine_param
@pytest.mark.parametrize("states", [True, False], ids=["states", "no_states"])
@pytest.mark.parametrize("T, B", [(0, 3), (3, 0), (0, 0)])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_empty_time_or_batch(spec, T, B, states, engine):
    p = make_problem(spec, (T, B, 2, 3), seed=13, states=states)
    dout, dstates = p.upstream("all")
    res = run(ENGINES[engine], p, dout, dstates)
    assert res["out"].shape == (T, B, p.width)
    for name, s0 in zip(spec.final_states, p.zero_states().states):
        assert np.array_equal(res[name], s0), name
    assert res["dx"].shape == (T, B, 2)
    # Nothing happens between the initial and final states when T = 0.
    for s, d in zip(spec.states, dstates):
        expected = d if T == 0 else np.zeros((B, p.width))
        assert np.array_equal(res[f"d{s}0"], expected), s
    for w in spec.weights:
        g = res["d" + w.name]
        assert g.shape == p.weights[w.name].shape and not np.any(g), w.name


def _output_activation(spec, options):
    """The activation applied to the output, from the spec's option roles."""
    roles = {o.role: o.name for o in spec.options}
    name = roles.get("output_activation", roles.get("activation"))
    return options.get(name) if name else None


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("spec, options", cell_variants())
def test_reference_does_not_overflow_on_large_inputs(spec, options, dtype):
    p = make_problem(spec, (3, 4, 2, 3), dtype, seed=14, options=options)
    p = p.replace(x=p.x * dtype(1e4))  # pre-activations far beyond exp's range
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is harmless
        res = run(ref, p, np.ones((3, 4, p.width), dtype))
    assert np.all(np.isfinite(res["out"]))
    bounds = {"sigmoid": (0, 1), "tanh": (-1, 1)}.get(_output_activation(spec, options))
    if bounds:
        assert np.all((res["out"] >= bounds[0]) & (res["out"] <= bounds[1]))
