"""Vocabularies and vectorisation: from text and sequences to arrays.

Everything returns plain NumPy arrays laid out as the rest of crnn expects
them: integer ids, one-hot or bag-of-words float matrices, and time-major
``(T, B, ...)`` padded batches with their ``lengths``.

Contents
--------
CharVocab
    Characters <-> integer ids, with an unknown token (id 0).
WordVocab
    Words <-> integer ids, with an unknown token (id 0), optional special
    tokens, a minimum count and a maximum size; `tokenize` splits text.
one_hot
    Integer ids -> one-hot vectors (the same function as
    `crnn.models.one_hot`).
bag_of_words
    Documents -> ``(N, V)`` count / binary / frequency feature vectors.
pad_batch
    Variable-length sequences -> time-major padded array and lengths.
batches
    Mini-batches of padded sequences (and targets), optionally shuffled.
streams
    One long id sequence -> ``(T, B)`` parallel streams for truncated BPTT.

Example
-------
>>> from crnn.data import CharVocab, pad_batch
>>> v = CharVocab.from_text("hello world")
>>> ids = v.encode("hello")
>>> v.decode(ids)
'hello'
>>> x, lengths = pad_batch([v.encode("hi"), v.encode("hello")])
>>> x.shape, lengths.tolist()
((5, 2), [2, 5])
"""

from __future__ import annotations

import collections
import numbers
import re
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .module import check_int, float_dtype

__all__ = [
    "CharVocab",
    "WordVocab",
    "tokenize",
    "one_hot",
    "bag_of_words",
    "pad_batch",
    "Batch",
    "batches",
    "streams",
]

_TOKEN_RE = re.compile(r"\w+(?:'\w+)*|[^\w\s]", re.UNICODE)


def one_hot(ids: Any, num_classes: int, dtype: Any = np.float32) -> np.ndarray:
    """One-hot encode integer ids.

    Parameters
    ----------
    ids : array_like of ints in [0, num_classes), any shape
    num_classes : int
    dtype : float32 or float64

    Returns
    -------
    ndarray, shape ``ids.shape + (num_classes,)``
    """
    arr = np.asarray(ids)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"ids must be integers, got dtype {arr.dtype}")
    n = check_int("num_classes", num_classes, 1)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"ids must lie in [0, {n}), got min {arr.min()} max {arr.max()}")
    out = np.zeros(arr.shape + (n,), dtype=float_dtype(dtype))
    np.put_along_axis(out, arr[..., None].astype(np.intp), 1, axis=-1)
    return out


def tokenize(text: str, lower: bool = True) -> List[str]:
    """Split text into words and single punctuation marks.

    Words are runs of letters, digits and underscores (apostrophes inside a
    word are kept: ``"don't"``); every other non-space character is a token
    of its own. Whitespace separates tokens and is dropped.

    Parameters
    ----------
    text : str
    lower : bool
        Lower-case the text first.

    Returns
    -------
    list of str
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _TOKEN_RE.findall(text.lower() if lower else text)


def _check_ids(ids: Any, size: int) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.size == 0:
        return arr.astype(np.int64).reshape(arr.shape)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"ids must be integers, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= size:
        raise ValueError(f"ids must lie in [0, {size}), got min {arr.min()} max {arr.max()}")
    return arr


class _Vocab:
    """Shared machinery: an ordered list of tokens, id 0 the unknown token."""

    def __init__(self, tokens: Sequence[str], unk: str) -> None:
        if not isinstance(unk, str) or not unk:
            raise ValueError(f"unk must be a non-empty string, got {unk!r}")
        self.unk = unk
        itos = [unk]
        for tok in tokens:
            if not isinstance(tok, str) or not tok:
                raise ValueError(f"tokens must be non-empty strings, got {tok!r}")
            if tok == unk:
                raise ValueError(f"the unknown token {unk!r} may not also be a regular token")
            itos.append(tok)
        if len(set(itos)) != len(itos):
            dup = [t for t, c in collections.Counter(itos).items() if c > 1]
            raise ValueError(f"duplicate tokens: {dup[:5]!r}")
        self.itos: List[str] = itos
        self.stoi: Dict[str, int] = {t: i for i, t in enumerate(itos)}

    unk_id = 0
    """The id of the unknown token (always 0)."""

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __iter__(self) -> Iterator[str]:
        return iter(self.itos)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.itos == self.itos

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(self.itos)))

    @property
    def tokens(self) -> List[str]:
        """All tokens in id order; ``tokens[0]`` is the unknown token."""
        return list(self.itos)

    def index(self, token: str) -> int:
        """The id of `token`, or `unk_id` (0) if it is not in the vocabulary."""
        return self.stoi.get(token, 0)

    def token(self, i: int) -> str:
        """The token of id `i`."""
        if (
            isinstance(i, bool)
            or not isinstance(i, numbers.Integral)
            or not 0 <= i < len(self.itos)
        ):
            raise ValueError(f"id must be an integer in [0, {len(self.itos)}), got {i!r}")
        return self.itos[int(i)]

    def one_hot(self, ids: Any, dtype: Any = np.float32) -> np.ndarray:
        """One-hot encode ids of this vocabulary: shape ``ids.shape + (len(self),)``."""
        return one_hot(np.asarray(ids), len(self), dtype)


class CharVocab(_Vocab):
    """Characters <-> integer ids.

    Id 0 is the unknown token: `encode` maps every character that is not in
    the vocabulary to it, and `decode` turns it back into ``unk``. The other
    characters get ids 1, 2, ... in the order given (`from_text` sorts them,
    so the ids do not depend on the text's order).

    Parameters
    ----------
    chars : str or iterable of single characters
        The known characters, without repeats.
    unk : str
        What `decode` writes for the unknown id; by default U+FFFD, the
        Unicode replacement character. It may be any non-empty string that
        is not one of `chars`.

    Attributes
    ----------
    chars : str
        The known characters in id order (ids 1 ..).
    unk_id : int
        0.
    """

    def __init__(self, chars: Union[str, Iterable[str]], unk: str = "\ufffd") -> None:
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"chars must be single characters, got {c!r}")
        super().__init__(chars, unk)
        self._lut: Optional[np.ndarray] = None

    @classmethod
    def from_text(cls, text: str, min_count: int = 1, unk: str = "\ufffd") -> "CharVocab":
        """The vocabulary of the characters of `text`, sorted by code point.

        Characters seen fewer than `min_count` times are left out (they will
        encode as the unknown id).
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        counts = collections.Counter(text)
        if len(unk) == 1:
            counts.pop(unk, None)  # the unknown token's own character is not a regular one
        return cls(sorted(c for c, n in counts.items() if n >= min_count), unk=unk)

    @property
    def chars(self) -> str:
        """The known characters, in id order (ids 1 ..)."""
        return "".join(self.itos[1:])

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of `text`: int64 array of shape ``(len(text),)``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text:
            return np.zeros(0, dtype=np.int64)
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        if self._lut is None:  # code point -> id, built on first use
            top = max((ord(c) for c in self.itos[1:]), default=0) + 1
            lut = np.zeros(top, dtype=np.int32 if len(self) < 2**31 else np.int64)
            for i, c in enumerate(self.itos[1:], start=1):
                lut[ord(c)] = i
            self._lut = lut
        lut = self._lut
        out = np.zeros(cps.shape, dtype=np.int64)
        inside = cps < lut.shape[0]
        out[inside] = lut[cps[inside]]
        return out

    def decode(self, ids: Any) -> str:
        """The text of a 1-D sequence of ids (the unknown id becomes ``unk``)."""
        arr = _check_ids(ids, len(self))
        if arr.ndim != 1:
            raise ValueError(f"ids must be 1-D, got shape {arr.shape}")
        itos = self.itos
        return "".join(itos[i] for i in arr.tolist())

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-serialisable description; `from_dict` rebuilds the vocabulary."""
        return {"type": "char", "chars": self.chars, "unk": self.unk}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "CharVocab":
        """The vocabulary that `to_dict` described."""
        return cls(d["chars"], unk=d.get("unk", "\ufffd"))

    def __repr__(self) -> str:
        shown = self.chars if len(self.chars) <= 40 else self.chars[:37] + "..."
        return f"CharVocab({len(self)} ids: unk + {shown!r})"


class WordVocab(_Vocab):
    """Words <-> integer ids.

    Id 0 is the unknown token ``unk`` (default ``"<unk>"``); then come the
    `specials` (for example ``"<pad>"``, ``"<s>"``, ``"</s>"``) in the order
    given, then the words.

    Parameters
    ----------
    words : iterable of str
        The known words, without repeats, in id order.
    unk : str
    specials : sequence of str
        Extra reserved tokens, ids 1 .. len(specials).
    lower : bool
        Whether `encode` lower-cases text before splitting it (strings are
        split with `tokenize`; lists of tokens are used as they are). The
        module function `crnn.data.bag_of_words`, given this vocabulary,
        follows the same setting.
    """

    def __init__(
        self,
        words: Iterable[str],
        unk: str = "<unk>",
        specials: Sequence[str] = (),
        lower: bool = True,
    ) -> None:
        if isinstance(specials, str):
            raise TypeError("specials must be a sequence of strings, not a single string")
        self.specials = list(specials)
        self.lower = bool(lower)
        super().__init__(self.specials + list(words), unk)

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[Union[str, Sequence[str]]],
        min_count: int = 1,
        max_size: Optional[int] = None,
        unk: str = "<unk>",
        specials: Sequence[str] = (),
        lower: bool = True,
    ) -> "WordVocab":
        """Build a vocabulary from documents.

        Parameters
        ----------
        texts : iterable of str or of token lists
            Strings are split with ``tokenize(text, lower)``.
        min_count : int
            Words seen fewer times are left out.
        max_size : int or None
            Keep at most this many words (the most frequent; ties broken
            alphabetically), not counting ``unk`` and the specials.

        Returns
        -------
        WordVocab
            Words ordered by decreasing count, then alphabetically.
        """
        if isinstance(texts, str):
            raise TypeError(
                "texts must be an iterable of documents, not a single string (wrap it in a list)"
            )
        if max_size is not None and (not isinstance(max_size, numbers.Integral) or max_size < 0):
            raise ValueError(f"max_size must be a non-negative integer or None, got {max_size!r}")
        counts: collections.Counter = collections.Counter()
        for doc in texts:
            counts.update(_tokens(doc, lower))
        reserved = {unk, *specials}
        words = sorted(
            (w for w, n in counts.items() if n >= min_count and w not in reserved),
            key=lambda w: (-counts[w], w),
        )
        if max_size is not None:
            words = words[:max_size]
        return cls(words, unk=unk, specials=specials, lower=lower)

    def tokenize(self, text: str) -> List[str]:
        """`tokenize` with this vocabulary's ``lower`` setting."""
        return tokenize(text, self.lower)

    def encode(self, doc: Union[str, Sequence[str]]) -> np.ndarray:
        """Ids of a document's tokens (unknown words -> 0): int64, shape ``(n_tokens,)``.

        `doc` is a string (split with `tokenize`) or a list of tokens.
        """
        stoi = self.stoi
        return np.array([stoi.get(t, 0) for t in _tokens(doc, self.lower)], dtype=np.int64)

    def decode(self, ids: Any, sep: str = " ") -> str:
        """Tokens of a 1-D sequence of ids, joined by `sep`."""
        arr = _check_ids(ids, len(self))
        if arr.ndim != 1:
            raise ValueError(f"ids must be 1-D, got shape {arr.shape}")
        return sep.join(self.itos[i] for i in arr.tolist())

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-serialisable description; `from_dict` rebuilds the vocabulary."""
        n = 1 + len(self.specials)
        return {
            "type": "word",
            "words": self.itos[n:],
            "unk": self.unk,
            "specials": self.specials,
            "lower": self.lower,
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "WordVocab":
        """The vocabulary that `to_dict` described."""
        return cls(
            d["words"],
            unk=d.get("unk", "<unk>"),
            specials=d.get("specials", ()),
            lower=d.get("lower", True),
        )

    def __repr__(self) -> str:
        head = self.itos[1 + len(self.specials) :][:8]
        return f"WordVocab({len(self)} ids: {self.unk!r}, specials {self.specials!r}, words {head!r}...)"


def _tokens(doc: Union[str, Sequence[str]], lower: bool) -> List[str]:
    if isinstance(doc, str):
        return tokenize(doc, lower)
    if isinstance(doc, (bytes, bytearray)):
        raise TypeError("documents must be str or lists of str, not bytes (decode them first)")
    toks = list(doc)
    for t in toks:
        if not isinstance(t, str):
            raise TypeError(f"a token list must hold strings, got {type(t).__name__}")
    return toks


def bag_of_words(
    docs: Iterable[Union[str, Sequence[str]]],
    vocab: WordVocab,
    mode: str = "count",
    dtype: Any = np.float32,
    include_unk: bool = True,
) -> np.ndarray:
    """Bag-of-words feature vectors, one row per document.

    Parameters
    ----------
    docs : iterable of str or of token lists
    vocab : WordVocab
    mode : {"count", "binary", "freq"}
        "count": how many times each word occurs; "binary": 1 if it occurs;
        "freq": counts divided by the document's number of tokens (rows sum
        to 1; an empty document is a row of zeros).
    dtype : float32 or float64
    include_unk : bool
        Count unknown words in column 0 (else column 0 stays 0).

    Returns
    -------
    ndarray, shape (n_docs, len(vocab))
    """
    if not isinstance(vocab, WordVocab):
        raise TypeError(f"vocab must be a WordVocab, got {type(vocab).__name__}")
    if isinstance(docs, str):
        raise TypeError(
            "docs must be an iterable of documents, not a single string (wrap it in a list)"
        )
    if mode not in ("count", "binary", "freq"):
        raise ValueError(f"mode must be 'count', 'binary' or 'freq', got {mode!r}")
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    rows = [vocab.encode(d) for d in docs]
    out = np.zeros((len(rows), len(vocab)), dtype=dt)
    for r, ids in enumerate(rows):
        if ids.size:
            np.add.at(out[r], ids, 1)
    if not include_unk:
        out[:, 0] = 0
    if mode == "binary":
        np.minimum(out, 1, out=out)
    elif mode == "freq":
        totals = out.sum(axis=1, keepdims=True)
        np.divide(out, totals, out=out, where=totals > 0)
    return out


def pad_batch(
    sequences: Sequence[Any], pad_value: Any = 0, dtype: Any = None, max_len: Optional[int] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """Stack variable-length sequences into one time-major padded array.

    Parameters
    ----------
    sequences : sequence of array_like
        B sequences, each of shape ``(L_b,)`` (ids) or ``(L_b, F)``
        (feature vectors; every F equal). Lengths may differ, and may be 0.
    pad_value : scalar
        Written after each sequence's end.
    dtype : dtype or None
        Of the result; None keeps the common dtype of the sequences.
    max_len : int or None
        Cut sequences longer than this (and their lengths). None: T is the
        longest length.

    Returns
    -------
    padded : ndarray, shape (T, B) or (T, B, F)
        ``padded[t, b]`` is ``sequences[b][t]`` for ``t < lengths[b]``, else
        `pad_value`. Time-major, as `crnn.RNN` expects.
    lengths : ndarray of int64, shape (B,)
        Pass as ``lengths=`` to crnn's layers and models.
    """
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        raise TypeError("sequences must be a sequence (list, tuple) of arrays")
    if len(sequences) == 0:
        raise ValueError("sequences is empty: nothing to batch")
    arrs = [np.asarray(s) for s in sequences]
    ndims = {a.ndim for a in arrs}
    if not ndims <= {1, 2} or len(ndims) != 1:
        raise ValueError(
            f"every sequence must be 1-D (L,) or every one 2-D (L, F); got ndims {sorted(ndims)}"
        )
    feat = arrs[0].shape[1:]
    for i, a in enumerate(arrs):
        if a.shape[1:] != feat:
            raise ValueError(
                f"sequence {i} has shape {a.shape}; expected (L, {feat[0]}) like sequence 0"
            )
    if max_len is not None:
        if isinstance(max_len, bool) or not isinstance(max_len, numbers.Integral) or max_len < 0:
            raise ValueError(f"max_len must be a non-negative integer or None, got {max_len!r}")
        arrs = [a[:max_len] for a in arrs]
    lengths = np.array([a.shape[0] for a in arrs], dtype=np.int64)
    T = int(lengths.max()) if max_len is None else int(min(max_len, lengths.max()))
    dt = np.result_type(*arrs) if dtype is None else np.dtype(dtype)
    out = np.full((T, len(arrs)) + feat, pad_value, dtype=dt)
    for b, a in enumerate(arrs):
        out[: a.shape[0], b] = a
    return out, lengths


class Batch(NamedTuple):
    """One mini-batch from `batches`.

    Attributes
    ----------
    x : ndarray, shape (T, B) or (T, B, F)
        Padded, time-major inputs.
    lengths : ndarray of int64, shape (B,)
    y : ndarray or None
        The targets of these rows (``targets[indices]``), or None.
    indices : ndarray of int64, shape (B,)
        Positions of the rows in the original data.
    """

    x: np.ndarray
    lengths: np.ndarray
    y: Optional[np.ndarray]
    indices: np.ndarray


def batches(
    sequences: Sequence[Any],
    targets: Any = None,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: Optional[Union[int, np.random.Generator]] = None,
    drop_last: bool = False,
    pad_value: Any = 0,
    dtype: Any = None,
) -> Iterator[Batch]:
    """Iterate over mini-batches of padded sequences.

    Parameters
    ----------
    sequences : sequence of array_like
        As for `pad_batch`.
    targets : array_like or None
        One target per sequence (first axis of length ``len(sequences)``),
        e.g. class ids; each batch holds the targets of its rows.
    batch_size : int
    shuffle : bool
        Visit the sequences in a random order (drawn from `seed`).
    seed : int, numpy.random.Generator or None
    drop_last : bool
        Skip a last batch smaller than `batch_size`.
    pad_value, dtype
        As for `pad_batch`.

    Yields
    ------
    Batch
        ``(x, lengths, y, indices)``.
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, numbers.Integral)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    n = len(sequences)
    y_all = None
    if targets is not None:
        y_all = np.asarray(targets)
        if y_all.ndim == 0 or y_all.shape[0] != n:
            raise ValueError(
                f"targets must have {n} entries (one per sequence), got shape {y_all.shape}"
            )
    order = np.arange(n, dtype=np.int64)
    if shuffle:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        order = rng.permutation(n).astype(np.int64)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        if drop_last and idx.size < batch_size:
            break
        x, lengths = pad_batch([sequences[i] for i in idx], pad_value=pad_value, dtype=dtype)
        yield Batch(x, lengths, None if y_all is None else y_all[idx], idx)


def streams(ids: Any, batch_size: int) -> np.ndarray:
    """Cut one long sequence into `batch_size` parallel streams, time-major.

    Stream b is the contiguous chunk ``ids[b * T:(b + 1) * T]`` with
    ``T = len(ids) // batch_size`` (the remainder is dropped), so windows of
    consecutive steps over the result continue each stream where the last
    window stopped: the layout stateful truncated BPTT
    (`crnn.training.TBPTT`) needs.

    Parameters
    ----------
    ids : array_like, shape (N,) or (N, F)
    batch_size : int, 1 <= batch_size <= N

    Returns
    -------
    ndarray, shape (T, batch_size) or (T, batch_size, F)
    """
    arr = np.asarray(ids)
    if arr.ndim not in (1, 2):
        raise ValueError(f"ids must be 1-D (N,) or 2-D (N, F), got shape {arr.shape}")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, numbers.Integral)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if batch_size > arr.shape[0]:
        raise ValueError(f"batch_size ({batch_size}) exceeds the sequence length ({arr.shape[0]})")
    T = arr.shape[0] // batch_size
    out = arr[: T * batch_size].reshape((batch_size, T) + arr.shape[1:])
    return np.ascontiguousarray(np.swapaxes(out, 0, 1))
