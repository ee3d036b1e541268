"""`Session`: an ONNX graph run with crnn's kernels (the engine of `crnn.onnx.load`).

The standard recurrent operators (RNN, LSTM, GRU) run on crnn's C engine
through `crnn.forward`, each node matched to the registry cell whose
``onnx_operator`` and ``onnx_attributes`` it has (`crnn.cells`); the glue
around them runs in NumPy (`crnn._onnx_ops`). Everything crnn cannot run is
refused when the model is loaded, with an error naming the node and the
attribute or input: peepholes, clip, activations other than the cell's, an
operator outside the table, another operator domain.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from . import cells
from ._onnx_ops import OPS, Attributes, NodeFunction, UnsupportedModelError
from .cells import CellSpec
from .functional import forward as _crnn_forward
from .nn import _reverse, _reverse_index

__all__ = ["Session", "NodeArg"]

# The recurrent operators: their inputs, and their default activations (the
# ONNX definitions, not crnn's).
RECURRENT_INPUTS = {
    "RNN": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
    "GRU": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
    "LSTM": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"),
}
DEFAULT_ACTIVATIONS = {
    "RNN": ("Tanh",),
    "GRU": ("Sigmoid", "Tanh"),
    "LSTM": ("Sigmoid", "Tanh", "Tanh"),
}
# Attribute values that select a cell, when the node leaves them out.
ATTRIBUTE_DEFAULTS = {"linear_before_reset": 0}
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}


class NodeArg(NamedTuple):
    """A graph input or output, as onnxruntime's ``NodeArg`` shows it."""

    name: str
    shape: List[Any]  # ints, and names (or None) for free dimensions
    type: str  # "tensor(float)", ...


def _cell_for(op: str, attrs: Attributes) -> CellSpec:
    """The registry cell that computes this recurrent node."""
    wanted = []
    for spec in cells.REGISTRY.values():
        if spec.onnx_operator != op:
            continue
        values = {k: attrs.get(k, ATTRIBUTE_DEFAULTS.get(k)) for k, _ in spec.onnx_attributes}
        if all(values[k] == v for k, v in spec.onnx_attributes):
            return spec
        wanted.append(dict(spec.onnx_attributes))
    got = {k: attrs.get(k, ATTRIBUTE_DEFAULTS.get(k)) for w in wanted for k in w}
    raise UnsupportedModelError(
        f"{attrs.where}: no crnn cell computes {op} with "
        + ", ".join(f"{k}={v}" for k, v in got.items())
        + f" (crnn's {op} cells have {wanted})"
    )


def _cell_options(spec: CellSpec, op: str, activations: Sequence[str], where: str) -> dict:
    """crnn options of `spec` for one direction's ONNX activations."""
    defaults = DEFAULT_ACTIVATIONS[op]
    choice = [o for o in spec.options if o.role == "activation"]
    if choice and len(defaults) == 1:  # the activation is the cell's option
        value = activations[0].lower()
        if value in choice[0].choices:
            return {choice[0].name: value}
    elif tuple(activations) == defaults:
        return {}
    runs = (
        f"one of {[c.capitalize() for c in choice[0].choices]}"
        if choice and len(defaults) == 1
        else str(list(defaults))
    )
    raise UnsupportedModelError(
        f"{where}: attribute 'activations' = {list(activations)} is not supported by "
        f"crnn.onnx (the {spec.title} cell runs {runs})"
    )


def _onnx_to_cell_rows(spec: CellSpec, a: np.ndarray) -> np.ndarray:
    """Rows of ONNX gate blocks (first axis G*H) in the cell's gate order."""
    order = spec.onnx_gate_order
    assert order is not None, "a cell with an onnx_operator has an onnx_gate_order"
    blocks = np.split(a, spec.gates, axis=0)
    return np.concatenate([blocks[order.index(j)] for j in range(spec.gates)], axis=0)


class _Recurrent:
    """One RNN / LSTM / GRU node, run with crnn's kernels."""

    def __init__(self, op: str, attrs: Attributes, inputs: Sequence[str], constants: dict):
        where = attrs.where
        self.spec = _cell_for(op, attrs)
        attrs.refuse("clip", "cell clipping")
        attrs.refuse("activation_alpha", "activation parameters")
        attrs.refuse("activation_beta", "activation parameters")
        if attrs.get("input_forget", 0):
            raise UnsupportedModelError(
                f"{where}: attribute 'input_forget' = 1 (coupled input and forget gates) "
                "is not supported by crnn.onnx"
            )
        direction = attrs.get("direction", "forward")
        if direction not in DIRECTIONS:
            raise UnsupportedModelError(
                f"{where}: attribute 'direction' = {direction!r} is unknown"
            )
        self.reverse_only = direction == "reverse"
        self.D = DIRECTIONS[direction]
        self.layout = attrs.get("layout", 0)
        if self.layout not in (0, 1):
            raise UnsupportedModelError(f"{where}: attribute 'layout' = {self.layout} is unknown")
        self.hidden_size = attrs.get("hidden_size")
        defaults = DEFAULT_ACTIVATIONS[op]
        activations = attrs.get("activations") or list(defaults) * self.D
        k = len(defaults)
        if len(activations) != k * self.D:
            raise UnsupportedModelError(
                f"{where}: attribute 'activations' must list {k * self.D} functions, "
                f"got {activations}"
            )
        self.options = [
            _cell_options(self.spec, op, activations[d * k : (d + 1) * k], where)
            for d in range(self.D)
        ]
        attrs.done()
        names = dict(zip(RECURRENT_INPUTS[op], list(inputs) + [""] * 8))
        if names.get("P"):
            raise UnsupportedModelError(
                f"{where}: input 'P' (peepholes) is not supported by crnn.onnx"
            )
        self.where = where
        # Weights that are constants are put in crnn's layout once, here.
        self._weights: Optional[List[Dict[str, Any]]] = None
        if all(not names[n] or names[n] in constants for n in ("W", "R", "B")):
            w = [constants.get(names[n]) if names[n] else None for n in ("W", "R", "B")]
            self._weights = self._cell_weights(*w)

    def _cell_weights(self, W: Any, R: Any, B: Any) -> List[Dict[str, Any]]:
        """Per direction, the cell's weights from the node's W, R, B."""
        spec, D = self.spec, self.D
        for name, a, rank in (("W", W, 3), ("R", R, 3), ("B", B, 2)):
            if a is not None and (a.ndim != rank or a.shape[0] != D):
                raise ValueError(
                    f"{self.where}: input {name} must have {rank} dimensions and {D} "
                    f"direction(s) first, got shape {a.shape}"
                )
        H = R.shape[2]
        if self.hidden_size is not None and H != self.hidden_size:
            raise ValueError(
                f"{self.where}: R has hidden size {H}, hidden_size is {self.hidden_size}"
            )
        G = spec.gates * H
        if W.shape[1] != G or R.shape[1] != G or (B is not None and B.shape[1] != 2 * G):
            raise ValueError(
                f"{self.where}: W, R and B must have {G} = {spec.gates} * {H} rows "
                f"(B: {2 * G}), got {W.shape}, {R.shape}"
                + (f", {B.shape}" if B is not None else "")
            )
        out = []
        for d in range(D):
            weights = {
                "weight_ih": _onnx_to_cell_rows(spec, W[d]),
                "weight_hh": _onnx_to_cell_rows(spec, R[d]),
            }
            if B is not None:
                weights["bias_ih"] = _onnx_to_cell_rows(spec, B[d, :G])
                weights["bias_hh"] = _onnx_to_cell_rows(spec, B[d, G:])
            out.append(weights)
        return out

    def __call__(self, X, W, R, B=None, sequence_lens=None, *given_states):
        spec, D = self.spec, self.D
        weights = self._weights if self._weights is not None else self._cell_weights(W, R, B)
        n = len(spec.states)
        states0: List[Any] = list(given_states[:n]) + [None] * (n - len(given_states))
        if self.layout == 1:  # batch-major: X (B, T, I), states (B, D, H)
            X = X.transpose(1, 0, 2)
            states0 = [None if s is None else s.transpose(1, 0, 2) for s in states0]
        T, batch = X.shape[:2]
        lengths = None if sequence_lens is None else sequence_lens.astype(np.int64)
        idx = _reverse_index(T, batch, lengths) if (self.reverse_only or D == 2) else None
        outs, finals = [], []
        for d in range(D):
            backwards = self.reverse_only or d == 1
            x = _reverse(X, idx) if backwards else X
            given = [None if s is None else s[d] for s in states0]
            out, states_n, _ = _crnn_forward(
                spec,
                x,
                None if all(s is None for s in given) else given,
                weights[d],
                lengths=lengths,
                **self.options[d],
            )
            outs.append(_reverse(out, idx) if backwards else out)
            finals.append(states_n)
        # (T, D, B, H) and (D, B, H); one direction's arrays only get an axis.
        Y = outs[0][:, None] if D == 1 else np.stack(outs, axis=1)
        Y_states = [
            finals[0][i][None] if D == 1 else np.stack([f[i] for f in finals])
            for i in range(len(spec.states))
        ]
        if lengths is not None:
            # A row of length 0 ends with zero states, as onnxruntime has it
            # (crnn's layers keep the initial state there).
            for s in Y_states:
                s[:, lengths == 0] = 0
        if self.layout == 1:
            Y = Y.transpose(2, 0, 1, 3)
            Y_states = [s.transpose(1, 0, 2) for s in Y_states]
        return (Y, *Y_states)


class _Step(NamedTuple):
    fn: Callable[..., Tuple[np.ndarray, ...]]
    inputs: Tuple[str, ...]
    outputs: Tuple[str, ...]
    where: str


_TYPE_NAMES = {
    "float32": "float",
    "float64": "double",
    "int64": "int64",
    "int32": "int32",
    "bool": "bool",
    "float16": "float16",
}


class Session:
    """An ONNX model loaded for `run`, as ``onnxruntime.InferenceSession`` has it.

    Made by `crnn.onnx.load`. ``run(output_names, input_feed)`` returns the
    named outputs (all with None) as NumPy arrays; inputs are checked against
    the graph's declared element types and fixed dimensions (TypeError /
    ValueError naming the input). Thread-safe: a run keeps its values to
    itself, and crnn's kernels release the GIL.
    """

    def __init__(self, model: Any) -> None:
        from onnx import helper, numpy_helper

        graph = model.graph
        opset = None
        for entry in model.opset_import:
            if entry.domain in ("", "ai.onnx"):
                opset = entry.version
            elif any(n.domain == entry.domain for n in graph.node):
                raise UnsupportedModelError(
                    f"the model uses operators of domain {entry.domain!r}; crnn.onnx runs "
                    "the standard domain only"
                )
        if opset is None:
            raise UnsupportedModelError("the model imports no version of the standard ONNX opset")
        self._constants: Dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in graph.initializer
        }
        self._inputs = [
            self._node_arg(v, helper) for v in graph.input if v.name not in self._constants
        ]
        self._outputs = [self._node_arg(v, helper) for v in graph.output]
        self._dtypes = {
            v.name: helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
            for v in graph.input
            if v.name not in self._constants and v.type.tensor_type.elem_type
        }
        self._steps: List[_Step] = []
        for i, node in enumerate(graph.node):
            where = f"node {node.name or i!r} ({node.op_type})"
            if node.domain not in ("", "ai.onnx"):
                raise UnsupportedModelError(f"{where}: domain {node.domain!r} is not supported")
            attrs = Attributes(node, where)
            fn: NodeFunction
            if node.op_type in RECURRENT_INPUTS:
                fn = _Recurrent(node.op_type, attrs, node.input, self._constants)
            elif node.op_type in OPS:
                fn = OPS[node.op_type](attrs, opset)
            else:
                raise UnsupportedModelError(
                    f"{where}: operator {node.op_type} is not supported by crnn.onnx "
                    f"(it runs RNN, LSTM, GRU and {', '.join(sorted(OPS))})"
                )
            step = _Step(fn, tuple(node.input), tuple(node.output), where)
            if node.op_type == "Constant":  # folded now: a weight may come from one
                self._constants[node.output[0]] = step.fn()[0]
            else:
                self._steps.append(step)

    @staticmethod
    def _node_arg(value: Any, helper: Any) -> NodeArg:
        t = value.type.tensor_type
        dims = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim
        ]
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).name if t.elem_type else ""
        return NodeArg(value.name, dims, f"tensor({_TYPE_NAMES.get(dtype, dtype)})")

    def get_inputs(self) -> List[NodeArg]:
        """The inputs to feed (initializers excluded), in graph order."""
        return list(self._inputs)

    def get_outputs(self) -> List[NodeArg]:
        """The graph's outputs, in order."""
        return list(self._outputs)

    def _check_feed(self, feed: Dict[str, Any]) -> Dict[str, np.ndarray]:
        if not isinstance(feed, dict):
            raise TypeError(
                f"input_feed must be a dict of input name to array, got {type(feed).__name__}"
            )
        known = {a.name: a for a in self._inputs}
        checked = {}
        for name, value in feed.items():
            if name not in known:
                raise ValueError(
                    f"input_feed names {name!r}, which is not an input of the model ({sorted(known)})"
                )
            arr = np.asarray(value)
            want = self._dtypes.get(name)
            if want is not None and arr.dtype != want:
                raise TypeError(
                    f"input {name!r} must have dtype {np.dtype(want).name}, got {arr.dtype}"
                )
            dims = known[name].shape
            if arr.ndim != len(dims) or any(
                isinstance(d, int) and d != n for d, n in zip(dims, arr.shape)
            ):
                raise ValueError(f"input {name!r} must have shape {tuple(dims)}, got {arr.shape}")
            checked[name] = arr
        missing = [n for n in known if n not in checked]
        if missing:
            raise ValueError(f"input_feed lacks the model's input(s) {missing}")
        return checked

    def run(
        self,
        output_names: Optional[Sequence[str]],
        input_feed: Dict[str, Any],
        run_options: Any = None,
    ) -> List[np.ndarray]:
        """The values of `output_names` (None: every graph output) for `input_feed`.

        Parameters
        ----------
        output_names : sequence of str or None
        input_feed : dict of str to array
            One array per input of `get_inputs`, of its element type.
        run_options : ignored
            Accepted for onnxruntime's signature.

        Returns
        -------
        list of ndarray, in the order of `output_names`.
        """
        names = [a.name for a in self._outputs] if output_names is None else list(output_names)
        unknown = [n for n in names if n not in {a.name for a in self._outputs}]
        if unknown:
            raise ValueError(f"output_names names {unknown}, which are not outputs of the model")
        feed = self._check_feed(input_feed)
        values: Dict[str, Any] = {**self._constants, **feed}
        for step in self._steps:
            args = [values[n] if n else None for n in step.inputs]
            while args and args[-1] is None:
                args.pop()
            try:
                results = step.fn(*args)
            except (ValueError, TypeError, IndexError) as exc:
                raise type(exc)(f"{step.where}: {exc}") from exc
            for name, result in zip(step.outputs, results):
                if name:
                    values[name] = result
        shared = list(self._constants.values()) + list(feed.values())
        # A result that is a view of a weight or of an input is returned as a
        # copy, so writing to it cannot change the model or the caller's data.
        return [
            values[n].copy()
            if any(np.may_share_memory(values[n], s) for s in shared)
            else values[n]
            for n in names
        ]
