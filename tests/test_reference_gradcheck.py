"""Gradient checks of the NumPy specification (`crnn.reference`).

The reference is the oracle every other test trusts, so its backward pass is
checked here against central differences of its own forward pass, in float64,
for the scalar loss  sum(dout * out) + sum(dh_n * h_n)  (a missing dout or
dh_n contributes nothing). Further tests pin down the forward semantics that
gradients cannot see: padding, state holding, no aliasing, no modification of
inputs, and float32 staying float32.
"""
from __future__ import annotations

import numpy as np
import pytest

from crnn import reference
from crnn.cells import NONLINEARITIES, RNNCache
from helpers import make_rnn_problem, rel_error

# Central differences: truncation error ~EPS**2, round-off ~1e-16 * |loss| / EPS,
# so EPS = 1e-6 leaves an absolute error near 1e-10 whatever the gradient's size;
# hence a relative tolerance plus an absolute floor for tiny gradients.
EPS = 1e-6
GRAD_RTOL = 1e-7
GRAD_ATOL = 1e-8

# Which RNNGrads field holds the gradient of which rnn_forward argument.
GRAD_FIELDS = {
    "x": "dx",
    "h0": "dh0",
    "weight_ih": "dweight_ih",
    "weight_hh": "dweight_hh",
    "bias_ih": "dbias_ih",
    "bias_hh": "dbias_hh",
}
BIASES = ("both", "none", "ih_only", "hh_only")


def _problem(T, B, I, H, *, lengths=None, h0=True, bias="both", seed=0, dtype=np.float64):
    """rnn_forward keyword arguments, with any subset of the two biases."""
    args = make_rnn_problem(T, B, I, H, dtype, seed=seed, h0=h0, bias=bias != "none",
                            lengths=lengths)
    if bias == "ih_only":
        args["bias_hh"] = None
    elif bias == "hh_only":
        args["bias_ih"] = None
    return args


def _upstream(T, B, H, *, with_dout, with_dh_n, seed=100, dtype=np.float64):
    """Random upstream gradients (dout, dh_n), each possibly None."""
    rng = np.random.default_rng(seed)
    dout = rng.standard_normal((T, B, H)).astype(dtype) if with_dout else None
    dh_n = rng.standard_normal((B, H)).astype(dtype) if with_dh_n else None
    return dout, dh_n


def _loss(args, nonlinearity, dout, dh_n):
    out, h_n, _ = reference.rnn_forward(**args, nonlinearity=nonlinearity)
    loss = 0.0
    if dout is not None:
        loss += float(np.sum(dout * out))
    if dh_n is not None:
        loss += float(np.sum(dh_n * h_n))
    return loss


def _numerical_grad(args, name, nonlinearity, dout, dh_n):
    """Central differences of the loss w.r.t. every element of args[name]."""
    args = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in args.items()}
    param = args[name]
    grad = np.zeros_like(param)
    for idx in np.ndindex(param.shape):
        orig = param[idx]
        param[idx] = orig + EPS
        loss_plus = _loss(args, nonlinearity, dout, dh_n)
        param[idx] = orig - EPS
        loss_minus = _loss(args, nonlinearity, dout, dh_n)
        param[idx] = orig
        grad[idx] = (loss_plus - loss_minus) / (2 * EPS)
    return grad


def _check_gradients(args, nonlinearity, dout, dh_n):
    out, h_n, cache = reference.rnn_forward(**args, nonlinearity=nonlinearity)
    grads = reference.rnn_backward(dout, dh_n, cache)

    if args["h0"] is None:
        # dh0 is the gradient w.r.t. the zero initial state: differentiate
        # the same problem with explicit zeros.
        B, H = h_n.shape
        args = dict(args, h0=np.zeros((B, H)))
    for name, field in GRAD_FIELDS.items():
        analytic = getattr(grads, field)
        if args[name] is None:
            assert analytic is None, f"{field} should be None without {name}"
            continue
        numeric = _numerical_grad(args, name, nonlinearity, dout, dh_n)
        assert analytic.shape == args[name].shape, field
        assert analytic.dtype == np.float64, field
        err = float(np.max(np.abs(analytic - numeric), initial=0.0))
        bound = GRAD_ATOL + GRAD_RTOL * float(np.max(np.abs(numeric), initial=0.0))
        assert err <= bound, f"{field}: error {err:.3e} > {bound:.3e} vs central differences"


@pytest.mark.parametrize("with_dh_n", [True, False], ids=["dh_n", "no_dh_n"])
@pytest.mark.parametrize("with_dout", [True, False], ids=["dout", "no_dout"])
@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("h0", [True, False], ids=["h0", "no_h0"])
@pytest.mark.parametrize("lengths", [None, "random", "zeros"],
                         ids=["full", "lengths", "zero_lengths"])
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_gradients_match_central_differences(nonlinearity, lengths, h0, bias, with_dout,
                                             with_dh_n):
    T, B, I, H = 4, 3, 2, 3
    args = _problem(T, B, I, H, lengths=lengths, h0=h0, bias=bias, seed=1)
    dout, dh_n = _upstream(T, B, H, with_dout=with_dout, with_dh_n=with_dh_n)
    _check_gradients(args, nonlinearity, dout, dh_n)


@pytest.mark.parametrize("lengths", [None, "random", "zeros"],
                         ids=["full", "lengths", "zero_lengths"])
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize(
    "shape",
    [(1, 3, 2, 3), (4, 3, 2, 1), (4, 3, 1, 3), (1, 1, 1, 1), (6, 5, 3, 4)],
    ids=lambda s: "T{}B{}I{}H{}".format(*s),
)
def test_gradients_small_and_degenerate_shapes(shape, nonlinearity, lengths):
    T, B, I, H = shape
    args = _problem(T, B, I, H, lengths=lengths, seed=2)
    dout, dh_n = _upstream(T, B, H, with_dout=True, with_dh_n=True, seed=3)
    _check_gradients(args, nonlinearity, dout, dh_n)


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("h0", [True, False], ids=["h0", "no_h0"])
def test_padded_steps_are_zero_and_state_is_held(nonlinearity, h0):
    T, B, I, H = 5, 6, 3, 4
    args = _problem(T, B, I, H, h0=h0, seed=4)
    args["lengths"] = np.array([5, 0, 2, 1, 0, 3])  # unsorted, with zeros and full rows
    out, h_n, cache = reference.rnn_forward(**args, nonlinearity=nonlinearity)

    for b, length in enumerate(args["lengths"]):
        assert np.all(out[length:, b] == 0), f"row {b}: out not zero after its length"
        if length > 0:
            assert np.array_equal(h_n[b], out[length - 1, b]), \
                f"row {b}: h_n is not the last valid state"
        else:
            expected = args["h0"][b] if h0 else np.zeros(H)
            assert np.array_equal(h_n[b], expected), \
                f"row {b}: an empty row keeps its initial state"
        # The same row run alone, truncated to its length, gives the same states.
        alone_out, alone_h_n, _ = reference.rnn_forward(
            args["x"][:length, b:b + 1],
            None if args["h0"] is None else args["h0"][b:b + 1],
            args["weight_ih"], args["weight_hh"], args["bias_ih"], args["bias_hh"],
            nonlinearity=nonlinearity,
        )
        assert rel_error(out[:length, b], alone_out[:, 0]) <= 1e-13
        assert rel_error(h_n[b], alone_h_n[0]) <= 1e-13


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_padded_steps_get_no_gradient_and_ignore_dout(nonlinearity):
    T, B, I, H = 5, 4, 3, 4
    args = _problem(T, B, I, H, seed=5)
    lengths = np.array([3, 0, 5, 1])
    args["lengths"] = lengths
    dout, dh_n = _upstream(T, B, H, with_dout=True, with_dh_n=True, seed=6)
    _, _, cache = reference.rnn_forward(**args, nonlinearity=nonlinearity)
    grads = reference.rnn_backward(dout, dh_n, cache)

    padded = np.arange(T)[:, None] >= lengths[None, :]  # (T, B)
    assert np.all(grads.dx[padded] == 0)
    # A row of length 0 passes dh_n straight to dh0.
    assert np.array_equal(grads.dh0[1], dh_n[1])
    # Whatever dout holds on padded steps changes nothing.
    noisy = dout.copy()
    noisy[padded] = 1e3
    noisy_grads = reference.rnn_backward(noisy, dh_n, cache)
    for field, a, b in zip(grads._fields, grads, noisy_grads):
        assert np.array_equal(a, b), field


@pytest.mark.parametrize("garbage", [np.nan, np.inf, 1e30], ids=["nan", "inf", "huge"])
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_padded_inputs_are_ignored(nonlinearity, garbage):
    # Whatever a caller pads x with, even non-finite values, changes nothing.
    T, B, I, H = 5, 4, 3, 4
    args = _problem(T, B, I, H, seed=15)
    lengths = np.array([2, 5, 0, 3])
    args["lengths"] = lengths
    padded = np.arange(T)[:, None] >= lengths[None, :]  # (T, B)
    args["x"][padded] = 0.0
    dout, dh_n = _upstream(T, B, H, with_dout=True, with_dh_n=True, seed=16)
    out, h_n, cache = reference.rnn_forward(**args, nonlinearity=nonlinearity)
    grads = reference.rnn_backward(dout, dh_n, cache)

    noisy_x = args["x"].copy()
    noisy_x[padded] = garbage
    with np.errstate(invalid="ignore", over="ignore"):  # arithmetic on the garbage itself
        noisy_out, noisy_h_n, noisy_cache = reference.rnn_forward(
            **dict(args, x=noisy_x), nonlinearity=nonlinearity)
        noisy_grads = reference.rnn_backward(dout, dh_n, noisy_cache)
    assert np.array_equal(out, noisy_out)
    assert np.array_equal(h_n, noisy_h_n)
    for field, a, b in zip(grads._fields, grads, noisy_grads):
        assert np.array_equal(a, b), field


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_full_lengths_equal_no_lengths(nonlinearity):
    T, B, I, H = 4, 3, 2, 5
    args = _problem(T, B, I, H, seed=7)
    out, h_n, cache = reference.rnn_forward(**args, nonlinearity=nonlinearity)
    out_l, h_n_l, cache_l = reference.rnn_forward(**args, nonlinearity=nonlinearity,
                                                  lengths=[T] * B)
    assert np.array_equal(out, out_l)
    assert np.array_equal(h_n, h_n_l)
    dout, dh_n = _upstream(T, B, H, with_dout=True, with_dh_n=True)
    grads = reference.rnn_backward(dout, dh_n, cache)
    grads_l = reference.rnn_backward(dout, dh_n, cache_l)
    for field, a, b in zip(grads._fields, grads, grads_l):
        assert np.array_equal(a, b), field


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lengths", [None, "zeros"], ids=["full", "zero_lengths"])
def test_inputs_are_never_modified(dtype, lengths):
    T, B, I, H = 4, 3, 2, 3
    args = _problem(T, B, I, H, lengths=lengths, seed=8, dtype=dtype)
    dout, dh_n = _upstream(T, B, H, with_dout=True, with_dh_n=True, dtype=dtype)
    saved = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    saved_dout, saved_dh_n = dout.copy(), dh_n.copy()

    out, h_n, cache = reference.rnn_forward(**args, nonlinearity="tanh")
    saved_out = out.copy()
    reference.rnn_backward(dout, dh_n, cache)

    for name, value in saved.items():
        assert np.array_equal(args[name], value), f"{name} was modified"
    assert np.array_equal(dout, saved_dout), "dout was modified"
    assert np.array_equal(dh_n, saved_dh_n), "dh_n was modified"
    assert np.array_equal(cache.out, saved_out), "backward modified the cached out"


@pytest.mark.parametrize("T", [0, 3])
@pytest.mark.parametrize("lengths", [None, "zeros"], ids=["full", "zero_lengths"])
def test_h_n_never_aliases_h0(T, lengths):
    args = _problem(T, 4, 2, 3, lengths=lengths, seed=9)
    _, h_n, _ = reference.rnn_forward(**args)
    assert not np.shares_memory(h_n, args["h0"])
    h_n += 1.0
    assert not np.array_equal(h_n, args["h0"])


def test_cache_holds_normalised_inputs_by_reference():
    args = _problem(3, 2, 4, 5, lengths="random", seed=10)
    out, _, cache = reference.rnn_forward(**args, nonlinearity="relu")
    assert isinstance(cache, RNNCache)
    assert cache.out is out
    assert cache.nonlinearity == "relu"
    # Already float64, C-contiguous and native: used as they are, not copied.
    for name in ("x", "h0", "weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        assert np.shares_memory(getattr(cache, name), args[name]), name
    assert cache.lengths.dtype == np.int64
    assert np.array_equal(cache.lengths, args["lengths"])


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("bias", ["both", "ih_only"])
def test_float32_stays_float32(nonlinearity, bias):
    T, B, I, H = 5, 3, 4, 6
    args32 = _problem(T, B, I, H, lengths="zeros", bias=bias, seed=11, dtype=np.float32)
    args64 = {k: v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
              for k, v in args32.items()}
    dout32, dh_n32 = _upstream(T, B, H, with_dout=True, with_dh_n=True, dtype=np.float32)

    out32, h_n32, cache32 = reference.rnn_forward(**args32, nonlinearity=nonlinearity)
    grads32 = reference.rnn_backward(dout32, dh_n32, cache32)
    out64, h_n64, cache64 = reference.rnn_forward(**args64, nonlinearity=nonlinearity)
    grads64 = reference.rnn_backward(dout32.astype(np.float64), dh_n32.astype(np.float64), cache64)

    assert out32.dtype == np.float32 and h_n32.dtype == np.float32
    assert rel_error(out32, out64) <= 1e-5
    assert rel_error(h_n32, h_n64) <= 1e-5
    for field, g32, g64 in zip(grads32._fields, grads32, grads64):
        if g64 is None:
            assert g32 is None, field
            continue
        assert g32.dtype == np.float32, field
        assert rel_error(g32, g64) <= 1e-5, field


def test_bias_gradients_are_equal_but_separate():
    args = _problem(4, 3, 2, 3, seed=12)
    dout, dh_n = _upstream(4, 3, 3, with_dout=True, with_dh_n=True)
    _, _, cache = reference.rnn_forward(**args)
    grads = reference.rnn_backward(dout, dh_n, cache)
    assert np.array_equal(grads.dbias_ih, grads.dbias_hh)
    assert not np.shares_memory(grads.dbias_ih, grads.dbias_hh)


@pytest.mark.parametrize("T,B", [(0, 3), (3, 0), (0, 0)])
@pytest.mark.parametrize("h0", [True, False], ids=["h0", "no_h0"])
def test_empty_time_or_batch(T, B, h0):
    I, H = 2, 3
    args = _problem(T, B, I, H, h0=h0, seed=13)
    out, h_n, cache = reference.rnn_forward(**args)
    assert out.shape == (T, B, H)
    expected_h_n = args["h0"] if h0 else np.zeros((B, H))
    assert np.array_equal(h_n, expected_h_n)

    dout, dh_n = _upstream(T, B, H, with_dout=True, with_dh_n=True)
    grads = reference.rnn_backward(dout, dh_n, cache)
    assert grads.dx.shape == (T, B, I)
    # Nothing happens between h0 and h_n when T = 0: the gradient passes through.
    expected_dh0 = dh_n if T == 0 else np.zeros((B, H))
    assert np.array_equal(grads.dh0, expected_dh0)
    for field in ("dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh"):
        g = getattr(grads, field)
        assert np.all(g == 0), field
    assert grads.dweight_ih.shape == (H, I) and grads.dbias_hh.shape == (H,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_does_not_overflow_on_large_inputs(dtype):
    args = _problem(3, 4, 2, 3, seed=14, dtype=dtype)
    args["x"] = args["x"] * dtype(1e4)  # pre-activations far beyond exp's range
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is harmless
        out, h_n, cache = reference.rnn_forward(**args, nonlinearity="sigmoid")
        reference.rnn_backward(np.ones_like(out), None, cache)
    assert np.all(np.isfinite(out)) and np.all((out >= 0) & (out <= 1))

