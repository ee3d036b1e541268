"""Processes forked after crnn ran parallel regions keep working.

GNU OpenMP's threads do not survive fork(): without crnn's fork handler a
child whose forking thread had started a parallel region waits forever at
its first one. Here every child computes a forward and backward of every
cell in both dtypes and must return results bitwise equal to the parent's,
for multiprocessing's fork, forkserver and spawn start methods, os.fork,
a fork from a Python thread, forks while other threads are inside crnn
calls, and the handler's fallback (a child that runs on one thread). Every
wait has a timeout, so a hang fails the test instead of the suite.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest

import crnn
from crnn import _core, cells, functional
from helpers import assert_bitwise
from problems import make_problem, run

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork() (POSIX)"),
    # Python 3.12+ warns that forking a multi-threaded process may deadlock
    # the child; these tests fork such processes on purpose.
    pytest.mark.filterwarnings("ignore:.*multi-threaded.*:DeprecationWarning"),
]

TIMEOUT = 120.0  # seconds for any child; a hang fails instead of waiting forever
THREADS = 2
# Large enough that the calls split across THREADS threads (2M and more
# multiply-adds in the products of every cell).
SHAPE = (16, 32, 64, 64)
DTYPES = (np.float32, np.float64)


def _processors() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


needs_team = pytest.mark.skipif(
    not crnn.build_info()["openmp"] or _processors() < THREADS,
    reason=f"needs OpenMP and {THREADS} processors: crnn starts no team otherwise, "
    "so there is no thread pool for a fork to lose",
)


# --------------------------------------------------------------------------
# The work a child does (module level, so spawn and forkserver children can
# import it by name)
# --------------------------------------------------------------------------


def cell_results(cell: str, dtype_name: str) -> Dict[str, Any]:
    """Forward and backward of `cell` on a fixed problem, every result by name."""
    spec = cells.get(cell)
    p = make_problem(spec, SHAPE, np.dtype(dtype_name), seed=3, lengths="random")
    shape = (p.T, p.B, spec.width(p.sizes))
    dout = np.cos(np.arange(np.prod(shape), dtype=p.dtype)).reshape(shape)
    res = run(functional, p, dout=dout)
    return {k: None if v is None else np.array(v, copy=True) for k, v in res.items()}


CASES = [(cell, np.dtype(dt).name) for cell in cells.REGISTRY for dt in DTYPES]


def all_results() -> Dict[Tuple[str, str], Dict[str, Any]]:
    return {case: cell_results(*case) for case in CASES}


def task_threads() -> int:
    """Threads this process has now (Linux), or -1."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return -1


def child_report(_: Any = None) -> Dict[str, Any]:
    """What a child sends back: its thread count setting, its threads before
    and after its crnn calls, and every result."""
    before = task_threads()
    results = all_results()
    return dict(
        num_threads=crnn.get_num_threads(),
        threads_before=before,
        threads_after=task_threads(),
        results=results,
    )


# --------------------------------------------------------------------------
# Running children with timeouts
# --------------------------------------------------------------------------


def in_forked_child(work: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    """work() in a child made by os.fork, its pickled result sent back
    through a pipe; fails (and kills the child) after `timeout` seconds."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(r)
            signal.alarm(int(timeout) + 5)  # a last resort if the parent is gone
            data = pickle.dumps(("ok", work()))
            code = 0
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            data = pickle.dumps(("error", repr(e)))
        try:
            with os.fdopen(w, "wb") as f:
                f.write(data)
        finally:
            os._exit(code)
    os.close(w)
    chunks: List[bytes] = []
    deadline = time.monotonic() + timeout
    os.set_blocking(r, False)
    try:
        while True:
            try:
                chunk = os.read(r, 1 << 20)
            except BlockingIOError:
                chunk = None
            if chunk:
                chunks.append(chunk)
            elif chunk == b"":
                break
            elif time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"the forked child did not finish within {timeout:.0f} s (hung)")
            else:
                time.sleep(0.01)
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    assert chunks, f"the forked child sent nothing (wait status {status})"
    kind, value = pickle.loads(b"".join(chunks))
    assert kind == "ok", f"the forked child failed: {value}"
    return value


@pytest.fixture
def parent_ran_parallel():
    """The parent's results, computed on THREADS threads (so its OpenMP pool
    exists when the test forks), and the count restored afterwards."""
    crnn.set_num_threads(THREADS)
    try:
        yield all_results()
    finally:
        crnn.set_num_threads(None)


def assert_same_results(got: Dict, want: Dict, ctx: str) -> None:
    assert set(got) == set(want), ctx
    for case in want:
        assert_bitwise(got[case], want[case], f"{ctx} {case}")


def assert_child_used_threads(report: Dict[str, Any], ctx: str) -> None:
    """The child kept the thread count and really started a team of its own."""
    assert report["num_threads"] == THREADS, ctx
    if report["threads_before"] > 0:
        assert report["threads_after"] > report["threads_before"], (
            f"{ctx}: the child started no OpenMP thread ({report})"
        )


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------


@needs_team
def test_os_fork_child_keeps_its_threads(parent_ran_parallel):
    report = in_forked_child(child_report)
    assert_same_results(report["results"], parent_ran_parallel, "os.fork child")
    assert_child_used_threads(report, "os.fork child")
    # The parent goes on with a new team, the same numbers.
    assert_same_results(all_results(), parent_ran_parallel, "parent after the fork")


@needs_team
def test_children_of_children(parent_ran_parallel):
    def child_then_grandchild():
        all_results()  # the child starts a team of its own, then forks
        return in_forked_child(child_report)

    report = in_forked_child(child_then_grandchild)
    assert_same_results(report["results"], parent_ran_parallel, "grandchild")
    assert_child_used_threads(report, "grandchild")


@needs_team
@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_pool_after_parallel_call(parent_ran_parallel, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"start method {method!r} is not available here")
    ctx = multiprocessing.get_context(method)
    pool = ctx.Pool(2)
    try:
        reports = pool.map_async(child_report, range(2)).get(timeout=TIMEOUT)
    except multiprocessing.TimeoutError:
        pytest.fail(f"a {method} pool's workers did not finish within {TIMEOUT:.0f} s (hung)")
    finally:
        pool.terminate()
        pool.join()
    for report in reports:
        assert_same_results(report["results"], parent_ran_parallel, f"{method} pool worker")
    if method == "fork":  # the parent's fixed count travels with the fork
        for report in reports:
            assert_child_used_threads(report, "fork pool worker")


@needs_team
def test_fork_from_a_thread_that_ran_crnn(parent_ran_parallel):
    """The forking thread is not the main thread: its own pool is let go."""
    box: Dict[str, Any] = {}

    def worker():
        try:
            all_results()  # this thread's own OpenMP pool
            box["report"] = in_forked_child(child_report)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = e

    t = threading.Thread(target=worker)
    t.start()
    t.join(TIMEOUT + 30)
    assert not t.is_alive(), "the forking thread did not finish (hung)"
    if "error" in box:
        raise box["error"]
    assert_same_results(box["report"]["results"], parent_ran_parallel, "child of a thread")
    assert_child_used_threads(box["report"], "child of a thread")


@needs_team
def test_fork_while_other_threads_are_inside_crnn(parent_ran_parallel):
    """Two Python threads keep calling crnn (inside its parallel regions, the
    GIL released) while the main thread forks, repeatedly; every child and
    every call of the threads gives the parent's numbers."""
    stop = threading.Event()
    errors: List[BaseException] = []
    calls = [0, 0]
    busy_cases = [CASES[0], CASES[-1]]

    def busy(k: int) -> None:
        case = busy_cases[k]
        try:
            while not stop.is_set():
                assert_bitwise(cell_results(*case), parent_ran_parallel[case], f"thread {k}")
                calls[k] += 1
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    threads = [threading.Thread(target=busy, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 30
        while min(calls) < 1 and time.monotonic() < deadline and not errors:
            time.sleep(0.01)
        assert min(calls) >= 1, "the busy threads made no call"
        for i in range(3):
            report = in_forked_child(child_report)
            assert_same_results(report["results"], parent_ran_parallel, f"child {i}")
            assert_child_used_threads(report, f"child {i}")
        pool = multiprocessing.get_context("fork").Pool(2)
        try:
            reports = pool.map_async(child_report, range(2)).get(timeout=TIMEOUT)
        except multiprocessing.TimeoutError:
            pytest.fail("a fork pool made while threads were inside crnn hung")
        finally:
            pool.terminate()
            pool.join()
        for report in reports:
            assert_same_results(report["results"], parent_ran_parallel, "pool worker")
    finally:
        stop.set()
        for t in threads:
            t.join(TIMEOUT)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)


@needs_team
@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the handler is for GNU OpenMP (Linux)"
)
def test_child_runs_serially_when_threads_cannot_be_released(parent_ran_parallel):
    """The fallback: a child forked without the release runs on one thread,
    as do its own children, with the same numbers."""
    previous = _core._testing_set_fork_release(False)
    try:

        def child_then_grandchild():
            first = child_report()
            return first, in_forked_child(child_report)

        child, grandchild = in_forked_child(child_then_grandchild)
    finally:
        _core._testing_set_fork_release(previous)
    for name, report in (("child", child), ("grandchild", grandchild)):
        assert report["num_threads"] == 1, name
        assert report["threads_after"] == report["threads_before"], (
            f"{name} started threads: {report}"
        )
        assert_same_results(report["results"], parent_ran_parallel, name)
    # The knob only changes children: the parent still uses its threads.
    assert crnn.get_num_threads() == THREADS
