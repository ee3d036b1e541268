"""The C engine's embedding and attention (re-exported by `crnn.functional`).

Same names, signatures and semantics as `crnn._reference_seq` (the NumPy
specification, re-exported by `crnn.reference`); arguments are checked once
by `crnn._validate_seq` before any C code runs.

What runs where, and why:

- Embedding forward: a gather, ``np.take`` (memory-bound; NumPy's copy loop
  is already at memory speed, a C kernel would win nothing).
- Embedding backward: a scatter-add, the C kernel
  ``crnn_embedding_backward`` (OpenMP; bitwise equal for any thread count).
- Attention, "dot" and "general" scores, the context vectors and Luong's
  output layer: batched matrix products on NumPy's BLAS (``matmul`` calls
  GEMM per batch row), plus the masked softmax, element-wise and O(T*B*S),
  on NumPy. These are plain GEMMs that an optimised BLAS runs near peak;
  a hand-written C loop would only be slower.
- Attention, "additive" score: the B*T*S*A tensor ``tanh(W_q s_t + W_k
  h_j)``, its contraction with v and its backward are the hot loop (no GEMM
  can express them); they run on NumPy one batch row at a time (a T*S*A
  block, never the whole tensor), on NumPy's vectorised (SIMD) tanh,
  recomputing the tanh in the backward instead of storing it. The
  projections ``W_q s_t`` and ``W_k h_j`` are GEMMs on BLAS. A C loop over
  libm's scalar tanh measured 10-20x slower than this (9 x 9 steps, batch
  32, A = 128, float64: 5.4-9.5 ms against 0.5 ms); a C kernel would need a
  vector tanh such as the recurrent kernels' own. In ``crnn translate`` the
  additive score takes about 8% of the training time.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from . import _core
from ._validate_seq import (
    ATTENTION_WEIGHTS,
    AttentionCache,
    AttentionGrads,
    attention_args,
    attention_backward_args,
    embedding_backward_args,
    embedding_forward_args,
)

__all__ = ["embedding_forward", "embedding_backward", "attention_forward", "attention_backward"]


# --------------------------------------------------------------------------
# Embedding
# --------------------------------------------------------------------------


def embedding_forward(ids: Any, weight: Any, padding_idx: Optional[int] = None) -> np.ndarray:
    """Look up the rows of `weight` for integer `ids` of any shape (C engine).

    Arguments, results and errors as in `crnn.reference.embedding_forward`.
    """
    ids, w, _ = embedding_forward_args(ids, weight, padding_idx)
    return np.take(w, ids, axis=0)


def embedding_backward(
    ids: Any, dout: Any, num_embeddings: int, padding_idx: Optional[int] = None
) -> np.ndarray:
    """The gradient of `embedding_forward` w.r.t. ``weight`` (C engine).

    Arguments, results and errors as in `crnn.reference.embedding_backward`;
    the scatter-add runs in C (``crnn_embedding_backward``) with the GIL
    released and OpenMP threads each owning a contiguous range of embedding
    rows, and its result is bitwise the same for any thread count (each
    row sums its ids' gradients in the order of the ids).
    """
    ids, d, V, pad = embedding_backward_args(ids, dout, num_embeddings, padding_idx)
    dweight = np.empty((V, d.shape[-1]), dtype=d.dtype)  # every element written in C
    _core.embedding_backward(
        _core.DTYPES[d.dtype.name], ids, d, V, -1 if pad is None else pad, dweight
    )
    return dweight


# --------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------


def _additive_scores(
    pq: np.ndarray, pk: np.ndarray, v: np.ndarray, lengths: Optional[np.ndarray]
) -> np.ndarray:
    """e[t, b, j] = v . tanh(pq[t, b] + pk[j, b]) for j < lengths[b], else -inf.

    pq (T, B, A), pk (S, B, A), v (A,); returns (T, B, S).
    """
    T, B, A = pq.shape
    S = pk.shape[0]
    e = np.full((T, B, S), -np.inf, dtype=pq.dtype)
    for b in range(B):
        n = S if lengths is None else int(lengths[b])
        u = np.tanh(pq[:, b, None, :] + pk[None, :n, b, :])  # (T, n, A)
        e[:, b, :n] = u @ v
    return e


def _additive_scores_backward(
    pq: np.ndarray, pk: np.ndarray, v: np.ndarray, lengths: Optional[np.ndarray], de: np.ndarray
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dpq, dpk, dv) of `_additive_scores` from de (T, B, S)."""
    T, B, A = pq.shape
    S = pk.shape[0]
    dpq = np.zeros_like(pq)
    dpk = np.zeros_like(pk)
    dv = np.zeros_like(v)
    for b in range(B):
        n = S if lengths is None else int(lengths[b])
        u = np.tanh(pq[:, b, None, :] + pk[None, :n, b, :])  # (T, n, A)
        deb = de[:, b, :n]  # (T, n)
        dv += np.einsum("tna,tn->a", u, deb)
        g = deb[:, :, None] * v * (1 - u * u)
        dpq[:, b] = g.sum(axis=1)
        dpk[:n, b] = g.sum(axis=0)
    return dpq, dpk, dv


def _source(keys: np.ndarray, lengths: Optional[np.ndarray]) -> np.ndarray:
    """keys batch-major (B, S, K), a view; a copy zero at padded steps when
    there are any, so that those steps are never read."""
    S = keys.shape[0]
    if lengths is None or not np.any(lengths < S):
        return keys.transpose(1, 0, 2)
    kb = np.ascontiguousarray(keys.transpose(1, 0, 2))
    kb[np.arange(S)[None, :] >= lengths[:, None]] = 0
    return kb


def _softmax_valid(e: np.ndarray, lengths: Optional[np.ndarray]) -> np.ndarray:
    """In place on e (B, T, S): softmax over the valid steps of each row, 0 on
    the others (and everywhere for a row of length 0). Returns e."""
    B, _, S = e.shape
    if lengths is not None:
        invalid = np.arange(S)[None, :] >= lengths[:, None]  # (B, S)
        e[np.broadcast_to(invalid[:, None, :], e.shape)] = -np.inf
    m = np.max(e, axis=2, keepdims=True, initial=-np.inf)
    m[~np.isfinite(m)] = 0
    e -= m
    np.exp(e, out=e)
    z = e.sum(axis=2, keepdims=True)
    z[z == 0] = 1
    e /= z
    return e


def attention_forward(
    score: str, query: Any, keys: Any, weights: Mapping[str, Any], *, lengths: Optional[Any] = None
) -> Tuple[np.ndarray, np.ndarray, AttentionCache]:
    """Global attention of every decoder step over the encoder outputs (C engine).

    Arguments, results, formulas and errors as in
    `crnn.reference.attention_forward`. The "additive" score's tanh tensor
    is formed one batch row at a time; the products run on NumPy's BLAS.
    Do not modify ``out`` or ``alpha`` in place before the backward: the
    cache refers to them.
    """
    a = attention_args(score, query, keys, weights, lengths)
    w = a.weights
    K = a.K
    qb = a.query.transpose(1, 0, 2)  # (B, T, Q), a view
    kb = _source(a.keys, a.lengths)  # (B, S, K)
    if a.score == "dot":
        e = np.matmul(qb, kb.transpose(0, 2, 1))
    elif a.score == "general":
        kw = kb @ w["weight_a"].T  # (B, S, Q): W_a h_j
        e = np.matmul(qb, kw.transpose(0, 2, 1))
    else:
        pq = a.query @ w["weight_q"].T  # (T, B, A)
        pk = kb.transpose(1, 0, 2) @ w["weight_k"].T  # (S, B, A)
        e = np.ascontiguousarray(_additive_scores(pq, pk, w["v"], a.lengths).transpose(1, 0, 2))
    alpha = _softmax_valid(e, a.lengths)  # (B, T, S)
    c = np.matmul(alpha, kb)  # (B, T, K)
    wc = w["weight_c"]
    z = np.matmul(c, wc[:, :K].T)
    z += np.matmul(qb, wc[:, K:].T)
    out = np.tanh(z, out=z)
    cache = AttentionCache(
        a.score,
        a.query,
        a.keys,
        w,
        a.lengths,
        np.ascontiguousarray(alpha.transpose(1, 0, 2)),
        np.ascontiguousarray(c.transpose(1, 0, 2)),
        np.ascontiguousarray(out.transpose(1, 0, 2)),
    )
    return cache.out, cache.alpha, cache


def attention_backward(dout: Any, cache: AttentionCache) -> AttentionGrads:
    """Backpropagate through `attention_forward` (C engine).

    Arguments, results and formulas as in `crnn.reference.attention_backward`.
    """
    a, c, dout = attention_backward_args(dout, cache)
    w = a.weights
    K, Q = a.K, a.Q
    qb, kb = a.query.transpose(1, 0, 2), _source(a.keys, a.lengths)
    alpha = c.alpha.transpose(1, 0, 2)  # (B, T, S)
    dw: Dict[str, np.ndarray] = {}

    # out = tanh(z), z = W_c [c; s]
    dz = dout * (1 - c.out * c.out)  # (T, B, Q), time-major
    dz2 = dz.reshape(-1, Q)
    wc = w["weight_c"]
    dw["weight_c"] = np.concatenate(
        [dz2.T @ c.context.reshape(-1, K), dz2.T @ a.query.reshape(-1, Q)], axis=1
    )
    dctx = (dz @ wc[:, :K]).transpose(1, 0, 2)  # (B, T, K)
    ds = (dz @ wc[:, K:]).transpose(1, 0, 2)  # (B, T, Q)

    # c_t = sum_j alpha_tj h_j
    dalpha = np.matmul(dctx, kb.transpose(0, 2, 1))  # (B, T, S)
    dh = np.matmul(alpha.transpose(0, 2, 1), dctx)  # (B, S, K)

    # softmax over the valid steps
    dalpha -= np.sum(alpha * dalpha, axis=2, keepdims=True)
    de = np.multiply(alpha, dalpha, out=dalpha)  # (B, T, S)

    if a.score == "dot":
        ds += np.matmul(de, kb)
        dh += np.matmul(de.transpose(0, 2, 1), qb)
    elif a.score == "general":
        kw = kb @ w["weight_a"].T  # (B, S, Q)
        ds += np.matmul(de, kw)
        dkw = np.matmul(de.transpose(0, 2, 1), qb)  # (B, S, Q)
        dh += dkw @ w["weight_a"]
        dw["weight_a"] = dkw.reshape(-1, Q).T @ kb.reshape(-1, K)
    else:
        A = a.A
        pq = a.query @ w["weight_q"].T  # (T, B, A)
        pk = kb.transpose(1, 0, 2) @ w["weight_k"].T  # (S, B, A)
        dpq, dpk, dw["v"] = _additive_scores_backward(
            pq, pk, w["v"], a.lengths, np.ascontiguousarray(de.transpose(1, 0, 2))
        )
        dw["weight_q"] = dpq.reshape(-1, A).T @ a.query.reshape(-1, Q)
        ds += (dpq @ w["weight_q"]).transpose(1, 0, 2)
        dw["weight_k"] = dpk.reshape(-1, A).T @ kb.transpose(1, 0, 2).reshape(-1, K)
        dh += (dpk @ w["weight_k"]).transpose(1, 0, 2)

    dweights = {n: dw[n] for n in ATTENTION_WEIGHTS[a.score]}
    return AttentionGrads(
        np.ascontiguousarray(ds.transpose(1, 0, 2)),
        np.ascontiguousarray(dh.transpose(1, 0, 2)),
        dweights,
    )
