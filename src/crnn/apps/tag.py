"""``crnn tag``: named-entity recognition with a bidirectional recurrent tagger.

Each word of a sentence gets a BIO tag (``B-PER`` begins a person's name,
``I-PER`` continues it, ``O`` is outside any entity); the entities are the
spans the tags mark. The model, `EntityTagger`, reads every token as

- a learned vector of the lower-cased word (`crnn.Embedding`; an unknown
  word, and during training a share of the known ones, reads the vector of
  ``<unk>``, so the model learns to tag names it never saw from their
  context and spelling);
- its *shape*: lower-case, Capitalised, UPPER, digits, ... and whether it
  starts the sentence (a one-hot vector of 14), which is what tells "Mr
  Smith" from "the smith";
- optionally (``--char-features``) a learned vector of its last three
  letters (``-burg``'s ``urg``, ``-ova``'s ``ova``);

then a bidirectional recurrent layer (an LSTM by default: every tag sees
the whole sentence on both sides) and a linear layer to tag scores at every
token. It is trained with softmax cross-entropy (padding masked) and Adam.

What it reports is what the CoNLL shared tasks report (`conlleval`):
entity-level precision, recall and F1 on held-out sentences, where an
entity counts only if its first token, last token and type are all right
(`crnn.apps.metrics.entity_scores`), next to the most-frequent-tag
baseline (each word gets the tag it had most often in training, ``O`` if
it never occurred there).

Data
----
Without ``--conll`` the built-in set (`crnn.datasets.load_ner`) is used: 303
training and 147 held-out English sentences written and labelled by hand
for crnn, with person (PER), location (LOC), organisation (ORG) and date
(DATE) entities; no person, place or organisation named in a held-out
sentence occurs in the training sentences.

``--conll FILE`` reads a CoNLL-style file: one token per line, columns
separated by tabs or spaces, a blank line between sentences; ``-DOCSTART-``
lines are skipped. ``--token-column`` and ``--tag-column`` pick the columns
(1-based; negative counts from the end; default: the first and the last).
Tags are ``O``, ``B-TYPE``, ``I-TYPE`` (also ``E-``/``S-`` of IOBES). A
share of the sentences (``--test-fraction``) is held out, or ``--conll-test
FILE`` gives the held-out sentences.
"""

from __future__ import annotations

import argparse
import collections
import math
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, TypedDict

import numpy as np

from .. import datasets
from ..data import WordVocab, one_hot, pad_batch
from ..losses import softmax_cross_entropy
from ..module import Module, float_dtype
from ..nn import Linear, recurrent_layer
from ..optim import Adam
from ..serialization import load as _load, register_module, save as _save
from .common import (
    CLIError,
    Progress,
    add_cell_option,
    add_embedding_option,
    add_threads_option,
    apply_threads,
    check_output_path,
    embedding_layer,
    fraction,
    nonnegative_int,
    one_blas_thread,
    positive_float,
    positive_int,
    print_json,
    read_text,
)
from .metrics import EntityScores, entity_scores, entity_spans

__all__ = [
    "EntityTagger",
    "TagResult",
    "read_conll",
    "parse_conll",
    "tokenize_sentence",
    "word_shape",
    "SHAPES",
    "train_tagger",
    "most_frequent_tags",
    "tag_sentences",
    "format_entities",
    "register",
    "handler",
    "DEFAULTS",
]

Sentence = Tuple[List[str], List[str]]  # (tokens, tags)


class _Defaults(TypedDict):
    cell: str
    embedding_dim: int
    hidden: int
    epochs: int
    seconds: float
    lr: float
    batch_size: int
    word_dropout: float
    test_fraction: float
    seed: int


DEFAULTS = _Defaults(
    cell="lstm",
    embedding_dim=50,
    hidden=64,
    epochs=40,
    seconds=60.0,
    lr=0.01,
    batch_size=16,
    word_dropout=0.25,
    test_fraction=0.2,
    seed=0,
)

_TAG_RE = re.compile(r"^(?:O|[BIES]-\S+)$")
_TOKEN_RE = re.compile(r"\w+(?:[-'\u2019.&]\w+)*|[^\w\s]", re.UNICODE)


# --------------------------------------------------------------------------
# Reading CoNLL files
# --------------------------------------------------------------------------


def _column(index: int, n: int) -> Optional[int]:
    """A 1-based (or negative, from the end) column number -> 0-based index, or None."""
    i = index - 1 if index > 0 else n + index
    return i if 0 <= i < n else None


def parse_conll(
    text: str, name: str = "<text>", token_column: int = 1, tag_column: int = -1
) -> List[Sentence]:
    """Sentences of CoNLL-formatted text: ``[(tokens, tags), ...]``.

    One token per line, columns separated by whitespace, sentences separated
    by blank lines; ``-DOCSTART-`` lines (document breaks) are skipped.

    Parameters
    ----------
    text : str
    name : str
        How to name the source in error messages (a file name).
    token_column, tag_column : int
        1-based column numbers; negative ones count from the end (-1 is the
        last column).

    Raises
    ------
    CLIError
        A line without the asked-for columns (naming it), a tag that is not
        ``O`` / ``B-X`` / ``I-X`` (/ ``E-X`` / ``S-X``), or no sentence at all.
    """
    if token_column == 0 or tag_column == 0:
        raise CLIError("column numbers start at 1 (or count from the end: -1 is the last)")
    sentences: List[Sentence] = []
    tokens: List[str] = []
    tags: List[str] = []
    for n, line in enumerate(text.split("\n"), start=1):
        cols = line.split()
        if not cols:
            if tokens:
                sentences.append((tokens, tags))
                tokens, tags = [], []
            continue
        if cols[0] == "-DOCSTART-":
            continue
        ti, gi = _column(token_column, len(cols)), _column(tag_column, len(cols))
        if ti is None or gi is None:
            missing = token_column if ti is None else tag_column
            which = "--token-column" if ti is None else "--tag-column"
            raise CLIError(
                f"{name}, line {n}: {which} {missing} does not exist (the line has "
                f"{len(cols)} column{'s' if len(cols) != 1 else ''}: {line.strip()!r})"
            )
        if ti == gi:
            if token_column == tag_column:
                raise CLIError(
                    f"{name}: the token and the tag cannot be the same column ({token_column})"
                )
            raise CLIError(
                f"{name}, line {n}: expected a token and a tag, found "
                f"{len(cols)} column: {line.strip()!r}"
            )
        tag = cols[gi]
        if not _TAG_RE.match(tag):
            raise CLIError(
                f"{name}, line {n}: {tag!r} is not a BIO tag (expected O, B-TYPE or "
                f"I-TYPE in column {gi + 1}; see --tag-column)"
            )
        tokens.append(cols[ti])
        tags.append(tag)
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise CLIError(
            f"{name}: no sentences (expected lines of TOKEN ... TAG, a blank line "
            f"between sentences)"
        )
    return sentences


def read_conll(
    path: str, token_column: int = 1, tag_column: int = -1, encoding: str = "utf-8"
) -> List[Sentence]:
    """`parse_conll` of a file; every way the file can be wrong is a CLIError."""
    return parse_conll(
        read_text(path, encoding=encoding, what="CoNLL file"), path, token_column, tag_column
    )


def tokenize_sentence(text: str) -> List[str]:
    """Split a sentence into tokens, keeping case: words (with inner ``-``, ``'``,
    ``.``, ``&``: "Rolls-Royce", "O'Brien") and single punctuation marks."""
    return _TOKEN_RE.findall(text)


# --------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------

SHAPES = ("lower", "Capitalised", "UPPER", "digits", "alphanumeric", "punctuation", "other")
"""The word shapes (`word_shape`); each comes as sentence-initial or not."""


def word_shape(token: str) -> int:
    """The index in `SHAPES` of a token's shape (from its characters)."""
    if not token:
        return SHAPES.index("other")
    if token.isdigit():
        return SHAPES.index("digits")
    letters = [c for c in token if c.isalpha()]
    if letters and all(c.isalpha() or c in "-'\u2019.&" for c in token):
        if all(c.islower() for c in letters):
            return SHAPES.index("lower")
        if len(letters) > 1 and all(c.isupper() for c in letters):
            return SHAPES.index("UPPER")
        if letters[0].isupper():
            return SHAPES.index("Capitalised")
        return SHAPES.index("other")
    if any(c.isdigit() for c in token) and all(c.isalnum() or c in "-/.:," for c in token):
        return SHAPES.index("alphanumeric")
    if all(not c.isalnum() for c in token):
        return SHAPES.index("punctuation")
    return SHAPES.index("other")


def _shape_ids(tokens: Sequence[str]) -> np.ndarray:
    """Per token: shape index, plus len(SHAPES) for the first token of the sentence."""
    ids = np.array([word_shape(t) for t in tokens], dtype=np.int64)
    if ids.size:
        ids[0] += len(SHAPES)
    return ids


def _suffix(token: str) -> str:
    return token.lower()[-3:]


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


@register_module
class EntityTagger(Module):
    """A named-entity tagger: word vectors + word shapes (+ suffixes) -> bidirectional
    recurrent layer -> Linear -> tag scores at every token.

    It carries its vocabulary and its tags, so `crnn.save` writes all that
    `tag` needs into one file, and ``crnn tag --load FILE --predict TEXT``
    uses it.

    Parameters
    ----------
    words : list of str
        The known (lower-cased) words; id 0 is ``<unk>``.
    tags : list of str
        The tags, in the order of the output scores (``"O"``, ``"B-PER"``, ...).
    embedding_dim : int
        Size of the word vectors (`crnn.Embedding`); 0 reads one-hot vectors
        of the vocabulary instead.
    hidden_size : int
        Per direction.
    cell : str
        A cell of `crnn.cells` ("lstm", "gru", "rnn").
    suffixes : list of str
        Known 3-letter word endings (id 0 for an unknown one); empty for no
        character features.
    suffix_dim : int
        Size of the suffix vectors (when there are suffixes).
    dtype, seed, backend
        As for the layers.

    Attributes
    ----------
    embed : Embedding or None
        The word vectors (None with ``embedding_dim=0``).
    suffix_embed : Embedding or None
    rnn : Recurrent
        Bidirectional, input ``embedding_dim (or vocabulary) + 14 (+ suffix_dim)``.
    head : Linear
        ``2 * hidden_size`` -> ``len(tags)``.
    """

    def __init__(
        self,
        words: Sequence[str],
        tags: Sequence[str],
        embedding_dim: int = 50,
        hidden_size: int = 64,
        cell: str = "lstm",
        suffixes: Sequence[str] = (),
        suffix_dim: int = 16,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
    ) -> None:
        super().__init__(backend=backend)
        self.vocab = WordVocab(list(words), lower=True)
        self.tags = list(tags)
        if not self.tags or len(set(self.tags)) != len(self.tags):
            raise ValueError(f"tags must be distinct and non-empty, got {self.tags!r}")
        self.suffix_vocab = WordVocab(list(suffixes), lower=True) if suffixes else None
        self.embedding_dim = int(embedding_dim)
        self.suffix_dim = int(suffix_dim)
        self.dtype = float_dtype(dtype)
        self.seed = seed
        s = (
            [None] * 4
            if seed is None
            else [int(v) for v in np.random.SeedSequence(int(seed)).generate_state(4)]
        )
        V = len(self.vocab)
        if self.embedding_dim > 0:
            self.embed: Optional[Module] = embedding_layer(
                V, self.embedding_dim, dtype=self.dtype, seed=s[0], backend=backend
            )
            word_width = self.embedding_dim
        else:
            self.embed = None
            word_width = V
        self.suffix_embed: Optional[Module] = None
        suffix_width = 0
        if self.suffix_vocab is not None:
            self.suffix_embed = embedding_layer(
                len(self.suffix_vocab),
                self.suffix_dim,
                dtype=self.dtype,
                seed=s[1],
                backend=backend,
            )
            suffix_width = self.suffix_dim
        self.n_shapes = 2 * len(SHAPES)
        self.input_width = word_width + self.n_shapes + suffix_width
        self.rnn = recurrent_layer(
            cell,
            self.input_width,
            hidden_size,
            bidirectional=True,
            dtype=self.dtype,
            seed=s[2],
            backend=backend,
        )
        self.head = Linear(
            2 * hidden_size, len(self.tags), dtype=self.dtype, seed=s[3], backend=backend
        )
        self._cache: Optional[Tuple[int, int]] = None

    def config(self) -> Dict[str, Any]:
        return dict(
            words=self.vocab.itos[1:],
            tags=list(self.tags),
            embedding_dim=self.embedding_dim,
            hidden_size=self.rnn.hidden_size,
            cell=self.rnn.spec.name,
            suffixes=[] if self.suffix_vocab is None else self.suffix_vocab.itos[1:],
            suffix_dim=self.suffix_dim,
            dtype=self.dtype.name,
            seed=self.seed,
            backend=self.backend,
        )

    # -- encoding -------------------------------------------------------------

    def encode(self, sentences: Sequence[Sequence[str]]) -> Dict[str, np.ndarray]:
        """Padded, time-major inputs for a batch of token lists.

        Returns a dict with ``words`` (T, B) word ids, ``shapes`` (T, B) shape
        ids, ``suffixes`` (T, B) suffix ids (zeros without suffixes) and
        ``lengths`` (B,).
        """
        seqs = [list(s) if len(s) else [""] for s in sentences]
        words, lengths = pad_batch([self.vocab.encode(s) for s in seqs], dtype=np.int64)
        shapes, _ = pad_batch([_shape_ids(s) for s in seqs], dtype=np.int64)
        if self.suffix_vocab is not None:
            suffixes, _ = pad_batch(
                [self.suffix_vocab.encode([_suffix(t) for t in s]) for s in seqs], dtype=np.int64
            )
        else:
            suffixes = np.zeros_like(words)
        lengths = np.array([len(s) for s in sentences], dtype=np.int64)
        return dict(words=words, shapes=shapes, suffixes=suffixes, lengths=lengths)

    # -- forward / backward ---------------------------------------------------

    def _inputs(self, words: np.ndarray, shapes: np.ndarray, suffixes: np.ndarray) -> np.ndarray:
        parts = [
            self.embed(words)
            if self.embed is not None
            else one_hot(words, len(self.vocab), self.dtype),
            one_hot(shapes, self.n_shapes, self.dtype),
        ]
        if self.suffix_embed is not None:
            parts.append(self.suffix_embed(suffixes))
        return np.concatenate(parts, axis=-1)

    def forward(
        self, words: Any, shapes: Any, lengths: Any = None, suffixes: Any = None
    ) -> np.ndarray:
        """Tag scores at every token.

        Parameters
        ----------
        words, shapes : ndarray of ints, shape (T, B)
            From `encode`.
        lengths : array_like of B ints, or None
        suffixes : ndarray of ints, shape (T, B), or None (all unknown)

        Returns
        -------
        ndarray, shape (T, B, len(tags))
        """
        words = np.asarray(words, dtype=np.int64)
        shapes = np.asarray(shapes, dtype=np.int64)
        if words.ndim != 2 or shapes.shape != words.shape:
            raise ValueError(
                f"words and shapes must both be (T, B), got {words.shape} and {shapes.shape}"
            )
        suffixes = np.zeros_like(words) if suffixes is None else np.asarray(suffixes, np.int64)
        x = self._inputs(words, shapes, suffixes)
        out, _ = self.rnn(x, None, lengths)
        self._cache = (x.shape[0], x.shape[1])
        return self.head(out)

    def backward(self, dlogits: Any) -> None:
        """Backpropagate the last forward; accumulates ``grads`` (the word
        and suffix vectors included)."""
        if self._cache is None:
            raise RuntimeError("backward() called before forward()")
        dx, _ = self.rnn.backward(self.head.backward(dlogits))
        assert dx is not None  # the recurrent layer reads feature vectors
        if self.embed is not None:
            self.embed.backward(dx[..., : self.embedding_dim])
        if self.suffix_embed is not None:
            self.suffix_embed.backward(dx[..., self.input_width - self.suffix_dim :])

    # -- prediction -----------------------------------------------------------

    def predict(self, sentences: Sequence[Sequence[str]], batch_size: int = 64) -> List[List[str]]:
        """The most likely tag of every token of each sentence (evaluation mode)."""
        was_training = self.training
        self.eval()
        out: List[List[str]] = []
        try:
            for i in range(0, len(sentences), batch_size):
                part = sentences[i : i + batch_size]
                enc = self.encode(part)
                scores = self.forward(enc["words"], enc["shapes"], enc["lengths"], enc["suffixes"])
                best = scores.argmax(axis=-1)
                for b, s in enumerate(part):
                    out.append([self.tags[j] for j in best[: len(s), b]])
        finally:
            self.train(was_training)
        return out

    def entities(self, text: str) -> List[Tuple[str, str]]:
        """The entities of a sentence: ``[(type, words), ...]``."""
        tokens = tokenize_sentence(text)
        if not tokens:
            return []
        tags = self.predict([tokens])[0]
        return [(k, " ".join(tokens[a:b])) for k, a, b in entity_spans(tags)]


# --------------------------------------------------------------------------
# Training and scoring
# --------------------------------------------------------------------------


@dataclass
class TagResult:
    """What `train_tagger` did, and the scores on the held-out sentences."""

    model: EntityTagger = field(repr=False)
    epochs: int
    seconds: float
    first_loss: float
    loss: float
    stopped_early: bool
    scores: Optional[EntityScores] = None
    baseline: Optional[EntityScores] = None


def most_frequent_tags(
    train: Sequence[Sentence], sentences: Sequence[Sequence[str]]
) -> List[List[str]]:
    """The most-frequent-tag baseline: each token gets the tag it had most often
    in `train` (exact spelling; ties to the tag seen first), else the most
    frequent tag overall (``O``)."""
    counts: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    overall: collections.Counter = collections.Counter()
    for tokens, tags in train:
        for w, t in zip(tokens, tags):
            counts[w][t] += 1
            overall[t] += 1
    default = overall.most_common(1)[0][0] if overall else "O"
    best = {w: c.most_common(1)[0][0] for w, c in counts.items()}
    return [[best.get(w, default) for w in s] for s in sentences]


def _tag_order(train: Sequence[Sentence]) -> List[str]:
    found = {t for _, tags in train for t in tags}
    rest = sorted(found - {"O"}, key=lambda t: (t[2:], t[0] != "B", t))
    return ["O"] + rest


def train_tagger(
    train: Sequence[Sentence],
    *,
    cell: str = "lstm",
    embedding_dim: int = 50,
    hidden: int = 64,
    epochs: int = 40,
    seconds: Optional[float] = 60.0,
    lr: float = 0.01,
    batch_size: int = 16,
    word_dropout: float = 0.25,
    char_features: bool = False,
    min_count: int = 1,
    seed: int = 0,
    backend: str = "c",
    on_epoch: Any = None,
) -> TagResult:
    """Train an `EntityTagger` on tagged sentences.

    Parameters
    ----------
    train : list of (tokens, tags)
    cell, embedding_dim, hidden
        The model (see `EntityTagger`).
    epochs : int
        Passes over the sentences (shuffled each time).
    seconds : float or None
        Stop after the epoch that crosses this much time (None: no limit).
        Results are deterministic unless it cuts training.
    lr, batch_size
        Adam's learning rate (gradient norm clipped at 5); sentences per step.
    word_dropout : float in [0, 1)
        Chance that a word reads as ``<unk>`` in a training step, so that the
        vector of ``<unk>`` is trained on names and the tagger learns to rely
        on context and shape for words it does not know.
    char_features : bool
        Add the vectors of 3-letter word endings seen at least twice.
    min_count : int
        Words seen fewer times are not in the vocabulary.
    seed : int
    on_epoch : callable(epoch, loss) or None

    Returns
    -------
    TagResult (without scores; see `score`)
    """
    if not train:
        raise ValueError("no training sentences")
    tags = _tag_order(train)
    vocab = WordVocab.from_texts([toks for toks, _ in train], min_count=min_count, lower=True)
    suffixes: List[str] = []
    if char_features:
        c = collections.Counter(_suffix(w) for toks, _ in train for w in toks)
        suffixes = sorted(s for s, n in c.items() if n >= 2)
    model = EntityTagger(
        vocab.itos[1:],
        tags,
        embedding_dim=embedding_dim,
        hidden_size=hidden,
        cell=cell,
        suffixes=suffixes,
        seed=seed,
        backend=backend,
    )
    tag_id = {t: i for i, t in enumerate(tags)}
    opt = Adam(model.params, lr=lr, clip_grad_norm=5.0)
    rng = np.random.default_rng(seed)
    sents = [toks for toks, _ in train]
    targets = [np.array([tag_id[t] for t in tg], dtype=np.int64) for _, tg in train]
    t0 = time.perf_counter()
    first = math.nan
    loss_avg = math.nan
    done = 0
    stopped = False
    model.train()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(sents))
        total = n_tok = 0.0
        for i in range(0, len(order), batch_size):
            rows = order[i : i + batch_size]
            enc = model.encode([sents[j] for j in rows])
            y, _ = pad_batch([targets[j] for j in rows], dtype=np.int64)
            mask = np.arange(y.shape[0])[:, None] < enc["lengths"][None, :]
            words = enc["words"]
            if word_dropout > 0:
                words = np.where(rng.random(words.shape) < word_dropout, 0, words)
            model.zero_grad()
            logits = model(words, enc["shapes"], enc["lengths"], enc["suffixes"])
            loss, dlogits = softmax_cross_entropy(logits, y, mask=mask)
            model.backward(dlogits)
            opt.step(model.grads)
            k = float(mask.sum())
            total += float(loss) * k
            n_tok += k
        loss_avg = total / max(n_tok, 1.0)
        if epoch == 1:
            first = loss_avg
        done = epoch
        if on_epoch is not None:
            on_epoch(epoch, loss_avg)
        if seconds is not None and time.perf_counter() - t0 >= seconds and epoch < epochs:
            stopped = True
            break
    model.eval()
    return TagResult(
        model=model,
        epochs=done,
        seconds=time.perf_counter() - t0,
        first_loss=first,
        loss=loss_avg,
        stopped_early=stopped,
    )


def tag_sentences(model: EntityTagger, sentences: Sequence[Sequence[str]]) -> List[List[str]]:
    """`EntityTagger.predict` (the tags of each sentence)."""
    return model.predict(sentences)


def format_entities(tokens: Sequence[str], tags: Sequence[str]) -> str:
    """A sentence with its entities in brackets: ``[Pankaj PER] lives in [Munich LOC]``."""
    spans = {a: (k, b) for k, a, b in entity_spans(tags)}
    out: List[str] = []
    i = 0
    while i < len(tokens):
        if i in spans:
            k, b = spans[i]
            out.append(f"[{' '.join(tokens[i:b])} {k}]")
            i = b
        else:
            out.append(tokens[i])
            i += 1
    return " ".join(out)


def _split(
    sentences: List[Sentence], test_fraction: float, seed: int
) -> Tuple[List[Sentence], List[Sentence]]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sentences))
    k = int(round(len(sentences) * test_fraction))
    k = min(max(k, 1), len(sentences) - 1)
    test = sorted(order[:k].tolist())
    keep = sorted(order[k:].tolist())
    return [sentences[i] for i in keep], [sentences[i] for i in test]


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add ``crnn tag`` to an argparse subparsers object."""
    d = DEFAULTS
    p = subparsers.add_parser(
        "tag",
        help="named-entity recognition (people, places, organisations, dates) with a "
        "bidirectional LSTM; entity-level F1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Train a named-entity tagger (word vectors and word shapes -> bidirectional LSTM -> "
            "a BIO tag per word) and report entity-level precision, recall and F1 on held-out "
            "sentences (an entity counts only with its exact span and type, as conlleval "
            "scores), next to the most-frequent-tag baseline.\n\n"
            "Without --conll the data are the built-in sentences (crnn.datasets.load_ner: 303 "
            "training and 147 held-out English sentences labelled PER, LOC, ORG and DATE by "
            "hand; the held-out sentences name people, places and organisations that the "
            "training sentences never mention)."
        ),
        epilog=(
            'examples:\n  crnn tag --predict "Pankaj lives in Munich"\n'
            "  crnn tag --conll train.conll --conll-test test.conll --tag-column 4 "
            "--save ner.npz\n"
            '  crnn tag --load ner.npz --predict "Maria joined Siemens in Berlin"'
        ),
    )
    g = p.add_argument_group("data")
    g.add_argument(
        "--conll",
        metavar="FILE",
        help="training sentences in CoNLL format: a token and a BIO tag per line, "
        "a blank line between sentences (default: the built-in set)",
    )
    g.add_argument(
        "--conll-test",
        metavar="FILE",
        help="held-out sentences, same format (default: --test-fraction of --conll)",
    )
    g.add_argument(
        "--token-column",
        type=int,
        default=1,
        metavar="N",
        help="column of the tokens, from 1; negative counts from the end (default 1)",
    )
    g.add_argument(
        "--tag-column",
        type=int,
        default=-1,
        metavar="N",
        help="column of the BIO tags (default -1, the last)",
    )
    g.add_argument(
        "--test-fraction",
        type=fraction,
        default=d["test_fraction"],
        metavar="F",
        help=f"share of --conll's sentences held out, when there is no --conll-test "
        f"(default {d['test_fraction']})",
    )
    g.add_argument("--encoding", default="utf-8", help="of the files (default utf-8)")
    g = p.add_argument_group("model and training")
    add_cell_option(g, default=d["cell"])
    add_embedding_option(g, default=d["embedding_dim"])
    g.add_argument(
        "--hidden",
        type=positive_int,
        default=d["hidden"],
        metavar="H",
        help=f"hidden units per direction (default {d['hidden']})",
    )
    g.add_argument(
        "--char-features",
        action="store_true",
        help="also read a learned vector of each word's last three letters",
    )
    g.add_argument(
        "--epochs",
        type=positive_int,
        default=d["epochs"],
        metavar="E",
        help=f"passes over the training sentences (default {d['epochs']})",
    )
    g.add_argument(
        "--seconds",
        type=positive_float,
        default=d["seconds"],
        metavar="S",
        help=f"stop after the epoch that crosses S seconds (default {d['seconds']:g})",
    )
    g.add_argument(
        "--lr",
        type=positive_float,
        default=d["lr"],
        help=f"Adam's learning rate (default {d['lr']:g})",
    )
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=d["batch_size"],
        metavar="B",
        help=f"sentences per step (default {d['batch_size']})",
    )
    g.add_argument(
        "--word-dropout",
        type=_probability,
        default=d["word_dropout"],
        metavar="P",
        help=f"chance that a word reads as unknown during training (default {d['word_dropout']})",
    )
    g.add_argument(
        "--seed",
        type=nonnegative_int,
        default=d["seed"],
        help="seed of the initialisation, the shuffling and the split (default 0)",
    )
    add_threads_option(g)
    g = p.add_argument_group("output")
    g.add_argument(
        "--predict",
        action="append",
        default=[],
        metavar="TEXT",
        help="print the entities of this sentence (repeatable)",
    )
    g.add_argument("--save", metavar="MODEL.npz", help="save the trained tagger (crnn.save)")
    g.add_argument(
        "--load",
        metavar="MODEL.npz",
        help="use a tagger saved with --save instead of training one (with --predict, "
        "and --conll / --conll-test to score it)",
    )
    g.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (precision, recall, f1, baseline, ...) instead of text",
    )
    p.set_defaults(func=handler)


def _probability(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {s!r}") from None
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {s!r}")
    return v


def _load_tagger(path: str) -> EntityTagger:
    import os

    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CLIError(f"{path}: is a directory, not a model file")
    try:
        model = _load(path)
    except (TypeError, ValueError, OSError, KeyError) as exc:
        raise CLIError(f"{path}: {exc}") from None
    if not isinstance(model, EntityTagger):
        raise CLIError(
            f"{path} holds a {type(model).__name__}, not a tagger saved by `crnn tag --save`"
        )
    return model


def _pct(v: float) -> str:
    return f"{100 * v:5.1f}%"


@one_blas_thread
def handler(args: argparse.Namespace) -> int:
    """Run ``crnn tag``; returns the exit status."""
    apply_threads(args)
    if args.conll_test and not args.conll and not args.load:
        raise CLIError("--conll-test needs --conll (the training sentences) or --load")
    if args.save:
        check_output_path(args.save, "--save")
    out = sys.stdout if not args.json else None
    # ---- data
    train: List[Sentence] = []
    test: List[Sentence] = []
    if args.conll:
        name = args.conll
        sents = read_conll(args.conll, args.token_column, args.tag_column, args.encoding)
        if args.conll_test:
            test = read_conll(args.conll_test, args.token_column, args.tag_column, args.encoding)
            train = sents
        elif args.load:
            test = sents
        else:
            if len(sents) < 2:
                raise CLIError(
                    f"{args.conll}: only {len(sents)} sentence; need at least 2 to hold "
                    f"one out (or give --conll-test)"
                )
            train, test = _split(sents, args.test_fraction, args.seed)
        if not args.load and not any(t != "O" for _, tags in train for t in tags):
            raise CLIError(f"{args.conll}: the training sentences have no entity (every tag is O)")
        split = f"{len(train)} training, {len(test)} held-out sentences" + (
            f" ({args.conll_test})"
            if args.conll_test
            else ""
            if args.load
            else f" (a random {args.test_fraction:g} of {args.conll})"
        )
    elif args.load:
        name = None
        split = ""
    else:
        train, test = datasets.load_ner()
        name = "built-in NER sentences"
        split = (
            f"{len(train)} training, {len(test)} held-out sentences (no person, place or "
            f"organisation of the held-out sentences occurs in training)"
        )

    # ---- model
    if args.load:
        model = _load_tagger(args.load)
        res = None
    else:

        def line(msg: str) -> None:
            if out is not None:
                print(msg, file=out, flush=True)

        types = sorted({t[2:] for _, tags in train for t in tags if t != "O"})
        n_tok = sum(len(s) for s, _ in train)
        line(f"data      {name}: {split}")
        line(f"          entity types {', '.join(types)}; {n_tok:,} training tokens")
        with Progress(
            args.epochs, desc="training", unit="epochs", mode="off" if args.json else None
        ) as bar:
            res = train_tagger(
                train,
                cell=args.cell,
                embedding_dim=args.embedding_dim,
                hidden=args.hidden,
                epochs=args.epochs,
                seconds=args.seconds,
                lr=args.lr,
                batch_size=args.batch_size,
                word_dropout=args.word_dropout,
                char_features=args.char_features,
                seed=args.seed,
                on_epoch=lambda e, loss: bar.update(1, f"loss {loss:.3f}"),
            )
        model = res.model
        line(f"model     {_describe(model)}")
        line(
            f"training  Adam (lr {args.lr:g}, gradient norm clipped at 5), {res.epochs} epochs "
            f"in {res.seconds:.1f} s{' (stopped by --seconds)' if res.stopped_early else ''}; "
            f"loss {res.first_loss:.3f} -> {res.loss:.3f} per token"
        )
        if args.save:
            try:
                _save(model, args.save)
            except OSError as exc:
                raise CLIError(f"{args.save}: cannot write it ({exc.strerror or exc})") from None

    # ---- scores
    summary: Dict[str, Any] = {}
    if test:
        pred = model.predict([s for s, _ in test])
        unknown = sorted({t for _, tags in test for t in tags} - set(model.tags))
        scores = entity_scores([t for _, t in test], pred)
        summary.update(data=name, n_train=len(train), n_test=len(test), **scores.as_dict())
        if train:
            base = entity_scores(
                [t for _, t in test], most_frequent_tags(train, [s for s, _ in test])
            )
            summary["baseline"] = base.as_dict()
        if out is not None:
            print(
                f"held-out  {scores.n_true} entities in {len(test)} sentences; exact span and "
                f"type (as conlleval):",
                file=out,
            )
            print(f"          {'':<22}precision  recall      F1", file=out)
            print(
                f"          {'tagger':<22}{_pct(scores.precision):>9} {_pct(scores.recall):>7} "
                f"{_pct(scores.f1):>7}",
                file=out,
            )
            if train:
                print(
                    f"          {'most-frequent tag':<22}{_pct(base.precision):>9} "
                    f"{_pct(base.recall):>7} {_pct(base.f1):>7}",
                    file=out,
                )
            per = "  ".join(f"{k} {100 * v['f1']:.1f}" for k, v in scores.per_type.items())
            print(f"          F1 per type (tagger): {per}", file=out)
            if unknown:
                print(
                    f"note      the held-out sentences use tags the tagger never saw: "
                    f"{', '.join(unknown)}",
                    file=out,
                )
            shown = 0
            for (toks, tags), p in zip(test, pred):
                if shown == 3:
                    break
                print(f"  {'ok   ' if tags == p else 'WRONG'} {format_entities(toks, p)}", file=out)
                shown += 1
    if res is not None:
        summary.update(
            epochs=res.epochs,
            seconds=round(res.seconds, 3),
            stopped_early=res.stopped_early,
            loss=res.loss,
        )
    summary.update(
        cell=model.rnn.spec.name,
        embedding_dim=model.embedding_dim,
        hidden=model.rnn.hidden_size,
        char_features=model.suffix_vocab is not None,
        seed=args.seed,
    )

    # ---- predictions
    preds = []
    for text in args.predict:
        tokens = tokenize_sentence(text)
        tags = model.predict([tokens])[0] if tokens else []
        ents = [
            dict(type=k, text=" ".join(tokens[a:b]), start=a, end=b)
            for k, a, b in entity_spans(tags)
        ]
        preds.append(dict(text=text, tokens=tokens, tags=tags, entities=ents))
        if out is not None:
            print(
                f"predicted {format_entities(tokens, tags) if tokens else '(no words)'}", file=out
            )
            for e in ents:
                print(f"          {e['type']:<5} {e['text']}", file=out)
    if args.predict:
        summary["predictions"] = preds
    if args.save and out is not None:
        print(
            f'saved     {args.save}  (try: crnn tag --load {args.save} --predict "...")', file=out
        )
    if args.json:
        print_json(summary)
    elif not test and not args.predict:
        print("nothing to do: give --predict TEXT (or --conll FILE to score the tagger)")
    return 0


def _describe(model: EntityTagger) -> str:
    words = (
        f"word vectors {model.embedding_dim}"
        if model.embedding_dim
        else f"one-hot words {len(model.vocab)}"
    )
    suffix = f" + suffix vectors {model.suffix_dim}" if model.suffix_vocab is not None else ""
    return (
        f"EntityTagger: {words} ({len(model.vocab):,} words) + word shape {model.n_shapes}"
        f"{suffix} -> bidirectional {model.rnn.spec.title} {model.rnn.hidden_size} -> "
        f"Linear {len(model.tags)} tags ({model.num_parameters():,} parameters)"
    )
