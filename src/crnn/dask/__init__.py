"""crnn on Dask: batch inference over dask arrays and synchronous
data-parallel training on a cluster.

Needs the optional extra ``pip install "crnn[dask]"`` (``dask[array]`` and
``distributed``); ``import crnn`` never imports Dask, ``import crnn.dask``
does.

`predict`
    A model's predictions for a dask array chunked along its rows: one task
    per block, the model scattered once to every worker.
`predict_long`
    The same for sequences chunked along time too: each time-chunk starts
    from the state the previous one ended with.
`DataParallel`
    Synchronous data-parallel training: shards of each global batch on the
    workers, their gradients summed by a tree of tasks, one optimizer step,
    the new weights on every worker; the same as single-process training
    up to rounding. Survives a lost worker; checkpoints and resumes.
`save_checkpoint`, `load_checkpoint`, `latest_checkpoint`
    Checkpoints of a run (the model with `crnn.save`, the optimizer, the
    step count and the carried state), written atomically.

The same code runs on one machine (``distributed.LocalCluster``) and on
many (``distributed.Client("tcp://scheduler:8786")``).
"""

from __future__ import annotations

try:
    import dask  # noqa: F401
    import dask.array  # noqa: F401
    import distributed  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        f"crnn.dask needs Dask ({exc}); install it with: pip install 'crnn[dask]' "
        "(that is dask[array] and distributed)",
        name=exc.name,
    ) from exc

from ._checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from ._data_parallel import DataParallel
from ._inference import predict, predict_long

__all__ = [
    "DataParallel",
    "latest_checkpoint",
    "load_checkpoint",
    "predict",
    "predict_long",
    "save_checkpoint",
]
