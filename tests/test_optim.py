"""crnn.optim: first steps by hand, PyTorch parity over 20 steps (all option
combinations), clipping before the step, backends, state, validation."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from crnn import optim
from helpers import assert_rel_close

SHAPES = {"weight": (3, 4), "bias": (4,), "cube": (2, 3, 2)}
STEPS = 20


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}


def make_grads(n, dtype=np.float64, seed=1, scale=1.0):
    rng = np.random.default_rng(seed)
    return [
        {k: (scale * rng.standard_normal(s)).astype(dtype) for k, s in SHAPES.items()}
        for _ in range(n)
    ]


def copy_dict(d):
    return {k: v.copy() for k, v in d.items()}


# --------------------------------------------------------------------------
# First steps by hand (direct formulas, one scalar parameter at a time)
# --------------------------------------------------------------------------


def test_sgd_plain_step_by_hand():
    p = {"w": np.array([1.0, -2.0])}
    opt = optim.SGD(p, lr=0.1)
    assert opt.step({"w": np.array([0.5, 4.0])}) is None
    np.testing.assert_allclose(p["w"], [1.0 - 0.05, -2.0 - 0.4], rtol=0, atol=1e-15)


def test_sgd_momentum_weight_decay_dampening_by_hand():
    p0, lr, mu, wd, damp = 2.0, 0.1, 0.9, 0.01, 0.25
    g1, g2 = 1.0, -3.0
    p = {"w": np.array([p0])}
    opt = optim.SGD(p, lr=lr, momentum=mu, dampening=damp, weight_decay=wd)
    opt.step({"w": np.array([g1])})
    d1 = g1 + wd * p0
    b = d1  # first buffer is the gradient itself
    p1 = p0 - lr * b
    assert p["w"][0] == pytest.approx(p1, abs=1e-15)
    opt.step({"w": np.array([g2])})
    d2 = g2 + wd * p1
    b = mu * b + (1 - damp) * d2
    assert p["w"][0] == pytest.approx(p1 - lr * b, abs=1e-15)


def test_sgd_nesterov_by_hand():
    p0, lr, mu = 1.0, 0.5, 0.8
    p = {"w": np.array([p0])}
    opt = optim.SGD(p, lr=lr, momentum=mu, nesterov=True)
    opt.step({"w": np.array([2.0])})
    b = 2.0
    p1 = p0 - lr * (2.0 + mu * b)
    assert p["w"][0] == pytest.approx(p1, abs=1e-15)
    opt.step({"w": np.array([-1.0])})
    b = mu * b - 1.0
    assert p["w"][0] == pytest.approx(p1 - lr * (-1.0 + mu * b), abs=1e-15)


def test_adagrad_by_hand():
    lr, decay, init, eps = 0.1, 0.5, 0.2, 1e-10
    p = {"w": np.array([1.0])}
    opt = optim.Adagrad(p, lr=lr, lr_decay=decay, initial_accumulator_value=init, eps=eps)
    opt.step({"w": np.array([3.0])})
    s = init + 9.0
    p1 = 1.0 - lr * 3.0 / (np.sqrt(s) + eps)
    assert p["w"][0] == pytest.approx(p1, abs=1e-15)
    opt.step({"w": np.array([-1.0])})
    s += 1.0
    clr = lr / (1 + 1 * decay)
    assert p["w"][0] == pytest.approx(p1 + clr * 1.0 / (np.sqrt(s) + eps), abs=1e-15)


def test_rmsprop_first_step_by_hand():
    lr, alpha, eps = 0.01, 0.9, 1e-8
    p = {"w": np.array([1.0, 1.0])}
    opt = optim.RMSprop(p, lr=lr, alpha=alpha, eps=eps)
    g = np.array([2.0, -0.5])
    opt.step({"w": g})
    expected = 1.0 - lr * g / (np.sqrt((1 - alpha) * g * g) + eps)
    np.testing.assert_allclose(p["w"], expected, rtol=0, atol=1e-15)


def test_rmsprop_centered_momentum_two_steps_by_hand():
    lr, alpha, eps, mu = 0.01, 0.5, 1e-8, 0.9
    p = {"w": np.array([0.0])}
    opt = optim.RMSprop(p, lr=lr, alpha=alpha, eps=eps, momentum=mu, centered=True)
    v = m = b = 0.0
    x = 0.0
    for g in (2.0, 1.0):
        opt.step({"w": np.array([g])})
        v = alpha * v + (1 - alpha) * g * g
        m = alpha * m + (1 - alpha) * g
        avg = np.sqrt(v - m * m) + eps
        b = mu * b + g / avg
        x -= lr * b
        assert p["w"][0] == pytest.approx(x, abs=1e-14)


def test_adam_first_step_is_lr_times_sign():
    lr = 0.01
    p = {"w": np.array([1.0, 1.0, 1.0])}
    g = np.array([3.0, -1e-3, 0.0])
    with np.errstate(invalid="ignore"):
        optim.Adam(p, lr=lr, eps=0.0).step({"w": g})
    # m_hat = g and v_hat = g^2 after one step, so the update is lr * sign(g).
    np.testing.assert_allclose(p["w"][:2], [1.0 - lr, 1.0 + lr], rtol=0, atol=1e-15)
    assert np.isnan(p["w"][2])  # 0 / 0 with eps = 0: documented propagation


def test_adam_two_steps_by_hand_amsgrad_and_adamw():
    lr, b1, b2, eps, wd = 0.1, 0.8, 0.9, 1e-8, 0.1
    for amsgrad, decoupled in [(False, False), (True, False), (True, True)]:
        cls = optim.AdamW if decoupled else optim.Adam
        p = {"w": np.array([1.0])}
        opt = cls(p, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, amsgrad=amsgrad)
        x, m, v, vmax = 1.0, 0.0, 0.0, 0.0
        for t, g0 in enumerate((2.0, 0.1), start=1):
            opt.step({"w": np.array([g0])})
            if decoupled:
                x *= 1 - lr * wd
                g = g0
            else:
                g = g0 + wd * x
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            vmax = max(vmax, v)
            vhat = (vmax if amsgrad else v) / (1 - b2**t)
            x -= lr * (m / (1 - b1**t)) / (np.sqrt(vhat) + eps)
            assert p["w"][0] == pytest.approx(x, abs=1e-14), (amsgrad, decoupled, t)


def test_clipping_by_hand_returns_norm_and_clips_grads_in_place():
    p = {"a": np.zeros(2), "b": np.zeros((1, 1))}
    g = {"a": np.array([-3.0, 4.0]), "b": np.array([[-12.0]])}  # norm 13
    total = optim.SGD(p, lr=1.0, clip_grad_norm=1.0).step(g)
    assert total == pytest.approx(13.0, abs=1e-12)
    coef = 1.0 / (13.0 + 1e-6)
    np.testing.assert_allclose(g["a"], [-3.0 * coef, 4.0 * coef], rtol=1e-14)
    np.testing.assert_allclose(p["a"], [3.0 * coef, -4.0 * coef], rtol=1e-14)
    np.testing.assert_allclose(p["b"], [[12.0 * coef]], rtol=1e-14)

    p = {"a": np.zeros(2)}
    g = {"a": np.array([-3.0, 0.5])}
    assert optim.SGD(p, lr=1.0, clip_grad_value=1.0).step(g) is None
    np.testing.assert_array_equal(g["a"], [-1.0, 0.5])
    np.testing.assert_array_equal(p["a"], [1.0, -0.5])


def test_value_clipping_happens_before_norm_clipping():
    p = {"a": np.zeros(2)}
    g = {"a": np.array([-3.0, 4.0])}
    total = optim.SGD(p, lr=1.0, clip_grad_value=1.0, clip_grad_norm=10.0).step(g)
    assert total == pytest.approx(np.sqrt(2.0), abs=1e-12)  # norm of [-1, 1]
    np.testing.assert_allclose(g["a"], [-1.0, 1.0], rtol=1e-14)


def test_grads_untouched_without_clipping():
    for cls, kw in [
        (optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
        (optim.Adam, dict(weight_decay=0.1)),
        (optim.RMSprop, dict(centered=True)),
        (optim.Adagrad, {}),
    ]:
        p = make_params()
        g = make_grads(1)[0]
        g0 = copy_dict(g)
        opt = cls(p, **kw)
        opt.step(g)
        opt.step(g)
        for k in g:
            np.testing.assert_array_equal(g[k], g0[k])


def test_nan_gradient_propagates_into_params():
    p = {"w": np.ones(3)}
    with np.errstate(invalid="ignore"):
        optim.Adam(p).step({"w": np.array([1.0, np.nan, 1.0])})
    assert np.isnan(p["w"][1]) and np.isfinite(p["w"][[0, 2]]).all()


# --------------------------------------------------------------------------
# PyTorch parity over 20 steps
# --------------------------------------------------------------------------

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.05)),
    ("Adagrad", dict()),
    (
        "Adagrad",
        dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.3, eps=1e-6),
    ),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    (
        "RMSprop",
        dict(lr=0.005, alpha=0.8, eps=1e-6, momentum=0.5, centered=True, weight_decay=0.01),
    ),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.05, amsgrad=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, betas=(0.85, 0.99), weight_decay=0.2, amsgrad=True)),
]
CLIPS = [
    dict(),
    dict(clip_grad_norm=1.5),
    dict(clip_grad_norm=2.0, norm_type=1.0),
    dict(clip_grad_norm=0.5, norm_type="inf"),
    dict(clip_grad_value=0.7),
]


def _torch_run(torch, name, kw, clip, params, grads, lr_schedule=None):
    tparams = {k: torch.tensor(v) for k, v in params.items()}
    for t in tparams.values():
        t.requires_grad_(True)
    opt = getattr(torch.optim, name)(list(tparams.values()), foreach=False, **kw)
    totals, history = [], []
    for i, g in enumerate(grads):
        if lr_schedule is not None:
            for group in opt.param_groups:
                group["lr"] = lr_schedule(i)
        for k, t in tparams.items():
            t.grad = torch.tensor(g[k])
        total = None
        if "clip_grad_value" in clip:
            torch.nn.utils.clip_grad_value_(list(tparams.values()), clip["clip_grad_value"])
        if "clip_grad_norm" in clip:
            nt = clip.get("norm_type", 2.0)
            nt = float("inf") if nt == "inf" else nt
            total = float(
                torch.nn.utils.clip_grad_norm_(
                    list(tparams.values()), clip["clip_grad_norm"], norm_type=nt, foreach=False
                )
            )
        opt.step()
        totals.append(total)
        history.append({k: t.detach().numpy().copy() for k, t in tparams.items()})
    return history, totals


def _crnn_run(name, kw, clip, params, grads, backend="c", lr_schedule=None):
    params = copy_dict(params)
    opt = getattr(optim, name)(params, backend=backend, **kw, **clip)
    totals, history = [], []
    for i, g in enumerate(grads):
        if lr_schedule is not None:
            opt.lr = lr_schedule(i)
        totals.append(opt.step(copy_dict(g)))
        history.append(copy_dict(params))
    return history, totals


@pytest.mark.parametrize(
    "clip", CLIPS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "noclip"
)
@pytest.mark.parametrize(
    "name,kw",
    CONFIGS,
    ids=lambda x: (
        x if isinstance(x, str) else ",".join(f"{k}={v}" for k, v in x.items()) or "defaults"
    ),
)
def test_matches_torch_over_20_steps_float64(name, kw, clip):
    torch = pytest.importorskip("torch")
    params = make_params()
    grads = make_grads(STEPS)
    expected, t_totals = _torch_run(torch, name, kw, clip, params, grads)
    actual, c_totals = _crnn_run(name, kw, clip, params, grads)
    for step, (a, e) in enumerate(zip(actual, expected)):
        for k in SHAPES:
            np.testing.assert_allclose(
                a[k], e[k], rtol=1e-10, atol=1e-10, err_msg=f"step {step} {k}"
            )
            assert a[k].dtype == np.float64
    for a, e in zip(c_totals, t_totals):
        if e is None:
            assert a is None
        else:
            assert a == pytest.approx(e, rel=1e-12)


@pytest.mark.parametrize(
    "name,kw",
    [c for c in CONFIGS if c[1]],
    ids=lambda x: x if isinstance(x, str) else ",".join(f"{k}={v}" for k, v in x.items()),
)
def test_matches_torch_float32(name, kw):
    torch = pytest.importorskip("torch")
    params = make_params(np.float32)
    grads = make_grads(STEPS, np.float32)
    clip = dict(clip_grad_norm=2.0)
    expected, _ = _torch_run(torch, name, kw, clip, params, grads)
    actual, _ = _crnn_run(name, kw, clip, params, grads)
    for a, e in zip(actual, expected):
        for k in SHAPES:
            assert a[k].dtype == np.float32
            np.testing.assert_allclose(a[k], e[k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adagrad"])
def test_lr_schedule_matches_torch(name):
    torch = pytest.importorskip("torch")
    kw = {
        "SGD": dict(lr=0.1, momentum=0.9),
        "Adam": dict(lr=0.01),
        "RMSprop": dict(lr=0.01, momentum=0.5),
        "Adagrad": dict(lr=0.1, lr_decay=0.01),
    }[name]

    def schedule(i):
        return kw["lr"] * 0.9**i

    params, grads = make_params(), make_grads(10)
    expected, _ = _torch_run(torch, name, kw, {}, params, grads, schedule)
    actual, _ = _crnn_run(name, kw, {}, params, grads, lr_schedule=schedule)
    for k in SHAPES:
        np.testing.assert_allclose(actual[-1][k], expected[-1][k], rtol=1e-10, atol=1e-10)


def test_large_gradients_with_clipping_match_torch():
    torch = pytest.importorskip("torch")
    params, grads = make_params(), make_grads(5, scale=1e6)
    clip = dict(clip_grad_norm=1.0)
    expected, t_totals = _torch_run(torch, "Adam", {"lr": 0.01}, clip, params, grads)
    actual, c_totals = _crnn_run("Adam", {"lr": 0.01}, clip, params, grads)
    for k in SHAPES:
        np.testing.assert_allclose(actual[-1][k], expected[-1][k], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(c_totals, t_totals, rtol=1e-12)


# --------------------------------------------------------------------------
# Backends, aliases, state
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(
    "clip", CLIPS[1:], ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items())
)
def test_c_and_numpy_backends_agree(clip, dtype):
    params, grads = make_params(dtype), make_grads(8, dtype, scale=3.0)
    kw = dict(lr=0.01, amsgrad=True)
    a, ta = _crnn_run("Adam", kw, clip, params, grads, backend="c")
    b, tb = _crnn_run("Adam", kw, clip, params, grads, backend="numpy")
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for k in SHAPES:
        assert_rel_close(a[-1][k], b[-1][k], tol=tol, name=k)
    for x, y in zip(ta, tb):
        assert (x is None and y is None) or x == pytest.approx(y, rel=tol)


def test_rmsprop_alias():
    assert optim.RMSProp is optim.RMSprop


@pytest.mark.parametrize(
    "name,kw",
    [
        ("SGD", dict(lr=0.1, momentum=0.9)),
        ("SGD", dict(lr=0.1)),
        ("Adagrad", dict(lr_decay=0.1)),
        ("RMSprop", dict(momentum=0.5, centered=True)),
        ("Adam", dict(amsgrad=True)),
        ("AdamW", dict()),
    ],
)
def test_state_dict_round_trip(name, kw):
    grads = make_grads(10)
    cls = getattr(optim, name)
    p_ref = make_params()
    ref = cls(p_ref, **kw)
    for g in grads:
        ref.step(copy_dict(g))

    p = make_params()
    opt = cls(p, **kw)
    for g in grads[:5]:
        opt.step(copy_dict(g))
    sd = pickle.loads(pickle.dumps(opt.state_dict()))
    assert sd["num_steps"] == 5

    p2 = copy_dict(p)
    opt2 = cls(p2, **kw)
    opt2.load_state_dict(sd)
    for g in grads[5:]:
        opt2.step(copy_dict(g))
    for k in SHAPES:
        np.testing.assert_array_equal(p2[k], p_ref[k])


def test_state_dict_is_a_snapshot_and_load_copies():
    p = make_params()
    opt = optim.Adam(p)
    opt.step(make_grads(1)[0])
    sd = opt.state_dict()
    before = copy.deepcopy(sd)
    opt.step(make_grads(1, seed=5)[0])
    for k in SHAPES:
        np.testing.assert_array_equal(sd["state"][k]["exp_avg"], before["state"][k]["exp_avg"])
    opt.load_state_dict(sd)
    sd["state"]["bias"]["exp_avg"][...] = 123.0
    assert not np.any(opt.state_dict()["state"]["bias"]["exp_avg"] == 123.0)


def test_load_state_dict_restores_lr_and_rejects_mismatches():
    p = make_params()
    opt = optim.SGD(p, lr=0.1, momentum=0.9)
    opt.step(make_grads(1)[0])
    sd = opt.state_dict()
    other = optim.SGD(make_params(), lr=0.5, momentum=0.9)
    other.load_state_dict(sd)
    assert other.lr == 0.1 and other.num_steps == 1

    with pytest.raises(ValueError, match="Adam"):
        optim.Adam(make_params()).load_state_dict(sd)
    bad = copy.deepcopy(sd)
    bad["state"]["weight"]["momentum_buffer"] = np.zeros((4, 3))
    with pytest.raises(ValueError, match="weight"):
        other.load_state_dict(bad)
    bad = copy.deepcopy(sd)
    bad["state"]["weight"]["momentum_buffer"] = np.zeros((3, 4), np.float32)
    with pytest.raises(TypeError, match="dtype"):
        other.load_state_dict(bad)
    bad = copy.deepcopy(sd)
    del bad["state"]["cube"]
    with pytest.raises(ValueError, match="state"):
        other.load_state_dict(bad)
    # A failed load changes nothing.
    np.testing.assert_array_equal(
        other.state_dict()["state"]["weight"]["momentum_buffer"],
        sd["state"]["weight"]["momentum_buffer"],
    )


def test_zero_state_behaves_like_a_fresh_optimizer():
    grads = make_grads(3)
    p1, p2 = make_params(), make_params()
    opt = optim.Adam(p1, lr=0.01)
    for g in grads:
        opt.step(g)
    p1.update(copy_dict(p2))  # new arrays in the same mapping: looked up at each step
    opt.zero_state()
    assert opt.num_steps == 0
    fresh = optim.Adam(p2, lr=0.01)
    for g in grads:
        opt.step(g)
        fresh.step(g)
    for k in SHAPES:
        np.testing.assert_array_equal(p1[k], p2[k])


def test_merged_params_of_mixed_dtypes_without_clipping():
    p = {"a": np.ones(3, np.float32), "b": np.ones(2)}
    opt = optim.SGD(p, lr=0.5)
    opt.step({"a": np.ones(3, np.float32), "b": np.ones(2)})
    assert p["a"].dtype == np.float32 and p["b"].dtype == np.float64
    np.testing.assert_array_equal(p["a"], 0.5)
    with pytest.raises(TypeError, match="one dtype"):
        optim.SGD(p, lr=0.5, clip_grad_norm=1.0)


def test_non_contiguous_params_and_grads():
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    p = {"w": base[:, ::2]}
    g = {"w": np.ones((3, 4)).T}  # a transposed (F-ordered) view
    optim.SGD(p, lr=1.0, clip_grad_value=0.5).step(g)
    np.testing.assert_array_equal(base[:, ::2], np.arange(24.0).reshape(4, 6)[:, ::2] - 0.5)
    np.testing.assert_array_equal(base[:, 1::2], np.arange(24.0).reshape(4, 6)[:, 1::2])
    np.testing.assert_array_equal(g["w"], 0.5)


def test_repr_mentions_class_and_lr():
    r = repr(optim.RMSprop(make_params(), lr=0.02, clip_grad_norm=1.0))
    assert "RMSprop" in r and "0.02" in r and "clip_grad_norm" in r


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls,kw,word",
    [
        (optim.SGD, dict(lr=-0.1), "lr"),
        (optim.SGD, dict(lr=float("nan")), "lr"),
        (optim.SGD, dict(lr=0.1, momentum=-0.5), "momentum"),
        (optim.SGD, dict(lr=0.1, dampening=1.5), "dampening"),
        (optim.SGD, dict(lr=0.1, weight_decay=-1), "weight_decay"),
        (optim.SGD, dict(lr=0.1, nesterov=True), "nesterov"),
        (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
        (optim.Adagrad, dict(lr_decay=-1), "lr_decay"),
        (optim.Adagrad, dict(initial_accumulator_value=-1), "initial_accumulator_value"),
        (optim.Adagrad, dict(eps=-1), "eps"),
        (optim.RMSprop, dict(alpha=1.5), "alpha"),
        (optim.RMSprop, dict(alpha=-0.1), "alpha"),
        (optim.RMSprop, dict(momentum=-1), "momentum"),
        (optim.Adam, dict(betas=(1.0, 0.999)), "betas"),
        (optim.Adam, dict(betas=(0.9, -0.1)), "betas"),
        (optim.Adam, dict(eps=-1e-8), "eps"),
        (optim.AdamW, dict(weight_decay=-0.1), "weight_decay"),
        (optim.Adam, dict(clip_grad_norm=-1.0), "clip_grad_norm"),
        (optim.Adam, dict(clip_grad_value=-1.0), "clip_grad_value"),
        (optim.Adam, dict(clip_grad_norm=1.0, norm_type=0), "norm_type"),
        (optim.Adam, dict(backend="cuda"), "backend"),
    ],
)
def test_bad_hyperparameters_raise_value_error(cls, kw, word):
    with pytest.raises(ValueError, match=word):
        cls(make_params(), **kw)


@pytest.mark.parametrize(
    "cls,kw,word",
    [
        (optim.SGD, dict(lr="0.1"), "lr"),
        (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov="yes"), "nesterov"),
        (optim.Adam, dict(betas=0.9), "betas"),
        (optim.Adam, dict(amsgrad=1), "amsgrad"),
        (optim.RMSprop, dict(centered=None), "centered"),
    ],
)
def test_bad_hyperparameter_types_raise_type_error(cls, kw, word):
    with pytest.raises(TypeError, match=word):
        cls(make_params(), **kw)


def test_bad_params():
    with pytest.raises(TypeError, match="params"):
        optim.SGD([np.ones(3)], lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        optim.SGD({}, lr=0.1)
    with pytest.raises(TypeError, match=r"params\['w'\]"):
        optim.SGD({"w": [1.0, 2.0]}, lr=0.1)
    with pytest.raises(TypeError, match=r"params\['w'\]"):
        optim.SGD({"w": np.ones(3, np.int64)}, lr=0.1)
    ro = np.ones(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        optim.SGD({"w": ro}, lr=0.1)
    w = np.ones((3, 3))
    with pytest.raises(ValueError, match="share memory"):
        optim.SGD({"w": w, "row": w[0]}, lr=0.1)


def test_bad_grads_raise_before_anything_changes():
    p = make_params()
    p0 = copy_dict(p)
    opt = optim.Adam(p, clip_grad_norm=1.0)
    good = make_grads(1)[0]

    missing = copy_dict(good)
    del missing["cube"]
    with pytest.raises(KeyError, match="cube"):
        opt.step(missing)
    extra = dict(copy_dict(good), dx=np.ones(2))
    with pytest.raises(ValueError, match="dx"):
        opt.step(extra)
    shape = dict(copy_dict(good), bias=np.ones(5))
    with pytest.raises(ValueError, match="bias"):
        opt.step(shape)
    dtype = dict(copy_dict(good), bias=np.ones(4, np.float32))
    with pytest.raises(TypeError, match="bias"):
        opt.step(dtype)
    ro = copy_dict(good)
    ro["weight"].flags.writeable = False
    with pytest.raises(ValueError, match="weight"):
        opt.step(ro)
    with pytest.raises(TypeError, match="grads"):
        opt.step([good["weight"]])
    # The first grads were fine, later ones bad: nothing was clipped or updated.
    order = dict(copy_dict(good), cube=np.ones(3))
    before = copy_dict(order)
    with pytest.raises(ValueError, match="cube"):
        opt.step(order)
    for k in SHAPES:
        np.testing.assert_array_equal(p[k], p0[k])
        np.testing.assert_array_equal(order[k], before[k])
    assert opt.num_steps == 0


def test_lr_setter_validates():
    opt = optim.SGD(make_params(), lr=0.1)
    opt.lr = 0.01
    assert opt.lr == 0.01
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -1.0


def test_grads_may_be_array_likes_without_clipping():
    p = {"w": np.zeros(2)}
    optim.SGD(p, lr=1.0).step({"w": [1.0, 2.0]})
    np.testing.assert_array_equal(p["w"], [-1.0, -2.0])


# --------------------------------------------------------------------------
# The C engine's update: one call over every parameter, bitwise the NumPy code
# --------------------------------------------------------------------------


def _numpy_update(monkeypatch):
    """Make backend "c" optimizers update with the NumPy code (the C clipping
    functions still clip), as before the one-call update existed."""
    monkeypatch.setattr(optim, "_one_call_ready", lambda *a: False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "clip",
    CLIPS + [dict(clip_grad_norm=0.5, clip_grad_value=0.3)],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "noclip",
)
@pytest.mark.parametrize(
    "name,kw",
    CONFIGS
    + [("RMSprop", dict(lr=0.01, alpha=0.2, centered=True)), ("Adam", dict(betas=(0.3, 0.9)))],
    ids=lambda x: (
        x if isinstance(x, str) else ",".join(f"{k}={v}" for k, v in x.items()) or "defaults"
    ),
)
def test_one_c_call_is_bitwise_the_numpy_update(name, kw, clip, dtype, monkeypatch):
    """Parameters, clipped gradients, returned norms and every buffer after
    each of 20 steps (the lerp's weight on both sides of 0.5 included)."""
    params = make_params(dtype)
    grads = make_grads(STEPS, dtype, scale=3.0)
    in_c = getattr(optim, name)(c_params := copy_dict(params), **kw, **clip)
    in_numpy = getattr(optim, name)(n_params := copy_dict(params), **kw, **clip)
    for step, g in enumerate(grads):
        gc, gn = copy_dict(g), copy_dict(g)
        tc = in_c.step(gc)
        with monkeypatch.context() as m:
            _numpy_update(m)
            tn = in_numpy.step(gn)
        assert tc == tn or (tc != tc and tn != tn), f"step {step}: norm {tc} != {tn}"
        for k in SHAPES:
            assert np.array_equal(c_params[k], n_params[k]), f"step {step} {k}"
            assert np.array_equal(gc[k], gn[k]), f"step {step} grads {k}"
        sc, sn = in_c.state_dict()["state"], in_numpy.state_dict()["state"]
        for k in SHAPES:
            for buf in sc[k]:
                a, b = sc[k][buf], sn[k][buf]
                assert (a is None and b is None) or np.array_equal(a, b), f"step {step} {k} {buf}"


def test_one_c_call_reads_mixed_and_strided_arrays_through_numpy():
    """Arrays the C update does not take as they are (a strided parameter)
    are updated by the NumPy code: the same results."""
    base = make_params()
    strided = {k: np.repeat(v[..., None], 2, axis=-1)[..., 0] for k, v in base.items()}
    assert not strided["weight"].flags.c_contiguous
    opt = optim.Adam(strided, lr=0.1)
    ref_params = copy_dict(base)
    ref = optim.Adam(ref_params, lr=0.1)
    for g in make_grads(3):
        opt.step(g)
        ref.step(g)
    for k in SHAPES:
        np.testing.assert_array_equal(strided[k], ref_params[k])
