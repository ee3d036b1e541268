"""Thread benchmarks (pytest-benchmark); see test_bench_core.py for running.

- ``threads-fwdbwd-T{T}-B{B}-I{I}-H{H}``: forward + backward, float32, with
  1 and with 2 threads, for crnn, torch and oneDNN (extra_info impl and
  threads); at problems.THREAD_SHAPES.
- ``gil-T100-B64-I128-H256``: two crnn.rnn_forward calls, each
  single-threaded (``crnn.set_num_threads(1)``), run one after the other
  (impl ``serial``) or from two Python threads at once (impl
  ``concurrent``). A concurrent/serial time well below 1 shows that the GIL
  is released during the C call.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import crnn
import problems as P

THREAD_COUNTS = (1, 2)


def _thread_cases():
    cases = []
    for shape in P.THREAD_SHAPES:
        for impl in ("crnn", "torch", "onednn"):
            reason = P.unavailable(impl)
            for n in THREAD_COUNTS:
                marks = [pytest.mark.skip(reason=reason)] if reason else []
                cases.append(
                    pytest.param(shape, impl, n, marks=marks, id=f"{P.shape_id(shape)}-{impl}-{n}")
                )
    return cases


@pytest.mark.skipif(P.quick(), reason="CRNN_BENCH_QUICK: no thread scaling")
@pytest.mark.parametrize("shape, impl, threads", _thread_cases())
def test_threads(timed, smoke, shape, impl, threads):
    P.run_case(timed, smoke, "fwdbwd", shape, impl, np.float32, threads, "threads-fwdbwd")


@pytest.fixture(scope="module")
def two_workers():
    with ThreadPoolExecutor(max_workers=2) as pool:
        # Start both threads now so thread creation is not timed.
        list(pool.map(lambda _: None, range(2)))
        yield pool


@pytest.mark.parametrize("mode", ["serial", "concurrent"])
def test_gil(timed, smoke, mode, two_workers):
    crnn.set_num_threads(1)
    shape = P.smoke_shape(P.GIL_SHAPE) if smoke else P.GIL_SHAPE
    problems = [P.make_problem(shape, seed=s)[0] for s in (1, 2)]

    def call(args):
        return crnn.rnn_forward(**args, nonlinearity="tanh")[0]

    if mode == "serial":

        def run():
            return [call(a) for a in problems]
    else:

        def run():
            return list(two_workers.map(call, problems))

    outs = timed(
        run,
        group="gil-" + P.shape_id(P.GIL_SHAPE),
        impl=mode,
        mode="fwd",
        shape=list(P.GIL_SHAPE),
        dtype="float32",
        threads=1,
        flops=2 * P.flops(P.GIL_SHAPE, "fwd"),
    )
    assert len(outs) == 2
    for o in outs:
        P.check_result(o, shape)
