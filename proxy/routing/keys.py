"""Which key a new stateful resource (an upload, a cached content) is made with.

Keys are taken in turn, so resources spread over the pool; a key that is cooling on every
model it serves is skipped, since every later request that uses the resource is pinned to it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from proxy.routing.cooldown import Cooldowns


class KeyPicker:
    def __init__(self, cooldowns: Cooldowns) -> None:
        self.cooldowns = cooldowns
        self.turn: defaultdict[str, int] = defaultdict(int)

    def pick(self, responder: str, key_count: int, models: Sequence[str]) -> int:
        """The next key of ``responder`` in turn that is not cooling on all of ``models``
        (if every key is, simply the next in turn)."""
        start = self.turn[responder]
        self.turn[responder] = start + 1
        for step in range(key_count):
            key = (start + step) % key_count
            if not models or any(
                self.cooldowns.peek((responder, model, key)) <= 0 for model in models
            ):
                if step:
                    self.turn[responder] = start + step + 1
                return key
        return start % key_count
