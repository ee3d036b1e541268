"""The one engine selector: which module runs the recurrence for a backend.

Layers, losses and optimizers are written once against the functional API;
``engine(backend)`` returns the module that implements it:

- ``"c"``: `crnn.functional`, the C engine;
- ``"numpy"``: `crnn.reference`, the plain-NumPy specification.

Both expose the generic ``forward`` / ``backward`` (any cell of
`crnn.cells`), the cells' named entry points (``rnn_forward``, ...),
``clip_grad_norm`` and ``clip_grad_value``, with identical signatures and
semantics.
"""

from __future__ import annotations

from types import ModuleType

from . import functional, reference

BACKENDS = ("c", "numpy")

_ENGINES = {"c": functional, "numpy": reference}


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
        `crnn.functional` or `crnn.reference`.

    Raises
    ------
    ValueError
        If `backend` is not one of ``"c"``, ``"numpy"``.
    """
    return _ENGINES[check_backend(backend)]
