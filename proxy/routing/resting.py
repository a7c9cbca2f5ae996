"""Whether a key rests for now, asked before each attempt: its learned pace, its quota, its
cooldown and the probe after one (locally, and with ``store.shared`` across the fleet). Mixed
into :class:`proxy.routing.rotation.Rotator`."""

from __future__ import annotations

import asyncio

from proxy.responders import Call
from proxy.routing.budget import Budget
from proxy.routing.cooldown import Cooldowns, KeyRef
from proxy.routing.coordination import Coordination
from proxy.routing.pacing import Pacer
from proxy.routing.walk import Walk


class Resting:
    cooldowns: Cooldowns
    pacer: Pacer
    budget: Budget
    queue_timeout_s: float

    def _rest_now(self, ref: KeyRef, walk: Walk, call: Call) -> bool | asyncio.Event:
        """Skip ``ref`` for now (True), or not (False); an ``Event`` when a probe is out on it
        and its answer is worth a wait (:meth:`_after_probe`). The pace is asked first: a key
        at its pace is skipped before a probe is taken, so no probe is ever taken and then
        left unanswered. A plain function: the usual answer needs no await."""
        cooldowns, budget = self.cooldowns, self.budget
        if not (cooldowns.until or cooldowns.probes or budget.lanes or budget.quotas):
            lane = self.pacer.lanes.get(ref)
            if lane is None or lane.pace is None:
                return False  # nothing is known that could make any key rest: ask no one
        paced = self.pacer.wait_for(ref)
        if paced > 0:
            walk.resting(ref[1], "at its learned pace for", paced)
            return True
        full, why = self.budget.wait_for(ref, call.estimated_tokens)
        if full > 0:
            walk.resting(ref[1], why, full)
            return True
        admitted = self.cooldowns.admit(ref, gated=not self.pacer.knows(ref))
        if isinstance(admitted, asyncio.Event):
            return admitted
        if admitted > 0:
            walk.resting(ref[1], "cooling", admitted)
            return True
        return False

    async def _after_probe(self, ref: KeyRef, walk: Walk, probe: asyncio.Event) -> bool:
        """A probe is out on a key whose quota is unknown: wait for its answer (bounded),
        rather than refuse a request while the key may have room. True: ``ref`` rests."""
        try:
            async with asyncio.timeout(self.queue_timeout_s):
                await probe.wait()
        except TimeoutError:
            walk.resting(ref[1], "probing", self.queue_timeout_s)
            return True
        admitted = self.cooldowns.admit(ref, gated=not self.pacer.knows(ref))
        if isinstance(admitted, asyncio.Event):
            walk.resting(ref[1], "probing", self.queue_timeout_s)
            return True
        if admitted > 0:
            walk.resting(ref[1], "cooling", admitted)
            return True
        return False

    async def _fleet_probe(self, ref: KeyRef, walk: Walk, coordination: Coordination) -> bool:
        """This request would probe a key whose cooldown just ended: one probe a fleet.
        True: another replica has it, so ``ref`` rests."""
        if ref in self.cooldowns.probes and not await coordination.claim_probe(ref):
            walk.resting(ref[1], "probed by another replica", self.queue_timeout_s)
            return True
        return False

    async def _fleet_quota(
        self, ref: KeyRef, walk: Walk, tokens: int, coordination: Coordination
    ) -> object | None:
        """With store.shared, a slot of ``ref``'s known quota across the fleet (None: no quota
        is known, or Redis is away); False: the fleet is at the quota, so ``ref`` rests."""
        limits = self.budget.limits(ref)
        if limits is None:
            return None
        wait, why, slot = await coordination.take_quota(ref, tokens, limits)
        if wait > 0:
            self.cooldowns.answered(ref)  # a probe taken for nothing is given back
            walk.resting(ref[1], why, wait)
            return False
        return slot
