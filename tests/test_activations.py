"""Accuracy of the C activations (tanh, sigmoid), measured in ulps.

The kernels' activations are reached through the public API, exactly: one
step (T = 1) with no initial state, so out = f(x W_ih^T + b_ih + b_hh).
- Finite grids: W_ih the identity and both biases -0.0, so the
  pre-activation is x itself (x * 1 plus exact zeros; x + -0 is x).
  test_transport_is_exact checks that premise with relu.
- Special values (+-0, +-inf, NaN, subnormals): I = 0 and b_ih the values,
  b_hh = -0.0, so the pre-activation is b_ih bit for bit, sign of zero
  included (a product would add +0 and turn -0 into +0). H is odd there, so
  the partial-vector tail is exercised too.

"Exact" values come from np.longdouble (x86's 64-bit significand: 11 bits
beyond float64), rounded to the tested dtype. Every kernel build is tested
(crnn.available_isas()).
"""

from __future__ import annotations

import numpy as np
import pytest

import crnn
from crnn import functional as F

ISAS = crnn.available_isas()
HAVE_LONGDOUBLE = np.finfo(np.longdouble).nmant >= 63
needs_longdouble = pytest.mark.skipif(
    not HAVE_LONGDOUBLE, reason="np.longdouble is no wider than float64 here"
)

# Max ulp distance to the exact value. float64: ~1 ulp (measured <= 1.07).
# float32: tanh ~1.5 ulp as it claims (measured 1.24); sigmoid is the plain
# 1 / (1 + e^-x), three roundings (measured 2.22), and only down to float32's
# smallest normal result (see test_float32_sigmoid_below_smallest_normal).
EXACT_ULP = {
    (np.float64, "tanh"): 1.5,
    (np.float64, "sigmoid"): 1.5,
    (np.float32, "tanh"): 1.5,
    (np.float32, "sigmoid"): 2.5,
}
# Max ulp distance to NumPy's value, whose own error is part of the distance:
# NumPy's float32 1 / (1 + exp(-x)) is itself 3.2 ulp from exact near x = -16.7
# (1 + e^-x rounds), its float64 one 2.5 ulp near x = -36.75.
NUMPY_ULP = {
    (np.float64, "tanh"): 2.0,
    (np.float64, "sigmoid"): 2.0,
    (np.float32, "tanh"): 2.0,
    (np.float32, "sigmoid"): 4.0,
}
H = 64  # a multiple of every vector width


def ulp_distance(actual, desired, dtype):
    """|actual - desired| in ulps of desired rounded to dtype (elementwise).

    desired may be wider (longdouble). Equal values (also +-inf) and NaN
    against NaN are 0; NaN against a number is inf.
    """
    actual = np.asarray(actual, dtype=dtype)
    with np.errstate(all="ignore"):
        rounded = np.asarray(desired).astype(dtype)
        spacing = np.spacing(np.abs(rounded)).astype(np.longdouble)
        d = np.abs(actual.astype(np.longdouble) - np.asarray(desired, np.longdouble)) / spacing
    same = (actual == rounded) | (np.isnan(actual) & np.isnan(rounded))
    d = np.where(same, 0, d)
    return np.where(np.isnan(d), np.inf, d)


def activate(values, dtype, nonlinearity):
    """f(values) by the C engine, the pre-activation being values exactly.

    values must be finite (the identity projection multiplies each by 0 too)."""
    values = np.asarray(values, dtype=dtype)
    n = values.size
    x = np.zeros(-(-n // H) * H, dtype=dtype)
    x[:n] = values
    minus_zero = np.full(H, -0.0, dtype=dtype)
    out, _, _ = F.rnn_forward(
        x.reshape(1, -1, H),
        None,
        np.eye(H, dtype=dtype),
        np.zeros((H, H), dtype=dtype),
        minus_zero,
        minus_zero,
        nonlinearity=nonlinearity,
    )
    return out.reshape(-1)[:n]


def activate_bias(values, dtype, nonlinearity):
    """f(values) for any values (inf, NaN, -0) through b_ih, one row."""
    b = np.asarray(values, dtype=dtype)
    h = b.size
    out, _, _ = F.rnn_forward(
        np.zeros((1, 1, 0), dtype=dtype),
        None,
        np.zeros((h, 0), dtype=dtype),
        np.zeros((h, h), dtype=dtype),
        b,
        np.full(h, -0.0, dtype=dtype),
        nonlinearity=nonlinearity,
    )
    return out[0, 0]


def grid(dtype):
    """Dense [-40, 40], magnitudes from the smallest subnormal to the largest
    finite, both signs; random points over exp's whole range; the tanh
    branch points."""
    rng = np.random.default_rng(1234)
    fi = np.finfo(dtype)
    lo = np.log10(float(fi.smallest_subnormal)) if hasattr(fi, "smallest_subnormal") else -320
    mag = np.logspace(
        max(lo, -310 if dtype == np.float64 else -45), np.log10(float(fi.max)) - 1e-9, 100_000
    )
    edge = 750.0 if dtype == np.float64 else 105.0
    pieces = [
        np.linspace(-40, 40, 200_001),
        mag,
        -mag,
        rng.uniform(-edge, edge, 100_000),
        np.linspace(0.55, 1.3, 20_001),
        -np.linspace(0.55, 1.3, 20_001),
        np.linspace(-edge, -30, 20_001),
    ]
    x = np.concatenate(pieces).astype(dtype)
    return x[np.isfinite(x)]


def exact(name, x):
    xl = np.asarray(x).astype(np.longdouble)
    with np.errstate(all="ignore"):
        if name == "tanh":
            return np.tanh(xl)
        z = np.exp(-np.abs(xl))
        return np.where(xl >= 0, 1 / (1 + z), z / (1 + z))


def numpy_sigmoid(x):
    """crnn.reference's sigmoid: 1/(1 + e^-x) for x >= 0, e^x/(1 + e^x) below."""
    with np.errstate(all="ignore"):
        z = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


NUMPY = {"tanh": np.tanh, "sigmoid": numpy_sigmoid}


@pytest.fixture(scope="module", params=[np.float64, np.float32], ids=["f64", "f32"])
def dtype_grid(request):
    return request.param, grid(request.param)


@pytest.mark.parametrize("isa", ISAS)
def test_transport_is_exact(dtype_grid, isa):
    dtype, x = dtype_grid
    crnn.set_isa(isa)
    y = activate(x, dtype, "relu")
    np.testing.assert_array_equal(y[x > 0], x[x > 0])


@needs_longdouble
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_ulp_error_against_exact(dtype_grid, name, isa):
    dtype, x = dtype_grid
    crnn.set_isa(isa)
    desired = exact(name, x)
    err = ulp_distance(activate(x, dtype, name), desired, dtype)
    if dtype == np.float32:
        err[np.abs(desired) < np.finfo(dtype).tiny] = 0
    i = int(np.argmax(err))
    tol = EXACT_ULP[dtype, name]
    assert err[i] <= tol, f"{name} {isa}: {err[i]:.3f} ulp at x = {x[i]!r}"


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_ulp_error_against_numpy(dtype_grid, name, isa):
    dtype, x = dtype_grid
    crnn.set_isa(isa)
    if dtype == np.float32:  # as above
        x = x[np.abs(exact(name, x)) >= np.finfo(dtype).tiny]
    y = activate(x, dtype, name)
    tol = NUMPY_ULP[dtype, name]
    err = ulp_distance(y, NUMPY[name](x), dtype)
    i = int(np.argmax(err))
    assert err[i] <= tol, f"{name} {isa}: {err[i]:.3f} ulp from NumPy at x = {x[i]!r}"
    if name == "sigmoid":
        # The textbook expression too, where its e^-x does not overflow.
        keep = x > np.log(np.finfo(dtype).tiny) + 1
        with np.errstate(all="ignore"):
            plain = 1 / (1 + np.exp(-x[keep]))
        err = ulp_distance(y[keep], plain, dtype)
        assert err.max() <= tol, f"{err.max():.3f} ulp from 1 / (1 + exp(-x))"


SPECIALS = np.array(
    [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        np.nan,
        -np.nan,
        5e-324,
        -5e-324,
        2.2250738585072014e-308,
        -2.2250738585072014e-308,
        1e-300,
        -1e-300,
        1e-17,
        -1e-17,
        1e-8,
        -1e-8,
        0.75,
        -0.75,
        np.nextafter(0.75, 0),
        -np.nextafter(0.75, 0),
        19.0,
        20.0,
        -20.0,
        36.75,
        -36.75,
        354.0,
        356.0,
        -356.0,
        709.0,
        709.8,
        710.0,
        -709.0,
        -709.8,
        -710.0,
        -744.0,
        -745.1,
        -745.2,
        -746.0,
        -800.0,
        1e308,
        -1e308,
        np.finfo(np.float64).max,
        -np.finfo(np.float64).max,
    ]
)


@pytest.mark.parametrize("isa", ISAS)
def test_special_values_float64(isa):
    crnn.set_isa(isa)
    x = SPECIALS
    t = activate_bias(x, np.float64, "tanh")
    s = activate_bias(x, np.float64, "sigmoid")
    nan = np.isnan(x)
    assert np.isnan(t[nan]).all() and np.isnan(s[nan]).all()
    # tanh is odd: the sign of every result, -0 included, is the sign of x.
    np.testing.assert_array_equal(np.signbit(t[~nan]), np.signbit(x[~nan]))
    np.testing.assert_array_equal(t[np.abs(x) <= 1e-8], x[np.abs(x) <= 1e-8])  # tiny x: x
    np.testing.assert_array_equal(t[np.abs(x) >= 20], np.sign(x[np.abs(x) >= 20]))
    np.testing.assert_array_equal(s[x >= 40], 1.0)
    np.testing.assert_array_equal(s[x == -np.inf], 0.0)
    np.testing.assert_array_equal(s[x == 0], 0.5)
    assert not np.signbit(s[~nan]).any()
    if HAVE_LONGDOUBLE:  # sigmoid(-745.1) is the smallest subnormal, not 0
        for name, y in (("tanh", t), ("sigmoid", s)):
            err = ulp_distance(y, exact(name, x), np.float64)
            assert err.max() <= EXACT_ULP[np.float64, name], (name, x[np.argmax(err)], err.max())


@pytest.mark.parametrize("isa", ISAS)
def test_special_values_float32(isa):
    crnn.set_isa(isa)
    with np.errstate(over="ignore"):
        x = SPECIALS.astype(np.float32)
    t = activate_bias(x, np.float32, "tanh")
    s = activate_bias(x, np.float32, "sigmoid")
    nan = np.isnan(x)
    assert np.isnan(t[nan]).all() and np.isnan(s[nan]).all()
    np.testing.assert_array_equal(t[np.isinf(x)], np.sign(x[np.isinf(x)]))
    np.testing.assert_array_equal(s[x == np.inf], 1.0)
    np.testing.assert_array_equal(s[x == 0], 0.5)


# float32 edge behaviour: the sign of zero, and flush-to-zero below the
# smallest normal for sigmoid.


@pytest.mark.parametrize("isa", ISAS)
def test_float32_tanh_keeps_minus_zero(isa):
    crnn.set_isa(isa)
    t = activate_bias(np.array([-0.0, 0.0], np.float32), np.float32, "tanh")
    np.testing.assert_array_equal(np.signbit(t), [True, False])


@pytest.mark.parametrize("isa", ISAS)
def test_float32_sigmoid_flushes_below_smallest_normal(isa):
    """Documented in csrc/activations.inc: float32 sigmoid values below the
    smallest normal float (x < -87.34) are 0; just above, within the bound."""
    crnn.set_isa(isa)
    lo = np.float32(-87.3365478515625)
    below = np.linspace(-120, lo, 1001).astype(np.float32)[:-1]
    assert not np.any(activate(below, np.float32, "sigmoid"))
    above = np.linspace(lo, -80, 1001).astype(np.float32)
    err = ulp_distance(activate(above, np.float32, "sigmoid"), exact("sigmoid", above), np.float32)
    assert err.max() <= EXACT_ULP[np.float32, "sigmoid"]
    assert activate_bias(np.array([-np.inf], np.float32), np.float32, "sigmoid")[0] == 0
