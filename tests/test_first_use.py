"""What a first-time user reads: complete --help texts, a readable bench table, a warning on a
busy machine, a clear message for a model class that is not registered, honest docstrings."""

from __future__ import annotations

import argparse
import io
import re

import numpy as np
import pytest

import crnn
from crnn import cli, serialization
from crnn.apps import bench
from crnn.data import WordVocab
from crnn.module import Module

MY_COMMANDS = ("forecast", "classify", "bench")


def _subparsers():
    parser = cli.build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    raise AssertionError("no subcommands")


ALL_COMMANDS = ("demo", "train-text", "sample", "forecast", "classify", "tag", "translate", "bench")


def test_every_command_is_checked_here():
    assert set(_subparsers()) == set(ALL_COMMANDS)


@pytest.mark.parametrize("name", ALL_COMMANDS)
def test_help_is_complete(name, capsys):
    sub = _subparsers()[name]
    desc = " ".join(sub.description.split())
    assert desc.endswith((".", ")")), desc[-80:]  # not cut off mid-sentence
    for action in sub._actions:
        if action.dest == "help":
            continue
        assert action.help, f"crnn {name} {action.option_strings}: no help text"
    assert cli.main([name, "--help"]) == 0
    text = capsys.readouterr().out
    assert "usage: crnn " + name in text


def test_bench_help_says_what_it_times(capsys):
    assert cli.main(["bench", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in (
        "forward and forward + backward",
        "torch.nn.RNN",
        "crnn.reference",
        "GFLOP/s",
        "warns when the machine is busy",
    ):
        assert words in text


def _report(impls, busy=None):
    times = {"crnn": 1e-4, "reference": 1e-3, "torch": 5e-4}
    return {
        "machine": {
            "cpu": "CPU",
            "cores": 2,
            "crnn": "0",
            "crnn_isa": "avx2",
            "crnn_openmp": True,
            "numpy": "2",
            "torch": "2",
            "busy": busy,
        },
        "settings": {"dtype": "float32", "threads": 2, "impls": list(impls)},
        "results": [
            dict(shape=[96, 1, 64, 64], mode=m, impl=i, median=times[i], gflops=1.0)
            for m in ("fwd", "fwdbwd")
            for i in impls
        ],
    }


def test_bench_table_header_is_readable():
    lines = bench.format_report(_report(("crnn", "reference", "torch"))).splitlines()
    group, head = next(
        (lines[i], lines[i + 1])
        for i, l in enumerate(lines)
        if l.lstrip().startswith("median time")
    )
    assert "crnn is faster than" in group
    assert re.split(r"\s+", head.strip()) == [
        "T,B,I,H",
        "pass",
        "crnn",
        "reference",
        "torch",
        "reference",
        "torch",
        "GFLOP/s",
    ]
    # The group labels sit over their columns: times left, speed-ups right.
    assert group.index("median time") < head.index("reference") < group.index("crnn is faster")
    assert group.index("crnn is faster") <= head.rindex("reference")
    row = next(l for l in lines if l.startswith("96,1,64,64"))
    assert "10.0x" in row and "5.00x" in row
    lines = bench.format_report(_report(("crnn",))).splitlines()
    assert any(re.split(r"\s+", l.strip()) == ["T,B,I,H", "pass", "crnn", "GFLOP/s"] for l in lines)


def test_bench_warns_on_a_busy_machine(monkeypatch, capsys):
    assert bench.busy_machine(0.2, 2.3, 2, 2) is None  # only bench's own threads
    assert bench.busy_machine(None, None, 2, 2) is None  # unknown (no getloadavg)
    assert "busy" in bench.busy_machine(3.0, None, 2, 2)
    msg = bench.busy_machine(0.2, 4.5, 2, 2)
    assert "load average 0.2 before, 4.5 after" in msg and "2x" in msg
    assert "WARNING: the machine is busy" in bench.format_report(_report(("crnn",), busy=msg))

    monkeypatch.setattr(bench.os, "getloadavg", lambda: (7.5, 7.0, 6.0))
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 2)
    assert (
        cli.main(
            [
                "bench",
                "--shapes",
                "4,2,3,4",
                "--no-torch",
                "--no-reference",
                "--budget",
                "0.001",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "crnn bench: warning: the machine is busy: load average 7.5 before" in captured.err
    assert "WARNING: the machine is busy" in captured.out

    monkeypatch.setattr(bench.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    report = bench.run(
        [(4, 2, 3, 4)], ["crnn"], threads=1, min_repeat=1, max_repeat=1, budget=0.001
    )
    assert report["machine"]["busy"] is None
    assert report["machine"]["load_before"] == report["machine"]["load_after"] == 0.1


class _Unlisted(Module):
    """A model class some user module defines (registered only while saving)."""

    def __init__(self, n: int = 3) -> None:
        super().__init__()
        self.n = n
        self.register_parameter("w", np.arange(n, dtype=np.float32))

    def config(self):
        return {"n": self.n}


def test_loading_an_unregistered_class_says_so(monkeypatch):
    monkeypatch.setitem(serialization._REGISTRY, "_Unlisted", _Unlisted)
    buf = io.BytesIO()
    crnn.save(_Unlisted(), buf)
    monkeypatch.delitem(serialization._REGISTRY, "_Unlisted")
    buf.seek(0)
    with pytest.raises(serialization.UnregisteredClassError) as info:
        crnn.load(buf)
    msg = str(info.value)
    assert "holds a _Unlisted, a class that is not registered" in msg
    assert "crnn.serialization.register_module(_Unlisted)" in msg
    assert f"`import {__name__}` registers it" in msg
    assert "not a valid crnn model file" not in msg and "The file itself is fine" in msg
    assert isinstance(info.value, ValueError)  # as documented before
    # Registered again, the same file loads.
    monkeypatch.setitem(serialization._REGISTRY, "_Unlisted", _Unlisted)
    buf.seek(0)
    np.testing.assert_array_equal(crnn.load(buf).params["w"], [0, 1, 2])


def test_wordvocab_docstring_does_not_invent_a_method():
    doc = WordVocab.__doc__
    assert "`encode` / `bag_of_words`" not in doc
    assert "crnn.data.bag_of_words" in doc and not hasattr(WordVocab, "bag_of_words")


TRAINING_COMMANDS = ("demo", "train-text", "forecast", "classify", "tag", "translate")
TOKEN_COMMANDS = ("demo", "train-text", "classify", "tag", "translate")


@pytest.mark.parametrize("name", TRAINING_COMMANDS)
def test_every_training_command_takes_cell_and_threads(name):
    options = {o for a in _subparsers()[name]._actions for o in a.option_strings}
    assert {"--cell", "--threads", "--seed"} <= options, name
    if name in TOKEN_COMMANDS:
        assert "--embedding-dim" in options, name
