#!/usr/bin/env python3
"""Summarise a pytest-benchmark JSON file as per-group medians and ratios.

Usage::

    pytest bench/ --benchmark-only --benchmark-json=out.json
    python bench/summarize.py out.json [more.json ...]

For every benchmark group it prints each implementation's median time and
the ratios that matter (absolute times drift on a shared machine; ratios
measured in one run are what to compare):

- ``fwd-*`` / ``fwdbwd-*``: crnn's speed-up over every other implementation
  (median of the other / median of crnn; > 1 means crnn is faster).
- ``threads-*``: the 2-thread / 1-thread time (< 1 means threads help) and
  the corresponding speed-up.
- ``gil-*``: the concurrent / serial time of two single-threaded calls
  (about 0.5 on two free cores when the GIL is released, about 1 when not).
- any other group: each implementation's time relative to the fastest.

The implementation of a benchmark is its ``extra_info["impl"]`` (set by
bench/test_bench_core.py), else its ``param``, else its name. Several JSON
files are summarised one after the other. Exit status 1 when a file holds
no benchmarks (for example a run with --benchmark-disable).
"""
from __future__ import annotations

import json
import sys
from collections import OrderedDict


def _impl(bench):
    extra = bench.get("extra_info") or {}
    return str(extra.get("impl") or bench.get("param") or bench.get("name"))


def _fmt_time(seconds):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:8.3f} {unit}"
    return f"{seconds / 1e-9:8.1f} ns"


def load_groups(path):
    """{group: {impl: median seconds}} in file order."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    groups = OrderedDict()
    for bench in data.get("benchmarks", []):
        group = bench.get("group") or "(no group)"
        groups.setdefault(group, OrderedDict())[_impl(bench)] = float(bench["stats"]["median"])
    return data, groups


def ratio_lines(group, medians):
    """Human-readable ratio lines for one group."""
    lines = []
    if group.startswith(("fwd-", "fwdbwd-")) and "crnn" in medians:
        base = medians["crnn"]
        for impl, t in medians.items():
            if impl != "crnn" and base > 0:
                lines.append(f"crnn speed-up over {impl}: {t / base:.2f}x")
    elif group.startswith("threads-"):
        one = next((t for i, t in medians.items() if i.endswith("-1thread")), None)
        for impl, t in medians.items():
            if one and not impl.endswith("-1thread"):
                lines.append(f"{impl} / 1-thread time: {t / one:.3f} "
                             f"(speed-up {one / t:.2f}x)")
    elif group.startswith("gil-") and {"serial", "concurrent"} <= set(medians):
        r = medians["concurrent"] / medians["serial"]
        lines.append(f"concurrent / serial time: {r:.3f} "
                     f"(0.5 = perfect overlap, 1.0 = no overlap)")
    else:
        fastest = min(medians.values()) if medians else 0.0
        for impl, t in medians.items():
            if fastest > 0:
                lines.append(f"{impl} / fastest: {t / fastest:.2f}")
    return lines


def summarize(path, out=sys.stdout):
    data, groups = load_groups(path)
    machine = data.get("machine_info") or {}
    print(f"# {path}", file=out)
    if machine:
        print(f"# {machine.get('cpu', {}).get('brand_raw', '?')}, "
              f"python {machine.get('python_version', '?')}", file=out)
    if not groups:
        print("(no benchmarks: was the run made with --benchmark-disable?)", file=out)
        return False
    for group, medians in groups.items():
        print(f"\n[{group}]", file=out)
        width = max(len(i) for i in medians)
        for impl, t in medians.items():
            print(f"  {impl:<{width}}  median {_fmt_time(t)}", file=out)
        for line in ratio_lines(group, medians):
            print(f"  -> {line}", file=out)
    return True


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    ok = True
    for i, path in enumerate(argv):
        if i:
            print()
        ok = summarize(path) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
