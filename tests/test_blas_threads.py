"""crnn.limit_blas_threads and the commands that train under it.

NumPy's BLAS threads spin between the small products of a training loop and
compete with crnn's OpenMP threads; `crnn.limit_blas_threads` caps them for a
block (through threadpoolctl, an optional dependency) and does nothing
without threadpoolctl. The training and sampling commands run under it.
"""
from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import Iterator, List

import pytest

import crnn
from crnn import _runtime, cli


def _blas_threads() -> List[int]:
    """The thread counts of the BLAS libraries loaded in this process."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return [info["num_threads"] for info in threadpoolctl.threadpool_info()
            if info["user_api"] == "blas"]


@pytest.fixture
def blas_at_two():
    """BLAS on 2 threads for the test (so that a limit to 1 shows), restored after."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _blas_threads():
        pytest.skip("NumPy's BLAS is not one threadpoolctl can see")
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        yield _blas_threads()


# --------------------------------------------------------------------------
# The context manager
# --------------------------------------------------------------------------

def test_limits_blas_and_restores_it(blas_at_two):
    with crnn.limit_blas_threads() as limited:
        assert limited is True
        assert _blas_threads() == [1] * len(blas_at_two)
    assert _blas_threads() == blas_at_two


def test_limit_to_n_threads(blas_at_two):
    with crnn.limit_blas_threads(2):
        assert _blas_threads() == [2] * len(blas_at_two)
    assert _blas_threads() == blas_at_two


def test_restores_after_an_exception(blas_at_two):
    with pytest.raises(KeyError):
        with crnn.limit_blas_threads():
            raise KeyError("boom")
    assert _blas_threads() == blas_at_two


def test_without_threadpoolctl_it_does_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # `import threadpoolctl` fails
    with crnn.limit_blas_threads() as limited:
        assert limited is False


def test_without_threadpoolctl_blas_is_untouched(blas_at_two, monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    with crnn.limit_blas_threads():
        monkeypatch.undo()  # to look at the threads again
        assert _blas_threads() == blas_at_two


def test_a_failing_threadpoolctl_does_not_fail_the_block(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def broken(*args, **kwargs):
        raise RuntimeError("cannot inspect the loaded libraries")

    monkeypatch.setattr(threadpoolctl, "threadpool_limits", broken)
    with crnn.limit_blas_threads() as limited:
        assert limited is False


@pytest.mark.parametrize("n, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                      (True, TypeError), ("1", TypeError)])
def test_bad_thread_counts(n, error):
    with pytest.raises(error, match="n must be an integer >= 1"):
        with crnn.limit_blas_threads(n):
            pass


def test_import_crnn_leaves_blas_and_threadpoolctl_alone():
    """A fresh interpreter: `import crnn` neither imports threadpoolctl nor changes BLAS."""
    pytest.importorskip("threadpoolctl")
    code = (
        "import sys, numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "def blas(): return [i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']\n"
        "before = blas()\n"
        "del sys.modules['threadpoolctl']\n"
        "import crnn\n"
        "assert 'threadpoolctl' not in sys.modules, 'import crnn imported threadpoolctl'\n"
        "assert blas() == before, (blas(), before)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------
# The commands run under it
# --------------------------------------------------------------------------

class _Reached(Exception):
    """Raised by a stand-in for a command's work, to stop the command there."""


# (argv, module, the function the handler calls to do its work)
COMMANDS = [
    (["demo", "--seconds", "1"], "crnn.apps.text", "demo_corpus"),
    (["train-text", "{file}"], "crnn.apps.text", "read_text"),
    (["sample", "{file}"], "crnn.apps.text", "load_model"),
    (["forecast", "--epochs", "1"], "crnn.apps.forecast", "forecast"),
    (["classify", "--epochs", "1"], "crnn.apps.classify", "classify"),
]


def _run_until(monkeypatch, tmp_path, argv, module, attr, work) -> None:
    """Run ``crnn ARGV`` in this process with `work` in place of `module.attr`."""
    f = tmp_path / "input.txt"
    f.write_text("some text\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[module], attr, work)
    with pytest.raises(_Reached):
        cli.main([a.format(file=f) for a in argv])


@pytest.mark.parametrize("argv, module, attr", COMMANDS, ids=[c[0][0] for c in COMMANDS])
def test_command_works_under_the_limit(monkeypatch, tmp_path, argv, module, attr):
    """Whatever threadpoolctl does: the command's work runs inside limit_blas_threads(1)."""
    depth: List[int] = []
    inside: List[bool] = []
    real = _runtime.limit_blas_threads

    @contextlib.contextmanager
    def watched(n: int = 1) -> Iterator[bool]:
        depth.append(n)
        with real(n) as limited:
            yield limited
        depth.pop()

    def work(*args, **kwargs):
        inside.append(depth == [1])
        raise _Reached

    monkeypatch.setattr(_runtime, "limit_blas_threads", watched)
    _run_until(monkeypatch, tmp_path, argv, module, attr, work)
    assert inside == [True]


def test_training_runs_on_one_blas_thread(blas_at_two, monkeypatch, tmp_path):
    """End to end with threadpoolctl: BLAS on 1 thread during training, as before after."""
    seen: List[List[int]] = []

    def work(*args, **kwargs):
        seen.append(_blas_threads())
        raise _Reached

    _run_until(monkeypatch, tmp_path, ["forecast", "--epochs", "1"], "crnn.apps.forecast",
               "forecast", work)
    assert seen == [[1] * len(blas_at_two)]
    assert _blas_threads() == blas_at_two

