"""The C engine's functional API: validate once, then call the kernels.

Same names, signatures and semantics as `crnn.reference` (the NumPy
specification). Every check happens in `crnn._validate` before any C code
runs; `crnn._core` only passes pointers and releases the GIL.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, List, Optional, Tuple, Union

import numpy as np

from . import _core
from ._types import RNNCache, RNNGrads
from ._validate import (
    check_clip_value,
    check_max_norm,
    check_norm_type,
    clip_targets,
    rnn_backward_args,
    rnn_forward_args,
)

ArrayLike = Any
Arrays = Union[np.ndarray, Iterable[np.ndarray]]


def rnn_forward(
    x: ArrayLike,
    h0: Optional[ArrayLike],
    weight_ih: ArrayLike,
    weight_hh: ArrayLike,
    bias_ih: Optional[ArrayLike] = None,
    bias_hh: Optional[ArrayLike] = None,
    *,
    nonlinearity: str = "tanh",
    lengths: Optional[ArrayLike] = None,
) -> Tuple[np.ndarray, np.ndarray, RNNCache]:
    """Run an Elman RNN over a time-major batch (C engine).

    h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), PyTorch's layout.

    Parameters
    ----------
    x : (T, B, I) float32 or float64
    h0 : (B, H) or None for a zero initial state
    weight_ih : (H, I)
    weight_hh : (H, H)
    bias_ih, bias_hh : (H,) or None
    nonlinearity : "tanh", "relu" or "sigmoid"
    lengths : None, or B integers in [0, T] in any order. For t >= lengths[b]
        the output is 0 and the state is held, so h_n[b] is the state after
        the row's last valid step (h0[b] when the length is 0).

    Returns
    -------
    out : (T, B, H)
    h_n : (B, H)
    cache : RNNCache for `rnn_backward` (references to the normalised inputs
        and to `out`; do not modify `out` in place before the backward).

    All floating inputs must share one dtype; the outputs have it too.
    NaN and Inf in the inputs propagate to the outputs (never filtered),
    within the batch rows they reach; inputs at padded steps are never read.
    Saturating tanh / sigmoid give +-1 / 0 / 1, never NaN. Thread-safe: any
    number of Python threads may call it at once (the GIL is released).
    """
    a = rnn_forward_args(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, lengths)
    out = np.empty((a.T, a.B, a.H), dtype=a.dtype)
    h_n = np.empty((a.B, a.H), dtype=a.dtype)
    _core.rnn_forward(a.x, a.h0, a.weight_ih, a.weight_hh, a.bias_ih, a.bias_hh, a.lengths,
                      a.nonlinearity, out, h_n)
    cache = RNNCache(a.x, a.h0, a.weight_ih, a.weight_hh, a.bias_ih, a.bias_hh, a.lengths,
                     a.nonlinearity, out)
    return out, h_n, cache


def rnn_backward(dout: Optional[ArrayLike], dh_n: Optional[ArrayLike], cache: RNNCache) -> RNNGrads:
    """Backpropagation through time for `rnn_forward` (C engine).

    Parameters
    ----------
    dout : (T, B, H) gradient of the loss w.r.t. `out`, or None (zero).
        Entries at padded steps (t >= lengths[b]) are ignored.
    dh_n : (B, H) gradient w.r.t. `h_n`, or None (zero).
    cache : the RNNCache returned by either engine's rnn_forward.

    Returns
    -------
    RNNGrads(dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh); dh0 is
    returned also when h0 was None; a bias gradient is None when that bias
    was None.

    NaN and Inf in dout, dh_n or the cache propagate into the gradients
    (0 * Inf is NaN: an Inf input under a saturated unit gives NaN weight
    gradients); dout at padded steps is never read.
    """
    dout, dh_n, c = rnn_backward_args(dout, dh_n, cache)
    T, B, I = c.x.shape
    H = c.weight_ih.shape[0]
    dtype = c.x.dtype
    dx = np.empty((T, B, I), dtype=dtype)
    dh0 = np.empty((B, H), dtype=dtype)
    dw_ih = np.empty((H, I), dtype=dtype)
    dw_hh = np.empty((H, H), dtype=dtype)
    has_bias = c.bias_ih is not None or c.bias_hh is not None
    db = np.empty(H, dtype=dtype) if has_bias else None
    _core.rnn_backward(c.x, c.h0, c.weight_ih, c.weight_hh, c.lengths, c.nonlinearity, c.out,
                       dout, dh_n, dx, dh0, dw_ih, dw_hh, db)
    # Both biases enter the pre-activation the same way, so their gradients
    # are equal; each gets its own array so in-place updates cannot alias.
    dbias_ih = db if c.bias_ih is not None else None
    dbias_hh = None
    if c.bias_hh is not None:
        dbias_hh = db.copy() if dbias_ih is not None else db
    return RNNGrads(dx, dh0, dw_ih, dw_hh, dbias_ih, dbias_hh)


def _kernel_views(arrays: List[np.ndarray]) -> List[np.ndarray]:
    """Arrays the kernels can write: each one itself when it is C-contiguous
    and native, else a contiguous native copy (written back afterwards)."""
    return [a if a.flags.c_contiguous and a.dtype.isnative else np.ascontiguousarray(a, a.dtype.newbyteorder("="))
            for a in arrays]


def _write_back(originals: List[np.ndarray], views: List[np.ndarray]) -> None:
    for original, view in zip(originals, views):
        if view is not original:
            original[...] = view


def clip_grad_norm(arrays: Arrays, max_norm: float, norm_type: Union[float, str] = 2.0,
                   error_if_nonfinite: bool = False) -> float:
    """Scale arrays in place so their total norm is at most max_norm.

    PyTorch's clip_grad_norm_ semantics: the norm is taken over all arrays as
    if concatenated (norm_type > 0, or inf / 'inf' for the max-norm); every
    array is multiplied by min(1, max_norm / (total + 1e-6)). Returns the
    total norm before clipping as a Python float. A non-finite total raises
    RuntimeError when error_if_nonfinite is true (arrays untouched); otherwise
    the arrays are scaled by the resulting NaN or 0, as PyTorch does. The
    norm is accumulated in float64 without rescaling, so float64 values
    beyond about 1e154 overflow it to inf (float32 values never do): pass
    error_if_nonfinite=True to catch that rather than zeroing the arrays.

    `arrays` is one ndarray, an iterable of them, or a mapping whose values
    are ndarrays; all of one float dtype and writeable.
    """
    items = clip_targets(arrays)
    max_norm = check_max_norm(max_norm)
    p = check_norm_type(norm_type)
    if not items:
        return 0.0
    views = _kernel_views(items)
    total = float(_core.total_norm(views, p))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"the total norm of order {norm_type} of the arrays is non-finite ({total}), so it "
            "cannot be clipped; pass error_if_nonfinite=False to scale by it anyway"
        )
    coef = max_norm / (total + 1e-6)
    if not coef >= 1.0:  # also true for a NaN coefficient, as in PyTorch
        _core.scale(views, coef)
        _write_back(items, views)
    return total


def clip_grad_value(arrays: Arrays, clip_value: float) -> None:
    """Clamp arrays in place to [-clip_value, clip_value] (NaN stays NaN).

    `arrays` is one ndarray, an iterable of them, or a mapping whose values
    are ndarrays; all of one float dtype and writeable.
    """
    items = clip_targets(arrays)
    clip = check_clip_value(clip_value)
    if not items:
        return
    views = _kernel_views(items)
    _core.clip_value(views, clip)
    _write_back(items, views)
