"""State that outlives a restart, and housekeeping."""

from __future__ import annotations

import asyncio
from pathlib import Path

from proxy.metrics import Counters
from proxy.store.db import LedgerRow, Store
from proxy.store.writer import Writer


async def test_counters_round_trip(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "s.db"), Writer())
    counters = Counters(requests_total=7, model_rotations=2)
    counters.model_usage["m1"] += 5
    counters.model_429_count["m1"] += 1
    await store.save_counters(counters.persistent())
    await store.close()
    store = await Store.open(str(tmp_path / "s.db"), Writer())
    again = Counters()
    again.restore(await store.load_counters())
    assert again.persistent() == counters.persistent()
    await store.close()


async def test_cooldowns_round_trip_and_prune(tmp_path: Path) -> None:
    writer = Writer()
    store = await Store.open(str(tmp_path / "s.db"), writer)
    task = asyncio.create_task(writer.run(store.db))
    store.save_cooldown(("up", "m1", 0), 1000.0 + 90)
    store.save_cooldown(("up", "m2", 1), 1000.0 - 5)  # already over
    store.record(LedgerRow(1000.0 - 40 * 86_400, "c", "d", "m1", 1, 200, 1, 1, 1.0, None, ""))
    store.record(LedgerRow(1000.0, "c", "d", "m1", 1, 200, 1, 1, 1.0, None, ""))
    writer.stop()
    await task
    assert await store.load_cooldowns(now_wall=1000.0) == [(("up", "m1", 0), 90.0)]
    assert await store.prune(30, now_wall=1000.0) == 1
    assert await store.rows("SELECT COUNT(*) FROM ledger") == [(1,)]
    assert await store.rows("SELECT COUNT(*) FROM cooldowns") == [(1,)]
    await store.checkpoint()
    await store.close()
