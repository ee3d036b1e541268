"""Loss functions that return the loss and its gradient in one call.

Each loss returns ``(loss, grad)``, where ``grad`` is the gradient of the
returned loss with respect to the loss's first argument (the logits or the
predictions), with that argument's shape and dtype. The gradient feeds
straight into ``rnn_backward`` (as ``dout``) or a layer's backward pass.

All arithmetic stays in the input's dtype (float32 or float64); only the
final scalar of the "mean" and "sum" reductions is accumulated in float64 and
returned as a Python float. Inputs are never modified. Every argument is
checked before any work, and errors (TypeError / ValueError) name the
argument.

Masks
-----
``mask`` selects the positions that count: True (or 1) counts, False (or 0)
is masked out. A masked-out position contributes exactly 0 to the loss and
gets exactly 0 gradient, even if its inputs are NaN or infinite. "mean"
divides by the number of positions that count; when none counts, the loss is
0.0 and the gradient is all zeros (PyTorch would return NaN).

Reductions
----------
"mean" and "sum" return a Python float. "none" returns the per-position
losses as an array (0 at masked-out positions); its gradient is that of the
*sum* of those losses, i.e. what a caller that sums them needs.

Non-finite values in positions that count propagate: a NaN or infinite
logit or prediction gives a NaN or infinite loss and gradient.
"""

from __future__ import annotations

import numbers
import operator
from typing import Any, Optional, Tuple, Union

import numpy as np

from ._validate import _common_float_dtype, _float_dtype_of, _real_number, as_array

__all__ = ["softmax_cross_entropy", "mse", "softmax", "log_softmax"]

ArrayLike = Any
Loss = Union[float, np.ndarray]

REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------


def _float_input(name: str, value: Any) -> np.ndarray:
    """`value` as a native float32/float64 array (the same array if it is one)."""
    dtype = _float_dtype_of(name, value)
    return np.asarray(value, dtype=dtype)


def _check_reduction(reduction: Any) -> str:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def _check_axis(axis: Any, ndim: int) -> int:
    if isinstance(axis, bool):
        raise TypeError(f"axis must be an integer, got {type(axis).__name__}")
    try:
        ax = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an integer, got {type(axis).__name__}") from None
    if not -ndim <= ax < ndim:
        raise ValueError(f"axis {axis} is out of bounds for an array of dimension {ndim}")
    return ax % ndim


def _check_mask(mask: Any, shape: Tuple[int, ...], shape_name: str) -> Optional[np.ndarray]:
    """None, or a boolean array of exactly `shape` (possibly a broadcast view)."""
    if mask is None:
        return None
    arr = as_array("mask", mask)
    if arr.dtype.kind == "b":
        pass
    elif arr.dtype.kind in "iuf":
        if arr.size and not np.all((arr == 0) | (arr == 1)):
            raise ValueError(
                "mask must be boolean or contain only 0 and 1 (it selects positions; "
                "it is not a weight)"
            )
        arr = arr != 0
    else:
        raise TypeError(f"mask must be a boolean or 0/1 array, got dtype {arr.dtype}")
    try:
        return np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(
            f"mask of shape {arr.shape} cannot be broadcast to {shape_name} {shape}"
        ) from None


def _reduce(
    loss: np.ndarray, grad: np.ndarray, count: int, reduction: str
) -> Tuple[Loss, np.ndarray]:
    """Apply the reduction to per-position losses and their (unscaled) gradient."""
    if reduction == "none":
        return loss, grad
    total = float(loss.sum(dtype=np.float64))
    if reduction == "sum":
        return total, grad
    if count == 0:
        grad[...] = 0  # nothing counts: 0.0 and a zero gradient, as documented
        return 0.0, grad
    grad *= 1.0 / count
    return total / count, grad


# --------------------------------------------------------------------------
# softmax / log_softmax
# --------------------------------------------------------------------------


def softmax(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """Softmax along `axis`, computed stably (the maximum is subtracted first).

    Parameters
    ----------
    x : array_like of float32 or float64, at least one dimension
    axis : int
        The axis to normalise over.

    Returns
    -------
    ndarray
        Same shape and dtype as `x`; entries along `axis` sum to 1. A row
        containing NaN or +inf, or only -inf, gives NaN.
    """
    arr = _float_input("x", x)
    if arr.ndim == 0:
        raise ValueError("x must have at least one dimension")
    ax = _check_axis(axis, arr.ndim)
    if arr.shape[ax] == 0:
        return np.empty(arr.shape, dtype=arr.dtype)
    with np.errstate(invalid="ignore"):
        e = arr - arr.max(axis=ax, keepdims=True)
        np.exp(e, out=e)
        e /= e.sum(axis=ax, keepdims=True)
    return e


def log_softmax(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """log(softmax(x)) along `axis`, computed stably (log-sum-exp).

    Parameters
    ----------
    x : array_like of float32 or float64, at least one dimension
    axis : int
        The axis to normalise over.

    Returns
    -------
    ndarray
        Same shape and dtype as `x`. Finite for any finite input, however
        large (x - max(x) - log(sum(exp(x - max(x))))).
    """
    arr = _float_input("x", x)
    if arr.ndim == 0:
        raise ValueError("x must have at least one dimension")
    ax = _check_axis(axis, arr.ndim)
    if arr.shape[ax] == 0:
        return np.empty(arr.shape, dtype=arr.dtype)
    with np.errstate(invalid="ignore"):
        shifted = arr - arr.max(axis=ax, keepdims=True)
        lse = np.log(np.exp(shifted).sum(axis=ax, keepdims=True))
        shifted -= lse
    return shifted


# --------------------------------------------------------------------------
# Cross-entropy
# --------------------------------------------------------------------------


def softmax_cross_entropy(
    logits: ArrayLike,
    targets: ArrayLike,
    mask: Optional[ArrayLike] = None,
    reduction: str = "mean",
    *,
    ignore_index: Optional[int] = None,
    label_smoothing: float = 0.0,
) -> Tuple[Loss, np.ndarray]:
    """Softmax cross-entropy of class-index targets, and its gradient.

    For each position i (every index of ``logits.shape[:-1]``) with target
    class t and C classes::

        loss_i = (1 - s) * (-log p_i[t]) + (s / C) * sum_c (-log p_i[c])
        grad_i = p_i - (1 - s) * onehot(t) - s / C,   p_i = softmax(logits_i)

    with s = `label_smoothing`; this is ``torch.nn.functional.cross_entropy``
    with the classes on the last axis. log p is computed by log-sum-exp, so
    any finite logits (even of size 1e4 or more) give finite results.

    Parameters
    ----------
    logits : array_like, float32 or float64, shape (..., C), C >= 1
    targets : array_like of integers, shape ``logits.shape[:-1]``
        Class indices. They must lie in [0, C) at every position that counts;
        positions that are masked out or equal `ignore_index` are not read.
    mask : array_like of bool or 0/1, optional
        Broadcastable to ``logits.shape[:-1]``; False / 0 masks a position out
        (0 loss, 0 gradient). None counts every position.
    reduction : {"mean", "sum", "none"}
        "mean": sum over the positions that count divided by their number
        (0.0 and a zero gradient when none counts); "sum"; "none": the
        per-position losses (0 where masked), with the gradient of their sum.
    ignore_index : int, optional
        Positions whose target equals it are masked out, like PyTorch's
        ``ignore_index`` (which defaults to -100 there; here to None).
    label_smoothing : float in [0, 1]
        As in PyTorch: the target distribution is
        ``(1 - s) * onehot(t) + s / C``.

    Returns
    -------
    loss : float for "mean" and "sum", ndarray of shape ``logits.shape[:-1]``
        and the logits' dtype for "none".
    grad : ndarray
        d loss / d logits, the shape and dtype of `logits`.

    Raises
    ------
    TypeError
        If logits are not float32/float64, targets are not integers, the mask
        is not boolean/numeric, or ignore_index is not an integer.
    ValueError
        On shapes, a target out of range, a mask value other than 0/1, an
        unknown reduction, or label_smoothing outside [0, 1].
    """
    x = _float_input("logits", logits)
    if x.ndim == 0:
        raise ValueError(
            "logits must have shape (..., C) with at least one dimension, got a scalar"
        )
    C = x.shape[-1]
    if C == 0:
        raise ValueError(f"logits must have at least one class (last axis), got shape {x.shape}")
    pos_shape = x.shape[:-1]

    if targets is None or isinstance(targets, (str, bytes)):
        raise TypeError(
            f"targets must be an integer array of class indices, got {type(targets).__name__}"
        )
    t = as_array("targets", targets)
    if t.dtype.kind not in "iu":
        raise TypeError(f"targets must be integer class indices, got dtype {t.dtype}")
    if t.shape != pos_shape:
        raise ValueError(f"targets must have shape logits.shape[:-1] = {pos_shape}, got {t.shape}")
    reduction = _check_reduction(reduction)
    m = _check_mask(mask, pos_shape, "logits.shape[:-1]")
    if ignore_index is not None:
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
            raise TypeError(
                f"ignore_index must be an integer or None, got {type(ignore_index).__name__}"
            )
        ignore_index = int(ignore_index)
    s = _real_number("label_smoothing", label_smoothing)
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing!r}")

    # Positions that count, flattened.
    N = int(np.prod(pos_shape, dtype=np.int64))
    t_flat = t.reshape(N)
    valid = np.ones(N, dtype=bool) if m is None else m.reshape(N).copy()
    if ignore_index is not None:
        valid &= t_flat != ignore_index
    t_valid = t_flat[valid]
    if t_valid.size:
        lo, hi = t_valid.min(), t_valid.max()
        if lo < 0 or hi >= C:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"targets must lie in [0, C) = [0, {C}) at every position that counts, got {bad}"
            )
    count = int(t_valid.size)
    rows = np.arange(N)
    t_safe = np.where(valid, t_flat, 0).astype(np.intp, copy=False)

    x2 = x.reshape(N, C)
    with np.errstate(invalid="ignore", over="ignore"):
        shifted = x2 - x2.max(axis=1, keepdims=True)  # new array, <= 0
        e = np.exp(shifted)
        sum_e = e.sum(axis=1, keepdims=True)
        lse = np.log(sum_e)[:, 0]  # log sum exp(shifted)
        loss = lse - shifted[rows, t_safe]  # -log p[t]
        grad = e
        grad /= sum_e  # p
        grad[rows, t_safe] -= 1.0 - s
        if s != 0.0:
            # sum_c -log p[c] = C * lse - sum_c shifted[c]
            smooth = C * lse - shifted.sum(axis=1)
            loss *= 1.0 - s
            loss += (s / C) * smooth
            grad -= s / C
    loss[~valid] = 0
    grad[~valid] = 0
    if reduction == "none":
        return loss.reshape(pos_shape), grad.reshape(x.shape)
    total, grad = _reduce(loss, grad, count, reduction)
    return total, grad.reshape(x.shape)


# --------------------------------------------------------------------------
# Mean squared error
# --------------------------------------------------------------------------


def mse(
    pred: ArrayLike,
    target: ArrayLike,
    mask: Optional[ArrayLike] = None,
    reduction: str = "mean",
) -> Tuple[Loss, np.ndarray]:
    """Squared error ``(pred - target) ** 2`` and its gradient w.r.t. `pred`.

    Matches ``torch.nn.functional.mse_loss`` (mean over all elements) when
    there is no mask.

    Parameters
    ----------
    pred, target : array_like, float32 or float64, same shape and same dtype
    mask : array_like of bool or 0/1, optional
        Broadcastable to ``pred.shape``; False / 0 masks an element out
        (0 loss, 0 gradient). None counts every element.
    reduction : {"mean", "sum", "none"}
        "mean": sum over the elements that count divided by their number
        (after broadcasting the mask; 0.0 and a zero gradient when none
        counts); "sum"; "none": the element-wise losses (0 where masked), with
        the gradient of their sum.

    Returns
    -------
    loss : float for "mean" and "sum", ndarray of ``pred``'s shape and dtype
        for "none".
    grad : ndarray
        d loss / d pred, the shape and dtype of `pred`.

    Raises
    ------
    TypeError
        If pred or target are not float32/float64 or their dtypes differ, or
        the mask is not boolean/numeric.
    ValueError
        On shapes, a mask value other than 0/1, or an unknown reduction.
    """
    _float_dtype_of("pred", pred)
    _float_dtype_of("target", target)
    dtype = _common_float_dtype([("pred", pred), ("target", target)])
    p = np.asarray(pred, dtype=dtype)
    y = np.asarray(target, dtype=dtype)
    if p.shape != y.shape:
        raise ValueError(f"target must have the shape of pred {p.shape}, got {y.shape}")
    reduction = _check_reduction(reduction)
    m = _check_mask(mask, p.shape, "pred's shape")

    diff = p.copy()  # new array, also for 0-d inputs
    diff -= y
    loss = diff * diff
    grad = diff
    grad *= 2.0
    if m is None:
        count = p.size
    else:
        count = int(np.count_nonzero(m))
        off = ~m
        loss[off] = 0
        grad[off] = 0
    return _reduce(loss, grad, count, reduction)
