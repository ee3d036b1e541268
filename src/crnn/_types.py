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
