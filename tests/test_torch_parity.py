"""Parity with PyTorch beyond the cells (skipped when torch is not installed):
clipping against `torch.nn.utils.clip_grad_norm_` and `clip_grad_value_`,
for both engines (`crnn.reference`, id "reference", and the C engine,
id "c_engine"), and `crnn.Linear` against `torch.nn.Linear`.

The cells (functional API, layers, one-step cells) are held to PyTorch in
test_cells_torch.py, which iterates the cell registry.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import crnn  # noqa: E402
from helpers import assert_rel_close  # noqa: E402

# The tolerance for float64 results against torch (both sides sum in their
# own order, so bitwise equality is not expected).
TORCH_TOL = 1e-10
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
ENGINE_MODULES = {"reference": "crnn.reference", "c_engine": "crnn"}


@pytest.fixture(params=sorted(ENGINE_MODULES))
def engine(request):
    """The module holding rnn_forward, rnn_backward and the clipping functions."""
    return importlib.import_module(ENGINE_MODULES[request.param])


# --------------------------------------------------------------------------
# Clipping
# --------------------------------------------------------------------------

GRAD_SHAPES = [(3, 4), (7,), (2, 3, 5), (1,), (6, 6)]
NORM_TYPES = [1.0, 2.0, 3.5, math.inf]


def _grad_arrays(dtype, seed=20):
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal(shape) * (i + 1)).astype(dtype) for i, shape in enumerate(GRAD_SHAPES)
    ]


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
    total = torch.nn.utils.clip_grad_norm_(
        params, max_norm, norm_type=norm_type, error_if_nonfinite=error_if_nonfinite
    )
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


# --------------------------------------------------------------------------
# crnn.Linear
# --------------------------------------------------------------------------
I, H = 4, 3


@pytest.mark.parametrize("shape", [(I,), (5, I), (3, 5, I)], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_parity(shape, bias):
    """One backend: Linear runs the same NumPy products for both."""
    torch.manual_seed(5)
    t_lin = torch.nn.Linear(I, H, bias=bias, dtype=torch.float64)
    lin = crnn.Linear(I, H, bias=bias, dtype=np.float64)
    lin.load_state_dict(t_lin.state_dict())
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(shape[:-1] + (H,))
    xt = torch.tensor(x, requires_grad=True)
    yt = t_lin(xt)
    (yt * torch.from_numpy(dy)).sum().backward()
    y = lin(x)
    dx = lin.backward(dy)
    theirs = {
        "y": yt.detach().numpy(),
        "dx": xt.grad.numpy(),
        **{"grad." + k: p.grad.numpy() for k, p in t_lin.named_parameters()},
    }
    mine = {"y": y, "dx": dx, **{"grad." + k: g for k, g in lin.grads.items()}}
    assert mine.keys() == theirs.keys()
    for k in theirs:
        assert mine[k].shape == theirs[k].shape, k
        assert_rel_close(mine[k], theirs[k], tol=TORCH_TOL, name=k)


def test_linear_default_init_matches_torch_bounds():
    """Same distribution as torch's default (bounds; values differ by generator)."""
    torch.manual_seed(6)
    ours, theirs = crnn.Linear(32, 4, seed=0), torch.nn.Linear(32, 4)
    sd = theirs.state_dict()
    assert list(ours.params) == list(sd)
    for k, v in sd.items():
        limit = 1 / np.sqrt(32)
        assert float(v.abs().max()) <= limit + 1e-7
        assert float(np.abs(ours.params[k]).max()) <= limit + 1e-7
        assert tuple(v.shape) == ours.params[k].shape
