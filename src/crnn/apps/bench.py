"""``crnn bench``: how fast crnn runs on this machine, next to the alternatives.

For each recurrent cell (``--cells``: the Elman RNN with tanh by default,
the LSTM, the GRU) and each problem shape ``(T, B, I, H)`` (time steps,
batch, input size, hidden size) of one layer, it times the forward pass and
the forward + backward pass of

- ``crnn``: the C engine (`crnn.functional.forward` / `backward`);
- ``reference``: the plain-NumPy specification (`crnn.reference`);
- ``torch``: ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` on the CPU, when PyTorch is
  importable;
- ``onednn``: oneDNN's RNN primitives (forward inference; forward training +
  backward), when the repository's benchmark harness (``bench/native.py``)
  is found and builds against an installed oneDNN (``apt-get install
  libdnnl-dev``);

all on the same number of threads (crnn's default, i.e. OpenMP's), and
prints per cell a table of times, crnn's speed-ups and GFLOP/s (matrix
products only, 2 FLOP per multiply-add: forward ``2·T·B·G·(I+H)`` with
``G = gates·H``, forward + backward three times that) and, when the harness
can measure this machine's FP32 FMA peak (``bench/fma_peak.c``), crnn's
percentage of it. ``--json OUT`` saves every measurement, ``--plot OUT``
draws the GFLOP/s (with matplotlib).

This is the self-contained report of the installed package; the repository's
``bench/`` folder holds the full pytest-benchmark suite (thread scaling,
memory, the performance targets).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import _runtime, cells, functional, reference
from .._version import __version__
from .common import CLIError, format_seconds, positive_float, positive_int

__all__ = [
    "SHAPES",
    "QUICK_SHAPES",
    "CELLS",
    "flops",
    "run",
    "format_report",
    "plot_report",
    "register",
]

Shape = Tuple[int, int, int, int]

# (T, B, I, H): small-device inference, training sizes, streaming batch 1,
# large training (the performance issue's shapes).
SHAPES: List[Shape] = [
    (672, 1, 32, 32),
    (96, 1, 64, 64),
    (100, 32, 32, 64),
    (100, 64, 128, 256),
    (200, 256, 64, 128),
    (1000, 1, 32, 128),
    (50, 64, 512, 1024),
    (50, 32, 1760, 1760),
]
QUICK_SHAPES: List[Shape] = [(96, 1, 64, 64), (100, 32, 32, 64), (1000, 1, 32, 128)]
MODES = ("fwd", "fwdbwd")
MODE_LABEL = {"fwd": "forward", "fwdbwd": "fwd+bwd"}
IMPLS = ("crnn", "reference", "torch", "onednn")
# The cells crnn bench can time: one input, one recurrent weight and two
# biases (every registered cell without an output layer).
CELLS: Tuple[str, ...] = tuple(
    spec.name for spec in cells.REGISTRY.values() if not spec.uses_output_size
)
ONEDNN_CELLS = ("rnn", "lstm", "gru")  # the oneDNN harness's cells
_BENCH_DIR_VAR = "CRNN_BENCH_DIR"


def flops(shape: Sequence[int], mode: str, gates: int = 1) -> float:
    """Matrix-product FLOP of one call: forward 2·T·B·G·(I+H) with G =
    gates·H, fwd+bwd 3x that."""
    T, B, I, H = shape
    fwd = 2.0 * T * B * gates * H * (I + H)
    return fwd if mode == "fwd" else 3.0 * fwd


def _problem(shape: Shape, dtype: np.dtype, seed: int = 0):
    T, B, I, H = shape
    rng = np.random.default_rng(seed)
    k = 1.0 / math.sqrt(H)

    def u(*s):
        return rng.uniform(-k, k, size=s).astype(dtype)

    args = dict(
        x=rng.standard_normal((T, B, I)).astype(dtype),
        h0=(0.5 * rng.standard_normal((B, H))).astype(dtype),
        weight_ih=u(H, I),
        weight_hh=u(H, H),
        bias_ih=u(H),
        bias_hh=u(H),
    )
    dout = rng.standard_normal((T, B, H)).astype(dtype)
    dh_n = rng.standard_normal((B, H)).astype(dtype)
    return args, dout, dh_n


def _numpy_calls(mod: Any, args: Dict[str, np.ndarray], dout, dh_n):
    def fwd():
        return mod.rnn_forward(**args, nonlinearity="tanh")[0]

    def fwdbwd():
        _, _, cache = mod.rnn_forward(**args, nonlinearity="tanh")
        return mod.rnn_backward(dout, dh_n, cache).dx

    return {"fwd": fwd, "fwdbwd": fwdbwd}


def _torch_calls(args: Dict[str, np.ndarray], dout, dh_n):
    import torch

    T, B, I = args["x"].shape
    H = args["weight_hh"].shape[0]
    rnn = torch.nn.RNN(I, H, nonlinearity="tanh")
    if args["x"].dtype == np.float64:
        rnn = rnn.double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(rnn, name + "_l0").copy_(torch.from_numpy(args[name]))
    x = torch.from_numpy(args["x"])
    h0 = torch.from_numpy(args["h0"])[None]
    dout_t = torch.from_numpy(dout)
    dh_n_t = torch.from_numpy(dh_n)[None]

    def fwd():
        with torch.no_grad():
            return rnn(x, h0)[0]

    def fwdbwd():
        xg = x.detach().requires_grad_(True)
        rnn.zero_grad(set_to_none=True)
        out, h_n = rnn(xg, h0)
        torch.autograd.backward([out, h_n], [dout_t, dh_n_t])
        return xg.grad

    return {"fwd": fwd, "fwdbwd": fwdbwd}


class _CellProblem:
    """One layer of `spec` on `shape`: inputs, weights (PyTorch-style
    initialisation) and the upstream gradients of every output."""

    def __init__(self, spec: Any, shape: Shape, dtype: np.dtype, seed: int = 0) -> None:
        T, B, I, H = shape
        G = spec.gates * H
        rng = np.random.default_rng(seed)
        k = 1.0 / math.sqrt(H)
        sizes = {"G": G, "I": I, "H": H}
        self.spec, self.shape = spec, shape
        self.x = rng.standard_normal((T, B, I)).astype(dtype)
        self.states = [(0.5 * rng.standard_normal((B, H))).astype(dtype) for _ in spec.states]
        self.weights = {
            w.name: rng.uniform(-k, k, size=tuple(sizes[d] for d in w.shape)).astype(dtype)
            for w in spec.weights
        }
        self.dout = rng.standard_normal((T, B, H)).astype(dtype)
        self.dstates = [rng.standard_normal((B, H)).astype(dtype) for _ in spec.states]


def _engine_calls(mod: Any, p: _CellProblem) -> Dict[str, Callable[[], Any]]:
    """forward and forward + backward of crnn's C engine or the reference."""
    name = p.spec.name

    def fwd():
        return mod.forward(name, p.x, p.states, p.weights)[0]

    def fwdbwd():
        _, _, cache = mod.forward(name, p.x, p.states, p.weights)
        return mod.backward(p.dout, p.dstates, cache).dx

    return {"fwd": fwd, "fwdbwd": fwdbwd}


def _torch_cell_calls(p: _CellProblem) -> Dict[str, Callable[[], Any]]:
    """The same problem on torch.nn.<spec.torch_module> (one layer, CPU)."""
    import torch

    T, B, I, H = p.shape
    module = getattr(torch.nn, p.spec.torch_module)(I, H)
    if p.x.dtype == np.float64:
        module = module.double()
    with torch.no_grad():
        for name, w in p.weights.items():
            getattr(module, name + "_l0").copy_(torch.from_numpy(w))
    x = torch.from_numpy(p.x)
    states = [torch.from_numpy(s)[None] for s in p.states]
    state = tuple(states) if len(states) > 1 else states[0]
    grads = [torch.from_numpy(p.dout)] + [torch.from_numpy(d)[None] for d in p.dstates]

    def fwd():
        with torch.no_grad():
            return module(x, state)[0]

    def fwdbwd():
        xg = x.detach().requires_grad_(True)
        module.zero_grad(set_to_none=True)
        out, final = module(xg, state)
        finals = list(final) if isinstance(final, tuple) else [final]
        torch.autograd.backward([out] + finals, grads)
        return xg.grad

    return {"fwd": fwd, "fwdbwd": fwdbwd}


def _bench_helpers() -> Tuple[Any, Optional[str]]:
    """The repository's bench/native.py (the oneDNN harness and the FMA
    peak) as a module, or (None, why not). Found through $CRNN_BENCH_DIR, or
    next to the package in a source checkout; imported only when asked."""
    import importlib.util as ilu

    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.environ.get(_BENCH_DIR_VAR, "")]
    candidates.append(os.path.join(here, "..", "..", "..", "bench"))
    for d in candidates:
        path = os.path.join(d, "native.py") if d else ""
        if path and os.path.isfile(path):
            spec = ilu.spec_from_file_location("crnn_bench_native", path)
            if spec is None or spec.loader is None:
                continue
            module = ilu.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception as exc:  # a broken checkout: report it, time the rest
                return None, f"{path}: {exc}"
            return module, None
    return None, (
        "oneDNN and the FMA peak need the repository's bench/ folder "
        f"(a source checkout, or ${_BENCH_DIR_VAR})"
    )


def _onednn_calls(
    native: Any, p: _CellProblem, threads: int
) -> Tuple[Dict[str, Callable[[], Any]], Callable[[], None]]:
    """oneDNN's primitives on the problem (float32): forward inference, and
    forward training + backward; handles made before timing. Returns the
    calls and a function that frees the handles."""
    T, B, I, H = p.shape
    inputs: Dict[str, Any] = dict(p.weights, x=p.x, h0=p.states[0], dout=p.dout, dh_n=p.dstates[0])
    if len(p.states) > 1:
        inputs.update(c0=p.states[1], dc_n=p.dstates[1])
    handles = {}
    for mode, backward in (("fwd", False), ("fwdbwd", True)):
        h = native.OneDNNRNN(T, B, I, H, threads=threads, backward=backward, cell=p.spec.name)
        h.set_inputs(**inputs)
        handles[mode] = h

    def close() -> None:
        for h in handles.values():
            h.close()

    return {mode: h.run for mode, h in handles.items()}, close


def fma_peak(native: Any, threads: int) -> Optional[float]:
    """This machine's FP32 FMA peak (GFLOP/s) on `threads` threads: the
    larger of the measured all-thread figure and `threads` x the one-thread
    figure (a busy machine lowers the former), or None if not measurable."""
    try:
        got = native.fma_peak(threads=threads)
    except Exception:  # no compiler, or the helper failed: no % of peak
        return None
    if not isinstance(got, dict) or "gflops_1thread" not in got:
        return None
    one = max(got["gflops_1thread"], got.get("gflops_1thread_cpu") or 0.0)
    every = max(got.get("gflops_all_threads") or 0.0, got.get("gflops_all_threads_cpu") or 0.0)
    return max(every, threads * one) or None


def _measure(
    f: Callable[[], Any], min_repeat: int, max_repeat: int, budget: float, slow: float = 5.0
) -> List[float]:
    """Times of repeated calls of f after one untimed warm-up call (which
    also pays one-time costs, such as PyTorch starting its autograd
    threads): at least `min_repeat`, at most `max_repeat`, stopping once
    `budget` seconds are spent. A warm-up longer than `slow` seconds (the
    NumPy reference on the largest shapes) is taken as the only time."""
    t0 = time.perf_counter()
    f()
    first = time.perf_counter() - t0
    if first > max(slow, budget):
        return [first]
    times: List[float] = []
    while len(times) < max_repeat and (len(times) < min_repeat or sum(times) < budget):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return times


class _Threads:
    """Run every implementation on `n` threads: crnn, torch and NumPy's BLAS."""

    def __init__(self, n: int, torch_mod: Any) -> None:
        self.n = n
        self.torch = torch_mod
        self._blas = _runtime.limit_blas_threads(n)

    def __enter__(self) -> "_Threads":
        _runtime.set_num_threads(self.n)
        if self.torch is not None:
            self._torch_saved = self.torch.get_num_threads()
            self.torch.set_num_threads(self.n)
        self._blas.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        _runtime.set_num_threads(None)
        if self.torch is not None:
            self.torch.set_num_threads(self._torch_saved)
        self._blas.__exit__(*exc)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> Optional[float]:
    """The 1-minute load average (runnable processes), or None where unknown."""
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return None


def busy_machine(
    before: Optional[float], after: Optional[float], cores: int, threads: int
) -> Optional[str]:
    """A warning when other processes kept at least half the cores busy, else None.

    `before` is the load average before the run; `after` the one after it,
    which counts the run's own `threads` too (they are subtracted).
    """
    if before is None and after is None:
        return None
    limit = 0.5 * max(1, cores)
    other_after = None if after is None else max(0.0, after - threads)
    if (before is not None and before > limit) or (other_after is not None and other_after > limit):
        seen = ", ".join(
            f"{v:.1f} {when}" for v, when in ((before, "before"), (after, "after")) if v is not None
        )
        return (
            f"the machine is busy: load average {seen} the run, on {cores} cores (the run "
            f"itself uses {threads} thread{'s' if threads != 1 else ''}). Other processes "
            f"take cores from every implementation unevenly, and the ratios then move by 2x "
            f"or more: run again on an idle machine"
        )
    return None


def run(
    shapes: Sequence[Shape],
    impls: Sequence[str] = IMPLS,
    dtype: Any = np.float32,
    threads: Optional[int] = None,
    min_repeat: int = 3,
    max_repeat: int = 50,
    budget: float = 1.0,
    reference_max_flops: float = math.inf,
    progress: Optional[Callable[[str], None]] = None,
    cells_: Sequence[str] = ("rnn",),
    peak: bool = False,
) -> Dict[str, Any]:
    """Time every implementation on every cell and shape; return the results.

    Parameters
    ----------
    shapes : sequence of (T, B, I, H)
    impls : subset of ("crnn", "reference", "torch", "onednn")
        "torch" is dropped when PyTorch is not importable, "onednn" when the
        oneDNN harness is not available (the reason is in the report's
        ``settings["unavailable"]``); oneDNN times float32 only.
    dtype : float32 or float64
    threads : int or None
        Threads for every implementation; None: crnn's default.
    min_repeat, max_repeat, budget
        Each case runs once to warm up, then at least `min_repeat` and at
        most `max_repeat` times, stopping once `budget` seconds are spent.
        The implementations of a cell, shape and pass run one after the
        other, so they see the same state of the machine.
    reference_max_flops : float
        Skip the NumPy reference on calls of more FLOP than this.
    progress : callable or None
        Called with a short description of each case before it runs.
    cells_ : sequence of str
        The cells to time (names of `CELLS`).
    peak : bool
        Measure the FP32 FMA peak (needs the oneDNN harness's folder, see
        `_bench_helpers`); ``machine["peak_gflops"]`` is None otherwise.

    Returns
    -------
    dict
        ``{"machine": {...}, "settings": {...}, "results": [{"cell", "shape",
        "mode", "impl", "times", "median", "min", "flops", "gflops"}, ...]}``;
        a skipped case has ``"skipped": reason`` instead of times.
    """
    dt = np.dtype(dtype)
    specs = [cells.get(name) for name in cells_]
    torch_mod: Any = None
    impls = list(impls)
    unavailable: Dict[str, str] = {}
    if "torch" in impls:
        if importlib.util.find_spec("torch") is None:
            impls.remove("torch")
            unavailable["torch"] = "PyTorch is not installed"
        else:
            torch_mod = importlib.import_module("torch")
    native: Any = None
    if "onednn" in impls or peak:
        native, why = _bench_helpers()
        if native is None:
            unavailable["onednn"] = why or "not found"
        elif "onednn" in impls:
            why = native.onednn_unavailable_reason()
            if why:
                unavailable["onednn"] = why
            elif dt != np.float32:
                unavailable["onednn"] = "oneDNN's RNN primitives have no float64"
        if "onednn" in unavailable and "onednn" in impls:
            impls.remove("onednn")
    n_threads = threads
    if n_threads is None:
        _runtime.set_num_threads(None)
        n_threads = _runtime.get_num_threads()
    info = _runtime.build_info()
    machine = {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "crnn": __version__,
        "crnn_isa": info["isa"],
        "crnn_openmp": info["openmp"],
        "crnn_compiler": info["compiler"],
        "torch": None if torch_mod is None else torch_mod.__version__,
        "onednn": native.onednn_version() if "onednn" in impls else None,
        "peak_gflops": None,
    }
    results: List[Dict[str, Any]] = []
    machine["load_before"] = load_average()
    with _Threads(n_threads, torch_mod):
        if peak and native is not None:
            machine["peak_gflops"] = fma_peak(native, n_threads)
        for spec in specs:
            for shape in shapes:
                _time_problem(
                    spec,
                    shape,
                    dt,
                    impls,
                    native,
                    n_threads,
                    results,
                    progress,
                    (min_repeat, max_repeat, budget),
                    reference_max_flops,
                )
    machine["load_after"] = load_average()
    machine["busy"] = busy_machine(
        machine["load_before"], machine["load_after"], os.cpu_count() or 1, n_threads
    )
    return {
        "machine": machine,
        "settings": {
            "dtype": dt.name,
            "threads": n_threads,
            "cells": [spec.name for spec in specs],
            "nonlinearity": "tanh",
            "min_repeat": min_repeat,
            "max_repeat": max_repeat,
            "budget_s": budget,
            "impls": impls,
            "unavailable": unavailable,
        },
        "results": results,
    }


def _nothing() -> None:
    pass


def _time_problem(
    spec: Any,
    shape: Shape,
    dt: np.dtype,
    impls: Sequence[str],
    native: Any,
    n_threads: int,
    results: List[Dict[str, Any]],
    progress: Optional[Callable[[str], None]],
    repeats: Tuple[int, int, float],
    reference_max_flops: float,
) -> None:
    """Every implementation on one cell and shape, into `results`."""
    p = _CellProblem(spec, shape, dt)
    calls: Dict[str, Dict[str, Callable[[], Any]]] = {"crnn": _engine_calls(functional, p)}
    close: Callable[[], None] = _nothing
    if "reference" in impls:
        calls["reference"] = _engine_calls(reference, p)
    if "torch" in impls and spec.torch_module:
        calls["torch"] = _torch_cell_calls(p)
    if "onednn" in impls and spec.name in ONEDNN_CELLS:
        calls["onednn"], close = _onednn_calls(native, p, n_threads)
    try:
        for mode in MODES:
            fl = flops(shape, mode, spec.gates)
            for impl in impls:
                rec: Dict[str, Any] = {
                    "cell": spec.name,
                    "shape": list(shape),
                    "mode": mode,
                    "impl": impl,
                    "flops": fl,
                }
                if impl not in calls:
                    rec["skipped"] = f"no {spec.name} in {impl}"
                    results.append(rec)
                    continue
                if impl == "reference" and fl > reference_max_flops:
                    rec["skipped"] = f"more than {reference_max_flops:g} FLOP per call"
                    results.append(rec)
                    continue
                if progress is not None:
                    progress(f"{spec.name} {','.join(map(str, shape))} {MODE_LABEL[mode]} {impl}")
                times = _measure(calls[impl][mode], *repeats)
                med = statistics.median(times)
                rec.update(times=times, median=med, min=min(times), gflops=fl / med / 1e9)
                results.append(rec)
    finally:
        close()


def _lookup(
    results: List[Dict[str, Any]],
) -> Dict[Tuple[str, Tuple[int, ...], str, str], Dict[str, Any]]:
    return {(r.get("cell", "rnn"), tuple(r["shape"]), r["mode"], r["impl"]): r for r in results}


def _cell_label(name: str) -> str:
    spec = cells.get(name)
    return "Elman RNN, tanh" if name == "rnn" else f"{spec.title} ({spec.gates} gates)"


def format_report(report: Dict[str, Any]) -> str:
    """The tables printed by ``crnn bench``: one per cell."""
    m, s = report["machine"], report["settings"]
    impls = s["impls"]
    res = _lookup(report["results"])
    peak = m.get("peak_gflops")
    order: List[Tuple[str, Tuple[int, ...]]] = []
    for r in report["results"]:
        key = (r.get("cell", "rnn"), tuple(r["shape"]))
        if key not in order:
            order.append(key)
    cell_names: List[str] = []
    for name, _ in order:
        if name not in cell_names:
            cell_names.append(name)
    peers = ", ".join(
        f"{impl} {m[impl]}" if m.get(impl) else f"{impl} not available"
        for impl in ("torch", "onednn")
        if impl in impls or impl in s.get("unavailable", {})
    )
    lines = [
        f"crnn bench: {'; '.join(_cell_label(c) for c in cell_names) or 'no cell'}, "
        f"{s['dtype']}, time-major (T, B, I, H); "
        f"{s['threads']} thread{'s' if s['threads'] != 1 else ''} for every implementation",
        f"machine: {m['cpu']}, {m['cores']} cores; crnn {m['crnn']} ({m['crnn_isa']} kernels, "
        f"{'OpenMP' if m['crnn_openmp'] else 'no OpenMP'}), NumPy {m['numpy']}"
        + (f", {peers}" if peers else ""),
        "times: median of repeated calls; GFLOP/s: matrix products only (2 FLOP per multiply-add)"
        + (
            f"; % peak: of this machine's FP32 FMA peak on {s['threads']} "
            f"thread{'s' if s['threads'] != 1 else ''}, {peak:.0f} GFLOP/s"
            if peak
            else ""
        ),
    ]
    for impl, why in s.get("unavailable", {}).items():
        lines.append(f"{impl}: not timed ({why})")
    others = [impl for impl in impls if impl != "crnn"]
    ratios: Dict[str, List[float]] = {impl: [] for impl in others}
    for name in cell_names:
        lines += ["", _cell_label(name)]
        # Two header lines: what the columns measure, then which implementation.
        lead = f"{'':<17} {'':<8} "
        times_w = 9 + 11 * len(others)
        group = lead + f"{'median time per call' if times_w >= 22 else 'median time':^{times_w}}"
        if others:
            ratio_w = 11 * len(others) - 1
            label = "crnn is faster than" if ratio_w >= 21 else "speed-up"
            group += f" {label:^{ratio_w}}"
        head = f"{'T,B,I,H':<17} {'pass':<8} {'crnn':>9}"
        for impl in others:
            head += f" {impl:>10}"
        for impl in others:
            head += f" {impl:>10}"
        head += f" {'GFLOP/s':>8}" + (f" {'% peak':>7}" if peak else "")
        lines += [group.rstrip(), head, "-" * len(head)]
        for cell_name, shape in order:
            if cell_name != name:
                continue
            for i, mode in enumerate(MODES):
                c = res.get((name, shape, mode, "crnn"))
                if c is None or "median" not in c:
                    continue
                label = ",".join(map(str, shape)) if i == 0 else ""
                row = f"{label:<17} {MODE_LABEL[mode]:<8} {format_seconds(c['median']):>9}"
                for impl in others:
                    r = res.get((name, shape, mode, impl))
                    row += f" {format_seconds(r['median']) if r and 'median' in r else '-':>10}"
                for impl in others:
                    r = res.get((name, shape, mode, impl))
                    if r and "median" in r:
                        ratio = r["median"] / c["median"]
                        ratios[impl].append(ratio)
                        row += f" {ratio:>9.2f}x" if ratio < 10 else f" {ratio:>9.1f}x"
                    else:
                        row += f" {'-':>10}"
                row += f" {c['gflops']:>8.1f}"
                if peak:
                    row += f" {100 * c['gflops'] / peak:>6.0f}%"
                lines.append(row)
    lines.append("")
    for impl, rs in ratios.items():
        if rs:
            gm = math.exp(sum(math.log(r) for r in rs) / len(rs))
            lines.append(
                f"crnn vs {impl}: {gm:.2f}x faster (geometric mean over {len(rs)} cases; "
                f"from {min(rs):.2f}x to {max(rs):.2f}x)"
            )
    skipped = [r for r in report["results"] if "skipped" in r and r["impl"] == "reference"]
    if skipped:
        lines.append(f"({len(skipped)} reference case(s) skipped: {skipped[0]['skipped']})")
    if m.get("busy"):
        lines.append("")
        lines.append(f"WARNING: {m['busy']}")
    return "\n".join(lines)


def plot_report(report: Dict[str, Any], path: str) -> None:
    """Draws crnn's and the others' GFLOP/s, one panel per cell and pass,
    into `path` (any format matplotlib writes, by its extension)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, m = report["settings"], report["machine"]
    res = _lookup(report["results"])
    names = list(dict.fromkeys(r.get("cell", "rnn") for r in report["results"]))
    impls = s["impls"]
    fig, axes = plt.subplots(len(names), len(MODES), figsize=(11, 3.2 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        shapes = list(
            dict.fromkeys(
                tuple(r["shape"]) for r in report["results"] if r.get("cell", "rnn") == name
            )
        )
        for col, mode in enumerate(MODES):
            ax = axes[row][col]
            width = 0.8 / max(1, len(impls))
            for k, impl in enumerate(impls):
                vals = [(res.get((name, sh, mode, impl)) or {}).get("gflops", 0.0) for sh in shapes]
                ax.bar([i + k * width for i in range(len(shapes))], vals, width, label=impl)
            if m.get("peak_gflops"):
                ax.axhline(m["peak_gflops"], color="k", linestyle="--", linewidth=1)
            ax.set_xticks([i + 0.4 - width / 2 for i in range(len(shapes))])
            ax.set_xticklabels([",".join(map(str, sh)) for sh in shapes], fontsize=7)
            ax.set_title(f"{_cell_label(name)}: {MODE_LABEL[mode]}", fontsize=9)
            ax.set_ylabel("GFLOP/s")
            if row == 0 and col == 0:
                ax.legend(fontsize=7)
    fig.suptitle(
        f"crnn bench, {s['dtype']}, {s['threads']} thread(s)"
        + (f"; dashed: FMA peak {m['peak_gflops']:.0f} GFLOP/s" if m.get("peak_gflops") else ""),
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _parse_cells(text: str) -> Tuple[str, ...]:
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in CELLS]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"cells are a comma-separated list of {', '.join(CELLS)}; got {text!r}"
        )
    return tuple(dict.fromkeys(names))


def _parse_shape(text: str) -> Shape:
    parts = text.replace("x", ",").split(",")
    try:
        vals = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a shape is T,B,I,H (four integers), got {text!r}"
        ) from None
    if len(vals) != 4 or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"a shape is T,B,I,H (four integers >= 1), got {text!r}")
    return vals


def cmd_bench(args: argparse.Namespace) -> int:
    if args.shapes:
        shapes = list(args.shapes)
    elif args.quick:
        shapes = QUICK_SHAPES
    else:
        shapes = SHAPES
    impls = ["crnn"]
    if not args.no_reference:
        impls.append("reference")
    if not args.no_torch:
        impls.append("torch")
    if not args.no_onednn:
        impls.append("onednn")
    if args.quick:
        min_repeat, max_repeat, budget = 2, 5, 0.1
    else:
        min_repeat, max_repeat, budget = 3, 50, args.budget
    for out in (args.json, args.plot):
        folder = os.path.dirname(os.path.abspath(out)) if out else ""
        if out and not os.path.isdir(folder):
            raise CLIError(f"{out}: the folder {folder} does not exist")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise CLIError("--plot needs matplotlib (pip install matplotlib)")
    tty = sys.stderr.isatty()
    threads = args.threads if args.threads is not None else _runtime.get_num_threads()
    warning = busy_machine(load_average(), None, os.cpu_count() or 1, threads)
    if warning:
        print(f"crnn bench: warning: {warning}", file=sys.stderr)

    def progress(msg: str) -> None:
        if tty:
            sys.stderr.write("\r\033[K  timing " + msg)
            sys.stderr.flush()

    report = run(
        shapes,
        impls,
        dtype=np.dtype(args.dtype),
        threads=args.threads,
        min_repeat=min_repeat,
        max_repeat=max_repeat,
        budget=budget,
        progress=progress,
        cells_=args.cells,
        peak=True,
    )
    if tty:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
    print(format_report(report))
    if args.json:
        try:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(report, f, indent=1)
                f.write("\n")
        except OSError as exc:
            raise CLIError(f"{args.json}: cannot write it ({exc.strerror or exc})") from None
        print(f"\nsaved {args.json}")
    if args.plot:
        try:
            plot_report(report, args.plot)
        except (OSError, ValueError) as exc:
            raise CLIError(f"{args.plot}: cannot draw it ({exc})") from None
        print(f"\nsaved {args.plot}")
    return 0


_DESCRIPTION = """\
Time one layer of recurrent cells (--cells; default the Elman RNN with tanh) on
problem shapes (T, B, I, H) -- time steps, batch, input size, hidden size;
time-major -- forward and forward + backward, with
  crnn       the C engine (crnn.functional.forward / backward),
  reference  the plain-NumPy specification (crnn.reference),
  torch      torch.nn.RNN / LSTM / GRU on the CPU, when PyTorch is installed,
  onednn     oneDNN's RNN primitives (float32), when the repository's bench/
             harness is found (a source checkout, or $CRNN_BENCH_DIR) and
             oneDNN is installed (apt-get install libdnnl-dev),
all on the same number of threads (NumPy's BLAS included). It prints, per cell,
each implementation's median time, how many times faster crnn is than each of
the others, and crnn's GFLOP/s (matrix products only, 2 FLOP per multiply-add:
forward 2*T*B*G*(I+H) with G = gates*H, forward + backward three times that) and,
with the bench/ harness, its % of this machine's FP32 FMA peak.

Other processes skew the ratios (by 2x or more on a busy machine): crnn bench compares
the load average with the number of cores before and after the run and warns
when the machine is busy. The repository's bench/ folder holds the full
pytest-benchmark suite (thread scaling, memory, the performance targets)."""


def register(subparsers: Any) -> None:
    """Add ``bench`` to the ``crnn`` parser."""
    p = subparsers.add_parser(
        "bench",
        help="time crnn against the NumPy reference, PyTorch and oneDNN on this machine",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_DESCRIPTION,
        epilog="examples:  crnn bench --quick     crnn bench --json bench.json     "
        "crnn bench --shapes 100,64,128,256     crnn bench --cells rnn,lstm,gru --plot bench.png",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"only {len(QUICK_SHAPES)} small shapes "
        f"({'; '.join(','.join(map(str, s)) for s in QUICK_SHAPES)}), few repeats: "
        f"seconds (the default times the {len(SHAPES)} shapes of the performance "
        f"issue, from small-device inference to large training)",
    )
    p.add_argument(
        "--shapes",
        type=_parse_shape,
        nargs="+",
        metavar="T,B,I,H",
        help="time these shapes instead (four integers >= 1 each)",
    )
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="the floating-point type (default float32)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="threads for every implementation (default: crnn's default, "
        f"here {_runtime.get_num_threads()})",
    )
    p.add_argument(
        "--budget",
        type=positive_float,
        default=1.0,
        metavar="S",
        help="seconds of repeated calls per case (default 1)",
    )
    p.add_argument(
        "--cells",
        type=_parse_cells,
        default=("rnn",),
        metavar="CELLS",
        help=f"comma-separated cells to time, of {', '.join(CELLS)} (default rnn), "
        "e.g. rnn,lstm,gru",
    )
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--no-onednn", action="store_true", help="leave oneDNN out")
    p.add_argument("--no-reference", action="store_true", help="leave the NumPy reference out")
    p.add_argument(
        "--json",
        metavar="OUT",
        default=None,
        help="save every measurement (and the machine's load) as JSON",
    )
    p.add_argument(
        "--plot",
        metavar="OUT",
        default=None,
        help="draw the GFLOP/s of every cell, shape and pass into OUT (e.g. bench.png; "
        "needs matplotlib)",
    )
    p.set_defaults(func=cmd_bench)
