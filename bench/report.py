#!/usr/bin/env python3
"""crnn's benchmark report: times, speed-ups, GFLOP/s, % of the FP32 FMA
peak, peak memory, and the performance targets, PASS or FAIL.

Usage::

    python bench/report.py                  # run everything (~5-10 min), print, save JSON
    python bench/report.py --quick          # a subset with fewer rounds (~1-2 min)
    python bench/report.py --json out.json  # report an existing pytest-benchmark JSON
                                            # (from pytest bench/ --benchmark-only
                                            #  --benchmark-json=out.json)

Steps (each can be skipped, see --help):

1. the FP32 FMA peak, measured by bench/fma_peak.c (bench/native.py),
   before and after the benchmarks (the best figures are kept);
2. the benchmarks: ``pytest bench/ --benchmark-only --benchmark-json=...``
   in a subprocess (its progress goes to stderr);
3. peak memory of forward + backward, one fresh process per measurement
   (bench/memory.py).

Then it prints, per shape, each implementation's time (forward, and
forward + backward), crnn's speed-up over each (other's time / crnn's
time: > 1 means crnn is faster), crnn's GFLOP/s and its percentage of the
FMA peak; the same for the LSTM and the GRU (crnn, torch and oneDNN);
thread scaling, the GIL check, memory; and the targets. The
report is saved as JSON (default bench/results/latest.json; the raw
pytest-benchmark JSON is saved next to it, ``*.pytest-benchmark.json``).

All times are the chosen statistic (--stat, default min) over the rounds
of one benchmark; ratios are taken between benchmarks of the same run,
since absolute times drift on a shared machine. GFLOP/s count only the
matrix products: forward 2·T·B·H·(I+H), forward + backward three times
that (bench/problems.py explains the count). The % of peak divides by the
peak of the thread count used, taken as the larger of the measured
all-thread figure and n × the single-thread figure (a busy machine lowers
the former; the latter may include single-core turbo, so the % is, if
anything, understated).

``main(argv=None)`` is the entry point (``crnn bench`` calls it); it needs
no pytest itself, only to run the benchmarks.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT_DIR = os.path.dirname(BENCH_DIR)
if BENCH_DIR not in sys.path:
    sys.path.insert(0, BENCH_DIR)

DEFAULT_OUT = os.path.join(BENCH_DIR, "results", "latest.json")
IMPL_ORDER = ("crnn", "reference", "torch", "onednn")
MODE_LABEL = {"fwd": "fwd", "fwdbwd": "fwd+bwd"}

# The targets (issue "performance"), all in the same run at the default
# thread count.
TORCH_SPEEDUP_SMALL_H = 3.0  # fwd+bwd vs torch, H <= 256
TORCH_SPEEDUP_LARGE_H = 2.0  # fwd+bwd vs torch, H >= 1024
REFERENCE_SPEEDUP = 2.0  # fwd and fwd+bwd vs crnn.reference, every shape
PEAK_SHAPE, PEAK_FRACTION = (50, 64, 512, 1024), 0.50  # forward, % of FMA peak
STREAM_SHAPE, STREAM_SECONDS = (1000, 1, 32, 128), 0.5e-3  # forward time
MEMORY_RATIO = 1.3  # peak / unavoidable bytes, fwd+bwd

BUSY_LOAD = 0.5  # load average per core above which the report warns


# --------------------------------------------------------------------------
# formatting


def fmt_time(seconds):
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            v = seconds / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{seconds / 1e-9:.0f} ns"


def fmt_ratio(r):
    return "-" if r is None else (f"{r:.2f}x" if r < 100 else f"{r:.0f}x")


def shape_str(shape):
    return ",".join(str(s) for s in shape)


def table(header, rows, align=None):
    """Text table; align is a string of 'l'/'r' per column."""
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    align = align or "l" + "r" * (len(header) - 1)

    def line(cells):
        return "  ".join(
            c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align)
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


# --------------------------------------------------------------------------
# data collection


def run_pytest(json_path, quick=False, extra_args=(), log=sys.stderr):
    """pytest bench/ --benchmark-only into json_path; returns pytest's exit code."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        BENCH_DIR,
        "--benchmark-only",
        f"--benchmark-json={json_path}",
        "--benchmark-columns=min,median,stddev,rounds",
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    env = dict(os.environ)
    if quick:
        env["CRNN_BENCH_QUICK"] = "1"
        cmd += ["--benchmark-max-time=0.2", "--benchmark-min-rounds=3"]
    cmd += list(extra_args)
    print("$ " + " ".join(cmd), file=log, flush=True)
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    for line in proc.stdout:
        log.write(line)
        log.flush()
    return proc.wait()


def load_benchmarks(path, stat="min"):
    """Rows (dicts) of a pytest-benchmark JSON written by bench/'s tests."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    rows = []
    for b in data.get("benchmarks", []):
        extra = b.get("extra_info") or {}
        if "impl" not in extra:
            continue
        st = b["stats"]
        t = float(st[stat])
        row = {
            "name": b.get("name"),
            "group": b.get("group") or "",
            "impl": extra["impl"],
            "mode": extra.get("mode"),
            "shape": tuple(extra.get("shape") or ()),
            "dtype": extra.get("dtype", "float32"),
            "threads": extra.get("threads"),
            "flops": extra.get("flops"),
            "time": t,
            "min": st["min"],
            "median": st["median"],
            "mean": st["mean"],
            "stddev": st["stddev"],
            "rounds": st["rounds"],
        }
        row["gflops"] = row["flops"] / t * 1e-9 if row["flops"] and t > 0 else None
        rows.append(row)
    return data, rows


def measure_peak(quick=False):
    import native

    try:
        if quick:
            return native.fma_peak(seconds=0.02, repetitions=10)
        return native.fma_peak(seconds=0.05, repetitions=20)
    except Exception as exc:  # noqa: BLE001 - no compiler, etc.
        return {"error": str(exc)}


def combine_peaks(measurements):
    """Best figures over several fma_peak() runs."""
    ok = [m for m in measurements if m and "error" not in m]
    if not ok:
        errors = [m.get("error") for m in measurements if m]
        return {"error": errors[0] if errors else "not measured"}
    best = dict(ok[0])
    for key in (
        "gflops_1thread",
        "gflops_all_threads",
        "gflops_1thread_cpu",
        "gflops_all_threads_cpu",
    ):
        best[key] = max(m.get(key) or 0.0 for m in ok)
    best["measurements"] = ok
    return best


def peak_for(peak, threads):
    """FP32 GFLOP/s peak for `threads` threads: n x the single-thread peak,
    or the all-thread figure if higher, each the better of the wall-time and
    the CPU-time measurement (see the module docstring)."""
    if not peak or "error" in peak or not threads:
        return None
    one = max(peak["gflops_1thread"], peak.get("gflops_1thread_cpu") or 0.0)
    if threads == 1:
        return one
    best = one * threads
    if threads == peak.get("threads"):
        best = max(best, peak["gflops_all_threads"], peak.get("gflops_all_threads_cpu") or 0.0)
    return best


def versions():
    import importlib.metadata as md

    import crnn

    info = {"python": platform.python_version(), "crnn": crnn.build_info()}
    for pkg in ("numpy", "torch", "pytest-benchmark"):
        try:
            info[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            info[pkg] = None
    try:
        import native

        reason = native.onednn_unavailable_reason()
        info["onednn"] = native.onednn_version() if reason is None else None
        info["onednn_unavailable"] = reason
    except Exception as exc:  # noqa: BLE001
        info["onednn"], info["onednn_unavailable"] = None, str(exc)
    return info


def _loadavg():
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def machine(bench_data=None):
    cpu = None
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mi = (bench_data or {}).get("machine_info") or {}
    cpu = cpu or (mi.get("cpu") or {}).get("brand_raw") or platform.processor()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": platform.platform(),
        "node": platform.node(),
    }


# --------------------------------------------------------------------------
# analysis


def index(rows):
    """{(group_kind, dtype, threads, mode, shape): {impl: row}}; the kind is
    "threads", "gil", a gated cell ("lstm", "gru") or "main" (the RNN), by
    the group's prefix; threads only for the thread-scaling and GIL kinds."""
    out = {}
    for r in rows:
        prefix = r["group"].split("-", 1)[0]
        if prefix == "latency":  # bench/latency_report.py reports them
            continue
        kind = prefix if prefix in ("threads", "gil", "lstm", "gru") else "main"
        threads = r["threads"] if kind in ("threads", "gil") else None
        key = (kind, r["dtype"], threads, r["mode"], r["shape"])
        out.setdefault(key, {})[r["impl"]] = r
    return out


def speedup(group, impl):
    c, o = group.get("crnn"), group.get(impl)
    if not c or not o or c["time"] <= 0:
        return None
    return o["time"] / c["time"]


def present(idx, kind, impls=IMPL_ORDER):
    """Those of `impls` with a benchmark of `kind` (see index)."""
    return [i for i in impls if any(i in g for k, g in idx.items() if k[0] == kind)]


def main_table(idx, dtype, peak, threads, impls, kind="main"):
    """Per shape and mode: each of `impls`' time, crnn's speed-up over the
    others, crnn's GFLOP/s and % of the peak; (text, records)."""
    shapes = []
    for k, dt, _, _, shape in idx:
        if k == kind and dt == dtype and shape not in shapes:
            shapes.append(shape)
    if not shapes:
        return None, []
    others = [i for i in impls if i != "crnn"]
    header = (
        ["shape (T,B,I,H)", "mode"]
        + list(impls)
        + [f"x {i}" for i in others]
        + ["GFLOP/s", "% peak"]
    )
    pk = peak_for(peak, threads)
    if pk and dtype == "float64":
        pk = pk / 2.0  # FP64 FMA: half the FP32 lanes
    rows, records = [], []
    for shape in shapes:
        for mode in ("fwd", "fwdbwd"):
            g = idx.get((kind, dtype, None, mode, shape))
            if not g:
                continue
            c = g.get("crnn")
            gf = c["gflops"] if c else None
            pct = 100.0 * gf / pk if (gf and pk) else None
            sp = {i: speedup(g, i) for i in others}
            rows.append(
                [shape_str(shape) if mode == "fwd" else "", MODE_LABEL[mode]]
                + [fmt_time(g[i]["time"]) if i in g else "-" for i in impls]
                + [fmt_ratio(sp[i]) for i in others]
                + ["-" if gf is None else f"{gf:.1f}", "-" if pct is None else f"{pct:.1f}%"]
            )
            records.append(
                {
                    "shape": list(shape),
                    "mode": mode,
                    "dtype": dtype,
                    "times": {i: g[i]["time"] for i in g},
                    "speedups": sp,
                    "crnn_gflops": gf,
                    "crnn_percent_peak": pct,
                }
            )
    return table(header, rows, "ll" + "r" * (len(header) - 2)), records


def threads_table(idx, peak):
    groups = {}
    for (kind, _dt, n, mode, shape), g in idx.items():
        if kind == "threads":
            groups.setdefault((mode, shape), {})[n] = g
    if not groups:
        return None, []
    header = [
        "shape (T,B,I,H)",
        "impl",
        "1 thread",
        "2 threads",
        "scaling",
        "crnn x (1 thr)",
        "crnn x (2 thr)",
        "GFLOP/s 1/2",
        "% peak 1/2",
    ]
    rows, records = [], []
    for (mode, shape), by_n in groups.items():
        impls = [i for i in IMPL_ORDER if any(i in g for g in by_n.values())]
        first = True
        for impl in impls:
            t1 = by_n.get(1, {}).get(impl)
            t2 = by_n.get(2, {}).get(impl)
            scaling = t1["time"] / t2["time"] if (t1 and t2) else None
            s1 = speedup(by_n.get(1, {}), impl) if impl != "crnn" else None
            s2 = speedup(by_n.get(2, {}), impl) if impl != "crnn" else None
            gf = pct = "-"
            if impl == "crnn":
                g1 = t1["gflops"] if t1 else None
                g2 = t2["gflops"] if t2 else None
                p1, p2 = peak_for(peak, 1), peak_for(peak, 2)
                gf = f"{g1 or 0:.0f} / {g2 or 0:.0f}"
                if p1 and p2 and g1 and g2:
                    pct = f"{100 * g1 / p1:.0f}% / {100 * g2 / p2:.0f}%"
            rows.append(
                [
                    shape_str(shape) + " " + MODE_LABEL[mode] if first else "",
                    impl,
                    fmt_time(t1["time"]) if t1 else "-",
                    fmt_time(t2["time"]) if t2 else "-",
                    fmt_ratio(scaling),
                    fmt_ratio(s1),
                    fmt_ratio(s2),
                    gf,
                    pct,
                ]
            )
            records.append(
                {
                    "shape": list(shape),
                    "mode": mode,
                    "impl": impl,
                    "time_1": t1["time"] if t1 else None,
                    "time_2": t2["time"] if t2 else None,
                    "scaling": scaling,
                    "crnn_speedup_1": s1,
                    "crnn_speedup_2": s2,
                }
            )
            first = False
    return table(header, rows, "ll" + "r" * 7), records


def gil_lines(idx):
    lines = []
    for (kind, _, _, _, shape), g in idx.items():
        if kind == "gil" and {"serial", "concurrent"} <= set(g):
            r = g["concurrent"]["time"] / g["serial"]["time"]
            lines.append(
                f"two single-threaded crnn forwards at {shape_str(shape)}: "
                f"serial {fmt_time(g['serial']['time'])}, concurrent "
                f"{fmt_time(g['concurrent']['time'])}, concurrent/serial {r:.2f} "
                f"(0.5 = full overlap, 1.0 = none)"
            )
    return lines


def evaluate_targets(idx, peak, threads, memory, shapes, onednn_reason):
    """The targets as a list of dicts: target, shape, value, limit, status
    (PASS / FAIL / SKIP / INFO), text."""
    out = []

    def add(target, shape, status, value, limit, text):
        out.append(
            {
                "target": target,
                "shape": list(shape) if shape else None,
                "status": status,
                "value": value,
                "limit": limit,
                "text": text,
            }
        )

    def g(mode, shape):
        return idx.get(("main", "float32", None, mode, tuple(shape)), {})

    for shape in shapes:
        H = shape[3]
        limit = TORCH_SPEEDUP_SMALL_H if H <= 256 else TORCH_SPEEDUP_LARGE_H if H >= 1024 else None
        if limit is None:
            continue
        s = speedup(g("fwdbwd", shape), "torch")
        name = f"fwd+bwd >= {limit:g}x faster than torch (H {'<= 256' if H <= 256 else '>= 1024'})"
        if s is None:
            add(name, shape, "SKIP", None, limit, "not measured (torch absent or shape not run)")
        else:
            add(name, shape, "PASS" if s >= limit else "FAIL", s, limit, fmt_ratio(s))

    for shape in shapes:
        for mode in ("fwd", "fwdbwd"):
            s = speedup(g(mode, shape), "reference")
            name = f"{MODE_LABEL[mode]} >= {REFERENCE_SPEEDUP:g}x faster than crnn.reference"
            if s is None:
                add(name, shape, "SKIP", None, REFERENCE_SPEEDUP, "not measured")
            else:
                add(
                    name,
                    shape,
                    "PASS" if s >= REFERENCE_SPEEDUP else "FAIL",
                    s,
                    REFERENCE_SPEEDUP,
                    fmt_ratio(s),
                )

    name = f"fwd >= {100 * PEAK_FRACTION:.0f}% of the FP32 FMA peak"
    c = g("fwd", PEAK_SHAPE).get("crnn")
    pk = peak_for(peak, threads)
    if c is None or not pk:
        add(
            name,
            PEAK_SHAPE,
            "SKIP",
            None,
            PEAK_FRACTION,
            "not measured" if c is None else "no FMA peak",
        )
    else:
        frac = c["gflops"] / pk
        add(
            name,
            PEAK_SHAPE,
            "PASS" if frac >= PEAK_FRACTION else "FAIL",
            frac,
            PEAK_FRACTION,
            f"{100 * frac:.1f}% ({c['gflops']:.1f} of {pk:.1f} GFLOP/s)",
        )

    name = f"batch-1 streaming fwd <= {STREAM_SECONDS * 1e3:g} ms"
    c = g("fwd", STREAM_SHAPE).get("crnn")
    if c is None:
        add(name, STREAM_SHAPE, "SKIP", None, STREAM_SECONDS, "not measured")
    else:
        add(
            name,
            STREAM_SHAPE,
            "PASS" if c["time"] <= STREAM_SECONDS else "FAIL",
            c["time"],
            STREAM_SECONDS,
            fmt_time(c["time"]),
        )

    for shape in shapes:
        name = "oneDNN ratio (crnn speed-up over oneDNN; reported)"
        sf, sb = speedup(g("fwd", shape), "onednn"), speedup(g("fwdbwd", shape), "onednn")
        if sf is None and sb is None:
            add(name, shape, "SKIP", None, None, onednn_reason or "not measured")
        else:
            add(
                name,
                shape,
                "INFO",
                {"fwd": sf, "fwdbwd": sb},
                None,
                f"fwd {fmt_ratio(sf)}, fwd+bwd {fmt_ratio(sb)}",
            )

    mem = {tuple(m["shape"]): m for m in (memory or []) if m.get("impl") == "crnn"}
    for shape in shapes:
        name = f"fwd+bwd peak memory <= {MEMORY_RATIO:g}x the unavoidable bytes"
        m = mem.get(tuple(shape))
        if m is None or "error" in m:
            add(name, shape, "SKIP", None, MEMORY_RATIO, m["error"] if m else "not measured")
        else:
            note = " (below the method's resolution)" if m.get("below_resolution") else ""
            add(
                name,
                shape,
                "PASS" if m["ratio"] <= MEMORY_RATIO else "FAIL",
                m["ratio"],
                MEMORY_RATIO,
                f"{m['ratio']:.2f} ({m['peak_bytes'] / 2**20:.1f} of "
                f"{m['unavoidable_bytes'] / 2**20:.1f} MiB){note}",
            )
    return out


# --------------------------------------------------------------------------
# main


def build_report(bench_rows, bench_data, peak, memory, stat, threads, info, quick, load=()):
    import memory as mem_mod
    import problems as P
    from latency_report import latency_section

    idx = index(bench_rows)
    impls = present(idx, "main")
    lines = []
    mach = machine(bench_data)
    lines.append(f"crnn benchmark report, {datetime.datetime.now().isoformat(timespec='seconds')}")
    lines.append(f"machine: {mach['cpu']}, {mach['cores']} cores, {mach['system']}")
    cb = info["crnn"]
    lines.append(
        f"crnn {cb.get('version')} (isa {cb.get('isa')}, openmp {cb.get('openmp')}, "
        f"{cb.get('compiler')}); numpy {info.get('numpy')}; torch {info.get('torch') or 'absent'}; "
        f"oneDNN {info.get('onednn') or 'absent: ' + str(info.get('onednn_unavailable'))}"
    )
    lines.append(
        f"threads: {threads} for every implementation unless stated; times: {stat} "
        f"over each benchmark's rounds"
    )
    if "error" in peak:
        lines.append(f"FP32 FMA peak: not measured ({peak['error']})")
    else:
        lines.append(
            f"FP32 FMA peak ({peak['isa']}), GFLOP/s by CPU time (by wall time): "
            f"1 thread {peak.get('gflops_1thread_cpu', 0):.1f} ({peak['gflops_1thread']:.1f}), "
            f"{peak['threads']} threads {peak.get('gflops_all_threads_cpu', 0):.1f} "
            f"({peak['gflops_all_threads']:.1f}); peak used at {threads} threads: "
            f"{peak_for(peak, threads):.1f}"
        )
    if load:
        lines.append(
            "load average (1 min) at start / end: "
            + " / ".join(f"{x:.2f}" for x in load)
            + f" on {mach['cores']} cores"
        )
        if max(load) > BUSY_LOAD * (mach["cores"] or 1):
            lines.append(
                "WARNING: the machine was busy: multi-threaded timings (OpenMP waits for "
                "a descheduled thread at every barrier) are unreliable; rerun when idle"
            )
    lines.append(
        "speed-up 'x impl' = impl's time / crnn's time (> 1: crnn faster); GFLOP/s and "
        "% peak are crnn's (matrix-product FLOP only)"
    )

    sections = {}
    for dtype in ("float32", "float64"):
        text, rec = main_table(
            idx, dtype, peak, threads, [i for i in impls if dtype == "float32" or i != "onednn"]
        )
        if text:
            title = f"{dtype}, tanh, {threads} threads"
            if dtype == "float64":
                title += " (% of the FP64 peak, taken as half the FP32 peak)"
            lines += ["", f"== {title}", text]
            sections[dtype] = rec
    for cell, gates in P.GATED_CELLS.items():
        text, rec = main_table(
            idx,
            "float32",
            peak,
            threads,
            present(idx, cell, ("crnn", "torch", "onednn")),
            kind=cell,
        )
        if text:
            note = "; oneDNN's is its linear-before-reset GRU" if cell == "gru" else ""
            lines += [
                "",
                f"== {cell.upper()}, float32, {threads} threads (GFLOP/s count "
                f"{gates} gates{note})",
                text,
            ]
            sections[cell] = rec
    text, rec = threads_table(idx, peak)
    if text:
        lines += ["", "== thread scaling (float32; scaling = 1-thread time / 2-thread time)", text]
        sections["threads"] = rec
    gl = gil_lines(idx)
    if gl:
        lines += ["", "== GIL"] + gl
    if memory:
        lines += [
            "",
            "== peak memory of forward + backward (fresh process each; bench/memory.py)",
            mem_mod.format_header(),
        ] + [mem_mod.format_row(m) for m in memory]

    lat_lines, lat_targets = latency_section(bench_rows)
    if lat_lines:
        lines += ["", "== latency: a step, sampling, the demo's training step"] + lat_lines

    shapes = P.shapes()
    targets = evaluate_targets(idx, peak, threads, memory, shapes, info.get("onednn_unavailable"))
    targets += lat_targets
    lines += ["", f"== targets (same run, {threads} threads)"]
    for t in targets:
        where = f" at {shape_str(t['shape'])}" if t["shape"] else ""
        lines.append(f"[{t['status']}] {t['target']}{where}: {t['text']}")
    counts = {s: sum(t["status"] == s for t in targets) for s in ("PASS", "FAIL", "SKIP", "INFO")}
    lines.append("   " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if quick:
        lines.append("   (--quick: a subset of shapes, fewer rounds)")

    record = {
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": mach,
        "versions": info,
        "threads": threads,
        "stat": stat,
        "quick": quick,
        "fma_peak": peak,
        "peak_used_gflops": peak_for(peak, threads),
        "loadavg": list(load),
        "benchmarks": [dict(r, shape=list(r["shape"])) for r in bench_rows],
        "tables": sections,
        "memory": memory,
        "targets": targets,
        "target_counts": counts,
    }
    return "\n".join(lines), record


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="bench/report.py",
        description="Run crnn's benchmarks and print the report (see the module docstring).",
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="report this pytest-benchmark JSON instead of running the benchmarks",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer shapes (CRNN_BENCH_QUICK=1) and rounds; no float64/threads",
    )
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help="where to save the report's JSON (default: %(default)s)"
    )
    parser.add_argument(
        "--stat",
        default="min",
        choices=["min", "median", "mean"],
        help="statistic of each benchmark's rounds (default: %(default)s)",
    )
    parser.add_argument("--no-peak", action="store_true", help="skip the FMA peak")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a target FAILs"
    )
    parser.add_argument(
        "--pytest-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for pytest (repeatable), e.g. --pytest-arg=-k=crnn",
    )
    args = parser.parse_args(argv)

    if args.quick:
        os.environ["CRNN_BENCH_QUICK"] = "1"  # problems.shapes() in this process too
    import memory as mem_mod
    import problems as P

    threads = P.default_threads()
    load = [_loadavg()]
    info = versions()
    peaks = [] if args.no_peak else [measure_peak(args.quick)]

    status = 0
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    raw_path = os.path.splitext(os.path.abspath(args.out))[0] + ".pytest-benchmark.json"
    if args.json:
        src = args.json
    else:
        fd, src = tempfile.mkstemp(suffix=".json", prefix="crnn-bench-")
        os.close(fd)
        rc = run_pytest(src, args.quick, args.pytest_arg)
        if rc != 0:
            print(f"warning: pytest exited with status {rc}", file=sys.stderr)
            status = 1
        if not args.no_peak:
            peaks.append(measure_peak(args.quick))
    try:
        bench_data, rows = load_benchmarks(src, args.stat)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the benchmark results {src}: {exc}", file=sys.stderr)
        return 2
    if not args.json:
        os.replace(src, raw_path)
    if not rows:
        print(
            f"warning: {args.json or 'the run'} holds no crnn benchmarks "
            "(was it made with --benchmark-disable?)",
            file=sys.stderr,
        )

    memory = []
    if not args.no_memory:
        print("measuring peak memory (bench/memory.py) ...", file=sys.stderr, flush=True)
        memory = mem_mod.measure_all(P.shapes(), ("crnn", "torch"))
    peak = combine_peaks(peaks) if peaks else {"error": "skipped (--no-peak)"}

    load.append(_loadavg())
    text, record = build_report(
        rows,
        bench_data,
        peak,
        memory,
        args.stat,
        threads,
        info,
        args.quick,
        [x for x in load if x is not None],
    )
    record["pytest_benchmark_json"] = args.json or raw_path
    print(text)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=1, default=str)
    print(f"\nsaved {args.out}" + ("" if args.json else f" and {raw_path}"))
    if args.check and record["target_counts"]["FAIL"]:
        status = status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
