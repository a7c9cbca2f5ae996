"""Quotas known ahead of any round trip, per (responder, model, project): the ones the user
declared (``rpm``, ``tpm``, ``rpd``), and the ones the upstream told in a 429 (a token quota's
``quotaValue`` per minute, a per-day quota's). With correct declarations the proxy never sends
more than a quota allows, so it never burns a 429, even in the first burst.

Requests a day are counted per project and model, the day ending at midnight US Pacific, when
Gemini's daily quotas reset; the counts are saved in the store so a restart keeps them.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from proxy.config import Quota
from proxy.routing.cooldown import KeyRef
from proxy.routing.quota import PACIFIC, until_daily_reset
from proxy.routing.window import Entry, SlidingWindow

MINUTE_S = 60.0


def pacific_day(now: datetime) -> date:
    return now.astimezone(PACIFIC).date()


class Stamps:
    """Requests a minute, exactly: one time per request (a quota of a few thousand at most),
    so the wait it tells is the true one to the millisecond, not to a bucket's width."""

    __slots__ = ("clock", "limit", "times")

    def __init__(self, limit: int, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.clock = clock
        self.times: deque[float] = deque()

    def used(self) -> int:
        edge = self.clock() - MINUTE_S
        times = self.times
        while times and times[0] <= edge:
            times.popleft()
        return len(times)

    def wait_for(self) -> float:
        if self.used() < self.limit:
            return 0.0
        return self.times[len(self.times) - self.limit] + MINUTE_S - self.clock()

    def take(self) -> float:
        now = self.clock()
        self.times.append(now)
        return now

    def forget(self, stamp: float) -> None:
        """A request the upstream refused: it takes no slot."""
        with contextlib.suppress(ValueError):
            self.times.remove(stamp)

    def restamp(self, stamp: float) -> None:
        """Count a request from when its answer came rather than when it was sent: the
        upstream counted it somewhere in between, so this window never frees a slot early."""
        with contextlib.suppress(ValueError):
            self.times.remove(stamp)
            self.times.append(self.clock())


@dataclass(slots=True)
class _Lane:
    rpm: Stamps | None = None
    tpm: SlidingWindow | None = None
    rpd: int = 0  # requests a day; 0: unknown
    day: date | None = None
    used: int = 0  # requests sent on ``day``


@dataclass(slots=True)
class Ticket:
    """What one attempt took from a lane; its token estimate is settled on the real count."""

    tokens: Entry | None = None
    sent: float | None = None  # its stamp in the requests-a-minute window
    fleet: object | None = None  # its slot in the fleet's windows (store.shared)


@dataclass(slots=True)
class Budget:
    quotas: Mapping[tuple[str, str], Quota] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    lanes: dict[KeyRef, _Lane] = field(default_factory=dict)

    def _lane(self, ref: KeyRef, create: bool = False) -> _Lane | None:
        lane = self.lanes.get(ref)
        if lane is not None:
            return lane
        quota = self.quotas.get((ref[0], ref[1]))
        if quota is None and not create:
            return None
        lane = _Lane()
        if quota is not None:
            lane.rpm = Stamps(quota.rpm, self.clock) if quota.rpm else None
            lane.tpm = SlidingWindow(quota.tpm, MINUTE_S, self.clock) if quota.tpm else None
            lane.rpd = quota.rpd
        self.lanes[ref] = lane
        return lane

    def _today(self, lane: _Lane) -> None:
        today = pacific_day(self.now())
        if lane.day != today:
            lane.day, lane.used = today, 0

    def wait_for(self, ref: KeyRef, tokens: int) -> tuple[float, str]:
        """Seconds until ``ref`` has room for one request of ``tokens`` (0: now), and why."""
        lane = self._lane(ref)
        if lane is None:
            return 0.0, ""
        if lane.rpd:
            self._today(lane)
            if lane.used >= lane.rpd:
                return until_daily_reset(self.now()), "out of its per-day quota for"
        if lane.rpm is not None:
            wait = lane.rpm.wait_for()
            if wait > 0:
                return wait, "at its requests-per-minute quota for"
        if lane.tpm is not None:
            wait = lane.tpm.wait_for(tokens)
            if wait > 0:
                return wait, "at its tokens-per-minute quota for"
        return 0.0, ""

    def limits(self, ref: KeyRef) -> tuple[int, int, int] | None:
        """The (rpm, tpm, rpd) known for ``ref``, declared or learned; None: none is."""
        lane = self._lane(ref)
        if lane is None:
            return None
        rpm = lane.rpm.limit if lane.rpm is not None else 0
        tpm = int(lane.tpm.limit) if lane.tpm is not None else 0
        return (rpm, tpm, lane.rpd) if rpm or tpm or lane.rpd else None

    def take(self, ref: KeyRef, tokens: int) -> Ticket | None:
        """Count one request of ``tokens`` (estimated) sent on ``ref``."""
        lane = self._lane(ref)
        if lane is None:
            return None
        if lane.rpd:
            self._today(lane)
        lane.used += 1
        sent = lane.rpm.take() if lane.rpm is not None else None
        entry = lane.tpm.take(tokens)[0] if lane.tpm is not None else None
        return Ticket(entry, sent)

    def refused(self, ref: KeyRef, ticket: Ticket | None) -> None:
        """The request got a 429: the upstream did not count it, so it frees its slot."""
        lane = self.lanes.get(ref)
        if ticket is not None and ticket.sent is not None and lane is not None and lane.rpm:
            lane.rpm.forget(ticket.sent)

    def answered(self, ref: KeyRef, ticket: Ticket | None) -> None:
        """The upstream answered the request ``ticket`` was taken for: it has counted it."""
        lane = self.lanes.get(ref)
        if ticket is not None and ticket.sent is not None and lane is not None and lane.rpm:
            lane.rpm.restamp(ticket.sent)

    def settle(self, ref: KeyRef, ticket: Ticket | None, tokens: int) -> None:
        """Replace a request's token estimate by what ``usageMetadata`` counted."""
        lane = self.lanes.get(ref)
        if ticket is None or ticket.tokens is None or lane is None or lane.tpm is None:
            return
        if tokens > 0:
            lane.tpm.settle(ticket.tokens, tokens)

    def learn_tokens(self, ref: KeyRef, per_minute: int) -> None:
        """A 429 on a token quota said its size: pace by tokens from now on (a declared
        quota that is higher is corrected down)."""
        lane = self._lane(ref, create=True)
        assert lane is not None
        if lane.tpm is None or per_minute < lane.tpm.limit:
            old = lane.tpm
            lane.tpm = SlidingWindow(per_minute, MINUTE_S, self.clock)
            if old is not None:  # what was sent this minute still counts
                lane.tpm.take(old.used())

    def learn_day(self, ref: KeyRef, per_day: int | None) -> None:
        """A per-day 429: the day's quota is used up (and now known, if it said its size)."""
        lane = self._lane(ref, create=True)
        assert lane is not None
        self._today(lane)
        if per_day:
            lane.rpd = per_day if not lane.rpd else min(lane.rpd, per_day)
        lane.used = max(lane.used, lane.rpd or lane.used)

    def describe(self, ref: KeyRef) -> dict[str, Any] | None:
        """What ``ref`` has left, for ``/health``: None if nothing is known of its quotas."""
        lane = self._lane(ref)
        if lane is None:
            return None
        out: dict[str, Any] = {}
        if lane.rpm is not None:
            out["rpm"] = {"limit": lane.rpm.limit, "used": lane.rpm.used()}
        if lane.tpm is not None:
            out["tpm"] = {"limit": lane.tpm.limit, "used": round(lane.tpm.used())}
        if lane.rpd:
            self._today(lane)
            out["rpd"] = {
                "limit": lane.rpd,
                "used": lane.used,
                "left": max(0, lane.rpd - lane.used),
            }
        return out or None

    # Kept across restarts: the day's counts.

    def requota(self, quotas: Mapping[tuple[str, str], Quota]) -> None:
        """A reloaded config's quotas. What was counted stays: requests sent this minute and
        today count against the new limits; a lane whose quota is unchanged is untouched."""
        old, self.quotas = self.quotas, quotas
        for ref, lane in self.lanes.items():
            quota = quotas.get((ref[0], ref[1]))
            if quota == old.get((ref[0], ref[1])):
                continue
            if quota is None or not quota.rpm:
                lane.rpm = None
            elif lane.rpm is None:
                lane.rpm = Stamps(quota.rpm, self.clock)
            else:
                lane.rpm.limit = quota.rpm  # the stamps of this minute stay
            if quota is None or not quota.tpm:
                lane.tpm = None
            elif lane.tpm is None:
                lane.tpm = SlidingWindow(quota.tpm, MINUTE_S, self.clock)
            else:
                lane.tpm.limit = quota.tpm
            if quota is not None and quota.rpd:
                lane.rpd = quota.rpd

    def day_counts(self) -> Iterable[tuple[KeyRef, str, int, int]]:
        """(ref, day, requests sent that day, per-day limit if known), to save."""
        for ref, lane in self.lanes.items():
            if lane.day is not None and lane.used:
                yield ref, lane.day.isoformat(), lane.used, lane.rpd

    def restore(self, rows: Iterable[tuple[KeyRef, str, int, int]]) -> None:
        """Counts saved today (ref, day, used, learned per-day limit) come back."""
        today = pacific_day(self.now()).isoformat()
        for ref, day, used, rpd in rows:
            if day != today:
                continue
            lane = self._lane(ref, create=True)
            assert lane is not None
            lane.day, lane.used = pacific_day(self.now()), used
            if rpd and not lane.rpd:
                lane.rpd = rpd
