"""crnn.nn.Attention and the functional pair attention_forward / attention_backward.

- the reference against the same computation written in torch (float64,
  autograd), for every score, with and without masks;
- central differences (`crnn.gradcheck`) for every score, mask and engine;
- the C engine's functions against the reference (float32 <= 1e-5, float64
  <= 1e-12), also at larger shapes (both run on NumPy: no thread count
  applies);
- masking: padded source steps get no weight and no gradient; rows of
  length 0 attend to nothing;
- bad inputs, nothing modified; save / load.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import crnn
from crnn import functional as F, reference as R
from crnn.nn import Attention
from helpers import HAVE_TORCH, REL_TOL, rel_error

ENGINES = {"c": F, "numpy": R}
SCORES = ["dot", "general", "additive"]
DTYPES = [np.float32, np.float64]


def _problem(score, T, S, B, Q, K, A, dtype=np.float64, seed=0, lengths=None):
    rng = np.random.default_rng(seed)
    if score == "dot":
        K = Q
    query = rng.standard_normal((T, B, Q)).astype(dtype)
    keys = rng.standard_normal((S, B, K)).astype(dtype)
    w = {"weight_c": (rng.standard_normal((Q, K + Q)) * 0.4).astype(dtype)}
    if score == "general":
        w["weight_a"] = (rng.standard_normal((Q, K)) * 0.4).astype(dtype)
    if score == "additive":
        w["weight_q"] = (rng.standard_normal((A, Q)) * 0.4).astype(dtype)
        w["weight_k"] = (rng.standard_normal((A, K)) * 0.4).astype(dtype)
        w["v"] = rng.standard_normal(A).astype(dtype)
        w = {n: w[n] for n in ("weight_q", "weight_k", "v", "weight_c")}
    elif score == "general":
        w = {n: w[n] for n in ("weight_a", "weight_c")}
    dout = rng.standard_normal((T, B, Q)).astype(dtype)
    return query, keys, w, dout


def _torch_attention(score, query, keys, w, lengths):
    """The same computation written in torch (autograd does the backward)."""
    import torch

    s, h = query.permute(1, 0, 2), keys.permute(1, 0, 2)
    if score == "dot":
        e = s @ h.transpose(1, 2)
    elif score == "general":
        e = s @ (h @ w["weight_a"].T).transpose(1, 2)
    else:
        e = (
            torch.tanh((s @ w["weight_q"].T)[:, :, None, :] + (h @ w["weight_k"].T)[:, None, :, :])
            @ w["v"]
        )
    if lengths is not None:
        valid = torch.arange(h.shape[1])[None, None, :] < torch.as_tensor(lengths)[:, None, None]
        e = e.masked_fill(~valid, float("-inf"))
    alpha = torch.softmax(e, dim=-1)
    c = alpha @ h
    out = torch.tanh(torch.cat([c, s], dim=-1) @ w["weight_c"].T)
    return out.permute(1, 0, 2), alpha.permute(1, 0, 2)


# --------------------------------------------------------------------------
# The formulas: torch, central differences
# --------------------------------------------------------------------------


@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
@pytest.mark.parametrize("backend", ENGINES)
@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("lengths", [None, [6, 2, 1, 4]])
def test_matches_torch_autograd(backend, score, lengths):
    import torch

    eng = ENGINES[backend]
    query, keys, w, dout = _problem(score, 5, 6, 4, 4, 3, 5, seed=1)
    out, alpha, cache = eng.attention_forward(score, query, keys, w, lengths=lengths)
    g = eng.attention_backward(dout, cache)

    tq = torch.tensor(query, requires_grad=True)
    tk = torch.tensor(keys, requires_grad=True)
    tw = {n: torch.tensor(v, requires_grad=True) for n, v in w.items()}
    t_out, t_alpha = _torch_attention(score, tq, tk, tw, lengths)
    t_out.backward(torch.tensor(dout))
    pairs = [
        ("out", out, t_out),
        ("alpha", alpha, t_alpha),
        ("dquery", g.dquery, tq.grad),
        ("dkeys", g.dkeys, tk.grad),
    ] + [(n, g.dweights[n], tw[n].grad) for n in w]
    for name, got, want in pairs:
        want = want.detach().numpy()
        assert got.shape == want.shape, name
        assert rel_error(got, want) <= 1e-10, f"{name}: {rel_error(got, want):.2e}"
    assert list(g.dweights) == list(w)


@pytest.mark.parametrize("backend", ENGINES)
@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("lengths", [None, [5, 1, 0, 3]])
def test_gradcheck(backend, score, lengths):
    T, S, B, Q, K = 3, 5, 4, 3, 4
    attn = Attention(
        score,
        Q,
        Q if score == "dot" else K,
        2 if score == "additive" else None,
        dtype=np.float64,
        seed=2,
        backend=backend,
    )
    rng = np.random.default_rng(3)
    query = rng.standard_normal((T, B, Q))
    keys = rng.standard_normal((S, B, attn.key_size))
    target = rng.standard_normal((T, B, Q))

    def loss():
        out, _ = attn(query, keys, lengths)
        return float(np.sum(out * target))

    attn.zero_grad()
    attn(query, keys, lengths)
    dq, dk = attn.backward(target)
    rep = crnn.gradcheck(
        loss,
        dict(attn.params, query=query, keys=keys),
        dict(attn.grads, query=dq, keys=dk),
        atol=1e-9,
    )
    assert rep.ok, str(rep)
    if lengths is not None:
        for b, n in enumerate(lengths):
            assert not dk[n:, b].any()  # padded source steps: no gradient


# --------------------------------------------------------------------------
# Masking
# --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ENGINES)
@pytest.mark.parametrize("score", SCORES)
def test_padded_source_steps_are_masked(backend, score):
    eng = ENGINES[backend]
    lengths = np.array([4, 2, 0])
    query, keys, w, dout = _problem(score, 3, 4, 3, 3, 3, 2, seed=4)
    out, alpha, cache = eng.attention_forward(score, query, keys, w, lengths=lengths)
    for b, n in enumerate(lengths):
        assert not alpha[:, b, n:].any()
        if n:
            np.testing.assert_allclose(alpha[:, b, :n].sum(-1), 1, rtol=1e-14)
    np.testing.assert_array_equal(cache.context[:, 2], 0)  # length 0: c_t = 0
    # Keys at padded steps are never read: NaN or huge values there change nothing.
    keys2 = keys.copy()
    keys2[2:, 1] = np.nan
    keys2[:, 2] = 1e300
    out2, alpha2, cache2 = eng.attention_forward(score, query, keys2, w, lengths=lengths)
    np.testing.assert_array_equal(out2, out)
    np.testing.assert_array_equal(alpha2, alpha)
    g = eng.attention_backward(dout, cache)
    g2 = eng.attention_backward(dout, cache2)
    assert not g.dkeys[2:, 1].any() and not g.dkeys[:, 2].any()
    for a, b in zip(g[:2] + tuple(g.dweights.values()), g2[:2] + tuple(g2.dweights.values())):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# C against the reference
# --------------------------------------------------------------------------


def _all_results(eng, score, query, keys, w, lengths, dout):
    out, alpha, cache = eng.attention_forward(score, query, keys, w, lengths=lengths)
    g = eng.attention_backward(dout, cache)
    res = {
        "out": out,
        "alpha": alpha,
        "context": cache.context,
        "dquery": g.dquery,
        "dkeys": g.dkeys,
    }
    res.update({f"d{n}": v for n, v in g.dweights.items()})
    return res


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("lengths", [None, [9, 3, 0, 7, 1]])
def test_c_matches_reference(dtype, score, lengths):
    query, keys, w, dout = _problem(score, 6, 9, 5, 8, 6, 7, dtype=dtype, seed=5)
    got = _all_results(F, score, query, keys, w, lengths, dout)
    want = _all_results(R, score, query, keys, w, lengths, dout)
    for name in want:
        assert got[name].dtype == dtype and got[name].shape == want[name].shape, name
        err = rel_error(got[name], want[name])
        assert err <= REL_TOL[dtype], f"{name}: {err:.2e}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T,S,B,A", [(20, 30, 8, 64), (1, 40, 1, 100), (33, 7, 3, 16)])
def test_additive_matches_the_reference_at_larger_shapes(dtype, T, S, B, A):
    query, keys, w, dout = _problem("additive", T, S, B, 16, 12, A, dtype=dtype, seed=6)
    lengths = np.arange(B) * 5 % (S + 1)
    lengths[0] = S
    got = _all_results(F, "additive", query, keys, w, lengths, dout)
    want = _all_results(R, "additive", query, keys, w, lengths, dout)
    for name in want:
        assert rel_error(got[name], want[name]) <= REL_TOL[dtype], name


# --------------------------------------------------------------------------
# Layer, API, bad inputs
# --------------------------------------------------------------------------


def test_both_engines_share_signatures_and_docs():
    for name in ("attention_forward", "attention_backward"):
        assert inspect.signature(getattr(F, name)) == inspect.signature(getattr(R, name))
        assert getattr(crnn, name) is getattr(F, name)
    assert "tanh(W_c [c_t; s_t])" in Attention.__doc__
    assert "v^T tanh(W_q s_t + W_k h_j)" in R.attention_forward.__doc__
    assert crnn.Attention is Attention


def test_layer_parameters_and_config():
    a = Attention("additive", 4, 6, seed=0)
    assert list(a.params) == ["weight_q", "weight_k", "v", "weight_c"]
    assert a.params["weight_q"].shape == (4, 4) and a.params["weight_c"].shape == (4, 10)
    assert Attention("additive", 4, 6, 3).params["v"].shape == (3,)
    assert list(Attention("general", 4, 6).params) == ["weight_a", "weight_c"]
    assert list(Attention("dot", 4, 4).params) == ["weight_c"]
    for score in SCORES:
        m = Attention(score, 5, 5, dtype=np.float64, seed=1)
        assert Attention.parameter_count(m.config()) == m.num_parameters()
        bound = 1 / np.sqrt(10)
        assert np.abs(m.params["weight_c"]).max() <= bound
    np.testing.assert_array_equal(
        Attention("general", 3, 2, seed=5).params["weight_a"],
        Attention("general", 3, 2, seed=5).params["weight_a"],
    )


@pytest.mark.parametrize("score", SCORES)
def test_save_load(tmp_path, score):
    a = Attention(score, 3, 3, dtype=np.float64, seed=1, backend="numpy")
    crnn.save(a, tmp_path / "a.npz")
    b = crnn.load(tmp_path / "a.npz", backend="c")
    assert isinstance(b, Attention) and b.backend == "c"
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 2, 3)), rng.standard_normal((4, 2, 3))
    for x, y in zip(a(q, k, [4, 2]), b(q, k, [4, 2])):
        assert rel_error(x, y) <= 1e-12


def test_layer_errors():
    with pytest.raises(ValueError, match="score must be one of"):
        Attention("concat", 3, 3)
    with pytest.raises(ValueError, match="'dot' score needs query_size == key_size"):
        Attention("dot", 3, 4)
    with pytest.raises(ValueError, match="attention_size applies to the 'additive' score only"):
        Attention("general", 3, 4, 5)
    with pytest.raises(ValueError, match="query_size must be >= 1"):
        Attention("general", 0, 4)
    a = Attention("general", 3, 4, dtype=np.float64, seed=0)
    q = np.zeros((2, 5, 3))
    k = np.zeros((6, 5, 4))
    with pytest.raises(
        TypeError, match="query has dtype float32 but this layer computes in float64"
    ):
        a(q.astype(np.float32), k)
    with pytest.raises(ValueError, match=r"query must be time-major \(T, B, query_size\)"):
        a(q[0], k)
    with pytest.raises(ValueError, match=r"keys must be time-major \(S, B, key_size\) .* B = 5"):
        a(q, k[:, :4])
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T\] = \[0, 6\]"):
        a(q, k, [7, 0, 0, 0, 0])
    with pytest.raises(RuntimeError, match="before forward"):
        a.backward(q)
    a(q, k)
    before = {n: g.copy() for n, g in a.grads.items()}
    with pytest.raises(ValueError, match=r"dout must have the shape of out, \(2, 5, 3\)"):
        a.backward(q[:1])
    with pytest.raises(ValueError, match="cache does not come from this Attention"):
        a.backward(q, cache=Attention("dot", 3, 3, dtype=np.float64)(q, q)[0])
    for n in before:
        np.testing.assert_array_equal(a.grads[n], before[n])


def test_functional_errors():
    query, keys, w, dout = _problem("additive", 2, 3, 2, 3, 4, 5, seed=0)
    for eng in ENGINES.values():
        with pytest.raises(ValueError, match="score must be one of"):
            eng.attention_forward("bilinear", query, keys, w)
        with pytest.raises(ValueError, match="the 'dot' score has no weight 'weight_q'"):
            eng.attention_forward("dot", query, keys, w)
        with pytest.raises(ValueError, match="the 'additive' score needs weight 'v'"):
            eng.attention_forward("additive", query, keys, {**w, "v": None})
        with pytest.raises(
            ValueError, match=r"weight_k must have shape \(attention_size, key_size\) = \(5, 4\)"
        ):
            eng.attention_forward("additive", query, keys, {**w, "weight_k": w["weight_k"].T})
        with pytest.raises(
            ValueError, match=r"weight_c must have shape \(query_size, key_size \+ query_size\)"
        ):
            eng.attention_forward("additive", query, keys, {**w, "weight_c": w["weight_c"][:, 1:]})
        with pytest.raises(TypeError, match="keys has dtype float32 but query has dtype float64"):
            eng.attention_forward("additive", query, keys.astype(np.float32), w)
        with pytest.raises(TypeError, match="query must be a float32 or float64 array"):
            eng.attention_forward("additive", query.astype(int), keys, w)
        with pytest.raises(TypeError, match="weights must be a mapping"):
            eng.attention_forward("additive", query, keys, list(w.values()))
        with pytest.raises(ValueError, match="'dot' score needs query_size == key_size"):
            eng.attention_forward("dot", query, keys, {"weight_c": w["weight_c"]})
        with pytest.raises(TypeError, match="lengths must be integers"):
            eng.attention_forward("additive", query, keys, w, lengths=[1.5, 2])
        with pytest.raises(TypeError, match="cache must be the AttentionCache"):
            eng.attention_backward(dout, (1, 2))
        _, _, cache = eng.attention_forward("additive", query, keys, w)
        with pytest.raises(ValueError, match=r"dout must have shape \(2, 2, 3\)"):
            eng.attention_backward(dout[:, :1], cache)
        with pytest.raises(ValueError, match=r"cache.alpha must have shape"):
            eng.attention_backward(dout, cache._replace(alpha=cache.alpha[:1]))


@pytest.mark.parametrize("backend", ENGINES)
def test_inputs_are_never_modified(backend):
    eng = ENGINES[backend]
    for score in SCORES:
        query, keys, w, dout = _problem(score, 3, 4, 2, 3, 3, 4, seed=7)
        copies = [query.copy(), keys.copy(), dout.copy()] + [v.copy() for v in w.values()]
        _, _, cache = eng.attention_forward(score, query, keys, w, lengths=[4, 1])
        eng.attention_backward(dout, cache)
        for a, b in zip([query, keys, dout] + list(w.values()), copies):
            np.testing.assert_array_equal(a, b)
