"""``crnn translate``: the TSV reader, the built-in pairs, the Translator and the command.

Commands run in a subprocess (``python -m crnn``) with a few epochs of a small
model; the learning check calls the app in-process with a fixed seed and no
time limit, so it is deterministic (a busy machine only makes it slower).
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
from crnn.apps import translate as tr
from crnn.apps.common import CLIError
from crnn.data import tokenize


def run(*args, timeout=240):
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


SMALL = ["--epochs", 2, "--hidden", 16, "--embedding-dim", 8]


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def test_load_tsv(tmp_path):
    f = tmp_path / "p.tsv"
    f.write_text("# a comment\nthe cat.\tdie Katze.\n\n  a dog \t ein Hund \n", encoding="utf-8")
    assert tr.load_tsv(str(f)) == [("the cat.", "die Katze."), ("a dog", "ein Hund")]


@pytest.mark.parametrize(
    "content, pattern",
    [
        ("the cat\tdie Katze\nno tab here\n", r"line 2: expected source<TAB>target, found no tab"),
        ("a\tb\tc\n", r"line 1: expected one tab .* found 2"),
        ("\tdie Katze\n", r"line 1: the source sentence is empty"),
        ("the cat\t  \n", r"line 1: the target sentence is empty"),
        ("# only a comment\n\n", r"no sentence pairs"),
        ("", r"the file is empty"),
    ],
)
def test_load_tsv_errors(tmp_path, content, pattern):
    f = tmp_path / "p.tsv"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(CLIError, match=pattern):
        tr.load_tsv(str(f))


def test_builtin_pairs():
    pairs = datasets.load_translation()
    assert len(pairs) == 639
    assert len({s for s, _ in pairs}) == 639 and len({t for _, t in pairs}) == 639
    for en, de in pairs:
        assert en.strip() == en and de.strip() == de and en and de
        assert en[-1] in ".?!" and de[-1] == en[-1], (en, de)
    src = {w for s, _ in pairs for w in tokenize(s)}
    tgt = {w for _, t in pairs for w in tokenize(t, lower=False)}
    assert (len(src), len(tgt)) == (342, 438)  # as crnn.datasets documents
    # A random held-out share is mostly made of words the training pairs have.
    a, b = tr._split(len(pairs), 0.15, 0)
    known = {w for i in a for w in tokenize(pairs[i][1], lower=False)}
    held = [w for i in b for w in tokenize(pairs[i][1], lower=False)]
    assert np.mean([w in known for w in held]) > 0.95


def test_split_is_seeded_and_disjoint():
    a, b = tr._split(100, 0.15, 3)
    assert len(b) == 15 and len(a) == 85 and not set(a) & set(b)
    a2, b2 = tr._split(100, 0.15, 3)
    assert (a == a2).all() and (b == b2).all()
    assert len(tr._split(2, 0.01, 0)[1]) == 1  # at least one held out, one kept


def test_copy_baseline():
    bleu, em = tr.copy_baseline([("Anna lives in Berlin.", "Anna wohnt in Berlin.")])
    assert em == 0.0 and bleu.matches[0] == 4  # Anna, in, Berlin, .
    bleu, em = tr.copy_baseline([("Berlin.", "Berlin.")])
    assert em == 1.0


def test_format_attention():
    w = np.array([[0.9, 0.1, 0.0], [0.02, 0.03, 0.95]])
    text = tr.format_attention(["the", "cat", "."], ["Die", "Katze"], w)
    lines = text.split("\n")
    assert lines[0].split() == ["the", "cat", "."]
    assert lines[1].split() == ["Die", "90", "10", "."]
    assert lines[2].split() == ["Katze", ".", ".", "95"]


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


def test_translator_learns_and_beats_copying():
    pairs = datasets.load_translation()
    a, b = tr._split(len(pairs), 0.15, 0)
    train, test = [pairs[i] for i in a], [pairs[i] for i in b]
    res = tr.train_translator(train, attention="additive", epochs=25, seconds=None, seed=0)
    bleu, em, hyps, atts = tr.evaluate(res.model, test)
    base, base_em = tr.copy_baseline(test)
    assert base.bleu < 0.05 and base_em == 0.0
    assert bleu.bleu > 0.25 and em > 0.1, (bleu.bleu, em)
    assert res.loss < 0.1 * res.first_loss
    # Alignments: one row per output word, one column per source word, rows sum to 1.
    for (src, _), h, att in zip(test[:5], hyps, atts):
        assert att.shape == (len(h), len(tokenize(src)))
        np.testing.assert_allclose(att.sum(axis=1), 1.0, rtol=1e-5)
    assert res.model.translate("The dog is sleeping.") == "Der Hund schläft."


@pytest.mark.parametrize(
    "cell, attention, emb", [("rnn", "dot", 8), ("gru", None, None), ("lstm", "general", 6)]
)
def test_translator_save_load_and_beam(tmp_path, cell, attention, emb):
    pairs = datasets.load_translation()[:40]
    res = tr.train_translator(
        pairs,
        cell=cell,
        attention=attention,
        embedding_dim=emb,
        hidden=12,
        epochs=2,
        seconds=None,
        seed=1,
    )
    m = res.model
    assert m.encoder.spec.name == cell and m.attention == attention and m.embedding_dim == emb
    path = tmp_path / "mt.npz"
    crnn.save(m, path)
    m2 = crnn.load(path)
    assert isinstance(m2, tr.Translator)
    assert (m2.src_vocab, m2.tgt_vocab) == (m.src_vocab, m.tgt_vocab)
    srcs = [m.source_tokens(s) for s, _ in pairs[:6]]
    for beam in (1, 3):
        got = m2.translate_tokens(srcs, beam=beam)
        want = m.translate_tokens(srcs, beam=beam)
        assert [w for w, _ in got] == [w for w, _ in want]
        longest = max(len(s) for s in srcs)  # the batch's limit: twice the longest + 10
        assert all(len(w) <= 2 * longest + 10 for w, _ in got)
        assert all((a is None) == (attention is None) for _, a in got)


# --------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------


def test_translate_builtin_json():
    out = json.loads(
        ok(run("translate", "--json", *SMALL, "--predict", "The cat is tired.")).stdout
    )
    for key in (
        "bleu",
        "exact_match",
        "baseline",
        "bleu_details",
        "n_train",
        "n_test",
        "predictions",
        "cell",
        "attention",
        "embedding_dim",
    ):
        assert key in out
    assert (out["n_train"], out["n_test"]) == (543, 96)
    assert 0 <= out["bleu"] <= 100 and 0 <= out["exact_match"] <= 1
    assert out["baseline"]["exact_match"] == 0.0 and out["baseline"]["bleu"] < 5
    assert (out["cell"], out["attention"], out["embedding_dim"]) == ("lstm", "additive", 8)
    assert out["bleu_details"]["smooth"] == "exp" and len(out["bleu_details"]["precisions"]) == 4
    (p,) = out["predictions"]
    assert isinstance(p["translation"], str) and len(p["attention"]) == len(p["tokens"])


def test_translate_text_attention_beam_save_load(tmp_path):
    model = tmp_path / "mt.npz"
    proc = ok(
        run(
            "translate",
            *SMALL,
            "--attention",
            "general",
            "--cell",
            "gru",
            "--beam",
            3,
            "--save",
            model,
            "--predict",
            "The dog is hungry.",
            "--show-attention",
        )
    )
    for text in (
        "held-out",
        "BLEU",
        "copy the source",
        "beam search (K = 3)",
        "predicted",
        "attention of",
        "saved",
        "GRU 16 encoder",
    ):
        assert text in proc.stdout, proc.stdout
    # The matrix: a header of the source words.
    assert re.search(r"^\s+the\s+dog\s+is\s+hungry\s+\.$", proc.stdout, re.M), proc.stdout
    out = json.loads(
        ok(run("translate", "--load", model, "--json", "--predict", "Where is the station?")).stdout
    )
    assert out["cell"] == "gru" and out["attention"] == "general" and "bleu" not in out


def test_translate_tsv_and_no_attention(tmp_path):
    f = tmp_path / "pairs.tsv"
    pairs = datasets.load_translation()[:50]
    f.write_text("\n".join(f"{a}\t{b}" for a, b in pairs), encoding="utf-8")
    out = json.loads(
        ok(
            run(
                "translate",
                "--tsv",
                f,
                "--json",
                *SMALL,
                "--attention",
                "none",
                "--test-fraction",
                0.2,
            )
        ).stdout
    )
    assert (out["n_train"], out["n_test"], out["attention"]) == (40, 10, None)
    proc = ok(
        run(
            "translate",
            "--tsv",
            f,
            *SMALL,
            "--attention",
            "none",
            "--show-attention",
            "--predict",
            "the cat",
        )
    )
    assert "has no attention" in proc.stdout


def test_translate_plot(tmp_path):
    path = tmp_path / "a.png"
    proc = run(
        "translate", *SMALL, "--predict", "The cat is tired.", "--show-attention", "--plot", path
    )
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        user_error(proc, r"--plot needs matplotlib")
    else:
        ok(proc)
        assert path.is_file() and path.stat().st_size > 0


@pytest.mark.parametrize(
    "setup, args, pattern",
    [
        (None, ["--tsv", "{d}/missing.tsv"], r"missing\.tsv: no such file"),
        (
            "the cat\tdie Katze\nbroken line\n",
            ["--tsv", "{f}"],
            r"line 2: expected source<TAB>target",
        ),
        (
            "the cat\tdie Katze\tle chat\n",
            ["--tsv", "{f}"],
            r"line 1: expected one tab \(source<TAB>target\), found 2",
        ),
        ("", ["--tsv", "{f}"], r"the file is empty"),
        (" \n\n", ["--tsv", "{f}"], r"holds only whitespace"),
        ("# nothing\n", ["--tsv", "{f}"], r"no sentence pairs"),
        ("the cat\tdie Katze\n", ["--tsv", "{f}"], r"only 1 pair"),
        (None, ["--cell", "transformer"], r"unknown cell 'transformer'.*rnn, lstm, gru"),
        (
            None,
            ["--attention", "multihead"],
            r"unknown attention 'multihead'.*dot, general, additive",
        ),
        (None, ["--beam", "0"], r"expected an integer >= 1"),
        (None, ["--load", "{d}/none.npz", "--predict", "x"], r"none\.npz: no such file"),
        (None, ["--save", "{d}/no/dir/m.npz"], r"does not exist"),
    ],
)
def test_translate_user_errors_exit_2(tmp_path, setup, args, pattern):
    f = tmp_path / "data.tsv"
    if setup is not None:
        f.write_text(setup, encoding="utf-8")
    user_error(run("translate", *[a.format(f=f, d=tmp_path) for a in args], "--epochs", 1), pattern)


def test_translate_load_rejects_other_models(tmp_path):
    path = tmp_path / "rnn.npz"
    crnn.save(crnn.RNN(2, 3), path)
    user_error(run("translate", "--load", path, "--predict", "x"), r"holds a RNN")


def test_translate_help_is_complete():
    proc = ok(run("translate", "--help"))
    for opt in (
        "--tsv",
        "--test-fraction",
        "--cell",
        "--embedding-dim",
        "--attention",
        "--hidden",
        "--epochs",
        "--seconds",
        "--seed",
        "--beam",
        "--predict",
        "--show-attention",
        "--plot",
        "--save",
        "--load",
        "--json",
    ):
        assert opt in proc.stdout
