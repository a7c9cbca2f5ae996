"""What the fleet shares besides cooldowns and windows: the files and cached contents map, the
open Live sessions, and the ``/metrics`` counters.

- The resource map is a hash (``l104:owners``): written when a resource is made or deleted,
  read on a local miss and before a listing.
- Live sessions are counted per replica in a hash, and a replica counts only while its
  heartbeat is fresh: a replica that died does not hold its sessions' slots for ever.
- Counters are pushed as increments once a second (batched), so ``/metrics`` on any replica
  reads the fleet's totals in one round trip.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from redis.asyncio import Redis

from proxy.metrics import Counters
from proxy.resources.owners import Row
from proxy.shared.link import ALIVE, LUA_NOW, Link

OWNERS = "l104:owners"
METRICS = "l104:metrics"
ALIVE_MS = 15_000
# Count a client's open sessions over the replicas still alive; open one more if under the cap.
LIVE_OPEN = (
    LUA_NOW
    + """
redis.call('HSET', KEYS[2], ARGV[1], now + tonumber(ARGV[3]))
local counts = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #counts, 2 do
  local alive = tonumber(redis.call('HGET', KEYS[2], counts[i]) or '0')
  if alive > now then total = total + tonumber(counts[i + 1]) end
end
local cap = tonumber(ARGV[2])
if cap > 0 and total >= cap then return -total end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return total + 1
"""
)


class RemoteOwners:
    """The fleet's resource map (see :class:`proxy.resources.owners.RemoteMap`)."""

    def __init__(self, link: Link) -> None:
        self.link = link

    async def get(self, name: str) -> Row | None:
        raw = await self.link.call(lambda r: r.hget(OWNERS, name))
        return tuple(orjson.loads(raw)) if isinstance(raw, bytes) else None

    async def put(self, name: str, row: Row) -> None:
        await self.link.call(lambda r: r.hset(OWNERS, name, orjson.dumps(row)))

    async def delete(self, name: str) -> None:
        await self.link.call(lambda r: r.hdel(OWNERS, name))

    async def rows(self) -> list[Row]:
        found = await self.link.call(lambda r: r.hgetall(OWNERS))
        return [tuple(orjson.loads(v)) for v in (found or {}).values()]


class Fleet:
    def __init__(self, link: Link, counters: Counters) -> None:
        self.link = link
        self.counters = counters
        self.owners = RemoteOwners(link)
        self._live_open = link.redis.register_script(LIVE_OPEN)
        self._pushed: dict[str, float] = _flat(counters.persistent())

    # -- Live sessions -------------------------------------------------------------------------

    async def live_open(self, client: str, cap: int) -> int | None:
        """Open a Live session of ``client`` if the fleet has fewer than ``cap`` (0: no cap):
        the count open now, negative if refused; None: Redis is away."""
        keys = [f"l104:live:{client}", ALIVE]
        args: list[str | int] = [self.link.replica, cap, ALIVE_MS]

        async def run(redis: Redis) -> int:
            return int(await self._live_open(keys=keys, args=args, client=redis))

        return await self.link.call(run)

    def live_closed(self, client: str) -> None:
        self.link.spawn(lambda r: r.hincrby(f"l104:live:{client}", self.link.replica, -1))

    # -- counters ------------------------------------------------------------------------------

    async def push(self) -> None:
        """Add what was counted here since the last push to the fleet's totals; also the
        heartbeat that keeps this replica's Live sessions counted."""
        now = _flat(self.counters.persistent())
        delta = {k: v - self._pushed.get(k, 0) for k, v in now.items()}
        delta = {k: v for k, v in delta.items() if v}
        alive = int(time.time() * 1000) + ALIVE_MS

        async def run(redis: Redis) -> None:
            pipe = redis.pipeline(transaction=False)
            for field, amount in delta.items():
                pipe.hincrbyfloat(METRICS, field, amount)
            pipe.hset(ALIVE, self.link.replica, alive)
            await pipe.execute()

        if self.link.up:
            await self.link.call(run)
            if self.link.up:
                self._pushed = now

    async def totals(self) -> dict[str, Any] | None:
        """The fleet's counters (the shape of ``Counters.persistent``); None: Redis is away."""
        found = await self.link.call(lambda r: r.hgetall(METRICS))
        if found is None:
            return None
        out: dict[str, Any] = {}
        for raw_field, raw_value in found.items():
            field = raw_field.decode() if isinstance(raw_field, bytes) else str(raw_field)
            value = int(float(raw_value))
            name, _, label = field.partition("|")
            if label:
                out.setdefault(name, {})[label] = value
            else:
                out[name] = value
        return out


def _flat(counts: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in counts.items():
        if isinstance(value, dict):
            out.update({f"{name}|{label}": float(v) for label, v in value.items()})
        elif isinstance(value, int | float):
            out[name] = float(value)
    return out
