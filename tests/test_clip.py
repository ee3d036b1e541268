"""clip_grad_norm / clip_grad_value: C against the reference, against values
computed by hand, PyTorch's semantics, validation, thread determinism.

Clipping (csrc/clip.c) is one build, not dispatched by instruction set, so
these tests run once rather than per ISA.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest

import crnn
from crnn import reference as ref
from crnn._testing import force_split
from helpers import REL_TOL, assert_rel_close

ENGINES = {"crnn": crnn, "reference": ref}
engine_param = pytest.mark.parametrize("engine", list(ENGINES))
dtype_param = pytest.mark.parametrize(
    "dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name
)
EPS = 1e-6  # PyTorch: clip_coef = max_norm / (total_norm + 1e-6)


def _tol(dtype):
    return REL_TOL[np.dtype(dtype).type]


def _small(dtype):
    """[-3, 4] and [[-12]]: 2-norm 13, 1-norm 19, max-norm 12."""
    return [np.array([-3.0, 4.0], dtype), np.array([[-12.0]], dtype)]


# --------------------------------------------------------------------------
# Hand-computed values
# --------------------------------------------------------------------------
HAND_NORMS = {
    2.0: 13.0,
    1.0: 19.0,
    3.0: (27.0 + 64.0 + 1728.0) ** (1 / 3),
    0.5: (math.sqrt(3) + 2.0 + math.sqrt(12)) ** 2,
    float("inf"): 12.0,
    "inf": 12.0,
}


@engine_param
@dtype_param
@pytest.mark.parametrize("p", list(HAND_NORMS), ids=str)
def test_hand_computed_norm_and_scaling(engine, dtype, p):
    arrays = _small(dtype)
    expected = HAND_NORMS[p]
    max_norm = 6.5
    total = ENGINES[engine].clip_grad_norm(arrays, max_norm, norm_type=p)
    assert type(total) is float
    assert total == pytest.approx(expected, rel=_tol(dtype))
    coef = max_norm / (expected + EPS)
    np.testing.assert_allclose(arrays[0], np.array([-3.0, 4.0]) * coef, rtol=_tol(dtype))
    np.testing.assert_allclose(arrays[1], np.array([[-12.0]]) * coef, rtol=_tol(dtype))
    assert arrays[0].dtype == np.dtype(dtype) and arrays[1].shape == (1, 1)


@engine_param
@dtype_param
def test_norm_of_concatenation(engine, dtype):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(dtype) for s in [(3, 4), (7,), (2, 3, 5), (1,)]]
    flat = np.concatenate([a.ravel().astype(np.float64) for a in arrays])
    expected = float(np.sqrt(np.sum(flat**2)))
    originals = [a.copy() for a in arrays]
    total = ENGINES[engine].clip_grad_norm(arrays, 1.0)
    assert total == pytest.approx(expected, rel=_tol(dtype))
    for a, o in zip(arrays, originals):
        np.testing.assert_allclose(a, o * (1.0 / (expected + EPS)), rtol=_tol(dtype))
    flat_after = np.concatenate([a.ravel().astype(np.float64) for a in arrays])
    assert np.sqrt(np.sum(flat_after**2)) == pytest.approx(1.0, rel=1e-5)


@engine_param
@dtype_param
@pytest.mark.parametrize("p", [2.0, 1.0, "inf"], ids=str)
def test_no_clipping_below_max_norm_is_bitwise_noop(engine, dtype, p):
    arrays = _small(dtype)
    originals = [a.copy() for a in arrays]
    total = ENGINES[engine].clip_grad_norm(arrays, 100.0, norm_type=p)
    assert total == pytest.approx(HAND_NORMS[p], rel=_tol(dtype))
    for a, o in zip(arrays, originals):
        assert np.array_equal(a, o)


@engine_param
@dtype_param
def test_max_norm_zero_zeroes_everything(engine, dtype):
    arrays = _small(dtype)
    total = ENGINES[engine].clip_grad_norm(arrays, 0.0)
    assert total == pytest.approx(13.0, rel=_tol(dtype))
    for a in arrays:
        assert not np.any(a)


@engine_param
@dtype_param
def test_all_zero_arrays(engine, dtype):
    arrays = [np.zeros(5, dtype), np.zeros((2, 2), dtype)]
    total = ENGINES[engine].clip_grad_norm(arrays, 1.0)
    assert total == 0.0 and type(total) is float
    assert all(not np.any(a) for a in arrays)
    assert all(not np.any(np.isnan(a)) for a in arrays)


@engine_param
def test_float32_accumulates_in_double(engine):
    """Squares of 1e30 overflow float32 and of 1e-30 underflow it; the norm
    must still come out right (accumulated in float64)."""
    big = [np.full(4, 1e30, np.float32)]
    total = ENGINES[engine].clip_grad_norm(big, 1e40)
    assert total == pytest.approx(2.0 * float(np.float32(1e30)), rel=1e-6)
    tiny = [np.full(4, 1e-30, np.float32)]
    total = ENGINES[engine].clip_grad_norm(tiny, 1.0)
    assert total == pytest.approx(2.0 * float(np.float32(1e-30)), rel=1e-6)


# --------------------------------------------------------------------------
# Input forms
# --------------------------------------------------------------------------
class _ReadOnlyMapping(Mapping):
    """A Mapping that is not a dict."""

    def __init__(self, d):
        self._d = dict(d)

    def __getitem__(self, k):
        return self._d[k]

    def __iter__(self):
        return iter(self._d)

    def __len__(self):
        return len(self._d)


@engine_param
@dtype_param
@pytest.mark.parametrize("form", ["list", "tuple", "generator", "dict", "mapping"])
def test_input_forms(engine, dtype, form):
    arrays = _small(dtype)
    if form == "list":
        arg = list(arrays)
    elif form == "tuple":
        arg = tuple(arrays)
    elif form == "generator":
        arg = (a for a in arrays)
    elif form == "dict":
        arg = {"weight": arrays[0], "bias": arrays[1]}
    else:
        arg = _ReadOnlyMapping({"weight": arrays[0], "bias": arrays[1]})
    total = ENGINES[engine].clip_grad_norm(arg, 1.3)
    assert total == pytest.approx(13.0, rel=_tol(dtype))
    coef = 1.3 / (13.0 + EPS)
    np.testing.assert_allclose(arrays[0], np.array([-3.0, 4.0]) * coef, rtol=_tol(dtype))
    np.testing.assert_allclose(arrays[1], np.array([[-12.0]]) * coef, rtol=_tol(dtype))


@engine_param
@dtype_param
def test_single_ndarray(engine, dtype):
    a = np.array([[3.0, 0.0], [0.0, -4.0]], dtype)
    total = ENGINES[engine].clip_grad_norm(a, 2.5)
    assert total == pytest.approx(5.0, rel=_tol(dtype))
    np.testing.assert_allclose(
        a, np.array([[3.0, 0.0], [0.0, -4.0]]) * (2.5 / (5 + EPS)), rtol=_tol(dtype)
    )


@engine_param
@pytest.mark.parametrize("empty", [[], (), {}], ids=["list", "tuple", "dict"])
def test_empty_input(engine, empty):
    total = ENGINES[engine].clip_grad_norm(empty, 1.0)
    assert total == 0.0 and type(total) is float
    ENGINES[engine].clip_grad_value(empty, 1.0)


@engine_param
@dtype_param
def test_empty_arrays_among_others(engine, dtype):
    arrays = [np.zeros(0, dtype), np.array([3.0, 4.0], dtype), np.zeros((0, 3), dtype)]
    total = ENGINES[engine].clip_grad_norm(arrays, 1.0, norm_type="inf")
    assert total == 4.0
    np.testing.assert_allclose(arrays[1], np.array([3.0, 4.0]) / (4 + EPS), rtol=_tol(dtype))


# --------------------------------------------------------------------------
# C against the reference on random data
# --------------------------------------------------------------------------
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
@pytest.mark.parametrize("p", [2.0, 1.0, 2.5, 0.7, float("inf")], ids=str)
@dtype_param
def test_c_vs_reference_random(dtype, p, max_norm):
    rng = np.random.default_rng(int(p * 10) if math.isfinite(p) else 99)
    shapes = [(17, 33), (1000,), (3, 5, 7), (1,), (70, 70)]
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    arrays_r = [a.copy() for a in arrays]
    t_c = crnn.clip_grad_norm(arrays, max_norm, norm_type=p)
    t_r = ref.clip_grad_norm(arrays_r, max_norm, norm_type=p)
    assert type(t_c) is float
    assert abs(t_c - t_r) <= _tol(dtype) * abs(t_r)
    for a, b in zip(arrays, arrays_r):
        assert a.dtype == np.dtype(dtype)
        assert_rel_close(a, b, dtype)


@pytest.mark.parametrize("p", [2.0, 1.0, float("inf")], ids=str)
@dtype_param
def test_c_vs_reference_large(dtype, p):
    rng = np.random.default_rng(1)
    arrays = [
        rng.standard_normal(1_000_003).astype(dtype) * 1e-2,
        rng.standard_normal((300, 301)).astype(dtype),
    ]
    arrays_r = [a.copy() for a in arrays]
    t_c = crnn.clip_grad_norm(arrays, 1.0, norm_type=p)
    t_r = ref.clip_grad_norm(arrays_r, 1.0, norm_type=p)
    assert abs(t_c - t_r) <= _tol(dtype) * abs(t_r)
    for a, b in zip(arrays, arrays_r):
        assert_rel_close(a, b, dtype)


# --------------------------------------------------------------------------
# Non-finite norms
# --------------------------------------------------------------------------
@engine_param
@dtype_param
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("p", [2.0, 1.0, "inf"], ids=str)
def test_error_if_nonfinite_raises_without_modifying(engine, dtype, bad, p):
    arrays = [np.array([1.0, 2.0], dtype), np.array([3.0, bad, 5.0], dtype)]
    originals = [a.copy() for a in arrays]
    with pytest.raises(RuntimeError):
        ENGINES[engine].clip_grad_norm(arrays, 1.0, norm_type=p, error_if_nonfinite=True)
    for a, o in zip(arrays, originals):
        assert np.array_equal(a, o, equal_nan=True)


@engine_param
@dtype_param
def test_error_if_nonfinite_with_finite_values_clips(engine, dtype):
    arrays = _small(dtype)
    total = ENGINES[engine].clip_grad_norm(arrays, 1.0, error_if_nonfinite=True)
    assert total == pytest.approx(13.0, rel=_tol(dtype))
    np.testing.assert_allclose(arrays[0], np.array([-3.0, 4.0]) / (13 + EPS), rtol=_tol(dtype))


@engine_param
@dtype_param
@pytest.mark.parametrize("p", [2.0, "inf"], ids=str)
def test_nan_norm_propagates(engine, dtype, p):
    """PyTorch: a NaN total gives a NaN coefficient: every array becomes NaN."""
    arrays = [np.array([1.0, 2.0], dtype), np.array([np.nan, 5.0], dtype)]
    total = ENGINES[engine].clip_grad_norm(arrays, 1.0, norm_type=p)
    assert type(total) is float and math.isnan(total)
    for a in arrays:
        assert np.all(np.isnan(a))


@engine_param
@dtype_param
def test_inf_norm_scales_by_zero(engine, dtype):
    """PyTorch: an infinite total gives coefficient 0 (inf * 0 = NaN)."""
    arrays = [np.array([1.0, -2.0], dtype), np.array([np.inf, 5.0], dtype)]
    total = ENGINES[engine].clip_grad_norm(arrays, 1.0)
    assert total == math.inf and type(total) is float
    assert not np.any(arrays[0]) and arrays[1][1] == 0
    assert np.isnan(arrays[1][0])


# --------------------------------------------------------------------------
# clip_grad_value
# --------------------------------------------------------------------------
@engine_param
@dtype_param
def test_clip_grad_value_hand(engine, dtype):
    a = np.array([-5.0, -0.5, 0.0, 0.25, 3.0, np.inf, -np.inf, np.nan], dtype)
    b = {"w": np.array([[1.5, -1.5]], dtype)}
    ENGINES[engine].clip_grad_value([a], 1.0)
    ENGINES[engine].clip_grad_value(b, 1.0)
    expected = np.array([-1.0, -0.5, 0.0, 0.25, 1.0, 1.0, -1.0, np.nan], dtype)
    assert np.array_equal(a, expected, equal_nan=True)
    assert np.array_equal(b["w"], np.array([[1.0, -1.0]], dtype))


@engine_param
@dtype_param
def test_clip_grad_value_zero(engine, dtype):
    a = np.array([-5.0, 2.0, np.nan], dtype)
    ENGINES[engine].clip_grad_value(a, 0.0)
    assert a[0] == 0 and a[1] == 0 and np.isnan(a[2])


@dtype_param
def test_clip_grad_value_vs_reference(dtype):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s).astype(dtype) * 3 for s in [(1001,), (33, 17), (5,)]]
    arrays[0][::97] = np.nan
    arrays_r = [a.copy() for a in arrays]
    crnn.clip_grad_value(arrays, 1.25)
    ref.clip_grad_value(arrays_r, 1.25)
    for a, b in zip(arrays, arrays_r):
        assert np.array_equal(a, b, equal_nan=True)
        assert np.nanmax(np.abs(a)) <= np.asarray(1.25, dtype)


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------
@engine_param
@pytest.mark.parametrize("max_norm", [-1.0, -1e-300, float("nan")], ids=str)
def test_bad_max_norm(engine, max_norm):
    arrays = _small(np.float64)
    with pytest.raises(ValueError, match="max_norm"):
        ENGINES[engine].clip_grad_norm(arrays, max_norm)
    assert np.array_equal(arrays[0], [-3.0, 4.0])


@engine_param
@pytest.mark.parametrize("norm_type", [0.0, -2.0, float("nan"), "fro", "l2", "", "-inf"], ids=repr)
def test_bad_norm_type(engine, norm_type):
    arrays = _small(np.float64)
    with pytest.raises(ValueError, match="norm_type"):
        ENGINES[engine].clip_grad_norm(arrays, 1.0, norm_type=norm_type)
    assert np.array_equal(arrays[0], [-3.0, 4.0])


@engine_param
@pytest.mark.parametrize("clip_value", [-1.0, float("nan")], ids=str)
def test_bad_clip_value(engine, clip_value):
    a = np.array([5.0, -5.0])
    with pytest.raises(ValueError, match="clip_value"):
        ENGINES[engine].clip_grad_value([a], clip_value)
    assert np.array_equal(a, [5.0, -5.0])


@engine_param
@pytest.mark.parametrize("func", ["norm", "value"])
@pytest.mark.parametrize("kind", ["int64", "int32", "complex128", "bool", "object", "float16"])
def test_non_float_arrays(engine, func, kind):
    good = np.array([30.0, 40.0])
    bad = np.array([1, 2, 3]).astype(kind)
    mod = ENGINES[engine]
    with pytest.raises(TypeError):
        if func == "norm":
            mod.clip_grad_norm([good, bad], 1.0)
        else:
            mod.clip_grad_value([good, bad], 1.0)
    assert np.array_equal(good, [30.0, 40.0]), "validation must precede modification"


@engine_param
@pytest.mark.parametrize("func", ["norm", "value"])
def test_readonly_array(engine, func):
    good = np.array([30.0, 40.0])
    ro = np.array([10.0, 20.0])
    ro.flags.writeable = False
    mod = ENGINES[engine]
    with pytest.raises(ValueError):
        if func == "norm":
            mod.clip_grad_norm([good, ro], 1.0)
        else:
            mod.clip_grad_value([good, ro], 1.0)
    assert np.array_equal(good, [30.0, 40.0]), "validation must precede modification"
    assert np.array_equal(ro, [10.0, 20.0])


# --------------------------------------------------------------------------
# Threads: bitwise determinism on a large array, cut across 1-4 threads
# (forced: a thread gets a share only from about 1M elements on). Clipping's
# regions are not counted by crnn._testing.counts.
# --------------------------------------------------------------------------
@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, float("inf")], ids=str)
@dtype_param
def test_threads_bitwise_large(dtype, p):
    rng = np.random.default_rng(4)
    base = [rng.standard_normal(1_000_000).astype(dtype), rng.standard_normal(12_345).astype(dtype)]
    results = {}
    for n in (1, 2, 3, 4):
        arrays = [a.copy() for a in base]
        with force_split(n):
            total = crnn.clip_grad_norm(arrays, 10.0, norm_type=p)
        assert type(total) is float
        results[n] = (total, arrays)
    t1, a1 = results[1]
    for n in (2, 3, 4):
        tn, an = results[n]
        assert tn == t1, f"threads={n}: {tn!r} != {t1!r}"
        for x, y in zip(an, a1):
            assert np.array_equal(x, y), f"threads={n}: clipped arrays differ"


@dtype_param
def test_threads_bitwise_clip_value_large(dtype):
    rng = np.random.default_rng(5)
    base = rng.standard_normal(1_000_000).astype(dtype)
    results = []
    for n in (1, 2, 3, 4):
        a = base.copy()
        with force_split(n):
            crnn.clip_grad_value(a, 0.5)
        results.append(a)
    for a in results[1:]:
        assert np.array_equal(a, results[0])
    assert np.array_equal(results[0], np.clip(base, -0.5, 0.5))


# --------------------------------------------------------------------------
# In place on arrays that are not C-contiguous / native: same as reference
# --------------------------------------------------------------------------
def _odd_layouts(dtype, seed):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((6, 10)).astype(dtype)
    strided = base.copy()[:, ::2]  # a view into a bigger buffer
    fortran = np.asfortranarray(rng.standard_normal((5, 3)).astype(dtype))
    swapped = rng.standard_normal(7).astype(np.dtype(dtype).newbyteorder(">"))
    return [strided, fortran, swapped]


@pytest.mark.parametrize("func", ["norm", "value"])
@dtype_param
def test_in_place_on_views_and_byte_orders(dtype, func):
    arrays_c = _odd_layouts(dtype, 8)
    arrays_r = _odd_layouts(dtype, 8)
    owner_c = arrays_c[0].base
    if func == "norm":
        t_c = crnn.clip_grad_norm(arrays_c, 0.5)
        t_r = ref.clip_grad_norm(arrays_r, 0.5)
        assert abs(t_c - t_r) <= _tol(dtype) * t_r
    else:
        crnn.clip_grad_value(arrays_c, 0.3)
        ref.clip_grad_value(arrays_r, 0.3)
    for a, b in zip(arrays_c, arrays_r):
        assert a.dtype == b.dtype and a.strides == b.strides
        assert_rel_close(a, b, dtype)
    # The view wrote through to its buffer; the untouched columns are intact.
    assert owner_c is not None and np.shares_memory(owner_c, arrays_c[0])
    assert_rel_close(owner_c[:, ::2], arrays_r[0], dtype)
    np.testing.assert_array_equal(owner_c[:, 1::2], arrays_r[0].base[:, 1::2])
