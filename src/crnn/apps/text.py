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
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import math
import os
import sys
import textwrap
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from .. import _runtime
from ..data import streams
from ..losses import softmax_cross_entropy
from ..models import CharModel
from ..optim import Adagrad, Adam
from ..serialization import load as _load
from ..serialization import save as _save
from ..training import TBPTT
from .common import (CLIError, Progress, Timer, format_rate, format_seconds, nonnegative_float,
                     nonnegative_int, one_blas_thread, positive_float, positive_int, read_text)

__all__ = ["CharModel", "TrainResult", "train", "load_model", "demo_corpus", "complete",
           "register", "DEMO_MODULES"]


# --------------------------------------------------------------------------
# The model (`crnn.models.CharModel`, re-exported here)
# --------------------------------------------------------------------------

def load_model(path: str, backend: Optional[str] = None) -> CharModel:
    """Load a model saved by ``crnn train-text`` (or `crnn.save` of a CharModel)."""
    model = _load(path, backend=backend)
    if not isinstance(model, CharModel):
        raise TypeError(f"{path} holds a {type(model).__name__}, not a character model "
                        "(make one with `crnn train-text`)")
    return model


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
        Characters trained on (predictions scored), over all windows.
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
        return self.chars / self.train_seconds if self.train_seconds > 0 else 0.0


def make_optimizer(model: CharModel, name: str = "adam", lr: Optional[float] = None,
                   clip: Optional[float] = 5.0):
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


def train(model: CharModel, text: Union[str, np.ndarray], *, seq_len: int = 50,
          batch_size: int = 32, seconds: Optional[float] = None, epochs: Optional[float] = None,
          optimizer: Any = None, progress: Optional[Progress] = None,
          sample_every_seconds: float = 0.0, sample_every_windows: int = 0,
          on_sample: Optional[Callable[[float, float], None]] = None,
          rng: Optional[Union[int, np.random.Generator]] = None) -> TrainResult:
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
        status shows the smoothed loss and characters per second.
    sample_every_seconds, sample_every_windows : float, int
        Call ``on_sample(elapsed_seconds, smoothed_loss)`` every so many
        seconds, or every so many windows (0: never).
    rng : int, Generator or None
        Randomness of the window offsets between passes.

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
    tb = TBPTT(model, softmax_cross_entropy, opt, k=seq_len)
    model.train()

    clock = Timer()
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
                if epochs is not None and windows >= windows_total:
                    break
                stop = min(start + seq_len, n_steps)
                t0 = time.perf_counter()
                loss = tb.step(x_all[start:stop], y_all[start:stop])
                train_time += time.perf_counter() - t0
                chars += (stop - start) * B
                windows += 1
                epoch_f = epoch + (w + 1) / len(starts)
                if not math.isfinite(loss):
                    raise FloatingPointError(f"the loss became {loss} at window {windows}; "
                                             "try a smaller --lr or a --clip")
                if windows == 1:
                    first_loss = ema = loss
                else:
                    ema = 0.95 * ema + 0.05 * loss
                now = clock.seconds
                if progress is not None:
                    status = f"loss {ema:.3f}, {format_rate(chars / train_time)} chars/s"
                    progress.update(now - last if seconds is not None else 1, status)
                last = now
                # No sample at the very end: the caller shows the final one.
                last_window = (windows >= windows_total if epochs is not None
                               else now >= seconds - 0.5 * sample_every_seconds)
                if on_sample is not None and not last_window and (
                        now >= next_sample_s or
                        (sample_every_windows > 0 and windows % sample_every_windows == 0)):
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
    return TrainResult(chars=chars, windows=windows, epochs=epoch_f, seconds=clock.seconds,
                       train_seconds=train_time, first_loss=first_loss, loss=ema,
                       batch_size=B, seq_len=seq_len, interrupted=interrupted)


# --------------------------------------------------------------------------
# The demo corpus: docstrings of the standard library
# --------------------------------------------------------------------------

DEMO_MODULES = (
    "string", "re", "collections", "itertools", "functools", "operator", "json", "textwrap",
    "os.path", "random", "statistics", "fractions", "decimal", "datetime", "calendar", "heapq",
    "bisect", "pathlib", "argparse", "logging", "csv", "difflib", "shutil", "tempfile",
    "contextlib", "dataclasses", "enum", "inspect", "pprint", "base64", "gzip", "zipfile",
    "tarfile", "urllib.parse", "threading", "subprocess", "pickle", "copy", "abc", "glob",
    "fnmatch", "queue", "shlex", "configparser", "html", "uuid", "secrets", "weakref", "types",
    "traceback", "warnings", "ast", "tokenize", "timeit", "unittest",
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
                        if inspect.isroutine(member) or isinstance(member, (property, classmethod,
                                                                            staticmethod)):
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

def _engine_line(model: CharModel) -> str:
    if model.backend == "numpy":
        return "NumPy reference engine (crnn.reference)"
    info = _runtime.build_info()
    threads = f"{info['num_threads']} OpenMP thread{'s' if info['num_threads'] != 1 else ''}" \
        if info["openmp"] else "single-threaded build"
    return f"crnn C engine, {info['isa']} kernels, {threads}"


def _model_line(model: CharModel) -> str:
    r = model.rnn
    layers = f"{r.num_layers} layers x {r.hidden_size}" if r.num_layers > 1 else f"{r.hidden_size}"
    return (f"CharRNN: one-hot {model.vocab_size} -> RNN {layers} {r.nonlinearity} -> "
            f"Linear {model.vocab_size} ({model.num_parameters():,} parameters)")


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


def _save_model(model: CharModel, path: str) -> None:
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


def engine_speeds(model: CharModel, seq_len: int, batch_size: int, seed: int = 0,
                  repeat: int = 5, budget: float = 2.5) -> Dict[str, Dict[str, float]]:
    """Seconds per window of the recurrent layer (forward + backward) and of
    a whole training step (forward, loss, backward; no update), with the C
    engine and with the NumPy reference, on `model` itself.

    The four measurements are taken in turns (C, NumPy, C, NumPy, ...), up
    to `repeat` rounds after a warm-up or until `budget` seconds are spent,
    and the best time of each is kept: a burst of load from elsewhere hits
    both engines alike instead of only the one measured at that moment.
    Each timed call follows an untimed call of the same case, so it runs in
    the steady state of its engine (as in training), not in the wake of the
    other engine's threads.

    Returns ``{"rnn": {"c": s, "numpy": s}, "step": {"c": s, "numpy": s}}``.
    The model's backend and gradients are restored afterwards.
    """
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, model.vocab_size, size=(seq_len + 1, batch_size))
    x, y = ids[:-1], ids[1:]
    xh = model._inputs(x)
    saved_backend = model.backend
    saved_grads = {k: g.copy() for k, g in model.grads.items()}

    def rnn_fb():
        out, _ = model.rnn(xh)
        model.rnn.backward(np.ones_like(out))

    def step():
        logits, _ = model(x)
        _, d = softmax_cross_entropy(logits, y)
        model.backward(d)

    cases = [(kind, backend, f) for kind, f in (("rnn", rnn_fb), ("step", step))
             for backend in ("c", "numpy")]
    best = {(kind, backend): math.inf for kind, backend, _ in cases}
    try:
        t_start = time.perf_counter()
        for r in range(repeat + 1):  # round 0 is the warm-up
            for kind, backend, f in cases:
                model.set_backend(backend)
                f()
                t0 = time.perf_counter()
                f()
                dt = time.perf_counter() - t0
                if r > 0:
                    best[kind, backend] = min(best[kind, backend], dt)
            if r > 0 and time.perf_counter() - t_start > budget:
                break
    finally:
        model.set_backend(saved_backend)
        for k, g in saved_grads.items():
            model.grads[k][...] = g
    return {kind: {backend: best[kind, backend] for backend in ("c", "numpy")}
            for kind in ("rnn", "step")}


@one_blas_thread
def cmd_demo(args: argparse.Namespace) -> int:
    _check_budget(args)
    _apply_threads(args)
    out = sys.stdout
    print("crnn demo: a character-level RNN learns to write like the docstrings of "
          "Python's standard library.\n", file=out)
    text, n_mod = demo_corpus()
    model = CharModel.for_text(text, args.hidden, seed=args.seed, backend=args.backend)
    opt = make_optimizer(model, "adam", lr=args.lr, clip=5.0)
    B = layout(len(text), args.batch_size, args.seq_len)
    print(f"corpus    docstrings of {n_mod} standard-library modules: {len(text):,} characters, "
          f"{len(model.vocab) - 1} distinct", file=out)
    print(f"model     {_model_line(model)}", file=out)
    print(f"engine    {_engine_line(model)}", file=out)
    print(f"training  Adam (lr {opt.lr:g}, gradient norm clipped at 5), stateful truncated BPTT: "
          f"windows of {args.seq_len} characters x {B} streams, {args.seconds:g} s\n", file=out, flush=True)
    with Progress(args.seconds, desc="training", unit="s") as bar:
        res = train(model, text, seq_len=args.seq_len, batch_size=args.batch_size,
                    seconds=args.seconds, optimizer=opt, progress=bar, rng=args.seed)
    if res.interrupted:
        raise KeyboardInterrupt
    print(f"\ntrained   {res.chars:,} characters ({res.epochs:.2f} passes) in "
          f"{format_seconds(res.seconds)}, {format_rate(res.chars_per_second)} characters/s; "
          f"loss {res.first_loss:.2f} -> {res.loss:.2f} nats/character\n", file=out)

    print(f"samples   (prime {DEMO_PRIME!r}, {args.length} characters)", file=out)
    rng = np.random.default_rng(args.seed)
    for temp in (0.5, 0.8, 1.0):
        cont = model.sample(DEMO_PRIME, args.length, temperature=temp, rng=rng)
        print(f"\n  temperature {temp}:", file=out)
        print(_indent(_show(DEMO_PRIME + cont)), file=out, flush=True)

    sp = engine_speeds(model, args.seq_len, B, seed=args.seed)
    print(f"\nspeed     the same model, one window of {args.seq_len} characters x {B} streams "
          f"(best of several):", file=out)
    for key, label in (("rnn", "recurrent layer, forward + backward"),
                       ("step", "whole step: forward, loss, backward")):
        c, n = sp[key]["c"], sp[key]["numpy"]
        print(f"  {label:<37} C engine {format_seconds(c):>9}   NumPy reference "
              f"{format_seconds(n):>9}   {n / c:5.1f}x", file=out)
    if args.out:
        _save_model(model, args.out)
        print(f"\nsaved     {args.out}   (try: crnn sample {args.out} --prime \"Return\" "
              f"--length 80 --complete)", file=out)
    print("\nnext      crnn train-text FILE   crnn sample MODEL --prime TEXT   crnn bench   "
          "(crnn COMMAND --help)", file=out)
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
    model = CharModel.for_text(text, args.hidden, num_layers=args.layers, dropout=args.dropout,
                               seed=args.seed, backend=args.backend)
    try:
        opt = make_optimizer(model, args.optimizer, lr=args.lr, clip=args.clip)
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    seconds = args.seconds
    epochs = args.epochs
    if seconds is None and epochs is None:
        seconds = 60.0
    B = layout(len(text), args.batch_size, args.seq_len)
    budget = f"{seconds:g} s" if seconds is not None else f"{epochs:g} epoch{'s' if epochs != 1 else ''}"
    clip = f"gradient norm clipped at {args.clip:g}" if args.clip else "no clipping"
    print(f"text      {args.file}: {len(text):,} characters, {len(model.vocab) - 1} distinct")
    print(f"model     {_model_line(model)}")
    print(f"engine    {_engine_line(model)}")
    print(f"training  {args.optimizer.capitalize()} (lr {opt.lr:g}, {clip}), windows of "
          f"{args.seq_len} characters x {B} streams, {budget}", flush=True)
    if B < args.batch_size:
        print(f"note      the text is short: {B} stream{'s' if B != 1 else ''} instead of "
              f"{args.batch_size}")

    # Samples: every --sample-every windows, else 4 times during the run.
    windows_per_epoch = max(1, (len(text) // B - 1 + args.seq_len - 1) // args.seq_len)
    if seconds is not None:
        total, unit = seconds, "s"
    else:
        total, unit = max(1, int(math.ceil(epochs * windows_per_epoch))), "windows"
    every_s, every_w = 0.0, 0
    if args.sample_every is not None:
        every_w = args.sample_every
    elif seconds is not None:
        every_s = seconds / 4
    else:
        every_w = max(1, total // 4) if total >= 4 else 0
    sample_rng = np.random.default_rng(args.seed)
    bar = Progress(total, desc="training", unit=unit)

    def on_sample(elapsed: float, loss: float) -> None:
        s = model.sample("", args.sample_length, temperature=args.temperature, rng=sample_rng)
        bar.write(f"--- sample after {format_seconds(elapsed)} (loss {loss:.3f}) ---\n"
                  f"{_show(s.strip(chr(10)))}\n---")

    with bar:
        res = train(model, text, seq_len=args.seq_len, batch_size=args.batch_size,
                    seconds=seconds, epochs=epochs, optimizer=opt, progress=bar,
                    sample_every_seconds=every_s, sample_every_windows=every_w,
                    on_sample=on_sample, rng=args.seed)
    print(f"trained   {res.chars:,} characters ({res.epochs:.2f} passes) in "
          f"{format_seconds(res.seconds)}, {format_rate(res.chars_per_second)} characters/s; "
          f"loss {res.first_loss:.3f} -> {res.loss:.3f} nats/character")
    s = model.sample("", args.sample_length, temperature=args.temperature, rng=sample_rng)
    print(f"--- sample (temperature {args.temperature:g}) ---\n{_show(s.strip(chr(10)))}\n---")
    _save_model(model, out_path)
    size = os.path.getsize(out_path)
    print(f"saved     {out_path} ({size / 1024:.0f} KiB); try: crnn sample {out_path} "
          f"--prime \"...\" --length 200")
    if res.interrupted:
        print("crnn: interrupted: training stopped early; the model so far is saved", file=sys.stderr)
        return 130
    return 0


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
    prime = args.prime
    unknown = sorted({c for c in prime if c not in model.vocab})
    if unknown:
        shown = "".join(unknown[:10]) + ("..." if len(unknown) > 10 else "")
        print(f"crnn: note: the model never saw {len(unknown)} character(s) of the prime "
              f"({shown!r}); they are read as unknown", file=sys.stderr)
    if args.top_k is not None and args.top_k > model.vocab_size:
        args.top_k = model.vocab_size
    cont = model.sample(prime, args.length, temperature=args.temperature, top_k=args.top_k,
                        rng=args.seed)
    if args.complete:
        cont = complete(prime, cont, args.complete)
    sys.stdout.write(_show(prime + cont) + "\n")
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------

def _add_model_options(p: argparse.ArgumentParser, hidden: int) -> None:
    p.add_argument("--hidden", type=positive_int, default=hidden, metavar="H",
                   help=f"hidden units per layer (default {hidden})")
    p.add_argument("--seq-len", type=positive_int, default=50, metavar="K",
                   help="truncated-BPTT window, in characters (default 50)")
    p.add_argument("--batch-size", type=positive_int, default=32, metavar="B",
                   help="parallel streams through the text (default 32)")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seed of the initialisation and the sampling (default 0)")
    p.add_argument("--backend", choices=("c", "numpy"), default="c",
                   help="engine: the C engine (default) or the NumPy reference")
    _add_threads_option(p)


def _add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="threads of the C engine (default: OpenMP's default, "
                        "OMP_NUM_THREADS or the number of cores)")


def _apply_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        _runtime.set_num_threads(args.threads)


def register(subparsers: Any) -> None:
    """Add ``demo``, ``train-text`` and ``sample`` to the ``crnn`` parser."""
    fmt = argparse.RawDescriptionHelpFormatter

    p = subparsers.add_parser(
        "demo", help="train a character-level RNN on Python's docstrings, then write with it",
        formatter_class=fmt,
        description=textwrap.dedent("""\
            Train a character-level RNN on the docstrings of Python's standard library
            (no download), with a progress bar showing the loss and characters per second;
            then print text it generates at temperatures 0.5, 0.8 and 1.0, and the speed of
            crnn's C engine against its NumPy reference on the same model."""))
    p.add_argument("--seconds", type=positive_float, default=40.0, metavar="S",
                   help="training time in seconds (default 40; the whole demo takes under a minute)")
    p.add_argument("--length", type=positive_int, default=240, metavar="N",
                   help="characters per sample (default 240)")
    p.add_argument("--lr", type=positive_float, default=0.003, help="Adam's learning rate (default 0.003)")
    p.add_argument("--out", metavar="MODEL.npz", default=None,
                   help="also save the trained model (for crnn sample)")
    _add_model_options(p, hidden=128)
    p.set_defaults(func=cmd_demo)

    p = subparsers.add_parser(
        "train-text", help="train a character-level model on a text file and save it",
        formatter_class=fmt,
        description=textwrap.dedent("""\
            Train a character-level RNN language model on a UTF-8 text file: stateful
            truncated backpropagation through time, gradient-norm clipping, Adam or Adagrad,
            with a progress bar and samples along the way. Saves the model (crnn.save
            format, with its characters) for `crnn sample`."""),
        epilog="example:  crnn train-text book.txt --out book.npz --seconds 120 --hidden 256")
    p.add_argument("file", metavar="FILE", help="a UTF-8 text file")
    p.add_argument("--out", metavar="MODEL.npz", default=None,
                   help="where to save the model (default: FILE's name with .npz, here)")
    p.add_argument("--layers", type=positive_int, default=1, metavar="N",
                   help="stacked recurrent layers (default 1)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=positive_float, default=None, metavar="S",
                        help="train for S seconds (the default: 60)")
    budget.add_argument("--epochs", type=positive_float, default=None, metavar="E",
                        help="train for E passes over the text (may be fractional)")
    p.add_argument("--optimizer", choices=("adam", "adagrad"), default="adam",
                   help="default adam")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate (default 0.002 for Adam, 0.1 for Adagrad)")
    p.add_argument("--clip", type=nonnegative_float, default=5.0,
                   help="clip the gradient norm at this (0: no clipping; default 5)")
    p.add_argument("--dropout", type=nonnegative_float, default=0.0,
                   help="dropout between stacked layers (default 0)")
    p.add_argument("--sample-every", type=nonnegative_int, default=None, metavar="N",
                   help="print a sample every N windows (0: never; default: 4 times in all)")
    p.add_argument("--sample-length", type=positive_int, default=200, metavar="N",
                   help="characters per sample (default 200)")
    p.add_argument("--temperature", type=nonnegative_float, default=0.8, metavar="T",
                   help="temperature of the samples (default 0.8)")
    p.add_argument("--encoding", default="utf-8", help="of FILE (default utf-8)")
    _add_model_options(p, hidden=128)
    p.set_defaults(func=cmd_train_text)

    p = subparsers.add_parser(
        "sample", help="generate text with a trained model (or complete a prefix)",
        formatter_class=fmt,
        description=textwrap.dedent("""\
            Print the prime and a continuation sampled from a model saved by
            `crnn train-text` (or `crnn demo --out`). With --complete, stop at the end of the
            word (or line) the prime begins: autocompletion of a prefix."""),
        epilog='example:  crnn sample book.npz --prime "It was" --length 300 --temperature 0.7')
    p.add_argument("model", metavar="MODEL", help="a model file from crnn train-text")
    p.add_argument("--prime", default="", metavar="TEXT",
                   help="the text to continue (default: start a new line)")
    p.add_argument("--length", type=nonnegative_int, default=200, metavar="N",
                   help="characters to generate (the most, with --complete; default 200)")
    p.add_argument("--temperature", type=nonnegative_float, default=0.8, metavar="T",
                   help="< 1 safer, > 1 wilder, 0 always the likeliest (default 0.8)")
    p.add_argument("--top-k", type=positive_int, default=None, metavar="K",
                   help="sample only among the K likeliest characters")
    p.add_argument("--seed", type=nonnegative_int, default=None,
                   help="seed of the sampling (default: different every run)")
    p.add_argument("--complete", nargs="?", const="word", choices=("word", "line"), default=None,
                   help="stop at the end of the word (default) or line being completed")
    _add_threads_option(p)
    p.set_defaults(func=cmd_sample)
