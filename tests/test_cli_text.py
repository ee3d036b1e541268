"""The ``crnn`` command: demo, train-text, sample, bench; errors and exit statuses.

Every command runs in a subprocess (``python -m crnn``) with tiny settings;
budgets are given in epochs where learning is checked, so a busy machine
only makes a test slower, never different.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import crnn
from crnn import cli
from crnn.apps import common, text as text_app

TEXT = "the cat sat on the mat. the dog ate the bone. " * 30
WORDS = set(re.findall(r"[a-z]+", TEXT))


def run(*args, cwd=None, timeout=120):
    env = dict(
        os.environ, CRNN_PROGRESS="plain", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2")
    )
    return subprocess.run(
        [sys.executable, "-m", "crnn", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model trained on TEXT by `crnn train-text` (deterministic: epochs, seed)."""
    d = tmp_path_factory.mktemp("text")
    f = d / "cats.txt"
    f.write_text(TEXT, encoding="utf-8")
    model = d / "cats.npz"
    proc = ok(
        run(
            "train-text",
            f,
            "--out",
            model,
            "--hidden",
            32,
            "--seq-len",
            20,
            "--batch-size",
            8,
            "--epochs",
            60,
            "--seed",
            0,
            "--sample-length",
            40,
        )
    )
    return model, proc


# --------------------------------------------------------------------------
# The command itself
# --------------------------------------------------------------------------


def test_help_lists_every_command():
    proc = ok(run("--help"))
    for name in ("demo", "train-text", "sample", "bench"):
        assert name in proc.stdout
    assert "crnn demo" in proc.stdout


def test_no_command_and_bad_option_exit_2():
    proc = run()
    assert proc.returncode == 2 and "COMMAND" in proc.stderr
    proc = run("no-such-command")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_version():
    proc = ok(run("--version"))
    assert proc.stdout.startswith("crnn ") and "kernels" in proc.stdout


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / ("crnn.exe" if os.name == "nt" else "crnn")
    if not exe.exists():
        pytest.skip("the crnn console script is not installed next to this Python")
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("crnn ")


def test_user_error_and_interrupt_statuses(monkeypatch, capsys):
    def fail(args):
        raise common.CLIError("something the user can fix")

    def interrupt(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(text_app, "cmd_sample", fail)
    assert cli.main(["sample", "m.npz"]) == 2
    assert "crnn: error: something the user can fix" in capsys.readouterr().err
    monkeypatch.setattr(text_app, "cmd_sample", interrupt)
    assert cli.main(["sample", "m.npz"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0


# --------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------


def test_demo_smoke(tmp_path):
    model = tmp_path / "demo.npz"
    proc = ok(run("demo", "--seconds", 1, "--hidden", 32, "--length", 40, "--out", model))
    out = proc.stdout
    assert "docstrings of" in out and "standard-library modules" in out
    for t in ("0.5", "0.8", "1.0"):
        assert f"temperature {t}:" in out
    assert "C engine" in out and "NumPy reference" in out
    assert re.search(r"\d+\.\dx", out)  # the speed-up
    assert "chars/s" in proc.stderr and "loss" in proc.stderr  # the progress bar
    assert model.exists()
    proc = ok(run("sample", model, "--prime", "Return", "--length", 30, "--seed", 1))
    assert proc.stdout.startswith("Return")


@pytest.mark.parametrize("cell,embedding_dim", [("rnn", None), ("lstm", 3)])
def test_training_speeds_time_copies_and_every_implementation(cell, embedding_dim):
    """The demo's speed report: a time for each implementation (PyTorch when
    importable) and kind; the model itself untouched."""
    from crnn.apps.training_speed import training_speeds

    m = text_app.CharModel("abcdef", 8, cell=cell, embedding_dim=embedding_dim, seed=0)
    before = {k: v.copy() for k, v in m.params.items()}
    sp = training_speeds(m, 6, 2, repeat=1, budget=0.0)
    impls = {"c", "numpy"} | ({"torch"} if importlib.util.find_spec("torch") else set())
    for kind in ("rnn", "step"):
        assert set(sp[kind]) == impls
        assert all(0 < s < 60 for s in sp[kind].values())
    for k, v in before.items():
        np.testing.assert_array_equal(m.params[k], v)
    assert all(not g.any() for g in m.grads.values())


def test_demo_corpus_is_deterministic_and_large():
    a, n = text_app.demo_corpus()
    b, _ = text_app.demo_corpus()
    assert a == b and n >= 40 and len(a) > 100_000
    assert "Return" in a


# --------------------------------------------------------------------------
# train-text and sample
# --------------------------------------------------------------------------


def test_train_text_saves_a_model(trained):
    model, proc = trained
    assert model.exists()
    assert "saved" in proc.stdout and "--- sample" in proc.stdout
    assert "loss" in proc.stderr and "chars/s" in proc.stderr
    m = text_app.load_model(str(model))
    assert isinstance(m, text_app.CharModel) and m.vocab.chars == "".join(sorted(set(TEXT)))
    # loss went down a lot: the "trained" line reports first -> last
    first, last = map(float, re.search(r"loss ([\d.]+) -> ([\d.]+)", proc.stdout).groups())
    assert last < 0.5 * first


def test_crnn_load_reads_a_text_model_after_plain_import_crnn(trained):
    """A fresh interpreter: `crnn.load` needs no import of crnn.apps first."""
    model, _ = trained
    code = (
        "import sys, crnn\n"
        "m = crnn.load(sys.argv[1])\n"
        "assert type(m) is crnn.models.CharModel, type(m)\n"
        "assert not any(k.startswith('crnn.apps') for k in sys.modules), 'crnn.apps imported'\n"
        "print(m.sample('the ', 30, temperature=0))\n"
    )
    proc = ok(
        subprocess.run(
            [sys.executable, "-c", code, str(model)], capture_output=True, text=True, timeout=120
        )
    )
    assert text_app.load_model(str(model)).sample("the ", 30, temperature=0) == proc.stdout[:-1]


def test_char_model_is_the_library_one():
    """crnn.apps.text re-exports the library's CharModel: one class under one registered name."""
    assert text_app.CharModel is crnn.models.CharModel


def test_samples_contain_words_of_the_text(trained):
    model, _ = trained
    proc = ok(
        run("sample", model, "--prime", "the ", "--length", 150, "--temperature", 0.5, "--seed", 3)
    )
    assert proc.stdout.startswith("the ")
    words = re.findall(r"[a-z]+", proc.stdout)
    known = [w for w in words if w in WORDS]
    assert len(set(known)) >= 4, proc.stdout
    assert len(known) >= 0.8 * len(words), proc.stdout


def test_sample_complete_word_and_line(trained):
    model, _ = trained
    proc = ok(
        run("sample", model, "--prime", "the do", "--complete", "--temperature", 0, "--length", 50)
    )
    assert proc.stdout == "the dog\n"
    proc = ok(
        run(
            "sample",
            model,
            "--prime",
            "the cat sat on the ",
            "--complete",
            "--seed",
            0,
            "--temperature",
            0,
        )
    )
    assert proc.stdout == "the cat sat on the mat\n"
    proc = ok(
        run("sample", model, "--prime", "the", "--complete", "line", "--length", 80, "--seed", 0)
    )
    assert proc.stdout.count("\n") == 1 and len(proc.stdout) <= 3 + 80 + 1


def test_sample_options_and_unknown_prime_characters(trained):
    model, _ = trained
    a = ok(
        run(
            "sample",
            model,
            "--prime",
            "the",
            "--length",
            40,
            "--seed",
            7,
            "--top-k",
            3,
            "--threads",
            1,
        )
    )
    b = ok(run("sample", model, "--prime", "the", "--length", 40, "--seed", 7, "--top-k", 3))
    assert a.stdout == b.stdout and len(a.stdout) == 3 + 40 + 1
    proc = ok(run("sample", model, "--prime", "THE", "--length", 5, "--seed", 0))
    assert "never saw" in proc.stderr and proc.stdout.startswith("THE")


def test_train_text_other_settings(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("abc abd abe\n" * 20, encoding="utf-8")
    proc = ok(
        run(
            "train-text",
            f,
            "--out",
            tmp_path / "m.npz",
            "--hidden",
            8,
            "--layers",
            2,
            "--optimizer",
            "adagrad",
            "--seconds",
            0.5,
            "--seq-len",
            8,
            "--sample-every",
            0,
            "--clip",
            0,
            "--backend",
            "numpy",
            "--threads",
            1,
        )
    )
    assert "Adagrad" in proc.stdout and "no clipping" in proc.stdout
    assert "--- sample after" not in proc.stdout
    assert (tmp_path / "m.npz").exists()
    # default --out: FILE's name with .npz, in the current folder; a tiny text shrinks the batch
    g = tmp_path / "tiny.txt"
    g.write_text("hello", encoding="utf-8")
    proc = ok(run("train-text", g, "--epochs", 1, "--hidden", 4, cwd=tmp_path))
    assert (tmp_path / "tiny.npz").exists() and "1 stream instead of 32" in proc.stdout


def test_complete_function():
    c = text_app.complete
    assert c("pri", "nt(x) more") == "nt"
    assert c("print ", "  value next") == "  value"
    assert c("x", "\nabc") == ""
    assert c("a ", "!!\nzzz") == "!!"
    assert c("a", "bc\nde", "line") == "bc"
    assert c("a", "bcd", "line") == "bcd"


# --------------------------------------------------------------------------
# Errors: status 2 and a clear message
# --------------------------------------------------------------------------


def call(capsys, *args):
    """cli.main in this process (quicker than a subprocess for error paths)."""
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, out, err)


def test_missing_file_exits_2_in_a_subprocess(tmp_path):
    user_error(run("train-text", tmp_path / "missing.txt"), r"missing\.txt: no such file")
    user_error(run("sample", tmp_path / "none.npz"), r"none\.npz: no such file")


def test_train_text_file_errors(tmp_path, capsys):
    user_error(call(capsys, "train-text", tmp_path / "missing.txt"), r"missing\.txt: no such file")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    user_error(call(capsys, "train-text", empty), r"empty\.txt: the file is empty")
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n\n", encoding="utf-8")
    user_error(call(capsys, "train-text", blank), "only whitespace")
    bad = tmp_path / "latin.txt"
    bad.write_bytes("caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    user_error(
        call(capsys, "train-text", bad),
        r"latin\.txt: cannot decode it as utf-8 \(byte 0xe9 at offset 3\)",
    )
    ok(
        call(
            capsys,
            "train-text",
            bad,
            "--encoding",
            "latin-1",
            "--epochs",
            1,
            "--hidden",
            4,
            "--out",
            tmp_path / "latin.npz",
        )
    )
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"abc\x00\x00def")
    user_error(call(capsys, "train-text", binary), "binary file")
    user_error(call(capsys, "train-text", tmp_path), "is a directory")
    good = tmp_path / "good.txt"
    good.write_text("some text\n", encoding="utf-8")
    user_error(
        call(capsys, "train-text", good, "--out", tmp_path / "nope" / "m.npz"), "does not exist"
    )


def test_bad_values_exit_2(capsys):
    user_error(
        call(capsys, "train-text", "x.txt", "--hidden", "many"), r"--hidden.*expected an integer"
    )
    user_error(call(capsys, "train-text", "x.txt", "--seconds", "-1"), r"--seconds.*> 0")
    user_error(call(capsys, "train-text", "x.txt", "--lr", "nan"), r"--lr.*finite")
    user_error(
        call(capsys, "train-text", "x.txt", "--seconds", "1", "--epochs", "1"), "not allowed with"
    )
    user_error(call(capsys, "sample", "m.npz", "--complete", "sentence"), "invalid choice")
    user_error(call(capsys, "bench", "--shapes", "5,2,3"), "T,B,I,H")


def test_sample_file_errors(tmp_path, capsys):
    user_error(call(capsys, "sample", tmp_path / "none.npz"), r"none\.npz: no such file")
    user_error(call(capsys, "sample", tmp_path), "is a directory")
    junk = tmp_path / "junk.npz"
    junk.write_text("not a model", encoding="utf-8")
    user_error(call(capsys, "sample", junk), "not a valid crnn model file")
    import crnn

    other = tmp_path / "rnn.npz"
    crnn.save(crnn.RNN(2, 3), str(other))
    user_error(call(capsys, "sample", other), "not a character model")


def test_read_text_in_process(tmp_path):
    f = tmp_path / "bom.txt"
    f.write_bytes(b"\xef\xbb\xbfline one\r\nline two\r\n")
    assert common.read_text(str(f)) == "line one\nline two\n"
    with pytest.raises(common.CLIError, match="unknown encoding"):
        common.read_text(str(f), encoding="no-such-codec")


def test_progress_fallback_prints_lines(capsys):
    import io

    buf = io.StringIO()
    with common.Progress(10, desc="training", unit="windows", file=buf, mode="plain") as bar:
        for _ in range(12):
            bar.update(1, "loss 1.0, 5k chars/s")
        bar.write("a sample")
    lines = buf.getvalue().splitlines()
    assert lines[-1].startswith("training: 100%") and "10/10 windows" in lines[-1]
    assert "loss 1.0, 5k chars/s" in lines[-1]
    assert 2 <= len(lines) <= 12
    assert capsys.readouterr().out == "a sample\n"


# --------------------------------------------------------------------------
# bench
# --------------------------------------------------------------------------


def test_bench_quick(tmp_path):
    out = tmp_path / "bench.json"
    proc = ok(run("bench", "--quick", "--threads", 1, "--json", out))
    assert "crnn bench" in proc.stdout and "fwd+bwd" in proc.stdout and "GFLOP/s" in proc.stdout
    assert "crnn vs reference:" in proc.stdout
    report = json.loads(out.read_text())
    assert report["settings"]["threads"] == 1
    modes = {(tuple(r["shape"]), r["mode"], r["impl"]) for r in report["results"]}
    assert ((96, 1, 64, 64), "fwdbwd", "crnn") in modes
    assert ((96, 1, 64, 64), "fwd", "reference") in modes
    for r in report["results"]:
        assert r["median"] > 0 and r["gflops"] > 0 and len(r["times"]) >= 1


def test_bench_options():
    proc = ok(run("bench", "--shapes", "5,2,3,4", "--no-torch", "--no-reference", "--budget", 0.01))
    assert "5,2,3,4" in proc.stdout and "reference" not in proc.stdout.split("\n", 4)[-1]


def test_bench_cells_tables(tmp_path):
    """--cells times each cell with every implementation there is here, one
    table per cell; FLOP counted by the cell's gates; --plot draws a PNG."""
    import importlib.util

    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    args = ["bench", "--cells", "rnn,lstm,gru", "--shapes", "4,2,3,8", "--no-reference"]
    args += ["--budget", 0.01, "--threads", 1, "--json", out]
    have_plot = importlib.util.find_spec("matplotlib") is not None
    if have_plot:
        args += ["--plot", png]
    proc = ok(run(*args, timeout=300))
    for title in ("Elman RNN, tanh", "LSTM (4 gates)", "GRU (3 gates)"):
        assert sum(line == title for line in proc.stdout.splitlines()) == 1, proc.stdout
    report = json.loads(out.read_text())
    assert report["settings"]["cells"] == ["rnn", "lstm", "gru"]
    timed = {(r["cell"], r["mode"], r["impl"]): r for r in report["results"] if "median" in r}
    impls = report["settings"]["impls"]
    for cell in ("rnn", "lstm", "gru"):
        for mode in ("fwd", "fwdbwd"):
            for impl in impls:
                assert (cell, mode, impl) in timed, (cell, mode, impl)
    gates = {"rnn": 1, "lstm": 4, "gru": 3}
    for (cell, mode, _impl), r in timed.items():
        assert r["flops"] == gates[cell] * timed[("rnn", mode, "crnn")]["flops"]
    # A peer is timed, or the report says why not.
    for peer in ("torch", "onednn"):
        assert (peer in impls) != (peer in report["settings"]["unavailable"])
    assert ("% peak" in proc.stdout) == (report["machine"]["peak_gflops"] is not None)
    if have_plot:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_rejects_an_unknown_cell():
    user_error(run("bench", "--cells", "lstm,transformer"), "comma-separated list of rnn")


def test_bench_table_with_onednn_and_peak():
    from crnn.apps import bench

    times = {"crnn": 1e-3, "torch": 2e-3, "onednn": 0.5e-3}
    report = {
        "machine": dict(
            cpu="CPU",
            cores=2,
            crnn="0",
            crnn_isa="avx512",
            crnn_openmp=True,
            numpy="2",
            torch="2",
            onednn="2.6",
            peak_gflops=200.0,
            busy=None,
        ),
        "settings": dict(
            dtype="float32", threads=2, impls=["crnn", "torch", "onednn"], unavailable={}
        ),
        "results": [
            dict(
                cell="lstm",
                shape=[5, 2, 3, 4],
                mode=m,
                impl=i,
                median=times[i],
                gflops=50.0 if i == "crnn" else 1.0,
            )
            for m in ("fwd", "fwdbwd")
            for i in times
        ],
    }
    lines = bench.format_report(report).splitlines()
    head = next(line for line in lines if line.startswith("T,B,I,H"))
    assert head.split()[-3:] == ["GFLOP/s", "%", "peak"]
    row = next(line for line in lines if line.startswith("5,2,3,4"))
    # torch 2x crnn's time, oneDNN half of it; 50 of 200 GFLOP/s is 25%.
    assert "2.00x" in row and "0.50x" in row and row.endswith("25%")


def test_ctrl_c_during_train_text_saves_the_model(tmp_path, monkeypatch, capsys):
    from crnn.training import TBPTT

    real_step = TBPTT.step
    calls = {"n": 0}

    def step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(TBPTT, "step", step)
    f = tmp_path / "t.txt"
    f.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "m.npz"
    rc = cli.main(["train-text", str(f), "--out", str(out), "--hidden", "8", "--epochs", "5"])
    err = capsys.readouterr().err
    assert rc == 130 and "interrupted" in err and "saved" in err
    assert text_app.load_model(str(out)).vocab_size == len(set(TEXT)) + 1
