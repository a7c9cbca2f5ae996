"""Which members a requested name walks.

- A chain name walks the whole chain.
- A member's model name starts at that member and falls forward along its chain (the
  ``default`` chain is searched first, then the others in declared order).
- Any other valid model name is a *pass-through*: a chain of one, that model on the responder
  of the default chain's first member. Its keys still rotate, but a 404 goes back to the client
  as it is, and the model is not retired.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from proxy.config import Chain, Config, Member


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    members: tuple[Member, ...]
    passthrough: bool = False


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
                plans.setdefault(member.model, Plan(chain.name, chain.members[i:]))
        for chain in config.chains.values():
            plans[chain.name] = Plan(chain.name, chain.members)
        self.plans: Mapping[str, Plan] = MappingProxyType(plans)

    def resolve(self, name: str) -> Plan:
        plan = self.plans.get(name)
        if plan is not None:
            return plan
        member = Member(self.default.members[0].responder, name)
        return Plan(name, (member,), passthrough=True)
