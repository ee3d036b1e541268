"""crnn's kernels inside PyTorch models: drop-ins for torch.nn's recurrent modules.

`RNN`, `LSTM`, `GRU`, `RNNCell`, `LSTMCell` and `GRUCell` are subclasses of
the torch.nn classes of the same names. Construction, parameters (names,
shapes, initialisation), ``state_dict``, ``repr`` and the forward's
arguments and results are torch's own (batch_first, unbatched input,
bidirectional, num_layers, dropout between layers in training mode,
PackedSequence in and out); only the recurrence runs on crnn's C engine,
through one `torch.autograd.Function` over `crnn.forward` /
`crnn.backward` that serves every cell of the registry (`crnn.cells`) that
has a torch module. Existing models switch with `convert` (in place, same
parameter objects) and back with `to_torch`::

    model = crnn.torch.convert(model)      # its torch.nn.LSTM now run on crnn
    loss = criterion(model(x), y); loss.backward(); optimizer.step()

Memory is shared where the layout allows: CPU tensors are handed to crnn as
NumPy views (``Tensor.numpy()``), and crnn's outputs and gradients come back
as tensors over crnn's arrays (``torch.from_numpy``), never copied. The
kernels are time-major, so a ``batch_first`` input is copied once into
(T, B, I) order; a PackedSequence is padded for the kernels and packed again.

Where crnn does not run, torch's own implementation does, with the same
results torch.nn would give:

- tensors on another device than the CPU (CUDA, MPS, meta), dtypes other
  than float32 and float64 (float16, bfloat16, ...), mixed dtypes or
  devices (torch then raises its own error), sparse or non-strided tensors,
  tensor subclasses with ``__torch_function__``;
- ``LSTM(proj_size > 0)`` (crnn has no projection);
- autocast regions, TorchScript (``torch.jit.trace``; scripting needs
  `to_torch` first), ``torch.compile`` / ``torch.export``;
- invalid arguments: torch raises its usual error.

Not supported on crnn's kernels: double backward (``create_graph=True``
followed by differentiating the gradients, e.g. gradient penalties) raises
RuntimeError naming crnn.torch when the second derivative is taken (use
`to_torch` for such models); ``torch.func`` transforms (vmap, grad).

Imported on demand (``import crnn.torch``): nothing else in crnn imports
torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from . import cells
from .cells import CellSpec
from .functional import backward as _crnn_backward, forward as _crnn_forward

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "convert", "to_torch"]

_CRNN_DTYPES = (torch.float32, torch.float64)


# --------------------------------------------------------------------------
# Tensors <-> arrays
# --------------------------------------------------------------------------


def _array(t: Any) -> Any:
    """A NumPy view of a CPU tensor (no copy; strides kept), or None."""
    return None if t is None else t.detach().numpy()


def _tensor(a: Optional[np.ndarray]) -> Optional[torch.Tensor]:
    """A tensor over a NumPy array's memory (no copy), or None."""
    return None if a is None else torch.from_numpy(a)


# --------------------------------------------------------------------------
# The autograd Function: one layer, one direction, any registry cell
# --------------------------------------------------------------------------


class _Recurrence(torch.autograd.Function):
    """One layer of one direction of any registry cell over a time-major batch.

    ``apply(cell, options, lengths, x, *states, *weights)``: `cell` a
    registry name, `options` a tuple of (name, value), `lengths` None or a
    (B,) int64 array, `x` (T, B, I), `states` one tensor or None per
    ``spec.states``, `weights` one tensor or None per ``spec.weights``
    (PyTorch's order). Returns ``(out, *final_states)``.
    """

    @staticmethod
    def forward(ctx: Any, cell: str, options: tuple, lengths: Any, x: torch.Tensor, *tensors: Any):
        spec = cells.get(cell)
        n = len(spec.states)
        states, weights = tensors[:n], tensors[n:]
        out, states_n, cache = _crnn_forward(
            spec,
            _array(x),
            None if all(s is None for s in states) else [_array(s) for s in states],
            {w.name: _array(t) for w, t in zip(spec.weights, weights)},
            lengths=lengths,
            **dict(options),
        )
        outputs = (torch.from_numpy(out), *map(torch.from_numpy, states_n))
        # The cache refers to the memory of x, the weights and out: saving
        # them lets autograd refuse a backward after an in-place change.
        ctx.save_for_backward(x, *tensors, outputs[0])
        ctx.cache = cache
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None
        return outputs

    @staticmethod
    def backward(ctx: Any, dout: Optional[torch.Tensor], *dstates: Optional[torch.Tensor]):
        saved = ctx.saved_tensors  # raises if one was modified in place
        grads = _crnn_backward(_array(dout), [_array(d) for d in dstates], ctx.cache)
        needed = ctx.needs_input_grad[3:]
        results = [_tensor(g) if need else None for g, need in zip(grads, needed)]
        if torch.is_grad_enabled():  # create_graph=True: our gradients have no graph
            inputs_need_grad = any(t is not None and t.requires_grad for t in saved)
            results = _refuse_double_backward(results, inputs_need_grad)
        return (None, None, None, *results)


class _DoubleBackwardRefused(torch.autograd.Function):
    """Passes gradients through; differentiating them again raises."""

    @staticmethod
    def forward(ctx: Any, *grads: torch.Tensor):
        return tuple(g.clone() for g in grads)

    @staticmethod
    def backward(ctx: Any, *_: Any):
        raise RuntimeError(
            "crnn.torch: crnn's kernels have no double backward (the gradient of a "
            "gradient, e.g. a gradient penalty); run this model with torch.nn's own "
            "modules instead: crnn.torch.to_torch(model)"
        )


def _refuse_double_backward(
    grads: List[Optional[torch.Tensor]], inputs_need_grad: bool
) -> List[Optional[torch.Tensor]]:
    """The gradients, made to raise if a second backward reaches them."""
    present = {i: g for i, g in enumerate(grads) if g is not None}
    if not present or not inputs_need_grad:
        return grads
    passed = _DoubleBackwardRefused.apply(
        *(g.detach().requires_grad_(True) for g in present.values())
    )
    result = list(grads)
    for i, g in zip(present, passed):
        result[i] = g
    return result


# --------------------------------------------------------------------------
# When torch runs instead
# --------------------------------------------------------------------------


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and compiler.is_compiling())


def _crnn_runs(tensors: Sequence[Any]) -> bool:
    """Whether crnn's kernels can run on these tensors (input first).

    False sends the call to torch's own implementation: non-CPU devices,
    dtypes other than float32 / float64, mixed dtypes, non-strided tensors,
    tensor subclasses, autocast, TorchScript, torch.compile.
    """
    if torch.jit.is_scripting() or torch.jit.is_tracing() or _compiling():
        return False
    if torch.is_autocast_enabled("cpu"):
        return False
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        return False
    if torch.overrides.has_torch_function(tuple(tensors)):
        return False
    dtype = tensors[0].dtype
    return dtype in _CRNN_DTYPES and all(
        t.device.type == "cpu" and t.dtype == dtype and t.layout == torch.strided for t in tensors
    )


def _state_tuple(hx: Any, n: int) -> Optional[Tuple[Any, ...]]:
    """hx as a tuple of n states (one tensor, or a tuple for the LSTM), or None."""
    if hx is None:
        return None
    if n == 1:
        return (hx,)
    return tuple(hx) if isinstance(hx, (tuple, list)) and len(hx) == n else None


def _spec_of(torch_class: type) -> CellSpec:
    """The registry cell whose torch module is `torch_class` (or its *Cell)."""
    name = torch_class.__name__
    for spec in cells.REGISTRY.values():
        if spec.torch_module and name in (spec.torch_module, spec.torch_module + "Cell"):
            return spec
    raise TypeError(f"no cell of crnn.cells.REGISTRY has the torch module {name}")


def _options(module: Any, spec: CellSpec) -> tuple:
    """The cell's options (the RNN's nonlinearity) as torch's module has them."""
    return tuple((o.name, getattr(module, o.name)) for o in spec.options if o.role != "precision")


# Type checkers see the mixins as the torch bases they are mixed into.
if TYPE_CHECKING:
    from torch.nn import RNNBase as _LayerBase, RNNCellBase as _CellBase
else:
    _LayerBase = _CellBase = object

# The crnn class of each torch.nn class, filled as the classes are defined.
_CRNN_CLASS: Dict[type, type] = {}


class _OnCrnn:
    """What the crnn.torch classes share: their cell, and registration."""

    _cell: CellSpec
    _torch_class: type

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__ == __name__ and cls.__bases__[-1].__module__.startswith("torch."):
            cls._torch_class = cls.__bases__[-1]
            cls._cell = _spec_of(cls._torch_class)
            _CRNN_CLASS[cls._torch_class] = cls


# --------------------------------------------------------------------------
# Layers: RNN, LSTM, GRU
# --------------------------------------------------------------------------


def _reverse_index(T: int, lengths: Optional[np.ndarray]) -> Optional[torch.Tensor]:
    """(T, B) time indices reversing each row within its length (None: flip all).

    ``idx[t, b] = lengths[b] - 1 - t`` for t < lengths[b], else t; the map is
    its own inverse, so it also puts the reversed outputs back.
    """
    if lengths is None:
        return None
    t = np.arange(T, dtype=np.int64)[:, None]
    return torch.from_numpy(np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t))


def _reverse(a: torch.Tensor, idx: Optional[torch.Tensor]) -> torch.Tensor:
    if idx is None:
        return a.flip(0)
    return a.gather(0, idx[:, :, None].expand(-1, -1, a.size(2)))


class _Layer(_OnCrnn, _LayerBase):
    """forward() of the multi-layer modules on crnn's kernels."""

    def _crnn_input(self, input: Any, hx: Any) -> bool:
        """Whether crnn runs this call: supported tensors, and the dimensions
        torch accepts (torch's forward raises for the others)."""
        if getattr(self, "proj_size", 0) > 0:
            return False
        n = len(self._cell.states)
        data = input.data if isinstance(input, PackedSequence) else input
        states = _state_tuple(hx, n)
        if hx is not None and states is None:
            return False
        if not _crnn_runs([data, *(states or ()), *self._flat_weights]):
            return False
        if isinstance(input, PackedSequence):
            return states is None or all(s.dim() == 3 for s in states)
        if input.dim() not in (2, 3):
            return False
        return states is None or all(s.dim() == input.dim() for s in states)

    def forward(self, input: Any, hx: Any = None) -> Any:
        """torch.nn's forward: ``output, h_n`` (``output, (h_n, c_n)`` for the LSTM).

        `input` is (T, B, I) (``batch_first``: (B, T, I)), unbatched (T, I),
        or a PackedSequence (then `output` is one too); `hx` the initial
        state(s), (num_layers * D, B, H), or None for zeros. Runs on crnn's
        kernels, or on torch's implementation where crnn does not run (see
        `crnn.torch`).
        """
        self._update_flat_weights()
        if not self._crnn_input(input, hx):
            return super().forward(input, hx)
        spec = self._cell
        n = len(spec.states)
        packed = isinstance(input, PackedSequence)
        lengths = None
        if packed:
            data, batch_sizes, sorted_indices, unsorted_indices = input
            if hx is not None:
                hx = self.permute_hidden(hx, sorted_indices)
            self._check(data, hx, batch_sizes)
            x, lengths_t = pad_packed_sequence(PackedSequence(data, batch_sizes))
            lengths = lengths_t.numpy()
        else:
            batched = input.dim() == 3
            batch_dim = 0 if self.batch_first else 1
            if not batched:
                input = input.unsqueeze(batch_dim)
                if hx is not None:
                    hx = hx.unsqueeze(1) if n == 1 else tuple(s.unsqueeze(1) for s in hx)
            self._check(input, hx, None)
            x = input.transpose(0, 1) if self.batch_first else input
        out, finals = self._layers(x, _state_tuple(hx, n), lengths, batch_sizes if packed else None)
        hidden: Any = finals[0] if n == 1 else finals
        if packed:
            out_data = pack_padded_sequence(out, lengths_t).data
            output = PackedSequence(out_data, batch_sizes, sorted_indices, unsorted_indices)
            return output, self.permute_hidden(hidden, unsorted_indices)
        if self.batch_first:
            out = out.transpose(0, 1)
        if not batched:
            out = out.squeeze(batch_dim)
            hidden = hidden.squeeze(1) if n == 1 else tuple(s.squeeze(1) for s in hidden)
        return out, hidden

    def _check(self, input: torch.Tensor, hx: Any, batch_sizes: Any) -> None:
        """torch's own argument checks, with torch's messages."""
        if hx is None:
            self.check_input(input, batch_sizes)
        else:
            self.check_forward_args(input, hx, batch_sizes)

    def _layers(
        self,
        x: torch.Tensor,
        states: Optional[Tuple[torch.Tensor, ...]],
        lengths: Optional[np.ndarray],
        batch_sizes: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]:
        """ATen's layer stack on time-major x: every layer and direction,
        dropout between layers as torch draws it (on the packed data for a
        PackedSequence, so a seed gives torch's masks)."""
        spec = self._cell
        D = 2 if self.bidirectional else 1
        n = len(spec.states)
        options = _options(self, spec)
        weights = dict(zip(self._flat_weights_names, self._flat_weights))
        reverse_idx = _reverse_index(x.size(0), lengths) if D == 2 else None
        finals: List[List[torch.Tensor]] = [[] for _ in range(n)]
        layer_input = x
        for layer in range(self.num_layers):
            outs = []
            for direction in range(D):
                k = layer * D + direction
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                src = layer_input if direction == 0 else _reverse(layer_input, reverse_idx)
                out, *state_n = _Recurrence.apply(
                    spec.name,
                    options,
                    lengths,
                    src,
                    *(s[k] for s in states) if states is not None else (None,) * n,
                    *(weights.get(w.name + suffix) for w in spec.weights),
                )
                outs.append(out if direction == 0 else _reverse(out, reverse_idx))
                for i, s in enumerate(state_n):
                    finals[i].append(s)
            layer_input = outs[0] if D == 1 else torch.cat(outs, 2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = self._dropout(layer_input, lengths, batch_sizes)
        return layer_input, tuple(torch.stack(f) for f in finals)

    def _dropout(
        self, out: torch.Tensor, lengths: Optional[np.ndarray], batch_sizes: Any
    ) -> torch.Tensor:
        if batch_sizes is None:
            return torch.nn.functional.dropout(out, self.dropout, True)
        data = pack_padded_sequence(out, torch.from_numpy(lengths)).data
        data = torch.nn.functional.dropout(data, self.dropout, True)
        return pad_packed_sequence(PackedSequence(data, batch_sizes))[0]


class RNN(_Layer, torch.nn.RNN):
    """`torch.nn.RNN` on crnn's kernels (same constructor, parameters, forward).

    A multi-layer Elman RNN, ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T +
    b_hh)`` (or relu): torch.nn.RNN's documentation applies as is. CPU
    float32 / float64 tensors run on crnn's C engine, everything else on
    torch's own implementation (see `crnn.torch`).
    """


class LSTM(_Layer, torch.nn.LSTM):
    """`torch.nn.LSTM` on crnn's kernels (same constructor, parameters, forward).

    torch.nn.LSTM's documentation applies as is. CPU float32 / float64
    tensors run on crnn's C engine; ``proj_size > 0``, other devices and
    dtypes on torch's own implementation (see `crnn.torch`).
    """


class GRU(_Layer, torch.nn.GRU):
    """`torch.nn.GRU` on crnn's kernels (same constructor, parameters, forward).

    PyTorch's GRU (the reset gate applied after the recurrent product):
    torch.nn.GRU's documentation applies as is. CPU float32 / float64 tensors
    run on crnn's C engine, everything else on torch's own implementation.
    """


# --------------------------------------------------------------------------
# One-step cells: RNNCell, LSTMCell, GRUCell
# --------------------------------------------------------------------------


class _Cell(_OnCrnn, _CellBase):
    """forward() of the one-step cells on crnn's kernels (a sequence of one step)."""

    def _crnn_states(self, input: Any, hx: Any) -> Optional[Tuple[Any, ...]]:
        """The states as (B, H) tensors (or () for None) when crnn runs this
        call; None sends it to torch's forward, which raises for bad ones."""
        n = len(self._cell.states)
        states = _state_tuple(hx, n)
        if hx is not None and states is None:
            return None
        weights = [getattr(self, w.name) for w in self._cell.weights]
        if not _crnn_runs([input, *(states or ()), *(w for w in weights if w is not None)]):
            return None
        if input.dim() not in (1, 2) or input.size(-1) != self.input_size:
            return None
        batch = input.size(0) if input.dim() == 2 else None
        expected = (self.hidden_size,) if batch is None else (batch, self.hidden_size)
        if states is not None and any(tuple(s.shape) != expected for s in states):
            return None
        return states or ()

    def forward(self, input: Any, hx: Any = None) -> Any:
        """torch.nn's cell step: ``h'`` (``(h', c')`` for the LSTMCell).

        `input` is (B, I) or unbatched (I,); `hx` the state(s), (B, H) or
        (H,), or None for zeros. Runs on crnn's kernels, or on torch's
        implementation where crnn does not run (see `crnn.torch`).
        """
        states = self._crnn_states(input, hx)
        if states is None:
            return super().forward(input, hx)
        spec = self._cell
        n = len(spec.states)
        batched = input.dim() == 2
        x = input[None] if batched else input[None, None]
        if not batched:
            states = tuple(s[None] for s in states)
        _, *finals = _Recurrence.apply(
            spec.name,
            _options(self, spec),
            None,
            x,
            *(states or (None,) * n),
            *(getattr(self, w.name) for w in spec.weights),
        )
        if not batched:
            finals = [s[0] for s in finals]
        return finals[0] if n == 1 else tuple(finals)


class RNNCell(_Cell, torch.nn.RNNCell):
    """`torch.nn.RNNCell` on crnn's kernels (same constructor, parameters, forward).

    One step ``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or relu).
    CPU float32 / float64 tensors run on crnn's C engine, everything else on
    torch's own implementation (see `crnn.torch`).
    """


class LSTMCell(_Cell, torch.nn.LSTMCell):
    """`torch.nn.LSTMCell` on crnn's kernels (same constructor, parameters, forward).

    One LSTM step, returning ``(h', c')``. CPU float32 / float64 tensors run
    on crnn's C engine, everything else on torch's own implementation.
    """


class GRUCell(_Cell, torch.nn.GRUCell):
    """`torch.nn.GRUCell` on crnn's kernels (same constructor, parameters, forward).

    One step of PyTorch's GRU. CPU float32 / float64 tensors run on crnn's C
    engine, everything else on torch's own implementation.
    """


# --------------------------------------------------------------------------
# Switching models
# --------------------------------------------------------------------------


def convert(model: torch.nn.Module) -> torch.nn.Module:
    """Run the torch.nn recurrent modules of `model` on crnn's kernels, in place.

    Every submodule (and `model` itself) whose class is exactly
    ``torch.nn.RNN``, ``LSTM``, ``GRU``, ``RNNCell``, ``LSTMCell`` or
    ``GRUCell`` becomes an instance of the crnn.torch class of the same name:
    the same object, with the same parameters, buffers, hooks and
    ``state_dict``, so optimizers built before keep working. Subclasses of
    those torch classes are left alone (their forward may differ).

    Returns `model`.
    """
    return _switch(model, _CRNN_CLASS)


def to_torch(model: torch.nn.Module) -> torch.nn.Module:
    """Undo `convert`: every crnn.torch module of `model` back to its torch.nn class.

    In place, as `convert` (same objects and parameters). Use it before
    ``torch.jit.script``, or for a model that needs double backward.
    Returns `model`.
    """
    return _switch(
        model, {crnn_class: torch_class for torch_class, crnn_class in _CRNN_CLASS.items()}
    )


def _switch(model: Any, classes: Dict[type, type]) -> torch.nn.Module:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for module in model.modules():
        new_class = classes.get(type(module))
        if new_class is not None:
            module.__class__ = new_class
    return model
