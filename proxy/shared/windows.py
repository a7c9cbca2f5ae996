"""Exact limits across replicas: one atomic Lua script checks every limit of a lane and takes
a slot in all of them, on Redis's clock (hosts' clocks may differ; Redis's is one).

A lane is a client (its requests and tokens a minute) or a (responder, model, project) with a
declared or learned quota (requests and tokens a minute, requests a day). Requests a minute are
kept as one stamp per request, so the wait told is the true one; tokens in per-second buckets
(the wait is at most a second late, never early); requests a day as a counter that expires at
the Pacific midnight. A request the upstream refused leaves the window; an estimate of tokens is
settled to the real count. Those corrections are written without waiting.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from proxy.shared.link import Link

PREFIX = "l104:w:"
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local second = math.floor(now / 1000)
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens, rpd = tonumber(ARGV[3]), tonumber(ARGV[4])
if rpd > 0 then
  local used = tonumber(redis.call('GET', KEYS[3]) or '0')
  if used >= rpd then return {0, tonumber(ARGV[6]) - now, 'rpd', second} end
end
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
  local n = redis.call('ZCARD', KEYS[1])
  if n >= rpm then
    local first = redis.call('ZRANGE', KEYS[1], n - rpm, n - rpm, 'WITHSCORES')
    return {0, math.max(1, tonumber(first[2]) + 60000 - now), 'rpm', second}
  end
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
        return {0, math.max(1, (bucket[1] + 61) * 1000 - now), 'tpm', second}
      end
    end
    return {0, math.max(1, (live[#live][1] + 61) * 1000 - now), 'tpm', second}
  end
end
if rpm > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[1], 61000)
end
if tpm > 0 then
  redis.call('HINCRBY', KEYS[2], second, tokens)
  redis.call('PEXPIRE', KEYS[2], 62000)
end
if rpd > 0 then
  redis.call('INCR', KEYS[3])
  redis.call('PEXPIREAT', KEYS[3], ARGV[6])
end
return {1, 0, '', second}
"""
# A request's stamp moves to now (Redis's clock): counted from its answer, as the upstream did.
RESTAMP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
"""


@dataclass(frozen=True, slots=True)
class Slot:
    """What one take holds, to correct it later."""

    lane: str
    member: str
    second: int
    tokens: int  # the estimate taken


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int = 0
    tpm: int = 0
    rpd: int = 0
    day: str = ""  # the Pacific day, for requests a day
    day_end_ms: int = 0

    def __bool__(self) -> bool:
        return bool(self.rpm or self.tpm or self.rpd)


class Windows:
    def __init__(self, link: Link) -> None:
        self.link = link
        self._take = link.redis.register_script(TAKE)
        self._restamp = link.redis.register_script(RESTAMP)

    @staticmethod
    def _keys(lane: str, day: str) -> list[str]:
        return [f"{PREFIX}{lane}:r", f"{PREFIX}{lane}:t", f"{PREFIX}{lane}:d:{day}"]

    async def take(
        self, lane: str, limits: Limits, tokens: int
    ) -> tuple[float, str, Slot | None] | None:
        """Take a slot of ``lane`` if every limit has room: ``(0, "", slot)``; else the
        seconds to wait and which limit (``rpm``, ``tpm``, ``rpd``). None: Redis is away."""
        member = uuid.uuid4().hex[:16]
        keys = self._keys(lane, limits.day)
        args: list[str | int] = [
            limits.rpm,
            limits.tpm,
            max(0, tokens),
            limits.rpd,
            member,
            limits.day_end_ms,
        ]

        async def run(redis: Redis) -> list[object]:
            return list(await self._take(keys=keys, args=args, client=redis))

        out = await self.link.call(run)
        if out is None:
            return None
        ok, wait_ms, why, second = out
        if int(str(ok)):
            return 0.0, "", Slot(lane, member, int(str(second)), max(0, tokens))
        why_text = why.decode() if isinstance(why, bytes) else str(why)
        return int(str(wait_ms)) / 1000, why_text, None

    def refused(self, slot: Slot) -> None:
        """The upstream refused the request (a 429): it takes no slot."""
        key = f"{PREFIX}{slot.lane}:r"
        self.link.spawn(lambda r: r.zrem(key, slot.member))

    def answered(self, slot: Slot) -> None:
        key = f"{PREFIX}{slot.lane}:r"
        self.link.spawn(lambda r: self._restamp(keys=[key], args=[slot.member], client=r))

    def settle(self, slot: Slot, delta: int) -> None:
        """The real token count differs from the estimate by ``delta``."""
        if delta:
            key = f"{PREFIX}{slot.lane}:t"
            self.link.spawn(lambda r: r.hincrby(key, str(slot.second), delta))
