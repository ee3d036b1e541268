"""Sizes: 64-bit arithmetic, absurd sizes refused before allocating, huge
logical shapes (zero strides) either refused or copied safely.

Arrays whose element counts pass 2**31 need 8 GB or more, so they are not
built here. What is tested instead:

- products of the sizes beyond 2**31 with small arrays (T*B*I*H, the work
  counts that pick thread numbers, and with I = H = 0 row counts T*B beyond
  2**32), against the reference where it can run;
- shapes NumPy accepts but crnn refuses (T*B*max(I, H) > 2**59 with zero-size
  arrays): a ValueError naming x from the Python checks, and the C entry
  points' own size check (a ValueError, status 2) when called directly;
- zero-stride views (np.broadcast_to, as_strided) of astronomically many
  elements: a clean MemoryError (inputs) or ValueError (in-place clipping),
  never a crash or a hang; of moderate size: the same numbers as the
  materialised array.
"""

from __future__ import annotations

import numpy as np
import pytest

import crnn
from crnn import _core, reference as ref
from helpers import assert_bitwise, assert_results_close
from problems import cell_params, make_problem, run

ENGINES = {"crnn": crnn, "reference": ref}


def _full(mod, args, nl="tanh", dout=None, dh_n=None):
    out, h_n, cache = mod.rnn_forward(**args, nonlinearity=nl)
    return out, h_n, mod.rnn_backward(out if dout is None else dout, dh_n, cache)


def _zero_size_weights(spec, I, H, O=0):  # noqa: E741
    sizes = spec.dims(I, H, O)
    return {
        w.name: np.empty(spec.weight_shape(w, sizes), np.float32)
        for w in spec.weights
        if not w.bias
    }


# --------------------------------------------------------------------------
# Products beyond 32 bits with small arrays
# --------------------------------------------------------------------------
@pytest.mark.parametrize("spec", cell_params())
def test_T_B_I_G_product_beyond_2_31(spec):
    """T*B*I*G = 2.2e9 > 2**31 (8.8 MB of input): the GEMM and recurrence work
    counts and every index stay exact (H = 1000 / gates, so every cell does
    the Elman RNN's T*B*I*H products)."""
    T, B, I, H = 2, 1100, 1000, 1000 // spec.gates  # noqa: E741
    assert T * B * I * spec.gates * H > 2**31
    crnn.set_num_threads(2)
    p = make_problem(
        spec, (T, B, I, H, 100), np.float32, seed=1, lengths=np.tile([2, 1, 0, 2], B // 4)
    )
    dout = np.ones((T, B, p.width), np.float32)
    assert_results_close(run(crnn, p, dout), run(ref, p, dout), np.float32)


_ROWS_OF_NOTHING = r"""
import sys
import numpy as np, crnn
spec = crnn.cells.get(sys.argv[1])
T, B = (2**40, 2) if sys.argv[2] == "steps" else (3, 2**40)
x = np.empty((T, B, 0), np.float32)
sizes = spec.dims(0, 0, 0)
w = {v.name: np.empty(spec.weight_shape(v, sizes), np.float32) for v in spec.weights if not v.bias}
out, states_n, cache = crnn.forward(spec, x, None, w)
g = crnn.backward(None, None, cache)
assert out.shape == (T, B, 0) and g.dx.shape == (T, B, 0)
assert all(s.shape == (B, 0) for s in states_n)
assert all(d.shape == (B, 0) for d in g[1:1 + len(states_n)])
assert all(a is None or a.size == 0 for a in g[1 + len(states_n):])
print("ok")
"""


@pytest.mark.parametrize("what", ["steps", "rows"])
@pytest.mark.parametrize("spec", cell_params())
def test_rows_of_nothing_are_not_walked(spec, what):
    """T = 2**40 steps (T*B = 2**41 rows) or B = 2**40 batch rows of nothing
    (I = H = O = 0): every loop bound is 64-bit and nothing is allocated or
    walked per step or row (the final-state copy once looped over the rows
    for about 75 minutes; the Jordan network's output layer once walked
    every empty step and allocated scratch for every empty row). C engine
    only, in a child process, so a regression fails on the timeout instead
    of hanging the suite."""
    import subprocess
    import sys

    try:
        proc = subprocess.run(
            [sys.executable, "-c", _ROWS_OF_NOTHING, spec.name, what],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{spec.name}: {what} of nothing still running after the timeout")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("spec", cell_params())
def test_batch_of_zero_rows_with_empty_lengths(spec, engine):
    """B = 0 with lengths=[] (a float64 empty list to NumPy) is accepted."""
    p = make_problem(spec, (5, 0, 3, 4), seed=2, lengths=[])
    res = run(ENGINES[engine], p, np.ones((5, 0, p.width)))
    assert res["out"].shape == (5, 0, p.width) and res["dx"].shape == (5, 0, 3)
    assert all(res[n].shape == (0, p.width) for n in spec.final_states)
    assert not any(res["d" + w].any() for w in spec.required_weights)


def test_many_small_arrays_in_clipping():
    """50k arrays (the C side's per-array size and chunk tables are 64-bit)."""
    rng = np.random.default_rng(3)
    sizes = rng.integers(0, 4, size=50_000)
    arrays = [rng.standard_normal(int(n)) for n in sizes]
    copies = [a.copy() for a in arrays]
    t_c = crnn.clip_grad_norm(arrays, 1.0)
    t_r = ref.clip_grad_norm(copies, 1.0)
    assert t_c == pytest.approx(t_r, rel=1e-12)
    np.testing.assert_allclose(np.concatenate(arrays), np.concatenate(copies), rtol=1e-12)


# --------------------------------------------------------------------------
# Absurd sizes refused before anything is allocated
# --------------------------------------------------------------------------
ABSURD = [
    (2**30, 2**30, 0, 0),  # T*B = 2**60 rows
    (2**31, 2**29, 0, 0),
    (1, 2**60, 0, 0),  # float32: 2**60 * 4 bytes is within NumPy's limit
]


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("shape", ABSURD, ids=lambda s: "T%d-B%d-I%d-H%d" % s)
@pytest.mark.parametrize("spec", cell_params())
def test_absurd_sizes_rejected_by_the_python_checks(spec, shape, engine):
    T, B, I, H = shape
    x = np.empty((T, B, I), np.float32)  # zero-size: NumPy allows the shape
    with pytest.raises(ValueError, match=r"(?<![A-Za-z_])x of shape .* too large"):
        ENGINES[engine].forward(spec, x, None, _zero_size_weights(spec, I, H))


@pytest.mark.parametrize("shape", ABSURD, ids=lambda s: "T%d-B%d-I%d-H%d" % s)
def test_absurd_sizes_rejected_by_the_c_entry_points(shape):
    """The C kernels check sizes themselves (csrc/dispatch.c) before any
    allocation: called directly, past the Python checks, they refuse."""
    T, B, I, H = shape
    f32 = np.float32
    x = np.empty((T, B, I), f32)
    w_ih, w_hh = np.empty((H, I), f32), np.empty((H, H), f32)
    out, h_n = np.empty((T, B, H), f32), np.empty((B, H), f32)
    layer = (
        _core.CELL_INFO["rnn"]["code"],
        _core.DTYPES["float32"],
        _core.ACTIVATIONS["tanh"],
        0,
        I,
        H,
        0,
    )
    weights = (w_ih, w_hh, None, None, None, None)
    with pytest.raises(ValueError, match="rejected the sizes"):
        _core.forward(layer, weights, x, None, (None,), out, (h_n,), ())
    dx, dh0 = np.empty((T, B, I), f32), np.empty((B, H), f32)
    dw_ih, dw_hh = np.empty((H, I), f32), np.empty((H, H), f32)
    with pytest.raises(ValueError, match="rejected the sizes"):
        _core.backward(
            layer,
            weights,
            x,
            None,
            (None,),
            out,
            (),
            None,
            (None,),
            dx,
            (dh0,),
            (dw_ih, dw_hh, None, None, None, None),
        )


def test_numpy_refuses_shapes_beyond_its_own_limit():
    """What crnn can never be handed: shapes whose size overflows intp."""
    with pytest.raises(ValueError, match="too big"):
        np.empty((2**40, 2**40, 0), np.float32)


# --------------------------------------------------------------------------
# Zero-stride views of huge logical shapes
# --------------------------------------------------------------------------
HUGE = (2**20, 2**20, 64)  # 2**46 elements: 256 TiB if materialised


@pytest.mark.parametrize("engine", [crnn, ref], ids=["crnn", "reference"])
@pytest.mark.parametrize("which", ["x", "weight_hh", "h0"])
def test_huge_broadcast_inputs_fail_cleanly(engine, which):
    f32 = np.float32
    args = dict(
        x=np.zeros((3, 2, 4), f32),
        h0=None,
        weight_ih=np.zeros((5, 4), f32),
        weight_hh=np.zeros((5, 5), f32),
    )
    if which == "x":
        args.update(x=np.broadcast_to(f32(1), HUGE), weight_ih=np.zeros((5, 64), f32))
    elif which == "weight_hh":
        H = 2**24
        args.update(
            x=np.zeros((3, 2, 0), f32),
            weight_hh=np.broadcast_to(f32(0), (H, H)),
            weight_ih=np.empty((H, 0), f32),
        )
    else:
        args["h0"] = np.broadcast_to(f32(0), (2, 5))
        args["x"] = np.broadcast_to(f32(1), (2**40, 2, 4))
    with pytest.raises(MemoryError):
        engine.rnn_forward(**args)


def test_huge_broadcast_layer_input_fails_cleanly():
    layer = crnn.RNN(64, 8, seed=0)
    with pytest.raises(MemoryError):
        layer(np.broadcast_to(np.float32(1), HUGE))


@pytest.mark.parametrize("engine", [crnn, ref], ids=["crnn", "reference"])
@pytest.mark.parametrize("func", ["clip_grad_norm", "clip_grad_value"])
def test_zero_stride_writeable_arrays_refused_by_clipping(engine, func):
    """as_strided makes a writeable view whose elements share memory; clipping
    it in place is ill-defined (and would walk 2**45 elements): refused."""
    base = np.zeros(1)
    view = np.lib.stride_tricks.as_strided(base, shape=(2**45,), strides=(0,))
    assert view.flags.writeable
    with pytest.raises(ValueError, match=r"arrays\[1\] has a zero stride"):
        getattr(engine, func)([np.ones(3), view], 1.0)
    small = np.lib.stride_tricks.as_strided(np.ones(4), shape=(4, 3), strides=(8, 0))
    with pytest.raises(ValueError, match=r"arrays\[0\] has a zero stride"):
        getattr(engine, func)(small, 1.0)


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("spec", cell_params())
def test_moderate_broadcast_inputs_give_the_materialised_numbers(spec, dtype, engine):
    """Zero-stride (read-only) inputs of moderate size are copied: bitwise the
    same results as the materialised arrays, and the view is untouched."""
    p = make_problem(
        spec,
        (9, 40, 6, 16),
        dtype,
        seed=4,
        bias=spec.weights[-1].bias and (spec.weights[-1].name,) or True,
    )
    x_row = p.x[:1].copy()
    views = p.replace(
        x=np.broadcast_to(x_row, p.x.shape),
        states=tuple(np.broadcast_to(s[0], s.shape) for s in p.states),
        weights={
            k: None
            if v is None
            else (np.broadcast_to(v[:, :1], v.shape) if v.ndim == 2 and k.endswith("hh") else v)
            for k, v in p.weights.items()
        },
    )
    dense = views.replace(
        x=np.array(views.x),
        states=tuple(np.array(s) for s in views.states),
        weights={k: None if v is None else np.array(v) for k, v in views.weights.items()},
    )
    dout = np.broadcast_to(np.ones(p.width, dtype), (9, 40, p.width))
    assert_bitwise(run(ENGINES[engine], views, dout), run(ENGINES[engine], dense, np.array(dout)))
    np.testing.assert_array_equal(views.x[5], x_row[0])
