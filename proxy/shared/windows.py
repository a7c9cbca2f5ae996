"""Limits held across replicas: one atomic Lua script checks every limit of a lane and takes
slots in all of them, on Redis's clock (hosts' clocks may differ; Redis's is one).

A lane is a client (its requests and tokens a minute) or a (responder, model, project) with a
declared or learned quota (requests and tokens a minute, requests a day). Requests a minute are
kept as one stamp per request, so the wait told is the true one; tokens in per-second buckets
(the wait is at most a second late, never early); requests a day as a counter that expires at
the Pacific midnight. A request the upstream refused leaves the window; an estimate of tokens is
settled to the real count. Those corrections are written without waiting.

**Leases.** A round trip a request would cost a busy replica a third of its throughput. So a
replica takes a few slots at once (a lease, used within ``LEASE_S``) when the lane is far from
its limit: at most a fiftieth of the limit, and at most half of what is left shared out over
the replicas alive. Near the limit a lease is one slot, which is the exact per-request check.
Leased slots are stamped at the lease's end, so the window never frees one early, and what a
lease did not use is given back. The fleet never admits more than the limit; while far from
it, a replica may hold a few slots another could have used, and gives them back within a
second.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from proxy.shared.link import ALIVE, LUA_NOW, Link

PREFIX = "l104:w:"
LEASE_S = 1.0
MAX_LEASE = 256
TAKE = (
    LUA_NOW
    + """
local second = math.floor(now / 1000)
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens, rpd = tonumber(ARGV[3]), tonumber(ARGV[4])
local want, lease_ms = tonumber(ARGV[7]), tonumber(ARGV[8])
local replicas = 0
local alive = redis.call('HGETALL', KEYS[4])
for i = 2, #alive, 2 do if tonumber(alive[i]) > now then replicas = replicas + 1 end end
replicas = math.max(1, replicas)
local grant = want
if rpd > 0 then
  local used = tonumber(redis.call('GET', KEYS[3]) or '0')
  if used >= rpd then return {0, tonumber(ARGV[6]) - now, 'rpd', second, 0} end
  grant = math.min(grant, math.max(1, math.floor((rpd - used) / (2 * replicas))))
end
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
  local n = redis.call('ZCARD', KEYS[1])
  if n >= rpm then
    local first = redis.call('ZRANGE', KEYS[1], n - rpm, n - rpm, 'WITHSCORES')
    return {0, math.max(1, tonumber(first[2]) + 60000 - now), 'rpm', second, 0}
  end
  grant = math.min(grant, math.max(1, math.floor((rpm - n) / (2 * replicas))))
end
if tpm > 0 then
  local buckets = redis.call('HGETALL', KEYS[2])
  local edge = second - 59
  local used = 0
  local live = {}
  for i = 1, #buckets, 2 do
    local s = tonumber(buckets[i])
    if s < edge then
      redis.call('HDEL', KEYS[2], buckets[i])
    else
      used = used + tonumber(buckets[i + 1])
      table.insert(live, {s, tonumber(buckets[i + 1])})
    end
  end
  if used > 0 and used + tokens > tpm then
    table.sort(live, function(a, b) return a[1] < b[1] end)
    local freed = 0
    for _, bucket in ipairs(live) do
      freed = freed + bucket[2]
      if used - freed + tokens <= tpm then
        return {0, math.max(1, (bucket[1] + 61) * 1000 - now), 'tpm', second, 0}
      end
    end
    return {0, math.max(1, (live[#live][1] + 61) * 1000 - now), 'tpm', second, 0}
  end
  if tokens > 0 then
    grant = math.min(grant, math.max(1, math.floor((tpm - used) / (2 * replicas * tokens))))
  end
end
if rpm > 0 then
  local stamp = now + (grant > 1 and lease_ms or 0)
  for i = 1, grant do redis.call('ZADD', KEYS[1], stamp, ARGV[5] .. ':' .. i) end
  redis.call('PEXPIRE', KEYS[1], 61000 + lease_ms)
end
if tpm > 0 then
  redis.call('HINCRBY', KEYS[2], second, tokens * grant)
  redis.call('PEXPIRE', KEYS[2], 62000)
end
if rpd > 0 then
  redis.call('INCRBY', KEYS[3], grant)
  redis.call('PEXPIREAT', KEYS[3], ARGV[6])
end
return {1, 0, '', second, grant}
"""
)
# A request's stamp moves to now (Redis's clock): counted from its answer, as the upstream did.
RESTAMP = (
    LUA_NOW
    + """
return redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
"""
)


@dataclass(frozen=True, slots=True)
class Slot:
    """What one request holds of a lane, to correct it later."""

    lane: str
    member: str
    second: int
    tokens: int  # the estimate taken


@dataclass(frozen=True, slots=True)
class LaneLimits:
    rpm: int = 0
    tpm: int = 0
    rpd: int = 0
    day: str = ""  # the Pacific day, for requests a day
    day_end_ms: int = 0

    def __bool__(self) -> bool:
        return bool(self.rpm or self.tpm or self.rpd)

    def lease(self) -> int:
        """How many slots to ask for at once: one when a limit is small (every request is
        checked), up to ``MAX_LEASE`` when every limit is large."""
        sizes = [limit // 50 for limit in (self.rpm, self.rpd) if limit]
        return max(1, min([MAX_LEASE, *sizes]))


@dataclass(slots=True)
class _Lease:
    base: str  # members are base:1 … base:granted
    second: int
    granted: int
    tokens_each: int
    day: str
    per_day: bool  # the lane counts requests a day: give those back too
    ends: float  # monotonic
    used: int = 0


class Windows:
    def __init__(self, link: Link) -> None:
        self.link = link
        self._take = link.redis.register_script(TAKE)
        self._restamp = link.redis.register_script(RESTAMP)
        self._leases: dict[str, _Lease] = {}
        # Token corrections by (lane, second), written together once a second: a request's
        # real count may reach the fleet's window up to a second after its answer.
        self._deltas: dict[tuple[str, int], int] = {}

    @staticmethod
    def _keys(lane: str, day: str) -> list[str]:
        return [f"{PREFIX}{lane}:r", f"{PREFIX}{lane}:t", f"{PREFIX}{lane}:d:{day}", ALIVE]

    async def take(
        self, lane: str, limits: LaneLimits, tokens: int
    ) -> tuple[float, str, Slot | None] | None:
        """Take a slot of ``lane`` if every limit has room: ``(0, "", slot)``; else the
        seconds to wait and which limit (``rpm``, ``tpm``, ``rpd``). None: Redis is away."""
        tokens = max(0, tokens)
        lease = self._leases.get(lane)
        if lease is not None:
            if (
                lease.used < lease.granted
                and time.monotonic() < lease.ends
                and tokens <= lease.tokens_each
                and lease.day == limits.day
            ):
                lease.used += 1
                slot = Slot(lane, f"{lease.base}:{lease.used}", lease.second, lease.tokens_each)
                return 0.0, "", slot
            self._give_back(lane, lease)
        want = limits.lease()
        base = uuid.uuid4().hex[:16]
        keys = self._keys(lane, limits.day)
        args: list[str | int] = [
            *(limits.rpm, limits.tpm, tokens, limits.rpd, base, limits.day_end_ms),
            *(want, int(LEASE_S * 1000)),
        ]

        async def run(redis: Redis) -> list[object]:
            return list(await self._take(keys=keys, args=args, client=redis))

        out = await self.link.call(run)
        if out is None:
            return None
        ok, wait_ms, why, second, granted = out
        if not int(str(ok)):
            why_text = why.decode() if isinstance(why, bytes) else str(why)
            return int(str(wait_ms)) / 1000, why_text, None
        count = int(str(granted))
        if count > 1:
            ends = time.monotonic() + LEASE_S
            self._leases[lane] = _Lease(
                base, int(str(second)), count, tokens, limits.day, bool(limits.rpd), ends, 1
            )
        return 0.0, "", Slot(lane, f"{base}:1", int(str(second)), tokens)

    def _give_back(self, lane: str, lease: _Lease) -> None:
        """Return what a lease did not use: its stamps and its tokens."""
        del self._leases[lane]
        unused = lease.granted - lease.used
        if unused <= 0:
            return
        members = [f"{lease.base}:{i}" for i in range(lease.used + 1, lease.granted + 1)]
        stamps, buckets = f"{PREFIX}{lane}:r", f"{PREFIX}{lane}:t"
        day = f"{PREFIX}{lane}:d:{lease.day}"
        tokens = unused * lease.tokens_each

        async def run(redis: Redis) -> None:
            pipe = redis.pipeline(transaction=False)
            pipe.zrem(stamps, *members)
            if tokens:
                pipe.hincrby(buckets, str(lease.second), -tokens)
            if lease.per_day:
                pipe.decrby(day, unused)
            await pipe.execute()

        self.link.spawn(run)

    def expire(self) -> None:
        """Give back the leases whose time is up, and write the token corrections (called
        about once a second)."""
        now = time.monotonic()
        for lane, lease in list(self._leases.items()):
            if now >= lease.ends:
                self._give_back(lane, lease)
        self._flush()

    def _flush(self) -> None:
        if not self._deltas:
            return
        deltas, self._deltas = self._deltas, {}

        async def run(redis: Redis) -> None:
            pipe = redis.pipeline(transaction=False)
            for (lane, second), delta in deltas.items():
                if delta:
                    pipe.hincrby(f"{PREFIX}{lane}:t", str(second), delta)
            await pipe.execute()

        self.link.spawn(run)

    def refused(self, slot: Slot) -> None:
        """The upstream refused the request (a 429): it takes no slot."""
        key = f"{PREFIX}{slot.lane}:r"
        self.link.spawn(lambda r: r.zrem(key, slot.member))

    def answered(self, slot: Slot) -> None:
        key = f"{PREFIX}{slot.lane}:r"
        self.link.spawn(lambda r: self._restamp(keys=[key], args=[slot.member], client=r))

    def settle(self, slot: Slot, delta: int) -> None:
        """The real token count differs from the estimate by ``delta`` (written with the
        next flush: batched, not a round trip a request)."""
        if delta:
            key = (slot.lane, slot.second)
            self._deltas[key] = self._deltas.get(key, 0) + delta
            if len(self._deltas) > 1024:
                self._flush()
