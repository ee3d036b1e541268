"""NumPy's BLAS threads: find the loaded BLAS libraries and set their thread counts.

`crnn.limit_blas_threads` (in `crnn._runtime`) uses threadpoolctl when it is
importable and this module otherwise, so that a plain ``pip install crnn``
(whose only dependency is NumPy) still limits BLAS while it trains.

How: on Linux the shared libraries mapped into the process are listed in
``/proc/self/maps``. Those whose file name is that of a BLAS library
(``libscipy_openblas*``, ``libopenblas*``, ``libmkl_rt*``, ``libblis*``,
``libblas*``, ``libcblas*``) are opened with ``RTLD_NOLOAD`` (never loading
anything new) and probed for a thread-count API:

==============  ====================================================
OpenBLAS        ``openblas_get_num_threads`` / ``openblas_set_num_threads``,
                also with the ``scipy_`` prefix and the ``64_`` / ``_64``
                suffixes of the ILP64 builds (NumPy's wheels ship
                ``scipy_openblas_set_num_threads64_``)
MKL             ``MKL_Get_Max_Threads`` / ``MKL_Set_Num_Threads``
BLIS            ``bli_thread_get_num_threads`` / ``bli_thread_set_num_threads``
==============  ====================================================

An OpenBLAS built with OpenMP threading is left alone: its setter changes
the calling thread's OpenMP setting, which crnn's own threads read too.

Nothing here runs at import time; ``import crnn`` never touches BLAS.
Elsewhere than Linux (no ``/proc/self/maps``) no library is found, and
`crnn.limit_blas_threads` warns that threadpoolctl is needed.
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

__all__ = [
    "BlasLibrary",
    "BlasLimit",
    "LimitedLibrary",
    "loaded_library_paths",
    "find_blas_libraries",
    "limit_with_threadpoolctl",
    "limit_with_ctypes",
    "MAPS",
]

#: The file listing the process's memory mappings (Linux).
MAPS = "/proc/self/maps"

_NAME_PREFIXES = ("libscipy_openblas", "libopenblas", "libmkl_rt", "libblis", "libblas", "libcblas")

_RTLD_NOLOAD = getattr(os, "RTLD_NOLOAD", 0)

_lock = threading.Lock()
_handles: Dict[str, Optional[ctypes.CDLL]] = {}


@dataclass
class BlasLibrary:
    """One loaded BLAS library whose thread count can be read and set.

    Attributes
    ----------
    kind : str
        "OpenBLAS", "MKL" or "BLIS".
    path : str
        The shared library's file.
    get_symbol, set_symbol : str
        The C functions used (``int get(void)``, ``void set(int)``).
    """

    kind: str
    path: str
    get_symbol: str
    set_symbol: str
    _get: Callable[[], int]
    _set: Callable[[int], Any]
    _default_one: bool = False  # BLIS: get() == -1 means "not threaded" (one thread)

    @property
    def filename(self) -> str:
        return os.path.basename(self.path)

    def get_num_threads(self) -> int:
        n = int(self._get())
        if self._default_one and n < 1:
            return 1
        return n

    def set_num_threads(self, n: int) -> None:
        self._set(int(n))

    def __repr__(self) -> str:
        return (
            f"BlasLibrary({self.kind}, {self.filename}, {self.set_symbol}, "
            f"{self.get_num_threads()} threads)"
        )


def loaded_library_paths(maps: str = MAPS) -> List[str]:
    """The shared libraries mapped into this process, in first-mapped order.

    Read from `maps` (``/proc/self/maps``); an empty list where there is no
    such file (not Linux) or it cannot be read.
    """
    try:
        with open(maps, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return []
    seen: Dict[str, None] = {}
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        path = parts[5].strip()
        if path.startswith("/") and ".so" in os.path.basename(path) and path not in seen:
            seen[path] = None
    return list(seen)


def _is_blas_name(path: str) -> bool:
    return os.path.basename(path).lower().startswith(_NAME_PREFIXES)


def _open(path: str) -> Optional[ctypes.CDLL]:
    """A handle on an already-loaded library (never loads one), or None."""
    with _lock:
        if path not in _handles:
            try:
                _handles[path] = ctypes.CDLL(path, mode=_RTLD_NOLOAD)
            except OSError:
                _handles[path] = None
        return _handles[path]


def _function(lib: ctypes.CDLL, name: str, restype: Any, argtypes: List[Any]) -> Optional[Any]:
    try:
        f = getattr(lib, name)
    except AttributeError:
        return None
    f.restype = restype
    f.argtypes = argtypes
    return f


def _probe(path: str, lib: ctypes.CDLL) -> Tuple[Optional[BlasLibrary], Optional[str]]:
    """(the library's thread API, None) or (None, why it cannot be used)."""
    for prefix in ("scipy_", ""):
        for suffix in ("64_", "_64", ""):
            get = _function(lib, f"{prefix}openblas_get_num_threads{suffix}", ctypes.c_int, [])
            set_ = _function(lib, f"{prefix}openblas_set_num_threads{suffix}", None, [ctypes.c_int])
            if get is None or set_ is None:
                continue
            parallel = _function(lib, f"{prefix}openblas_get_parallel{suffix}", ctypes.c_int, [])
            if parallel is not None and parallel() == 2:
                return None, (
                    f"{os.path.basename(path)} is an OpenBLAS with OpenMP threads; "
                    f"its setter would change crnn's OpenMP threads too"
                )
            return BlasLibrary("OpenBLAS", path, get.__name__, set_.__name__, get, set_), None
    get = _function(lib, "MKL_Get_Max_Threads", ctypes.c_int, [])
    set_ = _function(lib, "MKL_Set_Num_Threads", None, [ctypes.c_int])
    if get is not None and set_ is not None:
        return BlasLibrary("MKL", path, get.__name__, set_.__name__, get, set_), None
    get = _function(lib, "bli_thread_get_num_threads", ctypes.c_int, [])
    set_ = _function(lib, "bli_thread_set_num_threads", None, [ctypes.c_int])
    if get is not None and set_ is not None:
        return BlasLibrary(
            "BLIS", path, get.__name__, set_.__name__, get, set_, _default_one=True
        ), None
    return None, f"{os.path.basename(path)} has no thread-count API crnn knows"


def find_blas_libraries(paths: Optional[List[str]] = None) -> Tuple[List[BlasLibrary], List[str]]:
    """The loaded BLAS libraries whose thread counts can be set.

    Parameters
    ----------
    paths : list of str or None
        The loaded libraries to consider; None reads `loaded_library_paths`.

    Returns
    -------
    libraries : list of BlasLibrary
    notes : list of str
        Why a library with a BLAS name was left out (for messages).
    """
    if paths is None:
        paths = loaded_library_paths()
    found: List[BlasLibrary] = []
    notes: List[str] = []
    for path in paths:
        if not _is_blas_name(path):
            continue
        lib = _open(path)
        if lib is None:
            notes.append(f"{os.path.basename(path)} could not be opened")
            continue
        blas, why = _probe(path, lib)
        if blas is not None:
            found.append(blas)
        elif why:
            notes.append(why)
    return found, notes


# --------------------------------------------------------------------------
# Limits: what `crnn.limit_blas_threads` does and reports
# --------------------------------------------------------------------------

_KINDS = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS", "flexiblas": "FlexiBLAS"}


@dataclass(frozen=True)
class LimitedLibrary:
    """One BLAS library under a limit: which, through what, and its thread counts."""

    kind: str  # "OpenBLAS", "MKL", "BLIS", ...
    path: str
    api: str  # "threadpoolctl", or the C function called (ctypes)
    before: int  # threads when the block began
    after: int  # threads inside the block

    def __str__(self) -> str:
        return (
            f"{self.kind} ({os.path.basename(self.path)}) {self.before} -> {self.after} "
            f"thread{'s' if self.after != 1 else ''} via {self.api}"
        )


class BlasLimit:
    """What `crnn.limit_blas_threads` did; true when a limit is in force.

    Attributes
    ----------
    n : int
        The limit asked for.
    via : str or None
        "threadpoolctl", "ctypes" (crnn's own limiter), or None when nothing
        could be limited.
    libraries : tuple of LimitedLibrary
        Each BLAS library found, with its thread count before and inside the
        block.
    notes : tuple of str
        Why libraries with a BLAS name were left alone, if any.
    """

    def __init__(
        self,
        n: int,
        via: Optional[str],
        libraries: Sequence[LimitedLibrary],
        notes: Sequence[str] = (),
    ) -> None:
        self.n = n
        self.via = via
        self.libraries = tuple(libraries)
        self.notes = tuple(notes)

    def __bool__(self) -> bool:
        return any(lib.after <= self.n for lib in self.libraries)

    @property
    def reason(self) -> str:
        """Why nothing is limited ("" when a limit is in force)."""
        if self:
            return ""
        if self.libraries:
            return "; ".join(f"{lib} stayed above {self.n}" for lib in self.libraries)
        where = (
            "in /proc/self/maps for OpenBLAS, MKL and BLIS"
            if os.path.exists(MAPS)
            else "only on Linux (in /proc/self/maps)"
        )
        found = f" ({'; '.join(self.notes)})" if self.notes else ""
        return (
            f"no BLAS library whose thread count crnn can set is loaded{found}; crnn looks {where}"
        )

    def __str__(self) -> str:
        if not self:
            return f"BLAS threads not limited: {self.reason}"
        libs = "; ".join(str(lib) for lib in self.libraries)
        return f"BLAS on at most {self.n} thread{'s' if self.n != 1 else ''}: {libs}"

    def __repr__(self) -> str:
        return f"BlasLimit(n={self.n}, via={self.via!r}, libraries={list(self.libraries)!r})"


def _kind(internal_api: str) -> str:
    return _KINDS.get(internal_api, internal_api)


class _ThreadpoolctlLimit:
    """A limit set through threadpoolctl (its controller API, threadpoolctl >= 3)."""

    def __init__(self, limiter: Any) -> None:
        self._limiter = limiter

    def undo(self) -> None:
        self._limiter.restore_original_limits()


def limit_with_threadpoolctl(n: int) -> Optional[Tuple[BlasLimit, _ThreadpoolctlLimit]]:
    """Limit BLAS to `n` threads with threadpoolctl.

    None when threadpoolctl is not importable, fails, finds no BLAS, or
    leaves every BLAS above `n` (then nothing stays changed).
    """
    try:
        import threadpoolctl  # optional; imported here, never by `import crnn`
    except ImportError:
        return None
    try:
        blas = threadpoolctl.ThreadpoolController().select(user_api="blas")
        controllers = list(blas.lib_controllers)
        if not controllers:
            return None
        before = [c.num_threads for c in controllers]
        limiter = blas.limit(limits=n)
        libs = [
            LimitedLibrary(_kind(c.internal_api), c.filepath, "threadpoolctl", b, c.num_threads)
            for c, b in zip(controllers, before)
        ]
    except Exception:  # noqa: BLE001 - a speed-up must never break the caller's work
        return None
    limit = BlasLimit(n, "threadpoolctl", libs)
    if not limit:
        try:
            limiter.restore_original_limits()
        except Exception:  # noqa: BLE001
            pass
        return None
    return limit, _ThreadpoolctlLimit(limiter)


# Limits set through ctypes are process-wide and may overlap (nested blocks,
# several Python threads): every open block is registered, the libraries run
# on the smallest limit of the open blocks, and the counts found before the
# first block are restored when the last one ends.
_active: Dict[int, int] = {}
_saved: Dict[str, Tuple[BlasLibrary, int]] = {}
_tokens = iter(range(1, 1 << 62))


def _apply_locked() -> None:
    target = min(_active.values())
    for lib, original in _saved.values():
        want = min(original, target)
        if lib.get_num_threads() != want:
            lib.set_num_threads(want)


class _CtypesLimit:
    def __init__(self, token: int) -> None:
        self._token = token

    def undo(self) -> None:
        with _lock:
            if _active.pop(self._token, None) is None:
                return
            if _active:
                _apply_locked()
                return
            for lib, original in _saved.values():
                try:
                    if lib.get_num_threads() != original:
                        lib.set_num_threads(original)
                except Exception:  # noqa: BLE001 - restoring must not fail the caller's block
                    pass
            _saved.clear()


def limit_with_ctypes(
    n: int, paths: Optional[List[str]] = None
) -> Tuple[BlasLimit, Optional[_CtypesLimit]]:
    """Limit the BLAS libraries `find_blas_libraries` finds to at most `n` threads.

    Returns the report and the handle that undoes the limit (None when no
    library was found: nothing to undo).
    """
    libs, notes = find_blas_libraries(paths)
    if not libs:
        return BlasLimit(n, None, [], notes), None
    records = []
    with _lock:
        token = next(_tokens)
        _active[token] = n
        befores = []
        for lib in libs:
            if lib.path not in _saved:
                _saved[lib.path] = (lib, lib.get_num_threads())
            befores.append(lib.get_num_threads())
        _apply_locked()
        for lib, before in zip(libs, befores):
            records.append(
                LimitedLibrary(
                    lib.kind, lib.path, f"ctypes {lib.set_symbol}", before, lib.get_num_threads()
                )
            )
    return BlasLimit(n, "ctypes", records, notes), _CtypesLimit(token)
