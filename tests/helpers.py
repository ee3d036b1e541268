"""Shared test utilities: the numerical contract, comparisons, torch availability.

The numerical contract (README, "crnn.reference"): the C engine agrees with the
NumPy reference within a relative error of 1e-5 in float32 and 1e-12 in
float64. Problems for any registered cell come from `problems.py`;
`make_rnn_problem` is the Elman RNN's problem as named keyword arguments, for
the tests of things beyond the cells (clipping, layers, files).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
import types
from typing import Any, List, Mapping, Optional

import numpy as np

import crnn

# The numerical contract: C vs reference, array-wise relative error.
REL_TOL = {np.float32: 1e-5, np.float64: 1e-12}

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def word(name: str) -> str:
    """A regex matching `name` as a whole identifier (so "x" is not any 'x')."""
    return r"(?<![A-Za-z0-9_])" + re.escape(name) + r"(?![A-Za-z0-9_])"


def rel_error(actual, desired) -> float:
    """max |actual - desired| / max |desired| (0 when both are empty or zero)."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    if actual.size == 0:
        return 0.0
    scale = float(np.max(np.abs(desired)))
    diff = float(np.max(np.abs(actual - desired)))
    if scale == 0.0:
        return diff
    return diff / scale


def assert_rel_close(actual, desired, dtype=None, tol=None, name="array"):
    """Assert the array-wise relative error is within the contract for dtype."""
    if tol is None:
        dt = np.dtype(dtype if dtype is not None else np.asarray(desired).dtype).type
        tol = REL_TOL[dt]
    err = rel_error(actual, desired)
    assert err <= tol, f"{name}: relative error {err:.3e} > {tol:.1e}"


def _items(results: Any):
    if isinstance(results, Mapping):
        return list(results.items())
    return [(f"#{i}", v) for i, v in enumerate(results)]


def assert_results_close(
    got: Any, want: Any, dtype: Any = None, ctx: str = "", tol=None, exact: Any = None
) -> None:
    """Two sets of results (a dict by name, or a sequence) within the contract:
    the same names, None in the same places, arrays of the expected dtype and
    shape, array-wise relative error <= REL_TOL (or `tol`).

    `exact`: the same results computed in float64 (for float32 ones). Where
    the float32 `want` is itself further than the tolerance from them (a
    sum whose terms cancel, such as a bias gradient over a few rows, loses
    digits in any order of summation), `got` passes when it is as close to
    the float64 results as `want` is, within a factor 2: the contract holds
    the C engine to the reference's accuracy, not to its rounding errors.
    """
    g, w = _items(got), _items(want)
    assert [k for k, _ in g] == [k for k, _ in w], (
        f"{ctx}: {[k for k, _ in g]} != {[k for k, _ in w]}"
    )
    for (name, a), (_, b) in zip(g, w):
        if b is None:
            assert a is None, f"{ctx} {name}: expected None, got {type(a).__name__}"
            continue
        assert isinstance(a, np.ndarray), f"{ctx} {name}: {type(a).__name__}"
        expected = np.dtype(dtype) if dtype is not None else b.dtype
        assert a.dtype == expected, f"{ctx} {name}: dtype {a.dtype}, expected {expected}"
        assert a.shape == b.shape, f"{ctx} {name}: shape {a.shape} != {b.shape}"
        if exact is not None and rel_error(a, b) > (tol or REL_TOL[expected.type]):
            e = dict(_items(exact))[name]
            own = rel_error(b, e)
            assert rel_error(a, e) <= max(tol or REL_TOL[expected.type], 2 * own), (
                f"{ctx} {name}: relative error {rel_error(a, b):.3e} to the reference, "
                f"{rel_error(a, e):.3e} to float64 (the reference's own: {own:.3e})"
            )
            continue
        assert_rel_close(a, b, expected, tol=tol, name=f"{ctx} {name}")


def assert_bitwise(got: Any, want: Any, ctx: str = "") -> None:
    """Bitwise the same results (a dict by name, or a sequence): arrays equal
    in dtype, shape and every bit pattern that matters (NaN equals NaN), None
    where the other is None, Python floats equal (or both NaN)."""
    g, w = _items(got), _items(want)
    assert len(g) == len(w), f"{ctx}: {len(g)} results != {len(w)}"
    for (name, a), (_, b) in zip(g, w):
        if b is None:
            assert a is None, f"{ctx} {name}: expected None"
        elif isinstance(b, (float, int)) and not isinstance(b, np.ndarray):
            assert a == b or (a != a and b != b), f"{ctx} {name}: {a!r} != {b!r}"
        else:
            a, b = np.asarray(a), np.asarray(b)
            assert a.dtype == b.dtype and a.shape == b.shape, (
                f"{ctx} {name}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
            )
            if not np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
                diff = np.max(np.abs(a.astype(np.float64) - b)) if a.size else 0.0
                raise AssertionError(f"{ctx} {name} differs (max abs diff {diff:.3e})")


def make_rnn_problem(
    T,
    B,
    I,
    H,
    dtype=np.float64,
    *,
    seed=0,
    h0=True,
    bias=True,  # noqa: E741
    lengths=None,
):
    """Keyword arguments of ``rnn_forward``: random inputs and PyTorch-style
    U(-1/sqrt(H), 1/sqrt(H)) weights (`problems.make_problem` for the "rnn"
    cell). lengths: None, "random" (values in [1, T]), "zeros" (random, every
    other row 0) or the lengths themselves.
    """
    from crnn import cells
    from problems import make_problem

    p = make_problem(
        cells.get("rnn"), (T, B, I, H), dtype, seed=seed, states=h0, bias=bias, lengths=lengths
    )
    kw = p.inputs()
    if p.lengths is not None:
        kw["lengths"] = p.lengths
    return kw


# --------------------------------------------------------------------------
# Bad and unusual forms of one float array argument (the input batteries)
# --------------------------------------------------------------------------
def _ragged(a):
    return [[0.5] * 2, [0.5] * 3]


def _masked(a):
    return np.ma.masked_array(a, mask=np.zeros(a.shape, bool))


# kind -> (make a bad value from a good float64 array, expected exception)
BAD_ARRAYS = {
    "none": (lambda a: None, TypeError),
    "str": (lambda a: "0.5", TypeError),
    "bytes": (lambda a: b"0.5", TypeError),
    "int64": (lambda a: a.astype(np.int64), TypeError),
    "int32": (lambda a: a.astype(np.int32), TypeError),
    "uint8": (lambda a: a.astype(np.uint8), TypeError),
    "int_list": (lambda a: np.zeros(a.shape, int).tolist(), TypeError),
    "bool": (lambda a: a > 0, TypeError),
    "complex": (lambda a: a.astype(np.complex128), TypeError),
    "object": (lambda a: a.astype(object), TypeError),
    "str_array": (lambda a: a.astype(str), TypeError),
    "float16": (lambda a: a.astype(np.float16), TypeError),
    "longdouble": (lambda a: a.astype(np.longdouble), TypeError),
    "datetime": (lambda a: np.zeros(a.shape, "M8[s]"), TypeError),
    "structured": (lambda a: np.zeros(a.shape, [("v", "f8")]), TypeError),
    "dict": (lambda a: {"v": 1.0}, TypeError),
    "ragged": (_ragged, ValueError),
    "masked": (_masked, TypeError),
}
if np.dtype(np.longdouble) == np.dtype(np.float64):  # e.g. MSVC, some ARM
    del BAD_ARRAYS["longdouble"]
OPTIONAL_OK = {"none"}  # None is valid for optional arguments


def unusual(arr, kind):
    """The same values in an unusual but valid form: a strided view
    ("noncontig"), negative strides, Fortran order, a transposed view,
    read-only, big-endian or byte-swapped, or a nested list."""
    if arr is None:
        return None
    arr = np.asarray(arr)
    if kind == "noncontig":
        if not arr.ndim:
            return arr
        big = np.zeros(arr.shape[:-1] + (2 * arr.shape[-1],), arr.dtype)
        big[..., ::2] = arr
        out = big[..., ::2]
        assert arr.size <= 1 or not out.flags.c_contiguous
        return out
    if kind == "negstride":
        return np.flip(np.flip(arr).copy())
    if kind == "fortran":
        return np.asfortranarray(arr)
    if kind == "transposed":
        # A view with swapped axes: batch-major x made time-major, or a
        # weight given as the transpose of an array of the other layout.
        if arr.ndim == 3:
            return np.ascontiguousarray(arr.swapaxes(0, 1)).swapaxes(0, 1)
        return np.ascontiguousarray(arr.T).T
    if kind == "readonly":
        out = arr.copy()
        out.flags.writeable = False
        return out
    if kind == "bigendian":
        return arr.astype(arr.dtype.newbyteorder(">"))
    if kind == "byteswapped":
        return arr.astype(arr.dtype.newbyteorder("S"))
    if kind == "list":
        return arr.tolist()
    raise AssertionError(kind)


# --------------------------------------------------------------------------
# The public modules and names (the docstring walk and the docs reference)
# --------------------------------------------------------------------------
# The libraries of the adapters (optional extras): an adapter that subclasses
# its library's classes (crnn.torch) cannot be imported without it.
OPTIONAL_LIBRARIES = {"torch", "onnx", "onnxruntime", "sklearn", "dask", "distributed"}


def import_public(name: str) -> Optional[types.ModuleType]:
    """The module, or None when it needs an optional library that is absent."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # also an adapter's own message, raised from the library's
        missing = exc if isinstance(exc, ModuleNotFoundError) else exc.__cause__
        if (
            isinstance(missing, ModuleNotFoundError)
            and (missing.name or "").split(".")[0] in OPTIONAL_LIBRARIES
        ):
            return None
        raise


def public_modules() -> List[types.ModuleType]:
    """crnn and its public submodules that import here."""
    modules = [crnn]
    for info in pkgutil.walk_packages(crnn.__path__, "crnn."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            module = import_public(info.name)
            if module is not None:
                modules.append(module)
    return modules


def public_names(module: types.ModuleType) -> List[str]:
    """`__all__`, or the routines and classes a module defines itself."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isroutine(value) or inspect.isclass(value))
        and getattr(value, "__module__", None) == module.__name__
    ]
