"""``crnn forecast``: forecast a time series with `crnn.models.Forecaster`, against baselines.

How (`forecast`):

1. The season: given (``season=12``), or found from the autocorrelation of
   the training part (`crnn.baselines.detect_season`), or none.
2. The end of the series is held out (``test_fraction``, 20% by default,
   and at least as many values as are forecast at once). A
   `crnn.models.Forecaster` is trained on the values before it (the most
   recent of them set aside for early stopping, then a refit on all; see
   `Forecaster.fit`).
3. Scoring, by rolling origin: from every position of the held-out tail
   the model forecasts the next ``steps`` values, seeing only the values
   before that position. The baselines -- the last value, the seasonal
   naive forecast (the value one season earlier) and the drift (the line
   through the first and last values) -- forecast from the same origins.
   Errors: the mean absolute error (MAE, in the series' units) and the MASE
   (the MAE divided by the in-sample MAE of the naive forecast one season
   back on the training part; below 1 beats it). The report compares the
   model with the *best* baseline and says plainly when it does not beat
   it.
4. With ``ahead=N`` a second Forecaster, trained the same way on the whole
   series, forecasts the N values after its end; it is returned with the
   forecast.

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
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from .. import baselines, cells, datasets
from ..forecasting import STRATEGIES, Forecaster, baseline_backtests
from ..serialization import save
from .common import (
    CLIError,
    Progress,
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
    "forecast",
    "ForecastResult",
    "SeriesTooShort",
    "load_csv_column",
    "plot_forecast",
    "handler",
    "plan",
]

DEFAULTS = dict(
    hidden=32,
    epochs=300,
    seconds=30.0,
    lr=3e-3,
    batch_size=32,
    test_fraction=0.2,
    seed=0,
    strategy="direct",
    cell="rnn",
)

#: What each baseline is, for the report.
BASELINE_NOTES = {
    "last value": "the naive forecast: the last value seen",
    "seasonal naive": "the value one season earlier",
    "drift": "the last value plus the average change per step",
}


class SeriesTooShort(ValueError):
    """The series cannot fill the training windows and the held-out tail."""


@dataclass
class Plan:
    """The sizes `forecast` uses (`plan` works them out and checks them)."""

    n_values: int
    season: Optional[int]
    season_correlation: float
    season_detected: bool
    window: int
    horizon: int
    steps: int
    n_test: int

    @property
    def split(self) -> int:
        return self.n_values - self.n_test


def plan(
    series: Any,
    window: Optional[int] = None,
    horizon: Optional[int] = None,
    ahead: int = 0,
    season: Union[int, str, None] = "auto",
    test_fraction: float = 0.2,
    strategy: str = "direct",
) -> Plan:
    """Work out the season, window, horizon, scored steps and held-out size.

    Defaults: the season is found in the values before the held-out tail;
    ``window`` is 12, or the season when it is longer; ``horizon`` is the
    season when there is one (one season forecast at once), else `ahead`,
    else 1; the scored ``steps`` are `ahead` when given, else `horizon`;
    the held-out tail is ``round(N * test_fraction)`` values, and at least
    ``steps``.

    Raises
    ------
    SeriesTooShort
        When the training part cannot give the model two windows (one for
        training, one for early stopping), or the baselines a season.
    ValueError
        A bad argument.
    """
    y = np.asarray(series, dtype=np.float64)
    N = int(y.shape[0])
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    for name, v in (("window", window), ("horizon", horizon)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if isinstance(ahead, bool) or not isinstance(ahead, (int, np.integer)) or ahead < 0:
        raise ValueError(f"ahead must be an integer >= 0, got {ahead!r}")
    n_test = max(1, int(round(N * test_fraction)))
    # The season is looked for in the training part only (the held-out tail
    # stays unseen); n_test may still grow below, which only shortens it.
    detected, corr, m = False, 0.0, None
    if season == "auto":
        m, corr = baselines.detect_season(y[: N - n_test]) if N - n_test >= 8 else (None, 0.0)
        detected = m is not None
    elif season is not None and season != 0:
        if isinstance(season, bool) or not isinstance(season, (int, np.integer)) or season < 2:
            raise ValueError(f"season must be an integer >= 2, 'auto' or None, got {season!r}")
        m = int(season)
    W = int(window) if window is not None else (max(12, m) if m else 12)
    if horizon is not None:
        H = int(horizon)
    else:
        H = m if m else (int(ahead) if ahead else 1)
    steps = int(ahead) if ahead else H
    n_test = max(n_test, steps)
    split = N - n_test
    outputs = H if strategy == "direct" else 1
    need = W + outputs + 1  # two windows: one to train on, one for early stopping
    if split < need:
        raise SeriesTooShort(
            f"series too short: {N} values, but a window of {W} and {outputs} forecast step(s) "
            f"at once need at least {need} training values, and the last {n_test} are held out "
            f"for scoring (use a smaller --window, --horizon or --ahead, or a longer series)"
        )
    if m is not None and split < m + 1:
        raise SeriesTooShort(
            f"series too short for a season of {m}: the training part holds only {split} values"
        )
    return Plan(
        n_values=N,
        season=m,
        season_correlation=corr,
        season_detected=detected,
        window=W,
        horizon=H,
        steps=steps,
        n_test=n_test,
    )


@dataclass
class ForecastResult:
    """What `forecast` found: scores on the held-out tail, and the forecast.

    ``predictions`` and ``truth`` are (n_origins, steps): the model's
    forecast from each origin (``origins``, positions in the series) and
    what happened; ``baseline_predictions`` holds the same for each
    baseline. ``model`` is the Forecaster trained on the whole series and
    ``future`` its forecast of the ``ahead`` values after the end (None
    without `ahead`); ``eval_model`` is the one trained on the part before
    the held-out tail.
    """

    plan: Plan
    strategy: str
    cell: str
    log: bool
    mae: float
    mase: float
    baseline_mae: Dict[str, float]
    baseline_mase: Dict[str, float]
    best_baseline: str
    mase_season: int
    fit_info: Dict[str, Any]
    seconds: float
    origins: np.ndarray = field(repr=False)
    predictions: np.ndarray = field(repr=False)
    truth: np.ndarray = field(repr=False)
    baseline_predictions: Dict[str, np.ndarray] = field(repr=False)
    eval_model: Any = field(repr=False, default=None)
    model: Any = field(repr=False, default=None)
    future: Optional[np.ndarray] = field(repr=False, default=None)
    baseline_future: Dict[str, np.ndarray] = field(repr=False, default_factory=dict)

    @property
    def beats_best_baseline(self) -> bool:
        """Whether the model's MAE is below the best baseline's."""
        return self.mae < self.baseline_mae[self.best_baseline]

    @property
    def ratio(self) -> float:
        """The model's MAE over the best baseline's."""
        b = self.baseline_mae[self.best_baseline]
        return self.mae / b if b > 0 else float("nan")

    def summary(self) -> Dict[str, Any]:
        """JSON-ready numbers (forecasts as lists)."""
        p = self.plan
        out = dict(
            n_values=p.n_values,
            window=p.window,
            horizon=p.horizon,
            steps=p.steps,
            n_test=p.n_test,
            n_train=p.split,
            test_start=p.split,
            n_origins=int(self.origins.size),
            season=p.season,
            season_detected=p.season_detected,
            strategy=self.strategy,
            cell=self.cell,
            log=self.log,
            mae=self.mae,
            mase=self.mase,
            rnn_mae=self.mae,
            naive_mae=self.baseline_mae["last value"],
            baselines={
                k: dict(mae=self.baseline_mae[k], mase=self.baseline_mase[k])
                for k in self.baseline_mae
            },
            best_baseline=self.best_baseline,
            beats_best_baseline=bool(self.beats_best_baseline),
            ratio_to_best_baseline=self.ratio,
            mase_season=self.mase_season,
            epochs=self.fit_info["epochs"],
            best_epoch=self.fit_info["best_epoch"],
            stopped_early=bool(self.fit_info["stopped_by_time"]),
            train_loss=self.fit_info["train_loss"],
            seconds=round(self.seconds, 3),
            forecast=[float(v) for v in self.predictions[0]],
            truth=[float(v) for v in self.truth[0]],
        )
        if self.future is not None:
            out["ahead"] = int(self.future.size)
            out["future"] = [float(v) for v in self.future]
            out["baseline_future"] = {
                k: [float(v) for v in f] for k, f in self.baseline_future.items()
            }
        return out


def _check_series(series: Any) -> np.ndarray:
    y = np.asarray(series, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"series must be one-dimensional, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("series must hold finite numbers only")
    return y


def forecast(
    series: Any,
    window: Optional[int] = None,
    horizon: Optional[int] = None,
    *,
    ahead: int = 0,
    strategy: str = "direct",
    cell: str = "rnn",
    hidden: int = 32,
    season: Union[int, str, None] = "auto",
    epochs: int = 300,
    seconds: Optional[float] = 30.0,
    lr: float = 3e-3,
    batch_size: int = 32,
    test_fraction: float = 0.2,
    log: bool = False,
    seed: int = 0,
    on_epoch: Optional[Callable[[int, float], None]] = None,
) -> ForecastResult:
    """Train a Forecaster on a series, score it against the baselines, and forecast.

    Parameters
    ----------
    series : array_like of finite numbers, shape (N,)
    window, horizon : int or None
        Past values the model reads; steps it forecasts at once. Defaults:
        see `plan`.
    ahead : int
        Forecast this many values after the end of the series (with a
        model trained on all of it); 0: score only.
    strategy : {"direct", "recursive"}
    cell : {"rnn", "lstm", "gru"}
        Any stacked cell of `crnn.cells`.
    hidden : int
        Hidden units.
    season : int, "auto" or None
        The seasonal period (for the seasonal-naive baseline, the MASE and
        the default window / horizon); "auto" looks for one.
    epochs, seconds, lr, batch_size
        Training (`Forecaster.fit`); `seconds` is the time budget of all
        the training (split between the two models with `ahead`).
    test_fraction : float in (0, 1)
        The held-out share of the series (its end).
    log : bool
        Model log(values) (all values must be > 0).
    seed : int
        Seeds the initialisation and the shuffling: the same arguments give
        the same numbers, unless the time limit cuts training.
    on_epoch : callable(epoch, loss) or None
        Called after every training epoch (of either model).

    Returns
    -------
    ForecastResult
        With ``.model`` (trained on the whole series when ``ahead`` > 0)
        and ``.future`` (its forecast).

    Raises
    ------
    SeriesTooShort
    ValueError
        Non-finite values, non-positive values with ``log``, bad arguments.
    """
    y = _check_series(series)
    if log and np.any(y <= 0):
        raise ValueError("log scaling needs all values > 0")
    for name, v in (("hidden", hidden), ("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    cells.get(cell)  # an unknown cell fails here, before any training
    p = plan(y, window, horizon, ahead, season, test_fraction, strategy)
    t0 = time.perf_counter()
    budget = None if seconds is None else (seconds / 2 if ahead else seconds)

    def fitted(values: np.ndarray) -> Forecaster:
        m = Forecaster(
            window=p.window,
            horizon=p.horizon,
            strategy=strategy,
            hidden_size=hidden,
            cell=cell,
            log=log,
            seed=seed,
        )
        cb = None if on_epoch is None else (lambda e, tl, vl: on_epoch(e, tl))
        return m.fit(
            values,
            epochs=epochs,
            seconds=budget,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
            on_epoch=cb,
        )

    eval_model = fitted(y[: p.split])
    origins, preds, truth = eval_model.backtest(y, p.split, p.steps)
    base = baseline_backtests(y, p.split, p.steps, p.season)
    m_season = p.season or 1
    train = y[: p.split]
    b_mae = {k: baselines.mae(v, truth) for k, v in base.items()}
    b_mase = {k: baselines.mase(v, truth, train, m_season) for k, v in base.items()}
    best = min(b_mae, key=lambda k: b_mae[k])
    model, future, b_future = eval_model, None, {}
    if ahead:
        model = fitted(y)
        future = model.predict(ahead)
        b_future = {k: f(y, ahead, p.season) for k, f in baselines.BASELINES.items() if k in base}
    return ForecastResult(
        plan=p,
        strategy=strategy,
        cell=cells.get(cell).name,
        log=bool(log),
        mae=baselines.mae(preds, truth),
        mase=baselines.mase(preds, truth, train, m_season),
        baseline_mae=b_mae,
        baseline_mase=b_mase,
        best_baseline=best,
        mase_season=m_season,
        fit_info=dict(eval_model.fit_info_),
        seconds=time.perf_counter() - t0,
        origins=origins,
        predictions=preds,
        truth=truth,
        baseline_predictions=base,
        eval_model=eval_model,
        model=model,
        future=future,
        baseline_future=b_future,
    )


# --------------------------------------------------------------------------
# CSV input
# --------------------------------------------------------------------------


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def load_csv_column(
    path: str, column: Optional[str] = None, encoding: str = "utf-8"
) -> Tuple[np.ndarray, str]:
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
            raise CLIError(
                f"{path}, line {line}: column {name!r} is not numeric (found {cell[:40]!r})"
            ) from None
        if not math.isfinite(values[i]):
            raise CLIError(
                f"{path}, line {line}: column {name!r} holds {cell!r}; "
                f"values must be finite numbers"
            )
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
        raise CLIError(
            "--plot needs matplotlib, which is not installed: "
            "pip install 'crnn[plot]' (or pip install matplotlib)"
        ) from None
    return plt


def plot_forecast(series: np.ndarray, result: ForecastResult, path: str, title: str = "") -> None:
    """Draw the history, the held-out tail with the forecasts from its first origin (model
    and best baseline), and the forecast of the future when there is one, to `path`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.8))
    try:
        y = np.asarray(series, dtype=np.float64)
        N, split, steps = y.size, result.plan.split, result.plan.steps
        best = result.best_baseline
        ax.plot(np.arange(N), y, color="black", lw=1.4, label="series")
        ax.axvspan(split - 0.5, N - 0.5, color="0.92", lw=0, label="held out")
        o = int(result.origins[0])
        xs = np.arange(o - 1, o + steps)
        ax.plot(
            xs,
            np.r_[y[o - 1], result.predictions[0]],
            color="tab:red",
            lw=1.4,
            ls="--",
            label=f"RNN from the first held-out origin (MAE {result.mae:.4g})",
        )
        ax.plot(
            xs,
            np.r_[y[o - 1], result.baseline_predictions[best][0]],
            color="tab:blue",
            lw=1.0,
            ls=":",
            label=f"{best} (MAE {result.baseline_mae[best]:.4g})",
        )
        if result.future is not None:
            k = result.future.size
            xf = np.arange(N - 1, N + k)
            ax.plot(
                xf,
                np.r_[y[-1], result.future],
                color="tab:red",
                lw=2.0,
                label=f"RNN forecast, next {k}",
            )
            if best in result.baseline_future:
                ax.plot(
                    xf, np.r_[y[-1], result.baseline_future[best]], color="tab:blue", lw=1.0, ls=":"
                )
        ax.set_xlabel("time step")
        ax.set_ylabel("value")
        ax.set_title(title)
        ax.legend(loc="upper left", fontsize=8)
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


def _season_arg(text: str) -> Union[int, str, None]:
    t = text.strip().lower()
    if t == "auto":
        return "auto"
    if t in ("none", "0"):
        return None
    try:
        v = int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= 2, 'auto' or 'none', got {text!r}"
        ) from None
    if v < 2:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= 2, 'auto' or 'none', got {text!r}"
        )
    return v


def _usable_cells() -> Tuple[str, ...]:
    return tuple(name for name, spec in cells.REGISTRY.items() if not spec.uses_output_size)


def register(subparsers: Any) -> None:
    """Add ``crnn forecast`` to an argparse subparsers object."""
    d = DEFAULTS
    p = subparsers.add_parser(
        "forecast",
        help="forecast a time series with an RNN, scored against the best of three baselines",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Train a recurrent forecaster (crnn.models.Forecaster: a window of past values ->\n"
            "RNN -> the next values) on a series whose end is held out, and score it there by\n"
            "rolling origin: from every held-out position, a forecast that sees only the\n"
            "values before it. Three baselines forecast from the same positions: the last\n"
            "value, the seasonal naive forecast (the value one season earlier) and the drift\n"
            "(the line through the first and last values). Errors: the mean absolute error\n"
            "(MAE) and the MASE (the MAE over the in-sample MAE of the naive forecast one\n"
            "season back). The report says plainly whether the RNN beats the best baseline.\n"
            "With --ahead N it then forecasts the N values after the end of the series, with\n"
            "a model trained on all of it.\n"
            "\n"
            "Without --csv the series is the built-in monthly international airline\n"
            "passengers, 1949-1960 (Box & Jenkins, series G; R's AirPassengers)."
        ),
        epilog="examples:\n"
        "  crnn forecast --ahead 12 --log\n"
        "  crnn forecast --csv sales.csv --column units --ahead 8 --plot sales.png\n"
        "  crnn forecast --ahead 12 --out airline.npz   (then crnn.load('airline.npz')"
        ".predict(12))",
    )
    p.add_argument(
        "--csv",
        metavar="FILE",
        help="a CSV file with a header row, oldest row first (default: the built-in "
        "airline series)",
    )
    p.add_argument(
        "--column", metavar="NAME", help="the CSV column to forecast (default: the last column)"
    )
    p.add_argument(
        "--encoding", default="utf-8", help="text encoding of the CSV file (default utf-8)"
    )
    p.add_argument(
        "--ahead",
        type=positive_int,
        default=0,
        metavar="N",
        help="forecast the N values after the end of the series and print them "
        "(default: score only)",
    )
    p.add_argument(
        "--window",
        type=positive_int,
        default=None,
        metavar="W",
        help="past values the RNN reads (default 12, or the season when longer)",
    )
    p.add_argument(
        "--horizon",
        type=positive_int,
        default=None,
        metavar="H",
        help="steps the RNN forecasts at once (default: the season when there is "
        "one, else --ahead, else 1); the held-out tail is scored on --ahead "
        "steps when given, else on H",
    )
    p.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default=d["strategy"],
        help="direct: one output per horizon step (blocks of H chained beyond it); "
        "recursive: one step, fed back as the next input (default "
        f"{d['strategy']})",
    )
    p.add_argument(
        "--season",
        type=_season_arg,
        default="auto",
        metavar="M",
        help="the seasonal period (for the seasonal-naive baseline, the MASE and the "
        "defaults above): an integer >= 2, 'auto' (the default: found in the "
        "autocorrelation of the training part) or 'none'",
    )
    p.add_argument(
        "--cell",
        choices=_usable_cells(),
        default=d["cell"],
        help=f"the recurrent cell (default {d['cell']})",
    )
    p.add_argument(
        "--hidden",
        type=positive_int,
        default=d["hidden"],
        metavar="H",
        help=f"hidden units (default {d['hidden']})",
    )
    p.add_argument(
        "--test-fraction",
        type=fraction,
        default=d["test_fraction"],
        metavar="F",
        help=f"share of the series held out at its end for scoring (default "
        f"{d['test_fraction']}; at least the scored steps)",
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=d["epochs"],
        help=f"most passes over the training windows (default {d['epochs']}); the "
        f"best number on the most recent 15%% of them is then used to train on "
        f"all of them",
    )
    p.add_argument(
        "--seconds",
        type=positive_float,
        default=d["seconds"],
        help=f"time budget for training (default {d['seconds']:g})",
    )
    p.add_argument(
        "--lr",
        type=positive_float,
        default=d["lr"],
        help=f"Adam learning rate (default {d['lr']:g})",
    )
    p.add_argument(
        "--log",
        action="store_true",
        help="model the log of the values (for a seasonal swing that grows with the "
        "level, as the airline series'; all values must be > 0)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=d["seed"],
        help="random seed of the initialisation and the shuffling (default 0)",
    )
    add_threads_option(p)
    p.add_argument(
        "--out",
        metavar="MODEL.npz",
        help="save the model trained on the whole series (crnn.save; "
        "crnn.load(...).predict(N) forecasts)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (mae, mase, baselines, best_baseline, future, "
        "...) instead of text",
    )
    p.add_argument(
        "--plot",
        metavar="OUT.png",
        help="draw the series, the held-out forecasts and the future to this image "
        "(needs matplotlib: pip install 'crnn[plot]')",
    )
    p.set_defaults(func=handler)


def swing_grows_with_level(series: Any, season: Optional[int]) -> bool:
    """True when the seasonal swing grows with the level (all values > 0, at least four
    seasons, and the spread within each season rises with its mean: correlation > 0.8,
    the level rising by half or more): then log(values) is easier to model."""
    y = np.asarray(series, dtype=np.float64)
    if not season or np.any(y <= 0):
        return False
    k = y.size // season
    if k < 4:
        return False
    cycles = y[: k * season].reshape(k, season)
    level, spread = cycles.mean(axis=1), cycles.std(axis=1)
    if level.max() < 1.5 * level.min() or np.ptp(spread) == 0:
        return False
    return bool(np.corrcoef(level, spread)[0, 1] > 0.8)


def _month_labels(start: str, n_values: int, k: int) -> Optional[List[str]]:
    """'YYYY-MM' labels of the k months after a monthly series starting at `start`."""
    try:
        year, month = (int(v) for v in start.split("-")[:2])
    except ValueError:
        return None
    first = year * 12 + month - 1 + n_values
    return [f"{(first + i) // 12:04d}-{(first + i) % 12 + 1:02d}" for i in range(k)]


def _fmt(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"


def format_report(
    name: str,
    title: str,
    series: np.ndarray,
    r: ForecastResult,
    labels: Optional[List[str]] = None,
    out: Optional[str] = None,
) -> str:
    """The text ``crnn forecast`` prints."""
    p = r.plan
    fi = r.fit_info
    m = r.eval_model
    kind = cells.get(r.cell).title
    lines = [f"series    {name}: {p.n_values} values" + (f" - {title}" if title else "")]
    if p.season:
        how = (
            f"found in the autocorrelation: r = {p.season_correlation:.2f} at lag {p.season}"
            if p.season_detected
            else "given"
        )
        lines.append(f"season    {p.season} ({how})")
    else:
        lines.append("season    none found (no seasonal-naive baseline; --season M sets one)")
    at_once = (
        f"direct: {p.horizon} step{'s' if p.horizon != 1 else ''} at once"
        if r.strategy == "direct"
        else "recursive: one step, fed back"
    )
    lines.append(
        f"model     Forecaster: window {p.window} -> {kind} {m.rnn.hidden_size} -> Linear "
        f"{m.n_outputs} ({at_once}){', log scale' if r.log else ''}; "
        f"{m.num_parameters():,} parameters"
    )
    n_or = r.origins.size
    lines.append(
        f"held out  the last {p.n_test} values; from each of {n_or} origin"
        f"{'s' if n_or != 1 else ''} in them, a forecast of the next {p.steps} "
        f"value{'s' if p.steps != 1 else ''} that sees only the values before it"
    )
    cut = " (stopped by --seconds)" if fi["stopped_by_time"] else ""
    lines.append(
        f"training  on the first {p.split} values: {fi['epochs']} epochs{cut}, the best "
        f"({fi['best_epoch']}) on the most recent {fi['n_val']} of {fi['n_windows']} "
        f"windows, then refit on all; {r.seconds:.1f} s in all"
    )
    lines.append("")
    me = f"RNN ({kind} cell)"
    w = max(len(k) for k in list(r.baseline_mae) + [me]) + 2
    lines.append(f"{'errors':<{w + 2}}{'MAE':>10}{'MASE':>8}")
    lines.append(f"  {me:<{w}}{_fmt(r.mae):>10}{r.mase:>8.2f}")
    for k in sorted(r.baseline_mae, key=lambda k: r.baseline_mae[k]):
        lines.append(
            f"  {k:<{w}}{_fmt(r.baseline_mae[k]):>10}{r.baseline_mase[k]:>8.2f}   "
            f"{BASELINE_NOTES[k]}"
        )
    scale = "the seasonal naive forecast" if r.mase_season > 1 else "the naive forecast"
    lines.append(
        f"  MAE in the series' units; MASE: the MAE over the in-sample MAE of {scale} "
        f"on the training part"
    )
    best = r.best_baseline
    if not r.log and swing_grows_with_level(series[: p.split], p.season):
        lines.append(
            "  hint: the seasonal swing grows with the level here; --log models the log "
            "of the values, which suits such a series"
        )
    if r.beats_best_baseline:
        lines.append(f"the RNN beats the best baseline ({best}): its MAE is {r.ratio:.0%} of it")
    else:
        lines.append(
            f"the RNN does NOT beat the best baseline ({best}): its MAE is {r.ratio:.0%} "
            f"of it. Use the {best} forecast, or try --log, a longer --window, another "
            f"--cell or more --epochs"
        )
    if r.future is not None:
        lines.append("")
        n_future = r.future.size
        lines.append(
            f"forecast  the next {n_future} value{'s' if n_future != 1 else ''}, by the RNN "
            f"trained on all {p.n_values} values (and by the {best} forecast):"
        )
        names = labels or [f"+{i + 1}" for i in range(n_future)]
        bf = r.baseline_future.get(best)
        for i in range(n_future):
            extra = f"   ({_fmt(bf[i])})" if bf is not None else ""
            lines.append(f"  {names[i]:>8}  {_fmt(r.future[i]):>10}{extra}")
    elif p.steps:
        lines.append(
            f"(crnn forecast --ahead {p.horizon} ... forecasts the next {p.horizon} "
            f"value{'s' if p.horizon != 1 else ''})"
        )
    if out:
        lines.append("")
        lines.append(
            f"saved     {out} (crnn.load('{out}').predict({max(p.horizon, 1)}) forecasts "
            f"from the end of the series)"
        )
    return "\n".join(lines)


@one_blas_thread
def handler(args: argparse.Namespace) -> int:
    """Run ``crnn forecast``; returns the exit status (0)."""
    apply_threads(args)
    if args.column is not None and args.csv is None:
        raise CLIError("--column needs --csv FILE")
    for opt, path in (("--plot", args.plot), ("--out", args.out)):
        if path:
            if os.path.isdir(path):
                raise CLIError(f"cannot write {opt} {path}: it is a directory")
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                raise CLIError(f"cannot write {opt} {path}: no such directory {parent}")
    if args.plot:
        _pyplot()  # fail now, not after training
    labels = None
    if args.csv is not None:
        series, column = load_csv_column(args.csv, args.column, args.encoding)
        name = f"{os.path.basename(args.csv)}:{column}"
        title = ""
    else:
        series = datasets.load_series("airline")
        name = "airline"
        info = datasets.SERIES["airline"]
        title = info["title"]
        if args.ahead:
            labels = _month_labels(info["start"], series.size, args.ahead)
    if args.log and np.any(series <= 0):
        raise CLIError(f"--log needs all values > 0, but {name} has values <= 0")
    try:
        p = plan(
            series,
            args.window,
            args.horizon,
            args.ahead,
            args.season,
            args.test_fraction,
            args.strategy,
        )
    except SeriesTooShort as e:
        raise CLIError(f"{name}: {e}") from None
    ahead = args.ahead or (p.horizon if args.out else 0)

    fits = 2 if ahead else 1
    with Progress(args.epochs * fits, desc="training", unit="epochs") as bar:

        def on_epoch(epoch: int, loss: float) -> None:
            bar.update(1, status=f"loss {loss:.4f}")

        result = forecast(
            series,
            args.window,
            args.horizon,
            ahead=ahead,
            strategy=args.strategy,
            cell=args.cell,
            hidden=args.hidden,
            season=args.season,
            epochs=args.epochs,
            seconds=args.seconds,
            lr=args.lr,
            test_fraction=args.test_fraction,
            log=args.log,
            seed=args.seed,
            on_epoch=on_epoch,
        )
    if not args.ahead:
        result.future = None
    if args.out:
        try:
            save(result.model, args.out)
        except OSError as e:
            raise CLIError(f"cannot write --out {args.out}: {e.strerror or e}") from None
    if args.plot:
        plot_forecast(
            series,
            result,
            args.plot,
            title=f"{title or name}: window {p.window}, {result.strategy} "
            f"{p.horizon}, {result.cell}",
        )

    if args.json:
        out = dict(series=name, **result.summary(), hidden=args.hidden, seed=args.seed)
        if labels and result.future is not None:
            out["future_labels"] = labels
        if args.plot:
            out["plot"] = args.plot
        if args.out:
            out["model_file"] = args.out
        print(json.dumps(out))
        return 0
    print(format_report(name, title, series, result, labels, args.out))
    if args.plot:
        print(f"plot      {args.plot}")
    return 0
