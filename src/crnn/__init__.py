"""crnn: C-accelerated recurrent neural networks for NumPy.

The C engine (`crnn.rnn_forward`, ...) and the pure-NumPy specification
(`crnn.reference`) share one API and one numerical contract.
"""

from typing import TYPE_CHECKING

from . import cells, data, init, losses, models, nn, optim, reference, training
from ._runtime import (
    available_isas,
    build_info,
    get_include,
    get_num_threads,
    limit_blas_threads,
    set_isa,
    set_num_threads,
)
from ._version import __version__
from .cells import (
    GRUCache,
    GRUGrads,
    JordanCache,
    JordanGrads,
    LSTMCache,
    LSTMGrads,
    RNNCache,
    RNNGrads,
)
from .functional import (
    NAMED as _NAMED,
    attention_backward,
    attention_forward,
    backward,
    clip_grad_norm,
    clip_grad_value,
    embedding_backward,
    embedding_forward,
    forward,
    parameters_changed,
    prepare,
)
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
from .serialization import load, save
from .training import gradcheck

__all__ = [
    "Attention",
    "Embedding",
    "GRU",
    "GRUCell",
    "Jordan",
    "LSTM",
    "LSTMCell",
    "Linear",
    "Module",
    "RNN",
    "RNNCell",
    "Recurrent",
    "RecurrentCell",
    "gradcheck",
    "backward",
    "cells",
    "forward",
    "data",
    "init",
    "load",
    "losses",
    "models",
    "nn",
    "optim",
    "save",
    "training",
    "GRUCache",
    "GRUGrads",
    "JordanCache",
    "JordanGrads",
    "LSTMCache",
    "LSTMGrads",
    "RNNCache",
    "RNNGrads",
    "attention_backward",
    "attention_forward",
    "embedding_backward",
    "embedding_forward",
    "__version__",
    "available_isas",
    "build_info",
    "clip_grad_norm",
    "clip_grad_value",
    "get_include",
    "get_num_threads",
    "limit_blas_threads",
    "parameters_changed",
    "prepare",
    "reference",
    "set_isa",
    "set_num_threads",
]

# Every registered cell's named entry points (rnn_forward, lstm_backward, ...),
# from crnn.functional.
globals().update(_NAMED)
__all__ += list(_NAMED)

if TYPE_CHECKING:  # the named entry points, for type checkers
    from typing import Any, Callable

    def __getattr__(name: str) -> Callable[..., Any]: ...
