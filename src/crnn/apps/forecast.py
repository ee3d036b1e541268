"""``crnn forecast``: one-step (or K-step) forecasting with a many-to-one RNN.

The model reads a window of the W most recent values and predicts the value
K steps after the window's last one (K is the horizon)::

    y[t-W+1], ..., y[t]   ->   y[t+K]

How (`forecast`):

1. The last part of the series (``test_fraction``, 20% by default) is held
   out. Every window whose target lies before it is a training example;
   every target inside it is a test example (its window may reach back into
   the training part, as it would in real use).
2. The values are standardised with the mean and standard deviation of the
   training part only (optionally after a log, for series whose seasonal
   swing grows with the level). Each window is then expressed relative to
   its own last value, and so is the target: the network predicts the
   *change* ``y[t+K] - y[t]``. A network that outputs 0 is exactly the naive
   forecast, and a trend that leaves the training range does not push the
   inputs out of it.
3. `crnn.models.SequenceClassifier` with one output (RNN -> last state ->
   Linear) is trained with mean squared error and Adam (gradient norm
   clipped at 1), in shuffled mini-batches, from a fixed seed: the same
   arguments give the same numbers, unless the time limit cuts training.
4. On the held-out targets it reports the mean absolute error (MAE), on the
   original scale, of the RNN and of the naive forecast ``y[t+K] = y[t]``
   (the last value seen).

Without ``--csv`` the series is the built-in airline passengers series
(`crnn.datasets`: monthly international airline passengers 1949-1960, Box &
Jenkins' series G, R's ``AirPassengers``).

CSV files (`load_csv_column`) are read with the `csv` module: UTF-8 (a BOM is
fine), a header row naming the columns, comma-separated (a tab or ``;`` is
used instead when the header has no comma), oldest row first. ``--column``
picks the column (default: the last one); every row must hold a finite
number there. A file whose first row is all numbers has no header: its
columns are then named 1, 2, ...
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from .. import datasets
from ..losses import mse
from ..models import SequenceClassifier
from ..optim import Adam
from .common import (CLIError, Progress, fraction, one_blas_thread, positive_float, positive_int,
                     read_text)

__all__ = ["register", "forecast", "ForecastResult", "SeriesTooShort", "load_csv_column",
           "plot_forecast", "handler"]

DEFAULTS = dict(window=12, horizon=1, hidden=32, epochs=300, seconds=20.0, lr=3e-3,
                batch_size=32, test_fraction=0.2, seed=0)


class SeriesTooShort(ValueError):
    """The series cannot fill one training window and one test window."""


@dataclass
class ForecastResult:
    """What `forecast` found on the held-out tail.

    ``predictions``, ``truth`` and ``naive`` are aligned with
    ``target_index`` (positions in the series of the held-out targets).
    """

    window: int
    horizon: int
    n_values: int
    n_train: int
    n_test: int
    rnn_mae: float
    naive_mae: float
    epochs: int
    stopped_early: bool
    train_loss: float
    seconds: float
    target_index: np.ndarray = field(repr=False)
    predictions: np.ndarray = field(repr=False)
    truth: np.ndarray = field(repr=False)
    naive: np.ndarray = field(repr=False)

    def summary(self) -> Dict[str, Any]:
        """JSON-ready numbers (no arrays but the forecast and the truth)."""
        return dict(window=self.window, horizon=self.horizon, n_values=self.n_values,
                    n_train=self.n_train, n_test=self.n_test, rnn_mae=self.rnn_mae,
                    naive_mae=self.naive_mae, epochs=self.epochs,
                    stopped_early=self.stopped_early, train_loss=self.train_loss,
                    seconds=round(self.seconds, 3), test_start=int(self.target_index[0]),
                    forecast=[float(v) for v in self.predictions],
                    truth=[float(v) for v in self.truth])


def split_sizes(n_values: int, window: int, horizon: int,
                test_fraction: float = 0.2) -> Tuple[int, int]:
    """(n_train, n_test): training windows and held-out targets.

    The last ``max(1, round(n_values * test_fraction))`` values are the
    test targets; the training targets are the positions from
    ``window + horizon - 1`` up to the held-out part.

    Raises
    ------
    SeriesTooShort
        When there would be no training window.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    n_test = max(1, int(round(n_values * test_fraction)))
    n_train = n_values - n_test - (window + horizon - 1)
    if n_train < 1:
        raise SeriesTooShort(
            f"series too short: {n_values} values, but a window of {window} and a horizon of "
            f"{horizon}, with the last {n_test} value{'s' if n_test != 1 else ''} held out for "
            f"testing, need at least "
            f"{window + horizon + n_test} (use a smaller --window or --horizon, or a longer series)")
    return n_train, n_test


def forecast(series: Any, window: int = 12, horizon: int = 1, *, hidden: int = 32,
             epochs: int = 300, seconds: Optional[float] = 20.0, lr: float = 3e-3,
             batch_size: int = 32, test_fraction: float = 0.2, log: bool = False, seed: int = 0,
             on_epoch: Optional[Callable[[int, float], None]] = None) -> ForecastResult:
    """Train a many-to-one RNN on a series and score it on the held-out tail.

    Parameters
    ----------
    series : array_like of finite numbers, shape (N,)
    window : int >= 1
        Past values the RNN reads (its sequence length).
    horizon : int >= 1
        How many steps after the window's last value the target lies.
    hidden : int >= 1
        Hidden units of the RNN.
    epochs : int >= 1
        Passes over the training windows.
    seconds : float or None
        Stop after the first epoch that ends past this many seconds (None:
        no limit). Training is deterministic unless this cuts it short.
    lr, batch_size : Adam's learning rate; windows per step.
    test_fraction : float in (0, 1)
        The held-out share of the series (its end).
    log : bool
        Model log(values) (all values must be > 0).
    seed : int
        Seeds the initialisation and the shuffling.
    on_epoch : callable(epoch, loss) or None
        Called after every epoch (for progress reports).

    Returns
    -------
    ForecastResult

    Raises
    ------
    SeriesTooShort
        When the series cannot fill a training window and a test window.
    ValueError
        On non-finite values, or non-positive values with ``log``.
    """
    y = np.asarray(series, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"series must be one-dimensional, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("series must hold finite numbers only")
    for name, v in (("window", window), ("horizon", horizon), ("hidden", hidden),
                    ("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    W, K, N = int(window), int(horizon), y.size
    n_train, n_test = split_sizes(N, W, K, test_fraction)
    split = N - n_test
    if log:
        if np.any(y <= 0):
            raise ValueError("log scaling needs all values > 0")
        v = np.log(y)
    else:
        v = y
    mu = float(v[:split].mean())
    sd = float(v[:split].std())
    if not sd > 0:
        sd = 1.0
    z = (v - mu) / sd

    def examples(targets: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        starts = targets - K - W + 1
        X = z[starts[:, None] + np.arange(W)]            # (n, W)
        last = X[:, -1].copy()
        x = (X - last[:, None]).T[:, :, None]            # time-major (W, n, 1)
        dz = (z[targets] - last)[:, None]
        return x.astype(np.float32), dz.astype(np.float32), last

    train_targets = np.arange(W + K - 1, split)
    test_targets = np.arange(split, N)
    x_tr, y_tr, _ = examples(train_targets)
    x_te, _, last_te = examples(test_targets)

    model = SequenceClassifier(1, hidden, 1, dtype=np.float32, seed=seed)
    opt = Adam(model.params, lr=lr, clip_grad_norm=1.0)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    epoch_loss = float("nan")
    done = 0
    stopped_early = False
    for epoch in range(int(epochs)):
        perm = rng.permutation(n_train)
        total = 0.0
        for i in range(0, n_train, batch_size):
            b = perm[i:i + batch_size]
            model.zero_grad()
            pred = model(x_tr[:, b])
            loss, dpred = mse(pred, y_tr[b])
            model.backward(dpred)
            opt.step(model.grads)
            total += float(loss) * b.size
        epoch_loss = total / n_train
        done = epoch + 1
        if on_epoch is not None:
            on_epoch(done, epoch_loss)
        if seconds is not None and time.perf_counter() - t0 > seconds and done < epochs:
            stopped_early = True
            break
    elapsed = time.perf_counter() - t0

    model.eval()
    dz = model(x_te)[:, 0].astype(np.float64)
    pv = (last_te + dz) * sd + mu
    pred = np.exp(pv) if log else pv
    truth = y[test_targets]
    naive = y[test_targets - K]
    return ForecastResult(
        window=W, horizon=K, n_values=N, n_train=n_train, n_test=n_test,
        rnn_mae=float(np.mean(np.abs(pred - truth))),
        naive_mae=float(np.mean(np.abs(naive - truth))),
        epochs=done, stopped_early=stopped_early, train_loss=float(epoch_loss), seconds=elapsed,
        target_index=test_targets, predictions=pred, truth=truth, naive=naive)


# --------------------------------------------------------------------------
# CSV input
# --------------------------------------------------------------------------

def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def load_csv_column(path: str, column: Optional[str] = None,
                    encoding: str = "utf-8") -> Tuple[np.ndarray, str]:
    """Read one numeric column of a CSV file.

    Parameters
    ----------
    path : str
    column : str or None
        A column name from the header (for a file without a header, a
        1-based column number); None takes the last column.
    encoding : str
        The file's text encoding.

    Returns
    -------
    values : ndarray of float64
    column : str
        The name of the column read.

    Raises
    ------
    CLIError
        Missing, unreadable, undecodable or empty file; unknown column; a
        missing, empty, non-numeric or non-finite value (the message gives
        the line).
    """
    text = read_text(path, encoding=encoding, what="CSV file")
    first = text.lstrip().split("\n", 1)[0]
    delimiter = ","
    if "," not in first:
        delimiter = "\t" if "\t" in first else (";" if ";" in first else ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((reader.line_num, row))
    except csv.Error as e:
        raise CLIError(f"{path}: not a valid CSV file ({e})") from None
    header = [cell.strip() for cell in rows[0][1]]
    has_header = not all(_is_number(c) for c in header)
    if has_header:
        names, data = header, rows[1:]
    else:
        names, data = [str(i + 1) for i in range(len(header))], rows
    if not data:
        raise CLIError(f"{path} has a header but no data rows")
    if column is None:
        col = len(names) - 1
    elif column in names:
        col = names.index(column)
    else:
        shown = ", ".join(repr(n) for n in names)
        raise CLIError(f"{path} has no column {column!r}; its columns are: {shown}")
    name = names[col]
    values = np.empty(len(data), dtype=np.float64)
    for i, (line, row) in enumerate(data):
        if col >= len(row) or not row[col].strip():
            raise CLIError(f"{path}, line {line}: no value in column {name!r}")
        cell = row[col].strip()
        try:
            values[i] = float(cell)
        except ValueError:
            raise CLIError(f"{path}, line {line}: column {name!r} is not numeric "
                           f"(found {cell[:40]!r})") from None
        if not math.isfinite(values[i]):
            raise CLIError(f"{path}, line {line}: column {name!r} holds {cell!r}; "
                           f"values must be finite numbers")
    return values, name


# --------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------

def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or a CLIError."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CLIError("--plot needs matplotlib, which is not installed: "
                       "pip install 'crnn[plot]' (or pip install matplotlib)") from None
    return plt


def plot_forecast(series: np.ndarray, result: ForecastResult, path: str, title: str = "") -> None:
    """Draw the history, the truth and both forecasts of the held-out tail to `path`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    try:
        idx = result.target_index
        start = int(idx[0])
        ax.plot(np.arange(start), series[:start], color="0.55", lw=1.2, label="history")
        # The truth line starts at the last value of the history, so the two join.
        ax.plot(np.arange(start - 1, len(series)), series[start - 1:], color="black", lw=1.6,
                label="truth (held out)")
        ax.plot(idx, result.predictions, color="tab:red", lw=1.6,
                label=f"RNN forecast (MAE {result.rnn_mae:.4g})")
        ax.plot(idx, result.naive, color="tab:blue", lw=1.0, ls="--",
                label=f"naive last value (MAE {result.naive_mae:.4g})")
        ax.axvline(idx[0] - 0.5, color="0.8", lw=1)
        ax.set_xlabel("time step")
        ax.set_ylabel("value")
        ax.set_title(title or f"window {result.window}, horizon {result.horizon}")
        ax.legend(loc="upper left", fontsize=9)
        fig.tight_layout()
        try:
            fig.savefig(path, dpi=100)
        except (OSError, ValueError) as e:
            raise CLIError(f"cannot write the plot to {path}: {e}") from None
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def register(subparsers: Any) -> None:
    """Add ``crnn forecast`` to an argparse subparsers object."""
    d = DEFAULTS
    p = subparsers.add_parser(
        "forecast",
        help="forecast a time series with a many-to-one RNN, against the naive forecast",
        description=(
            "Train a many-to-one RNN to predict the value HORIZON steps after a window of WINDOW "
            "past values, holding out the end of the series, and report on that held-out tail "
            "the mean absolute error (MAE) of the RNN and of the naive forecast (the last value "
            "seen). Without --csv the series is the built-in monthly international airline "
            "passengers, 1949-1960 (Box & Jenkins, series G; R's AirPassengers)."),
    )
    p.add_argument("--csv", metavar="FILE",
                   help="a CSV file with a header row, oldest row first (default: the built-in "
                        "airline series)")
    p.add_argument("--column", metavar="NAME",
                   help="the CSV column to forecast (default: the last column)")
    p.add_argument("--encoding", default="utf-8",
                   help="text encoding of the CSV file (default utf-8)")
    p.add_argument("--window", type=positive_int, default=d["window"], metavar="W",
                   help=f"past values the RNN reads (default {d['window']})")
    p.add_argument("--horizon", type=positive_int, default=d["horizon"], metavar="K",
                   help=f"predict the value K steps after the window (default {d['horizon']})")
    p.add_argument("--test-fraction", type=fraction, default=d["test_fraction"], metavar="F",
                   help=f"share of the series held out at its end (default {d['test_fraction']})")
    p.add_argument("--hidden", type=positive_int, default=d["hidden"], metavar="H",
                   help=f"hidden units (default {d['hidden']})")
    p.add_argument("--epochs", type=positive_int, default=d["epochs"],
                   help=f"passes over the training windows (default {d['epochs']})")
    p.add_argument("--seconds", type=positive_float, default=d["seconds"],
                   help=f"stop training after this many seconds (default {d['seconds']:g})")
    p.add_argument("--lr", type=positive_float, default=d["lr"],
                   help=f"Adam learning rate (default {d['lr']:g})")
    p.add_argument("--log", action="store_true",
                   help="model the log of the values (for a seasonal swing that grows with the "
                        "level; all values must be > 0)")
    p.add_argument("--seed", type=int, default=d["seed"], help="random seed (default 0)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (rnn_mae, naive_mae, ...) instead of text")
    p.add_argument("--plot", metavar="OUT.png",
                   help="draw history, forecast and truth to this image (needs matplotlib)")
    p.set_defaults(func=handler)


@one_blas_thread
def handler(args: argparse.Namespace) -> int:
    """Run ``crnn forecast``; returns the exit status (0)."""
    if args.column is not None and args.csv is None:
        raise CLIError("--column needs --csv FILE")
    if args.plot:
        _pyplot()  # fail now, not after training
        parent = os.path.dirname(os.path.abspath(args.plot))
        if not os.path.isdir(parent):
            raise CLIError(f"cannot write the plot to {args.plot}: no such directory {parent}")
    if args.csv is not None:
        series, column = load_csv_column(args.csv, args.column, args.encoding)
        name = f"{os.path.basename(args.csv)}:{column}"
        title = name
    else:
        series = datasets.load_series("airline")
        name = "airline"
        title = datasets.SERIES["airline"]["title"]
    if args.log and np.any(series <= 0):
        raise CLIError(f"--log needs all values > 0, but {name} has values <= 0")
    try:
        split_sizes(series.size, args.window, args.horizon, args.test_fraction)
    except SeriesTooShort as e:
        raise CLIError(f"{name}: {e}") from None

    with Progress(args.epochs, desc="training", unit="epochs") as bar:
        def on_epoch(epoch: int, loss: float) -> None:
            bar.update(1, status=f"loss {loss:.4f}")

        result = forecast(series, args.window, args.horizon, hidden=args.hidden,
                          epochs=args.epochs, seconds=args.seconds, lr=args.lr,
                          test_fraction=args.test_fraction, log=args.log, seed=args.seed,
                          on_epoch=on_epoch)

    if args.plot:
        plot_forecast(series, result, args.plot,
                      title=f"{title}: window {result.window}, horizon {result.horizon}")

    if args.json:
        out = dict(series=name, **result.summary(), hidden=args.hidden, log=args.log,
                   seed=args.seed)
        if args.plot:
            out["plot"] = args.plot
        print(json.dumps(out))
        return 0

    ratio = result.rnn_mae / result.naive_mae if result.naive_mae > 0 else float("nan")
    lines = [
        f"series: {name} ({result.n_values} values){'' if args.csv else ' - ' + title}",
        f"window {result.window}, horizon {result.horizon}: trained on {result.n_train} windows, "
        f"tested on the last {result.n_test} values",
        f"training: {result.epochs} epochs in {result.seconds:.1f} s"
        f"{' (stopped by --seconds)' if result.stopped_early else ''}, "
        f"final loss {result.train_loss:.4g} (scaled)",
        f"RNN MAE:   {result.rnn_mae:.4g}",
        f"naive MAE: {result.naive_mae:.4g}  (last value seen)",
    ]
    if math.isfinite(ratio):
        better = "better" if ratio < 1 else "worse"
        lines.append(f"the RNN's error is {ratio:.0%} of the naive forecast's ({better})")
    if args.plot:
        lines.append(f"plot written to {args.plot}")
    print("\n".join(lines))
    return 0
