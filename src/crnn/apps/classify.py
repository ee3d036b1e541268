"""``crnn classify``: many-to-one sequence classification of short texts.

A sentence is a sequence of words; a `crnn.models.SequenceClassifier` reads
their one-hot vectors, or with ``embedding_dim`` learned word vectors
(`crnn.Embedding`), (recurrent layer -> the state after the last word ->
Linear -> class scores) and is trained with softmax cross-entropy. What it
reports is the accuracy on held-out sentences it never saw, next to the
majority baseline (always answer the most common training class).

How (`classify`):

1. Split: a share of the data (``test_fraction``, 25%) is held out for
   testing; it is never used to choose anything. Sentences with the same
   group stay together (the built-in data pairs each sentence with its
   opposite on the same subject); otherwise the split is stratified by
   class. The split depends only on the seed.
2. Words: `crnn.data.WordVocab` built from the training sentences only
   (lower-cased; the `max_vocab` most frequent words); any other word maps
   to the unknown id 0. Sentences longer than `max_len` words are cut.
3. Training: Adam on mini-batches, from a fixed seed. During training each
   word is replaced by the unknown id with probability `word_dropout`, so
   the network cannot lean on a single word it memorised (and learns what
   to do with words it has never seen, which held-out texts are full of).
4. Model selection -- how many epochs to train -- depends on the data size
   (`choose_settings`):

   * up to 400 texts besides the test part ("small data"): k-fold
     cross-validation (5 folds). The network is trained k times, each time
     on all but one fold, and the accuracy on that fold is measured after
     every epoch; the largest number of epochs whose mean accuracy over the
     folds is within one standard error of the best is kept (a peak that is
     only noise does not cut training short), and a final network is
     trained on *all* the non-test texts for that many epochs. A validation split of a few texts (6 of
     60) would pick its epoch by chance; k folds measure every text once.
   * more: a validation split (15%) and `restarts` networks from different
     seeds; the best epoch of the best network on validation is kept.

   The settings that suit a few dozen texts differ from those for
   thousands, and are chosen from the data size too: a GRU cell (on small
   data the gated cells find the sentiment words where the plain RNN
   memorises the sentences: 94% against 80% on the built-in data with the
   same careful training loop), 32 hidden units, a learning rate of 0.01
   with batches of 8 texts (16 above 100; a few dozen texts give only a
   few steps per epoch), and fewer epochs. Every one of them can be set.

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
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import cells, datasets
from ..data import WordVocab, pad_batch
from ..losses import softmax_cross_entropy
from ..models import SequenceClassifier, one_hot
from ..optim import Adam
from .common import (
    CLIError,
    Progress,
    add_embedding_option,
    add_threads_option,
    apply_threads,
    fraction,
    one_blas_thread,
    positive_float,
    positive_int,
    read_text,
)

__all__ = [
    "register",
    "classify",
    "ClassifyResult",
    "Settings",
    "choose_settings",
    "load_tsv",
    "split_indices",
    "fold_indices",
    "handler",
]

#: Texts (besides the test part) up to which `classify` cross-validates.
SMALL_DATA = 400

DEFAULTS = dict(
    word_dropout=0.2, test_fraction=0.25, max_vocab=5000, max_len=50, seed=0, seconds=60.0
)


class DataError(ValueError):
    """The labelled data cannot be split into training and test parts."""


@dataclass
class Settings:
    """How `classify` trains and selects its model (see `choose_settings`)."""

    cell: str
    hidden: int
    lr: float
    batch_size: int
    epochs: int
    folds: int  # k-fold cross-validation when >= 2, else a validation split
    val_fraction: float
    restarts: int
    word_dropout: float
    embedding_dim: Optional[int] = None  # learned word vectors of this size; None: one-hot

    @property
    def selection(self) -> str:
        """How the epoch count and model are chosen, in words."""
        if self.folds >= 2:
            return f"{self.folds}-fold cross-validation"
        return f"a validation split ({self.val_fraction:.0%}), best of {self.restarts} restart(s)"

    @property
    def total_epochs(self) -> int:
        """Epochs `classify` runs at most (for a progress bar)."""
        if self.folds >= 2:
            return self.folds * self.epochs + self.epochs
        return self.restarts * self.epochs


def choose_settings(
    n_texts: int,
    *,
    cell: Optional[str] = None,
    hidden: Optional[int] = None,
    lr: Optional[float] = None,
    batch_size: Optional[int] = None,
    epochs: Optional[int] = None,
    folds: Optional[int] = None,
    val_fraction: Optional[float] = None,
    restarts: Optional[int] = None,
    word_dropout: float = 0.2,
    embedding_dim: Optional[int] = None,
) -> Settings:
    """The training settings for `n_texts` texts (besides the test part).

    Anything given is kept; the rest depends on the data size:

    ===============  ======================  =========================
    setting          up to SMALL_DATA (400)  more
    ===============  ======================  =========================
    selection        5-fold cross-val.       15% validation, 3 restarts
    cell             gru                     gru
    hidden units     32                      64
    learning rate    0.01                    0.003
    batch size       8 (16 above 100 texts)  32
    epochs           40                      30
    ===============  ======================  =========================

    Cross-validation needs at least 2 texts per fold; below 10 texts it uses
    as many folds as it can. The words are one-hot vectors unless
    `embedding_dim` (> 0) asks for learned word vectors (`crnn.Embedding`).
    """
    small = n_texts <= SMALL_DATA
    if folds is None:
        folds = min(5, n_texts // 2) if small else 0
    return Settings(
        cell=cells.get(cell).name if cell is not None else "gru",
        hidden=hidden if hidden is not None else (32 if small else 64),
        lr=lr if lr is not None else (1e-2 if small else 3e-3),
        batch_size=batch_size
        if batch_size is not None
        else ((8 if n_texts <= 100 else 16) if small else 32),
        epochs=epochs if epochs is not None else (40 if small else 30),
        folds=int(folds),
        val_fraction=val_fraction if val_fraction is not None else 0.15,
        restarts=restarts if restarts is not None else 3,
        word_dropout=word_dropout,
        embedding_dim=int(embedding_dim) if embedding_dim else None,
    )


@dataclass
class ClassifyResult:
    """What `classify` measured (accuracies are fractions in [0, 1]).

    ``val_accuracy`` is the accuracy that selected the model: the mean over
    the held-out folds with cross-validation, else on the validation split.
    """

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
    settings: Settings
    test_index: np.ndarray = field(repr=False)
    test_pred: np.ndarray = field(repr=False)
    test_true: np.ndarray = field(repr=False)
    model: Any = field(repr=False, default=None)
    vocab: Any = field(repr=False, default=None)
    max_len: int = 50

    def summary(self) -> Dict[str, Any]:
        """The scores, sizes and settings as a JSON-serialisable dict (``--json``)."""
        return dict(
            accuracy=self.accuracy,
            baseline_accuracy=self.baseline_accuracy,
            val_accuracy=self.val_accuracy,
            train_accuracy=self.train_accuracy,
            classes=list(self.classes),
            n_train=self.n_train,
            n_val=self.n_val,
            n_test=self.n_test,
            vocab_size=self.vocab_size,
            epochs=self.epochs,
            best_epoch=self.best_epoch,
            restart=self.restart,
            stopped_early=self.stopped_early,
            seconds=round(self.seconds, 3),
            selection=self.settings.selection,
            settings=asdict(self.settings),
        )

    def predict(self, texts: Sequence[str]) -> List[str]:
        """The predicted class of each text (with the kept model)."""
        ids = [self.vocab.encode(t)[: self.max_len] for t in texts]
        pred = _predict(self.model, ids, len(self.vocab))
        return [self.classes[i] for i in pred]


# --------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------


def split_indices(
    labels: np.ndarray, groups: Optional[np.ndarray], fraction: float, rng: np.random.Generator
) -> Tuple[np.ndarray, np.ndarray]:
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


def fold_indices(
    labels: np.ndarray, groups: Optional[np.ndarray], k: int, rng: np.random.Generator
) -> List[np.ndarray]:
    """k disjoint folds (sorted index arrays) covering every item.

    With groups that hold more than one item, whole groups go to one fold
    (groups dealt out in random order); otherwise each class is dealt out
    in turn, so that every fold has about the class shares of the whole.
    """
    n = labels.size
    folds: List[List[int]] = [[] for _ in range(k)]
    if groups is not None and np.unique(groups).size < n:
        for i, g in enumerate(rng.permutation(np.unique(groups))):
            folds[i % k].extend(np.flatnonzero(groups == g).tolist())
    else:
        j = 0
        for c in np.unique(labels):
            for i in rng.permutation(np.flatnonzero(labels == c)):
                folds[j % k].append(int(i))
                j += 1
    return [np.array(sorted(f), dtype=np.int64) for f in folds]


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


def _inputs(model: SequenceClassifier, x: np.ndarray, V: int) -> np.ndarray:
    """What `model` reads for padded word ids x (T, B): the ids themselves
    with an embedding, else their one-hot vectors."""
    return x if model.embed is not None else one_hot(x, V)


def _predict(
    model: SequenceClassifier, seqs: Sequence[np.ndarray], V: int, batch: int = 256
) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(seqs), batch):
        part = [s if s.size else np.zeros(1, np.int64) for s in seqs[i : i + batch]]
        x, lengths = pad_batch(part, dtype=np.int64)
        out.append(model.predict(_inputs(model, x, V), lengths=lengths))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def classify(
    texts: Sequence[str],
    labels: Sequence[Any],
    groups: Optional[Union[Sequence[int], np.ndarray]] = None,
    *,
    cell: Optional[str] = None,
    hidden: Optional[int] = None,
    epochs: Optional[int] = None,
    lr: Optional[float] = None,
    batch_size: Optional[int] = None,
    folds: Optional[int] = None,
    restarts: Optional[int] = None,
    word_dropout: float = 0.2,
    embedding_dim: Optional[int] = None,
    test_fraction: float = 0.25,
    val_fraction: Optional[float] = None,
    max_vocab: int = 5000,
    max_len: int = 50,
    seed: int = 0,
    seconds: Optional[float] = 60.0,
    on_epoch: Optional[Callable[[int, int, float], None]] = None,
) -> ClassifyResult:
    """Train a many-to-one RNN text classifier and score it on held-out texts.

    Parameters
    ----------
    texts : sequence of str
    labels : sequence of labels (any hashable, printed with str)
    groups : sequence of ints or None
        Items of one group are never split between train, validation (or
        folds) and test.
    cell, hidden, epochs, lr, batch_size, folds, restarts, val_fraction
        The recurrent cell; hidden units; passes over the training data;
        Adam's learning rate; sentences per step; cross-validation folds
        (0 or 1: a validation split of `val_fraction` instead, with
        `restarts` networks from different seeds). None chooses from the
        data size (`choose_settings`).
    word_dropout : float in [0, 1)
        Probability of hiding a word (as unknown) during training.
    embedding_dim : int or None
        The size of learned word vectors (`crnn.Embedding`) the recurrent
        layer reads; None or 0: one-hot vectors over the vocabulary.
    test_fraction : float in (0, 1)
    max_vocab, max_len : int
    seed : int
        Seeds the split, the initialisations and the shuffling.
    seconds : float or None
        Time budget for all the training (shared evenly by the folds and
        the final training, or by the restarts); None for none. Results are
        deterministic unless it cuts training.
    on_epoch : callable(run, epoch, loss) or None
        `run` counts the networks trained (folds, then the final one; or
        restarts), from 0.

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
    st = choose_settings(
        rest.size,
        cell=cell,
        hidden=hidden,
        lr=lr,
        batch_size=batch_size,
        epochs=epochs,
        folds=folds,
        val_fraction=val_fraction,
        restarts=restarts,
        word_dropout=word_dropout,
        embedding_dim=embedding_dim,
    )
    if st.folds >= 2:
        fold_parts = [
            rest[f] for f in fold_indices(y[rest], None if g is None else g[rest], st.folds, rng)
        ]
        if min(f.size for f in fold_parts) == 0:
            raise DataError(
                f"too few examples ({len(texts)}) for {st.folds}-fold "
                f"cross-validation; give at least 10"
            )
        train, val = rest, np.zeros(0, dtype=np.int64)
    else:
        tr, va = split_indices(y[rest], None if g is None else g[rest], st.val_fraction, rng)
        train, val = rest[tr], rest[va]
    if test.size == 0 or train.size == 0 or (st.folds < 2 and val.size == 0):
        raise DataError(
            f"too few examples ({len(texts)}) to hold out test and validation "
            f"sentences; give at least 10"
        )
    if np.unique(y[train]).size < 2:
        raise DataError("the training part holds a single class; give more examples of each")

    vocab = WordVocab.from_texts([texts[i] for i in rest], max_size=max_vocab)
    V = len(vocab)
    seqs = [vocab.encode(t)[:max_len] for t in texts]
    C = len(classes)

    counts = np.bincount(y[rest], minlength=C)
    majority = int(np.argmax(counts))
    baseline = float(np.mean(y[test] == majority))

    t0 = time.perf_counter()
    n_runs = st.folds + 1 if st.folds >= 2 else st.restarts
    seeds = np.random.SeedSequence(seed).generate_state(n_runs)

    class Net:
        """Network `r`, trained on `rows` one epoch at a time, checked on `check`."""

        def __init__(self, r: int, rows: np.ndarray, check: np.ndarray) -> None:
            self.r, self.rows, self.check = r, rows, check
            self.m = SequenceClassifier(
                V,
                st.hidden,
                C,
                dtype=np.float32,
                seed=int(seeds[r]),
                cell=st.cell,
                embedding_dim=st.embedding_dim,
            )
            self.opt = Adam(self.m.params, lr=st.lr, clip_grad_norm=5.0)
            self.rng = np.random.default_rng(int(seeds[r]) + 1)
            self.epochs = 0
            # Words of the vocabulary this network never trains on read as unknown (id 0) when
            # it is checked, as unseen words do in the test texts.
            known = np.zeros(V, dtype=bool)
            known[np.concatenate([seqs[j] for j in rows] + [np.zeros(1, np.int64)])] = True
            self.check_seqs = [np.where(known[seqs[j]], seqs[j], 0) for j in check]

        def epoch(self) -> float:
            m, rows = self.m, self.rows
            m.train()
            order = self.rng.permutation(rows.size)
            total = 0.0
            for i in range(0, rows.size, st.batch_size):
                batch = rows[order[i : i + st.batch_size]]
                part = [seqs[j] if seqs[j].size else np.zeros(1, np.int64) for j in batch]
                x, lengths = pad_batch(part, dtype=np.int64)
                if st.word_dropout > 0:
                    x = np.where(self.rng.random(x.shape) < st.word_dropout, 0, x)
                m.zero_grad()
                logits = m(_inputs(m, x, V), lengths=lengths)
                loss, dlogits = softmax_cross_entropy(logits, y[batch])
                m.backward(dlogits)
                self.opt.step(m.grads)
                total += float(loss) * batch.size
            self.epochs += 1
            if on_epoch is not None:
                on_epoch(self.r, self.epochs, total / rows.size)
            return total / rows.size

        def correct(self) -> int:
            return int(np.sum(_predict(self.m, self.check_seqs, V) == y[self.check]))

    def out_of_time() -> bool:
        return seconds is not None and time.perf_counter() - t0 > seconds

    stopped_early = False
    if st.folds >= 2:
        # The folds train in step, the mean held-out accuracy measured after each epoch. The
        # number of epochs kept is the largest whose accuracy is within one standard error of
        # the best (with word dropout a longer training rarely hurts, and a peak that is only
        # noise should not cut it short). The time budget leaves a share for the final network.
        nets = [Net(f, np.setdiff1d(rest, part), part) for f, part in enumerate(fold_parts)]
        mean_acc: List[float] = []
        while len(mean_acc) < st.epochs:
            for net in nets:
                net.epoch()
            mean_acc.append(sum(net.correct() for net in nets) / rest.size)
            if seconds is not None and (time.perf_counter() - t0 > seconds * st.folds / n_runs):
                stopped_early = len(mean_acc) < st.epochs
                break
        done_epochs = len(mean_acc)
        top = max(mean_acc)
        se = (top * (1 - top) / rest.size) ** 0.5
        best_epoch = max(i + 1 for i, a in enumerate(mean_acc) if a >= top - se)
        val_acc = mean_acc[best_epoch - 1]
        final_net = Net(st.folds, rest, np.zeros(0, dtype=np.int64))
        for _ in range(best_epoch):
            final_net.epoch()
            if out_of_time() and final_net.epochs < best_epoch:
                stopped_early = True
                break
        final, best_r, n_val = final_net.m, st.folds, 0
    else:
        kept: Optional[Tuple[float, int, int, Dict[str, np.ndarray]]] = None
        done_epochs = 0
        for r in range(st.restarts):
            net = Net(r, train, val)
            t_r = time.perf_counter()
            while net.epochs < st.epochs:
                net.epoch()
                acc = net.correct() / val.size
                # Ties go to the earlier epoch and restart (fewer steps, less memorised).
                if kept is None or acc > kept[0]:
                    kept = (acc, r, net.epochs, {k: v.copy() for k, v in net.m.params.items()})
                if (
                    seconds is not None
                    and time.perf_counter() - t_r > seconds / n_runs
                    and net.epochs < st.epochs
                ):
                    stopped_early = True
                    break
            done_epochs = net.epochs
        assert kept is not None
        val_acc, best_r, best_epoch, state = kept
        final = SequenceClassifier(
            V, st.hidden, C, dtype=np.float32, seed=0, cell=st.cell, embedding_dim=st.embedding_dim
        )
        for k, v in state.items():
            final.params[k][...] = v
        final.parameters_changed()
        n_val = int(val.size)
    pred = _predict(final, [seqs[j] for j in test], V)
    train_acc = float(np.mean(_predict(final, [seqs[j] for j in train], V) == y[train]))
    return ClassifyResult(
        classes=classes,
        n_train=int(train.size),
        n_val=n_val,
        n_test=int(test.size),
        vocab_size=V,
        accuracy=float(np.mean(pred == y[test])),
        baseline_accuracy=baseline,
        val_accuracy=val_acc,
        train_accuracy=train_acc,
        epochs=done_epochs,
        best_epoch=best_epoch,
        restart=best_r,
        seconds=time.perf_counter() - t0,
        stopped_early=stopped_early,
        settings=st,
        test_index=test,
        test_pred=pred,
        test_true=y[test],
        model=final,
        vocab=vocab,
        max_len=max_len,
    )


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


def _usable_cells() -> Tuple[str, ...]:
    return tuple(name for name, spec in cells.REGISTRY.items() if not spec.uses_output_size)


def register(subparsers: Any) -> None:
    """Add ``crnn classify`` to an argparse subparsers object."""
    d = DEFAULTS
    p = subparsers.add_parser(
        "classify",
        help="classify short texts (sentiment) with a many-to-one RNN; held-out accuracy",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Train a many-to-one RNN (words as one-hot vectors, or learned vectors with\n"
            "--embedding-dim -> recurrent layer -> last state -> linear) to classify short\n"
            "texts, and report its accuracy on held-out texts (25%, never\n"
            "used to choose anything) next to the majority baseline. Without --tsv the data\n"
            "are 300 built-in review sentences, positive or negative\n"
            "(crnn.datasets.load_sentiment).\n"
            "\n"
            "Settings follow the data size (each option below overrides its own):\n"
            f"  up to {SMALL_DATA} texts besides the test part: 5-fold cross-validation picks the\n"
            "    number of epochs (the most within one standard error of the best mean\n"
            "    accuracy), then one network is trained on all the texts for that many;\n"
            "    GRU cell, 32 hidden units, learning rate 0.01,\n"
            "    batches of 8 (16 above 100 texts), at most 40 epochs.\n"
            "  more: a 15% validation split picks the best epoch of 3 restarts; GRU, 64\n"
            "    hidden units, learning rate 0.003, batches of 32, at most 30 epochs."
        ),
        epilog="examples:  crnn classify     crnn classify --tsv reviews.tsv --predict "
        '"great food"',
    )
    p.add_argument(
        "--tsv",
        metavar="FILE",
        help="labelled data, one text<TAB>label per line (default: built-in sentiment sentences)",
    )
    p.add_argument(
        "--encoding", default="utf-8", help="text encoding of the TSV file (default utf-8)"
    )
    p.add_argument(
        "--cell", choices=_usable_cells(), default=None, help="the recurrent cell (default gru)"
    )
    p.add_argument(
        "--hidden",
        type=positive_int,
        default=None,
        metavar="H",
        help="hidden units (default: 32 on small data, else 64)",
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="most passes over the training texts, per network (default: 40 on small "
        "data, else 30)",
    )
    p.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help="Adam learning rate (default: 0.01 on small data, else 0.003)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        metavar="B",
        help="texts per training step (default: 8 up to 100 texts, 16 up to "
        f"{SMALL_DATA}, else 32)",
    )
    p.add_argument(
        "--folds",
        type=_folds,
        default=None,
        metavar="K",
        help="choose the number of epochs by K-fold cross-validation (K >= 2), or 0 "
        "for a validation split (default: 5 on small data, else 0)",
    )
    p.add_argument(
        "--restarts",
        type=positive_int,
        default=None,
        help="with a validation split: networks trained from different seeds, the "
        "best on validation kept (default: 3)",
    )
    p.add_argument(
        "--word-dropout",
        type=_probability,
        default=d["word_dropout"],
        metavar="P",
        help=f"chance of hiding each word during training (default {d['word_dropout']})",
    )
    p.add_argument(
        "--test-fraction",
        type=fraction,
        default=d["test_fraction"],
        metavar="F",
        help=f"share of the texts held out for testing (default {d['test_fraction']})",
    )
    p.add_argument(
        "--seconds",
        type=positive_float,
        default=d["seconds"],
        help=f"time budget for all the training (default {d['seconds']:g})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=d["seed"],
        help="random seed of the split, the networks and the shuffling (default 0)",
    )
    add_embedding_option(p, None, "word")
    add_threads_option(p)
    p.add_argument(
        "--predict",
        action="append",
        metavar="TEXT",
        default=[],
        help="also classify this text with the trained model (repeatable)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (accuracy, baseline_accuracy, settings, ...) instead of text",
    )
    p.set_defaults(func=handler)


def _folds(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 2, or 0, got {text!r}") from None
    if v == 1 or v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 2, or 0, got {text!r}")
    return v


@one_blas_thread
def handler(args: argparse.Namespace) -> int:
    """Run ``crnn classify``; returns the exit status (0)."""
    apply_threads(args)
    if args.tsv is not None:
        texts, labels = load_tsv(args.tsv, args.encoding)
        groups = None
        name = args.tsv
    else:
        data = datasets.load_sentiment()
        names = {0: "negative", 1: "positive"}
        texts, labels, groups = data.texts, [names[int(v)] for v in data.labels], data.groups
        name = "built-in sentiment sentences"
    options = dict(
        cell=args.cell,
        hidden=args.hidden,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        folds=args.folds,
        restarts=args.restarts,
        embedding_dim=args.embedding_dim,
    )
    # The settings follow the number of texts left once the test part is out.
    n_rest = len(texts) - int(round(len(texts) * args.test_fraction))
    planned = choose_settings(max(n_rest, 0), word_dropout=args.word_dropout, **options)
    try:
        with Progress(planned.total_epochs, desc="training", unit="epochs") as bar:

            def on_epoch(run: int, epoch: int, loss: float) -> None:
                what = (
                    f"fold {run + 1}/{planned.folds}"
                    if planned.folds >= 2 and run < planned.folds
                    else "final"
                    if planned.folds >= 2
                    else f"restart {run + 1}/{planned.restarts}"
                )
                bar.update(1, status=f"{what} loss {loss:.3f}")

            result = classify(
                texts,
                labels,
                groups,
                word_dropout=args.word_dropout,
                test_fraction=args.test_fraction,
                seed=args.seed,
                seconds=args.seconds,
                on_epoch=on_epoch,
                **options,
            )
    except DataError as e:
        raise CLIError(f"{name}: {e}") from None

    predictions = result.predict(args.predict) if args.predict else []
    if args.json:
        out = dict(data=name, **result.summary(), hidden=result.settings.hidden, seed=args.seed)
        if args.predict:
            out["predictions"] = [dict(text=t, label=p) for t, p in zip(args.predict, predictions)]
        print(json.dumps(out))
        return 0

    st = result.settings
    cut = " (stopped by --seconds)" if result.stopped_early else ""
    if st.folds >= 2:
        split = (
            f"split: {result.n_train} texts to train on ({st.folds} folds), {result.n_test} "
            f"test; vocabulary {result.vocab_size} words (from the training texts)"
        )
        chose = (
            f"training: {st.folds} folds x {result.epochs} epochs{cut}: {result.best_epoch} "
            f"epochs kept (mean held-out fold accuracy {result.val_accuracy:.1%}, within one "
            f"standard error of the best); then one network on all {result.n_train} texts "
            f"for {result.best_epoch} epochs; {result.seconds:.1f} s"
        )
    else:
        split = (
            f"split: {result.n_train} train, {result.n_val} validation, {result.n_test} test; "
            f"vocabulary {result.vocab_size} words (from the training texts)"
        )
        chose = (
            f"training: {st.restarts} restart(s) x {result.epochs} epochs in "
            f"{result.seconds:.1f} s{cut}; kept restart {result.restart + 1}, epoch "
            f"{result.best_epoch} (validation accuracy {result.val_accuracy:.1%})"
        )
    words = "one-hot words" if not st.embedding_dim else f"word vectors {st.embedding_dim}"
    lines = [
        f"data: {name} ({len(texts)} texts, classes {', '.join(result.classes)})",
        split,
        f"model: {words} -> {cells.get(st.cell).title} {st.hidden} hidden units; Adam lr "
        f"{st.lr:g}, batches "
        f"of {st.batch_size}, word dropout {st.word_dropout:g}",
        chose,
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
