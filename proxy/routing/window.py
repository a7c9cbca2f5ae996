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
    __slots__ = ("amount", "end", "last", "live")

    def __init__(self, end: float, at: float, amount: float) -> None:
        self.end = end  # admissions before then go into this bucket
        self.last = at
        self.amount = amount
        self.live = True


class Entry:
    """One admission, to settle later."""

    __slots__ = ("amount", "bucket")

    def __init__(self, bucket: Bucket, amount: float) -> None:
        self.bucket = bucket
        self.amount = amount


class SlidingWindow:
    """The window. What has left it is taken out lazily: ``total`` may still hold it, so an
    amount that fits ``total`` fits the window, and only an amount that does not (or a new
    bucket) makes the window look at what has left. The usual admission is then a few
    operations: the hot path has one such window for the proxy and two for each client."""

    def __init__(self, limit: float, window_s: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window_s = window_s
        self.width = window_s / BUCKETS
        self.clock = clock
        self.buckets: deque[Bucket] = deque()
        self.current: Bucket | None = None  # the newest bucket
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
        if self.total + amount <= self.limit:
            return 0.0  # it fits even counting what may have left the window
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
        if self.total + amount > self.limit:
            wait = self.wait_for(amount)
            if wait > 0:
                return wait
        self._count(self.clock(), amount)
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
        return Entry(self._count(self.clock(), amount), amount)

    def count(self, amount: float = 1.0) -> Bucket:
        """:meth:`admit` for an amount that is never settled (no entry is made for it)."""
        return self._count(self.clock(), amount)

    def _count(self, now: float, amount: float) -> Bucket:
        bucket = self.current
        if bucket is None or now >= bucket.end:
            return self._open(now, amount)
        bucket.last = now
        bucket.amount += amount
        self.total += amount
        return bucket

    def _open(self, now: float, amount: float) -> Bucket:
        """A new bucket holding ``amount``; what has left the window goes first, so the buckets
        stay about ``BUCKETS`` however long no admission needs a wait."""
        buckets = self.buckets
        if buckets and buckets[0].last + self.window_s <= now:
            self._expire(now)
        bucket = self.current = Bucket(now + self.width, now, amount)
        buckets.append(bucket)
        self.total += amount
        return bucket

    def settle(self, entry: Entry, amount: float) -> None:
        """Replace an admitted estimate with the real amount (if still in the window)."""
        if entry.bucket.live:
            entry.bucket.amount += amount - entry.amount
            self.total += amount - entry.amount
        entry.amount = amount
