"""Which members a requested name walks.

- A chain name walks the whole chain.
- A member's model name starts at that member and falls forward along its chain (the
  ``default`` chain is searched first, then the others in declared order).
- A name a chain claims in its ``aliases`` (an exact name, or a glob such as
  ``gemini-*-flash*``: agent tools hard-code model names) walks that chain. Exact names win
  over globs, and globs are tried in the order the file declares them.
- Any other valid model name is a *pass-through*: a chain of one, that model on the responder
  of the default chain's first member. Its keys still rotate, but a 404 goes back to the client
  as it is, and the model is not retired.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from proxy.config import Chain, Config, Member


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    members: tuple[Member, ...]
    passthrough: bool = False
    sticky_turn: bool = False  # the chain's: a function-calling turn stays on its member


class Resolver:
    """Resolves names to plans; every known name is worked out once, at start."""

    def __init__(self, config: Config) -> None:
        self.default = config.default_chain
        plans: dict[str, Plan] = {}
        ordered: list[Chain] = [
            self.default,
            *(c for c in config.chains.values() if c is not self.default),
        ]
        for chain in ordered:
            for i, member in enumerate(chain.members):
                plans.setdefault(
                    member.model,
                    Plan(chain.name, chain.members[i:], sticky_turn=chain.sticky_turn),
                )
        self.globs: list[tuple[str, Plan]] = []
        for chain in config.chains.values():
            plan = plans[chain.name] = Plan(
                chain.name, chain.members, sticky_turn=chain.sticky_turn
            )
            for alias in chain.aliases:
                if any(c in alias for c in "*?["):
                    self.globs.append((alias, plan))
                else:
                    plans[alias] = plan
        self.plans: Mapping[str, Plan] = MappingProxyType(plans)
        self._matched: dict[str, Plan | None] = {}  # names tried against the globs

    def resolve(self, name: str) -> Plan:
        plan = self.plans.get(name)
        if plan is not None:
            return plan
        if self.globs:
            plan = self._glob(name)
            if plan is not None:
                return plan
        member = Member(self.default.members[0].responder, name)
        return Plan(name, (member,), passthrough=True)

    def _glob(self, name: str) -> Plan | None:
        if name in self._matched:
            return self._matched[name]
        plan = next((p for glob, p in self.globs if fnmatch.fnmatchcase(name, glob)), None)
        if len(self._matched) < 4096:  # names clients send: a handful
            self._matched[name] = plan
        return plan
