"""What runs inside a Dask task: crnn's thread count, one model copy per
thread, a block's forward pass, a shard's gradients and their pairwise sums.

Dask pickles these functions by reference (crnn is importable on every
worker), so a task carries only its arguments. The model itself reaches a
worker once, as the data of a scattered future (or one key of the graph);
every task of that worker reads the same object and runs on its thread's
private copy of it, because a layer keeps the cache of its last forward
call and two threads must never share one.
"""

from __future__ import annotations

import copy
import threading
import weakref
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from .._runtime import set_num_threads
from ..module import Module

_local = threading.local()


def in_dask_worker() -> bool:
    """True when called from a task of a `distributed` worker."""
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


def use_threads(threads: Optional[int]) -> None:
    """In a worker process, run crnn on `threads` threads per task.

    A worker runs as many tasks at once as it has threads, so one crnn
    thread per task keeps it at its share of the cores (Dask's own rule: its
    nanny starts workers with OMP_NUM_THREADS=1). The count is
    process-wide (`crnn.set_num_threads`); the worker process is Dask's.
    Outside a distributed worker (dask's local scheduler, in the caller's
    own process) nothing is changed. None leaves the worker's count alone.
    """
    if threads is not None and in_dask_worker():
        set_num_threads(threads)


def own_copy(model: Module) -> Module:
    """This thread's private copy of `model`, made once per thread and model."""
    copies = getattr(_local, "copies", None)
    if copies is None:
        copies = _local.copies = weakref.WeakKeyDictionary()
    mine = copies.get(model)
    if mine is None:
        mine = copies[model] = copy.deepcopy(model)
    return mine


def split_output(out: Any) -> Tuple[np.ndarray, Any]:
    """(prediction, state) of a model's return value: ``(out, h_n)`` for a
    stateful model, a bare array (state None) otherwise."""
    if isinstance(out, tuple):
        return out[0], out[1]
    return out, None


def copy_state(state: Any) -> Any:
    """A copy of a recurrent state in its own form (array, tuple or None)."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(np.array(part, copy=True) for part in state)
    return np.array(state, copy=True)


# --------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------


def forward_block(
    model: Module, x: np.ndarray, lengths: Optional[np.ndarray], threads: Optional[int]
) -> np.ndarray:
    """The model's prediction for one block of rows, in evaluation mode."""
    use_threads(threads)
    m = own_copy(model).eval()
    out = m(x) if lengths is None else m(x, lengths=lengths)
    return split_output(out)[0]


def forward_chunk(
    model: Module,
    x: np.ndarray,
    carry: Tuple[Optional[np.ndarray], Any],
    lengths: Optional[np.ndarray],
    threads: Optional[int],
) -> Tuple[np.ndarray, Any]:
    """One time-chunk of a long sequence: ``(outputs, state)`` from the
    previous chunk's ``(outputs, state)`` (or ``(None, h0)`` for the first)."""
    use_threads(threads)
    m = own_copy(model).eval()
    state = carry[1]
    out = m(x, state) if lengths is None else m(x, state, lengths=lengths)
    pred, state_n = split_output(out)
    return pred, copy_state(state_n)


def output_of(result: Tuple[np.ndarray, Any]) -> np.ndarray:
    return result[0]


def state_of(result: Tuple[np.ndarray, Any]) -> Any:
    return result[1]


def concat_states(states: List[Any]) -> Any:
    """The states of consecutive row blocks joined along the batch (axis 1)."""
    if isinstance(states[0], tuple):
        return tuple(np.concatenate(parts, axis=1) for parts in zip(*states))
    return np.concatenate(states, axis=1)


# --------------------------------------------------------------------------
# Data-parallel training
# --------------------------------------------------------------------------


class ShardResult(NamedTuple):
    """A shard's contribution to a step, or the sum of several.

    Attributes
    ----------
    grads : dict of str to ndarray
        The gradient of the global mean loss restricted to the shard's rows
        (a sum of such, up the reduction tree).
    loss : float
        The loss summed over the shard's counted positions.
    states : list
        The final recurrent state of each shard, in shard order (stateful
        training), else empty.
    """

    grads: Dict[str, np.ndarray]
    loss: float
    states: List[Any]


def hold(value: Any) -> Any:
    """`value` itself: a task that holds data (a model, a step's weights) in
    the graph, so that the scheduler can compute it again on another worker
    when the one holding it is lost; scattered data would be gone."""
    return value


def shard_gradients(
    model: Module,
    weights: Dict[str, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    mask: Optional[np.ndarray],
    lengths: Optional[np.ndarray],
    h0: Any,
    loss_fn: Any,
    count: int,
    stateful: bool,
    training: bool,
    threads: Optional[int],
) -> ShardResult:
    """Forward, loss and backward of one shard with the step's weights.

    The loss is summed over the shard (``reduction="sum"``) and its gradient
    scaled by ``1 / count``, `count` being the positions that count in the
    *whole* batch: the gradient of the global mean restricted to these
    rows, computed with the very operations of the loss's own "mean"
    (``grad *= 1.0 / count``), so the shards' sum is the single-process
    gradient up to the order of the sum over rows.
    """
    use_threads(threads)
    m = own_copy(model)
    m.train(training)
    m.load_state_dict(weights)
    m.zero_grad()
    kwargs = {} if lengths is None else {"lengths": lengths}
    out = m(x, h0, **kwargs) if stateful else m(x, **kwargs)
    pred, state_n = split_output(out)
    loss_kwargs = {} if mask is None else {"mask": mask}
    loss, dpred = loss_fn(pred, y, reduction="sum", **loss_kwargs)
    if count:
        dpred *= 1.0 / count
    else:  # nothing counts anywhere: the loss's "mean" gives a zero gradient
        dpred[...] = 0
    # No gradient for the final state (the next window's is a constant).
    m.backward(dpred)
    grads = {name: g.copy() for name, g in m.grads.items()}
    return ShardResult(grads, float(loss), [copy_state(state_n)] if stateful else [])


def add_results(a: ShardResult, b: ShardResult) -> ShardResult:
    """One node of the reduction tree: `a` + `b`, shards kept in order."""
    grads = {name: a.grads[name] + b.grads[name] for name in a.grads}
    return ShardResult(grads, a.loss + b.loss, a.states + b.states)
