"""`export`: crnn's recurrent layers and models as standard ONNX graphs.

Each layer of a `crnn.nn.Recurrent` becomes one standard RNN / LSTM / GRU
node (the registry cell's ``onnx_operator``, its weights reordered into
ONNX's gate order, both directions in one node), with ``sequence_lens`` for
lengths and slices of the initial states; the layers are chained by
Transpose + Reshape, their final states concatenated. Models add their
input stage (Embedding as Gather, one-hot ids as OneHot) and their Linear
head (MatMul + Add, or Gemm). The graph runs in onnxruntime and in
`crnn.onnx.load`.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .cells import CellSpec
from .embedding import Embedding
from .models import CharRNN, SequenceClassifier, SequenceTagger
from .nn import Linear, Recurrent

__all__ = ["export", "DEFAULT_OPSET"]

# RNN / GRU / LSTM have had their current form since opset 14 (layout).
DEFAULT_OPSET = 17
MIN_OPSET = 14


def _onnx_rows(spec: CellSpec, a: np.ndarray) -> np.ndarray:
    """Rows of the cell's gate blocks (first axis G*H) in ONNX's gate order."""
    assert spec.onnx_gate_order is not None, "a cell with an onnx_operator has a gate order"
    blocks = np.split(a, spec.gates, axis=0)
    return np.concatenate([blocks[j] for j in spec.onnx_gate_order], axis=0)


class _Graph:
    """A graph under construction: unique names, initializers, nodes."""

    def __init__(self, dtype: np.dtype) -> None:
        from onnx import helper

        self.helper = helper
        self.dtype = dtype
        self.nodes: List[Any] = []
        self.initializers: List[Any] = []
        self.inputs: List[Any] = []
        self.outputs: List[Any] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value: Any) -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(
        self, op: str, inputs: Sequence[str], outputs: Union[int, Sequence[str]] = 1, **attrs: Any
    ) -> List[str]:
        names = (
            [self.name(op.lower()) for _ in range(outputs)]
            if isinstance(outputs, int)
            else list(outputs)
        )
        self.nodes.append(
            self.helper.make_node(op, list(inputs), names, name=self.name(op), **attrs)
        )
        return names

    def value(self, name: str, elem_type: Any, shape: Sequence[Any]) -> Any:
        return self.helper.make_tensor_value_info(name, elem_type, list(shape))

    def float_type(self) -> int:
        return self.helper.np_dtype_to_tensor_dtype(self.dtype)

    def output(self, value: str, name: str, dims: Sequence[Any], elem_type: Any = None) -> None:
        """Make `value` the graph output `name`."""
        self.nodes.append(
            self.helper.make_node("Identity", [value], [name], name=self.name("Identity"))
        )
        self.outputs.append(self.value(name, elem_type or self.float_type(), dims))


def _recurrent(
    g: _Graph, layer: Recurrent, x: str, lengths: Optional[str], states: Sequence[Optional[str]]
) -> Tuple[str, List[str]]:
    """The layer on time-major `x`: (out (T, B, D*H), final states (L*D, B, H))."""
    spec = layer.spec
    if spec.onnx_operator is None:
        raise ValueError(
            f"the {spec.title} cell has no standard ONNX operator, so crnn.onnx cannot export it"
        )
    D, H, p = layer.num_directions, layer.hidden_size, layer.params
    attrs: Dict[str, Any] = dict(spec.onnx_attributes)
    attrs.update(hidden_size=H, direction="bidirectional" if D == 2 else "forward")
    for o in spec.options:
        if o.role == "activation" and layer.options[o.name] != o.default:
            attrs["activations"] = [layer.options[o.name].capitalize()] * D
    finals: List[List[str]] = [[] for _ in spec.states]
    for l in range(layer.num_layers):
        suffixes = [f"_l{l}", f"_l{l}_reverse"][:D]
        W = np.stack([_onnx_rows(spec, p["weight_ih" + s]) for s in suffixes])
        R = np.stack([_onnx_rows(spec, p["weight_hh" + s]) for s in suffixes])
        inputs = [x, g.const(f"W_l{l}", W), g.const(f"R_l{l}", R)]
        if layer.bias:
            B = np.stack(
                [
                    np.concatenate(
                        [_onnx_rows(spec, p["bias_ih" + s]), _onnx_rows(spec, p["bias_hh" + s])]
                    )
                    for s in suffixes
                ]
            )
            inputs.append(g.const(f"B_l{l}", B))
        else:
            inputs.append("")
        inputs.append(lengths or "")
        for state in states:
            if state is None:
                inputs.append("")
                continue
            start, end = (
                g.const("start", np.array([l * D])),
                g.const("end", np.array([(l + 1) * D])),
            )
            inputs += g.node("Slice", [state, start, end, g.const("axes", np.array([0]))])
        while inputs[-1] == "":
            inputs.pop()
        Y, *Y_states = g.node(spec.onnx_operator, inputs, 1 + len(spec.states), **attrs)
        for i, s in enumerate(Y_states):
            finals[i].append(s)
        # (T, D, B, H) -> (T, B, D * H): the directions side by side, as crnn has them.
        (Yt,) = g.node("Transpose", [Y], perm=[0, 2, 1, 3])
        (x,) = g.node("Reshape", [Yt, g.const("shape", np.array([0, 0, D * H]))])
    joined = [f[0] if len(f) == 1 else g.node("Concat", f, axis=0)[0] for f in finals]
    return x, joined


def _linear(g: _Graph, head: Linear, x: str, rows: bool) -> str:
    """head(x): Gemm for (N, in) rows, MatMul + Add for (T, B, in) sequences."""
    w, b = head.params["weight"], head.params.get("bias")
    if rows:
        inputs = [x, g.const("weight", w)] + ([g.const("bias", b)] if b is not None else [])
        return g.node("Gemm", inputs, transB=1)[0]
    (y,) = g.node("MatMul", [x, g.const("weight_t", np.ascontiguousarray(w.T))])
    return y if b is None else g.node("Add", [y, g.const("bias", b)])[0]


def _features(g: _Graph, model: Any, x: str) -> str:
    """The recurrent layer's input from the model's input: embedding, one-hot or x."""
    embed = getattr(model, "embed", None)
    if embed is not None:
        return g.node("Gather", [g.const("embedding", embed.params["weight"]), x], axis=0)[0]
    if isinstance(model, CharRNN):
        depth = g.const("depth", np.array([model.vocab_size]))
        values = g.const("values", np.array([0, 1], dtype=g.dtype))
        return g.node("OneHot", [x, depth, values], axis=-1)[0]
    return x


def _build(model: Any, g: _Graph, lengths: bool, initial_state: bool) -> None:
    from onnx import TensorProto

    f = g.float_type()
    if isinstance(model, (Linear, Embedding)):
        if isinstance(model, Linear):
            g.inputs.append(g.value("x", f, ["N", model.in_features]))
            g.output(_linear(g, model, "x", rows=True), "y", ["N", model.out_features])
        else:
            g.inputs.append(g.value("ids", TensorProto.INT64, ["N"]))
            y = g.node("Gather", [g.const("embedding", model.params["weight"]), "ids"], axis=0)[0]
            g.output(y, "y", ["N", model.embedding_dim])
        return

    layer = model if isinstance(model, Recurrent) else model.rnn
    spec, D, L, W = layer.spec, layer.num_directions, layer.num_layers, layer.width
    takes_ids = isinstance(model, CharRNN) or getattr(model, "embed", None) is not None
    batch_first = isinstance(model, Recurrent) and layer.batch_first
    if takes_ids:
        g.inputs.append(g.value("ids", TensorProto.INT64, ["T", "B"]))
        x = _features(g, model, "ids")
    else:
        dims = ["B", "T", layer.input_size] if batch_first else ["T", "B", layer.input_size]
        g.inputs.append(g.value("x", f, dims))
        x = g.node("Transpose", ["x"], perm=[1, 0, 2])[0] if batch_first else "x"
    if lengths:
        g.inputs.append(g.value("lengths", TensorProto.INT32, ["B"]))
    if initial_state and isinstance(model, SequenceClassifier):
        raise ValueError(
            "initial_state=True is not exported for a SequenceClassifier (its features are "
            "the final states, which the initial state sets for rows of length 0)"
        )
    states: List[Optional[str]] = [None] * len(spec.states)
    if initial_state:
        states = list(spec.initial_states)
        for name in spec.initial_states:
            g.inputs.append(g.value(name, f, [L * D, "B", W]))
    out, finals = _recurrent(g, layer, x, "lengths" if lengths else None, states)

    if isinstance(model, SequenceClassifier):
        # Each row's last valid state (forward) and the reverse direction's
        # state at t = 0: the top layer's final states.
        top = g.node(
            "Slice",
            [
                finals[0],
                g.const("start", np.array([(L - 1) * D])),
                g.const("end", np.array([L * D])),
                g.const("axes", np.array([0])),
            ],
        )[0]
        (rows,) = g.node("Transpose", [top], perm=[1, 0, 2])
        (feat,) = g.node("Reshape", [rows, g.const("shape", np.array([0, D * layer.hidden_size]))])
        g.output(_linear(g, model.head, feat, rows=True), "logits", ["B", model.head.out_features])
        return

    if isinstance(model, Recurrent):
        result, name, width = out, "out", D * W
        if batch_first:
            result = g.node("Transpose", [out], perm=[1, 0, 2])[0]
        dims = ["B", "T", width] if batch_first else ["T", "B", width]
    else:
        result = _linear(g, model.head, out, rows=False)
        name = "logits" if isinstance(model, CharRNN) else "y"
        dims = ["T", "B", model.head.out_features]
    g.output(result, name, dims)
    for state, final in zip(spec.final_states, finals):
        g.output(final, state, [L * D, "B", W])


EXPORTABLE = (Recurrent, CharRNN, SequenceTagger, SequenceClassifier, Linear, Embedding)


def export(
    model: Any,
    path: Optional[Union[str, "os.PathLike[str]"]] = None,
    *,
    lengths: bool = False,
    initial_state: bool = False,
    opset: int = DEFAULT_OPSET,
) -> Any:
    """The ONNX graph of a crnn layer or model (see `crnn.onnx.export`)."""
    import onnx

    if not isinstance(model, EXPORTABLE):
        raise TypeError(
            "model must be a crnn recurrent layer (crnn.RNN, LSTM, GRU, Recurrent), a "
            "CharRNN, SequenceTagger or SequenceClassifier, a Linear or an Embedding; got "
            f"{type(model).__name__}"
        )
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET:
        raise ValueError(f"opset must be an int >= {MIN_OPSET}, got {opset!r}")
    dtype = np.dtype(model.dtype)
    g = _Graph(dtype)
    _build(model, g, bool(lengths), bool(initial_state))
    graph = onnx.helper.make_graph(
        g.nodes, type(model).__name__, g.inputs, g.outputs, initializer=g.initializers
    )
    opsets = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="crnn",
        # The oldest IR version that has this opset: the widest choice of runtimes.
        ir_version=onnx.helper.find_min_ir_version_for(opsets),
    )
    onnx.checker.check_model(proto)
    if path is not None:
        onnx.save(proto, os.fspath(path))
    return proto
