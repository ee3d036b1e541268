"""The GIL, concurrency and the thread / build settings.

crnn releases the GIL inside C: a Python thread keeps running while another
is inside a long forward, backward or clipping call, for every cell and each
C call of the binding (checked by counting the first thread's progress while
the second is inside the call, not by timing). Several Python threads calling
crnn at once, each call split across 1 or 3 threads, get exactly the numbers
of serial calls. The thread-count setting round trips and is global;
build_info describes the build.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import crnn
from crnn import _core
from crnn._testing import counts, force_split
from helpers import assert_bitwise, make_rnn_problem
from problems import (
    SPECS,
    backward as cell_backward,
    cell_params,
    forward as cell_forward,
    make_problem,
    option_variants,
    run,
)

N_WORKERS = 4
N_CALLS = 20


# --------------------------------------------------------------------------
# The GIL is released inside the C calls
# --------------------------------------------------------------------------
def progress_during(call, attempts=5, inside=None):
    """How far this thread counts while another Python thread is inside `call()`.

    The switch interval is made huge, so the interpreter never takes the GIL
    from a thread that holds it: this thread can only run while the other is
    inside `call()` if `call()` released the GIL. The worker reads this
    thread's counter just before and just after the call (holding the GIL
    both times); the difference is the progress made during the call: 0
    exactly when the GIL was held throughout. A few attempts, so that a busy
    machine that gives this thread no CPU time during one call cannot fail
    the test.

    `inside` names a binding function (of crnn._core) that `call()` reaches:
    then only the progress made inside that function counts, so NumPy work
    of the Python wrapper around it (which may release the GIL itself) cannot
    hide a binding call that holds it.
    """
    if inside is not None:
        return _progress_inside(call, inside, attempts)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        for _ in range(attempts):
            state = {"count": 0, "before": None, "after": None}
            done = threading.Event()

            def work():
                state["before"] = state["count"]
                call()
                state["after"] = state["count"]
                done.set()

            worker = threading.Thread(target=work)
            worker.start()
            while not done.is_set():
                state["count"] += 1
                time.sleep(0)  # lets the worker take the GIL between its Python steps
            worker.join()
            progress = state["after"] - state["before"]
            if progress > 0:
                return progress
        return 0
    finally:
        sys.setswitchinterval(old)


def _progress_inside(call, name, attempts):
    real = getattr(_core, name)
    spans = []

    def measured(*args, **kwargs):
        before = counter["count"]
        result = real(*args, **kwargs)
        spans.append(counter["count"] - before)
        return result

    counter = {"count": 0}
    setattr(_core, name, measured)
    try:
        old = sys.getswitchinterval()
        sys.setswitchinterval(1000.0)
        try:
            for _ in range(attempts):
                spans.clear()
                done = threading.Event()

                def work():
                    call()
                    done.set()

                worker = threading.Thread(target=work)
                worker.start()
                while not done.is_set():
                    counter["count"] += 1
                    time.sleep(0)
                worker.join()
                assert spans, f"the call never reached _core.{name}"
                if min(spans) > 0:
                    return min(spans)
            return 0
        finally:
            sys.setswitchinterval(old)
    finally:
        setattr(_core, name, real)


def _long_problem(spec):
    """A problem whose forward and backward take milliseconds on one thread;
    arrays already C-contiguous float64 and no lengths, so the Python side of
    a call does no NumPy work that could release the GIL itself."""
    return make_problem(spec, (300, 32, 32, max(8, 96 // spec.gates)), np.float64, seed=0)


@pytest.mark.parametrize("spec", cell_params())
def test_forward_and_backward_release_the_gil(spec):
    crnn.set_num_threads(1)
    p = _long_problem(spec)
    dout, dstates = p.upstream("all")
    forward = lambda: cell_forward(crnn, p)  # noqa: E731
    assert progress_during(forward, inside="forward") > 0, "forward held the GIL"
    _, _, cache = cell_forward(crnn, p)
    backward = lambda: cell_backward(crnn, spec, cache, dout, dstates)  # noqa: E731
    assert progress_during(backward, inside="backward") > 0, "backward held the GIL"


@pytest.mark.parametrize("func", ["total_norm", "scale", "clip_value"])
def test_clipping_releases_the_gil(func):
    """Each of the binding's clipping calls on its own: clip_grad_norm makes
    two of them (the norm, then the scaling), and one that released the GIL
    would hide the other that held it."""
    crnn.set_num_threads(1)
    arrays = [np.random.default_rng(0).standard_normal(4_000_000) for _ in range(2)]
    call = getattr(_core, func)
    code = _core.DTYPES["float64"]
    assert progress_during(lambda: call(code, arrays, 0.5)) > 0, f"_core.{func} held the GIL"


def test_embedding_backward_releases_the_gil():
    """The C scatter-add itself (called through the binding with arrays made
    ready beforehand, so no NumPy work of the Python wrapper is measured)."""
    from crnn import _core

    crnn.set_num_threads(1)
    rng = np.random.default_rng(0)
    V, D = 5000, 64
    ids = rng.integers(0, V, size=400_000)
    dout = rng.standard_normal((ids.size, D))
    dweight = np.empty((V, D))
    f64 = _core.DTYPES["float64"]
    assert progress_during(lambda: _core.embedding_backward(f64, ids, dout, V, -1, dweight)) > 0, (
        "embedding_backward held the GIL"
    )


def test_progress_during_sees_a_call_that_holds_the_gil():
    """The probe itself: a pure-Python call (which holds the GIL) shows no
    progress, a call that sleeps (which releases it) does."""

    def busy():
        total = 0
        for i in range(300_000):
            total += i
        return total

    assert progress_during(busy, attempts=2) == 0
    assert progress_during(lambda: time.sleep(0.02)) > 0


# --------------------------------------------------------------------------
# Concurrent calls give the serial results
# --------------------------------------------------------------------------
def _job(seed, dtype):
    """A distinct problem per worker (cells and options in turn), so any
    cross-talk would show."""
    spec = SPECS[seed % len(SPECS)]
    variants = option_variants(spec)
    T, B, I, H = 9 + seed % 3, 16 + seed, 12, 24 + 3 * seed
    p = make_problem(
        spec,
        (T, B, I, H),
        dtype,
        seed=seed,
        lengths="zeros",
        options=variants[seed % len(variants)],
    )
    return p, p.upstream("all", seed + 50)


def _run(job):
    p, up = job
    return run(crnn, p, *up)


@pytest.mark.parametrize("omp_threads", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_concurrent_calls_match_serial(dtype, omp_threads):
    """Each call split across omp_threads threads (forced: the problems are
    small), checked by the counters."""
    jobs = [_job(seed, dtype) for seed in range(2 * N_WORKERS)]
    crnn.set_num_threads(1)
    serial = [_run(job) for job in jobs]

    barrier = threading.Barrier(N_WORKERS)

    def worker(k):
        barrier.wait()  # start together to maximise overlap
        return [(j, _run(jobs[j])) for j in [(k + i) % len(jobs) for i in range(N_CALLS)]]

    with force_split(omp_threads), counts() as seen:
        with ThreadPoolExecutor(max_workers=N_WORKERS) as pool:
            results = list(pool.map(worker, range(N_WORKERS)))
    assert seen.max_team == seen.max_slices == omp_threads, seen
    for k, runs in enumerate(results):
        for i, (j, r) in enumerate(runs):
            assert_bitwise(r, serial[j], f"worker {k} call {i} job {j}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_concurrent_clip_matches_serial(dtype):
    rng = np.random.default_rng(0)
    bases = [
        [rng.standard_normal(50_000 + k).astype(dtype), rng.standard_normal(77).astype(dtype)]
        for k in range(N_WORKERS)
    ]

    def clip(k):
        arrays = [a.copy() for a in bases[k]]
        total = crnn.clip_grad_norm(arrays, 0.5 + k)
        return total, arrays

    serial = [clip(k) for k in range(N_WORKERS)]
    with ThreadPoolExecutor(max_workers=N_WORKERS) as pool:
        futures = [pool.submit(clip, k % N_WORKERS) for k in range(N_WORKERS * N_CALLS)]
        for i, fut in enumerate(futures):
            total, arrays = fut.result()
            s_total, s_arrays = serial[i % N_WORKERS]
            assert total == s_total
            for a, b in zip(arrays, s_arrays):
                assert np.array_equal(a, b)


def test_concurrent_errors_are_raised_in_their_thread():
    """A failing call in one thread neither breaks nor poisons the others."""
    good = _job(1, np.float64)
    expected = _run(good)
    p = good[0]
    bad = p.replace(weights=dict(p.weights, weight_hh=np.ones((3, 4))))

    def worker(k):
        if k % 2:
            with pytest.raises(ValueError, match="weight_hh"):
                cell_forward(crnn, bad)
            return None
        return _run(good)

    with ThreadPoolExecutor(max_workers=N_WORKERS) as pool:
        results = list(pool.map(worker, range(4 * N_WORKERS)))
    for r in results:
        if r is not None:
            assert_bitwise(r, expected, "good call next to failing ones")


# --------------------------------------------------------------------------
# set_num_threads / get_num_threads
# --------------------------------------------------------------------------
def test_num_threads_round_trip():
    crnn.set_num_threads(None)
    default = crnn.get_num_threads()
    assert type(default) is int and default >= 1
    openmp = crnn.build_info()["openmp"]
    for n in (1, 2, 3, 7):
        crnn.set_num_threads(n)
        got = crnn.get_num_threads()
        assert type(got) is int
        assert got == (n if openmp else 1)
    crnn.set_num_threads(None)
    assert crnn.get_num_threads() == default
    crnn.set_num_threads(3)
    crnn.set_num_threads(0)
    assert crnn.get_num_threads() == default


def test_num_threads_is_global_across_python_threads():
    if not crnn.build_info()["openmp"]:
        pytest.skip("built without OpenMP")
    crnn.set_num_threads(3)
    seen = []
    t = threading.Thread(target=lambda: seen.append(crnn.get_num_threads()))
    t.start()
    t.join()
    assert seen == [3]


def test_numpy_integer_thread_count_accepted():
    crnn.set_num_threads(np.int64(2))
    if crnn.build_info()["openmp"]:
        assert crnn.get_num_threads() == 2


def test_threadpoolctl_limits_apply():
    """With no explicit count, crnn follows OpenMP's limit (threadpoolctl)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not crnn.build_info()["openmp"]:
        pytest.skip("built without OpenMP")
    crnn.set_num_threads(None)
    crnn.rnn_forward(**make_rnn_problem(2, 2, 2, 2))  # make sure the runtime is loaded
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert crnn.get_num_threads() == 1
        assert crnn.build_info()["num_threads"] == 1


# --------------------------------------------------------------------------
# build_info
# --------------------------------------------------------------------------
def test_build_info():
    info = crnn.build_info()
    assert isinstance(info, dict)
    for key in ("version", "openmp", "isa", "isas", "compiler", "num_threads"):
        assert key in info, key
    assert isinstance(info["version"], str) and info["version"]
    assert type(info["openmp"]) is bool
    assert isinstance(info["isa"], str)
    assert isinstance(info["isas"], list) and all(isinstance(s, str) for s in info["isas"])
    assert info["isa"] in info["isas"]
    assert info["isas"] == crnn.available_isas()
    assert isinstance(info["compiler"], str) and info["compiler"]
    assert type(info["num_threads"]) is int and info["num_threads"] >= 1
    assert info["num_threads"] == crnn.get_num_threads()
    if hasattr(crnn, "__version__"):
        assert info["version"] == crnn.__version__


def test_build_info_tracks_settings():
    crnn.set_num_threads(2)
    info = crnn.build_info()
    assert info["num_threads"] == (2 if info["openmp"] else 1)
    for isa in crnn.available_isas():
        crnn.set_isa(isa)
        assert crnn.build_info()["isa"] == isa
    crnn.set_isa("auto")
    if os.environ.get("CRNN_ISA"):
        return  # the environment may choose what "auto" means
    # "auto" picks the best available: the last of the C library's registry
    # (csrc/crnn_isas.def lists the builds worst first) that this CPU runs.
    best = max(crnn.available_isas(), key=crnn._core.ISAS.__getitem__)
    assert crnn.build_info()["isa"] == best
