"""Steps with prepared weights: ``layer.step`` on every recurrent layer and
``crnn.prepare(...).step`` in the functional API.

- a step over T inputs gives bitwise the states of ``forward`` over them:
  every cell and option setting, stacked, both dtypes, every ISA, batched
  and unbatched, with and without initial states and biases, sizes that
  cross the kernels' blocks (more inputs than a packed block of 256, more
  rows than a register tile, widths off the panel width); out=None, out
  given and out=state (in place) alike; the NumPy engine's step agrees;
- prepared weights are never stale: after an optimizer step,
  load_state_dict, crnn.load, assigning or registering a parameter, a
  backend switch, an ISA switch and parameters_changed() after an in-place
  edit -- and, without that call, an in-place edit is not seen (the weights
  really are packed copies, so the tests above can fail);
- bad arguments raise TypeError / ValueError naming them, before any work;
  inputs are never modified; a step with out= allocates no array.
"""

from __future__ import annotations

import copy
import io
import tracemalloc

import numpy as np
import pytest

import crnn
from crnn import reference as ref
from helpers import assert_bitwise, assert_results_close
from problems import cell_params, cell_variants, default_output_size, dtype_param

NO_OUTPUT = dict(where=lambda s: not s.uses_output_size)

# (T, B, I, H): small; a batch over a register tile (12 rows with AVX-512)
# and widths off the panel width; more inputs than one packed block (256);
# a state wider than one block, for one row and for a few.
SHAPES = [(5, 3, 4, 6), (3, 13, 7, 37), (2, 2, 300, 9), (3, 1, 5, 300), (2, 3, 6, 260)]


def make_layer(spec, I, H, *, dtype=np.float64, num_layers=1, seed=0, bias=True, options=None):
    extra = {"output_size": default_output_size(H)} if spec.uses_output_size else {}
    layer = crnn.nn.recurrent_layer(
        spec,
        I,
        H,
        num_layers=num_layers,
        bias=bias,
        dtype=dtype,
        seed=seed,
        **extra,
        **(options or {}),
    )
    return layer.eval()


def as_tuple(spec, state):
    return tuple(state) if len(spec.states) > 1 else (state,)


def layer_state(spec, parts):
    return tuple(parts) if len(spec.states) > 1 else parts[0]


def random_state(spec, layer, B, rng, unbatched=False):
    shape = (layer.num_layers,) + (() if unbatched else (B,)) + (layer.width,)
    return layer_state(spec, [rng.standard_normal(shape).astype(layer.dtype) for _ in spec.states])


def steps_of(layer, x, state, how):
    """The state after stepping `layer` through x[0], x[1], ... from `state`:
    out=None, out given (fresh arrays), or out=state (in place)."""
    spec = layer.spec
    if how == "inplace":
        state = (
            None if state is None else layer_state(spec, [s.copy() for s in as_tuple(spec, state)])
        )
    for t in range(x.shape[0]):
        if how == "new":
            state = layer.step(x[t], state)
        elif how == "out":
            fresh = layer_state(
                spec, [np.full(s.shape, np.nan, layer.dtype) for s in _shapes(layer, x)]
            )
            got = layer.step(x[t], state, out=fresh)
            assert all(a is b for a, b in zip(as_tuple(spec, got), as_tuple(spec, fresh)))
            state = got
        else:  # in place: the first step has no state to update, so it makes one
            state = layer.step(x[t], state, out=state) if state is not None else layer.step(x[t])
    return state


def _shapes(layer, x):
    batch = () if x.ndim == 2 else (x.shape[1],)
    return [np.empty((layer.num_layers,) + batch + (layer.width,)) for _ in layer.spec.states]


# --------------------------------------------------------------------------
# Step == forward, bitwise
# --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["new", "out", "inplace"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("num_layers", [1, 3])
@dtype_param
@pytest.mark.parametrize("spec,options", cell_variants())
def test_step_equals_forward_bitwise(spec, options, dtype, num_layers, shape, how):
    T, B, I, H = shape
    rng = np.random.default_rng(7)
    layer = make_layer(spec, I, H, dtype=dtype, num_layers=num_layers, options=options)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    for isa in crnn.available_isas():
        crnn.set_isa(isa)
        for state0 in (None, random_state(spec, layer, B, rng)):
            out, want = layer(x, state0)
            got = steps_of(layer, x, state0, how)
            assert_bitwise(as_tuple(spec, got), as_tuple(spec, want), ctx=f"[{isa}] state0")
            # The stack's output is the last layer's first state.
            assert_bitwise([as_tuple(spec, got)[0][-1]], [out[-1]], ctx=f"[{isa}] out")


@pytest.mark.parametrize("threads", [1, 2])
@dtype_param
@pytest.mark.parametrize("spec", cell_params(**NO_OUTPUT))
def test_one_row_split_across_threads_steps_like_forward(spec, dtype, threads):
    """One row whose weights outgrow a core's cache (here H = 512, I = 128:
    over 768 KiB) has its units split across the threads: bitwise forward."""
    rng = np.random.default_rng(8)
    layer = make_layer(spec, 128, 512, dtype=dtype, num_layers=2)
    x = rng.standard_normal((3, 1, 128)).astype(dtype)
    crnn.set_num_threads(threads)
    for isa in crnn.available_isas():
        crnn.set_isa(isa)
        for state0 in (None, random_state(spec, layer, 1, rng)):
            _, want = layer(x, state0)
            for how in ("new", "inplace"):
                got = steps_of(layer, x, state0, how)
                assert_bitwise(as_tuple(spec, got), as_tuple(spec, want), ctx=f"[{isa}] {how}")


@dtype_param
@pytest.mark.parametrize("spec,options", cell_variants())
def test_step_unbatched_and_without_biases(spec, options, dtype):
    T, I, H = 4, 3, 7
    rng = np.random.default_rng(1)
    for bias in (True, False):
        layer = make_layer(spec, I, H, dtype=dtype, num_layers=2, bias=bias, options=options)
        x = rng.standard_normal((T, I)).astype(dtype)
        state0 = random_state(spec, layer, 1, rng, unbatched=True)
        _, want = layer(x, state0)
        got = steps_of(layer, x, state0, "new")
        assert_bitwise(as_tuple(spec, got), as_tuple(spec, want), ctx=f"bias={bias}")


@dtype_param
@pytest.mark.parametrize("spec", cell_params(**NO_OUTPUT))
def test_one_step_cells_step_like_forward(spec, dtype):
    cell = crnn.nn.RecurrentCell(spec, 5, 8, dtype=dtype, seed=3)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 5)).astype(dtype)
    state = layer_state(spec, [rng.standard_normal((4, 8)).astype(dtype) for _ in spec.states])
    assert_bitwise(as_tuple(spec, cell.step(x, state)), as_tuple(spec, cell(x, state)))
    assert_bitwise(as_tuple(spec, cell.step(x[0])), as_tuple(spec, cell(x[0])))


@dtype_param
def test_jordan_layer_steps_like_forward(dtype):
    layer = crnn.nn.Jordan(3, 8, 4, output_nonlinearity="tanh", dtype=dtype, seed=1)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 2, 3)).astype(dtype)
    y0 = rng.standard_normal((2, 4)).astype(dtype)
    _, want = layer(x, y0)
    y = y0.copy()
    for t in range(6):
        y = layer.step(x[t], y, out=y)
    assert_bitwise([y], [want])


@pytest.mark.parametrize("stacked", [False, True])
@dtype_param
@pytest.mark.parametrize("spec,options", cell_variants())
def test_functional_prepare_matches_forward_and_reference(spec, options, dtype, stacked):
    """crnn.prepare: one layer (states (B, W)) or a stack ((L, B, W)); the C
    engine bitwise as forward, the NumPy engine's within the contract."""
    T, B, I, H = 4, 3, 5, 6
    rng = np.random.default_rng(4)
    L = 2 if stacked else 1
    layer = make_layer(spec, I, H, dtype=dtype, num_layers=L, options=options)
    weights = [layer._weights(k, 0) for k in range(L)]
    x = rng.standard_normal((T, B, I)).astype(dtype)
    got = {}
    for name, engine in (("c", crnn), ("numpy", ref)):
        p = engine.prepare(spec, weights if stacked else weights[0], **options)
        states = None
        for t in range(T):
            states = p.step(x[t], states)
        got[name] = states if stacked else tuple(s[None] for s in states)
    _, want = layer(x)
    assert_bitwise(got["c"], as_tuple(spec, want))
    assert_results_close(got["numpy"], got["c"], dtype)


def test_reference_step_equals_reference_forward():
    layer = crnn.LSTM(3, 5, num_layers=2, dtype=np.float64, seed=0, backend="numpy")
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    _, want = layer(x)
    assert_bitwise(steps_of(layer, x, None, "inplace"), want)


# --------------------------------------------------------------------------
# Prepared weights are never stale
# --------------------------------------------------------------------------


def _stepped(layer, x):
    """The state after stepping through x (prepared weights in use)."""
    return steps_of(layer, x, None, "new")


def _fresh(layer, x):
    """What forward (which packs the current weights every call) gives."""
    return layer(x)[1]


@pytest.fixture
def lstm_and_x():
    layer = crnn.LSTM(4, 6, num_layers=2, dtype=np.float64, seed=0).eval()
    x = np.random.default_rng(5).standard_normal((3, 2, 4))
    _stepped(layer, x)  # prepares the weights
    return layer, x


def _changes(layer, x):
    """The prepared weights follow the change: the step equals forward, and
    differs from what it gave before."""
    return _stepped(layer, x), _fresh(layer, x)


def test_fresh_after_optimizer_step(lstm_and_x):
    layer, x = lstm_and_x
    before = _stepped(layer, x)
    for g in layer.grads.values():
        g[...] = 0.5
    crnn.optim.SGD(layer.params, lr=0.1).step(layer.grads)
    got, want = _changes(layer, x)
    assert_bitwise(got, want)
    assert not np.array_equal(got[0], before[0])


def test_fresh_after_load_state_dict(lstm_and_x):
    layer, x = lstm_and_x
    other = crnn.LSTM(4, 6, num_layers=2, dtype=np.float64, seed=9)
    layer.load_state_dict(other.state_dict())
    assert_bitwise(_stepped(layer, x), _fresh(other.eval(), x))


def test_fresh_after_crnn_load(lstm_and_x):
    layer, x = lstm_and_x
    other = crnn.LSTM(4, 6, num_layers=2, dtype=np.float64, seed=9)
    buf = io.BytesIO()
    crnn.save(other, buf)
    buf.seek(0)
    loaded = crnn.load(buf).eval()
    _stepped(loaded, x)
    layer.load_state_dict(loaded.state_dict())
    assert_bitwise(_stepped(layer, x), _fresh(other.eval(), x))
    assert_bitwise(_stepped(loaded, x), _fresh(loaded, x))


def test_fresh_after_assigning_a_parameter(lstm_and_x):
    layer, x = lstm_and_x
    before = _stepped(layer, x)
    layer.params["weight_hh_l1"] = layer.params["weight_hh_l1"] * 2.0
    got, want = _changes(layer, x)
    assert_bitwise(got, want)
    assert not np.array_equal(got[0], before[0])


def test_fresh_after_register_parameter(lstm_and_x):
    layer, x = lstm_and_x
    before = _stepped(layer, x)
    layer.register_parameter("bias_ih_l0", layer.params["bias_ih_l0"] + 1.0)
    got, want = _changes(layer, x)
    assert_bitwise(got, want)
    assert not np.array_equal(got[0], before[0])


def test_fresh_after_parameters_changed(lstm_and_x):
    layer, x = lstm_and_x
    before = _stepped(layer, x)
    layer.params["weight_ih_l0"][...] *= -1.0
    layer.parameters_changed()
    got, want = _changes(layer, x)
    assert_bitwise(got, want)
    assert not np.array_equal(got[0], before[0])


def test_in_place_edit_unseen_until_parameters_changed(lstm_and_x):
    """The rule users follow: an in-place edit of their own is not seen by
    the packed copy until they say so (which also shows the packing copies,
    so the tests above could fail)."""
    layer, x = lstm_and_x
    before = _stepped(layer, x)
    layer.params["weight_ih_l0"][...] *= -1.0
    assert_bitwise(_stepped(layer, x), before)
    crnn.parameters_changed()
    assert_bitwise(_stepped(layer, x), _fresh(layer, x))


def test_fresh_after_backend_switch(lstm_and_x):
    layer, x = lstm_and_x
    layer.params["weight_ih_l0"][...] *= -1.0  # unseen by the C engine's packed copy
    layer.set_backend("numpy")
    assert_results_close(_stepped(layer, x), _fresh(layer, x), np.float64)


def test_fresh_after_isa_switch(lstm_and_x):
    layer, x = lstm_and_x
    for isa in crnn.available_isas():
        crnn.set_isa(isa)
        assert_bitwise(_stepped(layer, x), _fresh(layer, x), ctx=isa)


def test_functional_prepared_follows_the_mapping():
    """A prepared mapping is read again when parameters change: an entry
    replaced in the caller's dict is packed at the next bump."""
    layer = crnn.GRU(3, 4, dtype=np.float64, seed=0)
    weights = dict(layer._weights(0, 0))
    p = crnn.prepare("gru", weights)
    x = np.ones((2, 3))
    first = p.step(x)
    weights["weight_hh"] = weights["weight_hh"] + 1.0
    weights["bias_ih"] = weights["bias_ih"] + 1.0
    assert_bitwise(p.step(x), first)  # not told yet
    p.refresh()
    want = crnn.forward("gru", x[None], None, weights)[1]
    assert_bitwise(p.step(x), want)


def test_deepcopy_of_a_stepped_layer(lstm_and_x):
    layer, x = lstm_and_x
    twin = copy.deepcopy(layer)
    assert_bitwise(_stepped(twin, x), _stepped(layer, x))


# --------------------------------------------------------------------------
# Errors, inputs, allocation
# --------------------------------------------------------------------------


def _rnn():
    return crnn.RNN(3, 4, num_layers=2, dtype=np.float32, seed=0)


BAD_STEPS = [
    ("x float64", lambda m: m.step(np.zeros(3)), TypeError, "x must be a float32"),
    ("x int", lambda m: m.step(np.zeros(3, int)), TypeError, "x must be a float32"),
    ("x None", lambda m: m.step(None), TypeError, "x must be a float32"),
    (
        "x width",
        lambda m: m.step(np.zeros((2, 5), np.float32)),
        ValueError,
        r"x must have shape \(B, 3\)",
    ),
    ("x 3-D", lambda m: m.step(np.zeros((1, 2, 3), np.float32)), ValueError, "x must have shape"),
    (
        "state shape",
        lambda m: m.step(np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32)),
        ValueError,
        r"state must have shape \(num_layers, B, W\) = \(2, 2, 4\)",
    ),
    (
        "state dtype",
        lambda m: m.step(np.zeros((2, 3), np.float32), np.zeros((2, 2, 4))),
        TypeError,
        "state must be a float32",
    ),
    (
        "out read-only",
        lambda m: m.step(np.zeros(3, np.float32), None, out=_readonly((2, 4))),
        ValueError,
        "out is read-only",
    ),
    (
        "out strided",
        lambda m: m.step(np.zeros(3, np.float32), None, out=np.zeros((2, 8), np.float32)[:, ::2]),
        ValueError,
        "out must be C-contiguous",
    ),
    (
        "out list",
        lambda m: m.step(np.zeros(3, np.float32), None, out=[[0.0] * 4] * 2),
        TypeError,
        "out must be an ndarray",
    ),
    (
        "out shape",
        lambda m: m.step(np.zeros(3, np.float32), None, out=np.zeros((2, 5), np.float32)),
        ValueError,
        r"out must have shape \(num_layers, W\)",
    ),
]


def _readonly(shape):
    a = np.zeros(shape, np.float32)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("case", BAD_STEPS, ids=[c[0] for c in BAD_STEPS])
def test_bad_step_arguments(case):
    _, call, exc, message = case
    with pytest.raises(exc, match=message):
        call(_rnn())


def test_bad_lstm_state_forms():
    m = crnn.LSTM(3, 4, dtype=np.float32)
    x = np.zeros(3, np.float32)
    with pytest.raises(TypeError, match=r"state must be None or a tuple of 2 arrays"):
        m.step(x, np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match=r"out\[1\] \(c\) and out\[0\] \(h\) share memory"):
        buf = np.zeros((1, 4), np.float32)
        m.step(x, None, out=(buf, buf))
    with pytest.raises(ValueError, match=r"out\[0\] \(h\) overlaps state\[1\] \(c\)"):
        c = np.zeros((1, 4), np.float32)
        m.step(x, (None, c), out=(c, np.zeros((1, 4), np.float32)))


def test_bidirectional_layers_refuse_to_step():
    m = crnn.GRU(3, 4, bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional"):
        m.step(np.zeros(3, np.float32))


def test_functional_prepare_rejects_mismatched_stacks():
    a = crnn.RNN(3, 4, dtype=np.float64, seed=0)._weights(0, 0)
    with pytest.raises(ValueError, match=r"weights\[1\] must be a layer reading the output"):
        crnn.prepare("rnn", [a, a])
    with pytest.raises(TypeError, match="weights must be a sequence of mappings"):
        crnn.prepare("rnn", "rnn")
    with pytest.raises(TypeError, match="dtype"):
        crnn.prepare(
            "rnn", [a, {k: None if v is None else v.astype(np.float32) for k, v in a.items()}]
        )


@pytest.mark.parametrize("spec", cell_params())
def test_step_never_modifies_its_inputs(spec):
    layer = make_layer(spec, 3, 5, dtype=np.float64, num_layers=2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3))
    state = random_state(spec, layer, 2, rng)
    before = copy.deepcopy((x, state))
    layer.step(x, state)
    fresh = layer_state(spec, [np.empty_like(s) for s in as_tuple(spec, state)])
    layer.step(np.asfortranarray(x), state, out=fresh)
    assert_bitwise([x, *as_tuple(spec, state)], [before[0], *as_tuple(spec, before[1])])


def test_non_contiguous_inputs_are_converted():
    m = _rnn()
    x = np.zeros((2, 6), np.float32)[:, ::2] + 0.5
    h = np.full((2, 2, 8), 0.25, np.float32)[:, :, ::2]
    want = m.step(np.ascontiguousarray(x), np.ascontiguousarray(h))
    assert_bitwise([m.step(x, h)], [want])
    assert_bitwise([m.step(np.asfortranarray(x), h)], [want])


def test_a_step_with_out_allocates_no_array():
    m = crnn.RNN(64, 512, dtype=np.float32, seed=0)  # a new state would be 2 KiB
    x = np.zeros((1, 64), np.float32)
    h = np.zeros((1, 1, 512), np.float32)
    m.step(x, h, out=h)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(20):
            m.step(x, h, out=h)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < 1024, f"{peak} bytes allocated at once during steps with out="


@pytest.mark.parametrize("spec", cell_params(**NO_OUTPUT))
def test_forecaster_rollout_steps_like_forward(spec):
    """The forecaster's rollout steps through each window; it forecasts
    bitwise what its forward gives."""
    model = crnn.models.Forecaster(
        window=6, horizon=2, hidden_size=5, num_layers=2, cell=spec.name, seed=0
    )
    x = np.random.default_rng(0).standard_normal((6, 3, 1)).astype(model.dtype)
    assert_bitwise([model._forecast_window(x)], [model.forward(x)])


def test_small_steps_start_no_thread_team():
    """A step of a small layer runs on the calling thread even when every
    problem is forced to split (no parallel region at all)."""
    from crnn import _testing

    layer = crnn.LSTM(16, 64, num_layers=2, seed=0)
    x = np.zeros((4, 16), np.float32)
    state = layer.step(x)
    with _testing.force_split(2), _testing.counts() as seen:
        for _ in range(5):
            state = layer.step(x, state, out=state)
    assert seen.max_team == 0 and seen.recurrences == 0


def test_a_big_row_step_splits_its_units():
    """One row of a layer whose weights outgrow a core's cache: its step is
    one region whose threads split the hidden units."""
    from crnn import _testing

    layer = crnn.GRU(128, 512, seed=0)
    x = np.zeros((1, 128), np.float32)
    with _testing.force_split(2), _testing.counts() as seen:
        layer.step(x, layer.step(x))
    assert seen.recurrences == 2 and seen.column_splits == 2 and seen.max_slices == 2
