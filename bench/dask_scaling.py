#!/usr/bin/env python3
"""crnn on Dask: batch-inference throughput and the cost of a data-parallel step.

Usage::

    python bench/dask_scaling.py                   # both measurements
    python bench/dask_scaling.py --only predict --repeats 9 --json dask.json

Batch inference: `crnn.dask.predict` of one model over the same dask array
on a LocalCluster of 1 worker and on one of 2 workers (processes, 1 thread
each), and the model's own call in this process on 1 thread and on every
thread, on the whole batch and block by block (the blocks of the dask
array, one call each), in turns (1 worker, 2 workers, own calls, 1 worker,
...), so that load from elsewhere hits them alike; and, as the control, the
same blocks in 1 and in 2 plain processes (multiprocessing, no Dask): what
the machine itself gives a second process. The inputs are persisted
on the workers first (a dataset the tasks read) and the predictions stay
there, as the model's own call keeps its result in this process: a predict
is the model's scatter and the tasks.

Data-parallel step: the demo's model and window (CharRNN, one-hot 92 ->
RNN 128 -> Linear 92, float32; 50 characters x 32 streams, Adam, clipping)
trained by `crnn.training.TBPTT` in this process and by
`crnn.dask.DataParallel` on 1 and on 2 workers, step by step in turns.

Every figure is reported as min and median over the repeats, with ratios,
never as absolute times alone; /proc/loadavg is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from typing import Any, Callable, Dict, List

import numpy as np


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def summary(times: List[float]) -> Dict[str, float]:
    return {"min": min(times), "median": statistics.median(times), "n": len(times)}


def interleaved(cases: Dict[str, Callable[[], None]], repeats: int) -> Dict[str, List[float]]:
    """Seconds per call of each case, measured in turns after one warm-up each."""
    for f in cases.values():
        f()
    times: Dict[str, List[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, f in cases.items():
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    return times


def clusters(sizes):
    from distributed import Client, LocalCluster

    out = {}
    for n in sizes:
        lc = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        out[n] = (lc, Client(lc, set_as_default=False))
    return out


# The control: the same blocks in plain processes (multiprocessing, no Dask),
# to tell what the machine itself gives a second process from what crnn.dask
# adds. Each pool process builds the same model and data once.
_POOL: Dict[str, object] = {}


def _pool_init(T: int, B: int) -> None:
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    import crnn
    from crnn.models import SequenceTagger

    crnn.set_num_threads(1)
    _POOL["model"] = SequenceTagger(64, 256, 64, seed=0).eval()
    _POOL["x"] = np.random.default_rng(0).standard_normal((T, B, 64)).astype(np.float32)


def _pool_block(bounds) -> int:
    lo, hi = bounds
    return int(_POOL["model"](_POOL["x"][:, lo:hi])[0].shape[1])


def busy_fraction(client: Any, run: Callable[[], None], workers: int) -> Dict[str, float]:
    """One more predict, under Dask's task stream: how much of the wall time
    the workers spent computing blocks (1.0: no time lost to Dask), and the
    mean seconds per block task."""
    from distributed import get_task_stream

    with get_task_stream(client) as ts:
        t0 = time.perf_counter()
        run()
        wall = time.perf_counter() - t0
    spans = [
        s["stop"] - s["start"]
        for t in ts.data
        for s in t["startstops"]
        if s["action"] == "compute" and "crnn-predict" in str(t["key"])
    ]
    return {
        f"busy fraction, {workers} worker(s)": sum(spans) / (wall * workers),
        f"seconds per block task, {workers} worker(s)": sum(spans) / len(spans),
    }


def bench_predict(repeats: int, T: int, B: int, block: int) -> Dict[str, object]:
    import dask.array as da
    from distributed import futures_of, wait

    import crnn
    import crnn.dask as cd
    from crnn.models import SequenceTagger

    model = SequenceTagger(64, 256, 64, seed=0).eval()  # float32
    x = np.random.default_rng(0).standard_normal((T, B, 64)).astype(np.float32)
    cl = clusters((1, 2))
    pools: Dict[int, Any] = {}
    try:
        # The inputs live on the workers, as a dataset read by the tasks
        # would, and the predictions stay there (persisted), as the model's
        # own call keeps them in this process: neither crosses to the client.
        on_cluster = {}
        for n, (_, client) in cl.items():
            with client.as_current():
                X = client.persist(da.from_array(x, chunks=(T, block, 64)))
                wait(futures_of(X))
            on_cluster[n] = X

        def on(n):
            client = cl[n][1]

            def run():
                with client.as_current():
                    Y = client.persist(cd.predict(model, on_cluster[n], client=client))
                    wait(futures_of(Y), timeout=600)

            return run

        def own(threads, rows):
            def run():
                crnn.set_num_threads(threads)
                for lo in range(0, B, rows):
                    model(x[:, lo : lo + rows])

            return run

        ctx = multiprocessing.get_context("spawn")
        for n in (1, 2):
            pools[n] = ctx.Pool(n, initializer=_pool_init, initargs=(T, B))
        blocks = [(lo, min(lo + block, B)) for lo in range(0, B, block)]

        def plain(n):
            return lambda: pools[n].map(_pool_block, blocks, chunksize=1)

        cases = {
            "predict, 1 worker": on(1),
            "predict, 2 workers": on(2),
            "plain processes (no Dask), 1": plain(1),
            "plain processes (no Dask), 2": plain(2),
            "model(x), 1 thread": own(1, B),
            f"model(x), {os.cpu_count()} threads": own(None, B),
            "model(block) per block, 1 thread": own(1, block),
            f"model(block) per block, {os.cpu_count()} threads": own(None, block),
        }
        # NumPy's BLAS on one thread here, as Dask's nanny sets it in the
        # workers: its spinning threads would slow everything else down.
        with crnn.limit_blas_threads():
            times = interleaved(cases, repeats)
        busy = {n: busy_fraction(cl[n][1], on(n), n) for n in cl}
    finally:
        crnn.set_num_threads(None)
        for pool in pools.values():
            pool.terminate()
        for lc, client in cl.values():
            client.close()
            lc.close()
    res = {name: summary(t) for name, t in times.items()}
    one, two = times["predict, 1 worker"], times["predict, 2 workers"]
    ratios = {
        "2 workers vs 1 (min)": min(one) / min(two),
        "2 workers vs 1 (median)": statistics.median(one) / statistics.median(two),
        "2 workers vs 1 (median of paired ratios)": statistics.median(
            a / b for a, b in zip(one, two)
        ),
        "plain processes, 2 vs 1 (median): the machine's own gain": statistics.median(
            times["plain processes (no Dask), 1"]
        )
        / statistics.median(times["plain processes (no Dask), 2"]),
    }
    for name in cases:
        if name.startswith("model"):
            ratios[f"2 workers vs {name} (median)"] = statistics.median(
                times[name]
            ) / statistics.median(two)
    return {
        "problem": {"T": T, "B": B, "block": block, "model": repr(model)},
        "times": res,
        "sequences_per_s": {name: B / r["median"] for name, r in res.items()},
        "workers": {k: v for n in busy for k, v in busy[n].items()},
        "ratios": ratios,
    }


def bench_step(repeats: int) -> Dict[str, object]:
    import crnn
    import crnn.dask as cd
    from crnn.apps.text import CharModel, make_optimizer
    from crnn.losses import softmax_cross_entropy
    from crnn.training import TBPTT

    chars = "".join(chr(c) for c in range(32, 32 + 91))  # 91 characters + unknown: 92
    rng = np.random.default_rng(0)
    windows = [
        (rng.integers(0, 92, size=(50, 32)), rng.integers(0, 92, size=(50, 32))) for _ in range(8)
    ]

    def model():
        return CharModel(chars, 128, seed=0)

    cl = clusters((1, 2))
    try:
        single = model()
        tb = TBPTT(single, softmax_cross_entropy, make_optimizer(single), k=50)
        trainers = {"single process": tb}
        for n, (_, client) in cl.items():
            m = model()
            trainers[f"DataParallel, {n} worker{'s' if n > 1 else ''}"] = cd.DataParallel(
                m, softmax_cross_entropy, make_optimizer(m), client, stateful=True
            )
        counter = {"i": 0}

        def stepper(trainer):
            def run():
                x, y = windows[counter["i"] % len(windows)]
                trainer.step(x, y)

            return run

        cases = {name: stepper(t) for name, t in trainers.items()}
        with crnn.limit_blas_threads():
            times = interleaved(cases, repeats)
        parameters = single.num_parameters()
    finally:
        for lc, client in cl.values():
            client.close()
            lc.close()
    res = {name: summary(t) for name, t in times.items()}
    base = times["single process"]
    overhead = {
        name: {
            "ms per step over single process (median)": 1e3
            * (statistics.median(t) - statistics.median(base)),
            "ratio (median)": statistics.median(t) / statistics.median(base),
        }
        for name, t in times.items()
        if name != "single process"
    }
    return {
        "problem": "CharModel 92 -> RNN 128 -> Linear 92, float32, windows 50 x 32 streams",
        "parameters": parameters,
        "weight_bytes": parameters * 4,
        "times": res,
        "overhead": overhead,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=("predict", "step"), default=None)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--B", type=int, default=2048)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    out: Dict[str, object] = {"loadavg_before": loadavg(), "cpus": os.cpu_count()}
    if args.only in (None, "predict"):
        out["predict"] = bench_predict(args.repeats, args.T, args.B, args.block)
    if args.only in (None, "step"):
        out["step"] = bench_step(args.repeats * 4)
    out["loadavg_after"] = loadavg()
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
