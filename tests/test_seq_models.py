"""``embedding_dim=`` on the models that read tokens, and their files.

- SequenceClassifier, SequenceTagger, CharRNN / CharModel: every cell, with
  and without an embedding, gradchecked in float64 on both engines;
- an embedding whose rows are one-hot vectors computes what the one-hot
  model computes;
- crnn.save / crnn.load keep the cell, the embedding and the attention
  (every model x cell x embedding x attention), and the files written by
  crnn before those options (tests/data/legacy_models, written by
  tests/data/make_legacy_models.py at commit 8e58a75) still load and compute
  what they computed then;
- bad token inputs.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import crnn
from crnn.losses import mse, softmax_cross_entropy
from crnn.models import CharModel, CharRNN, Seq2Seq, SequenceClassifier, SequenceTagger, one_hot
from crnn.training import TBPTT

BACKENDS = ["c", "numpy"]
CELLS = ["rnn", "lstm", "gru"]
F64 = np.float64
LEGACY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "legacy_models")


def _check(f, params, grads):
    rep = crnn.gradcheck(f, params, grads, atol=1e-9, max_checks_per_param=20, rng=0)
    assert rep.ok, str(rep)


# --------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("embedding_dim", [None, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradcheck_classifier(backend, cell, embedding_dim, bidirectional):
    rng = np.random.default_rng(1)
    T, B, V, H, C = 5, 4, 6, 3, 3
    m = SequenceClassifier(
        V,
        H,
        C,
        num_layers=1 if bidirectional else 2,
        bidirectional=bidirectional,
        dtype=F64,
        seed=2,
        backend=backend,
        cell=cell,
        embedding_dim=embedding_dim,
    )
    lengths = np.array([5, 2, 0, 3])
    x = rng.integers(0, V, size=(T, B)) if embedding_dim else rng.standard_normal((T, B, V))
    y = np.array([0, 2, 1, 1])

    def f():
        return softmax_cross_entropy(m(x, lengths=lengths), y)[0]

    m.zero_grad()
    _, d = softmax_cross_entropy(m(x, lengths=lengths), y)
    dx, _ = m.backward(d)
    params, grads = dict(m.params), dict(m.grads)
    if embedding_dim:
        assert dx is None and list(m.params)[0] == "embed.weight"
        read = np.unique(np.concatenate([x[:5, 0], x[:2, 1], x[:3, 3]]))
        assert not np.delete(m.grads["embed.weight"], read, axis=0).any()
    else:
        params["x"], grads["x"] = x, dx
    _check(f, params, grads)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("embedding_dim", [None, 3])
def test_gradcheck_tagger(backend, cell, embedding_dim):
    rng = np.random.default_rng(2)
    T, B, V, H, O = 4, 3, 5, 3, 2
    m = SequenceTagger(
        V,
        H,
        O,
        bidirectional=True,
        dtype=F64,
        seed=3,
        backend=backend,
        cell=cell,
        embedding_dim=embedding_dim,
    )
    x = rng.integers(0, V, size=(T, B)) if embedding_dim else rng.standard_normal((T, B, V))
    lengths = np.array([4, 1, 3])
    mask = (np.arange(T)[:, None] < lengths[None, :])[..., None]
    y = rng.standard_normal((T, B, O))

    def f():
        return mse(m(x, lengths=lengths)[0], y, mask=mask)[0]

    m.zero_grad()
    _, d = mse(m(x, lengths=lengths)[0], y, mask=mask)
    dx, _ = m.backward(d)
    params, grads = dict(m.params), dict(m.grads)
    if not embedding_dim:
        params["x"], grads["x"] = x, dx
    _check(f, params, grads)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("embedding_dim", [None, 3])
def test_gradcheck_char_models(backend, cell, embedding_dim):
    rng = np.random.default_rng(3)
    m = CharModel(
        "abcd",
        4,
        num_layers=2,
        dtype=F64,
        seed=4,
        backend=backend,
        cell=cell,
        embedding_dim=embedding_dim,
    )
    V = m.vocab_size
    ids = rng.integers(0, V, size=(6, 2))
    x, y = ids[:-1], ids[1:]
    h0 = crnn.nn.map_state(lambda s: s * 0.3, m(x)[1])

    def f():
        return softmax_cross_entropy(m(x, h0)[0], y)[0]

    m.zero_grad()
    logits, _ = m(x, h0)
    _, d = softmax_cross_entropy(logits, y)
    dx, dh0 = m.backward(d)
    assert dx is None  # integer ids have no gradient, one-hot or embedded
    parts = h0 if isinstance(h0, tuple) else (h0,)
    dparts = dh0 if isinstance(dh0, tuple) else (dh0,)
    params = dict(m.params, **{f"h0_{i}": p for i, p in enumerate(parts)})
    grads = dict(m.grads, **{f"h0_{i}": p for i, p in enumerate(dparts)})
    _check(f, params, grads)


def test_identity_embedding_is_the_one_hot_model():
    rng = np.random.default_rng(0)
    V, H = 5, 4
    pairs = [
        (
            SequenceTagger(V, H, 3, dtype=F64, seed=1, cell="lstm"),
            SequenceTagger(V, H, 3, dtype=F64, seed=1, cell="lstm", embedding_dim=V),
        ),
        (
            SequenceClassifier(V, H, 3, dtype=F64, seed=1, cell="gru"),
            SequenceClassifier(V, H, 3, dtype=F64, seed=1, cell="gru", embedding_dim=V),
        ),
        (CharRNN(V, H, dtype=F64, seed=1), CharRNN(V, H, dtype=F64, seed=1, embedding_dim=V)),
    ]
    ids = rng.integers(0, V, size=(6, 3))
    for one, emb in pairs:
        for name, value in one.params.items():
            emb.params[name][...] = value
        emb.params["embed.weight"][...] = np.eye(V)
        y1, y2 = one(one_hot(ids, V, F64)), emb(ids)
        y1, y2 = (y1[0], y2[0]) if isinstance(y1, tuple) else (y1, y2)
        np.testing.assert_allclose(y1, y2, rtol=1e-13, atol=1e-15)
    # Generation reads the ids the same way.
    np.testing.assert_array_equal(
        pairs[2][0].generate([1, 2], 8, temperature=0),
        pairs[2][1].generate([1, 2], 8, temperature=0),
    )


def test_tbptt_trains_a_word_model_with_an_embedding():
    text = np.tile(np.arange(12), 40)  # a repeated 12-word sentence
    stream = crnn.data.streams(text, 4)
    m = CharRNN(12, 24, seed=0, cell="lstm", embedding_dim=8)
    tb = TBPTT(m, softmax_cross_entropy, crnn.optim.Adam(m.params, lr=0.03), k=10)
    first = tb.run(stream[:-1], stream[1:])
    for _ in range(3):
        tb.reset()
        last = tb.run(stream[:-1], stream[1:])
    assert np.mean(last[-3:]) < 0.2 * np.mean(first[:3])
    assert m.grads["embed.weight"].any()


def test_bad_token_inputs():
    m = SequenceTagger(5, 3, 2, embedding_dim=2, seed=0)
    with pytest.raises(
        TypeError, match="x must be an array of integer token ids, got dtype float32"
    ):
        m(np.zeros((3, 2, 5), np.float32))
    with pytest.raises(
        ValueError, match=r"x must lie in \[0, num_embeddings\) = \[0, 5\), got values in \[0, 5\]"
    ):
        m(np.array([[0, 5]]))
    with pytest.raises(
        ValueError, match=r"x must be token ids of shape \(T, B\), got shape \(3,\)"
    ):
        m(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="embedding_dim must be >= 1"):
        SequenceClassifier(5, 3, 2, embedding_dim=0)
    with pytest.raises(TypeError, match="embedding_dim must be an integer"):
        CharRNN(5, 3, embedding_dim=2.5)
    c = CharRNN(5, 3, embedding_dim=2)
    with pytest.raises(TypeError, match="ids must be an array of integer token ids"):
        c(np.zeros((2, 1, 5), np.float32))
    # Without an embedding the inputs are features, as before.
    with pytest.raises(TypeError, match="x must be a float32 array"):
        SequenceTagger(5, 3, 2)(np.zeros((3, 2), np.int64))


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


def _models(cell, embedding_dim, attention):
    kw = dict(dtype=F64, seed=3, cell=cell, embedding_dim=embedding_dim)
    models = [
        SequenceClassifier(6, 4, 3, bidirectional=True, **kw),
        SequenceTagger(6, 4, 2, num_layers=2, **kw),
        CharRNN(6, 4, **kw),
        CharModel("abcde", 4, **kw),
    ]
    models.append(
        Seq2Seq(
            6,
            5,
            4,
            attention=attention,
            backend="numpy",
            attention_size=3 if attention == "additive" else None,
            **kw,
        )
    )
    return models


def _run(m, rng):
    T, B = 4, 2
    if isinstance(m, Seq2Seq):
        src = rng.integers(0, 6, size=(T, B)) if m.embedding_dim else rng.standard_normal((T, B, 6))
        return m(src, m.decoder_inputs(rng.integers(0, 5, size=(3, B)), 4), [4, 2])
    if isinstance(m, CharRNN):
        return m(rng.integers(0, m.vocab_size, size=(T, B)))[0]
    x = rng.integers(0, 6, size=(T, B)) if m.embed is not None else rng.standard_normal((T, B, 6))
    y = m(x, lengths=[4, 3])
    return y[0] if isinstance(y, tuple) else y


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(
    "embedding_dim,attention",
    [(None, None), (3, None), (None, "dot"), (3, "general"), (2, "additive")],
)
def test_save_load_keeps_cell_embedding_and_attention(tmp_path, cell, embedding_dim, attention):
    for i, m in enumerate(_models(cell, embedding_dim, attention)):
        path = tmp_path / f"m{i}.npz"
        crnn.save(m, path)
        back = crnn.load(path, backend="c")
        assert type(back) is type(m)
        assert back.config() == dict(m.config(), backend="c")
        assert list(back.params) == list(m.params)
        cfg = m.config()
        assert cfg["cell"] == cell
        assert cfg.get("embedding_dim") == embedding_dim
        if isinstance(m, Seq2Seq):
            assert cfg.get("attention") == attention
            assert back.attention == attention and back.embedding_dim == embedding_dim
        for name in m.params:
            np.testing.assert_array_equal(back.params[name], m.params[name])
        np.testing.assert_allclose(
            _run(back, np.random.default_rng(i)),
            _run(m, np.random.default_rng(i)),
            rtol=1e-12,
            atol=1e-14,
        )


def test_default_configs_have_no_new_keys():
    """Models without an embedding or attention write the configs they always
    wrote, so their files also load in an older crnn."""
    for m in _models("lstm", None, None):
        cfg = m.config()
        assert not {"embedding_dim", "attention", "attention_size"} & set(cfg)


@pytest.mark.parametrize(
    "name",
    [
        "classifier_lstm",
        "tagger_gru",
        "charrnn_rnn",
        "charmodel_lstm",
        "seq2seq_rnn",
        "seq2seq_lstm",
    ],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_files_saved_before_embeddings_and_attention_still_load(name, backend):
    m = crnn.load(os.path.join(LEGACY, f"{name}.npz"), backend=backend)
    with np.load(os.path.join(LEGACY, "expected.npz")) as f:
        exp = {k: f[k] for k in f.files if k.startswith(name + ".")}
    x, y = exp[f"{name}.x"], exp[f"{name}.y"]
    if isinstance(m, CharRNN):
        got = m(x)[0]
    elif isinstance(m, Seq2Seq):
        assert m.attention is None and m.embedding_dim is None
        got = m(x, exp[f"{name}.tgt_in"], src_lengths=[4, 2])
        np.testing.assert_array_equal(
            m.greedy_decode(x, 3, 4, src_lengths=[4, 2]), exp[f"{name}.greedy"]
        )
    else:
        got = m(x, lengths=[4, 3])
        got = got[0] if isinstance(got, tuple) else got
        assert m.embed is None
    np.testing.assert_allclose(got, y, rtol=1e-12, atol=1e-14)
