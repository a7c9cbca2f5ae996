"""What one request saw on its way along a chain, and what a walk that found no answer says.

:class:`Walk` collects why each member or key was left; :func:`exhausted` turns that into the
error the client gets (429 with the exact wait, 503, 504 or 404). :func:`pinned` narrows a
plan to what a request naming a file or cached content may use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.trace import INVALID_SPAN, Span

from proxy.config import Member
from proxy.errors import (
    AttemptFailed,
    ChainExhausted,
    NotFound,
    UpstreamBadAnswer,
    UpstreamTimeout,
    UpstreamUnavailable,
    quota_details,
)
from proxy.responders import Reply
from proxy.responders.base import Pin
from proxy.routing.budget import Ticket
from proxy.routing.chain import Plan
from proxy.routing.cooldown import KeyRef


@dataclass(slots=True)
class Outcome:
    """The answer to relay, the member that gave it, how many attempts it took, and the
    attempt's span, still open on a 200 (the handler ends it once the answer is out)."""

    reply: Reply
    member: Member
    attempts: int
    span: Span = INVALID_SPAN
    ref: KeyRef | None = None  # the lane it was sent on, for settling its tokens
    ticket: Ticket | None = None
    key_index: int = 0  # the key that answered (what a created resource is bound to)


class Walk:
    """What one request saw on its way along the chain. Every request makes one and most
    only count an attempt on it: the fields are class-level defaults until set, and the two
    lists are made by the first note."""

    attempts: int = 0
    soonest: float | None = None
    quota: bool = False
    timeouts: int = 0
    bad_answers: int = 0
    failures: int = 0
    notes: Sequence[str] = ()
    out_of_quota: Sequence[tuple[str, str]] = ()  # (model, why)
    reason: str = ""  # why the last member was left, for the rotation event
    rest_s: float = 0.0
    key_refusal: Outcome | None = None  # a key the upstream refused: its answer, if all fail
    rested: int = 0  # keys skipped as resting, with no round trip
    last: Member | None = None  # the member of the last attempt (a move is to another one)
    empty: Outcome | None = None  # the last empty answer, the answer if every member is empty

    def note(self, text: str) -> None:
        self.notes = [*self.notes, text]  # a few at most: max_attempts bounds them

    @property
    def resting_only(self) -> bool:
        """Nothing was sent and nothing failed: every key only rests for now."""
        return self.attempts == 0 and self.failures == 0 and self.rested > 0

    def left(self, model: str, reason: str, rest_s: float = 0.0) -> None:
        self.note(f"{model} ({reason})")
        self.reason, self.rest_s = reason, rest_s

    def resting(self, model: str, reason: str, left_s: float) -> None:
        """A key that cools or is at its pace or quota: skipped with no round trip."""
        self.rested += 1
        self.out_of_quota_for(model, f"{reason} {left_s:.0f}s", left_s)

    def out_of_quota_for(self, model: str, why: str, rest_s: float) -> None:
        self.quota = True
        self.soonest = rest_s if self.soonest is None else min(self.soonest, rest_s)
        self.out_of_quota = [*self.out_of_quota, (model, why)]
        self.left(model, why, rest_s)


def exhausted(plan: Plan, walk: Walk, cooldown_s: float) -> Exception:
    """The error for a walk that found no answer."""
    tried = ", ".join(walk.notes) or "none"
    if walk.quota:
        retry = max(1.0, walk.soonest or cooldown_s)
        return ChainExhausted(
            f"Every model of '{plan.name}' is out of quota; tried: {tried}. "
            f"Retry in {math.ceil(retry)}s.",
            retry_after_s=retry,
            details=quota_details(walk.out_of_quota, math.ceil(retry)),
        )
    if walk.failures and walk.bad_answers == walk.failures:
        return UpstreamBadAnswer(f"No model of '{plan.name}' gave a valid answer; tried: {tried}.")
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


def failure(failed: AttemptFailed, member: Member) -> Exception:
    message = f"{member.model}: {failed.detail}"
    if failed.kind in ("bad_answer", "too_large"):
        return UpstreamBadAnswer(message)
    return UpstreamTimeout(message) if failed.kind == "timeout" else UpstreamUnavailable(message)
