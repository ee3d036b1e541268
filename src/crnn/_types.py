"""Result and cache types shared by both engines (no imports from crnn).

Both `crnn.reference` and the C engine (`crnn.functional`) produce and consume
these, so a cache made by one engine's forward can be fed to either backward.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

NONLINEARITIES = ("tanh", "relu", "sigmoid")


class RNNCache(NamedTuple):
    """What `rnn_backward` needs from `rnn_forward` (references, not copies).

    Arrays are the normalised inputs (one floating dtype, C-contiguous, native
    byte order) and the forward output. Do not modify `out` in place between
    the forward and the backward call: the backward reads it.
    """

    x: np.ndarray  # (T, B, I)
    h0: Optional[np.ndarray]  # (B, H) or None for zeros
    weight_ih: np.ndarray  # (H, I)
    weight_hh: np.ndarray  # (H, H)
    bias_ih: Optional[np.ndarray]  # (H,) or None
    bias_hh: Optional[np.ndarray]  # (H,) or None
    lengths: Optional[np.ndarray]  # (B,) int64 in [0, T], or None
    nonlinearity: str  # one of NONLINEARITIES
    out: np.ndarray  # (T, B, H); zero where t >= lengths[b]


class RNNGrads(NamedTuple):
    """Gradients of `rnn_backward`, in PyTorch's parameter order."""

    dx: np.ndarray  # (T, B, I)
    dh0: np.ndarray  # (B, H), also when h0 was None (gradient w.r.t. the zero state)
    dweight_ih: np.ndarray  # (H, I)
    dweight_hh: np.ndarray  # (H, H)
    dbias_ih: Optional[np.ndarray]  # (H,) or None when the forward had no bias_ih
    dbias_hh: Optional[np.ndarray]  # (H,) or None when the forward had no bias_hh


class LSTMCache(NamedTuple):
    """What `lstm_backward` needs from `lstm_forward` (either engine's)."""

    x: np.ndarray  # (T, B, I)
    h0: Optional[np.ndarray]  # (B, H) or None
    c0: Optional[np.ndarray]  # (B, H) or None
    weight_ih: np.ndarray  # (4H, I), gates [i f g o]
    weight_hh: np.ndarray  # (4H, H)
    bias_ih: Optional[np.ndarray]  # (4H,) or None
    bias_hh: Optional[np.ndarray]  # (4H,) or None
    lengths: Optional[np.ndarray]  # (B,) int64 or None
    out: np.ndarray  # (T, B, H): h_t, zero on padded steps
    gates: np.ndarray  # (T, B, 4H): the activations i, f, g, o (zero on padded steps)
    cells: np.ndarray  # (T, B, H): c_t (zero on padded steps)


class LSTMGrads(NamedTuple):
    """Gradients of `lstm_backward`, in PyTorch's parameter order."""

    dx: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray
    dweight_ih: np.ndarray
    dweight_hh: np.ndarray
    dbias_ih: Optional[np.ndarray]
    dbias_hh: Optional[np.ndarray]


class GRUCache(NamedTuple):
    """What `gru_backward` needs from `gru_forward` (either engine's)."""

    x: np.ndarray  # (T, B, I)
    h0: Optional[np.ndarray]  # (B, H) or None
    weight_ih: np.ndarray  # (3H, I), gates [r z n]
    weight_hh: np.ndarray  # (3H, H)
    bias_ih: Optional[np.ndarray]  # (3H,) or None
    bias_hh: Optional[np.ndarray]  # (3H,) or None
    lengths: Optional[np.ndarray]  # (B,) int64 or None
    out: np.ndarray  # (T, B, H): h_t, zero on padded steps
    gates: np.ndarray  # (T, B, 3H): the activations r, z, n (zero on padded steps)
    hn: np.ndarray  # (T, B, H): h_{t-1} W_hn^T + b_hn (zero on padded steps)


class GRUGrads(NamedTuple):
    """Gradients of `gru_backward`, in PyTorch's parameter order."""

    dx: np.ndarray
    dh0: np.ndarray
    dweight_ih: np.ndarray
    dweight_hh: np.ndarray
    dbias_ih: Optional[np.ndarray]
    dbias_hh: Optional[np.ndarray]


class JordanCache(NamedTuple):
    """What `jordan_backward` needs from `jordan_forward` (references, not copies)."""

    x: np.ndarray  # (T, B, I)
    y0: Optional[np.ndarray]  # (B, O) or None for zeros
    weight_ih: np.ndarray  # (H, I)
    weight_hy: np.ndarray  # (H, O): the fed-back output into the hidden layer
    weight_ho: np.ndarray  # (O, H): hidden layer to output
    bias_ih: Optional[np.ndarray]  # (H,) or None
    bias_hh: Optional[np.ndarray]  # (H,) or None
    bias_ho: Optional[np.ndarray]  # (O,) or None
    lengths: Optional[np.ndarray]  # (B,) int64 in [0, T], or None
    nonlinearity: str  # f, one of NONLINEARITIES
    output_nonlinearity: str  # g, "identity" or one of NONLINEARITIES
    hidden: np.ndarray  # (T, B, H) h_t; zero where t >= lengths[b]
    out: np.ndarray  # (T, B, O) y_t; zero where t >= lengths[b]


class JordanGrads(NamedTuple):
    """Gradients of `jordan_backward`."""

    dx: np.ndarray  # (T, B, I)
    dy0: np.ndarray  # (B, O), also when y0 was None
    dweight_ih: np.ndarray
    dweight_hy: np.ndarray
    dweight_ho: np.ndarray
    dbias_ih: Optional[np.ndarray]
    dbias_hh: Optional[np.ndarray]
    dbias_ho: Optional[np.ndarray]
