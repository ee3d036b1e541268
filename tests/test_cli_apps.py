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
from crnn.apps import classify as classify_app
from crnn.apps import forecast as forecast_app
from crnn.apps.common import CLIError


def run(*args, timeout=120):
    env = dict(os.environ, CRNN_PROGRESS="plain")
    return subprocess.run([sys.executable, "-m", "crnn", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def user_error(proc, pattern):
    assert proc.returncode == 2, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert re.search(pattern, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def one_json(stdout):
    """stdout must be exactly one JSON object (nothing else)."""
    obj = json.loads(stdout)
    assert isinstance(obj, dict)
    return obj


def seasonal(n=240, seed=1):
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return 10 + 3 * np.sin(2 * np.pi * t / 12) + 0.02 * t + 0.3 * rng.standard_normal(n)


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

def test_forecast_builtin_json():
    proc = ok(run("forecast", "--json", "--epochs", 3))
    out = one_json(proc.stdout)
    for key in ("rnn_mae", "naive_mae", "window", "horizon", "n_train", "n_test", "series"):
        assert key in out
    assert out["series"] == "airline" and out["n_values"] == 144
    assert (out["window"], out["horizon"], out["n_test"], out["n_train"]) == (12, 1, 29, 103)
    y = datasets.load_series()
    assert out["naive_mae"] == pytest.approx(np.mean(np.abs(np.diff(y)[-29:])))
    assert out["rnn_mae"] > 0 and len(out["forecast"]) == 29


def test_forecast_text_output():
    proc = ok(run("forecast", "--epochs", 2, "--horizon", 2))
    assert "RNN MAE" in proc.stdout and "naive MAE" in proc.stdout
    assert "airline" in proc.stdout and "horizon 2" in proc.stdout


def test_time_limits_stop_training():
    out = one_json(ok(run("forecast", "--json", "--epochs", 50, "--seconds", 1e-6)).stdout)
    assert out["epochs"] == 1 and out["stopped_early"] is True
    proc = ok(run("forecast", "--epochs", 50, "--seconds", 1e-6))
    assert "stopped by --seconds" in proc.stdout
    out = one_json(ok(run("classify", "--json", "--epochs", 50, "--restarts", 2,
                          "--seconds", 1e-6)).stdout)
    assert out["epochs"] == 1 and out["stopped_early"] is True


def test_forecast_csv(tmp_path):
    y = seasonal(60)
    f = write_csv(tmp_path / "s.csv", "day,value,note",
                  [f"{i},{v:.4f},x" for i, v in enumerate(y)])
    out = one_json(ok(run("forecast", "--csv", f, "--column", "value", "--window", 6,
                          "--epochs", 3, "--json")).stdout)
    assert out["series"] == "s.csv:value" and out["n_values"] == 60
    assert out["n_test"] == 12 and out["n_train"] == 60 - 12 - 6
    naive = np.mean(np.abs(y[48:] - y[47:-1]))
    assert out["naive_mae"] == pytest.approx(naive, abs=1e-3)


def test_forecast_csv_default_column_is_the_last(tmp_path):
    f = write_csv(tmp_path / "s.csv", "month,passengers",
                  [f"{i},{v}" for i, v in enumerate(seasonal(40))])
    out = one_json(ok(run("forecast", "--csv", f, "--window", 4, "--epochs", 2, "--json")).stdout)
    assert out["series"] == "s.csv:passengers"


@pytest.mark.parametrize("setup, args, pattern", [
    ("none", ["--csv", "{d}/missing.csv"], r"missing\.csv: no such file"),
    ("good", ["--csv", "{f}", "--column", "nope"], r"no column 'nope'.*'day', 'value', 'note'"),
    ("good", ["--csv", "{f}", "--column", "note"], r"line 2: column 'note' is not numeric"),
    ("bad_row", ["--csv", "{f}", "--column", "value"], r"line 5: column 'value' is not numeric \(found 'oops'\)"),
    ("good", ["--csv", "{f}", "--column", "value", "--window", 40], r"series too short: 30 values.*window of 40"),
    ("empty", ["--csv", "{f}"], r"empty"),
    ("binary", ["--csv", "{f}"], r"cannot decode"),
    ("header_only", ["--csv", "{f}"], r"no data rows"),
    ("none", ["--column", "value"], r"--column needs --csv"),
    ("none", ["--window", 200], r"airline: series too short"),
])
def test_forecast_user_errors_exit_2(tmp_path, setup, args, pattern):
    f = tmp_path / "data.csv"
    if setup == "good":
        write_csv(f, "day,value,note", [f"{i},{i % 7},x" for i in range(30)])
    elif setup == "bad_row":
        write_csv(f, "day,value", ["0,1", "1,2", "2,3", "3,oops", "4,5"])
    elif setup == "empty":
        f.write_bytes(b"")
    elif setup == "binary":
        f.write_bytes(b"\xff\xfe\x00\x81binary")
    elif setup == "header_only":
        f.write_text("day,value\n")
    args = [str(a).format(d=tmp_path, f=f) for a in args]
    user_error(run("forecast", *args, "--epochs", 1), pattern)


def test_forecast_bad_option_value_exit_2():
    user_error(run("forecast", "--window", 0), r"--window")
    user_error(run("forecast", "--test-fraction", 1.5), r"--test-fraction")


def test_forecast_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "f.png"
    out = one_json(ok(run("forecast", "--epochs", 2, "--json", "--plot", png)).stdout)
    assert out["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    user_error(run("forecast", "--epochs", 1, "--plot", tmp_path / "no" / "f.png"),
               r"no such directory")


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


def test_split_sizes():
    assert forecast_app.split_sizes(144, 12, 1) == (103, 29)
    assert forecast_app.split_sizes(144, 12, 3) == (101, 29)
    with pytest.raises(forecast_app.SeriesTooShort, match="at least 45"):
        forecast_app.split_sizes(40, 30, 7)


def test_forecaster_beats_naive_on_seasonal_series():
    y = seasonal(240)
    r = forecast_app.forecast(y, window=12, horizon=1, epochs=100, seconds=None, seed=0)
    assert (r.n_train, r.n_test) == (180, 48)
    assert r.naive_mae > 0.8
    assert r.rnn_mae < 0.6 * r.naive_mae, (r.rnn_mae, r.naive_mae)
    # Deterministic: the same seed gives the same numbers.
    again = forecast_app.forecast(y, window=12, horizon=1, epochs=100, seconds=None, seed=0)
    assert again.rnn_mae == r.rnn_mae
    np.testing.assert_array_equal(again.predictions, r.predictions)
    # Further ahead the naive forecast is worse still, and the RNN still wins.
    r3 = forecast_app.forecast(y, window=12, horizon=3, epochs=100, seconds=None, seed=0)
    assert r3.rnn_mae < 0.5 * r3.naive_mae, (r3.rnn_mae, r3.naive_mae)


def test_forecaster_beats_naive_on_airline():
    r = forecast_app.forecast(datasets.load_series(), epochs=150, seconds=None, seed=0)
    assert r.rnn_mae < 0.75 * r.naive_mae, (r.rnn_mae, r.naive_mae)


def test_forecast_rejects_bad_series():
    with pytest.raises(ValueError, match="finite"):
        forecast_app.forecast([1.0, np.nan] * 20, window=2)
    with pytest.raises(ValueError, match="> 0"):
        forecast_app.forecast(np.arange(40.0), window=2, log=True)


# --------------------------------------------------------------------------
# crnn classify
# --------------------------------------------------------------------------

def test_classify_builtin_json():
    proc = ok(run("classify", "--json", "--epochs", 2, "--restarts", 1,
                  "--predict", "great food", "--predict", "rude staff"))
    out = one_json(proc.stdout)
    assert out["classes"] == ["negative", "positive"]
    assert 0.0 <= out["accuracy"] <= 1.0 and out["baseline_accuracy"] == 0.5
    assert out["n_train"] + out["n_val"] + out["n_test"] == 300
    assert out["n_test"] == 76 and out["epochs"] == 2
    assert [p["label"] in ("negative", "positive") for p in out["predictions"]] == [True, True]


def test_classify_text_output():
    proc = ok(run("classify", "--epochs", 1, "--restarts", 1))
    assert "test accuracy" in proc.stdout and "majority baseline" in proc.stdout


def test_classify_tsv(tmp_path):
    f = tmp_path / "d.tsv"
    lines = ["text\tlabel"]
    for i in range(20):
        lines += [f"what a great thing number {i}\tgood", f"such a bad thing number {i}\tbad"]
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = one_json(ok(run("classify", "--tsv", f, "--epochs", 3, "--restarts", 1, "--json",
                          "--predict", "a great day")).stdout)
    assert out["classes"] == ["bad", "good"] and out["data"] == str(f)
    assert out["n_train"] + out["n_val"] + out["n_test"] == 40
    assert out["n_test"] == 10


@pytest.mark.parametrize("content, pattern", [
    (None, r"no such file"),
    (b"", r"empty"),
    (b"\xff\xfe\x00\x81", r"cannot decode"),
    (b"good one\t1\nno tab on this line\n", r"line 2: expected text<TAB>label"),
    (b"a\t1\nb\t1\nc\t1\nd\t1\n", r"at least two classes"),
    (b"a\t1\nb\t0\n", r"too few examples"),
    (b"\t1\n", r"line 1: the text is empty"),
    (b"# only a comment\n\n", r"no examples"),
])
def test_classify_user_errors_exit_2(tmp_path, content, pattern):
    f = tmp_path / "d.tsv"
    if content is not None:
        f.write_bytes(content)
    user_error(run("classify", "--tsv", f, "--epochs", 1, "--restarts", 1), pattern)


def test_classifier_learns_sentiment():
    texts, labels, groups = datasets.load_sentiment()
    r = classify_app.classify(texts, labels, groups, seed=0, seconds=None)
    assert r.n_test == 76 and r.baseline_accuracy == 0.5
    assert r.accuracy >= 0.75, r.summary()
    # Test sentences never share a pair with training ones.
    train_groups = set(groups[np.setdiff1d(np.arange(300), r.test_index)].tolist())
    assert not train_groups & set(groups[r.test_index].tolist())
    assert r.predict(["The food was great and the staff were friendly."]) == ["1"]


def test_split_indices_stratified_and_grouped():
    rng = np.random.default_rng(0)
    y = np.array([0] * 8 + [1] * 4)
    keep, out = classify_app.split_indices(y, None, 0.25, rng)
    assert sorted(np.concatenate([keep, out]).tolist()) == list(range(12))
    assert np.bincount(y[out]).tolist() == [2, 1]
    groups = np.arange(12) // 2
    keep, out = classify_app.split_indices(y, groups, 0.25, rng)
    assert not set(groups[keep]) & set(groups[out]) and out.size == 4
