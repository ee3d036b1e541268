"""Input checks shared by both engines, run once per public call.

Every public entry point (the C engine in `crnn.functional` and the NumPy
specification in `crnn.reference`) normalises its arguments here before doing
any work: one floating dtype (float32 or float64), C-contiguous, native byte
order, checked shapes. Errors name the argument and what was expected, and are
raised before any C code runs. Inputs are never modified: a conversion makes a
new array, and an array that is already in the right form is used as is.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, List, NamedTuple, Optional, Sequence

import numpy as np

from ._types import NONLINEARITIES, RNNCache

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class RNNArgs(NamedTuple):
    """Normalised arguments of rnn_forward."""

    x: np.ndarray
    h0: Optional[np.ndarray]
    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: Optional[np.ndarray]
    bias_hh: Optional[np.ndarray]
    lengths: Optional[np.ndarray]
    nonlinearity: str
    T: int
    B: int
    I: int  # noqa: E741 (PyTorch's name for the input size)
    H: int
    dtype: np.dtype


def as_array(name: str, value: Any) -> np.ndarray:
    """np.asarray(value), with errors that name the argument.

    Ragged nested sequences (which NumPy cannot make an array of) raise
    ValueError, and masked arrays TypeError: crnn would silently compute on
    the values under the mask.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"{name} is a numpy.ma.MaskedArray; crnn ignores masks, so pass "
                        f"{name}.filled(0) (or use lengths) instead")
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{name} cannot be converted to an array ({exc})") from None


def _float_dtype_of(name: str, value: Any) -> np.dtype:
    """The dtype `value` has as an array, which must be float32 or float64."""
    if value is None:
        raise TypeError(f"{name} must be a float32 or float64 array, got None")
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a float32 or float64 array, got {type(value).__name__}")
    dtype = as_array(name, value).dtype
    if dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {dtype}")
    return np.dtype(dtype.newbyteorder("="))


def _common_float_dtype(named: Sequence[tuple]) -> np.dtype:
    """The one float dtype shared by every given (name, value); None values skipped."""
    seen = [(name, _float_dtype_of(name, value)) for name, value in named if value is not None]
    first_name, dtype = seen[0]
    for name, other in seen[1:]:
        if other != dtype:
            raise TypeError(
                f"{name} has dtype {other} but {first_name} has dtype {dtype}: all floating "
                "inputs of one call must share one dtype (float32 or float64); convert explicitly"
            )
    return dtype


def as_float_array(name: str, value: Any, dtype: np.dtype, shape: tuple) -> np.ndarray:
    """`value` as a C-contiguous native array of `dtype` with exactly `shape`.

    Entries of `shape` that are None accept any size. Returns `value` itself
    when it already has that form (no copy).
    """
    arr = np.asarray(value)
    if arr.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, arr.shape)):
        expected = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {expected}, got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=dtype)


def check_nonlinearity(nonlinearity: Any) -> str:
    if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
    return nonlinearity


def check_lengths(lengths: Any, T: int, B: int) -> Optional[np.ndarray]:
    """None, or B integers in [0, T] as a new-or-same C-contiguous int64 array."""
    if lengths is None:
        return None
    arr = as_array("lengths", lengths)
    if arr.size == 0 and arr.ndim == 1 and not isinstance(lengths, np.ndarray):
        arr = arr.astype(np.int64)  # [] (B = 0) is float64 to NumPy
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths must be integers, got dtype {arr.dtype}")
    if arr.shape != (B,):
        raise ValueError(f"lengths must have shape ({B},) (one length per batch row), got {arr.shape}")
    if B and (arr.min() < 0 or arr.max() > T):
        raise ValueError(f"lengths must lie in [0, T] = [0, {T}], got values in [{arr.min()}, {arr.max()}]")
    return np.ascontiguousarray(arr, dtype=np.int64)


def rnn_forward_args(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, lengths) -> RNNArgs:
    """Check and normalise the arguments of rnn_forward."""
    for name, value in (("x", x), ("weight_ih", weight_ih), ("weight_hh", weight_hh)):
        _float_dtype_of(name, value)  # required: None is a TypeError, not "skipped"
    dtype = _common_float_dtype(
        [("x", x), ("h0", h0), ("weight_ih", weight_ih), ("weight_hh", weight_hh),
         ("bias_ih", bias_ih), ("bias_hh", bias_hh)]
    )
    nonlinearity = check_nonlinearity(nonlinearity)
    w_ih = np.asarray(weight_ih)
    if w_ih.ndim != 2:
        raise ValueError(f"weight_ih must have shape (hidden_size, input_size), got {w_ih.shape}")
    H, I = w_ih.shape
    x_shape = as_array("x", x).shape
    if len(x_shape) == 3:
        check_sizes(x_shape[0], x_shape[1], I, H)
    x_arr = as_float_array("x", x, dtype, (None, None, I))
    T, B = x_arr.shape[:2]
    return RNNArgs(
        x=x_arr,
        h0=None if h0 is None else as_float_array("h0", h0, dtype, (B, H)),
        weight_ih=np.ascontiguousarray(w_ih, dtype=dtype),
        weight_hh=as_float_array("weight_hh", weight_hh, dtype, (H, H)),
        bias_ih=None if bias_ih is None else as_float_array("bias_ih", bias_ih, dtype, (H,)),
        bias_hh=None if bias_hh is None else as_float_array("bias_hh", bias_hh, dtype, (H,)),
        lengths=check_lengths(lengths, T, B),
        nonlinearity=nonlinearity,
        T=T, B=B, I=I, H=H, dtype=dtype,
    )


# The C kernels index with 64-bit integers and refuse sizes beyond this many
# elements (csrc/dispatch.c); checking here gives a clear error first.
MAX_ELEMENTS = 2**59


def check_sizes(T: int, B: int, I: int, H: int) -> None:  # noqa: E741
    """Reject (T, B, I, H) whose element counts exceed MAX_ELEMENTS.

    NumPy cannot allocate such arrays anyway, but zero-size arrays (I = H =
    0) can have such shapes; products are exact Python integers, never
    wrapped.
    """
    rows = T * B
    if rows > MAX_ELEMENTS or rows * max(I, H) > MAX_ELEMENTS or H * max(I, H) > MAX_ELEMENTS:
        raise ValueError(
            f"x of shape {(T, B, I)} with hidden size {H} is too large: T*B = {rows} rows, "
            f"T*B*max(I, H) and H*max(I, H) must each be at most 2**59 elements")


def rnn_backward_args(dout, dh_n, cache):
    """Check (dout, dh_n, cache) of rnn_backward; returns them normalised.

    The cache is re-checked field by field (cheap when it came from
    rnn_forward), so a hand-built or altered cache cannot reach C code with
    inconsistent shapes.
    """
    if not isinstance(cache, RNNCache):
        raise TypeError(f"cache must be the RNNCache returned by rnn_forward, got {type(cache).__name__}")
    args = rnn_forward_args(cache.x, cache.h0, cache.weight_ih, cache.weight_hh, cache.bias_ih,
                            cache.bias_hh, cache.nonlinearity, cache.lengths)
    _common_float_dtype([("cache.x", cache.x), ("cache.out", cache.out), ("dout", dout), ("dh_n", dh_n)])
    out = as_float_array("cache.out", cache.out, args.dtype, (args.T, args.B, args.H))
    cache = RNNCache(args.x, args.h0, args.weight_ih, args.weight_hh, args.bias_ih, args.bias_hh,
                     args.lengths, args.nonlinearity, out)
    if dout is not None:
        dout = as_float_array("dout", dout, args.dtype, (args.T, args.B, args.H))
    if dh_n is not None:
        dh_n = as_float_array("dh_n", dh_n, args.dtype, (args.B, args.H))
    return dout, dh_n, cache


def clip_targets(arrays: Any) -> List[np.ndarray]:
    """The arrays a clipping call modifies in place, all of one float dtype.

    Accepts one ndarray, an iterable of ndarrays, or a Mapping whose values are
    ndarrays (for example a dict of gradients).
    """
    if isinstance(arrays, np.ndarray):
        items = [arrays]
    elif isinstance(arrays, Mapping):
        items = list(arrays.values())
    elif isinstance(arrays, (str, bytes)) or not hasattr(arrays, "__iter__"):
        raise TypeError(f"arrays must be an ndarray, an iterable of ndarrays or a mapping of them, got {type(arrays).__name__}")
    else:
        items = list(arrays)
    for i, arr in enumerate(items):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"arrays[{i}] must be a numpy.ndarray (clipping is in place), got {type(arr).__name__}")
        if not arr.flags.writeable:
            raise ValueError(f"arrays[{i}] is read-only; clipping modifies arrays in place")
        if arr.size > 1 and any(st == 0 and n > 1 for st, n in zip(arr.strides, arr.shape)):
            raise ValueError(f"arrays[{i}] has a zero stride (one element stored for many, e.g. "
                             "from as_strided); clipping in place needs every element stored once")
    if items:
        _common_float_dtype([(f"arrays[{i}]", a) for i, a in enumerate(items)])
    return items


def _real_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def check_max_norm(max_norm: Any) -> float:
    value = _real_number("max_norm", max_norm)
    if not value >= 0.0:
        raise ValueError(f"max_norm must be >= 0, got {max_norm!r}")
    return value


def check_norm_type(norm_type: Any) -> float:
    if isinstance(norm_type, str):
        if norm_type.lower() != "inf":
            raise ValueError(f"norm_type must be a positive number or 'inf', got {norm_type!r}")
        return math.inf
    value = _real_number("norm_type", norm_type)
    if not value > 0.0:
        raise ValueError(f"norm_type must be a positive number or 'inf', got {norm_type!r}")
    return value


def check_clip_value(clip_value: Any) -> float:
    value = _real_number("clip_value", clip_value)
    if not value >= 0.0:
        raise ValueError(f"clip_value must be >= 0, got {clip_value!r}")
    return value
