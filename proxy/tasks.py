"""Background tasks that keep themselves alive: started and stopped in ``cleanup_ctx``.

A task that crashes is logged and restarted after a backoff that doubles up to a minute and
resets once a run has lasted a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("l104.tasks")

MAX_BACKOFF_S = 60.0


class Supervisor:
    def __init__(self, first_backoff_s: float = 0.5) -> None:
        self.first_backoff_s = first_backoff_s
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.restarts: dict[str, int] = {}

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        if name in self.tasks:
            raise ValueError(f"a task named {name!r} is already running")
        self.restarts[name] = 0
        self.tasks[name] = asyncio.create_task(self._keep(name, run), name=f"l104:{name}")

    async def _keep(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        backoff = self.first_backoff_s
        while True:
            began = time.monotonic()
            try:
                await run()
                log.warning("task %s returned; starting it again", name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("task %s crashed; restarting in %.1fs", name, backoff)
            if time.monotonic() - began > MAX_BACKOFF_S:
                backoff = self.first_backoff_s
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            self.restarts[name] += 1

    async def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        for task in self.tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()


async def every(seconds: float, job: Callable[[], Awaitable[None]]) -> None:
    """Run ``job`` every ``seconds`` for ever (a crash ends the run: the supervisor restarts)."""
    while True:
        await asyncio.sleep(seconds)
        await job()
