"""crnn.limit_blas_threads and the commands that train under it.

NumPy's BLAS threads spin between the small products of a training loop and
compete with crnn's OpenMP threads; `crnn.limit_blas_threads` caps them for a
block: through threadpoolctl when it is importable, else with crnn's own
ctypes limiter (`crnn._blas`: the BLAS libraries listed in /proc/self/maps),
and with a RuntimeWarning when it can limit nothing. The training and
sampling commands run under it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import warnings
from typing import Iterator, List

import pytest

import crnn
from crnn import _blas, _runtime, cli

linux_maps = pytest.mark.skipif(
    not os.path.exists(_blas.MAPS), reason="crnn's own limiter reads /proc/self/maps (Linux)"
)


def _blas_threads() -> List[int]:
    """The thread counts of the BLAS libraries crnn's own limiter finds."""
    return [lib.get_num_threads() for lib in _blas.find_blas_libraries()[0]]


def _threadpoolctl_threads() -> List[int]:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return [
        info["num_threads"]
        for info in threadpoolctl.threadpool_info()
        if info["user_api"] == "blas"
    ]


@pytest.fixture
def blas_at_two():
    """NumPy's BLAS on 2 threads for the test (so that a limit to 1 shows), restored after."""
    libs = _blas.find_blas_libraries()[0]
    if not libs:
        pytest.skip("no BLAS library crnn can control is loaded")
    before = [lib.get_num_threads() for lib in libs]
    for lib in libs:
        lib.set_num_threads(2)
    try:
        yield [2] * len(libs)
    finally:
        for lib, n in zip(libs, before):
            lib.set_num_threads(n)


@pytest.fixture
def no_threadpoolctl(monkeypatch):
    """`import threadpoolctl` fails, as on a plain install."""
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)


# --------------------------------------------------------------------------
# The context manager, with threadpoolctl
# --------------------------------------------------------------------------


def test_limits_blas_and_restores_it(blas_at_two):
    pytest.importorskip("threadpoolctl")
    with crnn.limit_blas_threads() as limit:
        assert limit and limit.via == "threadpoolctl"
        assert _blas_threads() == [1] * len(blas_at_two)
        assert _threadpoolctl_threads() == [1] * len(blas_at_two)
        assert [(lib.before, lib.after, lib.api) for lib in limit.libraries] == [
            (2, 1, "threadpoolctl")
        ] * len(blas_at_two)
        assert "2 -> 1 thread via threadpoolctl" in str(limit)
    assert _blas_threads() == blas_at_two


def test_limit_to_n_threads(blas_at_two):
    with crnn.limit_blas_threads(2) as limit:
        assert limit and [lib.after for lib in limit.libraries] == [2] * len(blas_at_two)
        assert _blas_threads() == [2] * len(blas_at_two)
    assert _blas_threads() == blas_at_two


@pytest.mark.parametrize("threadpoolctl", ["with", "without"])
def test_restores_after_an_exception(blas_at_two, monkeypatch, threadpoolctl):
    if threadpoolctl == "without":
        monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    with pytest.raises(KeyError):
        with crnn.limit_blas_threads():
            assert _blas_threads() == [1] * len(blas_at_two)
            raise KeyError("boom")
    assert _blas_threads() == blas_at_two


def test_a_failing_threadpoolctl_falls_back_to_crnns_limiter(blas_at_two, monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def broken(*args, **kwargs):
        raise RuntimeError("cannot inspect the loaded libraries")

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", broken)
    with crnn.limit_blas_threads() as limit:
        assert limit and limit.via == "ctypes"
        assert _blas_threads() == [1] * len(blas_at_two)
    assert _blas_threads() == blas_at_two


# --------------------------------------------------------------------------
# Without threadpoolctl: crnn's own limiter
# --------------------------------------------------------------------------


@linux_maps
def test_without_threadpoolctl_crnn_limits_numpys_blas(blas_at_two, no_threadpoolctl):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: something was limited
        with crnn.limit_blas_threads() as limit:
            assert limit and limit.via == "ctypes"
            assert _blas_threads() == [1] * len(blas_at_two)
            lib = limit.libraries[0]
            assert (lib.before, lib.after) == (2, 1)
            assert lib.api.startswith("ctypes ") and "set_num_threads" in lib.api
            assert os.path.isabs(lib.path) and lib.kind in ("OpenBLAS", "MKL", "BLIS")
    assert _blas_threads() == blas_at_two


@linux_maps
def test_numpys_own_blas_is_found():
    """NumPy's wheels bundle scipy-openblas; whatever NumPy uses here must be found."""
    import numpy as np

    try:
        cfg = np.show_config(mode="dicts")  # NumPy >= 1.26
    except TypeError:
        cfg = None
    name = ((cfg or {}).get("Build Dependencies", {}).get("blas", {}) or {}).get("name", "")
    libs, notes = _blas.find_blas_libraries()
    if "openblas" in name.lower() or "mkl" in name.lower() or "blis" in name.lower():
        assert libs, (name, notes)
    for lib in libs:
        assert lib.get_num_threads() >= 1


@linux_maps
def test_nested_and_overlapping_blocks(blas_at_two, no_threadpoolctl):
    with crnn.limit_blas_threads(2):
        assert _blas_threads() == blas_at_two
        with crnn.limit_blas_threads(1):
            assert _blas_threads() == [1] * len(blas_at_two)
        assert _blas_threads() == blas_at_two
    # Blocks in two threads that overlap without nesting: the smallest limit
    # holds until the last block ends.
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with crnn.limit_blas_threads(1):
            a_in.set()
            b_in.wait(10)
        a_out.set()

    t = threading.Thread(target=a)
    t.start()
    a_in.wait(10)
    with crnn.limit_blas_threads(2):
        b_in.set()
        a_out.wait(10)
        seen["after a left"] = _blas_threads()
    t.join(10)
    assert seen["after a left"] == blas_at_two  # b's own limit (2) is what remains
    assert _blas_threads() == blas_at_two


def test_nothing_to_limit_warns_and_says_what_to_install(monkeypatch, no_threadpoolctl):
    monkeypatch.setattr(_blas, "loaded_library_paths", lambda maps=_blas.MAPS: [])
    before = _blas.find_blas_libraries(None)[0]
    with pytest.warns(RuntimeWarning, match=r"could not limit.*install threadpoolctl") as rec:
        with crnn.limit_blas_threads() as limit:
            assert not limit and limit.via is None and limit.libraries == ()
            assert "not limited" in str(limit)
    assert rec[0].filename == __file__  # the warning points at the caller's `with`
    assert before == []


def test_loaded_library_paths_reads_the_maps_file(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(
        textwrap.dedent("""\
        55d0-55d1 r--p 00000000 08:01 1 /usr/bin/python3.11
        7f00-7f01 r-xp 00000000 08:01 2 /opt/x/numpy.libs/libscipy_openblas64_-32a4b2a6.so
        7f01-7f02 r--p 00001000 08:01 2 /opt/x/numpy.libs/libscipy_openblas64_-32a4b2a6.so
        7f02-7f03 rw-p 00000000 00:00 0
        7f03-7f04 r-xp 00000000 08:01 3 /usr/lib/libmkl_rt.so.2
        7f05-7f06 rw-p 00000000 00:00 0 [heap]
        7f06-7f07 r-xp 00000000 08:01 4 /usr/lib/x86_64-linux-gnu/libc.so.6
        7f07-7f08 r-xp 00000000 08:01 5 /tmp/dir with space/libblis.so.4
        """)
    )
    assert _blas.loaded_library_paths(str(maps)) == [
        "/opt/x/numpy.libs/libscipy_openblas64_-32a4b2a6.so",
        "/usr/lib/libmkl_rt.so.2",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/tmp/dir with space/libblis.so.4",
    ]
    assert _blas.loaded_library_paths(str(tmp_path / "missing")) == []


_FAKE_BLAS = r"""
static int n_threads = 4;
#ifdef OPENBLAS
int openblas_get_num_threads(void) { return n_threads; }
void openblas_set_num_threads(int n) { n_threads = n; }
#ifdef OPENMP_LAYER
int openblas_get_parallel(void) { return 2; }
#endif
#endif
#ifdef MKL
int MKL_Get_Max_Threads(void) { return n_threads; }
void MKL_Set_Num_Threads(int n) { n_threads = n; }
#endif
#ifdef BLIS
int bli_thread_get_num_threads(void) { return n_threads; }
void bli_thread_set_num_threads(int n) { n_threads = n; }
#endif
"""


@linux_maps
def test_finds_and_limits_openblas_mkl_and_blis(tmp_path):
    """Stand-ins for each library (compiled here) in a fresh interpreter without threadpoolctl."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / "fake.c"
    src.write_text(_FAKE_BLAS)
    libs = {}
    for name, flags in [
        ("libopenblas.so.0", ["-DOPENBLAS"]),
        ("libmkl_rt.so.2", ["-DMKL"]),
        ("libblis.so.4", ["-DBLIS"]),
        ("libopenblas_omp.so", ["-DOPENBLAS", "-DOPENMP_LAYER"]),
        ("libblas.so.3", []),
    ]:  # a BLAS name without a thread API
        out = tmp_path / name
        subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(src), *flags], check=True)
        libs[name] = str(out)
    code = textwrap.dedent(f"""
        import ctypes, json, sys, warnings
        sys.modules["threadpoolctl"] = None
        libs = {libs!r}
        handles = {{k: ctypes.CDLL(v) for k, v in libs.items()}}
        import crnn
        def counts():
            return {{k: h[g]() for k, h, g in [
                ("openblas", handles["libopenblas.so.0"], "openblas_get_num_threads"),
                ("mkl", handles["libmkl_rt.so.2"], "MKL_Get_Max_Threads"),
                ("blis", handles["libblis.so.4"], "bli_thread_get_num_threads"),
                ("omp", handles["libopenblas_omp.so"], "openblas_get_num_threads")]}}
        out = {{"before": counts()}}
        with crnn.limit_blas_threads(1) as limit:
            out["inside"] = counts()
            out["libs"] = [[l.kind, l.path, l.api, l.before, l.after] for l in limit.libraries]
            out["notes"] = list(limit.notes)
        out["after"] = counts()
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["before"] == out["after"] == {"openblas": 4, "mkl": 4, "blis": 4, "omp": 4}
    assert out["inside"] == {"openblas": 1, "mkl": 1, "blis": 1, "omp": 4}
    got = {os.path.basename(path): (kind, api, b, a) for kind, path, api, b, a in out["libs"]}
    assert got["libopenblas.so.0"] == ("OpenBLAS", "ctypes openblas_set_num_threads", 4, 1)
    assert got["libmkl_rt.so.2"] == ("MKL", "ctypes MKL_Set_Num_Threads", 4, 1)
    assert got["libblis.so.4"] == ("BLIS", "ctypes bli_thread_set_num_threads", 4, 1)
    assert "libopenblas_omp.so" not in got and "libblas.so.3" not in got
    assert any("libopenblas_omp.so" in n and "OpenMP" in n for n in out["notes"])
    assert any("libblas.so.3" in n for n in out["notes"])


@pytest.mark.parametrize(
    "n, error",
    [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError), ("1", TypeError)],
)
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
        "assert 'crnn._blas' not in sys.modules, 'import crnn imported its BLAS limiter'\n"
        "assert blas() == before, (blas(), before)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
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
    def watched(n: int = 1) -> Iterator[object]:
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


@pytest.mark.parametrize("threadpoolctl", ["with", "without"])
def test_training_runs_on_one_blas_thread(blas_at_two, monkeypatch, tmp_path, threadpoolctl):
    """End to end: BLAS on 1 thread during training, as before after."""
    if threadpoolctl == "without":
        monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    seen: List[List[int]] = []

    def work(*args, **kwargs):
        seen.append(_blas_threads())
        raise _Reached

    _run_until(
        monkeypatch, tmp_path, ["forecast", "--epochs", "1"], "crnn.apps.forecast", "forecast", work
    )
    assert seen == [[1] * len(blas_at_two)]
    assert _blas_threads() == blas_at_two
