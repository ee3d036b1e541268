"""``crnn classify``: many-to-one sequence classification of short texts.

A sentence is a sequence of words; a `crnn.models.SequenceClassifier` reads
their one-hot vectors (RNN -> the state after the last word -> Linear ->
class scores) and is trained with softmax cross-entropy. What it reports is
the accuracy on held-out sentences it never saw, next to the majority
baseline (always answer the most common training class).

How (`classify`):

1. Split: a share of the data (``test_fraction``, 25%) is held out for
   testing, and a share of the rest (``val_fraction``, 15%) for validation.
   Sentences with the same group stay together (the built-in data pairs each
   sentence with its opposite on the same subject); otherwise the split is
   stratified by class. The split depends only on the seed.
2. Words: `crnn.data.WordVocab` built from the training sentences only
   (lower-cased; the `max_vocab` most frequent words); any other word maps
   to the unknown id 0. Sentences longer than `max_len` words are cut.
3. Training: Adam on mini-batches, from a fixed seed. During training each
   word is replaced by the unknown id with probability `word_dropout`, so
   the network cannot lean on a single word it memorised. After every epoch
   the validation accuracy is measured and the best epoch is kept.
4. Restarts: a small RNN on a few hundred sentences either finds the
   sentiment words or memorises the training set, depending on its
   initialisation. So `restarts` networks are trained from different seeds
   and the one with the best validation accuracy is kept; only then is it
   scored on the test sentences.

Without ``--tsv`` the data are the 300 built-in sentences of
`crnn.datasets.load_sentiment` (short reviews, positive or negative, written
for crnn). A ``--tsv`` file holds one example per line, ``text<TAB>label``
(UTF-8; blank lines and lines starting with ``#`` are skipped; a first line
``text<TAB>label`` is a header). Labels may be any strings: the classes are
the distinct labels.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import datasets
from ..data import WordVocab, pad_batch
from ..losses import softmax_cross_entropy
from ..models import SequenceClassifier, one_hot
from ..optim import Adam
from .common import (CLIError, Progress, fraction, one_blas_thread, positive_float, positive_int,
                     read_text)

__all__ = ["register", "classify", "ClassifyResult", "load_tsv", "split_indices", "handler"]

DEFAULTS = dict(hidden=16, epochs=80, lr=1e-3, batch_size=16, restarts=5, word_dropout=0.2,
                test_fraction=0.25, val_fraction=0.15, max_vocab=5000, max_len=50, seed=0,
                seconds=30.0)


class DataError(ValueError):
    """The labelled data cannot be split into training and test parts."""


@dataclass
class ClassifyResult:
    """What `classify` measured (accuracies are fractions in [0, 1])."""

    classes: List[str]
    n_train: int
    n_val: int
    n_test: int
    vocab_size: int
    accuracy: float
    baseline_accuracy: float
    val_accuracy: float
    train_accuracy: float
    epochs: int
    best_epoch: int
    restart: int
    seconds: float
    stopped_early: bool
    test_index: np.ndarray = field(repr=False)
    test_pred: np.ndarray = field(repr=False)
    test_true: np.ndarray = field(repr=False)
    model: Any = field(repr=False, default=None)
    vocab: Any = field(repr=False, default=None)
    max_len: int = 50

    def summary(self) -> Dict[str, Any]:
        return dict(accuracy=self.accuracy, baseline_accuracy=self.baseline_accuracy,
                    val_accuracy=self.val_accuracy, train_accuracy=self.train_accuracy,
                    classes=list(self.classes), n_train=self.n_train, n_val=self.n_val,
                    n_test=self.n_test, vocab_size=self.vocab_size, epochs=self.epochs,
                    best_epoch=self.best_epoch, restart=self.restart,
                    stopped_early=self.stopped_early, seconds=round(self.seconds, 3))

    def predict(self, texts: Sequence[str]) -> List[str]:
        """The predicted class of each text (with the kept model)."""
        ids = [self.vocab.encode(t)[:self.max_len] for t in texts]
        pred = _predict(self.model, ids, len(self.vocab))
        return [self.classes[i] for i in pred]


# --------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------

def split_indices(labels: np.ndarray, groups: Optional[np.ndarray], fraction: float,
                  rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """(keep, held_out) index arrays, sorted; about `fraction` held out.

    With groups that hold more than one item, whole groups are held out;
    otherwise each class contributes ``round(n_class * fraction)`` items
    (at least one when it has two or more).
    """
    n = labels.size
    if groups is not None and np.unique(groups).size < n:
        uniq = rng.permutation(np.unique(groups))
        held: List[int] = []
        for g in uniq:
            if len(held) >= round(n * fraction):
                break
            held.extend(np.flatnonzero(groups == g).tolist())
        out = np.array(sorted(held), dtype=np.int64)
    else:
        parts = []
        for c in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == c))
            k = int(round(idx.size * fraction))
            if k == 0 and idx.size >= 2:
                k = 1
            parts.append(idx[:k])
        out = np.sort(np.concatenate(parts)).astype(np.int64)
    keep = np.setdiff1d(np.arange(n, dtype=np.int64), out)
    return keep, out


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------

def _predict(model: SequenceClassifier, seqs: Sequence[np.ndarray], V: int,
             batch: int = 256) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(seqs), batch):
        part = [s if s.size else np.zeros(1, np.int64) for s in seqs[i:i + batch]]
        x, lengths = pad_batch(part, dtype=np.int64)
        out.append(model.predict(one_hot(x, V), lengths=lengths))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def classify(texts: Sequence[str], labels: Sequence[Any], groups: Optional[Sequence[int]] = None,
             *, hidden: int = 16, epochs: int = 80, lr: float = 1e-3, batch_size: int = 16,
             restarts: int = 5, word_dropout: float = 0.2, test_fraction: float = 0.25,
             val_fraction: float = 0.15, max_vocab: int = 5000, max_len: int = 50, seed: int = 0,
             seconds: Optional[float] = 30.0,
             on_epoch: Optional[Callable[[int, int, float], None]] = None) -> ClassifyResult:
    """Train a many-to-one RNN text classifier and score it on held-out texts.

    Parameters
    ----------
    texts : sequence of str
    labels : sequence of labels (any hashable, printed with str)
    groups : sequence of ints or None
        Items of one group are never split between train, validation and
        test.
    hidden, epochs, lr, batch_size
        Hidden units; passes over the training data per restart; Adam's
        learning rate; sentences per step.
    restarts : int
        Networks trained from different seeds; the best on validation is kept.
    word_dropout : float in [0, 1)
        Probability of hiding a word (as unknown) during training.
    test_fraction, val_fraction : float in (0, 1)
    max_vocab, max_len : int
    seed : int
        Seeds the split, the initialisations and the shuffling.
    seconds : float or None
        Time budget for all the training (split evenly between restarts);
        None for none. Results are deterministic unless it cuts training.
    on_epoch : callable(restart, epoch, loss) or None

    Returns
    -------
    ClassifyResult

    Raises
    ------
    DataError
        Fewer than two classes, or too few examples to hold any out.
    """
    texts = list(texts)
    labs = [str(v) for v in labels]
    if len(texts) != len(labs):
        raise ValueError(f"{len(texts)} texts but {len(labs)} labels")
    classes = sorted(set(labs), key=lambda s: (not _is_int(s), int(s) if _is_int(s) else 0, s))
    if len(classes) < 2:
        raise DataError(f"need at least two classes, found only {classes!r}")
    y = np.array([classes.index(v) for v in labs], dtype=np.int64)
    g = None if groups is None else np.asarray(groups, dtype=np.int64)
    rng = np.random.default_rng(seed)
    rest, test = split_indices(y, g, test_fraction, rng)
    train, val = split_indices(y[rest], None if g is None else g[rest], val_fraction, rng)
    train, val = rest[train], rest[val]
    if test.size == 0 or val.size == 0 or train.size == 0:
        raise DataError(f"too few examples ({len(texts)}) to hold out test and validation "
                        f"sentences; give at least 10")
    if np.unique(y[train]).size < 2:
        raise DataError("the training part holds a single class; give more examples of each")

    vocab = WordVocab.from_texts([texts[i] for i in train], max_size=max_vocab)
    V = len(vocab)
    seqs = [vocab.encode(t)[:max_len] for t in texts]
    C = len(classes)
    n_train = train.size

    counts = np.bincount(y[train], minlength=C)
    majority = int(np.argmax(counts))
    baseline = float(np.mean(y[test] == majority))

    t0 = time.perf_counter()
    budget = None if seconds is None else seconds / restarts
    best: Optional[Tuple[float, int, int, Dict[str, np.ndarray]]] = None
    stopped_early = False
    done_epochs = 0
    seeds = np.random.SeedSequence(seed).generate_state(restarts)
    for r in range(restarts):
        m = SequenceClassifier(V, hidden, C, dtype=np.float32, seed=int(seeds[r]))
        opt = Adam(m.params, lr=lr, clip_grad_norm=5.0)
        r_rng = np.random.default_rng(int(seeds[r]) + 1)
        t_r = time.perf_counter()
        for epoch in range(1, epochs + 1):
            m.train()
            order = r_rng.permutation(n_train)
            total = 0.0
            for i in range(0, n_train, batch_size):
                rows = train[order[i:i + batch_size]]
                part = [seqs[j] if seqs[j].size else np.zeros(1, np.int64) for j in rows]
                x, lengths = pad_batch(part, dtype=np.int64)
                if word_dropout > 0:
                    x = np.where(r_rng.random(x.shape) < word_dropout, 0, x)
                m.zero_grad()
                logits = m(one_hot(x, V), lengths=lengths)
                loss, dlogits = softmax_cross_entropy(logits, y[rows])
                m.backward(dlogits)
                opt.step(m.grads)
                total += float(loss) * rows.size
            val_acc = float(np.mean(_predict(m, [seqs[j] for j in val], V) == y[val]))
            # Ties go to the earlier epoch and restart (fewer steps, less memorised).
            if best is None or val_acc > best[0]:
                best = (val_acc, r, epoch, {k: v.copy() for k, v in m.params.items()})
            if on_epoch is not None:
                on_epoch(r, epoch, total / n_train)
            done_epochs = epoch
            if budget is not None and time.perf_counter() - t_r > budget and epoch < epochs:
                stopped_early = True
                break
    assert best is not None
    val_acc, best_r, best_epoch, state = best
    final = SequenceClassifier(V, hidden, C, dtype=np.float32, seed=0)
    for k, v in state.items():
        final.params[k][...] = v
    pred = _predict(final, [seqs[j] for j in test], V)
    train_acc = float(np.mean(_predict(final, [seqs[j] for j in train], V) == y[train]))
    return ClassifyResult(
        classes=classes, n_train=int(n_train), n_val=int(val.size), n_test=int(test.size),
        vocab_size=V, accuracy=float(np.mean(pred == y[test])), baseline_accuracy=baseline,
        val_accuracy=val_acc, train_accuracy=train_acc, epochs=done_epochs, best_epoch=best_epoch,
        restart=best_r, seconds=time.perf_counter() - t0, stopped_early=stopped_early,
        test_index=test, test_pred=pred, test_true=y[test], model=final, vocab=vocab,
        max_len=max_len)


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------
# TSV input
# --------------------------------------------------------------------------

def load_tsv(path: str, encoding: str = "utf-8") -> Tuple[List[str], List[str]]:
    """Read ``text<TAB>label`` lines; a CLIError says what is wrong (with the line)."""
    text = read_text(path, encoding=encoding, what="TSV file")
    texts: List[str] = []
    labels: List[str] = []
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "\t" not in line:
            raise CLIError(f"{path}, line {n}: expected text<TAB>label, found no tab")
        sentence, label = line.rsplit("\t", 1)
        sentence, label = sentence.strip(), label.strip()
        if not texts and sentence.lower() == "text" and label.lower() == "label":
            continue  # header
        if not sentence:
            raise CLIError(f"{path}, line {n}: the text is empty")
        if not label:
            raise CLIError(f"{path}, line {n}: the label is empty")
        texts.append(sentence)
        labels.append(label)
    if not texts:
        raise CLIError(f"{path}: no examples (expected lines of text<TAB>label)")
    return texts, labels


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def _probability(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {s!r}") from None
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {s!r}")
    return v


def register(subparsers: Any) -> None:
    """Add ``crnn classify`` to an argparse subparsers object."""
    d = DEFAULTS
    p = subparsers.add_parser(
        "classify",
        help="classify short texts (sentiment) with a many-to-one RNN; held-out accuracy",
        description=(
            "Train a many-to-one RNN (one-hot words -> RNN -> last state -> linear) to classify "
            "short texts, and report its accuracy on held-out texts next to the majority "
            "baseline. Without --tsv the data are 300 built-in review sentences, positive or "
            "negative (crnn.datasets.load_sentiment)."),
    )
    p.add_argument("--tsv", metavar="FILE",
                   help="labelled data, one text<TAB>label per line (default: built-in "
                        "sentiment sentences)")
    p.add_argument("--encoding", default="utf-8", help="text encoding of the TSV file")
    p.add_argument("--hidden", type=positive_int, default=d["hidden"], metavar="H",
                   help=f"hidden units (default {d['hidden']})")
    p.add_argument("--epochs", type=positive_int, default=d["epochs"],
                   help=f"passes over the training texts, per restart (default {d['epochs']})")
    p.add_argument("--restarts", type=positive_int, default=d["restarts"],
                   help=f"networks trained from different seeds; the best on the validation "
                        f"texts is kept (default {d['restarts']})")
    p.add_argument("--lr", type=positive_float, default=d["lr"],
                   help=f"Adam learning rate (default {d['lr']:g})")
    p.add_argument("--word-dropout", type=_probability, default=d["word_dropout"], metavar="P",
                   help=f"chance of hiding each word during training (default {d['word_dropout']})")
    p.add_argument("--test-fraction", type=fraction, default=d["test_fraction"], metavar="F",
                   help=f"share of the texts held out for testing (default {d['test_fraction']})")
    p.add_argument("--seconds", type=positive_float, default=d["seconds"],
                   help=f"time budget for training (default {d['seconds']:g})")
    p.add_argument("--seed", type=int, default=d["seed"], help="random seed (default 0)")
    p.add_argument("--predict", action="append", metavar="TEXT", default=[],
                   help="also classify this text with the trained model (repeatable)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (accuracy, baseline_accuracy, ...) instead of text")
    p.set_defaults(func=handler)


@one_blas_thread
def handler(args: argparse.Namespace) -> int:
    """Run ``crnn classify``; returns the exit status (0)."""
    if args.tsv is not None:
        texts, labels = load_tsv(args.tsv, args.encoding)
        groups = None
        name = args.tsv
    else:
        data = datasets.load_sentiment()
        names = {0: "negative", 1: "positive"}
        texts, labels, groups = data.texts, [names[int(v)] for v in data.labels], data.groups
        name = "built-in sentiment sentences"
    total = args.restarts * args.epochs
    try:
        with Progress(total, desc="training", unit="epochs") as bar:
            def on_epoch(restart: int, epoch: int, loss: float) -> None:
                bar.update(1, status=f"restart {restart + 1}/{args.restarts} loss {loss:.3f}")

            result = classify(texts, labels, groups, hidden=args.hidden, epochs=args.epochs,
                              lr=args.lr, restarts=args.restarts, word_dropout=args.word_dropout,
                              test_fraction=args.test_fraction, seed=args.seed,
                              seconds=args.seconds, on_epoch=on_epoch)
    except DataError as e:
        raise CLIError(f"{name}: {e}") from None

    predictions = result.predict(args.predict) if args.predict else []
    if args.json:
        out = dict(data=name, **result.summary(), hidden=args.hidden, seed=args.seed)
        if args.predict:
            out["predictions"] = [dict(text=t, label=p) for t, p in zip(args.predict, predictions)]
        print(json.dumps(out))
        return 0

    lines = [
        f"data: {name} ({len(texts)} texts, classes {', '.join(result.classes)})",
        f"split: {result.n_train} train, {result.n_val} validation, {result.n_test} test; "
        f"vocabulary {result.vocab_size} words (from the training texts)",
        f"training: {args.restarts} restart(s) x {result.epochs} epochs in "
        f"{result.seconds:.1f} s{' (stopped by --seconds)' if result.stopped_early else ''}; "
        f"kept restart {result.restart + 1}, epoch {result.best_epoch} "
        f"(validation accuracy {result.val_accuracy:.1%})",
        f"test accuracy:     {result.accuracy:.1%}  ({int(round(result.accuracy * result.n_test))}"
        f"/{result.n_test})",
        f"majority baseline: {result.baseline_accuracy:.1%}",
    ]
    shown = 0
    for i, p, t in zip(result.test_index, result.test_pred, result.test_true):
        if shown == 4:
            break
        mark = "ok   " if p == t else "WRONG"
        lines.append(f"  {mark} {result.classes[p]:>8}  {texts[i]}")
        shown += 1
    for t, p in zip(args.predict, predictions):
        lines.append(f"predicted {p}: {t}")
    print("\n".join(lines))
    return 0
