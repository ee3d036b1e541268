"""NaN and Inf: what crnn does with them, for both engines and the layers.

The documented contract (README "Reliability"):

- Forward and backward propagate NaN and Inf; they are never filtered or
  replaced. A NaN stays in the batch rows it reaches (rows are independent).
  Both engines produce non-finite values in the same places (C and the
  reference may differ in *which* non-finite value, e.g. -inf vs NaN where
  float32 sigmoid underflows to a denormal instead of 0).
- Values at padded steps (t >= lengths[b]) of x and dout are never read, so
  NaN or Inf there cannot leak.
- Saturating tanh / sigmoid never produce NaN, however large the finite
  pre-activations.
- clip_grad_norm(..., error_if_nonfinite=True) raises RuntimeError and
  leaves the arrays untouched when the total norm is NaN or infinite, also
  when it overflows from finite float64 values; otherwise PyTorch's
  semantics (NaN total: everything NaN; infinite total: factor 0).
- Optimizers do not filter: a non-finite gradient element makes its
  parameter element non-finite and leaves the others alone; with norm
  clipping, a NaN total norm makes every parameter NaN and an infinite one
  zeroes the finite gradients first.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import crnn
from crnn import optim
from crnn import reference as ref
from helpers import assert_rel_close, make_rnn_problem

# NumPy (the reference, the optimizers) warns on NaN / Inf arithmetic; here it is expected.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

DTYPES = [np.float32, np.float64]
dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
nl_param = pytest.mark.parametrize("nl", ["tanh", "relu", "sigmoid"])
GRAD_FIELDS = crnn.RNNGrads._fields
T, B, I, H = 6, 5, 4, 7


def _run(mod, args, nl, dout, dh_n):
    out, h_n, cache = mod.rnn_forward(**args, nonlinearity=nl)
    g = mod.rnn_backward(dout, dh_n, cache)
    res = {"out": out, "h_n": h_n}
    res.update({f: getattr(g, f) for f in GRAD_FIELDS if getattr(g, f) is not None})
    return res


def _upstream(dtype, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((T, B, H)).astype(dtype),
            rng.standard_normal((B, H)).astype(dtype))


def _assert_same_nonfinite(c, r, dtype, ctx):
    """Non-finite exactly in the same places; the finite rest within the contract."""
    for name in r:
        a, b = c[name], r[name]
        fa, fb = np.isfinite(a), np.isfinite(b)
        assert np.array_equal(fa, fb), f"{ctx} {name}: non-finite positions differ"
        # NaN where the reference has NaN, unless the C value is an infinity
        # (a denormal instead of 0 turns 0 * inf = NaN into +-inf).
        assert np.all(np.isnan(a[np.isnan(b)]) | np.isinf(a[np.isnan(b)])), f"{ctx} {name}"
        assert_rel_close(np.where(fa, a, 0), np.where(fb, b, 0), dtype, name=f"{ctx} {name}")


# --------------------------------------------------------------------------
# Propagation, C engine vs reference
# --------------------------------------------------------------------------
POISON = {
    "x-nan": ("x", (2, 1, 3), np.nan),
    "x-inf": ("x", (2, 1, 3), np.inf),
    "x-neginf": ("x", (0, 3, 0), -np.inf),
    "h0-nan": ("h0", (4, 2), np.nan),
    "h0-inf": ("h0", (4, 2), np.inf),
    "w_hh-nan": ("weight_hh", (1, 5), np.nan),
    "w_ih-inf": ("weight_ih", (3, 1), np.inf),
    "bias-nan": ("bias_hh", (2,), np.nan),
    "dout-nan": ("dout", (3, 2, 1), np.nan),
    "dout-inf": ("dout", (5, 0, 6), np.inf),
    "dh_n-nan": ("dh_n", (1, 4), np.nan),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("lengths", [None, "zeros"], ids=str)
@pytest.mark.parametrize("case", list(POISON))
@nl_param
@dtype_param
def test_nonfinite_propagates_like_the_reference(dtype, nl, case, lengths, threads):
    crnn.set_num_threads(threads)
    args = make_rnn_problem(T, B, I, H, dtype, seed=7, lengths=lengths)
    if lengths is not None:
        args["lengths"] = np.array([6, 0, 4, 6, 3])
    dout, dh_n = _upstream(dtype)
    where, idx, value = POISON[case]
    if where in ("dout", "dh_n"):
        (dout if where == "dout" else dh_n)[idx] = value
    else:
        args[where] = args[where].copy()
        args[where][idx] = value
    c = _run(crnn, args, nl, dout, dh_n)
    r = _run(ref, args, nl, dout, dh_n)
    _assert_same_nonfinite(c, r, dtype, f"{case}")
    # Something non-finite came out (nothing was filtered), unless the poison
    # sits where it is never read (a padded step, or a zero-length row's x).
    anything = any(not np.all(np.isfinite(v)) for v in r.values())
    if where == "x" and lengths is not None and idx[0] >= args["lengths"][idx[1]]:
        assert not anything
    elif where == "dout" and lengths is not None and idx[0] >= args["lengths"][idx[1]]:
        assert not anything
    else:
        assert anything, "a non-finite input vanished"


@pytest.mark.parametrize("engine", [crnn, ref], ids=["crnn", "reference"])
@nl_param
@dtype_param
def test_nan_in_a_row_stays_in_that_row_backward(engine, dtype, nl):
    """A NaN in dout[t, b] reaches dx[:t+1, b] and dh0[b], the weight
    gradients (sums over rows), and no other row's dx or dh0."""
    args = make_rnn_problem(T, B, I, H, dtype, seed=8)
    dout, dh_n = _upstream(dtype, 2)
    base = _run(engine, args, nl, dout, dh_n)
    dout = dout.copy()
    dout[3, 2, 0] = np.nan
    res = _run(engine, args, nl, dout, dh_n)
    others = [b for b in range(B) if b != 2]
    np.testing.assert_array_equal(res["dx"][:, others], base["dx"][:, others])
    np.testing.assert_array_equal(res["dh0"][others], base["dh0"][others])
    np.testing.assert_array_equal(res["dx"][4:, 2], base["dx"][4:, 2])  # later steps
    if nl != "relu":  # relu may zero the path (f' = 0), which 0 * NaN keeps NaN anyway
        assert np.isnan(res["dx"][3, 2]).all()
    assert np.isnan(res["dweight_hh"]).any()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("engine", [crnn, ref], ids=["crnn", "reference"])
@nl_param
@dtype_param
def test_padded_steps_are_never_read(engine, dtype, nl, value):
    """NaN / Inf in x and dout at padded steps: bitwise the zero-padded result."""
    args = make_rnn_problem(T, B, I, H, dtype, seed=9)
    lengths = np.array([6, 0, 2, 5, 1])
    args["lengths"] = lengths
    dout, dh_n = _upstream(dtype, 3)
    pad = np.arange(T)[:, None] >= lengths[None, :]  # (T, B)
    clean_x, clean_d = args["x"].copy(), dout.copy()
    clean_x[pad] = 0
    clean_d[pad] = 0
    dirty_x, dirty_d = args["x"].copy(), dout.copy()
    dirty_x[pad] = value
    dirty_d[pad] = value
    clean = _run(engine, dict(args, x=clean_x), nl, clean_d, dh_n)
    dirty = _run(engine, dict(args, x=dirty_x), nl, dirty_d, dh_n)
    for name in clean:
        assert np.all(np.isfinite(dirty[name])), name
        np.testing.assert_array_equal(dirty[name], clean[name], err_msg=name)


@pytest.mark.parametrize("engine", [crnn, ref], ids=["crnn", "reference"])
@dtype_param
def test_all_zero_lengths(engine, dtype):
    """Every row empty: out is 0, h_n is h0, dh0 is dh_n, no weight gradient,
    whatever x holds (even NaN)."""
    args = make_rnn_problem(T, B, I, H, dtype, seed=10)
    args["lengths"] = np.zeros(B, dtype=np.int64)
    args["x"] = np.full((T, B, I), np.nan, dtype)
    dout, dh_n = _upstream(dtype, 4)
    res = _run(engine, args, "tanh", dout, dh_n)
    assert not res["out"].any()
    np.testing.assert_array_equal(res["h_n"], args["h0"])
    np.testing.assert_array_equal(res["dh0"], dh_n)
    for name in ("dx", "dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh"):
        assert not res[name].any(), name


# --------------------------------------------------------------------------
# Saturation: huge finite inputs give no NaN
# --------------------------------------------------------------------------
HUGE = {np.float32: 1e30, np.float64: 1e150}


@pytest.mark.parametrize("isa", crnn.available_isas())
@pytest.mark.parametrize("where", ["x", "weights", "h0"])
@pytest.mark.parametrize("nl", ["tanh", "sigmoid", "relu"])
@dtype_param
def test_huge_inputs_saturate_without_nan(dtype, nl, where, isa):
    crnn.set_isa(isa)
    big = dtype(HUGE[dtype])
    args = make_rnn_problem(T, B, I, H, dtype, seed=11, lengths="random")
    if where == "x":
        args["x"] = args["x"] * big
    elif where == "h0":
        args["h0"] = args["h0"] * big
    else:
        args["weight_ih"] = args["weight_ih"] * big
        args["bias_ih"] = args["bias_ih"] * big
    dout, dh_n = _upstream(dtype, 5)
    c = _run(crnn, args, nl, dout, dh_n)
    r = _run(ref, args, nl, dout, dh_n)
    if nl in ("tanh", "sigmoid"):
        for name in ("out", "h_n"):
            assert np.all(np.abs(c[name]) <= 1), name
    for name, v in c.items():
        if nl == "relu" and where != "h0" and name in ("dweight_ih",):
            continue  # relu does not saturate: da * x may legitimately be huge, still finite below
        assert not np.isnan(v).any(), f"{name} has NaN"
    _assert_same_nonfinite(c, r, dtype, f"huge {where}")


@pytest.mark.parametrize("engine", [crnn, ref], ids=["crnn", "reference"])
@dtype_param
def test_saturated_tanh_has_zero_derivative_not_nan(engine, dtype):
    """out = +-1 exactly: 1 - h^2 = 0, so the gradient stops (it is 0, not NaN)."""
    args = make_rnn_problem(3, 2, 2, 3, dtype, seed=12, h0=False, bias=False)
    args["x"] = np.full((3, 2, 2), HUGE[dtype], dtype)
    args["weight_ih"] = np.ones((3, 2), dtype)
    args["weight_hh"] = np.zeros((3, 3), dtype)
    out, h_n, cache = engine.rnn_forward(**args)
    assert np.all(out == 1)
    g = engine.rnn_backward(np.ones_like(out), None, cache)
    assert not g.dx.any() and not g.dweight_ih.any() and not g.dh0.any()


# --------------------------------------------------------------------------
# Layers: same contract through RNN / RNNCell, both backends
# --------------------------------------------------------------------------
@pytest.mark.parametrize("bidirectional", [False, True])
@dtype_param
def test_rnn_layer_nan_rows_and_backends_agree(dtype, bidirectional):
    results = {}
    for backend in ("c", "numpy"):
        layer = crnn.RNN(I, H, num_layers=2, bidirectional=bidirectional, dtype=dtype, seed=1,
                         backend=backend)
        x = np.random.default_rng(2).standard_normal((T, B, I)).astype(dtype)
        x[1, 3, 2] = np.nan
        out, h_n = layer(x, lengths=[6, 4, 6, 5, 2])
        dout = np.ones_like(out)
        dx, dh0 = layer.backward(dout, None)
        results[backend] = dict(out=out, h_n=h_n, dx=dx, dh0=dh0, **layer.grads)
        others = [0, 1, 2, 4]
        assert np.isfinite(out[:, others]).all() and np.isfinite(h_n[:, others]).all()
        assert np.isnan(h_n[:, 3]).all()
        assert np.isfinite(dx[:, others]).all()
        assert any(np.isnan(g).any() for g in layer.grads.values())
    _assert_same_nonfinite(results["c"], results["numpy"], dtype, "RNN layer")


@dtype_param
def test_rnncell_and_linear_propagate(dtype):
    cell = crnn.RNNCell(I, H, dtype=dtype, seed=0)
    x = np.zeros((B, I), dtype)
    x[1, 0] = np.inf
    h = cell(x)
    assert np.isfinite(h).all()  # tanh(+-inf) = +-1
    dx, dh = cell.backward(np.ones_like(h))
    assert np.isnan(cell.grads["weight_ih"][:, 0]).all()  # 0 * inf
    assert np.isfinite(cell.grads["weight_hh"]).all()
    lin = crnn.Linear(I, 3, dtype=dtype, seed=0)
    y = lin(np.where(np.arange(I) == 2, np.nan, 1.0).astype(dtype))
    assert np.isnan(y).all()


# --------------------------------------------------------------------------
# clip_grad_norm with error_if_nonfinite
# --------------------------------------------------------------------------
@pytest.mark.parametrize("engine", [crnn, ref], ids=["crnn", "reference"])
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, 0.5, "inf"], ids=str)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("container", ["list", "dict", "single"])
@dtype_param
def test_error_if_nonfinite_raises_and_changes_nothing(dtype, container, bad, p, engine):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(40_000).astype(dtype), rng.standard_normal((3, 5)).astype(dtype)]
    arrays[0][31_337] = bad
    if container == "single":
        arg, arrays = arrays[0], arrays[:1]
    elif container == "dict":
        arg = {"a": arrays[0], "b": arrays[1]}
    else:
        arg = arrays
    before = [a.copy() for a in arrays]
    with pytest.raises(RuntimeError, match="non-finite"):
        engine.clip_grad_norm(arg, 1.0, norm_type=p, error_if_nonfinite=True)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("engine", [crnn, ref], ids=["crnn", "reference"])
def test_norm_overflow_of_finite_float64_values(engine):
    """Finite float64 values whose norm overflows: the norm is accumulated in
    float64 without rescaling (as PyTorch does), so it is inf. With
    error_if_nonfinite=True that raises; without, PyTorch's semantics scale
    by 0 -- the documented reason to pass error_if_nonfinite=True."""
    arrays = [np.full(4, 1e200)]
    with pytest.raises(RuntimeError):
        engine.clip_grad_norm(arrays, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(arrays[0], np.full(4, 1e200))
    assert engine.clip_grad_norm(arrays, 1.0, norm_type="inf") == 1e200  # max-norm cannot overflow
    np.testing.assert_allclose(arrays[0], np.full(4, 1.0), rtol=1e-12)
    arrays = [np.full(4, 1e200)]
    assert engine.clip_grad_norm(arrays, 1.0) == math.inf
    assert not arrays[0].any()


@pytest.mark.parametrize("engine", [crnn, ref], ids=["crnn", "reference"])
def test_float32_norm_does_not_overflow(engine):
    """float32 values near the top of their range: accumulated in float64,
    so the norm (about 6.8e38, beyond float32) is finite and exact enough."""
    arrays = [np.full(4, 3.0e38, np.float32)]
    total = engine.clip_grad_norm(arrays, 1.0, error_if_nonfinite=True)
    assert total == pytest.approx(6.0e38, rel=1e-6)
    assert np.isfinite(arrays[0]).all()
    np.testing.assert_allclose(arrays[0], 0.5, rtol=1e-6)


@pytest.mark.parametrize("engine", [crnn, ref], ids=["crnn", "reference"])
@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_clip_grad_value_keeps_nan_clamps_inf(engine, bad):
    a = np.array([bad, -bad, 3.0, -3.0, 0.5])
    engine.clip_grad_value([a], 1.0)
    if np.isnan(bad):
        assert np.isnan(a[:2]).all()
    else:
        np.testing.assert_array_equal(a[:2], [1.0, -1.0])
    np.testing.assert_array_equal(a[2:], [1.0, -1.0, 0.5])


# --------------------------------------------------------------------------
# Optimizers: documented propagation
# --------------------------------------------------------------------------
OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("Adagrad", dict(lr=0.1)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
    ("Adam", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, amsgrad=True)),
]
OPT_IDS = [f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)]


def _opt_run(name, kw, grad_values, **clip):
    params = {"w": np.linspace(-1, 1, 6).reshape(2, 3), "b": np.array([0.5, -0.5])}
    opt = getattr(optim, name)(params, **kw, **clip)
    grads = {"w": np.array(grad_values, dtype=float).reshape(2, 3), "b": np.array([0.1, -0.2])}
    total = opt.step(grads)
    return params, total


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("name, kw", OPTIMIZERS, ids=OPT_IDS)
def test_optimizer_nonfinite_gradient_element(name, kw, bad):
    """Without clipping: the parameter element is non-finite, the others are
    exactly what a finite gradient there would give."""
    grads = [0.1, bad, -0.3, 0.2, 0.0, 0.05]
    p_bad, total = _opt_run(name, kw, grads)
    assert total is None
    p_ok, _ = _opt_run(name, kw, [0.1, 0.7, -0.3, 0.2, 0.0, 0.05])
    assert not np.isfinite(p_bad["w"][0, 1])
    mask = np.ones((2, 3), bool)
    mask[0, 1] = False
    np.testing.assert_array_equal(p_bad["w"][mask], p_ok["w"][mask])
    np.testing.assert_array_equal(p_bad["b"], p_ok["b"])


@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("name, kw", OPTIMIZERS, ids=OPT_IDS)
def test_optimizer_norm_clipping_with_nonfinite_gradient(name, kw, backend):
    """With clip_grad_norm: a NaN gradient gives a NaN norm and every
    parameter NaN; an infinite one gives an inf norm, the finite gradients
    scaled to 0 (so their parameters keep finite values) and NaN where the
    gradient was infinite -- PyTorch's semantics, as the module documents."""
    p, total = _opt_run(name, kw, [0.1, np.nan, -0.3, 0.2, 0.0, 0.05], clip_grad_norm=1.0,
                        backend=backend)
    assert math.isnan(total)
    assert np.isnan(p["w"]).all() and np.isnan(p["b"]).all()
    p, total = _opt_run(name, kw, [0.1, np.inf, -0.3, 0.2, 0.0, 0.05], clip_grad_norm=1.0,
                        backend=backend)
    assert total == math.inf
    assert np.isnan(p["w"][0, 1])
    finite = np.ones((2, 3), bool)
    finite[0, 1] = False
    assert np.isfinite(p["w"][finite]).all() and np.isfinite(p["b"]).all()


@pytest.mark.parametrize("name, kw", OPTIMIZERS, ids=OPT_IDS)
def test_optimizer_value_clipping_tames_inf_not_nan(name, kw):
    p, _ = _opt_run(name, kw, [0.1, np.inf, -np.inf, 0.2, 0.0, 0.05], clip_grad_value=1.0)
    assert np.isfinite(p["w"]).all()
    p, _ = _opt_run(name, kw, [0.1, np.nan, 0.3, 0.2, 0.0, 0.05], clip_grad_value=1.0)
    assert np.isnan(p["w"][0, 1]) and np.isfinite(np.delete(p["w"].ravel(), 1)).all()
