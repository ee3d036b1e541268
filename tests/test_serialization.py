"""crnn.save / crnn.load: one .npz with a JSON config and the weights, no pickle.

Round trips for every layer and a spread of configurations (the loaded
module computes the same outputs); foreign, corrupted and tampered files
raise ValueError naming the problem; no entry is ever pickled; user Module
subclasses are saved once registered.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import crnn
from crnn import RNN, Linear, Module, RNNCell
from crnn.serialization import CONFIG_KEY, FORMAT, FORMAT_VERSION, register_module

CONFIGS = [
    ("RNN", dict(input_size=3, hidden_size=4)),
    (
        "RNN",
        dict(
            input_size=3,
            hidden_size=4,
            num_layers=3,
            nonlinearity="relu",
            bias=False,
            batch_first=True,
            dropout=0.3,
            bidirectional=True,
            dtype=np.float64,
            seed=5,
            backend="numpy",
            init="orthogonal",
        ),
    ),
    (
        "RNN",
        dict(
            input_size=2,
            hidden_size=5,
            num_layers=2,
            nonlinearity="sigmoid",
            bidirectional=True,
            init="glorot",
        ),
    ),
    ("RNNCell", dict(input_size=3, hidden_size=4)),
    (
        "RNNCell",
        dict(
            input_size=3,
            hidden_size=4,
            bias=False,
            nonlinearity="relu",
            dtype=np.float64,
            seed=2,
            backend="numpy",
            init="orthogonal",
        ),
    ),
    ("Linear", dict(in_features=4, out_features=2)),
    ("Linear", dict(in_features=4, out_features=2, bias=False, dtype=np.float64, init="glorot")),
]
CLASSES = {"RNN": RNN, "RNNCell": RNNCell, "Linear": Linear}


def _inputs(model, rng):
    if isinstance(model, Linear):
        return (rng.standard_normal((3, 2, model.in_features)).astype(model.dtype),)
    if isinstance(model, RNNCell):
        return (rng.standard_normal((2, model.input_size)).astype(model.dtype),)
    return (rng.standard_normal((4, 2, model.input_size)).astype(model.dtype),)


def _outputs(model, inputs):
    model.eval()
    res = model(*inputs)
    return res if isinstance(res, tuple) else (res,)


@pytest.fixture
def saved(tmp_path):
    model = RNN(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    path = tmp_path / "model.npz"
    crnn.save(model, path)
    return model, path


def _rewrite(path, entries):
    """Write an npz holding exactly `entries` (name -> array)."""
    with open(path, "wb") as f:
        np.savez(f, **entries)


def _entries(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


# --------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,kwargs", CONFIGS, ids=[f"{n}{i}" for i, (n, _) in enumerate(CONFIGS)]
)
def test_round_trip(tmp_path, name, kwargs):
    model = CLASSES[name](**kwargs)
    for v in model.params.values():  # not the init: weights are really loaded
        v += 0.125
    model.eval()
    path = tmp_path / "m.npz"
    crnn.save(model, path)
    loaded = crnn.load(path)
    assert type(loaded) is type(model)
    assert loaded.config() == model.config()
    assert loaded.training is True  # a new module, in PyTorch's default mode
    assert list(loaded.params) == list(model.params)
    for k, v in model.params.items():
        assert loaded.params[k].dtype == v.dtype
        np.testing.assert_array_equal(loaded.params[k], v)
        assert not np.any(loaded.grads[k])
    rng = np.random.default_rng(0)
    inputs = _inputs(model, rng)
    for a, b in zip(_outputs(model, inputs), _outputs(loaded, inputs)):
        np.testing.assert_array_equal(a, b)


def test_file_layout_is_plain_npz_without_pickle(saved):
    model, path = saved
    with zipfile.ZipFile(path) as z:
        names = sorted(z.namelist())
        assert names == sorted([CONFIG_KEY + ".npy"] + [k + ".npy" for k in model.params])
        for n in names:  # every entry is a plain .npy array: no object dtype, no pickle
            header = z.read(n)[:200]
            assert header.startswith(b"\x93NUMPY")
            assert b"'O'" not in header and b"|O" not in header
    entries = _entries(path)  # readable with allow_pickle=False
    header = json.loads(str(entries[CONFIG_KEY]))
    assert header["format"] == FORMAT and header["version"] == FORMAT_VERSION
    assert header["class"] == "RNN" and header["config"] == model.config()
    assert header["crnn_version"] == crnn.__version__


def test_path_is_used_as_given_and_file_objects(tmp_path):
    model = Linear(2, 3, seed=0)
    path = tmp_path / "weights.bin"  # no .npz suffix added
    crnn.save(model, str(path))
    assert path.exists() and not (tmp_path / "weights.bin.npz").exists()
    np.testing.assert_array_equal(crnn.load(str(path)).params["weight"], model.params["weight"])
    buf = io.BytesIO()
    crnn.save(model, buf)
    buf.seek(0)
    np.testing.assert_array_equal(crnn.load(buf).params["bias"], model.params["bias"])


def test_backend_override_and_dropout_stream(tmp_path):
    model = RNN(3, 4, num_layers=2, dropout=0.5, seed=7, backend="c")
    path = tmp_path / "m.npz"
    crnn.save(model, path)
    assert crnn.load(path).backend == "c"
    loaded = crnn.load(path, backend="numpy")
    assert loaded.backend == "numpy"
    # the seed is part of the config: a loaded model draws the masks a fresh one would
    fresh = RNN(3, 4, num_layers=2, dropout=0.5, seed=7)
    x = np.ones((4, 2, 3), np.float32)
    np.testing.assert_allclose(loaded(x)[0], fresh(x)[0], rtol=1e-5)
    with pytest.raises(ValueError, match="backend"):
        crnn.load(path, backend="gpu")


# --------------------------------------------------------------------------
# Bad files
# --------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        crnn.load(tmp_path / "nope.npz")


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "cannot read it as an npz archive"),
        (b"hello, this is not numpy" * 10, "cannot read it as an npz archive"),
        (b"PK\x03\x04" + b"\x00" * 60, "cannot read"),
    ],
)
def test_garbage_files(tmp_path, content, match):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        crnn.load(path)


def test_truncated_file(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    for cut in (len(data) // 3, len(data) - 30):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not a valid crnn model file"):
            crnn.load(bad)


def test_corrupted_entry(saved, tmp_path):
    _, path = saved
    data = bytearray(path.read_bytes())
    start = data.index(b"weight_hh_l0.npy")
    data[start + 200 : start + 240] = b"\xff" * 40  # inside that entry's data: CRC fails
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not a valid crnn model file"):
        crnn.load(bad)


def test_npy_file_is_not_a_model(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ValueError, match="single array"):
        crnn.load(path)


def test_foreign_npz(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, a=np.zeros(3), b=np.ones((2, 2)))
    with pytest.raises(ValueError, match="no '__config__' entry"):
        crnn.load(path)


def test_pickled_entries_are_refused(saved, tmp_path):
    """An object array (which only pickle can store) is never unpickled."""
    _, path = saved
    entries = _entries(path)
    entries["weight_hh_l0"] = np.array([{"evil": 1}, None], dtype=object)
    bad = tmp_path / "pickled.npz"
    _rewrite(bad, entries)
    with pytest.raises(ValueError, match="pickle"):
        crnn.load(bad)
    entries = _entries(path)
    entries[CONFIG_KEY] = np.array([json.loads(str(entries[CONFIG_KEY]))], dtype=object)
    _rewrite(bad, entries)
    with pytest.raises(ValueError, match="pickle|JSON string"):
        crnn.load(bad)


def _tamper_header(path, tmp_path, edit):
    entries = _entries(path)
    header = json.loads(str(entries[CONFIG_KEY]))
    new = edit(header)
    entries[CONFIG_KEY] = np.array(new if isinstance(new, str) else json.dumps(new))
    bad = tmp_path / "tampered.npz"
    _rewrite(bad, entries)
    return bad


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda h: "{not json", "not valid JSON"),
        (lambda h: [1, 2], "does not declare format"),
        (lambda h: {**h, "format": "keras"}, "does not declare format"),
        (lambda h: {**h, "version": 99}, "unsupported format version 99"),
        (
            lambda h: {**h, "class": "Transformer"},
            r"holds a Transformer, a class that is not registered.*RNN.*register_module\(Transformer\)",
        ),
        (lambda h: {**h, "config": [3, 4]}, "'config' must be a JSON object"),
        (
            lambda h: {**h, "config": {**h["config"], "hidden_size": 0}},
            "does not build a RNN .*hidden_size",
        ),
        (
            lambda h: {**h, "config": {**h["config"], "colour": "red"}},
            "does not build a RNN .*colour",
        ),
        (
            lambda h: {**h, "config": {**h["config"], "num_layers": 3}},
            "missing keys: .*weight_ih_l2",
        ),
        (
            lambda h: {**h, "config": {**h["config"], "hidden_size": 5}},
            "shape mismatches: weight_ih_l0",
        ),
    ],
)
def test_tampered_config(saved, tmp_path, edit, match):
    _, path = saved
    with pytest.raises(ValueError, match=match):
        crnn.load(_tamper_header(path, tmp_path, edit))


def test_config_entry_must_be_a_string(saved, tmp_path):
    _, path = saved
    entries = _entries(path)
    entries[CONFIG_KEY] = np.zeros(3)
    bad = tmp_path / "bad.npz"
    _rewrite(bad, entries)
    with pytest.raises(ValueError, match="must be a JSON string"):
        crnn.load(bad)


def test_weights_missing_extra_or_misshapen(saved, tmp_path):
    _, path = saved
    entries = _entries(path)
    del entries["bias_hh_l1_reverse"]
    entries["weight_hh_l0"] = np.zeros((5, 5))
    entries["stray"] = np.zeros(1)
    bad = tmp_path / "bad.npz"
    _rewrite(bad, entries)
    with pytest.raises(ValueError) as exc:
        crnn.load(bad)
    msg = str(exc.value)
    assert (
        "bias_hh_l1_reverse" in msg
        and "stray" in msg
        and "weight_hh_l0: expected shape (4, 4)" in msg
    )


# --------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------


class TinyClassifier(Module):
    """A model built from layers: RNN -> Linear on the last step."""

    def __init__(self, input_size, hidden_size, classes, dtype="float32", seed=None, backend="c"):
        super().__init__(backend=backend)
        self._cfg = dict(
            input_size=input_size,
            hidden_size=hidden_size,
            classes=classes,
            dtype=np.dtype(dtype).name,
            seed=seed,
            backend=backend,
        )
        self.rnn = RNN(input_size, hidden_size, dtype=dtype, seed=seed, backend=backend)
        self.head = Linear(
            hidden_size,
            classes,
            dtype=dtype,
            seed=None if seed is None else seed + 1,
            backend=backend,
        )

    def config(self):
        return dict(self._cfg, backend=self.backend)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[-1])


def test_registered_model_round_trip(tmp_path):
    with pytest.raises(TypeError, match="not registered"):
        crnn.save(TinyClassifier(3, 4, 2), tmp_path / "m.npz")
    assert register_module(TinyClassifier) is TinyClassifier
    assert register_module(TinyClassifier) is TinyClassifier  # idempotent
    model = TinyClassifier(3, 4, 2, dtype="float64", seed=1)
    path = tmp_path / "m.npz"
    crnn.save(model, path)
    assert set(_entries(path)) == {CONFIG_KEY, *model.params}
    loaded = crnn.load(path)
    assert isinstance(loaded, TinyClassifier)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    np.testing.assert_array_equal(loaded(x), model(x))


def test_register_module_errors():
    with pytest.raises(TypeError, match="Module subclass"):
        register_module(dict)
    with pytest.raises(TypeError, match="Module subclass"):
        register_module(RNN(1, 1))

    class RNN2(Module):
        pass

    with pytest.raises(ValueError, match="already registered as 'RNN'"):
        register_module(RNN2, name="RNN")
    with pytest.raises(ValueError, match="non-empty"):
        register_module(RNN2, name="")


def test_save_errors(tmp_path):
    with pytest.raises(TypeError, match="crnn Module"):
        crnn.save({"weight": np.zeros(2)}, tmp_path / "x.npz")

    class Weird(Module):
        def __init__(self, dtype=np.float32):
            super().__init__()
            self.register_parameter("w", np.zeros(2, dtype))
            self.dtype = dtype

        def config(self):
            return {"dtype": self.dtype}  # a type object: not JSON

    register_module(Weird, name="test_serialization.Weird")
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        crnn.save(Weird(), tmp_path / "w.npz")
