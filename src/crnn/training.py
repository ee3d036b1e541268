"""Training helpers: truncated BPTT, gradient checking, many-to-one gathering.

Everything here is written once against crnn's layers and their protocol
(``model(x, h0) -> (pred, h_n)``, ``model.backward(dpred)``, ``.grads``,
``.zero_grad()``), never against an engine: the ``backend`` switch of the
layers picks C or NumPy underneath. This module imports nothing from crnn, so
it sits above the layers without pulling them in.

Contents
--------
TBPTT
    A stateful truncated-backpropagation-through-time driver: windows of ``k``
    steps over a long sequence, the hidden state carried from one window to
    the next as a constant (no gradient crosses a window boundary), one
    optimizer step per window, reset on demand (all rows or some).
gradcheck, GradcheckReport
    A central-difference gradient checker in float64 for any scalar loss
    built from crnn parts.
last_valid, last_valid_backward
    Gather each row's output at its last valid step (many-to-one) and the
    matching scatter of the gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["TBPTT", "GradcheckReport", "gradcheck", "last_valid", "last_valid_backward"]


# --------------------------------------------------------------------------
# Many-to-one: gather each row's last valid output.
# --------------------------------------------------------------------------


def _row_lengths(lengths: Optional[Any], T: int, B: int) -> np.ndarray:
    if lengths is None:
        return np.full(B, T, dtype=np.int64)
    arr = np.asarray(lengths)
    if arr.ndim != 1 or arr.shape[0] != B:
        raise ValueError(f"lengths must have shape ({B},), got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.asarray(arr, dtype=np.float64) == np.round(arr)):
            raise TypeError("lengths must be integers")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() > T):
        raise ValueError(f"lengths must lie in [0, {T}], got min {arr.min()} max {arr.max()}")
    return arr


def last_valid(out: np.ndarray, lengths: Optional[Any] = None) -> np.ndarray:
    """Each row's output at its last valid time step (many-to-one pooling).

    Parameters
    ----------
    out : ndarray, shape (T, B, H)
        Time-major outputs of a recurrent layer.
    lengths : array_like of B ints in [0, T], or None
        Valid length of each row; None means every row has length T.

    Returns
    -------
    ndarray, shape (B, H)
        ``out[lengths[b] - 1, b]`` for each row b; zeros for a row of length
        0 (it has no valid output). A new array, never a view of ``out``.

    Raises
    ------
    ValueError, TypeError
        If ``out`` is not 3-D or ``lengths`` does not fit it.
    """
    out = np.asarray(out)
    if out.ndim != 3:
        raise ValueError(f"out must be (T, B, H), got shape {out.shape}")
    T, B, H = out.shape
    lens = _row_lengths(lengths, T, B)
    res = np.zeros((B, H), dtype=out.dtype)
    rows = np.nonzero(lens > 0)[0]
    res[rows] = out[lens[rows] - 1, rows]
    return res


def last_valid_backward(d: np.ndarray, lengths: Optional[Any], T: int) -> np.ndarray:
    """Scatter the gradient of `last_valid` back to a (T, B, H) array.

    Parameters
    ----------
    d : ndarray, shape (B, H)
        Gradient of the loss w.r.t. ``last_valid(out, lengths)``.
    lengths : array_like of B ints in [0, T], or None
        The lengths given to `last_valid`.
    T : int
        Number of time steps of ``out``.

    Returns
    -------
    ndarray, shape (T, B, H)
        Zero everywhere except at ``[lengths[b] - 1, b]``, which holds
        ``d[b]``. Rows of length 0 receive no gradient.
    """
    d = np.asarray(d)
    if d.ndim != 2:
        raise ValueError(f"d must be (B, H), got shape {d.shape}")
    B, H = d.shape
    T = int(T)
    lens = _row_lengths(lengths, T, B)
    dout = np.zeros((T, B, H), dtype=d.dtype)
    rows = np.nonzero(lens > 0)[0]
    dout[lens[rows] - 1, rows] = d[rows]
    return dout


# --------------------------------------------------------------------------
# Gradient checking by central differences.
# --------------------------------------------------------------------------


@dataclass
class GradcheckReport:
    """The result of `gradcheck`.

    Attributes
    ----------
    ok : bool
        True when every checked entry satisfied
        ``|analytic - numeric| <= atol + rtol * |numeric|``.
    max_abs_error : dict of str to float
        Largest ``|analytic - numeric|`` per parameter.
    max_rel_error : dict of str to float
        Largest ``|analytic - numeric| / max(|numeric|, |analytic|)`` per
        parameter (0 where both are 0).
    n_checked : dict of str to int
        Number of entries compared per parameter.
    failures : list of tuple
        ``(name, index, analytic, numeric)`` for each entry outside the
        tolerance (at most 20 per parameter are kept).
    eps, rtol, atol : float
        The settings used.
    """

    ok: bool
    max_abs_error: Dict[str, float]
    max_rel_error: Dict[str, float]
    n_checked: Dict[str, int]
    failures: List[Tuple[str, Tuple[int, ...], float, float]] = field(default_factory=list)
    eps: float = 1e-6
    rtol: float = 1e-5
    atol: float = 1e-8

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        lines = [
            f"gradcheck {'passed' if self.ok else 'FAILED'} "
            f"(eps={self.eps:g}, rtol={self.rtol:g}, atol={self.atol:g})"
        ]
        for name in self.n_checked:
            lines.append(
                f"  {name}: {self.n_checked[name]} entries, "
                f"max abs err {self.max_abs_error[name]:.3e}, "
                f"max rel err {self.max_rel_error[name]:.3e}"
            )
        for name, idx, a, n in self.failures[:20]:
            lines.append(f"  mismatch {name}{list(idx)}: analytic {a:.10g} numeric {n:.10g}")
        return "\n".join(lines)


def gradcheck(
    f: Callable[[], float],
    params: Mapping[str, np.ndarray],
    grads: Mapping[str, np.ndarray],
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    max_checks_per_param: Optional[int] = None,
    rng: Optional[Union[int, np.random.Generator]] = None,
) -> GradcheckReport:
    """Compare analytic gradients with central differences, in float64.

    For each checked entry ``p[i]`` of each parameter, the numeric gradient
    is ``(f(p[i] + eps) - f(p[i] - eps)) / (2 eps)``, obtained by perturbing
    the array *in place*, calling ``f()`` and restoring the entry exactly.

    Parameters
    ----------
    f : callable
        ``f() -> float``: the scalar loss, computed from the *current* values
        of the arrays in ``params`` (for example a closure running a model's
        forward pass and a loss). It must be deterministic (no dropout in
        training mode, no fresh random numbers).
    params : mapping of str to ndarray
        The float64 arrays to check, perturbed in place (e.g. ``model.params``
        or ``{"x": x}`` for an input).
    grads : mapping of str to ndarray
        The analytic gradients, one per key of ``params`` with the same shape.
        Copied on entry, so ``f`` may freely overwrite the originals.
    eps : float
        The finite-difference step.
    rtol, atol : float
        An entry passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.
    max_checks_per_param : int or None
        Check at most this many entries of each parameter, chosen at random
        without replacement; None checks every entry.
    rng : int, numpy.random.Generator or None
        The source of that random choice (a seed or a generator).

    Returns
    -------
    GradcheckReport
        Per-parameter maximum errors and the overall verdict ``ok``; the
        report is truthy exactly when ``ok``.

    Raises
    ------
    TypeError
        If a parameter or gradient is not float64 (central differences in
        float32 cannot resolve gradients), or ``f`` does not return a real
        scalar.
    KeyError
        If a parameter has no gradient.
    ValueError
        If a gradient's shape differs from its parameter's, a parameter is
        read-only, ``eps <= 0``, or ``f()`` is not finite.
    """
    if not (eps > 0):
        raise ValueError(f"eps must be > 0, got {eps}")
    if max_checks_per_param is not None and max_checks_per_param < 1:
        raise ValueError(f"max_checks_per_param must be >= 1 or None, got {max_checks_per_param}")
    analytic: Dict[str, np.ndarray] = {}
    for name, p in params.items():
        if not isinstance(p, np.ndarray) or p.dtype != np.float64:
            raise TypeError(
                f"gradcheck needs float64 parameters; {name!r} is "
                f"{getattr(p, 'dtype', type(p).__name__)}"
            )
        if not p.flags.writeable:
            raise ValueError(f"parameter {name!r} is read-only")
        if name not in grads:
            raise KeyError(f"no gradient for parameter {name!r}")
        g = grads[name]
        if not isinstance(g, np.ndarray) or g.dtype != np.float64:
            raise TypeError(
                f"gradcheck needs float64 gradients; grads[{name!r}] is "
                f"{getattr(g, 'dtype', type(g).__name__)}"
            )
        if g.shape != p.shape:
            raise ValueError(f"grads[{name!r}] has shape {g.shape}, parameter has {p.shape}")
        analytic[name] = np.array(g, dtype=np.float64, copy=True)

    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def loss() -> float:
        a = np.asarray(f())
        if a.size != 1 or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
            raise TypeError(f"f() must return a real scalar, got {a!r}")
        v = float(a.reshape(()))
        if not math.isfinite(v):
            raise ValueError(f"f() returned a non-finite loss {v}")
        return v

    max_abs: Dict[str, float] = {}
    max_rel: Dict[str, float] = {}
    n_checked: Dict[str, int] = {}
    failures: List[Tuple[str, Tuple[int, ...], float, float]] = []
    ok = True
    for name, p in params.items():
        flat_idx = np.arange(p.size)
        if max_checks_per_param is not None and p.size > max_checks_per_param:
            flat_idx = np.sort(gen.choice(p.size, size=max_checks_per_param, replace=False))
        worst_abs = 0.0
        worst_rel = 0.0
        n_fail = 0
        for fi in flat_idx:
            idx = tuple(int(i) for i in np.unravel_index(int(fi), p.shape))
            orig = p[idx]
            try:
                p[idx] = orig + eps
                f_plus = loss()
                p[idx] = orig - eps
                f_minus = loss()
            finally:
                p[idx] = orig
            numeric = (f_plus - f_minus) / (2.0 * eps)
            a = float(analytic[name][idx])
            err = abs(a - numeric)
            scale = max(abs(a), abs(numeric))
            rel = err / scale if scale > 0 else 0.0
            worst_abs = max(worst_abs, err)
            worst_rel = max(worst_rel, rel)
            if not err <= atol + rtol * abs(numeric):
                ok = False
                if n_fail < 20:
                    failures.append((name, idx, a, numeric))
                n_fail += 1
        max_abs[name] = worst_abs
        max_rel[name] = worst_rel
        n_checked[name] = int(flat_idx.size)
    return GradcheckReport(ok, max_abs, max_rel, n_checked, failures, eps, rtol, atol)


# --------------------------------------------------------------------------
# Truncated backpropagation through time.
# --------------------------------------------------------------------------

# (loss, dpred): the loss a float or a one-element array (as crnn.losses returns it).
LossFn = Callable[..., Tuple[Union[float, np.ndarray], np.ndarray]]


def _is_bidirectional(model: Any) -> bool:
    if getattr(model, "bidirectional", False):
        return True
    for child in ("rnn", "encoder"):
        sub = getattr(model, child, None)
        if sub is not None and getattr(sub, "bidirectional", False):
            return True
    return False


def _state_parts(state: Any) -> List[np.ndarray]:
    """The arrays of a recurrent state: one array, or a tuple of them (an
    LSTM's (h, c)); every array has the batch on its second axis."""
    return list(state) if isinstance(state, (tuple, list)) else [state]


def _copy_state(state: Any) -> Any:
    """A copy of a state in the same form (None stays None)."""
    if state is None:
        return None
    copies = [np.array(part, copy=True) for part in _state_parts(state)]
    return tuple(copies) if isinstance(state, (tuple, list)) else copies[0]


class TBPTT:
    """Stateful truncated backpropagation through time.

    A long sequence is cut into windows of ``k`` steps. Each window is one
    training step: forward from the carried state, loss, backward, one
    optimizer step. The final state of a window becomes the initial state of
    the next as a constant: no gradient flows from one window into the
    previous one (in NumPy terms: the state is copied and the gradient with
    respect to it, ``dh0``, is dropped). The state persists across calls to
    `step` and `run` (a stream may arrive in pieces) until `reset`.

    Parameters
    ----------
    model : object
        A stateful recurrent model following crnn's protocol:
        ``pred, h_n = model(x, h0)`` with ``x`` time-major ``(T, B, ...)``
        (or batch-major if ``model.batch_first``) and ``h0`` ``None`` or a
        state in the form the model returns, an array (``crnn.RNN``,
        ``crnn.GRU``) or a tuple of arrays (``crnn.LSTM``'s ``(h, c)``); ``model.backward(dpred)``, accumulating
        into ``model.grads``; ``model.zero_grad()``. ``crnn.RNN``,
        ``crnn.models.SequenceTagger`` and ``crnn.models.CharRNN`` qualify.
        Bidirectional models are rejected: a reverse pass needs the future,
        which a stream has not seen yet. A model may also have
        ``forward_backward(x, y, h0, loss_fn) -> (loss, h_n)`` (the whole
        pass, e.g. its head and loss fused in one C call), used without a
        mask; returning None falls back to the calls above.
    loss_fn : callable
        ``loss, dpred = loss_fn(pred, target)`` (or with ``mask=``), e.g.
        ``crnn.losses.softmax_cross_entropy`` or ``crnn.losses.mse``.
    optimizer : object or None
        Has ``step(grads)``, e.g. ``crnn.optim.Adam(model.params)``. None runs
        forward and backward only (the gradients stay in ``model.grads``),
        which is how one inspects or checks them.
    k : int
        Window length in time steps (>= 1). The last window of a sequence may
        be shorter.
    stride : int or None
        Steps between the starts of consecutive windows; None means ``k``
        (disjoint windows, the usual case). With ``stride < k`` windows
        overlap; with ``stride > k`` the steps in between are run forward only.
        The state carried to the next window is always the state after
        ``stride`` steps, computed by an extra gradient-free forward pass when
        ``stride != k``.

    Attributes
    ----------
    state : ndarray, tuple of ndarrays, or None
        The carried state (None until the first window, or after `reset`),
        in the form the model returns it: an array such as ``h_n``, shaped
        ``(num_layers, B, H)``, or a tuple such as an LSTM's ``(h_n, c_n)``.

    Examples
    --------
    >>> rnn = crnn.models.SequenceTagger(8, 32, 8)                 # doctest: +SKIP
    >>> opt = crnn.optim.Adam(rnn.params, lr=1e-2)                 # doctest: +SKIP
    >>> tb = TBPTT(rnn, crnn.losses.softmax_cross_entropy, opt, k=25)  # doctest: +SKIP
    >>> losses = tb.run(x, y)   # x (T_total, B, 8), y (T_total, B)  # doctest: +SKIP
    >>> tb.reset(rows=[3])      # row 3 starts a new sequence         # doctest: +SKIP
    """

    def __init__(
        self, model: Any, loss_fn: LossFn, optimizer: Any, k: int, stride: Optional[int] = None
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        if stride is None:
            stride = k
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
            raise ValueError(f"stride must be an int >= 1 or None, got {stride!r}")
        if _is_bidirectional(model):
            raise ValueError(
                "TBPTT needs a unidirectional model: the reverse direction of a "
                "bidirectional RNN cannot carry state forward through a stream"
            )
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.k = int(k)
        self.stride = int(stride)
        self.state: Any = None

    # -- state ------------------------------------------------------------

    @property
    def _time_axis(self) -> int:
        return 1 if getattr(self.model, "batch_first", False) else 0

    def reset(self, rows: Optional[Union[int, Sequence[int], np.ndarray]] = None) -> None:
        """Forget the carried state.

        Parameters
        ----------
        rows : int, sequence of ints, boolean mask or None
            None forgets the whole state (the next window starts from the
            model's default, zeros). Otherwise only these batch rows are set
            to zero, e.g. the rows whose sequence has just ended.
        """
        if rows is None:
            self.state = None
        elif self.state is not None:  # no state yet: every row already starts at zero
            for part in _state_parts(self.state):
                part[:, rows] = 0

    # -- training ---------------------------------------------------------

    def _loss(
        self, pred: np.ndarray, target: np.ndarray, mask: Optional[np.ndarray]
    ) -> Tuple[Union[float, np.ndarray], np.ndarray]:
        if mask is None:
            return self.loss_fn(pred, target)
        return self.loss_fn(pred, target, mask=mask)

    def step(
        self,
        x: np.ndarray,
        y: np.ndarray,
        mask: Optional[np.ndarray] = None,
        *,
        update: bool = True,
    ) -> float:
        """Train on one window, starting from the carried state.

        Runs ``model.zero_grad()``, the forward pass from `state`, the loss,
        the backward pass (with no gradient for the final state and the
        gradient with respect to the initial state discarded) and, when
        ``update`` and an optimizer is set, one optimizer step. Then the
        window's final state becomes the carried `state`.

        Parameters
        ----------
        x : ndarray, shape (T_w, B, ...)
            The window's inputs (batch-major if the model is ``batch_first``).
        y : ndarray
            The window's targets, as ``loss_fn`` expects them for ``pred``.
        mask : ndarray or None
            Passed to ``loss_fn`` as ``mask=`` when given.
        update : bool
            Whether to take an optimizer step.

        Returns
        -------
        float
            The window's loss.
        """
        model = self.model
        h0 = _copy_state(self.state)
        model.zero_grad()
        # A model that fuses its head with this loss (forward_backward) runs
        # the whole pass itself; it returns None for a loss it cannot fuse.
        fused = getattr(model, "forward_backward", None) if mask is None else None
        result = None if fused is None else fused(x, y, h0, self.loss_fn)
        if result is not None:
            loss, h_n = result
        else:
            pred, h_n = model(x, h0)
            loss, dpred = self._loss(pred, y, mask)
            # dh_n is None: the future windows send no gradient back into this
            # one; the returned gradient w.r.t. h0 is dropped: the state is a
            # constant.
            model.backward(dpred)
        if update and self.optimizer is not None:
            self.optimizer.step(model.grads)
        # Detach: a copy, so that resetting rows never touches a model cache.
        self.state = _copy_state(h_n)
        return float(loss)

    def _advance(self, x: np.ndarray, h0: Any) -> Any:
        """The state after running x forward from h0 (no gradient)."""
        _, h_n = self.model(x, h0)
        return _copy_state(h_n)

    def run(
        self,
        x: np.ndarray,
        y: np.ndarray,
        mask: Optional[np.ndarray] = None,
        *,
        update: bool = True,
    ) -> List[float]:
        """Train over a whole (long) sequence, window by window.

        Parameters
        ----------
        x : ndarray, shape (T_total, B, ...)
            Inputs, time-major (or batch-major for a ``batch_first`` model).
        y : ndarray, shape (T_total, B, ...)
            Targets aligned with ``x`` along the time axis.
        mask : ndarray, shape (T_total, B), or None
            Optional loss mask, sliced like ``y``.
        update : bool
            Whether to take an optimizer step after each window.

        Returns
        -------
        list of float
            The loss of each window, in order. The carried `state` is the
            state after the last step of the sequence, ready for a
            continuation (call `reset` to start a new one).
        """
        ax = self._time_axis
        x = np.asarray(x)
        y = np.asarray(y)
        T_total = x.shape[ax]
        if y.shape[ax] != T_total:
            raise ValueError(f"x has {T_total} steps but y has {y.shape[ax]}")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape[ax] != T_total:
                raise ValueError(f"x has {T_total} steps but mask has {mask.shape[ax]}")

        def window(a: np.ndarray, lo: int, hi: int) -> np.ndarray:
            sl = [slice(None)] * a.ndim
            sl[ax] = slice(lo, hi)
            return a[tuple(sl)]

        losses: List[float] = []
        start = 0
        while start < T_total:
            stop = min(start + self.k, T_total)
            nxt = min(start + self.stride, T_total)
            next_state = None
            if nxt != stop:
                # stride != k: the next window starts from the state after
                # `stride` steps, not after this window. Run those steps
                # forward first (same weights as the window, no gradient).
                next_state = self._advance(window(x, start, nxt), _copy_state(self.state))
            losses.append(
                self.step(
                    window(x, start, stop),
                    window(y, start, stop),
                    None if mask is None else window(mask, start, stop),
                    update=update,
                )
            )
            if next_state is not None:
                self.state = next_state
            start = nxt
        return losses
