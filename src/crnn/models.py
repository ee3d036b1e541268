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

=====================  ===========  =========================================
model                  shape        what it computes
=====================  ===========  =========================================
`MLPRegressor`         one-to-one   Linear -> activation -> Linear
`SequenceClassifier`   many-to-one  RNN -> each row's last valid state -> Linear
`SequenceTagger`       many-to-many RNN -> Linear at every step
`CharRNN`              many-to-many one-hot chars -> RNN -> Linear; `generate`
                       one-to-many  samples, feeding each output back in
`CharModel`            (as above)   a CharRNN that carries its characters
                                    (`crnn.data.CharVocab`): text in, text out
`Seq2Seq`              many-to-many encoder RNN -> final state -> decoder RNN
                       (enc.-dec.)  -> Linear; teacher forcing, `greedy_decode`
=====================  ===========  =========================================
"""
from __future__ import annotations

import numbers
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from . import cells
from .data import CharVocab, one_hot  # one_hot is vectorisation; re-exported here
from .module import Module, check_int, float_dtype, input_array
from .nn import Linear, Recurrent, map_state, recurrent_layer
from .serialization import register_module
from .training import last_valid, last_valid_backward

__all__ = ["one_hot", "MLPRegressor", "SequenceClassifier", "SequenceTagger", "CharRNN",
           "CharModel", "Seq2Seq"]


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


def _recurrent(cell: Any, nonlinearity: str, input_size: int, hidden_size: int,
               num_layers: int, **kwargs: Any) -> Recurrent:
    """The recurrent layer of a model: `cell`'s layer (crnn.RNN, LSTM, GRU, or a
    Recurrent of another stacked cell); `nonlinearity` is the RNN cell's option,
    and the other cells have none."""
    spec = cells.get(cell)
    if spec.uses_output_size:
        raise ValueError(f"cell must be a cell without an output size, one of "
                         f"{tuple(n for n, s in cells.REGISTRY.items() if not s.uses_output_size)}; "
                         f"got {spec.name!r}")
    if "nonlinearity" in spec.option_names:
        kwargs["nonlinearity"] = nonlinearity
    elif nonlinearity != "tanh":
        raise ValueError(f"nonlinearity applies to cell='rnn' only (the {spec.title} cell's "
                         f"activations are fixed), got nonlinearity={nonlinearity!r}")
    return recurrent_layer(spec, input_size, hidden_size, num_layers=num_layers, **kwargs)


def _cell_config(layer: Recurrent) -> Dict[str, Any]:
    """The ``cell`` and ``nonlinearity`` entries of a model's config."""
    return dict(cell=layer.spec.name, nonlinearity=layer.options.get("nonlinearity", "tanh"))


def _activation(name: str):
    if name == "tanh":
        return np.tanh, lambda y: 1 - y * y
    if name == "relu":
        return (lambda a: np.maximum(a, 0)), (lambda y: (y > 0).astype(y.dtype))
    if name == "sigmoid":
        def sig(a):
            z = np.exp(-np.abs(a))
            return np.where(a >= 0, 1 / (1 + z), z / (1 + z)).astype(a.dtype)
        return sig, lambda y: y * (1 - y)
    raise ValueError(f"nonlinearity must be 'tanh', 'relu' or 'sigmoid', got {name!r}")


def _sample(logits: np.ndarray, temperature: float, top_k: Optional[int],
            rng: np.random.Generator) -> np.ndarray:
    """One id per row of (B, V) logits: argmax for temperature 0, else a draw
    from softmax(logits / temperature), restricted to the top_k largest."""
    if temperature == 0:
        return np.argmax(logits, axis=-1)
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth = np.sort(z, axis=-1)[:, -top_k][:, None]
        z = np.where(z >= kth, z, -np.inf)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    # Inverse-CDF sampling, one uniform per row (vectorised rng.choice).
    u = rng.random((p.shape[0], 1))
    return np.minimum((np.cumsum(p, axis=-1) < u).sum(axis=-1), p.shape[-1] - 1)


def _check_3d(name: str, x: np.ndarray, features: int) -> None:
    if x.ndim != 3 or x.shape[-1] != features:
        raise ValueError(f"{name} must be time-major (T, B, {features}), got shape {x.shape}")


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

    def __init__(self, in_features: int, hidden_features: int, out_features: int,
                 nonlinearity: str = "tanh", dtype: Any = np.float32, seed: Optional[int] = None,
                 backend: str = "c") -> None:
        super().__init__(backend=backend)
        self.dtype = float_dtype(dtype)
        self.seed = seed
        self.nonlinearity = nonlinearity
        self._f, self._df = _activation(nonlinearity)
        s = _child_seeds(seed, 2)
        self.hidden = Linear(in_features, hidden_features, dtype=self.dtype, seed=s[0], backend=backend)
        self.head = Linear(hidden_features, out_features, dtype=self.dtype, seed=s[1], backend=backend)
        self._cache: Optional[np.ndarray] = None

    def config(self) -> Dict[str, Any]:
        return dict(in_features=self.hidden.in_features, hidden_features=self.hidden.out_features,
                    out_features=self.head.out_features, nonlinearity=self.nonlinearity,
                    dtype=self.dtype.name, seed=self.seed, backend=self.backend)

    def forward(self, x: Any) -> np.ndarray:
        """Predict.

        Parameters
        ----------
        x : ndarray, shape (..., in_features)

        Returns
        -------
        ndarray, shape (..., out_features)
        """
        a = self._f(self.hidden(x))
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
        da = self.head.backward(dy) * self._df(self._cache)
        return self.hidden.backward(da)


# --------------------------------------------------------------------------
# Many-to-one
# --------------------------------------------------------------------------

@register_module
class SequenceClassifier(Module):
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

    Attributes
    ----------
    rnn : Recurrent
        The recurrent layer (crnn.RNN, crnn.LSTM, crnn.GRU, ...).
    head : Linear
        From ``D * hidden_size`` features to ``num_classes`` logits.
    """

    def __init__(self, input_size: int, hidden_size: int, num_classes: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bidirectional: bool = False, dropout: float = 0.0,
                 dtype: Any = np.float32, seed: Optional[int] = None, backend: str = "c",
                 cell: str = "rnn") -> None:
        super().__init__(backend=backend)
        self.dtype = float_dtype(dtype)
        self.seed = seed
        s = _child_seeds(seed, 2)
        self.rnn = _recurrent(cell, nonlinearity, input_size, hidden_size, num_layers,
                              dropout=dropout, bidirectional=bidirectional, dtype=self.dtype,
                              seed=s[0], backend=backend)
        D = self.rnn.num_directions
        self.head = Linear(D * hidden_size, num_classes, dtype=self.dtype, seed=s[1], backend=backend)
        self._cache: Optional[Tuple[int, Any]] = None

    def config(self) -> Dict[str, Any]:
        r = self.rnn
        return dict(input_size=r.input_size, hidden_size=r.hidden_size,
                    num_classes=self.head.out_features, num_layers=r.num_layers,
                    bidirectional=r.bidirectional, dropout=r.dropout, dtype=self.dtype.name,
                    seed=self.seed, backend=self.backend, **_cell_config(r))

    def forward(self, x: Any, h0: Any = None, lengths: Any = None) -> np.ndarray:
        """Class logits for each sequence.

        Parameters
        ----------
        x : ndarray, shape (T, B, input_size)
        h0 : state or None
            The recurrent layer's initial state: (num_layers * D, B,
            hidden_size), a tuple of such for the LSTM's (h, c), or None.
        lengths : array_like of B ints in [0, T], or None

        Returns
        -------
        ndarray, shape (B, num_classes)
            Rows of length 0 see a zero feature vector (only the bias).
        """
        x = input_array("x", x, self.dtype)
        _check_3d("x", x, self.rnn.input_size)
        out, _ = self.rnn(x, h0, lengths)
        H = self.rnn.hidden_size
        feat = last_valid(out[..., :H], lengths)
        if self.rnn.bidirectional:
            feat = np.concatenate([feat, out[0, :, H:]], axis=1)
        self._cache = (x.shape[0], lengths)
        return self.head(feat)

    def backward(self, dlogits: Any) -> Tuple[np.ndarray, np.ndarray]:
        """Backpropagate the last forward; accumulates ``grads``.

        Parameters
        ----------
        dlogits : ndarray, shape (B, num_classes)

        Returns
        -------
        dx : ndarray, shape (T, B, input_size)
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
        return self.rnn.backward(dout)

    def predict(self, x: Any, lengths: Any = None) -> np.ndarray:
        """The most likely class of each sequence, shape (B,)."""
        return np.argmax(self.forward(x, lengths=lengths), axis=-1)


# --------------------------------------------------------------------------
# Many-to-many
# --------------------------------------------------------------------------

@register_module
class SequenceTagger(Module):
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

    Attributes
    ----------
    rnn : Recurrent
        The recurrent layer (crnn.RNN, crnn.LSTM, crnn.GRU, ...).
    head : Linear
        From ``D * hidden_size`` to ``output_size``, applied at every step.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bidirectional: bool = False, dropout: float = 0.0,
                 dtype: Any = np.float32, seed: Optional[int] = None, backend: str = "c",
                 cell: str = "rnn") -> None:
        super().__init__(backend=backend)
        self.dtype = float_dtype(dtype)
        self.seed = seed
        s = _child_seeds(seed, 2)
        self.rnn = _recurrent(cell, nonlinearity, input_size, hidden_size, num_layers,
                              dropout=dropout, bidirectional=bidirectional, dtype=self.dtype,
                              seed=s[0], backend=backend)
        self.head = Linear(self.rnn.num_directions * hidden_size, output_size, dtype=self.dtype,
                           seed=s[1], backend=backend)

    def config(self) -> Dict[str, Any]:
        r = self.rnn
        return dict(input_size=r.input_size, hidden_size=r.hidden_size,
                    output_size=self.head.out_features, num_layers=r.num_layers,
                    bidirectional=r.bidirectional, dropout=r.dropout, dtype=self.dtype.name,
                    seed=self.seed, backend=self.backend, **_cell_config(r))

    def forward(self, x: Any, h0: Any = None, lengths: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        """Outputs at every step, and the final state.

        Parameters
        ----------
        x : ndarray, shape (T, B, input_size)
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
        x = input_array("x", x, self.dtype)
        _check_3d("x", x, self.rnn.input_size)
        out, h_n = self.rnn(x, h0, lengths)
        return self.head(out), h_n

    def backward(self, dy: Any, dh_n: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        """Backpropagate the last forward; accumulates ``grads``.

        Parameters
        ----------
        dy : ndarray, shape (T, B, output_size)
        dh_n : state or None
            Gradient with respect to the final state, shaped like it.

        Returns
        -------
        dx : ndarray, shape (T, B, input_size)
        dh0 : state
            Shaped like the initial state.
        """
        return self.rnn.backward(self.head.backward(dy), dh_n)


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

    Attributes
    ----------
    rnn : Recurrent
        The recurrent layer (``vocab_size`` -> ``hidden_size``, num_layers)
        reading one-hot inputs.
    head : Linear
        ``hidden_size`` -> ``vocab_size`` logits.
    """

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", dropout: float = 0.0, dtype: Any = np.float32,
                 seed: Optional[int] = None, backend: str = "c", cell: str = "rnn") -> None:
        super().__init__(backend=backend)
        self.vocab_size = check_int("vocab_size", vocab_size, 1)
        self.dtype = float_dtype(dtype)
        self.seed = seed
        s = _child_seeds(seed, 2)
        self.rnn = _recurrent(cell, nonlinearity, self.vocab_size, hidden_size, num_layers,
                              dropout=dropout, dtype=self.dtype, seed=s[0], backend=backend)
        self.head = Linear(hidden_size, self.vocab_size, dtype=self.dtype, seed=s[1], backend=backend)

    def config(self) -> Dict[str, Any]:
        r = self.rnn
        return dict(vocab_size=self.vocab_size, hidden_size=r.hidden_size,
                    num_layers=r.num_layers, dropout=r.dropout, dtype=self.dtype.name,
                    seed=self.seed, backend=self.backend, **_cell_config(r))

    def _inputs(self, ids: Any) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.dtype.kind in "iu":
            if arr.ndim != 2:
                raise ValueError(f"ids must be time-major (T, B), got shape {arr.shape}")
            return one_hot(arr, self.vocab_size, self.dtype)
        x = input_array("ids", ids, self.dtype)  # already one-hot (or soft) inputs
        _check_3d("ids", x, self.vocab_size)
        return x

    def forward(self, ids: Any, h0: Any = None, lengths: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        """Next-character logits at every step, and the final state.

        Parameters
        ----------
        ids : ndarray
            Integer ids, shape (T, B); or their one-hot encoding, shape
            (T, B, vocab_size), in the model's dtype.
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

    def backward(self, dlogits: Any, dh_n: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        """Backpropagate the last forward; accumulates ``grads``.

        Returns
        -------
        dx : ndarray, shape (T, B, vocab_size)
            Gradient w.r.t. the one-hot inputs.
        dh0 : state
            Shaped like the initial state.
        """
        return self.rnn.backward(self.head.backward(dlogits), dh_n)

    def generate(self, prime_ids: Any, n: int, temperature: float = 1.0,
                 top_k: Optional[int] = None,
                 rng: Optional[Union[int, np.random.Generator]] = None,
                 h0: Any = None) -> np.ndarray:
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
            raise ValueError(f"prime_ids must be integers of shape (P,) or (P, B) with P >= 1, "
                             f"got {ids.dtype} {ids.shape}")
        n = check_int("n", n, 0)
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or temperature < 0:
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
            out = np.empty((n, ids2.shape[1]), dtype=np.int64)
            logits, h = self.forward(ids2, h)
            for t in range(n):
                nxt = _sample(logits[-1], float(temperature), top_k, gen)
                out[t] = nxt
                if t + 1 < n:
                    logits, h = self.forward(nxt[None, :], h)
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
    hidden_size, num_layers, nonlinearity, dropout, dtype, seed, backend, cell
        As for `CharRNN`.
    unk : str
        What an unknown id decodes to.

    Attributes
    ----------
    vocab : crnn.data.CharVocab
    """

    def __init__(self, chars: str, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", dropout: float = 0.0, dtype: Any = np.float32,
                 seed: Optional[int] = None, backend: str = "c", unk: str = "\ufffd",
                 cell: str = "rnn") -> None:
        if not isinstance(chars, str) or not chars:
            raise ValueError("chars must be a non-empty string")
        self.vocab = CharVocab(chars, unk=unk)
        super().__init__(len(self.vocab), hidden_size, num_layers, nonlinearity=nonlinearity,
                         dropout=dropout, dtype=dtype, seed=seed, backend=backend, cell=cell)
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
        return self.vocab.encode(text)

    def decode(self, ids: Any) -> str:
        return self.vocab.decode(np.asarray(ids, dtype=np.int64))

    def sample(self, prime: str, n: int, temperature: float = 1.0, top_k: Optional[int] = None,
               rng: Optional[Union[int, np.random.Generator]] = None) -> str:
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

@register_module
class Seq2Seq(Module):
    """Encoder-decoder: encoder -> its final state -> decoder -> Linear.

    The encoder reads the source; its final state (per layer, after each
    row's last valid step) is the decoder's initial state. Training uses
    teacher forcing: the decoder reads the *true* previous target tokens
    (`decoder_inputs` builds them); `greedy_decode` instead feeds back its
    own most likely previous output. Target tokens are one-hot vectors of
    ``tgt_size`` classes, which include the start token.

    Parameters
    ----------
    src_size : int
        Features per source step (e.g. a source vocabulary, one-hot).
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

    Attributes
    ----------
    encoder : Recurrent
        ``src_size`` -> ``hidden_size``, ``num_layers``.
    decoder : Recurrent
        ``tgt_size`` -> ``hidden_size``, ``num_layers``.
    head : Linear
        ``hidden_size`` -> ``tgt_size`` logits at every decoder step.
    """

    def __init__(self, src_size: int, tgt_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", dropout: float = 0.0, dtype: Any = np.float32,
                 seed: Optional[int] = None, backend: str = "c", cell: str = "rnn") -> None:
        super().__init__(backend=backend)
        self.dtype = float_dtype(dtype)
        self.seed = seed
        s = _child_seeds(seed, 3)
        kw = dict(dropout=dropout, dtype=self.dtype, backend=backend)
        self.encoder = _recurrent(cell, nonlinearity, src_size, hidden_size, num_layers,
                                  seed=s[0], **kw)
        self.decoder = _recurrent(cell, nonlinearity, tgt_size, hidden_size, num_layers,
                                  seed=s[1], **kw)
        self.head = Linear(hidden_size, tgt_size, dtype=self.dtype, seed=s[2], backend=backend)

    @property
    def tgt_size(self) -> int:
        return self.decoder.input_size

    def config(self) -> Dict[str, Any]:
        e = self.encoder
        return dict(src_size=e.input_size, tgt_size=self.tgt_size, hidden_size=e.hidden_size,
                    num_layers=e.num_layers, dropout=e.dropout, dtype=self.dtype.name,
                    seed=self.seed, backend=self.backend, **_cell_config(e))

    def decoder_inputs(self, tgt_ids: Any, start_id: int) -> np.ndarray:
        """Teacher-forcing inputs: the targets shifted right by one step.

        Parameters
        ----------
        tgt_ids : array_like of ints, shape (T, B)
        start_id : int
            The start token, read at step 0.

        Returns
        -------
        ndarray, shape (T, B, tgt_size)
            One-hot of ``[start_id, tgt_ids[0], ..., tgt_ids[T-2]]``.
        """
        ids = np.asarray(tgt_ids)
        if ids.dtype.kind not in "iu" or ids.ndim != 2:
            raise ValueError(f"tgt_ids must be integers of shape (T, B), got {ids.dtype} {ids.shape}")
        start = np.full((1, ids.shape[1]), check_int("start_id", start_id, 0), dtype=np.int64)
        shifted = np.concatenate([start, ids[:-1].astype(np.int64)], axis=0)
        return one_hot(shifted[: ids.shape[0]], self.tgt_size, self.dtype)

    def forward(self, src: Any, tgt_in: Any, src_lengths: Any = None,
                tgt_lengths: Any = None) -> np.ndarray:
        """Decoder logits under teacher forcing.

        Parameters
        ----------
        src : ndarray, shape (T_src, B, src_size)
        tgt_in : ndarray, shape (T_tgt, B, tgt_size)
            The decoder's inputs (see `decoder_inputs`).
        src_lengths, tgt_lengths : array_like of B ints, or None

        Returns
        -------
        ndarray, shape (T_tgt, B, tgt_size)
        """
        src = input_array("src", src, self.dtype)
        _check_3d("src", src, self.encoder.input_size)
        _, h = self.encoder(src, None, src_lengths)
        out, _ = self.decoder(tgt_in, h, tgt_lengths)
        return self.head(out)

    def backward(self, dlogits: Any) -> Tuple[np.ndarray, np.ndarray]:
        """Backpropagate the last forward; accumulates ``grads``.

        The decoder's gradient w.r.t. its initial state flows into the
        encoder as the gradient of the encoder's final state.

        Returns
        -------
        dsrc : ndarray, shape (T_src, B, src_size)
        dtgt_in : ndarray, shape (T_tgt, B, tgt_size)
        """
        dtgt_in, dh = self.decoder.backward(self.head.backward(dlogits))
        dsrc, _ = self.encoder.backward(None, dh)
        return dsrc, dtgt_in

    def greedy_decode(self, src: Any, n_steps: int, start_id: int,
                      src_lengths: Any = None) -> np.ndarray:
        """Decode without teacher forcing: each step reads the previous argmax.

        Runs in evaluation mode and restores the previous mode; it
        overwrites the forward caches (no ``backward`` afterwards).

        Parameters
        ----------
        src : ndarray, shape (T_src, B, src_size)
        n_steps : int
        start_id : int
        src_lengths : array_like of B ints, or None

        Returns
        -------
        ndarray of int64, shape (n_steps, B)
        """
        src = input_array("src", src, self.dtype)
        _check_3d("src", src, self.encoder.input_size)
        n_steps = check_int("n_steps", n_steps, 0)
        start_id = check_int("start_id", start_id, 0)
        B = src.shape[1]
        was_training = self.training
        self.eval()
        try:
            _, h = self.encoder(src, None, src_lengths)
            prev = np.full(B, start_id, dtype=np.int64)
            out = np.empty((n_steps, B), dtype=np.int64)
            for t in range(n_steps):
                o, h = self.decoder(one_hot(prev[None, :], self.tgt_size, self.dtype), h)
                prev = np.argmax(self.head(o[0]), axis=-1).astype(np.int64)
                out[t] = prev
        finally:
            self.train(was_training)
        return out
