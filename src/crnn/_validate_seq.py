"""Input checks of the sequence-model operations (embedding, attention).

The companion of `crnn._validate` (the cells' validator) for the functional
entry points that are not recurrences: `embedding_forward` /
`embedding_backward` and `attention_forward` / `attention_backward`, in both
engines (`crnn.reference` and `crnn.functional`). Each public call normalises
its arguments here exactly once, before any computation and before any C
code: integer ids as C-contiguous int64, one floating dtype (float32 or
float64) for every floating array, C-contiguous native arrays, every shape
checked. Errors name the argument and what was expected; inputs are never
modified (a conversion makes a new array).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, Dict, NamedTuple, Optional, Tuple

import numpy as np

from ._validate import MAX_ELEMENTS, _common_float_dtype, as_array, as_float_array, check_lengths

__all__ = [
    "check_ids",
    "check_padding_idx",
    "check_count",
    "embedding_forward_args",
    "embedding_backward_args",
    "SCORES",
    "ATTENTION_WEIGHTS",
    "AttentionArgs",
    "AttentionCache",
    "AttentionGrads",
    "attention_args",
    "attention_backward_args",
    "check_score",
]


# --------------------------------------------------------------------------
# Embedding
# --------------------------------------------------------------------------


def check_count(name: str, value: Any, minimum: int = 0) -> int:
    """`value` as a Python int >= minimum; bools and non-integers rejected."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_ids(name: str, ids: Any, num_embeddings: int) -> np.ndarray:
    """Token ids of any shape as a C-contiguous int64 array in [0, num_embeddings).

    Integer dtypes only (bool, float, complex, object and strings raise
    TypeError); values outside the range raise ValueError naming the
    smallest and largest id. Returns `ids` itself when it already is a
    C-contiguous int64 array.
    """
    if ids is None or isinstance(ids, (str, bytes)):
        raise TypeError(f"{name} must be an array of integer token ids, got {type(ids).__name__}")
    arr = as_array(name, ids)
    if arr.size == 0 and not isinstance(ids, np.ndarray) and arr.dtype.kind == "f":
        arr = arr.astype(np.int64)  # [] is float64 to NumPy
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an array of integer token ids, got dtype {arr.dtype}")
    if arr.size:
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi >= num_embeddings:
            raise ValueError(
                f"{name} must lie in [0, num_embeddings) = [0, {num_embeddings}), "
                f"got values in [{lo}, {hi}]"
            )
    if type(arr) is np.ndarray and arr.dtype == np.int64 and arr.flags.c_contiguous:
        return arr
    return np.ascontiguousarray(arr, dtype=np.int64)


def check_padding_idx(padding_idx: Any, num_embeddings: int) -> Optional[int]:
    """None, or `padding_idx` in [-num_embeddings, num_embeddings) as an index
    in [0, num_embeddings) (a negative one counts from the end, as in torch)."""
    if padding_idx is None:
        return None
    if isinstance(padding_idx, (bool, np.bool_)) or not isinstance(padding_idx, numbers.Integral):
        raise TypeError(f"padding_idx must be an integer or None, got {type(padding_idx).__name__}")
    index = int(padding_idx)
    if not -num_embeddings <= index < num_embeddings:
        raise ValueError(
            f"padding_idx must lie in [-num_embeddings, num_embeddings) = "
            f"[{-num_embeddings}, {num_embeddings}), got {padding_idx}"
        )
    return index % num_embeddings


def embedding_forward_args(
    ids: Any, weight: Any, padding_idx: Any
) -> Tuple[np.ndarray, np.ndarray, Optional[int]]:
    """(ids, weight, padding_idx) of `embedding_forward`, normalised."""
    dtype = _common_float_dtype([("weight", weight)], required=("weight",))
    shape = weight.shape if isinstance(weight, np.ndarray) else as_array("weight", weight).shape
    if len(shape) != 2:
        raise ValueError(f"weight must have shape (num_embeddings, embedding_dim), got {shape}")
    if shape[0] < 1:
        raise ValueError(f"weight must have at least one row (num_embeddings >= 1), got {shape}")
    w = as_float_array("weight", weight, dtype, (None, None))
    pad = check_padding_idx(padding_idx, w.shape[0])
    ids_arr = check_ids("ids", ids, w.shape[0])
    if ids_arr.size * w.shape[1] > MAX_ELEMENTS:
        raise ValueError(
            f"ids of shape {ids_arr.shape} with embedding_dim {w.shape[1]} give an "
            "output beyond 2**59 elements"
        )
    return ids_arr, w, pad


def embedding_backward_args(
    ids: Any, dout: Any, num_embeddings: Any, padding_idx: Any
) -> Tuple[np.ndarray, np.ndarray, int, Optional[int]]:
    """(ids, dout, num_embeddings, padding_idx) of `embedding_backward`, normalised."""
    V = check_count("num_embeddings", num_embeddings, 1)
    pad = check_padding_idx(padding_idx, V)
    dtype = _common_float_dtype([("dout", dout)], required=("dout",))
    ids_arr = check_ids("ids", ids, V)
    shape = dout.shape if isinstance(dout, np.ndarray) else as_array("dout", dout).shape
    if len(shape) != ids_arr.ndim + 1 or tuple(shape[:-1]) != ids_arr.shape:
        expected = "(" + "".join(f"{n}, " for n in ids_arr.shape) + "embedding_dim)"
        raise ValueError(
            f"dout must have shape ids.shape + (embedding_dim,) = {expected}, got {tuple(shape)}"
        )
    if V * shape[-1] > MAX_ELEMENTS:
        raise ValueError(
            f"num_embeddings * embedding_dim = {V} * {shape[-1]} exceeds 2**59 elements"
        )
    d = as_float_array("dout", dout, dtype, tuple(shape))
    return ids_arr, d, V, pad


# --------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------

SCORES = ("dot", "general", "additive")

# The parameters of each score, in order; every score ends with Luong's W_c.
ATTENTION_WEIGHTS: Dict[str, Tuple[str, ...]] = {
    "dot": ("weight_c",),
    "general": ("weight_a", "weight_c"),
    "additive": ("weight_q", "weight_k", "v", "weight_c"),
}

_WEIGHT_SHAPES = {  # in terms of Q (query_size), K (key_size), A (attention_size)
    "weight_a": ("Q", "K"),
    "weight_q": ("A", "Q"),
    "weight_k": ("A", "K"),
    "v": ("A",),
    "weight_c": ("Q", "K+Q"),
}
_SIZE_TEXT = {
    "Q": "query_size",
    "K": "key_size",
    "A": "attention_size",
    "K+Q": "key_size + query_size",
}


def check_score(score: Any) -> str:
    if not isinstance(score, str) or score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    return score


class AttentionArgs(NamedTuple):
    """The normalised arguments of an attention forward."""

    score: str
    query: np.ndarray  # (T, B, Q)
    keys: np.ndarray  # (S, B, K)
    weights: Dict[str, np.ndarray]  # ATTENTION_WEIGHTS[score], in order
    lengths: Optional[np.ndarray]  # (B,) int64 in [0, S], or None
    T: int
    S: int
    B: int
    Q: int
    K: int
    A: int  # attention_size (additive), else 0
    dtype: np.dtype


class AttentionCache(NamedTuple):
    """What an attention forward keeps for its backward (either engine's)."""

    score: str
    query: np.ndarray
    keys: np.ndarray
    weights: Dict[str, np.ndarray]
    lengths: Optional[np.ndarray]
    alpha: np.ndarray  # (T, B, S), the attention weights
    context: np.ndarray  # (T, B, K), c_t
    out: np.ndarray  # (T, B, Q), tanh(W_c [c_t; s_t])


class AttentionGrads(NamedTuple):
    """The gradients an attention backward returns."""

    dquery: np.ndarray  # (T, B, Q)
    dkeys: np.ndarray  # (S, B, K)
    dweights: Dict[str, np.ndarray]  # one per weight, same names and shapes


def _shape_of(name: str, value: Any) -> Tuple[int, ...]:
    if value is None:
        raise TypeError(f"{name} must be a float32 or float64 array, got None")
    return value.shape if isinstance(value, np.ndarray) else as_array(name, value).shape


def attention_args(score: Any, query: Any, keys: Any, weights: Any, lengths: Any) -> AttentionArgs:
    """Check and normalise the arguments of `attention_forward`."""
    score = check_score(score)
    names = ATTENTION_WEIGHTS[score]
    if not isinstance(weights, Mapping):
        raise TypeError(
            f"weights must be a mapping of {names} to arrays, got {type(weights).__name__}"
        )
    unknown = [k for k in weights if k not in names]
    if unknown:
        raise ValueError(
            f"the {score!r} score has no weight {unknown[0]!r} (its weights: {', '.join(names)})"
        )
    missing = [k for k in names if weights.get(k) is None]
    if missing:
        raise ValueError(
            f"the {score!r} score needs weight {missing[0]!r} (its weights: {', '.join(names)})"
        )
    dtype = _common_float_dtype(
        [("query", query), ("keys", keys)] + [(n, weights[n]) for n in names],
        required=("query", "keys") + names,
    )
    q_shape, k_shape = _shape_of("query", query), _shape_of("keys", keys)
    if len(q_shape) != 3:
        raise ValueError(f"query must be time-major (T, B, query_size), got shape {q_shape}")
    if len(k_shape) != 3 or k_shape[1] != q_shape[1]:
        raise ValueError(
            f"keys must be time-major (S, B, key_size) with the query's B = "
            f"{q_shape[1]}, got shape {k_shape}"
        )
    T, B, Q = q_shape
    S, _, K = k_shape
    if score == "dot" and Q != K:
        raise ValueError(
            f"the 'dot' score needs query_size == key_size, got query_size {Q} and key_size {K}"
        )
    A = 0
    if score == "additive":
        a_shape = _shape_of("v", weights["v"])
        if len(a_shape) != 1:
            raise ValueError(f"v must have shape (attention_size,), got {a_shape}")
        A = a_shape[0]
    sizes = {"Q": Q, "K": K, "A": A, "K+Q": K + Q}
    for n, size in (
        ("T * B * max(query_size, key_size)", T * B * max(Q, K)),
        ("S * B * key_size", S * B * K),
        ("T * B * S", T * B * S),
    ):
        if size > MAX_ELEMENTS:
            raise ValueError(f"{n} = {size} exceeds 2**59 elements")
    checked = {}
    for n in names:
        shape = tuple(sizes[s] for s in _WEIGHT_SHAPES[n])
        try:
            checked[n] = as_float_array(n, weights[n], dtype, shape)
        except ValueError:
            text = (
                "("
                + ", ".join(_SIZE_TEXT[s] for s in _WEIGHT_SHAPES[n])
                + ("," if len(shape) == 1 else "")
                + ")"
            )
            raise ValueError(
                f"{n} must have shape {text} = {shape}, got {_shape_of(n, weights[n])}"
            ) from None
    return AttentionArgs(
        score=score,
        query=as_float_array("query", query, dtype, (T, B, Q)),
        keys=as_float_array("keys", keys, dtype, (S, B, K)),
        weights=checked,
        lengths=check_lengths(lengths, S, B),
        T=T,
        S=S,
        B=B,
        Q=Q,
        K=K,
        A=A,
        dtype=dtype,
    )


def attention_backward_args(
    dout: Any, cache: Any
) -> Tuple[AttentionArgs, AttentionCache, np.ndarray]:
    """Check (dout, cache) of `attention_backward`: the cache is re-checked
    field by field, so a hand-built one cannot reach C code inconsistent."""
    if not isinstance(cache, AttentionCache):
        raise TypeError(
            f"cache must be the AttentionCache returned by attention_forward, got "
            f"{type(cache).__name__}"
        )
    a = attention_args(cache.score, cache.query, cache.keys, cache.weights, cache.lengths)
    _common_float_dtype(
        [
            ("cache.query", a.query),
            ("cache.alpha", cache.alpha),
            ("cache.context", cache.context),
            ("cache.out", cache.out),
            ("dout", dout),
        ],
        required=("dout",),
    )
    c = AttentionCache(
        a.score,
        a.query,
        a.keys,
        a.weights,
        a.lengths,
        as_float_array("cache.alpha", cache.alpha, a.dtype, (a.T, a.B, a.S)),
        as_float_array("cache.context", cache.context, a.dtype, (a.T, a.B, a.K)),
        as_float_array("cache.out", cache.out, a.dtype, (a.T, a.B, a.Q)),
    )
    d = as_float_array("dout", dout, a.dtype, (a.T, a.B, a.Q))
    return a, c, d
