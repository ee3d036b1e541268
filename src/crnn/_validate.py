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
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .cells import NONLINEARITIES, CellSpec, Weight

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_array(name: str, value: Any) -> np.ndarray:
    """np.asarray(value), with errors that name the argument.

    Ragged nested sequences (which NumPy cannot make an array of) raise
    ValueError, and masked arrays TypeError: crnn would silently compute on
    the values under the mask.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a numpy.ma.MaskedArray; crnn ignores masks, so pass "
            f"{name}.filled(0) (or use lengths) instead"
        )
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{name} cannot be converted to an array ({exc})") from None


def _float_dtype_of(name: str, value: Any) -> np.dtype:
    """The dtype `value` has as an array, which must be float32 or float64."""
    if type(value) is np.ndarray:  # the common case, checked fast
        dtype = value.dtype
    elif value is None or isinstance(value, (str, bytes)):
        got = "None" if value is None else type(value).__name__
        raise TypeError(f"{name} must be a float32 or float64 array, got {got}")
    else:
        dtype = as_array(name, value).dtype
    if dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {dtype}")
    return dtype if dtype.isnative else np.dtype(dtype.newbyteorder("="))


def _common_float_dtype(named: Sequence[tuple], required: Sequence[str] = ()) -> np.dtype:
    """The one float dtype shared by every given (name, value).

    None values are skipped, except for the names in `required`, which
    must be arrays.
    """
    first_name, dtype = None, None
    for name, value in named:
        if value is None and name not in required:
            continue
        other = _float_dtype_of(name, value)
        if dtype is None:
            first_name, dtype = name, other
        elif other != dtype:
            raise TypeError(
                f"{name} has dtype {other} but {first_name} has dtype {dtype}: all floating "
                "inputs of one call must share one dtype (float32 or float64); convert explicitly"
            )
    assert dtype is not None, "no array given"
    return dtype


def as_float_array(name: str, value: Any, dtype: np.dtype, shape: tuple) -> np.ndarray:
    """`value` as a C-contiguous native array of `dtype` with exactly `shape`.

    Entries of `shape` that are None accept any size. Returns `value` itself
    when it already has that form (no copy).
    """
    if (
        type(value) is np.ndarray
        and value.shape == shape
        and value.dtype == dtype
        and value.flags.c_contiguous
    ):
        return value  # the common case, checked fast
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    if arr.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, arr.shape)):
        expected = (
            "("
            + ", ".join("?" if s is None else str(s) for s in shape)
            + ("," if len(shape) == 1 else "")
            + ")"
        )
        raise ValueError(f"{name} must have shape {expected}, got {arr.shape}")
    if type(arr) is np.ndarray and arr.dtype == dtype and arr.flags.c_contiguous:
        return arr
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
        raise ValueError(
            f"lengths must have shape ({B},) (one length per batch row), got {arr.shape}"
        )
    if B and (arr.min() < 0 or arr.max() > T):
        raise ValueError(
            f"lengths must lie in [0, T] = [0, {T}], got values in [{arr.min()}, {arr.max()}]"
        )
    return np.ascontiguousarray(arr, dtype=np.int64)


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
            f"T*B*max(I, H) and H*max(I, H) must each be at most 2**59 elements"
        )


# --------------------------------------------------------------------------
# One validator for every cell, parameterised by its spec (crnn.cells)
# --------------------------------------------------------------------------

_SIZE_NAMES = {"I": "input_size", "H": "hidden_size", "O": "output_size"}


class ForwardArgs(NamedTuple):
    """The normalised arguments of a cell's forward."""

    spec: CellSpec
    x: np.ndarray
    states: Tuple[Optional[np.ndarray], ...]  # one per spec.states, None for zeros
    weights: Dict[str, Optional[np.ndarray]]  # every spec weight; None for an absent bias
    lengths: Optional[np.ndarray]
    options: Dict[str, str]  # every spec option, defaults filled in
    T: int
    B: int
    sizes: Dict[str, int]  # "I", "H", "O", "G"
    dtype: np.dtype

    @property
    def width(self) -> int:
        """The width of the states and of the output."""
        return self.spec.width(self.sizes)


class BackwardArgs(NamedTuple):
    """The normalised arguments of a cell's backward."""

    forward: ForwardArgs
    out: np.ndarray
    saved: Tuple[np.ndarray, ...]  # spec.saved, in order
    dout: Optional[np.ndarray]
    dstates: Tuple[Optional[np.ndarray], ...]  # one per spec.states, None for zero


def _shape_text(spec: CellSpec, weight: Weight) -> str:
    def one(symbol: str) -> str:
        if symbol == "G":
            return "hidden_size" if spec.gates == 1 else f"{spec.gates} * hidden_size"
        return _SIZE_NAMES[symbol]

    return (
        "("
        + ", ".join(one(s) for s in weight.shape)
        + ("," if len(weight.shape) == 1 else "")
        + ")"
    )


def _bind_sizes(spec: CellSpec, weights: Dict[str, Any]) -> Dict[str, int]:
    """The sizes I, H, O that the required weights' shapes imply.

    Each size is read off the first weight that has it; the full shape of
    every array is checked afterwards.
    """
    bound: Dict[str, int] = {}
    for w in spec.weights:
        if w.bias or all(("H" if sym == "G" else sym) in bound for sym in w.shape):
            continue  # its shape is checked in full against the bound sizes later
        value = weights[w.name]
        shape = value.shape if type(value) is np.ndarray else as_array(w.name, value).shape
        if len(shape) != len(w.shape) or (
            "G" in w.shape and "H" not in bound and shape[w.shape.index("G")] % spec.gates
        ):
            article = "an" if spec.title[0] in "AEFHILMNORSX" else "a"
            raise ValueError(
                f"{w.name} of {article} {spec.title} must have shape "
                f"{_shape_text(spec, w)}, got {shape}"
            )
        for symbol, n in zip(w.shape, shape):
            key = "H" if symbol == "G" else symbol
            if key not in bound:
                bound[key] = n // spec.gates if symbol == "G" else n
    return spec.dims(bound.get("I", 0), bound.get("H", 0), bound.get("O", 0))


def _check_options(spec: CellSpec, options: Mapping[str, Any]) -> Dict[str, str]:
    unknown = [k for k in options if k not in spec.option_names]
    if unknown:
        takes = ", ".join(spec.option_names) or "none"
        raise TypeError(
            f"the {spec.title} cell has no option {unknown[0]!r} (its options: {takes})"
        )
    checked = {}
    for o in spec.options:
        value = options.get(o.name, o.default)
        if not isinstance(value, str) or value not in o.choices:
            raise ValueError(f"{o.name} must be one of {o.choices}, got {value!r}")
        checked[o.name] = value
    return checked


def check_precision(options: Mapping[str, str], dtype: np.dtype) -> None:
    """precision="bf16" takes float32 arrays only (its sums and states are
    float32; a float64 call would lose precision silently)."""
    precision = options.get("precision", "native")
    if precision != "native" and dtype != np.float32:
        raise TypeError(
            f"precision={precision!r} computes in float32 (bfloat16 products): x, the states "
            f"and the weights must be float32, got {np.dtype(dtype).name}"
        )


def _check_weights(spec: CellSpec, weights: Any) -> Dict[str, Any]:
    if not isinstance(weights, Mapping):
        raise TypeError(
            f"weights must be a mapping of {spec.weight_names} to arrays, "
            f"got {type(weights).__name__}"
        )
    unknown = [k for k in weights if k not in spec.weight_names]
    if unknown:
        raise ValueError(
            f"the {spec.title} cell has no weight {unknown[0]!r} (its weights: "
            f"{', '.join(spec.weight_names)})"
        )
    return {w.name: weights.get(w.name) for w in spec.weights}


def _check_states(spec: CellSpec, states: Any, what: str) -> Tuple[Any, ...]:
    n = len(spec.states)
    if states is None:
        return (None,) * n
    if isinstance(states, np.ndarray) or not isinstance(states, (tuple, list)) or len(states) != n:
        names = ", ".join(f"{s}{what}" for s in spec.states)
        raise TypeError(
            f"the {spec.title} cell's states must be a sequence of {n} arrays or None "
            f"({names}), got {type(states).__name__}"
        )
    return tuple(states)


def _ready(a: Any, dtype: np.dtype, shape: Tuple[int, ...]) -> bool:
    """`a` is already what the checks would make of it: an ndarray of
    exactly `dtype` and `shape`, C-contiguous."""
    return type(a) is np.ndarray and a.dtype is dtype and a.shape == shape and a.flags.c_contiguous


def _accept_forward(
    spec: CellSpec, x: Any, states: Any, weights: Any, lengths: Any, options: Mapping[str, Any]
) -> Optional[ForwardArgs]:
    """`forward_args` of a call whose arrays are all in final form already:
    one native float dtype, C-contiguous, the shapes the weights imply (the
    common case, accepted in a few microseconds). None for anything else,
    which the full checks then normalise or refuse with their messages: this
    only ever accepts what they would accept unchanged."""
    if type(x) is not np.ndarray or type(weights) is not dict or x.ndim != 3:
        return None
    dtype = x.dtype
    if dtype not in FLOAT_DTYPES or not x.flags.c_contiguous:
        return None
    for name in weights:
        if name not in spec.weight_names:
            return None
    for name in options:
        if name not in spec.option_names:
            return None
    checked = {}
    for o in spec.options:
        value = options.get(o.name, o.default)
        if type(value) is not str or value not in o.choices:
            return None
        checked[o.name] = value
    if checked.get("precision", "native") != "native" and dtype != np.float32:
        return None
    bound = {"I": 0, "H": 0, "O": 0}
    for name, axis, key, divisor in spec.size_sources:
        w = weights.get(name)
        if type(w) is not np.ndarray or w.ndim <= axis or w.shape[axis] % divisor:
            return None
        bound[key] = w.shape[axis] // divisor
    sizes = spec.dims(bound["I"], bound["H"], bound["O"])
    T, B, I = x.shape  # noqa: E741
    if I != sizes["I"]:
        return None
    check_sizes(T, B, max(I, sizes["O"]), max(sizes["G"], sizes["O"]))
    normal: Dict[str, Optional[np.ndarray]] = {}
    for w in spec.weights:
        value = weights.get(w.name)
        if value is None and w.bias:
            normal[w.name] = None
        elif _ready(value, dtype, tuple(map(sizes.__getitem__, w.shape))):
            normal[w.name] = value
        else:
            return None
    if states is None:
        states = (None,) * len(spec.states)
    elif type(states) not in (tuple, list) or len(states) != len(spec.states):
        return None
    width = (B, sizes[spec.state_size])
    for s in states:
        if s is not None and not _ready(s, dtype, width):
            return None
    return ForwardArgs(
        spec, x, tuple(states), normal, check_lengths(lengths, T, B), checked, T, B, sizes, dtype
    )


def token_ids(x: Any, ndims: Tuple[int, ...] = (2,)) -> Optional[np.ndarray]:
    """`x` as an array when it is token ids (an integer array of one of
    `ndims` dimensions: (T, B) for the functional API, also (T,) unbatched
    for a layer), else None."""
    if isinstance(x, np.ndarray):
        arr = x
    elif x is None or isinstance(x, (str, bytes, Mapping, np.ma.MaskedArray)):
        return None
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError):
            return None
    return arr if arr.dtype.kind in "iu" and arr.ndim in ndims else None


def _check_ids(ids: np.ndarray, I: int) -> np.ndarray:  # noqa: E741
    """Token ids (T, B) in [0, I), as a new-or-same C-contiguous int64 array."""
    if ids.size and (ids.min() < 0 or ids.max() >= I):
        raise ValueError(
            f"x holds token ids (an integer (T, B) array, read as one-hot vectors): they "
            f"must lie in [0, {I}) (weight_ih's columns), got values in "
            f"[{ids.min()}, {ids.max()}]"
        )
    return np.ascontiguousarray(ids, dtype=np.int64)


def forward_args(
    spec: CellSpec, x: Any, states: Any, weights: Any, lengths: Any, options: Mapping[str, Any]
) -> ForwardArgs:
    """Check and normalise the arguments of `spec`'s forward.

    One floating dtype for every array, C-contiguous native copies only where
    needed (an argument already in that form is used as is), every shape
    checked, errors naming the argument, all before any computation. x may
    be token ids (T, B), integers in [0, I): the one-hot vectors they stand
    for are the inputs (``ForwardArgs.x`` is then the int64 ids).
    """
    ready = _accept_forward(spec, x, states, weights, lengths, options)
    if ready is not None:
        return ready
    states = _check_states(spec, states, "0")
    weights = _check_weights(spec, weights)
    ids = token_ids(x)
    named_x = [] if ids is not None else [("x", x)]
    dtype = _common_float_dtype(
        [*named_x, *zip(spec.initial_states, states), *weights.items()],
        required=("x",) * len(named_x) + spec.required_weights,
    )
    checked_options = _check_options(spec, options)
    check_precision(checked_options, dtype)
    sizes = _bind_sizes(spec, weights)
    if ids is not None:
        x_arr = _check_ids(ids, sizes["I"])
        check_sizes(
            ids.shape[0], ids.shape[1], max(sizes["I"], sizes["O"]), max(sizes["G"], sizes["O"])
        )
    else:
        x_shape = x.shape if type(x) is np.ndarray else as_array("x", x).shape
        if len(x_shape) == 3:
            check_sizes(
                x_shape[0], x_shape[1], max(sizes["I"], sizes["O"]), max(sizes["G"], sizes["O"])
            )
        x_arr = as_float_array(
            "x",
            x,
            dtype,
            (*x_shape[:2], sizes["I"]) if len(x_shape) == 3 else (None, None, sizes["I"]),
        )
    T, B = x_arr.shape[:2]
    width = spec.width(sizes)
    return ForwardArgs(
        spec=spec,
        x=x_arr,
        states=tuple(
            None if s is None else as_float_array(name, s, dtype, (B, width))
            for name, s in zip(spec.initial_states, states)
        ),
        weights={
            w.name: None
            if weights[w.name] is None
            else as_float_array(w.name, weights[w.name], dtype, spec.weight_shape(w, sizes))
            for w in spec.weights
        },
        lengths=check_lengths(lengths, T, B),
        options=checked_options,
        T=T,
        B=B,
        sizes=sizes,
        dtype=dtype,
    )


def make_cache(a: ForwardArgs, out: np.ndarray, saved: Sequence[np.ndarray]) -> Any:
    """The spec's cache for a forward with arguments `a` and these results.

    A cache's fields come in the order x, initial states, weights, lengths,
    options, out, saved arrays (crnn.cells).
    """
    return a.spec.cache_type(
        a.x, *a.states, *a.weights.values(), a.lengths, *a.options.values(), out, *saved
    )


def backward_args(spec: CellSpec, dout: Any, dstates: Any, cache: Any) -> BackwardArgs:
    """Check (dout, dstates, cache) of `spec`'s backward; returns them normalised.

    The cache is re-checked field by field (cheap when it came from a
    forward), so a hand-built or altered cache cannot reach C code with
    inconsistent shapes.
    """
    if not isinstance(cache, spec.cache_type):
        raise TypeError(
            f"cache must be the {spec.cache_type.__name__} returned by "
            f"{spec.name}_forward, got {type(cache).__name__}"
        )
    dstates = _check_states(spec, dstates, "_n")
    # The cache's fields, in crnn.cells' order: x, initial states, weights,
    # lengths, options, out, saved arrays.
    w0 = 1 + len(spec.states)
    n = w0 + len(spec.weights)
    o1 = n + 1 + len(spec.options)
    a = forward_args(
        spec,
        cache[0],
        cache[1:w0],
        dict(zip(spec.weight_names, cache[w0:n])),
        cache[n],
        dict(zip(spec.option_names, cache[n + 1 : o1])),
    )
    dtype, seq, state = a.dtype, (a.T, a.B, a.width), (a.B, a.width)
    out, saved = cache[o1], cache[o1 + 1 :]
    # Arrays already in final form (the common case) are taken as they are.
    ready = _ready(out, dtype, seq) and (dout is None or _ready(dout, dtype, seq))
    for (_, symbol), arr in zip(spec.saved, saved):
        ready = ready and _ready(arr, dtype, (a.T, a.B, a.sizes[symbol]))
    for d in dstates:
        ready = ready and (d is None or _ready(d, dtype, state))
    if ready:
        return BackwardArgs(a, out, saved, dout, dstates)
    saved_names = [f"cache.{name}" for name, _ in spec.saved]
    dstate_names = [f"d{s}_n" for s in spec.states]
    _common_float_dtype(
        ([] if a.x.ndim == 2 else [("cache.x", cache.x)])  # token ids are not floats
        + [("cache.out", out)]
        + list(zip(saved_names, saved))
        + [("dout", dout)]
        + list(zip(dstate_names, dstates))
    )
    return BackwardArgs(
        forward=a,
        out=as_float_array("cache.out", out, dtype, seq),
        saved=tuple(
            as_float_array(name, arr, dtype, (a.T, a.B, a.sizes[symbol]))
            for name, arr, (_, symbol) in zip(saved_names, saved, spec.saved)
        ),
        dout=None if dout is None else as_float_array("dout", dout, dtype, seq),
        dstates=tuple(
            None if d is None else as_float_array(name, d, dtype, state)
            for name, d in zip(dstate_names, dstates)
        ),
    )


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
        raise TypeError(
            f"arrays must be an ndarray, an iterable of ndarrays or a mapping of them, got {type(arrays).__name__}"
        )
    else:
        items = list(arrays)
    for i, arr in enumerate(items):
        if not isinstance(arr, np.ndarray):
            raise TypeError(
                f"arrays[{i}] must be a numpy.ndarray (clipping is in place), got {type(arr).__name__}"
            )
        if not arr.flags.writeable:
            raise ValueError(f"arrays[{i}] is read-only; clipping modifies arrays in place")
        if arr.size > 1 and any(st == 0 and n > 1 for st, n in zip(arr.strides, arr.shape)):
            raise ValueError(
                f"arrays[{i}] has a zero stride (one element stored for many, e.g. "
                "from as_strided); clipping in place needs every element stored once"
            )
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


# --------------------------------------------------------------------------
# Prepared weights and their steps (``prepare`` of either engine)
# --------------------------------------------------------------------------


class PrepareArgs(NamedTuple):
    """The normalised arguments of ``prepare``: a stack of one cell's layers."""

    spec: CellSpec
    weights: List[Dict[str, Optional[np.ndarray]]]  # per layer, every spec weight
    sizes: List[Dict[str, int]]  # per layer: "I", "H", "O", "G"
    options: Dict[str, str]
    dtype: np.dtype

    @property
    def widths(self) -> Tuple[int, ...]:
        """The width of each state (the same in every layer)."""
        return (self.spec.width(self.sizes[0]),) * len(self.spec.states)


def prepare_args(
    spec: CellSpec, weights: Any, options: Mapping[str, Any], stacked: bool
) -> PrepareArgs:
    """Check the weights of a layer (a mapping) or of a stack of layers (a
    sequence of mappings, the first layer's first) for ``prepare``.

    One float dtype for all; layer l > 0 reads the output of layer l - 1, so
    its input size is the width of the states, which every layer shares.
    """
    if stacked:
        if isinstance(weights, (Mapping, str, bytes)) or not isinstance(weights, Sequence):
            raise TypeError(
                f"weights must be a sequence of mappings (one per layer), got "
                f"{type(weights).__name__}"
            )
        layers = list(weights)
        if not layers:
            raise ValueError("weights must hold at least one layer's mapping, got none")
    else:
        layers = [weights]
    checked = [_check_weights(spec, w) for w in layers]
    named = [
        (f"weights[{k}][{name!r}]" if stacked else name, value)
        for k, w in enumerate(checked)
        for name, value in w.items()
    ]
    required = [
        f"weights[{k}][{name!r}]" if stacked else name
        for k in range(len(checked))
        for name in spec.required_weights
    ]
    dtype = _common_float_dtype(named, required=required)
    checked_options = _check_options(spec, options)
    if checked_options.get("precision", "native") != "native":
        raise ValueError(
            "prepared weights (prepare, the layers' step) run in native precision: "
            f"precision must be 'native' there, got {checked_options['precision']!r}"
        )
    sizes = [_bind_sizes(spec, w) for w in checked]
    width = spec.width(sizes[0])
    for k, s in enumerate(sizes[1:], 1):
        if spec.width(s) != width or s["I"] != width:
            raise ValueError(
                f"weights[{k}] must be a layer reading the output of layer {k - 1} "
                f"(input size {width}) with states {width} wide, like layer 0; got input size "
                f"{s['I']} and states {spec.width(s)} wide"
            )
    normalised = [
        {
            w.name: None
            if layer[w.name] is None
            else as_float_array(
                f"weights[{k}][{w.name!r}]" if stacked else w.name,
                layer[w.name],
                dtype,
                spec.weight_shape(w, s),
            )
            for w in spec.weights
        }
        for k, (layer, s) in enumerate(zip(checked, sizes))
    ]
    return PrepareArgs(spec, normalised, sizes, checked_options, dtype)


class StepNames(NamedTuple):
    """How a step's errors name its arguments."""

    states_arg: str  # the states argument
    states: Tuple[str, ...]  # each state
    out: Tuple[str, ...]  # each out array


def step_names(spec: CellSpec, layer: bool) -> StepNames:
    """The names of a step's arguments: the functional API's (``states``, a
    tuple), or a layer's (``state``: one array, or a tuple)."""
    if not layer:
        return StepNames(
            "states",
            tuple(f"states[{k}] ({s}0)" for k, s in enumerate(spec.states)),
            tuple(f"out[{k}] ({s}_n)" for k, s in enumerate(spec.states)),
        )
    if len(spec.states) == 1:
        return StepNames("state", ("state",), ("out",))
    return StepNames(
        "state",
        tuple(f"state[{k}] ({s})" for k, s in enumerate(spec.states)),
        tuple(f"out[{k}] ({s})" for k, s in enumerate(spec.states)),
    )


class StepShape(NamedTuple):
    """What the arrays of a prepared stack's step look like, for `step_args`."""

    dtype: np.dtype
    input_size: int
    widths: Tuple[int, ...]  # per state
    num_layers: Optional[int]  # None: one layer, states without a layer axis
    names: StepNames


def _step_array(name: str, value: Any, dtype: np.dtype) -> np.ndarray:
    """An array argument of a step in exactly `dtype` (never cast)."""
    if not isinstance(value, np.ndarray):
        if value is None or isinstance(value, (str, bytes)):
            raise TypeError(f"{name} must be a {dtype} array, got {type(value).__name__}")
        value = as_array(name, value)
    if value.dtype.kind != "f" or value.dtype.newbyteorder("=") != dtype:
        raise TypeError(
            f"{name} must be a {dtype} array, got dtype {value.dtype}; steps never cast: "
            f"convert with .astype(np.{dtype})"
        )
    return value


def _expect_shape(name: str, arr: np.ndarray, shape: Tuple[int, ...], meaning: str) -> None:
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {meaning} = {shape}, got {arr.shape}")


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """a and b are views of exactly the same elements."""
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape
        and a.strides == b.strides
    )


def step_args(shape: StepShape, x: Any, states: Any, out: Any) -> Tuple[Any, Any, Any]:
    """Check a prepared stack's step arguments; returns them normalised: x and
    the states as C-contiguous native arrays (new ones only where needed),
    the states and out as tuples (or None), out's arrays as given (they are
    written) -- or raises TypeError / ValueError naming the argument."""
    n = len(shape.widths)
    x = _step_array("x", x, shape.dtype)
    I = shape.input_size  # noqa: E741
    if x.ndim not in (1, 2) or x.shape[-1] != I:
        raise ValueError(f"x must have shape (B, {I}) or unbatched ({I},), got {x.shape}")
    unbatched = x.ndim == 1
    B = 1 if unbatched else x.shape[0]
    lead = () if shape.num_layers is None else (shape.num_layers,)
    lead_text = () if shape.num_layers is None else ("num_layers",)

    def expected(width: int) -> Tuple[Tuple[int, ...], str]:
        dims = lead + (() if unbatched else (B,)) + (width,)
        names = lead_text + (() if unbatched else ("B",)) + ("W",)
        return dims, "(" + ", ".join(names) + ")"

    def as_tuple(value: Any, what: str, names: Tuple[str, ...]) -> Optional[Tuple[Any, ...]]:
        if value is None:
            return None
        if isinstance(value, np.ndarray) or not isinstance(value, (tuple, list)) or len(value) != n:
            raise TypeError(
                f"{what} must be None or a tuple of {n} arrays ({', '.join(names)}), "
                f"got {type(value).__name__}"
            )
        return tuple(value)

    names = shape.names
    states = as_tuple(states, names.states_arg, names.states)
    out = as_tuple(out, "out", names.out)
    new_states: Optional[List[Optional[np.ndarray]]] = None
    if states is not None:
        new_states = []
        for k, s in enumerate(states):
            if s is not None:
                s = _step_array(names.states[k], s, shape.dtype)
                _expect_shape(names.states[k], s, *expected(shape.widths[k]))
                s = np.array(s, dtype=shape.dtype, order="C", copy=None, subok=False)
            new_states.append(s)
    new_out: Optional[List[np.ndarray]] = None
    if out is not None:
        new_out = []
        for k, o in enumerate(out):
            name = names.out[k]
            if not isinstance(o, np.ndarray):
                raise TypeError(
                    f"{name} must be an ndarray (the step writes into it), got {type(o).__name__}"
                )
            o = _step_array(name, o, shape.dtype)
            _expect_shape(name, o, *expected(shape.widths[k]))
            if not (o.flags.c_contiguous and o.dtype.isnative):
                raise ValueError(f"{name} must be C-contiguous in native byte order")
            if not o.flags.writeable:
                raise ValueError(f"{name} is read-only; the step writes the new state into it")
            new_out.append(o if type(o) is np.ndarray else o.view(np.ndarray))
        for k, o in enumerate(new_out):
            for j, other in enumerate(new_out[:k]):
                if np.may_share_memory(o, other):
                    raise ValueError(
                        f"{names.out[k]} and {names.out[j]} share memory; each "
                        "new state needs an array of its own"
                    )
            for j, s in enumerate(new_states or ()):
                if s is None or (j == k and _same_memory(s, o)):
                    continue
                if np.may_share_memory(o, s):
                    raise ValueError(
                        f"{names.out[k]} overlaps {names.states[j]}: pass the "
                        "state array itself to update it in place, or an array of its own"
                    )
    x = np.array(x, dtype=shape.dtype, order="C", copy=None, subok=False)
    return (
        x,
        None if new_states is None else tuple(new_states),
        None if new_out is None else tuple(new_out),
    )


# --------------------------------------------------------------------------
# An output head and its loss (``linear_loss`` of either engine)
# --------------------------------------------------------------------------

HEAD_LOSSES = ("cross_entropy", "mse")


class LinearLossArgs(NamedTuple):
    """The normalised arguments of ``linear_loss``: N rows of K features."""

    x: np.ndarray  # (N, K)
    weight: np.ndarray  # (C, K)
    bias: Optional[np.ndarray]  # (C,) or None
    targets: np.ndarray  # cross_entropy: (N,) int64 in [0, C); mse: (N, C)
    loss: str
    x_shape: Tuple[int, ...]  # as given: (..., K)
    dtype: np.dtype


def linear_loss_args(x: Any, weight: Any, bias: Any, targets: Any, loss: Any) -> LinearLossArgs:
    """Check ``linear_loss``'s arguments: x (..., K), weight (C, K), bias (C,)
    or None of one float dtype; targets class ids (...) in [0, C) for
    "cross_entropy", values (..., C) of the same dtype for "mse"."""
    if not isinstance(loss, str) or loss not in HEAD_LOSSES:
        raise ValueError(f"loss must be one of {HEAD_LOSSES}, got {loss!r}")
    named = [("x", x), ("weight", weight), ("bias", bias)]
    if loss == "mse":
        named.append(("targets", targets))
    dtype = _common_float_dtype(named, required=("x", "weight"))
    w_shape = weight.shape if type(weight) is np.ndarray else as_array("weight", weight).shape
    if len(w_shape) != 2:
        raise ValueError(f"weight must have shape (out_features, in_features), got {w_shape}")
    C, K = w_shape
    w = as_float_array("weight", weight, dtype, (C, K))
    x_arr = as_array("x", x)
    if x_arr.ndim < 1 or x_arr.shape[-1] != K:
        raise ValueError(f"x must have shape (..., {K}) (weight's in_features), got {x_arr.shape}")
    x_shape = x_arr.shape
    N = int(np.prod(x_shape[:-1], dtype=np.int64))
    x2 = as_float_array("x", x_arr.reshape(N, K), dtype, (N, K))
    b = None if bias is None else as_float_array("bias", bias, dtype, (C,))
    if loss == "cross_entropy":
        t = as_array("targets", targets)
        if t.dtype.kind not in "iu":
            raise TypeError(f"targets must be integer class ids, got dtype {t.dtype}")
        if t.shape != x_shape[:-1]:
            raise ValueError(
                f"targets must have shape x.shape[:-1] = {x_shape[:-1]}, got {t.shape}"
            )
        if C == 0 and N:
            raise ValueError("weight must have at least one output (class) for cross_entropy")
        if N and (t.min() < 0 or t.max() >= C):
            raise ValueError(
                f"targets must lie in [0, {C}) (weight's out_features), got values in "
                f"[{t.min()}, {t.max()}]"
            )
        tt = np.ascontiguousarray(t.reshape(N), dtype=np.int64)
    else:
        t = as_array("targets", targets)
        if t.shape != x_shape[:-1] + (C,):
            raise ValueError(
                f"targets must have shape x.shape[:-1] + (out_features,) = "
                f"{x_shape[:-1] + (C,)}, got {t.shape}"
            )
        tt = as_float_array("targets", t.reshape(N, C), dtype, (N, C))
    return LinearLossArgs(x2, w, b, tt, loss, tuple(x_shape), dtype)
