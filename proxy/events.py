"""A small in-process event bus: the watchdog publishes, the status page's SSE streams listen.

Each subscriber has a bounded queue; a slow one loses its oldest events, never slows the rest.
"""

from __future__ import annotations

import asyncio
from typing import Any

Event = tuple[str, dict[str, Any]]


class Bus:
    def __init__(self, depth: int = 64) -> None:
        self.depth = depth
        self.subscribers: set[asyncio.Queue[Event]] = set()

    def publish(self, name: str, data: dict[str, Any]) -> None:
        for queue in self.subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait((name, data))

    def subscribe(self) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self.depth)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self.subscribers.discard(queue)
