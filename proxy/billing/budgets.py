"""What each client has spent this day and this month (in ``budgets.timezone``), against its
``budget``.

Spent amounts are kept per client and period (``day:2026-12-03``, ``month:2026-12``), not
summed from the ledger, whose retention is shorter than a month. They are written through to
the store's ``spent`` table (as increments, so workers on one store add up) and read back at
start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo


class Budget(Protocol):
    """A client's ``budget:`` (0: no limit), as the config holds it."""

    @property
    def usd_per_day(self) -> float: ...
    @property
    def usd_per_month(self) -> float: ...
    @property
    def tokens_per_day(self) -> int: ...


DAY, MONTH = "day", "month"


def period_keys(now_wall: float, zone: ZoneInfo) -> tuple[str, str]:
    """The day's and the month's keys at ``now_wall`` in ``zone``."""
    local = datetime.fromtimestamp(now_wall, zone)
    return f"{DAY}:{local:%Y-%m-%d}", f"{MONTH}:{local:%Y-%m}"


def until_reset(now_wall: float, zone: ZoneInfo, period: str) -> float:
    """Seconds until the period holding ``now_wall`` ends (midnight in ``zone``)."""
    local = datetime.fromtimestamp(now_wall, zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == DAY:
        end = start + timedelta(days=1)
    else:
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    # The wall clock of the end, in the zone: DST changes are the zone's business.
    end = end.replace(tzinfo=None).replace(tzinfo=zone)
    return max(1.0, end.timestamp() - now_wall)


class Spending:
    """Spent USD and tokens per (client, period key)."""

    def __init__(self, timezone: str = "UTC", now: Callable[[], float] = time.time) -> None:
        self.zone = ZoneInfo(timezone)
        self.now = now
        self.spent: dict[tuple[str, str], list[float]] = {}

    def periods(self) -> tuple[str, str]:
        """This day's and this month's keys."""
        return period_keys(self.now(), self.zone)

    def waits(self) -> dict[str, float]:
        """Seconds until this day, and this month, end."""
        now = self.now()
        return {DAY: until_reset(now, self.zone, DAY), MONTH: until_reset(now, self.zone, MONTH)}

    def load(self, rows: Iterable[tuple[str, str, float, float]]) -> None:
        for client, period, usd, tokens in rows:
            self.spent[(client, period)] = [float(usd), float(tokens)]

    def of(self, client: str, period: str) -> tuple[float, float]:
        usd, tokens = self.spent.get((client, period), (0.0, 0.0))
        return usd, tokens

    def refusal(
        self, client: str, budget: Budget, usd: float, tokens: int
    ) -> tuple[str, float, float, float] | None:
        """The budget a request of ``usd`` and ``tokens`` would pass: (its name, its limit,
        what is spent, seconds until it resets); None if it fits."""
        now = self.now()
        day, month = period_keys(now, self.zone)
        day_usd, day_tokens = self.of(client, day)
        month_usd, _ = self.of(client, month)
        checks = (
            ("usd_per_day", budget.usd_per_day, day_usd, usd, DAY),
            ("usd_per_month", budget.usd_per_month, month_usd, usd, MONTH),
            ("tokens_per_day", float(budget.tokens_per_day), day_tokens, float(tokens), DAY),
        )
        for name, limit, spent, more, period in checks:
            if limit and spent + more > limit:
                return name, limit, spent, until_reset(now, self.zone, period)
        return None

    def settle(self, client: str, usd: float, tokens: int) -> list[tuple[str, str, float, int]]:
        """Add what a request spent; returns the increments to write to the store."""
        day, month = period_keys(self.now(), self.zone)
        out = []
        for period in (day, month):
            entry = self.spent.setdefault((client, period), [0.0, 0.0])
            entry[0] += usd
            entry[1] += tokens
            out.append((client, period, usd, tokens))
        return out

    def remaining(self, client: str, budget: Budget) -> dict[str, float]:
        """USD left of each money budget the client has (for the Prometheus gauge)."""
        day, month = period_keys(self.now(), self.zone)
        out = {}
        if budget.usd_per_day:
            out[DAY] = budget.usd_per_day - self.of(client, day)[0]
        if budget.usd_per_month:
            out[MONTH] = budget.usd_per_month - self.of(client, month)[0]
        return out
