"""The demo's speed report: one model's training, timed in crnn's C engine,
its NumPy reference and (when installed) PyTorch, side by side.

For a character model (`crnn.models.CharRNN`) and one window of
``seq_len`` x ``batch_size`` characters, two things are timed per
implementation:

- the recurrent layer alone, forward + backward;
- the whole training step: forward, softmax cross-entropy, backward, and
  Adam with gradient-norm clipping at 5 (crnn: `crnn.training.TBPTT.step`,
  which fuses the head with its loss and updates in one C call).

PyTorch runs the same model (weights copied; one-hot inputs, or its
``nn.Embedding`` for a model with one) with the same number of threads.
The cases are measured in turns, several rounds, and the best time of each
kept, so a burst of load from elsewhere hits every implementation alike.
Copies of the model are timed: the model itself is left as it was.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import time
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

from .. import _runtime
from ..losses import softmax_cross_entropy
from ..models import CharRNN
from ..optim import Adam
from ..training import TBPTT

__all__ = ["IMPLEMENTATIONS", "training_cases", "training_speeds", "speed_lines"]

IMPLEMENTATIONS = ("c", "numpy", "torch")
KINDS = ("rnn", "step")

Case = Callable[[], Any]


def _crnn_cases(model: CharRNN, backend: str, x: np.ndarray, y: np.ndarray) -> Dict[str, Case]:
    m = copy.deepcopy(model)
    m.set_backend(backend)
    m.train()
    opt = Adam(m.params, lr=2e-3, clip_grad_norm=5.0, backend=backend)
    tb = TBPTT(m, softmax_cross_entropy, opt, k=x.shape[0])
    inputs = m._inputs(x) if m.embed is None else m.embed(x)

    def rnn() -> None:
        out, _ = m.rnn(inputs)
        m.rnn.backward(np.ones_like(out))

    def step() -> None:
        tb.reset()
        tb.step(x, y)

    return {"rnn": rnn, "step": step}


def _torch_cases(torch: Any, model: CharRNN, x: np.ndarray, y: np.ndarray) -> Dict[str, Case]:
    """The same model in PyTorch, its weights copied from `model`."""
    layer = model.rnn
    spec = layer.spec
    kwargs: Dict[str, Any] = {"num_layers": layer.num_layers}
    if "nonlinearity" in layer.options:
        kwargs["nonlinearity"] = layer.options["nonlinearity"]
    dtype = getattr(torch, model.dtype.name)
    assert spec.torch_module is not None  # a model's cell is one of torch's
    rnn = getattr(torch.nn, spec.torch_module)(layer.input_size, layer.hidden_size, **kwargs)
    head = torch.nn.Linear(layer.hidden_size, model.vocab_size)
    modules = [rnn, head]
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            p.copy_(torch.from_numpy(layer.params[name]))
        head.weight.copy_(torch.from_numpy(model.head.params["weight"]))
        head.bias.copy_(torch.from_numpy(model.head.params["bias"]))
        if model.embed is not None:
            embed = torch.nn.Embedding(model.vocab_size, model.embed.embedding_dim)
            embed.weight.copy_(torch.from_numpy(model.embed.params["weight"]))
            modules.insert(0, embed)
    for mod in modules:
        mod.to(dtype)
    params = [p for mod in modules for p in mod.parameters()]
    opt = torch.optim.Adam(params, lr=2e-3)
    ids = torch.from_numpy(np.ascontiguousarray(x))
    targets = torch.from_numpy(np.ascontiguousarray(y)).reshape(-1)
    V = model.vocab_size

    def inputs() -> Any:
        if model.embed is not None:
            return modules[0](ids)
        return torch.nn.functional.one_hot(ids, V).to(dtype)

    def run_rnn() -> None:
        out, _ = rnn(inputs().detach())
        out.backward(torch.ones_like(out))

    def step() -> None:
        opt.zero_grad()
        out, _ = rnn(inputs())
        logits = head(out).reshape(-1, V)
        torch.nn.functional.cross_entropy(logits, targets).backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()

    return {"rnn": run_rnn, "step": step}


def training_cases(model: CharRNN, impl: str, x: np.ndarray, y: np.ndarray) -> Dict[str, Case]:
    """The calls timed for `impl` ("c", "numpy" or "torch"), on a copy of
    `model` and the window x -> y (ids (T, B)): {"rnn": ..., "step": ...}."""
    if impl == "torch":
        import torch  # the optional peer, imported only here

        return _torch_cases(torch, model, x, y)
    return _crnn_cases(model, impl, x, y)


def training_speeds(
    model: CharRNN,
    seq_len: int,
    batch_size: int,
    seed: int = 0,
    repeat: int = 5,
    budget: float = 4.0,
    torch: bool = True,
) -> Dict[str, Dict[str, float]]:
    """Seconds per window of `model`'s recurrent layer (forward + backward)
    and of its whole training step, per implementation.

    Returns ``{"rnn": {impl: s}, "step": {impl: s}}`` for impl in "c",
    "numpy" and, when PyTorch is importable (and `torch` is true), "torch":
    the best of up to `repeat` rounds (after a warm-up) or of the rounds
    run within `budget` seconds. Each timed call follows an untimed call of
    the same case, so it runs in its implementation's steady state.
    """
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, model.vocab_size, size=(seq_len + 1, batch_size))
    x, y = ids[:-1], ids[1:]
    use_torch = torch and importlib.util.find_spec("torch") is not None
    cases: Dict[Tuple[str, str], Case] = {}
    for impl in IMPLEMENTATIONS if use_torch else IMPLEMENTATIONS[:2]:
        for kind, f in training_cases(model, impl, x, y).items():
            cases[kind, impl] = f
    torch_mod: Any = None
    if use_torch:
        torch_mod = importlib.import_module("torch")  # the optional peer, only here
    saved = torch_mod.get_num_threads() if torch_mod is not None else 0
    if torch_mod is not None:
        torch_mod.set_num_threads(max(1, _runtime.get_num_threads()))
    best = {key: math.inf for key in cases}
    try:
        start = time.perf_counter()
        for r in range(repeat + 1):  # round 0 is the warm-up
            for key, f in cases.items():
                f()
                t0 = time.perf_counter()
                f()
                dt = time.perf_counter() - t0
                if r > 0:
                    best[key] = min(best[key], dt)
            if r > 0 and time.perf_counter() - start > budget:
                break
    finally:
        if torch_mod is not None:
            torch_mod.set_num_threads(saved)
    out: Dict[str, Dict[str, float]] = {kind: {} for kind in KINDS}
    for (kind, impl), seconds in best.items():
        out[kind][impl] = seconds
    return out


def speed_lines(speeds: Dict[str, Dict[str, float]], fmt: Callable[[float], str]) -> List[str]:
    """The demo's table: a header, then one line per kind with each
    implementation's time and, for the others, how many times crnn's C
    engine is faster than it."""
    labels = {
        "rnn": "recurrent layer, forward + backward",
        "step": "whole training step (Adam, clipping)",
    }
    others = [impl for impl in ("numpy", "torch") if impl in speeds["rnn"]]
    names = {"numpy": "NumPy reference", "torch": "PyTorch"}
    header = f"  {'':<38}{'C engine':>9}" + "".join(f"  {names[i]:>16}" for i in others)
    lines = [header]
    for kind in KINDS:
        row = speeds[kind]
        cells = "".join(f"  {fmt(row[i]):>9} {row[i] / row['c']:5.1f}x" for i in others)
        lines.append(f"  {labels[kind]:<38}{fmt(row['c']):>9}{cells}")
    return lines
