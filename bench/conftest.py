"""Benchmark fixtures: restore crnn's global settings after every benchmark.

The benchmarks pin thread counts (`crnn.set_num_threads`); this puts the
OpenMP default and the "auto" instruction set back afterwards so one
benchmark never changes the conditions of the next. Importing crnn is
guarded so that a broken build fails in the benchmark modules, with the
real ImportError, rather than here.
"""
from __future__ import annotations

import pytest

try:  # pragma: no cover - depends on the build
    import crnn as _crnn
except Exception:  # noqa: BLE001
    _crnn = None


@pytest.fixture(autouse=True)
def _crnn_global_settings():
    yield
    if _crnn is not None:
        if hasattr(_crnn, "set_num_threads"):
            _crnn.set_num_threads(None)
        if hasattr(_crnn, "set_isa"):
            _crnn.set_isa("auto")
