"""``crnn forecast`` and ``crnn classify``, and the data sets they ship with.

Commands run in a subprocess (``python -m crnn``) with tiny settings; the
learning checks call the apps' functions in-process with a fixed seed and no
time limit, so they are deterministic and a busy machine only makes them
slower.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from crnn import datasets
from crnn.apps import classify as classify_app, forecast as forecast_app
from crnn.apps.common import CLIError


def run(*args, timeout=120):
    env = dict(os.environ, CRNN_PROGRESS="plain")
    return subprocess.run(
        [sys.executable, "-m", "crnn", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def ok(proc):
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc


def user_error(proc, pattern):
    assert proc.returncode == 2, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    assert re.search(pattern, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def one_json(stdout):
    """stdout must be exactly one JSON object (nothing else)."""
    obj = json.loads(stdout)
    assert isinstance(obj, dict)
    return obj


def seasonal(n=240, seed=1, period=12):
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return 10 + 3 * np.sin(2 * np.pi * t / period) + 0.02 * t + 0.3 * rng.standard_normal(n)


def write_csv(path, header, rows):
    path.write_text("\n".join([header] + rows) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------
# Built-in data
# --------------------------------------------------------------------------


def test_airline_series_values():
    y = datasets.load_series("airline")
    assert y.dtype == np.float64 and y.shape == (144,)
    # Box & Jenkins series G / R's AirPassengers: known totals and landmarks.
    assert y.sum() == 40363
    assert (y[0], y[11], y[12], y[-1]) == (112, 118, 115, 432)
    assert y.max() == 622 and np.argmax(y) == 138  # July 1960
    assert y.min() == 104
    yearly = y.reshape(12, 12).sum(axis=1)
    assert yearly[0] == 1520 and yearly[-1] == 5714
    assert datasets.available_series() == ["airline"]
    with pytest.raises(KeyError, match="airline"):
        datasets.load_series("nope")


def test_sentiment_set():
    texts, labels, groups = datasets.load_sentiment()
    assert len(texts) == labels.size == groups.size == 300
    assert labels.sum() == 150
    assert len(set(texts)) == 300 and all(t.strip() == t and t for t in texts)
    # Pairs: the same subject, opposite labels.
    assert np.all(np.bincount(groups) == 2)
    for g in range(150):
        assert sorted(labels[groups == g].tolist()) == [0, 1]


def test_data_files_are_package_data():
    from importlib import resources

    root = resources.files("crnn.datasets")
    for name in ("airline_passengers.csv", "sentiment.tsv"):
        assert root.joinpath(name).is_file()


# --------------------------------------------------------------------------
# crnn forecast
# --------------------------------------------------------------------------


def _rolling(y, start, steps, f):
    origins = range(start, len(y) - steps + 1)
    pred = np.array([f(y[:o], steps) for o in origins])
    truth = np.array([y[o : o + steps] for o in origins])
    return np.mean(np.abs(pred - truth))


def test_forecast_builtin_json():
    proc = ok(run("forecast", "--json", "--epochs", 3))
    out = one_json(proc.stdout)
    for key in (
        "mae",
        "mase",
        "rnn_mae",
        "naive_mae",
        "baselines",
        "best_baseline",
        "beats_best_baseline",
        "window",
        "horizon",
        "n_train",
        "n_test",
        "series",
        "season",
        "strategy",
        "cell",
    ):
        assert key in out
    assert out["series"] == "airline" and out["n_values"] == 144
    # The season is found (12), so the window and horizon are a season; 29 held out.
    assert (out["season"], out["season_detected"]) == (12, True)
    assert (out["window"], out["horizon"], out["steps"], out["n_test"]) == (12, 12, 12, 29)
    assert out["n_origins"] == 18 and out["n_train"] == 115
    assert out["rnn_mae"] == out["mae"] > 0 and len(out["forecast"]) == 12
    assert "future" not in out
    # The baselines' errors, computed here by hand the same way (rolling origin).
    y = datasets.load_series()
    last = _rolling(y, 115, 12, lambda h, k: np.full(k, h[-1]))
    snaive = _rolling(y, 115, 12, lambda h, k: h[len(h) - 12 + np.arange(k) % 12])
    drift = _rolling(
        y, 115, 12, lambda h, k: h[-1] + (h[-1] - h[0]) / (len(h) - 1) * np.arange(1, k + 1)
    )
    b = out["baselines"]
    assert b["last value"]["mae"] == pytest.approx(last) == out["naive_mae"]
    assert b["seasonal naive"]["mae"] == pytest.approx(snaive)
    assert b["drift"]["mae"] == pytest.approx(drift)
    assert out["best_baseline"] == "seasonal naive"
    scale = np.mean(np.abs(y[12:115] - y[:103]))
    assert b["seasonal naive"]["mase"] == pytest.approx(snaive / scale)
    assert out["beats_best_baseline"] == (out["mae"] < snaive)


def test_forecast_ahead_prints_the_future():
    proc = ok(run("forecast", "--ahead", 12, "--epochs", 5))
    text = proc.stdout
    for word in (
        "seasonal naive",
        "drift",
        "last value",
        "MASE",
        "best baseline",
        "hint: the seasonal swing grows with the level here; --log",
    ):
        assert word in text
    rows = re.findall(r"^\s+(19\d\d-\d\d)\s+([\d.]+)\s+\(([\d.]+)\)$", text, re.M)
    assert [r[0] for r in rows] == [f"1961-{m:02d}" for m in range(1, 13)]
    out = one_json(ok(run("forecast", "--ahead", 3, "--epochs", 5, "--json")).stdout)
    assert out["ahead"] == 3 and len(out["future"]) == 3
    assert out["future_labels"] == ["1961-01", "1961-02", "1961-03"]
    # The seasonal-naive forecast of the future: the last season's values.
    assert out["baseline_future"]["seasonal naive"] == datasets.load_series()[-12:-9].tolist()


def test_forecast_says_when_the_rnn_does_not_beat_the_best_baseline():
    # One epoch at a tiny learning rate: the network is barely trained.
    proc = ok(run("forecast", "--epochs", 1, "--lr", 1e-6))
    assert "the RNN does NOT beat the best baseline (seasonal naive)" in proc.stdout
    assert "Use the seasonal naive forecast" in proc.stdout


def test_forecast_options():
    out = one_json(
        ok(
            run(
                "forecast",
                "--json",
                "--epochs",
                2,
                "--season",
                "none",
                "--strategy",
                "recursive",
                "--cell",
                "gru",
                "--window",
                6,
                "--threads",
                1,
            )
        ).stdout
    )
    assert out["season"] is None and "seasonal naive" not in out["baselines"]
    assert (out["strategy"], out["cell"], out["window"], out["horizon"]) == (
        "recursive",
        "gru",
        6,
        1,
    )
    out = one_json(
        ok(
            run(
                "forecast",
                "--json",
                "--epochs",
                2,
                "--season",
                6,
                "--horizon",
                3,
                "--ahead",
                5,
                "--log",
            )
        ).stdout
    )
    assert (out["season"], out["season_detected"], out["horizon"], out["steps"]) == (6, False, 3, 5)
    assert out["log"] is True and len(out["future"]) == 5


def test_time_limits_stop_training():
    out = one_json(ok(run("forecast", "--json", "--epochs", 50, "--seconds", 1e-6)).stdout)
    assert out["epochs"] == 1 and out["stopped_early"] is True
    proc = ok(run("forecast", "--epochs", 50, "--seconds", 1e-6))
    assert "stopped by --seconds" in proc.stdout
    out = one_json(
        ok(run("classify", "--json", "--epochs", 50, "--restarts", 2, "--seconds", 1e-6)).stdout
    )
    assert out["epochs"] == 1 and out["stopped_early"] is True


def test_forecast_csv(tmp_path):
    y = seasonal(60)
    f = write_csv(tmp_path / "s.csv", "day,value,note", [f"{i},{v:.4f},x" for i, v in enumerate(y)])
    out = one_json(
        ok(
            run(
                "forecast",
                "--csv",
                f,
                "--column",
                "value",
                "--window",
                6,
                "--horizon",
                1,
                "--epochs",
                3,
                "--json",
            )
        ).stdout
    )
    assert out["series"] == "s.csv:value" and out["n_values"] == 60
    assert out["n_test"] == 12 and out["n_train"] == 48 and out["n_origins"] == 12
    naive = np.mean(np.abs(y[48:] - y[47:-1]))
    assert out["naive_mae"] == pytest.approx(naive, abs=1e-3)


def test_forecast_csv_default_column_is_the_last(tmp_path):
    f = write_csv(
        tmp_path / "s.csv", "month,passengers", [f"{i},{v}" for i, v in enumerate(seasonal(40))]
    )
    out = one_json(
        ok(
            run("forecast", "--csv", f, "--window", 4, "--season", "none", "--epochs", 2, "--json")
        ).stdout
    )
    assert out["series"] == "s.csv:passengers"


@pytest.mark.parametrize(
    "setup, args, pattern",
    [
        ("none", ["--csv", "{d}/missing.csv"], r"missing\.csv: no such file"),
        ("good", ["--csv", "{f}", "--column", "nope"], r"no column 'nope'.*'day', 'value', 'note'"),
        ("good", ["--csv", "{f}", "--column", "note"], r"line 2: column 'note' is not numeric"),
        (
            "bad_row",
            ["--csv", "{f}", "--column", "value"],
            r"line 5: column 'value' is not numeric \(found 'oops'\)",
        ),
        (
            "good",
            ["--csv", "{f}", "--column", "value", "--window", 40],
            r"series too short: 30 values.*window of 40",
        ),
        (
            "good",
            ["--csv", "{f}", "--column", "value", "--window", 3, "--horizon", 1, "--season", 25],
            r"too short for a season of 25",
        ),
        ("empty", ["--csv", "{f}"], r"empty"),
        ("binary", ["--csv", "{f}"], r"cannot decode"),
        ("header_only", ["--csv", "{f}"], r"no data rows"),
        ("none", ["--column", "value"], r"--column needs --csv"),
        ("none", ["--window", 200], r"airline: series too short"),
        ("none", ["--ahead", 130], r"airline: series too short.*--ahead"),
        ("none", ["--out", "{d}/no/m.npz"], r"cannot write --out .*no such directory"),
        ("none", ["--out", "{d}"], r"cannot write --out .*is a directory"),
        ("negative", ["--csv", "{f}", "--log"], r"--log needs all values > 0"),
    ],
)
def test_forecast_user_errors_exit_2(tmp_path, setup, args, pattern):
    f = tmp_path / "data.csv"
    if setup == "good":
        write_csv(f, "day,value,note", [f"{i},{i % 7},x" for i in range(30)])
    elif setup == "bad_row":
        write_csv(f, "day,value", ["0,1", "1,2", "2,3", "3,oops", "4,5"])
    elif setup == "negative":
        write_csv(f, "day,value", [f"{i},{i - 5}" for i in range(40)])
    elif setup == "empty":
        f.write_bytes(b"")
    elif setup == "binary":
        f.write_bytes(b"\xff\xfe\x00\x81binary")
    elif setup == "header_only":
        f.write_text("day,value\n")
    args = [str(a).format(d=tmp_path, f=f) for a in args]
    user_error(run("forecast", *args, "--epochs", 1), pattern)


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--window", 0], r"--window"),
        (["--test-fraction", 1.5], r"--test-fraction"),
        (["--ahead", 0], r"--ahead: .*>= 1"),
        (["--season", 1], r"--season: .*>= 2"),
        (["--season", "weekly"], r"--season: .*'weekly'"),
        (["--strategy", "both"], r"--strategy: invalid choice"),
        (["--cell", "transformer"], r"--cell"),
        (["--threads", 0], r"--threads"),
    ],
)
def test_forecast_bad_option_values_exit_2(args, pattern):
    user_error(run("forecast", *args), pattern)


def test_forecast_out_saves_a_model_that_forecasts(tmp_path):
    import crnn

    path = tmp_path / "m.npz"
    out = one_json(ok(run("forecast", "--ahead", 6, "--epochs", 4, "--json", "--out", path)).stdout)
    assert out["model_file"] == str(path)
    model = crnn.load(path)
    assert type(model).__name__ == "Forecaster" and model.horizon == 12
    np.testing.assert_allclose(model.predict(6), out["future"], rtol=1e-12)


def test_forecast_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "f.png"
    out = one_json(ok(run("forecast", "--epochs", 2, "--ahead", 6, "--json", "--plot", png)).stdout)
    assert out["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    user_error(
        run("forecast", "--epochs", 1, "--plot", tmp_path / "no" / "f.png"), r"no such directory"
    )


def test_forecast_plot_without_matplotlib(monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    with pytest.raises(CLIError, match=r"--plot needs matplotlib.*crnn\[plot\]"):
        forecast_app._pyplot()


def test_load_csv_column_formats(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("1.5\n2.5\n3.5\n")  # no header: columns are numbered
    v, name = forecast_app.load_csv_column(str(f))
    assert name == "1" and v.tolist() == [1.5, 2.5, 3.5]
    f.write_bytes("\ufeffwhen;x\n1;10\n2;20\n\n3;30\n".encode("utf-8"))  # BOM, ';', blank line
    v, name = forecast_app.load_csv_column(str(f), "x")
    assert name == "x" and v.tolist() == [10, 20, 30]
    f.write_text("x\n1\nnan\n")
    with pytest.raises(CLIError, match="line 3.*finite"):
        forecast_app.load_csv_column(str(f))
    f.write_text("a,b\n1,2\n3\n")
    with pytest.raises(CLIError, match="line 3: no value in column 'b'"):
        forecast_app.load_csv_column(str(f))


def test_plan():
    y = datasets.load_series()
    p = forecast_app.plan(y)
    assert (p.season, p.window, p.horizon, p.steps, p.n_test, p.split) == (12, 12, 12, 12, 29, 115)
    p = forecast_app.plan(y, ahead=36)
    assert (p.horizon, p.steps, p.n_test) == (12, 36, 36)
    p = forecast_app.plan(y, window=24, horizon=3, season=None)
    assert (p.season, p.window, p.horizon, p.steps) == (None, 24, 3, 3)
    p = forecast_app.plan(np.arange(50.0), season="auto")
    assert (p.season, p.window, p.horizon) == (None, 12, 1)
    p = forecast_app.plan(seasonal(200, period=24), test_fraction=0.1)
    assert (p.season, p.window, p.horizon) == (24, 24, 24)
    with pytest.raises(forecast_app.SeriesTooShort, match="at least 25"):
        forecast_app.plan(np.arange(36.0), window=12, horizon=12, season=None)


def test_swing_grows_with_level():
    y = datasets.load_series()
    assert forecast_app.swing_grows_with_level(y, 12)  # the airline series
    assert not forecast_app.swing_grows_with_level(np.log(y), 12)
    assert not forecast_app.swing_grows_with_level(seasonal(240), 12)  # a constant swing
    assert not forecast_app.swing_grows_with_level(y, None)
    assert not forecast_app.swing_grows_with_level(y - 200, 12)  # values <= 0
    assert "hint" not in ok(run("forecast", "--epochs", 1, "--log")).stdout


def test_forecast_function_returns_the_model_and_the_forecast():
    y = seasonal(240)
    r = forecast_app.forecast(y, ahead=12, epochs=150, seconds=None, seed=0)
    assert r.plan.season == 12 and r.plan.split == 192
    assert r.best_baseline == "seasonal naive" and r.beats_best_baseline
    assert r.mae < 0.85 * r.baseline_mae["seasonal naive"], (r.mae, r.baseline_mae)
    assert r.future.shape == (12,) and r.model is not r.eval_model
    np.testing.assert_array_equal(r.model.predict(12), r.future)
    assert (
        np.mean(
            np.abs(
                r.future
                - (
                    10
                    + 3 * np.sin(2 * np.pi * np.arange(240, 252) / 12)
                    + 0.02 * np.arange(240, 252)
                )
            )
        )
        < 0.4
    )
    # Deterministic: the same seed gives the same numbers.
    again = forecast_app.forecast(y, ahead=12, epochs=150, seconds=None, seed=0)
    assert again.mae == r.mae
    np.testing.assert_array_equal(again.future, r.future)


def test_forecast_beats_every_baseline_on_airline():
    r = forecast_app.forecast(datasets.load_series(), epochs=300, seconds=None, seed=0, log=True)
    assert r.best_baseline == "seasonal naive"
    assert r.mae < 0.6 * r.baseline_mae["seasonal naive"], (r.mae, r.baseline_mae)


def test_forecast_rejects_bad_series():
    with pytest.raises(ValueError, match="finite"):
        forecast_app.forecast([1.0, np.nan] * 20, window=2)
    with pytest.raises(ValueError, match="> 0"):
        forecast_app.forecast(np.arange(40.0), window=2, log=True)
    with pytest.raises(ValueError, match="cell"):
        forecast_app.forecast(np.arange(40.0), window=2, cell="transformer")


# --------------------------------------------------------------------------
# crnn classify
# --------------------------------------------------------------------------

REVIEWS60 = os.path.join(os.path.dirname(__file__), "data", "reviews60.tsv")


def test_classify_builtin_json():
    proc = ok(
        run(
            "classify",
            "--json",
            "--epochs",
            2,
            "--predict",
            "great food",
            "--predict",
            "rude staff",
        )
    )
    out = one_json(proc.stdout)
    assert out["classes"] == ["negative", "positive"]
    assert 0.0 <= out["accuracy"] <= 1.0 and out["baseline_accuracy"] == 0.5
    # 300 texts: 76 held out for testing, 224 for 5-fold cross-validation and the final model.
    assert (out["n_train"], out["n_val"], out["n_test"]) == (224, 0, 76)
    assert out["selection"] == "5-fold cross-validation" and out["epochs"] == 2
    assert out["settings"]["cell"] == "gru" and out["settings"]["folds"] == 5
    assert [p["label"] in ("negative", "positive") for p in out["predictions"]] == [True, True]


def test_classify_text_output():
    proc = ok(run("classify", "--epochs", 1))
    assert "test accuracy" in proc.stdout and "majority baseline" in proc.stdout
    assert "5 folds" in proc.stdout and "GRU 32 hidden units" in proc.stdout
    proc = ok(run("classify", "--epochs", 1, "--folds", 0, "--restarts", 2, "--cell", "rnn"))
    assert "2 restart(s)" in proc.stdout and "validation" in proc.stdout
    assert "RNN 32 hidden units" in proc.stdout


def test_classify_embedding_dim_and_threads():
    proc = ok(run("classify", "--json", "--epochs", 2, "--embedding-dim", 8, "--threads", 1))
    out = one_json(proc.stdout)
    assert out["settings"]["embedding_dim"] == 8 and 0.0 <= out["accuracy"] <= 1.0
    proc = ok(run("classify", "--epochs", 1, "--embedding-dim", 8))
    assert "word vectors 8 -> GRU 32 hidden units" in proc.stdout
    proc = ok(run("classify", "--epochs", 1, "--embedding-dim", 0))
    assert "one-hot words -> GRU 32 hidden units" in proc.stdout


def test_classifier_with_word_vectors_learns_sentiment():
    texts, labels, groups = datasets.load_sentiment()
    r = classify_app.classify(texts, labels, groups, seed=0, seconds=None, embedding_dim=16)
    assert r.model.embed is not None and r.model.embed.embedding_dim == 16
    assert r.settings.embedding_dim == 16
    assert r.accuracy >= 0.8, r.summary()
    assert r.predict(["The food was great and the staff were friendly."]) == ["1"]


def test_classify_tsv(tmp_path):
    f = tmp_path / "d.tsv"
    lines = ["text\tlabel"]
    for i in range(20):
        lines += [f"what a great thing number {i}\tgood", f"such a bad thing number {i}\tbad"]
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = one_json(
        ok(run("classify", "--tsv", f, "--epochs", 3, "--json", "--predict", "a great day")).stdout
    )
    assert out["classes"] == ["bad", "good"] and out["data"] == str(f)
    assert out["n_train"] + out["n_val"] + out["n_test"] == 40
    assert out["n_test"] == 10


@pytest.mark.parametrize(
    "content, pattern",
    [
        (None, r"no such file"),
        (b"", r"empty"),
        (b"\xff\xfe\x00\x81", r"cannot decode"),
        (b"good one\t1\nno tab on this line\n", r"line 2: expected text<TAB>label"),
        (b"a\t1\nb\t1\nc\t1\nd\t1\n", r"at least two classes"),
        (b"a\t1\nb\t0\n", r"too few examples"),
        (b"a\t1\nb\t0\nc\t1\nd\t0\n", r"too few examples"),
        (b"\t1\n", r"line 1: the text is empty"),
        (b"# only a comment\n\n", r"no examples"),
    ],
)
def test_classify_user_errors_exit_2(tmp_path, content, pattern):
    f = tmp_path / "d.tsv"
    if content is not None:
        f.write_bytes(content)
    user_error(run("classify", "--tsv", f, "--epochs", 1), pattern)


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--folds", 1], r"--folds: expected an integer >= 2, or 0"),
        (["--folds", "x"], r"--folds"),
        (["--cell", "jordan"], r"--cell"),
        (["--lr", 0], r"--lr"),
        (["--batch-size", 0], r"--batch-size"),
        (["--word-dropout", 1], r"--word-dropout"),
        (["--embedding-dim", -1], r"--embedding-dim"),
        (["--threads", 0], r"--threads"),
    ],
)
def test_classify_bad_option_values_exit_2(args, pattern):
    user_error(run("classify", *args), pattern)


def test_choose_settings_follow_the_data_size():
    small = classify_app.choose_settings(45)
    assert (small.cell, small.hidden, small.lr, small.batch_size, small.epochs, small.folds) == (
        "gru",
        32,
        0.01,
        8,
        40,
        5,
    )
    assert small.selection == "5-fold cross-validation" and small.total_epochs == 240
    assert classify_app.choose_settings(224).batch_size == 16
    large = classify_app.choose_settings(5000)
    assert (large.hidden, large.lr, large.batch_size, large.folds, large.restarts) == (
        64,
        0.003,
        32,
        0,
        3,
    )
    assert large.selection.startswith("a validation split (15%)")
    assert classify_app.choose_settings(7).folds == 3  # as many folds as 2 texts each allow
    mine = classify_app.choose_settings(
        45, cell="rnn", hidden=8, lr=0.1, batch_size=2, epochs=3, folds=0, restarts=2
    )
    assert (
        mine.cell,
        mine.hidden,
        mine.lr,
        mine.batch_size,
        mine.epochs,
        mine.folds,
        mine.restarts,
    ) == ("rnn", 8, 0.1, 2, 3, 0, 2)


def test_fold_indices_stratified_and_grouped():
    rng = np.random.default_rng(0)
    y = np.array([0] * 12 + [1] * 8)
    folds = classify_app.fold_indices(y, None, 4, rng)
    assert sorted(np.concatenate(folds).tolist()) == list(range(20))
    assert [np.bincount(y[f], minlength=2).tolist() for f in folds] == [[3, 2]] * 4
    groups = np.arange(20) // 2
    folds = classify_app.fold_indices(y, groups, 3, rng)
    assert sorted(np.concatenate(folds).tolist()) == list(range(20))
    for a in range(3):
        for b in range(a + 1, 3):
            assert not set(groups[folds[a]]) & set(groups[folds[b]])


def test_classifier_learns_sentiment():
    texts, labels, groups = datasets.load_sentiment()
    r = classify_app.classify(texts, labels, groups, seed=0, seconds=None)
    assert r.n_test == 76 and r.baseline_accuracy == 0.5
    assert r.accuracy >= 0.9, r.summary()  # 97.4% at seed 0
    # Test sentences never share a pair with training ones.
    train_groups = set(groups[np.setdiff1d(np.arange(300), r.test_index)].tolist())
    assert not train_groups & set(groups[r.test_index].tolist())
    assert r.predict(["The food was great and the staff were friendly."]) == ["1"]


def test_classifier_learns_a_60_line_tsv():
    """A small hand-written set (tests/data/reviews60.tsv): 16 test texts per seed."""
    texts, labels = classify_app.load_tsv(REVIEWS60)
    assert len(texts) == 60 and labels.count("positive") == 30
    accs = [classify_app.classify(texts, labels, seed=s, seconds=None).accuracy for s in range(3)]
    assert np.mean(accs) >= 0.65, accs  # 0.75, 0.81, 0.69 here; the majority baseline is 0.5


def test_classify_with_a_validation_split_on_more_data():
    rng = np.random.default_rng(0)
    good, bad = ["great", "lovely", "fine", "superb"], ["awful", "poor", "bad", "dreadful"]
    texts, labels = [], []
    for i in range(540):
        words = good if i % 2 else bad
        texts.append(f"the {rng.choice(['room', 'food', 'film'])} was {rng.choice(words)}")
        labels.append("pos" if i % 2 else "neg")
    r = classify_app.classify(texts, labels, epochs=3, seconds=None)
    assert r.settings.folds == 0 and r.settings.restarts == 3 and r.settings.hidden == 64
    assert (r.n_train, r.n_val, r.n_test) == (344, 60, 136)
    assert r.accuracy > 0.9


def test_split_indices_stratified_and_grouped():
    rng = np.random.default_rng(0)
    y = np.array([0] * 8 + [1] * 4)
    keep, out = classify_app.split_indices(y, None, 0.25, rng)
    assert sorted(np.concatenate([keep, out]).tolist()) == list(range(12))
    assert np.bincount(y[out]).tolist() == [2, 1]
    groups = np.arange(12) // 2
    keep, out = classify_app.split_indices(y, groups, 0.25, rng)
    assert not set(groups[keep]) & set(groups[out]) and out.size == 4
