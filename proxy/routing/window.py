"""A sliding window that never admits more than ``limit`` in any ``window_s`` seconds.

Admissions are kept in 60 buckets a window, so memory stays small at any rate. A bucket leaves
the window when its *last* admission does: the limit is never overshot, and ``Retry-After`` is
never early (exact when a bucket holds one admission, else up to 1/60 of the window late).
Amounts may be settled later (tokens estimated first, then counted).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

BUCKETS = 60


class Bucket:
    __slots__ = ("amount", "last", "live", "start")

    def __init__(self, start: float, at: float) -> None:
        self.start = start
        self.last = at
        self.amount = 0.0
        self.live = True


class Entry:
    """One admission, to settle later."""

    __slots__ = ("amount", "bucket")

    def __init__(self, bucket: Bucket, amount: float) -> None:
        self.bucket = bucket
        self.amount = amount


class SlidingWindow:
    def __init__(self, limit: float, window_s: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window_s = window_s
        self.width = window_s / BUCKETS
        self.clock = clock
        self.buckets: deque[Bucket] = deque()
        self.total = 0.0

    def _expire(self, now: float) -> None:
        # The same sum as the wait below (``last + window_s - now``): written as ``now -
        # window_s`` it can round the other way, and a bucket one ulp inside the window would
        # be neither expired nor waited for.
        window_s = self.window_s
        while self.buckets and self.buckets[0].last + window_s <= now:
            gone = self.buckets.popleft()
            gone.live = False
            self.total -= gone.amount

    def used(self) -> float:
        self._expire(self.clock())
        return self.total

    def wait_for(self, amount: float = 1.0) -> float:
        """Seconds until ``amount`` fits (0 if it fits now). More than the limit fits only into
        an empty window, so one large request is never refused for ever."""
        now = self.clock()
        buckets = self.buckets
        if buckets and buckets[0].last + self.window_s <= now:  # the test _expire loops on
            self._expire(now)
        need = self.total + amount - self.limit
        if need <= 0 or not buckets:
            return 0.0
        freed = 0.0
        for bucket in self.buckets:
            freed += bucket.amount
            if freed >= need:
                return bucket.last + self.window_s - now
        return self.buckets[-1].last + self.window_s - now

    def count_if_room(self, amount: float = 1.0) -> float:
        """:meth:`wait_for` and :meth:`count` in one call: 0 when ``amount`` fitted and was
        counted, else the seconds to wait (and nothing was counted)."""
        now = self.clock()
        buckets = self.buckets
        if buckets and buckets[0].last + self.window_s <= now:
            self._expire(now)
        if buckets and self.total + amount > self.limit:
            wait = self.wait_for(amount)
            if wait > 0:
                return wait
        self._count(now, amount)
        return 0.0

    def take(self, amount: float = 1.0) -> tuple[Entry | None, float]:
        """Admit ``amount`` now (returns its entry, 0) or refuse (None, seconds to wait)."""
        wait = self.wait_for(amount)
        if wait > 0:
            return None, wait
        return self.admit(amount), 0.0

    def admit(self, amount: float = 1.0) -> Entry:
        """Count ``amount`` now, unchecked: for a caller that has just seen :meth:`wait_for`
        say 0 (with nothing awaited since, nothing else was admitted)."""
        return Entry(self.count(amount), amount)

    def count(self, amount: float = 1.0) -> Bucket:
        """:meth:`admit` for an amount that is never settled (no entry is made for it)."""
        return self._count(self.clock(), amount)

    def _count(self, now: float, amount: float) -> Bucket:
        bucket = self.buckets[-1] if self.buckets else None
        if bucket is None or now >= bucket.start + self.width:
            bucket = Bucket(now, now)
            self.buckets.append(bucket)
        bucket.last = now
        bucket.amount += amount
        self.total += amount
        return bucket

    def settle(self, entry: Entry, amount: float) -> None:
        """Replace an admitted estimate with the real amount (if still in the window)."""
        if entry.bucket.live:
            entry.bucket.amount += amount - entry.amount
            self.total += amount - entry.amount
        entry.amount = amount
