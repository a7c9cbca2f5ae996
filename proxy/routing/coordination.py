"""What the rotation asks of the fleet when state is shared (``store.shared``): implemented by
:class:`proxy.shared.coordinator.Shared`; without it, every replica decides alone."""

from __future__ import annotations

from typing import Protocol

from proxy.routing.cooldown import KeyRef


class Coordination(Protocol):
    """What the rotation asks of the fleet (:class:`proxy.shared.coordinator.Shared`)."""

    async def claim_probe(self, ref: KeyRef) -> bool:
        """Is this request the fleet's one probe of ``ref``?"""

    async def settle(self) -> None:
        """Wait until the fleet has what this replica just learned."""

    async def take_quota(
        self, ref: KeyRef, tokens: int, limits: tuple[int, int, int]
    ) -> tuple[float, str, object | None]:
        """A slot of ``ref``'s quota across the fleet: ``(0, "", slot)``, or the wait and why."""

    def quota_answered(self, slot: object) -> None:
        """The upstream answered: it counted the request from about now."""

    def quota_settle(self, slot: object, tokens: int) -> None:
        """The answer's ``usageMetadata`` counted ``tokens``."""

    def quota_refused(self, slot: object) -> None:
        """The upstream refused: the slot is given back."""
