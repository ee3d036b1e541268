"""Benchmark problems and implementations, shared by the pytest-benchmark
suite (bench/test_bench_*.py), bench/memory.py and bench/report.py.

No pytest here. Everything is time-major Elman RNN, tanh:

    h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)

except the LSTM / GRU problems (``make_gated_problem``, with the gate
count as a FLOP factor; oneDNN runs them through ``onednn_impl`` too).

FLOP counting (``flops``): only the matrix products, 2 FLOP per multiply-add;
bias adds, tanh and its derivative are O(T·B·H) and left out.

- forward: per step x_t W_ih^T (2·B·I·H) and h_{t-1} W_hh^T (2·B·H·H):
  ``fwd = 2·T·B·H·(I + H)``.
- backward: four products of the same sizes: dh_{t-1} = da_t W_hh
  (2·B·H·H per step), dx = da W_ih (2·T·B·H·I), dW_hh = Σ da_t^T h_{t-1}
  (2·T·B·H·H), dW_ih = Σ da_t^T x_t (2·T·B·H·I), so ``bwd = 2·fwd`` and
  ``fwdbwd = 3·fwd = 6·T·B·H·(I + H)``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os

import numpy as np

import crnn
from crnn import reference
from crnn.apps import bench as _app_bench

# (T, B, I, H): small-device inference, training sizes, streaming batch 1,
# large training.
SHAPES = [
    (672, 1, 32, 32),
    (96, 1, 64, 64),
    (100, 32, 32, 64),
    (100, 64, 128, 256),
    (200, 256, 64, 128),
    (1000, 1, 32, 128),
    (50, 64, 512, 1024),
    (50, 32, 1760, 1760),
]
# CRNN_BENCH_QUICK=1 (report.py --quick): a subset that still shows every
# kind of target (small H, streaming, the FMA-peak shape).
QUICK_SHAPES = [
    (96, 1, 64, 64),
    (100, 32, 32, 64),
    (100, 64, 128, 256),
    (1000, 1, 32, 128),
    (50, 64, 512, 1024),
]
F64_SHAPES = [(100, 32, 32, 64), (100, 64, 128, 256)]
THREAD_SHAPES = [(200, 64, 128, 256), (50, 64, 512, 1024)]
GIL_SHAPE = (100, 64, 128, 256)

IMPLS = ("crnn", "reference", "torch", "onednn")
# The gated cells (bench/test_bench_gated.py) and their gate counts.
GATED_CELLS = {"lstm": 4, "gru": 3}
MODES = ("fwd", "fwdbwd")

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def quick():
    return os.environ.get("CRNN_BENCH_QUICK", "").strip().lower() in ("1", "true", "yes", "on")


def shapes():
    return QUICK_SHAPES if quick() else SHAPES


def default_threads():
    """The thread count every implementation gets unless a benchmark pins
    one: crnn's (OpenMP's) default, i.e. OMP_NUM_THREADS or the core count."""
    saved = crnn.get_num_threads()
    crnn.set_num_threads(None)
    n = crnn.get_num_threads()
    crnn.set_num_threads(saved if saved != n else None)
    return n


def shape_id(shape):
    return "T%d-B%d-I%d-H%d" % tuple(shape)


def flops(shape, mode):
    """Matrix-product FLOP of one call (see the module docstring)."""
    T, B, I, H = shape
    fwd = 2.0 * T * B * H * (I + H)
    return fwd if mode == "fwd" else 3.0 * fwd


def smoke_shape(shape):
    """The stand-in used when benchmarks run untimed (--benchmark-disable):
    a shape of more than 1e8 forward FLOP keeps I and H (so every kernel
    path and the weight sizes are exercised) but runs T <= 4 steps over
    B <= 4 rows; smaller shapes run as they are."""
    T, B, I, H = shape
    if flops(shape, "fwd") <= 1e8:
        return tuple(shape)
    return (min(T, 4), min(B, 4), I, H)


def make_problem(shape, dtype=np.float32, seed=0):
    """PyTorch-style initialisation, random input, h0 and upstream gradients.

    Returns (args, dout, dh_n); args are rnn_forward's keyword arguments.
    """
    return _app_bench._problem(tuple(shape), dtype, seed)


def make_gated_problem(cell, shape, seed=0):
    """An LSTM or GRU problem (float32): x, h0, the weights [weight_ih,
    weight_hh, bias_ih, bias_hh] (PyTorch-style initialisation) and the
    upstream gradients [dout, dh_n] (+ dc_n for the LSTM)."""
    T, B, I, H = shape
    G = GATED_CELLS[cell] * H
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(H)

    def u(*s):
        return rng.uniform(-k, k, size=s).astype(np.float32)

    weights = [u(G, I), u(G, H), u(G), u(G)]
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(np.float32)
    grads = [
        rng.standard_normal((T, B, H)).astype(np.float32),
        rng.standard_normal((B, H)).astype(np.float32),
    ]
    if cell == "lstm":
        grads.append(rng.standard_normal((B, H)).astype(np.float32))
    return x, h0, weights, grads


def gated_onednn_inputs(cell, x, h0, weights, grads):
    """OneDNNRNN.set_inputs's keywords for a make_gated_problem problem; the
    LSTM's c0 is h0, as in the benchmarks' crnn and torch calls."""
    inputs = dict(
        zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), weights),
        x=x,
        h0=h0,
        dout=grads[0],
        dh_n=grads[1],
    )
    if cell == "lstm":
        inputs.update(c0=h0, dc_n=grads[2])
    return inputs


def unavailable(impl, dtype=np.float32):
    """None when `impl` can run here (for `dtype`), else the reason."""
    if impl in ("crnn", "reference"):
        return None
    if impl == "torch":
        return None if HAVE_TORCH else "torch is not installed (pip install torch==2.13.0)"
    if impl == "onednn":
        if np.dtype(dtype) != np.float32:
            return "oneDNN's RNN primitive has no float64"
        from native import onednn_unavailable_reason

        return onednn_unavailable_reason()
    raise ValueError(impl)


class Impl:
    """One implementation on one problem: ``fwd()`` and ``fwdbwd()`` callables
    plus ``threads(n)``, a context manager that runs them on n threads, and
    ``close()``. Each callable returns an array to sanity-check (out or dx),
    or None (oneDNN keeps its results in its own memory)."""

    def __init__(self, fwd, fwdbwd, threads, close=lambda: None):
        self.fwd, self.fwdbwd, self.threads, self.close = fwd, fwdbwd, threads, close

    def call(self, mode):
        return self.fwd if mode == "fwd" else self.fwdbwd


@contextlib.contextmanager
def _crnn_threads(n):
    saved = crnn.get_num_threads()
    crnn.set_num_threads(n)
    try:
        yield
    finally:
        # crnn.set_num_threads(None) means "OpenMP's default": put back the
        # setting rather than the number when nothing was pinned.
        crnn.set_num_threads(None if saved == default_threads() else saved)


@contextlib.contextmanager
def _torch_threads(n):
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _numpy_impl(mod, args, dout, dh_n, threads_cm):
    calls = _app_bench._numpy_calls(mod, args, dout, dh_n)
    return Impl(calls["fwd"], calls["fwdbwd"], threads_cm)


def _torch_impl(args, dout, dh_n):
    # The torch.nn.RNN set-up is the one `crnn bench` times.
    calls = _app_bench._torch_calls(args, dout, dh_n)
    return Impl(calls["fwd"], calls["fwdbwd"], _torch_threads)


def onednn_impl(shape, inputs, threads, cell="rnn"):
    """An Impl of oneDNN's `cell` on `shape`, with `inputs` (the keywords of
    native.OneDNNRNN.set_inputs) starting on `threads` threads."""
    from native import OneDNNRNN

    handles = {}

    def handle(backward):
        # Created on first use (primitive creation is not timed), with the
        # thread count of the enclosing threads() block.
        key = (backward, state["threads"])
        if key not in handles:
            r = OneDNNRNN(*shape, threads=state["threads"], backward=backward, cell=cell)
            r.set_inputs(**inputs)
            handles[key] = r
        return handles[key]

    state = {"threads": threads}

    def fwd():
        handle(False).run()  # results stay in oneDNN's memory

    def fwdbwd():
        handle(True).run()

    @contextlib.contextmanager
    def threads_cm(n):
        saved = state["threads"]
        state["threads"] = n
        try:
            yield
        finally:
            state["threads"] = saved

    def close():
        for r in handles.values():
            r.close()
        handles.clear()

    return Impl(fwd, fwdbwd, threads_cm, close)


def implementation(impl, shape, dtype=np.float32, seed=0):
    """An Impl of `impl` on a fresh problem of `shape` and `dtype`."""
    args, dout, dh_n = make_problem(shape, dtype, seed)
    if impl == "crnn":
        return _numpy_impl(crnn, args, dout, dh_n, _crnn_threads)
    if impl == "reference":
        return _numpy_impl(reference, args, dout, dh_n, crnn.limit_blas_threads)
    if impl == "torch":
        return _torch_impl(args, dout, dh_n)
    if impl == "onednn":
        return onednn_impl(shape, dict(args, dout=dout, dh_n=dh_n), default_threads())
    raise ValueError(impl)


def check_result(result, shape):
    """A sanity check of what a benchmarked call returned (None: nothing)."""
    if result is None:
        return
    T, B, I, H = shape
    assert tuple(result.shape) in ((T, B, H), (T, B, I))
    assert np.isfinite(np.asarray(result)).all()


def run_case(timed, smoke, mode, shape, impl, dtype, threads, group_prefix):
    """One benchmark: `impl` on `shape` (its smoke_shape stand-in when
    `smoke`), `mode` fwd or fwdbwd, on `threads` threads, timed by the
    conftest fixture `timed` in group ``{group_prefix}-{shape_id}``."""
    real_shape = smoke_shape(shape) if smoke else tuple(shape)
    im = implementation(impl, real_shape, dtype)
    try:
        with im.threads(threads):
            result = timed(
                im.call(mode),
                group=f"{group_prefix}-{shape_id(shape)}",
                impl=impl,
                mode=mode,
                shape=list(shape),
                dtype=np.dtype(dtype).name,
                threads=threads,
                flops=flops(shape, mode),
                smoke_shape=list(real_shape) if smoke else None,
            )
        check_result(result, real_shape)
    finally:
        im.close()
