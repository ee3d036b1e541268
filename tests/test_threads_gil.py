"""Concurrency and the thread / build settings.

Several Python threads calling crnn at once (the GIL is released inside C)
must get exactly the numbers of serial calls. The thread-count setting round
trips and is global; build_info describes the build.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import crnn
from helpers import make_rnn_problem

GRAD_FIELDS = crnn.RNNGrads._fields
N_WORKERS = 4
N_CALLS = 20


def _job(seed, dtype, nl):
    """A distinct problem per worker, so any cross-talk would show."""
    T, B, I, H = 9 + seed % 3, 16 + seed, 12, 24 + 3 * seed
    args = make_rnn_problem(T, B, I, H, dtype, seed=seed, lengths="zeros")
    rng = np.random.default_rng(seed + 50)
    dout = rng.standard_normal((T, B, H)).astype(dtype)
    dh_n = rng.standard_normal((B, H)).astype(dtype)
    return args, nl, dout, dh_n


def _run(job):
    args, nl, dout, dh_n = job
    out, h_n, cache = crnn.rnn_forward(**args, nonlinearity=nl)
    g = crnn.rnn_backward(dout, dh_n, cache)
    return [out, h_n] + [getattr(g, f) for f in GRAD_FIELDS]


def _assert_bitwise(a_list, b_list, ctx):
    for i, (a, b) in enumerate(zip(a_list, b_list)):
        if b is None:
            assert a is None, ctx
        else:
            assert np.array_equal(a, b), f"{ctx}: result #{i} differs"


@pytest.mark.parametrize("omp_threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_concurrent_calls_match_serial(dtype, omp_threads):
    crnn.set_num_threads(omp_threads)
    nls = ["tanh", "relu", "sigmoid", "tanh"]
    jobs = [_job(seed, dtype, nls[seed]) for seed in range(N_WORKERS)]
    serial = [_run(job) for job in jobs]

    barrier = threading.Barrier(N_WORKERS)

    def worker(k):
        barrier.wait()  # start together to maximise overlap
        return [_run(jobs[k]) for _ in range(N_CALLS)]

    with ThreadPoolExecutor(max_workers=N_WORKERS) as pool:
        results = list(pool.map(worker, range(N_WORKERS)))
    for k, runs in enumerate(results):
        for i, r in enumerate(runs):
            _assert_bitwise(r, serial[k], f"worker {k} call {i}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_concurrent_clip_matches_serial(dtype):
    rng = np.random.default_rng(0)
    bases = [[rng.standard_normal(50_000 + k).astype(dtype), rng.standard_normal(77).astype(dtype)]
             for k in range(N_WORKERS)]

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
    good = _job(1, np.float64, "tanh")
    expected = _run(good)
    bad_args = dict(good[0], weight_hh=np.ones((3, 4)))

    def worker(k):
        if k % 2:
            with pytest.raises(ValueError, match="weight_hh"):
                crnn.rnn_forward(**bad_args)
            return None
        return _run(good)

    with ThreadPoolExecutor(max_workers=N_WORKERS) as pool:
        results = list(pool.map(worker, range(4 * N_WORKERS)))
    for r in results:
        if r is not None:
            _assert_bitwise(r, expected, "good call next to failing ones")


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
    # "auto" picks the best available: the first of avx512 > avx2 > generic.
    order = [s for s in ("avx512", "avx2", "generic") if s in crnn.available_isas()]
    assert crnn.build_info()["isa"] == order[0]
