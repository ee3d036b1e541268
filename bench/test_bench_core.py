"""Core benchmarks (pytest-benchmark): crnn's C engine side by side with the
NumPy reference, PyTorch's CPU RNN (when torch is importable) and oneDNN's
vanilla RNN primitive (when libdnnl-dev is installed; see bench/native.py).

Run, then report (times, speed-ups, GFLOP/s, % of the FMA peak, targets)::

    pytest bench/ --benchmark-only --benchmark-json=out.json
    python bench/report.py --json out.json     # or just: python bench/report.py

Smoke run (each benchmark once, untimed, as CI does; shapes of more than
1e8 forward FLOP run as T<=4, B<=4 stand-ins, see problems.smoke_shape)::

    pytest bench/ --benchmark-disable -q

Groups (one per shape; the implementations side by side). Every benchmark
stores extra_info impl, mode (fwd / fwdbwd), shape [T, B, I, H], dtype,
threads and flops (problems.flops), which is what report.py reads:

- ``fwd-T{T}-B{B}-I{I}-H{H}``: forward only, float32, default thread count;
  impl crnn / reference / torch / onednn.
- ``fwdbwd-T{T}-B{B}-I{I}-H{H}``: forward + backward (random dout, dh_n).
- ``fwd-f64-...`` / ``fwdbwd-f64-...``: float64 (crnn, reference, torch).
- ``threads-fwdbwd-...`` (test_bench_threads.py): 1 and 2 threads.
- ``gil-...`` (test_bench_threads.py): the GIL released during C calls.

All tanh. The default thread count (problems.default_threads(): OpenMP's
default) is given to every implementation: crnn.set_num_threads,
torch.set_num_threads, threadpoolctl's BLAS limit for the reference, and
OpenMP's count around oneDNN's calls. No benchmark asserts a timing.
CRNN_BENCH_QUICK=1 runs a subset (problems.QUICK_SHAPES, no float64).
"""

from __future__ import annotations

import numpy as np
import pytest

import problems as P

DEFAULT_THREADS = P.default_threads()


def _cases(shapes, impls, dtype):
    """(mode, shape, impl) in run order: the members of one group run one
    after the other, so the times compared were taken close together."""
    cases = []
    for shape in shapes:
        for mode in P.MODES:
            for impl in impls:
                reason = P.unavailable(impl, dtype) if impl in ("torch", "onednn") else None
                marks = [pytest.mark.skip(reason=reason)] if reason else []
                cases.append(
                    pytest.param(
                        mode, shape, impl, marks=marks, id=f"{mode}-{P.shape_id(shape)}-{impl}"
                    )
                )
    return cases


@pytest.mark.parametrize("mode, shape, impl", _cases(P.shapes(), P.IMPLS, np.float32))
def test_rnn(timed, smoke, mode, shape, impl):
    P.run_case(timed, smoke, mode, shape, impl, np.float32, DEFAULT_THREADS, mode)


@pytest.mark.skipif(P.quick(), reason="CRNN_BENCH_QUICK: no float64")
@pytest.mark.parametrize(
    "mode, shape, impl", _cases(P.F64_SHAPES, ("crnn", "reference", "torch"), np.float64)
)
def test_rnn_float64(timed, smoke, mode, shape, impl):
    P.run_case(timed, smoke, mode, shape, impl, np.float64, DEFAULT_THREADS, mode + "-f64")
