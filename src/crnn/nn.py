"""Layers: `Recurrent` (any cell), `RNN`, `LSTM`, `GRU`, `Jordan`, the one-step
`RNNCell`, `LSTMCell`, `GRUCell`, and `Linear`, with PyTorch's semantics.

Every recurrent layer is written once against the functional API's generic
``forward`` / ``backward`` and the cell registry (`crnn.cells`): a cell's
spec says which weights, states and options it has, so `Recurrent` (stacking,
directions, per-row reversal, dropout, batch_first, unbatched input) and
`RecurrentCell` (one step) run any registered cell. `RNN`, `LSTM`, `GRU` and
the ``*Cell`` classes only fix the cell and PyTorch's signatures. Each layer
runs on the engine named by its ``backend``: ``"c"`` (`crnn.functional`) or
``"numpy"`` (`crnn.reference`). Parameters use PyTorch's names and shapes,
so ``torch.nn.LSTM(...).state_dict()`` loads as is.

Conventions shared by the layers:

- The dtype (float32 or float64) is fixed at construction. Inputs of another
  dtype raise TypeError: nothing is cast silently.
- ``forward`` (also ``layer(...)``) keeps a cache of its *last* call;
  ``backward`` uses it (or an explicit ``cache=``, see each layer), returns
  the gradients with respect to the inputs and *accumulates* the parameter
  gradients into ``layer.grads``. Call ``zero_grad()`` between steps.
- A state is one array for a cell with one state (RNN, GRU: ``h``) and a
  tuple for a cell with several (LSTM: ``(h, c)``), in forward's arguments,
  its results and the backward's: the form torch.nn uses.
- Inputs are never modified and outputs are new arrays. The cache refers to
  the inputs and parameters (no copies): do not modify them in place between
  ``forward`` and ``backward``.
- Layers are not thread-safe (the cache is per object): use one object per
  thread.
"""

from __future__ import annotations

import inspect
import math
import numbers
import re
import textwrap
import warnings
from typing import (
    Any,
    Callable,
    ClassVar,
    Dict,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

import numpy as np

from . import cells, init as _init
from ._validate import check_lengths, check_precision, step_names, token_ids
from .attention import Attention
from .cells import CellSpec
from .embedding import Embedding
from .module import Module, check_int, config_sizes, float_dtype, input_array

__all__ = [
    "Recurrent",
    "RNN",
    "LSTM",
    "GRU",
    "Jordan",
    "RecurrentCell",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "Linear",
    "Embedding",
    "Attention",
    "recurrent_layer",
    "map_state",
    "State",
]

State = Union[np.ndarray, Tuple[np.ndarray, ...]]
_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def _check_seed(seed: Any) -> Optional[int]:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be a non-negative integer or None, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed}")
    return int(seed)


def _check_shape(name: str, arr: np.ndarray, expected: Tuple[int, ...], meaning: str) -> None:
    if arr.shape != tuple(expected):
        raise ValueError(f"{name} must have shape {meaning} = {tuple(expected)}, got {arr.shape}")


def _check_options(spec: CellSpec, options: Dict[str, Any]) -> Dict[str, str]:
    """The cell's options with defaults filled in; errors name the option."""
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


def _rngs(seed: Optional[int]) -> Tuple[np.random.Generator, np.random.Generator]:
    """(init generator, dropout generator). The first is np.random.default_rng(seed)."""
    seq = np.random.SeedSequence(seed)
    return np.random.default_rng(seq), np.random.default_rng(seq.spawn(1)[0])


def cell_parameters(
    spec: CellSpec,
    init: str,
    rng: np.random.Generator,
    sizes: Dict[str, int],
    bias: bool,
    dtype: np.dtype,
) -> List[Tuple[str, np.ndarray]]:
    """A fresh set of `spec`'s weights, in the spec's order.

    ``"pytorch"``: every parameter U(-1/sqrt(H), 1/sqrt(H)), as torch.nn
    does. ``"orthogonal"``: the input weights so too, each gate's block of
    the recurrent weight orthogonal; ``"glorot"``: Glorot-uniform weights.
    Other weights (an output layer) are Glorot-uniform and biases zero for
    both. Draws are made in the spec's order, so a seed gives the same
    parameters every time.
    """
    H = sizes["H"]
    params = []
    for w in spec.weights:
        if w.bias and not bias:
            continue
        shape = spec.weight_shape(w, sizes)
        if init == "pytorch":
            value = _init.pytorch_default(shape, H, rng, dtype)
        elif w.bias:
            value = np.zeros(shape, dtype)
        elif w.role == "w_hh" and init == "orthogonal":
            rows = shape[0] // spec.gates
            blocks = [
                _init.orthogonal((rows,) + shape[1:], rng, dtype=dtype) for _ in range(spec.gates)
            ]
            value = np.concatenate(blocks, axis=0)
        elif w.role == "w_ih" and init == "orthogonal":
            value = _init.pytorch_default(shape, H, rng, dtype)
        else:
            value = _init.glorot_uniform(shape, rng, dtype)
        params.append((w.name, value))
    return params


def _state_list(spec: CellSpec, value: Any, name: str) -> List[Any]:
    """A state argument as one entry (array or None) per state of the cell.

    One-state cells take the array itself (or None); others a tuple with
    one item per state (items may be None), or None.
    """
    n = len(spec.states)
    if n == 1:
        return [value]
    if value is None:
        return [None] * n
    if isinstance(value, np.ndarray) or not isinstance(value, (tuple, list)) or len(value) != n:
        kind = {2: "pair", 3: "triple"}.get(n, f"{n}-tuple")
        raise TypeError(
            f"{name} must be None or a {kind} ({', '.join(spec.states)}) of arrays, "
            f"got {type(value).__name__}"
        )
    return list(value)


def _state_value(spec: CellSpec, arrays: Sequence[np.ndarray]) -> State:
    """One entry per state, in the form `_state_list` takes."""
    return arrays[0] if len(spec.states) == 1 else tuple(arrays)


def map_state(fn: Callable[[np.ndarray], np.ndarray], state: Any) -> Any:
    """`fn` applied to each array of a recurrent state, keeping its form.

    A state is one array (``h``), a tuple of arrays (an LSTM's ``(h, c)``)
    or None, which stays None.
    """
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(None if part is None else fn(part) for part in state)
    return fn(state)


def _integer_array(x: Any) -> Optional[np.ndarray]:
    """`x` as an array when it is token ids for a layer (integers, (T, B) or
    unbatched (T,)), else None."""
    return token_ids(x, ndims=(1, 2))


def _prepare_step(layer: Any, source: Callable[[], Any], stacked: bool) -> Any:
    """The layer's prepared weights for `step` (`crnn.functional.prepare` on
    its engine), kept on the layer; `source` returns its weights as they are
    now (one mapping, or one per layer of a stack)."""
    spec = layer.spec
    names = step_names(spec, layer=True)
    prepared = layer.engine._prepare_from(spec, source, layer.options, stacked, names)
    layer._step_prepared, layer._step_backend = prepared, layer.backend
    return prepared


def _prepared_one_layer(layer: Any) -> Any:
    """A one-layer module's prepared weights (its cell's weight names)."""
    prepared = layer._step_prepared
    if prepared is None or layer._step_backend != layer.backend:
        weights = lambda: {w: layer.params.get(w) for w in layer.spec.weight_names}  # noqa: E731
        prepared = _prepare_step(layer, weights, False)
    return prepared


_STEP_NOTES = """
Notes
-----
The weights are packed on the first step and reused until a parameter
changes: crnn's own changes (optimizer steps, ``load_state_dict``,
``crnn.load``, assigning a parameter) are noticed; after modifying
parameter arrays in place yourself, call ``parameters_changed()``. No
dropout is applied (a step is inference). Given ``out``, a step allocates
nothing, and ``out=state`` updates the state in place. Over T steps the
states are bitwise those of ``forward`` over the same T steps.
"""


def _with_step_notes(method: _F) -> _F:
    """`method` with the step methods' shared Notes section after its
    docstring (help() and the manual show it)."""
    method.__doc__ = inspect.cleandoc(method.__doc__ or "") + "\n" + _STEP_NOTES
    return method


def _run_step(layer: Any, prepared: Any, x: Any, state: Any, out: Any) -> Any:
    """One step of `prepared` with the layer's form of the state: one array,
    or a tuple for a cell with several states."""
    if len(layer.spec.states) == 1:
        return prepared.step(
            x, None if state is None else (state,), None if out is None else (out,)
        )[0]
    return prepared.step(x, state, out)


def _reverse_index(T: int, B: int, lengths: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """Time indices (T, B) reversing each row within its own length.

    ``idx[t, b] = lengths[b] - 1 - t`` for t < lengths[b], else t (padded
    steps stay where they are). The map is its own inverse. None (plain
    reversal of the time axis) when there are no lengths.
    """
    if lengths is None:
        return None
    t = np.arange(T, dtype=np.int64)[:, None]
    return np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)


def _reverse(a: np.ndarray, idx: Optional[np.ndarray]) -> np.ndarray:
    """Reverse the time axis of a (T, B, ...) array (per row, see _reverse_index)."""
    if idx is None:
        return a[::-1]
    return a[idx, np.arange(a.shape[1])[None, :]]


def _time_major(x: np.ndarray, batch_first: bool) -> np.ndarray:
    """x as (T, B, F): unbatched (T, F) gets a batch axis of 1."""
    if x.ndim == 2:
        return x[:, None, :]
    return x.transpose(1, 0, 2) if batch_first else x


def _with_parameters(text: str) -> Callable[[_T], _T]:
    """Class decorator: fills the ``{parameters}`` field of the docstring, so
    the layers share one parameter section and ``help()`` shows it."""

    def decorate(cls: _T) -> _T:
        doc = cls.__doc__ or ""
        # The shared text takes the indentation of the docstring's own
        # "Parameters" heading, so that the sections line up for help() and Sphinx.
        heading = re.search(r"^([ \t]*)Parameters$", doc, re.MULTILINE)
        indent = heading.group(1) if heading else ""
        fill = textwrap.indent(textwrap.dedent(text.strip("\n")), indent)
        cls.__doc__ = re.sub(r"^[ \t]*\{parameters\}$", lambda _: fill, doc, flags=re.MULTILINE)
        return cls

    return decorate


_STACKED_PARAMETERS = """
    input_size : int
        Features per input step, I.
    hidden_size : int
        Features of the state, H (>= 1).
    num_layers : int
        Stacked layers (>= 1).
    bias : bool
        Whether each layer has ``bias_ih`` and ``bias_hh`` (and ``bias_ho``).
    batch_first : bool
        If True, ``x`` and ``out`` are (B, T, ·); the states never are.
    dropout : float in [0, 1]
        Dropout probability on the outputs of every layer but the last, in
        training mode only. Masks come from ``self.dropout_rng``, seeded by
        `seed`, so runs are reproducible.
    bidirectional : bool
        Add a reverse direction per layer (D = 2).
    dtype : float32 or float64
        The dtype of the parameters and of every input and output.
    seed : int or None
        Seeds the initialisation (``np.random.default_rng(seed)``) and,
        through a spawned child sequence, ``self.dropout_rng``.
    backend : {"c", "numpy"}
        The engine: the C kernels or the NumPy reference.
    init : {"pytorch", "orthogonal", "glorot"}
        The initialisation scheme (see `cell_parameters` and `crnn.init`;
        ``"orthogonal"`` makes each gate's block of ``weight_hh`` orthogonal).
"""


# The RNN, LSTM and GRU layers' opt-in bfloat16 products.
_PRECISION_PARAMETER = """
    precision : {"native", "bf16"}
        What the matrix products compute in. "native" (the default): the
        layer's dtype. "bf16" (float32 layers only): their operands --
        weights, inputs, h_{t-1}, and in the backward the gate gradients --
        rounded to bfloat16, the sums, states, outputs and gradients
        float32; on AVX512_BF16 when the CPU has it. Results agree with
        the NumPy backend's bf16 within an array-wise relative error of
        1e-2 (``crnn.cells.BF16_TOLERANCE``) and differ from float32 by
        about bfloat16's precision (~1e-2 relative). The layer's ``step``
        runs in native precision only.
""".lstrip("\n")  # it continues _STACKED_PARAMETERS' list


# --------------------------------------------------------------------------
# Stacked recurrent layers: Recurrent (any cell), RNN, LSTM, GRU
# --------------------------------------------------------------------------


class RNNState(NamedTuple):
    """The cache `Recurrent.forward` keeps for ``backward`` (opaque to users)."""

    caches: List[List[Any]]  # [layer][direction]: the cell's functional cache
    masks: List[Optional[np.ndarray]]  # dropout mask applied to each layer's output, or None
    reverse_index: Optional[np.ndarray]  # (T, B) or None
    unbatched: bool
    batch_first: bool
    T: int
    B: int
    out_shape: Tuple[int, ...]  # as returned to the caller
    x_shape: Tuple[int, ...]
    state_shape: Tuple[int, ...]  # of each initial and final state as seen by the caller
    dtype: np.dtype
    key: Tuple[Any, ...]  # the layer's architecture


_LAYER_CLASSES: Dict[str, type] = {}


@_with_parameters(_STACKED_PARAMETERS)
class Recurrent(Module):
    """A multi-layer recurrent layer of any registered cell (`crnn.cells`).

        Per layer and direction the cell runs over the sequence; the output of
        one layer (directions concatenated) feeds the next. `RNN`, `LSTM` and
        `GRU` are this class with their cell fixed and torch.nn's signatures.

        Parameters
        ----------
        cell : str or crnn.cells.CellSpec
            The cell: ``"rnn"``, ``"lstm"``, ``"gru"``, ``"jordan"`` or any other
            registered name.
    {parameters}
        output_size : int or None
            O, for a cell that has one (the Jordan network); None otherwise.
        **options : str
            The cell's options, e.g. ``nonlinearity="relu"`` for ``"rnn"``.

        Attributes
        ----------
        params, grads : dict[str, ndarray]
            The cell's weights per layer and direction, named as PyTorch does:
            ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``,
            ``bias_hh_l{k}``, and with suffix ``_reverse`` for the second
            direction; shapes as the cell's spec says (weight_ih (G, I or D*W)
            for G = gates * H).

        Notes
        -----
        ``out, state_n = layer(x, state0=None, lengths=None)`` and
        ``dx, dstate0 = layer.backward(dout, dstate_n=None)``, a state being an
        array, or a tuple for a cell with several states (see the module's
        conventions). Not thread-safe (the last forward's cache is kept per
        object).
    """

    # The registry name of a subclass's fixed cell (set by __init_subclass__).
    cell_name: ClassVar[str]

    def __init__(
        self,
        cell: Any,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        init: str = "pytorch",
        output_size: Optional[int] = None,
        **options: str,
    ) -> None:
        super().__init__(backend=backend)
        self.spec = cells.get(cell)
        self.options = _check_options(self.spec, options)
        for name, value in self.options.items():
            setattr(self, name, value)
        self.input_size = check_int("input_size", input_size, 0)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        if self.spec.uses_output_size:
            self.output_size: Optional[int] = check_int("output_size", output_size, 1)
        elif output_size is not None:
            raise TypeError(f"the {self.spec.title} cell has no output_size")
        else:
            self.output_size = None
        self.num_layers = check_int("num_layers", num_layers, 1)
        self.bias = _check_bool("bias", bias)
        self.batch_first = _check_bool("batch_first", batch_first)
        self.bidirectional = _check_bool("bidirectional", bidirectional)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real):
            raise TypeError(f"dropout must be a number in [0, 1], got {type(dropout).__name__}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be in [0, 1], got {dropout}")
        self.dropout: float = float(dropout)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(
                "dropout acts between layers, so it has no effect with num_layers=1",
                UserWarning,
                stacklevel=3,
            )
        self.dtype: np.dtype = float_dtype(dtype)
        check_precision(self.options, self.dtype)
        self.seed: Optional[int] = _check_seed(seed)
        self.init: str = _init.check_init(init)

        init_rng, dropout_rng = _rngs(self.seed)
        self.dropout_rng: np.random.Generator = dropout_rng
        D = self.num_directions
        self._names: List[List[Dict[str, str]]] = []  # [layer][direction]: weight -> param name
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else D * self.width
            names = []
            for direction in range(D):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                sizes = self.spec.dims(in_size, self.hidden_size, self.output_size or 0)
                group = {}
                for short, value in cell_parameters(
                    self.spec, self.init, init_rng, sizes, self.bias, self.dtype
                ):
                    self.register_parameter(short + suffix, value)
                    group[short] = short + suffix
                names.append(group)
            self._names.append(names)
        self._cache: Optional[RNNState] = None

    def __init_subclass__(cls, cell: Optional[str] = None, **kwargs: Any) -> None:
        """``class LSTM(Recurrent, cell="lstm")`` makes LSTM the layer of that cell."""
        super().__init_subclass__(**kwargs)
        if cell is not None:
            cls.cell_name = cell
            _LAYER_CLASSES[cell] = cls

    @property
    def num_directions(self) -> int:
        """2 if bidirectional, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def width(self) -> int:
        """The width of the states and of each direction's output (H, or O)."""
        if self.spec.state_size != "O":
            return self.hidden_size
        assert self.output_size is not None  # __init__ requires it of such a cell
        return self.output_size

    @property
    def cache(self) -> Optional[RNNState]:
        """The cache of the last forward call (None before the first)."""
        return self._cache

    def config(self) -> Dict[str, Any]:
        cfg: Dict[str, Any] = {}
        if type(self) is Recurrent:
            cfg["cell"] = self.spec.name
        cfg.update(
            input_size=self.input_size, hidden_size=self.hidden_size, num_layers=self.num_layers
        )
        cfg.update(self.options)
        if self.output_size is not None:
            cfg["output_size"] = self.output_size
        cfg.update(
            bias=self.bias,
            batch_first=self.batch_first,
            dropout=self.dropout,
            bidirectional=self.bidirectional,
            dtype=self.dtype.name,
            seed=self.seed,
            backend=self.backend,
            init=self.init,
        )
        return cfg

    @classmethod
    def parameter_count(cls, cfg: Dict[str, Any]) -> Optional[int]:
        """The number of parameters ``cls(**cfg)`` would allocate, or None
        when `cfg` does not say (the constructor then checks it)."""
        try:
            spec = cells.get(cfg.get("cell", getattr(cls, "cell_name", "")))
        except ValueError:
            return None
        values = [
            cfg.get(k, d)
            for k, d in (
                ("input_size", None),
                ("hidden_size", None),
                ("num_layers", 1),
                ("output_size", 0),
            )
        ]
        sizes = config_sizes(*values)
        if sizes is None:
            return None
        I, H, L, O = sizes
        D = 2 if cfg.get("bidirectional") is True else 1
        bias = cfg.get("bias", True) is not False
        width = O if spec.state_size == "O" else H

        def per_direction(in_size: int) -> int:
            sizes = spec.dims(in_size, H, O)
            return sum(
                math.prod(spec.weight_shape(w, sizes)) for w in spec.weights if bias or not w.bias
            )

        # Exact Python integers: a forged file's huge sizes must not wrap.
        return D * (per_direction(I) + (L - 1) * per_direction(D * width)) if L else 0

    def _key(self) -> Tuple[Any, ...]:
        return (
            self.spec.name,
            self.input_size,
            self.hidden_size,
            self.output_size,
            self.num_layers,
            self.num_directions,
            self.bias,
        )

    def _weights(self, layer: int, direction: int) -> Dict[str, Optional[np.ndarray]]:
        names = self._names[layer][direction]
        return {w: self.params[names[w]] if w in names else None for w in self.spec.weight_names}

    def _dropout_mask(self, shape: Tuple[int, ...]) -> np.ndarray:
        if self.dropout >= 1.0:
            return np.zeros(shape, dtype=self.dtype)
        keep = self.dropout_rng.random(shape) >= self.dropout
        return keep.astype(self.dtype) * self.dtype.type(1.0 / (1.0 - self.dropout))

    def _state_shape_text(self, unbatched: bool) -> str:
        size = "output_size" if self.spec.state_size == "O" else "hidden_size"
        return (
            f"(num_layers * num_directions, {size})"
            if unbatched
            else f"(num_layers * num_directions, B, {size})"
        )

    # -- forward and backward -------------------------------------------------

    def forward(self, x: Any, state: Any = None, lengths: Any = None) -> Tuple[np.ndarray, State]:
        """Run the layer over a batch (or one sequence).

        Parameters
        ----------
        x : ndarray
            (T, B, I), or (B, T, I) when ``batch_first``, or unbatched (T, I);
            or integer token ids in [0, I), (T, B) (or (B, T), or (T,)),
            which stand for their one-hot vectors: the first layer then
            gathers columns of its ``weight_ih`` instead of multiplying
            (the same values), and `backward` gives no dx (None).
        state : array, tuple of arrays, or None
            The initial states: each (num_layers * D, B, W), or
            (num_layers * D, W) for unbatched input (W = H, or O for a cell
            fed back through its output); None (or a None item) for zeros.
            Never batch-first.
        lengths : array_like of B ints in [0, T], or None
            Valid steps of each batch row (any order), like PyTorch's packed
            sequences: past its length a row's outputs are 0 and its states
            are held, and the reverse direction starts at the row's last
            valid step. Batched input only.

        Returns
        -------
        out : ndarray
            (T, B, D*W) (or (B, T, D*W), or (T, D*W)): the last layer's
            outputs, directions concatenated on the last axis.
        state_n : array or tuple of arrays
            Shaped like the initial states: the final states of every layer
            and direction, after each row's last valid step.
        """
        out, finals = self._forward_states(x, _state_list(self.spec, state, "state"), lengths)
        return out, _state_value(self.spec, finals)

    def backward(
        self, dout: Any, dstate: Any = None, *, cache: Optional[RNNState] = None
    ) -> Tuple[Optional[np.ndarray], State]:
        """Backpropagate through the last forward call (or `cache`).

        Parameters
        ----------
        dout : ndarray or None
            Gradient of the loss with respect to ``out``, shaped like it;
            None for zero. Entries at padded steps are ignored.
        dstate : array, tuple of arrays, or None
            Gradients with respect to the final states, shaped like them;
            None (or a None item) for zero.
        cache : RNNState, optional
            A cache saved from ``self.cache``; by default the last forward's.

        Returns
        -------
        dx : ndarray or None
            Shaped like ``x``; None when ``x`` was token ids.
        dstate0 : array or tuple of arrays
            Shaped like the initial states (also when they were None: the
            gradient with respect to the zero initial state).

        The parameter gradients are added to ``self.grads``. Dropout masks
        of the forward call are applied again.
        """
        dx, d0 = self._backward_states(dout, _state_list(self.spec, dstate, "dstate"), cache)
        return dx, _state_value(self.spec, d0)

    @_with_step_notes
    def step(self, x: Any, state: Any = None, out: Any = None) -> State:
        """One time step of the whole stack, for streaming inference.

        Parameters
        ----------
        x : ndarray
            The step's input: (B, I), or unbatched (I,).
        state : array, tuple of arrays, or None
            The states before the step, in the form ``forward`` returns its
            final state: each (num_layers, B, W) (or (num_layers, W)
            unbatched); None (or a None item) for zeros.
        out : array or tuple of arrays, optional
            Arrays shaped like the state to write the new state into
            (C-contiguous, of the layer's dtype); may be `state` itself.

        Returns
        -------
        array or tuple of arrays
            The state after the step (`out` when given), shaped like `state`;
            the last layer's output is its ``[-1]`` (the first state's).

        Raises
        ------
        ValueError
            For a bidirectional layer (its reverse direction needs the whole
            sequence), or arrays of the wrong shape.
        TypeError
            For arrays of another dtype.

        """
        prepared = self._step_prepared
        if prepared is None or self._step_backend != self.backend:
            if self.bidirectional:
                raise ValueError(
                    "step runs forward in time one step at a time; a bidirectional layer's "
                    "reverse direction needs the whole sequence: use forward()"
                )
            prepared = _prepare_step(
                self, lambda: [self._weights(k, 0) for k in range(self.num_layers)], True
            )
        return _run_step(self, prepared, x, state, out)

    def _forward_states(
        self, x: Any, states: List[Any], lengths: Any
    ) -> Tuple[np.ndarray, List[np.ndarray]]:
        """Run the stack; `states` holds one initial array (or None) per state.

        Returns (out, [state_n, ...]) as seen by the caller.
        """
        dt, spec = self.dtype, self.spec
        W, L, D = self.width, self.num_layers, self.num_directions
        ids = _integer_array(x)
        if ids is not None:  # token ids: the first layer reads their one-hot vectors
            x = ids
            unbatched = x.ndim == 1
            xt = x[:, None] if unbatched else (x.T if self.batch_first else x)
        else:
            x = input_array("x", x, dt)
            if x.ndim not in (2, 3):
                raise ValueError(
                    f"x must have shape {'(B, T, input_size)' if self.batch_first else '(T, B, input_size)'} "
                    f"or unbatched (T, input_size), or be token ids, got {x.shape}"
                )
            if x.shape[-1] != self.input_size:
                raise ValueError(
                    f"x must have input_size = {self.input_size} features on its last axis, "
                    f"got shape {x.shape}"
                )
            unbatched = x.ndim == 2
            xt = _time_major(x, self.batch_first)
        if unbatched and lengths is not None:
            raise ValueError(
                "lengths applies to batched input only; slice an unbatched sequence instead"
            )
        T, B = xt.shape[0], xt.shape[1]
        state_shape = (L * D, W) if unbatched else (L * D, B, W)
        s0 = []
        for sname, s in zip(spec.states, states):
            if s is not None:
                s = input_array(f"{sname}0", s, dt)
                _check_shape(f"{sname}0", s, state_shape, self._state_shape_text(unbatched))
                s = s[:, None, :] if unbatched else s
            s0.append(s)
        lens = check_lengths(lengths, T, B)
        idx = _reverse_index(T, B, lens) if D == 2 else None

        eng = self.engine
        caches: List[List[Any]] = []
        masks: List[Optional[np.ndarray]] = []
        s_n = [np.empty((L * D, B, W), dtype=dt) for _ in spec.states]
        inp = xt
        for layer in range(L):
            outs, layer_caches = [], []
            for direction in range(D):
                src = inp if direction == 0 else _reverse(inp, idx)
                k = layer * D + direction
                o, finals, cache = eng.forward(
                    spec,
                    src,
                    [None if s is None else s[k] for s in s0],
                    self._weights(layer, direction),
                    lengths=lens,
                    **self.options,
                )
                outs.append(o if direction == 0 else _reverse(o, idx))
                for dst, v in zip(s_n, finals):
                    dst[k] = v
                layer_caches.append(cache)
            layer_out = outs[0] if D == 1 else np.concatenate(outs, axis=2)
            mask = None
            if self.training and self.dropout > 0 and layer < L - 1:
                mask = self._dropout_mask(layer_out.shape)
                layer_out = layer_out * mask
            caches.append(layer_caches)
            masks.append(mask)
            inp = layer_out

        # The last layer's output may be the array the engine's cache refers
        # to: hand out a copy so that modifying it cannot corrupt backward.
        if self.batch_first and not unbatched:
            out = np.ascontiguousarray(inp.transpose(1, 0, 2))
        else:
            out = inp.copy() if D == 1 else inp
        if unbatched:
            out = out[:, 0, :]
            s_n = [s[:, 0, :] for s in s_n]
        self._cache = RNNState(
            caches,
            masks,
            idx,
            unbatched,
            self.batch_first,
            T,
            B,
            out.shape,
            x.shape,
            state_shape,
            dt,
            self._key(),
        )
        return out, s_n

    def _backward_states(
        self, dout: Any, dstates: List[Any], cache: Optional[RNNState]
    ) -> Tuple[Optional[np.ndarray], List[np.ndarray]]:
        """Backpropagate; `dstates` holds one gradient (or None) per final state.

        Returns (dx, [dstate0, ...]) as seen by the caller.
        """
        c = self._cache if cache is None else cache
        if c is None:
            raise RuntimeError("backward() called before forward(): there is no cache to use")
        if not isinstance(c, RNNState) or c.key != self._key() or c.dtype != self.dtype:
            raise ValueError(f"cache does not come from this {type(self).__name__}'s forward")
        dt, spec = self.dtype, self.spec
        W, L, D = self.width, self.num_layers, self.num_directions
        d = None
        if dout is not None:
            dout = input_array("dout", dout, dt)
            _check_shape("dout", dout, c.out_shape, "the shape of out")
            d = dout[:, None, :] if c.unbatched else _time_major(dout, c.batch_first)
        ds = []
        for sname, g in zip(spec.states, dstates):
            if g is not None:
                g = input_array(f"d{sname}_n", g, dt)
                _check_shape(f"d{sname}_n", g, c.state_shape, f"the shape of {sname}_n")
                g = g[:, None, :] if c.unbatched else g
            ds.append(g)

        eng = self.engine
        idx = c.reverse_index
        d0 = [np.empty((L * D, c.B, W), dtype=dt) for _ in spec.states]
        n_states = len(spec.states)
        for layer in range(L - 1, -1, -1):
            dinp = None
            for direction in range(D):
                g_out = None
                if d is not None:
                    g_out = d[:, :, direction * W : (direction + 1) * W]
                    if direction == 1:
                        g_out = _reverse(g_out, idx)
                k = layer * D + direction
                grads = eng.backward(
                    g_out, [None if g is None else g[k] for g in ds], c.caches[layer][direction]
                )
                dx_dir = grads[0]  # None for token ids
                if dx_dir is not None and direction == 1:
                    dx_dir = _reverse(dx_dir, idx)
                dinp = dx_dir if dinp is None or dx_dir is None else dinp + dx_dir
                for dst, v in zip(d0, grads[1 : 1 + n_states]):
                    dst[k] = v
                names = self._names[layer][direction]
                for w, grad in zip(spec.weight_names, grads[1 + n_states :]):
                    if w in names:
                        self.grads[names[w]] += grad
            # dinp is None only for the first layer's token ids (no gradient).
            mask = c.masks[layer - 1] if layer > 0 else None
            d = dinp if mask is None or dinp is None else dinp * mask

        if d is None:  # token ids have no gradient
            return None, [s[:, 0, :] for s in d0] if c.unbatched else d0
        if c.unbatched:
            return d[:, 0, :], [s[:, 0, :] for s in d0]
        if c.batch_first:
            d = np.ascontiguousarray(d.transpose(1, 0, 2))
        return d, d0


def recurrent_layer(cell: Any, input_size: int, hidden_size: int, **kwargs: Any) -> Recurrent:
    """The layer of `cell`: `RNN`, `LSTM` or `GRU` for those cells (torch.nn's
    signatures and names), else a `Recurrent` of that cell."""
    spec = cells.get(cell)
    cls = _LAYER_CLASSES.get(spec.name)
    if cls is None:
        return Recurrent(spec, input_size, hidden_size, **kwargs)
    return cls(input_size, hidden_size, **kwargs)


@_with_parameters(_STACKED_PARAMETERS + _PRECISION_PARAMETER)
class RNN(Recurrent, cell="rnn"):
    """A multi-layer Elman RNN with ``torch.nn.RNN``'s semantics.

        ``h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` per layer and
        direction, the output of one layer (directions concatenated) feeding the
        next.

        Parameters
        ----------
    {parameters}
        nonlinearity : {"tanh", "relu", "sigmoid"}
            The activation f (PyTorch's nn.RNN has tanh and relu).

        Attributes
        ----------
        params, grads : dict[str, ndarray]
            ``weight_ih_l{k}`` (H, I or D*H), ``weight_hh_l{k}`` (H, H),
            ``bias_ih_l{k}``, ``bias_hh_l{k}`` (H,), and the same with suffix
            ``_reverse`` for the second direction: PyTorch's names, shapes and
            order.

        Notes
        -----
        ``out, h_n = rnn(x, h0=None, lengths=None)``;
        ``dx, dh0 = rnn.backward(dout, dh_n=None)``. Not thread-safe (the last
        forward's cache is kept per object).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        init: str = "pytorch",
        precision: str = "native",
    ) -> None:
        super().__init__(
            "rnn",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            dtype,
            seed,
            backend,
            init,
            nonlinearity=nonlinearity,
            precision=precision,
        )

    def forward(self, x: Any, h0: Any = None, lengths: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        """Run the RNN over a batch (or one sequence).

        Parameters
        ----------
        x : ndarray
            (T, B, I), or (B, T, I) when ``batch_first``, or unbatched (T, I).
        h0 : ndarray or None
            (num_layers * D, B, H), or (num_layers * D, H) for unbatched
            input; None for zeros. Never batch-first.
        lengths : array_like of B ints in [0, T], or None
            Valid steps of each batch row (any order), like PyTorch's packed
            sequences: past its length a row's outputs are 0 and its state
            is held, and the reverse direction starts at the row's last
            valid step. Batched input only.

        Returns
        -------
        out : ndarray
            (T, B, D*H) (or (B, T, D*H), or (T, D*H)): the last layer's
            states, directions concatenated on the last axis.
        h_n : ndarray
            (num_layers * D, B, H) (or (num_layers * D, H)): the final state
            of every layer and direction, after each row's last valid step.
        """
        out, (h_n,) = self._forward_states(x, [h0], lengths)
        return out, h_n

    def backward(
        self, dout: Any, dh_n: Any = None, *, cache: Optional[RNNState] = None
    ) -> Tuple[Optional[np.ndarray], np.ndarray]:
        """Backpropagate through the last forward call (or `cache`).

        Parameters
        ----------
        dout : ndarray or None
            Gradient of the loss with respect to ``out``, shaped like it;
            None for zero. Entries at padded steps are ignored.
        dh_n : ndarray or None
            Gradient with respect to ``h_n``, shaped like it; None for zero.
        cache : RNNState, optional
            A cache saved from ``self.cache``; by default the last forward's.

        Returns
        -------
        dx : ndarray
            Shaped like ``x``.
        dh0 : ndarray
            Shaped like ``h0`` (also when h0 was None: the gradient with
            respect to the zero initial state).

        The parameter gradients are added to ``self.grads``. Dropout masks
        of the forward call are applied again.
        """
        dx, (dh0,) = self._backward_states(dout, [dh_n], cache)
        return dx, dh0


@_with_parameters(_STACKED_PARAMETERS + _PRECISION_PARAMETER)
class LSTM(Recurrent, cell="lstm"):
    """A multi-layer LSTM with ``torch.nn.LSTM``'s semantics (no projection).

        Per layer and direction, with PyTorch's gate order [i f g o]::

            i, f, o = sigmoid(.), g = tanh(.)   of x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
            c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

        Parameters
        ----------
    {parameters}

        Attributes
        ----------
        params, grads : dict[str, ndarray]
            ``weight_ih_l{k}`` (4H, I or D*H), ``weight_hh_l{k}`` (4H, H),
            ``bias_ih_l{k}``, ``bias_hh_l{k}`` (4H,), and ``..._reverse``:
            PyTorch's names, shapes and order.

        Notes
        -----
        The state is the pair (h, c): ``out, (h_n, c_n) = lstm(x, (h0, c0))``
        and ``dx, (dh0, dc0) = lstm.backward(dout, (dh_n, dc_n))``.
        Not thread-safe (the last forward's cache is kept per object).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        init: str = "pytorch",
        precision: str = "native",
    ) -> None:
        super().__init__(
            "lstm",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            dtype,
            seed,
            backend,
            init,
            precision=precision,
        )

    def forward(
        self, x: Any, hx: Any = None, lengths: Any = None
    ) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """Run the LSTM over a batch (or one sequence).

        Parameters
        ----------
        x : ndarray
            (T, B, I), or (B, T, I) when ``batch_first``, or unbatched (T, I).
        hx : pair (h0, c0) or None
            Each (num_layers * D, B, H), or (num_layers * D, H) for
            unbatched input; None (or a None item) for zeros.
        lengths : array_like of B ints in [0, T], or None
            As in `RNN.forward` (packed sequences; h and c are held past a
            row's length).

        Returns
        -------
        out : ndarray
            (T, B, D*H) (or (B, T, D*H), or (T, D*H)).
        (h_n, c_n) : pair of ndarray
            Each (num_layers * D, B, H) (or (num_layers * D, H)).
        """
        out, (h_n, c_n) = self._forward_states(x, _state_list(self.spec, hx, "hx"), lengths)
        return out, (h_n, c_n)

    def backward(
        self, dout: Any, dhx: Any = None, *, cache: Optional[RNNState] = None
    ) -> Tuple[Optional[np.ndarray], Tuple[np.ndarray, np.ndarray]]:
        """Backpropagate through the last forward call (or `cache`).

        Parameters
        ----------
        dout : ndarray or None
            Gradient with respect to ``out``; None for zero.
        dhx : pair (dh_n, dc_n) or None
            Gradients with respect to ``h_n`` and ``c_n``; None (or a None
            item) for zero.

        Returns
        -------
        dx : ndarray
            Shaped like ``x``.
        (dh0, dc0) : pair of ndarray
            Shaped like ``h0`` and ``c0``.

        The parameter gradients are added to ``self.grads``.
        """
        dx, (dh0, dc0) = self._backward_states(dout, _state_list(self.spec, dhx, "dhx"), cache)
        return dx, (dh0, dc0)


@_with_parameters(_STACKED_PARAMETERS + _PRECISION_PARAMETER)
class GRU(Recurrent, cell="gru"):
    """A multi-layer GRU with ``torch.nn.GRU``'s semantics.

        Per layer and direction, with PyTorch's gate order [r z n]::

            r, z = sigmoid(x_t W_i{r,z}^T + b_i{r,z} + h_{t-1} W_h{r,z}^T + b_h{r,z})
            n = tanh(x_t W_in^T + b_in + r * (h_{t-1} W_hn^T + b_hn))
            h_t = (1 - z) * n + z * h_{t-1}

        Parameters
        ----------
    {parameters}

        Attributes
        ----------
        params, grads : dict[str, ndarray]
            ``weight_ih_l{k}`` (3H, I or D*H), ``weight_hh_l{k}`` (3H, H),
            ``bias_ih_l{k}``, ``bias_hh_l{k}`` (3H,), and ``..._reverse``:
            PyTorch's names, shapes and order.

        Notes
        -----
        ``out, h_n = gru(x, h0=None, lengths=None)``;
        ``dx, dh0 = gru.backward(dout, dh_n=None)``, as `RNN`'s.
        Not thread-safe (the last forward's cache is kept per object).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        init: str = "pytorch",
        precision: str = "native",
    ) -> None:
        super().__init__(
            "gru",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            dtype,
            seed,
            backend,
            init,
            precision=precision,
        )

    def forward(self, x: Any, h0: Any = None, lengths: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        """Run the GRU: arguments and results as in `RNN.forward`."""
        out, (h_n,) = self._forward_states(x, [h0], lengths)
        return out, h_n

    def backward(
        self, dout: Any, dh_n: Any = None, *, cache: Optional[RNNState] = None
    ) -> Tuple[Optional[np.ndarray], np.ndarray]:
        """Backpropagate: arguments and results as in `RNN.backward`."""
        dx, (dh0,) = self._backward_states(dout, [dh_n], cache)
        return dx, dh0


# --------------------------------------------------------------------------
# Jordan network
# --------------------------------------------------------------------------


class JordanState(NamedTuple):
    """The cache `Jordan.forward` keeps for `Jordan.backward` (opaque to users)."""

    cache: Any  # JordanCache
    unbatched: bool
    batch_first: bool
    out_shape: Tuple[int, ...]
    y_shape: Tuple[int, ...]
    dtype: np.dtype
    key: Tuple[Any, ...]


class Jordan(Module):
    """A Jordan network: the previous *output*, not the previous state, is fed back.

    ::

        h_t = f(x_t W_ih^T + b_ih + y_{t-1} W_hy^T + b_hh)
        y_t = g(h_t W_ho^T + b_ho)

    One layer, one direction; ``Recurrent("jordan", ..., output_size=O)``
    stacks them.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        I, H (>= 1) and O (>= 1).
    nonlinearity : {"tanh", "relu", "sigmoid"}
        The hidden activation f.
    output_nonlinearity : {"identity", "tanh", "relu", "sigmoid"}
        The output activation g.
    bias : bool
        Whether there are ``bias_ih``, ``bias_hh`` and ``bias_ho``.
    batch_first : bool
        If True, ``x`` and ``out`` are (B, T, ·); ``y0`` and ``y_n`` never are.
    dtype : float32 or float64
    seed : int or None
        Seeds the initialisation (``np.random.default_rng(seed)``).
    backend : {"c", "numpy"}
        ``"c"``: `crnn.jordan_forward` (the C engine);
        ``"numpy"``: `crnn.reference.jordan_forward`.
    init : {"pytorch", "orthogonal", "glorot"}
        ``"pytorch"``: every parameter U(-1/sqrt(H), 1/sqrt(H)); otherwise
        ``weight_hy`` orthogonal (or Glorot), ``weight_ih`` as in `RNN`,
        ``weight_ho`` Glorot, zero biases (see `cell_parameters`).

    Attributes
    ----------
    params, grads : dict[str, ndarray]
        ``weight_ih`` (H, I), ``weight_hy`` (H, O), ``weight_ho`` (O, H),
        ``bias_ih``, ``bias_hh`` (H,), ``bias_ho`` (O,).

    Notes
    -----
    ``out, y_n = layer(x, y0=None, lengths=None)``;
    ``dx, dy0 = layer.backward(dout, dy_n=None)``. With ``lengths``, padded
    steps output 0 and hold y. Not thread-safe.
    """

    spec = cells.JORDAN

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        nonlinearity: str = "tanh",
        output_nonlinearity: str = "identity",
        bias: bool = True,
        batch_first: bool = False,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        init: str = "pytorch",
    ) -> None:
        super().__init__(backend=backend)
        self.input_size = check_int("input_size", input_size, 0)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.output_size = check_int("output_size", output_size, 1)
        self.options = _check_options(
            self.spec, dict(nonlinearity=nonlinearity, output_nonlinearity=output_nonlinearity)
        )
        self.nonlinearity = self.options["nonlinearity"]
        self.output_nonlinearity = self.options["output_nonlinearity"]
        self.bias = _check_bool("bias", bias)
        self.batch_first = _check_bool("batch_first", batch_first)
        self.dtype = float_dtype(dtype)
        self.seed = _check_seed(seed)
        self.init = _init.check_init(init)
        sizes = self.spec.dims(self.input_size, self.hidden_size, self.output_size)
        for name, value in cell_parameters(
            self.spec, self.init, np.random.default_rng(self.seed), sizes, self.bias, self.dtype
        ):
            self.register_parameter(name, value)
        self._cache: Optional[JordanState] = None

    @property
    def cache(self) -> Optional[JordanState]:
        """The cache of the last forward call (None before the first)."""
        return self._cache

    def config(self) -> Dict[str, Any]:
        return dict(
            input_size=self.input_size,
            hidden_size=self.hidden_size,
            output_size=self.output_size,
            nonlinearity=self.nonlinearity,
            output_nonlinearity=self.output_nonlinearity,
            bias=self.bias,
            batch_first=self.batch_first,
            dtype=self.dtype.name,
            seed=self.seed,
            backend=self.backend,
            init=self.init,
        )

    @classmethod
    def parameter_count(cls, cfg: Dict[str, Any]) -> Optional[int]:
        """The number of parameters ``cls(**cfg)`` would allocate, or None."""
        return Recurrent.parameter_count({**cfg, "cell": "jordan", "num_layers": 1})

    def _key(self) -> Tuple[Any, ...]:
        return (self.input_size, self.hidden_size, self.output_size, self.bias)

    def forward(self, x: Any, y0: Any = None, lengths: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        """Run over a batch (or one sequence).

        Parameters
        ----------
        x : ndarray
            (T, B, I), or (B, T, I) when ``batch_first``, or unbatched (T, I).
        y0 : ndarray or None
            The output fed back at the first step: (B, O), or (O,) for
            unbatched input; None for zeros.
        lengths : array_like of B ints in [0, T], or None
            Valid steps per row (batched input only).

        Returns
        -------
        out : ndarray
            The outputs y_t: (T, B, O) (or (B, T, O), or (T, O)).
        y_n : ndarray
            The output after each row's last valid step: (B, O) (or (O,)).
        """
        dt, O = self.dtype, self.output_size
        x = input_array("x", x, dt)
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"x must have shape (T, B, input_size), (B, T, input_size) with "
                f"batch_first, or unbatched (T, input_size), with input_size = "
                f"{self.input_size}; got {x.shape}"
            )
        unbatched = x.ndim == 2
        if unbatched and lengths is not None:
            raise ValueError(
                "lengths applies to batched input only; slice an unbatched sequence instead"
            )
        xt = _time_major(x, self.batch_first)
        B = xt.shape[1]
        y_shape = (O,) if unbatched else (B, O)
        if y0 is not None:
            y0 = input_array("y0", y0, dt)
            _check_shape("y0", y0, y_shape, "(output_size,)" if unbatched else "(B, output_size)")
            y0 = y0[None, :] if unbatched else y0
        weights = {w: self.params.get(w) for w in self.spec.weight_names}
        out, (y_n,), cache = self.engine.forward(
            self.spec, xt, (y0,), weights, lengths=lengths, **self.options
        )
        if unbatched:
            out, y_n = out[:, 0, :].copy(), y_n[0]
        elif self.batch_first:
            out = np.ascontiguousarray(out.transpose(1, 0, 2))
        else:
            out = out.copy()
        self._cache = JordanState(
            cache, unbatched, self.batch_first, out.shape, y_shape, dt, self._key()
        )
        return out, y_n

    @_with_step_notes
    def step(self, x: Any, y: Any = None, out: Optional[np.ndarray] = None) -> np.ndarray:
        """One time step, for streaming inference.

        Parameters
        ----------
        x : ndarray
            The step's input: (B, I), or unbatched (I,).
        y : ndarray or None
            The output fed back: (B, O) (or (O,)); None for zeros.
        out : ndarray, optional
            Where to write the step's output y_t (C-contiguous, shaped like
            `y`); may be `y` itself.

        Returns
        -------
        ndarray
            y_t, (B, O) (or (O,)).

        """
        prepared = _prepared_one_layer(self)
        return _run_step(self, prepared, x, y, out)

    def backward(
        self, dout: Any, dy_n: Any = None, *, cache: Optional[JordanState] = None
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Backpropagate through the last forward call (or `cache`).

        Returns ``dx`` (shaped like x) and ``dy0`` (shaped like y0, also when
        y0 was None); the parameter gradients are added to ``self.grads``.
        """
        c = self._cache if cache is None else cache
        if c is None:
            raise RuntimeError("backward() called before forward(): there is no cache to use")
        if not isinstance(c, JordanState) or c.key != self._key() or c.dtype != self.dtype:
            raise ValueError("cache does not come from this Jordan's forward")
        dt = self.dtype
        d = None
        if dout is not None:
            dout = input_array("dout", dout, dt)
            _check_shape("dout", dout, c.out_shape, "the shape of out")
            d = dout[:, None, :] if c.unbatched else _time_major(dout, c.batch_first)
        dy = None
        if dy_n is not None:
            dy_n = input_array("dy_n", dy_n, dt)
            _check_shape("dy_n", dy_n, c.y_shape, "the shape of y_n")
            dy = dy_n[None, :] if c.unbatched else dy_n
        g = self.engine.backward(d, (dy,), c.cache)
        for name, grad in zip(self.spec.weight_names, g[2:]):
            if grad is not None:
                self.grads[name] += grad
        if c.unbatched:
            return g.dx[:, 0, :], g.dy0[0]
        dx = np.ascontiguousarray(g.dx.transpose(1, 0, 2)) if c.batch_first else g.dx
        return dx, g.dy0


# --------------------------------------------------------------------------
# One step: RecurrentCell (any cell), RNNCell, LSTMCell, GRUCell
# --------------------------------------------------------------------------


class RecurrentCell(Module):
    """One step of any registered cell, with torch.nn's ``*Cell`` semantics.

    Parameters
    ----------
    cell : str or crnn.cells.CellSpec
        ``"rnn"``, ``"lstm"``, ``"gru"`` or another registered cell with no
        output size.
    input_size : int
    hidden_size : int (>= 1)
    bias : bool
    dtype : float32 or float64
    seed : int or None
        Seeds the initialisation (``np.random.default_rng(seed)``).
    backend : {"c", "numpy"}
    init : {"pytorch", "orthogonal", "glorot"}
    **options : str
        The cell's options, e.g. ``nonlinearity="relu"``.

    Attributes
    ----------
    params, grads : dict[str, ndarray]
        The cell's weights under PyTorch's names: ``weight_ih`` (G, I),
        ``weight_hh`` (G, H), ``bias_ih``, ``bias_hh`` (G,).

    Notes
    -----
    ``state = cell(x, state)``: x (B, I) or unbatched (I,); the state an
    array, or a tuple for a cell with several states, or None for zeros.
    `backward` uses the last `forward` call's cache. To backpropagate
    through several steps of a loop, save ``cell.cache`` after each step and
    pass it back: ``cell.backward(dstate, cache=saved)``.
    """

    def __init__(
        self,
        cell: Any,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        init: str = "pytorch",
        **options: str,
    ) -> None:
        super().__init__(backend=backend)
        self.spec = cells.get(cell)
        if self.spec.uses_output_size:
            raise ValueError(
                f"the {self.spec.title} cell has an output size: use crnn.nn.Jordan "
                "or crnn.nn.Recurrent for it"
            )
        self.options = _check_options(self.spec, options)
        for name, value in self.options.items():
            setattr(self, name, value)
        self.input_size = check_int("input_size", input_size, 0)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.bias = _check_bool("bias", bias)
        self.dtype = float_dtype(dtype)
        check_precision(self.options, self.dtype)
        self.seed = _check_seed(seed)
        self.init = _init.check_init(init)
        sizes = self.spec.dims(self.input_size, self.hidden_size)
        for pname, array in cell_parameters(
            self.spec, self.init, np.random.default_rng(self.seed), sizes, self.bias, self.dtype
        ):
            self.register_parameter(pname, array)
        self._cache: Optional[Tuple[Any, bool]] = None

    @property
    def cache(self) -> Optional[Tuple[Any, bool]]:
        """The cache of the last forward call (None before the first)."""
        return self._cache

    def config(self) -> Dict[str, Any]:
        cfg: Dict[str, Any] = {"cell": self.spec.name} if type(self) is RecurrentCell else {}
        cfg.update(input_size=self.input_size, hidden_size=self.hidden_size, bias=self.bias)
        cfg.update(self.options)
        cfg.update(dtype=self.dtype.name, seed=self.seed, backend=self.backend, init=self.init)
        return cfg

    @classmethod
    def parameter_count(cls, cfg: Dict[str, Any]) -> Optional[int]:
        """The number of parameters ``cls(**cfg)`` would allocate, or None."""
        cell = cfg.get("cell", getattr(cls, "cell_name", None))
        return Recurrent.parameter_count(
            {**cfg, "cell": cell, "num_layers": 1, "bidirectional": False}
        )

    def _state_text(self, unbatched: bool) -> str:
        return "(hidden_size,)" if unbatched else "(B, hidden_size)"

    def forward(self, x: Any, state: Any = None) -> State:
        """One step.

        Parameters
        ----------
        x : ndarray
            (B, I), or unbatched (I,).
        state : array, tuple of arrays, or None
            Each (B, H), or (H,) for unbatched input; None (or a None item)
            for zeros.

        Returns
        -------
        array or tuple of arrays
            The new state, in the form of `state`.
        """
        return _state_value(self.spec, self._step(x, state))

    def _step(self, x: Any, state: Any) -> List[np.ndarray]:
        """`forward`, returning one array per state."""
        dt, spec = self.dtype, self.spec
        x = input_array("x", x, dt)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"x must have shape (B, input_size) or (input_size,) with "
                f"input_size = {self.input_size}, got {x.shape}"
            )
        unbatched = x.ndim == 1
        x2 = x[None, :] if unbatched else x
        shape = (self.hidden_size,) if unbatched else (x2.shape[0], self.hidden_size)
        states = []
        for sname, s in zip(spec.states, _state_list(spec, state, "state")):
            if s is not None:
                s = input_array(sname, s, dt)
                _check_shape(sname, s, shape, self._state_text(unbatched))
                s = s[None, :] if unbatched else s
            states.append(s)
        weights = {w: self.params.get(w) for w in spec.weight_names}
        _, finals, cache = self.engine.forward(spec, x2[None], states, weights, **self.options)
        self._cache = (cache, unbatched)
        return [f[0] if unbatched else f for f in finals]

    @_with_step_notes
    def step(self, x: Any, state: Any = None, out: Any = None) -> State:
        """One step, like `forward`, for streaming inference: no cache (no
        `backward` after it) and prepared weights.

        Parameters
        ----------
        x : ndarray
            (B, I), or unbatched (I,).
        state : array, tuple of arrays, or None
            Each (B, H) (or (H,)); None (or a None item) for zeros.
        out : array or tuple of arrays, optional
            Arrays shaped like the state to write the new state into; may be
            `state` itself.

        Returns
        -------
        array or tuple of arrays
            The new state (`out` when given).

        """
        prepared = _prepared_one_layer(self)
        return _run_step(self, prepared, x, state, out)

    def backward(self, dstate: Any, *, cache: Any = None) -> Tuple[np.ndarray, State]:
        """Backpropagate through the last step (or `cache`).

        Parameters
        ----------
        dstate : array or tuple of arrays
            Gradient of the loss with respect to the returned state (an item
            may be None for zero).
        cache : optional
            A cache saved from ``self.cache``; by default the last forward's.

        Returns
        -------
        dx : ndarray
            Shaped like ``x``.
        dstate_prev : array or tuple of arrays
            Shaped like the state (also when it was None).

        The parameter gradients are added to ``self.grads``.
        """
        dx, d0 = self._step_backward(dstate, cache)
        return dx, _state_value(self.spec, d0)

    def _step_backward(self, dstate: Any, cache: Any) -> Tuple[np.ndarray, List[np.ndarray]]:
        """`backward`, returning dx and one array per state."""
        spec = self.spec
        c = self._cache if cache is None else cache
        if c is None:
            raise RuntimeError("backward() called before forward(): there is no cache to use")
        if (
            not isinstance(c, tuple)
            or len(c) != 2
            or not isinstance(c[0], spec.cache_type)
            or c[0].weight_ih.shape != self.params["weight_ih"].shape
            or c[0].x.dtype != self.dtype
        ):
            raise ValueError(f"cache does not come from this {type(self).__name__}'s forward")
        fc, unbatched = c
        shape = (self.hidden_size,) if unbatched else (fc.x.shape[1], self.hidden_size)
        ds = []
        for sname, g in zip(spec.states, _state_list(spec, dstate, "dstate")):
            label = f"d{sname}"
            if g is not None or len(spec.states) == 1:  # a lone dh is required
                g = input_array(label, g, self.dtype)
                _check_shape(label, g, shape, "the shape of the state")
                g = g[None, :] if unbatched else g
            ds.append(g)
        grads = self.engine.backward(None, ds, fc)
        n = len(spec.states)
        for w, grad in zip(spec.weight_names, grads[1 + n :]):
            if grad is not None:
                self.grads[w] += grad
        dx = grads[0][0]
        d0 = [d[0] if unbatched else d for d in grads[1 : 1 + n]]
        return (dx[0] if unbatched else dx), d0


class RNNCell(RecurrentCell):
    """One step of an Elman RNN, with ``torch.nn.RNNCell``'s semantics.

    ``h' = f(x W_ih^T + b_ih + h W_hh^T + b_hh)``.

    Parameters
    ----------
    input_size : int
    hidden_size : int (>= 1)
    bias : bool
    nonlinearity : {"tanh", "relu", "sigmoid"}
    dtype : float32 or float64
    seed : int or None
        Seeds the initialisation (``np.random.default_rng(seed)``).
    backend : {"c", "numpy"}
    init : {"pytorch", "orthogonal", "glorot"}
    precision : {"native", "bf16"}
        "bf16" (float32 only): the step's products on bfloat16 operands,
        float32 sums (see `RNN`); "native" (the default): the dtype's.

    Attributes
    ----------
    params, grads : dict[str, ndarray]
        ``weight_ih`` (H, I), ``weight_hh`` (H, H), ``bias_ih``, ``bias_hh``
        (H,): PyTorch's names.

    Notes
    -----
    ``h = cell(x, h)``; ``dx, dh_prev = cell.backward(dh)``. `backward` uses
    the last `forward` call's cache: to backpropagate through several steps
    of a loop, save ``cell.cache`` after each step and pass it back:
    ``cell.backward(dh, cache=saved)``.
    """

    cell_name = "rnn"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        init: str = "pytorch",
        precision: str = "native",
    ) -> None:
        super().__init__(
            "rnn",
            input_size,
            hidden_size,
            bias,
            dtype,
            seed,
            backend,
            init,
            nonlinearity=nonlinearity,
            precision=precision,
        )

    def forward(self, x: Any, h: Any = None) -> np.ndarray:
        """One step: x (B, I) or (I,), h (B, H) or (H,) or None; returns h'."""
        return self._step(x, h)[0]

    def backward(self, dh: Any, *, cache: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        """Gradients (dx, dh_prev) from dh, the gradient w.r.t. the returned h'."""
        dx, (dh_prev,) = self._step_backward(dh, cache)
        return dx, dh_prev


class LSTMCell(RecurrentCell):
    """One step of an LSTM, with ``torch.nn.LSTMCell``'s semantics.

    Gates [i f g o]: ``c' = f * c + i * g``, ``h' = o * tanh(c')``.

    Parameters
    ----------
    input_size : int
    hidden_size : int (>= 1)
    bias : bool
    dtype : float32 or float64
    seed : int or None
    backend : {"c", "numpy"}
    init : {"pytorch", "orthogonal", "glorot"}
    precision : {"native", "bf16"}
        "bf16" (float32 only): the step's products on bfloat16 operands,
        float32 sums (see `RNN`); "native" (the default): the dtype's.

    Attributes
    ----------
    params, grads : dict[str, ndarray]
        ``weight_ih`` (4H, I), ``weight_hh`` (4H, H), ``bias_ih``,
        ``bias_hh`` (4H,): PyTorch's names.

    Notes
    -----
    ``h, c = cell(x, (h, c))``; ``dx, (dh_prev, dc_prev) = cell.backward((dh,
    dc))`` (an item may be None for zero).
    """

    cell_name = "lstm"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        init: str = "pytorch",
        precision: str = "native",
    ) -> None:
        super().__init__(
            "lstm", input_size, hidden_size, bias, dtype, seed, backend, init, precision=precision
        )


class GRUCell(RecurrentCell):
    """One step of a GRU, with ``torch.nn.GRUCell``'s semantics.

    Gates [r z n]: ``n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))``,
    ``h' = (1 - z) * n + z * h``.

    Parameters
    ----------
    input_size : int
    hidden_size : int (>= 1)
    bias : bool
    dtype : float32 or float64
    seed : int or None
    backend : {"c", "numpy"}
    init : {"pytorch", "orthogonal", "glorot"}
    precision : {"native", "bf16"}
        "bf16" (float32 only): the step's products on bfloat16 operands,
        float32 sums (see `RNN`); "native" (the default): the dtype's.

    Attributes
    ----------
    params, grads : dict[str, ndarray]
        ``weight_ih`` (3H, I), ``weight_hh`` (3H, H), ``bias_ih``,
        ``bias_hh`` (3H,): PyTorch's names.

    Notes
    -----
    ``h = cell(x, h)``; ``dx, dh_prev = cell.backward(dh)``.
    """

    cell_name = "gru"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        init: str = "pytorch",
        precision: str = "native",
    ) -> None:
        super().__init__(
            "gru", input_size, hidden_size, bias, dtype, seed, backend, init, precision=precision
        )


# --------------------------------------------------------------------------
# Linear
# --------------------------------------------------------------------------


class Linear(Module):
    """``y = x W^T + b`` over any leading axes, with ``torch.nn.Linear``'s semantics.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    dtype : float32 or float64
    seed : int or None
        Seeds the initialisation (``np.random.default_rng(seed)``).
    backend : {"c", "numpy"}
        Accepted for uniformity; both run the same NumPy matrix products.
    init : {"pytorch", "orthogonal", "glorot"}
        ``"pytorch"``: weight and bias U(-1/sqrt(in), 1/sqrt(in)) (PyTorch's
        kaiming-uniform with a = sqrt(5)); ``"orthogonal"`` /
        ``"glorot"``: that weight, zero bias.

    Attributes
    ----------
    params, grads : dict[str, ndarray]
        ``weight`` (out_features, in_features) and ``bias`` (out_features,).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        init: str = "pytorch",
    ) -> None:
        super().__init__(backend=backend)
        self.in_features = check_int("in_features", in_features, 0)
        self.out_features = check_int("out_features", out_features, 0)
        self.bias = _check_bool("bias", bias)
        self.dtype = float_dtype(dtype)
        self.seed = _check_seed(seed)
        self.init = _init.check_init(init)
        rng = np.random.default_rng(self.seed)
        shape = (self.out_features, self.in_features)
        if self.init == "pytorch":
            weight = _init.pytorch_default(shape, self.in_features, rng, self.dtype)
            b = _init.pytorch_default((self.out_features,), self.in_features, rng, self.dtype)
        else:
            weight = (
                _init.orthogonal(shape, rng, dtype=self.dtype)
                if self.init == "orthogonal"
                else _init.glorot_uniform(shape, rng, self.dtype)
            )
            b = np.zeros(self.out_features, dtype=self.dtype)
        self.register_parameter("weight", weight)
        if self.bias:
            self.register_parameter("bias", b)
        self._cache: Optional[np.ndarray] = None

    @property
    def cache(self) -> Optional[np.ndarray]:
        """The cache of the last forward call (its input; None before the first)."""
        return self._cache

    def config(self) -> Dict[str, Any]:
        return dict(
            in_features=self.in_features,
            out_features=self.out_features,
            bias=self.bias,
            dtype=self.dtype.name,
            seed=self.seed,
            backend=self.backend,
            init=self.init,
        )

    def forward(self, x: Any) -> np.ndarray:
        """``x W^T + b``.

        Parameters
        ----------
        x : ndarray, shape (..., in_features)

        Returns
        -------
        ndarray, shape (..., out_features)
        """
        x = input_array("x", x, self.dtype)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have shape (..., in_features) with in_features = "
                f"{self.in_features}, got {x.shape}"
            )
        y = x @ self.params["weight"].T
        if self.bias:
            y += self.params["bias"]
        self._cache = x
        return y

    def forward_backward(
        self, x: Any, targets: Any, loss: str = "cross_entropy"
    ) -> Tuple[float, np.ndarray]:
        """``y = x W^T + b``, its mean loss and the backward in one call.

        For training when ``y`` is only needed for its loss: the engine's
        ``linear_loss`` (one C call with backend "c"), no cache kept.

        Parameters
        ----------
        x : ndarray, shape (..., in_features)
        targets : ndarray
            "cross_entropy": integer class ids, shape ``x.shape[:-1]``;
            "mse": values, shape ``x.shape[:-1] + (out_features,)``.
        loss : {"cross_entropy", "mse"}
            ``crnn.losses.softmax_cross_entropy`` or ``crnn.losses.mse`` of
            ``y`` and the targets, reduction "mean".

        Returns
        -------
        loss : float
        dx : ndarray, shaped like ``x``

        The parameter gradients are added to ``self.grads``.
        """
        x = input_array("x", x, self.dtype)
        value, dx, dw, db = self.engine.linear_loss(
            x, self.params["weight"], self.params.get("bias"), targets, loss
        )
        self.grads["weight"] += dw
        if db is not None:
            self.grads["bias"] += db
        return value, dx

    def backward(self, dy: Any, *, cache: Optional[np.ndarray] = None) -> np.ndarray:
        """Backpropagate through the last forward call (or `cache`, its input).

        Parameters
        ----------
        dy : ndarray, shape (..., out_features)
            Gradient of the loss with respect to the output.

        Returns
        -------
        dx : ndarray, shaped like ``x``.

        The parameter gradients are added to ``self.grads``.
        """
        x = self._cache if cache is None else cache
        if x is None:
            raise RuntimeError("backward() called before forward(): there is no cache to use")
        if (
            not isinstance(x, np.ndarray)
            or x.dtype.newbyteorder("=") != self.dtype
            or x.ndim < 1
            or x.shape[-1] != self.in_features
        ):
            raise ValueError(
                "cache does not come from this Linear's forward (it is the input x: "
                f"a {self.dtype} array of shape (..., {self.in_features}))"
            )
        dy = input_array("dy", dy, self.dtype)
        _check_shape("dy", dy, x.shape[:-1] + (self.out_features,), "(..., out_features)")
        n = int(np.prod(x.shape[:-1]))
        dy2 = dy.reshape(n, self.out_features)
        x2 = x.reshape(n, self.in_features)
        self.grads["weight"] += dy2.T @ x2
        if self.bias:
            self.grads["bias"] += dy2.sum(axis=0)
        return dy @ self.params["weight"]
