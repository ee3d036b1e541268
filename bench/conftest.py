"""Benchmark fixtures.

- Restore crnn's global settings after every benchmark: the benchmarks pin
  thread counts (`crnn.set_num_threads`); this puts the OpenMP default and
  the "auto" instruction set back afterwards so one benchmark never changes
  the conditions of the next. Importing crnn is guarded so that a broken
  build fails in the benchmark modules, with the real ImportError, rather
  than here.
- ``timed``: runs one benchmark with the metadata bench/report.py reads
  (group and extra_info), picking the number of rounds from the cost of a
  first call (see ``_time``).
- ``smoke``: True when benchmarks run untimed (``--benchmark-disable``, as
  CI does); the benchmarks then replace large shapes by small stand-ins
  (``problems.smoke_shape``) so the smoke run stays fast.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:  # pragma: no cover - depends on the build
    import crnn as _crnn
except Exception:  # noqa: BLE001
    _crnn = None

# A call slower than this is timed with a fixed number of rounds
# (benchmark.pedantic) instead of pytest-benchmark's calibrated loop ...
SLOW_CALL_S = 0.1
# ... as many as fit in about this much time, within these bounds.
SLOW_BUDGET_S = 3.0
MIN_SLOW_ROUNDS = 3
MAX_SLOW_ROUNDS = 15
# Warm-up calls before timing: for about this long.
WARMUP_BUDGET_S = 0.3


@pytest.fixture(autouse=True)
def _crnn_global_settings():
    yield
    if _crnn is not None:
        if hasattr(_crnn, "set_num_threads"):
            _crnn.set_num_threads(None)
        if hasattr(_crnn, "set_isa"):
            _crnn.set_isa("auto")


@pytest.fixture
def smoke(benchmark):
    return bool(benchmark.disabled)


def _time(benchmark, fn):
    """Time fn. Warm-up calls first, as many as fit in WARMUP_BUDGET_S
    (at least 2, at most 20; a single one if it takes over a second),
    estimate the cost (the fastest of them: on a busy machine a call may
    wait for a core); a call slower than SLOW_CALL_S then gets
    SLOW_BUDGET_S / cost rounds (3..15) of one call each, faster ones
    pytest-benchmark's calibrated rounds (--benchmark-max-time,
    --benchmark-min-rounds)."""
    if benchmark.disabled:
        return benchmark(fn)
    cost, spent, calls = float("inf"), 0.0, 0
    while calls < 20 and (calls < 2 or spent < WARMUP_BUDGET_S):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        cost, spent, calls = min(cost, dt), spent + dt, calls + 1
        if cost > 1.0:
            break
    if cost < SLOW_CALL_S:
        return benchmark(fn)
    rounds = int(min(MAX_SLOW_ROUNDS, max(MIN_SLOW_ROUNDS, SLOW_BUDGET_S / cost)))
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)


@pytest.fixture
def timed(benchmark):
    """timed(fn, group=..., **extra_info) -> fn's result (from one call)."""

    def run(fn, group, **extra_info):
        benchmark.group = group
        benchmark.extra_info.update(extra_info)
        return _time(benchmark, fn)

    return run
