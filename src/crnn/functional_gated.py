"""The C engine's LSTM and GRU: validate once, then call the kernels.

Same names, signatures and semantics as in `crnn.reference` (the NumPy
specification). Checks happen in `crnn._validate_gated` before any C code
runs; `crnn._core` only passes pointers and releases the GIL.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from . import _core
from ._types import GRUCache, GRUGrads, LSTMCache, LSTMGrads
from ._validate_gated import (
    GRU_GATES,
    LSTM_GATES,
    gated_forward_args,
    gru_backward_args,
    lstm_backward_args,
)


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
    """LSTM over a time-major batch (C engine); PyTorch's gates [i f g o].

    x (T, B, I); h0, c0 (B, H) or None (zeros); weight_ih (4H, I);
    weight_hh (4H, H); biases (4H,) or None; lengths as in `rnn_forward`
    (padded steps output 0 and hold h and c).

    Returns out (T, B, H), h_n (B, H), c_n (B, H) and an LSTMCache for
    `lstm_backward` (do not modify out in place before the backward).
    """
    a = gated_forward_args("LSTM", LSTM_GATES, x, h0, c0, weight_ih, weight_hh, bias_ih,
                           bias_hh, lengths)
    out = np.empty((a.T, a.B, a.H), a.dtype)
    h_n = np.empty((a.B, a.H), a.dtype)
    c_n = np.empty((a.B, a.H), a.dtype)
    gates = np.empty((a.T, a.B, LSTM_GATES * a.H), a.dtype)
    cells = np.empty((a.T, a.B, a.H), a.dtype)
    _core.lstm_forward(a.x, a.h0, a.c0, a.weight_ih, a.weight_hh, a.bias_ih, a.bias_hh,
                       a.lengths, out, h_n, c_n, gates, cells)
    cache = LSTMCache(a.x, a.h0, a.c0, a.weight_ih, a.weight_hh, a.bias_ih, a.bias_hh,
                      a.lengths, out, gates, cells)
    return out, h_n, c_n, cache


def lstm_backward(dout: Optional[Any], dh_n: Optional[Any], dc_n: Optional[Any],
                  cache: LSTMCache) -> LSTMGrads:
    """BPTT for `lstm_forward` (C engine). dout, dh_n, dc_n may be None.

    Returns LSTMGrads(dx, dh0, dc0, dweight_ih, dweight_hh, dbias_ih,
    dbias_hh); the bias gradients are equal (None for an absent bias).
    """
    dout, dh_n, dc_n, c = lstm_backward_args(dout, dh_n, dc_n, cache)
    T, B, I = c.x.shape
    H = c.weight_hh.shape[1]
    dtype = c.x.dtype
    dx = np.empty((T, B, I), dtype)
    dh0 = np.empty((B, H), dtype)
    dc0 = np.empty((B, H), dtype)
    dw_ih = np.empty_like(c.weight_ih)
    dw_hh = np.empty_like(c.weight_hh)
    has_bias = c.bias_ih is not None or c.bias_hh is not None
    db = np.empty(LSTM_GATES * H, dtype) if has_bias else None
    _core.lstm_backward(c.x, c.h0, c.c0, c.weight_ih, c.weight_hh, c.lengths, c.out, c.gates,
                        c.cells, dout, dh_n, dc_n, dx, dh0, dc0, dw_ih, dw_hh, db)
    return LSTMGrads(dx, dh0, dc0, dw_ih, dw_hh,
                     None if c.bias_ih is None else db,
                     None if c.bias_hh is None else (db.copy() if c.bias_ih is not None else db))


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
    """GRU over a time-major batch (C engine); PyTorch's gates [r z n], with
    b_hn inside the reset product: n = tanh(x W_in + b_in + r (h W_hn + b_hn)).

    Returns out (T, B, H), h_n (B, H) and a GRUCache for `gru_backward`.
    """
    a = gated_forward_args("GRU", GRU_GATES, x, h0, None, weight_ih, weight_hh, bias_ih,
                           bias_hh, lengths)
    out = np.empty((a.T, a.B, a.H), a.dtype)
    h_n = np.empty((a.B, a.H), a.dtype)
    gates = np.empty((a.T, a.B, GRU_GATES * a.H), a.dtype)
    hn = np.empty((a.T, a.B, a.H), a.dtype)
    _core.gru_forward(a.x, a.h0, a.weight_ih, a.weight_hh, a.bias_ih, a.bias_hh, a.lengths,
                      out, h_n, gates, hn)
    cache = GRUCache(a.x, a.h0, a.weight_ih, a.weight_hh, a.bias_ih, a.bias_hh, a.lengths, out,
                     gates, hn)
    return out, h_n, cache


def gru_backward(dout: Optional[Any], dh_n: Optional[Any], cache: GRUCache) -> GRUGrads:
    """BPTT for `gru_forward` (C engine). dout, dh_n may be None.

    Returns GRUGrads(dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh).
    """
    dout, dh_n, c = gru_backward_args(dout, dh_n, cache)
    T, B, I = c.x.shape
    H = c.weight_hh.shape[1]
    dtype = c.x.dtype
    dx = np.empty((T, B, I), dtype)
    dh0 = np.empty((B, H), dtype)
    dw_ih = np.empty_like(c.weight_ih)
    dw_hh = np.empty_like(c.weight_hh)
    db_ih = None if c.bias_ih is None else np.empty(GRU_GATES * H, dtype)
    db_hh = None if c.bias_hh is None else np.empty(GRU_GATES * H, dtype)
    _core.gru_backward(c.x, c.h0, c.weight_ih, c.weight_hh, c.lengths, c.out, c.gates, c.hn,
                       dout, dh_n, dx, dh0, dw_ih, dw_hh, db_ih, db_hh)
    return GRUGrads(dx, dh0, dw_ih, dw_hh, db_ih, db_hh)
