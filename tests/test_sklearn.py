"""crnn.sklearn: scikit-learn's own estimator checks, and crnn's estimators
in Pipeline, GridSearchCV and cross_val_score on the built-in data.

Skipped without scikit-learn. Of scikit-learn's checks, every one applies
and passes; scikit-learn itself skips check_array_api_input (unless
SCIPY_ARRAY_API is set; the estimators compute with NumPy) and, without
pandas, the checks that pass DataFrames.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="crnn.sklearn needs scikit-learn")

from sklearn.base import clone  # noqa: E402
from sklearn.compose import TransformedTargetRegressor  # noqa: E402
from sklearn.metrics import mean_absolute_percentage_error  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    GridSearchCV,
    GroupKFold,
    TimeSeriesSplit,
    cross_val_score,
)
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer, StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from crnn import cells, datasets  # noqa: E402
from crnn.data import WordVocab  # noqa: E402
from crnn.forecasting import Forecaster  # noqa: E402
from crnn.models import SequenceClassifier  # noqa: E402
from crnn.sklearn import RNNClassifier, RNNForecaster, RNNRegressor, sliding_windows  # noqa: E402

SMALL = dict(hidden_size=16, max_iter=50, random_state=0)


@parametrize_with_checks(
    [RNNClassifier(**SMALL), RNNRegressor(**SMALL), RNNForecaster(**SMALL)],
    expected_failed_checks=lambda est: {},
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------
# Sequences: shapes, padding, lengths
# --------------------------------------------------------------------------


def _ragged(n, F=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (lambda L: (L,)) if F is None else (lambda L: (L, F))
    return [rng.standard_normal(shape(int(rng.integers(1, 7)))) for _ in range(n)]


def _padded(seqs):
    T = max(len(s) for s in seqs)
    F = () if seqs[0].ndim == 1 else seqs[0].shape[1:]
    out = np.full((len(seqs), T) + F, np.nan)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


@pytest.mark.parametrize("F", [None, 3])
def test_variable_lengths_list_and_nan_padding_agree_with_the_model(F):
    seqs = _ragged(30, F)
    y = np.array([int(s.sum() > 0) for s in seqs])
    clf = RNNClassifier(hidden_size=8, max_iter=5, random_state=1).fit(seqs, y)
    assert isinstance(clf.model_, SequenceClassifier)
    proba_list = clf.predict_proba(seqs)
    np.testing.assert_array_equal(clf.predict_proba(_padded(seqs)), proba_list)
    # Each sequence alone, straight through the crnn model (time-major, no padding).
    for i in (0, 7, 29):
        x = seqs[i].reshape(len(seqs[i]), 1, -1)
        logits = clf.model_.forward(x)
        p = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        np.testing.assert_allclose(proba_list[i], p[0], rtol=1e-12)
    # A list of sequences longer than any seen in fit is fine.
    longer = [np.concatenate([s, s]) for s in seqs[:3]]
    assert clf.predict(longer).shape == (3,)


def test_nan_other_than_end_padding_is_refused():
    X = np.random.default_rng(0).standard_normal((4, 5, 2))
    y = [0, 1, 0, 1]
    bad_inside = X.copy()
    bad_inside[1, 2, 0] = np.nan  # one feature of a step
    with pytest.raises(ValueError, match=r"X\[1\].*NaN.*step 2"):
        RNNClassifier(max_iter=1).fit(bad_inside, y)
    bad_order = X.copy()
    bad_order[2, 1] = np.nan  # a padding step before a valid one
    with pytest.raises(ValueError, match=r"X\[2\].*after a padding"):
        RNNClassifier(max_iter=1).fit(bad_order, y)
    with pytest.raises(ValueError, match="infinity"):
        RNNClassifier(max_iter=1).fit(np.where(X > 1, np.inf, X), y)


def test_arrays_to_predict_keep_the_fitted_width():
    X = np.random.default_rng(0).standard_normal((20, 6))
    reg = RNNRegressor(hidden_size=4, max_iter=2, random_state=0).fit(X, X[:, -1])
    assert reg.n_features_in_ == 6
    with pytest.raises(ValueError, match="6 features"):
        reg.predict(X[:, :4])
    padded = np.full((20, 6), np.nan)
    padded[:, :4] = X[:, :4]  # shorter sequences, padded to the width
    assert reg.predict(padded).shape == (20,)
    with pytest.raises(ValueError, match="feature"):
        RNNRegressor(max_iter=1).fit(X[:, :, None], X[:, 0]).predict(np.stack([X, X], axis=2))


@pytest.mark.parametrize(
    "param, value, error",
    [
        ("cell", "jordan", ValueError),  # has an output size
        ("cell", "nope", ValueError),
        ("hidden_size", 0, ValueError),
        ("hidden_size", 2.5, TypeError),
        ("learning_rate", -1.0, ValueError),
        ("validation_fraction", 1.0, ValueError),
        ("embedding", 0, ValueError),
        ("warm_start", "yes", TypeError),
        ("dtype", "float16", ValueError),
    ],
)
def test_bad_hyper_parameters_are_named_at_fit(param, value, error):
    clf = RNNClassifier(**{param: value})  # __init__ stores, never checks
    assert clf.get_params()[param] == value
    with pytest.raises(error, match=param):
        clf.fit(np.zeros((4, 3)), [0, 1, 0, 1])


@pytest.mark.parametrize("cell", [n for n, s in cells.REGISTRY.items() if not s.uses_output_size])
def test_every_stacked_cell_of_the_registry(cell):
    X = np.random.default_rng(0).standard_normal((12, 4, 2))
    clf = RNNClassifier(cell=cell, hidden_size=4, max_iter=2, random_state=0).fit(X, [0, 1] * 6)
    assert clf.model_.rnn.spec.name == cell
    assert (
        RNNForecaster(cell=cell, max_iter=1).fit(X[:, :, 0], X[:, 0, 0]).model_.rnn.spec.name
        == cell
    )


# --------------------------------------------------------------------------
# Training controls
# --------------------------------------------------------------------------


def test_same_random_state_same_model_and_clone_is_unfitted():
    X = np.random.default_rng(0).standard_normal((40, 5))
    y = (X.sum(axis=1) > 0).astype(int)
    a = RNNClassifier(hidden_size=8, max_iter=3, random_state=4).fit(X, y)
    b = RNNClassifier(hidden_size=8, max_iter=3, random_state=4).fit(X, y)
    for k in a.model_.params:
        np.testing.assert_array_equal(a.model_.params[k], b.model_.params[k])
    c = clone(a)
    assert c.get_params() == a.get_params() and not hasattr(c, "model_")


def test_warm_start_continues_and_partial_fit_needs_classes_first():
    X = np.random.default_rng(0).standard_normal((40, 5))
    y = (X[:, 0] > 0).astype(int)
    est = RNNClassifier(hidden_size=8, max_iter=3, warm_start=True, random_state=0).fit(X, y)
    model = est.model_
    est.fit(X, y)
    assert est.model_ is model and est.n_iter_ == 6 and len(est.loss_curve_) == 6
    cold = RNNClassifier(hidden_size=8, max_iter=3, random_state=0).fit(X, y)
    first_model = cold.model_
    cold.fit(X, y)
    assert cold.model_ is not first_model and cold.n_iter_ == 3

    with pytest.raises(ValueError, match="classes"):
        RNNClassifier().partial_fit(X, y)
    inc = RNNClassifier(hidden_size=8, random_state=0)
    inc.partial_fit(X[:20], y[:20], classes=[0, 1])
    inc.partial_fit(X[20:], y[20:])
    assert inc.n_iter_ == 2 and list(inc.classes_) == [0, 1]
    with pytest.raises(ValueError, match="not among classes_"):
        inc.partial_fit(X[:4], [0, 1, 2, 1])


def test_early_stopping_keeps_the_best_epoch():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 6))
    y = X[:, -1] + 0.5 * rng.standard_normal(120)
    est = RNNRegressor(
        hidden_size=16, max_iter=200, early_stopping=True, n_iter_no_change=3, random_state=0
    ).fit(X, y)
    scores = est.validation_scores_
    assert len(scores) == est.n_iter_ < 200
    # The best epoch, then three without a score better by tol.
    best = est.best_validation_score_
    assert best == scores[-4] and all(s <= best + est.tol for s in scores[-3:])


def test_string_labels_probabilities_and_multi_output():
    X = np.random.default_rng(0).standard_normal((30, 4, 2))
    y = np.where(X[:, -1, 0] > 0, "up", "down")
    clf = RNNClassifier(hidden_size=8, max_iter=20, random_state=0).fit(X, y)
    assert list(clf.classes_) == ["down", "up"]
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    Y = np.stack([X[:, -1, 0], X[:, 0, 1] * 10 + 3], axis=1)
    reg = RNNRegressor(hidden_size=8, max_iter=2, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (30, 2)


def test_token_ids_with_an_embedding():
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 9, size=int(rng.integers(1, 6))) for _ in range(40)]
    y = [int(3 in d) for d in docs]
    clf = RNNClassifier(embedding=4, hidden_size=8, max_iter=30, random_state=0).fit(docs, y)
    assert clf.model_.embed is not None and clf.model_.input_size == max(map(max, docs)) + 1
    assert clf.score(docs, y) > 0.8
    with pytest.raises(ValueError, match="token id 20"):
        clf.predict([[1, 20]])
    with pytest.raises(ValueError, match="vocab_size"):
        RNNClassifier(embedding=4, vocab_size=5, max_iter=1).fit(docs, y)
    with pytest.raises(ValueError, match="integer token ids"):
        clf.predict([[0.5, 1.0]])


def test_fitted_estimators_pickle_and_predict_the_same():
    X, y = sliding_windows(np.sin(np.arange(80) / 4.0) + 2.0, 8, 2)
    for est in (
        RNNForecaster(hidden_size=8, max_iter=3, random_state=0),
        RNNRegressor(hidden_size=8, max_iter=3, random_state=0),
    ):
        est.fit(X, y)
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), est.predict(X))


# --------------------------------------------------------------------------
# The forecaster
# --------------------------------------------------------------------------


def test_sliding_windows():
    X, y = sliding_windows(np.arange(10.0), 3, 2)
    np.testing.assert_array_equal(X[0], [0, 1, 2])
    np.testing.assert_array_equal(y[-1], [8, 9])
    assert X.shape == (6, 3) and y.shape == (6, 2)
    assert sliding_windows(np.arange(5.0), 4)[1].shape == (1,)
    with pytest.raises(ValueError, match="at least 5"):
        sliding_windows(np.arange(4.0), 4)
    with pytest.raises(ValueError, match="window"):
        sliding_windows(np.arange(4.0), 0)


def test_forecaster_model_is_a_forecaster_that_continues_the_series():
    series = 50 + 10 * np.sin(np.arange(90) / 3.0) + np.arange(90) * 0.2
    X, y = sliding_windows(series, 9, 3)
    est = RNNForecaster(hidden_size=8, max_iter=5, random_state=0).fit(X, y)
    assert isinstance(est.model_, Forecaster) and est.model_.horizon == 3
    # The windows' forecasts are the Forecaster's, from each window as history.
    pred = est.predict(X[-4:])
    for i in range(4):
        np.testing.assert_allclose(est.model_.predict(3, history=X[-4 + i]), pred[i], rtol=1e-12)
    # forecast() continues after the last training sample: X[-1] then y[-1].
    np.testing.assert_allclose(
        est.forecast(5), est.model_.predict(5, history=series[-9:]), rtol=1e-12
    )


# --------------------------------------------------------------------------
# In scikit-learn's tools, on the built-in data
# --------------------------------------------------------------------------


def test_pipeline_with_preprocessing_in_grid_search_on_the_airline_series():
    series = datasets.load_series("airline")
    X, y = sliding_windows(series, 12)
    X_train, y_train, X_test, y_test = X[:-12], y[:-12], X[-12:], y[-12:]
    pipe = Pipeline(
        [
            ("log", FunctionTransformer(np.log, np.exp)),
            ("scale", StandardScaler()),
            ("rnn", RNNRegressor(max_iter=50, random_state=0)),
        ]
    )
    model = TransformedTargetRegressor(pipe, func=np.log, inverse_func=np.exp)
    grid = {"regressor__rnn__hidden_size": [8, 16], "regressor__rnn__cell": ["rnn", "gru"]}
    search = GridSearchCV(
        model, grid, cv=TimeSeriesSplit(3), scoring="neg_mean_absolute_percentage_error"
    ).fit(X_train, y_train)
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 4 and np.all(np.isfinite(scores))
    assert search.best_score_ == scores.max()
    # The refitted pipeline is the steps applied one after the other.
    fitted = search.best_estimator_.regressor_
    rnn = fitted.named_steps["rnn"]
    assert (rnn.hidden_size, rnn.cell) == (
        search.best_params_["regressor__rnn__hidden_size"],
        search.best_params_["regressor__rnn__cell"],
    )
    manual = np.exp(rnn.predict(fitted.named_steps["scale"].transform(np.log(X_test))))
    np.testing.assert_allclose(search.predict(X_test), manual, rtol=1e-12)
    # And it forecasts the held-out year (the naive forecast is off by ~9%).
    assert mean_absolute_percentage_error(y_test, search.predict(X_test)) < 0.2


def test_forecaster_in_grid_search_beats_the_naive_forecasts():
    series = datasets.load_series("airline")
    X, y = sliding_windows(series, 12)
    X_train, y_train, X_test, y_test = X[:-12], y[:-12], X[-12:], y[-12:]
    search = GridSearchCV(
        RNNForecaster(log=True, max_iter=50, random_state=0),
        {"hidden_size": [8, 16]},
        cv=TimeSeriesSplit(3),
        scoring="neg_mean_absolute_percentage_error",
    ).fit(X_train, y_train)
    error = mean_absolute_percentage_error(y_test, search.predict(X_test))
    naive = mean_absolute_percentage_error(y_test, X_test[:, -1])  # last value
    seasonal = mean_absolute_percentage_error(y_test, X_test[:, 0])  # a year before
    assert error < min(naive, seasonal)


def test_classifier_on_the_sentiment_data_in_cross_val_score():
    data = datasets.load_sentiment()
    vocab = WordVocab.from_texts(data.texts)
    X = [vocab.encode(text) for text in data.texts]  # lists of word ids, any length
    clf = RNNClassifier(
        embedding=16, vocab_size=len(vocab), batch_size=16, max_iter=20, random_state=0
    )
    scores = cross_val_score(clf, X, data.labels, groups=data.groups, cv=GroupKFold(5))
    assert scores.shape == (5,)
    assert scores.mean() > 0.7  # half the sentences are positive
