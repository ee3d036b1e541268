"""The busy-machine back-off (csrc/threads.c; described in crnn._testing).

With OpenMP's default thread count, a parallel region whose team was
starved makes the next calls run on one thread: a spell of 4 calls, doubled
(up to 256) while regions keep starving, halved after each region that ran
well. A thread count fixed by `crnn.set_num_threads` ignores it. The tests
provoke the detection with `crnn._testing.stall_next_region` (thread 1 of the
next parallel region sleeps before it starts) and read the state with
`backoff_state` and the counters of what ran.

The problem is an Elman RNN forward so small that its only parallel region is
the recurrence (two batch rows, two slices under a forced split), and the
default count is set to 2 (threadpoolctl), so every step is exact whatever
the machine. Only the recovery test meets the machine itself: a region that
happens to starve on a busy machine doubles the spell instead of halving it,
so it counts the regions that ran well rather than expecting each to.
"""

from __future__ import annotations

import numpy as np
import pytest

import crnn
from crnn._testing import backoff_state, counts, force_split, reset_backoff, stall_next_region
from problems import SPECS, make_problem

STALL_MS = 30
FIRST_SPELL, LONGEST_SPELL = 4, 256

pytestmark = pytest.mark.skipif(not crnn.build_info()["openmp"], reason="built without OpenMP")


@pytest.fixture
def two_default_threads():
    """OpenMP's default thread count (which the back-off watches) at 2, and
    every problem cut into as many slices as it allows."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    crnn.set_num_threads(None)
    with threadpoolctl.threadpool_limits(limits=2, user_api="openmp"), force_split():
        assert crnn.get_num_threads() == 2
        reset_backoff()
        yield


_PROBLEM = make_problem(SPECS[0], (2, 2, 3, 4), np.float64, seed=1).named_kwargs()


def team_of_a_call(stall: bool = False) -> int:
    """The team the next call's recurrence ran on (after a stall of thread 1)."""
    if stall:
        stall_next_region(STALL_MS)
    with counts() as seen:
        crnn.rnn_forward(**_PROBLEM)
    assert seen.recurrences == 1, seen
    return seen.max_team


def sit_out(spell: int) -> None:
    """Run the spell's calls: each on one thread, each one call shorter."""
    for left in range(spell - 1, -1, -1):
        assert team_of_a_call() == 1
        assert backoff_state().calls_left == left


def test_a_stalled_region_starts_a_spell_on_one_thread(two_default_threads):
    assert backoff_state() == (0, 0)
    assert team_of_a_call() == 2
    reset_backoff()  # that call may have starved on a busy machine
    assert team_of_a_call(stall=True) == 2
    assert backoff_state() == (FIRST_SPELL, FIRST_SPELL)
    sit_out(FIRST_SPELL)
    assert backoff_state().spell_length == FIRST_SPELL
    assert team_of_a_call() == 2, "the spell is over: two threads again"


def test_the_spell_doubles_while_regions_keep_starving(two_default_threads):
    spell = FIRST_SPELL
    for _ in range(8):  # 4, 8, ..., 256, then 256 again
        assert team_of_a_call(stall=True) == 2
        assert backoff_state() == (spell, spell)
        sit_out(spell)
        spell = min(2 * spell, LONGEST_SPELL)
    assert backoff_state() == (0, LONGEST_SPELL)


def test_the_spell_halves_after_each_region_that_runs_well(two_default_threads):
    for _ in range(3):  # spells of 4, 8, 16
        team_of_a_call(stall=True)
        sit_out(backoff_state().calls_left)
    assert backoff_state() == (0, 16)
    halvings = 0
    for _ in range(100):
        before = backoff_state().spell_length
        assert team_of_a_call() == 2
        calls_left, after = backoff_state()
        if calls_left == 0:  # ran well
            assert after == before // 2
            halvings += 1
            if after == 0:
                break
        else:  # the machine starved it: a longer spell, which passes too
            assert after == calls_left == max(FIRST_SPELL, min(2 * before, LONGEST_SPELL))
            sit_out(calls_left)
    assert halvings >= 5 and backoff_state() == (0, 0), "16 -> 8 -> 4 -> 2 -> 1 -> 0"


def test_a_fixed_thread_count_ignores_the_spell(two_default_threads):
    team_of_a_call(stall=True)
    assert backoff_state() == (FIRST_SPELL, FIRST_SPELL)
    crnn.set_num_threads(2)
    for _ in range(2 * FIRST_SPELL):
        assert team_of_a_call() == 2
    # Not shortened by those calls (a region of theirs that starved on a busy
    # machine would have started a longer one).
    assert backoff_state().calls_left >= FIRST_SPELL
    crnn.set_num_threads(None)
    assert team_of_a_call() == 1


# The conftest fixture clears the back-off around every test: the first of
# these two tests leaves a spell behind, the second (run next, in file order)
# must not inherit it.
def test_the_back_off_is_cleared_between_tests_1(two_default_threads):
    team_of_a_call(stall=True)
    assert backoff_state().calls_left == FIRST_SPELL


def test_the_back_off_is_cleared_between_tests_2():
    assert backoff_state() == (0, 0)
