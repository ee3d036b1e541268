"""A catalogue of bad inputs, one table per public entry point.

Every case calls one public function with one bad argument and asserts the
exception type and that the message names the argument (as a whole word),
so a user embedding crnn learns what to fix. The errors are raised before
any C code runs: the checks live in Python (crnn._validate and the layers).

Entry points: clip_grad_norm / clip_grad_value (C engine and reference),
set_num_threads / set_isa, RNN / RNNCell / Linear (constructors, forward,
backward) and Module methods, the losses, the optimizers (constructors,
step, load_state_dict), save / load. The functional API of every cell has
its own battery, derived from the registry: test_cells_validation.py.

The second half checks unusual but valid inputs to the layers, losses and
clipping (views, Fortran order, read-only, byte order, lists): same numbers
as the canonical input, inputs never modified. (test_cells_validation.py
does the same for the functional API.)
"""

from __future__ import annotations

import copy
import io
import json
import re
import zipfile

import numpy as np
import pytest

import crnn
from crnn import losses, optim, reference as ref
from helpers import BAD_ARRAYS, OPTIONAL_OK, assert_rel_close, unusual, word

T, B, I, H = 4, 3, 5, 6


_word = word


# --------------------------------------------------------------------------
# Bad forms of one float array argument (helpers.BAD_ARRAYS)
# --------------------------------------------------------------------------
def _bad_array_cases(entry, names, optional=()):
    """(id, entry, name, kind) for every name x kind that must fail."""
    out = []
    for name in names:
        for kind in BAD_ARRAYS:
            if kind in OPTIONAL_OK and name in optional:
                continue
            out.append(pytest.param(entry, name, kind, id=f"{entry}-{name}-{kind}"))
    return out


def _layer(kind, dtype=np.float64, **kw):
    if kind == "RNN":
        return crnn.RNN(I, H, dtype=dtype, seed=0, **kw)
    if kind == "RNNCell":
        return crnn.RNNCell(I, H, dtype=dtype, seed=0, **kw)
    return crnn.Linear(I, H, dtype=dtype, seed=0, **kw)


def _good_layer_inputs(kind, dtype=np.float64):
    rng = np.random.default_rng(1)
    if kind == "RNN":
        return {
            "x": rng.standard_normal((T, B, I)).astype(dtype),
            "h0": rng.standard_normal((1, B, H)).astype(dtype),
        }
    if kind == "RNNCell":
        return {
            "x": rng.standard_normal((B, I)).astype(dtype),
            "h": rng.standard_normal((B, H)).astype(dtype),
        }
    return {"x": rng.standard_normal((B, I)).astype(dtype)}


def _call_layer_forward(kind, name, value):
    layer = _layer(kind)
    inputs = _good_layer_inputs(kind)
    inputs[name] = value
    layer(**inputs)


def _call_layer_backward(kind, name, value):
    layer = _layer(kind)
    res = layer(**_good_layer_inputs(kind))
    if kind == "RNN":
        out, h_n = res
        up = {"dout": np.ones_like(out), "dh_n": np.ones_like(h_n)}
        up[name] = value
        layer.backward(up["dout"], up["dh_n"])
    elif kind == "RNNCell":
        layer.backward(value)
    else:
        layer.backward(value)


def _call_loss(fn, name, value):
    rng = np.random.default_rng(2)
    if fn == "softmax_cross_entropy":
        losses.softmax_cross_entropy(value, np.zeros(B, int))
    elif fn in ("softmax", "log_softmax"):
        getattr(losses, fn)(value)
    else:
        args = {"pred": rng.standard_normal((B, H)), "target": rng.standard_normal((B, H))}
        args[name] = value
        losses.mse(**args)


def _call_optim_step(cls, name, value):
    params = {"w": np.zeros((B, H))}
    kw = {"lr": 0.1} if cls == "SGD" else {}
    opt = getattr(optim, cls)(params, **kw)
    opt.step({"w": value})


# The functional API of every cell (both engines, both APIs) has its own
# battery, derived from the cell registry: test_cells_validation.py.
ARRAY_CASES = (
    _bad_array_cases("RNN.forward", ["x", "h0"], optional=("h0",))
    + _bad_array_cases("RNN.backward", ["dout", "dh_n"], optional=("dout", "dh_n"))
    + _bad_array_cases("RNNCell.forward", ["x", "h"], optional=("h",))
    + _bad_array_cases("RNNCell.backward", ["dh"])
    + _bad_array_cases("Linear.forward", ["x"])
    + _bad_array_cases("Linear.backward", ["dy"])
    + _bad_array_cases("losses.softmax_cross_entropy", ["logits"])
    + _bad_array_cases("losses.softmax", ["x"])
    + _bad_array_cases("losses.log_softmax", ["x"])
    + _bad_array_cases("losses.mse", ["pred", "target"])
    + _bad_array_cases("optim.SGD.step", ["grads['w']"])
    + _bad_array_cases("optim.Adam.step", ["grads['w']"])
)


def _dispatch(entry, name, value):
    if entry.endswith(".forward"):
        _call_layer_forward(entry.split(".")[0], name, value)
    elif entry.endswith(".backward"):
        _call_layer_backward(entry.split(".")[0], name, value)
    elif entry.startswith("losses."):
        _call_loss(entry.split(".")[1], name, value)
    elif entry.startswith("optim."):
        _call_optim_step(entry.split(".")[1], name, value)
    else:
        raise AssertionError(entry)


@pytest.mark.parametrize("entry, name, kind", ARRAY_CASES)
def test_bad_array_argument(entry, name, kind):
    make, exc = BAD_ARRAYS[kind]
    # A layer takes 2-D integers as token ids: its bad integer x is 3-D.
    good = np.full((T, B, H) if (entry, name) == ("RNN.forward", "x") else (B, H), 0.5)
    with pytest.raises(
        exc, match=_word(name.split("[")[0]) if "[" in name else _word(name)
    ) as info:
        _dispatch(entry, name, make(good))
    if "[" in name:
        assert name in str(info.value), str(info.value)


# Mixed precision: one argument float32, the rest float64 (never cast silently).
MIXED = [
    ("RNN.forward", "x"),
    ("RNN.forward", "h0"),
    ("RNN.backward", "dout"),
    ("RNN.backward", "dh_n"),
    ("RNNCell.forward", "x"),
    ("RNNCell.forward", "h"),
    ("RNNCell.backward", "dh"),
    ("Linear.forward", "x"),
    ("Linear.backward", "dy"),
    ("losses.mse", "target"),
    ("optim.SGD.step", "grads['w']"),
]


@pytest.mark.parametrize("entry, name", MIXED, ids=[f"{e}-{n}" for e, n in MIXED])
def test_mixed_precision_is_a_typeerror(entry, name):
    # The good float64 value of that argument, made float32.
    if entry.endswith(".forward"):
        value = _good_layer_inputs(entry.split(".")[0])[name].astype(np.float32)
    elif entry == "RNN.backward":
        value = np.ones((T, B, H) if name == "dout" else (1, B, H), np.float32)
    elif entry == "RNNCell.backward" or entry == "Linear.backward":
        value = np.ones((B, H), np.float32)
    else:
        value = np.ones((B, H), np.float32)
    with pytest.raises(TypeError) as info:
        _dispatch(entry, name, value)
    msg = str(info.value)
    assert re.search(_word(name), msg) or name in msg, msg


# --------------------------------------------------------------------------
# Other arguments, entry point by entry point: (id, call, exception, name)
# --------------------------------------------------------------------------


def _clip(fn, *args, **kw):
    f = getattr(crnn, fn)
    return lambda: f(*args, **kw)


def _ro(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _ctor(cls, *args, **kw):
    return lambda: getattr(crnn, cls)(*args, **kw)


def _rnn_call(*args, layer_kw=None, **kw):
    def call():
        layer = crnn.RNN(I, H, seed=0, dtype=np.float64, **(layer_kw or {}))
        layer(*args, **kw)

    return call


def _ce(logits=None, targets=None, **kw):
    def call():
        lg = np.zeros((B, 4)) if logits is None else logits
        tg = np.zeros(B, int) if targets is None else targets
        losses.softmax_cross_entropy(lg, tg, **kw)

    return call


def _opt(cls, params=None, **kw):
    def call():
        p = {"w": np.zeros(3)} if params is None else params
        getattr(optim, cls)(p, **kw)

    return call


def _step(grads, **kw):
    def call():
        optim.SGD({"w": np.zeros(3)}, lr=0.1, **kw).step(grads)

    return call


def _opt_load(edit):
    def call():
        opt = optim.Adam({"w": np.zeros(3)})
        opt.step({"w": np.ones(3)})
        sd = opt.state_dict()
        edit(sd)
        opt.load_state_dict(sd)

    return call


def _saved_bytes(model=None):
    buf = io.BytesIO()
    crnn.save(model or crnn.RNN(I, H, seed=0), buf)
    return buf.getvalue()


def _npz_with(entries):
    buf = io.BytesIO()
    np.savez(buf, **entries)
    buf.seek(0)
    return buf


def _tampered(edit_header=None, edit_entries=None):
    def call():
        with np.load(io.BytesIO(_saved_bytes())) as f:
            entries = {k: f[k] for k in f.files}
        if edit_header is not None:
            header = json.loads(str(entries["__config__"]))
            edit_header(header)
            entries["__config__"] = np.array(json.dumps(header))
        if edit_entries is not None:
            edit_entries(entries)
        crnn.load(_npz_with(entries))

    return call


def _zip_with_bad_member():
    data = bytearray(_saved_bytes())
    i = data.index(b"weight_hh_l0.npy")
    data[i + 120 : i + 160] = b"\x00" * 40
    return io.BytesIO(bytes(data))


NaN = float("nan")
Inf = float("inf")

OTHER_CASES = [
    # --- clipping
    ("clip-arrays-None", _clip("clip_grad_norm", None, 1.0), TypeError, "arrays"),
    ("clip-arrays-str", _clip("clip_grad_norm", "abc", 1.0), TypeError, "arrays"),
    ("clip-arrays-int", _clip("clip_grad_norm", 3, 1.0), TypeError, "arrays"),
    (
        "clip-arrays-list-of-lists",
        _clip("clip_grad_norm", [[1.0, 2.0]], 1.0),
        TypeError,
        "arrays[0]",
    ),
    (
        "clip-arrays-readonly",
        _clip("clip_grad_norm", [_ro(np.ones(3))], 1.0),
        ValueError,
        "arrays[0]",
    ),
    (
        "clip-arrays-broadcast",
        _clip("clip_grad_value", [np.broadcast_to(np.ones(1), (4,))], 1.0),
        ValueError,
        "arrays[0]",
    ),
    (
        "clip-arrays-zero-stride",
        _clip(
            "clip_grad_norm",
            [np.ones(2), np.lib.stride_tricks.as_strided(np.ones(3), shape=(5,), strides=(0,))],
            1.0,
        ),
        ValueError,
        "arrays[1]",
    ),
    (
        "clip-arrays-int-array",
        _clip("clip_grad_norm", [np.ones(3, int)], 1.0),
        TypeError,
        "arrays[0]",
    ),
    (
        "clip-arrays-mixed",
        _clip("clip_grad_norm", [np.ones(3), np.ones(3, np.float32)], 1.0),
        TypeError,
        "arrays[1]",
    ),
    (
        "clip-arrays-masked",
        _clip("clip_grad_norm", [np.ma.masked_array(np.ones(3))], 1.0),
        TypeError,
        "arrays[0]",
    ),
    ("clip-dict-None", _clip("clip_grad_norm", {"a": None}, 1.0), TypeError, "arrays[0]"),
    ("clip-max_norm-None", _clip("clip_grad_norm", [np.ones(3)], None), TypeError, "max_norm"),
    ("clip-max_norm-str", _clip("clip_grad_norm", [np.ones(3)], "1"), TypeError, "max_norm"),
    ("clip-max_norm-complex", _clip("clip_grad_norm", [np.ones(3)], 1j), TypeError, "max_norm"),
    ("clip-max_norm-bool", _clip("clip_grad_norm", [np.ones(3)], True), TypeError, "max_norm"),
    ("clip-max_norm-negative", _clip("clip_grad_norm", [np.ones(3)], -1.0), ValueError, "max_norm"),
    ("clip-max_norm-nan", _clip("clip_grad_norm", [np.ones(3)], NaN), ValueError, "max_norm"),
    (
        "clip-max_norm-array",
        _clip("clip_grad_norm", [np.ones(3)], np.ones(2)),
        TypeError,
        "max_norm",
    ),
    ("clip-norm_type-0", _clip("clip_grad_norm", [np.ones(3)], 1.0, 0), ValueError, "norm_type"),
    ("clip-norm_type-neg", _clip("clip_grad_norm", [np.ones(3)], 1.0, -2), ValueError, "norm_type"),
    (
        "clip-norm_type--inf",
        _clip("clip_grad_norm", [np.ones(3)], 1.0, -Inf),
        ValueError,
        "norm_type",
    ),
    (
        "clip-norm_type-nan",
        _clip("clip_grad_norm", [np.ones(3)], 1.0, NaN),
        ValueError,
        "norm_type",
    ),
    (
        "clip-norm_type-None",
        _clip("clip_grad_norm", [np.ones(3)], 1.0, None),
        TypeError,
        "norm_type",
    ),
    (
        "clip-norm_type-str",
        _clip("clip_grad_norm", [np.ones(3)], 1.0, "fro"),
        ValueError,
        "norm_type",
    ),
    ("clip-value-None", _clip("clip_grad_value", [np.ones(3)], None), TypeError, "clip_value"),
    ("clip-value-negative", _clip("clip_grad_value", [np.ones(3)], -0.5), ValueError, "clip_value"),
    ("clip-value-nan", _clip("clip_grad_value", [np.ones(3)], NaN), ValueError, "clip_value"),
    ("clip-value-str", _clip("clip_grad_value", [np.ones(3)], "1"), TypeError, "clip_value"),
    (
        "clip-value-readonly",
        _clip("clip_grad_value", [_ro(np.ones(3))], 1.0),
        ValueError,
        "arrays[0]",
    ),
    # --- global settings
    ("threads-negative", lambda: crnn.set_num_threads(-1), ValueError, "n"),
    ("threads-huge", lambda: crnn.set_num_threads(10**20), ValueError, "n"),
    ("threads-float", lambda: crnn.set_num_threads(2.0), TypeError, "n"),
    ("threads-str", lambda: crnn.set_num_threads("2"), TypeError, "n"),
    ("threads-bool", lambda: crnn.set_num_threads(True), TypeError, "n"),
    ("threads-list", lambda: crnn.set_num_threads([2]), TypeError, "n"),
    ("isa-None", lambda: crnn.set_isa(None), ValueError, "name"),
    ("isa-int", lambda: crnn.set_isa(1), ValueError, "name"),
    ("isa-upper", lambda: crnn.set_isa("AVX2"), ValueError, "name"),
    ("isa-unknown", lambda: crnn.set_isa("sse4"), ValueError, "name"),
    # --- layer constructors
    ("RNN-input_size-neg", _ctor("RNN", -1, H), ValueError, "input_size"),
    ("RNN-input_size-float", _ctor("RNN", 5.0, H), TypeError, "input_size"),
    ("RNN-input_size-str", _ctor("RNN", "5", H), TypeError, "input_size"),
    ("RNN-input_size-None", _ctor("RNN", None, H), TypeError, "input_size"),
    ("RNN-hidden_size-0", _ctor("RNN", I, 0), ValueError, "hidden_size"),
    ("RNN-hidden_size-bool", _ctor("RNN", I, True), TypeError, "hidden_size"),
    ("RNN-num_layers-0", _ctor("RNN", I, H, 0), ValueError, "num_layers"),
    ("RNN-num_layers-float", _ctor("RNN", I, H, 2.0), TypeError, "num_layers"),
    ("RNN-nonlinearity", _ctor("RNN", I, H, nonlinearity="gelu"), ValueError, "nonlinearity"),
    ("RNN-bias-str", _ctor("RNN", I, H, bias="yes"), TypeError, "bias"),
    ("RNN-batch_first-int", _ctor("RNN", I, H, batch_first=1), TypeError, "batch_first"),
    ("RNN-bidirectional-None", _ctor("RNN", I, H, bidirectional=None), TypeError, "bidirectional"),
    ("RNN-dropout-neg", _ctor("RNN", I, H, 2, dropout=-0.1), ValueError, "dropout"),
    ("RNN-dropout-big", _ctor("RNN", I, H, 2, dropout=1.5), ValueError, "dropout"),
    ("RNN-dropout-nan", _ctor("RNN", I, H, 2, dropout=NaN), ValueError, "dropout"),
    ("RNN-dropout-str", _ctor("RNN", I, H, 2, dropout="0.1"), TypeError, "dropout"),
    ("RNN-dtype-int", _ctor("RNN", I, H, dtype=int), TypeError, "dtype"),
    ("RNN-dtype-f16", _ctor("RNN", I, H, dtype="float16"), TypeError, "dtype"),
    ("RNN-dtype-complex", _ctor("RNN", I, H, dtype=np.complex64), TypeError, "dtype"),
    ("RNN-dtype-garbage", _ctor("RNN", I, H, dtype="garbage"), TypeError, "dtype"),
    ("RNN-seed-neg", _ctor("RNN", I, H, seed=-1), ValueError, "seed"),
    ("RNN-seed-float", _ctor("RNN", I, H, seed=1.5), TypeError, "seed"),
    ("RNN-backend", _ctor("RNN", I, H, backend="cuda"), ValueError, "backend"),
    ("RNN-backend-None", _ctor("RNN", I, H, backend=None), ValueError, "backend"),
    ("RNN-init", _ctor("RNN", I, H, init="xavier"), ValueError, "init"),
    ("RNNCell-hidden_size-0", _ctor("RNNCell", I, 0), ValueError, "hidden_size"),
    ("RNNCell-nonlinearity", _ctor("RNNCell", I, H, nonlinearity=None), ValueError, "nonlinearity"),
    ("RNNCell-dtype", _ctor("RNNCell", I, H, dtype=np.int32), TypeError, "dtype"),
    ("Linear-in_features-neg", _ctor("Linear", -2, 3), ValueError, "in_features"),
    ("Linear-out_features-float", _ctor("Linear", 2, 3.0), TypeError, "out_features"),
    ("Linear-bias-int", _ctor("Linear", 2, 3, bias=1), TypeError, "bias"),
    ("Linear-init", _ctor("Linear", 2, 3, init=0), ValueError, "init"),
    # --- layer calls
    ("RNN-x-wrong-features", _rnn_call(np.zeros((T, B, I + 1))), ValueError, "x"),
    ("RNN-x-1d", _rnn_call(np.zeros(I)), ValueError, "x"),
    ("RNN-x-4d", _rnn_call(np.zeros((1, T, B, I))), ValueError, "x"),
    ("RNN-h0-shape", _rnn_call(np.zeros((T, B, I)), np.zeros((B, H))), ValueError, "h0"),
    ("RNN-h0-batch", _rnn_call(np.zeros((T, B, I)), np.zeros((1, B + 1, H))), ValueError, "h0"),
    ("RNN-lengths-unbatched", _rnn_call(np.zeros((T, I)), lengths=[2]), ValueError, "lengths"),
    (
        "RNN-lengths-above-T",
        _rnn_call(np.zeros((T, B, I)), lengths=[1, 2, T + 1]),
        ValueError,
        "lengths",
    ),
    (
        "RNN-lengths-float",
        _rnn_call(np.zeros((T, B, I)), lengths=[1.0, 2.0, 3.0]),
        TypeError,
        "lengths",
    ),
    (
        "RNN-lengths-batch_first",
        _rnn_call(np.zeros((B, T, I)), lengths=[1, 2], layer_kw={"batch_first": True}),
        ValueError,
        "lengths",
    ),
    (
        "RNNCell-x-3d",
        lambda: crnn.RNNCell(I, H, dtype=np.float64)(np.zeros((1, B, I))),
        ValueError,
        "x",
    ),
    (
        "RNNCell-h-shape",
        lambda: crnn.RNNCell(I, H, dtype=np.float64)(np.zeros((B, I)), np.zeros((B, H + 1))),
        ValueError,
        "h",
    ),
    ("Linear-x-0d", lambda: crnn.Linear(I, H, dtype=np.float64)(np.float64(1)), ValueError, "x"),
    (
        "Linear-x-features",
        lambda: crnn.Linear(I, H, dtype=np.float64)(np.zeros((2, I + 1))),
        ValueError,
        "x",
    ),
    ("RNN-backward-before-forward", lambda: crnn.RNN(I, H).backward(None), RuntimeError, "forward"),
    (
        "RNN-backward-cache-str",
        lambda: crnn.RNN(I, H).backward(None, cache="abc"),
        ValueError,
        "cache",
    ),
    (
        "RNNCell-backward-cache",
        lambda: crnn.RNNCell(I, H).backward(np.zeros(H, np.float32), cache=(1, 2)),
        ValueError,
        "cache",
    ),
    (
        "Linear-backward-cache-str",
        lambda: crnn.Linear(I, H).backward(np.zeros(H, np.float32), cache="abc"),
        ValueError,
        "cache",
    ),
    (
        "Linear-backward-cache-dtype",
        lambda: crnn.Linear(I, H).backward(np.zeros((2, H), np.float32), cache=np.zeros((2, I))),
        ValueError,
        "cache",
    ),
    (
        "Linear-backward-dy-shape",
        lambda: (
            lambda l: (
                l(np.zeros((2, I), np.float32)),
                l.backward(np.zeros((2, H + 1), np.float32)),
            )
        )(crnn.Linear(I, H)),
        ValueError,
        "dy",
    ),
    # --- Module methods
    ("Module-train-str", lambda: crnn.RNN(I, H).train("no"), TypeError, "mode"),
    ("Module-set_backend", lambda: crnn.RNN(I, H).set_backend("gpu"), ValueError, "backend"),
    (
        "Module-load_state_dict-None",
        lambda: crnn.RNN(I, H).load_state_dict(None),
        TypeError,
        "state_dict",
    ),
    (
        "Module-load_state_dict-list",
        lambda: crnn.RNN(I, H).load_state_dict([1, 2]),
        TypeError,
        "state_dict",
    ),
    (
        "Module-load_state_dict-complex",
        lambda: (lambda m: m.load_state_dict({k: v.astype(complex) for k, v in m.params.items()}))(
            crnn.RNN(I, H)
        ),
        TypeError,
        "weight_ih_l0",
    ),
    (
        "Module-load_state_dict-str",
        lambda: (lambda m: m.load_state_dict({k: "x" for k in m.params}))(crnn.RNN(I, H)),
        TypeError,
        "weight_ih_l0",
    ),
    (
        "Module-load_state_dict-ragged",
        lambda: (lambda m: m.load_state_dict({k: [[1.0], [1.0, 2.0]] for k in m.params}))(
            crnn.RNN(I, H)
        ),
        TypeError,
        "weight_ih_l0",
    ),
    (
        "Module-load_state_dict-shape",
        lambda: (lambda m: m.load_state_dict({k: np.zeros(2) for k in m.params}))(crnn.RNN(I, H)),
        ValueError,
        "weight_hh_l0",
    ),
    (
        "Module-load_state_dict-missing",
        lambda: crnn.RNN(I, H).load_state_dict({}),
        ValueError,
        "weight_ih_l0",
    ),
    # --- losses
    ("ce-logits-0d", _ce(logits=np.float64(1)), ValueError, "logits"),
    ("ce-logits-no-classes", _ce(logits=np.zeros((B, 0))), ValueError, "logits"),
    (
        "ce-targets-None",
        lambda: losses.softmax_cross_entropy(np.zeros((B, 4)), None),
        TypeError,
        "targets",
    ),
    ("ce-targets-str", _ce(targets="abc"), TypeError, "targets"),
    ("ce-targets-float", _ce(targets=np.zeros(B)), TypeError, "targets"),
    ("ce-targets-ragged", _ce(targets=[[0], [0, 1]]), ValueError, "targets"),
    ("ce-targets-shape", _ce(targets=np.zeros(B + 1, int)), ValueError, "targets"),
    ("ce-targets-range", _ce(targets=np.array([0, 4, 1])), ValueError, "targets"),
    ("ce-targets-negative", _ce(targets=np.array([0, -1, 1])), ValueError, "targets"),
    ("ce-mask-values", _ce(mask=np.array([0, 2, 1])), ValueError, "mask"),
    ("ce-mask-str", _ce(mask=np.array(["a", "b", "c"])), TypeError, "mask"),
    ("ce-mask-shape", _ce(mask=np.ones(B + 1, bool)), ValueError, "mask"),
    ("ce-mask-ragged", _ce(mask=[[1], [1, 0]]), ValueError, "mask"),
    ("ce-reduction", _ce(reduction="avg"), ValueError, "reduction"),
    ("ce-reduction-None", _ce(reduction=None), ValueError, "reduction"),
    ("ce-ignore_index-float", _ce(ignore_index=1.5), TypeError, "ignore_index"),
    ("ce-label_smoothing-big", _ce(label_smoothing=1.5), ValueError, "label_smoothing"),
    ("ce-label_smoothing-nan", _ce(label_smoothing=NaN), ValueError, "label_smoothing"),
    ("ce-label_smoothing-str", _ce(label_smoothing="0.1"), TypeError, "label_smoothing"),
    ("mse-shape", lambda: losses.mse(np.zeros(3), np.zeros(4)), ValueError, "target"),
    (
        "mse-mask-values",
        lambda: losses.mse(np.zeros(3), np.zeros(3), mask=[0.5, 1, 1]),
        ValueError,
        "mask",
    ),
    (
        "mse-reduction",
        lambda: losses.mse(np.zeros(3), np.zeros(3), reduction="mean "),
        ValueError,
        "reduction",
    ),
    ("softmax-axis-float", lambda: losses.softmax(np.zeros((2, 3)), axis=1.0), TypeError, "axis"),
    ("softmax-axis-range", lambda: losses.softmax(np.zeros((2, 3)), axis=2), ValueError, "axis"),
    ("log_softmax-0d", lambda: losses.log_softmax(np.float64(0)), ValueError, "x"),
    # --- optimizers
    ("SGD-lr-missing", lambda: optim.SGD({"w": np.zeros(3)}), TypeError, "lr"),
    ("SGD-lr-neg", _opt("SGD", lr=-0.1), ValueError, "lr"),
    ("SGD-lr-nan", _opt("SGD", lr=NaN), ValueError, "lr"),
    ("SGD-lr-str", _opt("SGD", lr="0.1"), TypeError, "lr"),
    ("SGD-momentum-neg", _opt("SGD", lr=0.1, momentum=-1), ValueError, "momentum"),
    ("SGD-dampening", _opt("SGD", lr=0.1, dampening=2.0), ValueError, "dampening"),
    ("SGD-nesterov-int", _opt("SGD", lr=0.1, nesterov=1), TypeError, "nesterov"),
    ("SGD-nesterov-no-momentum", _opt("SGD", lr=0.1, nesterov=True), ValueError, "nesterov"),
    ("SGD-weight_decay-inf", _opt("SGD", lr=0.1, weight_decay=-Inf), ValueError, "weight_decay"),
    ("Adam-betas-1", _opt("Adam", betas=(1.0, 0.9)), ValueError, "betas"),
    ("Adam-betas-str", _opt("Adam", betas="ab"), TypeError, "betas"),
    ("Adam-betas-3", _opt("Adam", betas=(0.9, 0.9, 0.9)), TypeError, "betas"),
    ("Adam-eps-neg", _opt("Adam", eps=-1e-8), ValueError, "eps"),
    ("Adam-amsgrad-str", _opt("Adam", amsgrad="yes"), TypeError, "amsgrad"),
    ("AdamW-weight_decay-nan", _opt("AdamW", weight_decay=NaN), ValueError, "weight_decay"),
    ("RMSprop-alpha", _opt("RMSprop", alpha=1.5), ValueError, "alpha"),
    ("RMSprop-centered", _opt("RMSprop", centered=0), TypeError, "centered"),
    ("Adagrad-lr_decay", _opt("Adagrad", lr_decay=-1), ValueError, "lr_decay"),
    ("opt-params-list", _opt("Adam", params=[np.zeros(3)]), TypeError, "params"),
    ("opt-params-empty", _opt("Adam", params={}), ValueError, "params"),
    ("opt-params-list-value", _opt("Adam", params={"w": [0.0, 1.0]}), TypeError, "params['w']"),
    ("opt-params-int", _opt("Adam", params={"w": np.zeros(3, int)}), TypeError, "params['w']"),
    (
        "opt-params-readonly",
        _opt("Adam", params={"w": _ro(np.zeros(3))}),
        ValueError,
        "params['w']",
    ),
    (
        "opt-params-shared",
        _opt("Adam", params=(lambda a: {"w": a, "v": a[:2]})(np.zeros(3))),
        ValueError,
        "share memory",
    ),
    ("opt-clip_grad_norm-neg", _opt("Adam", clip_grad_norm=-1.0), ValueError, "clip_grad_norm"),
    ("opt-clip_grad_value-nan", _opt("Adam", clip_grad_value=NaN), ValueError, "clip_grad_value"),
    ("opt-norm_type-0", _opt("Adam", clip_grad_norm=1.0, norm_type=0), ValueError, "norm_type"),
    ("opt-backend", _opt("Adam", backend="gpu"), ValueError, "backend"),
    (
        "opt-clip-mixed-dtypes",
        _opt("Adam", params={"w": np.zeros(3), "v": np.zeros(3, np.float32)}, clip_grad_norm=1.0),
        TypeError,
        "dtype",
    ),
    ("step-grads-None", _step(None), TypeError, "grads"),
    ("step-grads-list", _step([np.zeros(3)]), TypeError, "grads"),
    ("step-grads-missing", _step({}), KeyError, "w"),
    ("step-grads-extra", _step({"w": np.zeros(3), "v": np.zeros(3)}), ValueError, "grads"),
    ("step-grads-shape", _step({"w": np.zeros(4)}), ValueError, "grads['w']"),
    (
        "step-grads-readonly-clip",
        _step({"w": _ro(np.zeros(3))}, clip_grad_norm=1.0),
        ValueError,
        "grads['w']",
    ),
    (
        "step-grads-list-clip",
        _step({"w": [0.0, 0.0, 0.0]}, clip_grad_value=1.0),
        TypeError,
        "grads['w']",
    ),
    (
        "opt-lr-setter",
        lambda: setattr(optim.SGD({"w": np.zeros(3)}, lr=0.1), "lr", -1.0),
        ValueError,
        "lr",
    ),
    ("opt-load-None", _opt_load(lambda sd: sd.clear()), ValueError, "optimizer"),
    ("opt-load-class", _opt_load(lambda sd: sd.update(optimizer="SGD")), ValueError, "SGD"),
    ("opt-load-steps", _opt_load(lambda sd: sd.update(num_steps=-1)), ValueError, "num_steps"),
    (
        "opt-load-buffer-shape",
        _opt_load(lambda sd: sd["state"]["w"].update(exp_avg=np.zeros(4))),
        ValueError,
        "exp_avg",
    ),
    (
        "opt-load-buffer-dtype",
        _opt_load(lambda sd: sd["state"]["w"].update(exp_avg=np.zeros(3, np.float32))),
        TypeError,
        "exp_avg",
    ),
    # --- save / load
    ("save-model", lambda: crnn.save({"w": np.zeros(2)}, io.BytesIO()), TypeError, "model"),
    ("save-path-None", lambda: crnn.save(crnn.Linear(2, 2), None), TypeError, "path"),
    ("save-path-int", lambda: crnn.save(crnn.Linear(2, 2), 3), TypeError, "path"),
    ("load-path-None", lambda: crnn.load(None), TypeError, "path"),
    ("load-path-int", lambda: crnn.load(7), TypeError, "path"),
    ("load-path-float", lambda: crnn.load(1.5), TypeError, "path"),
    (
        "load-backend",
        lambda: crnn.load(io.BytesIO(_saved_bytes()), backend="gpu"),
        ValueError,
        "backend",
    ),
    ("load-empty", lambda: crnn.load(io.BytesIO(b"")), ValueError, "npz"),
    ("load-garbage", lambda: crnn.load(io.BytesIO(b"\x00" * 100)), ValueError, "npz"),
    (
        "load-zip-not-npz",
        lambda: crnn.load(
            (lambda b: (zipfile.ZipFile(b, "w").close(), b.seek(0), b)[2])(io.BytesIO())
        ),
        ValueError,
        "__config__",
    ),
    (
        "load-npy",
        lambda: crnn.load((lambda b: (np.save(b, np.zeros(3)), b.seek(0), b)[2])(io.BytesIO())),
        ValueError,
        "single array",
    ),
    (
        "load-foreign-npz",
        lambda: crnn.load(_npz_with({"a": np.zeros(3)})),
        ValueError,
        "__config__",
    ),
    ("load-truncated", lambda: crnn.load(io.BytesIO(_saved_bytes()[:200])), ValueError, "npz"),
    ("load-corrupted-member", lambda: crnn.load(_zip_with_bad_member()), ValueError, "entries"),
    (
        "load-config-not-json",
        _tampered(edit_entries=lambda e: e.update(__config__=np.array("{oops"))),
        ValueError,
        "JSON",
    ),
    (
        "load-config-number",
        _tampered(edit_entries=lambda e: e.update(__config__=np.array(3.0))),
        ValueError,
        "__config__",
    ),
    ("load-format", _tampered(lambda h: h.update(format="keras")), ValueError, "format"),
    ("load-version", _tampered(lambda h: h.update(version=2)), ValueError, "version"),
    ("load-class", _tampered(lambda h: h.update({"class": "os.system"})), ValueError, "class"),
    ("load-config-type", _tampered(lambda h: h.update(config="RNN(5, 6)")), ValueError, "config"),
    (
        "load-config-bad-value",
        _tampered(lambda h: h["config"].update(hidden_size=-4)),
        ValueError,
        "hidden_size",
    ),
    (
        "load-config-bad-type",
        _tampered(lambda h: h["config"].update(dtype="complex64")),
        ValueError,
        "dtype",
    ),
    (
        "load-config-unknown-key",
        _tampered(lambda h: h["config"].update(colour="red")),
        ValueError,
        "colour",
    ),
    (
        "load-config-huge-hidden",
        _tampered(lambda h: h["config"].update(hidden_size=10**7)),
        ValueError,
        "parameters",
    ),
    (
        "load-config-huge-layers",
        _tampered(lambda h: h["config"].update(num_layers=10**9)),
        ValueError,
        "parameters",
    ),
    (
        "load-weight-missing",
        _tampered(edit_entries=lambda e: e.pop("bias_hh_l0")),
        ValueError,
        "bias_hh_l0",
    ),
    (
        "load-weight-shape",
        _tampered(edit_entries=lambda e: e.update(weight_hh_l0=np.zeros((2, 2)))),
        ValueError,
        "weight_hh_l0",
    ),
    (
        "load-weight-complex",
        _tampered(edit_entries=lambda e: e.update(weight_hh_l0=np.zeros((H, H), complex))),
        ValueError,
        "weight_hh_l0",
    ),
    (
        "load-weight-str",
        _tampered(edit_entries=lambda e: e.update(weight_hh_l0=np.full((H, H), "a"))),
        ValueError,
        "weight_hh_l0",
    ),
    (
        "load-weight-object",
        _tampered(edit_entries=lambda e: e.update(weight_hh_l0=np.array([{}], object))),
        ValueError,
        "pickle",
    ),
    (
        "load-weight-extra",
        _tampered(edit_entries=lambda e: e.update(stray=np.zeros(1))),
        ValueError,
        "stray",
    ),
]


@pytest.mark.parametrize(
    "call, exc, name", [c[1:] for c in OTHER_CASES], ids=[c[0] for c in OTHER_CASES]
)
def test_bad_argument(call, exc, name):
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    assert re.search(_word(name), msg) or name in msg, f"{name!r} not named in: {msg}"


def test_missing_and_directory_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.npz"))):
        crnn.load(tmp_path / "nope.npz")
    with pytest.raises(IsADirectoryError):
        crnn.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        crnn.save(crnn.Linear(2, 2), tmp_path / "no" / "such" / "dir.npz")


def test_failed_calls_change_nothing():
    """A rejected call leaves layer parameters, gradients, optimizer state and
    clipped arrays exactly as they were."""
    layer = crnn.RNN(I, H, seed=0)
    x = np.ones((T, B, I), np.float32)
    layer(x)
    layer.backward(np.ones((T, B, H), np.float32))
    before = copy.deepcopy((layer.params, layer.grads))
    with pytest.raises(TypeError):
        layer.backward(np.ones((T, B, H)))
    with pytest.raises(ValueError):
        layer.load_state_dict({k: np.zeros(1) for k in layer.params})
    after = (layer.params, layer.grads)
    for d0, d1 in zip(before, after):
        for k in d0:
            np.testing.assert_array_equal(d0[k], d1[k])

    params = {"a": np.ones(3), "b": np.ones(2)}
    opt = optim.Adam(params, clip_grad_norm=1.0)
    grads = {"a": np.full(3, 5.0), "b": np.full(2, 5.0)}
    snap = copy.deepcopy((params, grads, opt.state_dict()))
    with pytest.raises(ValueError):
        opt.step({"a": grads["a"], "b": np.ones(3)})  # b's shape is wrong
    np.testing.assert_array_equal(params["a"], snap[0]["a"])
    np.testing.assert_array_equal(grads["a"], snap[1]["a"])  # not clipped either
    assert opt.num_steps == 0

    arrays = [np.full(3, 2.0), np.ones(2, np.float32)]
    with pytest.raises(TypeError):
        crnn.clip_grad_norm(arrays, 0.1)
    np.testing.assert_array_equal(arrays[0], np.full(3, 2.0))


# --------------------------------------------------------------------------
# Unusual but valid inputs to the layers, losses and clipping
# --------------------------------------------------------------------------
_unusual = unusual


UNUSUAL_KINDS = ["noncontig", "fortran", "negstride", "readonly", "byteswapped", "list"]
LAYERS_FOR_UNUSUAL = ["RNN", "RNN-bi-lengths", "RNN-batch_first", "RNNCell", "Linear"]


def _layer_run(kind, dtype, backend, inputs, up):
    """Forward and backward of a fresh, identically seeded layer."""
    if kind.startswith("RNN") and kind != "RNNCell":
        kw = {"bidirectional": True, "num_layers": 2} if kind == "RNN-bi-lengths" else {}
        if kind == "RNN-batch_first":
            kw["batch_first"] = True
        layer = crnn.RNN(I, H, dtype=dtype, seed=3, backend=backend, **kw)
        out, h_n = layer(inputs["x"], inputs.get("h0"), lengths=inputs.get("lengths"))
        dx, dh0 = layer.backward(up["dout"], up["dh_n"])
        return [out, h_n, dx, dh0] + list(layer.grads.values())
    if kind == "RNNCell":
        layer = crnn.RNNCell(I, H, dtype=dtype, seed=3, backend=backend)
        h = layer(inputs["x"], inputs["h0"])
        return [h, *layer.backward(up["dh_n"])] + list(layer.grads.values())
    layer = crnn.Linear(I, H, dtype=dtype, seed=3, backend=backend)
    y = layer(inputs["x"])
    return [y, layer.backward(up["dout"])] + list(layer.grads.values())


def _layer_inputs(kind, dtype):
    rng = np.random.default_rng(4)
    D = 2 if kind == "RNN-bi-lengths" else 1
    L = 2 if kind == "RNN-bi-lengths" else 1
    if kind == "RNNCell":
        return (
            {
                "x": rng.standard_normal((B, I)).astype(dtype),
                "h0": rng.standard_normal((B, H)).astype(dtype),
            },
            {"dh_n": rng.standard_normal((B, H)).astype(dtype)},
        )
    if kind == "Linear":
        return (
            {"x": rng.standard_normal((T, B, I)).astype(dtype)},
            {"dout": rng.standard_normal((T, B, H)).astype(dtype)},
        )
    xs = (B, T, I) if kind == "RNN-batch_first" else (T, B, I)
    os_ = (B, T, D * H) if kind == "RNN-batch_first" else (T, B, D * H)
    inputs = {
        "x": rng.standard_normal(xs).astype(dtype),
        "h0": rng.standard_normal((L * D, B, H)).astype(dtype),
    }
    if kind == "RNN-bi-lengths":
        inputs["lengths"] = np.array([T, 0, 2])
    return inputs, {
        "dout": rng.standard_normal(os_).astype(dtype),
        "dh_n": rng.standard_normal((L * D, B, H)).astype(dtype),
    }


def _unusual_layout_params():
    """A nested list becomes float64, which a float32 layer refuses (the
    "int_list" / mixed-precision cases above): lists only with float64.
    Linear runs the same NumPy products for either backend: one is enough."""
    for layer in LAYERS_FOR_UNUSUAL:
        for kind in UNUSUAL_KINDS:
            for dtype in (np.float32, np.float64):
                if kind == "list" and dtype == np.float32:
                    continue
                for backend in ("c",) if layer == "Linear" else ("c", "numpy"):
                    yield pytest.param(
                        layer,
                        kind,
                        dtype,
                        backend,
                        id=f"{layer}-{kind}-{np.dtype(dtype).name}-{backend}",
                    )


@pytest.mark.parametrize("layer, kind, dtype, backend", list(_unusual_layout_params()))
def test_layers_unusual_layouts(layer, kind, dtype, backend):
    inputs, up = _layer_inputs(layer, dtype)
    base = _layer_run(layer, dtype, backend, inputs, up)
    odd_in = {k: _unusual(v, kind) for k, v in inputs.items()}
    odd_up = {k: _unusual(v, kind) for k, v in up.items()}
    snap = copy.deepcopy((odd_in, odd_up))
    res = _layer_run(layer, dtype, backend, odd_in, odd_up)
    for i, (a, b) in enumerate(zip(res, base)):
        assert a.dtype == b.dtype and a.dtype.isnative, (i, a.dtype)
        if layer == "Linear":  # NumPy's matmul: BLAS may round differently per layout
            assert_rel_close(a, b, dtype, name=f"{layer} {kind}: result #{i}")
        else:  # the engines normalise the layout first: bitwise the same
            np.testing.assert_array_equal(a, b, err_msg=f"{layer} {kind}: result #{i}")
    for got, want in zip(
        list(odd_in.values()) + list(odd_up.values()),
        list(snap[0].values()) + list(snap[1].values()),
    ):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))  # inputs never modified


@pytest.mark.parametrize("kind", UNUSUAL_KINDS)
def test_losses_unusual_layouts(kind):
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((T, B, 7))
    targets = rng.integers(0, 7, size=(T, B))
    mask = rng.random((T, B)) > 0.3
    pred, target = rng.standard_normal((T, B, 2)), rng.standard_normal((T, B, 2))
    base = (
        losses.softmax_cross_entropy(logits, targets, mask),
        losses.mse(pred, target),
        losses.log_softmax(logits),
    )
    odd = [_unusual(a, kind) for a in (logits, targets, mask, pred, target)]
    snap = copy.deepcopy(odd)
    res = (
        losses.softmax_cross_entropy(odd[0], odd[1], odd[2]),
        losses.mse(odd[3], odd[4]),
        losses.log_softmax(odd[0]),
    )
    # NumPy reductions may sum in another order for another layout: a few ulps.
    assert res[0][0] == pytest.approx(base[0][0], rel=1e-14)
    assert res[1][0] == pytest.approx(base[1][0], rel=1e-14)
    for a, b in ((res[0][1], base[0][1]), (res[1][1], base[1][1]), (res[2], base[2])):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    for a, b in zip(odd, snap):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("engine", [crnn, ref], ids=["crnn", "reference"])
@pytest.mark.parametrize(
    "kind", ["noncontig", "fortran", "negstride", "byteswapped", "zero-size", "0-d"]
)
def test_clip_unusual_arrays_modified_in_place_correctly(engine, kind):
    rng = np.random.default_rng(6)
    base = rng.standard_normal((6, 5)) * 3
    if kind == "zero-size":
        base = np.zeros((0, 5))
    if kind == "0-d":
        base = np.array(4.0)
    canon_n, canon_v = base.copy(), base.copy()
    t0 = engine.clip_grad_norm([canon_n], 1.0)
    engine.clip_grad_value([canon_v], 0.5)
    odd_n = _unusual(base, kind) if base.ndim and base.size else base.copy()
    odd_v = _unusual(base, kind) if base.ndim and base.size else base.copy()
    t1 = engine.clip_grad_norm([odd_n], 1.0)
    engine.clip_grad_value([odd_v], 0.5)
    np.testing.assert_array_equal(odd_v, canon_v)
    if engine is crnn:  # copied to C order first: the same chunks, the same bits
        assert t0 == t1
        np.testing.assert_array_equal(odd_n, canon_n)
    else:  # np.sum follows the memory layout: a few ulps
        assert t1 == pytest.approx(t0, rel=1e-14)
        np.testing.assert_allclose(odd_n, canon_n, rtol=1e-14)
    if kind == "byteswapped":
        assert not odd_n.dtype.isnative  # the caller's array, updated in place


def test_catalogue_size():
    """Keeps the counts quoted in the README's Reliability section honest
    (with the functional API's battery, test_cells_validation.py)."""
    from test_cells_validation import battery_size

    assert len(ARRAY_CASES) + len(MIXED) + len(OTHER_CASES) >= 490
    assert len(ARRAY_CASES) + len(MIXED) + len(OTHER_CASES) + battery_size() >= 1060
