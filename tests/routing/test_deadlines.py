"""Deadlines that share one timer: they fire (a little late at most), and only on their task."""

from __future__ import annotations

import asyncio
import time

import pytest

from proxy.routing.deadlines import Deadlines


async def guarded(deadlines: Deadlines, work: float) -> str:
    with deadlines.bound():
        await asyncio.sleep(work)
        return "done"


async def test_a_deadline_fires_within_a_twentieth_of_itself() -> None:
    deadlines = Deadlines(0.2)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await guarded(deadlines, 5)
    took = time.monotonic() - started
    assert 0.2 <= took < 0.2 + 0.01 + 0.05  # one resolution late at most, plus the loop's slack


async def test_work_within_its_deadline_is_untouched_and_the_timer_stops() -> None:
    deadlines = Deadlines(0.2)
    assert await asyncio.gather(*(guarded(deadlines, 0.01) for _ in range(50))) == ["done"] * 50
    await asyncio.sleep(0.05)
    assert deadlines._sweep is None  # nothing left to watch: no timer runs while idle


async def test_only_the_late_task_is_cancelled() -> None:
    deadlines = Deadlines(0.1)
    late = asyncio.create_task(guarded(deadlines, 5))
    await asyncio.sleep(0.05)
    on_time = asyncio.create_task(guarded(deadlines, 0.08))
    with pytest.raises(TimeoutError):
        await late
    assert await on_time == "done"


async def test_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    deadlines = Deadlines(5)
    task = asyncio.create_task(guarded(deadlines, 5))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not deadlines._due


def test_a_second_event_loop_gets_a_sweep_of_its_own() -> None:
    deadlines = Deadlines(0.05)
    # The first loop closes with its sweep still scheduled (the work ended in time).
    assert asyncio.run(guarded(deadlines, 0.001)) == "done"
    with pytest.raises(TimeoutError):
        asyncio.run(guarded(deadlines, 1))
