"""The specification of crnn, written in plain NumPy.

Every public function here has the same signature and the same semantics as
its C-accelerated counterpart in `crnn` (`crnn.functional`). This module is
the oracle: the test-suite holds the C engine against it, and it is what a
"hand-written NumPy RNN" looks like when one compares crnn with one. It is
therefore written to be read, not to be fast: one Python loop over time
steps per cell, each step spelled out as its formula, e.g. the Elman RNN's

    h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),   f in {tanh, relu, sigmoid}

and backpropagation through time as the textbook loop from the last step to
the first. Arrays are time-major: x is (T, B, I), out is (T, B, H); weights
use PyTorch's layout (weight_ih is (G, I) for G = gates * H, two biases).

Each cell of the registry (`crnn.cells`) has a pair of kernels here,
``_<name>_forward(a)`` and ``_<name>_backward(b)``, in `KERNELS`; the generic
`forward` and `backward` run any cell, and ``rnn_forward``, ``lstm_forward``,
... are the cells' named entry points.

Variable-length batches: with `lengths`, row b is valid for t < lengths[b].
On the other steps its output is zero and its state is held, so the final
state of row b is the state after its last valid step (the initial state,
or zeros, for a length of 0); inputs at padded steps are never read.

All arithmetic stays in the input dtype (float32 or float64), except the
norms of `clip_grad_norm`, which are accumulated in float64 like the C engine.
Inputs are checked and normalised by `crnn._validate`, shared with the C
engine, so both engines accept and reject exactly the same arguments.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import cells
from ._named import entry_points
from ._reference_seq import (
    attention_backward,
    attention_forward,
    embedding_backward,
    embedding_forward,
)
from ._validate import (
    BackwardArgs,
    ForwardArgs,
    StepNames,
    StepShape,
    backward_args,
    check_clip_value,
    check_max_norm,
    check_norm_type,
    clip_targets,
    forward_args,
    linear_loss_args,
    make_cache,
    prepare_args,
    step_args,
    step_names,
)
from .cells import CellSpec

__all__ = [  # and the cells' named entry points (NAMED, below)
    "forward",
    "backward",
    "prepare",
    "parameters_changed",
    "linear_loss",
    "clip_grad_norm",
    "clip_grad_value",
    "embedding_forward",
    "embedding_backward",
    "attention_forward",
    "attention_backward",
    "ACTIVATIONS",
    "activation_grad",
    "round_bf16",
    "KERNELS",
]


# --------------------------------------------------------------------------
# Activations and their derivatives, the latter written in terms of the
# activation's output y = f(a): that is what the backward pass has stored.
# --------------------------------------------------------------------------


def _sigmoid(a: np.ndarray) -> np.ndarray:
    # 1 / (1 + exp(-a)), evaluated so that exp never overflows for large |a|.
    z = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + z), z / (1 + z))


def _relu(a: np.ndarray) -> np.ndarray:
    return np.maximum(a, 0)


def _identity(a: np.ndarray) -> np.ndarray:
    return a.copy()


ACTIVATIONS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": np.tanh,
    "relu": _relu,
    "sigmoid": _sigmoid,
    "identity": _identity,
}

_ACTIVATION_GRADS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": lambda y: 1 - y * y,
    "relu": lambda y: (y > 0).astype(y.dtype),
    "sigmoid": lambda y: y * (1 - y),
    "identity": np.ones_like,
}


def activation_grad(name: str, y: np.ndarray) -> np.ndarray:
    """f'(a) expressed through the output y = f(a) of activation `name`."""
    return _ACTIVATION_GRADS[name](y)


# --------------------------------------------------------------------------
# Helpers of the kernels
# --------------------------------------------------------------------------


def _zeros_or_copy(state: Optional[np.ndarray], B: int, width: int, dtype) -> np.ndarray:
    return np.zeros((B, width), dtype) if state is None else state.copy()


def _valid_rows(lengths: Optional[np.ndarray], t: int, B: int) -> np.ndarray:
    """Which rows are inside their sequence at step t, as a (B, 1) mask."""
    return np.ones((B, 1), bool) if lengths is None else (t < lengths)[:, None]


def _plus_bias(a: np.ndarray, bias: Optional[np.ndarray]) -> np.ndarray:
    return a if bias is None else a + bias


def round_bf16(a: np.ndarray) -> np.ndarray:
    """float32 `a` rounded to bfloat16, kept as float32 (a new array).

    bfloat16 is the upper 16 bits of a float32; the rounding is to nearest,
    ties to even, on the float32 bit pattern (NaN stays NaN, made quiet;
    values past bfloat16's largest round to infinity). This is what
    ``precision="bf16"`` applies to every operand of the matrix products.
    """
    u = np.asarray(a, np.float32).view(np.uint32)
    nearest = (u + np.uint32(0x7FFF) + ((u >> 16) & 1)) & np.uint32(0xFFFF0000)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    quiet = (u | np.uint32(0x00400000)) & np.uint32(0xFFFF0000)
    return np.where(nan, quiet, nearest).astype(np.uint32).view(np.float32)


def _unrounded(a: np.ndarray) -> np.ndarray:
    return a


def _operand(a: ForwardArgs) -> Callable[[np.ndarray], np.ndarray]:
    """What the call's matrix products do to their operands: round them to
    bfloat16 (precision="bf16") or nothing."""
    return round_bf16 if a.options.get("precision") == "bf16" else _unrounded


def _given(a: ForwardArgs) -> Dict[str, np.ndarray]:
    """The weights the call has; a bias it lacks is left out (read biases with
    .get). With precision="bf16" the others, which only enter products, come
    rounded to bfloat16."""
    rb = _operand(a)
    return {
        name: w if name.startswith("bias") else rb(w)
        for name, w in a.weights.items()
        if w is not None
    }


def _grads(
    b: BackwardArgs,
    dx: np.ndarray,
    dstates0: Sequence[np.ndarray],
    dweights: Mapping[str, np.ndarray],
) -> Any:
    """The spec's gradient tuple; a bias the forward did not have gets None."""
    a = b.forward
    fields: Dict[str, Any] = {"dx": dx}
    fields.update({f"d{s}0": d for s, d in zip(a.spec.states, dstates0)})
    fields.update(
        {
            f"d{name}": None if a.weights[name] is None else dweights[name].copy()
            for name in a.spec.weight_names
        }
    )
    return a.spec.grads_type(**fields)


# --------------------------------------------------------------------------
# The kernels: one forward and one backward per cell, on normalised
# arguments (crnn._validate.ForwardArgs / BackwardArgs). A forward returns
# (out, final states, saved arrays); a backward the cell's gradient tuple.
# --------------------------------------------------------------------------


def _rnn_forward(a: ForwardArgs):
    """h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)."""
    w, f, rb = _given(a), ACTIVATIONS[a.options["nonlinearity"]], _operand(a)
    H = a.sizes["H"]
    h = _zeros_or_copy(a.states[0], a.B, H, a.dtype)
    out = np.zeros((a.T, a.B, H), dtype=a.dtype)
    for t in range(a.T):
        pre = _plus_bias(rb(a.x[t]) @ w["weight_ih"].T, w.get("bias_ih"))
        pre = _plus_bias(pre + rb(h) @ w["weight_hh"].T, w.get("bias_hh"))
        h_new = f(pre)
        valid = _valid_rows(a.lengths, t, a.B)
        out[t] = np.where(valid, h_new, 0)
        h = np.where(valid, h_new, h)  # padded rows hold their state
    return out, (h,), ()


def _rnn_backward(b: BackwardArgs):
    a, w, rb = b.forward, _given(b.forward), _operand(b.forward)
    H, I = a.sizes["H"], a.sizes["I"]
    h_init = np.zeros((a.B, H), a.dtype) if a.states[0] is None else a.states[0]
    dx = np.zeros((a.T, a.B, I), a.dtype)
    dw = {
        name: np.zeros((H, I) if name == "weight_ih" else (H, H), a.dtype)
        for name in ("weight_ih", "weight_hh")
    }
    dbias = np.zeros(H, a.dtype)
    # dh: gradient of the loss w.r.t. the state carried out of step t.
    dh = _zeros_or_copy(b.dstates[0], a.B, H, a.dtype)
    for t in range(a.T - 1, -1, -1):
        valid = _valid_rows(a.lengths, t, a.B)
        # A row valid at t was valid at t - 1 too, so its previous state is
        # out[t - 1] (or the initial state). Padded rows are masked below.
        h_prev = b.out[t - 1] if t > 0 else h_init
        if b.dout is not None:
            dh = dh + np.where(valid, b.dout[t], 0)
        # Gradient w.r.t. the pre-activation; zero on padded steps (bf16:
        # rounded, as it enters products).
        da = rb(np.where(valid, dh * activation_grad(a.options["nonlinearity"], b.out[t]), 0))
        dx[t] = da @ w["weight_ih"]
        # Padded inputs are never read, so NaN or inf there (0 * inf = NaN)
        # cannot leak into the weight gradient.
        dw["weight_ih"] += da.T @ rb(np.where(valid, a.x[t], 0))
        dw["weight_hh"] += da.T @ rb(h_prev)
        dbias += da.sum(axis=0)
        # Valid rows pass the gradient through W_hh; padded rows held their
        # state, so their gradient passes through unchanged.
        dh = np.where(valid, da @ w["weight_hh"], dh)
    # Both biases enter the pre-activation the same way: equal gradients.
    return _grads(b, dx, (dh,), {**dw, "bias_ih": dbias, "bias_hh": dbias})


def _lstm_forward(a: ForwardArgs):
    """Gates [i f g o]: i, f, o = sigmoid(.), g = tanh(.) of
    x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh; c_t = f c_{t-1} + i g;
    h_t = o tanh(c_t)."""
    w, H, rb = _given(a), a.sizes["H"], _operand(a)
    out = np.zeros((a.T, a.B, H), a.dtype)
    gates = np.zeros((a.T, a.B, 4 * H), a.dtype)
    cells_ = np.zeros((a.T, a.B, H), a.dtype)
    h = _zeros_or_copy(a.states[0], a.B, H, a.dtype)
    c = _zeros_or_copy(a.states[1], a.B, H, a.dtype)
    for t in range(a.T):
        valid = _valid_rows(a.lengths, t, a.B)
        x_t = np.where(valid, a.x[t], 0)  # padding is never read
        pre = _plus_bias(
            _plus_bias(rb(x_t) @ w["weight_ih"].T + rb(h) @ w["weight_hh"].T, w.get("bias_ih")),
            w.get("bias_hh"),
        )
        i, f = _sigmoid(pre[:, :H]), _sigmoid(pre[:, H : 2 * H])
        g, o = np.tanh(pre[:, 2 * H : 3 * H]), _sigmoid(pre[:, 3 * H :])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        gates[t] = np.where(valid, np.concatenate([i, f, g, o], axis=1), 0)
        cells_[t] = np.where(valid, c_new, 0)
        out[t] = np.where(valid, h_new, 0)
        h = np.where(valid, h_new, h)
        c = np.where(valid, c_new, c)
    return out, (h, c), (gates, cells_)


def _lstm_backward(b: BackwardArgs):
    a, w, rb = b.forward, _given(b.forward), _operand(b.forward)
    H = a.sizes["H"]
    gates, cells_ = b.saved
    dh = _zeros_or_copy(b.dstates[0], a.B, H, a.dtype)
    dc = _zeros_or_copy(b.dstates[1], a.B, H, a.dtype)
    dx = np.zeros((a.T, a.B, a.sizes["I"]), a.dtype)
    dw_ih, dw_hh = np.zeros_like(w["weight_ih"]), np.zeros_like(w["weight_hh"])
    db = np.zeros(4 * H, a.dtype)
    h0 = np.zeros((a.B, H), a.dtype) if a.states[0] is None else a.states[0]
    c0 = np.zeros((a.B, H), a.dtype) if a.states[1] is None else a.states[1]
    for t in reversed(range(a.T)):
        valid = _valid_rows(a.lengths, t, a.B)
        i, f, g, o = np.split(gates[t], 4, axis=1)
        tanh_c = np.tanh(cells_[t])
        c_prev = cells_[t - 1] if t > 0 else c0
        h_prev = b.out[t - 1] if t > 0 else h0
        dh_t = dh if b.dout is None else dh + np.where(valid, b.dout[t], 0)
        dc_t = dc + dh_t * o * (1 - tanh_c**2)
        d_gates = np.concatenate(
            [
                dc_t * g * i * (1 - i),
                dc_t * c_prev * f * (1 - f),
                dc_t * i * (1 - g**2),
                dh_t * tanh_c * o * (1 - o),
            ],
            axis=1,
        )
        d_gates = rb(np.where(valid, d_gates, 0))
        dw_ih += d_gates.T @ rb(np.where(valid, a.x[t], 0))
        dw_hh += d_gates.T @ rb(h_prev)
        db += d_gates.sum(axis=0)
        dx[t] = d_gates @ w["weight_ih"]
        dh = np.where(valid, d_gates @ w["weight_hh"], dh)
        dc = np.where(valid, dc_t * f, dc)
    return _grads(
        b, dx, (dh, dc), {"weight_ih": dw_ih, "weight_hh": dw_hh, "bias_ih": db, "bias_hh": db}
    )


def _gru_forward(a: ForwardArgs):
    """Gates [r z n]: r, z = sigmoid(x W_i. + b_i. + h W_h. + b_h.);
    n = tanh(x W_in + b_in + r (h W_hn + b_hn)); h_t = (1 - z) n + z h_{t-1}."""
    w, H, rb = _given(a), a.sizes["H"], _operand(a)
    out = np.zeros((a.T, a.B, H), a.dtype)
    gates = np.zeros((a.T, a.B, 3 * H), a.dtype)
    hn_seq = np.zeros((a.T, a.B, H), a.dtype)
    h = _zeros_or_copy(a.states[0], a.B, H, a.dtype)
    for t in range(a.T):
        valid = _valid_rows(a.lengths, t, a.B)
        gi = _plus_bias(rb(np.where(valid, a.x[t], 0)) @ w["weight_ih"].T, w.get("bias_ih"))
        gh = _plus_bias(rb(h) @ w["weight_hh"].T, w.get("bias_hh"))
        r = _sigmoid(gi[:, :H] + gh[:, :H])
        z = _sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
        hn = gh[:, 2 * H :]
        n = np.tanh(gi[:, 2 * H :] + r * hn)
        h_new = (1 - z) * n + z * h
        gates[t] = np.where(valid, np.concatenate([r, z, n], axis=1), 0)
        hn_seq[t] = np.where(valid, hn, 0)
        out[t] = np.where(valid, h_new, 0)
        h = np.where(valid, h_new, h)
    return out, (h,), (gates, hn_seq)


def _gru_backward(b: BackwardArgs):
    """The bias gradients differ in their n part (b_hn sits inside r * (.))."""
    a, w, rb = b.forward, _given(b.forward), _operand(b.forward)
    H = a.sizes["H"]
    gates, hn = b.saved
    dh = _zeros_or_copy(b.dstates[0], a.B, H, a.dtype)
    dx = np.zeros((a.T, a.B, a.sizes["I"]), a.dtype)
    dw_ih, dw_hh = np.zeros_like(w["weight_ih"]), np.zeros_like(w["weight_hh"])
    db_ih, db_hh = np.zeros(3 * H, a.dtype), np.zeros(3 * H, a.dtype)
    h0 = np.zeros((a.B, H), a.dtype) if a.states[0] is None else a.states[0]
    for t in reversed(range(a.T)):
        valid = _valid_rows(a.lengths, t, a.B)
        r, z, n = np.split(gates[t], 3, axis=1)
        h_prev = b.out[t - 1] if t > 0 else h0
        dh_t = dh if b.dout is None else dh + np.where(valid, b.dout[t], 0)
        da_n = dh_t * (1 - z) * (1 - n**2)
        da_r = da_n * hn[t] * r * (1 - r)
        da_z = dh_t * (h_prev - n) * z * (1 - z)
        d_in = rb(np.where(valid, np.concatenate([da_r, da_z, da_n], axis=1), 0))
        d_rec = rb(np.where(valid, np.concatenate([da_r, da_z, da_n * r], axis=1), 0))
        dw_ih += d_in.T @ rb(np.where(valid, a.x[t], 0))
        db_ih += d_in.sum(axis=0)
        dx[t] = d_in @ w["weight_ih"]
        dw_hh += d_rec.T @ rb(h_prev)
        db_hh += d_rec.sum(axis=0)
        dh = np.where(valid, dh_t * z + d_rec @ w["weight_hh"], dh)
    return _grads(
        b, dx, (dh,), {"weight_ih": dw_ih, "weight_hh": dw_hh, "bias_ih": db_ih, "bias_hh": db_hh}
    )


def _gru_reset_before_forward(a: ForwardArgs):
    """Gates [r z n] as the GRU's, but r applies to h_{t-1} before its product:
    n = tanh(x W_in + b_in + (r h_{t-1}) W_hn + b_hn); saves rh = r h_{t-1}."""
    w, H = _given(a), a.sizes["H"]
    out = np.zeros((a.T, a.B, H), a.dtype)
    gates = np.zeros((a.T, a.B, 3 * H), a.dtype)
    rh_seq = np.zeros((a.T, a.B, H), a.dtype)
    w_hh = w["weight_hh"]
    b_hh = w.get("bias_hh")
    h = _zeros_or_copy(a.states[0], a.B, H, a.dtype)
    for t in range(a.T):
        valid = _valid_rows(a.lengths, t, a.B)
        gi = _plus_bias(np.where(valid, a.x[t], 0) @ w["weight_ih"].T, w.get("bias_ih"))
        gh = _plus_bias(h @ w_hh[: 2 * H].T, None if b_hh is None else b_hh[: 2 * H])
        r = _sigmoid(gi[:, :H] + gh[:, :H])
        z = _sigmoid(gi[:, H : 2 * H] + gh[:, H:])
        rh = r * h
        n = np.tanh(
            gi[:, 2 * H :]
            + _plus_bias(rh @ w_hh[2 * H :].T, None if b_hh is None else b_hh[2 * H :])
        )
        h_new = (1 - z) * n + z * h
        gates[t] = np.where(valid, np.concatenate([r, z, n], axis=1), 0)
        rh_seq[t] = np.where(valid, rh, 0)
        out[t] = np.where(valid, h_new, 0)
        h = np.where(valid, h_new, h)
    return out, (h,), (gates, rh_seq)


def _gru_reset_before_backward(b: BackwardArgs):
    """dL/d(rh) = da_n W_hn reaches h_{t-1} through rh = r h_{t-1} twice: via r
    (da_r) and directly (times r); W_hn's gradient is da_n^T rh."""
    a, w = b.forward, _given(b.forward)
    H = a.sizes["H"]
    gates, rh = b.saved
    w_hh = w["weight_hh"]
    dh = _zeros_or_copy(b.dstates[0], a.B, H, a.dtype)
    dx = np.zeros((a.T, a.B, a.sizes["I"]), a.dtype)
    dw_ih, dw_hh = np.zeros_like(w["weight_ih"]), np.zeros_like(w_hh)
    db = np.zeros(3 * H, a.dtype)
    h0 = np.zeros((a.B, H), a.dtype) if a.states[0] is None else a.states[0]
    for t in reversed(range(a.T)):
        valid = _valid_rows(a.lengths, t, a.B)
        r, z, n = np.split(gates[t], 3, axis=1)
        h_prev = b.out[t - 1] if t > 0 else h0
        dh_t = dh if b.dout is None else dh + np.where(valid, b.dout[t], 0)
        da_n = np.where(valid, dh_t * (1 - z) * (1 - n**2), 0)
        d_rh = da_n @ w_hh[2 * H :]
        da_r = d_rh * h_prev * r * (1 - r)
        da_z = dh_t * (h_prev - n) * z * (1 - z)
        d_rz = np.where(valid, np.concatenate([da_r, da_z], axis=1), 0)
        d_all = np.concatenate([d_rz, da_n], axis=1)
        dw_ih += d_all.T @ np.where(valid, a.x[t], 0)
        db += d_all.sum(axis=0)
        dx[t] = d_all @ w["weight_ih"]
        dw_hh[: 2 * H] += d_rz.T @ h_prev
        dw_hh[2 * H :] += da_n.T @ rh[t]
        dh = np.where(valid, dh_t * z + d_rh * r + d_rz @ w_hh[: 2 * H], dh)
    return _grads(
        b, dx, (dh,), {"weight_ih": dw_ih, "weight_hh": dw_hh, "bias_ih": db, "bias_hh": db.copy()}
    )


def _jordan_forward(a: ForwardArgs):
    """The previous *output* y_{t-1}, not h_{t-1}, is fed back:
    h_t = f(x_t W_ih^T + b_ih + y_{t-1} W_hy^T + b_hh); y_t = g(h_t W_ho^T + b_ho)."""
    w, H, O = _given(a), a.sizes["H"], a.sizes["O"]
    f = ACTIVATIONS[a.options["nonlinearity"]]
    g = ACTIVATIONS[a.options["output_nonlinearity"]]
    y = _zeros_or_copy(a.states[0], a.B, O, a.dtype)
    hidden = np.zeros((a.T, a.B, H), a.dtype)
    out = np.zeros((a.T, a.B, O), a.dtype)
    for t in range(a.T):
        valid = _valid_rows(a.lengths, t, a.B)
        pre = _plus_bias(
            np.where(valid, a.x[t], 0) @ w["weight_ih"].T + y @ w["weight_hy"].T, w.get("bias_ih")
        )
        h = f(_plus_bias(pre, w.get("bias_hh")))
        y_new = g(_plus_bias(h @ w["weight_ho"].T, w.get("bias_ho")))
        hidden[t] = np.where(valid, h, 0)
        out[t] = np.where(valid, y_new, 0)
        y = np.where(valid, y_new, y)
    return out, (y,), (hidden,)


def _jordan_backward(b: BackwardArgs):
    a, w = b.forward, _given(b.forward)
    H, O = a.sizes["H"], a.sizes["O"]
    (hidden,) = b.saved
    carry = _zeros_or_copy(b.dstates[0], a.B, O, a.dtype)  # dL/dy_t from later steps
    y_init = np.zeros((a.B, O), a.dtype) if a.states[0] is None else a.states[0]
    dx = np.zeros((a.T, a.B, a.sizes["I"]), a.dtype)
    dw = {name: np.zeros_like(w[name]) for name in ("weight_ih", "weight_hy", "weight_ho")}
    db, db_ho = np.zeros(H, a.dtype), np.zeros(O, a.dtype)
    for t in range(a.T - 1, -1, -1):
        valid = _valid_rows(a.lengths, t, a.B)
        # y_{t-1} for the rows valid at t (they were valid at t - 1 too).
        y_prev = y_init if t == 0 else b.out[t - 1]
        gy = carry if b.dout is None else carry + b.dout[t]
        dz = np.where(valid, gy, 0) * activation_grad(a.options["output_nonlinearity"], b.out[t])
        dw["weight_ho"] += dz.T @ hidden[t]
        db_ho += dz.sum(axis=0)
        da = (dz @ w["weight_ho"]) * activation_grad(a.options["nonlinearity"], hidden[t])
        dw["weight_ih"] += da.T @ np.where(valid, a.x[t], 0)
        dw["weight_hy"] += da.T @ y_prev
        db += da.sum(axis=0)
        dx[t] = da @ w["weight_ih"]
        carry = np.where(valid, da @ w["weight_hy"], carry)
    return _grads(b, dx, (carry,), {**dw, "bias_ih": db, "bias_hh": db, "bias_ho": db_ho})


KERNELS: Dict[str, Tuple[Callable[[ForwardArgs], Any], Callable[[BackwardArgs], Any]]] = {
    "rnn": (_rnn_forward, _rnn_backward),
    "lstm": (_lstm_forward, _lstm_backward),
    "gru": (_gru_forward, _gru_backward),
    "jordan": (_jordan_forward, _jordan_backward),
    "gru_reset_before": (_gru_reset_before_forward, _gru_reset_before_backward),
}


# --------------------------------------------------------------------------
# Public API: any cell, then each cell's named entry points
# --------------------------------------------------------------------------


def forward(
    cell: Any,
    x: Any,
    states: Optional[Sequence[Any]],
    weights: Mapping[str, Any],
    *,
    lengths: Optional[Any] = None,
    **options: str,
) -> Tuple[np.ndarray, Tuple[np.ndarray, ...], Any]:
    """Run one layer of any registered cell over a time-major batch.

    Parameters
    ----------
    cell : str or crnn.cells.CellSpec
        A name of `crnn.cells.REGISTRY` (`crnn.cells.names()`: "rnn", "lstm", ...
    x : ndarray, shape (T, B, I)
        Inputs, time-major; float32 or float64, the dtype of the whole call.
    states : sequence or None
        One initial state per entry of the cell's ``states`` (e.g. ``(h0,
        c0)`` for the LSTM), each (B, width) or None for zeros; None for all
        zeros.
    weights : mapping of str to ndarray
        The cell's weights by name (``spec.weights``); a bias may be missing
        or None.
    lengths : array_like of B ints in [0, T], or None
        Valid length of each batch row, in any order. For t >= lengths[b]
        the outputs of row b are zero and its states are held; None means
        every row has length T.
    **options : str
        The cell's options (``spec.options``), e.g. ``nonlinearity="relu"``.

    Returns
    -------
    out : ndarray, shape (T, B, width)
    states_n : tuple of ndarray
        The states after each row's last valid step, new arrays.
    cache
        The cell's cache type (``spec.cache_type``) for `backward`.

    Raises
    ------
    TypeError, ValueError
        On a wrong cell, dtype, shape, option or length.
    """
    spec = cells.get(cell)
    a = forward_args(spec, x, states, weights, lengths, options)
    out, states_n, saved = KERNELS[spec.name][0](_one_hot_inputs(a))
    return out, states_n, make_cache(a, out, saved)


def _one_hot_inputs(a: ForwardArgs) -> ForwardArgs:
    """`a` with token ids (T, B) replaced by the one-hot vectors they stand for."""
    if a.x.ndim == 3:
        return a
    return a._replace(x=np.eye(a.sizes["I"], dtype=a.dtype)[a.x])


def backward(dout: Optional[Any], dstates: Optional[Sequence[Any]], cache: Any) -> Any:
    """Backpropagation through time for `forward` (any cell).

    Parameters
    ----------
    dout : ndarray shaped like ``out``, or None (zero)
        Entries at padded steps are ignored.
    dstates : sequence or None
        One gradient per final state (or None for zero); None for all zero.
    cache
        The cache returned by either engine's forward.

    Returns
    -------
    The cell's gradient tuple (``spec.grads_type``): ``dx``, the gradients
    of the initial states (also when they were None), then of each weight
    (None for a bias the forward did not have).
    """
    return _backward(cells.of_cache(cache), dout, dstates, cache)


def _backward(spec: CellSpec, dout: Any, dstates: Any, cache: Any) -> Any:
    b = backward_args(spec, dout, dstates, cache)
    grads = KERNELS[spec.name][1](b._replace(forward=_one_hot_inputs(b.forward)))
    # Token ids have no gradient.
    return grads if b.forward.x.ndim == 3 else grads._replace(dx=None)


# The cells' named entry points (rnn_forward, rnn_backward, lstm_forward, ...:
# one pair per registered cell), the same functions over the C engine in
# crnn.functional: identical signatures and semantics by construction.
NAMED = entry_points(forward, _backward, __name__)
globals().update(NAMED)
__all__ += list(NAMED)

if TYPE_CHECKING:  # the named entry points, for type checkers

    def __getattr__(name: str) -> Callable[..., Any]: ...


# --------------------------------------------------------------------------
# Prepared weights: a step at a time
# --------------------------------------------------------------------------


class Prepared:
    """`prepare`'s result in the NumPy engine: nothing is packed; each step
    reads the weights as they are then and runs `forward` over one step,
    layer by layer."""

    def __init__(
        self,
        spec: CellSpec,
        source: Callable[[], Any],
        options: Mapping[str, Any],
        stacked: bool,
        names: StepNames,
    ) -> None:
        first = prepare_args(spec, source(), options, stacked)
        self._spec, self._source, self._options, self._first = spec, source, options, first
        self.stacked = stacked
        self.num_layers = len(first.sizes)
        self.num_states = len(spec.states)
        self.input_size = first.sizes[0]["I"]
        self.widths = first.widths
        self._shape = StepShape(
            first.dtype,
            self.input_size,
            first.widths,
            self.num_layers if stacked else None,
            names,
        )

    def refresh(self) -> None:
        """Nothing to pack: every step reads the weights afresh."""

    def step(self, x: Any, states: Any = None, out: Any = None) -> Tuple[np.ndarray, ...]:
        """One step; arguments and results as `crnn.functional.prepare`'s."""
        x, states, out = step_args(self._shape, x, states, out)
        a = prepare_args(self._spec, self._source(), self._options, self.stacked)
        if a.sizes != self._first.sizes or a.dtype != self._first.dtype:
            raise ValueError(
                "the weights changed shape or dtype since they were prepared; prepare them again"
            )
        unbatched = x.ndim == 1
        inp = x[None] if unbatched else x  # (B, I)

        def one_layer(s: Optional[np.ndarray], layer: int) -> Optional[np.ndarray]:
            if s is not None and self.stacked:
                s = s[layer]
            return None if s is None else (s[None] if unbatched else s)

        results: List[List[np.ndarray]] = []
        for layer, w in enumerate(a.weights):
            st = None if states is None else [one_layer(s, layer) for s in states]
            _, finals, _ = forward(self._spec, inp[None], st, w, **a.options)
            results.append([f[0] if unbatched else f for f in finals])
            inp = finals[0]
        if out is None:
            lead = (self.num_layers,) if self.stacked else ()
            out = tuple(np.empty(lead + r.shape, x.dtype) for r in results[0])
        for layer, new_states in enumerate(results):
            for k, f in enumerate(new_states):
                (out[k][layer] if self.stacked else out[k])[...] = f
        return tuple(out)


def prepare(cell: Any, weights: Any, **options: str) -> Prepared:
    """Weights for many `step` calls, as `crnn.functional.prepare` (the NumPy
    engine's: nothing to pack, so every step reads the weights afresh)."""
    spec = cells.get(cell)
    return _prepare_from(
        spec,
        lambda: weights,
        options,
        not isinstance(weights, Mapping),
        step_names(spec, layer=False),
    )


def _prepare_from(
    spec: CellSpec,
    source: Callable[[], Any],
    options: Mapping[str, Any],
    stacked: bool,
    names: StepNames,
) -> Prepared:
    return Prepared(spec, source, options, stacked, names)


def linear_loss(
    x: Any, weight: Any, bias: Any, targets: Any, loss: str = "cross_entropy"
) -> Tuple[float, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """An output head ``z = x W^T + b`` and its mean loss, with the gradients.

    The NumPy form of `crnn.functional.linear_loss`, which it is tested
    against; for N rows of C outputs::

        cross_entropy:  loss = mean_r -log softmax(z_r)[t_r],  dz = (softmax(z) - onehot(t)) / N
        mse:            loss = mean (z - y)^2,                 dz = 2 (z - y) / (N C)
        dx = dz W,  dW = dz^T x,  db = sum_r dz_r
    """
    a = linear_loss_args(x, weight, bias, targets, loss)
    z = a.x @ a.weight.T
    if a.bias is not None:
        z += a.bias
    N, C = z.shape
    if a.loss == "cross_entropy":
        rows = np.arange(N)
        shifted = z - z.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        sum_e = e.sum(axis=1, keepdims=True)
        per_row = np.log(sum_e)[:, 0] - shifted[rows, a.targets]
        dz = e / sum_e
        dz[rows, a.targets] -= 1
        count = N
    else:
        diff = z - a.targets
        per_row = diff * diff
        dz = 2 * diff
        count = N * C
    value = float(per_row.sum(dtype=np.float64)) / count if count else 0.0
    dz *= dz.dtype.type(1.0 / count) if count else 0
    dbias = None if a.bias is None else dz.sum(axis=0)
    return value, (dz @ a.weight).reshape(a.x_shape), dz.T @ a.x, dbias


def parameters_changed() -> None:
    """As `crnn.functional.parameters_changed` (nothing is packed here)."""


# --------------------------------------------------------------------------
# Gradient clipping
# --------------------------------------------------------------------------


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
