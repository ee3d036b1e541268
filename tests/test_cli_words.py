"""Word-level language models (``crnn train-text --words``, ``crnn sample`` of a
word model) and ``--cell`` / ``--embedding-dim`` on ``crnn demo`` and
``crnn train-text``.

Commands run in a subprocess (``python -m crnn``) with budgets in epochs, so a
busy machine only makes a test slower, never different.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import crnn
from crnn.apps import text as text_app
from crnn.apps.metrics import unigram_perplexity

# A text whose next word is mostly predictable from the previous ones.
SENTENCES = [
    "the cat sat on the mat .",
    "the dog sat on the log .",
    "a cat ate the fish .",
    "a dog ate the bone .",
    "the bird sang in the tree .",
]
TEXT = " ".join(SENTENCES[i % 5] for i in range(0, 400, 3)) + "\n"


def run(*args, cwd=None, timeout=180):
    # One thread: tiny models, where threads only add overhead (results are
    # bitwise the same for any thread count).
    env = dict(os.environ, CRNN_PROGRESS="plain", OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "crnn", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
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


@pytest.fixture(scope="module")
def word_model(tmp_path_factory):
    """`crnn train-text --words` on TEXT (deterministic: epochs, seed)."""
    d = tmp_path_factory.mktemp("words")
    f = d / "pets.txt"
    f.write_text(TEXT, encoding="utf-8")
    path = d / "pets.npz"
    proc = ok(
        run(
            "train-text",
            f,
            "--words",
            "--out",
            path,
            "--hidden",
            32,
            "--embedding-dim",
            16,
            "--seq-len",
            10,
            "--batch-size",
            8,
            "--epochs",
            40,
            "--seed",
            0,
            "--min-count",
            1,
            "--json",
        )
    )
    return path, json.loads(proc.stdout)


# --------------------------------------------------------------------------
# Training and the perplexity report
# --------------------------------------------------------------------------


def test_train_text_words_json(word_model):
    path, out = word_model
    for key in (
        "perplexity",
        "unigram_perplexity",
        "n_heldout",
        "unk_rate",
        "loss",
        "cell",
        "vocab_size",
        "embedding_dim",
    ):
        assert key in out
    assert out["words"] is True and out["cell"] == "lstm" and out["embedding_dim"] == 16
    assert out["vocab_size"] == 1 + len(set(TEXT.split()))  # <unk> + every word (min count 1)
    # The text is predictable from context: far below the unigram baseline.
    assert out["perplexity"] < 0.5 * out["unigram_perplexity"], out
    assert out["loss"] < out["first_loss"]
    model = crnn.load(path)  # readable after a plain import of crnn (and crnn.apps.text)
    assert isinstance(model, text_app.WordModel)
    assert model.rnn.spec.name == "lstm" and model.embed.embedding_dim == 16


def test_train_text_words_text_output(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text(TEXT, encoding="utf-8")
    proc = ok(
        run(
            "train-text",
            f,
            "--words",
            "--out",
            tmp_path / "m.npz",
            "--hidden",
            8,
            "--epochs",
            1,
            "--sample-length",
            5,
            "--cell",
            "gru",
            "--embedding-dim",
            0,
        )
    )
    for text in (
        "vocabulary",
        "held out",
        "WordModel: one-hot",
        "GRU 8",
        "perplexity",
        "unigram baseline",
        "nats/word",
        "saved",
    ):
        assert text in proc.stdout, proc.stdout
    # The progress bar counts words, not characters.
    assert "words/s" in proc.stderr and "chars/s" not in proc.stderr, proc.stderr


def test_sample_words_and_complete(word_model):
    path, _ = word_model
    proc = ok(
        run(
            "sample",
            path,
            "--prime",
            "the cat sat on the",
            "--length",
            4,
            "--temperature",
            0,
            "--seed",
            0,
        )
    )
    # 4 tokens: "mat", ".", then the sentence that follows it in TEXT.
    assert proc.stdout.strip() == "the cat sat on the mat. a dog"
    proc = ok(
        run("sample", path, "--prime", "the dog sat on the", "--complete", "--temperature", 0)
    )
    first, *suggestions = proc.stdout.rstrip("\n").split("\n")
    words = [s.split()[0] for s in suggestions]
    probs = [float(s.split()[1].rstrip("%")) for s in suggestions]
    # The next word, then the 5 likeliest with their probabilities: what sits
    # on something in TEXT ("mat", "log") first.
    assert first == f"the dog sat on the {words[0]}"
    assert len(words) == 5 and set(words[:2]) == {"mat", "log"}
    assert probs == sorted(probs, reverse=True) and sum(probs[:2]) > 75
    assert "<unk>" not in words
    proc = ok(
        run(
            "sample",
            path,
            "--prime",
            "a cat",
            "--complete",
            "line",
            "--temperature",
            0,
            "--length",
            30,
        )
    )
    assert proc.stdout.strip().endswith(".") and proc.stdout.startswith("a cat ")
    proc = ok(run("sample", path, "--prime", "the zebra sat", "--length", 2, "--seed", 1))
    assert "zebra" in proc.stderr and "<unk>" in proc.stderr  # told, then read as unknown


def test_word_model_api(word_model):
    path, _ = word_model
    m = text_app.load_model(str(path))
    assert isinstance(m, text_app.WordModel)
    ids = m.encode("The cat sat.")
    assert m.decode(ids) == "the cat sat."
    nxt = m.next_words("the bird sang in the", k=3)
    assert nxt[0][0] == "tree" and 0.5 < nxt[0][1] <= 1 and len(nxt) == 3
    assert sum(p for _, p in m.next_words("the", k=len(m.vocab))) == pytest.approx(
        1 - float(np.exp(crnn.losses.log_softmax(m(m.encode("the")[:, None])[0][-1, 0]))[0]),
        rel=1e-4,
    )


def test_evaluate_perplexity_by_hand():
    m = text_app.WordModel(["a", "b", "c"], 4, embedding_dim=3, seed=0, dtype=np.float64)
    ids = np.array([1, 2, 3, 1, 2, 3, 1, 2, 3, 1], dtype=np.int64)
    total, n, targets = text_app.evaluate_perplexity(m, ids, seq_len=3, batch_size=2)
    # Two streams of 5 ids, 4 predictions each; the state runs on across windows.
    streams = crnn.data.streams(ids, 2)
    assert n == 8 and (targets == streams[1:].reshape(-1)).all()
    logits, _ = m(streams[:-1])
    lp = crnn.losses.log_softmax(logits)
    expect = -np.take_along_axis(lp, streams[1:, :, None], axis=-1).sum()
    assert total == pytest.approx(float(expect), rel=1e-10)
    # The unigram baseline on the same targets: add-one counts of [1, 2, 3] in V = 4.
    assert unigram_perplexity([1, 2, 3], targets, 4) == pytest.approx(
        math.exp(-np.mean(np.log(np.array([2 / 7] * 8))))
    )


@pytest.mark.parametrize(
    "tokens, text",
    [
        (["the", "cat", "sat", "."], "the cat sat."),
        (["hello", ",", "world", "!"], "hello, world!"),
        (["f", "(", "x", ")", ":"], "f (x):"),
        (["it", "'s", "fine"], "it's fine"),
        ([], ""),
    ],
)
def test_detokenize(tokens, text):
    assert text_app.detokenize(tokens) == text


# --------------------------------------------------------------------------
# --cell and --embedding-dim on the character-level commands
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_train_text_cell_and_embedding(tmp_path, cell):
    f = tmp_path / "t.txt"
    f.write_text("the cat sat on the mat. " * 20, encoding="utf-8")
    path = tmp_path / "c.npz"
    out = json.loads(
        ok(
            run(
                "train-text",
                f,
                "--out",
                path,
                "--cell",
                cell,
                "--embedding-dim",
                8,
                "--hidden",
                16,
                "--epochs",
                2,
                "--seq-len",
                10,
                "--batch-size",
                4,
                "--json",
            )
        ).stdout
    )
    assert out["words"] is False and out["cell"] == cell and out["embedding_dim"] == 8
    assert "perplexity" not in out
    m = crnn.load(path)
    assert isinstance(m, crnn.models.CharModel) and m.rnn.spec.name == cell
    assert m.embed.embedding_dim == 8
    proc = ok(run("sample", path, "--prime", "the c", "--complete", "--seed", 0))
    assert proc.stdout.startswith("the c")


def test_train_text_default_cell_is_rnn_for_characters(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("abcabcabc " * 30, encoding="utf-8")
    out = json.loads(
        ok(
            run(
                "train-text", f, "--out", tmp_path / "m.npz", "--hidden", 8, "--epochs", 1, "--json"
            )
        ).stdout
    )
    assert out["cell"] == "rnn" and out["embedding_dim"] is None


def test_demo_cell(tmp_path):
    proc = ok(
        run(
            "demo",
            "--seconds",
            1,
            "--hidden",
            16,
            "--length",
            20,
            "--cell",
            "gru",
            "--embedding-dim",
            8,
            "--out",
            tmp_path / "d.npz",
            timeout=300,
        )
    )
    assert "CharRNN: embedding" in proc.stdout and "GRU 16" in proc.stdout
    m = crnn.load(tmp_path / "d.npz")
    assert m.rnn.spec.name == "gru"


@pytest.mark.parametrize(
    "command", [["demo"], ["train-text", "{f}"], ["train-text", "{f}", "--words"]]
)
def test_unknown_cell_exits_2(tmp_path, command):
    f = tmp_path / "t.txt"
    f.write_text("a b c a b c\n", encoding="utf-8")
    argv = [a.format(f=f) for a in command]
    user_error(run(*argv, "--cell", "transformer"), r"unknown cell 'transformer'.*rnn, lstm, gru")
    user_error(run(*argv, "--cell", "jordan"), r"Jordan cell cannot be used here")


@pytest.mark.parametrize(
    "content, args, pattern",
    [
        ("one two\n", ["--words"], r"too few to hold"),
        ("a b c d e f g h i j k l m n o p q r s t\n", ["--words"], r"no word occurs 2 times"),
        ("the cat sat on the mat " * 5, ["--min-count", "3"], r"apply to --words only"),
        (
            "the cat sat on the mat " * 5,
            ["--words", "--valid-fraction", "1.5"],
            r"expected a number between 0 and 1",
        ),
    ],
)
def test_word_model_user_errors(tmp_path, content, args, pattern):
    f = tmp_path / "t.txt"
    f.write_text(content, encoding="utf-8")
    user_error(run("train-text", f, "--out", tmp_path / "m.npz", "--epochs", 1, *args), pattern)


@pytest.mark.parametrize(
    "content, pattern",
    [
        (None, r"missing\.txt: no such file"),
        (b"", r"the file is empty"),
        (b"  \n\n", r"holds only whitespace"),
        (b"caf\xe9\n", r"cannot decode it as utf-8"),
    ],
)
def test_word_model_file_errors(tmp_path, content, pattern):
    f = tmp_path / "missing.txt"
    if content is not None:
        f.write_bytes(content)
    user_error(run("train-text", f, "--words", "--epochs", 1), pattern)


def test_sample_rejects_other_models(tmp_path):
    path = tmp_path / "rnn.npz"
    crnn.save(crnn.RNN(2, 3), path)
    user_error(run("sample", path), r"not a character model or a word model")
