"""Synchronous data-parallel training on a Dask cluster: `DataParallel`."""

from __future__ import annotations

import asyncio
import copy
import numbers
import os
import time
import uuid
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..module import Module
from ..training import _is_bidirectional
from . import _checkpoint, _worker
from ._inference import check_threads, input_batch_axis

__all__ = ["DataParallel"]

PathLike = Union[str, "os.PathLike[str]"]

_WORKERS_REFRESH_S = 5.0

# Up to this many bytes in all (weights x shards), a step's weights travel
# inside each shard's task, through the scheduler, which saves the task that
# holds them and a copy between workers (a quarter of a step's overhead at
# the demo's size); above it, one task holds them and the workers fetch
# them from each other. Either way the graph keeps them, for recomputation.
INLINE_WEIGHTS_BYTES = 4 << 20


def _client(client: Any) -> Any:
    from distributed import Client, default_client

    if client is None:
        try:
            return default_client()
        except ValueError:
            raise ValueError(
                "DataParallel needs a distributed.Client: pass client=, or create one first "
                "(distributed.Client(distributed.LocalCluster()) or Client('tcp://host:8786'))"
            ) from None
    if not isinstance(client, Client):
        raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
    return client


def _rows(a: np.ndarray, axis: int, lo: int, hi: int) -> np.ndarray:
    index = [slice(None)] * a.ndim
    index[axis] = slice(lo, hi)
    return np.ascontiguousarray(a[tuple(index)])


def _state_parts(state: Any) -> List[np.ndarray]:
    return list(state) if isinstance(state, (tuple, list)) else [state]


class DataParallel:
    """Synchronous data-parallel training of a crnn model on a Dask cluster.

    Each `step` is one optimizer step on a global batch, computed by many
    workers: the rows of the batch are cut into shards, one per worker;
    each worker runs the model's forward pass, the loss and the backward
    pass on its shard with the step's weights; the shards' gradients are
    summed by a binary tree of tasks in a fixed order (depth
    ceil(log2(shards))); the sum comes back here, the optimizer takes one
    step, and the new weights reach every worker for the next step (inside
    the shards' tasks for a small model, else in one task of the step's
    graph that the workers copy from each other). This is mathematically the same as single-process training on the
    whole batch (`crnn.training.TBPTT` with ``stateful=True``, or a plain
    forward/loss/backward/step loop): the same mean loss, the same
    gradient, the same update; only the order of the sum over rows differs,
    so the weights agree to rounding (float64: ~1e-15 relative per step).

    A shard is a task whose inputs (the model, the step's weights, its rows
    of the batch) are all in the graph, so when a worker dies Dask runs the
    lost shard (and whatever else that worker held) again on another one; the tree consumes each shard's result exactly
    once, so nothing is lost or counted twice, and the step's result is the
    same.

    Parameters
    ----------
    model : Module
        The model to train (in place, here): ``model(x)`` returns the
        prediction, or ``(prediction, state)``; with ``stateful``,
        ``model(x, h0)``. ``model.backward(dpred)`` accumulates into
        ``model.grads``. Every crnn model qualifies. It is copied to every
        worker once, at construction.
    loss_fn : callable
        ``loss, dpred = loss_fn(pred, y, reduction=..., mask=...)`` as
        `crnn.losses.softmax_cross_entropy` and `crnn.losses.mse`. Shards
        call it with ``reduction="sum"``; the step's loss and gradient are
        those of the mean over the positions of ``y`` that ``mask`` selects
        (all of them without a mask), which is the losses' "mean". (Express
        positions to ignore in the mask, not with ``ignore_index``.) It
        must be picklable by reference (a module-level function).
    optimizer : crnn.optim.Optimizer
        Over ``model.params``; it steps here, in the calling process.
    client : distributed.Client or None
        None: the current client.
    shards : int or None
        How many shards to cut each batch into; None: one per worker of the
        client at construction. Shard i goes to worker i (cycling), or to
        any worker when that one is gone.
    stateful : bool
        Truncated BPTT over streams, as `crnn.training.TBPTT`: each shard
        starts from its rows of the carried state, and the final states,
        gathered with the gradients, become the carried `state` (no
        gradient crosses a step). The model must be unidirectional.
    batch_axis : int or None
        The axis of the rows in x; None: 0 for a ``batch_first`` model,
        else 1 (crnn's time-major ``(T, B, ...)``). y and the mask have
        their rows on the same axis, or on axis 0 when 1-D (per-sequence
        targets, as a classifier's).
    threads : int or None
        crnn threads per task on the workers (see `crnn.dask.predict`).
    checkpoint_dir : str, path-like or None
        Where `step` writes checkpoints (`save_checkpoint`) every
        `checkpoint_every` steps.
    checkpoint_every : int or None
        Steps between checkpoints (with `checkpoint_dir`).
    timeout : float or None
        Seconds a step may wait for its result before raising TimeoutError
        (None: no limit).

    Attributes
    ----------
    num_steps : int
        Steps taken (restored by `load_checkpoint`).
    state : array, tuple of arrays, or None
        The carried state (``stateful``), in the model's form.
    shards : int
    """

    def __init__(
        self,
        model: Module,
        loss_fn: Callable[..., Any],
        optimizer: Any,
        client: Any = None,
        *,
        shards: Optional[int] = None,
        stateful: bool = False,
        batch_axis: Optional[int] = None,
        threads: Optional[int] = 1,
        checkpoint_dir: Optional[PathLike] = None,
        checkpoint_every: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"model must be a crnn Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        if not hasattr(optimizer, "step") or getattr(optimizer, "params", None) is not model.params:
            raise ValueError("optimizer must be a crnn optimizer over model.params")
        if not isinstance(stateful, bool):
            raise TypeError(f"stateful must be a bool, got {type(stateful).__name__}")
        if stateful and _is_bidirectional(model):
            raise ValueError(
                "stateful training needs a unidirectional model: the reverse direction of a "
                "bidirectional RNN cannot carry state forward through a stream"
            )
        if (checkpoint_dir is None) != (checkpoint_every is None):
            raise ValueError("give checkpoint_dir and checkpoint_every together")
        if checkpoint_every is not None and (
            isinstance(checkpoint_every, bool)
            or not isinstance(checkpoint_every, numbers.Integral)
            or checkpoint_every < 1
        ):
            raise ValueError(f"checkpoint_every must be an int >= 1, got {checkpoint_every!r}")
        if timeout is not None and not (isinstance(timeout, numbers.Real) and timeout > 0):
            raise ValueError(f"timeout must be a number > 0 or None, got {timeout!r}")
        self.client: Any = _client(client)
        workers = sorted(self.client.nthreads())
        if not workers and shards is None:
            raise ValueError("the client has no workers (give shards= or wait for workers)")
        if shards is None:
            shards = len(workers)
        if isinstance(shards, bool) or not isinstance(shards, numbers.Integral) or shards < 1:
            raise ValueError(f"shards must be an int >= 1, got {shards!r}")
        self.model: Module = model
        self.loss_fn: Callable[..., Any] = loss_fn
        self.optimizer: Any = optimizer
        self.shards: int = int(shards)
        self.stateful: bool = stateful
        self.batch_axis: Optional[int] = batch_axis
        self.threads: Optional[int] = check_threads(threads)
        self.checkpoint_dir: Optional[PathLike] = checkpoint_dir
        self.checkpoint_every: Optional[int] = (
            None if checkpoint_every is None else int(checkpoint_every)
        )
        self.timeout: Optional[float] = None if timeout is None else float(timeout)
        self.num_steps: int = 0
        self.state: Any = None
        self._workers: List[str] = workers
        self._workers_seen: float = time.monotonic()
        self._run: str = uuid.uuid4().hex[:12]
        self._rounds: int = 0  # steps submitted: task keys never repeat, even after a resume
        # The model reaches every worker once, at the start; each step sends
        # only its weights. Both are tasks holding their data (see
        # _worker.hold): a lost copy is recomputed, never missing.
        self._model_future: Any = self.client.submit(
            _worker.hold, copy.deepcopy(model), key=f"crnn-dp-{self._run}-model", pure=False
        )
        self.client.replicate([self._model_future])

    # -- state ---------------------------------------------------------------

    def reset(self, rows: Optional[Union[int, Sequence[int], np.ndarray]] = None) -> None:
        """Forget the carried state: all of it (None), or zero some rows."""
        if rows is None:
            self.state = None
        elif self.state is not None:
            for part in _state_parts(self.state):
                part[:, rows] = 0

    # -- one step -------------------------------------------------------------

    def _split(self, B: int) -> List[Tuple[int, int]]:
        if B < self.shards:
            raise ValueError(
                f"the batch has {B} rows, fewer than the {self.shards} shards: give each "
                f"shard at least one row (a larger batch, or shards={B})"
            )
        edges = np.linspace(0, B, self.shards + 1).round().astype(int)
        return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]

    def step(
        self,
        x: Any,
        y: Any,
        mask: Any = None,
        *,
        lengths: Any = None,
        update: bool = True,
    ) -> float:
        """One synchronous step on a global batch; returns its mean loss.

        Parameters
        ----------
        x : ndarray
            The global batch, as the model reads it (rows on `batch_axis`).
        y : ndarray
            The targets, as `loss_fn` expects them for the prediction.
        mask : ndarray or None
            Positions of y that count (shaped like y, or broadcastable).
        lengths : array_like of B ints, or None
            Valid steps of each row, passed to the model.
        update : bool
            Take the optimizer step (else only the gradients are computed,
            into ``model.grads``).

        Returns
        -------
        float
            The loss of the whole batch (the mean over its counted positions).
        """
        if self._model_future is None:
            raise RuntimeError("this DataParallel is closed")
        x = np.asarray(x)
        y = np.asarray(y)
        bax = input_batch_axis(self.model, x.ndim, self.batch_axis)
        B = x.shape[bax]
        yax = 0 if y.ndim == 1 else bax
        if y.ndim <= yax or y.shape[yax] != B:
            raise ValueError(f"y must have the batch's {B} rows on axis {yax}, got shape {y.shape}")
        if mask is not None:
            mask = np.broadcast_to(np.asarray(mask), y.shape)
            count = int(np.count_nonzero(mask))
        else:
            count = int(y.size)
        lens = None if lengths is None else np.asarray(lengths)
        if lens is not None and lens.shape != (B,):
            raise ValueError(f"lengths must have shape ({B},), got {lens.shape}")
        bounds = self._split(B)

        client = self.client
        self._rounds += 1
        key = f"crnn-dp-{self._run}-{self._rounds}"
        weights: Any = self.model.state_dict()
        if len(bounds) * sum(w.nbytes for w in weights.values()) > INLINE_WEIGHTS_BYTES:
            # One task holds them; the workers copy them from each other.
            weights = client.submit(_worker.hold, weights, key=f"{key}-weights", pure=False)
        workers = self._workers
        leaves = []
        for i, (lo, hi) in enumerate(bounds):
            h0 = None
            if self.stateful and self.state is not None:
                h0 = _worker.copy_state(
                    tuple(p[:, lo:hi] for p in self.state)
                    if isinstance(self.state, tuple)
                    else self.state[:, lo:hi]
                )
            leaves.append(
                client.submit(
                    _worker.shard_gradients,
                    self._model_future,
                    weights,
                    _rows(x, bax, lo, hi),
                    _rows(y, yax, lo, hi),
                    None if mask is None else _rows(mask, yax, lo, hi),
                    None if lens is None else lens[lo:hi].copy(),
                    h0,
                    self.loss_fn,
                    count,
                    self.stateful,
                    self.model.training,
                    self.threads,
                    key=f"{key}-shard-{i}",
                    workers=[workers[i % len(workers)]] if workers else None,
                    allow_other_workers=True,
                    pure=False,
                )
            )
        root = _reduce_tree(client, leaves, key)
        try:
            result = root.result(timeout=self.timeout)
        except (TimeoutError, asyncio.TimeoutError):  # one class from Python 3.11 on
            raise TimeoutError(
                f"data-parallel step {self.num_steps + 1} took longer than {self.timeout} s"
            ) from None
        finally:
            del leaves, root, weights
        self._refresh_workers()

        for name, g in result.grads.items():
            self.model.grads[name][...] = g
        if update:
            self.optimizer.step(self.model.grads)
        if self.stateful:
            self.state = _worker.concat_states(result.states)
        self.num_steps += 1
        every, directory = self.checkpoint_every, self.checkpoint_dir
        if every is not None and directory is not None and self.num_steps % every == 0:
            self.save_checkpoint(directory)
        return result.loss / count if count else 0.0

    def _refresh_workers(self) -> None:
        """Follow the cluster's workers (one may have died or joined), asking
        the scheduler at most every few seconds: a shard whose worker is gone
        runs on any other meanwhile."""
        now = time.monotonic()
        if now - self._workers_seen >= _WORKERS_REFRESH_S:
            self._workers = sorted(self.client.nthreads())
            self._workers_seen = now

    # -- checkpoints ----------------------------------------------------------

    def save_checkpoint(self, directory: PathLike, keep: int = 2) -> str:
        """Write a checkpoint (model with `crnn.save`, optimizer, step count,
        carried state) into `directory`; see `crnn.dask.save_checkpoint`.
        Returns the checkpoint's path."""
        return _checkpoint.save_checkpoint(
            directory, self.model, self.optimizer, self.num_steps, self.state, keep=keep
        )

    def load_checkpoint(self, path: PathLike) -> int:
        """Resume from a checkpoint (a checkpoint directory, or a directory
        of them: the newest): restores the weights into ``model``, the
        optimizer's state, `num_steps` and the carried `state`. Returns
        `num_steps`."""
        self.num_steps, self.state = _checkpoint.load_checkpoint(path, self.model, self.optimizer)
        return self.num_steps

    # -- lifetime ---------------------------------------------------------------

    def close(self) -> None:
        """Release the model's copies on the workers (the client stays open)."""
        future, self._model_future = self._model_future, None
        if future is not None:
            future.release()

    def __enter__(self) -> "DataParallel":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"DataParallel({type(self.model).__name__}, shards={self.shards}, "
            f"stateful={self.stateful}, steps={self.num_steps})"
        )


def _reduce_tree(client: Any, leaves: List[Any], key: str) -> Any:
    """Sum the shards' results pairwise, level by level: (0+1)+(2+3)...; an
    odd one out moves up unchanged. The order is fixed, so the sum does not
    depend on which worker finishes first."""
    level = leaves
    depth = 0
    while len(level) > 1:
        nxt = [
            client.submit(
                _worker.add_results, level[i], level[i + 1], key=f"{key}-sum-{depth}-{i // 2}"
            )
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        depth += 1
    return level[0]
