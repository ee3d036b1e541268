"""Layers (floor 3): `RNN`, `LSTM`, `GRU`, `Jordan`, `RNNCell` and `Linear`, with PyTorch's semantics.

Each layer is written once against the functional API (``rnn_forward`` /
``rnn_backward``) and runs on the engine named by its ``backend``: ``"c"``
(`crnn.functional`) or ``"numpy"`` (`crnn.reference`). Parameters use
PyTorch's names and shapes, so ``torch.nn.RNN(...).state_dict()`` loads as is.

Conventions shared by the layers:

- The dtype (float32 or float64) is fixed at construction. Inputs of another
  dtype raise TypeError: nothing is cast silently.
- ``forward`` (also ``layer(...)``) keeps a cache of its *last* call;
  ``backward`` uses it (or an explicit ``cache=``, see each layer), returns
  the gradients with respect to the inputs and *accumulates* the parameter
  gradients into ``layer.grads``. Call ``zero_grad()`` between steps.
- Inputs are never modified and outputs are new arrays. The cache refers to
  the inputs and parameters (no copies): do not modify them in place between
  ``forward`` and ``backward``.
- Layers are not thread-safe (the cache is per object): use one object per
  thread.
"""
from __future__ import annotations

import numbers
import warnings
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from . import functional_jordan, reference
from . import init as _init
from ._types import RNNCache
from ._validate import check_lengths, check_nonlinearity
from ._engine import gated_engine
from .module import Module, check_int, float_dtype, input_array

__all__ = ["RNN", "LSTM", "GRU", "Jordan", "RNNCell", "Linear"]


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


def _rngs(seed: Optional[int]) -> Tuple[np.random.Generator, np.random.Generator]:
    """(init generator, dropout generator). The first is np.random.default_rng(seed)."""
    seq = np.random.SeedSequence(seed)
    return np.random.default_rng(seq), np.random.default_rng(seq.spawn(1)[0])


def _recurrent_params(init: str, rng: np.random.Generator, input_size: int, hidden_size: int,
                      bias: bool, dtype: np.dtype, gates: int = 1) -> List[Tuple[str, np.ndarray]]:
    """(weight_ih, weight_hh[, bias_ih, bias_hh]) of one direction of one layer.

    `gates` weight rows per hidden unit: 1 (RNN), 4 (LSTM), 3 (GRU).
    """
    H, I, G = hidden_size, input_size, gates * hidden_size
    if init == "pytorch":
        shapes = [("weight_ih", (G, I)), ("weight_hh", (G, H))]
        if bias:
            shapes += [("bias_ih", (G,)), ("bias_hh", (G,))]
        return [(name, _init.pytorch_default(shape, H, rng, dtype)) for name, shape in shapes]
    if init == "orthogonal":
        w_ih = _init.pytorch_default((G, I), H, rng, dtype)
        blocks = [_init.orthogonal((H, H), rng, dtype=dtype) for _ in range(gates)]
        params = [("weight_ih", w_ih),
                  ("weight_hh", blocks[0] if gates == 1 else np.concatenate(blocks, axis=0))]
    else:  # glorot
        params = [("weight_ih", _init.glorot_uniform((G, I), rng, dtype)),
                  ("weight_hh", _init.glorot_uniform((G, H), rng, dtype))]
    if bias:
        params += [("bias_ih", np.zeros(G, dtype=dtype)), ("bias_hh", np.zeros(G, dtype=dtype))]
    return params


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


# --------------------------------------------------------------------------
# Stacked recurrent layers: RNN, LSTM, GRU
# --------------------------------------------------------------------------

class RNNState(NamedTuple):
    """The cache `RNN` / `LSTM` / `GRU` ``forward`` keeps for ``backward`` (opaque to users)."""

    caches: List[List[Any]]  # [layer][direction]: RNNCache, LSTMCache or GRUCache
    masks: List[Optional[np.ndarray]]  # dropout mask applied to each layer's output, or None
    reverse_index: Optional[np.ndarray]  # (T, B) or None
    unbatched: bool
    batch_first: bool
    T: int
    B: int
    out_shape: Tuple[int, ...]  # as returned to the caller
    x_shape: Tuple[int, ...]
    h_shape: Tuple[int, ...]  # of h0 and h_n (and c0, c_n) as seen by the caller
    dtype: np.dtype
    key: Tuple[Any, ...]  # (input_size, hidden_size, num_layers, D, bias[, cell])


class _StackedRecurrent(Module):
    """Stacking, directions, per-row reversal, dropout, batch_first and
    unbatched input, shared by `RNN`, `LSTM` and `GRU`.

    A subclass sets ``_GATES`` (rows of each weight per hidden unit: 1, 4
    or 3), ``_STATES`` (state arrays: ``("h",)`` or ``("h", "c")``) and
    defines the per-direction hooks `_cell_forward` and `_cell_backward`.
    """

    _GATES = 1
    _STATES: Tuple[str, ...] = ("h",)

    def _setup(self, input_size, hidden_size, num_layers, bias, batch_first, dropout,
               bidirectional, dtype, seed, init) -> None:
        self.input_size = check_int("input_size", input_size, 0)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1)
        self.bias = _check_bool("bias", bias)
        self.batch_first = _check_bool("batch_first", batch_first)
        self.bidirectional = _check_bool("bidirectional", bidirectional)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real):
            raise TypeError(f"dropout must be a number in [0, 1], got {type(dropout).__name__}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be in [0, 1], got {dropout}")
        self.dropout = float(dropout)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn("dropout acts between layers, so it has no effect with num_layers=1",
                          UserWarning, stacklevel=3)
        self.dtype = float_dtype(dtype)
        self.seed = _check_seed(seed)
        self.init = _init.check_init(init)

        init_rng, self.dropout_rng = _rngs(self.seed)
        D = self.num_directions
        self._names: List[List[Tuple[str, ...]]] = []
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else D * self.hidden_size
            names = []
            for direction in range(D):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                group = []
                for short, value in _recurrent_params(self.init, init_rng, in_size,
                                                      self.hidden_size, self.bias, self.dtype,
                                                      self._GATES):
                    self.register_parameter(short + suffix, value)
                    group.append(short + suffix)
                names.append(tuple(group))
            self._names.append(names)
        self._cache: Optional[RNNState] = None

    @property
    def num_directions(self) -> int:
        """2 if bidirectional, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def cache(self) -> Optional[RNNState]:
        """The cache of the last forward call (None before the first)."""
        return self._cache

    def _weights(self, layer: int, direction: int):
        names = self._names[layer][direction]
        p = [self.params[n] for n in names]
        return p if self.bias else p + [None, None]

    def _dropout_mask(self, shape: Tuple[int, ...]) -> np.ndarray:
        if self.dropout >= 1.0:
            return np.zeros(shape, dtype=self.dtype)
        keep = self.dropout_rng.random(shape) >= self.dropout
        return keep.astype(self.dtype) * self.dtype.type(1.0 / (1.0 - self.dropout))

    def _key(self):
        return (self.input_size, self.hidden_size, self.num_layers, self.num_directions, self.bias)

    def _cell_engine(self):
        """The functional module the per-cell hooks call."""
        return self.engine

    # -- per-cell hooks ------------------------------------------------------

    def _cell_forward(self, eng, x, states, weights, lengths):
        """One direction of one layer: (out, [state_n...], cache)."""
        raise NotImplementedError

    def _cell_backward(self, eng, dout, dstates, cache):
        """(dx, [dstate0...], dweight_ih, dweight_hh, dbias_ih, dbias_hh)."""
        raise NotImplementedError

    # -- shared stacking -----------------------------------------------------

    def _forward_states(self, x: Any, states: List[Any], lengths: Any):
        """Run the stack; `states` holds one initial array (or None) per state.

        Returns (out, [state_n...]) as seen by the caller.
        """
        dt = self.dtype
        H, L, D = self.hidden_size, self.num_layers, self.num_directions
        x = input_array("x", x, dt)
        if x.ndim not in (2, 3):
            raise ValueError(f"x must have shape {'(B, T, input_size)' if self.batch_first else '(T, B, input_size)'} "
                             f"or unbatched (T, input_size), got {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x must have input_size = {self.input_size} features on its last axis, "
                             f"got shape {x.shape}")
        unbatched = x.ndim == 2
        if unbatched:
            if lengths is not None:
                raise ValueError("lengths applies to batched input only; slice an unbatched sequence instead")
            xt = x[:, None, :]
        else:
            xt = x.transpose(1, 0, 2) if self.batch_first else x
        T, B = xt.shape[0], xt.shape[1]
        h_shape = (L * D, H) if unbatched else (L * D, B, H)
        s0 = []
        for sname, s in zip(self._STATES, states):
            if s is not None:
                s = input_array(f"{sname}0", s, dt)
                _check_shape(f"{sname}0", s, h_shape,
                             "(num_layers * num_directions, hidden_size)" if unbatched
                             else "(num_layers * num_directions, B, hidden_size)")
                s = s[:, None, :] if unbatched else s
            s0.append(s)
        lens = check_lengths(lengths, T, B)
        idx = _reverse_index(T, B, lens) if D == 2 else None

        eng = self._cell_engine()
        caches: List[List[Any]] = []
        masks: List[Optional[np.ndarray]] = []
        s_n = [np.empty((L * D, B, H), dtype=dt) for _ in self._STATES]
        inp = xt
        for layer in range(L):
            outs, layer_caches = [], []
            for direction in range(D):
                src = inp if direction == 0 else _reverse(inp, idx)
                k = layer * D + direction
                init_k = [None if s is None else s[k] for s in s0]
                o, finals, cache = self._cell_forward(eng, src, init_k,
                                                      self._weights(layer, direction), lens)
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
        self._cache = RNNState(caches, masks, idx, unbatched, self.batch_first, T, B, out.shape,
                               x.shape, h_shape, dt, self._key())
        return out, s_n

    def _backward_states(self, dout: Any, dstates: List[Any], cache: Optional[RNNState]):
        """Backpropagate; `dstates` holds one gradient (or None) per final state.

        Returns (dx, [dstate0...]) as seen by the caller.
        """
        c = self._cache if cache is None else cache
        if c is None:
            raise RuntimeError("backward() called before forward(): there is no cache to use")
        if not isinstance(c, RNNState) or c.key != self._key() or c.dtype != self.dtype:
            raise ValueError(f"cache does not come from this {type(self).__name__}'s forward")
        dt = self.dtype
        H, L, D = self.hidden_size, self.num_layers, self.num_directions
        d = None
        if dout is not None:
            dout = input_array("dout", dout, dt)
            _check_shape("dout", dout, c.out_shape, "the shape of out")
            if c.unbatched:
                d = dout[:, None, :]
            else:
                d = dout.transpose(1, 0, 2) if c.batch_first else dout
        ds = []
        for sname, g in zip(self._STATES, dstates):
            if g is not None:
                g = input_array(f"d{sname}_n", g, dt)
                _check_shape(f"d{sname}_n", g, c.h_shape, f"the shape of {sname}_n")
                g = g[:, None, :] if c.unbatched else g
            ds.append(g)

        eng = self._cell_engine()
        idx = c.reverse_index
        d0 = [np.empty((L * D, c.B, H), dtype=dt) for _ in self._STATES]
        for layer in range(L - 1, -1, -1):
            dinp = None
            for direction in range(D):
                g_out = None
                if d is not None:
                    g_out = d[:, :, direction * H:(direction + 1) * H]
                    if direction == 1:
                        g_out = _reverse(g_out, idx)
                k = layer * D + direction
                dx, dinit, dw_ih, dw_hh, db_ih, db_hh = self._cell_backward(
                    eng, g_out, [None if g is None else g[k] for g in ds],
                    c.caches[layer][direction])
                dx_dir = dx if direction == 0 else _reverse(dx, idx)
                dinp = dx_dir if dinp is None else dinp + dx_dir
                for dst, v in zip(d0, dinit):
                    dst[k] = v
                names = self._names[layer][direction]
                self.grads[names[0]] += dw_ih
                self.grads[names[1]] += dw_hh
                if self.bias:
                    self.grads[names[2]] += db_ih
                    self.grads[names[3]] += db_hh
            if layer > 0 and c.masks[layer - 1] is not None:
                dinp = dinp * c.masks[layer - 1]
            d = dinp

        if c.unbatched:
            return d[:, 0, :], [s[:, 0, :] for s in d0]
        if c.batch_first:
            d = np.ascontiguousarray(d.transpose(1, 0, 2))
        return d, d0


_COMMON_PARAMETERS = """
    Parameters
    ----------
    input_size : int
        Features per input step, I.
    hidden_size : int
        Features of the state, H (>= 1).
    num_layers : int
        Stacked layers (>= 1).
    bias : bool
        Whether each layer has ``bias_ih`` and ``bias_hh``.
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
        The initialisation scheme (see `crnn.init`; for the gated layers
        ``"orthogonal"`` makes each gate's block of ``weight_hh`` orthogonal).
"""


class RNN(_StackedRecurrent):
    """A multi-layer Elman RNN with ``torch.nn.RNN``'s semantics.

    ``h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` per layer and
    direction, the output of one layer (directions concatenated) feeding the
    next.

    Parameters
    ----------
    input_size : int
        Features per input step, I.
    hidden_size : int
        Features of the state, H (>= 1).
    num_layers : int
        Stacked layers (>= 1).
    nonlinearity : {"tanh", "relu", "sigmoid"}
        The activation f (PyTorch's nn.RNN has tanh and relu).
    bias : bool
        Whether each layer has ``bias_ih`` and ``bias_hh``.
    batch_first : bool
        If True, ``x`` and ``out`` are (B, T, ·); ``h0`` and ``h_n`` never are.
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
        The initialisation scheme (see `crnn.init`).

    Attributes
    ----------
    params, grads : dict[str, ndarray]
        ``weight_ih_l{k}`` (H, I or D*H), ``weight_hh_l{k}`` (H, H),
        ``bias_ih_l{k}``, ``bias_hh_l{k}`` (H,), and the same with suffix
        ``_reverse`` for the second direction: PyTorch's names, shapes and
        order.

    Notes
    -----
    Not thread-safe (the last forward's cache is kept per object).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, dtype: Any = np.float32,
                 seed: Optional[int] = None, backend: str = "c", init: str = "pytorch") -> None:
        super().__init__(backend=backend)
        self.nonlinearity = check_nonlinearity(nonlinearity)
        self._setup(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                    bidirectional, dtype, seed, init)

    def config(self) -> Dict[str, Any]:
        return dict(input_size=self.input_size, hidden_size=self.hidden_size,
                    num_layers=self.num_layers, nonlinearity=self.nonlinearity, bias=self.bias,
                    batch_first=self.batch_first, dropout=self.dropout,
                    bidirectional=self.bidirectional, dtype=self.dtype.name, seed=self.seed,
                    backend=self.backend, init=self.init)

    def _cell_forward(self, eng, x, states, weights, lengths):
        o, hn, cache = eng.rnn_forward(x, states[0], *weights, nonlinearity=self.nonlinearity,
                                       lengths=lengths)
        return o, [hn], cache

    def _cell_backward(self, eng, dout, dstates, cache):
        g = eng.rnn_backward(dout, dstates[0], cache)
        return g.dx, [g.dh0], g.dweight_ih, g.dweight_hh, g.dbias_ih, g.dbias_hh

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

    def backward(self, dout: Any, dh_n: Any = None, *,
                 cache: Optional[RNNState] = None) -> Tuple[np.ndarray, np.ndarray]:
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


def _pair(name: str, value: Any) -> List[Any]:
    """An LSTM state argument: None, or a pair (h, c) whose items may be None."""
    if value is None:
        return [None, None]
    if isinstance(value, np.ndarray) or not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be None or a pair (h, c) of arrays, got "
                        f"{type(value).__name__}")
    return list(value)


class _GatedRecurrent(_StackedRecurrent):
    """The constructor, config and engine shared by `LSTM` and `GRU`."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: Any = np.float32,
                 seed: Optional[int] = None, backend: str = "c", init: str = "pytorch") -> None:
        super().__init__(backend=backend)
        self._setup(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                    bidirectional, dtype, seed, init)

    def config(self) -> Dict[str, Any]:
        return dict(input_size=self.input_size, hidden_size=self.hidden_size,
                    num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first,
                    dropout=self.dropout, bidirectional=self.bidirectional,
                    dtype=self.dtype.name, seed=self.seed, backend=self.backend, init=self.init)

    def _cell_engine(self):
        return gated_engine(self.backend)


class LSTM(_GatedRecurrent):
    """A multi-layer LSTM with ``torch.nn.LSTM``'s semantics (no projection).

    Per layer and direction, with PyTorch's gate order [i f g o]::

        i, f, o = sigmoid(.), g = tanh(.)   of x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
        c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
    """ + _COMMON_PARAMETERS + """
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

    _GATES = 4
    _STATES = ("h", "c")

    def _key(self):
        return super()._key() + ("lstm",)

    def _cell_forward(self, eng, x, states, weights, lengths):
        o, hn, cn, cache = eng.lstm_forward(x, states[0], states[1], *weights, lengths=lengths)
        return o, [hn, cn], cache

    def _cell_backward(self, eng, dout, dstates, cache):
        g = eng.lstm_backward(dout, dstates[0], dstates[1], cache)
        return g.dx, [g.dh0, g.dc0], g.dweight_ih, g.dweight_hh, g.dbias_ih, g.dbias_hh

    def forward(self, x: Any, hx: Any = None,
                lengths: Any = None) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
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
        out, (h_n, c_n) = self._forward_states(x, _pair("hx", hx), lengths)
        return out, (h_n, c_n)

    def backward(self, dout: Any, dhx: Any = None, *,
                 cache: Optional[RNNState] = None) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
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
        dx, (dh0, dc0) = self._backward_states(dout, _pair("dhx", dhx), cache)
        return dx, (dh0, dc0)


class GRU(_GatedRecurrent):
    """A multi-layer GRU with ``torch.nn.GRU``'s semantics.

    Per layer and direction, with PyTorch's gate order [r z n]::

        r, z = sigmoid(x_t W_i{r,z}^T + b_i{r,z} + h_{t-1} W_h{r,z}^T + b_h{r,z})
        n = tanh(x_t W_in^T + b_in + r * (h_{t-1} W_hn^T + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}
    """ + _COMMON_PARAMETERS + """
    Attributes
    ----------
    params, grads : dict[str, ndarray]
        ``weight_ih_l{k}`` (3H, I or D*H), ``weight_hh_l{k}`` (3H, H),
        ``bias_ih_l{k}``, ``bias_hh_l{k}`` (3H,), and ``..._reverse``:
        PyTorch's names, shapes and order.

    Notes
    -----
    ``forward`` and ``backward`` take and return what `RNN`'s do.
    Not thread-safe (the last forward's cache is kept per object).
    """

    _GATES = 3

    def _key(self):
        return super()._key() + ("gru",)

    def _cell_forward(self, eng, x, states, weights, lengths):
        o, hn, cache = eng.gru_forward(x, states[0], *weights, lengths=lengths)
        return o, [hn], cache

    def _cell_backward(self, eng, dout, dstates, cache):
        g = eng.gru_backward(dout, dstates[0], cache)
        return g.dx, [g.dh0], g.dweight_ih, g.dweight_hh, g.dbias_ih, g.dbias_hh

    def forward(self, x: Any, h0: Any = None, lengths: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        """Run the GRU: arguments and results as in `RNN.forward`."""
        out, (h_n,) = self._forward_states(x, [h0], lengths)
        return out, h_n

    def backward(self, dout: Any, dh_n: Any = None, *,
                 cache: Optional[RNNState] = None) -> Tuple[np.ndarray, np.ndarray]:
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
        ``weight_hy`` orthogonal (or Glorot), the others as in `RNN`, zero
        biases.

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

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 nonlinearity: str = "tanh", output_nonlinearity: str = "identity",
                 bias: bool = True, batch_first: bool = False, dtype: Any = np.float32,
                 seed: Optional[int] = None, backend: str = "c", init: str = "pytorch") -> None:
        super().__init__(backend=backend)
        self.input_size = check_int("input_size", input_size, 0)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.output_size = check_int("output_size", output_size, 1)
        self.nonlinearity = check_nonlinearity(nonlinearity)
        if output_nonlinearity not in reference.OUTPUT_NONLINEARITIES:
            raise ValueError(f"output_nonlinearity must be one of {reference.OUTPUT_NONLINEARITIES}, "
                             f"got {output_nonlinearity!r}")
        self.output_nonlinearity = output_nonlinearity
        self.bias = _check_bool("bias", bias)
        self.batch_first = _check_bool("batch_first", batch_first)
        self.dtype = float_dtype(dtype)
        self.seed = _check_seed(seed)
        self.init = _init.check_init(init)
        rng = np.random.default_rng(self.seed)
        I, H, O, dt = self.input_size, self.hidden_size, self.output_size, self.dtype
        if self.init == "pytorch":
            shapes = [("weight_ih", (H, I)), ("weight_hy", (H, O)), ("weight_ho", (O, H))]
            if self.bias:
                shapes += [("bias_ih", (H,)), ("bias_hh", (H,)), ("bias_ho", (O,))]
            params = [(n, _init.pytorch_default(s, H, rng, dt)) for n, s in shapes]
        else:
            w_hy = (_init.orthogonal((H, O), rng, dtype=dt) if self.init == "orthogonal"
                    else _init.glorot_uniform((H, O), rng, dt))
            params = [("weight_ih", _init.pytorch_default((H, I), H, rng, dt)
                       if self.init == "orthogonal" else _init.glorot_uniform((H, I), rng, dt)),
                      ("weight_hy", w_hy), ("weight_ho", _init.glorot_uniform((O, H), rng, dt))]
            if self.bias:
                params += [(n, np.zeros(s, dt)) for n, s in
                           (("bias_ih", H), ("bias_hh", H), ("bias_ho", O))]
        for name, value in params:
            self.register_parameter(name, value)
        self._cache: Optional[JordanState] = None

    @property
    def cache(self) -> Optional[JordanState]:
        """The cache of the last forward call (None before the first)."""
        return self._cache

    def config(self) -> Dict[str, Any]:
        return dict(input_size=self.input_size, hidden_size=self.hidden_size,
                    output_size=self.output_size, nonlinearity=self.nonlinearity,
                    output_nonlinearity=self.output_nonlinearity, bias=self.bias,
                    batch_first=self.batch_first, dtype=self.dtype.name, seed=self.seed,
                    backend=self.backend, init=self.init)

    def _key(self):
        return (self.input_size, self.hidden_size, self.output_size, self.bias)

    def _jordan_engine(self):
        return reference if self.backend == "numpy" else functional_jordan

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
            raise ValueError(f"x must have shape (T, B, input_size), (B, T, input_size) with "
                             f"batch_first, or unbatched (T, input_size), with input_size = "
                             f"{self.input_size}; got {x.shape}")
        unbatched = x.ndim == 2
        if unbatched:
            if lengths is not None:
                raise ValueError("lengths applies to batched input only; slice an unbatched sequence instead")
            xt = x[:, None, :]
        else:
            xt = x.transpose(1, 0, 2) if self.batch_first else x
        B = xt.shape[1]
        y_shape = (O,) if unbatched else (B, O)
        if y0 is not None:
            y0 = input_array("y0", y0, dt)
            _check_shape("y0", y0, y_shape, "(output_size,)" if unbatched else "(B, output_size)")
            y0 = y0[None, :] if unbatched else y0
        p = self.params
        out, y_n, cache = self._jordan_engine().jordan_forward(
            xt, y0, p["weight_ih"], p["weight_hy"], p["weight_ho"], p.get("bias_ih"),
            p.get("bias_hh"), p.get("bias_ho"), nonlinearity=self.nonlinearity,
            output_nonlinearity=self.output_nonlinearity, lengths=lengths)
        if unbatched:
            out, y_n = out[:, 0, :].copy(), y_n[0]
        elif self.batch_first:
            out = np.ascontiguousarray(out.transpose(1, 0, 2))
        else:
            out = out.copy()
        self._cache = JordanState(cache, unbatched, self.batch_first, out.shape, y_shape, dt,
                                  self._key())
        return out, y_n

    def backward(self, dout: Any, dy_n: Any = None, *,
                 cache: Optional[JordanState] = None) -> Tuple[np.ndarray, np.ndarray]:
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
            d = dout[:, None, :] if c.unbatched else (dout.transpose(1, 0, 2) if c.batch_first else dout)
        dy = None
        if dy_n is not None:
            dy_n = input_array("dy_n", dy_n, dt)
            _check_shape("dy_n", dy_n, c.y_shape, "the shape of y_n")
            dy = dy_n[None, :] if c.unbatched else dy_n
        g = self._jordan_engine().jordan_backward(d, dy, c.cache)
        for name, grad in (("weight_ih", g.dweight_ih), ("weight_hy", g.dweight_hy),
                           ("weight_ho", g.dweight_ho), ("bias_ih", g.dbias_ih),
                           ("bias_hh", g.dbias_hh), ("bias_ho", g.dbias_ho)):
            if grad is not None:
                self.grads[name] += grad
        if c.unbatched:
            return g.dx[:, 0, :], g.dy0[0]
        dx = np.ascontiguousarray(g.dx.transpose(1, 0, 2)) if c.batch_first else g.dx
        return dx, g.dy0


# --------------------------------------------------------------------------
# RNNCell
# --------------------------------------------------------------------------

class RNNCell(Module):
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

    Attributes
    ----------
    params, grads : dict[str, ndarray]
        ``weight_ih`` (H, I), ``weight_hh`` (H, H), ``bias_ih``, ``bias_hh``
        (H,): PyTorch's names.

    Notes
    -----
    `backward` uses the last `forward` call's cache. To backpropagate through
    several steps of a loop, save ``cell.cache`` after each step and pass it
    back: ``cell.backward(dh, cache=saved)``.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", dtype: Any = np.float32, seed: Optional[int] = None,
                 backend: str = "c", init: str = "pytorch") -> None:
        super().__init__(backend=backend)
        self.input_size = check_int("input_size", input_size, 0)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.bias = _check_bool("bias", bias)
        self.nonlinearity = check_nonlinearity(nonlinearity)
        self.dtype = float_dtype(dtype)
        self.seed = _check_seed(seed)
        self.init = _init.check_init(init)
        rng = np.random.default_rng(self.seed)
        for name, value in _recurrent_params(self.init, rng, self.input_size, self.hidden_size,
                                             self.bias, self.dtype):
            self.register_parameter(name, value)
        self._cache: Optional[Tuple[RNNCache, bool]] = None

    @property
    def cache(self):
        """The cache of the last forward call (None before the first)."""
        return self._cache

    def config(self) -> Dict[str, Any]:
        return dict(input_size=self.input_size, hidden_size=self.hidden_size, bias=self.bias,
                    nonlinearity=self.nonlinearity, dtype=self.dtype.name, seed=self.seed,
                    backend=self.backend, init=self.init)

    def forward(self, x: Any, h: Any = None) -> np.ndarray:
        """One step.

        Parameters
        ----------
        x : ndarray
            (B, I), or unbatched (I,).
        h : ndarray or None
            (B, H), or (H,) for unbatched input; None for zeros.

        Returns
        -------
        ndarray
            The new state, (B, H) or (H,).
        """
        dt = self.dtype
        x = input_array("x", x, dt)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"x must have shape (B, input_size) or (input_size,) with "
                             f"input_size = {self.input_size}, got {x.shape}")
        unbatched = x.ndim == 1
        x2 = x[None, :] if unbatched else x
        B = x2.shape[0]
        h2 = None
        if h is not None:
            h = input_array("h", h, dt)
            if unbatched:
                _check_shape("h", h, (self.hidden_size,), "(hidden_size,)")
                h2 = h[None, :]
            else:
                _check_shape("h", h, (B, self.hidden_size), "(B, hidden_size)")
                h2 = h
        p = self.params
        _, h_new, cache = self.engine.rnn_forward(
            x2[None], h2, p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"),
            nonlinearity=self.nonlinearity)
        self._cache = (cache, unbatched)
        return h_new[0] if unbatched else h_new

    def backward(self, dh: Any, *, cache=None) -> Tuple[np.ndarray, np.ndarray]:
        """Backpropagate through the last step (or `cache`).

        Parameters
        ----------
        dh : ndarray
            Gradient of the loss with respect to the returned state.
        cache : optional
            A cache saved from ``self.cache``; by default the last forward's.

        Returns
        -------
        dx : ndarray
            Shaped like ``x``.
        dh_prev : ndarray
            Shaped like the new state (also when ``h`` was None).

        The parameter gradients are added to ``self.grads``.
        """
        c = self._cache if cache is None else cache
        if c is None:
            raise RuntimeError("backward() called before forward(): there is no cache to use")
        if (not isinstance(c, tuple) or len(c) != 2 or not isinstance(c[0], RNNCache)
                or c[0].weight_ih.shape != self.params["weight_ih"].shape or c[0].x.dtype != self.dtype):
            raise ValueError("cache does not come from this RNNCell's forward")
        rc, unbatched = c
        B = rc.x.shape[1]
        shape = (self.hidden_size,) if unbatched else (B, self.hidden_size)
        dh = input_array("dh", dh, self.dtype)
        _check_shape("dh", dh, shape, "the shape of the state")
        g = self.engine.rnn_backward(None, dh[None, :] if unbatched else dh, rc)
        self.grads["weight_ih"] += g.dweight_ih
        self.grads["weight_hh"] += g.dweight_hh
        if self.bias:
            self.grads["bias_ih"] += g.dbias_ih
            self.grads["bias_hh"] += g.dbias_hh
        dx = g.dx[0]
        return (dx[0], g.dh0[0]) if unbatched else (dx, g.dh0)


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

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype: Any = np.float32, seed: Optional[int] = None, backend: str = "c",
                 init: str = "pytorch") -> None:
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
            weight = (_init.orthogonal(shape, rng, dtype=self.dtype) if self.init == "orthogonal"
                      else _init.glorot_uniform(shape, rng, self.dtype))
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
        return dict(in_features=self.in_features, out_features=self.out_features, bias=self.bias,
                    dtype=self.dtype.name, seed=self.seed, backend=self.backend, init=self.init)

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
            raise ValueError(f"x must have shape (..., in_features) with in_features = "
                             f"{self.in_features}, got {x.shape}")
        y = x @ self.params["weight"].T
        if self.bias:
            y += self.params["bias"]
        self._cache = x
        return y

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
        if (not isinstance(x, np.ndarray) or x.dtype.newbyteorder("=") != self.dtype or x.ndim < 1
                or x.shape[-1] != self.in_features):
            raise ValueError("cache does not come from this Linear's forward (it is the input x: "
                             f"a {self.dtype} array of shape (..., {self.in_features}))")
        dy = input_array("dy", dy, self.dtype)
        _check_shape("dy", dy, x.shape[:-1] + (self.out_features,), "(..., out_features)")
        n = int(np.prod(x.shape[:-1]))
        dy2 = dy.reshape(n, self.out_features)
        x2 = x.reshape(n, self.in_features)
        self.grads["weight"] += dy2.T @ x2
        if self.bias:
            self.grads["bias"] += dy2.sum(axis=0)
        return dy @ self.params["weight"]
