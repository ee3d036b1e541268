"""Threads, instruction sets and build facts of the C engine; NumPy's BLAS threads."""
from __future__ import annotations

import contextlib
import numbers
from typing import Any, Dict, Iterator, List, Optional

from . import _core
from ._version import __version__

_ISA_ORDER = ("avx512", "avx2", "generic")
_MAX_THREADS = 4096


def set_num_threads(n: Optional[int]) -> None:
    """Fix the number of threads of every later crnn call (from any thread).

    n >= 1 fixes the count; None or 0 returns to OpenMP's default, read at
    each call (OMP_NUM_THREADS, and threadpoolctl's limits, which apply to
    the Python thread that set them). A count fixed here is process-wide and
    takes precedence over those. Results do not depend on the count.

    With the default, crnn also watches for a busy machine: when a parallel
    call finds its threads queued behind other processes, the following
    calls run on one thread for a while (longer each time it recurs). A
    count fixed here is always used as given.
    """
    if n is None:
        _core.set_num_threads(0)
        return
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an integer >= 0 or None, got {type(n).__name__}")
    if not 0 <= n <= _MAX_THREADS:
        raise ValueError(f"n must be in [0, {_MAX_THREADS}] (0 means the OpenMP default), got {n}")
    _core.set_num_threads(int(n))


def get_num_threads() -> int:
    """The number of threads the next crnn call from this thread will use
    (at most; small problems use fewer). 1 when built without OpenMP."""
    return int(_core.get_num_threads())


def available_isas() -> List[str]:
    """Kernel builds this CPU can run, best first (e.g. ['avx512', 'avx2', 'generic'])."""
    return [name for name in _ISA_ORDER if _core.isa_supported(name)]


def set_isa(name: str) -> None:
    """Use one kernel build: 'auto' (the best, the default), or one of
    available_isas(). Meant for tests and benchmarks; process-wide."""
    if not isinstance(name, str) or name not in ("auto",) + _ISA_ORDER:
        raise ValueError(f"name must be 'auto' or one of {_ISA_ORDER}, got {name!r}")
    if not _core.set_isa(name):
        raise ValueError(f"instruction set {name!r} is not available here; available: {available_isas()}")


def build_info() -> Dict[str, Any]:
    """Facts about the build and the running machine."""
    return {
        "version": __version__,
        "openmp": bool(_core.have_openmp()),
        "isa": _core.get_isa(),
        "isas": available_isas(),
        "compiler": _core.compiler(),
        "num_threads": get_num_threads(),
    }


@contextlib.contextmanager
def limit_blas_threads(n: int = 1) -> Iterator[bool]:
    """Run a block with NumPy's BLAS (OpenBLAS, MKL, ...) on at most `n` threads.

    A training loop alternates crnn's C calls, which use every core through
    OpenMP, with many small NumPy products (a Linear head, a loss, the
    optimizer's update). BLAS threads keep spinning after each product and
    then compete with crnn's threads for the cores; with one BLAS thread
    such a loop often runs several times faster (more so on a busy machine)::

        with crnn.limit_blas_threads():
            for x, y in batches:
                ...

    The limit is set with threadpoolctl (``pip install "crnn[threads]"``)
    and undone when the block ends. Without threadpoolctl this does nothing. A
    BLAS library has one setting per process, so the limit holds for every
    thread of the process while the block runs. crnn's own thread count is
    not changed (see `set_num_threads`).

    Yields
    ------
    bool
        True when a limit is in force, False when nothing could be done.

    Raises
    ------
    TypeError, ValueError
        If `n` is not an integer >= 1.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an integer >= 1, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n}")
    limiter = _blas_limiter(int(n))
    try:
        yield limiter is not None
    finally:
        if limiter is not None:
            limiter.restore_original_limits()


def _blas_limiter(n: int) -> Any:
    """threadpoolctl's limiter with BLAS on `n` threads, or None without it."""
    try:
        from threadpoolctl import threadpool_limits  # optional; imported here, not by `import crnn`
    except ImportError:
        return None
    try:
        return threadpool_limits(limits=n, user_api="blas")
    except Exception:  # noqa: BLE001 - a speed-up must never break the caller's work
        return None
