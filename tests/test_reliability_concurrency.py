"""Many Python threads calling crnn at once, and who controls crnn's threads.

- 8 Python threads x hundreds of calls through ThreadPoolExecutor give
  results bitwise equal to serial calls: the functional API of every cell
  (forward, backward, both clippings, errors in between) and the layers of
  every cell (one layer object per thread -- layer objects keep the cache of
  their last forward, so one object must not be shared between threads).
- crnn's OpenMP thread count: `crnn.set_num_threads(n)` (process-wide)
  takes precedence; without it (None / 0), the OpenMP default applies, which
  OMP_NUM_THREADS and threadpoolctl's `threadpool_limits` set. Those limits
  are OpenMP's per-thread setting: they apply to the Python thread that set
  them, not to other threads. Checked through `get_num_threads` and, in a
  fresh interpreter, by counting the OS threads a large call starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import crnn
from crnn._testing import counts, force_split
from helpers import assert_bitwise as _bitwise, make_rnn_problem
from problems import SPECS, backward, forward, make_problem, option_variants

N_WORKERS = 8
OPENMP = crnn.build_info()["openmp"]


# --------------------------------------------------------------------------
# Functional API: a mix of distinct jobs, 8 threads x 200 calls
# --------------------------------------------------------------------------
def _make_jobs():
    """12 distinct jobs: every cell in turn, each with its options in turn."""
    jobs = []
    for k in range(12):
        spec = SPECS[k % len(SPECS)]
        variants = option_variants(spec)
        dtype = np.float32 if k % 3 == 1 else np.float64
        if k % 4 == 3:  # big enough for several OpenMP threads per call
            T, B, I, H = 12, 40, 32, 96 // spec.gates
        else:
            T, B, I, H = 3 + k % 5, 1 + k, 4 + k % 3, 5 + 2 * k
        lengths = ["zeros", "random", None][k % 3]
        if lengths == "zeros" and B == 1:
            lengths = "random"
        p = make_problem(
            spec,
            (T, B, I, H),
            dtype,
            seed=100 + k,
            states=bool(k % 2),
            lengths=lengths,
            options=variants[k % len(variants)],
        )
        dout, dstates = p.upstream("all" if k % 5 else "dout", seed=k)
        rng = np.random.default_rng(k)
        grads = [
            rng.standard_normal(s).astype(dtype) * 3 for s in [(H, I), (H, H), (H,), (50_000,)]
        ]
        jobs.append((p, dout, dstates, grads, 0.5 + k))
    return jobs


def _call(job, i):
    """One unit of work; which calls run depends on i, so threads interleave
    different kernels (forward, backward, norm, value clipping, errors)."""
    p, dout, dstates, grads, max_norm = job
    out, states_n, cache = forward(crnn, p)
    res = [out, *states_n]
    if i % 2 == 0:
        res += list(backward(crnn, p.spec, cache, dout, dstates))
    if i % 3 == 0:
        arrays = [a.copy() for a in grads]
        total = crnn.clip_grad_norm(arrays, max_norm, norm_type=[2.0, 1.0, "inf"][i % 9 // 3])
        crnn.clip_grad_value(arrays, 0.25 * max_norm)
        res += [total] + arrays
    if i % 7 == 0:
        first = p.spec.required_weights[-1]
        with pytest.raises(ValueError, match=first):
            forward(crnn, p.replace(weights=dict(p.weights, **{first: np.zeros((2, 3), p.dtype)})))
    return res


@pytest.mark.parametrize("omp_threads", [1, None], ids=["omp1", "ompdefault"])
def test_functional_8_threads_hundreds_of_calls(omp_threads):
    crnn.set_num_threads(omp_threads)
    jobs = _make_jobs()
    n_calls = 200
    plan = [[((w * 5 + i) % len(jobs), i) for i in range(n_calls)] for w in range(N_WORKERS)]
    serial = {}
    for w in range(N_WORKERS):
        for k, i in plan[w]:
            key = (k, i % 2 == 0, i % 3 == 0, i % 9 // 3 if i % 3 == 0 else -1)
            if key not in serial:
                serial[key] = _call(jobs[k], i)
    start = threading.Barrier(N_WORKERS)

    def worker(w):
        start.wait()
        return [(k, i, _call(jobs[k], i)) for k, i in plan[w]]

    with ThreadPoolExecutor(max_workers=N_WORKERS) as pool:
        results = list(pool.map(worker, range(N_WORKERS)))
    checked = 0
    for w, runs in enumerate(results):
        for k, i, res in runs:
            key = (k, i % 2 == 0, i % 3 == 0, i % 9 // 3 if i % 3 == 0 else -1)
            _bitwise(res, serial[key], f"worker {w} call {i} job {k}")
            checked += 1
    assert checked == N_WORKERS * n_calls


def test_functional_8_threads_changing_thread_count_meanwhile():
    """Results do not depend on the thread count, so a count changed by
    another thread mid-flight (1 to 4, each call split as far as it allows)
    changes nothing either."""
    jobs = _make_jobs()
    big = [j for j in jobs if j[0].B == 40]
    crnn.set_num_threads(1)
    serial = [_call(j, 0) for j in big]
    stop = threading.Event()

    def flipper():
        n = 0
        while not stop.is_set():
            crnn.set_num_threads(1 + n % 4)
            n += 1

    def worker(w):
        return [(k, _call(big[k], 0)) for k in [(w + i) % len(big) for i in range(25)]]

    t = threading.Thread(target=flipper)
    with force_split(), counts() as seen:
        t.start()
        try:
            with ThreadPoolExecutor(max_workers=N_WORKERS) as pool:
                results = list(pool.map(worker, range(N_WORKERS)))
        finally:
            stop.set()
            t.join()
    assert seen.max_team >= 2, seen
    for runs in results:
        for k, res in runs:
            _bitwise(res, serial[k], f"job {k}")


# --------------------------------------------------------------------------
# Layers: one object per thread
# --------------------------------------------------------------------------
_LAYER_KWARGS = [
    dict(num_layers=2),
    dict(bidirectional=True, batch_first=True),
    dict(num_layers=2, dropout=0.3),
]


def _layer_configs():
    """A layer of every cell (architectures and options in turn) and a
    one-step cell of every cell without an output size."""
    configs = []
    for k, spec in enumerate(SPECS):
        variants = option_variants(spec)
        opts = variants[k % len(variants)]
        configs.append((spec, "layer", dict(_LAYER_KWARGS[k % len(_LAYER_KWARGS)], **opts)))
        if not spec.uses_output_size:
            configs.append((spec, "cell", dict(variants[(k + 1) % len(variants)])))
    return configs


LAYER_CONFIGS = _layer_configs()


def _parts(state):
    return list(state) if isinstance(state, tuple) else [state]


def _layer_session(config, dtype, backend, steps):
    """A fresh layer (same seed every time) trained for `steps` steps on
    fixed data; returns every output and the final parameters."""
    spec, kind, kw = config
    rng = np.random.default_rng(7)
    I, H, T, B = 6, 24, 7, 9
    if kind == "layer":
        extra = {"output_size": 5} if spec.uses_output_size else {}
        layer = crnn.nn.recurrent_layer(
            spec, I, H, dtype=dtype, seed=11, backend=backend, **extra, **kw
        )
        opt = crnn.optim.SGD(layer.params, lr=0.05, momentum=0.9)
        x = rng.standard_normal((B, T, I) if kw.get("batch_first") else (T, B, I)).astype(dtype)
        lengths = rng.integers(0, T + 1, size=B)
    else:
        layer = crnn.nn.RecurrentCell(spec, I, H, dtype=dtype, seed=11, backend=backend, **kw)
        opt = crnn.optim.Adam(layer.params, lr=0.01, clip_grad_norm=1.0, backend=backend)
        x = rng.standard_normal((B, I)).astype(dtype)
    outs = []
    for _ in range(steps):
        layer.zero_grad()
        if kind == "layer":
            out, s_n = layer(x, lengths=lengths)
            layer.backward(np.ones_like(out) * 0.1, s_n)
            outs.append(out)
        else:
            state = layer(x)
            state = layer(x, state)
            layer.backward(state)
            outs += _parts(state)
        opt.step(layer.grads)
    return outs + [p.copy() for p in layer.params.values()]


@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_layers_one_object_per_thread(dtype, backend):
    """Each C call split across 2 threads (forced: the layers are small)."""
    steps = 30 if backend == "c" else 8
    crnn.set_num_threads(1)
    serial = [_layer_session(c, dtype, backend, steps) for c in LAYER_CONFIGS]

    def worker(w):
        return _layer_session(LAYER_CONFIGS[w % len(LAYER_CONFIGS)], dtype, backend, steps)

    with force_split(2), counts() as seen:
        with ThreadPoolExecutor(max_workers=N_WORKERS) as pool:
            results = list(pool.map(worker, range(2 * N_WORKERS)))
    assert seen.max_team == (2 if backend == "c" else 0), seen
    for w, res in enumerate(results):
        _bitwise(res, serial[w % len(LAYER_CONFIGS)], f"session {w}")


def test_shared_layer_inference_in_eval_mode_is_still_correct():
    """What sharing one layer *does* guarantee: forward outputs are correct
    (the cache is per object, so backward after a shared forward is not)."""
    layer = crnn.RNN(5, 16, num_layers=2, seed=3).eval()
    xs = [np.random.default_rng(k).standard_normal((6, 4, 5)).astype(np.float32) for k in range(8)]
    expected = [layer(x) for x in xs]
    with ThreadPoolExecutor(max_workers=N_WORKERS) as pool:
        got = list(pool.map(lambda k: layer(xs[k % 8]), range(200)))
    for k, (out, h_n) in enumerate(got):
        _bitwise([out, h_n], list(expected[k % 8]), f"call {k}")


# --------------------------------------------------------------------------
# Who sets the thread count
# --------------------------------------------------------------------------
needs_openmp = pytest.mark.skipif(not OPENMP, reason="built without OpenMP")


@needs_openmp
def test_threadpool_limits_controls_crnn_and_results_do_not_change():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    crnn.set_num_threads(None)
    args = make_rnn_problem(12, 64, 32, 96, np.float32, seed=1, lengths="random")
    dout = np.ones((12, 64, 96), np.float32)
    crnn.set_num_threads(4)
    out4, _, c4 = crnn.rnn_forward(**args)
    g4 = crnn.rnn_backward(dout, None, c4)
    crnn.set_num_threads(None)
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert crnn.get_num_threads() == 1
        assert crnn.build_info()["num_threads"] == 1
        out1, _, c1 = crnn.rnn_forward(**args)
        g1 = crnn.rnn_backward(dout, None, c1)
        # set_num_threads takes precedence over the limit...
        crnn.set_num_threads(3)
        assert crnn.get_num_threads() == 3
        # ...and None hands control back to it.
        crnn.set_num_threads(None)
        assert crnn.get_num_threads() == 1
    _bitwise([out1] + list(g1), [out4] + list(g4), "threadpool_limits(1) vs 4 threads")


@needs_openmp
def test_threadpool_limits_are_per_python_thread():
    """OpenMP's thread-count setting (what threadpoolctl changes) belongs to
    the thread that sets it; set_num_threads is process-wide."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    crnn.set_num_threads(None)
    default = crnn.get_num_threads()
    seen = {}

    def look(key):
        seen[key] = crnn.get_num_threads()

    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        t = threading.Thread(target=look, args=("limited",))
        t.start()
        t.join()
        assert crnn.get_num_threads() == 1
        crnn.set_num_threads(2)
        t = threading.Thread(target=look, args=("fixed",))
        t.start()
        t.join()
    assert seen == {"limited": default, "fixed": 2}


_COUNT_THREADS = r"""
import json, os, sys
import numpy as np
import crnn
from threadpoolctl import threadpool_limits

def tasks():
    return len(os.listdir("/proc/self/task"))

rng = np.random.default_rng(0)
x = rng.standard_normal((16, 64, 64)).astype(np.float32)
w_ih = (0.1 * rng.standard_normal((128, 64))).astype(np.float32)
w_hh = (0.1 * rng.standard_normal((128, 128))).astype(np.float32)
res = {"before": tasks(), "env_threads": crnn.get_num_threads()}
def run():
    out, _, cache = crnn.rnn_forward(x, None, w_ih, w_hh)
    crnn.rnn_backward(out, None, cache)
if sys.argv[1] == "limits":
    with threadpool_limits(limits=1, user_api="openmp"):
        res["limited_threads"] = crnn.get_num_threads()
        run()
        res["after_limited"] = tasks()
        crnn.set_num_threads(2)  # takes precedence over the limit
        run()
        res["after_set"] = tasks()
else:  # OMP_NUM_THREADS=1 in the environment
    run()
    res["after_env"] = tasks()
    crnn.set_num_threads(2)
    run()
    res["after_set"] = tasks()
print(json.dumps(res))
"""


def _count_threads(mode, env_extra):
    env = dict(os.environ, **env_extra)
    proc = subprocess.run(
        [sys.executable, "-c", _COUNT_THREADS, mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


needs_two_cpus = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else True,
    reason="needs 2 CPUs and /proc (crnn never starts more threads than CPUs)",
)


@needs_openmp
@needs_two_cpus
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_threadpool_limits_behaviour_counted_in_os_threads():
    pytest.importorskip("threadpoolctl")
    env = {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    res = _count_threads("limits", env)
    assert res["limited_threads"] == 1
    assert res["after_limited"] == res["before"], res  # no OpenMP thread was started
    assert res["after_set"] > res["before"], res  # set_num_threads(2) started one


@needs_openmp
@needs_two_cpus
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_omp_num_threads_behaviour_counted_in_os_threads():
    res = _count_threads(
        "env", {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    )
    assert res["env_threads"] == 1
    assert res["after_env"] == res["before"], res
    assert res["after_set"] > res["before"], res
