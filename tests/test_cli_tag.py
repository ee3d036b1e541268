"""``crnn tag``: the CoNLL reader, the built-in sentences, the tagger and the command.

Commands run in a subprocess (``python -m crnn``) with a few epochs; the
learning check calls the app in-process with a fixed seed and no time limit,
so it is deterministic (a busy machine only makes it slower).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import crnn
from crnn import datasets
from crnn.apps import tag
from crnn.apps.common import CLIError
from crnn.apps.metrics import entity_scores, entity_spans


def run(*args, timeout=180):
    # One thread: tiny models, where threads only add overhead (results are
    # bitwise the same for any thread count).
    env = dict(os.environ, CRNN_PROGRESS="plain", OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "crnn", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.fixture(autouse=True)
def one_thread():
    """In-process training on one thread, as the subprocesses run."""
    crnn.set_num_threads(1)
    yield
    crnn.set_num_threads(None)


def ok(proc):
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc


def user_error(proc, pattern):
    assert proc.returncode == 2, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    assert re.search(pattern, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


CONLL = """\
-DOCSTART- -X- O O

Anna NNP B-NP B-PER
lives VBZ B-VP O
in IN B-PP O
Rome NNP B-NP B-LOC
. . O O

Tom NNP B-NP B-PER
Smith NNP I-NP I-PER
works VBZ B-VP O
for IN B-PP O
Acme NNP B-NP B-ORG
. . O O


Rome NNP B-NP B-LOC
is VBZ B-VP O
old JJ B-ADJP O
"""


# --------------------------------------------------------------------------
# Reading CoNLL
# --------------------------------------------------------------------------


def test_parse_conll_columns_blank_lines_and_docstart():
    sents = tag.parse_conll(CONLL)
    assert [len(t) for t, _ in sents] == [5, 6, 3]
    assert sents[1] == (
        ["Tom", "Smith", "works", "for", "Acme", "."],
        ["B-PER", "I-PER", "O", "O", "B-ORG", "O"],
    )
    # Other columns: the chunk tags (column 3, or -2 from the end).
    chunks = tag.parse_conll(CONLL, tag_column=3)
    assert chunks[0][1] == ["B-NP", "B-VP", "B-PP", "B-NP", "O"]
    assert tag.parse_conll(CONLL, tag_column=-2) == chunks
    # Tabs, and a file without a trailing blank line.
    assert tag.parse_conll("Anna\tB-PER\nsings\tO") == [(["Anna", "sings"], ["B-PER", "O"])]


@pytest.mark.parametrize(
    "text, kwargs, pattern",
    [
        ("Anna B-PER\nsings\n", {}, r"line 2: expected a token and a tag, found 1 column: 'sings'"),
        ("Anna B-PER\n", dict(token_column=2, tag_column=2), r"cannot be the same column \(2\)"),
        ("Anna B-PER\n", dict(tag_column=5), r"line 1: --tag-column 5 does not exist .*2 columns"),
        ("Anna B-PER\n", dict(token_column=3), r"line 1: --token-column 3 does not exist"),
        ("Anna PERSON\n", {}, r"line 1: 'PERSON' is not a BIO tag"),
        ("Anna X-PER\n", {}, r"'X-PER' is not a BIO tag"),
        ("\n\n-DOCSTART- O\n\n", {}, r"no sentences"),
        ("Anna B-PER\n", dict(tag_column=0), r"column numbers start at 1"),
    ],
)
def test_parse_conll_errors(text, kwargs, pattern):
    with pytest.raises(CLIError, match=pattern):
        tag.parse_conll(text, "f.conll", **kwargs)


def test_tokenize_sentence_keeps_names_whole():
    assert tag.tokenize_sentence("Maria joined Rolls-Royce in St. Louis, didn't she?") == [
        "Maria",
        "joined",
        "Rolls-Royce",
        "in",
        "St",
        ".",
        "Louis",
        ",",
        "didn't",
        "she",
        "?",
    ]
    assert tag.tokenize_sentence("James O'Brien") == ["James", "O'Brien"]


def test_word_shapes():
    words = ["munich", "Munich", "BMW", "2019", "A4", ",", "O'Brien", "iPhone"]
    assert [tag.SHAPES[tag.word_shape(w)] for w in words] == [
        "lower",
        "Capitalised",
        "UPPER",
        "digits",
        "alphanumeric",
        "punctuation",
        "Capitalised",
        "other",
    ]


# --------------------------------------------------------------------------
# The built-in data
# --------------------------------------------------------------------------


def test_builtin_ner_sentences():
    train, test = datasets.load_ner()
    assert (len(train), len(test)) == (303, 147)
    for tokens, tags in train + test:
        assert len(tokens) == len(tags) > 0
        assert all(t == "O" or re.fullmatch(r"[BI]-(PER|LOC|ORG|DATE)", t) for t in tags)
        # BIO well formed: every I- continues an entity of its type.
        for prev, cur in zip(["O"] + tags, tags):
            if cur.startswith("I-"):
                assert prev[2:] == cur[2:], (tokens, tags)

    def names(sents):
        return [(k, " ".join(toks[a:b])) for toks, tags in sents for k, a, b in entity_spans(tags)]

    def counts(sents):
        return {
            k: sum(1 for kk, _ in names(sents) if kk == k) for k in ("PER", "LOC", "ORG", "DATE")
        }

    assert counts(train) == dict(PER=210, LOC=274, ORG=123, DATE=92)
    assert counts(test) == dict(PER=96, LOC=116, ORG=56, DATE=47)
    # The honesty of the held-out score: no person, place or organisation of
    # the held-out sentences is named in the training sentences.
    seen = {text for k, text in names(train) if k != "DATE"}
    unseen = {text for k, text in names(test) if k != "DATE"}
    assert not seen & unseen
    assert not {" ".join(t) for t, _ in train} & {" ".join(t) for t, _ in test}


def test_data_files_are_package_data():
    from importlib import resources

    root = resources.files("crnn.datasets")
    for name in ("ner_train.tsv", "ner_test.tsv", "en_de.tsv"):
        assert root.joinpath(name).is_file()


# --------------------------------------------------------------------------
# Model and training
# --------------------------------------------------------------------------


def test_baseline_is_the_most_frequent_tag():
    train = [
        (["Anna", "met", "him", "in", "Rome"], ["B-PER", "O", "O", "O", "B-LOC"]),
        (["Rome", "met", "Rome"], ["B-PER", "O", "B-LOC"]),
    ]
    # Rome: B-LOC twice, B-PER once; unknown words get O (the most frequent tag overall).
    assert tag.most_frequent_tags(train, [["Rome", "Anna", "Paris"]]) == [["B-LOC", "B-PER", "O"]]


def test_tagger_learns_unseen_names():
    train, test = datasets.load_ner()
    res = tag.train_tagger(train, epochs=25, seconds=None, seed=0)
    pred = res.model.predict([s for s, _ in test])
    s = entity_scores([t for _, t in test], pred)
    base = entity_scores(
        [t for _, t in test], tag.most_frequent_tags(train, [s_ for s_, _ in test])
    )
    assert base.f1 < 0.3
    assert s.f1 > 0.8 and s.f1 > base.f1 + 0.5, (s.f1, base.f1)
    assert res.loss < res.first_loss
    ents = res.model.entities("Pankaj lives in Munich")
    assert ents == [("PER", "Pankaj"), ("LOC", "Munich")]


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_tagger_other_cells_and_one_hot(cell, tmp_path):
    train, _ = datasets.load_ner()
    res = tag.train_tagger(
        train[:40],
        cell=cell,
        embedding_dim=0,
        hidden=8,
        epochs=2,
        seconds=None,
        char_features=True,
        seed=1,
    )
    m = res.model
    assert m.rnn.spec.name == cell and m.embed is None and m.suffix_vocab is not None
    path = tmp_path / "t.npz"
    crnn.save(m, path)
    m2 = crnn.load(path)
    assert isinstance(m2, tag.EntityTagger) and m2.tags == m.tags
    sents = [s for s, _ in train[40:50]]
    assert m2.predict(sents) == m.predict(sents)


def test_tagger_gradients_by_central_differences():
    train, _ = datasets.load_ner()
    res = tag.train_tagger(
        train[:6], hidden=3, embedding_dim=4, epochs=1, seconds=None, char_features=True, seed=2
    )
    m = tag.EntityTagger(
        res.model.vocab.itos[1:],
        res.model.tags,
        embedding_dim=4,
        hidden_size=3,
        suffixes=res.model.suffix_vocab.itos[1:],
        suffix_dim=2,
        dtype=np.float64,
        seed=3,
    )
    enc = m.encode([s for s, _ in train[:3]])
    T, B = enc["words"].shape
    y = np.random.default_rng(0).integers(0, len(m.tags), size=(T, B))
    mask = np.arange(T)[:, None] < enc["lengths"][None, :]

    def loss():
        logits = m(enc["words"], enc["shapes"], enc["lengths"], enc["suffixes"])
        return crnn.losses.softmax_cross_entropy(logits, y, mask=mask)

    m.zero_grad()
    _, d = loss()
    m.backward(d)
    names = ("suffix_embed.weight", "rnn.weight_ih_l0_reverse", "head.bias")
    params = {name: m.params[name] for name in names}
    grads = {name: m.grads[name] for name in names}
    word = int(enc["words"][0, 0])  # a row of the embedding that is used (views)
    params["embed.weight[word]"] = m.params["embed.weight"][word]
    grads["embed.weight[word]"] = m.grads["embed.weight"][word]
    report = crnn.gradcheck(
        lambda: loss()[0], params, grads, rtol=1e-5, atol=1e-9, max_checks_per_param=4, rng=1
    )
    assert report, str(report)


def test_format_entities():
    assert (
        tag.format_entities(["Anna", "met", "Tom", "Smith"], ["B-PER", "O", "B-PER", "I-PER"])
        == "[Anna PER] met [Tom Smith PER]"
    )


# --------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------


def test_tag_builtin_json_and_predict():
    proc = ok(
        run("tag", "--json", "--epochs", 2, "--hidden", 8, "--predict", "Pankaj lives in Munich")
    )
    out = json.loads(proc.stdout)
    for key in ("precision", "recall", "f1", "baseline", "per_type", "n_true", "n_pred"):
        assert key in out
    assert (out["n_train"], out["n_test"], out["n_true"]) == (303, 147, 315)
    assert 0 <= out["f1"] <= 1 and 0 <= out["baseline"]["f1"] <= 1
    assert (out["cell"], out["embedding_dim"], out["hidden"], out["epochs"]) == ("lstm", 50, 8, 2)
    (p,) = out["predictions"]
    assert p["tokens"] == ["Pankaj", "lives", "in", "Munich"] and len(p["tags"]) == 4


def test_tag_text_output_save_and_load(tmp_path):
    model = tmp_path / "ner.npz"
    proc = ok(
        run(
            "tag",
            "--epochs",
            2,
            "--hidden",
            8,
            "--cell",
            "gru",
            "--embedding-dim",
            8,
            "--save",
            model,
            "--predict",
            "Maria joined Siemens in Berlin",
        )
    )
    for text in (
        "held-out",
        "precision",
        "most-frequent tag",
        "bidirectional GRU 8",
        "predicted",
        "saved",
    ):
        assert text in proc.stdout, proc.stdout
    proc = ok(run("tag", "--load", model, "--json", "--predict", "Maria joined Siemens in Berlin"))
    out = json.loads(proc.stdout)
    assert out["cell"] == "gru" and out["predictions"][0]["tokens"][0] == "Maria"
    assert "f1" not in out  # nothing to score without data


def test_tag_conll_file(tmp_path):
    train, test = datasets.load_ner()
    f = tmp_path / "train.conll"
    f.write_text(
        "\n\n".join("\n".join(f"{w} X {t}" for w, t in zip(*s)) for s in train[:60]),
        encoding="utf-8",
    )
    g = tmp_path / "test.conll"
    g.write_text(
        "\n\n".join("\n".join(f"{w} X {t}" for w, t in zip(*s)) for s in test[:20]),
        encoding="utf-8",
    )
    out = json.loads(ok(run("tag", "--conll", f, "--json", "--epochs", 1, "--hidden", 4)).stdout)
    assert (out["n_train"], out["n_test"]) == (48, 12)  # --test-fraction 0.2
    out = json.loads(
        ok(
            run(
                "tag",
                "--conll",
                f,
                "--conll-test",
                g,
                "--json",
                "--epochs",
                1,
                "--hidden",
                4,
                "--cell",
                "rnn",
            )
        ).stdout
    )
    assert (out["n_train"], out["n_test"], out["cell"]) == (60, 20, "rnn")


@pytest.mark.parametrize(
    "setup, args, pattern",
    [
        (None, ["--conll", "{d}/missing.conll"], r"missing\.conll: no such file"),
        ("Anna B-PER\nsings O\n\nBob\n", ["--conll", "{f}"], r"line 4: expected a token and a tag"),
        ("Anna B-PER\nsings Q-VERB\n", ["--conll", "{f}"], r"line 2: 'Q-VERB' is not a BIO tag"),
        (
            "Anna B-PER\nsings O\n",
            ["--conll", "{f}", "--tag-column", "3"],
            r"line 1: --tag-column 3 does not exist",
        ),
        ("", ["--conll", "{f}"], r"the file is empty"),
        ("-DOCSTART- O\n\n", ["--conll", "{f}"], r"no sentences"),
        ("Anna O\n\nBob O\n", ["--conll", "{f}"], r"no entity"),
        ("Anna B-PER\n", ["--conll", "{f}"], r"only 1 sentence"),
        (None, ["--cell", "transformer"], r"unknown cell 'transformer'.*rnn, lstm, gru"),
        (None, ["--cell", "jordan"], r"Jordan cell cannot be used here.*rnn, lstm, gru"),
        (None, ["--conll-test", "{d}/x.conll"], r"--conll-test needs --conll"),
        (None, ["--load", "{d}/none.npz", "--predict", "x"], r"none\.npz: no such file"),
        (None, ["--save", "{d}/no/such/dir/m.npz"], r"does not exist"),
        (None, ["--epochs", "0"], r"expected an integer >= 1"),
        (None, ["--word-dropout", "1.5"], r"expected a number in \[0, 1\)"),
    ],
)
def test_tag_user_errors_exit_2(tmp_path, setup, args, pattern):
    f = tmp_path / "data.conll"
    if setup is not None:
        f.write_text(setup, encoding="utf-8")
    argv = [a.format(f=f, d=tmp_path) for a in args]
    user_error(run("tag", *argv, "--epochs" if "--epochs" not in argv else "--seed", 1), pattern)


def test_tag_load_rejects_other_models(tmp_path):
    path = tmp_path / "rnn.npz"
    crnn.save(crnn.RNN(2, 3), path)
    user_error(run("tag", "--load", path, "--predict", "x"), r"holds a RNN, not a tagger")


def test_tag_help_is_complete():
    proc = ok(run("tag", "--help"))
    for opt in (
        "--conll",
        "--conll-test",
        "--token-column",
        "--tag-column",
        "--cell",
        "--embedding-dim",
        "--hidden",
        "--epochs",
        "--seconds",
        "--seed",
        "--save",
        "--load",
        "--predict",
        "--json",
        "--char-features",
    ):
        assert opt in proc.stdout
