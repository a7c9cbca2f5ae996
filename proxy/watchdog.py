"""The watchdog: notices when a model changes state (ready, cooling, retired) and says so to the
log and the status page. It only watches: it never sends a request of its own, so it never
burns quota. The first request after a cooldown is the probe (see :mod:`proxy.routing.cooldown`)."""

from __future__ import annotations

import logging

from proxy.state import Live
from proxy.surfaces.ops import model_states

log = logging.getLogger("l104.watchdog")


class Watchdog:
    def __init__(self, live: Live) -> None:
        self.live = live  # the current generation's models, after a reload too
        self.bus = live.runtime.bus
        # Start from the state at start-up (restored cooldowns included), so the first change
        # after that is reported even if it happens before the first tick.
        self.last = {model: row["state"] for model, row in model_states(live.runtime).items()}

    async def tick(self) -> None:
        for model, row in model_states(self.live.runtime).items():
            before = self.last.get(model)
            now = row["state"]
            self.last[model] = now
            if before is None or before == now:
                continue
            hint = " (the next request is the probe)" if now == "ready" else ""
            log.info("model %s: %s -> %s%s", model, before, now, hint)
            self.bus.publish("state", {"model": model, "from": before, **row})
