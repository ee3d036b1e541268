"""`Module`, the base class of crnn's layers and models (floor 3).

A module holds its parameters in a plain dict, ``params``, under PyTorch's
names, and their gradients in a second dict, ``grads``, with the same keys,
shapes and dtypes. ``backward`` *accumulates* into ``grads`` (``+=``, in
place); ``zero_grad`` sets them back to zero in place. Every update of
parameters or gradients is in place, so the arrays a module hands out stay
its arrays for its whole life: an optimizer may keep references to them, and
a model may share its children's arrays (see `Module.add_module`).

Modules are not thread-safe: a layer keeps the cache of its last forward
call for ``backward``, so use one object per thread.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np

from ._engine import check_backend, engine
from ._validate import as_array
from .functional import parameters_changed

__all__ = ["Module", "ParameterDict", "LoadResult", "float_dtype", "input_array", "check_int"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class LoadResult(NamedTuple):
    """What `Module.load_state_dict` found besides the matching keys."""

    missing_keys: List[str]
    unexpected_keys: List[str]


# --------------------------------------------------------------------------
# Small argument checks shared by the layers
# --------------------------------------------------------------------------


def float_dtype(dtype: Any) -> np.dtype:
    """`dtype` as np.dtype('float32') or np.dtype('float64'), else TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in _FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def check_int(name: str, value: Any, minimum: int = 0) -> int:
    """`value` as a Python int >= minimum (bool rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def config_sizes(*values: Any) -> Optional[List[int]]:
    """The values as a list when every one is an int >= 0 (bool is not), else None.

    For ``parameter_count``: a config whose sizes are not all of that kind
    counts as unknown (the constructor then says what is wrong).
    """
    sizes = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
    return sizes if len(sizes) == len(values) else None


def input_array(name: str, value: Any, dtype: np.dtype) -> np.ndarray:
    """`value` as an ndarray of exactly the layer's float dtype (no cast).

    Integer, boolean, object and other-precision float inputs raise a
    TypeError naming the argument; the array is returned as is (a view of
    the caller's data when it already is an ndarray).
    """
    if value is None:
        raise TypeError(f"{name} must be a {dtype} array, got None")
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a {dtype} array, got {type(value).__name__}")
    arr = as_array(name, value)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be a {dtype} array, got dtype {arr.dtype}")
    if arr.dtype.newbyteorder("=") != dtype:
        raise TypeError(
            f"{name} has dtype {arr.dtype} but this layer computes in {dtype}; layers never "
            f"cast silently: convert with .astype(np.{dtype}) or build the layer with dtype={arr.dtype.name}"
        )
    return arr


def _as_numpy(name: str, value: Any) -> np.ndarray:
    """np.asarray(value); also accepts tensors that need .detach().cpu() first."""
    try:
        return np.asarray(value)
    except Exception:  # noqa: BLE001 - e.g. a torch tensor that requires grad
        if hasattr(value, "detach"):
            return np.asarray(value.detach().cpu())
        raise TypeError(
            f"state_dict[{name!r}] cannot be converted to a NumPy array ({type(value).__name__})"
        ) from None


# --------------------------------------------------------------------------
# Module
# --------------------------------------------------------------------------


class ParameterDict(dict):
    """A module's ``params``: a plain dict that tells crnn when an entry is
    added, replaced or removed, so that prepared weights (the layers'
    ``step``) are packed again from the arrays it then holds."""

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        parameters_changed()

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        parameters_changed()

    def __ior__(self, other: Any) -> "ParameterDict":  # type: ignore[misc]
        self.update(other)
        return self

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        parameters_changed()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        parameters_changed()
        return value

    def pop(self, *args: Any) -> Any:
        value = super().pop(*args)
        parameters_changed()
        return value

    def popitem(self) -> Tuple[Any, Any]:
        item = super().popitem()
        parameters_changed()
        return item

    def clear(self) -> None:
        super().clear()
        parameters_changed()


class Module:
    """Base class of crnn layers and models.

    Attributes
    ----------
    params : dict[str, ndarray]
        The parameters under PyTorch's names (``weight_ih_l0``, ...).
    grads : dict[str, ndarray]
        Their gradients: same keys, shapes and dtypes, zero after
        construction and `zero_grad`, accumulated by ``backward``.
    training : bool
        True (the default, as in PyTorch) in training mode; see `train`.
    backend : {"c", "numpy"}
        The engine running the computation; see `set_backend`.

    Notes
    -----
    Subclasses call ``super().__init__(backend=...)`` first, create their
    parameters with `register_parameter` (or `add_module` for child
    modules), and define ``forward``, ``backward`` and ``config``.
    Assigning a Module to an attribute registers it as a child, as in
    PyTorch: its parameters appear in this module's ``params`` and
    ``grads`` as ``"<attribute>.<name>"`` (the same arrays, not copies), and
    `train`, `eval` and `set_backend` reach it.

    Prepared weights: a recurrent layer's ``step`` packs its weights once and
    reuses them. Every change crnn makes to parameters (optimizer steps,
    `load_state_dict`, ``crnn.load``, assigning an entry of ``params``,
    `register_parameter`, a new child) marks them out of date, so the next
    step packs them again. After modifying parameter arrays in place
    yourself (``layer.params["weight_hh_l0"][...] = w``), call
    `parameters_changed` before the next step.
    """

    _modules: Dict[str, "Module"]  # the children, by name (set in __init__)
    # The packed weights of a layer's ``step`` and the backend they are for
    # (set on first use; derived data, never pickled).
    _step_prepared: Any = None
    _step_backend: Optional[str] = None

    def __init__(self, *, backend: str = "c") -> None:
        object.__setattr__(self, "_modules", {})
        self.params: Dict[str, np.ndarray] = ParameterDict()
        self.grads: Dict[str, np.ndarray] = {}
        self.training: bool = True
        self.backend: str = check_backend(backend)

    # -- children and parameters -------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Module) and not name.startswith("_"):
            if "_modules" not in self.__dict__:
                raise AttributeError("call Module.__init__() before assigning child modules")
            self.add_module(name, value)
        object.__setattr__(self, name, value)

    def add_module(self, name: str, module: "Module") -> None:
        """Register `module` as a child called `name`.

        Its parameters and gradients enter this module's ``params`` and
        ``grads`` as ``"name.<key>"``, sharing the child's arrays.
        """
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(
                f"a child module name must be a non-empty string without '.', got {name!r}"
            )
        if not isinstance(module, Module):
            raise TypeError(f"module must be a crnn Module, got {type(module).__name__}")
        old = self._modules.get(name)
        if old is not None:
            for key in old.params:
                self.params.pop(f"{name}.{key}", None)
                self.grads.pop(f"{name}.{key}", None)
        self._modules[name] = module
        for key, value in module.params.items():
            self.params[f"{name}.{key}"] = value
            self.grads[f"{name}.{key}"] = module.grads[key]

    def children(self) -> Iterator[Tuple[str, "Module"]]:
        """(name, module) for each registered child, in registration order."""
        return iter(list(self._modules.items()))

    def register_parameter(self, name: str, value: np.ndarray) -> np.ndarray:
        """Add parameter `name` (the array itself) and a zero gradient for it."""
        if not isinstance(name, str) or not name or name.startswith("__"):
            raise ValueError(
                f"a parameter name must be a non-empty string not starting with '__', got {name!r}"
            )
        if not isinstance(value, np.ndarray):
            raise TypeError(f"parameter {name!r} must be an ndarray, got {type(value).__name__}")
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)
        return value

    def parameters(self) -> Dict[str, np.ndarray]:
        """The parameter dict itself (``self.params``), not a copy."""
        return self.params

    def named_parameters(self, prefix: str = "") -> Iterator[Tuple[str, np.ndarray]]:
        """(name, array) pairs; names are ``prefix + "." + name`` when a prefix is given."""
        lead = f"{prefix}." if prefix else ""
        return iter([(lead + name, value) for name, value in self.params.items()])

    def num_parameters(self) -> int:
        """The number of scalar parameters."""
        return int(sum(p.size for p in self.params.values()))

    def parameters_changed(self) -> None:
        """Say that parameter arrays were modified in place outside crnn.

        Prepared weights (``step``) of every layer are packed again before
        their next step; crnn's own changes (optimizers, `load_state_dict`,
        ...) do this by themselves.
        """
        parameters_changed()

    def zero_grad(self) -> None:
        """Set every gradient to zero, in place."""
        for g in self.grads.values():
            g.fill(0)

    # -- modes and engine ----------------------------------------------------

    def train(self, mode: bool = True) -> "Module":
        """Set training mode (dropout active) or evaluation mode; returns self."""
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"mode must be a bool, got {type(mode).__name__}")
        self.training = bool(mode)
        for _, child in self.children():
            child.train(mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode (same as ``train(False)``); returns self."""
        return self.train(False)

    def set_backend(self, name: str) -> "Module":
        """Run on engine `name` ("c" or "numpy") from now on; returns self."""
        self.backend = check_backend(name)
        for _, child in self.children():
            child.set_backend(name)
        return self

    @property
    def engine(self):
        """The functional module of the current backend (see `crnn._engine`)."""
        return engine(self.backend)

    # -- state ---------------------------------------------------------------

    def state_dict(self) -> Dict[str, np.ndarray]:
        """A new dict of copies of the parameters, in ``params`` order."""
        return {name: value.copy() for name, value in self.params.items()}

    def load_state_dict(self, state_dict: Mapping, strict: bool = True) -> LoadResult:
        """Copy parameters from `state_dict` into this module's arrays, in place.

        Parameters
        ----------
        state_dict : mapping of str to array_like
            NumPy arrays or anything ``np.asarray`` accepts (CPU torch tensors
            included). Values are cast to the module's dtype.
        strict : bool
            If True, missing and unexpected keys are errors; if False they
            are skipped (and reported in the result). Shape mismatches are
            always errors.

        Returns
        -------
        LoadResult
            ``(missing_keys, unexpected_keys)``.

        Raises
        ------
        ValueError
            Listing every missing, unexpected and shape-mismatched key.
            Nothing is modified when an error is raised.
        TypeError
            If `state_dict` is not a mapping or a value is not numeric.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"state_dict must be a mapping of names to arrays, got {type(state_dict).__name__}"
            )
        missing = [k for k in self.params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self.params]
        mismatched = []
        values = {}
        for name, target in self.params.items():
            if name not in state_dict:
                continue
            arr = _as_numpy(name, state_dict[name])
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"state_dict[{name!r}] must be numeric, got dtype {arr.dtype}")
            if arr.shape != target.shape:
                mismatched.append(f"{name}: expected shape {target.shape}, got {arr.shape}")
            values[name] = arr
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append(
                "unexpected keys: "
                + ", ".join(repr(k) if not isinstance(k, str) else k for k in unexpected)
            )
        if mismatched:
            problems.append("shape mismatches: " + "; ".join(mismatched))
        if problems:
            raise ValueError(
                f"cannot load state_dict into {type(self).__name__}: " + " | ".join(problems)
            )
        for name, arr in values.items():
            self.params[name][...] = arr
        parameters_changed()
        return LoadResult([str(k) for k in missing], [str(k) for k in unexpected])

    def config(self) -> Dict[str, Any]:
        """The constructor arguments, as a JSON-serialisable dict.

        ``type(self)(**self.config())`` builds a module of the same
        architecture; `crnn.save` / `crnn.load` rely on it.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define config()")

    # -- computation ---------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Compute the module's output (``module(...)`` calls it); defined by
        each subclass, which keeps what its ``backward`` needs."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def backward(self, *args: Any, **kwargs: Any) -> Any:
        """Backpropagate through the last ``forward``: add the parameter
        gradients to ``grads`` and return the gradients of the inputs;
        defined by each subclass."""
        raise NotImplementedError(f"{type(self).__name__} does not define backward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_step_prepared", None)  # packed weights: packed again on demand
        state.pop("_step_backend", None)
        return state

    def __repr__(self) -> str:
        try:
            cfg = self.config()
        except NotImplementedError:
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in cfg.items()) + ")"
