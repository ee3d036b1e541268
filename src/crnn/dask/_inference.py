"""Batch inference over dask arrays: `predict` (blocks of rows) and
`predict_long` (blocks of rows and of time, the state carried in order)."""

from __future__ import annotations

import copy
import numbers
import uuid
from typing import Any, List, NamedTuple, Optional, Tuple, Union

import dask
import dask.array as da
import numpy as np

from .._validate import check_lengths
from ..module import Module
from ..training import _is_bidirectional
from . import _worker

__all__ = ["predict", "predict_long"]


# --------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------


def check_threads(threads: Any) -> Optional[int]:
    """None, or an int >= 1 (crnn threads per task)."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1 or None, got {threads!r}")
    return int(threads)


def input_batch_axis(model: Module, ndim: int, batch_axis: Optional[int]) -> int:
    """The axis of the rows in the model's input: 1 for crnn's time-major
    ``(T, B, ...)``, 0 for a ``batch_first`` layer, or `batch_axis` as given
    (0 for a model without a time axis, such as MLPRegressor)."""
    if batch_axis is None:
        batch_axis = 0 if getattr(model, "batch_first", False) else 1
    if isinstance(batch_axis, bool) or not isinstance(batch_axis, numbers.Integral):
        raise TypeError(f"batch_axis must be an integer or None, got {type(batch_axis).__name__}")
    if not 0 <= batch_axis < ndim:
        raise ValueError(
            f"batch_axis must name an axis of X (0 <= batch_axis < {ndim}), got {batch_axis}"
        )
    return int(batch_axis)


def _check_model(model: Any) -> Module:
    if not isinstance(model, Module):
        raise TypeError(f"model must be a crnn Module, got {type(model).__name__}")
    return model


def _check_dask_array(X: Any) -> da.Array:
    if not isinstance(X, da.Array):
        raise TypeError(
            f"X must be a dask array (dask.array.from_array(x, chunks=...)), got {type(X).__name__}"
        )
    if any(np.isnan(n) for n in X.shape):
        raise ValueError(
            f"X must have known chunk sizes, got shape {X.shape}: call X.compute_chunk_sizes()"
        )
    return X


def _one_chunk(X: da.Array, axes: List[int], what: str, hint: str = "") -> None:
    for ax in axes:
        if len(X.chunks[ax]) > 1:
            raise ValueError(
                f"X must be chunked along {what} only; axis {ax} has {len(X.chunks[ax])} chunks: "
                f"rechunk it with X.rechunk({{{ax}: -1}}){hint}"
            )


def _bounds(chunks: Tuple[int, ...]) -> List[Tuple[int, int]]:
    stops = np.cumsum(chunks).tolist()
    return [(stop - n, stop) for n, stop in zip(chunks, stops)]


# --------------------------------------------------------------------------
# The model: its output layout, and its one copy per worker
# --------------------------------------------------------------------------


class OutputLayout(NamedTuple):
    """Where the rows are in the model's prediction, and its other sizes."""

    batch_axis: int
    shape: Tuple[int, ...]  # the prediction's shape for one row
    dtype: np.dtype
    stateful: bool  # the model returned (prediction, state)

    def block_shape(self, rows: int) -> Tuple[int, ...]:
        shape = list(self.shape)
        shape[self.batch_axis] = rows
        return tuple(shape)


def output_layout(
    model: Module,
    shape: Tuple[int, ...],
    dtype: Any,
    batch_axis: int,
    lengths: Optional[np.ndarray] = None,
    h0: Any = None,
    stateful: bool = False,
) -> OutputLayout:
    """Run a copy of `model` on zero inputs of 1 and 2 rows (the other sizes
    as in `shape`; the first rows of `lengths` and, with `stateful`, of
    `h0`) to learn the prediction's batch axis, shape and dtype.

    Zero inputs are valid ids for token models too. The model's own
    checks speak first: a wrong dtype, feature size, lengths or initial
    state raises here, in the caller's process, before any task runs.
    """
    probe = copy.deepcopy(model).eval()
    outs = []
    returned_state = False
    for rows in (1, 2):
        s = list(shape)
        s[batch_axis] = rows
        args: List[Any] = [np.zeros(s, dtype=dtype)]
        if stateful:
            args.append(_state_rows(h0, 0, rows))
        kwargs = {} if lengths is None else {"lengths": lengths[:rows]}
        pred, state = _worker.split_output(probe(*args, **kwargs))
        returned_state = state is not None
        outs.append(np.asarray(pred))
    one, two = outs
    differ = [
        ax for ax in range(one.ndim) if one.ndim == two.ndim and one.shape[ax] != two.shape[ax]
    ]
    if one.ndim != two.ndim or len(differ) != 1 or one.shape[differ[0]] != 1:
        raise ValueError(
            f"cannot tell the rows of {type(model).__name__}'s prediction: shapes {one.shape} "
            f"and {two.shape} for inputs of 1 and 2 rows along axis {batch_axis}"
        )
    return OutputLayout(differ[0], one.shape, one.dtype, returned_state)


def _default_client() -> Any:
    """The current distributed client, or None."""
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def model_reference(model: Module, client: Any) -> Any:
    """The model as the graph refers to it: scattered to every worker of
    `client` (or of the current client) once, or, without a distributed
    client, one key of the graph. Either way a snapshot: later changes to
    `model` do not reach the tasks."""
    snapshot = copy.deepcopy(model)
    if client is None:
        client = _default_client()
    if client is not None:
        return client.scatter(snapshot, broadcast=True, hash=False)
    return dask.delayed(snapshot, name=f"crnn-model-{uuid.uuid4().hex}", traverse=False)


def _row_lengths(lengths: Any, T: int, B: int) -> Optional[np.ndarray]:
    if lengths is None:
        return None
    if isinstance(lengths, da.Array):
        raise TypeError("lengths must be a NumPy array of B ints (it is small), not a dask array")
    return check_lengths(lengths, T, B)


# --------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------


def predict(
    model: Module,
    X: da.Array,
    lengths: Any = None,
    *,
    batch_axis: Optional[int] = None,
    client: Any = None,
    threads: Optional[int] = 1,
) -> da.Array:
    """The model's predictions for a dask array of sequences, as a dask array.

    Each block of rows is one task: the model's own forward pass (in
    evaluation mode) on that block, so the result is exactly what the model
    returns for the same block (and, the rows being independent, what it
    returns for the whole batch, up to the rounding of the input products).
    The model reaches each worker once: scattered to every worker of the
    distributed client (`client`, or the current one), or, with dask's local
    schedulers, one key of the graph that every task reads. A task runs
    crnn's C engine with the GIL released, on `threads` threads.

    Parameters
    ----------
    model : Module
        A crnn model or layer: ``model(x)`` or ``model(x, lengths=...)``
        returns the prediction, or ``(prediction, state)`` (the state is
        dropped; see `predict_long` to carry it).
    X : dask.array.Array
        The inputs, as the model reads them: time-major ``(T, B, ...)``
        (crnn's models), ``(B, T, ...)`` for a ``batch_first`` layer, token
        ids ``(T, B)`` for models with an embedding. Chunked along the rows
        only (one chunk along time and features).
    lengths : array_like of B ints in [0, T], or None
        Valid steps of each row, as the model takes them.
    batch_axis : int or None
        The axis of the rows in X; None: 0 for a ``batch_first`` model, else
        1. (Give 0 for a model without a time axis, e.g. MLPRegressor.)
    client : distributed.Client or None
        Where to scatter the model; None: the current client, if any.
    threads : int or None
        crnn threads per task in a distributed worker (default 1: a worker
        runs as many tasks at once as it has threads), set with
        `crnn.set_num_threads` for the worker's whole process (with an
        in-process cluster, ``processes=False``, that is yours); None leaves
        the worker's setting alone. With dask's local schedulers crnn's
        thread count is left as it is.

    Returns
    -------
    dask.array.Array
        The predictions, chunked along their rows as X is along its rows.
        Nothing is computed until you compute it.

    Raises
    ------
    TypeError, ValueError
        Before any task runs: X not a dask array, chunked along time or
        features, lengths of the wrong shape, an input the model rejects
        (checked on a copy of the model with zero rows of X's shape).
    """
    model = _check_model(model)
    X = _check_dask_array(X)
    threads = check_threads(threads)
    bax = input_batch_axis(model, X.ndim, batch_axis)
    _one_chunk(
        X,
        [ax for ax in range(X.ndim) if ax != bax],
        f"its rows (axis {bax})",
        ", or use predict_long for sequences chunked along time",
    )
    B = X.shape[bax]
    if B < 1:
        raise ValueError(f"X has no rows (axis {bax} has size 0)")
    time_axis = 1 - bax if X.ndim >= 2 and bax in (0, 1) else None
    lens = _row_lengths(lengths, X.shape[time_axis] if time_axis is not None else 0, B)
    layout = output_layout(model, X.shape, X.dtype, bax, lengths=lens)
    ref = model_reference(model, client)
    token = dask.base.tokenize(X.name, lens, threads, uuid.uuid4().hex)
    blocks = X.to_delayed().reshape(-1)
    parts = []
    for i, (blk, (lo, hi)) in enumerate(zip(blocks, _bounds(X.chunks[bax]))):
        task = dask.delayed(_worker.forward_block, pure=True)(
            ref,
            blk,
            None if lens is None else lens[lo:hi],
            threads,
            dask_key_name=("crnn-predict-" + token, i),
        )
        parts.append(da.from_delayed(task, shape=layout.block_shape(hi - lo), dtype=layout.dtype))
    return da.concatenate(parts, axis=layout.batch_axis)


# --------------------------------------------------------------------------
# predict_long
# --------------------------------------------------------------------------


def _check_state_rows(h0: Any, B: int) -> None:
    """Every array of an initial state must have the B rows on its axis 1
    (the model checks the rest)."""
    if h0 is None:
        return
    for part in h0 if isinstance(h0, (tuple, list)) else [h0]:
        shape = np.shape(part)
        if part is not None and (len(shape) != 3 or shape[1] != B):
            raise ValueError(
                f"h0 must have shape (num_layers * num_directions, {B}, size) (the batch on "
                f"axis 1), got {shape}"
            )


def _state_rows(state: Any, lo: int, hi: int) -> Any:
    """Rows lo:hi of a state (array or tuple; the batch on axis 1)."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(
            None if s is None else np.ascontiguousarray(np.asarray(s)[:, lo:hi]) for s in state
        )
    return np.ascontiguousarray(np.asarray(state)[:, lo:hi])


def predict_long(
    model: Module,
    X: da.Array,
    lengths: Any = None,
    *,
    h0: Any = None,
    batch_axis: Optional[int] = None,
    client: Any = None,
    threads: Optional[int] = 1,
    return_state: bool = False,
) -> Union[da.Array, Tuple[da.Array, Any]]:
    """`predict` for sequences split along time: each time-chunk starts from
    the state the previous one ended with.

    X may be chunked along time and along the rows. The chunks of a row
    block form a chain of tasks, one per time-chunk, in order; different
    row blocks run in parallel. Chunk t of a block runs the model from the
    final state of chunk t - 1, so the outputs equal one forward pass over
    the whole sequence (the recurrence is the same, step by step).

    Parameters
    ----------
    model : Module
        A unidirectional stateful model: ``model(x, h0)`` returns
        ``(outputs, h_n)`` with the outputs laid out like x on its first two
        axes (crnn.RNN / LSTM / GRU, SequenceTagger, CharRNN).
    X : dask.array.Array
        ``(T, B, ...)``, or ``(B, T, ...)`` for a ``batch_first`` layer;
        chunked along time and rows only.
    lengths : array_like of B ints in [0, T], or None
        Valid steps of each row over the whole sequence (each chunk gets its
        share; a row's state is held after its last valid step).
    h0 : state or None
        The initial state, as the model takes it (batch on axis 1).
    batch_axis, client, threads
        As for `predict`.
    return_state : bool
        Also return the final state (after each row's last valid step).

    Returns
    -------
    Y : dask.array.Array
        The outputs, chunked like X along time and rows.
    h_n : dask.delayed.Delayed
        With `return_state`: the final state, in the model's form.
    """
    model = _check_model(model)
    X = _check_dask_array(X)
    threads = check_threads(threads)
    if X.ndim < 2:
        raise ValueError(f"X must have a time axis and a batch axis, got shape {X.shape}")
    bax = input_batch_axis(model, X.ndim, batch_axis)
    if bax not in (0, 1):
        raise ValueError(f"batch_axis must be 0 or 1 for sequences, got {bax}")
    if _is_bidirectional(model):
        raise ValueError(
            "predict_long needs a unidirectional model: a reverse direction reads the "
            "sequence from its end, which a chunk does not have (use predict on whole sequences)"
        )
    tax = 1 - bax
    _one_chunk(X, list(range(2, X.ndim)), "time and rows")
    T, B = X.shape[tax], X.shape[bax]
    if B < 1 or T < 1:
        raise ValueError(f"X must have at least one step and one row, got shape {X.shape}")
    lens = _row_lengths(lengths, T, B)
    _check_state_rows(h0, B)
    T0 = X.chunks[tax][0]
    probe_shape = list(X.shape)
    probe_shape[tax] = T0
    layout = output_layout(
        model,
        tuple(probe_shape),
        X.dtype,
        bax,
        lengths=None if lens is None else np.minimum(lens, T0),
        h0=h0,
        stateful=True,
    )
    if not layout.stateful or layout.batch_axis != bax or layout.shape[tax] != X.chunks[tax][0]:
        raise ValueError(
            f"predict_long needs a model that returns (outputs, state) with the outputs "
            f"laid out like X; {type(model).__name__} returned "
            f"{'a state and ' if layout.stateful else 'no state and '}outputs of shape "
            f"{layout.block_shape(1)} for one row of {X.chunks[tax][0]} steps"
        )
    ref = model_reference(model, client)
    token = dask.base.tokenize(X.name, lens, threads, uuid.uuid4().hex)
    blocks = X.to_delayed().reshape(X.numblocks[:2])
    if bax == 0:
        blocks = blocks.T  # [time chunk, row chunk]
    grid: List[List[da.Array]] = []  # [time chunk][row chunk]
    finals = []
    row_bounds = _bounds(X.chunks[bax])
    time_bounds = _bounds(X.chunks[tax])
    columns: List[List[da.Array]] = []
    for j, (lo, hi) in enumerate(row_bounds):
        carry: Any = (None, _state_rows(h0, lo, hi))
        column = []
        for i, (t0, t1) in enumerate(time_bounds):
            chunk_lens = None if lens is None else np.clip(lens[lo:hi] - t0, 0, t1 - t0)
            carry = dask.delayed(_worker.forward_chunk, pure=True)(
                ref,
                blocks[i, j],
                carry,
                chunk_lens,
                threads,
                dask_key_name=("crnn-predict-long-" + token, i, j),
            )
            shape = list(layout.block_shape(hi - lo))
            shape[tax] = t1 - t0
            out = dask.delayed(_worker.output_of, pure=True)(
                carry, dask_key_name=("crnn-predict-long-out-" + token, i, j)
            )
            column.append(da.from_delayed(out, shape=tuple(shape), dtype=layout.dtype))
        columns.append(column)
        finals.append(
            dask.delayed(_worker.state_of, pure=True)(
                carry, dask_key_name=("crnn-predict-long-state-" + token, j)
            )
        )
    for i in range(len(time_bounds)):
        grid.append([columns[j][i] for j in range(len(row_bounds))])
    if bax == 0:
        grid = [list(row) for row in zip(*grid)]  # [row chunk][time chunk]
    Y = da.concatenate([da.concatenate(part, axis=1) for part in grid], axis=0)
    if not return_state:
        return Y
    state = dask.delayed(_worker.concat_states, pure=True)(
        finals, dask_key_name="crnn-predict-long-state-" + token
    )
    return Y, state
