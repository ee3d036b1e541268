"""Bitwise reproducibility: same numbers for 1, 2, 3 and 4 threads, and on
repeated calls (fixed reduction order, no races)."""
from __future__ import annotations

import numpy as np
import pytest

import crnn
from helpers import make_rnn_problem

ISAS = crnn.available_isas()
THREADS = [1, 2, 3, 4]
GRAD_FIELDS = crnn.RNNGrads._fields

# B not a multiple of any thread count > 1, and one problem with many rows
# so every thread gets work; I and H odd so vector tails are exercised.
# Work is only cut into slices when each gets about 1M multiply-adds (the
# recurrence counts all T steps). The first shape stays whole; the others split
# the recurrence into up to 4 slices, and the last also every large product.
SHAPES = [(11, 13, 19, 37), (20, 64, 33, 70), (8, 67, 45, 90), (30, 96, 64, 128)]


def _run(args, nl, dout, dh_n):
    out, h_n, cache = crnn.rnn_forward(**args, nonlinearity=nl)
    g = crnn.rnn_backward(dout, dh_n, cache)
    # Copies, so a later call cannot alias what we compare.
    return [out.copy(), h_n.copy()] + [
        None if getattr(g, f) is None else getattr(g, f).copy() for f in GRAD_FIELDS
    ]


NAMES = ["out", "h_n"] + list(GRAD_FIELDS)


def _assert_bitwise(results, ref, ctx):
    for name, a, b in zip(NAMES, results, ref):
        if b is None:
            assert a is None, f"{ctx}: {name}"
            continue
        assert a.dtype == b.dtype and a.shape == b.shape, f"{ctx}: {name}"
        assert np.array_equal(a, b, equal_nan=True), (
            f"{ctx}: {name} differs (max abs diff "
            f"{np.max(np.abs(a.astype(np.float64) - b)):.3e})")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T%d-B%d-I%d-H%d" % s)
@pytest.mark.parametrize("nl", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_threads_bitwise_identical(dtype, isa, nl, shape):
    crnn.set_isa(isa)
    T, B, I, H = shape
    args = make_rnn_problem(T, B, I, H, dtype, seed=B, lengths="zeros")
    rng = np.random.default_rng(99)
    dout = rng.standard_normal((T, B, H)).astype(dtype)
    dh_n = rng.standard_normal((B, H)).astype(dtype)
    results = {}
    for n in THREADS:
        crnn.set_num_threads(n)
        if crnn.build_info()["openmp"]:
            assert crnn.get_num_threads() == n
        results[n] = _run(args, nl, dout, dh_n)
    for n in THREADS[1:]:
        _assert_bitwise(results[n], results[1], f"threads={n} vs 1")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_threads_bitwise_no_lengths_no_h0(dtype, isa):
    crnn.set_isa(isa)
    args = make_rnn_problem(15, 29, 24, 48, dtype, seed=1, h0=False)
    rng = np.random.default_rng(5)
    dout = rng.standard_normal((15, 29, 48)).astype(dtype)
    results = {}
    for n in THREADS:
        crnn.set_num_threads(n)
        results[n] = _run(args, "tanh", dout, None)
    for n in THREADS[1:]:
        _assert_bitwise(results[n], results[1], f"threads={n} vs 1")


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_repeated_calls_identical(dtype, isa, threads):
    crnn.set_isa(isa)
    crnn.set_num_threads(threads)
    args = make_rnn_problem(12, 21, 17, 45, dtype, seed=3, lengths="random")
    rng = np.random.default_rng(6)
    dout = rng.standard_normal((12, 21, 45)).astype(dtype)
    dh_n = rng.standard_normal((21, 45)).astype(dtype)
    first = _run(args, "tanh", dout, dh_n)
    for i in range(5):
        _assert_bitwise(_run(args, "tanh", dout, dh_n), first, f"call {i + 2}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_default_thread_count_matches_explicit(dtype):
    """The OpenMP-default thread count gives the same bits as an explicit one."""
    args = make_rnn_problem(10, 17, 9, 23, dtype, seed=8, lengths="random")
    rng = np.random.default_rng(7)
    dout = rng.standard_normal((10, 17, 23)).astype(dtype)
    crnn.set_num_threads(None)
    default = _run(args, "sigmoid", dout, None)
    crnn.set_num_threads(1)
    single = _run(args, "sigmoid", dout, None)
    _assert_bitwise(default, single, "default vs 1 thread")
