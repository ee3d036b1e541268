"""Inference of exported models: crnn.onnx against onnxruntime, forward only.

A crnn layer (RNN tanh, LSTM, GRU; one layer, float32, PyTorch-style
initialisation) at each grid shape (T, B, I, H) of problems.shapes() is
exported with ``crnn.onnx.export`` and the same graph is run by
``crnn.onnx.load(...).run`` (crnn's kernels) and by
``onnxruntime.InferenceSession(...).run`` (CPU provider, intra-op threads =
the default thread count, as crnn's, without spinning between runs). Each call computes the output
sequence and the final state(s) from a fresh input feed.

- ``pytest bench/test_bench_onnx.py --benchmark-only``: groups
  ``onnx-<cell>-T..``, impl ``onnxruntime`` / ``crnn.onnx``. Under
  ``--benchmark-disable`` the large shapes run as problems.smoke_shape
  stand-ins.
- ``python bench/test_bench_onnx.py [--quick] [--budget S]``: the two
  sessions called in turns in one process, several rounds per case; prints
  min and median per runtime and onnxruntime's time over crnn's.

No benchmark asserts a timing; each checks the output against the other
runtime's (float32, 1e-4 relative: the sums run in different orders).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import pytest

import problems as P

if __name__ != "__main__":
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
import onnxruntime as ort  # noqa: E402

import crnn  # noqa: E402
import crnn.onnx as co  # noqa: E402

CELLS = ("rnn", "lstm", "gru")
IMPLS = ("onnxruntime", "crnn.onnx")
DEFAULT_THREADS = P.default_threads()


def sessions(cell: str, shape, seed: int = 0, threads: int = DEFAULT_THREADS):
    """({impl: call}, feeds): both runtimes on the export of one fresh layer."""
    T, B, I, H = shape
    layer = crnn.nn.Recurrent(cell, I, H, seed=seed)
    proto = co.export(layer)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Its pool's threads would otherwise spin between runs, on the cores
    # crnn's threads need in the interleaved measurement.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    runtime = ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    mine = co.load(proto)
    x = np.random.default_rng(seed).standard_normal((T, B, I)).astype(np.float32)
    feeds = {"x": x}
    return {
        "onnxruntime": lambda: runtime.run(None, feeds),
        "crnn.onnx": lambda: mine.run(None, feeds),
    }, feeds


def _same(a, b):
    scale = max(float(np.abs(b).max()), 1e-30)
    return float(np.abs(a - b).max()) / scale <= 1e-4


# --------------------------------------------------------------------------
# pytest-benchmark
# --------------------------------------------------------------------------


def _cases():
    return [
        pytest.param(cell, shape, impl, id=f"{cell}-{P.shape_id(shape)}-{impl}")
        for cell in CELLS
        for shape in P.shapes()
        for impl in IMPLS
    ]


@pytest.mark.parametrize("cell, shape, impl", _cases())
def test_onnx_inference(timed, smoke, cell, shape, impl):
    real_shape = P.smoke_shape(shape) if smoke else tuple(shape)
    crnn.set_num_threads(DEFAULT_THREADS)
    calls, _ = sessions(cell, real_shape)
    result = timed(
        calls[impl],
        group=f"onnx-{cell}-{P.shape_id(shape)}",
        impl=impl,
        mode="fwd",
        shape=list(shape),
        dtype="float32",
        threads=DEFAULT_THREADS,
        flops=({"rnn": 1, "lstm": 4, "gru": 3}[cell]) * P.flops(shape, "fwd"),
    )
    other = calls[IMPLS[1 - IMPLS.index(impl)]]()
    assert all(_same(a, b) for a, b in zip(result, other))


# --------------------------------------------------------------------------
# Interleaved run: python bench/test_bench_onnx.py
# --------------------------------------------------------------------------


def measure(cell: str, shape, budget: float, threads: int, min_rounds=5, max_rounds=200):
    """{impl: [seconds per run]}: the runtimes in turns (order alternating),
    after two warm-up runs each, until `budget` seconds are spent."""
    calls, _ = sessions(cell, shape, threads=threads)
    results = {impl: call() for impl, call in calls.items()}
    for call in calls.values():
        call()
    same = all(_same(a, b) for a, b in zip(results["crnn.onnx"], results["onnxruntime"]))
    times = {impl: [] for impl in calls}
    start = time.perf_counter()
    for r in range(max_rounds):
        for impl in IMPLS if r % 2 == 0 else IMPLS[::-1]:
            t0 = time.perf_counter()
            calls[impl]()
            times[impl].append(time.perf_counter() - t0)
        if r + 1 >= min_rounds and time.perf_counter() - start > budget:
            break
    return times, same


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="problems.QUICK_SHAPES only")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per case (default 2)")
    parser.add_argument("--cells", default=",".join(CELLS), help="default rnn,lstm,gru")
    parser.add_argument(
        "--threads", type=int, default=DEFAULT_THREADS, help="for both runtimes (default: all)"
    )
    args = parser.parse_args(argv)
    crnn.set_num_threads(args.threads)
    print(
        f"onnxruntime {ort.__version__}, crnn {crnn.__version__}, {args.threads} threads "
        "for both; ms per run (forward: output sequence and final states)"
    )
    header = (
        f"{'cell':5} {'T,B,I,H':>18} | {'ort min':>9} {'median':>9} | "
        f"{'crnn min':>9} {'median':>9} | {'ratio min':>9} {'median':>7} | same outputs"
    )
    print(header)
    print("-" * len(header))
    for cell in args.cells.split(","):
        for shape in P.QUICK_SHAPES if args.quick else P.SHAPES:
            times, same = measure(cell, shape, args.budget, args.threads)
            o, c = times["onnxruntime"], times["crnn.onnx"]
            print(
                f"{cell:5} {','.join(map(str, shape)):>18} | {min(o) * 1e3:9.3f} "
                f"{statistics.median(o) * 1e3:9.3f} | {min(c) * 1e3:9.3f} "
                f"{statistics.median(c) * 1e3:9.3f} | {min(o) / min(c):8.2f}x "
                f"{statistics.median(o) / statistics.median(c):6.2f}x | "
                f"{'yes' if same else 'NO'} ({len(o)} rounds)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
