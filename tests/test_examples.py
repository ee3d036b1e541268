"""Every script in examples/ runs (shortened by CRNN_EXAMPLES_QUICK=1) and
prints what it is meant to print.

The full runs learn their tasks (run them by hand: each takes seconds); the
quick runs only prove that the scripts work against the current API.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# script -> patterns its output must contain
EXPECTED = {
    "one_to_one.py": [
        r"step\s+1\s+training MSE",
        r"test MSE against sin\(x\)",
        r"x = \+1\.0\s+predicted",
    ],
    "one_to_many.py": [
        r"step\s+1\s+loss",
        r"one input 't', greedy:\s+t",
        r"one input 't', sampled:\s+t",
    ],
    "many_to_one.py": [
        r"step\s+1\s+loss",
        r"accuracy on 2000 new sequences: [\d.]+%",
        r"numbers, sum [+-][\d.]+ -> predicted",
    ],
    "many_to_many.py": [
        r"window\s+1/\d+\s+loss",
        r"per-step accuracy on a new stream",
        r"input bits: [01]{24}",
        r"RNN output: [01]{24}",
    ],
    "encoder_decoder.py": [
        r"step\s+1\s+loss",
        r"reversed exactly: [\d.]+% of 1000",
        r"\d{5} -> \d{5}",
    ],
    "vanishing_gradients.py": [
        r"baseline \(always predict 1\.0\): MSE 0\.167",
        r"rnn: test MSE [\d.]+",
        r"lstm: test MSE [\d.]+",
        r"gru: test MSE [\d.]+",
        r"\|\|dL/dh_t\|\|",
        r"lstm: [\d.]+e[+-]\d+  \([\d.]+e[+-]\d+\)",
    ],
    "exploding_gradients.py": [
        r"\|\|dL/dh_t\|\| through time",
        r"g = 4: \|\|dL/dh_0\|\|",
        r"no clipping: loss not finite from step \d+ on",
        r"clip_grad_norm 0\.5: test MSE [\d.e+-]+",
    ],
    "dask_cluster.py": [
        r"cluster: 2 workers",
        r"step\s+1/\d+\s+loss",
        r"same weights as one process: max difference (\d\.\de-1[2-9]|0\.0e\+00)",
        r"resumed from the checkpoint of step \d+: max difference from the uninterrupted run 0\.0e\+00",
        r"accuracy on [\d,]+ new streams \(crnn\.dask\.predict, 8 blocks\)",
    ],
}

# Scripts that need an optional extra: skipped cleanly when it is not installed.
NEEDS = {"dask_cluster.py": ("dask.array", "distributed")}

pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="examples/ is not shipped here")


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs(script):
    for module in NEEDS.get(script, ()):
        pytest.importorskip(module)
    env = dict(os.environ, CRNN_EXAMPLES_QUICK="1")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    for pattern in EXPECTED[script]:
        assert re.search(pattern, proc.stdout), f"{pattern!r} not in:\n{proc.stdout}"
    text = (EXAMPLES / script).read_text(encoding="utf-8")
    assert text.startswith('"""') and "Run:  python examples/" in text
