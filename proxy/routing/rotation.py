"""The rotation loop: walk a plan's members (and each member's keys) until one answers.

The loop is bounded by ``rotation.max_attempts`` and decides everything before a byte goes to
the client: a streaming 200 is returned unread, for the handler to relay.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opentelemetry.trace import INVALID_SPAN, Span

from proxy.config import Member, Rotation
from proxy.errors import (
    AttemptFailed,
    ChainExhausted,
    NotFound,
    UpstreamTimeout,
    UpstreamUnavailable,
    quota_details,
)
from proxy.metrics import Counters
from proxy.responders import Call, Reply, Responder
from proxy.responders.base import Pin
from proxy.routing.chain import Plan
from proxy.routing.cooldown import Cooldowns, KeyRef
from proxy.routing.faults import key_fault
from proxy.routing.pacing import Pacer
from proxy.routing.quota import cooldown_for, read_quota
from proxy.telemetry.attempts import Observer

log = logging.getLogger("l104.rotation")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Outcome:
    """The answer to relay, the member that gave it, how many attempts it took, and the
    attempt's span, still open on a 200 (the handler ends it once the answer is out)."""

    reply: Reply
    member: Member
    attempts: int
    span: Span = INVALID_SPAN


@dataclass(slots=True)
class _Walk:
    """What one request saw on its way along the chain."""

    attempts: int = 0
    soonest: float | None = None
    quota: bool = False
    timeouts: int = 0
    failures: int = 0
    notes: list[str] = field(default_factory=list)
    out_of_quota: list[tuple[str, str]] = field(default_factory=list)  # (model, why)
    reason: str = ""  # why the last member was left, for the rotation event
    rest_s: float = 0.0
    key_refusal: Outcome | None = None  # a key the upstream refused: its answer, if all fail

    def left(self, model: str, reason: str, rest_s: float = 0.0) -> None:
        self.notes.append(f"{model} ({reason})")
        self.reason, self.rest_s = reason, rest_s

    def resting(self, model: str, reason: str, left_s: float) -> None:
        """A key that cools or is at its pace: skipped with no round trip."""
        self.out_of_quota_for(model, f"{reason} {left_s:.0f}s", left_s)

    def out_of_quota_for(self, model: str, why: str, rest_s: float) -> None:
        self.quota = True
        self.soonest = rest_s if self.soonest is None else min(self.soonest, rest_s)
        self.out_of_quota.append((model, why))
        self.left(model, why, rest_s)


class Rotator:
    """Runs calls along plans; holds no per-request state of its own."""

    def __init__(
        self,
        rotation: Rotation,
        responders: Mapping[str, Responder],
        cooldowns: Cooldowns,
        counters: Counters,
        pacer: Pacer,
        observer: Observer,
        now: Callable[[], datetime] = utc_now,
        queue_timeout_s: float = 1.0,
    ) -> None:
        self.rotation = rotation
        self.queue_timeout_s = queue_timeout_s
        self.turns: defaultdict[Member, int] = defaultdict(int)
        self.responders = responders
        self.cooldowns = cooldowns
        self.counters = counters
        self.pacer = pacer
        self.observer = observer
        self.now = now

    async def run(self, plan: Plan, call: Call) -> Outcome:
        """Answer ``call`` from the first member of ``plan`` that can.

        Returns the first 200, or any answer that is not a rotation outcome (a 400, say) as it
        is. Raises ``ChainExhausted`` (429), ``UpstreamUnavailable`` (503), ``UpstreamTimeout``
        (504) or ``NotFound`` (every member retired) when no member answered.
        """
        walk = _Walk()
        previous: Member | None = None
        if call.pin is not None:
            plan = pinned(plan, call.pin)
        for member in plan.members:
            if previous is not None:
                self.counters.model_rotations += 1
                self.observer.rotation(previous, member, walk.reason, walk.rest_s)
            previous = member
            if not plan.passthrough and self.cooldowns.is_retired(member.responder, member.model):
                walk.left(member.model, "not found")
                continue
            outcome = await self._member(plan, member, call, walk)
            if outcome is not None:
                return outcome
            if walk.attempts >= self.rotation.max_attempts:
                walk.notes.append(f"gave up after {walk.attempts} attempts")
                break
        if walk.key_refusal is not None and not walk.quota:
            return walk.key_refusal  # every key was refused: the upstream's own words
        raise self._exhausted(plan, walk)

    async def _resting(self, ref: KeyRef, walk: _Walk) -> bool:
        """Skip ``ref`` for now? The pace is asked first: a key at its pace is skipped before
        a probe is taken, so no probe is ever taken and then left unanswered."""
        paced = self.pacer.wait_for(ref)
        if paced > 0:
            walk.resting(ref[1], "at its learned pace for", paced)
            return True
        gated = not self.pacer.knows(ref)
        admitted = self.cooldowns.admit(ref, gated=gated)
        if isinstance(admitted, asyncio.Event):
            # A probe is out on a key whose quota is unknown: wait for its answer (bounded),
            # rather than refuse a request while the key may have room.
            try:
                async with asyncio.timeout(self.queue_timeout_s):
                    await admitted.wait()
            except TimeoutError:
                walk.resting(ref[1], "probing", self.queue_timeout_s)
                return True
            admitted = self.cooldowns.admit(ref, gated=gated)
            if isinstance(admitted, asyncio.Event):
                walk.resting(ref[1], "probing", self.queue_timeout_s)
                return True
        if admitted > 0:
            walk.resting(ref[1], "cooling", admitted)
            return True
        return False

    def _keys(self, member: Member, call: Call, count: int) -> list[int]:
        """The keys to try for ``member``, in turn: each request starts one key further, so
        a member's keys share its traffic instead of the first one taking all of it."""
        if call.pin is not None:
            return [call.pin.key_index]
        if count == 1:
            return [0]
        turn = self.turns[member]
        self.turns[member] = (turn + 1) % count
        return [(turn + i) % count for i in range(count)]

    async def _member(self, plan: Plan, member: Member, call: Call, walk: _Walk) -> Outcome | None:
        responder = self.responders[member.responder]
        rot = self.rotation
        for key in self._keys(member, call, responder.key_count):
            # Cooldowns and paces are per project: every key of it shares them.
            ref = (member.responder, member.model, responder.projects[key])
            if walk.attempts >= rot.max_attempts:
                return None
            off = self.cooldowns.disabled_for(member.responder, key)
            if off > 0:
                walk.failures += 1
                walk.left(member.model, f"key {key} disabled {off:.0f}s")
                continue
            if await self._resting(ref, walk):
                continue
            walk.attempts += 1
            self.counters.model_usage[member.model] += 1
            call.aim(member.model)  # the call is this request's own: no copy needed
            if not responder.remote:
                call.retry_after_s = walk.soonest or 0.0
            self.pacer.sent(ref)
            span = self.observer.start_attempt(member, key, call)
            try:
                reply = await responder.send(call, key)
            except AttemptFailed as failed:
                self.cooldowns.answered(ref)
                self.observer.attempt_failed(span, member, failed.kind)
                if not (rot.on_timeout if failed.kind == "timeout" else rot.on_connect):
                    raise _failure(failed, member) from None
                walk.failures += 1
                walk.timeouts += failed.kind == "timeout"
                walk.left(member.model, failed.kind)
                continue
            except BaseException:
                self.cooldowns.answered(ref)
                self.observer.attempt_failed(span, member, "cancelled")
                raise
            if reply.status != 429:  # a 429 re-cools it, which also ends the probe
                self.cooldowns.answered(ref)
            if reply.status == 200:
                self.pacer.succeeded(ref)
                self.observer.attempt_answered(member)
                return Outcome(reply, member, walk.attempts, span)
            self.observer.attempt_failed(span, member, str(reply.status))
            if reply.status == 404 and not plan.passthrough:
                self._retire(member)
                walk.left(member.model, "not found")
                return None
            if reply.status == 429:
                self._quota(ref, reply, walk)
            elif reply.status in rot.statuses:
                # An overloaded model (503) is not the key's fault: nothing cools.
                walk.failures += 1
                walk.left(member.model, str(reply.status))
            elif key_fault(reply.status, reply.body) and call.pin is None:
                self._disable(member.responder, key)
                walk.failures += 1
                walk.left(member.model, f"key {key} refused ({reply.status})")
                walk.key_refusal = Outcome(reply, member, walk.attempts)
                continue
            if reply.status not in rot.statuses:
                return Outcome(reply, member, walk.attempts)
        return None

    def _disable(self, responder: str, key: int) -> None:
        if self.cooldowns.disable(responder, key, self.rotation.disabled_s):
            log.warning(
                "key %d of responder %s was refused by the upstream as invalid: left out for %.0fs",
                key,
                responder,
                self.rotation.disabled_s,
            )

    def _quota(self, ref: KeyRef, reply: Reply, walk: _Walk) -> None:
        model = ref[1]
        self.counters.model_429_count[model] += 1
        signal = read_quota(reply.body)
        if not signal.per_day:
            self.pacer.limited(ref, signal.quota_value)
        wait = cooldown_for(signal, reply.retry_after, self.rotation.cooldown_s, self.now())
        rest = self.cooldowns.cool(ref, wait)
        walk.out_of_quota_for(model, "429, per day" if signal.per_day else "429", rest)

    def _retire(self, member: Member) -> None:
        if self.cooldowns.retire(member.responder, member.model):
            log.warning(
                "model %s on responder %s answered 404 NOT_FOUND: skipped until restart",
                member.model,
                member.responder,
            )

    def _exhausted(self, plan: Plan, walk: _Walk) -> Exception:
        tried = ", ".join(walk.notes) or "none"
        if walk.quota:
            retry = max(1.0, walk.soonest or self.rotation.cooldown_s)
            return ChainExhausted(
                f"Every model of '{plan.name}' is out of quota; tried: {tried}. "
                f"Retry in {retry:.0f}s.",
                retry_after_s=retry,
                details=quota_details(walk.out_of_quota, math.ceil(retry)),
            )
        if walk.failures and walk.timeouts == walk.failures:
            return UpstreamTimeout(f"Every model of '{plan.name}' timed out; tried: {tried}.")
        if walk.failures:
            return UpstreamUnavailable(f"No model of '{plan.name}' is reachable; tried: {tried}.")
        return NotFound(f"No model of '{plan.name}' is available; tried: {tried}.")


def pinned(plan: Plan, pin: Pin) -> Plan:
    """The members a pinned call may use: a cached content's own model (and nothing else: a
    cache only works with the model it was made for); else the plan's members on the pinned
    responder (or, if none is, the plan's first model on it)."""
    if pin.model:
        return Plan(plan.name, (Member(pin.responder, pin.model),), plan.passthrough)
    members = tuple(m for m in plan.members if m.responder == pin.responder)
    if not members:
        members = (Member(pin.responder, plan.members[0].model),)
    return Plan(plan.name, members, plan.passthrough)


def _failure(failed: AttemptFailed, member: Member) -> Exception:
    message = f"{member.model}: {failed.detail}"
    return UpstreamTimeout(message) if failed.kind == "timeout" else UpstreamUnavailable(message)
