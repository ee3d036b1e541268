"""Memory: no growth over thousands of calls, and allocation failures are
clean errors.

- The C heap in use (glibc's mallinfo2, which counts every malloc, also the
  kernels' workspaces) and the resident set size (/proc/self/statm) do not
  grow over thousands of forward / backward / clipping / layer / optimizer /
  rejected calls. A deliberate leak is used to show the probe would see one.
- tracemalloc: no growth of Python-side allocations (NumPy arrays included).
- When a kernel's workspace cannot be allocated (address-space limit in a
  child process), the call raises MemoryError, frees what it had, and the
  next call works; repeated failures leak nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import crnn
from crnn import losses, optim
from crnn._testing import counts, force_split
from helpers import make_rnn_problem
from problems import SPECS, backward, forward, make_problem, option_variants

ITERATIONS = 2000


# --------------------------------------------------------------------------
# Probes
# --------------------------------------------------------------------------
class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    return libc


_LIBC = _libc()


def heap_in_use():
    """Bytes malloc has handed out and not got back (None without glibc >= 2.33)."""
    if _LIBC is None or "asan" in os.environ.get("LD_PRELOAD", ""):
        return None  # ASan replaces malloc: mallinfo2 no longer sees it
    info = _LIBC.mallinfo2()
    return info.uordblks + info.hblkhd


def rss():
    """Resident set size in bytes (None where /proc is missing, or under
    AddressSanitizer, whose quarantine keeps freed memory resident)."""
    if "asan" in os.environ.get("LD_PRELOAD", ""):
        return None
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


def _growth(step, iterations, warmup=300):
    for i in range(warmup):
        step(i)
    gc.collect()
    heap0, rss0 = heap_in_use(), rss()
    for i in range(iterations):
        step(i)
    gc.collect()
    heap1, rss1 = heap_in_use(), rss()
    heap = None if heap0 is None else heap1 - heap0
    res = None if rss0 is None else rss1 - rss0
    return heap, res


# Bounds: a leak of the smallest C workspace (the 64-byte combined bias) on
# every call would add 2000 * 64 = 128 kB to the heap; Python's free lists
# may keep a few kB. RSS is coarser (pages, allocator caching).
HEAP_BOUND = 64 * 1024
RSS_BOUND = 8 * 1024 * 1024


def _assert_no_growth(step, iterations=ITERATIONS):
    heap, res = _growth(step, iterations)
    if heap is None and res is None:
        pytest.skip("no memory probe on this platform")
    if heap is not None:
        assert heap <= HEAP_BOUND, f"C heap grew by {heap} bytes over {iterations} iterations"
    if res is not None:
        assert res <= RSS_BOUND, f"RSS grew by {res} bytes over {iterations} iterations"


def test_probe_sees_a_leak():
    """The heap probe is sensitive enough: 2000 leaked 64-byte blocks show."""
    if heap_in_use() is None:
        pytest.skip("needs glibc's mallinfo2")
    malloc, free = _LIBC.malloc, _LIBC.free
    malloc.restype = ctypes.c_void_p
    free.argtypes = [ctypes.c_void_p]
    leaked = []
    heap, _ = _growth(lambda i: leaked.append(malloc(64)), ITERATIONS, warmup=0)
    for p in leaked:
        free(p)
    assert heap >= ITERATIONS * 64 > HEAP_BOUND


# --------------------------------------------------------------------------
# No growth
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dtype, threads",
    [(np.float32, 1), (np.float64, 1), (np.float64, 2)],
    ids=["float32-1", "float64-1", "float64-2"],
)
def test_functional_calls_do_not_grow_memory(dtype, threads):
    """Every cell in turn (each with its options in turn), three problem
    forms; on 2 threads, every call split as far as it allows (one dtype:
    the threads' workspaces are the same code for both)."""
    probs = []
    for k, spec in enumerate(SPECS):
        variants = option_variants(spec)
        probs += [
            make_problem(
                spec,
                (6, 5, 8, 40),
                dtype,
                seed=1,
                lengths="zeros",
                options=variants[k % len(variants)],
            ),
            make_problem(
                spec,
                (4, 3, 3, 9),
                dtype,
                seed=2,
                states=False,
                bias=False,
                options=variants[(k + 1) % len(variants)],
            ),
            make_problem(
                spec, (5, 33, 16, 64), dtype, seed=3, options=variants[(k + 2) % len(variants)]
            ),
        ]
    grads = [np.ones((300, 7), dtype), np.ones(20_000, dtype)]
    bad = probs[0].replace(weights=dict(probs[0].weights, weight_hh=np.zeros((3, 3), dtype)))

    def step(i):
        p = probs[i % len(probs)]
        out, states_n, cache = forward(crnn, p)
        g = backward(crnn, p.spec, cache, out, states_n if i % 2 else (None,) * len(states_n))
        crnn.clip_grad_norm([g.dx] + grads, 1.0, norm_type=(2.0, "inf", 1.5)[i % 3])
        crnn.clip_grad_value(grads, 0.5)
        if i % 10 == 0:
            try:
                forward(crnn, bad)
            except ValueError:
                pass

    with force_split(threads), counts() as seen:
        _assert_no_growth(step)
    assert seen.max_team == threads, seen


def test_layers_losses_optimizers_do_not_grow_memory():
    rnn = crnn.RNN(6, 32, num_layers=2, bidirectional=True, dropout=0.2, seed=0)
    head = crnn.Linear(64, 5, seed=1)
    cell = crnn.RNNCell(6, 16, seed=2)
    params = {
        **{f"rnn.{k}": v for k, v in rnn.params.items()},
        **{f"head.{k}": v for k, v in head.params.items()},
    }
    opt = optim.Adam(params, lr=1e-3, clip_grad_norm=1.0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 4, 6)).astype(np.float32)
    targets = rng.integers(0, 5, size=(7, 4))
    lengths = np.array([7, 3, 0, 5])

    def step(i):
        rnn.zero_grad()
        head.zero_grad()
        out, _ = rnn(x, lengths=lengths)
        logits = head(out)
        loss, dlogits = losses.softmax_cross_entropy(logits, targets, mask=out[..., 0] != 0)
        rnn.backward(head.backward(dlogits))
        grads = {
            **{f"rnn.{k}": v for k, v in rnn.grads.items()},
            **{f"head.{k}": v for k, v in head.grads.items()},
        }
        opt.step(grads)
        h = cell(x[0])
        cell.backward(h)
        losses.mse(h, np.zeros_like(h))

    _assert_no_growth(step, iterations=800)


def test_python_side_allocations_do_not_grow():
    """tracemalloc (Python objects and NumPy array data)."""
    args = make_rnn_problem(5, 4, 6, 20, np.float64, seed=4, lengths="random")
    layer = crnn.RNN(6, 20, seed=0, dtype=np.float64)

    def step():
        out, h_n, cache = crnn.rnn_forward(**args)
        g = crnn.rnn_backward(out, h_n, cache)
        crnn.clip_grad_norm(list(g[2:]), 0.5)
        o, _ = layer(args["x"], lengths=args["lengths"])
        layer.backward(o)

    for _ in range(200):
        step()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(500):
            step()
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert growth <= 64 * 1024, f"Python allocations grew by {growth} bytes"


# --------------------------------------------------------------------------
# Allocation failure inside a kernel
# --------------------------------------------------------------------------
_NOMEM = r"""
import gc, resource, sys
import numpy as np
import crnn
sys.path.insert(0, sys.argv[1])
from test_reliability_memory import heap_in_use

crnn.set_num_threads(1)
rng = np.random.default_rng(0)
H = 2048                      # W_hh packing needs 16 MB in the forward
x = rng.standard_normal((2, 1, 3))
w_ih = 0.01 * rng.standard_normal((H, 3))
w_hh = 0.01 * rng.standard_normal((H, H))
xb = rng.standard_normal((1000, 500, 1))   # backward: da needs 1000*500*16*8 = 64 MB
w_ihb, w_hhb = 0.1 * rng.standard_normal((16, 1)), 0.1 * rng.standard_normal((16, 16))
out_ok, h_ok, _ = crnn.rnn_forward(x, None, w_ih, w_hh)
outb, _, cacheb = crnn.rnn_forward(xb, None, w_ihb, w_hhb)
gb_ok = crnn.rnn_backward(outb, None, cacheb)
del gb_ok
gc.collect()

def vm_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()

soft, hard = resource.getrlimit(resource.RLIMIT_AS)
results = []
heap0 = heap_in_use()
for attempt in range(20):
    resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + (8 << 20), hard))
    try:
        for call in ("forward", "backward"):
            try:
                if call == "forward":
                    crnn.rnn_forward(x, None, w_ih, w_hh)
                else:
                    crnn.rnn_backward(outb, None, cacheb)
                results.append(call + ":ok")
            except MemoryError as exc:
                results.append(call + ":MemoryError:" + str(exc)[:60])
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
gc.collect()
heap1 = heap_in_use()
out, h, _ = crnn.rnn_forward(x, None, w_ih, w_hh)
gb = crnn.rnn_backward(outb, None, cacheb)
print(sorted(set(results)))
print("heap growth", None if heap0 is None else heap1 - heap0)
print("again equal", bool(np.array_equal(out, out_ok) and np.array_equal(h, h_ok)))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc are Linux")
@pytest.mark.skipif(
    "asan" in os.environ.get("LD_PRELOAD", ""),
    reason="AddressSanitizer reserves more address space than the limit allows",
)
def test_kernel_allocation_failure_is_a_clean_memoryerror():
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", _NOMEM, here], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr  # no crash
    lines = proc.stdout.strip().splitlines()
    outcomes = eval(lines[-3])  # noqa: S307 - our own child's repr of a list of str
    assert "forward:MemoryError:crnn: not enough memory for the kernel's workspace" in outcomes, (
        outcomes
    )
    assert "backward:MemoryError:crnn: not enough memory for the kernel's workspace" in outcomes, (
        outcomes
    )
    growth = lines[-2].split()[-1]
    if growth != "None":
        assert int(growth) <= HEAP_BOUND, f"20 failed calls leaked {growth} bytes"
    assert lines[-1] == "again equal True"
