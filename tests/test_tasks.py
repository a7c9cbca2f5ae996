"""Supervised background tasks restart after a crash."""

from __future__ import annotations

import asyncio

import pytest

from proxy.tasks import Supervisor


async def test_a_crashed_task_is_logged_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    runs = 0
    done = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("boom")
        done.set()
        await asyncio.Event().wait()

    supervisor = Supervisor(first_backoff_s=0.01)
    supervisor.start("flaky", flaky)
    await asyncio.wait_for(done.wait(), 5)
    assert runs == 3
    assert supervisor.restarts["flaky"] == 2
    assert sum("task flaky crashed" in r.message for r in caplog.records) == 2
    with pytest.raises(ValueError, match="already running"):
        supervisor.start("flaky", flaky)
    await supervisor.stop()
    assert supervisor.tasks == {}
