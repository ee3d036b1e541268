"""What the ``crnn`` applications share: errors, progress, timing, text input.

CLIError
    A mistake of the user (a missing file, a bad value): `crnn.cli.main`
    prints ``crnn: error: <message>`` on stderr and returns exit status 2.
Progress
    A progress bar on stderr: tqdm when it is installed (``pip install
    "crnn[progress]"``), else a small built-in bar. The environment variable
    ``CRNN_PROGRESS`` = ``tqdm`` | ``plain`` | ``off`` forces one.
Timer, timer
    Wall-clock timing with `time.perf_counter`.
read_text
    Read a UTF-8 text file, turning every way it can fail into a CLIError.
one_blas_thread
    Decorates a command that trains or samples: it runs with NumPy's BLAS
    on one thread (`crnn.limit_blas_threads`).
positive_int, positive_float, nonnegative_float, nonnegative_int
    ``type=`` functions for argparse (a bad value is a usage error, status 2).
add_cell_option, cell_name, usable_cells
    ``--cell`` (the recurrent cell, from the registry `crnn.cells`) for every
    command that builds a model; an unknown name exits with status 2 and
    lists the cells there are.
add_embedding_option, embedding_layer
    ``--embedding-dim`` for the commands whose input is tokens, and the
    layer behind it (`crnn.Embedding`).
add_threads_option, apply_threads
    ``--threads N``: the C engine's thread count for one command.
check_output_path, print_json
    The checks before writing a model file; ``--json`` output.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import sys
import time
from typing import IO, Any, Callable, Iterator, Optional, Tuple

import numpy as np

from .. import _runtime, cells

__all__ = [
    "CLIError",
    "Progress",
    "Timer",
    "timer",
    "read_text",
    "one_blas_thread",
    "positive_int",
    "nonnegative_int",
    "positive_float",
    "nonnegative_float",
    "fraction",
    "usable_cells",
    "cell_name",
    "add_cell_option",
    "add_embedding_option",
    "embedding_layer",
    "add_threads_option",
    "apply_threads",
    "check_output_path",
    "print_json",
    "format_rate",
    "format_seconds",
]


class CLIError(Exception):
    """An error of the user, reported as ``crnn: error: <message>`` with exit status 2.

    Raise it from a command handler for anything the user can fix (a
    missing file, a column that does not exist, a series too short); let
    genuine bugs propagate as ordinary exceptions.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# --------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------

Handler = Callable[[argparse.Namespace], int]


def one_blas_thread(handler: Handler) -> Handler:
    """Run a command handler with NumPy's BLAS limited to one thread.

    Training and sampling alternate crnn's C calls (OpenMP threads on every
    core) with small NumPy products; BLAS threads spinning after those
    products slow both down. The limit ends with the command. Without
    threadpoolctl crnn sets the BLAS library's thread count itself, and
    where it cannot (see `crnn.limit_blas_threads`) it warns.
    """

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        with _runtime.limit_blas_threads(1):
            return handler(args)

    return run


# --------------------------------------------------------------------------
# argparse value types
# --------------------------------------------------------------------------


def _number(kind: type, text: str) -> Any:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    v = _number(int, text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return v


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    v = _number(int, text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    v = _number(float, text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    v = _number(float, text)
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return v


def fraction(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number between 0 and 1, got {text!r}"
        ) from None
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return v


# --------------------------------------------------------------------------
# The recurrent cell and the embedding
# --------------------------------------------------------------------------


def usable_cells() -> Tuple[str, ...]:
    """The cells of the registry (`crnn.cells`) the ready-made models can use.

    Every registered cell whose state is its hidden state (so not the
    Jordan network, which feeds back an output of its own size), in
    registry order: ``("rnn", "lstm", "gru")`` today, and any cell added to
    the registry later.
    """
    return tuple(name for name, spec in cells.REGISTRY.items() if not spec.uses_output_size)


def cell_name(text: str) -> str:
    """argparse type of ``--cell``: a usable cell of `crnn.cells`, case-insensitive.

    An unknown name (or a registered cell the models cannot use) is a usage
    error that lists the choices, read from the registry.
    """
    name = str(text).strip().lower()
    usable = usable_cells()
    if name in usable:
        return name
    choices = ", ".join(usable)
    if name in cells.REGISTRY:
        raise argparse.ArgumentTypeError(
            f"the {cells.REGISTRY[name].title} cell cannot be used here (its state is an output "
            f"of its own size, not the hidden state); choose one of: {choices}"
        )
    raise argparse.ArgumentTypeError(
        f"unknown cell {text!r}; the registered cells (crnn.cells) are: {choices}"
    )


def add_cell_option(
    p: argparse.ArgumentParser, default: Optional[str] = "rnn", default_text: Optional[str] = None
) -> None:
    """Add ``--cell NAME`` to a command (the recurrent cell of its model).

    `default` None leaves the choice to the command (``default_text`` then
    says what it is in the help).
    """
    usable = usable_cells()
    shown = default_text if default_text is not None else str(default)
    p.add_argument(
        "--cell",
        type=cell_name,
        default=default,
        metavar="NAME",
        help=f"the recurrent cell: {', '.join(usable)} (default {shown}; the cells of crnn.cells)",
    )


def add_embedding_option(
    p: argparse.ArgumentParser, default: Optional[int], what: str = "word"
) -> None:
    """Add ``--embedding-dim N`` (a learned vector per token instead of a one-hot vector)."""
    shown = "none: one-hot vectors" if default is None else str(default)
    p.add_argument(
        "--embedding-dim",
        type=nonnegative_int,
        default=default,
        metavar="N",
        help=f"size of the learned {what} vectors (crnn.Embedding); 0 reads one-hot "
        f"vectors instead (default {shown})",
    )


def embedding_layer(
    num_embeddings: int,
    embedding_dim: int,
    *,
    dtype: Any = np.float32,
    seed: Optional[int] = None,
    backend: str = "c",
) -> Any:
    """A `crnn.Embedding` (token ids -> learned vectors; the backward
    accumulates into ``grads["weight"]``) for an application's own model."""
    from ..embedding import Embedding

    return Embedding(num_embeddings, embedding_dim, dtype=dtype, seed=seed, backend=backend)


def add_threads_option(p: argparse.ArgumentParser) -> None:
    """Add ``--threads N`` (the C engine's threads; see `apply_threads`)."""
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="threads of the C engine (default: OpenMP's default, "
        "OMP_NUM_THREADS or the number of cores)",
    )


def apply_threads(args: argparse.Namespace) -> None:
    """Set the C engine's thread count from ``--threads`` (`crnn.set_num_threads`)."""
    if getattr(args, "threads", None):
        _runtime.set_num_threads(args.threads)


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def check_output_path(path: str, what: str = "--out") -> None:
    """A CLIError unless `path` can be a new file: not a directory, in a folder that exists."""
    if os.path.isdir(path):
        raise CLIError(f"{path}: is a directory (give {what} a file name)")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CLIError(f"{path}: the folder {folder} does not exist")


def print_json(obj: Any, file: Optional[IO[str]] = None) -> None:
    """Print `obj` as one line of JSON (NumPy scalars and arrays converted)."""

    def default(o: Any) -> Any:
        if hasattr(o, "tolist"):
            return o.tolist()
        raise TypeError(f"cannot write {type(o).__name__} as JSON")

    print(json.dumps(obj, default=default), file=sys.stdout if file is None else file)


# --------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------


def format_rate(per_second: float) -> str:
    """1234567.0 -> '1.23M', 45678 -> '45.7k', 12.3 -> '12.3'."""
    v = float(per_second)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def format_seconds(seconds: float) -> str:
    """Short human form of a duration: '850 us', '12.3 ms', '4.56 s', '2m05s'."""
    s = float(seconds)
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    if s < 100:
        return f"{s:.3g} s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m}m{sec:02d}s"


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------


class Timer:
    """Elapsed wall-clock time since construction (or `restart`).

    ``seconds`` is the time elapsed so far, or, once `stop` was called (the
    `timer` context manager calls it on exit), the time at the stop.
    """

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        """Start counting again from now (and forget a `stop`)."""
        self.start = time.perf_counter()
        self._stopped: Optional[float] = None

    def stop(self) -> float:
        """Freeze `seconds` at the time elapsed now, and return it."""
        self._stopped = time.perf_counter() - self.start
        return self._stopped

    @property
    def seconds(self) -> float:
        """Seconds since the start (or `restart`), or up to the `stop`."""
        if self._stopped is not None:
            return self._stopped
        return time.perf_counter() - self.start

    def __repr__(self) -> str:
        return f"Timer({self.seconds:.6f} s)"


@contextlib.contextmanager
def timer() -> Iterator[Timer]:
    """``with timer() as t: ...`` then ``t.seconds`` is the block's duration."""
    t = Timer()
    try:
        yield t
    finally:
        t.stop()


# --------------------------------------------------------------------------
# Progress bar
# --------------------------------------------------------------------------


def _progress_mode(file: IO[str]) -> str:
    mode = os.environ.get("CRNN_PROGRESS", "").strip().lower()
    if mode in ("off", "none", "0", "no", "false"):
        return "off"
    if mode == "plain":
        return "plain"
    if mode != "tqdm" and not _isatty(file):
        return "plain"  # a log file or a pipe: a line every tenth, no redraws
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return "plain"
    return "tqdm"


def _isatty(file: Any) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Progress:
    """A progress bar on stderr, with a free-form status (loss, speed...).

    On a terminal: tqdm when it is importable, else a built-in bar that
    redraws one line (at most 10 times a second). Otherwise (a log file, a
    pipe): a line at every tenth of the way. ``CRNN_PROGRESS`` = ``tqdm`` |
    ``plain`` | ``off`` overrides the choice.

    Parameters
    ----------
    total : float
        The amount of work: a number of steps, or seconds when `unit` is "s"
        (then `update` receives elapsed seconds).
    desc : str
        A short label in front of the bar.
    unit : str
        "s" shows the amount as seconds of a time budget; anything else as a
        count of that unit (e.g. "win" for training windows).
    file : text stream or None
        Where the bar goes; stderr by default.

    Use as a context manager, or call `close`. `write` prints a line (to
    stdout) above the bar without garbling it.
    """

    def __init__(
        self,
        total: float,
        desc: str = "",
        unit: str = "it",
        file: Optional[IO[str]] = None,
        mode: Optional[str] = None,
    ) -> None:
        self.total = float(total)
        self.desc = desc
        self.unit = unit
        self.n = 0.0
        self.status = ""
        self.file = sys.stderr if file is None else file
        self.mode = _progress_mode(self.file) if mode is None else mode
        self._closed = False
        self._t0 = time.perf_counter()
        self._last_draw = -1.0
        self._last_decile = -1
        self._tty = _isatty(self.file)
        self._bar: Any = None
        if self.mode == "tqdm":
            from tqdm import tqdm

            if unit == "s":
                fmt = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s{postfix}"
            else:
                fmt = (
                    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                    + unit
                    + " [{elapsed}<{remaining}{postfix}]"
                )
            self._bar = tqdm(
                total=self.total,
                desc=desc,
                file=self.file,
                bar_format=fmt,
                dynamic_ncols=True,
                mininterval=0.2,
                leave=True,
            )

    # -- updates -------------------------------------------------------------

    def update(self, n: float = 1, status: Optional[str] = None) -> None:
        """Advance by `n` (steps, or seconds for a time budget); set the status text."""
        self.n += n
        if status is not None:
            self.status = status
        if self._bar is not None:
            if status is not None:
                self._bar.set_postfix_str(status, refresh=False)
            # tqdm stops at total; keep it there rather than overflow.
            step = min(n, max(0.0, self.total - self._bar.n))
            self._bar.update(step)
        elif self.mode == "plain":
            self._draw_plain()

    def set_status(self, status: str) -> None:
        """Show `status` next to the bar without advancing it."""
        self.update(0, status)

    def _line(self) -> str:
        frac = 1.0 if self.total <= 0 else min(1.0, max(0.0, self.n / self.total))
        width = 20
        filled = int(round(frac * width))
        bar = "#" * filled + "-" * (width - filled)
        n = min(self.n, self.total) if self.total > 0 else self.n
        if self.unit == "s":
            amount = f"{n:.0f}/{self.total:.0f} s"
        else:
            amount = f"{n:.0f}/{self.total:.0f} {self.unit}"
        elapsed = time.perf_counter() - self._t0
        head = f"{self.desc}: " if self.desc else ""
        tail = f"  {self.status}" if self.status else ""
        return f"{head}{frac * 100:3.0f}% |{bar}| {amount} [{format_seconds(elapsed)}]{tail}"

    def _draw_plain(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self._tty:
            if force or now - self._last_draw >= 0.1:
                self._last_draw = now
                self.file.write("\r\033[K" + self._line())
                self.file.flush()
        else:
            decile = 10 if self.total <= 0 else int(10 * min(1.0, self.n / self.total))
            if force or decile > self._last_decile:
                self._last_decile = decile
                self.file.write(self._line() + "\n")
                self.file.flush()

    # -- output around the bar -------------------------------------------------

    def write(self, message: str, file: Optional[IO[str]] = None) -> None:
        """Print `message` (a line, or several) to stdout above the bar."""
        out = sys.stdout if file is None else file
        if self._bar is not None:
            from tqdm import tqdm

            tqdm.write(message, file=out)
            return
        if self.mode == "plain" and self._tty and not self._closed:
            self.file.write("\r\033[K")
            self.file.flush()
        out.write(message + "\n")
        out.flush()
        if self.mode == "plain" and self._tty and not self._closed:
            self._draw_plain(force=True)

    def close(self) -> None:
        """Draw the final state and end the bar's line."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.mode == "plain":
            if self._tty:
                self.file.write("\r\033[K" + self._line() + "\n")
                self.file.flush()
            elif self._last_decile < 10:
                self.file.write(self._line() + "\n")
                self.file.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --------------------------------------------------------------------------
# Text input
# --------------------------------------------------------------------------


def read_text(path: str, encoding: str = "utf-8", what: str = "text file") -> str:
    """The contents of a text file, or a CLIError saying what is wrong.

    Fails (with a CLIError naming the file) when the file does not exist, is
    a directory or unreadable, is binary (holds NUL bytes), cannot be
    decoded with `encoding`, or is empty (or only whitespace). A UTF-8 byte
    order mark is dropped; line endings are normalised to ``\\n``.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CLIError(f"{path}: is a directory, not a {what}") from None
    except PermissionError:
        raise CLIError(f"{path}: permission denied") from None
    except OSError as exc:
        raise CLIError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not raw:
        raise CLIError(f"{path}: the file is empty")
    enc = encoding
    if enc.lower().replace("_", "-") in ("utf-8", "utf8") and raw.startswith(b"\xef\xbb\xbf"):
        enc = "utf-8-sig"
    try:
        text = raw.decode(enc)
    except LookupError:
        raise CLIError(f"unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 1]
        raise CLIError(
            f"{path}: cannot decode it as {encoding} (byte 0x{bad.hex()} at offset "
            f"{exc.start}); is it a {what}? (see --encoding)"
        ) from None
    if "\x00" in text:
        raise CLIError(f"{path}: looks like a binary file (it holds NUL bytes), not a {what}")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise CLIError(f"{path}: the file holds only whitespace")
    return text
