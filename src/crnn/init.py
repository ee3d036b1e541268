"""Parameter initialisers, drawing from a caller-supplied np.random.Generator.

The layers accept ``init="pytorch" | "orthogonal" | "glorot"``:

- ``"pytorch"`` (default): every parameter U(-1/sqrt(H), 1/sqrt(H)), as
  ``torch.nn.RNN`` / ``RNNCell`` (for `crnn.Linear`: U(-1/sqrt(in),
  1/sqrt(in)), ``torch.nn.Linear``'s kaiming-uniform with a = sqrt(5));
- ``"orthogonal"``: orthogonal recurrent weights (``weight_hh``), PyTorch's
  uniform input weights, zero biases (`crnn.Linear`: orthogonal weight);
- ``"glorot"``: Glorot (Xavier) uniform weights, zero biases.

Arrays are drawn in float64 and cast to the requested dtype, so a float32
and a float64 layer built with the same seed hold the same values (up to
rounding).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

__all__ = ["INITS", "uniform_", "pytorch_default", "orthogonal", "glorot_uniform", "check_init"]

INITS = ("pytorch", "orthogonal", "glorot")


def check_init(init: Any) -> str:
    """`init` if it names an initialisation scheme, else ValueError."""
    if not isinstance(init, str) or init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return init


def _check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )
    return rng


def uniform_(arr: np.ndarray, bound: float, rng: np.random.Generator) -> np.ndarray:
    """Fill `arr` in place with U(-bound, bound) draws; returns `arr`.

    Parameters
    ----------
    arr : ndarray
        The array to fill (any float dtype, writeable).
    bound : float
        Half-width of the interval (>= 0).
    rng : numpy.random.Generator
        The source of randomness.
    """
    _check_rng(rng)
    bound = float(bound)
    if not bound >= 0.0:
        raise ValueError(f"bound must be >= 0, got {bound}")
    arr[...] = rng.uniform(-bound, bound, size=arr.shape)
    return arr


def pytorch_default(
    shape: Sequence[int], hidden_size: int, rng: np.random.Generator, dtype: Any = np.float32
) -> np.ndarray:
    """A new array of U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) draws.

    PyTorch's default for every parameter of ``nn.RNN`` / ``nn.RNNCell``;
    with ``hidden_size = in_features`` it is ``nn.Linear``'s default too.
    A `hidden_size` of 0 gives zeros (as PyTorch does).

    Parameters
    ----------
    shape : tuple of int
    hidden_size : int
        The fan that sets the bound (H for recurrent layers).
    rng : numpy.random.Generator
    dtype : float32 or float64

    Returns
    -------
    ndarray of `shape` and `dtype`.
    """
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    return uniform_(np.empty(tuple(shape), dtype=dtype), bound, rng)


def orthogonal(
    shape: Sequence[int], rng: np.random.Generator, gain: float = 1.0, dtype: Any = np.float32
) -> np.ndarray:
    """A new (semi-)orthogonal matrix, as ``torch.nn.init.orthogonal_``.

    The QR decomposition of a standard-normal matrix, with the signs of R's
    diagonal moved into Q so the result is uniformly distributed. Rows are
    orthonormal when ``rows <= cols``, columns otherwise; then scaled by
    `gain`. Dimensions after the first are flattened.

    Parameters
    ----------
    shape : tuple of int, at least 2 dimensions
    rng : numpy.random.Generator
    gain : float
    dtype : float32 or float64
    """
    _check_rng(rng)
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"orthogonal init needs at least 2 dimensions, got shape {shape}")
    rows = shape[0]
    cols = int(np.prod(shape[1:]))
    if rows == 0 or cols == 0:
        return np.zeros(shape, dtype=dtype)
    flat = rng.standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.where(np.diag(r) >= 0, 1.0, -1.0)
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).astype(dtype)


def glorot_uniform(
    shape: Sequence[int], rng: np.random.Generator, dtype: Any = np.float32
) -> np.ndarray:
    """A new array of Glorot (Xavier) uniform draws, as ``torch.nn.init.xavier_uniform_``.

    U(-a, a) with ``a = sqrt(6 / (fan_in + fan_out))``, ``fan_in =
    shape[1] * receptive``, ``fan_out = shape[0] * receptive`` (receptive =
    product of the dimensions after the second).

    Parameters
    ----------
    shape : tuple of int, at least 2 dimensions
    rng : numpy.random.Generator
    dtype : float32 or float64
    """
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"Glorot init needs at least 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    fans = (shape[0] + shape[1]) * receptive
    bound = math.sqrt(6.0 / fans) if fans > 0 else 0.0
    return uniform_(np.empty(shape, dtype=dtype), bound, rng)
