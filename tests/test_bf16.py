"""precision="bf16": bfloat16 products, float32 sums, states and arrays.

Contract (crnn.cells.BF16_TOLERANCE, docs: precision): the C engine with
precision="bf16" agrees with crnn.reference run with the same option (which
rounds the same operands with `crnn.reference.round_bf16`) within an
array-wise relative error of 1e-2 for every result -- output, final states,
saved arrays, gradients -- on every instruction set (the amx_bf16 build
multiplies on AMX tiles, the avx512_bf16 build on vdpbf16ps, the others on
float32 multiply-adds of the rounded values) and thread count; results are
bitwise independent of the thread count; the option really changes the results (by about bfloat16's precision);
the float32 default is untouched; float64 arrays are refused before any C
runs. Every cell whose spec has the option is tested; the layers (stacked,
bidirectional) against the NumPy backend.
"""

from __future__ import annotations

import numpy as np
import pytest

import crnn
from crnn import cells, reference as ref
from helpers import assert_bitwise, assert_results_close, rel_error
from problems import configs, make_problem, run

BF16_SPECS = [s for s in cells.REGISTRY.values() if "precision" in s.option_names]
bf16_cells = pytest.mark.parametrize("spec", BF16_SPECS, ids=lambda s: s.name)
TOL = cells.BF16_TOLERANCE
BF16 = {"precision": "bf16"}


def test_every_stacked_cell_has_the_option():
    assert {s.name for s in BF16_SPECS} >= {"rnn", "lstm", "gru"}


# --------------------------------------------------------------------------
# The rounding
# --------------------------------------------------------------------------


def _bits(*values):
    return np.array(values, np.uint32).view(np.float32)


def test_round_bf16_rule():
    # 1 + 2^-8 is a tie between 1 and 1 + 2^-7: to even (1); 1 + 3 * 2^-8 a
    # tie between 1 + 2^-7 and 1 + 2^-6: to even (1 + 2^-6).
    x = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -(1 + 2**-8 + 2**-20)], "f4")
    want = np.array([1.0, 1.0, 1 + 2**-6, 1 + 2**-7, -(1 + 2**-7)], "f4")
    assert_bitwise([ref.round_bf16(x)], [want])
    special = _bits(
        0x7F800000, 0xFF800000, 0x7F7FFFFF, 0x00000001, 0x80008000, 0x80018000, 0x7F800001
    )
    got = ref.round_bf16(special).view(np.uint32)
    # inf, -inf, the largest float32 to inf, a subnormal to 0, ties of the
    # smallest subnormals to even (-0 and -2 units), a signalling NaN made quiet.
    want = [0x7F800000, 0xFF800000, 0x7F800000, 0, 0x80000000, 0x80020000, 0x7FC00000]
    assert list(got) == want
    assert np.all(ref.round_bf16(x).view(np.uint32) & 0xFFFF == 0)


def _relu_identity_problem(x):
    """An RNN whose output is round(x) exactly: relu(round(x) * 1), one unit."""
    T = x.size
    w = {"weight_ih": np.ones((1, 1), "f4"), "weight_hh": np.zeros((1, 1), "f4")}
    return x.reshape(T, 1, 1), w


@pytest.mark.parametrize("isa", crnn.available_isas())
def test_c_rounds_as_the_reference(isa):
    """The C engine's rounding is round_bf16's, bit for bit, on every ISA:
    positive values of every exponent, ties and near-ties included."""
    rng = np.random.default_rng(3)
    bits = rng.integers(0x00800000, 0x7F7F0000, 4000, dtype=np.uint32)
    ties = (bits & 0xFFFF0000) | 0x8000
    near = (bits & 0xFFFF0000) | 0x7FFF
    x = np.concatenate([bits, ties, near]).view(np.float32)
    xs, w = _relu_identity_problem(x)
    crnn.set_isa(isa)
    out, _, _ = crnn.rnn_forward(xs, None, **w, nonlinearity="relu", precision="bf16")
    assert_bitwise([out.ravel()], [ref.round_bf16(x)])
    out, _, _ = crnn.rnn_forward(xs, None, **w, nonlinearity="relu")
    assert_bitwise([out.ravel()], [x])  # native: no rounding


# --------------------------------------------------------------------------
# C engine against the reference with the same roundings
# --------------------------------------------------------------------------

# The last two reach every path of the amx_bf16 build (where the CPU has
# AMX): steps of 16 and 32 rows and a last group padded with zero rows (the
# split of rows across threads moves it, bitwise the same), products over
# two depth blocks (T*B > 1024 rows) and two column blocks (G > 512), and
# K < 32 falling back to vdpbf16ps.
SHAPES = [(9, 7, 5, 17), (24, 6, 40, 33), (5, 1, 8, 70), (6, 20, 40, 33), (30, 37, 40, 130)]


def _problem(spec, shape, seed=0, lengths=None, states=True, bias=True):
    return make_problem(
        spec, shape, np.float32, seed=seed, lengths=lengths, states=states, bias=bias, options=BF16
    )


@pytest.mark.parametrize("states", [True, False], ids=["states", "no_states"])
@pytest.mark.parametrize(
    "shape, lengths",
    [(s, n) for s in SHAPES for n in (None, "random", "zeros") if s[1] > 1 or n != "zeros"],
    ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else str(v),
)
@bf16_cells
def test_matches_reference_every_isa_and_thread_count(spec, shape, lengths, states):
    p = _problem(spec, shape, seed=sum(shape), lengths=lengths, states=states)
    up = p.upstream("all", seed=1)
    want = run(ref, p, *up)
    runs = {}
    # Batch 1: the bf16 recurrence is never split by hidden units, so the
    # split counters are not those of a native call (problem=None).
    for config in configs((1, 2), None, p if p.B > 1 else None):
        got = run(crnn, p, *up)
        assert_results_close(got, want, np.float32, ctx=config, tol=TOL)
        runs[config] = got
    # Bitwise independent of the thread count, per ISA.
    for isa in crnn.available_isas():
        assert_bitwise(runs[f"{isa}, 2 threads"], runs[f"{isa}, 1 threads"], ctx=isa)


# A few steps give a rounding flip (an operand a last bit from a bfloat16
# boundary rounded differently by the two engines) little room to spread:
# there the engines agree far more closely (measured <= 2e-5 over 180 such
# problems), which holds every operand's rounding to account (a missing
# rounding of the gate gradients alone is off by 4e-3).
SHORT_TOL = 2e-4


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [(1, 9, 7, 12), (2, 6, 10, 16), (3, 4, 20, 24)], ids=str)
@bf16_cells
def test_short_sequences_closely(spec, shape, seed):
    p = _problem(spec, shape, seed=seed)
    up = p.upstream("all", seed=seed)
    want = run(ref, p, *up)
    for config in configs((1, 2), None, p):
        assert_results_close(run(crnn, p, *up), want, np.float32, ctx=config, tol=SHORT_TOL)


@bf16_cells
def test_token_ids_and_no_bias(spec):
    p = _problem(spec, (8, 5, 11, 20), seed=7, bias=False, lengths="random")
    up = p.upstream("all", seed=2)
    p = p.replace(x=np.random.default_rng(7).integers(0, 11, (8, 5)))
    assert_results_close(run(crnn, p, *up), run(ref, p, *up), np.float32, tol=TOL)


@bf16_cells
def test_bf16_differs_from_float32_by_about_its_precision(spec):
    """The option does something: the results move from float32's by more
    than float32 rounding could and by about bfloat16's unit roundoff (2^-9),
    and the C engine stays much nearer the bf16 reference than float32 is."""
    p = _problem(spec, (16, 8, 32, 48), seed=11)
    native = p.replace(options={**p.options, "precision": "native"})
    up = p.upstream("all", seed=3)
    c_bf16, ref_bf16 = run(crnn, p, *up), run(ref, p, *up)
    c_f32 = run(crnn, native, *up)
    for name, want in ref_bf16.items():
        if want is None:
            continue
        moved = rel_error(c_f32[name], want)
        assert 2.0**-14 < moved < 0.1, (name, moved)
        assert rel_error(c_bf16[name], want) < moved, name
    assert rel_error(c_bf16["out"], ref_bf16["out"]) < 0.05 * rel_error(
        c_f32["out"], ref_bf16["out"]
    )


@bf16_cells
def test_native_default_unchanged(spec):
    """precision="native" is the default, bitwise the call without the option."""
    p = make_problem(spec, (9, 7, 5, 17), np.float32, seed=5)
    explicit = p.replace(options={**p.options, "precision": "native"})
    implicit = p.replace(options={k: v for k, v in p.options.items() if k != "precision"})
    up = p.upstream("all", seed=4)
    assert_bitwise(run(crnn, explicit, *up), run(crnn, implicit, *up))


# --------------------------------------------------------------------------
# Refusals: before any C runs
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", [crnn, ref], ids=["c", "reference"])
@bf16_cells
def test_float64_refused(spec, engine):
    p = make_problem(spec, (3, 2, 4, 5), np.float64, seed=1)
    with pytest.raises(TypeError, match="precision='bf16' computes in float32"):
        engine.forward(spec.name, p.x, p.states, p.weights, precision="bf16")
    p32 = p.astype(np.float32)
    with pytest.raises(ValueError, match="precision must be one of"):
        engine.forward(spec.name, p32.x, p32.states, p32.weights, precision="bfloat16")


def test_cells_without_the_option_refuse_it():
    for spec in cells.REGISTRY.values():
        if spec in BF16_SPECS:
            continue
        p = make_problem(spec, (3, 2, 4, 5), np.float32, seed=1)
        with pytest.raises(TypeError, match="no option 'precision'"):
            crnn.forward(spec.name, p.x, p.states, p.weights, precision="bf16")


@pytest.mark.parametrize("layer_cls", [crnn.nn.LSTM, crnn.nn.GRUCell])
def test_layer_config_keeps_the_precision(layer_cls, tmp_path):
    layer = layer_cls(3, 4, precision="bf16", seed=0)
    assert layer.config()["precision"] == "bf16"
    path = tmp_path / "m.npz"
    crnn.save(layer, path)
    again = crnn.load(path)
    assert again.precision == "bf16" and again.config() == layer.config()
    x = np.random.default_rng(0).standard_normal((5, 2, 3) if layer_cls is crnn.nn.LSTM else (2, 3))
    x = x.astype(np.float32)
    assert_bitwise([again(x)[0]], [layer(x)[0]])


def test_layers_refuse_float64_and_step():
    with pytest.raises(TypeError, match="computes in float32"):
        crnn.nn.LSTM(3, 4, dtype=np.float64, precision="bf16")
    layer = crnn.nn.GRU(3, 4, precision="bf16", seed=0)
    with pytest.raises(ValueError, match="native precision"):
        layer.step(np.zeros((2, 3), np.float32))


# --------------------------------------------------------------------------
# Layers: stacked, bidirectional, against the NumPy backend
# --------------------------------------------------------------------------


@pytest.mark.parametrize("layer_cls", [crnn.nn.RNN, crnn.nn.LSTM, crnn.nn.GRU])
def test_layers_stacked_bidirectional(layer_cls):
    T, B, I, H = 12, 5, 7, 16
    rng = np.random.default_rng(9)
    x = rng.standard_normal((T, B, I)).astype("f4")
    lengths = np.array([12, 3, 0, 9, 12])
    layers = {
        backend: layer_cls(
            I, H, num_layers=2, bidirectional=True, seed=1, backend=backend, precision="bf16"
        )
        for backend in ("c", "numpy")
    }
    native = layer_cls(I, H, num_layers=2, bidirectional=True, seed=1)
    got = {}
    for backend, layer in list(layers.items()) + [("native", native)]:
        out, _ = layer(x, lengths=lengths)
        dout = np.random.default_rng(2).standard_normal(out.shape).astype("f4")
        dx, _ = layer.backward(dout)
        got[backend] = {"out": out, "dx": dx, **layer.grads}
    for config in configs((1, 2), None):
        layers["c"].zero_grad()
        out, _ = layers["c"](x, lengths=lengths)
        dx, _ = layers["c"].backward(dout)
        assert_results_close(
            {"out": out, "dx": dx, **layers["c"].grads}, got["numpy"], np.float32, config, TOL
        )
    assert rel_error(got["native"]["out"], got["numpy"]["out"]) > 2.0**-14
