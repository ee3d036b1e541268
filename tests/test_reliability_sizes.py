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
from crnn import _core
from crnn import reference as ref
from helpers import assert_rel_close, make_rnn_problem

GRAD_FIELDS = crnn.RNNGrads._fields


def _full(mod, args, nl="tanh", dout=None, dh_n=None):
    out, h_n, cache = mod.rnn_forward(**args, nonlinearity=nl)
    return out, h_n, mod.rnn_backward(out if dout is None else dout, dh_n, cache)


def _compare(c, r, dtype):
    (o1, h1, g1), (o2, h2, g2) = c, r
    assert_rel_close(o1, o2, dtype, name="out")
    assert_rel_close(h1, h2, dtype, name="h_n")
    for f in GRAD_FIELDS:
        a, b = getattr(g1, f), getattr(g2, f)
        assert (a is None) == (b is None)
        if a is not None:
            assert_rel_close(a, b, dtype, name=f)


# --------------------------------------------------------------------------
# Products beyond 32 bits with small arrays
# --------------------------------------------------------------------------
def test_T_B_I_H_product_beyond_2_31():
    """T*B*I*H = 2.2e9 > 2**31 (8.8 MB of input): the GEMM and recurrence work
    counts and every index stay exact."""
    T, B, I, H = 2, 1100, 1000, 1000
    assert T * B * I * H > 2**31
    crnn.set_num_threads(2)
    args = make_rnn_problem(T, B, I, H, np.float32, seed=1, lengths=np.tile([2, 1, 0, 2], B // 4))
    _compare(_full(crnn, args), _full(ref, args), np.float32)


def test_rows_beyond_2_32_with_empty_features():
    """T*B = 2**41 rows of nothing (I = H = 0): every loop bound is 64-bit
    and nothing is allocated or walked per row (C engine only: the
    reference's Python loop over 2**40 steps would take days)."""
    x = np.empty((2**40, 2, 0), np.float32)
    w = np.empty((0, 0), np.float32)
    out, h_n, cache = crnn.rnn_forward(x, None, w, w)
    assert out.shape == (2**40, 2, 0) and h_n.shape == (2, 0)
    g = crnn.rnn_backward(None, None, cache)
    assert g.dx.shape == (2**40, 2, 0) and g.dh0.shape == (2, 0)
    assert g.dweight_ih.shape == (0, 0)


_EMPTY_STATE_ROWS = r"""
import numpy as np, crnn
x = np.empty((3, 2**40, 0), np.float32)     # 2**40 batch rows of nothing (H = 0)
w = np.empty((0, 0), np.float32)
o, h, c = crnn.rnn_forward(x, None, w, w); crnn.rnn_backward(None, None, c)
o, h, c = crnn.gru_forward(x, None, w, w); crnn.gru_backward(None, None, c)
o, h, cn, c = crnn.lstm_forward(x, None, None, w, w); crnn.lstm_backward(None, None, None, c)
print(h.shape)
"""


def test_batch_rows_of_nothing_are_not_walked():
    """B = 2**40 with H = 0: the final-state copy must not loop over the rows
    (it did: about 75 minutes). In a child process, so a regression fails
    on the timeout instead of hanging the suite."""
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-c", _EMPTY_STATE_ROWS], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str((2**40, 0))


@pytest.mark.parametrize("engine", [crnn, ref], ids=["crnn", "reference"])
def test_batch_of_zero_rows_with_empty_lengths(engine):
    """B = 0 with lengths=[] (a float64 empty list to NumPy) is accepted."""
    args = make_rnn_problem(5, 0, 3, 4, np.float64, seed=2)
    out, h_n, g = _full(engine, dict(args, lengths=[]))
    assert out.shape == (5, 0, 4) and h_n.shape == (0, 4) and g.dx.shape == (5, 0, 3)
    assert not g.dweight_hh.any()


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
    (2**30, 2**30, 0, 0),   # T*B = 2**60 rows
    (2**31, 2**29, 0, 0),
    (1, 2**60, 0, 0),       # float32: 2**60 * 4 bytes is within NumPy's limit
]


@pytest.mark.parametrize("engine", [crnn, ref], ids=["crnn", "reference"])
@pytest.mark.parametrize("shape", ABSURD, ids=lambda s: "T%d-B%d-I%d-H%d" % s)
def test_absurd_sizes_rejected_by_the_python_checks(engine, shape):
    T, B, I, H = shape
    x = np.empty((T, B, I), np.float32)  # zero-size: NumPy allows the shape
    w_ih, w_hh = np.empty((H, I), np.float32), np.empty((H, H), np.float32)
    with pytest.raises(ValueError, match=r"(?<![A-Za-z_])x of shape .* too large"):
        engine.rnn_forward(x, None, w_ih, w_hh)


@pytest.mark.parametrize("shape", ABSURD, ids=lambda s: "T%d-B%d-I%d-H%d" % s)
def test_absurd_sizes_rejected_by_the_c_entry_points(shape):
    """The C kernels check sizes themselves (csrc/dispatch.c) before any
    allocation: called directly, past the Python checks, they refuse."""
    T, B, I, H = shape
    f32 = np.float32
    x = np.empty((T, B, I), f32)
    w_ih, w_hh = np.empty((H, I), f32), np.empty((H, H), f32)
    out, h_n = np.empty((T, B, H), f32), np.empty((B, H), f32)
    with pytest.raises(ValueError, match="rejected the sizes"):
        _core.rnn_forward(x, None, w_ih, w_hh, None, None, None, "tanh", out, h_n)
    dx, dh0 = np.empty((T, B, I), f32), np.empty((B, H), f32)
    dw_ih, dw_hh = np.empty((H, I), f32), np.empty((H, H), f32)
    with pytest.raises(ValueError, match="rejected the sizes"):
        _core.rnn_backward(x, None, w_ih, w_hh, None, "tanh", out, None, None,
                           dx, dh0, dw_ih, dw_hh, None)


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
    args = dict(x=np.zeros((3, 2, 4), f32), h0=None, weight_ih=np.zeros((5, 4), f32),
                weight_hh=np.zeros((5, 5), f32))
    if which == "x":
        args.update(x=np.broadcast_to(f32(1), HUGE), weight_ih=np.zeros((5, 64), f32))
    elif which == "weight_hh":
        H = 2**24
        args.update(x=np.zeros((3, 2, 0), f32), weight_hh=np.broadcast_to(f32(0), (H, H)),
                    weight_ih=np.empty((H, 0), f32))
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


@pytest.mark.parametrize("engine", [crnn, ref], ids=["crnn", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_moderate_broadcast_inputs_give_the_materialised_numbers(engine, dtype):
    """Zero-stride (read-only) inputs of moderate size are copied: bitwise the
    same results as the materialised arrays, and the view is untouched."""
    rng = np.random.default_rng(4)
    T, B, I, H = 9, 40, 6, 16
    x_row = rng.standard_normal((1, B, I)).astype(dtype)
    b_row = rng.standard_normal(H).astype(dtype)
    views = dict(x=np.broadcast_to(x_row, (T, B, I)),
                 h0=np.broadcast_to(rng.standard_normal(H).astype(dtype), (B, H)),
                 weight_ih=(0.3 * rng.standard_normal((H, I))).astype(dtype),
                 weight_hh=np.broadcast_to((0.05 * rng.standard_normal((H, 1))).astype(dtype), (H, H)),
                 bias_ih=b_row, bias_hh=None)
    dense = {k: None if v is None else np.array(v) for k, v in views.items()}
    dout = np.broadcast_to(np.ones(H, dtype), (T, B, H))
    a = _full(engine, views, "sigmoid", dout)
    b = _full(engine, dense, "sigmoid", np.array(dout))
    for x, y in zip(a[:2] + tuple(a[2]), b[:2] + tuple(b[2])):
        if y is not None:
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(views["x"][5], x_row[0])
