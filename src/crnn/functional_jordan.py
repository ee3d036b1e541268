"""The C engine's Jordan network: validate once, then call the kernels.

Same names, signatures and semantics as `crnn.reference.jordan_forward` /
`jordan_backward` (the NumPy specification, whose argument checks are shared
here). The kernels (csrc/jordan.inc) are built like the RNN's: vectorised,
batch-parallel over OpenMP threads, GIL released.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from . import _core
from ._types import JordanCache, JordanGrads
from .reference import _jordan_args


def jordan_forward(
    x: Any,
    y0: Optional[Any],
    weight_ih: Any,
    weight_hy: Any,
    weight_ho: Any,
    bias_ih: Optional[Any] = None,
    bias_hh: Optional[Any] = None,
    bias_ho: Optional[Any] = None,
    *,
    nonlinearity: str = "tanh",
    output_nonlinearity: str = "identity",
    lengths: Optional[Any] = None,
) -> Tuple[np.ndarray, np.ndarray, JordanCache]:
    """A Jordan network over a time-major batch (C engine); see
    `crnn.reference.jordan_forward`. Returns out (T, B, O), y_n (B, O) and a
    JordanCache for `jordan_backward`."""
    (x, y0, w_ih, w_hy, w_ho, b_ih, b_hh, b_ho, f, g,
     lengths) = _jordan_args(x, y0, weight_ih, weight_hy, weight_ho, bias_ih, bias_hh, bias_ho,
                             nonlinearity, output_nonlinearity, lengths)
    T, B, _ = x.shape
    O, H = w_ho.shape
    out = np.empty((T, B, O), x.dtype)
    y_n = np.empty((B, O), x.dtype)
    hidden = np.empty((T, B, H), x.dtype)
    _core.jordan_forward(x, y0, w_ih, w_hy, w_ho, b_ih, b_hh, b_ho, lengths, f, g, out, y_n,
                         hidden)
    cache = JordanCache(x, y0, w_ih, w_hy, w_ho, b_ih, b_hh, b_ho, lengths, f, g, hidden, out)
    return out, y_n, cache


def jordan_backward(dout: Optional[Any], dy_n: Optional[Any], cache: JordanCache) -> JordanGrads:
    """BPTT for `jordan_forward` (C engine); see `crnn.reference.jordan_backward`."""
    if not isinstance(cache, JordanCache):
        raise TypeError(f"cache must be the JordanCache of jordan_forward, got {type(cache).__name__}")
    c = cache
    T, B, I = c.x.shape
    O, H = c.weight_ho.shape
    dt = c.x.dtype

    def grad_arr(name, g, shape):
        if g is None:
            return None
        g = np.asarray(g)
        if g.dtype != dt or g.shape != shape:
            raise ValueError(f"{name} must be a {dt} array of shape {shape}, got {g.dtype} {g.shape}")
        return np.ascontiguousarray(g)

    dout = grad_arr("dout", dout, (T, B, O))
    dy_n = grad_arr("dy_n", dy_n, (B, O))
    dx = np.empty((T, B, I), dt)
    dy0 = np.empty((B, O), dt)
    dw_ih, dw_hy, dw_ho = (np.empty_like(c.weight_ih), np.empty_like(c.weight_hy),
                           np.empty_like(c.weight_ho))
    has_bias = c.bias_ih is not None or c.bias_hh is not None
    db = np.empty(H, dt) if has_bias else None
    db_ho = np.empty(O, dt) if c.bias_ho is not None else None
    _core.jordan_backward(c.x, c.y0, c.weight_ih, c.weight_hy, c.weight_ho, c.lengths,
                          c.nonlinearity, c.output_nonlinearity, c.out, c.hidden, dout, dy_n,
                          dx, dy0, dw_ih, dw_hy, dw_ho, db, db_ho)
    return JordanGrads(dx, dy0, dw_ih, dw_hy, dw_ho,
                       None if c.bias_ih is None else db,
                       None if c.bias_hh is None else (db.copy() if c.bias_ih is not None else db),
                       db_ho)
