"""Parity of both engines with PyTorch (skipped when torch is not installed).

Each test runs against the NumPy specification (`crnn.reference`, id
"reference") and the C engine (`crnn`, id "c_engine"), so `-k reference` or
`-k c_engine` selects one engine. The recurrence is compared with a one-layer
`torch.nn.RNN` in float64 carrying the same weights (tanh and relu; lengths
through pack_padded_sequence) and with a hand-written torch autograd
recurrence (sigmoid, which torch.nn.RNN lacks, zero lengths, which packing
refuses, and a single bias). Clipping is compared with
`torch.nn.utils.clip_grad_norm_` and `clip_grad_value_`.
"""
from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

from helpers import assert_rel_close, make_rnn_problem  # noqa: E402

# The tolerance for float64 results against torch (both sides sum in their
# own order, so bitwise equality is not expected).
TORCH_TOL = 1e-10
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
UPSTREAMS = ("dout_and_dh_n", "dout_only", "dh_n_only")
ENGINE_MODULES = {"reference": "crnn.reference", "c_engine": "crnn"}


@pytest.fixture(params=sorted(ENGINE_MODULES))
def engine(request):
    """The module holding rnn_forward, rnn_backward and the clipping functions."""
    return importlib.import_module(ENGINE_MODULES[request.param])


# --------------------------------------------------------------------------
# Problems and torch's answers
# --------------------------------------------------------------------------

def _problem(T, B, I, H, *, lengths=None, h0=True, bias="both", seed=0):
    args = make_rnn_problem(T, B, I, H, np.float64, seed=seed, h0=h0, bias=bias != "none",
                            lengths=lengths)
    if bias == "ih_only":
        args["bias_hh"] = None
    return args


def _upstream(T, B, H, which, seed=50):
    rng = np.random.default_rng(seed)
    dout = rng.standard_normal((T, B, H)) if which in ("dout_and_dh_n", "dout_only") else None
    dh_n = rng.standard_normal((B, H)) if which in ("dout_and_dh_n", "dh_n_only") else None
    return dout, dh_n


def _torch_loss(out, h_n, dout, dh_n):
    loss = out.new_zeros(())
    if dout is not None:
        loss = loss + (out * torch.from_numpy(dout)).sum()
    if dh_n is not None:
        loss = loss + (h_n * torch.from_numpy(dh_n)).sum()
    return loss


def _leaf(array):
    return torch.tensor(array, dtype=torch.float64, requires_grad=True)


def _h0_leaf(args):
    # torch gives no gradient for a missing h0, so its reference is an
    # explicit zero state: dh0 is the gradient w.r.t. that state.
    B, H = args["x"].shape[1], args["weight_hh"].shape[0]
    return _leaf(np.zeros((B, H)) if args["h0"] is None else args["h0"])


def _grads_of(leaves):
    return {name: None if t is None else t.grad.numpy().copy() for name, t in leaves.items()}


def torch_nn_rnn(args, nonlinearity, dout, dh_n):
    """out, h_n and gradients from torch.nn.RNN (tanh or relu, both or no biases)."""
    T, B, I = args["x"].shape
    H = args["weight_hh"].shape[0]
    has_bias = args["bias_ih"] is not None
    rnn = torch.nn.RNN(I, H, num_layers=1, nonlinearity=nonlinearity, bias=has_bias,
                       dtype=torch.float64)
    params = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if has_bias else [])
    with torch.no_grad():
        for name in params:
            getattr(rnn, name + "_l0").copy_(torch.from_numpy(args[name]))
    x, h0 = _leaf(args["x"]), _h0_leaf(args)

    if args.get("lengths") is None:
        out, h_n = rnn(x, h0.unsqueeze(0))
    else:
        packed = pack_padded_sequence(x, torch.as_tensor(args["lengths"], dtype=torch.int64),
                                      enforce_sorted=False)
        packed_out, h_n = rnn(packed, h0.unsqueeze(0))
        out, _ = pad_packed_sequence(packed_out, total_length=T)
    h_n = h_n[0]
    _torch_loss(out, h_n, dout, dh_n).backward()

    leaves = {"x": x, "h0": h0}
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        leaves[name] = getattr(rnn, name + "_l0") if name in params else None
    return out.detach().numpy(), h_n.detach().numpy(), _grads_of(leaves)


def torch_manual_rnn(args, nonlinearity, dout, dh_n):
    """out, h_n and gradients from the recurrence written out with torch autograd."""
    T, B, _ = args["x"].shape
    H = args["weight_hh"].shape[0]
    f = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}[nonlinearity]
    leaves = {"x": _leaf(args["x"]), "h0": _h0_leaf(args)}
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        leaves[name] = None if args[name] is None else _leaf(args[name])
    lengths = args.get("lengths")
    row_lengths = torch.full((B,), T) if lengths is None else torch.as_tensor(lengths)

    h = leaves["h0"]
    outs = []
    for t in range(T):
        a = leaves["x"][t] @ leaves["weight_ih"].T
        if leaves["bias_ih"] is not None:
            a = a + leaves["bias_ih"]
        a = a + h @ leaves["weight_hh"].T
        if leaves["bias_hh"] is not None:
            a = a + leaves["bias_hh"]
        h_new = f(a)
        valid = (t < row_lengths)[:, None]
        outs.append(torch.where(valid, h_new, torch.zeros_like(h_new)))
        h = torch.where(valid, h_new, h)
    out = torch.stack(outs) if T else torch.zeros((0, B, H), dtype=torch.float64)
    loss = _torch_loss(out, h, dout, dh_n)
    if loss.requires_grad:
        loss.backward()
    for leaf in leaves.values():  # leaves the loss does not reach get zero gradients
        if leaf is not None and leaf.grad is None:
            leaf.grad = torch.zeros_like(leaf)
    return out.detach().numpy(), h.detach().numpy(), _grads_of(leaves)


# --------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------

GRAD_FIELDS = {"x": "dx", "h0": "dh0", "weight_ih": "dweight_ih", "weight_hh": "dweight_hh",
               "bias_ih": "dbias_ih", "bias_hh": "dbias_hh"}


def assert_matches_torch(ours, expected):
    """ours = (out, h_n, RNNGrads); expected = (out, h_n, {arg name: grad or None})."""
    out, h_n, grads = ours
    t_out, t_h_n, t_grads = expected
    assert_rel_close(out, t_out, tol=TORCH_TOL, name="out")
    assert_rel_close(h_n, t_h_n, tol=TORCH_TOL, name="h_n")
    for name, field in GRAD_FIELDS.items():
        ours_grad = getattr(grads, field)
        if t_grads[name] is None:
            assert ours_grad is None, f"{field} should be None when the forward had no {name}"
        else:
            assert ours_grad is not None, field
            assert ours_grad.dtype == np.float64, field
            assert_rel_close(ours_grad, t_grads[name], tol=TORCH_TOL, name=field)


def run_engine(engine, args, nonlinearity, dout, dh_n):
    out, h_n, cache = engine.rnn_forward(**args, nonlinearity=nonlinearity)
    return out, h_n, engine.rnn_backward(dout, dh_n, cache)


# --------------------------------------------------------------------------
# Recurrence
# --------------------------------------------------------------------------

@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("bias", ["both", "none"])
@pytest.mark.parametrize("h0", [True, False], ids=["h0", "no_h0"])
@pytest.mark.parametrize("lengths", [None, "random"], ids=["full", "lengths"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_matches_torch_nn_rnn(engine, nonlinearity, lengths, h0, bias, upstream):
    T, B, I, H = 6, 5, 4, 7
    args = _problem(T, B, I, H, lengths=lengths, h0=h0, bias=bias, seed=1)
    dout, dh_n = _upstream(T, B, H, upstream)
    assert_matches_torch(run_engine(engine, args, nonlinearity, dout, dh_n),
                         torch_nn_rnn(args, nonlinearity, dout, dh_n))


@pytest.mark.parametrize("lengths", [None, "random"], ids=["full", "lengths"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize(
    "shape",
    # Odd sizes and a larger problem: sizes that are not multiples of a vector
    # width and batches big enough to be split across threads.
    [(1, 1, 1, 1), (1, 4, 3, 5), (3, 1, 2, 9), (9, 17, 13, 33), (25, 64, 40, 70)],
    ids=lambda s: "T{}B{}I{}H{}".format(*s),
)
def test_matches_torch_nn_rnn_across_shapes(engine, shape, nonlinearity, lengths):
    T, B, I, H = shape
    args = _problem(T, B, I, H, lengths=lengths, seed=2)
    dout, dh_n = _upstream(T, B, H, "dout_and_dh_n", seed=3)
    assert_matches_torch(run_engine(engine, args, nonlinearity, dout, dh_n),
                         torch_nn_rnn(args, nonlinearity, dout, dh_n))


@pytest.mark.parametrize("garbage", [math.nan, math.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_padding_values_are_ignored_like_torch(engine, nonlinearity, garbage):
    # pack_padded_sequence never reads the padding; neither may the engines,
    # even when it is not finite (0 * NaN would otherwise leak into gradients).
    T, B, I, H = 6, 5, 4, 7
    args = _problem(T, B, I, H, lengths="random", seed=10)
    padded = np.arange(T)[:, None] >= args["lengths"][None, :]
    assert padded.any()
    args["x"][padded] = garbage
    dout, dh_n = _upstream(T, B, H, "dout_and_dh_n", seed=11)
    with np.errstate(invalid="ignore", over="ignore"):  # arithmetic on the padding itself
        ours = run_engine(engine, args, nonlinearity, dout, dh_n)
    assert_matches_torch(ours, torch_nn_rnn(args, nonlinearity, dout, dh_n))


@pytest.mark.parametrize("bias", ["both", "none", "ih_only"])
@pytest.mark.parametrize("h0", [True, False], ids=["h0", "no_h0"])
@pytest.mark.parametrize("lengths", [None, "random", "zeros"],
                         ids=["full", "lengths", "zero_lengths"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "sigmoid"])
def test_matches_torch_autograd_recurrence(engine, nonlinearity, lengths, h0, bias):
    T, B, I, H = 5, 6, 3, 4
    args = _problem(T, B, I, H, lengths=lengths, h0=h0, bias=bias, seed=4)
    dout, dh_n = _upstream(T, B, H, "dout_and_dh_n", seed=5)
    assert_matches_torch(run_engine(engine, args, nonlinearity, dout, dh_n),
                         torch_manual_rnn(args, nonlinearity, dout, dh_n))


def test_hand_written_torch_recurrence_matches_torch_nn_rnn():
    # The sigmoid checks rest on torch_manual_rnn: hold it to torch.nn.RNN.
    T, B, I, H = 5, 4, 3, 6
    args = _problem(T, B, I, H, lengths="random", seed=6)
    dout, dh_n = _upstream(T, B, H, "dout_and_dh_n", seed=7)
    manual = torch_manual_rnn(args, "tanh", dout, dh_n)
    builtin = torch_nn_rnn(args, "tanh", dout, dh_n)
    assert_rel_close(manual[0], builtin[0], tol=TORCH_TOL, name="out")
    assert_rel_close(manual[1], builtin[1], tol=TORCH_TOL, name="h_n")
    for name in GRAD_FIELDS:
        assert_rel_close(manual[2][name], builtin[2][name], tol=TORCH_TOL, name=name)


@pytest.mark.parametrize("backward_engine", ["reference", "c_engine"])
@pytest.mark.parametrize("forward_engine", ["reference", "c_engine"])
def test_backward_accepts_a_cache_from_either_engine(forward_engine, backward_engine):
    forward = importlib.import_module(ENGINE_MODULES[forward_engine])
    backward = importlib.import_module(ENGINE_MODULES[backward_engine])
    T, B, I, H = 6, 5, 4, 7
    args = _problem(T, B, I, H, lengths="random", seed=8)
    dout, dh_n = _upstream(T, B, H, "dout_and_dh_n", seed=9)
    out, h_n, cache = forward.rnn_forward(**args, nonlinearity="tanh")
    grads = backward.rnn_backward(dout, dh_n, cache)
    assert_matches_torch((out, h_n, grads), torch_nn_rnn(args, "tanh", dout, dh_n))


# --------------------------------------------------------------------------
# Clipping
# --------------------------------------------------------------------------

GRAD_SHAPES = [(3, 4), (7,), (2, 3, 5), (1,), (6, 6)]
NORM_TYPES = [1.0, 2.0, 3.5, math.inf]


def _grad_arrays(dtype, seed=20):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape) * (i + 1)).astype(dtype)
            for i, shape in enumerate(GRAD_SHAPES)]


def _torch_params(arrays):
    params = []
    for a in arrays:
        p = torch.nn.Parameter(torch.zeros(a.shape, dtype=TORCH_DTYPE[a.dtype.type]))
        p.grad = torch.tensor(a)
        params.append(p)
    return params


def _torch_clip_grad_norm(arrays, max_norm, norm_type, error_if_nonfinite=False):
    """(total norm, clipped copies of arrays) from torch.nn.utils.clip_grad_norm_."""
    params = _torch_params(arrays)
    total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type,
                                           error_if_nonfinite=error_if_nonfinite)
    return float(total), [p.grad.numpy() for p in params]


def _torch_total_norm(arrays, norm_type):
    flat = torch.cat([torch.tensor(a, dtype=torch.float64).reshape(-1) for a in arrays])
    return float(torch.linalg.vector_norm(flat, norm_type))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_norm_factor", [0.3, 2.0], ids=["clipped", "unclipped"])
@pytest.mark.parametrize("norm_type", NORM_TYPES, ids=lambda p: f"p{p}")
def test_clip_grad_norm_matches_torch(engine, norm_type, max_norm_factor, dtype):
    arrays = _grad_arrays(dtype)
    originals = [a.copy() for a in arrays]
    max_norm = max_norm_factor * _torch_total_norm(arrays, norm_type)
    expected_total, expected = _torch_clip_grad_norm(originals, max_norm, norm_type)

    total = engine.clip_grad_norm(arrays, max_norm, norm_type)

    assert isinstance(total, float)
    assert_rel_close(total, expected_total, dtype=dtype, name="total norm")
    for i, (a, e) in enumerate(zip(arrays, expected)):
        assert a.dtype == dtype
        assert_rel_close(a, e, dtype=dtype, name=f"arrays[{i}]")
    if max_norm_factor > 1:
        for a, original in zip(arrays, originals):
            assert np.array_equal(a, original), "arrays under max_norm must be left as they are"


@pytest.mark.parametrize("form", ["list", "tuple", "generator", "dict", "single_array"])
def test_clip_grad_norm_accepts_every_container(engine, form):
    arrays = _grad_arrays(np.float64, seed=21)
    if form == "single_array":
        arrays = arrays[:1]
    max_norm = 0.5 * _torch_total_norm(arrays, 2.0)
    expected_total, expected = _torch_clip_grad_norm([a.copy() for a in arrays], max_norm, 2.0)

    container = {
        "list": lambda: list(arrays),
        "tuple": lambda: tuple(arrays),
        "generator": lambda: (a for a in arrays),
        "dict": lambda: {f"grad{i}": a for i, a in enumerate(arrays)},
        "single_array": lambda: arrays[0],
    }[form]()
    total = engine.clip_grad_norm(container, max_norm)

    assert_rel_close(total, expected_total, dtype=np.float64, name="total norm")
    for i, (a, e) in enumerate(zip(arrays, expected)):
        assert_rel_close(a, e, dtype=np.float64, name=f"arrays[{i}]")


def test_clip_grad_norm_accepts_the_string_inf(engine):
    arrays = _grad_arrays(np.float64, seed=22)
    max_norm = 0.5 * _torch_total_norm(arrays, math.inf)
    expected_total, expected = _torch_clip_grad_norm([a.copy() for a in arrays], max_norm, "inf")
    total = engine.clip_grad_norm(arrays, max_norm, "inf")
    assert_rel_close(total, expected_total, dtype=np.float64, name="total norm")
    for i, (a, e) in enumerate(zip(arrays, expected)):
        assert_rel_close(a, e, dtype=np.float64, name=f"arrays[{i}]")


def test_clip_grad_norm_of_nothing_is_zero(engine):
    expected = float(torch.nn.utils.clip_grad_norm_([], 1.0))
    total = engine.clip_grad_norm([], 1.0)
    assert isinstance(total, float)
    assert total == expected == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("norm_type", [2.0, math.inf], ids=lambda p: f"p{p}")
def test_clip_grad_norm_nonfinite_matches_torch(engine, norm_type, bad, dtype):
    arrays = _grad_arrays(dtype, seed=23)
    arrays[2][1, 0, 3] = bad
    expected_total, expected = _torch_clip_grad_norm([a.copy() for a in arrays], 1.0, norm_type)

    total = engine.clip_grad_norm(arrays, 1.0, norm_type)

    assert (math.isnan(total) and math.isnan(expected_total)) or total == expected_total
    for a, e in zip(arrays, expected):
        # NaN where torch has NaN, zeros where torch scaled by zero.
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [math.nan, -math.inf], ids=["nan", "-inf"])
def test_clip_grad_norm_error_if_nonfinite(engine, bad, dtype):
    arrays = _grad_arrays(dtype, seed=24)
    arrays[0][2, 1] = bad
    originals = [a.copy() for a in arrays]
    with pytest.raises(RuntimeError):
        _torch_clip_grad_norm([a.copy() for a in arrays], 1.0, 2.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match=r"(?i)finite"):
        engine.clip_grad_norm(arrays, 1.0, 2.0, error_if_nonfinite=True)
    for a, original in zip(arrays, originals):
        np.testing.assert_array_equal(a, original)  # nothing modified before raising


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("clip_value", [0.0, 0.1, 0.75, 5.0])
def test_clip_grad_value_matches_torch(engine, clip_value, dtype):
    arrays = _grad_arrays(dtype, seed=25)
    arrays[1][3] = math.nan
    arrays[3][0] = math.inf
    arrays[4][2, 5] = -math.inf
    params = _torch_params([a.copy() for a in arrays])
    torch.nn.utils.clip_grad_value_(params, clip_value)

    assert engine.clip_grad_value(arrays, clip_value) is None

    for a, p in zip(arrays, params):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, p.grad.numpy())  # NaN stays NaN
    assert math.isnan(arrays[1][3])


def test_clip_grad_value_accepts_a_dict(engine):
    arrays = _grad_arrays(np.float64, seed=26)
    params = _torch_params([a.copy() for a in arrays])
    torch.nn.utils.clip_grad_value_(params, 0.5)
    engine.clip_grad_value({f"grad{i}": a for i, a in enumerate(arrays)}, 0.5)
    for a, p in zip(arrays, params):
        np.testing.assert_array_equal(a, p.grad.numpy())
