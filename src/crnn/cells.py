"""The cell registry: one specification per recurrent cell (the bottom floor).

A cell is a description, not a copy of the machinery. Its `CellSpec` says
what the cell is made of (gates, carried states, weights and their shapes,
options such as the activation, what a forward saves for its backward) and
how it meets other libraries (PyTorch's module and gate order, ONNX's gate
order). Everything above reads the registry: the validator, both engines,
the layers, TBPTT, the models, the adapters and the tests. The engines keep
the kernels themselves, keyed by the cell's name: `crnn.reference` its NumPy
specification, the C library its cell description (csrc/cell_<name>.inc).

Adding a cell means its C description, an entry here and its NumPy
functions in `crnn.reference`; see docs/ARCHITECTURE.md. A spec that gives
no cache or gradient type gets NamedTuples derived from its fields (the
registry's own four cells spell theirs out, with shapes in comments).

This module imports nothing from crnn, so every floor may import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union, cast

import numpy as np

__all__ = [
    "CellSpec",
    "Weight",
    "Option",
    "REGISTRY",
    "get",
    "names",
    "of_cache",
    "NONLINEARITIES",
    "OUTPUT_NONLINEARITIES",
    "PRECISIONS",
    "BF16_TOLERANCE",
    "RNNCache",
    "RNNGrads",
    "LSTMCache",
    "LSTMGrads",
    "GRUCache",
    "GRUGrads",
    "JordanCache",
    "JordanGrads",
]

NONLINEARITIES = ("tanh", "relu", "sigmoid")
OUTPUT_NONLINEARITIES = ("identity",) + NONLINEARITIES

# What a layer's matrix products compute in: "native" is the arrays' dtype;
# "bf16" (float32 arrays only) rounds every operand of the products to
# bfloat16 and sums in float32 (crnn.reference.round_bf16; docs: precision).
PRECISIONS = ("native", "bf16")

# The C engine with precision="bf16" agrees with crnn.reference run with the
# same option within this array-wise relative error (max |c - ref| / max
# |ref|), for every result (outputs, states, saved arrays, gradients). Both
# round the same operands, but take the float32 sums in another order, so an
# operand a last bit away from a rounding boundary may round to the
# neighbouring bfloat16 value (a change of 2^-8 relative) in one engine and
# not in the other, and later steps carry that on: measured up to 4e-3 over
# 60 steps (typically 1e-6 to 1e-4 in the forward, 1e-4 to 2e-3 in the
# gradients), where bfloat16 itself moves results by 1e-3 to 1.5e-2 from
# float32.
BF16_TOLERANCE = 1e-2


@dataclass(frozen=True)
class Weight:
    """One parameter of a cell.

    ``shape`` is symbolic: each entry is ``"I"`` (input size), ``"H"``
    (hidden size), ``"O"`` (output size) or ``"G"`` (gates * H). ``role`` is
    the slot of the C interface's ``crnn_weights`` it fills.
    """

    name: str
    shape: Tuple[str, ...]
    role: str
    bias: bool = False  # present only when the layer has biases; None means absent
    doc: str = ""  # what it is, for the docstrings of the cell's entry points


@dataclass(frozen=True)
class Option:
    """A non-array argument of a cell, with its allowed values."""

    name: str
    choices: Tuple[str, ...]
    default: str
    role: str  # what it sets in C: "activation", "output_activation", "precision" (the dtype code)
    doc: str = ""  # what it is, for the docstrings of the cell's entry points


@dataclass(frozen=True)
class CellSpec:
    """What a recurrent cell is, for everything that iterates the registry.

    Attributes
    ----------
    name : str
        The registry key, the C cell's name and the ``cell=`` argument of
        layers and models ("rnn", "lstm", ...).
    title : str
        For messages and class names ("LSTM").
    gates : int
        Weight rows per hidden unit: G = gates * H.
    states : tuple of str
        The carried states, e.g. ``("h",)`` or ``("h", "c")``; their initial
        values are named ``<state>0``, their final values ``<state>_n``.
    state_size : {"H", "O"}
        The width of the states and of the output (the Jordan network feeds
        back its O-wide output).
    weights : tuple of Weight
        In PyTorch's order; the gradients come in the same order.
    options : tuple of Option
    saved : tuple of (str, str)
        The arrays a forward saves for its backward besides ``out``, with
        their symbolic widths, in the C interface's order.
    separate_bias_grads : bool
        The two biases enter differently (the GRU's b_hn), so their
        gradients differ.
    equations : str
        The step, one formula a line, for the docstrings of the cell's
        entry points.
    cache_type, grads_type : NamedTuple classes, or None
        What the functional forward returns for the backward, and what the
        backward returns. None derives them from the fields above
        (``<Title>Cache``, ``<Title>Grads``); given classes must have the
        derived fields in the derived order.
    torch_module : str or None
        The torch.nn class with the same semantics and parameter layout.
    onnx_gate_order : tuple of int or None
        The ONNX operator's gate blocks as indices of this cell's.
    onnx_operator : str or None
        The standard ONNX operator computing this cell ("RNN", "LSTM",
        "GRU"), with these attribute values (``onnx_attributes``, e.g. the
        GRU's ``linear_before_reset``): `crnn.onnx` exports the cell as that
        node and runs such nodes with this cell.
    """

    name: str
    title: str
    gates: int
    states: Tuple[str, ...]
    weights: Tuple[Weight, ...]
    equations: str = ""
    cache_type: Any = None  # a NamedTuple class once constructed
    grads_type: Any = None
    state_size: str = "H"
    options: Tuple[Option, ...] = ()
    saved: Tuple[Tuple[str, str], ...] = ()
    separate_bias_grads: bool = False
    torch_module: Optional[str] = None
    onnx_gate_order: Optional[Tuple[int, ...]] = None
    onnx_operator: Optional[str] = None
    onnx_attributes: Tuple[Tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        # Names every call looks up, computed once (the dataclass is frozen).
        derived = {
            "weight_names": tuple(w.name for w in self.weights),
            "required_weights": tuple(w.name for w in self.weights if not w.bias),
            "option_names": tuple(o.name for o in self.options),
            "initial_states": tuple(f"{s}0" for s in self.states),
            "final_states": tuple(f"{s}_n" for s in self.states),
            "uses_output_size": any("O" in w.shape for w in self.weights),
            "size_sources": _size_sources(self),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)
        biases = [w.bias for w in self.weights]
        if biases != sorted(biases):
            raise ValueError(f"{self.name}: the biases must come after the other weights")
        for kind, fields in (("cache", self.cache_fields()), ("grads", self.grads_fields())):
            given = getattr(self, f"{kind}_type")
            if given is None:
                object.__setattr__(self, f"{kind}_type", _derived_tuple(self, kind, fields))
            elif tuple(given._fields) != fields:
                raise TypeError(
                    f"{self.name}: {given.__name__} must have the fields {fields}, "
                    f"got {given._fields}"
                )

    # Set by __post_init__ (declared for readers and type checkers).
    weight_names: Tuple[str, ...] = field(init=False)
    required_weights: Tuple[str, ...] = field(init=False)
    option_names: Tuple[str, ...] = field(init=False)
    initial_states: Tuple[str, ...] = field(init=False)  # "h0", "c0"
    final_states: Tuple[str, ...] = field(init=False)  # "h_n", "c_n"
    uses_output_size: bool = field(init=False)  # the cell has an output size O (Jordan)
    # Where each size is read: (weight, axis, "I" / "H" / "O", divisor), the
    # first required weight with it (a "G" axis gives H = G / gates).
    size_sources: Tuple[Tuple[str, int, str, int], ...] = field(init=False)

    def cache_fields(self) -> Tuple[str, ...]:
        """The cache's fields: x, initial states, weights, lengths, options,
        out, saved arrays."""
        return (
            ("x",)
            + self.initial_states
            + self.weight_names
            + ("lengths",)
            + self.option_names
            + ("out",)
            + tuple(name for name, _ in self.saved)
        )

    def grads_fields(self) -> Tuple[str, ...]:
        """The gradients' fields: dx, the initial states', the weights'."""
        return tuple("d" + name for name in ("x",) + self.initial_states + self.weight_names)

    def symbol_text(self, symbol: str) -> str:
        """A shape symbol as the docs write it: "G" is "4H" for four gates."""
        return ("H" if self.gates == 1 else f"{self.gates}H") if symbol == "G" else symbol

    def shape_text(self, shape: Tuple[str, ...]) -> str:
        """A symbolic shape as the docs write it: ("G", "I") is "(4H, I)"."""
        inner = ", ".join(map(self.symbol_text, shape))
        return f"({inner},)" if len(shape) == 1 else f"({inner})"

    def option(self, name: str) -> Option:
        """The option called `name` (KeyError if the cell has none)."""
        for o in self.options:
            if o.name == name:
                return o
        raise KeyError(name)

    def dims(self, I: int, H: int, O: int = 0) -> Dict[str, int]:  # noqa: E741
        """The symbols of the shapes for these sizes."""
        return {"I": I, "H": H, "O": O, "G": self.gates * H}

    def weight_shape(self, weight: Weight, sizes: Dict[str, int]) -> Tuple[int, ...]:
        """The shape of `weight` for these sizes (see `dims`)."""
        return tuple(map(sizes.__getitem__, weight.shape))

    def width(self, sizes: Dict[str, int]) -> int:
        """The width of the states and of the output."""
        return sizes[self.state_size]


def _size_sources(spec: CellSpec) -> Tuple[Tuple[str, int, str, int], ...]:
    sources: Dict[str, Tuple[str, int, str, int]] = {}
    for w in spec.weights:
        for axis, symbol in enumerate(w.shape):
            key = "H" if symbol == "G" else symbol
            if not w.bias and key not in sources:
                sources[key] = (w.name, axis, key, spec.gates if symbol == "G" else 1)
    return tuple(sources.values())


def _derived_tuple(spec: CellSpec, kind: str, fields: Tuple[str, ...]) -> Any:
    """The NamedTuple class of a spec that gives no cache or grads type."""
    optional = set(spec.initial_states) | {w.name for w in spec.weights if w.bias} | {"lengths"}
    types: List[Tuple[str, Any]] = []
    for f in fields:
        if kind == "cache":
            kind_of = str if f in spec.option_names else np.ndarray
            types.append((f, Optional[kind_of] if f in optional else kind_of))
        else:
            absent = f[1:] in optional and f[1:] not in spec.initial_states
            types.append((f, Optional[np.ndarray] if absent else np.ndarray))
    name = f"{spec.title}{'Cache' if kind == 'cache' else 'Grads'}"
    cls = cast(Any, NamedTuple)(name, types)
    cls.__module__ = __name__
    if kind == "cache":
        cls.__doc__ = (
            f"What the {spec.title} cell's backward needs from its forward (references, "
            "not copies): the normalised inputs, then out and the saved arrays."
        )
    else:
        cls.__doc__ = (
            f"Gradients of the {spec.title} cell's backward: dx, the initial states' "
            "(also when they were None), the weights' (None for an absent bias)."
        )
    return cls


# --------------------------------------------------------------------------
# Caches and gradients. A cache holds the normalised inputs by reference and
# the forward's outputs, in the order: x, initial states, weights, lengths,
# options, out, saved arrays. Gradients: dx, initial states', weights'.
# --------------------------------------------------------------------------


class RNNCache(NamedTuple):
    """What `rnn_backward` needs from `rnn_forward` (references, not copies).

    Do not modify `out` in place between the forward and the backward: the
    backward reads it.
    """

    x: np.ndarray  # (T, B, I)
    h0: Optional[np.ndarray]  # (B, H) or None for zeros
    weight_ih: np.ndarray  # (H, I)
    weight_hh: np.ndarray  # (H, H)
    bias_ih: Optional[np.ndarray]  # (H,) or None
    bias_hh: Optional[np.ndarray]  # (H,) or None
    lengths: Optional[np.ndarray]  # (B,) int64 in [0, T], or None
    nonlinearity: str  # one of NONLINEARITIES
    precision: str  # one of PRECISIONS
    out: np.ndarray  # (T, B, H); zero where t >= lengths[b]


class RNNGrads(NamedTuple):
    """Gradients of `rnn_backward`, in PyTorch's parameter order."""

    dx: np.ndarray  # (T, B, I)
    dh0: np.ndarray  # (B, H), also when h0 was None (gradient w.r.t. the zero state)
    dweight_ih: np.ndarray  # (H, I)
    dweight_hh: np.ndarray  # (H, H)
    dbias_ih: Optional[np.ndarray]  # (H,) or None when the forward had no bias_ih
    dbias_hh: Optional[np.ndarray]  # (H,) or None when the forward had no bias_hh


class LSTMCache(NamedTuple):
    """What `lstm_backward` needs from `lstm_forward` (either engine's)."""

    x: np.ndarray  # (T, B, I)
    h0: Optional[np.ndarray]  # (B, H) or None
    c0: Optional[np.ndarray]  # (B, H) or None
    weight_ih: np.ndarray  # (4H, I), gates [i f g o]
    weight_hh: np.ndarray  # (4H, H)
    bias_ih: Optional[np.ndarray]  # (4H,) or None
    bias_hh: Optional[np.ndarray]  # (4H,) or None
    lengths: Optional[np.ndarray]  # (B,) int64 or None
    precision: str  # one of PRECISIONS
    out: np.ndarray  # (T, B, H): h_t, zero on padded steps
    gates: np.ndarray  # (T, B, 4H): the activations i, f, g, o (zero on padded steps)
    cells: np.ndarray  # (T, B, H): c_t (zero on padded steps)


class LSTMGrads(NamedTuple):
    """Gradients of `lstm_backward`, in PyTorch's parameter order."""

    dx: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray
    dweight_ih: np.ndarray
    dweight_hh: np.ndarray
    dbias_ih: Optional[np.ndarray]
    dbias_hh: Optional[np.ndarray]


class GRUCache(NamedTuple):
    """What `gru_backward` needs from `gru_forward` (either engine's)."""

    x: np.ndarray  # (T, B, I)
    h0: Optional[np.ndarray]  # (B, H) or None
    weight_ih: np.ndarray  # (3H, I), gates [r z n]
    weight_hh: np.ndarray  # (3H, H)
    bias_ih: Optional[np.ndarray]  # (3H,) or None
    bias_hh: Optional[np.ndarray]  # (3H,) or None
    lengths: Optional[np.ndarray]  # (B,) int64 or None
    precision: str  # one of PRECISIONS
    out: np.ndarray  # (T, B, H): h_t, zero on padded steps
    gates: np.ndarray  # (T, B, 3H): the activations r, z, n (zero on padded steps)
    hn: np.ndarray  # (T, B, H): h_{t-1} W_hn^T + b_hn (zero on padded steps)


class GRUGrads(NamedTuple):
    """Gradients of `gru_backward`, in PyTorch's parameter order."""

    dx: np.ndarray
    dh0: np.ndarray
    dweight_ih: np.ndarray
    dweight_hh: np.ndarray
    dbias_ih: Optional[np.ndarray]
    dbias_hh: Optional[np.ndarray]


class JordanCache(NamedTuple):
    """What `jordan_backward` needs from `jordan_forward` (references, not copies)."""

    x: np.ndarray  # (T, B, I)
    y0: Optional[np.ndarray]  # (B, O) or None for zeros
    weight_ih: np.ndarray  # (H, I)
    weight_hy: np.ndarray  # (H, O): the fed-back output into the hidden layer
    weight_ho: np.ndarray  # (O, H): hidden layer to output
    bias_ih: Optional[np.ndarray]  # (H,) or None
    bias_hh: Optional[np.ndarray]  # (H,) or None
    bias_ho: Optional[np.ndarray]  # (O,) or None
    lengths: Optional[np.ndarray]  # (B,) int64 in [0, T], or None
    nonlinearity: str  # f, one of NONLINEARITIES
    output_nonlinearity: str  # g, "identity" or one of NONLINEARITIES
    out: np.ndarray  # (T, B, O) y_t; zero where t >= lengths[b]
    hidden: np.ndarray  # (T, B, H) h_t; zero where t >= lengths[b]


class JordanGrads(NamedTuple):
    """Gradients of `jordan_backward`."""

    dx: np.ndarray  # (T, B, I)
    dy0: np.ndarray  # (B, O), also when y0 was None
    dweight_ih: np.ndarray
    dweight_hy: np.ndarray
    dweight_ho: np.ndarray
    dbias_ih: Optional[np.ndarray]
    dbias_hh: Optional[np.ndarray]
    dbias_ho: Optional[np.ndarray]


# --------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------

_STACKED_WEIGHTS = (
    Weight("weight_ih", ("G", "I"), "w_ih", doc="Input-to-hidden weights (``weight_ih_l0``)."),
    Weight("weight_hh", ("G", "H"), "w_hh", doc="Hidden-to-hidden weights (``weight_hh_l0``)."),
    Weight("bias_ih", ("G",), "b_ih", bias=True, doc="Input-side bias."),
    Weight("bias_hh", ("G",), "b_hh", bias=True, doc="Recurrent-side bias."),
)

_NONLINEARITY = Option(
    "nonlinearity", NONLINEARITIES, "tanh", "activation", doc="The activation f."
)

_PRECISION = Option(
    "precision",
    PRECISIONS,
    "native",
    "precision",
    doc=(
        'What the matrix products compute in: "native" (the arrays\' dtype) or, '
        'float32 only, "bf16": their operands (weights, x, h_{t-1}, and in the '
        "backward the gate gradients) rounded to bfloat16, the sums, states and "
        "gradients float32; AVX512_BF16 when the CPU has it. Agrees with "
        "crnn.reference's bf16 within an array-wise relative error of 1e-2 "
        "(crnn.cells.BF16_TOLERANCE); differs from float32 by about 1e-3 to 1e-2."
    ),
)

RNN = CellSpec(
    name="rnn",
    title="RNN",
    gates=1,
    states=("h",),
    weights=_STACKED_WEIGHTS,
    equations="h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)",
    options=(_NONLINEARITY, _PRECISION),
    cache_type=RNNCache,
    grads_type=RNNGrads,
    torch_module="RNN",
    onnx_gate_order=(0,),
    onnx_operator="RNN",
)

LSTM = CellSpec(
    name="lstm",
    title="LSTM",
    gates=4,
    states=("h", "c"),
    weights=_STACKED_WEIGHTS,
    equations=(
        "i, f, g, o = the gate blocks of x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh\n"
        "c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g)\n"
        "h_t = sigmoid(o) tanh(c_t)"
    ),
    options=(_PRECISION,),
    saved=(("gates", "G"), ("cells", "H")),
    cache_type=LSTMCache,
    grads_type=LSTMGrads,
    # ONNX's LSTM stacks [i o f c], PyTorch's (and crnn's) [i f g o].
    torch_module="LSTM",
    onnx_gate_order=(0, 3, 1, 2),
    onnx_operator="LSTM",
)

GRU = CellSpec(
    name="gru",
    title="GRU",
    gates=3,
    states=("h",),
    weights=_STACKED_WEIGHTS,
    equations=(
        "r = sigmoid(x_t W_ir^T + b_ir + h_{t-1} W_hr^T + b_hr), z likewise\n"
        "n = tanh(x_t W_in^T + b_in + r (h_{t-1} W_hn^T + b_hn))\n"
        "h_t = (1 - z) n + z h_{t-1}"
    ),
    options=(_PRECISION,),
    saved=(("gates", "G"), ("hn", "H")),
    separate_bias_grads=True,
    cache_type=GRUCache,
    grads_type=GRUGrads,
    # ONNX's GRU stacks [z r h], PyTorch's [r z n] (linear_before_reset=1).
    torch_module="GRU",
    onnx_gate_order=(1, 0, 2),
    onnx_operator="GRU",
    onnx_attributes=(("linear_before_reset", 1),),
)

GRU_RESET_BEFORE = CellSpec(
    name="gru_reset_before",
    title="GRUResetBefore",
    gates=3,
    states=("h",),
    weights=_STACKED_WEIGHTS,
    equations=(
        "r = sigmoid(x_t W_ir^T + b_ir + h_{t-1} W_hr^T + b_hr), z likewise\n"
        "n = tanh(x_t W_in^T + b_in + (r h_{t-1}) W_hn^T + b_hn)\n"
        "h_t = (1 - z) n + z h_{t-1}"
    ),
    saved=(("gates", "G"), ("rh", "H")),
    # ONNX's default GRU (linear_before_reset=0; Keras's reset_after=False):
    # r applies to h_{t-1} before its product with W_hn. torch.nn.GRU is the
    # other variant (linear_before_reset=1), so no torch module computes this.
    onnx_gate_order=(1, 0, 2),
    onnx_operator="GRU",
    onnx_attributes=(("linear_before_reset", 0),),
)

JORDAN = CellSpec(
    name="jordan",
    title="Jordan",
    gates=1,
    states=("y",),
    state_size="O",
    weights=(
        Weight("weight_ih", ("H", "I"), "w_ih", doc="Input-to-hidden weights."),
        Weight("weight_hy", ("H", "O"), "w_hh", doc="Fed-back output to hidden weights."),
        Weight("weight_ho", ("O", "H"), "w_ho", doc="Hidden-to-output weights."),
        Weight("bias_ih", ("H",), "b_ih", bias=True, doc="Input-side bias."),
        Weight("bias_hh", ("H",), "b_hh", bias=True, doc="Recurrent-side bias."),
        Weight("bias_ho", ("O",), "b_ho", bias=True, doc="Output bias."),
    ),
    equations=(
        "h_t = f(x_t W_ih^T + b_ih + y_{t-1} W_hy^T + b_hh)\n"
        "y_t = g(h_t W_ho^T + b_ho)    (the previous *output* is fed back)"
    ),
    options=(
        _NONLINEARITY,
        Option(
            "output_nonlinearity",
            OUTPUT_NONLINEARITIES,
            "identity",
            "output_activation",
            doc="The output activation g.",
        ),
    ),
    saved=(("hidden", "H"),),
    cache_type=JordanCache,
    grads_type=JordanGrads,
)

REGISTRY: Dict[str, CellSpec] = {
    spec.name: spec for spec in (RNN, LSTM, GRU, JORDAN, GRU_RESET_BEFORE)
}

# Derived cache and gradient types live here by name, as the spelled-out ones
# do, so that pickle finds them.
for _spec in REGISTRY.values():
    for _cls in (_spec.cache_type, _spec.grads_type):
        globals().setdefault(_cls.__name__, _cls)


def names() -> Tuple[str, ...]:
    """The registered cells' names, in registry order."""
    return tuple(REGISTRY)


def get(cell: Union[str, CellSpec]) -> CellSpec:
    """The spec of `cell` (a name or a spec), or ValueError naming the choices."""
    if isinstance(cell, CellSpec):
        return cell
    if isinstance(cell, str):
        spec = REGISTRY.get(cell.lower())
        if spec is not None:
            return spec
    raise ValueError(f"cell must be one of {names()}, got {cell!r}")


def of_cache(cache: Any) -> CellSpec:
    """The spec whose forward made `cache`, or TypeError."""
    for spec in REGISTRY.values():
        if isinstance(cache, spec.cache_type):
            return spec
    raise TypeError(
        f"cache must be the cache returned by a forward call (one of "
        f"{', '.join(s.cache_type.__name__ for s in REGISTRY.values())}), "
        f"got {type(cache).__name__}"
    )
