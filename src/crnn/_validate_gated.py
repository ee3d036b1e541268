"""Input checks of the gated cells (LSTM, GRU), shared by both engines.

The same rules as `crnn._validate` for the Elman RNN: one float dtype,
C-contiguous native arrays, shapes named in every error, all before any C
code runs. A gated cell's weights stack its gates: weight_ih is
(gates * H, I), weight_hh (gates * H, H), biases (gates * H,).
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Tuple

import numpy as np

from ._types import GRUCache, LSTMCache
from ._validate import (
    _common_float_dtype,
    _float_dtype_of,
    as_array,
    as_float_array,
    check_lengths,
    check_sizes,
)

LSTM_GATES = 4
GRU_GATES = 3


class GatedArgs(NamedTuple):
    """Normalised arguments of lstm_forward / gru_forward (c0 None for GRU)."""

    x: np.ndarray
    h0: Optional[np.ndarray]
    c0: Optional[np.ndarray]
    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: Optional[np.ndarray]
    bias_hh: Optional[np.ndarray]
    lengths: Optional[np.ndarray]
    T: int
    B: int
    I: int  # noqa: E741 (PyTorch's name for the input size)
    H: int
    dtype: np.dtype


def gated_forward_args(cell: str, gates: int, x: Any, h0: Any, c0: Any, weight_ih: Any,
                       weight_hh: Any, bias_ih: Any, bias_hh: Any, lengths: Any) -> GatedArgs:
    """Check and normalise the arguments of a gated cell's forward."""
    for name, value in (("x", x), ("weight_ih", weight_ih), ("weight_hh", weight_hh)):
        _float_dtype_of(name, value)  # required: None is a TypeError
    dtype = _common_float_dtype(
        [("x", x), ("h0", h0), ("c0", c0), ("weight_ih", weight_ih), ("weight_hh", weight_hh),
         ("bias_ih", bias_ih), ("bias_hh", bias_hh)]
    )
    w_ih = as_array("weight_ih", weight_ih)
    if w_ih.ndim != 2 or w_ih.shape[0] % gates:
        raise ValueError(f"weight_ih of an {cell} must have shape ({gates} * hidden_size, input_size), "
                         f"got {w_ih.shape}")
    G, I = w_ih.shape
    H = G // gates
    x_shape = as_array("x", x).shape
    if len(x_shape) == 3:
        check_sizes(x_shape[0], x_shape[1], I, G)
    x_arr = as_float_array("x", x, dtype, (None, None, I))
    T, B = x_arr.shape[:2]
    return GatedArgs(
        x=x_arr,
        h0=None if h0 is None else as_float_array("h0", h0, dtype, (B, H)),
        c0=None if c0 is None else as_float_array("c0", c0, dtype, (B, H)),
        weight_ih=np.ascontiguousarray(w_ih, dtype=dtype),
        weight_hh=as_float_array("weight_hh", weight_hh, dtype, (G, H)),
        bias_ih=None if bias_ih is None else as_float_array("bias_ih", bias_ih, dtype, (G,)),
        bias_hh=None if bias_hh is None else as_float_array("bias_hh", bias_hh, dtype, (G,)),
        lengths=check_lengths(lengths, T, B),
        T=T, B=B, I=I, H=H, dtype=dtype,
    )


def _state_grad(name: str, value: Any, a: GatedArgs) -> Optional[np.ndarray]:
    return None if value is None else as_float_array(name, value, a.dtype, (a.B, a.H))


def lstm_backward_args(dout: Any, dh_n: Any, dc_n: Any, cache: Any
                       ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray], LSTMCache]:
    """Check (dout, dh_n, dc_n, cache) of lstm_backward, re-checking the cache
    field by field so no inconsistent shape can reach C code."""
    if not isinstance(cache, LSTMCache):
        raise TypeError(f"cache must be the LSTMCache returned by lstm_forward, got {type(cache).__name__}")
    a = gated_forward_args("LSTM", LSTM_GATES, cache.x, cache.h0, cache.c0, cache.weight_ih,
                           cache.weight_hh, cache.bias_ih, cache.bias_hh, cache.lengths)
    _common_float_dtype([("cache.x", cache.x), ("cache.out", cache.out), ("cache.gates", cache.gates),
                         ("cache.cells", cache.cells), ("dout", dout), ("dh_n", dh_n), ("dc_n", dc_n)])
    seq = (a.T, a.B, a.H)
    checked = LSTMCache(a.x, a.h0, a.c0, a.weight_ih, a.weight_hh, a.bias_ih, a.bias_hh, a.lengths,
                        as_float_array("cache.out", cache.out, a.dtype, seq),
                        as_float_array("cache.gates", cache.gates, a.dtype, (a.T, a.B, LSTM_GATES * a.H)),
                        as_float_array("cache.cells", cache.cells, a.dtype, seq))
    dout = None if dout is None else as_float_array("dout", dout, a.dtype, seq)
    return dout, _state_grad("dh_n", dh_n, a), _state_grad("dc_n", dc_n, a), checked


def gru_backward_args(dout: Any, dh_n: Any, cache: Any
                      ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], GRUCache]:
    """Check (dout, dh_n, cache) of gru_backward, re-checking the cache."""
    if not isinstance(cache, GRUCache):
        raise TypeError(f"cache must be the GRUCache returned by gru_forward, got {type(cache).__name__}")
    a = gated_forward_args("GRU", GRU_GATES, cache.x, cache.h0, None, cache.weight_ih,
                           cache.weight_hh, cache.bias_ih, cache.bias_hh, cache.lengths)
    _common_float_dtype([("cache.x", cache.x), ("cache.out", cache.out), ("cache.gates", cache.gates),
                         ("cache.hn", cache.hn), ("dout", dout), ("dh_n", dh_n)])
    seq = (a.T, a.B, a.H)
    checked = GRUCache(a.x, a.h0, a.weight_ih, a.weight_hh, a.bias_ih, a.bias_hh, a.lengths,
                       as_float_array("cache.out", cache.out, a.dtype, seq),
                       as_float_array("cache.gates", cache.gates, a.dtype, (a.T, a.B, GRU_GATES * a.H)),
                       as_float_array("cache.hn", cache.hn, a.dtype, seq))
    dout = None if dout is None else as_float_array("dout", dout, a.dtype, seq)
    return dout, _state_grad("dh_n", dh_n, a), checked
