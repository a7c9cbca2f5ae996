"""Which key a new stateful resource (an upload, a cached content) is made with.

Keys are taken in turn, so resources spread over the pool; a key that is cooling on every
model it serves is skipped, since every later request that uses the resource is pinned to it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from proxy.responders.base import Responder
from proxy.routing.cooldown import Cooldowns


class KeyPicker:
    def __init__(self, cooldowns: Cooldowns) -> None:
        self.cooldowns = cooldowns
        self.turn: defaultdict[str, int] = defaultdict(int)

    def _usable(self, responder: Responder, key: int, models: Sequence[str]) -> bool:
        if self.cooldowns.disabled_for(responder.name, key) > 0:
            return False
        project = responder.projects[key]
        return not models or any(
            self.cooldowns.peek((responder.name, model, project)) <= 0 for model in models
        )

    def pick(self, responder: Responder, models: Sequence[str]) -> int:
        """The next key of ``responder`` in turn that is not disabled, nor cooling on all of
        ``models`` (if every key is, simply the next in turn)."""
        count = responder.key_count
        start = self.turn[responder.name]
        self.turn[responder.name] = start + 1
        for step in range(count):
            key = (start + step) % count
            if self._usable(responder, key, models):
                if step:
                    self.turn[responder.name] = start + step + 1
                return key
        return start % count
