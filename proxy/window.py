"""An exact sliding window: never more than ``limit`` in any ``window_s`` seconds.

A log of (time, amount) entries, so ``Retry-After`` is exact: the moment enough of the oldest
entries leave the window. Amounts may be settled later (tokens estimated, then counted).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class Entry:
    __slots__ = ("amount", "at", "live")

    def __init__(self, at: float, amount: float) -> None:
        self.at = at
        self.amount = amount
        self.live = True


class SlidingWindow:
    def __init__(self, limit: float, window_s: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.entries: deque[Entry] = deque()
        self.total = 0.0

    def _expire(self, now: float) -> None:
        edge = now - self.window_s
        while self.entries and self.entries[0].at <= edge:
            gone = self.entries.popleft()
            gone.live = False
            self.total -= gone.amount

    def used(self) -> float:
        self._expire(self.clock())
        return self.total

    def wait_for(self, amount: float = 1.0) -> float:
        """Seconds until ``amount`` fits (0 if it fits now). More than the limit fits only into
        an empty window, so one large request is never refused for ever."""
        now = self.clock()
        self._expire(now)
        need = self.total + amount - self.limit
        if need <= 0 or not self.entries:
            return 0.0
        freed = 0.0
        for entry in self.entries:
            freed += entry.amount
            if freed >= need:
                return entry.at + self.window_s - now
        return self.entries[-1].at + self.window_s - now

    def take(self, amount: float = 1.0) -> tuple[Entry | None, float]:
        """Admit ``amount`` now (returns its entry, 0) or refuse (None, seconds to wait)."""
        wait = self.wait_for(amount)
        if wait > 0:
            return None, wait
        entry = Entry(self.clock(), amount)
        self.entries.append(entry)
        self.total += amount
        return entry, 0.0

    def settle(self, entry: Entry, amount: float) -> None:
        """Replace an admitted estimate with the real amount (if still in the window)."""
        if entry.live:
            self.total += amount - entry.amount
        entry.amount = amount
