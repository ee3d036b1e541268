"""Threads, instruction sets and build facts of the C engine; NumPy's BLAS threads."""

from __future__ import annotations

import contextlib
import numbers
import os
import warnings
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional

from . import _core, _provenance
from ._version import __version__

# The kernel builds of the C library's registry (csrc/crnn_isas.def lists
# them worst first), best first.
_ISA_ORDER = tuple(
    name for name, code in sorted(_core.ISAS.items(), key=lambda item: -item[1]) if code >= 0
)
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
    (at most; small problems use fewer). 1 when built without OpenMP.

    A process forked after crnn ran parallel regions (a multiprocessing
    pool, a preforking server) keeps its threads: with GNU OpenMP, whose
    threads do not survive a fork, crnn lets the forking thread's OpenMP
    threads go just before the fork and the child starts new ones. Should
    that fail, the child runs every call on one thread and this returns 1
    there, whatever was set.
    """
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
        raise ValueError(
            f"instruction set {name!r} is not available here; available: {available_isas()}"
        )


def build_info() -> Dict[str, Any]:
    """Facts about the build and the running machine.

    Keys: "version"; "openmp" (built with OpenMP); "isa" (the kernels in
    use) and "isas" (those this CPU can run, best first); "compiler" (that
    built the C engine); "num_threads" (of the next call); "build" (the build
    stamp: "kind" -- "wheel" for a binary wheel made for distribution,
    "source" for a build on the machine it runs on, "unknown" without a
    stamp -- and "date", "git_revision", "cflags", "python", "numpy" built
    with...); "wheel" (the tag of the wheel crnn was installed from, e.g.
    "cp312-cp312-manylinux_2_34_x86_64", or None); "describe" (the build in
    one line, as ``crnn --version`` prints it).
    """
    return {
        "version": __version__,
        "openmp": bool(_core.have_openmp()),
        "isa": _core.get_isa(),
        "isas": available_isas(),
        "compiler": _core.compiler(),
        "num_threads": get_num_threads(),
        "build": dict(_provenance.build_stamp()),
        "wheel": _provenance.wheel_tag(),
        "describe": _provenance.describe(),
    }


def get_include() -> str:
    """The folder of crnn's C headers, for extensions that call its kernels.

    It holds ``crnn.h`` (the C interface), ``crnn_api.h`` (the table of
    those functions that crnn publishes as the capsule
    ``crnn._core._C_API``, and ``crnn_import_api()`` to fetch it) and the
    ``.def`` files crnn.h includes. Build against it as against NumPy::

        Extension("myext", ["myext.c"], include_dirs=[crnn.get_include()])

    From Cython, ``from crnn.libcrnn cimport *`` declares the same (the
    ``.pxd`` is installed with crnn). See crnn_api.h for an example.
    """
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "include")


@contextlib.contextmanager
def limit_blas_threads(n: int = 1) -> Iterator["BlasLimit"]:
    """Run a block with NumPy's BLAS (OpenBLAS, MKL, BLIS) on at most `n` threads.

    A training loop alternates crnn's C calls, which use every core through
    OpenMP, with many small NumPy products (a Linear head, a loss, the
    optimizer's update). BLAS threads keep spinning after each product and
    then compete with crnn's threads for the cores; with one BLAS thread
    such a loop often runs about twice as fast (more on a busy machine)::

        with crnn.limit_blas_threads() as limit:
            print(limit)     # BLAS on at most 1 thread: OpenBLAS (...) 2 -> 1 thread via ...
            for x, y in batches:
                ...

    How: with threadpoolctl when it is importable (``pip install
    "crnn[threads]"``); otherwise crnn finds the BLAS libraries loaded in
    the process itself (on Linux, from ``/proc/self/maps``: NumPy's
    scipy-openblas, OpenBLAS, MKL, BLIS) and sets their thread counts with
    ctypes (see `crnn._blas`). The counts found are restored when the block
    ends, also on an exception. A BLAS library has one setting per process,
    so the limit holds for every thread of the process while the block
    runs; overlapping blocks (nested, or in several threads) keep the
    smallest limit until the last one ends. crnn's own thread count is not
    changed (see `set_num_threads`).

    When nothing can be limited (no BLAS library crnn can control, e.g. on
    macOS or Windows without threadpoolctl) it warns with a RuntimeWarning
    that says what to install, and the block runs as it is.

    Yields
    ------
    crnn._blas.BlasLimit
        True when a limit is in force. ``.via`` is "threadpoolctl", "ctypes"
        or None; ``.libraries`` lists each library (kind, path, the API
        used, its thread count before and inside the block); ``str()`` says
        it in one line.

    Raises
    ------
    TypeError, ValueError
        If `n` is not an integer >= 1.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an integer >= 1, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n}")
    from . import _blas  # ctypes and /proc are touched only when a block runs

    n = int(n)
    found = _blas.limit_with_threadpoolctl(n)
    if found is not None:
        limit, undo = found
    else:
        limit, undo = _blas.limit_with_ctypes(n)
    if not limit:
        warnings.warn(
            f"crnn.limit_blas_threads could not limit NumPy's BLAS threads: {limit.reason}. "
            "Training may run at half speed. Install threadpoolctl (pip install threadpoolctl, or "
            "pip install 'crnn[threads]'), or set OPENBLAS_NUM_THREADS=1 (MKL_NUM_THREADS=1 "
            "for MKL) before starting Python.",
            RuntimeWarning,
            stacklevel=3,
        )
    try:
        yield limit
    finally:
        if undo is not None:
            undo.undo()


if TYPE_CHECKING:  # pragma: no cover
    from ._blas import BlasLimit
