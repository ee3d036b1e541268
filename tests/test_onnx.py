"""crnn.onnx: export, load-and-run, against onnxruntime and ONNX's own cases.

Skipped without the onnx package; the comparisons with onnxruntime (and
with graphs exported by torch) are skipped without it (or torch).

- ONNX's backend node cases for RNN, LSTM and GRU
  (``onnx.backend.test.loader.load_model_tests(kind="node")``): each runs
  with crnn's kernels and matches ONNX's expected outputs, or is refused at
  load with an error naming what crnn lacks (`REFUSED`).
- crnn layers and models exported and run by onnxruntime and by
  ``crnn.onnx.load``: float32 within 1e-5 of onnxruntime, and of the crnn
  model itself; float64 against the model.
- Graphs exported by ``torch.onnx.export`` from torch.nn's RNN / LSTM / GRU.
- Every glue operator against onnxruntime, opset variants included.
- Load-time refusals (peepholes, clip, activations, input_forget, unknown
  operators and domains) and the session's argument checks.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import crnn  # noqa: E402
import crnn.onnx as co  # noqa: E402
from crnn import cells  # noqa: E402
from crnn.models import CharModel, CharRNN, SequenceClassifier, SequenceTagger  # noqa: E402
from helpers import assert_rel_close  # noqa: E402

ONNX_CELLS = [s.name for s in cells.REGISTRY.values() if s.onnx_operator]
F32_TOL = 1e-5


def _ort():
    return pytest.importorskip("onnxruntime")


def _ort_run(proto, feeds, names=None):
    ort = _ort()
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(names, feeds)


def _assert_all_close(got, want, tol, ctx=""):
    assert len(got) == len(want), ctx
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape, f"{ctx} output {i}: {a.shape} != {b.shape}"
        assert a.dtype == b.dtype, f"{ctx} output {i}: {a.dtype} != {b.dtype}"
        assert_rel_close(a, b, tol=tol, name=f"{ctx} output {i}")


# --------------------------------------------------------------------------
# ONNX's backend node cases
# --------------------------------------------------------------------------

# The cases crnn refuses at load, and the words its error must contain.
REFUSED = {
    "test_lstm_with_peepholes": r"input 'P' \(peepholes\)",
}


def _node_cases():
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = load_model_tests(kind="node")
    return [c for c in cases if c.model.graph.node[0].op_type in ("RNN", "LSTM", "GRU")]


NODE_CASES = _node_cases()


def test_the_node_cases_are_there():
    ops = [c.model.graph.node[0].op_type for c in NODE_CASES]
    assert {op: ops.count(op) for op in set(ops)} == {"RNN": 6, "LSTM": 6, "GRU": 6}
    assert set(REFUSED) <= {c.name for c in NODE_CASES}


@pytest.mark.parametrize("case", NODE_CASES, ids=lambda c: c.name)
def test_onnx_node_case(case):
    if case.name in REFUSED:
        with pytest.raises(co.UnsupportedModelError, match=REFUSED[case.name]):
            co.load(case.model)
        return
    session = co.load(case.model)
    names = [i.name for i in case.model.graph.input]
    for inputs, expected in case.data_sets:
        got = session.run(None, dict(zip(names, inputs)))
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            assert a.shape == b.shape and a.dtype == b.dtype
            np.testing.assert_allclose(a, b, rtol=F32_TOL, atol=1e-6)


# --------------------------------------------------------------------------
# crnn layers and models, exported
# --------------------------------------------------------------------------


def _layer_cases():
    cases = []
    for cell in ONNX_CELLS:
        spec = cells.get(cell)
        option_sets = [{}] + [
            {o.name: c} for o in spec.options if o.role == "activation" for c in o.choices
        ][1:]
        for options in option_sets:
            for num_layers, bidirectional, batch_first in [
                (1, False, False),
                (2, True, False),
                (3, False, True),
                (2, True, True),
            ]:
                cases.append(
                    pytest.param(
                        cell,
                        options,
                        num_layers,
                        bidirectional,
                        batch_first,
                        id=f"{cell}{''.join('-' + v for v in options.values())}-L{num_layers}"
                        + ("-bi" if bidirectional else "")
                        + ("-batch_first" if batch_first else ""),
                    )
                )
    return cases


def _layer_problem(layer, T=6, B=4, seed=0, zero_length=False):
    rng = np.random.default_rng(seed)
    dtype = layer.dtype
    shape = (B, T, layer.input_size) if layer.batch_first else (T, B, layer.input_size)
    x = rng.standard_normal(shape).astype(dtype)
    lengths = rng.integers(1, T + 1, size=B).astype(np.int32)
    lengths[0] = T
    if zero_length:
        lengths[-1] = 0
    LD = layer.num_layers * layer.num_directions
    states = [
        (0.5 * rng.standard_normal((LD, B, layer.hidden_size))).astype(dtype)
        for _ in layer.spec.states
    ]
    return x, lengths, states


def _layer_results(layer, x, lengths, states):
    state = None if not states else (states[0] if len(states) == 1 else tuple(states))
    out, state_n = layer(x, state, lengths=lengths)
    return [out] + (list(state_n) if isinstance(state_n, tuple) else [state_n])


def _feeds(layer, x, lengths, states):
    feeds = {"x": x, "lengths": lengths}
    feeds.update(zip(layer.spec.initial_states, states))
    return feeds


@pytest.mark.parametrize("cell, options, num_layers, bidirectional, batch_first", _layer_cases())
@pytest.mark.parametrize("bias", [True, False])
def test_exported_layer(cell, options, num_layers, bidirectional, batch_first, bias):
    layer = crnn.nn.Recurrent(
        cell,
        3,
        5,
        num_layers=num_layers,
        bidirectional=bidirectional,
        batch_first=batch_first,
        bias=bias,
        seed=1,
        **options,
    )
    x, lengths, states = _layer_problem(layer)
    want = _layer_results(layer, x, lengths, states)
    proto = co.export(layer, lengths=True, initial_state=True)
    feeds = _feeds(layer, x, lengths, states)

    got = co.load(proto).run(None, feeds)
    _assert_all_close(got, want, F32_TOL, "crnn.onnx vs the layer")
    _assert_all_close(_ort_run(proto, feeds), got, F32_TOL, "onnxruntime vs crnn.onnx")


@pytest.mark.parametrize("cell", ONNX_CELLS)
def test_exported_layer_float64_and_without_lengths(cell):
    layer = crnn.nn.Recurrent(cell, 3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    x, _, _ = _layer_problem(layer)
    proto = co.export(layer)
    assert [i.name for i in proto.graph.input] == ["x"]
    assert proto.graph.input[0].type.tensor_type.elem_type == TensorProto.DOUBLE
    got = co.load(proto).run(None, {"x": x})
    _assert_all_close(got, _layer_results(layer, x, None, []), 1e-12)


@pytest.mark.parametrize("cell", ONNX_CELLS)
def test_zero_lengths_end_with_zero_states_as_in_onnxruntime(cell):
    """For a row of length 0 onnxruntime gives zero final states; crnn's layer keeps
    the initial state there. crnn.onnx follows onnxruntime (all else equal)."""
    layer = crnn.nn.Recurrent(cell, 3, 4, bidirectional=True, seed=2)
    x, lengths, states = _layer_problem(layer, zero_length=True)
    feeds = _feeds(layer, x, lengths, states)
    proto = co.export(layer, lengths=True, initial_state=True)
    got = co.load(proto).run(None, feeds)
    want = _layer_results(layer, x, lengths, states)
    for g, w in zip(got[1:], want[1:]):
        assert np.all(g[:, -1] == 0) and not np.all(w[:, -1] == 0)
        assert_rel_close(g[:, :-1], w[:, :-1], tol=F32_TOL)
    assert_rel_close(got[0], want[0], tol=F32_TOL)
    _assert_all_close(_ort_run(proto, feeds), got, F32_TOL)


def _model_cases():
    def char(cell, **kw):
        return CharRNN(11, 6, num_layers=2, cell=cell, seed=3, **kw)

    def tagger(cell, **kw):
        return SequenceTagger(7, 6, 4, num_layers=2, bidirectional=True, cell=cell, seed=4, **kw)

    def classifier(cell, **kw):
        return SequenceClassifier(
            7, 6, 3, num_layers=2, bidirectional=True, cell=cell, seed=5, **kw
        )

    cases = []
    for cell in ONNX_CELLS:
        cases += [
            pytest.param(lambda c=cell: char(c), id=f"CharRNN-one_hot-{cell}"),
            pytest.param(lambda c=cell: char(c, embedding_dim=5), id=f"CharRNN-embedding-{cell}"),
            pytest.param(lambda c=cell: tagger(c), id=f"SequenceTagger-{cell}"),
            pytest.param(
                lambda c=cell: tagger(c, embedding_dim=5), id=f"SequenceTagger-ids-{cell}"
            ),
            pytest.param(lambda c=cell: classifier(c), id=f"SequenceClassifier-{cell}"),
            pytest.param(
                lambda c=cell: classifier(c, embedding_dim=5), id=f"SequenceClassifier-ids-{cell}"
            ),
        ]
    cases.append(pytest.param(lambda: CharModel("abcdefg", 8, seed=6), id="CharModel"))
    return cases


def _model_inputs(model, T=5, B=3, seed=0):
    rng = np.random.default_rng(seed)
    if isinstance(model, CharRNN) or model.embed is not None:
        vocab = model.vocab_size if isinstance(model, CharRNN) else model.input_size
        return rng.integers(0, vocab, size=(T, B)), "ids"
    return rng.standard_normal((T, B, model.rnn.input_size)).astype(np.float32), "x"


@pytest.mark.parametrize("make", _model_cases())
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_exported_model(make, with_lengths):
    model = make()
    model.eval()
    x, name = _model_inputs(model)
    lengths = np.array([5, 2, 4], np.int32) if with_lengths else None
    result = model(x, lengths=lengths)
    want = [result] if isinstance(model, SequenceClassifier) else [result[0], result[1]]
    if isinstance(want[-1], tuple):
        want = want[:-1] + list(want[-1])
    proto = co.export(model, lengths=with_lengths)
    feeds = {name: x}
    if with_lengths:
        feeds["lengths"] = lengths

    got = co.load(proto).run(None, feeds)
    _assert_all_close(got, want, F32_TOL, "crnn.onnx vs the model")
    _assert_all_close(_ort_run(proto, feeds), got, F32_TOL, "onnxruntime vs crnn.onnx")


def test_exported_linear_and_embedding():
    linear = crnn.Linear(4, 3, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    proto = co.export(linear)
    _assert_all_close(co.load(proto).run(["y"], {"x": x}), [linear(x)], F32_TOL)
    _assert_all_close(_ort_run(proto, {"x": x}), [linear(x)], F32_TOL)
    embed = crnn.Embedding(9, 3, seed=0)
    ids = np.array([0, 8, 1, 4])
    proto = co.export(embed)
    _assert_all_close(co.load(proto).run(None, {"ids": ids}), [embed(ids)], 0.0)


def test_export_writes_the_file(tmp_path):
    layer = crnn.LSTM(3, 4)
    path = tmp_path / "lstm.onnx"
    proto = co.export(layer, path)
    assert onnx.load(str(path)) == proto
    x = np.ones((2, 1, 3), np.float32)
    assert np.array_equal(co.load(path).run(["out"], {"x": x})[0], layer(x)[0])
    assert np.array_equal(co.load(path.read_bytes()).run(["out"], {"x": x})[0], layer(x)[0])


def test_export_refusals():
    with pytest.raises(ValueError, match="Jordan cell has no standard ONNX operator"):
        co.export(crnn.nn.Recurrent("jordan", 3, 4, output_size=2))
    with pytest.raises(TypeError, match="model must be a crnn recurrent layer"):
        co.export(object())
    with pytest.raises(ValueError, match="opset must be an int >= 14"):
        co.export(crnn.RNN(3, 4), opset=13)
    with pytest.raises(ValueError, match="initial_state=True is not exported"):
        co.export(SequenceClassifier(3, 4, 2), initial_state=True)


# --------------------------------------------------------------------------
# Graphs exported by torch
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_torch_exported_model(name, batch_first):
    torch = pytest.importorskip("torch")

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)
            self.rnn = getattr(torch.nn, name)(
                4, 5, num_layers=2, bidirectional=True, batch_first=batch_first
            )
            self.head = torch.nn.Linear(10, 3)

        def forward(self, ids):
            out, _ = self.rnn(self.embed(ids))
            return torch.log_softmax(self.head(out), -1)

    torch.manual_seed(0)
    model = Model().eval()
    ids = torch.randint(0, 10, (6, 2))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids,), buffer, dynamo=False, input_names=["ids"])
    proto = onnx.load_from_string(buffer.getvalue())
    assert name in {n.op_type for n in proto.graph.node}
    feeds = {"ids": ids.numpy()}
    got = co.load(proto).run(None, feeds)
    with torch.no_grad():
        want = model(ids).numpy()
    _assert_all_close(got, [want], F32_TOL, "crnn.onnx vs torch")
    _assert_all_close(_ort_run(proto, feeds), got, F32_TOL, "onnxruntime vs crnn.onnx")


# --------------------------------------------------------------------------
# The glue operators against onnxruntime
# --------------------------------------------------------------------------

RNG = np.random.default_rng(7)


def _f(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _i(*values):
    return np.array(values, np.int64)


# (op, attributes, inputs (None: absent), opset)
GLUE_CASES = {
    "Identity": ("Identity", {}, [_f(2, 3)], 17),
    "Shape": ("Shape", {}, [_f(2, 3, 4)], 17),
    "Shape-start": ("Shape", {"start": 1}, [_f(2, 3, 4)], 17),
    "Cast": ("Cast", {"to": TensorProto.INT64}, [_f(3, 2) * 4], 17),
    "ConstantOfShape": (
        "ConstantOfShape",
        {"value": numpy_helper.from_array(np.array([2.5], np.float32))},
        [_i(2, 3)],
        17,
    ),
    "Transpose": ("Transpose", {"perm": [2, 0, 1]}, [_f(2, 3, 4)], 17),
    "Transpose-default": ("Transpose", {}, [_f(2, 3, 4)], 17),
    "Reshape": ("Reshape", {}, [_f(2, 3, 4), _i(0, -1)], 17),
    "Squeeze-input": ("Squeeze", {}, [_f(2, 1, 3, 1), _i(-1)], 17),
    "Squeeze-all": ("Squeeze", {}, [_f(2, 1, 3, 1)], 17),
    "Squeeze-attribute": ("Squeeze", {"axes": [1]}, [_f(2, 1, 3)], 11),
    "Unsqueeze-input": ("Unsqueeze", {}, [_f(2, 3), _i(0, -1)], 17),
    "Unsqueeze-attribute": ("Unsqueeze", {"axes": [1]}, [_f(2, 3)], 11),
    "Concat": ("Concat", {"axis": 1}, [_f(2, 3), _f(2, 1)], 17),
    "Slice": ("Slice", {}, [_f(5, 6), _i(1, -1), _i(4, -6), _i(0, 1), _i(2, -2)], 17),
    "Slice-defaults": ("Slice", {}, [_f(5, 6), _i(1), _i(1000)], 17),
    "Split": ("Split", {"axis": 1}, [_f(2, 5), _i(2, 3)], 17),
    "Gather": ("Gather", {"axis": 1}, [_f(3, 4), _i(0, -1, 2)], 17),
    "Expand": ("Expand", {}, [_f(3, 1), _i(2, 1, 4)], 17),
    "Gemm": (
        "Gemm",
        {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0},
        [_f(3, 2), _f(4, 3), _f(4)],
        17,
    ),
    "Gemm-no-C": ("Gemm", {}, [_f(2, 3), _f(3, 4)], 17),
    "MatMul": ("MatMul", {}, [_f(2, 3, 4), _f(4, 5)], 17),
    "Add": ("Add", {}, [_f(2, 3), _f(3)], 17),
    "Sub": ("Sub", {}, [_f(2, 3), _f(2, 1)], 17),
    "Mul": ("Mul", {}, [_f(2, 3), _f(1)], 17),
    "Div": ("Div", {}, [_f(2, 3), _f(3) + 3], 17),
    "Div-int": ("Div", {}, [_i(7, -7, 6), _i(2, 2, -4)], 17),
    "Tanh": ("Tanh", {}, [_f(4, 3) * 5], 17),
    "Sigmoid": ("Sigmoid", {}, [_f(4, 3) * 50], 17),
    "Relu": ("Relu", {}, [_f(4, 3)], 17),
    "Softmax": ("Softmax", {}, [_f(2, 3, 4)], 17),
    "Softmax-axis0": ("Softmax", {"axis": 0}, [_f(2, 3, 4)], 17),
    "Softmax-opset11": ("Softmax", {"axis": 1}, [_f(2, 3, 4)], 11),
    "LogSoftmax": ("LogSoftmax", {"axis": 1}, [_f(2, 3, 4)], 17),
    "LogSoftmax-opset11": ("LogSoftmax", {}, [_f(2, 3, 4)], 11),
    "OneHot": ("OneHot", {}, [_i(0, 2, -1), _i(4), np.array([0.0, 1.0], np.float32)], 17),
    "OneHot-axis0": ("OneHot", {"axis": 0}, [_i(1, 3), _i(4), np.array([-1, 5], np.float32)], 17),
}


def _graph(op, attrs, inputs, opset, n_outputs=1, out_type=TensorProto.FLOAT):
    names = [f"in{i}" for i in range(len(inputs))]
    outs = [f"out{i}" for i in range(n_outputs)]
    node = helper.make_node(op, names, outs, **attrs)
    graph = helper.make_graph(
        [node],
        op,
        [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for n, a in zip(names, inputs)
        ],
        [helper.make_tensor_value_info(o, out_type, None) for o in outs],
    )
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(
        graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets)
    ), dict(zip(names, inputs))


@pytest.mark.parametrize("case", list(GLUE_CASES))
def test_glue_operator(case):
    op, attrs, inputs, opset = GLUE_CASES[case]
    n_outputs = 2 if op == "Split" else 1
    integer = case in ("Shape", "Shape-start", "Cast", "Div-int")
    out_type = TensorProto.INT64 if integer else TensorProto.FLOAT
    proto, feeds = _graph(op, attrs, inputs, opset, n_outputs, out_type)
    got = co.load(proto).run(None, feeds)
    want = _ort_run(proto, feeds)
    _assert_all_close(got, want, 1e-6, case)


def test_constant_feeds_a_recurrent_node():
    """Weights held by Constant nodes are folded at load, like initializers."""
    rng = np.random.default_rng(0)
    W, R = (
        rng.standard_normal((1, 4, 3)).astype(np.float32),
        rng.standard_normal((1, 4, 4)).astype(np.float32),
    )
    nodes = [
        helper.make_node("Constant", [], ["W"], value=numpy_helper.from_array(W)),
        helper.make_node("Constant", [], ["R"], value=numpy_helper.from_array(R)),
        helper.make_node("RNN", ["X", "W", "R"], ["Y", "Y_h"], hidden_size=4),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [5, 2, 3])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("Y", "Y_h")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    _assert_all_close(co.load(proto).run(None, {"X": x}), _ort_run(proto, {"X": x}), F32_TOL)


# --------------------------------------------------------------------------
# Load-time refusals and the session's checks
# --------------------------------------------------------------------------


def _recurrent_graph(op="LSTM", inputs=("X", "W", "R"), domain="", **attrs):
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    H, I = 3, 2
    arrays = {
        "W": np.zeros((1, gates * H, I), np.float32),
        "R": np.zeros((1, gates * H, H), np.float32),
        "B": np.zeros((1, 2 * gates * H), np.float32),
        "P": np.zeros((1, 3 * H), np.float32),
    }
    node = helper.make_node(op, list(inputs), ["Y"], hidden_size=H, domain=domain, **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [4, 1, I])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(arrays[n], n) for n in inputs if n in arrays],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


REFUSALS = {
    "peepholes": (
        dict(inputs=("X", "W", "R", "B", "", "", "", "P")),
        r"node .*\(LSTM\): input 'P' \(peepholes\)",
    ),
    "clip": (dict(clip=3.0), r"attribute 'clip' \(cell clipping\)"),
    "input_forget": (dict(input_forget=1), r"attribute 'input_forget' = 1"),
    "lstm_activations": (
        dict(activations=["Sigmoid", "Tanh", "Relu"]),
        r"attribute 'activations' = \['Sigmoid', 'Tanh', 'Relu'\]",
    ),
    "activation_alpha": (dict(activation_alpha=[0.1]), r"attribute 'activation_alpha'"),
    "rnn_leaky_relu": (
        dict(op="RNN", activations=["LeakyRelu"]),
        r"attribute 'activations' = \['LeakyRelu'\] .* runs one of \['Tanh', 'Relu', 'Sigmoid'\]",
    ),
    "unknown_attribute": (
        dict(op="RNN", linear_before_reset=1),
        r"attribute 'linear_before_reset'",
    ),
    "domain": (dict(domain="com.example"), r"domain 'com.example'"),
    "gru_linear_before_reset": (
        dict(op="GRU", linear_before_reset=2),
        r"no crnn cell computes GRU with linear_before_reset=2",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_load_refuses_what_crnn_lacks(case):
    kwargs, message = REFUSALS[case]
    with pytest.raises(co.UnsupportedModelError, match=message):
        co.load(_recurrent_graph(**kwargs))


def test_load_refuses_an_unknown_operator():
    proto, _ = _graph("Conv", {}, [_f(1, 1, 3, 3), _f(1, 1, 2, 2)], 17)
    with pytest.raises(co.UnsupportedModelError, match=r"operator Conv is not supported"):
        co.load(proto)
    assert issubclass(co.UnsupportedModelError, ValueError)


@pytest.mark.parametrize("activation", ["Relu", "Sigmoid", "Tanh"])
def test_rnn_activations_run(activation):
    rng = np.random.default_rng(1)
    proto = _recurrent_graph("RNN", ("X", "W", "R", "B"), activations=[activation])
    for init in proto.graph.initializer:
        arr = rng.standard_normal(numpy_helper.to_array(init).shape).astype(np.float32)
        init.CopyFrom(numpy_helper.from_array(arr, init.name))
    x = rng.standard_normal((4, 1, 2)).astype(np.float32)
    _assert_all_close(co.load(proto).run(None, {"X": x}), _ort_run(proto, {"X": x}), F32_TOL)


def test_session_describes_and_checks_its_inputs():
    session = co.load(co.export(crnn.GRU(3, 4), lengths=True))
    assert [(a.name, a.shape, a.type) for a in session.get_inputs()] == [
        ("x", ["T", "B", 3], "tensor(float)"),
        ("lengths", ["B"], "tensor(int32)"),
    ]
    assert [a.name for a in session.get_outputs()] == ["out", "h_n"]
    x, lengths = np.zeros((2, 1, 3), np.float32), np.array([2], np.int32)
    (h_n,) = session.run(["h_n"], {"x": x, "lengths": lengths})
    assert h_n.shape == (1, 1, 4)
    with pytest.raises(TypeError, match="input 'x' must have dtype float32, got float64"):
        session.run(None, {"x": x.astype(np.float64), "lengths": lengths})
    with pytest.raises(ValueError, match=r"input 'x' must have shape \('T', 'B', 3\)"):
        session.run(None, {"x": np.zeros((2, 1, 5), np.float32), "lengths": lengths})
    with pytest.raises(ValueError, match=r"lacks the model's input\(s\) \['lengths'\]"):
        session.run(None, {"x": x})
    with pytest.raises(ValueError, match="'y', which is not an input"):
        session.run(None, {"x": x, "lengths": lengths, "y": x})
    with pytest.raises(ValueError, match="not outputs of the model"):
        session.run(["c_n"], {"x": x, "lengths": lengths})
    with pytest.raises(TypeError, match="input_feed must be a dict"):
        session.run(None, [x, lengths])


def test_outputs_never_alias_inputs_or_weights():
    proto, feeds = _graph("Identity", {}, [_f(2, 3)], 17)
    x = feeds["in0"]
    (y,) = co.load(proto).run(None, feeds)
    y[...] = 0
    assert not np.all(x == 0)


def test_load_refuses_other_objects():
    with pytest.raises(TypeError, match="model must be a path, bytes or an onnx.ModelProto"):
        co.load(3)


def test_importing_crnn_does_not_import_onnx():
    import subprocess
    import sys

    code = "import sys, crnn; print('crnn.onnx' in sys.modules, 'onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
