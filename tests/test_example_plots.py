"""The gradient examples draw their figures with ``--plot`` (the manual's
gallery shows them): each writes its PNG to the current directory."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
pytestmark = [
    pytest.mark.skipif(not EXAMPLES.is_dir(), reason="examples/ is not shipped here"),
    pytest.mark.skipif(
        importlib.util.find_spec("matplotlib") is None,
        reason="--plot needs matplotlib (the plot extra)",
    ),
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["vanishing_gradients", "exploding_gradients"])
def test_plot_writes_a_png(name, tmp_path):
    env = dict(os.environ, CRNN_EXAMPLES_QUICK="1", MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--plot"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    figure = tmp_path / f"{name}.png"
    assert f"plot: {name}.png" in proc.stdout
    data = figure.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    assert [p.name for p in tmp_path.iterdir()] == [figure.name]


@pytest.mark.parametrize("name", ["vanishing_gradients", "exploding_gradients"])
def test_no_plot_without_the_flag(name, tmp_path):
    env = dict(os.environ, CRNN_EXAMPLES_QUICK="1")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert not list(tmp_path.iterdir())
