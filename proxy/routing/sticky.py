"""``sticky_turn``: the steps of one function-calling turn stay on the member that began it.

A turn is keyed by a digest of its history before the turn (clients send no session id; see
:func:`proxy.agents.signatures.turn_key`). The member that answered a step is remembered for
``rotation.cooldown_s``; the next step of the same turn walks it first, and moves on only when
it has no room (cooling after a 429, at its pace or quota), as any walk does.
"""

from __future__ import annotations

from collections.abc import Callable

from proxy.config import Member
from proxy.routing.chain import Plan

MAX_TURNS = 10_000  # turns remembered at once (the oldest are forgotten first)


class StickyTurns:
    def __init__(self, clock: Callable[[], float], hold_s: float) -> None:
        self.clock = clock
        self.hold_s = hold_s
        self.turns: dict[str, tuple[Member, float]] = {}

    def plan(self, plan: Plan, turn: str) -> Plan:
        """``plan`` with the member that began ``turn`` first, while it is remembered."""
        found = self.turns.get(turn)
        if found is None:
            return plan
        member, until = found
        if until < self.clock() or member not in plan.members or plan.members[0] == member:
            return plan
        rest = tuple(m for m in plan.members if m != member)
        return Plan(plan.name, (member, *rest), plan.passthrough, plan.sticky_turn)

    def answered(self, turn: str, member: Member) -> None:
        """``member`` answered a step of ``turn``: the next steps begin there."""
        if turn not in self.turns and len(self.turns) >= MAX_TURNS:
            del self.turns[next(iter(self.turns))]
        self.turns[turn] = (member, self.clock() + self.hold_s)
