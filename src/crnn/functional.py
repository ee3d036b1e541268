"""The C engine's functional API: validate once, then call the kernels.

Same names, signatures and semantics as `crnn.reference` (the NumPy
specification): the generic `forward` / `backward` run any cell of the
registry (`crnn.cells`), and ``rnn_forward``, ``lstm_forward``, ... are the
cells' named entry points. Every check happens in `crnn._validate` before
any C code runs; `crnn._core` only passes pointers to the C driver and
releases the GIL.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core, cells
from ._functional_seq import (attention_backward, attention_forward, embedding_backward,
                              embedding_forward)
from ._named import entry_points
from ._validate import (
    BackwardArgs,
    ForwardArgs,
    backward_args,
    check_clip_value,
    check_max_norm,
    check_norm_type,
    clip_targets,
    forward_args,
    make_cache,
)
from .cells import CellSpec

Arrays = Union[np.ndarray, Iterable[np.ndarray]]


def forward(
    cell: Any,
    x: Any,
    states: Optional[Sequence[Any]],
    weights: Mapping[str, Any],
    *,
    lengths: Optional[Any] = None,
    **options: str,
) -> Tuple[np.ndarray, Tuple[np.ndarray, ...], Any]:
    """Run one layer of any registered cell over a time-major batch (C engine).

    Arguments, results and errors as in `crnn.reference.forward`. NaN and
    Inf in the inputs propagate to the outputs (never filtered) within the
    batch rows they reach; inputs at padded steps are never read; saturating
    activations give their limits, never NaN. Thread-safe: any number of
    Python threads may call it at once (the GIL is released). Do not modify
    ``out`` in place before the backward: the cache refers to it.
    """
    spec = cells.get(cell)
    a = forward_args(spec, x, states, weights, lengths, options)
    out = np.empty((a.T, a.B, a.width), a.dtype)
    states_n = tuple(np.empty((a.B, a.width), a.dtype) for _ in spec.states)
    saved = tuple(np.empty((a.T, a.B, a.sizes[symbol]), a.dtype) for _, symbol in spec.saved)
    _c_forward(a, out, states_n, saved)
    return out, states_n, make_cache(a, out, saved)


def backward(dout: Optional[Any], dstates: Optional[Sequence[Any]], cache: Any) -> Any:
    """Backpropagation through time for `forward` (any cell, C engine).

    Arguments and results as in `crnn.reference.backward`. NaN and Inf in
    dout, dstates or the cache propagate into the gradients (0 * Inf is
    NaN); dout at padded steps is never read.
    """
    return _backward(cells.of_cache(cache), dout, dstates, cache)


def _backward(spec: CellSpec, dout: Any, dstates: Any, cache: Any) -> Any:
    b = backward_args(spec, dout, dstates, cache)
    a = b.forward
    dx = np.empty_like(a.x)
    dstates0 = tuple(np.empty((a.B, a.width), a.dtype) for _ in spec.states)
    dweights = {name: None if w is None else np.empty_like(w) for name, w in a.weights.items()}
    _c_backward(b, dx, dstates0, dweights)
    return spec.grads_type(dx, *dstates0, *dweights.values())


(rnn_forward, rnn_backward, lstm_forward, lstm_backward, gru_forward, gru_backward,
 jordan_forward, jordan_backward) = entry_points(forward, _backward, __name__)


# TEMPORARY: the per-cell binding of the C library before its generic driver.
def _c_forward(a: ForwardArgs, out, states_n, saved) -> None:
    w, s, name = a.weights, a.states, a.spec.name
    if name == "rnn":
        _core.rnn_forward(a.x, s[0], w["weight_ih"], w["weight_hh"], w["bias_ih"], w["bias_hh"],
                          a.lengths, a.options["nonlinearity"], out, states_n[0])
    elif name == "lstm":
        _core.lstm_forward(a.x, s[0], s[1], w["weight_ih"], w["weight_hh"], w["bias_ih"],
                           w["bias_hh"], a.lengths, out, states_n[0], states_n[1], *saved)
    elif name == "gru":
        _core.gru_forward(a.x, s[0], w["weight_ih"], w["weight_hh"], w["bias_ih"], w["bias_hh"],
                          a.lengths, out, states_n[0], *saved)
    else:
        _core.jordan_forward(a.x, s[0], w["weight_ih"], w["weight_hy"], w["weight_ho"],
                             w["bias_ih"], w["bias_hh"], w["bias_ho"], a.lengths,
                             a.options["nonlinearity"], a.options["output_nonlinearity"], out,
                             states_n[0], *saved)


def _c_backward(b: BackwardArgs, dx, dstates0, dw) -> None:
    a = b.forward
    w, s, name = a.weights, a.states, a.spec.name
    ds = b.dstates
    if name == "gru":
        _core.gru_backward(a.x, s[0], w["weight_ih"], w["weight_hh"], a.lengths, b.out, *b.saved,
                           b.dout, ds[0], dx, dstates0[0], dw["weight_ih"], dw["weight_hh"],
                           dw["bias_ih"], dw["bias_hh"])
        return
    db = dw["bias_ih"] if dw["bias_ih"] is not None else dw["bias_hh"]
    if name == "rnn":
        _core.rnn_backward(a.x, s[0], w["weight_ih"], w["weight_hh"], a.lengths,
                           a.options["nonlinearity"], b.out, b.dout, ds[0], dx, dstates0[0],
                           dw["weight_ih"], dw["weight_hh"], db)
    elif name == "lstm":
        _core.lstm_backward(a.x, s[0], s[1], w["weight_ih"], w["weight_hh"], a.lengths, b.out,
                            *b.saved, b.dout, ds[0], ds[1], dx, dstates0[0], dstates0[1],
                            dw["weight_ih"], dw["weight_hh"], db)
    else:
        _core.jordan_backward(a.x, s[0], w["weight_ih"], w["weight_hy"], w["weight_ho"],
                              a.lengths, a.options["nonlinearity"],
                              a.options["output_nonlinearity"], b.out, *b.saved, b.dout, ds[0],
                              dx, dstates0[0], dw["weight_ih"], dw["weight_hy"], dw["weight_ho"],
                              db, dw["bias_ho"])
    if dw["bias_hh"] is not None and db is not dw["bias_hh"]:
        dw["bias_hh"][...] = db


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
