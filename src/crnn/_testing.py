"""Private test hooks of crnn's C engine: not part of crnn's API.

crnn's test-suite uses this module to make small problems take the code paths
of large ones, to check which of those paths really ran, and to drive the
busy-machine back-off. Nothing here is needed to use crnn and any name may
change in any release. Every knob is process-wide: use the context managers,
which put each setting back as they found it, and do not call crnn from other
threads meanwhile unless the test means to.

Splitting work across threads
    crnn starts a thread only when it gets about 1M multiply-adds of work
    (`set_min_work`), and never more threads than the processors this process
    may run on (`set_oversubscribe`). ``force_split(n)`` lowers the first to
    1, lifts the second and fixes the thread count at n (`crnn.set_num_threads`),
    so any problem with at least n units of work -- batch rows, panels of
    hidden units, tiles of a product -- is cut into n slices on n threads,
    even on one CPU. Results do not depend on the slicing, only the time does
    (threads that outnumber the processors take turns on them).

What ran
    ``with counts() as seen:`` zeroes the C library's counters; when the block
    ends, `seen` holds what ran inside it (`Counts`): the largest team a
    parallel region started, the largest number of slices a recurrence was
    cut into, the recurrences (one per forward, one per chunk of a backward),
    how many of them split one batch row's hidden units across threads (batch
    1), how many gave a thread several slices of batch rows (a team smaller
    than the slice count), and the chunks of steps the backward ran through
    time. `read_counts` reads them without waiting for the block's end.

The busy-machine back-off
    With OpenMP's default thread count (no ``crnn.set_num_threads(n)``) every
    parallel region times its threads. A region whose team was starved -- a
    thread started more than 2 ms late and later than half the calling
    thread's own share of the work, or the calling thread waited more than
    2 ms and 1.5 times its share at the end, or a thread waited more than 2 ms
    at a step barrier or spent more than half its steps waiting there --
    starts a spell: the next calls run on one thread. A spell lasts 4 calls
    the first time and doubles, up to 256, while regions keep starving; each
    region that runs well halves the length of the next spell. A thread count
    fixed by ``crnn.set_num_threads(n)`` turns the back-off off (its regions
    still feed the detection: a spell they start applies once the count is
    OpenMP's default again). Regions on one thread count neither way. The
    state is process-wide and lasts from call to call: `backoff_state` reads it,
    `reset_backoff` clears it (the test-suite does so around every test), and
    `stall_next_region` makes thread 1 of the next parallel region sleep
    before it starts, which the region's clock reads as a starved team: a
    test provokes the detection, then watches the recovery.

Arrays filled before the C library writes them
    The C engine's functions allocate the arrays the C library writes (the
    outputs, states, saved arrays and gradients) without initialising them:
    the library writes every element. ``set_output_fill(nan)`` fills them with
    NaN first (the test-suite does for every test), so that an element a
    kernel leaves unwritten, or reads before a thread has written it (a
    missing barrier), shows in the results instead of whatever the memory
    held, which may be the right answer of an earlier call.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, fields
from typing import Iterator, NamedTuple, Optional

from . import _core, functional
from ._runtime import set_num_threads

__all__ = [
    "BackoffState",
    "Counts",
    "backoff_state",
    "counts",
    "force_split",
    "read_counts",
    "reset",
    "reset_backoff",
    "set_min_work",
    "set_output_fill",
    "set_oversubscribe",
    "stall_next_region",
]


def set_min_work(n: int) -> int:
    """Set the work (multiply-adds) a thread must get before crnn starts it.

    1 makes any problem with two or more units of work split across the
    thread count; 0 (or less) restores the default (1048576). Returns the
    previous value.
    """
    return int(_core._testing_set_min_work(int(n)))


def set_oversubscribe(allow: bool) -> bool:
    """Let a team outnumber the processors this process may run on (or not,
    the default). Returns the previous setting."""
    return bool(_core._testing_set_oversubscribe(bool(allow)))


@contextlib.contextmanager
def force_split(threads: Optional[int] = None, *, oversubscribe: bool = True) -> Iterator[None]:
    """Within the block, cut every problem into as many slices as it allows,
    up to the thread count.

    threads: fix crnn's thread count at this value for the block (then
    return to OpenMP's default); None keeps the count as it is (the
    back-off tests need OpenMP's default). oversubscribe: start that many
    threads even on fewer processors (True), or cap the team at the
    processors, so that each thread takes several slices (False).
    """
    previous_work = set_min_work(1)
    previous_over = set_oversubscribe(oversubscribe)
    if threads is not None:
        set_num_threads(threads)
    try:
        yield
    finally:
        if threads is not None:
            set_num_threads(None)
        set_min_work(previous_work)
        set_oversubscribe(previous_over)


@dataclass
class Counts:
    """What the C library ran since its counters were last zeroed."""

    max_team: int = 0  # the largest team a parallel region started
    max_slices: int = 0  # the most slices a recurrence was cut into
    recurrences: int = 0  # recurrence regions: one per forward, one per BPTT chunk
    column_splits: int = 0  # of those, batch-1 splits of the hidden units
    shared_slices: int = 0  # of those, batch-row splits where a thread took several slices
    bptt_chunks: int = 0  # chunks of steps the backward ran through time


def read_counts() -> Counts:
    """The counters now (all 0 until the first `counts` block zeroes them)."""
    return Counts(**_core._testing_counts())


@contextlib.contextmanager
def counts() -> Iterator[Counts]:
    """Zero the counters; yield a `Counts` that holds what ran once the block
    ends (also when it raises). Not nestable: an inner block zeroes them too."""
    seen = Counts()
    _core._testing_counts_reset()
    try:
        yield seen
    finally:
        now = read_counts()
        for f in fields(Counts):
            setattr(seen, f.name, getattr(now, f.name))


class BackoffState(NamedTuple):
    """The back-off: calls still to run on one thread, and the next spell's length."""

    calls_left: int
    spell_length: int


def backoff_state() -> BackoffState:
    """The back-off's state now."""
    return BackoffState(*_core._testing_backoff())


def reset_backoff() -> None:
    """End any spell on one thread and forget the past ones (length 0)."""
    _core._testing_backoff_reset()


def stall_next_region(ms: int) -> None:
    """Make thread 1 of the next parallel region that has one sleep `ms`
    milliseconds before it starts (once; 0 disarms a stall not yet taken)."""
    _core._testing_stall_next_region(int(ms))


def set_output_fill(value: Optional[float]) -> Optional[float]:
    """Fill the arrays the C library is to write with `value` before each
    call (None: leave them uninitialised, the default). Returns the
    previous setting."""
    previous = functional._OUTPUT_FILL
    functional._OUTPUT_FILL = None if value is None else float(value)
    return previous


def reset() -> None:
    """Every knob back to its default: the work per thread, no
    oversubscription, no stall armed, no back-off, outputs not filled."""
    set_min_work(0)
    set_oversubscribe(False)
    stall_next_region(0)
    reset_backoff()
    set_output_fill(None)
