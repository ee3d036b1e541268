"""`Forecaster`: a recurrent model that forecasts a time series (``crnn.models.Forecaster``).

The model reads a window of the W most recent values (and, optionally,
exogenous columns: known covariates such as a calendar or a planned price)
and forecasts what follows::

    y[t-W+1], ..., y[t]  ->  recurrent layer -> last state -> Linear -> y[t+1], ..., y[t+H]

Two ways to forecast several steps:

``strategy="direct"``
    One output per step of the horizon H: a forward pass gives
    ``y[t+1..t+H]`` at once. Further ahead, blocks of H are chained (each
    block's forecast becomes history for the next).
``strategy="recursive"``
    One output, ``y[t+1]``, fed back as the newest value of the window to
    forecast ``y[t+2]``, and so on, as far as asked.

Scaling lives inside the model, so a user passes raw values: `fit` learns
the mean and standard deviation of the training values (after a log with
``log=True``, for a seasonal swing that grows with the level), and each
window is expressed relative to its own last value, so the network
forecasts *changes*: an untrained network (output 0) is exactly the naive
forecast, and a trend that leaves the training range does not push the
inputs out of it. The scaler and the last W rows of the series travel with
the model (in its config), so ``crnn.save`` / ``crnn.load`` give a model that
forecasts at once, with no pickle in the file.

Exogenous columns: `fit` takes a ``(T, 1 + n_exog)`` array whose column 0
is forecast and the others are covariates. Step i of a window reads the
value at i and the covariates at i + 1, so the last step sees the
covariates of the step being forecast; `predict` therefore needs the
covariates of every step it forecasts (``exog=``).

See `crnn.baselines` for the forecasts a model must beat, and
``crnn forecast`` for the command built on this class.
"""

from __future__ import annotations

import math
import numbers
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from . import baselines, cells
from .losses import mse
from .module import Module, check_int, float_dtype, input_array
from .nn import Linear, Recurrent, recurrent_layer
from .optim import Adam
from .serialization import register_module

__all__ = ["Forecaster", "STRATEGIES"]

STRATEGIES = ("direct", "recursive")


def _child_seeds(seed: Optional[int], n: int) -> List[Optional[int]]:
    if seed is None:
        return [None] * n
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(n)]


def _recurrent(
    cell: Any, nonlinearity: str, input_size: int, hidden_size: int, num_layers: int, **kwargs: Any
) -> Recurrent:
    spec = cells.get(cell)
    if spec.uses_output_size:
        usable = tuple(n for n, s in cells.REGISTRY.items() if not s.uses_output_size)
        raise ValueError(
            f"cell must be a cell without an output size, one of {usable}; got {spec.name!r}"
        )
    if "nonlinearity" in spec.option_names:
        kwargs["nonlinearity"] = nonlinearity
    elif nonlinearity != "tanh":
        raise ValueError(
            f"nonlinearity applies to cell='rnn' only (the {spec.title} cell's "
            f"activations are fixed), got nonlinearity={nonlinearity!r}"
        )
    return recurrent_layer(spec, input_size, hidden_size, num_layers=num_layers, **kwargs)


def _number(
    name: str, value: Any, low: float, high: float = math.inf, low_open: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    x = float(value)
    if x < low or (low_open and x == low) or x > high:
        raise ValueError(
            f"{name} must be in {'(' if low_open else '['}{low:g}, {high:g}], got {value!r}"
        )
    return x


@register_module
class Forecaster(Module):
    """Forecast a time series with a recurrent network: window -> cell -> Linear -> future values.

    Parameters
    ----------
    window : int >= 1
        Past values (rows) the network reads for each forecast.
    horizon : int >= 1
        Steps forecast by one call of `predict` by default. With
        ``strategy="direct"`` also the network's number of outputs.
    strategy : {"direct", "recursive"}
        "direct": one output per horizon step (blocks of `horizon` chained
        beyond it); "recursive": one step, fed back.
    hidden_size, num_layers : int
        Of the recurrent layer.
    cell : {"rnn", "lstm", "gru"}
        The recurrent cell (any stacked cell of `crnn.cells`).
    n_exog : int >= 0
        Exogenous columns (covariates) after the forecast column.
    log : bool
        Model ``log(values)`` (all values must be > 0): for a seasonal swing
        that grows with the level.
    nonlinearity : {"tanh", "relu", "sigmoid"}
        The RNN cell's activation (cell="rnn" only).
    dropout : float
        Between stacked recurrent layers, in training mode.
    dtype : float32 or float64
        Of the network (the scaling is computed in float64).
    seed : int or None
        Seeds the initialisation.
    backend : {"c", "numpy"}
    scaler, history : dict, list or None
        Set by `fit` and stored in the config (so that a loaded model
        forecasts at once): the scaling statistics, and the last `window`
        rows of the series.

    Attributes
    ----------
    rnn : Recurrent
    head : Linear
        ``hidden_size`` -> `n_outputs`.
    fit_info_ : dict
        What the last `fit` did (epochs, best epoch, losses, time).

    Examples
    --------
    >>> model = Forecaster(window=24, horizon=12, cell="gru", log=True, seed=0)
    >>> model.fit(series, epochs=300)                      # doctest: +SKIP
    >>> model.predict(12)                                  # the next 12 values  # doctest: +SKIP
    """

    def __init__(
        self,
        window: int = 12,
        horizon: int = 1,
        strategy: str = "direct",
        hidden_size: int = 32,
        num_layers: int = 1,
        cell: str = "rnn",
        n_exog: int = 0,
        log: bool = False,
        nonlinearity: str = "tanh",
        dropout: float = 0.0,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        scaler: Optional[Dict[str, Any]] = None,
        history: Optional[List[Any]] = None,
    ) -> None:
        super().__init__(backend=backend)
        self.window = check_int("window", window, 1)
        self.horizon = check_int("horizon", horizon, 1)
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.strategy = strategy
        self.n_exog = check_int("n_exog", n_exog, 0)
        if not isinstance(log, (bool, np.bool_)):
            raise TypeError(f"log must be a bool, got {type(log).__name__}")
        self.log = bool(log)
        self.dtype = float_dtype(dtype)
        self.seed = seed
        s = _child_seeds(seed, 2)
        self.rnn = _recurrent(
            cell,
            nonlinearity,
            1 + self.n_exog,
            hidden_size,
            num_layers,
            dropout=dropout,
            dtype=self.dtype,
            seed=s[0],
            backend=backend,
        )
        self.head = Linear(
            self.rnn.hidden_size, self.n_outputs, dtype=self.dtype, seed=s[1], backend=backend
        )
        self.scaler: Optional[Dict[str, Any]] = None
        self.history_: Optional[np.ndarray] = None
        if (scaler is None) != (history is None):
            raise ValueError("scaler and history are set together (by fit), or neither")
        if scaler is not None:
            self._set_state(scaler, history)
        self.fit_info_: Dict[str, Any] = {}
        self._cache: Optional[Tuple[int, int]] = None

    # -- description ---------------------------------------------------------

    @property
    def n_outputs(self) -> int:
        """Values one forward pass forecasts: `horizon` (direct) or 1 (recursive)."""
        return self.horizon if self.strategy == "direct" else 1

    @property
    def fitted(self) -> bool:
        """True once `fit` has run (or a fitted model was loaded)."""
        return self.scaler is not None

    def config(self) -> Dict[str, Any]:
        r = self.rnn
        return dict(
            window=self.window,
            horizon=self.horizon,
            strategy=self.strategy,
            hidden_size=r.hidden_size,
            num_layers=r.num_layers,
            cell=r.spec.name,
            n_exog=self.n_exog,
            log=self.log,
            nonlinearity=r.options.get("nonlinearity", "tanh"),
            dropout=r.dropout,
            dtype=self.dtype.name,
            seed=self.seed,
            backend=self.backend,
            scaler=None if self.scaler is None else dict(self.scaler),
            history=None if self.history_ is None else self.history_.tolist(),
        )

    def _set_state(self, scaler: Dict[str, Any], history: Any) -> None:
        if not isinstance(scaler, dict):
            raise TypeError(f"scaler must be a dict, got {type(scaler).__name__}")
        try:
            mean, std = float(scaler["mean"]), float(scaler["std"])
            em = [float(v) for v in scaler.get("exog_mean", [])]
            es = [float(v) for v in scaler.get("exog_std", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"scaler must hold numbers 'mean', 'std', 'exog_mean', 'exog_std' ({exc})"
            ) from None
        if len(em) != self.n_exog or len(es) != self.n_exog:
            raise ValueError(f"scaler must hold {self.n_exog} exogenous means and deviations")
        if not (np.isfinite([mean, std, *em, *es]).all() and std > 0 and all(v > 0 for v in es)):
            raise ValueError("scaler must hold finite numbers and positive deviations")
        hist = np.asarray(history, dtype=np.float64)
        if hist.ndim == 1:
            hist = hist[:, None]
        if hist.shape != (self.window, 1 + self.n_exog) or not np.all(np.isfinite(hist)):
            raise ValueError(
                f"history must hold the last {self.window} rows of "
                f"{1 + self.n_exog} finite values, got shape {hist.shape}"
            )
        if self.log and np.any(hist[:, 0] <= 0):
            raise ValueError("history must be > 0 with log=True")
        self.scaler = dict(mean=mean, std=std, exog_mean=em, exog_std=es)
        self.history_ = hist

    # -- the network ---------------------------------------------------------

    def forward(self, x: Any) -> np.ndarray:
        """The network's outputs (scaled changes) for a batch of windows.

        Parameters
        ----------
        x : ndarray, shape (window, B, 1 + n_exog)
            Scaled windows, time-major (see the module docstring).

        Returns
        -------
        ndarray, shape (B, n_outputs)
        """
        x = input_array("x", x, self.dtype)
        if x.ndim != 3 or x.shape[2] != 1 + self.n_exog:
            raise ValueError(f"x must be time-major (T, B, {1 + self.n_exog}), got shape {x.shape}")
        out, _ = self.rnn(x)
        self._cache = (x.shape[0], x.shape[1])
        return self.head(out[-1])

    def backward(self, dy: Any) -> Tuple[np.ndarray, Any]:
        """Backpropagate the last forward; accumulates ``grads``.

        Returns
        -------
        dx : ndarray, shape (window, B, 1 + n_exog)
        dh0 : state
        """
        if self._cache is None:
            raise RuntimeError("backward() called before forward()")
        T, B = self._cache
        dfeat = self.head.backward(dy)
        dout = np.zeros((T, B, dfeat.shape[1]), dtype=self.dtype)
        dout[-1] = dfeat
        dx, dh0 = self.rnn.backward(dout)
        assert dx is not None  # the windows are feature vectors
        return dx, dh0

    # -- data ----------------------------------------------------------------

    def _rows(self, series: Any, name: str = "series") -> np.ndarray:
        """`series` as float64 rows (T, 1 + n_exog), checked."""
        arr = np.asarray(series, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != 1 + self.n_exog:
            want = "a 1-D series" if self.n_exog == 0 else f"an array (T, {1 + self.n_exog})"
            raise ValueError(
                f"{name} must be {want} (the forecast column, then n_exog="
                f"{self.n_exog} covariates), got shape {np.shape(series)}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must hold finite numbers only")
        if self.log and np.any(arr[:, 0] <= 0):
            raise ValueError(f"log=True needs every value of {name} > 0")
        return arr

    def _fit_scaler(self, rows: np.ndarray) -> Dict[str, Any]:
        v = np.log(rows[:, 0]) if self.log else rows[:, 0]
        sd = float(v.std())
        ex = rows[:, 1:]
        esd = ex.std(axis=0) if ex.shape[0] else np.ones(self.n_exog)
        return dict(
            mean=float(v.mean()),
            std=sd if sd > 0 else 1.0,
            exog_mean=[float(m) for m in ex.mean(axis=0)] if ex.shape[0] else [0.0] * self.n_exog,
            exog_std=[float(s) if s > 0 else 1.0 for s in esd],
        )

    def _scale(self, rows: np.ndarray, scaler: Dict[str, Any]) -> np.ndarray:
        """Raw rows (..., 1 + n_exog) -> scaled rows."""
        z = np.empty_like(rows)
        v = np.log(rows[..., 0]) if self.log else rows[..., 0]
        z[..., 0] = (v - scaler["mean"]) / scaler["std"]
        if self.n_exog:
            z[..., 1:] = self._scale_exog(rows[..., 1:], scaler)
        return z

    @staticmethod
    def _scale_exog(ex: np.ndarray, scaler: Dict[str, Any]) -> np.ndarray:
        return (ex - np.asarray(scaler["exog_mean"])) / np.asarray(scaler["exog_std"])

    def _unscale(self, z: np.ndarray) -> np.ndarray:
        assert self.scaler is not None
        v = z * self.scaler["std"] + self.scaler["mean"]
        return np.exp(v) if self.log else v

    def _windows(self, z: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """All training windows of scaled rows z (T, F): x (W, n, F), y (n, n_outputs)."""
        W, K = self.window, self.n_outputs
        ends = np.arange(W - 1, z.shape[0] - K)
        idx = ends[:, None] + np.arange(-W + 1, 1)  # (n, W)
        last = z[ends, 0]
        x = np.empty((ends.size, W, 1 + self.n_exog))
        x[:, :, 0] = z[idx, 0] - last[:, None]
        if self.n_exog:
            x[:, :, 1:] = z[idx + 1, 1:]  # covariates of the next step
        y = z[ends[:, None] + np.arange(1, K + 1), 0] - last[:, None]
        return x.transpose(1, 0, 2).astype(self.dtype), y.astype(self.dtype)

    def n_windows(self, n_rows: int) -> int:
        """Training windows a series of `n_rows` rows gives (``n_rows - window - n_outputs + 1``)."""
        return max(0, n_rows - self.window - self.n_outputs + 1)

    # -- training ------------------------------------------------------------

    def fit(
        self,
        series: Any,
        *,
        epochs: int = 300,
        seconds: Optional[float] = None,
        lr: float = 3e-3,
        batch_size: int = 32,
        validation: float = 0.15,
        patience: Optional[int] = None,
        refit: bool = True,
        seed: int = 0,
        on_epoch: Optional[Callable[[int, float, Optional[float]], None]] = None,
    ) -> "Forecaster":
        """Train on a series (raw values); returns self.

        1. The most recent `validation` share of the training windows is set
           aside; the scaler is fitted on the values before it.
        2. Adam (gradient norm clipped at 1) on shuffled mini-batches of the
           other windows, minimising the mean squared error of the scaled
           changes; after each epoch the validation loss is measured and
           the best epoch remembered. Training stops after `epochs`, after
           `patience` epochs without a better validation loss, or once
           `seconds` have passed.
        3. With `refit` (the default) the network is trained again from its
           initial weights on *all* the windows (the scaler refitted on all
           the values) for the best number of epochs, so the most recent
           values -- the most telling for a forecast -- are learnt too.
           Without it the best epoch's weights are kept.

        The same arguments give the same model (training is deterministic
        unless `seconds` cuts it short).

        Parameters
        ----------
        series : array_like, shape (T,) or (T, 1 + n_exog)
            Oldest first; column 0 is forecast, the others are covariates.
        epochs : int >= 1
        seconds : float or None
            Time budget of step 2 (the refit takes at most as long again).
        lr, batch_size : Adam's learning rate; windows per step.
        validation : float in [0, 0.5]
            Share of the windows (the most recent) for early stopping; 0
            trains on all of them for `epochs` epochs and keeps the last.
        patience : int or None
            Stop after this many epochs without improvement (None: run all).
        refit : bool
        seed : int
            Seeds the shuffling.
        on_epoch : callable(epoch, train_loss, val_loss or None) or None

        Raises
        ------
        ValueError
            A series too short for one training window (and one validation
            window), non-finite values, values <= 0 with ``log``.
        """
        rows = self._rows(series)
        epochs = check_int("epochs", epochs, 1)
        batch_size = check_int("batch_size", batch_size, 1)
        lr = _number("lr", lr, 0.0, low_open=True)
        validation = _number("validation", validation, 0.0, 0.5)
        if seconds is not None:
            seconds = _number("seconds", seconds, 0.0, low_open=True)
        if patience is not None:
            patience = check_int("patience", patience, 1)
        n_all = self.n_windows(rows.shape[0])
        n_val = int(round(validation * n_all)) if validation > 0 else 0
        if validation > 0:
            n_val = max(1, n_val)
        n_train = n_all - n_val
        need = self.window + self.n_outputs + (1 if validation > 0 else 0)
        if n_train < 1:
            raise ValueError(
                f"series too short: {rows.shape[0]} values, but a window of "
                f"{self.window} and {self.n_outputs} output step(s)"
                f"{' with a validation window' if validation > 0 else ''} need at "
                f"least {need}"
            )
        init = {k: v.copy() for k, v in self.params.items()}
        t0 = time.perf_counter()

        # 1-2: train with the validation tail aside.
        scaler = self._fit_scaler(rows[: self.window + n_train + self.n_outputs - 1])
        x, y = self._windows(self._scale(rows, scaler))
        best_epoch, best_val, done, train_loss, stopped = self._train(
            x[:, :n_train],
            y[:n_train],
            x[:, n_train:],
            y[n_train:],
            epochs,
            lr,
            batch_size,
            seed,
            seconds,
            patience,
            on_epoch,
            t0,
            keep_best=n_val > 0 and not refit,
        )
        info = dict(
            epochs=done,
            best_epoch=best_epoch,
            val_loss=best_val,
            train_loss=train_loss,
            n_windows=n_all,
            n_train=n_train,
            n_val=n_val,
            stopped_by_time=stopped,
            refit=False,
        )
        # 3: refit on everything for the best number of epochs.
        if n_val > 0 and refit:
            for k, v in init.items():
                self.params[k][...] = v
            self.parameters_changed()
            scaler = self._fit_scaler(rows)
            x, y = self._windows(self._scale(rows, scaler))
            _, _, _, train_loss, _ = self._train(
                x,
                y,
                x[:, :0],
                y[:0],
                best_epoch,
                lr,
                batch_size,
                seed,
                None,
                None,
                None,
                t0,
                keep_best=False,
            )
            info.update(refit=True, train_loss=train_loss)
        info["seconds"] = time.perf_counter() - t0
        self.scaler = scaler
        self.history_ = rows[-self.window :].copy()
        self.fit_info_ = info
        self.eval()
        return self

    def _train(
        self,
        x: np.ndarray,
        y: np.ndarray,
        xv: np.ndarray,
        yv: np.ndarray,
        epochs: int,
        lr: float,
        batch_size: int,
        seed: int,
        seconds: Optional[float],
        patience: Optional[int],
        on_epoch: Any,
        t0: float,
        keep_best: bool,
    ) -> Tuple[int, Optional[float], int, float, bool]:
        """Epochs of Adam; returns (best epoch, its validation loss, epochs run, last train loss,
        stopped by time). With `keep_best` the best epoch's weights are restored."""
        opt = Adam(self.params, lr=lr, clip_grad_norm=1.0)
        rng = np.random.default_rng(seed)
        n = y.shape[0]
        best_epoch, best_val, best_state = epochs, None, None
        train_loss = float("nan")
        done, stopped, since = 0, False, 0
        for epoch in range(1, epochs + 1):
            self.train()
            perm = rng.permutation(n)
            total = 0.0
            for i in range(0, n, batch_size):
                b = perm[i : i + batch_size]
                self.zero_grad()
                loss, dpred = mse(self.forward(x[:, b]), y[b])
                self.backward(dpred)
                opt.step(self.grads)
                total += float(loss) * b.size
            train_loss = total / n
            done = epoch
            val = None
            if yv.shape[0]:
                self.eval()
                val = float(np.mean((self.forward(xv).astype(np.float64) - yv) ** 2))
                if best_val is None or val < best_val:
                    best_epoch, best_val, since = epoch, val, 0
                    if keep_best:
                        best_state = {k: v.copy() for k, v in self.params.items()}
                else:
                    since += 1
            if on_epoch is not None:
                on_epoch(epoch, train_loss, val)
            if patience is not None and since >= patience:
                break
            if seconds is not None and time.perf_counter() - t0 > seconds and epoch < epochs:
                stopped = True
                break
        if yv.shape[0] == 0:
            best_epoch = done
        if best_state is not None:
            for k, v in best_state.items():
                self.params[k][...] = v
            self.parameters_changed()
        return best_epoch, best_val, done, train_loss, stopped

    # -- forecasting ---------------------------------------------------------

    def _forecast(
        self, hist: np.ndarray, future_exog: Optional[np.ndarray], steps: int
    ) -> np.ndarray:
        """Forecasts for B histories at once: hist (B, W, F) raw rows, future_exog (B, steps, E)
        raw covariates or None; returns (B, steps) raw values."""
        assert self.scaler is not None
        W, K, E = self.window, self.n_outputs, self.n_exog
        B = hist.shape[0]
        n_calls = steps if self.strategy == "recursive" else -(-steps // K)
        length = W + n_calls * K
        z = np.zeros((B, length))
        zh = self._scale(hist, self.scaler)
        z[:, :W] = zh[:, :, 0]
        if E:
            assert future_exog is not None  # _future_exog requires it when n_exog > 0
            ze = np.zeros((B, W + steps, E))
            ze[:, :W] = zh[:, :, 1:]
            ze[:, W:] = self._scale_exog(future_exog, self.scaler)
        was_training = self.training
        self.eval()
        try:
            for c in range(n_calls):
                e = W - 1 + c * K  # the window's last position
                x = np.empty((W, B, 1 + E))
                x[:, :, 0] = (z[:, e - W + 1 : e + 1] - z[:, e : e + 1]).T
                if E:
                    x[:, :, 1:] = ze[:, e - W + 2 : e + 2].transpose(1, 0, 2)
                dz = self._forecast_window(x.astype(self.dtype)).astype(np.float64)
                z[:, e + 1 : e + 1 + K] = z[:, e : e + 1] + dz
        finally:
            self.train(was_training)
        return self._unscale(z[:, W : W + steps])

    def _forecast_window(self, x: np.ndarray) -> np.ndarray:
        """`forward`'s outputs for windows x (window, B, 1 + n_exog), without a
        cache: the recurrent layer stepped through the window with its
        prepared weights (a forecast is a few short windows, where forward's
        per-call set-up would dominate), its state updated in place."""
        state: Any = None
        for x_t in x:
            state = self.rnn.step(x_t, state, out=state)
        return self.head((state[0] if isinstance(state, tuple) else state)[-1])

    def _future_exog(self, exog: Any, steps: int, batch: int = 1) -> Optional[np.ndarray]:
        if self.n_exog == 0:
            if exog is not None:
                raise ValueError("exog given, but the model has no exogenous columns (n_exog=0)")
            return None
        if exog is None:
            raise ValueError(
                f"exog is needed: the covariates of the {steps} forecast steps, "
                f"shape ({steps}, {self.n_exog})"
            )
        ex = np.asarray(exog, dtype=np.float64)
        if ex.ndim == 1 and self.n_exog == 1:
            ex = ex[:, None]
        if ex.ndim != 2 or ex.shape[1] != self.n_exog or ex.shape[0] < steps:
            raise ValueError(
                f"exog must have shape ({steps}, {self.n_exog}) (the covariates of "
                f"each forecast step), got {np.shape(exog)}"
            )
        if not np.all(np.isfinite(ex)):
            raise ValueError("exog must hold finite numbers only")
        return np.broadcast_to(ex[:steps], (batch, steps, self.n_exog))

    def predict(
        self, steps: Optional[int] = None, *, exog: Any = None, history: Any = None
    ) -> np.ndarray:
        """Forecast the `steps` values after the end of the series.

        Parameters
        ----------
        steps : int or None
            How many values (default `horizon`). Any number: the recursive
            strategy feeds each forecast back; the direct one chains blocks
            of `horizon` steps and returns the first `steps` values.
        exog : array_like, shape (steps, n_exog)
            The covariates of the forecast steps (models with n_exog > 0).
        history : array_like or None
            Forecast after this series instead (raw values, like `fit`'s,
            at least `window` rows; only its last `window` rows are read),
            e.g. with values that arrived after training. Default: the end
            of the series given to `fit`.

        Returns
        -------
        ndarray of float64, shape (steps,)
            In the units of the series.
        """
        if not self.fitted:
            raise RuntimeError("fit() the Forecaster before predict() (or crnn.load a fitted one)")
        steps = self.horizon if steps is None else check_int("steps", steps, 1)
        if history is None:
            assert self.history_ is not None  # set with the scaler, by fit or load
            hist = self.history_
        else:
            hist = self._rows(history, "history")
            if hist.shape[0] < self.window:
                raise ValueError(
                    f"history must hold at least window={self.window} rows, got {hist.shape[0]}"
                )
            hist = hist[-self.window :]
        return self._forecast(hist[None], self._future_exog(exog, steps), steps)[0]

    def backtest(
        self, series: Any, start: int, steps: Optional[int] = None
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Forecasts from every origin of a held-out tail (`crnn.baselines.rolling_origin`).

        From each origin ``o = start, ..., T - steps`` the model forecasts
        ``series[o:o + steps]`` from the `window` rows before `o` (and the
        covariates of the forecast steps). The model is not retrained:
        train it on ``series[:start]`` first, for an honest score.

        Returns
        -------
        origins : ndarray of int, shape (n,)
        predictions, truth : ndarray, shape (n, steps)
        """
        if not self.fitted:
            raise RuntimeError("fit() the Forecaster before backtest()")
        rows = self._rows(series)
        steps = self.horizon if steps is None else check_int("steps", steps, 1)
        start = check_int("start", start, self.window)
        T = rows.shape[0]
        if start > T - steps:
            raise ValueError(
                f"the held-out tail (from position {start} of {T}) must hold at "
                f"least steps={steps} values"
            )
        origins = np.arange(start, T - steps + 1)
        hist = np.stack([rows[o - self.window : o] for o in origins])
        fut = None
        if self.n_exog:
            fut = np.stack([rows[o : o + steps, 1:] for o in origins])
        preds = self._forecast(hist, fut, steps)
        truth = np.stack([rows[o : o + steps, 0] for o in origins])
        return origins, preds, truth


def baseline_backtests(
    series: Any, start: int, steps: int, season: Optional[int]
) -> Dict[str, np.ndarray]:
    """Rolling-origin forecasts of each baseline of `crnn.baselines`, the same origins as
    `Forecaster.backtest` (the seasonal naive only with a season)."""
    y = np.asarray(series, dtype=np.float64)
    y = y if y.ndim == 1 else y[:, 0]
    out = {}
    for name, f in baselines.BASELINES.items():
        if name == "seasonal naive" and not season:
            continue
        _, preds, _ = baselines.rolling_origin(lambda h, k: f(h, k, season), y, start, steps)
        out[name] = preds
    return out
