"""Type stub of the compiled binding `crnn._core` (src/crnn/_core.pyx).

The binding takes arrays that `crnn._validate` has already checked: one float
dtype, C-contiguous, native byte order, shapes agreeing, outputs allocated.
Tuples follow the slot order of csrc/crnn.h's structs.
"""

from typing import Any, Callable, Dict, List, Optional, Tuple, TypedDict

import numpy as np

class _CellInfo(TypedDict):
    """One cell of the C library's registry (csrc/crnn_cells.def)."""

    name: str
    gates: int
    states: int
    state_is_output: bool
    saved_gates: Tuple[int, ...]
    separate_bias_grads: bool
    code: int

# crnn_layer: (cell, dtype, activation, output_activation, I, H, O), all codes and sizes.
_Layer = Tuple[int, int, int, int, int, int, int]
# crnn_weights / the weight gradients: (w_ih, w_hh, b_ih, b_hh, w_ho, b_ho), None where absent.
_Weights = Tuple[Optional[np.ndarray], ...]
# Initial states and their gradients: None reads as zeros.
_States = Tuple[Optional[np.ndarray], ...]
_Outputs = Tuple[np.ndarray, ...]

CELL_INFO: Dict[str, _CellInfo]
ACTIVATIONS: Dict[str, int]
ISAS: Dict[str, int]
DTYPES: Dict[str, int]
F32_BF16: int

def _cell_info(cell: int) -> Dict[str, object]: ...
def forward(
    layer: _Layer,
    weights: _Weights,
    x: np.ndarray,
    lengths: Optional[np.ndarray],
    states0: _States,
    out: np.ndarray,
    states_n: _Outputs,
    saved: _Outputs,
) -> None: ...
def backward(
    layer: _Layer,
    weights: _Weights,
    x: np.ndarray,
    lengths: Optional[np.ndarray],
    states0: _States,
    out: np.ndarray,
    saved: _Outputs,
    dout: Optional[np.ndarray],
    dstates_n: _States,
    dx: Optional[np.ndarray],
    dstates0: _Outputs,
    dweights: _Weights,
) -> None: ...

class _PointerList:
    def __init__(self, arrays: List[np.ndarray]) -> None: ...

def total_norm(dtype: int, arrays: List[np.ndarray], p: float) -> float: ...
def scale(dtype: int, arrays: List[np.ndarray], factor: float) -> None: ...
def clip_value(dtype: int, arrays: List[np.ndarray], clip: float) -> None: ...
def embedding_backward(
    dtype: int,
    ids: np.ndarray,
    dout: np.ndarray,
    num_embeddings: int,
    padding_idx: int,
    dweight: np.ndarray,
) -> None: ...
def head_loss(
    dtype: int,
    loss: str,
    x: np.ndarray,
    weight: np.ndarray,
    bias: Optional[np.ndarray],
    classes: Optional[np.ndarray],
    targets: Optional[np.ndarray],
    dx: Optional[np.ndarray],
    dweight: np.ndarray,
    dbias: Optional[np.ndarray],
) -> float: ...

LOSSES: Dict[str, int]
OPTIMIZERS: Dict[str, int]

def optimizer_step(
    hyper: Dict[str, Any],
    dtype: int,
    params: List[np.ndarray],
    grads: List[np.ndarray],
    buffers: List[Optional[List[Any]]],
) -> float: ...

# Prepared weights (crnn_prepare / crnn_forward_prepared) of a layer stack.
def parameters_changed() -> None: ...

class Prepared:
    num_layers: int
    num_states: int
    stacked: bool
    input_size: int
    widths: Tuple[int, ...]
    type_num: int
    def __init__(
        self,
        layers: List[_Layer],
        source: Callable[[], List[_Weights]],
        normalize: Callable[..., Tuple[Any, Any, Any]],
        widths: Tuple[int, ...],
        stacked: bool,
        type_num: int,
    ) -> None: ...
    def refresh(self) -> None: ...
    def step(self, x: Any, states: Any = None, out: Any = None) -> Tuple[np.ndarray, ...]: ...

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def have_openmp() -> bool: ...
def set_isa(name: str) -> bool: ...
def get_isa() -> str: ...
def isa_supported(name: str) -> bool: ...
def compiler() -> str: ...

# The C API capsule (csrc/crnn_api.h) and the fork handler's test knob.
_C_API: object

def _testing_set_fork_release(release: bool) -> bool: ...

# Private test knobs (csrc/crnn_testing.h), used by crnn._testing only.
def _testing_set_min_work(n: int) -> int: ...
def _testing_set_oversubscribe(allow: bool) -> bool: ...
def _testing_counts_reset() -> None: ...
def _testing_counts() -> Dict[str, int]: ...
def _testing_backoff_reset() -> None: ...
def _testing_backoff() -> Tuple[int, int]: ...
def _testing_stall_next_region(ms: int) -> None: ...
