"""The rotation loop: walk a plan's members (and each member's keys) until one answers.

The loop is bounded by ``rotation.max_attempts`` and decides everything before a byte goes to
the client: a streaming 200 is returned unread, for the handler to relay.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from proxy.agents.empty import empty_body, judge
from proxy.config import Member, Rotation
from proxy.errors import AttemptFailed, UpstreamTimeout
from proxy.metrics import Counters
from proxy.responders import Call, Responder
from proxy.routing.budget import Budget
from proxy.routing.chain import Plan
from proxy.routing.cooldown import Cooldowns, KeyRef
from proxy.routing.coordination import Coordination
from proxy.routing.deadlines import Deadlines
from proxy.routing.faults import key_fault
from proxy.routing.learning import Learning
from proxy.routing.pacing import Pacer
from proxy.routing.resting import Resting
from proxy.routing.steps import repaired
from proxy.routing.sticky import StickyTurns
from proxy.routing.walk import Outcome, Walk, exhausted, failure, pinned
from proxy.telemetry.attempts import Observer

log = logging.getLogger("l104.rotation")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Rotator(Resting, Learning):
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
        budget: Budget | None = None,
    ) -> None:
        self.rotation = rotation
        self.queue_timeout_s = queue_timeout_s
        self.budget = budget or Budget()
        self.turns: defaultdict[Member, int] = defaultdict(int)
        # Timeouts in a row per (responder, model, project), and how long the last rest was.
        self.streaks: dict[KeyRef, int] = {}
        self.rests: dict[KeyRef, float] = {}
        self.blind: dict[KeyRef, int] = {}
        self.responders = responders
        self.cooldowns = cooldowns
        self.counters = counters
        self.pacer = pacer
        self.observer = observer
        self.now = now
        self.coordination: Coordination | None = None  # with store.shared
        self.deadlines = Deadlines(rotation.deadline_s)
        self.sticky = StickyTurns(cooldowns.clock, rotation.cooldown_s)

    async def run(self, plan: Plan, call: Call) -> Outcome:
        """Answer ``call`` from the first member of ``plan`` that can.

        Returns the first 200, or any answer that is not a rotation outcome (a 400, say) as it
        is. When every member is only resting (cooling, at its pace or quota), it waits for
        the first to have room if that is within ``limits.queue_timeout_s``. Raises
        ``ChainExhausted`` (429, with the exact wait), ``UpstreamUnavailable`` (503),
        ``UpstreamTimeout`` (504) or ``NotFound`` (every member retired) when no member answered.
        """
        if call.pin is not None:
            plan = pinned(plan, call.pin)
        turn = call.turn if plan.sticky_turn else ""
        if turn:
            plan = self.sticky.plan(plan, turn)
        deadlines = self.deadlines
        task = deadlines.enter()
        try:
            outcome = await self._run(plan, call)
            if turn and outcome.reply.status == 200:
                self.sticky.answered(turn, outcome.member)
            return outcome
        except asyncio.CancelledError:
            if not deadlines.leave(task):  # cancelled by someone else: not a timeout
                raise
        except TimeoutError:
            pass  # a deadline within the walk: the same answer
        finally:
            deadlines.leave(task)
        # No context object for the deadline: one per request cost more than the rest of it.
        raise UpstreamTimeout(
            f"No model of '{plan.name}' answered within rotation.deadline_s "
            f"({self.rotation.deadline_s:g}s)."
        ) from None

    async def _run(self, plan: Plan, call: Call) -> Outcome:
        waited = 0.0
        while True:
            walk = Walk()
            outcome = await self._walk(plan, call, walk)
            if outcome is not None:
                return outcome
            if walk.empty is not None:
                return walk.empty  # every member answered empty: the last one, unchanged
            if walk.key_refusal is not None and not walk.quota:
                return walk.key_refusal  # every key was refused: the upstream's own words
            wait = walk.soonest
            if not walk.resting_only or wait is None or waited + wait > self.queue_timeout_s:
                raise exhausted(plan, walk, self.rotation.cooldown_s)
            # Every member is full, and one has room within the queue budget: wait for it.
            await asyncio.sleep(max(wait, 0.001))
            waited += max(wait, 0.001)

    async def _walk(self, plan: Plan, call: Call, walk: Walk) -> Outcome | None:
        for member in plan.members:
            if not plan.passthrough and self.cooldowns.is_retired(member.responder, member.model):
                self.counters.model_skips += 1
                walk.left(member.model, "not found")
                continue
            served = self.responders[member.responder].actions
            if served is not None and call.action not in served:
                # Vertex AI holds no files, caches or interactions, and speaks no OpenAI.
                self.counters.model_skips += 1
                self.observer.skipped(member, f"does not serve {call.action}")
                walk.left(member.model, f"no {call.action} there")
                continue
            if call.uses_tools and not member.tools:
                self.counters.model_skips += 1
                self.observer.skipped(member, "no function calling (tools: false)")
                walk.left(member.model, "no function calling")
                continue
            tried = walk.attempts
            outcome = await self._member(plan, member, call, walk)
            if outcome is not None:
                return outcome
            if walk.attempts == tried:
                self.counters.model_skips += 1
            if walk.attempts >= self.rotation.max_attempts:
                walk.note(f"gave up after {walk.attempts} attempts")
                break
        return None

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

    async def _member(self, plan: Plan, member: Member, call: Call, walk: Walk) -> Outcome | None:
        responder = self.responders[member.responder]
        rot, cooldowns = self.rotation, self.cooldowns
        for key in self._keys(member, call, responder.key_count):
            # Cooldowns and paces are per project: every key of it shares them.
            ref = (member.responder, member.model, responder.projects[key])
            if walk.attempts >= rot.max_attempts:
                return None
            off = cooldowns.disabled_for(member.responder, key) if cooldowns.disabled else 0
            if off > 0:
                walk.failures += 1
                walk.left(member.model, f"key {key} disabled {off:.0f}s")
                continue
            rest = self._rest_now(ref, walk, call)
            if rest is True or (rest is not False and await self._after_probe(ref, walk, rest)):
                continue
            slot: object | None = None
            coordination = self.coordination
            if coordination is not None:
                if await self._fleet_probe(ref, walk, coordination):
                    continue
                slot = await self._fleet_quota(ref, walk, call.estimated_tokens, coordination)
                if slot is False:
                    continue
            walk.attempts += 1
            if walk.last is not None and walk.last is not member:
                # A move: an attempt on this member after one on another (a skip is none).
                self.counters.model_rotations += 1
                self.observer.rotation(walk.last, member, walk.reason, walk.rest_s)
            walk.last = member
            self.counters.model_usage[member.model] += 1
            call.aim(member)  # the call is this request's own: no copy needed
            if not responder.remote:
                call.retry_after_s = walk.soonest or 0.0
            stamp = self.pacer.sent(ref)
            budget = self.budget
            ticket = (
                budget.take(ref, call.estimated_tokens) if budget.quotas or budget.lanes else None
            )
            if ticket is not None and slot is not None:
                ticket.fleet = slot
            span = self.observer.start_attempt(member, key, call)
            try:
                reply = await responder.send(call, key)
            except AttemptFailed as failed:
                self.cooldowns.answered(ref)
                if failed.kind == "timeout":
                    self._timed_out(ref)
                self.observer.attempt_failed(span, member, failed.kind)
                rotates = (
                    rot.on_timeout
                    if failed.kind == "timeout"
                    else failed.kind == "unsupported" or rot.on_connect
                )
                if not rotates or failed.kind == "too_large":  # another model's would be too
                    raise failure(failed, member) from None
                walk.failures += 1
                walk.timeouts += failed.kind == "timeout"
                walk.bad_answers += failed.kind == "bad_answer"
                walk.left(member.model, failed.kind)
                continue
            except BaseException:
                self.cooldowns.answered(ref)
                self.observer.attempt_failed(span, member, "cancelled")
                raise
            if ticket is not None:
                budget.answered(ref, ticket)
                if ticket.fleet is not None and self.coordination is not None:
                    self.coordination.quota_answered(ticket.fleet)
            if self.streaks:
                self.streaks.pop(ref, None)
                self.rests.pop(ref, None)
            if self.blind and reply.status != 429:
                self.blind.pop(ref, None)
            if reply.status != 429 and self.cooldowns.probes:  # a 429 re-cools it (and
                self.cooldowns.answered(ref)  # ends the probe); only a probe has to end
            if reply.status == 400 and call.repair is not None:
                again = await repaired(
                    call, reply, responder, member, key, span, self.counters, self.observer
                )
                if again is not None:
                    walk.attempts += 1
                    reply = again
            if reply.status == 200:
                self.pacer.succeeded(ref)
                empty = False
                if call.empty_fails:
                    if reply.chunks is None:
                        empty = empty_body(reply.body)
                    else:  # read its first event (kept for the client)
                        empty, reply = await judge(reply, call.sse)
                if empty:  # a failed attempt, but the member is fine: no cooldown
                    self.observer.attempt_failed(span, member, "empty")
                    walk.failures += 1
                    walk.left(member.model, "empty answer")
                    walk.empty = Outcome(reply, member, walk.attempts)
                    continue
                self.observer.attempt_answered(member)
                return Outcome(reply, member, walk.attempts, span, ref, ticket, key)
            self.observer.attempt_failed(span, member, str(reply.status))
            if reply.status == 404 and not plan.passthrough:
                self._retire(member)
                walk.left(member.model, "not found")
                return None
            if reply.status == 429:
                self.pacer.refused(ref, stamp)
                self.budget.refused(ref, ticket)
                if ticket is not None and ticket.fleet is not None and self.coordination:
                    self.coordination.quota_refused(ticket.fleet)
                self._quota(ref, reply, walk)
                if self.coordination is not None:
                    await self.coordination.settle()  # every replica skips it from now on
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
                return Outcome(reply, member, walk.attempts, key_index=key)
        return None

    def settle(self, outcome: Outcome, tokens: int) -> None:
        """The answer is out: its token estimate becomes what ``usageMetadata`` counted."""
        ticket = outcome.ticket
        if outcome.ref is not None and ticket is not None:  # no ticket: no quota is known
            self.budget.settle(outcome.ref, ticket, tokens)
            if ticket.fleet is not None and self.coordination is not None:
                self.coordination.quota_settle(ticket.fleet, tokens)
