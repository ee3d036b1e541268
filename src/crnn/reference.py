"""The specification of crnn, written in plain NumPy.

Every public function here has the same signature and the same semantics as
its C-accelerated counterpart in `crnn` (`crnn.functional`). This module is
the oracle: the test-suite holds the C engine against it, and it is what a
"hand-written NumPy RNN" looks like when one compares crnn with one. It is
therefore written to be read, not to be fast: one Python loop over time
steps, each step spelled out exactly as the formula

    h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),   f in {tanh, relu, sigmoid}

and backpropagation through time as the textbook loop from the last step to
the first. Arrays are time-major: x is (T, B, I), out is (T, B, H); weights
use PyTorch's layout (weight_ih is (H, I), weight_hh is (H, H), two biases).

Variable-length batches: with `lengths`, row b is valid for t < lengths[b].
On the other steps its output is zero and its state is held, so h_n[b] is the
state after the row's last valid step (h0[b], or zeros, for a length of 0).

All arithmetic stays in the input dtype (float32 or float64), except the
norms of `clip_grad_norm`, which are accumulated in float64 like the C engine.
Inputs are checked and normalised by `crnn._validate`, shared with the C
engine, so both engines accept and reject exactly the same arguments.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from ._types import (NONLINEARITIES, GRUCache, GRUGrads, JordanCache, JordanGrads, LSTMCache,
                     LSTMGrads, RNNCache, RNNGrads)
from ._validate_gated import (
    GRU_GATES,
    LSTM_GATES,
    gated_forward_args,
    gru_backward_args,
    lstm_backward_args,
)
from ._validate import (
    check_clip_value,
    check_lengths,
    check_max_norm,
    check_nonlinearity,
    check_norm_type,
    clip_targets,
    rnn_backward_args,
    rnn_forward_args,
)

__all__ = ["rnn_forward", "rnn_backward", "clip_grad_norm", "clip_grad_value"]


# --------------------------------------------------------------------------
# Activations and their derivatives, the latter written in terms of the
# activation's output h = f(a): that is what the backward pass has stored.
# --------------------------------------------------------------------------

def _sigmoid(a: np.ndarray) -> np.ndarray:
    # 1 / (1 + exp(-a)), evaluated so that exp never overflows for large |a|.
    z = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + z), z / (1 + z))


def _relu(a: np.ndarray) -> np.ndarray:
    return np.maximum(a, 0)


_ACTIVATIONS = {"tanh": np.tanh, "relu": _relu, "sigmoid": _sigmoid}


def _activation_grad(nonlinearity: str, h: np.ndarray) -> np.ndarray:
    """f'(a) expressed through h = f(a)."""
    if nonlinearity == "tanh":
        return 1 - h * h
    if nonlinearity == "relu":
        return (h > 0).astype(h.dtype)
    if nonlinearity == "sigmoid":
        return h * (1 - h)
    raise ValueError(f"unknown nonlinearity {nonlinearity!r}")


# --------------------------------------------------------------------------
# Forward and backward on already-normalised arrays.
# --------------------------------------------------------------------------

def _forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, lengths, nonlinearity):
    T, B, _ = x.shape
    H = weight_hh.shape[0]
    f = _ACTIVATIONS[nonlinearity]
    # Without lengths every row is valid on every step.
    row_lengths = np.full(B, T, dtype=np.int64) if lengths is None else lengths

    h = np.zeros((B, H), dtype=x.dtype) if h0 is None else h0.copy()
    out = np.zeros((T, B, H), dtype=x.dtype)
    for t in range(T):
        a = x[t] @ weight_ih.T
        if bias_ih is not None:
            a = a + bias_ih
        a = a + h @ weight_hh.T
        if bias_hh is not None:
            a = a + bias_hh
        h_new = f(a)

        valid = (t < row_lengths)[:, None]  # (B, 1)
        out[t] = np.where(valid, h_new, 0)
        h = np.where(valid, h_new, h)  # padded rows hold their state
    return out, h


def _backward(dout, dh_n, cache):
    x, h0, weight_ih, weight_hh, bias_ih, bias_hh, lengths, nonlinearity, out = cache
    T, B, I = x.shape
    H = weight_hh.shape[0]
    dtype = out.dtype
    row_lengths = np.full(B, T, dtype=np.int64) if lengths is None else lengths
    h_init = np.zeros((B, H), dtype=dtype) if h0 is None else h0

    dx = np.zeros((T, B, I), dtype=dtype)
    dweight_ih = np.zeros((H, I), dtype=dtype)
    dweight_hh = np.zeros((H, H), dtype=dtype)
    dbias = np.zeros(H, dtype=dtype)
    # dh: gradient of the loss w.r.t. the state carried out of step t.
    dh = np.zeros((B, H), dtype=dtype) if dh_n is None else dh_n.copy()

    for t in range(T - 1, -1, -1):
        valid = (t < row_lengths)[:, None]  # (B, 1)
        h_t = out[t]
        # A row valid at t was valid at t - 1 too, so its previous state is
        # out[t - 1] (or the initial state). Padded rows are masked below.
        h_prev = out[t - 1] if t > 0 else h_init

        if dout is not None:
            dh = dh + np.where(valid, dout[t], 0)
        # Gradient w.r.t. the pre-activation a_t; zero on padded steps.
        da = np.where(valid, dh * _activation_grad(nonlinearity, h_t), 0)

        dx[t] = da @ weight_ih
        # Padded inputs are never read, so NaN or inf there (0 * inf = NaN)
        # cannot leak into the weight gradient.
        dweight_ih += da.T @ np.where(valid, x[t], 0)
        dweight_hh += da.T @ h_prev
        dbias += da.sum(axis=0)
        # Valid rows pass the gradient through W_hh; padded rows held their
        # state, so their gradient passes through unchanged.
        dh = np.where(valid, da @ weight_hh, dh)

    return RNNGrads(
        dx=dx,
        dh0=dh,
        dweight_ih=dweight_ih,
        dweight_hh=dweight_hh,
        # a_t depends on b_ih and b_hh in the same way: equal gradients,
        # returned as separate arrays so neither aliases the other.
        dbias_ih=None if bias_ih is None else dbias.copy(),
        dbias_hh=None if bias_hh is None else dbias.copy(),
    )


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------

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
    args = rnn_forward_args(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, lengths)
    out, h_n = _forward(args.x, args.h0, args.weight_ih, args.weight_hh, args.bias_ih,
                        args.bias_hh, args.lengths, args.nonlinearity)
    cache = RNNCache(args.x, args.h0, args.weight_ih, args.weight_hh, args.bias_ih,
                     args.bias_hh, args.lengths, args.nonlinearity, out)
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
    dout, dh_n, cache = rnn_backward_args(dout, dh_n, cache)
    return _backward(dout, dh_n, cache)


def _total_norm(arrays, norm_type: float) -> float:
    """The norm of all arrays as if concatenated, accumulated in float64."""
    if not arrays:
        return 0.0
    if math.isinf(norm_type):
        # np.max, unlike Python's max, propagates NaN.
        return float(np.max([np.max(np.abs(a), initial=0.0) for a in arrays]))
    total = 0.0
    for a in arrays:
        total += float(np.sum(np.abs(a.astype(np.float64)) ** norm_type))
    return total ** (1.0 / norm_type)


def clip_grad_norm(
    arrays: Any,
    max_norm: float,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Scale arrays in place so that their joint norm is at most `max_norm`.

    Same semantics as ``torch.nn.utils.clip_grad_norm_``: the total norm is
    taken over all arrays as if they were concatenated into one vector; every
    array is multiplied by ``min(1, max_norm / (total + 1e-6))``.

    Parameters
    ----------
    arrays : ndarray, iterable of ndarrays, or mapping with ndarray values
        The gradients, all of one float dtype; modified in place.
    max_norm : float
        The largest allowed total norm (>= 0).
    norm_type : float or "inf"
        The p of the p-norm (> 0), or ``float("inf")`` / ``"inf"`` for the
        largest absolute value.
    error_if_nonfinite : bool
        If True and the total norm is NaN or infinite, raise RuntimeError
        without modifying any array. If False, a NaN total makes every array
        NaN and an infinite one scales every array by zero, as in PyTorch.

    Returns
    -------
    float
        The total norm before clipping (0.0 for no arrays).

    Raises
    ------
    RuntimeError
        If `error_if_nonfinite` and the total norm is not finite.
    TypeError, ValueError
        On bad arrays, max_norm or norm_type.
    """
    targets = clip_targets(arrays)
    max_norm = check_max_norm(max_norm)
    p = check_norm_type(norm_type)

    total = _total_norm(targets, p)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {p} of the arrays is non-finite ({total}), so it "
            "cannot be clipped. To scale them by the non-finite norm anyway, set "
            "error_if_nonfinite=False."
        )
    clip_coef = max_norm / (total + 1e-6)
    # min(1, clip_coef) as PyTorch computes it, where a NaN coefficient is kept
    # (Python's min would drop it); multiplying by 1 changes nothing, so skip it.
    if not clip_coef >= 1.0:
        # An infinite total gives clip_coef = 0 and inf * 0 = NaN, as in PyTorch.
        with np.errstate(invalid="ignore"):
            for a in targets:
                a *= clip_coef
    return float(total)


def clip_grad_value(arrays: Any, clip_value: float) -> None:
    """Clamp every element of the arrays to ``[-clip_value, clip_value]`` in place.

    Same semantics as ``torch.nn.utils.clip_grad_value_``; NaN stays NaN.

    Parameters
    ----------
    arrays : ndarray, iterable of ndarrays, or mapping with ndarray values
        The gradients, all of one float dtype; modified in place.
    clip_value : float
        The largest allowed absolute value (>= 0).

    Raises
    ------
    TypeError, ValueError
        On bad arrays or clip_value.
    """
    targets = clip_targets(arrays)
    clip_value = check_clip_value(clip_value)
    for a in targets:
        np.clip(a, -clip_value, clip_value, out=a)


# ---------------------------------------------------------------------------
# Gated cells: LSTM and GRU, with PyTorch's gate layouts.
# ---------------------------------------------------------------------------

def _state_or_zeros(state: Optional[np.ndarray], B: int, H: int, dtype) -> np.ndarray:
    return np.zeros((B, H), dtype) if state is None else state.copy()


def _step_rows(lengths: Optional[np.ndarray], t: int, B: int) -> np.ndarray:
    """Which rows are inside their sequence at step t, as a (B, 1) mask."""
    return np.ones((B, 1), bool) if lengths is None else (t < lengths)[:, None]


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
    """LSTM over a time-major batch (the specification).

    Gates [i f g o] stacked in weight_ih (4H, I) and weight_hh (4H, H):
    i, f, o = sigmoid(a), g = tanh(a) for a = x_t W_ih^T + b_ih + h W_hh^T + b_hh;
    c_t = f c_{t-1} + i g; h_t = o tanh(c_t). h0 / c0 None mean zeros.
    With lengths, padded steps output 0 and hold (h, c).

    Returns out (T, B, H), h_n (B, H), c_n (B, H) and an LSTMCache.
    """
    a = gated_forward_args("LSTM", LSTM_GATES, x, h0, c0, weight_ih, weight_hh, bias_ih,
                           bias_hh, lengths)
    T, B, H = a.T, a.B, a.H
    out = np.zeros((T, B, H), a.dtype)
    gates = np.zeros((T, B, 4 * H), a.dtype)
    cells = np.zeros((T, B, H), a.dtype)
    h = _state_or_zeros(a.h0, B, H, a.dtype)
    c = _state_or_zeros(a.c0, B, H, a.dtype)
    for t in range(T):
        valid = _step_rows(a.lengths, t, B)
        x_t = np.where(valid, a.x[t], 0)  # padding is never read
        pre = x_t @ a.weight_ih.T + h @ a.weight_hh.T
        if a.bias_ih is not None:
            pre = pre + a.bias_ih
        if a.bias_hh is not None:
            pre = pre + a.bias_hh
        i, f = _sigmoid(pre[:, :H]), _sigmoid(pre[:, H:2 * H])
        g, o = np.tanh(pre[:, 2 * H:3 * H]), _sigmoid(pre[:, 3 * H:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        gates[t] = np.where(valid, np.concatenate([i, f, g, o], axis=1), 0)
        cells[t] = np.where(valid, c_new, 0)
        out[t] = np.where(valid, h_new, 0)
        h = np.where(valid, h_new, h)
        c = np.where(valid, c_new, c)
    cache = LSTMCache(a.x, a.h0, a.c0, a.weight_ih, a.weight_hh, a.bias_ih, a.bias_hh, a.lengths,
                      out, gates, cells)
    return out, h, c, cache


def lstm_backward(dout: Optional[Any], dh_n: Optional[Any], dc_n: Optional[Any],
                  cache: LSTMCache) -> LSTMGrads:
    """Backpropagation through time for `lstm_forward` (the specification).

    dout (T, B, H), dh_n and dc_n (B, H) may be None (zero); dout at padded
    steps is ignored. Returns LSTMGrads(dx, dh0, dc0, dweight_ih, dweight_hh,
    dbias_ih, dbias_hh); the two bias gradients are equal (None for an absent
    bias).
    """
    dout, dh_n, dc_n, c = lstm_backward_args(dout, dh_n, dc_n, cache)
    T, B, I = c.x.shape
    H = c.weight_hh.shape[1]
    dtype = c.x.dtype
    dh = _state_or_zeros(dh_n, B, H, dtype)
    dc = _state_or_zeros(dc_n, B, H, dtype)
    dx = np.zeros((T, B, I), dtype)
    dw_ih = np.zeros_like(c.weight_ih)
    dw_hh = np.zeros_like(c.weight_hh)
    db = np.zeros(4 * H, dtype)
    h0 = np.zeros((B, H), dtype) if c.h0 is None else c.h0
    c0 = np.zeros((B, H), dtype) if c.c0 is None else c.c0
    for t in reversed(range(T)):
        valid = _step_rows(c.lengths, t, B)
        i, f, g, o = np.split(c.gates[t], 4, axis=1)
        tanh_c = np.tanh(c.cells[t])
        c_prev = c.cells[t - 1] if t > 0 else c0
        h_prev = c.out[t - 1] if t > 0 else h0
        dh_t = dh if dout is None else dh + np.where(valid, dout[t], 0)
        dc_t = dc + dh_t * o * (1 - tanh_c ** 2)
        d_gates = np.concatenate([dc_t * g * i * (1 - i),
                                  dc_t * c_prev * f * (1 - f),
                                  dc_t * i * (1 - g ** 2),
                                  dh_t * tanh_c * o * (1 - o)], axis=1)
        d_gates = np.where(valid, d_gates, 0)
        x_t = np.where(valid, c.x[t], 0)
        dw_ih += d_gates.T @ x_t
        dw_hh += d_gates.T @ h_prev
        db += d_gates.sum(axis=0)
        dx[t] = d_gates @ c.weight_ih
        dh = np.where(valid, d_gates @ c.weight_hh, dh)
        dc = np.where(valid, dc_t * f, dc)
    return LSTMGrads(dx, dh, dc, dw_ih, dw_hh,
                     None if c.bias_ih is None else db.copy(),
                     None if c.bias_hh is None else db.copy())


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
    """GRU over a time-major batch (the specification).

    Gates [r z n] stacked in weight_ih (3H, I) and weight_hh (3H, H):
    r = sigmoid(x W_ir + b_ir + h W_hr + b_hr), z likewise,
    n = tanh(x W_in + b_in + r (h W_hn + b_hn)), h_t = (1 - z) n + z h_{t-1}.
    With lengths, padded steps output 0 and hold h.

    Returns out (T, B, H), h_n (B, H) and a GRUCache.
    """
    a = gated_forward_args("GRU", GRU_GATES, x, h0, None, weight_ih, weight_hh, bias_ih,
                           bias_hh, lengths)
    T, B, H = a.T, a.B, a.H
    out = np.zeros((T, B, H), a.dtype)
    gates = np.zeros((T, B, 3 * H), a.dtype)
    hn_seq = np.zeros((T, B, H), a.dtype)
    h = _state_or_zeros(a.h0, B, H, a.dtype)
    for t in range(T):
        valid = _step_rows(a.lengths, t, B)
        gi = np.where(valid, a.x[t], 0) @ a.weight_ih.T
        gh = h @ a.weight_hh.T
        if a.bias_ih is not None:
            gi = gi + a.bias_ih
        if a.bias_hh is not None:
            gh = gh + a.bias_hh
        r = _sigmoid(gi[:, :H] + gh[:, :H])
        z = _sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        hn = gh[:, 2 * H:]
        n = np.tanh(gi[:, 2 * H:] + r * hn)
        h_new = (1 - z) * n + z * h
        gates[t] = np.where(valid, np.concatenate([r, z, n], axis=1), 0)
        hn_seq[t] = np.where(valid, hn, 0)
        out[t] = np.where(valid, h_new, 0)
        h = np.where(valid, h_new, h)
    cache = GRUCache(a.x, a.h0, a.weight_ih, a.weight_hh, a.bias_ih, a.bias_hh, a.lengths, out,
                     gates, hn_seq)
    return out, h, cache


def gru_backward(dout: Optional[Any], dh_n: Optional[Any], cache: GRUCache) -> GRUGrads:
    """Backpropagation through time for `gru_forward` (the specification).

    Returns GRUGrads(dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh);
    the bias gradients differ in their n part (b_hn sits inside r * (.)).
    """
    dout, dh_n, c = gru_backward_args(dout, dh_n, cache)
    T, B, I = c.x.shape
    H = c.weight_hh.shape[1]
    dtype = c.x.dtype
    dh = _state_or_zeros(dh_n, B, H, dtype)
    dx = np.zeros((T, B, I), dtype)
    dw_ih = np.zeros_like(c.weight_ih)
    dw_hh = np.zeros_like(c.weight_hh)
    db_ih = np.zeros(3 * H, dtype)
    db_hh = np.zeros(3 * H, dtype)
    h0 = np.zeros((B, H), dtype) if c.h0 is None else c.h0
    for t in reversed(range(T)):
        valid = _step_rows(c.lengths, t, B)
        r, z, n = np.split(c.gates[t], 3, axis=1)
        h_prev = c.out[t - 1] if t > 0 else h0
        dh_t = dh if dout is None else dh + np.where(valid, dout[t], 0)
        da_n = dh_t * (1 - z) * (1 - n ** 2)
        da_r = da_n * c.hn[t] * r * (1 - r)
        da_z = dh_t * (h_prev - n) * z * (1 - z)
        d_in = np.where(valid, np.concatenate([da_r, da_z, da_n], axis=1), 0)
        d_rec = np.where(valid, np.concatenate([da_r, da_z, da_n * r], axis=1), 0)
        dw_ih += d_in.T @ np.where(valid, c.x[t], 0)
        db_ih += d_in.sum(axis=0)
        dx[t] = d_in @ c.weight_ih
        dw_hh += d_rec.T @ h_prev
        db_hh += d_rec.sum(axis=0)
        dh = np.where(valid, dh_t * z + d_rec @ c.weight_hh, dh)
    return GRUGrads(dx, dh, dw_ih, dw_hh,
                    None if c.bias_ih is None else db_ih,
                    None if c.bias_hh is None else db_hh)


# --------------------------------------------------------------------------
# Jordan network: the previous *output* y_{t-1}, not h_{t-1}, is fed back.
#
#     h_t = f(x_t W_ih^T + b_ih + y_{t-1} W_hy^T + b_hh)
#     y_t = g(h_t W_ho^T + b_ho)
#
# f in {tanh, relu, sigmoid}; g in {identity, tanh, relu, sigmoid}. With
# lengths, padded steps output zeros (h and y) and hold y. The C engine's
# counterpart is crnn.functional_jordan (csrc/jordan.c).
# --------------------------------------------------------------------------

OUTPUT_NONLINEARITIES = ("identity",) + NONLINEARITIES


def _jordan_args(x, y0, weight_ih, weight_hy, weight_ho, bias_ih, bias_hh, bias_ho,
                 nonlinearity, output_nonlinearity, lengths):
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64) or x.ndim != 3:
        raise TypeError(f"x must be a float32 or float64 array of shape (T, B, I), "
                        f"got {x.dtype} {x.shape}")
    dt = x.dtype
    T, B, I = x.shape
    nonlinearity = check_nonlinearity(nonlinearity)
    if output_nonlinearity not in OUTPUT_NONLINEARITIES:
        raise ValueError(f"output_nonlinearity must be one of {OUTPUT_NONLINEARITIES}, "
                         f"got {output_nonlinearity!r}")

    def arr(name, a, shape):
        if a is None:
            return None
        a = np.asarray(a)
        if a.dtype != dt:
            raise TypeError(f"{name} has dtype {a.dtype}, x has {dt}: dtypes may not be mixed")
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
        return np.ascontiguousarray(a)

    w_ho = np.asarray(weight_ho)
    if w_ho.ndim != 2:
        raise ValueError(f"weight_ho must be (O, H), got shape {w_ho.shape}")
    O, H = w_ho.shape
    for name, w in (("weight_ih", weight_ih), ("weight_hy", weight_hy), ("weight_ho", weight_ho)):
        if w is None:
            raise TypeError(f"{name} is required")
    return (np.ascontiguousarray(x), arr("y0", y0, (B, O)), arr("weight_ih", weight_ih, (H, I)),
            arr("weight_hy", weight_hy, (H, O)), arr("weight_ho", weight_ho, (O, H)),
            arr("bias_ih", bias_ih, (H,)), arr("bias_hh", bias_hh, (H,)),
            arr("bias_ho", bias_ho, (O,)), nonlinearity, output_nonlinearity,
            check_lengths(lengths, T, B))


def _output_activation(name: str, z: np.ndarray) -> np.ndarray:
    return z.copy() if name == "identity" else _ACTIVATIONS[name](z)


def _output_grad(name: str, y: np.ndarray) -> np.ndarray:
    return np.ones_like(y) if name == "identity" else _activation_grad(name, y)


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
    """A Jordan network over a time-major batch (NumPy reference).

    x (T, B, I); y0 (B, O) or None (zeros); weight_ih (H, I); weight_hy
    (H, O); weight_ho (O, H); biases (H,), (H,), (O,) or None; lengths as
    in `rnn_forward` (padded steps output 0 and hold y).

    Returns out (T, B, O) (the outputs y_t), y_n (B, O) (the output after
    each row's last valid step) and a JordanCache for `jordan_backward`.
    """
    (x, y0, w_ih, w_hy, w_ho, b_ih, b_hh, b_ho, f_name, g_name,
     lengths) = _jordan_args(x, y0, weight_ih, weight_hy, weight_ho, bias_ih, bias_hh, bias_ho,
                             nonlinearity, output_nonlinearity, lengths)
    T, B, _ = x.shape
    O, H = w_ho.shape
    f = _ACTIVATIONS[f_name]
    y = _state_or_zeros(y0, B, O, x.dtype)
    hidden = np.zeros((T, B, H), x.dtype)
    out = np.zeros((T, B, O), x.dtype)
    for t in range(T):
        a = x[t] @ w_ih.T + y @ w_hy.T
        if b_ih is not None:
            a = a + b_ih
        if b_hh is not None:
            a = a + b_hh
        h = f(a)
        z = h @ w_ho.T
        if b_ho is not None:
            z = z + b_ho
        y_new = _output_activation(g_name, z)
        valid = _step_rows(lengths, t, B)
        hidden[t] = np.where(valid, h, 0)
        out[t] = np.where(valid, y_new, 0)
        y = np.where(valid, y_new, y)
    cache = JordanCache(x, y0, w_ih, w_hy, w_ho, b_ih, b_hh, b_ho, lengths, f_name, g_name,
                        hidden, out)
    return out, y, cache


def jordan_backward(dout: Optional[Any], dy_n: Optional[Any], cache: JordanCache) -> JordanGrads:
    """BPTT for `jordan_forward` (NumPy reference). dout, dy_n may be None.

    Returns JordanGrads(dx, dy0, dweight_ih, dweight_hy, dweight_ho,
    dbias_ih, dbias_hh, dbias_ho); the first two bias gradients are equal
    (None for an absent bias).
    """
    if not isinstance(cache, JordanCache):
        raise TypeError(f"cache must be the JordanCache of jordan_forward, got {type(cache).__name__}")
    c = cache
    T, B, I = c.x.shape
    O, H = c.weight_ho.shape
    dt = c.x.dtype

    def grad_arr(name, g, shape):
        if g is None:
            return np.zeros(shape, dt)
        g = np.asarray(g)
        if g.dtype != dt or g.shape != shape:
            raise ValueError(f"{name} must be a {dt} array of shape {shape}, got {g.dtype} {g.shape}")
        return g

    dout = grad_arr("dout", dout, (T, B, O))
    carry = grad_arr("dy_n", dy_n, (B, O)).copy()  # dL/dy_t from later steps
    y_init = _state_or_zeros(c.y0, B, O, dt)
    dx = np.zeros((T, B, I), dt)
    dw_ih, dw_hy, dw_ho = np.zeros_like(c.weight_ih), np.zeros_like(c.weight_hy), np.zeros_like(c.weight_ho)
    db, db_ho = np.zeros(H, dt), np.zeros(O, dt)
    for t in range(T - 1, -1, -1):
        valid = _step_rows(c.lengths, t, B)
        # y_{t-1} for the rows valid at t: the output of step t-1, or y0 at t = 0.
        # (rows valid at t were valid at t-1 too; the others contribute nothing).
        y_prev = y_init if t == 0 else c.out[t - 1]
        gy = np.where(valid, dout[t] + carry, 0)
        dz = gy * _output_grad(c.output_nonlinearity, c.out[t])
        dw_ho += dz.T @ c.hidden[t]
        db_ho += dz.sum(axis=0)
        da = (dz @ c.weight_ho) * _activation_grad(c.nonlinearity, c.hidden[t])
        dw_ih += da.T @ c.x[t]
        dw_hy += da.T @ y_prev
        db += da.sum(axis=0)
        dx[t] = da @ c.weight_ih
        carry = np.where(valid, da @ c.weight_hy, carry)
    return JordanGrads(dx, carry, dw_ih, dw_hy, dw_ho,
                       None if c.bias_ih is None else db,
                       None if c.bias_hh is None else db.copy(),
                       None if c.bias_ho is None else db_ho)
