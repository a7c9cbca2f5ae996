"""The shared state as one object: what the rest of the proxy asks of it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from proxy.config.types import Store, redact_url
from proxy.responders import Responder
from proxy.routing.cooldown import Cooldowns, KeyRef
from proxy.routing.pacing import Pacer
from proxy.shared.link import Link
from proxy.shared.replica import Names, Replica

log = logging.getLogger("l104.shared")
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
    ) -> None:
        self.link = Link(config.shared, fail_closed=config.shared_fail == "closed")
        self.names = Names(responders, key_ids)
        self.replica = Replica(self.link, self.names, cooldowns, pacer)

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

    async def close(self) -> None:
        await self.link.close()
