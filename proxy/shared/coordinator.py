"""The shared state as one object: what the rest of the proxy asks of it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from proxy.config.types import Store, redact_url
from proxy.metrics import Counters
from proxy.responders import Responder
from proxy.routing.budget import pacific_day
from proxy.routing.cooldown import Cooldowns, KeyRef
from proxy.routing.pacing import Pacer
from proxy.routing.quota import until_daily_reset
from proxy.routing.rotation import utc_now
from proxy.shared.fleet import Fleet
from proxy.shared.link import Link
from proxy.shared.replica import Names, Replica
from proxy.shared.spending import FleetSpending
from proxy.shared.windows import LaneLimits, Slot, Windows

log = logging.getLogger("l104.shared")
WHY = {
    "rpm": "at its requests-per-minute quota (fleet) for",
    "tpm": "at its tokens-per-minute quota (fleet) for",
    "rpd": "out of its per-day quota (fleet) for",
}
FIRST_CONNECT_S = 2.0


class Shared:
    """``store.shared`` for one process. :meth:`run` keeps the link; everything else answers at
    once, from local copies or with one round trip."""

    def __init__(
        self,
        config: Store,
        cooldowns: Cooldowns,
        pacer: Pacer,
        responders: Callable[[], Mapping[str, Responder]],
        key_ids: Callable[[], Mapping[str, tuple[str, ...]]],
        counters: Counters,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.link = Link(config.shared, fail_closed=config.shared_fail == "closed")
        self.names = Names(responders, key_ids)
        self.replica = Replica(self.link, self.names, cooldowns, pacer)
        self.windows = Windows(self.link)
        self.spending = FleetSpending(self.link)
        self.fleet = Fleet(self.link, counters)
        self.now = now

    async def start(self) -> None:
        """Wait a moment for the first connection, so the fleet's state is read before this
        replica serves; Redis away at start is the same as Redis lost later."""
        if not await self.link.connected(FIRST_CONNECT_S):
            how = "refusing requests" if self.link.fail_closed else "serving on local state"
            log.warning(
                "shared state: Redis at %s unreachable at start (%s); %s until it is",
                redact_url(self.link.url),
                self.link.error,
                how,
            )

    @property
    def refusing(self) -> bool:
        """``shared_fail: closed`` and Redis unreachable: requests get 503."""
        return self.link.fail_closed and not self.link.up

    async def claim_probe(self, ref: KeyRef) -> bool:
        return await self.replica.claim_probe(ref)

    async def settle(self) -> None:
        await self.link.settle()

    async def take_quota(
        self, ref: KeyRef, tokens: int, limits: tuple[int, int, int]
    ) -> tuple[float, str, object | None]:
        """A slot of the quota of ``ref`` (a project's model) across the fleet; Redis away:
        (0, "", None), and the local budget alone decides."""
        name = self.names.ref(ref)
        if name is None or not self.link.up:
            return 0.0, "", None
        rpm, tpm, rpd = limits
        now = self.now()
        day_end_ms = int((now.timestamp() + until_daily_reset(now)) * 1000)
        taken = await self.windows.take(
            f"q:{name}",
            LaneLimits(
                rpm=rpm, tpm=tpm, rpd=rpd, day=pacific_day(now).isoformat(), day_end_ms=day_end_ms
            ),
            tokens,
        )
        if taken is None:
            return 0.0, "", None
        wait, why, slot = taken
        return wait, WHY.get(why, why), slot

    def quota_answered(self, slot: object) -> None:
        if isinstance(slot, Slot):
            self.windows.answered(slot)

    def quota_refused(self, slot: object) -> None:
        if isinstance(slot, Slot):
            self.windows.refused(slot)

    def quota_settle(self, slot: object, tokens: int) -> None:
        if isinstance(slot, Slot) and tokens > 0:
            self.windows.settle(slot, tokens - slot.tokens)

    async def tick(self) -> None:
        """Once a second: leases past their time are given back, counts pushed."""
        self.windows.expire()
        await self.fleet.push()

    async def close(self) -> None:
        await self.fleet.push()  # the last counts reach the fleet's totals
        await self.link.close()
