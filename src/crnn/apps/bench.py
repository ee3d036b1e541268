"""``crnn bench``: how fast crnn runs on this machine, next to the alternatives.

For each problem shape ``(T, B, I, H)`` (time steps, batch, input size,
hidden size) of a one-layer Elman RNN with tanh, it times the forward pass
and the forward + backward pass of

- ``crnn``: the C engine (`crnn.rnn_forward` / `crnn.rnn_backward`);
- ``reference``: the plain-NumPy specification (`crnn.reference`);
- ``torch``: ``torch.nn.RNN`` on the CPU, when PyTorch is importable;

all on the same number of threads (crnn's default, i.e. OpenMP's), and
prints a table of times, crnn's speed-ups and GFLOP/s (matrix products only,
2 FLOP per multiply-add: forward ``2·T·B·H·(I+H)``, forward + backward three
times that). ``--json OUT`` saves every measurement.

This is the self-contained report of the installed package; the repository's
``bench/`` folder holds the full pytest-benchmark suite (with the % of the
machine's FMA peak, oneDNN and thread scaling).
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

from .. import _runtime, functional, reference
from .._version import __version__
from .common import CLIError, format_seconds, positive_float, positive_int

__all__ = ["SHAPES", "QUICK_SHAPES", "flops", "run", "register"]

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
IMPLS = ("crnn", "reference", "torch")


def flops(shape: Sequence[int], mode: str) -> float:
    """Matrix-product FLOP of one call: forward 2·T·B·H·(I+H), fwd+bwd 3x that."""
    T, B, I, H = shape
    fwd = 2.0 * T * B * H * (I + H)
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
) -> Dict[str, Any]:
    """Time every implementation on every shape; return the results as a dict.

    Parameters
    ----------
    shapes : sequence of (T, B, I, H)
    impls : subset of ("crnn", "reference", "torch")
        "torch" is dropped when PyTorch is not importable.
    dtype : float32 or float64
    threads : int or None
        Threads for every implementation; None: crnn's default.
    min_repeat, max_repeat, budget
        Each case runs once to warm up, then at least `min_repeat` and at
        most `max_repeat` times, stopping once `budget` seconds are spent.
    reference_max_flops : float
        Skip the NumPy reference on calls of more FLOP than this.
    progress : callable or None
        Called with a short description of each case before it runs.

    Returns
    -------
    dict
        ``{"machine": {...}, "settings": {...}, "results": [{"shape", "mode",
        "impl", "times", "median", "min", "flops", "gflops"}, ...]}``;
        a skipped case has ``"skipped": reason`` instead of times.
    """
    dt = np.dtype(dtype)
    torch_mod: Any = None
    impls = list(impls)
    if "torch" in impls:
        if importlib.util.find_spec("torch") is None:
            impls.remove("torch")
        else:
            torch_mod = importlib.import_module("torch")
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
    }
    results: List[Dict[str, Any]] = []
    machine["load_before"] = load_average()
    with _Threads(n_threads, torch_mod):
        for shape in shapes:
            args, dout, dh_n = _problem(shape, dt)
            calls = {"crnn": _numpy_calls(functional, args, dout, dh_n)}
            if "reference" in impls:
                calls["reference"] = _numpy_calls(reference, args, dout, dh_n)
            if "torch" in impls:
                calls["torch"] = _torch_calls(args, dout, dh_n)
            for mode in MODES:
                fl = flops(shape, mode)
                for impl in impls:
                    rec: Dict[str, Any] = {
                        "shape": list(shape),
                        "mode": mode,
                        "impl": impl,
                        "flops": fl,
                    }
                    if impl == "reference" and fl > reference_max_flops:
                        rec["skipped"] = f"more than {reference_max_flops:g} FLOP per call"
                        results.append(rec)
                        continue
                    if progress is not None:
                        progress(f"{','.join(map(str, shape))} {MODE_LABEL[mode]} {impl}")
                    times = _measure(calls[impl][mode], min_repeat, max_repeat, budget)
                    med = statistics.median(times)
                    rec.update(times=times, median=med, min=min(times), gflops=fl / med / 1e9)
                    results.append(rec)
            del calls, args, dout, dh_n
    machine["load_after"] = load_average()
    machine["busy"] = busy_machine(
        machine["load_before"], machine["load_after"], os.cpu_count() or 1, n_threads
    )
    return {
        "machine": machine,
        "settings": {
            "dtype": dt.name,
            "threads": n_threads,
            "nonlinearity": "tanh",
            "min_repeat": min_repeat,
            "max_repeat": max_repeat,
            "budget_s": budget,
            "impls": impls,
        },
        "results": results,
    }


def _lookup(
    results: List[Dict[str, Any]],
) -> Dict[Tuple[Tuple[int, ...], str, str], Dict[str, Any]]:
    return {(tuple(r["shape"]), r["mode"], r["impl"]): r for r in results}


def format_report(report: Dict[str, Any]) -> str:
    """The table printed by ``crnn bench``."""
    m, s = report["machine"], report["settings"]
    impls = s["impls"]
    res = _lookup(report["results"])
    shapes: List[Tuple[int, ...]] = []
    for r in report["results"]:
        if tuple(r["shape"]) not in shapes:
            shapes.append(tuple(r["shape"]))
    lines = [
        f"crnn bench: Elman RNN, tanh, {s['dtype']}, time-major (T, B, I, H); "
        f"{s['threads']} thread{'s' if s['threads'] != 1 else ''} for every implementation",
        f"machine: {m['cpu']}, {m['cores']} cores; crnn {m['crnn']} ({m['crnn_isa']} kernels, "
        f"{'OpenMP' if m['crnn_openmp'] else 'no OpenMP'}), NumPy {m['numpy']}"
        + (f", torch {m['torch']}" if m["torch"] else ", torch not installed"),
        "times: median of repeated calls; GFLOP/s: matrix products only (2 FLOP per multiply-add)",
        "",
    ]
    others = [impl for impl in impls if impl != "crnn"]
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
    head += f" {'GFLOP/s':>8}"
    lines += [group.rstrip(), head, "-" * len(head)]
    ratios: Dict[str, List[float]] = {impl: [] for impl in impls if impl != "crnn"}
    for shape in shapes:
        for i, mode in enumerate(MODES):
            c = res.get((shape, mode, "crnn"))
            if c is None:
                continue
            label = ",".join(map(str, shape)) if i == 0 else ""
            row = f"{label:<17} {MODE_LABEL[mode]:<8} {format_seconds(c['median']):>9}"
            for impl in impls:
                if impl == "crnn":
                    continue
                r = res.get((shape, mode, impl))
                row += f" {format_seconds(r['median']) if r and 'median' in r else '-':>10}"
            for impl in impls:
                if impl == "crnn":
                    continue
                r = res.get((shape, mode, impl))
                if r and "median" in r:
                    ratio = r["median"] / c["median"]
                    ratios[impl].append(ratio)
                    row += f" {ratio:>9.1f}x"
                else:
                    row += f" {'-':>10}"
            row += f" {c['gflops']:>8.1f}"
            lines.append(row)
    lines.append("")
    for impl, rs in ratios.items():
        if rs:
            gm = math.exp(sum(math.log(r) for r in rs) / len(rs))
            lines.append(
                f"crnn vs {impl}: {gm:.1f}x faster (geometric mean over {len(rs)} cases; "
                f"from {min(rs):.1f}x to {max(rs):.1f}x)"
            )
    skipped = [r for r in report["results"] if "skipped" in r]
    if skipped:
        lines.append(f"({len(skipped)} reference case(s) skipped: {skipped[0]['skipped']})")
    if m.get("busy"):
        lines.append("")
        lines.append(f"WARNING: {m['busy']}")
    return "\n".join(lines)


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
    if args.quick:
        min_repeat, max_repeat, budget = 2, 5, 0.1
    else:
        min_repeat, max_repeat, budget = 3, 50, args.budget
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder):
            raise CLIError(f"{args.json}: the folder {folder} does not exist")
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
    return 0


_DESCRIPTION = """\
Time a one-layer Elman RNN (tanh) on problem shapes (T, B, I, H) -- time steps,
batch, input size, hidden size; time-major -- forward and forward + backward, with
  crnn       the C engine (crnn.rnn_forward / crnn.rnn_backward),
  reference  the plain-NumPy specification (crnn.reference),
  torch      torch.nn.RNN on the CPU, when PyTorch is installed,
all on the same number of threads (NumPy's BLAS included). It prints each
implementation's median time, how many times faster crnn is than each of the
others, and crnn's GFLOP/s (matrix products only, 2 FLOP per multiply-add:
forward 2*T*B*H*(I+H), forward + backward three times that).

Other processes skew the ratios (by 2x or more on a busy machine): crnn bench compares
the load average with the number of cores before and after the run and warns
when the machine is busy. The repository's bench/ folder holds the full
pytest-benchmark suite (% of the FMA peak, oneDNN, thread scaling)."""


def register(subparsers: Any) -> None:
    """Add ``bench`` to the ``crnn`` parser."""
    p = subparsers.add_parser(
        "bench",
        help="time crnn against the NumPy reference and PyTorch on this machine",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_DESCRIPTION,
        epilog="examples:  crnn bench --quick     crnn bench --json bench.json     "
        "crnn bench --shapes 100,64,128,256",
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
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--no-reference", action="store_true", help="leave the NumPy reference out")
    p.add_argument(
        "--json",
        metavar="OUT",
        default=None,
        help="save every measurement (and the machine's load) as JSON",
    )
    p.set_defaults(func=cmd_bench)
