"""crnn.data: vocabularies, one-hot, bag of words, padding, batches, streams."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import crnn
from crnn import data
from crnn.data import CharVocab, WordVocab


def test_plain_import_crnn_gives_crnn_data():
    """A fresh interpreter: ``crnn.data.X`` works after ``import crnn`` alone."""
    code = (
        "import crnn\n"
        "v = crnn.data.CharVocab.from_text('abc')\n"
        "assert v.decode(v.encode('cab')) == 'cab'\n"
        "assert 'data' in crnn.__all__\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------
# Characters
# --------------------------------------------------------------------------


def test_char_vocab_round_trip_and_order():
    v = CharVocab.from_text("hello world")
    assert v.chars == " dehlorw"  # sorted by code point
    assert len(v) == 9 and v.tokens[0] == v.unk == "\ufffd" and v.unk_id == 0
    ids = v.encode("hello world")
    assert ids.dtype == np.int64 and ids.shape == (11,)
    assert ids.min() >= 1
    assert v.decode(ids) == "hello world"
    assert v.index("h") == v.encode("h")[0] and v.token(v.index("w")) == "w"
    assert "h" in v and "z" not in v


def test_char_vocab_unknown_characters():
    v = CharVocab.from_text("abc")
    ids = v.encode("a\u00e9z\U0001f600c")  # beyond the table, beyond the BMP
    assert ids.tolist() == [1, 0, 0, 0, 3]
    assert v.decode(ids) == "a\ufffd\ufffd\ufffdc"
    assert CharVocab("ab", unk="?").decode(np.array([0, 1, 2])) == "?ab"
    assert v.encode("").shape == (0,)


def test_char_vocab_min_count_and_unk_char_in_text():
    v = CharVocab.from_text("aaab\ufffd", min_count=2)
    assert v.chars == "a"
    assert v.encode("b").tolist() == [0]


def test_char_vocab_errors():
    with pytest.raises(ValueError, match="single characters"):
        CharVocab(["ab"])
    with pytest.raises(ValueError, match="duplicate"):
        CharVocab("aa")
    with pytest.raises(ValueError, match="unknown token"):
        CharVocab("a?", unk="?")
    v = CharVocab("ab")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        v.decode([5])
    with pytest.raises(TypeError):
        v.decode([0.5])
    with pytest.raises(TypeError):
        v.encode(b"ab")


def test_vocab_dict_round_trip_is_json():
    v = CharVocab.from_text("xyz\n")
    d = json.loads(json.dumps(v.to_dict()))
    assert CharVocab.from_dict(d) == v
    w = WordVocab.from_texts(["a b b"], specials=["<pad>"], lower=False)
    d = json.loads(json.dumps(w.to_dict()))
    w2 = WordVocab.from_dict(d)
    assert w2 == w and w2.specials == ["<pad>"] and w2.lower is False


# --------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------


def test_tokenize():
    assert data.tokenize("Don't stop, NOW!") == ["don't", "stop", ",", "now", "!"]
    assert data.tokenize("A b", lower=False) == ["A", "b"]


def test_word_vocab_order_specials_unknown():
    w = WordVocab.from_texts(["the cat sat", "The dog sat."], specials=["<pad>", "<s>"])
    assert w.tokens[:3] == ["<unk>", "<pad>", "<s>"]
    # by count (the 2, sat 2), then alphabetically
    assert w.tokens[3:] == ["sat", "the", ".", "cat", "dog"]
    ids = w.encode("the bird sat")
    assert ids.tolist() == [w.index("the"), 0, w.index("sat")]
    assert w.decode(ids) == "the <unk> sat"
    assert w.encode(["the", "zebra"]).tolist() == [w.index("the"), 0]


def test_word_vocab_min_count_max_size():
    docs = ["a a a b b c", "a b d"]
    assert WordVocab.from_texts(docs, min_count=2).tokens == ["<unk>", "a", "b"]
    assert WordVocab.from_texts(docs, max_size=1).tokens == ["<unk>", "a"]
    with pytest.raises(TypeError, match="single string"):
        WordVocab.from_texts("a b c")


def test_bag_of_words_modes():
    w = WordVocab.from_texts(["a b c"])
    docs = ["a a b zz", "", ["c"]]
    counts = data.bag_of_words(docs, w)
    assert counts.shape == (3, 4) and counts.dtype == np.float32
    ia, ib, ic = w.index("a"), w.index("b"), w.index("c")
    assert counts[0, ia] == 2 and counts[0, ib] == 1 and counts[0, 0] == 1
    assert counts[1].sum() == 0 and counts[2, ic] == 1
    binary = data.bag_of_words(docs, w, mode="binary", dtype=np.float64)
    assert binary.dtype == np.float64 and binary[0, ia] == 1
    freq = data.bag_of_words(docs, w, mode="freq")
    np.testing.assert_allclose(freq[0].sum(), 1.0)
    assert freq[1].sum() == 0
    no_unk = data.bag_of_words(docs, w, include_unk=False)
    assert no_unk[0, 0] == 0
    with pytest.raises(ValueError, match="mode"):
        data.bag_of_words(docs, w, mode="tfidf")


# --------------------------------------------------------------------------
# One-hot
# --------------------------------------------------------------------------


def test_one_hot_is_the_models_one():
    assert data.one_hot is crnn.models.one_hot
    v = CharVocab("abc")
    x = v.one_hot(v.encode("cab"))
    assert x.shape == (3, 4) and x.dtype == np.float32
    assert x.argmax(axis=1).tolist() == [3, 1, 2]


# --------------------------------------------------------------------------
# Padding and batches
# --------------------------------------------------------------------------


def test_pad_batch_ids_time_major():
    x, lengths = data.pad_batch([[1, 2, 3], [4], []], pad_value=-1)
    assert x.shape == (3, 3) and lengths.tolist() == [3, 1, 0]
    assert x[:, 0].tolist() == [1, 2, 3]
    assert x[:, 1].tolist() == [4, -1, -1]
    assert x[:, 2].tolist() == [-1, -1, -1]
    assert lengths.dtype == np.int64


def test_pad_batch_features_and_max_len():
    seqs = [np.ones((4, 2)), 2 * np.ones((2, 2))]
    x, lengths = data.pad_batch(seqs, dtype=np.float32, max_len=3)
    assert x.shape == (3, 2, 2) and x.dtype == np.float32
    assert lengths.tolist() == [3, 2]
    assert np.all(x[2, 1] == 0) and np.all(x[1, 1] == 2)


def test_pad_batch_errors():
    with pytest.raises(ValueError, match="empty"):
        data.pad_batch([])
    with pytest.raises(ValueError, match="expected"):
        data.pad_batch([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(ValueError, match="1-D"):
        data.pad_batch([np.ones(2), np.ones((2, 2))])


def test_padded_batch_feeds_an_rnn_with_lengths():
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((n, 3)) for n in (5, 2, 4)]
    x, lengths = data.pad_batch(seqs, dtype=np.float64)
    rnn = crnn.RNN(3, 4, dtype=np.float64, seed=0)
    out, h_n = rnn(x, lengths=lengths)
    for b, s in enumerate(seqs):
        alone, h_alone = rnn(s[:, None, :])
        np.testing.assert_allclose(h_n[0, b], h_alone[0, 0], rtol=1e-12, atol=1e-12)


def test_batches_cover_everything_and_shuffle_reproducibly():
    seqs = [np.arange(n) for n in range(1, 11)]
    targets = np.arange(10) * 10
    got = list(data.batches(seqs, targets, batch_size=4))
    assert [b.x.shape[1] for b in got] == [4, 4, 2]
    assert np.concatenate([b.indices for b in got]).tolist() == list(range(10))
    for b in got:
        assert b.y.tolist() == (b.indices * 10).tolist()
        assert b.lengths.tolist() == (b.indices + 1).tolist()
    a = np.concatenate([b.indices for b in data.batches(seqs, batch_size=3, shuffle=True, seed=1)])
    b = np.concatenate([b.indices for b in data.batches(seqs, batch_size=3, shuffle=True, seed=1)])
    assert a.tolist() == b.tolist() and sorted(a.tolist()) == list(range(10))
    assert a.tolist() != list(range(10))
    dropped = list(data.batches(seqs, batch_size=4, drop_last=True))
    assert len(dropped) == 2
    assert all(b.y is None for b in dropped)
    with pytest.raises(ValueError, match="targets"):
        list(data.batches(seqs, targets[:3]))
    with pytest.raises(ValueError, match="batch_size"):
        list(data.batches(seqs, batch_size=0))


def test_streams_are_contiguous_chunks():
    s = data.streams(np.arange(23), 4)
    assert s.shape == (5, 4)
    assert s[:, 0].tolist() == [0, 1, 2, 3, 4]
    assert s[:, 3].tolist() == [15, 16, 17, 18, 19]
    f = data.streams(np.arange(20).reshape(10, 2), 2)
    assert f.shape == (5, 2, 2) and f[0, 1].tolist() == [10, 11]
    with pytest.raises(ValueError, match="exceeds"):
        data.streams(np.arange(3), 4)
