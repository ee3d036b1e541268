"""The Jordan network (`crnn.reference.jordan_forward` / `jordan_backward` and
the C engine's `crnn.jordan_forward` / `jordan_backward`, and the `crnn.Jordan`
layer): central differences, a step-by-step PyTorch autograd implementation
of the same recurrence, C against the reference, layouts, lengths, save/load.
"""
from __future__ import annotations

import io
import itertools

import numpy as np
import pytest

import crnn
from crnn import reference
from helpers import HAVE_TORCH, assert_rel_close

T, B, I, H, O = 5, 3, 4, 6, 2
ACTS = list(itertools.product(("tanh", "relu", "sigmoid"), ("identity", "tanh", "sigmoid")))


def _problem(seed=0, bias=True):
    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(H)
    u = lambda *s: rng.uniform(-k, k, s)  # noqa: E731
    w = dict(weight_ih=u(H, I), weight_hy=u(H, O), weight_ho=u(O, H),
             bias_ih=u(H) if bias else None, bias_hh=u(H) if bias else None,
             bias_ho=u(O) if bias else None)
    return (rng.standard_normal((T, B, I)), 0.5 * rng.standard_normal((B, O)), w,
            rng.standard_normal((T, B, O)), rng.standard_normal((B, O)))


@pytest.mark.parametrize("f,g", ACTS)
@pytest.mark.parametrize("lengths", [None, [T, 2, 0]])
def test_reference_gradcheck(f, g, lengths):
    x, y0, w, dout, dy_n = _problem()
    out, y_n, cache = reference.jordan_forward(x, y0, **w, nonlinearity=f, output_nonlinearity=g,
                                               lengths=lengths)
    grads = reference.jordan_backward(dout, dy_n, cache)
    params = dict(w, x=x, y0=y0)

    def loss():
        o, y, _ = reference.jordan_forward(x, y0, **w, nonlinearity=f, output_nonlinearity=g,
                                           lengths=lengths)
        return float((o * dout).sum() + (y * dy_n).sum())

    analytic = dict(x=grads.dx, y0=grads.dy0, weight_ih=grads.dweight_ih,
                    weight_hy=grads.dweight_hy, weight_ho=grads.dweight_ho,
                    bias_ih=grads.dbias_ih, bias_hh=grads.dbias_hh, bias_ho=grads.dbias_ho)
    report = crnn.gradcheck(loss, params, analytic, rtol=1e-6, atol=1e-8)
    assert report, report


def test_reference_semantics_and_lengths():
    x, y0, w, _, _ = _problem(bias=False)
    out, y_n, cache = reference.jordan_forward(x, y0, **w)
    # spelled out: h_t = tanh(x W_ih^T + y_{t-1} W_hy^T), y_t = h_t W_ho^T
    y = y0
    for t in range(T):
        h = np.tanh(x[t] @ w["weight_ih"].T + y @ w["weight_hy"].T)
        y = h @ w["weight_ho"].T
        np.testing.assert_allclose(out[t], y, rtol=1e-12)
    np.testing.assert_allclose(y_n, y, rtol=1e-12)
    lens = np.array([T, 2, 0])
    out_l, y_l, _ = reference.jordan_forward(x, y0, **w, lengths=lens)
    for b, L in enumerate(lens):
        np.testing.assert_allclose(out_l[:L, b], out[:L, b], rtol=1e-12)
        assert (out_l[L:, b] == 0).all()
        np.testing.assert_allclose(y_l[b], out[L - 1, b] if L else y0[b], rtol=1e-12)
    g = reference.jordan_backward(None, None, cache)
    assert not g.dx.any() and not g.dy0.any() and g.dbias_ih is None


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("f,g", ACTS)
def test_reference_matches_torch_autograd(f, g):
    import torch

    x, y0, w, dout, dy_n = _problem(seed=2)
    lens = np.array([T, 3, 1])
    out, y_n, cache = reference.jordan_forward(x, y0, **w, nonlinearity=f, output_nonlinearity=g,
                                               lengths=lens)
    grads = reference.jordan_backward(dout, dy_n, cache)
    tw = {k: torch.tensor(v, requires_grad=True) for k, v in w.items()}
    tx, ty0 = torch.tensor(x, requires_grad=True), torch.tensor(y0, requires_grad=True)
    act = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid,
           "identity": lambda z: z}
    y, outs = ty0, []
    for t in range(T):
        h = act[f](tx[t] @ tw["weight_ih"].T + tw["bias_ih"] + y @ tw["weight_hy"].T + tw["bias_hh"])
        y_new = act[g](h @ tw["weight_ho"].T + tw["bias_ho"])
        valid = torch.from_numpy(t < lens)[:, None]
        outs.append(torch.where(valid, y_new, torch.zeros_like(y_new)))
        y = torch.where(valid, y_new, y)
    t_out = torch.stack(outs)
    ((t_out * torch.from_numpy(dout)).sum() + (y * torch.from_numpy(dy_n)).sum()).backward()
    assert_rel_close(out, t_out.detach().numpy(), tol=1e-12, name="out")
    assert_rel_close(y_n, y.detach().numpy(), tol=1e-12, name="y_n")
    assert_rel_close(grads.dx, tx.grad.numpy(), tol=1e-10, name="dx")
    assert_rel_close(grads.dy0, ty0.grad.numpy(), tol=1e-10, name="dy0")
    for k in w:
        assert_rel_close(getattr(grads, "d" + k), tw[k].grad.numpy(), tol=1e-10, name=k)


@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("layout", ["time_major", "batch_first", "unbatched"])
def test_layer_matches_reference(backend, layout):
    x, y0, w, dout, dy_n = _problem(seed=3)
    layer = crnn.Jordan(I, H, O, output_nonlinearity="tanh", batch_first=layout == "batch_first",
                        dtype=np.float64, backend=backend)
    layer.load_state_dict(w)
    out_r, yn_r, cache = reference.jordan_forward(x, y0, **w, output_nonlinearity="tanh")
    g = reference.jordan_backward(dout, dy_n, cache)
    if layout == "unbatched":
        for b in range(B):
            layer.zero_grad()
            out, y_n = layer(x[:, b], y0[b])
            dx, dy0 = layer.backward(dout[:, b], dy_n[b])
            assert_rel_close(out, out_r[:, b], tol=1e-12, name="out")
            assert_rel_close(y_n, yn_r[b], tol=1e-12, name="y_n")
            r1 = reference.jordan_backward(dout[:, b:b + 1], dy_n[b:b + 1],
                                           reference.jordan_forward(x[:, b:b + 1], y0[b:b + 1], **w,
                                                                    output_nonlinearity="tanh")[2])
            assert_rel_close(dx, r1.dx[:, 0], tol=1e-12, name="dx")
            assert_rel_close(dy0, r1.dy0[0], tol=1e-12, name="dy0")
        return
    bf = layout == "batch_first"
    tr = (lambda a: a.transpose(1, 0, 2)) if bf else (lambda a: a)
    out, y_n = layer(tr(x), y0)
    dx, dy0 = layer.backward(tr(dout), dy_n)
    assert_rel_close(out, tr(out_r), tol=1e-12, name="out")
    assert_rel_close(y_n, yn_r, tol=1e-12, name="y_n")
    assert_rel_close(dx, tr(g.dx), tol=1e-12, name="dx")
    assert_rel_close(dy0, g.dy0, tol=1e-12, name="dy0")
    for k in w:
        assert_rel_close(layer.grads[k], getattr(g, "d" + k), tol=1e-12, name=k)


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_layer_gradcheck_with_lengths(backend):
    layer = crnn.Jordan(2, 3, 2, nonlinearity="sigmoid", output_nonlinearity="tanh",
                        batch_first=True, dtype=np.float64, seed=0, backend=backend)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 2))
    wout = rng.standard_normal((3, 4, 2))
    lens = np.array([4, 0, 2])

    def loss():
        return float((layer(x, lengths=lens)[0] * wout).sum())

    loss()
    layer.zero_grad()
    dx, _ = layer.backward(wout)
    report = crnn.gradcheck(loss, dict(layer.params, x=x), dict(layer.grads, x=dx), rtol=1e-6)
    assert report, report


def test_layer_init_save_load_and_errors():
    layer = crnn.Jordan(I, 16, O, dtype=np.float64, seed=0)
    shapes = {k: v.shape for k, v in layer.params.items()}
    assert shapes == {"weight_ih": (16, I), "weight_hy": (16, O), "weight_ho": (O, 16),
                      "bias_ih": (16,), "bias_hh": (16,), "bias_ho": (O,)}
    assert max(np.abs(v).max() for v in layer.params.values()) <= 0.25
    from crnn.serialization import _implied_size

    assert _implied_size(crnn.Jordan, layer.config()) == layer.num_parameters()
    for init in ("orthogonal", "glorot"):
        assert crnn.Jordan(I, 4, O, init=init, bias=False).num_parameters() == 4 * I + 8 * O
    buf = io.BytesIO()
    crnn.save(layer, buf)
    buf.seek(0)
    loaded = crnn.load(buf)
    x = np.random.default_rng(0).standard_normal((T, B, I))
    np.testing.assert_array_equal(loaded(x)[0], layer(x)[0])
    with pytest.raises(ValueError, match="output_nonlinearity"):
        crnn.Jordan(I, H, O, output_nonlinearity="softmax")
    with pytest.raises(TypeError, match="float64"):
        layer(x.astype(np.float32))
    with pytest.raises(ValueError, match="y0"):
        layer(x, np.zeros((B, O + 1)))
    with pytest.raises(RuntimeError):
        crnn.Jordan(I, H, O).backward(None)
    rnn = crnn.RNN(I, H, dtype=np.float64)
    rnn(x)
    with pytest.raises(ValueError, match="cache"):
        layer.backward(None, cache=rnn.cache)


# --------------------------------------------------------------------------
# The C engine (crnn.jordan_forward / jordan_backward) against the reference
# --------------------------------------------------------------------------

# Odd sizes, single rows, empty time / batch / input / hidden / output, a batch
# that splits across threads, and (600, 9, ...) whose backward runs in chunks
# of 228 + 228 + 144 steps (bptt_chunk_steps in csrc/kernels.inc).
JSHAPES = [(7, 5, 3, 6, 2), (1, 1, 1, 1, 1), (0, 3, 2, 4, 2), (4, 0, 2, 3, 1), (9, 17, 8, 33, 5),
           (5, 3, 0, 4, 2), (5, 3, 2, 0, 2), (5, 3, 2, 4, 0), (600, 9, 4, 11, 3), (6, 41, 20, 40, 35)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", JSHAPES, ids=lambda s: "T%d-B%d-I%d-H%d-O%d" % s)
@pytest.mark.parametrize("lengths", [None, "random"])
@pytest.mark.parametrize("f,g", [("tanh", "identity"), ("relu", "tanh"), ("sigmoid", "sigmoid"),
                                 ("tanh", "relu")])
@pytest.mark.parametrize("bias,state,grads_given", [(True, True, True), (False, False, False)])
def test_c_engine_matches_reference(dtype, shape, lengths, f, g, bias, state, grads_given):
    T_, B_, I_, H_, O_ = shape
    rng = np.random.default_rng(sum(shape))
    k = 1 / np.sqrt(max(H_, 1))
    u = lambda *s: rng.uniform(-k, k, s).astype(dtype)  # noqa: E731
    args = dict(weight_ih=u(H_, I_), weight_hy=u(H_, O_), weight_ho=u(O_, H_),
                bias_ih=u(H_) if bias else None, bias_hh=u(H_) if bias else None,
                bias_ho=u(O_) if bias else None)
    x = rng.standard_normal((T_, B_, I_)).astype(dtype)
    y0 = rng.standard_normal((B_, O_)).astype(dtype) if state else None
    lens = rng.integers(0, T_ + 1, size=B_) if lengths else None
    dout = rng.standard_normal((T_, B_, O_)).astype(dtype) if grads_given else None
    dy_n = rng.standard_normal((B_, O_)).astype(dtype) if grads_given else None

    def run(engine):
        out, y_n, cache = engine.jordan_forward(x, y0, **args, nonlinearity=f,
                                                output_nonlinearity=g, lengths=lens)
        return [out, y_n, cache.hidden, *engine.jordan_backward(dout, dy_n, cache)]

    want = run(reference)
    for isa, threads in itertools.product(crnn.available_isas(), (1, 3)):
        crnn.set_isa(isa)
        crnn.set_num_threads(threads)
        for i, (a, b) in enumerate(zip(run(crnn), want)):
            if b is None:
                assert a is None, i
                continue
            assert a.dtype == np.dtype(dtype) and a.shape == b.shape, i
            assert_rel_close(a, b, dtype=dtype, name=f"item {i} ({isa}, {threads} threads)")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_c_engine_results_do_not_depend_on_threads(dtype):
    T_, B_, I_, H_, O_ = 20, 64, 24, 48, 16  # large enough that rows and products split
    rng = np.random.default_rng(4)
    k = 1 / np.sqrt(max(H_, 1))
    u = lambda *s: rng.uniform(-k, k, s).astype(dtype)  # noqa: E731
    args = dict(weight_ih=u(H_, I_), weight_hy=u(H_, O_), weight_ho=u(O_, H_), bias_ih=u(H_),
                bias_hh=u(H_), bias_ho=u(O_))
    x = rng.standard_normal((T_, B_, I_)).astype(dtype)
    y0 = rng.standard_normal((B_, O_)).astype(dtype)
    lens = rng.integers(0, T_ + 1, size=B_)
    dout = rng.standard_normal((T_, B_, O_)).astype(dtype)

    def run():
        out, y_n, cache = crnn.jordan_forward(x, y0, **args, lengths=lens,
                                              output_nonlinearity="tanh")
        return [out, y_n, *crnn.jordan_backward(dout, None, cache)]

    crnn.set_num_threads(1)
    base = run()
    for threads in (2, 3, 4):
        crnn.set_num_threads(threads)
        for a, b in zip(run(), base):
            assert np.array_equal(a, b)


def test_c_engine_caches_are_interchangeable():
    x, y0, w, dout, dy_n = _problem(seed=9)
    _, _, c_cache = crnn.jordan_forward(x, y0, **w, lengths=[T, 1, 3])
    _, _, r_cache = reference.jordan_forward(x, y0, **w, lengths=[T, 1, 3])
    for a, b in zip(crnn.jordan_backward(dout, dy_n, r_cache),
                    reference.jordan_backward(dout, dy_n, c_cache)):
        assert_rel_close(a, b, dtype=np.float64)
    with pytest.raises(TypeError, match="JordanCache"):
        crnn.jordan_backward(dout, dy_n, None)
    with pytest.raises(ValueError, match="dout"):
        crnn.jordan_backward(dout[:, :1], dy_n, c_cache)
    with pytest.raises(TypeError):
        crnn.jordan_forward(x.astype(np.float32), y0, **w)
