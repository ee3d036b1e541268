"""The latency section of bench/report.py: the ``latency-*`` groups of
bench/test_bench_latency.py as speed-ups over crnn (or thread scaling), and
their targets (issue "latency"), PASS or FAIL.

Speed-up ``x impl`` = impl's time / crnn's time, within one group of one
run; the fixed cost is the only absolute time judged.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

# The targets: (group prefix, other impl, least speed-up over it).
STEP_NUMPY = 2.0  # a step <= 0.5x the NumPy step of the cell
STEP_TORCH = 1 / 0.3  # <= 0.3x torch's *Cell
FIXED_COST_S = 2e-6  # a step's fixed cost (H = 8)
SAMPLE = 5.0  # crnn sample --length 10000 vs the generation before
TRAIN_TORCH, TRAIN_REFERENCE, TRAIN_RNN_TORCH = 3.0, 4.0, 3.0
THREAD_SCALING = 1.6  # forward at (50, 32, 92, 128): 2 threads vs 1

LIMITS = {
    "latency-step": {"numpy": STEP_NUMPY, "torch": STEP_TORCH},
    "latency-sample": {"per-char-forward": SAMPLE},
    "latency-train": {"torch": TRAIN_TORCH, "reference": TRAIN_REFERENCE},
    "latency-trainrnn": {"torch": TRAIN_RNN_TORCH},
}


def _prefix(group: str) -> str:
    for p in ("latency-trainrnn", "latency-train", "latency-step", "latency-sample"):
        if group.startswith(p):
            return p
    return group


def _fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def latency_section(rows: List[Dict]) -> Tuple[List[str], List[Dict]]:
    """(report lines, targets) for the rows of the ``latency-*`` groups."""
    groups: Dict[str, Dict[str, Dict]] = {}
    for r in rows:
        if r["group"].startswith("latency-"):
            groups.setdefault(r["group"], {})[r["impl"]] = r
    lines: List[str] = []
    targets: List[Dict] = []
    if not groups:
        return lines, targets

    def add(target: str, where: str, value: float, limit: float, ok: bool, text: str) -> None:
        targets.append(
            {
                "target": target,
                "shape": None,
                "where": where,
                "status": "PASS" if ok else "FAIL",
                "value": value,
                "limit": limit,
                "text": f"{where}: {text}",
            }
        )

    lines.append("speed-up 'x impl' = impl's time / crnn's time (> 1: crnn faster)")
    for group, impls in groups.items():
        if group.startswith("latency-threads"):
            one, two = impls.get("1 thread"), impls.get("2 threads")
            cells = [f"{name} {_fmt(r['time'])}" for name, r in impls.items()]
            if one and two:
                s = one["time"] / two["time"]
                cells.append(f"scaling {s:.2f}x")
                add(
                    f"2 threads >= {THREAD_SCALING:g}x 1 thread",
                    group,
                    s,
                    THREAD_SCALING,
                    s >= THREAD_SCALING,
                    f"{s:.2f}x",
                )
            lines.append(f"  {group:<40} " + "   ".join(cells))
            continue
        crnn = impls.get("crnn")
        cells = [f"crnn {_fmt(crnn['time'])}"] if crnn else []
        for name, r in impls.items():
            if name == "crnn":
                continue
            cell = f"{name} {_fmt(r['time'])}"
            if crnn:
                s = r["time"] / crnn["time"]
                cell += f" (x {s:.2f})"
                limit = LIMITS.get(_prefix(group), {}).get(name)
                if limit is not None:
                    add(
                        f"crnn >= {limit:.2f}x faster than {name}",
                        group,
                        s,
                        limit,
                        s >= limit,
                        f"{s:.2f}x",
                    )
            cells.append(cell)
        if group == "latency-fixed-H8" and crnn:
            add(
                f"a step's fixed cost <= {FIXED_COST_S * 1e6:g} us",
                group,
                crnn["time"],
                FIXED_COST_S,
                crnn["time"] <= FIXED_COST_S,
                _fmt(crnn["time"]),
            )
        lines.append(f"  {group:<40} " + "   ".join(cells))
    return lines, targets
