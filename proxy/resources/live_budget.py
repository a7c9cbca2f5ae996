"""The bytes of Live frames read but not yet passed on, over every session of the process.

A frame is held whole between its read and its send; with many sessions sending large frames
that added up to gigabytes. Each session's frames are capped (``limits.max_live_frame_bytes``,
closed with 1009 past it), and this budget (``limits.max_live_bytes_in_flight``) makes a pump
that would pass it wait before it reads more: back-pressure to that client, never a drop.
"""

from __future__ import annotations

import asyncio


class ByteBudget:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0
        self.peak = 0
        self._freed = asyncio.Event()  # set when bytes were given back; waiters look again

    async def take(self, size: int) -> None:
        """Wait until ``size`` more bytes fit (a frame alone always fits: a frame larger than
        the whole budget would otherwise wait for ever)."""
        while self.used and self.used + size > self.cap:
            self._freed.clear()
            await self._freed.wait()
        self.used += size
        self.peak = max(self.peak, self.used)

    async def give(self, size: int) -> None:
        """Give ``size`` bytes back (no lock, no wake-up to schedule when nobody waits)."""
        self.used -= size
        self._freed.set()
