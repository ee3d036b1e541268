"""scikit-learn estimators built on crnn's models (``pip install "crnn[sklearn]"``).

=================  ==============================================================
`RNNClassifier`    a sequence -> a class: `crnn.models.SequenceClassifier`
                   (recurrent layer -> each row's last valid state -> Linear),
                   softmax cross-entropy; ``predict_proba``
`RNNRegressor`     a sequence -> one or more values: the same network, mean
                   squared error on standardised targets
`RNNForecaster`    windows of a series -> the values after each window:
                   `crnn.forecasting.Forecaster` (windows relative to their
                   last value, scaling inside); ``forecast(steps)``
`sliding_windows`  a series -> (windows, next values), the forecaster's data
=================  ==============================================================

They follow scikit-learn's conventions, so they sit in a ``Pipeline``,
``GridSearchCV`` or ``cross_val_score``: hyper-parameters only in
``__init__`` (stored as given, checked by ``fit``); ``fit``,
``partial_fit``, ``predict``, ``score``; fitted attributes end in ``_``
(``model_`` is the trained crnn model, ``n_features_in_``, ``classes_``,
``n_iter_``, ``loss_curve_``). Any cell of `crnn.cells.REGISTRY` without an
output size serves (``cell="rnn"``, ``"lstm"``, ``"gru"``, ...).

Input ``X`` (one row per sequence):

- an array ``(n_samples, T)``: sequences of T scalar steps;
  ``(n_samples, T, F)``: F features per step;
- variable lengths: pad each sequence at its end with NaN (a step whose
  features are all NaN is padding, and nothing but padding may follow it),
  or pass a list of sequences, each ``(T_i,)`` or ``(T_i, F)``; it is padded
  so. Scikit-learn's scalers leave NaN alone, so padded arrays go through
  a ``Pipeline`` unchanged;
- with ``embedding=E``: integer token ids in [0, vocab_size) instead of
  values, read by an `crnn.Embedding` of E features (a list of id
  sequences, or an ``(n_samples, T)`` array, NaN-padded if of floats).

``n_features_in_`` counts X's columns as scikit-learn does: the steps T of
the arrays ``fit`` saw. Arrays given to ``predict`` must have as many
(pad shorter sequences with NaN); lists of sequences may be of any length.

Training: Adam with the gradient norm clipped at ``clip``, shuffled
mini-batches, ``max_iter`` epochs; with ``early_stopping`` a share
``validation_fraction`` of the data (stratified for the classifier, the
last samples for the forecaster) is set aside, and training stops after
``n_iter_no_change`` epochs without a validation score better by ``tol``,
keeping the best epoch's weights. ``warm_start=True`` continues from the
previous fit; ``partial_fit`` runs one epoch. The same ``random_state``
gives the same model.
"""

from __future__ import annotations

import numbers
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("crnn.sklearn needs scikit-learn >= 1.6: pip install 'crnn[sklearn]'") from e

from . import cells
from .forecasting import Forecaster
from .losses import log_softmax, mse, softmax, softmax_cross_entropy
from .models import SequenceClassifier
from .optim import Adam

__all__ = ["RNNClassifier", "RNNRegressor", "RNNForecaster", "sliding_windows"]

_FLOAT_DTYPES = ("float32", "float64")
_NO_Y = object()  # _validate_X's "X alone" (y=None is a missing target)


def _stacked_cells() -> Tuple[str, ...]:
    return tuple(name for name, spec in cells.REGISTRY.items() if not spec.uses_output_size)


# --------------------------------------------------------------------------
# Hyper-parameter checks (run by fit, never by __init__)
# --------------------------------------------------------------------------


def _check_int(name: str, value: Any, low: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_float(
    name: str, value: Any, low: float, high: float = np.inf, allow_none: bool = False
) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in ({low}, {high}), got {value!r}")
    if not low < float(value) < high:
        raise ValueError(f"{name} must be a number in ({low}, {high}), got {value!r}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")


# --------------------------------------------------------------------------
# Sequences: X as (x time-major, lengths)
# --------------------------------------------------------------------------


def _is_sequence_list(X: Any) -> bool:
    """A list or tuple of sequences (each an array-like of steps), which may
    differ in length; an array, or a list of scalars, is not."""
    return (
        isinstance(X, (list, tuple))
        and len(X) > 0
        and all(np.ndim(s) >= 1 and not isinstance(s, (str, bytes)) for s in X)
    )


def _pad_ragged(X: Any, tokens: bool) -> np.ndarray:
    """A list of sequences as one float64 array padded with NaN at the ends."""
    seqs = []
    for i, s in enumerate(X):
        a = check_array(
            np.asarray(s, dtype=np.float64).reshape(len(s), -1) if np.ndim(s) == 1 else s,
            dtype=np.float64,
            ensure_min_samples=0,
            input_name=f"X[{i}]",
        )
        seqs.append(a)
    widths = {a.shape[1] for a in seqs if a.shape[0]} or {1}
    if len(widths) != 1:
        raise ValueError(
            f"every sequence of X must have the same number of features per step, got {sorted(widths)}"
        )
    F = widths.pop()
    if tokens and F != 1:
        raise ValueError(
            f"with embedding set, each sequence of X is 1-D (token ids), got {F} columns"
        )
    T = max(a.shape[0] for a in seqs)
    out = np.full((len(seqs), T, F), np.nan)
    for i, a in enumerate(seqs):
        out[i, : a.shape[0]] = a.reshape(a.shape[0], F)
    return out if not tokens else out[:, :, 0]


def _lengths_of(X: np.ndarray) -> np.ndarray:
    """Each row's valid steps: those before its first all-NaN step; ValueError
    when a NaN is not padding (inside a step, or before a valid step)."""
    steps = X if X.ndim == 3 else X[:, :, None]
    nan = np.isnan(steps)
    pad = nan.all(axis=2)
    if (nan.any(axis=2) & ~pad).any():
        i, t = np.argwhere(nan.any(axis=2) & ~pad)[0]
        raise ValueError(
            f"X[{i}] has a NaN among the features of step {t}: NaN marks padding only, "
            "a whole step of NaN at the end of a sequence"
        )
    lengths = np.where(pad.any(axis=1), pad.argmax(axis=1), steps.shape[1]).astype(np.int64)
    after = np.arange(steps.shape[1])[None, :] >= lengths[:, None]
    if (pad != after).any():
        i = int(np.argwhere((pad != after).any(axis=1))[0][0])
        raise ValueError(
            f"X[{i}] has a valid step after a padding (all-NaN) step: pad sequences at their end"
        )
    return lengths


class _RNNBase(BaseEstimator):
    """What the three estimators share: hyper-parameter checks, X to time-major
    sequences, the training loop (Adam, clipping, mini-batches, early
    stopping, warm start, partial_fit)."""

    _uses_tokens = False  # the forecaster reads values only
    _model_sizes: Tuple[int, int]  # (inputs, outputs) of the fitted network

    # -- hooks of the subclasses ----------------------------------------------

    def _make_model(self, n_inputs: int, n_outputs: int, seed: int) -> Any:
        raise NotImplementedError

    def _model_forward(self, x: np.ndarray, lengths: Optional[np.ndarray]) -> np.ndarray:
        return self.model_.forward(x, lengths=lengths)

    def _loss(self, out: np.ndarray, target: np.ndarray) -> Tuple[float, np.ndarray]:
        raise NotImplementedError

    def _validation_score(self, x: np.ndarray, lengths: Any, target: np.ndarray) -> float:
        raise NotImplementedError

    # -- checks -----------------------------------------------------------------

    def _check_params(self) -> None:
        if self.cell not in _stacked_cells():
            raise ValueError(f"cell must be one of {_stacked_cells()}, got {self.cell!r}")
        _check_int("hidden_size", self.hidden_size, 1)
        _check_int("num_layers", self.num_layers, 1)
        _check_int("max_iter", self.max_iter, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_float("learning_rate", self.learning_rate, 0.0)
        _check_float("clip", self.clip, 0.0, allow_none=True)
        _check_bool("early_stopping", self.early_stopping)
        _check_float("validation_fraction", self.validation_fraction, 0.0, 1.0)
        _check_int("n_iter_no_change", self.n_iter_no_change, 1)
        if isinstance(self.tol, bool) or not isinstance(self.tol, numbers.Real) or self.tol < 0:
            raise ValueError(f"tol must be a number >= 0, got {self.tol!r}")
        _check_bool("warm_start", self.warm_start)
        if self.dtype not in _FLOAT_DTYPES:
            raise ValueError(f"dtype must be one of {_FLOAT_DTYPES}, got {self.dtype!r}")
        if self._uses_tokens:
            _check_bool("bidirectional", self.bidirectional)
            _check_int("embedding", self.embedding, 1, allow_none=True)
            _check_int("vocab_size", self.vocab_size, 1, allow_none=True)

    # -- X ----------------------------------------------------------------------

    def _tokens(self) -> bool:
        return self._uses_tokens and self.embedding is not None

    def _validate_X(self, X: Any, y: Any = _NO_Y, reset: bool = True) -> Tuple[np.ndarray, Any]:
        """X as a float64 array (n, T) or (n, T, F), NaN-padded; y validated
        with it when given (a y of None is an error)."""
        tokens = self._tokens()
        if _is_sequence_list(X):
            Xa = _pad_ragged(X, tokens)
            if reset:
                self.n_features_in_ = Xa.shape[1]
                self.__dict__.pop("feature_names_in_", None)
            else:
                check_is_fitted(self)
            if y is None:
                raise ValueError(f"{type(self).__name__} requires y to be passed, but y is None")
            if y is not _NO_Y:
                y = self._validate_y_alone(y, Xa.shape[0])
            return Xa, y
        kwargs = dict(
            reset=reset, allow_nd=not tokens, ensure_all_finite="allow-nan", dtype=np.float64
        )
        if y is _NO_Y:
            Xa = validate_data(self, X, **kwargs)
        else:
            Xa, y = validate_data(self, X, y, **kwargs, **self._y_validation())
        if Xa.ndim > 3:
            raise ValueError(f"X must be (n_samples, T) or (n_samples, T, F), got shape {Xa.shape}")
        if np.isinf(Xa).any():
            raise ValueError("X must not contain infinity (NaN marks the padding at the end)")
        return Xa, y

    def _y_validation(self) -> Dict[str, Any]:
        return {}

    def _validate_y_alone(self, y: Any, n: int) -> Any:
        raise NotImplementedError

    def _sequences(self, Xa: np.ndarray, fitting: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Time-major model input and lengths (None: all rows full) of a checked X."""
        lengths = _lengths_of(Xa)
        full = bool(np.all(lengths == Xa.shape[1]))
        if self._tokens():
            ids = np.where(np.isnan(Xa), 0, Xa)
            if not np.all(ids == np.round(ids)) or ids.min(initial=0) < 0:
                raise ValueError("with embedding set, X must hold integer token ids >= 0")
            ids = ids.astype(np.int64)
            vocab = self.model_.input_size if hasattr(self, "model_") and not fitting else None
            if vocab is not None and ids.max(initial=0) >= vocab:
                raise ValueError(
                    f"X holds token id {int(ids.max())}, but the vocabulary has "
                    f"{vocab} ids (vocab_size_); set vocab_size to cover every id"
                )
            return np.ascontiguousarray(ids.T), None if full else lengths
        steps = Xa if Xa.ndim == 3 else Xa[:, :, None]
        steps = np.where(np.isnan(steps), 0.0, steps).astype(self.dtype)
        if not fitting and hasattr(self, "model_") and steps.shape[2] != self._n_step_features():
            raise ValueError(
                f"X has {steps.shape[2]} feature(s) per step, but the estimator was fitted "
                f"with {self._n_step_features()}"
            )
        return np.ascontiguousarray(steps.transpose(1, 0, 2)), None if full else lengths

    def _n_step_features(self) -> int:
        return self.model_.input_size

    def _n_inputs(self, x: np.ndarray) -> int:
        """The network's input size for training data x (time-major)."""
        if self._tokens():
            found = int(x.max(initial=0)) + 1
            if self.vocab_size is not None and found > self.vocab_size:
                raise ValueError(
                    f"X holds token id {found - 1}, outside vocab_size={self.vocab_size}"
                )
            return self.vocab_size if self.vocab_size is not None else found
        return x.shape[2]

    # -- training -----------------------------------------------------------------

    def _seeds(self) -> Tuple[int, np.random.Generator]:
        rs = check_random_state(self.random_state)
        return int(rs.randint(0, 2**31 - 1)), np.random.default_rng(rs.randint(0, 2**31 - 1))

    def _prepare_model(self, x: np.ndarray, n_outputs: int, seed: int, continue_: bool) -> None:
        n_inputs = self._n_inputs(x)
        if continue_ and hasattr(self, "model_"):
            if (n_inputs, n_outputs) != self._model_sizes:
                raise ValueError(
                    f"the data need a network with {n_inputs} inputs and {n_outputs} outputs, "
                    f"but the fitted one has {self._model_sizes} (refit without warm_start)"
                )
            return
        self.model_ = self._make_model(n_inputs, n_outputs, seed)
        self._model_sizes = (n_inputs, n_outputs)
        self._optimizer = Adam(self.model_.params, lr=self.learning_rate, clip_grad_norm=self.clip)
        self.n_iter_ = 0
        self.loss_curve_: List[float] = []

    def _epoch(self, x, lengths, target, rng: np.random.Generator) -> float:
        n = target.shape[0]
        perm = rng.permutation(n)
        total = 0.0
        model = self.model_
        model.train()
        self._optimizer.lr = self.learning_rate
        for i in range(0, n, self.batch_size):
            b = perm[i : i + self.batch_size]
            model.zero_grad()
            out = self._model_forward(x[:, b], None if lengths is None else lengths[b])
            loss, dout = self._loss(out, target[b])
            model.backward(dout)
            self._optimizer.step(model.grads)
            total += float(loss) * b.size
        model.eval()
        self.n_iter_ += 1
        mean = total / n
        self.loss_curve_.append(mean)
        return mean

    def _split(self, n: int, y_for_split: Any, rng: np.random.Generator) -> Tuple[np.ndarray, ...]:
        """Training and validation indices for early stopping (random, stratified
        when y_for_split is given)."""
        idx = np.arange(n)
        seed = int(rng.integers(0, 2**31 - 1))
        try:
            train, val = train_test_split(
                idx,
                test_size=self.validation_fraction,
                random_state=seed,
                stratify=y_for_split,
            )
        except ValueError:  # a class too small to stratify
            train, val = train_test_split(
                idx, test_size=self.validation_fraction, random_state=seed
            )
        return np.sort(train), np.sort(val)

    def _start(self, x: Any, n_outputs: int, incremental: bool) -> np.random.Generator:
        """The network (new, or the previous one to continue); the shuffling's
        random generator."""
        seed, rng = self._seeds()
        self._prepare_model(x, n_outputs, seed, incremental or self.warm_start)
        return rng

    def _fit_loop(self, x, lengths, target, split_y: Any, incremental: bool, rng):
        """Train ``model_`` on (x, lengths) -> target: one epoch (partial_fit), or
        max_iter epochs, or until early stopping."""
        if incremental:
            self._epoch(x, lengths, target, rng)
            return self
        n = target.shape[0]
        if not self.early_stopping:
            for _ in range(self.max_iter):
                self._epoch(x, lengths, target, rng)
            return self
        train, val = self._split(n, split_y, rng)
        if train.size == 0 or val.size == 0:
            raise ValueError(
                f"early_stopping with validation_fraction={self.validation_fraction} needs "
                f"more than {n} samples (training and validation sets must not be empty)"
            )
        xt, xv = x[:, train], x[:, val]
        lt, lv = (None, None) if lengths is None else (lengths[train], lengths[val])
        self.validation_scores_: List[float] = []
        best, best_params, since = -np.inf, None, 0
        for _ in range(self.max_iter):
            self._epoch(xt, lt, target[train], rng)
            score = self._validation_score(xv, lv, val)
            self.validation_scores_.append(score)
            if score > best + self.tol:
                best, since = score, 0
                best_params = {k: v.copy() for k, v in self.model_.params.items()}
            else:
                since += 1
                if since >= self.n_iter_no_change:
                    break
        self.best_validation_score_ = best
        if best_params is not None:
            for k, v in best_params.items():
                self.model_.params[k][...] = v
        return self

    def _outputs(self, X: Any) -> np.ndarray:
        """The network's outputs for X (in batches)."""
        check_is_fitted(self)
        Xa, _ = self._validate_X(X, reset=False)
        x, lengths = self._sequences(Xa, fitting=False)
        outs = []
        for i in range(0, Xa.shape[0], 1024):
            sl = slice(i, i + 1024)
            outs.append(self._model_forward(x[:, sl], None if lengths is None else lengths[sl]))
        return np.concatenate(outs, axis=0).astype(np.float64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # NaN marks the padding after a sequence's end, not missing values:
        # anywhere else it is an error.
        tags.input_tags.allow_nan = False
        tags.input_tags.three_d_array = True
        tags.target_tags.required = True
        return tags


_COMMON_DOC = """
    cell : str, default "gru"
        Any cell of `crnn.cells.REGISTRY` without an output size ("rnn",
        "lstm", "gru", ...).
    hidden_size : int, default 32
    num_layers : int, default 1
        Stacked recurrent layers.
    bidirectional : bool, default False
        The forward direction's last valid state and the reverse
        direction's state after reading the whole row, concatenated.
    embedding : int or None, default None
        None: X holds values. An int E: X holds integer token ids, each
        mapped to E learned features.
    vocab_size : int or None, default None
        With ``embedding``: the number of token ids; None takes the largest
        id that ``fit`` sees, plus one.
    max_iter : int, default 100
        Epochs (passes over the data).
    batch_size : int, default 32
    learning_rate : float, default 0.01
        Adam's step size.
    clip : float or None, default 1.0
        The largest gradient norm (clipped before each step); None: no
        clipping.
    random_state : int, RandomState instance or None
        Seeds the initial weights and the shuffling.
    early_stopping : bool, default False
    validation_fraction : float, default 0.1
    n_iter_no_change : int, default 10
    tol : float, default 1e-4
    warm_start : bool, default False
        Continue from the previous fit's weights (and optimizer state).
    dtype : {"float32", "float64"}, default "float64"
        Of the network's computation.
"""


# --------------------------------------------------------------------------
# RNNClassifier and RNNRegressor
# --------------------------------------------------------------------------


class _SequenceEstimator(_RNNBase):
    """The classifier's and the regressor's hyper-parameters and network."""

    _uses_tokens = True

    def __init__(
        self,
        cell: str = "gru",
        hidden_size: int = 32,
        num_layers: int = 1,
        bidirectional: bool = False,
        embedding: Optional[int] = None,
        vocab_size: Optional[int] = None,
        max_iter: int = 100,
        batch_size: int = 32,
        learning_rate: float = 0.01,
        clip: Optional[float] = 1.0,
        random_state: Any = None,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        warm_start: bool = False,
        dtype: str = "float64",
    ) -> None:
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.embedding = embedding
        self.vocab_size = vocab_size
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.clip = clip
        self.random_state = random_state
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.dtype = dtype

    def _make_model(self, n_inputs: int, n_outputs: int, seed: int) -> SequenceClassifier:
        return SequenceClassifier(
            n_inputs,
            self.hidden_size,
            n_outputs,
            num_layers=self.num_layers,
            bidirectional=bool(self.bidirectional),
            dtype=self.dtype,
            seed=seed,
            cell=self.cell,
            embedding_dim=self.embedding,
        )


class RNNClassifier(ClassifierMixin, _SequenceEstimator):
    __doc__ = (
        """A sequence -> one of several classes (`crnn.models.SequenceClassifier`).

    A recurrent layer reads each sequence, its state after the sequence's
    last valid step goes through a Linear layer to class scores, trained
    with softmax cross-entropy. See `crnn.sklearn` for the form of X.

    Parameters
    ----------"""
        + _COMMON_DOC
        + """
    Attributes
    ----------
    classes_ : ndarray
        The class labels, sorted.
    model_ : crnn.models.SequenceClassifier
        The trained network (``crnn.save`` stores it).
    n_features_in_ : int
        Columns (steps) of the arrays fit saw.
    n_iter_ : int
        Epochs run, over every call of fit since the network was made.
    loss_curve_ : list of float
        The training loss of each epoch.
    validation_scores_, best_validation_score_
        Accuracy on the validation set (with early_stopping).

    Examples
    --------
    >>> from crnn.sklearn import RNNClassifier
    >>> clf = RNNClassifier(cell="lstm", hidden_size=16, random_state=0)
    >>> clf.fit(X_train, y_train).score(X_test, y_test)   # doctest: +SKIP
    """
    )

    def _loss(self, out, target):
        return softmax_cross_entropy(out, target)

    def _validation_score(self, x, lengths, val) -> float:
        logits = self._model_forward(x, lengths)
        return float(np.mean(np.argmax(logits, axis=1) == self._y_index[val]))

    def _validate_y_alone(self, y: Any, n: int) -> np.ndarray:
        y = column_or_1d(y, warn=True)
        if y.shape[0] != n:
            raise ValueError(f"X has {n} sequences but y has {y.shape[0]} labels")
        return y

    def _y_validation(self) -> Dict[str, Any]:
        return {}

    def _labels(self, y: Any, classes: Any, first: bool) -> np.ndarray:
        """y as class indices; sets ``classes_`` on the first fit."""
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if first:
            self.classes_ = np.unique(y) if classes is None else np.unique(np.asarray(classes))
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(
                f"y holds labels {unknown.tolist()[:5]} that are not among classes_ "
                f"{self.classes_.tolist()[:10]}"
            )
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _fit(self, X, y, classes, incremental: bool) -> "RNNClassifier":
        self._check_params()
        first = not (incremental or self.warm_start) or not hasattr(self, "model_")
        if incremental and first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        Xa, y = self._validate_X(X, y, reset=first)
        y_index = self._labels(y, classes, first)
        x, lengths = self._sequences(Xa, fitting=True)
        rng = self._start(x, len(self.classes_), incremental)
        self._y_index = y_index
        try:
            split_y = y_index if self.early_stopping else None
            return self._fit_loop(x, lengths, y_index, split_y, incremental, rng)
        finally:
            del self._y_index

    def fit(self, X: Any, y: Any) -> "RNNClassifier":
        """Train on sequences X and their labels y; returns self.

        Parameters
        ----------
        X : array (n_samples, T) or (n_samples, T, F), or list of sequences
            See `crnn.sklearn`.
        y : array_like, shape (n_samples,)
        """
        return self._fit(X, y, None, incremental=False)

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> "RNNClassifier":
        """One epoch over (X, y); ``classes`` (every label) on the first call."""
        return self._fit(X, y, classes, incremental=True)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), in the order of ``classes_``."""
        return softmax(self._outputs(X), axis=1)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log class probabilities, shape (n_samples, n_classes)."""
        return log_softmax(self._outputs(X), axis=1)

    def predict(self, X: Any) -> np.ndarray:
        """The most likely class of each sequence, shape (n_samples,)."""
        scores = self._outputs(X)  # (checks that the estimator is fitted)
        return self.classes_[np.argmax(scores, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags


# --------------------------------------------------------------------------
# RNNRegressor
# --------------------------------------------------------------------------


class RNNRegressor(RegressorMixin, _SequenceEstimator):
    __doc__ = (
        """A sequence -> one or more real values (the network of `RNNClassifier`).

    Trained on the mean squared error of the targets standardised with the
    training targets' mean and standard deviation (predictions come back
    in the targets' units). Scale the inputs in a ``Pipeline`` (e.g.
    ``StandardScaler``, which leaves the NaN padding alone). See
    `crnn.sklearn` for the form of X.

    Parameters
    ----------"""
        + _COMMON_DOC
        + """
    Attributes
    ----------
    model_ : crnn.models.SequenceClassifier
        The trained network (its outputs are the standardised targets).
    n_features_in_, n_iter_, loss_curve_
        As in `RNNClassifier`.
    validation_scores_, best_validation_score_
        R^2 on the validation set (with early_stopping).
    """
    )

    def _loss(self, out, target):
        return mse(out, target)

    def _validation_score(self, x, lengths, val) -> float:
        pred = self._model_forward(x, lengths).astype(np.float64)
        return float(r2_score(self._target[val], pred))

    def _validate_y_alone(self, y: Any, n: int) -> np.ndarray:
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        if y.shape[0] != n:
            raise ValueError(f"X has {n} sequences but y has {y.shape[0]} targets")
        return y

    def _y_validation(self) -> Dict[str, Any]:
        return dict(y_numeric=True, multi_output=True)

    def _fit(self, X, y, incremental: bool) -> "RNNRegressor":
        self._check_params()
        first = not (incremental or self.warm_start) or not hasattr(self, "model_")
        Xa, y = self._validate_X(X, y, reset=first)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim > 2:
            raise ValueError(f"y must be (n_samples,) or (n_samples, n_targets), got {y.shape}")
        y2 = y.reshape(len(y), -1)
        if first:
            self._y_1d = y.ndim == 1
            self._y_mean = y2.mean(axis=0)
            std = y2.std(axis=0)
            self._y_std = np.where(std > 0, std, 1.0)
        x, lengths = self._sequences(Xa, fitting=True)
        target = ((y2 - self._y_mean) / self._y_std).astype(self.dtype)
        rng = self._start(x, target.shape[1], incremental)
        self._target = target
        try:
            return self._fit_loop(x, lengths, target, None, incremental, rng)
        finally:
            del self._target

    def fit(self, X: Any, y: Any) -> "RNNRegressor":
        """Train on sequences X and targets y, (n_samples,) or (n_samples, n_targets)."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X: Any, y: Any) -> "RNNRegressor":
        """One epoch over (X, y) (the target scaling is that of the first call)."""
        return self._fit(X, y, incremental=True)

    def predict(self, X: Any) -> np.ndarray:
        """Predictions, shape (n_samples,) or (n_samples, n_targets) as y was."""
        pred = self._outputs(X) * self._y_std + self._y_mean
        return pred[:, 0] if self._y_1d else pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y (n_samples, n_targets)
        return tags


# --------------------------------------------------------------------------
# RNNForecaster and sliding_windows
# --------------------------------------------------------------------------


def sliding_windows(series: Any, window: int, horizon: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """Every window of a series and the values that follow it.

    Parameters
    ----------
    series : array_like, shape (n_times,)
        Oldest first.
    window : int >= 1
        Values per window.
    horizon : int >= 1
        Values to forecast after each window.

    Returns
    -------
    X : ndarray, shape (n, window)
        ``series[i : i + window]`` for i = 0, ..., n - 1, with
        ``n = n_times - window - horizon + 1``.
    y : ndarray, shape (n,) for horizon 1, else (n, horizon)
        ``series[i + window : i + window + horizon]``.
    """
    _check_int("window", window, 1)
    _check_int("horizon", horizon, 1)
    s = column_or_1d(check_array(series, ensure_2d=False, dtype=np.float64, input_name="series"))
    n = s.shape[0] - window - horizon + 1
    if n < 1:
        raise ValueError(
            f"series has {s.shape[0]} values; a window of {window} and a horizon of {horizon} "
            f"need at least {window + horizon}"
        )
    idx = np.arange(n)[:, None]
    X = s[idx + np.arange(window)]
    y = s[idx + window + np.arange(horizon)]
    return X, (y[:, 0] if horizon == 1 else y)


class RNNForecaster(RegressorMixin, _RNNBase):
    """Windows of a series -> the values after them (`crnn.forecasting.Forecaster`).

    ``fit(X, y)`` takes windows of past values, X (n_samples, window), and
    what follows each, y (n_samples,) or (n_samples, horizon): what
    `sliding_windows` makes of a series. As `crnn.forecasting.Forecaster`
    does, each window is expressed relative to its own last value and
    standardised by the training values (after a log with ``log=True``), so
    the network forecasts changes and an untrained one gives the naive
    forecast. ``predict(X)`` gives the values after each window, in the
    series' units; ``forecast(steps)`` continues the series (from the end
    of the last training sample, or from ``history``) as far as asked.

    Parameters
    ----------
    cell, hidden_size, num_layers, max_iter, batch_size, learning_rate, clip,
    random_state, early_stopping, validation_fraction, n_iter_no_change,
    tol, warm_start, dtype
        As in `RNNClassifier`; early stopping holds out the *last*
        samples (the most recent windows, when they are in time order).
    log : bool, default False
        Model log(values) (all values > 0): for a swing that grows with the
        level.

    Attributes
    ----------
    model_ : crnn.forecasting.Forecaster
        The trained model, with its scaling; its history is the end of the
        last training sample, so ``model_.predict(steps)`` and
        ``crnn.save(model_)`` work as for a Forecaster of its own.
    n_features_in_ : int
        The window length.
    n_iter_, loss_curve_, validation_scores_, best_validation_score_
        As in `RNNRegressor`.
    """

    def __init__(
        self,
        cell: str = "gru",
        hidden_size: int = 32,
        num_layers: int = 1,
        log: bool = False,
        max_iter: int = 100,
        batch_size: int = 32,
        learning_rate: float = 0.01,
        clip: Optional[float] = 1.0,
        random_state: Any = None,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        warm_start: bool = False,
        dtype: str = "float64",
    ) -> None:
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.log = log
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.clip = clip
        self.random_state = random_state
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.dtype = dtype

    def _check_params(self) -> None:
        super()._check_params()
        _check_bool("log", self.log)

    def _make_model(self, n_inputs: int, n_outputs: int, seed: int) -> Forecaster:
        return Forecaster(
            window=self.n_features_in_,
            horizon=n_outputs,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            cell=self.cell,
            log=bool(self.log),
            dtype=self.dtype,
            seed=seed,
        )

    def _model_forward(self, x, lengths):
        return self.model_.forward(x)

    def _n_inputs(self, x: Any) -> int:
        return 1  # the value; no covariates

    def _loss(self, out, target):
        return mse(out, target)

    def _validation_score(self, x, lengths, val) -> float:
        pred = self.model_.forward(x).astype(np.float64)
        return float(r2_score(self._target[val], pred))

    def _split(self, n: int, y_for_split: Any, rng: np.random.Generator):
        n_val = int(np.ceil(self.validation_fraction * n))
        return np.arange(n - n_val), np.arange(n - n_val, n)

    def _validate_y_alone(self, y: Any, n: int) -> np.ndarray:  # lists are not windows
        raise TypeError("X must be an array of windows (n_samples, window)")

    def _y_validation(self) -> Dict[str, Any]:
        return dict(y_numeric=True, multi_output=True)

    def _windows(self, X: Any, y: Any = _NO_Y, reset: bool = True):
        if _is_sequence_list(X):  # windows as lists: all of one length
            try:
                X = np.asarray(X, dtype=np.float64)
            except ValueError:
                raise ValueError(
                    "X must be windows of one length: an array (n_samples, window)"
                ) from None
        Xa, y = self._validate_X(X, y, reset=reset)
        if Xa.ndim == 3:
            if Xa.shape[2] != 1:
                raise ValueError(f"X must be windows (n_samples, window), got shape {Xa.shape}")
            Xa = Xa[:, :, 0]
        if np.isnan(Xa).any():
            raise ValueError("X must not contain NaN: every window is complete")
        if self.log and np.any(Xa <= 0):
            raise ValueError("log=True needs every value of X > 0")
        return Xa, y

    def _fit(self, X, y, incremental: bool) -> "RNNForecaster":
        self._check_params()
        first = not (incremental or self.warm_start) or not hasattr(self, "model_")
        Xa, y = self._windows(X, y, reset=first)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim > 2:
            raise ValueError(f"y must be (n_samples,) or (n_samples, horizon), got {y.shape}")
        y2 = y.reshape(len(y), -1)
        if self.log and np.any(y2 <= 0):
            raise ValueError("log=True needs every value of y > 0")
        if first:
            self._y_1d = y.ndim == 1
        rng = self._start(None, y2.shape[1], incremental)
        model = self.model_
        if first:
            values = np.concatenate([Xa.ravel(), y2.ravel()])[:, None]
            model.scaler = model._fit_scaler(values)
        z = model._scale(Xa[:, :, None], model.scaler)[:, :, 0]
        last = z[:, -1:]
        x = np.ascontiguousarray((z - last).T[:, :, None]).astype(self.dtype)
        target = (model._scale(y2[:, :, None], model.scaler)[:, :, 0] - last).astype(self.dtype)
        model.history_ = np.concatenate([Xa[-1], y2[-1]])[-Xa.shape[1] :, None]
        self._target = target
        try:
            return self._fit_loop(x, None, target, None, incremental, rng)
        finally:
            del self._target

    def _prepare_model(self, x, n_outputs, seed, continue_):
        if continue_ and hasattr(self, "model_") and self.model_.horizon != n_outputs:
            raise ValueError(
                f"y has {n_outputs} values per sample, but the fitted model forecasts "
                f"{self.model_.horizon} (refit without warm_start)"
            )
        super()._prepare_model(x, n_outputs, seed, continue_)

    def fit(self, X: Any, y: Any) -> "RNNForecaster":
        """Train on windows X (n_samples, window) and the values y after them."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X: Any, y: Any) -> "RNNForecaster":
        """One epoch over (X, y) (the scaling is that of the first call)."""
        return self._fit(X, y, incremental=True)

    def predict(self, X: Any) -> np.ndarray:
        """The values after each window, (n_samples,) or (n_samples, horizon) as y was."""
        check_is_fitted(self)
        Xa, _ = self._windows(X, reset=False)
        pred = self.model_._forecast(Xa[:, :, None], None, self.model_.horizon)
        return pred[:, 0] if self._y_1d else pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y (n_samples, horizon)
        return tags

    def forecast(self, steps: int, history: Any = None) -> np.ndarray:
        """The next `steps` values after `history` (default: the end of the last
        training sample), blocks of the horizon chained; shape (steps,)."""
        check_is_fitted(self)
        return self.model_.predict(steps, history=history)
