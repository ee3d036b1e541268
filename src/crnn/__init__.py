"""crnn: C-accelerated recurrent neural networks for NumPy.

The C engine (`crnn.rnn_forward`, ...) and the pure-NumPy specification
(`crnn.reference`) share one API and one numerical contract.
"""
from . import reference
from ._runtime import (available_isas, build_info, get_num_threads, limit_blas_threads, set_isa,
                       set_num_threads)
from . import cells
from .cells import (GRUCache, GRUGrads, JordanCache, JordanGrads, LSTMCache, LSTMGrads, RNNCache,
                    RNNGrads)
from ._version import __version__
from .functional import (attention_backward, attention_forward, backward, clip_grad_norm,
                         clip_grad_value, embedding_backward, embedding_forward, forward,
                         gru_backward, gru_forward, jordan_backward, jordan_forward,
                         lstm_backward, lstm_forward, rnn_backward, rnn_forward)
from . import init, nn
from . import losses, optim
from .module import Module
from .nn import (GRU, LSTM, RNN, Attention, Embedding, GRUCell, Jordan, Linear, LSTMCell,
                 Recurrent, RecurrentCell, RNNCell)
from .serialization import load, save
from . import data, models, training
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
    "gru_backward",
    "gru_forward",
    "jordan_backward",
    "jordan_forward",
    "lstm_backward",
    "lstm_forward",
    "__version__",
    "available_isas",
    "build_info",
    "clip_grad_norm",
    "clip_grad_value",
    "get_num_threads",
    "limit_blas_threads",
    "reference",
    "rnn_backward",
    "rnn_forward",
    "set_isa",
    "set_num_threads",
]
