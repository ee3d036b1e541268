"""Core benchmarks (pytest-benchmark): crnn's C engine side by side with the
NumPy reference (and PyTorch's CPU RNN when torch is importable).

Run and summarise::

    pytest bench/ --benchmark-only --benchmark-json=out.json
    python bench/summarize.py out.json

Smoke run (each benchmark once, untimed, as CI does)::

    pytest bench/ --benchmark-disable -q

Groups (one per shape, implementations side by side; the implementation is
stored in ``extra_info["impl"]`` for summarize.py):

- ``fwd-T{T}-B{B}-I{I}-H{H}``: forward only; impl crnn / reference / torch.
- ``fwdbwd-T{T}-B{B}-I{I}-H{H}``: forward + backward (random dout, dh_n).
- ``threads-T200-B64-I128-H256``: crnn forward + backward with 1 and with 2
  OpenMP threads (impl ``crnn-1thread`` / ``crnn-2threads``).
- ``gil-T100-B64-I128-H256``: two rnn_forward calls, each single-threaded
  (``crnn.set_num_threads(1)``), run one after the other (impl ``serial``) or
  from two Python threads at once (impl ``concurrent``). A concurrent/serial
  time well below 1 shows that the GIL is released during the C call.

All float32, tanh. No benchmark asserts a timing.
"""
from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import crnn
from crnn import reference

HAVE_TORCH = importlib.util.find_spec("torch") is not None
DTYPE = np.float32
SHAPES = [(100, 32, 32, 64), (100, 64, 128, 256), (200, 64, 128, 256)]
IMPLS = ["crnn", "reference"] + (["torch"] if HAVE_TORCH else [])


def shape_id(shape):
    return "T%d-B%d-I%d-H%d" % shape


def make_problem(shape, seed=0):
    """PyTorch-style initialisation, random input, h0 and upstream gradients."""
    T, B, I, H = shape
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(H)

    def u(*s):
        return rng.uniform(-k, k, size=s).astype(DTYPE)

    args = dict(
        x=rng.standard_normal((T, B, I)).astype(DTYPE),
        h0=(0.5 * rng.standard_normal((B, H))).astype(DTYPE),
        weight_ih=u(H, I), weight_hh=u(H, H), bias_ih=u(H), bias_hh=u(H),
    )
    dout = rng.standard_normal((T, B, H)).astype(DTYPE)
    dh_n = rng.standard_normal((B, H)).astype(DTYPE)
    return args, dout, dh_n


def _numpy_impl(mod, args, dout, dh_n):
    def fwd():
        return mod.rnn_forward(**args, nonlinearity="tanh")[0]

    def fwdbwd():
        out, h_n, cache = mod.rnn_forward(**args, nonlinearity="tanh")
        return mod.rnn_backward(dout, dh_n, cache).dx

    return fwd, fwdbwd


def _torch_impl(args, dout, dh_n):
    import torch

    T, B, I = args["x"].shape
    H = args["weight_hh"].shape[0]
    rnn = torch.nn.RNN(I, H, nonlinearity="tanh")  # time-major by default
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(rnn, name + "_l0").copy_(torch.from_numpy(args[name]))
    x = torch.from_numpy(args["x"])
    h0 = torch.from_numpy(args["h0"])[None]
    dout_t = torch.from_numpy(dout)
    dh_n_t = torch.from_numpy(dh_n)[None]

    def fwd():
        with torch.no_grad():
            return rnn(x, h0)[0]

    def fwdbwd():
        xg = x.detach().requires_grad_(True)
        rnn.zero_grad(set_to_none=True)
        out, h_n = rnn(xg, h0)
        torch.autograd.backward([out, h_n], [dout_t, dh_n_t])
        return xg.grad

    return fwd, fwdbwd


def implementation(impl, shape):
    args, dout, dh_n = make_problem(shape)
    if impl == "crnn":
        return _numpy_impl(crnn, args, dout, dh_n)
    if impl == "reference":
        return _numpy_impl(reference, args, dout, dh_n)
    if impl == "torch":
        return _torch_impl(args, dout, dh_n)
    raise AssertionError(impl)


def _check_shape(result, shape):
    T, B, I, H = shape
    assert tuple(result.shape) in ((T, B, H), (T, B, I))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_fwd(benchmark, shape, impl):
    benchmark.group = "fwd-" + shape_id(shape)
    benchmark.extra_info["impl"] = impl
    fwd, _ = implementation(impl, shape)
    _check_shape(benchmark(fwd), shape)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_fwdbwd(benchmark, shape, impl):
    benchmark.group = "fwdbwd-" + shape_id(shape)
    benchmark.extra_info["impl"] = impl
    _, fwdbwd = implementation(impl, shape)
    _check_shape(benchmark(fwdbwd), shape)


THREADS_SHAPE = (200, 64, 128, 256)


@pytest.mark.parametrize("threads", [1, 2])
def test_threads(benchmark, threads):
    benchmark.group = "threads-" + shape_id(THREADS_SHAPE)
    benchmark.extra_info["impl"] = "crnn-1thread" if threads == 1 else f"crnn-{threads}threads"
    benchmark.extra_info["threads"] = threads
    crnn.set_num_threads(threads)
    _, fwdbwd = implementation("crnn", THREADS_SHAPE)
    _check_shape(benchmark(fwdbwd), THREADS_SHAPE)


GIL_SHAPE = (100, 64, 128, 256)


@pytest.fixture(scope="module")
def two_workers():
    with ThreadPoolExecutor(max_workers=2) as pool:
        # Start both threads now so thread creation is not timed.
        list(pool.map(lambda _: None, range(2)))
        yield pool


@pytest.mark.parametrize("mode", ["serial", "concurrent"])
def test_gil(benchmark, mode, two_workers):
    benchmark.group = "gil-" + shape_id(GIL_SHAPE)
    benchmark.extra_info["impl"] = mode
    crnn.set_num_threads(1)
    problems = [make_problem(GIL_SHAPE, seed=s)[0] for s in (1, 2)]

    def call(args):
        return crnn.rnn_forward(**args, nonlinearity="tanh")[0]

    if mode == "serial":
        def run():
            return [call(a) for a in problems]
    else:
        def run():
            return list(two_workers.map(call, problems))

    outs = benchmark(run)
    assert len(outs) == 2
    for o in outs:
        _check_shape(o, GIL_SHAPE)
