"""The backend switch of the layers: which engine runs the recurrence.

Layers, losses and optimizers are written once against the functional API;
``engine(backend)`` returns the module that implements it:

- ``"c"``: `crnn.functional`, the C engine;
- ``"numpy"``: `crnn.reference`, the plain-NumPy specification.

Both expose ``rnn_forward``, ``rnn_backward``, ``clip_grad_norm`` and
``clip_grad_value`` with identical signatures and semantics.
"""
from __future__ import annotations

from types import ModuleType

from . import functional, functional_gated, reference

BACKENDS = ("c", "numpy")

_ENGINES = {"c": functional, "numpy": reference}
_GATED_ENGINES = {"c": functional_gated, "numpy": reference}


def check_backend(backend: object) -> str:
    """Return `backend` if it names an engine, else raise ValueError."""
    if not isinstance(backend, str) or backend not in _ENGINES:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def engine(backend: str) -> ModuleType:
    """The functional module behind `backend`.

    Parameters
    ----------
    backend : {"c", "numpy"}
        ``"c"`` for the C engine (`crnn.functional`), ``"numpy"`` for the
        NumPy reference (`crnn.reference`).

    Returns
    -------
    module
        A module with ``rnn_forward``, ``rnn_backward``, ``clip_grad_norm``
        and ``clip_grad_value``.

    Raises
    ------
    ValueError
        If `backend` is not one of ``"c"``, ``"numpy"``.
    """
    return _ENGINES[check_backend(backend)]


def gated_engine(backend: str) -> ModuleType:
    """The module with ``lstm_forward`` / ``lstm_backward`` / ``gru_forward`` /
    ``gru_backward`` behind `backend` (`crnn.functional_gated` for ``"c"``,
    `crnn.reference` for ``"numpy"``)."""
    return _GATED_ENGINES[check_backend(backend)]
