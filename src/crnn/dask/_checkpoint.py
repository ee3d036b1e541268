"""Checkpoints of a training run: the model, its optimizer, the step count and
the carried recurrent state, written so that a crash never leaves a torn one.

Layout of a checkpoint directory::

    DIR/step-00000040/model.npz     crnn.save of the model (crnn.load reads it)
    DIR/step-00000040/trainer.npz   step count, optimizer state, carried state
    DIR/latest                      the name of the newest complete checkpoint

A checkpoint is written into a fresh step directory first; only then does
``latest`` change, by an atomic rename, to name it; older step directories
beyond ``keep`` are removed afterwards. A run killed at any moment leaves
``latest`` naming a complete checkpoint. ``trainer.npz`` holds arrays and
one JSON string, no pickle, like the model file.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ..module import Module
from ..serialization import save as save_model

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint"]

PathLike = Union[str, "os.PathLike[str]"]

_LATEST = "latest"
_MODEL = "model.npz"
_TRAINER = "trainer.npz"
_META = "__meta__"
_FORMAT = "crnn-checkpoint"


def _step_dir(step: int) -> str:
    return f"step-{step:08d}"


def _state_arrays(state: Any) -> Tuple[Optional[str], List[np.ndarray]]:
    """("array" | "tuple" | None, the arrays) of a carried recurrent state."""
    if state is None:
        return None, []
    if isinstance(state, (tuple, list)):
        return "tuple", [np.asarray(s) for s in state]
    return "array", [np.asarray(state)]


def save_checkpoint(
    directory: PathLike, model: Module, optimizer: Any, step: int, state: Any = None, keep: int = 2
) -> str:
    """Write a checkpoint of a training run into `directory`.

    Parameters
    ----------
    directory : str or path-like
        Created if missing. Holds one sub-directory per checkpoint and the
        file ``latest`` naming the newest.
    model : Module
        Saved with `crnn.save` (its class must be registered, as every
        crnn model is).
    optimizer : crnn.optim.Optimizer
        Its `state_dict` (step count, learning rate, buffers).
    step : int
        The number of training steps taken.
    state : array, tuple of arrays, or None
        The recurrent state carried into the next step (stateful training).
    keep : int
        How many checkpoints to keep (>= 1); older ones are removed.

    Returns
    -------
    str
        The path of the checkpoint written.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be an int >= 1, got {keep!r}")
    os.makedirs(directory, exist_ok=True)
    name = _step_dir(step)
    final = os.path.join(directory, name)
    tmp = final + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    save_model(model, os.path.join(tmp, _MODEL))

    opt = optimizer.state_dict()
    arrays: Dict[str, np.ndarray] = {}
    buffers = []
    for p_index, (param, bufs) in enumerate(opt["state"].items()):
        for b_name, value in bufs.items():
            key = None
            if value is not None:
                key = f"buffer_{p_index}_{b_name}"
                arrays[key] = np.ascontiguousarray(value)
            buffers.append([param, b_name, key])
    state_kind, state_parts = _state_arrays(state)
    for i, part in enumerate(state_parts):
        arrays[f"state_{i}"] = np.ascontiguousarray(part)
    meta = {
        "format": _FORMAT,
        "version": 1,
        "step": int(step),
        "optimizer": opt["optimizer"],
        "num_steps": int(opt["num_steps"]),
        "lr": float(opt["lr"]),
        "buffers": buffers,
        "state": state_kind,
        "state_parts": len(state_parts),
    }
    arrays[_META] = np.array(json.dumps(meta))
    with open(os.path.join(tmp, _TRAINER), "wb") as f:
        np.savez(f, allow_pickle=False, **arrays)

    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    pointer = os.path.join(directory, _LATEST)
    with open(pointer + ".partial", "w", encoding="utf-8") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(pointer + ".partial", pointer)

    steps = sorted(
        d
        for d in os.listdir(directory)
        if d.startswith("step-") and not d.endswith(".partial") and d != name
    )
    for old in steps[: max(0, len(steps) - (keep - 1))]:
        shutil.rmtree(os.path.join(directory, old), ignore_errors=True)
    return final


def latest_checkpoint(directory: PathLike) -> Optional[str]:
    """The path of the newest complete checkpoint in `directory`, or None."""
    try:
        with open(os.path.join(directory, _LATEST), encoding="utf-8") as f:
            name = f.read().strip()
    except FileNotFoundError:
        return None
    path = os.path.join(directory, name)
    return path if os.path.isdir(path) else None


def load_checkpoint(path: PathLike, model: Module, optimizer: Any) -> Tuple[int, Any]:
    """Restore a checkpoint into `model` and `optimizer`, in place.

    Parameters
    ----------
    path : str or path-like
        A checkpoint directory (``DIR/step-...``), or a directory of them
        (``DIR``: its newest complete one is read).
    model : Module
        Of the saved architecture: the saved weights are copied into it.
    optimizer : crnn.optim.Optimizer
        Of the saved class, over ``model.params``: its state is restored.

    Returns
    -------
    step : int
        The number of training steps the checkpoint was taken after.
    state : array, tuple of arrays, or None
        The carried recurrent state saved with it.

    Raises
    ------
    FileNotFoundError
        If `path` holds no checkpoint.
    ValueError
        If the files are not a checkpoint, or do not match the model or
        the optimizer (nothing is modified then).
    """
    from ..serialization import load as load_model

    if not os.path.exists(os.path.join(path, _TRAINER)):
        newest = latest_checkpoint(path)
        if newest is None:
            raise FileNotFoundError(f"{os.fspath(path)!s} holds no crnn checkpoint")
        path = newest
    saved = load_model(os.path.join(path, _MODEL))
    if type(saved) is not type(model):
        raise ValueError(
            f"{os.fspath(path)!s} holds a {type(saved).__name__}, not a {type(model).__name__}"
        )
    with np.load(os.path.join(path, _TRAINER), allow_pickle=False) as archive:
        meta = json.loads(str(archive[_META]))
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise ValueError(f"{os.fspath(path)!s}: {_TRAINER} is not a crnn checkpoint")
        arrays = {k: archive[k] for k in archive.files if k != _META}
    states: Dict[Any, Dict[str, Optional[np.ndarray]]] = {}
    for param, b_name, key in meta["buffers"]:
        states.setdefault(param, {})[b_name] = None if key is None else arrays[key]
    opt_state = {
        "optimizer": meta["optimizer"],
        "num_steps": meta["num_steps"],
        "lr": meta["lr"],
        "state": states,
    }
    parts = [arrays[f"state_{i}"] for i in range(meta["state_parts"])]
    state = None
    if meta["state"] == "tuple":
        state = tuple(parts)
    elif meta["state"] == "array":
        state = parts[0]
    before = model.state_dict()
    model.load_state_dict(saved.state_dict())
    try:
        optimizer.load_state_dict(opt_state)
    except (TypeError, ValueError):
        model.load_state_dict(before)
        raise
    return int(meta["step"]), state
