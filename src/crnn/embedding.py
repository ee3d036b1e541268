"""`Embedding`: a lookup table of token vectors, with ``torch.nn.Embedding``'s semantics.

Word- and character-level models read integer token ids; an embedding maps
each id to a learned vector (a row of ``weight``) instead of a one-hot
vector as wide as the vocabulary. The forward is a gather, the backward a
scatter-add into ``grads["weight"]`` (in C with OpenMP on the ``"c"``
backend: `crnn.functional.embedding_backward`; `crnn.reference`'s with
``np.add.at`` on ``"numpy"``).
"""

from __future__ import annotations

import numbers
from typing import Any, Dict, Optional

import numpy as np

from ._validate_seq import check_count, check_ids, check_padding_idx
from .module import Module, config_sizes, float_dtype, input_array

__all__ = ["Embedding"]


def _check_seed(seed: Any) -> Optional[int]:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be a non-negative integer or None, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed}")
    return int(seed)


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of ``embedding_dim`` features.

    ``out[i..., :] = weight[ids[i...], :]`` for integer ``ids`` of any
    shape, as ``torch.nn.Embedding``. The gradient is the scatter-add ::

        dweight[v] = sum over positions i with ids[i] == v of dout[i]

    except for the ``padding_idx`` row, which gets none.

    Parameters
    ----------
    num_embeddings : int (>= 1)
        The vocabulary size V: ids lie in [0, V).
    embedding_dim : int (>= 0)
        The vector size E.
    padding_idx : int or None
        A row that receives no gradient and starts at zero (torch's
        semantics; negative values count from the end). The forward still
        reads it like any other row.
    dtype : float32 or float64
    seed : int or None
        Seeds the initialisation, ``weight ~ N(0, 1)`` drawn by
        ``np.random.default_rng(seed).standard_normal`` (torch's default
        distribution).
    backend : {"c", "numpy"}
        ``"c"``: the backward's scatter-add runs in C with OpenMP
        (`crnn.functional.embedding_backward`); ``"numpy"``: the reference.

    Attributes
    ----------
    params, grads : dict[str, ndarray]
        ``weight`` (num_embeddings, embedding_dim): torch's name and layout,
        so ``torch.nn.Embedding(...).state_dict()`` loads as is.

    Notes
    -----
    ``out = emb(ids)``; ``emb.backward(dout)`` adds the weight's gradient to
    ``emb.grads["weight"]`` and returns None (integer ids have no gradient).
    Ids out of range, non-integer ids (bool, float, object) and misshaped
    gradients raise TypeError / ValueError naming the argument before
    anything runs; nothing is modified. Not thread-safe (the last forward's
    ids are kept for ``backward``).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: Optional[int] = None,
        *,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
    ) -> None:
        super().__init__(backend=backend)
        self.num_embeddings = check_count("num_embeddings", num_embeddings, 1)
        self.embedding_dim = check_count("embedding_dim", embedding_dim, 0)
        self.padding_idx = check_padding_idx(padding_idx, self.num_embeddings)
        self.dtype = float_dtype(dtype)
        self.seed = _check_seed(seed)
        rng = np.random.default_rng(self.seed)
        weight = rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype)
        if self.padding_idx is not None:
            weight[self.padding_idx] = 0
        self.register_parameter("weight", weight)
        self._cache: Optional[np.ndarray] = None

    @property
    def cache(self) -> Optional[np.ndarray]:
        """The ids of the last forward call (int64; None before the first)."""
        return self._cache

    def config(self) -> Dict[str, Any]:
        return dict(
            num_embeddings=self.num_embeddings,
            embedding_dim=self.embedding_dim,
            padding_idx=self.padding_idx,
            dtype=self.dtype.name,
            seed=self.seed,
            backend=self.backend,
        )

    def forward(self, ids: Any) -> np.ndarray:
        """Look up the vectors of `ids`.

        Parameters
        ----------
        ids : array_like of ints, any shape
            Token ids in [0, num_embeddings); any integer dtype.

        Returns
        -------
        ndarray, shape ``ids.shape + (embedding_dim,)``
            A new array of the layer's dtype.
        """
        ids = check_ids("ids", ids, self.num_embeddings)
        out = self.engine.embedding_forward(ids, self.params["weight"], self.padding_idx)
        self._cache = ids
        return out

    def backward(self, dout: Any, *, cache: Optional[np.ndarray] = None) -> None:
        """Add the gradient of the last forward (or `cache`, its ids) to ``grads["weight"]``.

        Parameters
        ----------
        dout : ndarray, shape ``ids.shape + (embedding_dim,)``
            Gradient of the loss with respect to the output, in the layer's
            dtype.
        cache : ndarray of int64, optional
            Ids saved from ``self.cache``; by default the last forward's.

        Returns
        -------
        None
            Integer ids have no gradient.
        """
        ids = self._cache if cache is None else cache
        if ids is None:
            raise RuntimeError("backward() called before forward(): there is no cache to use")
        ids = check_ids("cache", ids, self.num_embeddings)
        dout = input_array("dout", dout, self.dtype)
        expected = ids.shape + (self.embedding_dim,)
        if dout.shape != expected:
            raise ValueError(
                f"dout must have shape ids.shape + (embedding_dim,) = {expected}, got {dout.shape}"
            )
        self.grads["weight"] += self.engine.embedding_backward(
            ids, dout, self.num_embeddings, self.padding_idx
        )

    @classmethod
    def parameter_count(cls, cfg: Dict[str, Any]) -> Optional[int]:
        """The number of parameters ``cls(**cfg)`` would allocate, or None."""
        sizes = config_sizes(cfg.get("num_embeddings"), cfg.get("embedding_dim"))
        if sizes is None:
            return None
        v, d = sizes
        return v * d
