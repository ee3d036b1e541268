"""The specification of crnn's embedding and attention, in plain NumPy.

Part of `crnn.reference` (which re-exports these four functions): the
oracle the C engine's `crnn.functional.embedding_backward` and
`crnn.functional.attention_forward` / `attention_backward` are held against.
Written to be read, each step as its formula; arithmetic stays in the input
dtype. Arguments are checked by `crnn._validate_seq`, shared with the C
engine, so both engines accept and reject exactly the same calls.

Embedding
---------
``out[..., :] = weight[ids[...], :]``; the backward scatter-adds ``dout``
into a zero ``(num_embeddings, embedding_dim)`` gradient, id by id in the
order of ``ids.reshape(-1)``, and leaves the ``padding_idx`` row zero.

Attention (global, over all decoder steps at once)
--------------------------------------------------
Decoder states ``s_t = query[t, b]`` (Q features), encoder outputs
``h_j = keys[j, b]`` (K features), for t < T, j < S::

    dot        e_tj = s_t . h_j                                 (Q = K)
    general    e_tj = s_t^T W_a h_j                             W_a (Q, K)
    additive   e_tj = v^T tanh(W_q s_t + W_k h_j)               W_q (A, Q), W_k (A, K), v (A,)

    e_tj = -inf for j >= lengths[b]                              (padded source steps,
                                                                  whose keys are never read)
    alpha_tj = exp(e_tj) / sum_j' exp(e_tj')                     (0 for every j if lengths[b] = 0)
    c_t = sum_j alpha_tj h_j
    out_t = tanh(W_c [c_t; s_t])                                 W_c (Q, K + Q)

Luong et al. (2015) "dot", "general" and the attentional hidden state
``out_t``; Bahdanau et al. (2015) the "additive" (concat) score.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

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
    """Look up the rows of `weight` for integer `ids` of any shape.

    ``out[i..., :] = weight[ids[i...], :]`` (torch.nn.functional.embedding).

    Parameters
    ----------
    ids : array_like of ints, any shape
        Token ids in [0, num_embeddings); any integer dtype (bool, float and
        object arrays raise TypeError, ids out of range ValueError).
    weight : ndarray, shape (num_embeddings, embedding_dim)
        float32 or float64.
    padding_idx : int or None
        Accepted for symmetry with `embedding_backward` (checked, in
        [-num_embeddings, num_embeddings)); the forward reads that row like
        any other.

    Returns
    -------
    ndarray, shape ``ids.shape + (embedding_dim,)``
        A new array of weight's dtype.
    """
    ids, w, _ = embedding_forward_args(ids, weight, padding_idx)
    return w[ids]


def embedding_backward(
    ids: Any, dout: Any, num_embeddings: int, padding_idx: Optional[int] = None
) -> np.ndarray:
    """The gradient of `embedding_forward` with respect to ``weight``.

    ``dweight[v] = sum over positions i with ids[i] == v of dout[i]``,
    summed in the order of ``ids.reshape(-1)``; the ``padding_idx`` row (if
    any) gets no gradient.

    Parameters
    ----------
    ids : array_like of ints, any shape
        The ids of the forward, in [0, num_embeddings).
    dout : ndarray, shape ``ids.shape + (embedding_dim,)``
        Gradient with respect to the forward's output; float32 or float64.
    num_embeddings : int (>= 1)
    padding_idx : int or None
        In [-num_embeddings, num_embeddings); negative counts from the end.

    Returns
    -------
    ndarray, shape (num_embeddings, embedding_dim)
        A new array of dout's dtype.
    """
    ids, d, V, pad = embedding_backward_args(ids, dout, num_embeddings, padding_idx)
    D = d.shape[-1]
    dweight = np.zeros((V, D), dtype=d.dtype)
    np.add.at(dweight, ids.reshape(-1), d.reshape(ids.size, D))
    if pad is not None:
        dweight[pad] = 0
    return dweight


# --------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------


def _batch_major(a: np.ndarray) -> np.ndarray:
    """(T, B, F) -> (B, T, F), a view."""
    return a.transpose(1, 0, 2)


def _time_major(a: np.ndarray) -> np.ndarray:
    """(B, T, F) -> a new C-contiguous (T, B, F)."""
    return np.ascontiguousarray(a.transpose(1, 0, 2))


def _valid_steps(lengths: Optional[np.ndarray], B: int, S: int) -> np.ndarray:
    """(B, 1, S) booleans: source step j of row b is valid (j < lengths[b])."""
    j = np.arange(S)[None, None, :]
    if lengths is None:
        return np.ones((B, 1, S), dtype=bool)
    return j < lengths[:, None, None]


def _source(keys: np.ndarray, lengths: Optional[np.ndarray]) -> np.ndarray:
    """The encoder outputs h_j batch-major (B, S, K), zero at padded steps
    (so those steps are never read, whatever they hold)."""
    h = _batch_major(keys)
    if lengths is None:
        return h
    return np.where(_valid_steps(lengths, h.shape[0], h.shape[1]).transpose(0, 2, 1), h, 0)


def _additive_terms(s: np.ndarray, h: np.ndarray, w: Mapping[str, np.ndarray]) -> np.ndarray:
    """u_tj = tanh(W_q s_t + W_k h_j), shape (B, T, S, A)."""
    pq = s @ w["weight_q"].T  # (B, T, A)
    pk = h @ w["weight_k"].T  # (B, S, A)
    return np.tanh(pq[:, :, None, :] + pk[:, None, :, :])


def _scores(score: str, s: np.ndarray, h: np.ndarray, w: Mapping[str, np.ndarray]) -> np.ndarray:
    """e_tj for every row, shape (B, T, S) (s: (B, T, Q), h: (B, S, K))."""
    if score == "dot":
        return s @ h.transpose(0, 2, 1)
    if score == "general":
        return s @ (h @ w["weight_a"].T).transpose(0, 2, 1)  # s_t . (W_a h_j)
    return _additive_terms(s, h, w) @ w["v"]


def _masked_softmax(e: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """softmax over the last axis of the valid entries; 0 elsewhere (and for a
    row with no valid entry at all)."""
    e = np.where(valid, e, -np.inf)
    m = np.max(e, axis=2, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0)  # a row with no valid step
    p = np.exp(np.where(valid, e - m, -np.inf))
    z = p.sum(axis=2, keepdims=True)
    return p / np.where(z > 0, z, 1)


def attention_forward(
    score: str, query: Any, keys: Any, weights: Mapping[str, Any], *, lengths: Optional[Any] = None
) -> Tuple[np.ndarray, np.ndarray, AttentionCache]:
    """Global attention of every decoder step over the encoder outputs.

    With ``s_t = query[t, b]``, ``h_j = keys[j, b]``::

        dot        e_tj = s_t . h_j                        (query_size == key_size)
        general    e_tj = s_t^T W_a h_j
        additive   e_tj = v^T tanh(W_q s_t + W_k h_j)
        e_tj = -inf for j >= lengths[b]  (padded source steps are masked;
                                          their keys are never read)
        alpha_tj = softmax_j(e_tj)       (all 0 when lengths[b] == 0)
        c_t = sum_j alpha_tj h_j
        out_t = tanh(W_c [c_t; s_t])

    Parameters
    ----------
    score : {"dot", "general", "additive"}
    query : ndarray, shape (T, B, Q)
        The decoder's states s_t (time-major), float32 or float64.
    keys : ndarray, shape (S, B, K)
        The encoder's outputs h_j (time-major), same dtype.
    weights : mapping of str to ndarray
        ``"dot"``: ``weight_c``; ``"general"``: ``weight_a`` (Q, K),
        ``weight_c``; ``"additive"``: ``weight_q`` (A, Q), ``weight_k``
        (A, K), ``v`` (A,), ``weight_c``. ``weight_c`` is (Q, K + Q).
    lengths : array_like of B ints in [0, S], or None
        Valid source steps of each batch row; None: all S. Keys at the
        other steps are never read (they get zero gradient).

    Returns
    -------
    out : ndarray, shape (T, B, Q)
        The attentional states tanh(W_c [c_t; s_t]).
    alpha : ndarray, shape (T, B, S)
        The attention weights (rows sum to 1 over the valid steps).
    cache : AttentionCache
        For `attention_backward`; holds ``out``, ``alpha`` and the context
        vectors ``cache.context`` (T, B, K) by reference.
    """
    a = attention_args(score, query, keys, weights, lengths)
    w = a.weights
    s = _batch_major(a.query)  # (B, T, Q)
    h = _source(a.keys, a.lengths)  # (B, S, K)
    e = _scores(a.score, s, h, w)  # (B, T, S)
    alpha = _masked_softmax(e, _valid_steps(a.lengths, a.B, a.S))
    c = alpha @ h  # (B, T, K)
    out = np.tanh(np.concatenate([c, s], axis=2) @ w["weight_c"].T)  # (B, T, Q)
    cache = AttentionCache(
        a.score, a.query, a.keys, w, a.lengths, _time_major(alpha), _time_major(c), _time_major(out)
    )
    return cache.out, cache.alpha, cache


def attention_backward(dout: Any, cache: AttentionCache) -> AttentionGrads:
    """Backpropagate through `attention_forward`.

    With ``z_t = W_c [c_t; s_t]``, ``out_t = tanh(z_t)``::

        dz_t = dout_t (1 - out_t^2);   dW_c = sum_t dz_t [c_t; s_t]^T;   [dc_t; ds_t] = W_c^T dz_t
        dalpha_tj = dc_t . h_j;        dh_j = sum_t alpha_tj dc_t
        de_tj = alpha_tj (dalpha_tj - sum_j' alpha_tj' dalpha_tj')     (0 on masked steps)
        dot       ds_t += sum_j de_tj h_j;       dh_j += sum_t de_tj s_t
        general   ds_t += sum_j de_tj W_a h_j;   dh_j += W_a^T sum_t de_tj s_t;
                  dW_a = sum_tj de_tj s_t h_j^T
        additive  u_tj = tanh(W_q s_t + W_k h_j);  g_tj = de_tj v * (1 - u_tj^2)
                  dv = sum_tj de_tj u_tj;  dW_q = sum_t (sum_j g_tj) s_t^T;  ds_t += W_q^T sum_j g_tj
                  dW_k = sum_j (sum_t g_tj) h_j^T;  dh_j += W_k^T sum_t g_tj

    Parameters
    ----------
    dout : ndarray, shape (T, B, Q)
        Gradient of the loss with respect to ``out``.
    cache : AttentionCache
        From `attention_forward` (either engine's).

    Returns
    -------
    AttentionGrads
        ``dquery`` (T, B, Q), ``dkeys`` (S, B, K) and ``dweights``, a dict
        with one gradient per weight of the score (same names and shapes).
    """
    a, c, dout = attention_backward_args(dout, cache)
    w = a.weights
    s, h = _batch_major(a.query), _source(a.keys, a.lengths)
    alpha, ctx, out = _batch_major(c.alpha), _batch_major(c.context), _batch_major(c.out)
    d = _batch_major(dout)
    K, Q = a.K, a.Q
    dw: Dict[str, np.ndarray] = {}

    # out = tanh(z), z = [c; s] W_c^T
    dz = d * (1 - out * out)  # (B, T, Q)
    cs = np.concatenate([ctx, s], axis=2)  # (B, T, K + Q)
    dw["weight_c"] = dz.reshape(-1, Q).T @ cs.reshape(-1, K + Q)
    dcs = dz @ w["weight_c"]  # (B, T, K + Q)
    dctx, ds = dcs[:, :, :K], dcs[:, :, K:].copy()

    # c_t = sum_j alpha_tj h_j
    dalpha = dctx @ h.transpose(0, 2, 1)  # (B, T, S)
    dh = alpha.transpose(0, 2, 1) @ dctx  # (B, S, K)

    # softmax over the valid steps (alpha is 0 on the others, so de is too)
    de = alpha * (dalpha - np.sum(alpha * dalpha, axis=2, keepdims=True))

    if a.score == "dot":
        ds += de @ h
        dh += de.transpose(0, 2, 1) @ s
    elif a.score == "general":
        kw = h @ w["weight_a"].T  # (B, S, Q): W_a h_j
        ds += de @ kw
        dkw = de.transpose(0, 2, 1) @ s  # (B, S, Q)
        dh += dkw @ w["weight_a"]
        dw["weight_a"] = dkw.reshape(-1, Q).T @ h.reshape(-1, K)
    else:
        u = _additive_terms(s, h, w)  # (B, T, S, A)
        A = a.A
        dw["v"] = np.einsum("btsa,bts->a", u, de)
        g = de[..., None] * w["v"] * (1 - u * u)  # d(W_q s_t + W_k h_j), (B, T, S, A)
        dpq = g.sum(axis=2)  # (B, T, A)
        dpk = g.sum(axis=1)  # (B, S, A)
        dw["weight_q"] = dpq.reshape(-1, A).T @ s.reshape(-1, Q)
        ds += dpq @ w["weight_q"]
        dw["weight_k"] = dpk.reshape(-1, A).T @ h.reshape(-1, K)
        dh += dpk @ w["weight_k"]

    dweights = {n: dw[n] for n in ATTENTION_WEIGHTS[a.score]}
    return AttentionGrads(_time_major(ds), _time_major(dh), dweights)
