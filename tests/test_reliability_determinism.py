"""Layers give bitwise the same outputs, gradients and optimizer updates for
1, 2, 3 and 4 crnn threads (test_determinism.py does the functional API).

The problems are large enough that the C engine splits the batch rows and
the large products between threads (about a million multiply-adds per
thread), with batch sizes that no thread count divides evenly.
"""
from __future__ import annotations

import numpy as np
import pytest

import crnn

THREADS = [1, 2, 3, 4]
T, B, I, H = 16, 67, 40, 64

CONFIGS = {
    "rnn-2layer-tanh": dict(num_layers=2, nonlinearity="tanh"),
    "rnn-bi-relu-lengths": dict(bidirectional=True, nonlinearity="relu"),
    "rnn-batch_first-sigmoid": dict(batch_first=True, nonlinearity="sigmoid"),
    "rnn-dropout": dict(num_layers=2, dropout=0.25, bidirectional=True),
    "rnn-nobias-unbatched": dict(bias=False),
}


def _run_rnn(name, dtype, isa, threads):
    crnn.set_isa(isa)
    crnn.set_num_threads(threads)
    kw = CONFIGS[name]
    rng = np.random.default_rng(1)
    layer = crnn.RNN(I, H, dtype=dtype, seed=5, **kw)
    opt = crnn.optim.Adam(layer.params, lr=1e-2, clip_grad_norm=0.5)
    if name == "rnn-nobias-unbatched":
        x = rng.standard_normal((T * 4, I)).astype(dtype)
    elif kw.get("batch_first"):
        x = rng.standard_normal((B, T, I)).astype(dtype)
    else:
        x = rng.standard_normal((T, B, I)).astype(dtype)
    lengths = rng.integers(0, T + 1, size=B) if name == "rnn-bi-relu-lengths" else None
    results = []
    for _ in range(2):  # two training steps: the second sees the updated weights
        layer.zero_grad()
        out, h_n = layer(x, lengths=lengths)
        dx, dh0 = layer.backward(np.cos(out), np.sin(h_n))
        total = opt.step(layer.grads)
        results += [out, h_n, dx, dh0, np.float64(total)] + [g.copy() for g in layer.grads.values()]
    return results + [p.copy() for p in layer.params.values()]


def _run_cell(dtype, isa, threads):
    crnn.set_isa(isa)
    crnn.set_num_threads(threads)
    rng = np.random.default_rng(2)
    cell = crnn.RNNCell(I, 4 * H, dtype=dtype, seed=6)
    xs = rng.standard_normal((T, 4 * B, I)).astype(dtype)
    h, caches = None, []
    for t in range(T):
        h = cell(xs[t], h)
        caches.append(cell.cache)
    results = [h]
    dh = np.ones_like(h)
    for cache in reversed(caches):
        dx, dh = cell.backward(dh, cache=cache)
        results.append(dx)
    return results + [dh] + [g.copy() for g in cell.grads.values()]


def _assert_all_bitwise(runs, ctx):
    base = runs[THREADS[0]]
    for n in THREADS[1:]:
        assert len(runs[n]) == len(base)
        for i, (a, b) in enumerate(zip(runs[n], base)):
            assert a.dtype == b.dtype and a.shape == b.shape, f"{ctx} #{i}"
            assert np.array_equal(a, b, equal_nan=True), (
                f"{ctx}: result #{i} differs between {n} and {THREADS[0]} threads "
                f"(max abs diff {np.max(np.abs(a.astype(np.float64) - b)):.3e})")


@pytest.mark.parametrize("isa", crnn.available_isas())
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_rnn_layer_bitwise_across_threads(name, dtype, isa):
    runs = {n: _run_rnn(name, dtype, isa, n) for n in THREADS}
    _assert_all_bitwise(runs, f"{name} {np.dtype(dtype).name} {isa}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_rnncell_loop_bitwise_across_threads(dtype):
    runs = {n: _run_cell(dtype, "auto", n) for n in THREADS}
    _assert_all_bitwise(runs, f"RNNCell {np.dtype(dtype).name}")


def test_default_thread_count_and_repeats_match():
    """The OpenMP default and repeated runs give the same bits too."""
    crnn.set_num_threads(None)
    first = _run_rnn("rnn-bi-relu-lengths", np.float32, "auto", None)
    again = _run_rnn("rnn-bi-relu-lengths", np.float32, "auto", None)
    one = _run_rnn("rnn-bi-relu-lengths", np.float32, "auto", 1)
    _assert_all_bitwise({1: one, 2: first, 3: again, 4: first}, "default vs 1 thread")
