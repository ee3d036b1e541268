"""Save and load modules: one ``.npz`` file with the config and the weights.

The file holds one array per parameter, under the parameter's name, and a
``__config__`` entry: a JSON string ::

    {"format": "crnn-module", "version": 1, "class": "RNN",
     "config": {...constructor arguments...}, "crnn_version": "..."}

No pickle is written or read (``np.load(..., allow_pickle=False)``), so
loading a file never runs code from it. `load` rebuilds the module as
``cls(**config)`` and loads the weights strictly; the class is looked up in
a registry holding the layers (`RNN`, `LSTM`, `GRU`, `Jordan`, `RNNCell`, `Linear`,
`Embedding`, `Attention`, ...), to which other Module subclasses (models, other
layers) are added with `register_module`.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any, Dict, Optional, Type, Union

import numpy as np

from ._engine import check_backend
from ._version import __version__
from .module import Module
from .nn import (
    GRU,
    LSTM,
    RNN,
    Attention,
    Embedding,
    GRUCell,
    Jordan,
    Linear,
    LSTMCell,
    Recurrent,
    RecurrentCell,
    RNNCell,
)

__all__ = ["save", "load", "register_module", "UnregisteredClassError", "FORMAT", "FORMAT_VERSION"]

FORMAT = "crnn-module"
FORMAT_VERSION = 1
CONFIG_KEY = "__config__"

PathLike = Union[str, "os.PathLike[str]"]

_REGISTRY: Dict[str, Type[Module]] = {}


def register_module(cls: Type[Module], name: Optional[str] = None) -> Type[Module]:
    """Make `cls` loadable by `load`; returns `cls` (usable as a decorator).

    Parameters
    ----------
    cls : subclass of Module
        Its ``config()`` must return JSON-serialisable constructor arguments
        and ``cls(**config)`` must rebuild the same architecture.
    name : str, optional
        The name stored in files; by default ``cls.__name__``.

    Raises
    ------
    TypeError
        If `cls` is not a Module subclass.
    ValueError
        If another class is already registered under the name.
    """
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"register_module expects a Module subclass, got {cls!r}")
    key = cls.__name__ if name is None else name
    if not isinstance(key, str) or not key:
        raise ValueError(f"name must be a non-empty string, got {key!r}")
    if _REGISTRY.get(key, cls) is not cls:
        raise ValueError(f"another class is already registered as {key!r}: {_REGISTRY[key]!r}")
    _REGISTRY[key] = cls
    return cls


for _cls in (
    Recurrent,
    RNN,
    LSTM,
    GRU,
    Jordan,
    RecurrentCell,
    RNNCell,
    LSTMCell,
    GRUCell,
    Linear,
    Embedding,
    Attention,
):
    register_module(_cls)


def _registered_name(model: Module) -> str:
    for key, cls in _REGISTRY.items():
        if type(model) is cls:
            return key
    raise TypeError(
        f"{type(model).__name__} is not registered for saving; call "
        f"crnn.serialization.register_module({type(model).__name__}) first"
    )


def _check_path(path: Any, mode: str) -> None:
    """`path` must be a str / path-like, or a binary file object open for `mode`."""
    if isinstance(path, (str, os.PathLike)) or (mode == "r" and isinstance(path, bytes)):
        return
    method = "write" if mode == "w" else "read"
    if not hasattr(path, method):
        raise TypeError(
            f"path must be a str, an os.PathLike or a binary file object with "
            f".{method}(), got {type(path).__name__}"
        )


def save(model: Module, path: Union[PathLike, Any]) -> None:
    """Write `model`'s config and weights to one ``.npz`` file.

    Parameters
    ----------
    model : Module
        An instance of a registered class (RNN, RNNCell, Linear, or any
        class passed to `register_module`).
    path : str, path-like or writable binary file
        Written exactly as given (no ``.npz`` suffix is appended).

    Raises
    ------
    TypeError
        If the model's class is not registered or its config is not JSON.
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a crnn Module, got {type(model).__name__}")
    _check_path(path, "w")
    name = _registered_name(model)
    cfg = model.config()
    try:
        header = json.dumps(
            {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "class": name,
                "module": type(model).__module__,
                "config": cfg,
                "crnn_version": __version__,
            }
        )
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}.config() is not JSON-serialisable: {exc}") from None
    arrays = {CONFIG_KEY: np.array(header)}
    for key, value in model.params.items():
        if key == CONFIG_KEY:
            raise ValueError(f"a parameter may not be called {CONFIG_KEY!r}")
        arrays[key] = np.ascontiguousarray(value)
    if isinstance(path, (str, os.PathLike)):
        with open(path, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)
    else:
        np.savez(path, allow_pickle=False, **arrays)


# Parameters a config may imply beyond what the file holds before `load`
# refuses to build the module (a file that loads holds every parameter).
_SLACK = 1 << 20


def _implied_size(cls: Type[Module], cfg: Dict[str, Any]) -> Optional[int]:
    """The parameter count `cls(**cfg)` would allocate, for the built-in layers
    with integer sizes; None when unknown (the constructor checks the rest)."""

    def size(key, default=None):
        v = cfg.get(key, default)
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None

    counter = getattr(cls, "parameter_count", None)
    if counter is not None:
        return counter(cfg)
    if cls is Linear:
        i, o = size("in_features"), size("out_features")
        if i is None or o is None:
            return None
        return o * i + (o if cfg.get("bias", True) is not False else 0)
    return None


class _InvalidFile(ValueError):
    """Raised by `load` for a file that is not a loadable crnn model."""


class UnregisteredClassError(ValueError):
    """`load` was given a valid file whose class is not registered in this process."""


def _unregistered(path: Any, name: str, module: Any) -> str:
    where = ""
    if module == "__main__":
        where = (
            " It was defined in the script that saved it: define it in this program too, "
            "and register it."
        )
    elif (
        isinstance(module, str)
        and module
        and module.isascii()
        and all(part.isidentifier() for part in module.split("."))
    ):
        where = (
            f" It was saved from module {module!r}: `import {module}` registers it if "
            f"that module decorates the class with @register_module."
        )
    return (
        f"{path!s} holds a {name}, a class that is not registered for loading in this "
        f"process (registered: {', '.join(sorted(_REGISTRY))}).{where} Otherwise call "
        f"crnn.serialization.register_module({name}) before crnn.load. (The file itself is "
        f"fine.)"
    )


def _fail(path: Any, what: str) -> ValueError:
    return _InvalidFile(f"{path!s} is not a valid crnn model file: {what}")


def load(path: Union[PathLike, Any], backend: Optional[str] = None) -> Module:
    """Rebuild a module saved with `save`.

    Parameters
    ----------
    path : str, path-like or readable binary file
    backend : {"c", "numpy"}, optional
        Overrides the backend stored in the file.

    Returns
    -------
    Module
        A new module of the saved class, config and weights, in training mode.

    Raises
    ------
    UnregisteredClassError (a ValueError)
        If the file's class is not registered in this process: the message
        names the class, the module it was saved from, and
        `register_module`.
    ValueError
        If the file is not an npz archive, lacks or has a malformed
        ``__config__``, has an unknown format version, holds pickled
        (object) data, or its weights do not match the architecture (the
        message lists the mismatches).
    OSError
        If the file cannot be opened.
    """
    _check_path(path, "r")
    if backend is not None:
        check_backend(backend)
    try:
        archive = np.load(path, allow_pickle=False)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise _fail(path, f"cannot read it as an npz archive ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise _fail(path, "it holds a single array, not an npz archive")
    with archive:
        try:
            files = list(archive.files)
            if CONFIG_KEY not in files:
                raise _fail(path, f"no {CONFIG_KEY!r} entry (not written by crnn.save)")
            header_arr = archive[CONFIG_KEY]
            if header_arr.dtype.kind != "U" or header_arr.ndim != 0:
                raise _fail(path, f"{CONFIG_KEY!r} must be a JSON string")
            try:
                header = json.loads(str(header_arr))
            except json.JSONDecodeError as exc:
                raise _fail(path, f"{CONFIG_KEY!r} is not valid JSON ({exc})") from None
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise _fail(path, f"{CONFIG_KEY!r} does not declare format {FORMAT!r}")
            if header.get("version") != FORMAT_VERSION:
                raise _fail(
                    path,
                    f"unsupported format version {header.get('version')!r} "
                    f"(this crnn reads version {FORMAT_VERSION})",
                )
            name = header.get("class")
            if not isinstance(name, str) or not name:
                raise _fail(path, f"'class' must be a class name, got {name!r}")
            if name not in _REGISTRY:
                raise UnregisteredClassError(_unregistered(path, name, header.get("module")))
            cfg = header.get("config")
            if not isinstance(cfg, dict):
                raise _fail(path, "'config' must be a JSON object")
            weights = {key: archive[key] for key in files if key != CONFIG_KEY}
        except (_InvalidFile, UnregisteredClassError):
            raise
        except (ValueError, zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
            raise _fail(path, f"cannot read its entries ({exc})") from None
    if backend is not None:
        cfg = dict(cfg, backend=backend)
    implied = _implied_size(_REGISTRY[name], cfg)
    held = sum(int(w.size) for w in weights.values())
    if implied is not None and implied > 4 * held + _SLACK:
        # A corrupted or forged size would otherwise allocate (and initialise)
        # far more memory than the file could ever fill.
        raise _fail(
            path, f"its config implies {implied} parameters but the file holds only {held} values"
        )
    try:
        model = _REGISTRY[name](**cfg)
    except (TypeError, ValueError) as exc:
        raise _fail(path, f"its config does not build a {name} ({exc})") from None
    try:
        model.load_state_dict(weights, strict=True)
    except (TypeError, ValueError) as exc:
        raise _fail(path, str(exc)) from None
    return model
