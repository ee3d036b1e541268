"""Optimizers that update a dict of NumPy parameters in place.

Each optimizer holds a mapping ``name -> ndarray`` of parameters (a layer's
``.params`` dict, or several layers' dicts merged into one) and, on
``step(grads)``, updates every array in place from a mapping of gradients
with the same keys::

    opt = crnn.optim.Adam(layer.params, lr=1e-3, clip_grad_norm=5.0)
    for batch in data:
        loss, grads = ...              # dict with the keys of layer.params
        opt.step(grads)                # clips grads in place, then updates

The update formulas are exactly those of ``torch.optim`` (single-tensor
implementation; SGD, Adagrad, RMSprop, Adam, AdamW), so a run matches
PyTorch step by step up to rounding. The arithmetic stays in each
parameter's dtype (float32 or float64); hyper-parameters are Python floats.

Clipping
--------
With ``clip_grad_value`` and/or ``clip_grad_norm`` set, the gradients are
clipped IN PLACE before the update (value clipping first, then norm
clipping), by ``clip_grad_value`` / ``clip_grad_norm`` of the chosen backend:
``backend="c"`` uses the C engine (`crnn.functional`), ``backend="numpy"``
the NumPy specification (`crnn.reference`). The norm is taken over all
gradients together, as ``torch.nn.utils.clip_grad_norm_`` does; ``step``
then returns that total norm (before clipping), else None.

The update: with ``backend="c"`` and arrays of one dtype, C-contiguous and
native (a model's parameters and gradients are), the clipping and the
update of every parameter are one C call (``crnn_optimizer_step``: the
norm, then one pass that scales each gradient and updates its parameter
and buffers), bitwise the results of the NumPy code below, which runs
otherwise (and with ``backend="numpy"``).

Non-finite gradients
--------------------
NaN and Inf are not filtered: they propagate into the optimizer's buffers
and the parameters, element by element (a non-finite gradient element makes
that parameter element non-finite, the others are updated normally). With
norm clipping, as in PyTorch, a NaN total norm makes every gradient (so every
parameter) NaN, and an infinite one -- also from finite float64 gradients
whose sum of squares overflows -- scales the finite gradients to 0 and turns
the infinite ones into NaN. Value clipping maps +-Inf to +-clip_grad_value
and keeps NaN. Check the returned norm, or the loss, if that
matters.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _core, functional as _functional, reference as _reference
from ._validate import _float_dtype_of, _real_number, check_norm_type

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "RMSProp", "Adam", "AdamW"]

BACKENDS = {"c": _functional, "numpy": _reference}

State = Dict[str, Optional[np.ndarray]]


# --------------------------------------------------------------------------
# Hyper-parameter checks (errors name the argument)
# --------------------------------------------------------------------------


def _nonneg(name: str, value: Any) -> float:
    v = _real_number(name, value)
    if not v >= 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def _unit(name: str, value: Any, *, closed: bool = True) -> float:
    """A real in [0, 1] (or [0, 1) when not `closed`)."""
    v = _real_number(name, value)
    if not (0.0 <= v <= 1.0 if closed else 0.0 <= v < 1.0):
        raise ValueError(f"{name} must lie in [0, 1{']' if closed else ')'}, got {value!r}")
    return v


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


# crnn_optimizer's fields that an optimizer does not set.
_C_DEFAULTS: Dict[str, Any] = dict(
    weight_decay=0.0,
    eps=0.0,
    momentum=0.0,
    dampening=0.0,
    nesterov=False,
    beta1=0.0,
    beta2=0.0,
    amsgrad=False,
    decoupled=False,
    lr_decay=0.0,
    alpha=0.0,
    centered=False,
    first_step=False,
)
_C_DTYPES = {np.dtype(name): code for name, code in _core.DTYPES.items()}


def _one_call_ready(ps: List[np.ndarray], gs: List[np.ndarray], clipping: bool) -> bool:
    """The arrays are as the C update takes them: one dtype, C-contiguous,
    native, and the gradients writeable when they are clipped in place."""
    if not ps:
        return False
    dtype = ps[0].dtype
    return all(
        a.dtype == dtype and a.dtype.isnative and a.flags.c_contiguous for a in (*ps, *gs)
    ) and (not clipping or all(g.flags.writeable for g in gs))


def _lerp_(a: np.ndarray, end: np.ndarray, weight: float) -> None:
    """a <- a + weight * (end - a) in place, rounded as torch.lerp_ does."""
    if abs(weight) < 0.5:
        a += weight * (end - a)
    else:
        d = end - a
        d *= 1.0 - weight
        np.subtract(end, d, out=a)


# --------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------


class Optimizer:
    """Base class: parameter bookkeeping, gradient checks, clipping, state.

    Parameters
    ----------
    params : Mapping[str, ndarray]
        The parameters, float32 or float64 writeable ndarrays, updated in
        place. The mapping itself is kept and each array is looked up in it
        at every step, so an array may be replaced by another of the same
        shape and dtype; the set of names is fixed at construction. No two
        parameters may share memory.
    clip_grad_norm : float, optional
        If set (>= 0), the gradients are scaled in place so that their total
        `norm_type`-norm is at most this before each update; `step` returns
        the total norm before clipping. Requires all parameters to share one
        dtype.
    clip_grad_value : float, optional
        If set (>= 0), every gradient element is clamped in place to
        [-clip_grad_value, clip_grad_value] before each update (and before
        norm clipping).
    norm_type : float or "inf"
        The p of the norm used by `clip_grad_norm`.
    backend : {"c", "numpy"}
        The engine that clips and updates: the C engine (one call for the
        whole step) or the NumPy reference.

    Attributes
    ----------
    lr : float
        The learning rate; may be set between steps (schedules).
    num_steps : int
        The number of steps taken since construction or `zero_state`.
    """

    def __init__(
        self,
        params: Mapping,
        *,
        clip_grad_norm: Optional[float] = None,
        clip_grad_value: Optional[float] = None,
        norm_type: Any = 2.0,
        backend: str = "c",
    ) -> None:
        if not isinstance(params, Mapping):
            raise TypeError(
                f"params must be a mapping of name -> ndarray, got {type(params).__name__}"
            )
        if len(params) == 0:
            raise ValueError("params is empty: the optimizer has nothing to update")
        specs: Dict[Any, Tuple[Tuple[int, ...], np.dtype]] = {}
        for name, p in params.items():
            self._check_param(name, p)
            specs[name] = (p.shape, np.dtype(p.dtype.newbyteorder("=")))
        arrays = list(params.items())
        for i, (name_a, a) in enumerate(arrays):
            for name_b, b in arrays[i + 1 :]:
                if np.may_share_memory(a, b):
                    raise ValueError(
                        f"params {name_a!r} and {name_b!r} share memory; each parameter "
                        "must be its own array (it would be updated twice)"
                    )
        self.clip_grad_norm = (
            None if clip_grad_norm is None else _nonneg("clip_grad_norm", clip_grad_norm)
        )
        self.clip_grad_value = (
            None if clip_grad_value is None else _nonneg("clip_grad_value", clip_grad_value)
        )
        self.norm_type = check_norm_type(norm_type)
        if not isinstance(backend, str) or backend not in BACKENDS:
            raise ValueError(f"backend must be one of {tuple(BACKENDS)}, got {backend!r}")
        if self.clip_grad_norm is not None or self.clip_grad_value is not None:
            dtypes = {dt for _, dt in specs.values()}
            if len(dtypes) > 1:
                raise TypeError(
                    "gradient clipping needs all parameters to share one dtype, got "
                    f"{sorted(str(d) for d in dtypes)}"
                )
        self.backend = backend
        self._params = params
        self._specs = specs
        self._lr = 0.0
        self.num_steps = 0
        self._state: Dict[Any, State] = {}

    @property
    def _engine(self) -> Any:
        """The module that clips (looked up, not stored: an optimizer pickles)."""
        return BACKENDS[self.backend]

    def _init_base(self, params: Mapping, lr: float, **clipping: Any) -> None:
        """A subclass's last constructor step, once the hyper-parameters that
        `_init_state` reads are set: the base set-up, then `lr` and fresh state."""
        Optimizer.__init__(self, params, **clipping)
        self.lr = lr
        self.zero_state()

    # -- parameters and learning rate -------------------------------------

    @staticmethod
    def _check_param(name: Any, p: Any) -> None:
        if not isinstance(p, np.ndarray):
            raise TypeError(
                f"params[{name!r}] must be a numpy.ndarray (it is updated in place), "
                f"got {type(p).__name__}"
            )
        _float_dtype_of(f"params[{name!r}]", p)
        if not p.flags.writeable:
            raise ValueError(f"params[{name!r}] is read-only; the optimizer updates it in place")

    @property
    def params(self) -> Mapping:
        """The mapping of parameters this optimizer updates."""
        return self._params

    @property
    def lr(self) -> float:
        """The learning rate (>= 0); settable between steps."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _nonneg("lr", value)

    # -- state -------------------------------------------------------------

    def _init_state(self, shape: Tuple[int, ...], dtype: np.dtype) -> State:
        """Fresh buffers for one parameter (overridden by each optimizer)."""
        return {}

    def zero_state(self) -> None:
        """Forget all buffers (momentum, running averages) and the step count.

        The optimizer then behaves as if newly constructed; `lr` is kept.
        """
        self.num_steps = 0
        self._state = {
            name: self._init_state(shape, dtype) for name, (shape, dtype) in self._specs.items()
        }

    def state_dict(self) -> Dict[str, Any]:
        """A snapshot of the optimizer's state (copies, safe to keep or pickle).

        Returns
        -------
        dict
            ``{"optimizer": class name, "num_steps": int, "lr": float,
            "state": {param name: {buffer name: ndarray or None}}}``.
        """
        return {
            "optimizer": type(self).__name__,
            "num_steps": self.num_steps,
            "lr": self.lr,
            "state": {
                name: {k: None if v is None else v.copy() for k, v in st.items()}
                for name, st in self._state.items()
            },
        }

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restore a `state_dict` of the same optimizer class over the same parameters.

        Everything is checked before anything is changed; the arrays are
        copied. Buffer arrays must have their parameter's shape and dtype.
        Restores the step count, the buffers and `lr`.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        for key in ("optimizer", "num_steps", "lr", "state"):
            if key not in state_dict:
                raise ValueError(f"state_dict has no {key!r} entry")
        if state_dict["optimizer"] != type(self).__name__:
            raise ValueError(
                f"state_dict is from a {state_dict['optimizer']!r} optimizer, "
                f"not {type(self).__name__!r}"
            )
        steps = state_dict["num_steps"]
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
            raise ValueError(f"state_dict['num_steps'] must be an integer >= 0, got {steps!r}")
        lr = _nonneg("state_dict['lr']", state_dict["lr"])
        states = state_dict["state"]
        if not isinstance(states, Mapping) or set(states) != set(self._specs):
            got = (
                sorted(map(repr, states)) if isinstance(states, Mapping) else type(states).__name__
            )
            raise ValueError(
                f"state_dict['state'] must have one entry per parameter "
                f"{sorted(map(repr, self._specs))}, got {got}"
            )
        new: Dict[Any, State] = {}
        for name, (shape, dtype) in self._specs.items():
            st = states[name]
            template = self._init_state(shape, dtype)
            if not isinstance(st, Mapping) or set(st) != set(template):
                raise ValueError(
                    f"state_dict['state'][{name!r}] must have the buffers "
                    f"{sorted(template)}, got {st!r:.200}"
                )
            new[name] = {}
            for k in template:
                v = st[k]
                where = f"state_dict['state'][{name!r}][{k!r}]"
                if v is None:
                    if template[k] is not None:
                        raise ValueError(f"{where} must be an array, got None")
                    new[name][k] = None
                    continue
                if not isinstance(v, np.ndarray):
                    raise TypeError(f"{where} must be an ndarray or None, got {type(v).__name__}")
                if v.shape != shape:
                    raise ValueError(
                        f"{where} must have the parameter's shape {shape}, got {v.shape}"
                    )
                if _float_dtype_of(where, v) != dtype:
                    raise TypeError(
                        f"{where} must have the parameter's dtype {dtype}, got {v.dtype}"
                    )
                new[name][k] = np.array(v, dtype=dtype, order="C", copy=True)
        self._state = new
        self.num_steps = int(steps)
        self._lr = lr

    # -- the step ----------------------------------------------------------

    def _checked(self, grads: Any) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """(params, grads) as lists in parameter order, after every check."""
        if not isinstance(grads, Mapping):
            raise TypeError(
                f"grads must be a mapping of name -> ndarray, got {type(grads).__name__}"
            )
        extra = [k for k in grads if k not in self._specs]
        if extra:
            raise ValueError(f"grads has entries for unknown parameters {sorted(map(repr, extra))}")
        clipping = self.clip_grad_norm is not None or self.clip_grad_value is not None
        ps: List[np.ndarray] = []
        gs: List[np.ndarray] = []
        for name, (shape, dtype) in self._specs.items():
            if name not in self._params:
                raise KeyError(f"parameter {name!r} is no longer in params")
            p = self._params[name]
            self._check_param(name, p)
            if p.shape != shape or _float_dtype_of(f"params[{name!r}]", p) != dtype:
                raise ValueError(
                    f"params[{name!r}] changed from shape {shape}, dtype {dtype} to "
                    f"shape {p.shape}, dtype {p.dtype}; make a new optimizer"
                )
            if name not in grads:
                raise KeyError(f"grads has no entry for parameter {name!r}")
            g = grads[name]
            where = f"grads[{name!r}]"
            gdtype = _float_dtype_of(where, g)
            if gdtype != dtype:
                raise TypeError(
                    f"{where} has dtype {gdtype} but params[{name!r}] has dtype {dtype}"
                )
            if clipping and not isinstance(g, np.ndarray):
                raise TypeError(
                    f"{where} must be a numpy.ndarray when clipping (it is clipped in "
                    f"place), got {type(g).__name__}"
                )
            g = np.asarray(g)
            if g.shape != shape:
                raise ValueError(
                    f"{where} must have the shape of params[{name!r}] {shape}, got {g.shape}"
                )
            if clipping and not g.flags.writeable:
                raise ValueError(f"{where} is read-only; clipping modifies the gradients in place")
            ps.append(p)
            gs.append(g)
        return ps, gs

    def step(self, grads: Mapping) -> Optional[float]:
        """Clip the gradients (if configured), then update every parameter in place.

        Parameters
        ----------
        grads : Mapping[str, ndarray]
            One gradient per parameter (same keys, shapes and dtypes). Not
            modified, except by the configured clipping, which works in place.

        Returns
        -------
        float or None
            The total gradient norm before clipping when `clip_grad_norm` is
            set, else None.

        Raises
        ------
        KeyError
            If a parameter has no gradient.
        TypeError, ValueError
            On an unknown key, or a gradient of the wrong dtype or shape
            (checked before anything is modified).
        """
        ps, gs = self._checked(grads)
        if self.backend == "c" and _one_call_ready(ps, gs, self._clipping):
            total = self._step_in_c(ps, gs)
        else:
            if self.clip_grad_value is not None:
                self._engine.clip_grad_value(gs, self.clip_grad_value)
            total = None
            if self.clip_grad_norm is not None:
                total = self._engine.clip_grad_norm(gs, self.clip_grad_norm, self.norm_type)
            self.num_steps += 1
            for name, p, g in zip(self._specs, ps, gs):
                self._update(p, g, self._state[name])
        _functional.parameters_changed()  # prepared weights pack the new values
        return total

    @property
    def _clipping(self) -> bool:
        return self.clip_grad_norm is not None or self.clip_grad_value is not None

    def _step_in_c(self, ps: List[np.ndarray], gs: List[np.ndarray]) -> Optional[float]:
        """`step`'s clipping and update as one C call (crnn_optimizer_step):
        the same arithmetic as `_update`, bitwise."""
        self.num_steps += 1
        hyper = dict(
            _C_DEFAULTS,
            **self._c_hyper(),
            step=self.num_steps,
            clip_value=-1.0 if self.clip_grad_value is None else self.clip_grad_value,
            max_norm=-1.0 if self.clip_grad_norm is None else self.clip_grad_norm,
            norm_type=self.norm_type,
        )
        states = [self._state[name] for name in self._specs]
        if hyper["kind"] == "sgd" and hyper["momentum"] != 0.0:
            hyper["first_step"] = states[0]["momentum_buffer"] is None
            for st, p in zip(states, ps):
                if st["momentum_buffer"] is None:
                    st["momentum_buffer"] = np.empty_like(p)
        buffers = [
            None if name is None or name not in states[0] else [st[name] for st in states]
            for name in self._c_buffers
        ]
        total = _core.optimizer_step(hyper, _C_DTYPES[ps[0].dtype], ps, gs, buffers)
        return None if self.clip_grad_norm is None else float(total)

    # The C update's hyper-parameters (crnn_optimizer's fields) and the names
    # of the state buffers it reads, in its order (set by each optimizer).
    _c_buffers: Tuple[Optional[str], ...] = ()

    def _c_hyper(self) -> Dict[str, Any]:
        raise NotImplementedError

    def _update(self, p: np.ndarray, g: np.ndarray, st: State) -> None:
        raise NotImplementedError

    def _hyper_repr(self) -> str:
        return f"lr={self.lr}"

    def __repr__(self) -> str:
        extra = ""
        if self.clip_grad_norm is not None:
            extra += f", clip_grad_norm={self.clip_grad_norm}, norm_type={self.norm_type}"
        if self.clip_grad_value is not None:
            extra += f", clip_grad_value={self.clip_grad_value}"
        return (
            f"{type(self).__name__}({len(self._specs)} params, {self._hyper_repr()}{extra}, "
            f"backend={self.backend!r})"
        )


# --------------------------------------------------------------------------
# The optimizers
# --------------------------------------------------------------------------


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (torch.optim.SGD).

    With g = grad + weight_decay * p and b the momentum buffer::

        b = g                                 (first step)
        b = momentum * b + (1 - dampening) * g  (later steps)
        d = g + momentum * b if nesterov else b     (d = g when momentum == 0)
        p = p - lr * d

    Parameters
    ----------
    params : Mapping[str, ndarray]
    lr : float >= 0
    momentum : float >= 0
    dampening : float in [0, 1]
    nesterov : bool
        Requires momentum > 0 and dampening == 0.
    weight_decay : float >= 0
        L2 penalty added to the gradient.
    clip_grad_norm, clip_grad_value, norm_type, backend
        Gradient clipping before each step, and the engine that does it;
        see `Optimizer`.
    """

    def __init__(
        self,
        params: Mapping,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        *,
        clip_grad_norm: Optional[float] = None,
        clip_grad_value: Optional[float] = None,
        norm_type: Any = 2.0,
        backend: str = "c",
    ) -> None:
        lr = _nonneg("lr", lr)
        self.momentum = _nonneg("momentum", momentum)
        self.dampening = _unit("dampening", dampening)
        self.nesterov = _flag("nesterov", nesterov)
        self.weight_decay = _nonneg("weight_decay", weight_decay)
        if self.nesterov and (self.momentum <= 0.0 or self.dampening != 0.0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening == 0")
        self._init_base(
            params,
            lr,
            clip_grad_norm=clip_grad_norm,
            clip_grad_value=clip_grad_value,
            norm_type=norm_type,
            backend=backend,
        )

    def _init_state(self, shape, dtype) -> State:
        # Like PyTorch, the buffer starts as the first (decayed) gradient.
        return {"momentum_buffer": None} if self.momentum != 0.0 else {}

    _c_buffers = ("momentum_buffer",)

    def _c_hyper(self) -> Dict[str, Any]:
        return dict(
            kind="sgd",
            lr=self.lr,
            momentum=self.momentum,
            dampening=self.dampening,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
        )

    def _update(self, p, g, st):
        if self.weight_decay != 0.0:
            g = g + self.weight_decay * p
        if self.momentum != 0.0:
            buf = st["momentum_buffer"]
            if buf is None:
                buf = st["momentum_buffer"] = np.array(g, dtype=p.dtype, order="C", copy=True)
            else:
                buf *= self.momentum
                buf += (1.0 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p += -self.lr * g

    def _hyper_repr(self):
        return (
            f"lr={self.lr}, momentum={self.momentum}, dampening={self.dampening}, "
            f"nesterov={self.nesterov}, weight_decay={self.weight_decay}"
        )


class Adagrad(Optimizer):
    """Adagrad (torch.optim.Adagrad).

    With g = grad + weight_decay * p, t the step number (1, 2, ...) and s the
    sum of squares (starting at `initial_accumulator_value`)::

        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (sqrt(s) + eps)

    Parameters
    ----------
    params : Mapping[str, ndarray]
    lr : float >= 0
    lr_decay : float >= 0
    weight_decay : float >= 0
    initial_accumulator_value : float >= 0
    eps : float >= 0
    clip_grad_norm, clip_grad_value, norm_type, backend
        Gradient clipping before each step, and the engine that does it;
        see `Optimizer`.
    """

    def __init__(
        self,
        params: Mapping,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        clip_grad_norm: Optional[float] = None,
        clip_grad_value: Optional[float] = None,
        norm_type: Any = 2.0,
        backend: str = "c",
    ) -> None:
        lr = _nonneg("lr", lr)
        self.lr_decay = _nonneg("lr_decay", lr_decay)
        self.weight_decay = _nonneg("weight_decay", weight_decay)
        self.initial_accumulator_value = _nonneg(
            "initial_accumulator_value", initial_accumulator_value
        )
        self.eps = _nonneg("eps", eps)
        self._init_base(
            params,
            lr,
            clip_grad_norm=clip_grad_norm,
            clip_grad_value=clip_grad_value,
            norm_type=norm_type,
            backend=backend,
        )

    def _init_state(self, shape, dtype) -> State:
        return {"sum": np.full(shape, self.initial_accumulator_value, dtype=dtype)}

    _c_buffers = ("sum",)

    def _c_hyper(self) -> Dict[str, Any]:
        return dict(
            kind="adagrad",
            lr=self.lr,
            lr_decay=self.lr_decay,
            weight_decay=self.weight_decay,
            eps=self.eps,
        )

    def _update(self, p, g, st):
        if self.weight_decay != 0.0:
            g = g + self.weight_decay * p
        clr = self.lr / (1.0 + (self.num_steps - 1) * self.lr_decay)
        s = st["sum"]
        s += g * g
        std = np.sqrt(s)
        std += self.eps
        p += -clr * g / std

    def _hyper_repr(self):
        return (
            f"lr={self.lr}, lr_decay={self.lr_decay}, weight_decay={self.weight_decay}, "
            f"initial_accumulator_value={self.initial_accumulator_value}, eps={self.eps}"
        )


class RMSprop(Optimizer):
    """RMSprop (torch.optim.RMSprop), optionally centered and with momentum.

    With g = grad + weight_decay * p, and buffers v, m (centered), b
    (momentum), all starting at zero::

        v = alpha * v + (1 - alpha) * g * g
        m = lerp(m, g, 1 - alpha)                       (centered only)
        avg = sqrt(v - m * m) if centered else sqrt(v);  avg = avg + eps
        b = momentum * b + g / avg;  p = p - lr * b      (momentum > 0)
        p = p - lr * g / avg                             (momentum == 0)

    Parameters
    ----------
    params : Mapping[str, ndarray]
    lr : float >= 0
    alpha : float in [0, 1]
        Smoothing constant of the running average of squared gradients.
    eps : float >= 0
    weight_decay : float >= 0
    momentum : float >= 0
    centered : bool
        Normalise by an estimate of the gradient's variance instead.
    clip_grad_norm, clip_grad_value, norm_type, backend
        Gradient clipping before each step, and the engine that does it;
        see `Optimizer`.
    """

    def __init__(
        self,
        params: Mapping,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        clip_grad_norm: Optional[float] = None,
        clip_grad_value: Optional[float] = None,
        norm_type: Any = 2.0,
        backend: str = "c",
    ) -> None:
        lr = _nonneg("lr", lr)
        self.alpha = _unit("alpha", alpha)
        self.eps = _nonneg("eps", eps)
        self.weight_decay = _nonneg("weight_decay", weight_decay)
        self.momentum = _nonneg("momentum", momentum)
        self.centered = _flag("centered", centered)
        self._init_base(
            params,
            lr,
            clip_grad_norm=clip_grad_norm,
            clip_grad_value=clip_grad_value,
            norm_type=norm_type,
            backend=backend,
        )

    def _init_state(self, shape, dtype) -> State:
        st: State = {"square_avg": np.zeros(shape, dtype)}
        if self.centered:
            st["grad_avg"] = np.zeros(shape, dtype)
        if self.momentum > 0.0:
            st["momentum_buffer"] = np.zeros(shape, dtype)
        return st

    _c_buffers = ("square_avg", "grad_avg", "momentum_buffer")

    def _c_hyper(self) -> Dict[str, Any]:
        return dict(
            kind="rmsprop",
            lr=self.lr,
            alpha=self.alpha,
            eps=self.eps,
            weight_decay=self.weight_decay,
            momentum=self.momentum,
            centered=self.centered,
        )

    def _update(self, p, g, st):
        if self.weight_decay != 0.0:
            g = g + self.weight_decay * p
        v = st["square_avg"]
        v *= self.alpha
        v += (1.0 - self.alpha) * g * g
        if self.centered:
            m = st["grad_avg"]
            _lerp_(m, g, 1.0 - self.alpha)
            avg = v - m * m
            with np.errstate(invalid="ignore"):  # rounding can make it -0-ish: NaN, as in torch
                np.sqrt(avg, out=avg)
        else:
            avg = np.sqrt(v)
        avg += self.eps
        if self.momentum > 0.0:
            b = st["momentum_buffer"]
            b *= self.momentum
            b += g / avg
            p += -self.lr * b
        else:
            p += -self.lr * g / avg

    def _hyper_repr(self):
        return (
            f"lr={self.lr}, alpha={self.alpha}, eps={self.eps}, weight_decay={self.weight_decay}, "
            f"momentum={self.momentum}, centered={self.centered}"
        )


RMSProp = RMSprop


def _betas(betas: Any) -> Tuple[float, float]:
    if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    return (_unit("betas[0]", betas[0], closed=False), _unit("betas[1]", betas[1], closed=False))


class Adam(Optimizer):
    """Adam (torch.optim.Adam), optionally AMSGrad.

    With g = grad + weight_decay * p (L2 penalty), t the step number and m, v
    (and vmax for amsgrad) starting at zero::

        m = lerp(m, g, 1 - beta1)
        v = beta2 * v + (1 - beta2) * g * g
        vmax = max(vmax, v)                                   (amsgrad)
        denom = sqrt(vmax or v) / sqrt(1 - beta2 ** t) + eps
        p = p - (lr / (1 - beta1 ** t)) * m / denom

    Parameters
    ----------
    params : Mapping[str, ndarray]
    lr : float >= 0
    betas : (float, float), each in [0, 1)
    eps : float >= 0
    weight_decay : float >= 0
        L2 penalty added to the gradient (see `AdamW` for the decoupled form).
    amsgrad : bool
    clip_grad_norm, clip_grad_value, norm_type, backend
        Gradient clipping before each step, and the engine that does it;
        see `Optimizer`.
    """

    _decoupled = False

    def __init__(
        self,
        params: Mapping,
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        clip_grad_norm: Optional[float] = None,
        clip_grad_value: Optional[float] = None,
        norm_type: Any = 2.0,
        backend: str = "c",
    ) -> None:
        lr = _nonneg("lr", lr)
        self.betas = _betas(betas)
        self.eps = _nonneg("eps", eps)
        self.weight_decay = _nonneg("weight_decay", weight_decay)
        self.amsgrad = _flag("amsgrad", amsgrad)
        self._init_base(
            params,
            lr,
            clip_grad_norm=clip_grad_norm,
            clip_grad_value=clip_grad_value,
            norm_type=norm_type,
            backend=backend,
        )

    def _init_state(self, shape, dtype) -> State:
        st: State = {"exp_avg": np.zeros(shape, dtype), "exp_avg_sq": np.zeros(shape, dtype)}
        if self.amsgrad:
            st["max_exp_avg_sq"] = np.zeros(shape, dtype)
        return st

    _c_buffers = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def _c_hyper(self) -> Dict[str, Any]:
        return dict(
            kind="adam",
            lr=self.lr,
            beta1=self.betas[0],
            beta2=self.betas[1],
            eps=self.eps,
            weight_decay=self.weight_decay,
            amsgrad=self.amsgrad,
            decoupled=self._decoupled,
        )

    def _update(self, p, g, st):
        beta1, beta2 = self.betas
        if self.weight_decay != 0.0:
            if self._decoupled:
                p *= 1.0 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        m, v = st["exp_avg"], st["exp_avg_sq"]
        _lerp_(m, g, 1.0 - beta1)
        v *= beta2
        v += (1.0 - beta2) * g * g
        t = self.num_steps
        step_size = self.lr / (1.0 - beta1**t)
        bias_correction2_sqrt = (1.0 - beta2**t) ** 0.5
        if self.amsgrad:
            vmax = st["max_exp_avg_sq"]
            np.maximum(vmax, v, out=vmax)
            denom = np.sqrt(vmax)
        else:
            denom = np.sqrt(v)
        denom /= bias_correction2_sqrt
        denom += self.eps
        p += -step_size * m / denom

    def _hyper_repr(self):
        return (
            f"lr={self.lr}, betas={self.betas}, eps={self.eps}, weight_decay={self.weight_decay}, "
            f"amsgrad={self.amsgrad}"
        )


class AdamW(Adam):
    """AdamW (torch.optim.AdamW): Adam with decoupled weight decay.

    Before the Adam update (which then sees the plain gradient)::

        p = p * (1 - lr * weight_decay)

    Parameters
    ----------
    params : Mapping[str, ndarray]
    lr : float >= 0
    betas : (float, float), each in [0, 1)
    eps : float >= 0
    weight_decay : float >= 0 (default 1e-2, as in PyTorch)
    amsgrad : bool
    clip_grad_norm, clip_grad_value, norm_type, backend
        Gradient clipping before each step, and the engine that does it;
        see `Optimizer`.
    """

    _decoupled = True

    def __init__(
        self,
        params: Mapping,
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        clip_grad_norm: Optional[float] = None,
        clip_grad_value: Optional[float] = None,
        norm_type: Any = 2.0,
        backend: str = "c",
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            clip_grad_norm=clip_grad_norm,
            clip_grad_value=clip_grad_value,
            norm_type=norm_type,
            backend=backend,
        )
