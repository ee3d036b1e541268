"""Small ready-made models, one per classic shape of recurrent network.

Every model here is a `crnn.Module` built only from crnn layers (a recurrent
layer of any stacked cell of `crnn.cells` — ``cell="rnn"``, ``"lstm"`` or
``"gru"`` —, `Linear`) and registered for `crnn.save` / `crnn.load`. Children are
attributes, so the parameters appear namespaced in ``model.params`` and
``model.grads`` (``"rnn.weight_ih_l0"``, ``"head.weight"``, ...), sharing the
children's arrays: an optimizer built on ``model.params`` updates the layers.

Data are time-major, ``(T, B, features)``, as everywhere in crnn. Each model
has ``forward`` (also ``model(...)``) and ``backward``; ``backward`` uses the
cache of the last ``forward``, returns the gradients with respect to the
inputs, and *accumulates* the parameter gradients into ``model.grads`` (call
``model.zero_grad()`` between steps).

=====================  ============  =========================================
model                  shape         what it computes
=====================  ============  =========================================
`MLPRegressor`         one-to-one    Linear -> activation -> Linear
`SequenceClassifier`   many-to-one   RNN -> each row's last valid state -> Linear
`SequenceTagger`       many-to-many  RNN -> Linear at every step
`CharRNN`              many-to-many  one-hot chars -> RNN -> Linear; `generate`
                       one-to-many   samples, feeding each output back in
`CharModel`            (as above)    a CharRNN that carries its characters
                                     (`crnn.data.CharVocab`): text in, text out
`Seq2Seq`              many-to-many  encoder RNN -> final state -> decoder RNN
                       (enc.-dec.)   (-> attention) -> Linear; teacher forcing,
                                     `greedy_decode`, `sample`, `beam_search`
`Forecaster`           many-to-one   window of a series -> RNN -> Linear ->
                       (forecast)    the next values; scaling inside, `fit`,
                                     `predict(steps)` (`crnn.forecasting`)
=====================  ============  =========================================

Models that read tokens (`SequenceCl assifier`, `SequenceTagger`, `CharRNN`,
`CharModel`, `Seq2Seq`) take ``embed ding_dim=``: None (the default) keeps
one-hot (or feature-vector) inputs;  an int makes the inputs integer token
ids, mapped by a `crnn.Embedding` ch ild to that many learned features.
"""

from __future__ import annotations

import contextlib
import numbers
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from . import cells, reference
from ._validate import check_lengths, check_nonlinearity
from ._validate_seq import SCORES, check_ids
from .data import CharVocab, one_hot  # one_hot is vectorisation; re-exported here
from .forecasting import Forecaster  # defined in crnn.forecasting; re-exported here
from .losses import mse, softmax_cross_entropy
from .module import Module, check_int, float_dtype, input_array
from .nn import Attention, Embedding, Linear, Recurrent, State, map_state, recurrent_layer
from .serialization import register_module
from .training import last_valid, last_valid_backward

__all__ = [
    "one_hot",
    "MLPRegressor",
    "SequenceClassifier",
    "SequenceTagger",
    "CharRNN",
    "CharModel",
    "Seq2Seq",
    "BeamSearchResult",
    "Forecaster",
]


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _child_seeds(seed: Optional[int], n: int) -> List[Optional[int]]:
    """n independent seeds derived from `seed` (all None when seed is None)."""
    if seed is None:
        return [None] * n
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(n)]


def _recurrent(
    cell: Any, nonlinearity: str, input_size: int, hidden_size: int, num_layers: int, **kwargs: Any
) -> Recurrent:
    """The recurrent layer of a model: `cell`'s layer (crnn.RNN, LSTM, GRU, or a
    Recurrent of another stacked cell); `nonlinearity` is the RNN cell's option,
    and the other cells have none."""
    spec = cells.get(cell)
    if spec.uses_output_size:
        raise ValueError(
            f"cell must be a cell without an output size, one of "
            f"{tuple(n for n, s in cells.REGISTRY.items() if not s.uses_output_size)}; "
            f"got {spec.name!r}"
        )
    if "nonlinearity" in spec.option_names:
        kwargs["nonlinearity"] = nonlinearity
    elif nonlinearity != "tanh":
        raise ValueError(
            f"nonlinearity applies to cell='rnn' only (the {spec.title} cell's "
            f"activations are fixed), got nonlinearity={nonlinearity!r}"
        )
    return recurrent_layer(spec, input_size, hidden_size, num_layers=num_layers, **kwargs)


def _cell_config(layer: Recurrent) -> Dict[str, Any]:
    """The ``cell`` and ``nonlinearity`` entries of a model's config."""
    return dict(cell=layer.spec.name, nonlinearity=layer.options.get("nonlinearity", "tanh"))


def _sample(
    logits: np.ndarray, temperature: float, top_k: Optional[int], rng: np.random.Generator
) -> np.ndarray:
    """One id per row of (B, V) logits: argmax for temperature 0, else a draw
    from softmax(logits / temperature), restricted to the top_k largest."""
    if temperature == 0:
        return np.argmax(logits, axis=-1)
    z = logits.astype(np.float64)
    if temperature != 1:
        z /= temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth = np.sort(z, axis=-1)[:, -top_k][:, None]
        z = np.where(z >= kth, z, -np.inf)
    # Generation calls this once per step, so it makes few NumPy calls (the
    # ufuncs' own methods) and does without normalising p.
    z -= np.maximum.reduce(z, axis=-1, keepdims=True)
    np.exp(z, out=z)
    # Inverse-CDF sampling, one uniform per row (vectorised rng.choice): the
    # first id whose cumulative weight reaches u times the total.
    np.add.accumulate(z, axis=-1, out=z)
    u = rng.random((z.shape[0], 1))
    u *= z[:, -1:]
    if z.shape[0] == 1:  # one row: a binary search
        return np.minimum(z[0].searchsorted(u[0]), z.shape[-1] - 1)
    return np.minimum(np.add.reduce(z < u, axis=-1), z.shape[-1] - 1)


# The loss functions a model's head fuses with its loss (Linear.forward_backward).
_HEAD_LOSSES = {softmax_cross_entropy: "cross_entropy", mse: "mse"}


def _check_3d(name: str, x: np.ndarray, features: int) -> None:
    if x.ndim != 3 or x.shape[-1] != features:
        raise ValueError(f"{name} must be time-major (T, B, {features}), got shape {x.shape}")


def _embedding(
    vocab_name: str,
    vocab_size: Any,
    embedding_dim: Any,
    dtype: np.dtype,
    seed: Optional[int],
    backend: str,
) -> Tuple[Optional[Embedding], int]:
    """A model's `Embedding` of its token ids (None without embedding_dim),
    and the input size of the layer it feeds."""
    if embedding_dim is None:
        return None, vocab_size
    E = check_int("embedding_dim", embedding_dim, 1)
    V = check_int(vocab_name, vocab_size, 1)
    return Embedding(V, E, dtype=dtype, seed=seed, backend=backend), E


def _embedding_config(embed: Optional[Embedding]) -> Dict[str, Any]:
    """The ``embedding_dim`` entry of a model's config (none without one, so
    such files read as they always did)."""
    return {} if embed is None else {"embedding_dim": embed.embedding_dim}


def _token_ids(name: str, ids: Any, vocab_size: int) -> np.ndarray:
    """Integer ids (T, B) in [0, vocab_size), as int64."""
    arr = check_ids(name, ids, vocab_size)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be token ids of shape (T, B), got shape {arr.shape}")
    return arr


@contextlib.contextmanager
def _evaluating(model: Module) -> Iterator[None]:
    """Evaluation mode (no dropout) for the block; the previous mode after it."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------
# One-to-one
# --------------------------------------------------------------------------


@register_module
class MLPRegressor(Module):
    """One-to-one: ``y = head(f(hidden(x)))``, no time axis at all.

    The one-to-one "RNN" is a single step from a zero state, which is exactly
    a linear layer followed by the activation; so this is a two-layer
    perceptron (for regression with `crnn.losses.mse`, or classification
    with `crnn.losses.softmax_cross_entropy`).

    Parameters
    ----------
    in_features, hidden_features, out_features : int
    nonlinearity : {"tanh", "relu", "sigmoid"}
    dtype : float32 or float64
    seed : int or None
        Seeds the initialisation of both layers.
    backend : {"c", "numpy"}

    Attributes
    ----------
    hidden, head : Linear
        Parameters ``hidden.weight``, ``hidden.bias``, ``head.weight``,
        ``head.bias``.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        out_features: int,
        nonlinearity: str = "tanh",
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
    ) -> None:
        super().__init__(backend=backend)
        self.dtype = float_dtype(dtype)
        self.seed = seed
        self.nonlinearity = check_nonlinearity(nonlinearity)
        s = _child_seeds(seed, 2)
        self.hidden = Linear(
            in_features, hidden_features, dtype=self.dtype, seed=s[0], backend=backend
        )
        self.head = Linear(
            hidden_features, out_features, dtype=self.dtype, seed=s[1], backend=backend
        )
        self._cache: Optional[np.ndarray] = None

    def config(self) -> Dict[str, Any]:
        return dict(
            in_features=self.hidden.in_features,
            hidden_features=self.hidden.out_features,
            out_features=self.head.out_features,
            nonlinearity=self.nonlinearity,
            dtype=self.dtype.name,
            seed=self.seed,
            backend=self.backend,
        )

    def forward(self, x: Any) -> np.ndarray:
        """Predict.

        Parameters
        ----------
        x : ndarray, shape (..., in_features)

        Returns
        -------
        ndarray, shape (..., out_features)
        """
        a = reference.ACTIVATIONS[self.nonlinearity](self.hidden(x))
        self._cache = a
        return self.head(a)

    def backward(self, dy: Any) -> np.ndarray:
        """Gradient w.r.t. ``x`` of the last forward; accumulates ``grads``.

        Parameters
        ----------
        dy : ndarray, shape (..., out_features)

        Returns
        -------
        ndarray, shape (..., in_features)
        """
        if self._cache is None:
            raise RuntimeError("backward() called before forward()")
        da = self.head.backward(dy) * reference.activation_grad(self.nonlinearity, self._cache)
        return self.hidden.backward(da)


# --------------------------------------------------------------------------
# Many-to-one
# --------------------------------------------------------------------------


class _FeaturesOrIds(Module):
    """A model whose recurrent layer reads feature vectors, or token ids
    through an optional `Embedding` (SequenceClassifier, SequenceTagger)."""

    embed: Optional[Embedding]
    rnn: Recurrent
    dtype: np.dtype

    @property
    def input_size(self) -> int:
        """Features per input step, or the vocabulary size with an embedding."""
        return self.rnn.input_size if self.embed is None else self.embed.num_embeddings

    def _features(self, x: Any) -> np.ndarray:
        """The recurrent layer's input: x itself, or the embedding of its ids."""
        if self.embed is not None:
            return self.embed(_token_ids("x", x, self.embed.num_embeddings))
        x = input_array("x", x, self.dtype)
        _check_3d("x", x, self.rnn.input_size)
        return x

    def _input_grad(self, dx: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """dx for feature inputs; None for token ids (the embedding takes dx)."""
        if self.embed is None:
            return dx
        assert dx is not None  # the recurrent layer read the embedding's vectors
        self.embed.backward(dx)
        return None


@register_module
class SequenceClassifier(_FeaturesOrIds):
    """Many-to-one: recurrent layer -> each row's last valid state -> Linear -> logits.

    With ``lengths`` each row is summarised by its state after its own last
    valid step (`crnn.training.last_valid`), so padding never leaks in. A
    bidirectional RNN contributes the forward direction's last valid state
    and the reverse direction's state at t = 0 (which has read the whole
    row), concatenated.

    Parameters
    ----------
    input_size, hidden_size, num_classes : int
    num_layers : int
    nonlinearity : {"tanh", "relu", "sigmoid"}
        The RNN cell's activation (cell="rnn" only).
    bidirectional : bool
    dropout : float
        Between recurrent layers, in training mode (see `crnn.RNN`).
    dtype : float32 or float64
    seed : int or None
    backend : {"c", "numpy"}
    cell : {"rnn", "lstm", "gru"}
        The recurrent cell (any stacked cell of `crnn.cells`).
    embedding_dim : int or None
        None (the default): the input is feature vectors, (T, B,
        input_size). An int E: the input is integer token ids (T, B) and
        ``input_size`` is the vocabulary size; an `Embedding` (``embed``)
        maps each id to E features before the recurrent layer.

    Attributes
    ----------
    embed : Embedding or None
        ``input_size`` -> ``embedding_dim``, with embedding_dim set.
    rnn : Recurrent
        The recurrent layer (crnn.RNN, crnn.LSTM, crnn.GRU, ...).
    head : Linear
        From ``D * hidden_size`` features to ``num_classes`` logits.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_classes: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bidirectional: bool = False,
        dropout: float = 0.0,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        cell: str = "rnn",
        embedding_dim: Optional[int] = None,
    ) -> None:
        super().__init__(backend=backend)
        self.dtype = float_dtype(dtype)
        self.seed = seed
        s = _child_seeds(seed, 3)
        self.embed, rnn_input = _embedding(
            "input_size", input_size, embedding_dim, self.dtype, s[2], self.backend
        )
        self.rnn = _recurrent(
            cell,
            nonlinearity,
            rnn_input,
            hidden_size,
            num_layers,
            dropout=dropout,
            bidirectional=bidirectional,
            dtype=self.dtype,
            seed=s[0],
            backend=backend,
        )
        D = self.rnn.num_directions
        self.head = Linear(
            D * hidden_size, num_classes, dtype=self.dtype, seed=s[1], backend=backend
        )
        self._cache: Optional[Tuple[int, Any]] = None

    def config(self) -> Dict[str, Any]:
        r = self.rnn
        return dict(
            input_size=self.input_size,
            hidden_size=r.hidden_size,
            num_classes=self.head.out_features,
            num_layers=r.num_layers,
            bidirectional=r.bidirectional,
            dropout=r.dropout,
            dtype=self.dtype.name,
            seed=self.seed,
            backend=self.backend,
            **_cell_config(r),
            **_embedding_config(self.embed),
        )

    def forward(self, x: Any, h0: Any = None, lengths: Any = None) -> np.ndarray:
        """Class logits for each sequence.

        Parameters
        ----------
        x : ndarray
            (T, B, input_size) features; or, with ``embedding_dim`` set,
            integer token ids (T, B) in [0, input_size) (padded steps must
            hold valid ids too, e.g. 0; they are never read).
        h0 : state or None
            The recurrent layer's initial state: (num_layers * D, B,
            hidden_size), a tuple of such for the LSTM's (h, c), or None.
        lengths : array_like of B ints in [0, T], or None

        Returns
        -------
        ndarray, shape (B, num_classes)
            Rows of length 0 see a zero feature vector (only the bias).
        """
        x = self._features(x)
        out, _ = self.rnn(x, h0, lengths)
        H = self.rnn.hidden_size
        feat = last_valid(out[..., :H], lengths)
        if self.rnn.bidirectional:
            feat = np.concatenate([feat, out[0, :, H:]], axis=1)
        self._cache = (x.shape[0], lengths)
        return self.head(feat)

    def backward(self, dlogits: Any) -> Tuple[Optional[np.ndarray], State]:
        """Backpropagate the last forward; accumulates ``grads``.

        Parameters
        ----------
        dlogits : ndarray, shape (B, num_classes)

        Returns
        -------
        dx : ndarray, shape (T, B, input_size), or None
            None for token ids (with embedding_dim; the embedding's
            gradient is accumulated into ``grads`` instead).
        dh0 : state
            Shaped like the initial state.
        """
        if self._cache is None:
            raise RuntimeError("backward() called before forward()")
        T, lengths = self._cache
        H = self.rnn.hidden_size
        dfeat = self.head.backward(dlogits)
        dout = last_valid_backward(dfeat[:, :H], lengths, T)
        if self.rnn.bidirectional:
            dout = np.concatenate([dout, np.zeros_like(dout)], axis=2)
            dout[0, :, H:] = dfeat[:, H:]
        dx, dh0 = self.rnn.backward(dout)
        return self._input_grad(dx), dh0

    def predict(self, x: Any, lengths: Any = None) -> np.ndarray:
        """The most likely class of each sequence, shape (B,)."""
        return np.argmax(self.forward(x, lengths=lengths), axis=-1)


# --------------------------------------------------------------------------
# Many-to-many
# --------------------------------------------------------------------------


@register_module
class SequenceTagger(_FeaturesOrIds):
    """Many-to-many: recurrent layer -> Linear at every step (one output per input step).

    Also the model for `crnn.training.TBPTT`: ``forward`` takes and returns
    the recurrent state.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
    num_layers : int
    nonlinearity : {"tanh", "relu", "sigmoid"}
        The RNN cell's activation (cell="rnn" only).
    bidirectional : bool
    dropout : float
    dtype : float32 or float64
    seed : int or None
    backend : {"c", "numpy"}
    cell : {"rnn", "lstm", "gru"}
        The recurrent cell (any stacked cell of `crnn.cells`).
    embedding_dim : int or None
        None (the default): the input is feature vectors, (T, B,
        input_size). An int E: the input is integer token ids (T, B) (e.g.
        the words of a sentence, for named-entity tagging) and
        ``input_size`` is the vocabulary size; an `Embedding` (``embed``)
        maps each id to E features before the recurrent layer.

    Attributes
    ----------
    embed : Embedding or None
        ``input_size`` -> ``embedding_dim``, with embedding_dim set.
    rnn : Recurrent
        The recurrent layer (crnn.RNN, crnn.LSTM, crnn.GRU, ...).
    head : Linear
        From ``D * hidden_size`` to ``output_size``, applied at every step.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bidirectional: bool = False,
        dropout: float = 0.0,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        cell: str = "rnn",
        embedding_dim: Optional[int] = None,
    ) -> None:
        super().__init__(backend=backend)
        self.dtype = float_dtype(dtype)
        self.seed = seed
        s = _child_seeds(seed, 3)
        self.embed, rnn_input = _embedding(
            "input_size", input_size, embedding_dim, self.dtype, s[2], self.backend
        )
        self.rnn = _recurrent(
            cell,
            nonlinearity,
            rnn_input,
            hidden_size,
            num_layers,
            dropout=dropout,
            bidirectional=bidirectional,
            dtype=self.dtype,
            seed=s[0],
            backend=backend,
        )
        self.head = Linear(
            self.rnn.num_directions * hidden_size,
            output_size,
            dtype=self.dtype,
            seed=s[1],
            backend=backend,
        )

    def config(self) -> Dict[str, Any]:
        r = self.rnn
        return dict(
            input_size=self.input_size,
            hidden_size=r.hidden_size,
            output_size=self.head.out_features,
            num_layers=r.num_layers,
            bidirectional=r.bidirectional,
            dropout=r.dropout,
            dtype=self.dtype.name,
            seed=self.seed,
            backend=self.backend,
            **_cell_config(r),
            **_embedding_config(self.embed),
        )

    def forward(self, x: Any, h0: Any = None, lengths: Any = None) -> Tuple[np.ndarray, State]:
        """Outputs at every step, and the final state.

        Parameters
        ----------
        x : ndarray
            (T, B, input_size) features; or, with ``embedding_dim`` set,
            integer token ids (T, B) in [0, input_size) (padded steps must
            hold valid ids too, e.g. 0; they are never read).
        h0 : state or None
            The recurrent layer's initial state: (num_layers * D, B,
            hidden_size), a tuple of such for the LSTM's (h, c), or None.
        lengths : array_like of B ints in [0, T], or None
            At padded steps the recurrent output is 0, so ``y`` there is
            the head's bias: mask those steps out of the loss.

        Returns
        -------
        y : ndarray, shape (T, B, output_size)
        h_n : state
            The final state, in the form of the initial one.
        """
        out, h_n = self.rnn(self._features(x), h0, lengths)
        return self.head(out), h_n

    def forward_backward(
        self, x: Any, targets: Any, h0: Any = None, loss_fn: Any = softmax_cross_entropy
    ) -> Optional[Tuple[float, Any]]:
        """`forward`, the loss and `backward` of one batch, the head and its
        loss in one call (`Linear.forward_backward`); `crnn.training.TBPTT`
        uses it. Accumulates ``grads``.

        Parameters
        ----------
        x, h0
            As for `forward` (no lengths).
        targets : ndarray
            As ``loss_fn`` takes them for ``y``.
        loss_fn : callable
            ``crnn.losses.softmax_cross_entropy`` or ``crnn.losses.mse``
            (reduction "mean", no mask).

        Returns
        -------
        (loss, h_n), or None for another loss_fn (nothing is run then).
        """
        kind = _HEAD_LOSSES.get(loss_fn)
        if kind is None:
            return None
        out, h_n = self.rnn(self._features(x), h0)
        loss, dout = self.head.forward_backward(out, targets, kind)
        dx, _ = self.rnn.backward(dout)
        self._input_grad(dx)
        return loss, h_n

    def backward(self, dy: Any, dh_n: Any = None) -> Tuple[Optional[np.ndarray], State]:
        """Backpropagate the last forward; accumulates ``grads``.

        Parameters
        ----------
        dy : ndarray, shape (T, B, output_size)
        dh_n : state or None
            Gradient with respect to the final state, shaped like it.

        Returns
        -------
        dx : ndarray, shape (T, B, input_size), or None
            None for token ids (with embedding_dim; the embedding's
            gradient is accumulated into ``grads`` instead).
        dh0 : state
            Shaped like the initial state.
        """
        dx, dh0 = self.rnn.backward(self.head.backward(dy), dh_n)
        return self._input_grad(dx), dh0


@register_module
class CharRNN(Module):
    """A character-level language model: one-hot ids -> recurrent layer -> Linear -> logits.

    Trained many-to-many (predict the next character at every step, e.g.
    with `crnn.training.TBPTT`); `generate` runs it one-to-many, sampling
    each next character and feeding it back as the next input.

    Parameters
    ----------
    vocab_size : int
        Number of distinct characters (ids 0 .. vocab_size - 1).
    hidden_size : int
    num_layers : int
    nonlinearity : {"tanh", "relu", "sigmoid"}
        The RNN cell's activation (cell="rnn" only).
    dropout : float
    dtype : float32 or float64
    seed : int or None
    backend : {"c", "numpy"}
    cell : {"rnn", "lstm", "gru"}
        The recurrent cell (any stacked cell of `crnn.cells`).
    embedding_dim : int or None
        None (the default): the recurrent layer reads one-hot vectors of
        ``vocab_size``. An int E: an `Embedding` (``embed``) maps each id to
        E learned features instead (word-level models, large vocabularies).

    Attributes
    ----------
    embed : Embedding or None
        ``vocab_size`` -> ``embedding_dim``, with embedding_dim set.
    rnn : Recurrent
        The recurrent layer (``vocab_size`` or ``embedding_dim`` ->
        ``hidden_size``, num_layers).
    head : Linear
        ``hidden_size`` -> ``vocab_size`` logits.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        dropout: float = 0.0,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        cell: str = "rnn",
        embedding_dim: Optional[int] = None,
    ) -> None:
        super().__init__(backend=backend)
        self.vocab_size = check_int("vocab_size", vocab_size, 1)
        self.dtype = float_dtype(dtype)
        self.seed = seed
        s = _child_seeds(seed, 3)
        self.embed, rnn_input = _embedding(
            "vocab_size", self.vocab_size, embedding_dim, self.dtype, s[2], self.backend
        )
        self.rnn = _recurrent(
            cell,
            nonlinearity,
            rnn_input,
            hidden_size,
            num_layers,
            dropout=dropout,
            dtype=self.dtype,
            seed=s[0],
            backend=backend,
        )
        self.head = Linear(
            hidden_size, self.vocab_size, dtype=self.dtype, seed=s[1], backend=backend
        )

    def config(self) -> Dict[str, Any]:
        r = self.rnn
        return dict(
            vocab_size=self.vocab_size,
            hidden_size=r.hidden_size,
            num_layers=r.num_layers,
            dropout=r.dropout,
            dtype=self.dtype.name,
            seed=self.seed,
            backend=self.backend,
            **_cell_config(r),
            **_embedding_config(self.embed),
        )

    def _inputs(self, ids: Any) -> np.ndarray:
        if self.embed is not None:
            return self.embed(_token_ids("ids", ids, self.vocab_size))
        arr = np.asarray(ids)
        if arr.dtype.kind in "iu":
            # The ids themselves: the recurrent layer reads them as one-hot
            # vectors, gathering columns of weight_ih (no products with zeros).
            return _token_ids("ids", arr, self.vocab_size)
        x = input_array("ids", ids, self.dtype)  # already one-hot (or soft) inputs
        _check_3d("ids", x, self.vocab_size)
        return x

    def forward(self, ids: Any, h0: Any = None, lengths: Any = None) -> Tuple[np.ndarray, State]:
        """Next-character logits at every step, and the final state.

        Parameters
        ----------
        ids : ndarray
            Integer ids, shape (T, B); or, without an embedding, their
            one-hot encoding, shape (T, B, vocab_size), in the model's dtype.
        h0 : state or None
            (num_layers, B, hidden_size), a tuple of such for the LSTM's
            (h, c), or None.
        lengths : array_like of B ints in [0, T], or None

        Returns
        -------
        logits : ndarray, shape (T, B, vocab_size)
        h_n : state
            The final state, in the form of the initial one.
        """
        out, h_n = self.rnn(self._inputs(ids), h0, lengths)
        return self.head(out), h_n

    def forward_backward(
        self, ids: Any, targets: Any, h0: Any = None, loss_fn: Any = softmax_cross_entropy
    ) -> Optional[Tuple[float, Any]]:
        """`forward`, the loss and `backward` of one batch, the head and its
        softmax cross-entropy in one call (`Linear.forward_backward`);
        `crnn.training.TBPTT` uses it. Accumulates ``grads``.

        Parameters
        ----------
        ids, h0
            As for `forward` (no lengths).
        targets : ndarray of ints, shape (T, B)
            The next characters.
        loss_fn : callable
            ``crnn.losses.softmax_cross_entropy`` (reduction "mean", no
            mask).

        Returns
        -------
        (loss, h_n), or None for another loss_fn (nothing is run then).
        """
        if _HEAD_LOSSES.get(loss_fn) != "cross_entropy":
            return None
        out, h_n = self.rnn(self._inputs(ids), h0)
        loss, dout = self.head.forward_backward(out, targets, "cross_entropy")
        dx, _ = self.rnn.backward(dout)
        if self.embed is not None:
            self.embed.backward(dx)
        return loss, h_n

    def backward(self, dlogits: Any, dh_n: Any = None) -> Tuple[Optional[np.ndarray], State]:
        """Backpropagate the last forward; accumulates ``grads``.

        Returns
        -------
        dx : ndarray, shape (T, B, vocab_size), or None
            Gradient w.r.t. the one-hot inputs when the forward was given
            them as vectors; None for integer ids (they have no gradient)
            and with an embedding (its gradient is accumulated into
            ``grads`` instead).
        dh0 : state
            Shaped like the initial state.
        """
        dx, dh0 = self.rnn.backward(self.head.backward(dlogits), dh_n)
        if self.embed is None:
            return dx, dh0  # None for ids
        self.embed.backward(dx)
        return None, dh0

    def generate(
        self,
        prime_ids: Any,
        n: int,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        rng: Optional[Union[int, np.random.Generator]] = None,
        h0: Any = None,
    ) -> np.ndarray:
        """Sample `n` characters after a prime, feeding each one back in.

        The prime is read in one forward pass; then, step by step, the next
        id is drawn from the last logits and becomes the next input. Runs in
        evaluation mode (no dropout) and restores the previous mode. It
        overwrites the cache of the last forward, so do not call
        ``backward`` after it.

        Parameters
        ----------
        prime_ids : array_like of ints, shape (P,) or (P, B), P >= 1
            The starting text (one sequence, or B of them).
        n : int
            How many ids to generate (>= 0).
        temperature : float
            Divides the logits before the softmax: < 1 sharpens, > 1
            flattens; 0 takes the most likely id (greedy, no randomness).
        top_k : int or None
            Sample only among the `top_k` most likely ids.
        rng : int, numpy.random.Generator or None
            The source of randomness (a seed or a generator).
        h0 : state or None
            Initial state, (num_layers, B, hidden_size) (or (num_layers,
            hidden_size) for a 1-D prime), a tuple of such for the LSTM.

        Returns
        -------
        ndarray of int64, shape (n,) or (n, B)
            The generated ids, without the prime.
        """
        ids = np.asarray(prime_ids)
        if ids.dtype.kind not in "iu" or ids.ndim not in (1, 2) or ids.shape[0] < 1:
            raise ValueError(
                f"prime_ids must be integers of shape (P,) or (P, B) with P >= 1, "
                f"got {ids.dtype} {ids.shape}"
            )
        n = check_int("n", n, 0)
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, numbers.Real)
            or temperature < 0
        ):
            raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
        if top_k is not None:
            top_k = check_int("top_k", top_k, 1)
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        single = ids.ndim == 1
        ids2 = ids[:, None] if single else ids
        h = map_state(lambda s: input_array("h0", s, self.dtype), h0)
        if single:
            h = map_state(lambda s: s[:, None, :], h)
        was_training = self.training
        self.eval()
        try:
            B = ids2.shape[1]
            out = np.empty((n, B), dtype=np.int64)
            logits, h = self.forward(ids2, h)  # the prime, in one pass
            last = logits[-1]
            # Then one step at a time with the layer's prepared weights, the
            # state updated in place (h is this call's own array) and, for
            # one-hot inputs, one buffer whose ones move.
            x = np.zeros((B, self.vocab_size), self.dtype) if self.embed is None else None
            rows = np.arange(B)
            w_t, bias = self.head.params["weight"].T, self.head.params.get("bias")
            for t in range(n):
                nxt = _sample(last, float(temperature), top_k, gen)
                out[t] = nxt
                if t + 1 == n:
                    break
                if x is None:
                    x_t = self.embed(nxt[None, :])[0]
                else:
                    x.fill(0)
                    x[rows, nxt] = 1
                    x_t = x
                h = self.rnn.step(x_t, h, out=h)
                # The head (Linear's product) on the last layer's new h.
                last = (h[0] if isinstance(h, tuple) else h)[-1] @ w_t
                if bias is not None:
                    last += bias
        finally:
            self.train(was_training)
        return out[:, 0] if single else out


@register_module
class CharModel(CharRNN):
    """A `crnn.models.CharRNN` that knows its characters.

    Parameters
    ----------
    chars : str
        The known characters, in id order (ids 1 ..; id 0 is the unknown
        character), as `crnn.data.CharVocab` numbers them.
    hidden_size, num_layers, nonlinearity, dropout, dtype, seed, backend, cell, embedding_dim
        As for `CharRNN`.
    unk : str
        What an unknown id decodes to.

    Attributes
    ----------
    vocab : crnn.data.CharVocab
    """

    def __init__(
        self,
        chars: str,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        dropout: float = 0.0,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        unk: str = "\ufffd",
        cell: str = "rnn",
        embedding_dim: Optional[int] = None,
    ) -> None:
        if not isinstance(chars, str) or not chars:
            raise ValueError("chars must be a non-empty string")
        self.vocab = CharVocab(chars, unk=unk)
        super().__init__(
            len(self.vocab),
            hidden_size,
            num_layers,
            nonlinearity=nonlinearity,
            dropout=dropout,
            dtype=dtype,
            seed=seed,
            backend=backend,
            cell=cell,
            embedding_dim=embedding_dim,
        )
        # The unknown character is never a target (the vocabulary comes from
        # the text), so training drives its logit down anyway; start it low
        # so that even an untrained model never writes it.
        self.head.params["bias"][0] = -10.0

    @classmethod
    def for_text(cls, text: str, hidden_size: int = 128, **kwargs: Any) -> "CharModel":
        """A fresh model over the characters of `text`."""
        return cls(CharVocab.from_text(text).chars, hidden_size, **kwargs)

    def config(self) -> Dict[str, Any]:
        cfg = super().config()
        del cfg["vocab_size"]
        return dict(chars=self.vocab.chars, unk=self.vocab.unk, **cfg)

    def encode(self, text: str) -> np.ndarray:
        """The ids of the characters of `text` (``vocab.encode``)."""
        return self.vocab.encode(text)

    def decode(self, ids: Any) -> str:
        """The text of a sequence of ids (``vocab.decode``)."""
        return self.vocab.decode(np.asarray(ids, dtype=np.int64))

    def sample(
        self,
        prime: str,
        n: int,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        rng: Optional[Union[int, np.random.Generator]] = None,
    ) -> str:
        """`n` characters sampled after `prime` (the prime itself not included).

        An empty prime starts at a new line (or, if the model never saw a
        newline, at its first character).
        """
        if not prime:
            prime = "\n" if "\n" in self.vocab else self.vocab.chars[0]
        ids = self.generate(self.encode(prime), n, temperature=temperature, top_k=top_k, rng=rng)
        return self.decode(ids)


# --------------------------------------------------------------------------
# Encoder-decoder
# --------------------------------------------------------------------------


class BeamSearchResult(NamedTuple):
    """What `Seq2Seq.beam_search` returns: the best hypothesis of each batch row.

    Attributes
    ----------
    sequences : list of B ndarrays of int64
        Row b's chosen output ids, without the start token and without the
        end token.
    scores : ndarray of float64, shape (B,)
        The length-normalised scores the hypotheses were chosen by,
        ``log P(y) / ((5 + |y|) / 6) ** length_penalty``.
    log_probs : ndarray of float64, shape (B,)
        Their total log-probabilities ``log P(y)`` (the end token's
        included).
    finished : ndarray of bool, shape (B,)
        True where the hypothesis ended with the end token, False where it
        was cut at ``max_len``.
    attention : list of B ndarrays, or None
        With an attention model, row b's attention weights,
        ``(len(sequences[b]), src_lengths[b])``: one row per output token,
        one column per valid source step (the alignment to display). None
        without attention.
    """

    sequences: List[np.ndarray]
    scores: np.ndarray
    log_probs: np.ndarray
    finished: np.ndarray
    attention: Optional[List[np.ndarray]]


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, in float64."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


@register_module
class Seq2Seq(Module):
    """Encoder-decoder: encoder -> its final state -> decoder (-> attention) -> Linear.

    The encoder reads the source; its final state (per layer, after each
    row's last valid step) is the decoder's initial state. Training uses
    teacher forcing: the decoder reads the *true* previous target tokens
    (`decoder_inputs` builds them); `greedy_decode`, `sample` and
    `beam_search` instead feed back the model's own previous outputs.

    Tokens are one-hot vectors by default: the source has ``src_size``
    features per step and the target ``tgt_size`` classes (start token
    included). With ``embedding_dim`` the source and the target are integer
    token ids, ``src_size`` and ``tgt_size`` their vocabulary sizes, and
    two `Embedding` layers map them to ``embedding_dim`` features.

    With ``attention`` the decoder's outputs ``s_t`` attend to all the
    encoder's outputs ``h_j`` (`crnn.nn.Attention`, global attention over
    the valid source steps) and the head reads Luong's attentional state::

        e_tj = score(s_t, h_j)   "dot": s_t . h_j;  "general": s_t^T W_a h_j;
                                 "additive": v^T tanh(W_q s_t + W_k h_j)
        alpha_tj = softmax_j(e_tj) over j < src_lengths[b]
        c_t = sum_j alpha_tj h_j,    s~_t = tanh(W_c [c_t; s_t]),    logits_t = head(s~_t)

    Parameters
    ----------
    src_size : int
        Features per source step (e.g. a source vocabulary, one-hot); the
        source vocabulary size with ``embedding_dim``.
    tgt_size : int
        Number of target classes (start token included).
    hidden_size : int
    num_layers : int
        Of both the encoder and the decoder.
    nonlinearity : {"tanh", "relu", "sigmoid"}
        The RNN cell's activation (cell="rnn" only).
    dropout : float
    dtype : float32 or float64
    seed : int or None
    backend : {"c", "numpy"}
    cell : {"rnn", "lstm", "gru"}
        The cell of both the encoder and the decoder (any stacked cell of
        `crnn.cells`); the encoder's final state (an LSTM's (h, c)) is the
        decoder's initial state.
    attention : {None, "dot", "general", "additive"}
        None (the default): no attention, the head reads the decoder.
    embedding_dim : int or None
        None (the default): one-hot tokens. An int E: token ids, embedded.
    attention_size : int or None
        The additive score's width A (None: hidden_size); additive only.

    Attributes
    ----------
    src_embed, tgt_embed : Embedding or None
        ``src_size`` / ``tgt_size`` -> ``embedding_dim``, with embeddings.
    encoder : Recurrent
        ``src_size`` (or ``embedding_dim``) -> ``hidden_size``, ``num_layers``.
    decoder : Recurrent
        ``tgt_size`` (or ``embedding_dim``) -> ``hidden_size``, ``num_layers``.
    attn : Attention or None
        ``hidden_size`` queries over ``hidden_size`` keys.
    head : Linear
        ``hidden_size`` -> ``tgt_size`` logits at every decoder step.
    """

    def __init__(
        self,
        src_size: int,
        tgt_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        dropout: float = 0.0,
        dtype: Any = np.float32,
        seed: Optional[int] = None,
        backend: str = "c",
        cell: str = "rnn",
        attention: Optional[str] = None,
        embedding_dim: Optional[int] = None,
        attention_size: Optional[int] = None,
    ) -> None:
        super().__init__(backend=backend)
        self.dtype = float_dtype(dtype)
        self.seed = seed
        if attention is not None and (not isinstance(attention, str) or attention not in SCORES):
            raise ValueError(f"attention must be None or one of {SCORES}, got {attention!r}")
        if attention != "additive" and attention_size is not None:
            raise ValueError(
                f"attention_size applies to attention='additive' only, got "
                f"attention_size={attention_size!r} with attention={attention!r}"
            )
        s = _child_seeds(seed, 6)  # the first three as before embeddings and attention
        kw = dict(dropout=dropout, dtype=self.dtype, backend=backend)
        self.src_embed, enc_in = _embedding(
            "src_size", src_size, embedding_dim, self.dtype, s[3], self.backend
        )
        self.encoder = _recurrent(
            cell, nonlinearity, enc_in, hidden_size, num_layers, seed=s[0], **kw
        )
        self.tgt_embed, dec_in = _embedding(
            "tgt_size", tgt_size, embedding_dim, self.dtype, s[4], self.backend
        )
        self.decoder = _recurrent(
            cell, nonlinearity, dec_in, hidden_size, num_layers, seed=s[1], **kw
        )
        H = self.encoder.hidden_size
        self.attn = (
            None
            if attention is None
            else Attention(
                attention, H, H, attention_size, dtype=self.dtype, seed=s[5], backend=backend
            )
        )
        self.head = Linear(
            H, check_int("tgt_size", tgt_size, 1), dtype=self.dtype, seed=s[2], backend=backend
        )

    @property
    def src_size(self) -> int:
        """Features of a source step, or the source vocabulary size with embeddings."""
        return self.encoder.input_size if self.src_embed is None else self.src_embed.num_embeddings

    @property
    def tgt_size(self) -> int:
        """The target vocabulary size (logits per step)."""
        return self.head.out_features

    @property
    def embedding_dim(self) -> Optional[int]:
        """The size of the token vectors, or None for one-hot inputs."""
        return None if self.src_embed is None else self.src_embed.embedding_dim

    @property
    def attention(self) -> Optional[str]:
        """The attention score ("dot", "general", "additive"), or None without attention."""
        return None if self.attn is None else self.attn.score

    def config(self) -> Dict[str, Any]:
        e = self.encoder
        cfg = dict(
            src_size=self.src_size,
            tgt_size=self.tgt_size,
            hidden_size=e.hidden_size,
            num_layers=e.num_layers,
            dropout=e.dropout,
            dtype=self.dtype.name,
            seed=self.seed,
            backend=self.backend,
            **_cell_config(e),
        )
        # New keys only when used, so that such files read as they always did.
        if self.attn is not None:
            cfg["attention"] = self.attn.score
            if self.attn.score == "additive":
                cfg["attention_size"] = self.attn.attention_size
        cfg.update(_embedding_config(self.src_embed))
        return cfg

    # -- inputs ---------------------------------------------------------------

    def _check_token(self, name: str, value: Any) -> int:
        value = check_int(name, value, 0)
        if value >= self.tgt_size:
            raise ValueError(
                f"{name} must be a target id in [0, tgt_size) = [0, {self.tgt_size}), got {value}"
            )
        return value

    def _source(self, src: Any) -> np.ndarray:
        """The encoder's input: src (T_src, B, src_size), or its ids embedded."""
        if self.src_embed is not None:
            return self.src_embed(_token_ids("src", src, self.src_embed.num_embeddings))
        src = input_array("src", src, self.dtype)
        _check_3d("src", src, self.encoder.input_size)
        return src

    def _target(self, tgt_in: Any) -> np.ndarray:
        """The decoder's input: tgt_in (T_tgt, B, tgt_size), or its ids embedded."""
        if self.tgt_embed is not None:
            return self.tgt_embed(_token_ids("tgt_in", tgt_in, self.tgt_size))
        tgt_in = input_array("tgt_in", tgt_in, self.dtype)
        _check_3d("tgt_in", tgt_in, self.tgt_size)
        return tgt_in

    def _tokens(self, ids: np.ndarray) -> np.ndarray:
        """The decoder's input for target ids (T, B): embedded or one-hot."""
        if self.tgt_embed is not None:
            return self.tgt_embed(ids)
        return one_hot(ids, self.tgt_size, self.dtype)

    def decoder_inputs(self, tgt_ids: Any, start_id: int) -> np.ndarray:
        """Teacher-forcing inputs: the targets shifted right by one step.

        Parameters
        ----------
        tgt_ids : array_like of ints, shape (T, B)
        start_id : int
            The start token, read at step 0.

        Returns
        -------
        ndarray
            ``[start_id, tgt_ids[0], ..., tgt_ids[T-2]]``: one-hot, shape
            (T, B, tgt_size); or, with ``embedding_dim``, the ids
            themselves, int64 (T, B).
        """
        ids = np.asarray(tgt_ids)
        if ids.dtype.kind not in "iu" or ids.ndim != 2:
            raise ValueError(
                f"tgt_ids must be integers of shape (T, B), got {ids.dtype} {ids.shape}"
            )
        start = np.full((1, ids.shape[1]), check_int("start_id", start_id, 0), dtype=np.int64)
        shifted = np.concatenate([start, ids[:-1].astype(np.int64)], axis=0)[: ids.shape[0]]
        if self.tgt_embed is not None:
            return _token_ids("tgt_ids", shifted, self.tgt_size)
        return one_hot(shifted, self.tgt_size, self.dtype)

    # -- training -------------------------------------------------------------

    def forward(
        self, src: Any, tgt_in: Any, src_lengths: Any = None, tgt_lengths: Any = None
    ) -> np.ndarray:
        """Decoder logits under teacher forcing.

        Parameters
        ----------
        src : ndarray
            (T_src, B, src_size); with ``embedding_dim``, ids (T_src, B).
        tgt_in : ndarray
            The decoder's inputs (see `decoder_inputs`): (T_tgt, B,
            tgt_size); with ``embedding_dim``, ids (T_tgt, B).
        src_lengths, tgt_lengths : array_like of B ints, or None
            Valid steps per row; attention never looks at padded source
            steps. (Padded ids must still be valid ids, e.g. 0.)

        Returns
        -------
        ndarray, shape (T_tgt, B, tgt_size)
        """
        memory, h = self.encoder(self._source(src), None, src_lengths)
        out, _ = self.decoder(self._target(tgt_in), h, tgt_lengths)
        if self.attn is not None:
            out, _ = self.attn(out, memory, src_lengths)
        return self.head(out)

    def backward(self, dlogits: Any) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """Backpropagate the last forward; accumulates ``grads``.

        The decoder's gradient w.r.t. its initial state flows into the
        encoder as the gradient of the encoder's final state; with
        attention, the gradient w.r.t. the encoder's outputs too.

        Returns
        -------
        dsrc : ndarray, shape (T_src, B, src_size), or None
        dtgt_in : ndarray, shape (T_tgt, B, tgt_size), or None
            None for token ids (with ``embedding_dim``; the embeddings'
            gradients are accumulated into ``grads`` instead).
        """
        d = self.head.backward(dlogits)
        dmemory = None
        if self.attn is not None:
            d, dmemory = self.attn.backward(d)
        dtgt_in, dh = self.decoder.backward(d)
        dsrc, _ = self.encoder.backward(dmemory, dh)
        if self.src_embed is None:
            return dsrc, dtgt_in
        assert self.tgt_embed is not None  # embedding_dim embeds both sides
        self.src_embed.backward(dsrc)
        self.tgt_embed.backward(dtgt_in)
        return None, None

    # -- decoding -------------------------------------------------------------

    def _encode(self, src: Any, src_lengths: Any) -> Tuple[np.ndarray, Any, Optional[np.ndarray]]:
        """(encoder outputs, final state, checked lengths) for decoding."""
        memory, h = self.encoder(self._source(src), None, src_lengths)
        return memory, h, check_lengths(src_lengths, memory.shape[0], memory.shape[1])

    def _step(
        self, prev: np.ndarray, h: Any, memory: np.ndarray, lengths: Optional[np.ndarray]
    ) -> Tuple[np.ndarray, Any, Optional[np.ndarray]]:
        """One decoder step from the previous ids (N,): (logits (N, V), state,
        attention weights (N, S) or None)."""
        out, h = self.decoder(self._tokens(prev[None, :]), h)
        alpha = None
        if self.attn is not None:
            out, alpha = self.attn(out, memory, lengths)
            alpha = alpha[0]
        return self.head(out[0]), h, alpha

    def greedy_decode(
        self,
        src: Any,
        n_steps: int,
        start_id: int,
        src_lengths: Any = None,
        *,
        return_attention: bool = False,
    ) -> Any:
        """Decode without teacher forcing: each step reads the previous argmax.

        Runs in evaluation mode and restores the previous mode; it
        overwrites the forward caches (no ``backward`` afterwards).

        Parameters
        ----------
        src : ndarray
            (T_src, B, src_size); with ``embedding_dim``, ids (T_src, B).
        n_steps : int
        start_id : int
        src_lengths : array_like of B ints, or None
        return_attention : bool
            Also return the attention weights (attention models only).

        Returns
        -------
        ndarray of int64, shape (n_steps, B)
            (It does not stop at an end token: every row gets n_steps ids.)
        alpha : ndarray, shape (n_steps, B, T_src)
            With ``return_attention``: the attention weights of each step.
        """
        return self._decode(src, n_steps, start_id, src_lengths, return_attention, None)

    def sample(
        self,
        src: Any,
        n_steps: int,
        start_id: int,
        src_lengths: Any = None,
        *,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        rng: Optional[Union[int, np.random.Generator]] = None,
    ) -> np.ndarray:
        """Decode by sampling each next token from the model's distribution.

        Like `greedy_decode`, but step t's id is drawn from
        ``softmax(logits_t / temperature)`` restricted to the `top_k` most
        likely ids; temperature 0 is `greedy_decode`.

        Parameters
        ----------
        src, n_steps, start_id, src_lengths
            As for `greedy_decode`.
        temperature : float (>= 0)
        top_k : int or None
        rng : int, numpy.random.Generator or None

        Returns
        -------
        ndarray of int64, shape (n_steps, B)
        """
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, numbers.Real)
            or temperature < 0
        ):
            raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
        if top_k is not None:
            top_k = check_int("top_k", top_k, 1)
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        return self._decode(
            src,
            n_steps,
            start_id,
            src_lengths,
            False,
            lambda logits: _sample(logits, float(temperature), top_k, gen),
        )

    def _decode(
        self,
        src: Any,
        n_steps: Any,
        start_id: Any,
        src_lengths: Any,
        return_attention: bool,
        pick: Any,
    ) -> Any:
        n_steps = check_int("n_steps", n_steps, 0)
        start_id = self._check_token("start_id", start_id)
        if return_attention and self.attn is None:
            raise ValueError("return_attention needs a model with attention")
        with _evaluating(self):
            memory, h, lengths = self._encode(src, src_lengths)
            S, B = memory.shape[:2]
            prev = np.full(B, start_id, dtype=np.int64)
            out = np.empty((n_steps, B), dtype=np.int64)
            alphas = np.zeros((n_steps, B, S), dtype=self.dtype) if return_attention else None
            for t in range(n_steps):
                logits, h, alpha = self._step(prev, h, memory, lengths)
                prev = (np.argmax(logits, axis=-1) if pick is None else pick(logits)).astype(
                    np.int64
                )
                out[t] = prev
                if alphas is not None:
                    alphas[t] = alpha
        return (out, alphas) if return_attention else out

    def beam_search(
        self,
        src: Any,
        beam_width: int,
        max_len: int,
        end_id: Optional[int],
        start_id: int,
        length_penalty: float = 0.6,
        src_lengths: Any = None,
    ) -> BeamSearchResult:
        """The most likely output of each source, by beam search.

        Each row keeps `beam_width` hypotheses. At every step each live
        hypothesis is extended by every token; the `beam_width` extensions
        with the highest total log-probability ``log P(y) = sum_t log
        p(y_t | y_<t, x)`` survive. An extension ending in `end_id` is
        finished: it leaves the beam (which may shrink) and competes with
        the other finished hypotheses by its *length-normalised* score
        (Wu et al. 2016, GNMT)::

            score(y) = log P(y) / lp(|y|),   lp(n) = ((5 + n) / 6) ** length_penalty

        where ``|y|`` counts the generated tokens, the end token included.
        Hypotheses still alive after `max_len` steps compete too (cut, not
        finished). A row stops early once its best finished score is at
        least ``log P / lp(max_len)`` of each live hypothesis, a bound no
        continuation can beat (log P only falls and lp only grows), so
        stopping early never changes the result. With ``beam_width = 1``
        this is `greedy_decode` stopped at the end token; with a beam wider
        than the number of possible hypotheses it is exhaustive search.

        Runs in evaluation mode (restoring the previous mode) and
        overwrites the forward caches.

        Parameters
        ----------
        src : ndarray
            (T_src, B, src_size); with ``embedding_dim``, ids (T_src, B).
        beam_width : int (>= 1)
        max_len : int (>= 0)
            The most tokens to generate (the end token included).
        end_id : int or None
            The end token; None never ends a hypothesis (all run to max_len).
        start_id : int
            The start token the decoder reads first.
        length_penalty : float (>= 0)
            GNMT's alpha: 0 ranks by log P(y) alone (favouring short
            outputs); larger values favour longer ones.
        src_lengths : array_like of B ints, or None

        Returns
        -------
        BeamSearchResult
            ``sequences``, ``scores``, ``log_probs``, ``finished`` and, with
            attention, each chosen hypothesis's ``attention`` weights.
        """
        K = check_int("beam_width", beam_width, 1)
        max_len = check_int("max_len", max_len, 0)
        if end_id is not None:
            end_id = self._check_token("end_id", end_id)
        start_id = self._check_token("start_id", start_id)
        if (
            isinstance(length_penalty, bool)
            or not isinstance(length_penalty, numbers.Real)
            or not length_penalty >= 0
        ):
            raise ValueError(f"length_penalty must be a number >= 0, got {length_penalty!r}")
        alpha_lp = float(length_penalty)

        def lp(n: int) -> float:
            return ((5.0 + n) / 6.0) ** alpha_lp

        V = self.tgt_size
        with _evaluating(self):
            memory, h, lengths = self._encode(src, src_lengths)
            S, B = memory.shape[:2]
            rows = np.repeat(np.arange(B), K)  # beam k of row b is batch row b * K + k
            h = map_state(lambda a: a[:, rows], h)
            memory = memory[:, rows]
            beam_lengths = None if lengths is None else lengths[rows]
            logp = np.full((B, K), -np.inf)  # log P of each live hypothesis
            logp[:, 0] = 0.0  # one live hypothesis per row at first
            tokens = np.zeros((B, K, 0), dtype=np.int64)
            attn = np.zeros((B, K, 0, S)) if self.attn is not None else None
            best: List[Optional[Tuple[float, float, np.ndarray, Optional[np.ndarray], bool]]] = [
                None
            ] * B
            prev = np.full(B * K, start_id, dtype=np.int64)
            done = np.zeros(B, dtype=bool)
            steps = 0
            for t in range(max_len):
                if done.all():
                    break
                logits, h, alpha = self._step(prev, h, memory, beam_lengths)
                steps = t + 1
                cand = (logp[:, :, None] + _log_softmax(logits).reshape(B, K, V)).reshape(B, K * V)
                order = np.argsort(-cand, axis=1, kind="stable")[:, :K]  # ties: lower index
                top = np.take_along_axis(cand, order, axis=1)
                origin, tok = order // V, order % V
                tokens = np.concatenate(
                    [np.take_along_axis(tokens, origin[:, :, None], axis=1), tok[:, :, None]],
                    axis=2,
                )
                if attn is not None:
                    a_prev = np.take_along_axis(attn, origin[:, :, None, None], axis=1)
                    a_new = alpha.reshape(B, K, 1, S)[np.arange(B)[:, None], origin]
                    attn = np.concatenate([a_prev, a_new], axis=2)
                ended = (tok == end_id) & np.isfinite(top)
                for b, k in zip(*np.nonzero(ended)):
                    score = top[b, k] / lp(t + 1)
                    if not done[b] and (best[b] is None or score > best[b][0]):
                        best[b] = (
                            score,
                            top[b, k],
                            tokens[b, k, :-1],
                            None if attn is None else attn[b, k, :-1],
                            True,
                        )
                logp = np.where(ended | done[:, None], -np.inf, top)
                for b in np.nonzero(~done)[0]:
                    live = logp[b][np.isfinite(logp[b])]
                    if live.size == 0 or (
                        best[b] is not None and best[b][0] >= live.max() / lp(max_len)
                    ):
                        done[b] = True
                logp[done] = -np.inf
                select = (np.arange(B)[:, None] * K + origin).reshape(-1)
                h = map_state(lambda a: a[:, select], h)
                prev = tok.reshape(-1)
            if steps == max_len:  # hypotheses cut at max_len compete as they are
                for b in np.nonzero(~done)[0]:
                    for k in np.nonzero(np.isfinite(logp[b]))[0]:
                        score = logp[b, k] / lp(max_len)
                        if best[b] is None or score > best[b][0]:
                            best[b] = (
                                score,
                                logp[b, k],
                                tokens[b, k],
                                None if attn is None else attn[b, k],
                                False,
                            )
        sequences, attention = [], [] if attn is not None else None
        for b in range(B):
            score, total, seq, a, fin = best[b]
            sequences.append(np.array(seq, dtype=np.int64))
            if attention is not None:
                n = S if lengths is None else int(lengths[b])
                attention.append(np.array(a[:, :n], dtype=self.dtype))
        return BeamSearchResult(
            sequences=sequences,
            scores=np.array([b[0] for b in best], dtype=np.float64),
            log_probs=np.array([b[1] for b in best], dtype=np.float64),
            finished=np.array([b[4] for b in best], dtype=bool),
            attention=attention,
        )
