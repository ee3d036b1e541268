"""The cells' named functional entry points, derived from the registry.

``rnn_forward``, ``lstm_forward``, ... are thin wrappers over an engine's
generic ``forward`` / ``backward`` (any cell of `crnn.cells`), with the
positional signatures of PyTorch's functional style. They are not written
by hand: `entry_points` makes ``<cell>_forward`` and ``<cell>_backward`` for
every cell of the registry from its spec (signature, docstring and
annotations), so a new cell has them with no change here, and
`crnn.reference` and `crnn.functional`, which each call `entry_points` with
their own engine, cannot drift apart.

The signatures follow one rule, read from the spec:

    <cell>_forward(x, <state>0, ..., <weight>, ..., <bias>=None, ...,
                   *, <option>=<default>, ..., lengths=None)
        -> (out, <state>_n, ..., cache)
    <cell>_backward(dout, d<state>_n, ..., cache) -> the cell's gradients

The functions are compiled from generated source, as `dataclasses` does, so
they are plain Python functions: ``help()`` shows their real signature and a
call costs no argument binding beyond Python's own.
"""

from __future__ import annotations

import textwrap
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from . import cells
from .cells import CellSpec

Forward = Callable[..., Tuple[np.ndarray, Tuple[np.ndarray, ...], Any]]
Backward = Callable[[CellSpec, Any, Any, Any], Any]


def names(spec: CellSpec) -> Tuple[str, str]:
    """The names of `spec`'s forward and backward entry points."""
    return f"{spec.name}_forward", f"{spec.name}_backward"


def _width(spec: CellSpec) -> str:
    return spec.state_size


def _forward_doc(spec: CellSpec) -> str:
    W = _width(spec)
    lines = [
        f"Run one {spec.title} layer over a time-major batch.",
        "",
        textwrap.indent(spec.equations, "    "),
        "",
        "Parameters",
        "----------",
        "x : ndarray, shape (T, B, I)",
        "    Inputs, time-major. float32 or float64; every floating argument must",
        "    share that dtype, and the computation runs in it.",
    ]
    for s in spec.initial_states:
        lines += [f"{s} : ndarray, shape (B, {W}), or None", "    Initial state; None means zeros."]
    for w in spec.weights:
        shape = spec.shape_text(w.shape)
        lines.append(f"{w.name} : ndarray, shape {shape}" + (", or None" if w.bias else ""))
        doc = w.doc or f"The weight in crnn_weights' {w.role} slot."
        lines.append("    " + doc + (" None means no such bias." if w.bias else ""))
    for o in spec.options:
        choices = ", ".join(f'"{c}"' for c in o.choices)
        lines += [
            f"{o.name} : {{{choices}}}",
            f'    {o.doc or "An option."} Default "{o.default}".',
        ]
    lines += [
        "lengths : array_like of B ints in [0, T], or None",
        "    Valid length of each batch row, in any order. For t >= lengths[b],",
        "    ``out[t, b]`` is zero and the states of row b are held. None means",
        "    every row has length T.",
        "",
        "Returns",
        "-------",
        f"out : ndarray, shape (T, B, {W})",
        "    The output of every step (zero on padded steps).",
    ]
    for s in spec.final_states:
        lines += [
            f"{s} : ndarray, shape (B, {W})",
            "    The state after each row's last valid step; a new array.",
        ]
    lines += [
        f"cache : {spec.cache_type.__name__}",
        "    The normalised inputs and the results, by reference, for",
        f"    `{names(spec)[1]}` (do not modify them in place before it).",
        "",
        "Raises",
        "------",
        "TypeError, ValueError",
        "    On a wrong dtype, shape, option or length (before any work).",
    ]
    return "\n".join(lines)


def _backward_doc(spec: CellSpec) -> str:
    W = _width(spec)
    lines = [
        f"Backpropagation through time for `{names(spec)[0]}`.",
        "",
        "Parameters",
        "----------",
        f"dout : ndarray, shape (T, B, {W}), or None",
        "    Gradient of the loss w.r.t. ``out``; None means zero. Entries on padded",
        "    steps (t >= lengths[b]) are ignored: ``out`` is constant zero there.",
    ]
    for s in spec.final_states:
        lines += [
            f"d{s} : ndarray, shape (B, {W}), or None",
            f"    Gradient of the loss w.r.t. ``{s}``; None means zero.",
        ]
    lines += [
        f"cache : {spec.cache_type.__name__}",
        f"    The cache returned by `{names(spec)[0]}` of either engine.",
        "",
        "Returns",
        "-------",
        f"{spec.grads_type.__name__}",
        textwrap.fill(
            f"``{'``, ``'.join(spec.grads_fields())}``: each shaped like its argument; "
            "the initial states' also when they were None (the gradient w.r.t. the "
            "zero state); None for a bias the forward did not have."
            + (" The two stacked biases' gradients differ." if spec.separate_bias_grads else ""),
            width=76,
            initial_indent="    ",
            subsequent_indent="    ",
        ),
        "",
        "Raises",
        "------",
        "TypeError, ValueError",
        "    On a wrong cache, dtype or shape (before any work).",
    ]
    return "\n".join(lines)


def _source(spec: CellSpec) -> str:
    """The source of `spec`'s two entry points."""
    fwd_name, bwd_name = names(spec)
    states0 = list(spec.initial_states)
    required = [w.name for w in spec.weights if not w.bias]
    biases = [w.name for w in spec.weights if w.bias]
    params = ["x", *states0, *required, *(f"{b}=None" for b in biases), "*"]
    params += [f"{o.name}={o.default!r}" for o in spec.options] + ["lengths=None"]
    weights = ", ".join(f"{w.name!r}: {w.name}" for w in spec.weights)
    options = "".join(f", {o.name}={o.name}" for o in spec.options)
    finals = ", ".join(spec.final_states)
    dfinals = [f"d{s}" for s in spec.final_states]
    return (
        f"def {fwd_name}({', '.join(params)}):\n"
        f"    out, ({finals},), cache = _forward(\n"
        f"        _spec, x, ({''.join(s + ', ' for s in states0)}), {{{weights}}},\n"
        f"        lengths=lengths{options})\n"
        f"    return out, {finals}, cache\n"
        f"\n"
        f"def {bwd_name}(dout, {', '.join(dfinals)}, cache):\n"
        f"    return _backward(_spec, dout, ({''.join(d + ', ' for d in dfinals)}), cache)\n"
    )


def _annotations(spec: CellSpec) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    fwd: Dict[str, Any] = {"x": np.ndarray}
    fwd.update({s: Optional[np.ndarray] for s in spec.initial_states})
    fwd.update({w.name: Optional[np.ndarray] if w.bias else np.ndarray for w in spec.weights})
    fwd.update({o.name: str for o in spec.options})
    fwd["lengths"] = Optional[Any]
    results = (np.ndarray,) * (1 + len(spec.states)) + (spec.cache_type,)
    fwd["return"] = Tuple[results]
    bwd: Dict[str, Any] = {"dout": Optional[np.ndarray]}
    bwd.update({f"d{s}": Optional[np.ndarray] for s in spec.final_states})
    bwd.update(cache=spec.cache_type, **{"return": spec.grads_type})
    return fwd, bwd


def make(spec: CellSpec, forward: Forward, backward: Backward, module: str) -> Dict[str, Any]:
    """`spec`'s ``<cell>_forward`` and ``<cell>_backward`` over one engine.

    `forward(spec, x, states, weights, lengths=..., **options)` and
    `backward(spec, dout, dstates, cache)` are the engine's; `module` names
    the engine module the functions are shown in.
    """
    namespace: Dict[str, Any] = {"_spec": spec, "_forward": forward, "_backward": backward}
    code = compile(_source(spec), f"<crnn entry points of the {spec.name} cell>", "exec")
    exec(code, namespace)  # noqa: S102 - source generated above from the spec alone
    made = {name: namespace[name] for name in names(spec)}
    docs = (_forward_doc(spec), _backward_doc(spec))
    for fn, doc, hints in zip(made.values(), docs, _annotations(spec)):
        fn.__module__ = module
        fn.__qualname__ = fn.__name__
        fn.__doc__ = doc
        fn.__annotations__ = hints
    return made


def entry_points(forward: Forward, backward: Backward, module: str) -> Dict[str, Any]:
    """Every registered cell's named entry points over one engine, by name
    (``{"rnn_forward": ..., "rnn_backward": ..., "lstm_forward": ...}``)."""
    functions: Dict[str, Any] = {}
    for spec in cells.REGISTRY.values():
        functions.update(make(spec, forward, backward, module))
    return functions
