"""The Live byte budget: a frame that would pass the cap waits for one sent on, never drops."""

from __future__ import annotations

import asyncio

from proxy.resources.live_budget import ByteBudget


async def test_a_frame_past_the_cap_waits_until_bytes_are_given_back() -> None:
    budget = ByteBudget(100)
    await budget.take(60)
    waiting = asyncio.ensure_future(budget.take(50))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    assert budget.used == 60
    await budget.give(60)
    await asyncio.wait_for(waiting, 1)
    assert budget.used == 50
    assert budget.peak == 60


async def test_a_frame_larger_than_the_whole_budget_passes_alone() -> None:
    budget = ByteBudget(10)
    await asyncio.wait_for(budget.take(50), 1)
    assert budget.used == 50
    await budget.give(50)
    assert budget.used == 0
