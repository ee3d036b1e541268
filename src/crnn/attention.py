"""`Attention`: global attention for encoder-decoders (Luong and Bahdanau scores).

A decoder that attends reads, at every step, a weighted average of all the
encoder's outputs instead of relying on the encoder's final state alone.
The layer computes it for all decoder steps at once (the decoder's states
come from a teacher-forced pass, or one step at a time while decoding), over
the encoder outputs, masking padded source steps. The computation is
`crnn.functional.attention_forward` (``backend="c"``: batched products on
BLAS, the additive score's tanh on NumPy's vectorised tanh) or
`crnn.reference.attention_forward` (the NumPy specification), chosen by
``backend``.
"""

from __future__ import annotations

import numbers
from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import init as _init
from ._validate_seq import ATTENTION_WEIGHTS, AttentionCache, check_count, check_score
from .module import Module, config_sizes, float_dtype, input_array

__all__ = ["Attention"]


def _check_seed(seed: Any) -> Optional[int]:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be a non-negative integer or None, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed}")
    return int(seed)


class Attention(Module):
    """Global attention over encoder outputs, with Luong's attentional output.

    For decoder states ``s_t`` (the query, Q features) and encoder outputs
    ``h_j`` (the keys, K features), per batch row::

        dot        e_tj = s_t . h_j                       (Luong; needs Q == K)
        general    e_tj = s_t^T W_a h_j                   (Luong)
        additive   e_tj = v^T tanh(W_q s_t + W_k h_j)     (Bahdanau)

        e_tj     = -inf for j >= lengths[b]               (padded source steps are masked)
        alpha_tj = exp(e_tj) / sum_j' exp(e_tj')          (all 0 for a row of length 0)
        c_t      = sum_j alpha_tj h_j                     (the context vector)
        out_t    = tanh(W_c [c_t; s_t])                   (Luong's attentional state)

    Parameters
    ----------
    score : {"dot", "general", "additive"}
    query_size : int (>= 1)
        Q, the decoder's state size (also the size of ``out``).
    key_size : int (>= 1)
        K, the encoder's output size (Q for "dot").
    attention_size : int or None
        A, the width of the additive score's hidden layer; None means Q.
        Only for "additive".
    dtype : float32 or float64
    seed : int or None
        Seeds the initialisation: every weight U(-1/sqrt(fan_in),
        1/sqrt(fan_in)) as ``torch.nn.Linear`` draws it (fan_in: K for
        ``weight_a`` and ``weight_k``, Q for ``weight_q``, A for ``v``,
        K + Q for ``weight_c``).
    backend : {"c", "numpy"}

    Attributes
    ----------
    params, grads : dict[str, ndarray]
        ``weight_c`` (Q, K + Q) for every score; "general" adds
        ``weight_a`` (Q, K); "additive" adds ``weight_q`` (A, Q),
        ``weight_k`` (A, K) and ``v`` (A,). No biases.

    Notes
    -----
    ``out, alpha = attn(query, keys, lengths=None)`` with query (T, B, Q),
    keys (S, B, K) time-major, out (T, B, Q) and alpha (T, B, S);
    ``dquery, dkeys = attn.backward(dout)``. Not thread-safe (the last
    forward's cache is kept per object).
    """

    def __init__(
        self,
        score: str,
        query_size: int,
        key_size: int,
        attention_size: Optional[int] = None,
        *,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
    ) -> None:
        super().__init__(backend=backend)
        self.score = check_score(score)
        self.query_size = check_count("query_size", query_size, 1)
        self.key_size = check_count("key_size", key_size, 1)
        if self.score == "dot" and self.key_size != self.query_size:
            raise ValueError(
                f"the 'dot' score needs query_size == key_size, got {query_size} "
                f"and {key_size}; use 'general' or 'additive'"
            )
        if self.score == "additive":
            self.attention_size: Optional[int] = (
                self.query_size
                if attention_size is None
                else check_count("attention_size", attention_size, 1)
            )
        elif attention_size is not None:
            raise ValueError(
                f"attention_size applies to the 'additive' score only, got "
                f"attention_size={attention_size!r} with score={score!r}"
            )
        else:
            self.attention_size = None
        self.dtype = float_dtype(dtype)
        self.seed = _check_seed(seed)
        rng = np.random.default_rng(self.seed)
        Q, K, A = self.query_size, self.key_size, self.attention_size or 0
        shapes = {
            "weight_a": ((Q, K), K),
            "weight_q": ((A, Q), Q),
            "weight_k": ((A, K), K),
            "v": ((A,), A),
            "weight_c": ((Q, K + Q), K + Q),
        }
        for name in ATTENTION_WEIGHTS[self.score]:
            shape, fan_in = shapes[name]
            self.register_parameter(name, _init.pytorch_default(shape, fan_in, rng, self.dtype))
        self._cache: Optional[AttentionCache] = None

    @property
    def cache(self) -> Optional[AttentionCache]:
        """The cache of the last forward call (None before the first)."""
        return self._cache

    def config(self) -> Dict[str, Any]:
        return dict(
            score=self.score,
            query_size=self.query_size,
            key_size=self.key_size,
            attention_size=self.attention_size,
            dtype=self.dtype.name,
            seed=self.seed,
            backend=self.backend,
        )

    @classmethod
    def parameter_count(cls, cfg: Dict[str, Any]) -> Optional[int]:
        """The number of parameters ``cls(**cfg)`` would allocate, or None."""
        q, k, a = cfg.get("query_size"), cfg.get("key_size"), cfg.get("attention_size")
        sizes = config_sizes(q, k, q if a is None else a)
        score = cfg.get("score")
        if score not in ATTENTION_WEIGHTS or sizes is None:
            return None
        q, k, a = sizes
        n = q * (k + q)
        if score == "general":
            n += q * k
        elif score == "additive":
            n += a * (q + k + 1)
        return n

    def _weights(self) -> Dict[str, np.ndarray]:
        return {n: self.params[n] for n in ATTENTION_WEIGHTS[self.score]}

    def forward(self, query: Any, keys: Any, lengths: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        """Attend from every decoder step to the encoder outputs.

        Parameters
        ----------
        query : ndarray, shape (T, B, query_size)
            The decoder's states s_t, time-major.
        keys : ndarray, shape (S, B, key_size)
            The encoder's outputs h_j, time-major.
        lengths : array_like of B ints in [0, S], or None
            Valid source steps per row; later steps get no attention.

        Returns
        -------
        out : ndarray, shape (T, B, query_size)
            tanh(W_c [c_t; s_t]).
        alpha : ndarray, shape (T, B, S)
            The attention weights; each row sums to 1 over its valid steps.
        """
        query = input_array("query", query, self.dtype)
        keys = input_array("keys", keys, self.dtype)
        if query.ndim != 3 or query.shape[2] != self.query_size:
            raise ValueError(
                f"query must be time-major (T, B, query_size) with query_size = "
                f"{self.query_size}, got shape {query.shape}"
            )
        if keys.ndim != 3 or keys.shape[2] != self.key_size or keys.shape[1] != query.shape[1]:
            raise ValueError(
                f"keys must be time-major (S, B, key_size) with key_size = "
                f"{self.key_size} and the query's B = {query.shape[1]}, got shape "
                f"{keys.shape}"
            )
        out, alpha, cache = self.engine.attention_forward(
            self.score, query, keys, self._weights(), lengths=lengths
        )
        self._cache = cache
        # The cache refers to out and alpha: hand out copies so that changing
        # them cannot corrupt the backward.
        return out.copy(), alpha.copy()

    def backward(
        self, dout: Any, *, cache: Optional[AttentionCache] = None
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Backpropagate through the last forward call (or `cache`).

        Parameters
        ----------
        dout : ndarray, shape (T, B, query_size)
            Gradient of the loss with respect to ``out``.
        cache : AttentionCache, optional
            A cache saved from ``self.cache``; by default the last forward's.

        Returns
        -------
        dquery : ndarray, shape (T, B, query_size)
        dkeys : ndarray, shape (S, B, key_size)
            Zero at padded source steps.

        The parameter gradients are added to ``self.grads``.
        """
        c = self._cache if cache is None else cache
        if c is None:
            raise RuntimeError("backward() called before forward(): there is no cache to use")
        if (
            not isinstance(c, AttentionCache)
            or c.score != self.score
            or any(
                c.weights.get(n) is None or c.weights[n].shape != p.shape
                for n, p in self._weights().items()
            )
            or c.query.dtype != self.dtype
        ):
            raise ValueError("cache does not come from this Attention's forward")
        dout = input_array("dout", dout, self.dtype)
        if dout.shape != c.out.shape:
            raise ValueError(f"dout must have the shape of out, {c.out.shape}, got {dout.shape}")
        g = self.engine.attention_backward(dout, c)
        for name, grad in g.dweights.items():
            self.grads[name] += grad
        return g.dquery, g.dkeys
