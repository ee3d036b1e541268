"""The cells' named functional entry points, written once for both engines.

``rnn_forward``, ``lstm_forward``, ... are thin wrappers over an engine's
generic ``forward`` / ``backward`` (any cell of `crnn.cells`), with the
positional signatures of PyTorch's functional style. `crnn.reference` and
`crnn.functional` each call `entry_points` with their own engine, so the two
APIs cannot drift apart.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from . import cells
from .cells import (
    GRUCache,
    GRUGrads,
    JordanCache,
    JordanGrads,
    LSTMCache,
    LSTMGrads,
    RNNCache,
    RNNGrads,
)

Forward = Callable[..., Tuple[np.ndarray, Tuple[np.ndarray, ...], Any]]
Backward = Callable[[cells.CellSpec, Any, Any, Any], Any]


def _stacked(weight_ih: Any, weight_hh: Any, bias_ih: Any, bias_hh: Any) -> Dict[str, Any]:
    return {"weight_ih": weight_ih, "weight_hh": weight_hh, "bias_ih": bias_ih, "bias_hh": bias_hh}


def entry_points(
    forward: Forward, backward: Backward, module: str
) -> Tuple[Callable[..., Any], ...]:
    """(rnn_forward, rnn_backward, lstm_forward, lstm_backward, gru_forward,
    gru_backward, jordan_forward, jordan_backward) over one engine.

    `forward(cell, x, states, weights, lengths=..., **options)` and
    `backward(spec, dout, dstates, cache)` are the engine's; `module` names
    the engine module the functions are shown in.
    """

    def rnn_forward(
        x: np.ndarray,
        h0: Optional[np.ndarray],
        weight_ih: np.ndarray,
        weight_hh: np.ndarray,
        bias_ih: Optional[np.ndarray] = None,
        bias_hh: Optional[np.ndarray] = None,
        *,
        nonlinearity: str = "tanh",
        lengths: Optional[Any] = None,
    ) -> Tuple[np.ndarray, np.ndarray, RNNCache]:
        """Run a one-layer Elman RNN over a time-major batch.

        ``h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` for t = 0 .. T-1.

        Parameters
        ----------
        x : ndarray, shape (T, B, I)
            Inputs, time-major. float32 or float64; every floating argument must
            share that dtype, and the computation runs in it.
        h0 : ndarray, shape (B, H), or None
            Initial state; None means zeros.
        weight_ih : ndarray, shape (H, I)
            Input-to-hidden weights (PyTorch's ``weight_ih_l0``).
        weight_hh : ndarray, shape (H, H)
            Hidden-to-hidden weights (PyTorch's ``weight_hh_l0``).
        bias_ih, bias_hh : ndarray, shape (H,), or None
            Biases; None means no such bias.
        nonlinearity : {"tanh", "relu", "sigmoid"}
            The activation f.
        lengths : array_like of B ints in [0, T], or None
            Valid length of each batch row, in any order. For t >= lengths[b],
            ``out[t, b]`` is zero and the state of row b is held. None means
            every row has length T.

        Returns
        -------
        out : ndarray, shape (T, B, H)
            The state after every step (zero on padded steps).
        h_n : ndarray, shape (B, H)
            The state after each row's last valid step; a new array, never a
            view of ``h0``.
        cache : RNNCache
            The normalised inputs and ``out``, by reference, for `rnn_backward`.

        Raises
        ------
        TypeError, ValueError
            On a wrong dtype, shape, nonlinearity or length.
        """
        out, (h_n,), cache = forward(
            "rnn",
            x,
            (h0,),
            _stacked(weight_ih, weight_hh, bias_ih, bias_hh),
            lengths=lengths,
            nonlinearity=nonlinearity,
        )
        return out, h_n, cache

    def rnn_backward(
        dout: Optional[np.ndarray],
        dh_n: Optional[np.ndarray],
        cache: RNNCache,
    ) -> RNNGrads:
        """Backpropagation through time for `rnn_forward`.

        Parameters
        ----------
        dout : ndarray, shape (T, B, H), or None
            Gradient of the loss w.r.t. ``out``; None means zero. Entries on
            padded steps (t >= lengths[b]) are ignored, as ``out`` is constant
            zero there.
        dh_n : ndarray, shape (B, H), or None
            Gradient of the loss w.r.t. ``h_n``; None means zero.
        cache : RNNCache
            The cache returned by ``rnn_forward`` of either engine.

        Returns
        -------
        RNNGrads
            ``dx`` (T, B, I); ``dh0`` (B, H), also when the forward had no h0
            (then it is the gradient w.r.t. the zero initial state);
            ``dweight_ih`` (H, I); ``dweight_hh`` (H, H); ``dbias_ih`` and
            ``dbias_hh`` (H,), equal in value but separate arrays, or None for
            a bias the forward did not have.

        Raises
        ------
        TypeError, ValueError
            On a wrong cache, dtype or shape.
        """
        return backward(cells.RNN, dout, (dh_n,), cache)

    def lstm_forward(
        x: Any,
        h0: Optional[Any],
        c0: Optional[Any],
        weight_ih: Any,
        weight_hh: Any,
        bias_ih: Optional[Any] = None,
        bias_hh: Optional[Any] = None,
        *,
        lengths: Optional[Any] = None,
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, LSTMCache]:
        """LSTM over a time-major batch.

        Gates [i f g o] stacked in weight_ih (4H, I) and weight_hh (4H, H):
        i, f, o = sigmoid(a), g = tanh(a) for a = x_t W_ih^T + b_ih + h W_hh^T + b_hh;
        c_t = f c_{t-1} + i g; h_t = o tanh(c_t). h0 / c0 None mean zeros.
        With lengths, padded steps output 0 and hold (h, c).

        Returns out (T, B, H), h_n (B, H), c_n (B, H) and an LSTMCache.
        """
        out, (h_n, c_n), cache = forward(
            "lstm", x, (h0, c0), _stacked(weight_ih, weight_hh, bias_ih, bias_hh), lengths=lengths
        )
        return out, h_n, c_n, cache

    def lstm_backward(
        dout: Optional[Any], dh_n: Optional[Any], dc_n: Optional[Any], cache: LSTMCache
    ) -> LSTMGrads:
        """Backpropagation through time for `lstm_forward`.

        dout (T, B, H), dh_n and dc_n (B, H) may be None (zero); dout at padded
        steps is ignored. Returns LSTMGrads(dx, dh0, dc0, dweight_ih, dweight_hh,
        dbias_ih, dbias_hh); the two bias gradients are equal (None for an absent
        bias).
        """
        return backward(cells.LSTM, dout, (dh_n, dc_n), cache)

    def gru_forward(
        x: Any,
        h0: Optional[Any],
        weight_ih: Any,
        weight_hh: Any,
        bias_ih: Optional[Any] = None,
        bias_hh: Optional[Any] = None,
        *,
        lengths: Optional[Any] = None,
    ) -> Tuple[np.ndarray, np.ndarray, GRUCache]:
        """GRU over a time-major batch.

        Gates [r z n] stacked in weight_ih (3H, I) and weight_hh (3H, H):
        r = sigmoid(x W_ir + b_ir + h W_hr + b_hr), z likewise,
        n = tanh(x W_in + b_in + r (h W_hn + b_hn)), h_t = (1 - z) n + z h_{t-1}.
        With lengths, padded steps output 0 and hold h.

        Returns out (T, B, H), h_n (B, H) and a GRUCache.
        """
        out, (h_n,), cache = forward(
            "gru", x, (h0,), _stacked(weight_ih, weight_hh, bias_ih, bias_hh), lengths=lengths
        )
        return out, h_n, cache

    def gru_backward(dout: Optional[Any], dh_n: Optional[Any], cache: GRUCache) -> GRUGrads:
        """Backpropagation through time for `gru_forward`.

        Returns GRUGrads(dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh);
        the bias gradients differ in their n part (b_hn sits inside r * (.)).
        """
        return backward(cells.GRU, dout, (dh_n,), cache)

    def jordan_forward(
        x: Any,
        y0: Optional[Any],
        weight_ih: Any,
        weight_hy: Any,
        weight_ho: Any,
        bias_ih: Optional[Any] = None,
        bias_hh: Optional[Any] = None,
        bias_ho: Optional[Any] = None,
        *,
        nonlinearity: str = "tanh",
        output_nonlinearity: str = "identity",
        lengths: Optional[Any] = None,
    ) -> Tuple[np.ndarray, np.ndarray, JordanCache]:
        """A Jordan network over a time-major batch: the previous *output* is fed back.

        h_t = f(x_t W_ih^T + b_ih + y_{t-1} W_hy^T + b_hh), y_t = g(h_t W_ho^T + b_ho),
        f = nonlinearity (tanh, relu, sigmoid), g = output_nonlinearity (identity,
        tanh, relu, sigmoid).

        x (T, B, I); y0 (B, O) or None (zeros); weight_ih (H, I); weight_hy
        (H, O); weight_ho (O, H); biases (H,), (H,), (O,) or None; lengths as
        in `rnn_forward` (padded steps output 0 and hold y).

        Returns out (T, B, O) (the outputs y_t), y_n (B, O) (the output after
        each row's last valid step) and a JordanCache for `jordan_backward`.
        """
        weights = {
            "weight_ih": weight_ih,
            "weight_hy": weight_hy,
            "weight_ho": weight_ho,
            "bias_ih": bias_ih,
            "bias_hh": bias_hh,
            "bias_ho": bias_ho,
        }
        out, (y_n,), cache = forward(
            "jordan",
            x,
            (y0,),
            weights,
            lengths=lengths,
            nonlinearity=nonlinearity,
            output_nonlinearity=output_nonlinearity,
        )
        return out, y_n, cache

    def jordan_backward(
        dout: Optional[Any], dy_n: Optional[Any], cache: JordanCache
    ) -> JordanGrads:
        """BPTT for `jordan_forward`. dout, dy_n may be None.

        Returns JordanGrads(dx, dy0, dweight_ih, dweight_hy, dweight_ho,
        dbias_ih, dbias_hh, dbias_ho); the first two bias gradients are equal
        (None for an absent bias).
        """
        return backward(cells.JORDAN, dout, (dy_n,), cache)

    functions = (
        rnn_forward,
        rnn_backward,
        lstm_forward,
        lstm_backward,
        gru_forward,
        gru_backward,
        jordan_forward,
        jordan_backward,
    )
    for fn in functions:
        fn.__module__ = module
        fn.__qualname__ = fn.__name__
    return functions
