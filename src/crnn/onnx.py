"""ONNX in and out: crnn models as standard ONNX graphs, and ONNX graphs run by crnn.

- ``export(model, path)`` writes a crnn recurrent layer (`crnn.RNN`,
  `crnn.LSTM`, `crnn.GRU`, any `crnn.nn.Recurrent` whose cell has a standard
  ONNX operator: stacked, bidirectional, ``batch_first``), a model built on
  one (`crnn.models.CharRNN` / ``CharModel``, ``SequenceTagger``,
  ``SequenceClassifier``, with their Embedding or one-hot input and their
  Linear head), a `crnn.Linear` or a `crnn.Embedding` as a standard ONNX
  graph: one RNN / LSTM / GRU node per layer (both directions in it),
  lengths as ``sequence_lens``, MatMul / Gemm / Gather / OneHot around.
  Any ONNX runtime runs it.
- ``load(path)`` returns a `Session` whose ``run(output_names, {name:
  array})`` mirrors ``onnxruntime.InferenceSession.run``: the graph's RNN,
  LSTM and GRU nodes run on crnn's C kernels (each matched to the registry
  cell with that ``onnx_operator`` and attributes: a GRU with
  ``linear_before_reset=1`` on ``gru``, PyTorch's; with 0, ONNX's default, on
  ``gru_reset_before``),
  the glue around them (Gemm, MatMul, Add, Gather, Softmax, Transpose,
  Squeeze, Reshape, Slice, Concat, ... see `crnn._onnx_ops`) in NumPy.
  Batch-major (``layout=1``), reverse and bidirectional nodes run; so do
  graphs exported by ``torch.onnx.export`` from torch.nn's RNN / LSTM / GRU.

What crnn does not implement is refused by `load` with an
`UnsupportedModelError` (a ValueError) naming the node and the attribute or
input: peepholes (LSTM input ``P``), ``clip``, ``input_forget``,
activations other than the cell's (an RNN may use Tanh, Relu or Sigmoid),
``activation_alpha`` / ``activation_beta``, operators outside the table,
other operator domains, control flow (If, Loop, Scan).

Exported graphs are float32 or float64 as the model is; lengths are an int32
input ``lengths`` (ONNX's type for ``sequence_lens``), ids int64. Needs the
``onnx`` package (``pip install "crnn[onnx]"``, which adds onnxruntime for
comparisons); nothing else in crnn imports it.
"""

from __future__ import annotations

import os
from typing import Any, Union

from ._onnx_export import DEFAULT_OPSET, export
from ._onnx_ops import UnsupportedModelError
from ._onnx_session import NodeArg, Session

__all__ = ["export", "load", "Session", "NodeArg", "UnsupportedModelError", "DEFAULT_OPSET"]

export.__doc__ = """Write `model` as a standard ONNX graph; returns the ModelProto.

    Parameters
    ----------
    model : crnn layer or model
        `crnn.nn.Recurrent` (RNN, LSTM, GRU, ...), `crnn.models.CharRNN`,
        ``SequenceTagger``, ``SequenceClassifier``, `crnn.Linear` or
        `crnn.Embedding`. Evaluation-mode semantics (no dropout).
    path : str, os.PathLike or None
        Where to save the model (``onnx.save``); None only returns it.
    lengths : bool
        Add the input ``lengths`` (int32, (B,)) as every layer's
        ``sequence_lens``: outputs past a row's length are zero (a head's
        output there is its bias), final states are those after the row's
        last valid step.
    initial_state : bool
        Add the inputs ``h0`` (and ``c0`` for the LSTM), (L * D, B, H); zeros
        otherwise. Not for a SequenceClassifier.
    opset : int
        The ONNX opset to declare (>= 14; default 17).

    Inputs and outputs of the graph: ``x`` (T, B, I) (``(B, T, I)`` for a
    ``batch_first`` layer) or ``ids`` (T, B) int64 for a model that reads
    token ids; ``out`` (layers), ``logits`` (CharRNN, SequenceClassifier)
    or ``y`` (SequenceTagger, Linear, Embedding), and the final states
    ``h_n`` (and ``c_n``), (L * D, B, H), except for a SequenceClassifier.

    Raises
    ------
    TypeError for another kind of model; ValueError for a cell without a
    standard ONNX operator (the Jordan network) or a bad opset.
    """


def load(model: Union[str, "os.PathLike[str]", bytes, Any]) -> Session:
    """A `Session` running the ONNX model with crnn's kernels.

    Parameters
    ----------
    model : path, bytes or onnx.ModelProto

    Raises
    ------
    UnsupportedModelError (a ValueError)
        When the graph uses an operator, attribute or input crnn does not
        implement; the message names the node and the attribute.
    """
    import onnx

    if isinstance(model, onnx.ModelProto):
        proto = model
    elif isinstance(model, bytes):
        proto = onnx.load_from_string(model)
    elif isinstance(model, (str, os.PathLike)):
        proto = onnx.load(os.fspath(model))
    else:
        raise TypeError(
            f"model must be a path, bytes or an onnx.ModelProto, got {type(model).__name__}"
        )
    return Session(proto)
