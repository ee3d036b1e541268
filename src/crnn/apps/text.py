"""Character-level language models: ``crnn demo``, ``crnn train-text``, ``crnn sample``.

A model reads one character at a time (one-hot) and predicts the next:
`crnn.models.CharRNN` (RNN -> Linear) trained many-to-many with stateful
truncated BPTT (`crnn.training.TBPTT`), softmax cross-entropy and Adam or
Adagrad with gradient-norm clipping. `crnn.models.CharModel` (re-exported
here) is a CharRNN that carries its character vocabulary, so one ``.npz``
file (`crnn.save`) holds all that ``crnn sample`` needs.

Python API
----------
>>> from crnn.apps.text import CharModel, train, load_model   # doctest: +SKIP
>>> model = CharModel.for_text(text, hidden_size=128, seed=0)  # doctest: +SKIP
>>> train(model, text, seconds=30)                             # doctest: +SKIP
>>> model.sample("The ", 200, temperature=0.8)                 # doctest: +SKIP

`crnn.load` reads a saved model after a plain ``import crnn``; `load_model`
also checks that the file holds a character model.

Words
-----
With ``--words``, ``crnn train-text`` trains a word-level model instead:
`WordModel` (a `crnn.models.CharRNN` over word ids, with an embedding, an
LSTM by default, and its `crnn.data.WordVocab`: lower-cased words seen at
least ``--min-count`` times, the others read as ``<unk>``). The last tenth
of the words (``--valid-fraction``) is held out, and the command reports
the model's perplexity there next to the unigram baseline's (every word
predicted by its training frequency, add-one smoothed, whatever came
before), over the same vocabulary and the same words. ``crnn sample`` on a
word model writes words, and ``--complete`` suggests the next word.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import math
import os
import sys
import textwrap
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from .. import _runtime
from ..data import WordVocab, streams, tokenize
from ..losses import log_softmax, softmax_cross_entropy
from ..models import CharModel, CharRNN
from ..optim import Adagrad, Adam
from ..serialization import load as _load, register_module, save as _save
from ..training import TBPTT
from .common import (
    CLIError,
    Progress,
    Timer,
    add_cell_option,
    add_embedding_option,
    add_threads_option,
    apply_threads,
    format_rate,
    format_seconds,
    fraction,
    nonnegative_float,
    nonnegative_int,
    one_blas_thread,
    positive_float,
    positive_int,
    print_json,
    read_text,
)
from .metrics import perplexity, unigram_perplexity
from .training_speed import speed_lines, training_speeds

__all__ = [
    "CharModel",
    "WordModel",
    "TrainResult",
    "train",
    "load_model",
    "demo_corpus",
    "complete",
    "detokenize",
    "evaluate_perplexity",
    "register",
    "DEMO_MODULES",
]


# --------------------------------------------------------------------------
# The model (`crnn.models.CharModel`, re-exported here)
# --------------------------------------------------------------------------


# What the commands train and load: a character model or a word model.
TextModel = Union[CharModel, "WordModel"]


def load_model(path: str, backend: Optional[str] = None) -> TextModel:
    """Load a model saved by ``crnn train-text`` (a `CharModel`, or a `WordModel`
    with ``--words``), or by `crnn.save` of one."""
    model = _load(path, backend=backend)
    if not isinstance(model, (CharModel, WordModel)):
        raise TypeError(
            f"{path} holds a {type(model).__name__}, not a character model or a "
            "word model (make one with `crnn train-text`)"
        )
    return model


# --------------------------------------------------------------------------
# Word-level models
# --------------------------------------------------------------------------

_NO_SPACE_BEFORE = set(".,;:!?)]}%'\"") | {"n't", "'s", "'re", "'ve", "'ll", "'d", "'m"}
_NO_SPACE_AFTER = set("([{$")


def detokenize(tokens: List[str]) -> str:
    """Words and punctuation marks back into text: a space between words, none
    before a closing mark (``.`` ``,`` ``;`` ``:`` ``!`` ``?`` ``)``) and none
    after ``(``."""
    out: List[str] = []
    for i, tok in enumerate(tokens):
        if i and tok not in _NO_SPACE_BEFORE and tokens[i - 1] not in _NO_SPACE_AFTER:
            out.append(" ")
        out.append(tok)
    return "".join(out)


@register_module
class WordModel(CharRNN):
    """A word-level language model that knows its words: word ids -> `crnn.Embedding`
    -> recurrent layer -> Linear -> next-word logits.

    A `crnn.models.CharRNN` over the ids of a `crnn.data.WordVocab` (id 0 is
    ``<unk>``, every word outside the vocabulary), trained like the character
    models (`train`). Text is split with `crnn.data.tokenize` (words and
    single punctuation marks, lower-cased by default).

    Parameters
    ----------
    words : list of str
        The known words, in id order (ids 1 ..).
    hidden_size, num_layers, nonlinearity, dropout, dtype, seed, backend
        As for `CharRNN`.
    cell : str
        Default "lstm".
    embedding_dim : int or None
        Size of the word vectors (default 64); None reads one-hot vectors.
    lower : bool
        Lower-case text before splitting it.

    Attributes
    ----------
    vocab : crnn.data.WordVocab
    """

    def __init__(
        self,
        words: List[str],
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        dropout: float = 0.0,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        cell: str = "lstm",
        embedding_dim: Optional[int] = 64,
        lower: bool = True,
    ) -> None:
        self.vocab = WordVocab(list(words), lower=lower)
        super().__init__(
            len(self.vocab),
            hidden_size,
            num_layers,
            nonlinearity=nonlinearity,
            dropout=dropout,
            dtype=dtype,
            seed=seed,
            backend=backend,
            cell=cell,
            embedding_dim=embedding_dim,
        )

    @classmethod
    def for_text(
        cls,
        text: str,
        hidden_size: int = 128,
        min_count: int = 2,
        max_size: Optional[int] = None,
        lower: bool = True,
        **kwargs: Any,
    ) -> "WordModel":
        """A fresh model over the words of `text` seen at least `min_count` times
        (at most `max_size` of them, the most frequent)."""
        vocab = WordVocab.from_texts([text], min_count=min_count, max_size=max_size, lower=lower)
        return cls(vocab.itos[1:], hidden_size, lower=lower, **kwargs)

    def config(self) -> Dict[str, Any]:
        cfg = super().config()
        del cfg["vocab_size"]
        cfg.setdefault("embedding_dim", None)
        return dict(words=self.vocab.itos[1:], lower=self.vocab.lower, **cfg)

    def encode(self, text: Union[str, List[str]]) -> np.ndarray:
        """Word ids of a text (or of a list of tokens); unknown words -> 0."""
        return self.vocab.encode(text)

    def decode(self, ids: Any) -> str:
        """Text of word ids, joined by `detokenize`."""
        return detokenize([self.vocab.itos[i] for i in np.asarray(ids, dtype=np.int64).tolist()])

    def _prime_ids(self, prime: str) -> np.ndarray:
        ids = self.encode(prime)
        if ids.size == 0:  # start after the end of a sentence
            ids = np.array([self.vocab.index(".") or 1], dtype=np.int64)
        return ids

    def sample(
        self,
        prime: str,
        n: int,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        rng: Optional[Union[int, np.random.Generator]] = None,
    ) -> str:
        """`n` words sampled after `prime` (not included), as text."""
        ids = self.generate(
            self._prime_ids(prime), n, temperature=temperature, top_k=top_k, rng=rng
        )
        return self.decode(ids)

    def sample_ids(self, prime: str, n: int, **kwargs: Any) -> np.ndarray:
        """Like `sample`, but the word ids."""
        return self.generate(self._prime_ids(prime), n, **kwargs)

    def next_words(self, prime: str, k: int = 5) -> List[Tuple[str, float]]:
        """The `k` likeliest next words after `prime`, with their probabilities
        (``<unk>`` left out)."""
        was_training = self.training
        self.eval()
        try:
            logits, _ = self(self._prime_ids(prime)[:, None])
        finally:
            self.train(was_training)
        p = np.exp(log_softmax(logits[-1, 0].astype(np.float64)))
        p[0] = -1.0
        best = np.argsort(-p, kind="stable")[:k]
        return [(self.vocab.itos[i], float(p[i])) for i in best if p[i] >= 0]


def evaluate_perplexity(
    model: CharRNN, ids: np.ndarray, seq_len: int = 64, batch_size: int = 16
) -> Tuple[float, int, np.ndarray]:
    """Total negative log-likelihood (nats) of a model on a sequence of ids.

    The ids are cut into ``batch_size`` parallel streams (`crnn.data.streams`,
    as in training) and read in windows of `seq_len` steps, the state running
    on; every id but the first of each stream is predicted.

    Returns
    -------
    total_nll : float
    n : int
        How many ids were predicted (``perplexity = exp(total_nll / n)``).
    targets : ndarray of int64
        Those ids (to score a baseline on exactly the same ones).
    """
    ids = np.asarray(ids, dtype=np.int64)
    B = max(1, min(batch_size, ids.shape[0] // 2))
    data = streams(ids, B)
    x, y = data[:-1], data[1:]
    was_training = model.training
    model.eval()
    total = 0.0
    h = None
    try:
        for start in range(0, x.shape[0], seq_len):
            logits, h = model(x[start : start + seq_len], h)
            lp = log_softmax(logits.astype(np.float64))
            tgt = y[start : start + seq_len]
            total -= float(np.take_along_axis(lp, tgt[..., None], axis=-1).sum())
    finally:
        model.train(was_training)
    return total, int(y.size), y.reshape(-1)


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def complete(prime: str, continuation: str, until: str = "word") -> str:
    """Cut a sampled continuation at the end of the word (or line) it completes.

    ``until="word"``: if the prime ends inside a word, keep the characters
    that finish it; otherwise keep the next whole word (and the spaces before
    it). A newline always ends the completion. ``until="line"``: keep
    everything up to the end of the line.
    """
    if until == "line":
        i = continuation.find("\n")
        return continuation if i < 0 else continuation[:i]
    if until != "word":
        raise ValueError(f"until must be 'word' or 'line', got {until!r}")
    started = bool(prime) and _is_word_char(prime[-1])
    for i, ch in enumerate(continuation):
        if _is_word_char(ch):
            started = True
        elif started or ch == "\n":
            return continuation[:i]
    return continuation


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What `train` did.

    Attributes
    ----------
    chars : int
        Characters (a word model's words) trained on (predictions scored),
        over all windows.
    windows : int
        Optimizer steps (one per window).
    epochs : float
        Passes over the text (fractional when stopped by time).
    seconds : float
        Wall time of the whole loop, samples included.
    train_seconds : float
        Time spent in training steps only (what chars/s is computed from).
    first_loss, loss : float
        Mean cross-entropy (nats per character) of the first window and the
        smoothed loss at the end.
    batch_size, seq_len : int
        The layout actually used (the batch shrinks for a short text).
    interrupted : bool
        True if Ctrl-C stopped training early.
    """

    chars: int
    windows: int
    epochs: float
    seconds: float
    train_seconds: float
    first_loss: float
    loss: float
    batch_size: int
    seq_len: int
    interrupted: bool = False

    @property
    def chars_per_second(self) -> float:
        """Training speed: characters (or words) per second of training time."""
        return self.chars / self.train_seconds if self.train_seconds > 0 else 0.0


def make_optimizer(
    model: TextModel, name: str = "adam", lr: Optional[float] = None, clip: Optional[float] = 5.0
):
    """Adam (default lr 2e-3) or Adagrad (default lr 0.1), with gradient-norm clipping."""
    clip = None if not clip else float(clip)
    if name == "adam":
        return Adam(model.params, lr=2e-3 if lr is None else lr, clip_grad_norm=clip)
    if name == "adagrad":
        return Adagrad(model.params, lr=0.1 if lr is None else lr, clip_grad_norm=clip)
    raise ValueError(f"optimizer must be 'adam' or 'adagrad', got {name!r}")


def layout(n_chars: int, batch_size: int, seq_len: int) -> int:
    """The batch size to use on a text of `n_chars` characters: at most
    `batch_size`, and small enough that every stream holds at least one full
    window (``seq_len + 1`` characters)."""
    return max(1, min(batch_size, n_chars // (seq_len + 1)))


def train(
    model: TextModel,
    text: Union[str, np.ndarray],
    *,
    seq_len: int = 50,
    batch_size: int = 32,
    seconds: Optional[float] = None,
    epochs: Optional[float] = None,
    optimizer: Any = None,
    progress: Optional[Progress] = None,
    sample_every_seconds: float = 0.0,
    sample_every_windows: int = 0,
    on_sample: Optional[Callable[[float, float], None]] = None,
    rng: Optional[Union[int, np.random.Generator]] = None,
    trainer: Any = None,
) -> TrainResult:
    """Train `model` on `text` with stateful truncated BPTT.

    The text is cut into `batch_size` parallel streams (`crnn.data.streams`);
    each window of `seq_len` steps is one optimizer step, and the hidden
    state runs on from window to window (reset at each pass over the text).

    Parameters
    ----------
    model : CharModel
    text : str or 1-D array of ids
    seq_len, batch_size : int
        Window length and number of streams (shrunk for a short text, see
        `layout`).
    seconds, epochs : float or None
        Stop after this much wall time, or this many passes over the text
        (exactly one of them; default 1 epoch).
    optimizer : object or None
        Default: ``make_optimizer(model)`` (Adam, lr 2e-3, clip 5).
    progress : Progress or None
        Advanced in seconds when `seconds` is set, else in windows; its
        status shows the smoothed loss and characters (a word model's
        words) per second.
    sample_every_seconds, sample_every_windows : float, int
        Call ``on_sample(elapsed_seconds, smoothed_loss)`` every so many
        seconds, or every so many windows (0: never).
    rng : int, Generator or None
        Randomness of the window offsets between passes.
    trainer : object or None
        What runs each window: ``trainer.step(x, y) -> loss`` and
        ``trainer.reset()``, with `crnn.training.TBPTT`'s meaning. None: a
        TBPTT over `optimizer`; `crnn.dask.DataParallel` (``stateful=True``,
        over `model`) trains on a Dask cluster instead.

    Returns
    -------
    TrainResult
    """
    if seconds is not None and epochs is not None:
        raise ValueError("give seconds or epochs, not both")
    if seconds is None and epochs is None:
        epochs = 1
    ids = model.encode(text) if isinstance(text, str) else np.asarray(text, dtype=np.int64)
    if ids.ndim != 1 or ids.shape[0] < 2:
        raise ValueError("the text must have at least 2 characters")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    B = layout(ids.shape[0], batch_size, seq_len)
    opt = make_optimizer(model) if optimizer is None else optimizer
    tb = TBPTT(model, softmax_cross_entropy, opt, k=seq_len) if trainer is None else trainer
    model.train()

    clock = Timer()
    rate_unit = "words/s" if isinstance(model, WordModel) else "chars/s"
    train_time = 0.0
    chars = 0
    windows = 0
    first_loss = math.nan
    ema = math.nan
    epoch_f = 0.0
    next_sample_s = sample_every_seconds if sample_every_seconds > 0 else math.inf
    last = clock.seconds
    interrupted = False
    windows_total = None
    epoch = 0
    try:
        while True:
            # One pass: a random shift of the stream boundaries (after the
            # first pass) so windows do not always cut the text alike.
            shift = int(gen.integers(0, seq_len)) if epoch else 0
            if ids.shape[0] - shift < 2 * B:
                shift = 0
            data = streams(ids[shift:], B)
            x_all, y_all = data[:-1], data[1:]
            n_steps = x_all.shape[0]
            starts = range(0, n_steps, seq_len)
            if windows_total is None and epochs is not None:
                windows_total = max(1, int(math.ceil(epochs * len(starts))))
            tb.reset()
            for w, start in enumerate(starts):
                if windows_total is not None and windows >= windows_total:
                    break
                stop = min(start + seq_len, n_steps)
                t0 = time.perf_counter()
                loss = tb.step(x_all[start:stop], y_all[start:stop])
                train_time += time.perf_counter() - t0
                chars += (stop - start) * B
                windows += 1
                epoch_f = epoch + (w + 1) / len(starts)
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"the loss became {loss} at window {windows}; "
                        "try a smaller --lr or a --clip"
                    )
                if windows == 1:
                    first_loss = ema = loss
                else:
                    ema = 0.95 * ema + 0.05 * loss
                now = clock.seconds
                if progress is not None:
                    status = f"loss {ema:.3f}, {format_rate(chars / train_time)} {rate_unit}"
                    progress.update(now - last if seconds is not None else 1, status)
                last = now
                # No sample at the very end: the caller shows the final one.
                last_window = (
                    windows >= windows_total
                    if windows_total is not None
                    else seconds is not None and now >= seconds - 0.5 * sample_every_seconds
                )
                if (
                    on_sample is not None
                    and not last_window
                    and (
                        now >= next_sample_s
                        or (sample_every_windows > 0 and windows % sample_every_windows == 0)
                    )
                ):
                    on_sample(now, ema)
                    while next_sample_s <= now:
                        next_sample_s += sample_every_seconds
                    last = clock.seconds
                if seconds is not None and clock.seconds >= seconds:
                    break
            else:
                epoch += 1
                continue
            break
    except KeyboardInterrupt:
        interrupted = True
    return TrainResult(
        chars=chars,
        windows=windows,
        epochs=epoch_f,
        seconds=clock.seconds,
        train_seconds=train_time,
        first_loss=first_loss,
        loss=ema,
        batch_size=B,
        seq_len=seq_len,
        interrupted=interrupted,
    )


# --------------------------------------------------------------------------
# The demo corpus: docstrings of the standard library
# --------------------------------------------------------------------------

DEMO_MODULES = (
    "string",
    "re",
    "collections",
    "itertools",
    "functools",
    "operator",
    "json",
    "textwrap",
    "os.path",
    "random",
    "statistics",
    "fractions",
    "decimal",
    "datetime",
    "calendar",
    "heapq",
    "bisect",
    "pathlib",
    "argparse",
    "logging",
    "csv",
    "difflib",
    "shutil",
    "tempfile",
    "contextlib",
    "dataclasses",
    "enum",
    "inspect",
    "pprint",
    "base64",
    "gzip",
    "zipfile",
    "tarfile",
    "urllib.parse",
    "threading",
    "subprocess",
    "pickle",
    "copy",
    "abc",
    "glob",
    "fnmatch",
    "queue",
    "shlex",
    "configparser",
    "html",
    "uuid",
    "secrets",
    "weakref",
    "types",
    "traceback",
    "warnings",
    "ast",
    "tokenize",
    "timeit",
    "unittest",
)
"""The standard-library modules whose docstrings make the demo corpus."""


def demo_corpus(modules=DEMO_MODULES, min_count: int = 20) -> Tuple[str, int]:
    """The docstrings of `modules`, in a fixed order; and how many modules were read.

    For each module (in the order given): its own docstring, then, by name,
    the docstrings of the public functions and classes it defines, and of
    the public methods of those classes. Repeated docstrings are kept once.
    Characters occurring fewer than `min_count` times in the whole are
    dropped, so the vocabulary stays small. Every Python install has this
    text: nothing is downloaded.
    """
    seen = set()
    parts: List[str] = []

    def add(doc: Any) -> None:
        if isinstance(doc, str):
            doc = inspect.cleandoc(doc)
            if len(doc) >= 40 and doc not in seen:
                seen.add(doc)
                parts.append(doc)

    read = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in modules:
            try:
                mod = importlib.import_module(name)
            except ImportError:  # a trimmed-down Python may lack a module
                continue
            read += 1
            add(mod.__doc__)
            for attr, obj in sorted(vars(mod).items()):
                if attr.startswith("_") or not (inspect.isclass(obj) or inspect.isroutine(obj)):
                    continue
                if getattr(obj, "__module__", None) != mod.__name__:
                    continue
                add(obj.__doc__)
                if inspect.isclass(obj):
                    for mname, member in sorted(vars(obj).items()):
                        if mname.startswith("_"):
                            continue
                        if inspect.isroutine(member) or isinstance(
                            member, (property, classmethod, staticmethod)
                        ):
                            add(getattr(member, "__doc__", None))
    text = "\n\n".join(parts) + "\n"
    counts: Dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    rare = {ch for ch, n in counts.items() if n < min_count}
    if rare:
        text = "".join(ch for ch in text if ch not in rare)
    return text, read


# --------------------------------------------------------------------------
# Shared pieces of the commands
# --------------------------------------------------------------------------


def _engine_line(model: CharRNN) -> str:
    if model.backend == "numpy":
        return "NumPy reference engine (crnn.reference)"
    info = _runtime.build_info()
    threads = (
        f"{info['num_threads']} OpenMP thread{'s' if info['num_threads'] != 1 else ''}"
        if info["openmp"]
        else "single-threaded build"
    )
    return f"crnn C engine, {info['isa']} kernels, {threads}"


def _model_line(model: CharRNN) -> str:
    r = model.rnn
    layers = f"{r.num_layers} layers x {r.hidden_size}" if r.num_layers > 1 else f"{r.hidden_size}"
    act = f" {r.options['nonlinearity']}" if "nonlinearity" in r.options else ""
    embed = getattr(model, "embed", None)
    inputs = (
        f"one-hot {model.vocab_size}"
        if embed is None
        else f"embedding {model.vocab_size} x {embed.embedding_dim}"
    )
    name = "WordModel" if isinstance(model, WordModel) else "CharRNN"
    return (
        f"{name}: {inputs} -> {r.spec.title} {layers}{act} -> "
        f"Linear {model.vocab_size} ({model.num_parameters():,} parameters)"
    )


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.split("\n"))


def _show(text: str) -> str:
    """A sample for the terminal: tabs expanded, other control characters shown."""
    out = []
    for ch in text.expandtabs(4):
        out.append(ch if ch == "\n" or ch.isprintable() else f"\\x{ord(ch):02x}")
    return "".join(out)


def _check_budget(args: argparse.Namespace) -> None:
    if getattr(args, "seconds", None) is not None and args.seconds <= 0:
        raise CLIError("--seconds must be > 0")


def _save_model(model: TextModel, path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CLIError(f"{path}: the folder {folder} does not exist")
    try:
        _save(model, path)
    except OSError as exc:
        raise CLIError(f"{path}: cannot write it ({exc.strerror or exc})") from None


# --------------------------------------------------------------------------
# crnn demo
# --------------------------------------------------------------------------

DEMO_PRIME = "Return the "


@one_blas_thread
def cmd_demo(args: argparse.Namespace) -> int:
    _check_budget(args)
    _apply_threads(args)
    out = sys.stdout
    print(
        "crnn demo: a character-level RNN learns to write like the docstrings of "
        "Python's standard library.\n",
        file=out,
    )
    text, n_mod = demo_corpus()
    model = CharModel.for_text(
        text,
        args.hidden,
        seed=args.seed,
        backend=args.backend,
        cell=args.cell,
        embedding_dim=args.embedding_dim or None,
    )
    opt = make_optimizer(model, "adam", lr=args.lr, clip=5.0)
    B = layout(len(text), args.batch_size, args.seq_len)
    print(
        f"corpus    docstrings of {n_mod} standard-library modules: {len(text):,} characters, "
        f"{len(model.vocab) - 1} distinct",
        file=out,
    )
    print(f"model     {_model_line(model)}", file=out)
    print(f"engine    {_engine_line(model)}", file=out)
    print(
        f"training  Adam (lr {opt.lr:g}, gradient norm clipped at 5), stateful truncated BPTT: "
        f"windows of {args.seq_len} characters x {B} streams, {args.seconds:g} s\n",
        file=out,
        flush=True,
    )
    with Progress(args.seconds, desc="training", unit="s") as bar:
        res = train(
            model,
            text,
            seq_len=args.seq_len,
            batch_size=args.batch_size,
            seconds=args.seconds,
            optimizer=opt,
            progress=bar,
            rng=args.seed,
        )
    if res.interrupted:
        raise KeyboardInterrupt
    print(
        f"\ntrained   {res.chars:,} characters ({res.epochs:.2f} passes) in "
        f"{format_seconds(res.seconds)}, {format_rate(res.chars_per_second)} characters/s; "
        f"loss {res.first_loss:.2f} -> {res.loss:.2f} nats/character\n",
        file=out,
    )

    print(f"samples   (prime {DEMO_PRIME!r}, {args.length} characters)", file=out)
    rng = np.random.default_rng(args.seed)
    for temp in (0.5, 0.8, 1.0):
        cont = model.sample(DEMO_PRIME, args.length, temperature=temp, rng=rng)
        print(f"\n  temperature {temp}:", file=out)
        print(_indent(_show(DEMO_PRIME + cont)), file=out, flush=True)

    sp = training_speeds(model, args.seq_len, B, seed=args.seed)
    print(
        f"\nspeed     the same model, one window of {args.seq_len} characters x {B} streams, "
        f"best of several in turns (x: the C engine is that many times faster):",
        file=out,
    )
    for line in speed_lines(sp, format_seconds):
        print(line, file=out)
    if args.out:
        _save_model(model, args.out)
        print(
            f'\nsaved     {args.out}   (try: crnn sample {args.out} --prime "Return" '
            f"--length 80 --complete)",
            file=out,
        )
    print(
        "\nnext      crnn train-text FILE   crnn sample MODEL --prime TEXT   crnn bench   "
        "(crnn COMMAND --help)",
        file=out,
    )
    return 0


# --------------------------------------------------------------------------
# crnn train-text
# --------------------------------------------------------------------------


@one_blas_thread
def cmd_train_text(args: argparse.Namespace) -> int:
    _check_budget(args)
    _apply_threads(args)
    if args.epochs is not None and args.epochs <= 0:
        raise CLIError("--epochs must be > 0")
    text = read_text(args.file, encoding=args.encoding)
    if len(text) < 2:
        raise CLIError(f"{args.file}: the text is too short to learn from (at least 2 characters)")
    out_path = args.out or (os.path.splitext(os.path.basename(args.file))[0] + ".npz")
    if os.path.isdir(out_path):
        raise CLIError(f"{out_path}: is a directory (give --out a file name)")
    folder = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(folder):
        raise CLIError(f"{out_path}: the folder {folder} does not exist")
    words = bool(args.words)
    cell = args.cell or ("lstm" if words else "rnn")
    quiet = bool(args.json)

    def log(*a: Any, **k: Any) -> None:
        if not quiet:
            print(*a, **k)

    valid_ids: Optional[np.ndarray] = None
    model: TextModel
    if words:
        model, train_ids, valid_ids, n_tokens = _word_model(args, text, cell)
        data: Union[str, np.ndarray] = train_ids
        n_units, unit = int(train_ids.shape[0]), "words"
        log(
            f"text      {args.file}: {n_tokens:,} words and punctuation marks, "
            f"{len(set(tokenize(text)))} distinct; vocabulary {len(model.vocab):,} (seen >= "
            f"{args.min_count} times in the training part, the rest read as <unk>)"
        )
        log(
            f"split     {n_units:,} words for training, the last {valid_ids.shape[0]:,} "
            f"({args.valid_fraction:g}) held out"
        )
    else:
        if args.min_count != 2 or args.valid_fraction != 0.1 or args.max_vocab is not None:
            raise CLIError("--min-count, --max-vocab and --valid-fraction apply to --words only")
        model = CharModel.for_text(
            text,
            args.hidden,
            num_layers=args.layers,
            dropout=args.dropout,
            seed=args.seed,
            backend=args.backend,
            cell=cell,
            embedding_dim=args.embedding_dim or None,
        )
        data = text
        n_units, unit = len(text), "characters"
        log(f"text      {args.file}: {len(text):,} characters, {len(model.vocab) - 1} distinct")
    try:
        opt = make_optimizer(model, args.optimizer, lr=args.lr, clip=args.clip)
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    seconds = args.seconds
    epochs = args.epochs
    if seconds is None and epochs is None:
        seconds = 60.0
    B = layout(n_units, args.batch_size, args.seq_len)
    budget = (
        f"{seconds:g} s" if seconds is not None else f"{epochs:g} epoch{'s' if epochs != 1 else ''}"
    )
    clip = f"gradient norm clipped at {args.clip:g}" if args.clip else "no clipping"
    log(f"model     {_model_line(model)}")
    log(f"engine    {_engine_line(model)}")
    log(
        f"training  {args.optimizer.capitalize()} (lr {opt.lr:g}, {clip}), windows of "
        f"{args.seq_len} {unit} x {B} streams, {budget}",
        flush=True,
    )
    if B < args.batch_size:
        log(
            f"note      the text is short: {B} stream{'s' if B != 1 else ''} instead of "
            f"{args.batch_size}"
        )

    # Samples: every --sample-every windows, else 4 times during the run.
    windows_per_epoch = max(1, (n_units // B - 1 + args.seq_len - 1) // args.seq_len)
    if seconds is not None:
        total, bar_unit = seconds, "s"
    else:
        total, bar_unit = max(1, int(math.ceil(epochs * windows_per_epoch))), "windows"
    every_s, every_w = 0.0, 0
    if quiet:
        pass
    elif args.sample_every is not None:
        every_w = args.sample_every
    elif seconds is not None:
        every_s = seconds / 4
    else:
        every_w = max(1, total // 4) if total >= 4 else 0
    sample_rng = np.random.default_rng(args.seed)
    length = args.sample_length if args.sample_length is not None else (40 if words else 200)
    bar = Progress(total, desc="training", unit=bar_unit, mode="off" if quiet else None)

    def on_sample(elapsed: float, loss: float) -> None:
        s = model.sample("", length, temperature=args.temperature, rng=sample_rng)
        bar.write(
            f"--- sample after {format_seconds(elapsed)} (loss {loss:.3f}) ---\n"
            f"{_show(s.strip(chr(10)))}\n---"
        )

    with _cluster_trainer(args, model, opt, B, log) as (trainer, cluster), bar:
        res = train(
            model,
            data,
            seq_len=args.seq_len,
            batch_size=args.batch_size,
            seconds=seconds,
            epochs=epochs,
            optimizer=opt,
            progress=bar,
            sample_every_seconds=every_s,
            sample_every_windows=every_w,
            on_sample=on_sample,
            rng=args.seed,
            trainer=trainer,
        )
    per = "word" if words else "character"
    log(
        f"trained   {res.chars:,} {unit} ({res.epochs:.2f} passes) in "
        f"{format_seconds(res.seconds)}, {format_rate(res.chars_per_second)} {unit}/s; "
        f"loss {res.first_loss:.3f} -> {res.loss:.3f} nats/{per}"
    )
    summary: Dict[str, Any] = dict(
        file=args.file,
        words=words,
        cell=cell,
        hidden=model.rnn.hidden_size,
        layers=model.rnn.num_layers,
        embedding_dim=getattr(model.embed, "embedding_dim", None),
        vocab_size=int(model.vocab_size),
        seconds=round(res.seconds, 3),
        epochs=res.epochs,
        trained=res.chars,
        first_loss=res.first_loss,
        loss=res.loss,
        interrupted=res.interrupted,
        seed=args.seed,
        **cluster,
    )
    if words and valid_ids is not None:
        nll, n, targets = evaluate_perplexity(model, valid_ids, seq_len=args.seq_len)
        ppl = perplexity(nll, n)
        uni = unigram_perplexity(train_ids, targets, model.vocab_size)
        unk = float(np.mean(targets == 0))
        log(
            f"held-out  perplexity {ppl:.1f} on {n:,} held-out words; unigram baseline "
            f"{uni:.1f} ({'better' if ppl < uni else 'worse'}: {ppl / uni:.0%} of it); "
            f"{unk:.1%} of them <unk>"
        )
        summary.update(perplexity=ppl, unigram_perplexity=uni, n_heldout=n, unk_rate=unk)
    if not quiet:
        s = model.sample("", length, temperature=args.temperature, rng=sample_rng)
        print(f"--- sample (temperature {args.temperature:g}) ---\n{_show(s.strip(chr(10)))}\n---")
    _save_model(model, out_path)
    size = os.path.getsize(out_path)
    prime = "the" if words else "..."
    log(
        f"saved     {out_path} ({size / 1024:.0f} KiB); try: crnn sample {out_path} "
        f'--prime "{prime}" --length {20 if words else 200}'
    )
    summary["out"] = out_path
    if quiet:
        print_json(summary)
    if res.interrupted:
        print(
            "crnn: interrupted: training stopped early; the model so far is saved", file=sys.stderr
        )
        return 130
    return 0


# --------------------------------------------------------------------------
# crnn train-text on a Dask cluster (--workers, --scheduler)
# --------------------------------------------------------------------------


@contextlib.contextmanager
def _cluster_trainer(
    args: argparse.Namespace, model: CharRNN, opt: Any, n_streams: int, log: Callable[..., None]
) -> Iterator[Tuple[Any, Dict[str, Any]]]:
    """``(trainer, summary entries)``: a `crnn.dask.DataParallel` over a new
    LocalCluster of ``--workers`` processes or the cluster at ``--scheduler``
    (closed, or disconnected from, at the end); ``(None, {})`` without them."""
    if args.workers is None and args.scheduler is None:
        yield None, {}
        return
    try:
        from distributed import Client, LocalCluster

        from ..dask import DataParallel
    except ImportError:
        raise CLIError("--workers and --scheduler need Dask: pip install 'crnn[dask]'") from None
    with contextlib.ExitStack() as stack:
        if args.workers is not None:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=args.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
            )
            client = stack.enter_context(Client(cluster))
            where = f"a local Dask cluster of {args.workers} worker processes x 1 thread"
        else:
            try:
                client = stack.enter_context(Client(args.scheduler, timeout=30))
            except (OSError, TimeoutError, ValueError) as exc:
                raise CLIError(f"--scheduler {args.scheduler}: cannot connect ({exc})") from None
            where = f"the Dask cluster at {args.scheduler}"
        n_workers = len(client.nthreads())
        if n_workers == 0:
            raise CLIError(f"{where} has no workers")
        if n_streams < n_workers:
            raise CLIError(
                f"{n_streams} streams cannot be shared by {n_workers} workers: give "
                f"--batch-size >= {n_workers} (or a longer text)"
            )
        trainer = stack.enter_context(
            DataParallel(model, softmax_cross_entropy, opt, client, stateful=True)
        )
        log(
            f"cluster   {where}: each window's {n_streams} streams in {n_workers} shards, "
            f"gradients summed by a tree of tasks, one optimizer step here",
            flush=True,
        )
        yield trainer, dict(workers=n_workers, scheduler=args.scheduler)


def _word_model(
    args: argparse.Namespace, text: str, cell: str
) -> Tuple["WordModel", np.ndarray, np.ndarray, int]:
    """The word model of ``--words`` and the training and held-out word ids."""
    tokens = tokenize(text)
    n = len(tokens)
    n_valid = int(round(n * args.valid_fraction))
    if n - n_valid < 2 or n_valid < 2:
        raise CLIError(
            f"{args.file}: {n} words are too few to hold {args.valid_fraction:g} of "
            f"them out (at least 2 on each side)"
        )
    train_tokens = tokens[: n - n_valid]
    vocab = WordVocab.from_texts([train_tokens], min_count=args.min_count, max_size=args.max_vocab)
    if len(vocab) < 2:
        raise CLIError(
            f"{args.file}: no word occurs {args.min_count} times in the training part "
            f"(lower --min-count)"
        )
    model = WordModel(
        vocab.itos[1:],
        args.hidden,
        num_layers=args.layers,
        dropout=args.dropout,
        seed=args.seed,
        backend=args.backend,
        cell=cell,
        embedding_dim=64 if args.embedding_dim is None else (args.embedding_dim or None),
    )
    ids = model.encode(tokens)
    return model, ids[: n - n_valid], ids[n - n_valid :], n


# --------------------------------------------------------------------------
# crnn sample
# --------------------------------------------------------------------------


@one_blas_thread
def cmd_sample(args: argparse.Namespace) -> int:
    _apply_threads(args)
    path = args.model
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CLIError(f"{path}: is a directory, not a model file")
    try:
        model = load_model(path)
    except (TypeError, ValueError, OSError) as exc:
        raise CLIError(str(exc)) from None
    if isinstance(model, WordModel):
        return _sample_words(model, args)
    prime = args.prime
    unknown = sorted({c for c in prime if c not in model.vocab})
    if unknown:
        shown = "".join(unknown[:10]) + ("..." if len(unknown) > 10 else "")
        print(
            f"crnn: note: the model never saw {len(unknown)} character(s) of the prime "
            f"({shown!r}); they are read as unknown",
            file=sys.stderr,
        )
    if args.top_k is not None and args.top_k > model.vocab_size:
        args.top_k = model.vocab_size
    cont = model.sample(
        prime,
        200 if args.length is None else args.length,
        temperature=args.temperature,
        top_k=args.top_k,
        rng=args.seed,
    )
    if args.complete:
        cont = complete(prime, cont, args.complete)
    sys.stdout.write(_show(prime + cont) + "\n")
    sys.stdout.flush()
    return 0


_SENTENCE_END = {".", "!", "?"}


def _sample_words(model: WordModel, args: argparse.Namespace) -> int:
    """``crnn sample`` of a word model: words after the prime; with --complete,
    the next word and the likeliest ones (or, --complete line, to the end of
    the sentence)."""
    prime = args.prime
    toks = model.vocab.tokenize(prime)
    unknown = sorted({t for t in toks if t not in model.vocab})
    if unknown:
        shown = ", ".join(unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        print(
            f"crnn: note: the model does not know {len(unknown)} word(s) of the prime "
            f"({shown}); they are read as <unk>",
            file=sys.stderr,
        )
    top_k = None if args.top_k is None else min(args.top_k, model.vocab_size)
    length = 20 if args.length is None else args.length
    if args.complete == "word":
        ids = model.sample_ids(prime, 1, temperature=args.temperature, top_k=top_k, rng=args.seed)
        word = model.vocab.itos[int(ids[0])]
        sys.stdout.write(detokenize(toks + [word]) + "\n")
        for w, p in model.next_words(prime, k=5 if args.top_k is None else args.top_k):
            sys.stdout.write(f"  {w:<16} {100 * p:5.1f}%\n")
    else:
        n = max(length, 0)
        ids = (
            model.sample_ids(prime, n, temperature=args.temperature, top_k=top_k, rng=args.seed)
            if n
            else np.zeros(0, np.int64)
        )
        words = [model.vocab.itos[i] for i in ids.tolist()]
        if args.complete == "line":
            for i, w in enumerate(words):
                if w in _SENTENCE_END:
                    words = words[: i + 1]
                    break
        sys.stdout.write(detokenize(toks + words) + "\n")
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------


def _add_model_options(p: argparse.ArgumentParser, hidden: int) -> None:
    p.add_argument(
        "--hidden",
        type=positive_int,
        default=hidden,
        metavar="H",
        help=f"hidden units per layer (default {hidden})",
    )
    p.add_argument(
        "--seq-len",
        type=positive_int,
        default=50,
        metavar="K",
        help="truncated-BPTT window, in characters or words (default 50)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=32,
        metavar="B",
        help="parallel streams through the text (default 32)",
    )
    p.add_argument(
        "--seed",
        type=nonnegative_int,
        default=0,
        help="seed of the initialisation and the sampling (default 0)",
    )
    p.add_argument(
        "--backend",
        choices=("c", "numpy"),
        default="c",
        help="engine: the C engine (default) or the NumPy reference",
    )
    _add_threads_option(p)


_add_threads_option = add_threads_option
_apply_threads = apply_threads


def register(subparsers: Any) -> None:
    """Add ``demo``, ``train-text`` and ``sample`` to the ``crnn`` parser."""
    fmt = argparse.RawDescriptionHelpFormatter

    p = subparsers.add_parser(
        "demo",
        help="train a character-level RNN on Python's docstrings, then write with it",
        formatter_class=fmt,
        description=textwrap.dedent("""\
            Train a character-level RNN on the docstrings of Python's standard library
            (no download), with a progress bar showing the loss and characters per second;
            then print text it generates at temperatures 0.5, 0.8 and 1.0, and the speed of
            crnn's C engine against its NumPy reference and, when installed, PyTorch on the
            same model (its recurrent layer, and its whole training step)."""),
    )
    p.add_argument(
        "--seconds",
        type=positive_float,
        default=40.0,
        metavar="S",
        help="training time in seconds (default 40; the whole demo takes under a minute)",
    )
    p.add_argument(
        "--length",
        type=positive_int,
        default=240,
        metavar="N",
        help="characters per sample (default 240)",
    )
    p.add_argument(
        "--lr", type=positive_float, default=0.003, help="Adam's learning rate (default 0.003)"
    )
    p.add_argument(
        "--out",
        metavar="MODEL.npz",
        default=None,
        help="also save the trained model (for crnn sample)",
    )
    _add_model_options(p, hidden=128)
    add_cell_option(p, default="rnn")
    add_embedding_option(p, default=None, what="character")
    p.set_defaults(func=cmd_demo)

    p = subparsers.add_parser(
        "train-text",
        help="train a character-level (or, with --words, word-level) language "
        "model on a text file and save it",
        formatter_class=fmt,
        description=textwrap.dedent("""\
            Train a character-level RNN language model on a UTF-8 text file: stateful
            truncated backpropagation through time, gradient-norm clipping, Adam or Adagrad,
            with a progress bar and samples along the way. Saves the model (crnn.save
            format, with its characters) for `crnn sample`.

            With --words: a word-level model (word embeddings -> LSTM -> next-word scores)
            over the words seen at least --min-count times (the others read as <unk>); the
            last --valid-fraction of the words is held out, and its perplexity is reported
            next to the unigram baseline's (each word predicted by its training frequency,
            add-one smoothed)."""),
        epilog="examples:  crnn train-text book.txt --out book.npz --seconds 120 --hidden 256\n"
        "           crnn train-text book.txt --words --out words.npz --seconds 60",
    )
    p.add_argument("file", metavar="FILE", help="a UTF-8 text file")
    p.add_argument(
        "--out",
        metavar="MODEL.npz",
        default=None,
        help="where to save the model (default: FILE's name with .npz, here)",
    )
    p.add_argument(
        "--layers",
        type=positive_int,
        default=1,
        metavar="N",
        help="stacked recurrent layers (default 1)",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--seconds",
        type=positive_float,
        default=None,
        metavar="S",
        help="train for S seconds (the default: 60)",
    )
    budget.add_argument(
        "--epochs",
        type=positive_float,
        default=None,
        metavar="E",
        help="train for E passes over the text (may be fractional)",
    )
    p.add_argument("--optimizer", choices=("adam", "adagrad"), default="adam", help="default adam")
    p.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help="learning rate (default 0.002 for Adam, 0.1 for Adagrad)",
    )
    p.add_argument(
        "--clip",
        type=nonnegative_float,
        default=5.0,
        help="clip the gradient norm at this (0: no clipping; default 5)",
    )
    p.add_argument(
        "--dropout",
        type=nonnegative_float,
        default=0.0,
        help="dropout between stacked layers (default 0)",
    )
    p.add_argument(
        "--sample-every",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help="print a sample every N windows (0: never; default: 4 times in all)",
    )
    p.add_argument(
        "--sample-length",
        type=positive_int,
        default=None,
        metavar="N",
        help="characters (words) per sample (default 200 characters, 40 words)",
    )
    p.add_argument(
        "--temperature",
        type=nonnegative_float,
        default=0.8,
        metavar="T",
        help="temperature of the samples (default 0.8)",
    )
    p.add_argument("--encoding", default="utf-8", help="of FILE (default utf-8)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (loss; with --words the held-out perplexity "
        "and the unigram baseline's) instead of text",
    )
    _add_model_options(p, hidden=128)
    add_cell_option(p, default=None, default_text="rnn; lstm with --words")
    add_embedding_option(p, default=None, what="character (word)")
    w = p.add_argument_group("word-level models")
    w.add_argument(
        "--words",
        action="store_true",
        help="a word-level model: words and punctuation marks (lower-cased) instead "
        "of characters; embeddings of --embedding-dim (default 64), an LSTM",
    )
    w.add_argument(
        "--min-count",
        type=positive_int,
        default=2,
        metavar="N",
        help="words seen fewer times in the training part read as <unk> (default 2)",
    )
    w.add_argument(
        "--max-vocab",
        type=positive_int,
        default=None,
        metavar="N",
        help="keep at most the N most frequent words (default: no limit)",
    )
    w.add_argument(
        "--valid-fraction",
        type=fraction,
        default=0.1,
        metavar="F",
        help="share of the words, at the end of the text, held out to measure the "
        "perplexity (default 0.1)",
    )
    d = p.add_argument_group(
        "more than one machine (needs crnn[dask])",
        "Synchronous data-parallel training: each window's streams are shared among Dask "
        "workers, their gradients summed; the same training as on one process.",
    )
    where = d.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="start a local Dask cluster of N worker processes (1 thread each) and train on it",
    )
    where.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="train on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786)",
    )
    p.set_defaults(func=cmd_train_text)

    p = subparsers.add_parser(
        "sample",
        help="generate text with a trained model (or complete a prefix)",
        formatter_class=fmt,
        description=textwrap.dedent("""\
            Print the prime and a continuation sampled from a model saved by
            `crnn train-text` (or `crnn demo --out`). With --complete, stop at the end of the
            word (or line) the prime begins: autocompletion of a prefix. A word model
            (`crnn train-text --words`) writes words; with --complete it suggests the next
            word."""),
        epilog='example:  crnn sample book.npz --prime "It was" --length 300 --temperature 0.7',
    )
    p.add_argument("model", metavar="MODEL", help="a model file from crnn train-text")
    p.add_argument(
        "--prime",
        default="",
        metavar="TEXT",
        help="the text to continue (default: start a new line)",
    )
    p.add_argument(
        "--length",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help="characters to generate (the most, with --complete; default 200); "
        "for a word model, words (default 20)",
    )
    p.add_argument(
        "--temperature",
        type=nonnegative_float,
        default=0.8,
        metavar="T",
        help="< 1 safer, > 1 wilder, 0 always the likeliest (default 0.8)",
    )
    p.add_argument(
        "--top-k",
        type=positive_int,
        default=None,
        metavar="K",
        help="sample only among the K likeliest characters",
    )
    p.add_argument(
        "--seed",
        type=nonnegative_int,
        default=None,
        help="seed of the sampling (default: different every run)",
    )
    p.add_argument(
        "--complete",
        nargs="?",
        const="word",
        choices=("word", "line"),
        default=None,
        help="stop at the end of the word (default) or line being completed; for a "
        "word model: the next word, then the likeliest next words (--top-k, "
        "default 5) with their probabilities (or, with 'line', the rest of the "
        "sentence)",
    )
    _add_threads_option(p)
    p.set_defaults(func=cmd_sample)
