"""`crnn.models.Forecaster` and the forecasting baselines of `crnn.baselines`.

The learning checks train small models with a fixed seed and no time limit,
so they are deterministic (a busy machine only makes them slower).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import crnn
from crnn import baselines, datasets
from crnn.forecasting import Forecaster as ForecasterFromModule, baseline_backtests
from crnn.models import Forecaster


def seasonal(n=240, seed=1, period=12, noise=0.3):
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return 10 + 3 * np.sin(2 * np.pi * t / period) + 0.02 * t + noise * rng.standard_normal(n)


def clean(t, period=12):
    return 10 + 3 * np.sin(2 * np.pi * t / period) + 0.02 * t


# --------------------------------------------------------------------------
# Baselines against hand-computed values
# --------------------------------------------------------------------------


def test_baselines_hand_computed():
    y = [3.0, 5.0, 4.0, 8.0, 6.0, 7.0]
    np.testing.assert_array_equal(baselines.last_value(y, 3), [7.0, 7.0, 7.0])
    # Season 4: the last four values (4, 8, 6, 7), repeated.
    np.testing.assert_array_equal(baselines.seasonal_naive(y, 6, 4), [4, 8, 6, 7, 4, 8])
    np.testing.assert_array_equal(baselines.seasonal_naive(y, 2, 1), [7, 7])
    # Drift: 7 + h * (7 - 3) / 5.
    np.testing.assert_allclose(baselines.drift(y, 3), [7.8, 8.6, 9.4])
    np.testing.assert_array_equal(baselines.drift([2.0], 2), [2.0, 2.0])
    with pytest.raises(ValueError, match="at least one season"):
        baselines.seasonal_naive(y, 1, 7)
    with pytest.raises(ValueError, match="steps"):
        baselines.last_value(y, 0)
    with pytest.raises(ValueError, match="finite"):
        baselines.drift([1.0, np.nan], 1)


def test_errors_hand_computed():
    pred = np.array([[1.0, 2.0], [3.0, 5.0]])
    truth = np.array([[2.0, 2.0], [3.0, 1.0]])
    assert baselines.mae(pred, truth) == pytest.approx((1 + 0 + 0 + 4) / 4)
    train = np.array([1.0, 3.0, 2.0, 6.0])  # one-step changes 2, 1, 4: mean 7/3
    assert baselines.naive_scale(train) == pytest.approx(7 / 3)
    assert baselines.naive_scale(train, 2) == pytest.approx((1 + 3) / 2)
    assert baselines.mase(pred, truth, train) == pytest.approx(1.25 / (7 / 3))
    assert np.isnan(baselines.mase(pred, truth, [5.0, 5.0, 5.0]))


def test_rolling_origin_sees_only_the_past():
    y = np.arange(10.0) ** 2
    seen = []

    def f(history, steps):
        seen.append(history.size)
        return np.full(steps, history[-1])

    origins, preds, truth = baselines.rolling_origin(f, y, 7, 2)
    np.testing.assert_array_equal(origins, [7, 8])
    assert seen == [7, 8]
    np.testing.assert_array_equal(preds, [[36, 36], [49, 49]])
    np.testing.assert_array_equal(truth, [[49, 64], [64, 81]])
    with pytest.raises(ValueError, match="held-out tail"):
        baselines.rolling_origin(f, y, 9, 2)


def test_baseline_backtests_match_the_baselines():
    y = seasonal(60)
    out = baseline_backtests(y, 48, 3, 12)
    assert sorted(out) == ["drift", "last value", "seasonal naive"]
    for name, preds in out.items():
        assert preds.shape == (10, 3)
        for i, o in enumerate(range(48, 58)):
            np.testing.assert_array_equal(preds[i], baselines.BASELINES[name](y[:o], 3, 12))
    assert "seasonal naive" not in baseline_backtests(y, 48, 3, None)


# --------------------------------------------------------------------------
# The season
# --------------------------------------------------------------------------


@pytest.mark.parametrize("period", [4, 7, 12, 24])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detect_season_on_known_periods(period, seed):
    n = max(120, 6 * period)
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    y = 5 * np.sin(2 * np.pi * t / period + rng.uniform(0, 6)) + 0.05 * t + rng.standard_normal(n)
    season, r = baselines.detect_season(y)
    assert season == period, (season, r)
    assert r > 0.25


def test_detect_season_on_a_non_sinusoidal_pattern_and_on_airline():
    week = np.array([5, 5, 5, 5, 8, 12, 3.0])
    y = np.tile(week, 20) + 0.5 * np.random.default_rng(1).standard_normal(140)
    assert baselines.detect_season(y)[0] == 7
    assert baselines.detect_season(datasets.load_series())[0] == 12
    assert baselines.detect_season(np.log(datasets.load_series()))[0] == 12


def test_detect_season_finds_none_in_noise_and_random_walks():
    found = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        found += baselines.detect_season(rng.standard_normal(200))[0] is not None
        found += baselines.detect_season(np.cumsum(rng.standard_normal(200)))[0] is not None
    assert found <= 2  # about 1% false seasons (see the docstring)
    assert baselines.detect_season(np.ones(50)) == (None, 0.0)
    assert baselines.detect_season(np.arange(5.0)) == (None, 0.0)


# --------------------------------------------------------------------------
# The Forecaster
# --------------------------------------------------------------------------


def test_forecaster_is_a_model():
    assert Forecaster is ForecasterFromModule and "Forecaster" in crnn.models.__all__
    m = Forecaster(window=6, horizon=3, cell="gru", seed=0)
    assert m.n_outputs == 3 and not m.fitted
    assert Forecaster(horizon=3, strategy="recursive").n_outputs == 1
    assert set(k.split(".")[0] for k in m.params) == {"rnn", "head"}
    assert m.rnn.spec.name == "gru"
    with pytest.raises(ValueError, match="strategy"):
        Forecaster(strategy="both")
    with pytest.raises(RuntimeError, match="fit"):
        m.predict(3)


@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("n_exog,num_layers", [(0, 1), (2, 2)])
def test_forecaster_gradients_by_central_differences(backend, cell, n_exog, num_layers):
    """The network behind `fit`, every cell, both engines, float64."""
    from crnn.losses import mse

    m = Forecaster(
        window=5,
        horizon=3,
        hidden_size=4,
        num_layers=num_layers,
        cell=cell,
        n_exog=n_exog,
        dtype=np.float64,
        seed=3,
        backend=backend,
    )
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3, 1 + n_exog))
    y = rng.standard_normal((3, 3))

    def f():
        return mse(m(x), y)[0]

    m.zero_grad()
    _, dy = mse(m(x), y)
    dx, _ = m.backward(dy)
    params, grads = dict(m.params, x=x), dict(m.grads, x=dx)
    rep = crnn.gradcheck(f, params, grads, atol=1e-9, max_checks_per_param=20, rng=0)
    assert rep.ok, str(rep)


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_forecaster_beats_the_baselines_on_a_seasonal_series(strategy):
    y = seasonal(240)
    split, steps = 192, 12
    m = Forecaster(window=12, horizon=12, strategy=strategy, seed=0)
    m.fit(y[:split], epochs=300)
    origins, preds, truth = m.backtest(y, split, steps)
    assert origins.tolist() == list(range(192, 229)) and preds.shape == (37, 12)
    base = baseline_backtests(y, split, steps, 12)
    err = baselines.mae(preds, truth)
    assert err < 0.85 * baselines.mae(base["seasonal naive"], truth), err  # 0.71-0.72 here
    assert err < 0.2 * baselines.mae(base["last value"], truth), err
    # Deterministic: the same arguments give the same model.
    again = Forecaster(window=12, horizon=12, strategy=strategy, seed=0).fit(y[:split], epochs=300)
    np.testing.assert_array_equal(again.backtest(y, split, steps)[1], preds)


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_predict_continues_the_pattern(strategy):
    y = seasonal(240)
    m = Forecaster(window=12, horizon=12, strategy=strategy, seed=0).fit(y, epochs=150)
    future = m.predict(24)
    assert future.shape == (24,) and future.dtype == np.float64
    expected = clean(np.arange(240, 264))
    assert np.mean(np.abs(future - expected)) < 0.35
    assert np.corrcoef(future, expected)[0, 1] > 0.97
    # Direct: blocks of 12 are chained, and a shorter forecast is their start.
    np.testing.assert_allclose(m.predict(5), future[:5], rtol=1e-12)
    assert m.predict().shape == (12,)
    # From another history: the same model continues that one.
    shifted = m.predict(6, history=y[:234])
    np.testing.assert_allclose(shifted, m.backtest(y, 234, 6)[1][0], rtol=1e-12)


def test_log_scaling_and_the_airline_series():
    y = datasets.load_series()
    m = Forecaster(window=12, horizon=12, log=True, seed=0).fit(y[:115], epochs=200)
    _, preds, truth = m.backtest(y, 115, 12)
    base = baseline_backtests(y, 115, 12, 12)
    best = min(baselines.mae(b, truth) for b in base.values())
    assert baselines.mae(preds, truth) < 0.6 * best
    with pytest.raises(ValueError, match="> 0"):
        Forecaster(log=True).fit(np.r_[1.0, -1.0, np.ones(40)])


def test_exogenous_columns():
    """A series driven by a known covariate: the model reads the covariate of the step it forecasts."""
    rng = np.random.default_rng(0)
    n = 300
    x = rng.standard_normal(n)
    y = 5 + 2 * x + 0.1 * rng.standard_normal(n)
    data = np.column_stack([y, x])
    m = Forecaster(window=8, horizon=1, strategy="recursive", n_exog=1, seed=0)
    m.fit(data[:240], epochs=100)
    origins, preds, truth = m.backtest(data, 240, 1)
    err = baselines.mae(preds, truth)
    assert err < 0.25 * baselines.mae(baseline_backtests(y, 240, 1, None)["last value"], truth)
    # predict needs the covariates of the steps it forecasts.
    with pytest.raises(ValueError, match="exog is needed"):
        m.predict(3)
    with pytest.raises(ValueError, match=r"exog must have shape \(3, 1\)"):
        m.predict(3, exog=np.zeros((2, 1)))
    f = m.predict(3, exog=[1.0, -1.0, 0.0])  # 5 + 2x would be 7, 3, 5
    assert f[0] > f[2] + 1 > f[1] + 2, f
    with pytest.raises(ValueError, match="n_exog=1"):
        m.fit(y)
    with pytest.raises(ValueError, match="no exogenous"):
        Forecaster(window=4).fit(seasonal(40), epochs=1).predict(2, exog=[[1.0]])


def test_save_and_load_a_fitted_forecaster(tmp_path):
    rng = np.random.default_rng(3)
    data = np.column_stack([seasonal(80), rng.standard_normal((80, 2))])
    m = Forecaster(window=6, horizon=4, cell="lstm", n_exog=2, log=True, seed=5)
    m.fit(data, epochs=3)
    path = tmp_path / "f.npz"
    crnn.save(m, path)
    with np.load(path, allow_pickle=False) as z:  # no pickle in the file
        cfg = json.loads(str(z["__config__"]))["config"]
        assert all(z[k].dtype.kind == "f" for k in z.files if k != "__config__")
    assert cfg["scaler"]["exog_mean"] and len(cfg["history"]) == 6
    loaded = crnn.load(path)
    assert isinstance(loaded, Forecaster) and loaded.fitted
    assert loaded.config() == m.config()
    ex = rng.standard_normal((9, 2))
    np.testing.assert_array_equal(loaded.predict(9, exog=ex), m.predict(9, exog=ex))
    # An unfitted model round-trips too (and still needs fitting).
    buf = io.BytesIO()
    crnn.save(Forecaster(window=3), buf)
    buf.seek(0)
    assert not crnn.load(buf).fitted


def test_fit_options_and_errors():
    y = seasonal(60)
    m = Forecaster(window=6, horizon=2, seed=0)
    m.fit(y, epochs=20, validation=0.0)
    assert m.fit_info_["n_val"] == 0 and m.fit_info_["best_epoch"] == 20
    assert not m.fit_info_["refit"]
    m.fit(y, epochs=30, patience=2, refit=False)
    assert m.fit_info_["epochs"] <= 30 and m.fit_info_["n_val"] == 8
    m.fit(y, epochs=50, seconds=1e-6)
    assert m.fit_info_["epochs"] == 1 and m.fit_info_["stopped_by_time"]
    with pytest.raises(ValueError, match="too short"):
        Forecaster(window=10, horizon=5).fit(np.arange(15.0))
    with pytest.raises(ValueError, match="finite"):
        m.fit(np.r_[y, np.inf])
    with pytest.raises(ValueError, match="1-D series"):
        m.fit(np.ones((30, 2)))
    with pytest.raises(ValueError, match="history must hold at least window=6"):
        m.predict(2, history=y[:4])
    with pytest.raises(ValueError, match="validation"):
        m.fit(y, validation=0.9)
