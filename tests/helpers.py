"""Shared test utilities: tolerances, random problems, torch availability."""
from __future__ import annotations

import importlib.util

import numpy as np

# The numerical contract (DESIGN.md): C vs reference.
REL_TOL = {np.float32: 1e-5, np.float64: 1e-12}

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def rel_error(actual, desired) -> float:
    """max |actual - desired| / max |desired| (0 when both are empty or zero)."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    if actual.size == 0:
        return 0.0
    scale = float(np.max(np.abs(desired)))
    diff = float(np.max(np.abs(actual - desired)))
    if scale == 0.0:
        return diff
    return diff / scale


def assert_rel_close(actual, desired, dtype=None, tol=None, name="array"):
    """Assert the array-wise relative error is within the contract for dtype."""
    if tol is None:
        dt = np.dtype(dtype if dtype is not None else np.asarray(desired).dtype).type
        tol = REL_TOL[dt]
    err = rel_error(actual, desired)
    assert err <= tol, f"{name}: relative error {err:.3e} > {tol:.1e}"


def make_rnn_problem(T, B, I, H, dtype=np.float64, *, seed=0, h0=True, bias=True,
                     lengths=None):
    """Random inputs and PyTorch-style U(-1/sqrt(H), 1/sqrt(H)) weights.

    lengths: None, "random" (values in [1, T]) or "zeros" (random, with zeros).
    Returns a dict of keyword arguments for rnn_forward.
    """
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(max(H, 1))

    def u(*shape):
        return rng.uniform(-k, k, size=shape).astype(dtype)

    args = dict(
        x=rng.standard_normal((T, B, I)).astype(dtype),
        h0=rng.standard_normal((B, H)).astype(dtype) * 0.5 if h0 else None,
        weight_ih=u(H, I),
        weight_hh=u(H, H),
        bias_ih=u(H) if bias else None,
        bias_hh=u(H) if bias else None,
    )
    if isinstance(lengths, str) and lengths == "random":
        args["lengths"] = rng.integers(min(1, T), T + 1, size=B)
    elif isinstance(lengths, str) and lengths == "zeros":
        lens = rng.integers(0, T + 1, size=B)
        lens[:: 2] = 0
        args["lengths"] = lens
    elif lengths is not None:
        args["lengths"] = np.asarray(lengths)
    return args
