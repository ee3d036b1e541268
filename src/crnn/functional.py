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
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Iterable,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np

from . import _core, cells
from ._functional_seq import (  # re-exported: the sequence layers' C engine
    attention_backward as attention_backward,
    attention_forward as attention_forward,
    embedding_backward as embedding_backward,
    embedding_forward as embedding_forward,
)
from ._named import entry_points
from ._validate import (
    ForwardArgs,
    StepNames,
    StepShape,
    backward_args,
    check_clip_value,
    check_max_norm,
    check_norm_type,
    clip_targets,
    forward_args,
    linear_loss_args,
    make_cache,
    prepare_args,
    step_args,
    step_names,
)
from .cells import CellSpec

# The entry points of crnn.reference (the specification), run by the C engine;
# and the cells' named entry points (NAMED, below).
__all__ = [
    "forward",
    "backward",
    "prepare",
    "parameters_changed",
    "linear_loss",
    "clip_grad_norm",
    "clip_grad_value",
    "embedding_forward",
    "embedding_backward",
    "attention_forward",
    "attention_backward",
]

Arrays = Union[np.ndarray, Iterable[np.ndarray]]

# What the arrays the C library writes hold before it runs: nothing in
# particular (None), or this value in every element. crnn._testing sets NaN
# under test, so that an element a kernel leaves unwritten, or reads before
# writing it, shows in the results.
_OUTPUT_FILL: Optional[float] = None


def _output(shape: Tuple[int, ...], dtype: Any) -> np.ndarray:
    """A new array for the C library to write in full (crnn.h)."""
    if _OUTPUT_FILL is None:
        return np.empty(shape, dtype)
    return np.full(shape, _OUTPUT_FILL, dtype)


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
    T, B, W, dtype = a.T, a.B, a.width, a.dtype
    out = _output((T, B, W), dtype)
    states_n = tuple([_output((B, W), dtype) for _ in spec.states])
    saved = tuple([_output((T, B, a.sizes[symbol]), dtype) for _, symbol in spec.saved])
    layer, c_weights = _c_layer_and_weights(a)
    _core.forward(layer, c_weights, a.x, a.lengths, a.states, out, states_n, saved)
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
    # Token ids (T, B) have no gradient.
    dx = None if a.x.ndim == 2 else _output(a.x.shape, a.x.dtype)
    dstates0 = tuple([_output((a.B, a.width), a.dtype) for _ in spec.states])
    dweights = {
        name: None if w is None else _output(w.shape, w.dtype) for name, w in a.weights.items()
    }
    layer, c_weights = _c_layer_and_weights(a)
    c_dweights = tuple(
        [None if name is None else dweights[name] for name in _C_LAYOUT[spec.name].weight_slots]
    )
    _core.backward(
        layer,
        c_weights,
        a.x,
        a.lengths,
        a.states,
        b.out,
        b.saved,
        b.dout,
        b.dstates,
        dx,
        dstates0,
        c_dweights,
    )
    return spec.grads_type(dx, *dstates0, *dweights.values())


# The cells' named entry points (rnn_forward, rnn_backward, lstm_forward, ...:
# one pair per registered cell), the same functions over the NumPy engine in
# crnn.reference: identical signatures and semantics by construction.
NAMED = entry_points(forward, _backward, __name__)
globals().update(NAMED)
__all__ += list(NAMED)

if TYPE_CHECKING:  # the named entry points, for type checkers

    def __getattr__(name: str) -> Callable[..., Any]: ...


# The C interface's view of each registry cell: its code, and the spec's
# weight and option names in crnn_weights' and crnn_layer's slot order (None
# where the cell has no such slot). Built once, at import, after checking that
# the C library describes the cell as its spec does: a registry cell the C
# build lacks, or whose arrays it would size differently (and overrun), stops
# the import with a message, never a call.
_WEIGHT_ROLES = ("w_ih", "w_hh", "b_ih", "b_hh", "w_ho", "b_ho")
_OPTION_ROLES = ("activation", "output_activation")


class _CLayout(NamedTuple):
    code: int
    weight_slots: Tuple[Optional[str], ...]  # per _WEIGHT_ROLES
    option_slots: Tuple[Optional[str], ...]  # per _OPTION_ROLES


def _c_disagreement(spec: CellSpec) -> Optional[str]:
    """How the C library's description of `spec`'s cell differs from the
    spec's, or None."""
    info = _core.CELL_INFO.get(spec.name)
    if info is None:
        return "the C library has no such cell (csrc/crnn_cells.def)"
    described = {  # what the C library says, and what the spec says
        "gates": (info["gates"], spec.gates),
        "states": (info["states"], len(spec.states)),
        "state_is_output": (info["state_is_output"], spec.state_size == "O"),
        "saved_gates": (
            info["saved_gates"],
            tuple(spec.gates if symbol == "G" else 1 for _, symbol in spec.saved),
        ),
        "separate_bias_grads": (info["separate_bias_grads"], spec.separate_bias_grads),
    }
    for key, (in_c, in_spec) in described.items():
        if in_c != in_spec:
            return f"{key} is {in_c!r} in C but {in_spec!r} in crnn.cells"
    for o in spec.options:
        if o.role == "precision":  # a dtype code, not an activation (below)
            continue
        unknown = [c for c in o.choices if c not in _core.ACTIVATIONS]
        if unknown:
            return f"option {o.name}: the C library has no activation {unknown[0]!r}"
    return None


def _c_layout(spec: CellSpec) -> _CLayout:
    problem = _c_disagreement(spec)
    if problem is not None:
        raise ImportError(
            f"crnn: the {spec.name!r} cell of crnn.cells does not match the C library's: "
            f"{problem} (csrc/cell_{spec.name}.inc; rebuild the extension after a change)"
        )
    weights = {w.role: w.name for w in spec.weights}
    options = {o.role: o.name for o in spec.options}
    return _CLayout(
        _core.CELL_INFO[spec.name]["code"],
        tuple(weights.get(r) for r in _WEIGHT_ROLES),
        tuple(options.get(r) for r in _OPTION_ROLES),
    )


_C_LAYOUT = {name: _c_layout(spec) for name, spec in cells.REGISTRY.items()}
_C_DTYPE = {np.dtype(name): code for name, code in _core.DTYPES.items()}


def _c_layer_and_weights(a: ForwardArgs) -> Tuple[tuple, tuple]:
    """The (crnn_layer, crnn_weights) tuples `_core` takes for a call (None
    in a weight slot the cell lacks)."""
    layout = _C_LAYOUT[a.spec.name]
    f, g = layout.option_slots
    codes, options, sizes = _core.ACTIVATIONS, a.options, a.sizes
    bf16 = options.get("precision") == "bf16"  # float32 only (checked)
    layer = (
        layout.code,
        _core.F32_BF16 if bf16 else _C_DTYPE[a.dtype],
        0 if f is None else codes[options[f]],
        0 if g is None else codes[options[g]],
        sizes["I"],
        sizes["H"],
        sizes["O"],
    )
    w = a.weights
    return layer, tuple([None if name is None else w[name] for name in layout.weight_slots])


# --------------------------------------------------------------------------
# Prepared weights: a step at a time
# --------------------------------------------------------------------------


def prepare(cell: Any, weights: Any, **options: str) -> Any:
    """Pack a layer's weights once for many `step` calls (streaming inference).

    Each call of `forward` checks, converts and packs its weights again,
    which for a single step of a small batch costs more than the step
    itself. ``prepare`` does that once; ``prepared.step(x, states, out=None)``
    then runs one step with only the checks that can fail, and, given
    ``out``, allocates nothing::

        p = crnn.functional.prepare("lstm", weights)
        states = (h, c)                        # each (B, H), or None for zeros
        for x_t in stream:                     # x_t (B, I), or (I,) unbatched
            states = p.step(x_t, states, out=states)   # updated in place

    A step over T inputs gives bitwise what ``forward`` gives over them.

    Parameters
    ----------
    cell : str or crnn.cells.CellSpec
        Any registered cell.
    weights : mapping, or sequence of mappings
        One layer's weights, named as for `forward`; or a stack's, layer 0
        first (layer l > 0 reading the output of layer l - 1, every layer's
        states of one width), whose states then get a leading layer axis:
        (num_layers, B, W).
    **options : str
        The cell's options, as for `forward`.

    Returns
    -------
    Prepared
        ``step(x, states=None, out=None)`` returns the new states, a tuple
        with one array per state of the cell (written into `out`, a tuple
        of arrays of the same shapes, when given; ``out=states`` updates
        them in place); ``refresh()`` packs the weights again.

    Notes
    -----
    The weights are copied when packed. Every change crnn makes to
    parameters (optimizer steps, ``load_state_dict``, ``crnn.load``,
    assigning a parameter) marks all prepared weights out of date, and each
    packs its arrays again (as found in `weights` then) before its next
    step. After changing the arrays yourself in place, call
    `parameters_changed` (or ``refresh()``). Not for concurrent steps of one
    object with its refresh; steps of one object from several threads at
    once are safe.
    """
    spec = cells.get(cell)
    return _prepare_from(
        spec,
        lambda: weights,
        options,
        not isinstance(weights, Mapping),
        step_names(spec, layer=False),
    )


def _prepare_from(
    spec: CellSpec,
    source: Any,
    options: Mapping[str, Any],
    stacked: bool,
    names: StepNames,
) -> Any:
    """`prepare` over ``source()``, which returns the weights as they are now
    (re-read whenever the prepared weights are packed again); the errors of
    a step name its states and out arrays as given."""
    first = prepare_args(spec, source(), options, stacked)
    layout = _C_LAYOUT[spec.name]
    f, g = (0 if o is None else _core.ACTIVATIONS[first.options[o]] for o in layout.option_slots)
    layers = [
        (layout.code, _C_DTYPE[first.dtype], f, g, s["I"], s["H"], s["O"]) for s in first.sizes
    ]

    def weights_now() -> List[tuple]:
        a = prepare_args(spec, source(), options, stacked)
        if a.sizes != first.sizes or a.dtype != first.dtype:
            raise ValueError(
                "the weights changed shape or dtype since they were prepared; prepare them again"
            )
        return [
            tuple(None if name is None else w[name] for name in layout.weight_slots)
            for w in a.weights
        ]

    shape = StepShape(
        first.dtype,
        first.sizes[0]["I"],
        first.widths,
        len(first.sizes) if stacked else None,
        names,
    )
    return _core.Prepared(
        layers,
        weights_now,
        lambda _p, x, states, out: step_args(shape, x, states, out),
        first.widths,
        stacked,
        first.dtype.num,
    )


def linear_loss(
    x: Any, weight: Any, bias: Any, targets: Any, loss: str = "cross_entropy"
) -> Tuple[float, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """An output head ``z = x W^T + b`` and its loss, with the gradients, in
    one C call.

    The loss is crnn.losses' ``softmax_cross_entropy(z, targets)`` (class ids
    on the last axis) or ``mse(z, targets)``, reduction "mean"; the logits
    and their gradient never leave C.

    Parameters
    ----------
    x : ndarray, shape (..., K)
    weight : ndarray, shape (C, K)
        A `crnn.nn.Linear`'s ``weight``.
    bias : ndarray, shape (C,), or None
    targets : ndarray
        "cross_entropy": integer class ids of shape ``x.shape[:-1]`` in
        [0, C); "mse": values of shape ``x.shape[:-1] + (C,)``.
    loss : {"cross_entropy", "mse"}

    Returns
    -------
    loss : float
    dx : ndarray, shaped like x
    dweight : ndarray, shape (C, K)
    dbias : ndarray, shape (C,), or None without a bias
    """
    a = linear_loss_args(x, weight, bias, targets, loss)
    dx = np.empty_like(a.x)
    dweight = np.zeros_like(a.weight)
    dbias = None if a.bias is None else np.zeros_like(a.bias)
    ce = a.loss == "cross_entropy"
    value = _core.head_loss(
        _C_DTYPE[a.dtype],
        a.loss,
        a.x,
        a.weight,
        a.bias,
        a.targets if ce else None,
        None if ce else a.targets,
        dx,
        dweight,
        dbias,
    )
    return value, dx.reshape(a.x_shape), dweight, dbias


def parameters_changed() -> None:
    """Tell crnn that parameter arrays changed in place outside crnn.

    Every prepared weights object (`prepare`, the layers' ``step``) packs
    its arrays again before its next step. crnn calls this itself whenever
    it changes parameters (optimizer steps, ``load_state_dict``,
    ``crnn.load``, assigning a parameter).
    """
    _core.parameters_changed()


def _kernel_views(arrays: List[np.ndarray]) -> List[np.ndarray]:
    """Arrays the kernels can write: each one itself when it is C-contiguous
    and native, else a contiguous native copy (written back afterwards)."""
    return [
        a
        if a.flags.c_contiguous and a.dtype.isnative
        else np.ascontiguousarray(a, a.dtype.newbyteorder("="))
        for a in arrays
    ]


def _write_back(originals: List[np.ndarray], views: List[np.ndarray]) -> None:
    for original, view in zip(originals, views):
        if view is not original:
            original[...] = view


def clip_grad_norm(
    arrays: Arrays,
    max_norm: float,
    norm_type: Union[float, str] = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Scale arrays in place so their total norm is at most max_norm.

    PyTorch's ``clip_grad_norm_`` semantics: the norm is taken over all arrays as
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
    total = float(_core.total_norm(_C_DTYPE[views[0].dtype], views, p))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"the total norm of order {norm_type} of the arrays is non-finite ({total}), so it "
            "cannot be clipped; pass error_if_nonfinite=False to scale by it anyway"
        )
    coef = max_norm / (total + 1e-6)
    if not coef >= 1.0:  # also true for a NaN coefficient, as in PyTorch
        _core.scale(_C_DTYPE[views[0].dtype], views, coef)
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
    _core.clip_value(_C_DTYPE[views[0].dtype], views, clip)
    _write_back(items, views)
